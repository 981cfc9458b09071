//! A Dockerfile as the checks need it: stages with their base image (ARGs substituted, stage
//! references followed), and in each the RUN commands (with here-documents and cache mounts)
//! and COPY sources, each with its line. Parsed by `parse-dockerfile` (line continuations,
//! here-documents, parser directives, `FROM ... AS`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parse_dockerfile::{Command, Flag, Instruction, Source};

/// A cache mount (`RUN --mount=type=cache,...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheMount {
    pub target: String,
    /// The id given, ARGs substituted; BuildKit's default is the target.
    pub id: Option<String>,
}

impl CacheMount {
    /// What BuildKit keys the cache by.
    #[must_use]
    pub fn key(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.target)
    }

    /// Whether it holds cargo's data: a target dir, the registry or git checkouts.
    #[must_use]
    pub fn is_cargo(&self) -> bool {
        let t = self.target.trim_end_matches('/');
        t.ends_with("/target")
            || t == "target"
            || t.contains("/target/")
            || t.contains("cargo/registry")
            || t.contains("cargo/git")
            || t.ends_with("/registry")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Run {
        line: usize,
        /// The shell text, with here-document bodies appended.
        text: String,
        mounts: Vec<CacheMount>,
    },
    Copy {
        line: usize,
        sources: Vec<String>,
        dest: String,
        /// `--from=...`: copied from a stage or image, not the context.
        from: Option<String>,
        /// A here-document's body, when the source is one.
        heredoc: Option<String>,
    },
}

impl Step {
    #[must_use]
    pub fn line(&self) -> usize {
        match self {
            Step::Run { line, .. } | Step::Copy { line, .. } => *line,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Stage {
    /// The image as written, ARGs substituted.
    pub image: String,
    /// The image at the root of it: a stage built on another stage has that stage's base.
    pub base: String,
    pub name: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug)]
pub struct Dockerfile {
    pub path: PathBuf,
    pub stages: Vec<Stage>,
}

/// Substitutes `$VAR`, `${VAR}`, `${VAR:-default}` from `args` (unknown ones stay as written).
#[must_use]
pub fn substitute(text: &str, args: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, default, used) = if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => {
                    let inner = &body[..end];
                    let (n, d) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (inner, None),
                    };
                    (n, d, end + 2)
                }
                None => ("", None, 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], None, n)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match args
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .or(default)
        {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[i..=i + used]),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    out
}

/// `NAME=value` or `NAME` of an ARG instruction.
fn arg_of(text: &str) -> (String, Option<String>) {
    let text = text.trim();
    match text.split_once('=') {
        Some((n, v)) => (
            n.trim().to_string(),
            Some(v.trim().trim_matches('"').trim_matches('\'').to_string()),
        ),
        None => (text.to_string(), None),
    }
}

fn cache_mount(value: &str, args: &HashMap<String, String>) -> Option<CacheMount> {
    let mut kind = "bind";
    let (mut target, mut id) = (None, None);
    for part in value.split(',') {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        match k.trim() {
            "type" => kind = v.trim(),
            "target" | "dst" | "destination" => target = Some(substitute(v.trim(), args)),
            "id" => id = Some(substitute(v.trim(), args)),
            _ => {}
        }
    }
    (kind == "cache").then(|| CacheMount {
        target: target.unwrap_or_default(),
        id,
    })
}

/// Line (from 1) of byte offset `at` in `text`.
/// Line numbers of byte offsets, found in the offsets of the line starts (computed once: a
/// Dockerfile of 50,000 instructions took minutes when each counted the lines before it).
struct Lines(Vec<usize>);

impl Lines {
    fn of(text: &str) -> Lines {
        Lines(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }

    /// The 1-based line of byte offset `at`.
    fn line(&self, at: usize) -> usize {
        match self.0.binary_search(&at) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// Parses `text` (the contents of `path`).
fn copy_step(line: usize, options: &[Flag<'_>], src: &[Source<'_>], dest: &str) -> Step {
    let mut sources = Vec::new();
    let mut heredoc = None;
    for s in src {
        match s {
            Source::Path(p) => sources.push(p.value.to_string()),
            Source::HereDoc(h) => heredoc = Some(h.value.to_string()),
            _ => {}
        }
    }
    Step::Copy {
        line,
        sources,
        dest: dest.to_string(),
        from: options
            .iter()
            .find(|f| f.name.value == "from")
            .and_then(|f| f.value.as_ref().map(|v| v.value.to_string())),
        heredoc,
    }
}

pub fn parse(path: &Path, text: &str) -> Result<Dockerfile, String> {
    let parsed = parse_dockerfile::parse(text).map_err(|e| e.to_string())?;
    let lines = Lines::of(text);
    let line_of = |_: &str, at: usize| lines.line(at);
    let mut global: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut stage_args: HashMap<String, String> = HashMap::new();
    for ins in &parsed.instructions {
        match ins {
            Instruction::Arg(a) => {
                let (name, value) = arg_of(&a.arguments.value);
                if stages.is_empty() {
                    global.insert(name, value.unwrap_or_default());
                } else {
                    // A stage's ARG without a value takes the global default.
                    let v = value
                        .or_else(|| global.get(&name).cloned())
                        .unwrap_or_default();
                    stage_args.insert(name, v);
                }
            }
            Instruction::From(f) => {
                let image = substitute(&f.image.value, &global);
                let base = stages
                    .iter()
                    .find(|s| {
                        s.name
                            .as_deref()
                            .is_some_and(|n| n.eq_ignore_ascii_case(&image))
                    })
                    .map_or_else(|| image.clone(), |s| s.base.clone());
                stages.push(Stage {
                    name: f.as_.as_ref().map(|(_, n)| n.value.to_string()),
                    image,
                    base,
                    steps: Vec::new(),
                });
                stage_args = HashMap::new();
            }
            Instruction::Run(r) => {
                let Some(stage) = stages.last_mut() else {
                    continue;
                };
                let mut args = global.clone();
                args.extend(stage_args.clone());
                let mut text_of = match &r.arguments {
                    Command::Shell(s) => s.value.to_string(),
                    Command::Exec(e) => e
                        .value
                        .iter()
                        .map(|w| w.value.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => String::new(),
                };
                for h in &r.here_docs {
                    text_of.push('\n');
                    text_of.push_str(&h.value);
                }
                let mounts = r
                    .options
                    .iter()
                    .filter(|f| f.name.value == "mount")
                    .filter_map(|f| cache_mount(&f.value.as_ref()?.value, &args))
                    .collect();
                stage.steps.push(Step::Run {
                    line: line_of(text, r.run.span.start),
                    text: text_of,
                    mounts,
                });
            }
            // ADD of local paths puts the context's files in place as COPY does.
            Instruction::Copy(c) => {
                if let Some(stage) = stages.last_mut() {
                    let at = line_of(text, c.copy.span.start);
                    stage
                        .steps
                        .push(copy_step(at, &c.options, &c.src, &c.dest.value));
                }
            }
            Instruction::Add(a) => {
                if let Some(stage) = stages.last_mut() {
                    let at = line_of(text, a.add.span.start);
                    stage
                        .steps
                        .push(copy_step(at, &a.options, &a.src, &a.dest.value));
                }
            }
            _ => {}
        }
    }
    Ok(Dockerfile {
        path: path.to_path_buf(),
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_bases_args_mounts_and_lines() {
        let text = "# syntax=docker/dockerfile:1\n\
            ARG RUST=1.80\n\
            FROM rust:${RUST}-slim AS build\n\
            ARG RUST\n\
            RUN --mount=type=cache,id=reg-$RUST,target=/usr/local/cargo/registry \\\n    \
            --mount=type=cache,target=/app/target \\\n    \
            cargo build --release\n\
            RUN <<EOF\n\
            echo 'fn main() {}' > src/main.rs\n\
            EOF\n\
            FROM build AS test\n\
            COPY --from=build /app/target/release/x /x\n\
            FROM debian:bookworm\n\
            COPY . /src\n";
        let d = parse(Path::new("Dockerfile"), text).unwrap();
        assert_eq!(d.stages.len(), 3);
        assert_eq!(d.stages[0].image, "rust:1.80-slim");
        assert_eq!(d.stages[1].base, "rust:1.80-slim", "a stage on a stage");
        assert_eq!(d.stages[2].base, "debian:bookworm");
        let Step::Run { line, mounts, .. } = &d.stages[0].steps[0] else {
            panic!()
        };
        assert_eq!(*line, 5);
        assert_eq!(mounts[0].key(), "reg-1.80");
        assert_eq!(mounts[1].key(), "/app/target");
        assert!(mounts.iter().all(CacheMount::is_cargo));
        let Step::Run { text, line, .. } = &d.stages[0].steps[1] else {
            panic!()
        };
        assert!(text.contains("fn main()"), "{text}");
        assert_eq!(*line, 8);
        let Step::Copy { from, .. } = &d.stages[1].steps[0] else {
            panic!()
        };
        assert_eq!(from.as_deref(), Some("build"));
    }

    #[test]
    fn substitution_forms() {
        let args: HashMap<String, String> = [("A".to_string(), "x".to_string())].into();
        assert_eq!(substitute("$A-${A}-${B:-d}-$B-$", &args), "x-x-d-$B-$");
    }
}
