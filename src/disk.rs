//! Filesystems: their size (for budgets given as shares) and free space (for the watermark).

use std::path::Path;

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    /// Device id of the filesystem (`st_dev`).
    #[serde(skip)]
    pub dev: u64,
    /// A path on it (the first target dir or root found there).
    #[serde(with = "crate::pathcodec")]
    pub path: std::path::PathBuf,
    pub total_bytes: u64,
    /// Available to unprivileged users (`f_bavail`), what `df` shows as free.
    pub free_bytes: u64,
}

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
