//! Which opens are a build's use: build windows read from the ordered stream of inotify events.
//!
//! A use is an open of a unit's signal file (its dep-info, a build-script run's `output`)
//! while cargo holds that profile's build lock. Readers (`cp -a`, `tar`, `rsync`, `grep -r`, a
//! backup agent, an indexer, cachekeeper itself) open the same files, so an open alone says
//! nothing. Cargo opens the lock file (`.cargo-lock`, and `.cargo-build-lock` /
//! `.cargo-artifact-lock` from 1.96) read-write before its build and closes it when done; one
//! inotify instance delivers a dir's events in order, so the lock file's own open and close
//! events bracket the build in the same stream as the unit opens, however late the stream is
//! read. A no-op build holding the lock for 50 ms is as visible as an hour-long one.
//!
//! **The window that counts** ([`Windows`]): a *period* of a profile starts when its lock file
//! is opened with no other handle open, and ends when every handle opened since is closed. A
//! period is a build's when a handle opened for writing was closed in it (cargo opens the lock
//! read-write; readers and cachekeeper open it read-only), or when `/proc/locks` showed the lock
//! held by a process other than cachekeeper while the period was open ([`Event::Held`]); never
//! by taking the lock. Signal opens in a build's period are its uses; outside one, or in a
//! period of readers only, they are nothing.
//!
//! **A reader during a build**: a reader that copies a unit's dir also reads files cargo never
//! reads for a unit it does not rebuild (the fingerprint's JSON, `invoked.timestamp`); such a
//! read marks the unit, and a marked unit is not counted for that build unless the build wrote
//! it (compiled it). Marks that arrive within [`GRACE`] after the period ends still count, so a
//! reader whose reads straddle the end of the build is caught. What is left: a program reading
//! nothing but dep-info files while a build runs looks like that build.
//!
//! Pure: events in, finished builds out; the tracker does the I/O.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after a build's period ends a reader's marks still apply to it.
pub const GRACE: Duration = Duration::from_secs(1);

/// What happened in a profile, in stream order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<U> {
    /// A lock file of the profile was opened (by whom and how, the open does not say).
    LockOpen,
    /// A lock file handle was closed; `write`: it had been opened for writing (cargo's).
    LockClose { write: bool },
    /// `/proc/locks` shows a lock file of the profile held by a process that is not
    /// cachekeeper, while a period is open.
    Held,
    /// A unit's signal file was opened.
    Signal(U),
    /// A file of a unit was written (created, modified, renamed into place).
    Write(U),
    /// A file of a unit that cargo reads only to rewrite it was read and closed unwritten.
    Reader(U),
}

/// One build's uses of the units of one profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build<P, U> {
    pub profile: P,
    /// The build's id: when its period started, in milliseconds since the epoch, raised where
    /// needed to be above every id given before (see [`Windows::next_id`]).
    pub id: u64,
    pub uses: Vec<(U, SystemTime)>,
}

#[derive(Debug)]
struct Period<U> {
    id: u64,
    handles: u32,
    build: bool,
    /// First signal open of each unit.
    signals: HashMap<U, SystemTime>,
    /// First write of each unit.
    writes: HashMap<U, SystemTime>,
    readers: HashSet<U>,
}

impl<U: Clone + Eq + Hash> Period<U> {
    fn new(id: u64) -> Period<U> {
        Period {
            id,
            handles: 0,
            build: false,
            signals: HashMap::new(),
            writes: HashMap::new(),
            readers: HashSet::new(),
        }
    }

    /// Units it used: written, or opened and not marked by a reader.
    fn uses(&self) -> Vec<(U, SystemTime)> {
        let mut out: HashMap<U, SystemTime> = self.writes.clone();
        for (u, at) in &self.signals {
            if !self.readers.contains(u) {
                out.entry(u.clone())
                    .and_modify(|t| *t = (*t).min(*at))
                    .or_insert(*at);
            }
        }
        out.into_iter().collect()
    }

    fn touches(&self, unit: &U) -> bool {
        self.signals.contains_key(unit) || self.writes.contains_key(unit)
    }
}

/// Build windows of every profile; see the module doc.
#[derive(Debug)]
pub struct Windows<P, U> {
    open: HashMap<P, Period<U>>,
    /// Builds whose period ended, waiting out [`GRACE`], with when it ended.
    ended: Vec<(P, Period<U>, SystemTime)>,
    /// The last id given to a period.
    last_id: u64,
}

impl<P: Clone + Eq + Hash, U: Clone + Eq + Hash> Default for Windows<P, U> {
    fn default() -> Self {
        Windows {
            open: HashMap::new(),
            ended: Vec::new(),
            last_id: 0,
        }
    }
}

impl<P: Clone + Eq + Hash, U: Clone + Eq + Hash> Windows<P, U> {
    /// An id for a period starting at `at`: its millisecond since the epoch, or one above the
    /// last id given, whichever is more. Events are timed when they are read, so under load two
    /// builds read in one batch start in the same millisecond; a use is recorded once per unit
    /// and build id, so equal ids would drop the second build's uses (seen in CI: 7 of 20
    /// no-op builds uncounted).
    fn next_id(&mut self, at: SystemTime) -> u64 {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_id = ms.max(self.last_id.saturating_add(1));
        self.last_id
    }

    /// Takes the next event of `profile`, seen at `at`.
    pub fn feed(&mut self, profile: &P, event: Event<U>, at: SystemTime) {
        match event {
            Event::LockOpen => {
                if !self.open.contains_key(profile) {
                    let id = self.next_id(at);
                    self.open.insert(profile.clone(), Period::new(id));
                }
                if let Some(p) = self.open.get_mut(profile) {
                    p.handles += 1;
                }
            }
            Event::LockClose { write } => {
                // A close without an open we saw: the handle was opened before we watched.
                let Some(p) = self.open.get_mut(profile) else {
                    return;
                };
                p.build |= write;
                p.handles = p.handles.saturating_sub(1);
                if p.handles == 0
                    && let Some(p) = self.open.remove(profile)
                    && p.build
                {
                    self.ended.push((profile.clone(), p, at));
                }
            }
            Event::Held => {
                if let Some(p) = self.open.get_mut(profile) {
                    p.build = true;
                }
            }
            Event::Signal(u) => {
                if let Some(p) = self.open.get_mut(profile) {
                    p.signals.entry(u).or_insert(at);
                }
            }
            Event::Write(u) => {
                if let Some(p) = self.open.get_mut(profile) {
                    p.writes.entry(u).or_insert(at);
                }
            }
            Event::Reader(u) => {
                if let Some(p) = self.open.get_mut(profile) {
                    p.readers.insert(u.clone());
                }
                for (q, p, ended) in &mut self.ended {
                    if q == profile && at <= *ended + GRACE {
                        p.readers.insert(u.clone());
                    }
                }
            }
        }
    }

    /// The builds whose grace has passed by `now`, with their uses.
    pub fn finish(&mut self, now: SystemTime) -> Vec<Build<P, U>> {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ended)
            .into_iter()
            .partition(|(_, _, ended)| *ended + GRACE <= now);
        self.ended = waiting;
        done.into_iter()
            .map(|(profile, p, _)| Build {
                profile,
                id: p.id,
                uses: p.uses(),
            })
            .collect()
    }

    /// Whether a period open now or a build not yet finished may have used `unit`: the sweep
    /// counts that as a use (it must never remove what a build just read).
    #[must_use]
    pub fn in_flight(&self, unit: &U) -> bool {
        self.open.values().any(|p| p.touches(unit))
            || self.ended.iter().any(|(_, p, _)| p.touches(unit))
    }

    /// Forgets every open period (events were lost: nothing seen since can be placed).
    pub fn lost(&mut self) {
        self.open.clear();
    }

    /// Whether a period of any profile is open.
    #[must_use]
    pub fn any_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Whether a period of `profile` is open.
    #[must_use]
    pub fn is_open(&self, profile: &P) -> bool {
        self.open.contains_key(profile)
    }

    /// Whether a period of `profile` is open and not yet known to be a build's.
    #[must_use]
    pub fn unconfirmed(&self, profile: &P) -> bool {
        self.open.get(profile).is_some_and(|p| !p.build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    type W = Windows<&'static str, &'static str>;

    fn run(events: &[(u64, Event<&'static str>)]) -> Vec<Build<&'static str, &'static str>> {
        let mut w = W::default();
        for (at, e) in events {
            w.feed(&"debug", e.clone(), t(*at));
        }
        let mut builds = w.finish(t(1_000_000));
        for b in &mut builds {
            b.uses.sort();
        }
        builds
    }

    #[test]
    fn a_no_op_build_uses_what_it_opens_while_it_holds_the_lock() {
        let b = run(&[
            (10, Event::Signal("before")),
            (100, Event::LockOpen),
            (110, Event::Signal("a")),
            (111, Event::Signal("a")),
            (120, Event::Signal("b")),
            (150, Event::LockClose { write: true }),
            (160, Event::Signal("after")),
        ]);
        assert_eq!(
            b,
            vec![Build {
                profile: "debug",
                id: 100,
                uses: vec![("a", t(110)), ("b", t(120))],
            }]
        );
    }

    #[test]
    fn readers_alone_are_never_a_build() {
        // cp -a: opens the lock file read-only, then every file of every unit.
        assert!(
            run(&[
                (100, Event::LockOpen),
                (101, Event::LockClose { write: false }),
                (110, Event::Signal("a")),
                (111, Event::Reader("a")),
            ])
            .is_empty()
        );
        // grep -r reading the lock file while it reads the units.
        assert!(
            run(&[
                (100, Event::LockOpen),
                (110, Event::Signal("a")),
                (120, Event::LockClose { write: false }),
            ])
            .is_empty()
        );
        // cat of every dep-info: no lock file at all.
        assert!(run(&[(110, Event::Signal("a")), (120, Event::Signal("b"))]).is_empty());
    }

    #[test]
    fn a_reader_during_a_build_adds_nothing_the_build_did_not_use() {
        let b = run(&[
            (100, Event::LockOpen), // cargo
            (105, Event::Signal("used")),
            (110, Event::LockOpen), // cp -a
            (111, Event::LockClose { write: false }),
            (120, Event::Signal("unused")), // cp reads a unit the build does not use
            (121, Event::Reader("unused")),
            (130, Event::Signal("compiled")),
            (131, Event::Reader("compiled")), // cargo reads the old JSON of a dirty unit...
            (132, Event::Write("compiled")),  // ...and writes the new one
            // cp's read of a unit's dep-info just before the build ends (its JSON, after: below).
            (140, Event::Signal("late")),
            (150, Event::LockClose { write: true }),
        ]);
        assert_eq!(b.len(), 1);
        let used: Vec<&str> = b[0].uses.iter().map(|(u, _)| *u).collect();
        assert_eq!(used, vec!["compiled", "late", "used"]);

        let mut w = W::default();
        for (at, e) in [
            (100, Event::LockOpen),
            (140, Event::Signal("late")),
            (150, Event::LockClose { write: true }),
            (700, Event::Reader("late")),
        ] {
            w.feed(&"debug", e, t(at));
        }
        assert!(w.in_flight(&"late"));
        assert!(w.finish(t(1000)).is_empty(), "finished within the grace");
        let b = w.finish(t(1150));
        assert_eq!(b.len(), 1);
        assert!(b[0].uses.is_empty(), "{b:?}");
        assert!(!w.in_flight(&"late"));
    }

    #[test]
    fn proc_locks_confirms_a_build_whose_lock_is_opened_read_only() {
        let b = run(&[
            (100, Event::LockOpen),
            (101, Event::Held),
            (110, Event::Signal("a")),
            (150, Event::LockClose { write: false }),
        ]);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].uses, vec![("a", t(110))]);
    }

    #[test]
    fn back_to_back_builds_are_two_and_lost_events_forget_the_open_one() {
        let mut w = W::default();
        for (at, e) in [
            (100, Event::LockOpen),
            (110, Event::Signal("a")),
            (150, Event::LockClose { write: true }),
            (160, Event::LockOpen),
            (170, Event::Signal("a")),
            (180, Event::LockClose { write: true }),
            (200, Event::LockOpen),
            (210, Event::Signal("b")),
        ] {
            w.feed(&"debug", e, t(at));
        }
        assert!(w.unconfirmed(&"debug"));
        w.lost();
        w.feed(&"debug", Event::LockClose { write: true }, t(220));
        let ids: Vec<u64> = w.finish(t(5000)).iter().map(|b| b.id).collect();
        assert_eq!(ids, vec![100, 160]);
        // Builds read in one batch (timed in one millisecond) are still two, in order.
        for e in [
            Event::LockOpen,
            Event::Signal("a"),
            Event::LockClose { write: true },
            Event::LockOpen,
            Event::Signal("a"),
            Event::LockClose { write: true },
        ] {
            w.feed(&"debug", e, t(250));
        }
        let ids: Vec<u64> = w.finish(t(5000)).iter().map(|b| b.id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[0] > 200 && ids[1] > ids[0], "{ids:?}");
        // Another profile's lock says nothing of this one's units.
        w.feed(&"release", Event::LockOpen, t(300));
        w.feed(&"debug", Event::Signal("a"), t(310));
        w.feed(&"release", Event::LockClose { write: true }, t(320));
        assert!(w.finish(t(5000)).iter().all(|b| b.uses.is_empty()));
    }
}
