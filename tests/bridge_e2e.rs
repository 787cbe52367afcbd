//! End to end on this machine's real swarm: a `!testme` comment on the fake forge (TEST DOUBLE)
//! → `ccci-bridge tick` → the fake Drone runs the real generated pipeline
//! (`nix/recipe-ci.drone.yml`, through the drone-runner-exec emulation of `tests/nix`) with the
//! real binaries and the abra test double → the fake forge holds the edited status comment with
//! the report and the per-tier statuses. Needs Docker in swarm mode and the example image
//! (`scripts/setup`); without them it fails, it does not skip.

mod common;
#[path = "common/forge.rs"]
mod forge;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ccci::bridge::core::Window;
use ccci::bridge::http::Token;
use ccci::bridge::tick::{self, Hooks, Settings};
use common::{Sandbox, bin, git, make_repo, marker, repo_root};
use forge::{FPull, Fake, World};

const REPO: &str = "coop-cloud/hello";

/// Tears down whatever run this test registered, whatever happened (before its sandbox goes).
struct Cleanup {
    dir: PathBuf,
    env_file: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(runs) = self.dir.join("state/runs").read_dir() {
            for e in runs.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(id) = name.strip_suffix(".json") {
                    let bin = bin("ccci-teardown");
                    let _ = Command::new("sh")
                        .arg("-c")
                        .arg(format!(". '{}' && '{}' --run '{id}'", self.env_file.display(), bin.display()))
                        .status();
                }
            }
        }
    }
}

#[test]
fn a_testme_comment_runs_the_real_pipeline_once_and_its_report_and_tier_statuses_land_on_the_pull_request() {
    let sb = Sandbox::new("bridge-e2e");
    let dir = sb.root.clone();
    std::fs::create_dir_all(dir.join("git/coop-cloud")).unwrap();
    let env_file = dir.join("etc-ccci-env");
    let _cleanup = Cleanup { dir: dir.clone(), env_file: env_file.clone() };

    // The forge's repository: the example recipe, its pull request head kept as refs/pull/1/head.
    // The head declares no backup labels, so the backup and restore tiers are skipped (and
    // published as such): this test is about the loop around the ops, not about backups.
    let repo = dir.join("git/coop-cloud/hello.git");
    make_repo(&repo, Some("no-backup"));
    let head = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["update-ref", "refs/pull/1/head", &head]);

    std::fs::write(dir.join("forge.token"), "forge-secret-e2e\n").unwrap();
    std::fs::write(dir.join("drone.token"), "drone-secret-e2e\n").unwrap();
    let mut w = World {
        forge_token: "forge-secret-e2e".into(),
        drone_token: "drone-secret-e2e".into(),
        bot: "ccci-bot".into(),
        now: ccci::time::unix_now(),
        ..Default::default()
    };
    w.members.insert("alice".into());
    w.members.insert("ccci-bot".into());
    w.pulls.insert((REPO.into(), 1), FPull { open: true, head: head.clone(), fork: true, pushes: vec![] });
    let fake = Fake::start(w);
    fake.with(|w| w.comment(REPO, 1, "alice", "Ready for a test.\n!testme\n"));

    // One tick of the bridge.
    let settings = Settings {
        forge_url: fake.forge_url(),
        forge_token: Token::read(&dir.join("forge.token"), "forge").unwrap(),
        org: "coop-cloud".into(),
        repos: vec![REPO.into()],
        drone_url: fake.drone_url(),
        drone_token: Token::read(&dir.join("drone.token"), "Drone").unwrap(),
        drone_repo: "coop-cloud/recipe-ci".into(),
        state_dir: dir.join("bridge-state"),
        window: Window { lookback: 3600, overlap: 60 },
        timeout: Duration::from_secs(10),
    };
    let now = ccci::time::unix_now();
    let out = Hooks::none(|h| tick::tick(&settings, now, false, &|l| eprintln!("{l}"), h)).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let (params, number) = fake.with(|w| {
        assert_eq!(w.builds.len(), 1, "one build");
        (w.builds[0].params.clone(), w.builds[0].number)
    });
    assert_eq!(params["CCCI_HEAD_SHA"], head);

    // What /etc/ccci/env holds on such a host, for this test's own runs.
    let env = [
        ("CCCI_STATE_DIR", dir.join("state").display().to_string()),
        ("CCCI_DOMAIN_SUFFIX", format!("b{}.localhost", marker())),
        ("CCCI_ABRA", repo_root().join("tests/support/abra").display().to_string()),
        ("CCCI_SERVING_TIMEOUT", "8s".into()),
        ("CCCI_SETTLE_WINDOW", "2s".into()),
        ("CCCI_DEPLOY_TIMEOUT", "90s".into()),
        ("CCCI_BRIDGE_FORGE_URL", fake.forge_url()),
        ("CCCI_BRIDGE_ORG", "coop-cloud".into()),
        ("CCCI_BRIDGE_FORGE_TOKEN_FILE", dir.join("forge.token").display().to_string()),
        ("CCCI_BRIDGE_GIT_BASE", dir.join("git").display().to_string()),
    ];
    let text: String = env.iter().map(|(k, v)| format!("export {k}='{v}'\n")).collect();
    std::fs::write(&env_file, text).unwrap();

    // The fake Drone runs the build: the real generated pipeline with the real binaries.
    let link = format!("{}/coop-cloud/recipe-ci/{number}", fake.drone_url());
    let mut build_params: serde_json::Map<String, serde_json::Value> =
        params.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    build_params.insert("DRONE_BUILD_LINK".into(), link.clone().into());
    std::fs::write(dir.join("params.json"), serde_json::Value::Object(build_params).to_string()).unwrap();
    // The binaries the pipeline calls, each built and fresh.
    let binaries =
        ["ccci-deploy", "ccci-assert", "ccci-upgrade", "ccci-backup", "ccci-restore", "ccci-teardown", "ccci-report"];
    let bins = binaries.map(bin)[0].parent().unwrap().to_path_buf();
    let ran = Command::new("python3")
        .arg(repo_root().join("tests/common/run_pipeline.py"))
        .arg(repo_root().join("nix/recipe-ci.drone.yml"))
        .arg(dir.join("params.json"))
        .arg(&env_file)
        .arg(format!("{}:/usr/local/bin:/usr/bin:/bin", bins.display()))
        .output()
        .unwrap();
    assert!(ran.status.success(), "run_pipeline.py: {}", String::from_utf8_lossy(&ran.stderr));
    let result: serde_json::Value = serde_json::from_slice(&ran.stdout).unwrap();
    let steps = result["steps"].as_array().unwrap();
    let log: String = steps
        .iter()
        .map(|s| format!("--- {} (exit {})\n{}\n", s["name"], s["exit"], s["output"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(result["failed"], false, "the build failed:\n{log}");
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"verify"));
    assert_eq!(names.last(), Some(&"publish"));
    assert!(steps.iter().all(|s| s["ran"] == true && s["exit"] == 0), "{log}");

    // The forge now holds the edited status comment and the statuses.
    fake.with(|w| {
        let bot = w.bot_comments();
        assert_eq!(bot.len(), 1, "one status comment, edited in place");
        let body = &bot[0].body;
        assert!(body.contains("passed") && body.contains("install") && body.contains("upgrade"), "{body}");
        assert!(body.contains(&link), "{body}");
        assert!(body.trim_end().ends_with(&format!("build={number} -->")), "{body}");
        let latest = |ctx: &str| w.statuses.iter().rev().find(|s| s.context == ctx).cloned().unwrap();
        for ctx in ["ccci", "ccci/install", "ccci/upgrade", "ccci/custom"] {
            let s = latest(ctx);
            assert_eq!(
                (s.state.as_str(), s.sha.as_str(), s.target_url.as_str()),
                ("success", head.as_str(), link.as_str()),
                "{ctx}: {s:?}"
            );
        }
        for ctx in ["ccci/backup", "ccci/restore"] {
            let s = latest(ctx);
            assert!(s.state == "success" && s.description.starts_with("skipped"), "{ctx}: {s:?}");
        }
        assert_eq!(w.builds.len(), 1, "still one build");
    });
    // Nothing of the run is left registered: the pipeline's teardown ran.
    let left = dir
        .join("state/runs")
        .read_dir()
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
        .unwrap_or(0);
    assert_eq!(left, 0, "{log}");
}
