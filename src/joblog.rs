//! The job log: `[YYYY-MM-DD HH:MM:SS] message` lines appended to `<log_dir>/<job>.log`
//! (the old scripts' shape, so existing log watchers keep working) and echoed to stderr.
//!
//! Implemented as a `log` backend so every module just uses `log::info!` etc.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct JobLogger {
    file: Mutex<Option<File>>,
    stderr_level: LevelFilter,
}

static LOGGER: std::sync::OnceLock<JobLogger> = std::sync::OnceLock::new();

fn stamp() -> String {
    chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Log for JobLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= Level::Debug
    }

    fn log(&self, record: &Record) {
        if !record.target().starts_with("tuneton_ops") {
            return;
        }
        let msg = record.args().to_string();
        let prefix = match record.level() {
            Level::Error => "ERROR: ",
            Level::Warn => "WARNING: ",
            _ => "",
        };
        // The file gets info and above whatever the verbosity: it is the record of the run.
        if record.level() <= Level::Info {
            if let Ok(mut guard) = self.file.lock() {
                if let Some(f) = guard.as_mut() {
                    let _ = writeln!(f, "[{}] {prefix}{msg}", stamp());
                }
            }
        }
        if record.level() <= self.stderr_level {
            crate::progress::suspend(|| eprintln!("{prefix}{msg}"));
        }
    }

    fn flush(&self) {
        if let Ok(mut guard) = self.file.lock() {
            if let Some(f) = guard.as_mut() {
                let _ = f.flush();
            }
        }
    }
}

/// Installs the logger. stderr gets warnings and errors only with `quiet`,
/// info by default, debug with `-v`.
pub fn init(quiet: bool, verbose: u8) {
    let stderr_level = if quiet {
        LevelFilter::Error
    } else if verbose > 0 {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let logger = LOGGER.get_or_init(|| JobLogger {
        file: Mutex::new(None),
        stderr_level,
    });
    let _ = log::set_logger(logger);
    log::set_max_level(LevelFilter::Debug);
}

/// Starts appending to `<log_dir>/<job>.log`. Returns the path.
pub fn open_job_log(log_dir: &Path, job: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(log_dir)?;
    let path = log_dir.join(format!("{job}.log"));
    let file = OpenOptions::new().create(true).append(true).open(&path)?;
    if let Some(l) = LOGGER.get() {
        *l.file.lock().unwrap() = Some(file);
    }
    Ok(path)
}
