//! Output for people and scripts. Each command builds one view (a plain struct that
//! serializes both ways) from what it measured and did; `--json` prints the view, otherwise
//! [`human`] renders it. One source, so the two never disagree, and the daemon sends views,
//! not text: the CLI renders them (in its own time zone and terminal).
//!
//! The JSON documents carry `"version": 1`; fields are only ever added within a version.
//!
//! Invariant: report reads only `model`, `config` and `units` (and `pathcodec`).

pub mod buildkit;
pub mod clean;
pub mod doctor;
pub mod guard;
pub mod history;
pub mod human;
pub mod journal;
pub mod json;
pub mod survey;
pub mod why;

pub use buildkit::{BuildkitCleanView, BuildkitState, BuildkitView};
pub use clean::{ActionView, CleanView};
pub use doctor::{DoctorView, Finding, Severity};
pub use history::{HealthView, HistoryView, RecordView, RunErrors, RunFacts, UsesView, record_of};
pub use survey::{
    ConfigOnDisk, DaemonInfo, FilesystemView, IndexView, PastRuns, RunningView, SkippedProfile,
    Source, SurveyView, TargetView, Trigger,
};

pub const SCHEMA_VERSION: u32 = 1;

/// Exit codes scripts can rely on; the views say which applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did its job. Warnings (a busy profile skipped, a budget that cannot be
    /// met from unprotected data) are reported but do not change the code.
    Ok = 0,
    /// A runtime failure: something could not be read or removed; unhealthy.
    Failure = 1,
    /// Bad usage or a config that does not validate; nothing was done.
    Usage = 2,
    /// `clean`, `run-now`: the cargo side was done, the BuildKit side could not be (the engine
    /// did not answer, refused us, or an error came back).
    BuildkitNotDone = 3,
    /// `guard` (one shot): the free-space floor could not be reached.
    FloorNotReached = 4,
    /// `doctor`: a finding of error severity (a warning alone gives 1).
    DoctorError = 5,
}

/// Why a command failed, as every JSON document says it: `"error": {"message", "exit_code"}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorView {
    pub message: String,
    pub exit_code: u8,
}

impl ErrorView {
    #[must_use]
    pub fn new(message: &str, exit: Exit) -> ErrorView {
        ErrorView {
            message: message.to_string(),
            exit_code: exit as u8,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e as u8)
    }
}
