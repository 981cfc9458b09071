//! cachekeeper: keeps cargo target dirs (and, later, the BuildKit cache) within budgets by
//! removing what builds no longer use, with cargo-clean semantics.
//!
//! The crate is laid out the way a run flows:
//! [`config`] → [`discover`] (find target dirs) → [`inventory`] (measure and understand them,
//! through [`walk`] and [`safefs`]) → [`policy`] (pure: measurements + budgets + now → plan)
//! → [`sweep`] (carry the plan out, or dry-run it, under cargo's locks) → [`report`].

pub mod buildkit;
pub mod cargo_lock;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod discover;
pub mod disk;
pub mod guard;
pub mod inventory;
pub mod job;
pub mod lastuse;
pub mod pathcodec;
pub mod policy;
pub mod progress;
pub mod remove;
pub mod report;
pub mod safefs;
pub mod survey;
pub mod sweep;
pub mod toolchain;
pub mod units;
pub mod walk;
