//! ccci: deploy a Co-op Cloud recipe once on a real Docker Swarm and run lifecycle tiers on it.
//!
//! The binaries under `bins/` are thin: they parse arguments, read the run-state, call one
//! function of this library and write the run-state back. Everything else lives here, in floors,
//! from the ground up: each floor uses only the floors listed before it.

// The kit: errors, clocks, progress lines, child processes, argument parsing, settings.
pub mod cli;
pub mod config;
pub mod error;
pub mod process;
pub mod progress;
pub mod time;
pub mod words;
// The run: its names, its run-state and the host's registry of runs.
pub mod run;
// The recipe: reading, fetching and trusting it, without running it.
pub mod recipe;
// The swarm: deploying, converging, removing, and what the host's tools say.
pub mod swarm;
// The checks: what is asked of a deployment, and how.
pub mod checks;
// The ops: one lifecycle op each, the binaries' entry points.
pub mod ops;
// The reports: a run-state as text, JUnit and Markdown.
pub mod report;
// The bridge: a CI platform's events in, runs and their reports out.
pub mod bridge;

pub use error::{Context, Error, Kind, Result};

#[cfg(test)]
mod tidy;
