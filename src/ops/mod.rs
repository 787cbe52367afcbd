//! The lifecycle ops, one module each; each binary calls one of them.

pub mod assert;
pub mod deploy;
pub mod install_steps;
pub mod teardown;
pub mod upgrade;

use crate::error::{Error, Kind};
use crate::state::Outcome;

/// How an op's error lands in the run-state: the recipe failing is `fail`, anything else
/// (docker, git, abra, disk, a broken input discovered late) is `error`.
pub fn outcome_of(e: &Error) -> Outcome {
    match e.kind() {
        Kind::OpFailed => Outcome::Fail,
        Kind::BadInput | Kind::Environment => Outcome::Error,
    }
}
