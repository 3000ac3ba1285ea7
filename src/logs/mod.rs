//! Log sets as configured in `[logs]`, resolved for this host: which live
//! files they match, where their archives go, and which archives on disk
//! belong to them (by the exact naming pattern of the set's files).

pub mod compress;
pub mod fsops;
pub mod glob;
pub mod holders;
pub mod naming;
pub mod rotate;
pub mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Compression, LogSetConfig, ReopenMode};
use glob::PathPattern;
use naming::ArchiveName;

/// One `[[logs.sets]]` entry, resolved (validation has already passed).
#[derive(Debug, Clone)]
pub struct LogSet {
    /// Position in `logs.sets`, for messages naming the key.
    pub index: usize,
    pub name: String,
    pub patterns: Vec<PathPattern>,
    pub max_size: u64,
    pub max_age: Option<Duration>,
    pub keep: Option<u32>,
    pub keep_days: Option<u32>,
    pub compression: Compression,
    pub level: Option<i32>,
    pub owner: Option<u32>,
    pub group: Option<u32>,
    pub mode: Option<u32>,
    pub reopen: ReopenMode,
    pub signal_name: String,
    pub signal: libc::c_int,
    pub pid_file: Option<PathBuf>,
    pub command: Option<String>,
    pub command_timeout: Duration,
    pub reopen_timeout: Duration,
    archive_dir: PathBuf,
}

/// An archive file found on disk.
#[derive(Debug, Clone)]
pub struct FoundArchive {
    pub path: PathBuf,
    pub name: ArchiveName,
    pub size: u64,
}

impl LogSet {
    pub fn from_config(index: usize, c: &LogSetConfig, log_dir: &Path) -> LogSet {
        let signal = crate::config::reopen_signal(&c.signal).unwrap_or(libc::SIGHUP);
        LogSet {
            index,
            name: c.name.clone(),
            patterns: c
                .paths
                .iter()
                .map(|p| PathPattern::new(p, log_dir))
                .collect(),
            max_size: c.max_size.bytes().unwrap_or(u64::MAX),
            max_age: c
                .max_age_days
                .map(|d| Duration::from_secs(u64::from(d) * 86_400)),
            keep: c.keep,
            keep_days: c.keep_days,
            compression: c.compress,
            level: c.compress_level,
            owner: c.owner.as_deref().and_then(fsops::lookup_user),
            group: c.group.as_deref().and_then(fsops::lookup_group),
            mode: c
                .mode
                .as_deref()
                .and_then(|m| crate::config::parse_mode(m).ok()),
            reopen: c.reopen,
            signal_name: c
                .signal
                .trim()
                .to_ascii_uppercase()
                .trim_start_matches("SIG")
                .to_string(),
            signal,
            pid_file: c.pid_file.clone(),
            command: c.command.clone(),
            command_timeout: Duration::from_secs(c.command_timeout_secs),
            reopen_timeout: Duration::from_secs(c.reopen_timeout_secs),
            archive_dir: c.archive_dir.clone(),
        }
    }

    /// The config key prefix, e.g. `logs.sets[0]`.
    pub fn key(&self) -> String {
        format!("logs.sets[{}]", self.index)
    }

    /// Where the archives of logs in `log_dir` go.
    pub fn archive_dir_for(&self, log_dir: &Path) -> PathBuf {
        if self.archive_dir.is_absolute() {
            self.archive_dir.clone()
        } else if self.archive_dir == Path::new(".") {
            log_dir.to_path_buf()
        } else {
            log_dir.join(&self.archive_dir)
        }
    }

    /// Whether the log `log_dir/name` is one of this set's files.
    pub fn owns(&self, log_dir: &Path, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches_in(log_dir, name))
    }

    /// The configured paths, made absolute, for messages.
    pub fn patterns_text(&self) -> String {
        self.patterns
            .iter()
            .map(|p| p.display())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The live files the set matches now: regular files only, never one of
    /// our archives or temporary files. Also returns a note per skipped match.
    pub fn live_files(&self) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        for p in &self.patterns {
            for path in p.expand() {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if ArchiveName::parse(&name, false).is_some()
                    || name.starts_with(".rotate-logs.tmp-")
                    || name.contains(".rotate-new-")
                {
                    continue;
                }
                match std::fs::symlink_metadata(&path) {
                    Ok(m) if m.file_type().is_file() => {
                        if !files.contains(&path) {
                            files.push(path)
                        }
                    }
                    Ok(m) if m.file_type().is_symlink() => {
                        if p.is_literal() {
                            skipped.push((
                                path,
                                "is a symbolic link; rotate the file it points to instead".into(),
                            ))
                        }
                    }
                    Ok(_) => {
                        if p.is_literal() {
                            skipped.push((path, "is not a regular file".into()))
                        }
                    }
                    Err(_) => {}
                }
            }
        }
        files.sort();
        (files, skipped)
    }

    /// (log directory, archive directory) pairs of every directory the set's
    /// patterns can match files in.
    pub fn archive_locations(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
        for p in &self.patterns {
            for dir in p.expand_dirs() {
                let pair = (dir.clone(), self.archive_dir_for(&dir));
                if !out.contains(&pair) {
                    out.push(pair);
                }
            }
        }
        out
    }
}

/// The archives in `archive_dir` of logs in `log_dir` (old-script names are
/// recognised only in a separate archive directory, where no live log lives).
pub fn list_archives(log_dir: &Path, archive_dir: &Path) -> Vec<FoundArchive> {
    let legacy_ok = archive_dir != log_dir;
    let Ok(entries) = std::fs::read_dir(archive_dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file_name = e.file_name().to_string_lossy().into_owned();
        let Some(name) = ArchiveName::parse(&file_name, legacy_ok) else {
            continue;
        };
        let Ok(meta) = e.metadata() else { continue };
        if !meta.file_type().is_file() {
            continue;
        }
        out.push(FoundArchive {
            path: e.path(),
            name,
            size: meta.len(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogSetConfig;

    #[test]
    fn archives_belong_to_the_set_whose_pattern_names_their_log() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path();
        let arch = logs.join("archive");
        std::fs::create_dir(&arch).unwrap();
        for f in [
            "application.log",
            "archive/application.log-20200101T000000.000Z-001.gz",
            "archive/application_20200101.log.gz",
            "archive/error.log-20200101T000000.000Z-001.gz",
            "archive/notes.txt",
        ] {
            std::fs::write(logs.join(f), b"x").unwrap();
        }
        let cfg = LogSetConfig {
            paths: vec!["application.log".into()],
            ..LogSetConfig::default()
        };
        let set = LogSet::from_config(0, &cfg, logs);
        assert_eq!(
            set.archive_locations(),
            vec![(logs.to_path_buf(), arch.clone())]
        );
        let mine: Vec<String> = list_archives(logs, &arch)
            .into_iter()
            .filter(|a| set.owns(logs, &a.name.live))
            .map(|a| a.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            mine,
            vec![
                "application.log-20200101T000000.000Z-001.gz",
                "application_20200101.log.gz"
            ]
        );
        let (live, _) = set.live_files();
        assert_eq!(live, vec![logs.join("application.log")]);
    }

    #[test]
    fn archives_beside_the_log_are_never_live_files() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.log", "a.log-20200101T000000.000Z-001", "b_20200101.log"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let cfg = LogSetConfig {
            paths: vec!["*".into()],
            archive_dir: ".".into(),
            ..LogSetConfig::default()
        };
        let set = LogSet::from_config(0, &cfg, dir.path());
        let (live, _) = set.live_files();
        assert_eq!(
            live,
            vec![dir.path().join("a.log"), dir.path().join("b_20200101.log")]
        );
        // Beside the log, an old-script-like name is a live file, not an archive.
        let found = list_archives(dir.path(), dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name.live, "a.log");
    }
}
