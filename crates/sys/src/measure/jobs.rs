//! How many compiles cargo runs side by side for a target dir, as cargo decides it:
//! `CARGO_BUILD_JOBS`, else `build.jobs` in the nearest `.cargo/config.toml` above the target
//! dir (where the workspace is), else in `$CARGO_HOME/config.toml`, else the cores. A negative
//! value counts back from the cores (`-1`: all but one), as cargo has since 1.68.

use std::path::{Path, PathBuf};

/// Config files are small; anything past this is not one.
const CONFIG_CAP: u64 = 1 << 20;

/// What a `jobs` value means on `cores`; `None` for "default" or nonsense.
fn resolve(value: &toml::Value, cores: u32) -> Option<u32> {
    let n = match value {
        toml::Value::Integer(n) => *n,
        toml::Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    match n {
        0 => None,
        n if n > 0 => u32::try_from(n).ok(),
        n => Some(
            i64::from(cores)
                .saturating_add(n)
                .clamp(1, i64::from(cores))
                .try_into()
                .unwrap_or(1),
        ),
    }
}

fn from_file(file: &Path, cores: u32) -> Option<u32> {
    let bytes = crate::readfile::read(file, CONFIG_CAP, true).ok()??;
    let table: toml::Table = std::str::from_utf8(&bytes).ok()?.parse().ok()?;
    resolve(table.get("build")?.get("jobs")?, cores)
}

/// The jobs for the target dir at `target`; `env_jobs` is `CARGO_BUILD_JOBS`, `cargo_home`
/// where cargo keeps its own config.
#[must_use]
pub(crate) fn jobs_for(
    target: &Path,
    env_jobs: Option<&str>,
    cargo_home: Option<&Path>,
    cores: u32,
) -> u32 {
    let cores = cores.max(1);
    if let Some(n) = env_jobs.and_then(|v| resolve(&toml::Value::String(v.to_string()), cores)) {
        return n;
    }
    let mut candidates: Vec<PathBuf> = target
        .ancestors()
        .skip(1)
        .flat_map(|d| [d.join(".cargo/config.toml"), d.join(".cargo/config")])
        .collect();
    if let Some(home) = cargo_home {
        candidates.push(home.join("config.toml"));
        candidates.push(home.join("config"));
    }
    candidates
        .iter()
        .find_map(|f| from_file(f, cores))
        .unwrap_or(cores)
}

/// This machine's cores, as cargo counts them.
#[must_use]
pub fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
}

/// `$CARGO_HOME`, else `~/.cargo`.
#[must_use]
pub fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_config_wins_then_cargo_home_then_the_cores() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        let target = ws.join("target");
        std::fs::create_dir_all(&target).unwrap();
        let home = t.path().join("cargo-home");
        std::fs::create_dir_all(&home).unwrap();
        assert_eq!(jobs_for(&target, None, Some(&home), 8), 8);
        std::fs::write(home.join("config.toml"), "[build]\njobs = 3\n").unwrap();
        assert_eq!(jobs_for(&target, None, Some(&home), 8), 3);
        std::fs::create_dir_all(t.path().join(".cargo")).unwrap();
        std::fs::write(t.path().join(".cargo/config.toml"), "[build]\njobs = -2\n").unwrap();
        assert_eq!(jobs_for(&target, None, Some(&home), 8), 6, "all but two");
        std::fs::create_dir_all(ws.join(".cargo")).unwrap();
        std::fs::write(
            ws.join(".cargo/config.toml"),
            "[build]\njobs = \"default\"\n",
        )
        .unwrap();
        assert_eq!(
            jobs_for(&target, None, Some(&home), 8),
            6,
            "default says nothing"
        );
        std::fs::write(ws.join(".cargo/config.toml"), "[build]\njobs = 1\n").unwrap();
        assert_eq!(jobs_for(&target, None, Some(&home), 8), 1);
        assert_eq!(
            jobs_for(&target, Some("4"), Some(&home), 8),
            4,
            "the environment first"
        );
        assert_eq!(jobs_for(&target, Some("-100"), None, 8), 1);
        // A config that is not TOML is no config.
        std::fs::write(ws.join(".cargo/config.toml"), "[[[").unwrap();
        assert_eq!(jobs_for(&target, None, Some(&home), 8), 6);
    }
}
