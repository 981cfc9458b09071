//! What cargo's and rustc's file names say: unit hashes, fingerprint targets, incremental
//! crate dirs and session timestamps. Pure functions over names.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Parses exactly 16 lowercase hex digits (cargo's `-C metadata` hash of a unit).
#[must_use]
pub fn hex16(s: &str) -> Option<u64> {
    if s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        u64::from_str_radix(s, 16).ok()
    } else {
        None
    }
}

/// `<pkg>-<hash>` (legacy fingerprint and build dirs): the package name and the hash.
#[must_use]
pub fn pkg_and_hash(name: &str) -> Option<(&str, u64)> {
    let (pkg, hash) = name.rsplit_once('-')?;
    if pkg.is_empty() {
        return None;
    }
    Some((pkg, hex16(hash)?))
}

/// The unit hash in a `deps/` or `examples/` file name: `libfoo-<hash>.rlib`,
/// `foo-<hash>` (an executable), `foo-<hash>.d`, `foo-<hash>.foo.<cgu>.rcgu.o` (a temporary of an
/// interrupted build). Crate names have no `-`, so the hash follows the first one.
#[must_use]
pub fn artifact_hash(name: &str) -> Option<u64> {
    let (_, rest) = name.split_once('-')?;
    let hash = rest.get(..16)?;
    match rest.as_bytes().get(16) {
        None | Some(b'.') => hex16(hash),
        Some(_) => None,
    }
}

/// A fingerprint hash file name, `{flavor}{kind}-{target}` (cargo's
/// `fingerprint_file_path`): the target name, if `name` is one.
#[must_use]
pub fn fingerprint_target(name: &str) -> Option<&str> {
    if name.ends_with(".json")
        || name.starts_with("dep-")
        || name.starts_with("output-")
        || name == "invoked.timestamp"
    {
        return None;
    }
    let rest = ["test-", "doc-", "run-"]
        .iter()
        .find_map(|f| name.strip_prefix(f))
        .unwrap_or(name);
    [
        "integration-test-",
        "build-script-",
        "example-",
        "bench-",
        "lib-",
        "bin-",
    ]
    .iter()
    .find_map(|k| rest.strip_prefix(k))
    .filter(|t| !t.is_empty())
}

/// The crate name rustc uses for a target (dashes become underscores).
#[must_use]
pub fn crate_name(target: &str) -> String {
    target.replace('-', "_")
}

/// Whether a fingerprint file belongs to a build script (compiling or running it).
#[must_use]
pub fn is_build_script_file(name: &str) -> bool {
    name.starts_with("build-script-") || name.starts_with("run-build-script-")
}

/// Whether cargo reads this file of a unit's fingerprint dir on every build that involves the
/// unit, and cachekeeper never opens it: the dep-info (`dep-lib-serde`), which cargo parses to
/// check the unit's sources even when nothing recompiles (registry crates included, checked
/// with strace on cargo 1.95). Its opens and access time are the unit's last-use signal.
///
/// The other files cargo reads there (the hash file) cachekeeper reads too, so their opens
/// and access times cannot tell a build from cachekeeper and never count as a use.
#[must_use]
pub fn is_fingerprint_use_signal(name: &str) -> bool {
    name.starts_with("dep-")
}

/// Whether cargo reads this file of a build-script run dir (`build/<pkg>-<H>/` in the legacy
/// layout, `build/<pkg>/<H>/run/` in the new one) on every build that involves the run, and
/// cachekeeper never opens it. A build script's run has no dep-info: these are its signal.
#[must_use]
pub fn is_run_use_signal(name: &str) -> bool {
    matches!(name, "output" | "root-output" | "stdout")
}

/// Whether cargo never opens this file of a unit's dir just to read it: it writes it (the
/// fingerprint's JSON, which it reads only for a unit it then rewrites; `invoked.timestamp`;
/// a run's `stderr`). A read-only open of one is a reader's (`cp -a`, `tar`, an indexer), never a
/// build's: see `daemon::builds`.
#[must_use]
pub fn is_read_by_readers_only(name: &str, run_dir: bool) -> bool {
    if run_dir {
        matches!(name, "invoked.timestamp" | "stderr")
    } else {
        name == "invoked.timestamp" || name.ends_with(".json")
    }
}

/// An incremental crate dir, `<crate_name>-<base36 stable crate id>`: the crate name.
#[must_use]
pub fn incremental_crate(name: &str) -> Option<&str> {
    let (krate, id) = name.rsplit_once('-')?;
    let ok = !krate.is_empty()
        && krate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(krate)
}

/// The creation time in a session dir or lock name, `s-<base36 µs since epoch>-...`.
#[must_use]
pub fn session_time(name: &str) -> Option<SystemTime> {
    let rest = name.strip_prefix("s-")?;
    let ts = rest.split('-').next()?;
    let micros = u64::from_str_radix(ts, 36).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

/// Decodes a fingerprint hash file: 16 hex digits of the hash's little-endian bytes.
#[must_use]
pub fn fingerprint_value(content: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(content).ok()?.trim();
    if text.len() != 16 {
        return None;
    }
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(u64::from_le_bytes(bytes))
}

/// What a file of a unit says of its last use: its access time if it is a file cargo reads on
/// every build and cachekeeper never opens (the dep-info in the fingerprint dir, a build-script
/// run's `output`), else only its write time. So no read by cachekeeper, whoever runs it and
/// whatever the mount's atime options, ever makes a unit look used. `run_dir` says which dir
/// the file is in.
#[must_use]
pub fn use_time(name: &str, atime: SystemTime, mtime: SystemTime, run_dir: bool) -> SystemTime {
    let signal = if run_dir {
        is_run_use_signal(name)
    } else {
        is_fingerprint_use_signal(name)
    };
    if signal { atime.max(mtime) } else { mtime }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_hashes_from_cargo_names() {
        assert_eq!(
            pkg_and_hash("serde-json-054e37a5e5b0dc4b"),
            Some(("serde-json", 0x054e_37a5_e5b0_dc4b))
        );
        assert_eq!(pkg_and_hash("foo-054E37A5E5B0DC4B"), None);
        assert_eq!(pkg_and_hash("-054e37a5e5b0dc4b"), None);
        let h = Some(0x054e_37a5_e5b0_dc4b);
        assert_eq!(artifact_hash("libdep-054e37a5e5b0dc4b.rlib"), h);
        assert_eq!(artifact_hash("app-054e37a5e5b0dc4b"), h);
        assert_eq!(artifact_hash("app-054e37a5e5b0dc4b.d"), h);
        assert_eq!(
            artifact_hash("app-054e37a5e5b0dc4b.app.2c3d-cgu.0.rcgu.o"),
            h
        );
        assert_eq!(artifact_hash("libfoo.so"), None);
        assert_eq!(artifact_hash("app-054e37a5e5b0dc4bx"), None);
    }

    #[test]
    fn fingerprint_file_names() {
        assert_eq!(fingerprint_target("lib-dep"), Some("dep"));
        assert_eq!(fingerprint_target("bin-my-app"), Some("my-app"));
        assert_eq!(fingerprint_target("test-lib-dep"), Some("dep"));
        assert_eq!(fingerprint_target("test-integration-test-it"), Some("it"));
        assert_eq!(
            fingerprint_target("run-build-script-build-script-build"),
            Some("build-script-build")
        );
        assert_eq!(
            fingerprint_target("build-script-build-script-build"),
            Some("build-script-build")
        );
        assert_eq!(fingerprint_target("lib-dep.json"), None);
        assert_eq!(fingerprint_target("dep-lib-dep"), None);
        assert_eq!(fingerprint_target("output-lib-dep"), None);
        assert_eq!(fingerprint_target("invoked.timestamp"), None);
        assert_eq!(crate_name("build-script-build"), "build_script_build");
    }

    #[test]
    fn incremental_names() {
        assert_eq!(incremental_crate("app-2xv58ml9w4460"), Some("app"));
        assert_eq!(
            incremental_crate("build_script_build-28hxtifwj6vwu"),
            Some("build_script_build")
        );
        assert_eq!(incremental_crate("nodash"), None);
        // Seen on this machine: s-hog91lwlry-... was created at 2026-11-24 05:50:16.067902 UTC.
        let t = session_time("s-hog91lwlry-0erxepb-d6bg3tp9bzd8n18w72enuavc4").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap(),
            Duration::from_micros(1_795_499_416_067_902)
        );
        assert_eq!(session_time("s-hog91lwlry-0erxepb.lock"), Some(t));
        assert_eq!(session_time("x-1"), None);
    }

    #[test]
    fn fingerprint_values_are_little_endian_hex() {
        // Seen on this machine: lib-dep held b1dc00aca7a87f5f and the dependent's JSON
        // named the dependency by the decimal 6881404193744149681.
        assert_eq!(
            fingerprint_value(b"b1dc00aca7a87f5f"),
            Some(6_881_404_193_744_149_681)
        );
        assert_eq!(fingerprint_value(b"b1dc00aca7a87f5"), None);
        assert_eq!(fingerprint_value(b"zzdc00aca7a87f5f"), None);
    }
}
