//! The world as cachekeeper touches it, beneath the drivers: [`readfile`] (files we did not
//! write, read safely), [`os`] (fd-relative walks and removals, cargo's locks, disks, this
//! process), [`docker`] (the engine's API), [`measure`] (the world into a
//! [`cachekeeper_core::model::Snapshot`]), [`act`] (plans carried out, or dry-run on the same
//! path), [`configfile`] (where the config is and reading it) and [`progress`] (the progress
//! line). It knows the model of `cachekeeper-core` and never the drivers above it.

pub mod act;
pub mod configfile;
pub mod docker;
pub mod measure;
pub mod os;
pub mod progress;
pub mod readfile;
