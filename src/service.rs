//! A service on this host (the application, the PostgreSQL server): its state,
//! start and stop through systemd (`systemctl is-active/start/stop/show -p
//! MainPID`) or configured shell commands (hosts without systemd, tests), every
//! call with a deadline.
//!
//! A stop that does not finish by its deadline escalates to SIGKILL of that
//! service's own main PID (systemd's MainPID or the PID file), and only after
//! checking it is still the same process (its start time in /proc/PID/stat).
//! Processes are never matched by name or command line: the old
//! `pkill -9 -f tuneton-app` could kill anything whose argv matched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::config::AppConfig;
use crate::process::output_detached_with_deadline;

/// How a service is controlled.
#[derive(Debug, Clone)]
pub enum Control {
    /// A systemd unit.
    Systemd { unit: String },
    /// Shell commands (`sh -c`); the state from `status` (exit 0 = running) or the PID file.
    Commands {
        start: String,
        stop: String,
        status: Option<String>,
        pid_file: Option<PathBuf>,
    },
}

/// The service's state as far as its manager can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "detail")]
pub enum ServiceState {
    Running,
    /// systemd says activating, reloading or deactivating.
    Changing(String),
    Stopped(String),
    /// The manager could not be asked (timeout, missing tool, unreadable PID file).
    Unknown(String),
}

impl ServiceState {
    pub fn describe(&self) -> String {
        match self {
            ServiceState::Running => "running".into(),
            ServiceState::Changing(s) => format!("changing ({s})"),
            ServiceState::Stopped(s) => format!("stopped ({s})"),
            ServiceState::Unknown(s) => format!("unknown ({s})"),
        }
    }
}

/// A process identified by its PID and its start time (clock ticks since boot),
/// so a PID reused by another process is never mistaken for ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessId {
    pub pid: i32,
    pub start_ticks: u64,
}

impl ProcessId {
    /// The process now running under `pid`, if any (zombies count as gone).
    pub fn of(pid: i32) -> Option<ProcessId> {
        if pid <= 1 {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (state, start_ticks) = parse_stat(&stat)?;
        if state == 'Z' || state == 'X' {
            return None;
        }
        Some(ProcessId { pid, start_ticks })
    }

    /// Still the same process (same PID, same start time, not a zombie)?
    pub fn alive(&self) -> bool {
        ProcessId::of(self.pid) == Some(*self)
    }
}

/// State and start time (field 22) from a /proc/PID/stat line. The command
/// name (field 2) is in parentheses and may itself contain spaces and ')'.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: field 3 (state) is index 0, field 22 (starttime) index 19.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// What a stop did.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    /// The main PID before the stop, when one was known.
    pub main_pid: Option<i32>,
    /// The stop command's own failure, if any (the stop may still have happened).
    pub stop_command_error: Option<String>,
    /// The PID that had to be SIGKILLed after the stop deadline.
    pub killed_pid: Option<i32>,
    pub elapsed_ms: u128,
}

/// A service with deadlines for each kind of call.
#[derive(Debug, Clone)]
pub struct Service {
    /// For messages ("the application", "PostgreSQL").
    pub label: String,
    pub control: Control,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    pub kill_timeout: Duration,
    pub status_timeout: Duration,
    /// Whether a stop past its deadline may SIGKILL the main PID.
    pub escalate: bool,
}

impl Service {
    /// The application from `[app]`.
    pub fn from_app_config(a: &AppConfig) -> Service {
        let control = match &a.start_command {
            Some(start) => Control::Commands {
                start: start.clone(),
                stop: a.stop_command.clone().unwrap_or_default(),
                status: a.status_command.clone(),
                pid_file: a.pid_file.clone(),
            },
            None => Control::Systemd {
                unit: a.service.clone(),
            },
        };
        Service {
            label: "the application".into(),
            control,
            start_timeout: Duration::from_secs(a.start_timeout_secs),
            stop_timeout: Duration::from_secs(a.stop_timeout_secs),
            kill_timeout: Duration::from_secs(a.kill_timeout_secs),
            status_timeout: Duration::from_secs(a.status_timeout_secs),
            escalate: true,
        }
    }

    /// How it is controlled, for plans and messages.
    pub fn describe(&self) -> String {
        match &self.control {
            Control::Systemd { unit } => format!("systemd unit {unit}"),
            Control::Commands { pid_file, .. } => match pid_file {
                Some(p) => format!("configured commands (PID file {})", p.display()),
                None => "configured commands".into(),
            },
        }
    }

    /// The shell command an operator runs to start it by hand (for recovery instructions).
    pub fn start_hint(&self) -> String {
        match &self.control {
            Control::Systemd { unit } => format!("systemctl start {unit}"),
            Control::Commands { start, .. } => start.clone(),
        }
    }

    /// The shell command an operator runs to stop it by hand; `None` when none is configured.
    pub fn stop_hint(&self) -> Option<String> {
        match &self.control {
            Control::Systemd { unit } => Some(format!("systemctl stop {unit}")),
            Control::Commands { stop, .. } => (!stop.trim().is_empty()).then(|| stop.clone()),
        }
    }

    fn sh(&self, script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn systemctl(&self, args: &[&str]) -> Command {
        let mut c = Command::new("systemctl");
        c.args(args);
        c
    }

    /// Asks the manager whether the service runs.
    pub fn state(&self) -> ServiceState {
        match &self.control {
            Control::Systemd { unit } => {
                let out = output_detached_with_deadline(
                    &mut self.systemctl(&["is-active", unit]),
                    self.status_timeout,
                    "systemctl is-active",
                );
                match out {
                    Err(e) => ServiceState::Unknown(format!("{e:#}")),
                    Ok(o) => {
                        let word = String::from_utf8_lossy(&o.stdout).trim().to_string();
                        match word.as_str() {
                            "active" => ServiceState::Running,
                            "activating" | "deactivating" | "reloading" | "refreshing" => {
                                ServiceState::Changing(word)
                            }
                            "inactive" | "failed" | "dead" => ServiceState::Stopped(word),
                            "" => ServiceState::Unknown(format!(
                                "systemctl is-active {unit} printed nothing ({}): {}",
                                o.status,
                                String::from_utf8_lossy(&o.stderr).trim()
                            )),
                            other => ServiceState::Unknown(format!("systemctl says {other:?}")),
                        }
                    }
                }
            }
            Control::Commands {
                status: Some(script),
                ..
            } => match output_detached_with_deadline(
                &mut self.sh(script),
                self.status_timeout,
                "app.status_command",
            ) {
                Err(e) => ServiceState::Unknown(format!("{e:#}")),
                Ok(o) if o.status.success() => ServiceState::Running,
                Ok(o) => match o.status.code() {
                    Some(code) => ServiceState::Stopped(format!("status command exited {code}")),
                    None => ServiceState::Unknown(format!("status command ended by {}", o.status)),
                },
            },
            Control::Commands {
                pid_file: Some(p), ..
            } => match read_pid_file(p) {
                Err(e) => ServiceState::Unknown(format!("{e:#}")),
                Ok(None) => ServiceState::Stopped(format!("no PID file {}", p.display())),
                Ok(Some(pid)) => match ProcessId::of(pid) {
                    Some(_) => ServiceState::Running,
                    None => ServiceState::Stopped(format!(
                        "PID {pid} from {} is not running",
                        p.display()
                    )),
                },
            },
            Control::Commands { .. } => ServiceState::Unknown(
                "neither a status command nor a PID file is configured".into(),
            ),
        }
    }

    /// The service's main process, if the manager knows one and it runs.
    pub fn main_pid(&self) -> Result<Option<ProcessId>> {
        let pid = match &self.control {
            Control::Systemd { unit } => {
                let out = output_detached_with_deadline(
                    &mut self.systemctl(&["show", "-p", "MainPID", "--value", unit]),
                    self.status_timeout,
                    "systemctl show -p MainPID",
                )?;
                if !out.status.success() {
                    bail!(
                        "systemctl show -p MainPID {unit} failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let pid: i32 = text.parse().with_context(|| {
                    format!("systemctl show -p MainPID {unit} printed {text:?}")
                })?;
                (pid > 0).then_some(pid)
            }
            Control::Commands {
                pid_file: Some(p), ..
            } => read_pid_file(p)?,
            Control::Commands { .. } => None,
        };
        Ok(pid.and_then(ProcessId::of))
    }

    /// Starts the service (the command must return once it has launched it).
    pub fn start(&self) -> Result<()> {
        let (mut cmd, what) = match &self.control {
            Control::Systemd { unit } => (
                self.systemctl(&["start", unit]),
                format!("systemctl start {unit}"),
            ),
            Control::Commands { start, .. } => (self.sh(start), "the start command".to_string()),
        };
        let out = output_detached_with_deadline(&mut cmd, self.start_timeout, &what)
            .with_context(|| format!("starting {}", self.label))?;
        if !out.status.success() {
            bail!(
                "starting {}: {what} failed ({}): {}",
                self.label,
                out.status,
                tail(&out.stderr)
            );
        }
        Ok(())
    }

    /// Stops the service and waits, with the stop deadline, until it has stopped;
    /// past that deadline SIGKILLs its own main PID (if `escalate` and one is
    /// known), and waits `kill_timeout` for it to vanish. Fails if it still runs.
    pub fn stop(&self) -> Result<StopReport> {
        let started = Instant::now();
        let deadline = started + self.stop_timeout;
        // Read the PID before stopping: a stop command may remove the PID file.
        let main = self.main_pid().unwrap_or_else(|e| {
            log::warn!("cannot read {}'s main PID: {e:#}", self.label);
            None
        });
        let (mut cmd, what) = match &self.control {
            Control::Systemd { unit } => (
                self.systemctl(&["stop", unit]),
                format!("systemctl stop {unit}"),
            ),
            Control::Commands { stop, .. } => (self.sh(stop), "the stop command".to_string()),
        };
        let stop_command_error =
            match output_detached_with_deadline(&mut cmd, self.stop_timeout, &what) {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!("{what} failed ({}): {}", o.status, tail(&o.stderr))),
                Err(e) => Some(format!("{e:#}")),
            };
        if let Some(e) = &stop_command_error {
            if main.is_none() && matches!(self.state(), ServiceState::Unknown(_)) {
                // Nothing else can tell us the stop happened.
                bail!("stopping {}: {e}", self.label);
            }
            log::warn!("stopping {}: {e}", self.label);
        }
        let stopped = |svc: &Service| {
            let by_pid = main.is_none_or(|m| !m.alive());
            by_pid
                && !matches!(
                    svc.state(),
                    ServiceState::Running | ServiceState::Changing(_)
                )
        };
        if wait_until(deadline, || stopped(self)) {
            return Ok(StopReport {
                main_pid: main.map(|m| m.pid),
                stop_command_error,
                killed_pid: None,
                elapsed_ms: started.elapsed().as_millis(),
            });
        }
        let Some(m) = main.filter(|_| self.escalate) else {
            bail!(
                "{} did not stop within {}s ({}) and no main PID is known to kill{}",
                self.label,
                self.stop_timeout.as_secs(),
                self.describe(),
                stop_command_error
                    .map(|e| format!("; {e}"))
                    .unwrap_or_default()
            );
        };
        // Re-check immediately before the kill: same PID, same start time.
        if m.alive() {
            log::warn!(
                "{} did not stop within {}s: SIGKILL to its main PID {}",
                self.label,
                self.stop_timeout.as_secs(),
                m.pid
            );
            // SAFETY: kill(2) on a PID we just confirmed is the service's own main
            // process (same start time as when we read it from its manager).
            if unsafe { libc::kill(m.pid, libc::SIGKILL) } != 0 {
                let err = std::io::Error::last_os_error();
                if m.alive() {
                    bail!(
                        "SIGKILL to {}'s main PID {} failed: {err}",
                        self.label,
                        m.pid
                    );
                }
            }
        }
        let kill_deadline = Instant::now() + self.kill_timeout;
        if !wait_until(kill_deadline, || stopped(self)) {
            bail!(
                "{} still runs {}s after SIGKILL to its main PID {} ({})",
                self.label,
                self.kill_timeout.as_secs(),
                m.pid,
                self.state().describe()
            );
        }
        Ok(StopReport {
            main_pid: Some(m.pid),
            stop_command_error,
            killed_pid: Some(m.pid),
            elapsed_ms: started.elapsed().as_millis(),
        })
    }

    /// A status report for diagnostics (`systemctl status`, or the state and PID).
    pub fn status_text(&self) -> String {
        let mut text = format!(
            "{} via {}\nstate: {}\n",
            self.label,
            self.describe(),
            self.state().describe()
        );
        match self.main_pid() {
            Ok(Some(p)) => text.push_str(&format!(
                "main PID: {} (start ticks {})\n",
                p.pid, p.start_ticks
            )),
            Ok(None) => text.push_str("main PID: none\n"),
            Err(e) => text.push_str(&format!("main PID: unknown ({e:#})\n")),
        }
        if let Control::Systemd { unit } = &self.control {
            match output_detached_with_deadline(
                &mut self.systemctl(&["status", "--no-pager", "--lines=50", unit]),
                self.status_timeout,
                "systemctl status",
            ) {
                Ok(o) => {
                    text.push('\n');
                    text.push_str(&String::from_utf8_lossy(&o.stdout));
                    text.push_str(&String::from_utf8_lossy(&o.stderr));
                }
                Err(e) => text.push_str(&format!("systemctl status: {e:#}\n")),
            }
        }
        text
    }
}

/// The PID in a PID file; `None` when the file does not exist.
pub fn read_pid_file(path: &Path) -> Result<Option<i32>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            // PostgreSQL's postmaster.pid holds more lines after the PID.
            let t = text.lines().next().unwrap_or("").trim();
            let pid: i32 = t
                .parse()
                .with_context(|| format!("PID file {} holds {t:?}, not a PID", path.display()))?;
            if pid <= 1 {
                bail!(
                    "PID file {} holds {pid}, which is not a service's PID",
                    path.display()
                );
            }
            Ok(Some(pid))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading PID file {}", path.display())),
    }
}

/// Polls `done` with a growing interval (10 ms .. 500 ms) until it is true or the deadline passes.
pub fn wait_until(deadline: Instant, mut done: impl FnMut() -> bool) -> bool {
    let mut delay = Duration::from_millis(10);
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

fn tail(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let s = s.trim();
    let start = s.len().saturating_sub(2000);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(s.len());
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line = "4242 (my ) (app) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line), Some(('S', 987654)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_process_is_identified_and_a_dead_pid_is_not() {
        let me = ProcessId::of(std::process::id() as i32).expect("we run");
        assert!(me.alive());
        let fake = ProcessId {
            start_ticks: me.start_ticks + 1,
            ..me
        };
        assert!(
            !fake.alive(),
            "a different start time is a different process"
        );
        assert_eq!(
            ProcessId::of(1),
            None,
            "PID 1 is never a service's main PID"
        );
    }

    #[test]
    fn pid_files_are_read_strictly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.pid");
        assert_eq!(read_pid_file(&p).unwrap(), None);
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_pid_file(&p).unwrap(), Some(1234));
        std::fs::write(&p, "1\n").unwrap();
        assert!(read_pid_file(&p).is_err());
        std::fs::write(&p, "abc").unwrap();
        assert!(read_pid_file(&p).is_err());
    }

    #[test]
    fn a_stop_that_hangs_escalates_to_sigkill_of_the_main_pid_only() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("svc.pid");
        // The "service" ignores SIGTERM; the stop command only sends SIGTERM.
        let start = format!(
            "sh -c 'trap \"\" TERM; echo $$ > {0}; while :; do sleep 0.05; done' >/dev/null 2>&1 &",
            pid_file.display()
        );
        let stop = format!("kill -TERM $(cat {})", pid_file.display());
        let svc = Service {
            label: "test service".into(),
            control: Control::Commands {
                start,
                stop,
                status: None,
                pid_file: Some(pid_file.clone()),
            },
            start_timeout: Duration::from_secs(5),
            stop_timeout: Duration::from_millis(300),
            kill_timeout: Duration::from_secs(5),
            status_timeout: Duration::from_secs(5),
            escalate: true,
        };
        svc.start().unwrap();
        assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
            matches!(svc.state(), ServiceState::Running)
        }));
        let report = svc.stop().unwrap();
        assert!(report.killed_pid.is_some(), "{report:?}");
        assert_eq!(report.killed_pid, report.main_pid);
        assert!(matches!(svc.state(), ServiceState::Stopped(_)));
    }
}
