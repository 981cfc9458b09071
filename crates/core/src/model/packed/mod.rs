//! A target dir packed into one buffer: how the daemon's index holds what it measured between
//! refreshes.
//!
//! A [`TargetDir`] as a walk builds it is made to be worked on: every unit a struct of 520
//! bytes with a dozen allocations of its own (paths, names, lists). At 10,000 units that is
//! 20 MB of heap, held all day for the moment a refresh needs it. Packed, the same dir is one
//! allocation of a few hundred bytes per unit: numbers as LEB128 varints, hashes as 8 bytes,
//! each path front-coded against the one packed before it (a unit's paths share their profile
//! dir and most of their names), a unit's fingerprint dir and build-script run dir named by
//! which of its paths they are, an incremental dir's crate name left to be read from its name.
//!
//! Unpacking gives back a `TargetDir` equal to the one packed, field for field. The packer
//! takes every struct apart by name, so a field added to the model and not packed here does
//! not compile. Unpacking never panics: a buffer that does not read as a whole target dir
//! gives `None` (the daemon then walks that dir again).

use std::path::{Path, PathBuf};

use super::TargetDir;

mod read;
mod write;

/// A target dir packed; its path (not in the buffer) and unit counts kept beside the buffer for
/// the index to read.
#[derive(Clone, Debug)]
pub struct Packed {
    path: PathBuf,
    units: usize,
    kept_units: usize,
    bytes: Box<[u8]>,
}

impl Packed {
    #[must_use]
    pub fn pack(t: &TargetDir) -> Packed {
        let mut out = write::Out::default();
        out.target(t);
        Packed {
            path: t.path.clone(),
            units: t.units.len(),
            kept_units: t.kept_units,
            bytes: out.buf.into_boxed_slice(),
        }
    }

    /// The target dir as it was packed; `None` if the buffer does not read as one (a bug).
    #[must_use]
    pub fn unpack(&self) -> Option<TargetDir> {
        let mut r = read::In {
            buf: &self.bytes,
            prev: Vec::new(),
        };
        let t = r.target(self.path.clone())?;
        r.buf.is_empty().then_some(t)
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    #[must_use]
    pub fn units(&self) -> usize {
        self.units
    }

    /// Units its walk took from the walk before ([`TargetDir::kept_units`]).
    #[must_use]
    pub fn kept_units(&self) -> usize {
        self.kept_units
    }
}

/// Where a unit's fingerprint dir is among its paths.
pub(super) const FP_FIRST: u64 = 0;
pub(super) const FP_IN_FIRST: u64 = 1;
pub(super) const FP_OWN: u64 = 2;
/// Where a build-script run's dir is: none, its own path, or one of the unit's paths (its
/// index + `RUN_IN_PATHS`).
pub(super) const RUN_NONE: u64 = 0;
pub(super) const RUN_OWN: u64 = 1;
pub(super) const RUN_IN_PATHS: usize = 2;
/// A time after the epoch, before it, or none.
pub(super) const AFTER: u64 = 0;
pub(super) const BEFORE: u64 = 1;
pub(super) const NONE: u64 = 2;
/// What a shared inode's owner is, before its index.
pub(super) const PART_UNIT: u64 = 0;
pub(super) const PART_INCREMENTAL: u64 = 1;
pub(super) const PART_ORPHAN: u64 = 2;

#[cfg(test)]
mod tests;
