//! cachekeeper's vocabulary and its pure decisions: what a target dir, a unit, a BuildKit
//! record, a plan and a run are ([`model`]), what the user asked ([`config`], its values and
//! their parsers), and what to remove ([`decide`]: measurements + last uses + config + now →
//! plans). Below them, [`units`] (sizes, durations, times) and [`pathcodec`] (paths in JSON).
//!
//! Nothing here does I/O or reads a clock: this crate depends on no runtime, no OS binding and
//! no engine client, so a decision can be tested from plain values and an import of the world
//! does not compile.

pub mod config;
pub mod decide;
pub mod model;
pub mod pathcodec;
pub mod units;
