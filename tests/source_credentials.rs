//! Credentials in a recipe URL (`https://user:token@host/…`) are used for the clone only: the
//! token reaches no stdout, stderr, run-state, registry entry, report or workspace file of any
//! step, also when the clone fails and git's own error is quoted.
//!
//! Needs docker with an active swarm (ccci-deploy checks it before registering).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Ran, Run, Sandbox, domain_suffix, marker};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

fn run(sb: &Sandbox, bin: &str, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut r = Run::new(bin, args, &sb.dir("cwd"), &sb.dir("home"))
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
        .env("CCCI_ALLOWLIST", sb.root.join("allowlist"));
    for (k, v) in env {
        r = r.env(k, v);
    }
    r.run(LIMIT)
}

/// Every file under `dir`, with its content (lossy).
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(contents(&p));
        } else {
            out.push((p.display().to_string(), String::from_utf8_lossy(&std::fs::read(&p).unwrap_or_default()).into()));
        }
    }
    out
}

#[test]
fn credentials_in_the_source_url_reach_no_output_of_any_step() {
    credentials_reach_no_output("source-credentials", false);
}

/// The same with the URL in the environment (`--recipe-env`), as the Drone pipeline passes it.
#[test]
fn credentials_in_a_source_url_from_the_environment_reach_no_output_of_any_step() {
    credentials_reach_no_output("source-credentials-env", true);
}

fn credentials_reach_no_output(name: &str, from_env: bool) {
    let sb = Sandbox::new(name);
    let token = format!("T0KEN-{}", marker());
    // The allowlist approves the repository by its identity: credentials play no part in it.
    std::fs::write(sb.root.join("allowlist"), "127.0.0.1:1/coop-cloud/hello\n").unwrap();
    // Nothing listens on port 1: the clone fails at once, and git's error is quoted.
    let source = format!("https://ci:{token}@127.0.0.1:1/coop-cloud/hello.git");
    let state_file = sb.root.join("run.json");
    let state_arg = state_file.display().to_string();

    let mut outputs: Vec<(String, String)> = vec![];
    let d = if from_env {
        let args = ["--recipe-env", "CCCI_TEST_RECIPE", "--ref", "main", "--state", &state_arg];
        run(&sb, "ccci-deploy", &args, &[("CCCI_TEST_RECIPE", &source)])
    } else {
        run(&sb, "ccci-deploy", &["--recipe", &source, "--ref", "main", "--state", &state_arg], &[])
    };
    assert_eq!(d.code, Some(1), "the clone fails the deploy: {}", d.stderr);
    outputs.push(("deploy stdout".into(), d.stdout.clone()));
    outputs.push(("deploy stderr".into(), d.stderr.clone()));
    let state: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(state["source"]["repo"], "https://127.0.0.1:1/coop-cloud/hello.git");
    assert_eq!(state["source"]["identity"], "127.0.0.1:1/coop-cloud/hello");
    assert_eq!(state["source"]["approved_by"]["entry"], "127.0.0.1:1/coop-cloud/hello");
    let deploy = state["ops"].as_array().unwrap().iter().find(|o| o["op"] == "deploy").unwrap();
    assert_eq!(deploy["result"], "fail");
    let detail = deploy["detail"].as_str().unwrap();
    assert!(detail.contains("git clone https://127.0.0.1:1/coop-cloud/hello.git: "), "git's error is quoted: {detail}");
    assert!(d.stderr.contains("cloning https://127.0.0.1:1/coop-cloud/hello.git at main"), "{}", d.stderr);
    // The registry entry and anything else the run wrote while it existed.
    let written = contents(&sb.state_dir());
    assert!(written.iter().any(|(p, _)| p.contains("/runs/")), "a registry entry exists: {written:?}");
    outputs.extend(written);

    for (what, args) in [
        ("assert", vec!["install"]),
        ("report text", vec!["--format", "text"]),
        ("report junit", vec!["--format", "junit"]),
        ("report markdown", vec!["--format", "markdown"]),
    ] {
        let bin = if what == "assert" { "ccci-assert" } else { "ccci-report" };
        let mut all = args.clone();
        all.extend(["--state", &state_arg]);
        let r = run(&sb, bin, &all, &[]);
        assert!(r.code.is_some_and(|c| c <= 1), "{what}: {}", r.stderr);
        outputs.push((format!("{what} stdout"), r.stdout));
        outputs.push((format!("{what} stderr"), r.stderr));
    }
    outputs.push(("state after assert".into(), std::fs::read_to_string(&state_file).unwrap()));
    let t = run(&sb, "ccci-teardown", &["--state", &state_arg], &[]);
    assert_eq!(t.code, Some(0), "teardown: {}", t.stderr);
    outputs.push(("teardown stdout".into(), t.stdout));
    outputs.push(("teardown stderr".into(), t.stderr));
    outputs.push(("final state".into(), std::fs::read_to_string(&state_file).unwrap()));
    outputs.extend(contents(&sb.state_dir()));

    for secret in [token.as_str(), "//ci"] {
        for (what, text) in &outputs {
            assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
        }
    }
}
