//! The Docker CLI, one function per thing ccci asks of the swarm.
//!
//! Everything is found by the stack label `com.docker.stack.namespace=<stack>` and, where abra
//! creates objects without that label (secrets), by the `<stack>_` name prefix.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use xshell::{Shell, cmd};

use crate::error::{Error, Kind, Result};
use crate::process::{ChildError, capture, inherit, run_with_timeout};
use crate::run::naming::{ObjectKind, StackName};
use crate::run::state::AddressFamily;

pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Set on every object ccci itself creates (secrets of the stack driver), naming the run.
pub const RUN_LABEL: &str = "ccci.run";

/// docker with a cleared environment and only what the docker CLI needs of ccci's
/// ([`inherit::DOCKER`]).
pub(crate) fn docker(sh: &Shell) -> xshell::Cmd<'_> {
    crate::process::cleared(cmd!(sh, "docker"), inherit::DOCKER)
}

/// Fails with an environment error unless this node is an active swarm manager.
pub fn check_swarm(sh: &Shell) -> Result<()> {
    let out = capture(
        docker(sh).args(["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"]),
        "asking docker for the swarm state",
        Kind::Environment,
    )?;
    if out.stdout.trim() != "active true" {
        return Err(Error::env(format!(
            "this docker node is not an active swarm manager (swarm state: {}); run scripts/setup-swarm",
            out.stdout.trim()
        )));
    }
    Ok(())
}

/// `docker stack deploy --resolve-image never` of `files` (relative to `dir`), interpolated with
/// exactly `env`. Returns what the CLI printed on stderr (warnings such as ignored options).
pub fn stack_deploy(
    sh: &Shell,
    dir: &Path,
    files: &[String],
    stack: &StackName,
    env: &[(String, String)],
) -> Result<String> {
    let _dir = sh.push_dir(dir);
    let mut c = docker(sh).args(["stack", "deploy", "--resolve-image", "never", "--detach=true"]);
    for f in files {
        c = c.arg("--compose-file").arg(f);
    }
    c = c.arg(stack.as_str());
    for (k, v) in env {
        c = c.env(k, v);
    }
    // A compose file the engine refuses is the recipe's failure, not the environment's.
    let out = capture(c, &format!("docker stack deploy {stack}"), Kind::OpFailed)?;
    Ok(out.stderr)
}

/// How long `docker stack config` may take: it only reads files, so a hang means a compose file
/// reads from something that never ends.
const STACK_CONFIG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Fails with an environment error unless the docker client has `docker stack config` (Docker
/// CLI 23 or later), which ccci needs to read compose files the way Docker does.
pub fn check_stack_config(sh: &Shell) -> Result<()> {
    let probe = docker(sh).args(["stack", "config", "--compose-file", "-"]).stdin("version: \"3.8\"\nservices: {}\n");
    capture(probe, "docker stack config", Kind::Environment).map(|_| ()).map_err(|e| {
        Error::env(format!(
            "the docker client cannot print a compose file as it would deploy it (`docker stack config`, Docker CLI 23 or later): {}",
            e.message()
        ))
    })
}

/// `docker stack config` of `files` (relative to `dir`), with exactly the environment
/// `docker stack deploy` gets ([`inherit::DOCKER`] plus `env`): the compose Docker would deploy,
/// merged, interpolated and normalised (long volume syntax, absolute paths), as YAML text.
///
/// Errors: a compose Docker refuses is the recipe's failure (`OpFailed`), quoting Docker. Docker
/// reads `env_file`s while loading, and its message may quote such a file: when the message names
/// a path outside `checkout`, it is withheld and only the path is given. Killed after 60 s.
pub fn stack_config(dir: &Path, files: &[String], env: &[(String, String)], checkout: &Path) -> Result<String> {
    let mut cmd = command();
    cmd.current_dir(dir).envs(env.iter().map(|(k, v)| (k, v)));
    cmd.args(["stack", "config"]);
    for f in files {
        cmd.arg("--compose-file").arg(f);
    }
    let finished = match run_with_timeout(&mut cmd, STACK_CONFIG_TIMEOUT, std::time::Duration::from_millis(20)) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(Error::failed(format!(
                "docker stack config did not finish within {} s: does a compose file read from a device or a pipe?",
                STACK_CONFIG_TIMEOUT.as_secs()
            )));
        }
        Err(ChildError::Spawn(e)) => return Err(Error::env(format!("running docker stack config: {e}"))),
        Err(ChildError::Wait(e)) => return Err(Error::env(format!("waiting for docker stack config: {e}"))),
    };
    let stdout = String::from_utf8_lossy(&finished.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&finished.stderr).into_owned();
    if finished.status.success() {
        return Ok(stdout);
    }
    let said = crate::process::tail(&stderr, 6);
    Err(Error::failed(match foreign_path(&said, checkout) {
        Some(path) => format!(
            "docker stack config could not load the compose files: reading {path}, outside the recipe checkout, failed (Docker's message is withheld: it may quote that file)"
        ),
        None => format!("docker stack config could not load the compose files: {said}"),
    }))
}

/// The first absolute path named in `message` that does not resolve inside `checkout`.
fn foreign_path(message: &str, checkout: &Path) -> Option<String> {
    let roots: Vec<std::path::PathBuf> =
        [checkout.canonicalize().ok(), Some(checkout.to_path_buf())].into_iter().flatten().collect();
    message
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"' | '\'' | ','))
        .map(|w| w.trim_end_matches([':', '.', ';']))
        .filter(|w| w.starts_with('/'))
        .find(|w| {
            let p = Path::new(w);
            let real = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
            !roots.iter().any(|r| real.starts_with(r) && !w.contains("/../"))
        })
        .map(String::from)
}

/// A swarm service of the stack, as inspected.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// None for global services.
    pub replicas: Option<u64>,
    pub secrets: Vec<String>,
    pub configs: Vec<String>,
    pub created_at: String,
    pub update_state: Option<String>,
    pub update_message: Option<String>,
    /// (published, target) ports the service publishes in ingress mode (through the routing mesh).
    pub ingress_ports: Vec<(u16, u16)>,
    /// `deploy.restart_policy` as swarm applies it.
    pub restart: RestartPolicy,
    /// `stop_grace_period`: how long swarm waits after the stop signal before it kills a task's
    /// container ([`DEFAULT_STOP_GRACE`] when the spec says nothing).
    pub stop_grace: std::time::Duration,
}

/// Swarm's stop grace period when a service does not set one (compose `stop_grace_period`).
pub const DEFAULT_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What swarm does when a task of a service ends (`Spec.TaskTemplate.RestartPolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartPolicy {
    /// `any` (swarm's default), `on-failure` or `none`.
    pub condition: String,
    /// How long swarm waits before it starts the next task (default 5 s).
    pub delay: std::time::Duration,
    /// 0: no limit.
    pub max_attempts: u64,
}

impl Default for RestartPolicy {
    /// Swarm's defaults: restart on any end, after 5 s, without limit.
    fn default() -> Self {
        RestartPolicy { condition: "any".into(), delay: std::time::Duration::from_secs(5), max_attempts: 0 }
    }
}

fn parse_restart(v: &Value) -> RestartPolicy {
    let d = RestartPolicy::default();
    // Job services (`replicated-job`, `global-job`) run each task to completion, never again.
    let job = v["Mode"].get("ReplicatedJob").is_some() || v["Mode"].get("GlobalJob").is_some();
    let p = &v["TaskTemplate"]["RestartPolicy"];
    RestartPolicy {
        condition: if job {
            "none".into()
        } else {
            p["Condition"].as_str().filter(|c| !c.is_empty()).unwrap_or(&d.condition).to_string()
        },
        delay: p["Delay"].as_u64().map(std::time::Duration::from_nanos).unwrap_or(d.delay),
        max_attempts: p["MaxAttempts"].as_u64().unwrap_or(0),
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

fn labels_at(v: &Value, path: &[&str]) -> BTreeMap<String, String> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
        .unwrap_or_default()
}

fn inspect(sh: &Shell, kind: &str, ids: &[String]) -> Result<Vec<Value>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    // Tasks have no `docker task` command: plain `docker inspect` knows them by id.
    let cmd = if kind == "task" {
        docker(sh).args(["inspect", "--type", "task"])
    } else {
        docker(sh).args([kind, "inspect"])
    };
    let out = capture(cmd.args(ids), &format!("docker {kind} inspect"), Kind::Environment);
    let out = match out {
        Ok(o) => o,
        // An object removed between the listing and the inspect: inspect the survivors one by one.
        Err(_) if ids.len() > 1 => {
            let mut all = vec![];
            for id in ids {
                all.extend(inspect(sh, kind, std::slice::from_ref(id)).unwrap_or_default());
            }
            return Ok(all);
        }
        Err(e) => return Err(e),
    };
    serde_json::from_str(&out.stdout).map_err(|e| Error::env(format!("parsing docker {kind} inspect output: {e}")))
}

fn list_ids(sh: &Shell, args: &[&str], what: &str) -> Result<Vec<String>> {
    let out = capture(docker(sh).args(args), what, Kind::Environment)?;
    Ok(out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect())
}

pub fn services(sh: &Shell, stack: &StackName) -> Result<Vec<Service>> {
    let filter = format!("label={STACK_LABEL}={stack}");
    let ids = list_ids(sh, &["service", "ls", "-q", "--filter", &filter], "listing services")?;
    Ok(inspect(sh, "service", &ids)?.iter().map(parse_service).collect())
}

/// The service named exactly `name` (none when it is gone).
pub fn services_named(sh: &Shell, name: &str) -> Result<Vec<Service>> {
    let ids = list_ids(sh, &["service", "ls", "-q", "--filter", &format!("name={name}")], "listing services")?;
    Ok(inspect(sh, "service", &ids)?.iter().map(parse_service).filter(|s| s.name == name).collect())
}

fn parse_service(v: &Value) -> Service {
    let spec = &v["Spec"];
    let refs = |key: &str| -> Vec<String> {
        spec["TaskTemplate"]["ContainerSpec"][key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get(format!("{}Name", &key[..key.len() - 1])).and_then(Value::as_str))
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    Service {
        id: v["ID"].as_str().unwrap_or_default().to_string(),
        name: spec["Name"].as_str().unwrap_or_default().to_string(),
        image: str_at(spec, &["TaskTemplate", "ContainerSpec", "Image"]).unwrap_or_default().to_string(),
        labels: labels_at(spec, &["Labels"]),
        replicas: spec["Mode"]["Replicated"]["Replicas"]
            .as_u64()
            .or_else(|| spec["Mode"]["ReplicatedJob"]["TotalCompletions"].as_u64()),
        secrets: refs("Secrets"),
        configs: refs("Configs"),
        created_at: v["CreatedAt"].as_str().unwrap_or_default().to_string(),
        update_state: str_at(v, &["UpdateStatus", "State"]).map(String::from),
        update_message: str_at(v, &["UpdateStatus", "Message"]).map(String::from),
        ingress_ports: ingress_ports(v),
        restart: parse_restart(spec),
        stop_grace: spec["TaskTemplate"]["ContainerSpec"]["StopGracePeriod"]
            .as_u64()
            .map(std::time::Duration::from_nanos)
            .unwrap_or(DEFAULT_STOP_GRACE),
    }
}

/// The ports a service publishes in ingress mode, from its spec (`Endpoint.Spec.Ports`, where
/// `PublishMode` defaults to `ingress`) or, when docker filled it in, `Endpoint.Ports`.
fn ingress_ports(v: &Value) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = [&v["Endpoint"]["Ports"], &v["Spec"]["EndpointSpec"]["Ports"]]
        .iter()
        .filter_map(|p| p.as_array())
        .flatten()
        .filter(|p| p["PublishMode"].as_str().unwrap_or("ingress") == "ingress")
        .filter_map(|p| Some((p["PublishedPort"].as_u64()? as u16, p["TargetPort"].as_u64()? as u16)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A swarm task of the stack.
#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub service_id: String,
    pub slot: Option<u64>,
    pub desired_state: String,
    pub state: String,
    pub error: String,
    pub message: String,
    pub created_at: String,
    pub exit_code: Option<i64>,
    /// (published, target) host-mode ports of this task.
    pub ports: Vec<(u16, u16)>,
    /// (target, family, published) of each host-mode port as the task's container binds it
    /// (`.NetworkSettings.Ports`), for a running task whose container is on this node; swarm's
    /// task status lists a port once per address family, possibly under two numbers, without
    /// saying which is which.
    pub bindings: Vec<(u16, AddressFamily, u16)>,
    /// The task's container, once it has one.
    pub container_id: Option<String>,
    /// (network name, address without its prefix length) of each network the task is attached to.
    pub addresses: Vec<(String, String)>,
    /// The healthcheck state of the task's container, when the task is running or ended, the
    /// container is on this node and it has a healthcheck.
    pub health: Option<Health>,
}

/// A container's healthcheck state (`docker inspect` `.State.Health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Probes failed in a row.
    pub failing_streak: u64,
    /// What the last probe printed, trimmed.
    pub last_output: String,
}

/// Task states after which a task never runs again (the CLI's order: complete < shutdown <
/// failed < rejected; `orphaned` and `remove` are swarmkit's).
pub fn is_ended(state: &str) -> bool {
    matches!(state, "complete" | "shutdown" | "failed" | "rejected" | "orphaned" | "remove")
}

/// The tasks of `services` (as just listed by [`services`]).
pub fn tasks(sh: &Shell, services: &[Service]) -> Result<Vec<Task>> {
    let mut ids = vec![];
    for s in services {
        match list_ids(sh, &["service", "ps", "-q", "--no-trunc", &s.id], "listing tasks") {
            Ok(t) => ids.extend(t),
            Err(_) => continue, // removed meanwhile
        }
    }
    let mut tasks: Vec<Task> = inspect(sh, "task", &ids)?.iter().map(parse_task).collect();
    // One call for the containers of the tasks that ended or run (those removed meanwhile or on
    // other nodes are skipped): why a task ended is often in its healthcheck log; a running
    // task's health says whether it counts as converged, and its bindings say which host-port
    // number is bound for which address family (the task status does not say).
    let asked: Vec<String> = tasks
        .iter()
        .filter(|t| t.state == "running" || is_ended(&t.state))
        .filter_map(|t| t.container_id.clone())
        .collect();
    if !asked.is_empty() {
        type Seen = (Vec<(u16, AddressFamily, u16)>, Option<Health>);
        let seen: BTreeMap<String, Seen> = inspect(sh, "container", &asked)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                let id = v["Id"].as_str()?.to_string();
                Some((id, (parse_bindings(&v["NetworkSettings"]["Ports"]), parse_health(&v["State"]["Health"]))))
            })
            .collect();
        for t in &mut tasks {
            if let Some((bindings, health)) = t.container_id.as_ref().and_then(|c| seen.get(c)) {
                if t.state == "running" {
                    t.bindings = bindings.clone();
                }
                t.health = health.clone();
            }
        }
    }
    Ok(tasks)
}

/// `.NetworkSettings.Ports` of a container (`{"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort":
/// "32774"}, {"HostIp": "::", "HostPort": "32775"}]}`) as (target, family, published), TCP only,
/// sorted.
pub fn parse_bindings(ports: &Value) -> Vec<(u16, AddressFamily, u16)> {
    let mut out: Vec<(u16, AddressFamily, u16)> = ports
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(key, list)| {
            let target: u16 = key.strip_suffix("/tcp")?.parse().ok()?;
            Some(list.as_array()?.iter().filter_map(move |b| {
                let ip: std::net::IpAddr = b["HostIp"].as_str()?.parse().ok()?;
                let published: u16 = b["HostPort"].as_str()?.parse().ok()?;
                let family = if ip.is_ipv4() { AddressFamily::Ipv4 } else { AddressFamily::Ipv6 };
                Some((target, family, published))
            }))
        })
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    out
}

fn parse_health(h: &Value) -> Option<Health> {
    let last = h["Log"].as_array().and_then(|l| l.last());
    Some(Health {
        status: h["Status"].as_str()?.to_string(),
        failing_streak: h["FailingStreak"].as_u64().unwrap_or(0),
        last_output: last.and_then(|l| l["Output"].as_str()).unwrap_or_default().trim().to_string(),
    })
}

fn parse_task(v: &Value) -> Task {
    let status = &v["Status"];
    let ports = status["PortStatus"]["Ports"]
        .as_array()
        .map(|a| {
            let mut p: Vec<(u16, u16)> = a
                .iter()
                .filter_map(|p| Some((p["PublishedPort"].as_u64()? as u16, p["TargetPort"].as_u64()? as u16)))
                .collect();
            p.sort();
            p.dedup();
            p
        })
        .unwrap_or_default();
    Task {
        id: v["ID"].as_str().unwrap_or_default().to_string(),
        service_id: v["ServiceID"].as_str().unwrap_or_default().to_string(),
        slot: v["Slot"].as_u64(),
        desired_state: v["DesiredState"].as_str().unwrap_or_default().to_string(),
        state: status["State"].as_str().unwrap_or_default().to_string(),
        error: status["Err"].as_str().unwrap_or_default().to_string(),
        message: status["Message"].as_str().unwrap_or_default().to_string(),
        created_at: v["CreatedAt"].as_str().unwrap_or_default().to_string(),
        exit_code: status["ContainerStatus"]["ExitCode"].as_i64(),
        ports,
        bindings: vec![],
        container_id: str_at(status, &["ContainerStatus", "ContainerID"]).filter(|c| !c.is_empty()).map(String::from),
        addresses: v["NetworksAttachments"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| {
                let name = str_at(n, &["Network", "Spec", "Name"])?;
                let addr = n["Addresses"].as_array()?.first()?.as_str()?;
                Some((name.to_string(), addr.split('/').next().unwrap_or(addr).to_string()))
            })
            .collect(),
        health: None,
    }
}

/// Ids of containers (running or not) of the stack.
pub fn containers(sh: &Shell, stack: &StackName) -> Result<Vec<String>> {
    let filter = format!("label={STACK_LABEL}={stack}");
    list_ids(sh, &["ps", "-aq", "--no-trunc", "--filter", &filter], "listing containers")
}

/// A running `docker events` of containers and services, each event of one stack's containers or
/// services one message on [`Events::rx`]. The child is killed when this is dropped. Used to wake a wait
/// as soon as docker reports a change instead of at the next poll.
pub struct Events {
    child: std::process::Child,
    pub rx: std::sync::mpsc::Receiver<()>,
}

impl Events {
    /// Starts `docker events` for `stack`, ending by itself after `at_most` (`--until`: a stage
    /// killed with SIGKILL cannot stop it, and it must not outlive the wait by long); `None` when
    /// docker cannot be started (the caller polls).
    pub fn follow(stack: &StackName, at_most: std::time::Duration) -> Option<Events> {
        let until = crate::time::unix_now().saturating_add(at_most.as_secs() + 5);
        use std::io::BufRead;
        let mut child = command()
            // Service events carry no labels, so the stack is picked out here: its containers by
            // label, its services by name.
            .args(["events", "--until", &until.to_string()])
            .args(["--filter", "type=container", "--filter", "type=service", "--format"])
            .arg(format!(
                "{{{{.Type}}}}\t{{{{.Actor.Attributes.name}}}}\t{{{{index .Actor.Attributes \"{STACK_LABEL}\"}}}}"
            ))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let out = child.stdout.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (name, prefix) = (stack.to_string(), stack.prefix());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut f = line.split('\t');
                let ours = match (f.next(), f.next(), f.next()) {
                    (Some("service"), Some(service), _) => service.starts_with(&prefix),
                    (Some("container"), _, Some(label)) => label.trim() == name,
                    _ => false,
                };
                if ours && tx.send(()).is_err() {
                    break;
                }
            }
        });
        Some(Events { child, rx })
    }

    /// Waits up to `at_most` for an event; true when one came. Events that came meanwhile are
    /// taken with it: one look answers them all.
    pub fn wait(&self, at_most: std::time::Duration) -> bool {
        use std::sync::mpsc::RecvTimeoutError;
        let got = match self.rx.recv_timeout(at_most) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => false,
            // docker events ended (its --until, or docker went away): the caller's pace is kept.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(at_most);
                false
            }
        };
        while self.rx.try_recv().is_ok() {}
        got
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names of the objects of `kind` that belong to the stack: by label, or by the `<stack>_` prefix.
/// One listing per kind (names and stack labels together); services, whose listing cannot show
/// labels, are listed twice (by label, and all of them for the prefix).
pub fn objects(sh: &Shell, kind: ObjectKind, stack: &StackName) -> Result<Vec<String>> {
    let k = kind.as_str();
    let prefix = stack.prefix();
    let mut names = vec![];
    if kind == ObjectKind::Service {
        let filter = format!("label={STACK_LABEL}={stack}");
        names = list_ids(sh, &[k, "ls", "--filter", &filter, "--format", "{{.Name}}"], &format!("listing {k}s"))?;
        let all = list_ids(sh, &[k, "ls", "--format", "{{.Name}}"], &format!("listing {k}s"))?;
        names.extend(all.into_iter().filter(|n| n.starts_with(&prefix)));
    } else {
        let format = format!("{{{{.Name}}}}\t{{{{.Label \"{STACK_LABEL}\"}}}}");
        for line in list_ids(sh, &[k, "ls", "--format", &format], &format!("listing {k}s"))? {
            let (name, label) = line.split_once('\t').unwrap_or((line.as_str(), ""));
            if name.starts_with(&prefix) || label.trim() == stack.as_str() {
                names.push(name.trim().to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// [`objects`] of every kind at once, each kind listed on its own thread: `(kind, names)` in
/// [`ObjectKind::ALL`] order.
pub fn all_objects(stack: &StackName) -> Result<Vec<(ObjectKind, Vec<String>)>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = ObjectKind::ALL
            .iter()
            .map(|&kind| scope.spawn(move || objects(&Shell::new()?, kind, stack).map(|n| (kind, n))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::env("listing the stack's objects panicked"))))
            .collect()
    })
}

/// Containers of the stack with the service each belongs to: `(id, service name)`.
pub fn containers_by_service(sh: &Shell, stack: &StackName) -> Result<Vec<(String, String)>> {
    let filter = format!("label={STACK_LABEL}={stack}");
    let format = "{{.ID}}\t{{.Label \"com.docker.swarm.service.name\"}}";
    let lines =
        list_ids(sh, &["ps", "-a", "--no-trunc", "--filter", &filter, "--format", format], "listing containers")?;
    Ok(lines
        .into_iter()
        .map(|l| match l.split_once('\t') {
            Some((id, svc)) => (id.to_string(), svc.trim().to_string()),
            None => (l, String::new()),
        })
        .collect())
}

/// An object on this node with what identifies its owner.
#[derive(Debug, Clone)]
pub struct Owned {
    pub kind: &'static str,
    pub name: String,
    /// The `com.docker.stack.namespace` label, if any.
    pub stack_label: Option<String>,
    /// Creation time, Unix seconds (0 when Docker does not say).
    pub created: u64,
}

/// Every service, secret, config, network, volume and container on this node for which `mine`
/// says yes, given its name and stack label: filtered on the listing, inspected only then. The
/// six kinds are listed at once, each on its own thread, and what is ours of a kind is inspected
/// in one call.
pub fn owned_objects(mine: &(dyn Fn(&str, Option<&str>) -> bool + Sync)) -> Result<Vec<Owned>> {
    let kinds = [
        // `service ls` cannot show labels; stack services are always named `<stack>_<service>`.
        ("service", "{{.Name}}"),
        ("secret", "{{.Name}}\t{{.Label \"com.docker.stack.namespace\"}}"),
        ("config", "{{.Name}}\t{{.Label \"com.docker.stack.namespace\"}}"),
        ("network", "{{.Name}}\t{{.Label \"com.docker.stack.namespace\"}}"),
        ("volume", "{{.Name}}\t{{.Label \"com.docker.stack.namespace\"}}"),
        ("container", "{{.Names}}\t{{.Label \"com.docker.stack.namespace\"}}"),
    ];
    // Every kind at once, each on its own thread: one listing, then one inspect of what is ours.
    let per_kind: Vec<Result<Vec<Owned>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = kinds
            .iter()
            .map(|&(kind, list_format)| scope.spawn(move || owned_of_kind(&Shell::new()?, kind, list_format, mine)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(Error::env("listing docker objects panicked"))))
            .collect()
    });
    let mut out = vec![];
    for owned in per_kind {
        out.extend(owned?);
    }
    Ok(out)
}

/// [`owned_objects`] of one kind.
fn owned_of_kind(
    sh: &Shell,
    kind: &'static str,
    list_format: &str,
    mine: &(dyn Fn(&str, Option<&str>) -> bool + Sync),
) -> Result<Vec<Owned>> {
    let args: Vec<&str> = if kind == "container" {
        vec!["ps", "-a", "--no-trunc", "--format", list_format]
    } else {
        vec![kind, "ls", "--format", list_format]
    };
    let mut owned = vec![];
    for line in list_ids(sh, &args, &format!("listing {kind}s"))? {
        let (name, label) = line.split_once('\t').unwrap_or((line.as_str(), ""));
        let label = Some(label).filter(|l| !l.is_empty());
        if mine(name, label) {
            owned.push(Owned { kind, name: name.to_string(), stack_label: label.map(String::from), created: 0 });
        }
    }
    let names: Vec<String> = owned.iter().map(|o| o.name.clone()).collect();
    // Objects removed meanwhile are left out of the inspect and keep 0.
    let created: BTreeMap<String, u64> = inspect(sh, kind, &names)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let name = v["Spec"]["Name"].as_str().or(v["Name"].as_str())?.trim_start_matches('/').to_string();
            let at = v["CreatedAt"].as_str().or(v["Created"].as_str()).and_then(crate::time::parse_rfc3339)?;
            Some((name, at))
        })
        .collect();
    for o in &mut owned {
        o.created = created.get(&o.name).copied().unwrap_or(0);
    }
    Ok(owned)
}

/// Removes one object; "not found" counts as removed. Returns docker's complaint otherwise.
pub fn remove(sh: &Shell, kind: ObjectKind, name: &str) -> Result<()> {
    let k = kind.as_str();
    match capture(docker(sh).args([k, "rm", name]), &format!("docker {k} rm {name}"), Kind::Environment) {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(e.message()) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_not_found(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("not found") || m.contains("no such")
}

/// Creates a secret from `data` on stdin: secret values never appear in argv.
pub fn create_secret(sh: &Shell, name: &str, labels: &[(&str, &str)], data: &[u8]) -> Result<()> {
    let mut c = docker(sh).args(["secret", "create"]);
    for (k, v) in labels {
        c = c.arg("--label").arg(format!("{k}={v}"));
    }
    c = c.arg(name).arg("-").stdin(data).secret();
    capture(c, &format!("docker secret create {name}"), Kind::Environment)?;
    Ok(())
}

/// The local image id (`sha256:…`) of `image`, when the image is present on this node.
pub fn image_id(sh: &Shell, image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let out = capture(
        docker(sh).args(["image", "inspect", "--format", "{{.Id}}", image]),
        "docker image inspect",
        Kind::Environment,
    )
    .ok()?;
    Some(out.stdout.trim().to_string()).filter(|s| !s.is_empty())
}

/// `docker service ps --no-trunc` of one service, as a person would read it.
pub fn service_ps(sh: &Shell, service: &str) -> Result<String> {
    let out = capture(
        docker(sh).args(["service", "ps", "--no-trunc", service]),
        &format!("docker service ps {service}"),
        Kind::Environment,
    )?;
    Ok(out.stdout)
}

/// The last `lines` log lines of a service (stdout and stderr), for diagnostics.
pub fn service_logs(sh: &Shell, service: &str, lines: u32) -> Result<String> {
    let out = capture(
        docker(sh).args(["service", "logs", "--no-trunc", "--timestamps", "--tail", &lines.to_string(), service]),
        &format!("docker service logs {service}"),
        Kind::Environment,
    )?;
    Ok(format!("{}{}", out.stdout, out.stderr))
}

/// A running container of a stack, with its healthcheck's state.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerHealth {
    /// The swarm service it belongs to (`<stack>_app`).
    pub service: String,
    pub id: String,
    /// `starting`, `healthy` or `unhealthy`; None when the container has no healthcheck.
    pub status: Option<String>,
    /// What the last healthcheck probe printed.
    pub last_output: String,
}

/// The running containers of `stack` on this node and their health.
pub fn container_health(sh: &Shell, stack: &StackName) -> Result<Vec<ContainerHealth>> {
    let filter = format!("label={STACK_LABEL}={stack}");
    let ids = list_ids(sh, &["ps", "-q", "--no-trunc", "--filter", &filter], "listing containers")?;
    Ok(inspect(sh, "container", &ids)?
        .iter()
        .map(|v| {
            let health = &v["State"]["Health"];
            let last = health["Log"].as_array().and_then(|l| l.last());
            ContainerHealth {
                service: str_at(v, &["Config", "Labels", "com.docker.swarm.service.name"])
                    .unwrap_or_default()
                    .to_string(),
                id: v["Id"].as_str().unwrap_or_default().to_string(),
                status: health["Status"].as_str().map(String::from),
                last_output: last.and_then(|l| l["Output"].as_str()).unwrap_or_default().trim().to_string(),
            }
        })
        .collect())
}

/// The image of the throwaway containers that ask a deployment over HTTP from inside the swarm's
/// networks and read and write volumes: a static busybox, never pulled. Named in the file
/// `probe-image` at the workspace root, which `scripts/build-images` (tagging it here) and the
/// NixOS module (building and loading it on a host, `nix/probe-image.nix`) read too.
pub const PROBE_IMAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/probe-image")).trim_ascii_end();
/// Set on every probe container; teardown force-removes the stack's probes by it.
pub const PROBE_LABEL: &str = "ccci.probe";

/// What one probe container printed and how it ended.
#[derive(Debug, Clone)]
pub struct Probed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` in a throwaway container of [`PROBE_IMAGE`] named `name`, on `network` (a network
/// name, or `container:<id>` to share a container's network namespace), labelled as the stack's
/// and as a probe. `--rm` removes it when it ends; it never pulls.
pub fn probe(sh: &Shell, stack: &StackName, name: &str, network: &str, argv: &[String]) -> Result<Probed> {
    let c = docker(sh)
        .args(["run", "--rm", "--pull", "never", "--name", name, "--network", network])
        .arg("--label")
        .arg(format!("{STACK_LABEL}={stack}"))
        .arg("--label")
        .arg(format!("{PROBE_LABEL}=1"))
        .arg(PROBE_IMAGE)
        .args(argv);
    let out = c.quiet().ignore_status().output().map_err(|e| Error::env(format!("docker run {PROBE_IMAGE}: {e}")))?;
    Ok(Probed {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Force-removes the stack's probe containers (a probe whose client was killed may outlive it).
/// Returns how many there were.
/// Stops a container of a removed service the way swarm's agent would (its stop signal, then
/// SIGKILL after `grace`) and removes it once it has exited; a container already gone (the agent
/// got there first) is no error. Returns docker's words when something else went wrong.
pub fn stop_and_remove(sh: &Shell, id: &str, grace: std::time::Duration) -> Option<String> {
    // `docker stop` counts whole seconds: rounded up, the app gets at least its grace period.
    let secs = (grace.as_secs() + u64::from(grace.subsec_nanos() > 0)).to_string();
    for args in [vec!["stop", "-t", &secs, id], vec!["rm", id]] {
        let what = format!("docker {}", args.join(" "));
        match capture(docker(sh).args(&args), &what, Kind::Environment) {
            Ok(_) => {}
            // Gone, or being removed by the agent: either way it goes.
            Err(e) if is_not_found(e.message()) || e.message().contains("already in progress") => return None,
            Err(e) => return Some(e.to_string()),
        }
    }
    None
}

pub fn remove_probes(sh: &Shell, stack: &StackName) -> Result<usize> {
    let ids = list_ids(
        sh,
        &[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={STACK_LABEL}={stack}"),
            "--filter",
            &format!("label={PROBE_LABEL}"),
        ],
        "listing probe containers",
    )?;
    for id in &ids {
        match capture(docker(sh).args(["rm", "-f", id]), &format!("docker rm -f {id}"), Kind::Environment) {
            Ok(_) => {}
            Err(e) if is_not_found(e.message()) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(ids.len())
}

/// A `type: volume` mount of a service's task template: the swarm volume `source` (for a stack's
/// own volumes `<stack>_<key>`) mounted at `target` inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: String,
    pub target: String,
}

/// The stack's services with their volume mounts (`Spec.TaskTemplate.ContainerSpec.Mounts` of
/// `Type` `volume`; bind and tmpfs mounts are left out), as `docker service inspect` says.
pub fn services_with_mounts(sh: &Shell, stack: &StackName) -> Result<Vec<(Service, Vec<VolumeMount>)>> {
    let filter = format!("label={STACK_LABEL}={stack}");
    let ids = list_ids(sh, &["service", "ls", "-q", "--filter", &filter], "listing services")?;
    Ok(inspect(sh, "service", &ids)?
        .iter()
        .map(|v| {
            let mounts = v["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["Type"].as_str().unwrap_or("volume") == "volume")
                .filter_map(|m| {
                    Some(VolumeMount {
                        source: m["Source"].as_str().filter(|s| !s.is_empty())?.to_string(),
                        target: m["Target"].as_str()?.to_string(),
                    })
                })
                .collect();
            (parse_service(v), mounts)
        })
        .collect())
}

/// Where the local volume `name` keeps its files on this host (`docker volume inspect`'s
/// `Mountpoint`, e.g. `/var/lib/docker/volumes/<name>/_data`).
pub fn volume_mountpoint(sh: &Shell, name: &str) -> Result<std::path::PathBuf> {
    let out = capture(
        docker(sh).args(["volume", "inspect", "--format", "{{.Mountpoint}}", name]),
        &format!("docker volume inspect {name}"),
        Kind::Environment,
    )?;
    let p = out.stdout.trim();
    if !p.starts_with('/') {
        return Err(Error::env(format!("docker volume inspect {name}: no local mountpoint (got {p:?})")));
    }
    Ok(std::path::PathBuf::from(p))
}

/// The id of a running container of the swarm service `service` (`<stack>_<name>`) on this node.
pub fn running_container(sh: &Shell, service: &str) -> Result<Option<String>> {
    let ids = list_ids(
        sh,
        &[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=com.docker.swarm.service.name={service}"),
            "--filter",
            "status=running",
        ],
        "listing running containers",
    )?;
    Ok(ids.into_iter().next())
}

/// `docker service scale --detach <service>=<replicas>`.
pub fn scale(sh: &Shell, service: &str, replicas: u64) -> Result<()> {
    capture(
        docker(sh).args(["service", "scale", "--detach", &format!("{service}={replicas}")]),
        &format!("docker service scale {service}={replicas}"),
        Kind::Environment,
    )?;
    Ok(())
}

/// The docker command line with a cleared environment and only what the docker CLI needs of
/// ccci's ([`inherit::DOCKER`]), for callers that need a `std::process::Command` (a timeout, raw
/// bytes).
pub fn command() -> std::process::Command {
    crate::process::command("docker", inherit::DOCKER)
}

/// Writes `bytes` to the file `name` at the root of volume `volume`, from a throwaway container
/// of [`PROBE_IMAGE`] (labelled as the stack's probe, no network, never pulled): works for any
/// user who may use docker, unlike writing to the volume's directory on the host.
pub fn write_in_volume(sh: &Shell, stack: &StackName, volume: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let c = volume_probe(sh, stack, volume, false).args(["sh", "-c", "cat > \"/v/$1\"", "sh", name]).stdin(bytes);
    let out = c.quiet().ignore_status().output().map_err(|e| Error::env(format!("docker run {PROBE_IMAGE}: {e}")))?;
    if !out.status.success() {
        return Err(Error::env(format!(
            "writing {name} into volume {volume}: {}",
            crate::process::tail(&String::from_utf8_lossy(&out.stderr), 3)
        )));
    }
    Ok(())
}

/// The bytes of the file `name` at the root of volume `volume` (read like [`write_in_volume`]
/// writes); `None` when there is no such file.
pub fn read_in_volume(sh: &Shell, stack: &StackName, volume: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let c = volume_probe(sh, stack, volume, true).args([
        "sh",
        "-c",
        "test -f \"/v/$1\" || exit 3; cat \"/v/$1\"",
        "sh",
        name,
    ]);
    let out = c.quiet().ignore_status().output().map_err(|e| Error::env(format!("docker run {PROBE_IMAGE}: {e}")))?;
    match out.status.code() {
        Some(0) => Ok(Some(out.stdout)),
        Some(3) => Ok(None),
        _ => Err(Error::env(format!(
            "reading {name} in volume {volume}: {}",
            crate::process::tail(&String::from_utf8_lossy(&out.stderr), 3)
        ))),
    }
}

fn volume_probe<'a>(sh: &'a Shell, stack: &StackName, volume: &str, read_only: bool) -> xshell::Cmd<'a> {
    docker(sh)
        .args(["run", "--rm", "-i", "--pull", "never", "--network", "none"])
        .arg("--label")
        .arg(format!("{STACK_LABEL}={stack}"))
        .arg("--label")
        .arg(format!("{PROBE_LABEL}=1"))
        .arg("--volume")
        .arg(format!("{volume}:/v{}", if read_only { ":ro" } else { "" }))
        .arg(PROBE_IMAGE)
}

/// Runs the busybox `sh -c script` (positional `args`, `stdin` on its standard input) in a
/// throwaway container of [`PROBE_IMAGE`] that mounts volume `volume` read-write at `/v` and,
/// when given, the host directory `staged` read-only at `/s`: labelled as the stack's probe, no
/// network, never pulled, named `<stack>_probe_<pid>_v<n>`. A symlink in the volume resolves inside that container's filesystem,
/// never the host's. Returns the script's exit code and stdout; docker failing to run the
/// container at all (exit 125–127) is an environment error naming the volume.
pub fn volume_script(
    sh: &Shell,
    stack: &StackName,
    volume: &str,
    staged: Option<&std::path::Path>,
    script: &str,
    args: &[&str],
    stdin: &[u8],
) -> Result<(i32, Vec<u8>)> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{}probe_{}_v{n}", stack.prefix(), std::process::id());
    let mut c = docker(sh)
        .args(["run", "--rm", "-i", "--pull", "never", "--network", "none", "--name", &name])
        .arg("--label")
        .arg(format!("{STACK_LABEL}={stack}"))
        .arg("--label")
        .arg(format!("{PROBE_LABEL}=1"))
        .arg("--volume")
        .arg(format!("{volume}:/v"));
    if let Some(dir) = staged {
        c = c.arg("--mount").arg(format!("type=bind,source={},target=/s,readonly", dir.display()));
    }
    let c = c.arg(PROBE_IMAGE).args(["sh", "-c", script, "sh"]).args(args).stdin(stdin);
    let out = c.quiet().ignore_status().output().map_err(|e| Error::env(format!("docker run {PROBE_IMAGE}: {e}")))?;
    match out.status.code() {
        Some(code) if !(125..=127).contains(&code) => Ok((code, out.stdout)),
        _ => Err(Error::env(format!(
            "running a probe container on volume {volume}: {}",
            crate::process::tail(&String::from_utf8_lossy(&out.stderr), 3)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_image_is_one_name_and_tag_from_the_probe_image_file() {
        let (name, tag) = PROBE_IMAGE.rsplit_once(':').expect("name:tag");
        assert!(!name.is_empty() && !tag.is_empty() && !tag.contains('/'));
        assert!(!PROBE_IMAGE.chars().any(char::is_whitespace));
    }

    #[test]
    fn a_containers_bindings_say_which_number_is_which_family() {
        let ports: Value = serde_json::json!({
            "8080/tcp": [{"HostIp": "::", "HostPort": "34197"}, {"HostIp": "0.0.0.0", "HostPort": "34198"}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}],
            "9090/tcp": null
        });
        assert_eq!(
            parse_bindings(&ports),
            vec![(8080, AddressFamily::Ipv4, 34198), (8080, AddressFamily::Ipv6, 34197)]
        );
        assert!(parse_bindings(&Value::Null).is_empty());
    }
}
