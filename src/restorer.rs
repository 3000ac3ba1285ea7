//! Restoring a stored backup: a database dump into a database (pg_restore for
//! custom-format dumps, psql for old plain SQL dumps), or a tar into a
//! directory. The stored bytes are checked first; nothing is touched before.

use std::collections::BTreeMap;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

use crate::crypto::Crypto;
use crate::db::{count_rows, PgTarget};
use crate::manifest::ContentFormat;
use crate::process::{capture_stderr, Watchdog};
use crate::progress::Progress;
use crate::repo::{RepoEntry, Repository};
use crate::stream::decode;

#[derive(Debug, Clone, Default)]
pub struct DbRestoreOptions {
    /// Drop objects before recreating them (pg_restore --clean --if-exists).
    pub clean: bool,
    /// Parallel pg_restore jobs; >1 spools the plaintext dump to a 0600 file in `scratch_dir`.
    pub jobs: u32,
    pub no_owner: bool,
    pub scratch_dir: PathBuf,
}

/// One table's rows: recorded at backup time vs found after the restore.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TableComparison {
    pub table: String,
    pub expected: Option<i64>,
    pub restored: Option<i64>,
}

impl TableComparison {
    pub fn matches(&self) -> bool {
        self.expected == self.restored
    }
}

/// Number of user relations in a database (0 = safe to restore into).
pub fn user_relation_count(pg: &PgTarget, db: &str) -> Result<i64> {
    let mut c = pg.connect(db)?;
    let row = c.query_one(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r','p','v','m','S','f')
           AND n.nspname NOT IN ('pg_catalog','information_schema')
           AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'",
        &[],
    )?;
    Ok(row.get(0))
}

/// Streams the decoded backup into `db` with pg_restore or psql.
pub fn restore_db(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
    db: &str,
    opts: &DbRestoreOptions,
) -> Result<()> {
    let format = entry.format();
    if opts.jobs > 1 && format == ContentFormat::PgDumpCustom {
        return restore_db_parallel(entry, repo, crypto, pg, db, opts);
    }
    let mut cmd = tool_for(format, pg, db, opts)?;
    if format == ContentFormat::PgDumpCustom {
        cmd.arg("--single-transaction");
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            crate::exit::could_not_start(format!("cannot start {}: {e}", tool_name(format)))
        })?;
    let dog = Watchdog::new(child.id(), pg.command_timeout);
    let stderr = capture_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("piped");
    // The tail of the plaintext is held back until every stored byte has been read
    // and matched with the manifest: the tool cannot finish (and its single
    // transaction cannot commit) on a stream that turns out bad at its end (gpg
    // reports a damaged ciphertext only after writing most of the plaintext).
    let mut sink = HoldBack::new(BrokenPipeIsEnd(&mut stdin), HOLD_BACK);
    let decoded = repo.open(entry).and_then(|file| {
        let mut progress = Progress::bytes(&format!("restore {}", entry.id), Some(entry.size));
        let digests = decode(
            BufReader::with_capacity(1 << 20, file),
            entry.compression(),
            entry.encrypted(),
            crypto,
            &mut sink,
            Some(&mut progress),
        )?;
        check_digests(entry, &digests)?;
        Ok(digests)
    });
    let decoded = match decoded {
        Ok(_) => sink.release().map(|_| ()).map_err(anyhow::Error::from),
        Err(e) => {
            // Never let the tool see the end of a bad stream: kill it, so its transaction rolls back.
            let _ = child.kill();
            Err(e)
        }
    };
    drop(sink);
    drop(stdin);
    let status = child.wait()?;
    let err = stderr
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    if dog.fired() {
        bail!(
            "{} did not finish within {}s (database.command_timeout_secs)",
            tool_name(format),
            pg.command_timeout.as_secs()
        );
    }
    // The first failure is the cause: a decryption error (wrong passphrase) makes
    // pg_restore see a short file, and its "input file is too short" hides why.
    if let Err(e) = &decoded {
        if !format!("{e:#}").contains("the restore tool stopped reading") {
            return Err(decoded.unwrap_err().context(format!(
                "reading the backup during restore (then {}: {})",
                tool_name(format),
                err.lines().next().unwrap_or("exited").trim()
            )));
        }
    }
    if !status.success() {
        bail!(
            "{} into {} failed ({status}): {err}{}",
            tool_name(format),
            pg.describe(db),
            missing_role_hint(&err)
        );
    }
    decoded.context("reading the backup during restore")?;
    Ok(())
}

/// The bytes read for a restore against the manifest (the check before the restore
/// read them once; this is the read the restore used).
fn check_digests(entry: &RepoEntry, digests: &crate::stream::StreamDigests) -> Result<()> {
    match &entry.manifest {
        Some(m) if *digests != m.digests => bail!(
            "{} read during the restore does not match its manifest (stored sha256 {}, manifest {}); nothing was restored",
            entry.location,
            digests.stored_sha256,
            m.digests.stored_sha256
        ),
        _ => Ok(()),
    }
}

/// What to do when the backup's objects belong to roles this server lacks (a new host).
fn missing_role_hint(err: &str) -> String {
    let Some(start) = err.find("role \"") else {
        return String::new();
    };
    let rest = &err[start + 6..];
    match rest.split_once("\" does not exist") {
        Some((role, _)) if !role.contains('"') => format!(
            "\nThe backup's objects belong to role {role:?}, which this server does not have: nothing was restored \
             (one transaction). Create the role first (CREATE ROLE {role} ...), or pass --no-owner to give every \
             object to the restoring user and skip GRANTs."
        ),
        _ => String::new(),
    }
}

/// How much plaintext `HoldBack` keeps from the tool until the stream is checked.
const HOLD_BACK: usize = 1 << 20;

/// Passes bytes through except the last `keep`, which reach the inner writer only
/// on `release` (after the caller has checked the whole stream).
struct HoldBack<W: Write> {
    inner: W,
    buf: Vec<u8>,
    keep: usize,
}

impl<W: Write> HoldBack<W> {
    fn new(inner: W, keep: usize) -> Self {
        HoldBack {
            inner,
            buf: Vec::with_capacity(2 * keep),
            keep,
        }
    }

    /// Writes the held-back tail.
    fn release(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.inner.flush()
    }
}

impl<W: Write> Write for HoldBack<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 2 * self.keep {
            let pass = self.buf.len() - self.keep;
            self.inner.write_all(&self.buf[..pass])?;
            self.buf.drain(..pass);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Lets the decoder finish when the tool stopped reading; the tool's own exit status reports why.
struct BrokenPipeIsEnd<W>(W);

impl<W: Write> Write for BrokenPipeIsEnd<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                Err(io::Error::other("the restore tool stopped reading"))
            }
            other => other,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

fn tool_name(format: ContentFormat) -> &'static str {
    match format {
        ContentFormat::PlainSql => "psql",
        _ => "pg_restore",
    }
}

fn tool_for(
    format: ContentFormat,
    pg: &PgTarget,
    db: &str,
    opts: &DbRestoreOptions,
) -> Result<Command> {
    match format {
        ContentFormat::PgDumpCustom => {
            let mut cmd = pg.tool("pg_restore");
            cmd.arg(format!("--dbname={db}")).arg("--exit-on-error");
            if opts.clean {
                cmd.args(["--clean", "--if-exists"]);
            }
            if opts.no_owner {
                // On a server without the backup's roles, GRANTs to them fail as ownership does.
                cmd.args(["--no-owner", "--no-privileges"]);
            }
            Ok(cmd)
        }
        ContentFormat::PlainSql => {
            if opts.clean {
                bail!("--clean is not possible with a plain SQL dump from the old scripts; restore into a new, empty database");
            }
            let mut cmd = pg.tool("psql");
            cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"])
                .arg(format!("--dbname={db}"))
                .args(["-f", "-"]);
            Ok(cmd)
        }
        ContentFormat::Tar => {
            bail!("a tar backup cannot be restored into a database; use --target-dir")
        }
        ContentFormat::WalFile => bail!("a WAL file cannot be restored into a database"),
    }
}

fn restore_db_parallel(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    pg: &PgTarget,
    db: &str,
    opts: &DbRestoreOptions,
) -> Result<()> {
    // pg_restore --jobs needs a seekable file: spool the plaintext dump, 0600, removed on drop.
    let spool = tempfile::Builder::new()
        .prefix("tuneton-restore-")
        .suffix(".dump")
        .tempfile_in(&opts.scratch_dir)
        .with_context(|| {
            format!(
                "creating a spool file in {} (paths.scratch_dir)",
                opts.scratch_dir.display()
            )
        })?;
    // The plaintext spool goes on an interrupt too (it is removed on drop otherwise).
    let _spool_guard = crate::signals::track_file(spool.path().to_path_buf());
    {
        let file = repo.open(entry)?;
        let mut progress = Progress::bytes(&format!("decrypt {}", entry.id), Some(entry.size));
        let digests = decode(
            BufReader::with_capacity(1 << 20, file),
            entry.compression(),
            entry.encrypted(),
            crypto,
            BufWriter::with_capacity(1 << 20, spool.as_file()),
            Some(&mut progress),
        )?;
        check_digests(entry, &digests)?;
    }
    let mut cmd = tool_for(ContentFormat::PgDumpCustom, pg, db, opts)?;
    cmd.arg(format!("--jobs={}", opts.jobs)).arg(spool.path());
    let out = crate::process::output_with_deadline(&mut cmd, pg.command_timeout, "pg_restore")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "pg_restore --jobs={} into {} failed ({}): {}{}",
            opts.jobs,
            pg.describe(db),
            out.status,
            err.trim(),
            missing_role_hint(&err)
        );
    }
    Ok(())
}

/// Row counts after a restore, table by table, against the manifest.
pub fn compare_rows(
    pg: &PgTarget,
    db: &str,
    expected: Option<&BTreeMap<String, i64>>,
) -> Result<Vec<TableComparison>> {
    let mut c = pg.connect(db)?;
    let actual = count_rows(&mut c)?;
    let mut names: Vec<&String> = actual.keys().collect();
    if let Some(e) = expected {
        names.extend(e.keys());
    }
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|t| TableComparison {
            table: t.clone(),
            expected: expected.and_then(|e| e.get(t).copied()),
            restored: actual.get(t).copied(),
        })
        .collect())
}

/// Extracts a tar backup into `target` through a staging directory beside it.
/// An existing non-empty target is moved aside (never deleted) when `replace`.
pub fn restore_dir(
    entry: &RepoEntry,
    repo: &dyn Repository,
    crypto: &Crypto,
    target: &Path,
    replace: bool,
) -> Result<Option<PathBuf>> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = target
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", target.display()))?
        .to_string_lossy()
        .into_owned();
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.restore-"))
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    let file = repo.open(entry)?;
    let (mut reader, writer) = io::pipe()?;
    let (decoded, extracted) = std::thread::scope(|s| {
        let dec = s.spawn(move || {
            let mut progress = Progress::bytes(&format!("restore {}", entry.id), Some(entry.size));
            decode(
                BufReader::with_capacity(1 << 20, file),
                entry.compression(),
                entry.encrypted(),
                crypto,
                writer,
                Some(&mut progress),
            )
        });
        let extracted = crate::archive::extract_tar(&mut reader, staging.path());
        let _ = io::copy(&mut reader, &mut io::sink());
        drop(reader);
        (
            dec.join().map_err(|_| anyhow!("decoder thread panicked")),
            extracted,
        )
    });
    decoded?.context("reading the backup")?;
    let stats = extracted.context("extracting the archive")?;
    log::info!(
        "extracted {} entries ({} bytes of file data)",
        stats.entries,
        stats.bytes
    );
    let mut moved_aside = None;
    if target.exists() {
        let non_empty = std::fs::read_dir(target)?.next().is_some();
        if !non_empty {
            std::fs::remove_dir(target)?;
        } else if !replace {
            bail!(
                "{} is not empty; pass --clean to move it aside and restore in its place",
                target.display()
            );
        } else {
            let aside = parent.join(format!(
                "{name}.pre-restore-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            ));
            std::fs::rename(target, &aside)
                .with_context(|| format!("moving {} aside", target.display()))?;
            log::info!(
                "moved the existing {} aside to {}",
                target.display(),
                aside.display()
            );
            moved_aside = Some(aside);
        }
    }
    let staged = staging.keep();
    std::fs::rename(&staged, target)
        .with_context(|| format!("moving the restored tree into {}", target.display()))?;
    Ok(moved_aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_role_gets_a_hint_naming_it() {
        let err = "pg_restore: error: could not execute query: ERROR:  role \"tn_owner\" does not exist\nCommand was: ALTER TABLE public.users OWNER TO tn_owner;";
        let hint = missing_role_hint(err);
        assert!(
            hint.contains("\"tn_owner\"") && hint.contains("--no-owner"),
            "{hint}"
        );
        assert_eq!(missing_role_hint("pg_restore: error: out of memory"), "");
    }

    #[test]
    fn hold_back_passes_all_but_the_tail_until_released() {
        let data = b"abcdefghijklmnopq";
        let mut out = Vec::new();
        let mut h = HoldBack::new(&mut out, 4);
        for chunk in [&data[..3], &data[3..8], &data[8..10], &data[10..]] {
            h.write_all(chunk).unwrap();
            h.flush().unwrap();
        }
        let held = h.buf.len();
        assert!(held >= 4, "at least the last 4 bytes are held, got {held}");
        drop(h);
        assert_eq!(&out[..], &data[..data.len() - held]);

        let mut out = Vec::new();
        let mut h = HoldBack::new(&mut out, 4);
        h.write_all(data).unwrap();
        h.release().unwrap();
        drop(h);
        assert_eq!(&out[..], &data[..]);
    }
}
