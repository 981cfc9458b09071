//! What the terminal takes: colour (`--color`, `NO_COLOR`, `CLICOLOR_FORCE`, as the
//! ecosystem decides it) and Unicode (the locale).

use std::io::IsTerminal;

use crate::report::human::Style;

/// `--color`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorWhen {
    /// Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    #[default]
    Auto,
    Always,
    Never,
}

fn set(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Whether output to a stream that `is_terminal` or not gets colour. The flag wins; then
/// NO_COLOR (https://no-color.org) turns it off, CLICOLOR_FORCE (any value but 0) on, and a
/// terminal that is not `dumb` decides.
#[must_use]
pub fn colour(when: ColorWhen, is_terminal: bool) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => {
            if set("NO_COLOR").is_some() {
                false
            } else if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
                true
            } else {
                is_terminal && set("TERM").as_deref() != Some("dumb")
            }
        }
    }
}

/// Whether the locale is UTF-8 (block characters draw), from LC_ALL, LC_CTYPE, LANG.
#[must_use]
pub fn unicode() -> bool {
    let locale = set("LC_ALL")
        .or_else(|| set("LC_CTYPE"))
        .or_else(|| set("LANG"))
        .unwrap_or_default()
        .to_ascii_lowercase();
    locale.contains("utf-8") || locale.contains("utf8")
}

/// How tables and pictures go to stdout.
#[must_use]
pub fn stdout_style(when: ColorWhen) -> Style {
    Style {
        color: colour(when, std::io::stdout().is_terminal()),
        unicode: unicode(),
    }
}
