//! Which rust toolchains are installed, as cargo's fingerprints name them.
//!
//! Each fingerprint JSON has `"rustc": <u64>`, a hash of the `rustc -vV` output of the
//! compiler that built the unit. Cargo hashed it with `SipHasher` (keys 0, 0) before 1.85 and
//! with `StableSipHasher128` since; we compute both for every installed rustc, so a unit
//! built by any installed toolchain under either scheme matches.
//!
//! Installed means: `rustc` on PATH (a rustup proxy or a distribution's rustc), every
//! toolchain under `$RUSTUP_HOME/toolchains` (default `~/.rustup`), and the config's
//! `extra-rustc`. Each is run with `-vV` from `/` (so no `rust-toolchain.toml` applies), with
//! rustup's auto-install off, under a timeout.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long one `rustc -vV` may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default, Serialize)]
pub struct Toolchains {
    /// Fingerprint `rustc` values (both hash schemes) of every installed rustc.
    #[serde(skip)]
    pub hashes: BTreeSet<u64>,
    /// `rustc 1.95.0 (59807616e 2026-04-14)` lines, one per distinct compiler found.
    pub found: Vec<String>,
    /// rustc binaries that could not be asked.
    pub errors: Vec<String>,
}

impl Toolchains {
    #[must_use]
    pub fn is_installed(&self, rustc_hash: u64) -> bool {
        self.hashes.contains(&rustc_hash)
    }

    /// Records one `rustc -vV` output.
    pub fn add_verbose_version(&mut self, vv: &str) {
        for h in hashes_of(vv) {
            self.hashes.insert(h);
        }
        let first = vv.lines().next().unwrap_or("").to_string();
        if !self.found.contains(&first) {
            self.found.push(first);
        }
    }
}

/// The two values cargo may have stored for a compiler with this `rustc -vV` output.
#[must_use]
pub fn hashes_of(verbose_version: &str) -> [u64; 2] {
    // cargo >= 1.85: `util::hash_u64(&verbose_version)` with StableSipHasher128.
    let mut stable = rustc_stable_hash::StableSipHasher128::new();
    verbose_version.hash(&mut stable);
    // cargo < 1.85: the same with std's SipHasher 2-4 and zero keys.
    #[allow(deprecated)]
    let mut legacy = std::hash::SipHasher::new_with_keys(0, 0);
    verbose_version.hash(&mut legacy);
    [Hasher::finish(&stable), legacy.finish()]
}

/// Finds the installed compilers.
#[must_use]
pub fn discover(extra: &[PathBuf]) -> Toolchains {
    let mut binaries: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join("rustc"))
            .find(|p| p.is_file())
        {
            binaries.push(p);
        }
    }
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    if let Some(home) = rustup_home {
        if let Ok(entries) = std::fs::read_dir(home.join("toolchains")) {
            let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            dirs.sort();
            binaries.extend(
                dirs.into_iter()
                    .map(|d| d.join("bin/rustc"))
                    .filter(|p| p.is_file()),
            );
        }
    }
    binaries.extend(extra.iter().cloned());

    let mut t = Toolchains::default();
    for b in binaries {
        match verbose_version(&b) {
            Ok(vv) => t.add_verbose_version(&vv),
            Err(e) => t.errors.push(format!("{}: {e}", b.display())),
        }
    }
    t
}

/// Runs `rustc -vV`.
pub fn verbose_version(rustc: &Path) -> Result<String, String> {
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

    /// Checked on this machine: cargo 1.95 stored `"rustc":7458672600737419911` for this
    /// compiler's `rustc -vV` output.
    #[test]
    fn matches_what_cargo_stores() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\ncommit-hash: 59807616e1fa2540724bfbac14d7976d7e4a3860\ncommit-date: 2026-04-14\nhost: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        let [stable, legacy] = hashes_of(vv);
        assert_eq!(stable, 7_458_672_600_737_419_911);
        assert_ne!(legacy, stable);
        let mut t = Toolchains::default();
        t.add_verbose_version(vv);
        assert!(t.is_installed(stable) && t.is_installed(legacy));
        assert_eq!(t.found, vec!["rustc 1.95.0 (59807616e 2026-04-14)"]);
    }

    #[test]
    fn finds_the_rustc_on_this_machine() {
        let t = discover(&[]);
        assert!(!t.found.is_empty(), "errors: {:?}", t.errors);
    }
}
