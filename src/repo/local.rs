//! The repository on local disk.
//!
//! Publishing is crash-safe: the object is written as `*.partial` (0600,
//! created exclusively), fsynced, hard-linked to its final name (which fails
//! rather than overwrite), and only then is the manifest written the same way.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};

use super::{
    build_listing, is_listed_key, ListingWarning, PendingObject, RepoEntry, Repository, StoredFile,
    MANIFEST_SUFFIX, PARTIAL_SUFFIX, VERIFIED_SUFFIX,
};
use crate::exit::could_not_start;
use crate::manifest::{BackupKind, BackupManifest, VerificationRecord};

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

    /// Opens the repository for writing, creating it if needed.
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

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Files under the kind folders and the old monthly layout, as keys.
    fn stored_files(&self) -> Result<Vec<StoredFile>> {
        let mut out = Vec::new();
        let mut dirs: Vec<String> = BackupKind::ALL
            .iter()
            .map(|k| k.dir().to_string())
            .collect();
        if let Ok(rd) = fs::read_dir(self.root.join("monthly")) {
            for e in rd.flatten().filter(|e| e.path().is_dir()) {
                dirs.push(format!("monthly/{}", e.file_name().to_string_lossy()));
            }
        }
        for dir in dirs {
            let rd = match fs::read_dir(self.root.join(&dir)) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(
                        anyhow!(e).context(format!("reading {}", self.root.join(&dir).display()))
                    )
                }
            };
            for e in rd.flatten() {
                let Ok(md) = e.metadata() else { continue };
                if !md.is_file() {
                    continue;
                }
                let key = format!("{dir}/{}", e.file_name().to_string_lossy());
                if !is_listed_key(&key) {
                    continue;
                }
                let modified = md
                    .modified()
                    .map(DateTime::<Utc>::from)
                    .unwrap_or_else(|_| Utc::now());
                out.push(StoredFile {
                    key,
                    size: md.len(),
                    modified,
                });
            }
        }
        Ok(out)
    }
}

impl Repository for LocalRepo {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<(Vec<RepoEntry>, Vec<ListingWarning>)> {
        let files = self.stored_files()?;
        Ok(build_listing(
            files,
            &|key| {
                fs::read(self.path(key))
                    .with_context(|| format!("reading {}", self.path(key).display()))
            },
            &|key| self.path(key).display().to_string(),
        ))
    }

    fn open_key(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        let path = self.path(key);
        let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        Ok(Box::new(f))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("reading {}", self.path(key).display()))),
        }
    }

    fn remove_key(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(anyhow!(e).context(format!("removing {}", path.display()))),
            // Durable before the caller removes the next key (a manifest before its object).
            Ok(()) => path.parent().map_or(Ok(()), sync_dir),
        }
    }

    fn list_dir(&self, dir: &str) -> Result<Vec<StoredFile>> {
        let rd = match fs::read_dir(self.root.join(dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(anyhow!(e).context(format!("reading {}", self.root.join(dir).display())))
            }
        };
        Ok(rd
            .flatten()
            .filter_map(|e| {
                let md = e.metadata().ok().filter(|m| m.is_file())?;
                Some(StoredFile {
                    key: format!("{dir}/{}", e.file_name().to_string_lossy()),
                    size: md.len(),
                    modified: md
                        .modified()
                        .map(DateTime::<Utc>::from)
                        .unwrap_or_else(|_| Utc::now()),
                })
            })
            .collect())
    }

    fn begin(
        &self,
        kind: BackupKind,
        id: &str,
        suffix: &str,
    ) -> Result<Box<dyn PendingObject + '_>> {
        let dir = self.root.join(kind.dir());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let final_path = dir.join(format!("{id}{suffix}"));
        let partial = dir.join(format!("{id}{suffix}{PARTIAL_SUFFIX}"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Box::new(LocalPending {
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            partial,
            final_path,
            dir,
            id: id.to_string(),
            kind,
        }))
    }

    fn record_verification(&self, entry: &RepoEntry, rec: &VerificationRecord) -> Result<()> {
        if entry.legacy.is_some() {
            return Ok(()); // Old-script backups stay untouched; their state is reported, not stored.
        }
        let dir = self.root.join(entry.kind.dir());
        let path = dir.join(format!("{}{VERIFIED_SUFFIX}", entry.id));
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
        sync_dir(&dir)
    }

    fn delete(&self, entry: &RepoEntry) -> Result<()> {
        if entry.legacy.is_some() {
            bail!(
                "refusing to delete old-script backup {} automatically",
                entry.id
            );
        }
        let dir = self.root.join(entry.kind.dir());
        fs::remove_file(dir.join(format!("{}{MANIFEST_SUFFIX}", entry.id)))?;
        sync_dir(&dir)?;
        let object = self.path(&entry.key);
        fs::remove_file(&object).with_context(|| format!("removing {}", object.display()))?;
        let _ = fs::remove_file(dir.join(format!("{}{VERIFIED_SUFFIX}", entry.id)));
        sync_dir(&dir)
    }

    fn clean_partials(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for f in self.stored_files()? {
            if let Some(final_key) = f.key.strip_suffix(PARTIAL_SUFFIX) {
                let p = self.path(&f.key);
                // A run that stopped between publishing and writing the manifest left the
                // object linked under its final name as well: without a manifest, it goes too.
                let object = self.path(final_key);
                if same_file(&p, &object) && !has_manifest(&object) {
                    fs::remove_file(&object)?;
                    removed.push(object.display().to_string());
                }
                fs::remove_file(&p)?;
                removed.push(p.display().to_string());
            }
        }
        Ok(removed)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Whether the backup whose object this is has its manifest (ids contain no dot).
fn has_manifest(object: &Path) -> bool {
    let name = object.file_name().unwrap_or_default().to_string_lossy();
    let id = name.split('.').next().unwrap_or_default();
    object
        .with_file_name(format!("{id}{MANIFEST_SUFFIX}"))
        .exists()
}

/// A local object being written as `.partial`; removed on drop unless committed.
struct LocalPending {
    file: Option<BufWriter<File>>,
    partial: PathBuf,
    final_path: PathBuf,
    dir: PathBuf,
    id: String,
    kind: BackupKind,
}

impl LocalPending {
    /// An I/O error that names the file (a full disk says where).
    fn named(&self, e: std::io::Error) -> std::io::Error {
        std::io::Error::new(e.kind(), format!("writing {}: {e}", self.partial.display()))
    }
}

impl Write for LocalPending {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.file.as_mut().expect("open until commit").write(buf);
        r.map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.file.as_mut().expect("open until commit").flush();
        r.map_err(|e| self.named(e))
    }
}

impl PendingObject for LocalPending {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> BackupKind {
        self.kind
    }
    fn object_name(&self) -> String {
        self.final_path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }
    fn commit(mut self: Box<Self>, manifest: &BackupManifest) -> Result<String> {
        let file = self.file.take().expect("open until commit");
        let file = file
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", self.partial.display()))?;
        file.sync_all()
            .with_context(|| format!("fsync {}", self.partial.display()))?;
        fs::hard_link(&self.partial, &self.final_path).with_context(|| {
            format!(
                "publishing {} (refusing to overwrite)",
                self.final_path.display()
            )
        })?;
        sync_dir(&self.dir)?;
        let manifest_path = self.dir.join(format!("{}{MANIFEST_SUFFIX}", self.id));
        write_new_atomically(&manifest_path, &serde_json::to_vec_pretty(manifest)?)?;
        // The `.partial` link goes last: until the manifest exists it marks the
        // object as unfinished, so a crash in between is cleaned up by the next run.
        fs::remove_file(&self.partial)?;
        sync_dir(&self.dir)?;
        Ok(self.final_path.display().to_string())
    }
}

impl Drop for LocalPending {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
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
