//! The generic floor: what ccci-assert checks on every deployment, derived from the recipe as it
//! runs, with no configuration. Every service at its desired replicas; no task restarting during
//! a settle window; healthchecks passing; serving HTTP under a status policy; and a warning for
//! images that are not pinned.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use xshell::Shell;

use crate::checks::frontdoor::{self, FrontDoor};
use crate::checks::serving::{self, StatusPolicy};
use crate::error::Result;
use crate::progress::Progress;
use crate::run::state::{Assertion, Outcome, RunState};
use crate::swarm::converge;
use crate::swarm::docker;

/// `CCCI_SETTLE_WINDOW`: how long the deployment is watched for restarting tasks (default 10s).
pub fn settle_window() -> Result<Duration> {
    crate::config::duration(&crate::config::SETTLE_WINDOW)
}

/// What the floor needs besides the run-state, read from the settings before anything runs.
#[derive(Debug, Clone)]
pub struct Floor {
    pub settle: Duration,
    pub serving_timeout: Duration,
    /// The operator's front door (`CCCI_PROXY_URL`), checked when read.
    pub front_door: Option<FrontDoor>,
    pub policy: StatusPolicy,
}

impl Floor {
    /// From the environment; `accept` are the statuses the recipe's settings also accept.
    pub fn from_env(accept: &[u16]) -> Result<Floor> {
        Ok(Floor {
            settle: settle_window()?,
            serving_timeout: crate::config::serving_timeout()?,
            front_door: FrontDoor::from_env()?,
            policy: StatusPolicy { also_accept: accept.to_vec() },
        })
    }
}

/// The generic assertions, in order, on the deployment as it is now.
/// The settle watch is not among them: it runs beside them and the overlay's and recipe's checks
/// ([`Settle`]); its assertion goes second, after the replicas.
pub fn assertions(floor: &Floor, state: &RunState, sh: &Shell, progress: &Progress) -> Vec<Assertion> {
    let mut out = vec![replicas(state, sh)];
    out.push(healthy(state, sh));
    out.extend(serving_checks(floor, state, sh, progress));
    out.push(image_pins(state));
    out
}

fn assertion(name: &str, result: Outcome, detail: impl Into<String>, start: Instant) -> Assertion {
    Assertion {
        name: name.into(),
        result,
        detail: detail.into(),
        duration_ms: start.elapsed().as_millis() as u64,
        output: None,
    }
}

/// Every service of the stack runs its desired replicas.
pub fn replicas(state: &RunState, sh: &Shell) -> Assertion {
    let start = Instant::now();
    let (result, detail) = match converge::look(sh, &state.stack) {
        Err(e) => (Outcome::Error, e.to_string()),
        Ok(s) if s.is_empty() => (Outcome::Fail, "no service of the stack is on the swarm".to_string()),
        Ok(s) => {
            // A one-shot job that completed, or a periodic one between runs, is where it should be.
            if s.iter().all(converge::ServiceStatus::satisfied) {
                (Outcome::Pass, converge::summary(&s))
            } else {
                (Outcome::Fail, format!("below desired replicas: {}", converge::summary(&s)))
            }
        }
    };
    assertion("services at desired replicas", result, detail, start)
}

/// How often the settle watch looks at the swarm while its window is open.
pub const SETTLE_POLL: Duration = Duration::from_millis(500);

/// No task that was running when the deployment last changed stops, and no new task starts, for
/// `window` counted from that moment: a service that converged and then crash-loops (or is
/// restarted by an unhealthy check) fails.
///
/// The moment is the run-state's `deployed.settle_from`: the first look of the last deploy's,
/// redeploy's or restore's convergence wait that saw the tasks as they were when it converged
/// (every look after it, at least every quarter second, saw them unchanged), with the tasks then.
/// Quiet time that already passed counts: an assert that starts after the window closed looks
/// once, and passes only if no task changed since; one that starts inside it watches until the
/// window closes, then looks once more.
/// Without a recorded baseline the window counts from the first look. Runs beside the op's other
/// checks (see [`Settle`]), so its waiting overlaps theirs.
pub fn settled(state: &RunState, sh: &Shell, window: Duration) -> Assertion {
    let start = Instant::now();
    let name = "no restarts while settling";
    if window.is_zero() {
        return assertion(name, Outcome::Skip, format!("{} is 0", crate::config::SETTLE_WINDOW.name), start);
    }
    let recorded = state.deployed.as_ref().and_then(|d| d.settle_from.clone());
    let (base, since_convergence) = match recorded {
        Some(b) => (b, true),
        None => match converge::look(sh, &state.stack) {
            Ok(s) => (converge::baseline(&s, crate::time::unix_now_ms()), false),
            Err(e) => return assertion(name, Outcome::Error, e.to_string(), start),
        },
    };
    let running: BTreeSet<String> = base.running.iter().cloned().collect();
    let known: BTreeSet<String> = base.known.iter().cloned().collect();
    let closes = base.at_ms.saturating_add(window.as_millis() as u64);
    let mut restarts: BTreeMap<String, String> = BTreeMap::new();
    let last = loop {
        let began = crate::time::unix_now_ms();
        let now = match converge::look(sh, &state.stack) {
            Ok(s) => s,
            Err(e) => return assertion(name, Outcome::Error, e.to_string(), start),
        };
        note_restarts(&running, &known, &now, &mut restarts);
        // A look begun after the window closed covers the window whole.
        if began >= closes || !restarts.is_empty() {
            break now;
        }
        let left = closes.saturating_sub(crate::time::unix_now_ms());
        std::thread::sleep(SETTLE_POLL.min(Duration::from_millis(left)));
    };
    let watched = Duration::from_millis(crate::time::unix_now_ms().saturating_sub(base.at_ms)).as_secs_f64();
    let since = if since_convergence { "since the deployment last changed" } else { "while watched" };
    if restarts.is_empty() {
        assertion(
            name,
            Outcome::Pass,
            format!("no task restarted in {watched:.1}s {since}: {}", converge::summary(&last)),
            start,
        )
    } else {
        let list: Vec<String> = restarts.into_values().collect();
        assertion(
            name,
            Outcome::Fail,
            format!(
                "restarted during the {}s settle window ({watched:.1}s {since}): {}",
                window.as_secs_f64(),
                list.join("; ")
            ),
            start,
        )
    }
}

/// The settle watch of one op, running on its own thread while the op's other checks run.
pub struct Settle {
    handle: Option<std::thread::JoinHandle<Assertion>>,
}

impl Settle {
    /// Starts watching `state`'s deployment for `window` ([`settled`]) on a thread of its own.
    pub fn start(state: &RunState, window: Duration, progress: &Progress) -> Settle {
        if !window.is_zero() {
            progress
                .log(format!("watching for restarts for {}s since the deployment last changed", window.as_secs_f64()));
        }
        let state = state.clone();
        let handle = std::thread::spawn(move || match Shell::new() {
            Ok(sh) => settled(&state, &sh, window),
            Err(e) => assertion("no restarts while settling", Outcome::Error, e.to_string(), Instant::now()),
        });
        Settle { handle: Some(handle) }
    }

    /// Waits for the watch to end and returns its assertion.
    pub fn finish(mut self) -> Assertion {
        let handle = self.handle.take().expect("finished once");
        handle.join().unwrap_or_else(|_| {
            assertion("no restarts while settling", Outcome::Error, "the settle watch panicked", Instant::now())
        })
    }
}

/// Records, by task id, every task that was running at the start and no longer is, and every
/// task that did not exist at the start; except what swarm means as no restart: a one-shot job
/// that completed (exit 0 under restart condition `none`/`on-failure`), and a periodic job's run
/// ending or the next one starting (see [`converge::ending`]).
fn note_restarts(
    running: &BTreeSet<String>,
    known: &BTreeSet<String>,
    now: &[converge::ServiceStatus],
    restarts: &mut BTreeMap<String, String>,
) {
    for s in now {
        let periodic = s.done_as == Some("periodic")
            || s.tasks.iter().any(|t| converge::ending(&s.service, t) == Some(converge::Ending::Done("periodic")));
        for t in &s.tasks {
            let short = &t.id[..12.min(t.id.len())];
            let done = matches!(converge::ending(&s.service, t), Some(converge::Ending::Done(_)));
            if running.contains(&t.id) && t.state != "running" {
                if done {
                    continue;
                }
                let why = task_reason(t);
                restarts
                    .entry(t.id.clone())
                    .or_insert(format!("{}: task {short} went {}{why}", s.service.name, t.state));
            } else if !known.contains(&t.id) {
                if periodic {
                    continue; // the next run of a periodic job
                }
                restarts.entry(t.id.clone()).or_insert(format!("{}: new task {short} started", s.service.name));
            }
        }
    }
}

fn task_reason(t: &docker::Task) -> String {
    if converge::failed_healthcheck(t).is_some() {
        return format!(" ({})", converge::ended_reason(t));
    }
    let mut r = if t.error.is_empty() { t.message.clone() } else { t.error.trim_matches('"').to_string() };
    if let Some(code) = t.exit_code.filter(|c| *c != 0) {
        r.push_str(&format!(" (exit code {code})"));
    }
    if r.is_empty() { r } else { format!(" ({r})") }
}

/// Every running container with a healthcheck reports `healthy`.
pub fn healthy(state: &RunState, sh: &Shell) -> Assertion {
    let start = Instant::now();
    let name = "healthchecks passing";
    let containers = match docker::container_health(sh, &state.stack) {
        Ok(c) => c,
        Err(e) => return assertion(name, Outcome::Error, e.to_string(), start),
    };
    let prefix = state.stack.prefix();
    let short = |s: &str| s.strip_prefix(&prefix).unwrap_or(s).to_string();
    let mut ok: BTreeSet<String> = BTreeSet::new();
    let mut without: BTreeSet<String> = BTreeSet::new();
    let mut bad = vec![];
    for c in &containers {
        match c.status.as_deref() {
            None => {
                without.insert(short(&c.service));
            }
            Some("healthy") => {
                ok.insert(short(&c.service));
            }
            Some(status) => {
                let out = crate::process::tail(&c.last_output, 2);
                let out = if out.is_empty() { String::new() } else { format!(": {out}") };
                bad.push(format!("{} container {} is {status}{out}", short(&c.service), &c.id[..12.min(c.id.len())]));
            }
        }
    }
    let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
    if !bad.is_empty() {
        assertion(name, Outcome::Fail, bad.join("; "), start)
    } else if ok.is_empty() {
        let detail = if containers.is_empty() {
            "no running container of the stack on this node".to_string()
        } else {
            format!("no healthcheck declared ({})", join(&without))
        };
        assertion(name, Outcome::Skip, detail, start)
    } else if without.is_empty() {
        assertion(name, Outcome::Pass, format!("healthy: {}", join(&ok)), start)
    } else {
        assertion(name, Outcome::Pass, format!("healthy: {}; no healthcheck: {}", join(&ok), join(&without)), start)
    }
}

/// Whether the app serves HTTP, asked the ways a visitor reaches it (`serving::plan`): through
/// each traefik router that routes the run's domain at the task addresses, on the published
/// ports, and through the front door when one is configured. Every assertion is named
/// `serving…` (or is the routing verdict); when nothing could be asked, one `serving` skip says
/// why.
pub fn serving_checks(floor: &Floor, state: &RunState, sh: &Shell, progress: &Progress) -> Vec<Assertion> {
    // Host-mode ports belong to tasks, and tasks change after the deployment was recorded (an
    // upgrade's old task still held its port then; a restart gets a new one): ask the ports
    // published now. When docker cannot say, the recorded ones are asked and fail on their own.
    let live;
    let state = match converge::live_ports(sh, &state.stack) {
        Ok(ports) => {
            let mut s = state.clone();
            if let Some(d) = s.deployed.as_mut() {
                for (name, svc) in d.services.iter_mut() {
                    if let Some(p) = ports.get(name) {
                        svc.ports = p.clone();
                    }
                }
            }
            live = s;
            &live
        }
        Err(e) => {
            progress.log(format!("could not list the ports published now ({e}); asking the recorded ones"));
            state
        }
    };
    let plan = serving::plan(state);
    let mut out = plan.findings;
    for a in &out {
        progress.log(format!("{}: {}: {}", a.name, a.result.as_str(), a.detail));
    }
    for ask in &plan.asks {
        progress.log(format!("checking {}", ask.name()));
        let a = serving::ask_tasks(sh, state, ask, &floor.policy, floor.serving_timeout);
        progress.log(format!("{}: {}", a.result.as_str(), a.detail));
        out.push(a);
    }
    if let Some(door) = &floor.front_door {
        progress.log(format!("checking {} through the front door {}", state.domain, door.url));
        let a = frontdoor::check(door, &state.domain, &floor.policy, floor.serving_timeout);
        progress.log(format!("{}: {}", a.result.as_str(), a.detail));
        out.push(a);
    }
    if out.is_empty() {
        let why = plan.nothing.unwrap_or_else(|| "nothing to ask".into());
        out.push(assertion(
            "serving",
            Outcome::Skip,
            format!("nothing asked: {why}, and {} is not set", crate::config::PROXY_URL.name),
            Instant::now(),
        ));
    }
    out
}

/// Images run by tag `latest`, or with no tag (which means `latest`), move under the recipe:
/// a warning, recorded as a `pass` whose detail starts with `warning:`.
pub fn image_pins(state: &RunState) -> Assertion {
    let start = Instant::now();
    let name = "images pinned";
    let Some(deployed) = &state.deployed else {
        return assertion(name, Outcome::Skip, "the run-state records no deployment", start);
    };
    let mut floating = vec![];
    let mut pinned = vec![];
    for (svc, s) in &deployed.services {
        match Pin::of(&s.image) {
            Pin::Tag("latest") => floating.push(format!("{svc} runs {} (tag `latest`)", strip_digest(&s.image))),
            Pin::None => floating.push(format!("{svc} runs {} (no tag: `latest`)", s.image)),
            _ => pinned.push(format!("{svc} {}", strip_digest(&s.image))),
        }
    }
    if floating.is_empty() {
        assertion(name, Outcome::Pass, format!("every image is pinned: {}", pinned.join(", ")), start)
    } else {
        assertion(name, Outcome::Pass, format!("warning: not pinned: {}", floating.join("; ")), start)
    }
}

fn strip_digest(image: &str) -> &str {
    image.split('@').next().unwrap_or(image)
}

/// How an image reference is pinned. Docker appends the resolved digest to a tag it resolved
/// (`nginx:latest@sha256:…`), so a tag, when there is one, is what the recipe asked for.
#[derive(Debug, PartialEq, Eq)]
enum Pin<'a> {
    Tag(&'a str),
    Digest,
    None,
}

impl Pin<'_> {
    fn of(image: &str) -> Pin<'_> {
        let (name, digest) = match image.split_once('@') {
            Some((n, _)) => (n, true),
            None => (image, false),
        };
        // A registry port (`registry:5000/app`) is not a tag: only a ':' after the last '/' is.
        let last = &name[name.rfind('/').map_or(0, |i| i + 1)..];
        match last.split_once(':') {
            Some((_, tag)) if !tag.is_empty() => Pin::Tag(tag),
            _ if digest => Pin::Digest,
            _ => Pin::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::state::{Deployed, DeployedService};

    fn task(id: &str, state: &str, err: &str, exit: Option<i64>) -> docker::Task {
        docker::Task {
            id: id.into(),
            service_id: "svc".into(),
            slot: Some(1),
            desired_state: if state == "running" { "running" } else { "shutdown" }.into(),
            state: state.into(),
            error: err.into(),
            message: String::new(),
            created_at: String::new(),
            exit_code: exit,
            ports: vec![],
            bindings: vec![],
            container_id: None,
            addresses: vec![],
            health: None,
        }
    }

    fn status(tasks: Vec<docker::Task>) -> converge::ServiceStatus {
        with_restart(tasks, "any", 5)
    }

    fn with_restart(tasks: Vec<docker::Task>, condition: &str, delay_s: u64) -> converge::ServiceStatus {
        converge::status_of(
            docker::Service {
                id: "svc".into(),
                name: "s_app".into(),
                image: "x".into(),
                labels: Default::default(),
                replicas: Some(1),
                secrets: vec![],
                configs: vec![],
                created_at: String::new(),
                update_state: None,
                update_message: None,
                stop_grace: docker::DEFAULT_STOP_GRACE,
                ingress_ports: vec![],
                restart: docker::RestartPolicy {
                    condition: condition.into(),
                    delay: Duration::from_secs(delay_s),
                    max_attempts: 0,
                },
            },
            tasks,
        )
    }

    #[test]
    fn a_one_shot_job_completing_or_a_periodic_one_rerunning_while_settling_is_no_restart() {
        let running: BTreeSet<String> = ["job1".to_string()].into();
        let known = running.clone();
        for condition in ["on-failure", "none"] {
            let mut seen = BTreeMap::new();
            note_restarts(
                &running,
                &known,
                &[with_restart(vec![task("job1", "complete", "", Some(0))], condition, 5)],
                &mut seen,
            );
            assert!(seen.is_empty(), "{condition}: {seen:?}");
        }
        let mut seen = BTreeMap::new();
        let next = docker::Task { desired_state: "ready".into(), ..task("job2", "ready", "", None) };
        note_restarts(
            &running,
            &known,
            &[with_restart(vec![task("job1", "complete", "", Some(0)), next.clone()], "any", 60)],
            &mut seen,
        );
        assert!(seen.is_empty(), "periodic: {seen:?}");
        // The same under swarm's default delay is a server that quit and was restarted.
        note_restarts(
            &running,
            &known,
            &[with_restart(vec![task("job1", "complete", "", Some(0)), next], "any", 5)],
            &mut seen,
        );
        assert_eq!(seen.len(), 2, "{seen:?}");
        // A job that failed is a restart whatever its policy.
        let mut seen = BTreeMap::new();
        note_restarts(
            &running,
            &known,
            &[with_restart(vec![task("job1", "failed", "task: non-zero exit (1)", Some(1))], "on-failure", 5)],
            &mut seen,
        );
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn a_task_that_stops_or_appears_while_settling_is_a_restart() {
        let running: BTreeSet<String> = ["aaaaaaaaaaaa1".to_string()].into();
        let known: BTreeSet<String> = ["aaaaaaaaaaaa1".to_string(), "old".to_string()].into();
        let mut seen = BTreeMap::new();
        note_restarts(&running, &known, &[status(vec![task("aaaaaaaaaaaa1", "running", "", None)])], &mut seen);
        assert!(seen.is_empty(), "still running: no restart");
        let after = status(vec![
            task("aaaaaaaaaaaa1", "failed", "task: non-zero exit (3)", Some(3)),
            task("bbbbbbbbbbbb2", "running", "", None),
            task("old", "shutdown", "", None),
        ]);
        note_restarts(&running, &known, std::slice::from_ref(&after), &mut seen);
        note_restarts(&running, &known, &[after], &mut seen);
        let found: Vec<&String> = seen.values().collect();
        assert_eq!(
            found,
            [
                "s_app: task aaaaaaaaaaaa went failed (task: non-zero exit (3) (exit code 3))",
                "s_app: new task bbbbbbbbbbbb started"
            ]
        );
    }

    #[test]
    fn pins_are_read_from_the_reference() {
        assert_eq!(Pin::of("nginx:1.25"), Pin::Tag("1.25"));
        assert_eq!(Pin::of("nginx"), Pin::None);
        assert_eq!(Pin::of("nginx:latest@sha256:abc"), Pin::Tag("latest"));
        assert_eq!(Pin::of("nginx@sha256:abc"), Pin::Digest);
        assert_eq!(Pin::of("registry.example:5000/team/app"), Pin::None);
        assert_eq!(Pin::of("registry.example:5000/team/app:2.1"), Pin::Tag("2.1"));
        assert_eq!(Pin::of("ghcr.io/x/y:latest"), Pin::Tag("latest"));
    }

    fn with_images(images: &[(&str, &str)]) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deployed = Some(Deployed {
            observed_at: "2026-11-21T22:34:08Z".into(),
            settle_from: None,
            services: images
                .iter()
                .map(|(n, i)| (n.to_string(), DeployedService { image: i.to_string(), ..Default::default() }))
                .collect(),
        });
        s
    }

    #[test]
    fn unpinned_images_are_a_warning_not_a_failure() {
        let a = image_pins(&with_images(&[("app", "ccci-hello:2"), ("db", "postgres:16@sha256:0f")]));
        assert_eq!(a.result, Outcome::Pass);
        assert_eq!(a.detail, "every image is pinned: app ccci-hello:2, db postgres:16");
        let a =
            image_pins(&with_images(&[("app", "nginx:latest@sha256:0f"), ("cache", "redis"), ("db", "postgres:16")]));
        assert_eq!(a.result, Outcome::Pass);
        assert_eq!(
            a.detail,
            "warning: not pinned: app runs nginx:latest (tag `latest`); cache runs redis (no tag: `latest`)"
        );
        let mut none = crate::run::state::tests::sample();
        none.deployed = None;
        assert_eq!(image_pins(&none).result, Outcome::Skip);
    }
}
