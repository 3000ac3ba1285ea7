//! `health`: the application service, its HTTP health endpoint, the database
//! (a real connection and query, connect time measured), disk space and inodes
//! of each configured path, memory and load; each check with its own deadline
//! and thresholds, all run in parallel. Text, JSON, Nagios plugin output and a
//! Prometheus textfile; exit 0/1/2/3 by the worst check.
//!
//! Replaces the daily health check script (`systemctl is-active`, `pg_isready`,
//! `df /`, `free`), which could not tell "down" from "could not look" and
//! alerted only for the application.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Ctx;
use crate::atomic_file::{MissingDir, Parent};
use crate::checks::{
    human_bytes, judge, DiskUsage, LoadAvg, MemInfo, PerfDatum, Status, Threshold,
};
use crate::config::Config;
use crate::db::PgTarget;
use crate::exit::ExitCode;
use crate::http::{self, HealthExpect, Probe};
use crate::notify::{Delivery, Event, Notifier, Severity};
use crate::service::{Service, ServiceState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per check
    Text,
    /// One JSON document (same as --json)
    Json,
    /// Nagios/Icinga plugin output: status line with perfdata, then one line per check
    Nagios,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Service,
    Http,
    Database,
    Disk,
    Memory,
    Load,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Output format
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Also write the results as a Prometheus textfile (replaced atomically), e.g. for node_exporter
    #[arg(long, value_name = "PATH")]
    pub prom_file: Option<PathBuf>,
    /// Alert through the configured channels when a check changes state (state kept in health.state_file)
    #[arg(long)]
    pub alert: bool,
    /// Run only these checks (repeatable; default: every enabled check)
    #[arg(long = "check", value_enum, value_name = "CHECK")]
    pub checks: Vec<CheckKind>,
}

/// A Prometheus sample.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

fn metric(name: &'static str, help: &'static str, value: f64) -> Metric {
    Metric {
        name,
        help,
        labels: Vec::new(),
        value,
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub status: Status,
    pub summary: String,
    pub elapsed_ms: u128,
    #[serde(skip)]
    pub elapsed: Duration,
    pub values: serde_json::Map<String, Value>,
    #[serde(skip)]
    pub perf: Vec<PerfDatum>,
    #[serde(skip)]
    pub metrics: Vec<Metric>,
}

impl CheckResult {
    fn new(name: impl Into<String>, status: Status, summary: impl Into<String>) -> CheckResult {
        CheckResult {
            name: name.into(),
            status,
            summary: summary.into(),
            elapsed_ms: 0,
            elapsed: Duration::ZERO,
            values: serde_json::Map::new(),
            perf: Vec::new(),
            metrics: Vec::new(),
        }
    }
    fn value(mut self, k: &str, v: impl Into<Value>) -> CheckResult {
        self.values.insert(k.into(), v.into());
        self
    }
}

/// A check to run on its own thread, with the state it gets when it misses its deadline.
struct Job {
    name: String,
    timeout: Duration,
    on_timeout: Status,
    run: Box<dyn FnOnce() -> CheckResult + Send>,
}

/// Runs every job on its own thread; a job that has not answered by its
/// deadline (plus a small grace) gets its `on_timeout` state. Total time is
/// bounded by the slowest deadline, never by a hung read.
fn run_parallel(jobs: Vec<Job>) -> Vec<CheckResult> {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(usize, CheckResult)>();
    let mut pending: Vec<(usize, String, Instant, Status, Duration)> = Vec::new();
    for (i, job) in jobs.into_iter().enumerate() {
        let grace = (job.timeout / 20).max(Duration::from_millis(50));
        pending.push((
            i,
            job.name.clone(),
            started + job.timeout + grace,
            job.on_timeout,
            job.timeout,
        ));
        let tx = tx.clone();
        let run = job.run;
        std::thread::spawn(move || {
            let t = Instant::now();
            let mut r = run();
            r.elapsed = t.elapsed();
            r.elapsed_ms = r.elapsed.as_millis();
            let _ = tx.send((i, r));
        });
    }
    drop(tx);
    let mut results: Vec<Option<CheckResult>> = vec![None; pending.len()];
    loop {
        let waiting: Vec<&(usize, String, Instant, Status, Duration)> =
            pending.iter().filter(|p| results[p.0].is_none()).collect();
        let Some(next) = waiting.iter().map(|p| p.2).min() else {
            break;
        };
        match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok((i, r)) => results[i] = Some(r),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                for p in &pending {
                    if results[p.0].is_none() && p.2 <= now {
                        let mut r = CheckResult::new(
                            p.1.clone(),
                            p.3,
                            format!(
                                "no answer within {}s (health.{}.timeout_secs)",
                                p.4.as_secs_f64(),
                                p.1.split(':').next().unwrap_or(&p.1)
                            ),
                        );
                        r.elapsed = started.elapsed();
                        r.elapsed_ms = r.elapsed.as_millis();
                        results[p.0] = Some(r);
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    results.into_iter().flatten().collect()
}

fn jobs_for(cfg: &Config, only: &[CheckKind]) -> Vec<Job> {
    let h = &cfg.health;
    let wanted = |k: CheckKind, enabled: bool| {
        if only.is_empty() {
            enabled
        } else {
            only.contains(&k)
        }
    };
    let secs = Duration::from_secs;
    let mut jobs = Vec::new();
    if wanted(CheckKind::Service, h.service.enabled) {
        let mut svc = Service::from_app_config(&cfg.app);
        svc.status_timeout = secs(h.service.timeout_secs);
        jobs.push(Job {
            name: "service".into(),
            timeout: secs(h.service.timeout_secs),
            on_timeout: Status::Unknown,
            run: Box::new(move || service_check(&svc)),
        });
    }
    if wanted(CheckKind::Http, h.http.enabled) {
        let url = cfg.app.health_url.clone();
        let expect = HealthExpect::from_app_config(&cfg.app);
        let t = h.http.clone();
        jobs.push(Job {
            name: "http".into(),
            timeout: secs(t.timeout_secs),
            on_timeout: Status::Critical,
            run: Box::new(move || http_check(&url, &expect, &t)),
        });
    }
    if wanted(CheckKind::Database, h.database.enabled) {
        let mut target = PgTarget::from_config(&cfg.database);
        target.connect_timeout = secs(h.database.timeout_secs);
        target.connect_timeout_key = "health.database.timeout_secs";
        target.command_timeout = secs(h.database.timeout_secs);
        let db = cfg.database.name.clone();
        let t = h.database.clone();
        jobs.push(Job {
            name: "database".into(),
            timeout: secs(t.timeout_secs),
            on_timeout: Status::Critical,
            run: Box::new(move || database_check(&target, &db, &t)),
        });
    }
    if wanted(CheckKind::Disk, h.disk.enabled) {
        for path in &h.disk.paths {
            let d = h.disk.clone();
            let path = path.clone();
            jobs.push(Job {
                name: format!("disk:{}", path.display()),
                timeout: secs(d.timeout_secs),
                on_timeout: Status::Unknown,
                run: Box::new(move || disk_check(&path, &d)),
            });
        }
    }
    if wanted(CheckKind::Memory, h.memory.enabled) {
        let m = h.memory.clone();
        jobs.push(Job {
            name: "memory".into(),
            timeout: secs(m.timeout_secs),
            on_timeout: Status::Unknown,
            run: Box::new(move || memory_check(&m)),
        });
    }
    if wanted(CheckKind::Load, h.load.enabled) {
        let l = h.load.clone();
        jobs.push(Job {
            name: "load".into(),
            timeout: secs(l.timeout_secs),
            on_timeout: Status::Unknown,
            run: Box::new(move || load_check(&l)),
        });
    }
    jobs
}

fn service_check(svc: &Service) -> CheckResult {
    let state = svc.state();
    let status = match &state {
        ServiceState::Running => Status::Ok,
        ServiceState::Changing(_) => Status::Warning,
        ServiceState::Stopped(_) => Status::Critical,
        ServiceState::Unknown(_) => Status::Unknown,
    };
    let mut r = CheckResult::new(
        "service",
        status,
        format!("{} [{}]", state.describe(), svc.describe()),
    )
    .value("state", serde_json::to_value(&state).unwrap_or_default())
    .value("manager", svc.describe());
    r.metrics.push(metric(
        "tuneton_health_service_running",
        "1 when the application service runs",
        (status == Status::Ok) as u8 as f64,
    ));
    r
}

fn http_check(
    url: &str,
    expect: &HealthExpect,
    t: &crate::config::TimedCheckConfig,
) -> CheckResult {
    let timeout = Duration::from_secs(t.timeout_secs);
    let where_ = http::describe_url_with_path(url);
    match http::probe(url, expect, timeout) {
        Probe::Unreachable(e) => {
            CheckResult::new("http", Status::Critical, format!("no answer: {e}"))
                .value("url", where_)
        }
        Probe::Unhealthy { resp, reason } => {
            let ms = resp.elapsed.as_secs_f64() * 1000.0;
            let mut r = CheckResult::new("http", Status::Critical, format!("unhealthy: {reason}"))
                .value("url", where_)
                .value("status_code", resp.status)
                .value("response_ms", ms.round());
            r.perf.push(
                PerfDatum::new("http_time", ms / 1000.0, "s")
                    .levels(t.warn_ms as f64 / 1000.0, t.crit_ms as f64 / 1000.0)
                    .range(0.0, None),
            );
            r
        }
        Probe::Healthy { resp, field } => {
            let ms = resp.elapsed.as_secs_f64() * 1000.0;
            let status = if ms >= t.crit_ms as f64 {
                Status::Critical
            } else if ms >= t.warn_ms as f64 {
                Status::Warning
            } else {
                Status::Ok
            };
            let mut summary = format!("HTTP {} in {:.0} ms", resp.status, ms);
            if let (Some(f), Some(name)) = (&field, &expect.json_field) {
                let _ = write!(summary, ", {name} {f}");
            }
            if status != Status::Ok {
                let _ = write!(
                    summary,
                    " (slow: warn {} ms, crit {} ms)",
                    t.warn_ms, t.crit_ms
                );
            }
            let mut r = CheckResult::new("http", status, summary)
                .value("url", where_)
                .value("status_code", resp.status)
                .value("response_ms", ms.round());
            if let (Some(f), Some(name)) = (field, &expect.json_field) {
                r = r.value(name, f);
            }
            r.perf.push(
                PerfDatum::new("http_time", ms / 1000.0, "s")
                    .levels(t.warn_ms as f64 / 1000.0, t.crit_ms as f64 / 1000.0)
                    .range(0.0, None),
            );
            r.metrics.push(metric(
                "tuneton_health_http_response_seconds",
                "Time to the application's health answer",
                ms / 1000.0,
            ));
            r
        }
    }
}

fn database_check(target: &PgTarget, db: &str, t: &crate::config::TimedCheckConfig) -> CheckResult {
    let started = Instant::now();
    let mut client = match target.connect(db) {
        Ok(c) => c,
        Err(e) => {
            return CheckResult::new("database", Status::Critical, format!("{e:#}"))
                .value("target", target.describe(db))
        }
    };
    let connect_ms = started.elapsed().as_secs_f64() * 1000.0;
    let q = Instant::now();
    let version = match client.query_one("SELECT current_setting('server_version'), 1", &[]) {
        Ok(row) => row.get::<_, String>(0),
        Err(e) => {
            return CheckResult::new(
                "database",
                Status::Critical,
                format!("connected, but the query failed: {e}"),
            )
            .value("target", target.describe(db))
            .value("connect_ms", connect_ms.round())
        }
    };
    let query_ms = q.elapsed().as_secs_f64() * 1000.0;
    let status = if connect_ms >= t.crit_ms as f64 {
        Status::Critical
    } else if connect_ms >= t.warn_ms as f64 {
        Status::Warning
    } else {
        Status::Ok
    };
    let mut summary =
        format!("PostgreSQL {version}: connected in {connect_ms:.0} ms, query {query_ms:.0} ms");
    if status != Status::Ok {
        let _ = write!(
            summary,
            " (slow connect: warn {} ms, crit {} ms)",
            t.warn_ms, t.crit_ms
        );
    }
    let mut r = CheckResult::new("database", status, summary)
        .value("target", target.describe(db))
        .value("server_version", version)
        .value("connect_ms", (connect_ms * 10.0).round() / 10.0)
        .value("query_ms", (query_ms * 10.0).round() / 10.0);
    r.perf.push(
        PerfDatum::new("db_connect", connect_ms / 1000.0, "s")
            .levels(t.warn_ms as f64 / 1000.0, t.crit_ms as f64 / 1000.0)
            .range(0.0, None),
    );
    r.perf
        .push(PerfDatum::new("db_query", query_ms / 1000.0, "s").range(0.0, None));
    r.metrics.push(metric(
        "tuneton_health_database_connect_seconds",
        "Time to connect to PostgreSQL (TCP + startup + auth)",
        connect_ms / 1000.0,
    ));
    r.metrics.push(metric(
        "tuneton_health_database_query_seconds",
        "Time of the check query",
        query_ms / 1000.0,
    ));
    r
}

fn parse_thresholds(
    warn: &str,
    crit: &str,
    bytes: bool,
) -> std::result::Result<(Threshold, Threshold), String> {
    let w = Threshold::parse(warn, bytes).map_err(|e| format!("bad threshold: {e:#}"))?;
    let c = Threshold::parse(crit, bytes).map_err(|e| format!("bad threshold: {e:#}"))?;
    Ok((w, c))
}

fn disk_check(path: &std::path::Path, d: &crate::config::DiskCheckConfig) -> CheckResult {
    let name = format!("disk:{}", path.display());
    let u = match DiskUsage::of(path) {
        Ok(u) => u,
        Err(e) => return CheckResult::new(name, Status::Unknown, format!("{e:#}")),
    };
    let ((bw, bc), (iw, ic)) = match (
        parse_thresholds(&d.warn, &d.crit, true),
        parse_thresholds(&d.inodes_warn, &d.inodes_crit, false),
    ) {
        (Ok(b), Ok(i)) => (b, i),
        (Err(e), _) | (_, Err(e)) => return CheckResult::new(name, Status::Unknown, e),
    };
    let (size, used, avail) = (
        u.size_bytes as f64,
        u.used_bytes as f64,
        u.avail_bytes as f64,
    );
    let space = judge(&bw, &bc, used, avail, size);
    let inodes = if u.inodes_total > 0 {
        judge(
            &iw,
            &ic,
            u.inodes_used as f64,
            u.inodes_free as f64,
            u.inodes_total as f64,
        )
    } else {
        Status::Ok // filesystems without an inode limit (btrfs) report 0
    };
    let mount = u
        .mount_point
        .as_ref()
        .map(|m| {
            format!(
                " on {} ({})",
                m.display(),
                u.fs_type.as_deref().unwrap_or("?")
            )
        })
        .unwrap_or_default();
    let mut summary = format!(
        "{:.1}% used, {} available to non-root of {}{mount}",
        u.used_percent(),
        human_bytes(avail),
        human_bytes(size)
    );
    match u.inodes_used_percent() {
        Some(p) => {
            let _ = write!(summary, "; inodes {p:.1}% used ({} free)", u.inodes_free);
        }
        None => summary.push_str("; no inode limit"),
    }
    if space != Status::Ok {
        let _ = write!(
            summary,
            " [space {space}: warn {}, crit {}]",
            d.warn, d.crit
        );
    }
    if inodes != Status::Ok {
        let _ = write!(
            summary,
            " [inodes {inodes}: warn {}, crit {}]",
            d.inodes_warn, d.inodes_crit
        );
    }
    let mut r = CheckResult::new(name, space.worst(inodes), summary)
        .value("path", path.display().to_string())
        .value(
            "mount_point",
            u.mount_point.as_ref().map(|m| m.display().to_string()),
        )
        .value("fs_type", u.fs_type.clone())
        .value(
            "basis",
            "available to non-root users (statvfs f_bavail); size = used + available",
        )
        .value("size_bytes", u.size_bytes)
        .value("used_bytes", u.used_bytes)
        .value("avail_bytes", u.avail_bytes)
        .value("used_percent", (u.used_percent() * 10.0).round() / 10.0)
        .value("inodes_total", u.inodes_total)
        .value("inodes_used", u.inodes_used)
        .value("inodes_free", u.inodes_free);
    let p = path.display().to_string();
    r.perf.push(
        PerfDatum::new(format!("disk:{p}"), used, "B")
            .levels(bw.as_used(size).round(), bc.as_used(size).round())
            .range(0.0, Some(size)),
    );
    if u.inodes_total > 0 {
        let t = u.inodes_total as f64;
        r.perf.push(
            PerfDatum::new(format!("inodes:{p}"), u.inodes_used as f64, "")
                .levels(iw.as_used(t).round(), ic.as_used(t).round())
                .range(0.0, Some(t)),
        );
    }
    let labels = vec![
        ("path", p.clone()),
        (
            "mount_point",
            u.mount_point
                .as_ref()
                .map(|m| m.display().to_string())
                .unwrap_or_default(),
        ),
    ];
    for (name, help, v) in [
        (
            "tuneton_health_disk_size_bytes",
            "Filesystem size as non-root users see it (used + available)",
            u.size_bytes,
        ),
        (
            "tuneton_health_disk_used_bytes",
            "Bytes used on the filesystem holding the path",
            u.used_bytes,
        ),
        (
            "tuneton_health_disk_avail_bytes",
            "Bytes available to non-root users (f_bavail)",
            u.avail_bytes,
        ),
        (
            "tuneton_health_disk_inodes_total",
            "Inodes on the filesystem (0: no limit)",
            u.inodes_total,
        ),
        (
            "tuneton_health_disk_inodes_free",
            "Inodes available to non-root users",
            u.inodes_free,
        ),
    ] {
        r.metrics.push(Metric {
            name,
            help,
            labels: labels.clone(),
            value: v as f64,
        });
    }
    r
}

fn memory_check(m: &crate::config::MemoryCheckConfig) -> CheckResult {
    let info = match MemInfo::read() {
        Ok(i) => i,
        Err(e) => return CheckResult::new("memory", Status::Unknown, format!("{e:#}")),
    };
    let (w, c) = match parse_thresholds(&m.warn, &m.crit, true) {
        Ok(t) => t,
        Err(e) => return CheckResult::new("memory", Status::Unknown, e),
    };
    let (total, avail, used) = (
        info.total_bytes as f64,
        info.available_bytes as f64,
        info.used_bytes() as f64,
    );
    let status = judge(&w, &c, used, avail, total);
    let pct = if total > 0.0 {
        used / total * 100.0
    } else {
        0.0
    };
    let mut summary = format!(
        "{pct:.1}% used, {} available (MemAvailable) of {}",
        human_bytes(avail),
        human_bytes(total)
    );
    if status != Status::Ok {
        let _ = write!(summary, " [warn {}, crit {}]", m.warn, m.crit);
    }
    let mut r = CheckResult::new("memory", status, summary)
        .value("total_bytes", info.total_bytes)
        .value("available_bytes", info.available_bytes)
        .value("used_percent", (pct * 10.0).round() / 10.0)
        .value("swap_total_bytes", info.swap_total_bytes)
        .value("swap_free_bytes", info.swap_free_bytes);
    r.perf.push(
        PerfDatum::new("memory_used", used, "B")
            .levels(w.as_used(total).round(), c.as_used(total).round())
            .range(0.0, Some(total)),
    );
    r.metrics.push(metric(
        "tuneton_health_memory_total_bytes",
        "MemTotal",
        total,
    ));
    r.metrics.push(metric(
        "tuneton_health_memory_available_bytes",
        "MemAvailable",
        avail,
    ));
    r
}

fn load_check(l: &crate::config::LoadCheckConfig) -> CheckResult {
    let la = match LoadAvg::read() {
        Ok(v) => v,
        Err(e) => return CheckResult::new("load", Status::Unknown, format!("{e:#}")),
    };
    let scale = if l.per_core { la.cores as f64 } else { 1.0 };
    let judged = la.load5 / scale;
    let status = if judged >= l.crit {
        Status::Critical
    } else if judged >= l.warn {
        Status::Warning
    } else {
        Status::Ok
    };
    let basis = if l.per_core {
        format!("{judged:.2} per core over {} cores", la.cores)
    } else {
        format!("{} cores", la.cores)
    };
    let mut summary = format!(
        "load {:.2} {:.2} {:.2} (5-min {basis})",
        la.load1, la.load5, la.load15
    );
    if status != Status::Ok {
        let _ = write!(
            summary,
            " [warn {}, crit {}{}]",
            l.warn,
            l.crit,
            if l.per_core { " per core" } else { "" }
        );
    }
    let mut r = CheckResult::new("load", status, summary)
        .value("load1", la.load1)
        .value("load5", la.load5)
        .value("load15", la.load15)
        .value("cores", la.cores)
        .value("per_core", l.per_core);
    r.perf
        .push(PerfDatum::new("load1", la.load1, "").range(0.0, None));
    r.perf.push(
        PerfDatum::new("load5", la.load5, "")
            .levels(l.warn * scale, l.crit * scale)
            .range(0.0, None),
    );
    r.perf
        .push(PerfDatum::new("load15", la.load15, "").range(0.0, None));
    for (p, v) in [("1", la.load1), ("5", la.load5), ("15", la.load15)] {
        r.metrics.push(Metric {
            name: "tuneton_health_load_average",
            help: "Load average over the period (minutes)",
            labels: vec![("period", p.into())],
            value: v,
        });
    }
    r.metrics.push(metric(
        "tuneton_health_cores",
        "Online CPU cores",
        la.cores as f64,
    ));
    r
}

/// Runs the configured checks in parallel.
pub fn run_checks(cfg: &Config, only: &[CheckKind]) -> Vec<CheckResult> {
    run_parallel(jobs_for(cfg, only))
}

pub fn overall(results: &[CheckResult]) -> Status {
    results
        .iter()
        .fold(Status::Ok, |acc, r| acc.worst(r.status))
}

/// The monitoring-plugins output: `TUNETON HEALTH STATE - summary | perfdata`, then one line per check.
pub fn nagios_output(results: &[CheckResult]) -> String {
    let status = overall(results);
    let bad: Vec<String> = results
        .iter()
        .filter(|r| r.status != Status::Ok)
        .map(|r| format!("{} {}: {}", r.name, r.status, r.summary))
        .collect();
    let head = if bad.is_empty() {
        format!("{} checks OK", results.len())
    } else {
        bad.join("; ")
    };
    // '|' separates perfdata: never let it appear in the text part.
    let head = head.replace('|', "/").replace('\n', " ");
    let perf: Vec<String> = results
        .iter()
        .flat_map(|r| r.perf.iter().map(|p| p.to_string()))
        .collect();
    let mut out = format!("TUNETON HEALTH {status} - {head} | {}\n", perf.join(" "));
    for r in results {
        let _ = writeln!(
            out,
            "{} {}: {}",
            r.status,
            r.name,
            r.summary.replace('|', "/")
        );
    }
    out
}

pub fn text_output(results: &[CheckResult]) -> String {
    let status = overall(results);
    let not_ok = results.iter().filter(|r| r.status != Status::Ok).count();
    let mut out = if not_ok == 0 {
        format!("health {status}: {} checks\n", results.len())
    } else {
        format!(
            "health {status}: {not_ok} of {} checks not OK\n",
            results.len()
        )
    };
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in results {
        let _ = writeln!(
            out,
            "  {:<8}  {:<width$}  {}",
            r.status.as_str(),
            r.name,
            r.summary
        );
    }
    out
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of a run (HELP/TYPE once per metric name).
pub fn prometheus_text(results: &[CheckResult], now_unix: f64) -> String {
    let mut all: Vec<Metric> = vec![
        metric(
            "tuneton_health_status",
            "Worst check state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            overall(results).number() as f64,
        ),
        metric(
            "tuneton_health_last_run_timestamp_seconds",
            "When health last ran (Unix time)",
            now_unix,
        ),
    ];
    for r in results {
        all.push(Metric {
            name: "tuneton_health_check_status",
            help: "Check state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
            labels: vec![("check", r.name.clone())],
            value: r.status.number() as f64,
        });
        all.push(Metric {
            name: "tuneton_health_check_duration_seconds",
            help: "How long the check took",
            labels: vec![("check", r.name.clone())],
            value: r.elapsed.as_secs_f64(),
        });
        all.extend(r.metrics.iter().cloned());
    }
    let mut names: Vec<&'static str> = Vec::new();
    for m in &all {
        if !names.contains(&m.name) {
            names.push(m.name);
        }
    }
    let mut out = String::new();
    for name in names {
        let mut first = true;
        for m in all.iter().filter(|m| m.name == name) {
            if first {
                let _ = writeln!(out, "# HELP {name} {}", m.help);
                let _ = writeln!(out, "# TYPE {name} gauge");
                first = false;
            }
            let labels = if m.labels.is_empty() {
                String::new()
            } else {
                let l: Vec<String> = m
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                    .collect();
                format!("{{{}}}", l.join(","))
            };
            let v = if m.value.fract() == 0.0 && m.value.abs() < 1e15 {
                format!("{}", m.value as i64)
            } else {
                format!("{}", m.value)
            };
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }
    out
}

/// What `health --alert` remembers between runs: per check, its state and, per
/// channel, the last state successfully announced there. A channel that failed
/// is retried on the next run; one that got the news is not told again.
#[derive(Debug, Default, Serialize, Deserialize)]
struct AlertState {
    checks: BTreeMap<String, CheckState>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckState {
    status: Status,
    since: String,
    announced: BTreeMap<String, Status>,
}

fn load_state(path: &Path) -> AlertState {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            log::warn!(
                "{} is not a health state file ({e}); starting afresh",
                path.display()
            );
            AlertState::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => AlertState::default(),
        Err(e) => {
            log::warn!("cannot read {}: {e}; starting afresh", path.display());
            AlertState::default()
        }
    }
}

/// One state change and what the channels said.
#[derive(Debug, Serialize)]
struct AlertSent {
    check: String,
    from: Status,
    to: Status,
    deliveries: Vec<Delivery>,
}

/// Sends an alert for each check whose state differs from what a channel was last told.
fn alert_on_changes(
    n: &Notifier,
    state_file: &Path,
    results: &[CheckResult],
) -> Result<Vec<AlertSent>> {
    let mut state = load_state(state_file);
    let now = chrono::Utc::now().to_rfc3339();
    let channels = n.channel_names();
    let mut sent = Vec::new();
    for r in results {
        let entry = state
            .checks
            .entry(r.name.clone())
            .or_insert_with(|| CheckState {
                status: Status::Ok,
                since: now.clone(),
                announced: BTreeMap::new(),
            });
        let previous = entry.status;
        if previous != r.status {
            entry.status = r.status;
            entry.since = now.clone();
        }
        let stale: Vec<&str> = channels
            .iter()
            .copied()
            .filter(|c| entry.announced.get(*c).copied().unwrap_or(Status::Ok) != r.status)
            .collect();
        if stale.is_empty() {
            continue;
        }
        let was = stale
            .iter()
            .map(|c| entry.announced.get(*c).copied().unwrap_or(Status::Ok))
            .fold(Status::Ok, Status::worst);
        let recovered = r.status == Status::Ok;
        let ev = Event {
            key: format!("health:{}", r.name),
            severity: Severity::of(r.status),
            resolve: recovered,
            title: if recovered {
                format!("{} recovered on {} (was {was})", r.name, n.host)
            } else {
                format!("{} {} on {}: {}", r.name, r.status, n.host, r.summary)
            },
            body: format!(
                "{} is {} (was {was}) since {}\n{}",
                r.name, r.status, entry.since, r.summary
            ),
            attachment: None,
        };
        let deliveries = n.send(&ev, Some(&stale));
        for d in &deliveries {
            if d.ok {
                entry.announced.insert(d.channel.to_string(), r.status);
                log::info!(
                    "alert {} {was} -> {} sent via {}",
                    r.name,
                    r.status,
                    d.channel
                );
            } else {
                log::error!(
                    "alert {} {was} -> {} via {} failed: {}",
                    r.name,
                    r.status,
                    d.channel,
                    d.detail
                );
            }
        }
        sent.push(AlertSent {
            check: r.name.clone(),
            from: was,
            to: r.status,
            deliveries,
        });
    }
    let bytes = serde_json::to_vec_pretty(&state)?;
    crate::atomic_file::write_replacing(state_file, &bytes, 0o600, Parent::Create).with_context(
        || {
            format!(
                "saving the alert state (health.state_file {})",
                state_file.display()
            )
        },
    )?;
    Ok(sent)
}

pub fn run(ctx: &Ctx, args: HealthArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let started = Instant::now();
    let notifier = if args.alert {
        let n = Notifier::from_config(&cfg.alerts);
        crate::notify::require_channel(&n, None)?;
        Some(n)
    } else {
        None
    };
    let results = run_checks(cfg, &args.checks);
    let status = overall(&results);
    let mut code = status.exit_code();
    let mut alerts = Vec::new();
    if let Some(n) = &notifier {
        alerts = alert_on_changes(n, &cfg.health.state_file, &results)?;
        if alerts.iter().any(|a| a.deliveries.iter().any(|d| !d.ok)) {
            // A channel that could not be told is worth attention even when every check is OK.
            code = code.worst(ExitCode::Warning);
        }
    }
    let mut prom_error = None;
    if let Some(p) = &args.prom_file {
        let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
        if let Err(e) = crate::atomic_file::write_replacing(
            p,
            prometheus_text(&results, now).as_bytes(),
            0o644,
            Parent::MustExist,
        ) {
            log::error!("writing the Prometheus textfile {}: {e:#}", p.display());
            prom_error = Some(format!("--prom-file {}: {e:#}", p.display()));
            // A directory that is not there is a bad argument (could not do what
            // was asked: 3); a write that failed in an existing one is a warning.
            code = code.worst(if e.is::<MissingDir>() {
                ExitCode::CouldNotStart
            } else {
                ExitCode::Warning
            });
        }
    }
    let elapsed_ms = started.elapsed().as_millis();
    let doc = json!({
        "status": status,
        "exit_code": code.code(),
        "elapsed_ms": elapsed_ms,
        "checks": results,
        "prom_file": args.prom_file,
        "prom_file_error": prom_error,
        "alerts": alerts,
    });
    let format = if ctx.global.json {
        Format::Json
    } else {
        args.format
    };
    let mut text = match format {
        Format::Nagios => nagios_output(&results),
        _ => text_output(&results),
    };
    for a in &alerts {
        for d in &a.deliveries {
            let _ = writeln!(
                text,
                "alert {} {} -> {} via {}: {}",
                a.check,
                a.from,
                a.to,
                d.channel,
                if d.ok {
                    format!("sent ({})", d.detail)
                } else {
                    format!("FAILED: {}", d.detail)
                }
            );
        }
    }
    match format {
        Format::Json => {
            let out = serde_json::to_string_pretty(&doc).unwrap_or_default();
            println!("{out}");
        }
        _ => ctx.emit(&doc, &text),
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(name: &str, secs_to_sleep: u64, timeout_ms: u64, on_timeout: Status) -> Job {
        let n = name.to_string();
        Job {
            name: name.into(),
            timeout: Duration::from_millis(timeout_ms),
            on_timeout,
            run: Box::new(move || {
                std::thread::sleep(Duration::from_secs(secs_to_sleep));
                CheckResult::new(n, Status::Ok, "fine")
            }),
        }
    }

    #[test]
    fn a_hung_check_gets_its_timeout_state_and_does_not_hold_the_others() {
        let t = Instant::now();
        let r = run_parallel(vec![
            job("quick", 0, 1000, Status::Unknown),
            job("hung-local", 30, 200, Status::Unknown),
            job("hung-net", 30, 300, Status::Critical),
        ]);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(
            r.iter().map(|r| r.status).collect::<Vec<_>>(),
            vec![Status::Ok, Status::Unknown, Status::Critical]
        );
        assert!(r[1].summary.contains("no answer within"));
        assert_eq!(overall(&r), Status::Critical);
    }

    #[test]
    fn prometheus_text_groups_samples_under_one_help_line() {
        let mut a = CheckResult::new("disk:/", Status::Warning, "x");
        a.metrics.push(Metric {
            name: "m",
            help: "h",
            labels: vec![("path", "/a\"b".into())],
            value: 1.0,
        });
        a.metrics.push(Metric {
            name: "m",
            help: "h",
            labels: vec![("path", "/c".into())],
            value: 2.5,
        });
        let t = prometheus_text(&[a], 100.0);
        assert_eq!(t.matches("# HELP m h").count(), 1);
        assert!(
            t.contains("m{path=\"/a\\\"b\"} 1\nm{path=\"/c\"} 2.5\n"),
            "{t}"
        );
        assert!(t.contains("tuneton_health_check_status{check=\"disk:/\"} 1\n"));
        assert!(t.contains("tuneton_health_status 1\n"));
    }
}
