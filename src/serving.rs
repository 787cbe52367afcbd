//! "Is it serving?": HTTP requests to the deployment, retried until a deadline.
//!
//! Through the proxy when one is configured (the run's domain as Host, the way a visitor comes
//! in), otherwise to the host-mode ports the services publish on this node.

use std::time::{Duration, Instant};

use crate::state::{Assertion, Outcome, RunState};

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

/// One place to send requests to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Human name: `app:8080` or `proxy`.
    pub name: String,
    pub url: String,
    /// Host header to send (the run's domain through a proxy).
    pub host: Option<String>,
}

/// Where to check: the proxy, or every published port of `app` (of every service when there is
/// no `app`, which Co-op Cloud recipes are expected to have).
pub fn targets(state: &RunState, proxy: Option<&str>) -> Vec<Target> {
    if let Some(p) = proxy {
        return vec![Target {
            name: format!("{} via proxy", state.domain),
            url: format!("{}/", p.trim_end_matches('/')),
            host: Some(state.domain.to_string()),
        }];
    }
    let Some(deployed) = &state.deployed else { return vec![] };
    let with_ports: Vec<_> = deployed.services.iter().filter(|(_, s)| !s.ports.is_empty()).collect();
    let chosen: Vec<_> = match with_ports.iter().find(|(n, _)| n.as_str() == "app") {
        Some(app) => vec![*app],
        None => with_ports,
    };
    chosen
        .into_iter()
        .flat_map(|(name, s)| {
            s.ports.iter().map(move |p| Target {
                name: format!("{name}:{}", p.target),
                url: format!("http://127.0.0.1:{}/", p.published),
                host: None,
            })
        })
        .collect()
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
        let mut req = agent.get(&target.url);
        if let Some(h) = &target.host {
            req = req.header("Host", h);
        }
        let answer = match req.call() {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => Err(e.to_string()),
        };
        let ms = t0.elapsed().as_millis();
        match answer {
            Ok(code) if policy.accepts(code) => {
                return Assertion {
                    name: format!("serving {}", target.name),
                    result: Outcome::Pass,
                    detail: format!("GET {} → {code} in {ms} ms (attempt {attempts})", target.url),
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
        };
        let a = check(&t, &StatusPolicy { also_accept: vec![] }, Duration::from_secs(5));
        assert_eq!(a.result, Outcome::Pass, "{}", a.detail);
        let req = h.join().unwrap().to_ascii_lowercase();
        assert!(req.contains("host: hell-3fa9c2.ccci.localhost"), "{req}");
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
        let t = Target { name: "x".into(), url: format!("http://127.0.0.1:{port}/"), host: None };
        let a = check(&t, &StatusPolicy { also_accept: vec![] }, Duration::from_millis(1500));
        assert_eq!(a.result, Outcome::Fail);
        assert!(a.detail.contains("503"), "{}", a.detail);
    }

    #[test]
    fn policy_can_accept_401() {
        let p = StatusPolicy { also_accept: vec![401] };
        assert!(p.accepts(401) && p.accepts(302) && !p.accepts(404) && !p.accepts(500));
    }
}
