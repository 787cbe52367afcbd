//! `ccci-bridge`: `!testme` on a pull request in the forge (Gitea or Forgejo) → one Drone build
//! bound to that commit → the results back on the pull request. See docs/bridge.md.
//!
//! [`core`] decides (pure); the rest talks to the forge and Drone and keeps the state file.

pub mod core;
pub mod http;
pub mod publish;
pub mod store;
pub mod tick;
