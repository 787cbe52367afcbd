//! The run: what one deployment under test is called, what it recorded, and where the host keeps
//! it while it lives.
//!
//! - [`naming`]: the validated names (run id, recipe, stack, domain) everything else is built from;
//! - [`state`]: the run-state schema the binaries pass along the pipe (`state.json`);
//! - [`registry`]: the host's record of every run (`$CCCI_STATE_DIR`): entries, leases and claims.
//!
//! This floor uses the kit only (error, time, config), and names the types of the floors above
//! that a run-state records.

pub mod naming;
pub mod registry;
pub mod state;
