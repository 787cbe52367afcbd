//! Waiting for a stack to converge, with a deadline, failing fast when waiting cannot help.
//!
//! `docker stack deploy --detach=false` hangs on one-shot services and abra's own wait has an
//! unconfirmed timeout; ccci polls the swarm itself so every failure quotes the task error.
//!
//! Tasks are read the way swarm means them ([`ending`]):
//! - **running**: desired and current state `running`.
//! - **done**: ended `complete` with exit code 0, its container not stopped by a failing
//!   healthcheck, and either under restart condition `none` or `on-failure` ("completed": a
//!   one-shot job such as a migration; swarm starts no other task), or under condition `any` with
//!   a restart delay of at least [`PERIODIC_MIN_DELAY`] ("periodic": swarm runs it again after the
//!   delay). A slot whose last ended task is done, and that has no task on its way to running,
//!   counts as converged.
//! - **replaced**: every other task that ended after the deploy began, whatever its end state:
//!   failed, stopped by its healthcheck (and exiting 0 on SIGTERM, as nginx does), or exiting 0
//!   under condition `any` with a short delay (a server that quits at once is not a periodic
//!   job). [`CRASH_LOOP_REPLACEMENTS`] of them in one service is a crash loop, failed at once,
//!   quoting the last one's reason and healthcheck output.
//! - **final**: an ended task that is not done and that swarm will not replace (condition `none`;
//!   `on-failure` after exit 0; `max_attempts` used up) fails at once.
//! - **pending** with a scheduler reason ("no suitable node …", "insufficient resources …"): the
//!   reason is quoted while waiting, and the wait fails once the same reason has stood for
//!   `CCCI_PENDING_TIMEOUT`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::run::naming::StackName;
#[cfg(test)]
use crate::run::state::AddressFamily;
use crate::run::state::{Deployed, DeployedService, PortMode, PublishedPort, SettleBaseline};
use crate::swarm::docker::{self, Service, Task};

/// Tasks of one service that ended and were replaced since the deploy began after which it
/// counts as crash-looping. One or two are normal while a dependency (a database) starts.
pub const CRASH_LOOP_REPLACEMENTS: usize = 3;

/// The shortest restart delay under which a task that exits 0 under restart condition `any`
/// is a periodic job rather than a crash loop. Swarm's default delay is 5 s: a service that
/// exits 0 and is restarted that fast is a server quitting, and a periodic job names its period.
pub const PERIODIC_MIN_DELAY: Duration = Duration::from_secs(10);

/// Between two looks at the swarm. One look (service list and inspect, task list and inspect
/// per service) takes 0.1-0.3 s on a small stack. A wait also follows `docker events` of the
/// stack ([`docker::Events`]) and looks again as soon as one comes, so the last task running is
/// noticed about one look after docker reports it; without an event it looks again after this.
pub const POLL: Duration = Duration::from_millis(250);

/// With `docker events` followed: the pause after an event before the next look, for swarm to
/// record the task state the event stands for.
pub const AFTER_EVENT: Duration = Duration::from_millis(50);
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How long a wait may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole wait (`CCCI_DEPLOY_TIMEOUT`).
    pub timeout: Duration,
    /// One unchanged scheduler reason of a pending task (`CCCI_PENDING_TIMEOUT`).
    pub pending: Duration,
}

impl Limits {
    /// From the settings; a malformed one is bad input.
    pub fn from_env() -> Result<Limits> {
        Ok(Limits { timeout: crate::config::deploy_timeout()?, pending: crate::config::pending_timeout()? })
    }
}

/// The state of one service at the end of the wait.
#[derive(Debug, Clone)]
pub struct ServiceStatus {
    pub service: Service,
    pub desired: u64,
    pub running: u64,
    pub tasks: Vec<Task>,
    /// Slots with no running task whose last ended task is done ([`Ending::Done`]).
    pub done: u64,
    /// How those slots are done: `completed` or `periodic`.
    pub done_as: Option<&'static str>,
}

impl ServiceStatus {
    /// Every desired slot runs a task or is done.
    pub fn satisfied(&self) -> bool {
        self.running + self.done >= self.desired
    }
}

/// How a task that ended is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Ended as the service means to: `completed` (one-shot) or `periodic`.
    Done(&'static str),
    /// Ended, and swarm starts another in its place; the reason in words.
    Replaced(String),
    /// Ended, not done, and swarm starts no other: the reason in words.
    Final(String),
}

/// How swarm means the end of `task` of `service`; `None` while the task has not ended (and
/// for `rejected`, which the wait fails on by itself).
pub fn ending(service: &Service, task: &Task) -> Option<Ending> {
    if !docker::is_ended(&task.state) || task.state == "rejected" {
        return None;
    }
    let unhealthy = failed_healthcheck(task).is_some();
    let exit0 = task.exit_code.unwrap_or(0) == 0;
    let policy = &service.restart;
    if task.state == "complete" && exit0 && !unhealthy {
        match policy.condition.as_str() {
            "none" | "on-failure" => return Some(Ending::Done("completed")),
            _ if policy.delay >= PERIODIC_MIN_DELAY => return Some(Ending::Done("periodic")),
            _ => {}
        }
    }
    let reason = ended_reason(task);
    let replaced = match policy.condition.as_str() {
        "none" => false,
        // Swarm restarts on failure only: a task that completed (here: stopped by its
        // healthcheck and exiting 0) is not run again.
        "on-failure" => task.state != "complete",
        _ => true,
    };
    Some(if replaced {
        Ending::Replaced(reason)
    } else {
        Ending::Final(format!("{reason}; restart condition {} starts no other task", policy.condition))
    })
}

/// The health of a task's container whose healthcheck failed at least once in a row when it
/// ended: the container was (or was about to be) stopped for it. A container that exits before
/// any probe ran is `unhealthy` with no failing probe; that is not the healthcheck's doing.
pub fn failed_healthcheck(task: &Task) -> Option<&docker::Health> {
    task.health.as_ref().filter(|h| h.status == "unhealthy" && h.failing_streak > 0)
}

/// Why a task ended, in words: swarm's error and the exit code, or "exited 0"; then, when its
/// healthcheck failed, the streak and the probe's last output ("unhealthy: healthcheck failed 2
/// times: …"), which is the reason when the app exits 0 on the SIGTERM that stops it.
pub fn ended_reason(task: &Task) -> String {
    let own = match task.state.as_str() {
        "complete" => "exited 0".to_string(),
        "shutdown" => {
            format!("shut down by swarm ({})", if task.message.is_empty() { "no reason given" } else { &task.message })
        }
        _ => task_reason(task),
    };
    let Some(h) = failed_healthcheck(task) else { return own };
    let out = crate::process::tail(&h.last_output, 2);
    let out = if out.is_empty() { String::new() } else { format!(": {out}") };
    let health = format!("unhealthy: healthcheck failed {} times{out}", h.failing_streak);
    if task.state == "complete" { health } else { format!("{own}; {health}") }
}

/// What a [`wait`] converged on.
#[derive(Debug, Clone)]
pub struct Converged {
    /// The services and their tasks at the look that saw the stack converged.
    pub statuses: Vec<ServiceStatus>,
    /// When the wait first saw the tasks as they are at the end (ccci's clock, Unix
    /// milliseconds): from this look on, every look of the wait (one per event of the stack, at
    /// least every [`POLL`]) found the same tasks in the same states ([`unchanged`]). Earlier
    /// than the convergence when swarm holds an update open after its last task started (the
    /// update's `monitor` period, 5 s by default).
    pub unchanged_since_ms: u64,
}

/// Polls until every service of `stack` runs its desired replicas (or is done), or fails. Only
/// tasks created at or after `since` (RFC 3339) count as failures, so a redeploy is not blamed
/// for old tasks.
pub fn wait(sh: &Shell, stack: &StackName, limits: Limits, since: &str, progress: &Progress) -> Result<Converged> {
    let start = Instant::now();
    let mut last_report = Instant::now();
    let since_unix = crate::time::parse_rfc3339(since).unwrap_or(0);
    // Swarm prunes old tasks (task history limit), so what was seen is remembered across polls.
    let mut memory = Memory::default();
    let mut last_why = String::new();
    // docker's events wake the wait early; the poll still bounds it (and is all there is when
    // docker events cannot be followed).
    let events = docker::Events::follow(stack, limits.timeout);
    // The tasks as last seen, and since when they have been so.
    let mut quiet: Option<(u64, TaskStates)> = None;
    loop {
        let statuses = look(sh, stack)?;
        // Taken after the look: whatever it saw had happened by then.
        let seen_at = crate::time::unix_now_ms();
        let tasks = task_states(&statuses);
        let since_ms = match quiet {
            Some((at, before)) if unchanged(&before, &tasks) => at,
            _ => seen_at,
        };
        quiet = Some((since_ms, tasks));
        let verdict = judge(&statuses, since_unix, &mut memory, start.elapsed(), limits.pending);
        match verdict {
            Verdict::Converged => {
                progress.log(format!("converged in {:.1}s: {}", start.elapsed().as_secs_f64(), summary(&statuses)));
                return Ok(Converged { statuses, unchanged_since_ms: since_ms });
            }
            Verdict::Failed(why) => return Err(Error::failed(why)),
            Verdict::Waiting(why) => {
                if start.elapsed() >= limits.timeout {
                    return Err(Error::failed(format!("not converged after {}s: {why}", limits.timeout.as_secs())));
                }
                // A new scheduler reason or a replaced task is said at once.
                let news = why != last_why && (why.contains("(pending: ") || why.contains(" replaced, last: "));
                if last_report.elapsed() >= REPORT_EVERY || news {
                    progress.log(format!("waiting for convergence: {why}"));
                    last_report = Instant::now();
                }
                last_why = why;
            }
        }
        match &events {
            // A look at once after an event, then the poll's pace: swarm records a task running
            // a moment after docker's container event.
            Some(ev) => {
                if ev.wait(POLL) {
                    std::thread::sleep(AFTER_EVENT);
                }
            }
            None => std::thread::sleep(POLL),
        }
    }
}

/// Every task of a look by id: (current state, desired state).
type TaskStates = BTreeMap<String, (String, String)>;

/// The [`TaskStates`] of `statuses`.
fn task_states(statuses: &[ServiceStatus]) -> TaskStates {
    statuses.iter().flat_map(|s| &s.tasks).map(|t| (t.id.clone(), (t.state.clone(), t.desired_state.clone()))).collect()
}

/// Whether nothing happened to the tasks between two looks: every task seen `now` was seen
/// `before`, in the same state and desired state; a task seen before and gone now had ended
/// (swarm forgets old tasks beyond its task history limit). Stricter than the settle check,
/// which also lets a one-shot or periodic job end or start: so the quiet time a wait hands on
/// never covers anything the settle check would have called a restart.
fn unchanged(before: &TaskStates, now: &TaskStates) -> bool {
    now.iter().all(|(id, states)| before.get(id) == Some(states))
        && before.iter().all(|(id, (state, _))| now.contains_key(id) || docker::is_ended(state))
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
            status_of(s, tasks)
        })
        .collect())
}

/// Whether a task counts as running: desired and current state `running`, and, when its
/// container has a healthcheck, `healthy`. Swarm keeps a task `starting` until its healthcheck
/// passes (moby/moby#24545), but a task has been seen `running` with its container's health still
/// `starting`, and then replaced as unhealthy: counting it would call a crash loop converged.
pub fn counts_as_running(t: &Task) -> bool {
    t.desired_state == "running" && t.state == "running" && t.health.as_ref().is_none_or(|h| h.status == "healthy")
}

/// Counts a service's running and done slots.
pub fn status_of(service: Service, tasks: Vec<Task>) -> ServiceStatus {
    let running = tasks.iter().filter(|t| counts_as_running(t)).count() as u64;
    // A global service on a single-node swarm wants one task.
    let desired = service.replicas.unwrap_or(1);
    let mut slots: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for t in &tasks {
        slots.entry(t.slot.unwrap_or(0)).or_default().push(t);
    }
    let (mut done, mut done_as) = (0, None);
    for slot in slots.values() {
        if slot.iter().any(|t| t.desired_state == "running") {
            continue; // running, or on its way there
        }
        let last_ended =
            slot.iter().filter(|t| docker::is_ended(&t.state)).max_by(|a, b| a.created_at.cmp(&b.created_at));
        if let Some(Ending::Done(how)) = last_ended.and_then(|t| ending(&service, t)) {
            done += 1;
            done_as = Some(how);
        }
    }
    ServiceStatus { service, desired, running, tasks, done, done_as }
}

/// What the wait remembers across looks.
#[derive(Debug, Default)]
struct Memory {
    /// Per service id: replaced tasks, task id → (created at, reason).
    replaced: BTreeMap<String, BTreeMap<String, (String, String)>>,
    /// Per service id: a pending task's scheduler reason and when it was first seen.
    pending: BTreeMap<String, (String, Duration)>,
}

/// What one look at the swarm says.
#[derive(Debug)]
enum Verdict {
    Converged,
    Waiting(String),
    Failed(String),
}

/// `elapsed`: since the wait began; `pending_limit`: how long one scheduler reason may stand.
fn judge(
    statuses: &[ServiceStatus],
    since_unix: u64,
    memory: &mut Memory,
    elapsed: Duration,
    pending_limit: Duration,
) -> Verdict {
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
        let seen = memory.replaced.entry(s.service.id.clone()).or_default();
        for t in &recent {
            match ending(&s.service, t) {
                Some(Ending::Final(why)) => {
                    return Verdict::Failed(format!("service {name}: task {} ended: {why}", short(&t.id)));
                }
                Some(Ending::Replaced(why)) => {
                    seen.insert(t.id.clone(), (t.created_at.clone(), why));
                }
                _ => {}
            }
        }
        let last = seen.values().max().map(|(_, reason)| reason.clone());
        let max_attempts = s.service.restart.max_attempts;
        let limit = if max_attempts > 0 {
            CRASH_LOOP_REPLACEMENTS.min(max_attempts as usize + 1)
        } else {
            CRASH_LOOP_REPLACEMENTS
        };
        if seen.len() >= limit {
            let gave_up = if limit < CRASH_LOOP_REPLACEMENTS { " (swarm gives up: max_attempts)" } else { "" };
            return Verdict::Failed(format!(
                "service {name}: crash loop: {} tasks ended and were replaced since the deploy began{gave_up}; last: {}",
                seen.len(),
                last.unwrap_or_default()
            ));
        }
        let pending = s
            .tasks
            .iter()
            .find(|t| t.desired_state == "running" && t.state == "pending" && !t.error.is_empty())
            .map(|t| t.error.trim_matches('"').to_string());
        match pending {
            Some(reason) => {
                let since = match memory.pending.get(&s.service.id) {
                    Some((r, at)) if *r == reason => *at,
                    _ => {
                        memory.pending.insert(s.service.id.clone(), (reason.clone(), elapsed));
                        elapsed
                    }
                };
                let stood = elapsed.saturating_sub(since);
                if stood >= pending_limit {
                    return Verdict::Failed(format!(
                        "service {name}: task pending for {}s: {reason} ({})",
                        stood.as_secs(),
                        crate::config::PENDING_TIMEOUT.name
                    ));
                }
            }
            None => {
                memory.pending.remove(&s.service.id);
            }
        }
        let updating = s.service.update_state.as_deref() == Some("updating");
        if !s.satisfied() || updating {
            let current = s
                .tasks
                .iter()
                .filter(|t| t.desired_state == "running")
                .max_by(|a, b| a.created_at.cmp(&b.created_at))
                .map(|t| {
                    if t.state == "pending" && !t.error.is_empty() {
                        format!("pending: {}", t.error.trim_matches('"'))
                    } else if let Some(h) = t.health.as_ref().filter(|_| t.state == "running" && !counts_as_running(t))
                    {
                        format!("running, health {}", h.status)
                    } else {
                        t.state.clone()
                    }
                })
                .unwrap_or_else(|| {
                    // Swarm holds the next task at desired state `ready` for the restart delay.
                    let held = s.tasks.iter().any(|t| t.desired_state == "ready");
                    if held { "next task held for the restart delay" } else { "no task" }.into()
                });
            let mut w = format!("{name} {}/{} ({current})", s.running, s.desired);
            if let Some(reason) = &last {
                let n = seen.len();
                w.push_str(&format!(", {n} task{} replaced, last: {reason}", if n == 1 { "" } else { "s" }));
            }
            waiting.push(w);
        }
    }
    if waiting.is_empty() { Verdict::Converged } else { Verdict::Waiting(waiting.join(", ")) }
}

fn short(id: &str) -> &str {
    &id[..12.min(id.len())]
}

fn task_reason(t: &Task) -> String {
    let mut r = if t.error.is_empty() { t.message.clone() } else { t.error.trim_matches('"').to_string() };
    if let Some(code) = t.exit_code.filter(|c| *c != 0) {
        r.push_str(&format!(" (exit code {code})"));
    }
    r
}

/// The ports a service publishes now: host-mode ports of its tasks that run and are meant to
/// (a task being replaced still holds its port until its container stops, and must not be
/// asked), then its ingress-mode ports; sorted, without repeats.
pub fn published_ports(s: &ServiceStatus) -> Vec<PublishedPort> {
    let mut ports: Vec<PublishedPort> =
        s.tasks.iter().filter(|t| t.desired_state == "running" && t.state == "running").flat_map(host_ports).collect();
    ports.extend(s.service.ingress_ports.iter().map(|(published, target)| PublishedPort {
        published: *published,
        target: *target,
        mode: PortMode::Ingress,
        family: None,
    }));
    ports.sort_by_key(|p| (p.target, p.published, p.mode));
    ports.dedup();
    ports
}

/// The host-mode ports of one running task, one per target port. Swarm binds a host-mode port
/// once per address family, possibly under two numbers, and its task status lists both without
/// saying which is which; under load the other number may be another stack's port of the other
/// family. So the number asked is the one the task's container binds for IPv4 (asked at
/// `127.0.0.1`), else for IPv6 (`[::1]`); only when the container could not be asked is the
/// first listed number kept, with no family (tried at both loopbacks: `serving::check`).
fn host_ports(t: &Task) -> Vec<PublishedPort> {
    let mut targets: Vec<u16> = t.ports.iter().map(|(_, target)| *target).collect();
    targets.extend(t.bindings.iter().map(|(target, _, _)| *target));
    targets.sort();
    targets.dedup();
    targets
        .into_iter()
        .filter_map(|target| {
            let bound = t.bindings.iter().filter(|(tg, _, _)| *tg == target).min_by_key(|(_, family, _)| *family);
            let (published, family) = match bound {
                Some((_, family, published)) => (*published, Some(*family)),
                None => (t.ports.iter().find(|(_, tg)| *tg == target)?.0, None),
            };
            Some(PublishedPort { published, target, mode: PortMode::Host, family })
        })
        .collect()
}

/// The ports each service of the stack publishes now (`published_ports`), by short service name
/// (`app`, not `<stack>_app`).
///
/// Errors: docker cannot list the stack's services or tasks.
pub fn live_ports(sh: &Shell, stack: &StackName) -> Result<BTreeMap<String, Vec<PublishedPort>>> {
    let prefix = stack.prefix();
    Ok(look(sh, stack)?
        .iter()
        .map(|s| (s.service.name.strip_prefix(&prefix).unwrap_or(&s.service.name).to_string(), published_ports(s)))
        .collect())
}

/// What is on the swarm now, per service.
pub fn observe(sh: &Shell, stack: &StackName, statuses: &[ServiceStatus]) -> Deployed {
    let prefix = stack.prefix();
    let services = statuses
        .iter()
        .map(|s| {
            let short = s.service.name.strip_prefix(&prefix).unwrap_or(&s.service.name).to_string();
            let ports = published_ports(s);
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
    Deployed { observed_at: crate::time::now_rfc3339(), services, settle_from: None }
}

/// [`observe`] of the statuses a [`wait`] converged on, recording the moment the deployment
/// last changed ([`SettleBaseline`]): the first look of the wait that saw its tasks as they are
/// at the end ([`Converged::unchanged_since_ms`]). The settle window of the next asserts counts
/// from there.
pub fn observe_converged(sh: &Shell, stack: &StackName, converged: &Converged) -> Deployed {
    let settle = baseline(&converged.statuses, converged.unchanged_since_ms);
    Deployed { settle_from: Some(settle), ..observe(sh, stack, &converged.statuses) }
}

/// Whether two baselines have the same running tasks (the deployment did not change between).
pub fn same_running(a: &SettleBaseline, b: &SettleBaseline) -> bool {
    let set = |x: &SettleBaseline| x.running.iter().cloned().collect::<std::collections::BTreeSet<String>>();
    set(a) == set(b)
}

/// The tasks of `statuses` as a settle baseline taken at `at_ms` (Unix milliseconds).
pub fn baseline(statuses: &[ServiceStatus], at_ms: u64) -> SettleBaseline {
    let tasks = || statuses.iter().flat_map(|s| &s.tasks);
    SettleBaseline {
        at_ms,
        running: tasks()
            .filter(|t| t.desired_state == "running" && t.state == "running")
            .map(|t| t.id.clone())
            .collect(),
        known: tasks().map(|t| t.id.clone()).collect(),
    }
}

/// [`observe`] of a fresh [`look`].
pub fn snapshot(sh: &Shell, stack: &StackName) -> Result<Deployed> {
    let statuses = look(sh, stack)?;
    Ok(observe(sh, stack, &statuses))
}

/// `app 1/1, db 1/1`.
/// `app 1/1, migrate completed`: running/desired per service; a service whose every slot is done
/// says how (`completed`, a one-shot job; `periodic`, between two runs).
pub fn summary(statuses: &[ServiceStatus]) -> String {
    statuses
        .iter()
        .map(|s| {
            let name = &s.service.name;
            match s.done_as {
                Some(how) if s.running == 0 && s.done >= s.desired => format!("{name} {how}"),
                Some(how) => format!("{name} {}/{} ({} {how})", s.running, s.desired, s.done),
                None => format!("{name} {}/{}", s.running, s.desired),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::docker::{Health, RestartPolicy};

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
            restart: RestartPolicy::default(),
            stop_grace: crate::swarm::docker::DEFAULT_STOP_GRACE,
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
            bindings: vec![],
            container_id: None,
            addresses: vec![],
            health: None,
        }
    }

    /// A task that ended `state` with `exit`, created at second `n` of [`T1`]'s minute.
    fn ended(id: &str, state: &str, exit: i64, n: u32) -> Task {
        Task {
            id: id.into(),
            exit_code: Some(exit),
            message: if state == "complete" { "finished".into() } else { String::new() },
            ..task(state, "shutdown", if exit == 0 { "" } else { "task: non-zero exit (1)" }, &at(n))
        }
    }

    fn unhealthy(t: Task) -> Task {
        Task {
            health: Some(Health {
                status: "unhealthy".into(),
                failing_streak: 2,
                last_output: "wget: server returned error: HTTP/1.1 404 Not Found\n".into(),
            }),
            ..t
        }
    }

    fn at(n: u32) -> String {
        format!("2026-11-21T22:00:{n:02}Z")
    }

    fn with_policy(tasks: Vec<Task>, condition: &str, delay_s: u64) -> ServiceStatus {
        let mut service = svc("s_app", 1);
        service.restart =
            RestartPolicy { condition: condition.into(), delay: Duration::from_secs(delay_s), max_attempts: 0 };
        status_of(service, tasks)
    }

    fn status(tasks: Vec<Task>, replicas: u64) -> ServiceStatus {
        status_of(svc("s_app", replicas), tasks)
    }

    #[test]
    fn a_host_port_bound_once_per_address_family_is_one_port_of_its_task() {
        let mut a = task("running", "running", "", "2026-01-01T00:00:00Z");
        a.ports = vec![(34045, 8080), (34044, 8080), (34050, 9090)];
        let mut b = task("running", "running", "", "2026-01-01T00:00:01Z");
        b.ports = vec![(34046, 8080), (34047, 8080)];
        let mut old = task("running", "shutdown", "", "2025-12-31T00:00:00Z");
        old.ports = vec![(34001, 8080)];
        let ports = published_ports(&status(vec![a, b, old], 2));
        let got: Vec<_> = ports.iter().map(|p| (p.published, p.target)).collect();
        assert_eq!(got, vec![(34045, 8080), (34046, 8080), (34050, 9090)]);
        assert!(ports.iter().all(|p| p.family.is_none()), "no container was asked: {ports:?}");
    }

    #[test]
    fn a_running_task_counts_only_once_its_healthcheck_passed() {
        let health =
            |status: &str| Some(Health { status: status.into(), failing_streak: 0, last_output: String::new() });
        let mut starting = task("running", "running", "", T1);
        starting.health = health("starting");
        assert_eq!(status(vec![starting.clone()], 1).running, 0, "health starting is not converged");
        let mut unhealthy = starting.clone();
        unhealthy.health = health("unhealthy");
        assert_eq!(status(vec![unhealthy], 1).running, 0);
        let mut healthy = starting.clone();
        healthy.health = health("healthy");
        assert_eq!(status(vec![healthy], 1).running, 1);
        starting.health = None;
        assert_eq!(status(vec![starting], 1).running, 1, "no healthcheck: running is running");
    }

    #[test]
    fn a_host_port_is_the_number_its_container_binds_for_ipv4_even_when_listed_second() {
        // Seen on a loaded host: the task status lists 34197 and 34198 for target 8080; the
        // container binds 34197 for IPv6 only, and 127.0.0.1:34197 was another stack's app.
        let mut a = task("running", "running", "", "2026-01-01T00:00:00Z");
        a.ports = vec![(34197, 8080), (34198, 8080), (34300, 9090)];
        a.bindings = vec![
            (8080, AddressFamily::Ipv4, 34198),
            (8080, AddressFamily::Ipv6, 34197),
            (9090, AddressFamily::Ipv6, 34300),
        ];
        let got: Vec<_> =
            published_ports(&status(vec![a], 1)).iter().map(|p| (p.published, p.target, p.family)).collect();
        assert_eq!(
            got,
            vec![(34198, 8080, Some(AddressFamily::Ipv4)), (34300, 9090, Some(AddressFamily::Ipv6))],
            "IPv4 where bound, else IPv6"
        );
    }

    const T1: &str = "2026-11-21T22:00:00Z";
    const LIMIT: Duration = Duration::from_secs(30);

    fn judge1(s: &ServiceStatus, memory: &mut Memory) -> Verdict {
        judge(std::slice::from_ref(s), 0, memory, Duration::ZERO, LIMIT)
    }

    #[test]
    fn a_settle_baseline_holds_the_running_tasks_and_every_known_one() {
        let mut run = task("running", "running", "", T1);
        run.id = "run1".into();
        let mut old = ended("old1", "failed", 1, 1);
        old.desired_state = "shutdown".into();
        let b = baseline(&[status(vec![run.clone(), old], 1)], 42);
        let later = baseline(&[status(vec![run], 1)], 99);
        assert!(same_running(&b, &later), "the same running task is no change");
        let mut other = later.clone();
        other.running = vec!["run2".into()];
        assert!(!same_running(&b, &other), "another running task is a change");
        assert_eq!((b.at_ms, b.running, b.known), (42, vec!["run1".to_string()], vec!["run1".into(), "old1".into()]));
    }

    #[test]
    fn the_tasks_are_unchanged_only_when_no_task_started_stopped_or_moved_on() {
        let mut new = task("running", "running", "", T1);
        new.id = "new1".into();
        let mut old = ended("old1", "shutdown", 137, 1);
        old.desired_state = "shutdown".into();
        let before = task_states(&[status(vec![new.clone(), old.clone()], 1)]);
        // The same tasks in the same states; then the ended one forgotten by swarm.
        assert!(unchanged(&before, &task_states(&[status(vec![new.clone(), old.clone()], 1)])));
        assert!(unchanged(&before, &task_states(&[status(vec![new.clone()], 1)])));
        // A running task gone, ended, or told to stop; a new task, even one not running yet.
        assert!(!unchanged(&before, &task_states(&[status(vec![old.clone()], 1)])));
        let mut failed = new.clone();
        failed.state = "failed".into();
        assert!(!unchanged(&before, &task_states(&[status(vec![failed, old.clone()], 1)])));
        let mut stopping = new.clone();
        stopping.desired_state = "shutdown".into();
        assert!(!unchanged(&before, &task_states(&[status(vec![stopping, old.clone()], 1)])));
        let mut next = task("preparing", "running", "", T1);
        next.id = "new2".into();
        assert!(!unchanged(&before, &task_states(&[status(vec![new.clone(), old.clone(), next], 1)])));
        // A task that was starting and now runs: the deployment changed then.
        let mut starting = new.clone();
        starting.state = "starting".into();
        let before = task_states(&[status(vec![starting, old.clone()], 1)]);
        assert!(!unchanged(&before, &task_states(&[status(vec![new, old], 1)])));
    }

    #[test]
    fn converged_when_all_replicas_run() {
        let s = status(vec![task("running", "running", "", T1)], 1);
        assert!(matches!(judge(&[s], 0, &mut Memory::default(), Duration::ZERO, LIMIT), Verdict::Converged));
    }

    #[test]
    fn rejected_fails_fast_quoting_the_error() {
        let s = status(vec![task("rejected", "shutdown", "\"No such image: x:1\"", T1)], 1);
        match judge1(&s, &mut Memory::default()) {
            Verdict::Failed(m) => assert!(m.contains("No such image: x:1"), "{m}"),
            v => panic!("expected failure, got {v:?}"),
        }
    }

    #[test]
    fn old_rejections_do_not_count() {
        let s = status(vec![task("rejected", "shutdown", "gone", T1), task("running", "running", "", T1)], 1);
        let since = crate::time::parse_rfc3339(T1).unwrap() + 60;
        assert!(matches!(judge(&[s], since, &mut Memory::default(), Duration::ZERO, LIMIT), Verdict::Converged));
    }

    #[test]
    fn crash_loop_after_three_failures() {
        let f = |id: &str, n| ended(id, "failed", 1, n);
        let mut seen = Memory::default();
        let two = status(vec![f("a", 1), f("b", 2), task("starting", "running", "", &at(3))], 1);
        assert!(matches!(judge1(&two, &mut seen), Verdict::Waiting(_)));
        assert!(matches!(judge1(&two, &mut seen), Verdict::Waiting(_)), "the same failures twice are two");
        // Swarm pruned a and b; c is the third failure all the same.
        let pruned = status(vec![f("c", 4), task("starting", "running", "", &at(5))], 1);
        assert!(matches!(judge1(&pruned, &mut seen), Verdict::Failed(m) if m.contains("crash loop")));
    }

    #[test]
    fn paused_update_fails() {
        let mut s = status(vec![task("running", "running", "", T1)], 1);
        s.service.update_state = Some("paused".into());
        s.service.update_message = Some("update paused due to failure".into());
        assert!(matches!(judge1(&s, &mut Memory::default()), Verdict::Failed(m) if m.contains("paused")));
    }

    #[test]
    fn a_job_that_completed_with_exit_0_under_on_failure_or_none_is_converged_and_says_completed() {
        for condition in ["on-failure", "none"] {
            let s = with_policy(vec![ended("job", "complete", 0, 1)], condition, 5);
            assert!(matches!(judge1(&s, &mut Memory::default()), Verdict::Converged), "{condition}");
            assert_eq!((s.done, s.done_as), (1, Some("completed")));
            assert_eq!(summary(&[s]), "s_app completed");
            // A job still running is converged as a running task.
            let running = with_policy(vec![task("running", "running", "", T1)], condition, 5);
            assert_eq!(summary(&[running]), "s_app 1/1");
        }
    }

    #[test]
    fn a_job_that_fails_under_restart_condition_none_fails_at_once() {
        let s = with_policy(vec![ended("job", "failed", 1, 1)], "none", 5);
        match judge1(&s, &mut Memory::default()) {
            Verdict::Failed(m) => {
                assert!(m.contains("task: non-zero exit (1) (exit code 1)"), "{m}");
                assert!(m.contains("restart condition none starts no other task"), "{m}");
            }
            v => panic!("expected failure, got {v:?}"),
        }
    }

    #[test]
    fn a_service_rerun_after_exit_0_with_a_long_delay_is_periodic_not_crashing() {
        // Between runs swarm holds the next task at desired state `ready` for the delay.
        let waiting_next = task("ready", "ready", "", &at(40));
        let tasks = vec![
            ended("a", "complete", 0, 1),
            ended("b", "complete", 0, 20),
            ended("c", "complete", 0, 30),
            waiting_next,
        ];
        let s = with_policy(tasks, "any", 60);
        assert!(matches!(judge1(&s, &mut Memory::default()), Verdict::Converged));
        assert_eq!(summary(&[s]), "s_app periodic");
        assert_eq!(ending(&svc("x", 1), &ended("a", "complete", 0, 1)), Some(Ending::Replaced("exited 0".into())));
    }

    #[test]
    fn exiting_0_under_restart_any_with_a_short_delay_is_a_crash_loop() {
        let mut memory = Memory::default();
        let tasks = |n: u32| (0..n).map(|i| ended(&format!("t{i}"), "complete", 0, i * 6)).collect::<Vec<_>>();
        assert!(
            matches!(judge1(&with_policy(tasks(2), "any", 5), &mut memory), Verdict::Waiting(w) if w.contains("2 tasks replaced, last: exited 0"))
        );
        match judge1(&with_policy(tasks(3), "any", 5), &mut memory) {
            Verdict::Failed(m) => assert_eq!(
                m,
                "service s_app: crash loop: 3 tasks ended and were replaced since the deploy began; last: exited 0"
            ),
            v => panic!("expected failure, got {v:?}"),
        }
    }

    #[test]
    fn tasks_stopped_by_a_failing_healthcheck_are_a_crash_loop_quoting_the_health_output_whatever_their_exit() {
        for (state, exit) in [("complete", 0), ("failed", 143)] {
            let mut memory = Memory::default();
            let tasks: Vec<Task> = (0..3).map(|i| unhealthy(ended(&format!("t{i}"), state, exit, i * 16))).collect();
            // Even with a long delay: a task its healthcheck stopped is not a periodic run.
            let s = with_policy(tasks, "any", 60);
            match judge1(&s, &mut memory) {
                Verdict::Failed(m) => assert!(
                    m.ends_with(
                        "unhealthy: healthcheck failed 2 times: wget: server returned error: HTTP/1.1 404 Not Found"
                    ),
                    "{m}"
                ),
                v => panic!("{state}: expected failure, got {v:?}"),
            }
        }
        // Under on-failure swarm starts no other task after exit 0: the service is down at once.
        let s = with_policy(vec![unhealthy(ended("t0", "complete", 0, 1))], "on-failure", 5);
        assert!(
            matches!(judge1(&s, &mut Memory::default()), Verdict::Failed(m) if m.contains("unhealthy: healthcheck failed 2 times") && m.contains("restart condition on-failure starts no other task"))
        );
    }

    #[test]
    fn a_container_that_exits_before_any_probe_failed_is_blamed_on_its_exit_not_its_healthcheck() {
        // Docker marks such a container unhealthy with no failing probe.
        let mut t = ended("t0", "failed", 3, 1);
        t.error = "task: non-zero exit (3)".into();
        t.health = Some(Health { status: "unhealthy".into(), failing_streak: 0, last_output: String::new() });
        assert_eq!(ended_reason(&t), "task: non-zero exit (3) (exit code 3)");
        assert!(failed_healthcheck(&t).is_none());
        let mut u = unhealthy(ended("t1", "failed", 143, 1));
        u.error = "task: non-zero exit (143)".into();
        assert_eq!(
            ended_reason(&u),
            "task: non-zero exit (143) (exit code 143); unhealthy: healthcheck failed 2 times: wget: server returned error: HTTP/1.1 404 Not Found"
        );
    }

    #[test]
    fn max_attempts_below_the_crash_loop_count_fails_when_swarm_gives_up() {
        let mut s = with_policy(vec![ended("a", "failed", 1, 1), ended("b", "failed", 1, 2)], "on-failure", 5);
        s.service.restart.max_attempts = 1;
        assert!(matches!(judge1(&s, &mut Memory::default()), Verdict::Failed(m) if m.contains("max_attempts")));
    }

    #[test]
    fn a_pending_task_quotes_the_scheduler_and_fails_when_the_reason_stands() {
        let reason = "no suitable node (scheduling constraints not satisfied on 1 node)";
        let pending = |why: &str| status(vec![task("pending", "running", why, T1)], 1);
        let mut memory = Memory::default();
        let mut at =
            |s: &ServiceStatus, secs| judge(std::slice::from_ref(s), 0, &mut memory, Duration::from_secs(secs), LIMIT);
        assert!(
            matches!(at(&pending(reason), 0), Verdict::Waiting(w) if w == format!("s_app 0/1 (pending: {reason})"))
        );
        assert!(matches!(at(&pending(reason), 29), Verdict::Waiting(_)));
        // Another reason starts the clock again.
        assert!(matches!(at(&pending("insufficient resources on 1 node"), 31), Verdict::Waiting(_)));
        assert!(matches!(at(&pending(reason), 40), Verdict::Waiting(_)));
        match at(&pending(reason), 70) {
            Verdict::Failed(m) => {
                assert_eq!(
                    m,
                    format!("service s_app: task pending for 30s: {reason} ({})", crate::config::PENDING_TIMEOUT.name)
                )
            }
            v => panic!("expected failure, got {v:?}"),
        }
        // Pending without a reason is the scheduler at work, not stuck.
        let mut memory = Memory::default();
        let quiet = status(vec![task("pending", "running", "", T1)], 1);
        assert!(matches!(
            judge(std::slice::from_ref(&quiet), 0, &mut memory, Duration::from_secs(600), LIMIT),
            Verdict::Waiting(_)
        ));
    }
}
