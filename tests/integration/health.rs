//! `health` against real parts: the app stub (a real HTTP server process
//! managed through start/stop commands and a PID file), the harness's
//! PostgreSQL, the real filesystem, /proc; a black-holed port for the database.

use std::time::{Duration, Instant};

use crate::support::app::{AppStub, BlackHole};
use crate::support::TestEnv;

/// Thresholds that real hosts never cross, so only the check under test decides.
const CALM: &str = "[health.memory]\nwarn = \"100%\"\ncrit = \"100%\"\n\n[health.load]\nwarn = 1000.0\ncrit = 1000.0\n";

fn disk_table(env: &TestEnv, extra: &str) -> String {
    format!(
        "[health.disk]\npaths = [\"{}\"]\nwarn = \"100%\"\ncrit = \"100%\"\ninodes_warn = \"100%\"\ninodes_crit = \"100%\"\n{extra}\n",
        env.root().display()
    )
}

fn configure(env: &TestEnv, app: &AppStub, app_extra: &str, health: &str) {
    env.write_config(&format!(
        "{}\n[health]\nstate_file = \"{}/health-state.json\"\n\n{health}\n",
        app.app_config(app_extra),
        env.root().display()
    ));
}

fn df(path: &std::path::Path) -> (u64, u64) {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=used,avail"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

fn close(a: u64, b: u64) -> bool {
    a.abs_diff(b) < 256 * 1024 * 1024
}

#[test]
fn all_green_reports_values_in_every_format_and_exits_0() {
    let env = TestEnv::empty("health_green");
    let mut app = AppStub::new(env.root());
    app.spawn();
    let health = format!("{}\n{CALM}", disk_table(&env, ""));
    configure(
        &env,
        &app,
        "health_json_field = \"version\"\nhealth_json_value = \"1.4.2\"",
        &health,
    );

    // --prom-file in a directory that does not exist: an error naming it, the
    // checks still reported, exit 3, and no directory created.
    let prom = env.root().join("metrics/tuneton.prom");
    let r = env.run(&["--json", "health", "--prom-file", prom.to_str().unwrap()]);
    assert_eq!(r.code(), 3, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["status"], "OK");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["checks"].as_array().unwrap().len(), 6);
    let missing = format!(
        "directory {} does not exist (not created",
        env.root().join("metrics").display()
    );
    assert!(
        doc["prom_file_error"].as_str().unwrap().contains(&missing),
        "{doc}"
    );
    assert!(r.stderr().contains(&missing), "{}", r.stderr());
    assert!(!env.root().join("metrics").exists());

    std::fs::create_dir(env.root().join("metrics")).unwrap();
    let r = env.run(&["--json", "health", "--prom-file", prom.to_str().unwrap()]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["status"], "OK");
    let checks = doc["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let disk_name = format!("disk:{}", env.root().display());
    assert_eq!(
        names,
        [
            "service",
            "http",
            "database",
            disk_name.as_str(),
            "memory",
            "load"
        ]
    );
    let by = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap().clone();
    assert_eq!(by("service")["values"]["state"]["state"], "running");
    assert_eq!(by("http")["values"]["status_code"], 200);
    assert_eq!(by("http")["values"]["version"], "1.4.2");
    // The health URL is no secret: messages show its path (never userinfo or query).
    assert_eq!(by("http")["values"]["url"], app.url());
    assert!(app.url().ends_with("/health"));
    let db = by("database");
    assert!(
        db["values"]["server_version"]
            .as_str()
            .unwrap()
            .starts_with("15"),
        "{db}"
    );
    assert!(db["values"]["connect_ms"].as_f64().unwrap() < 5000.0);
    let disk = by(&disk_name);
    let (used, avail) = df(env.root());
    let v = &disk["values"];
    assert!(
        close(v["used_bytes"].as_u64().unwrap(), used),
        "{v} vs df used {used}"
    );
    assert!(
        close(v["avail_bytes"].as_u64().unwrap(), avail),
        "{v} vs df avail {avail}"
    );
    assert_eq!(
        v["size_bytes"].as_u64().unwrap(),
        v["used_bytes"].as_u64().unwrap() + v["avail_bytes"].as_u64().unwrap()
    );
    assert!(v["basis"].as_str().unwrap().contains("non-root"));
    assert!(by("memory")["values"]["total_bytes"].as_u64().unwrap() > 0);

    // Prometheus textfile: written atomically (no temp left), one HELP per metric.
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("\ntuneton_health_status 0\n")
            || text.starts_with("# HELP tuneton_health_status"),
        "{text}"
    );
    assert!(text.contains("tuneton_health_status 0\n"), "{text}");
    assert!(
        text.contains("tuneton_health_check_status{check=\"database\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tuneton_health_disk_avail_bytes{{path=\"{}\"",
            env.root().display()
        )),
        "{text}"
    );
    assert_eq!(
        text.matches("# HELP tuneton_health_check_status ").count(),
        1
    );
    assert_eq!(
        std::fs::read_dir(prom.parent().unwrap()).unwrap().count(),
        1,
        "temp file left behind"
    );

    // Nagios: status line, then perfdata in 'label'=value[UOM];warn;crit;min;max.
    let r = env.run(&["health", "--format", "nagios"]);
    assert_eq!(r.code(), 0, "{}", r.stdout());
    let out = r.stdout();
    let first = out.lines().next().unwrap();
    assert!(
        first.starts_with("TUNETON HEALTH OK - 6 checks OK | "),
        "{first}"
    );
    let perf = first.split(" | ").nth(1).unwrap();
    let items: Vec<&str> = perf.split(' ').collect();
    let find = |label: &str| {
        items
            .iter()
            .find(|p| p.starts_with(&format!("'{label}'=")))
            .unwrap_or_else(|| panic!("no perfdata for {label}: {perf}"))
            .to_string()
    };
    let http = find("http_time");
    let fields: Vec<&str> = http.split_once('=').unwrap().1.split(';').collect();
    assert!(fields[0].ends_with('s'), "{http}");
    assert_eq!(
        &fields[1..],
        ["1", "3", "0"],
        "{http}: warn 1000 ms, crit 3000 ms in seconds"
    );
    let d = find(&format!("disk:{}", env.root().display()));
    let f: Vec<&str> = d.split_once('=').unwrap().1.split(';').collect();
    assert!(f[0].ends_with('B'));
    let used_b: u64 = f[0].trim_end_matches('B').parse().unwrap();
    let size: u64 = f[4].parse().unwrap();
    assert!(close(used_b, used));
    assert_eq!(f[1], f[4], "a 100% threshold is the whole size");
    assert_eq!(f[3], "0");
    assert!(close(size, used + avail));
    find("db_connect");
    find("memory_used");
    let load5 = find("load5");
    assert!(load5.ends_with(";0"), "{load5}");
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with("OK service: running"),
        "{out}"
    );
}

#[test]
fn each_check_has_its_ok_warning_critical_and_unknown_paths() {
    let env = TestEnv::empty("health_paths");
    let mut app = AppStub::new(env.root());
    app.spawn();
    let code = |args: &[&str]| {
        let mut a = vec!["--json", "health"];
        a.extend_from_slice(args);
        let r = env.run(&a);
        let doc = r.json();
        (r.code(), doc)
    };
    let summary =
        |doc: &serde_json::Value| doc["checks"][0]["summary"].as_str().unwrap().to_string();

    // HTTP: slow answer -> WARNING, 503 -> CRITICAL, wrong version -> CRITICAL.
    configure(
        &env,
        &app,
        "health_json_field = \"version\"\nhealth_json_value = \"1.4.2\"",
        "[health.http]\nwarn_ms = 150\ncrit_ms = 4000\n",
    );
    assert_eq!(code(&["--check", "http"]).0, 0);
    app.set("delay", "0.3");
    let (c, doc) = code(&["--check", "http"]);
    assert_eq!(c, 1, "{doc}");
    assert!(summary(&doc).contains("slow"), "{doc}");
    app.set("delay", "0");
    app.set("status", "503");
    app.set("body", "maintenance");
    let (c, doc) = code(&["--check", "http"]);
    assert_eq!(c, 2, "{doc}");
    assert!(
        summary(&doc).contains("HTTP 503 (expected 200): maintenance"),
        "{doc}"
    );
    app.set("status", "200");
    app.set("body", "{\"status\":\"ok\",\"version\":\"1.3.9\"}");
    let (c, doc) = code(&["--check", "http"]);
    assert_eq!(c, 2);
    assert!(
        summary(&doc).contains("\"1.3.9\", expected \"1.4.2\""),
        "{doc}"
    );

    // Disk, memory, load: percent and absolute thresholds; a missing path is UNKNOWN.
    let root = env.root().display().to_string();
    let cases = [
        (format!("[health.disk]\npaths = [\"{root}\"]\nwarn = \"0%\"\ncrit = \"100%\"\ninodes_warn = \"100%\"\ninodes_crit = \"100%\"\n"), "disk", 1),
        (format!("[health.disk]\npaths = [\"{root}\"]\nwarn = \"0%\"\ncrit = \"1000000TiB\"\n"), "disk", 2),
        (format!("[health.disk]\npaths = [\"{root}\"]\nwarn = \"100%\"\ncrit = \"100%\"\ninodes_warn = \"0%\"\ninodes_crit = \"100%\"\n"), "disk", 1),
        (format!("[health.disk]\npaths = [\"{root}/not-there\"]\n"), "disk", 3),
        ("[health.memory]\nwarn = \"0%\"\ncrit = \"100%\"\n".to_string(), "memory", 1),
        ("[health.memory]\nwarn = \"0%\"\ncrit = \"1000000GiB\"\n".to_string(), "memory", 2),
        ("[health.memory]\nwarn = \"100%\"\ncrit = \"100%\"\n".to_string(), "memory", 0),
        ("[health.load]\nwarn = 0.0\ncrit = 1000.0\n".to_string(), "load", 1),
        ("[health.load]\nwarn = 0.0\ncrit = 0.0\nper_core = false\n".to_string(), "load", 2),
        ("[health.load]\nwarn = 1000.0\ncrit = 1000.0\n".to_string(), "load", 0),
    ];
    for (table, check, want) in cases {
        configure(&env, &app, "", &table);
        let (c, doc) = code(&["--check", check]);
        assert_eq!(c, want, "{table}\n{doc}");
        assert_eq!(doc["exit_code"], want);
        let state = ["OK", "WARNING", "CRITICAL", "UNKNOWN"][want as usize];
        assert_eq!(doc["checks"][0]["status"], state, "{doc}");
    }

    // Service: running, stopped, and a PID file that cannot be read -> UNKNOWN.
    configure(&env, &app, "", "");
    assert_eq!(code(&["--check", "service"]).0, 0);
    let pid = app.pid().unwrap();
    std::fs::write(app.pid_file(), "not a pid\n").unwrap();
    let (c, doc) = code(&["--check", "service"]);
    assert_eq!(c, 3, "{doc}");
    assert!(summary(&doc).contains("not a PID"), "{doc}");
    std::fs::write(app.pid_file(), "999999999\n").unwrap();
    let (c, doc) = code(&["--check", "service"]);
    assert_eq!(c, 2, "{doc}");
    assert!(summary(&doc).starts_with("stopped"), "{doc}");
    std::fs::write(app.pid_file(), format!("{pid}\n")).unwrap();

    // Database: a real connection and query; slow connect -> WARNING; no such database -> CRITICAL.
    configure(&env, &app, "", "");
    let (c, doc) = code(&["--check", "database"]);
    assert_eq!(c, 0, "{doc}");
    configure(
        &env,
        &app,
        "",
        "[health.database]\nwarn_ms = 0\ncrit_ms = 5000\n",
    );
    let (c, doc) = code(&["--check", "database"]);
    assert_eq!(c, 1, "{doc}");
    assert_eq!(doc["checks"][0]["status"], "WARNING", "{doc}");
    configure(&env, &app, "", "");
    let r = env
        .cmd(&["--json", "health", "--check", "database"])
        .env("DB_NAME", "no_such_database_here")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r.status.code(), Some(2), "{doc}");
    assert!(summary(&doc).contains("no_such_database_here"), "{doc}");

    // HTTP: nothing listening at the health URL -> CRITICAL, not UNKNOWN.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let text = std::fs::read_to_string(&env.config_path).unwrap();
    std::fs::write(
        &env.config_path,
        text.replace(&app.url(), &format!("http://127.0.0.1:{port}/health")),
    )
    .unwrap();
    let (c, doc) = code(&["--check", "http"]);
    assert_eq!(c, 2, "{doc}");
    assert_eq!(doc["checks"][0]["status"], "CRITICAL", "{doc}");

    // A bad threshold is a config error naming its key (exit 3), before any check runs.
    configure(&env, &app, "", "[health.disk]\nwarn = \"eighty\"\n");
    let r = env.run(&["health"]);
    assert_eq!(r.code(), 3);
    assert!(r.stderr().contains("health.disk.warn"), "{}", r.stderr());

    // Broken alert settings stop only `health --alert`, not the plain check.
    configure(
        &env,
        &app,
        "",
        "[alerts.email]\nto = [\"not-an-address\"]\n",
    );
    assert_eq!(code(&["--check", "http"]).0, 0);
    let r = env.run(&["health", "--alert", "--check", "http"]);
    assert_eq!(r.code(), 3);
    assert!(r.stderr().contains("alerts.email.to[0]"), "{}", r.stderr());
}

#[test]
fn a_black_holed_database_is_critical_within_its_timeout() {
    let env = TestEnv::empty("health_blackhole");
    let mut app = AppStub::new(env.root());
    app.spawn();
    let hole = BlackHole::new();
    configure(
        &env,
        &app,
        "",
        &format!(
            "{}\n{CALM}\n[health.database]\ntimeout_secs = 2\n",
            disk_table(&env, "")
        ),
    );
    // Point the database at the black hole (environment overrides the file).
    let started = Instant::now();
    let out = env
        .cmd(&["--json", "health"])
        .env("DB_PORT", hole.port.to_string())
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let r = crate::support::Run(out);
    assert_eq!(r.code(), 2, "{}", r.stdout());
    let doc = r.json();
    let db = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "database")
        .unwrap()
        .clone();
    assert_eq!(db["status"], "CRITICAL");
    assert!(
        db["summary"]
            .as_str()
            .unwrap()
            .contains("no answer within 2s"),
        "{db}"
    );
    // The deadline that applied is health's own, and the message names that key.
    let summary = db["summary"].as_str().unwrap();
    assert!(summary.contains("(health.database.timeout_secs)"), "{db}");
    assert!(!summary.contains("database.connect_timeout_secs"), "{db}");
    assert!(elapsed >= Duration::from_millis(1900), "{elapsed:?}");
    assert!(
        elapsed <= Duration::from_millis(2200),
        "took {elapsed:?}: more than the timeout + 10 %"
    );
    // The other checks ran in parallel and still decided.
    let http = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "http")
        .unwrap()
        .clone();
    assert_eq!(http["status"], "OK");
}

#[test]
fn warn_thresholds_beyond_crit_are_refused_naming_the_keys() {
    let env = TestEnv::empty("health_thresholds");
    env.write_config(&format!(
        "[health]\nstate_file = \"{}/health-state.json\"\n\n\
         [health.disk]\nwarn = \"95%\"\ncrit = \"80%\"\ninodes_warn = \"1000\"\ninodes_crit = \"5000\"\n\n\
         [health.memory]\nwarn = \"256MiB\"\ncrit = \"512MiB\"\n\n\
         [health.load]\nwarn = 8.0\ncrit = 4.0\n\n[health.http]\nwarn_ms = 5000\ncrit_ms = 100\n",
        env.root().display()
    ));
    let r = env.run(&["--json", "health"]);
    assert_eq!(r.code(), 3, "{}\n{}", r.stdout(), r.stderr());
    let err = r.json()["error"].as_str().unwrap().to_string();
    for want in [
        "health.disk.warn (\"95%\") must not exceed health.disk.crit (\"80%\")",
        "health.disk.inodes_warn (\"1000\") must not be below health.disk.inodes_crit (\"5000\")",
        "health.memory.warn (\"256MiB\") must not be below health.memory.crit (\"512MiB\")",
        "health.load.warn (8) must be between 0 and crit (4)",
        "health.http.warn_ms (5000) must not exceed crit_ms (100)",
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    // The right order, and a share against an amount (not comparable), pass validation.
    env.write_config(&format!(
        "[health]\nstate_file = \"{}/health-state.json\"\n\n\
         [health.disk]\nwarn = \"80%\"\ncrit = \"80%\"\ninodes_warn = \"5000\"\ninodes_crit = \"1000\"\n\n\
         [health.memory]\nwarn = \"90%\"\ncrit = \"64MiB\"\n",
        env.root().display()
    ));
    let r = env.run(&["config", "check"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
}
