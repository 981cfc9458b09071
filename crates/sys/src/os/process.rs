//! This process's own facts for the `process_*` metrics, read from `/proc` as the Prometheus
//! client libraries do: resident memory, CPU time, open descriptors, start time.

use std::path::Path;

/// What `/proc` says of this process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Facts {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: Option<u64>,
    /// Seconds since the epoch.
    pub start_time_seconds: u64,
}

/// This process's facts; `None` where `/proc` is not mounted.
#[must_use]
pub fn current() -> Option<Facts> {
    let read = |p: &str, cap: u64| {
        crate::readfile::read(Path::new(p), cap, false)
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    };
    let stat = read("/proc/self/stat", 4096)?;
    // /proc/stat has a line per CPU: a few KiB, some hundreds on the largest hosts.
    let boot = read("/proc/stat", 1 << 20)?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count().saturating_sub(1) as u64); // the listing's own descriptor
    let mut f = parse(&stat, &boot, rustix::param::clock_ticks_per_second())?;
    f.resident_bytes = f
        .resident_bytes
        .saturating_mul(rustix::param::page_size() as u64);
    f.open_fds = open_fds;
    Some(f)
}

/// `/proc/self/stat` and `/proc/stat` read: `resident_bytes` still in pages.
fn parse(stat: &str, proc_stat: &str, ticks: u64) -> Option<Facts> {
    // The command name is in parentheses and may hold anything, spaces and ")" too: the
    // fields start after the last ")". Numbered as proc(5) numbers them, state is field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let ticks = ticks.max(1);
    let btime: u64 = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    #[allow(clippy::cast_precision_loss)] // clock ticks of CPU time: far below 2^52
    let cpu_seconds = (field(14)? + field(15)?) as f64 / ticks as f64;
    Some(Facts {
        resident_bytes: field(24)?,
        cpu_seconds,
        open_fds: None,
        start_time_seconds: btime + field(22)? / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_come_after_the_last_parenthesis() {
        let stat = "4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 \
                    12345 20000000 1500 18446744073709551615";
        let f = parse(stat, "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n", 100).unwrap();
        assert_eq!(f.resident_bytes, 1500);
        assert!((f.cpu_seconds - 3.0).abs() < 1e-9, "(250 + 50) / 100");
        assert_eq!(f.start_time_seconds, 1_700_000_000 + 123);
        assert!(parse("garbage", "btime 1", 100).is_none());
        assert!(parse(stat, "no boot time here", 100).is_none());
    }

    #[test]
    fn this_process_has_memory_descriptors_and_a_start() {
        let f = current().unwrap();
        assert!(f.resident_bytes > 1 << 20, "{f:?}");
        assert!(f.open_fds.is_some_and(|n| n >= 3), "{f:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(f.start_time_seconds <= now && f.start_time_seconds > now - 86_400 * 365);
    }
}
