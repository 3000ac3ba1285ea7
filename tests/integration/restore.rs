//! `restore`: refuses to clobber, checks before touching, keeps the old tree.

use crate::support::*;

#[test]
fn non_empty_target_is_refused_without_clean_and_replaced_with_it() {
    let env = TestEnv::new("clean_target");
    let (id, _) = env.backup("db");
    let target = format!("{}_busy", env.db);
    psql("postgres", &format!("DROP DATABASE IF EXISTS {target}"));
    psql("postgres", &format!("CREATE DATABASE {target}"));
    psql(
        &target,
        "CREATE TABLE users (id int); INSERT INTO users VALUES (1); \
         CREATE TABLE local_notes (id int); INSERT INTO local_notes VALUES (1), (2)",
    );

    let r = env.run(&["restore", &id, "--target-db", &target]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("not empty") && r.stderr().contains("--clean"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        count(&target, "users"),
        1,
        "refused restore must not touch the target"
    );

    // --clean without --yes and without a terminal: refused, nothing changed.
    let r = env.run(&["restore", &id, "--target-db", &target, "--clean"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("--yes"), "{}", r.stderr());
    assert_eq!(count(&target, "users"), 1);

    let r = env.run(&[
        "--dry-run",
        "restore",
        &id,
        "--target-db",
        &target,
        "--clean",
    ]);
    assert_eq!(r.code(), 0);
    assert!(r.stdout().contains("would restore"), "{}", r.stdout());
    assert_eq!(count(&target, "users"), 1);

    let r = env.run(&["--yes", "restore", &id, "--target-db", &target, "--clean"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target, "users"), 300);
    assert_eq!(count(&target, "tracks"), 1500);
    // A table the backup does not contain is left alone, and said so; not a failure.
    assert_eq!(count(&target, "local_notes"), 2);
    assert!(
        r.stdout().contains("not in the backup: left as it was"),
        "{}",
        r.stdout()
    );
}

#[test]
fn parallel_restore_gives_the_same_rows() {
    let env = TestEnv::new("jobs");
    let (id, _) = env.backup("db");
    let target = format!("{}_j", env.db);
    let r = env.run(&["restore", &id, "--target-db", &target, "--jobs", "2"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target, "sessions"), 900);
    let leftovers: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tuneton-restore-")
        })
        .collect();
    assert!(
        leftovers.is_empty(),
        "the plaintext spool file must be removed"
    );
}

#[test]
fn directory_restore_moves_the_old_tree_aside_never_deletes_it() {
    let env = TestEnv::new("dir_restore");
    let (id, _) = env.backup("config");
    let target = env.root().join("etc-restored");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("local-only.conf"), "keep me").unwrap();
    let r = env.run(&["restore", &id, "--target-dir", target.to_str().unwrap()]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    let r = env.run(&[
        "--yes",
        "--json",
        "restore",
        &id,
        "--target-dir",
        target.to_str().unwrap(),
        "--clean",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        std::fs::read_to_string(target.join("tuneton.env")).unwrap(),
        "PORT=3000\n"
    );
    let aside = r.json()["moved_aside"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&aside).join("local-only.conf")).unwrap(),
        "keep me"
    );
}

#[test]
fn risky_restore_targets_are_refused_before_any_work() {
    let env = TestEnv::new("risky_targets");
    let (db_id, _) = env.backup("db");
    let (app_id, _) = env.backup("app");
    for target in ["template1", "postgres"] {
        let r = env.run(&["--yes", "restore", &db_id, "--target-db", target, "--clean"]);
        assert_eq!(r.code(), 3, "{target}: {}", r.stderr());
        assert!(r.stderr().contains("refusing"), "{}", r.stderr());
    }
    let file = env.root().join("a-file");
    std::fs::write(&file, "keep me").unwrap();
    let dotdot = format!("{}/app/../app", env.root().display());
    let long = "x".repeat(80);
    for target in ["", long.as_str()] {
        let r = env.run(&["restore", &db_id, "--target-db", target]);
        assert_eq!(r.code(), 3, "{target:?}: {}", r.stderr());
        assert!(
            r.stderr().contains("not a usable database name"),
            "{}",
            r.stderr()
        );
    }
    for target in [
        "/",
        "relative/dir",
        file.to_str().unwrap(),
        "/etc",
        "/var/lib/",
        "/usr/.",
        dotdot.as_str(),
        "/dev/shm",
    ] {
        let r = env.run(&[
            "--yes",
            "restore",
            &app_id,
            "--target-dir",
            target,
            "--clean",
        ]);
        assert_eq!(r.code(), 3, "{target}: {}", r.stderr());
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    assert!(!std::path::Path::new("relative").exists());
}

#[test]
fn restore_latest_passes_over_a_backup_that_failed_verification() {
    let env = TestEnv::new("latest_not_failed");
    let (good, _) = env.backup("db");
    psql(
        &env.db,
        "INSERT INTO users (email) VALUES ('newer@example.com')",
    );
    let (bad, path) = env.backup("db");
    // The newer backup is damaged and a verification recorded it.
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let r = env.run(&["verify-backup", &bad]);
    assert_eq!(r.code(), 2, "{}", r.stderr());

    let target = format!("{}_latest", env.db);
    let r = env.run(&["--json", "restore", "latest", "--target-db", &target]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["id"], good.as_str());
    assert!(
        r.stderr().contains(&format!("passing over {bad}")),
        "{}",
        r.stderr()
    );
    assert_eq!(count(&target, "users"), 300, "the older, good backup");

    let r = env.run(&["restore", &bad, "--target-db", &format!("{}_bad", env.db)]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("FAILED") && r.stderr().contains("verify-backup"),
        "{}",
        r.stderr()
    );
    assert!(!db_exists(&format!("{}_bad", env.db)));
}

#[test]
fn an_interrupted_restore_stops_its_tools_removes_its_spool_and_says_what_it_left() {
    let env = TestEnv::new("interrupted_restore");
    psql(
        &env.db,
        "CREATE TABLE blobs AS SELECT g AS id, md5(random()::text) || md5(random()::text) AS v \
         FROM generate_series(1, 600000) g; CREATE INDEX ON blobs (v)",
    );
    let (id, _) = env.backup("db");
    let target = format!("{}_stopped", env.db);
    let mut child = env
        .cmd(&["restore", &id, "--target-db", &target, "--jobs", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pg_restore = wait_for_child(&mut child, "pg_restore");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the restore into database {target} did not finish"
        )) && stderr.contains("DROP DATABASE"),
        "{stderr}"
    );
    // pg_restore (and its workers) are stopped, not left loading data on their own.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while pid_running(pg_restore) {
        assert!(
            std::time::Instant::now() < deadline,
            "pg_restore {pg_restore} still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The decrypted spool is gone.
    let spools: Vec<_> = std::fs::read_dir(env.root())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("tuneton-restore-")
        })
        .collect();
    assert!(spools.is_empty(), "{:?}", spools[0].path());

    // An interrupted restore test leaves its scratch database; the next one drops it.
    let mut child = env
        .cmd(&["verify-backup", &id, "--restore-test"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // This run's scratch database: tuneton_restore_test_<host>_<pid>_<random>.
    let scratch = format!(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'tuneton\\_restore\\_test\\_%\\_{}\\_%'",
        child.id()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while psql("postgres", &scratch) != "1" {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore test ended early"
        );
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    wait_for_child(&mut child, "pg_restore");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("scratch database"), "{stderr}");
    assert_eq!(psql("postgres", &scratch), "1");
    let r = env.run(&["verify-backup", &id, "--restore-test"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stderr().contains("an interrupted restore test left"),
        "{}",
        r.stderr()
    );
    assert_eq!(psql("postgres", &scratch), "0");
}

#[test]
fn backups_of_two_databases_are_two_series_for_latest_verify_and_retention() {
    let env = TestEnv::new("two_series");
    let other = format!("{}_other", env.db);
    psql("postgres", &format!("DROP DATABASE IF EXISTS {other}"));
    psql("postgres", &format!("CREATE DATABASE {other}"));
    psql(
        &other,
        "CREATE TABLE only_here (id int); INSERT INTO only_here VALUES (1), (2)",
    );
    let (mine_old, _) = env.backup("db");
    let (mine, _) = env.backup("db");
    // The other database's backup is the newest db backup of the repository.
    let r = env.run(&["--json", "--db-name", &other, "backup", "--kind", "db"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let theirs = r.json()["written"][0]["id"].as_str().unwrap().to_string();
    let list = env.list();
    let db_of = |id: &str| {
        list.iter().find(|b| b["id"] == id).unwrap()["database"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(db_of(&theirs), other);
    assert_eq!(db_of(&mine), env.db);

    // `latest` is the newest backup of the configured database (or --db-name's).
    let r = env.run(&[
        "--json",
        "restore",
        "latest",
        "--target-db",
        &format!("{}_a", env.db),
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["id"], mine.as_str());
    let r = env.run(&[
        "--json",
        "--db-name",
        &other,
        "restore",
        "latest",
        "--target-db",
        &format!("{}_b", env.db),
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["id"], theirs.as_str());
    assert_eq!(count(&format!("{}_b", env.db), "only_here"), 2);

    let r = env.run(&["--json", "verify-backup", "--kind", "db"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["backups"][0]["id"], mine.as_str());

    // Retention keeps the newest of each series: the other database's only backup stays.
    let r = env.run(&["verify-backup", "--all"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        format!("{text}\n[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n"),
    )
    .unwrap();
    let r = env.run(&["--json", "backups", "prune", "--kind", "db"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let ids: Vec<String> = env
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!ids.contains(&mine_old), "{ids:?}");
    assert!(ids.contains(&mine) && ids.contains(&theirs), "{ids:?}");
}
