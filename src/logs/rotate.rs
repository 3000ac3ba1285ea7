//! The mechanics of rotation, without the reporting: swapping a live file for
//! a new one (rename modes), and the jobs the compression threads run:
//! compressing a generation, archiving and collapsing a live file's prefix,
//! and the copy-then-truncate fallback.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::compress::{self, Encoding, Stamp};
use super::fsops;
use super::naming::ArchiveName;
use crate::config::Compression;
use crate::exit::ExitCode;

pub fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub fn parent(p: &Path) -> PathBuf {
    p.parent().unwrap_or(Path::new("/")).to_path_buf()
}

/// Work for the compression threads.
pub enum Job {
    /// Compress an uncompressed generation into `<name>.gz|.zst`, then remove it.
    Generation {
        path: PathBuf,
        dir: PathBuf,
        name: ArchiveName,
        encoding: (Compression, Option<i32>),
        report: Option<usize>,
        set: String,
    },
    /// Archive `[0, len)` of a live file and collapse it out of the file.
    Collapse {
        live: PathBuf,
        file: File,
        len: u64,
        dir: PathBuf,
        name: ArchiveName,
        encoding: (Compression, Option<i32>),
        report: usize,
    },
    /// No collapse on this filesystem: copy, truncate, then compress the copy.
    CopyTruncate {
        file: File,
        dir: PathBuf,
        name: ArchiveName,
        encoding: (Compression, Option<i32>),
        report: usize,
        set: String,
    },
}

impl Job {
    pub fn weight(&self) -> u64 {
        match self {
            Job::Generation { path, .. } => std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
            Job::Collapse { len, .. } => *len,
            Job::CopyTruncate { file, .. } => file.metadata().map(|m| m.len()).unwrap_or(0),
        }
    }
}

/// What a job did, applied to the reports afterwards.
pub struct JobOutcome {
    pub status: ExitCode,
    pub message: String,
    pub bytes_in: u64,
    pub archive: Option<(PathBuf, u64)>,
    /// For a copytruncate fallback: the uncompressed generation it made.
    pub generation: Option<PathBuf>,
}

/// Gives the live file's inode the archive name (link: never replacing an
/// existing archive; a taken name moves on to the next counter) and renames a
/// new empty file over the live name, so the name always exists.
pub fn swap(
    live: &Path,
    adir: &Path,
    name: &ArchiveName,
    uid: u32,
    gid: u32,
    mode: u32,
) -> Result<PathBuf> {
    let fresh = fsops::create_replacement(live, uid, gid, mode)
        .with_context(|| format!("cannot create the new {}", live.display()))?;
    let cleanup = |e: anyhow::Error| {
        let _ = std::fs::remove_file(&fresh);
        e
    };
    let mut n = name.clone();
    let gen = loop {
        let target = adir.join(n.base());
        match std::fs::hard_link(live, &target) {
            Ok(()) => break target,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n.counter < 9999 => {
                n.counter += 1
            }
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(cleanup(anyhow::anyhow!(
                    "the archive directory {} is on another filesystem than {}; generations are moved there by link(2) \
                     (set archive_dir to a directory on the same filesystem)",
                    adir.display(),
                    live.display()
                )))
            }
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EOPNOTSUPP)) => {
                // No hard links here: rename without replacing, then put the new file in place
                // unless the writer already re-created it.
                fsops::rename_noreplace(live, &target)
                    .with_context(|| format!("renaming to {}", target.display()))
                    .map_err(cleanup)?;
                if let Err(e) = fsops::rename_noreplace(&fresh, live) {
                    let _ = std::fs::remove_file(&fresh);
                    if e.kind() != std::io::ErrorKind::AlreadyExists {
                        return Err(anyhow::anyhow!(
                            "cannot create the new {}: {e}",
                            live.display()
                        ));
                    }
                }
                fsync_dirs(live, adir);
                return Ok(target);
            }
            Err(e) => {
                return Err(cleanup(
                    anyhow::Error::new(e).context(format!("linking to {}", target.display())),
                ))
            }
        }
    };
    if let Err(e) = std::fs::rename(&fresh, live) {
        // The live name still is the old file, and the archive name too: undo the link.
        let _ = std::fs::remove_file(&gen);
        let _ = std::fs::remove_file(&fresh);
        return Err(anyhow::anyhow!(
            "cannot put the new {} in place: {e}",
            live.display()
        ));
    }
    fsync_dirs(live, adir);
    Ok(gen)
}

fn fsync_dirs(live: &Path, adir: &Path) {
    let _ = fsops::fsync_dir(&parent(live));
    if adir != parent(live) {
        let _ = fsops::fsync_dir(adir);
    }
}

pub fn failed(message: String) -> JobOutcome {
    JobOutcome {
        status: ExitCode::Failed,
        message,
        bytes_in: 0,
        archive: None,
        generation: None,
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        uid: meta.uid(),
        gid: meta.gid(),
        mode: meta.mode() & 0o7777,
        mtime: (meta.mtime(), meta.mtime_nsec()),
    }
}

/// Candidate names for an archive: its own counter, then the following ones.
fn names_from(name: &ArchiveName, c: Compression) -> impl Iterator<Item = String> {
    let name = name.with_compression(c);
    (0..1000u32).map(move |k| {
        let mut n = name.clone();
        n.counter += k;
        n.file_name()
    })
}

pub fn execute(job: Job) -> JobOutcome {
    match job {
        Job::Generation {
            path,
            dir,
            name,
            encoding,
            ..
        } => compress_generation(&path, &dir, &name, encoding),
        Job::Collapse {
            live,
            file,
            len,
            dir,
            name,
            encoding,
            ..
        } => {
            let meta = match file.metadata() {
                Ok(m) => m,
                Err(e) => return failed(format!("cannot stat {}: {e}", live.display())),
            };
            let enc = Encoding {
                compression: encoding.0,
                level: encoding.1,
            };
            let v = match compress::encode_verified(
                &file,
                len,
                &dir,
                &enc,
                &name.live,
                stamp_of(&meta),
            ) {
                Ok(v) => v,
                Err(e) => {
                    return failed(format!(
                        "not rotated: archiving its first {len} bytes: {e:#}"
                    ))
                }
            };
            let bytes_out = v.bytes_out;
            let path = match compress::publish(v, &dir, names_from(&name, encoding.0)) {
                Ok(p) => p,
                Err(e) => return failed(format!("not rotated: {e:#}")),
            };
            if let Err(e) = fsops::collapse_prefix(&file, len) {
                // The archived bytes are still in the live file: drop our new archive, change nothing.
                let _ = std::fs::remove_file(&path);
                return failed(format!(
                    "not rotated: removing the archived prefix from the file failed ({e}) on {}; the file is unchanged",
                    fsops::filesystem_name(&file)
                ));
            }
            // No fsync of the live file here: a crash before the collapse is durable can
            // only leave the prefix in both places (duplicated, never lost), and forcing
            // the writer's recent data out on every rotation is not worth that.
            JobOutcome {
                status: ExitCode::Success,
                message: String::new(),
                bytes_in: len,
                archive: Some((path, bytes_out)),
                generation: None,
            }
        }
        Job::CopyTruncate {
            file,
            dir,
            name,
            encoding,
            ..
        } => {
            let gen = match copy_then_truncate(&file, &dir, &name) {
                Ok(g) => g,
                Err(e) => return failed(format!("not rotated: {e:#}")),
            };
            let bytes = std::fs::metadata(&gen).map(|m| m.len()).unwrap_or(0);
            if encoding.0 == Compression::None {
                return JobOutcome {
                    status: ExitCode::Success,
                    message: String::new(),
                    bytes_in: bytes,
                    archive: Some((gen, bytes)),
                    generation: None,
                };
            }
            let gen_name = ArchiveName::parse(&file_name(&gen), false).unwrap_or(name);
            let mut out = compress_generation(&gen, &dir, &gen_name, encoding);
            out.generation = Some(gen);
            out.bytes_in = bytes;
            out
        }
    }
}

/// The fallback where a prefix cannot be collapsed: copy what is there, copy
/// again what was appended meanwhile until little is left, then read the last
/// bytes and truncate at once (the only window in which a line can be lost).
fn copy_then_truncate(file: &File, dir: &Path, name: &ArchiveName) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let meta = file.metadata()?;
    let temp = fsops::tmpfile_in(dir, 0o600)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, &temp.file);
    let mut copied = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let mut copy_to = |end: u64, copied: &mut u64, out: &mut dyn Write| -> Result<()> {
        while *copied < end {
            let want = buf.len().min((end - *copied) as usize);
            let n = file.read_at(&mut buf[..want], *copied)?;
            if n == 0 {
                anyhow::bail!("the file shrank while being copied (truncated by someone else?)");
            }
            out.write_all(&buf[..n])?;
            *copied += n as u64;
        }
        Ok(())
    };
    for _ in 0..20 {
        let size = file.metadata()?.len();
        let before = copied;
        copy_to(size, &mut copied, &mut out)?;
        if copied - before < 64 * 1024 {
            break;
        }
    }
    // The window: from this stat to the truncate.
    let mut tail = Vec::new();
    let size = file.metadata()?.len();
    if size > copied {
        tail.resize((size - copied) as usize, 0);
        let mut got = 0;
        while got < tail.len() {
            let n = file.read_at(&mut tail[got..], copied + got as u64)?;
            if n == 0 {
                break;
            }
            got += n;
        }
        tail.truncate(got);
    }
    file.set_len(0).context("truncating the log")?;
    out.write_all(&tail)?;
    out.flush()?;
    drop(out);
    temp.file.sync_all()?;
    fsops::set_owner_mode(&temp.file, meta.uid(), meta.gid(), meta.mode() & 0o7777)?;
    let mut n = name.clone();
    let mut temp = temp;
    loop {
        match temp.link_as(&n.base()) {
            Ok((_, p)) => {
                let _ = fsops::fsync_dir(dir);
                return Ok(p);
            }
            Err((t, e)) if e.kind() == std::io::ErrorKind::AlreadyExists && n.counter < 9999 => {
                temp = t;
                n.counter += 1;
            }
            Err((_, e)) => return Err(e).context("naming the copied generation"),
        }
    }
}

/// Compresses an uncompressed generation beside itself and removes it once
/// the archive is verified and named. An archive already there under that
/// name is never replaced: if it holds the same bytes (an earlier run stopped
/// in between) the generation goes; otherwise both are kept.
fn compress_generation(
    path: &Path,
    dir: &Path,
    name: &ArchiveName,
    encoding: (Compression, Option<i32>),
) -> JobOutcome {
    let src = match File::open(path) {
        Ok(f) => f,
        Err(e) => return failed(format!("cannot open it: {e}")),
    };
    let before = match src.metadata() {
        Ok(m) => m,
        Err(e) => return failed(format!("cannot stat it: {e}")),
    };
    let target_name = name.with_compression(encoding.0).file_name();
    let target = dir.join(&target_name);
    if let Ok(existing) = File::open(&target) {
        let same = (|| -> Result<bool> {
            let len = existing.metadata()?.len();
            let a = compress::decode_crc(&existing, len, encoding.0)?;
            let b = compress::decode_crc(&src, before.len(), Compression::None)?;
            Ok(a == b)
        })()
        .unwrap_or(false);
        if same {
            let _ = std::fs::remove_file(path);
            let _ = fsops::fsync_dir(dir);
            return JobOutcome {
                status: ExitCode::Success,
                message: format!(
                    "already compressed as {} by an earlier run; removed the uncompressed copy",
                    target.display()
                ),
                bytes_in: before.len(),
                archive: Some((target, existing.metadata().map(|m| m.len()).unwrap_or(0))),
                generation: None,
            };
        }
        return failed(format!(
            "left uncompressed: {} already exists with other content and is never replaced; look at both files",
            target.display()
        ));
    }
    let enc = Encoding {
        compression: encoding.0,
        level: encoding.1,
    };
    let v = match compress::encode_verified(
        &src,
        before.len(),
        dir,
        &enc,
        &name.live,
        stamp_of(&before),
    ) {
        Ok(v) => v,
        Err(e) => return failed(format!("left uncompressed: compressing failed: {e:#}")),
    };
    match src.metadata() {
        Ok(after)
            if after.len() == before.len()
                && (after.mtime(), after.mtime_nsec()) == (before.mtime(), before.mtime_nsec()) => {}
        _ => {
            return JobOutcome {
                status: ExitCode::Warning,
                message: "left uncompressed: it changed while being compressed (still written to?); a later run compresses it".into(),
                bytes_in: 0,
                archive: None,
                generation: None,
            }
        }
    }
    let bytes_out = v.bytes_out;
    let bytes_in = v.bytes_in;
    let archive = match compress::publish(v, dir, [target_name]) {
        Ok(p) => p,
        Err(e) => return failed(format!("left uncompressed: {e:#}")),
    };
    if let Err(e) = std::fs::remove_file(path) {
        return JobOutcome {
            status: ExitCode::Warning,
            message: format!(
                "compressed to {}, but cannot remove the uncompressed copy: {e}",
                archive.display()
            ),
            bytes_in,
            archive: Some((archive, bytes_out)),
            generation: None,
        };
    }
    let _ = fsops::fsync_dir(dir);
    JobOutcome {
        status: ExitCode::Success,
        message: String::new(),
        bytes_in,
        archive: Some((archive, bytes_out)),
        generation: None,
    }
}
