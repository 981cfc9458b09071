//! A one-line progress display on stderr for long work, shown only to a person at a terminal.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// Shows progress if stderr is a terminal and `quiet` is off.
    #[must_use]
    pub fn new(quiet: bool) -> Progress {
        Progress {
            enabled: !quiet && std::io::stderr().is_terminal(),
            last: Mutex::new(None),
        }
    }

    #[must_use]
    pub fn hidden() -> Progress {
        Progress {
            enabled: false,
            last: Mutex::new(None),
        }
    }

    /// Replaces the line, at most ten times a second.
    pub fn say(&self, msg: &str) {
        if !self.enabled {
            return;
        }
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < Duration::from_millis(100)) {
            return;
        }
        *last = Some(Instant::now());
        let width = 100;
        let shown: String = msg.chars().take(width).collect();
        let _ = write!(std::io::stderr(), "\r\x1b[K{shown}");
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}
