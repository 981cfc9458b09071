//! The daemon's index of target dirs, kept current by what changed rather than by walking
//! everything again. Pure: what to walk and what to take as it was, and why each walk happened.
//!
//! Every refresh is one of three kinds:
//! - **full**: every target dir found under the roots is walked: at start, every
//!   `full-rescan-interval`, after the watches lost events (the kernel's queue overflowed), on a
//!   new config, and when `status --refresh` asks;
//! - **rescan** (`rescan-interval`): the roots are searched again; the target dirs that changed,
//!   appeared, or have dirs beyond the watch limit are walked, the rest taken as they were;
//! - **events** (a build wrote, a unit or profile was removed): only the target dirs that
//!   changed are walked, without searching the roots, as soon as the build is over.
//!
//! A target dir is "changed" when the tracker saw a write, a creation or a removal in one of its
//! watched dirs (profile dirs, `.fingerprint/`, `build/`, each unit's dirs), or a run of ours
//! acted in it (a removed incremental dir is not in a watched dir). Where the tracker can tell
//! which units changed (a write in a unit's dirs, a unit's dir created or removed), and every
//! unit of the dir is watched, only those units are walked: the others are taken as they were
//! without their files being looked at (see `inventory::earlier`); the dirs holding units are
//! still listed, so what a build added or removed beside them is seen. A profile created or
//! removed, a run of ours, or a unit first watched after it was measured has the whole dir
//! walked. What changes without a build or a run of ours (files deleted by hand in `deps/`) is
//! seen at the next full walk.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cachekeeper_core::model::Packed;
use cachekeeper_sys::measure::Reuse;

/// Why a target dir was walked; each is a label of `cachekeeper_index_walks_total`.
pub const REASONS: [&str; 10] = [
    "start",
    "full-rescan-interval",
    "overflow",
    "config",
    "refresh",
    "retry",
    "no-watches",
    "changed",
    "new-target-dir",
    "watch-limit",
];

/// How much a refresh walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Everything, for this reason (one of [`REASONS`]).
    Full(&'static str),
    Rescan,
    Events,
}

/// What changed in one target dir since the last refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Changed {
    /// Anything may have (a profile created or removed, a run of ours acted in it): every unit
    /// is walked again.
    Whole,
    /// Only these units, by fingerprint dir relative to the target dir, were written, created
    /// or removed: the others are taken as they were, their files not looked at.
    Units(HashSet<PathBuf>),
}

/// Units named as changed before a target dir counts as changed whole: a build that changed
/// more gains little from the rest being taken as they were, and events (anyone may create
/// dirs in `.fingerprint/`) must not grow the set without bound between refreshes.
const MAX_CHANGED_UNITS: usize = 4096;

impl Changed {
    /// Adds that `unit` (`None`: anything) changed; returns whether this is news.
    pub fn add(&mut self, unit: Option<&Path>) -> bool {
        match (self, unit) {
            (Changed::Whole, _) => false,
            (Changed::Units(units), Some(u)) if units.contains(u) => false,
            (Changed::Units(units), Some(u)) if units.len() < MAX_CHANGED_UNITS => {
                units.insert(u.into());
                true
            }
            // Anything changed, or too many units to name.
            (this, _) => {
                *this = Changed::Whole;
                true
            }
        }
    }

    /// What changed, starting from `unit` (`None`: anything).
    #[must_use]
    pub fn of(unit: Option<&Path>) -> Changed {
        match unit {
            Some(u) => Changed::Units(HashSet::from([u.to_path_buf()])),
            None => Changed::Whole,
        }
    }
}

/// What changed since the last refresh.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    pub dirs: HashMap<PathBuf, Changed>,
    /// Target dirs with dirs beyond the watch limit: their changes are not seen.
    pub partial: HashSet<PathBuf>,
}

/// What the index knows of the target dirs.
#[derive(Debug, Default)]
pub struct Index {
    /// Each target dir as last measured, packed (a few hundred bytes a unit, against 2 KiB
    /// as a walk builds it). Handed to a refresh (moved, not copied) and back with what it
    /// measured.
    dirs: HashMap<PathBuf, Packed>,
    /// When each known target dir was last walked.
    walked: HashMap<PathBuf, SystemTime>,
    last_full: Option<SystemTime>,
    walks: BTreeMap<&'static str, u64>,
    /// Target dirs walked and taken as they were by the last refresh.
    last: (usize, usize),
    /// Units looked at and taken as they were by the last refresh.
    last_units: (usize, usize),
}

/// A refresh under way: what was taken as it was, and why the rest is walked.
#[derive(Debug)]
pub struct Pending {
    kind: Kind,
    changes: Changes,
    reused: HashSet<PathBuf>,
}

impl Pending {
    /// Whether it searches the roots (an events refresh does not: what the last search found
    /// stands).
    #[must_use]
    pub fn searches(&self) -> bool {
        self.kind != Kind::Events
    }
}

impl Index {
    /// The kind a periodic refresh is now: full at start, every `full_every`, or after events
    /// were lost (`lost`) or without watches (`watching`); else a rescan.
    #[must_use]
    pub fn periodic(
        &self,
        now: SystemTime,
        full_every: Duration,
        lost: bool,
        watching: bool,
    ) -> Kind {
        match self.last_full {
            None => Kind::Full("start"),
            Some(_) if !watching => Kind::Full("no-watches"),
            Some(_) if lost => Kind::Full("overflow"),
            Some(t) if now.duration_since(t).unwrap_or_default() >= full_every => {
                Kind::Full("full-rescan-interval")
            }
            Some(_) => Kind::Rescan,
        }
    }

    /// What a refresh of `kind` takes as it was, given what changed. The known target dirs go
    /// with it (those that changed as `previous`, for their incremental dirs) and come back
    /// with [`Index::took`]; a refresh that fails leaves the index empty, and the daemon asks
    /// for a full walk then.
    #[must_use]
    pub fn plan(&mut self, kind: Kind, changes: Changes) -> (Option<Reuse<Packed>>, Pending) {
        let known = std::mem::take(&mut self.dirs);
        let reuse = match kind {
            Kind::Full(_) => None,
            Kind::Rescan | Kind::Events => {
                let mut reuse = Reuse::default();
                let mut only = Vec::new();
                for (path, dir) in known {
                    if let Some(changed) = changes.dirs.get(&path) {
                        // Walked again, but the incremental crate dirs no compile touched are
                        // taken from its last walk, and so are the units no build changed
                        // when every unit of it is watched.
                        only.push(path.clone());
                        if let (Changed::Units(units), false) =
                            (changed, changes.partial.contains(&path))
                        {
                            reuse.changed_units.insert(path.clone(), units.clone());
                        }
                        reuse.previous.insert(path, dir);
                    } else if kind == Kind::Events || !changes.partial.contains(&path) {
                        reuse.unchanged.insert(path, dir);
                    }
                }
                reuse.only = (kind == Kind::Events).then_some(only);
                Some(reuse)
            }
        };
        let reused = reuse
            .as_ref()
            .map(|r| r.unchanged.keys().cloned().collect())
            .unwrap_or_default();
        (
            reuse,
            Pending {
                kind,
                changes,
                reused,
            },
        )
    }

    /// Takes what a refresh measured: counts each walk by its reason, and returns the reasons.
    pub fn took(
        &mut self,
        pending: Pending,
        targets: Vec<Packed>,
        now: SystemTime,
    ) -> Vec<(PathBuf, &'static str)> {
        let mut walked = Vec::new();
        let mut at = HashMap::new();
        let n = targets.len();
        let mut units = (0, 0);
        for t in targets {
            let when = match self.walked.get(t.path()) {
                Some(when) if pending.reused.contains(t.path()) => {
                    units.1 += t.units();
                    *when
                }
                known => {
                    units.0 += t.units().saturating_sub(t.kept_units());
                    units.1 += t.kept_units();
                    let why = match pending.kind {
                        Kind::Full(why) => why,
                        _ if known.is_none() => "new-target-dir",
                        _ if pending.changes.dirs.contains_key(t.path()) => "changed",
                        _ => "watch-limit",
                    };
                    *self.walks.entry(why).or_default() += 1;
                    walked.push((t.path().to_path_buf(), why));
                    now
                }
            };
            at.insert(t.path().to_path_buf(), when);
            self.dirs.insert(t.path().to_path_buf(), t);
        }
        if matches!(pending.kind, Kind::Full(_)) {
            self.last_full = Some(now);
        }
        self.last = (walked.len(), n - walked.len());
        self.last_units = units;
        // Every kind measures the whole known set (an events refresh takes most of it as it
        // was): what is not in `targets` is gone.
        self.walked = at;
        walked
    }

    /// When `target` was last walked.
    #[must_use]
    pub fn walked_at(&self, target: &Path) -> Option<SystemTime> {
        self.walked.get(target).copied()
    }

    /// Walks so far by reason, every reason present.
    #[must_use]
    pub fn walks(&self) -> BTreeMap<String, u64> {
        REASONS
            .iter()
            .map(|r| ((*r).to_string(), self.walks.get(r).copied().unwrap_or(0)))
            .collect()
    }

    #[must_use]
    pub fn last_full(&self) -> Option<SystemTime> {
        self.last_full
    }

    /// Target dirs (walked, taken as they were) by the last refresh.
    #[must_use]
    pub fn last(&self) -> (usize, usize) {
        self.last
    }

    /// Units (looked at, taken as they were) by the last refresh.
    #[must_use]
    pub fn last_units(&self) -> (usize, usize) {
        self.last_units
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_changed_units_are_a_change_of_everything() {
        let mut c = Changed::of(Some(Path::new("u")));
        for i in 1..MAX_CHANGED_UNITS {
            assert!(c.add(Some(Path::new(&format!("u{i}")))));
        }
        assert!(matches!(&c, Changed::Units(u) if u.len() == MAX_CHANGED_UNITS));
        assert!(c.add(Some(Path::new("one-more"))));
        assert_eq!(c, Changed::Whole);
    }

    #[test]
    fn what_changed_grows_from_units_to_everything_never_back() {
        let mut c = Changed::of(Some(Path::new("u1")));
        assert!(!c.add(Some(Path::new("u1"))), "no news");
        assert!(c.add(Some(Path::new("u2"))));
        assert_eq!(c, Changed::Units(HashSet::from(["u1".into(), "u2".into()])));
        assert!(c.add(None));
        assert!(!c.add(Some(Path::new("u3"))));
        assert_eq!(c, Changed::Whole);
        assert_eq!(Changed::of(None), Changed::Whole);
    }

    fn dir(path: &str) -> Packed {
        Packed::pack(&cachekeeper_core::model::TargetDir::empty(PathBuf::from(
            path,
        )))
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
    }

    fn changes(dirs: &[&str], partial: &[&str]) -> Changes {
        Changes {
            dirs: dirs
                .iter()
                .map(|d| (PathBuf::from(d), Changed::Whole))
                .collect(),
            partial: partial.iter().map(PathBuf::from).collect(),
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn full_at_start_every_interval_and_after_lost_events_else_only_what_changed() {
        let mut ix = Index::default();
        assert_eq!(ix.periodic(t(0), DAY, false, true), Kind::Full("start"));
        let (reuse, p) = ix.plan(Kind::Full("start"), Changes::default());
        assert!(reuse.is_none());
        let all = [dir("/a"), dir("/b"), dir("/c")];
        let walked = ix.took(p, all.to_vec(), t(0));
        assert_eq!(walked.len(), 3);
        assert!(walked.iter().all(|(_, why)| *why == "start"));

        assert_eq!(ix.periodic(t(60), DAY, false, true), Kind::Rescan);
        assert_eq!(ix.periodic(t(60), DAY, true, true), Kind::Full("overflow"));
        assert_eq!(
            ix.periodic(t(60), DAY, false, false),
            Kind::Full("no-watches")
        );
        assert_eq!(
            ix.periodic(t(86_400), DAY, false, true),
            Kind::Full("full-rescan-interval")
        );

        // A build wrote in /a; /c has units beyond the watch limit; /d appeared.
        let (reuse, p) = ix.plan(Kind::Rescan, changes(&["/a"], &["/c"]));
        let reuse = reuse.unwrap();
        assert!(reuse.only.is_none(), "a rescan searches the roots");
        let mut kept: Vec<&PathBuf> = reuse.unchanged.keys().collect();
        kept.sort();
        assert_eq!(kept, [&PathBuf::from("/b")]);
        let walked = ix.took(p, vec![dir("/a"), dir("/b"), dir("/c"), dir("/d")], t(60));
        let mut walked: Vec<(String, &str)> = walked
            .into_iter()
            .map(|(p, why)| (p.display().to_string(), why))
            .collect();
        walked.sort();
        assert_eq!(
            walked,
            [
                ("/a".to_string(), "changed"),
                ("/c".into(), "watch-limit"),
                ("/d".into(), "new-target-dir")
            ]
        );
        assert_eq!(ix.walked_at(Path::new("/b")), Some(t(0)), "taken as it was");
        assert_eq!(ix.walked_at(Path::new("/a")), Some(t(60)));
        assert_eq!(ix.last(), (3, 1));
        assert_eq!(ix.walks()["changed"], 1);
        assert_eq!(ix.walks()["start"], 3);
        assert_eq!(
            ix.walks()["overflow"],
            0,
            "every reason is there from the start"
        );
    }

    #[test]
    fn an_events_refresh_walks_only_what_changed_and_does_not_search() {
        let mut ix = Index::default();
        let (_, p) = ix.plan(Kind::Full("start"), Changes::default());
        ix.took(p, vec![dir("/a"), dir("/b")], t(0));
        // /c is not known: an events refresh does not search for it (the next rescan does).
        let (reuse, p) = ix.plan(Kind::Events, changes(&["/a", "/c"], &["/b"]));
        let reuse = reuse.unwrap();
        assert_eq!(reuse.only, Some(vec![PathBuf::from("/a")]));
        assert!(
            reuse.unchanged.contains_key(Path::new("/b")),
            "partial, but unchanged"
        );
        let walked = ix.took(p, vec![dir("/a"), dir("/b")], t(5));
        assert_eq!(walked, [(PathBuf::from("/a"), "changed")]);
        assert!(
            reuse.changed_units.is_empty(),
            "changed whole: every unit walked"
        );
        // Changed unit by unit: the other units are taken as they were, unless some of the
        // dir's units are not watched (their changes are not seen).
        let units =
            |dirs: &[&str]| Changed::Units(dirs.iter().map(PathBuf::from).collect::<HashSet<_>>());
        for (partial, lent) in [(false, true), (true, false)] {
            let (_, p) = ix.plan(Kind::Full("start"), Changes::default());
            ix.took(p, vec![dir("/a"), dir("/b")], t(5));
            let changes = Changes {
                dirs: HashMap::from([(PathBuf::from("/a"), units(&["debug/.fingerprint/x-1"]))]),
                partial: if partial {
                    HashSet::from([PathBuf::from("/a")])
                } else {
                    HashSet::new()
                },
            };
            let (reuse, p) = ix.plan(Kind::Events, changes);
            let reuse = reuse.unwrap();
            assert_eq!(
                reuse.changed_units.get(Path::new("/a")),
                lent.then(|| HashSet::from([PathBuf::from("debug/.fingerprint/x-1")]))
                    .as_ref(),
                "partial: {partial}"
            );
            assert!(reuse.previous.contains_key(Path::new("/a")));
            ix.took(p, vec![dir("/a"), dir("/b")], t(6));
        }
        // A target dir removed whole is gone from the index.
        let (_, p) = ix.plan(Kind::Events, changes(&["/a"], &[]));
        ix.took(p, vec![dir("/b")], t(9));
        assert_eq!(ix.walked_at(Path::new("/a")), None);
        assert_eq!(ix.last_full(), Some(t(5)));
    }
}
