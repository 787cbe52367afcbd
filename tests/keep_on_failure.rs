//! Keep-on-failure and diagnostics: a failed run's diagnostics are captured and referenced from
//! the state; with CCCI_KEEP_ON_FAILURE=1 teardown leaves it deployed with its lease extended,
//! and the janitor reaps it once that lease runs out.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use common::{Sandbox, bin, make_repo, read_state};

fn cmd(state_dir: &Path, name: &str) -> Command {
    let mut c = common::ccci(state_dir, name);
    c.env("CCCI_SERVING_TIMEOUT", "3s");
    c
}

fn services(stack: &str) -> usize {
    let out = Command::new("docker")
        .args(["service", "ls", "-q", "--filter", &format!("label=com.docker.stack.namespace={stack}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_failed_run_is_kept_with_its_diagnostics_then_reaped() {
    let sb = Sandbox::new("keep");
    let sd = sb.state_dir();
    let repo = sb.root.join("repo");
    make_repo(&repo, Some("not-serving"));
    let state = sb.root.join("run.json");
    let step = |name: &str, args: &[&str], extra: &[(&str, &str)]| {
        let mut c = cmd(&sd, name);
        c.args(args).arg("--state").arg(&state);
        for (k, v) in extra {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let read = || -> Value { read_state(&state) };

    let (code, err) = step(
        "ccci-deploy",
        &["--no-upgrade", "--recipe-name", "hello", "--ref", "main", "--recipe", repo.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(step("ccci-assert", &["install"], &[]).0, 1);
    let s = read();
    let install = s["ops"].as_array().unwrap().iter().find(|o| o["op"] == "install").unwrap().clone();
    let artifacts: Vec<&str> = install["artifacts"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let run = s["run_id"].as_str().unwrap().to_string();
    let stack = s["stack"].as_str().unwrap().to_string();
    assert!(artifacts.iter().any(|a| a.ends_with("service-ps.txt")), "{artifacts:?}");
    let ps = std::fs::read_to_string(artifacts.iter().find(|a| a.ends_with("service-ps.txt")).unwrap()).unwrap();
    assert!(ps.contains(&format!("{stack}_app")) && ps.contains("Running"), "{ps}");
    let log = artifacts.iter().find(|a| a.ends_with("_app.log")).expect("the app's log was captured");
    assert!(Path::new(log).starts_with(sd.join("artifacts").join(&run)), "{log}");

    let report = Command::new(bin("ccci-report")).arg("--state").arg(&state).output().unwrap();
    let report = String::from_utf8_lossy(&report.stdout);
    assert!(report.contains("diagnostics: ") && report.contains("service-ps.txt"), "{report}");

    let (code, err) = step("ccci-teardown", &[], &[("CCCI_KEEP_ON_FAILURE", "1"), ("CCCI_KEEP_TTL", "6s")]);
    assert_eq!(code, 0, "{err}");
    let s = read();
    let teardown = s["ops"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(teardown["result"], "skip");
    assert!(teardown["detail"].as_str().unwrap().contains("kept for debugging until"), "{teardown}");
    assert_eq!(services(&stack), 1, "kept: still deployed");
    let entry: Value =
        serde_json::from_str(&std::fs::read_to_string(sd.join("runs").join(format!("{run}.json"))).unwrap()).unwrap();
    let renewed = entry["lease"]["renewed_at"].as_u64().unwrap();
    assert!(entry["lease"]["expires_at"].as_u64().unwrap() >= renewed + 5, "lease extended by the keep TTL: {entry}");

    // Within the kept lease the janitor leaves it alone; after it, the janitor reaps it.
    let early = cmd(&sd, "ccci-janitor").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&early.stdout), "", "a kept run is not reaped early");
    assert_eq!(services(&stack), 1);
    std::thread::sleep(Duration::from_secs(7));
    let dry = cmd(&sd, "ccci-janitor").arg("--dry-run").output().unwrap();
    let dry = String::from_utf8_lossy(&dry.stdout);
    assert!(dry.contains(&run) && dry.contains("\"result\":\"dry-run\""), "{dry}");
    assert_eq!(services(&stack), 1, "a dry run changes nothing");
    let late = cmd(&sd, "ccci-janitor").output().unwrap();
    let audit = String::from_utf8_lossy(&late.stdout);
    assert!(audit.contains(&run) && audit.contains("\"result\":\"pass\""), "{audit}");
    assert_eq!(services(&stack), 0);
    assert!(!sd.join("runs").join(format!("{run}.json")).exists());
    assert!(!sd.join("work").join(&run).exists());

    // The diagnostics outlive the run until CCCI_ARTIFACTS_TTL, then the janitor prunes them.
    assert!(sd.join("artifacts").join(&run).exists(), "diagnostics are kept after teardown");
    let kept = cmd(&sd, "ccci-janitor").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&kept.stdout), "", "young diagnostics stay");
    let pruned = cmd(&sd, "ccci-janitor").env("CCCI_ARTIFACTS_TTL", "0s").output().unwrap();
    let audit = String::from_utf8_lossy(&pruned.stdout);
    assert!(audit.contains("\"action\":\"prune\"") && audit.contains(&run), "{audit}");
    assert!(!sd.join("artifacts").join(&run).exists());
}
