//! Measuring the world into a [`Snapshot`]: find the target dirs, scan each, measure the
//! filesystems holding them, ask which toolchains are installed, and list the BuildKit cache
//! of the Docker engine.
//!
//! Invariants: measuring changes nothing (files are read with `O_NOATIME` and never written;
//! see `inventory`); it never reaches `decide` or `act`.

pub mod atime;
pub mod buildkit;
pub mod discover;
pub mod inventory;
pub mod jobs;
pub mod toolchain;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::docker::Engine;
use crate::os::disk;
use crate::progress::Progress;
use cachekeeper_core::config::Config;
use cachekeeper_core::model::{
    BuildkitSide, Filesystem, FsId, Packed, Sides, Snapshot, TargetDir, Toolchains,
};
use inventory::FingerprintCache;

/// What an earlier measurement stands for (the daemon's index, kept current by inotify): the
/// target dirs nothing changed in are taken as they were, and only the rest are walked. `D` is
/// how the earlier target dirs are held: [`Packed`] in the daemon's index between refreshes,
/// [`TargetDir`] when a measurement takes them.
#[derive(Clone, Debug)]
pub struct Reuse<D = TargetDir> {
    /// Target dirs measured before and unchanged since: taken as they are (their build locks
    /// probed again, their compile times worked out again with the others').
    pub unchanged: HashMap<PathBuf, D>,
    /// `Some`: the target dirs to walk again, without searching the roots (the known set is
    /// these and `unchanged`). `None`: the roots are searched, and every target dir found that
    /// is not in `unchanged` is walked.
    pub only: Option<Vec<PathBuf>>,
    /// Target dirs that changed, as measured before: their walk takes the incremental crate
    /// dirs no compile touched since as they were (most of a target dir's files are there).
    pub previous: HashMap<PathBuf, D>,
    /// For a target dir in `previous` whose changes are known unit by unit (every unit of it
    /// watched): the units written, created or removed since, by fingerprint dir relative to
    /// it. Its other units are taken as they were, their files not looked at. A target dir not
    /// here is walked whole.
    pub changed_units: HashMap<PathBuf, HashSet<PathBuf>>,
}

impl<D> Default for Reuse<D> {
    fn default() -> Self {
        Reuse {
            unchanged: HashMap::new(),
            only: None,
            previous: HashMap::new(),
            changed_units: HashMap::new(),
        }
    }
}

impl Reuse<Packed> {
    /// The target dirs unpacked for a measurement to take, and those that did not unpack (a
    /// bug: the buffer is what [`Packed::pack`] wrote), which are walked again, whole.
    #[must_use]
    pub fn unpack(self) -> (Reuse, Vec<PathBuf>) {
        self.open(|packed| packed.unpack())
    }
}

impl<D> Reuse<D> {
    /// Each earlier target dir turned into what a walk takes by `open`; one it cannot open is
    /// walked again, whole (named in `only` when the roots are not searched), and returned.
    fn open(self, open: impl Fn(D) -> Option<TargetDir>) -> (Reuse, Vec<PathBuf>) {
        let Reuse {
            unchanged,
            mut only,
            previous,
            mut changed_units,
        } = self;
        let mut failed = Vec::new();
        let mut opened = Reuse::default();
        for (path, d) in unchanged {
            match open(d) {
                Some(t) => {
                    opened.unchanged.insert(path, t);
                }
                None => {
                    only.iter_mut().for_each(|o| o.push(path.clone()));
                    failed.push(path);
                }
            }
        }
        // A changed dir is walked anyway: without its earlier walk, whole.
        for (path, d) in previous {
            match open(d) {
                Some(t) => {
                    opened.previous.insert(path, t);
                }
                None => {
                    changed_units.remove(&path);
                    failed.push(path);
                }
            }
        }
        opened.only = only;
        opened.changed_units = changed_units;
        (opened, failed)
    }
}

/// Measures what `sides` asks for: the cargo side on a blocking thread (it walks the disk on
/// threads of its own) while the engine is asked. The engine's connection comes back beside
/// the snapshot, for whoever acts on it; the snapshot itself is plain data.
pub async fn measure(
    config: &Config,
    roots: &[PathBuf],
    sides: Sides,
    progress: Arc<Progress>,
    cache: Option<Arc<FingerprintCache>>,
    reuse: Option<Reuse>,
) -> (Snapshot, Option<Engine>) {
    let cargo = async {
        if !sides.cargo {
            return Snapshot::empty();
        }
        let (config, roots) = (config.clone(), roots.to_vec());
        let task = tokio::task::spawn_blocking(move || {
            take_cargo(&config, &roots, &progress, cache.as_deref(), reuse)
        });
        task.await.unwrap_or_else(|e| {
            let mut s = Snapshot::empty();
            s.search_errors
                .push(format!("measuring the target dirs failed: {e}"));
            s
        })
    };
    let docker = async {
        if sides.buildkit && config.buildkit.enabled {
            buildkit::measure_configured(
                config.buildkit.docker_host.as_ref(),
                config.buildkit.timeout,
            )
            .await
        } else {
            (BuildkitSide::Off, None)
        }
    };
    let (mut survey, (side, engine)) = tokio::join!(cargo, docker);
    survey.buildkit = side;
    (survey, engine)
}

/// Finds and measures every target dir under `roots` (blocking), reading only the
/// fingerprint files `cache` has not seen. The BuildKit side is left off.
#[must_use]
pub fn take_cargo(
    config: &Config,
    roots: &[PathBuf],
    progress: &Progress,
    cache: Option<&FingerprintCache>,
    reuse: Option<Reuse>,
) -> Snapshot {
    let Reuse {
        mut unchanged,
        only,
        mut previous,
        mut changed_units,
    } = reuse.unwrap_or_default();
    let found = match only {
        Some(walk) => {
            // A changed target dir that is gone (`rm -rf target`) is simply no longer there.
            let walk = walk.into_iter().filter(|p| p.symlink_metadata().is_ok());
            let mut targets: Vec<PathBuf> = unchanged.keys().cloned().chain(walk).collect();
            targets.sort();
            targets.dedup();
            discover::Found {
                targets,
                ..discover::Found::default()
            }
        }
        None => {
            progress.say(&format!("searching {} for target dirs", list(roots)));
            discover::find(roots, &config.cargo.exclude_set, config.cargo.max_depth)
        }
    };
    let threads = crate::os::walk::default_threads();
    let mut targets = Vec::new();
    let mut failed = Vec::new();
    let n = found.targets.len();
    // Asking the toolchains (a process per compiler) overlaps with the walks; it is only
    // needed when there is something the toolchain rule could decide.
    let want_toolchains = n > 0 && config.cargo.rules.toolchains;
    let toolchains = std::thread::scope(|s| {
        let asking =
            want_toolchains.then(|| s.spawn(|| toolchain::discover(&config.cargo.extra_rustc)));
        for (i, path) in found.targets.iter().enumerate() {
            progress.scanning(i, n, path);
            if let Some(mut known) = unchanged.remove(path) {
                inventory::refresh(&mut known);
                targets.push(known);
                continue;
            }
            let earlier = previous.remove(path).map(|walk| inventory::Earlier {
                walk,
                changed_units: changed_units.remove(path),
            });
            match inventory::scan_cached(path, threads, cache, Some(progress), earlier) {
                Ok(t) => targets.push(t),
                Err(e) => failed.push((path.clone(), e.to_string())),
            }
        }
        asking.map_or_else(Toolchains::default, |h| {
            h.join().expect("toolchain lookup does not panic")
        })
    });
    progress.done();
    // A target dir whose filesystem cannot be measured is left out: a percentage budget
    // resolved against an unknown size could read as zero and empty it.
    let mut filesystems: Vec<Filesystem> = Vec::new();
    targets.retain_mut(|t| match disk::measure(&t.path) {
        Ok(fs) => {
            let idx = filesystems
                .iter()
                .position(|f| f.dev == fs.dev)
                .unwrap_or_else(|| {
                    filesystems.push(fs);
                    filesystems.len() - 1
                });
            t.fs = FsId(idx);
            true
        }
        Err(e) => {
            failed.push((
                t.path.clone(),
                format!("cannot measure its filesystem: {e}"),
            ));
            false
        }
    });
    // What each unit's compile costs, from every dir's times at once (units whose times
    // cannot be trusted learn a rate from those that can, on this machine).
    let (cores, home) = (jobs::cores(), jobs::cargo_home());
    let env_jobs = std::env::var("CARGO_BUILD_JOBS").ok();
    let dir_jobs: Vec<u32> = targets
        .iter()
        .map(|t| jobs::jobs_for(&t.path, env_jobs.as_deref(), home.as_deref(), cores))
        .collect();
    for (t, j) in targets.iter_mut().zip(&dir_jobs) {
        t.jobs = *j;
    }
    cachekeeper_core::model::rebuild::time_units(&mut targets, &dir_jobs);
    for t in &mut targets {
        t.signal = atime::for_path(&t.path);
    }
    Snapshot {
        buildkit: BuildkitSide::Off,
        targets,
        filesystems,
        toolchains,
        failed,
        missing_roots: found.missing_roots,
        search_errors: found.errors,
    }
}

fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths
        .iter()
        .take(3)
        .map(|p| p.display().to_string())
        .collect();
    let more = paths.len().saturating_sub(3);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Resolves command-line paths: they must exist (a typo is a usage error, not "nothing found"),
/// and `..` means what the kernel makes of it (`target/../../other` is `other`, never
/// `target`, which a search upward from it would otherwise find first).
pub fn check_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            resolve_parent_dirs(&abs).map_err(|e| format!("{}: {e}", p.display()))
        })
        .collect()
}

/// Resolves the part of `path` up to its last `..` as the kernel does (through symlinks, then
/// up), and keeps the rest as written: a final symlink is still not followed.
fn resolve_parent_dirs(path: &std::path::Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let comps: Vec<Component> = path.components().collect();
    let Some(last) = comps.iter().rposition(|c| *c == Component::ParentDir) else {
        return Ok(path.to_path_buf());
    };
    let prefix: PathBuf = comps[..=last].iter().collect();
    let rest: PathBuf = comps[last + 1..].iter().collect();
    Ok(std::fs::canonicalize(prefix)?.join(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target dir the index cannot give back is walked again, whole, never dropped: named
    /// for an events refresh (which does not search), without its earlier units if it changed.
    #[test]
    fn an_earlier_dir_that_cannot_be_opened_is_walked_whole() {
        let reuse = |only: Option<Vec<PathBuf>>| Reuse {
            unchanged: HashMap::from([("/ok".into(), "ok"), ("/bad".into(), "bad")]),
            only,
            previous: HashMap::from([("/changed".into(), "ok"), ("/changed-bad".into(), "bad")]),
            changed_units: HashMap::from([
                ("/changed".into(), HashSet::new()),
                ("/changed-bad".into(), HashSet::new()),
            ]),
        };
        let open = |d: &str| (d == "ok").then(|| TargetDir::empty(PathBuf::from(d)));
        for searched in [false, true] {
            let only = (!searched).then(|| vec![PathBuf::from("/changed"), "/changed-bad".into()]);
            let (opened, mut failed) = reuse(only).open(open);
            failed.sort();
            assert_eq!(failed, [PathBuf::from("/bad"), "/changed-bad".into()]);
            assert_eq!(
                opened.unchanged.keys().collect::<Vec<_>>(),
                [&PathBuf::from("/ok")]
            );
            assert_eq!(
                opened.previous.keys().collect::<Vec<_>>(),
                [&PathBuf::from("/changed")]
            );
            assert_eq!(
                opened.changed_units.keys().collect::<Vec<_>>(),
                [&PathBuf::from("/changed")],
                "walked whole"
            );
            match opened.only {
                Some(mut only) => {
                    only.sort();
                    assert!(!searched);
                    assert_eq!(
                        only,
                        [
                            PathBuf::from("/bad"),
                            "/changed".into(),
                            "/changed-bad".into()
                        ]
                    );
                }
                None => assert!(searched, "a rescan searches: the dir is found and walked"),
            }
        }
    }
}
