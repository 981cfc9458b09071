//! The decision: which units and incremental dirs go, and why. Pure: it takes measurements,
//! budgets and `now`, and returns a plan; it reads no clock and no disk.
//!
//! Rules, in the order they apply (each can be switched off):
//! 1. `incremental`: incremental dirs no unit owns (superseded crate ids), incremental data
//!    older than `incremental-max-age`, and compiled outputs no fingerprint refers to.
//! 2. `toolchain`: units built by a rustc that is no longer installed.
//! 3. `stale`: units not used for longer than `stale-after`.
//! 4. budgets: while a target dir is over `target-budget`, all of them over `total-budget`,
//!    or a filesystem under `min-free`, the least recently used units go, until it holds.
//!
//! Whole units, and their dependents: removing a unit makes cargo rebuild it, and every unit
//! depending on it sees a newer dependency and rebuilds too. So a unit goes together with all
//! units that depend on it (they are no more recently used: a build that uses a dependent
//! reads the dependency's fingerprint too), and the next build recompiles exactly what was
//! removed. A unit's *effective* last use is the newest use of it or of any dependent.
//!
//! Protection: nothing used or written within `min-age` goes, nothing in a profile where a
//! build runs (or that cargo never locked), and no group containing such a unit.
//! A budget that cannot be met from unprotected data is reported as a shortfall.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::{Rules, SizeSpec};
use crate::disk::Filesystem;
use crate::inventory::{ProfileState, TargetDir};
use crate::lastuse::Signal;
use crate::toolchain::{self, Toolchains};
use crate::units::age;

/// What the policy is configured with (percentages still unresolved).
#[derive(Clone, Debug)]
pub struct Settings {
    pub rules: Rules,
    pub min_age: Duration,
    pub stale_after: Duration,
    pub incremental_max_age: Duration,
    pub target_budget: Option<SizeSpec>,
    pub total_budget: Option<SizeSpec>,
    pub min_free: Option<SizeSpec>,
}

/// One target dir as the policy sees it.
pub struct Target<'a> {
    pub dir: &'a TargetDir,
    pub signal: Signal,
    /// Index into [`Input::filesystems`].
    pub fs: usize,
}

pub struct Input<'a> {
    pub targets: Vec<Target<'a>>,
    pub filesystems: &'a [Filesystem],
    /// `None` when installed toolchains were not looked up.
    pub toolchains: Option<&'a Toolchains>,
    pub settings: &'a Settings,
    pub now: SystemTime,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    Incremental,
    Orphaned,
    Toolchain,
    Stale,
    TargetBudget,
    TotalBudget,
    MinFree,
}

impl Rule {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Incremental => "incremental",
            Rule::Orphaned => "orphaned",
            Rule::Toolchain => "toolchain",
            Rule::Stale => "stale",
            Rule::TargetBudget => "target-budget",
            Rule::TotalBudget => "total-budget",
            Rule::MinFree => "min-free",
        }
    }

    pub const ALL: [Rule; 7] = [
        Rule::Incremental,
        Rule::Orphaned,
        Rule::Toolchain,
        Rule::Stale,
        Rule::TargetBudget,
        Rule::TotalBudget,
        Rule::MinFree,
    ];
}

/// What an action removes.
pub use crate::inventory::Part as Item;

#[derive(Clone, Debug, Serialize)]
pub struct Action {
    pub target: usize,
    pub item: Item,
    pub rule: Rule,
    pub reason: String,
    /// Bytes the scan expects this to give back.
    pub bytes: u64,
}

/// Why a part a rule would remove stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// A build holds cargo's lock on its profile.
    BuildRunning,
    /// Its profile has no cargo lock file: cachekeeper cannot keep builds out while it works.
    NoCargoLock,
    /// Used or written within `min-age`.
    MinAge,
    /// It goes only together with others (a unit's dependents, a record's descendants), one
    /// of which is kept.
    TiedToKept,
    /// A BuildKit record a build is using now.
    InUse,
    /// A BuildKit record held by an image: pruning it frees nothing.
    SharedWithImage,
    /// A BuildKit cache mount, protected by `protect-cache-mounts`.
    CacheMount,
}

impl Protection {
    /// For people: why it stays.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Protection::BuildRunning => "a build holds cargo's lock on its profile",
            Protection::NoCargoLock => "its profile has no cargo lock file",
            Protection::MinAge => "used within min-age",
            Protection::TiedToKept => "it goes only with something that is kept",
            Protection::InUse => "in use by a running build",
            Protection::SharedWithImage => "shared with an image",
            Protection::CacheMount => "a protected cache mount",
        }
    }
}

/// Parts a rule would remove that a protection keeps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Kept {
    pub parts: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct TargetPlan {
    /// The resolved per-target budget.
    pub budget: Option<u64>,
    /// Expected reclaim per rule.
    pub by_rule: BTreeMap<Rule, u64>,
    pub planned_bytes: u64,
    /// Bytes in units that no rule may touch now (young, or a build runs).
    pub protected_bytes: u64,
    /// What the rules would remove but a protection keeps, by protection (a budget's wish
    /// counts only when the budget then falls short).
    pub kept: BTreeMap<Protection, Kept>,
    /// Why a rule did not apply here.
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Shortfall {
    pub scope: String,
    pub limit_bytes: u64,
    /// How far from the limit it stays after the plan.
    pub missing_bytes: u64,
    pub why: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub targets: Vec<TargetPlan>,
    pub total_budget: Option<u64>,
    /// Per filesystem: the resolved watermark.
    pub min_free: Vec<Option<u64>>,
    pub shortfalls: Vec<Shortfall>,
}

impl Plan {
    #[must_use]
    pub fn planned_bytes(&self) -> u64 {
        self.actions.iter().map(|a| a.bytes).sum()
    }

    /// What protections keep, over all target dirs.
    #[must_use]
    pub fn kept(&self) -> BTreeMap<Protection, Kept> {
        let mut all: BTreeMap<Protection, Kept> = BTreeMap::new();
        for t in &self.targets {
            for (p, k) in &t.kept {
                let e = all.entry(*p).or_default();
                e.parts += k.parts;
                e.bytes += k.bytes;
            }
        }
        all
    }
}

struct State<'a> {
    input: &'a Input<'a>,
    /// Effective last use of every unit, per target.
    eff: Vec<Vec<SystemTime>>,
    /// Why a unit may not go, per target.
    protected: Vec<Vec<Option<Protection>>>,
    /// Parts already planned for removal, per target.
    removed: Vec<HashSet<Item>>,
    /// Parts a rule wanted that a protection kept, per target.
    kept: Vec<HashMap<Item, Protection>>,
    plan: Plan,
}

/// Computes the plan.
#[must_use]
pub fn plan(input: &Input<'_>) -> Plan {
    let n = input.targets.len();
    let mut st = State {
        input,
        eff: input
            .targets
            .iter()
            .map(|t| effective_last_use(t))
            .collect(),
        protected: Vec::new(),
        removed: vec![HashSet::new(); n],
        kept: vec![HashMap::new(); n],
        plan: Plan {
            targets: vec![TargetPlan::default(); n],
            ..Plan::default()
        },
    };
    st.protected = (0..n).map(|t| st.protection(t)).collect();
    for t in 0..n {
        let dir = input.targets[t].dir;
        st.plan.targets[t].protected_bytes = dir
            .units
            .iter()
            .enumerate()
            .filter(|(i, _)| st.protected[t][*i].is_some())
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
    if rules.stale {
        st.stale_rule();
    }
    st.resolve_budgets();
    if rules.budgets {
        st.budget_rules();
    }
    for a in &st.plan.actions {
        let tp = &mut st.plan.targets[a.target];
        *tp.by_rule.entry(a.rule).or_default() += a.bytes;
        tp.planned_bytes += a.bytes;
    }
    st.tally_kept();
    st.plan
}

/// Newest use of each unit or of anything depending on it.
fn effective_last_use(t: &Target<'_>) -> Vec<SystemTime> {
    let units = &t.dir.units;
    let own: Vec<SystemTime> = units
        .iter()
        .map(|u| {
            if t.signal.knows_use() {
                u.last_used
            } else {
                u.last_built
            }
        })
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

    /// Notes that a rule wanted `item` but `why` keeps it (the first reason found stands).
    fn keep(&mut self, t: usize, item: Item, why: Protection) {
        self.kept[t].entry(item).or_insert(why);
    }

    /// Notes that a rule wanted the unit whose group is `group`, and the group is blocked.
    fn keep_group(&mut self, t: usize, group: &[usize]) {
        for &u in group {
            let why = self.protected[t][u].unwrap_or(Protection::TiedToKept);
            self.keep(t, Item::Unit(u), why);
        }
    }

    /// Sums what protections keep into each target's plan (parts that a later rule removed
    /// after all are not kept).
    fn tally_kept(&mut self) {
        for t in 0..self.input.targets.len() {
            let dir = self.input.targets[t].dir;
            let mut kept: BTreeMap<Protection, Kept> = BTreeMap::new();
            for (item, why) in &self.kept[t] {
                if self.removed[t].contains(item) {
                    continue;
                }
                let bytes = match *item {
                    Item::Unit(u) => dir.units[u].reclaimable,
                    Item::Incremental(i) => dir.incremental[i].reclaimable,
                    Item::Orphan(o) => dir.orphans[o].reclaimable,
                };
                let e = kept.entry(*why).or_default();
                e.parts += 1;
                e.bytes += bytes;
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
            .map(|u| {
                if let Err(why) = self.profile_free(t, u.key.profile) {
                    return Some(why);
                }
                let newest = u.last_used.max(u.last_built);
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
                if !self.removed[t].contains(&Item::Unit(d)) && seen.insert(d) {
                    stack.push((d, 0));
                }
            } else {
                order.push(u);
            }
        }
        order
    }

    fn group_blocked(&self, t: usize, group: &[usize]) -> bool {
        group.iter().any(|&u| self.protected[t][u].is_some())
    }

    /// Plans the removal of one part. Its bytes are what it frees alone, plus every shared
    /// inode whose last owner it is.
    fn take(&mut self, t: usize, item: Item, rule: Rule, reason: String) -> u64 {
        self.removed[t].insert(item);
        let dir = self.input.targets[t].dir;
        let mut bytes = match item {
            Item::Unit(u) => dir.units[u].reclaimable,
            Item::Incremental(i) => dir.incremental[i].reclaimable,
            Item::Orphan(o) => dir.orphans[o].reclaimable,
        };
        for shared in &dir.shared {
            if shared.owners.contains(&item)
                && shared.owners.iter().all(|o| self.removed[t].contains(o))
            {
                bytes += shared.bytes;
            }
        }
        self.plan.actions.push(Action {
            target: t,
            item,
            rule,
            reason,
            bytes,
        });
        bytes
    }

    /// Removes a unit with its dependents and the incremental dirs that only they own.
    /// Returns the bytes expected back.
    fn remove_group(&mut self, t: usize, unit: usize, rule: Rule, reason: &str) -> u64 {
        let group = self.group(t, unit);
        let dir = self.input.targets[t].dir;
        let root_name = dir.units[unit].name();
        let mut bytes = 0;
        for &u in &group {
            let why = if u == unit {
                reason.to_string()
            } else {
                format!("depends on {root_name}, which goes ({reason})")
            };
            bytes += self.take(t, Item::Unit(u), rule, why);
        }
        for (i, inc) in dir.incremental.iter().enumerate() {
            if self.removed[t].contains(&Item::Incremental(i))
                || inc.owners.is_empty()
                || !inc
                    .owners
                    .iter()
                    .all(|o| self.removed[t].contains(&Item::Unit(*o)))
            {
                continue;
            }
            let why = format!(
                "incremental data of {}, which goes",
                dir.units[inc.owners[0]].name()
            );
            bytes += self.take(t, Item::Incremental(i), rule, why);
        }
        bytes
    }

    fn incremental_rule(&mut self) {
        let s = self.input.settings;
        for t in 0..self.input.targets.len() {
            let dir = self.input.targets[t].dir;
            for (i, inc) in dir.incremental.iter().enumerate() {
                let written = age(self.since(inc.last_written()));
                let reason = if inc.owners.is_empty() {
                    format!(
                        "superseded: no unit of crate `{}` compiled it (last written {written} ago)",
                        inc.crate_name
                    )
                } else if self.since(inc.last_written()) > s.incremental_max_age {
                    format!(
                        "not recompiled for {written} (incremental-max-age {})",
                        age(s.incremental_max_age)
                    )
                } else {
                    continue;
                };
                let item = Item::Incremental(i);
                if let Err(why) = self.profile_free(t, inc.profile) {
                    self.keep(t, item, why);
                } else if self.since(inc.last_written()) < s.min_age {
                    self.keep(t, item, Protection::MinAge);
                } else {
                    self.take(t, item, Rule::Incremental, reason);
                }
            }
            for (i, o) in dir.orphans.iter().enumerate() {
                let item = Item::Orphan(i);
                if let Err(why) = self.profile_free(t, o.key.profile) {
                    self.keep(t, item, why);
                    continue;
                }
                if self.since(o.newest_mtime) < s.min_age {
                    self.keep(t, item, Protection::MinAge);
                    continue;
                }
                let reason = format!(
                    "outputs of unit {:016x} that no fingerprint refers to",
                    o.key.hash
                );
                self.take(t, Item::Orphan(i), Rule::Orphaned, reason);
            }
        }
    }

    /// Whether our rustc hashing matches what cargo stored in this target dir, and the toolchain
    /// of its newest build is installed. Otherwise the toolchain rule could delete live units
    /// (a new hash scheme, or toolchains we cannot see: another user's rustup), so it stays off.
    fn toolchain_rule_applies(&self, t: usize, installed: &Toolchains) -> Result<(), String> {
        let dir = self.input.targets[t].dir;
        let Some(vv) = &dir.rustc_vv else {
            return Err("no .rustc_info.json to check rustc hashes against".into());
        };
        let cached = toolchain::hashes_of(vv);
        if !dir
            .units
            .iter()
            .any(|u| u.rustc.iter().any(|r| cached.contains(r)))
        {
            return Err("rustc hashes in its fingerprints are of an unknown scheme".into());
        }
        let newest = dir.units.iter().max_by_key(|u| u.last_built);
        if let Some(u) = newest
            && !u.rustc.iter().any(|r| installed.is_installed(*r))
        {
            return Err(format!(
                "its newest build ({}) used a rustc that was not found installed",
                u.name()
            ));
        }
        Ok(())
    }

    fn toolchain_rule(&mut self) {
        let Some(installed) = self.input.toolchains else {
            return;
        };
        if installed.found.is_empty() {
            for tp in &mut self.plan.targets {
                tp.notes
                    .push("toolchain rule off: no installed rustc found".into());
            }
            return;
        }
        for t in 0..self.input.targets.len() {
            if let Err(why) = self.toolchain_rule_applies(t, installed) {
                self.plan.targets[t]
                    .notes
                    .push(format!("toolchain rule off: {why}"));
                continue;
            }
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                let unit = &dir.units[u];
                if self.removed[t].contains(&Item::Unit(u))
                    || unit.rustc.is_empty()
                    || unit.rustc.iter().any(|r| installed.is_installed(*r))
                {
                    continue;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    self.keep_group(t, &group);
                    continue;
                }
                self.remove_group(
                    t,
                    u,
                    Rule::Toolchain,
                    "built by a rustc that is no longer installed",
                );
            }
        }
    }

    fn stale_rule(&mut self) {
        let s = self.input.settings;
        for t in 0..self.input.targets.len() {
            if !self.input.targets[t].signal.knows_use() {
                self.plan.targets[t].notes.push(
                    "stale rule off: its filesystem records no access times (noatime)".into(),
                );
                continue;
            }
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                // A unit the daemon first saw recently may have been used before it watched.
                let seen = dir.units[u].first_seen.unwrap_or(SystemTime::UNIX_EPOCH);
                let idle = self.since(self.eff[t][u].max(seen));
                if self.removed[t].contains(&Item::Unit(u)) || idle <= s.stale_after {
                    continue;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    self.keep_group(t, &group);
                    continue;
                }
                let reason = format!(
                    "not used for {} (stale-after {})",
                    age(idle),
                    age(s.stale_after)
                );
                self.remove_group(t, u, Rule::Stale, &reason);
            }
        }
    }

    fn resolve_budgets(&mut self) {
        let s = self.input.settings;
        let fss = self.input.filesystems;
        for (t, target) in self.input.targets.iter().enumerate() {
            let fs_total = fss.get(target.fs).map_or(0, |f| f.total_bytes);
            self.plan.targets[t].budget = s.target_budget.map(|b| b.resolve(fs_total));
        }
        // A share of "the largest filesystem" means nothing when no target dir was found.
        let largest = fss.iter().map(|f| f.total_bytes).max();
        self.plan.total_budget = largest.and_then(|l| s.total_budget.map(|b| b.resolve(l)));
        self.plan.min_free = fss
            .iter()
            .map(|f| s.min_free.map(|b| b.resolve(f.total_bytes)))
            .collect();
    }

    fn planned_in(&self, t: usize) -> u64 {
        self.plan
            .actions
            .iter()
            .filter(|a| a.target == t)
            .map(|a| a.bytes)
            .sum()
    }

    /// Least recently used first within `scope`, until `over` bytes are freed.
    /// Returns how many bytes stay missing.
    fn lru(&mut self, scope: &dyn Fn(usize) -> bool, mut over: u64, rule: Rule) -> u64 {
        let mut candidates: Vec<(SystemTime, usize, usize)> = Vec::new();
        for t in (0..self.input.targets.len()).filter(|t| scope(*t)) {
            for u in 0..self.input.targets[t].dir.units.len() {
                if !self.removed[t].contains(&Item::Unit(u)) && self.protected[t][u].is_none() {
                    candidates.push((self.eff[t][u], t, u));
                }
            }
        }
        candidates.sort();
        for (eff, t, u) in candidates {
            if over == 0 {
                break;
            }
            if self.removed[t].contains(&Item::Unit(u)) {
                continue;
            }
            let group = self.group(t, u);
            if self.group_blocked(t, &group) {
                continue;
            }
            let reason = format!(
                "least recently used (last used {} ago)",
                age(self.since(eff))
            );
            let freed = self.remove_group(t, u, rule, &reason);
            over = over.saturating_sub(freed);
        }
        over
    }

    fn shortfall(
        &mut self,
        scope_name: String,
        scope: &dyn Fn(usize) -> bool,
        limit: u64,
        missing: u64,
    ) {
        // The budget wanted everything left in its scope: all of it is kept by a protection.
        let mut by: BTreeMap<Protection, Kept> = BTreeMap::new();
        for t in (0..self.input.targets.len()).filter(|t| scope(*t)) {
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                if self.removed[t].contains(&Item::Unit(u)) {
                    continue;
                }
                let why = self.protected[t][u].unwrap_or(Protection::TiedToKept);
                self.keep(t, Item::Unit(u), why);
                let e = by.entry(why).or_default();
                e.parts += 1;
                e.bytes += dir.units[u].reclaimable;
            }
        }
        let parts: Vec<String> = by
            .iter()
            .map(|(why, k)| {
                format!(
                    "{} unit{} ({}) {}",
                    k.parts,
                    if k.parts == 1 { "" } else { "s" },
                    crate::units::human_bytes(k.bytes),
                    match why {
                        Protection::BuildRunning => "in profiles a build holds locked",
                        Protection::NoCargoLock => "in profiles with no cargo lock file",
                        Protection::MinAge => "used within min-age",
                        _ => "that kept units depend on",
                    }
                )
            })
            .collect();
        let kept = if parts.is_empty() {
            "no unit is left to remove".to_string()
        } else {
            format!("everything else is kept: {}", parts.join(", "))
        };
        self.plan.shortfalls.push(Shortfall {
            scope: scope_name,
            limit_bytes: limit,
            missing_bytes: missing,
            why: format!(
                "{kept}; the rest is outside cargo's units (uplifted copies, docs, other files)"
            ),
        });
    }

    fn budget_rules(&mut self) {
        // Per target dir.
        for t in 0..self.input.targets.len() {
            let Some(budget) = self.plan.targets[t].budget else {
                continue;
            };
            let after = self.input.targets[t]
                .dir
                .bytes()
                .saturating_sub(self.planned_in(t));
            if after > budget {
                let only = move |x: usize| x == t;
                let missing = self.lru(&only, after - budget, Rule::TargetBudget);
                if missing > 0 {
                    let name = format!(
                        "target-budget of {}",
                        self.input.targets[t].dir.path.display()
                    );
                    self.shortfall(name, &only, budget, missing);
                }
            }
        }
        // All target dirs together.
        if let Some(budget) = self.plan.total_budget {
            let n = self.input.targets.len();
            let after: u64 = (0..n)
                .map(|t| {
                    self.input.targets[t]
                        .dir
                        .bytes()
                        .saturating_sub(self.planned_in(t))
                })
                .sum();
            if after > budget {
                let all = |_: usize| true;
                let missing = self.lru(&all, after - budget, Rule::TotalBudget);
                if missing > 0 {
                    self.shortfall("total-budget".into(), &all, budget, missing);
                }
            }
        }
        // Free space of every filesystem holding a target dir.
        for (f, fs) in self.input.filesystems.iter().enumerate() {
            let Some(Some(min_free)) = self.plan.min_free.get(f).copied() else {
                continue;
            };
            let on_fs: Vec<usize> = (0..self.input.targets.len())
                .filter(|t| self.input.targets[*t].fs == f)
                .collect();
            let free_after = fs.free_bytes + on_fs.iter().map(|t| self.planned_in(*t)).sum::<u64>();
            if free_after < min_free {
                let scope = |t: usize| on_fs.contains(&t);
                let missing = self.lru(&scope, min_free - free_after, Rule::MinFree);
                if missing > 0 {
                    let name = format!("min-free of the filesystem holding {}", fs.path.display());
                    self.shortfall(name, &scope, min_free, missing);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{
        ByKind, IncrementalDir, Layout, Profile, ProfileState, ScanErrors, Unit, UnitKey, Usage,
    };
    use std::path::PathBuf;

    const DAY: Duration = Duration::from_secs(86_400);
    const NOW_SECS: u64 = 2_000_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    fn ago(d: Duration) -> SystemTime {
        now() - d
    }

    /// A unit of `bytes` bytes, last used `used` ago, built by rustc `rustc`.
    fn unit(n: u64, used: Duration, bytes: u64) -> Unit {
        Unit {
            key: UnitKey {
                profile: 0,
                hash: n,
                layout: Layout::Legacy,
            },
            package: format!("p{n}"),
            targets: vec![format!("lib-p{n}")],
            fingerprints: vec![1000 + n],
            rustc: vec![7],
            deps: Vec::new(),
            dependents: Vec::new(),
            build_script: false,
            paths: vec![PathBuf::from(format!("debug/.fingerprint/p{n}-{n:016x}"))],
            fingerprint_dir: PathBuf::from(format!("debug/.fingerprint/p{n}-{n:016x}")),
            run_dir: None,
            usage: ByKind {
                deps: Usage {
                    bytes,
                    apparent_bytes: bytes,
                    files: 1,
                },
                ..ByKind::default()
            },
            reclaimable: bytes,
            last_used: ago(used),
            last_built: ago(used + DAY),
            invoked: Some(ago(used + DAY)),
            finished: Some(ago(used + DAY)),
            unreadable: 0,
            first_seen: None,
        }
    }

    fn target(name: &str, units: Vec<Unit>) -> TargetDir {
        let mut usage = ByKind::default();
        for u in &units {
            usage.merge(&u.usage);
        }
        let mut t = TargetDir {
            path: PathBuf::from(name),
            dev: 1,
            ino: 1,
            profiles: vec![Profile {
                rel: PathBuf::from("debug"),
                layouts: vec![Layout::Legacy],
                usage,
                state: ProfileState::Idle,
            }],
            units,
            incremental: Vec::new(),
            orphans: Vec::new(),
            shared: Vec::new(),
            usage,
            errors: ScanErrors::default(),
            rustc_vv: Some("rustc 9.9.9\nrelease: 9.9.9\n".into()),
        };
        // Dependents from deps, as the inventory links them.
        let fps: Vec<u64> = t.units.iter().map(|u| u.fingerprints[0]).collect();
        let deps: Vec<Vec<u64>> = t.units.iter().map(|u| u.deps.clone()).collect();
        for (i, ds) in deps.iter().enumerate() {
            for d in ds {
                let j = fps.iter().position(|f| f == d).unwrap();
                t.units[j].dependents.push(i);
            }
        }
        t
    }

    fn settings() -> Settings {
        Settings {
            rules: Rules {
                incremental: true,
                toolchains: true,
                stale: true,
                budgets: true,
            },
            min_age: Duration::from_secs(3600),
            stale_after: 30 * DAY,
            incremental_max_age: 14 * DAY,
            target_budget: None,
            total_budget: None,
            min_free: None,
        }
    }

    fn fs(free: u64) -> Vec<Filesystem> {
        vec![Filesystem {
            dev: 1,
            path: PathBuf::from("/"),
            total_bytes: 1_000_000,
            free_bytes: free,
        }]
    }

    fn run(
        targets: &[TargetDir],
        s: &Settings,
        fss: &[Filesystem],
        tc: Option<&Toolchains>,
    ) -> Plan {
        run_with(targets, s, fss, tc, Signal::Relatime)
    }

    fn run_with(
        targets: &[TargetDir],
        s: &Settings,
        fss: &[Filesystem],
        tc: Option<&Toolchains>,
        signal: Signal,
    ) -> Plan {
        plan(&Input {
            targets: targets
                .iter()
                .map(|dir| Target { dir, signal, fs: 0 })
                .collect(),
            filesystems: fss,
            toolchains: tc,
            settings: s,
            now: now(),
        })
    }

    /// (target, unit hash, rule) of every unit action.
    fn removed(p: &Plan, targets: &[TargetDir]) -> Vec<(usize, u64, Rule)> {
        p.actions
            .iter()
            .filter_map(|a| match a.item {
                Item::Unit(u) => Some((a.target, targets[a.target].units[u].key.hash, a.rule)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn stale_units_go_and_used_ones_stay() {
        let t = vec![target(
            "/t",
            vec![unit(1, 40 * DAY, 100), unit(2, DAY, 100)],
        )];
        let p = run(&t, &settings(), &fs(900_000), None);
        assert_eq!(removed(&p, &t), vec![(0, 1, Rule::Stale)]);
        assert_eq!(p.planned_bytes(), 100);
        assert!(
            p.actions[0]
                .reason
                .contains("not used for 40d (stale-after 30d)"),
            "{}",
            p.actions[0].reason
        );
    }

    #[test]
    fn a_unit_goes_with_its_dependents_and_stays_while_one_is_used() {
        // 2 depends on 1; 3 depends on 2.
        let mut a = unit(1, 40 * DAY, 10);
        let mut b = unit(2, 40 * DAY, 10);
        let mut c = unit(3, 50 * DAY, 10);
        b.deps = vec![1001];
        c.deps = vec![1002];
        let t = vec![target("/t", vec![a.clone(), b.clone(), c.clone()])];
        let p = run(&t, &settings(), &fs(900_000), None);
        let mut r = removed(&p, &t);
        // Dependents are removed before what they depend on.
        assert_eq!(r.iter().map(|x| x.1).collect::<Vec<_>>(), vec![3, 2, 1]);
        r.sort();
        assert_eq!(r.len(), 3);

        // A dependent used yesterday keeps its whole dependency chain.
        c.last_used = ago(DAY);
        a.last_used = ago(40 * DAY);
        b.last_used = ago(40 * DAY);
        let t = vec![target("/t", vec![a, b, c])];
        let p = run(&t, &settings(), &fs(900_000), None);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
    }

    #[test]
    fn target_budget_removes_least_recently_used_until_it_holds() {
        let units: Vec<Unit> = (1..=10)
            .map(|i| unit(i, Duration::from_secs(i * 3 * 3600), 100))
            .collect();
        let t = vec![target("/t", units)];
        let mut s = settings();
        s.target_budget = Some(SizeSpec::Bytes(550));
        let p = run(&t, &s, &fs(900_000), None);
        let r = removed(&p, &t);
        // 1000 bytes, budget 550: the five least recently used (10, 9, 8, 7, 6) go.
        assert_eq!(
            r.iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![10, 9, 8, 7, 6]
        );
        assert!(r.iter().all(|x| x.2 == Rule::TargetBudget));
        assert!(p.shortfalls.is_empty());
        assert_eq!(p.targets[0].budget, Some(550));
    }

    #[test]
    fn young_units_are_never_removed_and_the_shortfall_is_said() {
        let t = vec![target(
            "/t",
            vec![
                unit(1, Duration::from_secs(600), 100),
                unit(2, 5 * DAY, 100),
            ],
        )];
        let mut s = settings();
        s.target_budget = Some(SizeSpec::Bytes(50));
        let p = run(&t, &s, &fs(900_000), None);
        assert_eq!(removed(&p, &t), vec![(0, 2, Rule::TargetBudget)]);
        assert_eq!(p.shortfalls.len(), 1);
        assert_eq!(p.shortfalls[0].missing_bytes, 50);
        assert!(
            p.shortfalls[0]
                .why
                .contains("1 unit (100 B) used within min-age"),
            "{}",
            p.shortfalls[0].why
        );
        // What the budget wanted and min-age kept is counted.
        assert_eq!(
            p.targets[0].kept.get(&Protection::MinAge),
            Some(&Kept {
                parts: 1,
                bytes: 100
            })
        );
    }

    #[test]
    fn busy_profiles_are_left_alone() {
        let mut t = target("/t", vec![unit(1, 90 * DAY, 100)]);
        t.profiles[0].state = ProfileState::Busy;
        let mut s = settings();
        s.target_budget = Some(SizeSpec::Bytes(0));
        let t = vec![t];
        let p = run(&t, &s, &fs(900_000), None);
        assert!(p.actions.is_empty());
        assert!(
            p.targets[0]
                .notes
                .iter()
                .any(|n| n.contains("build is running"))
        );
        assert_eq!(p.targets[0].protected_bytes, 100);
        // The stale rule wanted it: what the running build keeps is counted, for the report.
        assert_eq!(
            p.kept().get(&Protection::BuildRunning),
            Some(&Kept {
                parts: 1,
                bytes: 100
            })
        );
    }

    #[test]
    fn total_budget_is_least_recently_used_across_target_dirs() {
        let t = vec![
            target("/a", vec![unit(1, 2 * DAY, 100), unit(2, 4 * DAY, 100)]),
            target("/b", vec![unit(3, 3 * DAY, 100), unit(4, 5 * DAY, 100)]),
        ];
        let mut s = settings();
        s.total_budget = Some(SizeSpec::Bytes(250));
        let p = run(&t, &s, &fs(900_000), None);
        assert_eq!(
            removed(&p, &t),
            vec![(1, 4, Rule::TotalBudget), (0, 2, Rule::TotalBudget)]
        );
    }

    #[test]
    fn min_free_frees_what_the_watermark_needs() {
        let t = vec![target(
            "/a",
            (1..=5)
                .map(|i| unit(i, DAY * u32::try_from(i).unwrap(), 100))
                .collect(),
        )];
        let mut s = settings();
        s.min_free = Some(SizeSpec::Bytes(1000));
        // 750 free, 1000 wanted: 250 more, so three units of 100.
        let p = run(&t, &s, &fs(750), None);
        assert_eq!(
            removed(&p, &t).iter().map(|x| x.1).collect::<Vec<_>>(),
            vec![5, 4, 3]
        );
        let mut s = settings();
        s.min_free = Some(SizeSpec::Percent(10.0)); // of 1_000_000
        let p = run(&t, &s, &fs(100_000), None);
        assert!(p.actions.is_empty());
        assert_eq!(p.min_free, vec![Some(100_000)]);
    }

    #[test]
    fn toolchain_rule_removes_units_of_uninstalled_compilers_only_when_verified() {
        let vv = "rustc 9.9.9\nrelease: 9.9.9\n";
        let [installed_hash, _] = toolchain::hashes_of(vv);
        let mut old = unit(1, DAY * 2, 100);
        old.rustc = vec![12345];
        let mut current = unit(2, DAY, 100);
        current.rustc = vec![installed_hash];
        let t = vec![target("/t", vec![old.clone(), current.clone()])];
        let mut tc = Toolchains::default();
        tc.add_verbose_version(vv);
        let p = run(&t, &settings(), &fs(900_000), Some(&tc));
        assert_eq!(removed(&p, &t), vec![(0, 1, Rule::Toolchain)]);

        // Hashes in the target dir match nothing we can compute: rule off, nothing removed.
        let mut t2 = target("/t", vec![old.clone(), current.clone()]);
        t2.rustc_vv = Some("rustc 0.0.1\nrelease: 0.0.1\n".into());
        let t2 = vec![t2];
        let p = run(&t2, &settings(), &fs(900_000), Some(&tc));
        assert!(p.actions.is_empty());
        assert!(
            p.targets[0].notes[0].contains("unknown scheme"),
            "{:?}",
            p.targets[0].notes
        );

        // The newest build used a compiler we do not see: rule off.
        let mut tc2 = Toolchains::default();
        tc2.add_verbose_version("rustc 1.0.0\nrelease: 1.0.0\n");
        let p = run(&t, &settings(), &fs(900_000), Some(&tc2));
        assert!(p.actions.is_empty());
        assert!(
            p.targets[0].notes[0].contains("not found installed"),
            "{:?}",
            p.targets[0].notes
        );
    }

    fn incr(name: &str, written: Duration, owners: Vec<usize>) -> IncrementalDir {
        IncrementalDir {
            profile: 0,
            name: name.into(),
            crate_name: name.split('-').next().unwrap().into(),
            path: PathBuf::from(format!("debug/incremental/{name}")),
            usage: Usage {
                bytes: 40,
                apparent_bytes: 40,
                files: 3,
            },
            reclaimable: 40,
            newest_session: Some(ago(written)),
            newest_mtime: ago(written),
            session_locks: vec!["s-x.lock".into()],
            owners,
        }
    }

    #[test]
    fn incremental_dirs_superseded_old_or_with_their_unit() {
        let mut t = target("/t", vec![unit(1, DAY, 100), unit(2, 40 * DAY, 100)]);
        t.incremental = vec![
            incr("a-1", 2 * DAY, vec![0]),                // owned, fresh: stays
            incr("a-0", 3 * DAY, vec![]),                 // superseded: goes
            incr("b-1", 20 * DAY, vec![0]),               // owned but older than 14d: goes
            incr("c-1", 10 * DAY, vec![1]),               // goes with stale unit 2
            incr("d-0", Duration::from_secs(60), vec![]), // unowned but young: stays
        ];
        let t = vec![t];
        let p = run(&t, &settings(), &fs(900_000), None);
        let incs: Vec<(&str, Rule)> = p
            .actions
            .iter()
            .filter_map(|a| match a.item {
                Item::Incremental(i) => Some((t[0].incremental[i].name.as_str(), a.rule)),
                _ => None,
            })
            .collect();
        assert_eq!(
            incs,
            vec![
                ("a-0", Rule::Incremental),
                ("b-1", Rule::Incremental),
                ("c-1", Rule::Stale)
            ]
        );
    }

    #[test]
    fn noatime_turns_the_stale_rule_off_and_orders_budgets_by_build_time() {
        let mut a = unit(1, 40 * DAY, 100);
        a.last_built = ago(2 * DAY);
        let mut b = unit(2, 50 * DAY, 100);
        b.last_built = ago(DAY);
        let t = vec![target("/t", vec![a, b])];
        let p = run_with(&t, &settings(), &fs(900_000), None, Signal::BuildTimeOnly);
        assert!(p.actions.is_empty());
        assert!(p.targets[0].notes.iter().any(|n| n.contains("noatime")));
        let mut s = settings();
        s.target_budget = Some(SizeSpec::Bytes(150));
        let p = run_with(&t, &s, &fs(900_000), None, Signal::BuildTimeOnly);
        assert_eq!(removed(&p, &t), vec![(0, 1, Rule::TargetBudget)]);
    }

    #[test]
    fn a_shared_inode_counts_when_its_last_owner_goes() {
        let mut t = target(
            "/t",
            vec![
                unit(1, 40 * DAY, 100),
                unit(2, 40 * DAY, 100),
                unit(3, DAY, 100),
            ],
        );
        t.shared = vec![
            crate::inventory::SharedInode {
                bytes: 50,
                owners: vec![Item::Unit(0), Item::Unit(1)],
            },
            crate::inventory::SharedInode {
                bytes: 70,
                owners: vec![Item::Unit(0), Item::Unit(2)],
            },
        ];
        let t = vec![t];
        let p = run(&t, &settings(), &fs(900_000), None);
        // Units 1 and 2 are stale; the inode they share comes back with the second one, the
        // one shared with the kept unit 3 never does.
        assert_eq!(
            p.actions.iter().map(|a| a.bytes).collect::<Vec<_>>(),
            vec![100, 150]
        );
    }

    #[test]
    fn first_sight_holds_off_the_stale_rule_but_not_budgets() {
        let mut a = unit(1, 60 * DAY, 100);
        a.first_seen = Some(ago(DAY));
        let t = vec![target("/t", vec![a])];
        let p = run(&t, &settings(), &fs(900_000), None);
        assert!(p.actions.is_empty(), "seen a day ago: not stale yet");
        let mut s = settings();
        s.target_budget = Some(SizeSpec::Bytes(0));
        let p = run(&t, &s, &fs(900_000), None);
        assert_eq!(removed(&p, &t), vec![(0, 1, Rule::TargetBudget)]);
    }
}
