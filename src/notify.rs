//! The notifier: one event sent through every configured channel (Slack
//! incoming webhook, PagerDuty Events API v2, email over SMTP or the local
//! sendmail), each channel on its own thread with its own retries, so a
//! failing channel is reported and never stops the others.
//!
//! Transient failures (HTTP 5xx, 429 honouring Retry-After, timeouts and
//! resets, SMTP 4xx) are retried with backoff until `alerts.retry_deadline_secs`;
//! anything else fails at once. Secrets (the webhook URL, the routing key, the
//! SMTP password) never appear in messages, logs or `--json`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use serde_json::json;

use crate::checks::Status;
use crate::config::{AlertsConfig, EmailConfig, EmailTransport, Secret};
use crate::http::{self, Body, Proxy};

/// How bad an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn of(status: Status) -> Severity {
        match status {
            Status::Critical => Severity::Critical,
            Status::Unknown => Severity::Error,
            Status::Warning => Severity::Warning,
            Status::Ok => Severity::Info,
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Something to tell people about.
#[derive(Debug, Clone)]
pub struct Event {
    /// Stable identity (e.g. "health:database", "job:backup"): PagerDuty's dedup_key is built from it.
    pub key: String,
    pub severity: Severity,
    /// Whether this closes an earlier event with the same key (PagerDuty resolve).
    pub resolve: bool,
    pub title: String,
    pub body: String,
    /// For email only: (file name, bytes).
    pub attachment: Option<(String, Vec<u8>)>,
}

/// One channel's outcome for one event.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub channel: &'static str,
    pub ok: bool,
    pub attempts: u32,
    pub detail: String,
    pub elapsed_ms: u128,
}

#[derive(Debug, Clone)]
enum Channel {
    Slack { url: Secret },
    PagerDuty { url: String, key: Secret },
    Email(EmailConfig),
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Slack { .. } => "slack",
            Channel::PagerDuty { .. } => "pagerduty",
            Channel::Email(_) => "email",
        }
    }
}

/// Why one attempt failed.
enum Failure {
    /// Worth another try; with the server's requested wait, if it gave one.
    Transient(String, Option<Duration>),
    Permanent(String),
}

pub struct Notifier {
    channels: Vec<Channel>,
    pub host: String,
    request_timeout: Duration,
    retry_deadline: Duration,
}

impl Notifier {
    pub fn from_config(a: &AlertsConfig) -> Notifier {
        let mut channels = Vec::new();
        if let Some(url) = &a.slack.webhook_url {
            channels.push(Channel::Slack { url: url.clone() });
        }
        if let Some(key) = &a.pagerduty.routing_key {
            channels.push(Channel::PagerDuty {
                url: a.pagerduty.events_url.clone(),
                key: key.clone(),
            });
        }
        if !a.email.to.is_empty() {
            channels.push(Channel::Email(a.email.clone()));
        }
        Notifier {
            channels,
            host: a
                .host_name
                .clone()
                .unwrap_or_else(crate::manifest::host_name),
            request_timeout: Duration::from_secs(a.request_timeout_secs),
            retry_deadline: Duration::from_secs(a.retry_deadline_secs),
        }
    }

    pub fn channel_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(Channel::name).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// PagerDuty's dedup_key for an event key: stable per host and key.
    pub fn dedup_key(&self, key: &str) -> String {
        format!("tuneton-ops:{}:{key}", self.host)
    }

    /// Sends through every channel (or only `only`), all channels in parallel.
    pub fn send(&self, ev: &Event, only: Option<&[&str]>) -> Vec<Delivery> {
        let chosen: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| only.is_none_or(|o| o.contains(&c.name())))
            .collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = chosen
                .iter()
                .map(|c| s.spawn(move || self.deliver(c, ev)))
                .collect();
            handles
                .into_iter()
                .zip(&chosen)
                .map(|(h, c)| {
                    h.join().unwrap_or_else(|_| Delivery {
                        channel: c.name(),
                        ok: false,
                        attempts: 0,
                        detail: "the sending thread panicked".into(),
                        elapsed_ms: 0,
                    })
                })
                .collect()
        })
    }

    fn deliver(&self, ch: &Channel, ev: &Event) -> Delivery {
        let started = Instant::now();
        let deadline = started + self.retry_deadline;
        let mut delay = Duration::from_millis(200);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = self
                .request_timeout
                .min(left)
                .max(Duration::from_millis(200));
            let outcome = match ch {
                Channel::Slack { url } => self.slack(url, ev, timeout),
                Channel::PagerDuty { url, key } => self.pagerduty(url, key, ev, timeout),
                Channel::Email(e) => self.email(e, ev, timeout),
            };
            let done = |ok: bool, detail: String| Delivery {
                channel: ch.name(),
                ok,
                attempts,
                detail,
                elapsed_ms: started.elapsed().as_millis(),
            };
            match outcome {
                Ok(detail) => return done(true, detail),
                Err(Failure::Permanent(msg)) => {
                    log::warn!("alert via {}: {msg}", ch.name());
                    return done(false, msg);
                }
                Err(Failure::Transient(msg, wait)) => {
                    let wait = wait.unwrap_or(delay);
                    if Instant::now() + wait >= deadline {
                        let msg = format!(
                            "{msg}; gave up after {attempts} attempts ({}s alerts.retry_deadline_secs)",
                            self.retry_deadline.as_secs()
                        );
                        log::warn!("alert via {}: {msg}", ch.name());
                        return done(false, msg);
                    }
                    log::info!(
                        "alert via {}: {msg}; retrying in {:.1}s",
                        ch.name(),
                        wait.as_secs_f64()
                    );
                    std::thread::sleep(wait);
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    fn post(
        &self,
        url: &str,
        what: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> std::result::Result<http::Response, Failure> {
        let resp = http::request("POST", url, Body::Json(body), timeout, Proxy::FromEnv)
            .map_err(|e| Failure::Transient(format!("{what}: {e:#}"), None))?;
        match resp.status {
            200..=299 => Ok(resp),
            429 => Err(Failure::Transient(
                format!("{what}: HTTP 429 (rate limited)"),
                http::retry_after(&resp),
            )),
            500..=599 => Err(Failure::Transient(
                format!("{what}: HTTP {}", resp.status),
                http::retry_after(&resp),
            )),
            s => {
                let text: String = resp.text().chars().take(300).collect();
                Err(Failure::Permanent(format!(
                    "{what}: HTTP {s}: {}",
                    text.trim()
                )))
            }
        }
    }

    fn slack(
        &self,
        url: &Secret,
        ev: &Event,
        timeout: Duration,
    ) -> std::result::Result<String, Failure> {
        let mark = if ev.resolve {
            "RESOLVED"
        } else {
            match ev.severity {
                Severity::Critical => "CRITICAL",
                Severity::Error => "ERROR",
                Severity::Warning => "WARNING",
                Severity::Info => "INFO",
            }
        };
        let text = format!("*[{mark}]* {}\n{}", ev.title, ev.body.trim_end());
        let what = format!("Slack webhook at {}", http::describe_url(url.expose()));
        let resp = self.post(url.expose(), &what, &json!({ "text": text }), timeout)?;
        Ok(format!(
            "HTTP {} from {}",
            resp.status,
            http::describe_url(url.expose())
        ))
    }

    fn pagerduty(
        &self,
        url: &str,
        key: &Secret,
        ev: &Event,
        timeout: Duration,
    ) -> std::result::Result<String, Failure> {
        let dedup = self.dedup_key(&ev.key);
        let body = if ev.resolve {
            json!({"routing_key": key.expose(), "event_action": "resolve", "dedup_key": dedup})
        } else {
            let summary: String = ev.title.chars().take(1024).collect();
            json!({
                "routing_key": key.expose(),
                "event_action": "trigger",
                "dedup_key": dedup,
                "payload": {
                    "summary": summary,
                    "source": self.host,
                    "severity": ev.severity.as_str(),
                    "component": "tuneton",
                    "group": "tuneton-ops",
                    "custom_details": {"details": ev.body},
                },
            })
        };
        let what = format!("PagerDuty at {}", http::describe_url(url));
        let resp = self.post(url, &what, &body, timeout)?;
        let action = if ev.resolve { "resolve" } else { "trigger" };
        Ok(format!(
            "{action} accepted (HTTP {}), dedup_key {dedup}",
            resp.status
        ))
    }

    fn email(
        &self,
        e: &EmailConfig,
        ev: &Event,
        timeout: Duration,
    ) -> std::result::Result<String, Failure> {
        let subject = if ev.resolve {
            format!("[RESOLVED] {}", ev.title)
        } else {
            format!("[{}] {}", ev.severity.as_str().to_uppercase(), ev.title)
        };
        let message = build_message(
            &e.from,
            &e.to,
            &subject,
            &ev.body,
            ev.attachment.as_ref(),
            &self.host,
        );
        match e.transport {
            EmailTransport::Smtp => smtp_send(e, &message, timeout, &self.host),
            EmailTransport::Sendmail => sendmail(e, &message, timeout),
        }
    }
}

/// A header value without CR/LF (header injection) and with non-ASCII encoded (RFC 2047).
fn header_value(v: &str) -> String {
    let v: String = v
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if v.is_ascii() {
        v
    } else {
        use base64::Engine;
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
        )
    }
}

/// An RFC 5322 message (CRLF line ends), multipart/mixed when there is an attachment.
fn build_message(
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
    attachment: Option<&(String, Vec<u8>)>,
    host: &str,
) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let now = chrono::Utc::now();
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", header_value(from)));
    m.push_str(&format!("To: {}\r\n", header_value(&to.join(", "))));
    m.push_str(&format!("Subject: {}\r\n", header_value(subject)));
    m.push_str(&format!("Date: {}\r\n", now.to_rfc2822()));
    m.push_str(&format!(
        "Message-ID: <{}.{}@{}>\r\n",
        now.timestamp_nanos_opt().unwrap_or(0),
        std::process::id(),
        header_value(host)
    ));
    m.push_str("MIME-Version: 1.0\r\nX-Mailer: tuneton-ops\r\n");
    let text: String = body.lines().map(|l| format!("{l}\r\n")).collect();
    match attachment {
        None => {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str(&text);
        }
        Some((name, bytes)) => {
            let boundary = format!("tuneton-ops-{:x}", rand::random::<u64>());
            m.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n"
            ));
            m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"));
            let name = header_value(name).replace('"', "");
            m.push_str(&format!(
                "--{boundary}\r\nContent-Type: application/gzip; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\r\n"
            ));
            let enc = b64.encode(bytes);
            for chunk in enc.as_bytes().chunks(76) {
                m.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                m.push_str("\r\n");
            }
            m.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    m
}

/// Reads one SMTP reply (multi-line `250-...` until `250 ...`): code and text.
fn smtp_reply(r: &mut impl BufRead) -> std::result::Result<(u16, String), Failure> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .map_err(|e| Failure::Transient(format!("SMTP read: {e}"), None))?;
        if n == 0 {
            return Err(Failure::Transient(
                "SMTP server closed the connection".into(),
                None,
            ));
        }
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
            Failure::Permanent(format!("SMTP: unexpected reply {:?}", line.trim()))
        })?;
        text.push_str(line.get(4..).unwrap_or("").trim());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

/// SMTP without TLS (to a local or loopback relay), AUTH PLAIN when a user is configured.
fn smtp_send(
    e: &EmailConfig,
    message: &str,
    timeout: Duration,
    host: &str,
) -> std::result::Result<String, Failure> {
    let server = format!("{}:{}", e.smtp_host, e.smtp_port);
    let addr = server
        .to_socket_addrs()
        .map_err(|err| Failure::Transient(format!("SMTP {server}: {err}"), None))?
        .next()
        .ok_or_else(|| Failure::Permanent(format!("SMTP {server}: no address")))?;
    let stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|err| Failure::Transient(format!("SMTP {server}: {err}"), None))?;
    let io_err = |err: std::io::Error| Failure::Transient(format!("SMTP {server}: {err}"), None);
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    let deadline = Instant::now() + timeout;
    let mut w = stream.try_clone().map_err(io_err)?;
    let mut r = BufReader::new(stream);
    // Each step: send a line (none for the greeting) and expect a reply class.
    let mut step =
        |line: Option<&str>, shown: &str, want: u16| -> std::result::Result<String, Failure> {
            if Instant::now() > deadline {
                return Err(Failure::Transient(
                    format!("SMTP {server}: no answer within {}s", timeout.as_secs()),
                    None,
                ));
            }
            if let Some(l) = line {
                w.write_all(format!("{l}\r\n").as_bytes())
                    .map_err(|err| Failure::Transient(format!("SMTP {server}: {err}"), None))?;
            }
            let (code, text) = smtp_reply(&mut r)?;
            if code / 100 == want / 100 {
                Ok(text)
            } else if code / 100 == 4 {
                Err(Failure::Transient(
                    format!("SMTP {server} after {shown}: {code} {text}"),
                    None,
                ))
            } else {
                Err(Failure::Permanent(format!(
                    "SMTP {server} after {shown}: {code} {text}"
                )))
            }
        };
    step(None, "connect", 220)?;
    step(Some(&format!("EHLO {host}")), "EHLO", 250)?;
    if let (Some(user), Some(pw)) = (&e.smtp_user, &e.smtp_password) {
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{}", pw.expose()));
        step(Some(&format!("AUTH PLAIN {token}")), "AUTH", 235)?;
    }
    step(Some(&format!("MAIL FROM:<{}>", e.from)), "MAIL FROM", 250)?;
    for to in &e.to {
        step(Some(&format!("RCPT TO:<{to}>")), "RCPT TO", 250)?;
    }
    step(Some("DATA"), "DATA", 354)?;
    // Dot-stuffing: a line starting with '.' gets another.
    let mut data = String::with_capacity(message.len() + 16);
    for line in message.split("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    let data = data.trim_end_matches("\r\n").to_string() + "\r\n.";
    let accepted = step(Some(&data), "the message", 250)?;
    let _ = step(Some("QUIT"), "QUIT", 221);
    Ok(format!(
        "accepted by {server} for {} recipient(s): {accepted}",
        e.to.len()
    ))
}

/// `sendmail -i -t` (recipients from the headers) with the message on stdin and a deadline.
fn sendmail(
    e: &EmailConfig,
    message: &str,
    timeout: Duration,
) -> std::result::Result<String, Failure> {
    let mut cmd = Command::new(&e.sendmail_path);
    cmd.args(["-i", "-t"]);
    let mut run = || -> Result<std::process::Output> {
        let mut child = crate::process::isolate(&mut cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {}", e.sendmail_path.display()))?;
        let dog = crate::process::Watchdog::new(child.id(), timeout);
        let mut stdin = child.stdin.take().expect("piped");
        let msg = message.replace("\r\n", "\n");
        let writer = std::thread::spawn(move || stdin.write_all(msg.as_bytes()));
        let out = child.wait_with_output()?;
        let _ = writer.join();
        if dog.fired() {
            bail!(
                "{} did not finish within {}s",
                e.sendmail_path.display(),
                timeout.as_secs()
            );
        }
        Ok(out)
    };
    match run() {
        Ok(o) if o.status.success() => Ok(format!("handed to {}", e.sendmail_path.display())),
        Ok(o) => {
            let msg = format!(
                "{} failed ({}): {}",
                e.sendmail_path.display(),
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            // sysexits: 75 (EX_TEMPFAIL) is worth another try; anything else is not.
            if o.status.code() == Some(75) {
                Err(Failure::Transient(msg, None))
            } else {
                Err(Failure::Permanent(msg))
            }
        }
        Err(err) => Err(Failure::Permanent(format!("{err:#}"))),
    }
}

/// Sends one event and returns the deliveries (for reports), logging each failure.
pub fn send_logged(n: &Notifier, ev: &Event) -> Vec<Delivery> {
    let d = n.send(ev, None);
    for x in &d {
        if !x.ok {
            log::error!(
                "alert {:?} via {} failed: {}",
                ev.title,
                x.channel,
                x.detail
            );
        }
    }
    d
}

/// `alerts.alert_on_failure`: reports a failed scheduled run of `job` through
/// every channel. Reloads the settings (the command consumed them); if they
/// cannot be loaded there is nothing to send with.
pub fn report_failed_run(
    global: &crate::cli::GlobalArgs,
    job: &str,
    code: i32,
    error: Option<&str>,
) {
    let Ok(settings) = crate::config::Settings::load(global) else {
        return;
    };
    if !settings.config.alerts.alert_on_failure {
        return;
    }
    let n = Notifier::from_config(&settings.config.alerts);
    if n.is_empty() {
        log::warn!("alerts.alert_on_failure is set but no alert channel is configured");
        return;
    }
    let ev = Event {
        key: format!("job:{job}"),
        severity: Severity::Critical,
        resolve: false,
        title: format!("tuneton-ops {job} failed on {} (exit {code})", n.host),
        body: failure_body(
            &settings.config.paths.log_dir.join(format!("{job}.log")),
            code,
            error,
        ),
        attachment: None,
    };
    let mut delivered = false;
    for d in send_logged(&n, &ev) {
        if d.ok {
            delivered = true;
            log::info!("failure of {job} reported via {}", d.channel);
        }
    }
    // Remembered, so that the next successful run closes the incident.
    if delivered {
        let marker = failure_marker(&settings.config, job);
        if let Err(e) = std::fs::write(&marker, format!("{code}\n")) {
            log::warn!("cannot write {}: {e}", marker.display());
        }
    }
}

/// Where a reported failure of `job` is remembered until a run of it succeeds.
fn failure_marker(c: &crate::config::Config, job: &str) -> std::path::PathBuf {
    c.paths.run_dir.join(format!("{job}.failure-alerted"))
}

/// After a successful run: if a failure of `job` was reported, resolve it
/// (PagerDuty: the same dedup_key) and forget it. Cheap when there is none.
pub fn report_recovered_run(global: &crate::cli::GlobalArgs, job: &str) {
    let Ok(settings) = crate::config::Settings::load(global) else {
        return;
    };
    let marker = failure_marker(&settings.config, job);
    if !settings.config.alerts.alert_on_failure || !marker.exists() {
        return;
    }
    let n = Notifier::from_config(&settings.config.alerts);
    let ev = Event {
        key: format!("job:{job}"),
        severity: Severity::Info,
        resolve: true,
        title: format!("tuneton-ops {job} succeeded again on {}", n.host),
        body: format!("{job} finished successfully; the earlier failure is resolved."),
        attachment: None,
    };
    if send_logged(&n, &ev).iter().any(|d| d.ok) {
        let _ = std::fs::remove_file(&marker);
        log::info!("recovery of {job} reported");
    }
}

/// The error (or the exit code) and the last lines of the job's log, which
/// carry the per-item failures a command reported before it returned.
fn failure_body(log: &std::path::Path, code: i32, error: Option<&str>) -> String {
    let mut body = match error {
        Some(e) => e.to_string(),
        None => format!("exited {code}"),
    };
    if let Ok(text) = std::fs::read_to_string(log) {
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(10)..];
        body.push_str(&format!(
            "\n\nlast lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        ));
    } else {
        body.push_str(&format!("\nlog: {}", log.display()));
    }
    body
}

/// Errors for `anyhow` users of the module.
pub fn require_channel(n: &Notifier, name: Option<&str>) -> Result<()> {
    if n.is_empty() {
        return Err(crate::exit::could_not_start(
            "no alert channel is configured: set alerts.slack.webhook_url_file (or SLACK_WEBHOOK_URL), \
             alerts.pagerduty.routing_key_file (or PAGERDUTY_ROUTING_KEY), or alerts.email.to",
        ));
    }
    if let Some(c) = name {
        if !n.channel_names().contains(&c) {
            return Err(crate::exit::could_not_start(format!(
                "channel {c} is not configured (configured: {})",
                n.channel_names().join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_cannot_be_injected_and_attachments_are_base64() {
        let m = build_message(
            "ops@example.com",
            &["a@example.com".into()],
            "disk full\r\nBcc: evil@example.com",
            ".leading dot\nsecond",
            Some(&("bundle.tar.gz".into(), vec![0u8, 1, 2, 255])),
            "web1",
        );
        assert!(!m.contains("\r\nBcc:"), "{m}");
        assert!(m.contains("Subject: disk full  Bcc: evil@example.com\r\n"));
        assert!(m.contains("AAEC/w==\r\n"), "{m}");
        assert!(m.contains("filename=\"bundle.tar.gz\""));
    }

    #[test]
    fn severities_follow_check_states() {
        assert_eq!(Severity::of(Status::Critical), Severity::Critical);
        assert_eq!(Severity::of(Status::Unknown), Severity::Error);
        assert_eq!(Severity::of(Status::Warning).as_str(), "warning");
    }

    #[test]
    fn smtp_replies_span_lines() {
        let mut r = BufReader::new(&b"250-mail.example\r\n250-SIZE 100\r\n250 OK\r\n"[..]);
        let (code, text) = match smtp_reply(&mut r) {
            Ok(v) => v,
            Err(_) => panic!("parse"),
        };
        assert_eq!(code, 250);
        assert_eq!(text, "mail.example SIZE 100 OK");
    }
}
