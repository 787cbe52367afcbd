//! Bad input to `ccci-deploy`, `ccci-assert`, `ccci-upgrade`, `ccci-backup`, `ccci-restore` and
//! `ccci-teardown`: each case must exit 2, say what
//! is wrong in exactly one line on stderr, print nothing on stdout, and create nothing: no file
//! or directory (the test's `CCCI_STATE_DIR` stays absent, its HOME and working directory stay
//! empty) and no swarm object.
//!
//! Needs docker with an active swarm (for the before/after snapshot of its objects); fails
//! without it.

mod common;

use std::time::Duration;

use common::{Run, Sandbox, git, marker, new_objects_of_ours, register, run_state, swarm_objects};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(60);

/// One bad invocation.
struct Case<'a> {
    bin: &'a str,
    args: Vec<String>,
    env: Vec<(&'a str, String)>,
    stdin: Option<Vec<u8>>,
    /// Phrases the one error line must contain (the field, flag or value at fault).
    says: Vec<String>,
    /// Phrases no output may contain (a credential).
    hides: Vec<String>,
}

impl<'a> Case<'a> {
    fn new(bin: &'a str, args: &[&str]) -> Case<'a> {
        Case {
            bin,
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![],
            stdin: None,
            says: vec![],
            hides: vec![],
        }
    }
    fn env(mut self, k: &'a str, v: impl Into<String>) -> Self {
        self.env.push((k, v.into()));
        self
    }
    fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }
    fn says(mut self, phrase: impl Into<String>) -> Self {
        self.says.push(phrase.into());
        self
    }
    fn hides(mut self, phrase: impl Into<String>) -> Self {
        self.hides.push(phrase.into());
        self
    }
}

/// Runs `case` in a fresh sandbox (built by `setup`) and checks the bad-input contract.
fn refuse(test: &str, setup: impl FnOnce(&Sandbox) -> Case<'static>) {
    let sb = Sandbox::new(test);
    let home = sb.dir("home");
    let cwd = sb.dir("cwd");
    sb.dir("src/hello"); // an existing (if empty) recipe source, for cases that fail elsewhere
    let case = setup(&sb);
    let files_before = sb.listing();
    let swarm_before = swarm_objects();

    let mut run = Run::new(case.bin, &case.args.iter().map(String::as_str).collect::<Vec<_>>(), &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix());
    for (k, v) in &case.env {
        run = run.env(k, v);
    }
    if let Some(bytes) = case.stdin.clone() {
        run = run.stdin(bytes);
    }
    let ran = run.run(LIMIT);

    let what = format!("{} {:?} (env {:?})", case.bin, case.args, case.env);
    assert_eq!(ran.code, Some(2), "{what}: exit status; stderr:\n{}", ran.stderr);
    assert_eq!(ran.stdout, "", "{what}: stdout must stay empty");
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert!(
        lines.len() == 1 && ran.stderr.ends_with('\n'),
        "{what}: expected exactly one line on stderr, got {}:\n{}",
        lines.len(),
        ran.stderr
    );
    let line = lines[0];
    assert!(line.starts_with(&format!("{}: error: ", case.bin)), "{what}: {line}");
    for phrase in &case.says {
        assert!(line.contains(phrase.as_str()), "{what}: the error does not mention {phrase:?}: {line}");
    }
    for phrase in &case.hides {
        assert!(!ran.stderr.contains(phrase.as_str()), "{what}: the error shows {phrase:?}: {line}");
    }

    assert!(!sb.state_dir().exists(), "{what}: created CCCI_STATE_DIR: {:?}", sb.listing());
    assert_eq!(sb.listing(), files_before, "{what}: files changed in the sandbox");
    let new = new_objects_of_ours(&swarm_before);
    assert!(new.is_empty(), "{what}: created swarm objects: {new:?}");
}

// ---------------------------------------------------------------------------------------------
// Malformed run-states, for ccci-assert and ccci-teardown
// ---------------------------------------------------------------------------------------------

/// Another installation's domain suffix. Without this process's full marker in it, so that the
/// object the tests create under it does not count as one other tests of this process created.
fn other_suffix() -> String {
    format!("o{}.localhost", &marker()[..6])
}

fn run_id() -> String {
    format!("badi-{}", &marker()[..6])
}

/// A valid run-state (no deploy recorded), in the sandbox's namespace.
fn valid_state(sb: &Sandbox) -> Value {
    run_state(&run_id(), &sb.state_dir(), &sb.root.join("src/hello"))
}

fn text(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// The state variants: (name, how to make it from a valid state, phrases of the error).
type Variant = (&'static str, fn(&Sandbox) -> Vec<u8>, &'static [&'static str]);

fn mutated(sb: &Sandbox, f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = valid_state(sb);
    f(&mut v);
    text(&v).into_bytes()
}

const VARIANTS: &[Variant] = &[
    ("not_json", |_| b"this is not JSON\n".to_vec(), &["not JSON", "line 1 column"]),
    (
        "truncated_json",
        |sb| {
            let t = text(&valid_state(sb));
            t.as_bytes()[..t.len() / 2].to_vec()
        },
        &["not JSON", "EOF while parsing"],
    ),
    ("empty_stdin", |_| vec![], &["empty input"]),
    ("json_array", |_| b"[{\"schema\": \"ccci.run/v1\"}]".to_vec(), &["expected a JSON object", "array"]),
    ("wrong_schema", |sb| mutated(sb, |v| v["schema"] = "ccci.run/v2".into()), &["`schema`", "ccci.run/v1"]),
    (
        "missing_stack",
        |sb| {
            mutated(sb, |v| {
                v.as_object_mut().unwrap().remove("stack");
            })
        },
        &["missing field `stack`"],
    ),
    ("run_id_escapes", |sb| mutated(sb, |v| v["run_id"] = "../../etc".into()), &["`run_id`", "../../etc"]),
    ("domain_with_spaces", |sb| mutated(sb, |v| v["domain"] = "evil domain.example".into()), &["`domain`"]),
    ("stack_not_matching_domain", |sb| mutated(sb, |v| v["stack"] = "other_stack".into()), &["`stack`", "other_stack"]),
    ("unknown_driver", |sb| mutated(sb, |v| v["driver"] = "kubernetes".into()), &["`driver`", "kubernetes"]),
    (
        "op_result_passed",
        |sb| {
            mutated(sb, |v| {
                v["ops"] = json!([{"op": "deploy", "result": "passed", "started_at": "2026-01-01T00:00:00Z",
                                   "duration_ms": 1, "detail": "x"}])
            })
        },
        &["ops[0].result", "passed"],
    ),
    (
        "commit_with_shell_chars",
        |sb| mutated(sb, |v| v["source"]["commit"] = "abc; rm -rf /".into()),
        &["source.commit", "abc; rm -rf /"],
    ),
    (
        "relative_workspace",
        |sb| mutated(sb, |v| v["workspace"] = "relative/work".into()),
        &["`workspace`", "relative/work"],
    ),
    ("negative_deploys", |sb| mutated(sb, |v| v["deploys"] = (-1).into()), &["`deploys`", "-1"]),
    // States that are well-formed but belong to another installation, or point elsewhere.
    (
        "domain_of_another_suffix",
        |sb| {
            mutated(sb, |v| {
                let domain = format!("{}.{}", run_id(), other_suffix());
                v["stack"] = domain.replace('.', "_").into();
                v["domain"] = domain.into();
            })
        },
        &["field `domain`", "CCCI_DOMAIN_SUFFIX", "another installation"],
    ),
    (
        "domain_with_an_extra_label",
        |sb| {
            mutated(sb, |v| {
                let domain = format!("{}.evil.{}", run_id(), common::domain_suffix());
                v["stack"] = domain.replace('.', "_").into();
                v["domain"] = domain.into();
            })
        },
        &["field `domain`", ".evil."],
    ),
    (
        "workspace_elsewhere",
        |sb| mutated(sb, |v| v["workspace"] = sb.root.join("victim").to_str().unwrap().into()),
        &["field `workspace`", "victim", "lives at"],
    ),
    (
        "workspace_of_another_run",
        |sb| mutated(sb, |v| v["workspace"] = sb.state_dir().join("work/othr-000000").to_str().unwrap().into()),
        &["field `workspace`", "othr-000000"],
    ),
    (
        "env_file_outside_the_workspace",
        |sb| mutated(sb, |v| v["env_file"] = sb.root.join("victim/app.env").to_str().unwrap().into()),
        &["field `env_file`", "victim/app.env", "not inside"],
    ),
    (
        "env_file_escaping_the_workspace_with_dot_dot",
        |sb| {
            mutated(sb, |v| {
                let ws = sb.state_dir().join("work").join(run_id());
                v["env_file"] = format!("{}/../../../victim/app.env", ws.display()).into();
            })
        },
        &["field `env_file`", "not inside"],
    ),
];

fn variant(name: &str) -> &'static Variant {
    VARIANTS.iter().find(|v| v.0 == name).unwrap_or_else(|| panic!("no variant {name}"))
}

fn assert_refuses_state(name: &str) {
    let (_, make, says) = variant(name);
    refuse(&format!("assert-{name}"), |sb| {
        let mut c = Case::new("ccci-assert", &["install"]).stdin(make(sb));
        for s in *says {
            c = c.says(*s);
        }
        c
    });
}

fn teardown_refuses_state(name: &str) {
    refuses_state("ccci-teardown", name);
}

/// `bin` (run with no arguments) refuses the state variant `name`.
fn refuses_state(bin: &'static str, name: &str) {
    let (_, make, says) = variant(name);
    refuse(&format!("{}-{name}", bin.trim_start_matches("ccci-")), |sb| {
        let mut c = Case::new(bin, &[]).stdin(make(sb));
        for s in *says {
            c = c.says(*s);
        }
        c
    });
}

macro_rules! state_cases {
    ($($name:ident),* $(,)?) => {
        mod assert_state {
            $(#[test] fn $name() { super::assert_refuses_state(stringify!($name)); })*
        }
        mod teardown_state {
            $(#[test] fn $name() { super::teardown_refuses_state(stringify!($name)); })*
        }
        mod backup_state {
            $(#[test] fn $name() { super::refuses_state("ccci-backup", stringify!($name)); })*
        }
        mod restore_state {
            $(#[test] fn $name() { super::refuses_state("ccci-restore", stringify!($name)); })*
        }
        #[test]
        fn every_state_variant_is_tested() {
            let tested = [$(stringify!($name)),*];
            for v in VARIANTS {
                assert!(tested.contains(&v.0), "variant {} has no test", v.0);
            }
        }
    };
}

state_cases!(
    not_json,
    truncated_json,
    empty_stdin,
    json_array,
    wrong_schema,
    missing_stack,
    run_id_escapes,
    domain_with_spaces,
    stack_not_matching_domain,
    unknown_driver,
    op_result_passed,
    commit_with_shell_chars,
    relative_workspace,
    negative_deploys,
    domain_of_another_suffix,
    domain_with_an_extra_label,
    workspace_elsewhere,
    workspace_of_another_run,
    env_file_outside_the_workspace,
    env_file_escaping_the_workspace_with_dot_dot,
);

/// The control: the unmutated state is accepted, so each variant fails for its one change.
#[test]
fn valid_state_is_accepted() {
    let sb = Sandbox::new("valid-state");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let valid = valid_state(&sb);
    register(&sb.state_dir(), &valid, u64::MAX / 2);
    let state = text(&valid);
    let ran = Run::new("ccci-assert", &["install"], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin(state.clone())
        .run(LIMIT);
    assert_eq!(ran.code, Some(0), "ccci-assert on a valid state: {}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).expect("ccci-assert prints the state");
    assert_eq!(out["ops"][0]["result"], "skip", "no deploy recorded: install is skipped");

    let ran = Run::new("ccci-teardown", &[], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin(state)
        .run(LIMIT);
    assert_eq!(ran.code, Some(0), "ccci-teardown on a valid state: {}", ran.stderr);
    assert_eq!(sb.entries("runs"), Vec::<String>::new(), "teardown leaves no registry entry");
}

#[test]
fn assert_state_file_that_is_not_json_is_left_alone() {
    refuse("assert-state-file", |sb| {
        let f = sb.root.join("run.json");
        std::fs::write(&f, "{\"schema\": \"ccci.run/v1\",").unwrap();
        Case::new("ccci-assert", &["install", "--state", f.to_str().unwrap()]).says("run.json").says("not JSON")
    });
}

#[test]
fn teardown_state_file_that_does_not_exist() {
    refuse("teardown-no-state-file", |sb| {
        let f = sb.root.join("missing.json");
        Case::new("ccci-teardown", &["--state", f.to_str().unwrap()]).says("missing.json")
    });
}

// ---------------------------------------------------------------------------------------------
// ccci-deploy arguments and settings
// ---------------------------------------------------------------------------------------------

/// `ccci-deploy --recipe <existing dir> --ref main` plus `extra`.
fn deploy(sb: &Sandbox, extra: &[&str]) -> Case<'static> {
    let src = sb.root.join("src/hello");
    let mut args = vec!["--recipe", src.to_str().unwrap(), "--ref", "main"];
    args.extend(extra);
    Case::new("ccci-deploy", &args)
}

#[test]
fn recipe_name_with_dot_dot() {
    refuse("name-dotdot", |sb| deploy(sb, &["--recipe-name", "../x"]).says("invalid recipe name").says("\"../x\""));
}

#[test]
fn recipe_name_with_shell_command() {
    refuse("name-shell", |sb| {
        deploy(sb, &["--recipe-name", "a;rm -rf /"]).says("invalid recipe name").says("a;rm -rf /")
    });
}

#[test]
fn recipe_name_with_command_substitution() {
    refuse("name-subst", |sb| {
        // The sandbox listing check proves `pwned` was not created.
        let name = format!("$(touch {}/pwned)", sb.root.display());
        deploy(sb, &["--recipe-name", &name]).says("invalid recipe name").says("$(touch ")
    });
}

#[test]
fn recipe_name_uppercase() {
    refuse("name-upper", |sb| deploy(sb, &["--recipe-name", "Hello"]).says("invalid recipe name").says("\"Hello\""));
}

#[test]
fn recipe_name_64_chars() {
    refuse("name-64", |sb| {
        let name = "a".repeat(64);
        deploy(sb, &["--recipe-name", &name]).says("invalid recipe name").says(name.as_str()).says("1-63")
    });
}

#[test]
fn source_that_git_would_read_as_an_option() {
    refuse("source-dash", |sb| {
        let arg = format!("--recipe=--upload-pack=touch {}/pwned", sb.root.display());
        Case::new("ccci-deploy", &[&arg, "--ref", "main"]).says("invalid recipe source").says("--upload-pack")
    });
}

/// Only https, ssh and local paths (or file:///) are allowed: every other transport git knows,
/// and git's `<transport>::<address>` remote helpers (`ext::` runs a command), are bad input
/// before anything exists.
#[test]
fn sources_of_any_other_transport_are_refused_before_anything_is_created() {
    type Source = fn(&Sandbox) -> String;
    let cases: &[(&str, Source)] = &[
        ("src-ext", |sb| format!("ext::sh -c touch% {}/pwned", sb.root.display())),
        ("src-fd", |_| "fd::7".into()),
        ("src-fd-path", |_| "fd::0,1/coop-cloud/hello".into()),
        ("src-http", |_| "http://127.0.0.1:1/coop-cloud/hello.git".into()),
        ("src-http-upper", |_| "HTTP://127.0.0.1:1/coop-cloud/hello.git".into()),
        ("src-git", |_| "git://127.0.0.1:1/coop-cloud/hello.git".into()),
        ("src-ftp", |_| "ftp://127.0.0.1:1/coop-cloud/hello.git".into()),
        ("src-git-ssh", |_| "git+ssh://git@127.0.0.1:1/coop-cloud/hello.git".into()),
        ("src-helper", |sb| format!("testgit::{}/src/hello", sb.root.display())),
        ("src-file-host", |sb| format!("file://otherhost{}/src/hello", sb.root.display())),
    ];
    for (name, source) in cases {
        refuse(name, |sb| {
            let arg = format!("--recipe={}", source(sb));
            Case::new("ccci-deploy", &[&arg, "--ref", "main"]).says("invalid recipe source").says("allowed")
        });
    }
}

#[test]
fn ssh_source_with_a_password_is_refused_without_showing_it() {
    refuse("src-ssh-pass", |_| {
        let token = format!("T0KEN-{}", marker());
        let arg = format!("--recipe=ssh://ci:{token}@127.0.0.1:1/coop-cloud/hello.git");
        Case::new("ccci-deploy", &[&arg, "--ref", "main"])
            .says("ssh://***@127.0.0.1:1/coop-cloud/hello.git")
            .says("cannot carry a password")
            .hides(token)
    });
}

#[test]
fn malformed_url_with_credentials_is_refused_without_showing_them() {
    refuse("src-bad-creds", |_| {
        let token = format!("T0KEN-{}", marker());
        let arg = format!("--recipe=https://ci:{token}@git.coopcloud.tech/hello");
        Case::new("ccci-deploy", &[&arg, "--ref", "main"]).says("https://***@git.coopcloud.tech/hello").hides(token)
    });
}

#[test]
fn ref_with_dot_dot() {
    refuse("ref-dotdot", |sb| {
        let src = sb.root.join("src/hello");
        Case::new("ccci-deploy", &["--recipe", src.to_str().unwrap(), "--ref", "main..evil"])
            .says("invalid git ref")
            .says("main..evil")
    });
}

#[test]
fn ref_starting_with_dash() {
    refuse("ref-dash", |sb| {
        let src = sb.root.join("src/hello");
        Case::new("ccci-deploy", &["--recipe", src.to_str().unwrap(), "--ref", "--upload-pack=evil"])
            .says("invalid git ref")
            .says("--upload-pack=evil")
    });
}

#[test]
fn source_that_does_not_exist() {
    refuse("source-missing", |sb| {
        let src = sb.root.join("nowhere/hello");
        Case::new("ccci-deploy", &["--recipe", src.to_str().unwrap(), "--ref", "main"])
            .says("does not exist")
            .says(src.to_str().unwrap())
    });
}

#[test]
fn domain_suffix_too_long_for_abra_stack_names() {
    // 11 (run id) + 1 + 34 = 46 > 45 characters of stack name.
    refuse("suffix-long", |sb| {
        let suffix = format!("t{}-{}.localhost", marker(), "x".repeat(14));
        assert_eq!(suffix.len(), 34);
        deploy(sb, &[]).env("CCCI_DOMAIN_SUFFIX", suffix).says("CCCI_DOMAIN_SUFFIX").says("at most 45")
    });
}

#[test]
fn domain_suffix_invalid() {
    refuse("suffix-bad", |sb| {
        deploy(sb, &[]).env("CCCI_DOMAIN_SUFFIX", "CI_Zone!.example").says("CCCI_DOMAIN_SUFFIX").says("CI_Zone!")
    });
}

#[test]
fn external_networks_naming_the_host_network() {
    refuse("extnet-host", |sb| {
        deploy(sb, &[]).env("CCCI_EXTERNAL_NETWORKS", "proxy,host").says("CCCI_EXTERNAL_NETWORKS").says("`host`")
    });
}

#[test]
fn external_networks_that_are_not_network_names() {
    refuse("extnet-bad", |sb| {
        deploy(sb, &[]).env("CCCI_EXTERNAL_NETWORKS", "proxy $(id)").says("CCCI_EXTERNAL_NETWORKS").says("$(id)")
    });
}

#[test]
fn deploy_unknown_flag() {
    refuse("deploy-flag", |sb| deploy(sb, &["--bogus"]).says("--bogus").says("ccci-deploy --help"));
}

#[test]
fn assert_unknown_flag() {
    refuse("assert-flag", |_| Case::new("ccci-assert", &["install", "--bogus"]).says("--bogus"));
}

#[test]
fn teardown_unknown_flag() {
    refuse("teardown-flag", |_| Case::new("ccci-teardown", &["--bogus"]).says("--bogus"));
}

#[test]
fn deploy_missing_ref() {
    refuse("no-ref", |sb| {
        let src = sb.root.join("src/hello");
        Case::new("ccci-deploy", &["--recipe", src.to_str().unwrap()]).says("missing --ref")
    });
}

#[test]
fn deploy_missing_recipe() {
    refuse("no-recipe", |_| Case::new("ccci-deploy", &["--ref", "main"]).says("missing --recipe"));
}

#[test]
fn deploy_recipe_env_naming_an_unset_variable() {
    refuse("recipe-env-unset", |_| {
        Case::new("ccci-deploy", &["--recipe-env", "CCCI_TEST_NO_SUCH_VAR", "--ref", "main"])
            .says("--recipe-env CCCI_TEST_NO_SUCH_VAR")
            .says("not set")
    });
}

#[test]
fn deploy_recipe_and_recipe_env_together() {
    refuse("recipe-and-env", |sb| {
        let src = sb.root.join("src/hello");
        Case::new("ccci-deploy", &["--recipe", src.to_str().unwrap(), "--recipe-env", "RECIPE", "--ref", "main"])
            .env("RECIPE", src.to_str().unwrap())
            .says("one of --recipe and --recipe-env")
    });
}

/// Every binary refuses a single-valued option given twice, in the same words.
#[test]
fn an_option_given_twice_is_refused() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("ccci-deploy", &["--recipe", "SRC", "--recipe", "SRC", "--ref", "main"], "--recipe"),
        ("ccci-deploy", &["--recipe", "SRC", "--ref", "main", "--ref", "main"], "--ref"),
        ("ccci-deploy", &["--recipe", "SRC", "--ref", "main", "--driver", "abra", "--driver", "stack"], "--driver"),
        (
            "ccci-deploy",
            &["--recipe", "SRC", "--ref", "main", "--recipe-name", "hello", "--recipe-name", "hello"],
            "--recipe-name",
        ),
        ("ccci-deploy", &["--recipe", "SRC", "--ref", "main", "--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-assert", &["install", "--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-upgrade", &["--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-backup", &["--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-restore", &["--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-teardown", &["--state", "/tmp/x", "--state", "/tmp/x"], "--state"),
        ("ccci-teardown", &["--run", "hell-3fa9c2", "--run", "hell-3fa9c2"], "--run"),
    ];
    for (i, (bin, args, flag)) in cases.iter().enumerate() {
        refuse(&format!("twice-{i}"), |sb| {
            let src = sb.root.join("src/hello");
            let args: Vec<&str> = args.iter().map(|a| if *a == "SRC" { src.to_str().unwrap() } else { a }).collect();
            Case::new(bin, &args).says(format!("{flag} given twice (see {bin} --help)"))
        });
    }
}

#[test]
fn deploy_recipe_env_with_another_transport_is_refused_without_showing_credentials() {
    refuse("recipe-env-http", |_| {
        let token = format!("T0KEN-{}", marker());
        Case::new("ccci-deploy", &["--recipe-env", "RECIPE", "--ref", "main"])
            .env("RECIPE", format!("http://ci:{token}@127.0.0.1:1/coop-cloud/hello.git"))
            .says("the scheme http:// is not allowed")
            .says("http://***@127.0.0.1:1/coop-cloud/hello.git")
            .hides(token)
    });
}

#[test]
fn deploy_unknown_driver() {
    refuse("driver", |sb| deploy(sb, &["--driver", "kubernetes"]).says("unknown driver").says("kubernetes"));
}

#[test]
fn deploy_timeout_not_a_duration() {
    refuse("timeout", |sb| deploy(sb, &[]).env("CCCI_DEPLOY_TIMEOUT", "soon").says("CCCI_DEPLOY_TIMEOUT").says("soon"));
}

#[test]
fn deploy_lease_ttl_not_a_duration() {
    refuse("lease", |sb| deploy(sb, &[]).env("CCCI_LEASE_TTL", "forever").says("CCCI_LEASE_TTL"));
}

#[test]
fn deploy_state_dir_relative() {
    refuse("state-dir-rel", |sb| {
        deploy(sb, &[]).env("CCCI_STATE_DIR", "relative/state").says("CCCI_STATE_DIR").says("absolute")
    });
}

#[test]
fn deploy_abra_server_invalid() {
    refuse("abra-server", |sb| {
        deploy(sb, &["--driver", "abra"])
            .env("CCCI_ABRA_SERVER", "../evil")
            .env("CCCI_ABRA", "/nonexistent/abra")
            .says("CCCI_ABRA_SERVER")
    });
}

#[test]
fn deploy_proxy_url_in_plain_http() {
    refuse("proxy-http", |sb| {
        deploy(sb, &[])
            .env("CCCI_PROXY_URL", "http://127.0.0.1:80")
            .says("CCCI_PROXY_URL")
            .says("CCCI_PROXY_ALLOW_HTTP=1")
    });
}

#[test]
fn deploy_proxy_url_not_a_url() {
    refuse("proxy-not-url", |sb| deploy(sb, &[]).env("CCCI_PROXY_URL", "proxy:443:x").says("CCCI_PROXY_URL"));
}

#[test]
fn deploy_proxy_ca_file_missing() {
    refuse("proxy-ca-missing", |sb| {
        deploy(sb, &[])
            .env("CCCI_PROXY_URL", "https://127.0.0.1:443")
            .env("CCCI_PROXY_CA_FILE", "/nonexistent/proxy-ca.pem")
            .says("CCCI_PROXY_CA_FILE")
    });
}

#[test]
fn deploy_proxy_ca_file_without_a_certificate() {
    refuse("proxy-ca-not-pem", |sb| {
        let ca = sb.root.join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        deploy(sb, &[])
            .env("CCCI_PROXY_URL", "https://127.0.0.1:443")
            .env("CCCI_PROXY_CA_FILE", ca.to_str().unwrap())
            .says("CCCI_PROXY_CA_FILE")
            .says("holds no PEM certificate")
    });
}

#[test]
fn assert_proxy_url_in_plain_http() {
    refuse("assert-proxy-http", |sb| {
        Case::new("ccci-assert", &["install"])
            .stdin(text(&valid_state(sb)))
            .env("CCCI_PROXY_URL", "http://127.0.0.1:80")
            .says("CCCI_PROXY_ALLOW_HTTP=1")
    });
}

// ---------------------------------------------------------------------------------------------
// ccci-assert and ccci-teardown arguments
// ---------------------------------------------------------------------------------------------

#[test]
fn assert_missing_tier() {
    refuse("no-tier", |sb| Case::new("ccci-assert", &[]).stdin(text(&valid_state(sb))).says("missing OP"));
}

#[test]
fn assert_unknown_tier() {
    refuse("tier", |sb| {
        Case::new("ccci-assert", &["smoke"])
            .stdin(text(&valid_state(sb)))
            .says("unknown OP \"smoke\": expected one of install")
            .says("\"smoke\"")
    });
}

#[test]
fn teardown_state_and_run_together() {
    refuse("state-and-run", |sb| {
        let f = sb.root.join("run.json");
        std::fs::write(&f, text(&valid_state(sb))).unwrap();
        Case::new("ccci-teardown", &["--state", f.to_str().unwrap(), "--run", &run_id()]).says("--state").says("--run")
    });
}

#[test]
fn teardown_run_not_an_id() {
    refuse("run-not-id", |_| {
        Case::new("ccci-teardown", &["--run", "not-an-id"]).says("invalid run id").says("\"not-an-id\"")
    });
}

#[test]
fn teardown_run_id_escaping_the_registry() {
    refuse("run-escape", |_| Case::new("ccci-teardown", &["--run", "../../etc/passwd"]).says("invalid run id"));
}

#[test]
fn teardown_state_dir_relative() {
    refuse("teardown-state-dir-rel", |sb| {
        Case::new("ccci-teardown", &[])
            .stdin(text(&valid_state(sb)))
            .env("CCCI_STATE_DIR", "relative/state")
            .says("CCCI_STATE_DIR")
            .says("absolute")
    });
}

// ---------------------------------------------------------------------------------------------
// Check settings: the allowlist, overlays, opt-outs and timeouts (ccci-assert and ccci-deploy)
// ---------------------------------------------------------------------------------------------

#[test]
fn assert_skip_generic_not_a_flag() {
    refuse("skip-generic", |_| {
        Case::new("ccci-assert", &["install"]).env("CCCI_SKIP_GENERIC", "maybe").says("CCCI_SKIP_GENERIC").says("maybe")
    });
}

#[test]
fn assert_skip_generic_of_the_op_not_a_flag() {
    refuse("skip-generic-op", |_| {
        Case::new("ccci-assert", &["custom"]).env("CCCI_SKIP_GENERIC_CUSTOM", "2").says("CCCI_SKIP_GENERIC_CUSTOM")
    });
}

#[test]
fn assert_overlays_dir_missing() {
    refuse("overlays-missing", |sb| {
        let d = sb.root.join("no-overlays");
        Case::new("ccci-assert", &["install"]).env("CCCI_OVERLAYS_DIR", d.to_str().unwrap()).says("CCCI_OVERLAYS_DIR")
    });
}

#[test]
fn assert_allowlist_missing() {
    refuse("allowlist-missing", |sb| {
        let f = sb.root.join("no-allowlist");
        Case::new("ccci-assert", &["install"]).env("CCCI_ALLOWLIST", f.to_str().unwrap()).says("CCCI_ALLOWLIST")
    });
}

#[test]
fn assert_allowlist_with_a_bad_line() {
    refuse("allowlist-bad", |sb| {
        let f = sb.root.join("allowlist");
        std::fs::write(&f, "git.coopcloud.tech/coop-cloud/hello\nHello World # typo\n").unwrap();
        Case::new("ccci-assert", &["install"]).env("CCCI_ALLOWLIST", f.to_str().unwrap()).says("allowlist:2")
    });
}

#[test]
fn assert_allowlist_with_a_bare_recipe_name_says_what_to_write_instead() {
    refuse("allowlist-bare-assert", |sb| {
        let f = sb.root.join("allowlist");
        std::fs::write(&f, "# old format\nhello\n").unwrap();
        Case::new("ccci-assert", &["install"])
            .env("CCCI_ALLOWLIST", f.to_str().unwrap())
            .says("allowlist:2: \"hello\" is a bare recipe name")
            .says("git.coopcloud.tech/coop-cloud/hello")
    });
}

#[test]
fn deploy_allowlist_with_a_bare_recipe_name_says_what_to_write_instead() {
    refuse("allowlist-bare-deploy", |sb| {
        let f = sb.root.join("allowlist");
        std::fs::write(&f, "custom-html\n").unwrap();
        deploy(sb, &[])
            .env("CCCI_ALLOWLIST", f.to_str().unwrap())
            .says("allowlist:1: \"custom-html\" is a bare recipe name")
            .says("host/owner/name")
    });
}

#[test]
fn allowlist_entry_with_credentials_is_refused_without_showing_them() {
    refuse("allowlist-creds", |sb| {
        let f = sb.root.join("allowlist");
        let token = format!("T0KEN-{}", marker());
        std::fs::write(&f, format!("https://ci:{token}@git.coopcloud.tech/coop-cloud/hello\n")).unwrap();
        deploy(sb, &[]).env("CCCI_ALLOWLIST", f.to_str().unwrap()).says("allowlist:1").says("credentials").hides(token)
    });
}

#[test]
fn assert_check_timeout_not_a_duration() {
    refuse("check-timeout", |_| {
        Case::new("ccci-assert", &["install"]).env("CCCI_CHECK_TIMEOUT", "soon").says("CCCI_CHECK_TIMEOUT")
    });
}

#[test]
fn assert_settle_window_not_a_duration() {
    refuse("settle", |_| {
        Case::new("ccci-assert", &["install"]).env("CCCI_SETTLE_WINDOW", "10 s").says("CCCI_SETTLE_WINDOW")
    });
}

#[test]
fn deploy_overlay_settings_with_an_unknown_key() {
    refuse("settings-key", |sb| {
        let overlays = sb.dir("overlays");
        std::fs::create_dir_all(overlays.join("hello")).unwrap();
        std::fs::write(overlays.join("hello/settings.env"), "SKIP_GENERICS=install\n").unwrap();
        deploy(sb, &[])
            .env("CCCI_OVERLAYS_DIR", overlays.to_str().unwrap())
            .says("settings.env")
            .says("unknown setting SKIP_GENERICS")
    });
}

#[test]
fn deploy_allowlist_missing() {
    refuse("deploy-allowlist", |sb| {
        let f = sb.root.join("no-allowlist");
        deploy(sb, &[]).env("CCCI_ALLOWLIST", f.to_str().unwrap()).says("CCCI_ALLOWLIST")
    });
}

// ---------------------------------------------------------------------------------------------
// ccci-upgrade and ccci-janitor
// ---------------------------------------------------------------------------------------------

#[test]
fn upgrade_unknown_flag() {
    refuse("upgrade-flag", |_| Case::new("ccci-upgrade", &["--bogus"]).says("--bogus"));
}

#[test]
fn upgrade_state_not_json() {
    refuse("upgrade-notjson", |_| Case::new("ccci-upgrade", &[]).stdin("{oops").says("not JSON"));
}

#[test]
fn upgrade_state_with_hostile_run_id() {
    refuse("upgrade-runid", |sb| {
        Case::new("ccci-upgrade", &[]).stdin(mutated(sb, |v| v["run_id"] = "../../etc".into())).says("run_id")
    });
}

#[test]
fn backup_and_restore_unknown_flag() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-flag", |_| Case::new(bin, &["--snapshot", "latest"]).says("--snapshot"));
    }
}

#[test]
fn backup_and_restore_restic_setting_that_is_a_relative_path() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-restic", |sb| {
            Case::new(bin, &[]).stdin(text(&valid_state(sb))).env("CCCI_RESTIC", "bin/restic").says("CCCI_RESTIC")
        });
    }
}

#[test]
fn backup_and_restore_check_timeout_out_of_bounds() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-timeout", |sb| {
            Case::new(bin, &[]).stdin(text(&valid_state(sb))).env("CCCI_CHECK_TIMEOUT", "0").says("CCCI_CHECK_TIMEOUT")
        });
    }
}

#[test]
fn backup_and_restore_state_file_in_a_missing_directory() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-statefile", |sb| {
            let f = sb.root.join("nowhere/run.json");
            Case::new(bin, &["--state", f.to_str().unwrap()]).says("nowhere")
        });
    }
}

#[test]
fn teardown_keep_on_failure_not_a_switch() {
    refuse("keep-switch", |sb| {
        Case::new("ccci-teardown", &[])
            .stdin(text(&valid_state(sb)))
            .env("CCCI_KEEP_ON_FAILURE", "maybe")
            .says("CCCI_KEEP_ON_FAILURE")
    });
}

#[test]
fn janitor_unknown_flag() {
    refuse("janitor-flag", |_| Case::new("ccci-janitor", &["--now"]).says("--now"));
}

#[test]
fn janitor_parallel_not_a_number() {
    refuse("janitor-parallel", |_| {
        Case::new("ccci-janitor", &[]).env("CCCI_JANITOR_PARALLEL", "lots").says("CCCI_JANITOR_PARALLEL")
    });
}

#[test]
fn janitor_grace_not_a_duration() {
    refuse("janitor-grace", |_| {
        Case::new("ccci-janitor", &[]).env("CCCI_JANITOR_GRACE", "a while").says("CCCI_JANITOR_GRACE")
    });
}

#[test]
fn janitor_artifacts_ttl_not_a_duration() {
    refuse("janitor-artifacts", |_| {
        Case::new("ccci-janitor", &[]).env("CCCI_ARTIFACTS_TTL", "forever").says("CCCI_ARTIFACTS_TTL")
    });
}

// ---------------------------------------------------------------------------------------------
// A run that was already torn down
// ---------------------------------------------------------------------------------------------

/// A valid state of a run that deployed and was then torn down (`teardown` with `result`).
fn torn_down_state(sb: &Sandbox, result: &str) -> Vec<u8> {
    mutated(sb, |v| {
        v["deploys"] = json!(1);
        let op = |name: &str, result: &str| json!({"op": name, "result": result, "started_at": "2026-01-01T00:01:00Z", "duration_ms": 10, "detail": "d", "assertions": []});
        v["ops"] = json!([op("deploy", "pass"), op("install", "pass"), op("teardown", result)]);
    })
}

#[test]
fn assert_after_teardown_is_refused_and_records_nothing() {
    for result in ["pass", "fail", "error"] {
        refuse("assert-after-teardown", |sb| {
            Case::new("ccci-assert", &["install"])
                .stdin(torn_down_state(sb, result))
                .says(format!("run {} was torn down", run_id()))
                .says("start a new run with ccci-deploy")
        });
    }
}

#[test]
fn upgrade_after_teardown_is_refused_and_records_nothing() {
    refuse("upgrade-after-teardown", |sb| {
        Case::new("ccci-upgrade", &[]).stdin(torn_down_state(sb, "pass")).says("was torn down")
    });
}

#[test]
fn backup_and_restore_after_teardown_are_refused_and_record_nothing() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-after-teardown", |sb| Case::new(bin, &[]).stdin(torn_down_state(sb, "pass")).says("was torn down"));
    }
}

/// A state that ccci-backup and ccci-restore would act on (deployed, installed, backed up),
/// whose workspace is `victim`, a directory of someone else's: no restic repository, password
/// or canary may appear there, and nothing in it may change.
#[test]
fn backup_and_restore_refuse_a_workspace_outside_the_installation_and_leave_it_untouched() {
    for bin in ["ccci-backup", "ccci-restore"] {
        refuse("bk-victim", |sb| {
            let victim = sb.dir("victim");
            std::fs::write(victim.join("precious"), "must survive\n").unwrap();
            let state = mutated(sb, |v| {
                v["workspace"] = victim.to_str().unwrap().into();
                v["deploys"] = 1.into();
                let op = |name: &str| json!({"op": name, "result": "pass", "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1, "detail": "d"});
                let mut backup = op("backup");
                backup["backup"] =
                    json!({"engine": "stack", "repository": victim.join("backup/restic"), "snapshot": "00"});
                v["ops"] = json!([op("deploy"), op("install"), backup]);
            });
            Case::new(bin, &[]).stdin(state).says("field `workspace`").says("victim")
        });
    }
}

/// The control: a teardown that kept the run (keep-on-failure, `skip`) left it deployed.
/// A state file kept from before the run was torn down (by `ccci-teardown --run`) or reaped by
/// the janitor holds no teardown op, but its run has no registry entry any more: no stage but
/// teardown may act on it.
#[test]
fn a_stage_on_a_run_that_is_no_longer_registered_is_refused_and_records_nothing() {
    for (bin, args) in [
        ("ccci-assert", &["install"][..]),
        ("ccci-assert", &["custom"]),
        ("ccci-upgrade", &[]),
        ("ccci-backup", &[]),
        ("ccci-restore", &[]),
    ] {
        refuse("unregistered", |sb| {
            let mut v = valid_state(sb);
            v["deploys"] = json!(1);
            Case::new(bin, args).stdin(text(&v)).says("is not registered").says("torn down or reaped")
        });
    }
}

#[test]
fn assert_after_a_kept_teardown_is_not_refused() {
    let sb = Sandbox::new("assert-after-kept");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let kept = torn_down_state(&sb, "skip");
    register(&sb.state_dir(), &serde_json::from_slice(&kept).unwrap(), u64::MAX / 2);
    let ran = Run::new("ccci-assert", &["custom"], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .env("CCCI_SKIP_GENERIC", "1")
        .env("CCCI_OVERLAYS_DIR", sb.dir("overlays"))
        .stdin(kept)
        .run(LIMIT);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let out: Value = serde_json::from_str(&ran.stdout).expect("ccci-assert prints the state");
    assert_eq!(out["ops"][3]["op"], "custom", "{out}");
}

// ---------------------------------------------------------------------------------------------
// States pointing outside this installation, with something there to lose
// ---------------------------------------------------------------------------------------------

/// A state that ccci-upgrade would act on (deployed, an upgrade planned), whose workspace is
/// `victim`: a directory of someone else's, holding a git tree with an untracked file and a
/// changed one that `git checkout --force` and `git clean -ffdx` would destroy. `refuse` checks
/// that every file of the sandbox, the victim's included, is as it was.
#[test]
fn upgrade_refuses_a_workspace_outside_the_installation_and_leaves_it_untouched() {
    refuse("upgrade-victim", |sb| {
        let victim = sb.dir("victim");
        let tree = victim.join("recipe");
        std::fs::create_dir_all(&tree).unwrap();
        git(&tree, &["init", "--quiet"]);
        std::fs::write(tree.join("compose.yml"), "services: {}\n").unwrap();
        git(&tree, &["add", "."]);
        git(&tree, &["commit", "--quiet", "-m", "one"]);
        let commit = git(&tree, &["rev-parse", "HEAD"]);
        std::fs::write(tree.join("precious"), "must survive\n").unwrap();
        std::fs::write(tree.join("compose.yml"), "services: {changed: {}}\n").unwrap();
        let state = mutated(sb, |v| {
            v["workspace"] = victim.to_str().unwrap().into();
            v["source"]["commit"] = commit.clone().into();
            v["source"]["nar_hash"] = "sha256:00".into();
            v["deploys"] = 1.into();
            v["upgrade"] = json!({"base": {"tag": "1.0.0+1", "commit": commit, "annotated": true}, "reason": "test"});
            v["ops"] = json!([{"op": "deploy", "result": "pass", "started_at": "2026-01-01T00:00:00Z",
                               "duration_ms": 1, "detail": "deployed"}]);
        });
        Case::new("ccci-upgrade", &[]).stdin(state).says("field `workspace`").says("victim")
    });
}

/// A swarm object that belongs to another installation's run (a ccci-named stack under another
/// domain suffix), removed when the test ends however it ends.
struct ForeignObject {
    name: String,
}

impl ForeignObject {
    fn create(stack: &str) -> ForeignObject {
        let name = format!("{stack}_victim");
        let mut child = std::process::Command::new("docker")
            .args(["config", "create", "--label", &format!("com.docker.stack.namespace={stack}"), &name, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("docker config create");
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"another installation's\n").unwrap();
        assert!(child.wait().unwrap().success(), "creating config {name}");
        ForeignObject { name }
    }

    fn exists(&self) -> bool {
        std::process::Command::new("docker")
            .args(["config", "inspect", &self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for ForeignObject {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["config", "rm", &self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn teardown_refuses_a_stack_of_another_domain_suffix_and_leaves_its_objects() {
    let domain = format!("{}.{}", run_id(), other_suffix());
    let stack = domain.replace('.', "_");
    let foreign = ForeignObject::create(&stack);
    refuse("teardown-foreign-stack", |sb| {
        let state = mutated(sb, |v| {
            v["domain"] = domain.clone().into();
            v["stack"] = stack.clone().into();
        });
        Case::new("ccci-teardown", &[]).stdin(state).says("field `domain`").says(&domain)
    });
    assert!(foreign.exists(), "ccci-teardown removed {} of another installation", foreign.name);
}

#[test]
fn teardown_by_run_id_refuses_a_registry_entry_of_another_installation() {
    let domain = format!("{}.{}", run_id(), other_suffix());
    let stack = domain.replace('.', "_");
    let foreign = ForeignObject::create(&stack);
    let sb = Sandbox::new("teardown-run-foreign");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let runs = sb.state_dir().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let state = serde_json::from_slice::<Value>(&mutated(&sb, |v| {
        v["domain"] = domain.clone().into();
        v["stack"] = stack.clone().into();
    }))
    .unwrap();
    let entry = json!({"schema": "ccci.registry/v1",
                       "lease": {"expires_at": 0, "renewed_at": 0, "holder": "test"}, "run": state});
    let path = runs.join(format!("{}.json", run_id()));
    std::fs::write(&path, text(&entry)).unwrap();
    let ran = Run::new("ccci-teardown", &["--run", &run_id()], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .run(LIMIT);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("field `domain`"), "{}", ran.stderr);
    assert!(foreign.exists(), "ccci-teardown --run removed {} of another installation", foreign.name);
    assert!(path.exists(), "the entry is left for a person to look at");
}

// ---------------------------------------------------------------------------------------------
// Output that cannot be written: a closed stdout is the environment's error, a closed stderr
// changes nothing
// ---------------------------------------------------------------------------------------------

const BINS: [&str; 9] = [
    "ccci-deploy",
    "ccci-assert",
    "ccci-upgrade",
    "ccci-backup",
    "ccci-restore",
    "ccci-teardown",
    "ccci-janitor",
    "ccci-report",
    "ccci-bridge",
];

/// `ccci-x --help | true`: exit 3 with one line on stderr, never a panic (101).
#[test]
fn help_and_version_on_a_closed_stdout_are_an_environment_error() {
    let sb = Sandbox::new("closed-stdout-help");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    for bin in BINS {
        for (flag, what) in [("--help", "the help"), ("--version", "the version")] {
            let ran = Run::new(bin, &[flag], &cwd, &home).closed_stdout().run(LIMIT);
            assert_eq!(ran.code, Some(3), "{bin} {flag} | true: {}", ran.stderr);
            assert_eq!(
                ran.stderr.lines().collect::<Vec<_>>(),
                [format!("{bin}: error: writing {what} to stdout: Broken pipe (os error 32)")],
                "{bin} {flag} | true"
            );
        }
    }
}

/// A stage whose run-state cannot be passed on: exit 3, one line saying so.
#[test]
fn the_run_state_on_a_closed_stdout_is_an_environment_error() {
    let sb = Sandbox::new("closed-stdout-state");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let valid = valid_state(&sb);
    register(&sb.state_dir(), &valid, u64::MAX / 2);
    let ran = Run::new("ccci-assert", &["install"], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin(text(&valid))
        .closed_stdout()
        .run(LIMIT);
    assert_eq!(ran.code, Some(3), "{}", ran.stderr);
    let last = ran.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("ccci-assert: error: writing the run-state to stdout: Broken pipe"), "{}", ran.stderr);
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
}

/// Progress that cannot be written never ends an op: a closed stderr, the same run-state out.
#[test]
fn a_closed_stderr_changes_nothing() {
    let sb = Sandbox::new("closed-stderr");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let valid = valid_state(&sb);
    register(&sb.state_dir(), &valid, u64::MAX / 2);
    let ran = Run::new("ccci-assert", &["install"], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin(text(&valid))
        .closed_stderr()
        .run(LIMIT);
    assert_eq!(ran.code, Some(0), "ccci-assert with a closed stderr");
    let out: Value = serde_json::from_str(&ran.stdout).expect("ccci-assert prints the state");
    assert_eq!(out["ops"][0]["result"], "skip");
    let ran = Run::new("ccci-janitor", &["--dry-run"], &cwd, &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .closed_stderr()
        .run(LIMIT);
    assert_eq!(ran.code, Some(0), "ccci-janitor --dry-run with a closed stderr");
    // An error with nowhere to be said still has its exit code.
    let ran = Run::new("ccci-assert", &["nope"], &cwd, &home).closed_stderr().run(LIMIT);
    assert_eq!(ran.code, Some(2), "a bad argument with a closed stderr");
}

// ---------------------------------------------------------------------------------------------
// A dry run creates nothing
// ---------------------------------------------------------------------------------------------

#[test]
fn janitor_dry_run_creates_nothing_on_a_missing_or_empty_state_dir() {
    let sb = Sandbox::new("janitor-dry-run");
    let (home, cwd) = (sb.dir("home"), sb.dir("cwd"));
    let janitor = || {
        Run::new("ccci-janitor", &["--dry-run"], &cwd, &home)
            .env("CCCI_STATE_DIR", sb.state_dir())
            .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
            .run(LIMIT)
    };
    let ran = janitor();
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""), "{}", ran.stderr);
    assert!(!sb.state_dir().exists(), "a dry run created CCCI_STATE_DIR: {:?}", sb.listing());
    std::fs::create_dir(sb.state_dir()).unwrap();
    let before = sb.listing();
    let ran = janitor();
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), ""), "{}", ran.stderr);
    assert_eq!(sb.listing(), before, "a dry run created files in an empty CCCI_STATE_DIR");
    // An entry to read (a corrupt one: one audit line, exit 1), and no lock file yet.
    std::fs::create_dir(sb.state_dir().join("runs")).unwrap();
    std::fs::write(sb.state_dir().join(format!("runs/{}.json", run_id())), "{").unwrap();
    let before = sb.listing();
    let ran = janitor();
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    assert!(ran.stdout.contains("invalid registry entry"), "{}", ran.stdout);
    assert_eq!(sb.listing(), before, "a dry run created the registry's lock file");
}

/// `ccci-teardown` at a terminal with no state says every way in, `--run` too. Needs util-linux's
/// `script` for the terminal; without it the test says SKIPPED.
#[test]
fn teardown_at_a_terminal_names_state_and_run() {
    let sb = Sandbox::new("teardown-tty");
    let home = sb.dir("home");
    let bin = common::bin("ccci-teardown");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("'{}'", bin.display()), "/dev/null"])
        .current_dir(&home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("CCCI_STATE_DIR", sb.state_dir())
        .env("CCCI_DOMAIN_SUFFIX", common::domain_suffix())
        .stdin(std::process::Stdio::null())
        .output();
    let Ok(out) = out else {
        eprintln!("SKIPPED teardown_at_a_terminal_names_state_and_run: no `script` to give it a terminal");
        return;
    };
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("pass --state FILE, or give --run RUN_ID"), "{said}");
    assert!(!sb.state_dir().exists(), "created CCCI_STATE_DIR");
}
