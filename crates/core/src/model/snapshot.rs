//! One look at everything cachekeeper manages, as data: the target dirs found and measured,
//! the filesystems holding them, the installed toolchains, and the BuildKit cache.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{BuildkitSide, TargetDir, Toolchains};

/// Which sides a command looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Sides {
    pub cargo: bool,
    pub buildkit: bool,
}

impl Sides {
    pub const BOTH: Sides = Sides {
        cargo: true,
        buildkit: true,
    };
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Free including the blocks reserved for root (`f_bfree`), node_exporter's `free`.
    #[serde(default)]
    pub all_free_bytes: u64,
    /// The mount's source, point and type as `/proc/self/mountinfo` names them (empty when
    /// it could not be read).
    #[serde(default)]
    pub device: String,
    #[serde(default, with = "crate::pathcodec")]
    pub mountpoint: std::path::PathBuf,
    #[serde(default)]
    pub fstype: String,
}

/// How trustworthy a target dir's last-use times are.
///
/// A unit's last use is the newest access of the files cargo reads on every build. Whether the
/// kernel records accesses depends on the mount: `strictatime` always, `relatime` (Linux's
/// default) at least once a day, `noatime` never. On `noatime` the last use is unknown, and
/// unknown must never read as old: the stale rule stays off there, and budgets order units by
/// their last build instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Signal {
    /// Access times are exact.
    Atime,
    /// Access times are at most 24 h behind.
    #[default]
    Relatime,
    /// No access times: only build times are known.
    BuildTimeOnly,
    /// The daemon watches every unit and records each use as it happens.
    Recorded,
}

impl Signal {
    /// Whether "not used since T" can be concluded from these times.
    #[must_use]
    pub(crate) fn knows_use(self) -> bool {
        self != Signal::BuildTimeOnly
    }

    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Signal::Atime => "access times (strictatime)",
            Signal::Relatime => "access times (relatime: within 24h)",
            Signal::BuildTimeOnly => "build times only (noatime: stale rule off)",
            Signal::Recorded => "uses recorded by the daemon (exact)",
        }
    }
}

/// Which of a snapshot's filesystems holds a target dir: an index into
/// [`Snapshot::filesystems`], typed so it is never taken for a target's or a unit's index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FsId(pub usize);

impl FsId {
    /// The filesystem this names among `all`.
    #[must_use]
    pub fn of(self, all: &[Filesystem]) -> Option<&Filesystem> {
        all.get(self.0)
    }
}

/// The snapshot: everything one measurement found. Plain data (the engine's connection, if
/// any, is handed out beside it).
pub struct Snapshot {
    pub buildkit: BuildkitSide,
    /// Each with its filesystem ([`TargetDir::fs`]) and last-use signal.
    pub targets: Vec<TargetDir>,
    /// The filesystems holding the target dirs, each once.
    pub filesystems: Vec<Filesystem>,
    pub toolchains: Toolchains,
    /// Target dirs found but not scanned, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    pub missing_roots: Vec<PathBuf>,
    /// Directories the search could not enter.
    pub search_errors: Vec<String>,
}

impl Snapshot {
    /// Nothing measured yet.
    #[must_use]
    pub fn empty() -> Snapshot {
        Snapshot {
            buildkit: BuildkitSide::Off,
            targets: Vec::new(),
            filesystems: Vec::new(),
            toolchains: Toolchains::default(),
            failed: Vec::new(),
            missing_roots: Vec::new(),
            search_errors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noatime_is_never_read_as_use() {
        assert!(!Signal::BuildTimeOnly.knows_use());
        assert!(Signal::Relatime.knows_use());
    }
}
