//! The control socket: one JSON request line in, one JSON response line out.
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "kebab-case")]
pub enum Request {
    /// Usage against budgets from the daemon's index, its runs and triggers.
    Status,
    /// Past runs and totals.
    History { limit: usize },
    /// Run the policy now and answer with what it did.
    RunNow { dry_run: bool },
    /// Whether the daemon is up and well.
    Health,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The JSON document the CLI prints with `--json`.
    #[serde(default)]
    pub json: serde_json::Value,
    /// The same, for people.
    #[serde(default)]
    pub text: String,
}

impl Response {
    #[must_use]
    pub fn refused(why: &str) -> Response {
        Response {
            ok: false,
            error: Some(why.to_string()),
            ..Response::default()
        }
    }
}

/// Where the daemon listens and the CLI looks: `$CACHEKEEPER_SOCKET`, the config's
/// `[daemon] socket`, `$RUNTIME_DIRECTORY/cachekeeper.sock` (systemd), then the runtime dir of
/// the user (`$XDG_RUNTIME_DIR/cachekeeper/cachekeeper.sock`) or, as root,
/// `/run/cachekeeper/cachekeeper.sock`.
#[must_use]
pub fn socket_path(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = super::env_path("CACHEKEEPER_SOCKET") {
        return p;
    }
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(d) = super::systemd_dir("RUNTIME_DIRECTORY") {
        return d.join("cachekeeper.sock");
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/run/cachekeeper/cachekeeper.sock");
    }
    super::env_path("XDG_RUNTIME_DIR")
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
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
