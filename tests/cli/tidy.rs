//! The layering rules of ARCHITECTURE.md, checked on the source: which top-level module may
//! use which, what the pure core may not touch, and how long a file may grow. A new edge is a
//! design decision: add it to `ALLOWED` (and to ARCHITECTURE.md) on purpose, or move the code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and the top-level modules it may use, lowest layer first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("units", &[]),
    ("pathcodec", &[]),
    ("progress", &[]),
    ("readfile", &[]),
    ("config", &["readfile", "units"]),
    ("model", &["config", "pathcodec", "units"]),
    ("os", &["model", "readfile"]),
    ("docker", &["config", "model", "readfile", "units"]),
    ("decide", &["config", "model", "units"]),
    (
        "measure",
        &["config", "docker", "model", "os", "progress", "readfile"],
    ),
    ("act", &["docker", "model", "os", "units"]),
    ("report", &["config", "model", "pathcodec", "units"]),
    (
        "run",
        &["act", "config", "decide", "measure", "model", "progress"],
    ),
    (
        "metrics",
        &["config", "model", "pathcodec", "report", "units"],
    ),
    ("protocol", &["report"]),
    (
        "doctor",
        &[
            "config", "measure", "model", "progress", "protocol", "readfile", "report", "units",
        ],
    ),
    (
        "guard",
        &[
            "act",
            "config",
            "decide",
            "measure",
            "model",
            "os",
            "pathcodec",
            "progress",
            "report",
            "units",
        ],
    ),
    (
        "daemon",
        &[
            "act",
            "config",
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
        "cli",
        &[
            "act",
            "config",
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
            "report",
            "run",
            "units",
        ],
    ),
];

/// What a module may not name at all, outside its tests: the decision core has no I/O and no
/// clock (time is an input), and plain data does no I/O.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "decide",
        &[
            "std::fs",
            "std::env",
            "std::process",
            "std::thread",
            "std::net",
            "tokio",
            "SystemTime::now",
            "Instant::now",
            "rustix",
            "bollard",
        ],
    ),
    ("model", &["std::fs", "tokio", "SystemTime::now", "rustix"]),
    ("report", &["std::fs", "tokio", "rustix"]),
    (
        "metrics",
        &["std::fs", "tokio", "rustix", "sysinfo", "std::net"],
    ),
    ("config", &["tokio", "SystemTime::now"]),
];

/// Lines of code a file may hold before its tests: past this, split it by what it does.
const MAX_LINES: usize = 600;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
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

/// Every source file with its top-level module (`None` for lib.rs and main.rs) and its code
/// before the tests, comments left out.
fn sources() -> Vec<(PathBuf, Option<String>, String)> {
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        // `#[cfg(test)] mod tests;` in a file of its own
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&root).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let module = (module != "lib" && module != "main").then_some(module);
            let text = std::fs::read_to_string(&p).unwrap();
            let code: String = text
                .lines()
                .take_while(|l| l.trim() != "#[cfg(test)]")
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(|l| format!("{l}\n"))
                .collect();
            (rel.to_path_buf(), module, code)
        })
        .collect()
}

/// The top-level modules `code` names as `crate::x`.
fn uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `cachekeeper::`, `my_crate::`
        }
        let name: String = code[i + 7..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect()
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let allowed = allowed();
    let mut wrong = Vec::new();
    for (file, module, code) in sources() {
        let Some(module) = module else { continue };
        let Some(ok) = allowed.get(module.as_str()) else {
            wrong.push(format!(
                "{}: module `{module}` is not in the layering table",
                file.display()
            ));
            continue;
        };
        for used in uses(&code) {
            if used != module && !ok.contains(used.as_str()) {
                wrong.push(format!("{}: `{module}` uses `{used}`", file.display()));
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
fn the_layers_have_no_cycle_and_match_lib_rs() {
    // The table lists each module after everything it may use: so no cycle can be allowed.
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (m, deps) in ALLOWED {
        for d in *deps {
            assert!(seen.contains(d), "`{m}` may use `{d}`, listed after it");
        }
        seen.insert(m);
    }
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';'))
        .collect();
    assert_eq!(
        declared, seen,
        "lib.rs and the layering table list other modules"
    );
}

#[test]
fn the_decision_core_does_no_io_and_reads_no_clock() {
    let mut wrong = Vec::new();
    for (file, module, code) in sources() {
        let Some(module) = module else { continue };
        for (m, words) in FORBIDDEN {
            if *m != module {
                continue;
            }
            for w in *words {
                if code.contains(w) {
                    wrong.push(format!("{}: `{module}` names `{w}`", file.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_file_grows_past_what_one_reader_holds() {
    let mut long = Vec::new();
    for (file, _, _) in sources() {
        let text = std::fs::read_to_string(src().join(&file)).unwrap();
        let code = text
            .lines()
            .take_while(|l| l.trim() != "#[cfg(test)]")
            .count();
        if code > MAX_LINES {
            long.push(format!("{}: {code} lines", file.display()));
        }
    }
    assert!(
        long.is_empty(),
        "split these by what they do (at most {MAX_LINES} lines before the tests):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_checker_sees_an_import() {
    // The rules above pass on an empty graph too: make sure the parser finds what it must.
    let found =
        uses("use crate::model::{A, B};\nlet x = crate::units::age(t);\ncachekeeper::cli::main()");
    assert_eq!(
        found,
        ["model", "units"].into_iter().map(String::from).collect()
    );
    let (_, _, code) = sources()
        .into_iter()
        .find(|(f, _, _)| f == Path::new("run.rs"))
        .unwrap();
    assert!(uses(&code).contains("decide"));
}
