//! `restart`: stop the application (with a deadline, then SIGKILL of its own
//! main PID only), empty the configured cache directories (never `/`, never
//! outside `app.cache_roots`, never through a symlink out of them), start it,
//! and wait for its health endpoint with backoff and a deadline. Exit 0 only
//! when healthy; otherwise exit 2 and alert.
//!
//! Replaces the emergency restart procedure (`systemctl stop; sleep 10;
//! pkill -9 -f tuneton-app; rm -rf /app/cache/*; systemctl start; sleep 30;
//! curl`), which killed anything whose command line matched and guessed how
//! long a start takes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use serde_json::json;

use super::Ctx;
use crate::exit::{could_not_start, ExitCode};
use crate::http::{self, HealthExpect};
use crate::notify::{Event, Notifier, Severity};
use crate::service::Service;

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Leave the cache directories alone
    #[arg(long)]
    pub keep_cache: bool,
}

/// What clearing one cache directory did.
#[derive(Debug, Clone, Serialize)]
pub struct CacheClear {
    pub dir: PathBuf,
    /// The directory really emptied (symlinks resolved).
    pub resolved: Option<PathBuf>,
    pub removed_entries: u64,
    pub error: Option<String>,
}

/// Resolves a cache directory to the real directory to empty, or says why not.
/// `Ok(None)`: it does not exist (nothing to clear).
pub fn resolve_cache_dir(
    dir: &Path,
    roots: &[PathBuf],
) -> std::result::Result<Option<PathBuf>, String> {
    if dir.parent().is_none() {
        return Err(format!("refusing to clear {}: it is /", dir.display()));
    }
    if dir
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "refusing to clear {}: the path contains ..",
            dir.display()
        ));
    }
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot inspect {}: {e}", dir.display())),
    };
    let real =
        std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    if real.parent().is_none() {
        return Err(format!(
            "refusing to clear {}: it resolves to /",
            dir.display()
        ));
    }
    if !real.is_dir() {
        return Err(format!(
            "refusing to clear {}: not a directory",
            dir.display()
        ));
    }
    let inside = roots.iter().any(|r| {
        std::fs::canonicalize(r)
            .map(|root| root.parent().is_some() && real.starts_with(&root))
            .unwrap_or(false)
    });
    if !inside {
        let how = if meta.file_type().is_symlink() || real != dir {
            format!("it is a symlink (or under one) to {}", real.display())
        } else {
            "it is".to_string()
        };
        return Err(format!(
            "refusing to clear {}: {how} outside app.cache_roots ({})",
            dir.display(),
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Some(real))
}

/// Deletes the contents of `real` (not the directory). Symlinks inside are
/// removed as links, never followed; subdirectories go with remove_dir_all,
/// which does not follow symlinks either.
fn empty_dir(real: &Path) -> std::result::Result<u64, String> {
    let mut removed = 0;
    let entries =
        std::fs::read_dir(real).map_err(|e| format!("reading {}: {e}", real.display()))?;
    let mut errors = Vec::new();
    for entry in entries.flatten() {
        let p = entry.path();
        let result = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) => errors.push(format!("{}: {e}", p.display())),
        }
    }
    if errors.is_empty() {
        Ok(removed)
    } else {
        Err(format!(
            "could not remove {} entr{}: {}",
            errors.len(),
            if errors.len() == 1 { "y" } else { "ies" },
            errors.join("; ")
        ))
    }
}

pub fn run(ctx: &Ctx, args: RestartArgs) -> Result<ExitCode> {
    let cfg = ctx.config();
    let app = &cfg.app;
    let svc = Service::from_app_config(app);
    let expect = HealthExpect::from_app_config(app);

    // Every cache directory is checked before anything is stopped.
    let mut caches: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    if !args.keep_cache {
        let mut refused = Vec::new();
        for (i, d) in app.cache_dirs.iter().enumerate() {
            match resolve_cache_dir(d, &app.cache_roots) {
                Ok(real) => caches.push((d.clone(), real)),
                Err(e) => refused.push(format!("app.cache_dirs[{i}]: {e}")),
            }
        }
        if !refused.is_empty() {
            return Err(could_not_start(format!(
                "{}\nnothing was stopped or deleted (fix app.cache_dirs / app.cache_roots, or pass --keep-cache)",
                refused.join("\n")
            )));
        }
    }

    let mut plan = vec![
        format!(
            "stop {} via {} (wait up to {}s)",
            svc.label,
            svc.describe(),
            app.stop_timeout_secs
        ),
        format!(
            "if it still runs: SIGKILL its main PID ({}), wait up to {}s",
            match svc.main_pid() {
                Ok(Some(p)) => format!("now {}", p.pid),
                Ok(None) => "none known now".into(),
                Err(e) => format!("unknown: {e:#}"),
            },
            app.kill_timeout_secs
        ),
    ];
    for (d, real) in &caches {
        plan.push(match real {
            Some(r) if r == d => format!("empty {}", d.display()),
            Some(r) => format!("empty {} (really {})", d.display(), r.display()),
            None => format!("skip {} (does not exist)", d.display()),
        });
    }
    plan.push(format!(
        "start {} (deadline {}s)",
        svc.label, app.start_timeout_secs
    ));
    plan.push(format!(
        "wait for {} to be healthy (HTTP {}), polling with backoff, up to {}s",
        http::describe_url(&app.health_url),
        expect.status,
        app.ready_timeout_secs
    ));
    if ctx.global.dry_run {
        let text = format!(
            "restart plan (dry run, nothing done):\n  {}",
            plan.join("\n  ")
        );
        ctx.emit(&json!({"dry_run": true, "plan": plan}), &text);
        return Ok(ExitCode::Success);
    }
    ctx.confirm(&format!("Restart {} ({})", svc.label, svc.describe()))?;

    let started = Instant::now();
    let mut steps: Vec<String> = Vec::new();
    let fail = |steps: &mut Vec<String>, what: String| -> Result<ExitCode> {
        log::error!("{what}");
        steps.push(format!("FAILED: {what}"));
        alert_failure(ctx, &what);
        let text = steps.join("\n");
        ctx.emit(&json!({"ok": false, "steps": steps, "error": what}), &text);
        Ok(ExitCode::Failed)
    };

    log::info!("stopping {} via {}", svc.label, svc.describe());
    let stop = match svc.stop() {
        Ok(s) => s,
        Err(e) => return fail(&mut steps, format!("stop: {e:#}")),
    };
    steps.push(match stop.killed_pid {
        Some(pid) => format!(
            "stopped: did not stop within {}s; SIGKILL to its main PID {pid}",
            app.stop_timeout_secs
        ),
        None => format!("stopped in {} ms", stop.elapsed_ms),
    });

    let mut cleared = Vec::new();
    let mut cache_ok = true;
    for (d, real) in &caches {
        let c = match real {
            None => CacheClear {
                dir: d.clone(),
                resolved: None,
                removed_entries: 0,
                error: None,
            },
            Some(r) => match empty_dir(r) {
                Ok(n) => CacheClear {
                    dir: d.clone(),
                    resolved: Some(r.clone()),
                    removed_entries: n,
                    error: None,
                },
                Err(e) => {
                    cache_ok = false;
                    log::error!("clearing {}: {e}", d.display());
                    CacheClear {
                        dir: d.clone(),
                        resolved: Some(r.clone()),
                        removed_entries: 0,
                        error: Some(e),
                    }
                }
            },
        };
        steps.push(match (&c.error, &c.resolved) {
            (Some(e), _) => format!("cache {}: {e}", d.display()),
            (None, None) => format!("cache {}: absent", d.display()),
            (None, Some(_)) => format!(
                "cache {}: {} entries removed",
                d.display(),
                c.removed_entries
            ),
        });
        cleared.push(c);
    }

    log::info!("starting {}", svc.label);
    if let Err(e) = svc.start() {
        return fail(&mut steps, format!("start: {e:#}"));
    }
    steps.push("started".into());
    let deadline = Instant::now() + Duration::from_secs(app.ready_timeout_secs);
    let wait = match http::wait_for_health(
        &app.health_url,
        &expect,
        Duration::from_secs(app.health_timeout_secs),
        deadline,
    ) {
        Ok(w) => w,
        Err(e) => return fail(&mut steps, format!("not healthy after the start: {e:#}")),
    };
    steps.push(format!(
        "healthy after {:.1}s ({} attempt{}): {}",
        wait.elapsed.as_secs_f64(),
        wait.attempts,
        if wait.attempts == 1 { "" } else { "s" },
        wait.last.describe()
    ));
    let new_pid = svc.main_pid().ok().flatten().map(|p| p.pid);
    let code = if cache_ok {
        ExitCode::Success
    } else {
        ExitCode::Warning
    };
    log::info!(
        "restart finished in {:.1}s: healthy",
        started.elapsed().as_secs_f64()
    );
    let text = format!("restart: healthy\n  {}", steps.join("\n  "));
    ctx.emit(
        &json!({
            "ok": true,
            "healthy": true,
            "stop": stop,
            "caches": cleared,
            "main_pid": new_pid,
            "health_attempts": wait.attempts,
            "health_wait_ms": wait.elapsed.as_millis(),
            "elapsed_ms": started.elapsed().as_millis(),
            "steps": steps,
        }),
        &text,
    );
    Ok(code)
}

fn alert_failure(ctx: &Ctx, what: &str) {
    let n = Notifier::from_config(&ctx.config().alerts);
    if n.is_empty() {
        log::warn!("no alert channel configured: the failed restart is reported only here");
        return;
    }
    let ev = Event {
        key: "restart".into(),
        severity: Severity::Critical,
        resolve: false,
        title: format!("restart of the application failed on {}", n.host),
        body: what.to_string(),
        attachment: None,
    };
    crate::notify::send_logged(&n, &ev);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dirs_resolve_only_inside_their_roots() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("cache");
        let outside = t.path().join("precious");
        std::fs::create_dir_all(root.join("img")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        let roots = vec![root.clone()];
        assert_eq!(
            resolve_cache_dir(&root.join("img"), &roots).unwrap(),
            Some(std::fs::canonicalize(root.join("img")).unwrap())
        );
        assert!(resolve_cache_dir(&root.join("out"), &roots)
            .unwrap_err()
            .contains("symlink"));
        assert!(resolve_cache_dir(Path::new("/"), &roots)
            .unwrap_err()
            .contains("it is /"));
        assert!(resolve_cache_dir(&outside, &roots)
            .unwrap_err()
            .contains("outside app.cache_roots"));
        assert!(resolve_cache_dir(&root.join("img/../../precious"), &roots).is_err());
        assert_eq!(
            resolve_cache_dir(&root.join("absent"), &roots).unwrap(),
            None
        );
        // A root of / never counts.
        assert!(resolve_cache_dir(&outside, &[PathBuf::from("/")]).is_err());
    }
}
