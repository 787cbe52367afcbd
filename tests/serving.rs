//! Serving on the real swarm, asked the way a visitor's request reaches a Co-op Cloud app: the
//! traefik router's port at the task addresses on the `proxy` network, published ports by their
//! mode, and an honest verdict when nothing could be asked. Needs Docker in swarm mode, the
//! attachable `proxy` network and the images `scripts/setup` builds; without them these tests
//! fail, they do not skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Sandbox, ccci, git, left_on_swarm, read_state};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(240);

/// An app that serves `/` (or, with `broken`, answers every request with 404).
fn command(broken: bool) -> &'static str {
    if broken {
        r#"["sh", "-c", "mkdir -p /empty && exec httpd -f -p 8080 -h /empty"]"#
    } else {
        r#"["sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"]"#
    }
}

/// A one-commit recipe repository (no release: the head is deployed, nothing to upgrade from)
/// whose `app` service has `service_extra` under it and `deploy_labels` as its labels.
fn recipe(dir: &Path, service_extra: &str, deploy_labels: &[&str], broken: bool) -> PathBuf {
    let repo = dir.join("recipe");
    std::fs::create_dir_all(&repo).unwrap();
    let labels: String = deploy_labels.iter().map(|l| format!("        - \"{l}\"\n")).collect();
    let proxy_network = if service_extra.contains("proxy") { "networks:\n  proxy:\n    external: true\n" } else { "" };
    let compose = format!(
        "version: \"3.8\"\nservices:\n  app:\n    image: ccci-hello:1\n    command: {}\n    stop_grace_period: 1s\n{service_extra}    deploy:\n      labels:\n        - \"coop-cloud.${{STACK_NAME}}.version=1.0.0+1\"\n{labels}{proxy_network}",
        command(broken)
    );
    std::fs::write(repo.join("compose.yml"), compose).unwrap();
    std::fs::write(repo.join(".env.sample"), "TYPE=serving\nDOMAIN=serving.example.com\nLETS_ENCRYPT_ENV=production\n")
        .unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "head"]);
    repo
}

const TRAEFIK: &[&str] = &[
    "traefik.enable=true",
    "traefik.http.services.${STACK_NAME}.loadbalancer.server.port=8080",
    "traefik.http.routers.${STACK_NAME}.rule=Host(`${DOMAIN}`)",
    "traefik.http.routers.${STACK_NAME}.entrypoints=web-secure",
];
const ON_PROXY: &str = "    networks: [proxy]\n";

/// deploy → assert install → (`before_teardown`) → teardown → report (text), each with this process's naming; returns
/// the state after teardown, the exit code of the install op and the text report. Fails when
/// teardown leaves anything, probes included.
fn pipe(sb: &Sandbox, repo: &Path) -> (Value, i32, String) {
    pipe_with(sb, repo, &[], |_| {})
}

fn pipe_with(
    sb: &Sandbox,
    repo: &Path,
    env: &[(&str, &str)],
    before_teardown: impl FnOnce(&str),
) -> (Value, i32, String) {
    let state_file = sb.root.join("run.json");
    let step = |name: &str, args: &[&str]| {
        let mut c = ccci(&sb.state_dir(), name);
        c.env("CCCI_SERVING_TIMEOUT", "8s").env("CCCI_SETTLE_WINDOW", "1s").env("CCCI_DEPLOY_TIMEOUT", "90s");
        c.envs(env.iter().copied());
        c.args(args).arg("--state").arg(&state_file);
        let child = c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let out = wait(child, name);
        eprintln!("{name}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let d = step(
        "ccci-deploy",
        &["--driver", "stack", "--no-upgrade", "--ref", "main", "--recipe", repo.to_str().unwrap()],
    );
    assert_eq!(d.status.code(), Some(0), "deploy: {}", String::from_utf8_lossy(&d.stderr));
    let install = step("ccci-assert", &["install"]).status.code().unwrap();
    let deployed = read_state(&state_file);
    before_teardown(deployed["stack"].as_str().unwrap());
    let t = step("ccci-teardown", &[]);
    assert_eq!(t.status.code(), Some(0), "teardown: {}", String::from_utf8_lossy(&t.stderr));
    let state = read_state(&state_file);
    let stack = state["stack"].as_str().unwrap();
    assert_eq!(left_on_swarm(stack), Vec::<String>::new(), "left on the swarm (containers and probes included)");
    let report = step("ccci-report", &[]);
    (state, install, String::from_utf8_lossy(&report.stdout).into_owned())
}

fn wait(mut child: std::process::Child, name: &str) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("{name} did not finish within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn assertion<'a>(state: &'a Value, name: &str) -> &'a Value {
    let install = state["ops"].as_array().unwrap().iter().find(|o| o["op"] == "install").expect("an install op");
    install["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no assertion {name:?} in {install:#}"))
}

#[test]
fn a_traefik_labelled_recipe_with_no_published_port_serves_at_its_task_address() {
    let sb = Sandbox::new("traefik-serves");
    let repo = recipe(&sb.root, ON_PROXY, TRAEFIK, false);
    let (state, install, report) = pipe(&sb, &repo);
    assert_eq!(install, 0, "{report}");
    let domain = state["domain"].as_str().unwrap();
    let routes = assertion(&state, "traefik routes the run's domain");
    assert_eq!(routes["result"], "pass", "{routes}");
    let serving = assertion(&state, "serving app:8080 (traefik)");
    assert_eq!(serving["result"], "pass", "{serving}");
    let detail = serving["detail"].as_str().unwrap();
    assert!(detail.starts_with("task ") && detail.contains(") → 200 in "), "{detail}");
    assert!(detail.contains(" on the proxy network, Host: ") && detail.contains(domain), "{detail}");
    assert!(report.contains("\nverdict: PASS ("), "{report}");
    assert!(!report.contains("not checked"), "{report}");
}

#[test]
fn a_traefik_labelled_head_that_serves_an_error_page_fails_serving() {
    let sb = Sandbox::new("traefik-404");
    let repo = recipe(&sb.root, ON_PROXY, TRAEFIK, true);
    let (state, install, report) = pipe(&sb, &repo);
    assert_eq!(install, 1, "{report}");
    let serving = assertion(&state, "serving app:8080 (traefik)");
    assert_eq!(serving["result"], "fail", "{serving}");
    let detail = serving["detail"].as_str().unwrap();
    assert!(detail.contains("app not serving on port 8080") && detail.ends_with(") → 404"), "{detail}");
    assert!(report.contains("\nverdict: FAIL"), "{report}");
}

#[test]
fn a_recipe_whose_router_does_not_route_its_domain_fails_naming_the_router() {
    let sb = Sandbox::new("traefik-unrouted");
    let labels = [
        "traefik.enable=true",
        "traefik.http.services.web.loadbalancer.server.port=8080",
        "traefik.http.routers.web.rule=Host(`serving.example.com`)",
    ];
    let repo = recipe(&sb.root, ON_PROXY, &labels, false);
    let (state, install, report) = pipe(&sb, &repo);
    assert_eq!(install, 1, "{report}");
    let routes = assertion(&state, "traefik routes the run's domain");
    assert_eq!(routes["result"], "fail", "{routes}");
    assert_eq!(
        routes["detail"],
        format!(
            "no traefik router routes the run's domain {}: router web of app has rule Host(`serving.example.com`)",
            state["domain"].as_str().unwrap()
        )
    );
}

#[test]
fn a_port_published_in_ingress_mode_is_reported_as_such_and_asked_at_the_task_address() {
    let sb = Sandbox::new("ingress");
    // A port of its own: the routing mesh publishes it on the whole swarm.
    let port = 20000 + (u32::from_str_radix(&common::marker()[..4], 16).unwrap() % 20000);
    let repo = recipe(&sb.root, &format!("    ports:\n      - \"{port}:8080\"\n"), &[], false);
    let (state, install, report) = pipe(&sb, &repo);
    assert_eq!(install, 0, "{report}");
    let ports = &state["deployed"]["services"]["app"]["ports"];
    assert_eq!(ports, &serde_json::json!([{"published": port, "target": 8080, "mode": "ingress"}]));
    let serving = assertion(&state, &format!("serving app:8080 (ingress {port})"));
    assert_eq!(serving["result"], "pass", "{serving}");
    assert!(serving["detail"].as_str().unwrap().contains("from inside the task's network namespace"), "{serving}");
}

#[test]
fn a_run_in_which_nothing_was_asked_reports_passed_but_serving_was_not_checked() {
    let sb = Sandbox::new("unasked");
    let repo = recipe(&sb.root, "", &[], false);
    let (state, install, report) = pipe(&sb, &repo);
    assert_eq!(install, 0, "{report}");
    let serving = assertion(&state, "serving");
    assert_eq!(serving["result"], "skip");
    assert_eq!(
        serving["detail"],
        "nothing asked: the recipe has no HTTP endpoint: no service has traefik router labels or publishes a port, and CCCI_PROXY_URL is not set"
    );
    let verdict = report.lines().nth(1).unwrap();
    assert!(
        verdict.starts_with("verdict: passed, but serving was not checked (")
            && verdict.contains("): nothing asked: the recipe has no HTTP endpoint"),
        "{report}"
    );
}

#[test]
fn a_probe_left_running_by_a_killed_check_is_removed_by_teardown() {
    let sb = Sandbox::new("probe-left");
    let repo = recipe(&sb.root, "", &[], false);
    let (_, install, report) = pipe_with(&sb, &repo, &[], |stack| {
        // What a probe looks like when the ccci-assert that started it was killed mid-request.
        let out = Command::new("docker")
            .args(["run", "-d", "--pull", "never", "--name", &format!("{stack}_probe_1_0")])
            .args(["--label", &format!("com.docker.stack.namespace={stack}"), "--label", "ccci.probe=1"])
            .args([ccci::swarm::docker::PROBE_IMAGE, "sleep", "600"])
            .output()
            .unwrap();
        assert!(out.status.success(), "docker run: {}", String::from_utf8_lossy(&out.stderr));
    });
    assert_eq!(install, 0, "{report}");
}

/// A network of this test's own, removed when the test ends (also when it fails).
struct Network(String);

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.0]).output();
    }
}

#[test]
fn a_network_shared_with_traefik_that_is_not_attachable_is_asked_from_inside_the_task() {
    let sb = Sandbox::new("not-attachable");
    let net = Network(format!("t{}_edge", common::marker()));
    let out = Command::new("docker").args(["network", "create", "--driver", "overlay", &net.0]).output().unwrap();
    assert!(out.status.success(), "docker network create: {}", String::from_utf8_lossy(&out.stderr));
    let service = "    networks: [edge]\n";
    let mut labels = TRAEFIK.to_vec();
    let on_edge = format!("traefik.docker.network={}", net.0);
    labels.push(&on_edge);
    let repo = recipe(&sb.root, service, &labels, false);
    let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap()
        + &format!("networks:\n  edge:\n    external: true\n    name: {}\n", net.0);
    std::fs::write(repo.join("compose.yml"), compose).unwrap();
    git(&repo, &["commit", "-qam", "edge network"]);
    let networks = format!("proxy,{}", net.0);
    let (state, install, report) = pipe_with(&sb, &repo, &[("CCCI_EXTERNAL_NETWORKS", &networks)], |_| {});
    assert_eq!(install, 0, "{report}");
    let serving = assertion(&state, "serving app:8080 (traefik)");
    assert_eq!(serving["result"], "pass", "{serving}");
    let detail = serving["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!(
            "on the {0} network, from inside the task's network namespace ({0} is not attachable)",
            net.0
        )),
        "{detail}"
    );
}
