//! `disaster-recover`: a new host with only its config and the bucket gets the
//! newest verified database, application and config back, identical to the source.

use std::path::Path;

use crate::s3::s3_only;
use crate::support::app::AppStub;
use crate::support::s3::S3Server;
use crate::support::*;

/// Each file below `dir`: its relative path and its bytes.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}

#[test]
fn disaster_recover_rebuilds_a_host_from_the_bucket_alone() {
    let src = TestEnv::new("dr_source");
    let s3 = S3Server::start("dr");
    s3_only(&src, &s3, "");
    std::fs::create_dir_all(src.root().join("etc/nginx")).unwrap();
    std::fs::write(
        src.root().join("etc/nginx/site.conf"),
        "server { listen 80; }\n",
    )
    .unwrap();
    let (db_id, _) = src.backup("db");
    src.backup("app");
    src.backup("config");
    let r = src.run(&["verify-backup", "--all"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let tracks = count(&src.db, "tracks");
    // A newer database backup that nobody verified: recovery must not pick it.
    psql(
        &src.db,
        "INSERT INTO users (email) VALUES ('late@example.com')",
    );
    let (newer, _) = src.backup("db");
    assert_ne!(newer, db_id);

    // The new host: its config, the passphrase, an empty database, no app or config dirs.
    let dst = TestEnv::empty("dr_target");
    s3_only(&dst, &s3, "");
    // The application on the new host: started through [app] commands, healthy once /health answers.
    let app = AppStub::new(&dst.root().join("run-app"));
    let mut text = std::fs::read_to_string(&dst.config_path).unwrap();
    text.push_str(&app.app_config("ready_timeout_secs = 20"));
    std::fs::write(&dst.config_path, text).unwrap();
    std::fs::remove_dir_all(dst.root().join("app")).unwrap();
    std::fs::remove_dir_all(dst.root().join("etc")).unwrap();

    // The new host's database has another name here (both live in the test cluster):
    // without --source-db it is refused, naming the series there is.
    let r = dst.run(&["--json", "--dry-run", "disaster-recover"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains(&format!("there are backups of {}", src.db)),
        "{}",
        r.stderr()
    );
    let from = ["--source-db", src.db.as_str()];
    let r = dst.run(&[&["--json", "--dry-run", "disaster-recover"][..], &from].concat());
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let plan = r.json();
    let fetched: Vec<&str> = plan["fetch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(fetched.len(), 3, "{plan}");
    assert_eq!(fetched[0], db_id, "the newest *verified* db backup: {plan}");
    let actions: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        actions[0].starts_with("stop the application"),
        "{actions:?}"
    );
    assert!(
        actions[2].contains(&dst.root().join("app").display().to_string()),
        "{actions:?}"
    );
    assert!(
        actions[4].contains(&app.url()) && actions[4].starts_with("start"),
        "{actions:?}"
    );
    assert!(!dst.root().join("app").exists(), "dry run changed nothing");
    assert_eq!(count(&dst.db, "pg_class WHERE relname = 'tracks'"), 0);

    let r = dst.run(&[&["disaster-recover"][..], &from].concat());
    assert_eq!(r.code(), 3, "no terminal, no --yes: {}", r.stderr());
    assert!(r.stderr().contains("--yes"), "{}", r.stderr());
    assert!(!dst.root().join("app").exists());

    let r = dst.run(&[&["--json", "--yes", "disaster-recover"][..], &from].concat());
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let report = r.json();
    assert_eq!(report["restored"].as_array().unwrap().len(), 3);
    assert_eq!(report["application"]["healthy"], true, "{report}");
    assert!(app.pid().is_some_and(crate::support::app::process_alive));
    assert_eq!(count(&dst.db, "tracks"), tracks);
    assert_eq!(
        count(&dst.db, "users"),
        300,
        "the verified backup, not the newer one"
    );
    assert_eq!(
        files_of(&dst.root().join("app")),
        files_of(&src.root().join("app"))
    );
    assert_eq!(
        files_of(&dst.root().join("etc")),
        files_of(&src.root().join("etc"))
    );

    // A dry run now shows every refusal, not only the first.
    let r = dst.run(&[&["--json", "--dry-run", "disaster-recover"][..], &from].concat());
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert_eq!(
        r.json()["refused"].as_array().unwrap().len(),
        3,
        "{}",
        r.stdout()
    );
    // Again, without --clean: the targets are no longer empty; refused, nothing touched.
    let r = dst.run(&[&["--yes", "disaster-recover"][..], &from].concat());
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("--clean"), "{}", r.stderr());
    let r = dst.run(&[
        "--yes",
        "disaster-recover",
        "--skip-db",
        "--skip-app",
        "--skip-config",
    ]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
}

#[test]
fn disaster_recover_refuses_when_a_kind_has_no_verified_backup() {
    let env = TestEnv::new("dr_unverified");
    let s3 = S3Server::start("dr-unverified");
    s3_only(&env, &s3, "");
    let (id, _) = env.backup("db");
    let target = TestEnv::empty("dr_unverified_target");
    s3_only(&target, &s3, "");
    let r = target.run(&[
        "--yes",
        "disaster-recover",
        "--skip-app",
        "--skip-config",
        "--source-db",
        &env.db,
    ]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("no verified db backup"),
        "{}",
        r.stderr()
    );
    assert!(r.stderr().contains(&id), "{}", r.stderr());
    assert_eq!(count(&target.db, "pg_class WHERE relname = 'tracks'"), 0);

    let r = target.run(&[
        "--yes",
        "disaster-recover",
        "--skip-app",
        "--skip-config",
        "--allow-unverified",
        "--source-db",
        &env.db,
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target.db, "sessions"), 900);
}

#[test]
fn disaster_recover_onto_a_second_cluster_from_a_local_and_s3_repository() {
    // The usual set-up: backups written locally and to S3, `verify-backup`
    // (no --from) verifies both copies, and a new host with its own, empty
    // PostgreSQL server rebuilds from the bucket.
    let src = TestEnv::new("dr2_source");
    let s3 = S3Server::start("dr2");
    src.write_config(&s3.config_section(src.root(), ""));
    psql(
        &src.db,
        "DO $$ BEGIN CREATE ROLE tn_dr2_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
         ALTER TABLE tracks OWNER TO tn_dr2_owner; GRANT SELECT ON users TO tn_dr2_owner",
    );
    for kind in ["db", "app", "config"] {
        let r = src.run(&["--json", "backup", "--kind", kind]);
        assert_eq!(r.code(), 0, "{}", r.stderr());
        assert!(
            r.json()["written"][0]["copies"][0]
                .as_str()
                .unwrap()
                .starts_with("s3://"),
            "{}",
            r.stdout()
        );
    }
    let r = src.run(&["--json", "verify-backup"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let reports = r.json()["backups"].as_array().unwrap().clone();
    assert_eq!(reports.len(), 6, "3 kinds x (local, S3): {reports:?}");
    let in_s3 = reports
        .iter()
        .filter(|b| b["path"].as_str().unwrap().starts_with("s3://"))
        .count();
    assert_eq!(in_s3, 3, "{reports:?}");
    assert!(reports.iter().all(|b| b["ok"] == true), "{reports:?}");
    let r = src.run(&["--json", "--from", "s3", "backups", "list"]);
    let listed = r.json()["backups"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    assert!(
        listed.iter().all(|b| b["state"] == "verified"),
        "the S3 copies are verified: {listed:?}"
    );

    // The new host: a server of its own with an empty database, no app or config dirs.
    let server = TempCluster::start();
    // The same database name as on the old host, as its config says.
    server.psql("postgres", &format!("CREATE DATABASE {}", src.db));
    let dst = TestEnv::empty("dr2_target");
    dst.write_config(&s3.config_section(dst.root(), ""));
    let text = std::fs::read_to_string(&dst.config_path).unwrap();
    let text = text
        .replace(
            &format!("port = {}\n", cluster().port),
            &format!("port = {}\n", server.port),
        )
        .replace(
            &format!("name = \"{}\"", dst.db),
            &format!("name = \"{}\"", src.db),
        );
    std::fs::write(&dst.config_path, text).unwrap();
    std::fs::remove_dir_all(dst.root().join("app")).unwrap();
    std::fs::remove_dir_all(dst.root().join("etc")).unwrap();

    // The backup's objects belong to a role this server lacks: refused with what to do, nothing restored.
    let r = dst.run(&["--yes", "disaster-recover"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("\"tn_dr2_owner\"") && r.stderr().contains("--no-owner"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        server.psql(
            &src.db,
            "SELECT count(*) FROM pg_class WHERE relname = 'tracks'"
        ),
        "0",
        "one transaction: nothing half-restored"
    );
    assert!(
        !dst.root().join("app").exists(),
        "the directories come after the database"
    );

    let r = dst.run(&["--json", "--yes", "disaster-recover", "--no-owner"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    for table in ["users", "tracks", "sessions"] {
        assert_eq!(
            server.psql(&src.db, &format!("SELECT count(*) FROM {table}")),
            count(&src.db, table).to_string(),
            "{table}"
        );
    }
    assert_eq!(
        server.psql(
            &src.db,
            "SELECT md5(string_agg(email, ',' ORDER BY email)) FROM users"
        ),
        psql(
            &src.db,
            "SELECT md5(string_agg(email, ',' ORDER BY email)) FROM users"
        ),
        "the same rows, not only as many"
    );
    assert_eq!(
        files_of(&dst.root().join("app")),
        files_of(&src.root().join("app"))
    );
    assert_eq!(
        files_of(&dst.root().join("etc")),
        files_of(&src.root().join("etc"))
    );
}
