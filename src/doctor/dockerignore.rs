//! `.dockerignore` with the engine's rules: one pattern a line (`#` comments), relative to the
//! context root (a leading `/` means the same), `*` and `?` within a path segment, `**` across
//! segments, `!` re-including what an earlier line excluded; a path is excluded when it or one
//! of its parent directories matches, and the last matching line decides. The engine does not
//! enter an excluded directory unless an exception's text begins with that directory's path,
//! so `!**/x` never brings back what an excluded directory holds (checked against the engine
//! in tests/cli/doctor.rs).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// The deepest nesting of `{...}` alternatives accepted in one pattern (globset panics on some
/// deep ones; real ignore files nest one or two).
const MAX_NESTING: usize = 8;
/// The longest pattern accepted.
const MAX_PATTERN: usize = 4096;

pub struct Ignore {
    /// Every line's glob, compiled once into one set (20,000 lines are matched as fast as one).
    set: GlobSet,
    /// Per line of `set`: whether it is an exception (`!`), and its cleaned text.
    rules: Vec<(bool, String)>,
    /// Lines that are not valid patterns (they exclude nothing), with why.
    pub errors: Vec<String>,
}

/// `a/b/../c/` → `a/c`, as Go's `filepath.Clean` does to each pattern.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// How deep `{...}` alternatives nest in `pattern` (escapes skipped).
fn nesting(pattern: &str) -> usize {
    let (mut depth, mut max, mut escaped) = (0usize, 0usize, false);
    for c in pattern.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' => {
                depth += 1;
                max = max.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Compiles one pattern, or says why it cannot be: never panics, whatever the line holds.
fn glob(pattern: &str) -> Result<globset::Glob, String> {
    if pattern.len() > MAX_PATTERN {
        return Err(format!("longer than {MAX_PATTERN} bytes"));
    }
    if nesting(pattern) > MAX_NESTING {
        return Err(format!("{{...}} nested deeper than {MAX_NESTING}"));
    }
    let built = std::panic::catch_unwind(|| {
        GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
    });
    match built {
        Ok(Ok(g)) => Ok(g),
        Ok(Err(e)) => Err(e.kind().to_string()),
        Err(_) => Err("the pattern could not be compiled".into()),
    }
}

impl Ignore {
    #[must_use]
    pub fn parse(text: &str) -> Ignore {
        let mut builder = GlobSetBuilder::new();
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        for (n, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            match glob(&pattern) {
                Ok(g) => {
                    builder.add(g);
                    rules.push((exception, pattern));
                }
                Err(why) => errors.push(format!(
                    "line {}: {}: {why}",
                    n + 1,
                    cachekeeper_core::units::quoted(&pattern)
                )),
            }
        }
        let set = match std::panic::catch_unwind(move || builder.build()) {
            Ok(Ok(set)) => set,
            Ok(Err(e)) => {
                errors.push(format!("the patterns could not be compiled together: {e}"));
                rules.clear();
                GlobSet::empty()
            }
            Err(_) => {
                errors.push("the patterns could not be compiled together".into());
                rules.clear();
                GlobSet::empty()
            }
        };
        Ignore { set, rules, errors }
    }

    /// The last line that matches `rel` or one of its parent dirs.
    fn last_match(&self, rel: &str) -> Option<usize> {
        let mut last = self.set.matches(rel).into_iter().max();
        let mut at = rel;
        while let Some((parent, _)) = at.rsplit_once('/') {
            last = last.max(self.set.matches(parent).into_iter().max());
            at = parent;
        }
        last
    }

    /// Whether `rel` (slash-separated, relative to the context root) stays out of the context:
    /// the last line matching it, or a parent dir that takes it along, decides.
    #[must_use]
    pub fn excludes(&self, rel: &str) -> bool {
        self.last_match(&clean(rel))
            .is_some_and(|i| !self.rules[i].0)
    }

    /// Whether the engine leaves the directory `rel` out without looking inside: it is
    /// excluded, and no exception's text starts with its path.
    #[must_use]
    pub fn skips_dir(&self, rel: &str) -> bool {
        let dir = format!("{}/", clean(rel));
        self.excludes(rel)
            && !self
                .rules
                .iter()
                .any(|(exception, text)| *exception && format!("{text}/").starts_with(&dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_rules() {
        let i = Ignore::parse("# build output\ntarget\n");
        assert!(i.excludes("target") && i.excludes("target/debug/app"));
        assert!(!i.excludes("crates/x/target/debug/app"), "only at the root");
        let i = Ignore::parse("**/target\n");
        assert!(i.excludes("target/a") && i.excludes("crates/x/target/a"));
        let i = Ignore::parse("/target/\n");
        assert!(
            i.excludes("target/a"),
            "a leading and a trailing slash change nothing"
        );
        let i = Ignore::parse("*/target\n");
        assert!(i.excludes("x/target/a") && !i.excludes("target/a") && !i.excludes("a/b/target/c"));
        let i = Ignore::parse("target\n!target/release/app\n");
        assert!(i.excludes("target/debug/app"));
        assert!(
            !i.excludes("target/release/app"),
            "the exception, last, wins"
        );
        assert!(!i.skips_dir("target") && !i.skips_dir("target/release"));
        assert!(i.skips_dir("target/debug"));
        let i = Ignore::parse("**/target\n!**/target/debug/build\n");
        assert!(
            !i.excludes("target/debug/build/x"),
            "as a rule it re-includes"
        );
        assert!(
            i.skips_dir("target"),
            "but the engine never looks inside target"
        );
        let i = Ignore::parse("target*\n");
        assert!(i.excludes("target-old/x") && i.excludes("target/x"));
        assert!(!Ignore::parse("").excludes("target/x"));
    }

    /// Hardening issue: a 601-byte nested pattern panicked inside globset, and 20,000 lines
    /// took minutes per file. Bad lines are errors, never panics; the set is compiled once.
    #[test]
    fn hostile_ignore_files_are_errors_not_panics_and_many_lines_are_fast() {
        let nested = format!("{}b{}", "{a,".repeat(150), "}".repeat(150));
        let i = Ignore::parse(&format!("target\n{nested}\n[z-a]\n"));
        assert!(i.excludes("target/x"));
        assert_eq!(i.errors.len(), 2, "{:?}", i.errors);
        assert!(i.errors[0].starts_with("line 2:"), "{:?}", i.errors);
        let many: String = (0..20_000).map(|n| format!("dir{n}/file{n}\n")).collect();
        let i = Ignore::parse(&format!("{many}target\n"));
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert!(i.excludes("target/debug/app") && !i.excludes("src/main.rs"));
        assert!(i.excludes("dir19999/file19999"));
    }
}
