//! `backup`: stream a database dump, the application or the config directory
//! through compression and gpg into the repository, then apply retention.
//!
//! Replaces the daily database backup the procedures rely on and the monthly
//! full system backup script (which wrote plaintext to disk first, encrypted
//! afterwards, and could leave a half-written file looking like the latest).

use std::io::BufWriter;
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
use crate::repo::{LocalRepo, PendingObject};
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
            KindArg::Full => BackupKind::ALL.to_vec(),
        }
    }
}

/// One finished backup, for the report.
#[derive(Debug, serde::Serialize)]
struct Written {
    id: String,
    kind: BackupKind,
    path: String,
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
        for k in &kinds {
            let source = match k {
                BackupKind::Db => format!(
                    "database {}",
                    PgTarget::from_config(&cfg.database).describe(&cfg.database.name)
                ),
                BackupKind::App => format!("directory {}", cfg.paths.app_dir.display()),
                BackupKind::Config => format!("directory {}", cfg.paths.config_dir.display()),
            };
            lines.push(format!(
                "would back up {source} -> {}/{}/ ({:?} level {}, encryption {:?})",
                cfg.repository.path.display(),
                k.dir(),
                spec.kind,
                spec.level(),
                cfg.encryption.mode
            ));
        }
        if !args.no_retention && cfg.retention.enabled && cfg.repository.path.is_dir() {
            let repo = LocalRepo::open(&cfg.repository.path)?;
            for k in &kinds {
                for d in super::backups::retention_plan(&repo, *k, &cfg.retention)?
                    .iter()
                    .filter(|d| !d.keep)
                {
                    lines.push(format!("would delete {} ({})", d.id, d.reasons.join(", ")));
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
    let repo = LocalRepo::create(&cfg.repository.path)?;
    for p in repo.clean_partials()? {
        log::warn!(
            "removed unfinished file from an interrupted run: {}",
            p.display()
        );
    }

    let mut code = ExitCode::Success;
    let mut written = Vec::new();
    let mut failures = Vec::new();
    let mut deleted = Vec::new();
    for kind in kinds {
        log::info!("starting {} backup", kind.name());
        let started = Instant::now();
        let result = match kind {
            BackupKind::Db => backup_db(ctx, &repo, &crypto, spec),
            BackupKind::App => backup_dir(&repo, &crypto, spec, kind, &cfg.paths.app_dir),
            BackupKind::Config => backup_dir(&repo, &crypto, spec, kind, &cfg.paths.config_dir),
        };
        match result {
            Ok((path, m)) => {
                let w = Written {
                    id: m.id.clone(),
                    kind,
                    path: path.display().to_string(),
                    stored_size: m.digests.stored_size,
                    content_size: m.digests.content_size,
                    seconds: started.elapsed().as_secs_f64(),
                    tables: m.database.as_ref().map(|d| d.tables.len()),
                };
                log::info!(
                    "{} backup {} written: {} stored ({} before compression) in {:.1}s -> {}",
                    kind.name(),
                    w.id,
                    human_bytes(w.stored_size),
                    human_bytes(w.content_size),
                    w.seconds,
                    w.path
                );
                written.push(w);
                if !args.no_retention && cfg.retention.enabled {
                    match super::backups::apply_retention(&repo, kind, &cfg.retention, false) {
                        Ok(ids) => deleted.extend(ids),
                        Err(e) => {
                            log::warn!("retention for {} backups failed: {e:#}", kind.name());
                            code = code.worst(ExitCode::Warning);
                        }
                    }
                }
            }
            Err(e) => {
                log::error!("{} backup failed: {e:#}", kind.name());
                failures.push(json!({"kind": kind, "error": format!("{e:#}")}));
                code = code.worst(crate::exit::exit_code_for(&e));
            }
        }
    }
    let text = written
        .iter()
        .map(|w| format!("{}  {}  {}", w.id, human_bytes(w.stored_size), w.path))
        .collect::<Vec<_>>()
        .join("\n");
    ctx.emit(
        &json!({"ok": failures.is_empty(), "written": written, "failed": failures, "deleted_by_retention": deleted}),
        &text,
    );
    Ok(code)
}

/// Starts a new object, retrying with a fresh id on the (unlikely) name clash.
fn begin(repo: &LocalRepo, kind: BackupKind, suffix: &str) -> Result<PendingObject> {
    for _ in 0..5 {
        let id = LocalRepo::new_id(kind, Utc::now());
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

fn object_suffix(format: ContentFormat, spec: CompressionSpec, crypto: &Crypto) -> String {
    let gpg = if crypto.info().is_encrypted() {
        ".gpg"
    } else {
        ""
    };
    format!("{}{}{gpg}", format.suffix(), spec.suffix())
}

fn manifest_for(
    pending: &PendingObject,
    format: ContentFormat,
    spec: CompressionSpec,
    crypto: &Crypto,
    digests: StreamDigests,
    started_at: chrono::DateTime<Utc>,
) -> BackupManifest {
    BackupManifest {
        manifest_version: MANIFEST_VERSION,
        id: pending.id.clone(),
        kind: pending.kind,
        format,
        compression: spec.kind,
        compression_level: spec.level(),
        encryption: crypto.info(),
        object: pending
            .final_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned(),
        digests,
        started_at,
        finished_at: Utc::now(),
        host: host_name(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        database: None,
        source_dir: None,
    }
}

/// pg_dump (custom format, no compression of its own) in an exported snapshot,
/// with exact row counts taken in that same snapshot while the dump streams.
fn backup_db(
    ctx: &Ctx,
    repo: &LocalRepo,
    crypto: &Crypto,
    spec: CompressionSpec,
) -> Result<(std::path::PathBuf, BackupManifest)> {
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
        let encoded = encode(
            stdout,
            spec,
            crypto,
            BufWriter::with_capacity(1 << 20, &mut pending.file),
            Some(&mut progress),
        );
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
        &pending,
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
    let path = repo.publish(pending, &manifest)?;
    Ok((path, manifest))
}

/// A tar of `dir`, streamed through the same compression + encryption path.
fn backup_dir(
    repo: &LocalRepo,
    crypto: &Crypto,
    spec: CompressionSpec,
    kind: BackupKind,
    dir: &Path,
) -> Result<(std::path::PathBuf, BackupManifest)> {
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
        let encoded = encode(
            reader,
            spec,
            crypto,
            BufWriter::with_capacity(1 << 20, &mut pending.file),
            Some(&mut progress),
        );
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
        &pending,
        ContentFormat::Tar,
        spec,
        crypto,
        digests,
        started_at,
    );
    manifest.source_dir = Some(dir.display().to_string());
    let path = repo.publish(pending, &manifest)?;
    Ok((path, manifest))
}
