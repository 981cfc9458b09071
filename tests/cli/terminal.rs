//! What a person at a terminal sees: colour as the ecosystem decides it (`--color`,
//! `NO_COLOR`, `CLICOLOR_FORCE`), pictures in the characters the locale can draw, and progress
//! only on a terminal.

use std::process::Command;

use crate::support::{Fixture, tool};

const ESC: char = '\x1b';

/// A built workspace over a budget of one byte: status has something to colour red.
fn over_budget() -> Fixture {
    let f = Fixture::new();
    f.app_and_dep();
    assert!(f.cargo(&["build"]).success);
    f.config("target-budget = \"1 B\"\nmin-age = \"0s\"");
    f
}

fn out(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let o = f.ck_env(args, env);
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn colour_follows_the_flag_then_no_color_then_clicolor_force() {
    let f = over_budget();
    let (always, _) = out(&f, &["status", "--color", "always"], &[]);
    assert!(always.contains("\x1b[31mover by"), "{always}");
    // A pipe gets none, unless forced; NO_COLOR beats the force, the flag beats both.
    for (args, env, coloured) in [
        (&["status"][..], &[][..], false),
        (&["status"], &[("CLICOLOR_FORCE", "1")], true),
        (&["status"], &[("CLICOLOR_FORCE", "0")], false),
        (
            &["status"],
            &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
            false,
        ),
        (
            &["status", "--color", "never"],
            &[("CLICOLOR_FORCE", "1")],
            false,
        ),
        (&["status", "--color", "always"], &[("NO_COLOR", "1")], true),
    ] {
        let (text, _) = out(&f, args, env);
        assert_eq!(text.contains(ESC), coloured, "{args:?} {env:?}: {text}");
    }
    // Logs alike: with NO_COLOR, not a single escape even when forced.
    let (_, logs) = out(
        &f,
        &["-v", "clean", "--dry-run"],
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
    );
    assert!(!logs.is_empty() && !logs.contains(ESC), "{logs}");
    let (_, logs) = out(&f, &["-v", "--color", "always", "clean", "--dry-run"], &[]);
    assert!(logs.contains(ESC), "{logs}");
}

#[test]
fn status_draws_use_against_each_budget_in_what_the_locale_can_show() {
    let f = over_budget();
    let (utf8, _) = out(&f, &["status"], &[("LANG", "C.UTF-8"), ("LC_ALL", "")]);
    assert!(
        utf8.contains("USE OF BUDGET") && utf8.contains('█'),
        "{utf8}"
    );
    assert!(utf8.contains(">999%"), "{utf8}");
    let (ascii, _) = out(&f, &["status"], &[("LANG", "C"), ("LC_ALL", "")]);
    assert!(ascii.is_ascii(), "{ascii}");
    assert!(ascii.contains("[############] >999%"), "{ascii}");
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_json_or_quiet_output() {
    let Some(script) = tool("script") else { return };
    let f = over_budget();
    // `script` gives the command a pseudo-terminal and records what it wrote there.
    let run = |args: &str| -> String {
        let log = f.dir.path().join("typescript");
        let cmd = format!(
            "{} --config {} {args}",
            env!("CARGO_BIN_EXE_cachekeeper"),
            f.dir.path().join("cachekeeper.toml").display()
        );
        let o = Command::new(&script)
            .args(["-q", "-e", "-c", &cmd])
            .arg(&log)
            .env("TERM", "xterm")
            .env("LANG", "C.UTF-8")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read_to_string(log).unwrap()
    };
    let shown = run("clean --dry-run");
    assert!(
        shown.contains("scanning") && shown.contains("target dir"),
        "{shown}"
    );
    let json = run("clean --dry-run --json");
    let quiet = run("clean --dry-run -q");
    for (what, text) in [("--json", &json), ("-q", &quiet)] {
        assert!(!text.contains("scanning"), "{what}: {text}");
    }
}
