//! The kill matrix: a pipe SIGKILLed at eight points (and a registry entry deleted by hand);
//! after leases run out, one janitor pass leaves nothing of any of those runs: no service, task,
//! container, volume, secret, config, network, env file, workspace or registry entry — also when
//! two janitors pass at once. A stack outside ccci's naming on the same swarm survives.
//!
//! All runs of this file share one state directory and a domain suffix unique to this process,
//! so its janitor sees exactly these runs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{Sandbox, docker_lines, domain_suffix, left_on_swarm, make_repo};

const LEASE_TTL_SECS: u64 = 3;

struct Env {
    state_dir: PathBuf,
}

impl Env {
    fn cmd(&self, name: &str) -> Command {
        let mut c = common::ccci(&self.state_dir, name);
        c.env("CCCI_LEASE_TTL", format!("{LEASE_TTL_SECS}s"))
            .env("CCCI_DEPLOY_TIMEOUT", "120s")
            .env("CCCI_SERVING_TIMEOUT", "60s");
        c
    }
}

/// Runs `name args --state FILE` to completion.
fn step(env: &Env, state: &Path, name: &str, args: &[&str]) -> i32 {
    let out = env.cmd(name).args(args).arg("--state").arg(state).output().unwrap();
    out.status.code().unwrap_or(-1)
}

/// Runs `name args --state FILE` in its own process group and SIGKILLs the whole group as soon
/// as a line of its progress contains `marker` (plus `delay`), the way a cancelled build dies.
/// Returns the progress lines seen.
fn kill_at(env: &Env, state: &Path, name: &str, args: &[&str], marker: &str, delay: Duration) -> Vec<String> {
    use std::os::unix::process::CommandExt;
    let mut child = env
        .cmd(name)
        .args(args)
        .arg("--state")
        .arg(state)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = vec![];
    for line in stderr.lines() {
        let line = line.unwrap();
        let hit = line.contains(marker);
        seen.push(line);
        if hit {
            std::thread::sleep(delay);
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
            let _ = child.wait();
            return seen;
        }
    }
    let _ = child.wait();
    panic!("{name} ended before printing {marker:?}:\n{}", seen.join("\n"));
}

/// The run id a deploy announced in its progress (`registered run hell-3fa9c2 (...)`).
fn announced_run(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| l.split("registered run ").nth(1)?.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| panic!("no run was registered:\n{}", lines.join("\n")))
}

fn stack_of(run: &str) -> String {
    format!("{run}.{}", domain_suffix()).replace('.', "_")
}

struct Case {
    name: &'static str,
    variant: &'static str,
    /// What happens to the run before the janitor: a function of the env, the recipe repo, the
    /// state file; returns the run id.
    kill: fn(&Env, &Path, &Path) -> String,
}

fn deploy_args<'a>(driver: &'a str, repo: &'a Path, upgrade: bool) -> Vec<String> {
    let mut a =
        vec!["--driver".into(), driver.into(), "--recipe-name".into(), "hello".into(), "--ref".into(), "main".into()];
    if !upgrade {
        a.push("--no-upgrade".into());
    }
    a.push("--recipe".into());
    a.push(repo.display().to_string());
    a
}

fn run_id_of(state: &Path) -> String {
    let s: Value = serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    s["run_id"].as_str().unwrap().to_string()
}

fn kill_deploy(
    env: &Env,
    repo: &Path,
    state: &Path,
    driver: &str,
    upgrade: bool,
    marker: &str,
    delay: Duration,
) -> String {
    let args = deploy_args(driver, repo, upgrade);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    announced_run(&kill_at(env, state, "ccci-deploy", &args, marker, delay))
}

fn full_deploy(env: &Env, repo: &Path, state: &Path, driver: &str, upgrade: bool) -> String {
    let args = deploy_args(driver, repo, upgrade);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(step(env, state, "ccci-deploy", &args), 0, "deploy");
    run_id_of(state)
}

const CASES: &[Case] = &[
    Case {
        name: "after registering",
        variant: "ok",
        kill: |e, r, s| kill_deploy(e, r, s, "stack", false, "registered run", Duration::ZERO),
    },
    Case {
        name: "during app creation",
        variant: "ok",
        kill: |e, r, s| kill_deploy(e, r, s, "abra", false, "abra app new", Duration::from_millis(300)),
    },
    Case {
        name: "during the convergence wait",
        variant: "slow-start",
        kill: |e, r, s| kill_deploy(e, r, s, "abra", false, "abra app deploy", Duration::from_secs(4)),
    },
    Case { name: "after deploy", variant: "ok", kill: |e, r, s| full_deploy(e, r, s, "stack", false) },
    Case {
        name: "during an assert",
        variant: "not-serving",
        kill: |e, r, s| {
            let id = full_deploy(e, r, s, "stack", false);
            let _ = kill_at(e, s, "ccci-assert", &["install"], "checking serving app", Duration::from_secs(2));
            id
        },
    },
    Case {
        name: "during upgrade",
        variant: "ok",
        kill: |e, r, s| {
            let id = full_deploy(e, r, s, "abra", true);
            assert_eq!(step(e, s, "ccci-assert", &["install"]), 0);
            let _ = kill_at(e, s, "ccci-upgrade", &[], "--chaos --force", Duration::from_millis(500));
            id
        },
    },
    Case {
        name: "during teardown",
        variant: "ok",
        kill: |e, r, s| {
            let id = full_deploy(e, r, s, "abra", false);
            let _ = kill_at(e, s, "ccci-teardown", &[], "abra app undeploy", Duration::from_millis(500));
            id
        },
    },
    Case {
        name: "registry entry deleted by hand",
        variant: "ok",
        kill: |e, r, s| {
            let id = full_deploy(e, r, s, "abra", false);
            std::fs::remove_file(e.state_dir.join("runs").join(format!("{id}.json"))).unwrap();
            id
        },
    },
];

/// A stack outside ccci's naming, removed by the test itself.
struct Bystander(String);

impl Bystander {
    fn deploy(sb: &Sandbox) -> Bystander {
        let name = format!("smok-bystander-{}", common::marker());
        let compose = sb.dir("bystander").join("compose.yml");
        std::fs::write(
            &compose,
            "version: \"3.8\"\nservices:\n  app:\n    image: ccci-hello:1\n    command: [\"sleep\", \"3600\"]\nvolumes: {}\n",
        )
        .unwrap();
        let ok = Command::new("docker")
            .args(["stack", "deploy", "--resolve-image", "never", "--detach=true", "-c"])
            .arg(&compose)
            .arg(&name)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
        Bystander(name)
    }

    fn services(&self) -> Vec<String> {
        docker_lines(&[
            "service",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &format!("label=com.docker.stack.namespace={}", self.0),
        ])
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["stack", "rm", &self.0]).output();
        let deadline = Instant::now() + Duration::from_secs(90);
        let label = format!("label=com.docker.stack.namespace={}", self.0);
        while Instant::now() < deadline {
            let left = docker_lines(&["ps", "-aq", "--filter", &label]).len()
                + docker_lines(&["network", "ls", "-q", "--filter", &label]).len();
            if left == 0 {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// If the test fails half-way, a last janitor pass removes whatever its runs left (this
/// process's domain suffix makes them findable without the registry).
struct CleanUp<'a>(&'a Env);

impl Drop for CleanUp<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::thread::sleep(Duration::from_secs(LEASE_TTL_SECS + 1));
            let _ = self.0.cmd("ccci-janitor").output();
        }
    }
}

#[test]
fn one_janitor_pass_reaps_every_killed_run_and_spares_the_rest() {
    let sb = Sandbox::new("kill-matrix");
    let env = Env { state_dir: sb.state_dir() };
    let bystander = Bystander::deploy(&sb);
    let _cleanup = CleanUp(&env);

    // The eight runs die concurrently, each in its own way.
    let runs: Vec<(String, &Case)> = std::thread::scope(|scope| {
        let handles: Vec<_> = CASES
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let (env, sb) = (&env, &sb);
                scope.spawn(move || {
                    let repo = sb.root.join(format!("repo-{i}"));
                    make_repo(&repo, Some(case.variant));
                    let state = sb.root.join(format!("run-{i}.json"));
                    ((case.kill)(env, &repo, &state), case)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a kill case panicked")).collect()
    });

    // Something of each run is on the node until the janitor comes (the first killed right
    // after registering has at least its registry entry).
    for (run, case) in &runs {
        let has_something = !left_on_swarm(&stack_of(run)).is_empty()
            || env.state_dir.join("runs").join(format!("{run}.json")).exists()
            || env.state_dir.join("work").join(run).exists();
        assert!(has_something, "{}: the kill left nothing to reap, the case tests nothing", case.name);
    }

    // Two janitors pass at once (a timer's and an operator's, say): together they reap every run
    // exactly once.
    std::thread::sleep(Duration::from_secs(LEASE_TTL_SECS + 2));
    let passes: Vec<_> = std::thread::scope(|scope| {
        let both: Vec<_> = (0..2).map(|_| scope.spawn(|| env.cmd("ccci-janitor").output().unwrap())).collect();
        both.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut actions: Vec<Value> = vec![];
    for out in &passes {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "janitor:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        actions.extend(stdout.lines().map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line")));
    }
    for a in &actions {
        assert!(a["action"] == "reap" || a["result"] == "skipped", "only reaps and polite skips: {a}");
    }
    let actions: Vec<Value> = actions.into_iter().filter(|a| a["action"] == "reap").collect();

    for (run, case) in &runs {
        let reaps: Vec<_> = actions.iter().filter(|a| a["run"] == run.as_str()).collect();
        assert_eq!(reaps.len(), 1, "{}: reaped once: {reaps:?}", case.name);
        assert_eq!(reaps[0]["result"], "pass", "{}: {:?}", case.name, reaps[0]);
        assert_eq!(left_on_swarm(&stack_of(run)), Vec::<String>::new(), "{}: left on the swarm", case.name);
        assert!(!env.state_dir.join("runs").join(format!("{run}.json")).exists(), "{}: registry entry", case.name);
        assert!(!env.state_dir.join("work").join(run).exists(), "{}: workspace (and env file)", case.name);
    }
    assert_eq!(actions.len(), runs.len(), "the janitors reaped nothing else: {actions:#?}");
    assert_eq!(bystander.services().len(), 1, "the stack outside ccci's naming survived");

    // A second pass finds nothing to do.
    let again = env.cmd("ccci-janitor").output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&again.stdout), "", "nothing left to reap");
}
