//! The lifecycle ops, one module each; each binary calls one of them, through the one stage frame
//! ([`stage`]) that lives here.
//!
//! An op may use every floor below it (the kit, the run, the recipe, the swarm, the checks). No op
//! module uses another: the janitor's reap and `ccci-teardown` share the swarm floor's
//! [`crate::swarm::remove::tear_down`].

pub mod assert;
pub mod backup;
pub mod deploy;
pub mod janitor;
pub mod restore;
pub mod teardown;
pub mod upgrade;

pub use crate::run::state::OpName;

use xshell::Shell;

use crate::error::Error;
use crate::progress::Progress;
use crate::run::naming::RunId;
use crate::run::registry::Registry;
use crate::run::state::{Outcome, RunState, StateIo};

/// Where a stage's run comes from, and where its run-state goes afterwards.
pub enum Run<'a> {
    /// The pipe or `--state FILE` (every stage after deploy): read and checked to be this
    /// installation's before the registry is opened (which creates `$CCCI_STATE_DIR`: bad input
    /// changes nothing), and written back.
    Piped(&'a StateIo),
    /// A run that does not exist yet (deploy): registered in `registry` before the op, written to
    /// the `StateIo`.
    New(Box<RunState>, Registry, &'a StateIo),
    /// A registered run, from its registry entry alone (`ccci-teardown --run`): checked to be
    /// this installation's; its state is not written anywhere but the registry.
    Registered(&'a RunId),
}

/// The one frame of every stage: it reads the run ([`Run`]), keeps the run's lease alive while
/// `op` works and records its op, saves the run-state in the registry as soon as the op is done
/// (renewing the lease), and, for a state that is passed on, captures diagnostics if the op
/// failed, writes the state out and saves it again. Ops do none of that themselves: they record
/// their op and return its outcome (deploy, the one long op that creates things, also saves its
/// progress as it goes, so that a deploy killed halfway is reaped by what it had done). Returns
/// the exit code for that outcome; an environment error (exit 3) when the registry could not be
/// saved, after the state was written out all the same.
pub fn stage(
    run: Run<'_>,
    holder: &'static str,
    progress: &Progress,
    op: impl FnOnce(&mut RunState, &Registry, &Shell) -> Outcome,
) -> crate::Result<i32> {
    let (mut state, registry, out) = match run {
        Run::Piped(io) => {
            let state = io.read_own()?;
            refuse_torn_down(&state, holder)?;
            progress.set_run(state.run_id.as_str());
            refuse_unregistered(&state, holder)?;
            (state, Registry::open()?, Some(io))
        }
        Run::New(state, registry, io) => {
            registry.register(&state, holder)?;
            (*state, registry, Some(io))
        }
        Run::Registered(id) => {
            progress.set_run(id.as_str());
            let registry = Registry::open()?;
            let suffix = crate::run::naming::domain_suffix_from_env()?;
            let state = match registry.load(id)? {
                Some(entry) => {
                    // An entry is input like a state file: it must belong to this installation.
                    entry.run.check_installation(&suffix, registry.root())?;
                    entry.run
                }
                // No entry (a deploy killed before it registered, an entry removed by hand):
                // what the run left is found by its names, as the janitor finds an orphan, and
                // teardown passes only when nothing of it is left.
                None => {
                    progress.log("not registered: removing whatever the swarm holds under its names");
                    RunState::orphan(id, &suffix, registry.workspace(id))?
                }
            };
            (state, registry, None)
        }
    };
    let sh = Shell::new()?;
    let _alive = registry.heartbeat(&state.run_id, holder);
    let outcome = op(&mut state, &registry, &sh);
    // What the op recorded reaches the registry before anything else can fail or take long.
    let _ = registry.save(&state, holder);
    let Some(io) = out else { return Ok(outcome.exit_code()) };
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

/// A piped run-state whose run has no registry entry was torn down or reaped since (or never
/// deployed with this state directory): no stage but teardown (idempotent, it sweeps by name)
/// may act on it, and none may bring it back into the registry. Asked before the registry is
/// opened, so that the refusal creates nothing; a registry the file system cannot answer for is
/// not proof that the run is gone (the op goes on, and the frame's save reports the fault).
fn refuse_unregistered(state: &RunState, holder: &str) -> crate::Result<()> {
    if holder == teardown::HOLDER {
        return Ok(());
    }
    let root = crate::config::state_dir()?;
    if Registry::has_entry_at(&root, &state.run_id) != Some(false) {
        return Ok(());
    }
    Err(Error::bad_input(format!(
        "run {} is not registered in {}: it was torn down or reaped (or deployed with another \
         state directory); there is no deployment to act on; start a new run with ccci-deploy",
        state.run_id,
        root.display()
    )))
}

/// Teardown may run again (it is idempotent); no other stage may act on a run that is gone, and
/// none may record on it: that would bring a forgotten run back into the registry.
fn refuse_torn_down(state: &RunState, holder: &str) -> crate::Result<()> {
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
    Ok(())
}
