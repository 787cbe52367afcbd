//! The recipe: reading it without running it, fetching it, and judging whether its own code may
//! run.
//!
//! Reading is pure parsing. The rules follow the tools an operator's deploy goes through — a shell
//! `source` for env files, docker's compose loader (which abra uses) for compose files — because
//! the harness has to predict what a deploy will put on the swarm (object names, labels, ports,
//! backup capability) before it runs one, and has to tear down exactly that afterwards.
//!
//! - [`interpolate`]: variable substitution, docker's for compose files and a shell's for env
//!   files;
//! - [`env_file`]: env files (`.env.sample`, an app's `.env`) and the compose files they name;
//! - [`compose`]: compose files read, interpolated and merged, and the swarm objects they name;
//! - [`release`]: release tags and their order;
//! - [`load`]: the recipe as a deploy reads it (its `.env.sample`, `abra.sh` and compose files
//!   with the run's variables);
//! - [`backup`]: the backupbot label contract;
//! - [`secrets`]: the app's own secrets and their generation hints;
//! - [`checkout`]: reading files inside a checkout without leaving it;
//! - [`source`]: what `--recipe` names, and the repository identity the allowlist approves;
//! - [`git`]: the recipe's repository: clone, check out, tags, the NAR hash of the code;
//! - [`trust`]: the trust gate, which repositories may run their own code on this host.
//!
//! This floor uses the kit and the run floor; it knows nothing of the swarm, checks or ops.

pub mod backup;
pub mod checkout;
pub mod compose;
pub mod env_file;
pub mod git;
pub mod interpolate;
pub mod load;
pub mod release;
pub mod secrets;
pub mod source;
pub mod trust;
