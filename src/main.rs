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
mod stream;
mod verify;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = commands::run(cli);
    std::process::exit(code.code());
}
