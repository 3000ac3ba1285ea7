//! The CLI surface: help, exit-code docs, and the committed completions and man page.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tuneton-ops"))
}

fn run(args: &[&str]) -> String {
    let out = bin()
        .args(args)
        .env_remove("TUNETON_OPS_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_documents_exit_codes_and_offers_only_working_commands() {
    let help = run(&["--help"]);
    for line in [
        "0  success",
        "1  warning",
        "2  failed",
        "3  could not start",
    ] {
        assert!(help.contains(line), "{help}");
    }
    for cmd in [
        "backup",
        "backups",
        "verify-backup",
        "restore",
        "config",
        "completions",
        "man",
        "health",
        "notify",
        "restart",
        "diagnose",
    ] {
        assert!(
            help.contains(&format!("  {cmd}")),
            "{cmd} missing from --help"
        );
    }
}

#[test]
fn committed_completions_and_man_page_are_current() {
    let root = env!("CARGO_MANIFEST_DIR");
    for shell in ["bash", "zsh", "fish"] {
        let file = match shell {
            "bash" => "tuneton-ops.bash",
            "zsh" => "_tuneton-ops",
            _ => "tuneton-ops.fish",
        };
        let committed =
            std::fs::read_to_string(format!("{root}/completions/{file}")).unwrap_or_default();
        assert!(
            committed == run(&["completions", shell]),
            "completions/{file} is stale: run `scripts/regen-docs.sh`"
        );
    }
    let committed =
        std::fs::read_to_string(format!("{root}/man/tuneton-ops.1")).unwrap_or_default();
    assert!(
        committed.contains("could not start"),
        "the man page documents the exit codes"
    );
    assert!(
        run(&["man"]).contains(".TH tuneton-ops 1"),
        "`man` prints the main page"
    );
    let fresh = tempfile::tempdir().unwrap();
    run(&["man", "--out-dir", fresh.path().to_str().unwrap()]);
    let mut names: Vec<String> = std::fs::read_dir(fresh.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut committed_names: Vec<String> = std::fs::read_dir(format!("{root}/man"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    committed_names.sort();
    assert_eq!(
        names, committed_names,
        "man/ pages differ: run `scripts/regen-docs.sh`"
    );
    for n in names {
        let want = std::fs::read(fresh.path().join(&n)).unwrap();
        assert!(
            std::fs::read(format!("{root}/man/{n}")).unwrap() == want,
            "man/{n} is stale: run `scripts/regen-docs.sh`"
        );
    }
}

#[test]
fn usage_errors_exit_3_like_bad_input_and_still_print_json() {
    // clap's own exit code would be 2, which a monitor reads as CRITICAL.
    for args in [
        &["backup", "--kind", "foo"][..],
        &["health", "--format", "xml"][..],
        &["verify-backup", "--max-age", "1s"][..],
        &["no-such-command"][..],
        &[][..],
    ] {
        let out = bin()
            .args(args)
            .env_remove("TUNETON_OPS_CONFIG")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
    }
    let out = bin()
        .args(["--json", "backup", "--kind", "foo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["exit_code"], 3);
    assert!(doc["error"].as_str().unwrap().contains("'foo'"), "{doc}");
    let out = bin().arg("--version").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}
