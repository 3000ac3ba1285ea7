//! Child processes with deadlines: every external tool we run (pg_dump,
//! pg_restore, psql, passphrase commands) is killed when its deadline passes.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Kills a child (SIGKILL to its own PID) if it is still running at the deadline.
pub struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(pid: u32, timeout: Duration) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let handle = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(timeout) {
                f.store(true, Ordering::SeqCst);
                // SAFETY: kill(2) with our own child's PID; the child is not reaped until we wait on it.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        });
        Watchdog {
            cancel: Some(tx),
            fired,
            handle: Some(handle),
        }
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
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
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let dog = Watchdog::new(child.id(), timeout);
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
