//! Finding cargo target dirs below the configured roots (or the paths given on the command
//! line).
//!
//! A target dir is a directory holding cargo's `CACHEDIR.TAG`, wherever it sits: next to a
//! `Cargo.toml`, a shared `CARGO_TARGET_DIR`, a relocated `build-dir`. A root may also be a
//! target dir or lie inside one (`target/debug`): then that target dir is the one meant.
//!
//! Invariants:
//! - Symlinks are never followed while searching: a target dir reached only through a link
//!   is found through its real location or not at all.
//! - The search does not descend into a target dir (its insides are the inventory's job) nor
//!   into any other tagged cache dir, nor into excluded paths.

use std::collections::HashSet;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use globset::GlobSet;

use crate::os::safefs;

#[derive(Debug, Default)]
pub struct Found {
    /// Target dirs, each once, in the order found.
    pub targets: Vec<PathBuf>,
    /// Roots that do not exist.
    pub missing_roots: Vec<PathBuf>,
    /// Directories that could not be searched (with the reason).
    pub errors: Vec<String>,
}

/// Compiles exclude patterns (the config compiles its own when it is read).
#[cfg(test)]
fn exclude_set(patterns: &[String]) -> Result<GlobSet, globset::Error> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(globset::Glob::new(p)?);
    }
    b.build()
}

#[derive(PartialEq, Eq)]
enum Tag {
    Cargo,
    OtherCache,
    None,
}

fn tag_of(dir: &Path) -> Tag {
    let Ok(fd) = safefs::open_dir(dir) else {
        return Tag::None;
    };
    if safefs::is_cargo_tagged(fd.as_fd()) {
        Tag::Cargo
    } else if safefs::stat_at(fd.as_fd(), std::ffi::OsStr::new("CACHEDIR.TAG")).is_ok() {
        Tag::OtherCache
    } else {
        Tag::None
    }
}

/// Searches `roots` for target dirs.
#[must_use]
pub fn find(roots: &[PathBuf], exclude: &GlobSet, max_depth: usize) -> Found {
    let mut found = Found::default();
    let mut seen: HashSet<(u64, u64)> = HashSet::new();
    let mut add = |found: &mut Found, p: &Path| {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && seen.insert((m.dev(), m.ino()))
        {
            found.targets.push(p.to_path_buf());
        }
    };
    for root in roots {
        if std::fs::symlink_metadata(root).is_err() {
            found.missing_roots.push(root.clone());
            continue;
        }
        // A root inside a target dir (or the target dir itself) means that target dir.
        if let Some(t) = root.ancestors().find(|a| tag_of(a) == Tag::Cargo) {
            add(&mut found, t);
            continue;
        }
        let mut it = walkdir::WalkDir::new(root)
            .follow_links(false)
            .max_depth(max_depth)
            .into_iter()
            .filter_entry(|e| e.file_type().is_dir() && !exclude.is_match(e.path()));
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    found.errors.push(e.to_string());
                    continue;
                }
            };
            match tag_of(entry.path()) {
                Tag::Cargo => {
                    add(&mut found, entry.path());
                    it.skip_current_dir();
                }
                Tag::OtherCache => it.skip_current_dir(),
                Tag::None => {}
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join("CACHEDIR.TAG"),
            format!(
                "{}\n# This file is a cache directory tag created by cargo.\n",
                safefs::CACHEDIR_SIGNATURE
            ),
        )
        .unwrap();
    }

    #[test]
    fn finds_tagged_dirs_anywhere_but_not_through_links_or_excludes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        tag(&r.join("a/target"));
        tag(&r.join("b/c/shared-target"));
        tag(&r.join("a/target/nested")); // inside a target dir: not searched
        tag(&r.join("skip/node_modules/x/target"));
        std::fs::create_dir_all(r.join("untagged/target/debug")).unwrap();
        std::fs::create_dir_all(r.join("other-cache")).unwrap();
        std::fs::write(
            r.join("other-cache/CACHEDIR.TAG"),
            safefs::CACHEDIR_SIGNATURE,
        )
        .unwrap();
        tag(&r.join("other-cache/target"));
        let elsewhere = tempfile::tempdir().unwrap();
        tag(&elsewhere.path().join("target"));
        std::os::unix::fs::symlink(elsewhere.path(), r.join("link")).unwrap();

        let ex = exclude_set(&["**/node_modules".into()]).unwrap();
        let f = find(&[r.to_path_buf()], &ex, 10);
        let mut got: Vec<_> = f
            .targets
            .iter()
            .map(|p| p.strip_prefix(r).unwrap().to_path_buf())
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                PathBuf::from("a/target"),
                PathBuf::from("b/c/shared-target")
            ]
        );
    }

    #[test]
    fn a_root_inside_a_target_dir_means_that_dir() {
        let t = tempfile::tempdir().unwrap();
        tag(&t.path().join("ws/target"));
        std::fs::create_dir_all(t.path().join("ws/target/debug/deps")).unwrap();
        let ex = exclude_set(&[]).unwrap();
        let f = find(
            &[
                t.path().join("ws/target/debug"),
                t.path().join("ws"),
                t.path().join("gone"),
            ],
            &ex,
            10,
        );
        assert_eq!(f.targets, vec![t.path().join("ws/target")]);
        assert_eq!(f.missing_roots, vec![t.path().join("gone")]);
    }
}
