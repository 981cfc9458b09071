//! Carrying out a plan, or dry-running it: the same walk over the same files, where only the
//! final `unlinkat`/`rmdir` depends on the [`Mode`]. So a dry run reports what a real run
//! frees: both count an inode's blocks when its last link goes.
//!
//! Invariants:
//! - Only inside a dir that still carries cargo's `CACHEDIR.TAG` and is the same directory
//!   (device, inode) the scan measured; everything is done relative to its open fd.
//! - Paths are opened component by component with `O_NOFOLLOW`: a symlink, even one swapped
//!   in mid-clean, stops that removal; a symlink that is itself planned for removal is
//!   unlinked as a link.
//! - Every profile touched is locked with cargo's own locks first; a busy profile is skipped.
//!   The locks are held until the target dir is done, so a build that starts waits.
//! - A unit is removed fingerprint dir first, so cargo never trusts outputs that are gone,
//!   and dependents before their dependencies. A unit used since the plan was made is kept,
//!   and so is everything it depends on.
//! - A missing file is not an error (a build or `cargo clean` may race us).

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rustix::fs::AtFlags;
use serde::Serialize;

use crate::cargo_lock::{self, ProfileLock};
use crate::inventory::TargetDir;
use crate::policy::{Action, Item, Plan, Rule};
use crate::safefs::{self, Meta};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    DryRun,
    Execute,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Removed,
    WouldRemove,
    /// A build holds the profile's lock (or rustc the session's).
    SkippedBusy,
    /// A build used the unit after the plan was made.
    SkippedUsed,
    /// A unit depending on it was kept.
    SkippedDependentKept,
    /// The target dir is not the one scanned any more, or lost its cargo tag.
    SkippedChanged,
    /// Asked to stop before this action.
    Stopped,
    /// Some of it could not be removed (see `errors`).
    Partial,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionResult {
    /// Index into the plan's actions.
    pub action: usize,
    pub status: Status,
    /// Freed (or, in a dry run, that would be freed).
    pub reclaimed_bytes: u64,
    pub files: u64,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SweepReport {
    pub reclaimed_bytes: u64,
    pub removed_files: u64,
    pub results: Vec<ActionResult>,
    /// Errors that stopped a removal (not counting files that vanished).
    pub errors: u64,
}

/// Hooks into a sweep: progress display, and tests that act mid-clean. `before` runs with
/// the action's profile already locked (if it could be).
pub trait Observer {
    fn before(&mut self, _target: &TargetDir, _action: &Action) {}
    fn after(&mut self, _target: &TargetDir, _action: &Action, _result: &ActionResult) {}
    /// A use of the unit whose fingerprint dir is `fingerprint_dir` that the file times may
    /// not show (the daemon records builds' reads as they happen).
    fn recorded_use(&self, _target: &TargetDir, _fingerprint_dir: &Path) -> Option<SystemTime> {
        None
    }
}

pub struct NoObserver;
impl Observer for NoObserver {}

/// Counts what is freed: an inode's blocks once its last link is gone.
#[derive(Default)]
struct Tally {
    freed: u64,
    files: u64,
    /// Links still to go, for inodes with several.
    links_left: HashMap<(u64, u64), u64>,
}

impl Tally {
    fn unlinked(&mut self, meta: &Meta) {
        self.files += 1;
        let key = (meta.dev, meta.ino);
        let last = if let Some(left) = self.links_left.get_mut(&key) {
            *left = left.saturating_sub(1);
            *left == 0
        } else if meta.nlink <= 1 {
            true
        } else {
            self.links_left.insert(key, meta.nlink - 1);
            false
        };
        if last {
            self.freed += meta.bytes;
        }
    }

    fn dir_removed(&mut self, meta: &Meta) {
        self.files += 1;
        self.freed += meta.bytes;
    }
}

struct Remover<'a> {
    mode: Mode,
    tally: &'a mut Tally,
    errors: Vec<String>,
}

impl Remover<'_> {
    fn fail(&mut self, rel: &Path, what: &str, e: &io::Error) {
        if !safefs::is_vanished(e) {
            self.errors.push(format!("{}: {what}: {e}", rel.display()));
        }
    }

    /// Removes `rel` (relative to the target dir open as `root`), never following a link.
    fn remove_path(&mut self, root: BorrowedFd<'_>, rel: &Path) {
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return;
        };
        match safefs::open_rel_dir(root, parent) {
            Ok(dir) => self.remove_entry(dir.as_fd(), name, rel),
            Err(e) => self.fail(rel, "open parent", &e),
        }
    }

    fn remove_entry(&mut self, dir: BorrowedFd<'_>, name: &OsStr, rel: &Path) {
        let meta = match safefs::stat_at(dir, name) {
            Ok(m) => m,
            Err(e) => return self.fail(rel, "stat", &e),
        };
        if meta.kind == safefs::Kind::Dir {
            let cname = match std::ffi::CString::new(name.as_bytes()) {
                Ok(c) => c,
                Err(_) => return,
            };
            let sub = match safefs::open_dir_at(dir, &cname) {
                Ok(fd) => fd,
                Err(e) => return self.fail(rel, "open", &e),
            };
            match safefs::stat_fd(sub.as_fd()) {
                Ok(m) if (m.dev, m.ino) == (meta.dev, meta.ino) => {}
                Ok(_) => {
                    return self.errors.push(format!(
                        "{}: replaced while being removed; left alone",
                        rel.display()
                    ));
                }
                Err(e) => return self.fail(rel, "stat", &e),
            }
            let names: Vec<std::ffi::CString> = match rustix::fs::Dir::read_from(sub.as_fd()) {
                Ok(d) => d
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_owned())
                    .filter(|n| n.as_c_str() != c"." && n.as_c_str() != c"..")
                    .collect(),
                Err(e) => return self.fail(rel, "list", &e.into()),
            };
            for child in names {
                let child = OsStr::from_bytes(child.to_bytes());
                self.remove_entry(sub.as_fd(), child, &rel.join(child));
            }
            match self.apply(dir, name, AtFlags::REMOVEDIR) {
                Ok(()) => self.tally.dir_removed(&meta),
                Err(e) => self.fail(rel, "remove dir", &e),
            }
        } else {
            match self.apply(dir, name, AtFlags::empty()) {
                Ok(()) => self.tally.unlinked(&meta),
                Err(e) => self.fail(rel, "remove", &e),
            }
        }
    }

    /// The one place the mode matters.
    fn apply(&self, dir: BorrowedFd<'_>, name: &OsStr, flags: AtFlags) -> io::Result<()> {
        match self.mode {
            Mode::DryRun => Ok(()),
            Mode::Execute => Ok(rustix::fs::unlinkat(dir, name, flags)?),
        }
    }
}

/// The last use the unit's files show now, read the way the scan read it
/// ([`crate::inventory::use_time`]), if they still exist.
fn files_last_use(root: BorrowedFd<'_>, unit: &crate::inventory::Unit) -> Option<SystemTime> {
    let in_dir = |rel: &Path, run_dir: bool| -> Option<SystemTime> {
        let dir = safefs::open_rel_dir(root, rel).ok()?;
        let list = rustix::fs::Dir::read_from(dir.as_fd()).ok()?;
        list.filter_map(Result::ok)
            .filter(|e| e.file_name() != c"." && e.file_name() != c"..")
            .filter_map(|e| {
                let meta = safefs::stat_at_c(dir.as_fd(), e.file_name()).ok()?;
                let name = e.file_name().to_str().ok()?;
                (meta.kind == safefs::Kind::File)
                    .then(|| crate::inventory::use_time(name, &meta, run_dir))
            })
            .max()
    };
    let fingerprint = in_dir(&unit.fingerprint_dir, false);
    let run = unit.run_dir.as_deref().and_then(|d| in_dir(d, true));
    fingerprint.max(run)
}

enum ProfileAccess {
    Locked(#[allow(dead_code)] ProfileLock),
    Unavailable(Status, String),
}

/// Carries out (or dry-runs) `plan` over the scanned `targets`. `stop` is checked between
/// actions: an action once begun is finished, so nothing is left half-removed.
pub fn sweep(
    targets: &[TargetDir],
    plan: &Plan,
    mode: Mode,
    stop: Option<&AtomicBool>,
    observer: &mut dyn Observer,
) -> SweepReport {
    let mut report = SweepReport::default();
    let mut tally = Tally::default();
    for (t, target) in targets.iter().enumerate() {
        let actions: Vec<usize> = (0..plan.actions.len())
            .filter(|&i| plan.actions[i].target == t)
            .collect();
        if actions.is_empty() {
            continue;
        }
        let root = match safefs::open_dir(&target.path) {
            Ok(fd) => fd,
            Err(e) => {
                skip_all(
                    &mut report,
                    &actions,
                    Status::SkippedChanged,
                    &format!("cannot open: {e}"),
                );
                continue;
            }
        };
        let same =
            safefs::stat_fd(root.as_fd()).is_ok_and(|m| (m.dev, m.ino) == (target.dev, target.ino));
        if !same || !safefs::is_cargo_tagged(root.as_fd()) {
            let why = "no longer the cargo-tagged directory that was scanned";
            skip_all(&mut report, &actions, Status::SkippedChanged, why);
            continue;
        }

        let mut profiles: HashMap<u16, ProfileAccess> = HashMap::new();
        let mut kept: HashSet<usize> = HashSet::new();
        let mut removed_here: HashSet<usize> = HashSet::new();
        for i in actions {
            let action = &plan.actions[i];
            // A stop falls between units, never between a unit and the incremental data that
            // goes with it.
            let follows_a_unit = match action.item {
                Item::Incremental(inc) if action.rule != Rule::Incremental => {
                    let owners = &target.incremental[inc].owners;
                    !owners.is_empty() && owners.iter().all(|o| removed_here.contains(o))
                }
                _ => false,
            };
            if stop.is_some_and(|s| s.load(Ordering::SeqCst)) && !follows_a_unit {
                report.results.push(result(i, Status::Stopped, Vec::new()));
                continue;
            }
            // Lock first, so `before` runs (and a build starting now waits) under cargo's lock.
            let profile = profile_of(target, action.item);
            let access = profiles
                .entry(profile)
                .or_insert_with(|| lock_profile(root.as_fd(), target, profile));
            observer.before(target, action);
            let res = match access {
                ProfileAccess::Unavailable(status, why) => {
                    result(i, status.clone(), vec![why.clone()])
                }
                ProfileAccess::Locked(_) => {
                    if let Some(status) = must_keep(root.as_fd(), target, action, &kept, &*observer)
                    {
                        if let Item::Unit(u) = action.item {
                            kept.insert(u);
                        }
                        result(i, status, Vec::new())
                    } else {
                        let before = (tally.freed, tally.files);
                        let mut remover = Remover {
                            mode,
                            tally: &mut tally,
                            errors: Vec::new(),
                        };
                        for rel in paths_of(target, action.item) {
                            remover.remove_path(root.as_fd(), rel);
                        }
                        let errors = remover.errors;
                        let status = match (mode, errors.is_empty()) {
                            (_, false) => Status::Partial,
                            (Mode::DryRun, true) => Status::WouldRemove,
                            (Mode::Execute, true) => Status::Removed,
                        };
                        ActionResult {
                            action: i,
                            status,
                            reclaimed_bytes: tally.freed - before.0,
                            files: tally.files - before.1,
                            errors,
                        }
                    }
                }
            };
            if let Item::Unit(u) = action.item {
                match res.status {
                    Status::SkippedBusy => {
                        kept.insert(u);
                    }
                    Status::Removed | Status::WouldRemove => {
                        removed_here.insert(u);
                    }
                    _ => {}
                }
            }
            observer.after(target, action, &res);
            report.results.push(res);
        }
        // Locks are released here, when `profiles` drops.
    }
    report.reclaimed_bytes = report.results.iter().map(|r| r.reclaimed_bytes).sum();
    report.removed_files = report.results.iter().map(|r| r.files).sum();
    // Skips carry their reason in `errors` too; only failed removals count as errors.
    report.errors = report
        .results
        .iter()
        .filter(|r| r.status == Status::Partial)
        .map(|r| r.errors.len() as u64)
        .sum();
    report
}

fn result(action: usize, status: Status, errors: Vec<String>) -> ActionResult {
    ActionResult {
        action,
        status,
        reclaimed_bytes: 0,
        files: 0,
        errors,
    }
}

fn skip_all(report: &mut SweepReport, actions: &[usize], status: Status, why: &str) {
    for &i in actions {
        report
            .results
            .push(result(i, status.clone(), vec![why.to_string()]));
    }
}

fn profile_of(target: &TargetDir, item: Item) -> u16 {
    match item {
        Item::Unit(u) => target.units[u].key.profile,
        Item::Incremental(i) => target.incremental[i].profile,
        Item::Orphan(o) => target.orphans[o].key.profile,
    }
}

fn paths_of(target: &TargetDir, item: Item) -> &[std::path::PathBuf] {
    match item {
        Item::Unit(u) => &target.units[u].paths,
        Item::Incremental(i) => std::slice::from_ref(&target.incremental[i].path),
        Item::Orphan(o) => &target.orphans[o].paths,
    }
}

fn lock_profile(root: BorrowedFd<'_>, target: &TargetDir, profile: u16) -> ProfileAccess {
    let rel = &target.profiles[usize::from(profile)].rel;
    let fd = match safefs::open_rel_dir(root, rel) {
        Ok(fd) => fd,
        Err(e) => {
            return ProfileAccess::Unavailable(
                Status::SkippedChanged,
                format!("{}: {e}", rel.display()),
            );
        }
    };
    match cargo_lock::try_lock(fd.as_fd()) {
        Ok(cargo_lock::Outcome::Locked(l)) => ProfileAccess::Locked(l),
        Ok(cargo_lock::Outcome::Busy) => ProfileAccess::Unavailable(
            Status::SkippedBusy,
            format!("{}: a build holds cargo's lock", rel.display()),
        ),
        Ok(cargo_lock::Outcome::NoLockFile) => ProfileAccess::Unavailable(
            Status::SkippedChanged,
            format!("{}: no cargo lock file", rel.display()),
        ),
        Err(e) => ProfileAccess::Unavailable(
            Status::SkippedChanged,
            format!("{}: lock: {e}", rel.display()),
        ),
    }
}

/// Re-checks, under the lock, what may have changed since the plan was made.
fn must_keep(
    root: BorrowedFd<'_>,
    target: &TargetDir,
    action: &Action,
    kept: &HashSet<usize>,
    observer: &dyn Observer,
) -> Option<Status> {
    match action.item {
        Item::Unit(u) => {
            let unit = &target.units[u];
            if unit.dependents.iter().any(|d| kept.contains(d)) {
                return Some(Status::SkippedDependentKept);
            }
            let used = files_last_use(root, unit)
                .max(observer.recorded_use(target, &unit.fingerprint_dir));
            if used.is_some_and(|t| t > unit.last_used.max(unit.last_built)) {
                return Some(Status::SkippedUsed);
            }
            None
        }
        Item::Incremental(i) => {
            let inc = &target.incremental[i];
            if action.rule != Rule::Incremental && inc.owners.iter().any(|o| kept.contains(o)) {
                return Some(Status::SkippedDependentKept);
            }
            let dir = safefs::open_rel_dir(root, &inc.path).ok()?;
            inc.session_locks
                .iter()
                .any(|l| cargo_lock::session_lock_held(dir.as_fd(), OsStr::new(l)).unwrap_or(true))
                .then_some(Status::SkippedBusy)
        }
        Item::Orphan(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ino: u64, nlink: u64, bytes: u64) -> Meta {
        Meta {
            dev: 1,
            ino,
            nlink,
            apparent: bytes,
            bytes,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            kind: safefs::Kind::File,
        }
    }

    #[test]
    fn an_inode_counts_when_its_last_link_goes_in_both_modes() {
        // Dry run: the link count stays 2 on the second stat.
        let mut dry = Tally::default();
        dry.unlinked(&meta(5, 2, 100));
        assert_eq!(dry.freed, 0);
        dry.unlinked(&meta(5, 2, 100));
        assert_eq!(dry.freed, 100);
        // Real run: the kernel shows the count dropping.
        let mut real = Tally::default();
        real.unlinked(&meta(5, 2, 100));
        real.unlinked(&meta(5, 1, 100));
        assert_eq!(real.freed, 100);
        // A link elsewhere keeps the inode: nothing freed.
        let mut kept = Tally::default();
        kept.unlinked(&meta(6, 3, 100));
        kept.unlinked(&meta(6, 3, 100));
        assert_eq!(kept.freed, 0);
    }
}
