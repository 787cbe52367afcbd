//! Running external commands (docker, git, abra, restic, checks): the one policy for a child's
//! environment ([`child_env`]), running a child under a timeout ([`run_with_timeout`]), and
//! turning failures into errors that say which command failed and what it printed.
//!
//! Commands always have their stdout captured: stdout of a ccci binary carries only the run-state.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use xshell::Cmd;

use crate::error::{Error, Kind, Result};

/// Which of ccci's own variables each kind of child inherits ([`child_env`]); nothing else does.
pub mod inherit {
    /// The docker CLI, and abra (which talks to the same daemon): `docker stack deploy`
    /// interpolates compose files from its environment and abra sources the recipe's `abra.sh`,
    /// so a host variable (a token, say) must not reach either.
    pub const DOCKER: &[&str] =
        &["PATH", "HOME", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"];
    /// A check or hook, PR-authored code: `PATH`, so it finds the tools ccci finds, and the Docker
    /// client's connection settings; a token in the CI step's environment must not reach it. It
    /// gets a `HOME` of its own.
    pub const CHECK: &[&str] =
        &["PATH", "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"];
    /// git: `PATH` and an operator's ssh agent; no `GIT_*` variable, and an empty `HOME` of its
    /// own.
    pub const GIT: &[&str] = &["PATH", "SSH_AUTH_SOCK"];
    /// restic: `PATH`; the repository, its password file and the cache are ccci's to set.
    pub const RESTIC: &[&str] = &["PATH"];
}

/// The one policy for a child's environment: it starts cleared, and of ccci's own environment it
/// gets only the variables `allow` names ([`inherit`]) that are set and UTF-8 (a value that is not
/// counts as unset); the caller then adds what it decides itself (abra's `ABRA_DIR`, git's
/// `HOME`, restic's repository, a check's `CCCI_*`). These are the pairs to start from.
pub fn child_env(allow: &[&str]) -> Vec<(String, String)> {
    allow.iter().filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?))).collect()
}

/// An xshell command with its environment cleared, then [`child_env`]`(allow)`.
pub fn cleared<'a>(cmd: Cmd<'a>, allow: &[&str]) -> Cmd<'a> {
    cmd.env_clear().envs(child_env(allow))
}

/// `program` as a [`Command`] with its environment cleared, then [`child_env`]`(allow)`.
pub fn command(program: impl AsRef<std::ffi::OsStr>, allow: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.env_clear().envs(child_env(allow));
    c
}

/// What a child run by [`run_with_timeout`] printed, and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Why [`run_with_timeout`] could not tell how a child ended.
#[derive(Debug)]
pub enum ChildError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
}

/// Runs `cmd` with stdin closed, collecting its stdout and stderr (each read on a thread of its
/// own, so neither pipe fills up), and kills it when it is still running after `timeout`:
/// `Ok(None)` then. `poll` is how often it looks.
pub fn run_with_timeout(
    cmd: &mut Command,
    timeout: Duration,
    poll: Duration,
) -> std::result::Result<Option<Finished>, ChildError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(ChildError::Spawn)?;
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let out_t = std::thread::spawn(move || {
        let mut b = vec![];
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = vec![];
        let _ = err.read_to_end(&mut b);
        b
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            Ok(None) => std::thread::sleep(poll),
            Err(e) => return Err(ChildError::Wait(e)),
        }
    };
    Ok(Some(Finished { status, stdout: out_t.join().unwrap_or_default(), stderr: err_t.join().unwrap_or_default() }))
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd`, capturing both streams. A non-zero exit is an error of `kind` naming `what` and
/// quoting the tail of stderr (or stdout when stderr is empty).
pub fn capture(cmd: Cmd<'_>, what: &str, kind: Kind) -> Result<Output> {
    let out = cmd.quiet().ignore_status().output().map_err(|e| Error::env(format!("{what}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        let said = if stderr.trim().is_empty() { &stdout } else { &stderr };
        let code = out.status.code().map_or("a signal".to_string(), |c| format!("status {c}"));
        return Err(Error::new(kind, format!("{what}: exited with {code}: {}", tail(said, 6))));
    }
    Ok(Output { stdout, stderr })
}

/// The last `lines` non-empty lines of `text`, joined with " | " so they fit one log line.
pub fn tail(text: &str, lines: usize) -> String {
    let v: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = v.len().saturating_sub(lines);
    v[start..].join(" | ")
}

/// The last `max` bytes of `text`, cut at a character boundary, for output tails kept in the state.
pub fn tail_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_gets_only_the_allowed_variables_that_are_set() {
        let env = child_env(&["PATH", "UNSET_IN_THIS_TEST_4242"]);
        assert_eq!(env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["PATH"]);
        let out = command("env", inherit::RESTIC).output().unwrap();
        let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| Some(l.split_once('=')?.0.to_string()))
            .collect();
        assert_eq!(names, ["PATH"], "cargo's and the shell's variables stay out");
    }

    #[test]
    fn a_child_past_its_timeout_is_killed_and_one_that_ends_is_collected() {
        let mut slow = command("sh", inherit::RESTIC);
        slow.args(["-c", "sleep 5"]);
        let t = Instant::now();
        assert!(run_with_timeout(&mut slow, Duration::from_millis(200), Duration::from_millis(20)).unwrap().is_none());
        assert!(t.elapsed() < Duration::from_secs(4));
        let mut quick = command("sh", inherit::RESTIC);
        quick.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run_with_timeout(&mut quick, Duration::from_secs(10), Duration::from_millis(20)).unwrap().unwrap();
        assert_eq!((f.status.code(), &f.stdout[..], &f.stderr[..]), (Some(3), &b"out\n"[..], &b"err\n"[..]));
        assert!(matches!(
            run_with_timeout(&mut command("/nonexistent/ccci", &[]), Duration::from_secs(1), Duration::from_millis(20)),
            Err(ChildError::Spawn(_))
        ));
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "b | c");
        assert_eq!(tail_bytes("héllo", 4), "…llo");
        assert_eq!(tail_bytes("abc", 10), "abc");
    }

    #[test]
    fn failure_names_the_command_and_quotes_stderr() {
        let sh = xshell::Shell::new().unwrap();
        let e = capture(xshell::cmd!(sh, "sh -c 'echo oops >&2; exit 4'"), "running the probe", Kind::OpFailed)
            .unwrap_err();
        assert_eq!(e.kind(), Kind::OpFailed);
        assert_eq!(e.to_string(), "running the probe: exited with status 4: oops");
        let ok = capture(xshell::cmd!(sh, "echo hi"), "echo", Kind::Environment).unwrap();
        assert_eq!(ok.stdout, "hi\n");
    }
}
