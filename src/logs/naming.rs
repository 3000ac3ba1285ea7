//! Archive names: `<log name>-<YYYYmmddTHHMMSS>.<mmm>Z-<NNN>[.gz|.zst]`, in UTC.
//!
//! Fixed-width fields make the names of one log sort in rotation order; the
//! counter tells apart rotations within one millisecond (and keeps the order
//! when the clock steps back). The old script's `<stem>_<YYYYMMDD>.<ext>.gz`
//! names are recognised too, so retention can age them out.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use crate::config::Compression;

/// A parsed archive file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    /// The live log's file name, e.g. `application.log`.
    pub live: String,
    /// When it was rotated (for old-script names: that day, 00:00 UTC).
    pub stamp: DateTime<Utc>,
    pub counter: u32,
    /// None: a generation not compressed (yet).
    pub compression: Option<Compression>,
    /// Named by the old shell script.
    pub legacy: bool,
}

const STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

/// The compression's file suffix.
pub fn suffix(c: Compression) -> &'static str {
    match c {
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
        Compression::None => "",
    }
}

impl ArchiveName {
    pub fn new(live: &str, stamp: DateTime<Utc>, counter: u32) -> ArchiveName {
        ArchiveName {
            live: live.to_string(),
            stamp,
            counter,
            compression: None,
            legacy: false,
        }
    }

    /// The uncompressed generation's file name.
    pub fn base(&self) -> String {
        if self.legacy {
            let (stem, ext) = split_ext(&self.live);
            return format!("{stem}_{}{ext}", self.stamp.format("%Y%m%d"));
        }
        format!(
            "{}-{}-{:03}",
            self.live,
            self.stamp.format(STAMP),
            self.counter
        )
    }

    /// The file name, with the compression suffix if any.
    pub fn file_name(&self) -> String {
        let s = self.compression.map(suffix).unwrap_or("");
        format!("{}{s}", self.base())
    }

    pub fn with_compression(&self, c: Compression) -> ArchiveName {
        ArchiveName {
            compression: (c != Compression::None).then_some(c),
            ..self.clone()
        }
    }

    /// Sort key: rotation order within one log.
    pub fn order(&self) -> (DateTime<Utc>, u32) {
        (self.stamp, self.counter)
    }

    /// Parses one of our names, or (when `legacy_ok`) an old-script one.
    pub fn parse(name: &str, legacy_ok: bool) -> Option<ArchiveName> {
        let (rest, compression) = if let Some(r) = name.strip_suffix(".gz") {
            (r, Some(Compression::Gzip))
        } else if let Some(r) = name.strip_suffix(".zst") {
            (r, Some(Compression::Zstd))
        } else {
            (name, None)
        };
        if let Some(n) = parse_ours(rest) {
            return Some(ArchiveName { compression, ..n });
        }
        if legacy_ok && compression != Some(Compression::Zstd) {
            if let Some(n) = parse_legacy(rest) {
                return Some(ArchiveName { compression, ..n });
            }
        }
        None
    }
}

/// `a.log` -> ("a", ".log"); `messages` -> ("messages", "").
fn split_ext(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_ours(rest: &str) -> Option<ArchiveName> {
    // <live>-YYYYmmddTHHMMSS.mmmZ-NNN
    let (head, counter) = rest.rsplit_once('-')?;
    if counter.len() < 3 || !all_digits(counter) {
        return None;
    }
    let (live, stamp) = head.rsplit_once('-')?;
    if live.is_empty() || stamp.len() != 20 {
        return None;
    }
    let b = stamp.as_bytes();
    if b[8] != b'T' || b[15] != b'.' || b[19] != b'Z' {
        return None;
    }
    if !(all_digits(&stamp[..8]) && all_digits(&stamp[9..15]) && all_digits(&stamp[16..19])) {
        return None;
    }
    let t = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?;
    Some(ArchiveName {
        live: live.to_string(),
        stamp: Utc.from_utc_datetime(&t),
        counter: counter.parse().ok()?,
        compression: None,
        legacy: false,
    })
}

fn parse_legacy(rest: &str) -> Option<ArchiveName> {
    // <stem>_YYYYMMDD<.ext>
    let (stem, after) = rest.rsplit_once('_')?;
    if stem.is_empty() || after.len() < 8 || !all_digits(&after[..8]) {
        return None;
    }
    let ext = &after[8..];
    if !(ext.is_empty() || (ext.starts_with('.') && ext.len() > 1 && !ext[1..].contains('.'))) {
        return None;
    }
    let day = NaiveDate::parse_from_str(&after[..8], "%Y%m%d").ok()?;
    Some(ArchiveName {
        live: format!("{stem}{ext}"),
        stamp: Utc.from_utc_datetime(&day.and_hms_opt(0, 0, 0)?),
        counter: 0,
        compression: None,
        legacy: true,
    })
}

/// The name for a new archive of `live`: now, unless an existing archive of
/// it is newer (the clock stepped back), in which case its time; the counter
/// follows the highest one already used with that time.
pub fn next_name<'a>(
    live: &str,
    now: DateTime<Utc>,
    existing: impl IntoIterator<Item = &'a ArchiveName>,
) -> ArchiveName {
    // Millisecond resolution, as in the name.
    let now = Utc
        .timestamp_millis_opt(now.timestamp_millis())
        .single()
        .unwrap_or(now);
    let mut stamp = now;
    let mut counter = 0;
    for a in existing {
        if a.live != live || a.legacy {
            continue;
        }
        if a.stamp > stamp {
            stamp = a.stamp;
            counter = a.counter;
        } else if a.stamp == stamp {
            counter = counter.max(a.counter);
        }
    }
    ArchiveName::new(live, stamp, counter + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_round_trip_and_sort_by_time() {
        let n = ArchiveName::new("application.log", at("2026-12-03T02:00:00.123Z"), 1);
        assert_eq!(n.base(), "application.log-20261203T020000.123Z-001");
        let gz = n.with_compression(Compression::Gzip);
        assert_eq!(
            gz.file_name(),
            "application.log-20261203T020000.123Z-001.gz"
        );
        assert_eq!(ArchiveName::parse(&gz.file_name(), false), Some(gz.clone()));
        assert_eq!(ArchiveName::parse(&n.file_name(), false), Some(n.clone()));
        let later = ArchiveName::new("application.log", at("2026-12-03T02:00:00.124Z"), 1);
        assert!(n.file_name() < later.file_name());
        assert!(n.order() < later.order());
    }

    #[test]
    fn same_millisecond_gets_the_next_counter_and_a_stepped_back_clock_keeps_order() {
        let t = at("2026-12-03T02:00:00.123Z");
        let a = next_name("a.log", t, []);
        assert_eq!(a.counter, 1);
        let b = next_name("a.log", t, [&a]);
        assert_eq!(b.counter, 2);
        let c = next_name("a.log", t, [&a, &b]);
        assert_eq!(c.counter, 3);
        assert!(a.file_name() < b.file_name() && b.file_name() < c.file_name());
        // The clock stepped back a second: still sorts after the newest.
        let d = next_name("a.log", at("2026-12-03T01:59:59.000Z"), [&a, &b, &c]);
        assert_eq!((d.stamp, d.counter), (t, 4));
        // Another log's archives do not matter.
        assert_eq!(next_name("b.log", t, [&a, &b]).counter, 1);
    }

    #[test]
    fn old_script_names_only_when_asked() {
        let n = ArchiveName::parse("application_20260301.log.gz", true).unwrap();
        assert_eq!(n.live, "application.log");
        assert!(n.legacy);
        assert_eq!(n.compression, Some(Compression::Gzip));
        assert_eq!(n.file_name(), "application_20260301.log.gz");
        assert!(ArchiveName::parse("application_20260301.log.gz", false).is_none());
        assert!(ArchiveName::parse("application.log", true).is_none());
        assert!(ArchiveName::parse("application.log.1.gz", true).is_none());
        assert!(ArchiveName::parse("app.log-20261203T020000.123Z.gz", true).is_none());
        assert!(ArchiveName::parse("app.log-20261303T020000.123Z-001.gz", true).is_none());
    }
}
