//! The rotation state file: per log file, when it was last rotated, into which
//! archive, how many bytes. Written atomically (temp file, fsync, rename, fsync
//! of the directory) under an flock on `<state>.lock` taken with a deadline.
//!
//! It is a record and a cache, not a source of truth: a missing or corrupt
//! file is reported, moved aside and rebuilt from the archives' names, and
//! rotation goes on.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RotationState {
    pub version: u32,
    /// Keyed by the log's absolute path.
    pub files: BTreeMap<String, FileState>,
}

impl Default for RotationState {
    fn default() -> Self {
        RotationState {
            version: VERSION,
            files: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileState {
    pub last_rotated: DateTime<Utc>,
    /// File name of the newest archive.
    pub last_archive: Option<String>,
    /// Bytes archived by the last rotation (None when rebuilt from names).
    pub last_bytes: Option<u64>,
}

/// The open state file with its lock held.
pub struct StateFile {
    path: PathBuf,
    _lock: File,
}

/// What loading found.
pub enum Loaded {
    Fresh,
    Read(RotationState),
    /// Unreadable: the reason, and where the bad file was moved.
    Corrupt {
        reason: String,
        moved_to: Option<PathBuf>,
    },
}

impl StateFile {
    /// Locks `<path>.lock` (waiting at most `wait`) and reads the state.
    pub fn open(path: &Path, wait: Duration, read_only: bool) -> Result<(StateFile, Loaded)> {
        let dir = path.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the state file", dir.display()))?;
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| format!("cannot open {}", lock_path.display()))?;
        let deadline = Instant::now() + wait;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(TryLockError::WouldBlock) => anyhow::bail!(
                    "the state file lock {} is held by another process after {}s",
                    lock_path.display(),
                    wait.as_secs()
                ),
                Err(TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
                }
            }
        }
        let sf = StateFile {
            path: path.to_path_buf(),
            _lock: lock,
        };
        let loaded = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Loaded::Fresh,
            Err(e) => Loaded::Corrupt {
                reason: format!("cannot read it: {e}"),
                moved_to: None,
            },
            Ok(bytes) => match serde_json::from_slice::<RotationState>(&bytes) {
                Ok(s) if s.version == VERSION => Loaded::Read(s),
                Ok(s) => Loaded::Corrupt {
                    reason: format!("unknown version {}", s.version),
                    moved_to: sf.move_aside(read_only),
                },
                Err(e) => Loaded::Corrupt {
                    reason: e.to_string(),
                    moved_to: sf.move_aside(read_only),
                },
            },
        };
        Ok((sf, loaded))
    }

    /// Keeps the bad file for inspection, out of the way.
    fn move_aside(&self, read_only: bool) -> Option<PathBuf> {
        if read_only {
            return None;
        }
        let to = PathBuf::from(format!(
            "{}.corrupt-{}",
            self.path.display(),
            Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&self.path, &to).ok().map(|_| to)
    }

    /// Writes the state: temp file, fsync, rename over the old one, fsync the directory.
    pub fn save(&self, state: &RotationState) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        let tmp = PathBuf::from(format!(
            "{}.tmp-{}",
            self.path.display(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            super::fsops::fsync_dir(dir)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::anyhow!("cannot write the state file {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let (sf, loaded) = StateFile::open(&path, Duration::from_secs(1), false).unwrap();
        assert!(matches!(loaded, Loaded::Fresh));
        let mut st = RotationState::default();
        st.files.insert(
            "/var/log/a.log".into(),
            FileState {
                last_rotated: Utc::now(),
                last_archive: Some("a.log-x.gz".into()),
                last_bytes: Some(5),
            },
        );
        sf.save(&st).unwrap();
        drop(sf);
        let (sf, loaded) = StateFile::open(&path, Duration::from_secs(1), false).unwrap();
        assert!(matches!(loaded, Loaded::Read(ref s) if *s == st));
        drop(sf);
        std::fs::write(&path, b"{\"version\": 1, \"files\": {").unwrap();
        let (_sf, loaded) = StateFile::open(&path, Duration::from_secs(1), false).unwrap();
        match loaded {
            Loaded::Corrupt { moved_to, .. } => {
                let moved = moved_to.unwrap();
                assert!(moved.exists() && !path.exists());
            }
            _ => panic!("corrupt state not reported"),
        }
    }

    #[test]
    fn a_held_lock_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let _held = StateFile::open(&path, Duration::from_secs(1), false).unwrap();
        let started = Instant::now();
        let err = StateFile::open(&path, Duration::from_millis(300), false)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("held by another process"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
