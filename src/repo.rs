//! The local backup repository: `database/`, `application/`, `config/`, each
//! object with its manifest beside it.
//!
//! Publishing is crash-safe: the object is written as `*.partial` (0600,
//! created exclusively), fsynced, hard-linked to its final name (which fails
//! rather than overwrite), and only then is the manifest written the same way.
//! A crash at any point leaves at most a `.partial` or an object without a
//! manifest; neither is listed as a backup.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use crate::config::Compression;
use crate::exit::could_not_start;
use crate::manifest::{BackupKind, BackupManifest, ContentFormat, VerificationRecord};

const MANIFEST_SUFFIX: &str = ".manifest.json";
const VERIFIED_SUFFIX: &str = ".verified.json";
const PARTIAL_SUFFIX: &str = ".partial";

/// How a backup written by the old shell scripts is laid out (no manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LegacyFormat {
    pub format: ContentFormat,
    pub compression: Compression,
    pub encrypted: bool,
}

/// One backup in the repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepoEntry {
    pub id: String,
    pub kind: BackupKind,
    pub time: DateTime<Utc>,
    pub size: u64,
    #[serde(skip)]
    pub object_path: PathBuf,
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
    /// "verified", "FAILED", "unverified" or "legacy (unverified)".
    pub fn state(&self) -> &'static str {
        match (&self.verification, self.legacy.is_some()) {
            (Some(v), _) if v.ok => "verified",
            (Some(_), _) => "FAILED",
            (None, true) => "legacy, unverified",
            (None, false) => "unverified",
        }
    }
    pub fn is_verified(&self) -> bool {
        self.verification.as_ref().is_some_and(|v| v.ok)
    }
}

/// An object being written; removed on drop unless published.
pub struct PendingObject {
    pub file: File,
    pub partial: PathBuf,
    pub final_path: PathBuf,
    pub id: String,
    pub kind: BackupKind,
    published: bool,
}

impl Drop for PendingObject {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

pub struct LocalRepo {
    pub root: PathBuf,
}

impl LocalRepo {
    /// Opens an existing repository for reading.
    pub fn open(root: &Path) -> Result<LocalRepo> {
        if !root.is_dir() {
            return Err(could_not_start(format!(
                "backup repository {} does not exist (repository.path, BACKUP_DIR or --repo)",
                root.display()
            )));
        }
        Ok(LocalRepo {
            root: root.to_path_buf(),
        })
    }

    /// Opens the repository for writing, creating it (mode 0700) if needed.
    pub fn create(root: &Path) -> Result<LocalRepo> {
        fs::create_dir_all(root).map_err(|e| {
            could_not_start(format!(
                "cannot create backup repository {} (repository.path): {e}",
                root.display()
            ))
        })?;
        Ok(LocalRepo {
            root: root.to_path_buf(),
        })
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

    fn kind_dir(&self, kind: BackupKind) -> PathBuf {
        self.root.join(kind.dir())
    }

    /// Starts writing `<id><suffix>` as a `.partial` file.
    pub fn begin(&self, kind: BackupKind, id: &str, suffix: &str) -> Result<PendingObject> {
        let dir = self.kind_dir(kind);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let final_path = dir.join(format!("{id}{suffix}"));
        let partial = dir.join(format!("{id}{suffix}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(PendingObject {
            file,
            partial,
            final_path,
            id: id.to_string(),
            kind,
            published: false,
        })
    }

    /// Makes a finished object visible: fsync, link to the final name, then the manifest.
    pub fn publish(
        &self,
        mut pending: PendingObject,
        manifest: &BackupManifest,
    ) -> Result<PathBuf> {
        pending
            .file
            .sync_all()
            .with_context(|| format!("fsync {}", pending.partial.display()))?;
        fs::hard_link(&pending.partial, &pending.final_path).with_context(|| {
            format!(
                "publishing {} (refusing to overwrite)",
                pending.final_path.display()
            )
        })?;
        fs::remove_file(&pending.partial)?;
        pending.published = true;
        let dir = self.kind_dir(pending.kind);
        sync_dir(&dir)?;
        let manifest_path = dir.join(format!("{}{MANIFEST_SUFFIX}", pending.id));
        let json = serde_json::to_vec_pretty(manifest)?;
        write_new_atomically(&manifest_path, &json)?;
        Ok(pending.final_path.clone())
    }

    /// Records a verification outcome beside the manifest (atomically replaced).
    pub fn record_verification(&self, entry: &RepoEntry, rec: &VerificationRecord) -> Result<()> {
        if entry.legacy.is_some() {
            return Ok(()); // Old-script backups stay untouched; their state is reported, not stored.
        }
        let path = self
            .kind_dir(entry.kind)
            .join(format!("{}{VERIFIED_SUFFIX}", entry.id));
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(rec)?)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        sync_dir(&self.kind_dir(entry.kind))
    }

    /// Deletes a backup: manifest first, so it stops looking complete at once.
    pub fn delete(&self, entry: &RepoEntry) -> Result<()> {
        if entry.legacy.is_some() {
            bail!(
                "refusing to delete old-script backup {} automatically",
                entry.id
            );
        }
        let dir = self.kind_dir(entry.kind);
        fs::remove_file(dir.join(format!("{}{MANIFEST_SUFFIX}", entry.id)))?;
        sync_dir(&dir)?;
        fs::remove_file(&entry.object_path)
            .with_context(|| format!("removing {}", entry.object_path.display()))?;
        let _ = fs::remove_file(dir.join(format!("{}{VERIFIED_SUFFIX}", entry.id)));
        sync_dir(&dir)
    }

    /// Removes `.partial` files left by runs that died. Call only while holding the backup lock.
    pub fn clean_partials(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for kind in BackupKind::ALL {
            let Ok(rd) = fs::read_dir(self.kind_dir(kind)) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.to_string_lossy().ends_with(PARTIAL_SUFFIX) {
                    fs::remove_file(&p)?;
                    removed.push(p);
                }
            }
        }
        Ok(removed)
    }

    /// Every backup, oldest first, plus warnings about things that are not backups.
    pub fn list(&self) -> Result<(Vec<RepoEntry>, Vec<String>)> {
        let mut entries = Vec::new();
        let mut warnings = Vec::new();
        for kind in BackupKind::ALL {
            let dir = self.kind_dir(kind);
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(anyhow!(e).context(format!("reading {}", dir.display()))),
            };
            let mut names: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            let manifests: Vec<&String> = names
                .iter()
                .filter(|n| n.ends_with(MANIFEST_SUFFIX))
                .collect();
            let mut claimed: Vec<String> = Vec::new();
            for name in &manifests {
                let path = dir.join(name);
                match read_manifest(&path) {
                    Ok(m) => {
                        let object_path = dir.join(&m.object);
                        claimed.push(m.object.clone());
                        claimed.push(format!("{}{VERIFIED_SUFFIX}", m.id));
                        let size = match fs::metadata(&object_path) {
                            Ok(md) => md.len(),
                            Err(_) => {
                                warnings.push(format!(
                                    "{}: manifest present but object {} is missing",
                                    m.id,
                                    object_path.display()
                                ));
                                0
                            }
                        };
                        let verification = fs::read(dir.join(format!("{}{VERIFIED_SUFFIX}", m.id)))
                            .ok()
                            .and_then(|b| serde_json::from_slice(&b).ok());
                        entries.push(RepoEntry {
                            id: m.id.clone(),
                            kind: m.kind,
                            time: m.started_at,
                            size,
                            object_path,
                            manifest: Some(m),
                            legacy: None,
                            verification,
                        });
                    }
                    Err(e) => warnings.push(format!("{:#}", e)),
                }
            }
            for name in &names {
                if name.ends_with(MANIFEST_SUFFIX) || claimed.contains(name) {
                    continue;
                }
                let path = dir.join(name);
                if let Some((lkind, legacy)) = legacy_format(name) {
                    entries.push(legacy_entry(&self.root, &path, lkind, legacy)?);
                } else if name.ends_with(PARTIAL_SUFFIX) {
                    warnings.push(format!(
                        "{}: unfinished backup (interrupted run); not listed",
                        path.display()
                    ));
                } else if !name.ends_with(".tmp") {
                    warnings.push(format!(
                        "{}: object without a manifest; not a finished backup",
                        path.display()
                    ));
                }
            }
        }
        // The old monthly script's layout: monthly/<YYYYMMDD>/{full_backup,config_backup,db_full_dump}_*.
        if let Ok(rd) = fs::read_dir(self.root.join("monthly")) {
            for sub in rd.flatten().filter(|e| e.path().is_dir()) {
                for f in fs::read_dir(sub.path())?.flatten() {
                    let name = f.file_name().to_string_lossy().into_owned();
                    if let Some((lkind, legacy)) = legacy_format(&name) {
                        entries.push(legacy_entry(&self.root, &f.path(), lkind, legacy)?);
                    }
                }
            }
        }
        entries.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
        Ok((entries, warnings))
    }

    /// Finds one backup by id (or old-script file name), or `latest` of a kind.
    pub fn find(&self, selector: &str, kind: Option<BackupKind>) -> Result<RepoEntry> {
        let (entries, _) = self.list()?;
        if selector == "latest" {
            let kind = kind.unwrap_or(BackupKind::Db);
            return entries
                .into_iter()
                .rev()
                .find(|e| e.kind == kind)
                .ok_or_else(|| {
                    could_not_start(format!(
                        "no {} backup in repository {}",
                        kind.name(),
                        self.root.display()
                    ))
                });
        }
        entries
            .into_iter()
            .find(|e| {
                e.id == selector
                    || e.object_path
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy() == selector)
            })
            .ok_or_else(|| {
                could_not_start(format!(
                    "no backup {selector:?} in repository {} (see `tuneton-ops backups list`)",
                    self.root.display()
                ))
            })
    }
}

pub fn read_manifest(path: &Path) -> Result<BackupManifest> {
    let bytes = fs::read(path).with_context(|| format!("reading manifest {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("manifest {} is not valid", path.display()))
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

/// Time from an old-script name (`..._YYYYMMDD[_HHMMSS]...`), else the file's mtime.
fn legacy_time(name: &str, path: &Path) -> DateTime<Utc> {
    let digits: Vec<&str> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(d) = digits.first().filter(|d| d.len() == 8) {
        if let Ok(date) = NaiveDate::parse_from_str(d, "%Y%m%d") {
            let time = digits
                .get(1)
                .filter(|t| t.len() == 6)
                .and_then(|t| {
                    NaiveDateTime::parse_from_str(&format!("{d}{t}"), "%Y%m%d%H%M%S").ok()
                })
                .unwrap_or_else(|| date.and_hms_opt(0, 0, 0).expect("midnight"));
            return Utc.from_utc_datetime(&time);
        }
    }
    fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .unwrap_or_else(|_| Utc::now())
}

fn legacy_entry(
    root: &Path,
    path: &Path,
    kind: BackupKind,
    legacy: LegacyFormat,
) -> Result<RepoEntry> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let id = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned();
    Ok(RepoEntry {
        id,
        kind,
        time: legacy_time(&name, path),
        size: fs::metadata(path)?.len(),
        object_path: path.to_path_buf(),
        manifest: None,
        legacy: Some(legacy),
        verification: None,
    })
}

/// Writes a new file atomically: `.partial` created exclusively, fsync, link into place.
fn write_new_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let partial = PathBuf::from(format!("{}{PARTIAL_SUFFIX}", path.display()));
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let linked =
        fs::hard_link(&partial, path).with_context(|| format!("publishing {}", path.display()));
    let _ = fs::remove_file(&partial);
    linked?;
    sync_dir(path.parent().expect("has a parent"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
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
        let t = legacy_time(
            "db_backup_20261201_023000.sql.gz.gpg",
            Path::new("/nonexistent"),
        );
        assert_eq!(t.to_rfc3339(), "2026-12-01T02:30:00+00:00");
    }

    #[test]
    fn ids_in_the_same_millisecond_differ_and_sort_by_time() {
        let now = Utc::now();
        let ids: std::collections::HashSet<String> = (0..50)
            .map(|_| LocalRepo::new_id(BackupKind::Db, now))
            .collect();
        assert!(
            ids.len() > 45,
            "random suffix must separate same-instant ids"
        );
        assert!(ids.iter().all(|i| i.starts_with("db-")));
    }
}
