//! `disaster-recover`: rebuild a host from the backup repository alone.
//!
//! Replaces the disaster recovery procedure. On a host that has only the config
//! (and the S3 credentials and passphrase it names), it picks the newest
//! *verified* database, application and config backups, checks every stored
//! byte of all of them against their manifests before touching anything,
//! restores the database into `database.name` (row counts compared with the
//! manifest), the application into `paths.app_dir` and the config into
//! `paths.config_dir` (existing directories moved aside, never deleted), then
//! starts the application through `[app]` and waits for its health endpoint.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::restore::{rows_table, DbRestorePlan, DirRestorePlan};
use super::Ctx;
use crate::appctl::AppControl;
use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::BackupKind;
use crate::repo::{self, RepoChoice, RepoEntry};
use crate::restorer::DbRestoreOptions;
use crate::verify::check_before_restore;

#[derive(Debug, Args)]
pub struct DisasterRecoverArgs {
    /// Replace what the targets hold: drop the database's objects, move existing directories aside
    #[arg(long)]
    pub clean: bool,
    /// Also use backups that were never verified (when a kind has no verified backup)
    #[arg(long)]
    pub allow_unverified: bool,
    /// Leave the database alone
    #[arg(long)]
    pub skip_db: bool,
    /// Leave the application directory alone
    #[arg(long)]
    pub skip_app: bool,
    /// Leave the config directory alone
    #[arg(long)]
    pub skip_config: bool,
    /// Parallel pg_restore jobs
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: u32,
    /// Do not start the application afterwards
    #[arg(long)]
    pub no_start: bool,
    /// Restore the backups of this database (default: database.name, into which it is restored)
    #[arg(long, value_name = "NAME")]
    pub source_db: Option<String>,
    /// Give every database object to the restoring user and skip GRANTs (pg_restore --no-owner --no-privileges): for a new server without the backup's roles
    #[arg(long)]
    pub no_owner: bool,
}

/// One backup to bring back and where it goes.
enum Step {
    Db(RepoEntry, DbRestorePlan),
    Dir(RepoEntry, DirRestorePlan),
}

impl Step {
    fn entry(&self) -> &RepoEntry {
        match self {
            Step::Db(e, _) | Step::Dir(e, _) => e,
        }
    }
    fn replaces_data(&self) -> bool {
        match self {
            Step::Db(_, p) => p.replaces_data(),
            Step::Dir(_, p) => p.replaces_data(),
        }
    }
    fn describe(&self, pg: &PgTarget) -> String {
        match self {
            Step::Db(e, p) => p.describe(e, pg),
            Step::Dir(e, p) => p.describe(e),
        }
    }
}

/// The newest verified backup of `kind` (or the newest at all with `allow_unverified`).
fn choose(
    entries: &[RepoEntry],
    kind: BackupKind,
    database: &str,
    allow_unverified: bool,
    location: &str,
) -> Result<RepoEntry> {
    let of_kind = || {
        entries
            .iter()
            .rev()
            .filter(|e| e.kind == kind && e.in_series_of(database))
    };
    let kind_name = if kind == BackupKind::Db {
        format!("db backup of database {database}")
    } else {
        format!("{} backup", kind.name())
    };
    if let Some(e) = of_kind().find(|e| e.is_verified()) {
        return Ok(e.clone());
    }
    match of_kind().next() {
        Some(e) if allow_unverified => {
            log::warn!(
                "no verified {kind_name} in {location}: using the newest unverified one, {}",
                e.id
            );
            Ok(e.clone())
        }
        Some(e) => Err(could_not_start(format!(
            "no verified {kind_name} in {location} (the newest, {id}, is {state}); run `tuneton-ops verify-backup {id}` first, or pass --allow-unverified",
            id = e.id,
            state = e.state()
        ))),
        None => {
            let mut others: Vec<&str> = entries
                .iter()
                .filter(|e| e.kind == kind)
                .filter_map(|e| e.database())
                .collect();
            others.sort();
            others.dedup();
            let hint = if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (there are backups of {}: --source-db NAME restores one of those)",
                    others.join(", ")
                )
            };
            Err(could_not_start(format!(
                "no {kind_name} in {location}{hint}; pass --skip-{} to recover without it",
                kind.name()
            )))
        }
    }
}

pub fn run(ctx: &Ctx, args: DisasterRecoverArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    // A rebuilt host reads the shared store: S3 when it is configured.
    let from = ctx.global.from.or(cfg.s3.enabled.then_some(RepoChoice::S3));
    let repo = repo::for_reading(cfg, from)?;
    let location = repo.location();
    let (entries, _) = repo.list()?;
    let pg = PgTarget::from_config(&cfg.database);

    let mut steps = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    if !args.skip_db {
        let e = choose(
            &entries,
            BackupKind::Db,
            args.source_db.as_deref().unwrap_or(&cfg.database.name),
            args.allow_unverified,
            &location,
        )?;
        // A dry run shows the whole plan, refusals included; a real run stops at the first.
        match DbRestorePlan::new(&pg, &cfg.database.name, args.clean) {
            Ok(plan) => steps.push(Step::Db(e, plan)),
            Err(err) if ctx.global.dry_run => refusals.push(format!("{}: {err:#}", e.id)),
            Err(err) => return Err(err),
        }
    }
    for (skip, kind, dir) in [
        (args.skip_app, BackupKind::App, &cfg.paths.app_dir),
        (args.skip_config, BackupKind::Config, &cfg.paths.config_dir),
    ] {
        if !skip {
            let e = choose(
                &entries,
                kind,
                &cfg.database.name,
                args.allow_unverified,
                &location,
            )?;
            match DirRestorePlan::new(dir, args.clean) {
                Ok(plan) => steps.push(Step::Dir(e, plan)),
                Err(err) if ctx.global.dry_run => refusals.push(format!("{}: {err:#}", e.id)),
                Err(err) => return Err(err),
            }
        }
    }
    if steps.is_empty() && refusals.is_empty() {
        return Err(could_not_start(
            "nothing to recover: --skip-db, --skip-app and --skip-config all given",
        ));
    }

    let app = AppControl::from_config(&cfg.app);
    let mut actions: Vec<String> = Vec::new();
    if let Some(a) = &app {
        actions.push(format!("stop {} if it runs", a.describe()));
    }
    actions.extend(steps.iter().map(|s| s.describe(&pg)));
    match (&app, args.no_start) {
        (Some(a), false) => actions.push(format!(
            "start {} and wait for {} (app.ready_timeout_secs = {})",
            a.describe(),
            a.health_url(),
            cfg.app.ready_timeout_secs
        )),
        (None, false) => actions.push(
            "leave the application to you: nothing manages it here (no app.start_command, no systemd)"
                .into(),
        ),
        (_, true) => actions.push("leave the application stopped (--no-start)".into()),
    }
    let fetch: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            let e = s.entry();
            json!({"id": e.id, "kind": e.kind.name(), "location": e.location, "size": e.size,
                   "time": e.time, "state": e.state()})
        })
        .collect();
    if ctx.global.dry_run {
        let text = format!(
            "disaster recovery from {location} would:\n  check every stored byte of {} backups against their manifests\n{}",
            steps.len() + refusals.len(),
            actions
                .iter()
                .map(|a| format!("  {a}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let text = if refusals.is_empty() {
            text
        } else {
            format!(
                "{text}\nand would REFUSE (fix these, or pass --clean / --skip-*):\n  {}",
                refusals.join("\n  ")
            )
        };
        ctx.emit(
            &json!({"dry_run": true, "repository": location, "fetch": fetch, "actions": actions,
                    "refused": refusals}),
            &text,
        );
        // The real run would not start: say so in the exit code too.
        return Ok(if refusals.is_empty() {
            ExitCode::Success
        } else {
            ExitCode::CouldNotStart
        });
    }
    let replacing: Vec<String> = steps
        .iter()
        .filter(|s| s.replaces_data())
        .map(|s| s.describe(&pg))
        .collect();
    ctx.confirm(&format!(
        "Disaster recovery from {location}:\n  {}\n{}Proceed?",
        actions.join("\n  "),
        if replacing.is_empty() {
            String::new()
        } else {
            format!(
                "This REPLACES existing data ({} target(s)). ",
                replacing.len()
            )
        }
    ))?;

    let crypto = Crypto::for_decrypt(&cfg.encryption)?;
    // Every backup is checked before any target is touched: a damaged config
    // backup must not be found after the database was already replaced.
    for s in &steps {
        log::info!("checking {} before restoring", s.entry().id);
        check_before_restore(s.entry(), repo.as_ref(), &crypto, &pg)?;
    }
    let opts = DbRestoreOptions {
        clean: args.clean,
        jobs: args.jobs.max(1),
        no_owner: args.no_owner,
        scratch_dir: cfg.paths.scratch_dir.clone(),
    };
    if let Some(a) = &app {
        a.stop_if_running()?;
    }
    let mut text = format!("disaster recovery from {location}\n");
    let mut report = Vec::new();
    for s in &steps {
        match s {
            Step::Db(e, plan) => {
                let rows = plan.execute(e, repo.as_ref(), &crypto, &pg, &opts)?;
                text.push_str(&format!(
                    "database {} restored from {}\n{}",
                    plan.db,
                    e.id,
                    rows_table(&rows, e.manifest.is_some())
                ));
                report
                    .push(json!({"id": e.id, "kind": "db", "target_db": plan.db, "tables": rows}));
            }
            Step::Dir(e, plan) => {
                let aside = plan.execute(e, repo.as_ref(), &crypto)?;
                text.push_str(&format!(
                    "{} restored from {}{}\n",
                    plan.dir.display(),
                    e.id,
                    aside
                        .as_ref()
                        .map(|a| format!(" (previous contents kept in {})", a.display()))
                        .unwrap_or_default()
                ));
                report.push(json!({"id": e.id, "kind": e.kind.name(), "target_dir": plan.dir, "moved_aside": aside}));
            }
        }
    }
    log::info!(
        "disaster recovery from {location}: {} backups restored",
        steps.len()
    );
    let mut health = serde_json::Value::Null;
    let mut failure = None;
    if let (Some(a), false) = (&app, args.no_start) {
        match a.start_and_wait() {
            Ok(w) => {
                text.push_str(&format!(
                    "the application is healthy ({} after {:.1}s)\n",
                    a.health_url(),
                    w.elapsed.as_secs_f64()
                ));
                health = json!({"healthy": true, "url": a.health_url(), "seconds": w.elapsed.as_secs_f64()});
            }
            Err(e) => {
                text.push_str(&format!("the application is NOT healthy: {e:#}\n"));
                health =
                    json!({"healthy": false, "url": a.health_url(), "error": format!("{e:#}")});
                failure = Some(e);
            }
        }
    }
    ctx.emit(
        &json!({"ok": failure.is_none(), "repository": location, "restored": report, "application": health}),
        &text,
    );
    match failure {
        Some(e) => Err(e.context("the backups were restored, but the application did not come up")),
        None => Ok(ExitCode::Success),
    }
}
