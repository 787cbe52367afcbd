//! `ccci-backup`: back the run's deployment up by the backupbot label contract
//! ([`crate::recipe::backup`]) and record the evidence that the backup holds the data, not restic's exit
//! code.
//!
//! The stack driver's engine, in order: the overlay's plant hooks (`overlays/<recipe>/backup/plant/`,
//! run-parts style, e.g. an application-level canary), the backup pre-hooks (`docker exec` into a
//! running task of their service, `sh -c`), a file canary (64 random bytes,
//! `ccci-canary-<run id>-<volume>`, written from a probe container that mounts the volume) in every
//! included volume directory that can hold one, `restic
//! backup` of the volumes' mountpoints (the labelled paths under them) into the run's own
//! repository (`<workspace>/backup/restic`, password by file), the post-hooks, then the evidence
//! from restic's JSON: exactly one new snapshot tagged with this run, at least one file from each
//! included volume, each canary's exact bytes (`restic dump`), every labelled path non-empty.

use std::path::{Path, PathBuf};

use xshell::Shell;

use crate::checks::backup::{
    CANARY_BYTES, abra_of, canary_names, evidence_repo, from_swarm, note, plant, run_abra, run_hooks, run_tags,
};
use crate::checks::discovery::Overlay;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::backup::{Phase, Plan};
use crate::run::state::{
    Assertion, BackupEvidence, Canary, DriverKind, OpName, OpTimer, Outcome, RunState, VolumeEvidence,
};
use crate::swarm::restic::{self, Repo};
use crate::swarm::volume::{within_volume, write_in_volume};

pub const HOLDER: &str = "ccci-backup";

/// Why backup (and so restore) has nothing to do, before the swarm is asked.
fn skip_reason(state: &RunState) -> Option<String> {
    match state.last_op(OpName::Deploy).map(|r| r.result) {
        Some(Outcome::Pass) => {}
        Some(r) => return Some(format!("deploy did not pass ({})", r.as_str())),
        None => return Some("the run has no deploy".into()),
    }
    match state.last_op(OpName::Install).map(|r| r.result) {
        Some(Outcome::Pass) | None => None,
        Some(r) => Some(format!("install failed ({})", r.as_str())),
    }
}

/// Runs the backup and records the `backup` op; returns its outcome.
pub fn run(state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    let timer = OpTimer::start(OpName::Backup);
    if let Some(v) = state.deploy_once_violation() {
        state.push_op(timer.finish(Outcome::Error, v, vec![]));
        return Outcome::Error;
    }
    if let Some(why) = skip_reason(state) {
        progress.log(format!("backup skipped: {why}"));
        state.push_op(timer.finish(Outcome::Skip, why, vec![]));
        return Outcome::Skip;
    }
    let mut assertions = vec![];
    let mut evidence = BackupEvidence { engine: state.driver.as_str().to_string(), ..Default::default() };
    let result = backup(state, sh, progress, &mut assertions, &mut evidence);
    let (outcome, detail) = match result {
        Ok(Some(done)) => {
            let outcome = crate::checks::run::combine(&assertions);
            (outcome, crate::checks::run::op_detail(&done, outcome, &assertions))
        }
        Ok(None) => {
            let why = assertions.pop().map(|a| a.detail).unwrap_or_default();
            progress.log(format!("backup skipped: {why}"));
            (Outcome::Skip, why)
        }
        Err(e) => {
            progress.log(format!("backup {}: {e}", Outcome::of(&e).as_str()));
            let outcome = Outcome::of(&e);
            let outcome =
                if crate::checks::run::combine(&assertions) == Outcome::Fail { Outcome::Fail } else { outcome };
            (outcome, e.to_string())
        }
    };
    let mut record = timer.finish(outcome, detail, assertions);
    if outcome != Outcome::Skip {
        record.backup = Some(evidence);
    }
    state.push_op(record);
    outcome
}

/// Ok(None): not backup-capable (the reason is the last assertion's detail).
fn backup(
    state: &RunState,
    sh: &Shell,
    progress: &Progress,
    assertions: &mut Vec<Assertion>,
    evidence: &mut BackupEvidence,
) -> Result<Option<String>> {
    let overlay = Overlay::load(&state.recipe)?;
    let swarm = from_swarm(sh, state, &overlay)?;
    let plan = &swarm.plan;
    if !plan.capable {
        assertions.push(note("backup-capable", Outcome::Skip, &plan.why));
        return Ok(None);
    }
    progress.log(format!("backup-capable: {}", plan.why));
    for i in &plan.ignored {
        progress.log(format!("warning: label not understood, ignored: {i}"));
    }
    if plan.included().next().is_none() {
        let excluded: Vec<String> =
            plan.volumes.iter().filter_map(|v| Some(format!("{} ({})", v.volume, v.excluded_by.as_ref()?))).collect();
        return Err(Error::failed(format!(
            "the backup would save nothing: {}",
            if excluded.is_empty() {
                "the stack mounts no volume".to_string()
            } else {
                format!("every volume is left out by label: {}", excluded.join(", "))
            }
        )));
    }
    let repo = evidence_repo(state)?;
    evidence.repository = repo.repository.clone();
    let abra = match state.driver {
        DriverKind::Stack => {
            repo.init_fresh()?;
            None
        }
        DriverKind::Abra => {
            let abra = abra_of(state)?;
            abra.probe_flags(sh, crate::swarm::abra::BACKUP_FLAGS)?;
            Some(abra)
        }
    };
    progress.log(format!("restic repository {} ({})", repo.repository.display(), repo.version()?));

    // The volumes' host directories and the paths under them that go into the snapshot.
    let mut volumes = vec![];
    for v in plan.included() {
        let name = swarm.volume_names.get(&v.volume).cloned().unwrap_or_else(|| v.volume.clone());
        let mountpoint = crate::swarm::docker::volume_mountpoint(sh, &name)?;
        let paths: Vec<PathBuf> = if v.paths.is_empty() {
            vec![mountpoint.clone()]
        } else {
            v.paths.iter().map(|p| mountpoint.join(p)).collect()
        };
        volumes.push(VolumeEvidence { volume: v.volume.clone(), name, mountpoint, paths, files: 0, bytes: 0 });
    }

    // Plant hooks of the overlay, then the recipe's pre-hooks.
    plant(state, &overlay, OpName::Backup, progress, assertions)?;
    if abra.is_none() {
        run_hooks(sh, state, plan, Phase::BackupPre, progress, assertions, &mut evidence.hooks)?;
    }

    // The app wrote the volumes: a labelled path must not lead the host out of its volume.
    for v in &volumes {
        for p in &v.paths {
            within_volume(&v.volume, &v.mountpoint, p)?;
        }
    }

    // File canaries, in every included directory a label names (or the volume root), written
    // through a probe container: a symlink the app swaps in meanwhile never reaches the host.
    for v in &volumes {
        for (n, dir) in v.paths.iter().filter(|p| p.is_dir()).enumerate() {
            let suffix = if n == 0 { String::new() } else { format!("-{n}") };
            let path = dir.join(format!("ccci-canary-{}-{}{suffix}", state.run_id, v.volume));
            let bytes = restic::random_bytes(CANARY_BYTES)?;
            write_in_volume(sh, state, &volumes, &v.volume, &path, &bytes, true)?;
            evidence.canaries.push(Canary {
                volume: v.volume.clone(),
                path,
                size: bytes.len() as u64,
                sha256: restic::sha256(&bytes),
                checked: None,
            });
        }
    }
    progress.log(format!("planted {} file canaries", evidence.canaries.len()));

    // backup-bot-two creates its repository on its first backup: none yet is none before.
    let before = if repo.repository.join("config").exists() { repo.snapshots()? } else { vec![] };
    let tags = run_tags(state);
    match &abra {
        None => {
            let existing: Vec<PathBuf> =
                volumes.iter().flat_map(|v| v.paths.iter()).filter(|p| p.exists()).cloned().collect();
            if existing.is_empty() {
                assertions.push(note(
                    "labelled paths non-empty",
                    Outcome::Fail,
                    &format!("nothing to back up: no path of the included volumes exists ({})", list_paths(&volumes)),
                ));
                return Err(Error::failed("nothing to back up: no included path exists after the pre-hooks"));
            }
            progress.log(format!("restic backup of {}", crate::words::count(existing.len(), "path", "paths")));
            let warnings = repo.backup(&tags, &existing)?;
            for w in warnings.lines().filter(|l| !l.trim().is_empty()) {
                progress.log(format!("restic: {w}"));
            }
            run_hooks(sh, state, plan, Phase::BackupPost, progress, assertions, &mut evidence.hooks)?;
        }
        Some(abra) => {
            let args = abra.backup_create_args(&state.domain);
            run_abra(sh, abra, &args, progress, assertions)?;
        }
    }

    // The evidence. A repository shared with other apps (backup-bot-two's) may gain their
    // snapshots meanwhile: only new snapshots of this stack count.
    let after = repo.snapshots()?;
    let new: Vec<&restic::Snapshot> = after
        .iter()
        .filter(|s| !before.iter().any(|b| b.id == s.id) && s.tags.contains(&state.stack.to_string()))
        .collect();
    let snapshot = match new.as_slice() {
        [one] if tags.iter().all(|t| one.tags.contains(t)) => {
            assertions.push(note(
                "one new snapshot tagged with this run",
                Outcome::Pass,
                &format!("snapshot {} tagged {}", one.short_id, tags.join(", ")),
            ));
            one.id.clone()
        }
        [one] => {
            assertions.push(note(
                "one new snapshot tagged with this run",
                Outcome::Fail,
                &format!("snapshot {} is tagged {}, not {}", one.short_id, one.tags.join(", "), tags.join(", ")),
            ));
            return Ok(Some("backed up, but the snapshot is not this run's".into()));
        }
        many => {
            assertions.push(note(
                "one new snapshot tagged with this run",
                Outcome::Fail,
                &format!("{} new snapshots appeared, expected exactly 1", many.len()),
            ));
            return Ok(Some("backed up, but not into exactly one snapshot".into()));
        }
    };
    evidence.snapshot = Some(snapshot.clone());
    let nodes = repo.ls(&snapshot)?;
    assertions.push(volumes_contributed(&mut volumes, &nodes));
    assertions.push(canaries_in_snapshot(&repo, &snapshot, &mut evidence.canaries)?);
    assertions.push(labelled_paths(plan, &volumes, &nodes));
    let summary = volumes
        .iter()
        .map(|v| {
            format!(
                "{} {}, {}",
                v.volume,
                crate::words::count(v.files as usize, "file", "files"),
                crate::words::count(v.bytes as usize, "byte", "bytes")
            )
        })
        .collect::<Vec<_>>();
    evidence.volumes = volumes;
    Ok(Some(format!("snapshot {}: {}", &snapshot[..8.min(snapshot.len())], summary.join("; "))))
}

fn list_paths(volumes: &[VolumeEvidence]) -> String {
    volumes.iter().flat_map(|v| v.paths.iter()).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Counts each volume's files and bytes in the snapshot; every included volume must have given
/// at least one file.
fn volumes_contributed(volumes: &mut [VolumeEvidence], nodes: &[restic::Node]) -> Assertion {
    let mut empty = vec![];
    for v in volumes.iter_mut() {
        let files: Vec<&restic::Node> = nodes
            .iter()
            .filter(|n| n.kind == "file" && v.paths.iter().any(|p| Path::new(&n.path).starts_with(p)))
            .collect();
        v.files = files.len() as u64;
        v.bytes = files.iter().map(|n| n.size).sum();
        if v.files == 0 {
            empty.push(format!(
                "{} ({})",
                v.volume,
                v.paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let counts = volumes
        .iter()
        .map(|v| {
            format!(
                "{}: {}, {}",
                v.volume,
                crate::words::count(v.files as usize, "file", "files"),
                crate::words::count(v.bytes as usize, "byte", "bytes")
            )
        })
        .collect::<Vec<_>>();
    if empty.is_empty() {
        note("every included volume contributed files", Outcome::Pass, &counts.join("; "))
    } else {
        note(
            "every included volume contributed files",
            Outcome::Fail,
            &format!("no file in the snapshot from {}; {}", empty.join(", "), counts.join("; ")),
        )
    }
}

fn canaries_in_snapshot(repo: &Repo, snapshot: &str, canaries: &mut [Canary]) -> Result<Assertion> {
    if canaries.is_empty() {
        return Ok(note(
            "canaries in the snapshot",
            Outcome::Skip,
            "no file canary: every included path is a file (the app-level canary and the dump checks stand in)",
        ));
    }
    let mut bad = vec![];
    for c in canaries.iter_mut() {
        let ok = match repo.dump(snapshot, &c.path)? {
            Some(bytes) if restic::sha256(&bytes) == c.sha256 => true,
            Some(bytes) => {
                bad.push(format!(
                    "{} has other bytes ({} bytes, {})",
                    c.path.display(),
                    bytes.len(),
                    restic::sha256(&bytes)
                ));
                false
            }
            None => {
                bad.push(format!("{} is not in the snapshot", c.path.display()));
                false
            }
        };
        c.checked = Some(if ok { Outcome::Pass } else { Outcome::Fail });
    }
    Ok(if bad.is_empty() {
        note(
            "canaries in the snapshot",
            Outcome::Pass,
            &format!(
                "{} with their exact bytes: {}",
                crate::words::count(canaries.len(), "canary", "canaries"),
                canary_names(canaries)
            ),
        )
    } else {
        note("canaries in the snapshot", Outcome::Fail, &bad.join("; "))
    })
}

/// Every path a `.path` label names is in the snapshot and non-empty: a file of at least one
/// byte, or a directory with at least one file besides ccci's canaries.
fn labelled_paths(plan: &Plan, volumes: &[VolumeEvidence], nodes: &[restic::Node]) -> Assertion {
    let mut checked = vec![];
    let mut bad = vec![];
    for v in volumes {
        let Some(vp) = plan.volumes.iter().find(|p| p.volume == v.volume).filter(|p| p.labelled) else { continue };
        for p in &v.paths {
            let label = format!("{}:{}", vp.volume, p.strip_prefix(&v.mountpoint).unwrap_or(p).display());
            let node = nodes.iter().find(|n| Path::new(&n.path) == p.as_path());
            match node {
                None => bad.push(format!("{label} ({}) is not in the snapshot: the path does not exist", p.display())),
                Some(n) if n.kind == "file" && n.size == 0 => bad.push(format!("{label} is an empty file")),
                Some(n) if n.kind == "file" => checked.push(format!("{label} {} bytes", n.size)),
                Some(_) => {
                    let files = nodes
                        .iter()
                        .filter(|n| n.kind == "file" && Path::new(&n.path).starts_with(p))
                        .filter(|n| !n.path.rsplit('/').next().unwrap_or("").starts_with("ccci-canary-"))
                        .count();
                    if files == 0 {
                        bad.push(format!("{label} holds no file but ccci's canary"));
                    } else {
                        checked.push(format!("{label} {files} files"));
                    }
                }
            }
        }
    }
    match (checked.is_empty(), bad.is_empty()) {
        (true, true) => note("labelled paths non-empty", Outcome::Skip, "no path label: whole volumes were backed up"),
        (_, true) => note("labelled paths non-empty", Outcome::Pass, &checked.join("; ")),
        _ => note("labelled paths non-empty", Outcome::Fail, &bad.join("; ")),
    }
}
