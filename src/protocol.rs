//! How the CLI reaches the daemon: where its socket and state dir are, and the control
//! protocol, one JSON request line in, one JSON response line out.
//!
//! The daemon answers only its own user and root: the socket is mode 0600, and the peer's
//! credentials (`SO_PEERCRED`) are checked again on every connection (see `server`). Another
//! user's CLI gets "permission denied" connecting, and says so.
//!
//! One request/response vocabulary serves the daemon and the CLI.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::report::{CleanView, HealthView, HistoryView, RecordView, SurveyView, UsesView};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Usage against budgets from the daemon's index, its runs and triggers; `refresh`: measure
    /// again first.
    Status {
        #[serde(default)]
        refresh: bool,
    },
    /// Past runs and totals.
    History { limit: usize },
    /// Run the policy now and answer with what it did.
    RunNow { dry_run: bool },
    /// Whether the daemon is up and well.
    Health,
    /// What the daemon recorded of builds' uses, so that a CLI beside it plans as it does.
    Uses,
    /// A run made outside the daemon, for its history and metrics.
    Record(Box<RecordView>),
}

/// The daemon's answer: a view, which the CLI renders (or prints as JSON), or why not.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "response", content = "view", rename_all = "kebab-case")]
pub enum Response {
    Status(Box<SurveyView>),
    History(HistoryView),
    Run(Box<CleanView>),
    Health(HealthView),
    Uses(Box<UsesView>),
    /// A [`Request::Record`] was kept.
    Recorded,
    /// Not answered, and why.
    Refused(String),
}

impl Response {
    #[must_use]
    pub fn refused(why: &str) -> Response {
        Response::Refused(why.to_string())
    }
}

/// A non-empty path from the environment.
fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A directory systemd passes (`$STATE_DIRECTORY`, `$RUNTIME_DIRECTORY`): the first, if several
/// are listed, separated by `:`.
fn systemd_dir(key: &str) -> Option<PathBuf> {
    let list = env_path(key)?;
    let first = list
        .to_string_lossy()
        .split(':')
        .next()
        .unwrap_or("")
        .to_string();
    Some(PathBuf::from(first))
}

/// The default state dir: `$STATE_DIRECTORY` (systemd), `/var/lib/cachekeeper` as root,
/// else `$XDG_STATE_HOME/cachekeeper` (or `~/.local/state/cachekeeper`).
#[must_use]
pub fn state_dir(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(d) = systemd_dir("STATE_DIRECTORY") {
        return d;
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/cachekeeper");
    }
    env_path("XDG_STATE_HOME")
        .or_else(|| env_path("HOME").map(|h| h.join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("cachekeeper")
}

/// Where the daemon listens and the CLI looks: `$CACHEKEEPER_SOCKET`, the config's
/// `[daemon] socket`, `$RUNTIME_DIRECTORY/cachekeeper.sock` (systemd), then the runtime dir of
/// the user (`$XDG_RUNTIME_DIR/cachekeeper/cachekeeper.sock`) or, as root,
/// `/run/cachekeeper/cachekeeper.sock`.
#[must_use]
pub fn socket_path(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = env_path("CACHEKEEPER_SOCKET") {
        return p;
    }
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(d) = systemd_dir("RUNTIME_DIRECTORY") {
        return d.join("cachekeeper.sock");
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/run/cachekeeper/cachekeeper.sock");
    }
    env_path("XDG_RUNTIME_DIR")
        .unwrap_or_else(|| {
            PathBuf::from(format!("/run/user/{}", rustix::process::geteuid().as_raw()))
        })
        .join("cachekeeper/cachekeeper.sock")
}

/// Asks the daemon at `socket`; `timeout` bounds connecting and, if given, waiting for the
/// answer.
pub fn ask(
    socket: &Path,
    request: &Request,
    timeout: Option<Duration>,
) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.set_read_timeout(timeout)?;
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    // A daemon that refuses us may answer and close before reading: read the answer anyway.
    if let Err(e) = stream.write_all(&line)
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e);
    }
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection",
        ));
    }
    serde_json::from_str(&answer).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("its answer could not be read: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BuildkitCleanView, BuildkitView};
    use cachekeeper_core::model::{CargoPlan, Mode, Sides, Snapshot, SweepReport};

    /// What the daemon sends, the CLI reads back whole.
    #[test]
    fn every_answer_reads_back() {
        let snapshot = Snapshot::empty();
        let plan = CargoPlan::default();
        let status = SurveyView::build(&snapshot, &plan, BuildkitView::default(), "x".into());
        let run = CleanView::build(
            &snapshot,
            &plan,
            &SweepReport::default(),
            BuildkitCleanView::default(),
            Mode::DryRun,
            Sides::BOTH,
        );
        for r in [
            Response::Status(Box::new(status)),
            Response::Run(Box::new(run)),
            Response::History(HistoryView::new(
                Vec::new(),
                cachekeeper_core::model::Totals::default(),
            )),
            Response::refused("busy"),
        ] {
            let line = serde_json::to_string(&r).unwrap();
            let back: Response = serde_json::from_str(&line).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), line);
        }
    }
}
