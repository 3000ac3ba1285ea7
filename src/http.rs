//! A small HTTP client with deadlines (attohttpc, already in the tree through
//! rust-s3), the application's health expectation, and `wait_for_health`
//! (poll with backoff until healthy or the deadline: never a fixed sleep).
//!
//! URLs given to this module may carry secrets (a Slack webhook's path is its
//! token): errors name only the scheme and host (`Target::describe`), never the
//! full URL.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::config::AppConfig;

/// Largest body we keep from a response.
const MAX_BODY: u64 = 1024 * 1024;

/// One HTTP response, with the body capped at 1 MiB.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `scheme://host[:port]/path` of a URL that is not a secret (the
/// application's health URL): the path says which endpoint answered; userinfo
/// and query (where tokens live) are still left out.
pub fn describe_url_with_path(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}{}", describe_url(url), u.path()),
        Err(_) => "<invalid URL>".into(),
    }
}

/// `scheme://host[:port]` of a URL, safe to print (no path, query or
/// credentials): for webhook URLs, whose path is the secret.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<invalid URL>".into(),
    }
}

/// A request body.
pub enum Body<'a> {
    None,
    Json(&'a serde_json::Value),
}

/// Whether the request may go through the environment's HTTP proxy
/// (`http_proxy`/`https_proxy`/`no_proxy`): yes for outside services (Slack,
/// PagerDuty), no for the application's own endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    FromEnv,
    Direct,
}

/// One request with a deadline covering connect, send and the whole response.
/// Messages show the URL as `describe_url` (no path: webhook paths are secrets).
pub fn request(
    method: &str,
    url: &str,
    body: Body<'_>,
    timeout: Duration,
    proxy: Proxy,
) -> Result<Response> {
    request_shown_as(method, url, &describe_url(url), body, timeout, proxy)
}

/// `request`, naming the URL in messages as `shown`.
fn request_shown_as(
    method: &str,
    url: &str,
    shown: &str,
    body: Body<'_>,
    timeout: Duration,
    proxy: Proxy,
) -> Result<Response> {
    use std::io::Read;
    let started = Instant::now();
    let method = attohttpc::Method::from_bytes(method.as_bytes())
        .map_err(|_| anyhow!("bad HTTP method {method}"))?;
    let builder = attohttpc::RequestBuilder::try_new(method, url)
        .map_err(|e| anyhow!("{}: not a usable URL: {}", shown, kind_of(&e)))?
        .connect_timeout(timeout)
        .read_timeout(timeout)
        .timeout(timeout)
        .follow_redirects(false)
        .header(
            "User-Agent",
            concat!("tuneton-ops/", env!("CARGO_PKG_VERSION")),
        );
    // Loopback never goes through a proxy, whatever no_proxy says.
    let loopback = url::Url::parse(url).ok().is_some_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    });
    let builder = if proxy == Proxy::Direct || loopback {
        builder.proxy_settings(attohttpc::ProxySettings::builder().build())
    } else {
        builder
    };
    let result = match body {
        Body::None => builder.send(),
        Body::Json(v) => builder
            .header("Content-Type", "application/json")
            .bytes(serde_json::to_vec(v)?)
            .send(),
    };
    let resp = result.map_err(|e| {
        anyhow!(
            "{}: {} after {}ms",
            shown,
            kind_of(&e),
            started.elapsed().as_millis()
        )
    })?;
    let (status, headers, reader) = resp.split();
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    reader
        .take(MAX_BODY)
        .read_to_end(&mut body)
        .map_err(|e| anyhow!("{}: reading the response: {e}", shown))?;
    Ok(Response {
        status: status.as_u16(),
        headers,
        body,
        elapsed: started.elapsed(),
    })
}

/// attohttpc's error without anything that could echo the URL back.
fn kind_of(e: &attohttpc::Error) -> String {
    use attohttpc::ErrorKind as K;
    match e.kind() {
        K::Io(io)
            if io.kind() == std::io::ErrorKind::TimedOut
                || io.kind() == std::io::ErrorKind::WouldBlock =>
        {
            "timed out".into()
        }
        K::Io(io) => format!("{io}"),
        K::ConnectNotSupported | K::ConnectError { .. } => "proxy connect failed".into(),
        K::InvalidBaseUrl | K::InvalidUrlHost | K::InvalidUrlPort => "invalid URL".into(),
        K::InvalidResponse(r) => format!("invalid response: {r:?}"),
        K::TooManyRedirections => "too many redirections".into(),
        K::Tls(t) => format!("TLS: {t}"),
        K::StatusCode(s) => format!("HTTP {s}"),
        other => format!("{other:?}")
            .split('(')
            .next()
            .unwrap_or("error")
            .to_string(),
    }
}

/// What a healthy answer looks like.
#[derive(Debug, Clone, Serialize)]
pub struct HealthExpect {
    pub status: u16,
    pub body_contains: Option<String>,
    /// Dotted path into a JSON body ("version", "db.status").
    pub json_field: Option<String>,
    pub json_value: Option<String>,
}

impl HealthExpect {
    pub fn from_app_config(a: &AppConfig) -> HealthExpect {
        HealthExpect {
            status: a.health_status,
            body_contains: a.health_body_contains.clone(),
            json_field: a.health_json_field.clone(),
            json_value: a.health_json_value.clone(),
        }
    }

    /// `Ok(field value, if a field was asked for)` when the response is healthy, else why not.
    pub fn check(&self, r: &Response) -> std::result::Result<Option<String>, String> {
        if r.status != self.status {
            let snippet: String = r.text().chars().take(200).collect();
            return Err(format!(
                "HTTP {} (expected {}){}",
                r.status,
                self.status,
                if snippet.trim().is_empty() {
                    String::new()
                } else {
                    format!(": {}", snippet.trim())
                }
            ));
        }
        if let Some(want) = &self.body_contains {
            if !r.text().contains(want.as_str()) {
                return Err(format!("body does not contain {want:?}"));
            }
        }
        let Some(field) = &self.json_field else {
            return Ok(None);
        };
        let doc: serde_json::Value = serde_json::from_slice(&r.body)
            .map_err(|e| format!("body is not JSON ({e}), expected field {field:?}"))?;
        let mut v = &doc;
        for part in field.split('.') {
            v = v
                .get(part)
                .ok_or_else(|| format!("JSON field {field:?} is missing"))?;
        }
        let got = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(want) = &self.json_value {
            if &got != want {
                return Err(format!(
                    "JSON field {field:?} is {got:?}, expected {want:?}"
                ));
            }
        }
        Ok(Some(got))
    }
}

/// One health probe's outcome.
#[derive(Debug, Clone)]
pub enum Probe {
    Healthy {
        resp: Response,
        field: Option<String>,
    },
    /// It answered, but not as expected.
    Unhealthy { resp: Response, reason: String },
    /// No answer (refused, timed out, reset).
    Unreachable(String),
}

impl Probe {
    pub fn is_healthy(&self) -> bool {
        matches!(self, Probe::Healthy { .. })
    }
    pub fn describe(&self) -> String {
        match self {
            Probe::Healthy { resp, field } => match field {
                Some(f) => format!(
                    "HTTP {} in {}ms ({f})",
                    resp.status,
                    resp.elapsed.as_millis()
                ),
                None => format!("HTTP {} in {}ms", resp.status, resp.elapsed.as_millis()),
            },
            Probe::Unhealthy { resp, reason } => {
                format!("{reason} ({}ms)", resp.elapsed.as_millis())
            }
            Probe::Unreachable(e) => e.clone(),
        }
    }
}

/// GETs the health URL once (messages name it with its path).
pub fn probe(url: &str, expect: &HealthExpect, timeout: Duration) -> Probe {
    let shown = describe_url_with_path(url);
    match request_shown_as("GET", url, &shown, Body::None, timeout, Proxy::Direct) {
        Err(e) => Probe::Unreachable(format!("{e:#}")),
        Ok(resp) => match expect.check(&resp) {
            Ok(field) => Probe::Healthy { resp, field },
            Err(reason) => Probe::Unhealthy { resp, reason },
        },
    }
}

/// The result of waiting for health.
#[derive(Debug, Clone)]
pub struct HealthWait {
    pub attempts: u32,
    pub elapsed: Duration,
    pub last: Probe,
}

/// Polls the health URL with exponential backoff (50 ms doubling to 2 s), each
/// request bounded by `per_request` and by what is left of `deadline`, until
/// it is healthy (Ok) or the deadline passes (Err naming the last answer).
pub fn wait_for_health(
    url: &str,
    expect: &HealthExpect,
    per_request: Duration,
    deadline: Instant,
) -> Result<HealthWait> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(50);
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = per_request.min(left).max(Duration::from_millis(100));
        attempts += 1;
        let last = probe(url, expect, timeout);
        if last.is_healthy() {
            return Ok(HealthWait {
                attempts,
                elapsed: started.elapsed(),
                last,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "{} not healthy after {attempts} attempts over {:.1}s: {}",
                describe_url(url),
                started.elapsed().as_secs_f64(),
                last.describe()
            );
        }
        log::debug!(
            "health: {} (attempt {attempts}); next in {}ms",
            last.describe(),
            delay.as_millis()
        );
        // The last probe lands on the deadline, not a backoff step before it.
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Parses a Retry-After header: delta seconds (an HTTP date is treated as 1 s; we cap waits anyway).
pub fn retry_after(r: &Response) -> Option<Duration> {
    let v = r.header("Retry-After")?.trim();
    match v.parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => chrono::DateTime::parse_from_rfc2822(v)
            .ok()
            .map(|t| {
                let secs = (t.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
                Duration::from_secs(secs)
            })
            .or(Some(Duration::from_secs(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("retry-after".into(), "3".into())],
            body: body.as_bytes().to_vec(),
            elapsed: Duration::from_millis(5),
        }
    }

    #[test]
    fn expectations_check_status_body_and_json_field() {
        let mut e = HealthExpect {
            status: 200,
            body_contains: None,
            json_field: Some("build.version".into()),
            json_value: Some("1.4.2".into()),
        };
        let ok = resp(200, r#"{"status":"ok","build":{"version":"1.4.2"}}"#);
        assert_eq!(e.check(&ok), Ok(Some("1.4.2".into())));
        let old = resp(200, r#"{"build":{"version":"1.4.1"}}"#);
        assert!(e.check(&old).unwrap_err().contains("1.4.1"));
        assert!(e
            .check(&resp(503, "down"))
            .unwrap_err()
            .contains("HTTP 503"));
        e.json_field = None;
        e.body_contains = Some("ok".into());
        assert!(e.check(&resp(200, "fine")).is_err());
        assert_eq!(e.check(&resp(200, "ok")), Ok(None));
    }

    #[test]
    fn urls_are_described_without_path_or_credentials() {
        assert_eq!(
            describe_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            describe_url("http://user:pw@127.0.0.1:8080/health?token=x"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn health_urls_keep_their_path_but_not_credentials_or_query() {
        assert_eq!(
            describe_url_with_path("http://user:pw@127.0.0.1:8080/api/health?token=x"),
            "http://127.0.0.1:8080/api/health"
        );
        assert_eq!(
            describe_url_with_path("https://app.example/"),
            "https://app.example/"
        );
        assert_eq!(describe_url_with_path("not a url"), "<invalid URL>");
    }

    #[test]
    fn a_refused_health_probe_names_the_path() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let url = format!("http://127.0.0.1:{port}/health?k=secret");
        let expect = HealthExpect {
            status: 200,
            body_contains: None,
            json_field: None,
            json_value: None,
        };
        let p = probe(&url, &expect, Duration::from_secs(2));
        let text = p.describe();
        assert!(
            text.starts_with(&format!("http://127.0.0.1:{port}/health: ")),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(retry_after(&resp(429, "")), Some(Duration::from_secs(3)));
    }
}
