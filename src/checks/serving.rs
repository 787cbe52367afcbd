//! "Is it serving?": HTTP requests to the deployment, retried until a deadline.
//!
//! The way a visitor reaches a Co-op Cloud app is traefik: a router whose rule routes the app's
//! domain sends the request to a task of the service, at its address on the `proxy` network, on
//! the port the `loadbalancer.server.port` label names. ccci asks the same way, from a throwaway
//! container on that network ([`ask_tasks`]), with the run's domain as `Host`. Ports published
//! in host mode are asked on this node; ports published in ingress mode at the task addresses
//! (the routing mesh is not asked). The front door itself, when the operator configures one, is
//! asked by `frontdoor`.

use std::time::{Duration, Instant};

use xshell::Shell;

use crate::checks::traefik::{Routing, Upstream};
use crate::run::state::{AddressFamily, Assertion, Outcome, PortMode, RunState};
use crate::swarm::docker;

/// Which HTTP statuses count as serving. Default: 2xx and 3xx.
#[derive(Debug, Clone)]
pub struct StatusPolicy {
    pub also_accept: Vec<u16>,
}

impl StatusPolicy {
    pub fn accepts(&self, code: u16) -> bool {
        (200..400).contains(&code) || self.also_accept.contains(&code)
    }
}

/// One URL to request from this host.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Human name: `app:8080`.
    pub name: String,
    pub url: String,
    /// Host header to send.
    pub host: Option<String>,
    /// Asked in the same attempt when `url` cannot be connected to. A host-mode port is bound
    /// once for IPv4 and once for IPv6, and swarm's task status lists both ports without saying
    /// which is which (`docker port` does: `0.0.0.0:34046` and `[::]:34045`), so a host port is
    /// asked at `127.0.0.1` and then at `[::1]`.
    pub fallback: Option<String>,
}

/// One way to ask the deployment, decided from the run-state by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    /// A port the service publishes in host mode, at `127.0.0.1:<published>` on this node.
    /// `family` is the address family docker bound `published` for, when known.
    HostPort { service: String, published: u16, target: u16, family: Option<AddressFamily> },
    /// The port a traefik router of the service names, at each task's address on the network
    /// the service shares with traefik, the way traefik itself reaches it.
    Router { service: String, router: String, port: u16, network: String },
    /// A port the service publishes in ingress mode, at each task's address (the routing mesh
    /// itself is not asked: it does not work on every host).
    Ingress { service: String, published: u16, target: u16 },
}

impl Ask {
    /// The assertion's name: always `serving …` (reports look for that prefix).
    pub fn name(&self) -> String {
        match self {
            Ask::HostPort { service, target, .. } => format!("serving {service}:{target}"),
            Ask::Router { service, port, .. } => format!("serving {service}:{port} (traefik)"),
            Ask::Ingress { service, published, target } => format!("serving {service}:{target} (ingress {published})"),
        }
    }
}

/// What the run-state says can be asked, and what its labels already decide.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub asks: Vec<Ask>,
    /// Verdicts from the traefik labels alone: whether a router routes the run's domain, and
    /// routers whose target cannot be asked.
    pub findings: Vec<Assertion>,
    /// Why there is nothing to ask, when there is nothing.
    pub nothing: Option<String>,
}

/// The network traefik reaches a service through: its `traefik.docker.network` label, or the
/// `proxy` network every Co-op Cloud recipe joins.
pub fn traefik_network(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("traefik.docker.network"))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "proxy".to_string())
}

/// Decides what to ask from the deployment the run-state records: every traefik router that
/// routes the run's domain (at the port its service's `loadbalancer.server.port` names), and
/// the published ports of `app` (of every service when `app` publishes none).
pub fn plan(state: &RunState) -> Plan {
    let mut plan = Plan::default();
    let Some(deployed) = &state.deployed else {
        plan.nothing = Some("the run-state records no deployment".into());
        return plan;
    };
    let domain = state.domain.as_str();
    let now = Instant::now();
    let finding = |name: &str, result: Outcome, detail: String| Assertion {
        name: name.to_string(),
        result,
        detail,
        duration_ms: now.elapsed().as_millis() as u64,
        output: None,
    };

    let mut routed = vec![];
    let mut unrouted = vec![];
    for (svc, s) in &deployed.services {
        let routing = Routing::from_labels(&s.labels);
        for router in &routing.routers {
            if crate::checks::traefik::rule_routes(&router.rule, domain) {
                routed.push((svc, s, routing.clone(), router.clone()));
            } else if router.rule.is_empty() {
                unrouted.push(format!("router {} of {svc} has no rule", router.name));
            } else {
                unrouted.push(format!("router {} of {svc} has rule {}", router.name, router.rule));
            }
        }
    }
    const ROUTES: &str = "traefik routes the run's domain";
    if routed.is_empty() && !unrouted.is_empty() {
        plan.findings.push(finding(
            ROUTES,
            Outcome::Fail,
            format!("no traefik router routes the run's domain {domain}: {}", unrouted.join("; ")),
        ));
    } else if !routed.is_empty() {
        let ignored: Vec<String> = routed
            .iter()
            .filter(|(_, _, r, _)| r.enabled != Some(true))
            .map(|(svc, _, _, router)| format!("{svc} (router {})", router.name))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if ignored.is_empty() {
            let which: Vec<String> =
                routed.iter().map(|(svc, _, _, r)| format!("router {} of {svc} ({})", r.name, r.rule)).collect();
            plan.findings.push(finding(ROUTES, Outcome::Pass, format!("{domain} is routed by {}", which.join("; "))));
        } else {
            plan.findings.push(finding(
                ROUTES,
                Outcome::Fail,
                format!(
                    "traefik.enable is not `true` on {}: traefik, which exposes no service by default, ignores their routers",
                    ignored.join(", ")
                ),
            ));
        }
    }
    for (svc, s, routing, router) in &routed {
        let name = format!("serving {svc} (traefik router {})", router.name);
        match routing.upstream(router) {
            Upstream::Port(port) => {
                let seen = plan.asks.iter().any(
                    |a| matches!(a, Ask::Router { service, port: p, .. } if service == *svc && p == &port),
                );
                if !seen {
                    plan.asks.push(Ask::Router {
                        service: svc.to_string(),
                        router: router.name.clone(),
                        port,
                        network: traefik_network(&s.labels),
                    });
                }
            }
            Upstream::Elsewhere(target) => plan.findings.push(finding(
                &name,
                Outcome::Skip,
                format!(
                    "router {} sends {domain} to {target}, which traefik itself serves: only the front door ({}) can ask it",
                    router.name,
                    crate::config::PROXY_URL.name
                ),
            )),
            Upstream::Unknown(why) => plan.findings.push(finding(
                &name,
                Outcome::Fail,
                format!("router {} routes {domain}, but {why}", router.name),
            )),
        }
    }

    let with_ports: Vec<_> = deployed.services.iter().filter(|(_, s)| !s.ports.is_empty()).collect();
    let chosen: Vec<_> = match with_ports.iter().find(|(n, _)| n.as_str() == "app") {
        Some(app) => vec![*app],
        None => with_ports,
    };
    for (svc, s) in chosen {
        for p in &s.ports {
            let (service, published, target) = (svc.clone(), p.published, p.target);
            plan.asks.push(match p.mode {
                PortMode::Host => Ask::HostPort { service, published, target, family: p.family },
                PortMode::Ingress => Ask::Ingress { service, published, target },
            });
        }
    }
    if plan.asks.is_empty() && plan.findings.is_empty() {
        plan.nothing =
            Some("the recipe has no HTTP endpoint: no service has traefik router labels or publishes a port".into());
    }
    plan
}

/// The URL of the first port `app` (or any service) publishes in host mode on this node.
pub fn host_port_url(state: &RunState) -> Option<String> {
    plan(state).asks.into_iter().find_map(|a| match a {
        Ask::HostPort { .. } => a.host_target().map(|t| t.url),
        _ => None,
    })
}

impl Ask {
    /// The [`Target`] of a host-mode port.
    pub fn host_target(&self) -> Option<Target> {
        match self {
            Ask::HostPort { service, published, target, family } => {
                let (url, fallback) = match family {
                    Some(AddressFamily::Ipv4) => (format!("http://127.0.0.1:{published}/"), None),
                    Some(AddressFamily::Ipv6) => (format!("http://[::1]:{published}/"), None),
                    None => (format!("http://127.0.0.1:{published}/"), Some(format!("http://[::1]:{published}/"))),
                };
                Some(Target { name: format!("{service}:{target}"), url, host: None, fallback })
            }
            _ => None,
        }
    }
}

/// Requests `target` until it answers with an accepted status or `timeout` passes.
pub fn check(target: &Target, policy: &StatusPolicy, timeout: Duration) -> Assertion {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let start = Instant::now();
    let mut attempts = 0u32;
    let mut seen: Vec<String> = vec![];
    loop {
        attempts += 1;
        let t0 = Instant::now();
        let ask = |url: &str| {
            let mut req = agent.get(url);
            if let Some(h) = &target.host {
                req = req.header("Host", h);
            }
            req.call()
        };
        let mut url = &target.url;
        let mut answer = ask(url);
        if let (Err(ureq::Error::Io(_) | ureq::Error::ConnectionFailed), Some(other)) = (&answer, &target.fallback) {
            url = other;
            answer = ask(url);
        }
        let answer = match answer {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(e.to_string()),
        };
        let ms = t0.elapsed().as_millis();
        match answer {
            Ok(code) if policy.accepts(code) => {
                return Assertion {
                    name: format!("serving {}", target.name),
                    result: Outcome::Pass,
                    detail: format!("GET {url} → {code} in {ms} ms (attempt {attempts})"),
                    duration_ms: start.elapsed().as_millis() as u64,
                    output: None,
                };
            }
            Ok(code) => seen.push(code.to_string()),
            Err(e) => seen.push(e),
        }
        if start.elapsed() >= timeout {
            seen.dedup();
            let last: Vec<_> = seen.iter().rev().take(3).rev().cloned().collect();
            return Assertion {
                name: format!("serving {}", target.name),
                result: Outcome::Fail,
                detail: format!(
                    "GET {} not serving after {}s and {attempts} attempts; last answers: {}",
                    target.url,
                    timeout.as_secs(),
                    last.join("; ")
                ),
                duration_ms: start.elapsed().as_millis() as u64,
                output: None,
            };
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Seconds one probe request may take (busybox `timeout` around `wget`).
const PROBE_REQUEST_SECS: u32 = 10;

/// What one request from a probe got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The first status line the app sent (a redirect is not followed further).
    Status(u16),
    /// No HTTP answer: what went wrong (refused, no answer in time).
    NoAnswer(String),
}

/// Reads what `wget -S` printed on stderr: the first status line it shows, else its complaint.
pub fn read_wget(stderr: &str, code: Option<i32>) -> Answer {
    for line in stderr.lines() {
        let l = line.trim();
        let l = l.strip_prefix("wget: server returned error: ").unwrap_or(l);
        if let Some(rest) = l.strip_prefix("HTTP/")
            && let Some(status) = rest.split_whitespace().nth(1)
            && let Ok(n) = status.parse::<u16>()
        {
            return Answer::Status(n);
        }
    }
    if matches!(code, Some(124 | 137 | 143)) {
        return Answer::NoAnswer(format!("no answer within {PROBE_REQUEST_SECS}s"));
    }
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Connecting to"))
        .map(|l| l.strip_prefix("wget: ").unwrap_or(l))
        .collect();
    match said.last() {
        Some(last) => Answer::NoAnswer(last.to_string()),
        None => Answer::NoAnswer(match code {
            Some(c) => format!("wget exited with status {c} and said nothing"),
            None => "wget was killed by a signal and said nothing".to_string(),
        }),
    }
}

/// Asks a service at its task addresses ([`Ask::Router`], [`Ask::Ingress`]) from throwaway
/// probe containers, with the run's domain as `Host`, until every running task answers with a
/// status the policy accepts or `timeout` passes. A service not on the network traefik reaches
/// it through fails at once; on a network that is not attachable the probe asks from inside the
/// task's network namespace instead; a probe docker refuses to run otherwise (image missing) is
/// the environment's error.
pub fn ask_tasks(sh: &Shell, state: &RunState, ask: &Ask, policy: &StatusPolicy, timeout: Duration) -> Assertion {
    let start = Instant::now();
    let name = ask.name();
    let done = |result: Outcome, detail: String| Assertion {
        name: name.clone(),
        result,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
        output: None,
    };
    let (service, port) = match ask {
        Ask::Router { service, port, .. } => (service, *port),
        Ask::Ingress { service, target, .. } => (service, *target),
        Ask::HostPort { .. } => return check(&ask.host_target().expect("a host port"), policy, timeout),
    };
    let full = format!("{}{service}", state.stack.prefix());
    let lead = match ask {
        Ask::Router { router, .. } => format!("router {router}: "),
        _ => String::new(),
    };
    let mut attempts = 0u32;
    let mut seen: Vec<String> = vec![];
    loop {
        attempts += 1;
        let tasks = match running_tasks(sh, &full) {
            Ok(t) => t,
            Err(e) => return done(Outcome::Error, e.to_string()),
        };
        let mut answers = vec![];
        if tasks.is_empty() {
            seen.push(format!("{service} has no running task"));
        }
        for t in &tasks {
            let short = &t.id[..12.min(t.id.len())];
            let (network, ip) = match ask {
                Ask::Router { network, .. } => match t.addresses.iter().find(|(n, _)| n == network) {
                    Some((_, ip)) => (network.clone(), ip.clone()),
                    None => {
                        let on: Vec<&str> = t.addresses.iter().map(|(n, _)| n.as_str()).collect();
                        return done(
                            Outcome::Fail,
                            format!(
                                "{service} is not on the {network} network traefik reaches it through (task {short} is on: {})",
                                if on.is_empty() { "no network".to_string() } else { on.join(", ") }
                            ),
                        );
                    }
                },
                _ => {
                    let Some(cid) = &t.container_id else {
                        seen.push(format!("task {short} has no container yet"));
                        continue;
                    };
                    // Its address on one of its own networks: from inside the task, its address on
                    // the ingress network leads back into the routing mesh, which is not asked.
                    let ip = t
                        .addresses
                        .iter()
                        .find(|(n, _)| n != "ingress")
                        .map_or("127.0.0.1".to_string(), |(_, ip)| ip.clone());
                    (format!("container:{cid}"), ip)
                }
            };
            let url = format!("http://{ip}:{port}/");
            let t0 = Instant::now();
            // Under `sh`, not as the container's PID 1: PID 1 ignores the signal `timeout` sends
            // (and the `; exit` keeps sh from exec'ing the last command in its own place).
            let argv: Vec<String> = [
                "sh",
                "-c",
                &format!("timeout {PROBE_REQUEST_SECS} wget -S -O /dev/null --header \"$1\" \"$2\"; exit $?"),
                "probe",
                &format!("Host: {}", state.domain),
                &url,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let mut out = match docker::probe(sh, &state.stack, &probe_name(state), &network, &argv) {
                Ok(o) => o,
                Err(e) => return done(Outcome::Error, e.to_string()),
            };
            let mut on = if network.starts_with("container:") {
                "from inside the task's network namespace".to_string()
            } else {
                format!("on the {network} network")
            };
            // A network made without --attachable (as some servers' `proxy` is) takes no plain
            // container: ask from inside the task's own namespace, at the same address.
            if out.code == Some(125)
                && out.stderr.contains("attachable")
                && let Some(cid) = &t.container_id
            {
                out = match docker::probe(sh, &state.stack, &probe_name(state), &format!("container:{cid}"), &argv) {
                    Ok(o) => o,
                    Err(e) => return done(Outcome::Error, e.to_string()),
                };
                on = format!(
                    "on the {network} network, from inside the task's network namespace ({network} is not attachable)"
                );
            }
            if out.code == Some(125) {
                return done(
                    Outcome::Error,
                    format!(
                        "docker could not run the probe {} on {network}: {} (scripts/setup builds the image and creates the attachable proxy network; on NixOS ccci-probe-image.service loads the image)",
                        docker::PROBE_IMAGE,
                        crate::process::tail(&out.stderr, 2)
                    ),
                );
            }
            let how = format!("task {short} (GET {url} {on}, Host: {})", state.domain);
            answers.push((how, read_wget(&out.stderr, out.code), t0.elapsed().as_millis()));
        }
        let all_good = !answers.is_empty()
            && answers.len() == tasks.len()
            && answers.iter().all(|(_, a, _)| matches!(a, Answer::Status(c) if policy.accepts(*c)));
        if all_good {
            let each: Vec<String> = answers
                .iter()
                .map(|(how, a, ms)| match a {
                    Answer::Status(c) => format!("{how} → {c} in {ms} ms"),
                    Answer::NoAnswer(_) => unreachable!("all answered"),
                })
                .collect();
            return done(Outcome::Pass, format!("{} (attempt {attempts})", each.join("; ")));
        }
        for (how, a, _) in &answers {
            match a {
                Answer::Status(c) if policy.accepts(*c) => {}
                Answer::Status(c) => seen.push(format!("{how} → {c}")),
                Answer::NoAnswer(why) => seen.push(format!("{how}: {why}")),
            }
        }
        if start.elapsed() >= timeout {
            seen.dedup();
            let last: Vec<_> = seen.iter().rev().take(3).rev().cloned().collect();
            return done(
                Outcome::Fail,
                format!(
                    "{lead}{service} not serving on port {port} after {}s and {attempts} attempts; last answers: {}",
                    timeout.as_secs(),
                    last.join("; ")
                ),
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The running tasks of one swarm service, freshly inspected.
fn running_tasks(sh: &Shell, full_name: &str) -> crate::error::Result<Vec<docker::Task>> {
    let services: Vec<docker::Service> = docker::services_named(sh, full_name)?;
    Ok(docker::tasks(sh, &services)?
        .into_iter()
        .filter(|t| t.desired_state == "running" && t.state == "running")
        .collect())
}

/// `<stack>_probe_<pid>_<n>`: the run's prefix, so teardown and the janitor find a probe.
fn probe_name(state: &RunState) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}probe_{}_{n}", state.stack.prefix(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn serve_once(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 2048];
            let n = c.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            write!(c, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            req
        });
        (port, h)
    }

    #[test]
    fn passes_on_2xx_and_sends_host_header() {
        let (port, h) = serve_once("200 OK");
        let t = Target {
            name: "x".into(),
            url: format!("http://127.0.0.1:{port}/"),
            host: Some("hell-3fa9c2.ccci.localhost".into()),
            fallback: None,
        };
        let a = check(&t, &StatusPolicy { also_accept: vec![] }, Duration::from_secs(5));
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
        let req = h.join().unwrap().to_ascii_lowercase();
        assert!(req.contains("host: hell-3fa9c2.ccci.localhost"), "{req}");
    }

    #[test]
    fn a_host_port_whose_family_is_known_is_asked_only_at_that_loopback() {
        let ask = |family| Ask::HostPort { service: "app".into(), published: 34198, target: 8080, family };
        let v4 = ask(Some(AddressFamily::Ipv4)).host_target().unwrap();
        assert_eq!((v4.url.as_str(), v4.fallback), ("http://127.0.0.1:34198/", None));
        let v6 = ask(Some(AddressFamily::Ipv6)).host_target().unwrap();
        assert_eq!((v6.url.as_str(), v6.fallback), ("http://[::1]:34198/", None));
        let unknown = ask(None).host_target().unwrap();
        assert_eq!(unknown.fallback.as_deref(), Some("http://[::1]:34198/"));
    }

    #[test]
    fn a_host_port_bound_for_ipv6_only_is_asked_at_the_ipv6_loopback() {
        // Swarm binds a host-mode port twice, once per address family, under two numbers.
        let l = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 2048];
            let _ = c.read(&mut buf).unwrap();
            write!(c, "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
        });
        let ask = Ask::HostPort { service: "app".into(), published: port, target: 8080, family: None };
        let a = check(&ask.host_target().unwrap(), &StatusPolicy { also_accept: vec![] }, Duration::from_secs(5));
        h.join().unwrap();
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
        assert!(a.detail.contains(&format!("[::1]:{port}")), "{}", a.detail);
    }

    #[test]
    fn fails_with_the_status_seen() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming().take(3) {
                let mut c = c.unwrap();
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = write!(c, "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        let t = Target { name: "x".into(), url: format!("http://127.0.0.1:{port}/"), host: None, fallback: None };
        let a = check(&t, &StatusPolicy { also_accept: vec![] }, Duration::from_millis(1500));
        assert_eq!(a.result, Outcome::Fail);
        assert!(a.detail.contains("503"), "{}", a.detail);
    }

    #[test]
    fn policy_can_accept_401() {
        let p = StatusPolicy { also_accept: vec![401] };
        assert!(p.accepts(401) && p.accepts(302) && !p.accepts(404) && !p.accepts(500));
    }

    use crate::run::state::{Deployed, DeployedService, PublishedPort};

    type Port = (u16, u16, PortMode);
    type Svc<'a> = (&'a str, Vec<(&'a str, String)>, Vec<Port>);

    fn deployed(services: &[Svc]) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deployed = Some(Deployed {
            observed_at: String::new(),
            settle_from: None,
            services: services
                .iter()
                .map(|(name, labels, ports)| {
                    let svc = DeployedService {
                        labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
                        ports: ports
                            .iter()
                            .map(|&(published, target, mode)| PublishedPort { published, target, mode, family: None })
                            .collect(),
                        ..Default::default()
                    };
                    (name.to_string(), svc)
                })
                .collect(),
        });
        s
    }

    const D: &str = "hell-3fa9c2.ccci.localhost";

    fn router_labels(rule: &str) -> Vec<(&'static str, String)> {
        vec![
            ("traefik.enable", "true".into()),
            ("traefik.http.routers.r.rule", rule.to_string()),
            ("traefik.http.services.r.loadbalancer.server.port", "8080".into()),
        ]
    }

    fn plan_of(services: &[Svc]) -> Plan {
        plan(&deployed(services))
    }

    #[test]
    fn a_traefik_labelled_service_is_asked_at_its_router_port_on_the_proxy_network() {
        let p = plan_of(&[("app", router_labels(&format!("Host(`{D}`)")), vec![])]);
        assert_eq!(
            p.asks,
            [Ask::Router { service: "app".into(), router: "r".into(), port: 8080, network: "proxy".into() }]
        );
        assert_eq!(p.asks[0].name(), "serving app:8080 (traefik)");
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].result, Outcome::Pass);
        assert_eq!(p.findings[0].detail, format!("{D} is routed by router r of app (Host(`{D}`))"));

        let mut labels = router_labels(&format!("Host(`www.example.com`, `{D}`)"));
        labels.push(("traefik.docker.network", "traefik_public".into()));
        let p = plan_of(&[("app", labels, vec![])]);
        assert!(matches!(&p.asks[0], Ask::Router { network, .. } if network == "traefik_public"));
    }

    #[test]
    fn a_recipe_whose_routers_do_not_route_its_domain_fails_naming_them() {
        let p = plan_of(&[
            ("app", router_labels("Host(`traefikonly.example.com`)"), vec![]),
            ("web", vec![("traefik.http.routers.w.entrypoints", "web".into())], vec![]),
        ]);
        assert!(p.asks.is_empty());
        assert_eq!(p.findings[0].name, "traefik routes the run's domain");
        assert_eq!(p.findings[0].result, Outcome::Fail);
        assert_eq!(
            p.findings[0].detail,
            format!(
                "no traefik router routes the run's domain {D}: router r of app has rule Host(`traefikonly.example.com`); router w of web has no rule"
            )
        );
    }

    #[test]
    fn routers_traefik_would_ignore_or_cannot_reach_fail_and_internal_ones_are_skipped() {
        let mut labels = router_labels(&format!("Host(`{D}`)"));
        labels.retain(|(k, _)| *k != "traefik.enable");
        let p = plan_of(&[("app", labels, vec![])]);
        assert_eq!(p.findings[0].result, Outcome::Fail);
        assert!(
            p.findings[0].detail.starts_with("traefik.enable is not `true` on app (router r)"),
            "{}",
            p.findings[0].detail
        );

        let p = plan_of(&[(
            "app",
            vec![("traefik.enable", "true".into()), ("traefik.http.routers.r.rule", format!("Host(`{D}`)"))],
            vec![],
        )]);
        assert_eq!(p.findings[1].name, "serving app (traefik router r)");
        assert_eq!(p.findings[1].result, Outcome::Fail);
        assert!(p.findings[1].detail.contains("names the port"), "{}", p.findings[1].detail);

        let mut labels = router_labels(&format!("Host(`{D}`)"));
        labels.push(("traefik.http.routers.r.service", "api@internal".into()));
        let p = plan_of(&[("traefik", labels, vec![])]);
        assert!(p.asks.is_empty());
        assert_eq!(p.findings[1].result, Outcome::Skip);
        assert!(p.findings[1].detail.contains("api@internal, which traefik itself serves"), "{}", p.findings[1].detail);
    }

    #[test]
    fn published_ports_are_asked_by_their_mode() {
        let p = plan_of(&[("app", vec![], vec![(80, 8080, PortMode::Ingress), (32776, 8080, PortMode::Host)])]);
        assert_eq!(
            p.asks,
            [
                Ask::Ingress { service: "app".into(), published: 80, target: 8080 },
                Ask::HostPort { service: "app".into(), published: 32776, target: 8080, family: None },
            ]
        );
        assert_eq!(p.asks[0].name(), "serving app:8080 (ingress 80)");
        assert_eq!(p.asks[1].name(), "serving app:8080");
        assert!(p.nothing.is_none());
        let s = deployed(&[("app", vec![], vec![(80, 8080, PortMode::Ingress)])]);
        assert_eq!(host_port_url(&s), None, "the routing mesh is not a URL to give a check");
    }

    #[test]
    fn a_recipe_with_no_http_endpoint_says_so() {
        let p = plan_of(&[("app", vec![("coop-cloud.x.version", "1".into())], vec![]), ("db", vec![], vec![])]);
        assert!(p.asks.is_empty() && p.findings.is_empty());
        assert_eq!(
            p.nothing.as_deref(),
            Some("the recipe has no HTTP endpoint: no service has traefik router labels or publishes a port")
        );
    }

    #[test]
    fn wget_output_is_read_for_the_first_status_or_the_complaint() {
        let ok = "Connecting to 10.0.5.3:8080 (10.0.5.3:8080)\n  HTTP/1.1 200 OK\n  Date: x\n";
        assert_eq!(read_wget(ok, Some(0)), Answer::Status(200));
        let redirected = "  HTTP/1.1 302 Found\n  Location: https://x/\nConnecting to x (1.2.3.4:443)\nwget: not an http or ftp url\n";
        assert_eq!(read_wget(redirected, Some(1)), Answer::Status(302), "a redirect is the answer, not where it leads");
        assert_eq!(read_wget("wget: server returned error: HTTP/1.1 404 Not Found\n", Some(1)), Answer::Status(404));
        assert_eq!(
            read_wget(
                "Connecting to 10.0.5.3:8080 (10.0.5.3:8080)\nwget: can't connect to remote host (10.0.5.3): Connection refused\n",
                Some(1)
            ),
            Answer::NoAnswer("can't connect to remote host (10.0.5.3): Connection refused".into())
        );
        assert_eq!(
            read_wget("Connecting to 10.0.0.6:8080 (10.0.0.6:8080)\nTerminated\n", Some(143)),
            Answer::NoAnswer("no answer within 10s".into())
        );
        assert_eq!(read_wget("", Some(2)), Answer::NoAnswer("wget exited with status 2 and said nothing".into()));
        assert_eq!(read_wget("", None), Answer::NoAnswer("wget was killed by a signal and said nothing".into()));
    }
}
