//! The checks on Dockerfiles, each a pure function of what was parsed and measured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::dockerfile::{Dockerfile, Step};
use crate::report::{Finding, Severity};
use cachekeeper_core::units::human_bytes;

pub(super) fn finding(
    id: &str,
    severity: Severity,
    project: Option<&Path>,
    file: Option<(&Path, usize)>,
    why: String,
    fix: &str,
) -> Finding {
    Finding {
        id: id.into(),
        severity,
        project: project.map(Path::to_path_buf),
        file: file.map(|(f, _)| f.to_path_buf()),
        line: file.map(|(_, l)| l),
        why,
        fix: fix.into(),
        bytes: None,
    }
}

/// Whether a shell command runs a cargo build (or install, run, test) of the sources.
fn builds(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(2).any(|w| {
        w[0].ends_with("cargo")
            && matches!(
                w[1],
                "build" | "b" | "install" | "run" | "test" | "t" | "rustc"
            )
    })
}

/// Whether a step writes a placeholder `src/main.rs` or `src/lib.rs` (the dependency-caching
/// trick), or makes a new crate that has one.
fn writes_dummy(step: &Step) -> bool {
    match step {
        Step::Run { text, .. } => {
            let target = text.contains("main.rs") || text.contains("lib.rs");
            let writes = text.contains('>') || text.contains("tee ");
            (target && writes && !text.contains("cargo chef"))
                || text.contains("cargo new")
                || text.contains("cargo init")
        }
        Step::Copy { dest, heredoc, .. } => {
            heredoc.is_some() && (dest.ends_with("main.rs") || dest.ends_with("lib.rs"))
        }
    }
}

/// The placeholder files a step writes, as written (relative to its WORKDIR).
fn placeholders(step: &Step) -> Vec<String> {
    match step {
        Step::Run { text, .. } => text
            .split(|c: char| c.is_whitespace() || matches!(c, ';' | '&' | '>' | '|'))
            .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
            .filter(|w| w.ends_with("main.rs") || w.ends_with("lib.rs"))
            .map(str::to_string)
            .collect(),
        Step::Copy { dest, .. } => vec![dest.clone()],
    }
}

/// Whether cargo rebuilds every placeholder's crate anyway: each placeholder is a `main.rs`
/// whose crate gets a real `lib.rs` the placeholder step did not write. A package's binaries
/// depend on its library, so a new library changes their fingerprint (checked with the real
/// cargo: the binary is the real one).
fn rebuilt_anyway(files: &[String], in_context: &dyn Fn(&str) -> bool) -> bool {
    !files.is_empty()
        && files.iter().all(|f| {
            let Some(dir) = f.strip_suffix("main.rs") else {
                return false;
            };
            let lib = format!("{dir}lib.rs");
            !f.starts_with('/') && !files.contains(&lib) && in_context(&lib)
        })
}

/// What makes cargo see the real sources as changed: touching them, cleaning the crate, or
/// removing its outputs.
fn refreshes(text: &str) -> bool {
    text.contains("touch ")
        || text.contains("cargo clean")
        || (text.contains("rm ") && (text.contains("target") || text.contains("deps/")))
}

/// 1. A placeholder main built, then the real sources copied over it and built again in the
///    same stage without anything making cargo look at them again: their mtimes are older
///    than the placeholder's outputs, cargo calls the unit fresh, and the image ships the
///    placeholder. `in_context` says whether a file (relative to the context) exists there.
pub fn dummy_main(
    df: &Dockerfile,
    project: &Path,
    in_context: &dyn Fn(&str) -> bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // Each stage's state at its end: a stage built `FROM` another starts where that one ended
    // (its filesystem, placeholder outputs included).
    let mut ends: Vec<(Option<String>, Trail)> = Vec::new();
    for stage in &df.stages {
        let mut tr = ends
            .iter()
            .rev()
            .find(|(name, _)| {
                name.as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case(&stage.image))
            })
            .map_or_else(Trail::default, |(_, t)| t.clone());
        for step in &stage.steps {
            if let Some((at, line)) = tr.step(step, in_context) {
                out.push(finding(
                    "dummy-main",
                    Severity::Error,
                    Some(project),
                    Some((&df.path, at)),
                    format!(
                        "a placeholder main is built here, then the real sources are copied over it and built at line {line} without a touch: cargo finds them older than the placeholder's outputs, calls the crate fresh, and the image ships the placeholder binary"
                    ),
                    "touch the real sources before building them, in the same stage (RUN touch src/main.rs && cargo build --release), or cache dependencies with cargo-chef",
                ));
            }
        }
        ends.push((stage.name.clone(), tr));
    }
    out
}

/// Where a stage is with respect to a placeholder: written (at which line, which files), built,
/// the real sources copied over it, and something making cargo look at them again.
#[derive(Clone, Debug, Default)]
struct Trail {
    dummy: Option<usize>,
    files: Vec<String>,
    built: bool,
    copied: bool,
    refreshed: bool,
}

impl Trail {
    /// Takes one step; returns the placeholder's line and that of a real build that ships it.
    fn step(&mut self, step: &Step, in_context: &dyn Fn(&str) -> bool) -> Option<(usize, usize)> {
        if writes_dummy(step) {
            *self = Trail {
                dummy: Some(step.line()),
                files: placeholders(step),
                built: matches!(step, Step::Run { text, .. } if builds(text)),
                copied: false,
                refreshed: false,
            };
            return None;
        }
        let at = self.dummy?;
        match step {
            Step::Copy {
                from: None,
                heredoc: None,
                ..
            } if self.built => self.copied = true,
            Step::Run { text, line, .. } => {
                if self.copied {
                    self.refreshed |= refreshes(text);
                }
                if builds(text) && !self.built {
                    self.built = true;
                } else if builds(text) && self.copied {
                    let ships = !self.refreshed && !rebuilt_anyway(&self.files, in_context);
                    self.dummy = None;
                    return ships.then_some((at, *line));
                }
            }
            Step::Copy { .. } => {}
        }
        None
    }
}

/// 3. Cache mounts on cargo's paths whose id (by default their target) is shared by stages or
///    Dockerfiles on different base images: one base's artifacts (another glibc, another
///    toolchain) land in the other's build.
pub fn shared_cache_mounts(dfs: &[(Dockerfile, &Path)]) -> Vec<Finding> {
    // key -> [(base, file, line, project)]
    let mut by_key: BTreeMap<String, Vec<(String, &Path, usize, &Path)>> = BTreeMap::new();
    for (df, project) in dfs {
        for stage in &df.stages {
            for step in &stage.steps {
                let Step::Run { line, mounts, .. } = step else {
                    continue;
                };
                for m in mounts.iter().filter(|m| m.is_cargo()) {
                    by_key.entry(m.key().to_string()).or_default().push((
                        stage.base.clone(),
                        &df.path,
                        *line,
                        project,
                    ));
                }
            }
        }
    }
    let mut out = Vec::new();
    for (key, uses) in by_key {
        let bases: BTreeSet<&str> = uses.iter().map(|u| u.0.as_str()).collect();
        if bases.len() < 2 {
            continue;
        }
        // One finding per Dockerfile and base: its first use of the mount.
        let mut said = BTreeSet::new();
        for (base, file, line, project) in &uses {
            if !said.insert((*file, base.as_str())) {
                continue;
            }
            let others = bases
                .iter()
                .filter(|b| *b != base)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            out.push(finding(
                "shared-cache-mount",
                Severity::Error,
                Some(project),
                Some((file, *line)),
                format!(
                    "the cache mount {key:?} (on {base}) is shared with builds on {others}: artifacts built against one base's libraries and toolchain are reused by another's"
                ),
                "give each base its own cache: an id naming the base, e.g. --mount=type=cache,id=target-${BASE_IMAGE},target=/app/target",
            ));
        }
    }
    out
}

/// 4. Cache mounts, and nothing bounding them: BuildKit's own GC runs only after builds, and
///    by default keeps cache mounts longest.
pub fn unbounded_cache_mounts(dfs: &[(Dockerfile, &Path)], bounded: bool) -> Vec<Finding> {
    if bounded {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (df, project) in dfs {
        let first = df
            .stages
            .iter()
            .flat_map(|s| &s.steps)
            .find_map(|s| match s {
                Step::Run { line, mounts, .. } if !mounts.is_empty() => Some(*line),
                _ => None,
            });
        if let Some(line) = first {
            out.push(finding(
                "unbounded-cache-mounts",
                Severity::Warning,
                Some(project),
                Some((&df.path, line)),
                "cache mounts here grow until someone prunes by hand: cachekeeper's [buildkit] budget is off and the engine has no BuildKit GC limit".into(),
                "keep [buildkit] enabled with a budget (the default), or set builder.gc (defaultKeepStorage) in the engine's daemon.json",
            ));
        }
    }
    out
}

/// 2. A target dir in a build context, not kept out by `.dockerignore`: sent to the engine on
///    every build. `sent` is what would be sent of it; `ignore_file` is where the line goes.
pub fn context_target(
    project: &Path,
    ignore_file: &Path,
    target: &Path,
    sent: u64,
) -> Option<Finding> {
    (sent > 0).then(|| {
        let severity = if sent >= 1 << 30 {
            Severity::Error
        } else {
            Severity::Warning
        };
        let mut f = finding(
            "context-target",
            severity,
            Some(project),
            None,
            format!(
                "the build context holds {} ({}), which .dockerignore does not exclude: it is sent to the engine on every build",
                target.display(),
                human_bytes(sent)
            ),
            "add the target dir to .dockerignore (a line `target`, or `**/target` for every crate's)",
        );
        f.file = Some(ignore_file.to_path_buf());
        f.bytes = Some(sent);
        f
    })
}

/// 5. The daemon watches one inotify watch per unit (and per build-script run dir).
pub fn inotify(needed: u64, limit: Option<u64>) -> Option<Finding> {
    let limit = limit?;
    (needed > limit).then(|| {
        finding(
            "inotify-limit",
            Severity::Warning,
            None,
            None,
            format!(
                "the daemon needs about {needed} inotify watches for the target dirs found (one per unit and build-script run, two per profile, one per target dir), but fs.inotify.max_user_watches is {limit}: units past the limit fall back to access times, and their target dirs are walked whole at every rescan (their changes are not seen)"
            ),
            "raise it: sysctl -w fs.inotify.max_user_watches=524288 (and in /etc/sysctl.d/ to keep it)",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::dockerfile::parse;
    use std::path::PathBuf;

    fn df(text: &str) -> Dockerfile {
        parse(&PathBuf::from("Dockerfile"), text).unwrap()
    }

    fn ids(f: &[Finding]) -> Vec<(String, Option<usize>)> {
        f.iter().map(|f| (f.id.clone(), f.line)).collect()
    }

    const DUMMY: &str = "FROM rust:1.80\nWORKDIR /app\nCOPY Cargo.toml Cargo.lock ./\nRUN mkdir src && echo 'fn main(){}' > src/main.rs && cargo build --release\nCOPY . .\nRUN cargo build --release\n";

    #[test]
    fn a_dummy_main_without_a_touch_is_flagged_and_the_fixes_are_not() {
        let p = Path::new("/p");
        let none = |_: &str| false;
        assert_eq!(
            ids(&dummy_main(&df(DUMMY), p, &none)),
            [("dummy-main".into(), Some(4))]
        );
        // The fixes: touch in the same RUN, or a RUN before the build, or cargo-chef.
        let fixed = DUMMY.replace(
            "RUN cargo build --release\n",
            "RUN touch src/main.rs && cargo build --release\n",
        );
        assert!(dummy_main(&df(&fixed), p, &none).is_empty());
        let fixed = DUMMY.replace("COPY . .\n", "COPY . .\nRUN find src -exec touch {} +\n");
        assert!(dummy_main(&df(&fixed), p, &none).is_empty());
        let chef = "FROM rust:1.80 AS chef\nRUN cargo install cargo-chef\nFROM chef AS plan\nCOPY . .\nRUN cargo chef prepare --recipe-path recipe.json\nFROM chef\nCOPY --from=plan /recipe.json .\nRUN cargo chef cook --release --recipe-path recipe.json\nCOPY . .\nRUN cargo build --release\n";
        assert!(dummy_main(&df(chef), p, &none).is_empty());
        // Separate steps, and a here-document placeholder, are the same mistake.
        let split = "FROM rust:1.80\nCOPY Cargo.toml .\nRUN cargo new --bin app\nRUN cargo build --release\nCOPY src src\nRUN cargo build --release\n";
        assert_eq!(
            ids(&dummy_main(&df(split), p, &none)),
            [("dummy-main".into(), Some(3))]
        );
        let heredoc = "FROM rust:1.80\nCOPY <<EOF src/main.rs\nfn main() {}\nEOF\nRUN cargo build\nCOPY . .\nRUN cargo build\n";
        assert_eq!(
            ids(&dummy_main(&df(heredoc), p, &none)),
            [("dummy-main".into(), Some(2))]
        );
        // A stage on another image starts afresh; a stage FROM the placeholder's stage inherits
        // its outputs, and the mistake.
        let stages = "FROM rust:1.80 AS deps\nRUN mkdir src && echo 'fn main(){}' > src/main.rs && cargo build\nFROM rust:1.80\nCOPY . .\nRUN cargo build\n";
        assert!(dummy_main(&df(stages), p, &none).is_empty());
        let inherited = stages.replace("FROM rust:1.80\n", "FROM deps AS build\n");
        assert_eq!(
            ids(&dummy_main(&df(&inherited), p, &none)),
            [("dummy-main".into(), Some(2))]
        );
        let fixed = inherited.replace("COPY . .\n", "COPY . .\nRUN touch src/main.rs\n");
        assert!(dummy_main(&df(&fixed), p, &none).is_empty());
        // A real library the placeholder lacked changes the binary's fingerprint: rebuilt.
        let lib = |f: &str| f == "src/lib.rs";
        assert!(dummy_main(&df(DUMMY), p, &lib).is_empty());
        // Unless the placeholder wrote a library too: then both are stale.
        let both = DUMMY.replace("> src/main.rs", "> src/main.rs && touch src/lib.rs");
        assert_eq!(ids(&dummy_main(&df(&both), p, &lib)).len(), 1);
    }

    #[test]
    fn cache_mounts_shared_across_bases_are_flagged_and_distinct_ids_are_not() {
        let slim =
            df("FROM rust:1.80-slim\nRUN --mount=type=cache,target=/app/target cargo build\n");
        let full =
            df("FROM rust:1.80-bookworm\nRUN --mount=type=cache,target=/app/target cargo build\n");
        let p = Path::new("/p");
        let found = shared_cache_mounts(&[(slim.clone(), p), (full, p)]);
        assert_eq!(found.len(), 2, "both places are named");
        assert!(
            found[0].why.contains("rust:1.80-slim") && found[0].why.contains("rust:1.80-bookworm")
        );
        let own = df(
            "ARG BASE=rust:1.80-bookworm\nFROM $BASE\nARG BASE\nRUN --mount=type=cache,id=target-$BASE,target=/app/target cargo build\n",
        );
        assert!(shared_cache_mounts(&[(slim.clone(), p), (own, p)]).is_empty());
        // Same base twice: sharing is the point of a cache.
        assert!(shared_cache_mounts(&[(slim.clone(), p), (slim, p)]).is_empty());
        // Not a cargo path: not ours to judge.
        let apt1 =
            df("FROM debian:12\nRUN --mount=type=cache,target=/var/cache/apt apt-get update\n");
        let apt2 =
            df("FROM ubuntu:24.04\nRUN --mount=type=cache,target=/var/cache/apt apt-get update\n");
        assert!(shared_cache_mounts(&[(apt1, p), (apt2, p)]).is_empty());
    }

    #[test]
    fn unbounded_cache_mounts_only_when_nothing_bounds_them() {
        let d = df("FROM rust:1.80\nRUN --mount=type=cache,target=/app/target cargo build\n");
        let p = Path::new("/p");
        assert_eq!(
            ids(&unbounded_cache_mounts(&[(d.clone(), p)], false)),
            [("unbounded-cache-mounts".into(), Some(2))]
        );
        assert!(unbounded_cache_mounts(&[(d, p)], true).is_empty());
        let none = df("FROM rust:1.80\nRUN cargo build\n");
        assert!(unbounded_cache_mounts(&[(none, p)], false).is_empty());
    }

    #[test]
    fn inotify_and_context_thresholds() {
        assert!(inotify(100, Some(8192)).is_none());
        assert_eq!(
            inotify(10_000, Some(8192)).unwrap().severity,
            Severity::Warning
        );
        assert!(inotify(10_000, None).is_none());
        let p = Path::new("/p");
        assert!(context_target(p, p, p, 0).is_none());
        assert_eq!(
            context_target(p, p, p, 5 << 20).unwrap().severity,
            Severity::Warning
        );
        assert_eq!(
            context_target(p, p, p, 2 << 30).unwrap().severity,
            Severity::Error
        );
    }
}
