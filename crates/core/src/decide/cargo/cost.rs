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
    /// How many units its group holds (as estimated).
    size: usize,
    /// The number of takes its values were worked out after.
    at: usize,
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
            size: 1,
            at: 0,
        }
    }

    fn with(mut self, size: usize, at: usize) -> Candidate {
        self.size = size;
        self.at = at;
        self
    }
}

/// A group is worked out again by walking it only up to this many units; a bigger one makes
/// every estimate be worked out again at once, in one pass over the graph.
const WALK_AT_MOST: usize = 64;

/// A float that orders (seconds are never NaN: they are sums of durations and weights).
#[derive(Clone, Copy, PartialEq)]
struct Ordered(f64);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
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
                    .all(|o| self.dirs[t].removed.contains(&Part::Unit(*o)));
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
        reuse_weight_at(self.dirs[t].units[u].eff, self.input.now) * self.frequency(t, u)
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
                    && !self.dirs[t].removed.contains(&Part::Incremental(i))
                    && inc.owners.iter().all(|o| group.contains(o))
                {
                    bytes += inc.reclaimable;
                }
            }
        }
        (seconds, bytes)
    }

    /// Every candidate within `targets`, with a first estimate of its cost and bytes: a unit's
    /// group summed over its dependents once, bottom up (exact for chains and trees; a
    /// dependent reached twice, in a diamond, is counted twice, which [`State::exact`] mends
    /// before anything is taken).
    fn estimates(&self, targets: &[usize], own: &[Vec<(f64, u64)>], at: usize) -> Vec<Candidate> {
        let s = self.input.settings;
        let now = self.input.now;
        let mut c = Vec::new();
        for &t in targets {
            let dir = self.input.targets[t].dir;
            let units = &dir.units;
            // Each unit's own seconds and bytes (its incremental data counted with the first
            // of its owners), then summed over dependents in post-order (a cycle, impossible in
            // cargo's graph but read from disk, is cut by the `visiting` mark).
            let own: Vec<(f64, u64, usize)> = own[t].iter().map(|&(s, b)| (s, b, 1)).collect();
            let mut gone = vec![false; units.len()];
            for p in &self.dirs[t].removed {
                if let Part::Unit(u) = p {
                    gone[*u] = true;
                }
            }
            let mut sum: Vec<Option<(f64, u64, usize)>> = vec![None; units.len()];
            let mut visiting = vec![false; units.len()];
            for start in 0..units.len() {
                if sum[start].is_some() || gone[start] {
                    continue;
                }
                let mut stack = vec![(start, 0usize)];
                visiting[start] = true;
                while let Some((u, next)) = stack.pop() {
                    if let Some(&d) = units[u].dependents.get(next) {
                        stack.push((u, next + 1));
                        if sum[d].is_none() && !visiting[d] && !gone[d] {
                            visiting[d] = true;
                            stack.push((d, 0));
                        }
                    } else {
                        let total = units[u]
                            .dependents
                            .iter()
                            .filter_map(|&d| sum[d])
                            .fold(own[u], |(s, b, n), (ds, db, dn)| {
                                (s + ds, b.saturating_add(db), n + dn)
                            });
                        sum[u] = Some(total);
                    }
                }
            }
            for u in 0..units.len() {
                if gone[u] || self.dirs[t].units[u].protected.is_some() {
                    continue;
                }
                let (seconds, bytes, size) = sum[u].unwrap_or(own[u]);
                c.push(
                    Candidate::new(t, Part::Unit(u), seconds, bytes, self.dirs[t].units[u].eff)
                        .with(size, at),
                );
            }
            for (i, inc) in dir.incremental.iter().enumerate() {
                let written = inc.last_written();
                if self.dirs[t].removed.contains(&Part::Incremental(i))
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
                c.push(
                    Candidate::new(t, Part::Incremental(i), seconds, inc.reclaimable, written)
                        .with(1, at),
                );
            }
            for (o, orphan) in dir.orphans.iter().enumerate() {
                if self.dirs[t].removed.contains(&Part::Orphan(o))
                    || self.profile_free(t, orphan.key.profile).is_err()
                    || self.since(orphan.newest_mtime) < s.min_age
                {
                    continue;
                }
                let used = orphan.newest_mtime;
                c.push(
                    Candidate::new(t, Part::Orphan(o), 0.0, orphan.reclaimable, used).with(1, at),
                );
            }
        }
        c
    }

    /// What candidate `c` costs and frees now, after what was taken; `None` when it may no
    /// longer go (taken already, its group blocked, nothing left of it).
    fn exact(&self, c: &Candidate, owned: &[Vec<Vec<usize>>]) -> Option<(f64, u64)> {
        let t = c.t;
        match c.part {
            Part::Unit(u) => {
                if self.dirs[t].removed.contains(&Part::Unit(u)) {
                    return None;
                }
                let group = self.group(t, u);
                if self.group_blocked(t, &group) {
                    return None;
                }
                Some(self.group_cost(t, &group, &owned[t]))
            }
            Part::Incremental(i) => {
                let inc = &self.input.targets[t].dir.incremental[i];
                let gone = self.dirs[t].removed.contains(&Part::Incremental(i))
                    || inc
                        .owners
                        .iter()
                        .all(|o| self.dirs[t].removed.contains(&Part::Unit(*o)));
                (!gone).then_some((c.seconds, c.bytes))
            }
            Part::Orphan(o) => {
                (!self.dirs[t].removed.contains(&Part::Orphan(o))).then_some((c.seconds, c.bytes))
            }
        }
    }

    /// Within `targets`, until `need` bytes are planned: the candidate with the least expected
    /// rebuild seconds per byte, unless one that alone covers what is still needed costs no
    /// more (then that one: a big cheap group should not be taken for the last few bytes).
    /// Returns how many bytes stay missing.
    ///
    /// Lazy greedy, so that planning stays near linear (8,000 chained units took 51 s when
    /// every candidate was worked out again after every pick): candidates wait in a heap by
    /// their seconds per byte; the best is worked out again when it comes up after a take (a
    /// group shrinks as others are taken) and goes back in when another now beats it. A small
    /// group is walked; when a big one comes up stale, every estimate is worked out again in
    /// one pass over the graph (exact for chains and trees), which costs what one walk of a
    /// long chain would.
    pub(super) fn cheapest(&mut self, targets: &[usize], need: u64, rule: Rule) -> u64 {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        type Heap = BinaryHeap<Reverse<(Ordered, SystemTime, usize, usize)>>;
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
        // Each unit's own expected seconds and bytes (with the incremental data it alone, or
        // first of several, owns): they do not change as others are taken.
        let own: Vec<Vec<(f64, u64)>> = (0..self.input.targets.len())
            .map(|t| {
                if !targets.contains(&t) {
                    return Vec::new();
                }
                (0..self.input.targets[t].dir.units.len())
                    .map(|u| self.group_cost(t, &[u], &owned[t]))
                    .collect()
            })
            .collect();
        let mut takes = 0;
        let mut cands = self.estimates(targets, &own, takes);
        let key = |c: &Candidate, i: usize| Reverse((Ordered(c.score), c.used, i, c.at));
        let heap_of = |cands: &[Candidate]| -> Heap {
            cands.iter().enumerate().map(|(i, c)| key(c, i)).collect()
        };
        let mut by_ratio = heap_of(&cands);
        // Candidates by bytes, most first: those that may cover the need are a prefix, growing
        // as the need shrinks; met in that order, they wait by seconds.
        let order_by_bytes = |cands: &[Candidate]| -> BinaryHeap<(u64, usize)> {
            cands
                .iter()
                .enumerate()
                .map(|(i, c)| (c.bytes, i))
                .collect()
        };
        let mut by_bytes = order_by_bytes(&cands);
        let mut by_seconds: BinaryHeap<Reverse<(Ordered, SystemTime, usize)>> = BinaryHeap::new();
        let mut need = need;
        while need > 0 {
            // The best by ratio, its values current.
            let mut refreshed = false;
            let best = loop {
                let Some(Reverse((_, _, i, at))) = by_ratio.pop() else {
                    break None;
                };
                if at != cands[i].at {
                    continue; // an older entry of a candidate pushed again since
                }
                if cands[i].at < takes {
                    if cands[i].size > WALK_AT_MOST && !refreshed {
                        // Big and stale: work every estimate out again at once.
                        cands = self.estimates(targets, &own, takes);
                        by_ratio = heap_of(&cands);
                        by_bytes = order_by_bytes(&cands);
                        by_seconds.clear();
                        refreshed = true;
                        continue;
                    }
                    let Some((seconds, bytes)) = self.exact(&cands[i], &owned) else {
                        continue;
                    };
                    let fresh =
                        Candidate::new(cands[i].t, cands[i].part, seconds, bytes, cands[i].used)
                            .with(cands[i].size, takes);
                    let beaten = by_ratio
                        .peek()
                        .is_some_and(|Reverse((score, _, _, _))| score.0 < fresh.score);
                    cands[i] = fresh;
                    if beaten {
                        by_ratio.push(key(&cands[i], i));
                        continue;
                    }
                } else if self.exact_cheap(&cands[i]).is_none() {
                    continue;
                }
                break Some(i);
            };
            let Some(best) = best else { break };
            // The cheapest single candidate that covers the need.
            while let Some(&(bytes, i)) = by_bytes.peek()
                && bytes >= need
            {
                by_bytes.pop();
                by_seconds.push(Reverse((Ordered(cands[i].seconds), cands[i].used, i)));
            }
            let cover = loop {
                let Some(&Reverse((_, _, i))) = by_seconds.peek() else {
                    break None;
                };
                let now = if cands[i].at == takes {
                    self.exact_cheap(&cands[i])
                        .map(|()| (cands[i].seconds, cands[i].bytes))
                } else if cands[i].size <= WALK_AT_MOST {
                    self.exact(&cands[i], &owned)
                } else {
                    // Big and stale: not known to cover now; the next refresh may say.
                    None
                };
                match now {
                    Some((seconds, bytes)) if bytes >= need => break Some((i, seconds)),
                    _ => {
                        by_seconds.pop();
                    }
                }
            };
            let cover = cover
                .filter(|&(c, seconds)| {
                    c == best || cands[best].bytes >= need || seconds <= cands[best].seconds
                })
                .map(|(c, _)| c);
            let pick = cover.unwrap_or(best);
            if pick != best {
                by_ratio.push(key(&cands[best], best));
            }
            let freed =
                self.take_candidate(cands[pick].t, cands[pick].part, cands[pick].used, rule);
            need = need.saturating_sub(freed);
            takes += 1;
        }
        need
    }

    /// Whether a candidate whose values are current may still go (not taken with another).
    fn exact_cheap(&self, c: &Candidate) -> Option<()> {
        let t = c.t;
        let gone = match c.part {
            Part::Unit(u) => self.dirs[t].removed.contains(&Part::Unit(u)),
            Part::Incremental(i) => self.dirs[t].removed.contains(&Part::Incremental(i)),
            Part::Orphan(o) => self.dirs[t].removed.contains(&Part::Orphan(o)),
        };
        (!gone).then_some(())
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
