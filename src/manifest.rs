//! `BackupManifest`: the JSON document beside every stored object, written last.
//!
//! A backup exists only when its manifest does. The manifest records how the
//! object was made (kind, format, compression, encryption), what it must hash
//! to (stored and plaintext SHA-256 and sizes), and for database backups the
//! row count of every table taken in the dump's own snapshot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Compression;
use crate::crypto::EncryptionInfo;
use crate::stream::StreamDigests;

pub const MANIFEST_VERSION: u32 = 1;

#[derive(
    Debug,
    Clone,
    Copy,
    Serialize,
    Deserialize,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    /// PostgreSQL logical dump (pg_dump custom format)
    Db,
    /// The application directory (tar)
    App,
    /// The configuration directory (tar)
    Config,
    /// A physical base backup (pg_basebackup tar) for point-in-time recovery
    Base,
    /// An archived WAL segment (written by `wal-push`, not listed as a backup)
    #[value(skip)]
    Wal,
}

impl BackupKind {
    /// The kinds `backups list` shows (WAL segments are listed by `wal-status`).
    pub const ALL: [BackupKind; 4] = [
        BackupKind::Db,
        BackupKind::App,
        BackupKind::Config,
        BackupKind::Base,
    ];

    /// Repository folder holding this kind.
    pub fn dir(self) -> &'static str {
        match self {
            BackupKind::Db => "database",
            BackupKind::App => "application",
            BackupKind::Config => "config",
            BackupKind::Base => "base",
            BackupKind::Wal => "wal",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BackupKind::Db => "db",
            BackupKind::App => "app",
            BackupKind::Config => "config",
            BackupKind::Base => "base",
            BackupKind::Wal => "wal",
        }
    }
}

/// What the plaintext inside the object is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ContentFormat {
    /// `pg_dump --format=custom` (restore with pg_restore).
    PgDumpCustom,
    /// Plain SQL from `pg_dump` (restore with psql). Old scripts' backups.
    PlainSql,
    /// A tar archive.
    Tar,
    /// One WAL segment, history or backup-label file, byte for byte.
    WalFile,
}

impl ContentFormat {
    pub fn suffix(self) -> &'static str {
        match self {
            ContentFormat::PgDumpCustom => ".dump",
            ContentFormat::PlainSql => ".sql",
            ContentFormat::Tar => ".tar",
            ContentFormat::WalFile => "",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseInfo {
    pub name: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// The exported snapshot pg_dump read (and the row counts were taken in).
    pub snapshot: String,
    /// `schema.table` -> exact row count in the dump's snapshot.
    pub tables: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupManifest {
    pub manifest_version: u32,
    pub id: String,
    pub kind: BackupKind,
    pub format: ContentFormat,
    pub compression: Compression,
    pub compression_level: i32,
    pub encryption: EncryptionInfo,
    /// File name of the stored object, beside this manifest.
    pub object: String,
    #[serde(flatten)]
    pub digests: StreamDigests,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub host: String,
    pub tool_version: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub database: Option<DatabaseInfo>,
    /// For base backups: where in the WAL the backup starts and ends.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub base: Option<BaseBackupInfo>,
    /// For app/config backups: the directory archived.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_dir: Option<String>,
}

/// What a physical base backup covers: replay must reach `end_lsn` before the
/// cluster is consistent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BaseBackupInfo {
    pub start_lsn: String,
    pub end_lsn: String,
    pub timeline: u32,
    pub server_version: String,
    pub pg_basebackup_version: String,
    /// The cluster's WAL segment size in bytes (absent in older manifests: 16 MiB).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wal_segment_size: Option<u64>,
}

/// The outcome of the latest verification, kept beside the manifest
/// (`<id>.verified.json`) so the manifest itself is never rewritten.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerificationRecord {
    pub ok: bool,
    pub at: DateTime<Utc>,
    /// "full-read" or "restore-test".
    pub method: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// This host's name (manifests, alert messages, PagerDuty's `source`).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if rc != 0 || end == 0 {
        return "unknown-host".into();
    }
    String::from_utf8_lossy(&buf[..end]).into_owned()
}
