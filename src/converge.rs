//! Waiting for a stack to converge, with a deadline, failing fast when waiting cannot help.
//!
//! `docker stack deploy --detach=false` hangs on one-shot services and abra's own wait has an
//! unconfirmed timeout; ccci polls the swarm itself so every failure quotes the task error.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::docker::{self, Service, Task};
use crate::error::{Error, Result};
use crate::naming::StackName;
use crate::progress::Progress;
use crate::state::{Deployed, DeployedService, PortMode, PublishedPort};

/// Failed tasks of one service, since the deploy began, after which it counts as crash-looping.
/// One or two failures are normal while a dependency (a database) starts.
pub const CRASH_LOOP_FAILURES: usize = 3;

const POLL: Duration = Duration::from_secs(2);
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// The state of one service at the end of the wait.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub service: Service,
    pub desired: u64,
    pub running: u64,
    pub tasks: Vec<Task>,
}

/// What one look at the swarm says.
enum Verdict {
    Converged,
    Waiting(String),
    Failed(String),
}

/// Polls until every service of `stack` runs its desired replicas, or fails. Only tasks created
/// at or after `since` (RFC 3339) count as failures, so a redeploy is not blamed for old tasks.
pub fn wait(
    sh: &Shell,
    stack: &StackName,
    timeout: Duration,
    since: &str,
    progress: &Progress,
) -> Result<Vec<ServiceStatus>> {
    let start = Instant::now();
    let mut last_report = Instant::now();
    let since_unix = crate::time::parse_rfc3339(since).unwrap_or(0);
    // Swarm prunes old tasks (task history limit), so failures are remembered across polls.
    let mut failures = Failures::default();
    loop {
        let statuses = look(sh, stack)?;
        let verdict = judge(&statuses, since_unix, &mut failures);
        match verdict {
            Verdict::Converged => {
                progress.log(format!("converged: {}", summary(&statuses)));
                return Ok(statuses);
            }
            Verdict::Failed(why) => return Err(Error::failed(why)),
            Verdict::Waiting(why) => {
                if start.elapsed() >= timeout {
                    return Err(Error::failed(format!("not converged after {}s: {why}", timeout.as_secs())));
                }
                if last_report.elapsed() >= REPORT_EVERY {
                    progress.log(format!("waiting for convergence: {why}"));
                    last_report = Instant::now();
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// One look at the stack's services and tasks.
pub fn look(sh: &Shell, stack: &StackName) -> Result<Vec<ServiceStatus>> {
    let services = docker::services(sh, stack)?;
    let tasks = docker::tasks(sh, &services)?;
    let mut by_service: BTreeMap<&str, Vec<Task>> = BTreeMap::new();
    for t in &tasks {
        by_service.entry(t.service_id.as_str()).or_default().push(t.clone());
    }
    Ok(services
        .into_iter()
        .map(|s| {
            let tasks = by_service.remove(s.id.as_str()).unwrap_or_default();
            let running = tasks.iter().filter(|t| t.desired_state == "running" && t.state == "running").count() as u64;
            // A global service on a single-node swarm wants one task.
            let desired = s.replicas.unwrap_or(1);
            ServiceStatus { service: s, desired, running, tasks }
        })
        .collect())
}

/// Failed tasks seen so far, per service id: task id → reason.
type Failures = BTreeMap<String, BTreeMap<String, (String, String)>>;

fn judge(statuses: &[ServiceStatus], since_unix: u64, failures: &mut Failures) -> Verdict {
    if statuses.is_empty() {
        return Verdict::Waiting("no services of the stack yet".into());
    }
    let mut waiting = vec![];
    for s in statuses {
        let name = &s.service.name;
        if let Some(state) = &s.service.update_state
            && (state == "paused" || state.starts_with("rollback"))
        {
            let msg = s.service.update_message.clone().unwrap_or_default();
            return Verdict::Failed(format!("service {name}: update {state}: {msg}"));
        }
        let recent: Vec<&Task> = s
            .tasks
            .iter()
            .filter(|t| crate::time::parse_rfc3339(&t.created_at).is_none_or(|c| c >= since_unix))
            .collect();
        if let Some(t) = recent.iter().find(|t| t.state == "rejected") {
            return Verdict::Failed(format!("service {name}: task rejected: {}", task_reason(t)));
        }
        let seen = failures.entry(s.service.id.clone()).or_default();
        for t in recent.iter().filter(|t| t.state == "failed") {
            seen.insert(t.id.clone(), (t.created_at.clone(), task_reason(t)));
        }
        let last_failure = seen.values().max().map(|(_, reason)| reason.clone());
        if seen.len() >= CRASH_LOOP_FAILURES {
            return Verdict::Failed(format!(
                "service {name}: crash-looping, {} tasks failed; last: {}",
                seen.len(),
                last_failure.unwrap_or_default()
            ));
        }
        let updating = s.service.update_state.as_deref() == Some("updating");
        if s.running < s.desired || updating {
            let current = s
                .tasks
                .iter()
                .filter(|t| t.desired_state == "running")
                .map(|t| t.state.as_str())
                .next()
                .unwrap_or("no task");
            let mut w = format!("{name} {}/{} ({current})", s.running, s.desired);
            if let Some(reason) = &last_failure {
                w.push_str(&format!(", last failure: {reason}"));
            }
            waiting.push(w);
        }
    }
    if waiting.is_empty() { Verdict::Converged } else { Verdict::Waiting(waiting.join(", ")) }
}

fn task_reason(t: &Task) -> String {
    let mut r = if t.error.is_empty() { t.message.clone() } else { t.error.trim_matches('"').to_string() };
    if let Some(code) = t.exit_code.filter(|c| *c != 0) {
        r.push_str(&format!(" (exit code {code})"));
    }
    r
}

/// What is on the swarm now, per service.
pub fn observe(sh: &Shell, stack: &StackName, statuses: &[ServiceStatus]) -> Deployed {
    let prefix = stack.prefix();
    let services = statuses
        .iter()
        .map(|s| {
            let short = s.service.name.strip_prefix(&prefix).unwrap_or(&s.service.name).to_string();
            let mut ports: Vec<PublishedPort> = s
                .tasks
                .iter()
                .filter(|t| t.desired_state == "running" && t.state == "running")
                .flat_map(|t| {
                    t.ports.iter().map(|(published, target)| PublishedPort {
                        published: *published,
                        target: *target,
                        mode: PortMode::Host,
                    })
                })
                .collect();
            ports.extend(s.service.ingress_ports.iter().map(|(published, target)| PublishedPort {
                published: *published,
                target: *target,
                mode: PortMode::Ingress,
            }));
            ports.sort_by_key(|p| (p.target, p.published, p.mode));
            ports.dedup();
            let svc = DeployedService {
                name: s.service.name.clone(),
                image: s.service.image.clone(),
                image_id: docker::image_id(sh, &s.service.image),
                desired_replicas: s.desired,
                running_replicas: s.running,
                labels: s.service.labels.clone(),
                ports,
                secrets: s.service.secrets.clone(),
                configs: s.service.configs.clone(),
            };
            (short, svc)
        })
        .collect();
    Deployed { observed_at: crate::time::now_rfc3339(), services }
}

/// [`observe`] of a fresh [`look`].
pub fn snapshot(sh: &Shell, stack: &StackName) -> Result<Deployed> {
    let statuses = look(sh, stack)?;
    Ok(observe(sh, stack, &statuses))
}

/// `app 1/1, db 1/1`.
pub fn summary(statuses: &[ServiceStatus]) -> String {
    statuses.iter().map(|s| format!("{} {}/{}", s.service.name, s.running, s.desired)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, replicas: u64) -> Service {
        Service {
            id: name.into(),
            name: name.into(),
            image: "x".into(),
            labels: Default::default(),
            replicas: Some(replicas),
            secrets: vec![],
            configs: vec![],
            created_at: String::new(),
            update_state: None,
            update_message: None,
            ingress_ports: vec![],
        }
    }

    fn task(state: &str, desired: &str, err: &str, created: &str) -> Task {
        Task {
            id: "t".into(),
            service_id: "s".into(),
            slot: Some(1),
            desired_state: desired.into(),
            state: state.into(),
            error: err.into(),
            message: String::new(),
            created_at: created.into(),
            exit_code: None,
            ports: vec![],
            container_id: None,
            addresses: vec![],
        }
    }

    fn status(tasks: Vec<Task>, replicas: u64) -> ServiceStatus {
        let running = tasks.iter().filter(|t| t.desired_state == "running" && t.state == "running").count() as u64;
        ServiceStatus { service: svc("s_app", replicas), desired: replicas, running, tasks }
    }

    const T1: &str = "2026-11-21T22:00:00Z";

    #[test]
    fn converged_when_all_replicas_run() {
        let s = status(vec![task("running", "running", "", T1)], 1);
        assert!(matches!(judge(&[s], 0, &mut Failures::default()), Verdict::Converged));
    }

    #[test]
    fn rejected_fails_fast_quoting_the_error() {
        let s = status(vec![task("rejected", "shutdown", "\"No such image: x:1\"", T1)], 1);
        match judge(&[s], 0, &mut Failures::default()) {
            Verdict::Failed(m) => assert!(m.contains("No such image: x:1"), "{m}"),
            _ => panic!("expected failure"),
        }
    }

    #[test]
    fn old_rejections_do_not_count() {
        let s = status(vec![task("rejected", "shutdown", "gone", T1), task("running", "running", "", T1)], 1);
        let since = crate::time::parse_rfc3339(T1).unwrap() + 60;
        assert!(matches!(judge(&[s], since, &mut Failures::default()), Verdict::Converged));
    }

    #[test]
    fn crash_loop_after_three_failures() {
        let f = |id: &str| Task { id: id.into(), ..task("failed", "shutdown", "task: non-zero exit (1)", T1) };
        let mut seen = Failures::default();
        let two = status(vec![f("a"), f("b"), task("starting", "running", "", T1)], 1);
        assert!(matches!(judge(std::slice::from_ref(&two), 0, &mut seen), Verdict::Waiting(_)));
        assert!(matches!(judge(&[two], 0, &mut seen), Verdict::Waiting(_)), "the same failures twice are two");
        // Swarm pruned a and b; c is the third failure all the same.
        let pruned = status(vec![f("c"), task("starting", "running", "", T1)], 1);
        assert!(matches!(judge(&[pruned], 0, &mut seen), Verdict::Failed(m) if m.contains("crash-looping")));
    }

    #[test]
    fn paused_update_fails() {
        let mut s = status(vec![task("running", "running", "", T1)], 1);
        s.service.update_state = Some("paused".into());
        s.service.update_message = Some("update paused due to failure".into());
        assert!(matches!(judge(&[s], 0, &mut Failures::default()), Verdict::Failed(m) if m.contains("paused")));
    }
}
