//! Running external commands (docker, git, abra) and turning their failures into errors that say
//! which command failed and what it printed.
//!
//! Commands always have their stdout captured: stdout of a ccci binary carries only the run-state.

use xshell::Cmd;

use crate::error::{Error, Kind, Result};

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
