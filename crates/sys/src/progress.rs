//! Progress on stderr for long work, shown only to a person at a terminal (never under
//! `--json` or `-q`, never in the daemon): while scanning, target dirs N of M and the files and
//! bytes walked; while cleaning, bytes freed of the planned total with rate and ETA. Drawn by
//! `indicatif`, which keeps the latest state however fast updates come.
//!
//! Invariant: a leaf; the stages report counts, this draws them.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    /// Files and bytes walked in finished target dirs, and in the one being walked.
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    files_now: AtomicU64,
    bytes_now: AtomicU64,
    /// The target dir being walked (from 1), of how many.
    current: AtomicU64,
    total: AtomicU64,
}

const SPINNER: &str = "{spinner} {wide_msg}";
const SCANNING: &str = "{spinner} scanning [{bar:20}] {prefix} {wide_msg}";
const CLEANING: &str = "{spinner} cleaning [{bar:20}] {bytes}/{total_bytes} ({binary_bytes_per_sec}, {eta} left) {wide_msg}";
const PLAIN: &str = "{wide_msg}";

fn style(template: &str) -> ProgressStyle {
    // The templates are the constants above, each parsed by a test.
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> ")
}

impl Progress {
    /// Shows progress if stderr is a terminal and `quiet` is off.
    #[must_use]
    pub fn new(quiet: bool) -> Progress {
        Progress::shown(!quiet && std::io::stderr().is_terminal())
    }

    #[must_use]
    pub fn hidden() -> Progress {
        Progress::shown(false)
    }

    fn shown(shown: bool) -> Progress {
        let bar = shown.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(style(SPINNER));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Progress {
            bar,
            files_done: AtomicU64::new(0),
            bytes_done: AtomicU64::new(0),
            files_now: AtomicU64::new(0),
            bytes_now: AtomicU64::new(0),
            current: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Whether anything is drawn (the walker skips counting otherwise).
    #[must_use]
    pub(crate) fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// A message on the spinner line.
    pub fn say(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_style(style(SPINNER));
            b.set_message(msg.to_string());
        }
    }

    /// Scanning target dir `i` (from 0) of `n`.
    pub fn scanning(&self, i: usize, n: usize, path: &Path) {
        let Some(b) = &self.bar else { return };
        let (f, by) = (
            self.files_now.swap(0, Ordering::Relaxed),
            self.bytes_now.swap(0, Ordering::Relaxed),
        );
        self.files_done.fetch_add(f, Ordering::Relaxed);
        self.bytes_done.fetch_add(by, Ordering::Relaxed);
        b.set_style(style(SCANNING));
        b.set_length(n as u64);
        // The bar counts target dirs done; the prefix names the one being walked.
        b.set_position(i as u64);
        self.current.store(i as u64 + 1, Ordering::Relaxed);
        self.total.store(n as u64, Ordering::Relaxed);
        b.set_message(path.display().to_string());
        self.show_walked();
    }

    /// Files and bytes just walked (the walker reports in batches).
    pub fn walked(&self, files: u64, bytes: u64) {
        if self.bar.is_none() {
            return;
        }
        self.files_now.fetch_add(files, Ordering::Relaxed);
        self.bytes_now.fetch_add(bytes, Ordering::Relaxed);
        self.show_walked();
    }

    fn show_walked(&self) {
        if let Some(b) = &self.bar {
            let files =
                self.files_done.load(Ordering::Relaxed) + self.files_now.load(Ordering::Relaxed);
            let bytes =
                self.bytes_done.load(Ordering::Relaxed) + self.bytes_now.load(Ordering::Relaxed);
            b.set_prefix(format!(
                "target dir {} of {}: {files} files, {}",
                self.current.load(Ordering::Relaxed),
                self.total.load(Ordering::Relaxed),
                HumanBytes(bytes)
            ));
        }
    }

    /// Cleaning begins: `actions` removals planned, freeing `bytes`.
    pub fn cleaning(&self, actions: usize, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_style(style(CLEANING));
            b.set_length(bytes);
            b.set_position(0);
            b.reset_eta();
            b.set_message(format!("0 of {actions} done"));
        }
    }

    /// One removal done (`n` of them so far), freeing `bytes`.
    pub fn cleaned(&self, n: usize, of: usize, bytes: u64, what: &Path) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
            b.set_message(format!("{n} of {of} done: {}", what.display()));
        }
    }

    /// Clears the line.
    pub fn done(&self) {
        if let Some(b) = &self.bar {
            b.set_style(style(PLAIN));
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for t in [SPINNER, SCANNING, CLEANING, PLAIN] {
            assert!(ProgressStyle::with_template(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn hidden_progress_counts_nothing() {
        let p = Progress::hidden();
        p.walked(10, 100);
        p.scanning(0, 1, Path::new("/t"));
        assert!(!p.is_shown());
        assert_eq!(p.files_now.load(Ordering::Relaxed), 0);
    }
}
