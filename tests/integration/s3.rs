//! The S3 repository against a real S3-compatible server (s3s-fs by default;
//! any endpoint through TUNETON_TEST_S3_* variables).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::s3::S3Server;
use crate::support::*;

pub fn s3_only(env: &TestEnv, s3: &S3Server, extra: &str) {
    let section = s3.config_section(env.root(), extra);
    env.write_config(&format!(
        "{section}\n[encryption]\nmode = \"symmetric\"\npassphrase_file = \"{}\"\n",
        env.root().join("passphrase").display()
    ));
    // repository.local lives in [repository], which write_config already wrote: flip it there.
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replacen("[repository]\n", "[repository]\nlocal = false\n", 1),
    )
    .unwrap();
}

#[test]
fn s3_round_trip_backup_list_verify_restore() {
    let env = TestEnv::new("s3_round_trip");
    let s3 = S3Server::start("round-trip");
    s3_only(&env, &s3, "");
    let (id, location) = env.backup("db");
    assert!(
        location
            .to_string_lossy()
            .starts_with(&format!("s3://{}/tuneton/database/", s3.bucket)),
        "{}",
        location.display()
    );
    let keys = s3.keys();
    assert!(
        keys.contains(&format!("tuneton/database/{id}.manifest.json")),
        "{keys:?}"
    );
    assert!(
        !env.repo().join("database").exists(),
        "S3-only: nothing local"
    );

    let list = env.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());

    let r = env.run(&["--json", "verify-backup", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(env.list()[0]["state"], "verified");

    let target = format!("{}_from_s3", env.db);
    let r = env.run(&["restore", &id, "--target-db", &target]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target, "tracks"), 1500);
    assert_eq!(count(&target, "sessions"), 900);
}

#[test]
fn local_and_s3_in_one_run_and_local_copy_deleted_only_after_verified_upload() {
    let env = TestEnv::new("s3_both");
    let s3 = S3Server::start("both");
    let section = s3.config_section(env.root(), "upload_then_delete_local = true");
    env.write_config(&section);
    let r = env.run(&["--json", "backup", "--kind", "config"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let w = &r.json()["written"][0];
    assert_eq!(w["local_deleted"], true);
    let id = w["id"].as_str().unwrap().to_string();
    assert!(w["copies"][0].as_str().unwrap().starts_with("s3://"));
    assert!(
        env.list().is_empty(),
        "local copy deleted after the verified upload"
    );
    let r = env.run(&["--json", "--from", "s3", "backups", "list"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["backups"][0]["id"], id.as_str());
    let r = env.run(&["--from", "s3", "verify-backup", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
}

#[test]
fn killed_server_mid_upload_keeps_local_copy_and_publishes_no_manifest() {
    let env = TestEnv::new("s3_killed");
    let mut s3 = S3Server::start("killed");
    if !s3.is_local() {
        eprintln!("skipped: needs a server this test can kill");
        return;
    }
    // An incompressible 48 MiB application: several 5 MiB parts.
    let mut noise = vec![0u8; 48 << 20];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").unwrap(),
        &mut noise,
    )
    .unwrap();
    std::fs::write(env.root().join("app/dist/big.bin"), &noise).unwrap();
    env.write_config(&s3.config_section(env.root(), "part_size_mib = 5"));
    let child = env
        .cmd(&["--json", "backup", "--kind", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once the multipart upload has stored a part: it is in flight.
    let deadline = Instant::now() + Duration::from_secs(60);
    while s3.pending_parts().is_empty() {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    s3.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the copy at") && stderr.contains("is kept"),
        "{stderr}"
    );
    // The local copy is kept and listed.
    let local = env.list();
    assert_eq!(local.len(), 1, "{local:?}");
    s3.restart();
    assert!(
        !s3.keys().iter().any(|k| k.ends_with(".manifest.json")),
        "{:?}",
        s3.keys()
    );
    let r = env.run(&["--json", "--from", "s3", "backups", "list"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        r.json()["backups"].as_array().unwrap().len(),
        0,
        "nothing partial is listed"
    );
    assert!(
        !s3.pending_parts().is_empty(),
        "the killed upload's parts are still on the server"
    );
    // The next run aborts the upload the interrupted run left, and succeeds.
    let r = env.run(&["backup", "--kind", "app"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains("from an interrupted run: s3://"),
        "{}",
        r.stderr()
    );
    assert_eq!(s3.pending_parts(), Vec::<String>::new(), "aborted");
    let r = env.run(&["--json", "--from", "s3", "backups", "list"]);
    assert_eq!(r.json()["backups"].as_array().unwrap().len(), 1);
}

#[test]
fn one_byte_changed_in_the_bucket_fails_verify_naming_the_object() {
    let env = TestEnv::new("s3_corrupt");
    let s3 = S3Server::start("corrupt");
    s3_only(&env, &s3, "");
    let (id, _) = env.backup("db");
    let key = s3
        .keys()
        .into_iter()
        .find(|k| k.ends_with(".dump.zst.gpg"))
        .unwrap();
    let client = s3.client();
    let mut bytes = client.get_object(&key).unwrap().bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    client.put_object(&key, &bytes).unwrap();
    let r = env.run(&["--json", "verify-backup", &id]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let url = format!("s3://{}/{key}", s3.bucket);
    assert_eq!(r.json()["backups"][0]["path"], url.as_str());
    assert!(r.stderr().contains(&url), "{}", r.stderr());
    let r = env.run(&["restore", &id, "--target-db", &format!("{}_bad", env.db)]);
    assert_eq!(r.code(), 2);
}

#[test]
fn wrong_secret_key_fails_fast_naming_the_setting() {
    if std::env::var("TUNETON_TEST_S3_CHECKS_SIGNATURES").is_ok_and(|v| v == "0") {
        eprintln!("skipped: this endpoint accepts any credentials (moto)");
        return;
    }
    let env = TestEnv::new("s3_wrong_key");
    let s3 = S3Server::start("wrong-key");
    s3_only(&env, &s3, "");
    write_secret(&env.root().join("s3-secret"), "definitely-not-the-secret");
    let started = Instant::now();
    let r = env.run(&["backup", "--kind", "config"]);
    assert!(matches!(r.code(), 2 | 3), "{}", r.stderr());
    assert!(
        r.stderr().contains("s3.secret_access_key_file"),
        "{}",
        r.stderr()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn an_s3_endpoint_that_never_answers_fails_within_the_configured_deadlines() {
    // Two silent endpoints: one that accepts connections and never answers, one
    // that drops every SYN (a full backlog), where the HTTP client alone would
    // wait 30 s per request.
    let accepting = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = crate::support::app::BlackHole::new();
    for (name, port) in [
        ("accepting", accepting.local_addr().unwrap().port()),
        ("dropping", hole.port),
    ] {
        let env = TestEnv::new(&format!("s3_silent_{name}"));
        write_secret(&env.root().join("s3secret"), "silent-secret");
        env.write_config(&format!(
            "[s3]\nenabled = true\nendpoint = \"http://127.0.0.1:{port}\"\nbucket = \"b\"\n\
             access_key_id = \"k\"\nsecret_access_key_file = \"{}\"\n\
             request_timeout_secs = 1\nretry_deadline_secs = 3\n",
            env.root().join("s3secret").display()
        ));
        let started = Instant::now();
        let r = env.run(&["backup", "--kind", "config"]);
        let took = started.elapsed();
        assert_eq!(r.code(), 2, "{name}: {}", r.stderr());
        assert!(
            r.stderr().contains("s3.retry_deadline_secs"),
            "{name}: {}",
            r.stderr()
        );
        // Two S3 steps (cleanup, upload), each ~1 s per attempt for 3 s; no retention
        // where the backup did not arrive.
        assert!(took < Duration::from_secs(30), "{name}: took {took:?}");
        assert!(
            r.stderr().contains("skipped: this backup did not reach it"),
            "{name}: {}",
            r.stderr()
        );
        assert_eq!(env.list().len(), 1, "{name}: the local copy is kept");
    }
}

#[test]
fn a_restore_from_s3_slower_than_the_request_timeout_still_completes() {
    // The HTTP client's timeout covers a whole response body: one GET for the
    // whole object, read as slowly as pg_restore consumes it, used to be cut off
    // at s3.request_timeout_secs. Objects are now read in ranges, each a request
    // of its own. pg_restore is stopped for 3x the request timeout mid-restore.
    let env = TestEnv::new("s3_slow_reader");
    let s3 = S3Server::start("slow-reader");
    psql(
        &env.db,
        "CREATE TABLE blobs AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 400000) g",
    );
    s3_only(&env, &s3, "");
    let (id, _) = env.backup("db");
    let size = env.list()[0]["size"].as_u64().unwrap();
    assert!(size > 12 << 20, "the object spans several ranges: {size}");
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace("request_timeout_secs = 10", "request_timeout_secs = 1"),
    )
    .unwrap();
    let target = format!("{}_slow", env.db);
    let mut child = env
        .cmd(&["restore", &id, "--target-db", &target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pg_restore = wait_for_child(&mut child, "pg_restore");
    unsafe { libc::kill(pg_restore, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    unsafe { libc::kill(pg_restore, libc::SIGCONT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&target, "blobs"), 400000);
    assert_eq!(count(&target, "tracks"), 1500);
}

#[test]
fn verify_checks_the_local_and_the_s3_copy_and_an_unreachable_store_fails_only_its_part() {
    let env = TestEnv::new("s3_verify_both");
    let mut s3 = S3Server::start("verify-both");
    env.write_config(&s3.config_section(env.root(), ""));
    let (id, _) = env.backup("config");
    let r = env.run(&["--json", "verify-backup", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let reports = r.json()["backups"].as_array().unwrap().clone();
    let repos: Vec<&str> = reports
        .iter()
        .map(|b| b["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos.len(), 2, "{reports:?}");
    assert!(repos[1].starts_with("s3://"), "{repos:?}");
    if !s3.is_local() {
        return;
    }
    // The store goes away: the local copy is still verified (and recorded), the run fails naming S3.
    s3.kill();
    let r = env.run(&["--json", "verify-backup", &id]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(doc["backups"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["backups"][0]["ok"], true, "{doc}");
    assert!(
        doc["unreadable"][0]["repository"]
            .as_str()
            .unwrap()
            .starts_with("s3://"),
        "{doc}"
    );
    assert!(
        r.stderr().contains("s3.retry_deadline_secs"),
        "{}",
        r.stderr()
    );

    // A backup made while the store was down exists only locally: once the store is
    // back, verification says its S3 copy is missing (disaster-recover reads S3).
    let r = env.run(&["--json", "backup", "--kind", "config", "--no-retention"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let local_only = r.json()["written"][0]["id"].as_str().unwrap().to_string();
    s3.restart();
    let r = env.run(&["--json", "verify-backup", &local_only]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let doc = r.json();
    assert_eq!(
        doc["backups"][0]["ok"], true,
        "the local copy is fine: {doc}"
    );
    assert!(
        doc["missing"][0]["repository"]
            .as_str()
            .unwrap()
            .starts_with("s3://"),
        "{doc}"
    );
    let r = env.run(&["verify-backup", "--kind", "config"]);
    assert_eq!(
        r.code(),
        2,
        "the newest local one has no S3 copy: {}",
        r.stdout()
    );
    assert!(r.stdout().contains("MISSING"), "{}", r.stdout());
}

#[test]
fn transient_s3_errors_are_retried_and_permanent_ones_fail_at_once_naming_the_setting() {
    let s3 = S3Server::start("faults");
    let Some(port) = s3.local_port() else {
        eprintln!("skipped: needs a local server to put the proxy in front of");
        return;
    };
    let env = TestEnv::new("s3_faults");
    let through = |proxy: &crate::support::s3::FaultyProxy| {
        let section = s3
            .config_section(env.root(), "")
            .replace(&s3.endpoint, &format!("http://127.0.0.1:{}", proxy.port))
            .replace("retry_deadline_secs = 4", "retry_deadline_secs = 30");
        s3_only(&env, &s3, "");
        // s3_only wrote the direct endpoint: point it at the proxy instead.
        let text = std::fs::read_to_string(&env.config_path).unwrap();
        let start = text.find("[s3]").unwrap();
        let end = text[start..]
            .find("\n[encryption]")
            .map(|e| start + e)
            .unwrap();
        std::fs::write(
            &env.config_path,
            format!("{}{}{}", &text[..start], section, &text[end..]),
        )
        .unwrap();
    };

    // 503 SlowDown and 500: retried with backoff, then the backup succeeds.
    for (status, code) in [
        (503, "SlowDown"),
        (500, "InternalError"),
        (429, "TooManyRequests"),
    ] {
        let proxy = crate::support::s3::FaultyProxy::start(port, 3, status, code);
        through(&proxy);
        let r = env.run(&["--json", "backup", "--kind", "config", "--no-retention"]);
        assert_eq!(r.code(), 0, "{status}: {}", r.stderr());
        assert_eq!(
            proxy.faults_left(),
            0,
            "{status}: all three faults were met"
        );
        assert!(r.stderr().contains("retrying"), "{status}: {}", r.stderr());
    }

    // Permanent: a missing bucket, a skewed clock, a wrong access key: fail at once, naming what to check.
    for (status, code, says) in [
        (404, "NoSuchBucket", "s3.bucket"),
        (403, "RequestTimeTooSkewed", "NTP"),
        (403, "InvalidAccessKeyId", "s3.access_key_id"),
    ] {
        let proxy = crate::support::s3::FaultyProxy::start(port, 1000, status, code);
        through(&proxy);
        let started = Instant::now();
        let r = env.run(&["backup", "--kind", "config", "--no-retention"]);
        assert!(matches!(r.code(), 2 | 3), "{code}: {}", r.stderr());
        assert!(r.stderr().contains(says), "{code}: {}", r.stderr());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{code}: not retried for the 30 s deadline ({:?})",
            started.elapsed()
        );
        assert!(
            proxy.answered.load(std::sync::atomic::Ordering::SeqCst) <= 3,
            "{code}: asked {} times",
            proxy.answered.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
}
