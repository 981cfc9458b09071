//! Units built by a toolchain that is no longer installed can never be reused: they go,
//! and nothing built by an installed toolchain does.

use crate::support::{Fixture, Krate, fingerprint_dirs, removed_units};
use std::path::{Path, PathBuf};

fn rustup_home() -> PathBuf {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".rustup"))
}

/// A RUSTUP_HOME in which only the stable toolchain is installed.
fn only_stable(f: &Fixture) -> PathBuf {
    let home = f.dir.path().join("rustup-home");
    std::fs::create_dir_all(home.join("toolchains")).unwrap();
    for t in std::fs::read_dir(rustup_home().join("toolchains"))
        .unwrap()
        .flatten()
    {
        let name = t.file_name().to_string_lossy().into_owned();
        if name.starts_with("stable-") {
            std::os::unix::fs::symlink(t.path(), home.join("toolchains").join(name)).unwrap();
        }
    }
    home
}

fn has_nightly() -> bool {
    std::fs::read_dir(rustup_home().join("toolchains"))
        .map(|rd| {
            rd.flatten()
                .any(|t| t.file_name().to_string_lossy().starts_with("nightly-"))
        })
        .unwrap_or(false)
}

/// Pretends the units of `profile` were built by a compiler nobody has: what cachekeeper
/// reads is the `rustc` hash in each fingerprint JSON.
fn mark_foreign(target: &Path, profile: &str) {
    for unit in std::fs::read_dir(target.join(profile).join(".fingerprint"))
        .unwrap()
        .flatten()
    {
        for file in std::fs::read_dir(unit.path()).unwrap().flatten() {
            if file.path().extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(file.path()).unwrap();
                let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
                v["rustc"] = serde_json::json!(4_242_424_242u64);
                std::fs::write(file.path(), v.to_string()).unwrap();
            }
        }
    }
}

#[test]
fn units_of_an_uninstalled_toolchain_go_and_the_installed_ones_stay() {
    let f = Fixture::new();
    f.app_and_dep();
    // The release profile with another toolchain, then the daily stable builds.
    if has_nightly() {
        assert!(
            f.cargo_with(Some("nightly"), &[], &["build", "--release"])
                .success
        );
    } else {
        eprintln!("no nightly toolchain: marking release units as built by an unknown rustc");
        assert!(f.cargo(&["build", "--release"]).success);
        mark_foreign(&f.target(), "release");
    }
    assert!(f.cargo(&["build"]).success);
    f.config("min-age = \"0s\"");
    let home = only_stable(&f);
    let home = home.to_str().unwrap();

    let debug_before = fingerprint_dirs(&f.target(), "debug");
    let report = f.ck_json_env(&["clean"], &[("RUSTUP_HOME", home)]);
    let removed = removed_units(&report);
    assert_eq!(removed.len(), 4, "{report:#}"); // app, dep, dep's build script and its run
    assert!(
        report["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["rule"] == "toolchain" && a["profile"] == "release")
    );
    assert!(fingerprint_dirs(&f.target(), "release").is_empty());
    assert_eq!(fingerprint_dirs(&f.target(), "debug"), debug_before);
    let again = f.cargo(&["build"]);
    assert!(again.success && again.recompiled().is_empty());
}

#[test]
fn the_rule_stays_off_when_the_newest_build_used_a_toolchain_we_cannot_see() {
    let f = Fixture::new();
    f.workspace(&["dep"]);
    f.krate(&Krate {
        name: "dep",
        ..Krate::default()
    });
    assert!(f.cargo(&["build"]).success);
    f.config("min-age = \"0s\"");
    // An empty RUSTUP_HOME and no rustc on PATH: nothing looks installed (a root daemon
    // cannot see a user's rustup, say). That must not read as "everything is foreign".
    let empty = f.dir.path().join("empty-rustup");
    std::fs::create_dir_all(empty.join("toolchains")).unwrap();
    let report = f.ck_json_env(
        &["clean", "--dry-run"],
        &[
            ("RUSTUP_HOME", empty.to_str().unwrap()),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    assert!(removed_units(&report).is_empty(), "{report:#}");
    let scan = f.ck_json_env(
        &["scan"],
        &[
            ("RUSTUP_HOME", empty.to_str().unwrap()),
            ("PATH", "/usr/bin:/bin"),
        ],
    );
    let notes = scan["targets"][0]["notes"].to_string();
    assert!(notes.contains("toolchain rule off"), "{notes}");
}
