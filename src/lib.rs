//! ccci: deploy a Co-op Cloud recipe once on a real Docker Swarm and run lifecycle tiers on it.
//!
//! The binaries under `bins/` are thin: they parse arguments, read the run-state, call one
//! function of this library and write the run-state back. Everything else lives here, one module
//! per concept.

pub mod bridge;
pub mod cli;
pub mod config;
pub mod error;
pub mod frontdoor;
pub mod recipe;
pub mod report;
pub mod serving;
pub mod traefik;

pub use error::{Context, Error, Kind, Result};
pub mod ops;
pub mod process;
pub mod progress;
pub mod time;

pub mod check;
pub mod discovery;
pub mod generic;
pub mod run;
pub mod swarm;
pub mod trust;
pub mod words;

#[cfg(test)]
mod tidy;
