//! Which BuildKit cache records go, and why. Pure: records, settings and `now` in, a plan out.
//!
//! 1. `keep-duration`: records not used for longer than it go.
//! 2. `budget`: while the reclaimable cache (records neither in use nor shared with an image)
//!    is larger than the budget, the least recently used records go until it fits.
//!
//! Cache mounts (`exec.cachemount`: the cargo registry and `target/` caches people mount in
//! Dockerfiles) are expensive to lose, so by default they are a last resort: they go only
//! when the budget cannot be met otherwise. `protect-cache-mounts` chooses between that,
//! `always` (never removed), `under-hard-limit` (removed only while the cache is over
//! `hard-limit`) and `no` (treated like any record).
//!
//! A record goes with its descendants: BuildKit cannot free a record another one is built on,
//! and a descendant was never used more recently than its ancestors would claim (a build that
//! reuses a step reuses what it sits on). Nothing in use, shared, or used within `min-age` is
//! touched, nor anything such a record sits on.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::lru::{self, Pool};
use super::reason;
use crate::config::{Config, Protect, SizeSpec};
use crate::model::{
    BuildkitPlan, CACHE_MOUNT, Kept, Protection, Record, RecordAction, Rule, Shortfall, short_id,
};
use crate::units::human_bytes;

/// What the BuildKit rules are configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub budget: Option<SizeSpec>,
    pub keep_duration: Duration,
    pub min_age: Duration,
    pub protect_cache_mounts: Protect,
    pub hard_limit: Option<SizeSpec>,
}

impl Settings {
    /// The settings a config asks for.
    #[must_use]
    pub fn of(config: &Config) -> Settings {
        let b = &config.buildkit;
        Settings {
            budget: b.budget,
            keep_duration: b.keep_duration,
            min_age: b.min_age,
            protect_cache_mounts: b.protect_cache_mounts,
            hard_limit: b.hard_limit,
        }
    }
}

/// Plans the removal of records; `fs_bytes` is the size of the filesystem holding Docker's
/// root dir (for budgets given as shares), if known.
#[must_use]
pub fn plan(
    records: &[Record],
    s: &Settings,
    fs_bytes: Option<u64>,
    now: SystemTime,
) -> BuildkitPlan {
    let resolve = |spec: Option<SizeSpec>| match (spec, fs_bytes) {
        (Some(SizeSpec::Bytes(b)), _) => Some(b),
        (Some(p @ SizeSpec::Percent(_)), Some(fs)) => Some(p.resolve(fs)),
        // A share of an unknown filesystem cannot be enforced: the caller says so.
        (Some(SizeSpec::Percent(_)), None) | (None, _) => None,
    };
    let mut st = State::new(records, s, now);
    st.plan.budget_bytes = resolve(s.budget);
    st.plan.hard_limit_bytes = resolve(s.hard_limit);

    // 1. Not used for longer than keep-duration.
    let cache_mounts_free = s.protect_cache_mounts == Protect::No;
    for r in st.by_lru() {
        let idle = st.since(st.eff[r]);
        if idle > s.keep_duration && (records[r].kind != CACHE_MOUNT || cache_mounts_free) {
            let reason = reason::unused_for(idle, "keep-duration", s.keep_duration);
            if st.take_group(r, Rule::KeepDuration, &reason).is_none() {
                st.keep_group(r);
            }
        }
    }
    // 2. Over the budget: other records first; cache mounts under a hard limit go only while
    //    the cache is over that limit; as the last resort, cache mounts.
    let budget = st.plan.budget_bytes;
    let mut missing = budget.map_or(0, |b| {
        let over = st.reclaimable_left().saturating_sub(b);
        st.lru(over, false, Rule::BuildkitBudget)
    });
    if let (Protect::UnderHardLimit, Some(limit)) =
        (s.protect_cache_mounts, st.plan.hard_limit_bytes)
    {
        let over = st.reclaimable_left().saturating_sub(limit);
        st.lru(over, true, Rule::HardLimit);
        missing = budget.map_or(0, |b| st.reclaimable_left().saturating_sub(b));
    }
    if s.protect_cache_mounts == Protect::LastResort && missing > 0 {
        missing = st.lru(missing, true, Rule::BuildkitBudget);
    }
    if missing > 0 {
        // The budget wanted every reclaimable record left: a protection keeps each.
        for (r, record) in records.iter().enumerate() {
            if record.reclaimable() && !st.removed.contains(&r) {
                st.keep_group(r);
            }
        }
    }
    let mut kept: BTreeMap<Protection, Kept> = BTreeMap::new();
    for (&r, why) in &st.kept {
        if !st.removed.contains(&r) {
            let e = kept.entry(*why).or_default();
            e.parts += 1;
            e.bytes = e.bytes.saturating_add(records[r].size);
        }
    }
    if let (Some(budget), true) = (budget, missing > 0) {
        let parts: Vec<String> = kept
            .iter()
            .map(|(p, k)| {
                let label = match p {
                    Protection::InUse => "in use by running builds",
                    Protection::SharedWithImage => "shared with images",
                    Protection::CacheMount => "protected cache mounts",
                    Protection::MinAge => "used within min-age",
                    _ => "under records that are kept",
                };
                format!(
                    "{label} ({} record{}, {})",
                    k.parts,
                    if k.parts == 1 { "" } else { "s" },
                    human_bytes(k.bytes)
                )
            })
            .collect();
        st.plan.shortfall = Some(Shortfall {
            scope: "buildkit budget".into(),
            limit_bytes: budget,
            missing_bytes: missing,
            why: if parts.is_empty() {
                "no record is left to prune".into()
            } else {
                format!("everything else is kept: {}", parts.join(", "))
            },
        });
    }
    st.plan.kept = kept;
    st.plan
}

struct State<'a> {
    records: &'a [Record],
    s: &'a Settings,
    now: SystemTime,
    children: Vec<Vec<usize>>,
    /// Newest use of each record or any descendant.
    eff: Vec<SystemTime>,
    /// Why the record itself may never go, if it may not.
    pinned: Vec<Option<Protection>>,
    /// Whether anything in its subtree may not go.
    blocked: Vec<bool>,
    removed: HashSet<usize>,
    /// Records a rule wanted that a protection kept.
    kept: HashMap<usize, Protection>,
    plan: BuildkitPlan,
}

impl<'a> State<'a> {
    fn new(records: &'a [Record], s: &'a Settings, now: SystemTime) -> State<'a> {
        let index: HashMap<&str, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut children = vec![Vec::new(); records.len()];
        for (i, r) in records.iter().enumerate() {
            for p in &r.parents {
                if let Some(&j) = index.get(p.as_str())
                    && j != i
                {
                    children[j].push(i);
                }
            }
        }
        let mut st = State {
            records,
            s,
            now,
            children,
            eff: Vec::new(),
            pinned: Vec::new(),
            blocked: Vec::new(),
            removed: HashSet::new(),
            kept: HashMap::new(),
            plan: BuildkitPlan::default(),
        };
        st.pinned = records
            .iter()
            .map(|r| {
                if r.in_use {
                    Some(Protection::InUse)
                } else if r.shared {
                    Some(Protection::SharedWithImage)
                } else if r.kind == CACHE_MOUNT && s.protect_cache_mounts == Protect::Always {
                    Some(Protection::CacheMount)
                } else if r.last_use().is_none_or(|t| st.since(t) < s.min_age) {
                    Some(Protection::MinAge)
                } else {
                    None
                }
            })
            .collect();
        (st.eff, st.blocked) = st.subtree_facts();
        st
    }

    /// For every record, in one pass over the graph (a chain 40k deep is linear, not
    /// quadratic): the newest use in its subtree (a record never used counts as used now), and
    /// whether anything in its subtree may not go (then it may not either).
    fn subtree_facts(&self) -> (Vec<SystemTime>, Vec<bool>) {
        let n = self.records.len();
        let mut eff: Vec<Option<SystemTime>> = vec![None; n];
        let mut blocked = vec![false; n];
        let mut entered = vec![false; n];
        for start in 0..n {
            if eff[start].is_some() {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            entered[start] = true;
            while let Some((r, next)) = stack.pop() {
                if let Some(&c) = self.children[r].get(next) {
                    stack.push((r, next + 1));
                    // A cycle (impossible in BuildKit, but the data comes from outside) is cut.
                    if eff[c].is_none() && !entered[c] {
                        entered[c] = true;
                        stack.push((c, 0));
                    }
                    continue;
                }
                let own = self.records[r].last_use().unwrap_or(self.now);
                let kids = &self.children[r];
                eff[r] = Some(
                    kids.iter()
                        .filter_map(|&c| eff[c])
                        .fold(own, SystemTime::max),
                );
                blocked[r] = self.pinned[r].is_some() || kids.iter().any(|&c| blocked[c]);
            }
        }
        (
            eff.into_iter().map(|e| e.unwrap_or(self.now)).collect(),
            blocked,
        )
    }

    fn since(&self, t: SystemTime) -> Duration {
        self.now.duration_since(t).unwrap_or(Duration::ZERO)
    }

    /// Record indices, least recently used first; among equals, leaves before what they sit
    /// on (a leaf frees space alone, an ancestor only with its subtree).
    fn by_lru(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.records.len()).collect();
        order.sort_by_key(|&r| {
            (
                self.eff[r],
                self.children[r].len(),
                self.records[r].usage_count,
                r,
            )
        });
        order
    }

    /// The record and its descendants not yet removed, deepest first; `None` if any of them
    /// may not go.
    fn group(&self, r: usize) -> Option<Vec<usize>> {
        if self.blocked[r] {
            return None;
        }
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![(r, 0usize)];
        seen.insert(r);
        while let Some((x, next)) = stack.pop() {
            if let Some(&c) = self.children[x].get(next) {
                stack.push((x, next + 1));
                if !self.removed.contains(&c) && seen.insert(c) {
                    stack.push((c, 0));
                }
            } else {
                if self.pinned[x].is_some() {
                    return None;
                }
                order.push(x);
            }
        }
        Some(order)
    }

    /// Notes that a rule wanted `r` and its descendants, which a protection keeps: each keeps
    /// its own protection, or is tied to the kept ones.
    fn keep_group(&mut self, r: usize) {
        let mut seen = HashSet::from([r]);
        let mut stack = vec![r];
        while let Some(x) = stack.pop() {
            // A record kept already had its subtree marked with it.
            if self.removed.contains(&x) || (x != r && self.kept.contains_key(&x)) {
                continue;
            }
            let why = self.pinned[x].unwrap_or(Protection::TiedToKept);
            self.kept.entry(x).or_insert(why);
            for &c in &self.children[x] {
                if seen.insert(c) {
                    stack.push(c);
                }
            }
        }
    }

    /// Plans the removal of `r` with its descendants; `None` if a protection keeps the group.
    fn take_group(&mut self, r: usize, rule: Rule, reason: &str) -> Option<u64> {
        if self.removed.contains(&r) {
            return Some(0);
        }
        let group = self.group(r)?;
        let mut bytes = 0;
        for x in group {
            self.removed.insert(x);
            let why = if x == r {
                reason.to_string()
            } else {
                reason::goes_with("built on", short_id(&self.records[r].id), reason)
            };
            bytes = u64::saturating_add(bytes, self.records[x].size);
            self.plan.actions.push(RecordAction {
                item: x,
                rule,
                reason: why,
                bytes: self.records[x].size,
                rebuild_seconds: None,
                last_use: self.records[x].last_use(),
            });
        }
        Some(bytes)
    }

    fn reclaimable_left(&self) -> u64 {
        self.records
            .iter()
            .enumerate()
            .filter(|(i, r)| r.reclaimable() && !self.removed.contains(i))
            .fold(0, |t, (_, r)| t.saturating_add(r.size))
    }

    /// Least recently used first until `over` bytes are freed; `cache_mounts` says whether
    /// this pass takes cache mounts or everything else. Returns what is still missing.
    fn lru(&mut self, over: u64, cache_mounts: bool, rule: Rule) -> u64 {
        let now = self.now;
        lru::evict(
            &mut Records {
                st: self,
                cache_mounts,
            },
            over,
            rule,
            now,
        )
    }
}

/// The records of one pass, as a pool for [`lru::evict`]: cache mounts or everything else
/// (as `protect-cache-mounts` allows), each with what is built on it.
struct Records<'s, 'a> {
    st: &'s mut State<'a>,
    cache_mounts: bool,
}

impl Pool for Records<'_, '_> {
    type Id = usize;

    fn candidates(&self) -> Vec<(usize, SystemTime)> {
        let st = &*self.st;
        let allowed = |kind: &str| {
            let is_mount = kind == CACHE_MOUNT;
            match st.s.protect_cache_mounts {
                Protect::No => !self.cache_mounts,
                Protect::Always => !is_mount && !self.cache_mounts,
                Protect::LastResort | Protect::UnderHardLimit => is_mount == self.cache_mounts,
            }
        };
        st.by_lru()
            .into_iter()
            .filter(|&r| allowed(&st.records[r].kind) && st.records[r].reclaimable())
            .map(|r| (r, st.eff[r]))
            .collect()
    }

    fn gone(&self, r: usize) -> bool {
        self.st.removed.contains(&r)
    }

    fn evict(&mut self, r: usize, rule: Rule, reason: &str) -> Option<u64> {
        self.st.take_group(r, rule, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000)
    }

    fn rec(id: &str, kind: &str, size: u64, used_min_ago: u64) -> Record {
        Record {
            id: id.into(),
            parents: Vec::new(),
            kind: kind.into(),
            description: String::new(),
            in_use: false,
            shared: false,
            size,
            created_at: Some(now() - MIN * 60 * 24 * 90),
            last_used_at: Some(now() - MIN * u32::try_from(used_min_ago).unwrap()),
            usage_count: 1,
        }
    }

    fn settings(budget: Option<u64>) -> Settings {
        Settings {
            budget: budget.map(SizeSpec::Bytes),
            keep_duration: Duration::from_secs(30 * 86_400),
            min_age: Duration::from_secs(3600),
            protect_cache_mounts: Protect::LastResort,
            hard_limit: None,
        }
    }

    fn gone(records: &[Record], p: &BuildkitPlan) -> Vec<String> {
        p.actions
            .iter()
            .map(|a| records[a.item].id.clone())
            .collect()
    }

    #[test]
    fn least_recently_used_go_until_the_budget_holds() {
        let r = vec![
            rec("a", "regular", 100, 500),
            rec("b", "regular", 100, 400),
            rec("c", "regular", 100, 300),
            rec("d", "regular", 100, 200),
        ];
        let p = plan(&r, &settings(Some(200)), None, now());
        assert_eq!(gone(&r, &p), ["a", "b"]);
        assert_eq!(p.planned_bytes(), 200);
        assert!(p.shortfall.is_none());
    }

    #[test]
    fn a_record_goes_with_what_is_built_on_it_and_stays_while_that_is_used() {
        let mut r = vec![
            rec("base", "regular", 100, 900),
            rec("top", "regular", 100, 800),
        ];
        r[1].parents = vec!["base".into()];
        let p = plan(&r, &settings(Some(150)), None, now());
        // Removing "base" alone frees nothing while "top" sits on it: top first, then base.
        assert_eq!(gone(&r, &p), ["top"]);
        let p = plan(&r, &settings(Some(50)), None, now());
        assert_eq!(gone(&r, &p), ["top", "base"]);
        // A record built on it used a minute ago protects it (min-age).
        r[1].last_used_at = Some(now() - MIN);
        let p = plan(&r, &settings(Some(0)), None, now());
        assert!(p.actions.is_empty());
        assert!(p.shortfall.is_some());
    }

    #[test]
    fn keep_duration_removes_old_records_but_not_cache_mounts() {
        let r = vec![
            rec("old", "regular", 10, 60 * 24 * 40),
            rec("mount", CACHE_MOUNT, 10, 60 * 24 * 40),
            rec("new", "regular", 10, 120),
        ];
        let p = plan(&r, &settings(None), None, now());
        assert_eq!(gone(&r, &p), ["old"]);
        assert_eq!(p.actions[0].rule, Rule::KeepDuration);
        let mut s = settings(None);
        s.protect_cache_mounts = Protect::No;
        let p = plan(&r, &s, None, now());
        assert_eq!(gone(&r, &p).len(), 2);
    }

    #[test]
    fn cache_mounts_by_protection_mode() {
        let r = vec![
            rec("mount", CACHE_MOUNT, 500, 900),
            rec("layer", "regular", 100, 100),
        ];
        // Last resort: the layer first; the mount only because 0 cannot be met otherwise.
        let p = plan(&r, &settings(Some(500)), None, now());
        assert_eq!(gone(&r, &p), ["layer"]);
        let p = plan(&r, &settings(Some(0)), None, now());
        assert_eq!(gone(&r, &p), ["layer", "mount"]);
        // Always: never, and the shortfall is said.
        let mut s = settings(Some(0));
        s.protect_cache_mounts = Protect::Always;
        let p = plan(&r, &s, None, now());
        assert_eq!(gone(&r, &p), ["layer"]);
        assert_eq!(p.shortfall.as_ref().unwrap().missing_bytes, 500);
        // Under a hard limit of 550: the mount stays while the cache fits it.
        let mut s = settings(Some(0));
        s.protect_cache_mounts = Protect::UnderHardLimit;
        s.hard_limit = Some(SizeSpec::Bytes(550));
        let p = plan(&r, &s, None, now());
        assert_eq!(gone(&r, &p), ["layer"]);
        s.hard_limit = Some(SizeSpec::Bytes(400));
        let p = plan(&r, &s, None, now());
        assert_eq!(gone(&r, &p), ["layer", "mount"]);
        assert_eq!(p.actions[1].rule, Rule::HardLimit);
        // No protection: plain least recently used, the mount first.
        let mut s = settings(Some(100));
        s.protect_cache_mounts = Protect::No;
        let p = plan(&r, &s, None, now());
        assert_eq!(gone(&r, &p), ["mount"]);
    }

    #[test]
    fn in_use_shared_and_young_records_are_never_planned() {
        let mut r = vec![
            rec("busy", "regular", 100, 500),
            rec("image", "regular", 100, 500),
            rec("young", "regular", 100, 1),
        ];
        r[0].in_use = true;
        r[1].shared = true;
        let p = plan(&r, &settings(Some(0)), None, now());
        assert!(p.actions.is_empty());
        assert_eq!(p.shortfall.unwrap().missing_bytes, 100);
    }

    #[test]
    fn shares_need_the_filesystem_size() {
        let r = vec![rec("a", "regular", 100, 500)];
        let mut s = settings(None);
        s.budget = Some(SizeSpec::Percent(10.0));
        assert_eq!(plan(&r, &s, None, now()).budget_bytes, None);
        assert_eq!(plan(&r, &s, Some(500), now()).budget_bytes, Some(50));
        assert_eq!(gone(&r, &plan(&r, &s, Some(500), now())), ["a"]);
    }

    /// Hardening issue, item 7: planning walked every record's subtree once per record, so a
    /// 40k-deep parent chain took 38 s. It is linear now.
    #[test]
    fn a_deep_parent_chain_plans_in_linear_time() {
        let n = 40_000;
        let chain = |in_use_leaf: bool| -> Vec<Record> {
            (0..n)
                .map(|i| {
                    let mut r = rec(&format!("r{i}"), "regular", 10, 60 * 24 * 60);
                    if i > 0 {
                        r.parents = vec![format!("r{}", i - 1)];
                    }
                    r.in_use = in_use_leaf && i == n - 1;
                    r
                })
                .collect()
        };
        // The leaf is in use: nothing it sits on can go, and that is said.
        let held = chain(true);
        let p = plan(&held, &settings(Some(0)), None, now());
        assert!(p.actions.is_empty());
        assert_eq!(p.kept.get(&Protection::InUse).map(|k| k.parts), Some(1));
        assert_eq!(
            p.kept.get(&Protection::TiedToKept).map(|k| k.parts),
            Some(n - 1)
        );
        // Nothing held: all of it goes, every record after the ones built on it.
        let free = chain(false);
        let p = plan(&free, &settings(None), None, now());
        assert_eq!(p.actions.len(), n);
        let position: HashMap<usize, usize> = p
            .actions
            .iter()
            .enumerate()
            .map(|(i, a)| (a.item, i))
            .collect();
        assert!((1..n).all(|i| position[&i] < position[&(i - 1)]));
    }
}
