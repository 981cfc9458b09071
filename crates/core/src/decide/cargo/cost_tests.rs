//! Budgets by expected rebuild time: the closure is charged, and cheap bytes go first.

use super::tests::{DAY, ago, fs, incr, removed, run, run_recorded, settings, target, unit};
use super::*;
use crate::model::{ByKind, LastUse, Part, ProfileState, Signal, TargetDir, Unit};
use std::path::PathBuf;

/// `u` whose last build took `secs`.
fn took(mut u: Unit, secs: u64) -> Unit {
    u.invoked = u.finished.map(|f| f - Duration::from_secs(secs));
    u
}

fn cost_settings(budget: u64) -> Settings {
    Settings {
        target_budget: Some(SizeSpec::Bytes(budget)),
        eviction: Eviction::Cost,
        ..settings()
    }
}

#[test]
fn removing_a_dependency_charges_its_dependents() {
    // 1 is cheap itself (1 s) but 2 depends on it and takes 100 s; 3 stands alone at 50 s.
    let mut dependent = took(unit(2, 5 * DAY, 1), 100);
    dependent.deps = vec![1001];
    let t = target(
        "t",
        vec![
            took(unit(1, 5 * DAY, 100), 1),
            dependent,
            took(unit(3, 5 * DAY, 100), 50),
        ],
    );
    let targets = [t];
    let p = run(&targets, &cost_settings(150), &fs(1_000_000), None);
    assert_eq!(removed(&p, &targets), [(0, 3, Rule::TargetBudget)]);
    assert!(
        p.actions[0].reason.contains("~50 s to rebuild"),
        "{}",
        p.actions[0].reason
    );
    assert_eq!(p.actions[0].rebuild_seconds, Some(50.0));
    // By age alone the dependency (and with it, its dependent) would have gone.
    let lru = Settings {
        eviction: Eviction::Lru,
        ..cost_settings(150)
    };
    let mut older = targets.clone();
    older[0].units[0].last_used = ago(9 * DAY);
    older[0].units[1].last_used = ago(9 * DAY);
    let p = run(&older, &lru, &fs(1_000_000), None);
    assert_eq!(
        removed(&p, &older),
        [(0, 2, Rule::TargetBudget), (0, 1, Rule::TargetBudget)]
    );
    // And when the cost budget takes a dependency, its reason names what goes with it.
    let mut only = targets.clone();
    only[0].units.truncate(2);
    let p = run(&only, &cost_settings(10), &fs(1_000_000), None);
    let root = p
        .actions
        .iter()
        .find(|a| a.item.part == Part::Unit(0))
        .unwrap();
    assert!(
        root.reason.contains("~101 s to rebuild with its dependent"),
        "{}",
        root.reason
    );
}

#[test]
fn a_cheap_big_incremental_dir_goes_before_an_expensive_small_unit_of_the_same_age() {
    // Unit 1 took 60 s and holds 40 bytes; crate 2 compiled in 2 s and has 400 bytes of
    // incremental data; both last used 3 days ago.
    let mut t = target(
        "t",
        vec![
            took(unit(1, 3 * DAY, 40), 60),
            took(unit(2, 3 * DAY, 20), 2),
        ],
    );
    let mut inc = incr("p2-aaaa", 3 * DAY, vec![1]);
    inc.usage.bytes = 400;
    inc.reclaimable = 400;
    t.incremental.push(inc);
    t.usage.incremental.bytes = 400;
    let targets = [t];
    let p = run(&targets, &cost_settings(100), &fs(1_000_000), None);
    let parts: Vec<Part> = p.actions.iter().map(|a| a.item.part).collect();
    assert_eq!(parts, [Part::Incremental(0)], "{:#?}", p.actions);
    let a = &p.actions[0];
    assert!(
        a.reason.contains("starts from scratch, ~1.4 s more"),
        "{}",
        a.reason
    );
    assert_eq!(a.rebuild_seconds, Some(1.4));
    // By age alone, the older unit goes first, incremental data never.
    let lru = Settings {
        eviction: Eviction::Lru,
        ..cost_settings(100)
    };
    let mut older = targets.clone();
    older[0].units[0].last_used = ago(4 * DAY);
    let p = run(&older, &lru, &fs(1_000_000), None);
    assert_eq!(p.actions[0].item.part, Part::Unit(0));
}

#[test]
fn recent_use_makes_data_dearer_and_estimates_say_so() {
    // The same compile time and size: the one used longer ago is less likely to be needed.
    let t = target(
        "t",
        vec![
            took(unit(1, 2 * DAY, 100), 30),
            took(unit(2, 20 * DAY, 100), 30),
        ],
    );
    let targets = [t];
    let p = run(&targets, &cost_settings(150), &fs(1_000_000), None);
    assert_eq!(removed(&p, &targets), [(0, 2, Rule::TargetBudget)]);
    // No timestamps: estimated from size, and the reason says so.
    let mut blind = targets.clone();
    for u in &mut blind[0].units {
        u.invoked = None;
    }
    let p = run(&blind, &cost_settings(150), &fs(1_000_000), None);
    assert!(
        p.actions[0].reason.contains("estimated from size"),
        "{}",
        p.actions[0].reason
    );
}

/// What a daemon watching `t` for 16 days recorded: 20 builds of unit `often`, none of the rest.
fn counted(t: &TargetDir, often: usize) -> LastUse {
    let mut uses = LastUse::default();
    for (i, u) in t.units.iter().enumerate() {
        uses.observe(&t.path, &u.fingerprint_dir, ago(16 * DAY));
        if i == often {
            for b in 0..20u32 {
                let at = ago(16 * DAY) + Duration::from_secs(u64::from(b) * 60_000);
                let build = at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                uses.record_use(&t.path, &u.fingerprint_dir, at, build);
            }
        }
    }
    uses
}

#[test]
fn data_the_daemon_saw_used_often_is_dearer() {
    // Same compile time, size and last use: the one the daemon saw used often stays, whichever
    // it is.
    let t = target(
        "t",
        vec![
            took(unit(1, 2 * DAY, 100), 30),
            took(unit(2, 2 * DAY, 100), 30),
        ],
    );
    let targets = [t];
    for (often, goes) in [(1, 1), (0, 2)] {
        let uses = counted(&targets[0], often);
        let p = run_recorded(
            &targets,
            &cost_settings(150),
            &fs(1_000_000),
            None,
            Signal::Relatime,
            Some(&uses),
        );
        assert_eq!(removed(&p, &targets), [(0, goes, Rule::TargetBudget)]);
    }
}

#[test]
fn a_cost_budget_keeps_what_every_budget_keeps() {
    // Everything over budget: a unit, its incremental data and orphaned outputs.
    let build = |busy: bool, young: bool| {
        let age = if young {
            Duration::from_secs(60)
        } else {
            9 * DAY
        };
        let mut t = target("t", vec![took(unit(1, age, 100), 5)]);
        t.incremental.push(incr("p1-aaaa", age, vec![0]));
        t.orphans.push(crate::model::Orphan {
            key: t.units[0].key,
            paths: vec![PathBuf::from("debug/deps/libgone-0000000000000009.rlib")],
            usage: ByKind::default(),
            reclaimable: 50,
            newest_mtime: ago(age),
        });
        if busy {
            t.profiles[0].state = ProfileState::Busy;
        }
        [t]
    };
    let mut s = cost_settings(0);
    s.rules.incremental = false;
    s.rules.stale = false;
    // A build holds the profile: nothing goes, whatever it costs.
    let targets = build(true, false);
    assert!(run(&targets, &s, &fs(1_000_000), None).actions.is_empty());
    // Used or written within min-age: nothing goes.
    let targets = build(false, true);
    assert!(run(&targets, &s, &fs(1_000_000), None).actions.is_empty());
    // Otherwise all of it does, whole: the unit with its incremental data, and the orphans.
    let targets = build(false, false);
    let p = run(&targets, &s, &fs(1_000_000), None);
    let mut parts: Vec<Part> = p.actions.iter().map(|a| a.item.part).collect();
    parts.sort();
    assert_eq!(
        parts,
        [Part::Unit(0), Part::Incremental(0), Part::Orphan(0)]
    );
}

#[test]
fn an_older_generation_the_latest_build_did_not_use_costs_the_next_build_nothing() {
    // Two builds of one binary: 1 three weeks ago on 2, its older dependency; 3 now on 4.
    // 2 and 4 are two versions of one crate (rivals), 1 and 3 two builds of the same binary.
    let rival = |mut u: Unit, package: &str, target: &str| {
        u.package = package.into();
        u.targets = vec![target.into()];
        u
    };
    let mut units = vec![
        took(rival(unit(1, 21 * DAY, 100), "app", "bin-app"), 30),
        took(rival(unit(2, 21 * DAY, 100), "dep", "lib-dep"), 40),
        took(rival(unit(3, DAY / 24, 100), "app", "bin-app"), 30),
        took(rival(unit(4, DAY / 24, 100), "dep", "lib-dep"), 40),
    ];
    units[0].deps = vec![1002];
    units[2].deps = vec![1004];
    let targets = [target("t", units)];
    // What the budget takes first is the old generation: nothing the next build compiles.
    let p = run(&targets, &cost_settings(200), &fs(1_000_000), None);
    assert_eq!(removed(&p, &targets).len(), 2, "{:?}", p.actions);
    let r = p.rebuild();
    assert_eq!((r.units, r.unused_units), (0, 2), "{r:?}");
    assert!(r.wall_seconds.abs() < 1e-9, "{r:?}");
    // Everything: the latest build's two units are compiled again, one after the other.
    let p = run(&targets, &cost_settings(0), &fs(1_000_000), None);
    let r = p.rebuild();
    assert_eq!((r.units, r.unused_units), (2, 2), "{r:?}");
    assert!((r.wall_seconds - 70.0).abs() < 1e-6, "{r:?}");
    assert!((r.budgets_cpu_seconds - 70.0).abs() < 1e-6, "{r:?}");
}
