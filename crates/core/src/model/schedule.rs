//! The next build's rebuild of what a plan removes, simulated as cargo schedules it: the
//! removed units the latest builds used ([`super::latest_builds`]; an older generation is not
//! compiled again) (every dependent of a removed unit is removed with it, so nothing else
//! recompiles), each waiting for its dependencies in the set, at most `jobs` compiles at a
//! time, the one heading the longest remaining chain first (cargo's queue favours what most
//! work waits on). A library depending on a library starts once that one's metadata is ready
//! (pipelining); what links (binaries, tests, build scripts), proc-macros and a build script's
//! run wait for their dependencies whole, and a library waits for its build script's run.
//! Each profile is its own build, run one after another.
//!
//! The wall time is the simulated one; the CPU time is the work summed.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use super::{TargetDir, UnitKind};

/// What rebuilding a set of units costs the next build.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rebuild {
    /// Simulated wall time of the builds.
    pub wall_seconds: f64,
    /// Seconds of one core the compiles take.
    pub cpu_seconds: f64,
    /// Compiles cargo runs side by side (the most among the dirs summed).
    pub jobs: u32,
    pub units: usize,
    /// Every unit's time came from its own compile (none estimated from its size).
    pub measured: bool,
    /// Units that go which the latest builds did not use (an older version or feature set):
    /// the next builds do not compile them, so they are not in the times.
    #[serde(default)]
    pub unused_units: usize,
    /// Of `cpu_seconds`, what the budgets' removals take.
    #[serde(default)]
    pub budgets_cpu_seconds: f64,
}

impl Default for Rebuild {
    fn default() -> Rebuild {
        Rebuild {
            wall_seconds: 0.0,
            cpu_seconds: 0.0,
            jobs: 0,
            units: 0,
            measured: true,
            unused_units: 0,
            budgets_cpu_seconds: 0.0,
        }
    }
}

impl Rebuild {
    /// Two rebuilds one after the other (two target dirs, two profiles).
    pub fn add(&mut self, o: &Rebuild) {
        self.wall_seconds += o.wall_seconds;
        self.cpu_seconds += o.cpu_seconds;
        self.jobs = self.jobs.max(o.jobs);
        self.units += o.units;
        self.measured &= o.measured;
        self.unused_units += o.unused_units;
        self.budgets_cpu_seconds += o.budgets_cpu_seconds;
    }
}

/// One compile of a schedule.
#[derive(Clone, Debug)]
pub struct Job {
    /// Seconds of one core.
    pub work: f64,
    /// When its metadata is ready, in seconds into it.
    pub metadata: f64,
    pub kind: UnitKind,
    /// Indices of the jobs it waits for.
    pub deps: Vec<usize>,
}

/// Whether `dependent` may start once `dep`'s metadata is ready, rather than all of it.
fn pipelined(dep: UnitKind, dependent: UnitKind) -> bool {
    dep == UnitKind::Lib && dependent == UnitKind::Lib
}

#[derive(Clone, Copy, PartialEq)]
struct Time(f64);

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// The length of the longest chain of work from each job to the end (its own included);
/// a cycle (impossible in cargo's graph, but the data is read from disk) is cut.
fn chains(jobs: &[Job]) -> Vec<f64> {
    let mut dependents = vec![Vec::new(); jobs.len()];
    for (j, job) in jobs.iter().enumerate() {
        for &d in &job.deps {
            dependents[d].push(j);
        }
    }
    let mut chain = vec![None::<f64>; jobs.len()];
    let mut visiting = vec![false; jobs.len()];
    for root in 0..jobs.len() {
        let mut stack = vec![(root, false)];
        while let Some((j, done)) = stack.pop() {
            if chain[j].is_some() {
                continue;
            }
            if done {
                let tail = dependents[j]
                    .iter()
                    .filter_map(|&d| chain[d])
                    .fold(0.0, f64::max);
                chain[j] = Some(jobs[j].work + tail);
                visiting[j] = false;
                continue;
            }
            if visiting[j] {
                continue;
            }
            visiting[j] = true;
            stack.push((j, true));
            for &d in &dependents[j] {
                if chain[d].is_none() && !visiting[d] {
                    stack.push((d, false));
                }
            }
        }
    }
    chain.into_iter().map(|c| c.unwrap_or(0.0)).collect()
}

/// The wall time of `jobs` on `slots` compiles at a time (list scheduling in cargo's order).
#[must_use]
pub(crate) fn makespan(jobs: &[Job], slots: u32) -> f64 {
    let n = jobs.len();
    let slots = slots.max(1) as usize;
    // Per job: what it waits on, and who waits on its metadata or on all of it.
    let mut waiting = vec![0usize; n];
    let mut on_metadata = vec![Vec::new(); n];
    let mut on_done = vec![Vec::new(); n];
    for (j, job) in jobs.iter().enumerate() {
        for &d in &job.deps {
            if d >= n || d == j {
                continue;
            }
            waiting[j] += 1;
            if pipelined(jobs[d].kind, job.kind) {
                on_metadata[d].push(j);
            } else {
                on_done[d].push(j);
            }
        }
    }
    let chain = chains(jobs);
    // Ready jobs, longest chain first (then by index, for a stable order).
    let mut ready: BinaryHeap<(Time, Reverse<usize>)> = BinaryHeap::new();
    for j in 0..n {
        if waiting[j] == 0 {
            ready.push((Time(chain[j]), Reverse(j)));
        }
    }
    // Events: (time, metadata-before-done, job).
    let mut events: BinaryHeap<Reverse<(Time, bool, usize)>> = BinaryHeap::new();
    let (mut now, mut running, mut end) = (0.0_f64, 0usize, 0.0_f64);
    let mut started = 0usize;
    loop {
        while running < slots {
            let Some((_, Reverse(j))) = ready.pop() else {
                break;
            };
            running += 1;
            started += 1;
            let job = &jobs[j];
            let work = job.work.max(0.0);
            events.push(Reverse((
                Time(now + job.metadata.clamp(0.0, work)),
                false,
                j,
            )));
            events.push(Reverse((Time(now + work), true, j)));
        }
        let Some(Reverse((Time(t), done, j))) = events.pop() else {
            break;
        };
        now = t;
        let release = |list: &Vec<usize>, waiting: &mut Vec<usize>, ready: &mut BinaryHeap<_>| {
            for &k in list {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    ready.push((Time(chain[k]), Reverse(k)));
                }
            }
        };
        if done {
            running -= 1;
            end = end.max(now);
            release(&on_done[j], &mut waiting, &mut ready);
        } else {
            release(&on_metadata[j], &mut waiting, &mut ready);
        }
    }
    // Jobs left waiting on a cycle never start; they add their work, one after another.
    if started < n {
        end += (0..n)
            .filter(|&j| waiting[j] > 0)
            .map(|j| jobs[j].work.max(0.0))
            .sum::<f64>();
    }
    end
}

/// What rebuilding the units of `dir` marked in `set` costs the next build: each profile's
/// units scheduled on the dir's jobs, the profiles one after another, each unit's work its
/// [`super::Unit::build_cost`].
#[must_use]
pub fn rebuild(dir: &TargetDir, set: &[bool]) -> Rebuild {
    let mut total = Rebuild {
        jobs: dir.jobs.max(1),
        ..Rebuild::default()
    };
    let mut profiles: Vec<u16> = dir
        .units
        .iter()
        .zip(set)
        .filter(|(_, s)| **s)
        .map(|(u, _)| u.key.profile)
        .collect();
    profiles.sort_unstable();
    profiles.dedup();
    for p in profiles {
        // The set's units of this profile, as jobs.
        let mut index = vec![usize::MAX; dir.units.len()];
        let mut jobs = Vec::new();
        for (i, u) in dir.units.iter().enumerate() {
            if set.get(i) == Some(&true) && u.key.profile == p {
                index[i] = jobs.len();
                let cost = u.build_cost();
                total.measured &= cost.measured;
                let kind = u.kind();
                let metadata = match (u.timing, kind) {
                    (Some(t), _) => t.metadata_seconds,
                    (None, UnitKind::Lib) => cost.seconds * super::rebuild::METADATA_SHARE,
                    (None, _) => cost.seconds,
                };
                jobs.push(Job {
                    work: cost.seconds,
                    metadata,
                    kind,
                    deps: Vec::new(),
                });
            }
        }
        for (i, u) in dir.units.iter().enumerate() {
            if index[i] == usize::MAX {
                continue;
            }
            for &d in &u.dependents {
                if let Some(&j) = index.get(d).filter(|j| **j != usize::MAX) {
                    jobs[j].deps.push(index[i]);
                }
            }
        }
        total.units += jobs.len();
        total.cpu_seconds += jobs.iter().map(|j| j.work).fold(0.0, |a, b| a + b);
        total.wall_seconds += makespan(&jobs, total.jobs);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(work: f64, kind: UnitKind, deps: &[usize]) -> Job {
        Job {
            work,
            metadata: if kind == UnitKind::Lib {
                work / 2.0
            } else {
                work
            },
            kind,
            deps: deps.to_vec(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_chain_of_binaries_runs_one_after_another() {
        // Linked units wait for their dependencies whole: 1 + 2 + 3, whatever the cores.
        let jobs = vec![
            job(1.0, UnitKind::Linked, &[]),
            job(2.0, UnitKind::Linked, &[0]),
            job(3.0, UnitKind::Linked, &[1]),
        ];
        assert!(close(makespan(&jobs, 1), 6.0));
        assert!(close(makespan(&jobs, 8), 6.0));
    }

    #[test]
    fn a_chain_of_libraries_pipelines_on_metadata() {
        // a (4 s, metadata at 2), b on a's metadata (4 s, metadata at 2), c on b's: with
        // enough cores, c starts at 4 and ends at 8, not 12.
        let jobs = vec![
            job(4.0, UnitKind::Lib, &[]),
            job(4.0, UnitKind::Lib, &[0]),
            job(4.0, UnitKind::Lib, &[1]),
        ];
        assert!(close(makespan(&jobs, 3), 8.0));
        // One core: no overlap is possible, 12.
        assert!(close(makespan(&jobs, 1), 12.0));
        // A binary on the last library waits for all of it.
        let mut with_bin = jobs.clone();
        with_bin.push(job(1.0, UnitKind::Linked, &[2]));
        assert!(close(makespan(&with_bin, 3), 9.0));
    }

    #[test]
    fn a_fan_out_fills_the_cores_longest_first() {
        // A root (binary-like, 1 s) and six dependents of 3, 3, 2, 2, 1, 1 s on 2 cores:
        // longest first packs them into 6 s after the root: 7 s. One core: 13 s.
        let mut jobs = vec![job(1.0, UnitKind::Linked, &[])];
        for w in [1.0, 2.0, 3.0, 1.0, 3.0, 2.0] {
            jobs.push(job(w, UnitKind::Linked, &[0]));
        }
        assert!(close(makespan(&jobs, 2), 7.0));
        assert!(close(makespan(&jobs, 1), 13.0));
        assert!(close(makespan(&jobs, 6), 4.0));
    }

    #[test]
    fn a_diamond_waits_for_its_slower_side() {
        // a; b (5 s) and c (1 s) on a; d on both. Cores enough: a 1 + b 5 + d 1 = 7.
        let jobs = vec![
            job(1.0, UnitKind::Linked, &[]),
            job(5.0, UnitKind::Linked, &[0]),
            job(1.0, UnitKind::Linked, &[0]),
            job(1.0, UnitKind::Linked, &[1, 2]),
        ];
        assert!(close(makespan(&jobs, 2), 7.0));
        // One core: all of it, 8.
        assert!(close(makespan(&jobs, 1), 8.0));
    }

    #[test]
    fn a_cycle_does_not_hang_and_still_costs() {
        let jobs = vec![
            job(1.0, UnitKind::Linked, &[1]),
            job(2.0, UnitKind::Linked, &[0]),
        ];
        assert!(close(makespan(&jobs, 2), 3.0));
        assert!(close(makespan(&[], 2), 0.0));
    }
}
