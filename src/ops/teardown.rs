//! `ccci-teardown`: remove everything the run created, verify nothing is left, forget the run.
//! Safe to run twice, and from the registry entry alone.

use std::time::{Duration, Instant};

use xshell::Shell;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::registry::Registry;
use crate::run::state::{OpName, OpTimer, Outcome, RunState};
use crate::swarm::docker::{self, ObjectKind};
use crate::swarm::driver;

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
    let (outcome, detail) = match remove_deployment(state, sh, progress) {
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

/// What [`remove_deployment`] leaves and noticed.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// What is still on the swarm afterwards, as `kind name`.
    pub left: Vec<String>,
    /// Services whose containers took their stop grace period to go ([`slow_stops`]).
    pub slow: Vec<String>,
}

/// Removes the run from the swarm; returns what is still there afterwards. Also what a deploy
/// uses to remove a base release that did not deploy, before it deploys the head.
pub fn remove_deployment(state: &RunState, sh: &Shell, progress: &Progress) -> Result<Removed> {
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
    let slow = wait_gone(sh, state, timeout, progress)?;

    if let Err(e) = driver.remove_app_data(sh, state, progress) {
        progress.log(format!("{e}; sweeping directly"));
    }
    // Networks and volumes in use for a moment after the last container went are waited for;
    // one held by something outside the stack is reported once the teardown timeout (at most a
    // minute) has passed.
    let left = sweep(sh, state, timeout.min(Duration::from_secs(60)), progress)?;
    Ok(Removed { left, slow })
}

/// Looks, whenever docker reports an event of the stack and at least every quarter second, until
/// no service, task or container of the stack remains:
/// volumes cannot be removed while any container, even a stopped one, still references them.
/// When a service's containers took about its stop grace period or longer to go, says so: that
/// time is the app's (it ignores SIGTERM and is killed when the grace period ends), not ccci's.
fn wait_gone(sh: &Shell, state: &RunState, timeout: Duration, progress: &Progress) -> Result<Vec<String>> {
    let start = Instant::now();
    let mut last_log = Instant::now();
    // Per service: when its last container was seen.
    let mut seen: std::collections::BTreeMap<String, Duration> = Default::default();
    // docker's events (a container dying, destroyed) wake the wait; the poll bounds it.
    let events = docker::Events::follow(&state.stack, timeout);
    loop {
        let services = docker::objects(sh, ObjectKind::Service, &state.stack)?;
        let containers = docker::containers_by_service(sh, &state.stack)?;
        for (_, service) in &containers {
            seen.insert(service.clone(), start.elapsed());
        }
        if services.is_empty() && containers.is_empty() {
            progress.log(format!(
                "no service or container of the stack is left after {:.1}s",
                start.elapsed().as_secs_f64()
            ));
            let slow = slow_stops(state, &seen);
            for s in &slow {
                progress.log(s);
            }
            return Ok(slow);
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
        let poll = Duration::from_millis(250);
        match &events {
            Some(ev) => {
                ev.wait(poll);
            }
            None => std::thread::sleep(poll),
        }
    }
}

/// Swarm's default stop grace period (compose `stop_grace_period`): SIGTERM, then SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// "app took 10.3 s to stop: it ignores SIGTERM …" for every service whose containers were still
/// there a stop grace period (less a half second of polling) after the undeploy.
fn slow_stops(state: &RunState, seen: &std::collections::BTreeMap<String, Duration>) -> Vec<String> {
    let prefix = state.stack.prefix();
    seen.iter()
        .filter(|(_, last)| **last + Duration::from_millis(500) >= STOP_GRACE)
        .map(|(service, last)| {
            let short = service.strip_prefix(&prefix).unwrap_or(service);
            format!(
                "{short} took {:.1}s to stop: it ignores SIGTERM (swarm kills it when its stop grace period, 10 s unless stop_grace_period says otherwise, ends)",
                last.as_secs_f64()
            )
        })
        .collect()
}

/// Removes secrets, configs, networks and volumes found by label or name prefix until nothing
/// of the stack is left or `timeout` passes; returns what is left. Each pass lists every kind at
/// once (a thread per kind) and removes what it found in parallel; docker reports networks and
/// volumes in use for a while after the last container went, so it retries every half second.
/// A pass in which everything it found was removed is followed at once by the pass that checks
/// that nothing is left.
fn sweep(sh: &Shell, state: &RunState, timeout: Duration, progress: &Progress) -> Result<Vec<String>> {
    let start = Instant::now();
    loop {
        let found = docker::all_objects(&state.stack)?;
        let containers = docker::containers(sh, &state.stack)?;
        let left = describe(&found, &containers);
        if left.is_empty() || start.elapsed() > timeout {
            return Ok(left);
        }
        let late = start.elapsed() > timeout / 2;
        let said: Vec<(bool, Option<String>)> = std::thread::scope(|scope| {
            let removals: Vec<_> = found
                .iter()
                .flat_map(|(kind, names)| names.iter().map(move |name| (*kind, name)))
                .map(|(kind, name)| {
                    scope.spawn(move || {
                        match Shell::new().map_err(Error::from).and_then(|sh| docker::remove(&sh, kind, name)) {
                            Ok(()) => (true, Some(format!("removed {} {name}", kind.as_str()))),
                            // Still in use: the next pass tries again; said once it is late.
                            Err(e) if late => (false, Some(e.to_string())),
                            Err(_) => (false, None),
                        }
                    })
                })
                .collect();
            removals.into_iter().map(|h| h.join().unwrap_or((false, None))).collect()
        });
        // Something still in use waits a moment before the next pass; when every removal
        // succeeded (and no container was left) the next pass is only the check that nothing is.
        let retry = !containers.is_empty() || said.iter().any(|(removed, _)| !removed);
        for (_, line) in said {
            if let Some(line) = line {
                progress.log(line);
            }
        }
        if retry {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn describe(found: &[(ObjectKind, Vec<String>)], containers: &[String]) -> Vec<String> {
    let mut left: Vec<String> =
        found.iter().flat_map(|(kind, names)| names.iter().map(move |n| format!("{} {n}", kind.as_str()))).collect();
    left.extend(containers.iter().map(|c| format!("container {}", &c[..12.min(c.len())])));
    left
}

/// Everything of the stack still on this node, as `kind name`.
pub fn leftovers(sh: &Shell, state: &RunState) -> Result<Vec<String>> {
    let found = docker::all_objects(&state.stack)?;
    Ok(describe(&found, &docker::containers(sh, &state.stack)?))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_whose_containers_outlived_the_stop_grace_period_is_named_as_ignoring_sigterm() {
        let state = crate::run::state::tests::sample();
        let prefix = state.stack.prefix();
        let seen: std::collections::BTreeMap<String, Duration> = [
            (format!("{prefix}app"), Duration::from_millis(10_300)),
            (format!("{prefix}db"), Duration::from_millis(1_200)),
        ]
        .into();
        let slow = slow_stops(&state, &seen);
        assert_eq!(slow.len(), 1, "{slow:?}");
        assert!(slow[0].starts_with("app took 10.3s to stop: it ignores SIGTERM"), "{slow:?}");
    }

    #[test]
    fn leftovers_are_named_by_kind() {
        let found = vec![(ObjectKind::Volume, vec!["s_data".to_string()]), (ObjectKind::Secret, vec![])];
        assert_eq!(describe(&found, &["0123456789abcdef".to_string()]), ["volume s_data", "container 0123456789ab"]);
    }
}
