//! The repository in S3-compatible object storage (AWS S3, Garage, MinIO, Ceph
//! RGW, s3s), through rust-s3's sync API, with the same layout and manifests
//! as the local repository under `s3.prefix`.
//!
//! Uploads stream as multipart uploads (part size grows so the 10 000-part
//! limit is never hit); every part carries Content-MD5 and a signed SHA-256 of
//! its payload, which the server checks. After completion the object's size
//! and ETag (for multipart: MD5 of the parts' MD5s, "-N") are compared with
//! what we sent, falling back to a streamed read-back SHA-256 when a store
//! computes ETags differently. Only then is the manifest written. An upload
//! that does not commit is aborted. Transient errors are retried with backoff
//! until `s3.retry_deadline_secs`; permanent ones fail at once naming the
//! setting to check.

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use md5::{Digest as _, Md5};
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::serde_types::Part;
use s3::{Bucket, Region};
use sha2::Sha256;

use super::{
    build_listing, is_listed_key, ListingWarning, PendingObject, RepoEntry, Repository, StoredFile,
    MANIFEST_SUFFIX, VERIFIED_SUFFIX,
};
use crate::config::S3Config;
use crate::exit::could_not_start;
use crate::manifest::{BackupKind, BackupManifest, VerificationRecord};

const MIB: usize = 1024 * 1024;
/// Part sizes double every this many parts: 10 000 parts then cover far more than any backup.
const PARTS_PER_SIZE_STEP: u32 = 1000;
const MAX_PART: usize = 5 * 1024 * MIB;
/// Objects are read in ranges of this size (one request each, see `stream`).
const GET_RANGE: u64 = 4 * MIB as u64;

#[derive(Clone)]
pub struct S3Repo {
    bucket: Box<Bucket>,
    prefix: String,
    part_size: usize,
    retry_deadline: Duration,
    request_timeout: Duration,
    /// Where this host notes the multipart uploads it has started (see `UploadJournal`).
    journal: Option<UploadJournal>,
}

/// How an S3 error should be handled.
enum Failure {
    /// Worth retrying (timeouts, resets, 5xx, 429).
    Transient(String),
    /// Retrying cannot help; the message says which setting to check.
    Permanent(String),
    /// The key does not exist.
    NotFound,
}

impl S3Repo {
    pub fn open(cfg: &S3Config) -> Result<S3Repo> {
        let access = cfg.access_key_id.clone().ok_or_else(|| {
            could_not_start("S3 access key missing: set s3.access_key_id, s3.access_key_id_file or AWS_ACCESS_KEY_ID")
        })?;
        let secret = cfg.secret_access_key.clone().ok_or_else(|| {
            could_not_start(
                "S3 secret key missing: set s3.secret_access_key_file or AWS_SECRET_ACCESS_KEY",
            )
        })?;
        let creds = Credentials::new(Some(&access), Some(secret.expose()), None, None, None)
            .map_err(|e| could_not_start(format!("S3 credentials: {e}")))?;
        let region = Region::Custom {
            region: cfg.region.clone(),
            endpoint: cfg.endpoint.trim_end_matches('/').to_string(),
        };
        let mut bucket = Bucket::new(&cfg.bucket, region, creds).map_err(|e| {
            could_not_start(format!(
                "S3 bucket {:?} at {}: {e}",
                cfg.bucket, cfg.endpoint
            ))
        })?;
        if cfg.path_style {
            bucket = bucket.with_path_style();
        }
        bucket.set_request_timeout(Some(Duration::from_secs(cfg.request_timeout_secs)));
        // Our `call` retries with its own deadline; rust-s3's extra retry (1 s, then
        // the whole request again) would double every hung request's time.
        s3::set_retries(0);
        Ok(S3Repo {
            bucket,
            prefix: cfg.prefix.trim_matches('/').to_string(),
            part_size: (cfg.part_size_mib as usize).max(5) * MIB,
            retry_deadline: Duration::from_secs(cfg.retry_deadline_secs),
            request_timeout: Duration::from_secs(cfg.request_timeout_secs),
            journal: None,
        })
    }

    /// Notes each multipart upload this process starts in `dir` until it is completed
    /// or aborted, so that the next backup run aborts those a killed run left behind.
    pub fn with_journal(mut self, dir: std::path::PathBuf) -> S3Repo {
        self.journal = Some(UploadJournal { dir });
        self
    }

    fn full_key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.full_key(key))
    }

    fn classify(&self, e: &S3Error) -> Failure {
        match e {
            S3Error::HttpFailWithBody(status, body) => {
                let code = xml_code(body);
                let has = |c: &str| code.as_deref() == Some(c);
                match status {
                    404 if has("NoSuchBucket") => Failure::Permanent(format!(
                        "bucket {:?} does not exist at this endpoint (check s3.bucket and s3.endpoint)",
                        self.bucket.name()
                    )),
                    404 => Failure::NotFound,
                    _ if has("RequestTimeTooSkewed") => Failure::Permanent(
                        "the S3 server rejects our clock (RequestTimeTooSkewed): this host's time differs from the server's by more than 15 minutes; fix NTP"
                            .into(),
                    ),
                    403 if has("SignatureDoesNotMatch") => Failure::Permanent(
                        "S3 rejected the request signature: the secret key is wrong (check s3.secret_access_key_file / AWS_SECRET_ACCESS_KEY)"
                            .into(),
                    ),
                    403 if has("InvalidAccessKeyId") => Failure::Permanent(
                        "S3 does not know this access key (check s3.access_key_id / AWS_ACCESS_KEY_ID)".into(),
                    ),
                    403 => Failure::Permanent(format!(
                        "S3 denied access to bucket {:?} ({}): the credentials are wrong or lack permission \
                         (check s3.access_key_id and s3.secret_access_key_file / AWS_SECRET_ACCESS_KEY)",
                        self.bucket.name(),
                        code.unwrap_or_else(|| "HTTP 403".into())
                    )),
                    // 501: the server does not implement the request (s3s-fs has no
                    // ListMultipartUploads); asking again for 300 s changes nothing.
                    501 => Failure::Permanent(format!(
                        "HTTP 501 {}: this S3 server does not implement the request",
                        code.unwrap_or_default()
                    )),
                    429 | 500..=599 => Failure::Transient(format!("HTTP {status} {}", code.unwrap_or_default())),
                    _ => Failure::Permanent(format!("HTTP {status}: {}", code.unwrap_or_else(|| truncate(body)))),
                }
            }
            S3Error::Credentials(e) => Failure::Permanent(format!("S3 credentials: {e}")),
            S3Error::UrlParse(e) => {
                Failure::Permanent(format!("s3.endpoint is not a valid URL: {e}"))
            }
            other => Failure::Transient(other.to_string()),
        }
    }

    /// Runs one S3 call, retrying transient failures with backoff until the deadline.
    /// Each attempt runs on a thread of its own and is given up after
    /// `s3.request_timeout_secs` (+1 s): the HTTP client's timeouts do not cover
    /// a server that accepts the connection and never answers. An abandoned
    /// attempt ends by itself at the client's 30 s read timeout.
    fn call<T: Send + 'static>(
        &self,
        what: &str,
        f: impl Fn(&Bucket) -> std::result::Result<T, S3Error> + Send + Sync + 'static,
    ) -> Result<Option<T>> {
        let f = std::sync::Arc::new(f);
        let limit = self.request_timeout + Duration::from_secs(1);
        let started = Instant::now();
        let deadline = started + self.retry_deadline;
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let (tx, rx) = std::sync::mpsc::channel();
            let (g, bucket) = (f.clone(), self.bucket.clone());
            std::thread::spawn(move || {
                let _ = tx.send(g(&bucket));
            });
            let outcome = rx.recv_timeout(limit).unwrap_or_else(|_| {
                Err(S3Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "no answer within {}s (s3.request_timeout_secs)",
                        self.request_timeout.as_secs()
                    ),
                )))
            });
            match outcome {
                Ok(v) => return Ok(Some(v)),
                Err(e) => match self.classify(&e) {
                    Failure::NotFound => return Ok(None),
                    Failure::Permanent(msg) => bail!("{what}: {msg}"),
                    Failure::Transient(msg) => {
                        if Instant::now() + delay > deadline {
                            bail!(
                                "{what}: still failing after {attempt} attempt(s) over {:.0}s (s3.retry_deadline_secs = {}): {msg}",
                                started.elapsed().as_secs_f64(),
                                self.retry_deadline.as_secs()
                            );
                        }
                        log::warn!("{what}: {msg}; retrying in {:.1}s", delay.as_secs_f64());
                        std::thread::sleep(delay);
                        delay = (delay * 2).min(Duration::from_secs(10));
                        attempt += 1;
                    }
                },
            }
        }
    }

    fn get_small(&self, key: &str) -> Result<Vec<u8>> {
        let full = self.full_key(key);
        let data = self
            .call(&format!("GET {}", self.url(key)), move |b| {
                b.get_object(&full)
            })?
            .ok_or_else(|| anyhow!("{} does not exist", self.url(key)))?;
        Ok(data.bytes().to_vec())
    }

    /// Stores a small standalone object under the prefix (a diagnostic bundle),
    /// with the same retries; returns its s3:// URL.
    pub fn put_blob(&self, key: &str, bytes: &[u8]) -> Result<String> {
        self.put_small(key, bytes)?;
        Ok(self.url(key))
    }

    fn put_small(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let full = self.full_key(key);
        let body = bytes.to_vec();
        self.call(&format!("PUT {}", self.url(key)), move |b| {
            b.put_object(&full, &body)
        })?
        .ok_or_else(|| anyhow!("PUT {}: not found", self.url(key)))?;
        Ok(())
    }

    fn delete_key(&self, key: &str) -> Result<()> {
        let full = self.full_key(key);
        self.call(&format!("DELETE {}", self.url(key)), move |b| {
            b.delete_object(&full)
        })?;
        Ok(())
    }

    /// Size and ETag (quotes removed) of a stored object.
    fn head(&self, key: &str) -> Result<Option<(u64, String)>> {
        let full = self.full_key(key);
        let head = self.call(&format!("HEAD {}", self.url(key)), move |b| {
            b.head_object(&full)
        })?;
        Ok(head.map(|(h, _)| {
            (
                h.content_length.unwrap_or(-1).max(0) as u64,
                h.e_tag.unwrap_or_default().trim_matches('"').to_string(),
            )
        }))
    }

    /// Streams an object through SHA-256 (read-back check).
    fn sha256_of(&self, key: &str) -> Result<(String, u64)> {
        let reader = self.stream(key);
        crate::stream::sha256_of(reader, None)
            .with_context(|| format!("reading back {}", self.url(key)))
    }

    /// A reader over an object, fed by ranged GETs on a thread. Each range is one
    /// request with its own `s3.request_timeout_secs` and retries (`call`): the HTTP
    /// client's timeout covers the whole response body, so a single GET of a large
    /// object read at restore speed would be cut off however healthy the store is.
    /// The next range is fetched while the reader consumes the current one; memory
    /// stays at a few ranges whatever the object's size.
    fn stream(&self, key: &str) -> RangeReader {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(1);
        let repo = self.clone();
        let key = key.to_string();
        std::thread::spawn(move || {
            let fetch = || -> Result<()> {
                let url = repo.url(&key);
                let (size, _) = repo
                    .head(&key)?
                    .ok_or_else(|| anyhow!("{url} does not exist"))?;
                for (start, end) in byte_ranges(size, GET_RANGE) {
                    let full = repo.full_key(&key);
                    let data = repo
                        .call(&format!("GET {url} (bytes {start}-{end})"), move |b| {
                            b.get_object_range(&full, start, Some(end))
                        })?
                        .ok_or_else(|| anyhow!("{url} disappeared while being read"))?;
                    let bytes = data.into_bytes();
                    if bytes.len() as u64 != end - start + 1 {
                        bail!(
                            "GET {url}: asked for bytes {start}-{end}, got {} bytes (the object changed while being read?)",
                            bytes.len()
                        );
                    }
                    if tx.send(Chunk::Data(Box::new(bytes))).is_err() {
                        return Ok(()); // the reader stopped reading
                    }
                }
                Ok(())
            };
            let last = match fetch() {
                Ok(()) => Chunk::End,
                Err(e) => Chunk::Failed(format!("{e:#}")),
            };
            let _ = tx.send(last);
        });
        RangeReader {
            rx,
            current: Box::new(Vec::new()),
            pos: 0,
            ended: false,
        }
    }

    /// Aborts the uploads that runs of this host started and never finished (their
    /// process is gone): stores without ListMultipartUploads keep them otherwise.
    fn abort_journaled(&self) -> Vec<String> {
        let Some(journal) = &self.journal else {
            return Vec::new();
        };
        let mut aborted = Vec::new();
        for (path, rec) in journal.stale(self.bucket.name().as_str()) {
            let url = format!("s3://{}/{}", rec.bucket, rec.key);
            let (key, id) = (rec.key.clone(), rec.upload_id.clone());
            match self.call(&format!("aborting the upload of {url}"), move |b| {
                b.abort_upload(&key, &id)
            }) {
                Ok(Some(())) => {
                    let _ = std::fs::remove_file(&path);
                    aborted.push(format!(
                        "{url} (upload {} of pid {}, started {})",
                        rec.upload_id, rec.pid, rec.started
                    ));
                }
                // An unknown upload (already completed or aborted): nothing left to do.
                Ok(None) => {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => log::warn!("{e:#}; trying again on the next run"),
            }
        }
        aborted
    }

    fn part_size_for(&self, part_number: u32) -> usize {
        let step = (part_number.saturating_sub(1) / PARTS_PER_SIZE_STEP).min(16);
        (self.part_size << step).min(MAX_PART)
    }
}

impl Repository for S3Repo {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket.name(), self.prefix)
    }

    fn list(&self) -> Result<(Vec<RepoEntry>, Vec<ListingWarning>)> {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let pages = self
            .call(&format!("LIST {}", self.location()), {
                let prefix = prefix.clone();
                move |b| b.list(prefix.clone(), None)
            })?
            .unwrap_or_default();
        let files: Vec<StoredFile> = pages
            .iter()
            .flat_map(|p| p.contents.iter())
            .filter_map(|o| {
                let key = o.key.strip_prefix(&prefix)?.to_string();
                is_listed_key(&key).then(|| StoredFile {
                    key,
                    size: o.size,
                    modified: DateTime::parse_from_rfc3339(&o.last_modified)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_else(|_| Utc::now()),
                })
            })
            .collect();
        Ok(build_listing(files, &|key| self.get_small(key), &|key| {
            self.url(key)
        }))
    }

    fn open_key(&self, key: &str) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.stream(key)))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let full = self.full_key(key);
        Ok(self
            .call(&format!("GET {}", self.url(key)), move |b| {
                b.get_object(&full)
            })?
            .map(|d| d.bytes().to_vec()))
    }

    fn remove_key(&self, key: &str) -> Result<()> {
        self.delete_key(key)
    }

    fn list_dir(&self, dir: &str) -> Result<Vec<StoredFile>> {
        let prefix = format!("{}/", self.full_key(dir));
        let pages = self
            .call(&format!("LIST {}", self.url(dir)), move |b| {
                b.list(prefix.clone(), Some("/".into()))
            })?
            .unwrap_or_default();
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        Ok(pages
            .iter()
            .flat_map(|p| p.contents.iter())
            .filter_map(|o| {
                Some(StoredFile {
                    key: o.key.strip_prefix(&strip)?.to_string(),
                    size: o.size,
                    modified: DateTime::parse_from_rfc3339(&o.last_modified)
                        .map(|t| t.with_timezone(&Utc))
                        .unwrap_or_else(|_| Utc::now()),
                })
            })
            .collect())
    }

    fn begin(
        &self,
        kind: BackupKind,
        id: &str,
        suffix: &str,
    ) -> Result<Box<dyn PendingObject + '_>> {
        let key = format!("{}/{id}{suffix}", kind.dir());
        if self.head(&key)?.is_some() {
            bail!("{} already exists; refusing to overwrite", self.url(&key));
        }
        Ok(Box::new(S3Pending {
            repo: self,
            buf: Vec::with_capacity(self.part_size),
            key,
            id: id.to_string(),
            kind,
            upload_id: None,
            parts: Vec::new(),
            part_md5s: Vec::new(),
            size: 0,
            sha: Sha256::default(),
            committed: false,
        }))
    }

    fn record_verification(&self, entry: &RepoEntry, rec: &VerificationRecord) -> Result<()> {
        if entry.legacy.is_some() {
            return Ok(());
        }
        self.put_small(
            &format!("{}/{}{VERIFIED_SUFFIX}", entry.kind.dir(), entry.id),
            &serde_json::to_vec_pretty(rec)?,
        )
    }

    fn delete(&self, entry: &RepoEntry) -> Result<()> {
        if entry.legacy.is_some() {
            bail!(
                "refusing to delete old-script backup {} automatically",
                entry.id
            );
        }
        let dir = entry.kind.dir();
        self.delete_key(&format!("{dir}/{}{MANIFEST_SUFFIX}", entry.id))?;
        self.delete_key(&entry.key)?;
        self.delete_key(&format!("{dir}/{}{VERIFIED_SUFFIX}", entry.id))
    }

    fn clean_partials(&self) -> Result<Vec<String>> {
        // Multipart uploads are invisible until completed and ours abort on failure;
        // uploads left by a killed run older than a day are aborted here. Others'
        // (other hosts share the bucket) in-progress uploads are younger and left alone.
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut aborted = self.abort_journaled();
        let listed = prefix.clone();
        let Ok(Some(pages)) = self.call("LIST multipart uploads", move |b| {
            b.list_multiparts_uploads(Some(&listed), None)
        }) else {
            return Ok(aborted);
        };
        for u in pages.iter().flat_map(|p| p.uploads.iter()) {
            let old = DateTime::parse_from_rfc3339(&u.initiated)
                .map(|t| Utc::now() - t.with_timezone(&Utc) > chrono::Duration::hours(24))
                .unwrap_or(false);
            if old && self.bucket.abort_upload(&u.key, &u.id).is_ok() {
                aborted.push(format!(
                    "s3://{}/{} (upload {})",
                    self.bucket.name(),
                    u.key,
                    u.id
                ));
            }
        }
        Ok(aborted)
    }
}

/// A multipart upload being written; aborted on drop unless committed.
struct S3Pending<'a> {
    repo: &'a S3Repo,
    buf: Vec<u8>,
    key: String,
    id: String,
    kind: BackupKind,
    upload_id: Option<String>,
    parts: Vec<Part>,
    part_md5s: Vec<[u8; 16]>,
    size: u64,
    sha: Sha256,
    committed: bool,
}

impl S3Pending<'_> {
    fn send_part(&mut self) -> Result<()> {
        let repo = self.repo;
        let full = repo.full_key(&self.key);
        let url = repo.url(&self.key);
        if self.upload_id.is_none() {
            let started = repo
                .call(&format!("starting upload of {url}"), {
                    let full = full.clone();
                    move |b| b.initiate_multipart_upload(&full, "application/octet-stream")
                })?
                .ok_or_else(|| anyhow!("starting upload of {url}: not found"))?;
            if let Some(j) = &repo.journal {
                j.note(repo.bucket.name().as_str(), &full, &started.upload_id);
            }
            self.upload_id = Some(started.upload_id);
        }
        let upload_id = self.upload_id.clone().expect("set above");
        let number = self.parts.len() as u32 + 1;
        let chunk = std::sync::Arc::new(std::mem::take(&mut self.buf));
        let part = repo
            .call(&format!("uploading part {number} of {url}"), {
                let chunk = chunk.clone();
                move |b| {
                    b.put_multipart_chunk(
                        &chunk,
                        &full,
                        number,
                        &upload_id,
                        "application/octet-stream",
                    )
                }
            })?
            .ok_or_else(|| anyhow!("uploading part {number} of {url}: upload vanished"))?;
        self.part_md5s.push(Md5::digest(chunk.as_slice()).into());
        self.parts.push(Part {
            etag: part.etag,
            part_number: number,
        });
        // An attempt given up on may still hold the chunk: then start a new buffer.
        self.buf = std::sync::Arc::try_unwrap(chunk).unwrap_or_default();
        self.buf.clear();
        Ok(())
    }

    /// Completes the upload and checks what the store holds against what we sent.
    fn finish_object(&mut self) -> Result<()> {
        let repo = self.repo;
        let url = repo.url(&self.key);
        let expected_etag = if self.upload_id.is_none() {
            let full = repo.full_key(&self.key);
            let body = std::mem::take(&mut self.buf);
            let md5 = hex::encode(Md5::digest(&body));
            repo.call(&format!("PUT {url}"), move |b| b.put_object(&full, &body))?
                .ok_or_else(|| anyhow!("PUT {url}: not found"))?;
            md5
        } else {
            if !self.buf.is_empty() || self.parts.is_empty() {
                self.send_part()?;
            }
            let full = repo.full_key(&self.key);
            let upload_id = self.upload_id.clone().expect("multipart");
            let parts = self.parts.clone();
            repo.call(&format!("completing upload of {url}"), move |b| {
                match b.complete_multipart_upload(&full, &upload_id, parts.clone()) {
                    // rust-s3 insists on AWS's `CompleteMultipartUploadResult` element;
                    // moto answers `...Response`. A 200 without an <Error> is a completed
                    // upload (checked below by size and ETag or a read-back anyway).
                    Err(S3Error::HttpFailWithBody(200, body))
                        if body.contains("<CompleteMultipartUpload")
                            && !body.contains("<Error>") =>
                    {
                        Ok(())
                    }
                    other => other.map(drop),
                }
            })?;
            let mut all = Md5::new();
            for m in &self.part_md5s {
                all.update(m);
            }
            format!("{}-{}", hex::encode(all.finalize()), self.parts.len())
        };
        self.committed = true; // the upload is complete: nothing to abort any more
        if let (Some(j), Some(id)) = (&repo.journal, &self.upload_id) {
            j.forget(id);
        }
        let (size, etag) = repo
            .head(&self.key)?
            .ok_or_else(|| anyhow!("{url} is missing right after upload"))?;
        if size != self.size {
            bail!(
                "{url} holds {size} bytes after upload, we sent {}",
                self.size
            );
        }
        if etag != expected_etag {
            // Some stores compute multipart ETags differently: read the object back instead.
            let sent = hex::encode(self.sha.clone().finalize());
            let (stored, n) = repo.sha256_of(&self.key)?;
            if stored != sent || n != self.size {
                bail!("{url} does not read back as sent (sha256 {stored}, sent {sent})");
            }
            log::debug!("{url}: ETag {etag} is not the parts' MD5; read-back SHA-256 matches");
        }
        Ok(())
    }
}

impl Write for S3Pending<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let target = self.repo.part_size_for(self.parts.len() as u32 + 1);
        let n = data.len().min(target - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        sha2::Digest::update(&mut self.sha, &data[..n]);
        self.size += n as u64;
        if self.buf.len() == target {
            self.send_part()
                .map_err(|e| io::Error::other(format!("{e:#}")))?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PendingObject for S3Pending<'_> {
    fn id(&self) -> &str {
        &self.id
    }
    fn kind(&self) -> BackupKind {
        self.kind
    }
    fn object_name(&self) -> String {
        self.key.rsplit('/').next().unwrap_or(&self.key).to_string()
    }
    fn commit(mut self: Box<Self>, manifest: &BackupManifest) -> Result<String> {
        let stored = hex::encode(self.sha.clone().finalize());
        if stored != manifest.digests.stored_sha256 || self.size != manifest.digests.stored_size {
            bail!(
                "bytes sent to {} do not match the manifest; not publishing",
                self.repo.url(&self.key)
            );
        }
        if let Err(e) = self.finish_object() {
            if self.committed {
                // Completed but wrong: remove it so nothing unverified stays under this name.
                let _ = self.repo.delete_key(&self.key);
            }
            return Err(e);
        }
        let manifest_key = format!("{}/{}{MANIFEST_SUFFIX}", self.kind.dir(), self.id);
        self.repo
            .put_small(&manifest_key, &serde_json::to_vec_pretty(manifest)?)?;
        Ok(self.repo.url(&self.key))
    }
}

impl Drop for S3Pending<'_> {
    fn drop(&mut self) {
        if let (false, Some(id)) = (self.committed, &self.upload_id) {
            let full = self.repo.full_key(&self.key);
            match self.repo.bucket.abort_upload(&full, id) {
                Ok(()) => {
                    if let Some(j) = &self.repo.journal {
                        j.forget(id);
                    }
                }
                Err(e) => log::warn!(
                    "could not abort the incomplete upload of {} ({e}); the next backup run aborts it",
                    self.repo.url(&self.key)
                ),
            }
        }
    }
}

/// One file per multipart upload in progress, in `paths.run_dir/s3-uploads`:
/// bucket, key, upload id and the PID of the run that started it. Best effort: a
/// journal that cannot be written never fails an upload (uploads older than a
/// day are still aborted from the store's own listing).
#[derive(Clone)]
struct UploadJournal {
    dir: std::path::PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct JournalRecord {
    bucket: String,
    key: String,
    upload_id: String,
    pid: u32,
    started: DateTime<Utc>,
}

impl UploadJournal {
    fn path(&self, upload_id: &str) -> std::path::PathBuf {
        let name = hex::encode(Sha256::digest(upload_id.as_bytes()));
        self.dir.join(format!("{}.json", &name[..32]))
    }

    fn note(&self, bucket: &str, key: &str, upload_id: &str) {
        let rec = JournalRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            upload_id: upload_id.to_string(),
            pid: std::process::id(),
            started: Utc::now(),
        };
        let written = std::fs::create_dir_all(&self.dir).and_then(|_| {
            std::fs::write(
                self.path(upload_id),
                serde_json::to_vec(&rec).unwrap_or_default(),
            )
        });
        if let Err(e) = written {
            log::debug!("cannot note the upload in {}: {e}", self.dir.display());
        }
    }

    fn forget(&self, upload_id: &str) {
        let _ = std::fs::remove_file(self.path(upload_id));
    }

    /// Records of `bucket` whose process is gone.
    fn stale(&self, bucket: &str) -> Vec<(std::path::PathBuf, JournalRecord)> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| {
                let rec: JournalRecord =
                    serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                let alive = std::path::Path::new(&format!("/proc/{}", rec.pid)).exists();
                (rec.bucket == bucket && !alive && rec.pid != std::process::id())
                    .then(|| (e.path(), rec))
            })
            .collect()
    }
}

/// What the download thread hands the reader.
enum Chunk {
    Data(Box<dyn AsRef<[u8]> + Send>),
    End,
    Failed(String),
}

/// Reads the chunks a download thread fetches; its error surfaces as a read error,
/// and a thread that vanished without saying `End` is an error, never a short object.
struct RangeReader {
    rx: std::sync::mpsc::Receiver<Chunk>,
    current: Box<dyn AsRef<[u8]> + Send>,
    pos: usize,
    ended: bool,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.as_ref().as_ref().len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Chunk::Data(v)) => (self.current, self.pos) = (v, 0),
                Ok(Chunk::End) => self.ended = true,
                Ok(Chunk::Failed(e)) => return Err(io::Error::other(e)),
                Err(_) => return Err(io::Error::other("the S3 download thread stopped")),
            }
        }
        let current = self.current.as_ref().as_ref();
        let n = buf.len().min(current.len() - self.pos);
        buf[..n].copy_from_slice(&current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Inclusive byte ranges of at most `step` bytes covering `0..size`.
fn byte_ranges(size: u64, step: u64) -> impl Iterator<Item = (u64, u64)> {
    (0..size)
        .step_by(step as usize)
        .map(move |start| (start, (start + step).min(size) - 1))
}

/// The `<Code>` of an S3 XML error body.
fn xml_code(body: &str) -> Option<String> {
    let start = body.find("<Code>")? + "<Code>".len();
    let end = body[start..].find("</Code>")? + start;
    Some(body[start..end].to_string())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repository object for unit tests (no request is made).
    fn test_repo() -> S3Repo {
        let cfg = S3Config {
            enabled: true,
            bucket: "b".into(),
            access_key_id: Some("k".into()),
            secret_access_key: Some(crate::config::Secret::new("s")),
            ..Default::default()
        };
        S3Repo::open(&cfg).unwrap()
    }

    #[test]
    fn error_codes_are_read_from_xml() {
        let body = "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>";
        assert_eq!(xml_code(body).as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(xml_code("plain"), None);
    }

    #[test]
    fn not_implemented_is_permanent_and_unavailable_is_retried() {
        let repo = test_repo();
        let body = "<Error><Code>NotImplemented</Code></Error>".to_string();
        assert!(matches!(
            repo.classify(&S3Error::HttpFailWithBody(501, body)),
            Failure::Permanent(m) if m.contains("does not implement")
        ));
        let body = "<Error><Code>SlowDown</Code></Error>".to_string();
        assert!(matches!(
            repo.classify(&S3Error::HttpFailWithBody(503, body)),
            Failure::Transient(_)
        ));
    }

    #[test]
    fn byte_ranges_cover_the_object_exactly_once() {
        assert_eq!(byte_ranges(0, 8).count(), 0);
        assert_eq!(byte_ranges(1, 8).collect::<Vec<_>>(), vec![(0, 0)]);
        assert_eq!(byte_ranges(8, 8).collect::<Vec<_>>(), vec![(0, 7)]);
        assert_eq!(
            byte_ranges(17, 8).collect::<Vec<_>>(),
            vec![(0, 7), (8, 15), (16, 16)]
        );
    }

    #[test]
    fn part_sizes_grow_so_ten_thousand_parts_hold_terabytes() {
        let repo = test_repo();
        assert_eq!(repo.part_size_for(1), 8 * MIB);
        assert_eq!(repo.part_size_for(1000), 8 * MIB);
        assert_eq!(repo.part_size_for(1001), 16 * MIB);
        let total: u64 = (1..=10_000).map(|n| repo.part_size_for(n) as u64).sum();
        assert!(
            total > 5 * 1024 * 1024 * 1024 * 1024,
            "10 000 parts hold {total} bytes"
        );
    }
}
