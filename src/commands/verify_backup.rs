//! `verify-backup`: decrypt and decompress every byte of a backup, check it
//! against its manifest, read its structure, and optionally restore it into a
//! scratch database and compare every table's row count.
//!
//! Replaces the daily backup verification script (whose `gpg --verify` on a
//! symmetric file checked nothing) and the automated recovery test (with its
//! hard-coded 1000/5000 row thresholds).

use anyhow::Result;
use chrono::Utc;
use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::{BackupKind, ContentFormat, VerificationRecord};
use crate::progress::human_bytes;
use crate::repo::{self, RepoEntry, Repository};
use crate::restorer::{compare_rows, restore_db, DbRestoreOptions, TableComparison};
use crate::verify::verify_entry;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Backup id (or old-script file name), or `latest`. Default: the latest of each kind
    pub id: Option<String>,
    /// Verify every backup in the repository
    #[arg(long, conflicts_with = "id")]
    pub all: bool,
    /// Only this kind
    #[arg(long, value_enum)]
    pub kind: Option<BackupKind>,
    /// Warn (exit 1) when the newest backup is older than this many hours (default verify.max_age_warn_hours)
    #[arg(long, value_name = "HOURS")]
    pub max_age: Option<u64>,
    /// Fail (exit 2) when the newest backup is older than this many hours (default verify.max_age_crit_hours)
    #[arg(long, value_name = "HOURS")]
    pub max_age_critical: Option<u64>,
    /// Also restore database backups into a scratch database and compare every table's row count
    #[arg(long)]
    pub restore_test: bool,
    /// Check the WAL archive instead: last archived segment and its age (--max-age), gaps since the newest base backup, server archiver failures
    #[arg(long, conflicts_with_all = ["id", "all", "restore_test"])]
    pub wal: bool,
}

pub fn run(ctx: &Ctx, args: VerifyArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    if args.wal {
        let repo = repo::for_reading(cfg, ctx.global.from)?;
        let (code, doc, text) = super::wal::archive_status(ctx, repo.as_ref(), args.max_age)?;
        ctx.emit(&doc, &text);
        return Ok(code);
    }
    let repos = repo::for_verifying(cfg, ctx.global.from)?;
    let several = repos.len() > 1;
    let mut found = Vec::new();
    // With several repositories, one that cannot be read does not stop the others' verification.
    let mut unreadable = Vec::new();
    let mut damaged = Vec::new();
    for repo in &repos {
        let (all, warnings) = match repo.list() {
            Ok(listing) => listing,
            Err(e) if several => {
                log::error!("cannot list {}: {e:#}", repo.location());
                unreadable.push(json!({"repository": repo.location(), "error": format!("{e:#}")}));
                continue;
            }
            Err(e) => return Err(e),
        };
        for w in &warnings {
            if w.damaged {
                // A finished backup is damaged or lost: that fails the check like a bad checksum.
                log::error!("{w}");
                damaged.push(json!({"repository": repo.location(), "problem": w.to_string()}));
            } else {
                log::warn!("{w}");
            }
        }
        let selected = select(&args, &cfg.database.name, repo.as_ref(), &all, several)?;
        found.push((repo.as_ref(), all, selected));
    }
    // Each selected backup must have its copy in every configured repository (a failed
    // upload leaves one only locally: disaster-recover, which reads S3, could not use it),
    // except local copies deleted on purpose after a checked upload.
    let mut missing = Vec::new();
    if several {
        for (repo, _, selected) in &found {
            for e in selected.iter().filter(|e| e.legacy.is_none()) {
                for (other, all, _) in &found {
                    let local = !other.location().starts_with("s3://");
                    if other.location() == repo.location()
                        || (local && cfg.s3.upload_then_delete_local)
                        || all.iter().any(|o| o.id == e.id)
                    {
                        continue;
                    }
                    let problem = format!(
                        "{} ({}) has no copy in {}: its upload failed or the copy was removed; the next backup makes a new one",
                        e.id,
                        repo.location(),
                        other.location()
                    );
                    if !missing
                        .iter()
                        .any(|m: &serde_json::Value| m["problem"] == problem)
                    {
                        log::error!("{problem}");
                        missing.push(
                            json!({"id": e.id, "repository": other.location(), "problem": problem}),
                        );
                    }
                }
            }
        }
    }
    if !unreadable.is_empty() && found.iter().all(|(_, _, s)| s.is_empty()) {
        anyhow::bail!(
            "no repository could be read: {}",
            unreadable
                .iter()
                .map(|u| u["error"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    if found.iter().all(|(_, _, s)| s.is_empty()) && damaged.is_empty() {
        let locations: Vec<String> = repos.iter().map(|r| r.location()).collect();
        if let Some(id) = args.id.as_deref().filter(|i| *i != "latest") {
            return Err(could_not_start(format!(
                "no backup {id:?} in {} (see `tuneton-ops backups list`)",
                locations.join(" or ")
            )));
        }
        log::error!("no backups found in {}", locations.join(" or "));
        ctx.emit(
            &json!({"ok": false, "error": "no backups found", "repository": locations.join(" "), "repositories": locations}),
            "no backups found",
        );
        return Ok(ExitCode::Failed);
    }
    if ctx.global.dry_run {
        let lines: Vec<String> = found
            .iter()
            .flat_map(|(_, _, selected)| selected)
            .map(|e| format!("would verify {} ({})", e.id, e.location))
            .collect();
        ctx.emit(
            &json!({"dry_run": true, "actions": lines}),
            &lines.join("\n"),
        );
        return Ok(ExitCode::Success);
    }

    let crypto = Crypto::for_decrypt(&cfg.encryption)?;
    let pg = PgTarget::from_config(&cfg.database);
    let mut out = Outcome {
        code: ExitCode::Success,
        reports: Vec::new(),
        ages: Vec::new(),
        text: String::new(),
    };
    for (repo, all, selected) in &found {
        if several {
            out.text.push_str(&format!("{}:\n", repo.location()));
        }
        for entry in selected {
            verify_one(ctx, &args, *repo, entry, &crypto, &pg, &mut out);
        }
        check_ages(ctx, &args, *repo, all, &mut out);
    }
    for m in &missing {
        out.code = out.code.worst(ExitCode::Failed);
        out.text.push_str(&format!(
            "MISSING {}\n",
            m["problem"].as_str().unwrap_or_default()
        ));
    }
    for d in &damaged {
        out.code = out.code.worst(ExitCode::Failed);
        out.text.push_str(&format!(
            "DAMAGED {}\n",
            d["problem"].as_str().unwrap_or_default()
        ));
    }
    for u in &unreadable {
        out.code = out.code.worst(ExitCode::Failed);
        out.text.push_str(&format!(
            "FAILED  cannot read {}: {}\n",
            u["repository"].as_str().unwrap_or_default(),
            u["error"].as_str().unwrap_or_default()
        ));
    }
    let code = out.code;
    ctx.emit(&json!({"ok": code == ExitCode::Success, "exit_code": code.code(), "backups": out.reports, "age": out.ages, "unreadable": unreadable, "damaged": damaged, "missing": missing}), &out.text);
    Ok(code)
}

/// What the verification of every selected backup adds up to.
struct Outcome {
    code: ExitCode,
    reports: Vec<serde_json::Value>,
    ages: Vec<serde_json::Value>,
    text: String,
}

fn kinds(args: &VerifyArgs) -> Vec<BackupKind> {
    args.kind
        .map(|k| vec![k])
        .unwrap_or_else(|| BackupKind::ALL.to_vec())
}

/// The backups of one repository that this run verifies. With several
/// repositories, a named backup missing from one of them is not an error here.
fn select(
    args: &VerifyArgs,
    database: &str,
    repo: &dyn Repository,
    all: &[RepoEntry],
    several: bool,
) -> Result<Vec<RepoEntry>> {
    let kinds = kinds(args);
    Ok(if args.all {
        all.iter()
            .filter(|e| kinds.contains(&e.kind))
            .cloned()
            .collect()
    } else if let Some(id) = args.id.as_deref().filter(|i| *i != "latest") {
        match repo.find(id) {
            Ok(e) => vec![e],
            Err(_) if several => Vec::new(),
            Err(e) => return Err(e),
        }
    } else {
        kinds
            .iter()
            .filter_map(|k| {
                all.iter()
                    .rev()
                    .find(|e| e.kind == *k && e.in_series_of(database))
                    .cloned()
            })
            .collect()
    })
}

fn verify_one(
    ctx: &Ctx,
    args: &VerifyArgs,
    repo: &dyn Repository,
    entry: &RepoEntry,
    crypto: &Crypto,
    pg: &PgTarget,
    out: &mut Outcome,
) {
    log::info!("verifying {} ({})", entry.id, entry.location);
    let report = verify_entry(entry, repo, crypto, pg);
    let mut problems = report.problems.clone();
    let mut comparison: Option<Vec<TableComparison>> = None;
    let mut inconclusive = report.inconclusive;
    if args.restore_test && entry.kind == BackupKind::Db && report.ok {
        match restore_test(ctx, entry, repo, crypto, pg) {
            Ok(rows) => {
                for r in rows
                    .iter()
                    .filter(|r| !r.matches() && entry.manifest.is_some())
                {
                    problems.push(format!(
                        "restore test: {} has {} rows, manifest says {}",
                        r.table,
                        opt(r.restored),
                        opt(r.expected)
                    ));
                }
                comparison = Some(rows);
            }
            Err(e) => {
                // The scratch database could not be reached: that says nothing about the backup.
                inconclusive |= format!("{e:#}").contains("cannot connect to PostgreSQL");
                problems.push(format!("restore test: {e:#}"));
            }
        }
    }
    let ok = problems.is_empty();
    let method = if comparison.is_some() {
        "restore-test"
    } else {
        "full-read"
    };
    if inconclusive {
        log::warn!(
            "{}: could not be verified here; its previous verification state is kept",
            entry.id
        );
    } else if let Err(e) = repo.record_verification(
        entry,
        &VerificationRecord {
            ok,
            at: Utc::now(),
            method: method.into(),
            problems: problems.clone(),
        },
    ) {
        log::warn!("could not record the verification of {}: {e:#}", entry.id);
    }
    let text = &mut out.text;
    if ok {
        log::info!(
            "{} OK: {} read, {} decrypted; {}",
            entry.id,
            human_bytes(report.stored_size),
            human_bytes(report.content_size),
            report.structure.as_deref().unwrap_or("")
        );
        text.push_str(&format!(
            "OK      {}  {}\n",
            entry.id,
            report.structure.as_deref().unwrap_or("")
        ));
    } else {
        out.code = out.code.worst(ExitCode::Failed);
        for p in &problems {
            log::error!("{} ({}): {p}", entry.id, entry.location);
        }
        text.push_str(&format!("FAILED  {}  {}\n", entry.id, entry.location));
        for p in &problems {
            text.push_str(&format!("        {p}\n"));
        }
    }
    if let Some(rows) = &comparison {
        text.push_str(&format!(
            "        {:<40} {:>12} {:>12}\n",
            "table", "manifest", "restored"
        ));
        for r in rows {
            let mark = if r.matches() { "" } else { "  MISMATCH" };
            text.push_str(&format!(
                "        {:<40} {:>12} {:>12}{mark}\n",
                r.table,
                opt(r.expected),
                opt(r.restored)
            ));
        }
    }
    out.reports.push(json!({
        "id": report.id, "kind": report.kind, "path": report.path, "repository": repo.location(), "ok": ok,
        "problems": problems, "structure": report.structure, "stored_size": report.stored_size,
        "content_size": report.content_size, "seconds": report.seconds, "legacy": entry.legacy.is_some(),
        "restore_test": comparison, "inconclusive": inconclusive, "recorded": !inconclusive,
    }));
}

/// Age of the newest backup of each kind in this repository (not when one backup was named).
fn check_ages(
    ctx: &Ctx,
    args: &VerifyArgs,
    repo: &dyn Repository,
    all: &[RepoEntry],
    out: &mut Outcome,
) {
    if args.id.as_deref().is_some_and(|i| i != "latest") {
        return;
    }
    let cfg = ctx.config();
    let warn = args.max_age.or(cfg.verify.max_age_warn_hours);
    let crit = args.max_age_critical.or(cfg.verify.max_age_crit_hours);
    for k in &kinds(args) {
        let Some(newest) = all
            .iter()
            .rev()
            .find(|e| e.kind == *k && e.in_series_of(&cfg.database.name))
        else {
            continue;
        };
        let hours = (Utc::now() - newest.time).num_milliseconds() as f64 / 3_600_000.0;
        let state = if crit.is_some_and(|c| hours > c as f64) {
            out.code = out.code.worst(ExitCode::Failed);
            "CRITICAL"
        } else if warn.is_some_and(|w| hours > w as f64) {
            out.code = out.code.worst(ExitCode::Warning);
            "WARNING"
        } else {
            "OK"
        };
        if state != "OK" {
            log::warn!(
                "newest {} backup {} in {} is {hours:.1} hours old ({state})",
                k.name(),
                newest.id,
                repo.location()
            );
            out.text.push_str(&format!(
                "{state}: newest {} backup is {hours:.1} hours old\n",
                k.name()
            ));
        }
        out.ages.push(json!({"kind": k, "newest": newest.id, "age_hours": hours, "state": state, "repository": repo.location()}));
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// `tuneton_restore_test_<host>_`: scratch databases of this host's restore tests
/// (the server may be shared with other hosts, whose PIDs mean nothing here).
fn scratch_prefix() -> String {
    use sha2::Digest;
    let host = hex::encode(sha2::Sha256::digest(
        crate::manifest::host_name().as_bytes(),
    ));
    format!("tuneton_restore_test_{}_", &host[..8])
}

/// Drops the scratch databases that interrupted restore tests of this host left
/// (their process is gone). Best effort: a failure here is only logged.
fn drop_stale_scratch_databases(pg: &PgTarget, prefix: &str) {
    let names: Vec<String> = match pg.connect(&pg.maintenance_db).and_then(|mut c| {
        c.query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .map_err(anyhow::Error::from)
    }) {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(e) => {
            log::debug!("cannot list scratch databases: {e:#}");
            return;
        }
    };
    for name in names {
        let pid = name[prefix.len()..]
            .split('_')
            .next()
            .and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()) {
            match pg.drop_database(&name) {
                Ok(()) => log::warn!(
                    "dropped the scratch database {name} an interrupted restore test left"
                ),
                Err(e) => log::warn!("could not drop the stale scratch database {name}: {e:#}"),
            }
        }
    }
}

/// Restores into a scratch database, counts every table, drops the scratch database.
fn restore_test(
    ctx: &Ctx,
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
) -> Result<Vec<TableComparison>> {
    if !matches!(
        entry.format(),
        ContentFormat::PgDumpCustom | ContentFormat::PlainSql
    ) {
        return Err(could_not_start(
            "restore test applies to database backups only",
        ));
    }
    let prefix = scratch_prefix();
    drop_stale_scratch_databases(pg, &prefix);
    let scratch = format!(
        "{prefix}{}_{:04x}",
        std::process::id(),
        rand::random::<u16>()
    );
    pg.create_database(&scratch)?;
    let _note = crate::signals::note(format!(
        "the restore test's scratch database {scratch} is left; the next restore test on this host drops it"
    ));
    log::info!(
        "restore test: restoring {} into scratch database {scratch}",
        entry.id
    );
    let opts = DbRestoreOptions {
        no_owner: true,
        scratch_dir: ctx.config().paths.scratch_dir.clone(),
        ..Default::default()
    };
    let result = restore_db(entry, repo, crypto, pg, &scratch, &opts).and_then(|_| {
        compare_rows(
            pg,
            &scratch,
            entry
                .manifest
                .as_ref()
                .and_then(|m| m.database.as_ref())
                .map(|d| &d.tables),
        )
    });
    if let Err(e) = pg.drop_database(&scratch) {
        log::warn!("could not drop scratch database {scratch}: {e:#}");
    }
    result
}
