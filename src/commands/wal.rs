//! `wal-push` and `wal-fetch`: PostgreSQL's `archive_command` and
//! `restore_command`, storing WAL files in the repository's `wal/` area through
//! the same compression + encryption + checksum path as backups.
//!
//! Replaces the old "point-in-time recovery" procedure, which piped
//! `pg_waldump` output into itself and archived nothing.
//!
//! ```text
//! archive_command = 'tuneton-ops wal-push %p'
//! restore_command = 'tuneton-ops wal-fetch %f %p'
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, BufWriter};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use clap::Args;
use serde_json::json;

use super::backup::{manifest_for, object_suffix};
use super::Ctx;
use crate::crypto::Crypto;
use crate::exit::{could_not_start, ExitCode};
use crate::manifest::{BackupKind, BackupManifest, ContentFormat};
use crate::repo::{self, Repository, MANIFEST_SUFFIX, PARTIAL_SUFFIX};
use crate::stream::{decode, encode, sha256_of, CompressionSpec};

#[derive(Debug, Args)]
pub struct WalPushArgs {
    /// The WAL file to archive (PostgreSQL's %p)
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct WalFetchArgs {
    /// The WAL file name PostgreSQL asks for (%f)
    pub name: String,
    /// Where to write it (%p)
    pub dest: PathBuf,
}

/// Segment (24 hex digits), `.history`, `.backup` or `.partial` names only: the
/// name becomes a repository key, so nothing else may pass.
pub fn is_wal_name(name: &str) -> bool {
    let hex24 = |s: &str| {
        s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    };
    if hex24(name) {
        return true;
    }
    if let Some(tl) = name.strip_suffix(".history") {
        return tl.len() == 8 && tl.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if let Some(seg) = name.strip_suffix(".partial") {
        return hex24(seg);
    }
    if let Some(rest) = name.strip_suffix(".backup") {
        return rest.len() == 33 && hex24(&rest[..24]) && rest.as_bytes()[24] == b'.';
    }
    false
}

fn manifest_key(name: &str) -> String {
    format!("{}/{name}{MANIFEST_SUFFIX}", BackupKind::Wal.dir())
}

/// Archives one WAL file into every configured repository; exit 0 only once it is durable everywhere.
pub fn push(ctx: &Ctx, args: WalPushArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let name = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| is_wal_name(n))
        .ok_or_else(|| {
            could_not_start(format!(
                "{} is not a WAL file name (use %p in archive_command)",
                args.path.display()
            ))
        })?;
    let spec = CompressionSpec {
        kind: cfg.repository.compression,
        level: cfg.repository.compression_level,
        threads: 0,
    };
    if ctx.global.dry_run {
        ctx.emit(
            &json!({"dry_run": true, "would_archive": name}),
            &format!("would archive {name}"),
        );
        return Ok(ExitCode::Success);
    }
    let crypto = Crypto::for_encrypt(&cfg.encryption)?;
    let (content_sha, _) = sha256_of(BufReader::new(open(&args.path)?), None)
        .with_context(|| format!("reading {}", args.path.display()))?;
    for repo in repo::for_backup(cfg)? {
        push_one(
            repo.as_ref(),
            &name,
            &args.path,
            &content_sha,
            spec,
            &crypto,
        )?;
    }
    ctx.emit(&json!({"ok": true, "archived": name}), "");
    Ok(ExitCode::Success)
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("opening {}", path.display()))
}

fn push_one(
    repo: &dyn Repository,
    name: &str,
    path: &Path,
    content_sha: &str,
    spec: CompressionSpec,
    crypto: &Crypto,
) -> Result<()> {
    if let Some(bytes) = repo.get(&manifest_key(name))? {
        let existing: BackupManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("manifest of archived {name} is unreadable"))?;
        if existing.digests.content_sha256 == content_sha {
            log::info!(
                "{name} is already archived in {} with identical content",
                repo.location()
            );
            return Ok(());
        }
        bail!(
            "{name} is already archived in {} with DIFFERENT content (sha256 {} there, {content_sha} here); \
             refusing to overwrite. Two clusters archiving into one repository, or a timeline mix-up: investigate before recovery needs it",
            repo.location(),
            existing.digests.content_sha256
        );
    }
    // An object without a manifest is left by an interrupted push: it was never published.
    let suffix = object_suffix(ContentFormat::WalFile, spec, crypto);
    let object_key = format!("{}/{name}{suffix}", BackupKind::Wal.dir());
    repo.remove_key(&object_key)?;
    repo.remove_key(&format!("{object_key}{PARTIAL_SUFFIX}"))?;
    let started_at = Utc::now();
    let mut pending = repo.begin(BackupKind::Wal, name, &suffix)?;
    let digests = encode(
        BufReader::new(open(path)?),
        spec,
        crypto,
        &mut *pending,
        None,
    )?;
    if digests.content_sha256 != content_sha {
        bail!(
            "{} changed while it was being archived; not publishing",
            path.display()
        );
    }
    let manifest = manifest_for(
        pending.as_ref(),
        ContentFormat::WalFile,
        spec,
        crypto,
        digests,
        started_at,
    );
    let location = pending.commit(&manifest)?;
    log::info!("archived {name} -> {location}");
    Ok(())
}

/// Exit status for `restore_command`. PostgreSQL 15 (runtime-config-wal,
/// restore_command; backup.sgml "Recovering Using a Continuous Archive
/// Backup"): a non-zero exit means "not in the archive" and recovery ends
/// normally at the end of the WAL it has; but if the command "was terminated by
/// a signal (other than SIGTERM) or an error by the shell (such as command not
/// found)", i.e. an exit status greater than 125, recovery aborts and the server
/// does not start. So: 0 fetched, 1 truly absent, 126 anything else (network,
/// checksum, permissions, bad config), so recovery stops instead of ending
/// early on a timeline that lacks data.
pub fn fetch(ctx: &Ctx, args: WalFetchArgs) -> ExitCode {
    match fetch_inner(ctx, &args) {
        Ok(true) => ExitCode::Success,
        Ok(false) => {
            log::info!("{} is not in the archive", args.name);
            ExitCode::Warning
        }
        Err(e) => {
            log::error!(
                "wal-fetch {}: {e:#}; stopping recovery rather than ending it early",
                args.name
            );
            ExitCode::RecoveryFatal
        }
    }
}

fn fetch_inner(ctx: &Ctx, args: &WalFetchArgs) -> Result<bool> {
    let cfg = ctx.config();
    if !is_wal_name(&args.name) {
        bail!(
            "{:?} is not a WAL file name (use %f in restore_command)",
            args.name
        );
    }
    let mut repos: Vec<Box<dyn Repository>> = Vec::new();
    if let Some(choice) = ctx.global.from {
        repos.push(repo::for_reading(cfg, Some(choice))?);
    } else {
        if cfg.repository.local {
            repos.push(repo::for_reading(cfg, Some(repo::RepoChoice::Local))?);
        }
        if cfg.s3.enabled {
            repos.push(repo::for_reading(cfg, Some(repo::RepoChoice::S3))?);
        }
    }
    for repo in &repos {
        let Some(bytes) = repo.get(&manifest_key(&args.name))? else {
            continue;
        };
        let manifest: BackupManifest = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "manifest of archived {} in {} is unreadable",
                args.name,
                repo.location()
            )
        })?;
        if ctx.global.dry_run {
            return Ok(true);
        }
        fetch_from(
            repo.as_ref(),
            &manifest,
            &args.dest,
            &Crypto::for_decrypt(&cfg.encryption)?,
        )?;
        log::info!("fetched {} from {}", args.name, repo.location());
        return Ok(true);
    }
    Ok(false)
}

/// Decodes into `<dest>.partial`, checks both digests, fsyncs, then renames into place.
fn fetch_from(
    repo: &dyn Repository,
    m: &BackupManifest,
    dest: &Path,
    crypto: &Crypto,
) -> Result<()> {
    let key = format!("{}/{}", BackupKind::Wal.dir(), m.object);
    let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", dest.display()));
    let result = (|| -> Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut out = BufWriter::new(file);
        let got = decode(
            BufReader::with_capacity(1 << 20, repo.open_key(&key)?),
            m.compression,
            m.encryption.is_encrypted(),
            crypto,
            &mut out,
            None,
        )?;
        if got.stored_sha256 != m.digests.stored_sha256
            || got.content_sha256 != m.digests.content_sha256
        {
            bail!(
                "{} does not match its manifest (stored sha256 {} vs {}): the archived copy is damaged",
                key,
                got.stored_sha256,
                m.digests.stored_sha256
            );
        }
        let file = out
            .into_inner()
            .map_err(|e| anyhow!("flushing {}: {}", partial.display(), e.error()))?;
        file.sync_all()?;
        fs::rename(&partial, dest)
            .with_context(|| format!("moving the fetched file to {}", dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::is_wal_name;

    #[test]
    fn only_wal_names_pass() {
        assert!(is_wal_name("000000010000000000000003"));
        assert!(is_wal_name("00000002.history"));
        assert!(is_wal_name("000000010000000000000002.00000028.backup"));
        assert!(is_wal_name("000000010000000000000003.partial"));
        assert!(!is_wal_name("../../etc/passwd"));
        assert!(!is_wal_name("00000001000000000000000g"));
        assert!(!is_wal_name("000000010000000000000003/x"));
        assert!(!is_wal_name(""));
    }
}

/// One WAL segment's place in the sequence: (timeline, segment number).
pub fn segment_position(name: &str) -> Option<(u32, u64)> {
    if name.len() != 24 || !is_wal_name(name) {
        return None;
    }
    let tl = u32::from_str_radix(&name[..8], 16).ok()?;
    let hi = u64::from_str_radix(&name[8..16], 16).ok()?;
    let lo = u64::from_str_radix(&name[16..], 16).ok()?;
    // 16 MiB segments: 256 per "xlogid".
    Some((tl, hi * 0x100 + lo))
}

/// The segment holding an LSN such as `0/2000028` (16 MiB segments).
pub fn segment_of_lsn(timeline: u32, lsn: &str) -> Option<String> {
    let (hi, lo) = lsn.split_once('/')?;
    let (hi, lo) = (
        u64::from_str_radix(hi, 16).ok()?,
        u64::from_str_radix(lo, 16).ok()?,
    );
    Some(format!("{timeline:08X}{hi:08X}{:08X}", lo >> 24))
}

/// The archive's health: last archived segment and its age, gaps since the
/// newest base backup, and the server's own archiver failures.
pub fn archive_status(
    ctx: &Ctx,
    repo: &dyn Repository,
    max_age_hours: Option<u64>,
) -> Result<(ExitCode, serde_json::Value, String)> {
    let files = repo.list_dir(BackupKind::Wal.dir())?;
    let mut archived: Vec<(String, chrono::DateTime<Utc>)> = files
        .iter()
        .filter_map(|f| {
            let name = f.key.strip_prefix("wal/")?.strip_suffix(MANIFEST_SUFFIX)?;
            segment_position(name).map(|_| (name.to_string(), f.modified))
        })
        .collect();
    archived.sort();
    let mut code = ExitCode::Success;
    let mut lines = Vec::new();
    let last = archived.last().cloned();
    match &last {
        None => {
            code = ExitCode::Failed;
            lines.push(format!(
                "CRITICAL: no WAL segment archived in {}",
                repo.location()
            ));
        }
        Some((name, at)) => {
            let hours = (Utc::now() - *at).num_milliseconds() as f64 / 3_600_000.0;
            let old = max_age_hours.is_some_and(|h| hours > h as f64);
            if old {
                code = code.worst(ExitCode::Warning);
            }
            lines.push(format!(
                "{}: last archived {name}, {hours:.2} hours ago",
                if old { "WARNING" } else { "OK" }
            ));
        }
    }
    // Gaps since the newest base backup's start segment, on its timeline.
    let (entries, _) = repo.list()?;
    let base = entries
        .iter()
        .rev()
        .find(|e| e.kind == BackupKind::Base)
        .and_then(|e| e.manifest.as_ref()?.base.clone());
    let mut missing = Vec::new();
    // On the base backup's timeline, from its start segment to the newest segment
    // archived on that timeline (later timelines branch off from there).
    if let Some(b) = &base {
        if let Some((tl, first)) =
            segment_of_lsn(b.timeline, &b.start_lsn).and_then(|n| segment_position(&n))
        {
            let have: std::collections::HashSet<u64> = archived
                .iter()
                .filter_map(|(n, _)| segment_position(n))
                .filter(|(t, _)| *t == tl)
                .map(|(_, s)| s)
                .collect();
            if let Some(end) = have.iter().max().copied() {
                for seg in first..=end {
                    if !have.contains(&seg) {
                        missing.push(format!("{tl:08X}{:08X}{:08X}", seg / 0x100, seg % 0x100));
                    }
                }
            }
        }
    }
    if !missing.is_empty() {
        code = code.worst(ExitCode::Failed);
        lines.push(format!(
            "CRITICAL: {} segment(s) missing since the newest base backup: {}",
            missing.len(),
            missing
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // The server's own view, when it can be reached.
    let pg = crate::db::PgTarget::from_config(&ctx.config().database);
    let archiver = pg.connect(&pg.maintenance_db).and_then(|mut c| {
        let row = c.query_one(
            "SELECT failed_count, coalesce(last_failed_wal, ''), \
                    coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) \
             FROM pg_stat_archiver",
            &[],
        )?;
        Ok((
            row.get::<_, i64>(0),
            row.get::<_, String>(1),
            row.get::<_, bool>(2),
        ))
    });
    let server = match archiver {
        Ok((failed, wal, failing)) => {
            if failing {
                code = code.worst(ExitCode::Failed);
                lines.push(format!(
                    "CRITICAL: the server's archiver is failing ({failed} failures; last on {wal})"
                ));
            }
            json!({"failed_count": failed, "last_failed_wal": wal, "failing_now": failing})
        }
        Err(e) => {
            lines.push(format!("server archiver state unknown: {e:#}"));
            serde_json::Value::Null
        }
    };
    let doc = json!({
        "repository": repo.location(),
        "last_archived": last.as_ref().map(|(n, _)| n.clone()),
        "last_archived_at": last.as_ref().map(|(_, t)| *t),
        "archived_segments": archived.len(),
        "missing_since_base": missing,
        "base_backup_start": base.as_ref().map(|b| b.start_lsn.clone()),
        "server_archiver": server,
    });
    Ok((code, doc, lines.join("\n")))
}

#[cfg(test)]
mod position_tests {
    use super::*;

    #[test]
    fn lsns_map_to_segments_and_positions_count_across_xlogids() {
        assert_eq!(
            segment_of_lsn(1, "0/2000028").as_deref(),
            Some("000000010000000000000002")
        );
        assert_eq!(
            segment_of_lsn(2, "1/FF000000").as_deref(),
            Some("0000000200000001000000FF")
        );
        let a = segment_position("0000000100000000000000FF").unwrap();
        let b = segment_position("000000010000000100000000").unwrap();
        assert_eq!(b.1, a.1 + 1);
        assert!(segment_position("00000002.history").is_none());
    }
}
