//! The BuildKit side of a measurement: connect to the engine and list its build cache.

use std::time::Duration;

use crate::docker::Engine;
use crate::docker::endpoint::{DockerEnv, Endpoint};
use cachekeeper_core::config::Host;
use cachekeeper_core::model::{BuildkitCache, BuildkitSide, EngineError};

/// Connects to the engine at `endpoint` and lists its build cache. The connection comes back
/// beside the measurement, for whoever acts on it.
pub async fn measure(endpoint: Endpoint, timeout: Duration) -> (BuildkitSide, Option<Engine>) {
    let origin = endpoint.origin;
    let result = async {
        let engine = Engine::connect(endpoint, timeout).await?;
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

/// [`measure`] for the configured host (`docker-host`, else `$DOCKER_HOST`, else a docker
/// context, else the local socket).
pub async fn measure_configured(
    docker_host: Option<&Host>,
    timeout: Duration,
) -> (BuildkitSide, Option<Engine>) {
    match Endpoint::resolve(docker_host, &DockerEnv::from_process()) {
        Ok(endpoint) => measure(endpoint, timeout).await,
        Err(cause) => (
            BuildkitSide::Unavailable {
                error: EngineError::Other {
                    host: "the docker host".into(),
                    cause,
                },
                quiet: false,
            },
            None,
        ),
    }
}
