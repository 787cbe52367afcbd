//! End-to-end, on this machine's real swarm: the compose of a recipe outside the allowlist cannot
//! reach the host. A head (or, separately, a base release) that mounts a host path or the Docker
//! socket, reads a file outside the checkout, joins the host network or adds a capability is
//! refused by `ccci-deploy` before anything is created: op `deploy` = `fail`, exit 1, one line
//! naming the service, the key and why; teardown then finds nothing but the registry entry and
//! the checkout. An approved recipe may mount the socket, and the run-state records the grant.
//!
//! The recipe is the example (`examples/hello/make-repo`), with one more commit that adds the
//! host access to `compose.yml`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{Ran, Run, Sandbox, domain_suffix, git, left_on_swarm, make_repo, op, read_state};

const LIMIT: Duration = Duration::from_secs(180);
const NEEDS: &str = "host access needs the recipe in the allowlist";

/// An edit of the example's `compose.yml`: `(after, insert)` pairs, each inserting `insert`
/// after the first line equal to `after`, and lines appended at the end.
struct Edit {
    inserts: &'static [(&'static str, &'static str)],
    append: &'static str,
}

const HOST_ROOT: Edit = Edit { inserts: &[("    volumes:", "      - /:/hostroot:ro")], append: "" };
const SOCKET: Edit =
    Edit { inserts: &[("    volumes:", "      - /var/run/docker.sock:/var/run/docker.sock:ro")], append: "" };
const HOST_FILE: Edit = Edit { inserts: &[("configs:", "  c:\n    file: ../../../../etc/hostname")], append: "" };
const HOST_NETWORK: Edit = Edit {
    inserts: &[("    networks:", "      - h"), ("networks:", "  h:\n    external: true\n    name: host")],
    append: "",
};
const CAP_ADD: Edit = Edit { inserts: &[("  app:", "    cap_add: [SYS_ADMIN]")], append: "" };

fn apply(compose: &str, edit: &Edit) -> String {
    let mut lines: Vec<String> = compose.lines().map(String::from).collect();
    for (after, insert) in edit.inserts {
        let at = lines.iter().position(|l| l == after).unwrap_or_else(|| panic!("no line {after:?} in compose.yml"));
        lines.insert(at + 1, insert.to_string());
    }
    let mut out = lines.join("\n") + "\n";
    out.push_str(edit.append);
    out
}

/// Where the edit goes: the PR's head, or the release deployed first (the head then undoes it).
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Head,
    Base,
}

/// One run of the example recipe with an edited compose, in a sandbox.
struct Pipe {
    sb: Sandbox,
    repo: PathBuf,
    state_file: PathBuf,
    deny: PathBuf,
    approve: PathBuf,
}

impl Pipe {
    fn new(name: &str, edit: &Edit, into: Place) -> Pipe {
        Pipe::with(name, |repo| {
            let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap();
            std::fs::write(repo.join("compose.yml"), apply(&compose, edit)).unwrap();
            git(repo, &["commit", "-q", "-am", "host access"]);
            if into == Place::Base {
                git(repo, &["tag", "-a", "-m", "release 1.3.0+1.36", "1.3.0+1.36"]);
                std::fs::write(repo.join("compose.yml"), compose).unwrap();
                git(repo, &["commit", "-q", "-am", "head: without host access"]);
            }
        })
    }

    /// The example recipe, with `commits` made on top of its head.
    fn with(name: &str, commits: impl FnOnce(&Path)) -> Pipe {
        let sb = Sandbox::new(name);
        let repo = sb.root.join("hello");
        make_repo(&repo, Some("ok"));
        commits(&repo);
        let deny = sb.root.join("allowlist-empty");
        std::fs::write(&deny, "# nothing approved\n").unwrap();
        let approve = sb.root.join("allowlist-hello");
        std::fs::write(&approve, format!("{}\n", repo.display())).unwrap();
        let state_file = sb.root.join("run.json");
        Pipe { repo, state_file, deny, approve, sb }
    }

    fn run(&self, bin: &str, args: &[&str], allowlist: &Path) -> Ran {
        Run::new(bin, args, &self.sb.dir("cwd"), &self.sb.dir("home"))
            .env("CCCI_STATE_DIR", self.sb.state_dir())
            .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
            .env("CCCI_ALLOWLIST", allowlist)
            .env("CCCI_DEPLOY_TIMEOUT", "90s")
            .env("CCCI_SERVING_TIMEOUT", "8s")
            .env("CCCI_SETTLE_WINDOW", "0")
            .run(LIMIT)
    }

    fn deploy(&self, allowlist: &Path, extra: &[&str]) -> Ran {
        let repo = self.repo.display().to_string();
        let state = self.state_file.display().to_string();
        let mut args = vec!["--driver", "stack", "--recipe-name", "hello", "--ref", "main", "--recipe", &repo];
        args.extend(extra);
        args.extend(["--state", &state]);
        self.run("ccci-deploy", &args, allowlist)
    }

    fn step(&self, bin: &str, args: &[&str]) -> Ran {
        let state = self.state_file.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state", &state]);
        self.run(bin, &all, &self.deny)
    }

    fn state(&self) -> Value {
        read_state(&self.state_file)
    }

    /// Teardown, then nothing of the run is left: on the swarm, in the registry, on disk.
    fn teardown(&self) -> Value {
        let t = self.step("ccci-teardown", &[]);
        let s = self.state();
        assert_eq!(t.code, Some(0), "teardown: {}", t.stderr);
        assert_eq!(op(&s, "teardown")["result"], "pass");
        assert_eq!(left_on_swarm(s["stack"].as_str().unwrap()), Vec::<String>::new(), "left on the swarm");
        assert_eq!(self.sb.entries("runs"), Vec::<String>::new(), "registry entry left");
        assert_eq!(self.sb.entries("work"), Vec::<String>::new(), "workspace left");
        s
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // A failing assertion must not leak the deployment.
        if self.state_file.exists() && !self.sb.entries("runs").is_empty() {
            let _ = self.step("ccci-teardown", &[]);
        }
    }
}

/// The recipe (not approved) is refused before anything is created, with `line` as the whole
/// detail and on stderr, and teardown leaves nothing.
fn refused(name: &str, edit: &Edit, into: Place, line: impl Fn(&Path) -> String) {
    refused_pipe(Pipe::new(name, edit, into), line);
}

fn refused_pipe(p: Pipe, line: impl Fn(&Path) -> String) {
    let d = p.deploy(&p.deny, &[]);
    assert_eq!(d.code, Some(1), "deploy: {}", d.stderr);
    let s = p.state();
    let deploy = op(&s, "deploy");
    assert_eq!(deploy["result"], "fail", "{deploy:#}");
    let recipe_dir = Path::new(s["workspace"].as_str().unwrap()).join("recipe");
    let want = line(&recipe_dir);
    assert_eq!(deploy["detail"], want.as_str());
    assert!(d.stderr.contains(&want), "stderr names the refusal: {}", d.stderr);
    assert_eq!(s["deploys"], 0, "nothing was deployed");
    assert!(s["env_file"].is_null(), "no app was created: {s:#}");
    assert!(s["host_access"].is_null(), "nothing was granted: {s:#}");
    assert_eq!(left_on_swarm(s["stack"].as_str().unwrap()), Vec::<String>::new(), "nothing on the swarm");
    let workspace: Vec<String> = std::fs::read_dir(s["workspace"].as_str().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(workspace, vec!["recipe"], "only the checkout is in the workspace");
    p.teardown();
}

/// The release (not approved) asks for host access the head does not: it cannot be the upgrade
/// base here. Nothing is created for it; the deploy names it (`line`) and deploys the head by
/// itself, whose service spec has nothing of `absent`; nothing is granted; teardown leaves
/// nothing.
fn base_refused(p: Pipe, line: impl Fn(&Path) -> String, absent: impl Fn(&Value) -> Vec<String>) {
    let d = p.deploy(&p.deny, &[]);
    let s = p.state();
    assert_eq!(d.code, Some(0), "deploy: {}\n{s:#}", d.stderr);
    let deploy = op(&s, "deploy");
    assert_eq!(deploy["result"], "pass", "{deploy:#}");
    let recipe_dir = Path::new(s["workspace"].as_str().unwrap()).join("recipe");
    let want = line(&recipe_dir);
    let detail = deploy["detail"].as_str().unwrap();
    let head = &s["source"]["commit"].as_str().unwrap()[..8];
    assert!(
        detail.starts_with(&format!(
            "release 1.3.0+1.36, the upgrade base, does not deploy: {want}; deployed {head} once, by itself: "
        )),
        "{detail}"
    );
    assert_eq!(s["upgrade"]["base_failure"], want.as_str());
    assert_eq!(s["deploys"], 1);
    assert!(s["host_access"].is_null(), "nothing was granted: {s:#}");
    let service = format!("{}_app", s["stack"].as_str().unwrap());
    let out = Command::new("docker")
        .args(["service", "inspect", "--format", "{{json .Spec.TaskTemplate}}", &service])
        .output()
        .unwrap();
    let spec: Value = serde_json::from_slice(&out.stdout).unwrap();
    for a in absent(&s) {
        assert!(!spec.to_string().contains(&a), "the release's host access {a:?} reached the swarm: {spec:#}");
    }
    p.teardown();
}

/// The id of the swarm's `host` network.
fn host_network_id() -> String {
    let out = Command::new("docker").args(["network", "inspect", "--format", "{{.Id}}", "host"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn head(what: &str) -> String {
    format!("{what}, in the head) — {NEEDS}")
}

fn base(what: &str) -> String {
    format!("{what}, in release 1.3.0+1.36) — {NEEDS}")
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_head_mounting_the_host_root_is_refused_before_anything_is_created() {
    refused("head-root", &HOST_ROOT, Place::Head, |_| head("service app mounts the host path / (volumes"));
}

#[test]
fn a_base_release_mounting_the_host_root_is_not_deployed_and_the_head_is_tested_by_itself() {
    base_refused(
        Pipe::new("base-root", &HOST_ROOT, Place::Base),
        |_| base("service app mounts the host path / (volumes"),
        |_| strings(&["/hostroot", r#""Type":"bind""#]),
    );
}

/// `../../../../etc/hostname` from the checkout at `<state>/work/<run>/recipe`.
fn outside_file(recipe_dir: &Path) -> String {
    let up4 = recipe_dir.ancestors().nth(4).unwrap().canonicalize().unwrap();
    up4.join("etc/hostname").display().to_string()
}

#[test]
fn a_head_reading_a_config_file_outside_the_checkout_is_refused() {
    refused("head-file", &HOST_FILE, Place::Head, |dir| {
        head(&format!("config c reads the file {}, outside the recipe checkout (configs.c.file", outside_file(dir)))
    });
}

#[test]
fn a_base_release_reading_a_config_file_outside_the_checkout_is_not_deployed() {
    base_refused(
        Pipe::new("base-file", &HOST_FILE, Place::Base),
        |dir| {
            base(&format!("config c reads the file {}, outside the recipe checkout (configs.c.file", outside_file(dir)))
        },
        |s| vec![format!(r#""ConfigName":"{}_c""#, s["stack"].as_str().unwrap())],
    );
}

#[test]
fn a_head_joining_the_host_network_is_refused() {
    refused("head-net", &HOST_NETWORK, Place::Head, |_| head("service app joins the host network (networks.h"));
}

#[test]
fn a_base_release_joining_the_host_network_is_not_deployed() {
    base_refused(
        Pipe::new("base-net", &HOST_NETWORK, Place::Base),
        |_| base("service app joins the host network (networks.h"),
        |_| vec![host_network_id()],
    );
}

#[test]
fn a_head_adding_a_capability_is_refused() {
    refused("head-cap", &CAP_ADD, Place::Head, |_| head("service app adds the capabilities SYS_ADMIN (cap_add"));
}

#[test]
fn a_base_release_adding_a_capability_is_not_deployed() {
    base_refused(
        Pipe::new("base-cap", &CAP_ADD, Place::Base),
        |_| base("service app adds the capabilities SYS_ADMIN (cap_add"),
        |_| strings(&["SYS_ADMIN", "CapabilityAdd"]),
    );
}

#[test]
fn a_head_mounting_the_docker_socket_is_refused() {
    refused("head-sock", &SOCKET, Place::Head, |_| {
        head("service app mounts the Docker socket /var/run/docker.sock (volumes")
    });
}

#[test]
fn a_base_release_mounting_the_docker_socket_is_not_deployed() {
    base_refused(
        Pipe::new("base-sock", &SOCKET, Place::Base),
        |_| base("service app mounts the Docker socket /var/run/docker.sock (volumes"),
        |_| strings(&["docker.sock", r#""Type":"bind""#]),
    );
}

/// A release whose `.env.sample` adds `compose.x.yml` to `COMPOSE_FILE` (harmless there), and a
/// head whose `compose.x.yml` mounts the host root while its own `.env.sample` no longer names
/// the file. The upgrade deploys the head with the app env made from the release's sample, so
/// `compose.x.yml` is deployed.
fn compose_file_kept_from_the_release(name: &str) -> Pipe {
    Pipe::with(name, |repo| {
        let sample = std::fs::read_to_string(repo.join(".env.sample")).unwrap();
        let with_x = sample.replace("COMPOSE_FILE=\"compose.yml\"", "COMPOSE_FILE=\"compose.yml:compose.x.yml\"");
        assert_ne!(with_x, sample, "the example's .env.sample names COMPOSE_FILE");
        std::fs::write(repo.join(".env.sample"), with_x).unwrap();
        let x = "version: \"3.8\"\nservices:\n  app:\n    environment:\n      - EXTRA=1\n";
        std::fs::write(repo.join("compose.x.yml"), x).unwrap();
        git(repo, &["add", "-A"]);
        git(repo, &["commit", "-q", "-m", "release: compose.x.yml"]);
        git(repo, &["tag", "-a", "-m", "release 1.3.0+1.36", "1.3.0+1.36"]);
        std::fs::write(repo.join(".env.sample"), sample).unwrap();
        let x = "version: \"3.8\"\nservices:\n  app:\n    volumes:\n      - /:/hostroot:ro\n";
        std::fs::write(repo.join("compose.x.yml"), x).unwrap();
        git(repo, &["commit", "-q", "-am", "head: compose.x.yml mounts the host, no longer named"]);
    })
}

/// The release itself is harmless, but upgrading from it would deploy the head's
/// `compose.x.yml`: the release cannot be the base, and the head is deployed by itself, with its
/// own `.env.sample` (no `compose.x.yml`).
#[test]
fn a_release_whose_app_env_would_deploy_host_access_of_the_head_is_not_the_upgrade_base() {
    base_refused(
        compose_file_kept_from_the_release("kept-env"),
        |_| {
            format!(
                "service app mounts the host path / (volumes, in the head, with the app env of release 1.3.0+1.36) — {NEEDS}"
            )
        },
        |_| strings(&["/hostroot", r#""Type":"bind""#]),
    );
}

#[test]
fn an_upgrade_judges_the_head_again_with_the_app_env_it_deploys_with() {
    let p = compose_file_kept_from_the_release("kept-env-upgrade");
    // Approved at the deploy (so the release goes on), no longer approved at the upgrade.
    let d = p.deploy(&p.approve, &[]);
    assert_eq!(d.code, Some(0), "deploy: {}", d.stderr);
    let s = p.state();
    assert_eq!(
        s["host_access"]["granted"],
        serde_json::json!([
            "service app mounts the host path / (volumes, in the head, with the app env of release 1.3.0+1.36)"
        ])
    );
    let u = p.step("ccci-upgrade", &[]);
    assert_eq!(u.code, Some(1), "upgrade: {}", u.stderr);
    let s = p.state();
    let upgrade = op(&s, "upgrade");
    assert_eq!(upgrade["result"], "fail");
    assert_eq!(upgrade["detail"], format!("service app mounts the host path / (volumes, in the head) — {NEEDS}"));
    // The release still runs: nothing of the head was deployed.
    let service = format!("{}_app", s["stack"].as_str().unwrap());
    let out = Command::new("docker")
        .args(["service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}", &service])
        .output()
        .unwrap();
    let mounts = String::from_utf8_lossy(&out.stdout);
    assert!(!mounts.contains(r#""Source":"/""#), "the head's bind mount was deployed: {mounts}");
    p.teardown();
}

#[test]
fn an_approved_recipe_mounts_the_docker_socket_and_the_grant_is_recorded() {
    let p = Pipe::new("approved-sock", &SOCKET, Place::Head);
    let d = p.deploy(&p.approve, &["--no-upgrade"]);
    assert_eq!(d.code, Some(0), "deploy: {}", d.stderr);
    let s = p.state();
    assert_eq!(op(&s, "deploy")["result"], "pass");
    let granted = &s["host_access"];
    assert_eq!(
        granted["granted"],
        serde_json::json!(["service app mounts the Docker socket /var/run/docker.sock (volumes, in the head)"])
    );
    let reason = granted["reason"].as_str().unwrap();
    let identity = s["source"]["identity"].as_str().unwrap();
    assert_eq!(reason, format!("approved: repository {identity} is in the allowlist ({}:1)", p.approve.display()));
    // The swarm has the mount the grant names.
    let service = format!("{}_app", s["stack"].as_str().unwrap());
    let out = Command::new("docker")
        .args(["service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Mounts}}", &service])
        .output()
        .unwrap();
    let mounts = String::from_utf8_lossy(&out.stdout);
    assert!(mounts.contains(r#""Type":"bind","Source":"/var/run/docker.sock""#), "{mounts}");
    // Every report shows it.
    for (format, grant, why) in [
        ("text", "mounts the Docker socket /var/run/docker.sock", "host access granted (approved: repository"),
        ("junit", "mounts the Docker socket /var/run/docker.sock", "host access granted (approved: repository"),
        (
            "markdown",
            r"mounts the Docker socket \/var\/run\/docker\.sock",
            r"**Host access granted** (approved\: repository",
        ),
    ] {
        let r = p.step("ccci-report", &["--format", format]);
        assert_eq!(r.code, Some(0), "{format}: {}", r.stderr);
        assert!(r.stdout.contains(grant) && r.stdout.contains(why), "{format}: {}", r.stdout);
    }
    p.teardown();
}

/// What the policy assumes of Docker Swarm, checked on this swarm: `cap_add`, `sysctls` and
/// generic resources reach the service spec (so they are refused as host access), while
/// `privileged`, `pid`, `ipc`, `network_mode`, `devices`, `userns_mode`, `cgroup_parent` and
/// `security_opt` are dropped with a warning. ccci refuses the dropped ones too; this test says
/// when a Docker upgrade starts honouring them.
#[test]
fn swarm_honours_cap_add_and_sysctls_and_still_ignores_privileged_pid_network_mode_and_devices() {
    let sb = Sandbox::new("swarm-keys");
    let stack = format!("swrm-{}_{}", &common::marker()[..6], domain_suffix().replace('.', "_"));
    let compose = sb.root.join("compose.yml");
    std::fs::write(
        &compose,
        r#"version: "3.8"
services:
  app:
    image: ccci-hello:1
    command: ["sleep", "3600"]
    cap_add: [SYS_ADMIN]
    sysctls: {net.core.somaxconn: 1024}
    privileged: true
    pid: host
    ipc: host
    network_mode: host
    devices: ["/dev/null:/dev/ccci-null"]
    userns_mode: host
    cgroup_parent: ccci.slice
    security_opt: ["seccomp:unconfined"]
    deploy:
      replicas: 0
      resources:
        reservations:
          generic_resources:
            - discrete_resource_spec: {kind: ccci-gpu, value: 1}
"#,
    )
    .unwrap();
    struct Remove(String);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["stack", "rm", &self.0]).output();
            for _ in 0..100 {
                if left_on_swarm(&self.0).is_empty() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    let _remove = Remove(stack.clone());
    let out = Command::new("docker")
        .args(["stack", "deploy", "--resolve-image", "never", "--detach=true", "-c"])
        .arg(&compose)
        .arg(&stack)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "docker stack deploy: {stderr}");
    let ignored = stderr.lines().find(|l| l.contains("Ignoring unsupported options")).unwrap_or("");
    for key in ["privileged", "pid", "ipc", "network_mode", "devices", "userns_mode", "cgroup_parent", "security_opt"] {
        assert!(ignored.contains(key), "swarm no longer ignores {key}: refusing it now matters ({stderr})");
    }
    let spec = Command::new("docker")
        .args(["service", "inspect", "--format", "{{json .Spec.TaskTemplate}}", &format!("{stack}_app")])
        .output()
        .unwrap();
    let spec: Value = serde_json::from_slice(&spec.stdout).unwrap();
    let container = &spec["ContainerSpec"];
    assert_eq!(container["CapabilityAdd"], serde_json::json!(["CAP_SYS_ADMIN"]), "{spec:#}");
    assert_eq!(container["Sysctls"]["net.core.somaxconn"], "1024", "{spec:#}");
    assert_eq!(
        spec["Resources"]["Reservations"]["GenericResources"][0]["DiscreteResourceSpec"]["Kind"], "ccci-gpu",
        "{spec:#}"
    );
    let text = spec.to_string();
    for absent in
        ["Privileged", "PidMode", "IpcMode", "NetworkMode", "Devices", "UsernsMode", "CgroupParent", "unconfined"]
    {
        assert!(!text.contains(absent), "the service spec now carries {absent}: {spec:#}");
    }
}

#[test]
fn a_head_switching_in_a_bind_volume_through_the_recipe_name_is_refused() {
    // The sample's TYPE names the run's own volume; the app env's TYPE is the recipe's name,
    // which names a volume that binds the host root.
    let p = Pipe::with("head-type-switch", |repo| {
        let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap();
        let edit = Edit {
            inserts: &[
                ("    volumes:", "      - ${TYPE}:/hostroot:ro"),
                ("volumes:", "  hello:\n    driver_opts: {type: none, o: bind, device: /}"),
            ],
            append: "",
        };
        std::fs::write(repo.join("compose.yml"), apply(&compose, &edit)).unwrap();
        let sample = std::fs::read_to_string(repo.join(".env.sample")).unwrap();
        std::fs::write(repo.join(".env.sample"), sample.replace("TYPE=hello", "TYPE=data")).unwrap();
        git(repo, &["commit", "-q", "-am", "host access through TYPE"]);
    });
    refused_pipe(p, |_| head("service app mounts the host path / through volume hello (volumes.hello.driver_opts"));
}

#[test]
fn a_recipe_variable_pointing_docker_at_its_own_programs_runs_nothing_on_the_host() {
    // The recipe's variables are docker's environment when it interpolates: PATH would make the
    // harness start the recipe's `docker`, LD_PRELOAD load its library.
    for (name, var) in [("tool-env-path", "PATH"), ("tool-env-preload", "LD_PRELOAD")] {
        let marker = std::env::temp_dir().join(format!("ccci-it-{}-{name}-ran", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let p = Pipe::with(name, |repo| {
            let bin = repo.parent().unwrap().join("evilbin");
            std::fs::create_dir_all(&bin).unwrap();
            let script = format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display());
            std::fs::write(bin.join("docker"), script).unwrap();
            Command::new("chmod").arg("+x").arg(bin.join("docker")).status().unwrap();
            let value = match var {
                "PATH" => format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
                _ => "./evil.so".to_string(),
            };
            let sample = std::fs::read_to_string(repo.join(".env.sample")).unwrap();
            std::fs::write(repo.join(".env.sample"), format!("{sample}{var}={value}\n")).unwrap();
            git(repo, &["commit", "-q", "-am", "the recipe's own docker"]);
        });
        let want = format!(
            "the recipe sets the variable {var} (in .env.sample, the app env or abra.sh), which would change how docker runs on the host"
        );
        let d = p.deploy(&p.deny, &[]);
        assert!(!marker.exists(), "the recipe's docker ran: {}", d.stderr);
        assert_eq!(d.code, Some(1), "deploy: {}", d.stderr);
        let s = p.state();
        let deploy = op(&s, "deploy");
        assert_eq!(deploy["result"], "fail", "{deploy:#}");
        assert!(deploy["detail"].as_str().unwrap().contains(&want), "{deploy:#}");
        assert_eq!(s["deploys"], 0, "nothing was deployed");
        assert_eq!(left_on_swarm(s["stack"].as_str().unwrap()), Vec::<String>::new(), "nothing on the swarm");
        p.teardown();
    }
}
