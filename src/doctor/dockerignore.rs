//! `.dockerignore` with the engine's rules: one pattern a line (`#` comments), relative to the
//! context root (a leading `/` means the same), `*` and `?` within a path segment, `**` across
//! segments, `!` re-including what an earlier line excluded; a path is excluded when it or one
//! of its parent directories matches, and the last matching line decides. The engine does not
//! enter an excluded directory unless an exception's text begins with that directory's path,
//! so `!**/x` never brings back what an excluded directory holds (checked against the engine
//! in tests/cli/doctor.rs).

use globset::{GlobBuilder, GlobMatcher};

pub struct Ignore {
    /// Each line: its glob, whether it is an exception, and its cleaned text.
    rules: Vec<(GlobMatcher, bool, String)>,
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

impl Ignore {
    #[must_use]
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exception, pattern) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let pattern = clean(pattern);
                if pattern.is_empty() {
                    return None;
                }
                let glob = GlobBuilder::new(&pattern)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .ok()?;
                Some((glob.compile_matcher(), exception, pattern))
            })
            .collect();
        Ignore { rules }
    }

    /// Whether `rel` (slash-separated, relative to the context root) stays out of the context.
    #[must_use]
    pub fn excludes(&self, rel: &str) -> bool {
        let rel = clean(rel);
        let mut excluded = false;
        for (glob, exception, _) in &self.rules {
            let mut hit = glob.is_match(&rel);
            // A parent dir that matches takes its contents along.
            let mut at = rel.as_str();
            while !hit && let Some((parent, _)) = at.rsplit_once('/') {
                hit = glob.is_match(parent);
                at = parent;
            }
            if hit {
                excluded = !exception;
            }
        }
        excluded
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
                .any(|(_, exception, text)| *exception && format!("{text}/").starts_with(&dir))
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
}
