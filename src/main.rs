//! `tuneton-ops`: parse, load settings, run one command, turn the outcome into an exit code.

mod appctl;
mod archive;
mod atomic_file;
mod checks;
mod cli;
mod commands;
mod config;
mod crypto;
mod db;
mod exit;
mod http;
mod joblog;
mod lock;
mod logs;
mod manifest;
mod notify;
mod pgcluster;
mod process;
mod progress;
mod redact;
mod repo;
mod restorer;
mod retention;
mod service;
mod signals;
mod stream;
mod verify;

use clap::Parser;

fn main() {
    // Buffers of 256 KiB and more (S3 parts and ranges, pipeline buffers) come from
    // mmap and go back to the system when freed. glibc otherwise raises this
    // threshold after the first such free and serves them from per-thread arenas,
    // where the S3 request threads left freed megabytes behind: peak RSS grew with
    // the object's size (42 -> 52 MiB verifying 100 -> 400 MB from S3).
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(usage_error(e)),
    };
    let code = commands::run(cli);
    signals::hold_if_interrupted();
    std::process::exit(code.code());
}

/// `--help` and `--version` exit 0; any other command-line error is bad input:
/// exit 3 ("could not start", UNKNOWN to a monitor), never clap's 2, which a
/// monitor would read as CRITICAL. Under `--json` stdout still gets a document.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let _ = e.print();
    if std::env::args().any(|a| a == "--json") {
        let text = e.to_string();
        let message = text
            .lines()
            .next()
            .unwrap_or("invalid command line")
            .trim_start_matches("error: ");
        let doc = serde_json::json!({"ok": false, "exit_code": 3, "error": format!("{message} (see --help)")});
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    exit::ExitCode::CouldNotStart.code()
}
