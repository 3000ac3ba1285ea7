//! SIGINT, SIGTERM and SIGHUP: a run that is interrupted says so in its log,
//! stops what must not outlive it (the tools it runs, the gpg-agents of its
//! private GnuPG homes, plaintext spool files), says what it leaves behind, and
//! exits 128 + the signal number (130, 143, 129). Nothing half-written is
//! ever published: `.partial` objects are removed by the next run, unfinished
//! S3 uploads are never completed.
//!
//! The handler only writes the signal number into a pipe (async-signal-safe);
//! a thread reads it and does the rest as ordinary code.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

/// Children to stop on an interrupt: (PID, whether it leads its own process group).
static CHILDREN: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());
/// Files to remove on an interrupt (plaintext spools).
static FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// What the interrupt message must add about the state the run leaves.
static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Held (forever) once an interrupt is being handled: the main thread waits on it
/// before it exits, so the run ends with the interrupt's exit code and message.
static STOPPING: Mutex<()> = Mutex::new(());

/// Called before the process exits normally: blocks if an interrupt is being handled.
pub fn hold_if_interrupted() {
    drop(STOPPING.lock());
}

/// Stop this child (SIGTERM, then SIGKILL) if the run is interrupted while it runs.
pub fn track_child(pid: u32, group: bool) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((pid, group));
}

pub fn untrack_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|(p, _)| *p != pid);
}

/// Removes `path` if the run is interrupted while the guard lives.
pub struct TrackedFile(PathBuf);

pub fn track_file(path: PathBuf) -> TrackedFile {
    FILES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    TrackedFile(path)
}

impl Drop for TrackedFile {
    fn drop(&mut self) {
        FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != self.0);
    }
}

/// Adds `text` to the interrupt message while the guard lives.
pub struct Note(String);

pub fn note(text: String) -> Note {
    NOTES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(text.clone());
    Note(text)
}

impl Drop for Note {
    fn drop(&mut self) {
        let mut notes = NOTES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = notes.iter().position(|n| *n == self.0) {
            notes.remove(i);
        }
    }
}

/// Whether `pid` still runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
        })
        .unwrap_or(false)
}

/// SIGTERM to every tracked child (its group when it leads one), SIGKILL to what is
/// left after two seconds: a killed pg_restore's transaction rolls back, and no
/// worker goes on loading data after we have said we stopped.
fn stop_children() {
    let children = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let kill = |sig: i32| {
        for (pid, group) in &children {
            // SAFETY: kill(2) on our own children (not yet reaped: they are tracked until waited for).
            unsafe {
                if *group {
                    libc::kill(-(*pid as libc::pid_t), sig);
                }
                libc::kill(*pid as libc::pid_t, sig);
            }
        }
    };
    kill(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(2);
    while children.iter().any(|(p, _)| running(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(libc::SIGKILL);
}

extern "C" fn on_signal(sig: libc::c_int) {
    let byte = sig as u8;
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; one byte from a valid buffer.
    unsafe {
        libc::write(fd, (&byte as *const u8).cast(), 1);
    }
}

fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// Installs the handlers for a command that does work (not for wal-fetch,
/// whose exit status PostgreSQL interprets: there the default action stays).
pub fn install(job: &'static str) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills the two descriptors of the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return;
    }
    PIPE_WRITE.store(fds[1], Ordering::Relaxed);
    let read_fd = fds[0];
    std::thread::spawn(move || {
        let mut byte = 0u8;
        // SAFETY: read(2) into a one-byte buffer we own, from our own pipe.
        let n = unsafe { libc::read(read_fd, (&mut byte as *mut u8).cast(), 1) };
        if n != 1 {
            return;
        }
        let sig = byte as i32;
        std::mem::forget(STOPPING.lock());
        stop_children();
        for f in FILES.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = std::fs::remove_file(f);
        }
        let notes = NOTES.lock().unwrap_or_else(|e| e.into_inner()).join("; ");
        log::error!(
            "{job} interrupted by {}: stopped, with the tools it ran; nothing unfinished was published (leftovers are removed by the next run){}",
            name(sig),
            if notes.is_empty() { String::new() } else { format!(". {notes}") }
        );
        crate::crypto::remove_this_runs_homes();
        std::process::exit(128 + sig);
    });
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction with our handler; SA_RESTART so
        // interrupted system calls in other threads resume.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
