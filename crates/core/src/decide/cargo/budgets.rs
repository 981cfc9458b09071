//! The budgets: a target dir over `target-budget`, all of them over `total-budget`, a
//! filesystem under `min-free`; units go by the configured eviction (the cheapest expected
//! rebuild per byte, `cost.rs`, or least recently used, `decide::lru`) until each holds, or
//! the shortfall is said.

use super::*;
use crate::decide::lru::{self, Pool};

impl State<'_> {
    pub(super) fn resolve_budgets(&mut self) {
        let s = self.input.settings;
        let fss = self.input.filesystems;
        for (t, target) in self.input.targets.iter().enumerate() {
            let fs_total = target.fs.of(fss).map_or(0, |f| f.total_bytes);
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
            .filter(|a| a.item.target == t)
            .map(|a| a.bytes)
            .sum()
    }

    /// By `eviction` (cheapest expected rebuild per byte, or least recently used) within
    /// `scope` (target indices), until `over` bytes are freed. Returns how many stay missing.
    fn evict(&mut self, scope: &dyn Fn(usize) -> bool, over: u64, rule: Rule) -> u64 {
        let targets: Vec<usize> = (0..self.input.targets.len())
            .filter(|t| scope(*t))
            .collect();
        if self.input.settings.eviction == Eviction::Cost {
            return self.cheapest(&targets, over, rule);
        }
        let now = self.input.now;
        lru::evict(&mut Units { st: self, targets }, over, rule, now)
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
                if self.dirs[t].removed.contains(&Part::Unit(u)) {
                    continue;
                }
                let why = self.dirs[t].units[u]
                    .protected
                    .unwrap_or(Protection::TiedToKept);
                self.keep(t, Part::Unit(u), why);
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
                    human_bytes(k.bytes),
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

    pub(super) fn budget_rules(&mut self) {
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
                let missing = self.evict(&only, after - budget, Rule::TargetBudget);
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
                let missing = self.evict(&all, after - budget, Rule::TotalBudget);
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
                .filter(|t| self.input.targets[*t].fs == FsId(f))
                .collect();
            let free_after = fs.free_bytes + on_fs.iter().map(|t| self.planned_in(*t)).sum::<u64>();
            if free_after < min_free {
                let scope = |t: usize| on_fs.contains(&t);
                let missing = self.evict(&scope, min_free - free_after, Rule::MinFree);
                if missing > 0 {
                    let name = format!("min-free of the filesystem holding {}", fs.path.display());
                    self.shortfall(name, &scope, min_free, missing);
                }
            }
        }
    }
}

/// The units of some target dirs, as a pool for [`lru::evict`] (`eviction = "lru"`): a unit goes with its
/// dependents, and not at all when one of them is protected.
struct Units<'s, 'a> {
    st: &'s mut State<'a>,
    targets: Vec<usize>,
}

impl Pool for Units<'_, '_> {
    type Id = (usize, usize);

    fn candidates(&self) -> Vec<((usize, usize), SystemTime)> {
        let st = &*self.st;
        let mut c: Vec<(SystemTime, usize, usize)> = Vec::new();
        for &t in &self.targets {
            for u in 0..st.input.targets[t].dir.units.len() {
                if !st.dirs[t].removed.contains(&Part::Unit(u))
                    && st.dirs[t].units[u].protected.is_none()
                {
                    c.push((st.dirs[t].units[u].eff, t, u));
                }
            }
        }
        c.sort();
        c.into_iter().map(|(eff, t, u)| ((t, u), eff)).collect()
    }

    fn gone(&self, (t, u): (usize, usize)) -> bool {
        self.st.dirs[t].removed.contains(&Part::Unit(u))
    }

    fn evict(&mut self, (t, u): (usize, usize), rule: Rule, reason: &str) -> Option<u64> {
        let group = self.st.group(t, u);
        if self.st.group_blocked(t, &group) {
            return None;
        }
        Some(self.st.remove_group(t, u, rule, reason))
    }
}
