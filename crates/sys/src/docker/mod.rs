//! The Docker engine client: connect, negotiate the API version, read the build cache, prune
//! one record.
//!
//! bollard carries the version negotiation and `POST /build/prune` (whose `filters` and `all`
//! parameters mean the same from API 1.41 to 1.53; bollard sends only the parameters we set,
//! so the `keep-storage`/`reserved-space` split of API 1.48 never matters). `GET /system/df` is
//! requested here, at the negotiated version, because no bollard release models the build
//! cache of every API version (see [`df`]). Both go through our [`transport`] (unix socket,
//! TCP, TLS, ssh) to the engine [`endpoint`] names, found as the docker CLI finds it.
//!
//! Every request runs under the configured timeout (pruning one record under twelve times it):
//! a hung engine costs that long, once, and is reported.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;

pub mod df;
pub mod endpoint;
pub mod transport;

use cachekeeper_core::config::Host;
use cachekeeper_core::model::{EngineError, EngineInfo, Record};
use endpoint::Endpoint;
use transport::Transport;

/// How much longer than a listing pruning one record may take (removing a big snapshot is slow).
const PRUNE_FACTOR: u32 = 12;

/// What went wrong with a request to the engine, from the error chain bollard returns.
fn classify(
    host: &Host,
    request: &str,
    err: &(dyn std::error::Error + 'static),
    limit: Duration,
) -> EngineError {
    let host = host.to_string();
    // Find an io::Error in the chain: it says what went wrong with the connection.
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        // bollard's IOError is transparent: its source is the io::Error's own source.
        let io = e.downcast_ref::<io::Error>().or_else(|| {
            match e.downcast_ref::<bollard::errors::Error>() {
                Some(bollard::errors::Error::IOError { err }) => Some(err),
                _ => None,
            }
        });
        if let Some(io) = io {
            return match io.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => EngineError::Absent {
                    host,
                    cause: io.to_string(),
                },
                io::ErrorKind::PermissionDenied => EngineError::PermissionDenied { host },
                _ => EngineError::Other {
                    host,
                    cause: io.to_string(),
                },
            };
        }
        match e.downcast_ref::<bollard::errors::Error>() {
            Some(bollard::errors::Error::DockerResponseServerError {
                status_code,
                message,
            }) => {
                return EngineError::Api {
                    host,
                    status: *status_code,
                    message: message.clone(),
                    request: request.to_string(),
                };
            }
            // bollard's own clock (set to the same limit) may ring first.
            Some(bollard::errors::Error::RequestTimeoutError) => {
                return EngineError::Timeout {
                    host,
                    secs: limit.as_secs(),
                };
            }
            _ => {}
        }
        cur = e.source();
    }
    EngineError::Other {
        host,
        cause: err.to_string(),
    }
}

/// A connected engine.
pub struct Engine {
    pub host: Host,
    /// The docker context the host came from.
    pub context: Option<String>,
    docker: Docker,
    transport: Transport,
    timeout: Duration,
    /// The negotiated API version, `1.41`.
    pub api_version: String,
    pub server_version: String,
    /// Docker's root dir (`/var/lib/docker`), where the build cache lives.
    pub root_dir: Option<PathBuf>,
}

/// Runs `fut`, the request `request` (`GET /version`), within `limit`.
async fn within<T, E: std::error::Error + 'static>(
    host: &Host,
    request: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, EngineError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(host, request, &e, limit)),
        Err(_) => Err(EngineError::Timeout {
            host: host.to_string(),
            secs: limit.as_secs(),
        }),
    }
}

impl Engine {
    /// What the engine said of itself, as plain data.
    #[must_use]
    pub fn info(&self) -> EngineInfo {
        EngineInfo {
            host: self.host.clone(),
            context: self.context.clone(),
            api_version: self.api_version.clone(),
            server_version: self.server_version.clone(),
            root_dir: self.root_dir.clone(),
        }
    }

    /// Connects and negotiates the API version.
    pub async fn connect(endpoint: Endpoint, timeout: Duration) -> Result<Engine, EngineError> {
        let host = endpoint.host.clone();
        if let Host::Unix(path) = &host {
            // A missing socket is the common "no Docker here"; say it plainly.
            if std::fs::symlink_metadata(path).is_err() {
                return Err(EngineError::Absent {
                    host: host.to_string(),
                    cause: "no such socket".into(),
                });
            }
        }
        let transport = Transport::new(&endpoint).map_err(|cause| EngineError::Other {
            host: host.to_string(),
            cause,
        })?;
        // bollard's own clock is set to the longest any request may take (a prune); each
        // request is held to its own limit by `within`.
        let secs = (timeout * PRUNE_FACTOR).as_secs().max(1);
        let via = transport.clone();
        let docker = Docker::connect_with_custom_transport(
            move |req: bollard::BollardRequest| {
                let via = via.clone();
                async move { via.send(req).await.map_err(bollard::errors::Error::from) }
            },
            Some("http://docker"),
            secs,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(|e| classify(&host, "", &e, timeout))?;
        let docker = within(&host, "GET /version", timeout, docker.negotiate_version()).await?;
        let version = within(&host, "GET /version", timeout, docker.version()).await?;
        let info = within(&host, "GET /info", timeout, docker.info()).await?;
        let negotiated = docker.client_version();
        Ok(Engine {
            api_version: format!("{}.{}", negotiated.major_version, negotiated.minor_version),
            server_version: version.version.unwrap_or_default(),
            root_dir: info.docker_root_dir.map(PathBuf::from),
            host,
            context: endpoint.context,
            docker,
            transport,
            timeout,
        })
    }

    /// Every build cache record.
    ///
    /// Engines before 23.0 (API <= 1.41) compute one disk usage at a time and answer a second,
    /// concurrent `GET /system/df` with a 500 "a disk usage operation is already running"
    /// (moby#42715 made later ones share the running one). The daemon and a CLI beside it, or
    /// `docker system df` run by anyone, collide there; that answer is retried until the
    /// request's limit, then reported as the engine said it.
    pub async fn records(&self) -> Result<Vec<Record>, EngineError> {
        let path = format!(
            "/v{}/system/df?type=build-cache&verbose=1",
            self.api_version
        );
        let request = format!("GET {path}");
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(25);
        let (status, body) = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // A retry has what is left of the limit; a hang is reported against the whole.
            let answer = within(&self.host, &request, left, raw_get(&self.transport, &path))
                .await
                .map_err(|e| match e {
                    EngineError::Timeout { host, .. } => EngineError::Timeout {
                        host,
                        secs: self.timeout.as_secs(),
                    },
                    other => other,
                })?;
            if answer.0 != 500 || !df::busy(&answer.1) || left <= pause {
                break answer;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        };
        if status != 200 {
            return Err(EngineError::Api {
                host: self.host.to_string(),
                status,
                message: cachekeeper_core::units::printable(
                    &df::message(&body)
                        .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned()),
                )
                .trim()
                .chars()
                .take(300)
                .collect(),
                request,
            });
        }
        df::parse(&body).map_err(|cause| EngineError::Other {
            host: self.host.to_string(),
            cause,
        })
    }

    /// Prunes one record (by its full id). Returns the ids the engine deleted and the bytes
    /// it reports freed.
    /// How long a whole prune run may take with this engine (as long as one record may).
    #[must_use]
    pub(crate) fn run_deadline(&self) -> std::time::Duration {
        self.timeout * PRUNE_FACTOR
    }

    pub async fn prune(&self, id: &str) -> Result<(Vec<String>, u64), EngineError> {
        use bollard::query_parameters::PruneBuildOptionsBuilder;
        let mut filters = std::collections::HashMap::new();
        filters.insert("id", vec![id]);
        let options = PruneBuildOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let limit = self.timeout * PRUNE_FACTOR;
        let answer = within(
            &self.host,
            "POST /build/prune",
            limit,
            self.docker.prune_build(Some(options)),
        )
        .await?;
        Ok((
            answer.caches_deleted.unwrap_or_default(),
            u64::try_from(answer.space_reclaimed.unwrap_or(0)).unwrap_or(0),
        ))
    }
}

/// An error of our own request, keeping its cause chain for [`EngineError::classify`].
#[derive(Debug)]
struct RawError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RawError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn raw(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RawError {
    RawError(e.into())
}

/// `GET path` on the engine, returning the status and the body.
async fn raw_get(transport: &Transport, path: &str) -> Result<(u16, hyper::body::Bytes), RawError> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;

    let request = hyper::Request::get(path)
        .body(Empty::<Bytes>::new())
        .map_err(raw)?;
    let response = transport.send(request).await.map_err(raw)?;
    let status = response.status().as_u16();
    // An engine's answer is bounded: a broken or hostile one must not fill our memory.
    let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                raw(TooLarge)
            } else {
                RawError(e)
            }
        })?
        .to_bytes();
    Ok((status, body))
}

/// The largest answer read from the engine: a listing of 100k records is about 40 MiB. With
/// the copy made while reading it, the peak stays well under the 256 MiB the shipped
/// Kubernetes manifest allows the daemon (a 256 MiB cap once peaked at 274 MB).
const MAX_ANSWER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
#[error("its answer is too large (over {} MiB): not read", MAX_ANSWER >> 20)]
struct TooLarge;
