//! Per-job lock: an flock on `<run_dir>/<job>.lock` held for the whole run.
//!
//! A second concurrent run fails at once (exit 3) naming the holder's PID.
//! The kernel drops the lock when the process dies, so a crash never leaves
//! a stale lock behind; the PID inside is informational only.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::Result;

use crate::exit::could_not_start;

/// Another run of the same job holds the lock: exit 3, and not worth an alert
/// (a timer firing during a manual run is not a failure).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LockHeld(pub String);

#[derive(Debug)]
pub struct JobLock {
    _file: File,
}

impl JobLock {
    pub fn acquire(run_dir: &Path, job: &str) -> Result<JobLock> {
        std::fs::create_dir_all(run_dir).map_err(|e| {
            could_not_start(format!(
                "cannot create run directory {} (paths.run_dir): {e}",
                run_dir.display()
            ))
        })?;
        let path = run_dir.join(format!("{job}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| {
                could_not_start(format!("cannot open lock file {}: {e}", path.display()))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let who = if holder.is_empty() {
                    "unknown pid".to_string()
                } else {
                    format!("pid {holder}")
                };
                return Err(anyhow::Error::new(LockHeld(format!(
                    "another {job} run is in progress ({who}, lock {}); not starting a second one",
                    path.display()
                ))));
            }
            Err(TryLockError::Error(e)) => {
                return Err(could_not_start(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )));
            }
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(JobLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder_pid() {
        let dir = tempfile::tempdir().unwrap();
        let _first = JobLock::acquire(dir.path(), "backup").unwrap();
        let err = JobLock::acquire(dir.path(), "backup").unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert_eq!(
            crate::exit::exit_code_for(&err),
            crate::exit::ExitCode::CouldNotStart
        );
        // A different job is not blocked.
        JobLock::acquire(dir.path(), "verify-backup").unwrap();
    }
}
