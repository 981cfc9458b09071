//! The config file: where it is looked up, reading it, and what about its roots only the disk
//! can tell. What the text means is `cachekeeper_core::config`, which reads no disk.

use std::path::{Path, PathBuf};

use cachekeeper_core::config::{self, Config, ConfigError, DEFAULT_TOML, Env, Source};

/// The facts of this process's environment that validation needs.
#[must_use]
pub fn process_env() -> Env {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // `/usr/bin` and `/usr/local/bin` are installs whose config lives in /etc.
    let prefix = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .filter(|p| !["/", "/usr", "/usr/local"].contains(&p.to_str().unwrap_or("/")));
    Env {
        home: var("HOME"),
        cachekeeper_config: var("CACHEKEEPER_CONFIG"),
        xdg_config_home: var("XDG_CONFIG_HOME"),
        prefix,
    }
}

/// Errors of finding and reading a config file (before its content is looked at).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(#[from] ConfigError),
}

/// Finds the config file to use: `explicit` (from `--config`), `$CACHEKEEPER_CONFIG`,
/// `$XDG_CONFIG_HOME/cachekeeper/config.toml` (or `~/.config/...`), the install prefix's
/// `etc/cachekeeper/config.toml` (`install.sh --prefix DIR`), `/etc/cachekeeper/config.toml`;
/// `None` means the embedded defaults.
/// An explicitly named file must exist; the conventional places are used only if present.
#[must_use]
pub fn locate(explicit: Option<&Path>, env: &Env) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(p) = &env.cachekeeper_config {
        return Some(p.clone());
    }
    let user_dir = env
        .xdg_config_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".config")));
    let candidates = user_dir
        .map(|d| d.join("cachekeeper/config.toml"))
        .into_iter()
        .chain(
            env.prefix
                .as_ref()
                .map(|p| p.join("etc/cachekeeper/config.toml")),
        )
        .chain(std::iter::once(PathBuf::from(
            "/etc/cachekeeper/config.toml",
        )));
    candidates.into_iter().find(|p| p.is_file())
}

/// Loads the config in force: the located file laid over the embedded defaults, with what the
/// disk says of its roots among its warnings.
pub fn load(explicit: Option<&Path>, env: &Env) -> Result<Config, LoadError> {
    let mut config = match locate(explicit, env) {
        None => config::parse(DEFAULT_TOML, Source::Embedded, env)?,
        Some(path) => {
            // A regular file, of a config's size (a FIFO or a device there is an error, not a
            // hang); a link is followed (dotfiles often are).
            let read = crate::readfile::read(&path, MAX_CONFIG, true).and_then(|b| {
                let bytes = b.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))?;
                String::from_utf8(bytes).map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text")
                })
            });
            let text = read.map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })?;
            config::parse(&text, Source::File(path), env)?
        }
    };
    let absent = roots_not_there(&config.cargo.roots);
    config.warnings.extend(absent);
    Ok(config)
}

/// The largest config file read.
const MAX_CONFIG: u64 = 4 << 20;

/// The `[daemon] socket` a config file names, read leniently: for asking a running daemon
/// when the file no longer validates (edited since the daemon loaded it). `None` when the
/// file names none or cannot be read as TOML at all.
#[must_use]
pub fn socket_hint(explicit: Option<&Path>, env: &Env) -> Option<PathBuf> {
    let bytes = crate::readfile::read(&locate(explicit, env)?, MAX_CONFIG, true).ok()??;
    let table: toml::Table = toml::from_str(std::str::from_utf8(&bytes).ok()?).ok()?;
    let raw = table.get("daemon")?.get("socket")?.as_str()?;
    config::expand_home(raw, env).ok()
}

/// Roots that are not there, or not directories: valid, but nothing is searched there.
fn roots_not_there(roots: &[PathBuf]) -> Vec<String> {
    let mut w = Vec::new();
    for root in roots {
        // Whether anything is there at all (a root given as a link to a directory is fine).
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => w.push(format!(
                "[cargo] roots: {} is not a directory: nothing is searched there",
                root.display()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => w.push(format!(
                "[cargo] roots: {} does not exist: nothing is searched there until it does (a typo?)",
                root.display()
            )),
            Err(e) => w.push(format!(
                "[cargo] roots: {} cannot be read ({e}): nothing is searched there",
                root.display()
            )),
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_not_there_are_warned_about_and_a_home_that_is_there_is_not() {
        let home = tempfile::tempdir().unwrap();
        let there = Env {
            home: Some(home.path().to_path_buf()),
            ..Env::default()
        };
        let defaults = config::defaults(&there);
        assert!(roots_not_there(&defaults.cargo.roots).is_empty());
        let w = roots_not_there(&[
            PathBuf::from("/nonexistent/src"),
            PathBuf::from("/dev/null"),
        ]);
        assert!(
            w[0].contains("/nonexistent/src does not exist")
                && w[1].contains("/dev/null is not a directory"),
            "{w:?}"
        );
        let file = home.path().join("ck.toml");
        std::fs::write(&file, "[cargo]\nroots = [\"/nonexistent/src\"]\n").unwrap();
        let loaded = load(Some(&file), &there).unwrap();
        assert!(
            loaded.warnings.iter().any(|w| w.contains("does not exist")),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn lookup_order() {
        let dir = tempfile::tempdir().unwrap();
        let xdg = dir.path().join("xdg");
        std::fs::create_dir_all(xdg.join("cachekeeper")).unwrap();
        let prefix = dir.path().join("opt");
        std::fs::create_dir_all(prefix.join("etc/cachekeeper")).unwrap();
        let mut env = Env {
            home: Some(dir.path().join("home")),
            cachekeeper_config: None,
            xdg_config_home: Some(xdg.clone()),
            prefix: Some(prefix.clone()),
        };
        // Nothing present at the conventional places (and no /etc file on a test machine
        // is assumed): explicit beats everything.
        assert_eq!(
            locate(Some(Path::new("/x.toml")), &env),
            Some(PathBuf::from("/x.toml"))
        );
        // The install prefix's config (install.sh --prefix) comes before /etc.
        std::fs::write(prefix.join("etc/cachekeeper/config.toml"), "").unwrap();
        assert_eq!(
            locate(None, &env),
            Some(prefix.join("etc/cachekeeper/config.toml"))
        );
        std::fs::write(xdg.join("cachekeeper/config.toml"), "").unwrap();
        assert_eq!(
            locate(None, &env),
            Some(xdg.join("cachekeeper/config.toml"))
        );
        env.cachekeeper_config = Some(PathBuf::from("/from/env.toml"));
        assert_eq!(locate(None, &env), Some(PathBuf::from("/from/env.toml")));
    }
}
