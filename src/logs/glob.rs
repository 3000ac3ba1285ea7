//! Path patterns of a log set: `*`, `?` and `[a-z]` / `[!a-z]` within one path
//! component (a `*` never crosses a `/` and, as in the shell, never matches a
//! leading dot), expanded against the filesystem or matched against a path.

use std::path::{Path, PathBuf};

/// One configured path or glob, made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The components after the leading `/`.
    parts: Vec<String>,
}

fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl PathPattern {
    /// `pattern` relative to `base` unless it is absolute.
    pub fn new(pattern: &str, base: &Path) -> PathPattern {
        let full = if pattern.starts_with('/') {
            PathBuf::from(pattern)
        } else {
            base.join(pattern)
        };
        let parts = full
            .to_string_lossy()
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .map(String::from)
            .collect();
        PathPattern { parts }
    }

    /// The absolute pattern, for messages.
    pub fn display(&self) -> String {
        format!("/{}", self.parts.join("/"))
    }

    /// Whether it names exactly one path (no wildcard anywhere).
    pub fn is_literal(&self) -> bool {
        !self.parts.iter().any(|p| has_magic(p))
    }

    /// Whether `path` (absolute) matches, component by component.
    pub fn matches(&self, path: &Path) -> bool {
        let comps: Vec<String> = path
            .to_string_lossy()
            .split('/')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect();
        comps.len() == self.parts.len()
            && self
                .parts
                .iter()
                .zip(&comps)
                .all(|(p, c)| component_matches(p, c))
    }

    /// Whether the file name `name` in directory `dir` matches.
    pub fn matches_in(&self, dir: &Path, name: &str) -> bool {
        self.matches(&dir.join(name))
    }

    /// The existing paths it matches (any file type), sorted.
    pub fn expand(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(PathBuf::from("/"), &self.parts, &mut found);
        found.sort();
        found
    }

    /// The existing directories the pattern's files would be in.
    pub fn expand_dirs(&self) -> Vec<PathBuf> {
        let Some((_, dir_parts)) = self.parts.split_last() else {
            return vec![PathBuf::from("/")];
        };
        let mut found = Vec::new();
        walk(PathBuf::from("/"), dir_parts, &mut found);
        found.retain(|d| d.is_dir());
        found.sort();
        found
    }
}

fn walk(at: PathBuf, rest: &[String], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = rest.split_first() else {
        out.push(at);
        return;
    };
    if !has_magic(first) {
        let next = at.join(first);
        if rest.is_empty() {
            if std::fs::symlink_metadata(&next).is_ok() {
                out.push(next);
            }
        } else if next.is_dir() {
            walk(next, rest, out);
        }
        return;
    }
    let Ok(entries) = std::fs::read_dir(&at) else {
        return;
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| component_matches(first, n))
        .collect();
    names.sort();
    for n in names {
        let next = at.join(&n);
        if rest.is_empty() {
            out.push(next);
        } else if next.is_dir() {
            walk(next, rest, out);
        }
    }
}

/// Shell-style match of one path component.
pub fn component_matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    matches_from(&p, &n)
}

fn matches_from(p: &[char], n: &[char]) -> bool {
    // Iterative matcher with single-star backtracking (linear in practice).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class(&p[pi..], n[ni]) {
                        if matched {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against a `[...]` class at the start of `p`: (matched, class length), or None if unterminated.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_match_like_the_shell() {
        assert!(component_matches("*.log", "application.log"));
        assert!(!component_matches(
            "*.log",
            "application.log-20261203T020000.123Z-001.gz"
        ));
        assert!(!component_matches("*.log", ".hidden.log"));
        assert!(component_matches("app-?.log", "app-1.log"));
        assert!(component_matches("app-[0-9].log", "app-7.log"));
        assert!(!component_matches("app-[!0-9].log", "app-7.log"));
        assert!(component_matches("*", "error.log"));
        assert!(component_matches("a*b*c", "aXXbYYc"));
        assert!(!component_matches("a*b*c", "aXXbYY"));
        assert!(component_matches("error.log", "error.log"));
    }

    #[test]
    fn relative_patterns_are_under_the_base_and_expand() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("archive")).unwrap();
        for f in ["a.log", "b.log", "c.txt", "archive/a.log-x.gz"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let p = PathPattern::new("*.log", dir.path());
        assert_eq!(
            p.expand(),
            vec![dir.path().join("a.log"), dir.path().join("b.log")]
        );
        assert!(p.matches(&dir.path().join("zzz.log")));
        assert!(!p.matches(&dir.path().join("archive/a.log")));
        assert_eq!(p.expand_dirs(), vec![dir.path().to_path_buf()]);
        assert!(!p.is_literal());
        assert!(PathPattern::new("/var/log/x.log", dir.path()).is_literal());
    }
}
