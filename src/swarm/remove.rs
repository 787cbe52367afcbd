//! Removing a run's deployment from the swarm: the driver's undeploy, then every service, probe
//! container, secret, config, network and volume of the stack, waited for and swept, and what is
//! still there afterwards. What ccci-teardown and the janitor's reap run ([`tear_down`]), and what a
//! deploy runs to remove a base release that did not deploy before it deploys the head.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::naming::ObjectKind;
use crate::run::registry::Registry;
use crate::run::state::{OpTimer, Outcome, RunState};
use crate::swarm::docker;
use crate::swarm::driver;

/// What [`remove_deployment`] leaves and noticed.
#[derive(Debug, Clone, Default)]
pub struct Removed {
    /// What is still on the swarm afterwards, as `kind name`.
    pub left: Vec<String>,
    /// Services whose containers took their stop grace period to go ([`slow_stops`]).
    pub slow: Vec<String>,
}

/// Removes the run from the swarm ([`remove_deployment`]) and, when nothing of it is left,
/// forgets it (its env file, workspace and registry entry); records the `teardown` op timed by
/// `timer` on `state` and returns its outcome: `pass` (nothing left, forgotten), `fail` (objects
/// left on the swarm, named in the detail), `error` (docker or the files could not be asked or
/// removed). What `ccci-teardown` runs, and the janitor's reap of an expired or orphaned run.
pub fn tear_down(
    state: &mut RunState,
    registry: &Registry,
    sh: &Shell,
    progress: &Progress,
    timer: OpTimer,
) -> Outcome {
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

/// Removes the run from the swarm; returns what is still there afterwards. Also what a deploy
/// uses to remove a base release that did not deploy, before it deploys the head.
pub fn remove_deployment(state: &RunState, sh: &Shell, progress: &Progress) -> Result<Removed> {
    let timeout = crate::config::teardown_timeout()?;
    let driver = driver::for_run(state.driver, &state.workspace, &state.recipe)?;
    let stack = &state.stack;

    // Each service's stop grace period, read while the services are still there.
    let graces: BTreeMap<String, Duration> =
        docker::services(sh, stack).unwrap_or_default().into_iter().map(|s| (s.name, s.stop_grace)).collect();
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
    let slow = wait_gone(sh, state, timeout, &graces, progress)?;

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
/// Once no service of the stack is left, stops and removes each container of the stack itself
/// ([`docker::stop_and_remove`], with its service's stop grace period from `graces`) rather than
/// waiting for swarm's agent, which sends the stop signal seconds after the service went and
/// removes the container seconds after it exited; the app still gets its signal and its whole
/// grace period. When a service's containers took about its stop grace period or longer to go,
/// says so: that time is the app's (it ignores SIGTERM and is killed when the grace period
/// ends), not ccci's.
fn wait_gone(
    sh: &Shell,
    state: &RunState,
    timeout: Duration,
    graces: &BTreeMap<String, Duration>,
    progress: &Progress,
) -> Result<Vec<String>> {
    let start = Instant::now();
    let mut last_log = Instant::now();
    // Per service: when its last container was seen.
    let mut seen: BTreeMap<String, Duration> = Default::default();
    // Containers being stopped and removed, each on a thread of its own.
    let mut stopping: BTreeMap<String, std::thread::JoinHandle<Option<String>>> = Default::default();
    // docker's events (a container dying, destroyed) wake the wait; the poll bounds it.
    let events = docker::Events::follow(&state.stack, timeout);
    loop {
        let services = docker::objects(sh, ObjectKind::Service, &state.stack)?;
        let containers = docker::containers_by_service(sh, &state.stack)?;
        for (_, service) in &containers {
            seen.insert(service.clone(), start.elapsed());
        }
        // With a service left, swarm would start a container stopped here again.
        if services.is_empty() {
            for (id, service) in &containers {
                if stopping.contains_key(id) {
                    continue;
                }
                let grace = graces.get(service).copied().unwrap_or(docker::DEFAULT_STOP_GRACE);
                let id_ = id.clone();
                let handle = std::thread::spawn(move || match Shell::new() {
                    Ok(sh) => docker::stop_and_remove(&sh, &id_, grace),
                    Err(e) => Some(e.to_string()),
                });
                stopping.insert(id.clone(), handle);
            }
        }
        if services.is_empty() && containers.is_empty() {
            for (id, handle) in stopping {
                if let Some(e) = handle.join().unwrap_or(None) {
                    progress.log(format!("stopping container {}: {e}", &id[..12.min(id.len())]));
                }
            }
            progress.log(format!(
                "no service or container of the stack is left after {:.1}s",
                start.elapsed().as_secs_f64()
            ));
            let slow = slow_stops(state, &seen, graces);
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

/// "app took 10.3 s to stop: it ignores SIGTERM …" for every service whose containers were still
/// there its stop grace period (`graces`, else swarm's default; less a half second of polling)
/// after the undeploy.
pub fn slow_stops(
    state: &RunState,
    seen: &BTreeMap<String, Duration>,
    graces: &BTreeMap<String, Duration>,
) -> Vec<String> {
    let prefix = state.stack.prefix();
    seen.iter()
        .filter_map(|(service, last)| {
            let grace = graces.get(service).copied().unwrap_or(docker::DEFAULT_STOP_GRACE);
            (*last + Duration::from_millis(500) >= grace).then(|| {
                let short = service.strip_prefix(&prefix).unwrap_or(service);
                format!(
                    "{short} took {:.1}s to stop: it ignores SIGTERM (it is killed when its stop grace period, {} s, ends)",
                    last.as_secs_f64(),
                    grace.as_secs_f64()
                )
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_whose_containers_outlived_the_stop_grace_period_is_named_as_ignoring_sigterm() {
        let state = crate::run::state::tests::sample();
        let prefix = state.stack.prefix();
        let seen: BTreeMap<String, Duration> = [
            (format!("{prefix}app"), Duration::from_millis(10_300)),
            (format!("{prefix}db"), Duration::from_millis(1_200)),
            (format!("{prefix}worker"), Duration::from_millis(3_100)),
        ]
        .into();
        // The worker's stop grace period is 3 s: it waited it out too.
        let graces: BTreeMap<String, Duration> = [(format!("{prefix}worker"), Duration::from_secs(3))].into();
        let slow = slow_stops(&state, &seen, &graces);
        assert_eq!(slow.len(), 2, "{slow:?}");
        assert_eq!(
            slow[0],
            "app took 10.3s to stop: it ignores SIGTERM (it is killed when its stop grace period, 10 s, ends)"
        );
        assert!(slow[1].starts_with("worker took 3.1s to stop: it ignores SIGTERM"), "{slow:?}");
    }

    #[test]
    fn leftovers_are_named_by_kind() {
        let found = vec![(ObjectKind::Volume, vec!["s_data".to_string()]), (ObjectKind::Secret, vec![])];
        assert_eq!(describe(&found, &["0123456789abcdef".to_string()]), ["volume s_data", "container 0123456789ab"]);
    }
}
