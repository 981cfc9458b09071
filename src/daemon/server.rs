//! The control socket's server: who may talk, how many at once, for how long.
//!
//! Invariants:
//! - The socket is mode 0600: only the daemon's own user (and root, who passes any mode) can
//!   connect. Credentials (`SO_PEERCRED`) are checked again the moment a connection is
//!   accepted, before anything is read, and anyone else is answered a refusal and dropped at
//!   once (in case the mode was loosened by hand).
//! - At most [`MAX_CONNECTIONS`] connections are served at once; beyond that one is answered
//!   "busy" and dropped. A request must arrive within [`REQUEST_TIMEOUT`].
//! - Refusals are logged at most once per [`LOG_EVERY`], with a count of those not logged.
//! - Accept errors (out of descriptors) back off instead of spinning.
//! - An existing file at the socket path that is not a socket is never replaced.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::Ask;
use crate::protocol::{Request, Response};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a refusal is logged at most.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Binds the control socket (mode 0600), replacing a stale one left by a crash, but never a
/// live one nor a file that is not a socket. Its directory is created 0700 where missing, and
/// must be this user's (or root's) and writable by nobody else: the socket is made inside the
/// directory's handle, so a link planted on the way or at the name is never followed.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::fd::AsRawFd;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        anyhow::bail!("{} names no socket in a directory", path.display());
    };
    let dir = cachekeeper_sys::os::private::PrivateDir::open(dir)
        .with_context(|| format!("the socket's directory {}", dir.display()))?;
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("another daemon answers at {}", path.display());
    }
    dir.remove_stale_socket(name).with_context(|| {
        format!(
            "{}: refusing to replace it (set [daemon] socket elsewhere)",
            path.display()
        )
    })?;
    // bind(2) has no *at form: the dir's own fd names it, so nothing on the way is resolved.
    let via_fd = Path::new("/proc/self/fd")
        .join(dir.as_fd().as_raw_fd().to_string())
        .join(name);
    let listener =
        UnixListener::bind(&via_fd).with_context(|| format!("binding {}", path.display()))?;
    dir.chmod(name, 0o600)
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(listener)
}

/// Logs refusals at most once per [`LOG_EVERY`].
#[derive(Default)]
struct Refusals {
    last: Option<Instant>,
    unlogged: u64,
}

impl Refusals {
    fn refused(&mut self, uid: u32, pid: i32, me: u32) {
        if self.last.is_some_and(|t| t.elapsed() < LOG_EVERY) {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(
            uid,
            pid,
            unlogged = self.unlogged,
            "refused a control connection: only uid {me} and root may talk to this daemon{}",
            if self.unlogged > 0 {
                format!(" ({} more refused since the last such line)", self.unlogged)
            } else {
                String::new()
            }
        );
        self.last = Some(Instant::now());
        self.unlogged = 0;
    }
}

/// A one-line answer written without waiting: for peers dropped at once.
fn answer_now(stream: &UnixStream, response: &Response) {
    if let Ok(mut line) = serde_json::to_vec(response) {
        line.push(b'\n');
        let _ = stream.try_write(&line);
    }
}

pub async fn accept_loop(listener: UnixListener, asks: mpsc::UnboundedSender<Ask>) {
    let me = rustix::process::geteuid().as_raw();
    let open = Arc::new(AtomicUsize::new(0));
    let mut refusals = Refusals::default();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors (or memory): wait for some to be given back.
                tracing::debug!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(c) if c.uid() == me || c.uid() == 0 => {}
            Ok(c) => {
                refusals.refused(c.uid(), c.pid().unwrap_or(0), me);
                answer_now(
                    &stream,
                    &Response::refused(&format!(
                        "refused: this daemon answers only uid {me} and root"
                    )),
                );
                continue;
            }
            Err(e) => {
                tracing::debug!("control connection without credentials: {e}");
                continue;
            }
        }
        if open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            answer_now(
                &stream,
                &Response::refused("busy: too many connections at once; try again"),
            );
            continue;
        }
        open.fetch_add(1, Ordering::SeqCst);
        let (asks, open) = (asks.clone(), Arc::clone(&open));
        tokio::spawn(async move {
            if let Err(e) = handle(stream, asks).await {
                tracing::debug!("control connection: {e}");
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn handle(stream: UnixStream, asks: mpsc::UnboundedSender<Ask>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(64 * 1024));
    tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no request"))??;
    let response = match serde_json::from_str::<Request>(&line) {
        Ok(request) => {
            let (tx, rx) = oneshot::channel();
            if asks.send((request, tx)).is_err() {
                Response::refused("the daemon is stopping")
            } else {
                rx.await
                    .unwrap_or_else(|_| Response::refused("the daemon is stopping"))
            }
        }
        Err(e) => Response::refused(&format!("bad request: {e}")),
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await
}
