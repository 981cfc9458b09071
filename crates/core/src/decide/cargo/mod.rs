//! The target-dir rules: which units, incremental dirs and orphaned outputs go, and why.
//!
//! Rules, in the order they apply (each can be switched off):
//! 1. `incremental`: incremental dirs no unit owns (superseded crate ids), incremental data
//!    older than `incremental-max-age`, and compiled outputs no fingerprint refers to.
//! 2. `toolchain`: units built by a rustc that is no longer installed.
//! 3. `superseded`: units another unit of the same package, profile and kind replaced in the
//!    last build the daemon watched, gone after `superseded-after`.
//! 4. `stale`: units not used for longer than `stale-after`.
//! 5. budgets: while a target dir is over `target-budget`, all of them over `total-budget`,
//!    or a filesystem under `min-free`, units go by expected rebuild cost or least recently
//!    used first, until it holds.
//!
//! Whole units, and their dependents: removing a unit makes cargo rebuild it, and every unit
//! depending on it sees a newer dependency and rebuilds too. So a unit goes together with all
//! units that depend on it (they are no more recently used: a build that uses a dependent
//! reads the dependency's fingerprint too), and the next build recompiles exactly what was
//! removed. A unit's *effective* last use is the newest use of it or of any dependent.
//!
//! **Last use.** Without a daemon, the unit's files say it: the access time of the files only
//! builds and readers open (see `model::names`), and writes. Where the daemon watches a target
//! dir whole ([`Target::watched_since`]), its record of each build's uses is exact, and file
//! times after it started watching are no evidence (a backup or an indexer moves access times
//! too): a unit's last use is the newest of its writes, what the daemon recorded, and its file
//! times up to the moment the watch began. So a fresh daemon makes the plan the CLI makes.
//! Where those file times cannot tell (a `noatime` mount, times in the future), a unit nobody
//! was seen using is kept from first sight for `stale-after` ([`Protection::UnknownBeforeWatch`]),
//! and the views say so.
//!
//! Protection: nothing used or written within `min-age` goes, nothing in a profile where a
//! build runs (or that cargo never locked), and no group containing such a unit. A budget
//! that cannot be met from unprotected data is reported as a shortfall.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::reason;
use crate::config::{Config, Eviction, Rules, SizeSpec};
use crate::model::{
    CargoAction, CargoPlan, Filesystem, FsId, Kept, LastUse, Part, ProfileState, Protection, Rule,
    Shortfall, Signal, Snapshot, TargetDir, TargetPart, TargetPlan, Toolchains, Watched,
};
use crate::units::{age, human_bytes};

mod budgets;
mod cost;
#[cfg(test)]
mod cost_tests;
mod rules;
#[cfg(test)]
mod tests;

/// What the rules are configured with (percentages still unresolved).
#[derive(Clone, Debug)]
pub struct Settings {
    pub rules: Rules,
    pub min_age: Duration,
    pub stale_after: Duration,
    pub incremental_max_age: Duration,
    pub target_budget: Option<SizeSpec>,
    pub total_budget: Option<SizeSpec>,
    pub min_free: Option<SizeSpec>,
    pub eviction: Eviction,
    /// `None`: the superseded rule is off.
    pub superseded_after: Option<Duration>,
}

impl Settings {
    /// The settings a config asks for.
    #[must_use]
    pub fn of(config: &Config) -> Settings {
        let c = &config.cargo;
        Settings {
            rules: c.rules,
            min_age: c.min_age,
            stale_after: c.stale_after,
            incremental_max_age: c.incremental_max_age,
            target_budget: c.target_budget,
            total_budget: c.total_budget,
            min_free: config.disk.min_free,
            eviction: c.eviction,
            superseded_after: c.superseded_after,
        }
    }
}

/// One target dir as the rules see it.
pub struct Target<'a> {
    pub dir: &'a TargetDir,
    /// What its mount's file times say of use (`noatime`: nothing).
    pub signal: Signal,
    /// When the daemon began watching it whole: its uses since are exact.
    pub watched_since: Option<SystemTime>,
    /// Its filesystem among [`Input::filesystems`].
    pub fs: FsId,
}

impl Target<'_> {
    /// Whether "not used since T" can be concluded here.
    #[must_use]
    pub(crate) fn knows_use(&self) -> bool {
        self.watched_since.is_some() || self.signal.knows_use()
    }

    /// How last use is known here, as the views name it.
    #[must_use]
    pub(crate) fn shown_signal(&self) -> Signal {
        if self.watched_since.is_some() {
            Signal::Recorded
        } else {
            self.signal
        }
    }
}

pub struct Input<'a> {
    pub targets: Vec<Target<'a>>,
    pub filesystems: &'a [Filesystem],
    /// `None` when installed toolchains were not looked up.
    pub toolchains: Option<&'a Toolchains>,
    pub settings: &'a Settings,
    /// What the daemon recorded: when it first saw each unit and when builds used it.
    pub uses: Option<&'a LastUse>,
    pub now: SystemTime,
}

impl<'a> Input<'a> {
    /// The input a snapshot gives: its target dirs, with when the daemon began watching those
    /// it watches whole (`watched`).
    #[must_use]
    pub fn of(
        snapshot: &'a Snapshot,
        settings: &'a Settings,
        uses: Option<&'a LastUse>,
        watched: &Watched,
        now: SystemTime,
    ) -> Input<'a> {
        Input {
            targets: snapshot
                .targets
                .iter()
                .map(|dir| Target {
                    dir,
                    signal: dir.signal,
                    watched_since: watched.get(&dir.path).copied(),
                    fs: dir.fs,
                })
                .collect(),
            filesystems: &snapshot.filesystems,
            toolchains: Some(&snapshot.toolchains),
            settings,
            uses,
            now,
        }
    }
}

struct State<'a> {
    input: &'a Input<'a>,
    /// What the decision works out for each target dir, beside `input.targets`.
    dirs: Vec<DirState>,
    plan: CargoPlan,
}

/// What the decision works out for one target dir.
struct DirState {
    /// Each unit's, beside `dir.units`.
    units: Vec<UnitState>,
    /// Parts already planned for removal.
    removed: HashSet<Part>,
    /// Parts a rule wanted that a protection kept.
    kept: HashMap<Part, Protection>,
    /// When kept parts may go (those kept for a while, not by a state).
    kept_until: HashMap<Part, SystemTime>,
    /// The incremental dirs each unit owns (a part of), beside `dir.units`: a removal looks at
    /// those, not at every incremental dir (10,000 units went quadratic).
    incremental_of: Vec<Vec<usize>>,
    /// The shared inodes each part has a link of, by index into `dir.shared`.
    shared_of: HashMap<Part, Vec<usize>>,
}

/// What the decision works out for one unit.
struct UnitState {
    /// Last use: its files' or what the daemon recorded.
    used: SystemTime,
    /// When its use before the daemon watched cannot be known (`noatime`, times in the future)
    /// and no build was seen using it since: when the daemon first saw it.
    unknown_since: Option<SystemTime>,
    /// Effective last use: the latest of its own and its dependents'.
    eff: SystemTime,
    /// Why it may not go.
    protected: Option<Protection>,
}

/// Computes the plan.
#[must_use]
pub fn plan(input: &Input<'_>) -> CargoPlan {
    let n = input.targets.len();
    let dirs = input
        .targets
        .iter()
        .map(|t| {
            let (used, unknown_since) = last_uses(t, input.uses, input.now);
            let eff = effective_last_use(t, &used);
            DirState {
                units: used
                    .into_iter()
                    .zip(unknown_since)
                    .zip(eff)
                    .map(|((used, unknown_since), eff)| UnitState {
                        used,
                        unknown_since,
                        eff,
                        protected: None,
                    })
                    .collect(),
                removed: HashSet::new(),
                kept: HashMap::new(),
                kept_until: HashMap::new(),
                incremental_of: {
                    let mut of = vec![Vec::new(); t.dir.units.len()];
                    for (i, inc) in t.dir.incremental.iter().enumerate() {
                        for &o in &inc.owners {
                            if let Some(v) = of.get_mut(o) {
                                v.push(i);
                            }
                        }
                    }
                    of
                },
                shared_of: {
                    let mut of: HashMap<Part, Vec<usize>> = HashMap::new();
                    for (s, shared) in t.dir.shared.iter().enumerate() {
                        for o in &shared.owners {
                            of.entry(*o).or_default().push(s);
                        }
                    }
                    of
                },
            }
        })
        .collect();
    let mut st = State {
        input,
        dirs,
        plan: CargoPlan {
            targets: vec![TargetPlan::default(); n],
            ..CargoPlan::default()
        },
    };
    for t in 0..n {
        for (u, why) in st.protection(t).into_iter().enumerate() {
            st.dirs[t].units[u].protected = why;
        }
    }
    for t in 0..n {
        st.plan.targets[t].signal = input.targets[t].shown_signal();
        st.plan.targets[t].watched_since = input.targets[t].watched_since;
        let dir = input.targets[t].dir;
        st.plan.targets[t].protected_bytes = dir
            .units
            .iter()
            .enumerate()
            .filter(|(i, _)| st.dirs[t].units[*i].protected.is_some())
            .map(|(_, u)| u.reclaimable)
            .sum();
        if dir.profiles.iter().any(|p| p.state == ProfileState::Busy) {
            st.plan.targets[t]
                .notes
                .push("a build is running in part of it: that part is left alone".into());
        }
    }
    let rules = input.settings.rules;
    if rules.incremental {
        st.incremental_rule();
    }
    if rules.toolchains {
        st.toolchain_rule();
    }
    st.superseded_rule();
    if rules.stale {
        st.stale_rule();
    }
    st.resolve_budgets();
    if rules.budgets {
        st.budget_rules();
    }
    for a in &st.plan.actions {
        let tp = &mut st.plan.targets[a.item.target];
        *tp.by_rule.entry(a.rule).or_default() += a.bytes;
        tp.planned_bytes += a.bytes;
        tp.rebuild_seconds += a.rebuild_seconds.unwrap_or(0.0);
    }
    // The next builds' rebuild, as cargo schedules it: every unit planned here that the
    // latest builds used (older generations and a toolchain's units are not compiled again).
    for (t, target) in input.targets.iter().enumerate() {
        let used: Vec<SystemTime> = st.dirs[t].units.iter().map(|u| u.used).collect();
        let latest = crate::model::latest_builds(target.dir, &used);
        let mut set = vec![false; target.dir.units.len()];
        let (mut unused, mut by_budgets) = (0, 0.0);
        for a in &st.plan.actions {
            if let (true, Part::Unit(u), false) =
                (a.item.target == t, a.item.part, a.rule == Rule::Toolchain)
            {
                set[u] = latest[u];
                unused += usize::from(!latest[u]);
                if latest[u] && a.rule.is_budget() {
                    by_budgets += target.dir.units[u].build_cost().seconds;
                }
            }
        }
        let rebuild = &mut st.plan.targets[t].rebuild;
        *rebuild = crate::model::schedule::rebuild(target.dir, &set);
        rebuild.unused_units = unused;
        rebuild.budgets_cpu_seconds = by_budgets;
    }
    st.tally_kept();
    st.plan
}

/// Each unit's last use, and when the daemon first saw those whose use before it watched is
/// unknown (see the module doc).
fn last_uses(
    t: &Target<'_>,
    uses: Option<&LastUse>,
    now: SystemTime,
) -> (Vec<SystemTime>, Vec<Option<SystemTime>>) {
    let epoch = SystemTime::UNIX_EPOCH;
    t.dir
        .units
        .iter()
        .map(|u| {
            let rec = uses.and_then(|l| l.recorded(&t.dir.path, &u.fingerprint_dir));
            // Access times in the future say nothing (a clock that was wrong, a copied tree).
            let file_times_tell = t.signal.knows_use() && u.last_used <= now;
            let Some(since) = t.watched_since else {
                let files = if u.last_used <= now {
                    u.last_used
                } else {
                    u.last_built.min(now)
                };
                return (files.max(rec.unwrap_or(epoch)), None);
            };
            let before = if file_times_tell {
                u.last_used.min(since)
            } else {
                epoch
            };
            let used = u.last_built.min(now).max(before).max(rec.unwrap_or(epoch));
            let unknown = (!file_times_tell && rec.is_none() && u.last_built < since).then(|| {
                uses.and_then(|l| l.first_seen(&t.dir.path, &u.fingerprint_dir))
                    .unwrap_or(since)
            });
            (used, unknown)
        })
        .unzip()
}

/// Newest use of each unit or of anything depending on it.
fn effective_last_use(t: &Target<'_>, used: &[SystemTime]) -> Vec<SystemTime> {
    let units = &t.dir.units;
    let own: Vec<SystemTime> = units
        .iter()
        .zip(used)
        .map(|(u, used)| if t.knows_use() { *used } else { u.last_built })
        .collect();
    let mut eff: Vec<Option<SystemTime>> = vec![None; units.len()];
    // Iterative DFS over dependents; a cycle (impossible in cargo's graph, but the data is
    // read from disk) is cut by the `visiting` mark.
    let mut visiting = vec![false; units.len()];
    for start in 0..units.len() {
        if eff[start].is_some() {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        visiting[start] = true;
        while let Some((u, next)) = stack.pop() {
            if let Some(&d) = units[u].dependents.get(next) {
                stack.push((u, next + 1));
                if eff[d].is_none() && !visiting[d] {
                    visiting[d] = true;
                    stack.push((d, 0));
                }
            } else {
                let newest = units[u]
                    .dependents
                    .iter()
                    .filter_map(|&d| eff[d])
                    .fold(own[u], SystemTime::max);
                eff[u] = Some(newest);
            }
        }
    }
    eff.into_iter()
        .zip(own)
        .map(|(e, o)| e.unwrap_or(o))
        .collect()
}

impl State<'_> {
    fn since(&self, t: SystemTime) -> Duration {
        self.input.now.duration_since(t).unwrap_or(Duration::ZERO)
    }

    fn profile_free(&self, t: usize, profile: u16) -> Result<(), Protection> {
        match self.input.targets[t].dir.profiles[usize::from(profile)].state {
            ProfileState::Idle => Ok(()),
            ProfileState::Busy => Err(Protection::BuildRunning),
            ProfileState::Unlockable => Err(Protection::NoCargoLock),
        }
    }

    /// Notes that a rule wanted `part` but `why` keeps it (the first reason found stands).
    fn keep(&mut self, t: usize, part: Part, why: Protection) {
        self.dirs[t].kept.entry(part).or_insert(why);
    }

    /// [`State::keep`], for a protection that ends `until`.
    fn keep_until(&mut self, t: usize, part: Part, why: Protection, until: SystemTime) {
        self.keep(t, part, why);
        let e = self.dirs[t].kept_until.entry(part).or_insert(until);
        *e = (*e).max(until);
    }

    /// Notes that a rule wanted the unit whose group is `group`, and the group is blocked.
    fn keep_group(&mut self, t: usize, group: &[usize]) {
        for &u in group {
            let why = self.dirs[t].units[u]
                .protected
                .unwrap_or(Protection::TiedToKept);
            self.keep(t, Part::Unit(u), why);
        }
    }

    fn bytes_of(&self, t: usize, part: Part) -> u64 {
        let dir = self.input.targets[t].dir;
        match part {
            Part::Unit(u) => dir.units[u].reclaimable,
            Part::Incremental(i) => dir.incremental[i].reclaimable,
            Part::Orphan(o) => dir.orphans[o].reclaimable,
        }
    }

    /// Sums what protections keep into each target's plan (parts that a later rule removed
    /// after all are not kept).
    fn tally_kept(&mut self) {
        for t in 0..self.input.targets.len() {
            let mut kept: BTreeMap<Protection, Kept> = BTreeMap::new();
            for (part, why) in &self.dirs[t].kept {
                if !self.dirs[t].removed.contains(part) {
                    let k = kept.entry(*why).or_default();
                    k.add(self.bytes_of(t, *part));
                    if let Some(until) = self.dirs[t].kept_until.get(part) {
                        k.until_first(*until);
                    }
                }
            }
            self.plan.targets[t].kept = kept;
        }
    }

    fn protection(&self, t: usize) -> Vec<Option<Protection>> {
        let s = self.input.settings;
        self.input.targets[t]
            .dir
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                if let Err(why) = self.profile_free(t, u.key.profile) {
                    return Some(why);
                }
                let newest = self.dirs[t].units[i].used.max(u.last_built);
                (self.since(newest) < s.min_age).then_some(Protection::MinAge)
            })
            .collect()
    }

    /// The unit and every unit depending on it, not yet removed, dependents first.
    fn group(&self, t: usize, unit: usize) -> Vec<usize> {
        let units = &self.input.targets[t].dir.units;
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(unit, 0usize)];
        seen.insert(unit);
        while let Some((u, next)) = stack.pop() {
            if let Some(&d) = units[u].dependents.get(next) {
                stack.push((u, next + 1));
                if !self.dirs[t].removed.contains(&Part::Unit(d)) && seen.insert(d) {
                    stack.push((d, 0));
                }
            } else {
                order.push(u);
            }
        }
        order
    }

    fn group_blocked(&self, t: usize, group: &[usize]) -> bool {
        group
            .iter()
            .any(|&u| self.dirs[t].units[u].protected.is_some())
    }

    /// Plans the removal of one part. Its bytes are what it frees alone, plus every shared
    /// inode whose last owner it is.
    fn take(&mut self, t: usize, part: Part, rule: Rule, reason: String) -> u64 {
        self.dirs[t].removed.insert(part);
        let dir = self.input.targets[t].dir;
        let mut bytes = self.bytes_of(t, part);
        for &s in self.dirs[t].shared_of.get(&part).into_iter().flatten() {
            let shared = &dir.shared[s];
            if shared
                .owners
                .iter()
                .all(|o| self.dirs[t].removed.contains(o))
            {
                bytes += shared.bytes;
            }
        }
        let last_use = match part {
            Part::Unit(u) => Some(self.dirs[t].units[u].used.max(dir.units[u].last_built)),
            _ => None,
        };
        let rebuild_seconds = Some(self.rebuild_seconds(t, part, rule));
        self.plan.actions.push(CargoAction {
            item: TargetPart { target: t, part },
            rule,
            reason,
            bytes,
            rebuild_seconds,
            last_use,
        });
        bytes
    }

    /// Removes a unit with its dependents and the incremental dirs that only they own.
    /// Returns the bytes expected back.
    fn remove_group(&mut self, t: usize, unit: usize, rule: Rule, why: &str) -> u64 {
        let group = self.group(t, unit);
        let dir = self.input.targets[t].dir;
        let root_name = dir.units[unit].name();
        let mut bytes = 0;
        for &u in &group {
            let reason = if u == unit {
                why.to_string()
            } else {
                reason::goes_with("depends on", &root_name, why)
            };
            bytes += self.take(t, Part::Unit(u), rule, reason);
        }
        let mut owned: Vec<usize> = group
            .iter()
            .flat_map(|&u| self.dirs[t].incremental_of[u].iter().copied())
            .collect();
        owned.sort_unstable();
        owned.dedup();
        for i in owned {
            let inc = &dir.incremental[i];
            if self.dirs[t].removed.contains(&Part::Incremental(i))
                || inc.owners.is_empty()
                || !inc
                    .owners
                    .iter()
                    .all(|o| self.dirs[t].removed.contains(&Part::Unit(*o)))
            {
                continue;
            }
            let reason = format!(
                "incremental data of {}, which goes",
                dir.units[inc.owners[0]].name()
            );
            bytes += self.take(t, Part::Incremental(i), rule, reason);
        }
        bytes
    }
}
