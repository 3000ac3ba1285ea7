//! Replacing a small file atomically: a temp file in the same directory,
//! written, fsynced, renamed over the target, then the directory fsynced. A
//! reader (Prometheus' textfile collector, the next `health --alert` run) sees
//! the old content or the new, never half of it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// Whether the parent directory may be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// A path the operator gave (`--prom-file`, `--out`): its directory must
    /// exist; a typo must not leave a new directory tree behind.
    MustExist,
    /// Our own file under a configured state or output directory: created if missing.
    Create,
}

/// Writes `bytes` to `path` (mode `mode`); the parent directory is created or
/// must exist, as `parent` says.
pub fn write_replacing(path: &Path, bytes: &[u8], mode: u32, parent: Parent) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match parent {
        Parent::Create => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?
        }
        Parent::MustExist if !dir.is_dir() => {
            return Err(MissingDir(dir.to_path_buf()).into());
        }
        Parent::MustExist => {}
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tuneton-ops-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod of a temp file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing a temp file in {}", dir.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The directory of a `Parent::MustExist` path does not exist (nothing was created).
#[derive(Debug, thiserror::Error)]
#[error("directory {} does not exist (not created: create it, or give a path in an existing directory)", .0.display())]
pub struct MissingDir(pub std::path::PathBuf);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_directory_is_an_error_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/x.prom");
        let e = write_replacing(&p, b"x", 0o644, Parent::MustExist).unwrap_err();
        assert!(e.is::<MissingDir>());
        assert_eq!(
            e.to_string(),
            format!(
                "directory {} does not exist (not created: create it, or give a path in an existing directory)",
                dir.path().join("no/such").display()
            )
        );
        assert!(!dir.path().join("no").exists());
        let ok = dir.path().join("x.prom");
        write_replacing(&ok, b"x", 0o644, Parent::MustExist).unwrap();
        assert_eq!(std::fs::read(&ok).unwrap(), b"x");
    }

    #[test]
    fn replaces_content_and_sets_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/state.json");
        write_replacing(&p, b"one", 0o600, Parent::Create).unwrap();
        write_replacing(&p, b"two", 0o600, Parent::Create).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let left: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }
}
