//! This machine: the inotify limit against the units found, `noatime` mounts the daemon does
//! not watch, target dirs that live outside the roots, cargo's layout, the Docker engine, and
//! the daemon's health.

use std::path::{Path, PathBuf};

use super::checks::{finding, inotify};
use crate::protocol::{Request, Response, ask};
use crate::report::{Finding, HealthView, Severity};
use cachekeeper_core::config::Config;
use cachekeeper_core::model::{BuildkitSide, Signal, Snapshot};

/// Whether something bounds BuildKit's cache: cachekeeper's budget, or the engine's own GC
/// with a size (`builder.gc` in daemon.json).
pub fn cache_bounded(config: &Config) -> bool {
    if config.buildkit.enabled && config.buildkit.budget.is_some() {
        return true;
    }
    let mut files = vec![PathBuf::from("/etc/docker/daemon.json")];
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".config/docker/daemon.json"));
    }
    files.iter().any(|f| {
        super::read::read(f, &[PathBuf::from("/")])
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| {
                let gc = &v["builder"]["gc"];
                gc["enabled"] != false
                    && (gc["defaultKeepStorage"].is_string() || gc["policy"].is_array())
            })
    })
}

/// `fs.inotify.max_user_watches`.
fn watch_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `build.target-dir` / `build.build-dir` in one cargo config file; relative paths are
/// relative to the directory holding its `.cargo` dir, as cargo reads them.
fn from_cargo_config(file: &Path) -> Vec<(String, PathBuf)> {
    // Bounded and regular files only; where it lies was chosen by the caller (the machine's
    // `$CARGO_HOME`, a project inside the roots).
    let Ok(text) = super::read::read(file, &[PathBuf::from("/")]) else {
        return Vec::new();
    };
    let Ok(doc) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let base = file
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/"));
    ["target-dir", "build-dir"]
        .into_iter()
        .filter_map(|key| {
            let d = doc.get("build")?.get(key)?.as_str()?;
            // Templates ({workspace-root}, {cargo-cache-home}) follow the project.
            (!d.contains('{')).then(|| {
                let dir = super::lexical(&base.join(d));
                (format!("build.{key} in {}", file.display()), dir)
            })
        })
        .collect()
}

/// Target dirs cargo is told to use elsewhere: `$CARGO_TARGET_DIR`, and `build.target-dir` /
/// `build.build-dir` in cargo's own config (`$CARGO_HOME/config.toml`) and in the
/// `.cargo/config.toml` of each project looked at.
fn configured_target_dirs(projects: &[PathBuf]) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        out.push(("$CARGO_TARGET_DIR".to_string(), PathBuf::from(d)));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    let mut dirs: Vec<PathBuf> = cargo_home.into_iter().collect();
    dirs.extend(projects.iter().map(|p| p.join(".cargo")));
    for dir in dirs {
        for name in ["config.toml", "config"] {
            out.extend(from_cargo_config(&dir.join(name)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `cargo --version`'s minor version, and the line.
fn cargo_version() -> Option<(u32, String)> {
    let out = std::process::Command::new("cargo")
        .arg("--version")
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let minor = line
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()?;
    Some((minor, line))
}

fn daemon_health(config: &Config) -> Result<HealthView, String> {
    let socket = crate::protocol::socket_path(config.daemon.socket.as_deref());
    match ask(
        &socket,
        &Request::Health,
        Some(std::time::Duration::from_secs(5)),
    ) {
        Ok(Response::Health(h)) => Ok(h),
        Ok(Response::Refused(why)) => Err(why),
        Ok(_) => Err("an answer to another question".into()),
        Err(e) => Err(format!("no daemon answers at {} ({e})", socket.display())),
    }
}

/// `snapshot`: the target dirs under `roots`; `projects`: the build contexts looked at (their
/// `.cargo/config.toml` is read too).
pub async fn findings(
    config: &Config,
    roots: &[PathBuf],
    snapshot: &Snapshot,
    projects: &[PathBuf],
) -> Vec<Finding> {
    let mut out = Vec::new();
    let health = daemon_health(config);
    let daemon_watches = matches!(&health, Ok(h) if h.healthy);

    if config.daemon.track_access {
        let needed: u64 = snapshot
            .targets
            .iter()
            .map(|t| t.watched_dirs() as u64)
            .sum();
        out.extend(inotify(needed, watch_limit()));
    }
    for (t, signal) in snapshot.targets.iter().map(|t| (t, &t.signal)) {
        if *signal == Signal::BuildTimeOnly && !daemon_watches {
            out.push(finding(
                "noatime-without-daemon",
                Severity::Warning,
                None,
                None,
                format!(
                    "{} is on a noatime mount and no daemon records its uses: its last use is unknown, so the stale rule stays off there and budgets go by build time",
                    t.path.display()
                ),
                "run the daemon (install.sh), which records each use as it happens",
            ));
        }
    }
    for (source, dir) in configured_target_dirs(projects) {
        if !roots.iter().any(|r| dir.starts_with(r)) {
            out.push(finding(
                "target-dir-outside-roots",
                Severity::Warning,
                None,
                None,
                format!(
                    "{source} puts target dirs at {}, outside the roots: cachekeeper never looks there, and it grows unchecked",
                    dir.display()
                ),
                "add it to [cargo] roots",
            ));
        }
    }
    if let Some((minor, line)) = cargo_version() {
        let layout = if minor >= 100 {
            "the build-dir layout (build/<package>/<hash>)"
        } else {
            "the legacy layout (deps/, .fingerprint/); cargo 1.100 and later write the build-dir layout, both are understood"
        };
        out.push(finding(
            "cargo-layout",
            Severity::Info,
            None,
            None,
            format!("{line} writes {layout}"),
            "nothing to do",
        ));
    }
    let (side, _) = cachekeeper_sys::measure::buildkit::measure_configured(
        config.buildkit.docker_host.as_ref(),
        config.buildkit.timeout,
    )
    .await;
    match (&side, config.buildkit.enabled) {
        (_, false) => {}
        (BuildkitSide::Ready(cache), true) => out.push(finding(
            "docker-engine",
            Severity::Info,
            None,
            None,
            format!(
                "Docker {} (API {}) at {}{}: {} build cache records",
                cache.engine.server_version,
                cache.engine.api_version,
                cache.engine.host,
                cache
                    .engine
                    .context
                    .as_deref()
                    .map_or(String::new(), |c| format!(", docker context {c:?}")),
                cache.records.len()
            ),
            "nothing to do",
        )),
        (BuildkitSide::Unavailable { error, quiet }, true) => out.push(finding(
            "docker-engine",
            if *quiet {
                Severity::Info
            } else {
                Severity::Warning
            },
            None,
            None,
            format!("{error}"),
            if *quiet {
                "nothing to do (no Docker here)"
            } else {
                "start the engine, or fix [buildkit] docker-host / $DOCKER_HOST"
            },
        )),
        (BuildkitSide::Off, true) => {}
    }
    out.push(match health {
        Ok(h) if h.healthy => finding(
            "daemon",
            Severity::Info,
            None,
            None,
            format!("the daemon is up and healthy (pid {})", h.pid.unwrap_or(0)),
            "nothing to do",
        ),
        Ok(h) => finding(
            "daemon",
            Severity::Error,
            None,
            None,
            format!(
                "the daemon is unhealthy: {}",
                h.error.map_or_else(|| "no reason given".into(), |e| e.message)
            ),
            "fix the config it names (cachekeeper check-config), then reload it (systemctl reload cachekeeper)",
        ),
        Err(why) => finding(
            "daemon",
            Severity::Info,
            None,
            None,
            format!("no daemon runs: {why}"),
            "install it for schedules, disk-pressure runs and exact last use (install.sh), or a nightly clean (install.sh --timer)",
        ),
    });
    out
}
