//! Cargo's new build-dir layout (`build/<pkg>/<hash>/{fingerprint,out,run}`, the default from
//! cargo 1.100) gets the same treatment as the legacy one. The stable cargo on the test
//! machine produces it with `-Zbuild-dir-new-layout` under the channel override.

use crate::support::{DAY, Fixture, Krate, removed_units};

const NEW_LAYOUT: &[(&str, &str)] = &[("__CARGO_TEST_CHANNEL_OVERRIDE_DO_NOT_USE_THIS", "nightly")];

fn build(f: &Fixture) -> crate::support::Build {
    f.cargo_with(None, NEW_LAYOUT, &["build", "-Zbuild-dir-new-layout"])
}

#[test]
fn new_layout_units_are_found_measured_and_cleaned_whole() {
    let f = Fixture::new();
    f.app_and_dep();
    // File times advance by the kernel's tick (up to 10 ms) unless something looked at the
    // file since: a build script's run shorter than that can show its start and end stamps
    // equal, which is rightly estimated, not measured. Ours takes 50 ms, so it is measured.
    f.write("dep/build.rs", &Fixture::sleeping_build_rs(50));
    let b = build(&f);
    assert!(b.success, "{}", b.stderr);
    assert!(
        f.target().join("debug/build/dep").is_dir(),
        "not the new layout"
    );

    let scan = f.ck_json(&["scan"]);
    let t = &scan["targets"][0];
    assert_eq!(t["layouts"], serde_json::json!(["new"]));
    assert_eq!(t["units"], 4);
    // Every unit's build time comes from cargo's timestamps here too, the build script's run
    // included (its start is stamped in its run dir).
    let costs = t["costliest"].as_array().unwrap();
    assert_eq!(costs.len(), 4, "{scan:#}");
    assert!(costs.iter().all(|u| u["measured"] == true), "{scan:#}");
    assert_eq!(
        t["bytes"].as_u64().unwrap(),
        f.du(&f.target()),
        "scan disagrees with du"
    );

    f.pass_time(60 * DAY);
    f.krate(&Krate {
        name: "dep",
        version: "0.2.0",
        build_rs: true,
        ..Krate::default()
    });
    assert!(build(&f).success);
    let before = f.du(&f.target());
    let report = f.ck_json(&["clean"]);
    assert_eq!(removed_units(&report).len(), 4, "{report:#}"); // the old app, dep, script, run
    assert_eq!(
        report["reclaimed_bytes"].as_u64().unwrap(),
        before - f.du(&f.target())
    );
    let again = build(&f);
    assert!(
        again.success && again.recompiled().is_empty(),
        "{:?}",
        again.recompiled()
    );
    assert!(f.run_bin("debug/app").contains("dep 0.2.0"));
}
