//! Budgets: when a target dir (or all of them) is too big, units go until the budget holds:
//! the least recently used (`eviction = "lru"`), or the cheapest to rebuild (the default).

use crate::support::{DAY, Fixture, Krate, removed_units};

/// Four independent crates, each built a day after the previous one: `a` is the least
/// recently used, `d` the most.
fn four_crates(f: &Fixture, target_of: impl Fn(&str) -> std::path::PathBuf) {
    f.workspace(&["a", "b", "c", "d"]);
    for name in ["a", "b", "c", "d"] {
        f.krate(&Krate {
            name,
            bin: true,
            build_rs: true,
            ..Krate::default()
        });
    }
    for name in ["a", "b", "c", "d"] {
        let dir = target_of(name);
        let b = f.cargo_with(
            None,
            &[("CARGO_TARGET_DIR", dir.to_str().unwrap())],
            &["build", "-p", name],
        );
        assert!(b.success, "{}", b.stderr);
        f.pass_time(DAY);
    }
}

fn packages(report: &serde_json::Value) -> Vec<String> {
    let mut p: Vec<String> = removed_units(report)
        .iter()
        .map(|u| u.rsplit_once('-').unwrap().0.to_string())
        .collect();
    p.sort();
    p.dedup();
    p
}

#[test]
fn over_budget_the_least_recently_used_units_go_until_it_holds() {
    let f = Fixture::new();
    four_crates(&f, |_| f.target());
    let total = f.du(&f.target());
    let budget = total * 6 / 10;
    f.config(&format!(
        "target-budget = \"{budget} B\"\neviction = \"lru\""
    ));

    let report = f.ck_json(&["clean"]);
    assert!(f.du(&f.target()) <= budget, "still over budget");
    assert!(report["shortfalls"].as_array().unwrap().is_empty());
    let gone = packages(&report);
    // Four crates of the same shape: two must go, and they are the two oldest.
    assert_eq!(gone, vec!["a", "b"], "{report:#}");
    assert!(
        report["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["rule"] == "target-budget")
    );

    // What was kept is intact; what went rebuilds.
    let d = f.cargo(&["build", "-p", "d"]);
    assert!(
        d.success && d.recompiled().is_empty(),
        "{:?}",
        d.recompiled()
    );
    let a = f.cargo(&["build", "-p", "a"]);
    assert!(a.success && !a.recompiled().is_empty());
    assert!(f.run_bin("debug/a").contains("a 0.1.0"));
}

#[test]
fn the_total_budget_is_least_recently_used_across_target_dirs() {
    let f = Fixture::new();
    let other = f.ws.join("other-target");
    four_crates(&f, |name| {
        if name == "a" || name == "c" {
            other.clone()
        } else {
            f.target()
        }
    });
    let total = f.du(&f.target()) + f.du(&other);
    let budget = total * 6 / 10;
    f.config(&format!(
        "total-budget = \"{budget} B\"\neviction = \"lru\""
    ));

    let report = f.ck_json(&["clean"]);
    assert!(f.du(&f.target()) + f.du(&other) <= budget);
    // The oldest of each dir went first: a (other-target), then b (target).
    assert_eq!(packages(&report), vec!["a", "b"], "{report:#}");
    let dirs: Vec<&str> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["target"].as_str().unwrap())
        .collect();
    assert!(
        dirs.iter().any(|d| d.ends_with("other-target"))
            && dirs.iter().any(|d| d.ends_with("/target"))
    );
}

#[test]
fn a_budget_that_only_young_units_could_meet_is_reported_not_forced() {
    let f = Fixture::new();
    f.workspace(&["a"]);
    f.krate(&Krate {
        name: "a",
        bin: true,
        ..Krate::default()
    });
    assert!(f.cargo(&["build"]).success);
    // Built a minute ago: protected by min-age (1h), whatever the budget says.
    f.config("target-budget = \"1 KiB\"");
    let before = f.du(&f.target());
    let report = f.ck_json(&["clean"]);
    assert!(removed_units(&report).is_empty());
    assert_eq!(f.du(&f.target()), before);
    let short = &report["shortfalls"][0];
    assert!(
        short["scope"]
            .as_str()
            .unwrap()
            .starts_with("target-budget of "),
        "{short}"
    );
    assert!(
        short["why"]
            .as_str()
            .unwrap()
            .contains("used within min-age"),
        "{short}"
    );
    let human = f.ck(&["clean", "--dry-run"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("cannot be met"), "{text}");
}

/// `slow`: a library whose build script takes two seconds, built a day before `leaf`, a
/// binary that compiles in a moment. By age `slow` goes first; by cost `leaf` does.
fn slow_and_leaf(f: &Fixture) {
    f.workspace(&["slow", "leaf"]);
    f.krate(&Krate {
        name: "slow",
        ..Krate::default()
    });
    f.write("slow/build.rs", &Fixture::sleeping_build_rs(2000));
    f.write(
        "slow/Cargo.toml",
        "[package]\nname = \"slow\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n",
    );
    f.krate(&Krate {
        name: "leaf",
        bin: true,
        ..Krate::default()
    });
    for name in ["slow", "leaf"] {
        assert!(f.cargo(&["build", "-p", name]).success);
        f.pass_time(DAY);
    }
}

#[test]
fn a_slow_build_script_costs_more_than_a_leaf_and_a_cost_budget_keeps_it() {
    let f = Fixture::new();
    slow_and_leaf(&f);
    // The cost signal, from cargo's own timestamps.
    let scan = f.ck_json(&["scan", "--cargo-only"]);
    let units = scan["targets"][0]["costliest"].as_array().unwrap();
    let cost = |prefix: &str| -> f64 {
        units
            .iter()
            .filter(|u| u["name"].as_str().unwrap().starts_with(prefix))
            .map(|u| {
                assert_eq!(u["measured"], true, "{u}");
                u["build_seconds"].as_f64().unwrap()
            })
            .fold(0.0, f64::max)
    };
    let (slow, leaf) = (cost("slow-"), cost("leaf-"));
    assert!(
        slow >= 1.9,
        "the build script's run took 2 s: {slow}\n{scan:#}"
    );
    assert!(leaf < slow / 2.0, "a leaf compiles fast: {leaf} vs {slow}");
    assert_eq!(
        units[0]["name"].as_str().unwrap().split('-').next(),
        Some("slow"),
        "the dearest comes first: {scan:#}"
    );

    // A budget that one of the two crates' data satisfies.
    let total = f.du(&f.target());
    let budget = total * 7 / 10;
    f.config(&format!(
        "target-budget = \"{budget} B\"\neviction = \"lru\""
    ));
    let lru = f.ck_json(&["clean", "--dry-run"]);
    assert!(
        removed_units(&lru).iter().any(|u| u.starts_with("slow-")),
        "by age the build script goes: {lru:#}"
    );
    f.config(&format!("target-budget = \"{budget} B\""));
    // What the next budget run would cost to get back, in status.
    let status = f.ck_json(&["status"]);
    let next = status["total"]["budget_rebuild_seconds"].as_f64().unwrap();
    assert!(next > 0.0 && next < slow, "{status:#}");
    let out = f.ck(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" to rebuild on "), "{text}");
    let report = f.ck_json(&["clean"]);
    let gone = removed_units(&report);
    assert!(
        gone.iter().all(|u| u.starts_with("leaf-")),
        "by cost only the leaf goes: {report:#}"
    );
    assert!(f.du(&f.target()) <= budget, "still over budget: {report:#}");
    let rebuild = report["rebuild_seconds"].as_f64().unwrap();
    assert!(rebuild > 0.0 && rebuild < slow, "{report:#}");
    assert!(
        report["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["reason"]
                .as_str()
                .unwrap()
                .starts_with("cheapest to lose: ~")),
        "{report:#}"
    );
    // The next build rebuilds what went and nothing else: the build script does not run.
    let b = f.cargo(&["build"]);
    assert!(b.success, "{}", b.stderr);
    assert!(
        b.recompiled().iter().all(|a| a.starts_with("0.1.0/leaf")),
        "{:?}",
        b.recompiled()
    );
    assert!(!b.recompiled().is_empty());
}
