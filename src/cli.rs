//! Command-line definitions (clap derive): the global flags and one variant per subcommand.
//!
//! Completions and man pages are generated from these definitions; a test
//! fails when the committed copies under completions/ and man/ are stale.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::commands;
use crate::exit::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "tuneton-ops",
    version,
    about = "Operations toolkit for TuneTON: backups, verification, restores and recovery; health, alerts, log rotation, restart, diagnostics",
    long_about = "Operations toolkit for TuneTON.\n\nBacks up PostgreSQL, the application and its configuration into a \
checksummed, encrypted repository; verifies every byte of a backup; restores with a row-for-row check; \
point-in-time and disaster recovery. Checks the application's health and alerts, rotates its logs, restarts it, \
collects diagnostics.\n\n\
Settings come from flags > environment (DB_HOST, DB_PORT, DB_USER, DB_NAME, PGPASSWORD, PGPASSFILE, ...) > \
config file (/etc/tuneton/ops.toml, or --config / TUNETON_OPS_CONFIG) > built-in defaults.",
    after_help = ExitCode::TABLE,
    after_long_help = ExitCode::TABLE,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Config file (default /etc/tuneton/ops.toml; also TUNETON_OPS_CONFIG)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// More detail on stderr
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// No progress bars, even on a terminal (periodic log lines instead)
    #[arg(long, global = true)]
    pub no_progress: bool,

    /// Print each action that would be taken; change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Answer yes to confirmations (for scripts)
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,

    /// Backup repository directory (overrides repository.path)
    #[arg(long, global = true, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Which repository reading commands use (default: local when repository.local, else s3)
    #[arg(long, global = true, value_enum, value_name = "REPO")]
    pub from: Option<crate::repo::RepoChoice>,

    /// Database to back up (overrides database.name and DB_NAME)
    #[arg(long = "db-name", global = true, value_name = "NAME")]
    pub db_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Back up the database, the application or the config into the repository
    Backup(commands::backup::BackupArgs),
    /// List backups, or apply the retention policy
    #[command(subcommand)]
    Backups(commands::backups::BackupsCommand),
    /// Decrypt and decompress every byte of backups and check them against their manifests
    VerifyBackup(commands::verify_backup::VerifyArgs),
    /// Restore a database backup into a database, or an app/config backup into a directory
    Restore(commands::restore::RestoreArgs),
    /// Archive a WAL file into the repository (PostgreSQL archive_command = 'tuneton-ops wal-push %p')
    WalPush(commands::wal::WalPushArgs),
    /// Fetch an archived WAL file (restore_command = 'tuneton-ops wal-fetch %f %p'); exit 1 = not archived, 126 = error
    WalFetch(commands::wal::WalFetchArgs),
    /// Point-in-time recovery: restore a base backup and replay archived WAL to a target (time, LSN, xid, name)
    Pitr(commands::pitr::PitrArgs),
    /// Rebuild this host from the repository: newest verified db, app and config backups, then start the app
    DisasterRecover(commands::disaster_recover::DisasterRecoverArgs),
    /// Check for data corruption (pg_checksums, pg_amcheck) and recover from the newest verified backup if found
    DbRecover(commands::db_recover::DbRecoverArgs),
    /// Rotate the configured log sets without losing a line; compress in parallel; apply retention
    RotateLogs(commands::rotate_logs::RotateLogsArgs),
    /// Check the application service, its HTTP health endpoint, the database, disks, memory and load (exit 0/1/2/3)
    Health(commands::health::HealthArgs),
    /// Restart the application: stop (SIGKILL of its own main PID past the deadline), empty the cache dirs, start, wait until healthy
    Restart(commands::restart::RestartArgs),
    /// Collect a redacted diagnostic bundle (tar.gz): service, processes, disks, memory, network, database, logs, config
    Diagnose(commands::diagnose::DiagnoseArgs),
    /// Alert channels (Slack, PagerDuty, email): send a test message
    #[command(subcommand)]
    Notify(commands::notify::NotifyCommand),
    /// Show or check the merged configuration
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Print a shell completion script (needs no config)
    Completions(commands::completions::CompletionsArgs),
    /// Print the man page, or write every page into a directory (needs no config)
    Man(commands::completions::ManArgs),
}

impl Command {
    /// The config sections this command uses, for validation (`None`: all of
    /// them). Commands that never touch backups list theirs, so a host without
    /// a backup passphrase can still run them.
    pub fn config_sections(&self) -> Option<&'static [&'static str]> {
        /// What the backup and recovery commands read; "app" (last) only the recoveries.
        const BACKUP_SECTIONS: [&str; 10] = [
            "paths",
            "database",
            "repository",
            "encryption",
            "retention",
            "verify",
            "s3",
            "postgres",
            "alerts",
            "app",
        ];
        match self {
            Command::RotateLogs(_) => Some(&["paths", "logs"]),
            // Alert settings matter only when alerting: a plain check runs whatever they say.
            Command::Health(a) if a.alert => {
                Some(&["paths", "app", "health", "database", "alerts"])
            }
            Command::Health(_) => Some(&["paths", "app", "health", "database"]),
            Command::Notify(_) => Some(&["paths", "alerts"]),
            Command::Restart(_) => Some(&["paths", "app", "alerts"]),
            Command::Diagnose(_) => Some(&[
                "paths", "app", "health", "database", "alerts", "diagnose", "s3",
            ]),
            // A typo in the health or log-rotation settings must not stop the nightly backup.
            Command::Backup(_)
            | Command::Backups(_)
            | Command::VerifyBackup(_)
            | Command::Restore(_)
            | Command::WalPush(_)
            | Command::WalFetch(_) => Some(&BACKUP_SECTIONS[..BACKUP_SECTIONS.len() - 1]),
            // Recoveries also stop and start the application.
            Command::Pitr(_) | Command::DbRecover(_) | Command::DisasterRecover(_) => {
                Some(&BACKUP_SECTIONS)
            }
            _ => None,
        }
    }

    /// Whether a failed run is reported through the notifier when
    /// `alerts.alert_on_failure` is set: mutating jobs only. Commands that alert
    /// on their own (health, restart; wal-push once per failing stretch, since the
    /// server retries it every few seconds) and wal-fetch (PostgreSQL asks for
    /// segments that do not exist as a matter of course) do not.
    pub fn reports_failure(&self) -> bool {
        !matches!(
            self,
            Command::Backups(commands::backups::BackupsCommand::List(_))
                | Command::Health(_)
                | Command::Notify(_)
                | Command::Restart(_)
                | Command::Diagnose(_)
                | Command::WalPush(_)
                | Command::WalFetch(_)
                | Command::Config(_)
                | Command::Completions(_)
                | Command::Man(_)
        )
    }

    /// The job name: used for the log file and the lock file.
    pub fn job_name(&self) -> &'static str {
        match self {
            Command::Backup(_) => "backup",
            Command::Backups(commands::backups::BackupsCommand::List(_)) => "backups-list",
            Command::Backups(commands::backups::BackupsCommand::Prune(_)) => "backup",
            Command::VerifyBackup(_) => "verify-backup",
            Command::Restore(_) => "restore",
            Command::WalPush(_) => "wal-push",
            Command::Pitr(_) => "pitr",
            Command::DbRecover(_) => "db-recover",
            Command::DisasterRecover(_) => "disaster-recover",
            Command::RotateLogs(_) => "rotate-logs",
            Command::WalFetch(_) => "wal-fetch",
            Command::Health(_) => "health",
            Command::Notify(_) => "notify",
            Command::Restart(_) => "restart",
            Command::Diagnose(_) => "diagnose",
            Command::Config(_) => "config",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }
}
