//! How trustworthy a target dir's last-use times are.
//!
//! A unit's last use is the newest access of its fingerprint files. Whether the kernel
//! records accesses depends on the mount: `strictatime` always, `relatime` (Linux's default)
//! at least once a day (an access updates atime when it is older than mtime or than 24 h),
//! `noatime` never. On `noatime` the last use is unknown, and unknown must never read as old:
//! the stale rule stays off there, and budgets order units by their last build instead.

use std::path::Path;

use crate::os::disk;
use cachekeeper_core::model::Signal;

/// The signal for a path, from the options of the mount that holds it.
#[must_use]
pub(crate) fn for_path(path: &Path) -> Signal {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    disk::mountinfo()
        .and_then(|info| mount_options(&info, &real))
        .map_or(Signal::Relatime, |opts| from_options(&opts))
}

fn from_options(opts: &str) -> Signal {
    let has = |o: &str| opts.split(',').any(|x| x == o);
    if has("noatime") {
        Signal::BuildTimeOnly
    } else if has("relatime") {
        Signal::Relatime
    } else {
        Signal::Atime
    }
}

/// Mount options of the deepest mount point above `path` ([`disk::mount_of`]).
fn mount_options(mountinfo: &str, path: &Path) -> Option<String> {
    // No device to prefer: the deepest mount point decides.
    disk::mount_of(mountinfo, path, (u32::MAX, u32::MAX)).map(|m| m.options)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:35 / /data rw,noatime shared:2 - ext4 /dev/vdb rw
41 40 0:36 / /data/fast\\040disk rw,nosuid shared:3 - tmpfs tmpfs rw
";

    #[test]
    fn the_innermost_mount_decides() {
        let sig = |p: &str| mount_options(INFO, Path::new(p)).map(|o| from_options(&o));
        assert_eq!(sig("/home/dev/proj/target"), Some(Signal::Relatime));
        assert_eq!(sig("/data/proj/target"), Some(Signal::BuildTimeOnly));
        assert_eq!(sig("/data/fast disk/target"), Some(Signal::Atime));
        assert_eq!(sig("/database"), Some(Signal::Relatime));
    }
}
