//! The janitor reads the registry as input it cannot trust: an entry that is unreadable, corrupt
//! or of another installation is one audit line (`skip`, `error`, with the reason) and is left
//! alone, and the pass carries on with the others.
//!
//! Needs docker with an active swarm (the janitor lists it).

mod common;

use std::path::Path;

use common::{Sandbox, marker, registry_entry, run_state};
use serde_json::Value;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", &marker()[..6])
}

/// A registry entry for run `run` under `suffix`, its lease long expired.
fn entry(sb: &Sandbox, run: &str, suffix: &str) -> Value {
    let mut state = run_state(run, &sb.state_dir(), Path::new("/nowhere"));
    let domain = format!("{run}.{suffix}");
    state["stack"] = domain.replace('.', "_").into();
    state["domain"] = domain.into();
    registry_entry(&state, 1)
}

fn write(path: &Path, text: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_corrupt_or_foreign_registry_entry_is_audited_as_an_error_and_the_expired_valid_one_is_still_reaped() {
    let sb = Sandbox::new("janitor-entries");
    let runs = sb.state_dir().join("runs");
    let suffix = common::domain_suffix();
    let (valid, corrupt, foreign, swapped, victim) = (id("jv"), id("jc"), id("jf"), id("js"), id("jw"));
    write(&runs.join(format!("{valid}.json")), entry(&sb, &valid, &suffix).to_string());
    write(&sb.state_dir().join("work").join(&valid).join("recipe/compose.yml"), "services: {}\n");
    write(&runs.join(format!("{corrupt}.json")), "{\"schema\": \"ccci.registry/v1\", \"lease\": ");
    write(&runs.join(format!("{foreign}.json")), entry(&sb, &foreign, "o-other.localhost").to_string());
    // An entry whose file name and run disagree would reap a run the file does not name.
    write(&runs.join(format!("{swapped}.json")), entry(&sb, &victim, &suffix).to_string());
    // And one pointing at a workspace elsewhere, which must survive.
    let elsewhere = sb.dir("victim");
    write(&elsewhere.join("precious"), "must survive\n");
    let mut far = entry(&sb, &id("je"), &suffix);
    far["run"]["workspace"] = elsewhere.to_str().unwrap().into();
    write(&runs.join(format!("{}.json", id("je"))), far.to_string());

    let out = common::ccci(&sb.state_dir(), "ccci-janitor").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let audit: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("one JSON object a line")).collect();
    let line = |run: &str| -> Value {
        let mine: Vec<&Value> = audit.iter().filter(|a| a["run"] == run).collect();
        assert_eq!(mine.len(), 1, "one audit line for {run}: {audit:#?}\n{stderr}");
        mine[0].clone()
    };

    let reaped = line(&valid);
    assert_eq!((reaped["action"].as_str(), reaped["result"].as_str()), (Some("reap"), Some("pass")), "{reaped}");
    assert!(!runs.join(format!("{valid}.json")).exists(), "the valid entry is reaped");
    assert!(!sb.state_dir().join("work").join(&valid).exists(), "with its workspace");

    for (run, says) in [
        (corrupt.as_str(), "EOF while parsing"),
        (foreign.as_str(), "field `domain`"),
        (swapped.as_str(), &format!("holds run {victim}") as &str),
        (id("je").as_str(), "field `workspace`"),
    ] {
        let a = line(run);
        assert_eq!((a["action"].as_str(), a["result"].as_str()), (Some("skip"), Some("error")), "{a}");
        assert!(a["detail"].as_str().unwrap().contains(says), "{run}: {a}");
        assert!(runs.join(format!("{run}.json")).exists(), "{run}: the entry is left for a person");
    }
    assert!(audit.iter().all(|a| a["run"] != victim.as_str()), "nothing done to the run a swapped entry names");
    assert!(elsewhere.join("precious").exists(), "a workspace named elsewhere is not touched");
    assert_eq!(out.status.code(), Some(1), "audited errors fail the pass: {stderr}");
}
