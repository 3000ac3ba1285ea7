//! `restore`: a database backup into a database, or an app/config backup into a directory.
//!
//! Replaces the database recovery procedure's `gpg --decrypt | gunzip | psql`
//! over the live database. The stored bytes are checked against the manifest
//! before anything is touched; a non-empty target needs `--clean` and a yes.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::BackupKind;
use crate::repo;
use crate::restorer::{
    compare_rows, restore_db, restore_dir, user_relation_count, DbRestoreOptions,
};
use crate::verify::check_before_restore;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Backup id (or old-script file name), or `latest`
    #[arg(default_value = "latest")]
    pub id: String,
    /// Kind for `latest` (default db)
    #[arg(long, value_enum)]
    pub kind: Option<BackupKind>,
    /// Database to restore into (created if missing); for database backups
    #[arg(long, value_name = "NAME", conflicts_with = "target_dir")]
    pub target_db: Option<String>,
    /// Directory to restore into; for app/config backups
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Replace what the target holds (database: drop objects first; directory: move the old one aside)
    #[arg(long)]
    pub clean: bool,
    /// Parallel pg_restore jobs (spools the decrypted dump to paths.scratch_dir, mode 0600)
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub jobs: u32,
    /// Do not restore object ownership (pg_restore --no-owner)
    #[arg(long)]
    pub no_owner: bool,
}

pub fn run(ctx: &Ctx, args: RestoreArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let repo = repo::for_reading(cfg, ctx.global.from)?;
    let kind = args
        .kind
        .or(if args.target_dir.is_some() && args.id == "latest" {
            Some(BackupKind::App)
        } else {
            None
        });
    let entry = repo.find(&args.id, kind)?;
    let pg = PgTarget::from_config(&cfg.database);
    match entry.kind {
        BackupKind::Db => {
            let Some(db) = args.target_db.clone() else {
                return Err(could_not_start(format!(
                    "{} is a database backup: pass --target-db NAME",
                    entry.id
                )));
            };
            let exists = pg.database_exists(&db)?;
            let relations = if exists {
                user_relation_count(&pg, &db)?
            } else {
                0
            };
            let plan = format!(
                "restore {} ({}) into database {} ({}), {}",
                entry.id,
                entry.location,
                pg.describe(&db),
                if !exists {
                    "will be created".to_string()
                } else {
                    format!("exists, {relations} relations")
                },
                if args.clean {
                    "dropping existing objects first"
                } else {
                    "into an empty database"
                }
            );
            if relations > 0 && !args.clean {
                return Err(could_not_start(format!(
                    "database {db} is not empty ({relations} relations); pass --clean (and --yes in scripts) to replace its contents, or choose a new --target-db"
                )));
            }
            if ctx.global.dry_run {
                ctx.emit(
                    &json!({"dry_run": true, "actions": [format!("would {plan}")]}),
                    &format!("would {plan}"),
                );
                return Ok(ExitCode::Success);
            }
            if relations > 0 {
                ctx.confirm(&format!(
                    "Replace the contents of database {db} with backup {}?",
                    entry.id
                ))?;
            }
            let crypto = Crypto::for_decrypt(&cfg.encryption)?;
            log::info!("checking {} before restoring", entry.id);
            check_before_restore(&entry, repo.as_ref(), &crypto, &pg)?;
            if !exists {
                pg.create_database(&db)?;
            }
            log::info!("{plan}");
            let opts = DbRestoreOptions {
                clean: args.clean,
                jobs: args.jobs.max(1),
                no_owner: args.no_owner,
                scratch_dir: cfg.paths.scratch_dir.clone(),
            };
            if let Err(e) = restore_db(&entry, repo.as_ref(), &crypto, &pg, &db, &opts) {
                if !exists {
                    // Leave nothing that looks like a restored database.
                    if let Err(d) = pg.drop_database(&db) {
                        log::warn!("could not drop the partly restored database {db}: {d:#}");
                    }
                }
                return Err(e);
            }
            let expected = entry
                .manifest
                .as_ref()
                .and_then(|m| m.database.as_ref())
                .map(|d| &d.tables);
            let rows = compare_rows(&pg, &db, expected)?;
            let mismatches: Vec<_> = rows
                .iter()
                .filter(|r| expected.is_some() && !r.matches())
                .collect();
            let mut text = format!(
                "restored {} into {db}\n{:<40} {:>12} {:>12}\n",
                entry.id, "table", "manifest", "restored"
            );
            for r in &rows {
                let f = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
                let mark = if expected.is_some() && !r.matches() {
                    "  MISMATCH"
                } else {
                    ""
                };
                text.push_str(&format!(
                    "{:<40} {:>12} {:>12}{mark}\n",
                    r.table,
                    f(r.expected),
                    f(r.restored)
                ));
            }
            ctx.emit(
                &json!({"ok": mismatches.is_empty(), "id": entry.id, "target_db": db, "tables": rows}),
                &text,
            );
            if !mismatches.is_empty() {
                bail!(
                    "{} table(s) differ from the manifest after the restore",
                    mismatches.len()
                );
            }
            log::info!(
                "restore of {} into {db} complete: {} tables match the manifest",
                entry.id,
                rows.len()
            );
            Ok(ExitCode::Success)
        }
        BackupKind::Wal => Err(could_not_start(format!(
            "{} is an archived WAL file: PostgreSQL fetches those itself (restore_command = 'tuneton-ops wal-fetch %f %p')",
            entry.id
        ))),
        BackupKind::App | BackupKind::Config | BackupKind::Base => {
            let Some(dir) = args.target_dir.clone() else {
                return Err(could_not_start(format!(
                    "{} is a {} backup: pass --target-dir DIR",
                    entry.id,
                    entry.kind.name()
                )));
            };
            let non_empty = dir.is_dir() && std::fs::read_dir(&dir)?.next().is_some();
            if non_empty && !args.clean {
                return Err(could_not_start(format!(
                    "{} is not empty; pass --clean (and --yes in scripts) to move it aside and restore in its place",
                    dir.display()
                )));
            }
            let plan = format!(
                "restore {} into {}{}",
                entry.id,
                dir.display(),
                if non_empty {
                    " (moving the current contents aside)"
                } else {
                    ""
                }
            );
            if ctx.global.dry_run {
                ctx.emit(
                    &json!({"dry_run": true, "actions": [format!("would {plan}")]}),
                    &format!("would {plan}"),
                );
                return Ok(ExitCode::Success);
            }
            if non_empty {
                ctx.confirm(&format!(
                    "Move {} aside and restore backup {} in its place?",
                    dir.display(),
                    entry.id
                ))?;
            }
            let crypto = Crypto::for_decrypt(&cfg.encryption)?;
            log::info!("checking {} before restoring", entry.id);
            check_before_restore(&entry, repo.as_ref(), &crypto, &pg)?;
            let aside = restore_dir(&entry, repo.as_ref(), &crypto, &dir, args.clean)?;
            let text = match &aside {
                Some(a) => format!(
                    "restored {} into {} (previous contents kept in {})",
                    entry.id,
                    dir.display(),
                    a.display()
                ),
                None => format!("restored {} into {}", entry.id, dir.display()),
            };
            log::info!("{text}");
            ctx.emit(
                &json!({"ok": true, "id": entry.id, "target_dir": dir, "moved_aside": aside}),
                &text,
            );
            Ok(ExitCode::Success)
        }
    }
}
