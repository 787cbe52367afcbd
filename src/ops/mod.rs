//! The lifecycle ops, one module each; each binary calls one of them.

pub mod assert;
pub mod backup;
pub mod deploy;
pub mod install_steps;
pub mod janitor;
pub mod prepare;
pub mod restore;
pub mod teardown;
pub mod upgrade;

pub use crate::run::state::OpName;

use crate::error::{Error, Kind};
use crate::run::state::Outcome;

/// How an op's error lands in the run-state: the recipe failing is `fail`, anything else
/// (docker, git, abra, disk, a broken input discovered late) is `error`.
pub fn outcome_of(e: &Error) -> Outcome {
    match e.kind() {
        Kind::OpFailed => Outcome::Fail,
        Kind::BadInput | Kind::Environment => Outcome::Error,
    }
}

/// One stage of the pipe on an existing run: reads the run-state, keeps the run's lease alive
/// while `op` works, captures diagnostics if the op it recorded failed, stores the state in the
/// registry and writes it out. Returns the exit code for the op's outcome; an environment error
/// (exit 3) when the registry could not be saved, after the state was written out all the same.
pub fn stage(
    io: &crate::run::state::StateIo,
    holder: &'static str,
    progress: &crate::progress::Progress,
    op: impl FnOnce(&mut crate::run::state::RunState, &crate::run::registry::Registry, &xshell::Shell) -> Outcome,
) -> crate::Result<i32> {
    // Checked before the registry is opened (which creates $CCCI_STATE_DIR): bad input changes
    // nothing.
    let mut state = io.read_own()?;
    // Teardown may run again (it is idempotent); no other stage may act on a run that is gone, and
    // none may record on it: that would bring a forgotten run back into the registry.
    if holder != teardown::HOLDER
        && let Some(t) = state.ops.iter().rev().find(|o| o.op == OpName::Teardown && o.result != Outcome::Skip)
    {
        return Err(Error::bad_input(format!(
            "run {} was torn down at {} (teardown {}): there is no deployment to act on; start a new run with ccci-deploy",
            state.run_id,
            t.started_at,
            t.result.as_str()
        )));
    }
    progress.set_run(state.run_id.as_str());
    let registry = crate::run::registry::Registry::open()?;
    let sh = xshell::Shell::new()?;
    let outcome = {
        let _alive = registry.heartbeat(&state.run_id, holder);
        op(&mut state, &registry, &sh)
    };
    if let Some(mut last) = state.ops.pop() {
        crate::swarm::diagnostics::capture_if_failed(&sh, &registry, &state, &mut last);
        state.ops.push(last);
    }
    // The state goes out first: a registry that cannot be written (a full or read-only disk)
    // must not lose what the op recorded. The failed save is then the environment's error.
    io.write(&state)?;
    registry.save(&state, holder).map_err(|e| {
        e.context(format!("the run-state is written, but the registry entry of run {} is not", state.run_id))
    })?;
    Ok(outcome.exit_code())
}
