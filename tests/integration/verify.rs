//! `verify-backup`: every byte read; any damage found and named.

use crate::support::*;

fn flip_byte(path: &std::path::Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    let mut b = [0u8];
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x40]).unwrap();
}

#[test]
fn one_flipped_byte_anywhere_fails_verify_and_restore_refuses() {
    let env = TestEnv::new("flipped");
    let (id, path) = env.backup("db");
    let size = std::fs::metadata(&path).unwrap().len();
    let pristine = std::fs::read(&path).unwrap();
    let record = path.with_file_name(format!("{id}.verified.json"));
    for at in [0, 30, size / 2, size - 1] {
        std::fs::write(&path, &pristine).unwrap();
        flip_byte(&path, at);
        // No verification recorded yet: restore's own check of the stored bytes refuses it.
        let _ = std::fs::remove_file(&record);
        let target = format!("{}_r{at}", env.db);
        let r = env.run(&["restore", &id, "--target-db", &target]);
        assert_eq!(r.code(), 2, "{}", r.stderr());
        assert!(
            r.stderr().contains("does not match its manifest"),
            "{}",
            r.stderr()
        );
        assert!(
            !db_exists(&target),
            "restore must not create the target for a damaged backup"
        );

        let r = env.run(&["--json", "verify-backup", &id]);
        assert_eq!(r.code(), 2, "flip at {at}: {}", r.stderr());
        let doc = r.json();
        let report = &doc["backups"][0];
        assert_eq!(report["ok"], false);
        assert_eq!(report["path"], path.to_str().unwrap());
        let problems = report["problems"].to_string();
        assert!(problems.contains("sha256"), "flip at {at}: {problems}");
        assert!(
            r.stderr().contains(path.to_str().unwrap()),
            "stderr names the file: {}",
            r.stderr()
        );

        // Recorded as FAILED: refused up front, naming the state and what to run.
        let r = env.run(&["restore", &id, "--target-db", &target]);
        assert_eq!(r.code(), 2, "{}", r.stderr());
        assert!(
            r.stderr().contains("is FAILED") && r.stderr().contains("verify-backup"),
            "{}",
            r.stderr()
        );
        assert!(!db_exists(&target));
    }
    assert_eq!(env.list()[0]["state"], "FAILED");
}

#[test]
fn wrong_passphrase_is_a_clear_error_exit_2() {
    let env = TestEnv::new("wrong_pass");
    let (id, _) = env.backup("db");
    assert_eq!(env.run(&["verify-backup", &id]).code(), 0);
    write_secret(&env.root().join("passphrase"), "not the passphrase");
    let r = env.run(&["--json", "verify-backup", &id]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("bad passphrase"), "{}", r.stderr());
    assert!(
        r.stderr().contains("the backup is intact"),
        "{}",
        r.stderr()
    );
    assert_eq!(r.json()["backups"][0]["recorded"], false);
    // A mistake on this host says nothing about the backup: it stays verified
    // (disaster-recover still takes it).
    assert_eq!(env.list()[0]["state"], "verified");
    // A database that cannot be reached for the restore test: the same.
    write_secret(&env.root().join("passphrase"), PASSPHRASE);
    let out = env
        .cmd(&["verify-backup", &id, "--restore-test"])
        .env("DB_PORT", free_port().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(env.list()[0]["state"], "verified");
    write_secret(&env.root().join("passphrase"), "not the passphrase");
    let r = env.run(&["restore", &id, "--target-db", "t_wrong_pass_r"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr().contains("bad passphrase"),
        "the cause, not pg_restore's short read: {}",
        r.stderr()
    );
    assert!(!db_exists("t_wrong_pass_r"));
}

#[test]
fn restore_test_compares_every_table_and_drops_the_scratch_database() {
    let env = TestEnv::new("restore_test");
    env.backup("db");
    let r = env.run(&["--json", "verify-backup", "latest", "--restore-test"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    let rows = doc["backups"][0]["restore_test"]
        .as_array()
        .unwrap()
        .clone();
    let get = |t: &str| rows.iter().find(|r| r["table"] == t).unwrap().clone();
    assert_eq!(get("public.sessions")["expected"], 900);
    assert_eq!(get("public.sessions")["restored"], 900);
    assert_eq!(get("public.empty_audit")["restored"], 0);
    let stderr = r.stderr();
    let scratch = stderr
        .split("into scratch database ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("the scratch database is named: {stderr}"));
    assert!(scratch.starts_with("tuneton_restore_test_"), "{scratch}");
    assert!(!db_exists(scratch), "{scratch} dropped");
}

#[test]
fn max_age_warns_then_fails() {
    let env = TestEnv::new("max_age");
    env.backup("config");
    assert_eq!(env.run(&["verify-backup", "--kind", "config"]).code(), 0);
    let r = env.run(&["verify-backup", "--kind", "config", "--max-age", "0"]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(
        r.stdout().contains("WARNING: newest config backup"),
        "{}",
        r.stdout()
    );
    let r = env.run(&[
        "verify-backup",
        "--kind",
        "config",
        "--max-age",
        "0",
        "--max-age-critical",
        "0",
    ]);
    assert_eq!(r.code(), 2);
}

#[test]
fn empty_repository_fails_verification() {
    let env = TestEnv::empty("empty_repo");
    let r = env.run(&["verify-backup"]);
    assert_eq!(r.code(), 2);
    assert!(r.stderr().contains("no backups found"), "{}", r.stderr());
}

#[test]
fn verify_of_a_larger_dump_finishes_within_a_deadline() {
    // The benchmark once hung here: pg_restore --list inherited gpgme's status
    // pipe and both waited forever. The mechanism is pinned by the unit test
    // `children_do_not_inherit_our_descriptors`; this checks the whole path.
    let env = TestEnv::new("verify_no_hang");
    psql(
        &env.db,
        "CREATE TABLE blobs AS SELECT g AS id, md5(random()::text) || repeat(md5(g::text), 20) AS body FROM generate_series(1, 40000) g",
    );
    let (id, _) = env.backup("db");
    let started = std::time::Instant::now();
    let out = env
        .cmd(&["verify-backup", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id() as i32;
    let watchdog = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(60));
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let out = out.wait_with_output().unwrap();
    drop(watchdog);
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify hung or failed after {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_truncated_backup_is_listed_as_failed_even_after_a_good_verification() {
    let env = TestEnv::new("truncated_list");
    let (id, path) = env.backup("config");
    assert_eq!(env.run(&["verify-backup", &id]).code(), 0);
    assert_eq!(env.list()[0]["state"], "verified");
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_eq!(
        env.list()[0]["state"],
        "FAILED (size differs from manifest)"
    );
}

#[test]
fn a_lost_or_unreadable_newest_backup_fails_verification_and_a_forged_manifest_is_ignored() {
    let env = TestEnv::new("lost_newest");
    let (older, _) = env.backup("config");
    let (newest, path) = env.backup("config");
    let manifest = path.with_file_name(format!("{newest}.manifest.json"));
    let original = std::fs::read(&manifest).unwrap();

    // The newest backup's object is gone: not a silent "one backup fewer".
    let object = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let r = env.run(&["--json", "verify-backup", "--all"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    let doc = r.json();
    assert!(
        doc["damaged"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("is missing"),
        "{doc}"
    );
    assert_eq!(
        doc["backups"][0]["id"],
        older.as_str(),
        "the rest is still verified"
    );
    let r = env.run(&["--json", "backups", "list"]);
    assert_eq!(
        r.json()["damaged"].as_array().unwrap().len(),
        1,
        "{}",
        r.stdout()
    );
    std::fs::write(&path, &object).unwrap();

    // Its manifest cannot be read.
    std::fs::write(&manifest, b"{\"broken").unwrap();
    let r = env.run(&["verify-backup", "--all"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stdout().contains("DAMAGED"), "{}", r.stdout());
    assert!(r.stderr().contains("is not readable"), "{}", r.stderr());

    // A manifest that names files outside its own: ignored, nothing written or deleted outside.
    let victim = env.root().join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("owned.manifest.json"), b"precious").unwrap();
    let forged = String::from_utf8(original.clone()).unwrap().replace(
        &format!("\"id\": \"{newest}\""),
        "\"id\": \"../../victim/owned\"",
    );
    assert!(forged.contains("victim"), "the manifest has an id field");
    std::fs::write(&manifest, forged).unwrap();
    let r = env.run(&["--json", "verify-backup", "--all"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.json()["damaged"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("not its own files"),
        "{}",
        r.stdout()
    );
    let r = env.run(&["backups", "prune"]);
    assert!(r.code() <= 1, "{}", r.stderr());
    assert_eq!(
        std::fs::read(victim.join("owned.manifest.json")).unwrap(),
        b"precious"
    );
    assert!(!victim.join("owned.verified.json").exists());

    std::fs::write(&manifest, &original).unwrap();
    let r = env.run(&["verify-backup", "--all"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
}
