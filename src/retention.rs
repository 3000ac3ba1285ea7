//! Backup retention planning: decides which backups of one kind to keep and
//! which to delete under a [`RetentionConfig`] (keep-last / daily / weekly /
//! monthly rules plus an optional maximum age, like restic or borg "forget").
//!
//! The planner is pure: it only computes decisions, with human-readable reasons,
//! and never touches storage. Whatever the policy, the newest backup and the
//! newest verified backup are always kept, so a bad policy cannot delete everything,
//! and nothing is deleted unless a newer backup of its kind has been verified
//! (delete nothing until its replacement is verified).

use chrono::{DateTime, Datelike, Duration, Utc};

use crate::config::RetentionConfig;

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
}
