//! What every binary shares: argument errors, `--help`/`--version`, the state's way in and out,
//! and turning an error into one line on stderr and the documented exit code.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result, exit};
use crate::progress::Progress;
use crate::run::state::StateIo;

/// Runs a binary's body and exits with its code ([`crate::error::exit`]: 0 pass, 1 op failed, 2 bad
/// input or usage, 3 environment).
pub fn main(bin: &'static str, body: impl FnOnce(&Progress) -> Result<i32>) -> ! {
    let progress = Progress::new(bin);
    let code = match body(&progress) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{bin}: error: {e}");
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

pub fn print_version(bin: &str) -> i32 {
    println!("{bin} {}", env!("CARGO_PKG_VERSION"));
    exit::PASS
}

pub fn print_help(text: &str) -> i32 {
    print!("{text}");
    exit::PASS
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

/// What every op binary checks after its arguments and before anything else: every `CCCI_*`
/// setting ([`crate::config::check_all`]) and that `--state FILE` can be written back. Bad input
/// (exit 2) with one line naming the setting or the file; nothing was created.
pub fn preflight(file: Option<PathBuf>) -> Result<StateIo> {
    crate::config::check_all()?;
    let io = state_in(file);
    io.check_writable()?;
    Ok(io)
}
