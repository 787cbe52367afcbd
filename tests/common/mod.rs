//! Shared by the integration tests (`tests/*.rs`), one copy of each helper: locating the ccci
//! binaries, running them with a clean environment and a time limit, per-test sandboxes, the
//! example recipe, hand-made run-states, swarm snapshots and the one answer to "what is left of
//! this stack on the swarm" ([`left_on_swarm`]). The bridge's fake forge and Drone (a TEST
//! DOUBLE) are `forge.rs` beside this file, included only by the bridge suites.
//!
//! Isolation on a swarm other runs use at the same time: every name a test process gives a run
//! (domain suffix, run ids of hand-made states, objects made outside ccci) contains its
//! [`marker`], so a test attributes swarm objects to itself by name. The swarm suites also rely on
//! being their own test binary (one process under `cargo test`): `janitor_kill`'s janitor, for
//! one, reaps every run of its process's domain suffix that its state directory does not know.
//! So a suite is never merged into another's binary.
//!
//! Each test file uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A ccci binary of this workspace, from the target directory this test was built into
/// (`<target>/<profile>/`, whose `deps/` holds the test itself). Each binary is its own crate
/// under `bins/`, and cargo defines `CARGO_BIN_EXE_*` only for a package's own binaries, so the
/// tests look there; `cargo build --workspace` puts them there (`scripts/test` does, first).
/// Fails, naming that command, when the binary is missing or older than a source file it was
/// built from (cargo's dep-info `<name>.d` lists them): a test never runs a stale binary.
pub fn bin(name: &str) -> PathBuf {
    static FRESH: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let dir = profile_dir();
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is not built: the tests run the binaries `cargo build --workspace` builds; run it first (scripts/test does)",
        p.display()
    );
    let mut fresh = FRESH.lock().unwrap_or_else(|e| e.into_inner());
    if !fresh.contains(name) {
        if let Some(source) = newer_source(&p, &dir.join(format!("{name}.d"))) {
            panic!(
                "{} is older than {}: run `cargo build --workspace` first (scripts/test does)",
                p.display(),
                source.display()
            );
        }
        fresh.insert(name.to_string());
    }
    p
}

/// `<target>/<profile>`: the test binary is `<target>/<profile>/deps/<test>-<hash>`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's own path");
    exe.parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{} is not in <target>/<profile>/deps/", exe.display()))
        .to_path_buf()
}

/// The first source file of cargo's dep-info `d` (`<binary>: <source> <source> …`, a space inside
/// a path written `\ `) modified after `binary` was; `None` when all are older or `d` is absent.
fn newer_source(binary: &Path, d: &Path) -> Option<PathBuf> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built = modified(binary)?;
    let info = std::fs::read_to_string(d).ok()?;
    let (_, deps) = info.lines().next()?.split_once(": ")?;
    let mut sources = vec![];
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => current.push(chars.next().unwrap()),
            ' ' => sources.extend((!current.is_empty()).then(|| PathBuf::from(std::mem::take(&mut current)))),
            c => current.push(c),
        }
    }
    sources.extend((!current.is_empty()).then(|| PathBuf::from(current)));
    sources.into_iter().find(|s| modified(s).is_some_and(|t| t > built))
}

/// The repository root (for `examples/`, `overlays/`, `scripts/` and `tests/support/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// 8 random hex digits, one value per test process. Every name this process gives a run (domain
/// suffixes, run ids in hand-made states) contains it, so that swarm objects can be attributed
/// to this process on a swarm other runs use at the same time.
pub fn marker() -> &'static str {
    static M: OnceLock<String> = OnceLock::new();
    M.get_or_init(|| {
        let mut b = [0u8; 4];
        std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).expect("reading /dev/urandom");
        b.iter().map(|x| format!("{x:02x}")).collect()
    })
}

/// The `CCCI_DOMAIN_SUFFIX` of this process's runs.
pub fn domain_suffix() -> String {
    format!("t{}.localhost", marker())
}

/// A ccci binary with a clean environment for a run of this process: `PATH` and `HOME` from the
/// test, the state directory given, this process's domain suffix, the abra test double, a
/// 3-second lease and a janitor without grace. Tests add what they vary.
pub fn ccci(state_dir: &Path, name: &str) -> Command {
    let mut c = Command::new(bin(name));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("CCCI_STATE_DIR", state_dir)
        .env("CCCI_DOMAIN_SUFFIX", domain_suffix())
        .env("CCCI_ABRA", repo_root().join("tests/support/abra"))
        .env("CCCI_LEASE_TTL", "3s")
        .env("CCCI_JANITOR_GRACE", "0s")
        .env("CCCI_ORPHAN_GRACE", "0s")
        .stdin(Stdio::null());
    c
}

/// A per-test directory under the system temp dir, removed on drop (also when the test fails).
pub struct Sandbox {
    pub root: PathBuf,
}

impl Sandbox {
    pub fn new(test: &str) -> Sandbox {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("ccci-it-{}-{}-{n}-{test}", marker(), std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("creating the sandbox");
        Sandbox { root }
    }

    /// `$CCCI_STATE_DIR` of the test: not created; the binaries create it when they register.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    /// An empty directory, created on first use.
    pub fn dir(&self, name: &str) -> PathBuf {
        let d = self.root.join(name);
        std::fs::create_dir_all(&d).expect("creating a sandbox dir");
        d
    }

    /// Every path under the sandbox with its size and contents' length (a cheap fingerprint).
    pub fn listing(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let p = e.path();
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                let md = std::fs::symlink_metadata(&p).unwrap();
                if md.is_dir() {
                    out.insert(format!("{rel}/"));
                    walk(&p, base, out);
                } else {
                    let content = std::fs::read(&p).unwrap_or_default();
                    let sum: u64 = content.iter().enumerate().map(|(i, b)| (i as u64 + 1) * *b as u64).sum();
                    out.insert(format!("{rel} {} {sum}", md.len()));
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root, &self.root, &mut out);
        out
    }

    /// Files and directories under `$CCCI_STATE_DIR/<sub>` (empty when it does not exist),
    /// except the registry's `.lock` file, which is not a run.
    pub fn entries(&self, sub: &str) -> Vec<String> {
        match std::fs::read_dir(self.state_dir().join(sub)) {
            Ok(rd) => {
                rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n != ".lock").collect()
            }
            Err(_) => vec![],
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What a binary did.
#[derive(Debug)]
pub struct Ran {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// How to run one binary: a cleared environment plus exactly what the test sets.
pub struct Run {
    cmd: Command,
    stdin: Option<Vec<u8>>,
    closed_stdout: bool,
    closed_stderr: bool,
    what: String,
}

impl Run {
    /// `bin args...` in `cwd`, with only PATH, HOME (= `home`) and the docker client settings
    /// of the test's environment.
    pub fn new(bin_name: &str, args: &[&str], cwd: &Path, home: &Path) -> Run {
        let mut cmd = Command::new(bin(bin_name));
        cmd.args(args).current_dir(cwd).env_clear();
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()));
        cmd.env("HOME", home);
        for k in ["DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        Run { cmd, stdin: None, closed_stdout: false, closed_stderr: false, what: format!("{bin_name} {args:?}") }
    }

    pub fn env(mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.env(k, v);
        self
    }

    /// Feeds `bytes` on stdin (stdin is `/dev/null` otherwise).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Run {
        self.stdin = Some(bytes.into());
        self
    }

    /// Gives it a stdout that is a pipe no one reads any more (as in `bin | true`): every write
    /// fails with a broken pipe. Its `Ran::stdout` is then empty.
    pub fn closed_stdout(mut self) -> Run {
        self.closed_stdout = true;
        self
    }

    /// The same for stderr (as in `{ bin 2>&1 >/dev/null; } | true`).
    pub fn closed_stderr(mut self) -> Run {
        self.closed_stderr = true;
        self
    }

    /// Runs it, killing it after `limit`.
    pub fn run(mut self, limit: Duration) -> Ran {
        let closed = || {
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            Stdio::from(writer)
        };
        self.cmd.stdout(if self.closed_stdout { closed() } else { Stdio::piped() });
        self.cmd.stderr(if self.closed_stderr { closed() } else { Stdio::piped() });
        self.cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.what));
        if let Some(bytes) = self.stdin.take() {
            let mut w = child.stdin.take().unwrap();
            // The binary may exit before reading it all; a broken pipe is fine.
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut out) = out {
                let _ = out.read_to_string(&mut s);
            }
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut err) = err {
                let _ = err.read_to_string(&mut s);
            }
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("waiting for the binary") {
                break st;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not finish within {limit:?}", self.what);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran { code: status.code(), stdout: out_t.join().unwrap(), stderr: err_t.join().unwrap() }
    }
}

// ---------------------------------------------------------------------------------------------
// Recipes, git and run-states
// ---------------------------------------------------------------------------------------------

/// `git -C dir args…` with a fixed identity and default branch (the test's environment may have
/// neither); fails the test unless it succeeds. Returns its stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=ccci test", "-c", "user.email=test@ccci.invalid", "-c", "init.defaultBranch=main"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running git");
    assert!(out.status.success(), "git {args:?} in {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The example recipe's repository at `dest`, as `examples/hello/make-repo dest [variant]` makes
/// it (two releases and a pull-request head; `variant` names a broken or changed head).
pub fn make_repo(dest: &Path, variant: Option<&str>) {
    let out = Command::new(repo_root().join("examples/hello/make-repo"))
        .arg(dest)
        .args(variant)
        .stdin(Stdio::null())
        .output()
        .expect("running examples/hello/make-repo");
    assert!(out.status.success(), "make-repo {variant:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Copies the tree `from` into `to` (created), following nothing but directories and files.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `path` with `body`, executable.
pub fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `../shared/recipe-corpus` (real Co-op Cloud recipe files, outside the repository), or `None`
/// after saying so on the test process's real stderr (the harness captures only `eprintln!`): a
/// clone without it skips these checks, and a skipped check must never look like a passed one.
pub fn corpus() -> Option<PathBuf> {
    let root = repo_root().join("../shared/recipe-corpus");
    if root.is_dir() {
        return Some(root);
    }
    let test = std::thread::current().name().unwrap_or("a recipe corpus test").to_string();
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: the recipe corpus is not at {} (a clone without ../shared); nothing was checked",
        root.display()
    );
    None
}

/// The run-state in `path`.
pub fn read_state(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The last op named `name` in a run-state.
pub fn op<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["ops"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|o| o["op"] == name)
        .unwrap_or_else(|| panic!("no op {name} in {state:#}"))
}

/// The assertion named `name` of an op.
pub fn assertion<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["assertions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .unwrap_or_else(|| panic!("no assertion {name} in {op:#}"))
}

/// A well-formed run-state of run `id` of this process (its domain suffix) that deployed
/// nothing, from `source_repo`, with its workspace where the registry of `state_dir` puts it.
pub fn run_state(id: &str, state_dir: &Path, source_repo: &Path) -> Value {
    let domain = format!("{id}.{}", domain_suffix());
    json!({
        "schema": "ccci.run/v1",
        "run_id": id,
        "recipe": "hello",
        "driver": "stack",
        "source": {"repo": source_repo, "ref": "main", "commit": null, "nar_hash": null},
        "domain": domain,
        "stack": domain.replace('.', "_"),
        "workspace": state_dir.join("work").join(id),
        "env_file": null,
        "created_at": "2026-01-01T00:00:00Z",
        "deploys": 0,
        "deployed": null,
        "ops": [],
        "versions": {"ccci": "0.1.0", "abra": null}
    })
}

/// Registers `state` by hand in the registry of `state_dir`, with a lease that expires at
/// `expires_at` (Unix seconds), as ccci-deploy would have.
pub fn register(state_dir: &Path, state: &Value, expires_at: u64) {
    let runs = state_dir.join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    std::fs::create_dir_all(state_dir.join("work")).unwrap();
    let id = state["run_id"].as_str().unwrap();
    std::fs::write(runs.join(format!("{id}.json")), registry_entry(state, expires_at).to_string()).unwrap();
}

/// The registry's entry for `state` (`$CCCI_STATE_DIR/runs/<run id>.json`), its lease ending at
/// `expires_at` (Unix seconds).
pub fn registry_entry(state: &Value, expires_at: u64) -> Value {
    json!({
        "schema": "ccci.registry/v1",
        "lease": {"expires_at": expires_at, "renewed_at": 1, "holder": "test"},
        "run": state,
    })
}

/// A mount (tmpfs or bind) undone when dropped. Needs root.
pub struct Mount(pub PathBuf);

impl Mount {
    /// A tmpfs of `size` (`"1m"`) at `at`, created.
    pub fn tmpfs(at: &Path, size: &str) -> Mount {
        std::fs::create_dir_all(at).unwrap();
        succeeds(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at));
        Mount(at.to_path_buf())
    }

    /// `at` bound onto itself read-only: nothing under it can be written, by root either.
    pub fn read_only(at: &Path) -> Mount {
        succeeds(Command::new("mount").arg("--bind").arg(at).arg(at));
        let m = Mount(at.to_path_buf());
        succeeds(Command::new("mount").args(["-o", "remount,bind,ro"]).arg(at));
        m
    }

    /// The tmpfs remounted read-only, with what was written into it so far.
    pub fn remount_read_only(&self) {
        succeeds(Command::new("mount").args(["-o", "remount,ro"]).arg(&self.0));
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Runs `c`, failing the test unless it succeeds.
pub fn succeeds(c: &mut Command) -> std::process::Output {
    let out = c.output().unwrap_or_else(|e| panic!("running {c:?}: {e}"));
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

// ---------------------------------------------------------------------------------------------
// The swarm
// ---------------------------------------------------------------------------------------------

/// The lines `docker args…` prints. Panics (failing the test) when docker does not answer: these
/// tests need the swarm and must not pass without it.
pub fn docker_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("docker is required for these tests (docker {args:?}: {e})"));
    assert!(
        out.status.success(),
        "docker {args:?} failed (these tests need an active swarm): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(String::from).collect()
}

/// The object kinds a stack has on the swarm, besides its containers.
const KINDS: [&str; 5] = ["service", "secret", "config", "network", "volume"];

/// What is left of `stack` on this node, as `kind name` (empty: nothing). Every service, secret,
/// config, network and volume, and every container (running or not), named `<stack>_…` or
/// labelled `com.docker.stack.namespace=<stack>`: the listings `scripts/leftovers` makes
/// (`docker <kind> ls`, `docker ps -a`, by name) narrowed to one stack, plus the stack label
/// (a probe container, a volume docker made for a task). Written apart from ccci's own check
/// (teardown's `leftovers`) on purpose: the oracle must not share the code it judges.
pub fn left_on_swarm(stack: &str) -> Vec<String> {
    let prefix = format!("{stack}_");
    let label = format!("label=com.docker.stack.namespace={stack}");
    let mut left = BTreeSet::new();
    for kind in KINDS {
        let named = docker_lines(&[kind, "ls", "--format", "{{.Name}}"]).into_iter().filter(|n| n.starts_with(&prefix));
        let labelled = docker_lines(&[kind, "ls", "--filter", &label, "--format", "{{.Name}}"]);
        left.extend(named.chain(labelled).map(|n| format!("{kind} {n}")));
    }
    let named = docker_lines(&["ps", "-a", "--format", "{{.Names}}"]).into_iter().filter(|n| n.starts_with(&prefix));
    let labelled = docker_lines(&["ps", "-a", "--filter", &label, "--format", "{{.Names}}"]);
    left.extend(named.chain(labelled).map(|n| format!("container {n}")));
    left.into_iter().collect()
}

/// The swarm objects on this node (services, secrets, configs, volumes, networks), as
/// `kind name`: a snapshot to compare with after a test.
pub fn swarm_objects() -> BTreeSet<String> {
    KINDS
        .iter()
        .flat_map(|kind| {
            docker_lines(&[kind, "ls", "--format", "{{.Name}}"]).into_iter().map(move |n| format!("{kind} {n}"))
        })
        .collect()
}

/// Whether `name` carries another ccci run's naming (`<1-4 chars>-<6 hex>_...`): objects of
/// runs that other processes drive on the same swarm meanwhile.
fn foreign_run_object(name: &str) -> bool {
    let Some((id, _)) = name.split_once('_') else { return false };
    let Some((prefix, hex)) = id.rsplit_once('-') else { return false };
    (1..=4).contains(&prefix.len())
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && hex.len() == 6
        && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `name` is an object another test process made outside ccci's naming: tests name
/// those `t<marker>_…` (a network of `serving`) or `smok-…` (`janitor_kill`'s bystander stack,
/// the abra double's smoke test).
fn foreign_test_object(name: &str) -> bool {
    let t_marker = name.strip_prefix('t').and_then(|r| r.split_once('_')).is_some_and(|(hex, _)| {
        hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    t_marker || name.starts_with("smok-")
}

/// The objects that appeared since `before` and are this process's doing: everything new except
/// what other ccci runs and other test processes made (names without this process's
/// [`marker`]).
pub fn new_objects_of_ours(before: &BTreeSet<String>) -> Vec<String> {
    swarm_objects()
        .difference(before)
        .filter(|o| {
            let name = o.split_once(' ').map_or(o.as_str(), |(_, n)| n);
            name.contains(marker()) || !(foreign_run_object(name) || foreign_test_object(name))
        })
        .cloned()
        .collect()
}
