//! `cachekeeper doctor`: the build-cache mistakes behind real outages, found before they bite.
//! A driver over `measure`: it measures the target dirs under the roots once, finds every
//! Dockerfile (and Compose file's `build:`) there, reads each with its build context, and runs
//! the [`checks`] on those and on this machine. It changes nothing.
//!
//! Invariant: read-only; the checks are pure functions of what this module gathered.

mod checks;
pub mod dockerfile;
pub mod dockerignore;
mod machine;
pub mod read;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::report::{DoctorView, Finding, Severity};
use cachekeeper_core::config::Config;
use cachekeeper_core::model::Snapshot;
use cachekeeper_sys::progress::Progress;
use dockerfile::Dockerfile;
use dockerignore::Ignore;

/// A Dockerfile and the build context it is built with.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Build {
    dockerfile: PathBuf,
    context: PathBuf,
}

fn is_dockerfile(name: &str) -> bool {
    name == "Dockerfile"
        || name == "Containerfile"
        || name.ends_with(".Dockerfile")
        || name.starts_with("Dockerfile.") && !name.ends_with(".dockerignore")
}

fn is_compose(name: &str) -> bool {
    matches!(
        name,
        "compose.yaml" | "compose.yml" | "docker-compose.yaml" | "docker-compose.yml"
    )
}

/// The deepest nesting of flow collections (`[`, `{`) a Compose file may have: the YAML parser
/// is quadratic in it (200 KB of `[` took minutes); real files nest a few levels.
const MAX_YAML_NESTING: usize = 64;

/// How deep `[`/`{` nest in `text`, quoted scalars and comments skipped: linear, before the
/// YAML parser sees it.
fn flow_nesting(text: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut prev = '\n';
    for c in text.chars() {
        match (quote, c) {
            (_, '\n') => comment = false,
            _ if comment => {}
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '#') if prev.is_whitespace() => comment = true,
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => {
                depth += 1;
                max = max.max(depth);
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    max
}

/// The builds a Compose file names: `build: DIR` or `build: {context, dockerfile}`. One that
/// names a context or Dockerfile outside `roots` is a finding, and not looked at.
fn compose_builds(file: &Path, roots: &[PathBuf]) -> (Vec<Build>, Vec<Finding>) {
    let dir = file.parent().unwrap_or(Path::new("."));
    let unusable = |why: String| {
        (
            Vec::new(),
            vec![checks::finding(
                "compose-unreadable",
                Severity::Warning,
                Some(dir),
                Some((file, 1)),
                format!("the Compose file {why}, so the builds it names were not checked"),
                "check it with `docker compose config`",
            )],
        )
    };
    let text = match read::read(file, roots) {
        Ok(t) => t,
        Err(e) => return unusable(format!("could not be read ({e})")),
    };
    if flow_nesting(&text) > MAX_YAML_NESTING {
        return unusable(format!(
            "nests [ ] or {{ }} deeper than {MAX_YAML_NESTING} levels"
        ));
    }
    let doc = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
        Ok(d) => d,
        Err(e) => return unusable(format!("does not parse ({e})")),
    };
    let Some(services) = doc.get("services").and_then(|s| s.as_mapping()) else {
        return (Vec::new(), Vec::new());
    };
    let mut builds = Vec::new();
    let mut findings = Vec::new();
    for svc in services.values() {
        let Some(build) = svc.get("build") else {
            continue;
        };
        let (context, dockerfile) = match build {
            serde_yaml_ng::Value::String(c) => (c.as_str(), "Dockerfile"),
            b => (
                b.get("context").and_then(|c| c.as_str()).unwrap_or("."),
                b.get("dockerfile")
                    .and_then(|d| d.as_str())
                    .unwrap_or("Dockerfile"),
            ),
        };
        let context = lexical(&dir.join(context));
        let b = Build {
            dockerfile: lexical(&context.join(dockerfile)),
            context,
        };
        let outside: Vec<String> = [("context", &b.context), ("Dockerfile", &b.dockerfile)]
            .into_iter()
            .filter(|(_, p)| !read::inside(p, roots))
            .map(|(what, p)| format!("its {what} {}", p.display()))
            .collect();
        if outside.is_empty() {
            builds.push(b);
        } else {
            findings.push(checks::finding(
                "outside-roots",
                Severity::Warning,
                Some(dir),
                Some((file, 1)),
                format!(
                    "a build names {}, outside the roots doctor looks at: not read, not checked",
                    outside.join(" and ")
                ),
                "run `cachekeeper doctor DIR` on a directory holding both the Compose file and what it builds",
            ));
        }
    }
    (builds, findings)
}

/// `path` with `.` and `..` taken out by reading alone (a Compose file's `build: ..`), so one
/// Dockerfile has one name.
pub(super) fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Every build under `roots`: Dockerfiles with their own directory as context, and what
/// Compose files name. Target dirs, excluded paths and symlinks are not entered.
fn builds(config: &Config, roots: &[PathBuf], findings: &mut Vec<Finding>) -> BTreeSet<Build> {
    let mut out = BTreeSet::new();
    let mut named: BTreeSet<PathBuf> = BTreeSet::new();
    let mut plain = Vec::new();
    for root in roots {
        let walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .max_depth(config.cargo.max_depth)
            .into_iter()
            .filter_entry(|e| {
                let p = e.path();
                !config.cargo.exclude_set.is_match(p)
                    && !(e.file_type().is_dir()
                        && (p.join("CACHEDIR.TAG").exists() || e.file_name() == ".git"))
            });
        for e in walk.flatten().filter(|e| e.file_type().is_file()) {
            let name = e.file_name().to_string_lossy();
            if is_compose(&name) {
                let (builds, trouble) = compose_builds(e.path(), roots);
                findings.extend(trouble);
                for b in builds {
                    named.insert(b.dockerfile.clone());
                    out.insert(b);
                }
            } else if is_dockerfile(&name) {
                plain.push(e.path().to_path_buf());
            }
        }
    }
    for dockerfile in plain {
        // A Dockerfile a Compose file builds is looked at with that context only.
        if !named.contains(&dockerfile) {
            let context = dockerfile.parent().unwrap_or(Path::new(".")).to_path_buf();
            out.insert(Build {
                dockerfile,
                context,
            });
        }
    }
    out
}

/// The `.dockerignore` of a build and its path: `<Dockerfile>.dockerignore` beside the
/// Dockerfile (BuildKit prefers it), else the context's (which need not exist yet). One that
/// cannot be read, or holds lines that are no patterns, is a finding.
fn ignore_of(b: &Build, roots: &[PathBuf], out: &mut Vec<Finding>) -> (Ignore, PathBuf) {
    let own = PathBuf::from(format!("{}.dockerignore", b.dockerfile.display()));
    let file = if own.is_file() {
        own
    } else {
        b.context.join(".dockerignore")
    };
    let text = match read::read(&file, roots) {
        Ok(t) => t,
        Err(read::Refused::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            out.push(checks::finding(
                "dockerignore-invalid",
                Severity::Warning,
                Some(&b.context),
                Some((&file, 1)),
                format!("it could not be read ({e}); it was taken as empty"),
                "make it a plain file of patterns, as `docker build` expects",
            ));
            String::new()
        }
    };
    let ignore = Ignore::parse(&text);
    if !ignore.errors.is_empty() {
        let shown: Vec<&str> = ignore.errors.iter().take(5).map(String::as_str).collect();
        out.push(checks::finding(
            "dockerignore-invalid",
            Severity::Warning,
            Some(&b.context),
            Some((&file, 1)),
            format!(
                "{} of its lines are no patterns and exclude nothing: {}{}",
                ignore.errors.len(),
                shown.join("; "),
                if ignore.errors.len() > shown.len() {
                    "; ..."
                } else {
                    ""
                }
            ),
            "fix or remove those lines: `docker build` refuses such a file",
        ));
    }
    (ignore, file)
}

/// Bytes of the files under `target` (in `context`) the engine would receive: it does not
/// enter a directory the ignore file leaves out (see [`Ignore::skips_dir`]).
fn sent_bytes(context: &Path, target: &Path, ignore: &Ignore) -> u64 {
    let rel = |p: &Path| {
        p.strip_prefix(context)
            .map(|r| r.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // The directories on the way from the context to the target dir, and the target dir.
    let on_the_way = target
        .strip_prefix(context)
        .map(|r| {
            r.ancestors()
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| ignore.skips_dir(&a.to_string_lossy()))
        })
        .unwrap_or(true);
    if on_the_way {
        return 0;
    }
    // Hard links (cargo's uplifted binaries) travel once.
    let mut seen = std::collections::HashSet::new();
    walkdir::WalkDir::new(target)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && ignore.skips_dir(&rel(e.path()))))
        .flatten()
        .filter(|e| e.file_type().is_file() && !ignore.excludes(&rel(e.path())))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| {
            use std::os::unix::fs::MetadataExt;
            m.nlink() == 1 || seen.insert((m.dev(), m.ino()))
        })
        .map(|m| m.len())
        .sum()
}

/// The target dirs inside `context`: from the snapshot of the roots when the context lies under
/// one, else searched for there (a Compose context above the roots).
fn targets_in(
    config: &Config,
    roots: &[PathBuf],
    snapshot: &Snapshot,
    context: &Path,
) -> Vec<PathBuf> {
    if roots.iter().any(|r| context.starts_with(r)) {
        return snapshot
            .targets
            .iter()
            .map(|t| t.path.clone())
            .filter(|p| p.starts_with(context))
            .collect();
    }
    cachekeeper_sys::measure::discover::find(
        std::slice::from_ref(&context.to_path_buf()),
        &config.cargo.exclude_set,
        config.cargo.max_depth,
    )
    .targets
}

fn build_findings(
    config: &Config,
    roots: &[PathBuf],
    snapshot: &Snapshot,
    builds: &BTreeSet<Build>,
    out: &mut Vec<Finding>,
) -> Vec<PathBuf> {
    let mut parsed: Vec<(Dockerfile, &Path)> = Vec::new();
    let mut files = BTreeSet::new();
    // Builds sharing a context and an ignore file send the same: said once.
    let mut contexts = BTreeSet::new();
    for b in builds {
        files.insert(b.dockerfile.clone());
        let text = match read::read(&b.dockerfile, roots) {
            Ok(t) => t,
            Err(e) => {
                out.push(checks::finding(
                    "dockerfile-unreadable",
                    Severity::Warning,
                    Some(&b.context),
                    Some((&b.dockerfile, 1)),
                    format!("it could not be read ({e}), so it was not checked"),
                    "check the path (and the Compose file that names it)",
                ));
                continue;
            }
        };
        match dockerfile::parse(&b.dockerfile, &text) {
            Ok(df) => {
                let in_context = |rel: &str| b.context.join(rel).is_file();
                out.extend(checks::dummy_main(&df, &b.context, &in_context));
                parsed.push((df, &b.context));
            }
            Err(e) => out.push(checks::finding(
                "dockerfile-unreadable",
                Severity::Warning,
                Some(&b.context),
                Some((&b.dockerfile, 1)),
                format!("it does not parse ({e}), so it was not checked"),
                "fix its syntax: `docker build` would refuse it too",
            )),
        }
        let (ignore, ignore_file) = ignore_of(b, roots, out);
        if !contexts.insert((b.context.clone(), ignore_file.clone())) {
            continue;
        }
        for target in targets_in(config, roots, snapshot, &b.context) {
            let sent = sent_bytes(&b.context, &target, &ignore);
            out.extend(checks::context_target(
                &b.context,
                &ignore_file,
                &target,
                sent,
            ));
        }
    }
    // A Dockerfile built from two contexts is parsed twice: its mounts count once.
    parsed.dedup_by(|a, b| a.0.path == b.0.path);
    out.extend(checks::shared_cache_mounts(&parsed));
    out.extend(checks::unbounded_cache_mounts(
        &parsed,
        machine::cache_bounded(config),
    ));
    files.into_iter().collect()
}

/// Looks at every build under `roots` and at this machine. `config_trouble` is why the config
/// file in force could not be used (doctor then runs on the built-in defaults).
pub async fn doctor(
    config: &Config,
    roots: &[PathBuf],
    config_trouble: Option<String>,
    progress: &Arc<Progress>,
) -> DoctorView {
    let mut findings = Vec::new();
    if let Some(why) = config_trouble {
        findings.push(checks::finding(
            "config",
            Severity::Error,
            None,
            None,
            format!("the config in force does not load, so the daemon refuses to start on it and doctor used the built-in defaults: {why}"),
            "fix what it names (cachekeeper check-config explains), then reload the daemon",
        ));
    }
    // The target dirs under the roots, measured once for the builds' contexts and the machine.
    let snapshot = {
        let (config, roots, progress) = (config.clone(), roots.to_vec(), Arc::clone(progress));
        tokio::task::spawn_blocking(move || {
            cachekeeper_sys::measure::take_cargo(&config, &roots, &progress, None, None)
        })
        .await
        .unwrap_or_else(|_| Snapshot::empty())
    };
    progress.say(&format!("looking for Dockerfiles under {}", list(roots)));
    let found = builds(config, roots, &mut findings);
    let dockerfiles = build_findings(config, roots, &snapshot, &found, &mut findings);
    let projects: Vec<PathBuf> = found.iter().map(|b| b.context.clone()).collect();
    findings.extend(machine::findings(config, roots, &snapshot, &projects).await);
    progress.done();
    DoctorView::new(dockerfiles, findings)
}

fn list(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
