//! The local PostgreSQL server as a service: stop and start it through systemd
//! (`postgres.service`, e.g. `postgresql@15-main`) or configured commands, each
//! with a deadline, and know where its data directory is. Used by `pitr`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::PostgresConfig;
use crate::exit::could_not_start;
use crate::service::{Control, Service};

pub struct PgCluster {
    pub data_dir: PathBuf,
    pub os_user: String,
    service: Service,
}

impl PgCluster {
    pub fn from_config(c: &PostgresConfig) -> Result<PgCluster> {
        let data_dir = c.data_dir.clone().ok_or_else(|| {
            could_not_start("postgres.data_dir is not set: pitr needs the server's data directory")
        })?;
        let control = match (&c.service, &c.start_command, &c.stop_command) {
            (Some(unit), _, _) => Control::Systemd { unit: unit.clone() },
            (None, Some(start), Some(stop)) => Control::Commands {
                start: start.clone(),
                stop: stop.clone(),
                status: None,
                // The postmaster's PID is the first line; its absence or a dead PID means stopped.
                pid_file: Some(data_dir.join("postmaster.pid")),
            },
            _ => {
                return Err(could_not_start(
                    "set postgres.service (a systemd unit) or both postgres.start_command and postgres.stop_command",
                ))
            }
        };
        let timeout = Duration::from_secs(c.start_timeout_secs);
        Ok(PgCluster {
            data_dir,
            os_user: c.os_user.clone(),
            service: Service {
                label: "PostgreSQL".into(),
                control,
                start_timeout: timeout,
                stop_timeout: timeout,
                kill_timeout: Duration::from_secs(10),
                status_timeout: Duration::from_secs(30),
                // A SIGKILLed postmaster leaves its backends behind; never escalate.
                escalate: false,
            },
        })
    }

    /// How the server is controlled, for plans and messages.
    pub fn describe(&self) -> String {
        match &self.service.control {
            Control::Systemd { unit } => format!("systemctl (unit {unit})"),
            Control::Commands { .. } => "postgres.start_command / stop_command".into(),
        }
    }

    /// The shell commands an operator runs to start / stop the server by hand.
    pub fn start_hint(&self) -> String {
        self.service.start_hint()
    }

    pub fn stop_hint(&self) -> String {
        self.service.stop_hint().unwrap_or_default()
    }

    /// Whether the server is known to be stopped (systemd, or postmaster.pid and its PID).
    pub fn is_stopped(&self) -> bool {
        matches!(
            self.service.state(),
            crate::service::ServiceState::Stopped(_)
        )
    }

    /// Stops the server and waits (deadline postgres.start_timeout_secs) until it has.
    pub fn stop(&self) -> Result<()> {
        self.service.stop().map(|_| ())
    }

    pub fn start(&self) -> Result<()> {
        self.service.start()
    }

    /// Gives the data directory to the server's OS user, mode 0700 (tar extraction as root leaves it root's).
    pub fn own_data_dir(&self, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let st = Command::new("chown")
                .arg("-R")
                .arg(format!("{0}:{0}", self.os_user))
                .arg(dir)
                .status()
                .context("running chown")?;
            if !st.success() {
                bail!("chown -R {} {} failed", self.os_user, dir.display());
            }
        }
        Ok(())
    }
}
