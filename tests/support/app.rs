//! The application stand-in for `health`, `restart` and `diagnose` tests: a
//! real HTTP server process (tests/support/app_stub.py) serving /health from
//! control files, run through the command-based service manager, plus helpers
//! for network endpoints that accept nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const STUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/app_stub.py");

pub struct AppStub {
    /// Control directory: status, body, delay, ignore_term, app.pid, stub.log.
    pub dir: PathBuf,
    pub port: u16,
    children: Vec<Child>,
}

impl AppStub {
    /// A stub under `root`/app-stub (not started).
    pub fn new(root: &Path) -> AppStub {
        let dir = root.join("app-stub");
        std::fs::create_dir_all(&dir).unwrap();
        AppStub {
            dir,
            port: super::free_port(),
            children: Vec::new(),
        }
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("app.pid")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/health", self.port)
    }

    /// Sets a control file (status, body, delay, ignore_term).
    pub fn set(&self, name: &str, value: &str) {
        std::fs::write(self.dir.join(name), value).unwrap();
    }

    /// The shell command that launches the stub in the background (what `app.start_command` runs).
    pub fn start_command(&self) -> String {
        format!(
            "APP_STUB_DIR={} APP_STUB_PORT={} python3 {STUB} >>{}/stub.log 2>&1 &",
            self.dir.display(),
            self.port,
            self.dir.display()
        )
    }

    /// The `[app]` table for this stub (commands mode, PID file, health URL).
    pub fn app_config(&self, extra: &str) -> String {
        format!(
            "[app]\nstart_command = \"{}\"\nstop_command = \"kill -TERM $(cat {})\"\npid_file = \"{}\"\nhealth_url = \"{}\"\n{extra}\n",
            self.start_command(),
            self.pid_file().display(),
            self.pid_file().display(),
            self.url()
        )
    }

    /// Starts the stub as our own child and waits until it answers.
    pub fn spawn(&mut self) {
        let child = stub_command(&self.dir, self.port).spawn().unwrap();
        self.children.push(child);
        self.wait_listening();
    }

    pub fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
            || !self.pid_file().exists()
        {
            assert!(
                Instant::now() < deadline,
                "app stub did not start: {}",
                std::fs::read_to_string(self.dir.join("stub.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The PID the stub wrote.
    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.pid_file())
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A decoy: the same program with exactly the same command line (its
    /// settings are in its environment), on another port, not managed by anyone.
    pub fn spawn_decoy(&mut self) -> i32 {
        let dir = self.dir.join("decoy");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ignore_term"), "").unwrap();
        let port = super::free_port();
        let child = stub_command(&dir, port).spawn().unwrap();
        let pid = child.id() as i32;
        self.children.push(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "decoy did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        pid
    }
}

fn stub_command(dir: &Path, port: u16) -> Command {
    let mut c = Command::new("python3");
    c.arg(STUB)
        .env("APP_STUB_DIR", dir)
        .env("APP_STUB_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Alive and not a zombie.
pub fn process_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let state = s[s.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

/// The command line of a process, NULs as spaces.
pub fn cmdline(pid: i32) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default())
        .replace('\0', " ")
        .trim()
        .to_string()
}

impl Drop for AppStub {
    fn drop(&mut self) {
        // The stub started through start_command is not our child: kill it by its PID file,
        // only if it still is the stub.
        if let Some(pid) = self.pid() {
            if cmdline(pid).contains("app_stub.py") {
                // SAFETY: kill(2) on the stub this test started, checked by its command line.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP port where connections are never accepted and new SYNs are dropped:
/// a listening socket with a backlog of 0 whose single queue slot we fill.
pub struct BlackHole {
    fd: i32,
    _filler: std::net::TcpStream,
    pub port: u16,
}

impl BlackHole {
    pub fn new() -> BlackHole {
        // SAFETY: plain socket calls on a socket we own; the sockaddr structs are fully initialised.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as u16;
            addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
            addr.sin_port = 0;
            let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
            assert_eq!(
                libc::bind(fd, &addr as *const _ as *const libc::sockaddr, len),
                0
            );
            assert_eq!(libc::listen(fd, 0), 0);
            let mut got: libc::sockaddr_in = std::mem::zeroed();
            let mut glen = len;
            libc::getsockname(fd, &mut got as *mut _ as *mut libc::sockaddr, &mut glen);
            let port = u16::from_be(got.sin_port);
            let filler = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_secs(2),
            )
            .unwrap();
            // The queue is now full: the next connect must hang.
            assert!(std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(200)
            )
            .is_err());
            BlackHole {
                fd,
                _filler: filler,
                port,
            }
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        // SAFETY: closing the socket we opened.
        unsafe {
            libc::close(self.fd);
        }
    }
}
