//! The rebuild estimate on real builds: each unit's time from cargo's own files, the next
//! build simulated on cargo's jobs, and a tree whose times were flattened (copied with
//! `cp -r`) estimated from sizes, never as free.

use std::process::Command;

use serde_json::Value;

use crate::support::Fixture;

/// Every unit's `(name, build_seconds, measured)` from `scan --json`'s one target dir.
fn units(scan: &Value) -> Vec<(String, f64, bool)> {
    scan["targets"][0]["costliest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["name"].as_str().unwrap().to_string(),
                u["build_seconds"].as_f64().unwrap(),
                u["measured"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_copied_target_dir_is_estimated_from_sizes_and_never_ranked_free() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.config("");
    // As built: the compiles' own times.
    let built = f.ck_json(&["scan", "--cargo-only"]);
    let measured = units(&built).iter().filter(|u| u.2).count();
    assert!(measured >= 3, "{:#?}", units(&built));

    // Copied without its times: every stamp is the copy's, microseconds apart.
    let copy = f.dir.path().join("copied");
    std::fs::create_dir_all(&copy).unwrap();
    let out = Command::new("cp")
        .arg("-r")
        .arg(f.target())
        .arg(copy.join("target"))
        .output()
        .unwrap();
    assert!(out.status.success());
    f.config(&format!("roots = [{:?}]", copy.to_str().unwrap()));
    let scan = f.ck_json(&["scan", "--cargo-only"]);
    let copied = units(&scan);
    assert_eq!(copied.len(), units(&built).len());
    for (name, seconds, measured) in &copied {
        assert!(!measured, "{name} counts as measured in a copy");
        assert!(*seconds > 0.0, "{name} counts as free");
    }
    // Whatever a budget takes there costs something, and says it was estimated.
    let plan = f.ck_json(&[
        "clean",
        "--dry-run",
        "--cargo-only",
        "--budget",
        "1B",
        "--min-age",
        "0s",
    ]);
    let r = &plan["rebuild"];
    assert!(r["wall_seconds"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(r["measured"], false, "{r:#}");
    for a in plan["actions"].as_array().unwrap() {
        if a["item"] == "unit" {
            assert!(a["rebuild_seconds"].as_f64().unwrap() > 0.0, "{a:#}");
        }
    }
}

#[test]
fn the_estimate_runs_on_cargo_s_jobs_and_says_so() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.config("");
    // The whole dir under a one-byte budget: wall is no more than the CPU, and at least the
    // longest unit; with one job, the wall is the CPU.
    let plan = f.ck_json(&[
        "clean",
        "--dry-run",
        "--cargo-only",
        "--budget",
        "1B",
        "--min-age",
        "0s",
    ]);
    let r = &plan["rebuild"];
    let (wall, cpu) = (
        r["wall_seconds"].as_f64().unwrap(),
        r["cpu_seconds"].as_f64().unwrap(),
    );
    let longest = units(&f.ck_json(&["scan", "--cargo-only"]))
        .iter()
        .map(|u| u.1)
        .fold(0.0, f64::max);
    assert!(
        wall > 0.0 && wall <= cpu + 1e-9 && wall + 1e-9 >= longest,
        "{r:#}"
    );
    let one = f.ck_json_env(
        &[
            "clean",
            "--dry-run",
            "--cargo-only",
            "--budget",
            "1B",
            "--min-age",
            "0s",
        ],
        &[("CARGO_BUILD_JOBS", "1")],
    );
    assert_eq!(one["rebuild"]["jobs"], 1);
    let one_wall = one["rebuild"]["wall_seconds"].as_f64().unwrap();
    let one_cpu = one["rebuild"]["cpu_seconds"].as_f64().unwrap();
    assert!((one_wall - one_cpu).abs() < 1e-6, "{:#}", one["rebuild"]);
    // People read it as wall time on the cores.
    let out = f.ck_env(
        &[
            "clean",
            "--dry-run",
            "--cargo-only",
            "--budget",
            "1B",
            "--min-age",
            "0s",
        ],
        &[("CARGO_BUILD_JOBS", "2")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("to rebuild on 2 cores ("), "{text}");
}
