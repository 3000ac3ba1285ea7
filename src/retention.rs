//! Backup retention planning: decides which backups of one kind to keep and
//! which to delete under a [`RetentionConfig`] (keep-last / daily / weekly /
//! monthly rules plus an optional maximum age, like restic or borg "forget").
//!
//! The planner is pure: it only computes decisions, with human-readable reasons,
//! and never touches storage. Whatever the policy, the newest backup and the
//! newest verified backup are always kept, so a bad policy cannot delete everything,
//! and nothing is deleted unless a newer backup of its kind has been verified
//! (delete nothing until its replacement is verified).
//!
//! [`plan_wal_expiry`] is the same kind of pure planner for the archived WAL
//! (`wal/`): once base-backup retention has run, the WAL no retained base
//! backup needs (like pgBackRest's archive expiry).

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;

use crate::commands::wal::is_wal_name;
use crate::config::RetentionConfig;
use crate::manifest::BaseBackupInfo;
use crate::repo::MANIFEST_SUFFIX;

/// One existing backup the planner may keep or delete.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: String,
    pub time: DateTime<Utc>,
    pub verified: bool,
}

/// The planner's verdict on one candidate, with every reason behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

/// One kind's backups in, one decision per candidate out (same order as the input, any input order accepted).
pub fn plan(
    candidates: &[Candidate],
    policy: &RetentionConfig,
    now: DateTime<Utc>,
) -> Vec<Decision> {
    if !policy.enabled {
        return candidates
            .iter()
            .map(|c| Decision {
                id: c.id.clone(),
                keep: true,
                reasons: vec!["retention disabled".to_string()],
            })
            .collect();
    }

    // Indices into `candidates`, newest first; ties broken by id descending.
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id))
    });

    let mut reasons = vec![Vec::new(); candidates.len()];
    for (rank, &i) in order.iter().take(policy.keep_last as usize).enumerate() {
        reasons[i].push(format!("last {}", rank + 1));
    }
    keep_newest_per_period(candidates, &order, policy.keep_daily, &mut reasons, |t| {
        format!("daily {}", t.format("%Y-%m-%d"))
    });
    keep_newest_per_period(candidates, &order, policy.keep_weekly, &mut reasons, |t| {
        let week = t.iso_week();
        format!("weekly {:04}-W{:02}", week.year(), week.week())
    });
    keep_newest_per_period(candidates, &order, policy.keep_monthly, &mut reasons, |t| {
        format!("monthly {}", t.format("%Y-%m"))
    });

    let newest = order.first().copied();
    let newest_verified = order.iter().copied().find(|&i| candidates[i].verified);
    // Position in newest-first order of the newest verified backup: anything at or
    // before it has no verified replacement yet.
    let verified_rank = order.iter().position(|&i| candidates[i].verified);
    let rank_of = |i: usize| {
        order
            .iter()
            .position(|&j| j == i)
            .expect("every index is ranked")
    };
    let cutoff = policy
        .max_age_days
        .map(|d| (d, now - Duration::days(i64::from(d))));

    candidates
        .iter()
        .zip(reasons)
        .enumerate()
        .map(|(i, (c, mut reasons))| {
            let too_old = cutoff.filter(|&(_, limit)| c.time < limit).map(|(d, _)| d);
            if too_old.is_some() {
                reasons.clear();
            }
            if newest == Some(i) {
                reasons.push("newest".to_string());
            }
            if newest_verified == Some(i) {
                reasons.push("newest verified".to_string());
            }
            if reasons.is_empty() && verified_rank.is_none_or(|v| rank_of(i) < v) {
                reasons.push("no newer verified backup yet".to_string());
            }
            let keep = !reasons.is_empty();
            if !keep {
                reasons.push(match too_old {
                    Some(d) => format!("older than {d} days"),
                    None => "not selected by any keep rule".to_string(),
                });
            }
            Decision {
                id: c.id.clone(),
                keep,
                reasons,
            }
        })
        .collect()
}

/// Keeps the newest backup of each of the `count` most recent periods that have
/// backups, where `label` names a backup's period (and is also the reason text).
fn keep_newest_per_period(
    candidates: &[Candidate],
    order: &[usize],
    count: u32,
    reasons: &mut [Vec<String>],
    label: impl Fn(DateTime<Utc>) -> String,
) {
    let mut seen: Vec<String> = Vec::new();
    for &i in order {
        if seen.len() >= count as usize {
            break;
        }
        let period = label(candidates[i].time);
        if !seen.contains(&period) {
            seen.push(period.clone());
            reasons[i].push(period);
        }
    }
}

/// The WAL segment size when a base backup's manifest does not record one.
pub const DEFAULT_WAL_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// A base backup that retention keeps, as WAL expiry sees it.
#[derive(Debug, Clone)]
pub struct RetainedBase {
    pub id: String,
    pub time: DateTime<Utc>,
    pub verified: bool,
    /// Start LSN, timeline (and segment size); `None` when the manifest lacks it.
    pub base: Option<BaseBackupInfo>,
}

/// One archived WAL file (segment, `.partial` segment or `.backup` label) to delete,
/// with every stored key that belongs to it, manifests first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiredWal {
    pub name: String,
    pub keys: Vec<String>,
}

/// What WAL expiry decided for one repository's `wal/` keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct WalExpiryPlan {
    /// The oldest retained base backup: nothing from its start segment on goes.
    pub base_backup: Option<String>,
    /// Its start segment, the first segment kept (on its timeline and the ones before).
    pub boundary: Option<String>,
    /// Oldest first.
    pub expire: Vec<ExpiredWal>,
    /// Why nothing may be expired (no base backup, none verified, start unknown).
    pub skipped: Option<String>,
}

/// The WAL file a key in `wal/` belongs to (`<name>`, `<name>.manifest.json`,
/// `<name>.zst.gpg`, `<name>.zst.gpg.partial`, ...); `None` for anything else.
pub fn wal_name_of_key(key: &str) -> Option<&str> {
    let file = key.rsplit('/').next().unwrap_or(key);
    // Longest first: `<seg>.<offset>.backup` (40), `<seg>.partial` (32), `<seg>` (24), `<tl>.history` (16).
    [40, 32, 24, 16].into_iter().find_map(|len| {
        let name = file.get(..len)?;
        let rest = &file[len..];
        (is_wal_name(name) && (rest.is_empty() || rest.starts_with('.'))).then_some(name)
    })
}

/// (timeline, log, seg) from the first 24 hex digits of a segment, `.partial` or `.backup` name.
fn position(name: &str) -> Option<(u32, u32, u32)> {
    if name.ends_with(".history") {
        return None;
    }
    let hex = |r: std::ops::Range<usize>| u32::from_str_radix(name.get(r)?, 16).ok();
    Some((hex(0..8)?, hex(8..16)?, hex(16..24)?))
}

/// The segment holding `info.start_lsn`: (timeline, log, seg), for the recorded segment
/// size (16 MiB when none is recorded). `None` when the LSN or the size make no sense.
pub fn start_segment(info: &BaseBackupInfo) -> Option<(u32, u32, u32)> {
    let size = info.wal_segment_size.unwrap_or(DEFAULT_WAL_SEGMENT_SIZE);
    // PostgreSQL allows powers of two from 1 MiB to 1 GiB.
    if !size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&size) {
        return None;
    }
    let (hi, lo) = info.start_lsn.trim().split_once('/')?;
    let (hi, lo) = (
        u32::from_str_radix(hi, 16).ok()?,
        u64::from_str_radix(lo, 16).ok()?,
    );
    if lo > u64::from(u32::MAX) {
        return None;
    }
    Some((info.timeline, hi, u32::try_from(lo / size).ok()?))
}

/// Which archived WAL no retained base backup needs. Conservative: nothing when
/// no base backup is retained, when none of them is verified, or when the oldest
/// one's start is unknown. Otherwise every segment, `.partial` segment and
/// `.backup` label whose position (log/seg) is strictly before the oldest retained
/// base backup's start segment and whose timeline is not after its timeline.
/// `.history` files and keys that are not WAL files are never selected.
pub fn plan_wal_expiry(bases: &[RetainedBase], wal_keys: &[String]) -> WalExpiryPlan {
    let skip = |why: String| WalExpiryPlan {
        skipped: Some(why),
        ..WalExpiryPlan::default()
    };
    let Some(oldest) = bases
        .iter()
        .min_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)))
    else {
        return skip("no base backup".into());
    };
    if !bases.iter().any(|b| b.verified) {
        return skip("no retained base backup is verified yet".into());
    }
    let Some((tl, log, seg)) = oldest.base.as_ref().and_then(start_segment) else {
        return skip(format!(
            "the oldest retained base backup {} does not say where its WAL starts",
            oldest.id
        ));
    };
    let mut by_name: std::collections::BTreeMap<&str, Vec<&String>> = Default::default();
    for key in wal_keys {
        if let Some(name) = wal_name_of_key(key) {
            by_name.entry(name).or_default().push(key);
        }
    }
    let mut expire: Vec<((u32, u32, u32), ExpiredWal)> = by_name
        .into_iter()
        .filter_map(|(name, keys)| {
            let (t, l, s) = position(name)?;
            if t > tl || (l, s) >= (log, seg) {
                return None;
            }
            // The manifest first: without it the file is not archived (wal-fetch,
            // wal-push and the archive status all go by the manifest).
            let mut keys: Vec<String> = keys.into_iter().cloned().collect();
            keys.sort_by_key(|k| (!k.ends_with(MANIFEST_SUFFIX), k.clone()));
            Some((
                (l, s, t),
                ExpiredWal {
                    name: name.to_string(),
                    keys,
                },
            ))
        })
        .collect();
    expire.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    WalExpiryPlan {
        base_backup: Some(oldest.id.clone()),
        boundary: Some(format!("{tl:08X}{log:08X}{seg:08X}")),
        expire: expire.into_iter().map(|(_, e)| e).collect(),
        skipped: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn cand(id: &str, time: DateTime<Utc>, verified: bool) -> Candidate {
        Candidate {
            id: id.to_string(),
            time,
            verified,
        }
    }

    fn policy(
        last: u32,
        daily: u32,
        weekly: u32,
        monthly: u32,
        max_age: Option<u32>,
    ) -> RetentionConfig {
        RetentionConfig {
            enabled: true,
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            keep_monthly: monthly,
            max_age_days: max_age,
            expire_wal: true,
        }
    }

    fn dec(id: &str, keep: bool, reasons: &[&str]) -> Decision {
        Decision {
            id: id.to_string(),
            keep,
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
        }
    }

    const DROPPED: &str = "not selected by any keep rule";

    #[test]
    fn empty_input_gives_empty_output() {
        assert!(plan(&[], &policy(3, 3, 3, 3, None), at(2026, 1, 1, 0)).is_empty());
    }

    #[test]
    fn disabled_keeps_everything() {
        let mut p = policy(0, 0, 0, 0, Some(1));
        p.enabled = false;
        let c = [
            cand("a", at(2020, 1, 1, 0), false),
            cand("b", at(2020, 1, 2, 0), false),
        ];
        assert_eq!(
            plan(&c, &p, at(2026, 1, 1, 0)),
            vec![
                dec("a", true, &["retention disabled"]),
                dec("b", true, &["retention disabled"]),
            ]
        );
    }

    #[test]
    fn keep_last_only() {
        let c = [
            cand("a", at(2026, 3, 1, 0), true),
            cand("b", at(2026, 3, 2, 0), true),
            cand("c", at(2026, 3, 3, 0), true),
            cand("d", at(2026, 3, 4, 0), true),
        ];
        assert_eq!(
            plan(&c, &policy(2, 0, 0, 0, None), at(2026, 3, 5, 0)),
            vec![
                dec("a", false, &[DROPPED]),
                dec("b", false, &[DROPPED]),
                dec("c", true, &["last 2"]),
                dec("d", true, &["last 1", "newest", "newest verified"]),
            ]
        );
    }

    #[test]
    fn daily_keeps_only_newest_of_each_day() {
        let c = [
            cand("d1-early", at(2026, 12, 1, 1), false),
            cand("d1-late", at(2026, 12, 1, 23), false),
            cand("d2-early", at(2026, 12, 2, 3), false),
            cand("d2-late", at(2026, 12, 2, 9), false),
            cand("d3", at(2026, 12, 3, 5), true),
        ];
        assert_eq!(
            plan(&c, &policy(0, 2, 0, 0, None), at(2026, 12, 4, 0)),
            vec![
                dec("d1-early", false, &[DROPPED]),
                dec("d1-late", false, &[DROPPED]),
                dec("d2-early", false, &[DROPPED]),
                dec("d2-late", true, &["daily 2026-12-02"]),
                dec(
                    "d3",
                    true,
                    &["daily 2026-12-03", "newest", "newest verified"]
                ),
            ]
        );
    }

    #[test]
    fn weekly_uses_iso_week_across_year_boundary() {
        // 2026-12-31 (Thu) and 2027-01-01 (Fri) are both in ISO week 2026-W53;
        // 2027-01-04 (Mon) starts 2027-W01.
        let c = [
            cand("dec31", at(2026, 12, 31, 12), true),
            cand("jan01", at(2027, 1, 1, 12), true),
            cand("jan04", at(2027, 1, 4, 12), true),
            cand("dec21", at(2026, 12, 21, 12), true),
        ];
        assert_eq!(
            plan(&c, &policy(0, 0, 2, 0, None), at(2027, 1, 5, 0)),
            vec![
                dec("dec31", false, &[DROPPED]),
                dec("jan01", true, &["weekly 2026-W53"]),
                dec(
                    "jan04",
                    true,
                    &["weekly 2027-W01", "newest", "newest verified"]
                ),
                dec("dec21", false, &[DROPPED]),
            ]
        );
    }

    #[test]
    fn monthly_splits_at_month_boundary() {
        let c = [
            cand("nov", at(2026, 11, 15, 0), false),
            cand("dec-early", at(2026, 12, 1, 0), false),
            cand("dec31", at(2026, 12, 31, 23), false),
            cand("jan01", at(2027, 1, 1, 0), true),
        ];
        assert_eq!(
            plan(&c, &policy(0, 0, 0, 2, None), at(2027, 1, 2, 0)),
            vec![
                dec("nov", false, &[DROPPED]),
                dec("dec-early", false, &[DROPPED]),
                dec("dec31", true, &["monthly 2026-12"]),
                dec(
                    "jan01",
                    true,
                    &["monthly 2027-01", "newest", "newest verified"]
                ),
            ]
        );
    }

    #[test]
    fn several_reasons_are_all_recorded() {
        let c = [cand("only", at(2026, 12, 3, 0), false)];
        assert_eq!(
            plan(&c, &policy(1, 1, 1, 1, None), at(2026, 12, 4, 0)),
            vec![dec(
                "only",
                true,
                &[
                    "last 1",
                    "daily 2026-12-03",
                    "weekly 2026-W49",
                    "monthly 2026-12",
                    "newest"
                ]
            )]
        );
    }

    #[test]
    fn max_age_deletes_old_but_never_newest_verified() {
        let now = at(2026, 6, 30, 0);
        let c = [
            cand("old-verified", at(2026, 4, 1, 0), true),
            cand("older", at(2026, 3, 1, 0), true),
            cand("recent-unverified", at(2026, 6, 20, 0), false),
            cand("mid-unverified", at(2026, 6, 10, 0), false),
        ];
        assert_eq!(
            plan(&c, &policy(10, 0, 0, 0, Some(30)), now),
            vec![
                dec("old-verified", true, &["newest verified"]),
                dec("older", false, &["older than 30 days"]),
                dec("recent-unverified", true, &["last 1", "newest"]),
                dec("mid-unverified", true, &["last 2"]),
            ]
        );
    }

    #[test]
    fn max_age_never_deletes_newest_overall() {
        let c = [
            cand("a", at(2025, 1, 1, 0), false),
            cand("b", at(2025, 1, 2, 0), true),
        ];
        assert_eq!(
            plan(&c, &policy(5, 5, 5, 5, Some(7)), at(2026, 1, 1, 0)),
            vec![
                dec("a", false, &["older than 7 days"]),
                dec("b", true, &["newest", "newest verified"])
            ]
        );
    }

    #[test]
    fn all_zero_policy_keeps_newest_and_newest_verified() {
        let c = [
            cand("verified", at(2026, 5, 2, 0), true),
            cand("newest", at(2026, 5, 3, 0), false),
            cand("other", at(2026, 5, 1, 0), false),
        ];
        assert_eq!(
            plan(&c, &policy(0, 0, 0, 0, None), at(2026, 5, 4, 0)),
            vec![
                dec("verified", true, &["newest verified"]),
                dec("newest", true, &["newest"]),
                dec("other", false, &[DROPPED]),
            ]
        );
    }

    #[test]
    fn unsorted_input_order_is_preserved_and_ties_break_by_id() {
        let t = at(2026, 8, 1, 12);
        let c = [
            cand("b", t, false),
            cand("z", at(2026, 7, 1, 0), false),
            cand("c", t, true),
            cand("a", t, false),
        ];
        assert_eq!(
            plan(&c, &policy(2, 0, 0, 0, None), at(2026, 8, 2, 0)),
            vec![
                dec("b", true, &["last 2"]),
                dec("z", false, &[DROPPED]),
                dec("c", true, &["last 1", "newest", "newest verified"]),
                dec("a", false, &[DROPPED]),
            ]
        );
    }

    #[test]
    fn nothing_is_deleted_without_a_newer_verified_backup() {
        let c = [
            cand("old", at(2026, 1, 1, 0), false),
            cand("verified", at(2026, 2, 1, 0), true),
            cand("unverified-newer", at(2026, 3, 1, 0), false),
            cand("newest", at(2026, 4, 1, 0), false),
        ];
        assert_eq!(
            plan(&c, &policy(1, 0, 0, 0, Some(1)), at(2026, 5, 1, 0)),
            vec![
                dec("old", false, &["older than 1 days"]),
                dec("verified", true, &["newest verified"]),
                dec("unverified-newer", true, &["no newer verified backup yet"]),
                dec("newest", true, &["newest"]),
            ]
        );
        let none_verified = [
            cand("a", at(2026, 1, 1, 0), false),
            cand("b", at(2026, 1, 2, 0), false),
        ];
        assert!(
            plan(&none_verified, &policy(1, 0, 0, 0, None), at(2026, 5, 1, 0))
                .iter()
                .all(|d| d.keep)
        );
    }

    fn base(id: &str, time: DateTime<Utc>, verified: bool, tl: u32, start: &str) -> RetainedBase {
        RetainedBase {
            id: id.to_string(),
            time,
            verified,
            base: Some(BaseBackupInfo {
                start_lsn: start.to_string(),
                end_lsn: start.to_string(),
                timeline: tl,
                server_version: "15".into(),
                pg_basebackup_version: "15".into(),
                wal_segment_size: None,
            }),
        }
    }

    /// `wal/<name>.manifest.json` and `wal/<name>.zst.gpg` for each name.
    fn archived(names: &[&str]) -> Vec<String> {
        names
            .iter()
            .flat_map(|n| [format!("wal/{n}.zst.gpg"), format!("wal/{n}.manifest.json")])
            .collect()
    }

    fn expired_names(p: &WalExpiryPlan) -> Vec<&str> {
        p.expire.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn wal_before_the_oldest_retained_start_goes_and_the_boundary_segment_stays() {
        let keys = archived(&[
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
        ]);
        let p = plan_wal_expiry(&[base("b", at(2026, 5, 1, 0), true, 1, "0/5000028")], &keys);
        assert_eq!(p.skipped, None);
        assert_eq!(p.base_backup.as_deref(), Some("b"));
        assert_eq!(p.boundary.as_deref(), Some("000000010000000000000005"));
        assert_eq!(
            expired_names(&p),
            ["000000010000000000000003", "000000010000000000000004"]
        );
        // Manifest first, then the object.
        assert_eq!(
            p.expire[0].keys,
            [
                "wal/000000010000000000000003.manifest.json",
                "wal/000000010000000000000003.zst.gpg"
            ]
        );
    }

    #[test]
    fn wal_expiry_keeps_later_timelines_and_every_history_file() {
        let keys = archived(&[
            "00000001.history",
            "00000002.history",
            "00000003.history",
            "000000010000000000000003",
            "000000020000000000000004",
            "000000030000000000000002",
            "000000010000000000000005",
            "000000020000000000000005",
            "000000020000000000000006",
            "000000010000000000000004.partial",
        ]);
        let p = plan_wal_expiry(&[base("b", at(2026, 5, 1, 0), true, 2, "0/5000028")], &keys);
        assert_eq!(
            expired_names(&p),
            [
                "000000010000000000000003",
                "000000010000000000000004.partial",
                "000000020000000000000004",
            ],
            "timeline 3 is after the backup's timeline; history files always stay"
        );
    }

    #[test]
    fn backup_labels_before_the_start_go_and_the_retained_backups_label_stays() {
        let keys = archived(&[
            "000000010000000000000002.00000028.backup",
            "000000010000000000000002",
            "000000010000000000000005.00000060.backup",
            "000000010000000000000005",
        ]);
        let p = plan_wal_expiry(&[base("b", at(2026, 5, 1, 0), true, 1, "0/5000060")], &keys);
        assert_eq!(
            expired_names(&p),
            [
                "000000010000000000000002",
                "000000010000000000000002.00000028.backup"
            ]
        );
    }

    #[test]
    fn no_verified_or_no_base_backup_expires_nothing() {
        let keys = archived(&["000000010000000000000001", "000000010000000000000002"]);
        let p = plan_wal_expiry(&[], &keys);
        assert!(p.expire.is_empty());
        assert_eq!(p.skipped.as_deref(), Some("no base backup"));
        let p = plan_wal_expiry(
            &[
                base("a", at(2026, 5, 1, 0), false, 1, "0/2000028"),
                base("b", at(2026, 5, 2, 0), false, 1, "0/3000028"),
            ],
            &keys,
        );
        assert!(p.expire.is_empty());
        assert!(p.skipped.unwrap().contains("verified"));
        // A start the manifest does not record: nothing.
        let mut unknown = base("a", at(2026, 5, 1, 0), true, 1, "0/3000028");
        unknown.base = None;
        let p = plan_wal_expiry(&[unknown], &keys);
        assert!(p.expire.is_empty() && p.skipped.is_some());
    }

    #[test]
    fn the_oldest_retained_base_backup_sets_the_boundary_even_when_unverified() {
        let keys = archived(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
        ]);
        let p = plan_wal_expiry(
            &[
                base("newer", at(2026, 5, 2, 0), true, 1, "0/3000028"),
                base("older", at(2026, 5, 1, 0), false, 1, "0/2000028"),
            ],
            &keys,
        );
        assert_eq!(p.base_backup.as_deref(), Some("older"));
        assert_eq!(expired_names(&p), ["000000010000000000000001"]);
    }

    #[test]
    fn wal_expiry_counts_across_log_ids_and_honours_a_recorded_segment_size() {
        let keys = archived(&[
            "0000000100000000000000FE",
            "0000000100000000000000FF",
            "000000010000000100000000",
        ]);
        let p = plan_wal_expiry(&[base("b", at(2026, 5, 1, 0), true, 1, "1/28")], &keys);
        assert_eq!(
            expired_names(&p),
            ["0000000100000000000000FE", "0000000100000000000000FF"]
        );
        // 64 MiB segments: 0/9000028 is in segment 2, not 9.
        let keys = archived(&[
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
        ]);
        let mut b = base("b", at(2026, 5, 1, 0), true, 1, "0/9000028");
        b.base.as_mut().unwrap().wal_segment_size = Some(64 << 20);
        let p = plan_wal_expiry(&[b.clone()], &keys);
        assert_eq!(p.boundary.as_deref(), Some("000000010000000000000002"));
        assert_eq!(expired_names(&p), ["000000010000000000000001"]);
        b.base.as_mut().unwrap().wal_segment_size = Some(3 << 20);
        assert!(plan_wal_expiry(&[b], &keys).skipped.is_some());
    }

    #[test]
    fn wal_expiry_takes_leftovers_along_and_ignores_foreign_keys() {
        let keys: Vec<String> = [
            "wal/000000010000000000000001.zst.gpg",
            "wal/000000010000000000000002.zst.gpg.partial",
            "wal/00000001000000000000000g.zst.gpg",
            "wal/README",
            "wal/000000010000000000000001x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let p = plan_wal_expiry(&[base("b", at(2026, 5, 1, 0), true, 1, "0/5000028")], &keys);
        assert_eq!(
            p.expire,
            vec![
                ExpiredWal {
                    name: "000000010000000000000001".into(),
                    keys: vec!["wal/000000010000000000000001.zst.gpg".into()],
                },
                ExpiredWal {
                    name: "000000010000000000000002".into(),
                    keys: vec!["wal/000000010000000000000002.zst.gpg.partial".into()],
                },
            ]
        );
    }
}
