//! Backups written by the old shell scripts still verify and restore.

use crate::support::*;

#[test]
fn old_script_db_backup_verifies_and_restores() {
    let env = TestEnv::new("legacy_db");
    let dir = env.repo().join("database");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("db_backup_20261201_020000.sql.gz.gpg");
    let home = GnupgHome::new();
    // The old pipeline, exactly: plain pg_dump | gzip | gpg --symmetric AES256.
    let out = sh(&format!(
        "set -o pipefail; pg_dump -h 127.0.0.1 -p {port} -U postgres -d {db} | gzip | gpg --homedir {h} --batch --yes --pinentry-mode loopback --passphrase-file {p} --cipher-algo AES256 --compress-algo 1 --symmetric -o {f}",
        port = cluster().port,
        db = env.db,
        h = home.path().display(),
        p = env.root().join("passphrase").display(),
        f = file.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = env.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["legacy"], true);
    assert_eq!(list[0]["time"], "2026-12-01T02:00:00Z");

    let r = env.run(&[
        "--json",
        "verify-backup",
        "db_backup_20261201_020000.sql.gz.gpg",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.json()["backups"][0]["structure"]
        .as_str()
        .unwrap()
        .contains("complete"));

    let target = format!("{}_from_old", env.db);
    let r = env.run(&["restore", "latest", "--target-db", &target]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target, "tracks"), 1500);
    assert_eq!(count(&target, "users"), 300);

    // A truncated old backup is caught by the full read, and not restored.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let r = env.run(&["verify-backup", "latest"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let r = env.run(&[
        "restore",
        "latest",
        "--target-db",
        &format!("{}_bad", env.db),
    ]);
    assert_eq!(r.code(), 2);
    assert!(!db_exists(&format!("{}_bad", env.db)));
}

#[test]
fn old_monthly_full_dump_and_app_tarball_verify() {
    let env = TestEnv::new("legacy_monthly");
    let month = env.repo().join("monthly/20261101");
    std::fs::create_dir_all(&month).unwrap();
    let out = sh(&format!(
        "set -e; pg_dump -h 127.0.0.1 -p {port} -U postgres -d {db} > {m}/db_full_dump_20261101.sql && gzip {m}/db_full_dump_20261101.sql && tar -czf {m}/full_backup_20261101.tar.gz -C / {app}",
        port = cluster().port,
        db = env.db,
        m = month.display(),
        app = env.root().join("app").strip_prefix("/").unwrap().display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // These are a month old: relax the age thresholds so only the content is judged.
    let r = env.run(&[
        "--json",
        "verify-backup",
        "--all",
        "--max-age",
        "100000",
        "--max-age-critical",
        "100000",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    let reports = doc["backups"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports
        .iter()
        .all(|r| r["ok"] == true && r["legacy"] == true));

    let target = env.root().join("app-from-old");
    let r = env.run(&[
        "restore",
        "full_backup_20261101.tar.gz",
        "--target-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let restored = walk_files(&target);
    assert!(
        restored.iter().any(|p| p.ends_with("app/dist/engine.wasm")),
        "{restored:?}"
    );
}

#[test]
fn tarball_with_escaping_entries_is_refused_and_writes_nothing() {
    let env = TestEnv::new("legacy_evil");
    let dir = env.repo().join("application");
    std::fs::create_dir_all(&dir).unwrap();
    let evil = dir.join("app_backup_20261201.tar.gz");
    let out = sh(&format!(
        "python3 - <<'PY'\nimport tarfile, io\nwith tarfile.open('{}', 'w:gz') as t:\n    for name in ['ok.txt', '../escaped.txt']:\n        data = b'x'\n        info = tarfile.TarInfo(name); info.size = len(data)\n        t.addfile(info, io.BytesIO(data))\nPY",
        evil.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = env.run(&["verify-backup", "app_backup_20261201.tar.gz"]);
    assert_eq!(r.code(), 2);
    assert!(
        r.stdout().contains("../escaped.txt") || r.stderr().contains("../escaped.txt"),
        "{}{}",
        r.stdout(),
        r.stderr()
    );
    let target = env.root().join("t/app");
    let r = env.run(&[
        "restore",
        "app_backup_20261201.tar.gz",
        "--target-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(!env.root().join("t/escaped.txt").exists());
    assert!(!target.join("ok.txt").exists());
}

fn walk_files(dir: &std::path::Path) -> Vec<String> {
    crate::backup::walk(dir)
}

#[test]
fn old_monthly_encrypted_full_dump_and_daily_app_tarball_restore() {
    let env = TestEnv::new("legacy_monthly_gpg");
    let month = env.repo().join("monthly/20261101");
    let apps = env.repo().join("application");
    std::fs::create_dir_all(&month).unwrap();
    std::fs::create_dir_all(&apps).unwrap();
    let home = GnupgHome::new();
    // The old monthly script exactly: pg_dump > .sql, gzip, gpg --symmetric AES256 of the .sql.gz;
    // and the daily application tarball (tar -czf of /app).
    let out = sh(&format!(
        "set -e; pg_dump -h 127.0.0.1 -p {port} -U postgres -d {db} > {m}/db_full_dump_20261101.sql; gzip {m}/db_full_dump_20261101.sql; \
         gpg --homedir {h} --batch --yes --pinentry-mode loopback --passphrase-file {p} --cipher-algo AES256 --compress-algo 1 --symmetric \
           --output {m}/db_full_dump_20261101.sql.gz.gpg {m}/db_full_dump_20261101.sql.gz; rm {m}/db_full_dump_20261101.sql.gz; \
         tar -czf {a}/app_backup_20261201_020000.tar.gz -C {root} app",
        port = cluster().port,
        db = env.db,
        m = month.display(),
        h = home.path().display(),
        p = env.root().join("passphrase").display(),
        a = apps.display(),
        root = env.root().display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = env.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list.iter().all(|b| b["legacy"] == true), "{list:?}");

    let r = env.run(&[
        "--json",
        "verify-backup",
        "--all",
        "--max-age",
        "100000",
        "--max-age-critical",
        "100000",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(r.json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .all(|b| b["ok"] == true));

    let target = format!("{}_from_monthly", env.db);
    let r = env.run(&[
        "restore",
        "db_full_dump_20261101.sql.gz.gpg",
        "--target-db",
        &target,
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    for table in ["users", "tracks", "sessions"] {
        assert_eq!(count(&target, table), count(&env.db, table), "{table}");
    }

    let dest = env.root().join("restored/app");
    let r = env.run(&[
        "restore",
        "app_backup_20261201_020000.tar.gz",
        "--target-dir",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    for f in ["app/dist/server.js", "app/dist/engine.wasm"] {
        let restored = std::fs::read(dest.join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}; restored: {:?}", walk_files(&dest)));
        assert_eq!(restored, std::fs::read(env.root().join(f)).unwrap(), "{f}");
    }
}
