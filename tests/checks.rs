//! End-to-end, on this machine's real swarm: checks as executables from the three sources
//! (generic, overlay, the recipe's own `tests/`), the trust gate, the opt-outs of the generic
//! floor, the install-steps hook, timeouts and the cleared environment.
//!
//! The recipe is the example (`examples/hello/make-repo`) with a head commit that adds
//! repo-local canaries: `tests/install/10-canary`, `tests/custom/10-canary` and
//! `tests/install_steps.sh`, each leaving a marker file (its environment) in the test's canary
//! directory when, and only when, it runs. The overlays live in a temporary `CCCI_OVERLAYS_DIR`
//! that starts as a copy of the shipped `overlays/hello`. Every ccci process gets a planted
//! secret in its environment, which must reach no check, no hook, no state and no report.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{
    Ran, Run, Sandbox, assertion, copy_dir, domain_suffix, git, left_on_swarm, make_repo, marker, op, read_state,
    repo_root, write_exec,
};

const NOT_APPROVED: &str = "not approved: repository not in allowlist";
const LIMIT: Duration = Duration::from_secs(240);

fn secret() -> String {
    format!("planted-secret-{}", marker())
}

/// One run of the example recipe, with its canaries, overlays and allowlists, in a sandbox.
struct Pipe {
    sb: Sandbox,
    driver: &'static str,
    repo: PathBuf,
    /// Where canaries and test checks leave their markers.
    canary: PathBuf,
    /// `CCCI_OVERLAYS_DIR`; the recipe's overlay is `overlays/hello`.
    overlays: PathBuf,
    state_file: PathBuf,
    /// An allowlist approving nothing (comments only), and one listing hello.
    deny: PathBuf,
    approve: PathBuf,
}

impl Pipe {
    fn new(name: &str, driver: &'static str) -> Pipe {
        let sb = Sandbox::new(name);
        let repo = sb.root.join("hello");
        make_repo(&repo, Some("ok"));
        let canary = sb.dir("canary");
        let marker_of = |what: &str| format!("#!/bin/sh\nenv > '{}/repo-{what}.env'\n", canary.display());
        write_exec(&repo.join("tests/install/10-canary"), &(marker_of("install") + "echo canary ran\n"));
        write_exec(&repo.join("tests/custom/10-canary"), &(marker_of("custom") + "echo canary ran\n"));
        write_exec(
            &repo.join("tests/install_steps.sh"),
            &(marker_of("install-steps")
                + &format!(
                    "if [ -e '{}/fail-install-steps' ]; then echo seeding...; echo 'cannot seed the database' >&2; exit 1; fi\necho seeded\n",
                    canary.display()
                )),
        );
        git(&repo, &["add", "tests"]);
        git(&repo, &["commit", "-q", "-m", "head: repo-local checks"]);

        let overlays = sb.dir("overlays");
        copy_dir(&repo_root().join("overlays/hello"), &overlays.join("hello"));
        let deny = sb.root.join("allowlist-empty");
        std::fs::write(&deny, "# nothing approved\n").unwrap();
        // Approval is of the repository (its real path here), never of the name `hello`.
        let approve = sb.root.join("allowlist-hello");
        std::fs::write(&approve, format!("# approved for the test\n{}\n", repo.display())).unwrap();
        let state_file = sb.root.join("run.json");
        Pipe { driver, repo, canary, overlays, state_file, deny, approve, sb }
    }

    /// An overlay file of hello, executable.
    fn overlay(&self, rel: &str, body: &str) -> PathBuf {
        let p = self.overlays.join("hello").join(rel);
        write_exec(&p, body);
        p
    }

    /// A ccci binary with a cleared environment: exactly the settings of the test, plus the
    /// planted secret under two names a CI host might really have.
    fn run(&self, bin: &str, args: &[&str], allowlist: &Path, extra: &[(&str, &str)]) -> Ran {
        let mut r = Run::new(bin, args, &self.sb.dir("cwd"), &self.sb.dir("home"))
            .env("CCCI_STATE_DIR", self.sb.state_dir())
            .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
            .env("CCCI_ABRA", repo_root().join("tests/support/abra"))
            .env("CCCI_OVERLAYS_DIR", &self.overlays)
            .env("CCCI_ALLOWLIST", allowlist)
            .env("CCCI_DEPLOY_TIMEOUT", "90s")
            .env("CCCI_SERVING_TIMEOUT", "8s")
            .env("CCCI_SETTLE_WINDOW", "2s")
            .env("CCCI_CHECK_TIMEOUT", "30s")
            .env("CCCI_PLANTED_SECRET", secret())
            .env("GITEA_TOKEN", secret());
        for (k, v) in extra {
            r = r.env(k, v);
        }
        r.run(LIMIT)
    }

    fn deploy(&self, allowlist: &Path) -> Ran {
        self.deploy_from(&self.repo, allowlist, &[])
    }

    /// Deploys `repo` (as `--recipe-name hello`) with `extra` in the environment.
    fn deploy_from(&self, repo: &Path, allowlist: &Path, extra: &[(&str, &str)]) -> Ran {
        let repo = repo.display().to_string();
        let state = self.state_file.display().to_string();
        let args =
            ["--driver", self.driver, "--recipe-name", "hello", "--ref", "main", "--recipe", &repo, "--state", &state];
        self.run("ccci-deploy", &args, allowlist, extra)
    }

    /// The repository's identity: its real path.
    fn identity(&self) -> String {
        std::fs::canonicalize(&self.repo).unwrap().display().to_string()
    }

    fn step(&self, bin: &str, args: &[&str], allowlist: &Path, extra: &[(&str, &str)]) -> Ran {
        let state = self.state_file.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--state", &state]);
        self.run(bin, &all, allowlist, extra)
    }

    fn state(&self) -> Value {
        read_state(&self.state_file)
    }

    fn canary_ran(&self, what: &str) -> bool {
        self.canary.join(format!("repo-{what}.env")).exists()
    }

    /// Teardown, then nothing of the run is left: on the swarm, in the registry, on disk.
    fn teardown(&self) -> Value {
        let t = self.step("ccci-teardown", &[], &self.deny, &[]);
        let s = self.state();
        assert_eq!(t.code, Some(0), "teardown: {}", t.stderr);
        assert_eq!(op(&s, "teardown")["result"], "pass");
        let stack = s["stack"].as_str().unwrap();
        assert_eq!(left_on_swarm(stack), Vec::<String>::new(), "left on the swarm");
        assert_eq!(self.sb.entries("runs"), Vec::<String>::new(), "registry entry left");
        assert_eq!(self.sb.entries("work"), Vec::<String>::new(), "workspace left");
        s
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // A failing assertion must not leak the deployment.
        if self.state_file.exists() && !self.sb.entries("runs").is_empty() {
            let _ = self.step("ccci-teardown", &[], &self.deny, &[]);
        }
    }
}

fn names(op: &Value) -> Vec<String> {
    op["assertions"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()).collect()
}

/// Reads an env dump a check or hook left: `KEY=VALUE` lines.
fn env_dump(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn var<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
    env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

/// Gone, or a zombie waiting to be reaped.
fn process_gone(pid: u32) -> bool {
    for _ in 0..100 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat) if stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')) => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    false
}

const GENERIC: &[&str] = &[
    "services at desired replicas",
    "no restarts while settling",
    "healthchecks passing",
    "traefik routes the run's domain",
    "serving app:8080 (traefik)",
    "serving app:8080",
    "images pinned",
];

#[test]
fn trust_gate_overlays_opt_outs_and_timeouts_on_one_deployment() {
    let p = Pipe::new("checks-one-deployment", "stack");
    let canary = p.canary.display().to_string();
    p.overlay("install_steps.sh", &format!(
        "#!/bin/sh\nenv > '{canary}/overlay-install-steps.env'\ngrep -q \"^DOMAIN=$CCCI_DOMAIN\" \"$CCCI_ENV_FILE\" || {{ echo \"$CCCI_ENV_FILE has no DOMAIN\"; exit 1; }}\necho app env ready\n"
    ));
    p.overlay(
        "install/20-env",
        &format!("#!/bin/sh\nenv > '{canary}/overlay-install.env'\necho environment recorded\n"),
    );
    p.overlay("custom/20-env", &format!("#!/bin/sh\nenv > '{canary}/overlay-custom.env'\necho environment recorded\n"));

    // Deploy with nothing approved: the overlay's hook runs, the recipe's own is only listed.
    let d = p.deploy(&p.deny);
    assert_eq!(d.code, Some(0), "deploy: {}", d.stderr);
    let s = p.state();
    let hooks = op(&s, "install-steps");
    assert_eq!(hooks["result"], "pass", "{hooks:#}");
    assert_eq!(assertion(hooks, "overlays/hello/install_steps.sh")["result"], "pass");
    assert_eq!(assertion(hooks, "overlays/hello/install_steps.sh")["detail"], "app env ready");
    let repo_hook = assertion(hooks, "tests/install_steps.sh");
    assert_eq!((repo_hook["result"].as_str(), repo_hook["detail"].as_str()), (Some("skip"), Some(NOT_APPROVED)));
    assert!(!p.canary_ran("install-steps"), "the unapproved repo-local hook ran");
    assert_eq!(s["source"]["identity"], p.identity().as_str());
    assert_eq!(s["source"]["approved_by"], Value::Null, "recorded: nothing approved the run");
    let hook_env = env_dump(&p.canary.join("overlay-install-steps.env"));
    assert_eq!(var(&hook_env, "CCCI_OP"), Some("install-steps"));
    assert!(var(&hook_env, "CCCI_ENV_FILE").is_some_and(|f| f.ends_with("app.env")), "{hook_env:?}");

    // install: the generic floor and the overlay's checks on the one deployment; the canary is
    // discovered and reported, not run.
    let i = p.step("ccci-assert", &["install"], &p.deny, &[]);
    assert_eq!(i.code, Some(0), "install: {}", i.stderr);
    let s = p.state();
    assert_eq!(s["deploys"], 1);
    let install = op(&s, "install");
    assert_eq!(install["result"], "pass", "{install:#}");
    let mut expected: Vec<String> = GENERIC.iter().map(|n| n.to_string()).collect();
    expected.extend(
        ["overlays/hello/install/10-page", "overlays/hello/install/20-env", "tests/install/10-canary"]
            .map(String::from),
    );
    assert_eq!(names(install), expected, "generic first, then the overlay, then the recipe's own: {}", i.stderr);
    for g in GENERIC {
        assert_eq!(assertion(install, g)["result"], "pass", "{g}: {install:#}");
    }
    let page = assertion(install, "overlays/hello/install/10-page");
    assert_eq!((page["result"].as_str(), page["detail"].as_str()), (Some("pass"), Some("serves the hello page")));
    assert!(page["output"].as_str().unwrap().contains("<h1>hello 1.1.0</h1>"), "{page}");
    let canary_check = assertion(install, "tests/install/10-canary");
    assert_eq!((canary_check["result"].as_str(), canary_check["detail"].as_str()), (Some("skip"), Some(NOT_APPROVED)));
    assert!(install["detail"].as_str().unwrap().contains(NOT_APPROVED), "{install}");
    assert!(!p.canary_ran("install"), "the unapproved canary ran");
    assert!(generic_skipped_for(install).is_none());

    // The documented environment, and a read-only copy of the run-state.
    let env = env_dump(&p.canary.join("overlay-install.env"));
    let run_id = s["run_id"].as_str().unwrap();
    assert_eq!(var(&env, "CCCI_OP"), Some("install"));
    assert_eq!(var(&env, "CCCI_RECIPE"), Some("hello"));
    assert_eq!(var(&env, "CCCI_RUN_ID"), Some(run_id));
    assert_eq!(var(&env, "CCCI_DOMAIN"), s["domain"].as_str());
    assert_eq!(var(&env, "CCCI_STACK"), s["stack"].as_str());
    assert_eq!(var(&env, "CCCI_COMMIT"), s["source"]["commit"].as_str());
    let port = s["deployed"]["services"]["app"]["ports"][0]["published"].as_u64().unwrap();
    assert_eq!(var(&env, "CCCI_URL"), Some(format!("http://127.0.0.1:{port}/").as_str()));
    let copy = PathBuf::from(var(&env, "CCCI_STATE").unwrap());
    let copied: Value = serde_json::from_str(&std::fs::read_to_string(&copy).unwrap()).unwrap();
    assert_eq!(copied["run_id"], run_id);
    assert_eq!(std::fs::metadata(&copy).unwrap().permissions().mode() & 0o222, 0, "the copy is read-only");
    let work = var(&env, "CCCI_WORK_DIR").unwrap();
    assert_eq!((var(&env, "HOME"), var(&env, "TMPDIR")), (Some(work), Some(work)));

    // upgrade: the shipped overlay's upgrade check sees the head's page.
    let u = p.step("ccci-upgrade", &[], &p.deny, &[]);
    assert_eq!(u.code, Some(0), "upgrade: {}", u.stderr);
    let au = p.step("ccci-assert", &["upgrade"], &p.deny, &[]);
    assert_eq!(au.code, Some(0), "assert upgrade: {}", au.stderr);
    let s = p.state();
    let au = op(&s, "assert upgrade");
    assert_eq!(au["result"], "pass", "{au:#}");
    assert_eq!(names(au)[0], "moved to the head");
    assert_eq!(assertion(au, "overlays/hello/upgrade/10-page-is-the-head")["result"], "pass");
    assert_eq!(assertion(au, "serving app:8080")["result"], "pass");
    assert_eq!(s["deploys"], 1);

    // custom, approved: the canary runs. A check that hangs is killed at its timeout, with
    // what it started.
    let pidfile = p.canary.join("hang.pid");
    let hang = p.overlay(
        "custom/50-hang",
        // The sleeper's pid as the host sees it: the check's `$!` is a pid of its own namespace.
        &format!(
            "#!/bin/sh\necho going to sleep\nsh -c 'read -r pid _ < /proc/self/stat; echo $pid > \"{}\"; exec sleep 300' &\nwait\n",
            pidfile.display()
        ),
    );
    let started = Instant::now();
    let c = p.step("ccci-assert", &["custom"], &p.approve, &[("CCCI_CHECK_TIMEOUT", "3s")]);
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
    assert_eq!(c.code, Some(3), "custom with a hanging check errors: {}", c.stderr);
    let s = p.state();
    let custom = op(&s, "custom");
    assert_eq!(custom["result"], "error");
    let hung = assertion(custom, "overlays/hello/custom/50-hang");
    assert_eq!(hung["result"], "error");
    assert_eq!(hung["detail"], "timed out after 3s: killed with its process group: going to sleep");
    let sleeper: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(process_gone(sleeper), "the hanging check's child {sleeper} survived");
    assert_eq!(assertion(custom, "tests/custom/10-canary")["result"], "pass");
    assert!(p.canary_ran("custom"), "the approved canary did not run");
    assert_eq!(s["source"]["approved_by"]["entry"], p.identity().as_str());
    assert_eq!(s["source"]["approved_by"]["at"], format!("{}:2", p.approve.display()));
    assert_eq!(assertion(custom, "overlays/hello/custom/10-data-volume")["result"], "pass");
    assert_eq!(assertion(custom, "services at desired replicas")["result"], "pass");
    std::fs::remove_file(hang).unwrap();

    // Each opt-out form skips the generic floor and says who asked; the checks still run.
    let forms = [
        ("CCCI_SKIP_GENERIC", "opted out by CCCI_SKIP_GENERIC=1 in the environment"),
        ("CCCI_SKIP_GENERIC_CUSTOM", "opted out by CCCI_SKIP_GENERIC_CUSTOM=1 in the environment"),
    ];
    for (var_name, says) in forms {
        let r = p.step("ccci-assert", &["custom"], &p.approve, &[(var_name, "1")]);
        assert_eq!(r.code, Some(0), "{var_name}: {}", r.stderr);
        let s = p.state();
        let custom = op(&s, "custom");
        assert_eq!(generic_skipped_for(custom).as_deref(), Some(format!("skipped: {says}").as_str()), "{custom:#}");
    }
    // An opt-out for another op leaves this one alone.
    let r = p.step("ccci-assert", &["custom"], &p.approve, &[("CCCI_SKIP_GENERIC_INSTALL", "1")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(generic_skipped_for(op(&p.state(), "custom")).is_none());
    std::fs::write(p.overlays.join("hello/settings.env"), "# hello's custom checks cover it\nSKIP_GENERIC=custom\n")
        .unwrap();
    let r = p.step("ccci-assert", &["custom"], &p.approve, &[]);
    assert_eq!(r.code, Some(0), "settings: {}", r.stderr);
    let s = p.state();
    let custom = op(&s, "custom");
    assert_eq!(
        generic_skipped_for(custom).as_deref(),
        Some("skipped: opted out by SKIP_GENERIC in overlays/hello/settings.env")
    );
    assert_eq!(assertion(custom, "overlays/hello/custom/10-data-volume")["result"], "pass");
    let report = p.step("ccci-report", &[], &p.deny, &[]);
    assert_eq!(report.code, Some(1), "the hanging check errored: {}", report.stderr);
    for who in ["CCCI_SKIP_GENERIC=1", "CCCI_SKIP_GENERIC_CUSTOM=1", "SKIP_GENERIC in overlays/hello/settings.env"] {
        assert!(report.stdout.contains(who), "the report does not name {who}:\n{}", report.stdout);
    }
    let md = p.step("ccci-report", &["--format", "markdown"], &p.deny, &[]);
    assert!(md.stdout.contains("SKIP\\_GENERIC in overlays\\/hello\\/settings\\.env"), "{}", md.stdout);
    assert!(md.stdout.contains("<summary>output of overlays/hello/custom/50-hang</summary>"), "{}", md.stdout);

    // Install failing now (an overlay check says so) sends the later tiers to skip.
    std::fs::remove_file(p.overlays.join("hello/settings.env")).unwrap();
    p.overlay("install/90-fails", "#!/bin/sh\necho 'the admin page is missing'\nexit 1\n");
    let i = p.step("ccci-assert", &["install"], &p.deny, &[]);
    assert_eq!(i.code, Some(1), "{}", i.stderr);
    let c = p.step("ccci-assert", &["custom"], &p.approve, &[]);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let s = p.state();
    let failed = assertion(op(&s, "install"), "overlays/hello/install/90-fails");
    assert_eq!(failed["detail"], "failed (exit 1): the admin page is missing");
    assert_eq!(op(&s, "custom")["result"], "skip");
    assert_eq!(op(&s, "custom")["detail"], "skipped: install failed (fail)");

    let s = p.teardown();
    assert_eq!(s["deploys"], 1, "one deployment for everything");
    // The overlay's hook, install and custom checks, the approved custom canary.
    assert_no_secret(&p, &report.stdout, 4);
}

/// The detail of the `generic checks` skip, when the op skipped its generic floor.
fn generic_skipped_for(op: &Value) -> Option<String> {
    let found = op["assertions"].as_array().unwrap().iter().find(|a| a["name"] == "generic checks")?;
    assert_eq!(found["result"], "skip");
    assert!(!names(op).iter().any(|n| GENERIC.contains(&n.as_str())), "generic checks ran although skipped: {op:#}");
    Some(found["detail"].as_str().unwrap().to_string())
}

/// The planted secret is in no marker, no state and no report; the markers prove the checks
/// got the documented variables.
fn assert_no_secret(p: &Pipe, report: &str, env_dumps: usize) {
    let dumps = files(&p.canary);
    assert_eq!(dumps.iter().filter(|f| f.extension().is_some_and(|e| e == "env")).count(), env_dumps, "{dumps:?}");
    for f in dumps.iter().chain([&p.state_file]) {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        assert!(!text.contains(&secret()), "the planted secret reached {}", f.display());
        assert!(!text.contains("GITEA_TOKEN") && !text.contains("CCCI_PLANTED_SECRET"), "{}", f.display());
    }
    assert!(!report.contains(&secret()));
}

#[test]
fn approved_install_steps_run_and_a_failing_hook_fails_the_deploy() {
    let p = Pipe::new("checks-failing-hook", "abra");
    std::fs::write(p.canary.join("fail-install-steps"), "").unwrap();
    let d = p.deploy(&p.approve);
    assert_eq!(d.code, Some(1), "deploy: {}", d.stderr);
    let s = p.state();
    let hooks = op(&s, "install-steps");
    assert_eq!(hooks["result"], "fail", "{hooks:#}");
    let hook = assertion(hooks, "tests/install_steps.sh");
    assert_eq!(hook["detail"], "failed (exit 1): cannot seed the database");
    assert_eq!(hook["output"], "seeding...\ncannot seed the database\n");
    assert!(p.canary_ran("install-steps"), "the approved hook did not run");
    assert_eq!(s["source"]["approved_by"]["entry"], p.identity().as_str());
    let deploy = op(&s, "deploy");
    assert_eq!(deploy["result"], "fail");
    let detail = deploy["detail"].as_str().unwrap();
    assert!(
        detail.contains("install steps failed") && detail.contains("seeding... | cannot seed the database"),
        "{detail}"
    );
    assert_eq!(s["deploys"], 0, "nothing was deployed");

    let env = env_dump(&p.canary.join("repo-install-steps.env"));
    let env_file = var(&env, "CCCI_ENV_FILE").unwrap();
    assert_eq!(Some(env_file), s["env_file"].as_str());
    assert!(var(&env, "ABRA_DIR").is_some_and(|d| env_file.starts_with(d)), "{env:?}");

    for (tier, name) in [("install", "install"), ("custom", "custom")] {
        let r = p.step("ccci-assert", &[tier], &p.approve, &[]);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        let s = p.state();
        assert_eq!(op(&s, name)["detail"], "skipped: deploy did not pass (fail)");
    }
    assert!(!p.canary_ran("install") && !p.canary_ran("custom"), "nothing runs on a dead deployment");
    p.teardown();
    assert_no_secret(&p, "", 1);
}

/// A fork of the approved repository, named `hello` too and deployed as `--recipe-name hello`,
/// is another repository: none of its code runs, and the state says nothing approved it.
#[test]
fn a_fork_named_like_an_approved_recipe_runs_none_of_its_code() {
    let p = Pipe::new("checks-fork", "stack");
    let fork = p.sb.root.join("mallory/hello");
    let out = Command::new("git").arg("clone").arg("-q").arg(&p.repo).arg(&fork).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The allowlist approves the original repository (and names the fork's recipe name nowhere
    // else): the fork's name, path tail and --recipe-name all say `hello`.
    let d = p.deploy_from(&fork, &p.approve, &[]);
    assert_eq!(d.code, Some(0), "deploy: {}", d.stderr);
    let s = p.state();
    assert_eq!(s["recipe"], "hello");
    assert_eq!(s["source"]["identity"], std::fs::canonicalize(&fork).unwrap().display().to_string());
    assert_eq!(s["source"]["approved_by"], Value::Null);
    let repo_hook = assertion(op(&s, "install-steps"), "tests/install_steps.sh");
    assert_eq!((repo_hook["result"].as_str(), repo_hook["detail"].as_str()), (Some("skip"), Some(NOT_APPROVED)));
    let i = p.step("ccci-assert", &["install"], &p.approve, &[]);
    assert_eq!(i.code, Some(0), "{}", i.stderr);
    let s = p.state();
    let canary = assertion(op(&s, "install"), "tests/install/10-canary");
    assert_eq!((canary["result"].as_str(), canary["detail"].as_str()), (Some("skip"), Some(NOT_APPROVED)));
    assert_eq!(s["source"]["approved_by"], Value::Null);
    assert!(!p.canary_ran("install-steps") && !p.canary_ran("install"), "the fork's code ran");
    p.teardown();
}

/// git runs with ccci's environment, not the step's: config, hooks and commands planted through
/// `GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_GLOBAL`, `GIT_CONFIG_SYSTEM`, `GIT_SSH_COMMAND`,
/// `GIT_EXEC_PATH`, `GIT_DIR` and the caller's HOME run nothing, redirect nothing, and the run
/// still deploys the real head.
#[test]
fn a_hostile_git_environment_runs_no_command_and_the_deploy_still_works() {
    let p = Pipe::new("checks-git-env", "stack");
    let marks = p.sb.dir("marks");
    let m = |what: &str| marks.join(what).display().to_string();
    let hooks = p.sb.dir("hooks");
    for hook in ["post-checkout", "post-merge", "reference-transaction", "pre-auto-gc"] {
        write_exec(&hooks.join(hook), &format!("#!/bin/sh\ntouch '{}'\n", m(hook)));
    }
    let exec_path = p.sb.dir("exec-path");
    write_exec(&exec_path.join("git-upload-pack"), &format!("#!/bin/sh\ntouch '{}'\nexit 1\n", m("exec-path")));
    // A decoy repository a redirect would clone instead.
    let decoy = p.sb.root.join("decoy");
    let out = Command::new("git").arg("clone").arg("-q").arg(&p.repo).arg(&decoy).output().unwrap();
    assert!(out.status.success());
    git(
        &decoy,
        &["-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "decoy"],
    );
    let config = |name: &str| {
        let f = p.sb.root.join(name);
        std::fs::write(
            &f,
            format!(
                "[core]\n\tfsmonitor = touch '{fs}'\n\thooksPath = {hooks}\n\tsshCommand = touch '{ssh}'\n\
                 [alias]\n\tstatus = !touch '{alias}'\n\
                 [url \"{decoy}\"]\n\tinsteadOf = {repo}\n\
                 [protocol]\n\tallow = always\n",
                fs = m(&format!("fsmonitor-{name}")),
                hooks = hooks.display(),
                ssh = m("ssh-command"),
                alias = m("alias"),
                decoy = decoy.display(),
                repo = p.repo.display(),
            ),
        )
        .unwrap();
        f.display().to_string()
    };
    let (global, system) = (config("global"), config("system"));
    let home = p.sb.dir("home");
    std::fs::copy(&global, home.join(".gitconfig")).unwrap();
    let params =
        format!("'core.fsmonitor'='touch {}' 'core.hooksPath'='{}'", m("fsmonitor-parameters"), hooks.display());
    let ssh_command = format!("touch '{}'", m("git-ssh-command"));
    let exec = exec_path.display().to_string();
    let git_dir = decoy.join(".git").display().to_string();
    let env = [
        ("GIT_CONFIG_PARAMETERS", params.as_str()),
        ("GIT_CONFIG_GLOBAL", global.as_str()),
        ("GIT_CONFIG_SYSTEM", system.as_str()),
        ("GIT_SSH_COMMAND", ssh_command.as_str()),
        ("GIT_SSH", ssh_command.as_str()),
        ("GIT_EXEC_PATH", exec.as_str()),
        ("GIT_DIR", git_dir.as_str()),
        ("GIT_ALLOW_PROTOCOL", "ext:fd:file:https:ssh"),
    ];
    let d = p.deploy_from(&p.repo, &p.deny, &env);
    let planted: Vec<String> =
        std::fs::read_dir(&marks).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(planted, Vec::<String>::new(), "commands planted for git ran; deploy stderr:\n{}", d.stderr);
    assert_eq!(d.code, Some(0), "deploy: {}", d.stderr);
    let s = p.state();
    assert_eq!(op(&s, "deploy")["result"], "pass");
    let head = Command::new("git").arg("-C").arg(&p.repo).args(["rev-parse", "HEAD"]).output().unwrap();
    assert_eq!(s["source"]["commit"], String::from_utf8_lossy(&head.stdout).trim(), "the real head, not the decoy");
    // The later steps run git in the checkout too (the upgrade's checkout and clean).
    let u = p.step("ccci-upgrade", &[], &p.deny, &env);
    assert_eq!(u.code, Some(0), "upgrade: {}", u.stderr);
    let planted: Vec<String> =
        std::fs::read_dir(&marks).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(planted, Vec::<String>::new(), "commands planted for git ran during the upgrade");
    p.teardown();
}
