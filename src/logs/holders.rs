//! Which processes hold a file open, and how: a scan of /proc/*/fd (the link
//! names the open file; stat through it gives device and inode) and
//! /proc/PID/fdinfo/FD (`flags:` in octal: the access mode and O_APPEND).
//!
//! Only processes in our PID namespace are visible; our own process is left
//! out (its descriptors on a log are the ones rotation itself opened).

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;

/// One open descriptor on a file of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: i32,
    pub fd: i32,
    pub comm: String,
    /// open(2) flags as /proc shows them.
    pub flags: u32,
}

impl Holder {
    /// Opened for writing (O_WRONLY or O_RDWR).
    pub fn writes(&self) -> bool {
        self.flags & (libc::O_ACCMODE as u32) != libc::O_RDONLY as u32
    }

    /// Writes go to the end of the file whatever its size (O_APPEND).
    pub fn appends(&self) -> bool {
        self.flags & libc::O_APPEND as u32 != 0
    }

    /// "pid 123 (nginx)".
    pub fn describe(&self) -> String {
        format!("pid {} ({})", self.pid, self.comm)
    }
}

pub type FileId = (u64, u64);

/// For each file in `targets`, the other processes' descriptors on it.
pub fn scan(targets: &HashSet<FileId>) -> HashMap<FileId, Vec<Holder>> {
    let mut found: HashMap<FileId, Vec<Holder>> = HashMap::new();
    if targets.is_empty() {
        return found;
    }
    let me = std::process::id() as i32;
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue; // gone, or not ours to look at
        };
        for fd in fds.flatten() {
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            let id = (meta.dev(), meta.ino());
            if !targets.contains(&id) {
                continue;
            }
            let Some(fdnum) = fd.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let flags = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fdnum}"))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("flags:"))
                        .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                })
                // Unknown: assume the worst (a writer that does not append).
                .unwrap_or(libc::O_WRONLY as u32);
            found.entry(id).or_default().push(Holder {
                pid,
                fd: fdnum,
                comm: comm(pid),
                flags,
            });
        }
    }
    found
}

/// The process's command name, or "?" once it is gone.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Whether the process exists (and is not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat_field(&stat, 0).is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Field `n` after the command name in /proc/PID/stat (0 = state, 1 = ppid).
fn stat_field(stat: &str, n: usize) -> Option<String> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(n).map(String::from)
}

/// Whether `ancestor` is `pid` or one of its parents.
pub fn is_self_or_ancestor(ancestor: i32, mut pid: i32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        let Some(ppid) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| stat_field(&s, 1))
            .and_then(|v| v.parse::<i32>().ok())
        else {
            return false;
        };
        pid = ppid;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn sees_a_child_writing_with_and_without_o_append() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&b, b"").unwrap();
        // `>>` opens with O_APPEND, `1<>` read-write without it.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec 3>>{} 4<>{}; echo ready; read x",
                a.display(),
                b.display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let id = |p: &std::path::Path| {
            let m = std::fs::metadata(p).unwrap();
            (m.dev(), m.ino())
        };
        let found = scan(&[id(&a), id(&b)].into_iter().collect());
        let ha = &found[&id(&a)];
        assert_eq!(ha.len(), 1);
        assert_eq!(ha[0].pid, child.id() as i32);
        assert!(ha[0].writes() && ha[0].appends());
        let hb = &found[&id(&b)];
        assert!(hb[0].writes() && !hb[0].appends());
        assert!(is_self_or_ancestor(std::process::id() as i32, ha[0].pid));
        assert!(!is_self_or_ancestor(ha[0].pid, std::process::id() as i32));
        assert!(alive(ha[0].pid));
        drop(child.stdin.take());
        child.wait().unwrap();
    }
}
