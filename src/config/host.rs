//! Where the Docker engine listens: a host named in the config or `$DOCKER_HOST`, or the
//! conventional local socket.

use std::path::PathBuf;

/// Where the engine listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    Tcp(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where the host to use was named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Config,
    Env,
    /// Nobody named one: the conventional local socket.
    Default,
}

impl Host {
    /// The configured host, else `$DOCKER_HOST`, else the local socket.
    pub fn resolve(configured: Option<&Host>) -> Result<(Host, Origin), String> {
        if let Some(c) = configured {
            return Ok((c.clone(), Origin::Config));
        }
        match std::env::var("DOCKER_HOST").ok().filter(|s| !s.is_empty()) {
            Some(e) => Ok((Host::parse(&e)?, Origin::Env)),
            None => Ok((Host::Unix(PathBuf::from(DEFAULT_SOCKET)), Origin::Default)),
        }
    }

    pub fn parse(text: &str) -> Result<Host, String> {
        let q = crate::units::quoted(text);
        if let Some(p) = text.strip_prefix("unix://") {
            Ok(Host::Unix(PathBuf::from(p)))
        } else if let Some(a) = text
            .strip_prefix("tcp://")
            .or_else(|| text.strip_prefix("http://"))
        {
            Ok(Host::Tcp(a.trim_end_matches('/').to_string()))
        } else {
            Err(format!(
                "unsupported Docker host {q}: expected unix:///path/to/docker.sock or tcp://host:port"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            Host::parse("unix:///run/docker.sock"),
            Ok(Host::Unix("/run/docker.sock".into()))
        );
        assert_eq!(
            Host::parse("tcp://127.0.0.1:2375"),
            Ok(Host::Tcp("127.0.0.1:2375".into()))
        );
        assert!(
            Host::parse("ssh://me@box")
                .unwrap_err()
                .contains("unsupported Docker host")
        );
        assert_eq!(
            Host::resolve(Some(&Host::Tcp("h:1".into()))),
            Ok((Host::Tcp("h:1".into()), Origin::Config))
        );
    }
}
