//! The filesystem calls log rotation is built on: publishing a file under a
//! name without ever replacing an existing one (link(2) / O_TMPFILE + linkat),
//! removing a file's prefix in place (FALLOC_FL_COLLAPSE_RANGE), the name and
//! block size of a filesystem, directory fsync, and user/group lookup.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A user name or numeric uid.
pub fn lookup_user(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into it and into `buf`, whose length we pass.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `out` is null or points at `pwd`.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(pwd.pw_uid)
}

/// A group name or numeric gid.
pub fn lookup_group(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Some(n);
    }
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: group is plain data; getgrnam_r writes into it and into `buf`, whose length we pass.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `out` is null or points at `grp`.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(grp.gr_gid)
}

/// fstatfs(2) of an open file: (filesystem type magic, block size).
fn statfs(file: &File) -> io::Result<(i64, u64)> {
    // SAFETY: statfs is plain data filled in by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a statfs we own.
    check(unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) })?;
    Ok((st.f_type as i64, st.f_bsize as u64))
}

/// The filesystem's block size: FALLOC_FL_COLLAPSE_RANGE works in multiples of it.
pub fn block_size(file: &File) -> io::Result<u64> {
    let (_, bsize) = statfs(file)?;
    Ok(bsize.max(512))
}

/// A readable name for the filesystem holding `file` (for warnings).
pub fn filesystem_name(file: &File) -> String {
    let Ok((magic, _)) = statfs(file) else {
        return "an unknown filesystem".into();
    };
    let name = match magic as u32 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x6969 => "nfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6573_5546 => "fuse",
        0xFF53_4D42 => "cifs",
        0xFE53_4D42 => "smb2",
        0xF2F5_2010 => "f2fs",
        0x4D44 => "vfat",
        0x5346_544E => "ntfs",
        _ => return format!("filesystem type 0x{magic:x}"),
    };
    name.to_string()
}

/// Removes `[0, len)` from the file in place, shifting the rest down
/// (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`). `len` must be a multiple of the
/// block size and less than the file's size. Concurrent O_APPEND writes are
/// serialised with it by the kernel, so none is lost or misplaced.
pub fn collapse_prefix(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a descriptor we own; the kernel validates the range.
    check(unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_COLLAPSE_RANGE,
            0,
            len as libc::off_t,
        )
    })
}

/// Whether the filesystem of `dir` can collapse a range, tried on a scratch file.
pub fn probe_collapse(dir: &Path) -> io::Result<bool> {
    let file = tmpfile_in(dir, 0o600)?;
    let bs = block_size(&file.file)?;
    let data = vec![b'x'; (2 * bs) as usize];
    use std::io::Write;
    (&file.file).write_all(&data)?;
    let ok = match collapse_prefix(&file.file, bs) {
        Ok(()) => file.file.metadata()?.len() == bs,
        Err(e) if is_unsupported(&e) => false,
        Err(e) => return Err(e),
    };
    file.discard();
    Ok(ok)
}

/// The errors a filesystem (or a file on it) gives when it cannot do an operation.
pub fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTTY)
    )
}

/// fsync(2) a directory, so a link or unlink in it is durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A new file with no name yet (O_TMPFILE), or a hidden named one where the
/// filesystem has no O_TMPFILE; it gets its final name with [`TempFile::link_as`].
pub struct TempFile {
    pub file: File,
    dir: PathBuf,
    /// Set when O_TMPFILE was not available.
    named: TempName,
}

/// Removes a named temporary file unless it was published.
struct TempName(Option<PathBuf>);

impl Drop for TempName {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Creates a temporary file in `dir` with `mode`.
pub fn tmpfile_in(dir: &Path, mode: u32) -> io::Result<TempFile> {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(mode)
        .open(dir)
    {
        Ok(file) => {
            return Ok(TempFile {
                file,
                dir: dir.to_path_buf(),
                named: TempName(None),
            })
        }
        Err(e) if is_unsupported(&e) || e.raw_os_error() == Some(libc::EISDIR) => {}
        Err(e) => return Err(e),
    }
    for n in 0..1000u32 {
        let path = dir.join(format!(
            ".rotate-logs.tmp-{}-{n}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
        {
            Ok(file) => {
                return Ok(TempFile {
                    file,
                    dir: dir.to_path_buf(),
                    named: TempName(Some(path)),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create a temporary file name"))
}

impl TempFile {
    /// Gives the file the name `name` in its directory. Fails with
    /// `AlreadyExists` when that name is taken (nothing is ever replaced),
    /// handing the file back so another name can be tried.
    pub fn link_as(self, name: &str) -> Result<(File, PathBuf), (TempFile, io::Error)> {
        let target = self.dir.join(name);
        let linked = match &self.named.0 {
            None => cpath(Path::new(&format!(
                "/proc/self/fd/{}",
                self.file.as_raw_fd()
            )))
            .and_then(|src| Ok((src, cpath(&target)?)))
            .and_then(|(src, dst)| {
                // SAFETY: two valid C strings; AT_SYMLINK_FOLLOW makes the magic link name the open file.
                check(unsafe {
                    libc::linkat(
                        libc::AT_FDCWD,
                        src.as_ptr(),
                        libc::AT_FDCWD,
                        dst.as_ptr(),
                        libc::AT_SYMLINK_FOLLOW,
                    )
                })
            }),
            Some(tmp) => std::fs::hard_link(tmp, &target),
        };
        if let Err(e) = linked {
            return Err((self, e));
        }
        let TempFile {
            file, mut named, ..
        } = self;
        if let Some(tmp) = named.0.take() {
            let _ = std::fs::remove_file(tmp);
        }
        Ok((file, target))
    }

    /// Throws the file away (a nameless file simply vanishes on close).
    pub fn discard(self) {
        drop(self);
    }
}

/// rename(2) that fails instead of replacing an existing `dst` (renameat2 RENAME_NOREPLACE).
pub fn rename_noreplace(src: &Path, dst: &Path) -> io::Result<()> {
    let (s, d) = (cpath(src)?, cpath(dst)?);
    // SAFETY: two valid C strings relative to the current directory.
    check(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            s.as_ptr(),
            libc::AT_FDCWD,
            d.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

/// Creates a new empty file at a hidden name beside `live` with the given
/// owner and mode (set on the descriptor, so the umask does not interfere).
pub fn create_replacement(live: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<PathBuf> {
    let dir = live.parent().unwrap_or(Path::new("/"));
    let base = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for n in 0..100u32 {
        let path = dir.join(format!(".{base}.rotate-new-{}-{n}", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                let fd = file.as_raw_fd();
                // SAFETY: fchown/fchmod on a descriptor we own.
                let r = check(unsafe { libc::fchown(fd, uid, gid) })
                    .and_then(|_| check(unsafe { libc::fchmod(fd, mode as libc::mode_t) }));
                if let Err(e) = r {
                    let _ = std::fs::remove_file(&path);
                    return Err(e);
                }
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a crashed run that had our PID: it is an empty file of ours.
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("cannot create the replacement file"))
}

/// Sets owner, group and mode of an open file (archives keep the log's).
pub fn set_owner_mode(file: &File, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fchown/fchmod on a descriptor we own.
    check(unsafe { libc::fchown(fd, uid, gid) })?;
    check(unsafe { libc::fchmod(fd, mode as libc::mode_t) })
}

/// Sets a file's modification time (an archive keeps its generation's).
pub fn set_mtime(file: &File, secs: i64, nanos: i64) -> io::Result<()> {
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: secs as libc::time_t,
            tv_nsec: nanos as _,
        },
    ];
    // SAFETY: futimens with a descriptor we own and a two-element array.
    check(unsafe { libc::futimens(file.as_raw_fd(), times.as_ptr()) })
}

/// The file's birth time (statx), if the filesystem records one.
pub fn birth_time(path: &Path) -> Option<i64> {
    let c = cpath(path).ok()?;
    // SAFETY: statx is plain data filled in by the kernel.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a pointer to a statx we own.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BTIME,
            &mut st,
        )
    };
    (rc == 0 && st.stx_mask & libc::STATX_BTIME != 0).then_some(st.stx_btime.tv_sec)
}

/// (device, inode) of a path, not following a final symlink.
pub fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let m = std::fs::symlink_metadata(path)?;
    Ok((m.dev(), m.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn link_as_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.gz"), b"first").unwrap();
        let mut t = tmpfile_in(dir.path(), 0o640).unwrap();
        t.file.write_all(b"second").unwrap();
        let err = t.link_as("a.gz").err().unwrap().1;
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.path().join("a.gz")).unwrap(), b"first");
        let mut t = tmpfile_in(dir.path(), 0o640).unwrap();
        t.file.write_all(b"third").unwrap();
        let (_, p) = t.link_as("b.gz").map_err(|e| e.1).unwrap();
        assert_eq!(std::fs::read(p).unwrap(), b"third");
        // Nothing else is left in the directory (no temp names).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn collapse_keeps_the_unaligned_tail_on_ext4() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        if !probe_collapse(dir.path()).unwrap() {
            eprintln!("skipped: no FALLOC_FL_COLLAPSE_RANGE on this filesystem");
            return;
        }
        let path = dir.path().join("x.log");
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let bs = block_size(&f).unwrap() as usize;
        let data: Vec<u8> = (0..bs * 3 + 100).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        collapse_prefix(&f, (bs * 2) as u64).unwrap();
        let mut rest = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, &data[bs * 2..]);
    }

    #[test]
    fn rename_noreplace_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        assert!(rename_noreplace(&a, &b).is_err());
        assert_eq!(std::fs::read(&b).unwrap(), b"b");
    }
}
