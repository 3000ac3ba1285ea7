//! The streaming pipeline between a plaintext source and a stored object:
//! plaintext -> SHA-256 -> compression -> gpg -> SHA-256 -> file, and back.
//!
//! Nothing is held whole in memory and no plaintext touches the disk. Both
//! directions count and hash the stored bytes and the plaintext ("content"),
//! so a verification checks every byte end to end.

use std::io::{self, Read, Write};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Compression;
use crate::crypto::Crypto;
use crate::progress::Progress;

/// Sizes and SHA-256 digests of what went through a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamDigests {
    pub stored_size: u64,
    pub stored_sha256: String,
    pub content_size: u64,
    pub content_sha256: String,
}

/// Counts and hashes bytes passing through a reader.
pub struct HashingReader<'a, R> {
    inner: R,
    hasher: &'a mut Sha256,
    count: &'a mut u64,
    progress: Option<&'a mut Progress>,
}

impl<'a, R: Read> HashingReader<'a, R> {
    pub fn new(
        inner: R,
        hasher: &'a mut Sha256,
        count: &'a mut u64,
        progress: Option<&'a mut Progress>,
    ) -> Self {
        HashingReader {
            inner,
            hasher,
            count,
            progress,
        }
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        if let Some(p) = self.progress.as_deref_mut() {
            p.inc(n as u64);
        }
        Ok(n)
    }
}

/// Counts and hashes bytes passing through a writer.
pub struct HashingWriter<'a, W> {
    inner: W,
    hasher: &'a mut Sha256,
    count: &'a mut u64,
}

impl<'a, W: Write> HashingWriter<'a, W> {
    pub fn new(inner: W, hasher: &'a mut Sha256, count: &'a mut u64) -> Self {
        HashingWriter {
            inner,
            hasher,
            count,
        }
    }
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        *self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compression settings of one pipeline.
#[derive(Debug, Clone, Copy)]
pub struct CompressionSpec {
    pub kind: Compression,
    pub level: Option<i32>,
    pub threads: u32,
}

impl CompressionSpec {
    pub fn level(&self) -> i32 {
        match (self.kind, self.level) {
            (_, Some(l)) => l,
            // Level 1: on two cores level 3 made a backup ~1.5x slower (3.7 s vs 2.5 s for a
            // 400 MB database, bench/RESULTS.md) and, on that data, no smaller.
            (Compression::Zstd, None) => 1,
            (Compression::Gzip, None) => 6,
            (Compression::None, None) => 0,
        }
    }

    /// File-name suffix: ".zst", ".gz" or "".
    pub fn suffix(&self) -> &'static str {
        suffix(self.kind)
    }

    fn reader<'r, R: Read + Send + 'r>(&self, inner: R) -> Result<Box<dyn Read + Send + 'r>> {
        Ok(match self.kind {
            Compression::Zstd => {
                let mut enc = zstd::stream::read::Encoder::new(inner, self.level())
                    .context("starting zstd")?;
                if self.threads > 0 {
                    enc.multithread(self.threads)
                        .context("zstd worker threads")?;
                    // 1 MiB jobs instead of zstd's default (several MiB at level 3,
                    // buffered a few times over): ~35 MiB less resident.
                    enc.set_parameter(zstd::stream::raw::CParameter::JobSize(1 << 20))
                        .context("zstd job size")?;
                }
                Box::new(enc)
            }
            Compression::Gzip => Box::new(flate2::read::GzEncoder::new(
                inner,
                flate2::Compression::new(self.level() as u32),
            )),
            Compression::None => Box::new(inner),
        })
    }
}

pub fn suffix(kind: Compression) -> &'static str {
    match kind {
        Compression::Zstd => ".zst",
        Compression::Gzip => ".gz",
        Compression::None => "",
    }
}

/// Plaintext `source` -> compression -> encryption -> `out`, hashing both ends.
pub fn encode<R: Read + Send, W: Write + Send>(
    source: R,
    compression: CompressionSpec,
    crypto: &Crypto,
    out: W,
    progress: Option<&mut Progress>,
) -> Result<StreamDigests> {
    let (mut content_hash, mut content_size) = (Sha256::new(), 0u64);
    let (mut stored_hash, mut stored_size) = (Sha256::new(), 0u64);
    {
        let plain = HashingReader::new(source, &mut content_hash, &mut content_size, progress);
        // Reading the source, hashing and compressing run on their own thread,
        // writing into a pipe that gpg reads: with all of it on the thread that
        // drives gpgme, each stage waited for the others (the source stalled while
        // gpg was fed, gpg idled while we compressed), and a backup took about
        // twice as long as `pg_dump | zstd | gpg` on two cores.
        let (compressed, mut pipe_in) = io::pipe().context("creating a pipe")?;
        enlarge_pipe(&pipe_in);
        let (compressing, encrypting) = std::thread::scope(|s| {
            let compressor = s.spawn(move || -> Result<()> {
                let mut reader = compression.reader(plain)?;
                io::copy(&mut reader, &mut pipe_in).context("compressing")?;
                Ok(())
            });
            let mut sink = HashingWriter::new(out, &mut stored_hash, &mut stored_size);
            let encrypting = crypto
                .encrypt(compressed, &mut sink)
                .and_then(|()| sink.flush().context("flushing the backup file"));
            let compressing = compressor
                .join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("compression thread panicked")));
            (compressing, encrypting)
        });
        // A source or compression error ends the pipe early, which gpg sees as a
        // normal end of input: that error decides, never a "successful" encryption.
        // When encryption fails first, the compressor's broken pipe is only a consequence.
        match (compressing, encrypting) {
            (Err(c), Ok(())) => return Err(c),
            (_, Err(e)) => return Err(e),
            (Ok(()), Ok(())) => {}
        }
    }
    Ok(StreamDigests {
        stored_size,
        stored_sha256: hex::encode(stored_hash.finalize()),
        content_size,
        content_sha256: hex::encode(content_hash.finalize()),
    })
}

/// Up to 1 MiB of pipe buffer between the compressor and gpg (64 KiB by default),
/// so short stalls on either side do not stop the other. Best effort.
fn enlarge_pipe(pipe: &io::PipeWriter) {
    use std::os::fd::AsRawFd;
    // SAFETY: F_SETPIPE_SZ on a pipe descriptor we own; failure only leaves the default size.
    unsafe {
        libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
}

/// A decompressor on the write side, so gpg's output can be pushed through it.
enum Decompressor<W: Write> {
    Zstd(zstd::stream::write::Decoder<'static, W>),
    // Boxed: the zlib-rs inflate state is large next to the other variants.
    Gzip(Box<flate2::write::MultiGzDecoder<W>>),
    Plain(W),
}

impl<W: Write> Decompressor<W> {
    fn new(kind: Compression, inner: W) -> Result<Self> {
        Ok(match kind {
            Compression::Zstd => Decompressor::Zstd(zstd::stream::write::Decoder::new(inner)?),
            Compression::Gzip => {
                Decompressor::Gzip(Box::new(flate2::write::MultiGzDecoder::new(inner)))
            }
            Compression::None => Decompressor::Plain(inner),
        })
    }

    /// Flushes and checks the stream ended on a complete frame / member.
    fn finish(self) -> io::Result<W> {
        match self {
            Decompressor::Zstd(d) => d.finish(),
            Decompressor::Gzip(d) => d.finish(),
            Decompressor::Plain(mut w) => {
                w.flush()?;
                Ok(w)
            }
        }
    }
}

impl<W: Write> Write for Decompressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Decompressor::Zstd(d) => d.write(buf),
            Decompressor::Gzip(d) => d.write(buf),
            Decompressor::Plain(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Decompressor::Zstd(d) => d.flush(),
            Decompressor::Gzip(d) => d.flush(),
            Decompressor::Plain(w) => w.flush(),
        }
    }
}

/// Stored bytes -> decryption -> decompression -> `sink`, hashing both ends.
/// Whatever reached `sink` before an error must be discarded.
pub fn decode<R: Read + Send, W: Write + Send>(
    stored: R,
    compression: Compression,
    encrypted: bool,
    crypto: &Crypto,
    sink: W,
    progress: Option<&mut Progress>,
) -> Result<StreamDigests> {
    let (mut content_hash, mut content_size) = (Sha256::new(), 0u64);
    let (mut stored_hash, mut stored_size) = (Sha256::new(), 0u64);
    {
        let mut input = HashingReader::new(stored, &mut stored_hash, &mut stored_size, progress);
        let plain = HashingWriter::new(sink, &mut content_hash, &mut content_size);
        let mut decompressor = Decompressor::new(compression, plain)?;
        if encrypted {
            crypto.decrypt(&mut input, &mut decompressor)?;
        } else {
            io::copy(&mut input, &mut decompressor).context("reading the stored object")?;
        }
        let mut plain = decompressor.finish().with_context(|| {
            format!("decompressing ({compression:?}): stream is truncated or corrupt")
        })?;
        plain.flush()?;
        // Anything after the compressed stream is still part of the stored bytes.
        io::copy(&mut input, &mut io::sink())?;
    }
    Ok(StreamDigests {
        stored_size,
        stored_sha256: hex::encode(stored_hash.finalize()),
        content_size,
        content_sha256: hex::encode(content_hash.finalize()),
    })
}

/// SHA-256 and size of a whole reader.
pub fn sha256_of(mut r: impl Read, progress: Option<&mut Progress>) -> io::Result<(String, u64)> {
    let (mut h, mut n) = (Sha256::new(), 0u64);
    let mut reader = HashingReader::new(&mut r, &mut h, &mut n, progress);
    io::copy(&mut reader, &mut io::sink())?;
    Ok((hex::encode(h.finalize()), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EncryptionConfig, EncryptionMode};

    fn plain_crypto() -> Crypto {
        let cfg = EncryptionConfig {
            mode: EncryptionMode::None,
            ..Default::default()
        };
        Crypto::for_encrypt(&cfg).unwrap()
    }

    #[test]
    fn round_trip_each_compression_without_encryption() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let crypto = plain_crypto();
        for kind in [Compression::Zstd, Compression::Gzip, Compression::None] {
            let spec = CompressionSpec {
                kind,
                level: None,
                threads: 0,
            };
            let mut stored = Vec::new();
            let enc = encode(&data[..], spec, &crypto, &mut stored, None).unwrap();
            assert_eq!(enc.stored_size, stored.len() as u64);
            assert_eq!(enc.content_size, data.len() as u64);
            let mut back = Vec::new();
            let dec = decode(&stored[..], kind, false, &crypto, &mut back, None).unwrap();
            assert_eq!(back, data);
            assert_eq!(dec, enc, "{kind:?}");
        }
    }

    #[test]
    fn truncated_zstd_is_an_error() {
        let crypto = plain_crypto();
        let data = vec![7u8; 100_000];
        let spec = CompressionSpec {
            kind: Compression::Zstd,
            level: None,
            threads: 0,
        };
        let mut stored = Vec::new();
        encode(&data[..], spec, &crypto, &mut stored, None).unwrap();
        stored.truncate(stored.len() - 3);
        assert!(decode(
            &stored[..],
            Compression::Zstd,
            false,
            &crypto,
            io::sink(),
            None
        )
        .is_err());
    }
}
