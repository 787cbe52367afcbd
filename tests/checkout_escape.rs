//! End-to-end, on this machine's real swarm: a pull request's tree cannot make ccci read outside
//! the recipe checkout. Each route by which something read from the tree reaches an output is
//! tried with a symlink committed in the head, aimed at a directory planted on the host outside
//! the checkout: a file there holds a content marker, another is named with a name marker.
//! Neither may appear in any output — the run-state on stdout, stderr, the registry entry, the
//! text, JUnit and Markdown reports — and the op reading the link fails, naming the file.
//!
//! The recipe is the example (`examples/hello/make-repo`), not in the allowlist.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use common::{Ran, Run, Sandbox, domain_suffix, git, left_on_swarm, make_repo, marker, op};

const LIMIT: Duration = Duration::from_secs(240);

fn content_marker() -> String {
    format!("hostcontent{}", marker())
}

fn name_marker() -> String {
    format!("hostname{}", marker())
}

/// One run of the example recipe whose head commits `links` (path in the tree, target).
struct Escape {
    sb: Sandbox,
    repo: PathBuf,
    /// The planted host directory, outside the checkout.
    host: PathBuf,
    state_file: PathBuf,
    allowlist: PathBuf,
    /// Everything any binary printed, and every report and registry entry seen.
    seen: std::cell::RefCell<String>,
}

impl Escape {
    fn new(name: &str, links: &[(&str, &str)], edit: impl FnOnce(&Path)) -> Escape {
        let sb = Sandbox::new(name);
        let host = sb.dir("host");
        // Files holding the marker in the shapes each reader takes in: an env file (.env.sample,
        // abra.sh), a compose file, directories to list.
        let c = content_marker();
        std::fs::write(host.join("values"), format!("export HOST_VALUE={c}\nCOMPOSE_FILE={c}.yml\n")).unwrap();
        std::fs::write(
            host.join("compose.yml"),
            format!("services:\n  app:\n    image: {c}:1\n    deploy:\n      labels: [\"leak={c}\"]\n"),
        )
        .unwrap();
        std::fs::create_dir_all(host.join("dir/custom")).unwrap();
        for d in ["dir", "dir/custom"] {
            std::fs::write(host.join(d).join(name_marker()), content_marker()).unwrap();
        }
        let repo = sb.root.join("hello");
        make_repo(&repo, Some("ok"));
        edit(&repo);
        for (path, target) in links {
            let p = repo.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_dir_all(&p);
            std::os::unix::fs::symlink(host.join(target), &p).unwrap();
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "head: links out of the tree"]);
        let allowlist = sb.root.join("allowlist");
        std::fs::write(&allowlist, "# nothing approved\n").unwrap();
        let state_file = sb.root.join("run.json");
        Escape { repo, host, state_file, allowlist, sb, seen: Default::default() }
    }

    fn run(&self, bin: &str, args: &[&str]) -> Ran {
        let ran = Run::new(bin, args, &self.sb.dir("cwd"), &self.sb.dir("home"))
            .env("CCCI_STATE_DIR", self.sb.state_dir())
            .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
            .env("CCCI_ALLOWLIST", &self.allowlist)
            .env("CCCI_OVERLAYS_DIR", self.sb.dir("overlays"))
            .env("CCCI_DEPLOY_TIMEOUT", "90s")
            .env("CCCI_SKIP_GENERIC", "1")
            .run(LIMIT);
        let mut seen = self.seen.borrow_mut();
        seen.push_str(&ran.stdout);
        seen.push_str(&ran.stderr);
        for e in self.sb.entries("runs") {
            seen.push_str(&std::fs::read_to_string(self.sb.state_dir().join("runs").join(e)).unwrap_or_default());
        }
        ran
    }

    /// `ccci-deploy` of the head (no upgrade: the head is what is deployed), state on stdout.
    fn deploy(&self) -> (Ran, Value) {
        let repo = self.repo.display().to_string();
        let ran = self.run(
            "ccci-deploy",
            &["--driver", "stack", "--recipe-name", "hello", "--ref", "main", "--recipe", &repo, "--no-upgrade"],
        );
        std::fs::write(&self.state_file, &ran.stdout).unwrap();
        let state = serde_json::from_str(&ran.stdout).unwrap_or_else(|e| panic!("{e}: {}\n{}", ran.stdout, ran.stderr));
        (ran, state)
    }

    fn step(&self, bin: &str, args: &[&str]) -> (Ran, Value) {
        let state = self.state_file.display().to_string();
        let mut all = args.to_vec();
        all.extend(["--state", &state]);
        let ran = self.run(bin, &all);
        let text = std::fs::read_to_string(&self.state_file).unwrap();
        self.seen.borrow_mut().push_str(&text);
        (ran, serde_json::from_str(&text).unwrap())
    }

    /// Every report format, then teardown; then no marker in anything seen, nothing left.
    fn finish(&self) {
        for format in ["text", "junit", "markdown"] {
            self.step("ccci-report", &["--format", format]);
        }
        let (t, s) = self.step("ccci-teardown", &[]);
        assert_eq!(t.code, Some(0), "teardown: {}", t.stderr);
        assert_eq!(left_on_swarm(s["stack"].as_str().unwrap()), Vec::<String>::new(), "left on the swarm");
        let seen = self.seen.borrow();
        assert!(!seen.contains(&content_marker()), "the host file's content reached an output:\n{seen}");
        assert!(!seen.contains(&name_marker()), "a host file's name reached an output:\n{seen}");
        assert!(self.host.join("values").exists(), "the planted file is untouched");
    }
}

impl Drop for Escape {
    fn drop(&mut self) {
        if self.state_file.exists() && !self.sb.entries("runs").is_empty() {
            let _ = self.step("ccci-teardown", &[]);
        }
    }
}

/// The deploy reads `file` first and refuses it: `fail`, exit 1, naming it and where it points,
/// nothing on the swarm.
fn deploy_refuses(e: &Escape, file: &str, target: &str) {
    let (ran, s) = e.deploy();
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail", "{d}");
    let detail = d["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("{file} is a symlink to {}", e.host.join(target).display())), "{detail}");
    assert!(detail.contains("outside the recipe checkout"), "{detail}");
    assert_eq!(s["deploys"], 0, "nothing was deployed");
    e.finish();
}

#[test]
fn an_env_sample_linked_to_a_host_file_fails_the_deploy_and_no_host_value_reaches_any_output() {
    let e = Escape::new("esc-env-sample", &[(".env.sample", "values")], |_| {});
    deploy_refuses(&e, ".env.sample", "values");
}

#[test]
fn a_compose_file_linked_to_a_host_file_fails_the_deploy_and_its_content_reaches_no_output() {
    let e = Escape::new("esc-compose", &[("compose.yml", "compose.yml")], |_| {});
    deploy_refuses(&e, "compose.yml", "compose.yml");
}

#[test]
fn an_abra_sh_linked_to_a_host_file_fails_the_deploy_and_its_exports_reach_no_output() {
    // The head's compose would put what abra.sh exports into a label the run-state records.
    let e = Escape::new("esc-abra-sh", &[("abra.sh", "values")], |repo| {
        let compose = std::fs::read_to_string(repo.join("compose.yml")).unwrap();
        let compose = compose.replacen(
            "        - \"backupbot.backup=true\"",
            "        - \"backupbot.backup=true\"\n        - \"leak=${HOST_VALUE}\"",
            1,
        );
        std::fs::write(repo.join("compose.yml"), compose).unwrap();
    });
    deploy_refuses(&e, "abra.sh", "values");
}

#[test]
fn an_install_steps_hook_linked_to_a_host_file_fails_the_deploy() {
    let e = Escape::new("esc-hook", &[("tests/install_steps.sh", "values")], |_| {});
    let (ran, s) = e.deploy();
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail", "{d}");
    assert!(d["detail"].as_str().unwrap().contains("tests/install_steps.sh is a symlink to"), "{d}");
    assert_eq!(s["deploys"], 0, "refused before the deploy");
    e.finish();
}

/// `ccci-assert custom` lists the recipe's `tests/custom/`: refused, `fail`, exit 1, and not one
/// name of the host directory shown.
fn custom_listing_refused(e: &Escape, link: &str) {
    let (ran, s) = e.deploy();
    assert_eq!(ran.code, Some(0), "the deploy itself is fine: {}\n{s:#}", ran.stderr);
    let (ran, s) = e.step("ccci-assert", &["custom"]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let custom = op(&s, "custom");
    assert_eq!(custom["result"], "fail", "{custom:#}");
    let a = custom["assertions"].as_array().unwrap().iter().find(|a| a["name"] == "tests/custom").expect("{custom:#}");
    assert_eq!(a["result"], "fail", "{a}");
    assert!(a["detail"].as_str().unwrap().contains(&format!("{link} is a symlink to")), "{a}");
    e.finish();
}

#[test]
fn a_tests_op_directory_linked_to_a_host_directory_fails_the_checks_and_lists_none_of_its_names() {
    let e = Escape::new("esc-tests-custom", &[("tests/custom", "dir/custom")], |_| {});
    custom_listing_refused(&e, "tests/custom");
}

/// `tests` itself linked out: the deploy looks for the install-steps hook in it first and fails;
/// the checks that come later are skipped, and no name of the host directory is listed anywhere.
#[test]
fn a_tests_directory_linked_to_a_host_directory_fails_the_deploy_and_lists_none_of_its_names() {
    let e = Escape::new("esc-tests", &[("tests", "dir")], |_| {});
    let (ran, s) = e.deploy();
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let d = op(&s, "deploy");
    assert_eq!(d["result"], "fail", "{d}");
    assert!(d["detail"].as_str().unwrap().contains("tests is a symlink to"), "{d}");
    let (ran, s) = e.step("ccci-assert", &["custom"]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert_eq!(op(&s, "custom")["result"], "skip");
    e.finish();
}
