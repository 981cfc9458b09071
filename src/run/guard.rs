//! The guard's pass: one snapshot, a phased plan from it (cheapest to rebuild first), carried
//! out phase by phase, with free space measured between phases (a `statvfs`, not a new
//! snapshot) until the floor holds on every filesystem involved (those holding the roots and
//! Docker's root dir). Through the same measure, disk work and prune as every run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::report::BuildkitState;
use crate::report::guard::{Docker, FsFree, Pass, PhaseResult};
use cachekeeper_core::config::{Config, SizeSpec};
use cachekeeper_core::decide::guard::{self as plan, PhasePlan};
use cachekeeper_core::model::{
    BuildkitSide, CargoPlan, Filesystem, Mode, Sides, Snapshot, Status, SweepReport, Watched,
};
use cachekeeper_sys::act::{prune, sweep};
use cachekeeper_sys::os::disk;
use cachekeeper_sys::progress::Progress;

/// The filesystems the floor applies to: those of the roots (and the target dirs below them),
/// and of Docker's root dir when the BuildKit side is on and reachable.
pub(crate) fn involved(
    roots: &[PathBuf],
    docker_root: Option<&PathBuf>,
) -> Vec<(PathBuf, Filesystem)> {
    let mut out: Vec<(PathBuf, Filesystem)> = Vec::new();
    for p in roots.iter().chain(docker_root) {
        let Ok(fs) = disk::measure(p) else { continue };
        if out.iter().all(|(_, s)| s.dev != fs.dev) {
            out.push((p.clone(), fs));
        }
    }
    out
}

pub(crate) fn free(fs: &[(PathBuf, Filesystem)], floor: SizeSpec) -> Vec<FsFree> {
    fs.iter()
        .map(|(p, f)| FsFree {
            path: p.clone(),
            total_bytes: f.total_bytes,
            free_bytes: f.free_bytes,
            floor_bytes: floor.resolve(f.total_bytes),
        })
        .collect()
}

fn docker_of(side: &BuildkitSide) -> Docker {
    match side {
        BuildkitSide::Ready(cache) => Docker {
            state: BuildkitState::Ok,
            message: None,
            root_dir: cache.root_dir().filter(|p| p.exists()).cloned(),
        },
        BuildkitSide::Unavailable { error, quiet } => Docker {
            state: if *quiet {
                BuildkitState::Absent
            } else {
                BuildkitState::Unavailable
            },
            message: Some(error.to_string()),
            root_dir: None,
        },
        BuildkitSide::Off => Docker::default(),
    }
}

/// What a cargo phase freed on each filesystem (device, bytes): what went, or for a dry run
/// what would have.
fn freed_on_each_fs(
    snapshot: &Snapshot,
    plan: &CargoPlan,
    report: &SweepReport,
) -> Vec<(u64, u64)> {
    let mut by_dev: Vec<(u64, u64)> = Vec::new();
    for r in &report.results {
        let dev = snapshot.targets[plan.actions[r.action].item.target].dev;
        let bytes = r.reclaimed_bytes.max(match r.status {
            Status::WouldRemove => plan.actions[r.action].bytes,
            _ => 0,
        });
        match by_dev.iter_mut().find(|(d, _)| *d == dev) {
            Some(e) => e.1 += bytes,
            None => by_dev.push((dev, bytes)),
        }
    }
    by_dev
}

/// Runs one pass against `floor` over `roots`; `progress` shows the measurement and one line
/// per phase. No phase starts once `ended` says the watched command has exited: the command
/// may have let go of cargo's lock just before the measurement, and its profile then looked
/// free to clean although the guard's job (space while it runs) was over.
pub async fn pass(
    config: &Config,
    roots: &[PathBuf],
    floor: SizeSpec,
    progress: Arc<Progress>,
    mode: Mode,
    ended: &(dyn Fn() -> bool + Send + Sync),
) -> Pass {
    let (snapshot, engine) =
        super::measure(config, roots, Sides::BOTH, &progress, None, None).await;
    let docker = docker_of(&snapshot.buildkit);
    let fs = involved(roots, docker.root_dir.as_ref());
    let before = free(&fs, floor);
    let mut after = before.clone();
    let mut phases = Vec::new();
    let mut blocking = Vec::new();
    if !before.iter().all(FsFree::holds) {
        let measured: Vec<Filesystem> = fs.iter().map(|(_, f)| f.clone()).collect();
        let watched = Watched::new();
        let decided = plan::plan(&plan::Input {
            snapshot: &snapshot,
            config,
            floor,
            involved: &measured,
            uses: None,
            watched: &watched,
            now: SystemTime::now(),
        });
        let snapshot = Arc::new(snapshot);
        let mut freed_by_dev: Vec<(u64, u64)> = Vec::new();
        for phase in decided.phases {
            if after.iter().all(FsFree::holds) || ended() {
                break;
            }
            progress.say(&format!(
                "guard: {} phase: {}",
                phase.phase().name(),
                cachekeeper_core::units::count(
                    match &phase {
                        PhasePlan::Cargo(_, p) => p.actions.len(),
                        PhasePlan::Buildkit(_, p) => p.actions.len(),
                    },
                    "removal",
                    "removals"
                )
            ));
            let (name, actions, reclaimed) = match phase {
                PhasePlan::Cargo(name, plan) => {
                    let snap = Arc::clone(&snapshot);
                    let n = plan.actions.len();
                    let (report, by_dev) = super::on_disk(move || {
                        let report = sweep::sweep(
                            &snap.targets,
                            &plan,
                            mode,
                            None,
                            &mut sweep::NoObserver,
                            None,
                        );
                        crate::report::journal::log_sweep(&snap, &plan, &report);
                        let freed = freed_on_each_fs(&snap, &plan, &report);
                        (report, freed)
                    })
                    .await;
                    let reclaimed = by_dev
                        .iter()
                        .map(|(_, b)| b)
                        .sum::<u64>()
                        .max(report.reclaimed_bytes);
                    freed_by_dev.extend(by_dev);
                    (name, n, reclaimed)
                }
                PhasePlan::Buildkit(name, plan) => {
                    let BuildkitSide::Ready(cache) = &snapshot.buildkit else {
                        continue;
                    };
                    let r = prune::sweep(engine.as_ref(), cache, &plan, mode, None).await;
                    if let Some(root) = &docker.root_dir
                        && let Ok(f) = disk::measure(root)
                    {
                        freed_by_dev.push((f.dev, r.reclaimed_bytes));
                    }
                    (name, plan.actions.len(), r.reclaimed_bytes)
                }
            };
            tracing::info!(phase = name.name(), actions, reclaimed, "guard phase done");
            phases.push(PhaseResult {
                phase: name,
                reclaimed_bytes: reclaimed,
                actions,
            });
            after = if mode == Mode::DryRun {
                // Nothing went: the floor as it would be, from what each phase would free.
                let mut fs = fs.clone();
                for (_, f) in &mut fs {
                    let freed: u64 = freed_by_dev
                        .iter()
                        .filter(|(d, _)| *d == f.dev)
                        .map(|(_, b)| b)
                        .sum();
                    f.free_bytes = f.free_bytes.saturating_add(freed);
                }
                free(&fs, floor)
            } else {
                free(&involved(roots, docker.root_dir.as_ref()), floor)
            };
        }
        blocking = decided.blocking;
    }
    let holds = after.iter().all(FsFree::holds);
    if !holds && blocking.is_empty() {
        blocking.push("nothing cachekeeper manages is left to remove there: the rest of the disk is other data".into());
    }
    Pass {
        dry_run: mode == Mode::DryRun,
        buildkit: docker,
        reclaimed_bytes: phases.iter().map(|p| p.reclaimed_bytes).sum(),
        before,
        after,
        phases,
        holds,
        blocking: if holds { Vec::new() } else { blocking },
    }
}
