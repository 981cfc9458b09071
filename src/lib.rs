//! cachekeeper keeps cargo target dirs and Docker's BuildKit cache within budgets by removing
//! what builds no longer use, whole units at a time, never what a build holds.
//!
//! One way through the code, shown by the folder tree (see ARCHITECTURE.md):
//! [`measure`] (a [`model::Snapshot`] of the world, through [`os`] and [`docker`]) →
//! [`decide`] (pure: snapshot + last uses + config + now → plans) → [`act`] (carry the plans
//! out, or dry-run them on the same path) → [`report`] (views, text, JSON). [`run`] is that
//! flow once; [`cli`], [`daemon`] and [`guard`] drive it. [`config`], [`model`] and [`units`]
//! are the vocabulary below everything.

pub mod act;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decide;
pub mod docker;
pub mod doctor;
pub mod guard;
pub mod measure;
pub mod metrics;
pub mod model;
pub mod os;
pub mod pathcodec;
pub mod progress;
pub mod protocol;
pub mod readfile;
pub mod report;
pub mod run;
pub mod units;
