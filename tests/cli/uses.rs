//! What counts as a use, and the plan it makes: the daemon counts builds (while cargo holds the
//! profile's lock) and nothing else; a fresh daemon, the CLI beside it and the CLI alone make
//! one plan; a unit another version replaced goes (`superseded`); every run lands in history.
//!
//! Nothing here waits on time: [`Barrier`] builds tell when the daemon has seen everything.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::running::{Barrier, Daemon, daemon_section};
use crate::support::{DAY, Fixture, Krate, Tmpfs, removed_units};

/// A daemon watching `f`'s workspace and a barrier crate, on `f`'s config with `cargo` keys.
fn watched(f: &Fixture, cargo: &str, daemon: &str) -> (Daemon, Barrier) {
    let barrier = Barrier::new();
    f.config_with(
        &format!(
            "roots = [{:?}, {}]\n{cargo}",
            f.ws.to_str().unwrap(),
            barrier.root()
        ),
        &daemon_section(f, daemon),
    );
    (Daemon::start(f), barrier)
}

/// Runs a reader of the target dir (a shell command line), checking it succeeded.
fn read(f: &Fixture, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue: any reader of a target dir (cp -a, tar, rsync, cat, grep -r, a backup agent) counted
/// as a build, so nothing ever went stale on a machine with nightly backups. A use is now an
/// open of a unit's files while cargo holds its profile's build lock.
#[test]
fn readers_are_never_uses_and_every_build_is() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    let rsync = crate::support::tool("rsync");
    let (d, barrier) = watched(&f, "", "");
    let mut counted = d.barrier(&barrier);
    assert_eq!(counted, 1, "only the barrier's build");
    let mut readers = vec![
        "cp -a ws/target copy && rm -rf copy",
        "tar cf - -C ws target > /dev/null",
        "find ws/target -name 'dep-*' -type f -exec cat {} + > /dev/null",
        "grep -r --binary-files=text x ws/target > /dev/null || true",
    ];
    if rsync.is_some() {
        readers.push("rsync -a ws/target/ copy/ && rm -rf copy");
    }
    for script in readers {
        for _ in 0..20 {
            read(&f, script);
        }
        let now = d.barrier(&barrier);
        assert_eq!(now, counted + 1, "20 runs of `{script}` counted as uses");
        counted = now;
    }
    assert!(
        d.recorded(&f.target())
            .iter()
            .all(|(_, used, _)| used.is_none()),
        "{:?}",
        d.recorded(&f.target())
    );

    // A no-op build uses every unit of its graph, every time; `cargo check` is a build too.
    for (args, first) in [(&["build"][..], false), (&["check"], true)] {
        if first {
            // The check units are compiled now (writes: uses of this build too).
            assert!(f.cargo(args).success);
            counted = d.barrier(&barrier);
        }
        let noop = f.cargo(args);
        assert!(noop.success && noop.recompiled().is_empty());
        let per_build = d.barrier(&barrier) - counted - 1;
        assert!(
            per_build >= 4,
            "a no-op `cargo {args:?}` used {per_build} units"
        );
        counted += per_build + 1;
        for _ in 0..20 {
            assert!(f.cargo(args).success);
        }
        let now = d.barrier(&barrier);
        assert_eq!(
            now,
            counted + 20 * per_build + 1,
            "not every one of 20 no-op `cargo {args:?}` was counted"
        );
        counted = now;
    }
}

/// A reader copying the target dir while a build runs there adds no use to what the build did
/// not use: it reads files cargo never reads for a unit it does not rebuild.
#[test]
fn a_reader_during_a_build_adds_nothing_the_build_did_not_use() {
    let f = Fixture::new();
    f.workspace(&["idle", "slow"]);
    f.krate(&Krate {
        name: "idle",
        ..Krate::default()
    });
    f.krate(&Krate {
        name: "slow",
        build_rs: true,
        ..Krate::default()
    });
    let started = f.dir.path().join("started");
    // The build script runs for a while, and says when it starts.
    f.write(
        "slow/build.rs",
        &format!(
            "fn main() {{\n    println!(\"cargo:rerun-if-changed=build.rs\");\n    \
             std::fs::write({started:?}, \"\").unwrap();\n    \
             std::thread::sleep(std::time::Duration::from_secs(3));\n}}\n"
        ),
    );
    assert!(f.cargo(&["build"]).success);
    let (d, barrier) = watched(&f, "", "");
    d.barrier(&barrier);
    let _ = std::fs::remove_file(&started);
    // Touched: the build script compiles and runs again, holding the lock for seconds.
    f.write(
        "slow/build.rs",
        &std::fs::read_to_string(f.ws.join("slow/build.rs"))
            .unwrap()
            .replace("secs(3)", "secs(4)"),
    );
    let build = std::thread::spawn({
        let ws = f.ws.clone();
        let target = f.target();
        move || {
            Command::new("cargo")
                .args(["build", "--offline", "-p", "slow"])
                .current_dir(ws)
                .env("CARGO_TARGET_DIR", target)
                .output()
                .unwrap()
        }
    });
    let t = Instant::now();
    while !started.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the build did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    read(&f, "cp -a ws/target copy && rm -rf copy");
    assert!(build.join().unwrap().status.success());
    d.barrier(&barrier);
    let recorded = d.recorded(&f.target());
    let used = |pkg: &str| {
        recorded
            .iter()
            .filter(|(u, _, _)| u.contains(&format!("/{pkg}-")))
            .map(|(_, used, _)| used.is_some())
            .collect::<Vec<_>>()
    };
    assert!(
        !used("idle").is_empty() && used("idle").iter().all(|u| !u),
        "{recorded:?}"
    );
    assert!(used("slow").iter().any(|u| *u), "{recorded:?}");
}

/// The units a clean report removes (or would), and the bytes it frees.
fn plan_of(v: &Value) -> (Vec<String>, u64) {
    let mut units = removed_units(v);
    units.sort();
    (units, v["cargo_reclaimed_bytes"].as_u64().unwrap())
}

/// Issue: a fresh daemon counted first sight as a use: its dry run planned 132 KiB where the CLI
/// planned 4.75 MiB, and a real run then freed nothing with no word why. Where access times
/// are kept, the daemon trusts them up to the moment it began watching, as the CLI does.
#[test]
fn a_fresh_daemon_the_cli_beside_it_and_the_cli_alone_make_one_plan() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    f.config_with("", &daemon_section(&f, ""));
    let alone = plan_of(&f.ck_json(&["clean", "--dry-run", "--cargo-only"]));
    assert!(!alone.0.is_empty(), "nothing stale to plan");
    let (d, _barrier) = watched(&f, "", "");
    let beside = plan_of(&d.json(&["clean", "--dry-run", "--cargo-only"]));
    let daemons = plan_of(&d.json(&["run-now", "--dry-run"]));
    let status = d.json(&["status"]);
    assert_eq!(beside, alone);
    assert_eq!(daemons, alone);
    assert_eq!(
        status["total"]["reclaimable_bytes"].as_u64().unwrap(),
        alone.1
    );
    let real = plan_of(&d.json(&["run-now"]));
    assert_eq!(real, alone, "the real run differs from its dry run");
}

/// On noatime, file times cannot tell what was used before the daemon started: it keeps those
/// units from first sight for stale-after, and every view says so.
#[test]
fn on_noatime_the_daemon_keeps_what_it_cannot_know_and_says_until_when() {
    let f = Fixture::new();
    let Some(mnt) = Tmpfs::mount(f.dir.path().join("noatime"), "noatime,size=128m") else {
        return;
    };
    let target = mnt.0.join("target");
    let t = target.to_str().unwrap().to_string();
    f.app_and_dep();
    assert!(
        f.cargo_with(None, &[("CARGO_TARGET_DIR", &t)], &["build"])
            .success
    );
    crate::support::shift_times(&mnt.0, 60 * DAY);
    crate::support::shift_session_names(&target, 60 * DAY);
    let barrier = Barrier::new();
    f.config_with(
        &format!("roots = [{t:?}, {}]", barrier.root()),
        &daemon_section(&f, ""),
    );
    let d = Daemon::start(&f);
    let dry = d.json(&["run-now", "--dry-run"]);
    assert!(removed_units(&dry).is_empty(), "{dry:#}");
    let kept = &dry["kept"]["unknown-before-watch"];
    assert_eq!(kept["parts"].as_u64(), Some(4), "{dry:#}");
    assert!(kept["until"].is_string(), "{kept:#}");
    let text = String::from_utf8_lossy(&d.ck(&["status"]).stdout).into_owned();
    assert!(
        text.contains("kept until") && text.contains("last use unknown before the daemon started"),
        "{text}"
    );
    let text = String::from_utf8_lossy(&d.ck(&["run-now", "--dry-run"]).stdout).into_owned();
    assert!(
        text.contains("last use unknown before the daemon started"),
        "{text}"
    );
}

/// A crate `lib` at `version` with `features`, and `app` using it with `use_features`.
fn lib_and_app(f: &Fixture, version: &str, use_features: &str) {
    f.workspace(&["app", "lib"]);
    f.krate(&Krate {
        name: "lib",
        version,
        features: &["fast"],
        ..Krate::default()
    });
    let dep = format!("lib = {{ path = \"../lib\"{use_features} }}");
    f.krate(&Krate {
        name: "app",
        bin: true,
        deps: &[dep.as_str()],
        ..Krate::default()
    });
}

/// Issue: after a `cargo update` every unit of the old version, and everything built on it,
/// stayed for a month. After a build the daemon watched, a unit another version or feature set
/// replaced goes (`superseded-after`, here at once), and the next build recompiles nothing.
#[test]
fn superseded_units_go_after_a_watched_build_and_the_next_build_recompiles_nothing() {
    let f = Fixture::new();
    lib_and_app(&f, "0.1.0", "");
    assert!(f.cargo(&["build"]).success);
    let (d, barrier) = watched(&f, "superseded-after = \"0s\"", "");
    let before: Vec<String> = crate::support::fingerprint_dirs(&f.target(), "debug");
    // A version bump and a feature switched on, built under the daemon.
    lib_and_app(&f, "0.2.0", ", features = [\"fast\"]");
    let b = f.cargo(&["build"]);
    assert!(b.success, "{}", b.stderr);
    d.barrier(&barrier);
    let after: Vec<String> = crate::support::fingerprint_dirs(&f.target(), "debug");
    let run = d.json(&["run-now"]);
    let mut gone = removed_units(&run);
    gone.sort();
    let reasons: Vec<&str> = run["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "superseded")
        .map(|a| a["reason"].as_str().unwrap())
        .collect();
    // The old lib and the app built on it: exactly the units of the first build, which the
    // second replaced.
    let new: Vec<String> = after
        .iter()
        .filter(|u| !before.contains(u))
        .cloned()
        .collect();
    assert_eq!(new.len(), before.len(), "{before:?} -> {after:?}");
    assert_eq!(gone, before, "new units: {new:?}\n{run:#}");
    assert!(
        !reasons.is_empty() && reasons.iter().all(|r| r.contains("superseded by")),
        "{reasons:?}"
    );
    // Again at once, now of units a watched build made (cargo read their dep-info right after
    // writing it: an access time the plan ignores must not stop the sweep either).
    lib_and_app(&f, "0.3.0", ", features = [\"fast\"]");
    assert!(f.cargo(&["build"]).success);
    d.barrier(&barrier);
    let run = d.json(&["run-now"]);
    let mut gone = removed_units(&run);
    gone.sort();
    assert_eq!(gone, new, "{run:#}");
    assert!(
        run["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "removed"),
        "{run:#}"
    );
    let again = f.cargo(&["build"]);
    assert!(
        again.success && again.recompiled().is_empty(),
        "{:?}",
        again.recompiled()
    );
}

/// Two versions of one crate that one build uses (syn 1 and syn 2) are never superseded.
#[test]
fn two_versions_one_build_uses_both_stay() {
    let f = Fixture::new();
    for (dir, version) in [("twin1", "1.0.0"), ("twin2", "2.0.0")] {
        let p = f.dir.path().join(dir);
        std::fs::create_dir_all(p.join("src")).unwrap();
        std::fs::write(
            p.join("Cargo.toml"),
            format!("[package]\nname = \"twin\"\nversion = \"{version}\"\nedition = \"2021\"\n"),
        )
        .unwrap();
        std::fs::write(p.join("src/lib.rs"), "pub fn hello() {}\n").unwrap();
    }
    f.workspace(&["app"]);
    f.krate(&Krate {
        name: "app",
        bin: true,
        deps: &[
            "twin1 = { package = \"twin\", path = \"../../twin1\" }",
            "twin2 = { package = \"twin\", path = \"../../twin2\" }",
        ],
        ..Krate::default()
    });
    assert!(f.cargo(&["build"]).success);
    let (d, barrier) = watched(&f, "superseded-after = \"0s\"", "");
    assert!(f.cargo(&["build"]).success);
    d.barrier(&barrier);
    let run = d.json(&["run-now"]);
    assert!(removed_units(&run).is_empty(), "{run:#}");
}

fn history(f: &Fixture) -> Value {
    f.ck_json(&["history"])
}

/// Issue: a `clean` from a timer or by hand wrote no history and no metrics, and `status` with
/// no daemon said "no runs" while the history held some. Every real run is recorded now: in the
/// daemon's history when one answers, else in the state dir.
#[test]
fn every_run_lands_in_history_with_its_origin() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let textfile = f.dir.path().join("metrics/ck.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    f.config_with(
        "",
        &format!(
            "{}\n[metrics]\ntextfile = {:?}\n",
            daemon_section(&f, ""),
            textfile.to_str().unwrap()
        ),
    );
    // No daemon: a dry run is a question (not recorded); a real clean is, with the textfile.
    f.ck_json(&["clean", "--dry-run", "--cargo-only"]);
    assert_eq!(history(&f)["runs"].as_array().unwrap().len(), 0);
    let run = f.ck_json(&["clean", "--cargo-only"]);
    assert!(run["cargo_reclaimed_bytes"].as_u64().unwrap() > 0);
    let h = history(&f);
    assert_eq!(h["runs"][0]["origin"], "cli", "{h:#}");
    assert_eq!(h["runs"][0]["trigger"], "cli");
    assert_eq!(
        h["runs"][0]["reclaimed_bytes"], run["reclaimed_bytes"],
        "{h:#}"
    );
    let prom = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        prom.contains("cachekeeper_reclaimed_bytes_total") && prom.contains("trigger=\"cli\""),
        "{prom}"
    );
    let status = f.ck_json(&["status"]);
    assert_eq!(status["history"]["totals"]["runs"], 1, "{status:#}");
    let text = String::from_utf8_lossy(&f.ck(&["status"]).stdout).into_owned();
    assert!(text.contains("Last runs (history in"), "{text}");
    // A timer's run, likewise.
    f.pass_time(60 * DAY);
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let timer = f.ck_env(
        &["clean", "--json", "--cargo-only"],
        &[("CACHEKEEPER_ORIGIN", "timer")],
    );
    assert!(timer.status.success());
    assert_eq!(history(&f)["runs"][1]["origin"], "timer");

    // With a daemon: the CLI's run is recorded through its socket, in its history and metrics.
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let d = Daemon::start(&f);
    let stale = d.json(&["status"]);
    let out = d.ck(&["clean", "--json", "--cargo-only"]);
    assert!(out.status.success());
    let h = d.json(&["history"]);
    let runs = h["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{h:#}");
    assert_eq!(runs[2]["origin"], "cli");
    assert!(d.log().contains("a cli run reclaimed"), "{}", d.log());
    // `status --refresh` measures again before answering, and says how old its numbers are.
    let fresh = d.json(&["status", "--refresh"]);
    let bytes = |v: &Value| v["total"]["bytes"].as_u64().unwrap();
    assert!(
        bytes(&fresh) < bytes(&stale),
        "{} vs {}",
        bytes(&fresh),
        bytes(&stale)
    );
    assert!(fresh["daemon"]["measured_seconds_ago"].as_u64().unwrap() < 60);
    let text = String::from_utf8_lossy(&d.ck(&["status"]).stdout).into_owned();
    assert!(text.contains("`status --refresh` measures again"), "{text}");
}
