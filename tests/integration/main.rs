//! Integration tests: the built binary against a real PostgreSQL 15 cluster,
//! real gpg (through gpgme in the tool, the gpg CLI as the peer), zstd, gzip,
//! tar and pg_restore.

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod cli;
mod config;
mod diagnose;
mod disaster;
mod examples;
mod health;
mod legacy;
mod notify;
mod restart;
mod restore;
mod retention;
mod rotate_logs;
mod s3;
mod verify;
mod wal;
