//! Every file in examples/ is read by a test: the config parses with no unknown
//! key, and every tuneton-ops command line names a real subcommand with valid flags.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tuneton-ops"));
    c.env_remove("TUNETON_OPS_CONFIG");
    c
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ops.toml");
    let out = bin()
        .args(["--json", "--config", path, "config", "show"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    for key in doc["settings"].as_object().unwrap().keys() {
        let leaf = key.rsplit('.').next().unwrap();
        if [
            "password",
            "secret_access_key",
            "webhook_url",
            "routing_key",
            "smtp_password",
        ]
        .contains(&leaf)
        {
            continue; // never a file key: from the environment or a 0600 file
        }
        assert!(
            text.contains(&format!("{leaf} =")),
            "examples/ops.toml does not document {key}"
        );
    }
}

#[test]
fn example_command_lines_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for file in walk(std::path::Path::new(dir)) {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let args: Vec<String> = if let Some(i) = line.find("bin/tuneton-ops ") {
                line[i + "bin/tuneton-ops ".len()..]
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            } else if line.trim_start().starts_with("args: [") {
                serde_json::from_str(line.trim_start().trim_start_matches("args: ")).unwrap()
            } else {
                continue;
            };
            if args.is_empty() || args[0].starts_with('#') {
                continue;
            }
            // clap validates every flag and value before acting on --help.
            let mut check = args.clone();
            check.push("--help".into());
            let out = bin().args(&check).output().unwrap();
            assert!(
                out.status.success(),
                "{}: `{}`: {}",
                file.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            seen += 1;
        }
    }
    assert!(seen >= 6, "found only {seen} command lines in examples/");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    crate::support::files_under(dir)
}
