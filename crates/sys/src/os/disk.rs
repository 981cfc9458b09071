//! Filesystems: their size (for budgets given as shares), free space (for the watermark), and
//! the mount they are known by (node_exporter's `device`, `mountpoint` and `fstype` labels, so
//! a dashboard joins our gauges with `node_filesystem_*`).

use std::path::{Path, PathBuf};

use cachekeeper_core::model::Filesystem;

/// `/proc/self/mountinfo` is a few KiB on a laptop and a few MiB on a host with thousands of
/// container mounts; past this it is not read and the labels stay empty.
const MOUNTINFO_CAP: u64 = 16 << 20;

/// Measures the filesystem holding `path`.
pub fn measure(path: &Path) -> std::io::Result<Filesystem> {
    let st = rustix::fs::statvfs(path)?;
    let stat = rustix::fs::stat(path)?;
    let dev = (
        rustix::fs::major(stat.st_dev),
        rustix::fs::minor(stat.st_dev),
    );
    let mount = mountinfo()
        .and_then(|text| mount_of(&text, path, dev))
        .unwrap_or_default();
    Ok(Filesystem {
        dev: stat.st_dev,
        path: path.to_path_buf(),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        all_free_bytes: st.f_bfree.saturating_mul(st.f_frsize),
        device: mount.device,
        mountpoint: mount.mountpoint,
        fstype: mount.fstype,
    })
}

/// `/proc/self/mountinfo`, read as any file we did not write: bounded, regular only.
#[must_use]
pub(crate) fn mountinfo() -> Option<String> {
    let bytes =
        crate::readfile::read(Path::new("/proc/self/mountinfo"), MOUNTINFO_CAP, false).ok()??;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// A line of `mountinfo`, as node_exporter labels it, with its mount options.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: PathBuf,
    pub fstype: String,
    /// Per-mount options (field 6: `rw,relatime`).
    pub options: String,
}

/// The mount holding `path`: the deepest mount point above it, preferring mounts of the
/// path's own device (`major:minor`); btrfs subvolumes report a device no line names, so the
/// deepest mount point alone decides there. One pass over the text.
pub(crate) fn mount_of(mountinfo: &str, path: &Path, dev: (u32, u32)) -> Option<Mount> {
    let want = format!("{}:{}", dev.0, dev.1);
    let mut best: Option<(bool, usize, Mount)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        let mut fields = line.split(' ');
        let (Some(_), Some(_), Some(majmin), Some(_), Some(point), Some(options)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            continue;
        };
        let mut rest = fields.skip_while(|f| *f != "-").skip(1);
        let (Some(fstype), Some(source)) = (rest.next(), rest.next()) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if !path.starts_with(&point) {
            continue;
        }
        let key = (majmin == want, point.as_os_str().len());
        // Later lines win ties: a mount over a mount hides the one below.
        if best.as_ref().is_none_or(|(d, l, _)| key >= (*d, *l)) {
            best = Some((
                key.0,
                key.1,
                Mount {
                    device: unescape(source),
                    mountpoint: point,
                    fstype: unescape(fstype),
                    options: options.to_string(),
                },
            ));
        }
    }
    best.map(|(_, _, m)| m)
}

/// `mountinfo` writes space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
30 22 0:25 / /home rw,relatime shared:2 - btrfs /dev/nvme0n1p3 rw,subvol=/home
31 22 0:26 / /mnt/my\\040disk rw - xfs /dev/sdb1 rw
40 22 0:40 / /tmp rw - tmpfs tmpfs rw
41 40 0:41 / /tmp rw - tmpfs tmpfs rw
";

    #[test]
    fn the_deepest_mount_above_the_path_with_its_device_preferred() {
        let m = mount_of(INFO, Path::new("/srv/app/target"), (259, 2)).unwrap();
        assert_eq!(m.mountpoint, Path::new("/"));
        assert_eq!(
            (m.device.as_str(), m.fstype.as_str()),
            ("/dev/nvme0n1p2", "ext4")
        );
        // btrfs: st_dev names an anonymous device no line carries; the deepest point decides.
        let m = mount_of(INFO, Path::new("/home/ada/p/target"), (0, 52)).unwrap();
        assert_eq!(
            (m.mountpoint.as_path(), m.fstype.as_str()),
            (Path::new("/home"), "btrfs")
        );
        let m = mount_of(INFO, Path::new("/mnt/my disk/target"), (0, 26)).unwrap();
        assert_eq!(m.mountpoint, Path::new("/mnt/my disk"));
        // Prefix by component, not by bytes.
        let m = mount_of(INFO, Path::new("/homework/target"), (259, 2)).unwrap();
        assert_eq!(m.mountpoint, Path::new("/"));
        // A mount over a mount: the later one is what the path sees.
        let m = mount_of(INFO, Path::new("/tmp/x"), (0, 41)).unwrap();
        assert_eq!(m.device, "tmpfs");
        assert!(mount_of("garbage\n\n- - -", Path::new("/x"), (0, 1)).is_none());
        assert_eq!(unescape("a\\134b\\0"), "a\\b\\0");
    }

    #[test]
    fn the_filesystem_of_a_real_path_has_its_labels() {
        let fs = measure(Path::new("/proc/self")).unwrap();
        assert_eq!(fs.fstype, "proc");
        assert_eq!(fs.mountpoint, Path::new("/proc"));
        let t = std::env::temp_dir();
        let fs = measure(&t).unwrap();
        assert!(t.starts_with(&fs.mountpoint), "{fs:?}");
        assert!(fs.all_free_bytes >= fs.free_bytes);
    }
}
