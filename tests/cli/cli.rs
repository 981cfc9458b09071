//! The command line as scripts and people meet it: config errors, exit codes, `--json`.

use crate::support::{DAY, Fixture, Krate, ck, removed_units};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = ck().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bad_config(text: &str) -> (tempfile::TempDir, String) {
    let d = crate::suite::tempdir();
    let p = d.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    (d, p.display().to_string())
}

#[test]
fn a_bad_config_names_file_line_column_and_key_and_nothing_runs() {
    let (_d, path) = bad_config("[cargo]\nroots = [\"/tmp\"]\nstale-after = \"3 fortnights\"\n");
    for args in [
        vec!["--config", &path, "clean"],
        vec!["clean", "--config", &path],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.contains(&format!(
                "{path}:3:15: key `cargo.stale-after`: invalid duration \"3 fortnights\""
            )),
            "{stderr}"
        );
        assert!(
            stderr.contains("3 | stale-after = \"3 fortnights\""),
            "{stderr}"
        );
        assert!(
            stderr.contains("does not run on a config that does not validate"),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_explains_errors_and_summarises_good_files() {
    let (_d, path) = bad_config("[cargo]\ntarget-budjet = \"10GiB\"\n");
    let (code, _, stderr) = run(&["check-config", &path]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("unknown key `target-budjet` in [cargo]"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `target-budget`?"), "{stderr}");

    let (code, stdout, _) = run(&["check-config", &path, "--json"]);
    assert_eq!(code, Some(2));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(
        (v["error"]["line"].as_u64(), v["error"]["column"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(v["error"]["key"], "cargo.target-budjet");

    let (_d2, good) = bad_config("[cargo]\ntarget-budget = \"10GiB\"\n[disk]\nmin-free = \"5%\"\n");
    let (code, stdout, stderr) = run(&["check-config", &good]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("target-budget:       10 GiB"), "{stdout}");
    assert!(
        stdout.contains("min-free:            5% of the filesystem"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["check-config", "--print-default"]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, include_str!("../../config/cachekeeper.toml"));
}

#[test]
fn a_missing_explicit_config_or_path_is_a_usage_error() {
    let (code, _, stderr) = run(&["--config", "/nonexistent/ck.toml", "status"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("cannot read config file /nonexistent/ck.toml"),
        "{stderr}"
    );
    let f = Fixture::new();
    let out = f.ck(&["scan", "/nonexistent/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir"));
    let (code, _, _) = run(&["frobnicate"]);
    assert_eq!(code, Some(2));
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("Exit codes: 0 ok, 1 runtime failure"),
        "{stdout}"
    );
}

/// One binary crate, built two months ago and not used since.
fn stale_app() -> Fixture {
    let f = Fixture::new();
    f.workspace(&["app"]);
    f.krate(&Krate {
        name: "app",
        bin: true,
        ..Krate::default()
    });
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    f
}

#[test]
fn json_documents_carry_what_scripts_need() {
    let f = stale_app();

    let scan = f.ck_json(&["scan"]);
    assert_eq!(scan["version"], 1);
    let t = &scan["targets"][0];
    assert_eq!(t["path"], f.target().to_str().unwrap());
    assert_eq!(t["bytes"].as_u64().unwrap(), f.du(&f.target()));
    assert!(t["apparent_bytes"].as_u64().unwrap() > 0);
    assert_eq!(t["units"], 1);
    assert_eq!(t["profiles"][0]["name"], "debug");
    for k in ["deps", "build", "incremental", "fingerprint", "other"] {
        assert!(t["by_kind"][k]["bytes"].is_u64(), "{k}");
    }
    assert!(t["reclaimable_by_rule"]["stale"].as_u64().unwrap() > 0);
    assert_eq!(t["reclaimable_bytes"], scan["total"]["reclaimable_bytes"]);

    let status = f.ck_json(&["status"]);
    assert_eq!(status["source"], "direct");
    assert_eq!(status["targets"][0]["path"], f.target().to_str().unwrap());
    assert!(status["filesystems"][0]["free_bytes"].is_u64());

    let dry = f.ck_json(&["clean", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["reclaimed_bytes"], t["reclaimable_bytes"]);
    let acts = dry["actions"].as_array().unwrap();
    // Rule order: the incremental data (older than 14d) first, then the stale unit.
    assert_eq!(
        acts.iter()
            .map(|a| a["rule"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["incremental", "stale"]
    );
    let a = &acts[1];
    for k in [
        "target",
        "profile",
        "item",
        "name",
        "rule",
        "reason",
        "paths",
        "planned_bytes",
        "reclaimed_bytes",
        "status",
    ] {
        assert!(!a[k].is_null(), "action lacks {k}: {a}");
    }
    let real = f.ck_json(&["clean"]);
    assert_eq!(real["dry_run"], false);
    assert_eq!(
        removed_units(&real),
        vec![a["name"].as_str().unwrap().to_string()]
    );
}

#[test]
fn human_output_explains_the_plan() {
    let f = stale_app();
    let out = f.ck(&["clean", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Plan (dry run)"), "{text}");
    assert!(text.contains("stale"), "{text}");
    assert!(
        text.contains("not used for 60d (stale-after 30d)"),
        "{text}"
    );
    assert!(text.contains("Dry run: nothing was removed."), "{text}");
    let out = f.ck(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TARGET DIR") && text.contains(f.target().to_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("Next run would reclaim"), "{text}");
}

/// Issue: under `--json` some errors printed only prose on stderr. Every command prints one
/// JSON document on stdout, errors included, with the message and the exit code.
#[test]
fn under_json_every_error_is_one_json_document_with_its_exit_code() {
    let (_d, bad) = bad_config("[cargo]\nstale-after = \"3 fortnights\"\n");
    let f = Fixture::new();
    let config = f.dir.path().join("cachekeeper.toml");
    let c = config.to_str().unwrap();
    let sock = f.dir.path().join("none.sock");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--config", &bad, "clean", "--json"],
            2,
            "invalid config",
        ),
        (
            vec!["--config", c, "scan", "/nonexistent/x", "--json"],
            2,
            "/nonexistent/x",
        ),
        (
            vec!["--config", c, "guard", "--min-free", "10", "--json"],
            2,
            "needs a unit",
        ),
        (
            vec!["--config", c, "run-now", "--json"],
            1,
            "no daemon answers",
        ),
        (
            vec!["--config", c, "scan", "--bogus", "--json"],
            2,
            "--bogus",
        ),
    ];
    for (args, code, says) in cases {
        let out = ck()
            .args(&args)
            .env("CACHEKEEPER_SOCKET", &sock)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {out:?}"));
        assert_eq!(v["version"], 1, "{args:?}");
        assert_eq!(v["error"]["exit_code"], code, "{args:?}: {v:#}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(says),
            "{args:?}: {v:#}"
        );
    }
    // healthcheck too, with whether it is healthy.
    let out = ck()
        .args(["--config", c, "healthcheck", "--json"])
        .env("CACHEKEEPER_SOCKET", &sock)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], false, "{v:#}");
    assert_eq!(v["error"]["exit_code"], 1, "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no daemon answers"),
        "{v:#}"
    );
}

/// Issue: a bare `--min-free 10` meant 10 bytes, so the guard freed nothing.
#[test]
fn a_size_without_a_unit_is_refused_with_what_to_write() {
    let f = Fixture::new();
    let (code, _, stderr) = run(&[
        "--config",
        f.dir.path().join("cachekeeper.toml").to_str().unwrap(),
        "guard",
        "--min-free",
        "10",
    ]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("\"10 B\"") && stderr.contains("\"10GiB\"") && stderr.contains("\"10%\""),
        "{stderr}"
    );
}

/// Issue: logs printed colour escapes under `NO_COLOR=1`. On a terminal (a pty from `script`)
/// logs are coloured unless NO_COLOR is set.
#[test]
fn no_color_turns_log_colours_off_on_a_terminal() {
    if crate::support::tool("script").is_none() {
        return;
    }
    // A stale workspace: a dry run logs each planned action at info.
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.pass_time(60 * DAY);
    let cmd = format!(
        "{} --config {} -v clean --dry-run --cargo-only",
        env!("CARGO_BIN_EXE_cachekeeper"),
        f.dir.path().join("cachekeeper.toml").display()
    );
    let on_a_tty = |no_color: Option<&str>| {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env_remove("NO_COLOR")
            .env_remove("JOURNAL_STREAM");
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).into_owned()
    };
    // Colour is an SGR sequence, `ESC [ ... m` (the progress line's `ESC [ K` is not colour).
    let has_colour = |s: &str| {
        s.split("\x1b[").skip(1).any(|rest| {
            rest.chars()
                .find(|c| !(c.is_ascii_digit() || *c == ';'))
                .is_some_and(|c| c == 'm')
        })
    };
    let coloured = on_a_tty(None);
    assert!(
        has_colour(&coloured),
        "logs on a terminal are coloured: {coloured:?}"
    );
    let plain = on_a_tty(Some("1"));
    assert!(plain.contains("INFO"), "{plain:?}");
    assert!(!has_colour(&plain), "{plain:?}");
}
