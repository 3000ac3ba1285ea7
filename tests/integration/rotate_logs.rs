//! `rotate-logs` against real writer processes: a Python writer appends
//! numbered lines while the binary rotates with a tiny threshold, then every
//! archive is decompressed and every number must appear exactly once, in
//! order, with no NUL byte anywhere and every .gz passing `gzip -t`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Run;

/// Appends `count` numbered lines at `rate` per second, one write(2) per line.
/// mode "reopen": reopens the file on SIGUSR1/SIGHUP; "never": ignores them;
/// "noappend": never reopens and opens without O_APPEND (seeking to the end).
const WRITER: &str = r#"
import os, signal, sys, time
path, pidfile, count, rate, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
flags = os.O_WRONLY | os.O_CREAT | (0 if mode == "noappend" else os.O_APPEND)
reopen = False
def on_signal(sig, frame):
    global reopen
    reopen = True
if mode == "reopen":
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
else:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
fd = os.open(path, flags, 0o640)
if mode == "noappend":
    os.lseek(fd, 0, os.SEEK_END)
with open(pidfile + ".tmp", "w") as f:
    f.write("%d\n" % os.getpid())
os.rename(pidfile + ".tmp", pidfile)
batch = max(1, rate // 200)
start = time.monotonic()
i = 0
while i < count:
    for _ in range(min(batch, count - i)):
        os.write(fd, b"%08d the quick brown fox jumps over the lazy dog\n" % i)
        i += 1
    if reopen:
        reopen = False
        os.close(fd)
        fd = os.open(path, flags, 0o640)
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    if os.path.exists(pidfile + ".stop"):
        break
# A rotation's reopen signal may still arrive while the interpreter shuts down,
# when its handlers are gone: the default action would kill us mid-exit.
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
os.close(fd)
"#;

/// One test's directory, config and binary.
struct LogEnv {
    tmp: tempfile::TempDir,
    config: PathBuf,
}

impl LogEnv {
    /// `sets` is the `[[logs.sets]]` part; `{r}` in it stands for the root.
    fn new(sets: &str) -> LogEnv {
        Self::new_in(Path::new("/tmp"), sets)
    }

    fn new_in(base: &Path, sets: &str) -> LogEnv {
        let tmp = tempfile::Builder::new()
            .prefix("tnlog")
            .tempdir_in(base)
            .unwrap();
        for d in ["log", "run", "app"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        std::fs::write(tmp.path().join("writer.py"), WRITER).unwrap();
        let env = LogEnv {
            config: tmp.path().join("ops.toml"),
            tmp,
        };
        env.write_config(sets);
        env
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn app(&self) -> PathBuf {
        self.root().join("app")
    }

    fn write_config(&self, sets: &str) {
        let r = self.root().display().to_string();
        // No [encryption] at all: rotate-logs must not need a backup passphrase.
        let text = format!(
            "[paths]\nlog_dir = \"{r}/log\"\nrun_dir = \"{r}/run\"\n\n[logs]\n{}\n",
            sets.replace("{r}", &r)
        );
        std::fs::write(&self.config, text).unwrap();
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_tuneton-ops"))
            .env_remove("TUNETON_OPS_CONFIG")
            .env_remove("LOG_DIR")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run(out)
    }

    fn writer(&self, file: &str, count: u32, rate: u32, mode: &str) -> Writer {
        let pid_file = self.root().join(format!("{file}.pid"));
        let child = Command::new("python3")
            .arg(self.root().join("writer.py"))
            .arg(self.app().join(file))
            .arg(&pid_file)
            .arg(count.to_string())
            .arg(rate.to_string())
            .arg(mode)
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs the test writer");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pid_file.exists() {
            assert!(Instant::now() < deadline, "the writer did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Writer {
            child,
            stop: PathBuf::from(format!("{}.stop", pid_file.display())),
        }
    }

    /// Archive file names of `live` in app/archive, in name (= rotation) order.
    fn archives(&self, live: &str) -> Vec<PathBuf> {
        let dir = self.app().join("archive");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .unwrap()
                            .to_string_lossy()
                            .starts_with(&format!("{live}-"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

struct Writer {
    child: Child,
    stop: PathBuf,
}

impl Writer {
    fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the writer to finish on its own, with a deadline.
    fn finish(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.running() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the writer did not finish within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the writer failed: {status}");
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.running() {
            let _ = std::fs::write(&self.stop, b"");
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `gzip -t` over files, and their decompressed content concatenated in the given order.
fn gunzip_all(files: &[PathBuf]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in files.chunks(200) {
        let t = Command::new("gzip").arg("-t").args(chunk).output().unwrap();
        assert!(
            t.status.success(),
            "gzip -t: {}",
            String::from_utf8_lossy(&t.stderr)
        );
        let d = Command::new("gzip")
            .arg("-dc")
            .args(chunk)
            .output()
            .unwrap();
        assert!(d.status.success());
        out.extend_from_slice(&d.stdout);
    }
    out
}

/// Asserts the bytes are exactly the writer's lines 0..count, in order, with no NUL.
fn assert_every_line_once(all: &[u8], count: u32) {
    assert!(
        !all.contains(&0),
        "a NUL byte at offset {}",
        all.iter().position(|b| *b == 0).unwrap()
    );
    let text = std::str::from_utf8(all).unwrap();
    let mut expected = 0u32;
    for line in text.lines() {
        let n: u32 = line[..8]
            .parse()
            .unwrap_or_else(|_| panic!("a damaged line: {line:?}"));
        assert_eq!(n, expected, "line {expected} is missing or duplicated");
        assert!(line.ends_with("lazy dog"), "a damaged line: {line:?}");
        expected += 1;
    }
    assert_eq!(expected, count, "lines lost at the end");
    assert!(text.ends_with('\n'));
}

const LINES: u32 = 200_000;
const RATE: u32 = 20_000;

/// Rotates repeatedly while the writer runs, then once more after it ended;
/// checks every run's exit code and every line.
fn rotate_under_load(env: &LogEnv, writer: Writer, warnings_ok: bool) -> Vec<PathBuf> {
    let mut writer = writer;
    let mut runs = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    while writer.running() {
        assert!(Instant::now() < deadline, "the writer took too long");
        let r = env.run(&["rotate-logs"]);
        let allowed: &[i32] = if warnings_ok { &[0, 1] } else { &[0] };
        assert!(
            allowed.contains(&r.code()),
            "rotate-logs exited {}: {}\n{}",
            r.code(),
            r.stdout(),
            r.stderr()
        );
        runs += 1;
    }
    writer.finish(Duration::from_secs(30));
    // The writer is gone: whatever was left is compressed now.
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let archives = env.archives("app.log");
    eprintln!("{} rotations in {runs} runs", archives.len());
    assert!(
        archives.len() >= 5,
        "only {} rotations in {runs} runs",
        archives.len()
    );
    for a in &archives {
        assert!(
            a.extension().is_some_and(|e| e == "gz"),
            "left uncompressed: {}",
            a.display()
        );
    }
    let mut all = gunzip_all(&archives);
    all.extend(std::fs::read(env.app().join("app.log")).unwrap());
    assert_every_line_once(&all, LINES);
    archives
}

#[test]
fn signal_mode_loses_no_line_of_a_busy_writer() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"256K\"\nreopen = \"signal\"\n\
         signal = \"USR1\"\npid_file = \"{r}/app.log.pid\"\nmode = \"0640\"\n",
    );
    let writer = env.writer("app.log", LINES, RATE, "reopen");
    rotate_under_load(&env, writer, false);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.app().join("app.log"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "the new file gets the configured mode");
}

#[test]
fn command_mode_loses_no_line_of_a_busy_writer() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/*.log\"]\nmax_size = \"256K\"\nreopen = \"command\"\n\
         command = \"kill -HUP $(cat {r}/app.log.pid)\"\ncommand_timeout_secs = 20\n",
    );
    let writer = env.writer("app.log", LINES, RATE, "reopen");
    rotate_under_load(&env, writer, false);
}

#[test]
fn copytruncate_loses_no_line_of_an_o_append_writer_that_never_reopens() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"256K\"\nreopen = \"copytruncate\"\n",
    );
    let writer = env.writer("app.log", LINES, RATE, "never");
    let pid = writer.pid();
    let archives = rotate_under_load(&env, writer, false);
    // The writer kept its one descriptor the whole time: the same inode is still the live file.
    assert!(pid > 0);
    // Each archive took a block-aligned prefix.
    for a in &archives {
        let d = Command::new("gzip").arg("-dc").arg(a).output().unwrap();
        assert_eq!(
            d.stdout.len() % 4096,
            0,
            "{} is not block-aligned",
            a.display()
        );
    }
}

#[test]
fn rename_without_a_reopen_action_refuses_while_a_writer_holds_the_file() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"1K\"\nreopen = \"none\"\n",
    );
    let writer = env.writer("app.log", 1_000_000, 2_000, "never");
    let live = env.app().join("app.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&live).unwrap().len() < 4096 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = std::fs::metadata(&live).unwrap();
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    let f = &doc["files"][0];
    assert_eq!(f["action"], "failed");
    let msg = f["messages"][0].as_str().unwrap();
    assert!(msg.contains(&format!("pid {}", writer.pid())), "{msg}");
    assert!(msg.contains("reopen = \"none\""), "{msg}");
    assert!(r.stderr().contains("ERROR"), "{}", r.stderr());
    // Nothing was renamed: the writer's file is still the live one, no archive.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&live).unwrap().ino(), before.ino());
    assert!(env.archives("app.log").is_empty());

    // A pid file naming a live process that is not the writer (nor its parent):
    // nothing is signalled and nothing rotated.
    let mut bystander = Command::new("sleep").arg("60").spawn().unwrap();
    let pid_file = env.root().join("bystander.pid");
    std::fs::write(&pid_file, format!("{}\n", bystander.id())).unwrap();
    env.write_config(&format!(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{{r}}/app/app.log\"]\nmax_size = \"1K\"\nreopen = \"signal\"\n\
         pid_file = \"{}\"\n",
        pid_file.display()
    ));
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 2, "{}\n{}", r.stdout(), r.stderr());
    let msg = r.json()["files"][0]["messages"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("stale pid file"), "{msg}");
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "the bystander was signalled"
    );
    assert_eq!(std::fs::metadata(&live).unwrap().ino(), before.ino());
    let _ = bystander.kill();
    let _ = bystander.wait();

    // With a signal the writer ignores: rotated, but the generation stays
    // uncompressed while the writer still writes into it (warning, exit 1).
    env.write_config(&format!(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{{r}}/app/app.log\"]\nmax_size = \"1K\"\nreopen = \"signal\"\n\
         pid_file = \"{}\"\nreopen_timeout_secs = 1\n",
        env.root().join("app.log.pid").display()
    ));
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    let f = &doc["files"][0];
    assert_eq!(f["action"], "rotated");
    let msgs = f["messages"].to_string();
    assert!(msgs.contains("left uncompressed"), "{msgs}");
    let archives = env.archives("app.log");
    assert_eq!(archives.len(), 1);
    assert!(
        !archives[0].to_string_lossy().ends_with(".gz"),
        "{archives:?}"
    );
    // The next run still does not compress it (the writer has it open), and says so.
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}", r.stdout());
    assert_eq!(r.json()["archives"][0]["action"], "left uncompressed");
    drop(writer);
    // Once the writer is gone, it is compressed.
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["archives"][0]["action"], "compressed");
    let archives = env.archives("app.log");
    assert_eq!(archives.len(), 1);
    assert!(archives[0].to_string_lossy().ends_with(".gz"));
    gunzip_all(&archives);
}

#[test]
fn copytruncate_refuses_a_writer_without_o_append() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"1K\"\nreopen = \"copytruncate\"\n",
    );
    let writer = env.writer("app.log", 1_000_000, 2_000, "noappend");
    let live = env.app().join("app.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&live).unwrap().len() < 16384 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let size = std::fs::metadata(&live).unwrap().len();
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let f = &r.json()["files"][0];
    let msg = f["messages"][0].as_str().unwrap();
    assert!(msg.contains("without O_APPEND"), "{msg}");
    assert!(msg.contains(&format!("pid {}", writer.pid())), "{msg}");
    assert!(
        std::fs::metadata(&live).unwrap().len() >= size,
        "not truncated"
    );
    assert!(env.archives("app.log").is_empty());
}

#[test]
fn three_rotations_within_one_second_make_three_archives() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nreopen = \"none\"\n",
    );
    let live = env.app().join("app.log");
    // An archive from the future (the clock stepped back): never overwritten, still sorts first.
    std::fs::create_dir_all(env.app().join("archive")).unwrap();
    let future = env
        .app()
        .join("archive/app.log-29991231T235959.999Z-001.gz");
    std::fs::write(&future, b"precious").unwrap();
    let started = Instant::now();
    for i in 0..3 {
        std::fs::write(&live, format!("generation {i}\n")).unwrap();
        let r = env.run(&["rotate-logs", "--force"]);
        assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    }
    let elapsed = started.elapsed();
    assert_eq!(std::fs::read(&future).unwrap(), b"precious");
    let archives: Vec<PathBuf> = env
        .archives("app.log")
        .into_iter()
        .filter(|p| *p != future)
        .collect();
    assert_eq!(archives.len(), 3, "{archives:?} (in {elapsed:?})");
    for (i, a) in archives.iter().enumerate() {
        assert_eq!(
            String::from_utf8(gunzip_all(std::slice::from_ref(a))).unwrap(),
            format!("generation {i}\n")
        );
        // After the future one: same stamp, counters 002, 003, 004.
        assert!(
            a.to_string_lossy()
                .ends_with(&format!("29991231T235959.999Z-{:03}.gz", i + 2)),
            "{}",
            a.display()
        );
    }
    assert_eq!(std::fs::read(&live).unwrap(), b"", "a fresh live file");
}

#[test]
fn retention_deletes_only_this_sets_old_archives() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nkeep_days = 30\nkeep = 3\n\n\
         [[logs.sets]]\nname = \"other\"\npaths = [\"{r}/app/other.log\"]\nkeep_days = 3650\n",
    );
    let a = env.app().join("archive");
    std::fs::create_dir_all(&a).unwrap();
    let day_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 86_400;
    let recent = |k: u64| {
        let out = Command::new("date")
            .arg("-u")
            .arg("-d")
            .arg(format!("@{}", day_ago + 60 * k))
            .arg("+%Y%m%dT%H%M%S.000Z")
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let files = [
        // app: two too old, one old-script archive too old, four recent (keep = 3: one goes)
        "app.log-20200101T000000.000Z-001.gz".to_string(),
        "app.log-20200102T000000.000Z-001".to_string(),
        "app_20200103.log.gz".to_string(),
        format!("app.log-{}-001.gz", recent(1)),
        format!("app.log-{}-001.gz", recent(2)),
        format!("app.log-{}-001.gz", recent(3)),
        format!("app.log-{}-001.gz", recent(4)),
        // other set: old, but its own retention keeps 10 years
        "other.log-20200101T000000.000Z-001.gz".to_string(),
        // no set's: names that only look alike
        "app.log.bak-20200101T000000.000Z-001.gz".to_string(),
        "xapp.log-20200101T000000.000Z-001.gz".to_string(),
        "app.log-20200101.gz".to_string(),
        "notes.txt".to_string(),
    ];
    for f in &files {
        std::fs::write(a.join(f), b"x").unwrap();
    }
    std::fs::write(env.app().join("app.log"), b"small\n").unwrap();
    std::fs::write(env.app().join("other.log"), b"small\n").unwrap();

    let r = env.run(&["--dry-run", "--json", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let would: Vec<String> = r.json()["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["action"], "would delete");
            d["path"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(would.len(), 4, "{would:?}");
    for f in &files {
        assert!(a.join(f).exists(), "dry run deleted {f}");
    }

    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let mut left: Vec<String> = std::fs::read_dir(&a)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expected: Vec<String> = files[4..].to_vec();
    expected.sort();
    assert_eq!(left, expected);
    let deleted = r.json()["deleted"].as_array().unwrap().len();
    assert_eq!(deleted, 4);
}

#[test]
fn a_corrupt_state_file_is_reported_rebuilt_and_rotation_proceeds() {
    let env = LogEnv::new(
        "state_file = \"{r}/state/rotate.json\"\n\n[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\n\
         max_size = \"1K\"\nreopen = \"none\"\n",
    );
    let state = env.root().join("state/rotate.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    std::fs::write(&state, b"{\"version\": 1, \"files\": {\"/x\": {\"last_rot").unwrap();
    std::fs::write(env.app().join("app.log"), vec![b'a'; 5000]).unwrap();
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    let note = doc["notes"][0]["message"].as_str().unwrap();
    assert!(
        note.contains("is corrupt") && note.contains("rebuilt"),
        "{note}"
    );
    assert!(r.stderr().contains("is corrupt"), "{}", r.stderr());
    assert_eq!(doc["files"][0]["action"], "rotated");
    assert_eq!(env.archives("app.log").len(), 1);
    // Rebuilt: valid JSON naming the new archive; the bad copy kept aside.
    let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let rec = &st["files"][env.app().join("app.log").display().to_string()];
    assert_eq!(
        rec["last_archive"].as_str().unwrap(),
        env.archives("app.log")[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );
    assert_eq!(rec["last_bytes"], 5000);
    let aside = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .count();
    assert_eq!(aside, 1);
    // The next run is clean.
    let r = env.run(&["rotate-logs"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
}

#[test]
fn dry_run_prints_each_action_and_changes_nothing() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/*.log\"]\nmax_size = \"10K\"\nreopen = \"copytruncate\"\n",
    );
    let big: String = (0..5000).map(|i| format!("{i:08}\n")).collect();
    std::fs::write(env.app().join("big.log"), &big).unwrap();
    std::fs::write(env.app().join("small.log"), b"tiny\n").unwrap();
    let r = env.run(&["--dry-run", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let out = r.stdout();
    assert!(out.contains("would copytruncate"), "{out}");
    assert!(out.contains("big.log"), "{out}");
    assert!(out.contains("would archive the first 40960 bytes"), "{out}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(
        std::fs::read_to_string(env.app().join("big.log")).unwrap(),
        big
    );
    assert!(!env.app().join("archive").exists());
    // The real run does what the dry run said, and --json reports the bytes.
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    let doc = r.json();
    let f = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("big.log"))
        .unwrap()
        .clone();
    assert_eq!(f["action"], "copytruncated");
    assert_eq!(f["bytes"], 40960);
    assert!(f["compressed_bytes"].as_u64().unwrap() < 40960);
    let archived = gunzip_all(&env.archives("big.log"));
    assert_eq!(archived.len(), 40960);
    let mut all = archived;
    all.extend(std::fs::read(env.app().join("big.log")).unwrap());
    assert_eq!(String::from_utf8(all).unwrap(), big);
}

#[test]
fn copytruncate_on_tmpfs_falls_back_and_names_the_filesystem() {
    let shm = Path::new("/dev/shm");
    let is_tmpfs = Command::new("stat")
        .args(["-f", "-c", "%T", "/dev/shm"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
        .unwrap_or(false);
    if !is_tmpfs {
        eprintln!("skipped: /dev/shm is not tmpfs here");
        return;
    }
    let env = LogEnv::new_in(
        shm,
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"1K\"\nreopen = \"copytruncate\"\n",
    );
    let text: String = (0..3000).map(|i| format!("{i:08}\n")).collect();
    std::fs::write(env.app().join("app.log"), &text).unwrap();
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let f = &r.json()["files"][0];
    assert_eq!(f["action"], "copytruncated");
    assert!(f["messages"][0].as_str().unwrap().contains("tmpfs"), "{f}");
    let archives = env.archives("app.log");
    assert_eq!(String::from_utf8(gunzip_all(&archives)).unwrap(), text);
    assert_eq!(std::fs::read(env.app().join("app.log")).unwrap(), b"");
}

#[test]
fn bad_log_config_exits_3_naming_the_key_and_needs_no_backup_settings() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"10X\"\nreopen = \"signal\"\n",
    );
    let r = env.run(&["rotate-logs"]);
    assert_eq!(r.code(), 3);
    assert!(
        r.stderr().contains("logs.sets[0].max_size"),
        "{}",
        r.stderr()
    );
    assert!(
        r.stderr().contains("logs.sets[0].pid_file"),
        "{}",
        r.stderr()
    );
    assert!(!r.stderr().contains("encryption"), "{}", r.stderr());
    let r = env.run(&["rotate-logs", "--set", "nope"]);
    assert_eq!(r.code(), 3);
    // A valid [logs] on a host with no backup passphrase: rotate-logs runs.
    env.write_config("[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\n");
    std::fs::write(env.app().join("app.log"), b"x\n").unwrap();
    let r = env.run(&["rotate-logs"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    // An unknown set name in a valid config: could not start (3), the valid names listed, JSON under --json.
    let r = env.run(&["--json", "rotate-logs", "--set", "nope"]);
    assert_eq!(r.code(), 3, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    assert_eq!(doc["exit_code"], 3);
    let err = doc["error"].as_str().unwrap();
    assert!(
        err.contains("--set nope: no such log set") && err.contains("(configured: app)"),
        "{err}"
    );
    // Quiet success for schedulers: nothing on stdout when there is nothing to look at.
    std::fs::write(env.app().join("app.log"), vec![b'x'; 10_000]).unwrap();
    let r = env.run(&["--quiet", "rotate-logs", "--force"]);
    assert_eq!(r.code(), 0, "{}", r.stderr());
    assert_eq!(r.stdout(), "");
    assert_eq!(env.archives("app.log").len(), 1);
}

#[test]
fn a_set_matching_no_file_is_a_warning_naming_it_but_not_due_is_success() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"10K\"\nreopen = \"copytruncate\"\n\n\
         [[logs.sets]]\nname = \"typo\"\npaths = [\"{r}/nothing/*.log\", \"{r}/app/absent.log\"]\nreopen = \"copytruncate\"\n",
    );
    std::fs::write(env.app().join("app.log"), b"small\n").unwrap();
    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(r.code(), 1, "{}\n{}", r.stdout(), r.stderr());
    let doc = r.json();
    let notes = doc["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{doc}");
    assert_eq!(notes[0]["status"], "warning");
    let r0 = env.root().display();
    assert_eq!(
        notes[0]["message"],
        format!(
            "log set \"typo\": no file matches {r0}/nothing/*.log, {r0}/app/absent.log (logs.sets[1].paths); check the paths"
        )
    );
    // The text report says it too, and the file that exists was left alone.
    let r = env.run(&["rotate-logs"]);
    assert_eq!(r.code(), 1);
    assert!(
        r.stdout().contains("log set \"typo\": no file matches"),
        "{}",
        r.stdout()
    );
    assert_eq!(
        std::fs::read(env.app().join("app.log")).unwrap(),
        b"small\n"
    );
    // A set whose files exist but none is due: success.
    let r = env.run(&["--json", "rotate-logs", "--set", "app"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    assert_eq!(r.json()["notes"].as_array().unwrap().len(), 0);
}

#[test]
fn force_under_copytruncate_leaves_a_file_of_one_block_and_says_so() {
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"app\"\npaths = [\"{r}/app/app.log\"]\nmax_size = \"100M\"\nreopen = \"copytruncate\"\n",
    );
    std::fs::write(env.app().join("app.log"), b"one short line\n").unwrap();
    let r = env.run(&["--json", "rotate-logs", "--force"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout(), r.stderr());
    let f = &r.json()["files"][0];
    assert_eq!(f["action"], "skipped", "{f}");
    assert!(
        f["reason"]
            .as_str()
            .unwrap()
            .contains("is not more than one filesystem block"),
        "{f}"
    );
    assert_eq!(
        std::fs::read(env.app().join("app.log")).unwrap(),
        b"one short line\n"
    );
    assert!(env.archives("app.log").is_empty());
}

#[test]
fn zstd_owner_mode_and_age_with_one_failing_file_among_good_ones() {
    if !crate::support::is_root() {
        eprintln!("skipped: setting another owner needs root");
        return;
    }
    let env = LogEnv::new(
        "[[logs.sets]]\nname = \"z\"\npaths = [\"{r}/app/z*.log\"]\nmax_size = \"1K\"\nmax_age_days = 1\n\
         compress = \"zstd\"\nowner = \"nobody\"\ngroup = \"nogroup\"\nmode = \"0640\"\nreopen = \"none\"\n",
    );
    let app = env.app();
    // big.log: over max_size. old.log: small, but its last archive is two years old (max_age_days).
    // fresh.log: small and new: left alone. held.log: over max_size, but a writer holds it.
    let big: String = (0..200).map(|i| format!("big line {i:04}\n")).collect();
    std::fs::write(app.join("zbig.log"), &big).unwrap();
    std::fs::write(app.join("zold.log"), "one old line\n").unwrap();
    std::fs::create_dir_all(app.join("archive")).unwrap();
    std::fs::write(app.join("older"), "older\n").unwrap();
    let out = Command::new("zstd")
        .args(["-q", "-o"])
        .arg(app.join("archive/zold.log-20241101T000000.000Z-001.zst"))
        .arg(app.join("older"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(app.join("older")).unwrap();
    std::fs::write(app.join("zfresh.log"), "fresh\n").unwrap();
    let writer = env.writer("zheld.log", 1_000_000, 2_000, "never");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(app.join("zheld.log")).unwrap().len() < 2048 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }

    let r = env.run(&["--json", "rotate-logs"]);
    assert_eq!(
        r.code(),
        2,
        "the held file fails: {}\n{}",
        r.stdout(),
        r.stderr()
    );
    let doc = r.json();
    let action = |name: &str| {
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name} not in {doc}"))["action"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(action("zheld.log"), "failed", "{doc}");
    assert_eq!(action("zbig.log"), "rotated", "{doc}");
    assert_eq!(action("zold.log"), "rotated", "by age: {doc}");
    assert_ne!(action("zfresh.log"), "rotated", "{doc}");
    drop(writer);

    let zbig = env.archives("zbig.log");
    assert_eq!(zbig.len(), 1, "{zbig:?}");
    assert!(zbig[0].to_string_lossy().ends_with(".zst"), "{zbig:?}");
    // The zstd CLI reads what we wrote.
    let out = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(&zbig[0])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), big);
    // Rotated by age; its two-year-old archive went by the default keep_days (90).
    let zold = env.archives("zold.log");
    assert_eq!(zold.len(), 1, "{zold:?}");
    assert!(!zold[0].to_string_lossy().contains("20241101"), "{zold:?}");
    let out = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(&zold[0])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one old line\n");
    assert_eq!(
        std::fs::read_to_string(app.join("zfresh.log")).unwrap(),
        "fresh\n"
    );

    // The new live files: empty, nobody:nogroup, 0640.
    use std::os::unix::fs::MetadataExt;
    let id = |flag: &str, name: &str| -> u32 {
        let out = Command::new("id").args([flag, name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    let (uid, gid) = (id("-u", "nobody"), id("-g", "nobody"));
    for name in ["zbig.log", "zold.log"] {
        let md = std::fs::metadata(app.join(name)).unwrap();
        assert_eq!(md.len(), 0, "{name}");
        assert_eq!(md.mode() & 0o7777, 0o640, "{name}");
        assert_eq!((md.uid(), md.gid()), (uid, gid), "{name}: nobody:nogroup");
    }
}
