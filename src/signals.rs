//! SIGINT, SIGTERM and SIGHUP: a run that is interrupted says so in its log,
//! stops what must not outlive it (the gpg-agents of its private GnuPG homes),
//! and exits 128 + the signal number (130, 143, 129). Nothing half-written is
//! ever published: `.partial` objects are removed by the next run, unfinished
//! S3 uploads are never completed.
//!
//! The handler only writes the signal number into a pipe (async-signal-safe);
//! a thread reads it and does the rest as ordinary code.

use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

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
        log::error!(
            "{job} interrupted by {}: stopped; nothing unfinished was published (leftovers are removed by the next run)",
            name(sig)
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
