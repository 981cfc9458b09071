//! What a unit's compile costs, as a schedule needs it: the unit's own work in seconds of one
//! core, and how far into it the metadata its dependents wait for was ready.
//!
//! cargo's files give each unit's wall time: `invoked.timestamp` before the compiler starts,
//! the `.rmeta` when a pipelined compile has its metadata, the fingerprint when it is done.
//! A unit's wall time is not its work: with `-j N`, cargo runs more compiles side by side than
//! there are cores (a unit that has emitted its metadata keeps compiling while its dependents
//! start), and those share the cores. So a unit's work is its wall time with each moment
//! counted as the share of a core it had: at a moment where `k` of this dir's compiles ran on
//! `N` cores, `min(1, N / k)` (processor sharing). Summed, the work of a build is its CPU time,
//! not the sum of its walls, which over-counted a two-core build's next rebuild four times.
//!
//! Times that cannot be a compile's are not trusted: a gap of zero or less, one too short for
//! the bytes the unit wrote (a tree copied by `cp -r` or restored from a cache gets the times
//! of the copy, microseconds apart), one longer than six hours. Such a unit's work is
//! estimated from its output size at a rate learned on this machine: first from units of the
//! same package whose times are trusted, then from every trusted unit, then a constant. Never
//! zero: what cannot be known is not free.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{TargetDir, Unit};

/// Seconds of compile per GiB of outputs where nothing on this machine tells: cargo's GC
/// discussion (cargo#6229) measured about 300 s per GiB of `build/` and deps output.
pub(crate) const SECONDS_PER_GIB: f64 = 300.0;

/// How long a build may plausibly take; a longer gap means the timestamps are from
/// different builds (an interrupted one, a restored cache).
const PLAUSIBLE: Duration = Duration::from_secs(6 * 3600);

/// Starting rustc (or a build script) and writing anything takes longer than this; a copy
/// writes two files of a fingerprint dir microseconds apart.
const SHORTEST: f64 = 0.001;

/// No compile writes its outputs faster than this (rustc writes tens of MB/s at most; a copy
/// writes GB/s).
const FASTEST_BYTES_PER_SECOND: f64 = 256.0 * 1024.0 * 1024.0;

/// The least work an estimate gives a unit: rustc's start and a little.
const LEAST: f64 = 0.05;

/// The share of a library's compile before its metadata is ready, where its `.rmeta` does not
/// say (a debug compile spends about half its time before codegen).
pub(crate) const METADATA_SHARE: f64 = 0.5;

/// What cargo's scheduling needs of a unit: what its dependents wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    /// A library (`rlib`): a library depending on it may start once its metadata is ready.
    Lib,
    /// A proc-macro: a dylib the compiler loads, so needed whole.
    ProcMacro,
    /// Linked (a binary, a test, a build script's compile): needs its dependencies whole.
    Linked,
    /// A build script's run: the library it belongs to waits for it.
    Run,
}

/// A unit's compile as a schedule sees it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds of one core the compile takes.
    pub seconds: f64,
    /// Of those, the ones before its metadata is ready (`seconds` for what is not a library).
    pub metadata_seconds: f64,
    /// The wall time cargo's files show, when trusted.
    pub recorded_seconds: Option<f64>,
    /// From this unit's own times; `false`: estimated from its size.
    pub measured: bool,
}

impl Unit {
    /// What its dependents wait for.
    #[must_use]
    pub fn kind(&self) -> UnitKind {
        let t = |p: &str| self.targets.iter().any(|n| n.starts_with(p));
        if t("run-build-script-") {
            UnitKind::Run
        } else if self.proc_macro {
            UnitKind::ProcMacro
        } else if t("lib-") {
            UnitKind::Lib
        } else {
            UnitKind::Linked
        }
    }

    /// Bytes the compile wrote.
    #[must_use]
    pub(crate) fn output_bytes(&self) -> u64 {
        self.usage.deps.bytes + self.usage.build.bytes
    }

    /// The gap between `invoked.timestamp` and the fingerprint, when it can be a compile's.
    #[must_use]
    pub(crate) fn trusted_wall(&self) -> Option<(SystemTime, SystemTime)> {
        let (start, end) = (self.invoked?, self.finished?);
        let took = end.duration_since(start).ok()?;
        #[allow(clippy::cast_precision_loss)]
        let least = SHORTEST.max(self.output_bytes() as f64 / FASTEST_BYTES_PER_SECOND);
        (took.as_secs_f64() >= least && took <= PLAUSIBLE).then_some((start, end))
    }
}

/// Seconds per output byte, learned from the units whose times are trusted.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calibration {
    per_package: HashMap<String, f64>,
    machine: Option<f64>,
}

/// Units with fewer output bytes say little of a rate.
const RATE_MIN_BYTES: u64 = 16 * 1024;

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

impl Calibration {
    /// Learns from every unit of `dirs` whose work is known.
    #[must_use]
    pub fn learn(dirs: &[TargetDir]) -> Calibration {
        let mut by_package: HashMap<&str, Vec<f64>> = HashMap::new();
        let mut all = Vec::new();
        for d in dirs {
            for u in &d.units {
                let Some(t) = u.timing.filter(|t| t.measured) else {
                    continue;
                };
                let bytes = u.output_bytes();
                if bytes < RATE_MIN_BYTES {
                    continue;
                }
                #[allow(clippy::cast_precision_loss)]
                let rate = t.seconds / bytes as f64;
                by_package.entry(&u.package).or_default().push(rate);
                all.push(rate);
            }
        }
        Calibration {
            per_package: by_package
                .into_iter()
                .filter_map(|(p, v)| Some((p.to_string(), median(v)?)))
                .collect(),
            machine: median(all),
        }
    }

    /// Seconds per output byte for a unit of `package`.
    #[must_use]
    pub fn rate(&self, package: &str) -> f64 {
        self.per_package
            .get(package)
            .copied()
            .or(self.machine)
            .unwrap_or(SECONDS_PER_GIB / f64::from(1u32 << 30))
    }
}

/// Sets every unit's [`Timing`] in `dir` from its trusted times, shared out over the `jobs`
/// cores the compiles ran on; units without trusted times are left `None` (see
/// [`estimate_rest`]).
pub(crate) fn measure_work(dir: &mut TargetDir, jobs: u32) {
    let jobs = f64::from(jobs.max(1));
    // A tree whose times were flattened (copied, restored) shows it in most of its compiles,
    // whose two stamps sit in one dir: then no gap there is a compile's, not even the runs'
    // (their stamps sit in two dirs, copied at moments that mean nothing).
    let (stamped, flat) = dir
        .units
        .iter()
        .filter(|u| u.kind() != UnitKind::Run && u.invoked.is_some() && u.finished.is_some())
        .fold((0usize, 0usize), |(n, f), u| {
            (n + 1, f + usize::from(u.trusted_wall().is_none()))
        });
    if stamped > 0 && flat * 2 > stamped {
        for u in &mut dir.units {
            u.timing = None;
        }
        return;
    }
    // The points of the sweep: each trusted compile's start, end and metadata.
    #[derive(Clone, Copy)]
    enum At {
        Start,
        Meta,
        End,
    }
    let mut points: Vec<(SystemTime, u8, usize, At)> = Vec::new();
    for (i, u) in dir.units.iter().enumerate() {
        if let Some((start, end)) = u.trusted_wall() {
            points.push((start, 1, i, At::Start));
            points.push((end, 0, i, At::End));
            if let Some(m) = u.metadata_at.filter(|m| *m > start && *m <= end) {
                points.push((m, 2, i, At::Meta));
            }
        }
    }
    // Ends before starts at the same instant: back-to-back compiles did not overlap.
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut active = 0usize;
    let mut shared = 0.0; // seconds of a core a compile running since the first point had
    let mut last = points.first().map(|p| p.0);
    let mut at = vec![[None::<f64>; 3]; dir.units.len()];
    for (time, _, i, what) in points {
        if let Some(prev) = last {
            let span = time.duration_since(prev).unwrap_or_default().as_secs_f64();
            if active > 0 {
                #[allow(clippy::cast_precision_loss)]
                let share = (jobs / active as f64).min(1.0);
                shared += span * share;
            }
        }
        last = Some(time);
        match what {
            At::Start => {
                active += 1;
                at[i][0] = Some(shared);
            }
            At::Meta => at[i][1] = Some(shared),
            At::End => {
                active = active.saturating_sub(1);
                at[i][2] = Some(shared);
            }
        }
    }
    for (u, [start, meta, end]) in dir.units.iter_mut().zip(at) {
        let (Some(start), Some(end)) = (start, end) else {
            u.timing = None;
            continue;
        };
        let seconds = (end - start).max(SHORTEST);
        let metadata_seconds = match (u.kind(), meta) {
            (UnitKind::Lib, Some(m)) => (m - start).clamp(0.0, seconds),
            (UnitKind::Lib, None) => seconds * METADATA_SHARE,
            _ => seconds,
        };
        u.timing = Some(Timing {
            seconds,
            metadata_seconds,
            recorded_seconds: u
                .trusted_wall()
                .and_then(|(s, e)| e.duration_since(s).ok())
                .map(|d| d.as_secs_f64()),
            measured: true,
        });
    }
}

/// Estimates the work of every unit [`measure_work`] left without one, from its size.
pub(crate) fn estimate_rest(dir: &mut TargetDir, calibration: &Calibration) {
    for u in &mut dir.units {
        if u.timing.is_some() {
            continue;
        }
        #[allow(clippy::cast_precision_loss)]
        let seconds = (u.output_bytes() as f64 * calibration.rate(&u.package)).max(LEAST);
        let metadata_seconds = if u.kind() == UnitKind::Lib {
            seconds * METADATA_SHARE
        } else {
            seconds
        };
        u.timing = Some(Timing {
            seconds,
            metadata_seconds,
            recorded_seconds: None,
            measured: false,
        });
    }
}

/// Every unit's timing in `dirs`, each dir's compiles shared over its `jobs`.
pub fn time_units(dirs: &mut [TargetDir], jobs: &[u32]) {
    for (d, j) in dirs.iter_mut().zip(jobs) {
        measure_work(d, *j);
    }
    let calibration = Calibration::learn(dirs);
    for d in dirs.iter_mut() {
        estimate_rest(d, &calibration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ByKind, Usage};

    pub(crate) fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_secs_f64(secs)
    }

    fn unit(pkg: &str, target: &str, from: f64, to: f64, bytes: u64) -> Unit {
        let usage = ByKind {
            deps: Usage::file(bytes, bytes),
            ..ByKind::default()
        };
        Unit {
            package: pkg.into(),
            targets: vec![target.into()],
            invoked: Some(at(from)),
            finished: Some(at(to)),
            usage,
            ..crate::model::target::tests::blank_unit()
        }
    }

    fn dir(units: Vec<Unit>) -> TargetDir {
        TargetDir {
            units,
            ..crate::model::target::tests::blank_dir()
        }
    }

    #[test]
    fn overlapping_compiles_share_the_cores() {
        // Two cores. a alone for 2 s; then a, b, c, d together for 4 s (each had half a
        // core); then d alone for 1 s.
        let mut d = dir(vec![
            unit("a", "lib-a", 0.0, 6.0, 1 << 20),
            unit("b", "lib-b", 2.0, 6.0, 1 << 20),
            unit("c", "lib-c", 2.0, 6.0, 1 << 20),
            unit("d", "bin-d", 2.0, 7.0, 1 << 20),
        ]);
        measure_work(&mut d, 2);
        let s: Vec<f64> = d.units.iter().map(|u| u.timing.unwrap().seconds).collect();
        for (got, want) in s.iter().zip([4.0, 2.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-6, "{s:?}");
        }
        // The work adds up to what two cores could do in that time at most: 11 s of CPU.
        assert!((s.iter().sum::<f64>() - 11.0).abs() < 1e-6);
        // A library without an .rmeta has half its work before its metadata; a binary all.
        assert!((d.units[0].timing.unwrap().metadata_seconds - 2.0).abs() < 1e-6);
        assert!((d.units[3].timing.unwrap().metadata_seconds - 3.0).abs() < 1e-6);
        assert_eq!(d.units[1].timing.unwrap().recorded_seconds, Some(4.0));
    }

    #[test]
    fn flattened_times_are_estimated_from_sizes_and_never_free() {
        let measured = unit("dep", "lib-dep", 0.0, 10.0, 10 << 20);
        // Copied: the fingerprint and invoked.timestamp written microseconds apart, or in
        // the wrong order, or at the same instant.
        let copied = unit("dep", "lib-dep", 100.0, 100.000_01, 20 << 20);
        let inverted = unit("other", "lib-other", 100.0, 99.0, 10 << 20);
        let same = unit("tiny", "lib-tiny", 100.0, 100.0, 0);
        // A build script's run: its two stamps sit in two dirs, copied seconds apart.
        let run = unit(
            "dep",
            "run-build-script-build-script-build",
            100.0,
            102.0,
            1024,
        );
        let mut dirs = vec![dir(vec![measured]), dir(vec![copied, inverted, same, run])];
        time_units(&mut dirs, &[2, 2]);
        let t: Vec<Timing> = dirs[1].units.iter().map(|u| u.timing.unwrap()).collect();
        assert!(t.iter().all(|t| !t.measured && t.seconds > 0.0), "{t:?}");
        // Same package: its rate (1 s per MiB) applies; another package gets the machine's.
        assert!((t[0].seconds - 20.0).abs() < 1e-6, "{t:?}");
        assert!((t[1].seconds - 10.0).abs() < 1e-6, "{t:?}");
        assert!((t[2].seconds - LEAST).abs() < 1e-9, "{t:?}");
        assert!(
            !t[3].measured,
            "a flattened tree's runs are not trusted either"
        );
        // Nothing trusted anywhere: the constant.
        let mut lone = vec![dir(vec![unit("x", "lib-x", 5.0, 5.0, 1 << 30)])];
        time_units(&mut lone, &[1]);
        assert!((lone[0].units[0].timing.unwrap().seconds - SECONDS_PER_GIB).abs() < 1e-6);
    }

    #[test]
    fn kinds_follow_what_dependents_wait_for() {
        let mut u = unit("p", "lib-p", 0.0, 1.0, 1);
        assert_eq!(u.kind(), UnitKind::Lib);
        u.proc_macro = true;
        assert_eq!(u.kind(), UnitKind::ProcMacro);
        for (t, k) in [
            ("run-build-script-build-script-build", UnitKind::Run),
            ("build-script-build-script-build", UnitKind::Linked),
            ("bin-app", UnitKind::Linked),
            ("test-lib-p", UnitKind::Linked),
        ] {
            assert_eq!(unit("p", t, 0.0, 1.0, 1).kind(), k, "{t}");
        }
    }
}
