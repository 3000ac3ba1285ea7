//! `restore`: a database backup into a database, or an app/config backup into a directory.
//!
//! Replaces the database recovery procedure's `gpg --decrypt | gunzip | psql`
//! over the live database. The stored bytes are checked against the manifest
//! before anything is touched; a non-empty target needs `--clean` and a yes.
//! The plans ([`DbRestorePlan`], [`DirRestorePlan`]) are shared with
//! `disaster-recover`, which restores several backups under one confirmation.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::BackupKind;
use crate::repo::{self, RepoEntry, Repository};
use crate::restorer::{
    compare_rows, restore_db, restore_dir, user_relation_count, DbRestoreOptions, TableComparison,
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
    /// Give every object to the restoring user and skip GRANTs (pg_restore --no-owner --no-privileges): for a server without the backup's roles
    #[arg(long)]
    pub no_owner: bool,
}

/// Restoring a database backup into `db`, looked at before anything is touched.
pub struct DbRestorePlan {
    pub db: String,
    exists: bool,
    relations: i64,
    clean: bool,
}

impl DbRestorePlan {
    /// Refuses (exit 3) a non-empty target unless `clean`.
    pub fn new(pg: &PgTarget, db: &str, clean: bool) -> Result<DbRestorePlan> {
        if db.is_empty() || db.len() > 63 || db.contains('\0') {
            return Err(could_not_start(format!(
                "{db:?} is not a usable database name: PostgreSQL names are 1 to 63 bytes long"
            )));
        }
        if ["template0", "template1"].contains(&db) {
            return Err(could_not_start(format!(
                "refusing to restore into {db}: it is a template database (every new database would inherit the restored objects)"
            )));
        }
        let exists = pg.database_exists(db)?;
        let relations = if exists {
            user_relation_count(pg, db)?
        } else {
            0
        };
        if relations > 0 && !clean {
            return Err(could_not_start(format!(
                "database {db} is not empty ({relations} relations); pass --clean (and --yes in scripts) to replace its contents, or restore into another database"
            )));
        }
        Ok(DbRestorePlan {
            db: db.to_string(),
            exists,
            relations,
            clean,
        })
    }

    /// True when existing data would be replaced (then a confirmation is needed).
    pub fn replaces_data(&self) -> bool {
        self.relations > 0
    }

    pub fn describe(&self, entry: &RepoEntry, pg: &PgTarget) -> String {
        format!(
            "restore {} ({}) into database {} ({}), {}",
            entry.id,
            entry.location,
            pg.describe(&self.db),
            if !self.exists {
                "will be created".to_string()
            } else {
                format!("exists, {} relations", self.relations)
            },
            if self.clean {
                "replacing the objects the backup contains (pg_restore --clean; other tables are left as they are)"
            } else {
                "into an empty database"
            }
        )
    }

    /// Restores (the caller has checked the stored bytes) and compares every
    /// table's rows with the manifest; fails when any differ. A database this
    /// created is dropped again when the restore fails.
    pub fn execute(
        &self,
        entry: &RepoEntry,
        repo: &dyn Repository,
        crypto: &Crypto,
        pg: &PgTarget,
        opts: &DbRestoreOptions,
    ) -> Result<Vec<TableComparison>> {
        let db = &self.db;
        if !self.exists {
            pg.create_database(db)?;
        }
        let _note = crate::signals::note(format!(
            "the restore into database {db} did not finish: {}{}",
            if opts.jobs > 1 {
                "with --jobs it may hold part of the backup"
            } else {
                "nothing was committed (one transaction)"
            },
            if self.exists {
                String::new()
            } else {
                format!("; this run created {db}: if it is still there, drop it (DROP DATABASE {db}) or restore into it again")
            }
        ));
        log::info!("{}", self.describe(entry, pg));
        let opts = DbRestoreOptions {
            clean: self.clean,
            ..opts.clone()
        };
        if let Err(e) = restore_db(entry, repo, crypto, pg, db, &opts) {
            if !self.exists {
                // Leave nothing that looks like a restored database.
                if let Err(d) = pg.drop_database(db) {
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
        let rows = compare_rows(pg, db, expected)?;
        // Tables the backup does not contain were left alone by pg_restore --clean:
        // reported, not counted against the restore.
        let mismatches = rows
            .iter()
            .filter(|r| r.expected.is_some() && !r.matches())
            .count();
        for r in rows
            .iter()
            .filter(|r| expected.is_some() && r.expected.is_none())
        {
            log::warn!(
                "{db}: table {} is not in backup {} and was left as it was",
                r.table,
                entry.id
            );
        }
        if mismatches > 0 {
            log::error!("{}", rows_table(&rows, expected.is_some()));
            bail!(
                "{mismatches} table(s) of {db} differ from the manifest of {} after the restore; \
                 what was restored is left in {db} for inspection (drop it, or restore again with --clean)",
                entry.id
            );
        }
        log::info!(
            "restore of {} into {db} complete: {} tables{}",
            entry.id,
            rows.len(),
            if expected.is_some() {
                " match the manifest"
            } else {
                " (old-script backup: no row counts to compare)"
            }
        );
        Ok(rows)
    }
}

/// The row comparison as a text table.
pub fn rows_table(rows: &[TableComparison], have_manifest: bool) -> String {
    let mut text = format!("{:<40} {:>12} {:>12}\n", "table", "manifest", "restored");
    for r in rows {
        let f = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
        let mark = if !have_manifest || r.matches() {
            ""
        } else if r.expected.is_none() {
            "  not in the backup: left as it was"
        } else {
            "  MISMATCH"
        };
        text.push_str(&format!(
            "{:<40} {:>12} {:>12}{mark}\n",
            r.table,
            f(r.expected),
            f(r.restored)
        ));
    }
    text
}

/// Directories a restore never replaces (it would move them aside).
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/lib",
    "/var/log",
];

/// Whether `dir` is where a filesystem is mounted (a different device than its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(d), Some(Ok(p))) => d.is_dir() && d.dev() != p.dev(),
        _ => false,
    }
}

/// Restoring an app/config/base backup into a directory.
pub struct DirRestorePlan {
    pub dir: PathBuf,
    non_empty: bool,
    clean: bool,
}

impl DirRestorePlan {
    /// Refuses (exit 3) a non-empty directory unless `clean` (then it is moved aside, never deleted).
    pub fn new(dir: &Path, clean: bool) -> Result<DirRestorePlan> {
        use std::path::Component;
        if !dir.is_absolute() || dir.components().any(|c| c == Component::ParentDir) {
            return Err(could_not_start(format!(
                "refusing to restore into {:?}: the target directory must be an absolute path without ..",
                dir.display().to_string()
            )));
        }
        // `/srv/app/.` is `/srv/app`.
        let dir: PathBuf = dir.components().collect();
        let dir = dir.as_path();
        if dir.parent().is_none() || SYSTEM_DIRS.contains(&dir.to_string_lossy().as_ref()) {
            return Err(could_not_start(format!(
                "refusing to restore into {}: it is a system directory; restore into a directory of its own",
                dir.display()
            )));
        }
        if is_mount_point(dir) {
            return Err(could_not_start(format!(
                "refusing to restore into {}: it is a mount point, which cannot be moved aside and swapped; \
                 restore into a directory below it",
                dir.display()
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(could_not_start(format!(
                "{} exists and is not a directory; choose a directory to restore into",
                dir.display()
            )));
        }
        let non_empty = dir.is_dir() && std::fs::read_dir(dir)?.next().is_some();
        if non_empty && !clean {
            return Err(could_not_start(format!(
                "{} is not empty; pass --clean (and --yes in scripts) to move it aside and restore in its place",
                dir.display()
            )));
        }
        Ok(DirRestorePlan {
            dir: dir.to_path_buf(),
            non_empty,
            clean,
        })
    }

    pub fn replaces_data(&self) -> bool {
        self.non_empty
    }

    pub fn describe(&self, entry: &RepoEntry) -> String {
        format!(
            "restore {} ({}) into {}{}",
            entry.id,
            entry.location,
            self.dir.display(),
            if self.non_empty {
                " (moving the current contents aside)"
            } else {
                ""
            }
        )
    }

    /// Extracts beside the target and swaps it in; returns where the old contents went.
    pub fn execute(
        &self,
        entry: &RepoEntry,
        repo: &dyn Repository,
        crypto: &Crypto,
    ) -> Result<Option<PathBuf>> {
        log::info!("{}", self.describe(entry));
        restore_dir(entry, repo, crypto, &self.dir, self.clean)
    }
}

/// The backup to restore: `latest` is the newest of its kind that has not failed a
/// verification (those passed over are named); a named backup that failed its
/// last verification is refused.
fn choose(
    repo: &dyn Repository,
    id: &str,
    kind: Option<BackupKind>,
    database: &str,
) -> Result<RepoEntry> {
    let failed =
        |e: &RepoEntry| e.size_mismatch() || e.verification.as_ref().is_some_and(|v| !v.ok);
    if id != "latest" {
        let entry = repo.find(id)?;
        if failed(&entry) {
            // Exit 2, like the damage found by the check before a restore.
            return Err(anyhow::anyhow!(
                "{} is {}{}: refusing to restore it. `tuneton-ops verify-backup {}` checks it again; restore another backup (`tuneton-ops backups list`)",
                entry.id,
                entry.state(),
                entry
                    .verification
                    .as_ref()
                    .filter(|v| !v.problems.is_empty())
                    .map(|v| format!(" ({})", v.problems.join("; ")))
                    .unwrap_or_default(),
                entry.id
            ));
        }
        return Ok(entry);
    }
    let kind = kind.unwrap_or(BackupKind::Db);
    let (entries, _) = repo.list()?;
    let mut newest = entries
        .into_iter()
        .rev()
        .filter(|e| e.kind == kind && e.in_series_of(database));
    for e in newest.by_ref() {
        if !failed(&e) {
            return Ok(e);
        }
        log::warn!(
            "passing over {} ({}): it failed its last verification",
            e.id,
            e.state()
        );
    }
    Err(anyhow::anyhow!(
        "no {} backup{} in {} that has not failed verification (see `tuneton-ops backups list`)",
        kind.name(),
        if kind == BackupKind::Db {
            format!(" of database {database}")
        } else {
            String::new()
        },
        repo.location()
    ))
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
    let entry = choose(repo.as_ref(), &args.id, kind, &cfg.database.name)?;
    let pg = PgTarget::from_config(&cfg.database);
    match entry.kind {
        BackupKind::Db => {
            let Some(db) = args.target_db.clone() else {
                return Err(could_not_start(format!(
                    "{} is a database backup: pass --target-db NAME",
                    entry.id
                )));
            };
            if db == pg.maintenance_db {
                return Err(could_not_start(format!(
                    "refusing to restore into {db}: it is the maintenance database (database.maintenance_db); choose another --target-db"
                )));
            }
            let plan = DbRestorePlan::new(&pg, &db, args.clean)?;
            let what = plan.describe(&entry, &pg);
            if ctx.global.dry_run {
                ctx.emit(
                    &json!({"dry_run": true, "actions": [format!("would {what}")]}),
                    &format!("would {what}"),
                );
                return Ok(ExitCode::Success);
            }
            if plan.replaces_data() {
                ctx.confirm(&format!(
                    "Replace the contents of database {db} with backup {}?",
                    entry.id
                ))?;
            }
            let crypto = Crypto::for_decrypt(&cfg.encryption)?;
            log::info!("checking {} before restoring", entry.id);
            check_before_restore(&entry, repo.as_ref(), &crypto, &pg)?;
            let opts = DbRestoreOptions {
                clean: args.clean,
                jobs: args.jobs.max(1),
                no_owner: args.no_owner,
                scratch_dir: cfg.paths.scratch_dir.clone(),
            };
            let rows = plan.execute(&entry, repo.as_ref(), &crypto, &pg, &opts)?;
            let text = format!(
                "restored {} into {db}\n{}",
                entry.id,
                rows_table(&rows, entry.manifest.is_some())
            );
            ctx.emit(
                &json!({"ok": true, "id": entry.id, "target_db": db, "tables": rows}),
                &text,
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
            let plan = DirRestorePlan::new(&dir, args.clean)?;
            if ctx.global.dry_run {
                let what = plan.describe(&entry);
                ctx.emit(
                    &json!({"dry_run": true, "actions": [format!("would {what}")]}),
                    &format!("would {what}"),
                );
                return Ok(ExitCode::Success);
            }
            if plan.replaces_data() {
                ctx.confirm(&format!(
                    "Move {} aside and restore backup {} in its place?",
                    dir.display(),
                    entry.id
                ))?;
            }
            let crypto = Crypto::for_decrypt(&cfg.encryption)?;
            log::info!("checking {} before restoring", entry.id);
            check_before_restore(&entry, repo.as_ref(), &crypto, &pg)?;
            let aside = plan.execute(&entry, repo.as_ref(), &crypto)?;
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
