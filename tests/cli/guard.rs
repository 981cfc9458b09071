//! The CI disk guard on a small real filesystem (a tmpfs the test mounts; needs root).

use std::path::Path;

use serde_json::Value;

use crate::support::{DAY, Fixture, Krate, Tmpfs, fingerprint_dirs};

fn free(path: &Path) -> u64 {
    cachekeeper_sys::os::disk::measure(path).unwrap().free_bytes
}

/// On the tmpfs: an app built with four feature sets two months ago (stale), then with a
/// fifth just now.
fn churned(f: &Fixture, target: &Path) {
    let t = target.to_str().unwrap();
    f.workspace(&["app"]);
    f.krate(&Krate {
        name: "app",
        bin: true,
        features: &["f1", "f2", "f3", "f4", "f5"],
        ..Krate::default()
    });
    for feat in ["f1", "f2", "f3", "f4"] {
        assert!(
            f.cargo_with(
                None,
                &[("CARGO_TARGET_DIR", t)],
                &["build", "--features", feat]
            )
            .success
        );
    }
    crate::support::shift_times(f.dir.path(), 60 * DAY);
    crate::support::shift_session_names(target, 60 * DAY);
    assert!(
        f.cargo_with(
            None,
            &[("CARGO_TARGET_DIR", t)],
            &["build", "--features", "f5"]
        )
        .success
    );
}

/// The phases a `guard --json` pass went through.
fn phases(out: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(out).unwrap();
    v["pass"]["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap().to_string())
        .collect()
}

fn guard(f: &Fixture, args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::support::ck()
        .arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .arg("guard")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pass_removes_the_cheapest_data_first_and_stops_when_the_floor_holds() {
    // The guard's BuildKit phases may prune the engine's records: take the engine's turn.
    let _turn = crate::engine::engine();
    let f = Fixture::new();
    let Some(fs) = Tmpfs::mount(f.dir.path().join("small"), "size=64m") else {
        return;
    };
    let target = fs.0.join("target");
    churned(&f, &target);
    f.config(&format!("roots = [{:?}]", target.to_str().unwrap()));
    let t = target.to_str().unwrap();

    // The floor holds: nothing happens.
    let (code, out, _) = guard(&f, &["--min-free", "1MiB", t]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("The floor holds."));
    assert!(!out.contains("reclaimed"), "{out}");

    // A floor the stale units can pay for: the cheap phase alone, the fresh build kept.
    let floor = free(&target) + 4 * 1024 * 1024;
    // First as a dry run: the same phases, what each would free, the floor as it would be,
    // and nothing removed.
    let units = fingerprint_dirs(&target, "debug");
    let free_before = free(&target);
    let floor_arg = format!("{floor}B");
    let (code, dry, err) = guard(&f, &["--min-free", &floor_arg, "--dry-run", t, "--json"]);
    assert_eq!(code, Some(0), "{dry}{err}");
    assert_eq!(phases(&dry), ["cheap"], "{dry}");
    let d: Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(d["pass"]["dry_run"], true);
    assert!(
        d["pass"]["after"][0]["free_bytes"].as_u64().unwrap() >= floor,
        "{dry}"
    );
    assert_eq!(
        fingerprint_dirs(&target, "debug"),
        units,
        "a dry run removed something"
    );
    assert_eq!(free(&target), free_before);
    let (_, human, _) = guard(&f, &["--min-free", &floor_arg, "-n", t]);
    assert!(human.contains("would"), "{human}");
    let (code, out, err) = guard(&f, &["--min-free", &floor_arg, t, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(phases(&out), ["cheap"], "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pass"]["phases"][0]["actions"], d["pass"]["phases"][0]["actions"],
        "the dry run planned what the real run did"
    );
    assert_eq!(
        v["pass"]["phases"][0]["reclaimed_bytes"], d["pass"]["phases"][0]["reclaimed_bytes"],
        "{dry}\n{out}"
    );
    assert!(free(&target) >= floor);
    let b = f.cargo_with(
        None,
        &[("CARGO_TARGET_DIR", t)],
        &["build", "--features", "f5"],
    );
    assert!(
        b.success && b.recompiled().is_empty(),
        "the fresh build was touched: {:?}",
        b.recompiled()
    );

    // A floor only the fresh build can pay for: least recently used units next (with min-age
    // off: with the default hour, the build that just ran is protected and the guard exits 4).
    f.config(&format!(
        "roots = [{:?}]\nmin-age = \"0s\"",
        target.to_str().unwrap()
    ));
    let floor = free(&target) + 3 * 1024 * 1024;
    let (code, out, _) = guard(&f, &["--min-free", &format!("{floor}B"), t, "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(phases(&out), ["cheap", "units"], "{out}");
    assert!(free(&target) >= floor);
}

#[test]
fn an_unreachable_floor_exits_4_and_says_what_blocks() {
    let _turn = crate::engine::engine();
    let f = Fixture::new();
    let Some(fs) = Tmpfs::mount(f.dir.path().join("small"), "size=64m") else {
        return;
    };
    let target = fs.0.join("target");
    churned(&f, &target);
    let t = target.to_str().unwrap();
    f.config(&format!("roots = [{t:?}]"));
    // Everything but the build of a minute ago could go; the floor asks for all of it.
    let (code, out, _) = guard(&f, &["--min-free", "100%", t]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("BELOW THE FLOOR") && out.contains("cannot be reached"),
        "{out}"
    );
    assert!(out.contains("blocked:"), "{out}");
    assert!(out.contains("used within min-age"), "{out}");
}

#[test]
fn a_watched_build_that_fills_the_disk_gets_space_freed_under_it_and_keeps_its_exit_code() {
    let _turn = crate::engine::engine();
    let f = Fixture::new();
    let Some(fs) = Tmpfs::mount(f.dir.path().join("small"), "size=96m") else {
        return;
    };
    // Another project's target dir, stale: what the guard may free.
    let other = fs.0.join("other-target");
    churned(&f, &other);
    // The job's own target dir: an old unit (stale) and the crate being built, whose build
    // script fills the disk, then fails.
    let job = fs.0.join("job-target");
    let j = job.to_str().unwrap();
    f.krate(&Krate {
        name: "old",
        ..Krate::default()
    });
    f.krate(&Krate {
        name: "filler",
        build_rs: true,
        ..Krate::default()
    });
    f.workspace(&["app", "old", "filler"]);
    assert!(
        f.cargo_with(None, &[("CARGO_TARGET_DIR", j)], &["build", "-p", "old"])
            .success
    );
    crate::support::shift_times(&job, 60 * DAY);
    let old_units = fingerprint_dirs(&job, "debug");
    let before = free(&fs.0);
    f.write(
        "filler/build.rs",
        "fn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    for i in 0..8 {\n        \
         std::fs::write(format!(\"{out}/chunk{i}\"), vec![7u8; 4 << 20]).unwrap();\n        \
         std::thread::sleep(std::time::Duration::from_millis(700));\n    }\n    panic!(\"the build fails\");\n}\n",
    );
    let floor = before - 12 * 1024 * 1024;
    f.config(&format!("roots = [{:?}]", fs.0.to_str().unwrap()));
    let summary = f.dir.path().join("step-summary.md");
    let out = crate::support::ck()
        .arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .args([
            "guard",
            "--min-free",
            &format!("{floor}B"),
            "--interval",
            "1s",
            "--",
        ])
        .args(["cargo", "build", "--offline", "-p", "filler"])
        .current_dir(&f.ws)
        .env("CARGO_TARGET_DIR", j)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(101),
        "cargo's own exit code: {stderr}"
    );
    assert!(
        stderr.contains("cachekeeper guard:") && stderr.contains("floor was crossed"),
        "{stderr}"
    );
    // Space came from the other project's stale units...
    assert!(fingerprint_dirs(&other, "debug").len() < 4, "{stderr}");
    // ...never from the locked profile of the running build, old as its units are.
    assert_eq!(
        fingerprint_dirs(&job, "debug")
            .iter()
            .filter(|u| old_units.contains(u))
            .count(),
        old_units.len()
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        md.contains("### cachekeeper guard") && md.contains("exited with 101"),
        "{md}"
    );
}

/// Issue: with a configured engine that is absent, the guard said nothing of BuildKit before
/// exiting 4.
#[test]
fn a_configured_engine_that_is_absent_is_named_in_the_guards_report() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    let gone = f.dir.path().join("gone.sock");
    f.config_with(
        "",
        &format!("[buildkit]\ndocker-host = \"unix://{}\"\n", gone.display()),
    );
    let (code, out, _) = guard(&f, &["--min-free", "100%", f.ws.to_str().unwrap()]);
    assert_eq!(code, Some(4), "{out}");
    assert!(
        out.contains("BuildKit: UNAVAILABLE") && out.contains(gone.to_str().unwrap()),
        "{out}"
    );
    let (_, out, _) = guard(
        &f,
        &["--min-free", "100%", f.ws.to_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pass"]["buildkit"]["state"], "unavailable", "{v:#}");
}
