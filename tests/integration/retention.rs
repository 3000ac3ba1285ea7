//! Retention: deletes only what the policy drops, never the newest verified backup,
//! and nothing that has no verified replacement.

use crate::support::*;

#[test]
fn prune_keeps_newest_and_newest_verified_and_dry_run_deletes_nothing() {
    let env = TestEnv::new("retention");
    env.write_config("[retention]\nenabled = false\n");
    let (a, _) = env.backup("config");
    let (b, _) = env.backup("config");
    let (c, _) = env.backup("config");
    // Only the middle one is verified.
    assert_eq!(env.run(&["verify-backup", &b]).code(), 0);
    env.write_config(
        "[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );

    let r = env.run(&[
        "--dry-run",
        "--json",
        "backups",
        "prune",
        "--kind",
        "config",
    ]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(
        r.json()["kinds"][0]["deleted"],
        serde_json::json!([a.clone()])
    );
    assert_eq!(env.list().len(), 3, "dry run deletes nothing");

    let r = env.run(&["backups", "prune", "--kind", "config"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let ids: Vec<String> = env
        .list()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec![b.clone(), c.clone()],
        "kept: newest verified ({b}) and newest ({c})"
    );
    assert!(!walk_has(&env, &a));
}

#[test]
fn retention_runs_after_each_backup_but_never_without_a_verified_replacement() {
    let env = TestEnv::new("retention_auto");
    env.write_config(
        "[retention]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\n",
    );
    for _ in 0..3 {
        env.backup("config");
    }
    assert_eq!(
        env.list().len(),
        3,
        "nothing verified yet: nothing may be deleted"
    );
    assert_eq!(env.run(&["verify-backup", "--kind", "config"]).code(), 0);
    env.backup("config");
    let list = env.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert_eq!(list[0]["state"], "verified");
}

fn walk_has(env: &TestEnv, id: &str) -> bool {
    crate::backup::walk(&env.repo())
        .iter()
        .any(|p| p.contains(id))
}
