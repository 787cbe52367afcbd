//! Edge cases of blame and persistence: a failed reap is retried on the next janitor pass; a stage
//! that cannot save the registry still writes its run-state; a recipe whose `.env.sample` holds a
//! NUL byte or is not UTF-8 fails (the recipe's fault, exit 1); a disk that fills up during the
//! clone is the environment's error (exit 3).
//!
//! Needs docker with an active swarm, and root (tmpfs and read-only bind mounts).

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{Mount, Sandbox, git, make_repo, register, run_state};

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("running docker");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

/// A run-state of a run `id` that deployed nothing, with its workspace where the registry puts it.
fn state_of(id: &str, sd: &Path, sb: &Sandbox) -> Value {
    run_state(id, sd, &sb.root.join("src/hello"))
}

fn entry(sd: &Path, id: &str) -> Option<Value> {
    let text = std::fs::read_to_string(sd.join("runs").join(format!("{id}.json"))).ok()?;
    Some(serde_json::from_str(&text).unwrap())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// Removes the test's docker objects whatever happens.
struct Cleanup(Vec<Vec<String>>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for args in &self.0 {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = docker(&args);
        }
    }
}

/// `ccci-teardown --run` of a run whose registry entry is gone (a deploy killed before it
/// registered, an entry removed by hand) removes what the swarm holds under the run's names and
/// its workspace, and exits 0 only then: "not registered" is not "nothing is left".
#[test]
fn teardown_of_a_run_without_a_registry_entry_removes_what_it_left() {
    let sb = Sandbox::new("unreg-teardown");
    let sd = sb.state_dir();
    let id = format!("unrg-{}", &common::marker()[..6]);
    let state = state_of(&id, &sd, &sb);
    let stack = state["stack"].as_str().unwrap().to_string();
    let (volume, network) = (format!("{stack}_data"), format!("{stack}_default"));
    let _cleanup = Cleanup(vec![
        vec!["volume".into(), "rm".into(), "-f".into(), volume.clone()],
        vec!["network".into(), "rm".into(), network.clone()],
    ]);
    let label = format!("com.docker.stack.namespace={stack}");
    let (made, out) = docker(&["volume", "create", "--label", &label, &volume]);
    assert!(made, "{out}");
    let (made, out) = docker(&["network", "create", "--driver", "overlay", "--label", &label, &network]);
    assert!(made, "{out}");
    let workspace = sd.join("work").join(&id);
    std::fs::create_dir_all(workspace.join("recipe")).unwrap();
    std::fs::create_dir_all(sd.join("runs")).unwrap();

    let out = common::ccci(&sd, "ccci-teardown").args(["--run", &id]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("not registered"), "{stderr}");
    for (kind, name) in [("volume", &volume), ("network", &network)] {
        let (present, _) = docker(&[kind, "inspect", name]);
        assert!(!present, "{kind} {name} is left after teardown --run:\n{stderr}");
    }
    assert!(!workspace.exists(), "the run's workspace is left");
    assert!(entry(&sd, &id).is_none(), "teardown --run must not register the run");
}

#[test]
fn a_reap_that_failed_is_retried_on_the_next_janitor_pass() {
    let sb = Sandbox::new("reap-retry");
    let sd = sb.state_dir();
    let id = format!("reap-{}", &common::marker()[..6]);
    let state = state_of(&id, &sd, &sb);
    let stack = state["stack"].as_str().unwrap().to_string();
    let volume = format!("{stack}_data");
    let holder = format!("ccci-hold-{}", common::marker());
    let _cleanup = Cleanup(vec![
        vec!["rm".into(), "-f".into(), holder.clone()],
        vec!["volume".into(), "rm".into(), "-f".into(), volume.clone()],
    ]);
    // The run's volume, held by a container outside the stack: teardown cannot remove it.
    let label = format!("com.docker.stack.namespace={stack}");
    let (made, out) = docker(&["volume", "create", "--label", &label, &volume]);
    assert!(made, "{out}");
    let mount = format!("{volume}:/data");
    let (held, out) =
        docker(&["run", "-d", "--name", &holder, "-v", &mount, ccci::swarm::docker::PROBE_IMAGE, "sleep", "600"]);
    assert!(held, "{out}");
    register(&sd, &state, 1);

    let janitor = || {
        let out = common::ccci(&sd, "ccci-janitor")
            .env("CCCI_LEASE_TTL", "10m")
            .env("CCCI_TEARDOWN_TIMEOUT", "3s")
            .output()
            .unwrap();
        let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|a: &Value| a["run"] == id.as_str())
            .collect();
        (out.status.code(), lines, String::from_utf8_lossy(&out.stderr).into_owned())
    };

    let (code, actions, err) = janitor();
    assert_eq!(code, Some(1), "the first pass cannot reap: {actions:?}\n{err}");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("reap"), Some("fail")));
    let left = entry(&sd, &id).expect("a failed reap keeps the registry entry");
    let expires = left["lease"]["expires_at"].as_u64().unwrap();
    assert!(expires <= now(), "a failed reap left a live lease (expires {expires}, now {}): {left}", now());

    let (gone, out) = docker(&["rm", "-f", &holder]);
    assert!(gone, "{out}");
    let (code, actions, err) = janitor();
    assert_eq!(code, Some(0), "the next pass reaps it: {actions:?}\n{err}");
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!((actions[0]["action"].as_str(), actions[0]["result"].as_str()), (Some("reap"), Some("pass")));
    assert!(entry(&sd, &id).is_none(), "reaped: the registry entry is gone");
    assert!(!docker(&["volume", "inspect", &volume]).0, "the volume is gone");
}

#[test]
fn a_stage_that_cannot_save_the_registry_still_writes_its_run_state_and_exits_3() {
    let sb = Sandbox::new("unsaved");
    let sd = sb.state_dir();
    let id = format!("unsv-{}", &common::marker()[..6]);
    let state = state_of(&id, &sd, &sb);
    register(&sd, &state, now() + 600);
    let _ro = Mount::read_only(&sd.join("runs"));

    let mut c = common::ccci(&sd, "ccci-assert");
    c.arg("install").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    c.stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(state.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    let written: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the run-state ({e}): {:?}\n{stderr}", out.stdout));
    let ops: Vec<&str> = written["ops"].as_array().unwrap().iter().filter_map(|o| o["op"].as_str()).collect();
    assert_eq!(ops, ["install"], "the op is recorded in what was written");
    assert!(stderr.contains("registry entry"), "{stderr}");
}

/// The example recipe's repository at `dest`, with `.env.sample` replaced by `sample` at the
/// head of main.
fn recipe_with_env_sample(dest: &Path, sample: &[u8]) {
    make_repo(dest, Some("single-release"));
    std::fs::write(dest.join(".env.sample"), sample).unwrap();
    git(dest, &["add", ".env.sample"]);
    git(dest, &["commit", "-qm", "env sample"]);
}

/// `ccci-deploy` of `repo` at main: (exit code, run-state on stdout, stderr). Tears the run down
/// (from the state) before returning.
fn deploy(sd: &Path, repo: &Path) -> (Option<i32>, Value, String) {
    let out = common::ccci(sd, "ccci-deploy")
        .args(["--no-upgrade", "--recipe-name", "hello", "--ref", "main", "--recipe"])
        .arg(repo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let state: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no run-state on stdout ({e}); stderr:\n{stderr}"));
    let mut td = common::ccci(sd, "ccci-teardown");
    td.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::null());
    let mut child = td.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(state.to_string().as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "teardown after the test");
    (out.status.code(), state, stderr)
}

fn deploy_op(state: &Value) -> (String, String) {
    let op = state["ops"].as_array().unwrap().iter().find(|o| o["op"] == "deploy").expect("a deploy op");
    (op["result"].as_str().unwrap().to_string(), op["detail"].as_str().unwrap().to_string())
}

#[test]
fn a_nul_byte_in_the_recipes_env_sample_is_the_recipes_failure() {
    let sb = Sandbox::new("env-nul");
    let repo = sb.root.join("repo");
    recipe_with_env_sample(&repo, b"TYPE=hello\nGREETING=hel\0lo\n");
    let (code, state, err) = deploy(&sb.state_dir(), &repo);
    let (result, detail) = deploy_op(&state);
    assert_eq!((code, result.as_str()), (Some(1), "fail"), "{detail}\n{err}");
    assert!(detail.contains("NUL"), "{detail}");
}

#[test]
fn an_env_sample_that_is_not_utf8_is_the_recipes_failure() {
    let sb = Sandbox::new("env-utf8");
    let repo = sb.root.join("repo");
    recipe_with_env_sample(&repo, b"TYPE=hello\nGREETING=caf\xe9\n");
    let (code, state, err) = deploy(&sb.state_dir(), &repo);
    let (result, detail) = deploy_op(&state);
    assert_eq!((code, result.as_str()), (Some(1), "fail"), "{detail}\n{err}");
    assert!(detail.contains("not UTF-8"), "{detail}");
}

#[test]
fn a_disk_that_fills_up_during_the_clone_is_the_environments_error() {
    let sb = Sandbox::new("disk-full");
    let repo = sb.root.join("repo");
    make_repo(&repo, Some("single-release"));
    // 3 MB that do not compress, for a state directory of 1 MB.
    let mut noise = vec![0u8; 3_000_000];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut noise)).unwrap();
    std::fs::write(repo.join("blob.bin"), noise).unwrap();
    git(&repo, &["add", "blob.bin"]);
    git(&repo, &["commit", "-qm", "big"]);
    let sd = sb.state_dir();
    let _full = Mount::tmpfs(&sd, "1m");
    let (code, state, err) = deploy(&sd, &repo);
    let (result, detail) = deploy_op(&state);
    assert_eq!((code, result.as_str()), (Some(3), "error"), "{detail}\n{err}");
    assert!(detail.contains("No space left on device"), "{detail}");
}
