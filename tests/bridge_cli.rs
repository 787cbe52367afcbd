//! `ccci-bridge` as a process: settings checked up front, exit codes, one line on failure, and
//! nothing changed when the forge cannot be reached.

mod common;
#[path = "common/forge.rs"]
mod forge;

use std::path::Path;
use std::process::Command;

use forge::{FPull, Fake, World, sandbox_with_tokens};

/// The bridge with only `settings` in its environment (plus PATH).
fn run(dir: &Path, args: &[&str], settings: &[(&str, String)]) -> (i32, String, String) {
    let mut c = Command::new(common::bin("ccci-bridge"));
    c.args(args).env_clear().env("PATH", std::env::var_os("PATH").unwrap()).env("HOME", dir);
    for (k, v) in settings {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn settings(dir: &Path, forge: &str, drone: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CCCI_BRIDGE_FORGE_URL", forge.into()),
        ("CCCI_BRIDGE_FORGE_TOKEN_FILE", dir.join("forge.token").display().to_string()),
        ("CCCI_BRIDGE_ORG", "coop-cloud".into()),
        ("CCCI_BRIDGE_REPOS", "coop-cloud/hello".into()),
        ("CCCI_BRIDGE_DRONE_URL", drone.into()),
        ("CCCI_BRIDGE_DRONE_TOKEN_FILE", dir.join("drone.token").display().to_string()),
        ("CCCI_BRIDGE_DRONE_REPO", "coop-cloud/recipe-ci".into()),
        ("CCCI_BRIDGE_STATE_DIR", dir.join("state").display().to_string()),
        ("CCCI_BRIDGE_HTTP_TIMEOUT", "2s".into()),
    ]
}

/// A loopback port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn a_tick_against_an_unreachable_forge_exits_3_with_one_line_and_changes_nothing() {
    let sb = sandbox_with_tokens("bridge-cli-unreachable");
    let dir = sb.root.clone();
    let url = format!("http://127.0.0.1:{}", dead_port());
    let (code, stdout, stderr) = run(&dir, &["tick"], &settings(&dir, &url, &url));
    assert_eq!(code, 3, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("ccci-bridge: error: asking the forge who the bot is:") && stderr.contains("unreachable"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
    assert!(!dir.join("state").exists(), "nothing was created");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_or_bad_settings_are_refused_with_exit_2_naming_the_setting() {
    let sb = sandbox_with_tokens("bridge-cli-settings");
    let dir = sb.root.clone();
    let good = settings(&dir, "http://127.0.0.1:1", "http://127.0.0.1:1");
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("CCCI_BRIDGE_FORGE_URL", None, "CCCI_BRIDGE_FORGE_URL is not set"),
        ("CCCI_BRIDGE_FORGE_URL", Some("https://bot:tok@forge.example"), "credentials in the URL"),
        ("CCCI_BRIDGE_FORGE_TOKEN_FILE", Some("/nonexistent/token"), "no such file"),
        ("CCCI_BRIDGE_ORG", None, "CCCI_BRIDGE_ORG is not set"),
        ("CCCI_BRIDGE_ORG", Some("coop cloud"), "CCCI_BRIDGE_ORG="),
        ("CCCI_BRIDGE_REPOS", Some("hello"), "not `owner/name`"),
        ("CCCI_BRIDGE_DRONE_REPO", Some("a/b/c"), "CCCI_BRIDGE_DRONE_REPO="),
        ("CCCI_BRIDGE_DRONE_TOKEN_FILE", None, "CCCI_BRIDGE_DRONE_TOKEN_FILE is not set"),
        ("CCCI_BRIDGE_LOOKBACK", Some("8d"), "CCCI_BRIDGE_LOOKBACK="),
        ("CCCI_BRIDGE_STATE_DIR", Some("relative/state"), "not an absolute path"),
    ];
    for (name, value, want) in cases {
        let mut s: Vec<(&str, String)> = good.iter().filter(|(k, _)| *k != name).cloned().collect();
        if let Some(v) = value {
            s.push((name, v.to_string()));
        }
        let (code, stdout, stderr) = run(&dir, &["tick"], &s);
        assert_eq!(code, 2, "{name}={value:?}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{name}={value:?}: {stderr}");
        assert!(!stderr.contains("tok@"), "{stderr}");
    }
    std::fs::write(dir.join("empty.token"), "\n").unwrap();
    let mut s = good.clone();
    s.retain(|(k, _)| *k != "CCCI_BRIDGE_FORGE_TOKEN_FILE");
    s.push(("CCCI_BRIDGE_FORGE_TOKEN_FILE", dir.join("empty.token").display().to_string()));
    let (code, _, stderr) = run(&dir, &["tick"], &s);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("token file is empty"), "{stderr}");
    assert!(!dir.join("state").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let sb = sandbox_with_tokens("bridge-cli-usage");
    let dir = sb.root.clone();
    for args in [&[][..], &["frobnicate"], &["tick", "--bogus"], &["check-config", "--dry-run"]] {
        let (code, _, stderr) = run(&dir, args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
    // What each says: every command it accepts; a single-valued option given twice.
    for (args, says) in [
        (&[][..], "a command is needed: tick, check-config, verify or publish"),
        (&["publish", "--pr", "1", "--pr", "2"], "--pr given twice (see ccci-bridge --help)"),
        (&["verify", "--refusal", "a", "--refusal", "a"], "--refusal given twice"),
    ] {
        let (code, _, stderr) = run(&dir, args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let (code, stdout, _) = run(&dir, &["--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("ccci-bridge tick [--dry-run]") && stdout.contains("Exit status"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn world() -> World {
    let mut w = World {
        forge_token: "forge-secret-1".into(),
        drone_token: "drone-secret-2".into(),
        bot: "ccci-bot".into(),
        now: ccci::time::unix_now(),
        ..Default::default()
    };
    w.members.insert("alice".into());
    w.members.insert("ccci-bot".into());
    w.pulls.insert(
        ("coop-cloud/hello".into(), 7),
        FPull { open: true, head: "ab".repeat(20), fork: false, pushes: vec![] },
    );
    w
}

#[test]
fn dry_run_prints_the_decisions_and_sends_no_write() {
    let sb = sandbox_with_tokens("bridge-cli-dry");
    let dir = sb.root.clone();
    let fake = Fake::start(world());
    fake.with(|w| w.comment("coop-cloud/hello", 7, "alice", "!testme"));
    let (code, stdout, stderr) =
        run(&dir, &["tick", "--dry-run"], &settings(&dir, &fake.forge_url(), &fake.drone_url()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("coop-cloud/hello: start run ") && stdout.contains("pull request 7"), "{stdout}");
    assert!(stderr.contains("cold start"), "{stderr}");
    assert!(fake.with(|w| w.requests.iter().all(|r| r.method == "GET")));
    assert!(!dir.join("state").exists());
    // The real tick then does it, once.
    let (code, _, stderr) = run(&dir, &["tick"], &settings(&dir, &fake.forge_url(), &fake.drone_url()));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&dir, &["tick"], &settings(&dir, &fake.forge_url(), &fake.drone_url()));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(fake.with(|w| w.builds.len()), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_names_what_the_tokens_cannot_do() {
    let sb = sandbox_with_tokens("bridge-cli-check");
    let dir = sb.root.clone();
    let fake = Fake::start(world());
    let s = settings(&dir, &fake.forge_url(), &fake.drone_url());
    let (code, stdout, stderr) = run(&dir, &["check-config"], &s);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok: the forge token is the bot ccci-bot") && stdout.contains("ok: Drone"), "{stdout}");
    fake.with(|w| w.membership_redirect = true);
    let (code, stdout, _) = run(&dir, &["check-config"], &s);
    assert_eq!(code, 3);
    assert!(stdout.contains("FAILED: ccci-bot must be a member of coop-cloud"), "{stdout}");
    fake.with(|w| w.drone_token = "another".into());
    let (code, stdout, _) = run(&dir, &["check-config"], &s);
    assert_eq!(code, 3);
    assert!(stdout.contains("FAILED: Drone:") && stdout.contains("401"), "{stdout}");
    std::fs::remove_dir_all(&dir).unwrap();
}
