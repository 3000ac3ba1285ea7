//! A real S3-compatible server for tests: s3s-fs started on 127.0.0.1 (one per
//! test, so a test may kill and restart its own), or any endpoint named by
//! TUNETON_TEST_S3_ENDPOINT / _ACCESS_KEY / _SECRET_KEY (/ _REGION) (Garage,
//! moto, MinIO): each test then uses its own fresh bucket there. Set
//! TUNETON_TEST_S3_CHECKS_SIGNATURES=0 for stores that accept any key (moto),
//! and RUST_S3_SKIP_LOCATION_CONSTRAINT=true where bucket creation needs it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use s3::creds::Credentials;
use s3::{Bucket, BucketConfiguration, Region};

pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub bucket: String,
    /// Only for a server we started.
    child: Option<Child>,
    root: Option<tempfile::TempDir>,
    port: u16,
}

impl S3Server {
    /// A server with an empty bucket named after the test.
    pub fn start(test: &str) -> S3Server {
        let bucket = format!(
            "tn-{}-{:04x}",
            test.replace('_', "-"),
            rand::random::<u16>()
        );
        let mut server = match std::env::var("TUNETON_TEST_S3_ENDPOINT") {
            Ok(endpoint) => S3Server {
                endpoint,
                access_key: std::env::var("TUNETON_TEST_S3_ACCESS_KEY")
                    .expect("TUNETON_TEST_S3_ACCESS_KEY"),
                secret_key: std::env::var("TUNETON_TEST_S3_SECRET_KEY")
                    .expect("TUNETON_TEST_S3_SECRET_KEY"),
                region: std::env::var("TUNETON_TEST_S3_REGION")
                    .unwrap_or_else(|_| "us-east-1".into()),
                bucket,
                child: None,
                root: None,
                port: 0,
            },
            Err(_) => {
                let root = tempfile::Builder::new()
                    .prefix("tns3")
                    .tempdir_in("/tmp")
                    .unwrap();
                let port = super::free_port();
                let mut s = S3Server {
                    endpoint: format!("http://127.0.0.1:{port}"),
                    access_key: "tuneton-test-access".into(),
                    secret_key: "tuneton-test-secret-0123456789".into(),
                    region: "us-east-1".into(),
                    bucket,
                    child: None,
                    root: Some(root),
                    port,
                };
                s.spawn();
                s
            }
        };
        server.create_bucket();
        server
    }

    fn binary() -> PathBuf {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        let cargo_bin = Path::new(&home).join(".cargo/bin/s3s-fs");
        if cargo_bin.exists() {
            cargo_bin
        } else {
            PathBuf::from("s3s-fs")
        }
    }

    fn spawn(&mut self) {
        let root = self.root.as_ref().expect("local server").path();
        let child = Command::new(Self::binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs (cargo install s3s-fs@0.14.1 --features binary --locked)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The directory s3s-fs keeps its objects and in-progress uploads in (only ours).
    pub fn data_dir(&self) -> Option<&Path> {
        self.root.as_ref().map(|r| r.path())
    }

    /// Parts of multipart uploads in progress (s3s-fs keeps `.upload_id-<id>.part-<n>` files).
    pub fn pending_parts(&self) -> Vec<String> {
        let Some(dir) = self.data_dir() else {
            return Vec::new();
        };
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }

    /// Whether this test can kill and restart the server (only ours).
    pub fn is_local(&self) -> bool {
        self.root.is_some()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn create_bucket(&mut self) {
        let creds = Credentials::new(
            Some(&self.access_key),
            Some(&self.secret_key),
            None,
            None,
            None,
        )
        .unwrap();
        let region = Region::Custom {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        };
        Bucket::create_with_path_style(&self.bucket, region, creds, BucketConfiguration::default())
            .unwrap_or_else(|e| panic!("creating bucket {}: {e}", self.bucket));
    }

    /// A client for the bucket (for tests that tamper with or inspect objects).
    pub fn client(&self) -> Box<Bucket> {
        let creds = Credentials::new(
            Some(&self.access_key),
            Some(&self.secret_key),
            None,
            None,
            None,
        )
        .unwrap();
        let region = Region::Custom {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
        };
        Bucket::new(&self.bucket, region, creds)
            .unwrap()
            .with_path_style()
    }

    /// Every key in the bucket.
    pub fn keys(&self) -> Vec<String> {
        self.client()
            .list(String::new(), None)
            .unwrap()
            .into_iter()
            .flat_map(|p| p.contents.into_iter().map(|o| o.key))
            .collect()
    }

    /// The `[s3]` config section for this server (secret from a 0600 file in `dir`).
    pub fn config_section(&self, dir: &Path, extra: &str) -> String {
        let secret = dir.join("s3-secret");
        super::write_secret(&secret, &self.secret_key);
        format!(
            "[s3]\nenabled = true\nendpoint = \"{}\"\nregion = \"{}\"\nbucket = \"{}\"\nprefix = \"tuneton\"\naccess_key_id = \"{}\"\nsecret_access_key_file = \"{}\"\nrequest_timeout_secs = 10\nretry_deadline_secs = 4\n{extra}\n",
            self.endpoint,
            self.region,
            self.bucket,
            self.access_key,
            secret.display()
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of an S3 server that answers the first requests itself
/// with a canned HTTP error (one per connection, then closes it), and forwards
/// everything after that: transient failures the client must retry, or a
/// permanent one it must not.
pub struct FaultyProxy {
    pub port: u16,
    faults: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FaultyProxy {
    /// `faults` requests get `status` with an S3 XML error `code`; the rest go to `upstream_port`.
    pub fn start(upstream_port: u16, faults: usize, status: u16, code: &str) -> FaultyProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let left = std::sync::Arc::new(AtomicUsize::new(faults));
        let answered = std::sync::Arc::new(AtomicUsize::new(0));
        let (l, a) = (left.clone(), answered.clone());
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let fault = l
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if fault {
                    a.fetch_add(1, Ordering::SeqCst);
                    // Read the request head, answer, close (the client must not reuse it).
                    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let _ = write!(
                        client,
                        "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream_port)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        FaultyProxy {
            port,
            faults: left,
            answered,
        }
    }

    /// Requests still to be answered with the fault.
    pub fn faults_left(&self) -> usize {
        self.faults.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl S3Server {
    /// The port of a server this test started (for a proxy in front of it).
    pub fn local_port(&self) -> Option<u16> {
        self.root.as_ref().map(|_| self.port)
    }
}
