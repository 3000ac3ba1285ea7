//! Redaction for anything that leaves the host (diagnostic bundles): every
//! secret we know (config secrets, the backup passphrase, secret-looking
//! environment variables) in plain, URL-encoded and base64 forms, plus
//! patterns that carry secrets we do not know: passwords inside URLs
//! (`scheme://user:pass@`), `Authorization: <scheme> <credentials>` headers
//! and `Bearer <token>`, `password=...` / `"token": "..."`-style pairs, SQL
//! `PASSWORD '...'`, and Slack webhook paths. Counts what it replaced, by name, never by value.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;

use crate::config::Config;

/// What was redacted: a name and a kind, never the value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Redaction {
    pub name: String,
    pub kind: &'static str,
    pub count: u64,
}

struct Known {
    name: String,
    kind: &'static str,
    /// The value and its encodings, longest first.
    forms: Vec<String>,
}

pub struct Redactor {
    known: Vec<Known>,
    counts: BTreeMap<String, (&'static str, u64)>,
}

/// Shortest secret we redact (shorter ones would shred ordinary text).
const MIN_LEN: usize = 4;

/// Environment variables whose values are treated as secrets.
fn secret_env_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "ROUTING_KEY",
        "WEBHOOK",
    ]
    .iter()
    .any(|k| n.contains(k))
        || n == "PGPASSWORD"
        || n.ends_with("_KEY") && !n.ends_with("_ID_KEY")
}

fn percent_encode(s: &str, upper: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else if upper {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// The parts of a base64 stream that depend only on `secret`, for each of
/// the three alignments it can have inside a longer encoded text (e.g.
/// `Basic base64(user:secret)`).
fn base64_cores(secret: &[u8]) -> Vec<String> {
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
    ];
    let mut out = Vec::new();
    for engine in engines {
        // Alone, with padding.
        out.push(engine.encode(secret));
        for k in 0..3usize {
            let mut buf = vec![0u8; k];
            buf.extend_from_slice(secret);
            let enc = engine.encode(&buf);
            let enc = enc.trim_end_matches('=');
            // Groups of 3 input bytes -> 4 chars: skip the first group if it mixes
            // in prefix bytes, and the last if it mixes in whatever follows.
            let skip = if k == 0 { 0 } else { 4 };
            let full_groups = (k + secret.len()) / 3;
            let end = full_groups * 4;
            if end > skip + 7 && end <= enc.len() {
                out.push(enc[skip..end].to_string());
            }
        }
    }
    out
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor {
            known: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    /// Adds a secret value under a name ("alerts.slack.webhook_url") and kind.
    pub fn add(&mut self, name: impl Into<String>, kind: &'static str, value: &str) {
        let name = name.into();
        self.counts.entry(name.clone()).or_insert((kind, 0));
        if value.len() < MIN_LEN {
            return;
        }
        let mut forms = vec![value.to_string()];
        forms.push(percent_encode(value, true));
        forms.push(percent_encode(value, false));
        forms.push(url::form_urlencoded::byte_serialize(value.as_bytes()).collect());
        forms.extend(base64_cores(value.as_bytes()));
        forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
        forms.dedup();
        self.known.push(Known { name, kind, forms });
    }

    /// Every secret the configuration and the environment hold.
    pub fn for_config(cfg: &Config) -> Redactor {
        let mut r = Redactor::new();
        let secrets = [
            ("database.password", cfg.database.password.as_ref()),
            ("s3.secret_access_key", cfg.s3.secret_access_key.as_ref()),
            (
                "alerts.slack.webhook_url",
                cfg.alerts.slack.webhook_url.as_ref(),
            ),
            (
                "alerts.pagerduty.routing_key",
                cfg.alerts.pagerduty.routing_key.as_ref(),
            ),
            (
                "alerts.email.smtp_password",
                cfg.alerts.email.smtp_password.as_ref(),
            ),
        ];
        for (name, s) in secrets.iter().filter_map(|(n, s)| s.map(|s| (*n, s))) {
            r.add(name, "config secret", s.expose());
            if name == "alerts.slack.webhook_url" {
                // The path after /services/ is the token; also redact it on its own.
                if let Some(i) = s.expose().find("/services/") {
                    let path = &s.expose()[i + "/services/".len()..];
                    r.add("alerts.slack.webhook_url (token)", "webhook token", path);
                    // T.../B.../SECRET: the last segment is the secret proper.
                    if let Some(last) = path
                        .rsplit('/')
                        .next()
                        .filter(|l| l.len() >= 8 && *l != path)
                    {
                        r.add("alerts.slack.webhook_url (token)", "webhook token", last);
                    }
                }
            }
        }
        let e = &cfg.encryption;
        if let Some(p) = &e.passphrase_file {
            if let Ok(text) = std::fs::read_to_string(p) {
                if let Some(line) = text.lines().next() {
                    r.add("encryption.passphrase", "config secret", line);
                }
            }
        }
        if let Some(v) = e
            .passphrase_env
            .as_ref()
            .and_then(|n| std::env::var(n).ok())
        {
            r.add("encryption.passphrase", "config secret", &v);
        }
        if let Some(p) = &cfg.database.passfile {
            if let Ok(text) = std::fs::read_to_string(p) {
                for (i, line) in text.lines().filter(|l| !l.starts_with('#')).enumerate() {
                    if let Some(pw) = line.rsplit(':').next() {
                        r.add(
                            format!("database.passfile line {}", i + 1),
                            "config secret",
                            pw,
                        );
                    }
                }
            }
        }
        for (k, v) in std::env::vars() {
            if secret_env_name(&k) {
                r.add(format!("environment {k}"), "environment secret", &v);
            }
        }
        r
    }

    fn count(&mut self, name: &str, kind: &'static str, n: u64) {
        let e = self.counts.entry(name.to_string()).or_insert((kind, 0));
        e.1 += n;
    }

    /// Redacts `text`; the replacements say which secret (`<redacted:NAME>`).
    pub fn apply(&mut self, text: &str) -> String {
        let mut out = text.to_string();
        let mut hits: Vec<(String, &'static str, u64)> = Vec::new();
        for k in &self.known {
            for f in &k.forms {
                let n = out.matches(f.as_str()).count() as u64;
                if n > 0 {
                    out = out.replace(f.as_str(), &format!("<redacted:{}>", k.name));
                    hits.push((k.name.clone(), k.kind, n));
                }
            }
        }
        for (name, kind, n) in hits {
            self.count(&name, kind, n);
        }
        let (out, n) = redact_url_passwords(&out);
        if n > 0 {
            self.count("url-userinfo-password", "pattern", n);
        }
        // Before the pairs: `Authorization: Bearer x` must lose `x`, not the word `Bearer`.
        let (out, headers, bearers) = redact_auth(&out);
        if headers > 0 {
            self.count("authorization-header", "pattern", headers);
        }
        if bearers > 0 {
            self.count("bearer-token", "pattern", bearers);
        }
        let (out, n) = redact_pairs(&out);
        if n > 0 {
            self.count("key-value-password", "pattern", n);
        }
        let (out, n) = redact_slack_paths(&out);
        if n > 0 {
            self.count("slack-webhook-path", "pattern", n);
        }
        out
    }

    /// What was redacted so far (every known secret listed, with its count).
    pub fn report(&self) -> Vec<Redaction> {
        self.counts
            .iter()
            .map(|(name, (kind, count))| Redaction {
                name: name.clone(),
                kind,
                count: *count,
            })
            .collect()
    }
}

/// `scheme://user:secret@host` -> `scheme://user:<redacted>@host`.
fn redact_url_passwords(text: &str) -> (String, u64) {
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end.
        let end = tail
            .find(|c: char| {
                c == '/'
                    || c.is_whitespace()
                    || c == '"'
                    || c == '\''
                    || c == '>'
                    || c == '?'
                    || c == '#'
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str("<redacted>");
                out.push_str(&authority[at..]);
                n += 1;
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    (out, n)
}

/// Shortest `Bearer <token>` redacted outside an Authorization header: a
/// bearer token is long; "bearer tokens expire" is prose.
const MIN_BEARER: usize = 16;

/// Characters of a token or base64 credential (RFC 6750 b64token, JWT dots).
fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/=".contains(&c)
}

/// `Authorization: <scheme> <credentials>` (header, `-H '...'`, JSON or
/// `authorization=` pair; any case; the scheme word kept) and `Bearer <token>`
/// anywhere. Returns the text and the header and bearer counts.
fn redact_auth(text: &str) -> (String, u64, u64) {
    let lower = text.to_ascii_lowercase();
    let b = text.as_bytes();
    let skip = |mut j: usize, set: &[u8]| {
        while j < b.len() && set.contains(&b[j]) {
            j += 1;
        }
        j
    };
    // Credentials run to whitespace, a quote, a separator, or an earlier `<redacted:...>`.
    let cred_end = |mut j: usize| {
        while j < b.len() && !(b[j].is_ascii_whitespace() || b"\"'`,;<>".contains(&b[j])) {
            j += 1;
        }
        j
    };
    let mut spans: Vec<(usize, usize, bool)> = Vec::new();
    let mut from = 0;
    while let Some(p) = lower[from..].find("authorization") {
        let pos = from + p;
        from = pos + "authorization".len();
        let mut j = skip(from, b"\"'");
        j = skip(j, b" \t");
        if j >= b.len() || !(b[j] == b':' || b[j] == b'=') {
            continue;
        }
        j = skip(j + 1, b" \t");
        j = skip(j, b"\"'");
        // An alphabetic scheme word followed by blanks, then the credentials.
        let w = skip(j, b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ");
        let start = if w > j && w < b.len() && (b[w] == b' ' || b[w] == b'\t') {
            skip(w, b" \t")
        } else {
            j
        };
        let end = cred_end(start);
        if end > start {
            spans.push((start, end, true));
            from = end;
        }
    }
    let mut from = 0;
    while let Some(p) = lower[from..].find("bearer") {
        let pos = from + p;
        from = pos + "bearer".len();
        if pos > 0 && (b[pos - 1].is_ascii_alphanumeric() || b[pos - 1] == b'_') {
            continue;
        }
        let start = skip(from, b" \t");
        if start == from {
            continue;
        }
        let mut end = start;
        while end < b.len() && token_char(b[end]) {
            end += 1;
        }
        if end - start >= MIN_BEARER && !spans.iter().any(|s| s.0 <= start && start < s.1) {
            spans.push((start, end, false));
            from = end;
        }
    }
    spans.sort();
    let mut out = String::with_capacity(text.len());
    let (mut copied, mut headers, mut bearers) = (0, 0, 0);
    for (start, end, header) in spans {
        if start < copied {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str("<redacted>");
        copied = end;
        if header {
            headers += 1;
        } else {
            bearers += 1;
        }
    }
    out.push_str(&text[copied..]);
    (out, headers, bearers)
}

/// `password=x`, `PGPASSWORD: x`, `"secret": "x"`, `token=x`, SQL `PASSWORD 'x'`.
fn redact_pairs(text: &str) -> (String, u64) {
    const KEYS: [&str; 8] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "api-key",
        "apikey",
    ];
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let Some(key) = KEYS
            .iter()
            .find(|k| lower.as_bytes()[i..].starts_with(k.as_bytes()))
        else {
            i += 1;
            continue;
        };
        let mut j = i + key.len();
        // Allow the rest of an identifier (PASSWORD_FILE would not be a value, but a
        // name like db_password is): skip [A-Za-z0-9_], then optional quote.
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        if lower[i + key.len()..j].ends_with("_file") || lower[i + key.len()..j].ends_with("file") {
            i = j;
            continue;
        }
        if j < bytes.len() && bytes[j] == b'"' {
            j += 1;
        }
        let mut k = j;
        while k < bytes.len() && bytes[k] == b' ' {
            k += 1;
        }
        let sep = k < bytes.len() && (bytes[k] == b'=' || bytes[k] == b':');
        let sql = !sep && k > j && k < bytes.len() && bytes[k] == b'\'';
        if !(sep || sql) {
            i = j.max(i + 1);
            continue;
        }
        if sep {
            k += 1;
        }
        while k < bytes.len() && bytes[k] == b' ' {
            k += 1;
        }
        let quote = if k < bytes.len() && (bytes[k] == b'"' || bytes[k] == b'\'') {
            Some(bytes[k])
        } else {
            None
        };
        let start = if quote.is_some() { k + 1 } else { k };
        let mut end = start;
        while end < bytes.len() {
            let c = bytes[end];
            let stop = match quote {
                Some(q) => c == q,
                None => {
                    c.is_ascii_whitespace()
                        || c == b'&'
                        || c == b';'
                        || c == b','
                        || c == b'"'
                        || c == b'\''
                }
            };
            if stop {
                break;
            }
            end += 1;
        }
        let value = &text[start..end];
        if value.is_empty() || value.starts_with("<redacted") {
            i = end.max(i + 1);
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str("<redacted>");
        copied = end;
        n += 1;
        i = end;
    }
    out.push_str(&text[copied..]);
    (out, n)
}

/// hooks.slack.com/services/T.../B.../XXXX -> hooks.slack.com/services/<redacted>
fn redact_slack_paths(text: &str) -> (String, u64) {
    let marker = "hooks.slack.com/services/";
    let mut out = String::with_capacity(text.len());
    let mut n = 0;
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        let (head, tail) = rest.split_at(i + marker.len());
        out.push_str(head);
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-'))
            .unwrap_or(tail.len());
        if end > 0 && !tail.starts_with("<redacted") {
            out.push_str("<redacted>");
            n += 1;
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_go_in_every_encoding() {
        let mut r = Redactor::new();
        let s = "p@ss w/rd:42-canary";
        r.add("db", "config secret", s);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("admin:{s}"));
        let text = format!(
            "a {s} b {} c {} d Authorization: Basic {basic} e {}",
            percent_encode(s, true),
            base64::engine::general_purpose::STANDARD.encode(s),
            url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
        );
        let out = r.apply(&text);
        assert!(!out.contains(s), "{out}");
        assert!(!out.contains(&percent_encode(s, true)), "{out}");
        for core in base64_cores(s.as_bytes()) {
            assert!(!out.contains(&core), "{out}");
        }
        assert!(!out.contains(&basic), "{out}");
        assert!(out.contains("<redacted:db>"));
        let db = r.report().into_iter().find(|x| x.name == "db").unwrap();
        assert!(db.count >= 4, "{:?}", r.report());
    }

    #[test]
    fn patterns_catch_secrets_we_do_not_know() {
        let mut r = Redactor::new();
        let out = r.apply(
            "url postgres://app:hunter2@db:5432/x and https://h/p?x=1\n\
             PGPASSWORD=s3cr3t other=1\n{\"api_token\": \"tok123\"}\n\
             ALTER ROLE app PASSWORD 'sqlpw';\npassword_file = \"/etc/x\"\n\
             https://hooks.slack.com/services/T0/B0/abcDEF\n",
        );
        for s in ["hunter2", "s3cr3t", "tok123", "sqlpw", "abcDEF"] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("postgres://app:<redacted>@db:5432/x"), "{out}");
        assert!(
            out.contains("password_file = \"/etc/x\""),
            "a file name is not a secret: {out}"
        );
        assert!(out.contains("other=1"));
        let kinds: Vec<&str> = r.report().iter().map(|x| x.kind).collect();
        assert!(kinds.iter().all(|k| *k == "pattern"), "{kinds:?}");
    }

    #[test]
    fn authorization_headers_and_bearer_tokens_lose_their_credentials() {
        let mut r = Redactor::new();
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.bearerSecret-x_y";
        let text = format!(
            "Authorization: Bearer {jwt}\n\
             curl -H 'authorization: basic dXNlcjpodW50ZXIy' https://h/\n\
             AUTHORIZATION=Token shorttok1\n\
             {{\"Authorization\": \"Bearer jsonbearer42\"}}\n\
             upstream rejected Bearer {jwt}, retrying\n\
             authorization:rawcred99\n"
        );
        let out = r.apply(&text);
        for s in [
            "bearerSecret",
            "dXNlcjpodW50ZXIy",
            "shorttok1",
            "jsonbearer42",
            "rawcred99",
        ] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("Authorization: Bearer <redacted>\n"), "{out}");
        assert!(out.contains("'authorization: basic <redacted>'"), "{out}");
        assert!(out.contains("AUTHORIZATION=Token <redacted>\n"), "{out}");
        assert!(
            out.contains("\"Authorization\": \"Bearer <redacted>\""),
            "{out}"
        );
        assert!(
            out.contains("rejected Bearer <redacted>, retrying"),
            "{out}"
        );
        assert!(out.contains("authorization:<redacted>\n"), "{out}");
        let count = |n: &str| r.report().iter().find(|x| x.name == n).map(|x| x.count);
        assert_eq!(count("authorization-header"), Some(5));
        assert_eq!(count("bearer-token"), Some(1));
    }

    #[test]
    fn prose_about_bearer_and_basic_stays() {
        let mut r = Redactor::new();
        let text =
            "bearer tokens expire; use basic auth or a Bearer header; the authorization failed\n";
        assert_eq!(r.apply(text), text);
        assert!(r.report().is_empty());
    }

    #[test]
    fn token_and_key_json_fields_are_redacted() {
        let mut r = Redactor::new();
        let out = r.apply(
            "{\"token\": \"tokval-1\", \"api_key\":\"keyval-2\", \"apiKey\": \"keyval-3\", \
             \"x-api-key\": \"keyval-4\", \"client_secret\": \"secval-5\", \"access_token\":\"tokval-6\", \"user\": \"bob\"}",
        );
        for s in [
            "tokval-1", "keyval-2", "keyval-3", "keyval-4", "secval-5", "tokval-6",
        ] {
            assert!(!out.contains(s), "{s} in {out}");
        }
        assert!(out.contains("\"token\": \"<redacted>\""), "{out}");
        assert!(out.contains("\"user\": \"bob\""), "{out}");
    }
}
