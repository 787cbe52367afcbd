//! `ccci-assert OP`: the checks of one op on the deployment as the op left it. Three sources, in
//! order: the generic floor ([`generic`], unless opted out), cc-ci's
//! overlay checks (`overlays/<recipe>/<op>/`) and the recipe's own `tests/<op>/` at the PR head
//! (run only for recipes in the allowlist; otherwise listed as not approved). ccci-assert never
//! performs an op.

use std::path::{Path, PathBuf};
use std::time::Duration;

use xshell::Shell;

use crate::checks::discovery::{self, Overlay};
use crate::checks::exec;
use crate::checks::generic::{self, Floor};
use crate::checks::run::{Env, combine, run_one, summary};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::trust::Allowlist;
use crate::run::state::{Assertion, OpName, OpTimer, Outcome, RunState};

pub const HOLDER: &str = "ccci-assert";

/// The ops ccci-assert checks. `custom` is not a lifecycle op: its checks (an SSO login, an API
/// call) run on the deployment as the earlier tiers left it.
pub const TIERS: [OpName; 5] = OpName::TIERS;

/// The op a tier's checks are recorded as. Install and custom have no op of their own, so
/// their checks are the op; later tiers have one (ccci-upgrade records `upgrade`), so their
/// checks are `assert <tier>`.
pub fn op_name(tier: &OpName) -> OpName {
    tier.assert_op()
}

/// Everything ccci-assert reads from its environment, checked before the run-state is touched.
#[derive(Debug, Clone)]
pub struct Setup {
    tier: OpName,
    floor: Floor,
    allowlist: Allowlist,
    check_timeout: Duration,
    /// Who opted out of the generic checks through the environment, if anyone.
    skip_generic: Option<String>,
}

/// Reads and checks the settings for `tier`; a malformed one is bad input.
pub fn prepare(tier: &str) -> Result<Setup> {
    let Some(tier) = OpName::tier(tier) else {
        let tiers: Vec<&str> = TIERS.iter().map(OpName::as_str).collect();
        return Err(Error::bad_input(format!("unknown OP {tier:?}: expected one of {}", tiers.join(", "))));
    };
    discovery::overlays_root()?;
    let skip_generic = crate::config::skip_generic(tier.as_str())?.map(|asked| format!("{asked} in the environment"));
    Ok(Setup {
        tier,
        floor: Floor::from_env(&[])?,
        allowlist: Allowlist::load()?,
        check_timeout: exec::timeout_setting()?,
        skip_generic,
    })
}

/// Runs the tier's checks and records them as one op; returns its outcome.
pub fn run(setup: &Setup, state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    let tier = &setup.tier;
    let op = op_name(tier);
    let timer = OpTimer::start(op.clone());
    if let Some(v) = state.deploy_once_violation() {
        progress.log(&v);
        state.push_op(timer.finish(Outcome::Error, v, vec![]));
        return Outcome::Error;
    }
    if let Some(why) = skip_reason(tier, state) {
        progress.log(format!("{op} skipped: {why}"));
        state.push_op(timer.finish(Outcome::Skip, format!("skipped: {why}"), vec![]));
        return Outcome::Skip;
    }
    // Which entry approves the repository now (the allowlist may have changed since the deploy).
    state.source.approved_by = setup.allowlist.approval(state.source.identity().as_ref());
    let overlay = match Overlay::load(&state.recipe) {
        Ok(o) => o,
        Err(e) => {
            let detail = format!("reading the recipe's overlay: {e}");
            progress.log(&detail);
            state.push_op(timer.finish(Outcome::Error, detail, vec![]));
            return Outcome::Error;
        }
    };

    let mut assertions = vec![];
    // The upgrade's own proof is not a generic check: no opt-out removes it.
    if *tier == OpName::Upgrade {
        assertions.push(moved_evidence(state));
    }
    // Likewise the backup's and the restore's evidence, read again here.
    if *tier == OpName::Backup {
        assertions.extend(backup_evidence(state));
    }
    if *tier == OpName::Restore {
        assertions.push(restore_evidence(state, sh));
    }
    let by_setting =
        overlay.settings.skips_generic(tier.as_str()).then(|| format!("SKIP_GENERIC in {}", overlay.settings.origin));
    let mut settle = None;
    match setup.skip_generic.clone().or(by_setting) {
        Some(who) => {
            progress.log(format!("generic checks skipped: {who}"));
            assertions.push(Assertion {
                name: "generic checks".into(),
                result: Outcome::Skip,
                detail: format!("skipped: opted out by {who}"),
                duration_ms: 0,
                output: None,
            });
        }
        None => {
            let floor = Floor {
                policy: crate::checks::serving::StatusPolicy { also_accept: overlay.settings.accept_status.clone() },
                ..setup.floor.clone()
            };
            // The settle watch runs beside every other check of the op; its verdict goes after
            // the replicas'.
            settle = Some((generic::Settle::start(state, floor.settle, progress), assertions.len() + 1));
            assertions.extend(generic::assertions(&floor, state, sh, progress));
        }
    }
    assertions.extend(run_checks(setup, state, &overlay, sh, progress));
    if *tier == OpName::Upgrade {
        assertions.push(upgrade_canaries(state, sh));
    }
    if let Some((watch, at)) = settle {
        let settled = watch.finish();
        progress.log(format!("{}: {}: {}", settled.name, settled.result.as_str(), settled.detail));
        assertions.insert(at.min(assertions.len()), settled);
    }

    let outcome = combine(&assertions);
    if *tier == OpName::Install && outcome == Outcome::Pass {
        plant_upgrade_canaries(state, sh, progress);
    }
    state.push_op(timer.finish(outcome, summary(&assertions), assertions));
    outcome
}

/// Why a tier has nothing to check: its op did not happen, or the run is dead.
fn skip_reason(tier: &OpName, state: &RunState) -> Option<String> {
    let result = |op: OpName| state.last_op(op).map(|r| r.result);
    match result(OpName::Deploy) {
        Some(Outcome::Pass) => {}
        Some(r) => return Some(format!("deploy did not pass ({})", r.as_str())),
        None => return Some("the run has no deploy".into()),
    }
    if *tier == OpName::Install {
        return None;
    }
    if let Some(r) = result(OpName::Install).filter(|r| *r != Outcome::Pass) {
        return Some(format!("install failed ({})", r.as_str()));
    }
    if *tier == OpName::Custom {
        return None;
    }
    match state.last_op(tier.clone()) {
        None => Some(format!("{tier} did not run")),
        Some(r) if r.result == Outcome::Skip => {
            Some(format!("{tier} was skipped: {}", r.detail.strip_prefix("skipped: ").unwrap_or(&r.detail)))
        }
        Some(r) if r.result != Outcome::Pass => Some(format!("{tier} did not pass ({})", r.result.as_str())),
        Some(_) => None,
    }
}

/// The upgrade op's verdict on whether the deployment moved to the head.
fn moved_evidence(state: &RunState) -> Assertion {
    let found =
        state.last_op(OpName::Upgrade).and_then(|r| r.assertions.iter().find(|a| a.name == "moved to the head"));
    match found {
        Some(a) => Assertion { name: "moved to the head".into(), ..a.clone() },
        None => Assertion {
            name: "moved to the head".into(),
            result: Outcome::Error,
            detail: "the upgrade op recorded no evidence".into(),
            duration_ms: 0,
            output: None,
        },
    }
}

/// The backup's evidence, read again from the repository independently of what the op said:
/// the recorded snapshot is there, tagged with this run, and holds every canary's exact bytes.
fn backup_evidence(state: &RunState) -> Vec<Assertion> {
    let name = "backup evidence";
    let err = |result, detail: String| vec![crate::checks::backup::note(name, result, &detail)];
    let Some(ev) = state.last_op(OpName::Backup).and_then(|r| r.backup.clone()) else {
        return err(Outcome::Error, "the backup op recorded no evidence".into());
    };
    let Some(snapshot) = ev.snapshot.clone() else {
        return err(Outcome::Fail, "the backup op recorded no snapshot".into());
    };
    let repo = match crate::checks::backup::evidence_repo(state) {
        Ok(r) => crate::swarm::restic::Repo { repository: ev.repository.clone(), ..r },
        Err(e) => return err(Outcome::Error, e.to_string()),
    };
    let check = || -> crate::Result<(Outcome, String)> {
        let tags = crate::checks::backup::run_tags(state);
        let Some(s) = repo.snapshots()?.into_iter().find(|s| s.id == snapshot) else {
            return Ok((Outcome::Fail, format!("snapshot {snapshot} is not in {}", ev.repository.display())));
        };
        if !tags.iter().all(|t| s.tags.contains(t)) {
            return Ok((
                Outcome::Fail,
                format!("snapshot {} is tagged {}, not {}", s.short_id, s.tags.join(", "), tags.join(", ")),
            ));
        }
        let mut bad = vec![];
        for c in &ev.canaries {
            match repo.dump(&snapshot, &c.path)? {
                Some(b) if crate::swarm::restic::sha256(&b) == c.sha256 => {}
                Some(_) => bad.push(format!("{} has other bytes in the snapshot", c.path.display())),
                None => bad.push(format!("{} is not in the snapshot", c.path.display())),
            }
        }
        let empty: Vec<&str> = ev.volumes.iter().filter(|v| v.files == 0).map(|v| v.volume.as_str()).collect();
        if !empty.is_empty() {
            bad.push(format!("no file from volume {}", empty.join(", ")));
        }
        Ok(if bad.is_empty() {
            (
                Outcome::Pass,
                format!(
                    "snapshot {} tagged with this run holds {} with their exact bytes and files from {}",
                    s.short_id,
                    crate::words::count(ev.canaries.len(), "canary", "canaries"),
                    crate::words::count(ev.volumes.len(), "volume", "volumes")
                ),
            )
        } else {
            (Outcome::Fail, bad.join("; "))
        })
    };
    match check() {
        Ok((result, detail)) => err(result, detail),
        Err(e) => err(Outcome::Error, e.to_string()),
    }
}

/// Before an upgrade: a canary of random bytes at the root of each named volume of the stack,
/// recorded in the upgrade plan. Nothing is planted when no upgrade is planned; a volume that
/// cannot be written is logged and left without one (the upgrade's check then says so).
fn plant_upgrade_canaries(state: &mut RunState, sh: &Shell, progress: &Progress) {
    let run_id = state.run_id.clone();
    let stack = state.stack.clone();
    let Some(plan) = state.upgrade.as_mut().filter(|p| p.base.is_some() && p.base_failure.is_none()) else { return };
    let mut names: Vec<String> = match crate::swarm::docker::services_with_mounts(sh, &stack) {
        Ok(services) => services.into_iter().flat_map(|(_, m)| m.into_iter().map(|m| m.source)).collect(),
        Err(e) => {
            progress.log(format!("warning: no upgrade canaries: {e}"));
            return;
        }
    };
    names.sort();
    names.dedup();
    plan.canaries.clear();
    for name in names {
        // Through docker, not the host's volume directory: ccci's user need not be root.
        let file = format!("ccci-upgrade-canary-{run_id}");
        let planted = crate::swarm::docker::volume_mountpoint(sh, &name).and_then(|dir| {
            let path = dir.join(&file);
            let bytes = crate::swarm::restic::random_bytes(crate::checks::backup::CANARY_BYTES)?;
            crate::swarm::docker::write_in_volume(sh, &stack, &name, &file, &bytes)?;
            Ok(crate::run::state::Canary {
                volume: name.strip_prefix(&stack.prefix()).unwrap_or(&name).to_string(),
                path,
                size: bytes.len() as u64,
                sha256: crate::swarm::restic::sha256(&bytes),
                checked: None,
            })
        });
        match planted {
            Ok(c) => plan.canaries.push(c),
            Err(e) => progress.log(format!("warning: no upgrade canary in volume {name}: {e}")),
        }
    }
    if !plan.canaries.is_empty() {
        progress.log(format!("planted {} upgrade canaries", plan.canaries.len()));
    }
}

/// The canaries planted before the upgrade still hold their bytes: the upgrade kept the data.
fn upgrade_canaries(state: &RunState, sh: &Shell) -> Assertion {
    let name = "volume data kept by the upgrade";
    let canaries = state.upgrade.as_ref().map(|p| p.canaries.clone()).unwrap_or_default();
    if canaries.is_empty() {
        return crate::checks::backup::note(
            name,
            Outcome::Skip,
            "no canary was planted before the upgrade: the stack has no named volume, or none could be written (see the install stage's log)",
        );
    }
    // A volume the head no longer mounts (dropped, renamed) keeps its files on disk but not in
    // the app: that is data lost too.
    let mounted: Vec<String> = match crate::swarm::docker::services_with_mounts(sh, &state.stack) {
        Ok(services) => services.into_iter().flat_map(|(_, m)| m.into_iter().map(|m| m.source)).collect(),
        Err(e) => return crate::checks::backup::note(name, Outcome::Error, &e.to_string()),
    };
    let prefix = state.stack.prefix();
    let mut bad = vec![];
    for c in &canaries {
        let full = if mounted.contains(&c.volume) { c.volume.clone() } else { format!("{prefix}{}", c.volume) };
        if !mounted.contains(&full) {
            bad.push(format!(
                "volume {} is no longer mounted by any service (dropped or renamed by the head)",
                c.volume
            ));
            continue;
        }
        let file = c.path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        match crate::swarm::docker::read_in_volume(sh, &state.stack, &full, &file) {
            Ok(Some(b)) if crate::swarm::restic::sha256(&b) == c.sha256 => {}
            Ok(Some(_)) => bad.push(format!("volume {}: {} holds other bytes", c.volume, c.path.display())),
            Ok(None) => bad.push(format!("volume {}: {} is gone", c.volume, c.path.display())),
            Err(e) => return crate::checks::backup::note(name, Outcome::Error, &e.to_string()),
        }
    }
    let volumes: Vec<&str> = canaries.iter().map(|c| c.volume.as_str()).collect();
    if bad.is_empty() {
        crate::checks::backup::note(
            name,
            Outcome::Pass,
            &format!("the canary planted before the upgrade is intact in {}", volumes.join(", ")),
        )
    } else {
        crate::checks::backup::note(name, Outcome::Fail, &format!("the upgrade lost data: {}", bad.join("; ")))
    }
}

/// Every canary of the backup holds its planted bytes again, read from the volumes now.
fn restore_evidence(state: &RunState, sh: &Shell) -> Assertion {
    match state.last_op(OpName::Restore).and_then(|r| r.backup.clone()) {
        Some(mut ev) => crate::checks::backup::canaries_back(sh, state, &ev.volumes, &mut ev.canaries),
        None => crate::checks::backup::note("canaries restored", Outcome::Error, "the restore op recorded no evidence"),
    }
}

/// The overlay's and the recipe's own checks for the tier, each run (or not) and recorded.
fn run_checks(setup: &Setup, state: &RunState, overlay: &Overlay, sh: &Shell, progress: &Progress) -> Vec<Assertion> {
    let tier = setup.tier.as_str();
    // A refusal of the recipe's tree is the recipe's `fail`; anything else an `error`.
    let error = |name: String, e: Error| Assertion {
        name,
        result: Outcome::of(&e),
        detail: e.to_string(),
        duration_ms: 0,
        output: None,
    };
    // ccci-assert writes only inside the run's workspace, which the stage checked is the one
    // the registry derives (`RunState::check_installation`).
    let scratch = state.workspace.join("checks").join(tier);
    let mut found = vec![];
    let mut out = vec![];
    match overlay.checks(tier) {
        Ok(f) => found.extend(f),
        Err(e) => out.push(error(format!("overlays/{}/{tier}", state.recipe), e)),
    }
    match export_head(state, sh, &scratch) {
        Ok(Some(head)) => match discovery::repo_checks(&head, tier) {
            Ok(f) => found.extend(f),
            Err(e) => out.push(error(format!("tests/{tier}"), e)),
        },
        Ok(None) => {}
        Err(e) => out.push(error(format!("tests/{tier}"), e)),
    }
    let env = Env { state, op: tier, scratch: &scratch, extra: vec![] };
    for (n, f) in found.iter().enumerate() {
        out.push(run_one(f, n + 1, &env, &setup.allowlist, setup.check_timeout, progress));
    }
    out
}

/// Exports the recipe's tree at the PR head commit into `<scratch>/head`, where its `tests/` is
/// looked up: what the run's checkout holds now (a base release, after abra moved it) does not
/// matter. None when the run has no head commit yet.
fn export_head(state: &RunState, sh: &Shell, scratch: &Path) -> Result<Option<PathBuf>> {
    let Some(commit) = &state.source.commit else { return Ok(None) };
    let repo = crate::swarm::driver::for_run(state.driver, &state.workspace, &state.recipe)?.recipe_dir();
    if scratch.exists() {
        fs_err::remove_dir_all(scratch)?;
    }
    let dest = scratch.join("head");
    Ok(crate::recipe::git::export_subtree(sh, &repo, commit, "", &dest)?.then_some(dest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_named_for_their_tier() {
        assert_eq!(op_name(&OpName::Install).as_str(), "install");
        assert_eq!(op_name(&OpName::Custom).as_str(), "custom");
        assert_eq!(op_name(&OpName::Upgrade).as_str(), "assert upgrade");
        assert_eq!(op_name(&OpName::Backup).as_str(), "assert backup");
    }

    fn with_ops(ops: &[(&str, Outcome)]) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deploys = 1;
        s.ops = ops.iter().map(|(op, r)| OpTimer::start((*op).into()).finish(*r, "d", vec![])).collect();
        s
    }

    #[test]
    fn later_tiers_skip_when_install_failed_and_custom_runs_after_a_failed_upgrade() {
        use Outcome::*;
        let s = with_ops(&[("deploy", Pass), ("install", Fail)]);
        for tier in ["upgrade", "backup", "restore", "custom"] {
            assert_eq!(skip_reason(&tier.into(), &s).as_deref(), Some("install failed (fail)"), "{tier}");
        }
        let s = with_ops(&[("deploy", Pass), ("install", Pass), ("upgrade", Fail)]);
        assert_eq!(skip_reason(&"upgrade".into(), &s).as_deref(), Some("upgrade did not pass (fail)"));
        assert_eq!(skip_reason(&"custom".into(), &s), None, "custom is independent of the upgrade");
        assert_eq!(skip_reason(&"backup".into(), &s).as_deref(), Some("backup did not run"));
        let s = with_ops(&[("deploy", Error)]);
        assert_eq!(skip_reason(&"install".into(), &s).as_deref(), Some("deploy did not pass (error)"));
    }
}
