//! Running one check (or install-steps hook): an executable file, in a cleared environment, in a
//! process group of its own, with a time limit. Its exit code is its answer: 0 pass, 1 fail,
//! 77 skip, anything else error. The contract for check authors is `docs/writing-checks.md`.

use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::run::state::Outcome;

pub const EXIT_PASS: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
/// Automake's "skipped" code, which test harnesses (and check authors) already know.
pub const EXIT_SKIP: i32 = 77;

/// How much of a check's output (stdout and stderr, interleaved) the run-state keeps: its end,
/// where the reason for a failure usually is.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// How much output is held while the check runs; older output is dropped.
const BUFFER_BYTES: usize = 64 * 1024;

/// After the check exits (or is killed), how long its output may still take to drain. Only a
/// process that left the check's process group can hold the pipe open that long.
const DRAIN: Duration = Duration::from_secs(2);

/// `CCCI_CHECK_TIMEOUT`: how long one check or hook may run before it is killed (default 2 min).
pub fn timeout_setting() -> Result<Duration> {
    crate::config::duration(&crate::config::CHECK_TIMEOUT)
}

/// The variables of ccci's own environment that a check also gets ([`crate::process::inherit::CHECK`]): `PATH`,
/// so it finds the tools ccci finds, and the Docker client's connection settings. Nothing else
/// passes: a token in the CI step's environment must not reach PR-authored code.
pub fn passthrough_env() -> Vec<(String, String)> {
    crate::process::child_env(crate::process::inherit::CHECK)
}

/// How one run of a check ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub result: Outcome,
    /// One line: the exit status and the check's last line of output.
    pub detail: String,
    /// The end of what it printed, at most [`OUTPUT_TAIL_BYTES`].
    pub output: String,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
enum Exit {
    Code(i32),
    Signal(i32),
    TimedOut(Duration),
    NotStarted(String),
}

/// Runs `program` with exactly `env`, in `cwd`, stdin from /dev/null, stdout and stderr into one
/// pipe. It gets a process group of its own; when it exits or `timeout` passes, the whole group
/// is killed, so a check cannot leave a background process behind (one that started a new
/// session with `setsid` is out of reach; its output is read for at most two more seconds).
pub fn run(program: &Path, env: &[(String, String)], cwd: &Path, timeout: Duration) -> Ran {
    let start = Instant::now();
    let (exit, output) = match runnable(program).and_then(|()| spawn_and_wait(program, env, cwd, timeout)) {
        Ok(done) => done,
        Err(e) => (Exit::NotStarted(e.to_string()), Vec::new()),
    };
    let output = crate::process::tail_bytes(&String::from_utf8_lossy(&output), OUTPUT_TAIL_BYTES);
    let (result, detail) = verdict(&exit, &output);
    Ran { result, detail, output, duration_ms: start.elapsed().as_millis() as u64 }
}

/// An executable must start with `#!` or be an ELF binary. Said before starting it, because the
/// C library's `execvp` would run anything else with `/bin/sh` instead of refusing it.
fn runnable(program: &Path) -> std::io::Result<()> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(program)?.read(&mut head)?;
    if head[..n].starts_with(b"#!") || head[..n] == *b"\x7fELF" {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(libc::ENOEXEC))
    }
}

fn spawn_and_wait(
    program: &Path,
    env: &[(String, String)],
    cwd: &Path,
    timeout: Duration,
) -> std::io::Result<(Exit, Vec<u8>)> {
    let (mut reader, writer) = std::io::pipe()?;
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0);
    own_pid_namespace(&mut cmd);
    let spawned = cmd.spawn();
    // The command holds the pipe's write ends: drop them, or the output never ends.
    drop(cmd);
    let mut child = spawned?;
    let pid = child.id() as i32;

    let buffer = Arc::new(Mutex::new(Vec::new()));
    let (done, drained) = mpsc::channel();
    {
        let buffer = Arc::clone(&buffer);
        std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut b = buffer.lock().unwrap_or_else(|p| p.into_inner());
                b.extend_from_slice(&chunk[..n]);
                if b.len() > BUFFER_BYTES {
                    let cut = b.len() - BUFFER_BYTES;
                    b.drain(..cut);
                }
            }
            let _ = done.send(());
        });
    }

    let start = Instant::now();
    let timed_out = loop {
        if has_exited(pid) {
            break false;
        }
        if start.elapsed() >= timeout {
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The leader is still alive or a zombie not yet reaped, so its process group id cannot have
    // been reused: killing the group reaches only what the check started.
    kill_group(pid);
    let status = child.wait()?;
    let _ = drained.recv_timeout(DRAIN);
    let output = std::mem::take(&mut *buffer.lock().unwrap_or_else(|p| p.into_inner()));
    let exit = if timed_out {
        Exit::TimedOut(timeout)
    } else {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            (None, None) => Exit::Code(-1),
        }
    };
    Ok((exit, output))
}

/// Makes `cmd` start in a PID namespace of its own, so that nothing it starts outlives it: when
/// the namespace's first process ends, the kernel kills every other one in it, including those
/// that left the process group (`setsid`, double forks). A process group alone cannot do that.
///
/// Done in the forked child before exec, with no helper binary, in three processes:
///
/// - the *relay* (the child `Command` forked; in ccci's namespace, so the timeout's group kill
///   reaches it) unshares a PID namespace — with a user namespace when ccci is not root, which
///   is what makes that allowed (the check's uid and gid stay the same, mapped to themselves) —
///   and forks
/// - the *init*, PID 1 of the new namespace, which forks the check and waits for it, then hands
///   the relay its raw wait status through a pipe and exits, taking the namespace with it;
/// - the check itself, PID 2, which goes on to exec. Not PID 1: a check's signals to itself work
///   as anywhere else.
///
/// The relay then ends the way the check did (the same exit code, or the same signal), so the
/// verdict reads it as before. When the namespace cannot be made (no user namespaces allowed:
/// `sysctl user.max_user_namespaces`, or systemd's `RestrictNamespaces=`), the check does not
/// start: it is recorded as `error` with the reason, never run without the namespace.
fn own_pid_namespace(cmd: &mut Command) {
    // Everything the child needs is prepared here: between fork and exec only async-signal-safe
    // calls are allowed (no allocation).
    // SAFETY: geteuid/getegid cannot fail and have no memory effects.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let user_ns = uid != 0;
    let uid_map = std::ffi::CString::new(format!("{uid} {uid} 1\n")).expect("no NUL");
    let gid_map = std::ffi::CString::new(format!("{gid} {gid} 1\n")).expect("no NUL");
    // SAFETY: the closure runs in the forked child before exec and uses only async-signal-safe
    // libc calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::CLONE_NEWPID | if user_ns { libc::CLONE_NEWUSER } else { 0 };
            if libc::unshare(flags) != 0 {
                return Err(std::io::Error::other(format!(
                    "cannot make its own PID namespace ({})",
                    std::io::Error::last_os_error()
                )));
            }
            if user_ns {
                write_proc(c"/proc/self/setgroups", c"deny".as_ptr(), 4)?;
                write_proc(c"/proc/self/uid_map", uid_map.as_ptr(), uid_map.as_bytes().len())?;
                write_proc(c"/proc/self/gid_map", gid_map.as_ptr(), gid_map.as_bytes().len())?;
            }
            let mut fds = [0i32; 2];
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let (status_r, status_w) = (fds[0], fds[1]);
            let init = libc::fork();
            if init < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if init == 0 {
                // The init, PID 1.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                let check = libc::fork();
                if check < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if check == 0 {
                    // The check, PID 2: dies if its init is killed, then execs.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    return Ok(());
                }
                close_all_but(status_w);
                let status = wait_for(check);
                libc::write(status_w, (&raw const status).cast(), std::mem::size_of::<i32>());
                libc::_exit(0);
            }
            // The relay.
            close_all_but(status_r);
            let init_status = wait_for(init);
            let mut status = 0i32;
            let n = libc::read(status_r, (&raw mut status).cast(), std::mem::size_of::<i32>());
            let status = if n == std::mem::size_of::<i32>() as isize { status } else { init_status };
            if libc::WIFSIGNALED(status) {
                let sig = libc::WTERMSIG(status);
                libc::signal(sig, libc::SIG_DFL);
                libc::kill(libc::getpid(), sig);
            }
            libc::_exit(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 });
        });
    }
}

/// Writes `len` bytes at `buf` to the file at `path` (between fork and exec: no allocation).
unsafe fn write_proc(path: &std::ffi::CStr, buf: *const libc::c_char, len: usize) -> std::io::Result<()> {
    // SAFETY: the caller passes a valid buffer of `len` bytes; open/write/close are
    // async-signal-safe.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 || libc::write(fd, buf.cast(), len) != len as isize {
            let e = std::io::Error::last_os_error();
            if fd >= 0 {
                libc::close(fd);
            }
            return Err(std::io::Error::other(format!("cannot map its user namespace ({e})")));
        }
        libc::close(fd);
    }
    Ok(())
}

/// Closes every file descriptor but `keep`: the relay and the init must not hold the output pipe
/// (or the pipe std uses to report a failed exec) open.
unsafe fn close_all_but(keep: i32) {
    // SAFETY: close_range and close are async-signal-safe; closing what is not open is harmless.
    unsafe {
        if keep > 0 && libc::syscall(libc::SYS_close_range, 0u32, (keep - 1) as u32, 0u32) != 0 {
            for fd in 0..keep {
                libc::close(fd);
            }
        }
        if libc::syscall(libc::SYS_close_range, (keep + 1) as u32, u32::MAX, 0u32) != 0 {
            for fd in (keep + 1)..4096 {
                libc::close(fd);
            }
        }
    }
}

/// The raw wait status of `pid`, retrying on EINTR.
unsafe fn wait_for(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid writes only into `status`.
    unsafe {
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                return libc::W_EXITCODE(127, 0);
            }
        }
    }
    status
}

/// Whether the child has exited, without reaping it (`WNOWAIT`): until it is reaped, its pid
/// and process group id stay taken.
fn has_exited(pid: i32) -> bool {
    // SAFETY: waitid only writes into the zeroed siginfo_t we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
        r != 0 || info.si_pid() != 0
    }
}

fn kill_group(pid: i32) {
    // SAFETY: kill has no memory effects; a group that is already gone gives ESRCH, ignored.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// The result and the one-line detail for how a check ended.
fn verdict(exit: &Exit, output: &str) -> (Outcome, String) {
    let last = crate::process::tail(output, 1);
    let with_last = |s: String| if last.is_empty() { s } else { format!("{s}: {last}") };
    match exit {
        Exit::Code(EXIT_PASS) => (Outcome::Pass, if last.is_empty() { "passed (exit 0)".into() } else { last }),
        Exit::Code(EXIT_FAIL) => (Outcome::Fail, with_last("failed (exit 1)".into())),
        Exit::Code(EXIT_SKIP) => (Outcome::Skip, with_last("skipped (exit 77)".into())),
        Exit::Code(code) => {
            (Outcome::Error, with_last(format!("exited with {code}: a check answers 0 (pass), 1 (fail) or 77 (skip)")))
        }
        Exit::Signal(sig) => (Outcome::Error, with_last(format!("killed by signal {sig}"))),
        Exit::TimedOut(t) => {
            (Outcome::Error, with_last(format!("timed out after {}s: killed with its process group", t.as_secs_f64())))
        }
        Exit::NotStarted(e) => {
            let hint = if e.contains("os error 8") { " (does it start with #!?)" } else { "" };
            (Outcome::Error, format!("could not start: {e}{hint}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("ccci-check-test-{}-{name}", std::process::id()));
            let _ = fs_err::remove_dir_all(&d);
            fs_err::create_dir_all(&d).unwrap();
            Dir(d)
        }

        fn script(&self, name: &str, body: &str) -> PathBuf {
            let p = self.0.join(name);
            fs_err::write(&p, body).unwrap();
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.0);
        }
    }

    fn env() -> Vec<(String, String)> {
        vec![("PATH".into(), "/usr/bin:/bin".into()), (crate::config::given::OP.into(), "install".into())]
    }

    fn run_script(d: &Dir, body: &str) -> Ran {
        let p = d.script("check", body);
        run(&p, &env(), &d.0, Duration::from_secs(10))
    }

    #[test]
    fn exit_codes_are_answers() {
        let d = Dir::new("codes");
        let pass = run_script(&d, "#!/bin/sh\necho checking\necho page says hello\n");
        assert_eq!((pass.result, pass.detail.as_str()), (Outcome::Pass, "page says hello"));
        assert_eq!(pass.output, "checking\npage says hello\n");
        let quiet = run_script(&d, "#!/bin/sh\nexit 0\n");
        assert_eq!((quiet.result, quiet.detail.as_str()), (Outcome::Pass, "passed (exit 0)"));
        let fail = run_script(&d, "#!/bin/sh\necho 'login page answered 500' >&2\nexit 1\n");
        assert_eq!((fail.result, fail.detail.as_str()), (Outcome::Fail, "failed (exit 1): login page answered 500"));
        let skip = run_script(&d, "#!/bin/sh\necho no SMTP configured\nexit 77\n");
        assert_eq!((skip.result, skip.detail.as_str()), (Outcome::Skip, "skipped (exit 77): no SMTP configured"));
        let other = run_script(&d, "#!/bin/sh\nexit 2\n");
        assert_eq!(other.result, Outcome::Error);
        assert!(other.detail.starts_with("exited with 2"), "{}", other.detail);
        let killed = run_script(&d, "#!/bin/sh\nkill -9 $$\n");
        assert_eq!((killed.result, killed.detail.as_str()), (Outcome::Error, "killed by signal 9"));
    }

    #[test]
    fn stdout_and_stderr_interleave_and_only_the_tail_is_kept() {
        let d = Dir::new("tail");
        let r = run_script(&d, "#!/bin/sh\necho out; echo err >&2; echo out2\n");
        assert_eq!(r.output, "out\nerr\nout2\n");
        let r = run_script(&d, "#!/bin/sh\ni=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done\necho last\n");
        assert!(r.output.len() <= OUTPUT_TAIL_BYTES + 3, "{}", r.output.len());
        assert!(r.output.starts_with('…') && r.output.ends_with("line 2999\nlast\n"));
    }

    #[test]
    fn the_environment_is_exactly_what_is_given() {
        let d = Dir::new("env");
        let r = run_script(&d, "#!/bin/sh\nenv | sort\n");
        assert_eq!(r.result, Outcome::Pass);
        let names: Vec<&str> = r.output.lines().filter_map(|l| l.split('=').next()).collect();
        // sh itself may add PWD, SHLVL and `_`.
        let extra: Vec<&&str> = names
            .iter()
            .filter(|n| !["PATH", crate::config::given::OP, "PWD", "SHLVL", "_", "OLDPWD"].contains(n))
            .collect();
        assert!(extra.is_empty(), "unexpected variables: {extra:?}");
        // This test process has HOME and cargo's CARGO_* variables; none of them passes.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some() && !r.output.contains("CARGO_"));
        let pwd = run_script(&d, "#!/bin/sh\npwd\n");
        assert_eq!(pwd.output.trim(), d.0.canonicalize().unwrap().display().to_string());
    }

    #[test]
    fn a_hanging_check_is_killed_with_its_process_group() {
        let d = Dir::new("hang");
        let pidfile = d.0.join("child.pid");
        let body = format!("#!/bin/sh\necho started\n{} &\nwait\n", sleeper(&pidfile));
        let p = d.script("hang", &body);
        let start = Instant::now();
        let r = run(&p, &env(), &d.0, Duration::from_secs(1));
        assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());
        assert_eq!(r.result, Outcome::Error);
        assert_eq!(r.detail, "timed out after 1s: killed with its process group: started");
        let child = pid_in(&pidfile);
        assert!(gone(child), "the check's background sleep {child} survived");
    }

    #[test]
    fn background_processes_die_with_a_check_that_exits() {
        let d = Dir::new("stray");
        let pidfile = d.0.join("child.pid");
        let body = format!("#!/bin/sh\n{} &\n{}echo done\n", sleeper(&pidfile), await_file(&pidfile));
        let p = d.script("stray", &body);
        let start = Instant::now();
        let r = run(&p, &env(), &d.0, Duration::from_secs(30));
        assert!(start.elapsed() < Duration::from_secs(5), "waited for the stray: {:?}", start.elapsed());
        assert_eq!((r.result, r.detail.as_str()), (Outcome::Pass, "done"));
        let child = pid_in(&pidfile);
        assert!(gone(child), "the stray sleep {child} survived");
    }

    /// A shell command that writes its pid as this host sees it (a check's `$!` is a pid in its
    /// own namespace; `/proc` is the host's) to `pidfile`, then becomes `sleep 300`.
    fn sleeper(pidfile: &Path) -> String {
        let script = pidfile.with_extension("sh");
        fs_err::write(
            &script,
            format!("#!/bin/sh\nread -r pid _ < /proc/self/stat\necho $pid > {}\nexec sleep 300\n", pidfile.display()),
        )
        .unwrap();
        fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("{}", script.display())
    }

    /// Shell lines that wait until `pidfile` is written.
    fn await_file(pidfile: &Path) -> String {
        format!("while [ ! -s {0} ]; do sleep 0.05; done\n", pidfile.display())
    }

    /// The pid in `pidfile`, waiting for it to be written.
    fn pid_in(pidfile: &Path) -> i32 {
        for _ in 0..100 {
            if let Ok(p) = fs_err::read_to_string(pidfile).unwrap_or_default().trim().parse() {
                return p;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} was never written", pidfile.display());
    }

    #[test]
    fn a_daemon_a_check_starts_in_a_new_session_dies_with_the_check() {
        let d = Dir::new("daemon");
        let pidfile = d.0.join("daemon.pid");
        // setsid leaves the check's process group; the daemon's own double fork leaves its
        // parent: only a PID namespace still holds it.
        let body = format!(
            "#!/bin/sh\nsetsid sh -c '{} &' &\n{}echo started a daemon\n",
            sleeper(&pidfile),
            await_file(&pidfile)
        );
        let p = d.script("daemon", &body);
        let start = Instant::now();
        let r = run(&p, &env(), &d.0, Duration::from_secs(30));
        assert!(start.elapsed() < Duration::from_secs(6), "waited for the daemon: {:?}", start.elapsed());
        assert_eq!((r.result, r.detail.as_str()), (Outcome::Pass, "started a daemon"));
        let daemon = pid_in(&pidfile);
        assert!(gone(daemon), "the check's setsid daemon {daemon} survived it");
    }

    #[test]
    fn a_daemon_of_a_check_that_times_out_dies_with_it() {
        let d = Dir::new("daemon-timeout");
        let pidfile = d.0.join("daemon.pid");
        let body = format!("#!/bin/sh\nsetsid sh -c '{} &' &\nsleep 300\n", sleeper(&pidfile));
        let p = d.script("daemon", &body);
        let r = run(&p, &env(), &d.0, Duration::from_secs(2));
        assert_eq!(r.result, Outcome::Error);
        let daemon = pid_in(&pidfile);
        assert!(gone(daemon), "the timed-out check's setsid daemon {daemon} survived it");
    }

    #[test]
    fn a_check_is_not_pid_1_so_its_signals_to_itself_work() {
        let d = Dir::new("pid");
        let r = run_script(&d, "#!/bin/sh\necho $$\n");
        assert_eq!(r.output.trim(), "2", "the check is PID 2 of its own namespace");
        let term = run_script(&d, "#!/bin/sh\nkill -TERM $$\nsleep 5\n");
        assert_eq!((term.result, term.detail.as_str()), (Outcome::Error, "killed by signal 15"));
    }

    /// Gone, or a zombie waiting for its (new) parent to reap it.
    fn gone(pid: i32) -> bool {
        for _ in 0..100 {
            match fs_err::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) if stat.rsplit(')').next().is_some_and(|s| s.trim_start().starts_with('Z')) => return true,
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    #[test]
    fn what_cannot_start_is_an_error() {
        let d = Dir::new("nostart");
        let no_shebang = d.script("plain", "echo hi\n");
        let r = run(&no_shebang, &env(), &d.0, Duration::from_secs(5));
        assert_eq!(r.result, Outcome::Error);
        assert!(r.detail.starts_with("could not start: ") && r.detail.contains("#!"), "{}", r.detail);
        let missing = run(&d.0.join("missing"), &env(), &d.0, Duration::from_secs(5));
        assert_eq!(missing.result, Outcome::Error);
        assert!(missing.detail.contains("No such file"), "{}", missing.detail);
    }
}
