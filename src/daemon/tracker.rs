//! Exact last use: what builds use, seen with inotify as it happens.
//!
//! Watched (one non-recursive watch each, never through a symlink; see [`super::watches`]):
//! every unit's fingerprint dir, every build-script run's dir, every profile dir (for cargo's
//! lock files), the dirs new units appear in, and each target dir itself (new profiles). The
//! events of one inotify instance arrive in order, and [`super::builds::Windows`] reads them:
//! an open of a unit's signal file (its dep-info; a run's `output`, `root-output`, `stdout`)
//! is a use only inside a build's window, while cargo holds the profile's build lock; a write
//! in a unit's dirs inside the window is one too (the build compiled it). Readers of a target
//! dir (`cp -a`, `tar`, `rsync`, `grep -r`, backup agents, indexers, cachekeeper itself) are
//! never uses; see that module for the window and for a reader running during a build.
//!
//! A use counts once per unit and build, and is recorded with the build's id, which the
//! superseded rule reads. `/proc/locks` confirms a window whose lock was not opened for
//! writing, and keeps one open whose opens the kernel merged; the lock is never taken.
//!
//! The watch limit (`fs.inotify.max_user_watches`) can run out: units that could not be
//! watched fall back to access times, and `status` says how many. A queue overflow forgets the
//! windows open then (their uses are lost, never invented) and is counted.
//!
//! The same events keep the daemon's index current ([`super::walks`]): a write, a creation or
//! a removal in a target dir's watched dirs marks it changed, and the daemon is woken to walk
//! it again once the build is over; an overflow marks everything.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustix::fs::inotify::{self, ReadFlags};

use super::builds::{Event, Windows};
use super::walks::Changed;
use super::watches::{Parent, ProfileKey, Rels, UnitKey, Watched, meaning, watch_flags};
use cachekeeper_core::model::{LastUse, Layout, RecordedUses, TargetDir, TrackStats};

#[derive(Default)]
struct State {
    /// What each watch is.
    by_wd: super::watches::ByWd,
    /// The units' dirs the watches name.
    rels: Rels,
    windows: Windows<ProfileKey, UnitKey>,
    /// Target dirs something was written in, created or removed since the index last asked,
    /// and which of their units: what a refresh walks again.
    changed: HashMap<PathBuf, Changed>,
    /// Target dirs with a unit first watched after a walk measured it: a write in between was
    /// not seen, so the next refresh that walks the dir walks every unit of it.
    unsure: HashSet<PathBuf>,
    /// Events were lost since the index last asked: nothing can be taken as unchanged.
    overflowed: bool,
}

struct Inner {
    fd: OwnedFd,
    state: Mutex<State>,
    uses: Arc<Mutex<LastUse>>,
    /// New uses recorded since the daemon started (one per unit and build).
    counted: AtomicU64,
    /// Times the kernel's event queue overflowed.
    overflows: AtomicU64,
    /// Woken when a target dir changed (the daemon refreshes its index).
    changes: Arc<tokio::sync::Notify>,
}

impl State {
    /// Notes that `unit` of `target` (`None`: anything in it) changed; returns whether this is
    /// news.
    fn mark(&mut self, target: &Path, unit: Option<&Path>) -> bool {
        match self.changed.get_mut(target) {
            Some(c) => c.add(unit),
            None => {
                self.changed.insert(target.to_path_buf(), Changed::of(unit));
                true
            }
        }
    }
}

/// The unit an entry removed from a watched dir was, if the dir holds units (`None`: it may
/// have been anything).
fn removed_unit(watched: &Watched, rels: &Rels, name: &OsStr) -> Option<PathBuf> {
    match watched {
        Watched::Unit { unit, .. } => Some(rels.get(*unit).to_path_buf()),
        Watched::Units(profile, parent, _) => parent.unit(&profile.1, name),
        Watched::Target(_) | Watched::Profile(_) => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Inner {
    /// Reads events until the process ends; finishes builds as their grace passes.
    fn run(self: Arc<Self>) {
        let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 64 * 1024];
        loop {
            let mut fds = [rustix::event::PollFd::new(
                &self.fd,
                rustix::event::PollFlags::IN,
            )];
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 250_000_000,
            };
            match rustix::event::poll(&mut fds, Some(&timeout)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::error!("watching for builds stopped: {e}");
                    return;
                }
            }
            let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buf);
            loop {
                let event = match reader.next() {
                    Ok(e) => e,
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => break,
                    Err(e) => {
                        tracing::error!("watching for builds stopped: {e}");
                        return;
                    }
                };
                let name = event
                    .file_name()
                    .map(|n| OsStr::from_bytes(n.to_bytes()).to_os_string());
                self.take(event.wd(), event.events(), name.as_deref());
                if reader.is_buffer_empty() {
                    break;
                }
            }
            self.finish(SystemTime::now());
        }
    }

    fn take(&self, wd: i32, flags: ReadFlags, name: Option<&OsStr>) {
        let now = SystemTime::now();
        let mut st = lock(&self.state);
        if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
            self.overflows.fetch_add(1, Ordering::Relaxed);
            st.windows.lost();
            st.overflowed = true;
            self.changes.notify_one();
            tracing::warn!(
                "inotify's event queue overflowed: uses during the builds running then are not recorded"
            );
            return;
        }
        if flags.contains(ReadFlags::IGNORED) {
            // The watched dir is gone (`cargo clean`, a run of ours): what held it changed. A
            // watch the tracker removed itself is no longer in `by_wd`.
            if let Some(watched) = st.by_wd.remove(&wd) {
                let unit = match &watched {
                    Watched::Unit { unit, .. } => Some(st.rels.get(*unit).to_path_buf()),
                    _ => None,
                };
                st.mark(watched.target(), unit.as_deref());
                self.changes.notify_one();
            }
            return;
        }
        let (Some(watched), Some(name)) = (st.by_wd.get(&wd).cloned(), name) else {
            return;
        };
        if flags.contains(ReadFlags::DELETE) || flags.contains(ReadFlags::MOVED_FROM) {
            let unit = removed_unit(&watched, &st.rels, name);
            if st.mark(watched.target(), unit.as_deref()) {
                self.changes.notify_one();
            }
        } else if matches!(watched, Watched::Target(_)) && st.mark(watched.target(), None) {
            self.changes.notify_one();
        }
        if flags.contains(ReadFlags::CREATE | ReadFlags::ISDIR) {
            self.follow(&mut st, &watched, name);
        }
        let Some((profile, event)) = meaning(&watched, &st.rels, flags, name) else {
            return;
        };
        if let Event::Write((target, unit)) = &event
            && st.mark(target, Some(unit))
        {
            self.changes.notify_one();
        }
        let lock_event = matches!(event, Event::LockOpen | Event::LockClose { .. });
        let closing = matches!(event, Event::LockClose { .. });
        st.windows.feed(&profile, event, now);
        // Confirm a window by /proc/locks: one not yet known to be a build's when its lock is
        // opened, and one whose last handle closed while a build still holds the lock (the
        // kernel merged two opens into one event).
        if lock_event
            && (st.windows.unconfirmed(&profile) || closing)
            && held(&watched.path_in(&st.rels), name)
        {
            if closing && !st.windows.is_open(&profile) {
                st.windows.feed(&profile, Event::LockOpen, now);
            }
            st.windows.feed(&profile, Event::Held, now);
        }
    }

    /// Watches a dir a build just created where units live: a new unit's fingerprint dir (so
    /// its next builds are seen before the next rescan), a new package's dir (build-dir
    /// layout, where its units appear).
    fn follow(&self, st: &mut State, watched: &Watched, name: &OsStr) {
        let Watched::Units(profile, parent, dir) = watched else {
            return;
        };
        let owner: Watched<PathBuf> = match parent {
            Parent::Fingerprints => {
                let Some(unit) = parent.unit(&profile.1, name) else {
                    return;
                };
                Watched::Unit {
                    target: profile.0.clone(),
                    unit,
                    profile: profile.1.clone(),
                    run: None,
                }
            }
            Parent::Packages => Watched::Units(
                profile.clone(),
                Parent::Package(name.to_string_lossy().into_owned()),
                dir.join(name).into(),
            ),
            Parent::Package(_) => return,
        };
        // A dir watched already (a sync may watch it before its creation is read) keeps its
        // watch: `MASK_CREATE` refuses rather than replace the mask; where the kernel (< 4.18)
        // ignores it, the watch's descriptor comes back and at least its meaning stays.
        let flags = watch_flags(&owner) | inotify::WatchFlags::MASK_CREATE;
        if let Ok(wd) = inotify::add_watch(&self.fd, owner.path(), flags)
            && !st.by_wd.contains_key(&wd)
            && let Some(owner) = owner.map(|p| st.rels.add(p))
        {
            st.by_wd.insert(wd, owner);
        }
    }

    /// Records the uses of builds whose grace has passed.
    fn finish(&self, now: SystemTime) {
        let builds = lock(&self.state).windows.finish(now);
        if builds.iter().all(|b| b.uses.is_empty()) {
            return;
        }
        let mut uses = lock(&self.uses);
        for b in builds {
            for ((target, unit), at) in b.uses {
                if uses.record_use(&target, &unit, at, b.id) {
                    self.counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Whether a program other than cachekeeper holds the lock file `name` in `dir` now.
fn held(dir: &Path, name: &OsStr) -> bool {
    cachekeeper_sys::os::safefs::open_dir(dir)
        .and_then(|d| cachekeeper_sys::os::locks::held_by_another_program(d.as_fd(), name))
        .unwrap_or(false)
}

/// Uses recorded, and uses of builds still in their window (the sweep asks, under cargo's lock,
/// whether a build used a unit since the plan was made: one that just did, counts).
pub struct LiveUses(Arc<Inner>);

impl RecordedUses for LiveUses {
    fn recorded_use(&self, target: &Path, unit: &Path) -> Option<SystemTime> {
        let key = (Arc::from(target), Arc::from(unit));
        if lock(&self.0.state).windows.in_flight(&key) {
            return Some(SystemTime::now());
        }
        lock(&self.0.uses).recorded(target, unit)
    }
}

pub struct Tracker {
    inner: Option<Arc<Inner>>,
    /// Woken when a target dir changed.
    changes: Arc<tokio::sync::Notify>,
    uses: Arc<Mutex<LastUse>>,
    /// Target dirs with at least one dir not watched.
    partial: HashSet<PathBuf>,
    /// When this process started watching each target dir whole.
    since: HashMap<PathBuf, SystemTime>,
    stats: TrackStats,
}

impl Tracker {
    /// Starts watching nothing yet; `enabled = false` gives a tracker that never watches.
    #[must_use]
    pub fn new(uses: Arc<Mutex<LastUse>>, enabled: bool) -> Tracker {
        let mut stats = TrackStats::default();
        let changes = Arc::new(tokio::sync::Notify::new());
        let inner = if enabled {
            match inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK) {
                Ok(fd) => {
                    let inner = Arc::new(Inner {
                        fd,
                        state: Mutex::new(State::default()),
                        uses: Arc::clone(&uses),
                        counted: AtomicU64::new(0),
                        overflows: AtomicU64::new(0),
                        changes: Arc::clone(&changes),
                    });
                    let reader = Arc::clone(&inner);
                    match std::thread::Builder::new()
                        .name("builds".into())
                        .spawn(move || reader.run())
                    {
                        Ok(_) => Some(inner),
                        Err(e) => {
                            stats.error =
                                Some(format!("cannot watch for builds ({e}); using access times"));
                            None
                        }
                    }
                }
                Err(e) => {
                    stats.error =
                        Some(format!("cannot watch for builds ({e}); using access times"));
                    None
                }
            }
        } else {
            None
        };
        Tracker {
            inner,
            changes,
            uses,
            partial: HashSet::new(),
            since: HashMap::new(),
            stats,
        }
    }

    /// Watches every profile and unit of `targets`, and stops watching what is gone. Every unit
    /// is noted as seen.
    pub fn sync<'t>(&mut self, targets: &'t [TargetDir], now: SystemTime) {
        // The dirs to watch, by path; units' dirs borrowed from `targets`.
        let mut desired: HashMap<PathBuf, Watched<&Path>> = HashMap::new();
        let mut want = |w: Watched<&'t Path>| {
            desired.insert(w.path(), w);
        };
        {
            let mut uses = lock(&self.uses);
            for t in targets {
                // One allocation for a target dir and for each profile, shared by its watches.
                let target: Arc<Path> = Arc::from(t.path.as_path());
                let profiles: Vec<Arc<Path>> = t
                    .profiles
                    .iter()
                    .map(|p| Arc::from(p.rel.as_path()))
                    .collect();
                want(Watched::Target(target.clone()));
                for (p, rel) in t.profiles.iter().zip(&profiles) {
                    let key = (target.clone(), rel.clone());
                    let units =
                        |parent, dir: PathBuf| Watched::Units(key.clone(), parent, dir.into());
                    if p.layouts.contains(&Layout::Legacy) {
                        want(units(Parent::Fingerprints, p.rel.join(".fingerprint")));
                    }
                    if p.layouts.contains(&Layout::New) {
                        want(units(Parent::Packages, p.rel.join("build")));
                        for pkg in std::fs::read_dir(t.path.join(&p.rel).join("build"))
                            .into_iter()
                            .flatten()
                            .flatten()
                        {
                            if pkg.file_type().is_ok_and(|t| t.is_dir()) {
                                let name = pkg.file_name();
                                want(units(
                                    Parent::Package(name.to_string_lossy().into_owned()),
                                    p.rel.join("build").join(name),
                                ));
                            }
                        }
                    }
                    want(Watched::Profile(key));
                }
                for u in &t.units {
                    let watched = |run| Watched::Unit {
                        target: target.clone(),
                        unit: u.fingerprint_dir.as_path(),
                        profile: profiles[usize::from(u.key.profile)].clone(),
                        run,
                    };
                    want(watched(None));
                    if let Some(run) = &u.run_dir {
                        want(watched(Some(run.as_path())));
                    }
                }
                uses.observe_units(
                    &t.path,
                    t.units.iter().map(|u| u.fingerprint_dir.as_path()),
                    now,
                );
            }
            let paths: Vec<PathBuf> = targets.iter().map(|t| t.path.clone()).collect();
            uses.retain_targets(&paths);
        }
        let Some(inner) = self.inner.clone() else {
            self.partial = targets.iter().map(|t| t.path.clone()).collect();
            self.stats.unwatched_units = targets.iter().map(|t| t.units.len()).sum();
            return;
        };
        let mut guard = lock(&inner.state);
        let st = &mut *guard;
        // What is watched and still wanted stays; what no longer is, is let go.
        let mut have: HashSet<PathBuf> = HashSet::with_capacity(st.by_wd.len());
        st.by_wd.retain(|&wd, w| {
            let path = w.path_in(&st.rels);
            if desired.contains_key(&path) {
                have.insert(path);
                true
            } else {
                let _ = inotify::remove_watch(&inner.fd, wd);
                false
            }
        });
        let mut unwatched: HashSet<(&Path, &Path)> = HashSet::new();
        let mut partial: HashSet<PathBuf> = HashSet::new();
        let mut limit = false;
        for (dir, owner) in &desired {
            if have.contains(dir) {
                continue;
            }
            let miss = |unwatched: &mut HashSet<_>, partial: &mut HashSet<PathBuf>| {
                if let Watched::Unit { target, unit, .. } = owner {
                    unwatched.insert((&**target, *unit));
                }
                partial.insert(owner.target().to_path_buf());
            };
            if limit {
                miss(&mut unwatched, &mut partial);
                continue;
            }
            match inotify::add_watch(&inner.fd, dir, watch_flags(owner)) {
                Ok(wd) => {
                    let Some(held) = owner.map(|p| st.rels.add(p)) else {
                        let _ = inotify::remove_watch(&inner.fd, wd);
                        miss(&mut unwatched, &mut partial);
                        continue;
                    };
                    if let Watched::Unit { target, .. } = owner
                        && !st.unsure.contains(&**target)
                    {
                        st.unsure.insert(target.to_path_buf());
                    }
                    st.by_wd.insert(wd, held);
                }
                Err(e) => {
                    if e == rustix::io::Errno::NOSPC {
                        limit = true;
                        tracing::warn!(
                            "inotify watch limit reached (fs.inotify.max_user_watches): units beyond it fall back to access times"
                        );
                    }
                    miss(&mut unwatched, &mut partial);
                }
            }
        }
        // Dead paths past half the table: made again with only the live ones.
        if st.rels.len() > 2 * super::watches::live_bytes(&st.by_wd) + 64 * 1024 {
            (st.by_wd, st.rels) = super::watches::compacted(&st.by_wd, &st.rels);
        }
        // Every unit has one fingerprint dir watch (a build-script run has a second): counted
        // by those, without collecting the units.
        self.stats.watched_units = st
            .by_wd
            .values()
            .filter(|w| match w {
                Watched::Unit {
                    target,
                    unit,
                    run: None,
                    ..
                } => !unwatched.contains(&(&**target, st.rels.get(*unit))),
                _ => false,
            })
            .count();
        self.stats.unwatched_units = unwatched.len();
        self.stats.watch_limit_reached |= limit;
        drop(guard);
        self.partial = partial;
        let whole: HashSet<&PathBuf> = targets
            .iter()
            .map(|t| &t.path)
            .filter(|p| !self.partial.contains(*p))
            .collect();
        self.since.retain(|p, _| whole.contains(p));
        for p in whole {
            self.since.entry(p.clone()).or_insert(now);
        }
    }

    /// Makes the watches again in fresh memory: the units' dirs in a table of exactly theirs,
    /// the few shared paths (target dirs, profiles) in fresh allocations. Made while a walk
    /// ran, what the watches hold lies among its freed buffers and keeps those pages resident;
    /// moved, the pages go back to the kernel.
    pub fn rehome(&self) {
        let Some(inner) = &self.inner else { return };
        let mut guard = lock(&inner.state);
        let st = &mut *guard;
        (st.by_wd, st.rels) = super::watches::compacted(&st.by_wd, &st.rels);
    }

    /// When this process started watching `target` whole, so that its last uses since are
    /// exact; `None` when it is not watched whole.
    #[must_use]
    pub fn watched_since(&self, target: &Path) -> Option<SystemTime> {
        self.inner.as_ref()?;
        self.since.get(target).copied()
    }

    /// Records the uses of builds whose window has closed (the reader thread does this too;
    /// runs call it first, so a build that just ended is in their input).
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            inner.finish(SystemTime::now());
        }
    }

    /// What the sweep asks under cargo's lock: recorded uses, and those of builds in progress.
    #[must_use]
    pub fn live(&self) -> Option<Arc<dyn RecordedUses>> {
        self.inner
            .as_ref()
            .map(|i| Arc::new(LiveUses(Arc::clone(i))) as Arc<dyn RecordedUses>)
    }

    /// Woken whenever a watched target dir changed (a build wrote in it, a unit or profile was
    /// removed) or events were lost.
    #[must_use]
    pub fn changes(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.changes)
    }

    /// The target dirs that changed since the last call (and which of their units, where that
    /// is known), and whether events were lost meanwhile (then nothing can be taken as
    /// unchanged). `None` without watches: nothing is known.
    pub fn take_changes(&self) -> Option<(HashMap<PathBuf, Changed>, bool)> {
        let inner = self.inner.as_ref()?;
        let mut st = lock(&inner.state);
        let mut changed = std::mem::take(&mut st.changed);
        for (target, c) in &mut changed {
            if st.unsure.remove(target) {
                *c = Changed::Whole;
            }
        }
        Some((changed, std::mem::take(&mut st.overflowed)))
    }

    /// A walk of everything starts: a unit watched now is measured with its watch in place, so
    /// no dir needs walking whole for one first watched after an earlier walk measured it.
    pub fn walking_everything(&self) {
        if let Some(inner) = &self.inner {
            lock(&inner.state).unsure.clear();
        }
    }

    /// Whether a build holds a lock in a watched profile now (a refresh waits for it to end).
    #[must_use]
    pub fn building(&self) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|i| lock(&i.state).windows.any_open())
    }

    /// Target dirs with a dir not watched (beyond the watch limit): their changes are not seen.
    #[must_use]
    pub fn partial(&self) -> &HashSet<PathBuf> {
        &self.partial
    }

    #[must_use]
    pub fn stats(&self) -> TrackStats {
        let (uses, overflows) = self.inner.as_ref().map_or((0, 0), |i| {
            (
                i.counted.load(Ordering::Relaxed),
                i.overflows.load(Ordering::Relaxed),
            )
        });
        TrackStats {
            uses,
            overflows,
            ..self.stats.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy-layout target dir of `n` units, as cargo leaves one, measured.
    fn target(dir: &Path, n: usize) -> TargetDir {
        let t = dir.join("target");
        std::fs::create_dir_all(t.join("debug/deps")).unwrap();
        std::fs::write(
            t.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cargo.\n",
        )
        .unwrap();
        std::fs::write(t.join("debug/.cargo-lock"), "").unwrap();
        for i in 0..n {
            let name = format!("p{i}-{i:016x}");
            let fp = t.join("debug/.fingerprint").join(&name);
            std::fs::create_dir_all(&fp).unwrap();
            std::fs::write(fp.join(format!("lib-p{i}")), format!("{i:016x}")).unwrap();
            std::fs::write(
                fp.join(format!("lib-p{i}.json")),
                r#"{"rustc":1,"features":"[]","declared_features":"[]","target":2,"profile":3,"path":4,"deps":[],"local":[],"rustflags":[],"config":0,"compile_kind":0}"#,
            )
            .unwrap();
            std::fs::write(t.join(format!("debug/deps/libp{i}-{i:016x}.rlib")), "x").unwrap();
        }
        cachekeeper_sys::measure::inventory::scan(&t, 1).unwrap()
    }

    /// Every watch, by dir, as the tracker holds it.
    fn watches(t: &Tracker) -> Vec<String> {
        let st = lock(&t.inner.as_ref().unwrap().state);
        let mut all: Vec<String> = st
            .by_wd
            .iter()
            .map(|(wd, w)| {
                let w = w.map(|r| Some(st.rels.get(*r))).unwrap();
                format!("{wd} {} {w:?}", w.path().display())
            })
            .collect();
        all.sort();
        all
    }

    /// The kernel's event mask of watch `wd`, from the inotify fd's `fdinfo`.
    fn mask(t: &Tracker, wd: i32) -> String {
        use std::os::fd::AsRawFd;
        let fd = t.inner.as_ref().unwrap().fd.as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        let line = info
            .lines()
            .find(|l| l.starts_with(&format!("inotify wd:{wd:x} ")))
            .unwrap();
        line.split(' ')
            .find(|f| f.starts_with("mask:"))
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_dir_followed_that_is_watched_already_keeps_its_watch_and_its_mask() {
        let tmp = tempfile::tempdir().unwrap();
        let t = target(tmp.path(), 1);
        let mut tracker = Tracker::new(Arc::new(Mutex::new(LastUse::default())), true);
        tracker.sync(std::slice::from_ref(&t), SystemTime::now());
        let before = watches(&tracker);
        let unit = &t.units[0].fingerprint_dir;
        let inner = tracker.inner.as_ref().unwrap();
        let wd = {
            let st = lock(&inner.state);
            let dir = t.path.join(unit);
            *st.by_wd
                .iter()
                .find(|(_, w)| w.path_in(&st.rels) == dir)
                .unwrap()
                .0
        };
        let was = mask(&tracker, wd);
        // A dir of packages (other flags) whose new entry is that unit's dir: as when a sync
        // has watched a dir before the event of its creation is read.
        let target: Arc<Path> = Arc::from(t.path.as_path());
        let packages = Watched::Units(
            (target, Arc::from(Path::new("debug"))),
            Parent::Packages,
            Arc::from(unit.parent().unwrap()),
        );
        inner.follow(
            &mut lock(&inner.state),
            &packages,
            unit.file_name().unwrap(),
        );
        assert_eq!(watches(&tracker), before);
        assert_eq!(mask(&tracker, wd), was);
    }

    #[test]
    fn units_gone_leave_their_paths_until_the_table_is_made_again() {
        let tmp = tempfile::tempdir().unwrap();
        let t = target(tmp.path(), 20);
        let uses = Arc::new(Mutex::new(LastUse::default()));
        let mut tracker = Tracker::new(uses, true);
        tracker.sync(std::slice::from_ref(&t), SystemTime::now());
        let mut fewer = t.clone();
        fewer.units.truncate(5);
        tracker.sync(std::slice::from_ref(&fewer), SystemTime::now());
        let kept = watches(&tracker);
        assert_eq!(tracker.stats().watched_units, 5);
        let live = |tracker: &Tracker| {
            let st = lock(&tracker.inner.as_ref().unwrap().state);
            (st.rels.len(), super::super::watches::live_bytes(&st.by_wd))
        };
        let (held, live_now) = live(&tracker);
        assert!(
            held > live_now,
            "the 15 units gone are dead bytes: {held} vs {live_now}"
        );
        tracker.rehome();
        assert_eq!(live(&tracker), (live_now, live_now));
        assert_eq!(watches(&tracker), kept);
        // The units that came back are watched again, under their own paths.
        tracker.sync(std::slice::from_ref(&t), SystemTime::now());
        assert_eq!(tracker.stats().watched_units, 20);
        for u in &t.units {
            let dir = t.path.join(&u.fingerprint_dir).display().to_string();
            assert!(watches(&tracker).iter().any(|w| w.contains(&dir)), "{dir}");
        }
    }

    #[test]
    fn watches_moved_into_fresh_memory_are_the_same_watches() {
        let tmp = tempfile::tempdir().unwrap();
        let t = target(tmp.path(), 20);
        assert_eq!(t.units.len(), 20);
        let uses = Arc::new(Mutex::new(LastUse::default()));
        let mut tracker = Tracker::new(uses, true);
        tracker.sync(std::slice::from_ref(&t), SystemTime::now());
        let before = watches(&tracker);
        assert!(before.len() > 20, "{before:?}");
        tracker.rehome();
        assert_eq!(watches(&tracker), before);
        {
            // The target dir's path is held once, as before.
            let st = lock(&tracker.inner.as_ref().unwrap().state);
            let held: HashSet<*const Path> = st
                .by_wd
                .values()
                .filter_map(|w| match w {
                    Watched::Unit { target, .. } => Some(Arc::as_ptr(target)),
                    _ => None,
                })
                .collect();
            assert_eq!(held.len(), 1);
            // And the units' dirs take one table holding nothing else.
            assert_eq!(st.rels.len(), super::super::watches::live_bytes(&st.by_wd));
        }
        // And they still mean what they meant: a write in a unit's dir names that unit (once
        // a walk measured it with its watch in place).
        tracker.walking_everything();
        tracker.take_changes();
        std::fs::write(t.path.join(&t.units[7].fingerprint_dir).join("x"), "").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let changed = loop {
            let (changed, _) = tracker.take_changes().unwrap();
            if !changed.is_empty() || std::time::Instant::now() > deadline {
                break changed;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(
            changed.get(&t.path),
            Some(&Changed::Units(HashSet::from([t.units[7]
                .fingerprint_dir
                .clone()])))
        );
    }
}
