//! `ccci-restore`: restore the snapshot the backup made, by id, and record whether the data came
//! back.
//!
//! First every file canary gets other bytes and a post-backup file
//! (`ccci-post-backup-<run id>`) is written beside it, so a restore that writes nothing cannot
//! look like one that did (both through a probe container that mounts the volume). Then, in
//! order: the restore pre-hooks; services that mount a restored volume and declare no restore
//! hook are scaled to 0 (their tasks gone); `restic restore <id> --target <workspace>/backup/staging
//! --include <each backed-up path>`, copied into each volume from a probe container that mounts
//! it; those services scaled back; the restore
//! post-hooks; the stack's convergence. restic 0.14's restore overwrites and never deletes: the
//! post-backup file survives a file-level restore, which is recorded and the file removed, so
//! later tiers see the backed-up data only. `ccci-assert restore` then checks that every canary
//! has its planted bytes again.

use std::time::{Duration, Instant};

use xshell::Shell;

use crate::checks::backup::{canaries_back, from_swarm, note, run_hooks};
use crate::checks::discovery::Overlay;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::backup::Phase;
use crate::run::state::{Assertion, BackupEvidence, Canary, OpName, OpTimer, Outcome, RunState};
use crate::swarm::restic;
use crate::swarm::volume::{remove_in_volume, write_in_volume};

pub const HOLDER: &str = "ccci-restore";

fn skip_reason(state: &RunState) -> Option<String> {
    match state.last_op(OpName::Backup) {
        None => Some("backup did not run".into()),
        Some(r) if r.result == Outcome::Skip => Some(format!("backup was skipped: {}", r.detail)),
        Some(r) if r.result != Outcome::Pass => Some(format!("backup did not pass ({})", r.result.as_str())),
        Some(r) if r.backup.as_ref().and_then(|b| b.snapshot.as_ref()).is_none() => {
            Some("the backup recorded no snapshot".into())
        }
        Some(_) => None,
    }
}

/// Runs the restore and records the `restore` op; returns its outcome.
pub fn run(state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    let timer = OpTimer::start(OpName::Restore);
    if let Some(v) = state.deploy_once_violation() {
        state.push_op(timer.finish(Outcome::Error, v, vec![]));
        return Outcome::Error;
    }
    if let Some(why) = skip_reason(state) {
        progress.log(format!("restore skipped: {why}"));
        state.push_op(timer.finish(Outcome::Skip, why, vec![]));
        return Outcome::Skip;
    }
    let backed_up = state.last_op(OpName::Backup).and_then(|r| r.backup.clone()).expect("checked by skip_reason");
    let mut evidence = BackupEvidence {
        engine: backed_up.engine.clone(),
        repository: backed_up.repository.clone(),
        snapshot: backed_up.snapshot.clone(),
        volumes: backed_up.volumes.clone(),
        canaries: backed_up.canaries.iter().map(|c| Canary { checked: None, ..c.clone() }).collect(),
        hooks: vec![],
    };
    let mut assertions = vec![];
    let result = restore(state, sh, progress, &mut assertions, &mut evidence);
    let (outcome, detail) = match result {
        Ok(done) => {
            let outcome = crate::checks::run::combine(&assertions);
            (outcome, crate::checks::run::op_detail(&done, outcome, &assertions))
        }
        Err(e) => {
            progress.log(format!("restore {}: {e}", Outcome::of(&e).as_str()));
            let outcome = Outcome::of(&e);
            let outcome =
                if crate::checks::run::combine(&assertions) == Outcome::Fail { Outcome::Fail } else { outcome };
            (outcome, e.to_string())
        }
    };
    let mut record = timer.finish(outcome, detail, assertions);
    record.backup = Some(evidence);
    state.push_op(record);
    outcome
}

fn restore(
    state: &mut RunState,
    sh: &Shell,
    progress: &Progress,
    assertions: &mut Vec<Assertion>,
    evidence: &mut BackupEvidence,
) -> Result<String> {
    let limits = crate::swarm::converge::Limits::from_env()?;
    let timeout = limits.timeout;
    let snapshot = evidence.snapshot.clone().unwrap_or_default();
    let overlay = Overlay::load(&state.recipe)?;
    let swarm = from_swarm(sh, state, &overlay)?;
    let plan = &swarm.plan;
    let repo = crate::checks::backup::evidence_repo(state)?;
    let abra = match state.driver {
        crate::run::state::DriverKind::Stack => None,
        crate::run::state::DriverKind::Abra => {
            let abra = crate::checks::backup::abra_of(state)?;
            abra.probe_flags(sh, crate::swarm::abra::BACKUP_FLAGS)?;
            Some(abra)
        }
    };

    // Change every canary, and add a file the backup never saw: through a probe container that
    // mounts the volume, so a symlink the app put there since the backup never leads to the host.
    let post_name = format!("ccci-post-backup-{}", state.run_id);
    let mut post_files = vec![];
    for c in &evidence.canaries {
        let bytes = restic::random_bytes(crate::checks::backup::CANARY_BYTES)?;
        write_in_volume(sh, state, &evidence.volumes, &c.volume, &c.path, &bytes, false)?;
        if let Some(dir) = c.path.parent() {
            let p = (c.volume.clone(), dir.join(&post_name));
            if !post_files.contains(&p) {
                write_in_volume(sh, state, &evidence.volumes, &p.0, &p.1, b"written after the backup\n", true)?;
                post_files.push(p);
            }
        }
    }
    progress.log(format!(
        "changed {}, wrote {}",
        crate::words::count(evidence.canaries.len(), "canary", "canaries"),
        crate::words::count(post_files.len(), "post-backup file", "post-backup files")
    ));

    crate::checks::backup::plant(state, &overlay, OpName::Restore, progress, assertions)?;
    if let Some(abra) = &abra {
        // backup-bot-two runs the restore hooks and writes the files itself.
        let args = abra.restore_args(&state.domain, &snapshot);
        let since = crate::time::now_rfc3339();
        crate::checks::backup::run_abra(sh, abra, &args, progress, assertions)?;
        let converged = crate::swarm::converge::wait(sh, &state.stack, limits, &since, progress)?;
        return finish(state, sh, assertions, evidence, &post_files, converged, &snapshot, &[]);
    }
    run_hooks(sh, state, plan, Phase::RestorePre, progress, assertions, &mut evidence.hooks)?;

    // Services that mount a restored volume and cannot take part through a hook are stopped.
    let restored: Vec<&str> = evidence.volumes.iter().map(|v| v.volume.as_str()).collect();
    let mut stopped = vec![];
    for v in plan.volumes.iter().filter(|v| restored.contains(&v.volume.as_str())) {
        for s in &v.services {
            if plan.has_restore_hook(s) || stopped.iter().any(|(n, _, _)| n == s) {
                continue;
            }
            match swarm.services.get(s) {
                Some((full, Some(replicas))) if *replicas > 0 => stopped.push((s.clone(), full.clone(), *replicas)),
                Some((full, None)) => {
                    progress.log(format!("warning: {full} is global: it cannot be scaled to 0 for the restore"))
                }
                _ => {}
            }
        }
    }
    for (_, full, _) in &stopped {
        progress.log(format!("scaling {full} to 0 for the restore"));
        crate::swarm::docker::scale(sh, full, 0)?;
    }
    for (_, full, _) in &stopped {
        wait_stopped(sh, full, timeout)?;
    }

    progress.log(format!(
        "restic restore {} of {}",
        &snapshot[..8.min(snapshot.len())],
        crate::words::count(evidence.volumes.iter().map(|v| v.paths.len()).sum::<usize>(), "path", "paths")
    ));
    let restored_result = restore_volumes(state, sh, &repo, &snapshot, &evidence.volumes);
    let since = crate::time::now_rfc3339();
    for (_, full, replicas) in &stopped {
        progress.log(format!("scaling {full} back to {replicas}"));
        crate::swarm::docker::scale(sh, full, *replicas)?;
    }
    restored_result?;
    if !stopped.is_empty() {
        crate::swarm::converge::wait(sh, &state.stack, limits, &since, progress)?;
    }
    run_hooks(sh, state, plan, Phase::RestorePost, progress, assertions, &mut evidence.hooks)?;
    let converged = crate::swarm::converge::wait(sh, &state.stack, limits, &since, progress)?;
    let stopped_names: Vec<String> = stopped.iter().map(|(s, _, _)| s.clone()).collect();
    finish(state, sh, assertions, evidence, &post_files, converged, &snapshot, &stopped_names)
}

/// After the restore and the convergence: the canaries, the post-backup files, the op's words.
#[allow(clippy::too_many_arguments)]
fn finish(
    state: &mut RunState,
    sh: &Shell,
    assertions: &mut Vec<Assertion>,
    evidence: &mut BackupEvidence,
    post_files: &[(String, std::path::PathBuf)],
    converged: crate::swarm::converge::Converged,
    snapshot: &str,
    stopped_names: &[String],
) -> Result<String> {
    let paths = evidence.volumes.iter().map(|v| v.paths.len()).sum::<usize>();
    let before = state.deployed.as_ref().and_then(|d| d.settle_from.clone());
    let mut deployed = crate::swarm::converge::observe_converged(sh, &state.stack, &converged);
    let statuses = converged.statuses;
    // The deployment changed only if its running tasks did: otherwise the settle window keeps
    // counting from the last change, and the tasks are still compared with the ones then.
    if let (Some(before), Some(now)) = (before, deployed.settle_from.as_ref())
        && crate::swarm::converge::same_running(&before, now)
    {
        deployed.settle_from = Some(before);
    }
    state.deployed = Some(deployed);
    assertions.push(note("converged after the restore", Outcome::Pass, &crate::swarm::converge::summary(&statuses)));

    assertions.push(canaries_back(sh, state, &evidence.volumes, &mut evidence.canaries));
    // restic restore never deletes: the post-backup files are still there. Recorded, then removed.
    let mut survived = vec![];
    for (volume, p) in post_files {
        if remove_in_volume(sh, state, &evidence.volumes, volume, p)? {
            survived.push(p.display().to_string());
        }
    }
    assertions.push(note(
        "files written after the backup",
        Outcome::Skip,
        &if survived.is_empty() {
            "none survived the restore".to_string()
        } else {
            format!(
                "{} survived, as restic's restore never deletes newer files; removed by ccci: {}",
                survived.len(),
                survived.join(", ")
            )
        },
    ));
    Ok(format!(
        "restored snapshot {} ({} paths){}",
        &snapshot[..8.min(snapshot.len())],
        paths,
        if stopped_names.is_empty() {
            String::new()
        } else {
            format!("; stopped during it: {}", stopped_names.join(", "))
        }
    ))
}

/// Polls until no container of `service` runs.
fn wait_stopped(sh: &Shell, service: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while crate::swarm::docker::running_container(sh, service)?.is_some() {
        if start.elapsed() > timeout {
            return Err(Error::failed(format!(
                "{service} still runs {} s after it was scaled to 0",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Restores snapshot `id` with the host's restic into a fresh staging directory of the run's
/// workspace (`<workspace>/backup/staging`, nothing the app controls), then copies each volume's
/// staged tree into the volume from a probe container that mounts the volume read-write and
/// the staged tree read-only: a symlink the app left where a restored directory goes is removed
/// first, and any other resolves inside the container, never on the host. The copy (busybox
/// `tar -p --numeric-owner`) keeps what restic restored: modes, owners, times, symlinks as
/// symlinks. Overwrites, deletes nothing else, like restic's own restore.
fn restore_volumes(
    state: &RunState,
    sh: &Shell,
    repo: &restic::Repo,
    id: &str,
    volumes: &[crate::run::state::VolumeEvidence],
) -> Result<()> {
    let staging = state.workspace.join("backup").join("staging");
    if staging.exists() {
        fs_err::remove_dir_all(&staging)?;
    }
    fs_err::create_dir_all(&staging)?;
    let paths: Vec<String> = volumes.iter().flat_map(|v| v.paths.iter()).map(|p| p.display().to_string()).collect();
    repo.restore(id, &staging, &paths)?;
    let script = r#"cd /s || exit 7
find . -type d | while IFS= read -r d; do if [ -L "/v/$d" ]; then rm -f "/v/$d" || exit 7; fi; done || exit 7
tar -C /s -cf - . | tar -C /v --numeric-owner -xpf - || exit 8"#;
    for v in volumes {
        let staged = staging.join(v.mountpoint.strip_prefix("/").unwrap_or(&v.mountpoint));
        if !staged.is_dir() {
            continue;
        }
        let (code, _) =
            crate::swarm::docker::volume_script(sh, &state.stack, &v.name, Some(&staged), script, &[], b"")?;
        if code != 0 {
            return Err(Error::env(format!(
                "copying the restored files of volume {} into it from {} failed (exit {code})",
                v.volume,
                staged.display()
            )));
        }
    }
    let _ = fs_err::remove_dir_all(&staging);
    Ok(())
}
