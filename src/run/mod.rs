//! The run: what one deployment under test is called, what it recorded, and where the host keeps
//! it while it lives.
//!
//! - [`naming`]: the validated names (run id, recipe, stack, domain) everything else is built from;
//! - [`state`]: the run-state schema the binaries pass along the pipe (`state.json`);
//! - [`registry`]: the host's record of every run (`$CCCI_STATE_DIR`): entries, leases and claims.
//!
//! This floor uses the kit only (error, time, config). The run-state records, and so names, three
//! types of the recipe floor: the repository identity ([`crate::recipe::source::Identity`]), the
//! allowlist's approval ([`crate::recipe::trust::Approval`]) and the backup hooks' phase
//! ([`crate::recipe::backup::Phase`]); it reads a recorded identity back with that type's parser.

pub mod naming;
pub mod registry;
pub mod state;
