//! End-to-end: the pipe deploy → assert install → teardown on this machine's real swarm, with
//! both drivers (abra through its test double), for a good recipe and for recipes that break.
//! Needs Docker in swarm mode and the example image (`scripts/setup`); without them these tests
//! fail, they do not skip.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use common::{Sandbox, assertion, ccci, docker_lines, left_on_swarm, make_repo, op, read_state};

struct Run {
    sb: Sandbox,
    state_file: PathBuf,
}

impl Run {
    fn new(name: &str, variant: &str) -> Run {
        let sb = Sandbox::new(&format!("e2e-{name}"));
        make_repo(&sb.root.join("hello"), Some(variant));
        Run { state_file: sb.root.join("run.json"), sb }
    }

    /// A binary with the clean environment of [`common::ccci`] and this suite's timeouts.
    fn cmd(&self, name: &str) -> Command {
        let mut c = ccci(&self.sb.state_dir(), name);
        c.env("CCCI_SERVING_TIMEOUT", "8s").env("CCCI_SETTLE_WINDOW", "2s").env("CCCI_DEPLOY_TIMEOUT", "90s");
        c
    }

    fn deploy(&self, driver: &str, upgrade: bool) -> Output {
        let mut c = self.cmd("ccci-deploy");
        if !upgrade {
            c.arg("--no-upgrade");
        }
        c.args(["--driver", driver, "--recipe-name", "hello", "--ref", "main", "--recipe"])
            .arg(self.sb.root.join("hello"))
            .arg("--state")
            .arg(&self.state_file)
            .output()
            .unwrap()
    }

    fn step(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(name).args(args).arg("--state").arg(&self.state_file).output().unwrap()
    }

    fn state(&self) -> Value {
        read_state(&self.state_file)
    }

    /// Run ids in the registry.
    fn registered(&self) -> Vec<String> {
        self.sb.entries("runs").into_iter().filter(|n| n.ends_with(".json")).collect()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // A failing assertion must not leak the deployment: tear down whatever the state names.
        if self.state_file.exists() && !self.registered().is_empty() {
            let _ = self.step("ccci-teardown", &[]);
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deploy → install → teardown; returns the final state after checking teardown left nothing.
fn pipe(name: &str, driver: &str, variant: &str) -> (Value, i32, i32) {
    let (s, codes) = full_pipe(name, driver, variant, false);
    (s, codes[0], codes[1])
}

/// Deploy → install → (upgrade → assert upgrade) → teardown; the exit codes of the stages
/// before teardown, after checking teardown left nothing.
fn full_pipe(name: &str, driver: &str, variant: &str, upgrade: bool) -> (Value, Vec<i32>) {
    full_pipe_with(name, driver, variant, upgrade, |_| {})
}

/// [`full_pipe`] that lets `look` inspect the swarm (given the state) before the teardown.
fn full_pipe_with(
    name: &str,
    driver: &str,
    variant: &str,
    upgrade: bool,
    look: impl FnOnce(&Value),
) -> (Value, Vec<i32>) {
    let run = Run::new(name, variant);
    let d = run.deploy(driver, upgrade);
    assert!(run.state_file.exists(), "deploy wrote no state: {}", stderr(&d));
    let mut codes = vec![d.status.code().unwrap()];
    codes.push(run.step("ccci-assert", &["install"]).status.code().unwrap());
    if upgrade {
        let u = run.step("ccci-upgrade", &[]);
        eprintln!("{}", stderr(&u));
        codes.push(u.status.code().unwrap());
        codes.push(run.step("ccci-assert", &["upgrade"]).status.code().unwrap());
    }
    look(&run.state());
    let t = run.step("ccci-teardown", &[]);
    let state = run.state();
    assert_eq!(t.status.code(), Some(0), "teardown: {}", stderr(&t));
    assert_eq!(op(&state, "teardown")["result"], "pass");
    let left = left_on_swarm(state["stack"].as_str().unwrap());
    assert!(left.is_empty(), "left on the swarm after teardown: {left:?}");
    assert_eq!(run.registered(), Vec::<String>::new(), "registry entry left behind");
    assert!(!run.sb.state_dir().join("work").join(state["run_id"].as_str().unwrap()).exists(), "workspace left behind");
    (state, codes)
}

#[test]
fn stack_driver_deploys_once_and_serves() {
    let (s, deploy, install) = pipe("stack-ok", "stack", "ok");
    assert_eq!((deploy, install), (0, 0), "{s:#}");
    assert_eq!(s["deploys"], 1);
    assert_eq!(op(&s, "deploy")["result"], "pass");
    assert_eq!(op(&s, "install")["result"], "pass");
    let app = &s["deployed"]["services"]["app"];
    assert_eq!(app["running_replicas"], 1);
    assert!(app["image_id"].as_str().unwrap().starts_with("sha256:"));
    assert!(s["source"]["nar_hash"].as_str().unwrap().starts_with("sha256:"));
    let serving =
        op(&s, "install")["assertions"].as_array().unwrap().iter().find(|a| a["name"] == "serving app:8080").unwrap();
    assert_eq!(serving["result"], "pass");
}

#[test]
fn abra_driver_deploys_once_and_serves() {
    let (s, deploy, install) = pipe("abra-ok", "abra", "ok");
    assert_eq!((deploy, install), (0, 0), "{s:#}");
    assert_eq!(s["deploys"], 1);
    assert_eq!(s["driver"], "abra");
    let stack = s["stack"].as_str().unwrap();
    let labels = &s["deployed"]["services"]["app"]["labels"];
    let commit = s["source"]["commit"].as_str().unwrap();
    // The chaos deploy stamped the code under test (`docs/abra-contract.md` §3).
    assert_eq!(labels[format!("coop-cloud.{stack}.chaos-version")], commit[..8]);
    assert!(s["versions"]["abra"].as_str().unwrap().contains("test-double"));
}

#[test]
fn missing_image_fails_deploy_with_the_task_error() {
    let (s, deploy, install) = pipe("stack-noimage", "stack", "missing-image");
    assert_eq!(deploy, 1);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail");
    assert!(d["detail"].as_str().unwrap().contains("No such image"), "{d}");
    assert_eq!(install, 0);
    assert_eq!(op(&s, "install")["result"], "skip");
}

#[test]
fn crash_loop_fails_deploy_with_abra_driver() {
    let (s, deploy, _) = pipe("abra-crash", "abra", "crash");
    assert_eq!(deploy, 1);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains("crash loop") && detail.contains("exit code 3"), "{detail}");
}

#[test]
fn not_serving_fails_install() {
    let (s, deploy, install) = pipe("stack-404", "stack", "not-serving");
    assert_eq!((deploy, install), (0, 1));
    let i = op(&s, "install");
    assert_eq!(i["result"], "fail");
    assert!(i["detail"].as_str().unwrap().contains("404"), "{i}");
}

#[test]
fn overlong_config_name_is_refused_before_deploying() {
    let (s, deploy, _) = pipe("stack-longcfg", "stack", "long-config");
    assert_eq!(deploy, 1);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail");
    let detail = d["detail"].as_str().unwrap();
    // 65 characters under the default domain suffix; this process's suffix is longer.
    let name = format!("{}_index_template_for_the_welcome_page_v3", s["stack"].as_str().unwrap());
    assert!(detail.contains(&format!("config name \"{name}\" is {} characters", name.len())), "{detail}");
    assert_eq!(s["deploys"], 0, "nothing was deployed");
}

/// The head (deployed as is with --no-upgrade) needs a secret marked `generate=false`: no CI run
/// can know an operator's value, so the deploy stops as the environment's error, naming it.
fn deploy_needing_an_operator_secret_is_an_environment_error(driver: &str) {
    let (s, deploy, _) = pipe(&format!("{driver}-opsecret-deploy"), driver, "operator-secret");
    assert_eq!(deploy, 3, "{s:#}");
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "error");
    let stack = s["stack"].as_str().unwrap();
    let detail = d["detail"].as_str().unwrap();
    assert!(
        detail
            .contains(&format!("secret {stack}_db_password_v1 is marked generate=false (SECRET_DB_PASSWORD_VERSION)")),
        "{detail}"
    );
    assert_eq!(s["deploys"], 0, "nothing was deployed");
}

#[test]
fn a_deploy_needing_a_secret_only_an_operator_can_insert_is_an_environment_error_with_the_stack_driver() {
    deploy_needing_an_operator_secret_is_an_environment_error("stack");
}

#[test]
fn a_deploy_needing_a_secret_only_an_operator_can_insert_is_an_environment_error_with_the_abra_driver() {
    deploy_needing_an_operator_secret_is_an_environment_error("abra");
}

#[test]
fn a_config_name_broken_by_an_unset_variable_is_refused_before_deploying() {
    let (s, deploy, _) = pipe("stack-unsetver", "stack", "unset-version");
    assert_eq!(deploy, 1);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail");
    let detail = d["detail"].as_str().unwrap();
    let stack = s["stack"].as_str().unwrap();
    assert!(
        detail.contains(&format!("config name \"{stack}_index_\" must start and end with a letter or digit")),
        "{detail}"
    );
    assert!(detail.contains("variables with no value: INDEX_VERSION"), "{detail}");
    assert_eq!(s["deploys"], 0, "nothing was deployed");
}

#[test]
fn upgrade_moves_release_to_head_with_abra() {
    let (s, codes) = full_pipe("abra-upgrade", "abra", "ok", true);
    assert_eq!(codes, vec![0, 0, 0, 0], "{s:#}");
    assert_eq!(s["deploys"], 1, "the in-place redeploy is not a deploy");
    assert_eq!(s["upgrade"]["base"]["tag"], "1.1.0+1.36");
    let u = op(&s, "upgrade");
    assert_eq!(u["result"], "pass");
    let stack = s["stack"].as_str().unwrap();
    let commit = s["source"]["commit"].as_str().unwrap();
    let moved = assertion(u, "moved to the head");
    assert_eq!(moved["result"], "pass");
    assert!(moved["detail"].as_str().unwrap().contains(&format!("chaos-version={}", &commit[..8])), "{moved}");
    let changed = assertion(u, "changed since the base")["detail"].as_str().unwrap().to_string();
    assert!(changed.contains("ccci-hello:1 → ccci-hello:2"), "{changed}");
    assert_eq!(s["deployed"]["services"]["app"]["labels"][format!("coop-cloud.{stack}.version")], "1.2.0+1.36");
    assert_eq!(op(&s, "assert upgrade")["result"], "pass");
}

#[test]
fn upgrade_without_version_bump_is_still_proven_with_stack_driver() {
    let (s, codes) = full_pipe("stack-cfgonly", "stack", "config-only", true);
    assert_eq!(codes, vec![0, 0, 0, 0], "{s:#}");
    let u = op(&s, "upgrade");
    assert_eq!(assertion(u, "moved to the head")["result"], "pass");
    let changed = assertion(u, "changed since the base");
    assert_eq!(changed["result"], "pass");
    let detail = changed["detail"].as_str().unwrap();
    assert!(detail.contains("index_v2") && detail.contains("index_v3"), "{detail}");
    assert!(!detail.contains("image"), "only the config moved: {detail}");
    assert_eq!(s["deploys"], 1);
}

#[test]
fn single_release_skips_upgrade() {
    let (s, codes) = full_pipe("stack-single", "stack", "single-release", true);
    assert_eq!(codes, vec![0, 0, 0, 0], "{s:#}");
    assert!(s["upgrade"]["base"].is_null());
    let u = op(&s, "upgrade");
    assert_eq!(u["result"], "skip");
    assert!(u["detail"].as_str().unwrap().contains("no previous release"), "{u}");
    assert_eq!(op(&s, "assert upgrade")["result"], "skip");
}

#[test]
fn upgrade_to_a_crashing_head_fails_with_the_task_error() {
    let (s, codes) = full_pipe("abra-upgrade-crash", "abra", "crash", true);
    assert_eq!(&codes[..3], &[0, 0, 1], "{s:#}");
    let u = op(&s, "upgrade");
    assert_eq!(u["result"], "fail");
    let detail = u["detail"].as_str().unwrap();
    assert!(detail.contains("exit code 3") || detail.contains("non-zero exit"), "{detail}");
    assert_eq!(op(&s, "assert upgrade")["result"], "skip");
    assert_eq!(s["deploys"], 1);
}

/// The length in bytes of the secret file `path` in the running container of `<stack>_app`.
fn secret_length_in_app(stack: &str, path: &str) -> usize {
    let ids = docker_lines(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={stack}_app")]);
    let id = ids.first().unwrap_or_else(|| panic!("no running container of {stack}_app"));
    docker_lines(&["exec", id, "wc", "-c", path])[0].split_whitespace().next().unwrap().parse().unwrap()
}

/// The head adds a secret (`SECRET_DB_PASSWORD_VERSION=v1 # length=48`) and a variable used in a
/// label: the upgrade adds both to the app env and generates the secret before redeploying.
fn upgrade_that_adds_a_secret_passes(driver: &str) {
    let mut length = 0;
    let (s, codes) = full_pipe_with(&format!("{driver}-newsecret"), driver, "new-secret", true, |s| {
        length = secret_length_in_app(s["stack"].as_str().unwrap(), "/run/secrets/db_password");
    });
    assert_eq!(codes, vec![0, 0, 0, 0], "{s:#}");
    let stack = s["stack"].as_str().unwrap();
    let u = op(&s, "upgrade");
    assert_eq!(u["result"], "pass", "{u}");
    let detail = u["detail"].as_str().unwrap();
    assert!(detail.contains("added SECRET_DB_PASSWORD_VERSION, GREETING to the app env"), "{detail}");
    assert!(detail.contains(&format!("generated secret {stack}_db_password_v1")), "{detail}");
    assert_eq!(assertion(u, "moved to the head")["result"], "pass");
    let app = &s["deployed"]["services"]["app"];
    assert_eq!(app["labels"]["hello.greeting"], "bonjour", "the new variable reached the deploy");
    assert!(app["secrets"].as_array().unwrap().iter().any(|n| n == &format!("{stack}_db_password_v1")), "{app}");
    assert_eq!(length, 48, "the # length=48 hint was honoured");
}

#[test]
fn an_upgrade_that_adds_a_secret_and_a_variable_passes_with_the_stack_driver() {
    upgrade_that_adds_a_secret_passes("stack");
}

#[test]
fn an_upgrade_that_adds_a_secret_and_a_variable_passes_with_the_abra_driver() {
    upgrade_that_adds_a_secret_passes("abra");
}

#[test]
fn an_upgrade_that_needs_a_secret_only_an_operator_can_insert_is_skipped_as_not_testable() {
    let (s, codes) = full_pipe("stack-opsecret", "stack", "operator-secret", true);
    assert_eq!(codes, vec![0, 0, 0, 0], "{s:#}");
    let stack = s["stack"].as_str().unwrap();
    let u = op(&s, "upgrade");
    assert_eq!(u["result"], "skip", "{u}");
    let detail = u["detail"].as_str().unwrap();
    assert!(detail.starts_with("not testable by ccci"), "{detail}");
    assert!(
        detail.contains(&format!("{stack}_db_password_v1 (SECRET_DB_PASSWORD_VERSION generate=false)")),
        "{detail}"
    );
}
