//! Child processes with deadlines: every external tool we run (pg_dump,
//! pg_restore, psql, passphrase commands) is killed when its deadline passes.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Keeps a child from inheriting our other descriptors.
///
/// gpgme (and libraries generally) create pipes without close-on-exec. A tool
/// spawned on another thread while gpg runs would inherit the write end of
/// gpgme's status pipe, and gpgme would wait for an EOF that never comes (a
/// verify hung this way under the benchmark). So every child we start gets all
/// descriptors above stderr marked close-on-exec between fork and exec.
pub fn isolate(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure only makes raw syscalls (close_range, fcntl), which are
    // async-signal-safe and allocate nothing, as required between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            ) != 0
            {
                // Kernels before 5.11: mark them one by one.
                for fd in 3..4096 {
                    libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
            Ok(())
        })
    }
}

/// Kills a child (SIGKILL to its own PID) if it is still running at the deadline.
pub struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    /// Tracked for interrupts (see `signals::track_child`).
    pid: Option<u32>,
}

impl Watchdog {
    pub fn new(pid: u32, timeout: Duration) -> Watchdog {
        Self::start(pid, timeout, false, true)
    }

    /// For a child started in its own process group (`process_group(0)`): kills
    /// the whole group, so `sh -c` cannot leave a grandchild holding our pipes.
    pub fn for_group(pid: u32, timeout: Duration) -> Watchdog {
        Self::start(pid, timeout, true, true)
    }

    /// A service's start or stop command: killed at its deadline, but left alone
    /// when our run is interrupted (what it started is the service itself).
    pub fn for_service_command(pid: u32, timeout: Duration) -> Watchdog {
        Self::start(pid, timeout, true, false)
    }

    fn start(pid: u32, timeout: Duration, group: bool, stop_on_interrupt: bool) -> Watchdog {
        if stop_on_interrupt {
            crate::signals::track_child(pid, group);
        }
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let handle = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                f.store(true, Ordering::SeqCst);
                // SAFETY: kill(2) with our own child's PID (or its own process group); the
                // child is not reaped until we wait on it, so the PID cannot have been reused.
                unsafe {
                    if group {
                        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
                    }
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        });
        Watchdog {
            cancel: Some(tx),
            fired,
            handle: Some(handle),
            pid: stop_on_interrupt.then_some(pid),
        }
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            crate::signals::untrack_child(pid);
        }
        drop(self.cancel.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Collects a child's stderr on a thread, keeping the last 64 KiB.
pub fn capture_stderr(child: &mut Child) -> Option<JoinHandle<String>> {
    let mut err = child.stderr.take()?;
    Some(std::thread::spawn(move || {
        const KEEP: usize = 64 * 1024;
        let mut kept: Vec<u8> = Vec::new();
        let mut buf = [0u8; 8192];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > 2 * KEEP {
                kept.drain(..kept.len() - KEEP);
            }
        }
        String::from_utf8_lossy(&kept).trim().to_string()
    }))
}

/// Runs a command to completion with captured output and a deadline.
pub fn output_with_deadline(cmd: &mut Command, timeout: Duration, what: &str) -> Result<Output> {
    let mut child = isolate(cmd)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let dog = Watchdog::for_group(child.id(), timeout);
    let mut stdout = child.stdout.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_thread = capture_stderr(&mut child);
    let status = child
        .wait()
        .with_context(|| format!("waiting for {what}"))?;
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if dog.fired() {
        anyhow::bail!(
            "{what} did not finish within {}s and was killed",
            timeout.as_secs()
        );
    }
    Ok(Output {
        status,
        stdout,
        stderr: stderr.into_bytes(),
    })
}

/// Runs a command that may leave a daemon behind (a service's start or stop
/// command) with a deadline. Its stdout and stderr go to anonymous temp files,
/// not pipes: a backgrounded server inheriting a pipe would keep us waiting for
/// an EOF until it exits. Only the command itself is waited for; at the deadline
/// its process group is killed. Output is capped at 64 KiB per stream.
pub fn output_detached_with_deadline(
    cmd: &mut Command,
    timeout: Duration,
    what: &str,
) -> Result<Output> {
    use std::io::{Seek, SeekFrom};
    let out = tempfile::tempfile().context("creating a temp file for command output")?;
    let err = tempfile::tempfile().context("creating a temp file for command output")?;
    let mut child = isolate(cmd)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(err.try_clone()?))
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let dog = Watchdog::for_service_command(child.id(), timeout);
    let status = child
        .wait()
        .with_context(|| format!("waiting for {what}"))?;
    let fired = dog.fired();
    drop(dog);
    if fired {
        anyhow::bail!(
            "{what} did not finish within {}s and was killed",
            timeout.as_secs()
        );
    }
    let read_capped = |mut f: std::fs::File| -> Vec<u8> {
        const KEEP: u64 = 64 * 1024;
        let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(KEEP)));
        let mut v = Vec::new();
        let _ = f.take(KEEP).read_to_end(&mut v);
        v
    };
    Ok(Output {
        status,
        stdout: read_capped(out),
        stderr: read_capped(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_kills_grandchildren_too() {
        let started = std::time::Instant::now();
        let err = output_with_deadline(
            Command::new("sh").args(["-c", "sleep 30; echo late"]),
            Duration::from_millis(300),
            "slow command",
        )
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("did not finish within"),
            "{err:#}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn children_do_not_inherit_our_descriptors() {
        let mut fds = [0i32; 2];
        // SAFETY: pipe(2) into a two-element array; a plain pipe, without close-on-exec, like gpgme's.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        let listing = |isolated: bool| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "ls /proc/self/fd"]);
            if isolated {
                isolate(&mut cmd);
            }
            let out = cmd.output().unwrap();
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let leaked = fds[1].to_string();
        assert!(
            listing(false).contains(&leaked),
            "without isolate the child inherits the pipe"
        );
        assert!(!listing(true).contains(&leaked), "with isolate it does not");
        // SAFETY: closing the two descriptors we opened above.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
    }

    #[test]
    fn a_backgrounded_daemon_does_not_hold_us() {
        let started = std::time::Instant::now();
        let out = output_detached_with_deadline(
            Command::new("sh").args(["-c", "sleep 5 & echo started; echo warn >&2"]),
            Duration::from_secs(4),
            "start command",
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "started");
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim(), "warn");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "waited for the daemon"
        );
    }
}
