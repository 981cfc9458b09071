//! Installed toolchains as cargo's fingerprints name them: the hash of each compiler's
//! `rustc -vV` output, under both of cargo's hash schemes (SipHasher 0,0 before cargo 1.85,
//! StableSipHasher128 since). Pure: finding the compilers is `measure::toolchain`'s job.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
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
    pub(crate) fn is_installed(&self, rustc_hash: u64) -> bool {
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
pub(crate) fn hashes_of(verbose_version: &str) -> [u64; 2] {
    // cargo >= 1.85: `util::hash_u64(&verbose_version)` with StableSipHasher128.
    let mut stable = rustc_stable_hash::StableSipHasher128::new();
    verbose_version.hash(&mut stable);
    // cargo < 1.85: the same with std's SipHasher 2-4 and zero keys.
    #[allow(deprecated)]
    let mut legacy = std::hash::SipHasher::new_with_keys(0, 0);
    verbose_version.hash(&mut legacy);
    [Hasher::finish(&stable), legacy.finish()]
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
}
