//! Which engine to talk to, found the way the docker CLI finds it: the config's
//! `docker-host`, else `$DOCKER_HOST` (with `$DOCKER_TLS_VERIFY` and `$DOCKER_CERT_PATH`), else
//! the context `$DOCKER_CONTEXT` names, else the docker CLI's current context
//! (`currentContext` in `$DOCKER_CONFIG/config.json`, `~/.docker` by default), else the local
//! socket. A context's endpoint and TLS material come from the CLI's context store
//! (`contexts/meta/<id>/meta.json`, `contexts/tls/<id>/docker/{ca,cert,key}.pem`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use cachekeeper_core::config::{DEFAULT_SOCKET, Host, Origin};

/// TLS to a `tcp://` engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The CA that signed the engine's certificate; with `verify`, the only one trusted.
    pub ca: Option<PathBuf>,
    /// Our client certificate and key, when the engine asks for one.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Check the engine's certificate (off only when a context says `SkipTLSVerify`).
    pub verify: bool,
}

/// The engine to use, and how it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub origin: Origin,
    /// The docker context it came from.
    pub context: Option<String>,
    pub tls: Option<Tls>,
}

/// What the environment says (read once, so resolution is testable).
#[derive(Clone, Debug, Default)]
pub struct DockerEnv {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// `$DOCKER_CONFIG`, else `~/.docker`.
    pub config_dir: Option<PathBuf>,
    pub tls_verify: bool,
    pub cert_path: Option<PathBuf>,
}

impl DockerEnv {
    #[must_use]
    pub(crate) fn from_process() -> DockerEnv {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = var("HOME").map(PathBuf::from);
        let config_dir = var("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".docker")));
        DockerEnv {
            docker_host: var("DOCKER_HOST"),
            docker_context: var("DOCKER_CONTEXT"),
            tls_verify: var("DOCKER_TLS_VERIFY").is_some_and(|v| v != "0"),
            cert_path: var("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| config_dir.clone()),
            config_dir,
        }
    }
}

/// The docker CLI's current context, from its `config.json`: `None` when the file is not
/// there or names none; an error naming the file when it cannot be read (a garbage file is
/// not silently the defaults).
fn current_context(file: &Path) -> Result<Option<String>, String> {
    let bytes = match crate::readfile::read(file, 1 << 20, true) {
        Ok(Some(b)) => b,
        Ok(None) => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read docker's config {}: {e}",
                file.display()
            ));
        }
    };
    let config: CliConfig = serde_json::from_slice(&bytes)
        .map_err(|e| format!("docker's config {} is not valid JSON: {e}", file.display()))?;
    Ok(config.current_context.filter(|c| !c.is_empty()))
}

#[derive(Deserialize)]
struct CliConfig {
    #[serde(rename = "currentContext", default)]
    current_context: Option<String>,
}

#[derive(Deserialize)]
struct Meta {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Endpoints", default)]
    endpoints: std::collections::HashMap<String, MetaEndpoint>,
}

#[derive(Deserialize)]
struct MetaEndpoint {
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "SkipTLSVerify", default)]
    skip_tls_verify: bool,
}

/// TLS files found in `dir`, if any.
fn tls_in(dir: &Path, verify: bool) -> Option<Tls> {
    let file = |n: &str| Some(dir.join(n)).filter(|p| p.is_file());
    let tls = Tls {
        ca: file("ca.pem"),
        cert: file("cert.pem"),
        key: file("key.pem"),
        verify,
    };
    (tls.ca.is_some() || tls.cert.is_some() || tls.key.is_some()).then_some(tls)
}

/// TLS that was asked for, complete, or an error naming what is missing: never plain HTTP in
/// its place. `what` says who asked.
fn tls_required(dir: &Path, verify: bool, what: &str) -> Result<Tls, String> {
    let tls = tls_in(dir, verify).unwrap_or(Tls {
        ca: None,
        cert: None,
        key: None,
        verify,
    });
    let mut missing = Vec::new();
    if verify && tls.ca.is_none() {
        missing.push("ca.pem");
    }
    if tls.cert.is_none() {
        missing.push("cert.pem");
    }
    if tls.key.is_none() {
        missing.push("key.pem");
    }
    if missing.is_empty() {
        return Ok(tls);
    }
    Err(format!(
        "{what} asks for TLS, but {} missing in {} (refusing to connect without it)",
        missing.join(", ") + if missing.len() == 1 { " is" } else { " are" },
        dir.display()
    ))
}

impl Endpoint {
    /// The engine to use, or why none can be named (a context that does not exist, a host
    /// that does not parse).
    pub fn resolve(configured: Option<&Host>, env: &DockerEnv) -> Result<Endpoint, String> {
        // $DOCKER_TLS_VERIFY asks for TLS to a tcp:// engine: with all of $DOCKER_CERT_PATH's
        // files, or not at all.
        let env_tls = |host: &Host| -> Result<Option<Tls>, String> {
            if !(matches!(host, Host::Tcp(_)) && env.tls_verify) {
                return Ok(None);
            }
            let Some(dir) = &env.cert_path else {
                return Err(
                    "$DOCKER_TLS_VERIFY asks for TLS, but no $DOCKER_CERT_PATH (or ~/.docker) holds its files"
                        .into(),
                );
            };
            tls_required(dir, true, "$DOCKER_TLS_VERIFY").map(Some)
        };
        if let Some(h) = configured {
            return Ok(Endpoint {
                tls: env_tls(h)?,
                host: h.clone(),
                origin: Origin::Config,
                context: None,
            });
        }
        if let Some(text) = &env.docker_host {
            let host = Host::parse(text).map_err(|e| format!("$DOCKER_HOST: {e}"))?;
            return Ok(Endpoint {
                tls: env_tls(&host)?,
                host,
                origin: Origin::Env,
                context: None,
            });
        }
        let current = match &env.config_dir {
            Some(dir) => current_context(&dir.join("config.json"))?,
            None => None,
        };
        match env.docker_context.clone().or(current) {
            Some(name) if name != "default" => Self::of_context(&name, env),
            _ => Ok(Endpoint {
                host: Host::Unix(PathBuf::from(DEFAULT_SOCKET)),
                origin: Origin::Default,
                context: None,
                tls: None,
            }),
        }
    }

    /// The endpoint of the context `name` in the docker CLI's store.
    fn of_context(name: &str, env: &DockerEnv) -> Result<Endpoint, String> {
        let store = env
            .config_dir
            .as_ref()
            .ok_or_else(|| format!("docker context {name:?}: no docker config dir (HOME unset)"))?
            .join("contexts");
        // Each context lives in a dir named by the SHA-256 of its name; the name is also in
        // its meta.json, which is what is matched here.
        let metas = std::fs::read_dir(store.join("meta")).map_err(|e| {
            format!(
                "docker context {name:?}: cannot read {}: {e}",
                store.join("meta").display()
            )
        })?;
        for entry in metas.flatten() {
            let Ok(text) = std::fs::read(entry.path().join("meta.json")) else {
                continue;
            };
            let Ok(meta) = serde_json::from_slice::<Meta>(&text) else {
                continue;
            };
            if meta.name != name {
                continue;
            }
            let ep = meta
                .endpoints
                .get("docker")
                .ok_or_else(|| format!("docker context {name:?} has no docker endpoint"))?;
            let host = match ep.host.as_deref() {
                Some(h) => Host::parse(h).map_err(|e| format!("docker context {name:?}: {e}"))?,
                None => Host::Unix(PathBuf::from(DEFAULT_SOCKET)),
            };
            let tls_dir = store.join("tls").join(entry.file_name()).join("docker");
            // A context with TLS material asks for TLS: all of it, or an error. One without any
            // speaks plain tcp, as docker does with it.
            let tls = match (&host, tls_in(&tls_dir, !ep.skip_tls_verify)) {
                (Host::Tcp(_), Some(_)) => Some(tls_required(
                    &tls_dir,
                    !ep.skip_tls_verify,
                    &format!("docker context {name:?}"),
                )?),
                _ => None,
            };
            return Ok(Endpoint {
                host,
                origin: Origin::Context,
                context: Some(name.to_string()),
                tls,
            });
        }
        Err(format!(
            "docker context {name:?} not found in {} (docker context ls lists them)",
            store.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(dir: &Path) -> DockerEnv {
        DockerEnv {
            config_dir: Some(dir.to_path_buf()),
            cert_path: Some(dir.to_path_buf()),
            ..DockerEnv::default()
        }
    }

    /// A context as `docker context create NAME --docker host=HOST` stores it.
    fn context(dir: &Path, name: &str, host: &str, tls: bool) {
        let id = format!("{:x}", name.len() * 7919); // any dir name: the name is in meta.json
        let meta = dir.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            format!(
                r#"{{"Name":"{name}","Metadata":{{}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
            ),
        )
        .unwrap();
        if tls {
            let t = dir.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&t).unwrap();
            for f in ["ca.pem", "cert.pem", "key.pem"] {
                std::fs::write(t.join(f), "x").unwrap();
            }
        }
    }

    #[test]
    fn the_config_then_docker_host_then_a_context_then_the_local_socket() {
        let d = tempfile::tempdir().unwrap();
        context(d.path(), "remote", "tcp://10.0.0.2:2376", true);
        context(d.path(), "other", "unix:///run/other.sock", false);
        std::fs::write(
            d.path().join("config.json"),
            r#"{"currentContext":"other"}"#,
        )
        .unwrap();
        let mut e = env(d.path());

        let current = Endpoint::resolve(None, &e).unwrap();
        assert_eq!(current.host, Host::Unix("/run/other.sock".into()));
        assert_eq!(
            (current.origin, current.context.as_deref()),
            (Origin::Context, Some("other"))
        );

        e.docker_context = Some("remote".into());
        let remote = Endpoint::resolve(None, &e).unwrap();
        assert_eq!(remote.host, Host::Tcp("10.0.0.2:2376".into()));
        let tls = remote.tls.unwrap();
        assert!(tls.verify && tls.ca.is_some() && tls.key.is_some());

        e.docker_host = Some("unix:///run/env.sock".into());
        let from_env = Endpoint::resolve(None, &e).unwrap();
        assert_eq!(
            (from_env.host, from_env.origin),
            (Host::Unix("/run/env.sock".into()), Origin::Env)
        );

        let configured = Host::Unix("/run/config.sock".into());
        assert_eq!(
            Endpoint::resolve(Some(&configured), &e).unwrap().origin,
            Origin::Config
        );

        e.docker_host = None;
        e.docker_context = Some("default".into());
        let default = Endpoint::resolve(None, &e).unwrap();
        assert_eq!(default.origin, Origin::Default);

        e.docker_context = Some("gone".into());
        assert!(
            Endpoint::resolve(None, &e)
                .unwrap_err()
                .contains("\"gone\" not found")
        );
    }

    #[test]
    fn tls_from_the_environment_for_tcp_only_and_only_when_asked() {
        let d = tempfile::tempdir().unwrap();
        for f in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(d.path().join(f), "x").unwrap();
        }
        let mut e = env(d.path());
        e.docker_host = Some("tcp://h:2376".into());
        assert_eq!(
            Endpoint::resolve(None, &e).unwrap().tls,
            None,
            "no DOCKER_TLS_VERIFY"
        );
        e.tls_verify = true;
        assert!(Endpoint::resolve(None, &e).unwrap().tls.is_some());
        e.docker_host = Some("unix:///s".into());
        assert_eq!(Endpoint::resolve(None, &e).unwrap().tls, None);
    }

    /// Hardening issue: `DOCKER_TLS_VERIFY=1` with its files missing connected over plain HTTP,
    /// and a garbage `config.json` was silently the defaults.
    #[test]
    fn tls_asked_for_is_tls_or_an_error_naming_the_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let mut e = env(d.path());
        e.docker_host = Some("tcp://h:2376".into());
        e.tls_verify = true;
        let err = Endpoint::resolve(None, &e).unwrap_err();
        assert!(
            err.contains("ca.pem, cert.pem, key.pem are missing")
                && err.contains("DOCKER_TLS_VERIFY"),
            "{err}"
        );
        std::fs::write(d.path().join("ca.pem"), "x").unwrap();
        std::fs::write(d.path().join("cert.pem"), "x").unwrap();
        let err = Endpoint::resolve(None, &e).unwrap_err();
        assert!(err.contains("key.pem is missing"), "{err}");
        // A context whose TLS material is partly there.
        let c = tempfile::tempdir().unwrap();
        context(c.path(), "remote", "tcp://10.0.0.2:2376", true);
        let tls = c
            .path()
            .join("contexts/tls")
            .join(format!("{:x}", 6 * 7919))
            .join("docker");
        std::fs::remove_file(tls.join("key.pem")).unwrap();
        let mut e = env(c.path());
        e.docker_context = Some("remote".into());
        let err = Endpoint::resolve(None, &e).unwrap_err();
        assert!(
            err.contains("docker context \"remote\"") && err.contains("key.pem"),
            "{err}"
        );
        // Garbage where docker keeps its config.
        let g = tempfile::tempdir().unwrap();
        std::fs::write(g.path().join("config.json"), "{not json").unwrap();
        let err = Endpoint::resolve(None, &env(g.path())).unwrap_err();
        assert!(
            err.contains("config.json") && err.contains("not valid JSON"),
            "{err}"
        );
    }
}
