//! Carrying plans out, or dry-running them on the same path: the sweep of target dirs under
//! cargo's locks, the removal of one tree, the pruning of BuildKit records.
//!
//! Invariant: act does what a plan says and re-checks what may have changed since (a lock, a
//! use, a swapped dir); it never decides anything new, and never reaches `decide`.

pub mod prune;
pub mod remove;
pub mod sweep;
