//! The data everything else passes around: what was measured (target dirs, the BuildKit cache,
//! filesystems), what was decided (plans), what was done (outcomes), and what the daemon keeps
//! (last uses, run records).
//!
//! Invariant: plain data and pure functions of it. Nothing here does I/O, reads a clock or
//! holds a live handle (no engine client, no runtime, no fd): a snapshot can be kept, cloned,
//! sent and dropped anywhere. It imports only `config`, `units` and `pathcodec`.

pub mod buildkit;
pub mod cost;
pub mod current;
pub mod history;
pub mod names;
pub mod outcome;
pub mod packed;
pub mod plan;
pub mod rebuild;
pub mod schedule;
pub mod snapshot;
pub mod target;
pub mod toolchains;
pub mod uses;

pub use buildkit::*;
pub(crate) use cost::*;
pub use current::{Slot, latest_builds};
pub use history::*;
pub use outcome::*;
pub use packed::Packed;
pub use plan::*;
pub(crate) use rebuild::UnitKind;
pub use schedule::Rebuild;
pub use snapshot::*;
pub use target::*;
pub use toolchains::*;
pub use uses::*;
