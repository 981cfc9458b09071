//! The CI runner disk guard, a driver of measure → decide → act: keep free space above a
//! floor, losing the cheapest-to-rebuild cache first ([`cachekeeper_core::decide::guard`] has the phases).
//!
//! A pass takes one snapshot, plans every phase from it, and carries the phases out in order,
//! measuring free space between them (a `statvfs`, not a new snapshot) and stopping as soon as
//! the floor holds on every filesystem involved (those holding the roots and Docker's root
//! dir). A running build is never touched: its profile is locked by cargo (skipped), and
//! BuildKit records in use are never pruned. What keeps the floor from being reached is
//! reported.
//!
//! Invariant: the guard never imports the daemon or the CLI.

mod summary;

pub use summary::{describe, describe_watch, step_summary};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::report::BuildkitState;
use cachekeeper_core::config::{Config, SizeSpec};
use cachekeeper_core::decide::guard::{self as plan, Phase, PhasePlan};
use cachekeeper_core::model::{BuildkitSide, Filesystem, Mode, Sides};
use cachekeeper_sys::act::{prune, sweep};
use cachekeeper_sys::measure;
use cachekeeper_sys::os::disk;
use cachekeeper_sys::progress::Progress;

#[derive(Clone, Debug, Serialize)]
pub struct FsFree {
    #[serde(with = "cachekeeper_core::pathcodec")]
    pub path: PathBuf,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub floor_bytes: u64,
}

impl FsFree {
    #[must_use]
    pub fn holds(&self) -> bool {
        self.free_bytes >= self.floor_bytes
    }
}

/// What one phase did.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    pub phase: Phase,
    pub reclaimed_bytes: u64,
    pub actions: usize,
}

/// The BuildKit side as the guard found it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Docker {
    pub state: BuildkitState,
    pub message: Option<String>,
    /// Docker's root dir, when the engine answers and it is reachable from here.
    #[serde(with = "cachekeeper_core::pathcodec::option")]
    pub root_dir: Option<PathBuf>,
}

/// One guard pass.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    /// Planned only: nothing was removed, and `after` is what the floor would be.
    pub dry_run: bool,
    pub before: Vec<FsFree>,
    pub after: Vec<FsFree>,
    pub phases: Vec<PhaseResult>,
    pub reclaimed_bytes: u64,
    pub holds: bool,
    /// Why the floor was not reached (protected data, what is in use).
    pub blocking: Vec<String>,
    /// Whether the BuildKit cache could be part of it.
    pub buildkit: Docker,
}

/// The filesystems the floor applies to: those of the roots (and the target dirs below them),
/// and of Docker's root dir when the BuildKit side is on and reachable.
fn involved(roots: &[PathBuf], docker_root: Option<&PathBuf>) -> Vec<(PathBuf, Filesystem)> {
    let mut out: Vec<(PathBuf, Filesystem)> = Vec::new();
    for p in roots.iter().chain(docker_root) {
        let Ok(fs) = disk::measure(p) else { continue };
        if out.iter().all(|(_, s)| s.dev != fs.dev) {
            out.push((p.clone(), fs));
        }
    }
    out
}

fn free(fs: &[(PathBuf, Filesystem)], floor: SizeSpec) -> Vec<FsFree> {
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

/// Runs one pass against `floor` over `roots`; `progress` shows the measurement and one line
/// per phase.
pub async fn pass(
    config: &Config,
    roots: &[PathBuf],
    floor: SizeSpec,
    progress: Arc<Progress>,
    mode: Mode,
) -> Pass {
    let (snapshot, engine) =
        measure::measure(config, roots, Sides::BOTH, Arc::clone(&progress), None).await;
    let docker = docker_of(&snapshot.buildkit);
    let fs = involved(roots, docker.root_dir.as_ref());
    let before = free(&fs, floor);
    let mut after = before.clone();
    let mut phases = Vec::new();
    let mut blocking = Vec::new();
    if !before.iter().all(FsFree::holds) {
        let measured: Vec<Filesystem> = fs.iter().map(|(_, f)| f.clone()).collect();
        let watched = cachekeeper_core::model::Watched::new();
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
            if after.iter().all(FsFree::holds) {
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
                    let done = tokio::task::spawn_blocking(move || {
                        let report = sweep::sweep(
                            &snap.targets,
                            &plan,
                            mode,
                            None,
                            &mut sweep::NoObserver,
                            None,
                        );
                        crate::report::journal::log_sweep(&snap, &plan, &report);
                        // What it freed on each filesystem (for a dry run's `after`).
                        let mut by_dev: Vec<(u64, u64)> = Vec::new();
                        for r in &report.results {
                            let dev = snap.targets[plan.actions[r.action].item.target].dev;
                            let bytes = r.reclaimed_bytes.max(match r.status {
                                cachekeeper_core::model::Status::WouldRemove => {
                                    plan.actions[r.action].bytes
                                }
                                _ => 0,
                            });
                            match by_dev.iter_mut().find(|(d, _)| *d == dev) {
                                Some(e) => e.1 += bytes,
                                None => by_dev.push((dev, bytes)),
                            }
                        }
                        (report, by_dev)
                    })
                    .await;
                    let (reclaimed, by_dev) = done.map_or((0, Vec::new()), |(r, d)| {
                        (
                            d.iter().map(|(_, b)| b).sum::<u64>().max(r.reclaimed_bytes),
                            d,
                        )
                    });
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

/// What happened while a command ran under the guard.
#[derive(Clone, Debug, Serialize)]
pub struct Watch {
    /// The JSON schema's version, as every document carries.
    pub version: u32,
    pub command: Vec<String>,
    pub exit_code: i32,
    /// Passes: one before the command, then one each time free space fell under the floor.
    pub passes: Vec<Pass>,
    pub reclaimed_bytes: u64,
    /// The least free space seen on any involved filesystem while the command ran.
    pub min_free_bytes: Option<u64>,
    /// Whether the floor held at every check while the command ran.
    pub held: bool,
}

/// Runs `command`, checking free space every `interval` and freeing space under it when it
/// drops below the floor. SIGINT and SIGTERM are passed on to the command (a terminal's Ctrl-C
/// reaches the whole process group anyway; a CI runner's SIGTERM reaches only us).
pub async fn watch(
    config: &Config,
    roots: &[PathBuf],
    floor: SizeSpec,
    interval: std::time::Duration,
    command: &[std::ffi::OsString],
) -> std::io::Result<Watch> {
    use tokio::signal::unix::{SignalKind, signal};
    // The command's output owns the terminal: passes show no progress.
    let hidden = Arc::new(Progress::hidden());
    let first = pass(config, roots, floor, Arc::clone(&hidden), Mode::Execute).await;
    let docker = first.buildkit.root_dir.clone();
    let mut passes = vec![first];
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut child = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .spawn()?;
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?));
    let forward = |sig| {
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, sig);
        }
    };
    let mut min_free: Option<u64> = None;
    let mut held = true;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is now: the pass above just ran
    let status = loop {
        // The command's end comes first: once it has exited (and let go of cargo's locks), no
        // pass runs, since the guard's job was to keep space while it ran.
        tokio::select! {
            biased;
            status = child.wait() => break status?,
            _ = term.recv() => forward(rustix::process::Signal::TERM),
            _ = int.recv() => forward(rustix::process::Signal::INT),
            _ = tick.tick() => {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    continue;
                }
                let fs = free(&involved(roots, docker.as_ref()), floor);
                for f in &fs {
                    min_free = Some(min_free.map_or(f.free_bytes, |m| m.min(f.free_bytes)));
                }
                if !fs.iter().all(FsFree::holds) {
                    held = false;
                    tracing::warn!("free space under the floor while the command runs: freeing space");
                    passes.push(pass(config, roots, floor, Arc::clone(&hidden), Mode::Execute).await);
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1));
    Ok(Watch {
        version: crate::report::SCHEMA_VERSION,
        command: command
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect(),
        exit_code,
        reclaimed_bytes: passes.iter().map(|p| p.reclaimed_bytes).sum(),
        passes,
        min_free_bytes: min_free,
        held,
    })
}
