//! `backups list` and `backups prune`: what the repository holds, and the retention policy.
//!
//! Replaces `ls -t /backups/...` in the old verification script and its
//! "delete archives older than N days" cleanup.

use anyhow::Result;
use chrono::Utc;
use clap::{Args, Subcommand};
use serde_json::json;

use super::Ctx;
use crate::config::RetentionConfig;
use crate::exit::ExitCode;
use crate::manifest::BackupKind;
use crate::progress::human_bytes;
use crate::repo::{self, Repository};
use crate::retention::{plan, plan_wal_expiry, Candidate, Decision, RetainedBase};

#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// List backups: id, kind, time, size, verification state
    List(ListArgs),
    /// Apply the retention policy now (with --dry-run: list what would be deleted)
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this kind
    #[arg(long, value_enum)]
    pub kind: Option<BackupKind>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only this kind (default: every kind)
    #[arg(long, value_enum)]
    pub kind: Option<BackupKind>,
}

pub fn run(ctx: &Ctx, cmd: BackupsCommand) -> Result<ExitCode> {
    match cmd {
        BackupsCommand::List(args) => list(ctx, args),
        BackupsCommand::Prune(args) => prune(ctx, args),
    }
}

fn list(ctx: &Ctx, args: ListArgs) -> Result<ExitCode> {
    let repo = repo::for_reading(ctx.config(), ctx.global.from)?;
    let (entries, warnings) = repo.list()?;
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| args.kind.is_none_or(|k| e.kind == k))
        .collect();
    for w in &warnings {
        log::warn!("{w}");
    }
    let mut text = format!(
        "{:<40} {:<7} {:<16} {:<20} {:>10}  {}\n",
        "ID", "KIND", "DATABASE", "TIME (UTC)", "SIZE", "STATE"
    );
    for e in &entries {
        text.push_str(&format!(
            "{:<40} {:<7} {:<16} {:<20} {:>10}  {}\n",
            e.id,
            e.kind.name(),
            e.database().unwrap_or("-"),
            e.time.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(e.size),
            e.state()
        ));
    }
    if entries.is_empty() {
        text.push_str("(no backups)\n");
    }
    for w in warnings.iter().filter(|w| w.damaged) {
        text.push_str(&format!("DAMAGED: {w}\n"));
    }
    let json_entries: Vec<_> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id, "kind": e.kind, "database": e.database(), "time": e.time, "size": e.size, "state": e.state(),
                "location": e.location, "legacy": e.legacy.is_some(), "verification": e.verification,
                "tables": e.manifest.as_ref().and_then(|m| m.database.as_ref()).map(|d| d.tables.len()),
            })
        })
        .collect();
    ctx.emit(
        &json!({"repository": repo.location(), "backups": json_entries,
                "warnings": warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                "damaged": warnings.iter().filter(|w| w.damaged).map(|w| w.to_string()).collect::<Vec<_>>()}),
        &text,
    );
    Ok(ExitCode::Success)
}

/// The retention decisions for one kind (managed backups only; old-script files are never touched).
pub fn retention_plan(
    repo: &dyn Repository,
    kind: BackupKind,
    policy: &RetentionConfig,
) -> Result<Vec<Decision>> {
    let (entries, _) = repo.list()?;
    // Database backups form one series per database: one database's backups never
    // push out another's, and each keeps its own newest (verified) backup.
    let mut series: std::collections::BTreeMap<Option<&str>, Vec<Candidate>> = Default::default();
    for e in entries
        .iter()
        .filter(|e| e.kind == kind && e.legacy.is_none())
    {
        series.entry(e.database()).or_default().push(Candidate {
            id: e.id.clone(),
            time: e.time,
            verified: e.is_verified(),
        });
    }
    let now = Utc::now();
    Ok(series
        .values()
        .flat_map(|candidates| plan(candidates, policy, now))
        .collect())
}

/// Deletes what the policy does not keep; returns the ids deleted (or that would be, with `dry_run`).
pub fn apply_retention(
    repo: &dyn Repository,
    kind: BackupKind,
    policy: &RetentionConfig,
    dry_run: bool,
) -> Result<Vec<String>> {
    let decisions = retention_plan(repo, kind, policy)?;
    let (entries, _) = repo.list()?;
    let mut deleted = Vec::new();
    for d in decisions.iter().filter(|d| !d.keep) {
        let Some(entry) = entries.iter().find(|e| e.id == d.id) else {
            continue;
        };
        if dry_run {
            log::info!("would delete {} ({})", d.id, d.reasons.join(", "));
        } else {
            repo.delete(entry)?;
            log::info!("retention deleted {} ({})", d.id, d.reasons.join(", "));
        }
        deleted.push(d.id.clone());
    }
    Ok(deleted)
}

/// What WAL expiry did (or would do) in one repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WalExpiry {
    pub repository: String,
    pub dry_run: bool,
    /// The oldest retained base backup, whose start segment is the boundary.
    pub base_backup: Option<String>,
    /// The first segment kept.
    pub boundary: Option<String>,
    /// WAL files (segments, `.partial` segments, `.backup` labels) removed, or that would be.
    pub expired: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Why nothing was expired.
    pub skipped: Option<String>,
}

impl WalExpiry {
    /// One line for people.
    pub fn describe(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("archived WAL in {} kept: {why}", self.repository);
        }
        let verb = if self.dry_run {
            "would expire"
        } else {
            "expired"
        };
        let boundary = format!(
            "before {}, the start of the oldest retained base backup {}",
            self.boundary.as_deref().unwrap_or("?"),
            self.base_backup.as_deref().unwrap_or("?")
        );
        match (&self.first, &self.last) {
            (Some(first), Some(last)) => format!(
                "{verb} {} archived WAL file(s) {first} .. {last} from {} ({boundary})",
                self.expired, self.repository
            ),
            _ => format!(
                "no archived WAL to expire in {} ({boundary})",
                self.repository
            ),
        }
    }
}

/// WAL expiry, after base-backup retention: deletes (with `dry_run`: lists) the
/// archived WAL that no retained base backup needs. `dropped_bases` are base
/// backups retention deleted or, in a dry run, would delete.
pub fn expire_wal(
    repo: &dyn Repository,
    policy: &RetentionConfig,
    dropped_bases: &[String],
    dry_run: bool,
) -> Result<WalExpiry> {
    let mut report = WalExpiry {
        repository: repo.location(),
        dry_run,
        base_backup: None,
        boundary: None,
        expired: 0,
        first: None,
        last: None,
        skipped: None,
    };
    if !policy.enabled || !policy.expire_wal {
        report.skipped = Some(
            if policy.enabled {
                "retention.expire_wal = false"
            } else {
                "retention.enabled = false"
            }
            .into(),
        );
        return Ok(report);
    }
    let (entries, _) = repo.list()?;
    let bases: Vec<RetainedBase> = entries
        .iter()
        .filter(|e| e.kind == BackupKind::Base && !dropped_bases.contains(&e.id))
        .map(|e| RetainedBase {
            id: e.id.clone(),
            time: e.time,
            verified: e.is_verified(),
            base: e.manifest.as_ref().and_then(|m| m.base.clone()),
        })
        .collect();
    let keys: Vec<String> = repo
        .list_dir(BackupKind::Wal.dir())?
        .into_iter()
        .map(|f| f.key)
        .collect();
    let plan = plan_wal_expiry(&bases, &keys);
    report.base_backup = plan.base_backup.clone();
    report.boundary = plan.boundary.clone();
    if let Some(why) = plan.skipped {
        if !keys.is_empty() {
            let why = if bases.is_empty() {
                format!("{why} (a setup without base backups keeps all the WAL it archived)")
            } else {
                why
            };
            report.skipped = Some(why);
            log::info!("{}", report.describe());
        } else {
            report.skipped = Some(why);
        }
        return Ok(report);
    }
    report.expired = plan.expire.len();
    report.first = plan.expire.first().map(|e| e.name.clone());
    report.last = plan.expire.last().map(|e| e.name.clone());
    if !dry_run {
        // Oldest first, so an interrupted run leaves the WAL it kept contiguous.
        for (done, wal) in plan.expire.iter().enumerate() {
            for key in &wal.keys {
                if let Err(e) = repo.remove_key(key) {
                    if done > 0 {
                        log::info!(
                            "expired {done} archived WAL file(s) {} .. {} from {} before the failure",
                            plan.expire[0].name,
                            plan.expire[done - 1].name,
                            repo.location()
                        );
                    }
                    return Err(e.context(format!("expiring archived WAL {}", wal.name)));
                }
            }
        }
    }
    if report.expired > 0 {
        log::info!("{}", report.describe());
    }
    Ok(report)
}

fn prune(ctx: &Ctx, args: PruneArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let repo = repo::for_reading(cfg, ctx.global.from)?;
    let kinds = args
        .kind
        .map(|k| vec![k])
        .unwrap_or_else(|| BackupKind::ALL.to_vec());
    let mut report = Vec::new();
    let mut text = String::new();
    let mut wal = None;
    for kind in kinds {
        let decisions = retention_plan(repo.as_ref(), kind, &cfg.retention)?;
        let deleted = apply_retention(repo.as_ref(), kind, &cfg.retention, ctx.global.dry_run)?;
        if kind == BackupKind::Base {
            wal = Some(expire_wal(
                repo.as_ref(),
                &cfg.retention,
                &deleted,
                ctx.global.dry_run,
            )?);
        }
        for d in &decisions {
            let action = match (d.keep, ctx.global.dry_run) {
                (true, _) => "keep",
                (false, true) => "would delete",
                (false, false) => "deleted",
            };
            text.push_str(&format!(
                "{action:<13} {}  ({})\n",
                d.id,
                d.reasons.join(", ")
            ));
        }
        report.push(json!({"kind": kind, "decisions": decisions, "deleted": deleted}));
    }
    if let Some(w) = &wal {
        text.push_str(&format!("wal           {}\n", w.describe()));
    }
    ctx.emit(
        &json!({"dry_run": ctx.global.dry_run, "kinds": report, "wal": wal}),
        &text,
    );
    Ok(ExitCode::Success)
}
