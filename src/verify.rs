//! Verification of one stored backup: every byte decrypted and decompressed,
//! digests checked against the manifest, and the content's structure read
//! (pg_restore's table of contents, the whole tar stream, or a plain SQL dump's
//! completion marker). Old-script backups have no manifest: for them the full
//! read and the structural check are the verification.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use crate::crypto::Crypto;
use crate::db::PgTarget;
use crate::manifest::{BackupKind, ContentFormat};
use crate::process::{capture_stderr, Watchdog};
use crate::progress::Progress;
use crate::repo::{RepoEntry, Repository};
use crate::stream::{decode, StreamDigests};

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub kind: BackupKind,
    pub path: String,
    pub ok: bool,
    pub problems: Vec<String>,
    /// The check failed for a reason outside the backup: its stored bytes match
    /// the manifest, but they could not be decrypted (wrong passphrase or key,
    /// an interrupted gpg). Such a run says nothing about the backup.
    pub inconclusive: bool,
    /// What the structural check saw.
    pub structure: Option<String>,
    pub stored_size: u64,
    pub content_size: u64,
    pub seconds: f64,
}

/// Reads the whole backup and checks it. Never fails: problems are in the report.
pub fn verify_entry(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
) -> VerifyReport {
    let started = Instant::now();
    let mut problems = Vec::new();
    let mut structure = None;
    let mut digests = StreamDigests::default();
    let mut inconclusive = false;
    if let Some(m) = &entry.manifest {
        if entry.size != m.digests.stored_size {
            problems.push(format!(
                "size: {} is {} bytes, manifest says {}",
                entry.location, entry.size, m.digests.stored_size
            ));
        }
    }
    match read_through(entry, repo, crypto, pg) {
        Ok((d, s, errs)) => {
            digests = d;
            structure = s;
            problems.extend(errs);
        }
        Err(e) => problems.push(format!("{e:#}")),
    }
    if let Some(m) = &entry.manifest {
        let want = &m.digests;
        if digests.stored_size == 0 && !problems.is_empty() {
            // Decryption stopped early: hash the stored bytes on their own, so a damaged
            // file is told apart from a wrong passphrase or key.
            match repo.open(entry).and_then(|f| {
                crate::stream::sha256_of(BufReader::new(f), None).map_err(anyhow::Error::from)
            }) {
                Ok((sha, _)) if sha != want.stored_sha256 => problems.insert(
                    0,
                    format!(
                        "sha256 of stored bytes is {sha}, manifest says {}: the file is damaged",
                        want.stored_sha256
                    ),
                ),
                Ok((sha, _)) => {
                    inconclusive = entry.size == want.stored_size;
                    problems.push(format!(
                        "the stored bytes match the manifest (sha256 {sha}): the backup is intact, but it could not be \
                         decrypted here (wrong passphrase or key, or decryption was interrupted); not recorded as failed"
                    ));
                }
                Err(e) => problems.push(format!("reading {}: {e}", entry.location)),
            }
        } else {
            if digests.stored_sha256 != want.stored_sha256 {
                problems.push(format!(
                    "sha256 of stored bytes is {}, manifest says {}",
                    digests.stored_sha256, want.stored_sha256
                ));
            }
            if digests.content_size != want.content_size
                || digests.content_sha256 != want.content_sha256
            {
                problems.push(format!(
                    "decrypted content is {} bytes sha256 {}, manifest says {} bytes sha256 {}",
                    digests.content_size,
                    digests.content_sha256,
                    want.content_size,
                    want.content_sha256
                ));
            }
        }
    }
    VerifyReport {
        id: entry.id.clone(),
        kind: entry.kind,
        path: entry.location.clone(),
        ok: problems.is_empty(),
        problems,
        inconclusive,
        structure,
        stored_size: digests.stored_size,
        content_size: digests.content_size,
        seconds: started.elapsed().as_secs_f64(),
    }
}

/// Decodes on a thread into a pipe while the structural check reads the other end.
fn read_through(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
) -> Result<(StreamDigests, Option<String>, Vec<String>)> {
    let file = repo.open(entry)?;
    let (mut reader, writer) = io::pipe()?;
    let expected_tables = entry
        .manifest
        .as_ref()
        .and_then(|m| m.database.as_ref())
        .map(|d| &d.tables);
    std::thread::scope(|s| {
        let decoder = s.spawn(move || {
            let mut progress = Progress::bytes(&format!("verify {}", entry.id), Some(entry.size));
            decode(
                BufReader::with_capacity(1 << 20, file),
                entry.compression(),
                entry.encrypted(),
                crypto,
                writer,
                Some(&mut progress),
            )
        });
        let mut problems = Vec::new();
        let structure = match entry.format() {
            ContentFormat::PgDumpCustom => check_pg_custom(&mut reader, pg, expected_tables),
            ContentFormat::Tar => crate::archive::list_tar(&mut reader).map(|st| {
                format!(
                    "tar: {} entries, {} bytes of file data",
                    st.entries, st.bytes
                )
            }),
            ContentFormat::PlainSql => check_plain_sql(&mut reader),
            ContentFormat::WalFile => io::copy(&mut reader, &mut io::sink())
                .map(|n| format!("WAL file, {n} bytes"))
                .map_err(anyhow::Error::from),
        };
        // Read whatever the check left, so the decoder always reaches the end.
        let _ = io::copy(&mut reader, &mut io::sink());
        drop(reader);
        let decoded = decoder
            .join()
            .map_err(|_| anyhow!("decoder thread panicked"))?;
        let digests = match decoded {
            Ok(d) => d,
            Err(e) => {
                problems.push(format!("{e:#}"));
                StreamDigests::default()
            }
        };
        let structure = match structure {
            Ok(s) => Some(s),
            Err(e) => {
                if problems.is_empty() {
                    problems.push(format!("content: {e:#}"));
                }
                None
            }
        };
        Ok((digests, structure, problems))
    })
}

/// Feeds the dump to `pg_restore --list`, which reads the header and the table of contents.
fn check_pg_custom(
    reader: &mut impl Read,
    pg: &PgTarget,
    expected: Option<&BTreeMap<String, i64>>,
) -> Result<String> {
    let mut child = pg
        .tool("pg_restore")
        .arg("--list")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| crate::exit::could_not_start(format!("cannot start pg_restore: {e}")))?;
    let dog = Watchdog::new(child.id(), pg.command_timeout);
    let stderr = capture_stderr(&mut child);
    let mut out = child.stdout.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let mut stdin = child.stdin.take().expect("piped");
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        // pg_restore --list stops reading after the table of contents.
        if let Err(e) = stdin.write_all(&buf[..n]) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e.into());
        }
    }
    drop(stdin);
    let status = child.wait()?;
    let listing = out_thread.join().unwrap_or_default();
    let err = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if dog.fired() {
        bail!(
            "pg_restore --list did not finish within {}s",
            pg.command_timeout.as_secs()
        );
    }
    if !status.success() {
        bail!("pg_restore --list cannot read the dump ({status}): {err}");
    }
    let entries: Vec<&str> = listing
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with(';'))
        .collect();
    let data: BTreeSet<String> = entries
        .iter()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            (t.len() >= 7 && t[3] == "TABLE" && t[4] == "DATA")
                .then(|| format!("{}.{}", t[5], t[6]))
        })
        .collect();
    if let Some(expected) = expected {
        let missing: Vec<&String> = expected
            .keys()
            .filter(|t| !data.contains(*t) && !t.contains(' '))
            .collect();
        if !missing.is_empty() {
            bail!(
                "table of contents has no data for {} table(s) the manifest lists: {:?}",
                missing.len(),
                missing
            );
        }
    }
    Ok(format!(
        "pg_restore --list: {} TOC entries, {} with table data",
        entries.len(),
        data.len()
    ))
}

/// A plain pg_dump SQL script must start with its header and end with its completion marker.
fn check_plain_sql(reader: &mut impl Read) -> Result<String> {
    const KEEP: usize = 16 * 1024;
    let mut head = Vec::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if head.len() < KEEP {
            head.extend_from_slice(&buf[..n.min(KEEP - head.len())]);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * KEEP {
            tail.drain(..tail.len() - KEEP);
        }
    }
    let head = String::from_utf8_lossy(&head);
    let tail = String::from_utf8_lossy(&tail);
    if !head.contains("-- PostgreSQL database dump") {
        bail!("not a pg_dump SQL script (no \"-- PostgreSQL database dump\" header)");
    }
    if !tail.contains("-- PostgreSQL database dump complete") {
        bail!("SQL dump is incomplete (no \"-- PostgreSQL database dump complete\" at the end)");
    }
    Ok(format!("plain SQL dump, {total} bytes, complete"))
}

/// Before a restore touches its target: the stored bytes must match the manifest
/// (old-script backups: a full verification read).
pub fn check_before_restore(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
) -> Result<()> {
    match &entry.manifest {
        Some(m) => {
            let file = repo.open(entry)?;
            let mut progress = Progress::bytes(&format!("checksum {}", entry.id), Some(entry.size));
            let (sha, size) = crate::stream::sha256_of(
                BufReader::with_capacity(1 << 20, file),
                Some(&mut progress),
            )?;
            if size != m.digests.stored_size || sha != m.digests.stored_sha256 {
                bail!(
                    "{} does not match its manifest (size {size} vs {}, sha256 {sha} vs {}); refusing to restore a damaged backup",
                    entry.location,
                    m.digests.stored_size,
                    m.digests.stored_sha256
                );
            }
            Ok(())
        }
        None => {
            let report = verify_entry(entry, repo, crypto, pg);
            if !report.ok {
                bail!(
                    "{} failed verification ({}); refusing to restore it",
                    entry.location,
                    report.problems.join("; ")
                );
            }
            Ok(())
        }
    }
}
