//! `ccci-bridge`: `!testme` on a pull request in the forge (Gitea or Forgejo) → one Drone build
//! bound to that commit → the results back on the pull request. See docs/bridge.md.
//!
//! [`core`] decides (pure); the rest talks to the forge and Drone and keeps the state file.
//!
//! This floor uses the kit, reads the run-states a build leaves ([`crate::run::state`]) and renders
//! them with [`crate::report`]; it runs no op and touches no swarm: the Drone build does.

pub mod core;
pub mod http;
pub mod publish;
pub mod store;
pub mod tick;
