//! `ccci-teardown`: remove everything the run created, verify nothing is left, forget the run.
//! Safe to run twice, and from the registry entry alone.

use std::time::{Duration, Instant};

use xshell::Shell;

use crate::docker::{self, ObjectKind};
use crate::driver;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::registry::Registry;
use crate::state::{OpTimer, Outcome, RunState};

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
    let timer = OpTimer::start("teardown");
    let _ = registry.renew(&state.run_id, HOLDER);
    if let Some(ttl) = keep
        && let Some(failed) = state.ops.iter().find(|o| matches!(o.result, Outcome::Fail | Outcome::Error))
    {
        let until = crate::time::unix_now().saturating_add(ttl.as_secs());
        let detail = format!(
            "kept for debugging until {} because {} {} (CCCI_KEEP_ON_FAILURE); the janitor reaps it then",
            crate::time::rfc3339(until),
            failed.op,
            failed.result.as_str()
        );
        let _ = registry.save(state, HOLDER);
        if let Err(e) = registry.set_expiry(&state.run_id, until, HOLDER) {
            state.push_op(timer.finish(Outcome::Error, format!("could not extend the lease: {e}"), vec![]));
            return Outcome::Error;
        }
        progress.log(&detail);
        state.push_op(timer.finish(Outcome::Skip, detail, vec![]));
        return Outcome::Skip;
    }
    let (outcome, detail) = match remove_deployment(state, sh, progress) {
        Ok(left) if left.is_empty() => (Outcome::Pass, "nothing of the run is left".to_string()),
        Ok(left) => {
            let detail = format!("left on the swarm: {}", left.join(", "));
            progress.log(&detail);
            (Outcome::Fail, detail)
        }
        Err(e) => {
            progress.log(format!("teardown error: {e}"));
            (super::outcome_of(&e), e.to_string())
        }
    };
    state.push_op(timer.finish(outcome, detail, vec![]));
    if outcome == Outcome::Pass {
        if let Err(e) = forget(state, registry) {
            progress.log(format!("could not remove the run's files: {e}"));
            let last = state.ops.last_mut().expect("just pushed");
            last.result = Outcome::Error;
            last.detail = e.to_string();
            return Outcome::Error;
        }
    } else {
        let _ = registry.save(state, HOLDER);
    }
    outcome
}

/// Removes the run from the swarm; returns what is still there afterwards. Also what a deploy
/// uses to remove a base release that did not deploy, before it deploys the head.
pub fn remove_deployment(state: &RunState, sh: &Shell, progress: &Progress) -> Result<Vec<String>> {
    let timeout = crate::config::teardown_timeout()?;
    let driver = driver::for_run(state.driver, &state.workspace, &state.recipe)?;
    let stack = &state.stack;

    if let Err(e) = driver.undeploy(sh, state, progress) {
        progress.log(format!("undeploy said: {e}; removing the services directly"));
    }
    // Whatever the driver did, no service of the stack may survive.
    for name in docker::objects(sh, ObjectKind::Service, stack)? {
        docker::remove(sh, ObjectKind::Service, &name)?;
    }
    // Nor a serving probe whose client was killed before the probe ended.
    let probes = docker::remove_probes(sh, stack)?;
    if probes > 0 {
        progress.log(format!("removed {probes} probe containers"));
    }
    wait_gone(sh, state, timeout, progress)?;

    if let Err(e) = driver.remove_app_data(sh, state, progress) {
        progress.log(format!("{e}; sweeping directly"));
    }
    sweep(sh, state, Duration::from_secs(60), progress)
}

/// Polls until no service, task or container of the stack remains: volumes cannot be removed
/// while any container, even a stopped one, still references them.
fn wait_gone(sh: &Shell, state: &RunState, timeout: Duration, progress: &Progress) -> Result<()> {
    let start = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let services = docker::objects(sh, ObjectKind::Service, &state.stack)?;
        let containers = docker::containers(sh, &state.stack)?;
        if services.is_empty() && containers.is_empty() {
            progress.log("no service or container of the stack is left");
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Error::failed(format!(
                "after {}s the stack still has {} services and {} containers",
                timeout.as_secs(),
                services.len(),
                containers.len()
            )));
        }
        if last_log.elapsed() > Duration::from_secs(10) {
            progress.log(format!("waiting for {} containers to go", containers.len()));
            last_log = Instant::now();
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Removes secrets, configs, networks and volumes found by label or name prefix until nothing
/// of the stack is left or `timeout` passes; returns what is left. Docker reports networks and
/// volumes in use for a while after the last container went, so it retries.
fn sweep(sh: &Shell, state: &RunState, timeout: Duration, progress: &Progress) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        for kind in
            [ObjectKind::Service, ObjectKind::Secret, ObjectKind::Config, ObjectKind::Network, ObjectKind::Volume]
        {
            for name in docker::objects(sh, kind, &state.stack)? {
                match docker::remove(sh, kind, &name) {
                    Ok(()) => progress.log(format!("removed {} {name}", kind.as_str())),
                    Err(e) if start.elapsed() > timeout => progress.log(e),
                    Err(_) => {}
                }
            }
        }
        let left = leftovers(sh, state)?;
        if left.is_empty() || start.elapsed() > timeout {
            return Ok(left);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Everything of the stack still on this node, as `kind name`.
pub fn leftovers(sh: &Shell, state: &RunState) -> Result<Vec<String>> {
    let mut left = vec![];
    for kind in ObjectKind::ALL {
        left.extend(docker::objects(sh, kind, &state.stack)?.into_iter().map(|n| format!("{} {n}", kind.as_str())));
    }
    left.extend(
        docker::containers(sh, &state.stack)?.into_iter().map(|c| format!("container {}", &c[..12.min(c.len())])),
    );
    Ok(left)
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
