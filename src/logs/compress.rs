//! Writes an archive from a byte range of a file: streamed through gzip
//! (flate2), zstd or nothing into a nameless temporary file in the archive
//! directory, fsynced, then read back and decoded in full and its CRC-32 and
//! length compared with the source's, and only then given its name (link,
//! never replacing an existing file). Memory stays bounded (a few buffers).

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::fsops::{self, TempFile};
use crate::config::Compression;

const BUF: usize = 256 * 1024;

/// Reads `[pos, end)` of a file with positional reads (the descriptor's offset
/// is left alone, so one file can be read by several threads).
pub struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl<'a> RangeReader<'a> {
    pub fn new(file: &'a File, start: u64, end: u64) -> Self {
        RangeReader {
            file,
            pos: start,
            end,
        }
    }
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended at {} bytes, {} expected",
                    self.pos, self.end
                ),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Counts and checksums what passes through.
struct Crc<R> {
    inner: R,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<R: Read> Read for Crc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// What the archive is made of and how.
pub struct Encoding {
    pub compression: Compression,
    pub level: Option<i32>,
}

/// An archive written and verified, not yet named.
pub struct Verified {
    pub temp: TempFile,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Owner, group, mode and modification time the archive gets (the log's).
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub mtime: (i64, i64),
}

/// Encodes `[0, len)` of `src` into a temporary file in `dir` and verifies it.
/// `inner_name` goes into the gzip header (what `gzip -dN` would restore).
pub fn encode_verified(
    src: &File,
    len: u64,
    dir: &Path,
    enc: &Encoding,
    inner_name: &str,
    stamp: Stamp,
) -> Result<Verified> {
    let temp = fsops::tmpfile_in(dir, 0o600)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut reader = Crc {
        inner: RangeReader::new(src, 0, len),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    let out = BufWriter::with_capacity(BUF, &temp.file);
    match enc.compression {
        Compression::Gzip => {
            let level = enc.level.unwrap_or(6) as u32;
            let mut e = flate2::GzBuilder::new()
                .filename(inner_name.as_bytes())
                .mtime(stamp.mtime.0.clamp(0, u32::MAX as i64) as u32)
                .write(out, flate2::Compression::new(level));
            copy(&mut reader, &mut e)?;
            e.finish()?.flush()?;
        }
        Compression::Zstd => {
            let mut e = zstd::stream::write::Encoder::new(out, enc.level.unwrap_or(3))?;
            e.include_checksum(true)?;
            copy(&mut reader, &mut e)?;
            e.finish()?.flush()?;
        }
        Compression::None => {
            let mut out = out;
            copy(&mut reader, &mut out)?;
            out.flush()?;
        }
    }
    let (want_crc, want_len) = (reader.crc.finalize(), reader.len);
    temp.file.sync_all().context("fsync of the archive")?;
    let bytes_out = temp.file.metadata()?.len();

    let (got_crc, got_len) =
        decode_crc(&temp.file, bytes_out, enc.compression).context("reading the archive back")?;
    if (got_crc, got_len) != (want_crc, want_len) {
        bail!(
            "the archive does not decode to its source: {got_len} bytes with CRC-32 {got_crc:08x}, expected {want_len} bytes with {want_crc:08x}"
        );
    }
    fsops::set_owner_mode(&temp.file, stamp.uid, stamp.gid, stamp.mode)
        .context("setting the archive's owner and mode")?;
    fsops::set_mtime(&temp.file, stamp.mtime.0, stamp.mtime.1)?;
    Ok(Verified {
        temp,
        bytes_in: want_len,
        bytes_out,
    })
}

fn copy(r: &mut impl Read, w: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Decodes a whole archive: (CRC-32, length) of its content. Trailing bytes after the stream are an error.
pub fn decode_crc(file: &File, len: u64, c: Compression) -> Result<(u32, u64)> {
    let input = BufReader::with_capacity(BUF, RangeReader::new(file, 0, len));
    let mut sink = Crc {
        inner: io::empty(),
        crc: crc32fast::Hasher::new(),
        len: 0,
    };
    let mut feed = |r: &mut dyn Read| -> io::Result<()> {
        let mut buf = vec![0u8; BUF];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            sink.crc.update(&buf[..n]);
            sink.len += n as u64;
        }
    };
    match c {
        Compression::Gzip => {
            let mut d = flate2::bufread::GzDecoder::new(input);
            feed(&mut d)?;
            if !d.into_inner().fill_buf()?.is_empty() {
                bail!("trailing bytes after the gzip stream");
            }
        }
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(input)?.single_frame();
            feed(&mut d)?;
            if !d.finish().fill_buf()?.is_empty() {
                bail!("trailing bytes after the zstd frame");
            }
        }
        Compression::None => {
            let mut input = input;
            feed(&mut input)?;
        }
    }
    Ok((sink.crc.finalize(), sink.len))
}

/// Names a verified archive with the first of `names` that is free (never
/// replacing one), fsyncs the directory, and returns the path.
pub fn publish(
    v: Verified,
    dir: &Path,
    names: impl IntoIterator<Item = String>,
) -> Result<PathBuf> {
    let mut temp = v.temp;
    for name in names {
        match temp.link_as(&name) {
            Ok((_, path)) => {
                fsops::fsync_dir(dir).with_context(|| format!("fsync of {}", dir.display()))?;
                return Ok(path);
            }
            Err((t, e)) if e.kind() == io::ErrorKind::AlreadyExists => temp = t,
            Err((_, e)) => {
                return Err(e).with_context(|| format!("linking {}", dir.join(&name).display()))
            }
        }
    }
    bail!("no free archive name in {}", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
            mode: 0o640,
            mtime: (1_700_000_000, 0),
        }
    }

    #[test]
    fn each_encoding_round_trips_and_gzip_passes_gzip_t() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("a.log");
        let text: String = (0..50_000)
            .map(|i| format!("line {i} some text\n"))
            .collect();
        std::fs::write(&src_path, &text).unwrap();
        let src = File::open(&src_path).unwrap();
        let len = text.len() as u64;
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let v = encode_verified(
                &src,
                len,
                dir.path(),
                &Encoding {
                    compression: c,
                    level: None,
                },
                "a.log",
                stamp(),
            )
            .unwrap();
            assert_eq!(v.bytes_in, len);
            let name = format!("a.log-x{}", super::super::naming::suffix(c));
            let path = publish(v, dir.path(), [name.clone()]).unwrap();
            let f = File::open(&path).unwrap();
            let (crc, n) = decode_crc(&f, f.metadata().unwrap().len(), c).unwrap();
            assert_eq!((crc, n), (crc32fast::hash(text.as_bytes()), len));
            if c == Compression::Gzip {
                let st = std::process::Command::new("gzip")
                    .arg("-t")
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(st.success());
            }
        }
    }

    #[test]
    fn a_taken_name_moves_on_to_the_next_and_replaces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src_path = dir.path().join("a.log");
        std::fs::write(&src_path, b"hello\n").unwrap();
        std::fs::write(dir.path().join("first"), b"keep me").unwrap();
        let src = File::open(&src_path).unwrap();
        let v = encode_verified(
            &src,
            6,
            dir.path(),
            &Encoding {
                compression: Compression::None,
                level: None,
            },
            "a.log",
            stamp(),
        )
        .unwrap();
        let p = publish(v, dir.path(), ["first".to_string(), "second".to_string()]).unwrap();
        assert_eq!(p, dir.path().join("second"));
        assert_eq!(std::fs::read(dir.path().join("first")).unwrap(), b"keep me");
        assert_eq!(std::fs::read(p).unwrap(), b"hello\n");
    }

    #[test]
    fn a_truncated_gzip_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&vec![b'a'; 100_000]).unwrap();
        let mut bytes = e.finish().unwrap();
        bytes.truncate(bytes.len() - 4);
        std::fs::write(&p, &bytes).unwrap();
        let f = File::open(&p).unwrap();
        assert!(decode_crc(&f, bytes.len() as u64, Compression::Gzip).is_err());
    }
}
