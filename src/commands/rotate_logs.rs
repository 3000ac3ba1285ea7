//! `rotate-logs`: rotates the configured log sets without losing a line,
//! compresses the generations in parallel once no process writes to them, and
//! applies retention to each set's own archives. Replaces the "Log Rotation
//! and Archiving" script (`mv` + `touch` at 100 MB, `gzip`, `find -mtime +90
//! -delete`).
//!
//! Per set: rename modes (`signal`, `command`, `none`) give the live file's
//! inode an archive name with link(2) (never replacing one) and rename a new,
//! empty file with the right owner and mode over the live name, so the name
//! always exists; then the writer is told to reopen, and its old generation
//! is compressed only once /proc shows no process holding it open for
//! writing. `copytruncate` archives the block-aligned prefix of the live file
//! and removes it in place with FALLOC_FL_COLLAPSE_RANGE, so an O_APPEND
//! writer loses nothing.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::OpenOptions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::json;

use super::Ctx;
use crate::config::{Compression, ReopenMode};
use crate::exit::{could_not_start, ExitCode};
use crate::logs::holders::{self, FileId, Holder};
use crate::logs::naming;
use crate::logs::rotate::{execute, file_name, parent, swap, Job, JobOutcome};
use crate::logs::state::{FileState, Loaded, RotationState, StateFile};
use crate::logs::{fsops, list_archives, FoundArchive, LogSet};
use crate::progress::human_bytes;

#[derive(Debug, Args)]
pub struct RotateLogsArgs {
    /// Rotate every non-empty file now, whatever its size and age
    #[arg(long)]
    pub force: bool,

    /// Only this log set (repeatable; default: every set in [logs])
    #[arg(long = "set", value_name = "NAME")]
    pub sets: Vec<String>,
}

/// What happened to one live log file.
#[derive(Debug)]
struct FileReport {
    set: String,
    path: PathBuf,
    size: u64,
    action: &'static str,
    reason: String,
    archive: Option<PathBuf>,
    /// Bytes moved out of the live file into the archive (uncompressed).
    bytes: u64,
    compressed_bytes: Option<u64>,
    status: ExitCode,
    messages: Vec<String>,
}

impl FileReport {
    fn new(set: &LogSet, path: &Path, size: u64) -> FileReport {
        FileReport {
            set: set.name.clone(),
            path: path.to_path_buf(),
            size,
            action: "skipped",
            reason: String::new(),
            archive: None,
            bytes: 0,
            compressed_bytes: None,
            status: ExitCode::Success,
            messages: Vec::new(),
        }
    }

    fn note(&mut self, status: ExitCode, msg: String) {
        match status {
            ExitCode::Success => log::info!("{}: {msg}", self.path.display()),
            ExitCode::Warning => log::warn!("{}: {msg}", self.path.display()),
            _ => log::error!("{}: {msg}", self.path.display()),
        }
        self.status = self.status.worst(status);
        self.messages.push(msg);
    }

    fn fail(&mut self, msg: String) {
        self.action = "failed";
        self.note(ExitCode::Failed, msg);
    }
}

/// What happened to an archive: compressed, left for later, deleted by retention.
#[derive(Debug)]
struct ArchiveReport {
    set: String,
    path: PathBuf,
    action: &'static str,
    bytes: u64,
    compressed: Option<(PathBuf, u64)>,
    status: ExitCode,
    message: String,
}

impl ArchiveReport {
    fn log(&self) {
        let line = format!("{}: {}", self.path.display(), self.message);
        match self.status {
            ExitCode::Success => log::info!("{line}"),
            ExitCode::Warning => log::warn!("{line}"),
            _ => log::error!("{line}"),
        }
    }
}

#[derive(Default)]
struct Report {
    files: Vec<FileReport>,
    archives: Vec<ArchiveReport>,
    deleted: Vec<ArchiveReport>,
    notes: Vec<(ExitCode, String)>,
}

impl Report {
    fn note(&mut self, status: ExitCode, msg: String) {
        match status {
            ExitCode::Success => log::info!("{msg}"),
            ExitCode::Warning => log::warn!("{msg}"),
            _ => log::error!("{msg}"),
        }
        self.notes.push((status, msg));
    }

    fn worst(&self) -> ExitCode {
        self.files
            .iter()
            .map(|f| f.status)
            .chain(self.archives.iter().map(|a| a.status))
            .chain(self.deleted.iter().map(|a| a.status))
            .chain(self.notes.iter().map(|n| n.0))
            .fold(ExitCode::Success, ExitCode::worst)
    }
}

/// A live file that is due, with what we know of it.
struct Due {
    report: usize,
    path: PathBuf,
    id: FileId,
    meta: std::fs::Metadata,
}

pub fn run(ctx: &Ctx, args: RotateLogsArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let dry = ctx.global.dry_run;
    let all: Vec<LogSet> = cfg
        .logs
        .sets
        .iter()
        .enumerate()
        .map(|(i, s)| LogSet::from_config(i, s, &cfg.paths.log_dir))
        .collect();
    for name in &args.sets {
        if !all.iter().any(|s| &s.name == name) {
            let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
            return Err(could_not_start(format!(
                "rotate-logs --set {name}: no such log set in [logs] (configured: {})",
                names.join(", ")
            )));
        }
    }
    let selected: Vec<&LogSet> = all
        .iter()
        .filter(|s| args.sets.is_empty() || args.sets.contains(&s.name))
        .collect();
    let mut report = Report::default();
    let now = Utc::now();

    let state_path = cfg
        .logs
        .state_file
        .clone()
        .unwrap_or_else(|| cfg.paths.run_dir.join("rotate-logs.state.json"));
    let (state_file, mut state) = open_state(&state_path, dry, &mut report);

    // Our own job log may be one of the rotated files: we reopen it ourselves.
    let own_log = cfg.paths.log_dir.join("rotate-logs.log");
    let mut jobs: Vec<Job> = Vec::new();
    let mut live_paths: HashSet<PathBuf> = HashSet::new();
    let mut rotated_gens: HashMap<PathBuf, usize> = HashMap::new();
    let mut would_rotate: HashSet<(PathBuf, String)> = HashSet::new();
    let mut collapse_ok: HashMap<u64, bool> = HashMap::new();

    for set in &selected {
        let (files, skipped) = set.live_files();
        if files.is_empty() && skipped.is_empty() {
            // A typo in a path would otherwise look like a quiet success forever.
            report.note(
                ExitCode::Warning,
                format!(
                    "log set {:?}: no file matches {} ({}.paths); check the paths",
                    set.name,
                    set.patterns_text(),
                    set.key()
                ),
            );
        }
        for (path, why) in skipped {
            let mut r = FileReport::new(set, &path, 0);
            r.reason = why.clone();
            r.note(ExitCode::Warning, format!("not rotated: {why}"));
            report.files.push(r);
        }
        let mut due: Vec<Due> = Vec::new();
        for path in files {
            live_paths.insert(path.clone());
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // vanished since the listing
            };
            let mut r = FileReport::new(set, &path, meta.len());
            let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            let name = file_name(&path);
            let others: Vec<&str> = all
                .iter()
                .filter(|o| o.index != set.index && o.owns(&dir, &name))
                .map(|o| o.name.as_str())
                .collect();
            if !others.is_empty() {
                r.fail(format!(
                    "matched by log set {:?} and by {}; a file must belong to one set (fix the paths in [logs])",
                    set.name,
                    others.join(", ")
                ));
                report.files.push(r);
                continue;
            }
            match due_reason(set, &path, &meta, args.force, now, &state) {
                Ok(reason) => {
                    r.reason = reason;
                    report.files.push(r);
                    due.push(Due {
                        report: report.files.len() - 1,
                        id: (meta.dev(), meta.ino()),
                        path,
                        meta,
                    });
                }
                Err(reason) => {
                    r.reason = reason;
                    report.files.push(r);
                }
            }
        }
        if due.is_empty() {
            continue;
        }
        match set.reopen {
            ReopenMode::Copytruncate => plan_copytruncate(
                set,
                due,
                dry,
                now,
                &mut report,
                &mut jobs,
                &mut collapse_ok,
                &mut would_rotate,
            ),
            _ => rotate_renaming(
                set,
                due,
                dry,
                now,
                &own_log,
                &mut report,
                &mut state,
                &mut rotated_gens,
                &mut would_rotate,
            ),
        }
    }

    // Generations waiting for compression: this run's and earlier runs' (left while still open).
    queue_generations(&selected, dry, &mut report, &mut jobs, &rotated_gens);

    if !dry {
        run_jobs(
            jobs,
            cfg.logs.compress_threads as usize,
            &mut report,
            &mut state,
        );
    }

    for set in &selected {
        apply_retention(set, &all, dry, now, &live_paths, &would_rotate, &mut report);
    }

    if let Some(sf) = &state_file {
        if !dry {
            rebuild_missing(&mut state, &selected, &live_paths);
            if let Err(e) = sf.save(&state) {
                report.note(ExitCode::Warning, format!("{e:#}"));
            }
        }
    }

    let code = report.worst();
    let (json, text) = render(&report, code, dry);
    // Quiet success for schedulers: under --quiet the report is printed only when something needs attention.
    if ctx.global.json || !ctx.global.quiet || code != ExitCode::Success {
        ctx.emit(&json, &text);
    }
    Ok(code)
}

/// Opens and locks the state file; every problem is reported and rotation goes on.
fn open_state(path: &Path, dry: bool, report: &mut Report) -> (Option<StateFile>, RotationState) {
    match StateFile::open(path, Duration::from_secs(30), dry) {
        Ok((sf, Loaded::Read(s))) => (Some(sf), s),
        Ok((sf, Loaded::Fresh)) => (Some(sf), RotationState::default()),
        Ok((sf, Loaded::Corrupt { reason, moved_to })) => {
            let moved = moved_to
                .map(|p| format!("; moved to {}", p.display()))
                .unwrap_or_default();
            report.note(
                ExitCode::Warning,
                format!(
                    "state file {} is corrupt ({reason}){moved}; rebuilt from the archives' names",
                    path.display()
                ),
            );
            (Some(sf), RotationState::default())
        }
        Err(e) => {
            report.note(
                ExitCode::Warning,
                format!("{e:#}; rotating without the state file (logs.state_file)"),
            );
            (None, RotationState::default())
        }
    }
}

/// Why a file is due (Ok) or not (Err).
fn due_reason(
    set: &LogSet,
    path: &Path,
    meta: &std::fs::Metadata,
    force: bool,
    now: DateTime<Utc>,
    state: &RotationState,
) -> std::result::Result<String, String> {
    let size = meta.len();
    if size == 0 {
        return Err("empty".into());
    }
    if force {
        return Ok("--force".into());
    }
    if size > set.max_size {
        return Ok(format!(
            "{} is over max_size {}",
            human_bytes(size),
            human_bytes(set.max_size)
        ));
    }
    if let Some(age) = set.max_age {
        if let Some(since) = generation_start(set, path, state) {
            let elapsed = (now - since).to_std().unwrap_or_default();
            if elapsed >= age {
                return Ok(format!(
                    "its current generation is {} days old (max_age_days {})",
                    elapsed.as_secs() / 86_400,
                    age.as_secs() / 86_400
                ));
            }
        }
    }
    Err(format!(
        "{} is within max_size {}",
        human_bytes(size),
        human_bytes(set.max_size)
    ))
}

/// When the live file's current generation began: the last rotation (state,
/// else the newest archive's name), else the file's birth time.
fn generation_start(set: &LogSet, path: &Path, state: &RotationState) -> Option<DateTime<Utc>> {
    if let Some(s) = state.files.get(&path.display().to_string()) {
        return Some(s.last_rotated);
    }
    if let Some(a) = newest_archive(set, path) {
        return Some(a.name.stamp);
    }
    fsops::birth_time(path).and_then(|t| DateTime::from_timestamp(t, 0))
}

fn archives_of(set: &LogSet, path: &Path) -> Vec<FoundArchive> {
    let dir = parent(path);
    let name = file_name(path);
    list_archives(&dir, &set.archive_dir_for(&dir))
        .into_iter()
        .filter(|a| a.name.live == name)
        .collect()
}

fn newest_archive(set: &LogSet, path: &Path) -> Option<FoundArchive> {
    archives_of(set, path)
        .into_iter()
        .max_by_key(|a| a.name.order())
}

/// Creates the archive directory like its log directory (owner and mode).
fn ensure_archive_dir(log_dir: &Path, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Ok(m) = std::fs::metadata(log_dir) {
        let _ = std::fs::set_permissions(
            dir,
            std::fs::Permissions::from_mode(m.permissions().mode() & 0o7777),
        );
        let _ = std::os::unix::fs::chown(dir, Some(m.uid()), Some(m.gid()));
    }
    Ok(())
}

/// The PID in the set's pid file, checked to be a live process.
fn read_pid(set: &LogSet) -> std::result::Result<i32, String> {
    let Some(p) = &set.pid_file else {
        return Err(format!("{}.pid_file is not set", set.key()));
    };
    let text = std::fs::read_to_string(p)
        .map_err(|e| format!("cannot read pid file {}: {e}", p.display()))?;
    let pid: i32 = text
        .split_whitespace()
        .next()
        .and_then(|t| t.parse().ok())
        .filter(|n| *n > 1)
        .ok_or_else(|| format!("pid file {} does not hold a PID", p.display()))?;
    if !holders::alive(pid) {
        return Err(format!(
            "pid {pid} from {} is not running (a stale pid file?)",
            p.display()
        ));
    }
    Ok(pid)
}

fn describe(hs: &[&Holder]) -> String {
    let mut v: Vec<String> = hs.iter().map(|h| h.describe()).collect();
    v.dedup();
    v.join(", ")
}

/// Rename modes: swap each due file for a new empty one, tell the writer once
/// for the whole set, and wait (with a deadline) until the old generations are
/// no longer open for writing.
#[allow(clippy::too_many_arguments)]
fn rotate_renaming(
    set: &LogSet,
    due: Vec<Due>,
    dry: bool,
    now: DateTime<Utc>,
    own_log: &Path,
    report: &mut Report,
    state: &mut RotationState,
    rotated_gens: &mut HashMap<PathBuf, usize>,
    would_rotate: &mut HashSet<(PathBuf, String)>,
) {
    let ids: HashSet<FileId> = due.iter().map(|d| d.id).collect();
    let held = holders::scan(&ids);
    let pid = if set.reopen == ReopenMode::Signal {
        Some(read_pid(set))
    } else {
        None
    };
    // (report index, generation path, old inode)
    let mut rotated: Vec<(usize, PathBuf, FileId)> = Vec::new();
    let mut need_reopen = false;
    for d in due {
        let r = &mut report.files[d.report];
        let writers: Vec<&Holder> = held
            .get(&d.id)
            .map(|v| v.iter().filter(|h| h.writes()).collect())
            .unwrap_or_default();
        match set.reopen {
            ReopenMode::None if !writers.is_empty() => {
                r.fail(format!(
                    "not rotated: {} has it open for writing and {}.reopen = \"none\"; renaming it would leave that process \
                     writing into the archive (the old script's bug). Set reopen to \"signal\", \"command\" or \"copytruncate\"",
                    describe(&writers),
                    set.key()
                ));
                continue;
            }
            ReopenMode::Signal if !writers.is_empty() => match &pid {
                Some(Err(e)) => {
                    r.fail(format!(
                        "not rotated: {} has it open for writing but it cannot be told to reopen: {e}",
                        describe(&writers)
                    ));
                    continue;
                }
                Some(Ok(p))
                    if !writers
                        .iter()
                        .any(|w| holders::is_self_or_ancestor(*p, w.pid)) =>
                {
                    r.fail(format!(
                        "not rotated: it is open for writing by {}, which is neither pid {p} from {} nor a child of it (a stale pid file?)",
                        describe(&writers),
                        set.pid_file.as_deref().unwrap_or(Path::new("?")).display()
                    ));
                    continue;
                }
                _ => need_reopen = true,
            },
            ReopenMode::Command => need_reopen = true,
            _ => {}
        }
        let log_dir = parent(&d.path);
        let adir = set.archive_dir_for(&log_dir);
        let live = file_name(&d.path);
        let existing = archives_of(set, &d.path);
        let name = naming::next_name(&live, now, existing.iter().map(|a| &a.name));
        if dry {
            r.action = "would rotate";
            r.archive = Some(adir.join(name.with_compression(set.compression).file_name()));
            r.bytes = d.meta.len();
            would_rotate.insert((adir.clone(), live.clone()));
            continue;
        }
        if let Err(e) = ensure_archive_dir(&log_dir, &adir) {
            r.fail(format!("not rotated: {e:#}"));
            continue;
        }
        let uid = set.owner.unwrap_or(d.meta.uid());
        let gid = set.group.unwrap_or(d.meta.gid());
        let mode = set.mode.unwrap_or(d.meta.mode() & 0o7777);
        match swap(&d.path, &adir, &name, uid, gid, mode) {
            Ok(gen) => {
                let bytes = std::fs::metadata(&gen).map(|m| m.len()).unwrap_or(0);
                r.action = "rotated";
                r.bytes = bytes;
                r.archive = Some(gen.clone());
                log::info!(
                    "{}: rotated ({}) -> {}",
                    d.path.display(),
                    r.reason,
                    gen.display()
                );
                state.files.insert(
                    d.path.display().to_string(),
                    FileState {
                        last_rotated: now,
                        last_archive: Some(file_name(&gen)),
                        last_bytes: Some(bytes),
                    },
                );
                if d.path == own_log {
                    if let Some(dir) = own_log.parent() {
                        let _ = crate::joblog::open_job_log(dir, "rotate-logs");
                    }
                }
                rotated.push((d.report, gen, d.id));
            }
            Err(e) => r.fail(format!("not rotated: {e:#}")),
        }
    }
    if dry || rotated.is_empty() {
        if dry && need_reopen {
            if let Some(f) = report.files.iter_mut().rev().find(|f| f.set == set.name) {
                f.messages.push(match set.reopen {
                    ReopenMode::Signal => {
                        format!("would send SIG{} to the writer", set.signal_name)
                    }
                    _ => format!("would run {:?}", set.command.as_deref().unwrap_or("")),
                });
            }
        }
        return;
    }
    // Tell the writer once for the whole set.
    let told = match set.reopen {
        ReopenMode::Signal if need_reopen => match &pid {
            Some(Ok(p)) => {
                // SAFETY: kill(2) on a PID we checked is alive and holds (or is the parent of a holder of) the log.
                if unsafe { libc::kill(*p, set.signal) } == 0 {
                    log::info!(
                        "sent SIG{} to pid {p} ({})",
                        set.signal_name,
                        holders::comm(*p)
                    );
                    Ok(())
                } else {
                    Err(format!(
                        "cannot send SIG{} to pid {p}: {}",
                        set.signal_name,
                        std::io::Error::last_os_error()
                    ))
                }
            }
            _ => Ok(()),
        },
        ReopenMode::Command => run_reopen_command(set, &rotated, report),
        _ => Ok(()),
    };
    if let Err(e) = told {
        for (i, _, _) in &rotated {
            report.files[*i].note(
                ExitCode::Failed,
                format!("{e}; the writer may still be writing into the archived generation"),
            );
        }
    }
    // Wait for the writers to let go of the old generations.
    let deadline = Instant::now() + set.reopen_timeout;
    let mut pending: HashSet<FileId> = rotated.iter().map(|r| r.2).collect();
    let mut pause = Duration::from_millis(20);
    loop {
        let still = holders::scan(&pending);
        pending.retain(|id| still.get(id).is_some_and(|v| v.iter().any(|h| h.writes())));
        if pending.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(250));
    }
    for (i, gen, _) in rotated {
        rotated_gens.insert(gen, i);
    }
}

/// `reopen = "command"`: runs once per set after the renames, with a deadline.
fn run_reopen_command(
    set: &LogSet,
    rotated: &[(usize, PathBuf, FileId)],
    report: &Report,
) -> std::result::Result<(), String> {
    let command = set.command.as_deref().unwrap_or("");
    let files: Vec<String> = rotated
        .iter()
        .map(|(i, _, _)| report.files[*i].path.display().to_string())
        .collect();
    let gens: Vec<String> = rotated
        .iter()
        .map(|(_, g, _)| g.display().to_string())
        .collect();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .env("TUNETON_LOG_SET", &set.name)
        .env("TUNETON_ROTATED_FILES", files.join("\n"))
        .env("TUNETON_ROTATED_ARCHIVES", gens.join("\n"));
    match crate::process::output_with_deadline(&mut cmd, set.command_timeout, "the reopen command")
    {
        Ok(out) if out.status.success() => {
            log::info!("ran the reopen command of log set {}", set.name);
            Ok(())
        }
        Ok(out) => Err(format!(
            "the reopen command ({}.command) failed ({}): {}",
            set.key(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("the reopen command ({}.command): {e:#}", set.key())),
    }
}

/// copytruncate: refuse writers without O_APPEND, then queue the prefix
/// archive + collapse (or, without collapse support, copy + truncate).
#[allow(clippy::too_many_arguments)]
fn plan_copytruncate(
    set: &LogSet,
    due: Vec<Due>,
    dry: bool,
    now: DateTime<Utc>,
    report: &mut Report,
    jobs: &mut Vec<Job>,
    collapse_ok: &mut HashMap<u64, bool>,
    would_rotate: &mut HashSet<(PathBuf, String)>,
) {
    let ids: HashSet<FileId> = due.iter().map(|d| d.id).collect();
    let held = holders::scan(&ids);
    for d in due {
        let r = &mut report.files[d.report];
        let writers: Vec<&Holder> = held
            .get(&d.id)
            .map(|v| v.iter().filter(|h| h.writes()).collect())
            .unwrap_or_default();
        let non_append: Vec<&&Holder> = writers.iter().filter(|h| !h.appends()).collect();
        if let Some(h) = non_append.first() {
            r.action = "skipped";
            r.note(
                ExitCode::Warning,
                format!(
                    "not rotated: {} writes to it without O_APPEND (fd {} flags 0{:o}); after a truncation its next write \
                     would land at its old offset and leave a sparse file full of NUL bytes. Make it open the log with \
                     O_APPEND, or use {}.reopen = \"signal\" or \"command\"",
                    h.describe(),
                    h.fd,
                    h.flags,
                    set.key()
                ),
            );
            continue;
        }
        let log_dir = parent(&d.path);
        let adir = set.archive_dir_for(&log_dir);
        let live = file_name(&d.path);
        let file = match OpenOptions::new().read(true).write(true).open(&d.path) {
            Ok(f) => f,
            Err(e) => {
                r.fail(format!("cannot open it for copytruncate: {e}"));
                continue;
            }
        };
        let dev = d.meta.dev();
        let supported = match collapse_ok.get(&dev) {
            Some(s) => *s,
            None => {
                let s = fsops::probe_collapse(&log_dir).unwrap_or(false);
                collapse_ok.insert(dev, s);
                s
            }
        };
        let existing = archives_of(set, &d.path);
        let name = naming::next_name(&live, now, existing.iter().map(|a| &a.name));
        let encoding = (set.compression, set.level);
        if !supported {
            let fs = fsops::filesystem_name(&file);
            r.note(
                ExitCode::Warning,
                format!(
                    "{fs} cannot remove a file's prefix in place (FALLOC_FL_COLLAPSE_RANGE): falling back to copy, then \
                     truncate; a line written in the instant between the last copy and the truncation is lost. Put the \
                     log on ext4 or XFS, or use {}.reopen = \"signal\" or \"command\"",
                    set.key()
                ),
            );
            if dry {
                r.action = "would copytruncate";
                r.bytes = d.meta.len();
                r.archive = Some(adir.join(name.with_compression(set.compression).file_name()));
                would_rotate.insert((adir, live));
                continue;
            }
            if let Err(e) = ensure_archive_dir(&log_dir, &adir) {
                r.fail(format!("not rotated: {e:#}"));
                continue;
            }
            jobs.push(Job::CopyTruncate {
                file,
                dir: adir,
                name,
                encoding,
                report: d.report,
                set: set.name.clone(),
            });
            continue;
        }
        let bs = fsops::block_size(&file).unwrap_or(4096);
        let size = d.meta.len();
        let mut len = size / bs * bs;
        if len == size {
            len = len.saturating_sub(bs);
        }
        if len == 0 {
            r.action = "skipped";
            r.reason = format!(
                "{} is not more than one filesystem block ({bs} bytes)",
                human_bytes(size)
            );
            continue;
        }
        if dry {
            r.action = "would copytruncate";
            r.bytes = len;
            r.archive = Some(adir.join(name.with_compression(set.compression).file_name()));
            r.messages.push(format!(
                "would archive the first {len} bytes (block-aligned) and collapse them out of the file; the last {} stay live",
                size - len
            ));
            would_rotate.insert((adir, live));
            continue;
        }
        if let Err(e) = ensure_archive_dir(&log_dir, &adir) {
            r.fail(format!("not rotated: {e:#}"));
            continue;
        }
        jobs.push(Job::Collapse {
            live: d.path.clone(),
            file,
            len,
            dir: adir,
            name,
            encoding,
            report: d.report,
        });
    }
}

/// Every uncompressed generation of the selected sets: compressed when no
/// process writes to it any more, otherwise left for a later run (warning).
fn queue_generations(
    sets: &[&LogSet],
    dry: bool,
    report: &mut Report,
    jobs: &mut Vec<Job>,
    rotated_gens: &HashMap<PathBuf, usize>,
) {
    let mut found: Vec<(&LogSet, FoundArchive)> = Vec::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    for set in sets {
        if set.compression == Compression::None {
            continue;
        }
        for (log_dir, adir) in set.archive_locations() {
            for a in list_archives(&log_dir, &adir) {
                if a.name.legacy
                    || a.name.compression.is_some()
                    || !set.owns(&log_dir, &a.name.live)
                    || !seen.insert(a.path.clone())
                {
                    continue;
                }
                found.push((set, a));
            }
        }
    }
    let ids: HashSet<FileId> = found
        .iter()
        .filter_map(|(_, a)| fsops::file_id(&a.path).ok())
        .collect();
    let held = holders::scan(&ids);
    for (set, a) in found {
        let writers: Vec<&Holder> = fsops::file_id(&a.path)
            .ok()
            .and_then(|id| held.get(&id))
            .map(|v| v.iter().filter(|h| h.writes()).collect())
            .unwrap_or_default();
        let from_now = rotated_gens.get(&a.path).copied();
        if !writers.is_empty() {
            let msg = match from_now {
                Some(_) => format!(
                    "left uncompressed: {} still had it open for writing {}s after the rotation (reopen_timeout_secs); \
                     a later run compresses it once it is closed",
                    describe(&writers),
                    set.reopen_timeout.as_secs()
                ),
                None => format!(
                    "left uncompressed: still open for writing by {}; a later run compresses it once it is closed",
                    describe(&writers)
                ),
            };
            match from_now {
                Some(i) => report.files[i].note(ExitCode::Warning, msg),
                None => {
                    let r = ArchiveReport {
                        set: set.name.clone(),
                        path: a.path.clone(),
                        action: "left uncompressed",
                        bytes: a.size,
                        compressed: None,
                        status: ExitCode::Warning,
                        message: msg,
                    };
                    r.log();
                    report.archives.push(r);
                }
            }
            continue;
        }
        if dry {
            report.archives.push(ArchiveReport {
                set: set.name.clone(),
                path: a.path.clone(),
                action: "would compress",
                bytes: a.size,
                compressed: None,
                status: ExitCode::Success,
                message: String::new(),
            });
            continue;
        }
        jobs.push(Job::Generation {
            dir: parent(&a.path),
            path: a.path,
            name: a.name,
            encoding: (set.compression, set.level),
            report: from_now,
            set: set.name.clone(),
        });
    }
}

/// Runs the jobs on `threads` threads, biggest first, and applies the outcomes.
fn run_jobs(mut jobs: Vec<Job>, threads: usize, report: &mut Report, state: &mut RotationState) {
    if jobs.is_empty() {
        return;
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.weight()));
    let n = jobs.len();
    let queue: Mutex<VecDeque<(usize, Job)>> = Mutex::new(jobs.into_iter().enumerate().collect());
    let results: Mutex<Vec<Option<(JobMeta, JobOutcome)>>> =
        Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, n) {
            s.spawn(|| loop {
                let Some((i, job)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let meta = JobMeta::of(&job);
                let outcome = execute(job);
                results.lock().unwrap()[i] = Some((meta, outcome));
            });
        }
    });
    for (meta, out) in results.into_inner().unwrap().into_iter().flatten() {
        match meta.report {
            Some(i) => {
                let r = &mut report.files[i];
                r.bytes = r.bytes.max(out.bytes_in);
                if let Some((p, b)) = &out.archive {
                    r.archive = Some(p.clone());
                    r.compressed_bytes = Some(*b);
                    if meta.kind == "generation" {
                        if let Some(s) = state.files.get_mut(&r.path.display().to_string()) {
                            s.last_archive = Some(file_name(p));
                        }
                    } else {
                        r.action = "copytruncated";
                        log::info!(
                            "{}: copytruncated ({}) -> {} ({} -> {})",
                            r.path.display(),
                            r.reason,
                            p.display(),
                            human_bytes(out.bytes_in),
                            human_bytes(*b)
                        );
                        state.files.insert(
                            r.path.display().to_string(),
                            FileState {
                                last_rotated: Utc::now(),
                                last_archive: Some(file_name(p)),
                                last_bytes: Some(out.bytes_in),
                            },
                        );
                    }
                } else if let Some(g) = &out.generation {
                    r.action = "copytruncated";
                    r.archive = Some(g.clone());
                } else if meta.kind != "generation" {
                    r.action = "failed";
                }
                if !out.message.is_empty() || out.status != ExitCode::Success {
                    r.note(out.status, out.message);
                }
            }
            None => {
                let r = ArchiveReport {
                    set: meta.set,
                    path: meta.path,
                    action: if out.archive.is_some() {
                        "compressed"
                    } else if out.status == ExitCode::Failed {
                        "failed"
                    } else {
                        "left uncompressed"
                    },
                    bytes: out.bytes_in,
                    compressed: out.archive.clone(),
                    status: out.status,
                    message: if out.message.is_empty() {
                        out.archive
                            .as_ref()
                            .map(|(p, b)| {
                                format!(
                                    "compressed to {} ({} -> {})",
                                    p.display(),
                                    human_bytes(out.bytes_in),
                                    human_bytes(*b)
                                )
                            })
                            .unwrap_or_default()
                    } else {
                        out.message
                    },
                };
                r.log();
                report.archives.push(r);
            }
        }
    }
}

/// What a job was about, kept for applying its outcome.
struct JobMeta {
    kind: &'static str,
    report: Option<usize>,
    set: String,
    path: PathBuf,
}

impl JobMeta {
    fn of(job: &Job) -> JobMeta {
        match job {
            Job::Generation {
                report, set, path, ..
            } => JobMeta {
                kind: "generation",
                report: *report,
                set: set.clone(),
                path: path.clone(),
            },
            Job::Collapse { report, live, .. } => JobMeta {
                kind: "collapse",
                report: Some(*report),
                set: String::new(),
                path: live.clone(),
            },
            Job::CopyTruncate { report, set, .. } => JobMeta {
                kind: "copytruncate",
                report: Some(*report),
                set: set.clone(),
                path: PathBuf::new(),
            },
        }
    }
}

/// Retention for one set: per log, keep the newest `keep` archives and none
/// older than `keep_days` (by the time in their name). Only archives whose
/// name is exactly that of one of this set's logs are considered, never one
/// another set could also claim, never a live file, never one still open.
fn apply_retention(
    set: &LogSet,
    all: &[LogSet],
    dry: bool,
    now: DateTime<Utc>,
    live_paths: &HashSet<PathBuf>,
    would_rotate: &HashSet<(PathBuf, String)>,
    report: &mut Report,
) {
    if set.keep.is_none() && set.keep_days.is_none() {
        return;
    }
    let cutoff = set
        .keep_days
        .map(|d| now - chrono::Duration::days(i64::from(d)));
    let mut doomed: Vec<(FoundArchive, String)> = Vec::new();
    for (log_dir, adir) in set.archive_locations() {
        let mut by_log: BTreeMap<String, Vec<FoundArchive>> = BTreeMap::new();
        for a in list_archives(&log_dir, &adir) {
            if !set.owns(&log_dir, &a.name.live) || live_paths.contains(&a.path) {
                continue;
            }
            let claimed_by: Vec<&str> = all
                .iter()
                .filter(|o| {
                    o.index != set.index
                        && o.owns(&log_dir, &a.name.live)
                        && o.archive_dir_for(&log_dir) == adir
                })
                .map(|o| o.name.as_str())
                .collect();
            if !claimed_by.is_empty() {
                report.note(
                    ExitCode::Warning,
                    format!(
                        "{}: kept: it could belong to log set {:?} or {}; retention deletes only what one set owns",
                        a.path.display(),
                        set.name,
                        claimed_by.join(", ")
                    ),
                );
                continue;
            }
            by_log.entry(a.name.live.clone()).or_default().push(a);
        }
        for (live, mut list) in by_log {
            // Newest first; a generation and its compressed copy are one rotation.
            list.sort_by_key(|a| std::cmp::Reverse((a.name.order(), a.name.compression.is_some())));
            let mut rank = if dry && would_rotate.contains(&(adir.clone(), live.clone())) {
                1
            } else {
                0
            };
            let mut last: Option<(DateTime<Utc>, u32, bool)> = None;
            for a in list {
                let key = (a.name.stamp, a.name.counter, a.name.legacy);
                if last != Some(key) {
                    rank += 1;
                    last = Some(key);
                }
                let why = if set.keep.is_some_and(|k| rank > k as usize) {
                    format!("beyond keep = {}", set.keep.unwrap_or(0))
                } else if cutoff.is_some_and(|c| a.name.stamp < c) {
                    format!("older than keep_days = {}", set.keep_days.unwrap_or(0))
                } else {
                    continue;
                };
                doomed.push((a, why));
            }
        }
    }
    if doomed.is_empty() {
        return;
    }
    let ids: HashSet<FileId> = doomed
        .iter()
        .filter_map(|(a, _)| fsops::file_id(&a.path).ok())
        .collect();
    let held = holders::scan(&ids);
    let mut dirs: HashSet<PathBuf> = HashSet::new();
    for (a, why) in doomed {
        let writers: Vec<&Holder> = fsops::file_id(&a.path)
            .ok()
            .and_then(|id| held.get(&id))
            .map(|v| v.iter().filter(|h| h.writes()).collect())
            .unwrap_or_default();
        let mut r = ArchiveReport {
            set: set.name.clone(),
            path: a.path.clone(),
            action: "deleted",
            bytes: a.size,
            compressed: None,
            status: ExitCode::Success,
            message: why.clone(),
        };
        if !writers.is_empty() {
            r.action = "kept";
            r.status = ExitCode::Warning;
            r.message = format!(
                "{why}, but kept: still open for writing by {}",
                describe(&writers)
            );
        } else if dry {
            r.action = "would delete";
        } else if let Err(e) = std::fs::remove_file(&a.path) {
            r.action = "failed";
            r.status = ExitCode::Warning;
            r.message = format!("{why}, but cannot delete it: {e}");
        } else {
            dirs.insert(parent(&a.path));
            r.message = format!("deleted ({why})");
        }
        r.log();
        report.deleted.push(r);
    }
    for d in dirs {
        let _ = fsops::fsync_dir(&d);
    }
}

/// Fills in the state of every live file that has archives but no record
/// (a new or rebuilt state file), from the newest archive's name.
fn rebuild_missing(state: &mut RotationState, sets: &[&LogSet], live: &HashSet<PathBuf>) {
    for set in sets {
        for path in live {
            let key = path.display().to_string();
            if state.files.contains_key(&key) || !set.owns(&parent(path), &file_name(path)) {
                continue;
            }
            if let Some(a) = newest_archive(set, path) {
                state.files.insert(
                    key,
                    FileState {
                        last_rotated: a.name.stamp,
                        last_archive: Some(file_name(&a.path)),
                        last_bytes: None,
                    },
                );
            }
        }
    }
}

fn render(report: &Report, code: ExitCode, dry: bool) -> (serde_json::Value, String) {
    let files: Vec<serde_json::Value> = report
        .files
        .iter()
        .map(|f| {
            json!({
                "set": f.set,
                "path": f.path,
                "size": f.size,
                "action": f.action,
                "reason": f.reason,
                "archive": f.archive,
                "bytes": f.bytes,
                "compressed_bytes": f.compressed_bytes,
                "status": f.status.to_string(),
                "messages": f.messages,
            })
        })
        .collect();
    let arch = |v: &Vec<ArchiveReport>| -> Vec<serde_json::Value> {
        v.iter()
            .map(|a| {
                json!({
                    "set": a.set,
                    "path": a.path,
                    "action": a.action,
                    "bytes": a.bytes,
                    "archive": a.compressed.as_ref().map(|c| &c.0),
                    "compressed_bytes": a.compressed.as_ref().map(|c| c.1),
                    "status": a.status.to_string(),
                    "message": a.message,
                })
            })
            .collect()
    };
    let json = json!({
        "ok": code <= ExitCode::Warning,
        "exit_code": code.code(),
        "dry_run": dry,
        "files": files,
        "archives": arch(&report.archives),
        "deleted": arch(&report.deleted),
        "notes": report.notes.iter().map(|n| json!({"status": n.0.to_string(), "message": n.1})).collect::<Vec<_>>(),
    });
    let mut text = String::new();
    for f in &report.files {
        let what = match (&f.archive, f.compressed_bytes) {
            (Some(a), Some(c)) => format!(
                " -> {} ({} -> {})",
                a.display(),
                human_bytes(f.bytes),
                human_bytes(c)
            ),
            (Some(a), None) => format!(" -> {} ({})", a.display(), human_bytes(f.bytes)),
            _ => String::new(),
        };
        text.push_str(&format!(
            "{:<18} {} [{}] {}{what}\n",
            f.action,
            f.path.display(),
            f.set,
            f.reason
        ));
        for m in &f.messages {
            text.push_str(&format!("{:<18} {m}\n", ""));
        }
    }
    for a in report.archives.iter().chain(&report.deleted) {
        text.push_str(&format!(
            "{:<18} {} [{}] {}\n",
            a.action,
            a.path.display(),
            a.set,
            a.message
        ));
    }
    for (s, n) in &report.notes {
        text.push_str(&format!("{:<18} {n}\n", s.to_string()));
    }
    let count = |a: &str| report.files.iter().filter(|f| f.action == a).count();
    text.push_str(&format!(
        "{} file(s): {} rotated, {} copytruncated, {} archive(s) compressed, {} deleted; {}{}\n",
        report.files.len(),
        count("rotated") + count("would rotate"),
        count("copytruncated") + count("would copytruncate"),
        report
            .archives
            .iter()
            .filter(|a| a.action == "compressed")
            .count()
            + report
                .files
                .iter()
                .filter(|f| f.compressed_bytes.is_some() && f.action == "rotated")
                .count(),
        report
            .deleted
            .iter()
            .filter(|a| a.action == "deleted" || a.action == "would delete")
            .count(),
        code,
        if dry {
            " (dry run: nothing was changed)"
        } else {
            ""
        }
    ));
    (json, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogSetConfig;

    #[test]
    fn due_by_size_by_age_of_the_generation_or_by_force_never_when_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, vec![b'x'; 2000]).unwrap();
        let cfg = LogSetConfig {
            paths: vec!["a.log".into()],
            max_size: crate::config::SizeSetting::Text("1K".into()),
            max_age_days: Some(7),
            ..LogSetConfig::default()
        };
        let set = LogSet::from_config(0, &cfg, dir.path());
        let meta = std::fs::metadata(&path).unwrap();
        let now = Utc::now();
        let mut state = RotationState::default();
        assert!(due_reason(&set, &path, &meta, false, now, &state)
            .unwrap()
            .contains("over max_size"));

        let small = LogSet::from_config(
            0,
            &LogSetConfig {
                max_size: crate::config::SizeSetting::Bytes(1 << 20),
                ..cfg.clone()
            },
            dir.path(),
        );
        let rotated = |days: i64| FileState {
            last_rotated: now - chrono::Duration::days(days),
            last_archive: None,
            last_bytes: None,
        };
        let key = path.display().to_string();
        state.files.insert(key.clone(), rotated(1));
        assert!(due_reason(&small, &path, &meta, false, now, &state).is_err());
        state.files.insert(key, rotated(8));
        assert!(due_reason(&small, &path, &meta, false, now, &state)
            .unwrap()
            .contains("8 days old"));
        assert_eq!(
            due_reason(&small, &path, &meta, true, now, &RotationState::default()).unwrap(),
            "--force"
        );

        std::fs::write(&path, b"").unwrap();
        let empty = std::fs::metadata(&path).unwrap();
        assert!(due_reason(&small, &path, &empty, true, now, &state).is_err());
    }
}
