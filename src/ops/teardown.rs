//! `ccci-teardown`: remove everything the run created, verify nothing is left, forget the run.
//! Safe to run twice, and from the registry entry alone.

use std::time::Duration;

use xshell::Shell;

use crate::error::Result;
use crate::progress::Progress;
use crate::run::registry::Registry;
use crate::run::state::{OpName, OpTimer, Outcome, RunState};
use crate::swarm::remove;

pub const HOLDER: &str = "ccci-teardown";

/// Tears the run down and records the `teardown` op; returns its outcome. With `keep` (the
/// keep-on-failure time), a run with a failed or errored op stays deployed that long instead.
pub fn run(
    state: &mut RunState,
    registry: &Registry,
    sh: &Shell,
    progress: &Progress,
    keep: Option<Duration>,
) -> Outcome {
    let timer = OpTimer::start(OpName::Teardown);
    if let Some(ttl) = keep
        && let Some(failed) = state.ops.iter().find(|o| matches!(o.result, Outcome::Fail | Outcome::Error))
    {
        let until = crate::time::unix_now().saturating_add(ttl.as_secs());
        let detail = format!(
            "kept for debugging until {} because {} {} ({}); the janitor reaps it then",
            crate::time::rfc3339(until),
            failed.op,
            failed.result.as_str(),
            crate::config::KEEP_ON_FAILURE.name
        );
        if let Err(e) = registry.set_expiry(&state.run_id, until, HOLDER) {
            state.push_op(timer.finish(Outcome::Error, format!("could not extend the lease: {e}"), vec![]));
            return Outcome::Error;
        }
        progress.log(&detail);
        state.push_op(timer.finish(Outcome::Skip, detail, vec![]));
        return Outcome::Skip;
    }
    let (outcome, detail) = match remove::remove_deployment(state, sh, progress) {
        Ok(r) if r.left.is_empty() => {
            let mut detail = "nothing of the run is left".to_string();
            for s in &r.slow {
                detail.push_str(&format!("; {s}"));
            }
            (Outcome::Pass, detail)
        }
        Ok(r) => {
            let detail = format!("left on the swarm: {}", r.left.join(", "));
            progress.log(&detail);
            (Outcome::Fail, detail)
        }
        Err(e) => {
            progress.log(format!("teardown error: {e}"));
            (Outcome::of(&e), e.to_string())
        }
    };
    state.push_op(timer.finish(outcome, detail, vec![]));
    if outcome == Outcome::Pass
        && let Err(e) = forget(state, registry)
    {
        progress.log(format!("could not remove the run's files: {e}"));
        let last = state.ops.last_mut().expect("just pushed");
        last.result = Outcome::Error;
        last.detail = e.to_string();
        return Outcome::Error;
    }
    outcome
}

/// Removes the run's files and its registry entry. Every caller acts on a state checked against
/// this installation first (`RunState::check_installation`): the workspace is the registry's,
/// the env file inside it.
fn forget(state: &RunState, registry: &Registry) -> Result<()> {
    let expected = registry.workspace(&state.run_id);
    if let Some(env) = &state.env_file {
        remove_if_present(env)?;
    }
    match fs_err::remove_dir_all(&expected) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    registry.remove(&state.run_id)
}

fn remove_if_present(p: &std::path::Path) -> Result<()> {
    match fs_err::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
