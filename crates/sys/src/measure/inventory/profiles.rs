//! A target dir's profiles: found by what cargo creates in each, their build locks probed, and
//! the `rustc -vV` cargo cached beside them.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::os::locks;
use crate::os::safefs;
use cachekeeper_core::model::ProfileState;

pub(super) fn probe_lock(root: std::os::fd::BorrowedFd<'_>, rel: &Path) -> ProfileState {
    match safefs::open_rel_dir(root, rel).and_then(|fd| locks::try_lock(fd.as_fd())) {
        Ok(locks::Outcome::Locked(_)) => ProfileState::Idle,
        Ok(locks::Outcome::Busy) => ProfileState::Busy,
        Ok(locks::Outcome::NoLockFile) | Err(_) => ProfileState::Unlockable,
    }
}

/// Profile dirs are recognised by what cargo creates in each: a lock file or `.fingerprint`.
/// They sit at the top (`debug`, `release`, custom profiles) or one level down
/// (`<triple>/<profile>`, a nested target such as rust-analyzer's).
pub(super) fn find_profiles(root: std::os::fd::BorrowedFd<'_>) -> Vec<PathBuf> {
    fn is_profile(dir: std::os::fd::BorrowedFd<'_>) -> bool {
        [
            ".cargo-lock",
            ".cargo-build-lock",
            ".cargo-artifact-lock",
            ".fingerprint",
        ]
        .iter()
        .any(|m| safefs::stat_at(dir, OsStr::new(m)).is_ok())
    }
    fn subdirs(dir: std::os::fd::BorrowedFd<'_>) -> Vec<(PathBuf, std::os::fd::OwnedFd)> {
        let Ok(list) = rustix::fs::Dir::read_from(dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in list.flatten() {
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            if let Ok(fd) = safefs::open_dir_at(dir, name) {
                use std::os::unix::ffi::OsStrExt;
                out.push((PathBuf::from(OsStr::from_bytes(name.to_bytes())), fd));
            }
        }
        out
    }
    let mut found = Vec::new();
    for (name, fd) in subdirs(root) {
        if is_profile(fd.as_fd()) {
            found.push(name);
            continue;
        }
        for (sub, sfd) in subdirs(fd.as_fd()) {
            if is_profile(sfd.as_fd()) {
                found.push(name.join(sub));
            }
        }
    }
    found.sort();
    found
}

/// The `rustc -vV` output cargo cached in `.rustc_info.json`, to verify our rustc hashing.
pub(super) fn read_rustc_vv(root: std::os::fd::BorrowedFd<'_>) -> Option<String> {
    let bytes = safefs::read_small_at(root, OsStr::new(".rustc_info.json"), 1 << 20).ok()?;
    let info: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    info.get("outputs")?
        .as_object()?
        .values()
        .filter_map(|o| o.get("stdout")?.as_str())
        .find(|s| s.starts_with("rustc ") && s.contains("\nrelease: "))
        .map(str::to_string)
}
