//! Exit codes: the one table every command maps its outcome to.
//!
//! Follows the monitoring-plugins convention so cron, systemd and Nagios-style
//! monitors can act on them without parsing output.

use std::fmt;

/// The process exit status of a `tuneton-ops` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// 0: the job did what was asked; checks are OK.
    Success = 0,
    /// 1: the job finished but something needs attention (e.g. newest backup older than the warning age).
    Warning = 1,
    /// 2: the job failed (or a check is CRITICAL): a backup not written, a verification mismatch, a restore that did not complete.
    Failed = 2,
    /// 3: the job could not start: bad config or input, a missing tool, a lock held by another run.
    CouldNotStart = 3,
    /// 126: `wal-fetch` only: any failure other than "not in the archive", so
    /// PostgreSQL aborts recovery instead of ending it early (it treats an exit
    /// status above 125 as fatal).
    RecoveryFatal = 126,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The worse of two outcomes (loops over many items keep the worst).
    pub fn worst(self, other: ExitCode) -> ExitCode {
        self.max(other)
    }

    /// The table printed in `--help` and the man page.
    pub const TABLE: &'static str = "Exit codes:\n  0  success (checks: OK)\n  1  warning: finished, but something needs attention (wal-fetch: not in the archive)\n  2  failed (checks: CRITICAL): nothing was published or restored\n  3  could not start: bad config or input, missing tool, lock held by another run\n  126  wal-fetch only: any other failure, so PostgreSQL aborts recovery\n  129/130/143  interrupted by SIGHUP/SIGINT/SIGTERM: stopped, nothing unfinished published";
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ExitCode::Success => "success",
            ExitCode::Warning => "warning",
            ExitCode::Failed => "failed",
            ExitCode::CouldNotStart => "could not start",
            ExitCode::RecoveryFatal => "fatal for recovery",
        };
        write!(f, "{name}")
    }
}

/// Marks an error as "could not start" (exit 3): bad config, bad input,
/// a missing tool, a held lock. Anything else that fails a run exits 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CouldNotStart(pub String);

/// Builds an `anyhow::Error` that exits 3.
pub fn could_not_start(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(CouldNotStart(msg.into()))
}

/// The exit code an error chain maps to.
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    if err
        .chain()
        .any(|e| e.is::<CouldNotStart>() || e.is::<crate::lock::LockHeld>())
    {
        ExitCode::CouldNotStart
    } else {
        ExitCode::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_numbers() {
        assert_eq!(ExitCode::Success.code(), 0);
        assert_eq!(ExitCode::Warning.code(), 1);
        assert_eq!(ExitCode::Failed.code(), 2);
        assert_eq!(ExitCode::CouldNotStart.code(), 3);
    }

    #[test]
    fn worst_keeps_the_higher_code() {
        assert_eq!(
            ExitCode::Success.worst(ExitCode::Warning),
            ExitCode::Warning
        );
        assert_eq!(ExitCode::Failed.worst(ExitCode::Warning), ExitCode::Failed);
    }

    #[test]
    fn could_not_start_survives_added_context() {
        let e = could_not_start("lock held").context("starting backup");
        assert_eq!(exit_code_for(&e), ExitCode::CouldNotStart);
        let e = anyhow::anyhow!("pg_dump failed").context("backup");
        assert_eq!(exit_code_for(&e), ExitCode::Failed);
    }
}
