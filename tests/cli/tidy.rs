//! What the compiler cannot check of ARCHITECTURE.md's layers. The crate boundaries are held by
//! cargo: `cachekeeper-core` depends on nothing of ours, `cachekeeper-sys` on the core only, so
//! an upward import between crates does not compile. Inside a crate, the order of its modules is
//! checked here, on whole files (tests included; grouped imports, `super::` chains and paths
//! into the other crates seen), with what the core may never name, the length of a file, and
//! the table in ARCHITECTURE.md, which must say what `LAYERS` says.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module, the crate it lives in (its source dir) and the modules it may use, lowest
/// layer first. A new edge is a design decision: add it here and in ARCHITECTURE.md.
const LAYERS: &[(&str, &str, &[&str])] = &[
    ("crates/core", "units", &[]),
    ("crates/core", "pathcodec", &[]),
    ("crates/core", "config", &["units"]),
    ("crates/core", "model", &["config", "pathcodec", "units"]),
    ("crates/core", "decide", &["config", "model", "units"]),
    ("crates/sys", "progress", &[]),
    ("crates/sys", "readfile", &[]),
    ("crates/sys", "configfile", &["config", "readfile"]),
    ("crates/sys", "os", &["model", "readfile"]),
    (
        "crates/sys",
        "docker",
        &["config", "model", "readfile", "units"],
    ),
    (
        "crates/sys",
        "measure",
        &["config", "docker", "model", "os", "progress", "readfile"],
    ),
    ("crates/sys", "act", &["docker", "model", "os", "units"]),
    (".", "report", &["config", "model", "pathcodec", "units"]),
    (
        ".",
        "metrics",
        &["config", "model", "pathcodec", "report", "units"],
    ),
    (".", "protocol", &["model", "report"]),
    (
        ".",
        "run",
        &[
            "act", "config", "decide", "docker", "measure", "model", "os", "progress", "report",
            "units",
        ],
    ),
    (
        ".",
        "doctor",
        &[
            "config", "measure", "model", "progress", "protocol", "readfile", "report", "units",
        ],
    ),
    (
        ".",
        "guard",
        &["config", "model", "progress", "report", "run"],
    ),
    (
        ".",
        "daemon",
        &[
            "act",
            "config",
            "configfile",
            "measure",
            "metrics",
            "model",
            "os",
            "pathcodec",
            "progress",
            "protocol",
            "readfile",
            "report",
            "run",
            "units",
        ],
    ),
    (
        ".",
        "cli",
        &[
            "act",
            "config",
            "configfile",
            "daemon",
            "decide",
            "doctor",
            "guard",
            "measure",
            "metrics",
            "model",
            "os",
            "pathcodec",
            "progress",
            "protocol",
            "readfile",
            "report",
            "run",
            "units",
        ],
    ),
];

/// The crates' roots, as the source names them.
const CRATES: &[(&str, &str)] = &[
    ("crates/core", "cachekeeper_core"),
    ("crates/sys", "cachekeeper_sys"),
];

/// What code may not name at all, tests included. The decision core has no I/O and no clock
/// (time is an input; its dependencies are checked too); views and metrics are plain data.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "crates/core",
        &[
            "std::fs",
            "std::env",
            "std::process",
            "std::thread",
            "std::io::std",
            "TcpStream",
            "UdpSocket",
            "SystemTime::now",
            "Instant::now",
            "Utc::now",
            "Local::now",
        ],
    ),
    ("report", &["std::fs", "tokio", "rustix"]),
    ("metrics", &["std::fs", "tokio", "rustix", "std::net"]),
];

/// What the core crate may never depend on, however indirectly.
const NOT_IN_CORE: &[&str] = &[
    "tokio", "rustix", "bollard", "hyper", "notify", "libc", "walkdir",
];

/// Lines a file may hold before its tests: past this, split it by what it does.
const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// A source file: its crate dir, its module path from the crate root (`["decide", "cargo"]`
/// for `decide/cargo/mod.rs`; empty for lib.rs and main.rs) and its text.
struct Source {
    krate: &'static str,
    path: PathBuf,
    modules: Vec<String>,
    text: String,
}

impl Source {
    fn top(&self) -> Option<&str> {
        self.modules.first().map(String::as_str)
    }
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    for krate in [".", "crates/core", "crates/sys"] {
        let src = root().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        files.sort();
        for path in files {
            let rel = path.strip_prefix(&src).unwrap();
            let mut modules: Vec<String> = rel
                .iter()
                .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(
                modules.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                modules.pop();
            }
            out.push(Source {
                krate,
                text: std::fs::read_to_string(&path).unwrap(),
                path: path.strip_prefix(root()).unwrap().to_path_buf(),
                modules,
            });
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

/// The tokens of Rust source that matter to paths: comments, strings and chars left out.
fn tokens(text: &str) -> Vec<Token> {
    let c: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let at = |k: usize| c.get(k).copied();
        match c[i] {
            '/' if at(i + 1) == Some('/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == Some('*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    i += if c[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            'r' if at(i + 1) == Some('"') || at(i + 1) == Some('#') => {
                // A raw string: r"..." or r#"..."#.
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(Token::Ident("r".into()));
                    i += 1;
                    continue;
                }
                j += 1;
                'raw: while j < c.len() {
                    if c[j] == '"' && (1..=hashes).all(|h| c.get(j + h) == Some(&'#')) {
                        j += 1 + hashes;
                        break 'raw;
                    }
                    j += 1;
                }
                i = j;
            }
            '\'' => {
                // A char ('a', '\n', '\u{1F600}') or a lifetime ('a).
                if at(i + 1) == Some('\\') {
                    i += 3;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == Some('\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            ':' if at(i + 1) == Some(':') => {
                out.push(Token::Sep);
                i += 2;
            }
            ch if ch.is_alphanumeric() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(Token::Ident(c[start..i].iter().collect()));
            }
            ch if ch.is_whitespace() => i += 1,
            ch => {
                out.push(Token::Punct(ch));
                i += 1;
            }
        }
    }
    out
}

/// The top-level modules of its own crate and of the crates below that the file at module
/// path `modules` names: `crate::x`, `cachekeeper_core::x`, `super::super::x` reaching the
/// crate root, and each name of a group (`crate::{x, y::z}`).
fn uses(text: &str, modules: &[String]) -> BTreeSet<String> {
    let t = tokens(text);
    let mut out = BTreeSet::new();
    // Inline modules (`mod tests { ... }`) deepen `super::`: the brace depths they opened at.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let ident = |k: usize| match t.get(k) {
        Some(Token::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let mut i = 0;
    while i < t.len() {
        match &t[i] {
            Token::Punct('{') => {
                depth += 1;
                if i >= 2 && ident(i - 2) == Some("mod") && ident(i - 1).is_some() {
                    inline.push(depth);
                }
            }
            Token::Punct('}') => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Ident(s) if t.get(i + 1) == Some(&Token::Sep) => {
                // A path that starts here (not `a::crate::`), and how many tokens its root takes.
                let starts = i == 0 || t[i - 1] != Token::Sep;
                let (at_root, root_len) = match s.as_str() {
                    "crate" | "cachekeeper_core" | "cachekeeper_sys" => (true, 1),
                    "super" => {
                        let mut ups = 0;
                        while ident(i + 2 * ups) == Some("super")
                            && t.get(i + 2 * ups + 1) == Some(&Token::Sep)
                        {
                            ups += 1;
                        }
                        let level = modules.len() + inline.len();
                        (level.saturating_sub(ups) == 0, 2 * ups - 1)
                    }
                    _ => (false, 1),
                };
                i += root_len - 1;
                if at_root && starts {
                    let next = i + 2;
                    if t.get(next) == Some(&Token::Punct('{')) {
                        // A group: the first name of each item at its top level.
                        let mut k = next + 1;
                        let mut level = 1;
                        let mut first = true;
                        while k < t.len() && level > 0 {
                            match &t[k] {
                                Token::Punct('{') => level += 1,
                                Token::Punct('}') => level -= 1,
                                Token::Punct(',') if level == 1 => first = true,
                                Token::Ident(name) if level == 1 && first => {
                                    if name != "self" {
                                        out.insert(name.clone());
                                    }
                                    first = false;
                                }
                                _ => {}
                            }
                            k += 1;
                        }
                    } else if let Some(name) = ident(next)
                        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    {
                        out.insert(name.to_string());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn layers() -> BTreeMap<&'static str, (&'static str, BTreeSet<&'static str>)> {
    LAYERS
        .iter()
        .map(|(krate, m, deps)| (*m, (*krate, deps.iter().copied().collect())))
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let layers = layers();
    let mut wrong = Vec::new();
    for s in sources() {
        let Some(module) = s.top() else { continue };
        let Some((krate, ok)) = layers.get(module) else {
            wrong.push(format!(
                "{}: module `{module}` is not in the layering table",
                s.path.display()
            ));
            continue;
        };
        if *krate != s.krate {
            wrong.push(format!(
                "{}: `{module}` is in {}, the table puts it in {krate}",
                s.path.display(),
                s.krate
            ));
        }
        for used in uses(&s.text, &s.modules) {
            if used != module && !ok.contains(used.as_str()) && layers.contains_key(used.as_str()) {
                wrong.push(format!("{}: `{module}` uses `{used}`", s.path.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against ARCHITECTURE.md's layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layers_have_no_cycle_and_match_the_crates() {
    // The table lists each module after everything it may use, so no cycle can be allowed; a
    // crate uses only its own modules and those of the crates listed before it.
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let order = [".", "crates/core", "crates/sys"];
    let rank = |k: &str| match k {
        "crates/core" => 0,
        "crates/sys" => 1,
        _ => 2,
    };
    for (krate, m, deps) in LAYERS {
        assert!(order.contains(krate));
        for d in *deps {
            let Some(dk) = seen.get(d) else {
                panic!("`{m}` may use `{d}`, listed after it");
            };
            assert!(
                rank(dk) <= rank(krate),
                "`{m}` ({krate}) may use `{d}` ({dk})"
            );
        }
        seen.insert(m, krate);
    }
    // Each crate's root declares exactly the modules the table gives it.
    for krate in order {
        let file = if krate == "." {
            "src/main.rs"
        } else {
            "src/lib.rs"
        };
        let text = std::fs::read_to_string(root().join(krate).join(file)).unwrap();
        let declared: BTreeSet<&str> = text
            .lines()
            .filter_map(|l| {
                let l = l.trim();
                l.strip_prefix("pub mod ")
                    .or_else(|| l.strip_prefix("mod "))
            })
            .map(|l| l.trim_end_matches(';'))
            .collect();
        let table: BTreeSet<&str> = seen
            .iter()
            .filter(|(_, k)| **k == krate)
            .map(|(m, _)| *m)
            .collect();
        assert_eq!(declared, table, "{krate}/{file} and the layering table");
    }
    // The crates' manifests hold the same order.
    for (krate, name) in CRATES {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        for (other, other_name) in CRATES {
            let dep = other_name.replace('_', "-");
            if rank(other) >= rank(krate) && other != krate {
                assert!(
                    !manifest.contains(&format!("{dep}."))
                        && !manifest.contains(&format!("{dep} =")),
                    "{name} depends on {dep}, above it"
                );
            }
        }
    }
}

/// The rows of ARCHITECTURE.md's crate-and-module table: `| crate | module | may use |`.
fn architecture_rows() -> Vec<(String, String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let section = text
        .split("## Layering")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Layering` section");
    let section = section.split("\n## ").next().unwrap();
    let strip = |s: &str| s.trim().trim_matches('`').trim().to_string();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.contains("may use"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split('|').collect();
            let [krate, modules, deps] = cells[..] else {
                return None;
            };
            let deps: BTreeSet<String> = deps
                .split(',')
                .map(strip)
                .filter(|d| !d.is_empty() && d != "nothing")
                .collect();
            Some(
                modules
                    .split(',')
                    .map(|m| (strip(krate), strip(m), deps.clone()))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

#[test]
fn architecture_md_says_what_the_table_says() {
    let crate_name = |k: &str| match k {
        "crates/core" => "cachekeeper-core",
        "crates/sys" => "cachekeeper-sys",
        _ => "cachekeeper",
    };
    let mut want: Vec<(String, String, BTreeSet<String>)> = LAYERS
        .iter()
        .map(|(k, m, deps)| {
            (
                crate_name(k).to_string(),
                (*m).to_string(),
                deps.iter().map(|d| (*d).to_string()).collect(),
            )
        })
        .collect();
    let mut got = architecture_rows();
    want.sort();
    got.sort();
    assert_eq!(
        got, want,
        "ARCHITECTURE.md's layering table is not this file's"
    );
}

#[test]
fn the_core_names_no_io_and_no_clock() {
    let mut wrong = Vec::new();
    for s in sources() {
        for (scope, words) in FORBIDDEN {
            if *scope != s.krate && Some(*scope) != s.top().filter(|_| s.krate == ".") {
                continue;
            }
            let code: String = tokens(&s.text)
                .iter()
                .map(|t| match t {
                    Token::Ident(x) => format!("{x} "),
                    Token::Sep => ":: ".into(),
                    Token::Punct(c) => format!("{c} "),
                })
                .collect::<String>()
                .replace(" :: ", "::");
            for w in *words {
                if code.contains(w) {
                    wrong.push(format!("{}: names `{w}`", s.path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_core_depends_on_no_runtime_os_binding_or_engine_client() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--offline",
            "--locked",
            "-p",
            "cachekeeper-core",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let names: BTreeSet<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains("cachekeeper-core") && names.contains("serde"),
        "{tree}"
    );
    let found: Vec<&&str> = NOT_IN_CORE.iter().filter(|n| names.contains(**n)).collect();
    assert!(
        found.is_empty(),
        "cachekeeper-core depends on {found:?}:\n{tree}"
    );
}

#[test]
fn no_file_grows_past_what_one_reader_holds() {
    let mut long = Vec::new();
    for s in sources() {
        if s.path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"))
        {
            continue;
        }
        let code = s
            .text
            .lines()
            .take_while(|l| l.trim() != "#[cfg(test)]")
            .count();
        if code > MAX_LINES {
            long.push(format!("{}: {code} lines", s.path.display()));
        }
    }
    assert!(
        long.is_empty(),
        "split these by what they do (at most {MAX_LINES} lines before the tests):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_every_form_of_import() {
    // The rules above pass on an empty graph too: make sure the reader finds what it must.
    let m = |path: &[&str]| path.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
    let code = "use crate::{model::{A, B}, self, units};\n\
                // crate::commented\n\
                let s = \"crate::in_a_string\"; let c = '\"'; let r = r#\"crate::raw\"#;\n\
                fn f<'a>(x: &'a str) { cachekeeper_core::decide::plan(); }\n\
                use super::super::os::disk;\n\
                use super::sibling;\n\
                mod tests { use super::super::super::measure; use super::super::near; }\n";
    let found = uses(code, &m(&["act", "sweep"]));
    assert_eq!(
        found,
        ["decide", "measure", "model", "os", "units"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let run = sources()
        .into_iter()
        .find(|s| s.path == Path::new("src/run/mod.rs"))
        .unwrap();
    assert!(uses(&run.text, &run.modules).contains("decide"));
}
