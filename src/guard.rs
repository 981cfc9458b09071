//! The CI runner disk guard: keep free space above a floor, losing the least useful cache first.
//!
//! A pass frees space in phases, cheapest to rebuild first, and stops as soon as the floor
//! holds on every filesystem involved (those holding the target dirs found and Docker's root
//! dir):
//!
//! 1. `cheap`: superseded incremental data, orphaned outputs, units of uninstalled toolchains,
//!    stale units (the cargo rules, without budgets);
//! 2. `buildkit`: unused BuildKit records, least recently used first, cache mounts kept;
//! 3. `units`: least recently used target-dir units, until the floor holds;
//! 4. `cache-mounts`: BuildKit cache mounts, least recently used first.
//!
//! A running build is never touched: its profile is locked by cargo (skipped), and BuildKit
//! records in use are never pruned. What keeps the floor from being reached is reported.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::buildkit;
use crate::config::Protect;
use crate::config::{Config, Rules, SizeSpec};
use crate::disk::{self, Filesystem};
use crate::job::{self, Job};
use crate::progress::Progress;
use crate::survey::Sides;
use crate::sweep::Mode;
use crate::units::human_bytes;

#[derive(Clone, Debug, Serialize)]
pub struct FsFree {
    #[serde(with = "crate::pathcodec")]
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

    fn missing(&self) -> u64 {
        self.floor_bytes.saturating_sub(self.free_bytes)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase {
    pub phase: &'static str,
    pub reclaimed_bytes: u64,
    pub actions: usize,
}

/// One guard pass.
#[derive(Clone, Debug, Serialize)]
pub struct Pass {
    pub before: Vec<FsFree>,
    pub after: Vec<FsFree>,
    pub phases: Vec<Phase>,
    pub reclaimed_bytes: u64,
    pub holds: bool,
    /// Why the floor was not reached (protected data, what is in use).
    pub blocking: Vec<String>,
    /// Whether the BuildKit cache could be part of it.
    pub buildkit: Docker,
}

/// The filesystems the floor applies to: those of the roots (and the target dirs below them),
/// and of Docker's root dir when the BuildKit side is on and reachable.
fn involved(roots: &[PathBuf], docker_root: Option<&PathBuf>, floor: SizeSpec) -> Vec<FsFree> {
    let mut out: Vec<FsFree> = Vec::new();
    let mut seen: Vec<Filesystem> = Vec::new();
    for p in roots.iter().chain(docker_root) {
        let Ok(fs) = disk::measure(p) else { continue };
        if seen.iter().any(|s| s.dev == fs.dev) {
            continue;
        }
        out.push(FsFree {
            path: p.clone(),
            total_bytes: fs.total_bytes,
            free_bytes: fs.free_bytes,
            floor_bytes: floor.resolve(fs.total_bytes),
        });
        seen.push(fs);
    }
    out
}

/// The BuildKit side as the guard found it (asked once per guard invocation: passes reuse it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Docker {
    /// `ok`, `absent` (no engine on this machine), `unavailable` (see `message`) or `off`.
    pub state: &'static str,
    pub message: Option<String>,
    /// Docker's root dir, when the engine answers and it is reachable from here.
    #[serde(with = "crate::pathcodec::option")]
    pub root_dir: Option<PathBuf>,
}

/// Asks the engine for Docker's root dir, if the BuildKit side is on.
pub async fn docker(config: &Config) -> Docker {
    if !config.buildkit.enabled {
        return Docker {
            state: "off",
            ..Docker::default()
        };
    }
    let (side, _) = buildkit::measure_configured(
        config.buildkit.docker_host.as_ref(),
        config.buildkit.timeout,
    )
    .await;
    match side {
        buildkit::Side::Ready(cache) => Docker {
            state: "ok",
            message: None,
            root_dir: cache.root_dir().filter(|p| p.exists()).cloned(),
        },
        buildkit::Side::Unavailable { error, quiet } => Docker {
            state: if quiet { "absent" } else { "unavailable" },
            message: Some(error.to_string()),
            root_dir: None,
        },
        buildkit::Side::Off => Docker {
            state: "off",
            ..Docker::default()
        },
    }
}

/// Runs one pass against `floor` over `roots`; `docker` is [`docker_root`].
pub async fn pass(config: &Config, roots: &[PathBuf], floor: SizeSpec, engine: &Docker) -> Pass {
    let docker = engine.root_dir.as_ref();
    let before = involved(roots, docker, floor);
    let mut now = before.clone();
    let mut phases = Vec::new();
    let mut blocking = Vec::new();
    let cargo_only = Sides {
        cargo: true,
        buildkit: false,
    };
    let buildkit_only = Sides {
        cargo: false,
        buildkit: true,
    };

    for phase in ["cheap", "buildkit", "units", "cache-mounts"] {
        if now.iter().all(FsFree::holds) {
            break;
        }
        let mut c = config.clone();
        let sides = match phase {
            "cheap" => {
                c.cargo.rules = Rules {
                    incremental: true,
                    toolchains: true,
                    stale: true,
                    budgets: false,
                };
                cargo_only
            }
            "units" => {
                c.cargo.rules = Rules {
                    incremental: false,
                    toolchains: false,
                    stale: false,
                    budgets: true,
                };
                c.cargo.target_budget = None;
                c.cargo.total_budget = None;
                c.disk.min_free = Some(floor);
                cargo_only
            }
            _ => {
                let Some(budget) = buildkit_budget(&c, &now, docker).await else {
                    continue; // no engine, or Docker's filesystem is not short
                };
                c.buildkit.budget = Some(budget);
                c.buildkit.protect_cache_mounts = if phase == "buildkit" {
                    Protect::Always
                } else {
                    Protect::No
                };
                buildkit_only
            }
        };
        let job = Job::new(sides, Mode::Execute, Arc::new(Progress::hidden()));
        let outcome = job::clean(&c, roots, job).await;
        crate::cli::log_actions(&outcome);
        let actions = outcome.plan.actions.len()
            + outcome
                .buildkit_plan
                .as_ref()
                .map_or(0, |p| p.actions.len());
        phases.push(Phase {
            phase,
            reclaimed_bytes: outcome.reclaimed_bytes(),
            actions,
        });
        if phase == "units" || phase == "cache-mounts" {
            for s in outcome.plan.shortfalls.iter().chain(
                outcome
                    .buildkit_plan
                    .as_ref()
                    .and_then(|p| p.shortfall.as_ref()),
            ) {
                blocking.push(format!("{}: {}", s.scope, s.why));
            }
        }
        now = involved(roots, docker, floor);
    }
    let holds = now.iter().all(FsFree::holds);
    if !holds && blocking.is_empty() {
        blocking.push("nothing cachekeeper manages is left to remove there: the rest of the disk is other data".into());
    }
    Pass {
        buildkit: engine.clone(),
        reclaimed_bytes: phases.iter().map(|p| p.reclaimed_bytes).sum(),
        before,
        after: now,
        phases,
        holds,
        blocking: if holds { Vec::new() } else { blocking },
    }
}

/// A BuildKit budget that frees what Docker's filesystem misses, if the engine answers and
/// its filesystem is short: what is reclaimable now minus what is missing.
async fn buildkit_budget(
    config: &Config,
    fs: &[FsFree],
    docker: Option<&PathBuf>,
) -> Option<SizeSpec> {
    let dev = disk::measure(docker?).ok()?.dev;
    let short = fs
        .iter()
        .find(|f| disk::measure(&f.path).is_ok_and(|m| m.dev == dev))
        .filter(|f| !f.holds())?;
    let (buildkit::Side::Ready(cache), _) = buildkit::measure_configured(
        config.buildkit.docker_host.as_ref(),
        config.buildkit.timeout,
    )
    .await
    else {
        return None;
    };
    let reclaimable: u64 = cache
        .records
        .iter()
        .filter(|r| r.reclaimable())
        .map(|r| r.size)
        .sum();
    Some(SizeSpec::Bytes(reclaimable.saturating_sub(short.missing())))
}

/// A pass for people.
#[must_use]
pub fn describe(p: &Pass) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (b, a) in p.before.iter().zip(&p.after) {
        let _ = writeln!(
            out,
            "{}: {} free before, {} after (floor {}){}",
            b.path.display(),
            human_bytes(b.free_bytes),
            human_bytes(a.free_bytes),
            human_bytes(a.floor_bytes),
            if a.holds() { "" } else { ": BELOW THE FLOOR" }
        );
    }
    for ph in &p.phases {
        let _ = writeln!(
            out,
            "  {:<13} reclaimed {} ({} actions)",
            ph.phase,
            human_bytes(ph.reclaimed_bytes),
            ph.actions
        );
    }
    for b in &p.blocking {
        let _ = writeln!(out, "  blocked: {b}");
    }
    match (p.buildkit.state, &p.buildkit.message) {
        ("unavailable", Some(m)) => {
            let _ = writeln!(
                out,
                "  BuildKit: UNAVAILABLE, its cache was not considered: {m}"
            );
        }
        ("absent", _) => {
            let _ = writeln!(out, "  BuildKit: no Docker engine on this machine");
        }
        _ => {}
    }
    out
}

/// What happened while a command ran under the guard.
#[derive(Clone, Debug, Serialize)]
pub struct Watch {
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
    let engine = docker(config).await;
    let docker = engine.root_dir.clone();
    let mut passes = vec![pass(config, roots, floor, &engine).await];
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
        tokio::select! {
            status = child.wait() => break status?,
            _ = term.recv() => forward(rustix::process::Signal::TERM),
            _ = int.recv() => forward(rustix::process::Signal::INT),
            _ = tick.tick() => {
                let fs = involved(roots, docker.as_ref(), floor);
                for f in &fs {
                    min_free = Some(min_free.map_or(f.free_bytes, |m| m.min(f.free_bytes)));
                }
                if !fs.iter().all(FsFree::holds) {
                    held = false;
                    tracing::warn!("free space under the floor while the command runs: freeing space");
                    passes.push(pass(config, roots, floor, &engine).await);
                }
            }
        }
    };
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(1));
    Ok(Watch {
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

#[must_use]
pub fn describe_watch(w: &Watch) -> String {
    let mut out = format!(
        "cachekeeper guard: {:?} exited with {}; {} pass(es) reclaimed {}; floor {} while it ran{}\n",
        w.command.join(" "),
        w.exit_code,
        w.passes.len(),
        human_bytes(w.reclaimed_bytes),
        if w.held { "held" } else { "was crossed" },
        w.min_free_bytes
            .map(|m| format!(" (least free: {})", human_bytes(m)))
            .unwrap_or_default()
    );
    for p in &w.passes {
        if p.reclaimed_bytes > 0 || !p.holds {
            out.push_str(&describe(p));
        }
    }
    out
}

/// Appends a Markdown summary to `$GITHUB_STEP_SUMMARY`, when set.
pub fn step_summary(passes: &[Pass], exit_code: Option<i32>) {
    use std::io::Write;
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let (Some(first), Some(last)) = (passes.first(), passes.last()) else {
        return;
    };
    let mut md = String::from(
        "### cachekeeper guard\n\n| filesystem | free before | free after | floor |\n|---|---|---|---|\n",
    );
    for (b, a) in first.before.iter().zip(&last.after) {
        md.push_str(&format!(
            "| `{}` | {} | {} | {}{} |\n",
            b.path.display(),
            human_bytes(b.free_bytes),
            human_bytes(a.free_bytes),
            human_bytes(a.floor_bytes),
            if a.holds() { "" } else { " **not reached**" }
        ));
    }
    let mut by_phase: Vec<(&str, u64)> = Vec::new();
    for p in passes.iter().flat_map(|p| &p.phases) {
        match by_phase.iter_mut().find(|(n, _)| *n == p.phase) {
            Some(e) => e.1 += p.reclaimed_bytes,
            None => by_phase.push((p.phase, p.reclaimed_bytes)),
        }
    }
    let total: u64 = passes.iter().map(|p| p.reclaimed_bytes).sum();
    let parts: Vec<String> = by_phase
        .iter()
        .filter(|(_, b)| *b > 0)
        .map(|(n, b)| format!("{n} {}", human_bytes(*b)))
        .collect();
    md.push_str(&format!(
        "\nReclaimed {}{} in {} pass(es).",
        human_bytes(total),
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        },
        passes.len()
    ));
    if let Some(code) = exit_code {
        md.push_str(&format!(" The command exited with {code}."));
    }
    md.push('\n');
    for b in passes.iter().flat_map(|p| &p.blocking) {
        md.push_str(&format!("\n- blocked: {b}"));
    }
    md.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(md.as_bytes());
    }
}
