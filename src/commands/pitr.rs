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

/// Refuses a target time later than `now` (this host's clock): no archived WAL
/// can reach it, so PostgreSQL would replay to the end of the archive and then
/// stop with FATAL "recovery ended before configured recovery target was
/// reached", after the data directory had been replaced. Checked before
/// anything is stopped, in --dry-run too.
fn refuse_future_target(target: &Target, now: DateTime<Utc>) -> Result<()> {
    if let Target::Time(t) = target {
        if *t > now {
            return Err(could_not_start(format!(
                "--target-time {} is in the future (this host's clock says {}): recovery cannot reach it, \
                 PostgreSQL would stop at the end of the archived WAL and leave the server down. \
                 Nothing was stopped or changed. Give a time in the past (check the year and the zone offset), \
                 or --immediate to stop as soon as the base backup is consistent \
                 (--target-lsn, --target-xid and --target-name name other targets)",
                t.to_rfc3339(),
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            )));
        }
    }
    Ok(())
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
    refuse_future_target(&target, Utc::now())?;
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
    plan.insert(
        0,
        format!(
            "check base backup {} (its stored bytes against the manifest) before anything is stopped",
            recovery.base.id
        ),
    );
    if ctx.global.dry_run {
        // Cheap to check now, expensive to find out with the server down.
        recovery.preflight_restore_command(
            &cfg.postgres.os_user,
            std::time::Duration::from_secs(cfg.database.command_timeout_secs),
        )?;
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
    // Everything that can be checked is checked before anything is stopped.
    recovery.check(ctx, repo.as_ref())?;
    let app_stopped = super::db_recover::stop_app(&app)?;
    let note = super::db_recover::app_note(&app, app_stopped, "pitr");
    let outcome = recovery.execute(ctx, repo.as_ref(), &cluster, &note)?;
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
    restore_command: String,
    aside: PathBuf,
    /// When the plan was made (UTC, to the second): names the directories moved aside.
    stamp: String,
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
        let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let aside = PathBuf::from(format!(
            "{}.pre-recovery-{stamp}",
            cluster.data_dir.display()
        ));
        Ok(Recovery {
            base,
            target,
            action,
            settings,
            restore_command,
            aside,
            stamp,
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

    /// Checks the stored base backup (digests) before anything is stopped.
    pub(crate) fn check(&self, ctx: &Ctx, repo: &dyn crate::repo::Repository) -> Result<()> {
        let cfg = ctx.config();
        let crypto = Crypto::for_decrypt(&cfg.encryption)?;
        let pg = PgTarget::from_config(&cfg.database);
        log::info!(
            "checking base backup {} before touching the server",
            self.base.id
        );
        crate::verify::check_before_restore(&self.base, repo, &crypto, &pg)?;
        self.preflight_restore_command(&cfg.postgres.os_user, pg.command_timeout)
    }

    /// Runs the restore_command once, as PostgreSQL will (as `os_user`, through sh), for
    /// the base backup's first WAL segment: a config, passphrase or S3 secret that user
    /// cannot read would otherwise only show once the server is down, in its log.
    fn preflight_restore_command(&self, os_user: &str, timeout: std::time::Duration) -> Result<()> {
        let Some(b) = self.base.manifest.as_ref().and_then(|m| m.base.as_ref()) else {
            return Ok(());
        };
        let Some(segment) = super::wal::segment_of_lsn(b.timeline, &b.start_lsn) else {
            return Ok(());
        };
        let dir = tempfile::Builder::new()
            .prefix("tnpf")
            .tempdir()
            .context("creating a directory for the restore_command check")?;
        // SAFETY: geteuid has no preconditions.
        let as_other = unsafe { libc::geteuid() } == 0 && os_user != "root";
        if as_other {
            let st = std::process::Command::new("chown")
                .arg(os_user)
                .arg(dir.path())
                .status()
                .context("chown for the restore_command check")?;
            if !st.success() {
                bail!("chown {os_user} {} failed", dir.path().display());
            }
        }
        let command = self.restore_command.replace("%f", &segment).replace(
            "%p",
            &sh_quote(&dir.path().join(&segment).display().to_string()),
        );
        let mut cmd = if as_other {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", os_user, "--", "sh", "-c", &command]);
            c
        } else {
            let mut c = std::process::Command::new("sh");
            c.args(["-c", &command]);
            c
        };
        let out =
            crate::process::output_with_deadline(&mut cmd, timeout, "the restore_command check")?;
        match out.status.code() {
            Some(0) => {
                log::info!("restore_command works as {os_user} (fetched {segment})");
                Ok(())
            }
            // Not archived (yet): the base backup's own WAL may cover it; recovery will tell.
            Some(1) => {
                log::warn!("restore_command check: {segment} is not in the archive; recovery starts from the WAL inside the base backup");
                Ok(())
            }
            code => Err(could_not_start(format!(
                "restore_command fails when run as {os_user}, as PostgreSQL would run it (exit {}): {}; nothing was stopped. \
                 The config file, the passphrase and the S3 secret it names must be readable by {os_user}",
                code.map(|c| c.to_string()).unwrap_or_else(|| "by a signal".into()),
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
        }
    }

    /// Stops the server, swaps in the base backup with recovery settings, starts,
    /// waits, checks. Call [`Recovery::check`] first. `app_note` says what
    /// became of the application; every failure message ends with it.
    pub(crate) fn execute(
        &self,
        ctx: &Ctx,
        repo: &dyn crate::repo::Repository,
        cluster: &PgCluster,
        app_note: &str,
    ) -> Result<RecoveryOutcome> {
        let cfg = ctx.config();
        let crypto = Crypto::for_decrypt(&cfg.encryption)?;
        let pg = PgTarget::from_config(&cfg.database);
        let aside = &self.aside;
        log::info!("stopping PostgreSQL");
        if let Err(e) = cluster.stop() {
            bail!(
                "{e:#}; nothing was moved or restored: the data directory {} is untouched, \
                 PostgreSQL may or may not be running. {app_note}",
                cluster.data_dir.display()
            );
        }
        let moved = cluster.data_dir.exists();
        if moved {
            if let Err(e) = std::fs::rename(&cluster.data_dir, aside) {
                let server = match cluster.start() {
                    Ok(()) => "PostgreSQL was started again on it".to_string(),
                    Err(se) => format!(
                        "PostgreSQL is stopped (starting it again failed: {se:#}); start it with: {}",
                        cluster.start_hint()
                    ),
                };
                bail!(
                    "moving {} aside to {}: {e}; the data directory is untouched and {server}. {app_note}",
                    cluster.data_dir.display(),
                    aside.display()
                );
            }
            log::info!("moved the old data directory aside: {}", aside.display());
        }
        self.restore_and_replay(
            repo,
            &crypto,
            &pg,
            cluster,
            cfg.postgres.recovery_timeout_secs,
        )
        .map_err(|e| self.failure(e, cluster, moved, app_note))
    }

    /// After the move aside: restore, write the settings, start, wait for the target, check.
    fn restore_and_replay(
        &self,
        repo: &dyn crate::repo::Repository,
        crypto: &Crypto,
        pg: &PgTarget,
        cluster: &PgCluster,
        timeout_secs: u64,
    ) -> Result<RecoveryOutcome> {
        crate::restorer::restore_dir(&self.base, repo, crypto, &cluster.data_dir, false)
            .context("restoring the base backup")?;
        let auto = cluster.data_dir.join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).unwrap_or_default();
        conf.push_str(&self.settings);
        std::fs::write(&auto, conf).context("writing the recovery settings")?;
        std::fs::write(cluster.data_dir.join("recovery.signal"), "")?;
        let _ = std::fs::remove_file(cluster.data_dir.join("postmaster.pid"));
        cluster.own_data_dir(&cluster.data_dir)?;
        log::info!("starting PostgreSQL for recovery");
        cluster.start().context(
            "recovery did not start (see the server log: a corrupted or missing WAL file stops it on purpose)",
        )?;
        let last_replayed =
            wait_for_target(pg, self.action, Duration::from_secs(timeout_secs), cluster)?;
        if let (Target::Time(t), Some(replayed)) = (&self.target, last_replayed) {
            if replayed > *t {
                bail!("the last replayed commit ({replayed}) is after the target ({t}); refusing to call this a success");
            }
        }
        Ok(RecoveryOutcome {
            last_replayed,
            aside: self.aside.clone(),
        })
    }

    /// The error for a recovery that failed after the data directory was moved
    /// aside: PostgreSQL is left stopped (it may have been up in recovery, or
    /// promoted past the target), and the message says so, where the previous
    /// data directory is, and the exact commands that put it back.
    fn failure(
        &self,
        e: anyhow::Error,
        cluster: &PgCluster,
        moved: bool,
        app_note: &str,
    ) -> anyhow::Error {
        let server = if cluster.is_stopped() {
            "PostgreSQL is stopped.".to_string()
        } else {
            log::info!("stopping PostgreSQL after the failed recovery");
            match cluster.stop() {
                Ok(()) => "PostgreSQL is stopped (it was still up after the failure and has been stopped).".to_string(),
                Err(se) => format!(
                    "PostgreSQL could NOT be stopped ({se:#}): stop it before anything else."
                ),
            }
        };
        let data = cluster.data_dir.display().to_string();
        if !moved {
            return anyhow!(
                "{e:#}\n{server} There was no data directory at {data} before the recovery: nothing to put back.\n{app_note}"
            );
        }
        let mut steps = vec![cluster.stop_hint()];
        if cluster.data_dir.exists() {
            steps.push(format!(
                "mv {} {}",
                sh_quote(&data),
                sh_quote(&format!("{data}.failed-recovery-{}", self.stamp))
            ));
        }
        steps.push(format!(
            "mv {} {}",
            sh_quote(&self.aside.display().to_string()),
            sh_quote(&data)
        ));
        steps.push(cluster.start_hint());
        anyhow!(
            "{e:#}\n{server} The previous data directory is intact at {}. To put it back, run:\n  {}\n{app_note}",
            self.aside.display(),
            steps.join("\n  ")
        )
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
                "recovery did not reach its target within {}s (postgres.recovery_timeout_secs); \
                 it may only need longer: starting PostgreSQL on the restored directory lets it go on \
                 (recovery.signal and the settings are still there)",
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
                    let row = match c.query_one(
                        "SELECT pg_is_in_recovery(), \
                                CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE '' END, \
                                pg_last_xact_replay_timestamp()",
                        &[],
                    ) {
                        Ok(row) => row,
                        Err(e) => {
                            // The server going down under the query ("connection closed"):
                            // the next round sees whether it stopped.
                            log::debug!("recovery state query: {e}");
                            std::thread::sleep(Duration::from_millis(250));
                            continue;
                        }
                    };
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
    fn a_target_time_in_the_future_is_refused_before_anything_happens() {
        let now = parse_time("2026-12-04 07:00:00Z", None).unwrap();
        let future = Target::Time(parse_time("2030-01-01 00:00:00Z", None).unwrap());
        let err = refuse_future_target(&future, now).unwrap_err();
        assert_eq!(crate::exit::exit_code_for(&err), ExitCode::CouldNotStart);
        let text = format!("{err:#}");
        assert!(
            text.contains("in the future")
                && text.contains("Nothing was stopped")
                && text.contains("--immediate"),
            "{text}"
        );
        let past = Target::Time(parse_time("2026-12-04 06:59:59Z", None).unwrap());
        assert!(refuse_future_target(&past, now).is_ok());
        assert!(refuse_future_target(&Target::Time(now), now).is_ok());
        assert!(refuse_future_target(&Target::Immediate, now).is_ok());
    }

    #[test]
    fn a_failed_recovery_says_the_server_is_stopped_and_how_to_put_the_old_directory_back() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data dir");
        std::fs::create_dir(&data).unwrap();
        let cluster = PgCluster::from_config(&crate::config::PostgresConfig {
            data_dir: Some(data.clone()),
            start_command: Some("pg-start-cmd".into()),
            stop_command: Some("pg-stop-cmd".into()),
            ..Default::default()
        })
        .unwrap();
        let aside = tmp.path().join("data dir.pre-recovery-20261204T070000Z");
        let recovery = Recovery {
            base: RepoEntry {
                id: "base-1".into(),
                kind: BackupKind::Base,
                time: Utc::now(),
                size: 0,
                key: String::new(),
                location: String::new(),
                manifest: None,
                legacy: None,
                verification: None,
            },
            target: Target::Immediate,
            action: TargetAction::Promote,
            settings: String::new(),
            restore_command: String::new(),
            aside: aside.clone(),
            stamp: "20261204T070000Z".into(),
        };
        // No postmaster.pid: the server is known to be stopped, nothing is run.
        let err = recovery.failure(
            anyhow!("PostgreSQL stopped during recovery"),
            &cluster,
            true,
            "The application was stopped by pitr and is still stopped; start it once PostgreSQL is back: app-start",
        );
        let text = format!("{err:#}");
        let d = data.display().to_string();
        let a = aside.display().to_string();
        for want in [
            "PostgreSQL stopped during recovery\nPostgreSQL is stopped.".to_string(),
            format!("intact at {a}. To put it back, run:"),
            format!(
                "\n  pg-stop-cmd\n  mv '{d}' '{d}.failed-recovery-20261204T070000Z'\n  mv '{a}' '{d}'\n  pg-start-cmd\n"
            ),
            "still stopped; start it once PostgreSQL is back: app-start".to_string(),
        ] {
            assert!(text.contains(&want), "{want:?} not in:\n{text}");
        }
        // Nothing restored (the restore failed before the swap): no "mv" of a missing directory.
        std::fs::remove_dir(&data).unwrap();
        let text = format!(
            "{:#}",
            recovery.failure(anyhow!("restore failed"), &cluster, true, "")
        );
        assert!(
            text.contains(&format!(
                "\n  pg-stop-cmd\n  mv '{a}' '{d}'\n  pg-start-cmd"
            )),
            "{text}"
        );
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
