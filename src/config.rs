//! Configuration: built-in defaults < TOML file < environment < flags, with provenance.
//!
//! One precedence rule, written down once: flags > env > file > defaults.
//! Every resolved value remembers where it came from so `config show` can say so.
//! Secrets (the database password) are held in [`Secret`] and never printed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cli::GlobalArgs;
use crate::exit::could_not_start;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/tuneton/ops.toml";

/// A value that must never reach logs, `--json` or argv.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub paths: PathsConfig,
    pub database: DatabaseConfig,
    pub repository: RepositoryConfig,
    pub encryption: EncryptionConfig,
    pub retention: RetentionConfig,
    pub verify: VerifyConfig,
    pub s3: S3Config,
    pub postgres: PostgresConfig,
    pub logs: LogsConfig,
    pub app: AppConfig,
    pub health: HealthConfig,
    pub alerts: AlertsConfig,
    pub diagnose: DiagnoseConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// Where each job appends its `[YYYY-MM-DD HH:MM:SS] message` log.
    pub log_dir: PathBuf,
    /// Where job lock files live.
    pub run_dir: PathBuf,
    /// The application directory (`backup --kind app`).
    pub app_dir: PathBuf,
    /// The configuration directory (`backup --kind config`).
    pub config_dir: PathBuf,
    /// Scratch space (parallel restore spool, gpg homes are under /tmp).
    pub scratch_dir: PathBuf,
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            log_dir: "/var/log/tuneton".into(),
            run_dir: "/run/tuneton".into(),
            app_dir: "/app".into(),
            config_dir: "/etc/tuneton".into(),
            scratch_dir: "/var/tmp".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Host name, IP address, or a unix socket directory (starts with `/`).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub name: String,
    /// Database used for CREATE/DROP DATABASE (scratch restores).
    pub maintenance_db: String,
    /// File holding the password (mode 0600 or refused).
    pub password_file: Option<PathBuf>,
    /// A libpq password file (PGPASSFILE format), handed to pg_dump/pg_restore/psql.
    pub passfile: Option<PathBuf>,
    /// Directory of pg_dump/pg_restore/psql; default: found on PATH.
    pub bin_dir: Option<PathBuf>,
    pub connect_timeout_secs: u64,
    /// Deadline for one pg_dump/pg_restore/psql run.
    pub command_timeout_secs: u64,
    /// Only from PGPASSWORD or password_file; never from the config file itself.
    #[serde(skip_deserializing)]
    pub password: Option<Secret>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            host: "localhost".into(),
            port: 5432,
            user: "postgres".into(),
            name: "tuneton".into(),
            maintenance_db: "postgres".into(),
            password_file: None,
            passfile: None,
            bin_dir: None,
            connect_timeout_secs: 10,
            command_timeout_secs: 6 * 3600,
            password: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Gzip,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepositoryConfig {
    /// Keep a local repository at `path` (set false on S3-only hosts).
    pub local: bool,
    pub path: PathBuf,
    pub compression: Compression,
    /// zstd 1..=19 (default 1), gzip 1..=9 (default 6).
    pub compression_level: Option<i32>,
    /// zstd worker threads beside the pipeline's compression thread; 0 = compress
    /// on that thread (least memory, ~12 MiB; about 15-30 % slower on 2 busy cores).
    pub compression_threads: u32,
}

impl Default for RepositoryConfig {
    fn default() -> Self {
        RepositoryConfig {
            local: true,
            path: "/backups".into(),
            compression: Compression::Zstd,
            compression_level: None,
            compression_threads: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionMode {
    /// AES256 with a passphrase.
    Symmetric,
    /// To the public keys in `recipients`.
    Recipients,
    /// No encryption (must be chosen explicitly).
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    pub mode: EncryptionMode,
    /// File holding the passphrase (mode 0600 or refused).
    pub passphrase_file: Option<PathBuf>,
    /// Name of an environment variable holding the passphrase.
    pub passphrase_env: Option<String>,
    /// A command (run by `sh -c`) whose first stdout line is the passphrase.
    pub passphrase_command: Option<String>,
    /// Key IDs or fingerprints for `mode = "recipients"`.
    pub recipients: Vec<String>,
    /// GnuPG home holding the recipients' public keys (and the secret key to restore).
    pub gpg_home: Option<PathBuf>,
    /// Deadline for `passphrase_command`.
    pub command_timeout_secs: u64,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            mode: EncryptionMode::Symmetric,
            passphrase_file: None,
            passphrase_env: None,
            passphrase_command: None,
            recipients: Vec::new(),
            gpg_home: None,
            command_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Apply the policy after every successful backup.
    pub enabled: bool,
    pub keep_last: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// Delete backups older than this, whatever the other rules keep (never the newest verified).
    pub max_age_days: Option<u32>,
    /// After base-backup retention, delete archived WAL that no retained base backup
    /// needs (before the oldest one's start segment; only once one of them is verified).
    pub expire_wal: bool,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            enabled: true,
            keep_last: 7,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            max_age_days: None,
            expire_wal: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// `verify-backup` warns (exit 1) when the newest backup is older than this.
    pub max_age_warn_hours: Option<u64>,
    /// `verify-backup` fails (exit 2) when the newest backup is older than this.
    pub max_age_crit_hours: Option<u64>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            max_age_warn_hours: Some(26),
            max_age_crit_hours: Some(50),
        }
    }
}

/// The local PostgreSQL server as a service (for `pitr`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// The server's data directory (moved aside, never deleted, by `pitr`).
    pub data_dir: Option<PathBuf>,
    /// systemd unit controlling the server, e.g. "postgresql@15-main".
    pub service: Option<String>,
    /// Without systemd: shell commands that start (and wait for) / stop the server.
    pub start_command: Option<String>,
    pub stop_command: Option<String>,
    /// Owner of the data directory.
    pub os_user: String,
    /// Deadline for one start or stop.
    pub start_timeout_secs: u64,
    /// Deadline for recovery to reach its target after the start.
    pub recovery_timeout_secs: u64,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig {
            data_dir: None,
            service: None,
            start_command: None,
            stop_command: None,
            os_user: "postgres".into(),
            start_timeout_secs: 300,
            recovery_timeout_secs: 3600,
        }
    }
}

/// The application as a service (`health`, `restart`, `diagnose`, `disaster-recover`):
/// controlled through systemd, or through configured commands when `start_command` is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// systemd unit of the application (used unless `start_command` is set).
    pub service: String,
    /// Without systemd (and in tests): a shell command that starts the application and returns.
    pub start_command: Option<String>,
    /// Shell command asking the application to stop (needed with `start_command`).
    pub stop_command: Option<String>,
    /// Shell command exiting 0 while the application runs (or use `pid_file`).
    pub status_command: Option<String>,
    /// File holding the main PID: the only process `restart` may SIGKILL (commands mode).
    pub pid_file: Option<PathBuf>,
    /// Deadline for one start command (systemctl start).
    pub start_timeout_secs: u64,
    /// Deadline for the stop, after which the main PID gets SIGKILL.
    pub stop_timeout_secs: u64,
    /// Deadline for the main PID to vanish after SIGKILL.
    pub kill_timeout_secs: u64,
    /// Deadline for one status query (systemctl is-active / status_command).
    pub status_timeout_secs: u64,
    /// The application's HTTP health endpoint.
    pub health_url: String,
    /// The status code a healthy application answers.
    pub health_status: u16,
    /// The body must contain this text.
    pub health_body_contains: Option<String>,
    /// The body must be JSON with this field (dotted path, e.g. "version" or "db.status").
    pub health_json_field: Option<String>,
    /// ...and the field must equal this value (compared as text).
    pub health_json_value: Option<String>,
    /// Deadline for one health request.
    pub health_timeout_secs: u64,
    /// `restart`: deadline for the application to become healthy after the start.
    pub ready_timeout_secs: u64,
    /// `restart` empties these directories (contents only; each must lie under a `cache_roots` entry).
    pub cache_dirs: Vec<PathBuf>,
    /// The only trees `restart` may delete anything in.
    pub cache_roots: Vec<PathBuf>,
    /// Application logs: `diagnose` takes the last lines of each.
    pub log_files: Vec<PathBuf>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            service: "tuneton-app".into(),
            start_command: None,
            stop_command: None,
            status_command: None,
            pid_file: None,
            start_timeout_secs: 60,
            stop_timeout_secs: 30,
            kill_timeout_secs: 10,
            status_timeout_secs: 10,
            health_url: "http://localhost:3000/health".into(),
            health_status: 200,
            health_body_contains: None,
            health_json_field: None,
            health_json_value: None,
            health_timeout_secs: 5,
            ready_timeout_secs: 120,
            cache_dirs: vec!["/app/cache".into(), "/tmp/tuneton".into()],
            cache_roots: vec!["/app/cache".into(), "/tmp/tuneton".into()],
            log_files: vec![
                "/var/log/tuneton/application.log".into(),
                "/var/log/tuneton/error.log".into(),
            ],
        }
    }
}

/// `health`: which checks run, each with its deadline and thresholds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// `health --alert` remembers each check's last state here (to alert on changes only).
    pub state_file: PathBuf,
    pub service: ServiceCheckConfig,
    pub http: TimedCheckConfig,
    pub database: TimedCheckConfig,
    pub disk: DiskCheckConfig,
    pub memory: MemoryCheckConfig,
    pub load: LoadCheckConfig,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            state_file: "/var/lib/tuneton/health-state.json".into(),
            service: ServiceCheckConfig::default(),
            http: TimedCheckConfig {
                enabled: true,
                timeout_secs: 5,
                warn_ms: 1000,
                crit_ms: 3000,
            },
            database: TimedCheckConfig {
                enabled: true,
                timeout_secs: 5,
                warn_ms: 500,
                crit_ms: 2000,
            },
            disk: DiskCheckConfig::default(),
            memory: MemoryCheckConfig::default(),
            load: LoadCheckConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceCheckConfig {
    pub enabled: bool,
    pub timeout_secs: u64,
}

impl Default for ServiceCheckConfig {
    fn default() -> Self {
        ServiceCheckConfig {
            enabled: true,
            timeout_secs: 5,
        }
    }
}

/// A check measured in time (HTTP response, database connect).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimedCheckConfig {
    pub enabled: bool,
    /// No answer within this is CRITICAL.
    pub timeout_secs: u64,
    pub warn_ms: u64,
    pub crit_ms: u64,
}

impl Default for TimedCheckConfig {
    fn default() -> Self {
        TimedCheckConfig {
            enabled: true,
            timeout_secs: 5,
            warn_ms: 1000,
            crit_ms: 3000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskCheckConfig {
    pub enabled: bool,
    /// Each path is checked on the filesystem that holds it.
    pub paths: Vec<PathBuf>,
    /// "80%": used share (of the space non-root users can have) at or above; "5GiB": available below.
    pub warn: String,
    pub crit: String,
    /// "80%": inodes used at or above; "10000": free inodes below.
    pub inodes_warn: String,
    pub inodes_crit: String,
    pub timeout_secs: u64,
}

impl Default for DiskCheckConfig {
    fn default() -> Self {
        DiskCheckConfig {
            enabled: true,
            paths: vec!["/".into(), "/var/lib/postgresql".into(), "/backups".into()],
            warn: "80%".into(),
            crit: "90%".into(),
            inodes_warn: "80%".into(),
            inodes_crit: "90%".into(),
            timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryCheckConfig {
    pub enabled: bool,
    /// "85%": used share (MemTotal - MemAvailable) at or above; "512MiB": MemAvailable below.
    pub warn: String,
    pub crit: String,
    pub timeout_secs: u64,
}

impl Default for MemoryCheckConfig {
    fn default() -> Self {
        MemoryCheckConfig {
            enabled: true,
            warn: "85%".into(),
            crit: "95%".into(),
            timeout_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadCheckConfig {
    pub enabled: bool,
    /// Thresholds apply to the 5-minute load average divided by the number of cores.
    pub per_core: bool,
    pub warn: f64,
    pub crit: f64,
    pub timeout_secs: u64,
}

impl Default for LoadCheckConfig {
    fn default() -> Self {
        LoadCheckConfig {
            enabled: true,
            per_core: true,
            warn: 2.0,
            crit: 4.0,
            timeout_secs: 5,
        }
    }
}

/// Alert channels. A channel is in use when its required settings exist: Slack
/// with a webhook URL, PagerDuty with a routing key, email with recipients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Every mutating command (backup, verify-backup, restore, ...) reports a failed run through the channels.
    pub alert_on_failure: bool,
    /// The host name in messages and PagerDuty's `source` (default: this host's name).
    pub host_name: Option<String>,
    /// Deadline for one request (HTTP, SMTP, sendmail).
    pub request_timeout_secs: u64,
    /// Transient failures (5xx, 429, timeouts, SMTP 4xx) are retried until this deadline.
    pub retry_deadline_secs: u64,
    pub slack: SlackConfig,
    pub pagerduty: PagerDutyConfig,
    pub email: EmailConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            alert_on_failure: false,
            host_name: None,
            request_timeout_secs: 10,
            retry_deadline_secs: 60,
            slack: SlackConfig::default(),
            pagerduty: PagerDutyConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackConfig {
    /// File holding the incoming-webhook URL (mode 0600 or refused); env SLACK_WEBHOOK_URL wins.
    pub webhook_url_file: Option<PathBuf>,
    #[serde(skip_deserializing)]
    pub webhook_url: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagerDutyConfig {
    /// Events API v2 endpoint.
    pub events_url: String,
    /// File holding the integration's routing key (0600); env PAGERDUTY_ROUTING_KEY wins.
    pub routing_key_file: Option<PathBuf>,
    #[serde(skip_deserializing)]
    pub routing_key: Option<Secret>,
}

impl Default for PagerDutyConfig {
    fn default() -> Self {
        PagerDutyConfig {
            events_url: "https://events.pagerduty.com/v2/enqueue".into(),
            routing_key_file: None,
            routing_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EmailTransport {
    /// SMTP to `smtp_host:smtp_port` (no TLS: a local or loopback relay).
    Smtp,
    /// The local MTA: `sendmail -i -t` with the message on stdin.
    Sendmail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Recipients; env EMAIL_RECIPIENTS (comma-separated) wins. Empty: no email.
    pub to: Vec<String>,
    pub from: String,
    pub transport: EmailTransport,
    pub smtp_host: String,
    pub smtp_port: u16,
    /// AUTH PLAIN user (only to a loopback smtp_host: this client speaks no TLS).
    pub smtp_user: Option<String>,
    /// File holding the SMTP password (0600); env SMTP_PASSWORD wins.
    pub smtp_password_file: Option<PathBuf>,
    pub sendmail_path: PathBuf,
    #[serde(skip_deserializing)]
    pub smtp_password: Option<Secret>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            to: Vec::new(),
            from: "tuneton-ops@localhost".into(),
            transport: EmailTransport::Smtp,
            smtp_host: "localhost".into(),
            smtp_port: 25,
            smtp_user: None,
            smtp_password_file: None,
            sendmail_path: "/usr/sbin/sendmail".into(),
            smtp_password: None,
        }
    }
}

/// `diagnose`: what goes into the bundle and where it goes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnoseConfig {
    /// Where bundles are written (`--out` overrides).
    pub out_dir: PathBuf,
    /// Last lines taken from each log (app.log_files and the job logs in paths.log_dir).
    pub log_lines: usize,
    /// Cap on each part of the bundle, after redaction.
    pub part_max_bytes: u64,
    /// More `host:port` endpoints whose TCP connect time is measured (the database,
    /// the health URL, S3 and the alert endpoints are always measured).
    pub endpoints: Vec<String>,
    /// Deadline for each TCP connect, each statvfs, each tool run.
    pub connect_timeout_secs: u64,
    /// statement_timeout and connect deadline for the database probe.
    pub db_timeout_secs: u64,
    /// Queries running longer than this are listed.
    pub long_query_secs: u64,
    /// Upload every bundle to the S3 repository (`diagnostics/`), as `--upload` does.
    pub upload: bool,
    /// Email every bundle through alerts.email, as `--email` does.
    pub email: bool,
}

impl Default for DiagnoseConfig {
    fn default() -> Self {
        DiagnoseConfig {
            out_dir: "/var/diag/emergency".into(),
            log_lines: 1000,
            part_max_bytes: 1024 * 1024,
            endpoints: Vec::new(),
            connect_timeout_secs: 3,
            db_timeout_secs: 10,
            long_query_secs: 60,
            upload: false,
            email: false,
        }
    }
}

/// The S3-compatible repository (same layout as the local one, under `prefix`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub enabled: bool,
    /// e.g. "https://s3.eu-west-1.amazonaws.com" or "http://127.0.0.1:3900".
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    /// Path-style addressing (endpoint/bucket/key): needed by most self-hosted stores.
    pub path_style: bool,
    /// Not a secret; also AWS_ACCESS_KEY_ID.
    pub access_key_id: Option<String>,
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret key (mode 0600 or refused); AWS_SECRET_ACCESS_KEY wins.
    pub secret_access_key_file: Option<PathBuf>,
    /// Deadline for one HTTP request.
    pub request_timeout_secs: u64,
    /// Transient failures (timeouts, resets, 5xx, 429) are retried until this deadline.
    pub retry_deadline_secs: u64,
    /// First multipart part size; parts double every 1000 parts (10 000-part limit).
    pub part_size_mib: u64,
    /// With a local repository too: delete the local copy once the upload is verified.
    pub upload_then_delete_local: bool,
    #[serde(skip_deserializing)]
    pub secret_access_key: Option<Secret>,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            enabled: false,
            endpoint: "https://s3.amazonaws.com".into(),
            region: "us-east-1".into(),
            bucket: String::new(),
            prefix: "tuneton".into(),
            path_style: true,
            access_key_id: None,
            access_key_id_file: None,
            secret_access_key_file: None,
            request_timeout_secs: 60,
            retry_deadline_secs: 300,
            part_size_mib: 8,
            upload_then_delete_local: false,
            secret_access_key: None,
        }
    }
}

/// Log rotation (`rotate-logs`): the sets of log files and how each is rotated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Last rotation per file (for `max_age_days`); default `<run_dir>/rotate-logs.state.json`.
    /// Losing it is harmless: it is rebuilt from the archives' names.
    pub state_file: Option<PathBuf>,
    /// Archives compressed at the same time, one thread each.
    pub compress_threads: u32,
    /// `[[logs.sets]]` tables; the default is one set mirroring the old script.
    pub sets: Vec<LogSetConfig>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            state_file: None,
            compress_threads: 2,
            sets: vec![LogSetConfig::default()],
        }
    }
}

/// How the process writing a log is made to write into the new file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReopenMode {
    /// Rename, create the new file, send `signal` to the PID in `pid_file`.
    Signal,
    /// Rename, create the new file, run `command`.
    Command,
    /// For writers that never reopen: archive the file's prefix and remove it in place.
    Copytruncate,
    /// Rename and create only; refused while a process holds the file open for writing.
    None,
}

/// A size: bytes, or a number with a K/M/G/T suffix (powers of 1024), e.g. "100M".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SizeSetting {
    Bytes(u64),
    Text(String),
}

impl SizeSetting {
    pub fn bytes(&self) -> std::result::Result<u64, String> {
        match self {
            SizeSetting::Bytes(n) => Ok(*n),
            SizeSetting::Text(t) => parse_size(t),
        }
    }
}

/// Parses "104857600", "100M", "100MB", "100MiB", "1.5G" (K/M/G/T are powers of 1024).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => {
            return Err(format!(
                "{text:?} is not a size (bytes, or a K/M/G/T suffix: \"100M\")"
            ))
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a K/M/G/T suffix: \"100M\")"))?;
    Ok((n * mult as f64) as u64)
}

/// One log set: which files, when to rotate them, how to tell the writer, what to keep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LogSetConfig {
    /// Names the set in reports and for `rotate-logs --set NAME`.
    pub name: String,
    /// Files or globs (`*`, `?`, `[a-z]`); relative ones are under `paths.log_dir`.
    pub paths: Vec<String>,
    /// Rotate a file larger than this.
    pub max_size: SizeSetting,
    /// Also rotate a (non-empty) file whose current generation is older than this.
    pub max_age_days: Option<u32>,
    /// Archives kept per file (the newest ones); unset: no count limit.
    pub keep: Option<u32>,
    /// Archives older than this (by the time in their name) are deleted.
    pub keep_days: Option<u32>,
    pub compress: Compression,
    /// gzip 1..=9 (default 6), zstd 1..=19 (default 3).
    pub compress_level: Option<i32>,
    /// Owner, group and mode (octal string) of the new file; default: the old file's.
    pub owner: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    pub reopen: ReopenMode,
    /// For `reopen = "signal"`: HUP, USR1, USR2, ...
    pub signal: String,
    pub pid_file: Option<PathBuf>,
    /// For `reopen = "command"`: run by `sh -c` once per run of the set, after the renames.
    pub command: Option<String>,
    /// Deadline for `command`.
    pub command_timeout_secs: u64,
    /// How long to wait for writers to let go of the old generation before leaving it uncompressed.
    pub reopen_timeout_secs: u64,
    /// Where archives go: an absolute directory, or one relative to each log's directory ("." = beside it).
    pub archive_dir: PathBuf,
}

impl Default for LogSetConfig {
    fn default() -> Self {
        LogSetConfig {
            name: "tuneton".into(),
            paths: vec!["*.log".into()],
            max_size: SizeSetting::Text("100M".into()),
            max_age_days: None,
            keep: None,
            keep_days: Some(90),
            compress: Compression::Gzip,
            compress_level: None,
            owner: None,
            group: None,
            mode: None,
            reopen: ReopenMode::Copytruncate,
            signal: "HUP".into(),
            pid_file: None,
            command: None,
            command_timeout_secs: 60,
            reopen_timeout_secs: 10,
            archive_dir: "archive".into(),
        }
    }
}

/// Signals a writer may be told to reopen with (never one whose default action stops it for good).
pub const REOPEN_SIGNALS: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("WINCH", libc::SIGWINCH),
    ("ALRM", libc::SIGALRM),
    ("IO", libc::SIGIO),
];

/// The signal number for a name like "HUP", "SIGUSR1" or "usr1".
pub fn reopen_signal(name: &str) -> Option<libc::c_int> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    REOPEN_SIGNALS
        .iter()
        .find(|(n, _)| *n == bare)
        .map(|(_, s)| *s)
}

/// Parses an octal file mode such as "0640" or "640".
pub fn parse_mode(text: &str) -> std::result::Result<u32, String> {
    let t = text.trim();
    let t = t.strip_prefix("0o").unwrap_or(t);
    match u32::from_str_radix(t, 8) {
        Ok(m) if m <= 0o7777 && !t.is_empty() => Ok(m),
        _ => Err(format!(
            "{text:?} is not an octal file mode such as \"0640\""
        )),
    }
}

impl LogsConfig {
    fn validate(&self, problems: &mut Vec<String>) {
        if !(1..=64).contains(&self.compress_threads) {
            problems.push(format!(
                "logs.compress_threads: {} is outside 1..=64",
                self.compress_threads
            ));
        }
        if let Some(p) = &self.state_file {
            if !p.is_absolute() {
                problems.push(format!(
                    "logs.state_file: must be an absolute path, got {:?}",
                    p.display().to_string()
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, set) in self.sets.iter().enumerate() {
            let key = format!("logs.sets[{i}]");
            if set.name.is_empty()
                || !set
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                problems.push(format!(
                    "{key}.name: {:?} must be non-empty letters, digits, '-' or '_'",
                    set.name
                ));
            } else if !names.insert(set.name.clone()) {
                problems.push(format!(
                    "{key}.name: {:?} is used by another set; names must be unique",
                    set.name
                ));
            }
            set.validate(&key, problems);
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, set) in self.sets.iter().enumerate() {
            for p in &set.paths {
                if let Some(j) = seen.insert(p.as_str(), i) {
                    if j != i {
                        problems.push(format!(
                            "logs.sets[{i}].paths: {p:?} is also in logs.sets[{j}]; a file belongs to one set"
                        ));
                    }
                }
            }
        }
    }
}

impl LogSetConfig {
    fn validate(&self, key: &str, problems: &mut Vec<String>) {
        if self.paths.is_empty() {
            problems.push(format!("{key}.paths: must list at least one file or glob"));
        }
        for p in &self.paths {
            if p.is_empty() || p.ends_with('/') || p.contains('\0') {
                problems.push(format!("{key}.paths: {p:?} is not a file path or glob"));
            } else if p.split('/').any(|c| c == "..") {
                problems.push(format!("{key}.paths: {p:?} must not contain \"..\""));
            }
        }
        match self.max_size.bytes() {
            Ok(0) => problems.push(format!("{key}.max_size: must be more than 0 bytes")),
            Ok(_) => {}
            Err(e) => problems.push(format!("{key}.max_size: {e}")),
        }
        if self.max_age_days == Some(0) {
            problems.push(format!("{key}.max_age_days: must be at least 1 (or unset)"));
        }
        if self.keep == Some(0) {
            problems.push(format!(
                "{key}.keep: must be at least 1 (or unset for no count limit)"
            ));
        }
        if self.keep_days == Some(0) {
            problems.push(format!("{key}.keep_days: must be at least 1 (or unset)"));
        }
        if let Some(level) = self.compress_level {
            let (lo, hi) = match self.compress {
                Compression::Zstd => (1, 19),
                Compression::Gzip => (1, 9),
                Compression::None => (0, 0),
            };
            if level < lo || level > hi {
                problems.push(format!(
                    "{key}.compress_level: {level} is outside {lo}..={hi} for {:?}",
                    self.compress
                ));
            }
        }
        if let Some(m) = &self.mode {
            if let Err(e) = parse_mode(m) {
                problems.push(format!("{key}.mode: {e}"));
            }
        }
        if let Some(o) = &self.owner {
            if crate::logs::fsops::lookup_user(o).is_none() {
                problems.push(format!("{key}.owner: no such user {o:?}"));
            }
        }
        if let Some(g) = &self.group {
            if crate::logs::fsops::lookup_group(g).is_none() {
                problems.push(format!("{key}.group: no such group {g:?}"));
            }
        }
        match self.reopen {
            ReopenMode::Signal => {
                if self.pid_file.is_none() {
                    problems.push(format!(
                        "{key}.pid_file: reopen = \"signal\" needs the writer's pid file"
                    ));
                }
                if reopen_signal(&self.signal).is_none() {
                    let names: Vec<&str> = REOPEN_SIGNALS.iter().map(|(n, _)| *n).collect();
                    problems.push(format!(
                        "{key}.signal: {:?} is not one of {}",
                        self.signal,
                        names.join(", ")
                    ));
                }
            }
            ReopenMode::Command => {
                if self.command.as_deref().is_none_or(|c| c.trim().is_empty()) {
                    problems.push(format!(
                        "{key}.command: reopen = \"command\" needs a command"
                    ));
                }
            }
            ReopenMode::Copytruncate | ReopenMode::None => {}
        }
        if let Some(p) = &self.pid_file {
            if !p.is_absolute() {
                problems.push(format!(
                    "{key}.pid_file: must be an absolute path, got {:?}",
                    p.display().to_string()
                ));
            }
        }
        if self.command_timeout_secs == 0 {
            problems.push(format!(
                "{key}.command_timeout_secs: must be at least 1 (every wait has a deadline)"
            ));
        }
        if self.archive_dir.as_os_str().is_empty() {
            problems.push(format!(
                "{key}.archive_dir: must not be empty (\".\" keeps archives beside the log)"
            ));
        }
    }
}

/// Where one resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(n) => write!(f, "env {n}"),
            Source::Flag(n) => write!(f, "flag {n}"),
        }
    }
}

/// The merged configuration plus where each value came from.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub sources: BTreeMap<String, Source>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Sections of the file that could not be read (wrong value types), by section.
    pub parse_problems: Vec<String>,
}

/// Environment names the old scripts used, and the key each overrides.
const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("DB_HOST", "database.host"),
    ("DB_PORT", "database.port"),
    ("DB_USER", "database.user"),
    ("DB_NAME", "database.name"),
    ("PGPASSFILE", "database.passfile"),
    ("BACKUP_DIR", "repository.path"),
    ("LOG_DIR", "paths.log_dir"),
    ("APP_DIR", "paths.app_dir"),
    ("AWS_ACCESS_KEY_ID", "s3.access_key_id"),
    ("AWS_ENDPOINT_URL", "s3.endpoint"),
    ("AWS_REGION", "s3.region"),
];

impl Settings {
    /// Loads defaults, then the file, then the environment, then flags.
    /// A missing file is fine only when none was asked for explicitly.
    pub fn load(global: &GlobalArgs) -> Result<Settings> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let (path, explicit) = match (&global.config, env("TUNETON_OPS_CONFIG")) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let mut sources = BTreeMap::new();
        let mut parse_problems = Vec::new();
        let (mut config, file) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (config, problems) = parse_sections(&text, &path)?;
                parse_problems = problems;
                let raw: toml::Value = toml::from_str(&text).expect("parsed above");
                for key in flatten_keys(&serde_json::to_value(&raw).unwrap_or_default()) {
                    sources.insert(key, Source::File(path.clone()));
                }
                // Absolute: commands hand this path to others (pitr's restore_command runs in the data directory).
                (config, Some(std::path::absolute(&path).unwrap_or(path)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (Config::default(), None)
            }
            Err(e) => {
                return Err(could_not_start(format!(
                "cannot read config file {}: {e} (pass --config PATH or set TUNETON_OPS_CONFIG)",
                path.display()
            )))
            }
        };

        for (var, key) in ENV_OVERRIDES {
            if let Some(v) = env(var) {
                apply(&mut config, key, &v)
                    .map_err(|e| could_not_start(format!("environment {var}: {e}")))?;
                sources.insert(key.to_string(), Source::Env(var));
            }
        }
        if let Some(v) = std::env::var_os("PGPASSWORD").filter(|v| !v.is_empty()) {
            config.database.password = Some(Secret::new(v.to_string_lossy()));
            sources.insert("database.password".into(), Source::Env("PGPASSWORD"));
        } else if let Some(p) = config.database.password_file.clone() {
            let pw = read_secret_file(&p).context("database.password_file")?;
            config.database.password = Some(pw);
            sources.insert("database.password".into(), Source::File(p));
        }
        if config.s3.access_key_id.is_none() {
            if let Some(p) = config.s3.access_key_id_file.clone() {
                let key = std::fs::read_to_string(&p).map_err(|e| {
                    could_not_start(format!("s3.access_key_id_file {}: {e}", p.display()))
                })?;
                config.s3.access_key_id = Some(key.trim().to_string());
                sources.insert("s3.access_key_id".into(), Source::File(p));
            }
        }
        if let Some(v) = std::env::var_os("AWS_SECRET_ACCESS_KEY").filter(|v| !v.is_empty()) {
            config.s3.secret_access_key = Some(Secret::new(v.to_string_lossy()));
            sources.insert(
                "s3.secret_access_key".into(),
                Source::Env("AWS_SECRET_ACCESS_KEY"),
            );
        } else if let Some(p) = config.s3.secret_access_key_file.clone() {
            let secret = read_secret_file(&p).context("s3.secret_access_key_file")?;
            config.s3.secret_access_key = Some(secret);
            sources.insert("s3.secret_access_key".into(), Source::File(p));
        }
        let secret_from = |var: &'static str,
                           file: &Option<PathBuf>,
                           key: &'static str,
                           sources: &mut BTreeMap<String, Source>|
         -> Result<Option<Secret>> {
            if let Some(v) = env(var) {
                sources.insert(key.into(), Source::Env(var));
                return Ok(Some(Secret::new(v)));
            }
            match file {
                Some(p) => {
                    let s = read_secret_file(p).with_context(|| format!("{key}_file"))?;
                    sources.insert(key.into(), Source::File(p.clone()));
                    Ok(Some(s))
                }
                None => Ok(None),
            }
        };
        config.alerts.slack.webhook_url = secret_from(
            "SLACK_WEBHOOK_URL",
            &config.alerts.slack.webhook_url_file,
            "alerts.slack.webhook_url",
            &mut sources,
        )?;
        config.alerts.pagerduty.routing_key = secret_from(
            "PAGERDUTY_ROUTING_KEY",
            &config.alerts.pagerduty.routing_key_file,
            "alerts.pagerduty.routing_key",
            &mut sources,
        )?;
        config.alerts.email.smtp_password = secret_from(
            "SMTP_PASSWORD",
            &config.alerts.email.smtp_password_file,
            "alerts.email.smtp_password",
            &mut sources,
        )?;
        if let Some(v) = env("EMAIL_RECIPIENTS") {
            config.alerts.email.to = v
                .split([',', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            sources.insert("alerts.email.to".into(), Source::Env("EMAIL_RECIPIENTS"));
        }
        if let Some(r) = &global.repo {
            config.repository.path = r.clone();
            sources.insert("repository.path".into(), Source::Flag("--repo"));
        }
        if let Some(n) = &global.db_name {
            config.database.name = n.clone();
            sources.insert("database.name".into(), Source::Flag("--db-name"));
        }
        Ok(Settings {
            config,
            sources,
            file,
            parse_problems,
        })
    }

    /// Checks the values, not just the syntax. Each problem names its key.
    pub fn validate(&self) -> Vec<String> {
        let c = &self.config;
        let mut problems = self.parse_problems.clone();
        for (key, p) in [
            ("paths.log_dir", &c.paths.log_dir),
            ("paths.run_dir", &c.paths.run_dir),
            ("paths.app_dir", &c.paths.app_dir),
            ("paths.config_dir", &c.paths.config_dir),
            ("paths.scratch_dir", &c.paths.scratch_dir),
            ("repository.path", &c.repository.path),
        ] {
            if !p.is_absolute() {
                problems.push(format!(
                    "{key}: must be an absolute path, got {:?}",
                    p.display().to_string()
                ));
            }
        }
        if c.database.port == 0 {
            problems.push("database.port: must be 1..65535".into());
        }
        if c.database.name.is_empty() {
            problems.push("database.name: must not be empty".into());
        }
        if c.database.connect_timeout_secs == 0 {
            problems.push(
                "database.connect_timeout_secs: must be at least 1 (every wait has a deadline)"
                    .into(),
            );
        }
        if c.database.command_timeout_secs == 0 {
            problems.push(
                "database.command_timeout_secs: must be at least 1 (every wait has a deadline)"
                    .into(),
            );
        }
        if let Some(level) = c.repository.compression_level {
            let (lo, hi) = match c.repository.compression {
                Compression::Zstd => (1, 19),
                Compression::Gzip => (1, 9),
                Compression::None => (0, 0),
            };
            if level < lo || level > hi {
                problems.push(format!(
                    "repository.compression_level: {level} is outside {lo}..={hi} for {:?}",
                    c.repository.compression
                ));
            }
        }
        let e = &c.encryption;
        let sources = [
            e.passphrase_file.is_some(),
            e.passphrase_env.is_some(),
            e.passphrase_command.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        match e.mode {
            EncryptionMode::Symmetric => {
                if sources == 0 {
                    problems.push(
                        "encryption: mode = \"symmetric\" needs one of passphrase_file, passphrase_env, passphrase_command"
                            .into(),
                    );
                } else if sources > 1 {
                    problems.push("encryption: set only one of passphrase_file, passphrase_env, passphrase_command".into());
                }
                if let Some(p) = &e.passphrase_file {
                    if !p.is_absolute() {
                        problems.push(format!(
                            "encryption.passphrase_file: must be an absolute path, got {:?} (it would be read relative to wherever the command runs)",
                            p.display().to_string()
                        ));
                    } else if let Err(err) = read_passphrase_file(p) {
                        // Mode, readability and an empty file: found by `config check`, not at 2 a.m.
                        problems.push(format!("encryption.passphrase_file: {err:#}"));
                    }
                }
                if let Some(v) = &e.passphrase_env {
                    if std::env::var_os(v).is_none() {
                        problems.push(format!(
                            "encryption.passphrase_env: environment variable {v} is not set"
                        ));
                    }
                }
            }
            EncryptionMode::Recipients => {
                if e.recipients.is_empty() {
                    problems.push(
                        "encryption.recipients: mode = \"recipients\" needs at least one key id"
                            .into(),
                    );
                }
            }
            EncryptionMode::None => {}
        }
        if e.command_timeout_secs == 0 {
            problems.push("encryption.command_timeout_secs: must be at least 1".into());
        }
        let s3 = &c.s3;
        if s3.enabled {
            if s3.bucket.is_empty() {
                problems.push("s3.bucket: must be set when s3.enabled = true".into());
            }
            if !(s3.endpoint.starts_with("http://") || s3.endpoint.starts_with("https://")) {
                problems.push(format!(
                    "s3.endpoint: must start with http:// or https://, got {:?}",
                    s3.endpoint
                ));
            }
            if s3.access_key_id.is_none() {
                problems.push(
                    "s3.access_key_id: not set (or s3.access_key_id_file, or AWS_ACCESS_KEY_ID)"
                        .into(),
                );
            }
            if s3.secret_access_key.is_none() {
                problems
                    .push("s3.secret_access_key_file: not set (or AWS_SECRET_ACCESS_KEY)".into());
            }
            if !(5..=5120).contains(&s3.part_size_mib) {
                problems.push(format!(
                    "s3.part_size_mib: {} is outside 5..=5120 (S3's part size limits)",
                    s3.part_size_mib
                ));
            }
            if s3.request_timeout_secs == 0 || s3.retry_deadline_secs == 0 {
                problems.push(
                    "s3.request_timeout_secs / s3.retry_deadline_secs: must be at least 1".into(),
                );
            }
        }
        if !c.repository.local && !s3.enabled {
            problems
                .push("repository.local = false needs an S3 repository (s3.enabled = true)".into());
        }
        if s3.upload_then_delete_local && !(c.repository.local && s3.enabled) {
            problems.push(
                "s3.upload_then_delete_local: needs both repository.local and s3.enabled".into(),
            );
        }
        if let (Some(w), Some(c)) = (c.verify.max_age_warn_hours, c.verify.max_age_crit_hours) {
            if w > c {
                problems.push(format!(
                    "verify.max_age_warn_hours ({w}) must not exceed max_age_crit_hours ({c})"
                ));
            }
        }
        c.logs.validate(&mut problems);
        problems.extend(validate_app(&c.app));
        problems.extend(validate_health(&c.health));
        problems.extend(validate_alerts(&c.alerts));
        let d = &c.diagnose;
        if !d.out_dir.is_absolute() {
            problems.push(format!(
                "diagnose.out_dir: must be an absolute path, got {:?}",
                d.out_dir.display().to_string()
            ));
        }
        if d.connect_timeout_secs == 0 || d.db_timeout_secs == 0 {
            problems.push(
                "diagnose.connect_timeout_secs / diagnose.db_timeout_secs: must be at least 1"
                    .into(),
            );
        }
        if d.part_max_bytes < 1024 {
            problems.push("diagnose.part_max_bytes: must be at least 1024".into());
        }
        for (i, e) in d.endpoints.iter().enumerate() {
            if e.rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                problems.push(format!("diagnose.endpoints[{i}]: {e:?} is not host:port"));
            }
        }
        let r = &c.retention;
        if r.enabled && r.keep_last + r.keep_daily + r.keep_weekly + r.keep_monthly == 0 {
            problems.push("retention: every keep_* is 0; at least one backup must be kept (or set enabled = false)".into());
        }
        problems
    }

    /// Fails with exit 3 listing every problem in the config sections a
    /// command uses (`None`: all). A health check must not refuse to run because
    /// the backup passphrase is not configured on that host.
    pub fn require_valid_for(&self, sections: Option<&[&str]>) -> Result<()> {
        let problems: Vec<String> = self
            .validate()
            .into_iter()
            .filter(|p| sections.is_none_or(|s| s.contains(&problem_section(p))))
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let origin = self
            .file
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        Err(could_not_start(format!(
            "invalid configuration{origin}:\n  {}\n(run `tuneton-ops config check` after fixing)",
            problems.join("\n  ")
        )))
    }

    /// Every leaf value as `key -> (value, source)`, secrets redacted.
    pub fn entries(&self) -> Vec<(String, serde_json::Value, Source)> {
        let value = serde_json::to_value(&self.config).unwrap_or_default();
        let mut out = Vec::new();
        flatten(&value, String::new(), &mut |k, v| {
            let src = self.sources.get(&k).cloned().unwrap_or(Source::Default);
            out.push((k, v.clone(), src));
        });
        out
    }
}

fn validate_app(a: &AppConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if a.start_command.is_some() {
        if a.stop_command.is_none() {
            problems.push("app.stop_command: must be set with app.start_command".into());
        }
        if a.status_command.is_none() && a.pid_file.is_none() {
            problems.push(
                "app.status_command: set it (or app.pid_file) with app.start_command, so the state can be known"
                    .into(),
            );
        }
    } else {
        if a.service.trim().is_empty() {
            problems
                .push("app.service: must name a systemd unit (or set app.start_command)".into());
        }
        if a.stop_command.is_some() || a.status_command.is_some() {
            problems.push(
                "app.start_command: stop_command/status_command are set but start_command is not; set all of them or none"
                    .into(),
            );
        }
    }
    if let Some(p) = &a.pid_file {
        if !p.is_absolute() {
            problems.push(format!(
                "app.pid_file: must be an absolute path, got {:?}",
                p.display().to_string()
            ));
        }
    }
    for (key, v) in [
        ("start_timeout_secs", a.start_timeout_secs),
        ("stop_timeout_secs", a.stop_timeout_secs),
        ("kill_timeout_secs", a.kill_timeout_secs),
        ("status_timeout_secs", a.status_timeout_secs),
        ("health_timeout_secs", a.health_timeout_secs),
        ("ready_timeout_secs", a.ready_timeout_secs),
    ] {
        if v == 0 {
            problems.push(format!(
                "app.{key}: must be at least 1 (every wait has a deadline)"
            ));
        }
    }
    if !(a.health_url.starts_with("http://") || a.health_url.starts_with("https://")) {
        problems.push(format!(
            "app.health_url: must start with http:// or https://, got {:?}",
            a.health_url
        ));
    }
    if !(100..=599).contains(&a.health_status) {
        problems.push(format!(
            "app.health_status: {} is not an HTTP status code",
            a.health_status
        ));
    }
    if a.health_json_value.is_some() && a.health_json_field.is_none() {
        problems.push("app.health_json_value: needs app.health_json_field".into());
    }
    for (i, r) in a.cache_roots.iter().enumerate() {
        if !r.is_absolute() {
            problems.push(format!(
                "app.cache_roots[{i}]: must be an absolute path, got {:?}",
                r.display().to_string()
            ));
        } else if r.parent().is_none() {
            problems.push(format!("app.cache_roots[{i}]: must not be /"));
        }
    }
    for (i, d) in a.cache_dirs.iter().enumerate() {
        if !d.is_absolute() {
            problems.push(format!(
                "app.cache_dirs[{i}]: must be an absolute path, got {:?}",
                d.display().to_string()
            ));
        } else if d.parent().is_none() {
            problems.push(format!("app.cache_dirs[{i}]: refusing to clear /"));
        } else if !a
            .cache_roots
            .iter()
            .any(|r| r.parent().is_some() && d.starts_with(r))
        {
            problems.push(format!(
                "app.cache_dirs[{i}]: {} is not under any of app.cache_roots",
                d.display()
            ));
        }
    }
    for (i, l) in a.log_files.iter().enumerate() {
        if !l.is_absolute() {
            problems.push(format!(
                "app.log_files[{i}]: must be an absolute path, got {:?}",
                l.display().to_string()
            ));
        }
    }
    problems
}

fn validate_health(h: &HealthConfig) -> Vec<String> {
    use crate::checks::Threshold;
    let mut problems = Vec::new();
    if !h.state_file.is_absolute() {
        problems.push(format!(
            "health.state_file: must be an absolute path, got {:?}",
            h.state_file.display().to_string()
        ));
    }
    for (key, t) in [("http", &h.http), ("database", &h.database)] {
        if t.warn_ms > t.crit_ms {
            problems.push(format!(
                "health.{key}.warn_ms ({}) must not exceed crit_ms ({})",
                t.warn_ms, t.crit_ms
            ));
        }
    }
    for (key, v) in [
        ("service", h.service.timeout_secs),
        ("http", h.http.timeout_secs),
        ("database", h.database.timeout_secs),
        ("disk", h.disk.timeout_secs),
        ("memory", h.memory.timeout_secs),
        ("load", h.load.timeout_secs),
    ] {
        if v == 0 {
            problems.push(format!(
                "health.{key}.timeout_secs: must be at least 1 (every wait has a deadline)"
            ));
        }
    }
    for (key, text, bytes) in [
        ("disk.warn", &h.disk.warn, true),
        ("disk.crit", &h.disk.crit, true),
        ("disk.inodes_warn", &h.disk.inodes_warn, false),
        ("disk.inodes_crit", &h.disk.inodes_crit, false),
        ("memory.warn", &h.memory.warn, true),
        ("memory.crit", &h.memory.crit, true),
    ] {
        if let Err(e) = Threshold::parse(text, bytes) {
            problems.push(format!("health.{key}: {e}"));
        }
    }
    // warn must fire no later than crit. Pairs of different kinds (a share
    // and an amount) cannot be compared and are left to the operator.
    for (key, warn, crit, bytes) in [
        ("disk.warn", &h.disk.warn, &h.disk.crit, true),
        (
            "disk.inodes_warn",
            &h.disk.inodes_warn,
            &h.disk.inodes_crit,
            false,
        ),
        ("memory.warn", &h.memory.warn, &h.memory.crit, true),
    ] {
        let crit_key = key.replace("warn", "crit");
        match (Threshold::parse(warn, bytes), Threshold::parse(crit, bytes)) {
            (Ok(Threshold::UsedPercent(w)), Ok(Threshold::UsedPercent(c))) if w > c => problems
                .push(format!(
                    "health.{key} ({warn:?}) must not exceed health.{crit_key} ({crit:?}): \
                     a used share warns at or below the share that is critical"
                )),
            (Ok(Threshold::AvailableBelow(w)), Ok(Threshold::AvailableBelow(c))) if w < c => {
                problems.push(format!(
                    "health.{key} ({warn:?}) must not be below health.{crit_key} ({crit:?}): \
                     an amount available warns at or above the amount that is critical"
                ))
            }
            _ => {}
        }
    }
    for (i, p) in h.disk.paths.iter().enumerate() {
        if !p.is_absolute() {
            problems.push(format!(
                "health.disk.paths[{i}]: must be an absolute path, got {:?}",
                p.display().to_string()
            ));
        }
    }
    if !(h.load.warn >= 0.0 && h.load.warn <= h.load.crit) {
        problems.push(format!(
            "health.load.warn ({}) must be between 0 and crit ({})",
            h.load.warn, h.load.crit
        ));
    }
    problems
}

fn validate_alerts(a: &AlertsConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if a.request_timeout_secs == 0 || a.retry_deadline_secs == 0 {
        problems.push(
            "alerts.request_timeout_secs / alerts.retry_deadline_secs: must be at least 1".into(),
        );
    }
    if let Some(u) = &a.slack.webhook_url {
        if !(u.expose().starts_with("https://") || u.expose().starts_with("http://")) {
            // Never print the value: the URL is the secret.
            problems.push("alerts.slack.webhook_url_file: the webhook URL must start with https:// (or http://)".into());
        }
    }
    let pd = &a.pagerduty.events_url;
    if !(pd.starts_with("https://") || pd.starts_with("http://")) {
        problems.push(format!(
            "alerts.pagerduty.events_url: must start with https:// or http://, got {pd:?}"
        ));
    }
    let e = &a.email;
    for (i, to) in e.to.iter().enumerate() {
        if !to.contains('@') || to.contains(['\r', '\n', '<', '>']) {
            problems.push(format!(
                "alerts.email.to[{i}]: {to:?} is not an email address"
            ));
        }
    }
    if e.from.contains(['\r', '\n', '<', '>']) || !e.from.contains('@') {
        problems.push(format!(
            "alerts.email.from: {:?} is not an email address",
            e.from
        ));
    }
    if e.transport == EmailTransport::Smtp && !e.to.is_empty() {
        if e.smtp_port == 0 {
            problems.push("alerts.email.smtp_port: must be 1..65535".into());
        }
        if e.smtp_password.is_some() && e.smtp_user.is_none() {
            problems.push("alerts.email.smtp_user: needed with an SMTP password".into());
        }
        let loopback = matches!(e.smtp_host.as_str(), "localhost" | "::1")
            || e.smtp_host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if e.smtp_user.is_some() && !loopback {
            problems.push(format!(
                "alerts.email.smtp_user: this client speaks no TLS, so it sends a password only to a loopback relay, not {:?}; \
                 relay through the local MTA (transport = \"sendmail\") instead",
                e.smtp_host
            ));
        }
    }
    problems
}

/// The config section a validation problem is about: every problem starts with its key.
fn problem_section(problem: &str) -> &str {
    let end = problem.find(['.', ':', ' ']).unwrap_or(problem.len());
    &problem[..end]
}

#[cfg(test)]
fn parse(text: &str, path: &Path) -> Result<Config> {
    parse_sections(text, path).map(|(config, _)| config)
}

/// Parses the file; a section whose values have the wrong type is left at its
/// defaults and reported (`section: ...`) instead of failing the whole file, so
/// that, like other invalid values, it stops only the commands that use that
/// section. TOML syntax errors and unknown sections or keys still fail everything.
fn parse_sections(text: &str, path: &Path) -> Result<(Config, Vec<String>)> {
    let fatal = |e: &dyn std::fmt::Display| {
        could_not_start(format!(
            "config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    };
    let whole = match toml::from_str::<Config>(text) {
        Ok(config) => return Ok((config, Vec::new())),
        Err(e) => e,
    };
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        return Err(fatal(&whole)); // a syntax error
    };
    let mut good = toml::Table::new();
    let mut problems = Vec::new();
    for (section, value) in table {
        let mut one = toml::Table::new();
        one.insert(section.clone(), value.clone());
        match toml::Value::Table(one).try_into::<Config>() {
            Ok(_) => {
                good.insert(section, value);
            }
            // An unknown key (or section) is an error for every command.
            Err(e) if e.to_string().contains("unknown field") => return Err(fatal(&whole)),
            Err(e) => {
                // The whole-file error names the line and key: use it for its own section.
                let detail = if section_at(text, whole.span()) == Some(section.as_str()) {
                    whole
                        .to_string()
                        .replace('\n', " ")
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                } else {
                    e.message().trim_end().to_string()
                };
                problems.push(format!(
                    "{section}: {detail} (the [{section}] settings are not used until this is fixed)"
                ))
            }
        }
    }
    let config = toml::Value::Table(good)
        .try_into::<Config>()
        .map_err(|_| fatal(&whole))?;
    Ok((config, problems))
}

/// The top-level section of the table header above byte `span.start` of `text`.
fn section_at(text: &str, span: Option<std::ops::Range<usize>>) -> Option<&str> {
    let before = text.get(..span?.start)?;
    let header = before
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))?;
    header
        .trim_start()
        .trim_start_matches('[')
        .split([']', '.'])
        .next()
        .map(str::trim)
}

/// Sets one dotted key from a string (environment overrides).
fn apply(config: &mut Config, key: &str, v: &str) -> Result<()> {
    match key {
        "database.host" => config.database.host = v.into(),
        "database.port" => {
            config.database.port = v
                .parse()
                .map_err(|_| anyhow::anyhow!("{v:?} is not a port number"))?
        }
        "database.user" => config.database.user = v.into(),
        "database.name" => config.database.name = v.into(),
        "database.passfile" => config.database.passfile = Some(v.into()),
        "repository.path" => config.repository.path = v.into(),
        "paths.log_dir" => config.paths.log_dir = v.into(),
        "paths.app_dir" => config.paths.app_dir = v.into(),
        "s3.access_key_id" => config.s3.access_key_id = Some(v.into()),
        "s3.endpoint" => config.s3.endpoint = v.into(),
        "s3.region" => config.s3.region = v.into(),
        _ => anyhow::bail!("unknown key {key}"),
    }
    Ok(())
}

fn flatten(
    value: &serde_json::Value,
    prefix: String,
    f: &mut dyn FnMut(String, &serde_json::Value),
) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, key, f);
            }
        }
        other => f(prefix, other),
    }
}

fn flatten_keys(value: &serde_json::Value) -> Vec<String> {
    let mut keys = Vec::new();
    flatten(value, String::new(), &mut |k, _| keys.push(k));
    keys
}

/// Refuses a secret file that group or others can read.
pub fn check_secret_file_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "{} has mode {:04o}; secrets must be 0600 or stricter (chmod 600 {})",
            path.display(),
            mode,
            path.display()
        );
    }
    Ok(())
}

/// Reads a secret from a 0600 file: the first line, without its newline.
pub fn read_secret_file(path: &Path) -> Result<Secret> {
    check_secret_file_mode(path).map_err(|e| could_not_start(format!("{e:#}")))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| could_not_start(format!("cannot read secret file {}: {e}", path.display())))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err(could_not_start(format!(
            "secret file {} is empty",
            path.display()
        )));
    }
    Ok(Secret::new(line))
}

/// The backup passphrase file: a secret file that `gpg --passphrase-file` reads the
/// same way (the README's decryption by hand): one line, no carriage return (gpg
/// would keep the CR as part of the passphrase), nothing after it.
pub fn read_passphrase_file(path: &Path) -> Result<Secret> {
    let secret = read_secret_file(path)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    if first.ends_with('\r') {
        return Err(could_not_start(format!(
            "{} has Windows line endings (CR LF): gpg --passphrase-file would read the CR as part of the passphrase. \
             Remove it: sed -i 's/\\r$//' {}",
            path.display(),
            path.display()
        )));
    }
    if !rest.trim().is_empty() {
        return Err(could_not_start(format!(
            "{} has more than one line: only the first would be the passphrase; keep just that line",
            path.display()
        )));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrase_files_read_by_gpg_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            p
        };
        let ok = write("ok", "correct horse\n\n");
        assert_eq!(read_passphrase_file(&ok).unwrap().expose(), "correct horse");
        let crlf = write("crlf", "correct horse\r\n");
        let err = format!("{:#}", read_passphrase_file(&crlf).unwrap_err());
        assert!(err.contains("CR LF"), "{err}");
        let two = write("two", "correct horse\nbattery\n");
        let err = format!("{:#}", read_passphrase_file(&two).unwrap_err());
        assert!(err.contains("more than one line"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_naming_the_key() {
        let err = parse("[database]\nhots = \"x\"\n", Path::new("/x.toml")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("hots"), "{msg}");
        assert_eq!(
            crate::exit::exit_code_for(&err),
            crate::exit::ExitCode::CouldNotStart
        );
    }

    #[test]
    fn password_key_in_file_is_refused() {
        assert!(parse("[database]\npassword = \"hunter2\"\n", Path::new("/x.toml")).is_err());
    }

    #[test]
    fn symmetric_without_passphrase_source_is_invalid() {
        let s = Settings {
            config: Config::default(),
            sources: BTreeMap::new(),
            file: None,
            parse_problems: Vec::new(),
        };
        let problems = s.validate();
        assert!(
            problems.iter().any(|p| p.starts_with("encryption:")),
            "{problems:?}"
        );
    }

    #[test]
    fn secret_debug_and_json_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
    }

    #[test]
    fn validation_can_be_scoped_to_the_sections_a_command_uses() {
        let s = Settings {
            config: Config::default(),
            sources: BTreeMap::new(),
            file: None,
            parse_problems: Vec::new(),
        };
        // Default config has no passphrase source: invalid for backups...
        assert!(s.require_valid_for(None).is_err());
        // ...but a command that never encrypts runs.
        assert!(s.require_valid_for(Some(&["paths", "database"])).is_ok());
        assert_eq!(problem_section("s3.bucket: must be set"), "s3");
        assert_eq!(problem_section("encryption: needs"), "encryption");
        assert_eq!(
            problem_section("repository.local = false needs"),
            "repository"
        );
    }

    #[test]
    fn relative_repository_path_is_invalid() {
        let mut c = Config::default();
        c.repository.path = "backups".into();
        c.encryption.mode = EncryptionMode::None;
        let s = Settings {
            config: c,
            sources: BTreeMap::new(),
            file: None,
            parse_problems: Vec::new(),
        };
        assert!(s
            .validate()
            .iter()
            .any(|p| p.starts_with("repository.path")));
    }

    #[test]
    fn an_smtp_password_goes_only_to_a_loopback_relay() {
        let mut c = Config::default();
        c.alerts.email.to = vec!["oncall@example.com".into()];
        c.alerts.email.smtp_user = Some("ops".into());
        c.alerts.email.smtp_host = "mail.example.com".into();
        let problems = validate_alerts(&c.alerts);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("alerts.email.smtp_user: this client speaks no TLS")),
            "{problems:?}"
        );
        c.alerts.email.smtp_host = "127.0.0.1".into();
        assert!(validate_alerts(&c.alerts).is_empty());
        c.alerts.email.to = vec!["not-an-address".into()];
        assert!(validate_alerts(&c.alerts)[0].starts_with("alerts.email.to[0]"));
    }

    #[test]
    fn cache_dirs_must_lie_under_their_roots_and_never_be_root() {
        let a = AppConfig {
            cache_dirs: vec!["/".into(), "/var/lib/app".into()],
            cache_roots: vec!["/".into(), "/app/cache".into()],
            ..Default::default()
        };
        let p = validate_app(&a);
        assert!(
            p.iter().any(|x| x == "app.cache_roots[0]: must not be /"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x == "app.cache_dirs[0]: refusing to clear /"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|x| x.starts_with("app.cache_dirs[1]: /var/lib/app is not under")),
            "{p:?}"
        );
    }
}
