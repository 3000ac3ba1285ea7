//! `backup`: stream a database dump, the application or the config directory
//! through compression and gpg into the repository, then apply retention.
//!
//! Replaces the daily database backup the procedures rely on and the monthly
//! full system backup script (which wrote plaintext to disk first, encrypted
//! afterwards, and could leave a half-written file looking like the latest).

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::{Args, ValueEnum};
use serde_json::json;

use super::Ctx;
use crate::config::Compression;
use crate::crypto::Crypto;
use crate::db::{count_rows, ExportedSnapshot, PgTarget};
use crate::exit::ExitCode;
use crate::manifest::{
    host_name, BackupKind, BackupManifest, ContentFormat, DatabaseInfo, MANIFEST_VERSION,
};
use crate::process::{capture_stderr, Watchdog};
use crate::progress::{human_bytes, Progress};
use crate::repo::{self, PendingObject, Repository};
use crate::stream::{encode, CompressionSpec, StreamDigests};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// PostgreSQL logical dump (pg_dump custom format)
    Db,
    /// The application directory (paths.app_dir)
    App,
    /// The configuration directory (paths.config_dir)
    Config,
    /// db, app and config in one run
    Full,
    /// A physical base backup (pg_basebackup) for point-in-time recovery
    Base,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// What to back up
    #[arg(long, value_enum, default_value = "db")]
    pub kind: KindArg,
    /// Compression (overrides repository.compression): zstd is fast; gzip for compatibility
    #[arg(long, value_enum)]
    pub compression: Option<Compression>,
    /// Do not apply the retention policy after this backup
    #[arg(long)]
    pub no_retention: bool,
}

impl KindArg {
    fn kinds(self) -> Vec<BackupKind> {
        match self {
            KindArg::Db => vec![BackupKind::Db],
            KindArg::App => vec![BackupKind::App],
            KindArg::Config => vec![BackupKind::Config],
            KindArg::Base => vec![BackupKind::Base],
            KindArg::Full => vec![BackupKind::Db, BackupKind::App, BackupKind::Config],
        }
    }
}

/// One finished backup, for the report.
#[derive(Debug, serde::Serialize)]
struct Written {
    id: String,
    kind: BackupKind,
    path: String,
    /// Verified copies in the other repositories (S3).
    copies: Vec<String>,
    /// The local copy was deleted after a verified upload (s3.upload_then_delete_local).
    local_deleted: bool,
    stored_size: u64,
    content_size: u64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tables: Option<usize>,
}

pub fn run(ctx: &Ctx, args: BackupArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let mut spec = CompressionSpec {
        kind: cfg.repository.compression,
        level: cfg.repository.compression_level,
        threads: cfg.repository.compression_threads,
    };
    if let Some(c) = args.compression {
        if c != spec.kind {
            spec.level = None;
        }
        spec.kind = c;
    }
    let kinds = args.kind.kinds();

    if ctx.global.dry_run {
        let mut lines = Vec::new();
        let mut targets = Vec::new();
        if cfg.repository.local {
            targets.push(cfg.repository.path.display().to_string());
        }
        if cfg.s3.enabled {
            targets.push(format!("s3://{}/{}", cfg.s3.bucket, cfg.s3.prefix));
        }
        for k in &kinds {
            let source = match k {
                BackupKind::Db => format!(
                    "database {}",
                    PgTarget::from_config(&cfg.database).describe(&cfg.database.name)
                ),
                BackupKind::App => format!("directory {}", cfg.paths.app_dir.display()),
                BackupKind::Config => format!("directory {}", cfg.paths.config_dir.display()),
                BackupKind::Base | BackupKind::Wal => format!(
                    "cluster {} (pg_basebackup)",
                    PgTarget::from_config(&cfg.database).describe("")
                ),
            };
            lines.push(format!(
                "would back up {source} -> {} ({}/; {:?} level {}, encryption {:?})",
                targets.join(" and "),
                k.dir(),
                spec.kind,
                spec.level(),
                cfg.encryption.mode
            ));
        }
        if !args.no_retention && cfg.retention.enabled {
            for r in repo::for_backup(cfg)? {
                for k in &kinds {
                    let mut dropped = Vec::new();
                    for d in super::backups::retention_plan(r.as_ref(), *k, &cfg.retention)?
                        .iter()
                        .filter(|d| !d.keep)
                    {
                        lines.push(format!(
                            "would delete {} from {} ({})",
                            d.id,
                            r.location(),
                            d.reasons.join(", ")
                        ));
                        dropped.push(d.id.clone());
                    }
                    if *k == BackupKind::Base && cfg.retention.expire_wal {
                        let w =
                            super::backups::expire_wal(r.as_ref(), &cfg.retention, &dropped, true)?;
                        lines.push(w.describe());
                    }
                }
            }
        }
        ctx.emit(
            &json!({"dry_run": true, "actions": lines}),
            &lines.join("\n"),
        );
        return Ok(ExitCode::Success);
    }

    let crypto = Crypto::for_encrypt(&cfg.encryption)?;
    let repos = repo::for_backup(cfg)?;
    for r in &repos {
        for p in r.clean_partials()? {
            log::warn!("removed an unfinished upload/file from an interrupted run: {p}");
        }
    }
    let primary = repos[0].as_ref();

    let mut code = ExitCode::Success;
    let mut written = Vec::new();
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    let mut wal_expiry = Vec::new();
    for kind in kinds {
        log::info!("starting {} backup", kind.name());
        let started = Instant::now();
        let result = match kind {
            BackupKind::Db => backup_db(ctx, primary, &crypto, spec),
            BackupKind::App => backup_dir(primary, &crypto, spec, kind, &cfg.paths.app_dir),
            BackupKind::Config => backup_dir(primary, &crypto, spec, kind, &cfg.paths.config_dir),
            BackupKind::Base | BackupKind::Wal => backup_base(ctx, primary, &crypto, spec),
        };
        let (location, m) = match result {
            Ok(r) => r,
            Err(e) => {
                log::error!("{} backup failed: {e:#}", kind.name());
                failures.push(json!({"kind": kind, "error": format!("{e:#}")}));
                code = code.worst(crate::exit::exit_code_for(&e));
                continue;
            }
        };
        log::info!(
            "{} backup {} written: {} stored ({} before compression) in {:.1}s -> {location}",
            kind.name(),
            m.id,
            human_bytes(m.digests.stored_size),
            human_bytes(m.digests.content_size),
            started.elapsed().as_secs_f64(),
        );
        let mut copies = Vec::new();
        let mut all_copied = true;
        let mut not_reached = Vec::new();
        for other in &repos[1..] {
            match replicate(primary, &m, other.as_ref()) {
                Ok(loc) => {
                    log::info!("{} uploaded and verified: {loc}", m.id);
                    copies.push(loc);
                }
                Err(e) => {
                    all_copied = false;
                    not_reached.push(other.location());
                    log::error!(
                        "copying {} to {} failed: {e:#}; the copy at {location} is kept",
                        m.id,
                        other.location()
                    );
                    failures.push(json!({"kind": kind, "id": m.id, "repository": other.location(), "error": format!("{e:#}")}));
                    code = code.worst(crate::exit::exit_code_for(&e));
                }
            }
        }
        let mut local_deleted = false;
        if all_copied && repos.len() > 1 && cfg.s3.upload_then_delete_local {
            match primary.find(&m.id).and_then(|e| primary.delete(&e)) {
                Ok(()) => {
                    log::info!(
                        "upload of {} verified; deleted the local copy {location}",
                        m.id
                    );
                    local_deleted = true;
                }
                Err(e) => {
                    log::warn!("could not delete the local copy {location}: {e:#}");
                    code = code.worst(ExitCode::Warning);
                }
            }
        }
        written.push(Written {
            id: m.id.clone(),
            kind,
            path: location,
            copies,
            local_deleted,
            stored_size: m.digests.stored_size,
            content_size: m.digests.content_size,
            seconds: started.elapsed().as_secs_f64(),
            tables: m.database.as_ref().map(|d| d.tables.len()),
        });
        if !args.no_retention && cfg.retention.enabled {
            for r in &repos {
                // Retention follows a successful backup: not where this one did not arrive.
                if not_reached.contains(&r.location()) {
                    log::info!(
                        "retention in {} skipped: this backup did not reach it",
                        r.location()
                    );
                    continue;
                }
                match super::backups::apply_retention(r.as_ref(), kind, &cfg.retention, false) {
                    Ok(ids) => deleted.extend(ids),
                    Err(e) => {
                        log::warn!(
                            "retention for {} backups in {} failed: {e:#}",
                            kind.name(),
                            r.location()
                        );
                        code = code.worst(ExitCode::Warning);
                        continue;
                    }
                }
                // The WAL the remaining base backups no longer need.
                if kind == BackupKind::Base && cfg.retention.expire_wal {
                    match super::backups::expire_wal(r.as_ref(), &cfg.retention, &[], false) {
                        Ok(w) => wal_expiry.push(w),
                        Err(e) => {
                            log::warn!("WAL expiry in {} failed: {e:#}", r.location());
                            code = code.worst(ExitCode::Warning);
                        }
                    }
                }
            }
        }
    }
    let text = written
        .iter()
        .map(|w| {
            let mut line = format!("{}  {}  {}", w.id, human_bytes(w.stored_size), w.path);
            for c in &w.copies {
                line.push_str(&format!("\n    copy: {c}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n");
    ctx.emit(
        &json!({"ok": failures.is_empty(), "written": written, "failed": failures, "deleted_by_retention": deleted, "wal_expiry": wal_expiry}),
        &text,
    );
    Ok(code)
}

/// Copies a finished backup into another repository, checks what arrived, then writes its manifest there.
fn replicate(
    from: &dyn Repository,
    manifest: &BackupManifest,
    to: &dyn Repository,
) -> Result<String> {
    let entry = from.find(&manifest.id)?;
    let suffix = manifest.object.strip_prefix(&manifest.id).unwrap_or("");
    let mut pending = to.begin(manifest.kind, &manifest.id, suffix)?;
    let mut progress = Progress::bytes(&format!("upload {}", manifest.id), Some(entry.size));
    let (mut hash, mut n) = (sha2::Sha256::default(), 0u64);
    let mut reader = crate::stream::HashingReader::new(
        from.open(&entry)?,
        &mut hash,
        &mut n,
        Some(&mut progress),
    );
    std::io::copy(&mut reader, &mut pending)
        .with_context(|| format!("uploading to {}", to.location()))?;
    drop(reader);
    let sent = hex::encode(sha2::Digest::finalize(hash));
    if sent != manifest.digests.stored_sha256 || n != manifest.digests.stored_size {
        bail!("the local copy changed since it was written (sha256 {sent}); not uploading it");
    }
    pending.commit(manifest)
}

/// Starts a new object, retrying with a fresh id on the (unlikely) name clash.
fn begin<'r>(
    repo: &'r dyn Repository,
    kind: BackupKind,
    suffix: &str,
) -> Result<Box<dyn PendingObject + 'r>> {
    for _ in 0..5 {
        let id = repo::new_id(kind, Utc::now());
        match repo.begin(kind, &id, suffix) {
            Ok(p) => return Ok(p),
            Err(e)
                if e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::AlreadyExists) =>
            {
                continue
            }
            Err(e) => return Err(e),
        }
    }
    bail!("could not find a free backup name after 5 tries")
}

pub(crate) fn object_suffix(
    format: ContentFormat,
    spec: CompressionSpec,
    crypto: &Crypto,
) -> String {
    let gpg = if crypto.info().is_encrypted() {
        ".gpg"
    } else {
        ""
    };
    format!("{}{}{gpg}", format.suffix(), spec.suffix())
}

pub(crate) fn manifest_for(
    pending: &dyn PendingObject,
    format: ContentFormat,
    spec: CompressionSpec,
    crypto: &Crypto,
    digests: StreamDigests,
    started_at: chrono::DateTime<Utc>,
) -> BackupManifest {
    BackupManifest {
        manifest_version: MANIFEST_VERSION,
        id: pending.id().to_string(),
        kind: pending.kind(),
        format,
        compression: spec.kind,
        compression_level: spec.level(),
        encryption: crypto.info(),
        object: pending.object_name(),
        digests,
        started_at,
        finished_at: Utc::now(),
        host: host_name(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        database: None,
        base: None,
        source_dir: None,
    }
}

/// pg_dump (custom format, no compression of its own) in an exported snapshot,
/// with exact row counts taken in that same snapshot while the dump streams.
fn backup_db(
    ctx: &Ctx,
    repo: &dyn Repository,
    crypto: &Crypto,
    spec: CompressionSpec,
) -> Result<(String, BackupManifest)> {
    let cfg = ctx.config();
    let target = PgTarget::from_config(&cfg.database);
    let db = &cfg.database.name;
    let pg_dump_version = target.tool_version("pg_dump")?;
    let started_at = Utc::now();
    let mut snapshot = ExportedSnapshot::begin(&target, db)?;
    log::debug!(
        "exported snapshot {} (server {})",
        snapshot.id,
        snapshot.server_version
    );

    let mut pending = begin(
        repo,
        BackupKind::Db,
        &object_suffix(ContentFormat::PgDumpCustom, spec, crypto),
    )?;
    let mut child = target
        .tool("pg_dump")
        .args(["--format=custom", "--compress=0", "--no-sync"])
        .arg(format!("--snapshot={}", snapshot.id))
        .arg(format!("--dbname={db}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crate::exit::could_not_start(format!("cannot start pg_dump: {e}")))?;
    let dog = Watchdog::new(child.id(), target.command_timeout);
    let stderr = capture_stderr(&mut child);
    let stdout = child.stdout.take().expect("piped");

    let cancel = snapshot.client.cancel_token();
    let (encoded, status, counts) = std::thread::scope(|s| {
        let client = &mut snapshot.client;
        let counter = s.spawn(move || count_rows(client));
        let mut progress = Progress::bytes("pg_dump", None);
        let encoded = encode(stdout, spec, crypto, &mut *pending, Some(&mut progress));
        if encoded.is_err() {
            let _ = child.kill(); // it may be blocked on a lock and never notice the closed pipe
        }
        let status = child.wait();
        if encoded.is_err() || !status.as_ref().is_ok_and(|s| s.success()) {
            // The dump is lost anyway: do not wait for the counts (they may be stuck behind the same lock).
            let _ = cancel.cancel_query(postgres::NoTls);
        }
        (
            encoded,
            status,
            counter
                .join()
                .map_err(|_| anyhow!("row counting thread panicked")),
        )
    });
    let status = status.context("waiting for pg_dump")?;
    let pg_err = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if dog.fired() {
        bail!(
            "pg_dump did not finish within {}s (database.command_timeout_secs) and was killed; nothing was published",
            target.command_timeout.as_secs()
        );
    }
    if !status.success() {
        bail!(
            "pg_dump failed ({status}) for {}: {pg_err}; nothing was published",
            target.describe(db)
        );
    }
    let digests = encoded.context("writing the encrypted dump")?;
    let tables = counts?.context("counting rows in the dump's snapshot")?;
    let (snapshot_id, server_version) = (snapshot.id.clone(), snapshot.server_version.clone());
    snapshot
        .finish()
        .context("closing the snapshot transaction")?;

    let mut manifest = manifest_for(
        pending.as_ref(),
        ContentFormat::PgDumpCustom,
        spec,
        crypto,
        digests,
        started_at,
    );
    manifest.database = Some(DatabaseInfo {
        name: db.clone(),
        server_version,
        pg_dump_version,
        snapshot: snapshot_id,
        tables,
    });
    let path = pending.commit(&manifest)?;
    Ok((path, manifest))
}

/// A tar of `dir`, streamed through the same compression + encryption path.
fn backup_dir(
    repo: &dyn Repository,
    crypto: &Crypto,
    spec: CompressionSpec,
    kind: BackupKind,
    dir: &Path,
) -> Result<(String, BackupManifest)> {
    if !dir.is_dir() {
        bail!(
            "{} is not a directory (paths.{}_dir); nothing was published",
            dir.display(),
            if kind == BackupKind::App {
                "app"
            } else {
                "config"
            }
        );
    }
    let started_at = Utc::now();
    let mut pending = begin(repo, kind, &object_suffix(ContentFormat::Tar, spec, crypto))?;
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    let (encoded, tarred) = std::thread::scope(|s| {
        let tar = s.spawn(move || crate::archive::write_tar(dir, writer));
        let mut progress = Progress::bytes(&format!("tar {}", dir.display()), None);
        let encoded = encode(reader, spec, crypto, &mut *pending, Some(&mut progress));
        (
            encoded,
            tar.join().map_err(|_| anyhow!("tar thread panicked")),
        )
    });
    let stats =
        tarred?.with_context(|| format!("archiving {}; nothing was published", dir.display()))?;
    let digests = encoded.context("writing the encrypted archive")?;
    log::debug!(
        "archived {} entries, {} of file data",
        stats.entries,
        human_bytes(stats.bytes)
    );
    let mut manifest = manifest_for(
        pending.as_ref(),
        ContentFormat::Tar,
        spec,
        crypto,
        digests,
        started_at,
    );
    manifest.source_dir = Some(dir.display().to_string());
    let path = pending.commit(&manifest)?;
    Ok((path, manifest))
}

/// A physical base backup: `pg_basebackup` as one tar on stdout (WAL needed for
/// consistency included with `-X fetch`), through the same compression +
/// encryption path. Start/end LSN and timeline come from pg_basebackup's own report.
fn backup_base(
    ctx: &Ctx,
    repo: &dyn Repository,
    crypto: &Crypto,
    spec: CompressionSpec,
) -> Result<(String, BackupManifest)> {
    let cfg = ctx.config();
    let target = PgTarget::from_config(&cfg.database);
    let version = target.tool_version("pg_basebackup")?;
    let row = target.connect(&target.maintenance_db)?.query_one(
        "SELECT current_setting('server_version'), \
                pg_size_bytes(current_setting('wal_segment_size'))",
        &[],
    )?;
    let server_version: String = row.get(0);
    let wal_segment_size = u64::try_from(row.get::<_, i64>(1)).ok();
    let started_at = Utc::now();
    let mut pending = begin(
        repo,
        BackupKind::Base,
        &object_suffix(ContentFormat::Tar, spec, crypto),
    )?;
    let mut child = target
        .tool("pg_basebackup")
        .args([
            "--pgdata=-",
            "--format=tar",
            "--wal-method=fetch",
            "--checkpoint=fast",
            "--verbose",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crate::exit::could_not_start(format!("cannot start pg_basebackup: {e}")))?;
    let dog = Watchdog::new(child.id(), target.command_timeout);
    let stderr = capture_stderr(&mut child);
    let stdout = child.stdout.take().expect("piped");
    let mut progress = Progress::bytes("pg_basebackup", None);
    let encoded = encode(stdout, spec, crypto, &mut *pending, Some(&mut progress));
    drop(progress);
    if encoded.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().context("waiting for pg_basebackup")?;
    let report = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if dog.fired() {
        bail!(
            "pg_basebackup did not finish within {}s (database.command_timeout_secs); nothing was published",
            target.command_timeout.as_secs()
        );
    }
    if !status.success() {
        bail!("pg_basebackup failed ({status}): {report}; nothing was published");
    }
    let digests = encoded.context("writing the encrypted base backup")?;
    let mut info = parse_basebackup_report(&report, server_version, version)
        .with_context(|| format!("reading pg_basebackup's report: {report}"))?;
    info.wal_segment_size = wal_segment_size;
    log::info!(
        "base backup covers WAL {} .. {} on timeline {}",
        info.start_lsn,
        info.end_lsn,
        info.timeline
    );
    let mut manifest = manifest_for(
        pending.as_ref(),
        ContentFormat::Tar,
        spec,
        crypto,
        digests,
        started_at,
    );
    manifest.base = Some(info);
    let path = pending.commit(&manifest)?;
    Ok((path, manifest))
}

/// `write-ahead log start point: 0/2000028 on timeline 1` / `write-ahead log end point: 0/2000100`.
fn parse_basebackup_report(
    report: &str,
    server_version: String,
    pg_basebackup_version: String,
) -> Result<crate::manifest::BaseBackupInfo> {
    let after = |marker: &str| {
        report.lines().find_map(|l| {
            l.split_once(marker)
                .map(|(_, rest)| rest.trim().to_string())
        })
    };
    let start = after("write-ahead log start point:").ok_or_else(|| anyhow!("no start point"))?;
    let (start_lsn, timeline) = match start.split_once(" on timeline ") {
        Some((lsn, tl)) => (lsn.trim().to_string(), tl.trim().parse()?),
        None => (start.clone(), 1),
    };
    let end_lsn = after("write-ahead log end point:").ok_or_else(|| anyhow!("no end point"))?;
    Ok(crate::manifest::BaseBackupInfo {
        start_lsn,
        end_lsn,
        timeline,
        server_version,
        pg_basebackup_version,
        wal_segment_size: None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn basebackup_report_gives_lsns_and_timeline() {
        let report = "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n\
                      pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1\n\
                      pg_basebackup: write-ahead log end point: 0/2000100\n\
                      pg_basebackup: base backup completed";
        let info =
            super::parse_basebackup_report(report, "15.18".into(), "pg_basebackup 15".into())
                .unwrap();
        assert_eq!(info.start_lsn, "0/2000028");
        assert_eq!(info.end_lsn, "0/2000100");
        assert_eq!(info.timeline, 1);
    }
}
