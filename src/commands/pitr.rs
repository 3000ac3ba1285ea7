//! `pitr`: point-in-time recovery from a physical base backup plus the archived
//! WAL (`wal-push`), replayed by PostgreSQL itself through `wal-fetch` up to a
//! target, then checked.
//!
//! Replaces the old point-in-time procedure, which piped `pg_waldump` output
//! into itself and recovered nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::json;

use super::Ctx;
use crate::appctl::AppControl;
use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::BackupKind;
use crate::pgcluster::PgCluster;
use crate::repo::{self, RepoEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetAction {
    /// End recovery and accept writes
    Promote,
    /// Stay in recovery, paused, for inspection (pg_wal_replay_resume() to go on)
    Pause,
    /// Stop the server at the target
    Shutdown,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["target_time", "target_lsn", "target_xid", "target_name", "immediate"])))]
pub struct PitrArgs {
    /// Recover up to this time; must carry a zone offset ("2026-12-03 14:05:00+01:00", "...Z") unless --tz is given
    #[arg(long, value_name = "TIME")]
    pub target_time: Option<String>,
    /// Zone for a --target-time without one: "UTC" or an offset like "+02:00"
    #[arg(long, value_name = "ZONE", requires = "target_time")]
    pub tz: Option<String>,
    /// Recover up to this WAL location (e.g. 0/3000060)
    #[arg(long, value_name = "LSN")]
    pub target_lsn: Option<String>,
    /// Recover up to this transaction id
    #[arg(long, value_name = "XID")]
    pub target_xid: Option<u64>,
    /// Recover up to this named restore point (pg_create_restore_point)
    #[arg(long, value_name = "NAME")]
    pub target_name: Option<String>,
    /// Stop as soon as the base backup is consistent
    #[arg(long)]
    pub immediate: bool,
    /// What the server does at the target
    #[arg(long, value_enum, default_value = "promote")]
    pub action: TargetAction,
    /// Use this base backup instead of choosing one
    #[arg(long, value_name = "ID")]
    pub base: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Target {
    Time(DateTime<Utc>),
    Lsn(u64, String),
    Xid(u64),
    Name(String),
    Immediate,
    /// No target: replay everything archived, then promote.
    End,
}

/// Parses a target time that names its zone; anything PostgreSQL would read in the server's zone is refused.
fn parse_time(text: &str, tz: Option<&str>) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%dT%H:%M:%S%.f%#z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(text, f) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .ok_or_else(|| {
        could_not_start(format!(
            "--target-time {text:?} is not a date and time (e.g. \"2026-12-03 14:05:00+01:00\")"
        ))
    })?;
    let Some(zone) = tz else {
        return Err(could_not_start(format!(
            "--target-time {text:?} has no zone offset; PostgreSQL would read it in the server's time zone. Add one (\"+01:00\", \"Z\") or pass --tz"
        )));
    };
    let offset = parse_offset(zone)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            could_not_start(format!(
                "--target-time {text:?} does not exist in zone {zone}"
            ))
        })
}

fn parse_offset(zone: &str) -> Result<FixedOffset> {
    if matches!(zone, "UTC" | "utc" | "Z" | "z" | "GMT") {
        return Ok(FixedOffset::east_opt(0).expect("zero"));
    }
    let (sign, rest) = match zone.as_bytes().first() {
        Some(b'+') => (1, &zone[1..]),
        Some(b'-') => (-1, &zone[1..]),
        _ => {
            return Err(could_not_start(format!(
                "--tz {zone:?}: use \"UTC\" or an offset like \"+02:00\""
            )))
        }
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
    let (h, m): (i32, i32) = (
        h.parse()
            .map_err(|_| could_not_start(format!("--tz {zone:?}: bad hours")))?,
        m.parse()
            .map_err(|_| could_not_start(format!("--tz {zone:?}: bad minutes")))?,
    );
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
        .ok_or_else(|| could_not_start(format!("--tz {zone:?} is out of range")))
}

/// `X/Y` hexadecimal WAL location as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

fn target_of(args: &PitrArgs) -> Result<Target> {
    Ok(if let Some(t) = &args.target_time {
        Target::Time(parse_time(t, args.tz.as_deref())?)
    } else if let Some(l) = &args.target_lsn {
        let n = parse_lsn(l).ok_or_else(|| {
            could_not_start(format!(
                "--target-lsn {l:?} is not a WAL location like 0/3000060"
            ))
        })?;
        Target::Lsn(n, l.trim().to_string())
    } else if let Some(x) = args.target_xid {
        Target::Xid(x)
    } else if let Some(n) = &args.target_name {
        if n.is_empty() {
            return Err(could_not_start("--target-name must not be empty"));
        }
        Target::Name(n.clone())
    } else {
        Target::Immediate
    })
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Quotes a word for `sh` when it needs it (plain paths stay readable).
fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// The recovery settings written to postgresql.auto.conf.
fn recovery_settings(target: &Target, action: TargetAction, restore_command: &str) -> String {
    let mut s = String::from("\n# written by tuneton-ops pitr\n");
    let _ = writeln!(s, "restore_command = {}", quote(restore_command));
    let _ = match target {
        Target::Time(t) => writeln!(
            s,
            "recovery_target_time = {}",
            quote(&t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        ),
        Target::Lsn(_, l) => writeln!(s, "recovery_target_lsn = {}", quote(l)),
        Target::Xid(x) => writeln!(s, "recovery_target_xid = {}", quote(&x.to_string())),
        Target::Name(n) => writeln!(s, "recovery_target_name = {}", quote(n)),
        Target::Immediate => writeln!(s, "recovery_target = 'immediate'"),
        Target::End => return s,
    };
    let action = match action {
        TargetAction::Promote => "promote",
        TargetAction::Pause => "pause",
        TargetAction::Shutdown => "shutdown",
    };
    let _ = writeln!(s, "recovery_target_action = {}", quote(action));
    s
}

/// The newest base backup that can reach the target.
fn choose_base<'e>(
    bases: &'e [RepoEntry],
    target: &Target,
    explicit: Option<&str>,
) -> Result<&'e RepoEntry> {
    let info = |e: &RepoEntry| {
        e.manifest
            .as_ref()
            .and_then(|m| m.base.clone().map(|b| (m.finished_at, b)))
    };
    if let Some(id) = explicit {
        let e = bases
            .iter()
            .find(|e| e.id == id)
            .ok_or_else(|| could_not_start(format!("no base backup {id:?}")))?;
        let (ended, b) = info(e).ok_or_else(|| anyhow!("{id} has no base backup information"))?;
        match target {
            Target::Time(t) if *t < ended => {
                return Err(could_not_start(format!(
                    "the target {t} is before base backup {id} ended ({ended}); a base backup cannot be rewound: choose an older one"
                )))
            }
            Target::Lsn(l, text) if parse_lsn(&b.end_lsn).is_some_and(|end| *l < end) => {
                return Err(could_not_start(format!("--target-lsn {text} is before base backup {id} ends ({})", b.end_lsn)))
            }
            _ => {}
        }
        return Ok(e);
    }
    let fits = |e: &&RepoEntry| match (info(e), target) {
        (Some((ended, _)), Target::Time(t)) => ended < *t,
        (Some((_, b)), Target::Lsn(l, _)) => parse_lsn(&b.end_lsn).is_some_and(|end| end <= *l),
        (Some(_), _) => true,
        (None, _) => false,
    };
    bases.iter().rev().find(fits).ok_or_else(|| {
        could_not_start(match target {
            Target::Time(t) => {
                format!("no base backup ended before {t}; point-in-time recovery cannot reach it")
            }
            Target::Lsn(_, l) => format!("no base backup ends at or before {l}"),
            _ => "no base backup in the repository (tuneton-ops backup --kind base)".into(),
        })
    })
}

pub fn run(ctx: &Ctx, args: PitrArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let target = target_of(&args)?;
    let cluster = PgCluster::from_config(&cfg.postgres)?;
    let repo = repo::for_reading(cfg, ctx.global.from)?;
    let (entries, _) = repo.list()?;
    let bases: Vec<RepoEntry> = entries
        .into_iter()
        .filter(|e| e.kind == BackupKind::Base && e.manifest.is_some())
        .collect();
    let base = choose_base(&bases, &target, args.base.as_deref())?.clone();
    let recovery = Recovery::plan(ctx, &cluster, base, target, args.action)?;
    let mut plan = recovery.steps(
        &cluster,
        repo.location(),
        cfg.postgres.recovery_timeout_secs,
    );
    // The application must not write into the server while it is replaced; it
    // comes back only on a promoted server (paused or shut down: the operator decides).
    let app = AppControl::from_config(&cfg.app);
    if let Some(a) = &app {
        plan.insert(0, format!("stop {} if it runs", a.describe()));
        if args.action == TargetAction::Promote {
            plan.push(format!(
                "start {} and wait for {}",
                a.describe(),
                a.health_url()
            ));
        }
    }
    if ctx.global.dry_run {
        let text = plan
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}. would {p}", i + 1))
            .collect::<Vec<_>>()
            .join("\n");
        ctx.emit(
            &json!({"dry_run": true, "base": recovery.base.id, "plan": plan}),
            &text,
        );
        return Ok(ExitCode::Success);
    }
    ctx.confirm(&format!(
        "Replace the data directory {} with base backup {} replayed to the target?",
        cluster.data_dir.display(),
        recovery.base.id
    ))?;
    let app_stopped = super::db_recover::stop_app(&app)?;
    let outcome = recovery.execute(ctx, repo.as_ref(), &cluster)?;
    let health = if args.action == TargetAction::Promote {
        super::db_recover::start_app(&app, app_stopped)?
    } else {
        if app.is_some() {
            log::warn!("the application stays stopped: recovery ended with --action {:?}; start it after promoting the server", args.action);
        }
        serde_json::Value::Null
    };
    let text = format!(
        "recovered from base backup {} to {}; last replayed commit: {}; previous data directory kept at {}",
        recovery.base.id,
        recovery.target.describe(),
        outcome.last_replayed.map(|t| t.to_rfc3339()).unwrap_or_else(|| "none replayed".into()),
        outcome.aside.display()
    );
    log::info!("{text}");
    ctx.emit(
        &json!({"ok": true, "base": recovery.base.id, "last_replayed_commit": outcome.last_replayed,
                "previous_data_dir": outcome.aside, "action": format!("{:?}", args.action).to_lowercase(),
                "application": health}),
        &text,
    );
    Ok(ExitCode::Success)
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Target::Time(t) => t.to_rfc3339(),
            Target::Lsn(_, l) => l.clone(),
            Target::Xid(x) => format!("xid {x}"),
            Target::Name(n) => format!("restore point {n}"),
            Target::Immediate => "consistency".into(),
            Target::End => "the end of the archived WAL".into(),
        }
    }
}

/// A planned recovery of the local server from one base backup.
pub(crate) struct Recovery {
    pub base: RepoEntry,
    target: Target,
    action: TargetAction,
    settings: String,
    aside: PathBuf,
}

pub(crate) struct RecoveryOutcome {
    pub last_replayed: Option<DateTime<Utc>>,
    pub aside: PathBuf,
}

impl Recovery {
    pub(crate) fn plan(
        ctx: &Ctx,
        cluster: &PgCluster,
        base: RepoEntry,
        target: Target,
        action: TargetAction,
    ) -> Result<Recovery> {
        let exe = std::env::current_exe().context("locating the tuneton-ops binary")?;
        // PostgreSQL runs this with sh in the data directory: absolute, shell-quoted paths.
        let restore_command = match &ctx.settings.file {
            Some(f) => format!(
                "{} --config {} --quiet wal-fetch %f %p",
                sh_quote(&exe.display().to_string()),
                sh_quote(&f.display().to_string())
            ),
            None => format!(
                "{} --quiet wal-fetch %f %p",
                sh_quote(&exe.display().to_string())
            ),
        };
        let settings = recovery_settings(&target, action, &restore_command);
        let aside = PathBuf::from(format!(
            "{}.pre-recovery-{}",
            cluster.data_dir.display(),
            Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        Ok(Recovery {
            base,
            target,
            action,
            settings,
            aside,
        })
    }

    pub(crate) fn steps(
        &self,
        cluster: &PgCluster,
        location: String,
        timeout_secs: u64,
    ) -> Vec<String> {
        let b = self
            .base
            .manifest
            .as_ref()
            .and_then(|m| m.base.clone())
            .expect("a base backup");
        vec![
            format!("stop PostgreSQL through {}", cluster.describe()),
            format!(
                "move the data directory aside to {} (kept, never deleted)",
                self.aside.display()
            ),
            format!(
                "restore base backup {} (WAL {} .. {}, timeline {}) from {location}",
                self.base.id, b.start_lsn, b.end_lsn, b.timeline
            ),
            format!(
                "write recovery settings and recovery.signal:{}",
                self.settings.trim_end().replace('\n', "\n    ")
            ),
            format!(
                "start PostgreSQL and wait up to {timeout_secs}s for recovery to reach {}",
                self.target.describe()
            ),
        ]
    }

    /// Stops the server, swaps in the base backup with recovery settings, starts, waits, checks.
    pub(crate) fn execute(
        &self,
        ctx: &Ctx,
        repo: &dyn crate::repo::Repository,
        cluster: &PgCluster,
    ) -> Result<RecoveryOutcome> {
        let cfg = ctx.config();
        let crypto = Crypto::for_decrypt(&cfg.encryption)?;
        let pg = PgTarget::from_config(&cfg.database);
        let base = &self.base;
        let aside = &self.aside;
        log::info!(
            "checking base backup {} before touching the server",
            base.id
        );
        crate::verify::check_before_restore(base, repo, &crypto, &pg)?;
        log::info!("stopping PostgreSQL");
        cluster.stop()?;
        if cluster.data_dir.exists() {
            std::fs::rename(&cluster.data_dir, aside)
                .with_context(|| format!("moving {} aside", cluster.data_dir.display()))?;
            log::info!("moved the old data directory aside: {}", aside.display());
        }
        let restored = (|| -> Result<()> {
            crate::restorer::restore_dir(base, repo, &crypto, &cluster.data_dir, false)?;
            let auto = cluster.data_dir.join("postgresql.auto.conf");
            let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
            conf.push_str(&self.settings);
            std::fs::write(&auto, conf)?;
            std::fs::write(cluster.data_dir.join("recovery.signal"), "")?;
            let _ = std::fs::remove_file(cluster.data_dir.join("postmaster.pid"));
            cluster.own_data_dir(&cluster.data_dir)
        })();
        if let Err(e) = restored {
            bail!(
                "{e:#}; the previous data directory is intact at {}",
                aside.display()
            );
        }
        log::info!("starting PostgreSQL for recovery");
        if let Err(e) = cluster.start() {
            bail!(
                "{e:#}; recovery did not start (see the server log: a corrupted or missing WAL file stops it on purpose). \
                 The previous data directory is intact at {}",
                aside.display()
            );
        }
        let last_replayed = wait_for_target(
            &pg,
            self.action,
            Duration::from_secs(cfg.postgres.recovery_timeout_secs),
            cluster,
        )
        .with_context(|| {
            format!(
                "the previous data directory is intact at {}",
                aside.display()
            )
        })?;
        if let (Target::Time(t), Some(replayed)) = (&self.target, last_replayed) {
            if replayed > *t {
                bail!("the last replayed commit ({replayed}) is after the target ({t}); refusing to call this a success");
            }
        }
        Ok(RecoveryOutcome {
            last_replayed,
            aside: aside.clone(),
        })
    }
}

/// Waits until recovery has finished as the action says; returns the last replayed commit time.
fn wait_for_target(
    pg: &PgTarget,
    action: TargetAction,
    timeout: Duration,
    cluster: &PgCluster,
) -> Result<Option<DateTime<Utc>>> {
    let deadline = Instant::now() + timeout;
    loop {
        if Instant::now() > deadline {
            bail!(
                "recovery did not reach its target within {}s (postgres.recovery_timeout_secs)",
                timeout.as_secs()
            );
        }
        match action {
            TargetAction::Shutdown => {
                if !cluster.data_dir.join("postmaster.pid").exists() {
                    return Ok(None);
                }
            }
            _ => {
                // The start command returns once the server accepts (read-only)
                // connections; the startup process can still fail afterwards and
                // take the server down. Waiting on would only run into the timeout.
                if !cluster.data_dir.join("postmaster.pid").exists() {
                    bail!(
                        "PostgreSQL stopped during recovery, before reaching the target; its log says why \
                         (e.g. \"recovery ended before configured recovery target was reached\": the archived WAL on \
                         the timeline recovery followed has no commit after the target)"
                    );
                }
                if let Ok(mut c) = pg.connect(&pg.maintenance_db) {
                    let row = c.query_one(
                        "SELECT pg_is_in_recovery(), \
                                CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END, \
                                pg_last_xact_replay_timestamp()",
                        &[],
                    )?;
                    let (in_recovery, pause, last): (bool, String, Option<std::time::SystemTime>) =
                        (row.get(0), row.get(1), row.get(2));
                    let done = match action {
                        TargetAction::Promote => !in_recovery,
                        TargetAction::Pause => in_recovery && pause == "paused",
                        TargetAction::Shutdown => unreachable!(),
                    };
                    if done {
                        return Ok(last.map(DateTime::<Utc>::from));
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_time_needs_a_zone() {
        assert_eq!(
            parse_time("2026-12-03 14:05:00+01:00", None)
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T13:05:00+00:00"
        );
        assert_eq!(
            parse_time("2026-12-03T13:05:00Z", None)
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T13:05:00+00:00"
        );
        let err = parse_time("2026-12-03 14:05:00", None).unwrap_err();
        assert!(format!("{err:#}").contains("no zone offset"));
        assert_eq!(
            parse_time("2026-12-03 14:05:00", Some("-02:30"))
                .unwrap()
                .to_rfc3339(),
            "2026-12-03T16:35:00+00:00"
        );
        assert!(parse_time("yesterday", Some("UTC")).is_err());
        assert!(parse_time("2026-12-03 14:05:00", Some("Europe/Paris")).is_err());
    }

    #[test]
    fn lsns_compare_numerically() {
        assert!(parse_lsn("0/3000060").unwrap() > parse_lsn("0/2FFFFFF").unwrap());
        assert!(parse_lsn("1/0").unwrap() > parse_lsn("0/FFFFFFFF").unwrap());
        assert!(parse_lsn("nonsense").is_none());
    }

    #[test]
    fn settings_quote_and_name_the_action() {
        let s = recovery_settings(
            &Target::Name("it's".into()),
            TargetAction::Pause,
            "x wal-fetch %f %p",
        );
        assert!(s.contains("recovery_target_name = 'it''s'"));
        assert!(s.contains("recovery_target_action = 'pause'"));
        assert!(s.contains("restore_command = 'x wal-fetch %f %p'"));
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(
            sh_quote("/usr/local/bin/tuneton-ops"),
            "/usr/local/bin/tuneton-ops"
        );
        assert_eq!(
            sh_quote("/etc/tune ton/ops.toml"),
            "'/etc/tune ton/ops.toml'"
        );
        assert_eq!(sh_quote("/a'b"), "'/a'\\''b'");
    }
}
