//! Three runs in parallel with a 3-second lease while a janitor passes every two seconds with no
//! grace at all: no live run is reaped, all three pass, nothing is left afterwards.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use common::{Sandbox, left_on_swarm, make_repo};

fn cmd(state_dir: &Path, name: &str) -> Command {
    let mut c = common::ccci(state_dir, name);
    c.env("CCCI_SERVING_TIMEOUT", "30s");
    c
}

fn pipe(sb: &Sandbox, i: usize, driver: &str) -> (Value, Vec<i32>) {
    let repo = sb.root.join(format!("repo-{i}"));
    make_repo(&repo, None);
    let state = sb.root.join(format!("run-{i}.json"));
    let sd = sb.state_dir();
    let mut codes = vec![];
    let mut step = |name: &str, args: &[&str]| {
        let out = cmd(&sd, name).args(args).arg("--state").arg(&state).output().unwrap();
        codes.push(out.status.code().unwrap_or(-1));
    };
    step(
        "ccci-deploy",
        &["--driver", driver, "--recipe-name", "hello", "--ref", "main", "--recipe", repo.to_str().unwrap()],
    );
    step("ccci-assert", &["install"]);
    step("ccci-upgrade", &[]);
    step("ccci-assert", &["upgrade"]);
    step("ccci-teardown", &[]);
    (serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap(), codes)
}

#[test]
fn a_janitor_every_two_seconds_never_reaps_a_live_run() {
    let sb = Sandbox::new("concurrency");
    let done = AtomicBool::new(false);
    let (results, audit) = std::thread::scope(|scope| {
        let janitor = scope.spawn(|| {
            let mut audit = String::new();
            let mut passes = 0;
            while !done.load(Ordering::Relaxed) {
                let out = cmd(&sb.state_dir(), "ccci-janitor").output().unwrap();
                audit.push_str(&String::from_utf8_lossy(&out.stdout));
                passes += 1;
                std::thread::sleep(Duration::from_secs(2));
            }
            (audit, passes)
        });
        let runs: Vec<_> = [(0, "abra"), (1, "stack"), (2, "abra")]
            .into_iter()
            .map(|(i, driver)| {
                let sb = &sb;
                scope.spawn(move || pipe(sb, i, driver))
            })
            .collect();
        let results: Vec<_> = runs.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::Relaxed);
        (results, janitor.join().unwrap())
    });
    let (audit, passes) = audit;
    assert!(passes >= 5, "the janitor passed only {passes} times");
    for (state, codes) in &results {
        assert_eq!(codes, &vec![0, 0, 0, 0, 0], "{state:#}");
        assert_eq!(state["deploys"], 1);
        let run = state["run_id"].as_str().unwrap();
        for line in audit.lines().filter(|l| l.contains(run)) {
            let a: Value = serde_json::from_str(line).unwrap();
            assert_ne!(a["action"], "reap", "a live run was reaped: {a}");
        }
    }
    let runs = sb.state_dir().join("runs");
    let left: Vec<_> = std::fs::read_dir(&runs)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(left.is_empty(), "registry entries left: {left:?}");
    for (state, _) in &results {
        let left = left_on_swarm(state["stack"].as_str().unwrap());
        assert!(left.is_empty(), "{}: left on the swarm: {left:?}", state["run_id"]);
    }
}
