//! `diagnose` against real parts: the app stub, the harness's PostgreSQL with a
//! lock wait and a long-running query in progress, real logs full of canary
//! secrets in several encodings, an SMTP sink for the emailed bundle and
//! s3s-fs for the upload. The extracted bundle is grepped for every canary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::support::app::AppStub;
use crate::support::receiver::SmtpSink;
use crate::support::s3::S3Server;
use crate::support::{cluster, psql, write_secret, TestEnv, PASSPHRASE};

const DB_PW: &str = "CANARYdbpw-Zq9x";
const SLACK: &str = "CANARYslackTOKEN42abc";
const PD_KEY: &str = "CANARYpdROUTING77key";
const SMTP_PW: &str = "CANARYsmtp%pw 55/+";
const API_TOKEN: &str = "CANARYapitoken-31zz";
const URL_PW: &str = "CANARYurlpw-8d";
// Secrets the tool does not know, caught by patterns only.
const BEARER: &str = "eyJhbGciOiJIUzI1NiJ9.CANARYbearerSecret";
const BASIC_PW: &str = "CANARYbasicpw-77";
const JSON_TOKEN: &str = "CANARYjsontoken-5q";
const JSON_KEY: &str = "CANARYapikey-9w";

fn encodings(secret: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let pct = |upper: bool| -> String {
        secret
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else if upper {
                    format!("%{b:02X}")
                } else {
                    format!("%{b:02x}")
                }
            })
            .collect()
    };
    let mut v = vec![
        secret.to_string(),
        pct(true),
        pct(false),
        b64.encode(secret),
    ];
    v.push(b64.encode(format!("user:{secret}")));
    v.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    v
}

fn all_canaries() -> Vec<&'static str> {
    vec![
        DB_PW, SLACK, PD_KEY, SMTP_PW, API_TOKEN, URL_PW, PASSPHRASE, BEARER, BASIC_PW, JSON_TOKEN,
        JSON_KEY,
    ]
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    crate::support::files_under(dir)
}

/// Extracts a bundle with tar(1) and returns its top directory.
fn extract(bundle: &Path, into: &Path) -> PathBuf {
    std::fs::create_dir_all(into).unwrap();
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(bundle)
        .arg("-C")
        .arg(into)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_dir(into)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
}

fn assert_clean(dir: &Path, canaries: &[&str]) {
    let files = walk(dir);
    assert!(files.len() >= 10, "{files:?}");
    for f in files {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for c in canaries {
            for form in encodings(c) {
                assert!(
                    !text.contains(&form),
                    "{} contains canary {c:?} as {form:?}",
                    f.display()
                );
            }
        }
    }
}

struct Sessions(Vec<Child>, String);

impl Drop for Sessions {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
        psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                self.1
            ),
        );
    }
}

fn psql_bg(db: &str, sql: &str) -> Child {
    Command::new("psql")
        .args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(cluster().port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql)
        .env_remove("PGPASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn setup(name: &str, extra: &str) -> (TestEnv, AppStub, SmtpSink) {
    let env = TestEnv::empty(name);
    let mut app = AppStub::new(env.root());
    app.spawn();
    let smtp = SmtpSink::start();
    let root = env.root().display().to_string();
    write_secret(
        &env.root().join("slack-url"),
        &format!("http://127.0.0.1:9/services/T0/B0/{SLACK}"),
    );
    // The application log: filler, then canaries in every encoding, and a URL password we do not know.
    let mut log: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    for c in [DB_PW, SLACK, PD_KEY, SMTP_PW, API_TOKEN, PASSPHRASE] {
        let e = encodings(c);
        log.push_str(&format!(
            "leak plain={} pct={} pctl={} b64={} basic=Basic {} form={}\n",
            e[0], e[1], e[2], e[3], e[4], e[5]
        ));
    }
    log.push_str(&format!(
        "connecting to postgres://admin:{URL_PW}@db.internal:5432/tuneton\n"
    ));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("user:{BASIC_PW}"));
    log.push_str(&format!("GET /api/v1/me Authorization: Bearer {BEARER}\n"));
    log.push_str(&format!(
        "curl -H 'authorization: basic {basic}' http://backend/\n"
    ));
    log.push_str(&format!("upstream refused bearer {BEARER} (expired)\n"));
    log.push_str(&format!(
        "payload {{\"token\": \"{JSON_TOKEN}\", \"apiKey\":\"{JSON_KEY}\", \"user\": \"bob\"}}\n"
    ));
    std::fs::write(env.root().join("app.log"), log).unwrap();
    env.write_config(&format!(
        "{}\n[diagnose]\nout_dir = \"{root}/diag\"\nlog_lines = 20\nlong_query_secs = 0\nconnect_timeout_secs = 2\n{extra}\n\
         [alerts]\nhost_name = \"testhost\"\n\n[alerts.slack]\nwebhook_url_file = \"{root}/slack-url\"\n\n\
         [alerts.pagerduty]\nevents_url = \"http://127.0.0.1:9/pd\"\n\n\
         [alerts.email]\nto = [\"incident@example.com\"]\nfrom = \"ops@example.com\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_user = \"ops\"\n",
        app.app_config(&format!("log_files = [\"{root}/app.log\"]")),
        smtp.port
    ));
    (env, app, smtp)
}

fn run_with_secrets(env: &TestEnv, args: &[&str]) -> crate::support::Run {
    crate::support::Run(
        env.cmd(args)
            .env("PGPASSWORD", DB_PW)
            .env("PAGERDUTY_ROUTING_KEY", PD_KEY)
            .env("SMTP_PASSWORD", SMTP_PW)
            .env("APP_API_TOKEN", API_TOKEN)
            .output()
            .unwrap(),
    )
}

#[test]
fn the_bundle_holds_every_part_and_no_secret_in_any_encoding() {
    let (env, app, smtp) = setup("diag_bundle", "");
    // A lock wait and a long-running query (whose text carries a canary) in progress.
    psql(&env.db, "CREATE TABLE diag_locked (id int)");
    let mut sessions = Sessions(Vec::new(), env.db.clone());
    sessions.0.push(psql_bg(&env.db, &format!("BEGIN; LOCK TABLE diag_locked IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60), '{DB_PW}';")));
    let deadline = Instant::now() + Duration::from_secs(10);
    while psql(&env.db, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'diag_locked' AND l.granted") != "1" {
        assert!(Instant::now() < deadline, "lock not taken");
        std::thread::sleep(Duration::from_millis(20));
    }
    sessions
        .0
        .push(psql_bg(&env.db, "SELECT count(*) FROM diag_locked"));
    while psql(&env.db, "SELECT count(*) FROM pg_locks WHERE NOT granted") == "0" {
        assert!(Instant::now() < deadline, "no lock wait");
        std::thread::sleep(Duration::from_millis(20));
    }

    let r = run_with_secrets(&env, &["--json", "diagnose"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    for c in all_canaries() {
        assert!(
            !r.stdout().contains(c) && !r.stderr().contains(c),
            "output leaks {c}"
        );
    }
    let doc = r.json();
    let bundle = PathBuf::from(doc["bundle"].as_str().unwrap());
    assert!(bundle.starts_with(env.root().join("diag")));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let dir = extract(&bundle, &env.root().join("x1"));
    assert_clean(&dir, &all_canaries());

    let read =
        |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_else(|e| panic!("{n}: {e}"));
    for n in [
        "index.json",
        "service.txt",
        "processes.txt",
        "disks.txt",
        "memory-load.txt",
        "health.json",
        "network.txt",
        "database.txt",
        "versions.txt",
        "config.txt",
    ] {
        assert!(dir.join(n).exists(), "{n} missing");
    }
    assert!(
        read("service.txt").contains("state: running"),
        "{}",
        read("service.txt")
    );
    let pid = app.pid().unwrap();
    assert!(read("processes.txt")
        .lines()
        .any(|l| l.trim_start().starts_with(&format!("{pid} ")) && l.contains("app_stub.py")));
    let db = read("database.txt");
    let locks = db
        .split("== locks waiting")
        .nth(1)
        .unwrap()
        .split("\n== ")
        .next()
        .unwrap();
    assert!(
        locks.contains("diag_locked") && locks.contains("AccessShareLock"),
        "{db}"
    );
    let long = db.split("== queries running longer").nth(1).unwrap();
    assert!(
        long.contains("pg_sleep(60)") && long.contains("<redacted:database.password>"),
        "{db}"
    );
    let net = read("network.txt");
    assert!(
        net.contains(&format!("database 127.0.0.1:{}", cluster().port))
            && net.contains("connected in"),
        "{net}"
    );
    assert!(net.contains(&format!("app health URL 127.0.0.1:{}", app.port)));
    let log_name = format!(
        "logs/{}_app.log",
        env.root()
            .display()
            .to_string()
            .trim_start_matches('/')
            .replace('/', "_")
    );
    let log = read(&log_name);
    assert!(
        log.contains("line 300\n") && log.contains("line 292\n") && !log.contains("line 291\n"),
        "{log}"
    );
    // The header and JSON lines keep their shape; only the credentials went.
    assert!(
        log.contains("GET /api/v1/me Authorization: Bearer <redacted>\n"),
        "{log}"
    );
    assert!(log.contains("'authorization: basic <redacted>'"), "{log}");
    assert!(
        log.contains("upstream refused bearer <redacted> (expired)"),
        "{log}"
    );
    assert!(
        log.contains("\"token\": \"<redacted>\", \"apiKey\":\"<redacted>\", \"user\": \"bob\""),
        "{log}"
    );
    assert!(
        log.contains("postgres://admin:<redacted>@db.internal:5432/tuneton"),
        "{log}"
    );
    assert!(
        read("config.txt").contains("alerts.slack.webhook_url = \"<redacted>\""),
        "{}",
        read("config.txt")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&read("health.json")).unwrap()["checks"][0]
            ["name"],
        "service"
    );

    // The index names what was redacted, with counts, never values.
    let index: serde_json::Value = serde_json::from_str(&read("index.json")).unwrap();
    let count = |name: &str| {
        index["redacted"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {}", index["redacted"]))["count"]
            .as_u64()
            .unwrap()
    };
    for name in [
        "database.password",
        "alerts.pagerduty.routing_key",
        "alerts.email.smtp_password",
        "environment APP_API_TOKEN",
        "encryption.passphrase",
    ] {
        assert!(count(name) >= 5, "{name}: {}", index["redacted"]);
    }
    assert!(count("alerts.slack.webhook_url (token)") >= 5);
    assert!(count("url-userinfo-password") >= 1);
    assert!(count("authorization-header") >= 2, "{}", index["redacted"]);
    assert!(count("bearer-token") >= 1, "{}", index["redacted"]);
    assert!(index["parts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["truncated"] == false));

    // Capped parts, and the bundle emailed as an attachment through the SMTP sink.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(
            "long_query_secs = 0",
            "long_query_secs = 0\npart_max_bytes = 2048",
        ),
    )
    .unwrap();
    let out = env.root().join("elsewhere/b.tar.gz");
    let args = [
        "--json",
        "diagnose",
        "--email",
        "--out",
        out.to_str().unwrap(),
    ];
    // --out in a directory that does not exist: could not start, nothing created, no mail.
    let r = run_with_secrets(&env, &args);
    assert_eq!(r.code(), 3, "{}\n{}", r.stdout(), r.stderr());
    let err = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "directory {} does not exist (not created",
            env.root().join("elsewhere").display()
        )),
        "{err}"
    );
    assert!(!env.root().join("elsewhere").exists());
    assert!(smtp.mails().is_empty());
    std::fs::create_dir(env.root().join("elsewhere")).unwrap();
    let r = run_with_secrets(&env, &args);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let bundle = env.root().join("elsewhere/b.tar.gz");
    let dir = extract(&bundle, &env.root().join("x2"));
    assert_clean(&dir, &all_canaries());
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let procs = index["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "processes.txt")
        .unwrap()
        .clone();
    assert_eq!(procs["truncated"], true, "{index}");
    assert!(std::fs::metadata(dir.join("processes.txt")).unwrap().len() <= 2048);
    let mails = smtp.mails();
    assert_eq!(mails.len(), 1);
    let data = &mails[0].data;
    assert!(
        data.contains("Subject: [INFO] diagnostic bundle from testhost"),
        "{data}"
    );
    for c in all_canaries() {
        assert!(!data.contains(c), "mail leaks {c}");
    }
    let b64: String = data
        .split("Content-Transfer-Encoding: base64")
        .nth(1)
        .unwrap()
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("--")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let attached = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        attached,
        std::fs::read(&bundle).unwrap(),
        "the attachment is the bundle"
    );
    drop(sessions);
}

#[test]
fn the_bundle_can_be_uploaded_to_the_s3_repository() {
    let s3 = S3Server::start("diagnose");
    let env = TestEnv::empty("diag_upload");
    let app = AppStub::new(env.root());
    let root = env.root().display().to_string();
    env.write_config(&format!(
        "{}\n[diagnose]\nout_dir = \"{root}/diag\"\nconnect_timeout_secs = 2\n\n{}",
        app.app_config(""),
        s3.config_section(env.root(), "")
    ));
    let r = env.run(&["--json", "diagnose", "--upload"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    let bundle = PathBuf::from(doc["bundle"].as_str().unwrap());
    let name = bundle.file_name().unwrap().to_string_lossy().to_string();
    let key = format!("tuneton/diagnostics/{name}");
    assert_eq!(doc["uploaded"], format!("s3://{}/{key}", s3.bucket));
    let got = s3.client().get_object(&key).unwrap();
    assert_eq!(
        got.bytes().as_ref(),
        std::fs::read(&bundle).unwrap().as_slice()
    );
    // The service is down: the bundle says so, and the S3 secret is not in it.
    let dir = extract(&bundle, &env.root().join("x"));
    assert!(std::fs::read_to_string(dir.join("service.txt"))
        .unwrap()
        .contains("state: stopped"));
    let secret = s3.secret_key.clone();
    assert_clean(&dir, &[secret.as_str()]);
}
