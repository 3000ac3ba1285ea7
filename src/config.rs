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
    /// zstd 1..=19 (default 3), gzip 1..=9 (default 6).
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
        let (mut config, file) = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let config = parse(&text, &path)?;
                let raw: toml::Value = toml::from_str(&text).expect("parsed above");
                for key in flatten_keys(&serde_json::to_value(&raw).unwrap_or_default()) {
                    sources.insert(key, Source::File(path.clone()));
                }
                (config, Some(path))
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
        })
    }

    /// Checks the values, not just the syntax. Each problem names its key.
    pub fn validate(&self) -> Vec<String> {
        let c = &self.config;
        let mut problems = Vec::new();
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
                    if let Err(err) = check_secret_file_mode(p) {
                        problems.push(format!("encryption.passphrase_file: {err}"));
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

/// The config section a validation problem is about: every problem starts with its key.
fn problem_section(problem: &str) -> &str {
    let end = problem.find(['.', ':', ' ']).unwrap_or(problem.len());
    &problem[..end]
}

fn parse(text: &str, path: &Path) -> Result<Config> {
    toml::from_str::<Config>(text).map_err(|e| {
        could_not_start(format!(
            "config file {}: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        };
        assert!(s
            .validate()
            .iter()
            .any(|p| p.starts_with("repository.path")));
    }
}
