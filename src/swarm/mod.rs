//! The swarm: putting a recipe on Docker Swarm and taking it off again, through the host's own
//! tools.
//!
//! - [`docker`]: the `docker` CLI (stacks, services, tasks, volumes, secrets), one child-process
//!   policy;
//! - [`converge`]: waiting for a deployment to converge, and telling a stuck one from a slow one;
//! - [`abra`]: the `abra` CLI, for the abra driver;
//! - [`driver`]: the two ways a run deploys (`docker stack deploy` or `abra`), behind one trait;
//! - [`hostaccess`]: what a recipe's compose files may ask of the host;
//! - [`preflight`]: what the operator must provide before a recipe can deploy;
//! - [`prepare`]: preparing a deployed app for the head before the in-place upgrade;
//! - [`remove`]: removing a run's deployment and saying what is left;
//! - [`diagnostics`]: what the swarm said when an op failed;
//! - [`restic`]: the host's `restic`, the stack driver's backup engine and evidence reader;
//! - [`volume`]: files inside a run's volumes, reached through a probe container.
//!
//! This floor uses the kit, the run and the recipe floors; it knows nothing of checks or ops.

pub mod abra;
pub mod converge;
pub mod diagnostics;
pub mod docker;
pub mod driver;
pub mod hostaccess;
pub mod preflight;
pub mod prepare;
pub mod remove;
pub mod restic;
pub mod volume;
