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
