//! Shared by the integration tests of the ccci binaries: locating the binaries, running them
//! with a clean environment and a time limit, per-test sandboxes, and swarm snapshots.
//!
//! Each test file uses a subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A ccci binary built by this workspace. Cargo builds `ccci-deploy` for this package's tests;
/// the others are its siblings when the whole workspace is built.
pub fn bin(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_ccci-deploy")).with_file_name(name);
    assert!(
        p.is_file(),
        "{} not found: run `cargo build --workspace` (or `cargo test --workspace`) first",
        p.display()
    );
    p
}

/// The repository root (for `examples/` and `tests/support/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("repository root")
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
        Run { cmd, stdin: None, what: format!("{bin_name} {args:?}") }
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

    /// Runs it, killing it after `limit`.
    pub fn run(mut self, limit: Duration) -> Ran {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", self.what));
        if let Some(bytes) = self.stdin.take() {
            let mut w = child.stdin.take().unwrap();
            // The binary may exit before reading it all; a broken pipe is fine.
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
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

/// The swarm objects on this node, as `kind name`. Panics (failing the test) when docker does
/// not answer: these tests need the swarm and must not pass without it.
pub fn swarm_objects() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (kind, format) in [
        ("service", "{{.Name}}"),
        ("secret", "{{.Name}}"),
        ("config", "{{.Name}}"),
        ("volume", "{{.Name}}"),
        ("network", "{{.Name}}"),
    ] {
        let out = Command::new("docker")
            .args([kind, "ls", "--format", format])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("docker is required for these tests (docker {kind} ls: {e})"));
        assert!(
            out.status.success(),
            "docker {kind} ls failed (these tests need an active swarm): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        all.extend(
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()).map(|l| format!("{kind} {l}")),
        );
    }
    all
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

/// The objects that appeared since `before` and are this process's doing: everything new except
/// the objects of other ccci runs (other names than this process's [`marker`]).
pub fn new_objects_of_ours(before: &BTreeSet<String>) -> Vec<String> {
    swarm_objects()
        .difference(before)
        .filter(|o| {
            let name = o.split_once(' ').map_or(o.as_str(), |(_, n)| n);
            name.contains(marker()) || !foreign_run_object(name)
        })
        .cloned()
        .collect()
}

/// The objects of the swarm whose name contains `needle` (e.g. a run's stack name).
pub fn objects_named(needle: &str) -> Vec<String> {
    swarm_objects().into_iter().filter(|o| o.contains(needle)).collect()
}
