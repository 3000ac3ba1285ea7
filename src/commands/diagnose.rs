//! `diagnose`: one tar.gz bundle (written atomically, mode 0600) for the
//! incident team: service status, processes with CPU and memory, disks and
//! mounts, memory, load, a health run, TCP connect times to the database and
//! every configured endpoint, the last lines of each log, a database probe
//! (version, connections, waiting locks, long-running queries), tool and OS
//! versions and the effective config. Every part is redacted (known secrets in
//! plain, URL-encoded and base64 forms, passwords in URLs and key=value pairs)
//! and capped; the index lists what was redacted by name, never by value.
//! Optionally uploaded to the S3 repository and/or emailed.
//!
//! Replaces the emergency diagnostic script (`systemctl status`, `top`, `df`,
//! `free`, `ping`, `tail`, `psql -c 'SELECT 1'`, `tar`, `mail < bundle`), which
//! pinged instead of connecting, hung on a dead database and mailed secrets.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use crate::atomic_file::Parent;
use crate::checks::{human_bytes, parse_mountinfo, DiskUsage, LoadAvg, MemInfo};
use crate::config::{Config, Settings};
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::notify::{Event, Notifier, Severity};
use crate::redact::Redactor;
use crate::service::Service;

#[derive(Debug, Args)]
pub struct DiagnoseArgs {
    /// Write the bundle here: a directory, or a file name ending in .tar.gz (default diagnose.out_dir)
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Also upload the bundle to the S3 repository (under diagnostics/)
    #[arg(long)]
    pub upload: bool,
    /// Also email the bundle as an attachment through alerts.email
    #[arg(long)]
    pub email: bool,
}

/// One file of the bundle, before redaction and capping.
struct Part {
    name: String,
    text: String,
    /// Logs keep their end when capped; everything else its beginning.
    keep_tail: bool,
    error: Option<String>,
}

impl Part {
    fn ok(name: &str, text: String) -> Part {
        Part {
            name: name.into(),
            text,
            keep_tail: false,
            error: None,
        }
    }
}

/// What the index says about a part.
#[derive(Debug, Serialize)]
struct PartEntry {
    name: String,
    bytes: usize,
    truncated: bool,
    error: Option<String>,
}

type Collector = Box<dyn FnOnce() -> Part + Send>;

/// Runs each collector on its own thread; one that misses the deadline becomes a part saying so.
fn collect(jobs: Vec<(String, Collector)>, deadline: Duration) -> Vec<Part> {
    let (tx, rx) = mpsc::channel::<(usize, Part)>();
    let names: Vec<String> = jobs.iter().map(|(n, _)| n.clone()).collect();
    for (i, (_, f)) in jobs.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((i, f()));
        });
    }
    drop(tx);
    let end = Instant::now() + deadline;
    let mut parts: Vec<Option<Part>> = names.iter().map(|_| None).collect();
    while parts.iter().any(Option::is_none) {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((i, p)) => parts[i] = Some(p),
            Err(_) => break,
        }
    }
    parts
        .into_iter()
        .zip(names)
        .map(|(p, name)| {
            p.unwrap_or_else(|| Part {
                text: format!("not collected: no result within {}s\n", deadline.as_secs()),
                error: Some(format!("timed out after {}s", deadline.as_secs())),
                name,
                keep_tail: false,
            })
        })
        .collect()
}

/// A /proc process sample.
struct Proc {
    pid: i32,
    ppid: i32,
    state: char,
    ticks: u64,
    rss_pages: u64,
    uid: u32,
    cmd: String,
}

fn read_procs() -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat[stat.find('(').map(|i| i + 1).unwrap_or(0)..close].to_string();
        let f: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Uid:")
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                })
            })
            .unwrap_or(u32::MAX);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = if cmdline.is_empty() {
            format!("[{comm}]")
        } else {
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim()
                .to_string()
        };
        out.push(Proc {
            pid,
            ppid: num(1) as i32,
            state: f.first().and_then(|s| s.chars().next()).unwrap_or('?'),
            ticks: num(11) + num(12),
            rss_pages: num(21),
            uid,
            cmd,
        });
    }
    out
}

fn user_names() -> std::collections::HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.first()?.to_string()))
        })
        .collect()
}

/// Processes with CPU over a 250 ms sample and resident memory, busiest first.
fn processes() -> Part {
    let first = read_procs();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_millis(250));
    let second = read_procs();
    let secs = t0.elapsed().as_secs_f64();
    // SAFETY: sysconf has no preconditions.
    let (tck, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    let total = MemInfo::read().map(|m| m.total_bytes).unwrap_or(0).max(1) as f64;
    let users = user_names();
    let before: std::collections::HashMap<i32, u64> =
        first.iter().map(|p| (p.pid, p.ticks)).collect();
    let mut rows: Vec<(f64, &Proc)> = second
        .iter()
        .map(|p| {
            let d = p
                .ticks
                .saturating_sub(*before.get(&p.pid).unwrap_or(&p.ticks));
            (d as f64 / tck / secs * 100.0, p)
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.rss_pages.cmp(&a.1.rss_pages)));
    let mut text = format!(
        "{} processes; CPU over {:.0} ms, memory resident (RSS)\n{:>7} {:>7} {:<10} {} {:>6} {:>5} {:>10}  COMMAND\n",
        rows.len(),
        secs * 1000.0,
        "PID",
        "PPID",
        "USER",
        "S",
        "%CPU",
        "%MEM",
        "RSS"
    );
    for (cpu, p) in rows {
        let rss = p.rss_pages * page;
        let user = users
            .get(&p.uid)
            .cloned()
            .unwrap_or_else(|| p.uid.to_string());
        let cmd: String = p.cmd.chars().take(300).collect();
        let _ = writeln!(
            text,
            "{:>7} {:>7} {:<10} {} {:>6.1} {:>5.1} {:>10}  {cmd}",
            p.pid,
            p.ppid,
            user,
            p.state,
            cpu,
            rss as f64 / total * 100.0,
            human_bytes(rss as f64)
        );
    }
    Part::ok("processes.txt", text)
}

fn disks(timeout: Duration) -> Part {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse_mountinfo(&text);
    let pseudo = [
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "securityfs",
        "pstore",
        "bpf",
        "tracefs",
        "debugfs",
        "configfs",
        "fusectl",
        "hugetlbfs",
        "autofs",
        "binfmt_misc",
        "nsfs",
        "rpc_pipefs",
        "efivarfs",
    ];
    let mut out = String::from(
        "Space as non-root users see it (statvfs f_bavail; size = used + available)\n",
    );
    let _ = writeln!(
        out,
        "{:<40} {:<10} {:>10} {:>10} {:>10} {:>6} {:>8}  SOURCE",
        "MOUNT", "TYPE", "SIZE", "USED", "AVAIL", "USE%", "INODE%"
    );
    for m in mounts
        .iter()
        .filter(|m| !pseudo.contains(&m.fs_type.as_str()))
    {
        let (tx, rx) = mpsc::channel();
        let mp = m.mount_point.clone();
        std::thread::spawn(move || {
            let _ = tx.send(DiskUsage::of(&mp));
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(u)) => {
                let _ = writeln!(
                    out,
                    "{:<40} {:<10} {:>10} {:>10} {:>10} {:>5.1}% {:>8}  {}",
                    m.mount_point.display(),
                    m.fs_type,
                    human_bytes(u.size_bytes as f64),
                    human_bytes(u.used_bytes as f64),
                    human_bytes(u.avail_bytes as f64),
                    u.used_percent(),
                    u.inodes_used_percent()
                        .map(|p| format!("{p:.1}%"))
                        .unwrap_or_else(|| "-".into()),
                    m.source
                );
            }
            Ok(Err(e)) => {
                let _ = writeln!(
                    out,
                    "{:<40} {:<10} error: {e:#}",
                    m.mount_point.display(),
                    m.fs_type
                );
            }
            Err(_) => {
                let _ = writeln!(
                    out,
                    "{:<40} {:<10} no answer within {}s (hung mount?)",
                    m.mount_point.display(),
                    m.fs_type,
                    timeout.as_secs()
                );
            }
        }
    }
    out.push_str("\nAll mounts (/proc/self/mountinfo):\n");
    for m in &mounts {
        let _ = writeln!(
            out,
            "{} {} {} {}",
            m.mount_point.display(),
            m.fs_type,
            m.source,
            m.options
        );
    }
    Part::ok("disks.txt", out)
}

fn memory_and_load() -> Part {
    let mut out = String::new();
    match MemInfo::read() {
        Ok(m) => {
            let _ = writeln!(
                out,
                "memory: {} used of {} ({} available, MemAvailable); swap {} free of {}",
                human_bytes(m.used_bytes() as f64),
                human_bytes(m.total_bytes as f64),
                human_bytes(m.available_bytes as f64),
                human_bytes(m.swap_free_bytes as f64),
                human_bytes(m.swap_total_bytes as f64)
            );
        }
        Err(e) => {
            let _ = writeln!(out, "memory: {e:#}");
        }
    }
    match LoadAvg::read() {
        Ok(l) => {
            let _ = writeln!(
                out,
                "load: {} {} {} on {} cores",
                l.load1, l.load5, l.load15, l.cores
            );
        }
        Err(e) => {
            let _ = writeln!(out, "load: {e:#}");
        }
    }
    if let Ok(up) = std::fs::read_to_string("/proc/uptime") {
        if let Some(s) = up
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            let _ = writeln!(out, "uptime: {:.1} hours", s / 3600.0);
        }
    }
    out.push_str("\n/proc/meminfo:\n");
    out.push_str(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
    Part::ok("memory-load.txt", out)
}

/// `host:port` of a URL (default ports by scheme).
fn url_endpoint(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?))
}

/// Every endpoint the tool talks to, with why.
fn endpoints(cfg: &Config) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let db = &cfg.database;
    if !db.host.starts_with('/') {
        v.push(("database".into(), format!("{}:{}", db.host, db.port)));
    }
    if let Some(e) = url_endpoint(&cfg.app.health_url) {
        v.push(("app health URL".into(), e));
    }
    if cfg.s3.enabled {
        if let Some(e) = url_endpoint(&cfg.s3.endpoint) {
            v.push(("S3 endpoint".into(), e));
        }
    }
    if let Some(u) = &cfg.alerts.slack.webhook_url {
        if let Some(e) = url_endpoint(u.expose()) {
            v.push(("Slack webhook".into(), e));
        }
    }
    if cfg.alerts.pagerduty.routing_key.is_some() {
        if let Some(e) = url_endpoint(&cfg.alerts.pagerduty.events_url) {
            v.push(("PagerDuty".into(), e));
        }
    }
    let mail = &cfg.alerts.email;
    if !mail.to.is_empty() && mail.transport == crate::config::EmailTransport::Smtp {
        v.push((
            "SMTP relay".into(),
            format!("{}:{}", mail.smtp_host, mail.smtp_port),
        ));
    }
    for e in &cfg.diagnose.endpoints {
        v.push(("diagnose.endpoints".into(), e.clone()));
    }
    v
}

/// TCP connect time (not ping) to each endpoint, all in parallel, each with its deadline.
fn network(cfg: &Config, timeout: Duration) -> Part {
    let mut out = String::from("TCP connect time to each endpoint (a connect, not a ping)\n");
    if cfg.database.host.starts_with('/') {
        let sock = format!("{}/.s.PGSQL.{}", cfg.database.host, cfg.database.port);
        let t = Instant::now();
        let r = std::os::unix::net::UnixStream::connect(&sock);
        let _ = writeln!(
            out,
            "database (unix socket {sock}): {}",
            match r {
                Ok(_) => format!("connected in {:.1} ms", t.elapsed().as_secs_f64() * 1000.0),
                Err(e) => format!("FAILED: {e}"),
            }
        );
    }
    let (tx, rx) = mpsc::channel();
    let list = endpoints(cfg);
    for (i, (why, ep)) in list.iter().cloned().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let line = match ep.to_socket_addrs() {
                Err(e) => format!("{why} {ep}: cannot resolve: {e}"),
                Ok(addrs) => {
                    let addrs: Vec<_> = addrs.collect();
                    let mut res = Vec::new();
                    for a in addrs.iter().take(2) {
                        let c = Instant::now();
                        res.push(match TcpStream::connect_timeout(a, timeout) {
                            Ok(_) => format!(
                                "{a} connected in {:.1} ms",
                                c.elapsed().as_secs_f64() * 1000.0
                            ),
                            Err(e) => format!(
                                "{a} FAILED after {:.0} ms: {e}",
                                c.elapsed().as_secs_f64() * 1000.0
                            ),
                        });
                    }
                    if res.is_empty() {
                        format!("{why} {ep}: no address")
                    } else {
                        format!(
                            "{why} {ep} (resolved in {:.1} ms): {}",
                            (t.elapsed().as_secs_f64() * 1000.0).min(99999.0),
                            res.join("; ")
                        )
                    }
                }
            };
            let _ = tx.send((i, line));
        });
    }
    drop(tx);
    let end = Instant::now() + timeout * 3;
    let mut lines: Vec<Option<String>> = vec![None; list.len()];
    while lines.iter().any(Option::is_none) {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((i, l)) => lines[i] = Some(l),
            Err(_) => break,
        }
    }
    for (l, (why, ep)) in lines.into_iter().zip(&list) {
        out.push_str(&l.unwrap_or_else(|| {
            format!(
                "{why} {ep}: no answer within {}s (DNS?)",
                (timeout * 3).as_secs()
            )
        }));
        out.push('\n');
    }
    Part::ok("network.txt", out)
}

/// Text table of a simple query's rows (every value as text).
fn table(client: &mut postgres::Client, sql: &str) -> String {
    match client.simple_query(sql) {
        Err(e) => {
            let detail = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_else(|| e.to_string());
            format!("  query failed: {detail}\n")
        }
        Ok(msgs) => {
            let mut out = String::new();
            let mut header = false;
            let mut n = 0;
            for m in msgs {
                if let postgres::SimpleQueryMessage::Row(row) = m {
                    if !header {
                        let cols: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
                        let _ = writeln!(out, "  {}", cols.join(" | "));
                        header = true;
                    }
                    let vals: Vec<String> = (0..row.len())
                        .map(|i| row.get(i).unwrap_or("NULL").replace('\n', " "))
                        .collect();
                    let _ = writeln!(out, "  {}", vals.join(" | "));
                    n += 1;
                }
            }
            if n == 0 {
                out.push_str("  (none)\n");
            }
            out
        }
    }
}

fn database(cfg: &Config) -> Part {
    let mut t = PgTarget::from_config(&cfg.database);
    let d = Duration::from_secs(cfg.diagnose.db_timeout_secs);
    t.connect_timeout = d;
    t.command_timeout = d;
    let db = &cfg.database.name;
    let started = Instant::now();
    let mut client = match t.connect(db) {
        Ok(c) => c,
        Err(e) => {
            return Part {
                name: "database.txt".into(),
                text: format!("{}: {e:#}\n", t.describe(db)),
                keep_tail: false,
                error: Some("cannot connect".into()),
            }
        }
    };
    let mut out = format!(
        "{}: connected in {:.1} ms (every query below runs with statement_timeout = {}s)\n",
        t.describe(db),
        started.elapsed().as_secs_f64() * 1000.0,
        d.as_secs()
    );
    let long = cfg.diagnose.long_query_secs;
    let sections: [(&str, String); 6] = [
        ("version", "SELECT version(), current_setting('max_connections') AS max_connections, pg_size_pretty(pg_database_size(current_database())) AS database_size".into()),
        ("connections by database and state", "SELECT coalesce(datname, '-') AS datname, coalesce(state, backend_type) AS state, count(*) FROM pg_stat_activity GROUP BY 1, 2 ORDER BY 3 DESC".into()),
        ("locks waiting", "SELECT a.pid, a.usename, a.datname, l.locktype, l.mode, coalesce(l.relation::regclass::text, '-') AS relation, \
          date_trunc('second', now() - a.query_start) AS waiting_for, pg_blocking_pids(a.pid) AS blocked_by, left(a.query, 500) AS query \
          FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE NOT l.granted ORDER BY a.query_start".into()),
        (
            "queries running longer than diagnose.long_query_secs",
            format!(
                "SELECT pid, usename, datname, state, date_trunc('second', now() - query_start) AS running_for, wait_event_type, wait_event, left(query, 1000) AS query \
                 FROM pg_stat_activity WHERE state IS NOT NULL AND state <> 'idle' AND pid <> pg_backend_pid() \
                 AND query_start < now() - interval '{long} seconds' ORDER BY query_start"
            ),
        ),
        ("replication", "SELECT client_addr, state, sent_lsn, replay_lsn, replay_lag FROM pg_stat_replication".into()),
        ("archiver", "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver".into()),
    ];
    for (title, sql) in sections {
        let _ = writeln!(out, "\n== {title}");
        out.push_str(&table(&mut client, &sql));
    }
    Part::ok("database.txt", out)
}

fn versions(cfg: &Config, timeout: Duration) -> Part {
    let mut out = format!("tuneton-ops {}\n", env!("CARGO_PKG_VERSION"));
    if let Ok(v) = std::fs::read_to_string("/proc/version") {
        let _ = write!(out, "kernel: {v}");
    }
    if let Ok(os) = std::fs::read_to_string("/etc/os-release") {
        if let Some(p) = os.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
            let _ = writeln!(out, "os: {}", p.trim_matches('"'));
        }
    }
    let t = PgTarget::from_config(&cfg.database);
    let tools: Vec<(String, std::process::Command)> = vec![
        ("psql".into(), {
            let mut c = t.tool("psql");
            c.arg("--version");
            c
        }),
        ("pg_dump".into(), {
            let mut c = t.tool("pg_dump");
            c.arg("--version");
            c
        }),
        ("pg_restore".into(), {
            let mut c = t.tool("pg_restore");
            c.arg("--version");
            c
        }),
        ("systemctl".into(), {
            let mut c = std::process::Command::new("systemctl");
            c.arg("--version");
            c
        }),
        ("gpg".into(), {
            let mut c = std::process::Command::new("gpg");
            c.arg("--version");
            c
        }),
        ("zstd".into(), {
            let mut c = std::process::Command::new("zstd");
            c.arg("--version");
            c
        }),
    ];
    for (name, mut cmd) in tools {
        let line = match crate::process::output_with_deadline(&mut cmd, timeout, &name) {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
            Err(e) => format!("not available ({e:#})"),
        };
        let _ = writeln!(out, "{name}: {line}");
    }
    Part::ok("versions.txt", out)
}

fn config_part(s: &Settings) -> Part {
    let mut text = match &s.file {
        Some(p) => format!(
            "# config file: {}\n# secrets show as <redacted>\n",
            p.display()
        ),
        None => "# no config file; built-in defaults and environment\n".into(),
    };
    for (key, value, source) in s.entries() {
        let shown = match value {
            serde_json::Value::String(v) => format!("{v:?}"),
            other => other.to_string(),
        };
        let _ = writeln!(text, "{key} = {shown}    # {source}");
    }
    Part::ok("config.txt", text)
}

/// The last `n` lines of a file, reading at most `max_read` bytes from its end.
fn tail_lines(path: &Path, n: usize, max_read: u64) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let len = f.seek(SeekFrom::End(0))?;
    let start = len.saturating_sub(max_read);
    f.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    f.take(max_read).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let keep = &lines[lines.len().saturating_sub(n)..];
    Ok((keep.join("\n") + "\n", len))
}

fn logs(cfg: &Config) -> Vec<Part> {
    let mut files: Vec<PathBuf> = cfg.app.log_files.clone();
    if let Ok(dir) = std::fs::read_dir(&cfg.paths.log_dir) {
        let mut own: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        own.sort();
        files.extend(own);
    }
    let mut seen = std::collections::HashSet::new();
    let mut parts = Vec::new();
    let n = cfg.diagnose.log_lines;
    let max_read = cfg.diagnose.part_max_bytes.saturating_mul(4);
    for f in files {
        let key = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
        if !seen.insert(key) {
            continue;
        }
        let name = format!(
            "logs/{}",
            f.to_string_lossy()
                .trim_start_matches('/')
                .replace('/', "_")
        );
        let part = match tail_lines(&f, n, max_read) {
            Ok((text, len)) => Part {
                name,
                text: format!(
                    "# last {n} lines of {} ({} bytes)\n{text}",
                    f.display(),
                    len
                ),
                keep_tail: true,
                error: None,
            },
            Err(e) => Part {
                name,
                text: format!("# {}: {e}\n", f.display()),
                keep_tail: true,
                error: Some(e.to_string()),
            },
        };
        parts.push(part);
    }
    parts
}

/// Cuts `text` to `max` bytes on a character boundary, keeping the head or the tail.
fn cap(text: String, max: usize, keep_tail: bool) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let note_room = 120.min(max / 2);
    let keep = max - note_room;
    if keep_tail {
        let mut i = text.len() - keep;
        while !text.is_char_boundary(i) {
            i += 1;
        }
        (
            format!(
                "[truncated: first {i} bytes omitted (diagnose.part_max_bytes)]\n{}",
                &text[i..]
            ),
            true,
        )
    } else {
        let mut i = keep;
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        (
            format!(
                "{}\n[truncated: {} more bytes omitted (diagnose.part_max_bytes)]\n",
                &text[..i],
                text.len() - i
            ),
            true,
        )
    }
}

/// Where the bundle goes: `--out` (a .tar.gz file or a directory) or diagnose.out_dir.
fn bundle_path(args: &DiagnoseArgs, cfg: &Config, name: &str) -> PathBuf {
    match &args.out {
        Some(p) if p.to_string_lossy().ends_with(".tar.gz") => p.clone(),
        Some(p) => p.join(format!("{name}.tar.gz")),
        None => cfg.diagnose.out_dir.join(format!("{name}.tar.gz")),
    }
}

pub fn run(ctx: &Ctx, args: DiagnoseArgs) -> Result<ExitCode> {
    let cfg = ctx.config().clone();
    let upload = args.upload || cfg.diagnose.upload;
    let email = args.email || cfg.diagnose.email;
    if upload && !cfg.s3.enabled {
        return Err(could_not_start(
            "--upload needs the S3 repository (s3.enabled = true)",
        ));
    }
    if email && cfg.alerts.email.to.is_empty() {
        return Err(could_not_start(
            "--email needs alerts.email.to (or EMAIL_RECIPIENTS)",
        ));
    }
    let host = cfg
        .alerts
        .host_name
        .clone()
        .unwrap_or_else(crate::manifest::host_name);
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let safe_host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("tuneton-diag-{safe_host}-{stamp}");
    let path = bundle_path(&args, &cfg, &name);
    // --out is the operator's: its directory must exist (a typo must not
    // create a tree); diagnose.out_dir is ours and is created when missing.
    let parent = if args.out.is_some() {
        let dir = path.parent().unwrap_or(Path::new("."));
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            return Err(could_not_start(format!(
                "diagnose --out {}: directory {} does not exist (not created: create it, or give an existing directory)",
                args.out.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                dir.display()
            )));
        }
        Parent::MustExist
    } else {
        Parent::Create
    };
    if ctx.global.dry_run {
        let text = format!(
            "would write {} (0600) with service, processes, disks, memory/load, health, network, database, versions, config and log parts{}{}",
            path.display(),
            if upload { "; upload to S3 diagnostics/" } else { "" },
            if email { "; email it via alerts.email" } else { "" }
        );
        ctx.emit(&json!({"dry_run": true, "bundle": path}), &text);
        return Ok(ExitCode::Success);
    }

    let started = Instant::now();
    let t = Duration::from_secs(cfg.diagnose.connect_timeout_secs);
    let mut jobs: Vec<(String, Collector)> = Vec::new();
    {
        let c = cfg.clone();
        jobs.push((
            "service.txt".into(),
            Box::new(move || {
                Part::ok(
                    "service.txt",
                    Service::from_app_config(&c.app).status_text(),
                )
            }),
        ));
    }
    jobs.push(("processes.txt".into(), Box::new(processes)));
    jobs.push(("disks.txt".into(), Box::new(move || disks(t))));
    jobs.push(("memory-load.txt".into(), Box::new(memory_and_load)));
    {
        let c = cfg.clone();
        jobs.push((
            "health.json".into(),
            Box::new(move || {
                let r = super::health::run_checks(&c, &[]);
                Part::ok(
                    "health.json",
                    serde_json::to_string_pretty(
                        &json!({"status": super::health::overall(&r), "checks": r}),
                    )
                    .unwrap_or_default(),
                )
            }),
        ));
    }
    {
        let c = cfg.clone();
        jobs.push(("network.txt".into(), Box::new(move || network(&c, t))));
    }
    {
        let c = cfg.clone();
        jobs.push(("database.txt".into(), Box::new(move || database(&c))));
    }
    {
        let c = cfg.clone();
        jobs.push(("versions.txt".into(), Box::new(move || versions(&c, t))));
    }
    let longest =
        t * 3 + Duration::from_secs(cfg.diagnose.db_timeout_secs * 2) + Duration::from_secs(15);
    let mut parts = collect(jobs, longest);
    parts.push(config_part(&ctx.settings));
    parts.extend(logs(&cfg));

    let mut redactor = Redactor::for_config(&cfg);
    let max = cfg.diagnose.part_max_bytes as usize;
    let mut entries = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for p in parts {
        let clean = redactor.apply(&p.text);
        let (text, truncated) = cap(clean, max, p.keep_tail);
        entries.push(PartEntry {
            name: p.name.clone(),
            bytes: text.len(),
            truncated,
            error: p.error.map(|e| redactor.apply(&e)),
        });
        files.push((p.name, text.into_bytes()));
    }
    let index = json!({
        "bundle": name,
        "created": chrono::Utc::now().to_rfc3339(),
        "host": host,
        "tool_version": env!("CARGO_PKG_VERSION"),
        "collected_in_ms": started.elapsed().as_millis(),
        "part_max_bytes": max,
        "parts": entries,
        "redacted": redactor.report(),
        "redaction": "every part was redacted: known secrets (plain, URL-encoded, base64), passwords in URLs, Authorization header credentials, Bearer tokens, password/secret/token/api_key pairs, Slack webhook paths; names and counts only, never values",
    });
    let index_text = redactor.apply(&serde_json::to_string_pretty(&index)?);
    files.insert(0, ("index.json".into(), index_text.into_bytes()));

    let bytes = tar_gz(&name, &files).context("building the bundle")?;
    crate::atomic_file::write_replacing(&path, &bytes, 0o600, parent).with_context(|| {
        format!(
            "writing the bundle {} (diagnose.out_dir / --out)",
            path.display()
        )
    })?;
    log::info!(
        "diagnostic bundle {} ({})",
        path.display(),
        human_bytes(bytes.len() as f64)
    );

    let mut code = ExitCode::Success;
    let mut uploaded = None;
    let mut upload_error = None;
    if upload {
        let key = format!("diagnostics/{name}.tar.gz");
        match crate::repo::s3::S3Repo::open(&cfg.s3).and_then(|r| r.put_blob(&key, &bytes)) {
            Ok(url) => uploaded = Some(url),
            Err(e) => {
                log::error!("uploading the bundle: {e:#}");
                upload_error = Some(format!("{e:#}"));
                code = ExitCode::Failed;
            }
        }
    }
    let mut emailed = None;
    if email {
        let n = Notifier::from_config(&cfg.alerts);
        let ev = Event {
            key: "diagnose".into(),
            severity: Severity::Info,
            resolve: false,
            title: format!("diagnostic bundle from {host}"),
            body: format!("Emergency diagnostics from {host}, collected {stamp}. The bundle is redacted; its index.json lists what was removed."),
            attachment: Some((format!("{name}.tar.gz"), bytes.clone())),
        };
        let d = n.send(&ev, Some(&["email"]));
        if d.iter().any(|x| !x.ok) {
            code = ExitCode::Failed;
        }
        emailed = d.into_iter().next();
    }
    let redacted: Vec<String> = redactor
        .report()
        .iter()
        .filter(|r| r.count > 0)
        .map(|r| format!("{} ({}): {}", r.name, r.kind, r.count))
        .collect();
    let mut text = format!(
        "bundle: {} ({}, {} parts, {:.1}s)\nredacted: {}\n",
        path.display(),
        human_bytes(bytes.len() as f64),
        files.len(),
        started.elapsed().as_secs_f64(),
        if redacted.is_empty() {
            "nothing found".into()
        } else {
            redacted.join(", ")
        }
    );
    if let Some(u) = &uploaded {
        let _ = writeln!(text, "uploaded: {u}");
    }
    if let Some(e) = &upload_error {
        let _ = writeln!(text, "upload FAILED: {e}");
    }
    if let Some(d) = &emailed {
        let _ = writeln!(
            text,
            "email: {}",
            if d.ok {
                format!("sent ({})", d.detail)
            } else {
                format!("FAILED: {}", d.detail)
            }
        );
    }
    ctx.emit(
        &json!({
            "ok": code == ExitCode::Success,
            "bundle": path,
            "bytes": bytes.len(),
            "parts": files.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "redacted": redactor.report(),
            "uploaded": uploaded,
            "upload_error": upload_error,
            "email": emailed,
        }),
        &text,
    );
    Ok(code)
}

fn tar_gz(dir: &str, files: &[(String, Vec<u8>)]) -> Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = chrono::Utc::now().timestamp().max(0) as u64;
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, format!("{dir}/{name}"), bytes.as_slice())?;
    }
    let mut gz = tar.into_inner()?;
    gz.flush()?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_keeps_the_right_end_on_a_char_boundary() {
        let text = "é".repeat(2000);
        let (head, t) = cap(text.clone(), 1024, false);
        assert!(t && head.len() <= 1024 + 80 && head.contains("more bytes omitted"));
        let (tail, t) = cap(text, 1024, true);
        assert!(t && tail.ends_with('é') && tail.starts_with("[truncated"));
        assert_eq!(
            cap("short".into(), 1024, false),
            ("short".to_string(), false)
        );
    }

    #[test]
    fn tails_take_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        let (t, len) = tail_lines(&p, 3, 1 << 20).unwrap();
        assert_eq!(t, "line 98\nline 99\nline 100\n");
        assert_eq!(len, 792);
    }
}
