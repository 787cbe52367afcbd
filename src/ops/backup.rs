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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xshell::Shell;

use crate::checks::discovery::Overlay;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::backup::{self, Hook, Override, Phase, Plan, ServiceInput};
use crate::run::state::{
    Assertion, BackupEvidence, Canary, DriverKind, HookRun, OpName, OpTimer, Outcome, RunState, VolumeEvidence,
};
use crate::swarm::restic::{self, Repo};

pub const HOLDER: &str = "ccci-backup";

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
            progress.log(format!("restic backup of {} paths", existing.len()));
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
    let summary =
        volumes.iter().map(|v| format!("{} {} files, {} bytes", v.volume, v.files, v.bytes)).collect::<Vec<_>>();
    evidence.volumes = volumes;
    Ok(Some(format!("snapshot {}: {}", &snapshot[..8.min(snapshot.len())], summary.join("; "))))
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

fn list_paths(volumes: &[VolumeEvidence]) -> String {
    volumes.iter().flat_map(|v| v.paths.iter()).map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

pub(crate) fn note(name: &str, result: Outcome, detail: &str) -> Assertion {
    Assertion { name: name.into(), result, detail: detail.into(), duration_ms: 0, output: None }
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
    let counts =
        volumes.iter().map(|v| format!("{}: {} files, {} bytes", v.volume, v.files, v.bytes)).collect::<Vec<_>>();
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
            &format!("{} canaries with their exact bytes: {}", canaries.len(), canary_names(canaries)),
        )
    } else {
        note("canaries in the snapshot", Outcome::Fail, &bad.join("; "))
    })
}

/// Fails (the recipe's fault) when `path`, under the volume's host directory `mountpoint`,
/// resolves outside it: the app owns what is in its volumes, and a symlink there (`dump ->
/// /etc`) would make the host read or write its own files. A path that does not exist is fine.
pub(crate) fn within_volume(volume: &str, mountpoint: &Path, path: &Path) -> Result<()> {
    let root = fs_err::canonicalize(mountpoint)?;
    match std::fs::canonicalize(path) {
        Ok(real) if !real.starts_with(&root) => Err(Error::failed(format!(
            "volume {volume}: {} resolves to {}, outside the volume (a symlink the app wrote): refused, not followed",
            path.display(),
            real.display()
        ))),
        _ => Ok(()),
    }
}

/// Where the host path `path` (under the mountpoint of the backed-up volume `volume`, a compose
/// key) is: the volume's swarm name and the path relative to the volume's root. Errors
/// (environment) when the evidence has no such volume or the path is not under it.
pub(crate) fn in_volume<'a>(volumes: &'a [VolumeEvidence], volume: &str, path: &Path) -> Result<(&'a str, String)> {
    let v = volumes
        .iter()
        .find(|v| v.volume == volume)
        .ok_or_else(|| Error::env(format!("the backup evidence has no volume {volume} (for {})", path.display())))?;
    let rel = path.strip_prefix(&v.mountpoint).map_err(|_| {
        Error::env(format!("{} is not under volume {volume}'s directory {}", path.display(), v.mountpoint.display()))
    })?;
    Ok((v.name.as_str(), rel.display().to_string()))
}

/// Writes `bytes` to the file `path` (a host path under the mountpoint of `volume`) from a
/// probe container that mounts the volume ([`crate::swarm::docker::volume_script`]): a symlink the app
/// put anywhere on the way resolves inside that container, never on the host. A new file when
/// `new`, else an existing regular file; a symlink or other file in the way is the recipe's
/// failure.
pub(crate) fn write_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
    bytes: &[u8],
    new: bool,
) -> Result<()> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"
[ -L "$f" ] && exit 5
if [ "$2" = new ]; then [ -e "$f" ] && exit 4; else [ -f "$f" ] || exit 6; fi
cat > "$f" || exit 7"#;
    let (code, _) = crate::swarm::docker::volume_script(
        sh,
        &state.stack,
        name,
        None,
        script,
        &[&rel, if new { "new" } else { "existing" }],
        bytes,
    )?;
    let refused = |why: &str| {
        Error::failed(format!("volume {volume}: {} {why}: refused, not followed or replaced", path.display()))
    };
    match code {
        0 => Ok(()),
        5 => Err(refused("is a symlink the app wrote")),
        4 => Err(refused("already exists (the app wrote it)")),
        6 => Err(refused("is not a regular file")),
        _ => Err(Error::failed(format!(
            "volume {volume}: {} could not be written (its directory is gone or not a directory)",
            path.display()
        ))),
    }
}

/// The bytes of the regular file `path` in a volume, read through a probe container like
/// [`write_in_volume`] writes; `None` when there is none (a symlink there counts as none).
pub(crate) fn read_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
) -> Result<Option<Vec<u8>>> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"; [ -L "$f" ] && exit 3; [ -f "$f" ] || exit 3; cat "$f" || exit 7"#;
    match crate::swarm::docker::volume_script(sh, &state.stack, name, None, script, &[&rel], b"")? {
        (0, out) => Ok(Some(out)),
        (3, _) => Ok(None),
        (code, _) => Err(Error::env(format!("reading {} in volume {volume}: exit {code}", path.display()))),
    }
}

/// Removes `path` from a volume through a probe container (never following a symlink there);
/// true when something was there.
pub(crate) fn remove_in_volume(
    sh: &Shell,
    state: &RunState,
    volumes: &[VolumeEvidence],
    volume: &str,
    path: &Path,
) -> Result<bool> {
    let (name, rel) = in_volume(volumes, volume, path)?;
    let script = r#"f="/v/$1"; if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f" || exit 7; exit 0; fi; exit 3"#;
    match crate::swarm::docker::volume_script(sh, &state.stack, name, None, script, &[&rel], b"")? {
        (0, _) => Ok(true),
        (3, _) => Ok(false),
        (code, _) => Err(Error::env(format!("removing {} in volume {volume}: exit {code}", path.display()))),
    }
}

pub(crate) fn canary_names(canaries: &[Canary]) -> String {
    canaries.iter().map(|c| c.path.display().to_string()).collect::<Vec<_>>().join(", ")
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
