//! Which rust toolchains are installed, as cargo's fingerprints name them.
//!
//! Each fingerprint JSON has `"rustc": <u64>`, a hash of the `rustc -vV` output of the
//! compiler that built the unit. Cargo hashed it with `SipHasher` (keys 0, 0) before 1.85 and
//! with `StableSipHasher128` since; we compute both for every installed rustc, so a unit
//! built by any installed toolchain under either scheme matches.
//!
//! Installed means: every toolchain under `$RUSTUP_HOME/toolchains` (default `~/.rustup`),
//! `rustc` on PATH when it is not rustup's proxy (a distribution's rustc, say; the proxy only
//! runs one of the toolchains already counted, and is asked only when there are none), and the
//! config's `extra-rustc`. Each is run with `-vV` from `/` (so no `rust-toolchain.toml`
//! applies), with rustup's auto-install off, under a timeout, all at once.
//!
//! Answers are cached, like cargo's own `.rustc_info.json`, by the binary's identity (path,
//! device, inode, size, mtime) in `$XDG_CACHE_HOME/cachekeeper/rustc-versions.json`: a
//! toolchain that is updated or reinstalled is a different file and is asked again.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cachekeeper_core::model::Toolchains;

/// How long one `rustc -vV` may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Finds the installed compilers.
#[must_use]
pub fn discover(extra: &[PathBuf]) -> Toolchains {
    let mut binaries: Vec<PathBuf> = Vec::new();
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    if let Some(home) = rustup_home
        && let Ok(entries) = std::fs::read_dir(home.join("toolchains"))
    {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        binaries.extend(
            dirs.into_iter()
                .map(|d| d.join("bin/rustc"))
                .filter(|p| p.is_file()),
        );
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("rustc"))
            .find(|p| p.is_file())
    });
    if let Some(p) = on_path
        && (binaries.is_empty() || !is_rustup_proxy(&p))
    {
        binaries.push(p);
    }
    binaries.extend(extra.iter().cloned());
    binaries.dedup();

    let cache_file = cache_path();
    let mut cache = cache_file.as_deref().map(Cache::load).unwrap_or_default();
    let answers: Vec<(PathBuf, Option<Identity>, Result<String, String>)> =
        std::thread::scope(|s| {
            let asks: Vec<_> = binaries
                .iter()
                .map(|b| {
                    let id = Identity::of(b);
                    let cached = id.as_ref().and_then(|id| cache.get(id)).map(str::to_string);
                    let b = b.clone();
                    s.spawn(move || {
                        let vv = match cached {
                            Some(vv) => Ok(vv),
                            None => verbose_version(&b),
                        };
                        (b, id, vv)
                    })
                })
                .collect();
            asks.into_iter()
                .map(|h| h.join().expect("asking rustc does not panic"))
                .collect()
        });
    let mut t = Toolchains::default();
    let mut changed = false;
    for (b, id, vv) in answers {
        match vv {
            Ok(vv) => {
                if let Some(id) = id {
                    changed |= cache.put(id, &vv);
                }
                t.add_verbose_version(&vv);
            }
            Err(e) => t.errors.push(format!("{}: {e}", b.display())),
        }
    }
    if let (true, Some(path)) = (changed, cache_file) {
        cache.save(&path);
    }
    t
}

/// Whether `rustc` is rustup's proxy: a link to, or the same file as, `rustup`.
fn is_rustup_proxy(rustc: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(rustc).unwrap_or_else(|_| rustc.to_path_buf());
    if real
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("rustup"))
    {
        return true;
    }
    let rustup = rustc.with_file_name("rustup");
    match (std::fs::metadata(rustc), std::fs::metadata(rustup)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

fn cache_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("cachekeeper/rustc-versions.json"))
}

/// What identifies a rustc binary for the cache.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Identity {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Identity {
    fn of(binary: &Path) -> Option<Identity> {
        use std::os::unix::fs::MetadataExt;
        let path = std::fs::canonicalize(binary).ok()?;
        let m = std::fs::metadata(&path).ok()?;
        Some(Identity {
            path,
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        })
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cache {
    entries: Vec<(Identity, String)>,
}

impl Cache {
    fn load(path: &Path) -> Cache {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn get(&self, id: &Identity) -> Option<&str> {
        self.entries
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.as_str())
    }

    /// Records an answer; returns whether anything changed.
    fn put(&mut self, id: Identity, vv: &str) -> bool {
        if self.get(&id) == Some(vv) {
            return false;
        }
        self.entries.retain(|(i, _)| i.path != id.path);
        self.entries.push((id, vv.to_string()));
        true
    }

    /// Writes atomically (temp file, then rename); a cache that cannot be written is skipped.
    fn save(&self, path: &Path) {
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(".rustc-versions.{}.tmp", std::process::id()));
        let Ok(text) = serde_json::to_vec(self) else {
            return;
        };
        if std::fs::write(&tmp, text).is_ok() && std::fs::rename(&tmp, path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Runs `rustc -vV`.
pub(crate) fn verbose_version(rustc: &Path) -> Result<String, String> {
    let mut child = Command::new(rustc)
        .arg("-vV")
        .current_dir("/")
        .env("RUSTUP_AUTO_INSTALL", "0")
        .env_remove("RUSTUP_TOOLCHAIN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {}s", RUN_TIMEOUT.as_secs()));
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut out)
        .map_err(|e| e.to_string())?;
    if status.success() && out.starts_with("rustc ") {
        Ok(out)
    } else {
        Err(format!("`-vV` failed ({status})"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_answers_are_keyed_by_the_binary_itself() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rustc");
        std::fs::write(&bin, "v1").unwrap();
        let id = Identity::of(&bin).unwrap();
        let mut c = Cache::default();
        assert!(c.put(id.clone(), "rustc 1.0.0\n"));
        assert!(!c.put(id.clone(), "rustc 1.0.0\n"));
        let file = dir.path().join("cache.json");
        c.save(&file);
        assert_eq!(Cache::load(&file).get(&id), Some("rustc 1.0.0\n"));
        // Replaced by another build: a different file, so not answered from the cache.
        std::fs::remove_file(&bin).unwrap();
        std::fs::write(&bin, "v2 is longer").unwrap();
        assert_eq!(Cache::load(&file).get(&Identity::of(&bin).unwrap()), None);
    }

    #[test]
    fn finds_the_rustc_on_this_machine() {
        let t = discover(&[]);
        assert!(!t.found.is_empty(), "errors: {:?}", t.errors);
    }
}
