//! Every config key, declared once. The reader accepts exactly these (an unknown key names the
//! known ones), and tests hold the rest to this table: every key is read (a wrong value for it
//! is an error naming it), the default file sets or shows each one, the README's key table and
//! flag table list the same, and each one-off flag exists in `--help`.

/// One key of the config file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    /// The table it is in, dotted (`cargo`, `cargo.rules`, `buildkit`, `daemon`, `disk`,
    /// `metrics`).
    pub table: &'static str,
    pub name: &'static str,
    /// The command-line flag of `scan` and `clean` that overrides it for one run.
    pub flag: Option<&'static str>,
}

const fn key(table: &'static str, name: &'static str) -> Key {
    Key {
        table,
        name,
        flag: None,
    }
}

const fn flag(table: &'static str, name: &'static str, flag: &'static str) -> Key {
    Key {
        table,
        name,
        flag: Some(flag),
    }
}

/// The keys, in the default file's order.
pub const KEYS: &[Key] = &[
    key("cargo", "roots"),
    key("cargo", "exclude"),
    key("cargo", "max-depth"),
    flag("cargo", "target-budget", "--budget"),
    flag("cargo", "total-budget", "--total-budget"),
    flag("cargo", "stale-after", "--stale-after"),
    flag("cargo", "min-age", "--min-age"),
    flag("cargo", "superseded-after", "--superseded-after"),
    key("cargo", "incremental-max-age"),
    key("cargo", "eviction"),
    key("cargo", "extra-rustc"),
    key("cargo.rules", "incremental"),
    key("cargo.rules", "toolchains"),
    key("cargo.rules", "stale"),
    key("cargo.rules", "budgets"),
    key("buildkit", "enabled"),
    key("buildkit", "docker-host"),
    flag("buildkit", "budget", "--buildkit-budget"),
    flag("buildkit", "keep-duration", "--buildkit-keep"),
    key("buildkit", "min-age"),
    key("buildkit", "protect-cache-mounts"),
    key("buildkit", "hard-limit"),
    key("buildkit", "timeout"),
    key("daemon", "schedule"),
    key("daemon", "schedule-jitter"),
    key("daemon", "poll-interval"),
    key("daemon", "min-interval"),
    key("daemon", "hysteresis"),
    key("daemon", "rescan-interval"),
    key("daemon", "full-rescan-interval"),
    key("daemon", "track-access"),
    key("daemon", "stop-timeout"),
    key("daemon", "state-dir"),
    key("daemon", "socket"),
    flag("disk", "min-free", "--min-free"),
    key("metrics", "listen"),
    key("metrics", "textfile"),
    key("metrics", "max-target-dirs"),
    key("metrics", "paths"),
];

/// What may appear in the table at dotted `path` (`""` for the top level): its keys and the
/// tables nested in it.
#[must_use]
pub fn known_in(path: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KEYS {
        let name = if k.table == path {
            Some(k.name)
        } else {
            // A table nested here: `cargo.rules` seen from `cargo`, `cargo` from the top.
            let rest = if path.is_empty() {
                Some(k.table)
            } else {
                k.table.strip_prefix(path).and_then(|r| r.strip_prefix('.'))
            };
            rest.map(|r| r.split('.').next().unwrap_or(r))
                .filter(|r| !r.is_empty())
        };
        if let Some(n) = name
            && !out.contains(&n)
        {
            out.push(n);
        }
    }
    out
}

/// The key a one-off flag overrides.
#[must_use]
pub fn of_flag(flag: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.flag == Some(flag))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_TOML, Env, Source, parse};

    /// The keys the default file sets or shows commented out (`# docker-host = ...`), by table.
    fn in_default_file() -> Vec<(String, String)> {
        let mut table = String::new();
        let mut out = Vec::new();
        for line in DEFAULT_TOML.lines() {
            if let Some(t) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                table = t.to_string();
                continue;
            }
            let l = line.strip_prefix("# ").unwrap_or(line);
            if let Some((name, _)) = l.split_once(" = ")
                && !name.is_empty()
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '-')
            {
                out.push((table.clone(), name.to_string()));
            }
        }
        out
    }

    #[test]
    fn the_default_file_shows_every_key_in_this_order() {
        let table: Vec<(String, String)> = KEYS
            .iter()
            .map(|k| (k.table.to_string(), k.name.to_string()))
            .collect();
        assert_eq!(in_default_file(), table);
    }

    #[test]
    fn every_key_is_read() {
        // A value of the wrong type for a key the reader never looks at would pass unnoticed.
        for k in KEYS {
            let text = format!("[{}]\n{} = {{ wrong = 1 }}\n", k.table, k.name);
            let env = Env {
                home: Some("/home/dev".into()),
                ..Env::default()
            };
            let e = parse(&text, Source::Embedded, &env)
                .expect_err(&format!("{}.{} is not read", k.table, k.name));
            assert_eq!(e.key, format!("{}.{}", k.table, k.name), "{}", e.message);
        }
    }

    #[test]
    fn tables_know_their_keys_and_their_nested_tables() {
        assert_eq!(
            known_in(""),
            ["cargo", "buildkit", "daemon", "disk", "metrics"]
        );
        assert!(known_in("cargo").contains(&"rules") && known_in("cargo").contains(&"roots"));
        assert_eq!(
            known_in("cargo.rules"),
            ["incremental", "toolchains", "stale", "budgets"]
        );
        assert_eq!(
            of_flag("--buildkit-keep").map(|k| k.name),
            Some("keep-duration")
        );
    }
}
