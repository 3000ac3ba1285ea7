//! The backup repository: one layout (`database/`, `application/`, `config/`,
//! each object with a JSON manifest beside it) behind one interface, on local
//! disk ([`local::LocalRepo`]) or S3-compatible object storage ([`s3::S3Repo`]).
//!
//! A backup exists only when its manifest does: objects are written first,
//! checked, and the manifest last. The grouping of stored files into backups
//! (manifests, verification records, the old scripts' files, leftovers) is
//! shared by both backends: [`build_listing`].

pub mod local;
pub mod s3;

use std::io::{Read, Write};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::config::{Compression, Config};
use crate::exit::could_not_start;
use crate::manifest::{BackupKind, BackupManifest, ContentFormat, VerificationRecord};

pub const MANIFEST_SUFFIX: &str = ".manifest.json";
pub const VERIFIED_SUFFIX: &str = ".verified.json";
pub const PARTIAL_SUFFIX: &str = ".partial";

/// How a backup written by the old shell scripts is laid out (no manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LegacyFormat {
    pub format: ContentFormat,
    pub compression: Compression,
    pub encrypted: bool,
}

/// One backup in a repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoEntry {
    pub id: String,
    pub kind: BackupKind,
    pub time: DateTime<Utc>,
    pub size: u64,
    /// The object's key inside the repository, e.g. `database/db-....dump.zst.gpg`.
    #[serde(skip)]
    pub key: String,
    /// Where the object is, for people: a path or an `s3://` URL.
    pub location: String,
    #[serde(skip)]
    pub manifest: Option<BackupManifest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legacy: Option<LegacyFormat>,
    pub verification: Option<VerificationRecord>,
}

impl RepoEntry {
    pub fn format(&self) -> ContentFormat {
        self.manifest
            .as_ref()
            .map(|m| m.format)
            .or(self.legacy.map(|l| l.format))
            .expect("entry has a format")
    }
    pub fn compression(&self) -> Compression {
        self.manifest
            .as_ref()
            .map(|m| m.compression)
            .or(self.legacy.map(|l| l.compression))
            .expect("entry has a compression")
    }
    pub fn encrypted(&self) -> bool {
        self.manifest
            .as_ref()
            .map(|m| m.encryption.is_encrypted())
            .or(self.legacy.map(|l| l.encrypted))
            .unwrap_or(false)
    }
    /// The stored object's size differs from its manifest: damaged, whatever an
    /// earlier verification said (a cheap check every listing makes).
    pub fn size_mismatch(&self) -> bool {
        self.manifest
            .as_ref()
            .is_some_and(|m| m.digests.stored_size != self.size)
    }

    /// "verified", "FAILED", "unverified" or "legacy, unverified".
    pub fn state(&self) -> &'static str {
        if self.size_mismatch() {
            return "FAILED (size differs from manifest)";
        }
        match (&self.verification, self.legacy.is_some()) {
            (Some(v), _) if v.ok => "verified",
            (Some(_), _) => "FAILED",
            (None, true) => "legacy, unverified",
            (None, false) => "unverified",
        }
    }
    /// The database a database backup was taken of (none: an old-script dump, or another kind).
    pub fn database(&self) -> Option<&str> {
        let info = self.manifest.as_ref()?.database.as_ref()?;
        Some(info.name.as_str())
    }

    /// Whether this backup is in the series `latest`, verification, retention and
    /// recovery use for database `db`: database backups of that database (old-script
    /// dumps, which name none, count as its), and every backup of another kind.
    pub fn in_series_of(&self, db: &str) -> bool {
        self.kind != BackupKind::Db || self.database().is_none_or(|n| n == db)
    }

    pub fn is_verified(&self) -> bool {
        !self.size_mismatch() && self.verification.as_ref().is_some_and(|v| v.ok)
    }
}

/// An object being written. Dropped without [`PendingObject::commit`], it leaves
/// nothing that is listed as a backup (local: the `.partial` is removed; S3:
/// the multipart upload is aborted).
pub trait PendingObject: Write + Send {
    fn id(&self) -> &str;
    fn kind(&self) -> BackupKind;
    /// The object's file name (what the manifest's `object` field names).
    fn object_name(&self) -> String;
    /// Makes the object durable and checks it, then writes the manifest. Returns the location.
    fn commit(self: Box<Self>, manifest: &BackupManifest) -> Result<String>;
}

/// A backup repository: local directory or S3 bucket + prefix.
pub trait Repository: Send + Sync {
    /// `/backups` or `s3://bucket/prefix`.
    fn location(&self) -> String;
    /// Every backup, oldest first, plus warnings about stored things that are not backups.
    fn list(&self) -> Result<(Vec<RepoEntry>, Vec<ListingWarning>)>;
    /// Streams the stored bytes at `key` (relative to the repository root).
    fn open_key(&self, key: &str) -> Result<Box<dyn Read + Send>>;
    /// A small file (manifest, record) by key; `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Removes one key (absent is fine); removals are durable in the order they are made.
    fn remove_key(&self, key: &str) -> Result<()>;
    /// Keys under a folder (`wal`), with sizes; not recursive.
    fn list_dir(&self, dir: &str) -> Result<Vec<StoredFile>>;

    /// Streams a backup's stored bytes.
    fn open(&self, entry: &RepoEntry) -> Result<Box<dyn Read + Send>> {
        self.open_key(&entry.key)
    }
    /// Starts writing `<kind dir>/<id><suffix>`.
    fn begin(
        &self,
        kind: BackupKind,
        id: &str,
        suffix: &str,
    ) -> Result<Box<dyn PendingObject + '_>>;
    /// Records a verification outcome beside the manifest (old-script backups: not stored).
    fn record_verification(&self, entry: &RepoEntry, rec: &VerificationRecord) -> Result<()>;
    /// Deletes a backup, manifest first so it stops looking complete at once.
    fn delete(&self, entry: &RepoEntry) -> Result<()>;
    /// Removes leftovers of runs that died. Call only while holding the backup lock.
    fn clean_partials(&self) -> Result<Vec<String>>;

    /// One backup by id (or old-script file name). `latest` is chosen by the commands,
    /// which know which database's series they mean (`RepoEntry::in_series_of`).
    fn find(&self, selector: &str) -> Result<RepoEntry> {
        let (entries, _) = self.list()?;
        entries
            .into_iter()
            .find(|e| e.id == selector || e.key.rsplit('/').next() == Some(selector))
            .ok_or_else(|| {
                could_not_start(format!(
                    "no backup {selector:?} in repository {} (see `tuneton-ops backups list`)",
                    self.location()
                ))
            })
    }
}

/// A new backup id: kind, UTC time to the millisecond, and a random suffix,
/// so two backups in the same second never collide.
pub fn new_id(kind: BackupKind, now: DateTime<Utc>) -> String {
    format!(
        "{}-{}-{:04x}",
        kind.name(),
        now.format("%Y%m%dT%H%M%S%3fZ"),
        rand::random::<u16>()
    )
}

/// Which repository a reading command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RepoChoice {
    Local,
    S3,
}

/// The repositories a backup writes to, primary first: local (if enabled), then S3 (if enabled).
pub fn for_backup(cfg: &Config) -> Result<Vec<Box<dyn Repository>>> {
    let mut repos: Vec<Box<dyn Repository>> = Vec::new();
    if cfg.repository.local {
        repos.push(Box::new(local::LocalRepo::create(&cfg.repository.path)?));
    }
    if cfg.s3.enabled {
        repos.push(Box::new(
            s3::S3Repo::open(&cfg.s3)?.with_journal(cfg.paths.run_dir.join("s3-uploads")),
        ));
    }
    if repos.is_empty() {
        return Err(could_not_start(
            "no repository: set repository.local = true or enable [s3] (s3.enabled = true)",
        ));
    }
    Ok(repos)
}

/// The repository a reading command uses: `--from`, else local when enabled, else S3.
pub fn for_reading(cfg: &Config, choice: Option<RepoChoice>) -> Result<Box<dyn Repository>> {
    let choice = choice.unwrap_or(if cfg.repository.local {
        RepoChoice::Local
    } else {
        RepoChoice::S3
    });
    match choice {
        RepoChoice::Local => Ok(Box::new(local::LocalRepo::open(&cfg.repository.path)?)),
        RepoChoice::S3 => {
            if !cfg.s3.enabled {
                return Err(could_not_start(
                    "--from s3, but the S3 repository is not configured (s3.enabled)",
                ));
            }
            Ok(Box::new(s3::S3Repo::open(&cfg.s3)?))
        }
    }
}

/// The repositories a verification reads: `--from`, else every configured one
/// (local and S3 copies are verified separately: each is what some later restore reads).
pub fn for_verifying(cfg: &Config, choice: Option<RepoChoice>) -> Result<Vec<Box<dyn Repository>>> {
    if choice.is_some() || !(cfg.repository.local && cfg.s3.enabled) {
        return Ok(vec![for_reading(cfg, choice)?]);
    }
    Ok(vec![
        for_reading(cfg, Some(RepoChoice::Local))?,
        for_reading(cfg, Some(RepoChoice::S3))?,
    ])
}

/// Something a listing found that is not a usable backup.
#[derive(Debug, Clone)]
pub struct ListingWarning {
    pub message: String,
    /// A finished backup is damaged or lost (a manifest that cannot be read or does not
    /// name its own files, or whose object is missing), as opposed to the leftovers of
    /// an interrupted or running backup.
    pub damaged: bool,
}

impl std::fmt::Display for ListingWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn damaged(message: String) -> ListingWarning {
    ListingWarning {
        message,
        damaged: true,
    }
}

fn leftover(message: String) -> ListingWarning {
    ListingWarning {
        message,
        damaged: false,
    }
}

/// A stored file as a backend sees it: key relative to the repository root.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// Groups stored files into backups. `fetch` reads a small file (manifest,
/// verification record) by key; `location` renders a key for people.
pub fn build_listing(
    mut files: Vec<StoredFile>,
    fetch: &dyn Fn(&str) -> Result<Vec<u8>>,
    location: &dyn Fn(&str) -> String,
) -> (Vec<RepoEntry>, Vec<ListingWarning>) {
    files.sort_by(|a, b| a.key.cmp(&b.key));
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let mut claimed = std::collections::HashSet::new();
    let by_key: std::collections::HashMap<&str, &StoredFile> =
        files.iter().map(|f| (f.key.as_str(), f)).collect();
    for f in files.iter().filter(|f| f.key.ends_with(MANIFEST_SUFFIX)) {
        claimed.insert(f.key.clone());
        let dir = f.key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let parsed = fetch(&f.key)
            .and_then(|b| serde_json::from_slice::<BackupManifest>(&b).map_err(anyhow::Error::from))
            .with_context(|| format!("manifest {} is not readable", location(&f.key)));
        let m = match parsed {
            Ok(m) => m,
            Err(e) => {
                warnings.push(damaged(format!("{e:#}")));
                continue;
            }
        };
        // A manifest names only its own files: `<id>.manifest.json` beside `<id>.<ext>`.
        let own_id = f
            .key
            .rsplit('/')
            .next()
            .and_then(|n| n.strip_suffix(MANIFEST_SUFFIX))
            .unwrap_or_default();
        if m.id != own_id
            || m.kind.dir() != dir.rsplit('/').next().unwrap_or(dir)
            || m.object.contains('/')
            || !m.object.starts_with(&format!("{own_id}."))
        {
            warnings.push(damaged(format!(
                "manifest {} names id {:?}, kind {} and object {:?}, not its own files; ignored",
                location(&f.key),
                m.id,
                m.kind.name(),
                m.object
            )));
            continue;
        }
        let key = format!("{dir}/{}", m.object);
        let verified_key = format!("{dir}/{}{VERIFIED_SUFFIX}", m.id);
        claimed.insert(key.clone());
        claimed.insert(verified_key.clone());
        let size = match by_key.get(key.as_str()) {
            Some(o) => o.size,
            None => {
                warnings.push(damaged(format!(
                    "{}: manifest present but object {} is missing",
                    m.id,
                    location(&key)
                )));
                continue;
            }
        };
        let verification = by_key
            .contains_key(verified_key.as_str())
            .then(|| {
                fetch(&verified_key)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
            })
            .flatten();
        entries.push(RepoEntry {
            id: m.id.clone(),
            kind: m.kind,
            time: m.started_at,
            size,
            location: location(&key),
            key,
            manifest: Some(m),
            legacy: None,
            verification,
        });
    }
    for f in &files {
        if claimed.contains(&f.key) {
            continue;
        }
        let name = f.key.rsplit('/').next().unwrap_or(&f.key);
        if let Some((kind, legacy)) = legacy_format(name) {
            entries.push(RepoEntry {
                id: f.key.clone(),
                kind,
                time: legacy_time(name).unwrap_or(f.modified),
                size: f.size,
                location: location(&f.key),
                key: f.key.clone(),
                manifest: None,
                legacy: Some(legacy),
                verification: None,
            });
        } else if name.ends_with(PARTIAL_SUFFIX) {
            warnings.push(leftover(format!(
                "{}: unfinished backup (interrupted run); not listed",
                location(&f.key)
            )));
        } else if !name.ends_with(".tmp") && !name.ends_with(VERIFIED_SUFFIX) {
            warnings.push(leftover(format!(
                "{}: object without a manifest; not a finished backup",
                location(&f.key)
            )));
        }
    }
    entries.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    (entries, warnings)
}

/// Is this key one a repository listing looks at? Kind folders, and the old monthly layout.
pub fn is_listed_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('/').collect();
    match parts.as_slice() {
        [dir, _] => BackupKind::ALL.iter().any(|k| k.dir() == *dir),
        ["monthly", _, name] => legacy_format(name).is_some(),
        _ => false,
    }
}

/// Recognises the old scripts' file names.
pub fn legacy_format(name: &str) -> Option<(BackupKind, LegacyFormat)> {
    let (kind, format) = if name.starts_with("db_backup_") || name.starts_with("db_full_dump_") {
        (BackupKind::Db, ContentFormat::PlainSql)
    } else if name.starts_with("app_backup_") || name.starts_with("full_backup_") {
        (BackupKind::App, ContentFormat::Tar)
    } else if name.starts_with("config_backup_") {
        (BackupKind::Config, ContentFormat::Tar)
    } else {
        return None;
    };
    let (rest, encrypted) = match name.strip_suffix(".gpg") {
        Some(r) => (r, true),
        None => (name, false),
    };
    let (rest, compression) = match rest.strip_suffix(".gz") {
        Some(r) => (r, Compression::Gzip),
        None => (rest, Compression::None),
    };
    let expected = if format == ContentFormat::Tar {
        ".tar"
    } else {
        ".sql"
    };
    rest.ends_with(expected).then_some((
        kind,
        LegacyFormat {
            format,
            compression,
            encrypted,
        },
    ))
}

/// Time from an old-script name (`..._YYYYMMDD[_HHMMSS]...`).
fn legacy_time(name: &str) -> Option<DateTime<Utc>> {
    let digits: Vec<&str> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    let d = digits.first().filter(|d| d.len() == 8)?;
    let date = NaiveDate::parse_from_str(d, "%Y%m%d").ok()?;
    let time = digits
        .get(1)
        .filter(|t| t.len() == 6)
        .and_then(|t| NaiveDateTime::parse_from_str(&format!("{d}{t}"), "%Y%m%d%H%M%S").ok())
        .unwrap_or_else(|| date.and_hms_opt(0, 0, 0).expect("midnight"));
    Some(Utc.from_utc_datetime(&time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_script_names_are_recognised() {
        let (k, f) = legacy_format("db_backup_20261201_020000.sql.gz.gpg").unwrap();
        assert_eq!(k, BackupKind::Db);
        assert_eq!(
            f,
            LegacyFormat {
                format: ContentFormat::PlainSql,
                compression: Compression::Gzip,
                encrypted: true
            }
        );
        let (k, f) = legacy_format("app_backup_20261201.tar.gz").unwrap();
        assert_eq!(k, BackupKind::App);
        assert!(!f.encrypted);
        assert_eq!(
            legacy_format("config_backup_20261201.tar.gz.gpg")
                .unwrap()
                .0,
            BackupKind::Config
        );
        assert!(legacy_format("db_backup_x.txt").is_none());
        assert!(legacy_format("notes.txt").is_none());
    }

    #[test]
    fn legacy_time_reads_the_name() {
        let t = legacy_time("db_backup_20261201_023000.sql.gz.gpg").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T02:30:00+00:00");
        assert!(legacy_time("db_backup_latest.sql.gz").is_none());
    }

    #[test]
    fn ids_in_the_same_millisecond_differ() {
        let now = Utc::now();
        let ids: std::collections::HashSet<String> =
            (0..50).map(|_| new_id(BackupKind::Db, now)).collect();
        assert!(
            ids.len() > 45,
            "random suffix must separate same-instant ids"
        );
        assert!(ids.iter().all(|i| i.starts_with("db-")));
    }

    #[test]
    fn listing_skips_foreign_keys_and_reports_orphans() {
        assert!(is_listed_key("database/db-1.dump.zst.gpg"));
        assert!(is_listed_key(
            "monthly/20261101/db_full_dump_20261101.sql.gz"
        ));
        assert!(!is_listed_key("wal/000000010000000000000001"));
        let now = Utc::now();
        let files = vec![
            StoredFile {
                key: "database/x.dump.zst.gpg".into(),
                size: 3,
                modified: now,
            },
            StoredFile {
                key: "database/y.dump.zst.gpg.partial".into(),
                size: 3,
                modified: now,
            },
        ];
        let (entries, warnings) =
            build_listing(files, &|_| anyhow::bail!("none"), &|k| k.to_string());
        assert!(entries.is_empty());
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }
}
