//! Health-check vocabulary and host readings: check states and their order,
//! thresholds in percent or absolute units, Nagios perfdata, and what the
//! kernel says about disks (statvfs on the path itself, so a bind mount or a
//! subdirectory resolves to the filesystem that really holds it), memory
//! (/proc/meminfo MemAvailable) and load (/proc/loadavg). `health` judges
//! these; `diagnose` records them.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::exit::ExitCode;

/// A check's state, in the monitoring-plugins convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    /// The check could not decide (a reading failed, a timeout on a local read, bad input).
    Unknown,
}

impl Status {
    /// Severity for "the worst check": OK < WARNING < UNKNOWN < CRITICAL
    /// (a known outage outranks a check that could not decide).
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }

    pub fn worst(self, other: Status) -> Status {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    pub fn exit_code(self) -> ExitCode {
        match self {
            Status::Ok => ExitCode::Success,
            Status::Warning => ExitCode::Warning,
            Status::Critical => ExitCode::Failed,
            Status::Unknown => ExitCode::CouldNotStart,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }

    /// 0/1/2/3, as in the exit code and the Prometheus gauge.
    pub fn number(self) -> u8 {
        self.exit_code().code() as u8
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A warning or critical level: a share of the total ("80%": used at or above
/// it), or an absolute amount ("5GiB", "10000": available below it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Threshold {
    UsedPercent(f64),
    AvailableBelow(f64),
}

impl Threshold {
    /// `bytes`: whether absolute values may carry a size unit (KiB, MiB, GiB, TiB, K, M, G, T; powers of 1024).
    pub fn parse(text: &str, bytes: bool) -> Result<Threshold> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p
                .trim()
                .parse()
                .with_context(|| format!("{text:?} is not a percentage"))?;
            if !(0.0..=100.0).contains(&v) {
                bail!("{text:?}: a percentage must be 0..100");
            }
            return Ok(Threshold::UsedPercent(v));
        }
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let v: f64 = num.parse().with_context(|| {
            format!(
                "{text:?} is neither a percentage (\"80%\") nor an amount (\"5GiB\", \"10000\")"
            )
        })?;
        let mult = match unit.trim() {
            "" => 1.0,
            u if bytes => match u.trim_end_matches(['B', 'b']).trim_end_matches('i') {
                "" => 1.0,
                "K" | "k" => 1024.0,
                "M" | "m" => 1024f64.powi(2),
                "G" | "g" => 1024f64.powi(3),
                "T" | "t" => 1024f64.powi(4),
                _ => bail!("{text:?}: unknown unit {u:?} (use KiB, MiB, GiB or TiB)"),
            },
            u => bail!("{text:?}: unexpected unit {u:?} (a count, or a percentage)"),
        };
        Ok(Threshold::AvailableBelow(v * mult))
    }

    /// Whether a reading (`used` of `total`, `avail` available) crosses this level.
    pub fn crossed(&self, used: f64, avail: f64, total: f64) -> bool {
        match *self {
            Threshold::UsedPercent(p) => total > 0.0 && used / total * 100.0 >= p,
            Threshold::AvailableBelow(a) => avail < a,
        }
    }

    /// The level expressed as "used" amount, for perfdata (`value > level` alerts).
    pub fn as_used(&self, total: f64) -> f64 {
        match *self {
            Threshold::UsedPercent(p) => total * p / 100.0,
            Threshold::AvailableBelow(a) => (total - a).max(0.0),
        }
    }
}

/// Judges a reading against a warning and a critical level.
pub fn judge(warn: &Threshold, crit: &Threshold, used: f64, avail: f64, total: f64) -> Status {
    if crit.crossed(used, avail, total) {
        Status::Critical
    } else if warn.crossed(used, avail, total) {
        Status::Warning
    } else {
        Status::Ok
    }
}

/// One Nagios performance datum: `'label'=value[UOM];[warn];[crit];[min];[max]`.
#[derive(Debug, Clone, Serialize)]
pub struct PerfDatum {
    pub label: String,
    pub value: f64,
    pub uom: &'static str,
    pub warn: Option<f64>,
    pub crit: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl PerfDatum {
    pub fn new(label: impl Into<String>, value: f64, uom: &'static str) -> PerfDatum {
        PerfDatum {
            label: label.into(),
            value,
            uom,
            warn: None,
            crit: None,
            min: None,
            max: None,
        }
    }
    pub fn levels(mut self, warn: f64, crit: f64) -> PerfDatum {
        self.warn = Some(warn);
        self.crit = Some(crit);
        self
    }
    pub fn range(mut self, min: f64, max: Option<f64>) -> PerfDatum {
        self.min = Some(min);
        self.max = max;
        self
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

impl fmt::Display for PerfDatum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map(num).unwrap_or_default();
        let mut s = format!(
            "'{}'={}{};{};{};{};{}",
            self.label.replace('\'', "''"),
            num(self.value),
            self.uom,
            opt(self.warn),
            opt(self.crit),
            opt(self.min),
            opt(self.max)
        );
        while s.ends_with(';') {
            s.pop();
        }
        f.write_str(&s)
    }
}

/// `1.5 GiB` etc.
pub fn human_bytes(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", v as u64)
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Space and inodes of the filesystem holding a path, as a non-root user sees them.
#[derive(Debug, Clone, Serialize)]
pub struct DiskUsage {
    pub path: PathBuf,
    /// Where that filesystem is mounted, and its type (from /proc/self/mountinfo).
    pub mount_point: Option<PathBuf>,
    pub fs_type: Option<String>,
    /// used + available: the size a non-root user can fill (df's "Size" minus nothing, on df's basis).
    pub size_bytes: u64,
    pub used_bytes: u64,
    /// f_bavail: available to non-root users (root's reserve excluded).
    pub avail_bytes: u64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_free: u64,
}

impl DiskUsage {
    /// statvfs(2) on the path itself.
    pub fn of(path: &Path) -> Result<DiskUsage> {
        let c = CString::new(path.as_os_str().as_bytes())
            .with_context(|| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: statvfs writes into the zeroed struct we own; the path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            let e = std::io::Error::last_os_error();
            bail!("statvfs {}: {e}", path.display());
        }
        let frsize = if st.f_frsize > 0 {
            st.f_frsize as u64
        } else {
            st.f_bsize as u64
        };
        let used = (st.f_blocks as u64).saturating_sub(st.f_bfree as u64) * frsize;
        let avail = st.f_bavail as u64 * frsize;
        let (mount_point, fs_type) = match mount_of(path) {
            Some((m, t)) => (Some(m), Some(t)),
            None => (None, None),
        };
        let files = st.f_files as u64;
        let ffree = st.f_ffree as u64;
        Ok(DiskUsage {
            path: path.to_path_buf(),
            mount_point,
            fs_type,
            size_bytes: used + avail,
            used_bytes: used,
            avail_bytes: avail,
            inodes_total: files,
            inodes_used: files.saturating_sub(ffree),
            inodes_free: st.f_favail as u64,
        })
    }

    pub fn used_percent(&self) -> f64 {
        if self.size_bytes == 0 {
            0.0
        } else {
            self.used_bytes as f64 * 100.0 / self.size_bytes as f64
        }
    }

    pub fn inodes_used_percent(&self) -> Option<f64> {
        (self.inodes_total > 0).then(|| self.inodes_used as f64 * 100.0 / self.inodes_total as f64)
    }
}

/// Mount point and type of the mount holding `path`: the longest mount point
/// that is a prefix of its canonical path.
pub fn mount_of(path: &Path) -> Option<(PathBuf, String)> {
    let real = std::fs::canonicalize(path).ok()?;
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mountinfo(&text)
        .into_iter()
        .filter(|m| real.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .map(|m| (m.mount_point, m.fs_type))
}

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, Serialize)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    pub options: String,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let unescape = |s: &str| {
        // Spaces, tabs, newlines and backslashes are octal-escaped (\040).
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\'
                && i + 3 < b.len()
                && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            {
                out.push(u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?'));
                i += 4;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                mount_point: PathBuf::from(unescape(l.get(4)?)),
                options: l.get(5).unwrap_or(&"").to_string(),
                fs_type: r.first()?.to_string(),
                source: unescape(r.get(1).unwrap_or(&"")),
            })
        })
        .collect()
}

/// MemTotal and MemAvailable from /proc/meminfo, in bytes.
#[derive(Debug, Clone, Serialize)]
pub struct MemInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}

impl MemInfo {
    pub fn read() -> Result<MemInfo> {
        let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
        MemInfo::parse(&text)
    }

    pub fn parse(text: &str) -> Result<MemInfo> {
        let field = |name: &str| -> Option<u64> {
            text.lines().find_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix(':')?;
                let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
                Some(kb * 1024)
            })
        };
        let total = field("MemTotal").context("/proc/meminfo has no MemTotal")?;
        // MemAvailable (kernel 3.14+) is the kernel's estimate of what can be allocated
        // without swapping; "free" memory alone ignores reclaimable page cache.
        let available = field("MemAvailable")
            .context("/proc/meminfo has no MemAvailable (kernel before 3.14)")?;
        Ok(MemInfo {
            total_bytes: total,
            available_bytes: available,
            swap_total_bytes: field("SwapTotal").unwrap_or(0),
            swap_free_bytes: field("SwapFree").unwrap_or(0),
        })
    }

    pub fn used_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.available_bytes)
    }
}

/// /proc/loadavg and the number of online cores.
#[derive(Debug, Clone, Serialize)]
pub struct LoadAvg {
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub cores: u32,
}

impl LoadAvg {
    pub fn read() -> Result<LoadAvg> {
        let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
        let v: Vec<f64> = text
            .split_whitespace()
            .take(3)
            .map(|x| x.parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("/proc/loadavg: unexpected {:?}", text.trim()))?;
        if v.len() != 3 {
            bail!("/proc/loadavg: unexpected {:?}", text.trim());
        }
        // SAFETY: sysconf has no preconditions.
        let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u32;
        Ok(LoadAvg {
            load1: v[0],
            load5: v[1],
            load15: v[2],
            cores,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_percent_and_amounts() {
        assert_eq!(
            Threshold::parse("80%", true).unwrap(),
            Threshold::UsedPercent(80.0)
        );
        assert_eq!(
            Threshold::parse("5GiB", true).unwrap(),
            Threshold::AvailableBelow(5.0 * 1024f64.powi(3))
        );
        assert_eq!(
            Threshold::parse("512M", true).unwrap(),
            Threshold::AvailableBelow(512.0 * 1024f64.powi(2))
        );
        assert_eq!(
            Threshold::parse("10000", false).unwrap(),
            Threshold::AvailableBelow(10000.0)
        );
        assert!(Threshold::parse("120%", true).is_err());
        assert!(
            Threshold::parse("5GiB", false).is_err(),
            "inodes have no size unit"
        );
        assert!(Threshold::parse("lots", true).is_err());
    }

    #[test]
    fn judging_uses_the_same_basis_for_state_and_numbers() {
        let w = Threshold::UsedPercent(80.0);
        let c = Threshold::AvailableBelow(100.0);
        assert_eq!(judge(&w, &c, 50.0, 950.0, 1000.0), Status::Ok);
        assert_eq!(judge(&w, &c, 800.0, 200.0, 1000.0), Status::Warning);
        assert_eq!(judge(&w, &c, 950.0, 50.0, 1000.0), Status::Critical);
        assert_eq!(w.as_used(1000.0), 800.0);
        assert_eq!(c.as_used(1000.0), 900.0);
    }

    #[test]
    fn worst_ranks_critical_above_unknown_above_warning() {
        assert_eq!(Status::Ok.worst(Status::Warning), Status::Warning);
        assert_eq!(Status::Warning.worst(Status::Unknown), Status::Unknown);
        assert_eq!(Status::Critical.worst(Status::Unknown), Status::Critical);
        assert_eq!(Status::Unknown.exit_code().code(), 3);
    }

    #[test]
    fn perfdata_follows_the_plugin_format() {
        let p = PerfDatum::new("disk /", 812.0, "B")
            .levels(800.0, 900.0)
            .range(0.0, Some(1000.0));
        assert_eq!(p.to_string(), "'disk /'=812B;800;900;0;1000");
        let q = PerfDatum::new("it's", 0.125, "s");
        assert_eq!(q.to_string(), "'it''s'=0.125s");
        let r = PerfDatum::new("load1", 1.5, "").range(0.0, None);
        assert_eq!(r.to_string(), "'load1'=1.5;;;0");
    }

    #[test]
    fn meminfo_and_mountinfo_parse() {
        let m = MemInfo::parse(
            "MemTotal:       8000000 kB\nMemFree: 100 kB\nMemAvailable:   2000000 kB\n",
        )
        .unwrap();
        assert_eq!(m.total_bytes, 8_000_000 * 1024);
        assert_eq!(m.used_bytes(), 6_000_000 * 1024);
        let mi = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n",
        );
        assert_eq!(mi[0].mount_point, PathBuf::from("/mnt two"));
        assert_eq!(mi[0].fs_type, "ext3");
        assert_eq!(mi[0].source, "/dev/root");
    }

    #[test]
    fn disk_usage_of_a_subdirectory_is_its_filesystem() {
        let dir = tempfile::tempdir().unwrap();
        let d = DiskUsage::of(dir.path()).unwrap();
        let parent = DiskUsage::of(dir.path().parent().unwrap()).unwrap();
        assert_eq!(d.size_bytes, parent.size_bytes);
        assert!(d.mount_point.is_some());
        assert!(DiskUsage::of(Path::new("/nonexistent/x")).is_err());
    }
}
