//! Errors with context and the exit code they map to.
//!
//! Every library function returns [`Result`]. An [`Error`] carries a message that reads as a path
//! of what was being attempted ("deploying run hell-3fa9c2: creating secret x: ...") and a
//! [`Kind`] that decides the exit code a binary returns for it.

use std::fmt;

/// What went wrong, in terms of who has to act. Maps one-to-one onto the documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The recipe (or the deployment) failed the op: exit 1.
    OpFailed,
    /// The input was wrong (arguments, run-state, recipe names): exit 2. Nothing was changed.
    BadInput,
    /// The environment broke (docker, git, abra missing or failing, disk): exit 3.
    Environment,
}

impl Kind {
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::OpFailed => exit::FAILED,
            Kind::BadInput => exit::BAD_INPUT,
            Kind::Environment => exit::ENVIRONMENT,
        }
    }
}

/// The exit codes of every ccci binary: the one table that the binaries return, each `--help`
/// text's "Exit status" line follows and `docs/operating.md` lists (a test compares them).
pub mod exit {
    /// The op passed, or was skipped with a reason in the run-state.
    pub const PASS: i32 = 0;
    /// The op failed: the recipe's fault.
    pub const FAILED: i32 = 1;
    /// Bad input or usage: nothing was created or changed.
    pub const BAD_INPUT: i32 = 2;
    /// The environment broke.
    pub const ENVIRONMENT: i32 = 3;

    /// Each code with its meaning, as `docs/operating.md` says it.
    pub const TABLE: &[(i32, &str)] = &[
        (PASS, "the op passed (or was skipped with a reason in the run-state)"),
        (FAILED, "the op failed: the recipe's fault; the run-state says why"),
        (
            BAD_INPUT,
            "bad input or usage: nothing was created or changed (also: `ccci-assert`/`ccci-upgrade` given a run that was already torn down)",
        ),
        (
            ENVIRONMENT,
            "the environment broke (docker, git, abra, the disk); the run-state, when there is one, says `error`",
        ),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }
    pub fn bad_input(message: impl Into<String>) -> Error {
        Error::new(Kind::BadInput, message)
    }
    pub fn env(message: impl Into<String>) -> Error {
        Error::new(Kind::Environment, message)
    }
    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(Kind::OpFailed, message)
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// For an error met reading a file the recipe's author controls (`.env.sample`, compose
    /// files, `abra.sh`): what is wrong with its content (not UTF-8, a NUL byte, bad syntax) is
    /// the recipe's failure (exit 1), not bad input to ccci; the environment's errors (a disk
    /// that cannot be read) stay the environment's.
    pub fn recipe_fault(self) -> Error {
        match self.kind {
            Kind::BadInput => Error { kind: Kind::OpFailed, message: self.message },
            _ => self,
        }
    }
    /// Prefixes the message with what was being attempted.
    pub fn context(self, what: impl fmt::Display) -> Error {
        Error { kind: self.kind, message: format!("{what}: {}", self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::env(e.to_string())
    }
}

impl From<xshell::Error> for Error {
    fn from(e: xshell::Error) -> Error {
        Error::env(e.to_string())
    }
}

/// `.context("what")` on any result whose error converts into [`Error`].
pub trait Context<T> {
    fn context(self, what: impl fmt::Display) -> Result<T>;
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<D: fmt::Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_prefixes_and_keeps_kind() {
        let r: Result<()> = Err(Error::bad_input("bad value"));
        let e = r.context("reading state").unwrap_err();
        assert_eq!(e.message(), "reading state: bad value");
        assert_eq!(e.kind().exit_code(), 2);
    }

    #[test]
    fn a_recipe_file_with_bad_content_is_the_recipes_failure_and_a_broken_disk_stays_the_environments() {
        assert_eq!(Error::bad_input(".env.sample:2: contains a NUL byte").recipe_fault().kind(), Kind::OpFailed);
        assert_eq!(Error::env("reading .env.sample: Input/output error").recipe_fault().kind(), Kind::Environment);
        assert_eq!(Error::failed("x").recipe_fault().kind(), Kind::OpFailed);
    }

    #[test]
    fn io_errors_are_environment_errors() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("disk on fire"));
        let e = r.context("writing x").unwrap_err();
        assert_eq!(e.kind(), Kind::Environment);
        assert_eq!(e.to_string(), "writing x: disk on fire");
    }
}
