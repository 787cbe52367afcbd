//! `ccci-teardown`: remove everything the run created, verify nothing is left, forget the run.
//! Safe to run twice, and from the registry entry alone.

use std::time::Duration;

use xshell::Shell;

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
    remove::tear_down(state, registry, sh, progress, timer)
}
