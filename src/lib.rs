//! ccci: deploy a Co-op Cloud recipe once on a real Docker Swarm and run lifecycle tiers on it.
//!
//! The binaries under `bins/` are thin: they parse arguments, read the run-state, call one
//! function of this library and write the run-state back. Everything else lives here, one module
//! per concept.

pub mod error;
pub mod recipe;

pub use error::{Context, Error, Kind, Result};
