//! Safety: what cachekeeper must never do, each shown on a real target dir.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use cachekeeper_core::decide::cargo as policy;
use cachekeeper_core::model::{
    ActionResult, CargoAction, CargoPlan, Mode, Part, Signal, Status, TargetDir,
};
use cachekeeper_sys::act::sweep::{self, Observer};
use cachekeeper_sys::measure::inventory;

use crate::support::{DAY, Fixture, Krate, ck, fingerprint_dirs, removed_units};

/// A workspace with one app and one dependency (with a build script), built, then left
/// unused for two months: every unit in it is stale.
fn stale_workspace() -> Fixture {
    let f = Fixture::new();
    f.app_and_dep();
    let b = f.cargo(&["build"]);
    assert!(b.success, "{}", b.stderr);
    f.pass_time(60 * DAY);
    f
}

/// The scan and plan cachekeeper would make with default rules, in-process.
fn plan_for(f: &Fixture) -> (Vec<TargetDir>, CargoPlan) {
    let target = inventory::scan(&f.target(), 2).unwrap();
    let fs = cachekeeper_sys::os::disk::measure(&f.target()).unwrap();
    let settings = policy::Settings {
        rules: cachekeeper_core::config::Rules {
            incremental: true,
            toolchains: false,
            stale: true,
            budgets: false,
        },
        min_age: Duration::from_secs(3600),
        stale_after: 30 * DAY,
        incremental_max_age: 14 * DAY,
        target_budget: None,
        total_budget: None,
        min_free: None,
        eviction: cachekeeper_core::config::Eviction::Cost,
        superseded_after: None,
    };
    let targets = vec![target];
    let plan = policy::plan(&policy::Input {
        targets: targets
            .iter()
            .map(|dir| policy::Target {
                dir,
                signal: Signal::Relatime,
                watched_since: None,
                fs: cachekeeper_core::model::FsId(0),
            })
            .collect(),
        filesystems: &[fs],
        toolchains: None,
        settings: &settings,
        uses: None,
        now: SystemTime::now(),
    });
    (targets, plan)
}

/// Carries `plan` out for real, `observer` watching.
fn execute(
    targets: &[TargetDir],
    plan: &CargoPlan,
    observer: &mut dyn Observer,
) -> cachekeeper_core::model::SweepReport {
    sweep::sweep(targets, plan, Mode::Execute, None, observer, None)
}

fn unit_named<'a>(
    t: &'a TargetDir,
    prefix: &str,
    target_file: &str,
) -> (usize, &'a cachekeeper_core::model::Unit) {
    t.units
        .iter()
        .enumerate()
        .find(|(_, u)| u.name().starts_with(prefix) && u.targets.iter().any(|x| x == target_file))
        .unwrap_or_else(|| panic!("no unit {prefix} with {target_file}"))
}

fn canary(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, "must survive").unwrap();
    p
}

#[test]
fn dirs_without_cargos_tag_are_never_touched() {
    let f = stale_workspace();
    // The same build output, but not tagged by cargo (or tagged by another tool).
    for (dir, tag) in [
        ("untagged", None),
        (
            "other-tool",
            Some("Signature: 8a477f597d28d172789f06886806bc55\n# made by another tool\n"),
        ),
    ] {
        let copy = f.ws.join(dir);
        assert!(
            Command::new("cp")
                .arg("-a")
                .arg(f.target())
                .arg(&copy)
                .status()
                .unwrap()
                .success()
        );
        match tag {
            None => std::fs::remove_file(copy.join("CACHEDIR.TAG")).unwrap(),
            Some(t) => std::fs::write(copy.join("CACHEDIR.TAG"), t).unwrap(),
        }
    }
    // Copying read every file (and so moved atimes): let the two months pass again.
    f.pass_time(60 * DAY);
    let before: Vec<u64> = ["untagged", "other-tool"]
        .iter()
        .map(|d| f.du(&f.ws.join(d)))
        .collect();
    let report = f.ck_json(&["clean"]);
    assert!(
        !removed_units(&report).is_empty(),
        "the tagged dir should be cleaned"
    );
    assert!(
        report["actions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["target"] == f.target().to_str().unwrap())
    );
    let after: Vec<u64> = ["untagged", "other-tool"]
        .iter()
        .map(|d| f.du(&f.ws.join(d)))
        .collect();
    assert_eq!(before, after);
    // Pointing at an untagged dir directly finds nothing to touch either.
    let scan = f.ck_json(&["scan", f.ws.join("untagged").to_str().unwrap()]);
    assert_eq!(scan["targets"].as_array().unwrap().len(), 0);
}

#[test]
fn symlinks_inside_a_target_dir_are_removed_as_links_never_followed() {
    let f = stale_workspace();
    let outside = f.dir.path().join("outside");
    let c1 = canary(&outside, "out-canary");
    let c2 = canary(&outside, "file-canary");
    // A stale unit's OUT_DIR replaced by a link to a directory outside, and a link in deps/
    // named like an artifact of a stale unit, pointing at a file outside.
    let t = inventory::scan(&f.target(), 2).unwrap();
    let (_, run) = unit_named(&t, "dep-", "run-build-script-build-script-build");
    let out_dir = f.target().join(&run.paths[1]).join("out");
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::os::unix::fs::symlink(&outside, &out_dir).unwrap();
    let (_, lib) = unit_named(&t, "dep-", "lib-dep");
    let fake = f
        .target()
        .join(format!("debug/deps/libdep-{:016x}.so", lib.key.hash));
    std::os::unix::fs::symlink(&c2, &fake).unwrap();

    let report = f.ck_json(&["clean"]);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert!(
        std::fs::symlink_metadata(&out_dir).is_err() && std::fs::symlink_metadata(&fake).is_err()
    );
    assert_eq!(std::fs::read_to_string(&c1).unwrap(), "must survive");
    assert_eq!(std::fs::read_to_string(&c2).unwrap(), "must survive");
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 2);
}

/// Replaces a directory by a link to `to` just before the sweep reaches a given action.
struct SwapBefore {
    at: usize,
    seen: usize,
    dir: PathBuf,
    to: PathBuf,
}

impl Observer for SwapBefore {
    fn before(&mut self, _t: &TargetDir, _a: &CargoAction) {
        if self.seen == self.at {
            let aside = self.dir.with_extension("moved-away");
            std::fs::rename(&self.dir, aside).unwrap();
            std::os::unix::fs::symlink(&self.to, &self.dir).unwrap();
        }
        self.seen += 1;
    }
}

#[test]
fn nothing_outside_is_touched_when_a_dir_becomes_a_symlink_mid_clean() {
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    assert!(plan.actions.len() >= 4);
    // Just before the first action, `debug/deps` becomes a link to a directory holding files
    // with the very names the plan is about to delete.
    let outside = f.dir.path().join("outside");
    let mut canaries = Vec::new();
    for u in &targets[0].units {
        for p in &u.paths {
            if p.starts_with("debug/deps") {
                canaries.push(canary(&outside, p.file_name().unwrap().to_str().unwrap()));
            }
        }
    }
    assert!(!canaries.is_empty());
    let mut swap = SwapBefore {
        at: 0,
        seen: 0,
        dir: f.target().join("debug/deps"),
        to: outside.clone(),
    };
    let report = execute(&targets, &plan, &mut swap);
    for c in &canaries {
        assert_eq!(
            std::fs::read_to_string(c).unwrap(),
            "must survive",
            "{}",
            c.display()
        );
    }
    // The removals that would have gone through the link are reported, not done.
    assert!(report.errors > 0);
    assert!(report.results.iter().any(|r| r.status == Status::Partial));
    // The link itself is still there: it was never a planned path.
    assert!(
        std::fs::symlink_metadata(f.target().join("debug/deps"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_unit_dir_swapped_for_a_symlink_mid_clean_is_unlinked_not_followed() {
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    let (idx, run) = unit_named(&targets[0], "dep-", "run-build-script-build-script-build");
    let build_dir = f.target().join(&run.paths[1]);
    assert!(build_dir.starts_with(f.target().join("debug/build")));
    let at = plan
        .actions
        .iter()
        .position(|a| a.item.part == Part::Unit(idx))
        .unwrap();
    let outside = f.dir.path().join("outside");
    let c = canary(&outside, "output");
    let mut swap = SwapBefore {
        at,
        seen: 0,
        dir: build_dir.clone(),
        to: outside.clone(),
    };
    execute(&targets, &plan, &mut swap);
    assert_eq!(std::fs::read_to_string(&c).unwrap(), "must survive");
    assert!(
        std::fs::symlink_metadata(&build_dir).is_err(),
        "the link should be gone"
    );
}

/// A build script that waits until `release` exists, after creating `started`.
fn slow_build_script(release: &Path, started: &Path) -> String {
    format!(
        "fn main() {{\n    std::fs::write({started:?}, \"\").unwrap();\n    let t = std::time::Instant::now();\n    \
         while !std::path::Path::new({release:?}).exists() {{\n        \
         assert!(t.elapsed().as_secs() < 120, \"never released\");\n        \
         std::thread::sleep(std::time::Duration::from_millis(20));\n    }}\n}}\n"
    )
}

fn wait_for(p: &Path) {
    let t = Instant::now();
    while !p.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "timed out waiting for {}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_profile_where_cargo_builds_is_skipped_and_reported_busy() {
    let f = Fixture::new();
    f.workspace(&["a", "slow"]);
    f.krate(&Krate {
        name: "a",
        ..Krate::default()
    });
    f.krate(&Krate {
        name: "slow",
        build_rs: true,
        ..Krate::default()
    });
    let (release, started) = (f.dir.path().join("release"), f.dir.path().join("started"));
    f.write("slow/build.rs", &slow_build_script(&release, &started));
    assert!(f.cargo(&["build", "-p", "a"]).success);
    f.pass_time(60 * DAY);
    let stale = fingerprint_dirs(&f.target(), "debug");

    let mut build = Command::new("cargo");
    build
        .args(["build", "--offline", "-p", "slow"])
        .current_dir(&f.ws)
        .env("CARGO_TARGET_DIR", f.target())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = build.spawn().unwrap();
    wait_for(&started);

    let scan = f.ck_json(&["scan"]);
    assert_eq!(
        scan["targets"][0]["profiles"][0]["state"], "busy",
        "{scan:#}"
    );
    // A dry run beside the build names the profile it leaves alone, what that keeps, and
    // why nothing goes (it used to say every target dir was within its rules).
    let dry = f.ck(&["clean", "--dry-run"]);
    let text = String::from_utf8_lossy(&dry.stdout);
    let debug = format!("{}/debug", f.target().display());
    assert!(
        text.contains(&format!("Left alone: {debug}"))
            && text.contains("a build holds cargo's lock")
            && text.contains("run again when the build is done")
            && !text.contains("within its rules"),
        "{text}"
    );
    let dry = f.ck_json(&["clean", "--dry-run"]);
    assert_eq!(
        dry["skipped_profiles"][0]["protection"], "build-running",
        "{dry:#}"
    );
    assert_eq!(dry["skipped_profiles"][0]["profile"], "debug");
    assert!(
        dry["kept"]["build-running"]["bytes"].as_u64().unwrap() > 0,
        "{dry:#}"
    );
    assert!(dry["blocked"].as_str().unwrap().contains(&debug), "{dry:#}");
    let before = f.du(&f.target().join("debug/.fingerprint"));
    let report = f.ck_json(&["clean"]);
    assert!(removed_units(&report).is_empty(), "{report:#}");
    assert_eq!(f.du(&f.target().join("debug/.fingerprint")), before);
    for s in &stale {
        assert!(f.target().join("debug/.fingerprint").join(s).exists());
    }

    std::fs::write(&release, "").unwrap();
    assert!(child.wait().unwrap().success());
    // Once the build is over, the stale units go.
    let report = f.ck_json(&["clean"]);
    assert!(!removed_units(&report).is_empty());
}

/// Starts a build when the sweep reaches its first action, and watches it wait for us.
struct BuildDuringSweep {
    ws: PathBuf,
    target: PathBuf,
    child: Option<std::process::Child>,
    blocked: Option<mpsc::Receiver<String>>,
    saw_blocking: bool,
}

impl Observer for BuildDuringSweep {
    fn before(&mut self, _t: &TargetDir, _a: &CargoAction) {
        if self.child.is_some() {
            return;
        }
        let mut child = Command::new("cargo")
            .args(["build", "--offline"])
            .current_dir(&self.ws)
            .env("CARGO_TARGET_DIR", &self.target)
            .env("CARGO_TERM_COLOR", "never")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("Blocking waiting for file lock") => {
                    self.saw_blocking = true;
                    break;
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        self.child = Some(child);
        self.blocked = Some(rx);
    }
}

#[test]
fn a_build_that_starts_while_we_delete_waits_for_us() {
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    let mut obs = BuildDuringSweep {
        ws: f.ws.clone(),
        target: f.target(),
        child: None,
        blocked: None,
        saw_blocking: false,
    };
    let report = execute(&targets, &plan, &mut obs);
    assert!(
        report.results.iter().all(|r| r.status == Status::Removed),
        "{report:?}"
    );
    assert!(
        obs.saw_blocking,
        "cargo did not wait for cachekeeper's lock"
    );
    // Released: the build goes on and succeeds, rebuilding what was removed.
    assert!(obs.child.take().unwrap().wait().unwrap().success());
    assert!(f.run_bin("debug/app").contains("dep 0.1.0"));
}

/// Deletes a unit's files just before the sweep reaches it, as a racing `cargo clean` would.
struct RacingClean(PathBuf, Vec<PathBuf>);

impl Observer for RacingClean {
    fn before(&mut self, _t: &TargetDir, _a: &CargoAction) {
        for p in self.1.drain(..) {
            let full = self.0.join(p);
            let _ = std::fs::remove_dir_all(&full).or_else(|_| std::fs::remove_file(&full));
        }
    }
}

#[test]
fn files_that_vanish_mid_clean_are_not_errors() {
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    let all: Vec<PathBuf> = targets[0]
        .units
        .iter()
        .flat_map(|u| u.paths.clone())
        .collect();
    let mut race = RacingClean(f.target(), all);
    let report = execute(&targets, &plan, &mut race);
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.results.iter().all(|r| r.status == Status::Removed));
}

#[test]
fn a_clean_stops_between_units_when_asked() {
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    let stop = std::sync::atomic::AtomicBool::new(false);
    struct StopAfterFirst<'a>(&'a std::sync::atomic::AtomicBool);
    impl Observer for StopAfterFirst<'_> {
        fn after(&mut self, _t: &TargetDir, _a: &CargoAction, _r: &ActionResult) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let report = sweep::sweep(
        &targets,
        &plan,
        Mode::Execute,
        Some(&stop),
        &mut StopAfterFirst(&stop),
        None,
    );
    assert_eq!(report.results[0].status, Status::Removed);
    assert!(
        report.results[1..]
            .iter()
            .all(|r| r.status == Status::Stopped)
    );
    // The first unit went whole; the others are untouched, so cargo is consistent.
    let again = f.cargo(&["build"]);
    assert!(again.success);
}

/// Runs cachekeeper as `nobody` (requires root to switch).
fn ck_as_nobody(f: &Fixture, args: &[&str]) -> std::process::Output {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_cachekeeper"))
        .arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent");
    c.output().unwrap()
}

#[test]
fn permission_errors_are_counted_and_reported_not_fatal() {
    if !crate::suite::root("to run cachekeeper as another user") {
        return;
    }
    let f = stale_workspace();
    // `nobody` may read the workspace but not one unit's build dir, and may delete nothing.
    crate::support::open_to_everyone(f.dir.path());
    let t = inventory::scan(&f.target(), 2).unwrap();
    let (_, run) = unit_named(&t, "dep-", "run-build-script-build-script-build");
    let hidden = f.target().join(&run.paths[1]);
    assert!(
        Command::new("chmod")
            .arg("700")
            .arg(&hidden)
            .status()
            .unwrap()
            .success()
    );

    let scan = ck_as_nobody(&f, &["scan", "--json"]);
    assert_eq!(
        scan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert!(
        v["targets"][0]["errors"]["permission_denied"]
            .as_u64()
            .unwrap()
            >= 1,
        "{v:#}"
    );

    let clean = ck_as_nobody(&f, &["clean", "--json"]);
    assert_eq!(clean.status.code(), Some(1), "removals failed: exit 1");
    let v: serde_json::Value = serde_json::from_slice(&clean.stdout).unwrap();
    assert!(v["errors"].as_u64().unwrap() > 0);
    assert!(
        v["actions"][0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("Permission denied"),
        "{v:#}"
    );
    // Root's files are all still there.
    assert!(hidden.exists() && f.target().join("debug/app").exists());
}

#[test]
fn on_noatime_mounts_old_builds_are_not_mistaken_for_unused_ones() {
    if !crate::suite::root("to mount a noatime tmpfs") {
        return;
    }
    let f = Fixture::new();
    let Some(mnt) = crate::support::Tmpfs::mount(f.dir.path().join("noatime"), "noatime,size=256m")
    else {
        return;
    };
    let target = mnt.0.join("target");
    f.workspace(&["dep"]);
    f.krate(&Krate {
        name: "dep",
        ..Krate::default()
    });
    let t = target.to_str().unwrap();
    assert!(
        f.cargo_with(None, &[("CARGO_TARGET_DIR", t)], &["build"])
            .success
    );
    crate::support::shift_times(f.dir.path(), 60 * DAY);
    // Built two months ago, and used just now, which noatime cannot record.
    assert!(
        f.cargo_with(None, &[("CARGO_TARGET_DIR", t)], &["build"])
            .success
    );
    f.config(&format!("roots = [{t:?}]"));
    let scan = f.ck_json(&["scan"]);
    assert_eq!(scan["targets"][0]["last_use_signal"], "build-time-only");
    assert!(scan["targets"][0]["notes"].to_string().contains("noatime"));
    let report = f.ck_json(&["clean"]);
    assert!(removed_units(&report).is_empty(), "{report:#}");
}

#[test]
fn outputs_whose_fingerprint_is_gone_are_removed_as_orphans() {
    let f = stale_workspace();
    let t = inventory::scan(&f.target(), 2).unwrap();
    let (_, lib) = unit_named(&t, "dep-", "lib-dep");
    std::fs::remove_dir_all(f.target().join(&lib.fingerprint_dir)).unwrap();
    f.config("stale-after = \"1000d\"");
    let report = f.ck_json(&["clean"]);
    let orphans: Vec<&serde_json::Value> = report["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["item"] == "orphan")
        .collect();
    assert_eq!(orphans.len(), 1, "{report:#}");
    assert_eq!(orphans[0]["rule"], "orphaned");
    assert!(
        !f.target()
            .join(format!("debug/deps/libdep-{:016x}.rlib", lib.key.hash))
            .exists()
    );
    assert!(f.cargo(&["build"]).success);
}

#[test]
fn nothing_is_deleted_outside_the_target_dir_even_via_the_cli_paths() {
    // A PATH inside a target dir means that target dir, never its parent.
    let f = stale_workspace();
    let keep = canary(&f.ws, "keep-me");
    let out = ck()
        .arg("--config")
        .arg(f.dir.path().join("cachekeeper.toml"))
        .args(["clean", "--json"])
        .arg(f.target().join("debug/deps"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!removed_units(&v).is_empty());
    assert!(keep.exists() && f.ws.join("app/src/main.rs").exists());
}

#[test]
fn a_target_dir_that_lost_its_tag_or_was_replaced_after_the_scan_is_left_alone() {
    // The tag removed between plan and sweep.
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    assert!(!plan.actions.is_empty());
    std::fs::remove_file(f.target().join("CACHEDIR.TAG")).unwrap();
    let before = f.du(&f.target());
    let report = execute(&targets, &plan, &mut sweep::NoObserver);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.status == Status::SkippedChanged),
        "{report:?}"
    );
    assert_eq!(f.du(&f.target()), before);

    // The dir replaced by another one (same path, same tag, different directory).
    let f = stale_workspace();
    let (targets, plan) = plan_for(&f);
    let copy = f.ws.join("copy");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(f.target())
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    std::fs::rename(f.target(), f.ws.join("moved-away")).unwrap();
    std::fs::rename(&copy, f.target()).unwrap();
    let before = f.du(&f.target());
    let report = execute(&targets, &plan, &mut sweep::NoObserver);
    assert!(
        report
            .results
            .iter()
            .all(|r| r.status == Status::SkippedChanged),
        "{report:?}"
    );
    assert_eq!(f.du(&f.target()), before);
}

/// Issue: another user's scan (who may not read with `O_NOATIME`) moved the access times of the
/// fingerprint files it read, and that made every unit it looked at look just used. Only files
/// cachekeeper never opens tell a unit's last use, whatever the mount's atime options.
#[test]
fn another_users_scan_on_a_strictatime_mount_does_not_make_units_look_used() {
    if !crate::suite::root("to mount a tmpfs and to run cachekeeper as another user") {
        return;
    }
    let f = Fixture::new();
    let Some(mnt) =
        crate::support::Tmpfs::mount(f.dir.path().join("strict"), "strictatime,size=256m")
    else {
        return;
    };
    let target = mnt.0.join("target");
    let t = target.to_str().unwrap();
    f.app_and_dep();
    assert!(
        f.cargo_with(None, &[("CARGO_TARGET_DIR", t)], &["build"])
            .success
    );
    crate::support::shift_times(f.dir.path(), 60 * DAY);
    crate::support::shift_session_names(&target, 60 * DAY);
    f.config(&format!("roots = [{t:?}]"));
    crate::support::open_to_everyone(f.dir.path());
    crate::support::open_to_everyone(&mnt.0);
    for args in [
        &["scan", "--cargo-only", "--json"][..],
        &["clean", "--dry-run", "--cargo-only", "--json"],
    ] {
        let out = ck_as_nobody(&f, args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report = f.ck_json(&["clean", "--dry-run", "--cargo-only"]);
    let stale = removed_units(&report);
    assert_eq!(
        stale.len(),
        4,
        "every unit is two months unused: {report:#}"
    );
}

/// Issue: `scan` and `clean` as a user who cannot enter a target dir said every target dir was
/// within its rules, and exited 0. They name what they could not read, and exit 1.
#[test]
fn a_target_dir_that_cannot_be_entered_is_named_and_exits_1() {
    if !crate::suite::root("to run cachekeeper as another user") {
        return;
    }
    let f = stale_workspace();
    crate::support::open_to_everyone(f.dir.path());
    assert!(
        Command::new("chmod")
            .arg("700")
            .arg(f.target())
            .status()
            .unwrap()
            .success()
    );
    let t = f.target().display().to_string();
    for args in [
        &["scan", "--cargo-only"][..],
        &["clean", "--dry-run", "--cargo-only"],
    ] {
        let out = ck_as_nobody(&f, args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(
            text.contains(&t) && text.contains("could not be read"),
            "{args:?}: {text}"
        );
        assert!(!text.contains("within its rules"), "{args:?}: {text}");
    }
}

/// Runs `mount` with `args`; where that cannot be done, see [`crate::suite::prerequisite`].
fn mount(args: &[&str]) -> bool {
    let ok = Command::new("mount")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    crate::suite::prerequisite(
        ok,
        &format!("a machine where root may mount (mount {})", args.join(" ")),
        "run the tests outside an unprivileged container",
    )
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Hardening issue, item 1: a directory mounted inside a unit that goes (a bind mount of the
/// same filesystem in a build script's `out/`, a tmpfs in an incremental session) was emptied.
/// Nothing on another mount is ever entered or removed: it is kept, reported, and the rest of
/// the unit goes as before, fingerprint first.
#[test]
fn removal_never_crosses_a_mount_point() {
    if !crate::suite::root("to mount") {
        return;
    }
    let f = stale_workspace();
    let t = inventory::scan(&f.target(), 2).unwrap();
    let (_, run) = unit_named(&t, "dep-", "run-build-script-build-script-build");
    let out = f.target().join(&run.paths[1]).join("out");
    let precious = f.dir.path().join("precious");
    std::fs::create_dir_all(precious.join("keep")).unwrap();
    std::fs::write(precious.join("keep/data"), "must survive").unwrap();
    if !mount(&["--bind", precious.to_str().unwrap(), out.to_str().unwrap()]) {
        return;
    }
    let _bind = Unmount(out.clone());
    let inc = t.incremental.first().expect("an incremental dir");
    let session = std::fs::read_dir(f.target().join(&inc.path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let mnt = session.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    if !mount(&["-t", "tmpfs", "tmpfs", mnt.to_str().unwrap()]) {
        return;
    }
    let _tmpfs = Unmount(mnt.clone());
    std::fs::write(mnt.join("also-precious"), "must survive").unwrap();

    let scan = f.ck_json(&["scan", "--cargo-only"]);
    let mounts = scan["targets"][0]["errors"]["mount_points"].to_string();
    assert!(
        mounts.contains("/out") && mounts.contains("/mnt"),
        "{scan:#}"
    );
    let dry = f.ck_json(&["clean", "--dry-run", "--cargo-only"]);
    let report = f.ck_json(&["clean", "--cargo-only"]);
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(
        dry["reclaimed_bytes"], report["reclaimed_bytes"],
        "dry run == real run"
    );
    assert!(report.to_string().contains("mount_points"), "{report:#}");
    // Nothing behind either mount was touched; the unit's fingerprint went.
    assert_eq!(
        std::fs::read_to_string(precious.join("keep/data")).unwrap(),
        "must survive"
    );
    assert_eq!(
        std::fs::read_to_string(mnt.join("also-precious")).unwrap(),
        "must survive"
    );
    assert!(!f.target().join(&run.fingerprint_dir).exists());
}

/// Hardening issue, item 2: removal recursed once per directory level, so ~10k nested dirs in a
/// unit's `build/*/out` aborted `clean` (stack overflow) after its fingerprint went. Removal
/// and the scan are iterative, with few descriptors (here under a limit of 64) at any depth,
/// on paths far beyond PATH_MAX.
#[test]
fn a_deep_tree_is_scanned_and_removed_with_few_descriptors() {
    let f = stale_workspace();
    let t = inventory::scan(&f.target(), 2).unwrap();
    let (_, run) = unit_named(&t, "dep-", "run-build-script-build-script-build");
    let out = f.target().join(&run.paths[1]).join("out");
    // Deep, and bushy enough that a walker holding a descriptor per level would need 10k.
    crate::support::deep_tree(&out.join("deep"), 10_000, 1);
    let limited = |args: &[&str]| {
        let mut c = Command::new("prlimit");
        c.args(["--nofile=64", "--"])
            .arg(env!("CARGO_BIN_EXE_cachekeeper"))
            .arg("--config")
            .arg(f.dir.path().join("cachekeeper.toml"))
            .args(args)
            .env("XDG_CONFIG_HOME", "/nonexistent");
        c.output().unwrap()
    };
    let scan = limited(&["scan", "--cargo-only", "--json"]);
    assert_eq!(
        scan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&scan.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&scan.stdout).unwrap();
    assert_eq!(v["targets"][0]["errors"]["other"], 0, "{v:#}");
    assert!(v["targets"][0]["files"].as_u64().unwrap() > 30_000, "{v:#}");
    let clean = limited(&["clean", "--cargo-only", "--json"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    assert!(!out.exists(), "the deep tree went with its unit");
    // The workspace builds again.
    assert!(f.cargo(&["build"]).success);
}
