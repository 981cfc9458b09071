//! One look at everything cachekeeper manages: find the target dirs, scan each, measure the
//! filesystems holding them, ask which toolchains are installed. Commands build on it.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::Config;
use crate::discover;
use crate::disk::{self, Filesystem};
use crate::inventory::{self, TargetDir};
use crate::lastuse::{self, Signal};
use crate::policy::{self, Plan, Settings};
use crate::progress::Progress;
use crate::toolchain::{self, Toolchains};

pub struct Survey {
    pub targets: Vec<TargetDir>,
    pub signals: Vec<Signal>,
    /// Index into `filesystems` for each target.
    pub fs_of: Vec<usize>,
    pub filesystems: Vec<Filesystem>,
    pub toolchains: Toolchains,
    /// Target dirs found but not scanned, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    pub missing_roots: Vec<PathBuf>,
    /// Directories the search could not enter.
    pub search_errors: Vec<String>,
}

impl Survey {
    /// Finds and measures every target dir under `roots`.
    #[must_use]
    pub fn take(config: &Config, roots: &[PathBuf], progress: &Progress) -> Survey {
        let exclude = discover::exclude_set(&config.cargo.exclude)
            .expect("exclude patterns were validated with the config");
        progress.say(&format!("searching {} for target dirs", list(roots)));
        let found = discover::find(roots, &exclude, config.cargo.max_depth);
        let threads = crate::walk::default_threads();
        let mut targets = Vec::new();
        let mut failed = Vec::new();
        let n = found.targets.len();
        for (i, path) in found.targets.iter().enumerate() {
            progress.say(&format!("scanning {}/{n}: {}", i + 1, path.display()));
            match inventory::scan(path, threads) {
                Ok(t) => targets.push(t),
                Err(e) => failed.push((path.clone(), e.to_string())),
            }
        }
        progress.done();
        // A target dir whose filesystem cannot be measured is left out: a percentage budget
        // resolved against an unknown size could read as zero and empty it.
        let mut filesystems: Vec<Filesystem> = Vec::new();
        let mut fs_of = Vec::new();
        targets.retain(|t| match disk::measure(&t.path) {
            Ok(fs) => {
                let idx = filesystems
                    .iter()
                    .position(|f| f.dev == fs.dev)
                    .unwrap_or_else(|| {
                        filesystems.push(fs);
                        filesystems.len() - 1
                    });
                fs_of.push(idx);
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
        let signals = targets.iter().map(|t| lastuse::for_path(&t.path)).collect();
        // Toolchains matter only when there is something they could decide.
        let toolchains = if targets.is_empty() || !config.cargo.rules.toolchains {
            Toolchains::default()
        } else {
            toolchain::discover(&config.cargo.extra_rustc)
        };
        Survey {
            targets,
            signals,
            fs_of,
            filesystems,
            toolchains,
            failed,
            missing_roots: found.missing_roots,
            search_errors: found.errors,
        }
    }

    /// Plans what a run would do now.
    #[must_use]
    pub fn plan(&self, settings: &Settings, now: SystemTime) -> Plan {
        policy::plan(&policy::Input {
            targets: self
                .targets
                .iter()
                .enumerate()
                .map(|(i, dir)| policy::Target {
                    dir,
                    signal: self.signals[i],
                    fs: self.fs_of[i],
                })
                .collect(),
            filesystems: &self.filesystems,
            toolchains: Some(&self.toolchains),
            settings,
            now,
        })
    }
}

/// The policy settings a config asks for.
#[must_use]
pub fn settings(config: &Config) -> Settings {
    let c = &config.cargo;
    Settings {
        rules: c.rules,
        min_age: c.min_age,
        stale_after: c.stale_after,
        incremental_max_age: c.incremental_max_age,
        target_budget: c.target_budget,
        total_budget: c.total_budget,
        min_free: config.disk.min_free,
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

/// Resolves command-line paths: they must exist (a typo is a usage error, not "nothing found").
pub fn check_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    paths
        .iter()
        .map(|p| {
            std::fs::symlink_metadata(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(std::path::absolute(p).unwrap_or_else(|_| p.clone()))
        })
        .collect()
}
