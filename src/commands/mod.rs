//! Dispatch: resolve settings, open the job log, take the job lock, run the
//! command, and map its result to an exit code. Commands are verbs composed
//! from the shared nouns (repo, stream, crypto, db, archive).

pub mod backup;
pub mod backups;
pub mod completions;
pub mod config;
pub mod db_recover;
pub mod diagnose;
pub mod disaster_recover;
pub mod health;
pub mod notify;
pub mod pitr;
pub mod restart;
pub mod restore;
pub mod rotate_logs;
pub mod verify_backup;
pub mod wal;

use std::io::{IsTerminal, Write};

use anyhow::Result;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::Settings;
use crate::exit::{could_not_start, exit_code_for, ExitCode};
use crate::lock::JobLock;

/// What every command gets: the global flags and the merged settings.
pub struct Ctx {
    pub global: GlobalArgs,
    pub settings: Settings,
}

impl Ctx {
    pub fn config(&self) -> &crate::config::Config {
        &self.settings.config
    }

    /// Prints the command's result: JSON with `--json`, else the text.
    pub fn emit(&self, json: &serde_json::Value, text: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (e.g. `| head`) is not an error worth a panic.
        let _ = if self.global.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(json).unwrap_or_default()
            )
        } else if !text.is_empty() {
            writeln!(out, "{}", text.trim_end())
        } else {
            Ok(())
        };
    }

    /// Asks before a destructive step; `--yes` answers for scripts. No terminal and no `--yes`: refuse.
    pub fn confirm(&self, question: &str) -> Result<()> {
        if self.global.yes {
            return Ok(());
        }
        if !std::io::stdin().is_terminal() {
            return Err(could_not_start(format!(
                "{question}: confirmation needed; pass --yes to proceed"
            )));
        }
        eprint!("{question} [y/N] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim(), "y" | "Y" | "yes" | "YES") {
            Ok(())
        } else {
            Err(could_not_start("not confirmed; nothing was changed"))
        }
    }
}

/// Runs one invocation and returns its exit code.
pub fn run(cli: Cli) -> ExitCode {
    let global = cli.global.clone();
    crate::joblog::init(global.quiet, global.verbose);
    crate::progress::init(global.quiet, global.no_progress, global.json);
    let job = cli.command.job_name();
    let wal_fetch = matches!(cli.command, Command::WalFetch(_));
    // A dry run changes nothing and pages nobody.
    let report_failure = cli.command.reports_failure() && !global.dry_run;
    match dispatch(cli) {
        Ok(code) => {
            if report_failure && code >= ExitCode::Failed {
                crate::notify::report_failed_run(&global, job, code.code(), None);
            } else if report_failure {
                crate::notify::report_recovered_run(&global, job);
            }
            code
        }
        Err(err) => {
            // restore_command: a config or start-up error must stop recovery, not end it.
            let code = if wal_fetch {
                ExitCode::RecoveryFatal
            } else {
                exit_code_for(&err)
            };
            log::error!("{err:#}");
            if global.json {
                let doc = serde_json::json!({"ok": false, "exit_code": code.code(), "job": job, "error": format!("{err:#}")});
                let _ = writeln!(
                    std::io::stdout(),
                    "{}",
                    serde_json::to_string_pretty(&doc).unwrap_or_default()
                );
            }
            // Another run holding the lock is not a failure of this job.
            let lock_held = err.chain().any(|e| e.is::<crate::lock::LockHeld>());
            if report_failure && !lock_held {
                crate::notify::report_failed_run(
                    &global,
                    job,
                    code.code(),
                    Some(&format!("{err:#}")),
                );
            }
            code
        }
    }
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    let job = cli.command.job_name();
    // These need no config and no database.
    match cli.command {
        Command::Completions(args) => return completions::run_completions(args),
        Command::Man(args) => return completions::run_man(args),
        _ => {}
    }
    let settings = Settings::load(&cli.global)?;
    if let Command::Config(cmd) = cli.command {
        let ctx = Ctx {
            global: cli.global,
            settings,
        };
        return config::run(&ctx, cmd);
    }
    settings.require_valid_for(cli.command.config_sections())?;
    let ctx = Ctx {
        global: cli.global,
        settings,
    };
    let mutating = !matches!(
        cli.command,
        Command::Backups(backups::BackupsCommand::List(_))
            | Command::Health(_)
            | Command::Notify(_)
            // Diagnostics must work with a full disk or an unwritable log dir.
            | Command::Diagnose(_)
    ) || matches!(&cli.command, Command::Health(a) if a.alert);
    // wal-fetch only writes the file PostgreSQL asked for: no lock to contend on.
    let locked = mutating && !matches!(cli.command, Command::WalFetch(_));
    if mutating {
        let log_dir = &ctx.config().paths.log_dir;
        if let Err(e) = crate::joblog::open_job_log(log_dir, job) {
            let msg = format!(
                "cannot open the job log in {} (paths.log_dir): {e}",
                log_dir.display()
            );
            if matches!(cli.command, Command::WalPush(_) | Command::WalFetch(_)) {
                // PostgreSQL keeps these commands' stderr in its own log; archiving
                // and recovery must not stop over our log file.
                log::warn!("{msg}");
            } else {
                return Err(could_not_start(msg));
            }
        }
    }
    let _lock = if locked {
        Some(JobLock::acquire(&ctx.config().paths.run_dir, job)?)
    } else {
        None
    };
    // PostgreSQL reads wal-push/wal-fetch's exit status itself: leave their signals alone.
    if mutating && !matches!(cli.command, Command::WalPush(_) | Command::WalFetch(_)) {
        crate::signals::install(job);
    }
    let started = std::time::Instant::now();
    if mutating {
        log::debug!("{job} started (pid {})", std::process::id());
    }
    let result = match cli.command {
        Command::Backup(args) => backup::run(&ctx, args),
        Command::Backups(cmd) => backups::run(&ctx, cmd),
        Command::VerifyBackup(args) => verify_backup::run(&ctx, args),
        Command::Restore(args) => restore::run(&ctx, args),
        Command::WalPush(args) => wal::push(&ctx, args),
        Command::Pitr(args) => pitr::run(&ctx, args),
        Command::DbRecover(args) => db_recover::run(&ctx, args),
        Command::DisasterRecover(args) => disaster_recover::run(&ctx, args),
        Command::RotateLogs(args) => rotate_logs::run(&ctx, args),
        Command::WalFetch(args) => Ok(wal::fetch(&ctx, args)),
        Command::Health(args) => health::run(&ctx, args),
        Command::Notify(cmd) => notify::run(&ctx, cmd),
        Command::Restart(args) => restart::run(&ctx, args),
        Command::Diagnose(args) => diagnose::run(&ctx, args),
        Command::Config(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("handled above")
        }
    };
    if let Ok(code) = &result {
        if mutating {
            log::info!(
                "{job} finished: {code} ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    result
}
