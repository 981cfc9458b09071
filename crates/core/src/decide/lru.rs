//! Least recently used first: a budget, a watermark or the guard's floor asks a pool for bytes,
//! and it gives up what was used longest ago first, each with what must go with it. BuildKit
//! records are a pool, and target-dir units are one under `eviction = "lru"`; the default for
//! units, `cost`, chooses by expected rebuild time instead (`cargo/cost.rs`).

use std::time::{Duration, SystemTime};

use super::reason;
use crate::model::Rule;

/// Something that can be evicted from, least recently used first.
pub(crate) trait Pool {
    type Id: Copy;

    /// What may go, with its (effective) last use, least recently used first.
    fn candidates(&self) -> Vec<(Self::Id, SystemTime)>;

    /// Whether it already went (with an earlier group).
    fn gone(&self, id: Self::Id) -> bool;

    /// Plans `id` with what must go with it, by `rule`; the bytes that frees, or `None` when a
    /// protection keeps the group.
    fn evict(&mut self, id: Self::Id, rule: Rule, reason: &str) -> Option<u64>;
}

/// Evicts from `pool` until `need` bytes are planned; returns how many are still missing.
pub(crate) fn evict<P: Pool>(pool: &mut P, need: u64, rule: Rule, now: SystemTime) -> u64 {
    let mut need = need;
    for (id, used) in pool.candidates() {
        if need == 0 {
            break;
        }
        if pool.gone(id) {
            continue;
        }
        let idle = now.duration_since(used).unwrap_or(Duration::ZERO);
        if let Some(freed) = pool.evict(id, rule, &reason::least_recently_used(idle)) {
            need = need.saturating_sub(freed);
        }
    }
    need
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Items of 10 bytes; item 2 is protected.
    struct Ten {
        used: Vec<u64>,
        taken: Vec<usize>,
    }

    impl Pool for Ten {
        type Id = usize;
        fn candidates(&self) -> Vec<(usize, SystemTime)> {
            let mut c: Vec<(usize, SystemTime)> = self
                .used
                .iter()
                .enumerate()
                .map(|(i, s)| (i, SystemTime::UNIX_EPOCH + Duration::from_secs(*s)))
                .collect();
            c.sort_by_key(|(i, t)| (*t, *i));
            c
        }
        fn gone(&self, id: usize) -> bool {
            self.taken.contains(&id)
        }
        fn evict(&mut self, id: usize, _rule: Rule, _reason: &str) -> Option<u64> {
            (id != 2).then(|| {
                self.taken.push(id);
                10
            })
        }
    }

    #[test]
    fn oldest_first_skipping_the_protected_until_enough() {
        let mut p = Ten {
            used: vec![50, 30, 10, 20, 40],
            taken: Vec::new(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let missing = evict(&mut p, 25, Rule::TargetBudget, now);
        assert_eq!(missing, 0);
        assert_eq!(p.taken, vec![3, 1, 4]);
        let missing = evict(&mut p, 100, Rule::TargetBudget, now);
        assert_eq!(missing, 90);
        assert_eq!(p.taken, vec![3, 1, 4, 0]);
    }
}
