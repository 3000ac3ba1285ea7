//! `backup`: round trip, peers reading our output, failures that publish nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn backup_verify_restore_round_trip_keeps_every_row() {
    let env = TestEnv::new("round_trip");
    let (id, path) = env.backup("db");
    assert!(
        path.to_string_lossy().ends_with(".dump.zst.gpg"),
        "{}",
        path.display()
    );

    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(path.parent().unwrap().join(format!("{id}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["kind"], "db");
    assert_eq!(manifest["format"], "pg-dump-custom");
    assert_eq!(manifest["compression"], "zstd");
    assert_eq!(manifest["encryption"]["cipher"], "AES256");
    assert_eq!(
        manifest["stored_size"].as_u64().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    let tables = &manifest["database"]["tables"];
    assert_eq!(tables["public.users"], 300);
    assert_eq!(tables["public.tracks"], 1500);
    assert_eq!(tables["public.sessions"], 900);
    assert_eq!(tables["public.empty_audit"], 0);
    assert!(manifest["database"]["server_version"]
        .as_str()
        .unwrap()
        .starts_with("15"));
    assert!(manifest["database"]["pg_dump_version"]
        .as_str()
        .unwrap()
        .contains("15"));

    let list = env.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["state"], "unverified");

    let v = env.run(&["verify-backup", &id]);
    assert_eq!(v.code(), 0, "{}", v.stderr());
    assert_eq!(env.list()[0]["state"], "verified");

    let target = format!("{}_restored", env.db);
    let r = env.run(&["--json", "restore", &id, "--target-db", &target]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(count(&target, "users"), 300);
    assert_eq!(count(&target, "tracks"), 1500);
    assert_eq!(count(&target, "sessions"), 900);
    // The content itself survived, not just the counts.
    assert_eq!(
        psql(
            &env.db,
            "SELECT md5(string_agg(title, ',' ORDER BY id)) FROM tracks"
        ),
        psql(
            &target,
            "SELECT md5(string_agg(title, ',' ORDER BY id)) FROM tracks"
        )
    );
    let tables = r.json()["tables"].as_array().unwrap().clone();
    assert!(tables
        .iter()
        .any(|t| t["table"] == "public.tracks" && t["expected"] == 1500 && t["restored"] == 1500));

    // The job log has the old scripts' line shape.
    let log = std::fs::read_to_string(env.root().join("log/backup.log")).unwrap();
    let first = log.lines().next().unwrap();
    assert!(
        first.starts_with('[') && first.as_bytes()[20] == b']',
        "{first}"
    );
    assert!(log.contains(&id));
}

#[test]
fn gpg_zstd_and_pg_restore_read_our_backup_by_hand() {
    let env = TestEnv::new("peer_read");
    let (_, path) = env.backup("db");
    let home = GnupgHome::new();
    let script = format!(
        "gpg --homedir {h} --batch --pinentry-mode loopback --passphrase-file {p} --decrypt {f} | zstd -d | pg_restore --list",
        h = home.path().display(),
        p = env.root().join("passphrase").display(),
        f = path.display()
    );
    // No pipefail: pg_restore --list stops reading after the table of contents, so gpg and zstd see SIGPIPE.
    let out = sh(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("TABLE DATA public tracks"), "{listing}");

    // gzip mode is read by gzip.
    let r = env.run(&[
        "--json",
        "backup",
        "--kind",
        "db",
        "--compression",
        "gzip",
        "--no-retention",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let gz = r.json()["written"][0]["path"].as_str().unwrap().to_string();
    assert!(gz.ends_with(".dump.gz.gpg"));
    let out = sh(&format!(
        "gpg --homedir {h} --batch --pinentry-mode loopback --passphrase-file {p} --decrypt {gz} 2>/dev/null | gzip -d | pg_restore --list",
        h = home.path().display(),
        p = env.root().join("passphrase").display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("TABLE DATA public users"));
}

#[test]
fn app_and_config_backups_are_tars_that_gnu_tar_lists() {
    let env = TestEnv::new("full_kind");
    let r = env.run(&["--json", "backup", "--kind", "full"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let written = r.json()["written"].as_array().unwrap().clone();
    let kinds: Vec<&str> = written
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["db", "app", "config"]);
    let app = written[1]["path"].as_str().unwrap();
    let home = GnupgHome::new();
    let out = sh(&format!(
        "set -o pipefail; gpg --homedir {h} --batch --pinentry-mode loopback --passphrase-file {p} --decrypt {app} 2>/dev/null | zstd -d | tar -tvf -",
        h = home.path().display(),
        p = env.root().join("passphrase").display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("dist/engine.wasm") && listing.contains("200000"),
        "{listing}"
    );

    // Restore the app backup into a new directory: identical bytes.
    let target = env.root().join("restored-app");
    let r = env.run(&[
        "restore",
        written[1]["id"].as_str().unwrap(),
        "--target-dir",
        target.to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        std::fs::read(target.join("dist/engine.wasm")).unwrap(),
        std::fs::read(env.root().join("app/dist/engine.wasm")).unwrap()
    );
}

#[test]
fn wrong_database_fails_with_the_servers_message_and_publishes_nothing() {
    let env = TestEnv::new("wrong_db");
    let r = env.run(&["backup", "--kind", "db", "--db-name", "no_such_db"]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(
        r.stderr()
            .contains("database \"no_such_db\" does not exist"),
        "{}",
        r.stderr()
    );
    assert!(env.list().is_empty());
    let leftovers: Vec<_> = walk(&env.repo());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn killed_pg_dump_fails_the_run_with_its_message_and_publishes_nothing() {
    let env = TestEnv::new("killed_dump");
    let holder = hold_lock(&env.db, "tracks");
    let child = env
        .cmd(&["backup", "--kind", "db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dump_pid =
        wait_for_process("pg_dump", &env.db, Duration::from_secs(20)).expect("pg_dump started");
    unsafe { libc::kill(dump_pid, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    holder.release();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_dump failed") && stderr.contains("nothing was published"),
        "{stderr}"
    );
    assert!(env.list().is_empty());
    assert!(walk(&env.repo()).is_empty(), "{:?}", walk(&env.repo()));
}

/// A `backup --kind db` that is running, held inside pg_dump by a table lock
/// until the returned holder is released.
fn backup_blocked_in_pg_dump(env: &TestEnv) -> (LockHolder, std::process::Child) {
    let holder = hold_lock(&env.db, "tracks");
    let child = env
        .cmd(&["backup", "--kind", "db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_process("pg_dump", &env.db, Duration::from_secs(20)).expect("pg_dump started");
    (holder, child)
}

#[test]
fn sigkill_mid_backup_leaves_nothing_that_looks_finished_and_a_second_run_exits_3() {
    let env = TestEnv::new("sigkill");
    let (holder, mut first) = backup_blocked_in_pg_dump(&env);

    // A concurrent run is refused at once, naming the holder.
    let started = Instant::now();
    let second = env.run(&["backup", "--kind", "db"]);
    assert_eq!(second.code(), 3, "{}", second.stderr());
    assert!(
        second.stderr().contains(&format!("pid {}", first.id())),
        "{}",
        second.stderr()
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // The passphrase is on no process's command line while the backup runs.
    for cmdline in all_cmdlines() {
        assert!(
            !cmdline.contains(PASSPHRASE),
            "passphrase on a command line: {cmdline}"
        );
    }

    let killed_pid = first.id().to_string();
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    first.wait().unwrap();
    holder.release();
    assert!(env.list().is_empty(), "a killed backup must not be listed");
    assert!(
        walk(&env.repo()).iter().all(|p| p.ends_with(".partial")),
        "{:?}",
        walk(&env.repo())
    );

    // The next run succeeds and clears the leftovers: the .partial, and the killed
    // run's private GnuPG home with its agent.
    std::thread::sleep(Duration::from_millis(300));
    let (id, _) = env.backup("db");
    let stale: Vec<_> = std::fs::read_dir("/tmp")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("tuneton-ops.pid")).is_ok_and(|p| p == killed_pid)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "stale GnuPG home of the killed run: {:?}",
        stale.first().map(|e| e.path())
    );
    assert_eq!(env.list().len(), 1);
    assert!(walk(&env.repo()).iter().all(|p| !p.ends_with(".partial")));
    assert!(!std::fs::read_to_string(env.root().join("log/backup.log"))
        .unwrap()
        .contains(PASSPHRASE));
    let _ = id;
}

#[test]
fn sigterm_mid_backup_exits_143_says_so_and_leaves_no_gnupg_home() {
    let env = TestEnv::new("sigterm");
    let (holder, mut run) = backup_blocked_in_pg_dump(&env);
    let pid = run.id().to_string();
    let owned_homes = || {
        std::fs::read_dir("/tmp")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read_to_string(e.path().join("tuneton-ops.pid")).is_ok_and(|p| p == pid)
            })
            .count()
    };
    assert_eq!(owned_homes(), 1, "the run has its private GnuPG home");
    unsafe { libc::kill(run.id() as i32, libc::SIGTERM) };
    let status = run.wait().unwrap();
    holder.release();
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    assert_eq!(
        owned_homes(),
        0,
        "home (and agent) gone at once, not at the next run"
    );
    let log = std::fs::read_to_string(env.root().join("log/backup.log")).unwrap();
    assert!(log.contains("interrupted by SIGTERM"), "{log}");
    assert!(env.list().is_empty(), "an interrupted backup is not listed");
}

#[test]
fn two_backups_in_the_same_second_both_survive() {
    let env = TestEnv::new("same_second");
    env.write_config("[retention]\nenabled = false\n");
    let (a, _) = env.backup("config");
    let (b, _) = env.backup("config");
    assert_ne!(a, b);
    assert_eq!(env.list().len(), 2);
}

#[test]
fn encryption_that_cannot_be_done_never_writes_plaintext() {
    let env = TestEnv::new("no_plaintext");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        env.root().join("passphrase"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let r = env.run(&["backup", "--kind", "db"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("0644") && r.stderr().contains("passphrase_file"),
        "{}",
        r.stderr()
    );
    assert!(walk(&env.repo()).is_empty());

    env.write_config(
        "[encryption]\nmode = \"symmetric\"\npassphrase_env = \"TUNETON_TEST_PASS_UNSET\"\n",
    );
    let r = env.run(&["backup", "--kind", "db"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("TUNETON_TEST_PASS_UNSET"),
        "{}",
        r.stderr()
    );
    assert!(walk(&env.repo()).is_empty());
}

#[test]
fn passphrase_from_environment_and_command_work() {
    let env = TestEnv::new("pass_sources");
    env.write_config(
        "[encryption]\nmode = \"symmetric\"\npassphrase_env = \"TUNETON_TEST_PASS\"\n",
    );
    let out = env
        .cmd(&["--json", "backup", "--kind", "config"])
        .env("TUNETON_TEST_PASS", PASSPHRASE)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.write_config(&format!(
        "[encryption]\nmode = \"symmetric\"\npassphrase_command = \"cat {}\"\n",
        env.root().join("passphrase").display()
    ));
    let r = env.run(&["verify-backup", "--kind", "config"]);
    assert_eq!(
        r.code(),
        0,
        "same passphrase from a command decrypts: {}",
        r.stderr()
    );
}

#[test]
fn public_key_backups_decrypt_with_the_recipients_secret_key() {
    let env = TestEnv::new("pubkey");
    let home = GnupgHome::new();
    let gen = std::process::Command::new("gpg")
        .arg("--homedir")
        .arg(home.path())
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "ops@tuneton.test",
            "default",
            "default",
            "never",
        ])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    env.write_config(&format!(
        "[encryption]\nmode = \"recipients\"\nrecipients = [\"ops@tuneton.test\"]\ngpg_home = \"{}\"\n",
        home.path().display()
    ));
    let (id, path) = env.backup("db");
    let out = sh(&format!(
        "gpg --homedir {} --batch --decrypt {} 2>/dev/null | zstd -d | pg_restore --list | grep -c 'TABLE DATA'",
        home.path().display(),
        path.display()
    ));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4");
    let r = env.run(&["verify-backup", &id, "--restore-test"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
}

/// A session holding an ACCESS EXCLUSIVE lock, so pg_dump blocks deterministically.
struct LockHolder {
    child: std::process::Child,
    db: String,
}

impl LockHolder {
    fn release(mut self) {
        self.end();
    }
    fn end(&mut self) {
        // Killing psql alone would leave the backend asleep in pg_sleep, holding the lock.
        psql(&self.db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.end();
        }
    }
}

#[allow(clippy::zombie_processes)] // LockHolder waits for it
fn hold_lock(db: &str, table: &str) -> LockHolder {
    let c = cluster();
    let mut child = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &c.port.to_string(),
            "-d",
            db,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let stdin = child.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"
    )
    .unwrap();
    stdin.flush().unwrap();
    // Wait until the lock is really held.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if psql(db, &format!("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted")) == "1" {
            return LockHolder { child, db: db.to_string() };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("lock not taken");
}

/// PID of a process whose argv[0] ends with `name` and whose argv mentions `needle`.
fn wait_for_process(name: &str, needle: &str, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.first().is_some_and(|a| a.ends_with(name))
                && args.iter().any(|a| a.contains(needle))
            {
                return Some(pid);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn all_cmdlines() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .collect()
}

/// Every file under `dir`, as strings.
pub fn walk(dir: &std::path::Path) -> Vec<String> {
    files_under(dir)
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn a_run_stopped_between_publishing_and_the_manifest_is_cleaned_up_by_the_next() {
    // What a crash leaves at each point after the object is complete: the
    // `.partial` stays linked until the manifest exists.
    let env = TestEnv::new("publish_window");
    let (kept, path) = env.backup("db");
    let dir = path.parent().unwrap().to_path_buf();
    // Crashed before its manifest: object linked under its final name and as .partial.
    let orphan = dir.join("db-20261204T000000000Z-dead.dump.zst.gpg");
    std::fs::copy(
        &path,
        dir.join("db-20261204T000000000Z-dead.dump.zst.gpg.partial"),
    )
    .unwrap();
    std::fs::hard_link(
        dir.join("db-20261204T000000000Z-dead.dump.zst.gpg.partial"),
        &orphan,
    )
    .unwrap();
    // Crashed after its manifest: only the .partial link is left over.
    let leftover = path.with_file_name(format!(
        "{}.partial",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::hard_link(&path, &leftover).unwrap();

    let ids: Vec<String> = env
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![kept.clone()],
        "an object without a manifest is not a backup"
    );

    let r = env.run(&["backup", "--kind", "db", "--no-retention"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        !orphan.exists(),
        "the unfinished object is removed: {}",
        r.stderr()
    );
    assert!(!leftover.exists());
    assert!(path.exists(), "the finished backup stays");
    let ids: Vec<String> = env
        .list()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(ids[0], kept);
    let r = env.run(&["verify-backup", &kept]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
}
