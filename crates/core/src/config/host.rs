//! How a Docker engine is named: `unix:///path`, `tcp://host:port` or `ssh://[user@]host[:port]`,
//! and where the name came from. Finding the one to use (the config, `$DOCKER_HOST`, a docker
//! context, the local socket) reads the environment and the docker CLI's files: that is
//! `docker::endpoint`'s.

use std::path::PathBuf;

/// Where the engine listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    Unix(PathBuf),
    /// `host:port`; TLS when the environment or the context says so.
    Tcp(String),
    /// `[user@]host[:port]`, reached through `ssh ... docker system dial-stdio`.
    Ssh(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(a) => write!(f, "tcp://{a}"),
            Host::Ssh(d) => write!(f, "ssh://{d}"),
        }
    }
}

pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

/// Where the host to use was named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Config,
    Env,
    /// A docker context (`$DOCKER_CONTEXT`, or the docker CLI's current one).
    Context,
    /// Nobody named one: the conventional local socket.
    Default,
}

impl Host {
    pub fn parse(text: &str) -> Result<Host, String> {
        let q = crate::units::quoted(text);
        if let Some(p) = text.strip_prefix("unix://") {
            Ok(Host::Unix(PathBuf::from(p)))
        } else if let Some(a) = text
            .strip_prefix("tcp://")
            .or_else(|| text.strip_prefix("http://"))
        {
            Ok(Host::Tcp(a.trim_end_matches('/').to_string()))
        } else if let Some(d) = text.strip_prefix("ssh://") {
            let d = d.trim_end_matches('/');
            if d.is_empty() || d.contains('/') {
                return Err(format!(
                    "unsupported Docker host {q}: expected ssh://[user@]host[:port]"
                ));
            }
            Ok(Host::Ssh(d.to_string()))
        } else {
            Err(format!(
                "unsupported Docker host {q}: expected unix:///path/to/docker.sock, tcp://host:port or ssh://[user@]host[:port]"
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
        assert_eq!(
            Host::parse("ssh://me@box:2222"),
            Ok(Host::Ssh("me@box:2222".into()))
        );
        assert!(Host::parse("ssh://box/path").is_err());
        assert!(
            Host::parse("npipe:////./pipe/docker_engine")
                .unwrap_err()
                .contains("unsupported Docker host")
        );
    }
}
