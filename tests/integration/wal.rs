//! WAL archiving: a real cluster with `archive_command = 'tuneton-ops wal-push %p'`,
//! a physical base backup, `wal-fetch` as `restore_command`, and a recovery to a
//! point in time that keeps exactly the rows committed before it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::app::{process_alive, AppStub};
use crate::support::*;

/// A cluster of its own, archiving through our binary (runs as `postgres`).
struct ArchivingCluster {
    dir: PathBuf,
    port: u16,
    opts: String,
}

impl ArchivingCluster {
    fn start(env: &TestEnv, data: &Path) -> ArchivingCluster {
        let port = free_port();
        let archive = format!(
            "{} --config {} --quiet wal-push %p",
            env!("CARGO_BIN_EXE_tuneton-ops"),
            env.config_path.display()
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c wal_level=replica -c archive_mode=on -c archive_timeout=0",
            data.parent().unwrap().display()
        );
        let auto = data.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&format!("archive_command = '{archive}'\n"));
        std::fs::write(&auto, conf).unwrap();
        chown_postgres(data);
        let out = as_postgres(&format!("{PGBIN}/pg_ctl"))
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(data.parent().unwrap().join("server.log"))
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .unwrap();
        if !out.status.success() {
            let log = std::fs::read_to_string(data.parent().unwrap().join("server.log"))
                .unwrap_or_default();
            panic!(
                "pg_ctl start: {}\n{log}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ArchivingCluster {
            dir: data.to_path_buf(),
            port,
            opts,
        }
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(sql)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Shell commands that start (waiting) and stop this server, as `[postgres]` wants them.
    fn control_commands(&self) -> (String, String) {
        let pg_ctl = format!("{PGBIN}/pg_ctl");
        let runuser = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let log = self.dir.parent().unwrap().join("server.log");
        let start = format!(
            "{runuser}{pg_ctl} -D {} -l {} -w -t 60 -o '{}' start",
            self.dir.display(),
            log.display(),
            self.opts
        );
        let stop = format!(
            "if {runuser}{pg_ctl} -D {d} status >/dev/null; then {runuser}{pg_ctl} -D {d} -m fast -w stop; fi",
            d = self.dir.display()
        );
        (start, stop)
    }

    fn stop(&self) {
        let _ = as_postgres(&format!("{PGBIN}/pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// Switches WAL and waits until the archiver has pushed the finished segment.
    fn switch_and_wait(&self) -> String {
        let seg = self.psql("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last >= seg {
                return seg;
            }
            let failed = self.psql("SELECT failed_count FROM pg_stat_archiver");
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.parent().unwrap().join("server.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "segment {seg} not archived (last {last}, failed {failed}); server log:\n{}",
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ArchivingCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{PGBIN}/pg_ctl"))
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// Flips 16 bytes in the second page of the relation file `rel` (under `data`; the
/// server stopped after a checkpoint), then starts the server again.
fn damage_a_page_and_restart(pg: &ArchivingCluster, data: &Path, rel: &str) {
    pg.psql("CHECKPOINT");
    pg.stop();
    let file = data.join(rel);
    let mut bytes = std::fs::read(&file).unwrap();
    for b in &mut bytes[8192 + 4000..8192 + 4016] {
        *b ^= 0xFF;
    }
    std::fs::write(&file, bytes).unwrap();
    let (start_cmd, _) = pg.control_commands();
    assert!(Command::new("sh")
        .arg("-c")
        .arg(&start_cmd)
        .status()
        .unwrap()
        .success());
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

fn initdb(dir: &Path) {
    initdb_with(dir, &[]);
}

fn initdb_with(dir: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    chown_postgres(dir);
    let out = as_postgres(&format!("{PGBIN}/initdb"))
        .arg("-D")
        .arg(dir)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "-N",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Points the test's config at `pg`: `[database]` port, and `[postgres]` with its
/// data directory and pg_ctl start/stop commands (for pitr and db-recover).
fn point_config_at(env: &TestEnv, pg: &ArchivingCluster, data: &Path) {
    let (start_cmd, stop_cmd) = pg.control_commands();
    let text = std::fs::read_to_string(&env.config_path).unwrap().replace(
        &format!("port = {}", cluster().port),
        &format!("port = {}", pg.port),
    );
    std::fs::write(
        &env.config_path,
        format!(
            "{text}\n[postgres]\ndata_dir = \"{}\"\nstart_command = \"{}\"\nstop_command = \"{}\"\nrecovery_timeout_secs = 60\n",
            data.display(),
            start_cmd.replace('"', "\\\""),
            stop_cmd.replace('"', "\\\"")
        ),
    )
    .unwrap();
}

/// A cluster of its own (initdb with `initdb_args`), archiving into the test's
/// repository, with `[postgres]` set so `pitr` and `db-recover` stop and start
/// it through pg_ctl, and `[database]` pointing at it.
fn recoverable_cluster(env: &TestEnv, initdb_args: &[&str]) -> (PathBuf, ArchivingCluster) {
    let root = env.root().to_path_buf();
    let data = root.join("pg/data");
    initdb_with(&data, initdb_args);
    env.write_config("[retention]\nenabled = false\n");
    for d in ["log", "run", "backups/wal"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    chown_postgres(&root);
    let pg = ArchivingCluster::start(env, &data);
    point_config_at(env, &pg, &data);
    chown_postgres(&root);
    (data, pg)
}

/// Waits until `name` (e.g. a promotion's `00000002.history`) is archived in the local repository.
fn wait_archived(env: &TestEnv, name: &str) {
    let manifest = env.repo().join(format!("wal/{name}.manifest.json"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !manifest.exists() {
        assert!(
            Instant::now() < deadline,
            "{name} not archived: {:?}",
            archived_wal(env)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The commands a failed recovery's message lists under "To put it back, run:".
fn put_back_commands(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .skip_while(|l| !l.contains("To put it back, run:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn archived_wal_and_base_backup_recover_to_a_point_in_time() {
    let env = TestEnv::empty("wal_pitr");
    let root = env.root().to_path_buf();
    let data = root.join("pg/data");
    initdb(&data);
    // The archiver runs our binary as `postgres`: it must read the config and passphrase and write the repository.
    env.write_config("[retention]\nenabled = false\n");
    for d in ["log", "run", "backups/wal"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    chown_postgres(&root);
    let pg = ArchivingCluster::start(&env, &data);
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(
            &format!("port = {}", cluster().port),
            &format!("port = {}", pg.port),
        ),
    )
    .unwrap();
    chown_postgres(&root);

    pg.psql("CREATE TABLE events (id int PRIMARY KEY, note text, at timestamptz DEFAULT clock_timestamp())");
    pg.psql("INSERT INTO events (id, note) SELECT g, md5(g::text) FROM generate_series(1, 100) g");
    let r = env.run(&["--json", "backup", "--kind", "base"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let base_id = r.json()["written"][0]["id"].as_str().unwrap().to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.repo().join(format!("base/{base_id}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["base"]["timeline"], 1);
    assert!(manifest["base"]["end_lsn"].as_str().unwrap().contains('/'));

    // Three separate commits; the target lies between the second and the third.
    pg.psql("INSERT INTO events (id, note) VALUES (101, 'before target')");
    std::thread::sleep(Duration::from_millis(300));
    pg.psql("INSERT INTO events (id, note) VALUES (102, 'also before target')");
    std::thread::sleep(Duration::from_millis(300));
    let target = pg.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    );
    std::thread::sleep(Duration::from_millis(300));
    pg.psql("INSERT INTO events (id, note) VALUES (103, 'after target')");
    let last = pg.switch_and_wait();

    // Archive health: the last segment, no gaps since the base backup, the server archiving fine.
    let r = env.run(&["--json", "verify-backup", "--wal"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let health = r.json();
    assert_eq!(health["last_archived"], last.as_str());
    assert_eq!(health["missing_since_base"], serde_json::json!([]));
    assert_eq!(health["server_archiver"]["failing_now"], false);

    // The archive holds the segment, byte for byte as PostgreSQL wrote it.
    assert!(env
        .repo()
        .join(format!("wal/{last}.manifest.json"))
        .exists());
    let fetched = root.join("fetched");
    let r = env.run(&["wal-fetch", &last, fetched.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let original = data.join("pg_wal").join(&last);
    if original.exists() {
        assert!(
            std::fs::read(&original).unwrap() == std::fs::read(&fetched).unwrap(),
            "fetched segment differs"
        );
    }
    // Pushing the same segment again is fine; different content under its name is refused.
    let again = root.join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::copy(&fetched, again.join(&last)).unwrap();
    let r = env.run(&["wal-push", again.join(&last).to_str().unwrap()]);
    assert_eq!(r.code(), 0, "identical re-push: {}", r.stderr());
    let mut bytes = std::fs::read(again.join(&last)).unwrap();
    bytes[100] ^= 1;
    std::fs::write(again.join(&last), bytes).unwrap();
    let r = env.run(&["wal-push", again.join(&last).to_str().unwrap()]);
    assert_eq!(r.code(), 2, "{}", r.stderr());
    assert!(r.stderr().contains("DIFFERENT content"), "{}", r.stderr());
    // A name that was never archived: exit 1, nothing written.
    let r = env.run(&[
        "wal-fetch",
        "0000000100000000000000FF",
        root.join("nope").to_str().unwrap(),
    ]);
    assert_eq!(r.code(), 1, "{}", r.stderr());
    assert!(!root.join("nope").exists());
    // pitr: stops the server, moves its data directory aside, restores the base
    // backup, replays archived WAL through wal-fetch to the target, promotes.
    let (start_cmd, stop_cmd) = pg.control_commands();
    let pitr_config = format!(
        "[retention]\nenabled = false\n\n[postgres]\ndata_dir = \"{}\"\nstart_command = \"{}\"\nstop_command = \"{}\"\nrecovery_timeout_secs = 60\n",
        data.display(),
        start_cmd.replace('"', "\\\""),
        stop_cmd.replace('"', "\\\"")
    );
    env.write_config(&pitr_config);
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(
            &format!("port = {}", cluster().port),
            &format!("port = {}", pg.port),
        ),
    )
    .unwrap();
    chown_postgres(&root);

    let r = env.run(&["--dry-run", "pitr", "--target-time", "2026-12-03 10:00:00"]);
    assert_eq!(
        r.code(),
        3,
        "a time without a zone is refused: {}",
        r.stderr()
    );
    assert!(r.stderr().contains("no zone offset"), "{}", r.stderr());
    let r = env.run(&[
        "--dry-run",
        "pitr",
        "--target-time",
        "2000-01-01 00:00:00+00",
    ]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(
        r.stderr().contains("no base backup ended before"),
        "{}",
        r.stderr()
    );
    let r = env.run(&["--dry-run", "pitr", "--target-time", &target]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stdout().contains(&base_id) && r.stdout().contains("recovery_target_time"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM events"),
        "103",
        "dry run changes nothing"
    );

    let r = env.run(&["--yes", "--json", "pitr", "--target-time", &target]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let doc = r.json();
    let aside = std::path::PathBuf::from(doc["previous_data_dir"].as_str().unwrap());
    assert!(
        aside.join("PG_VERSION").exists(),
        "the old data directory is kept"
    );
    // Exactly the rows committed before the target; promoted, so it accepts writes.
    assert_eq!(
        pg.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events WHERE id > 100"),
        "101,102"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM events"), "102");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    pg.psql("INSERT INTO events (id, note) VALUES (200, 'after promotion')");
    let replayed = doc["last_replayed_commit"].as_str().unwrap().to_string();
    assert!(
        replayed < target.replace(' ', "T"),
        "{replayed} vs {target}"
    );

    // One corrupted archived segment: recovery stops with an error, it does not
    // promote on a short timeline.
    // Stop the server first so its archiver has pushed everything it will.
    pg.stop();
    // (The promotion started timeline 2, whose first segment repeats timeline 1's
    // data up to the switch: damage every segment after the base backup's end, on
    // both timelines, so recovery needs a damaged one whichever it follows.)
    let end_seg = &last[8..];
    let mut damaged = 0;
    for e in std::fs::read_dir(env.repo().join("wal")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(seg) = name.strip_suffix(".zst.gpg") else {
            continue;
        };
        if seg.len() == 24 && &seg[8..] >= end_seg {
            let mut bytes = std::fs::read(e.path()).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x10;
            std::fs::write(e.path(), bytes).unwrap();
            damaged += 1;
        }
    }
    assert!(damaged >= 1);
    let r = env.run(&["wal-fetch", &last, root.join("damaged").to_str().unwrap()]);
    assert_eq!(
        r.code(),
        126,
        "a damaged segment is fatal for recovery: {}",
        r.stderr()
    );
    assert!(!root.join("damaged").exists() && !root.join("damaged.partial").exists());
    let r = env.run(&["--yes", "pitr", "--target-time", &target]);
    if r.code() != 2 {
        let log = std::fs::read_to_string(root.join("pg/server.log")).unwrap_or_default();
        let wal: Vec<_> = std::fs::read_dir(env.repo().join("wal"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        panic!(
            "expected exit 2: {}\nwal: {wal:?}\nlog:\n{}",
            r.stderr(),
            log.lines().rev().take(40).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(r.stderr().contains("intact at"), "{}", r.stderr());
    let log = std::fs::read_to_string(root.join("pg/server.log")).unwrap_or_default();
    assert!(
        log.contains("command not executable") || log.contains("could not restore file"),
        "{log}"
    );
    assert!(
        Command::new("psql")
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-p",
                &pg.port.to_string(),
                "-c",
                "SELECT 1"
            ])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true),
        "the server must not be up and promoted after a failed recovery"
    );

    // A segment missing from the archive since the base backup is CRITICAL, and named.
    let start = manifest["base"]["start_lsn"].as_str().unwrap();
    let hole = format!("00000001{}", {
        let (hi, lo) = start.split_once('/').unwrap();
        format!(
            "{:08X}{:08X}",
            u64::from_str_radix(hi, 16).unwrap(),
            u64::from_str_radix(lo, 16).unwrap() >> 24
        )
    });
    std::fs::remove_file(env.repo().join(format!("wal/{hole}.manifest.json"))).unwrap();
    let r = env.run(&["verify-backup", "--wal"]);
    assert_eq!(r.code(), 2, "{}", r.stdout());
    assert!(r.stdout().contains(&hole), "{}", r.stdout());
}

#[test]
fn pitr_from_an_s3_only_repository() {
    let env = TestEnv::empty("wal_pitr_s3");
    let s3 = crate::support::s3::S3Server::start("pitr");
    let root = env.root().to_path_buf();
    let data = root.join("pg/data");
    initdb(&data);
    for d in ["log", "run"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let section = s3.config_section(&root, "");
    env.write_config(&format!("[retention]\nenabled = false\n\n{section}"));
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replacen("[repository]\n", "[repository]\nlocal = false\n", 1),
    )
    .unwrap();
    chown_postgres(&root);
    let pg = ArchivingCluster::start(&env, &data);
    point_config_at(&env, &pg, &data);
    chown_postgres(&root);

    pg.psql("CREATE TABLE events (id int PRIMARY KEY)");
    pg.psql("CREATE TABLE filler (x int)");
    pg.psql("INSERT INTO events SELECT generate_series(1, 50)");
    let r = env.run(&["backup", "--kind", "base"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // About three full segments between the base backup's end and the target, so
    // recovery is still replaying (through wal-fetch) after the server accepts
    // connections. (Segments left nearly empty by pg_switch_wal are read ahead
    // before consistency is even reported.)
    pg.psql("INSERT INTO filler SELECT generate_series(1, 800000)");
    pg.psql("INSERT INTO events VALUES (51)");
    std::thread::sleep(Duration::from_millis(300));
    let target = pg.psql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    );
    std::thread::sleep(Duration::from_millis(300));
    pg.psql("INSERT INTO events VALUES (52)");
    let last = pg.switch_and_wait();
    assert!(
        s3.keys()
            .contains(&format!("tuneton/wal/{last}.manifest.json")),
        "{:?}",
        s3.keys()
    );
    assert!(
        !root.join("backups/wal").exists(),
        "S3-only: nothing archived locally"
    );

    let r = env.run(&["--yes", "pitr", "--target-time", &target]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(pg.psql("SELECT max(id) FROM events"), "51");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");

    // Regression: the same target again, with nothing written since the promotion.
    // Recovery follows the new timeline (recovery_target_timeline = latest), finds
    // no commit after the target and PostgreSQL stops after it had accepted
    // read-only connections: pitr must say so at once, not wait for the timeout.
    let history = "tuneton/wal/00000002.history.manifest.json".to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s3.keys().contains(&history) {
        assert!(
            Instant::now() < deadline,
            "00000002.history not archived: {:?}",
            s3.keys()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let started = Instant::now();
    let r = env.run(&["--yes", "pitr", "--target-time", &target]);
    assert_eq!(r.code(), 2, "{}{}", r.stdout(), r.stderr());
    let log = std::fs::read_to_string(root.join("pg/server.log")).unwrap_or_default();
    assert!(
        r.stderr().contains("stopped during recovery") && r.stderr().contains("intact at"),
        "{}\n{}",
        r.stderr(),
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    assert!(
        !data.join("postmaster.pid").exists(),
        "the server is not up after a failed recovery"
    );
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?} (recovery_timeout_secs is 60)",
        started.elapsed()
    );
    // The message says the server is down, what became of the application, and
    // how to put the previous data directory back; those commands work as printed.
    let err = r.stderr();
    assert!(
        err.contains("PostgreSQL is stopped.")
            && err.contains("The application is not managed on this host")
            && err.contains("pitr neither stopped nor started it"),
        "{err}"
    );
    let commands = put_back_commands(&err);
    assert_eq!(commands.len(), 4, "stop, mv, mv, start: {err}");
    assert!(
        commands[1].starts_with(&format!(
            "mv {} {}.failed-recovery-",
            data.display(),
            data.display()
        )),
        "{commands:?}"
    );
    assert!(
        commands[2].starts_with("mv ") && commands[2].ends_with(&format!(" {}", data.display())),
        "{commands:?}"
    );
    for c in &commands {
        let out = Command::new("sh").arg("-c").arg(c).output().unwrap();
        assert!(
            out.status.success(),
            "{c}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Back as it was before the failed run: the promoted server with row 51.
    assert_eq!(pg.psql("SELECT max(id) FROM events"), "51");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
}

#[test]
fn db_recover_finds_a_corrupted_page_and_recovers_from_base_and_archive() {
    let env = TestEnv::empty("db_recover");
    let root = env.root().to_path_buf();
    let data = root.join("pg/data");
    std::fs::create_dir_all(&data).unwrap();
    chown_postgres(&data);
    let out = as_postgres(&format!("{PGBIN}/initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "-N",
            "--data-checksums",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.write_config("[retention]\nenabled = false\n");
    for d in ["log", "run", "backups/wal"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // The application, running while the corruption is found: stopped for the
    // recovery (it must not write into a half-restored server), healthy after.
    let mut app = AppStub::new(&root);
    chown_postgres(&root);
    let pg = ArchivingCluster::start(&env, &data);
    point_config_at(&env, &pg, &data);
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        format!("{text}\n{}", app.app_config("ready_timeout_secs = 20")),
    )
    .unwrap();
    chown_postgres(&root);
    app.spawn();
    let app_pid = app.pid().unwrap();

    pg.psql("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric)");
    pg.psql("INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 5000) g");
    let r = env.run(&["--json", "backup", "--kind", "base"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let base_id = r.json()["written"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(env.run(&["verify-backup", &base_id]).code(), 0);
    pg.psql("INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(5001, 6000) g");
    pg.switch_and_wait();

    // A clean cluster: checked, started again, nothing restored.
    let r = env.run(&["--json", "db-recover"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["corruption"], false);
    assert_eq!(pg.psql("SELECT count(*) FROM ledger"), "6000");

    // Damage one page of the table on disk.
    let rel = pg.psql("SELECT pg_relation_filepath('ledger')");
    damage_a_page_and_restart(&pg, &data, &rel);

    let r = env.run(&["--json", "db-recover", "--check-only"]);
    assert_eq!(r.code(), 2, "{}{}", r.stdout(), r.stderr());
    assert!(
        r.json()["findings"].to_string().contains("pg_checksums"),
        "{}",
        r.stdout()
    );
    let r = env.run(&["db-recover"]);
    assert_eq!(
        r.code(),
        3,
        "destructive recovery needs --yes: {}",
        r.stderr()
    );

    let r = env.run(&["--yes", "--json", "db-recover"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["recovered_from"], base_id.as_str());
    assert_eq!(r.json()["application"]["healthy"], true, "{}", r.stdout());
    assert!(
        !process_alive(app_pid),
        "the application was stopped for the recovery"
    );
    let new_pid = app.pid().unwrap();
    assert_ne!(new_pid, app_pid);
    assert!(process_alive(new_pid), "and started again");
    // Base backup + every archived WAL: all 6000 rows, readable, writable.
    assert_eq!(
        pg.psql("SELECT count(*), sum(amount) FROM ledger"),
        "6000|27004500.0"
    );
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    assert!(
        PathBuf::from(r.json()["previous_data_dir"].as_str().unwrap())
            .join("PG_VERSION")
            .exists()
    );
}

#[test]
fn pitr_refuses_unreachable_targets_untouched_then_recovers_to_a_name_an_lsn_and_an_xid() {
    use std::os::unix::fs::MetadataExt;
    let env = TestEnv::empty("pitr_targets");
    let (data, pg) = recoverable_cluster(&env, &[]);
    let now_sql =
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'";
    pg.psql("CREATE TABLE events (id int PRIMARY KEY)");
    pg.psql("INSERT INTO events SELECT generate_series(1, 10)");
    let before_base = pg.psql(now_sql);
    let (base_id, _) = env.backup("base");
    let base_start = {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(env.repo().join(format!("base/{base_id}.manifest.json"))).unwrap(),
        )
        .unwrap();
        m["base"]["start_lsn"].as_str().unwrap().to_string()
    };

    // Unreachable targets, real runs (not --dry-run): refused before anything is stopped.
    std::fs::write(data.join("tuneton-test-marker"), "still here").unwrap();
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    let (data_ino, version_ino) = (ino(&data), ino(&data.join("PG_VERSION")));
    let postmaster = std::fs::read_to_string(data.join("postmaster.pid")).unwrap();
    // A mistyped year, as in the bug report; computed from the clock so it stays in the future.
    let future = pg.psql(
        "SELECT to_char((now() + interval '3 years') AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z'",
    );
    let refusals: [(Vec<&str>, &str); 5] = [
        (
            vec!["--yes", "pitr", "--target-time", &before_base],
            "no base backup ended before",
        ),
        (
            vec![
                "--yes",
                "pitr",
                "--target-time",
                &before_base,
                "--base",
                &base_id,
            ],
            "a base backup cannot be rewound",
        ),
        (
            vec!["--yes", "pitr", "--target-lsn", &base_start],
            "no base backup ends at or before",
        ),
        (
            vec!["--yes", "pitr", "--target-time", &future],
            "is in the future",
        ),
        (
            vec!["--dry-run", "pitr", "--target-time", &future],
            "is in the future",
        ),
    ];
    // A restore_command that PostgreSQL's user cannot run (the passphrase readable by
    // root only) is found before anything is stopped, not in the server log afterwards.
    if is_root() {
        let pass = env.root().join("passphrase");
        assert!(Command::new("chown")
            .arg("root:root")
            .arg(&pass)
            .status()
            .unwrap()
            .success());
        for argv in [
            ["--yes", "pitr", "--immediate"],
            ["--dry-run", "pitr", "--immediate"],
        ] {
            let r = env.run(&argv);
            assert_eq!(r.code(), 3, "{argv:?}: {}{}", r.stdout(), r.stderr());
            assert!(
                r.stderr()
                    .contains("restore_command fails when run as postgres")
                    && r.stderr().contains("nothing was stopped"),
                "{}",
                r.stderr()
            );
        }
        chown_postgres(&pass);
    }
    for (argv, why) in refusals {
        let r = env.run(&argv);
        assert_eq!(r.code(), 3, "{argv:?}: {}{}", r.stdout(), r.stderr());
        assert!(r.stderr().contains(why), "{argv:?}: {}", r.stderr());
        if why.contains("future") {
            assert!(
                r.stderr().contains("Nothing was stopped") && r.stderr().contains("--immediate"),
                "{}",
                r.stderr()
            );
        }
    }
    assert_eq!(
        (ino(&data), ino(&data.join("PG_VERSION"))),
        (data_ino, version_ino)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("tuneton-test-marker")).unwrap(),
        "still here"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("postmaster.pid")).unwrap(),
        postmaster,
        "the same server process, never restarted"
    );
    let asides: Vec<_> = std::fs::read_dir(data.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("recovery"))
        .collect();
    assert!(asides.is_empty(), "nothing moved aside: {asides:?}");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    pg.psql("INSERT INTO events VALUES (11)");

    // --target-name: everything up to the restore point, nothing after it.
    pg.psql("SELECT pg_create_restore_point('before_x')");
    pg.psql("INSERT INTO events VALUES (12)");
    pg.switch_and_wait();
    let r = env.run(&["--yes", "--json", "pitr", "--target-name", "before_x"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["base"], base_id.as_str());
    let ids = || pg.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events WHERE id > 10");
    assert_eq!(ids(), "11");
    assert_eq!(pg.psql("SELECT count(*) FROM events"), "11");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");

    // --target-lsn, on the timeline that promotion started (the same base
    // backup; recovery follows the newest timeline through its history file).
    pg.psql("INSERT INTO events VALUES (13)");
    let lsn = pg.psql("SELECT pg_current_wal_lsn()");
    pg.psql("INSERT INTO events VALUES (14)");
    wait_archived(&env, "00000002.history");
    pg.switch_and_wait();
    let r = env.run(&["--yes", "pitr", "--target-lsn", &lsn]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(
        ids(),
        "11,13",
        "row 12 (other timeline) and 14 (after the LSN) absent"
    );
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");

    // --target-xid (inclusive: that transaction's own row is there), timeline 3.
    let xid = pg.psql("INSERT INTO events VALUES (15) RETURNING txid_current()");
    pg.psql("INSERT INTO events VALUES (16)");
    wait_archived(&env, "00000003.history");
    pg.switch_and_wait();
    let r = env.run(&["--yes", "pitr", "--target-xid", &xid]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(ids(), "11,13,15");
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    pg.psql("INSERT INTO events VALUES (17)");
}

#[test]
fn db_recover_without_a_base_backup_restores_the_newest_verified_dump() {
    let env = TestEnv::empty("db_recover_dump");
    let (data, pg) = recoverable_cluster(&env, &["--data-checksums"]);
    // The configured database lives on this cluster.
    pg.psql(&format!("CREATE DATABASE {}", env.db));
    let q = |sql: &str| psql_at(pg.port, &env.db, sql);
    q("CREATE TABLE ledger (id int PRIMARY KEY, amount numeric)");
    q("INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(1, 5000) g");
    let (verified, _) = env.backup("db");
    let r = env.run(&["verify-backup", &verified]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    // A newer dump that was never verified is passed over.
    q("INSERT INTO ledger SELECT g, g * 1.5 FROM generate_series(5001, 6000) g");
    let (unverified, _) = env.backup("db");
    assert_ne!(unverified, verified);

    // Damage one page of the table on disk (as in the base-backup test).
    let rel = q("SELECT pg_relation_filepath('ledger')");
    damage_a_page_and_restart(&pg, &data, &rel);

    let r = env.run(&["--yes", "--json", "db-recover"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["corruption"], true);
    assert!(
        doc["findings"].to_string().contains("pg_checksums"),
        "{doc}"
    );
    assert_eq!(doc["recovered_from"], verified.as_str(), "{doc}");
    assert!(
        doc.get("previous_data_dir").is_none(),
        "no base backup was used: {doc}"
    );
    // Exactly the verified dump's rows.
    assert_eq!(
        q("SELECT count(*), sum(amount) FROM ledger"),
        "5000|18753750.0"
    );
    assert_eq!(pg.psql("SELECT pg_is_in_recovery()"), "f");
    // The damaged file went with the old table: the next check is clean.
    let r = env.run(&["--json", "db-recover", "--check-only"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["corruption"], false);
    assert_eq!(q("SELECT count(*) FROM ledger"), "5000");
}

#[test]
fn failing_wal_push_alerts_once_and_resolves_when_archiving_works_again() {
    use crate::support::receiver::Receiver;
    let env = TestEnv::empty("wal_push_alert");
    let recv = Receiver::start();
    let root = env.root();
    write_secret(&root.join("slack-url"), &recv.url("/slack/hook"));
    write_secret(&root.join("pd-key"), "pdkey0123456789");
    env.write_config(&format!(
        "[alerts]\nalert_on_failure = true\nhost_name = \"db1\"\nrequest_timeout_secs = 2\nretry_deadline_secs = 5\n\
         [alerts.slack]\nwebhook_url_file = \"{r}/slack-url\"\n\
         [alerts.pagerduty]\nevents_url = \"{}\"\nrouting_key_file = \"{r}/pd-key\"\n",
        recv.url("/pd/v2/enqueue"),
        r = root.display()
    ));
    let segment = root.join("000000010000000000000007");
    std::fs::write(&segment, vec![7u8; 64 * 1024]).unwrap();
    let seg = segment.to_str().unwrap();
    // The archive cannot be written: `wal` is a file where the directory should be.
    std::fs::write(env.repo().join("wal"), "not a directory").unwrap();
    for _ in 0..3 {
        let r = env.run(&["wal-push", seg]);
        assert_eq!(r.code(), 2, "{}", r.stderr());
    }
    let slack = recv.requests("/slack");
    assert_eq!(slack.len(), 1, "one alert for three failures: {slack:?}");
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.contains("WAL archiving is failing on db1"), "{text}");
    let pd = recv.requests("/pd");
    assert_eq!(pd[0].json()["event_action"], "trigger");
    let key = pd[0].json()["dedup_key"].clone();

    std::fs::remove_file(env.repo().join("wal")).unwrap();
    let r = env.run(&["wal-push", seg]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let r = env.run(&["wal-push", seg]);
    assert_eq!(r.code(), 0, "identical re-push: {}", r.stderr());
    let slack = recv.requests("/slack");
    assert_eq!(slack.len(), 2, "one recovery message: {slack:?}");
    assert!(slack[1].json()["text"]
        .as_str()
        .unwrap()
        .contains("works again"));
    let pd = recv.requests("/pd");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1].json()["event_action"], "resolve");
    assert_eq!(
        pd[1].json()["dedup_key"],
        key,
        "resolve closes the same incident"
    );
}

/// Names archived in the local repository's `wal/` (those with a manifest), sorted.
fn archived_wal(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(env.repo().join("wal"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_suffix(".manifest.json")
                .map(String::from)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn prune_expires_the_wal_no_retained_base_backup_needs() {
    let env = TestEnv::empty("wal_expire");
    let root = env.root().to_path_buf();
    let data = root.join("pg/data");
    initdb(&data);
    env.write_config("[retention]\nenabled = false\n");
    for d in ["log", "run", "backups/wal"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    chown_postgres(&root);
    let pg = ArchivingCluster::start(&env, &data);
    let configure = |extra: &str| {
        env.write_config(extra);
        let text = std::fs::read_to_string(&env.config_path).unwrap().replace(
            &format!("port = {}", cluster().port),
            &format!("port = {}", pg.port),
        );
        std::fs::write(&env.config_path, text).unwrap();
        chown_postgres(&root);
    };
    configure("[retention]\nenabled = false\n");

    pg.psql("CREATE TABLE t (x int)");
    let fill = |n: i32| {
        for i in 0..n {
            pg.psql(&format!("INSERT INTO t VALUES ({i})"));
            pg.switch_and_wait();
        }
    };
    fill(2);
    let (older, _) = env.backup("base");
    fill(2);
    // A timeline history file, as a promotion archives it: kept whatever its age.
    let history = root.join("00000002.history");
    std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n").unwrap();
    let r = env.run(&["wal-push", history.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let (newer, _) = env.backup("base");
    fill(1);
    for id in [&older, &newer] {
        let r = env.run(&["verify-backup", id]);
        assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    }

    // The newer base backup's start segment: everything before it on timeline 1 goes.
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(env.repo().join(format!("base/{newer}.manifest.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["base"]["wal_segment_size"], 16 << 20);
    let start = manifest["base"]["start_lsn"].as_str().unwrap();
    let (hi, lo) = start.split_once('/').unwrap();
    let boundary = format!(
        "00000001{:08X}{:08X}",
        u64::from_str_radix(hi, 16).unwrap(),
        u64::from_str_radix(lo, 16).unwrap() >> 24
    );
    let before_all = archived_wal(&env);
    let (gone, kept): (Vec<String>, Vec<String>) = before_all
        .iter()
        .cloned()
        .partition(|n| n.len() >= 24 && !n.ends_with(".history") && n[..24] < *boundary);
    assert!(gone.len() >= 4, "{before_all:?}");
    assert!(
        gone.iter().any(|n| n.ends_with(".backup")),
        "the older base backup's label is before the boundary: {before_all:?}"
    );
    assert!(kept.contains(&boundary), "{boundary} archived: {kept:?}");
    assert!(
        kept.iter()
            .any(|n| n.starts_with(&boundary) && n.ends_with(".backup")),
        "the newer base backup's label: {kept:?}"
    );
    assert!(kept.contains(&"00000002.history".to_string()));

    configure("[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n");
    let r = env.run(&["--dry-run", "--json", "backups", "prune"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    let wal = &doc["wal"];
    assert_eq!(wal["expired"], gone.len(), "{doc}");
    assert_eq!(wal["first"], gone[0].as_str());
    assert_eq!(wal["last"], gone[gone.len() - 1].as_str());
    assert_eq!(wal["boundary"], boundary.as_str());
    assert_eq!(wal["base_backup"], newer.as_str());
    assert_eq!(archived_wal(&env), before_all, "a dry run deletes nothing");

    let r = env.run(&["--json", "backups", "prune"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    let base = doc["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "base")
        .unwrap();
    assert_eq!(base["deleted"], serde_json::json!([older]));
    assert_eq!(doc["wal"]["expired"], gone.len(), "{doc}");
    assert_eq!(
        archived_wal(&env),
        kept,
        "exactly the WAL before {boundary} is gone"
    );
    // Objects too, not only their manifests; the history file whole.
    let files: Vec<String> = std::fs::read_dir(env.repo().join("wal"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in &gone {
        assert!(
            !files.iter().any(|f| f.starts_with(&format!("{name}."))),
            "{name} left behind: {files:?}"
        );
    }
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("00000002.history.") && !f.ends_with(".manifest.json")),
        "{files:?}"
    );
    let log = std::fs::read_to_string(root.join("log/backup.log")).unwrap();
    assert!(
        log.contains(&format!(
            "expired {} archived WAL file(s) {} .. {}",
            gone.len(),
            gone[0],
            gone[gone.len() - 1]
        )),
        "{log}"
    );

    // The archive still covers the newest base backup without a gap.
    let r = env.run(&["--json", "verify-backup", "--wal"]);
    assert_eq!(r.code(), 0, "{}{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["missing_since_base"], serde_json::json!([]));

    // Nothing more to expire; with expiry off, nothing is even looked at.
    let r = env.run(&["--json", "backups", "prune"]);
    assert_eq!(r.json()["wal"]["expired"], 0);
    configure("[retention]\nkeep_last = 1\nexpire_wal = false\n");
    let r = env.run(&["--json", "backups", "prune"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.json()["wal"]["skipped"], "retention.expire_wal = false");
}
