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
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::remove::{Remover, Tally};
use crate::os::locks::{self, ProfileLock};
use crate::os::safefs;
use cachekeeper_core::model::{
    ActionResult, CargoAction, CargoPlan, Mode, Part, RecordedUses, Rule, Status, SweepReport,
    TargetDir,
};

/// Hooks into a sweep: progress display, and tests that act mid-clean. `before` runs with
/// the action's profile already locked (if it could be).
pub trait Observer {
    /// The sweep begins: `actions` removals planned, freeing `bytes`.
    fn start(&mut self, _actions: usize, _bytes: u64) {}
    fn before(&mut self, _target: &TargetDir, _action: &CargoAction) {}
    fn after(&mut self, _target: &TargetDir, _action: &CargoAction, _result: &ActionResult) {}
}

pub struct NoObserver;
impl Observer for NoObserver {}

/// The last use the unit's files show now, read the way the plan read it
/// ([`cachekeeper_core::model::names::use_time`]; access times no later than `watched_since`, where the
/// daemon watches), if they still exist.
fn files_last_use(
    root: BorrowedFd<'_>,
    unit: &cachekeeper_core::model::Unit,
    watched_since: Option<SystemTime>,
) -> Option<SystemTime> {
    let in_dir = |rel: &Path, run_dir: bool| -> Option<SystemTime> {
        let dir = safefs::open_rel_dir(root, rel).ok()?;
        let list = rustix::fs::Dir::read_from(dir.as_fd()).ok()?;
        list.filter_map(Result::ok)
            .filter(|e| e.file_name() != c"." && e.file_name() != c"..")
            .filter_map(|e| {
                let meta = safefs::stat_at_c(dir.as_fd(), e.file_name()).ok()?;
                let name = e.file_name().to_str().ok()?;
                let atime = watched_since.map_or(meta.atime, |s| meta.atime.min(s));
                (meta.kind == safefs::Kind::File).then(|| {
                    cachekeeper_core::model::names::use_time(name, atime, meta.mtime, run_dir)
                })
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
/// actions: an action once begun is finished, so nothing is left half-removed. `live` is what
/// the daemon records while the sweep goes on: a unit a build used since the plan stays.
pub fn sweep(
    targets: &[TargetDir],
    plan: &CargoPlan,
    mode: Mode,
    stop: Option<&AtomicBool>,
    observer: &mut dyn Observer,
    live: Option<&dyn RecordedUses>,
) -> SweepReport {
    let mut report = SweepReport::default();
    let mut tally = Tally::default();
    observer.start(plan.actions.len(), plan.planned_bytes());
    for (t, target) in targets.iter().enumerate() {
        let actions: Vec<usize> = (0..plan.actions.len())
            .filter(|&i| plan.actions[i].item.target == t)
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
        let root_meta = safefs::stat_fd(root.as_fd()).ok();
        let same = root_meta.is_some_and(|m| (m.dev, m.ino) == (target.dev, target.ino));
        let (Some(root_meta), true, true) =
            (root_meta, same, safefs::is_cargo_tagged(root.as_fd()))
        else {
            let why = "no longer the cargo-tagged directory that was scanned";
            skip_all(&mut report, &actions, Status::SkippedChanged, why);
            continue;
        };

        let mut profiles: HashMap<u16, ProfileAccess> = HashMap::new();
        let mut kept: HashSet<usize> = HashSet::new();
        let mut removed_here: HashSet<usize> = HashSet::new();
        for i in actions {
            let action = &plan.actions[i];
            // A stop falls between units, never between a unit and the incremental data that
            // goes with it.
            let follows_a_unit = match action.item.part {
                Part::Incremental(inc) if action.rule != Rule::Incremental => {
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
            let profile = profile_of(target, action.item.part);
            let access = profiles
                .entry(profile)
                .or_insert_with(|| lock_profile(root.as_fd(), target, profile));
            observer.before(target, action);
            let res = match access {
                ProfileAccess::Unavailable(status, why) => {
                    result(i, status.clone(), vec![why.clone()])
                }
                ProfileAccess::Locked(_) => {
                    let since = plan.targets.get(t).and_then(|p| p.watched_since);
                    if let Some(status) =
                        must_keep(root.as_fd(), target, action, &kept, live, since)
                    {
                        if let Part::Unit(u) = action.item.part {
                            kept.insert(u);
                        }
                        result(i, status, Vec::new())
                    } else {
                        let before = (tally.freed, tally.files);
                        let mut remover = Remover::new(mode, &mut tally, root_meta);
                        for rel in paths_of(target, action.item.part) {
                            remover.remove_path(root.as_fd(), rel);
                        }
                        let (errors, mounts) = (remover.errors, remover.mounts);
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
                            mount_points: mounts,
                        }
                    }
                }
            };
            if let Part::Unit(u) = action.item.part {
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
    report.reclaimed_bytes = report
        .results
        .iter()
        .fold(0, |t, r| t.saturating_add(r.reclaimed_bytes));
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
        mount_points: Vec::new(),
    }
}

fn skip_all(report: &mut SweepReport, actions: &[usize], status: Status, why: &str) {
    for &i in actions {
        report
            .results
            .push(result(i, status.clone(), vec![why.to_string()]));
    }
}

fn profile_of(target: &TargetDir, part: Part) -> u16 {
    match part {
        Part::Unit(u) => target.units[u].key.profile,
        Part::Incremental(i) => target.incremental[i].profile,
        Part::Orphan(o) => target.orphans[o].key.profile,
    }
}

fn paths_of(target: &TargetDir, part: Part) -> &[std::path::PathBuf] {
    match part {
        Part::Unit(u) => &target.units[u].paths,
        Part::Incremental(i) => std::slice::from_ref(&target.incremental[i].path),
        Part::Orphan(o) => &target.orphans[o].paths,
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
    match locks::try_lock(fd.as_fd()) {
        Ok(locks::Outcome::Locked(l)) => ProfileAccess::Locked(l),
        Ok(locks::Outcome::Busy) => ProfileAccess::Unavailable(
            Status::SkippedBusy,
            format!("{}: a build holds cargo's lock", rel.display()),
        ),
        Ok(locks::Outcome::NoLockFile) => ProfileAccess::Unavailable(
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
    action: &CargoAction,
    kept: &HashSet<usize>,
    live: Option<&dyn RecordedUses>,
    watched_since: Option<SystemTime>,
) -> Option<Status> {
    match action.item.part {
        Part::Unit(u) => {
            let unit = &target.units[u];
            if unit.dependents.iter().any(|d| kept.contains(d)) {
                return Some(Status::SkippedDependentKept);
            }
            let planned = action
                .last_use
                .unwrap_or_else(|| unit.last_used.max(unit.last_built));
            let used = files_last_use(root, unit, watched_since)
                .max(live.and_then(|l| l.recorded_use(&target.path, &unit.fingerprint_dir)));
            if used.is_some_and(|t| t > planned) {
                return Some(Status::SkippedUsed);
            }
            None
        }
        Part::Incremental(i) => {
            let inc = &target.incremental[i];
            if action.rule != Rule::Incremental && inc.owners.iter().any(|o| kept.contains(o)) {
                return Some(Status::SkippedDependentKept);
            }
            let dir = safefs::open_rel_dir(root, &inc.path).ok()?;
            inc.session_locks
                .iter()
                .any(|l| locks::session_lock_held(dir.as_fd(), OsStr::new(l)).unwrap_or(true))
                .then_some(Status::SkippedBusy)
        }
        Part::Orphan(_) => None,
    }
}
