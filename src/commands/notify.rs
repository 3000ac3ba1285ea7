//! `notify test [CHANNEL]`: sends a test message through each configured alert
//! channel (Slack, PagerDuty, email) and reports each result.
//!
//! Replaces the old notification-channel script's `test_notifications.sh`
//! step, which could not say which channel failed.

use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::Ctx;
use crate::exit::ExitCode;
use crate::notify::{require_channel, Event, Notifier, Severity};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a test message through every configured channel (or one) and report each result; exit 2 if any failed
    Test(TestArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChannelArg {
    Slack,
    Pagerduty,
    Email,
}

impl ChannelArg {
    fn name(self) -> &'static str {
        match self {
            ChannelArg::Slack => "slack",
            ChannelArg::Pagerduty => "pagerduty",
            ChannelArg::Email => "email",
        }
    }
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only this channel
    #[arg(value_enum)]
    pub channel: Option<ChannelArg>,
}

pub fn run(ctx: &Ctx, cmd: NotifyCommand) -> Result<ExitCode> {
    let NotifyCommand::Test(args) = cmd;
    let n = Notifier::from_config(&ctx.config().alerts);
    let only = args.channel.map(ChannelArg::name);
    require_channel(&n, only)?;
    let only_list: Option<Vec<&str>> = only.map(|c| vec![c]);
    let ev = Event {
        key: "test".into(),
        severity: Severity::Info,
        resolve: false,
        title: format!("tuneton-ops test message from {}", n.host),
        body: "If you can read this, alerts from this host reach this channel.".into(),
        attachment: None,
    };
    if ctx.global.dry_run {
        let text = format!(
            "would send a test message via {}",
            only.map(|c| c.to_string())
                .unwrap_or_else(|| n.channel_names().join(", "))
        );
        ctx.emit(&json!({"dry_run": true, "channels": only_list.clone().unwrap_or_else(|| n.channel_names())}), &text);
        return Ok(ExitCode::Success);
    }
    let mut deliveries = n.send(&ev, only_list.as_deref());
    // A test trigger must not leave an incident open: resolve it at once.
    if deliveries.iter().any(|d| d.channel == "pagerduty" && d.ok) {
        let resolve = Event {
            resolve: true,
            ..ev.clone()
        };
        for mut d in n.send(&resolve, Some(&["pagerduty"])) {
            d.channel = "pagerduty";
            if let Some(t) = deliveries.iter_mut().find(|x| x.channel == "pagerduty") {
                t.ok &= d.ok;
                t.attempts += d.attempts;
                t.detail = format!("{}; {}", t.detail, d.detail);
            }
        }
    }
    let mut text = String::new();
    for d in &deliveries {
        text.push_str(&format!(
            "{:<9}  {}  {} ({} attempt{}, {} ms)\n",
            d.channel,
            if d.ok { "sent  " } else { "FAILED" },
            d.detail,
            d.attempts,
            if d.attempts == 1 { "" } else { "s" },
            d.elapsed_ms
        ));
    }
    let failed = deliveries.iter().filter(|d| !d.ok).count();
    let code = if failed > 0 {
        ExitCode::Failed
    } else {
        ExitCode::Success
    };
    ctx.emit(&json!({"ok": failed == 0, "deliveries": deliveries}), &text);
    Ok(code)
}
