//! `db-recover`: find corruption (pg_checksums on the stopped server when data
//! checksums are on; pg_amcheck on the running server when asked) and, when
//! there is any, restore the newest verified backup: a base backup replayed to
//! the end of the archived WAL when there is one, else the newest logical dump.
//!
//! Replaces the database recovery procedure, which restored the latest dump
//! over the live database without checking anything first.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use super::pitr::{Recovery, Target, TargetAction};
use super::restore::DbRestorePlan;
use super::Ctx;
use crate::appctl::AppControl;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::BackupKind;
use crate::pgcluster::PgCluster;
use crate::process::output_with_deadline;
use crate::repo;

#[derive(Debug, Args)]
pub struct DbRecoverArgs {
    /// Also run pg_amcheck (btree indexes, heap) on the running server
    #[arg(long)]
    pub amcheck: bool,
    /// Only check; never restore
    #[arg(long)]
    pub check_only: bool,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A server tool (pg_controldata, pg_checksums, pg_amcheck) from bin_dir or the Debian location.
fn server_tool(ctx: &Ctx, name: &str) -> std::path::PathBuf {
    let dir = ctx
        .config()
        .database
        .bin_dir
        .clone()
        .unwrap_or_else(|| PG_BIN.into());
    dir.join(name)
}

/// Runs a server tool as the data directory's owner (they refuse root).
fn as_owner(ctx: &Ctx, cluster: &PgCluster, name: &str) -> Command {
    let program = server_tool(ctx, name);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let mut c = Command::new("runuser");
        c.args(["-u", &cluster.os_user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn checksums_enabled(ctx: &Ctx, cluster: &PgCluster) -> Result<bool> {
    let out = output_with_deadline(
        as_owner(ctx, cluster, "pg_controldata").arg(&cluster.data_dir),
        Duration::from_secs(60),
        "pg_controldata",
    )?;
    if !out.status.success() {
        return Err(could_not_start(format!(
            "pg_controldata {} failed: {}",
            cluster.data_dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find(|l| l.starts_with("Data page checksum version:"))
        .is_some_and(|l| !l.trim_end().ends_with(": 0") && !l.trim_end().ends_with(":0")))
}

pub fn run(ctx: &Ctx, args: DbRecoverArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let cluster = PgCluster::from_config(&cfg.postgres)?;
    let timeout = Duration::from_secs(cfg.database.command_timeout_secs);
    let mut findings: Vec<String> = Vec::new();
    let mut checked = Vec::new();

    if args.amcheck {
        let pg = PgTarget::from_config(&cfg.database);
        let mut cmd = pg.tool_at(server_tool(ctx, "pg_amcheck"));
        cmd.args(["--all", "--heapallindexed"]);
        let out = output_with_deadline(&mut cmd, timeout, "pg_amcheck")?;
        checked.push("pg_amcheck");
        if !out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            findings.push(format!(
                "pg_amcheck: {}",
                text.lines().take(5).collect::<Vec<_>>().join("; ")
            ));
        }
    }

    let checksums = checksums_enabled(ctx, &cluster)?;
    if checksums {
        if ctx.global.dry_run {
            ctx.emit(&json!({"dry_run": true, "actions": ["stop PostgreSQL", "pg_checksums --check", "start PostgreSQL, or recover if corrupt"]}),
                "would stop PostgreSQL, run pg_checksums --check, then start it again (or recover on corruption)");
            return Ok(ExitCode::Success);
        }
        log::info!("stopping PostgreSQL for pg_checksums --check");
        cluster.stop()?;
        let out = output_with_deadline(
            as_owner(ctx, &cluster, "pg_checksums")
                .arg("--check")
                .arg("-D")
                .arg(&cluster.data_dir),
            timeout,
            "pg_checksums",
        );
        checked.push("pg_checksums");
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                let text = String::from_utf8_lossy(&o.stdout).to_string()
                    + &String::from_utf8_lossy(&o.stderr);
                let bad: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        l.contains("checksum verification failed") || l.starts_with("Bad checksums")
                    })
                    .take(5)
                    .collect();
                findings.push(format!("pg_checksums: {}", bad.join("; ")));
            }
            Err(e) => {
                let _ = cluster.start();
                return Err(e.context("running pg_checksums"));
            }
        }
    } else if !args.amcheck {
        log::warn!(
            "data checksums are off in {}: nothing to check without --amcheck",
            cluster.data_dir.display()
        );
        ctx.emit(&json!({"ok": false, "checked": checked, "corruption": false, "note": "data checksums off; use --amcheck"}),
            "data checksums are off: pg_checksums cannot check this cluster; run with --amcheck");
        return Ok(ExitCode::Warning);
    }

    if findings.is_empty() {
        if checksums {
            cluster
                .start()
                .context("starting PostgreSQL again after the check")?;
        }
        log::info!("no corruption found ({})", checked.join(", "));
        ctx.emit(
            &json!({"ok": true, "checked": checked, "corruption": false}),
            &format!("no corruption found ({})", checked.join(", ")),
        );
        return Ok(ExitCode::Success);
    }
    for f in &findings {
        log::error!("corruption: {f}");
    }
    if args.check_only || ctx.global.dry_run {
        if checksums {
            let _ = cluster.start();
        }
        ctx.emit(
            &json!({"ok": false, "checked": checked, "corruption": true, "findings": findings}),
            &findings.join("\n"),
        );
        return Ok(ExitCode::Failed);
    }

    // Restore: a verified base backup replayed to the end of the archive, else the newest verified dump.
    // The application is stopped first (it must not write into a half-restored
    // database) and started again afterwards, when something manages it here.
    let app = AppControl::from_config(&cfg.app);
    let repo = repo::for_reading(cfg, ctx.global.from)?;
    let (entries, _) = repo.list()?;
    let base = entries
        .iter()
        .rev()
        .find(|e| e.kind == BackupKind::Base && e.is_verified() && e.manifest.is_some())
        .cloned();
    match base {
        Some(base) => {
            ctx.confirm(&format!("Corruption found. Replace {} with base backup {} replayed to the end of the archive?", cluster.data_dir.display(), base.id))?;
            let recovery = Recovery::plan(ctx, &cluster, base, Target::End, TargetAction::Promote)?;
            recovery.check(ctx, repo.as_ref())?;
            let app_stopped = stop_app(&app)?;
            let note = app_note(&app, app_stopped, "db-recover");
            let outcome = recovery.execute(ctx, repo.as_ref(), &cluster, &note)?;
            let health = start_app(&app, app_stopped)?;
            let text = format!(
                "corruption found ({}); recovered from base backup {} and the archived WAL; damaged data directory kept at {}",
                findings.join("; "),
                recovery.base.id,
                outcome.aside.display()
            );
            log::info!("{text}");
            ctx.emit(&json!({"ok": true, "corruption": true, "findings": findings, "recovered_from": recovery.base.id, "previous_data_dir": outcome.aside, "application": health}), &text);
            Ok(ExitCode::Success)
        }
        None => {
            let dump = entries.iter().rev().find(|e| e.kind == BackupKind::Db && e.in_series_of(&cfg.database.name) && e.is_verified()).cloned().ok_or_else(|| {
                anyhow::anyhow!("corruption found ({}) and no verified base backup or database dump to recover from", findings.join("; "))
            })?;
            ctx.confirm(&format!(
                "Corruption found. Replace database {} with verified dump {}?",
                cfg.database.name, dump.id
            ))?;
            if checksums {
                cluster
                    .start()
                    .context("starting PostgreSQL to restore the dump")?;
            }
            let crypto = crate::crypto::Crypto::for_decrypt(&cfg.encryption)?;
            let pg = PgTarget::from_config(&cfg.database);
            crate::verify::check_before_restore(&dump, repo.as_ref(), &crypto, &pg)?;
            let plan = DbRestorePlan::new(&pg, &cfg.database.name, true)?;
            let opts = crate::restorer::DbRestoreOptions {
                clean: true,
                jobs: 1,
                no_owner: false,
                scratch_dir: cfg.paths.scratch_dir.clone(),
            };
            let app_stopped = stop_app(&app)?;
            let rows = plan.execute(&dump, repo.as_ref(), &crypto, &pg, &opts)?;
            let health = start_app(&app, app_stopped)?;
            let text = format!(
                "corruption found ({}); restored verified dump {} into {}",
                findings.join("; "),
                dump.id,
                cfg.database.name
            );
            log::info!("{text}");
            ctx.emit(&json!({"ok": true, "corruption": true, "findings": findings, "recovered_from": dump.id, "tables": rows, "application": health}), &text);
            Ok(ExitCode::Success)
        }
    }
}

/// Stops the application when something manages it and it runs; returns whether it did.
pub(crate) fn stop_app(app: &Option<AppControl>) -> Result<bool> {
    match app {
        Some(a) => a.stop_if_running(),
        None => Ok(false),
    }
}

/// What became of the application, for a failure message after it may have been stopped.
pub(crate) fn app_note(app: &Option<AppControl>, stopped: bool, command: &str) -> String {
    match app {
        None => format!(
            "The application is not managed on this host (no app.start_command, no systemd): {command} neither stopped nor started it."
        ),
        Some(a) if stopped => format!(
            "{} was stopped by {command} and is still stopped; start it once PostgreSQL is back: {}",
            capitalize(&a.describe()),
            a.start_hint()
        ),
        Some(a) => format!(
            "{} was not running before {command}, which did not start it.",
            capitalize(&a.describe())
        ),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Starts the application again (when managed) and waits for its health
/// endpoint; the JSON for the report. Not healthy in time: an error (exit 2).
pub(crate) fn start_app(app: &Option<AppControl>, was_stopped: bool) -> Result<serde_json::Value> {
    let Some(a) = app else {
        return Ok(serde_json::Value::Null);
    };
    let w = a.start_and_wait().with_context(|| {
        format!(
            "the database was recovered, but the application {}",
            if was_stopped {
                "did not come back"
            } else {
                "did not come up"
            }
        )
    })?;
    Ok(json!({"healthy": true, "url": a.health_url(), "seconds": w.elapsed.as_secs_f64()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_note_says_what_became_of_it() {
        assert!(app_note(&None, false, "pitr").contains("pitr neither stopped nor started it"));
        let app = AppControl::from_config(&crate::config::AppConfig {
            start_command: Some("app-start --now".into()),
            ..Default::default()
        });
        let text = app_note(&app, true, "pitr");
        assert!(
            text.starts_with("The application (configured commands)")
                && text.contains("stopped by pitr and is still stopped")
                && text.ends_with(": app-start --now"),
            "{text}"
        );
        assert!(app_note(&app, false, "db-recover").contains("was not running before db-recover"));
    }
}
