//! Budgets by cost: what goes is what frees the bytes for the least expected rebuild time.
//!
//! Each candidate is a unit with everything that must go with it (its dependents and the
//! incremental data only they own), an incremental dir alone, or orphaned outputs. Its
//! expected cost is the compile seconds of every unit in it ([`Unit::build_cost`]), each
//! weighed by how likely it is to be used again ([`reuse_weight`] of its effective last use);
//! and, where the daemon counted its uses, by how often it is used ([`frequency_weight`]);
//! incremental data costs [`INCREMENTAL_SHARE`] of its crate's compile, orphans nothing. The
//! candidates go cheapest per byte first (GreedyDual-Size without the aging term: the weight
//! already falls with idle time), except that the last bytes come from the cheapest single
//! candidate that covers them when that costs no more; protected groups never go.

use super::*;
use crate::decide::reason;
use crate::model::{INCREMENTAL_SHARE, frequency_weight, reuse_weight_at};

#[cfg(doc)]
use crate::model::{Unit, reuse_weight};

struct Candidate {
    t: usize,
    part: Part,
    /// Expected rebuild seconds, the bytes it frees, and the seconds per byte.
    seconds: f64,
    bytes: u64,
    score: f64,
    used: SystemTime,
}

impl Candidate {
    fn new(t: usize, part: Part, seconds: f64, bytes: u64, used: SystemTime) -> Candidate {
        #[allow(clippy::cast_precision_loss)]
        let score = seconds / bytes.max(1) as f64;
        Candidate {
            t,
            part,
            seconds,
            bytes,
            score,
            used,
        }
    }
}

impl State<'_> {
    /// Compile seconds it costs to get `part` back once `rule` removed it.
    pub(super) fn rebuild_seconds(&self, t: usize, part: Part, rule: Rule) -> f64 {
        let dir = self.input.targets[t].dir;
        match part {
            // Never rebuilt: its toolchain is gone, or no fingerprint refers to it.
            _ if rule == Rule::Toolchain => 0.0,
            Part::Orphan(_) => 0.0,
            Part::Unit(u) => dir.units[u].build_cost().seconds,
            Part::Incremental(i) => {
                let inc = &dir.incremental[i];
                let owners_go = inc
                    .owners
                    .iter()
                    .all(|o| self.removed[t].contains(&Part::Unit(*o)));
                // With its owners it adds nothing: they compile from scratch anyway.
                if owners_go {
                    0.0
                } else {
                    inc.rebuild_seconds(&dir.units)
                }
            }
        }
    }

    /// How often unit `u` is used, where the daemon counted its uses ([`frequency_weight`]);
    /// 1 where it did not.
    fn frequency(&self, t: usize, u: usize) -> f64 {
        let dir = self.input.targets[t].dir;
        self.input
            .uses
            .and_then(|l| l.use_count(&dir.path, &dir.units[u].fingerprint_dir))
            .map_or(1.0, |(n, since)| frequency_weight(n, self.since(since)))
    }

    /// How likely unit `u` is to be used again: by recency ([`reuse_weight`] of its effective
    /// last use) and by how often.
    fn weight(&self, t: usize, u: usize) -> f64 {
        reuse_weight_at(self.eff[t][u], self.input.now) * self.frequency(t, u)
    }

    /// Expected seconds and bytes of removing `group` now, with the incremental data only it
    /// owns (`owned`: a unit's incremental dirs).
    fn group_cost(&self, t: usize, group: &[usize], owned: &[Vec<usize>]) -> (f64, u64) {
        let dir = self.input.targets[t].dir;
        let mut seconds = 0.0;
        let mut bytes = 0;
        for &g in group {
            seconds += dir.units[g].build_cost().seconds * self.weight(t, g);
            bytes += dir.units[g].reclaimable;
            for &i in &owned[g] {
                let inc = &dir.incremental[i];
                // Counted once: with the first of its owners, when all of them are here.
                if inc.owners.first() == Some(&g)
                    && !self.removed[t].contains(&Part::Incremental(i))
                    && inc.owners.iter().all(|o| group.contains(o))
                {
                    bytes += inc.reclaimable;
                }
            }
        }
        (seconds, bytes)
    }

    fn candidates(&self, targets: &[usize], owned: &[Vec<Vec<usize>>]) -> Vec<Candidate> {
        let s = self.input.settings;
        let now = self.input.now;
        let mut c = Vec::new();
        for &t in targets {
            let dir = self.input.targets[t].dir;
            for u in 0..dir.units.len() {
                if self.removed[t].contains(&Part::Unit(u)) || self.protected[t][u].is_some() {
                    continue;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    continue;
                }
                let (seconds, bytes) = self.group_cost(t, &group, &owned[t]);
                c.push(Candidate::new(
                    t,
                    Part::Unit(u),
                    seconds,
                    bytes,
                    self.eff[t][u],
                ));
            }
            for (i, inc) in dir.incremental.iter().enumerate() {
                let written = inc.last_written();
                if self.removed[t].contains(&Part::Incremental(i))
                    || inc.owners.is_empty()
                    || self.profile_free(t, inc.profile).is_err()
                    || self.since(written) < s.min_age
                {
                    continue;
                }
                // Its own recency; as often used as its most used owner.
                let often = inc
                    .owners
                    .iter()
                    .map(|&o| self.frequency(t, o))
                    .fold(1.0, f64::max);
                let seconds =
                    inc.rebuild_seconds(&dir.units) * reuse_weight_at(written, now) * often;
                c.push(Candidate::new(
                    t,
                    Part::Incremental(i),
                    seconds,
                    inc.reclaimable,
                    written,
                ));
            }
            for (o, orphan) in dir.orphans.iter().enumerate() {
                if self.removed[t].contains(&Part::Orphan(o))
                    || self.profile_free(t, orphan.key.profile).is_err()
                    || self.since(orphan.newest_mtime) < s.min_age
                {
                    continue;
                }
                let used = orphan.newest_mtime;
                c.push(Candidate::new(
                    t,
                    Part::Orphan(o),
                    0.0,
                    orphan.reclaimable,
                    used,
                ));
            }
        }
        c
    }

    /// Within `targets`, until `need` bytes are planned: the candidate with the least expected
    /// rebuild seconds per byte, unless one that alone covers what is still needed costs no
    /// more (then that one: a big cheap group should not be taken for the last few bytes).
    /// Costs are worked out again after every pick, as groups shrink. Returns how many bytes
    /// stay missing.
    pub(super) fn cheapest(&mut self, targets: &[usize], need: u64, rule: Rule) -> u64 {
        let owned: Vec<Vec<Vec<usize>>> = (0..self.input.targets.len())
            .map(|t| {
                let dir = self.input.targets[t].dir;
                let mut v = vec![Vec::new(); dir.units.len()];
                for (i, inc) in dir.incremental.iter().enumerate() {
                    for &o in &inc.owners {
                        v[o].push(i);
                    }
                }
                v
            })
            .collect();
        let mut need = need;
        while need > 0 {
            let cands = self.candidates(targets, &owned);
            let by_ratio = cands
                .iter()
                .min_by(|a, b| a.score.total_cmp(&b.score).then(a.used.cmp(&b.used)));
            let Some(by_ratio) = by_ratio else { break };
            let cover = cands.iter().filter(|c| c.bytes >= need).min_by(|a, b| {
                a.seconds
                    .total_cmp(&b.seconds)
                    .then(a.bytes.cmp(&b.bytes))
                    .then(a.used.cmp(&b.used))
            });
            let pick = match cover {
                Some(c) if by_ratio.bytes >= need || c.seconds <= by_ratio.seconds => c,
                _ => by_ratio,
            };
            let freed = self.take_candidate(pick.t, pick.part, pick.used, rule);
            need = need.saturating_sub(freed);
        }
        need
    }

    fn take_candidate(&mut self, t: usize, part: Part, used: SystemTime, rule: Rule) -> u64 {
        let idle = self.since(used);
        let dir = self.input.targets[t].dir;
        match part {
            Part::Unit(u) => {
                let group = self.group(t, u);
                let seconds: f64 = group
                    .iter()
                    .map(|&g| dir.units[g].build_cost().seconds)
                    .sum();
                let measured = group.iter().all(|&g| dir.units[g].build_cost().measured);
                let why = reason::rebuild_cost(seconds, measured, group.len() - 1, idle);
                self.remove_group(t, u, rule, &why)
            }
            Part::Incremental(i) => {
                let seconds = dir.incremental[i].rebuild_seconds(&dir.units);
                let why = reason::incremental_cost(seconds, INCREMENTAL_SHARE, idle);
                self.take(t, part, rule, why)
            }
            Part::Orphan(_) => {
                let why = "no fingerprint refers to it: never rebuilt, costs nothing".into();
                self.take(t, part, rule, why)
            }
        }
    }
}
