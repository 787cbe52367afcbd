//! The pipeline's steps on the fake forge (TEST DOUBLE): `verify` refuses a run whose requester
//! left the organisation or whose pull request moved, and `publish` edits the bridge's status
//! comment in place and sets one status per tier plus the overall one, replacing a re-run's.

mod common;
#[path = "common/forge.rs"]
mod forge;

use std::path::{Path, PathBuf};
use std::process::Command;

use forge::{FPull, Fake, World, sandbox_with_tokens};

const REPO: &str = "coop-cloud/hello";

fn bridge(dir: &Path, fake: &Fake, args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin("ccci-bridge"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("HOME", dir)
        .env("CCCI_BRIDGE_FORGE_URL", fake.forge_url())
        .env("CCCI_BRIDGE_FORGE_TOKEN_FILE", dir.join("forge.token"))
        .env("CCCI_BRIDGE_ORG", "coop-cloud")
        .env("CCCI_BRIDGE_REPOS", REPO)
        .env("CCCI_BRIDGE_DRONE_URL", fake.drone_url())
        .env("CCCI_BRIDGE_DRONE_TOKEN_FILE", dir.join("drone.token"))
        .env("CCCI_BRIDGE_DRONE_REPO", "coop-cloud/recipe-ci")
        .env("CCCI_BRIDGE_STATE_DIR", dir.join("state"))
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into())
}

/// A git repository whose `refs/pull/7/head` is a commit of its own, like the forge's base
/// repository; its head commit.
fn base_repository(dir: &Path) -> (PathBuf, String) {
    let repo = dir.join("base");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "--quiet"]);
    git(&["commit", "--quiet", "--allow-empty", "-m", "main"]);
    git(&["commit", "--quiet", "--allow-empty", "-m", "pr"]);
    let head = git(&["rev-parse", "HEAD"]);
    git(&["update-ref", "refs/pull/7/head", &head]);
    git(&["reset", "--quiet", "--hard", "HEAD~1"]);
    (repo, head)
}

fn world(head: &str) -> World {
    let mut w = World {
        forge_token: "forge-secret-1".into(),
        drone_token: "drone-secret-2".into(),
        bot: "ccci-bot".into(),
        now: ccci::time::unix_now(),
        ..Default::default()
    };
    w.members.insert("alice".into());
    w.members.insert("ccci-bot".into());
    w.pulls.insert((REPO.into(), 7), FPull { open: true, head: head.into(), fork: true, pushes: vec![] });
    w
}

/// A run-state with the given ops, as the binaries write it.
fn run_state(dir: &Path, ops: &[(&str, &str, &str)]) -> PathBuf {
    let ops: Vec<serde_json::Value> = ops
        .iter()
        .map(|(op, result, detail)| {
            serde_json::json!({ "op": op, "result": result, "started_at": "2026-11-21T22:34:08Z", "duration_ms": 10, "detail": detail, "assertions": [] })
        })
        .collect();
    let s = serde_json::json!({
        "schema": "ccci.run/v1", "run_id": "hell-3fa9c2", "recipe": "hello", "driver": "stack",
        "source": { "repo": "https://forge.example/coop-cloud/hello.git", "ref": "x", "commit": null },
        "domain": "hell-3fa9c2.ccci.localhost", "stack": "hell-3fa9c2_ccci_localhost",
        "workspace": "/var/lib/ccci/work/hell-3fa9c2", "created_at": "2026-11-21T22:34:08Z", "deploys": 1,
        "ops": ops, "versions": { "ccci": "0.1.0" }
    });
    let f = dir.join(format!("run-{}.json", ops.len()));
    std::fs::write(&f, s.to_string()).unwrap();
    f
}

fn run_args<'a>(req: &'a str, head: &'a str) -> Vec<&'a str> {
    vec!["--request", req, "--recipe-repo", REPO, "--pr", "7", "--sha", head, "--trigger", "alice"]
}

#[test]
fn publish_edits_the_status_comment_in_place_and_sets_one_status_per_tier_replacing_a_rerun() {
    let sb = sandbox_with_tokens("bridge-publish-publish");
    let dir = sb.root.clone();
    let head = "ab".repeat(20);
    let fake = Fake::start(world(&head));
    let c = fake.with(|w| w.comment(REPO, 7, "alice", "!testme"));
    assert_eq!(bridge(&dir, &fake, &["tick"]).0, 0);
    let req = ccci::bridge::core::request_id(REPO, c);
    // The tick set every tier back to pending.
    fake.with(|w| {
        for ctx in ["ccci", "ccci/install", "ccci/upgrade", "ccci/backup", "ccci/restore", "ccci/custom"] {
            assert!(w.statuses.iter().any(|s| s.context == ctx && s.state == "pending"), "{ctx} pending");
        }
    });
    let state = run_state(
        &dir,
        &[
            ("deploy", "pass", ""),
            ("install", "pass", "2 assertions passed"),
            ("upgrade", "fail", "the head is not running"),
        ],
    );
    let link = format!("{}/coop-cloud/recipe-ci/1", fake.drone_url());
    let mut args = vec!["publish"];
    args.extend(run_args(&req, &head));
    args.extend(["--state", state.to_str().unwrap(), "--link", &link, "--build", "1"]);
    let (code, stderr) = bridge(&dir, &fake, &args);
    assert_eq!(code, 0, "{stderr}");
    let latest = |w: &World, ctx: &str| w.statuses.iter().rev().find(|s| s.context == ctx).cloned().unwrap();
    fake.with(|w| {
        let bot = w.bot_comments();
        assert_eq!(bot.len(), 1, "edited in place, not posted again");
        assert!(bot[0].body.contains("failed") && bot[0].body.contains("the head is not running"), "{}", bot[0].body);
        assert!(bot[0].body.trim_end().ends_with("build=1 -->"), "the marker stays: {}", bot[0].body);
        assert_eq!(latest(w, "ccci/install").state, "success");
        assert_eq!(latest(w, "ccci/upgrade").state, "failure");
        assert_eq!(latest(w, "ccci/backup").description, "not run");
        assert_eq!(latest(w, "ccci").state, "failure");
        for ctx in ["ccci", "ccci/install", "ccci/upgrade", "ccci/backup", "ccci/restore", "ccci/custom"] {
            assert_eq!(latest(w, ctx).target_url, link, "{ctx} links the build");
            assert_eq!(latest(w, ctx).sha, head);
        }
    });
    // A re-run that passes replaces every stale status.
    let state = run_state(
        &dir,
        &[("deploy", "pass", ""), ("install", "pass", ""), ("upgrade", "pass", ""), ("custom", "pass", "")],
    );
    args.truncate(11);
    args.extend(["--state", state.to_str().unwrap(), "--link", &link]);
    assert_eq!(bridge(&dir, &fake, &args).0, 0);
    fake.with(|w| {
        assert_eq!(latest(w, "ccci/upgrade").state, "success");
        assert_eq!(latest(w, "ccci").state, "success");
        assert_eq!(w.bot_comments().len(), 1);
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_refuses_a_requester_who_left_and_a_head_that_moved_and_publish_says_so() {
    let sb = sandbox_with_tokens("bridge-publish-verify");
    let dir = sb.root.clone();
    let (base, head) = base_repository(&dir);
    let fake = Fake::start(world(&head));
    let req = "0123456789abcdef";
    let url = base.display().to_string();
    let refusal = dir.join("refusal");
    let verify = |sha: &str| {
        let mut a = vec!["verify"];
        a.extend(run_args(req, sha));
        a.extend(["--recipe-url", url.as_str(), "--refusal", refusal.to_str().unwrap()]);
        bridge(&dir, &fake, &a)
    };
    let (code, stderr) = verify(&head);
    assert_eq!(code, 0, "{stderr}");
    assert!(!refusal.exists());
    let other = "cd".repeat(20);
    let (code, stderr) = verify(&other);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("is now {head}, not the requested {other}")), "{stderr}");
    assert!(std::fs::read_to_string(&refusal).unwrap().contains("nothing is tested"));
    std::fs::remove_file(&refusal).unwrap();
    fake.with(|w| w.members.remove("alice"));
    let (code, stderr) = verify(&head);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("@alice is no longer a member of coop-cloud"), "{stderr}");
    let mut a = vec!["publish"];
    a.extend(run_args(req, &head));
    a.extend(["--refusal", refusal.to_str().unwrap(), "--state", "/nonexistent/run.json"]);
    assert_eq!(bridge(&dir, &fake, &a).0, 0);
    fake.with(|w| {
        assert!(w.statuses.len() == 6 && w.statuses.iter().all(|s| s.state == "error"), "{:?}", w.statuses);
        let posted = w.bot_comments();
        assert!(
            posted[0].body.contains("not tested") && posted[0].body.contains("no longer a member"),
            "{}",
            posted[0].body
        );
    });
    std::fs::remove_dir_all(&dir).unwrap();
}
