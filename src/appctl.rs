//! The application around a destructive step (`disaster-recover`, `pitr`,
//! `db-recover`): stop it before its database or files are replaced, start it
//! afterwards and wait for its health endpoint with a deadline. Only when
//! something can control it: `app.start_command`, or systemd running here.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::AppConfig;
use crate::http::{wait_for_health, HealthExpect, HealthWait};
use crate::service::{Service, ServiceState};

pub struct AppControl {
    service: Service,
    health_url: String,
    expect: HealthExpect,
    per_request: Duration,
    ready_timeout: Duration,
}

impl AppControl {
    /// `None` when nothing manages the application on this host (no start
    /// command configured and systemd not running): then we neither stop nor start it.
    pub fn from_config(a: &AppConfig) -> Option<AppControl> {
        let managed = a.start_command.is_some() || Path::new("/run/systemd/system").is_dir();
        managed.then(|| AppControl {
            service: Service::from_app_config(a),
            health_url: a.health_url.clone(),
            expect: HealthExpect::from_app_config(a),
            per_request: Duration::from_secs(a.health_timeout_secs),
            ready_timeout: Duration::from_secs(a.ready_timeout_secs),
        })
    }

    pub fn describe(&self) -> String {
        format!("the application ({})", self.service.describe())
    }

    /// The shell command that starts it by hand (for recovery instructions).
    pub fn start_hint(&self) -> String {
        self.service.start_hint()
    }

    pub fn health_url(&self) -> &str {
        &self.health_url
    }

    /// Stops the application if it runs (with the stop deadline, then SIGKILL of
    /// its own main PID). Returns whether it was running.
    pub fn stop_if_running(&self) -> Result<bool> {
        match self.service.state() {
            ServiceState::Stopped(_) => Ok(false),
            state => {
                log::info!("stopping {} ({})", self.describe(), state.describe());
                let report = self
                    .service
                    .stop()
                    .with_context(|| format!("stopping {} before the restore", self.describe()))?;
                if let Some(pid) = report.killed_pid {
                    log::warn!("the application did not stop in time: killed its main PID {pid}");
                }
                Ok(true)
            }
        }
    }

    /// Starts the application and waits until its health endpoint answers as
    /// configured, or `app.ready_timeout_secs` passes (then an error).
    pub fn start_and_wait(&self) -> Result<HealthWait> {
        log::info!("starting {}", self.describe());
        self.service.start()?;
        let wait = wait_for_health(
            &self.health_url,
            &self.expect,
            self.per_request,
            Instant::now() + self.ready_timeout,
        )
        .context("the application was started but is not healthy (app.health_url, app.ready_timeout_secs)")?;
        log::info!(
            "the application is healthy after {:.1}s ({} probes)",
            wait.elapsed.as_secs_f64(),
            wait.attempts
        );
        Ok(wait)
    }
}
