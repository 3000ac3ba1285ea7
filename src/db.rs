//! PostgreSQL: connections with deadlines, snapshot export and exact row counts,
//! and the client tools (pg_dump, pg_restore, psql) run with the right
//! environment. The password reaches children through their environment
//! (PGPASSWORD) or a passfile, never through argv.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use postgres::{Client, NoTls};

use crate::config::{DatabaseConfig, Secret};
use crate::exit::could_not_start;

/// How to reach the cluster, resolved from the config.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub passfile: Option<PathBuf>,
    pub bin_dir: Option<PathBuf>,
    pub connect_timeout: Duration,
    /// The config key `connect_timeout` came from, named when it runs out.
    pub connect_timeout_key: &'static str,
    pub command_timeout: Duration,
    pub maintenance_db: String,
}

impl PgTarget {
    pub fn from_config(c: &DatabaseConfig) -> PgTarget {
        PgTarget {
            host: c.host.clone(),
            port: c.port,
            user: c.user.clone(),
            password: c.password.clone(),
            passfile: c.passfile.clone(),
            bin_dir: c.bin_dir.clone(),
            connect_timeout: Duration::from_secs(c.connect_timeout_secs),
            connect_timeout_key: "database.connect_timeout_secs",
            command_timeout: Duration::from_secs(c.command_timeout_secs),
            maintenance_db: c.maintenance_db.clone(),
        }
    }

    /// Where, for messages: `user@host:port/db`.
    pub fn describe(&self, db: &str) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, db)
    }

    /// Opens a connection with a connect deadline, a statement deadline and TCP keepalives.
    pub fn connect(&self, db: &str) -> Result<Client> {
        let mut cfg = postgres::Config::new();
        if self.host.starts_with('/') {
            cfg.host_path(&self.host);
        } else {
            cfg.host(&self.host);
        }
        cfg.port(self.port)
            .user(&self.user)
            .dbname(db)
            .application_name("tuneton-ops")
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .options(&format!(
                "-c statement_timeout={} -c idle_in_transaction_session_timeout=0",
                self.command_timeout.as_millis()
            ));
        if let Some(p) = &self.password {
            cfg.password(p.expose());
        } else if let Some(p) = self.passfile_password(db) {
            cfg.password(p);
        }
        // connect_timeout covers only the TCP connect: a server that accepts and
        // then says nothing would hang the startup handshake. The whole connect
        // runs on a thread with the deadline enforced here.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(cfg.connect(NoTls));
        });
        let result = rx.recv_timeout(self.connect_timeout).map_err(|_| {
            anyhow!(
                "cannot connect to PostgreSQL {}: no answer within {}s ({}); \
                 the server or the network is not responding",
                self.describe(db),
                self.connect_timeout.as_secs(),
                self.connect_timeout_key
            )
        })?;
        result.map_err(|e| {
            let detail = match e.as_db_error() {
                Some(d) => d.message().to_string(),
                None => {
                    let mut chain = e.to_string();
                    let mut src = std::error::Error::source(&e);
                    while let Some(s) = src {
                        chain.push_str(&format!(": {s}"));
                        src = s.source();
                    }
                    chain
                }
            };
            let hint = if detail.contains("password missing") {
                " (set PGPASSWORD, database.password_file or database.passfile)"
            } else if detail.contains("refused") {
                " (is the server running on that host and port? database.host / database.port)"
            } else {
                ""
            };
            anyhow!(
                "cannot connect to PostgreSQL {}: {detail}{hint}",
                self.describe(db)
            )
        })
    }

    /// The password for `db` from the configured passfile (libpq format), if any.
    fn passfile_password(&self, db: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.passfile.as_ref()?).ok()?;
        let port = self.port.to_string();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|line| {
                let f = split_passfile_line(line);
                let ok = |i: usize, v: &str| f.get(i).is_some_and(|x| x == "*" || x == v);
                (f.len() == 5
                    && ok(0, &self.host)
                    && ok(1, &port)
                    && ok(2, db)
                    && ok(3, &self.user))
                .then(|| f[4].clone())
            })
    }

    /// A client tool (pg_dump, pg_restore, psql) set up for this target.
    /// Inherited PG* variables are cleared so only our settings apply.
    pub fn tool(&self, name: &str) -> Command {
        let program = match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        };
        self.tool_at(program)
    }

    /// Same environment, for a program given by path (server-side tools outside PATH).
    pub fn tool_at(&self, program: PathBuf) -> Command {
        let mut cmd = Command::new(program);
        crate::process::isolate(&mut cmd);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PG") {
                cmd.env_remove(k);
            }
        }
        cmd.env("PGHOST", &self.host)
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.user)
            .env(
                "PGCONNECT_TIMEOUT",
                self.connect_timeout.as_secs().max(2).to_string(),
            )
            .env("PGAPPNAME", "tuneton-ops");
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p.expose());
        }
        if let Some(p) = &self.passfile {
            cmd.env("PGPASSFILE", p);
        }
        cmd
    }

    /// `pg_dump --version` etc.: the tool's version line, or exit 3 if it is missing.
    pub fn tool_version(&self, name: &str) -> Result<String> {
        let out = crate::process::output_with_deadline(self.tool(name).arg("--version"), Duration::from_secs(30), name)
            .map_err(|e| {
                could_not_start(format!(
                    "{name} is not available ({e:#}); install postgresql-client or set database.bin_dir"
                ))
            })?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn database_exists(&self, db: &str) -> Result<bool> {
        let mut c = self.connect(&self.maintenance_db)?;
        Ok(
            c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])?
                .is_some(),
        )
    }

    pub fn create_database(&self, db: &str) -> Result<()> {
        let mut c = self.connect(&self.maintenance_db)?;
        c.batch_execute(&format!("CREATE DATABASE {}", quote_ident(db)))
            .with_context(|| format!("creating database {db}"))
    }

    pub fn drop_database(&self, db: &str) -> Result<()> {
        let mut c = self.connect(&self.maintenance_db)?;
        c.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(db)
        ))
        .with_context(|| format!("dropping database {db}"))
    }
}

fn split_passfile_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().expect("non-empty").push(n)
                }
            }
            ':' => fields.push(String::new()),
            c => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// User tables (not system, not extension members) whose data pg_dump dumps.
const TABLES_SQL: &str = "
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2";

/// Exact row count of every user table, in the client's current transaction.
pub fn count_rows(client: &mut Client) -> Result<BTreeMap<String, i64>> {
    let mut counts = BTreeMap::new();
    for row in client.query(TABLES_SQL, &[])? {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let sql = format!(
            "SELECT count(*) FROM {}.{}",
            quote_ident(&schema),
            quote_ident(&table)
        );
        let n: i64 = client
            .query_one(&sql, &[])
            .with_context(|| format!("counting rows of {schema}.{table}"))?
            .get(0);
        counts.insert(format!("{schema}.{table}"), n);
    }
    Ok(counts)
}

/// A read-only repeatable-read transaction whose snapshot is exported for pg_dump.
/// Keep it open until pg_dump has finished.
pub struct ExportedSnapshot {
    pub client: Client,
    pub id: String,
    pub server_version: String,
}

impl ExportedSnapshot {
    pub fn begin(target: &PgTarget, db: &str) -> Result<ExportedSnapshot> {
        let mut client = target.connect(db)?;
        let server_version: String = client.query_one("SHOW server_version", &[])?.get(0);
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
        let id: String = client.query_one("SELECT pg_export_snapshot()", &[])?.get(0);
        Ok(ExportedSnapshot {
            client,
            id,
            server_version,
        })
    }

    pub fn finish(mut self) -> Result<()> {
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("users"), "\"users\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn passfile_lines_split_with_escapes() {
        assert_eq!(
            split_passfile_line("h:5432:db:u:p\\:w"),
            vec!["h", "5432", "db", "u", "p:w"]
        );
    }
}
