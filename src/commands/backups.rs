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
use crate::retention::{plan, Candidate, Decision};

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
        "{:<40} {:<7} {:<20} {:>10}  {}\n",
        "ID", "KIND", "TIME (UTC)", "SIZE", "STATE"
    );
    for e in &entries {
        text.push_str(&format!(
            "{:<40} {:<7} {:<20} {:>10}  {}\n",
            e.id,
            e.kind.name(),
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
                "id": e.id, "kind": e.kind, "time": e.time, "size": e.size, "state": e.state(),
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
    let candidates: Vec<Candidate> = entries
        .iter()
        .filter(|e| e.kind == kind && e.legacy.is_none())
        .map(|e| Candidate {
            id: e.id.clone(),
            time: e.time,
            verified: e.is_verified(),
        })
        .collect();
    Ok(plan(&candidates, policy, Utc::now()))
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

fn prune(ctx: &Ctx, args: PruneArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let repo = repo::for_reading(cfg, ctx.global.from)?;
    let kinds = args
        .kind
        .map(|k| vec![k])
        .unwrap_or_else(|| BackupKind::ALL.to_vec());
    let mut report = Vec::new();
    let mut text = String::new();
    for kind in kinds {
        let decisions = retention_plan(repo.as_ref(), kind, &cfg.retention)?;
        let deleted = apply_retention(repo.as_ref(), kind, &cfg.retention, ctx.global.dry_run)?;
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
    ctx.emit(
        &json!({"dry_run": ctx.global.dry_run, "kinds": report}),
        &text,
    );
    Ok(ExitCode::Success)
}
