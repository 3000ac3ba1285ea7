//! Alerts through real channels: an HTTP receiver standing in for Slack and
//! PagerDuty (recording requests, answering 429/500/400 on demand) and an SMTP
//! sink; `health --alert` state changes, `notify test`, retries, a failing
//! channel, and `alerts.alert_on_failure` for other commands.

use std::time::{Duration, Instant};

use crate::support::app::AppStub;
use crate::support::receiver::{Receiver, Reply, SmtpSink};
use crate::support::{write_secret, TestEnv};

const SLACK_TOKEN: &str = "CANARYslack77tokenXYZ";
const PD_KEY: &str = "CANARYpdkey0123456789abcdef";
const SMTP_PW: &str = "CANARYsmtp-pw-4242";

struct Alerting {
    env: TestEnv,
    app: AppStub,
    recv: Receiver,
    smtp: SmtpSink,
}

fn alerting(name: &str, extra: &str) -> Alerting {
    let env = TestEnv::empty(name);
    let mut app = AppStub::new(env.root());
    app.spawn();
    let recv = Receiver::start();
    let smtp = SmtpSink::start();
    let root = env.root().display().to_string();
    write_secret(
        &env.root().join("slack-url"),
        &recv.url(&format!("/slack/services/T000/B000/{SLACK_TOKEN}")),
    );
    write_secret(&env.root().join("pd-key"), PD_KEY);
    write_secret(&env.root().join("smtp-pw"), SMTP_PW);
    env.write_config(&format!(
        "{}\n[health]\nstate_file = \"{root}/state/health.json\"\n\n\
         [alerts]\nhost_name = \"testhost\"\nrequest_timeout_secs = 2\nretry_deadline_secs = 5\n{extra}\n\
         [alerts.slack]\nwebhook_url_file = \"{root}/slack-url\"\n\n\
         [alerts.pagerduty]\nevents_url = \"{}\"\nrouting_key_file = \"{root}/pd-key\"\n\n\
         [alerts.email]\nto = [\"oncall@example.com\"]\nfrom = \"ops@example.com\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\n\
         smtp_user = \"alerts\"\nsmtp_password_file = \"{root}/smtp-pw\"\n",
        app.app_config(""),
        recv.url("/pd/v2/enqueue"),
        smtp.port
    ));
    Alerting {
        env,
        app,
        recv,
        smtp,
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [SLACK_TOKEN, PD_KEY, SMTP_PW] {
        assert!(!text.contains(s), "{what} leaks a secret: {text}");
    }
}

#[test]
fn health_alert_is_sent_once_per_state_change_and_resolved_on_recovery() {
    let a = alerting("notify_state", "");
    let run = || {
        a.env
            .run(&["--json", "health", "--alert", "--check", "http"])
    };

    // OK and nothing known before: nothing to say.
    let r = run();
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert!(a.recv.requests("/").is_empty());

    // OK -> CRITICAL: one message per channel.
    a.app.set("status", "503");
    let r = run();
    assert_eq!(r.code(), 2, "{}", r.stdout());
    assert_no_secret("stdout", &r.stdout());
    assert_no_secret("stderr", &r.stderr());
    let slack = a.recv.requests("/slack");
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*[CRITICAL]* http CRITICAL on testhost: unhealthy: HTTP 503"),
        "{text}"
    );
    let pd = a.recv.requests("/pd");
    assert_eq!(pd.len(), 1);
    let trigger = pd[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], PD_KEY);
    assert_eq!(trigger["dedup_key"], "tuneton-ops:testhost:health:http");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "testhost");
    let mails = a.smtp.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["oncall@example.com"]);
    assert!(
        mails[0]
            .data
            .contains("Subject: [CRITICAL] http CRITICAL on testhost"),
        "{}",
        mails[0].data
    );
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD
        .decode(mails[0].auth.as_ref().unwrap())
        .unwrap();
    assert_eq!(auth, format!("\0alerts\0{SMTP_PW}").into_bytes());
    let doc = r.json();
    assert_eq!(doc["alerts"][0]["from"], "OK");
    assert_eq!(doc["alerts"][0]["to"], "CRITICAL");

    // Still CRITICAL: not told again.
    assert_eq!(run().code(), 2);
    assert_eq!(a.recv.requests("/slack").len(), 1);
    assert_eq!(a.recv.requests("/pd").len(), 1);
    assert_eq!(a.smtp.mails().len(), 1);

    // Recovery: resolve with the same dedup_key, and a RESOLVED message.
    a.app.set("status", "200");
    let r = run();
    assert_eq!(r.code(), 0, "{}", r.stdout());
    let pd = a.recv.requests("/pd");
    assert_eq!(pd.len(), 2);
    let resolve = pd[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    let slack = a.recv.requests("/slack");
    assert_eq!(slack.len(), 2);
    assert!(slack[1].json()["text"]
        .as_str()
        .unwrap()
        .starts_with("*[RESOLVED]* http recovered on testhost (was CRITICAL)"));
    assert!(a.smtp.mails()[1]
        .data
        .contains("Subject: [RESOLVED] http recovered"));
    assert_eq!(run().code(), 0);
    assert_eq!(
        a.recv.requests("/").len(),
        4,
        "nothing more once OK is announced"
    );

    // The state file is 0600 and holds no secret; the job log neither.
    use std::os::unix::fs::PermissionsExt;
    let state = a.env.root().join("state/health.json");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_no_secret("state file", &std::fs::read_to_string(&state).unwrap());
    let log = std::fs::read_to_string(a.env.root().join("log/health.log")).unwrap();
    assert!(
        log.contains("alert http OK -> CRITICAL sent via slack"),
        "{log}"
    );
    assert_no_secret("health.log", &log);
}

#[test]
fn slack_429_and_500_are_retried_until_it_answers() {
    let a = alerting("notify_retry", "");
    a.recv.reply_once(
        "/slack",
        Reply::new(429, "rate_limited").header("Retry-After", "1"),
    );
    a.recv.reply_once("/slack", Reply::new(500, "oops"));
    let started = Instant::now();
    let r = a.env.run(&["--json", "notify", "test", "slack"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let d = &r.json()["deliveries"][0];
    assert_eq!(d["channel"], "slack");
    assert_eq!(d["ok"], true);
    assert_eq!(d["attempts"], 3);
    let reqs = a.recv.requests("/slack");
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(reqs[2].json()["text"]
        .as_str()
        .unwrap()
        .contains("test message from testhost"));
    assert!(a.recv.requests("/pd").is_empty(), "only the named channel");
    assert_no_secret("stdout", &r.stdout());
    assert_no_secret("stderr", &r.stderr());
}

#[test]
fn a_failing_channel_is_reported_and_the_others_still_send() {
    let a = alerting("notify_failing", "");
    a.recv
        .reply_always("/pd", Reply::new(400, "{\"status\":\"invalid event\"}"));
    let r = a.env.run(&["--json", "notify", "test"]);
    assert_eq!(r.code(), 2, "{}", r.stdout());
    let doc = r.json();
    let by = |c: &str| {
        doc["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel"] == c)
            .unwrap()
            .clone()
    };
    assert_eq!(by("pagerduty")["ok"], false);
    assert!(
        by("pagerduty")["detail"]
            .as_str()
            .unwrap()
            .contains("HTTP 400"),
        "{doc}"
    );
    assert_eq!(by("pagerduty")["attempts"], 1, "a 400 is not retried");
    assert_eq!(by("slack")["ok"], true);
    assert_eq!(by("email")["ok"], true);
    assert_eq!(a.recv.requests("/slack").len(), 1);
    assert_eq!(a.smtp.mails().len(), 1);

    // In health --alert: a channel that missed a state change is tried again on
    // the next run; the channels that got it are not told twice.
    let health = || {
        a.env
            .run(&["--json", "health", "--alert", "--check", "http"])
    };
    let pd_ok = || {
        a.recv
            .reply_always("/pd", Reply::new(202, "{\"status\":\"success\"}"))
    };
    let pd_fails = || {
        a.recv
            .reply_always("/pd", Reply::new(400, "{\"status\":\"invalid event\"}"))
    };
    let counts = || {
        (
            a.recv.requests("/slack").len(),
            a.recv.requests("/pd").len(),
        )
    };
    a.app.set("status", "500");
    assert_eq!(health().code(), 2);
    assert_eq!(counts(), (2, 2));
    assert_eq!(health().code(), 2);
    assert_eq!(counts(), (2, 3), "pagerduty retried, slack not repeated");
    pd_ok();
    assert_eq!(health().code(), 2);
    assert_eq!(counts(), (2, 4));
    assert_eq!(a.recv.requests("/pd")[3].json()["event_action"], "trigger");
    assert_eq!(health().code(), 2);
    assert_eq!(counts(), (2, 4), "everyone knows: nothing sent");
    // Recovery while PagerDuty fails: checks OK, exit 1 because a channel could not be told.
    pd_fails();
    a.app.set("status", "200");
    let r = health();
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert_eq!(counts(), (3, 5));
    pd_ok();
    assert_eq!(health().code(), 0);
    assert_eq!(counts(), (3, 6));
    assert_eq!(a.recv.requests("/pd")[5].json()["event_action"], "resolve");
}

#[test]
fn alert_on_failure_reports_a_failed_backup() {
    let a = alerting("notify_on_failure", "alert_on_failure = true");
    // A database nobody listens on: the backup fails at once.
    let out = a
        .env
        .cmd(&["backup", "--kind", "db"])
        .env("DB_PORT", crate::support::free_port().to_string())
        .output()
        .unwrap();
    let r = crate::support::Run(out);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let slack = a.recv.requests("/slack");
    assert_eq!(slack.len(), 1, "{}", r.stderr());
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*[CRITICAL]* tuneton-ops backup failed on testhost (exit 2)"),
        "{text}"
    );
    assert!(text.contains("cannot connect to PostgreSQL"), "{text}");
    assert_eq!(
        a.recv.requests("/pd")[0].json()["dedup_key"],
        "tuneton-ops:testhost:job:backup"
    );
    // A successful read-only command sends nothing.
    assert_eq!(a.env.run(&["backups", "list"]).code(), 0);
    assert_eq!(a.recv.requests("/slack").len(), 1);

    // Neither a dry run nor a run that finds the lock held pages anyone.
    let out = a
        .env
        .cmd(&["--dry-run", "disaster-recover"])
        .env("DB_PORT", crate::support::free_port().to_string())
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    // Another run holds the backup lock (here: this test, with flock(2)).
    std::fs::create_dir_all(a.env.root().join("run")).unwrap();
    let holder = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(a.env.root().join("run/backup.lock"))
        .unwrap();
    // SAFETY: flock(2) on a descriptor we own.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&holder), libc::LOCK_EX) },
        0
    );
    let r = a.env.run(&["backup", "--kind", "db"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("in progress"), "{}", r.stderr());
    drop(holder);
    assert_eq!(
        a.recv.requests("/slack").len(),
        1,
        "no alert for a dry run or a held lock"
    );

    // The next successful backup resolves the incident, once.
    let r = a.env.run(&["backup", "--kind", "db"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let pd = a.recv.requests("/pd");
    assert_eq!(pd.len(), 2, "{pd:?}");
    assert_eq!(pd[1].json()["event_action"], "resolve");
    assert_eq!(pd[1].json()["dedup_key"], "tuneton-ops:testhost:job:backup");
    assert_eq!(a.recv.requests("/slack").len(), 2);
    assert_eq!(a.env.run(&["backup", "--kind", "db"]).code(), 0);
    assert_eq!(a.recv.requests("/pd").len(), 2, "resolved only once");
}

#[test]
fn email_through_the_local_sendmail() {
    let env = TestEnv::empty("notify_sendmail");
    let root = env.root().display().to_string();
    // A stand-in MTA: records its arguments and the message it is handed on stdin.
    let mta = env.root().join("sendmail");
    std::fs::write(
        &mta,
        format!("#!/bin/sh\necho \"$@\" > {root}/mta-args\ncat > {root}/mta-message\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&mta, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.write_config(&format!(
        "[alerts]\nhost_name = \"testhost\"\nretry_deadline_secs = 2\n\n[alerts.email]\nto = [\"a@example.com\", \"b@example.com\"]\nfrom = \"ops@example.com\"\ntransport = \"sendmail\"\nsendmail_path = \"{}\"\n",
        mta.display()
    ));
    let r = env.run(&["--json", "notify", "test", "email"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert_eq!(
        std::fs::read_to_string(env.root().join("mta-args"))
            .unwrap()
            .trim(),
        "-i -t"
    );
    let msg = std::fs::read_to_string(env.root().join("mta-message")).unwrap();
    assert!(msg.contains("To: a@example.com, b@example.com\n"), "{msg}");
    assert!(
        msg.contains("Subject: [INFO] tuneton-ops test message from testhost\n"),
        "{msg}"
    );
    assert!(!msg.contains('\r'), "sendmail gets local line ends");
    // An MTA that fails is reported as a failed channel (exit 2), not a crash.
    std::fs::write(&mta, "#!/bin/sh\necho 'queue full' >&2\nexit 75\n").unwrap();
    let started = std::time::Instant::now();
    let r = env.run(&["--json", "notify", "test"]);
    assert_eq!(r.code(), 2);
    let d = &r.json()["deliveries"][0];
    assert!(
        d["detail"].as_str().unwrap().contains("queue full"),
        "{}",
        r.stdout()
    );
    assert!(
        d["attempts"].as_u64().unwrap() >= 2,
        "EX_TEMPFAIL is retried: {d}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "within alerts.retry_deadline_secs"
    );
    std::fs::write(&mta, "#!/bin/sh\necho 'no such user' >&2\nexit 67\n").unwrap();
    let r = env.run(&["--json", "notify", "test"]);
    assert_eq!(r.code(), 2);
    assert_eq!(
        r.json()["deliveries"][0]["attempts"],
        1,
        "EX_NOUSER is not retried"
    );
    // No channel at all: could not start.
    env.write_config("");
    let r = env.run(&["notify", "test"]);
    assert_eq!(r.code(), 3);
    assert!(
        r.stderr().contains("no alert channel is configured"),
        "{}",
        r.stderr()
    );
}
