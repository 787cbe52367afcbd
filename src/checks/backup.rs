//! What ccci-backup, ccci-restore and ccci-assert share about backups: the backupbot contract as
//! the swarm has it, the backup and restore hooks and abra's backup verbs (each recorded as an
//! assertion), the overlay's plant hooks, the canaries, and where the evidence is read from.

use std::collections::BTreeMap;
use std::time::Duration;

use xshell::Shell;

use crate::checks::discovery::Overlay;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::backup::{self, Hook, Override, Phase, Plan, ServiceInput};
use crate::run::state::{Assertion, Canary, DriverKind, HookRun, OpName, Outcome, RunState};
use crate::swarm::restic::{self, Repo};
use crate::swarm::volume::read_in_volume;

/// How many random bytes a file canary holds.
pub const CANARY_BYTES: usize = 64;

/// The stack's contract as the swarm has it: labels as deployed (interpolated by Docker), volume
/// mounts from the services' specs.
pub struct Swarm {
    pub plan: Plan,
    /// Compose volume key → swarm volume name.
    pub volume_names: BTreeMap<String, String>,
    /// Short service name → (swarm service name, replicas; None for a global service).
    pub services: BTreeMap<String, (String, Option<u64>)>,
}

/// Reads the services of the run's stack and merges their labels with the overlay's override.
pub fn from_swarm(sh: &Shell, state: &RunState, overlay: &Overlay) -> Result<Swarm> {
    let prefix = state.stack.prefix();
    let mut inputs = vec![];
    let mut volume_names = BTreeMap::new();
    let mut services = BTreeMap::new();
    for (svc, mounts) in crate::swarm::docker::services_with_mounts(sh, &state.stack)? {
        let short = svc.name.strip_prefix(&prefix).unwrap_or(&svc.name).to_string();
        let mut m = vec![];
        for mount in mounts {
            let key = mount.source.strip_prefix(&prefix).unwrap_or(&mount.source).to_string();
            volume_names.insert(key.clone(), mount.source.clone());
            m.push((key, mount.target));
        }
        services.insert(short.clone(), (svc.name.clone(), svc.replicas));
        inputs.push(ServiceInput { name: short, labels: svc.labels.clone(), mounts: m });
    }
    let overrule = overlay.settings.backup.map(|capable| Override { capable, origin: overlay.settings.origin.clone() });
    Ok(Swarm { plan: backup::plan(&inputs, overrule.as_ref())?, volume_names, services })
}

/// The tags the run's snapshot carries: the stack and `ccci-run:<run id>` (stack driver); the
/// stack, as backup-bot-two tags an app's snapshots (abra driver).
pub fn run_tags(state: &RunState) -> Vec<String> {
    match state.driver {
        DriverKind::Stack => vec![state.stack.to_string(), format!("ccci-run:{}", state.run_id)],
        DriverKind::Abra => vec![state.stack.to_string()],
    }
}

/// The repository the run's evidence is read from: the run's own (stack driver), or
/// backup-bot-two's (`CCCI_BACKUPBOT_REPOSITORY`, `CCCI_BACKUPBOT_PASSWORD_FILE`; abra driver;
/// unset is the environment's error). Its cache is in the run's workspace either way.
pub fn evidence_repo(state: &RunState) -> Result<Repo> {
    let own = Repo::per_run(&state.workspace)?;
    match state.driver {
        DriverKind::Stack => Ok(own),
        DriverKind::Abra => match crate::config::backupbot()? {
            (Some(repository), Some(password_file)) => Ok(Repo { repository, password_file, ..own }),
            _ => Err(Error::env(format!(
                "the abra driver's backup evidence is read from backup-bot-two's repository: set {} and {}",
                crate::config::BACKUPBOT_REPOSITORY.name,
                crate::config::BACKUPBOT_PASSWORD_FILE.name
            ))),
        },
    }
}

/// The run's abra, as the abra driver has it.
pub(crate) fn abra_of(state: &RunState) -> Result<crate::swarm::abra::Abra> {
    Ok(crate::swarm::abra::Abra {
        program: crate::config::abra_program(),
        abra_dir: state.workspace.join("abra"),
        server: crate::config::abra_server()?,
    })
}

/// Runs one abra backup verb and records it as an assertion with its output. backup-bot-two
/// logs a failed hook (or a missing path) as an error and carries on [contract B4]: an `ERRO`
/// or `level=error` line fails the op, quoting it, whatever abra's exit status.
pub(crate) fn run_abra(
    sh: &Shell,
    abra: &crate::swarm::abra::Abra,
    args: &[String],
    progress: &Progress,
    assertions: &mut Vec<Assertion>,
) -> Result<()> {
    let name = format!("abra {}", args.iter().take_while(|a| !a.contains('.')).cloned().collect::<Vec<_>>().join(" "));
    progress.log(format!("abra {}", args.join(" ")));
    let started = std::time::Instant::now();
    let out = match abra.run(sh, args, crate::error::Kind::OpFailed) {
        Ok(out) => out,
        Err(e) => {
            let ms = started.elapsed().as_millis() as u64;
            assertions.push(Assertion {
                name,
                result: Outcome::of(&e),
                detail: e.to_string(),
                duration_ms: ms,
                output: None,
            });
            return Err(e);
        }
    };
    let text = format!("{}{}", out.stdout, out.stderr);
    let output = Some(crate::process::tail_bytes(&text, 4096)).filter(|o| !o.is_empty());
    let ms = started.elapsed().as_millis() as u64;
    if let Some(line) = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ERRO") || l.contains("level=error") || l.contains("\"level\":\"error\""))
    {
        let why = format!("{name} logged an error: {line}");
        assertions.push(Assertion { name, result: Outcome::Fail, detail: why.clone(), duration_ms: ms, output });
        return Err(Error::failed(why));
    }
    assertions.push(Assertion {
        name,
        result: Outcome::Pass,
        detail: "exited 0, no error logged".into(),
        duration_ms: ms,
        output,
    });
    Ok(())
}

pub(crate) fn note(name: &str, result: Outcome, detail: &str) -> Assertion {
    Assertion { name: name.into(), result, detail: detail.into(), duration_ms: 0, output: None }
}

pub(crate) fn canary_names(canaries: &[Canary]) -> String {
    canaries.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// The overlay's plant hooks for `op` (`overlays/<recipe>/<op>/plant/`, run like checks), each
/// recorded as an assertion: before the backup they plant an application-level canary, before
/// the restore they change it. One that does not pass stops the op.
pub(crate) fn plant(
    state: &RunState,
    overlay: &Overlay,
    op: OpName,
    progress: &Progress,
    assertions: &mut Vec<Assertion>,
) -> Result<()> {
    let Some(dir) = &overlay.dir else { return Ok(()) };
    let op = op.as_str();
    let found = crate::checks::discovery::checks_in(
        &dir.join(op).join("plant"),
        &format!("overlays/{}/{op}/plant", state.recipe),
        crate::checks::discovery::Origin::Overlay,
    )?;
    if found.is_empty() {
        return Ok(());
    }
    let scratch = state.workspace.join("checks").join(format!("{op}-plant"));
    let env = crate::checks::run::Env { state, op, scratch: &scratch, extra: vec![] };
    let allowlist = crate::recipe::trust::Allowlist::load()?;
    let timeout = crate::checks::exec::timeout_setting()?;
    for (n, f) in found.iter().enumerate() {
        let a = crate::checks::run::run_one(f, n + 1, &env, &allowlist, timeout, progress);
        let ok = matches!(a.result, Outcome::Pass | Outcome::Skip);
        let detail = a.detail.clone();
        assertions.push(a);
        if !ok {
            return Err(Error::failed(format!("plant hook {} did not pass: {detail}", f.name)));
        }
    }
    Ok(())
}

/// Runs the hooks of `phase`, each recorded as an assertion (with its output) and in the
/// evidence; the first that exits non-zero fails the op, quoting its output.
pub fn run_hooks(
    sh: &Shell,
    state: &RunState,
    plan: &Plan,
    phase: Phase,
    progress: &Progress,
    assertions: &mut Vec<Assertion>,
    runs: &mut Vec<HookRun>,
) -> Result<()> {
    let timeout = crate::checks::exec::timeout_setting()?;
    for hook in plan.hooks(phase) {
        progress.log(format!("{} of {}: {}", phase.words(), hook.service, hook.command));
        let started = std::time::Instant::now();
        let ran = exec_hook(sh, state, hook, timeout);
        let ms = started.elapsed().as_millis() as u64;
        let name = format!("{} {}", phase.words(), hook.service);
        match ran {
            Ok((0, output)) => {
                assertions.push(Assertion {
                    name,
                    result: Outcome::Pass,
                    detail: format!("`{}` exited 0", hook.command),
                    duration_ms: ms,
                    output: Some(output.clone()).filter(|o| !o.is_empty()),
                });
                runs.push(HookRun {
                    service: hook.service.clone(),
                    phase,
                    command: hook.command.clone(),
                    exit: Some(0),
                    output,
                });
            }
            Ok((code, output)) => {
                let why = format!(
                    "{} of {} (`{}`) exited {code}: {}",
                    phase.words(),
                    hook.service,
                    hook.command,
                    crate::process::tail(&output, 3)
                );
                assertions.push(Assertion {
                    name,
                    result: Outcome::Fail,
                    detail: why.clone(),
                    duration_ms: ms,
                    output: Some(output.clone()).filter(|o| !o.is_empty()),
                });
                runs.push(HookRun {
                    service: hook.service.clone(),
                    phase,
                    command: hook.command.clone(),
                    exit: Some(code),
                    output,
                });
                return Err(Error::failed(why));
            }
            Err(e) => {
                let why = format!("{} of {} (`{}`): {e}", phase.words(), hook.service, hook.command);
                assertions.push(Assertion {
                    name,
                    result: Outcome::of(&e),
                    detail: why.clone(),
                    duration_ms: ms,
                    output: None,
                });
                runs.push(HookRun {
                    service: hook.service.clone(),
                    phase,
                    command: hook.command.clone(),
                    exit: None,
                    output: String::new(),
                });
                return Err(Error::new(e.kind(), why));
            }
        }
    }
    Ok(())
}

/// `docker exec <a running task of the service> sh -c COMMAND`: (exit code, output tail).
/// No running container is the recipe's failure (its service is down); a hook still running
/// after `timeout` is killed and fails.
fn exec_hook(sh: &Shell, state: &RunState, hook: &Hook, timeout: Duration) -> Result<(i32, String)> {
    use crate::process::{ChildError, run_with_timeout};
    let service = format!("{}{}", state.stack.prefix(), hook.service);
    let Some(container) = crate::swarm::docker::running_container(sh, &service)? else {
        return Err(Error::failed(format!("no running container of {service} to run it in")));
    };
    let mut c = crate::swarm::docker::command();
    c.args(["exec", &container, "sh", "-c", &hook.command]);
    let finished = match run_with_timeout(&mut c, timeout, Duration::from_millis(50)) {
        Ok(Some(f)) => f,
        Ok(None) => {
            return Err(Error::failed(format!(
                "still running after {} s ({}); stopped waiting",
                timeout.as_secs(),
                crate::config::CHECK_TIMEOUT.name
            )));
        }
        Err(ChildError::Spawn(e)) => return Err(Error::env(format!("docker exec: {e}"))),
        Err(ChildError::Wait(e)) => return Err(Error::env(format!("waiting for docker exec: {e}"))),
    };
    let mut text = String::from_utf8_lossy(&finished.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&finished.stderr));
    let text = crate::process::tail_bytes(&text, 4096);
    match finished.status.code() {
        // docker exec: 126/127 when sh cannot be started in the container.
        Some(code) => Ok((code, text)),
        None => Err(Error::env(format!("docker exec was killed by a signal: {}", crate::process::tail(&text, 2)))),
    }
}

/// Each canary has its planted bytes again (compared by sha256, read through a probe container
/// that mounts its volume), marking each checked.
pub fn canaries_back(
    sh: &Shell,
    state: &RunState,
    volumes: &[crate::run::state::VolumeEvidence],
    canaries: &mut [Canary],
) -> Assertion {
    if canaries.is_empty() {
        return note("canaries restored", Outcome::Skip, "no file canary was planted (every included path is a file)");
    }
    let mut bad = vec![];
    for c in canaries.iter_mut() {
        let ok = match read_in_volume(sh, state, volumes, &c.volume, &c.path) {
            Ok(Some(bytes)) if restic::sha256(&bytes) == c.sha256 => true,
            Ok(Some(bytes)) => {
                bad.push(format!("{} does not hold its planted bytes ({} bytes)", c.path.display(), bytes.len()));
                false
            }
            Ok(None) => {
                bad.push(format!("{} is gone", c.path.display()));
                false
            }
            Err(e) => {
                bad.push(format!("{} cannot be read: {e}", c.path.display()));
                false
            }
        };
        c.checked = Some(if ok { Outcome::Pass } else { Outcome::Fail });
    }
    if bad.is_empty() {
        note(
            "canaries restored",
            Outcome::Pass,
            &format!("{} canaries hold their planted bytes again: {}", canaries.len(), canary_names(canaries)),
        )
    } else {
        note("canaries restored", Outcome::Fail, &bad.join("; "))
    }
}
