//! Encryption through gpgme: AES256 symmetric with a passphrase, or to recipients' public keys.
//!
//! The passphrase reaches gpg over gpgme's loopback pinentry channel, never on
//! any argv. A throwaway GnuPG home (short path, see FIELD-NOTES) is used for
//! symmetric work and its agent is stopped afterwards.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use gpgme::{Context as GpgContext, EncryptFlags, PassphraseRequest, PinentryMode, Protocol};
use serde::{Deserialize, Serialize};

use crate::config::{read_passphrase_file, EncryptionConfig, EncryptionMode, Secret};
use crate::exit::could_not_start;

/// How a stored object is encrypted (recorded in its manifest).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EncryptionInfo {
    /// "gpg-symmetric", "gpg-pubkey" or "none".
    pub method: String,
    /// "AES256" for symmetric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

impl EncryptionInfo {
    pub fn is_encrypted(&self) -> bool {
        self.method != "none"
    }
}

/// A GnuPG home: either the configured one or a short-lived private one.
struct GpgHome {
    path: PathBuf,
    owned: Option<tempfile::TempDir>,
}

impl GpgHome {
    fn new(configured: Option<&Path>) -> Result<GpgHome> {
        if let Some(p) = configured {
            return Ok(GpgHome {
                path: p.to_path_buf(),
                owned: None,
            });
        }
        reap_stale_homes();
        // Short path: the agent socket breaks on homes longer than ~100 characters.
        let dir = tempfile::Builder::new()
            .prefix("tn")
            .tempdir_in("/tmp")
            .context("creating a private GnuPG home under /tmp")?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        // An explicit s2k-count: without one, gpg asks the (fresh, per-run) agent,
        // which first calibrates its hash speed: ~0.8 s of CPU on every backup and
        // every wal-push. 65011712 is the maximum, what that calibration picks on
        // hardware of this kind, so the derived key is as costly to brute-force.
        std::fs::write(
            dir.path().join("gpg.conf"),
            "cipher-algo AES256\ns2k-cipher-algo AES256\ns2k-digest-algo SHA512\ns2k-count 65011712\n",
        )?;
        std::fs::write(
            dir.path().join("gpg-agent.conf"),
            "allow-loopback-pinentry\n",
        )?;
        Ok(GpgHome {
            path: dir.path().to_path_buf(),
            owned: Some(dir),
        })
    }
}

/// Marks a private home with the PID of the run that made it.
const OWNER_FILE: &str = "tuneton-ops.pid";

/// Stops the agents of, and removes, private homes whose run died without
/// cleaning up (SIGKILL, power loss), so agents do not pile up.
fn reap_stale_homes() {
    reap_homes(|pid| {
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        !alive
    });
}

/// On an interrupt: stops the agents of this run's private homes and removes
/// them (Drop does not run when the process exits from a signal), so no agent
/// outlives the run holding a copy of its environment.
pub fn remove_this_runs_homes() {
    let me = std::process::id() as i32;
    reap_homes(|pid| pid == me);
}

/// Stops the agent of, and removes, every private home whose owner PID `doomed` picks.
fn reap_homes(doomed: impl Fn(i32) -> bool) {
    let Ok(rd) = std::fs::read_dir("/tmp") else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with("tn") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(path.join(OWNER_FILE))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            continue;
        };
        if doomed(pid) {
            kill_agent(&path);
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn kill_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(home)
        .args(["--kill", "gpg-agent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        if self.owned.is_some() {
            // gpgme starts an agent for the home that would outlive us.
            kill_agent(&self.path);
        }
    }
}

/// Resolved encryption settings for one run.
pub struct Crypto {
    mode: EncryptionMode,
    passphrase: Option<Secret>,
    recipients: Vec<String>,
    home: GpgHome,
}

impl Crypto {
    /// For writing backups: the configured mode must be fully usable, or the run does not start.
    pub fn for_encrypt(cfg: &EncryptionConfig) -> Result<Crypto> {
        let passphrase = match cfg.mode {
            EncryptionMode::Symmetric => Some(resolve_passphrase(cfg)?.ok_or_else(|| {
                could_not_start(
                    "encryption.mode is \"symmetric\" but no passphrase source is set \
                     (encryption.passphrase_file, passphrase_env or passphrase_command); refusing to write plaintext",
                )
            })?),
            _ => None,
        };
        if cfg.mode == EncryptionMode::Recipients && cfg.recipients.is_empty() {
            return Err(could_not_start(
                "encryption.mode is \"recipients\" but encryption.recipients is empty",
            ));
        }
        let home = GpgHome::new(cfg.gpg_home.as_deref())?;
        let crypto = Crypto {
            mode: cfg.mode,
            passphrase,
            recipients: cfg.recipients.clone(),
            home,
        };
        if crypto.mode == EncryptionMode::Recipients {
            // Fail before any dump starts if a key is missing.
            let mut ctx = crypto.context()?;
            for r in &crypto.recipients {
                ctx.get_key(r.as_str()).map_err(|e| {
                    could_not_start(format!(
                        "encryption.recipients: key {r:?} not found in GnuPG home {}: {e}",
                        crypto.home.path.display()
                    ))
                })?;
            }
        }
        Ok(crypto)
    }

    /// For reading backups: whatever passphrase is configured (optional: a
    /// public-key backup needs the secret key in gpg_home instead).
    pub fn for_decrypt(cfg: &EncryptionConfig) -> Result<Crypto> {
        let passphrase = resolve_passphrase(cfg)?;
        let home = GpgHome::new(cfg.gpg_home.as_deref())?;
        Ok(Crypto {
            mode: cfg.mode,
            passphrase,
            recipients: cfg.recipients.clone(),
            home,
        })
    }

    pub fn info(&self) -> EncryptionInfo {
        match self.mode {
            EncryptionMode::Symmetric => EncryptionInfo {
                method: "gpg-symmetric".into(),
                cipher: Some("AES256".into()),
                recipients: vec![],
            },
            EncryptionMode::Recipients => EncryptionInfo {
                method: "gpg-pubkey".into(),
                cipher: None,
                recipients: self.recipients.clone(),
            },
            EncryptionMode::None => EncryptionInfo {
                method: "none".into(),
                cipher: None,
                recipients: vec![],
            },
        }
    }

    fn context(&self) -> Result<GpgContext> {
        let mut ctx = GpgContext::from_protocol(Protocol::OpenPgp)
            .context("starting gpgme (is gnupg installed?)")?;
        ctx.set_engine_home_dir(self.home.path.to_string_lossy().as_bytes())
            .context("setting the GnuPG home")?;
        ctx.set_pinentry_mode(PinentryMode::Loopback)
            .context("setting loopback pinentry")?;
        // Without this the agent caches a symmetric passphrase and a wrong one "works".
        let _ = ctx.set_flag("no-symkey-cache", "1");
        ctx.set_armor(false);
        Ok(ctx)
    }

    /// Encrypts `input` into `output`, streaming. Input is already compressed.
    pub fn encrypt(&self, input: impl Read + Send, output: impl Write + Send) -> Result<()> {
        if self.mode == EncryptionMode::None {
            let (mut input, mut output) = (input, output);
            std::io::copy(&mut input, &mut output).context("writing the backup stream")?;
            return Ok(());
        }
        let mut ctx = self.context()?;
        let mut plain =
            gpgme::Data::from_reader(input).map_err(|e| anyhow!("gpgme data: {}", e.error()))?;
        let mut cipher =
            gpgme::Data::from_writer(output).map_err(|e| anyhow!("gpgme data: {}", e.error()))?;
        large_io_buffer(&mut plain);
        large_io_buffer(&mut cipher);
        let flags = EncryptFlags::NO_COMPRESS | EncryptFlags::ALWAYS_TRUST;
        match self.mode {
            EncryptionMode::Symmetric => {
                let provider = passphrase_provider(self.passphrase.clone());
                ctx.with_passphrase_provider(provider, |ctx| {
                    ctx.encrypt_symmetric_with_flags(plain, cipher, flags)
                })
                .map_err(|e| anyhow!("gpg symmetric encryption failed: {e}"))?;
            }
            EncryptionMode::Recipients => {
                let keys = self
                    .recipients
                    .iter()
                    .map(|r| {
                        ctx.get_key(r.as_str())
                            .map_err(|e| anyhow!("recipient key {r:?}: {e}"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                ctx.encrypt_with_flags(&keys, plain, cipher, flags)
                    .map_err(|e| anyhow!("gpg public-key encryption failed: {e}"))?;
            }
            EncryptionMode::None => unreachable!(),
        }
        Ok(())
    }

    /// Decrypts `input` into `output`, streaming. Output written before an
    /// error must be discarded by the caller: gpg reports tampering at the end.
    pub fn decrypt(&self, input: impl Read + Send, output: impl Write + Send) -> Result<()> {
        let mut ctx = self.context()?;
        let mut cipher =
            gpgme::Data::from_reader(input).map_err(|e| anyhow!("gpgme data: {}", e.error()))?;
        let mut plain =
            gpgme::Data::from_writer(output).map_err(|e| anyhow!("gpgme data: {}", e.error()))?;
        large_io_buffer(&mut cipher);
        large_io_buffer(&mut plain);
        let provider = passphrase_provider(self.passphrase.clone());
        let result = ctx.with_passphrase_provider(provider, |ctx| ctx.decrypt(cipher, plain));
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.code() == gpgme::Error::BAD_PASSPHRASE.code() => {
                if self.passphrase.is_none() {
                    bail!("gpg decryption needs a passphrase: set encryption.passphrase_file, passphrase_env or passphrase_command")
                }
                bail!("gpg decryption failed: bad passphrase (check encryption.passphrase_*), or the start of the file is corrupted")
            }
            Err(e) if e.code() == gpgme::Error::NO_SECKEY.code() => {
                bail!("gpg decryption failed: no secret key for this backup in the GnuPG home (encryption.gpg_home)")
            }
            Err(e) => bail!(
                "gpg decryption failed: {e} (corrupted or truncated ciphertext, or wrong key)"
            ),
        }
    }
}

/// gpgme moves callback data to and from gpg in PIPE_BUF (4 KiB) pieces by
/// default, one poll and two system calls each: at backup sizes that pumping,
/// not gpg, was the slowest stage. "io-buffer-size" (gpgme 1.18) raises it;
/// an older gpgme refuses the flag and keeps working with the small buffer.
fn large_io_buffer(data: &mut gpgme::Data<'_>) {
    if let Err(e) = data.set_flag("io-buffer-size", "262144") {
        log::debug!("gpgme io-buffer-size not set: {e}");
    }
}

fn passphrase_provider(
    pass: Option<Secret>,
) -> impl FnMut(PassphraseRequest<'_>, &mut dyn Write) -> std::result::Result<(), gpgme::Error>
       + Send
       + std::panic::UnwindSafe {
    move |req: PassphraseRequest<'_>, out: &mut dyn Write| {
        let Some(p) = pass.as_ref() else {
            return Err(gpgme::Error::BAD_PASSPHRASE);
        };
        if req.prev_attempt_failed {
            return Err(gpgme::Error::BAD_PASSPHRASE);
        }
        out.write_all(p.expose().as_bytes())?;
        out.write_all(b"\n")?;
        Ok(())
    }
}

/// Reads the passphrase from the one configured source.
pub fn resolve_passphrase(cfg: &EncryptionConfig) -> Result<Option<Secret>> {
    if let Some(path) = &cfg.passphrase_file {
        return read_passphrase_file(path)
            .with_context(|| "encryption.passphrase_file".to_string())
            .map(Some);
    }
    if let Some(var) = &cfg.passphrase_env {
        let v = std::env::var(var).map_err(|_| {
            could_not_start(format!(
                "encryption.passphrase_env: environment variable {var} is not set"
            ))
        })?;
        if v.is_empty() {
            return Err(could_not_start(format!(
                "encryption.passphrase_env: {var} is empty"
            )));
        }
        return Ok(Some(Secret::new(v)));
    }
    if let Some(cmd) = &cfg.passphrase_command {
        let out = crate::process::output_with_deadline(
            Command::new("sh").arg("-c").arg(cmd),
            Duration::from_secs(cfg.command_timeout_secs),
            "encryption.passphrase_command",
        )
        .map_err(|e| could_not_start(format!("{e:#}")))?;
        if !out.status.success() {
            return Err(could_not_start(format!(
                "encryption.passphrase_command exited with {}; stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(could_not_start(
                "encryption.passphrase_command printed an empty passphrase",
            ));
        }
        return Ok(Some(Secret::new(line)));
    }
    Ok(None)
}
