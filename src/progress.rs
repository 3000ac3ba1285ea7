//! Progress: a bar on a terminal, periodic log lines otherwise (cron, systemd, pipes).
//!
//! One factory decides: no bar under `--quiet`, `--no-progress`, `--json`
//! or when stderr is not a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use is_terminal::IsTerminal;

static BARS_ALLOWED: AtomicBool = AtomicBool::new(false);
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// How often a non-terminal run logs its progress.
const LOG_EVERY: Duration = Duration::from_secs(30);

pub fn init(quiet: bool, no_progress: bool, json: bool) {
    let allowed = !quiet && !no_progress && !json && std::io::stderr().is_terminal();
    BARS_ALLOWED.store(allowed, Ordering::Relaxed);
}

/// Runs `f` with any active bar hidden, so log lines do not tear it.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    let bar = ACTIVE.lock().ok().and_then(|g| g.clone());
    match bar {
        Some(b) => b.suspend(f),
        None => f(),
    }
}

/// Byte progress of one long step.
pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    bytes: u64,
    last_log: Instant,
    started: Instant,
}

impl Progress {
    pub fn bytes(label: &str, total: Option<u64>) -> Progress {
        let bar = BARS_ALLOWED.load(Ordering::Relaxed).then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t).with_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap()
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template(
                        "{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}",
                    )
                    .unwrap(),
                ),
            };
            bar.set_message(label.to_string());
            bar.enable_steady_tick(Duration::from_millis(200));
            *ACTIVE.lock().unwrap() = Some(bar.clone());
            bar
        });
        Progress {
            bar,
            label: label.to_string(),
            bytes: 0,
            last_log: Instant::now(),
            started: Instant::now(),
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.bytes += n;
        match &self.bar {
            Some(b) => b.inc(n),
            None => {
                if self.last_log.elapsed() >= LOG_EVERY {
                    self.last_log = Instant::now();
                    let secs = self.started.elapsed().as_secs_f64().max(0.001);
                    log::info!(
                        "{}: {} so far ({:.1} MB/s)",
                        self.label,
                        human_bytes(self.bytes),
                        self.bytes as f64 / secs / 1e6
                    );
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
            *ACTIVE.lock().unwrap() = None;
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_units() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
