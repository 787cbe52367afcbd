//! On this machine's real swarm: tasks read the way swarm means them, and blame put where it
//! belongs. Each test builds a small recipe repository on the example's image (`ccci-hello:1`,
//! a static busybox; see `scripts/build-images`), runs the stages with small timeouts, and
//! leaves nothing behind.
//!
//! - a one-shot job (exit 0 under restart condition `on-failure` or `none`) converges as
//!   "completed", and its completion is no restart; a periodic job (condition `any`, exit 0, a
//!   long restart delay) converges between runs;
//! - a healthcheck that never passes, with an app that exits 0 on SIGTERM, fails as a crash loop
//!   long before the deploy timeout, quoting the healthcheck's output;
//! - a task no node can take fails once the scheduler's reason has stood for
//!   `CCCI_PENDING_TIMEOUT`, quoting it;
//! - a missing external network or secret is the environment's error before the run registers;
//! - a base release that does not deploy is named, and the head is still tested by itself;
//! - the upgrade's "changed since the base" reads as plain words in the report;
//! - the settle window counts from the last change of the tasks: a restart between the
//!   convergence and a later assert fails it, and an assert after the window closed looks once
//!   instead of waiting; after an upgrade it counts from the new task's start (swarm closes the
//!   update seconds later), and a restart after the update closed still fails assert upgrade;
//! - teardown stops each container with its service's stop signal and grace period as soon as
//!   the services are gone: an app that exits on SIGTERM does so, one that ignores it is killed
//!   when its own grace period ends and is named.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    Ran, Run, Sandbox, assertion, domain_suffix, git, left_on_swarm, marker, new_objects_of_ours, op, read_state,
    swarm_objects,
};

const LIMIT: Duration = Duration::from_secs(240);

/// A recipe repository in a sandbox, and the run's stages on it with one state file.
struct Case {
    sb: Sandbox,
    repo: PathBuf,
    state_file: PathBuf,
    env: Vec<(String, String)>,
    /// `--recipe-name`: its first four letters start the run's id and so every object's name.
    recipe: String,
}

impl Case {
    /// An empty repository on branch `main`.
    fn new(name: &str) -> Case {
        let sb = Sandbox::new(name);
        let repo = sb.dir("recipe");
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.email", "ccci@example.invalid"]);
        git(&repo, &["config", "user.name", "ccci test"]);
        let state_file = sb.root.join("run.json");
        std::fs::write(sb.root.join("allowlist"), "# nothing approved\n").unwrap();
        let env = [
            ("CCCI_DEPLOY_TIMEOUT", "300s"),
            ("CCCI_PENDING_TIMEOUT", "60s"),
            ("CCCI_SERVING_TIMEOUT", "8s"),
            ("CCCI_SETTLE_WINDOW", "2s"),
            ("CCCI_TEARDOWN_TIMEOUT", "60s"),
        ];
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Case { sb, repo, state_file, env, recipe: "recipe".into() }
    }

    fn named(mut self, recipe: &str) -> Case {
        self.recipe = recipe.into();
        self
    }

    /// Puts the recipe's repository in the allowlist: its host access is granted.
    fn approve(self) -> Case {
        std::fs::write(self.sb.root.join("allowlist"), format!("# approved for the test\n{}\n", self.repo.display()))
            .unwrap();
        self
    }

    fn set(mut self, k: &str, v: &str) -> Case {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Writes `compose.yml` and a `.env.sample`, and commits them; tags the commit when `tag`.
    fn commit(&self, compose: &str, tag: Option<&str>) -> &Case {
        std::fs::write(self.repo.join("compose.yml"), compose).unwrap();
        std::fs::write(self.repo.join(".env.sample"), "TYPE=recipe\nDOMAIN=recipe.example.com\n").unwrap();
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "--allow-empty", "-m", tag.unwrap_or("head")]);
        if let Some(t) = tag {
            git(&self.repo, &["tag", "-a", "-m", &format!("release {t}"), t]);
        }
        self
    }

    fn run(&self, bin: &str, args: &[&str]) -> Ran {
        let mut r = Run::new(bin, args, &self.sb.dir("cwd"), &self.sb.dir("home"))
            .env("CCCI_STATE_DIR", self.sb.state_dir())
            .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
            .env("CCCI_OVERLAYS_DIR", self.sb.dir("overlays"))
            .env("CCCI_ALLOWLIST", self.sb.root.join("allowlist"));
        for (k, v) in &self.env {
            r = r.env(k, v);
        }
        r.run(LIMIT)
    }

    fn deploy(&self, upgrade: bool) -> Ran {
        let (repo, state) = (self.repo.display().to_string(), self.state_file.display().to_string());
        let mut args =
            vec!["--recipe-name", self.recipe.as_str(), "--ref", "main", "--recipe", &repo, "--state", &state];
        if !upgrade {
            args.push("--no-upgrade");
        }
        self.run("ccci-deploy", &args)
    }

    fn step(&self, bin: &str, args: &[&str]) -> Ran {
        let state = self.state_file.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        self.run(bin, &all)
    }

    fn state(&self) -> Value {
        read_state(&self.state_file)
    }

    /// Teardown passes and nothing of the run is left.
    fn teardown(&self) {
        let t = self.step("ccci-teardown", &[]);
        assert_eq!(t.code, Some(0), "teardown: {}", t.stderr);
        let stack = self.state()["stack"].as_str().unwrap().to_string();
        assert_eq!(left_on_swarm(&stack), Vec::<String>::new(), "left on the swarm");
        assert_eq!(self.sb.entries("runs"), Vec::<String>::new(), "registry entry left");
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        // A failing assertion must not leak the deployment.
        if self.state_file.exists() && !self.sb.entries("runs").is_empty() {
            let _ = self.step("ccci-teardown", &[]);
        }
    }
}

fn detail(state: &Value, name: &str) -> String {
    op(state, name)["detail"].as_str().unwrap().to_string()
}

/// The example's web app: busybox httpd on 8080, published in host mode.
const APP: &str = r#"  app:
    image: ccci-hello:1
    command: ["sh", "-c", "mkdir -p /w && echo ok > /w/index.html && exec httpd -f -p 8080 -h /w"]
    ports: [{target: 8080, mode: host}]
"#;

#[test]
fn one_shot_and_periodic_jobs_converge_and_their_runs_are_no_restarts() {
    let c = Case::new("jobs").set("CCCI_SETTLE_WINDOW", "10s");
    // The app is ready after 4 s (its healthcheck), so the deploy's convergence comes after the
    // quick jobs ended; the seed job (9 s) ends inside the settle window.
    c.commit(
        r#"version: "3.8"
services:
  app:
    image: ccci-hello:1
    command: ["sh", "-c", "mkdir -p /w && echo ok > /w/index.html && sleep 4 && exec httpd -f -p 8080 -h /w"]
    ports: [{target: 8080, mode: host}]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 1s
      timeout: 1s
      retries: 30
  migrate:
    image: ccci-hello:1
    command: ["sh", "-c", "echo migrations applied"]
    deploy:
      restart_policy: {condition: on-failure}
  seed:
    image: ccci-hello:1
    command: ["sh", "-c", "sleep 9; echo seeded"]
    deploy:
      restart_policy: {condition: none}
  tick:
    image: ccci-hello:1
    command: ["sh", "-c", "echo tick"]
    deploy:
      restart_policy: {condition: any, delay: 5m}
"#,
        None,
    );
    let d = c.deploy(false);
    let s = c.state();
    assert_eq!(d.code, Some(0), "{}\n{s:#}", d.stderr);
    let stack = s["stack"].as_str().unwrap().to_string();
    let deployed = detail(&s, "deploy");
    assert!(deployed.contains(&format!("{stack}_migrate completed")), "{deployed}");
    assert!(deployed.contains(&format!("{stack}_tick periodic")), "{deployed}");
    assert!(!deployed.contains("no task"), "{deployed}");

    // The seed job ends inside the settle window: a job finishing is not a restart.
    let i = c.step("ccci-assert", &["install"]);
    let s = c.state();
    let install = op(&s, "install");
    assert_eq!(i.code, Some(0), "{}\n{install:#}", i.stderr);
    let settled = assertion(install, "no restarts while settling");
    assert_eq!(settled["result"], "pass", "{settled}");
    assert!(settled["detail"].as_str().unwrap().contains(&format!("{stack}_seed completed")), "{settled}");
    assert_eq!(assertion(install, "services at desired replicas")["result"], "pass");
    c.teardown();
}

/// The app's task fails once, `crash_after` seconds after the deploy converged, and its
/// replacement serves from then on (a marker on its volume says it crashed already).
fn crashes_once(crash_after: u32) -> String {
    format!(
        r#"version: "3.8"
services:
  app:
    image: ccci-hello:1
    command: ["sh", "-c", "mkdir -p /w && echo ok > /w/index.html && if [ -e /data/crashed ]; then exec httpd -f -p 8080 -h /w; fi; touch /data/crashed; httpd -p 8080 -h /w; sleep {crash_after}; exit 3"]
    ports: [{{target: 8080, mode: host}}]
    volumes: [data:/data]
    deploy:
      restart_policy: {{condition: any, delay: 1s}}
volumes:
  data:
"#
    )
}

#[test]
fn a_task_that_restarted_after_the_convergence_fails_the_settle_check_of_an_assert_that_starts_later() {
    let c = Case::new("latecrash").set("CCCI_SETTLE_WINDOW", "3s");
    c.commit(&crashes_once(4), None);
    let d = c.deploy(false);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    // The crash (4 s after the app started) and the replacement happen before the assert starts:
    // watching only from the assert's start would miss them.
    std::thread::sleep(Duration::from_secs(10));
    let i = c.step("ccci-assert", &["install"]);
    let s = c.state();
    let install = op(&s, "install");
    assert_eq!(i.code, Some(1), "{}\n{install:#}", i.stderr);
    let settled = assertion(install, "no restarts while settling");
    assert_eq!(settled["result"], "fail", "{settled}");
    let why = settled["detail"].as_str().unwrap();
    assert!(why.contains("since the deployment last changed") && why.contains("exit code 3"), "{why}");
    c.teardown();
}

#[test]
fn an_assert_that_starts_after_the_settle_window_closed_does_not_wait_again() {
    let c = Case::new("quiet").set("CCCI_SETTLE_WINDOW", "6s");
    c.commit(&format!("version: \"3.8\"\nservices:\n{APP}"), None);
    let d = c.deploy(false);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    std::thread::sleep(Duration::from_secs(7));
    let t0 = Instant::now();
    let i = c.step("ccci-assert", &["install"]);
    let took = t0.elapsed();
    let s = c.state();
    let install = op(&s, "install");
    assert_eq!(i.code, Some(0), "{}\n{install:#}", i.stderr);
    let settled = assertion(install, "no restarts while settling");
    assert_eq!(settled["result"], "pass", "{settled}");
    assert!(settled["detail"].as_str().unwrap().contains("since the deployment last changed"), "{settled}");
    // One look, not another 6 s of watching.
    assert!(settled["duration_ms"].as_u64().unwrap() < 3000, "{settled}");
    assert!(took < Duration::from_secs(6), "the assert took {took:?}");
    // A second assert on the unchanged deployment only checks that no task changed since.
    let c2 = c.step("ccci-assert", &["custom"]);
    assert_eq!(c2.code, Some(0), "{}", c2.stderr);
    let s = c.state();
    assert_eq!(assertion(op(&s, "custom"), "no restarts while settling")["result"], "pass");
    c.teardown();
}

/// The head's app serves, and its first task fails `crash_after` seconds after it started (a
/// marker on its volume says it crashed already); the base serves throughout.
fn head_crashes_once(crash_after: u32) -> String {
    format!(
        r#"version: "3.8"
services:
  app:
    image: ccci-hello:1
    command: ["sh", "-c", "mkdir -p /w && echo ok > /w/index.html && if [ -e /data/head-crashed ]; then exec httpd -f -p 8080 -h /w; fi; touch /data/head-crashed; httpd -p 8080 -h /w; sleep {crash_after}; exit 3"]
    ports: [{{target: 8080, mode: host}}]
    volumes: [data:/data]
    deploy:
      restart_policy: {{condition: any, delay: 1s}}
volumes:
  data:
"#
    )
}

#[test]
fn an_upgrades_settle_window_counts_from_its_last_task_starting_and_still_catches_a_later_restart() {
    let c = Case::new("upsettle").named("upse").set("CCCI_SETTLE_WINDOW", "10s");
    let base = "version: \"3.8\"\nservices:\n  app:\n    image: ccci-hello:1\n    command: [\"sh\", \"-c\", \"mkdir -p /w && echo ok > /w/index.html && exec httpd -f -p 8080 -h /w\"]\n    ports: [{target: 8080, mode: host}]\n    volumes: [data:/data]\nvolumes:\n  data:\n";
    c.commit(base, Some("1.0.0+1"));
    // Swarm closes the update 5 s (its default monitor period) after the new task started; the
    // task fails 3 s later, inside the window counted from its start.
    c.commit(&head_crashes_once(8), None);
    let d = c.deploy(true);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    let i = c.step("ccci-assert", &["install"]);
    assert_eq!(i.code, Some(0), "{}", i.stderr);
    let u = c.step("ccci-upgrade", &[]);
    let upgraded_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let s = c.state();
    assert_eq!(u.code, Some(0), "{}\n{s:#}", u.stderr);
    // The window counts from the new task's start as the wait saw it, not from the update's end.
    let at = s["deployed"]["settle_from"]["at_ms"].as_u64().unwrap();
    assert!(
        upgraded_ms.saturating_sub(at) >= 3000,
        "settle_from {at} is only {} ms before the upgrade ended",
        upgraded_ms - at
    );
    let a = c.step("ccci-assert", &["upgrade"]);
    let s = c.state();
    let asserted = op(&s, "assert upgrade");
    assert_eq!(a.code, Some(1), "{}\n{asserted:#}", a.stderr);
    let settled = assertion(asserted, "no restarts while settling");
    assert_eq!(settled["result"], "fail", "{settled}");
    let why = settled["detail"].as_str().unwrap();
    assert!(why.contains("since the deployment last changed") && why.contains("exit code 3"), "{why}");
    c.teardown();
}

#[test]
fn teardown_stops_each_container_with_its_services_signal_and_grace_period_and_names_one_that_ignores_it() {
    let c = Case::new("stopping").named("stop");
    // app: busybox httpd as PID 1 ignores SIGTERM, and its grace period is 3 s; calm exits 0
    // a second after SIGTERM, within swarm's default 10 s.
    let compose = format!(
        "version: \"3.8\"\nservices:\n{APP}    stop_grace_period: 3s\n  calm:\n    image: ccci-hello:1\n    command: [\"sh\", \"-c\", \"trap 'sleep 1; exit 0' TERM; while :; do sleep 0.2; done\"]\n"
    );
    c.commit(&compose, None);
    let d = c.deploy(false);
    assert_eq!(d.code, Some(0), "{}", d.stderr);
    let stack = c.state()["stack"].as_str().unwrap().to_string();
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    c.teardown();
    let s = c.state();
    let teardown = op(&s, "teardown");
    let why = teardown["detail"].as_str().unwrap();
    // Named with its own grace period, and killed when it ended: not a swarm agent's seconds later.
    let took: f64 = why
        .split("app took ")
        .nth(1)
        .and_then(|r| {
            r.split("s to stop: it ignores SIGTERM (it is killed when its stop grace period, 3 s, ends)").next()
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("app not named as ignoring SIGTERM: {why}"));
    assert!((2.5..6.0).contains(&took), "app took {took}s: {why}");
    assert!(!why.contains("calm took"), "{why}");
    // How each container ended, as docker recorded it: calm stopped by its own hand, app killed.
    let until = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 1).to_string();
    let label = format!("label=com.docker.stack.namespace={stack}");
    let died = common::docker_lines(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--filter",
        &label,
        "--format",
        "{{index .Actor.Attributes \"com.docker.swarm.service.name\"}} {{.Actor.Attributes.exitCode}}",
    ]);
    assert!(died.contains(&format!("{stack}_calm 0")), "{died:?}");
    assert!(died.contains(&format!("{stack}_app 137")), "{died:?}");
}

#[test]
fn a_healthcheck_that_never_passes_fails_fast_as_a_crash_loop_quoting_its_output() {
    let c = Case::new("unhealthy");
    // The app exits 0 on SIGTERM, so every task swarm stops ends `complete`, not `failed`.
    c.commit(
        r#"version: "3.8"
services:
  app:
    image: ccci-hello:1
    command: ["sh", "-c", "httpd -f -p 8080 -h / & pid=$$!; trap 'kill $$pid; exit 0' TERM; wait $$pid"]
    ports: [{target: 8080, mode: host}]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/not-there"]
      interval: 2s
      timeout: 2s
      retries: 2
      start_period: 2s
    deploy:
      restart_policy: {condition: any, delay: 1s}
"#,
        None,
    );
    let started = Instant::now();
    let d = c.deploy(false);
    let took = started.elapsed();
    let s = c.state();
    assert_eq!(d.code, Some(1), "{}\n{s:#}", d.stderr);
    assert!(took < Duration::from_secs(90), "took {took:?}: the deploy timeout is 300 s");
    let why = detail(&s, "deploy");
    assert!(why.contains("_app: crash loop: 3 tasks ended and were replaced since the deploy began"), "{why}");
    assert!(why.contains("last: unhealthy: healthcheck failed"), "{why}");
    assert!(why.ends_with("wget: server returned error: HTTP/1.1 404 Not Found"), "{why}");
    assert!(d.stderr.contains("replaced, last: unhealthy"), "progress names the replaced tasks: {}", d.stderr);
    c.teardown();
}

#[test]
fn a_task_no_node_can_take_fails_early_quoting_the_scheduler() {
    let c = Case::new("pending").set("CCCI_PENDING_TIMEOUT", "6s");
    c.commit(
        &format!(
            r#"version: "3.8"
services:
{APP}    deploy:
      placement:
        constraints: [node.labels.ccci_nonexistent == x]
"#
        ),
        None,
    );
    let started = Instant::now();
    let d = c.deploy(false);
    let took = started.elapsed();
    let s = c.state();
    assert_eq!(d.code, Some(1), "{}\n{s:#}", d.stderr);
    assert!(took < Duration::from_secs(60), "took {took:?}: the deploy timeout is 300 s");
    let why = detail(&s, "deploy");
    assert!(why.contains("_app: task pending for "), "{why}");
    assert!(why.contains("no suitable node (scheduling constraints not satisfied on 1 node)"), "{why}");
    assert!(d.stderr.contains("(pending: no suitable node"), "progress quotes the scheduler: {}", d.stderr);
    c.teardown();
}

#[test]
fn a_missing_external_network_or_secret_is_the_environments_error_before_the_run_registers() {
    let (net, secret) = (format!("ccci_absent_net_{}", marker()), format!("ccci_absent_secret_{}", marker()));
    // The operator allows recipes to join it (as `proxy` is by default), but has not created it.
    let c = Case::new("missing-net").named("absent").set("CCCI_EXTERNAL_NETWORKS", &format!("proxy,{net}"));
    c.commit(
        &format!(
            r#"version: "3.8"
services:
{APP}    networks: [outside]
    secrets: [smtp]
networks:
  outside:
    external: true
    name: {net}
secrets:
  smtp:
    external: true
    name: {secret}
"#
        ),
        None,
    );
    let before = swarm_objects();
    let d = c.deploy(false);
    assert_eq!(d.code, Some(3), "{}", d.stderr);
    assert_eq!(d.stdout, "", "no run, no run-state");
    let line = d.stderr.lines().last().unwrap();
    assert!(
        line.starts_with(&format!(
            "ccci-deploy: error: external secret {secret} missing on this swarm: create it with "
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "external network {net} missing on this swarm: create it with docker network create -d overlay --attachable {net}"
        )),
        "{line}"
    );
    assert_eq!(c.sb.entries("runs"), Vec::<String>::new(), "nothing registered");
    assert_eq!(c.sb.entries("work"), Vec::<String>::new(), "no workspace");
    // Other tests of this process deploy meanwhile: this run's objects would start `abse-`.
    let new: Vec<String> = new_objects_of_ours(&before).into_iter().filter(|o| o.contains(" abse-")).collect();
    assert_eq!(new, Vec::<String>::new());
    assert!(!c.state_file.exists());
}

/// The broken-base recipe: release 1.0.0+1 declares its network with `driver: bridge`, which
/// swarm services cannot use; the head fixes it with `overlay`.
fn broken_base(c: &Case) {
    let write = |driver: &str, version: &str, tag: Option<&str>| {
        c.commit(
            &format!(
                r#"version: "3.8"
services:
{APP}    networks: [appnet]
    deploy:
      labels: ["coop-cloud.${{STACK_NAME}}.version={version}"]
networks:
  appnet:
    driver: {driver}
"#
            ),
            tag,
        );
    };
    write("bridge", "1.0.0+1", Some("1.0.0+1"));
    write("overlay", "1.0.1+1", None);
}

/// Docker refuses the base's bridge network when the recipe is approved (its host access is
/// granted): what the failed base deploy created is removed, then the head is deployed.
#[test]
fn a_base_release_docker_refuses_is_named_removed_and_the_head_is_still_tested_by_itself() {
    let c = Case::new("broken-base").approve();
    broken_base_is_named_and_the_head_tested(&c, "cannot be used with services");
}

/// A recipe outside the allowlist may not create a bridge network (host access): the base
/// cannot deploy here at all, and the head, which does not ask for it, is deployed by itself.
#[test]
fn a_base_release_refused_for_host_access_is_named_and_the_head_is_still_tested_by_itself() {
    let c = Case::new("broken-base-unapproved");
    broken_base_is_named_and_the_head_tested(&c, "creates network appnet with the bridge driver");
}

fn broken_base_is_named_and_the_head_tested(c: &Case, why: &str) {
    broken_base(c);
    let d = c.deploy(true);
    let s = c.state();
    assert_eq!(d.code, Some(0), "{}\n{s:#}", d.stderr);
    let deployed = detail(&s, "deploy");
    let head = &s["source"]["commit"].as_str().unwrap()[..8];
    let stack = s["stack"].as_str().unwrap().to_string();
    assert!(deployed.starts_with("release 1.0.0+1, the upgrade base, does not deploy: "), "{deployed}");
    assert!(deployed.contains(&format!("; deployed {head} once, by itself: {stack}_app 1/1")), "{deployed}");
    assert!(deployed.contains(why), "{deployed}");
    assert_eq!(s["deploys"], 1, "the failed base deploy produced no deployment");
    assert!(s["upgrade"]["base_failure"].as_str().unwrap().contains(why), "{s:#}");
    // The head's overlay network is what runs now.
    assert_eq!(s["deployed"]["services"]["app"]["labels"][format!("coop-cloud.{stack}.version")], "1.0.1+1");

    assert_eq!(c.step("ccci-assert", &["install"]).code, Some(0));
    let u = c.step("ccci-upgrade", &[]);
    assert_eq!(u.code, Some(0), "{}", u.stderr);
    let s = c.state();
    assert_eq!(op(&s, "upgrade")["result"], "skip");
    assert!(
        detail(&s, "upgrade").starts_with("release 1.0.0+1, the upgrade base, does not deploy: "),
        "{}",
        detail(&s, "upgrade")
    );
    assert_eq!(c.step("ccci-assert", &["upgrade"]).code, Some(0));
    c.teardown();

    let s = c.state_file.display().to_string();
    let md = c.run("ccci-report", &["--format", "markdown", "--state", &s]);
    let first = md.stdout.lines().next().unwrap();
    assert!(first.starts_with("## ✅ recipe passed at "), "{first}");
    assert!(first.ends_with(" · release 1\\.0\\.0\\+1\\, the upgrade base\\, does not deploy"), "{first}");
    let text = c.run("ccci-report", &["--state", &s]);
    let verdict = text.stdout.lines().nth(1).unwrap().to_string();
    assert!(
        verdict.starts_with("verdict: PASS ")
            && verdict.ends_with("release 1.0.0+1, the upgrade base, does not deploy"),
        "{verdict}"
    );
}

#[test]
fn what_changed_since_the_base_reads_as_plain_words_in_the_reports() {
    let c = Case::new("debug-format").named("df");
    let labels = |l: &str| format!("version: \"3.8\"\nservices:\n{APP}    deploy:\n      labels:\n{l}");
    c.commit(&labels("        - \"coop-cloud.${STACK_NAME}.version=\"\n"), Some("1.0.0+1"));
    c.commit(
        &labels("        - \"coop-cloud.${STACK_NAME}.version=1.1.0+1\"\n        - \"coop-cloud.${STACK_NAME}.timeout=2\"\n"),
        None,
    );
    assert_eq!(c.deploy(true).code, Some(0));
    assert_eq!(c.step("ccci-assert", &["install"]).code, Some(0));
    let u = c.step("ccci-upgrade", &[]);
    let s = c.state();
    assert_eq!(u.code, Some(0), "{}\n{s:#}", u.stderr);
    let stack = s["stack"].as_str().unwrap().to_string();
    let changed = assertion(op(&s, "upgrade"), "changed since the base")["detail"].as_str().unwrap().to_string();
    assert_eq!(
        changed,
        format!(
            "app: label coop-cloud.{stack}.timeout added: \"2\"; app: label coop-cloud.{stack}.version: \"\" → \"1.1.0+1\""
        )
    );
    c.teardown();
    let file = c.state_file.display().to_string();
    for format in ["text", "junit", "markdown"] {
        let r = c.run("ccci-report", &["--format", format, "--state", &file]);
        for notation in ["None", "Some(", "[\""] {
            assert!(!r.stdout.contains(notation), "{format}: {notation} in\n{}", r.stdout);
        }
    }
    let junit = c.run("ccci-report", &["--format", "junit", "--state", &file]).stdout;
    assert!(junit.contains(&format!("label coop-cloud.{stack}.version: \"\" → \"1.1.0+1\"")), "{junit}");
}
