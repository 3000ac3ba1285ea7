//! `restart` against the app stub run through start/stop commands and a PID
//! file: the stop, the SIGKILL escalation that hits only the service's own PID
//! (a decoy with the same command line survives), cache clearing with its
//! refusals, the wait for health, and the failure path with its alert.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::app::{cmdline, process_alive, AppStub};
use crate::support::receiver::Receiver;
use crate::support::{write_secret, TestEnv};

fn configure(env: &TestEnv, app: &AppStub, extra: &str, tail: &str) {
    let root = env.root().display();
    env.write_config(&format!(
        "{}\n{tail}\n",
        app.app_config(&format!(
            "stop_timeout_secs = 2\nkill_timeout_secs = 5\nready_timeout_secs = 10\ncache_dirs = [\"{root}/cache\"]\ncache_roots = [\"{root}/cache\"]\n{extra}"
        ))
    ));
}

/// Starts the stub the way the tool would (not our child) and waits until it answers.
fn start_via_command(app: &AppStub) -> i32 {
    let _ = std::fs::remove_file(app.pid_file());
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(app.start_command())
        .status()
        .unwrap();
    assert!(st.success());
    app.wait_listening();
    app.pid().unwrap()
}

fn fill_cache(root: &Path) {
    let c = root.join("cache");
    std::fs::create_dir_all(c.join("sub/deeper")).unwrap();
    std::fs::write(c.join("a.bin"), vec![1u8; 4096]).unwrap();
    std::fs::write(c.join("sub/deeper/b.bin"), b"b").unwrap();
    std::fs::create_dir_all(root.join("precious")).unwrap();
    std::fs::write(root.join("precious/keep.txt"), b"keep").unwrap();
    // A link inside the cache pointing out: removed as a link, never followed.
    std::os::unix::fs::symlink(root.join("precious"), c.join("link-out")).unwrap();
}

#[test]
fn restart_stops_clears_the_cache_starts_and_waits_for_health() {
    let env = TestEnv::empty("restart_ok");
    let app = AppStub::new(env.root());
    configure(&env, &app, "", "");
    let old = start_via_command(&app);
    fill_cache(env.root());

    // The dry run prints the plan and changes nothing.
    let r = env.run(&["--dry-run", "restart"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert!(
        r.stdout()
            .contains(&format!("SIGKILL its main PID (now {old})")),
        "{}",
        r.stdout()
    );
    assert!(r
        .stdout()
        .contains(&format!("empty {}/cache", env.root().display())));
    assert!(process_alive(old));
    assert!(env.root().join("cache/a.bin").exists());

    // Without --yes and without a terminal: refused, nothing changed.
    let r = env.run(&["restart"]);
    assert_eq!(r.code(), 3);
    assert!(r.stderr().contains("pass --yes"), "{}", r.stderr());
    assert!(process_alive(old));

    // The new process answers 503 at first: restart keeps polling until it is healthy.
    app.set("status", "503");
    let flip = {
        let dir = app.dir.clone();
        std::thread::spawn(move || {
            // Stimulus, not a wait: the app "finishes warming up" after 700 ms.
            std::thread::sleep(Duration::from_millis(700));
            std::fs::write(dir.join("status"), "200").unwrap();
        })
    };
    let started = Instant::now();
    let r = env.run(&["--json", "--yes", "restart"]);
    flip.join().unwrap();
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["healthy"], true);
    assert_eq!(doc["stop"]["main_pid"], old);
    assert!(
        doc["stop"]["killed_pid"].is_null(),
        "SIGTERM was enough: {doc}"
    );
    assert!(doc["health_attempts"].as_u64().unwrap() >= 2, "{doc}");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(doc["caches"][0]["removed_entries"], 3, "{doc}");
    let new = doc["main_pid"].as_i64().unwrap() as i32;
    assert_ne!(new, old);
    assert!(process_alive(new));
    assert!(!process_alive(old));
    // Contents gone, the directory kept, nothing outside touched.
    assert!(env.root().join("cache").is_dir());
    assert_eq!(
        std::fs::read_dir(env.root().join("cache")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read(env.root().join("precious/keep.txt")).unwrap(),
        b"keep"
    );
    let log = std::fs::read_to_string(env.root().join("log/restart.log")).unwrap();
    assert!(log.contains("restart finished in"), "{log}");
}

#[test]
fn a_stub_ignoring_sigterm_is_killed_by_its_pid_and_a_decoy_survives() {
    let env = TestEnv::empty("restart_kill");
    let mut app = AppStub::new(env.root());
    let root = env.root().display();
    env.write_config(&app.app_config(&format!(
        "stop_timeout_secs = 1\nkill_timeout_secs = 5\nready_timeout_secs = 10\ncache_dirs = [\"{root}/cache\"]\ncache_roots = [\"{root}/cache\"]"
    )));
    app.set("ignore_term", "");
    let old = start_via_command(&app);
    let decoy = app.spawn_decoy();
    assert_eq!(
        cmdline(decoy),
        cmdline(old),
        "the decoy has exactly the same command line"
    );
    std::fs::remove_file(app.dir.join("ignore_term")).unwrap();

    let started = Instant::now();
    let r = env.run(&["--json", "--yes", "restart"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["stop"]["killed_pid"], old, "{doc}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for the stop deadline first"
    );
    assert!(!process_alive(old), "the service's own PID is gone");
    assert!(
        process_alive(decoy),
        "a process with the same name and command line survives"
    );
    assert!(
        r.stderr()
            .contains(&format!("SIGKILL to its main PID {old}")),
        "{}",
        r.stderr()
    );
    let new = doc["main_pid"].as_i64().unwrap() as i32;
    assert!(process_alive(new) && new != old && new != decoy);
}

#[test]
fn restart_refuses_dangerous_cache_dirs_before_touching_the_service() {
    let env = TestEnv::empty("restart_refuse");
    let app = AppStub::new(env.root());
    let root = env.root().display().to_string();
    configure(&env, &app, "", "");
    let pid = start_via_command(&app);
    std::fs::create_dir_all(env.root().join("cache")).unwrap();
    std::fs::create_dir_all(env.root().join("precious")).unwrap();
    std::fs::write(env.root().join("precious/keep.txt"), b"keep").unwrap();

    let refuse = |cache_dirs: &str, roots: &str, want: &str| {
        env.write_config(
            &app.app_config(&format!("cache_dirs = {cache_dirs}\ncache_roots = {roots}")),
        );
        let r = env.run(&["--yes", "restart"]);
        assert_eq!(r.code(), 3, "{cache_dirs}: {}", r.stderr());
        assert!(
            r.stderr().contains(want),
            "{cache_dirs}: wanted {want:?} in {}",
            r.stderr()
        );
        assert!(process_alive(pid), "the service was not stopped");
        assert_eq!(
            std::fs::read(env.root().join("precious/keep.txt")).unwrap(),
            b"keep"
        );
    };
    refuse(
        "[\"/\"]",
        "[\"/\"]",
        "app.cache_dirs[0]: refusing to clear /",
    );
    refuse(
        "[\"/\"]",
        &format!("[\"{root}/cache\"]"),
        "app.cache_dirs[0]: refusing to clear /",
    );
    refuse(
        &format!("[\"{root}/precious\"]"),
        &format!("[\"{root}/cache\"]"),
        "is not under any of app.cache_roots",
    );
    // A symlink inside the root that points out of it.
    std::os::unix::fs::symlink(env.root().join("precious"), env.root().join("cache/tmp")).unwrap();
    refuse(
        &format!("[\"{root}/cache/tmp\"]"),
        &format!("[\"{root}/cache\"]"),
        &format!("refusing to clear {root}/cache/tmp: it is a symlink (or under one) to {root}/precious outside app.cache_roots"),
    );
}

#[test]
fn a_restart_that_never_gets_healthy_exits_2_and_alerts() {
    let env = TestEnv::empty("restart_unhealthy");
    let app = AppStub::new(env.root());
    let recv = Receiver::start();
    write_secret(
        &env.root().join("slack-url"),
        &recv.url("/slack/hook/CANARY"),
    );
    let root = env.root().display().to_string();
    env.write_config(&format!(
        "{}\n[alerts]\nhost_name = \"testhost\"\n\n[alerts.slack]\nwebhook_url_file = \"{root}/slack-url\"\n",
        app.app_config(&format!("ready_timeout_secs = 2\ncache_dirs = []\ncache_roots = [\"{root}/cache\"]"))
    ));
    start_via_command(&app);
    app.set("status", "500");
    let started = Instant::now();
    let r = env.run(&["--json", "--yes", "restart"]);
    let took = started.elapsed();
    assert_eq!(r.code(), 2, "{}", r.stdout());
    assert!(took < Duration::from_secs(6), "{took:?}");
    let doc = r.json();
    assert_eq!(doc["ok"], false);
    let err = doc["error"].as_str().unwrap();
    assert!(
        err.contains("not healthy after the start") && err.contains("HTTP 500"),
        "{err}"
    );
    let slack = recv.requests("/slack");
    assert_eq!(slack.len(), 1);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*[CRITICAL]* restart of the application failed on testhost"),
        "{text}"
    );
}
