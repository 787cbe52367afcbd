//! The abra contract (`docs/abra-contract.md` §0, §1, §7), pinned:
//!
//! (a) the exact argv of every abra call `ccci::swarm::abra::Abra` builds, and that each flag in it is
//!     in `USED_FLAGS` for its verb (so the start-up probe checks it);
//! (b) the environment abra gets: `ABRA_DIR` is the run's (a throwaway one for the probe), nothing outside the allow-list, and a
//!     secret in ccci-deploy's own environment reaches neither abra nor the run-state nor the logs
//!     (ccci-deploy run against a recording fake abra);
//! (c) the `--help` drift probe, against the abra TEST DOUBLE (`tests/support/abra`) told to drop
//!     a flag: exit 3 naming the flag and the verb, nothing created;
//! (d) abra missing: exit 3 and a hint to set `CCCI_ABRA`.
//!
//! Needs docker with an active swarm, and the binaries `cargo build --workspace` builds.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ccci::run::naming::{Domain, RecipeName};
use ccci::swarm::abra::{Abra, BACKUP_FLAGS, USED_FLAGS};
use common::{Run, Sandbox, left_on_swarm, make_repo, new_objects_of_ours, repo_root, swarm_objects};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(120);

/// What ccci may pass to abra from its own environment (`Abra::env`), besides `ABRA_DIR`.
const ALLOWED_ENV: &[&str] = &[
    "ABRA_DIR",
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
];

/// Variables a `/bin/sh` script (the fake) sets for itself.
const SHELL_ENV: &[&str] = &["PWD", "OLDPWD", "SHLVL", "_"];

// ---------------------------------------------------------------------------------------------
// (a) argv
// ---------------------------------------------------------------------------------------------

fn abra() -> Abra {
    Abra { program: "abra".into(), abra_dir: "/var/lib/ccci/work/hell-3fa9c2/abra".into(), server: "default".into() }
}

fn domain() -> Domain {
    Domain::parse("hell-3fa9c2.ccci.localhost").unwrap()
}

/// The USED_FLAGS entry for `args`: the longest verb `args` starts with.
fn used_flags_for(args: &[String]) -> (&'static [&'static str], &'static [&'static str]) {
    USED_FLAGS
        .iter()
        .filter(|(verb, _)| args.len() >= verb.len() && verb.iter().zip(args).all(|(v, a)| v == a))
        .max_by_key(|(verb, _)| verb.len())
        .map(|(v, f)| (*v, *f))
        .unwrap_or_else(|| panic!("no USED_FLAGS entry for {args:?}"))
}

/// Every argv ccci builds, by what it is for.
fn all_argvs() -> Vec<(&'static str, Vec<String>)> {
    let (a, d) = (abra(), domain());
    let recipe = RecipeName::parse("hello").unwrap();
    vec![
        ("app new (chaos)", a.app_new_args(&recipe, None, &d, true)),
        ("app new at a version", a.app_new_args(&recipe, Some("1.1.0+1.36"), &d, false)),
        ("head chaos deploy", a.app_deploy_args(&d, None, true, false)),
        ("forced chaos redeploy", a.app_deploy_args(&d, None, true, true)),
        ("versioned deploy", a.app_deploy_args(&d, Some("1.1.0+1.36"), false, false)),
        ("undeploy", a.app_undeploy_args(&d)),
        ("volume remove", a.volume_remove_args(&d)),
        ("secret remove", a.secret_remove_args(&d)),
        ("secret generate before the upgrade", a.secret_generate_args(&d, "api_key", "v1")),
    ]
}

#[test]
fn app_new_argv() {
    let recipe = RecipeName::parse("hello").unwrap();
    assert_eq!(
        abra().app_new_args(&recipe, None, &domain(), true),
        vec![
            "app",
            "new",
            "hello",
            "--server",
            "default",
            "--domain",
            "hell-3fa9c2.ccci.localhost",
            "--secrets",
            "--chaos",
            "--no-input",
            "--offline"
        ]
    );
    assert_eq!(
        abra().app_new_args(&recipe, Some("1.1.0+1.36"), &domain(), false),
        vec![
            "app",
            "new",
            "hello",
            "1.1.0+1.36",
            "--server",
            "default",
            "--domain",
            "hell-3fa9c2.ccci.localhost",
            "--secrets",
            "--no-input",
            "--offline"
        ]
    );
}

#[test]
fn app_deploy_argv() {
    let d = domain();
    // The run's one deploy: the PR head, as checked out by ccci.
    assert_eq!(
        abra().app_deploy_args(&d, None, true, false),
        vec![
            "app",
            "deploy",
            "hell-3fa9c2.ccci.localhost",
            "--chaos",
            "--no-domain-checks",
            "--no-converge-checks",
            "--no-input",
            "--offline"
        ]
    );
    // The in-place chaos redeploy (upgrade to PR head) of an app that is already deployed.
    assert_eq!(
        abra().app_deploy_args(&d, None, true, true),
        vec![
            "app",
            "deploy",
            "hell-3fa9c2.ccci.localhost",
            "--chaos",
            "--force",
            "--no-domain-checks",
            "--no-converge-checks",
            "--no-input",
            "--offline"
        ]
    );
    // A published release (the upgrade base): the version as an argument, no --chaos.
    assert_eq!(
        abra().app_deploy_args(&d, Some("1.1.0+1.36"), false, false),
        vec![
            "app",
            "deploy",
            "hell-3fa9c2.ccci.localhost",
            "1.1.0+1.36",
            "--no-domain-checks",
            "--no-converge-checks",
            "--no-input",
            "--offline"
        ]
    );
}

#[test]
fn teardown_argvs() {
    let d = domain();
    assert_eq!(
        abra().app_undeploy_args(&d),
        vec!["app", "undeploy", "hell-3fa9c2.ccci.localhost", "--no-input", "--offline"]
    );
    assert_eq!(
        abra().volume_remove_args(&d),
        vec!["app", "volume", "remove", "hell-3fa9c2.ccci.localhost", "--force", "--no-input", "--offline"]
    );
    assert_eq!(
        abra().secret_remove_args(&d),
        vec!["app", "secret", "remove", "hell-3fa9c2.ccci.localhost", "--all", "--no-input", "--offline"]
    );
}

#[test]
fn the_upgrade_generates_each_new_secret_by_name_and_version() {
    // Contract §1.7: `abra app secret generate <domain> <secret> <version>`; the value never
    // passes through ccci.
    assert_eq!(
        abra().secret_generate_args(&domain(), "api_key", "v1"),
        vec!["app", "secret", "generate", "hell-3fa9c2.ccci.localhost", "api_key", "v1", "--no-input", "--offline"]
    );
}

#[test]
fn backup_and_restore_argvs() {
    // Contract §1.9 (flags UNCONFIRMED, docs/decisions.md): one backup now; a restore of exactly
    // the snapshot the backup made, never `latest`.
    assert_eq!(
        abra().backup_create_args(&domain()),
        vec!["app", "backup", "create", "hell-3fa9c2.ccci.localhost", "--no-input", "--offline"]
    );
    assert_eq!(
        abra().restore_args(&domain(), "8ce7541f6c83"),
        vec!["app", "restore", "hell-3fa9c2.ccci.localhost", "--snapshot", "8ce7541f6c83", "--no-input", "--offline"]
    );
}

#[test]
fn every_backup_flag_passed_is_probed_and_nothing_else() {
    let (a, d) = (abra(), domain());
    let argvs = [a.backup_create_args(&d), a.restore_args(&d, "8ce7541f")];
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for argv in &argvs {
        let (verb, flags) = BACKUP_FLAGS
            .iter()
            .filter(|(verb, _)| verb.iter().zip(argv).all(|(v, a)| v == a))
            .max_by_key(|(verb, _)| verb.len())
            .unwrap_or_else(|| panic!("no BACKUP_FLAGS entry for {argv:?}"));
        for f in argv.iter().filter(|a| a.starts_with('-')) {
            assert!(flags.contains(&f.as_str()), "{f} is passed to `abra {}` but not probed", verb.join(" "));
            used.insert((verb.join(" "), f.clone()));
        }
    }
    for (verb, flags) in BACKUP_FLAGS {
        for f in *flags {
            assert!(
                used.contains(&(verb.join(" "), f.to_string())),
                "BACKUP_FLAGS lists {f} for `abra {}`, unused",
                verb.join(" ")
            );
        }
    }
    // Not probed at deploy: an abra without backup verbs still deploys.
    assert!(USED_FLAGS.iter().all(|(verb, _)| !verb.contains(&"backup") && !verb.contains(&"restore")));
}

#[test]
fn every_flag_passed_is_probed() {
    let mut used: BTreeSet<(String, String)> = BTreeSet::new();
    for (what, argv) in all_argvs() {
        let (verb, flags) = used_flags_for(&argv);
        for a in argv.iter().filter(|a| a.starts_with('-')) {
            assert!(
                flags.contains(&a.as_str()),
                "{what}: {a} is passed to `abra {}` but not in USED_FLAGS",
                verb.join(" ")
            );
            used.insert((verb.join(" "), a.clone()));
        }
        // Contract §7.3: never prompt, never fetch, on every call.
        for always in ["--no-input", "--offline"] {
            assert!(argv.iter().any(|a| a == always), "{what}: {always} missing from {argv:?}");
        }
    }
    // And the probe checks nothing ccci never passes.
    for (verb, flags) in USED_FLAGS {
        for f in *flags {
            assert!(
                used.contains(&(verb.join(" "), f.to_string())),
                "USED_FLAGS lists {f} for `abra {}`, unused",
                verb.join(" ")
            );
        }
    }
}

#[test]
fn env_is_abra_dir_plus_the_allow_list() {
    let env = abra().env();
    assert_eq!(env[0], ("ABRA_DIR".to_string(), "/var/lib/ccci/work/hell-3fa9c2/abra".to_string()));
    for (k, _) in &env {
        assert!(ALLOWED_ENV.contains(&k.as_str()), "Abra::env passes {k}, outside the allow-list");
    }
    // This test process has plenty of other variables (CARGO_*, RUST_*): none may pass.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO_")), "cargo sets CARGO_* for tests");
}

// ---------------------------------------------------------------------------------------------
// (b) the environment of a real ccci-deploy run, through a recording fake abra
// ---------------------------------------------------------------------------------------------

const PLANTED: &str = "planted-secret";

/// A `/bin/sh` fake of abra that records each call's argv and environment (NUL-separated) in
/// `calls/`, lists every flag of USED_FLAGS in any `--help`, and fails `app new` with a FATA
/// line so the run stops before it deploys.
fn recording_fake(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let calls = sb.dir("calls");
    let flags: BTreeSet<&str> = USED_FLAGS.iter().flat_map(|(_, f)| f.iter().copied()).collect();
    let help: String = flags.iter().map(|f| format!("      {f}   recorded by the fake\n")).collect();
    let script = format!(
        r#"#!/bin/sh
# Recording FAKE of abra for ccci's contract tests. Not abra.
calls='{calls}'
n=$(( $(ls "$calls" | wc -l) / 2 ))
printf '%s\0' "$@" > "$calls/$n.argv"
env -0 > "$calls/$n.env"
for a in "$@"; do
  if [ "$a" = --help ]; then
    cat <<'HELP'
Usage: abra (recording fake)

Flags:
{help}HELP
    exit 0
  fi
done
if [ "$1" = --version ]; then echo "abra version 0.0.0-recording-fake"; exit 0; fi
if [ "$1 $2" = "app new" ]; then echo "FATA recording fake: app new stops the run here" >&2; exit 1; fi
echo "FATA recording fake: unexpected call" >&2
exit 1
"#,
        calls = calls.display()
    );
    let path = sb.root.join("fake-abra");
    write_executable(&path, &script);
    (path, calls)
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One call the fake recorded: its argv and its environment.
type Call = (Vec<String>, Vec<(String, String)>);

/// Each recorded call, in order.
fn recorded(calls: &Path) -> Vec<Call> {
    let split = |p: PathBuf| -> Vec<String> {
        let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        bytes.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
    };
    let n = std::fs::read_dir(calls).unwrap().count() / 2;
    (0..n)
        .map(|i| {
            let argv = split(calls.join(format!("{i}.argv")));
            let env = split(calls.join(format!("{i}.env")))
                .into_iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((&kv, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            (argv, env)
        })
        .collect()
}

fn make_recipe(sb: &Sandbox) -> PathBuf {
    let dest = sb.root.join("src/hello");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    make_repo(&dest, None);
    dest
}

#[test]
fn abra_gets_its_dir_and_no_secret_of_the_caller() {
    let sb = Sandbox::new("abra-env");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let (fake, calls) = recording_fake(&sb);
    let recipe = make_recipe(&sb);
    let state_file = sb.root.join("run.json");
    let before = swarm_objects();

    let ran = Run::new(
        "ccci-deploy",
        &[
            // The head itself, created with --chaos: the base-release argv is pinned in (a).
            "--no-upgrade",
            "--driver",
            "abra",
            "--recipe",
            recipe.to_str().unwrap(),
            "--ref",
            "main",
            "--state",
            state_file.to_str().unwrap(),
        ],
        &cwd,
        &home,
    )
    .env("CCCI_STATE_DIR", sb.state_dir())
    .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
    .env("CCCI_ABRA", &fake)
    .env("GITEA_TOKEN", PLANTED)
    .run(LIMIT);

    // The run starts, then `abra app new` fails: the deploy is recorded as `fail`.
    assert_eq!(ran.code, Some(1), "ccci-deploy with the recording fake; stderr:\n{}", ran.stderr);
    assert_eq!(ran.stdout, "", "with --state the run-state goes to the file");
    let state_text = std::fs::read_to_string(&state_file).expect("the run-state is written");
    let state: Value = serde_json::from_str(&state_text).unwrap();
    let deploy = state["ops"].as_array().unwrap().last().unwrap();
    assert_eq!(deploy["op"], "deploy");
    assert_eq!(deploy["result"], "fail");
    assert!(deploy["detail"].as_str().unwrap().contains("app new stops the run here"), "{deploy}");
    assert_eq!(state["deploys"], 0, "nothing was deployed");
    assert_eq!(state["versions"]["abra"], "abra version 0.0.0-recording-fake");
    let domain = state["domain"].as_str().unwrap().to_string();
    let stack = state["stack"].as_str().unwrap().to_string();
    let run_id = state["run_id"].as_str().unwrap().to_string();
    let abra_dir = sb.state_dir().join("work").join(&run_id).join("abra");
    assert_eq!(state["workspace"].as_str().unwrap(), sb.state_dir().join("work").join(&run_id).to_str().unwrap());

    let calls = recorded(&calls);
    let argvs: Vec<Vec<String>> = calls.iter().map(|(a, _)| a.clone()).collect();
    // The probe: `--help` of every verb ccci uses, then the version for provenance.
    let mut expected: Vec<Vec<String>> = USED_FLAGS
        .iter()
        .map(|(verb, _)| verb.iter().map(|s| s.to_string()).chain(["--help".to_string()]).collect())
        .collect();
    expected.push(vec!["--version".into()]);
    expected.push(
        [
            "app",
            "new",
            "hello",
            "--server",
            "default",
            "--domain",
            &domain,
            "--secrets",
            "--chaos",
            "--no-input",
            "--offline",
        ]
        .map(String::from)
        .to_vec(),
    );
    assert_eq!(argvs, expected, "the abra calls of a run that stops at `app new`");

    for (argv, env) in &calls {
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        let abra_dir_seen = env.iter().find(|(k, _)| k == "ABRA_DIR").map(|(_, v)| v.as_str());
        let probing = argv.last().is_some_and(|a| a == "--help" || a == "--version");
        if probing {
            // The probe runs before the run is registered, so it must not create the run's
            // workspace (the janitor would take it for an orphan): a throwaway ABRA_DIR.
            let seen = abra_dir_seen.expect("ABRA_DIR is set for the probe too");
            assert!(!Path::new(seen).starts_with(sb.state_dir()), "{argv:?}: the probe used {seen}");
        } else {
            assert_eq!(abra_dir_seen, Some(abra_dir.to_str().unwrap()), "{argv:?}: ABRA_DIR is the run's own");
        }
        assert!(!keys.contains(&"GITEA_TOKEN"), "{argv:?}: GITEA_TOKEN reached abra");
        for k in &keys {
            assert!(
                ALLOWED_ENV.contains(k) || SHELL_ENV.contains(k),
                "{argv:?}: abra got {k}, which is not in the allow-list {ALLOWED_ENV:?}"
            );
        }
        assert!(keys.contains(&"PATH") && keys.contains(&"HOME"), "{argv:?}: abra needs PATH and HOME: {keys:?}");
        for (k, v) in env {
            assert!(!v.contains(PLANTED), "{argv:?}: the planted secret reached abra in {k}");
        }
        assert!(!argv.iter().any(|a| a.contains(PLANTED)), "the planted secret is on abra's argv: {argv:?}");
    }
    assert!(!state_text.contains(PLANTED), "the planted secret is in the run-state");
    assert!(!ran.stderr.contains(PLANTED), "the planted secret is in the log:\n{}", ran.stderr);
    assert!(left_on_swarm(&stack).is_empty(), "app new failed: nothing of {stack} may be on the swarm");

    // Teardown cleans the registry entry and the workspace of the failed run.
    let td = Run::new("ccci-teardown", &["--state", state_file.to_str().unwrap()], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .env("CCCI_ABRA", &fake)
        .env("GITEA_TOKEN", PLANTED)
        .run(LIMIT);
    assert_eq!(td.code, Some(0), "ccci-teardown --state; stderr:\n{}", td.stderr);
    assert!(!td.stderr.contains(PLANTED), "the planted secret is in teardown's log");
    assert_eq!(sb.entries("runs"), Vec::<String>::new(), "the registry entry is gone");
    assert_eq!(sb.entries("work"), Vec::<String>::new(), "the workspace is gone");
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert_eq!(after["ops"].as_array().unwrap().last().unwrap()["result"], "pass");
    assert!(recorded(&sb.root.join("calls")).len() == argvs.len(), "teardown had no abra app to remove");
    let new = new_objects_of_ours(&before);
    assert!(new.is_empty(), "swarm objects left: {new:?}");
}

// ---------------------------------------------------------------------------------------------
// (c) the drift probe, (d) abra missing
// ---------------------------------------------------------------------------------------------

/// ccci-deploy --driver abra with CCCI_ABRA = `abra`; must stop in preflight with exit 3 and
/// one line containing every phrase of `says`, creating nothing.
fn preflight_refuses(test: &str, abra: impl FnOnce(&Sandbox) -> PathBuf, says: &[&str]) {
    let sb = Sandbox::new(test);
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let recipe = sb.dir("src/hello"); // never reached: the probe comes first
    let abra = abra(&sb);
    let before = swarm_objects();
    let ran = Run::new(
        "ccci-deploy",
        &["--driver", "abra", "--recipe", recipe.to_str().unwrap(), "--ref", "main"],
        &cwd,
        &home,
    )
    .env("CCCI_STATE_DIR", sb.state_dir())
    .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
    .env("CCCI_ABRA", &abra)
    .run(LIMIT);
    assert_eq!(ran.code, Some(3), "stderr:\n{}", ran.stderr);
    assert_eq!(ran.stdout, "", "no run-state: the run never started");
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr:\n{}", ran.stderr);
    for s in says {
        assert!(lines[0].contains(s), "the error does not mention {s:?}: {}", lines[0]);
    }
    assert_eq!(sb.entries("runs"), Vec::<String>::new(), "nothing registered");
    assert_eq!(sb.entries("work"), Vec::<String>::new(), "no workspace left behind");
    let new = new_objects_of_ours(&before);
    assert!(new.is_empty(), "created swarm objects: {new:?}");
}

/// The real test double, told to drop `flag` from its `--help` and its accepted flags.
fn drifted_double(sb: &Sandbox, flag: &str) -> PathBuf {
    let double = repo_root().join("tests/support/abra");
    assert!(double.is_file(), "the abra test double is missing at {}", double.display());
    let path = sb.root.join("abra-drifted");
    write_executable(
        &path,
        &format!("#!/bin/sh\nexec env ABRA_DOUBLE_DROP_FLAG='{flag}' '{}' \"$@\"\n", double.display()),
    );
    path
}

#[test]
fn drifted_abra_new_stops_the_run_before_anything_exists() {
    preflight_refuses(
        "drift-chaos",
        |sb| drifted_double(sb, "--chaos"),
        &["--chaos", "abra app new --help", "drifted"],
    );
}

#[test]
fn drifted_abra_deploy_stops_the_run_before_anything_exists() {
    preflight_refuses(
        "drift-force",
        |sb| drifted_double(sb, "--force"),
        &["--force", "abra app deploy --help", "drifted"],
    );
}

#[test]
fn missing_abra_says_so() {
    preflight_refuses(
        "no-abra",
        |sb| sb.root.join("no-such-abra"),
        &["CCCI_ABRA", "is abra installed", "no-such-abra"],
    );
}
