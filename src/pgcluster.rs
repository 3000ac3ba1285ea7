//! The local PostgreSQL server as a service: stop and start it through systemd
//! (`postgres.service`, e.g. `postgresql@15-main`) or configured commands, each
//! with a deadline, and know where its data directory is. Used by `pitr`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::config::PostgresConfig;
use crate::exit::could_not_start;
use crate::process::output_with_deadline;

pub struct PgCluster {
    pub data_dir: PathBuf,
    pub os_user: String,
    service: Option<String>,
    start_command: Option<String>,
    stop_command: Option<String>,
    pub timeout: Duration,
}

impl PgCluster {
    pub fn from_config(c: &PostgresConfig) -> Result<PgCluster> {
        let data_dir = c.data_dir.clone().ok_or_else(|| {
            could_not_start("postgres.data_dir is not set: pitr needs the server's data directory")
        })?;
        if c.service.is_none() && (c.start_command.is_none() || c.stop_command.is_none()) {
            return Err(could_not_start(
                "set postgres.service (a systemd unit) or both postgres.start_command and postgres.stop_command",
            ));
        }
        Ok(PgCluster {
            data_dir,
            os_user: c.os_user.clone(),
            service: c.service.clone(),
            start_command: c.start_command.clone(),
            stop_command: c.stop_command.clone(),
            timeout: Duration::from_secs(c.start_timeout_secs),
        })
    }

    /// How the server is controlled, for plans and messages.
    pub fn describe(&self) -> String {
        match &self.service {
            Some(s) => format!("systemctl (unit {s})"),
            None => "postgres.start_command / stop_command".into(),
        }
    }

    pub fn stop(&self) -> Result<()> {
        self.run("stop", self.stop_command.as_deref())
    }

    pub fn start(&self) -> Result<()> {
        self.run("start", self.start_command.as_deref())
    }

    fn run(&self, verb: &str, command: Option<&str>) -> Result<()> {
        let mut cmd = match (&self.service, command) {
            (Some(unit), _) => {
                let mut c = Command::new("systemctl");
                c.arg(verb).arg(unit);
                c
            }
            (None, Some(sh)) => {
                let mut c = Command::new("sh");
                c.arg("-c").arg(sh);
                c
            }
            (None, None) => unreachable!("checked in from_config"),
        };
        let out = output_with_deadline(&mut cmd, self.timeout, &format!("PostgreSQL {verb}"))?;
        if !out.status.success() {
            bail!(
                "PostgreSQL {verb} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
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
