//! What the swarm said when an op failed: `docker service ps --no-trunc` and the last lines of
//! every service's logs, written to `$CCCI_STATE_DIR/artifacts/<run>/<op>/` (outside the run's
//! workspace, which teardown removes) and referenced from the op's record.

use std::path::PathBuf;

use xshell::Shell;

use crate::error::Result;
use crate::run::naming::ObjectKind;
use crate::run::registry::Registry;
use crate::run::state::{OpRecord, Outcome, RunState};
use crate::swarm::docker;

/// Log lines kept per service.
pub const LOG_LINES: u32 = 200;

/// Captures diagnostics for `record` when it failed or errored; a capture that fails is logged
/// in the files it could write, never turned into a second failure.
pub fn capture_if_failed(sh: &Shell, registry: &Registry, state: &RunState, record: &mut OpRecord) {
    if !matches!(record.result, Outcome::Fail | Outcome::Error) {
        return;
    }
    if let Ok(files) = capture(sh, registry, state, record.op.as_str()) {
        record.artifacts = files;
    }
}

fn capture(sh: &Shell, registry: &Registry, state: &RunState, op: &str) -> Result<Vec<PathBuf>> {
    let services = docker::objects(sh, ObjectKind::Service, &state.stack)?;
    if services.is_empty() {
        return Ok(vec![]); // nothing reached the swarm: the op's detail says why
    }
    let dir = registry.artifacts(&state.run_id).join(op.replace(' ', "-"));
    fs_err::create_dir_all(&dir)?;
    let mut files = vec![];
    let ps = dir.join("service-ps.txt");
    let mut text = String::new();
    for s in &services {
        text.push_str(&format!("== {s}\n{}\n", docker::service_ps(sh, s).unwrap_or_else(|e| e.to_string())));
    }
    fs_err::write(&ps, text)?;
    files.push(ps);
    for s in &services {
        let path = dir.join(format!("{s}.log"));
        fs_err::write(&path, docker::service_logs(sh, s, LOG_LINES).unwrap_or_else(|e| e.to_string()))?;
        files.push(path);
    }
    Ok(files)
}
