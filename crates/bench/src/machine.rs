//! What the numbers were measured on, per-process CPU, disk and memory counters read from
//! `/proc`, and the disk space a data directory takes. Both servers share two cores with the
//! load generator, so CPU per operation is as telling as throughput.

use std::{fs, os::unix::fs::MetadataExt, path::Path};

use serde::Serialize;

/// Linux reports process times in clock ticks; this is `sysconf(_SC_CLK_TCK)` on every Linux
/// architecture the benchmark targets.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub kernel: String,
    pub cpu: String,
    pub load_average: String,
    pub data_dir: String,
    pub data_filesystem: String,
}

impl Machine {
    pub fn detect(data_dir: &Path) -> Machine {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let load_average = read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu,
            load_average,
            data_dir: data_dir.display().to_string(),
            data_filesystem: filesystem_of(data_dir, &read("/proc/mounts"))
                .unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// The type of the filesystem holding `path`: the mount with the longest matching prefix.
fn filesystem_of(path: &Path, mounts: &str) -> Option<String> {
    let path = path.canonicalize().ok()?;
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, point, kind) = (fields.next()?, fields.next()?, fields.next()?);
            // Mount points escape spaces as \040.
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// Cumulative counters of one process.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcCounters {
    /// User plus system CPU seconds, over all threads.
    pub cpu_secs: f64,
    /// Bytes the process caused to be sent to the block layer.
    pub disk_write_bytes: u64,
}

impl ProcCounters {
    /// Reads the counters of `pid`, or of this process with `None`. Missing files read as zero:
    /// the counters then only make the report less informative, never wrong in the tables.
    pub fn read(pid: Option<u32>) -> ProcCounters {
        let dir = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
        let stat = fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
        let io = fs::read_to_string(format!("{dir}/io")).unwrap_or_default();
        ProcCounters {
            cpu_secs: cpu_secs_from_stat(&stat).unwrap_or(0.0),
            disk_write_bytes: io
                .lines()
                .find_map(|line| line.strip_prefix("write_bytes:"))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0),
        }
    }

    pub fn since(self, earlier: ProcCounters) -> ProcCounters {
        ProcCounters {
            cpu_secs: (self.cpu_secs - earlier.cpu_secs).max(0.0),
            disk_write_bytes: self
                .disk_write_bytes
                .saturating_sub(earlier.disk_write_bytes),
        }
    }
}

/// The resident set size of `pid` in bytes (`VmRSS` in `/proc/<pid>/status`), if readable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss_bytes(&status)
}

fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

/// Disk space the files under `dir` take, as `du` counts it (allocated blocks, so sparse or
/// preallocated files count for what they really occupy). Unreadable entries count as zero.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// utime + stime from `/proc/<pid>/stat`. The command name may contain spaces and parentheses,
/// so fields are counted from the last `)`.
fn cpu_secs_from_stat(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name come state (field 3) … utime (field 14) and stime (field 15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_awkward_command_name() {
        let stat = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 8 0 100";
        assert_eq!(cpu_secs_from_stat(stat), Some(3.0));
        assert_eq!(cpu_secs_from_stat("garbage"), None);
    }

    #[test]
    fn own_counters_are_readable() {
        let counters = ProcCounters::read(None);
        assert!(counters.cpu_secs >= 0.0);
        assert!(rss_bytes(std::process::id()).is_some_and(|rss| rss > 0));
    }

    #[test]
    fn rss_and_disk_usage() {
        let status = "Name:\tmayfly\nVmPeak:\t  9 kB\nVmRSS:\t   2048 kB\n";
        assert_eq!(vm_rss_bytes(status), Some(2048 * 1024));
        assert_eq!(vm_rss_bytes("Name: x\n"), None);
        let dir = tempfile::tempdir().expect("a temporary directory");
        fs::create_dir(dir.path().join("sub")).expect("mkdir");
        fs::write(dir.path().join("sub/a"), vec![1u8; 10_000]).expect("write");
        assert!(disk_usage(dir.path()) >= 10_000);
    }

    #[test]
    fn longest_mount_wins() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";
        assert_eq!(
            filesystem_of(Path::new("/"), mounts).as_deref(),
            Some("ext4")
        );
        let tmp = std::env::temp_dir();
        if tmp.canonicalize().is_ok_and(|p| p.starts_with("/tmp")) {
            assert_eq!(filesystem_of(&tmp, mounts).as_deref(), Some("tmpfs"));
        }
    }
}
