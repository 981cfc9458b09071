//! The story cachekeeper exists for: a workspace churns as developers work on it, old units
//! pile up, `clean` removes them, and the next build recompiles nothing.

use crate::support::{DAY, Fixture, Krate, fingerprint_dirs, removed_units};

fn app(f: &Fixture, util_features: &str) {
    f.krate(&Krate {
        name: "app",
        bin: true,
        deps: &[
            "dep = { path = \"../dep\" }",
            &format!("util = {{ path = \"../util\"{util_features} }}"),
        ],
        ..Krate::default()
    });
}

fn churned_workspace() -> Fixture {
    let f = Fixture::new();
    f.workspace(&["app", "dep", "util"]);
    f.krate(&Krate {
        name: "dep",
        build_rs: true,
        ..Krate::default()
    });
    f.krate(&Krate {
        name: "util",
        features: &["extra"],
        ..Krate::default()
    });
    app(&f, ", features = [\"extra\"]");
    assert!(f.cargo(&["build"]).success);
    assert!(f.cargo(&["build", "--release"]).success);
    assert!(f.run_bin("debug/app").contains("feature extra"));

    // Two months later: the dependency got a new version, the feature was dropped, and
    // nobody built the release profile again.
    f.pass_time(60 * DAY);
    f.krate(&Krate {
        name: "dep",
        version: "0.2.0",
        build_rs: true,
        ..Krate::default()
    });
    app(&f, "");
    let b = f.cargo(&["build"]);
    assert!(b.success, "{}", b.stderr);
    f
}

#[test]
fn clean_removes_what_churn_left_and_the_next_build_recompiles_nothing() {
    let f = churned_workspace();
    let before = f.du(&f.target());
    let report = f.ck_json(&["clean"]);
    let removed = removed_units(&report);
    assert!(!removed.is_empty());
    assert_eq!(report["errors"], 0);

    // Nothing the current build uses was removed: it is all fresh, and the binary works.
    let again = f.cargo(&["build"]);
    assert!(again.success, "{}", again.stderr);
    assert!(!again.artifacts.is_empty());
    assert_eq!(
        again.recompiled(),
        Vec::<&str>::new(),
        "recompiled after clean"
    );
    let out = f.run_bin("debug/app");
    assert!(
        out.contains("dep 0.2.0") && !out.contains("feature extra"),
        "{out}"
    );

    // What is left in debug is exactly what a fresh build of the current code makes.
    let reference = Fixture::new();
    for m in [
        "Cargo.toml",
        "app/Cargo.toml",
        "app/src/main.rs",
        "dep/Cargo.toml",
        "dep/src/lib.rs",
        "dep/build.rs",
        "util/Cargo.toml",
        "util/src/lib.rs",
    ] {
        reference.write(m, &std::fs::read_to_string(f.ws.join(m)).unwrap());
    }
    // Same paths matter for cargo's unit hashes: build the reference from the same dir.
    let ref_target = reference.dir.path().join("ref-target");
    let out = std::process::Command::new("cargo")
        .args(["build", "--offline", "--target-dir"])
        .arg(&ref_target)
        .current_dir(&f.ws)
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        fingerprint_dirs(&f.target(), "debug"),
        fingerprint_dirs(&ref_target, "debug")
    );
    let incr = |t: &std::path::Path| {
        std::fs::read_dir(t.join("debug/incremental"))
            .unwrap()
            .count()
    };
    assert_eq!(
        incr(&f.target()),
        incr(&ref_target),
        "incremental dirs of removed units remain"
    );

    // The release profile was unused for two months: it went entirely, and rebuilds fine.
    assert!(fingerprint_dirs(&f.target(), "release").is_empty());
    assert!(f.du(&f.target()) < before);
    let rel = f.cargo(&["build", "--release"]);
    assert!(rel.success && !rel.recompiled().is_empty());
    assert!(f.run_bin("release/app").contains("dep 0.2.0"));
}

#[test]
fn a_dry_run_reports_exactly_what_the_real_run_frees() {
    let f = churned_workspace();
    let before = f.du(&f.target());
    let dry = f.ck_json(&["clean", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(f.du(&f.target()), before, "a dry run changed the disk");
    let real = f.ck_json(&["clean"]);
    let after = f.du(&f.target());

    assert!(dry["reclaimed_bytes"].as_u64().unwrap() > 0);
    assert_eq!(dry["reclaimed_bytes"], real["reclaimed_bytes"]);
    assert_eq!(
        real["reclaimed_bytes"].as_u64().unwrap(),
        before - after,
        "measured by du"
    );
    assert_eq!(dry["removed_files"], real["removed_files"]);
    assert_eq!(removed_units(&dry), removed_units(&real));
    // The scan's estimate is the same number too (regression: inodes rustc hardlinks
    // between a unit's outputs and its incremental session were missing from it).
    assert_eq!(dry["planned_bytes"], dry["reclaimed_bytes"]);
}
