//! The BuildKit side of a measurement: connect to the engine and list its build cache.

use std::time::Duration;

use crate::config::{Host, Origin};
use crate::docker::Engine;
use crate::model::{BuildkitCache, BuildkitSide, EngineError};

/// Connects to the engine at `host` and lists its build cache. The connection comes back
/// beside the measurement, for whoever acts on it.
pub async fn measure(
    host: Host,
    origin: Origin,
    timeout: Duration,
) -> (BuildkitSide, Option<Engine>) {
    let result = async {
        let engine = Engine::connect(host, timeout).await?;
        let records = engine.records().await?;
        Ok::<_, EngineError>((engine, records))
    }
    .await;
    match result {
        Ok((engine, records)) => {
            let info = engine.info();
            let filesystem = info
                .root_dir
                .as_deref()
                .filter(|_| matches!(info.host, Host::Unix(_)))
                .and_then(|d| crate::os::disk::measure(d).ok());
            let cache = BuildkitCache {
                engine: info,
                records,
                filesystem,
            };
            (BuildkitSide::Ready(Box::new(cache)), Some(engine))
        }
        Err(error) => (
            BuildkitSide::Unavailable {
                quiet: error.means_no_docker_here(origin),
                error,
            },
            None,
        ),
    }
}

/// [`measure`] for the configured host (`docker-host`, else `$DOCKER_HOST`, else the local
/// socket).
pub async fn measure_configured(
    docker_host: Option<&Host>,
    timeout: Duration,
) -> (BuildkitSide, Option<Engine>) {
    match Host::resolve(docker_host) {
        Ok((host, origin)) => measure(host, origin, timeout).await,
        Err(cause) => (
            BuildkitSide::Unavailable {
                error: EngineError::Other {
                    host: "$DOCKER_HOST".into(),
                    cause,
                },
                quiet: false,
            },
            None,
        ),
    }
}
