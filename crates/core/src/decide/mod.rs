//! The decision: which parts of target dirs and which BuildKit records go, and why. Pure: it
//! takes a snapshot, what the daemon recorded of last use, the config and `now`, and returns
//! plans.
//!
//! - [`cargo`]: the target-dir rules (incremental, toolchain, superseded, stale, budgets,
//!   min-free); its budgets choose units by expected rebuild cost (`cargo/cost.rs`, the
//!   default) or least recently used;
//! - [`buildkit`]: the BuildKit rules (keep-duration, budget, cache mounts, hard limit);
//! - [`lru`]: least recently used first, for BuildKit's budgets and `eviction = "lru"`;
//! - [`guard`]: the CI guard's phases, cheapest to rebuild first, from one snapshot.
//!
//! Invariant: no I/O and no clock (no `std::fs`, `os`, `docker`, `tokio`, no `SystemTime::now`):
//! everything it knows comes in as arguments, so every decision can be tested with hand-built
//! inputs. It imports only `model`, `config` and `units`.

pub mod buildkit;
pub mod cargo;
pub mod guard;
pub mod lru;
pub mod reason;
