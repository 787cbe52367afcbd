//! Settings read from the environment, each documented in `docs/operating.md`.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// `CCCI_STATE_DIR`: the run registry and per-run workspaces, outside any CI workspace. Defaults
/// to `$XDG_STATE_HOME/ccci` (or `~/.local/state/ccci`) for a person at a shell; the NixOS
/// module sets `/var/lib/ccci`.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CCCI_STATE_DIR").filter(|d| !d.is_empty()) {
        let d = PathBuf::from(d);
        if !d.is_absolute() {
            return Err(Error::bad_input(format!("CCCI_STATE_DIR {} must be an absolute path", d.display())));
        }
        return Ok(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("ccci"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/state/ccci")),
        None => Err(Error::env("cannot place the run registry: set CCCI_STATE_DIR (or HOME)")),
    }
}

/// A duration setting such as `CCCI_DEPLOY_TIMEOUT=300` or `=5m`.
pub fn duration(var: &str, default: Duration) -> Result<Duration> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => crate::time::parse_duration(&v)
            .ok_or_else(|| Error::bad_input(format!("{var}={v:?} is not a duration (use seconds or 30s/10m/2h)"))),
        _ => Ok(default),
    }
}

/// How long deploy waits for the stack to converge (`CCCI_DEPLOY_TIMEOUT`).
pub fn deploy_timeout() -> Result<Duration> {
    duration("CCCI_DEPLOY_TIMEOUT", Duration::from_secs(300))
}

/// How long the serving check retries (`CCCI_SERVING_TIMEOUT`).
pub fn serving_timeout() -> Result<Duration> {
    duration("CCCI_SERVING_TIMEOUT", Duration::from_secs(60))
}

/// How long teardown waits for the stack's tasks and containers to go (`CCCI_TEARDOWN_TIMEOUT`).
pub fn teardown_timeout() -> Result<Duration> {
    duration("CCCI_TEARDOWN_TIMEOUT", Duration::from_secs(180))
}

/// `CCCI_KEEP_ON_FAILURE=1`: how long a failed run stays deployed for debugging
/// (`CCCI_KEEP_TTL`, default 2 hours), or `None` when failed runs are torn down as usual.
pub fn keep_on_failure() -> Result<Option<Duration>> {
    let ttl = duration("CCCI_KEEP_TTL", Duration::from_secs(2 * 3600))?;
    match std::env::var("CCCI_KEEP_ON_FAILURE").unwrap_or_default().as_str() {
        "" | "0" | "false" | "no" => Ok(None),
        "1" | "true" | "yes" => Ok(Some(ttl)),
        other => Err(Error::bad_input(format!("CCCI_KEEP_ON_FAILURE={other:?}: use 1 or 0"))),
    }
}

/// `CCCI_PROXY_URL`: when set (e.g. `http://127.0.0.1:80`), serving checks go through this proxy
/// with the run's domain as Host, the way a visitor would reach the app.
pub fn proxy_url() -> Option<String> {
    std::env::var("CCCI_PROXY_URL").ok().filter(|v| !v.trim().is_empty())
}

/// `CCCI_ABRA`: the abra binary (default `abra` on PATH).
pub fn abra_program() -> PathBuf {
    std::env::var_os("CCCI_ABRA").filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| "abra".into())
}

/// `CCCI_ABRA_SERVER`: the abra server name of the local swarm (default `default`).
pub fn abra_server() -> Result<String> {
    let s = std::env::var("CCCI_ABRA_SERVER").unwrap_or_default();
    let s = if s.is_empty() { "default".to_string() } else { s };
    if s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !s.starts_with(['-', '.']) {
        Ok(s)
    } else {
        Err(Error::bad_input(format!("CCCI_ABRA_SERVER {s:?} is not a valid server name")))
    }
}
