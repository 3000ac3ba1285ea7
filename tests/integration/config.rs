//! Configuration: precedence, provenance, redaction, validation.

use crate::support::*;

#[test]
fn unknown_key_exits_3_naming_the_key() {
    let env = TestEnv::empty("cfg_unknown");
    std::fs::write(&env.config_path, "[database]\nhots = \"db1\"\n").unwrap();
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 3);
    assert!(r.stderr().contains("hots"), "{}", r.stderr());
    let r = env.run(&["backup"]);
    assert_eq!(r.code(), 3);
}

#[test]
fn bad_value_exits_3_with_key_and_reason() {
    let env = TestEnv::empty("cfg_bad");
    env.write_config(
        "[retention]\nkeep_last = 0\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 3);
    assert!(
        r.stdout().contains("retention: every keep_* is 0"),
        "{}",
        r.stdout()
    );
}

#[test]
fn env_overrides_file_flags_override_env_and_secrets_are_redacted() {
    let env = TestEnv::empty("cfg_show");
    let out = env
        .cmd(&["--json", "--db-name", "from_flag", "config", "show"])
        .env("DB_USER", "from_env_user")
        .env("DB_NAME", "from_env_name")
        .env("PGPASSWORD", "s3cret-pw")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("s3cret-pw"), "{text}");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let s = &doc["settings"];
    assert_eq!(s["database.user"]["value"], "from_env_user");
    assert_eq!(s["database.user"]["source"], "env DB_USER");
    assert_eq!(s["database.name"]["value"], "from_flag");
    assert_eq!(s["database.name"]["source"], "flag --db-name");
    assert_eq!(
        s["database.port"]["source"],
        format!("file {}", env.config_path.display())
    );
    assert_eq!(s["retention.keep_daily"]["source"], "default");
    assert_eq!(s["database.password"]["value"], "<redacted>");
}

#[test]
fn missing_explicit_config_file_exits_3() {
    let env = TestEnv::empty("cfg_missing");
    let r = Run(env
        .cmd(&["backups", "list"])
        .env("TUNETON_OPS_CONFIG", "/nonexistent/ops.toml")
        .output()
        .unwrap());
    assert_eq!(r.code(), 3);
    assert!(
        r.stderr().contains("/nonexistent/ops.toml"),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_passphrase_file_gpg_would_read_differently_is_refused_before_any_backup() {
    let env = TestEnv::new("crlf_passphrase");
    let file = env.root().join("passphrase");
    write_secret(&file, &format!("{PASSPHRASE}\r\n"));
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    let said = format!("{}{}", r.stdout(), r.stderr());
    assert!(
        said.contains("encryption.passphrase_file") && said.contains("CR LF"),
        "{said}"
    );
    let r = env.run(&["backup", "--kind", "config"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(files_under(&env.repo()).is_empty(), "nothing written");
    assert!(!r.stderr().contains(PASSPHRASE), "{}", r.stderr());
}

#[test]
fn a_bad_health_setting_stops_health_but_not_the_nightly_backup() {
    let env = TestEnv::new("scoped_validation");
    env.write_config("[health.disk]\npaths = [\"relative/path\"]\nwarn = \"eighty\"\n");
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    let r = env.run(&["health", "--check", "disk"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("health.disk.warn"), "{}", r.stderr());
    let r = env.run(&["--json", "backup", "--kind", "config"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let id = r.json()["written"][0]["id"].as_str().unwrap().to_string();
    let r = env.run(&["verify-backup", &id]);
    assert_eq!(r.code(), 0, "{}", r.stderr());

    // A value of the wrong type (TOML itself cannot read it) is scoped the same way.
    env.write_config("[health.load]\nwarn = \"two\"\n");
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    let said = format!("{}{}", r.stdout(), r.stderr());
    assert!(said.contains("health:") && said.contains("two"), "{said}");
    let r = env.run(&["health", "--check", "load"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("health:"), "{}", r.stderr());
    let r = env.run(&["backup", "--kind", "config"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // An unknown key still stops every command.
    env.write_config("[health.load]\nwran = 3.0\n");
    let r = env.run(&["backup", "--kind", "config"]);
    assert_eq!(r.code(), 3, "{}", r.stderr());
    assert!(r.stderr().contains("wran"), "{}", r.stderr());
}
