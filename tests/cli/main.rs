//! End-to-end tests: real crates built with the real cargo in temp dirs, the real
//! cachekeeper binary run on them, and the disk checked afterwards.

mod engine;
mod running;
mod suite;
mod support;

mod budget;
mod buildkit;
mod churn;
mod cli;
mod container;
mod conventions;
mod daemon;
mod deploy;
mod doctor;
mod estimate;
mod guard;
mod hostile;
mod hosts;
mod index;
mod install;
mod layout;
mod metrics;
mod safety;
mod terminal;
mod tidy;
mod toolchain;
mod uses;
