//! Real recipe shapes end to end: each recipe of `../shared/recipe-corpus` (except the ones listed
//! in [`EXCLUDED`], with the reason) becomes a recipe repository — a release tag, then a head
//! commit — and goes through the whole pipe with the stack driver on this machine's swarm:
//! deploy → assert install → upgrade → assert upgrade → teardown, the recipes in parallel.
//!
//! No registry exists here, so every image a recipe names is a **stand-in**: a static busybox
//! tagged locally under the recipe's exact image name, labelled `ccci.standin=recipe-corpus`. It
//! serves HTTP on every port the recipes' traefik labels and healthchecks name, and carries the
//! commands their healthchecks and entrypoints call (`curl`, `pg_isready`, `mc`, `node`, `minio`),
//! each doing the least that satisfies the caller. One run of this test at a time holds a lock
//! on the machine (a file in the temp dir) while it makes, uses and removes the stand-in tags
//! (stand-ins an interrupted run left are made afresh); a tag that already exists and is not a
//! stand-in is never shadowed (the test fails instead).
//!
//! Files the corpus does not carry but the recipe has (bonfire's `entrypoint.sh.tmpl`,
//! `pg_backup.sh` and the `abra.sh` that versions its configs) are written as stand-ins too: the
//! entrypoint starts the stand-in server, the backup hook does nothing, `abra.sh` exports the
//! config versions.
//!
//! Needs the swarm, the external `proxy` network (`scripts/setup`) and `/bin/busybox`. Without
//! the corpus (a clone without `../shared`), each test says `SKIPPED` on stderr and passes.

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use common::{Sandbox, assertion, copy_dir, corpus, git, left_on_swarm, op, read_state, write_exec};

/// Corpus recipes the stand-in cannot run, and why.
const EXCLUDED: &[(&str, &str)] = &[(
    "traefik",
    "publishes ports 80 and 443 in ingress mode (swarm-wide: one holder per swarm, which the machine's own proxy or a parallel run may be), mounts the docker socket, and its three config templates are not in the corpus",
)];

/// One corpus recipe as a test repository: which folder is the release, which the head.
struct Case {
    recipe: &'static str,
    /// Corpus folder committed and tagged first.
    base_dir: &'static str,
    tag: &'static str,
    /// Corpus folder of the head commit; the same as the base adds only a README (a no-op upgrade).
    head_dir: &'static str,
    /// Files a compose file names that the corpus lacks: (path, content).
    stubs: &'static [(&'static str, &'static str)],
    /// Generated secrets checked in the running app before teardown: (service, mounted path,
    /// length, hex only) — what the `.env.sample` hints ask.
    secrets: &'static [(&'static str, &'static str, usize, bool)],
}

const CASES: &[Case] = &[
    Case { recipe: "go-ssb-room", base_dir: "head", tag: "1.0.0+2.0.3", head_dir: "head", stubs: &[], secrets: &[] },
    Case {
        recipe: "foodsharing-cms",
        base_dir: "v1.0.3",
        tag: "v1.0.3",
        head_dir: "v1.0.3",
        stubs: &[],
        // No hint: ccci's default.
        secrets: &[("app", "/run/secrets/cms_token", 32, false)],
    },
    Case {
        recipe: "bonfire",
        base_dir: "2.0.0+1.0.5-social-amd64",
        tag: "2.0.0+1.0.5-social-amd64",
        head_dir: "head",
        stubs: &[
            (
                "entrypoint.sh.tmpl",
                "#!/bin/sh\n# stand-in for the recipe's entrypoint: start the stand-in server\nexec /serve\n",
            ),
            ("pg_backup.sh", "#!/bin/sh\n# stand-in for the recipe's backup hook\nexit 0\n"),
            // The recipe versions its configs here; without it the config name ends in `_`.
            ("abra.sh", "export APP_ENTRYPOINT_VERSION=v1\nexport PG_BACKUP_VERSION=v1\n"),
        ],
        // SECRET_SECRET_KEY_BASE_VERSION=v1 # length=128
        secrets: &[("app", "/run/secrets/secret_key_base", 128, false)],
    },
    Case {
        recipe: "llamenos",
        base_dir: "head",
        tag: "1.0.0+latest",
        head_dir: "head",
        stubs: &[],
        // `# length=64 charset=hex` and `# length=20 charset=alnum`
        secrets: &[("app", "/run/secrets/hmac-secret", 64, true), ("minio", "/run/secrets/minio_access", 20, false)],
    },
];

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).stdin(Stdio::null()).output().expect("docker is needed")
}

/// Replaces the work tree (everything but `.git`) with the corpus folder plus the stubs.
fn write_tree(repo: &Path, from: &Path, stubs: &[(&str, &str)]) {
    for e in std::fs::read_dir(repo).unwrap().flatten() {
        if e.file_name() != ".git" {
            let p = e.path();
            if p.is_dir() { std::fs::remove_dir_all(p).unwrap() } else { std::fs::remove_file(p).unwrap() }
        }
    }
    copy_dir(from, repo);
    for (path, text) in stubs {
        std::fs::write(repo.join(path), text).unwrap();
    }
}

/// The case's repository: the base folder committed and tagged (annotated), then the head.
fn make_repo(root: &Path, case: &Case, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    git(dest, &["init", "-q", "-b", "main"]);
    git(dest, &["config", "user.email", "ccci@example.invalid"]);
    git(dest, &["config", "user.name", "ccci corpus"]);
    write_tree(dest, &root.join(case.recipe).join(case.base_dir), case.stubs);
    git(dest, &["add", "-A"]);
    git(dest, &["commit", "-q", "-m", &format!("release {}", case.tag)]);
    git(dest, &["tag", "-a", "-m", &format!("release {}", case.tag), case.tag]);
    write_tree(dest, &root.join(case.recipe).join(case.head_dir), case.stubs);
    std::fs::write(dest.join("README.md"), "pull request head\n").unwrap();
    git(dest, &["add", "-A"]);
    git(dest, &["commit", "-q", "-m", "pull request head"]);
}

/// Every `image:` of the recipes' compose files at the case's folders, substituted as ccci reads
/// them, and every port their traefik labels or healthchecks name.
fn images_and_ports(root: &Path) -> (BTreeSet<String>, BTreeSet<u16>) {
    let mut images = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for case in CASES {
        for folder in [case.base_dir, case.head_dir] {
            let dir = root.join(case.recipe).join(folder);
            let sample = ccci::recipe::env_file::EnvFile::read(&dir.join(".env.sample")).unwrap();
            let env = |k: &str| match k {
                "STACK_NAME" => Some("s".to_string()),
                _ => sample.get(k).map(str::to_owned),
            };
            let c = ccci::recipe::compose::Compose::load(&dir, &ccci::recipe::env_file::compose_files(&sample), &env)
                .unwrap();
            for s in c.services.values() {
                images.extend(s.image.clone());
                for (k, v) in &s.deploy_labels {
                    if k.ends_with(".loadbalancer.server.port") {
                        ports.extend(v.parse::<u16>().ok());
                    }
                }
                for word in s.healthcheck.iter().flat_map(|h| h.test.iter().flatten()) {
                    if let Some((_, rest)) = word.split_once("localhost:") {
                        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                        ports.extend(digits.parse::<u16>().ok());
                    }
                }
            }
        }
    }
    (images, ports)
}

const STANDIN_LABEL: &str = "ccci.standin=recipe-corpus";

/// Builds the stand-in once and tags it under each of `images`; returns the tags it created.
fn tag_standins(images: &BTreeSet<String>, ports: &BTreeSet<u16>, sb: &Sandbox) -> Vec<String> {
    let root = sb.dir("standin-root");
    for d in ["bin", "www/api", "tmp", "data"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox (busybox-static) is needed");
    let applets = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for a in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| !a.is_empty() && *a != "busybox") {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(a)).unwrap();
    }
    let script = |name: &str, text: &str| write_exec(&root.join(name), text);
    let ports_line: Vec<String> = ports.iter().map(u16::to_string).collect();
    script(
        "serve",
        &format!(
            "#!/bin/sh\n# stand-in server: HTTP on every port the corpus names, until SIGTERM\npids=\nfor p in {}; do httpd -f -p \"$p\" -h /www & pids=\"$pids $!\"; done\ntrap 'kill $pids 2>/dev/null; exit 0' TERM INT\nwait\n",
            ports_line.join(" ")
        ),
    );
    // What healthchecks and entrypoints call.
    script(
        "bin/curl",
        "#!/bin/sh\n# stand-in curl: GET the URL argument, fail on an error status (curl -f)\nfor a; do case $a in http*) url=$a;; esac; done\nexec wget -q -O /dev/null \"$url\"\n",
    );
    for ok in ["pg_isready", "mc"] {
        script(&format!("bin/{ok}"), "#!/bin/sh\n# stand-in: the service is ready\nexit 0\n");
    }
    for server in ["node", "minio", "postgres", "nginx"] {
        script(&format!("bin/{server}"), "#!/bin/sh\n# stand-in: start the stand-in server\nexec /serve\n");
    }
    std::fs::write(root.join("www/index.html"), "recipe stand-in\n").unwrap();
    std::fs::write(root.join("www/api/health"), "ok\n").unwrap();

    let mut created = vec![];
    let mut first: Option<String> = None;
    for image in images {
        let inspect = docker(&["image", "inspect", "--format", "{{index .Config.Labels \"ccci.standin\"}}", image]);
        if inspect.status.success() {
            let label = String::from_utf8_lossy(&inspect.stdout).trim().to_string();
            assert_eq!(
                label, "recipe-corpus",
                "{image} exists on this node and is not a ccci stand-in: refusing to shadow it"
            );
            // A stand-in an interrupted run left behind: made afresh (under the lock, nobody uses it).
            let _ = docker(&["image", "rm", "--force", image]);
        }
        match &first {
            None => {
                let mut tar =
                    Command::new("tar").arg("-C").arg(&root).args(["-c", "."]).stdout(Stdio::piped()).spawn().unwrap();
                let out = Command::new("docker")
                    .args([
                        "import",
                        "-c",
                        "ENTRYPOINT [\"/serve\"]",
                        "-c",
                        &format!("LABEL {STANDIN_LABEL}"),
                        "-",
                        image,
                    ])
                    .stdin(tar.stdout.take().unwrap())
                    .output()
                    .unwrap();
                assert!(tar.wait().unwrap().success(), "tar of the stand-in's root failed");
                assert!(out.status.success(), "docker import {image}: {}", String::from_utf8_lossy(&out.stderr));
                first = Some(image.clone());
            }
            Some(src) => {
                let out = docker(&["tag", src, image]);
                assert!(out.status.success(), "docker tag {image}: {}", String::from_utf8_lossy(&out.stderr));
            }
        }
        created.push(image.clone());
    }
    created
}

/// Removes the stand-in tags, even when the test panics — except a tag some service on the swarm
/// still names (a run of an older build of this test, which took no lock, using it).
struct Standins(Vec<String>);

impl Drop for Standins {
    fn drop(&mut self) {
        let ls = docker(&["service", "ls", "--format", "{{.Image}}"]);
        let in_use: BTreeSet<String> =
            String::from_utf8_lossy(&ls.stdout).lines().map(|i| i.split('@').next().unwrap_or(i).to_string()).collect();
        // Dead task containers may still reference the image: untag by force (the image stays
        // until they are gone), then drop the stand-ins that are left without a tag.
        for tag in self.0.iter().filter(|t| !in_use.contains(*t)) {
            let _ = docker(&["image", "rm", "--force", tag]);
        }
        let _ = docker(&["image", "prune", "--force", "--filter", &format!("label={STANDIN_LABEL}")]);
    }
}

/// The pipe on one case; returns the final state, the exit codes before teardown and teardown's.
fn pipe(case: &Case, repo: &Path, state_dir: &Path) -> (Value, Vec<i32>, i32) {
    let state_file = state_dir.with_extension("json");
    let step = |name: &str, args: &[&str]| {
        let mut c = common::ccci(state_dir, name);
        c.env("CCCI_SERVING_TIMEOUT", "8s").env("CCCI_SETTLE_WINDOW", "2s").env("CCCI_DEPLOY_TIMEOUT", "150s");
        let out = c.args(args).arg("--state").arg(&state_file).output().unwrap();
        eprintln!("[{}] {name}: exit {:?}\n{}", case.recipe, out.status.code(), String::from_utf8_lossy(&out.stderr));
        out.status.code().unwrap_or(-1)
    };
    let deploy = step(
        "ccci-deploy",
        &["--driver", "stack", "--recipe-name", case.recipe, "--ref", "main", "--recipe", repo.to_str().unwrap()],
    );
    let mut codes = vec![deploy];
    for (name, args) in
        [("ccci-assert", &["install"][..]), ("ccci-upgrade", &[][..]), ("ccci-assert", &["upgrade"][..])]
    {
        codes.push(step(name, args));
    }
    let state: Value = read_state(&state_file);
    let mut secrets = vec![];
    for (svc, path, _, _) in case.secrets {
        secrets.push(mounted_secret(state["stack"].as_str().unwrap(), svc, path));
    }
    let teardown = step("ccci-teardown", &[]);
    let state: Value = read_state(&state_file);
    for ((_, path, len, hex), value) in case.secrets.iter().zip(secrets) {
        assert_eq!(value.len(), *len, "{}: {path}: length", case.recipe);
        if *hex {
            assert!(
                value.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{}: {path}: hex",
                case.recipe
            );
        } else {
            assert!(value.bytes().all(|c| c.is_ascii_alphanumeric()), "{}: {path}: alphanumeric", case.recipe);
        }
    }
    (state, codes, teardown)
}

/// The value of a secret as the running service sees it (never printed by the test).
fn mounted_secret(stack: &str, service: &str, path: &str) -> String {
    let ps = docker(&["ps", "-q", "--filter", &format!("label=com.docker.swarm.service.name={stack}_{service}")]);
    let id = String::from_utf8_lossy(&ps.stdout).lines().next().unwrap_or_default().to_string();
    assert!(!id.is_empty(), "no running container of {stack}_{service}");
    let out = docker(&["exec", &id, "cat", path]);
    assert!(out.status.success(), "reading {path} in {stack}_{service} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a correct run of a corpus recipe reports, whatever the recipe.
fn assert_verdict(case: &Case, s: &Value, codes: &[i32], teardown: i32) {
    let name = case.recipe;
    assert_eq!(codes, [0, 0, 0, 0], "{name}: deploy, install, upgrade, assert upgrade: {s:#}");
    assert_eq!(teardown, 0, "{name}: teardown");
    assert_eq!(s["deploys"], 1, "{name}");
    assert_eq!(s["upgrade"]["base"]["tag"], case.tag, "{name}: the release tag is the base");
    assert_eq!(op(s, "deploy")["result"], "pass", "{name}");
    for svc in s["deployed"]["services"].as_object().unwrap().values() {
        assert_eq!(svc["running_replicas"], svc["desired_replicas"], "{name}: converged: {svc}");
    }
    let install = op(s, "install");
    assert_eq!(install["result"], "pass", "{name}: {install}");
    let u = op(s, "upgrade");
    assert_eq!(u["result"], "pass", "{name}: {u}");
    assert_eq!(assertion(u, "moved to the head")["result"], "pass", "{name}: {u}");
    assert_eq!(op(s, "assert upgrade")["result"], "pass", "{name}");
    assert_eq!(op(s, "teardown")["result"], "pass", "{name}");
    let stack = s["stack"].as_str().unwrap();
    assert_eq!(left_on_swarm(stack), Vec::<String>::new(), "{name}: left on the swarm");
}

#[test]
fn real_recipes_install_upgrade_and_tear_down_with_stand_in_images() {
    let Some(root) = corpus() else { return };
    for (recipe, why) in EXCLUDED {
        let _ = writeln!(std::io::stderr(), "EXCLUDED corpus recipe {recipe}: {why}");
    }
    assert!(
        docker(&["network", "inspect", "proxy"]).status.success(),
        "the external network `proxy` every Co-op Cloud server has is missing: run scripts/setup"
    );
    // One run of this test at a time on this machine: the stand-ins carry the recipes' own image
    // names, so concurrent runs (several test processes) would tag and untag the same names.
    let lock = std::fs::File::create(std::env::temp_dir().join("ccci-corpus-standins.lock")).unwrap();
    lock.lock().expect("locking the stand-in images");
    let sb = Sandbox::new("corpus");
    let (images, ports) = images_and_ports(&root);
    let _standins = Standins(tag_standins(&images, &ports, &sb));

    let results: Vec<(usize, Value, Vec<i32>, i32)> = std::thread::scope(|scope| {
        let handles: Vec<_> = CASES
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let repo = sb.root.join(format!("repo-{}", case.recipe));
                let state_dir = sb.root.join(format!("state-{}", case.recipe));
                make_repo(&root, case, &repo);
                scope.spawn(move || {
                    let (s, codes, td) = pipe(case, &repo, &state_dir);
                    (i, s, codes, td)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a recipe's pipe panicked")).collect()
    });
    for (i, s, codes, td) in &results {
        assert_verdict(&CASES[*i], s, codes, *td);
    }
    let by_recipe = |r: &str| &results.iter().find(|(i, ..)| CASES[*i].recipe == r).unwrap().1;

    // bonfire's head is a real upgrade: new image tag and version label.
    let changed = assertion(op(by_recipe("bonfire"), "upgrade"), "changed since the base");
    let detail = changed["detail"].as_str().unwrap();
    assert_eq!(changed["result"], "pass", "{changed}");
    assert!(detail.contains("1.0.5-social-amd64 → bonfirenetworks/bonfire:1.0.6-social-amd64"), "{detail}");
    // The others' heads add only a README: an honest no-op.
    for r in ["go-ssb-room", "foodsharing-cms", "llamenos"] {
        let changed = assertion(op(by_recipe(r), "upgrade"), "changed since the base");
        assert_eq!(changed["result"], "skip", "{r}: {changed}");
    }
    // Each run's teardown leaving nothing of its stack is checked in `assert_verdict`; objects of
    // other processes on the shared swarm are not this test's to judge.
}
