//! cachekeeper keeps cargo target dirs and Docker's BuildKit cache within budgets by removing
//! what builds no longer use, whole units at a time, never what a build holds.
//!
//! The drivers live here, over two crates (see ARCHITECTURE.md): `cachekeeper-core` (the
//! vocabulary and the pure decisions: snapshot + last uses + config + now → plans) and
//! `cachekeeper-sys` (the OS and the engine: measure into a snapshot, act on a plan). [`run`]
//! is the flow once; [`cli`], [`daemon`] and [`guard`] drive it; [`report`] turns what was
//! measured, planned and done into views, text and JSON; [`metrics`] into Prometheus families.

mod cli;
mod daemon;
mod doctor;
mod guard;
mod metrics;
mod protocol;
mod report;
mod run;

fn main() -> std::process::ExitCode {
    cli::main()
}
