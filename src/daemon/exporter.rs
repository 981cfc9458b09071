//! The daemon's metrics: `GET /metrics` on `[metrics] listen`, and the textfile for
//! node_exporter, both rendered from the one [`Exposition`] the daemon refreshes after each
//! rescan, run and pressure poll. A scrape reads it and the process's own facts; it never
//! measures a target dir or asks the engine.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::Semaphore;

use super::lock;
use crate::metrics::{ErrorKind, Exposition, Format, ProcessFacts};
use crate::report::{CleanView, SurveyView};
use cachekeeper_core::config::MetricsConfig;
use cachekeeper_core::model::RunRecord;

/// Connections served at once; one beyond is closed at once (idle connections from anyone
/// must not hold scrapes back).
const CONNECTIONS: usize = 64;
/// A connection must send its request's headers within this.
const HEADER_TIMEOUT: Duration = Duration::from_millis(1500);
/// A connection that has not read its answer by then is dropped.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Exporter {
    shared: Arc<Mutex<Exposition>>,
    server: Option<(SocketAddr, tokio::task::JoinHandle<()>)>,
    textfile: Option<PathBuf>,
}

impl Exporter {
    /// Starts serving on `config.listen`, if set. Fails when the address cannot be bound: the
    /// daemon does not start on a metrics address it cannot serve.
    pub(super) fn start(config: &MetricsConfig, history: &[RunRecord]) -> anyhow::Result<Exporter> {
        let shared = Arc::new(Mutex::new(Exposition {
            status: None,
            counters: crate::metrics::Counters::seeded(history),
            max_target_dirs: config.max_target_dirs,
            paths: config.paths,
        }));
        let mut e = Exporter {
            shared,
            server: None,
            textfile: config.textfile.clone(),
        };
        if let Some(addr) = config.listen {
            e.server = Some((addr, e.serve(addr)?));
            tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
        }
        Ok(e)
    }

    fn serve(&self, addr: SocketAddr) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let listener = std::net::TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
            .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
        let shared = Arc::clone(&self.shared);
        Ok(tokio::spawn(accept(listener, shared)))
    }

    /// Applies a reloaded `[metrics]`: a changed address is bound anew (the old one kept if
    /// the new one cannot be).
    pub(super) fn reconfigure(&mut self, config: &MetricsConfig) -> Result<(), String> {
        self.textfile.clone_from(&config.textfile);
        {
            let mut e = lock(&self.shared);
            e.max_target_dirs = config.max_target_dirs;
            e.paths = config.paths;
        }
        if self.server.as_ref().map(|(a, _)| *a) == config.listen {
            return Ok(());
        }
        let new = match config.listen {
            Some(addr) => Some((addr, self.serve(addr).map_err(|e| format!("{e:#}"))?)),
            None => None,
        };
        if let Some((_, task)) = std::mem::replace(&mut self.server, new) {
            task.abort();
        }
        Ok(())
    }

    /// Refreshes what scrapes read.
    pub(super) fn publish(&self, status: Option<SurveyView>) {
        lock(&self.shared).status = status;
    }

    /// Counts a finished run.
    pub(super) fn observe(&self, record: &RunRecord, view: &CleanView) {
        lock(&self.shared).counters.observe(record, view);
    }

    /// Counts a run made elsewhere.
    pub(super) fn observe_counted(&self, record: &RunRecord, errors: crate::report::RunErrors) {
        lock(&self.shared).counters.observe_counted(record, errors);
    }

    pub(super) fn error(&self, kind: ErrorKind) {
        lock(&self.shared).counters.error(kind, 1);
    }

    /// Writes the textfile, if one is configured: beside it, then renamed over it, so
    /// node_exporter never reads half a file.
    pub(super) fn write_textfile(&self) -> Result<(), String> {
        let Some(path) = &self.textfile else {
            return Ok(());
        };
        let text = lock(&self.shared).render(Format::Prometheus, None);
        cachekeeper_sys::os::private::replace_file(path, text.as_bytes(), 0o644).map_err(|e| {
            self.error(ErrorKind::Textfile);
            format!("cannot write the metrics textfile {}: {e}", path.display())
        })
    }

    /// The address scrapes are served on.
    pub(super) fn address(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|(a, _)| *a)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.server {
            task.abort();
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, shared: Arc<Mutex<Exposition>>) {
    let slots = Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("metrics: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Full: this one is closed at once rather than queued behind idle ones.
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let answer = answer(&req, &shared);
                async move { Ok::<_, Infallible>(answer) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, conn).await;
            drop(permit);
        });
    }
}

fn answer(req: &Request<Incoming>, shared: &Mutex<Exposition>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = kind.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => {
            let accept = req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let process = process_facts();
            let body = lock(shared).render(format, process);
            reply(StatusCode::OK, format.content_type(), body)
        }
        (&Method::GET | &Method::HEAD, "/") => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            "<html><body><h1>cachekeeper</h1><p><a href=\"/metrics\">metrics</a></p></body></html>\n"
                .into(),
        ),
        (_, "/" | "/metrics") => {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "only GET\n".into(),
            );
            r.headers_mut()
                .insert(hyper::header::ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
            r
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: metrics are at /metrics\n".into(),
        ),
    }
}

/// The process's resident memory, CPU time, open fds and start time, from /proc.
fn process_facts() -> Option<ProcessFacts> {
    let f = cachekeeper_sys::os::process::current()?;
    Some(ProcessFacts {
        resident_bytes: f.resident_bytes,
        cpu_seconds: f.cpu_seconds,
        open_fds: f.open_fds,
        start_time_seconds: f.start_time_seconds,
    })
}
