//! What a walk accumulates, per walker thread, before the threads' results are merged: per
//! unit, per incremental crate dir, per profile, and the files with several links.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use super::visitor::Owner;
use cachekeeper_core::model::{ByKind, IncrementalDir, ScanErrors, Unit, UnitKey, Usage};

/// A file with more than one link, counted once after the walk.
pub(super) struct Link {
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub usage: Usage,
    pub owner: Owner,
    pub rel: PathBuf,
}

#[derive(Default)]
pub(super) struct UnitAcc {
    pub usage: ByKind,
    /// Bytes freed by removing the unit, from files with a single link.
    pub reclaimable: u64,
    /// Top-level paths (relative to the target dir).
    pub paths: Vec<PathBuf>,
    pub fingerprint_dir: Option<PathBuf>,
    /// The build dir holding a build-script run's `output` (see [`Ctx::UnitBuildDir`]).
    pub run_dir: Option<PathBuf>,
    pub package: Option<String>,
    pub targets: Vec<String>,
    pub fingerprints: Vec<u64>,
    pub rustc: Vec<u64>,
    pub deps: Vec<u64>,
    pub profile_hash: Option<u64>,
    pub compile_kind: Option<u64>,
    pub build_script: bool,
    pub last_used: Option<SystemTime>,
    pub last_built: Option<SystemTime>,
    pub invoked: Option<SystemTime>,
    pub finished: Option<SystemTime>,
    pub metadata_at: Option<SystemTime>,
    pub proc_macro: bool,
    pub newest_mtime: Option<SystemTime>,
    pub unreadable: u32,
}

pub(super) fn later(a: Option<SystemTime>, b: SystemTime) -> Option<SystemTime> {
    Some(a.map_or(b, |a| a.max(b)))
}

fn later_opt(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

impl UnitAcc {
    /// What a walk of the unit found, as an earlier walk recorded it.
    pub(super) fn from_unit(u: Unit) -> UnitAcc {
        UnitAcc {
            usage: u.usage,
            reclaimable: u.reclaimable,
            paths: u.paths,
            fingerprint_dir: Some(u.fingerprint_dir),
            run_dir: u.run_dir,
            package: Some(u.package),
            targets: u.targets,
            fingerprints: u.fingerprints,
            rustc: u.rustc,
            deps: u.deps,
            profile_hash: u.profile_hash,
            compile_kind: u.compile_kind,
            build_script: u.build_script,
            last_used: Some(u.last_used),
            last_built: Some(u.last_built),
            invoked: u.invoked,
            finished: u.finished,
            metadata_at: u.metadata_at,
            proc_macro: u.proc_macro,
            newest_mtime: None,
            unreadable: u.unreadable,
        }
    }

    pub fn merge(&mut self, o: UnitAcc) {
        self.usage.merge(&o.usage);
        self.reclaimable += o.reclaimable;
        self.paths.extend(o.paths);
        self.fingerprint_dir = self.fingerprint_dir.take().or(o.fingerprint_dir);
        self.run_dir = self.run_dir.take().or(o.run_dir);
        self.package = self.package.take().or(o.package);
        self.targets.extend(o.targets);
        self.fingerprints.extend(o.fingerprints);
        self.rustc.extend(o.rustc);
        self.deps.extend(o.deps);
        self.profile_hash = self.profile_hash.or(o.profile_hash);
        self.compile_kind = self.compile_kind.or(o.compile_kind);
        self.build_script |= o.build_script;
        self.last_used = later_opt(self.last_used, o.last_used);
        self.last_built = later_opt(self.last_built, o.last_built);
        self.invoked = later_opt(self.invoked, o.invoked);
        self.finished = later_opt(self.finished, o.finished);
        self.metadata_at = later_opt(self.metadata_at, o.metadata_at);
        self.proc_macro |= o.proc_macro;
        self.newest_mtime = later_opt(self.newest_mtime, o.newest_mtime);
        self.unreadable += o.unreadable;
    }
}

#[derive(Default)]
pub(super) struct IncrAcc {
    pub usage: Usage,
    pub reclaimable: u64,
    pub path: Option<PathBuf>,
    pub newest_session: Option<SystemTime>,
    pub newest_mtime: Option<SystemTime>,
    pub dir_mtime: Option<SystemTime>,
    pub session_locks: Vec<String>,
}

impl IncrAcc {
    /// What a walk of the crate dir found, as an earlier walk recorded it.
    pub(super) fn from_walked(d: &IncrementalDir) -> IncrAcc {
        IncrAcc {
            usage: d.usage,
            reclaimable: d.reclaimable,
            path: Some(d.path.clone()),
            newest_session: d.newest_session,
            newest_mtime: Some(d.newest_mtime),
            dir_mtime: d.dir_mtime,
            session_locks: d.session_locks.clone(),
        }
    }

    pub fn merge(&mut self, o: IncrAcc) {
        self.usage.merge(&o.usage);
        self.reclaimable += o.reclaimable;
        self.path = self.path.take().or(o.path);
        self.newest_session = later_opt(self.newest_session, o.newest_session);
        self.newest_mtime = later_opt(self.newest_mtime, o.newest_mtime);
        self.dir_mtime = self.dir_mtime.or(o.dir_mtime);
        self.session_locks.extend(o.session_locks);
    }
}

#[derive(Default)]
pub(super) struct Acc {
    /// Walked since progress was last told (files, allocated bytes).
    pub unreported: (u64, u64),
    pub units: HashMap<UnitKey, UnitAcc>,
    pub incr: HashMap<u32, IncrAcc>,
    pub profiles: HashMap<u16, ByKind>,
    pub target: Usage,
    pub links: Vec<Link>,
    pub errors: ScanErrors,
    /// Units lent by an earlier walk that this walk met (by a top-level path), by their index
    /// in the earlier walk (see [`super::earlier::lend`]).
    pub lent_met: Vec<u32>,
}
