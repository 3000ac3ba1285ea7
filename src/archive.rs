//! Streaming tar archives of the application and config directories.
//!
//! [`write_tar`] archives a directory tree (symlinks are stored, never followed), [`list_tar`]
//! reads a whole stream and checks every entry, and [`extract_tar`] restores a stream into a
//! directory, refusing any entry that could write outside it.

use std::collections::HashSet;
use std::fs::{self, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use tar::{Archive, Builder, Entry, EntryType, Header, HeaderMode};

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TarStats {
    /// Number of entries.
    pub entries: u64,
    /// Sum of the data sizes of regular files.
    pub bytes: u64,
}

/// Writes a tar of `dir`'s contents into `out`. Entry names are relative to `dir` (no leading
/// "./" or "/"; the directory itself is not an entry). Symlinks are stored as symlinks, never
/// followed. Uses GNU headers readable by GNU tar. A file that shrinks or grows while it is read
/// still gets exactly the size in its header (zero-padded, or cut) and a warning is logged.
/// Unreadable entries are an error naming the path. Sockets/FIFOs/devices are skipped with a
/// warning.
pub fn write_tar(dir: &Path, out: impl Write) -> Result<TarStats> {
    let mut builder = Builder::new(out);
    let mut stats = TarStats::default();
    append_children(&mut builder, dir, Path::new(""), &mut stats)?;
    builder
        .into_inner()
        .and_then(|mut out| out.flush())
        .context("finishing tar archive")?;
    Ok(stats)
}

/// Appends the contents of `root/rel` (recursively, in name order) to `builder`.
fn append_children<W: Write>(
    builder: &mut Builder<W>,
    root: &Path,
    rel: &Path,
    stats: &mut TarStats,
) -> Result<()> {
    let dir = root.join(rel);
    let mut names = fs::read_dir(&dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<Vec<_>>>()
        })
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    names.sort();
    for name in names {
        let rel = rel.join(name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read metadata of {}", path.display()))?;
        let kind = meta.file_type();
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Complete);
        if kind.is_dir() {
            builder
                .append_data(&mut header, &rel, io::empty())
                .with_context(|| format!("cannot archive {}", path.display()))?;
            stats.entries += 1;
            append_children(builder, root, &rel, stats)?;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path)
                .with_context(|| format!("cannot read symlink {}", path.display()))?;
            builder
                .append_link(&mut header, &rel, &target)
                .with_context(|| format!("cannot archive {}", path.display()))?;
            stats.entries += 1;
        } else if kind.is_file() {
            append_file(builder, &path, &rel, stats)?;
        } else {
            log::warn!(
                "{} is not a file, directory or symlink; skipped",
                path.display()
            );
        }
    }
    Ok(())
}

/// Appends one regular file, writing exactly the size recorded in its header.
fn append_file<W: Write>(
    builder: &mut Builder<W>,
    path: &Path,
    rel: &Path,
    stats: &mut TarStats,
) -> Result<()> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read metadata of {}", path.display()))?;
    if !meta.is_file() {
        log::warn!("{} changed while being archived; skipped", path.display());
        return Ok(());
    }
    let mut header = Header::new_gnu();
    header.set_metadata_in_mode(&meta, HeaderMode::Complete);
    let mut data = ExactSize::new(file, meta.len());
    builder
        .append_data(&mut header, rel, &mut data)
        .with_context(|| format!("cannot archive {}", path.display()))?;
    let grew = data.inner.read(&mut [0u8]).map(|n| n > 0).unwrap_or(false);
    if data.short || grew {
        log::warn!("{} changed while being archived", path.display());
    }
    stats.entries += 1;
    stats.bytes += meta.len();
    Ok(())
}

/// Yields exactly `remaining` bytes of `inner`: zeros once `inner` ends early (`short` is then
/// set), and nothing past `remaining` even if `inner` has more.
struct ExactSize<R> {
    inner: R,
    remaining: u64,
    short: bool,
}

impl<R: Read> ExactSize<R> {
    fn new(inner: R, size: u64) -> Self {
        ExactSize {
            inner,
            remaining: size,
            short: false,
        }
    }
}

impl<R: Read> Read for ExactSize<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        if want == 0 {
            return Ok(0);
        }
        let buf = &mut buf[..want];
        let mut n = if self.short { 0 } else { self.inner.read(buf)? };
        if n == 0 {
            self.short = true;
            buf.fill(0);
            n = want;
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads a whole tar stream to its end (every data byte read), checking that every entry is safe
/// to extract under a directory. Fails, naming the entry, on the first unsafe entry, and on a
/// corrupt or truncated stream.
pub fn list_tar(input: impl Read) -> Result<TarStats> {
    read_archive(input, |entry, name, _| {
        let size = entry.size();
        let read = io::copy(entry, &mut io::sink())
            .with_context(|| format!("cannot read tar entry {name:?}"))?;
        if read != size {
            bail!("truncated tar stream: entry {name:?} has {read} of {size} bytes");
        }
        Ok(())
    })
}

/// Extracts into `dest` (an existing directory), checking every entry before writing it; refuses
/// (error naming the entry, and stops) anything unsafe, including an entry whose parent inside
/// `dest` is a symlink on disk. Restores modes and mtimes; ownership only when running as root.
pub fn extract_tar(input: impl Read, dest: &Path) -> Result<TarStats> {
    // Directories stay owner-writable until the end, then get their real mode and mtime.
    let mut dirs: Vec<(PathBuf, u32, u64)> = Vec::new();
    let stats = read_archive(input, |entry, name, checked| {
        let kind = entry.header().entry_type();
        // "./" is `dest` itself, which is left as it is.
        if kind == EntryType::XGlobalHeader || checked.path == Path::new("") {
            return Ok(());
        }
        refuse_symlinked_parents(dest, &checked.path, name)?;
        if let Some(target) = &checked.hard_link {
            refuse_symlinked_parents(dest, target, name)?;
        }
        let path = dest.join(&checked.path);
        // Unpacked at the normalised path: the tar crate's `unpack_in` refuses even a `..`
        // that stays inside, like `a/../b`.
        let unpacked = fs::create_dir_all(path.parent().unwrap_or(dest)).and_then(|()| {
            let Some(target) = &checked.hard_link else {
                return entry.unpack(&path).map(drop);
            };
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
            }
            fs::hard_link(dest.join(target), &path)
        });
        unpacked.with_context(|| format!("cannot extract tar entry {name:?}"))?;
        if kind.is_dir() {
            let mode = entry.header().mode()? & 0o7777;
            let mtime = entry.header().mtime()?;
            if mode & 0o700 != 0o700 {
                fs::set_permissions(&path, Permissions::from_mode(mode | 0o700))
                    .with_context(|| format!("cannot set mode of {}", path.display()))?;
            }
            dirs.push((path, mode, mtime));
        }
        Ok(())
    })?;
    for (path, mode, mtime) in dirs.iter().rev() {
        File::open(path)
            .and_then(|dir| dir.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(*mtime)))
            .and_then(|()| fs::set_permissions(path, Permissions::from_mode(*mode)))
            .with_context(|| format!("cannot restore mode and mtime of {}", path.display()))?;
    }
    Ok(stats)
}

/// An entry that passed [`check_entry`].
struct Checked {
    /// The normalised path, relative to the extraction root.
    path: PathBuf,
    /// The normalised target of a hard link.
    hard_link: Option<PathBuf>,
}

/// Runs `handle` on every entry after checking it, then checks that the stream ended properly
/// and reads whatever follows the end-of-archive marker.
fn read_archive<R: Read>(
    input: R,
    mut handle: impl FnMut(&mut Entry<'_, EofReader<R>>, &str, &Checked) -> Result<()>,
) -> Result<TarStats> {
    let mut archive = Archive::new(EofReader {
        inner: input,
        hit_eof: false,
    });
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    // SAFETY: geteuid has no preconditions and cannot fail.
    archive.set_preserve_ownerships(unsafe { libc::geteuid() } == 0);
    let mut stats = TarStats::default();
    let mut symlinks = HashSet::new();
    for entry in archive.entries().context("cannot read tar stream")? {
        let mut entry = entry.context("corrupt or truncated tar stream")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let checked = check_entry(&entry, &name, &mut symlinks)?;
        handle(&mut entry, &name, &checked)?;
        stats.entries += 1;
        if entry.header().entry_type().is_file() {
            stats.bytes += entry.size();
        }
    }
    let mut reader = archive.into_inner();
    if reader.hit_eof {
        bail!("truncated tar stream: it ends without an end-of-archive marker");
    }
    io::copy(&mut reader.inner, &mut io::sink())
        .context("cannot read the end of the tar stream")?;
    Ok(stats)
}

/// Remembers whether the underlying reader ever reported end of stream.
struct EofReader<R> {
    inner: R,
    hit_eof: bool,
}

impl<R: Read> Read for EofReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hit_eof |= n == 0 && !buf.is_empty();
        Ok(n)
    }
}

/// Checks that `entry` is safe to extract under a directory, given the symlinks that earlier
/// entries of the same archive create.
fn check_entry<R: Read>(
    entry: &Entry<'_, R>,
    name: &str,
    symlinks: &mut HashSet<PathBuf>,
) -> Result<Checked> {
    let path = entry
        .path()
        .with_context(|| format!("invalid path in tar entry {name:?}"))?;
    let Some(path) = normalize(&path) else {
        bail!("unsafe tar entry {name:?}: its path leaves the destination");
    };
    if path.ancestors().skip(1).any(|a| symlinks.contains(a)) {
        bail!("unsafe tar entry {name:?}: its parent is a symlink");
    }
    let kind = entry.header().entry_type();
    let link = || -> Result<PathBuf> {
        let target = entry.link_name().ok().flatten();
        Ok(target
            .with_context(|| format!("tar entry {name:?} has no link target"))?
            .into_owned())
    };
    let mut hard_link = None;
    match kind {
        EntryType::Regular
        | EntryType::Continuous
        | EntryType::GNUSparse
        | EntryType::Directory
        | EntryType::XGlobalHeader => {}
        // A symlink is restored as it was, wherever it points (`current -> /srv/releases/7`,
        // certificates under /etc/ssl): it is never followed while extracting, since no
        // later entry may be written through it (the parent checks here and on disk).
        EntryType::Symlink => {
            link()?;
        }
        EntryType::Link => {
            let target = link()?;
            let Some(target) = normalize(&target) else {
                bail!(
                    "unsafe tar entry {name:?}: hard link target {target:?} leaves the destination"
                );
            };
            if target.ancestors().skip(1).any(|a| symlinks.contains(a)) {
                bail!(
                    "unsafe tar entry {name:?}: its hard link target is reached through a symlink"
                );
            }
            hard_link = Some(target);
        }
        other => bail!("unsafe tar entry {name:?}: unsupported entry type {other:?}"),
    }
    if kind == EntryType::Symlink {
        symlinks.insert(path.clone());
    } else {
        symlinks.remove(&path);
    }
    Ok(Checked { path, hard_link })
}

/// Lexically normalises a relative path; `None` if it is absolute or climbs out of its root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Fails if any existing parent of `dest/rel` below `dest` is a symlink on disk.
fn refuse_symlinked_parents(dest: &Path, rel: &Path, name: &str) -> Result<()> {
    let mut current = dest.to_path_buf();
    for part in rel.parent().unwrap_or(Path::new("")).components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                bail!(
                    "unsafe tar entry {name:?}: {} is a symlink",
                    current.display()
                )
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot inspect {}", current.display()))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::process::Command;

    fn write(path: &Path, data: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }

    /// Every path under `root`, relative and sorted.
    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(root).unwrap().display().to_string());
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    fn sample_tree(src: &Path) -> Vec<u8> {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        write(&src.join("a.txt"), b"hello");
        write(&src.join("empty.txt"), b"");
        write(&src.join("sub/nested/deep.bin"), &big);
        symlink("nested/deep.bin", src.join("sub/link")).unwrap();
        fs::set_permissions(src.join("a.txt"), Permissions::from_mode(0o600)).unwrap();
        fs::set_permissions(src.join("sub"), Permissions::from_mode(0o750)).unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        File::options()
            .write(true)
            .open(src.join("a.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        File::open(src.join("sub"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        big
    }

    #[test]
    fn round_trip_keeps_contents_links_modes_and_mtimes() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dest) = (tmp.path().join("src"), tmp.path().join("dest"));
        let big = sample_tree(&src);
        fs::create_dir(&dest).unwrap();

        let mut buf = Vec::new();
        let stats = write_tar(&src, &mut buf).unwrap();
        let expected = TarStats {
            entries: 6,
            bytes: 5 + big.len() as u64,
        };
        assert_eq!(stats, expected);
        assert_eq!(list_tar(buf.as_slice()).unwrap(), expected);
        assert_eq!(extract_tar(buf.as_slice(), &dest).unwrap(), expected);

        assert_eq!(tree(&dest), tree(&src));
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"hello");
        assert_eq!(fs::read(dest.join("empty.txt")).unwrap(), b"");
        assert_eq!(fs::read(dest.join("sub/nested/deep.bin")).unwrap(), big);
        assert!(fs::symlink_metadata(dest.join("sub/link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            fs::read_link(dest.join("sub/link")).unwrap(),
            Path::new("nested/deep.bin")
        );
        let (a, sub) = (
            fs::metadata(dest.join("a.txt")).unwrap(),
            fs::metadata(dest.join("sub")).unwrap(),
        );
        assert_eq!(a.mode() & 0o7777, 0o600);
        assert_eq!(sub.mode() & 0o7777, 0o750);
        assert_eq!(a.mtime(), 1_600_000_000);
        assert_eq!(sub.mtime(), 1_600_000_000);
    }

    #[test]
    fn skips_sockets_and_names_unreadable_paths() {
        let tmp = tempfile::tempdir().unwrap();
        write(&tmp.path().join("f"), b"x");
        let _socket = std::os::unix::net::UnixListener::bind(tmp.path().join("sock")).unwrap();
        let stats = write_tar(tmp.path(), io::sink()).unwrap();
        assert_eq!(
            stats,
            TarStats {
                entries: 1,
                bytes: 1
            }
        );

        let missing = tmp.path().join("missing");
        let err = format!("{:#}", write_tar(&missing, io::sink()).unwrap_err());
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn gnu_tar_lists_what_write_tar_wrote() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let archive = tmp.path().join("out.tar");
        write_tar(&src, File::create(&archive).unwrap()).unwrap();
        let out = Command::new("tar")
            .arg("-tf")
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.trim_end_matches('/').to_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "a.txt",
                "empty.txt",
                "sub",
                "sub/link",
                "sub/nested",
                "sub/nested/deep.bin"
            ]
        );
    }

    #[test]
    fn reads_system_tar_of_an_absolute_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let app = tmp.path().join("app");
        write(&app.join("file"), b"config");
        write(&app.join("sub/x"), b"xx");
        let archive = tmp.path().join("old.tar");
        let out = Command::new("tar")
            .arg("-cf")
            .arg(&archive)
            .arg(&app)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let expected = TarStats {
            entries: 4,
            bytes: 8,
        };
        assert_eq!(list_tar(File::open(&archive).unwrap()).unwrap(), expected);
        let dest = tmp.path().join("dest");
        fs::create_dir(&dest).unwrap();
        assert_eq!(
            extract_tar(File::open(&archive).unwrap(), &dest).unwrap(),
            expected
        );
        let restored = dest.join(app.strip_prefix("/").unwrap());
        assert!(restored.ends_with("app"));
        assert_eq!(fs::read(restored.join("file")).unwrap(), b"config");
        assert_eq!(fs::read(restored.join("sub/x")).unwrap(), b"xx");
    }

    /// Appends an entry with raw name and link name bytes, bypassing the tar crate's checks.
    fn raw_entry(builder: &mut Builder<Vec<u8>>, kind: EntryType, name: &str, link: &str) {
        let data: &[u8] = if kind == EntryType::Regular {
            b"evil"
        } else {
            b""
        };
        let mut header = Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_size(data.len() as u64);
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }

    type RawEntries<'a> = &'a [(EntryType, &'a str, &'a str)];

    fn crafted(entries: RawEntries) -> Vec<u8> {
        let mut builder = Builder::new(Vec::new());
        raw_entry(&mut builder, EntryType::Regular, "ok.txt", "");
        for &(kind, name, link) in entries {
            raw_entry(&mut builder, kind, name, link);
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn unsafe_entries_are_refused_and_nothing_escapes() {
        use EntryType::{Block, Fifo, Link, Regular, Symlink};
        let cases: &[(RawEntries, &str)] = &[
            (&[(Regular, "../evil", "")], "../evil"),
            (&[(Regular, "/etc/evil", "")], "/etc/evil"),
            (&[(Regular, "a/../../evil", "")], "a/../../evil"),
            (
                &[(Symlink, "link", "/etc"), (Regular, "link/x", "")],
                "link/x",
            ),
            (
                &[(Symlink, "link", "../../x"), (Regular, "link/x", "")],
                "link/x",
            ),
            (
                &[(Symlink, "link", "/etc"), (Link, "hard", "link/passwd")],
                "hard",
            ),
            (
                &[(Symlink, "link", "sub"), (Regular, "link/x", "")],
                "link/x",
            ),
            (&[(Link, "hard", "../../etc/passwd")], "hard"),
            (&[(Fifo, "fifo", "")], "fifo"),
            (&[(Block, "sda", "")], "sda"),
        ];
        for (entries, bad) in cases {
            let buf = crafted(entries);
            let err = list_tar(buf.as_slice())
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
                .unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "list {bad}: {err}");

            let tmp = tempfile::tempdir().unwrap();
            let dest = tmp.path().join("outer/dest");
            fs::create_dir_all(&dest).unwrap();
            let err = extract_tar(buf.as_slice(), &dest)
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
                .unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "extract {bad}: {err}");
            let mut written = tree(tmp.path());
            written.retain(|p| !p.starts_with("outer/dest/"));
            assert_eq!(written, ["outer", "outer/dest"], "{bad}");
            assert!(!Path::new("/etc/evil").exists());
        }
    }

    #[test]
    fn symlinks_pointing_anywhere_are_restored_as_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir_all(src.join("certs")).unwrap();
        symlink("/srv/releases/7", src.join("current")).unwrap();
        symlink("../../../etc/ssl/x.pem", src.join("certs/x.pem")).unwrap();
        let mut buf = Vec::new();
        write_tar(&src, &mut buf).unwrap();
        assert_eq!(list_tar(buf.as_slice()).unwrap().entries, 3);
        let dest = tmp.path().join("dest");
        fs::create_dir_all(&dest).unwrap();
        extract_tar(buf.as_slice(), &dest).unwrap();
        assert_eq!(
            fs::read_link(dest.join("current")).unwrap(),
            Path::new("/srv/releases/7")
        );
        assert_eq!(
            fs::read_link(dest.join("certs/x.pem")).unwrap(),
            Path::new("../../../etc/ssl/x.pem")
        );
    }

    #[test]
    fn lexical_dotdot_inside_the_root_and_hard_links_are_fine() {
        let buf = crafted(&[
            (EntryType::Directory, "a", ""),
            (EntryType::Regular, "a/../b", ""),
        ]);
        assert_eq!(
            list_tar(buf.as_slice()).unwrap(),
            TarStats {
                entries: 3,
                bytes: 8
            }
        );
        let tmp = tempfile::tempdir().unwrap();
        extract_tar(buf.as_slice(), tmp.path()).unwrap();
        assert_eq!(fs::read(tmp.path().join("b")).unwrap(), b"evil");

        let buf = crafted(&[(EntryType::Link, "sub/../hard", "./ok.txt")]);
        assert_eq!(
            list_tar(buf.as_slice()).unwrap(),
            TarStats {
                entries: 2,
                bytes: 4
            }
        );
        extract_tar(buf.as_slice(), tmp.path()).unwrap();
        let (ok, hard) = (tmp.path().join("ok.txt"), tmp.path().join("hard"));
        assert_eq!(
            fs::metadata(hard).unwrap().ino(),
            fs::metadata(ok).unwrap().ino()
        );
    }

    #[test]
    fn refuses_writing_through_a_symlink_already_on_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let (dest, outside) = (tmp.path().join("dest"), tmp.path().join("outside"));
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        symlink(&outside, dest.join("pre")).unwrap();
        let buf = crafted(&[(EntryType::Regular, "pre/x", "")]);
        let err = extract_tar(buf.as_slice(), &dest)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
            .unwrap_err();
        assert!(err.contains("\"pre/x\""), "{err}");
        assert!(tree(&outside).is_empty());
    }

    #[test]
    fn truncated_streams_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let mut buf = Vec::new();
        write_tar(&src, &mut buf).unwrap();
        // Cut inside the big file's data, then just before the end-of-archive marker.
        let marker = buf.len() - buf.iter().rev().take_while(|b| **b == 0).count() / 512 * 512;
        for cut in [buf.len() / 2, marker] {
            assert!(list_tar(&buf[..cut]).is_err(), "list cut at {cut}");
            let dest = tempfile::tempdir().unwrap();
            assert!(
                extract_tar(&buf[..cut], dest.path()).is_err(),
                "extract cut at {cut}"
            );
        }
        assert!(list_tar(&buf[..0]).is_err());
    }

    #[test]
    fn exact_size_pads_a_shrunk_file_and_cuts_a_grown_one() {
        let mut out = Vec::new();
        let mut shrunk = ExactSize::new(&b"abc"[..], 6);
        shrunk.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0\0");
        assert!(shrunk.short);

        out.clear();
        let mut grown = ExactSize::new(&b"abcdef"[..], 4);
        grown.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcd");
        assert!(!grown.short);
        assert_eq!(grown.inner, b"ef");
    }
}
