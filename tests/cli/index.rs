//! The daemon's index is kept current by what changed: a build that writes in one target dir
//! has that dir walked again when it ends, and no other; a unit created, rebuilt or removed by
//! real cargo shows in `status` without a full walk, and the numbers equal a fresh `scan`.

use serde_json::Value;

use crate::running::{Barrier, Daemon, daemon_section};
use crate::support::Fixture;

/// The status view's target dir at `path`.
fn target<'a>(status: &'a Value, path: &std::path::Path) -> &'a Value {
    status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["path"].as_str() == path.to_str())
        .unwrap_or_else(|| panic!("{} not in {status:#}", path.display()))
}

/// Walks since the daemon started, by why.
fn walks(status: &Value, why: &str) -> u64 {
    status["daemon"]["index"]["walks"][why].as_u64().unwrap()
}

/// The full walks: every reason but what changed.
fn full_walks(status: &Value) -> u64 {
    status["daemon"]["index"]["walks"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(why, _)| !matches!(why.as_str(), "changed" | "new-target-dir" | "watch-limit"))
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[test]
fn what_a_build_changes_is_walked_again_and_nothing_else() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    let other = Barrier::new();
    f.config_with(
        &format!("roots = [{:?}, {}]", f.ws.to_str().unwrap(), other.root()),
        &daemon_section(&f, ""),
    );
    let d = Daemon::start(&f);
    let start = d.json(&["status"]);
    assert_eq!(walks(&start, "start"), 2, "{:#}", start["daemon"]["index"]);
    assert_eq!(full_walks(&start), 2);
    let other_target = other.0.target();
    let other_walked = target(&start, &other_target)["walked_at"].clone();
    assert!(other_walked.is_string(), "{start:#}");
    let units = |s: &Value| target(s, &f.target())["units"].as_u64().unwrap();
    let before = units(&start);

    // Created: an example is a unit of its own.
    f.write(
        "dep/examples/hello.rs",
        "fn main() {\n    dep::hello();\n}\n",
    );
    assert!(f.cargo(&["build", "--examples"]).success);
    let created = d.wait_status("the new unit", |s| units(s) > before);
    assert!(
        walks(&created, "changed") >= 1,
        "{:#}",
        created["daemon"]["index"]
    );

    // Rebuilt: a changed source recompiles the units built on it, in place.
    f.write(
        "dep/src/lib.rs",
        "pub fn hello() {\n    println!(\"changed\");\n}\n",
    );
    let rebuilt = f.cargo(&["build", "--examples"]);
    assert!(rebuilt.success && !rebuilt.recompiled().is_empty());
    let changed = walks(&created, "changed");
    let after_rebuild = d.wait_status("the rebuild walked", |s| walks(s, "changed") > changed);
    // The units the rebuild left alone (the build script's) were taken as they were: the
    // refresh looked at fewer units than the dir holds.
    let ix = &after_rebuild["daemon"]["index"];
    assert!(
        ix["units_walked_last"].as_u64().unwrap() < units(&after_rebuild),
        "{ix:#}"
    );

    // Removed: `cargo clean -p dep` takes dep's units away.
    let with_dep = units(&after_rebuild);
    let clean = f
        .cargo_cmd(None)
        .args(["clean", "--offline", "-p", "dep"])
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let cleaned = d.wait_status("the removed units", |s| units(s) < with_dep);

    // No full walk happened, and the other target dir was never walked again.
    assert_eq!(full_walks(&cleaned), 2, "{:#}", cleaned["daemon"]["index"]);
    assert_eq!(target(&cleaned, &other_target)["walked_at"], other_walked);

    // What the events kept is what a walk finds: the daemon's numbers equal a fresh scan's
    // (the CLI beside the daemon measures itself), and equal those of a full walk.
    let scan = f.ck_json(&["scan"]);
    assert_totals_equal(&cleaned, &scan, &f.target());
    let refreshed = d.json(&["status", "--refresh"]);
    assert_eq!(
        walks(&refreshed, "refresh"),
        2,
        "{:#}",
        refreshed["daemon"]["index"]
    );
    assert_eq!(
        target(&refreshed, &f.target())["bytes"],
        target(&cleaned, &f.target())["bytes"]
    );
}

/// Units first watched after the walk that measured them are walked again with the first
/// change in their target dir (a write in between was not seen); after a walk of everything
/// (every unit watched during it), a build's refresh already looks only at what it changed.
#[test]
fn after_a_full_walk_a_build_is_refreshed_unit_by_unit() {
    let (f, d) = built_and_watched();
    d.json(&["status", "--refresh"]);
    f.write(
        "dep/src/lib.rs",
        "pub fn hello() {\n    println!(\"unit by unit\");\n}\n",
    );
    assert!(f.cargo(&["build"]).success);
    let after = d.wait_status("the rebuild walked", |s| walks(s, "changed") >= 1);
    let ix = &after["daemon"]["index"];
    let units = target(&after, &f.target())["units"].as_u64().unwrap();
    assert!(
        ix["units_walked_last"].as_u64().unwrap() < units
            && ix["units_kept_last"].as_u64().unwrap() > 0,
        "{ix:#}"
    );
    assert_totals_equal(&after, &f.ck_json(&["scan"]), &f.target());
}

/// An events refresh searches no roots: what the last search found (a root that is not
/// there) still shows after it.
#[test]
fn what_the_last_search_found_stands_after_an_events_refresh() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    let gone = f.dir.path().join("not-there");
    f.config_with(
        &format!(
            "roots = [{:?}, {:?}]",
            f.ws.to_str().unwrap(),
            gone.to_str().unwrap()
        ),
        &daemon_section(&f, ""),
    );
    let d = Daemon::start(&f);
    let missing = |s: &Value| s["missing_roots"].as_array().unwrap().len();
    assert_eq!(missing(&d.json(&["status"])), 1);
    f.write(
        "dep/src/lib.rs",
        "pub fn hello() {\n    println!(\"again\");\n}\n",
    );
    assert!(f.cargo(&["build"]).success);
    let after = d.wait_status("the rebuild walked", |s| walks(s, "changed") >= 1);
    assert_eq!(missing(&after), 1, "{after:#}");
}

/// Events the kernel could not queue: the daemon walks everything once, and its numbers then
/// equal a fresh scan's. The overflow is real: the daemon is stopped while more entries than
/// inotify queues (`fs.inotify.max_queued_events`) are created in a dir it watches.
#[test]
fn a_queue_overflow_leads_to_one_full_walk_and_the_totals_a_scan_finds() {
    let (f, d) = built_and_watched();
    let start = d.json(&["status"]);
    assert_eq!(full_walks(&start), 1, "{:#}", start["daemon"]["index"]);
    assert_eq!(walks(&start, "overflow"), 0);

    let queued: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        queued <= 1 << 20,
        "fs.inotify.max_queued_events is {queued}: too many events to make for an overflow"
    );
    d.pause();
    // Entries created in `.fingerprint/`, which is watched for new units.
    let fingerprints = f.target().join("debug/.fingerprint");
    for i in 0..=queued {
        std::fs::write(fingerprints.join(format!("junk-{i}")), b"x").unwrap();
    }
    d.signal(rustix::process::Signal::CONT);

    let walked = d.wait_status("the walk after the overflow", |s| {
        walks(s, "overflow") >= 1 && s["daemon"]["rescanning"] == false
    });
    assert!(d.log().contains("event queue overflowed"), "{}", d.log());
    let scan = f.ck_json(&["scan"]);
    assert_totals_equal(&walked, &scan, &f.target());
    // One full walk: nothing after it calls for another.
    let again = d.json(&["status"]);
    assert_eq!(
        walks(&again, "overflow"),
        1,
        "{:#}",
        again["daemon"]["index"]
    );
    assert_eq!(full_walks(&again), 2, "{:#}", again["daemon"]["index"]);
}

/// An app and its dependency, built, and a daemon watching only their workspace.
fn built_and_watched() -> (Fixture, Daemon) {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.config_with(
        &format!("roots = [{:?}]", f.ws.to_str().unwrap()),
        &daemon_section(&f, ""),
    );
    let d = Daemon::start(&f);
    (f, d)
}

/// The daemon's numbers for `target_dir` are those of another measurement (a scan, a walk).
fn assert_totals_equal(daemon: &Value, other: &Value, target_dir: &std::path::Path) {
    for key in ["bytes", "units", "files", "incremental_dirs"] {
        assert_eq!(
            target(daemon, target_dir)[key],
            target(other, target_dir)[key],
            "{key}"
        );
    }
}
