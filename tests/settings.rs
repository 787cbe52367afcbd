//! Settings and `--state FILE` are checked by every binary that acts on a run before it creates
//! anything: each `CCCI_*` setting of `ccci::config::SETTINGS`, set to a value it must refuse,
//! makes each of `ccci-deploy`, `ccci-assert`, `ccci-upgrade`, `ccci-teardown` and
//! `ccci-janitor` exit 2 with one line naming the setting and what it accepts, with nothing
//! created: the state directory stays absent and the working directory empty.
//!
//! Needs no swarm: nothing here gets that far.

mod common;

use std::path::Path;
use std::time::Duration;

use ccci::config::{Accepts, SETTINGS, Setting};
use common::{Mount, Run, Sandbox, run_state};

const LIMIT: Duration = Duration::from_secs(30);

/// The binaries that act on a run, with arguments that would otherwise get them going.
fn invocations(sb: &Sandbox) -> Vec<(&'static str, Vec<String>)> {
    let recipe = sb.dir("src/hello").display().to_string();
    vec![
        ("ccci-deploy", vec!["--recipe".into(), recipe, "--ref".into(), "main".into()]),
        ("ccci-assert", vec!["install".into()]),
        ("ccci-upgrade", vec![]),
        ("ccci-teardown", vec![]),
        ("ccci-janitor", vec![]),
    ]
}

/// One value of each kind that must be refused.
fn bad_value(s: &Setting) -> &'static str {
    match s.accepts {
        // 2^64-1 seconds: added to "now" it wrapped a lease into the past.
        Accepts::Duration { .. } => "18446744073709551615",
        Accepts::Count { .. } => "33",
        Accepts::Flag => "yes",
        Accepts::StateDir => "/proc/ccci-state",
        Accepts::Dir => "/nonexistent/ccci-overlays",
        Accepts::File => "/nonexistent/ccci-allowlist",
        Accepts::Program => "bin/abra",
        Accepts::Url => "http://user:token@127.0.0.1:80",
        Accepts::DomainSuffix => "CI_Zone!.example",
        Accepts::ServerName => "../evil",
        Accepts::NetworkNames => "proxy,host",
        Accepts::AccountName => "coop cloud",
        Accepts::Repository => "hello",
        Accepts::Repositories => "coop-cloud/hello,extra",
        Accepts::GitBase => "http://forge.example",
    }
}

fn assert_refused(sb: &Sandbox, bin: &str, args: &[String], env: &[(&str, &str)], says: &[&str]) {
    let home = sb.dir("home");
    let cwd = sb.dir("cwd");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Run::new(bin, &args, &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin("");
    for (k, v) in env {
        run = run.env(k, v);
    }
    let ran = run.run(LIMIT);
    let what = format!("{bin} {args:?} with {env:?}");
    assert_eq!(ran.code, Some(2), "{what}: exit status; stderr:\n{}", ran.stderr);
    assert_eq!(ran.stdout, "", "{what}: stdout");
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line on stderr:\n{}", ran.stderr);
    for s in says {
        assert!(lines[0].contains(s), "{what}: the error does not mention {s:?}: {}", lines[0]);
    }
    assert!(!lines[0].contains("token"), "{what}: a credential reached stderr: {}", lines[0]);
    assert!(!sb.state_dir().exists(), "{what}: created CCCI_STATE_DIR");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0, "{what}: wrote into its working directory");
    assert_eq!(std::fs::read_dir(&home).unwrap().count(), 0, "{what}: wrote into HOME");
}

#[test]
fn every_binary_refuses_every_malformed_setting_before_creating_anything() {
    let sb = Sandbox::new("settings-all");
    for s in SETTINGS {
        let bad = bad_value(s);
        let accepts = s.accepts.describe().replace('`', "");
        for (bin, args) in invocations(&sb) {
            assert_refused(&sb, bin, &args, &[(s.name, bad)], &[s.name, &accepts]);
        }
    }
}

#[test]
fn a_lease_ttl_that_would_wrap_into_the_past_is_refused_by_deploy() {
    let sb = Sandbox::new("settings-lease");
    let (bin, args) = invocations(&sb).remove(0);
    assert_refused(&sb, bin, &args, &[("CCCI_LEASE_TTL", "18446744073709551615")], &["CCCI_LEASE_TTL", "24h"]);
}

#[test]
fn a_flag_that_is_not_one_of_1_0_true_false_is_refused_not_read_as_off() {
    let sb = Sandbox::new("settings-flag");
    for v in ["no", "off", "False", "2"] {
        assert_refused(&sb, "ccci-teardown", &[], &[("CCCI_KEEP_ON_FAILURE", v)], &["CCCI_KEEP_ON_FAILURE"]);
    }
}

#[test]
fn a_state_dir_that_is_not_writable_is_refused_before_anything_is_created() {
    let sb = Sandbox::new("settings-statedir");
    let file = sb.root.join("a-file");
    std::fs::write(&file, "").unwrap();
    for dir in ["/proc/ccci-state".to_string(), file.join("state").display().to_string()] {
        for (bin, args) in invocations(&sb) {
            assert_refused(&sb, bin, &args, &[("CCCI_STATE_DIR", &dir)], &["CCCI_STATE_DIR", &dir]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --state FILE
// ---------------------------------------------------------------------------------------------

/// A directory mounted read-only (a tmpfs remounted `ro`), holding `run.json`: writable by no
/// one, root included. Unmounted when dropped.
fn read_only_dir(at: &Path, state: &str) -> Mount {
    let m = Mount::tmpfs(at, "1m");
    std::fs::write(at.join("run.json"), state).unwrap();
    m.remount_read_only();
    m
}

/// A well-formed run-state of a run that is not registered.
fn some_state(sb: &Sandbox) -> String {
    run_state(&format!("sett-{}", &common::marker()[..6]), &sb.state_dir(), &sb.root.join("src/hello")).to_string()
}

#[test]
fn every_binary_with_state_refuses_a_state_file_whose_directory_does_not_exist() {
    let sb = Sandbox::new("settings-state-missing");
    let file = sb.root.join("no-such-dir/run.json").display().to_string();
    for (bin, mut args) in invocations(&sb).into_iter().filter(|(b, _)| *b != "ccci-janitor") {
        args.extend(["--state".to_string(), file.clone()]);
        assert_refused(&sb, bin, &args, &[], &["--state", "no-such-dir"]);
    }
}

#[test]
fn every_binary_with_state_refuses_a_state_file_it_could_not_write_back() {
    let sb = Sandbox::new("settings-state-ro");
    let ro = read_only_dir(&sb.root.join("ro"), &some_state(&sb));
    let file = ro.0.join("run.json").display().to_string();
    for (bin, mut args) in invocations(&sb).into_iter().filter(|(b, _)| *b != "ccci-janitor") {
        args.extend(["--state".to_string(), file.clone()]);
        assert_refused(&sb, bin, &args, &[], &["--state", "not writable"]);
    }
}
