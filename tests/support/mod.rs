//! Test harness: a real PostgreSQL 15 cluster (started once per test binary,
//! as the `postgres` user when we are root, stopped at exit), one database and
//! one temp directory per test, and the built `tuneton-ops` binary run with a
//! clean environment.

#![allow(dead_code)]

pub mod app;
pub mod receiver;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const PGBIN: &str = "/usr/lib/postgresql/15/bin";
pub const PASSPHRASE: &str = "correct horse battery staple 7f3e";

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL server binary as `postgres` when we are root (initdb refuses root).
pub fn as_postgres(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

extern "C" fn stop_cluster() {
    if let Some(c) = CLUSTER.get() {
        let _ = as_postgres(&format!("{PGBIN}/pg_ctl"))
            .arg("-D")
            .arg(c.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&c.dir);
    }
}

pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("tnpg")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let port = init_and_start(&dir, "-c max_connections=200");
        // SAFETY: registering a plain extern "C" fn to run at process exit.
        unsafe {
            libc::atexit(stop_cluster);
        }
        Cluster { dir, port }
    })
}

/// initdb in `dir/data` (as postgres when we are root) and start it on a free
/// port, socket in `dir`, log in `dir/log`; returns the port.
fn init_and_start(dir: &Path, options: &str) -> u16 {
    if is_root() {
        assert!(Command::new("chown")
            .arg("postgres")
            .arg(dir)
            .status()
            .unwrap()
            .success());
    }
    let port = free_port();
    let out = as_postgres(&format!("{PGBIN}/initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "--auth-local=trust", "--auth-host=trust"])
        .args(["-E", "UTF8", "--locale=C.UTF-8", "-N"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_postgres(&format!("{PGBIN}/pg_ctl"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-o"])
        .arg(format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {options}",
            dir.display()
        ))
        .arg("start")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctl start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    port
}

/// The child of `parent` running `comm`, if any (from /proc).
pub fn child_named(parent: u32, comm: &str) -> Option<i32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && name == comm).then_some(pid)
    })
}

/// Waits (with a deadline) for a child of `parent` running `comm`.
pub fn wait_for_child(parent: &mut std::process::Child, comm: &str) -> i32 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(pid) = child_named(parent.id(), comm) {
            return pid;
        }
        assert!(
            parent.try_wait().unwrap().is_none(),
            "the run ended before {comm} was seen"
        );
        assert!(std::time::Instant::now() < deadline, "{comm} never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Whether `pid` runs (not a zombie).
pub fn pid_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, r)| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// A cluster of its own for one test (a second host's server), stopped and removed on drop.
pub struct TempCluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl TempCluster {
    pub fn start() -> TempCluster {
        let dir = tempfile::Builder::new()
            .prefix("tnpg2")
            .tempdir_in("/tmp")
            .unwrap();
        let port = init_and_start(dir.path(), "");
        TempCluster { dir, port }
    }

    /// psql against a database of this cluster; trimmed stdout.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql_at(self.port, db, sql)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{PGBIN}/pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs SQL with psql against a database of the shared cluster; returns trimmed stdout.
pub fn psql(db: &str, sql: &str) -> String {
    psql_at(cluster().port, db, sql)
}

/// Runs SQL with psql against a database of the server on `port`; returns trimmed stdout.
pub fn psql_at(port: u16, db: &str, sql: &str) -> String {
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
        ])
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .arg("-c")
        .arg(sql)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn count(db: &str, table: &str) -> i64 {
    psql(db, &format!("SELECT count(*) FROM {table}"))
        .parse()
        .unwrap()
}

pub fn db_exists(db: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
    ) == "1"
}

/// One test's world: a database with TuneTON-like tables, a temp dir with a
/// repository, log/run dirs, app and config dirs, a passphrase file and a config.
pub struct TestEnv {
    pub name: String,
    pub db: String,
    pub tmp: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl TestEnv {
    /// A database `t_<name>` with users (300), tracks (1500), sessions (900).
    pub fn new(name: &str) -> TestEnv {
        let env = TestEnv::empty(name);
        psql(&env.db, SAMPLE_SQL);
        env
    }

    /// Same, with an empty database.
    pub fn empty(name: &str) -> TestEnv {
        cluster();
        let db = format!("t_{name}");
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
        );
        psql("postgres", &format!("CREATE DATABASE {db}"));
        let tmp = tempfile::Builder::new()
            .prefix("tnt")
            .tempdir_in("/tmp")
            .unwrap();
        let root = tmp.path();
        for d in ["app/dist", "etc", "backups"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("app/dist/server.js"), "console.log('tuneton')\n").unwrap();
        std::fs::write(
            root.join("app/dist/engine.wasm"),
            (0..50_000u32)
                .flat_map(|i| i.to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        std::fs::write(root.join("etc/tuneton.env"), "PORT=3000\n").unwrap();
        write_secret(&root.join("passphrase"), PASSPHRASE);
        let env = TestEnv {
            name: name.to_string(),
            db,
            config_path: root.join("ops.toml"),
            tmp,
        };
        env.write_config("");
        env
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn repo(&self) -> PathBuf {
        self.root().join("backups")
    }

    /// Writes the config; `extra` is appended (later tables may not repeat earlier ones).
    pub fn write_config(&self, extra: &str) {
        let r = self.root().display();
        let text = format!(
            "[paths]\nlog_dir = \"{r}/log\"\nrun_dir = \"{r}/run\"\napp_dir = \"{r}/app\"\nconfig_dir = \"{r}/etc\"\nscratch_dir = \"{r}\"\n\n\
             [database]\nhost = \"127.0.0.1\"\nport = {}\nuser = \"postgres\"\nname = \"{}\"\nconnect_timeout_secs = 5\n\n\
             [repository]\npath = \"{r}/backups\"\n\n{extra}\n",
            cluster().port,
            self.db
        );
        let text = if extra.contains("[encryption]") {
            text
        } else {
            format!("{text}\n[encryption]\nmode = \"symmetric\"\npassphrase_file = \"{r}/passphrase\"\n")
        };
        std::fs::write(&self.config_path, text).unwrap();
    }

    /// The binary with a clean environment and this test's config.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tuneton-ops"));
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().to_string();
            if k.starts_with("PG")
                || k.starts_with("DB_")
                || k.starts_with("TUNETON")
                || ["BACKUP_DIR", "LOG_DIR", "APP_DIR"].contains(&k.as_str())
            {
                c.env_remove(k);
            }
        }
        c.env("TUNETON_OPS_CONFIG", &self.config_path)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.cmd(args).output().unwrap())
    }

    /// `backups list --json` entries.
    pub fn list(&self) -> Vec<serde_json::Value> {
        let r = self.run(&["--json", "backups", "list"]);
        assert_eq!(r.code(), 0, "{}", r.stderr());
        r.json()["backups"].as_array().unwrap().clone()
    }

    /// Runs a backup of `kind` and returns the new backup's id and object path.
    pub fn backup(&self, kind: &str) -> (String, PathBuf) {
        let r = self.run(&["--json", "backup", "--kind", kind]);
        assert_eq!(r.code(), 0, "backup failed: {}", r.stderr());
        let w = &r.json()["written"][0];
        (
            w["id"].as_str().unwrap().to_string(),
            PathBuf::from(w["path"].as_str().unwrap()),
        )
    }

    /// A GnuPG home for the gpg CLI (short path; agent killed on drop).
    pub fn gnupg_home(&self) -> GnupgHome {
        GnupgHome::new()
    }
}

pub struct GnupgHome(pub tempfile::TempDir);

impl GnupgHome {
    pub fn new() -> GnupgHome {
        let d = tempfile::Builder::new()
            .prefix("tg")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::write(d.path().join("gpg-agent.conf"), "allow-loopback-pinentry\n").unwrap();
        GnupgHome(d)
    }
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    /// gpg with batch flags and the test passphrase from a file (never argv).
    pub fn gpg(&self, passphrase_file: &Path) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(self.path())
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase-file",
            ])
            .arg(passphrase_file);
        c
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// Every file below `dir` (recursively; a missing dir has none), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn write_secret(path: &Path, value: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("{value}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A finished run of the binary.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout()))
    }
}

/// Shell pipeline helper: runs `bash -c` and returns its output.
pub fn sh(script: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .env_remove("PGPASSWORD")
        .output()
        .unwrap()
}

pub const SAMPLE_SQL: &str = "
CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tracks (id bigserial PRIMARY KEY, owner uuid REFERENCES users(id), title text, wasm_params jsonb);
CREATE TABLE sessions (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), user_id uuid REFERENCES users(id), meta jsonb);
CREATE TABLE empty_audit (id int);
INSERT INTO users (email) SELECT 'user' || g || '@example.com' FROM generate_series(1, 300) g;
INSERT INTO tracks (owner, title, wasm_params) SELECT u.id, md5(random()::text), jsonb_build_object('bpm', (random()*200)::int) FROM users u, generate_series(1, 5);
INSERT INTO sessions (user_id, meta) SELECT id, jsonb_build_object('ua', md5(random()::text)) FROM users, generate_series(1, 3);
";
