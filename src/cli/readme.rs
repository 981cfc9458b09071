//! Every command the README and the `--help` examples show still parses, with the flags they
//! use: a renamed command or flag fails here, not in a user's copy-paste. (The outputs the
//! README shows are pasted from real runs of this build.)

use clap::{CommandFactory, Parser};

use super::Cli;

/// Splits a shell line into words, honouring quotes; stops at a pipe, a redirection or a
/// comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, '|' | '>' | '#') if cur.is_empty() => break,
            (None, ' ') => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The cachekeeper command lines in `$ ...` lines of the README's shell blocks.
fn readme_commands() -> Vec<Vec<String>> {
    let text = include_str!("../../README.md");
    let mut in_block = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = !in_block && (line.contains("console") || line.contains("sh"));
            continue;
        }
        let Some(cmd) = line.strip_prefix("$ ").filter(|_| in_block) else {
            continue;
        };
        let w = words(cmd);
        let start = w.iter().position(|x| !x.contains('=')).unwrap_or(w.len());
        if w.get(start).map(String::as_str) == Some("cachekeeper") {
            out.push(w[start..].to_vec());
        }
    }
    out
}

/// The example lines of every `--help`: `  cachekeeper ...  what it does`.
fn help_commands() -> Vec<Vec<String>> {
    let mut cmd = Cli::command();
    cmd.build();
    let mut helps = vec![cmd.render_long_help().to_string()];
    for sub in cmd.get_subcommands_mut() {
        helps.push(sub.render_long_help().to_string());
    }
    let mut out = Vec::new();
    for help in helps {
        for line in help.lines() {
            let Some(rest) = line.strip_prefix("  cachekeeper ") else {
                continue;
            };
            // The description follows two or more spaces.
            let command = rest.split("  ").next().unwrap_or("");
            let mut w = vec!["cachekeeper".to_string()];
            w.extend(words(command));
            out.push(w);
        }
    }
    out
}

#[test]
fn every_command_the_readme_and_the_help_show_parses() {
    let readme = readme_commands();
    let help = help_commands();
    assert!(
        readme.len() >= 10,
        "the README's commands were not found: {readme:?}"
    );
    assert!(
        help.len() >= 15,
        "the help's examples were not found: {help:?}"
    );
    let mut wrong = Vec::new();
    for args in readme.iter().chain(&help) {
        if let Err(e) = Cli::try_parse_from(args) {
            wrong.push(format!("{}: {}", args.join(" "), e.kind()));
        }
    }
    assert!(
        wrong.is_empty(),
        "commands that no longer parse:\n{}",
        wrong.join("\n")
    );
    // Each subcommand appears in the README at least once.
    for sub in Cli::command().get_subcommands() {
        let name = sub.get_name();
        if name == "help" {
            continue;
        }
        assert!(
            include_str!("../../README.md").contains(&format!("cachekeeper {name}")),
            "the README never shows `cachekeeper {name}`"
        );
    }
}

#[test]
fn the_extractor_sees_a_broken_command() {
    let broken = words("cachekeeper clean --dry-rnu ~/src   # a typo");
    assert_eq!(broken, ["cachekeeper", "clean", "--dry-rnu", "~/src"]);
    assert!(Cli::try_parse_from(&broken).is_err());
    assert_eq!(
        words("cachekeeper scan --json | jq '.targets[]'"),
        ["cachekeeper", "scan", "--json"]
    );
}

/// The README's config-key table (`| key | default | meaning |`): each row names its table when
/// it changes (`[cargo] roots`), then keys of that table (`exclude`, or several:
/// `` `state-dir`, `socket` ``).
fn readme_keys() -> Vec<(String, String)> {
    let text = include_str!("../../README.md");
    let table = text
        .split("| key | default | meaning |")
        .nth(1)
        .expect("the README has a config-key table");
    let mut current = String::new();
    let mut out = Vec::new();
    for line in table.lines().skip(2) {
        let Some(cell) = line.strip_prefix("| ").and_then(|l| l.split(" | ").next()) else {
            break;
        };
        let mut cell = cell.trim();
        if let Some(rest) = cell.strip_prefix("`[") {
            let (t, rest) = rest.split_once("] ").expect("`[table] key`");
            current = t.to_string();
            cell = rest;
        }
        for name in cell.split(", ") {
            out.push((current.clone(), name.trim_matches('`').to_string()));
        }
    }
    out
}

#[test]
fn the_readme_lists_every_config_key_once() {
    let want: Vec<(String, String)> = cachekeeper_core::config::keys::KEYS
        .iter()
        .map(|k| (k.table.to_string(), k.name.to_string()))
        .collect();
    let mut got = readme_keys();
    let mut want_sorted = want.clone();
    got.sort();
    want_sorted.sort();
    assert_eq!(got, want_sorted, "README's key table and config::keys");
}

#[test]
fn every_one_off_flag_is_a_declared_key_in_help_and_readme() {
    let readme = include_str!("../../README.md");
    let flags: Vec<(&str, &cachekeeper_core::config::keys::Key)> =
        cachekeeper_core::config::keys::KEYS
            .iter()
            .filter_map(|k| Some((k.flag?, k)))
            .collect();
    assert!(flags.len() >= 8);
    let clean = Cli::command()
        .find_subcommand("clean")
        .expect("clean")
        .clone();
    let longs: Vec<String> = clean
        .get_arguments()
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    for (flag, key) in &flags {
        assert!(longs.iter().any(|l| l == flag), "clean has no {flag}");
        let row = format!("| `{flag} ");
        let line = readme
            .lines()
            .find(|l| l.starts_with(&row))
            .unwrap_or_else(|| panic!("the README's flag table lacks {flag}"));
        assert!(
            line.contains(&format!("`[{}] {}`", key.table, key.name)),
            "{line}"
        );
    }
    // Every policy flag `clean` takes is declared (none is mapped by hand elsewhere).
    let policy = super::args::Policy {
        stale_after: Some("1d".into()),
        budget: Some("1d".into()),
        total_budget: Some("1d".into()),
        min_age: Some("1d".into()),
        min_free: Some("1d".into()),
        superseded_after: Some("1d".into()),
        buildkit_budget: Some("1d".into()),
        buildkit_keep: Some("1d".into()),
    };
    assert_eq!(policy.given().len(), flags.len());
}
