//! A cargo target dir as the scan found it: profiles, units (cargo's compiled units, each named
//! by a 16-hex hash), incremental dirs, orphaned outputs, and their sizes. Plain data.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Bytes and files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Allocated on disk (what `du` reports, what removal gives back).
    pub bytes: u64,
    /// Apparent size (what `du -b` reports).
    pub apparent_bytes: u64,
    pub files: u64,
}

impl Usage {
    /// One file (or directory) of `bytes` allocated and `apparent` apparent bytes.
    #[must_use]
    pub fn file(bytes: u64, apparent: u64) -> Usage {
        Usage {
            bytes,
            apparent_bytes: apparent,
            files: 1,
        }
    }

    pub fn merge(&mut self, o: &Usage) {
        self.bytes += o.bytes;
        self.apparent_bytes += o.apparent_bytes;
        self.files += o.files;
    }
}

/// What part of a build a byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Compiled outputs: `.rlib`, `.rmeta`, executables, dep-info.
    Deps,
    /// Build scripts, compiled and run (`OUT_DIR`).
    Build,
    Incremental,
    Fingerprint,
    /// Uplifted copies, lock files, docs, anything else.
    Other,
}

/// Usage split by [`Kind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByKind {
    pub deps: Usage,
    pub build: Usage,
    pub incremental: Usage,
    pub fingerprint: Usage,
    pub other: Usage,
}

impl ByKind {
    pub fn get_mut(&mut self, kind: Kind) -> &mut Usage {
        match kind {
            Kind::Deps => &mut self.deps,
            Kind::Build => &mut self.build,
            Kind::Incremental => &mut self.incremental,
            Kind::Fingerprint => &mut self.fingerprint,
            Kind::Other => &mut self.other,
        }
    }

    pub fn merge(&mut self, o: &ByKind) {
        for (a, b) in self.parts_mut().into_iter().zip(o.parts()) {
            a.merge(&b);
        }
    }

    fn parts(&self) -> [Usage; 5] {
        [
            self.deps,
            self.build,
            self.incremental,
            self.fingerprint,
            self.other,
        ]
    }

    fn parts_mut(&mut self) -> [&mut Usage; 5] {
        [
            &mut self.deps,
            &mut self.build,
            &mut self.incremental,
            &mut self.fingerprint,
            &mut self.other,
        ]
    }

    #[must_use]
    pub fn total(&self) -> Usage {
        let mut t = Usage::default();
        for p in self.parts() {
            t.merge(&p);
        }
        t
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `.fingerprint/`, `deps/`, `build/<pkg>-<H>/` (cargo up to 1.99).
    Legacy,
    /// `build/<pkg>/<H>/` (cargo's build-dir layout, default from 1.100).
    New,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UnitKey {
    pub profile: u16,
    pub hash: u64,
    pub layout: Layout,
}

/// Errors met while scanning: counted, a few kept as examples, never fatal.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ScanErrors {
    /// Entries that disappeared while we looked (a build or `cargo clean` racing us).
    pub vanished: u64,
    pub permission_denied: u64,
    pub other: u64,
    pub examples: Vec<String>,
    /// Mount points inside the target dir (another filesystem, or a bind mount): never
    /// entered, measured or removed. Not errors; the first few, by path.
    #[serde(with = "crate::pathcodec::list")]
    pub mount_points: Vec<PathBuf>,
}

impl ScanErrors {
    const EXAMPLES: usize = 5;

    /// Counts an error met at `rel`: an entry that vanished (a racing build), a permission
    /// refused, or anything else (kept as an example).
    pub fn record(&mut self, rel: &Path, err: &io::Error) {
        if err.kind() == io::ErrorKind::NotFound {
            self.vanished += 1;
            return;
        }
        // EPERM counts as refused permission too (O_NOATIME on another user's file).
        if err.kind() == io::ErrorKind::PermissionDenied || err.raw_os_error() == Some(1) {
            self.permission_denied += 1;
        } else {
            self.other += 1;
        }
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(format!("{}: {err}", rel.display()));
        }
    }

    pub fn merge(&mut self, o: ScanErrors) {
        self.vanished += o.vanished;
        self.permission_denied += o.permission_denied;
        self.other += o.other;
        for e in o.examples {
            if self.examples.len() < Self::EXAMPLES {
                self.examples.push(e);
            }
        }
        for m in o.mount_points {
            self.mount_point(&m);
        }
    }

    /// Notes a mount point met at `rel`.
    pub fn mount_point(&mut self, rel: &Path) {
        if self.mount_points.len() < 100 {
            self.mount_points.push(rel.to_path_buf());
        }
    }

    /// Errors that hide data from us (vanished entries do not: they are gone).
    #[must_use]
    pub fn serious(&self) -> u64 {
        self.permission_denied + self.other
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileState {
    Idle,
    /// A build holds cargo's lock.
    Busy,
    /// No cargo lock file, or it cannot be opened: never cleaned.
    Unlockable,
}

#[derive(Clone, Debug)]
pub struct Profile {
    /// Relative to the target dir: `debug`, `x86_64-unknown-linux-gnu/release`.
    pub rel: PathBuf,
    pub layouts: Vec<Layout>,
    pub usage: ByKind,
    pub state: ProfileState,
}

#[derive(Clone, Debug)]
pub struct Unit {
    pub key: UnitKey,
    pub package: String,
    /// Fingerprint hash file names: `lib-serde`, `test-bin-app`, `run-build-script-build-script-build`.
    pub targets: Vec<String>,
    /// Fingerprint values (what dependents name this unit by).
    pub fingerprints: Vec<u64>,
    /// Hashes of `rustc -vV` of the compiler that built it.
    pub rustc: Vec<u64>,
    /// Fingerprint values of the units it depends on.
    pub deps: Vec<u64>,
    /// How it was built (the fingerprint's profile hash: profile settings and mode, build,
    /// check, test or doc) and for which platform (its compile kind).
    pub profile_hash: Option<u64>,
    pub compile_kind: Option<u64>,
    /// Indices (into [`TargetDir::units`]) of the units that depend on this one.
    pub dependents: Vec<usize>,
    pub build_script: bool,
    /// Top-level paths relative to the target dir, fingerprint dir first.
    pub paths: Vec<PathBuf>,
    pub fingerprint_dir: PathBuf,
    /// A build script's run: the dir holding its `output` (relative to the target dir).
    pub run_dir: Option<PathBuf>,
    pub usage: ByKind,
    /// Bytes that removing the unit (with its uplifted links) gives back.
    pub reclaimable: u64,
    /// The last build that used it: the newest access of a file cargo reads on every build and
    /// cachekeeper never opens (see [`use_time`]), or the newest write of any fingerprint file.
    pub last_used: SystemTime,
    /// Newest write of a fingerprint file: the last build that compiled it.
    pub last_built: SystemTime,
    pub invoked: Option<SystemTime>,
    pub finished: Option<SystemTime>,
    /// Newest write of its `.rmeta`: when a pipelined compile had its metadata.
    pub metadata_at: Option<SystemTime>,
    /// Its output is a dylib the compiler loads (`.so`, `.dylib`, `.dll`).
    pub proc_macro: bool,
    /// What its compile costs, worked out once the whole snapshot is measured
    /// ([`super::rebuild::time_units`]); `None` before.
    pub timing: Option<super::rebuild::Timing>,
    /// Fingerprint files that could not be read or parsed.
    pub unreadable: u32,
}

impl Unit {
    /// `serde-054e37a5e5b0dc4b`: how cargo itself names the unit's dirs.
    #[must_use]
    pub fn name(&self) -> String {
        format!("{}-{:016x}", self.package, self.key.hash)
    }
}

#[derive(Clone, Debug)]
pub struct IncrementalDir {
    pub profile: u16,
    pub name: String,
    pub crate_name: String,
    /// Relative to the target dir.
    pub path: PathBuf,
    pub usage: Usage,
    pub reclaimable: u64,
    /// When rustc started the newest session (from its name): the last compile of the crate.
    pub newest_session: Option<SystemTime>,
    pub newest_mtime: SystemTime,
    /// The crate dir's own modification time when it was walked: a session added, finished
    /// or removed since changes it (a walk takes the dir as it was when this is unchanged).
    pub dir_mtime: Option<SystemTime>,
    pub session_locks: Vec<String>,
    /// Units whose compile produced the newest session (indices into [`TargetDir::units`]).
    pub owners: Vec<usize>,
}

impl IncrementalDir {
    /// When this data was last written.
    #[must_use]
    pub(crate) fn last_written(&self) -> SystemTime {
        self.newest_session
            .map_or(self.newest_mtime, |s| s.max(self.newest_mtime))
    }
}

/// Compiled outputs of a unit hash that has no fingerprint: cargo cannot reuse them.
#[derive(Clone, Debug)]
pub struct Orphan {
    pub key: UnitKey,
    pub paths: Vec<PathBuf>,
    pub usage: ByKind,
    pub reclaimable: u64,
    pub newest_mtime: SystemTime,
}

#[derive(Clone, Debug)]
pub struct TargetDir {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    pub profiles: Vec<Profile>,
    pub units: Vec<Unit>,
    pub incremental: Vec<IncrementalDir>,
    pub orphans: Vec<Orphan>,
    /// Inodes freed only when all of several parts go.
    pub shared: Vec<SharedInode>,
    /// Everything, every inode once.
    pub usage: ByKind,
    pub errors: ScanErrors,
    /// `rustc -vV` output cargo last cached in `.rustc_info.json`.
    pub rustc_vv: Option<String>,
    /// How many compiles cargo runs side by side here (`build.jobs`, else the cores).
    pub jobs: u32,
    /// What its mount's file times say of use (its atime options).
    pub signal: super::Signal,
    /// Its filesystem among the snapshot's.
    pub fs: super::FsId,
    /// Units the walk took from the daemon's earlier walk without looking at them (no build
    /// changed them since, as its watches saw).
    pub kept_units: usize,
}

impl TargetDir {
    /// A target dir at `path` with nothing in it (what tests and benchmarks fill in).
    #[must_use]
    pub fn empty(path: PathBuf) -> TargetDir {
        TargetDir {
            path,
            dev: 0,
            ino: 0,
            profiles: Vec::new(),
            units: Vec::new(),
            incremental: Vec::new(),
            orphans: Vec::new(),
            shared: Vec::new(),
            usage: ByKind::default(),
            errors: ScanErrors::default(),
            rustc_vv: None,
            jobs: 1,
            signal: super::Signal::default(),
            fs: super::FsId::default(),
            kept_units: 0,
        }
    }

    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.usage.total().bytes
    }

    /// The directories the daemon watches here (one inotify watch each): every unit's
    /// fingerprint dir and every build-script run's dir (builds' uses, and what changed), each
    /// profile dir (cargo's lock) and the dir its new units appear in (`.fingerprint/`, or
    /// `build/` in the new layout, whose package dirs are counted with the units), and the
    /// target dir itself (new profiles). 10,000 units with 2,000 build scripts: 12,005 watches.
    #[must_use]
    pub fn watched_dirs(&self) -> usize {
        self.units.len()
            + self.units.iter().filter(|u| u.run_dir.is_some()).count()
            + 2 * self.profiles.len()
            + 1
    }
}

/// An inode whose links lie in several parts (a unit's output hardlinked into an
/// incremental session, two units sharing a file): it is freed only when all of them go.
#[derive(Clone, Debug)]
pub struct SharedInode {
    pub bytes: u64,
    pub owners: Vec<Part>,
}

/// A removable part of a target dir.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "index", rename_all = "kebab-case")]
pub enum Part {
    /// Index into [`TargetDir::units`].
    Unit(usize),
    /// Index into [`TargetDir::incremental`].
    Incremental(usize),
    /// Index into [`TargetDir::orphans`].
    Orphan(usize),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A unit with nothing in it, for tests to fill.
    pub(crate) fn blank_unit() -> Unit {
        Unit {
            key: UnitKey {
                profile: 0,
                hash: 0,
                layout: Layout::Legacy,
            },
            package: String::new(),
            targets: Vec::new(),
            fingerprints: Vec::new(),
            rustc: Vec::new(),
            deps: Vec::new(),
            profile_hash: None,
            compile_kind: None,
            dependents: Vec::new(),
            build_script: false,
            paths: Vec::new(),
            fingerprint_dir: PathBuf::new(),
            run_dir: None,
            usage: ByKind::default(),
            reclaimable: 0,
            last_used: SystemTime::UNIX_EPOCH,
            last_built: SystemTime::UNIX_EPOCH,
            invoked: None,
            finished: None,
            metadata_at: None,
            proc_macro: false,
            timing: None,
            unreadable: 0,
        }
    }

    /// A target dir with nothing in it.
    pub(crate) fn blank_dir() -> TargetDir {
        TargetDir::empty(PathBuf::from("/t"))
    }
}
