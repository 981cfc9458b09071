//! Conventions users rely on without reading our docs: a one-off policy on the command line
//! (as `cargo sweep -t 30` and `docker builder prune --keep-storage` take one), flags that
//! contradict each other refused, warnings about roots that are not there, the schedule's
//! delay in `status`, and numbers and nouns as people read them.

use std::io::{Read, Write};
use std::net::TcpListener;

use serde_json::Value;

use crate::support::{DAY, Fixture, ck};

fn rules(plan: &Value) -> Vec<String> {
    let mut r: Vec<String> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_string())
        .collect();
    r.sort();
    r.dedup();
    r
}

#[test]
fn a_one_off_policy_overrides_the_config_for_this_run_only() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(10 * DAY);
    // The config: stale after 30 days, no budgets. Ten-day-old units stay.
    f.config("");
    let config = std::fs::read(&f.config).unwrap();
    let on_config = f.ck_json(&["clean", "--dry-run", "--cargo-only"]);
    assert!(rules(&on_config).is_empty(), "{on_config:#}");

    // scan's plan view and a dry run, each with a flag: the same parsers as the config.
    let scan = f.ck_json(&["scan", "--stale-after", "5d"]);
    assert!(
        scan["total"]["reclaimable_by_rule"]["stale"]
            .as_u64()
            .unwrap()
            > 0,
        "{:#}",
        scan["total"]
    );
    let budget = f.ck_json(&["clean", "--dry-run", "--cargo-only", "--budget", "1B"]);
    assert_eq!(rules(&budget), ["target-budget"], "{budget:#}");
    let total = f.ck_json(&["clean", "--dry-run", "--cargo-only", "--total-budget", "1B"]);
    assert_eq!(rules(&total), ["total-budget"], "{total:#}");
    // min-age protects what the flag's stale rule would take (everything is 10 days old).
    let young = f.ck_json(&[
        "clean",
        "--dry-run",
        "--cargo-only",
        "--stale-after",
        "5d",
        "--min-age",
        "20d",
    ]);
    assert!(rules(&young).is_empty(), "{young:#}");

    // A real run with the flag removes what its dry run showed; the config file is untouched
    // and the next run on it plans nothing new.
    let dry = f.ck_json(&["clean", "--dry-run", "--cargo-only", "--stale-after", "5d"]);
    assert_eq!(rules(&dry), ["stale"], "{dry:#}");
    let real = f.ck_json(&["clean", "--cargo-only", "--stale-after", "5d"]);
    assert_eq!(real["planned_bytes"], dry["planned_bytes"]);
    assert_eq!(std::fs::read(&f.config).unwrap(), config);
    assert!(rules(&f.ck_json(&["clean", "--dry-run", "--cargo-only"])).is_empty());

    // A bad value is refused as the config file would refuse it, naming the flag.
    let out = f.ck(&["clean", "--dry-run", "--stale-after", "5 fortnights"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--stale-after") && err.contains("invalid duration"),
        "{err}"
    );
    let out = f.ck(&["scan", "--budget", "12 parsecs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--budget"));
}

#[test]
fn flags_that_contradict_each_other_are_refused_with_exit_2_and_one_sentence() {
    let f = Fixture::new();
    f.config("");
    let ws = f.ws.to_str().unwrap();
    for args in [
        vec!["clean", "--dry-run", "--buildkit-only", ws],
        vec!["clean", "--buildkit-only", "--stale-after", "5d"],
        vec!["scan", "--cargo-only", "--buildkit-budget", "1GiB"],
        vec!["clean", "--cargo-only", "--buildkit-keep", "1d"],
        vec!["clean", "--buildkit-only", "--budget", "1GiB"],
    ] {
        let out = f.ck(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // With --json the refusal is the document.
    let out = f.ck(&["clean", "--buildkit-only", ws, "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["error"]["exit_code"], 2, "{doc:#}");
}

#[test]
fn check_config_warns_about_roots_that_are_not_there() {
    let f = Fixture::new();
    let missing = f.dir.path().join("projcets");
    f.config(&format!(
        "roots = [{:?}, {:?}]",
        f.ws.to_str().unwrap(),
        missing.to_str().unwrap()
    ));
    let out = f.ck(&["check-config"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning is no error: {err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
    assert!(
        err.contains(&format!("{} does not exist", missing.display())),
        "{err}"
    );
}

/// The JSON of every command that reports numbers holds no `-0.0` (Rust sums floats from -0).
#[test]
fn no_negative_zero_in_any_document() {
    let f = Fixture::new();
    f.config("");
    for args in [
        vec!["clean", "--dry-run"],
        vec!["scan"],
        vec!["status"],
        vec!["history"],
    ] {
        let out = f.ck(&[args.clone(), vec!["--json"]].concat());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("\"version\""), "{args:?}: {text}");
        assert!(!text.contains("-0.0"), "{args:?}: {text}");
    }
}

/// An address that answers HTTP but is no Docker engine (a proxy, a registry): 404, nothing
/// in the body. Said in one sentence naming the URL and what to check.
#[test]
fn an_engine_address_that_answers_404_with_nothing_is_named_with_what_to_check() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let f = Fixture::new();
    f.config_with(
        "",
        &format!("[buildkit]\nenabled = true\ndocker-host = \"tcp://127.0.0.1:{port}\"\n"),
    );
    let out = f.ck(&["scan", "--buildkit-only"]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!(
            "tcp://127.0.0.1:{port} answered 404 (not found) with an empty body to GET /version"
        )) && text.contains(&format!("docker -H tcp://127.0.0.1:{port} version")),
        "{text}"
    );
}

#[test]
fn status_shows_the_next_run_with_its_delay_and_nouns_agree_with_counts() {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.config("");
    // One target dir: "1 target dir", never "1 target dirs".
    let scan = String::from_utf8_lossy(&f.ck(&["scan", "--cargo-only"]).stdout).into_owned();
    assert!(scan.contains("Total: 1 target dir,"), "{scan}");
    // A daemon with the shipped delay (up to 10 minutes, this host's share of it).
    let state = f.dir.path().join("state");
    let socket = f.dir.path().join("run/ck.sock");
    f.config_with(
        "",
        &format!(
            "[daemon]\nschedule = \"0 3 * * *\"\nschedule-jitter = \"10m\"\nstate-dir = {:?}\nsocket = {:?}\n",
            state.to_str().unwrap(),
            socket.to_str().unwrap()
        ),
    );
    let d = crate::running::Daemon::start(&f);
    let status = d.json(&["status"]);
    let daemon = &status["daemon"];
    let delay = daemon["schedule_delay_seconds"].as_u64().unwrap();
    assert!(delay < 600, "{daemon:#}");
    let next = daemon["next_run"].as_str().unwrap();
    // The next run is 03:00 in the daemon's time zone (Asia/Kolkata, +05:30) plus this
    // host's delay, never earlier.
    use chrono::Timelike;
    let kolkata = chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(next)
        .unwrap()
        .with_timezone(&kolkata);
    assert_eq!(
        (at.hour(), u64::from(at.minute() * 60 + at.second())),
        (3, delay),
        "{at} (delay {delay} s)"
    );
    let human = String::from_utf8_lossy(&d.ck(&["status"]).stdout).into_owned();
    // (A host whose share of the ten minutes rounds to nothing has no delay to show.)
    assert!(
        delay == 0
            || human.contains(&format!(
                "delayed {} on this host by schedule-jitter",
                cachekeeper_core::units::format_duration(std::time::Duration::from_secs(delay))
            )),
        "{human}"
    );
}

#[test]
fn the_help_of_clean_and_scan_teaches_the_one_off_flags() {
    for cmd in ["clean", "scan"] {
        let out = ck().args([cmd, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--stale-after",
            "--budget",
            "--total-budget",
            "--min-age",
            "--min-free",
            "--superseded-after",
            "--buildkit-budget",
            "--buildkit-keep",
        ] {
            assert!(help.contains(flag), "{cmd} --help lacks {flag}");
        }
    }
    let out = ck().args(["daemon", "--help"]).output().unwrap();
    assert!(out.status.success());
}
