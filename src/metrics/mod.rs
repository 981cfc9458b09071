//! Metrics for Prometheus: the daemon's last measurement, what its runs did, and the process
//! itself, as Prometheus text (0.0.4) or OpenMetrics, encoded by `prometheus-client`.
//!
//! Everything is read from an [`Exposition`]: plain data the daemon refreshes after each
//! rescan, run and poll. Encoding it never measures anything, so a scrape costs what encoding
//! costs. The families, their names and labels are part of cachekeeper's interface (README,
//! "Fleets"): names carry their unit, counters end in `_total`.
//!
//! Invariant: no I/O here. The daemon serves and writes what this renders, and reads the
//! process's facts ([`ProcessFacts`]) itself.

mod counters;
mod families;

pub use counters::{Counters, ErrorKind, Histogram};

use crate::report::SurveyView;

/// The exposition formats a scraper can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: what node_exporter's textfile collector and
    /// `promtool check metrics` read, and the default of `GET /metrics`.
    Prometheus,
    /// OpenMetrics 1.0 text, for a scraper whose `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    #[must_use]
    pub fn negotiate(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The process's own facts, read when a scrape comes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessFacts {
    pub resident_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: Option<u64>,
    pub start_time_seconds: u64,
}

/// What the metrics show.
#[derive(Clone, Debug, Default)]
pub struct Exposition {
    /// The daemon's last status view (with its own state in `daemon`); `None` before the first
    /// measurement.
    pub status: Option<SurveyView>,
    pub counters: Counters,
    /// How many target dirs get series of their own.
    pub max_target_dirs: usize,
    /// Whether paths are label values (`false`: a stable short hash of each).
    pub paths: bool,
}

impl Exposition {
    /// The metrics in `format`; `process` adds the `process_*` families (left out of the
    /// textfile, where node_exporter's own would clash).
    #[must_use]
    pub fn render(&self, format: Format, process: Option<ProcessFacts>) -> String {
        families::render(self, format, process)
    }
}

/// The textfile a `clean` without a daemon writes: counters from every run `history` holds
/// (with `errors` of the run just made), gauges from `status`.
#[must_use]
pub fn textfile(
    history: &[cachekeeper_core::model::RunRecord],
    errors: crate::report::RunErrors,
    status: SurveyView,
    config: &cachekeeper_core::config::MetricsConfig,
) -> String {
    let mut counters = Counters::seeded(history);
    for r in history {
        counters.observe_counted(r, crate::report::RunErrors::default());
    }
    counters.observe_errors(errors);
    Exposition {
        status: Some(status),
        counters,
        max_target_dirs: config.max_target_dirs,
        paths: config.paths,
    }
    .render(Format::Prometheus, None)
}

#[cfg(test)]
mod tests;
