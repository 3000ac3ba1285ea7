//! `config show` / `config check`: the merged settings with where each came
//! from (secrets redacted), and validation that names the key and the reason.

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use super::Ctx;
use crate::exit::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print every setting, its value and where it came from (secrets redacted)
    Show,
    /// Validate the configuration; exit 3 naming each bad key
    Check,
}

pub fn run(ctx: &Ctx, cmd: ConfigCommand) -> Result<ExitCode> {
    let s = &ctx.settings;
    match cmd {
        ConfigCommand::Show => {
            let entries = s.entries();
            let mut text = match &s.file {
                Some(p) => format!("# config file: {}\n", p.display()),
                None => "# no config file; built-in defaults and environment\n".to_string(),
            };
            let mut map = serde_json::Map::new();
            for (key, value, source) in &entries {
                let shown = match value {
                    serde_json::Value::String(v) => format!("{v:?}"),
                    other => other.to_string(),
                };
                text.push_str(&format!("{key} = {shown}    # {source}\n"));
                map.insert(
                    key.clone(),
                    json!({"value": value, "source": source.to_string()}),
                );
            }
            ctx.emit(&json!({"file": s.file, "settings": map}), &text);
            Ok(ExitCode::Success)
        }
        ConfigCommand::Check => {
            let problems = s.validate();
            let origin = s
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(defaults)".into());
            let text = if problems.is_empty() {
                format!("{origin}: OK")
            } else {
                format!(
                    "{origin}: {} problem(s)\n  {}",
                    problems.len(),
                    problems.join("\n  ")
                )
            };
            ctx.emit(
                &json!({"file": s.file, "ok": problems.is_empty(), "problems": problems}),
                &text,
            );
            Ok(if problems.is_empty() {
                ExitCode::Success
            } else {
                ExitCode::CouldNotStart
            })
        }
    }
}
