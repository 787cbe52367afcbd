//! The checks: what ccci asks of a deployed recipe, and how it asks.
//!
//! - [`exec`]: running one check (or install-steps hook) in a process group of its own;
//! - [`run`]: running a set of them for an op: the environment they are told, the trust gate,
//!   the combined outcome (ccci-assert, and the checks of deploy, backup and restore);
//! - [`install_steps`]: the install-steps hooks of ccci-deploy, run before its one deploy;
//! - [`discovery`]: where checks and hooks come from (the generic floor, cc-ci's overlays, the
//!   recipe's own `tests/<op>/`), and an overlay's per-recipe settings;
//! - [`generic`]: what is checked on every deployment with no configuration;
//! - [`serving`]: "is it serving?", asked the way traefik reaches the app;
//! - [`traefik`]: what a service's traefik labels say about how a visitor reaches it;
//! - [`frontdoor`]: the operator's proxy, asked the way a visitor's browser asks it;
//! - [`backup`]: what backup, restore and their asserts share: the contract as the swarm has it,
//!   the hooks and abra's backup verbs recorded as assertions, the canaries and the evidence.
//!
//! This floor uses the kit, the run, the recipe and the swarm floors; it knows nothing of ops.

pub mod backup;
pub mod discovery;
pub mod exec;
pub mod frontdoor;
pub mod generic;
pub mod install_steps;
pub mod run;
pub mod serving;
pub mod traefik;
