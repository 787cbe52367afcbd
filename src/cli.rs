//! What every binary shares: argument errors, `--help`/`--version`, the state's way in and out,
//! and turning an error into one line on stderr and the documented exit code.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Context, Error, Result, exit};
use crate::progress::Progress;
use crate::run::state::StateIo;

/// Runs a binary's body and exits with its code ([`crate::error::exit`]: 0 pass, 1 op failed, 2 bad
/// input or usage, 3 environment).
pub fn main(bin: &'static str, body: impl FnOnce(&Progress) -> Result<i32>) -> ! {
    let progress = Progress::new(bin);
    let code = match body(&progress) {
        Ok(code) => code,
        Err(e) => {
            say(format_args!("{bin}: error: {e}"));
            e.kind().exit_code()
        }
    };
    std::process::exit(code)
}

/// A lexopt error (unknown flag, missing value) as bad input that points at `--help`.
pub fn usage(bin: &str, e: lexopt::Error) -> Error {
    Error::bad_input(format!("{e} (see {bin} --help)"))
}

pub fn unexpected(bin: &str, arg: lexopt::Arg<'_>) -> Error {
    usage(bin, arg.unexpected())
}

/// One line on stderr, for a person: progress or the final error. A stderr that cannot be
/// written (closed, full) is ignored: what is said there never decides how an op ends.
pub fn say(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes `text` to stdout and flushes it. A stdout that cannot be written (a closed pipe) is the
/// environment's error (exit 3), "writing `what` to stdout: ...", never a panic.
pub fn out(what: &str, text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).with_context(|| format!("writing {what} to stdout"))
}

pub fn print_version(bin: &str) -> Result<i32> {
    out("the version", &format!("{bin} {}\n", env!("CARGO_PKG_VERSION")))?;
    Ok(exit::PASS)
}

pub fn print_help(text: &str) -> Result<i32> {
    out("the help", text)?;
    Ok(exit::PASS)
}

/// Sets a single-valued option from its value, refusing it when given before: every binary says
/// the same, "--flag given twice", rather than letting the last one win.
pub fn once<T>(bin: &str, slot: &mut Option<T>, flag: &str, value: impl FnOnce() -> Result<T>) -> Result<()> {
    if slot.is_some() {
        return Err(repeated(bin, flag));
    }
    *slot = Some(value()?);
    Ok(())
}

/// The error of a single-valued option given twice.
pub fn repeated(bin: &str, flag: &str) -> Error {
    Error::bad_input(format!("{flag} given twice (see {bin} --help)"))
}

/// An option's value as a path.
pub fn value_path(bin: &str, v: std::result::Result<OsString, lexopt::Error>) -> Result<PathBuf> {
    v.map(PathBuf::from).map_err(|e| usage(bin, e))
}

pub fn value_string(bin: &str, v: std::result::Result<OsString, lexopt::Error>, flag: &str) -> Result<String> {
    let v = v.map_err(|e| usage(bin, e))?;
    v.into_string().map_err(|_| Error::bad_input(format!("{flag} must be valid UTF-8")))
}

/// `--state FILE` or the pipe, for reading only (`ccci-report`).
pub fn state_in(file: Option<PathBuf>) -> StateIo {
    match file {
        Some(f) => StateIo::File(f),
        None => StateIo::Pipe,
    }
}

/// The whole `main` of a stage binary whose one option is `--state FILE` (`ccci-upgrade`,
/// `ccci-backup`, `ccci-restore`): `--help` and `--version`, the arguments, [`preflight`], then
/// `op` on the run in the stage frame ([`crate::ops::stage`]).
pub fn stage_main(
    bin: &'static str,
    help: &'static str,
    holder: &'static str,
    op: fn(&mut crate::run::state::RunState, &xshell::Shell, &Progress) -> crate::run::state::Outcome,
) -> ! {
    main(bin, |progress| {
        let mut state_file = None;
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| usage(bin, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("state") => once(bin, &mut state_file, "--state", || value_path(bin, p.value()))?,
                Short('h') | Long("help") => return print_help(help),
                Short('V') | Long("version") => return print_version(bin),
                _ => return Err(unexpected(bin, arg)),
            }
        }
        let io = preflight(state_file)?;
        crate::ops::stage(crate::ops::Run::Piped(&io), holder, progress, |state, _registry, sh| op(state, sh, progress))
    })
}

/// What every op binary checks after its arguments and before anything else: every `CCCI_*`
/// setting ([`crate::config::check_all`]) and that `--state FILE` can be written back. Bad input
/// (exit 2) with one line naming the setting or the file; nothing was created.
pub fn preflight(file: Option<PathBuf>) -> Result<StateIo> {
    crate::config::check_all()?;
    let io = state_in(file);
    io.check_writable()?;
    Ok(io)
}
