//! Filesystems: their size (for budgets given as shares) and free space (for the watermark).

use std::path::Path;

use crate::model::Filesystem;

/// Measures the filesystem holding `path`.
pub fn measure(path: &Path) -> std::io::Result<Filesystem> {
    let st = rustix::fs::statvfs(path)?;
    let dev = rustix::fs::stat(path)?.st_dev;
    Ok(Filesystem {
        dev,
        path: path.to_path_buf(),
        total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
        free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
    })
}
