//! `ccci-assert OP`: the checks of one op on the deployment as the op left it. Three sources, in
//! order: the generic floor ([`generic`](crate::checks::generic), unless opted out), cc-ci's
//! overlay checks (`overlays/<recipe>/<op>/`) and the recipe's own `tests/<op>/` at the PR head
//! (run only for recipes in the allowlist; otherwise listed as not approved). ccci-assert never
//! performs an op.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use xshell::Shell;

use crate::checks::discovery::{self, Found, Origin, Overlay};
use crate::checks::exec;
use crate::checks::generic::{self, Floor};
use crate::config::given;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::trust::{self, Allowlist};
use crate::run::state::{Assertion, OpName, OpTimer, Outcome, RunState};

pub const HOLDER: &str = "ccci-assert";

/// The ops ccci-assert checks. `custom` is not a lifecycle op: its checks (an SSO login, an API
/// call) run on the deployment as the earlier tiers left it.
pub const TIERS: [OpName; 5] = OpName::TIERS;

/// The outcome of a set of assertions: any error wins, then any failure; all skipped is a skip.
pub fn combine(assertions: &[Assertion]) -> Outcome {
    if assertions.iter().any(|a| a.result == Outcome::Error) {
        Outcome::Error
    } else if assertions.iter().any(|a| a.result == Outcome::Fail) {
        Outcome::Fail
    } else if !assertions.is_empty() && assertions.iter().all(|a| a.result == Outcome::Skip) {
        Outcome::Skip
    } else {
        Outcome::Pass
    }
}

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
        return Err(Error::bad_input(format!("unknown tier {tier:?}: expected one of {}", tiers.join(", "))));
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

/// One line for the op. When an assertion failed or errored the line starts by saying so
/// ("1 of 7 assertions failed: serving: …"), so it never reads as a success; skips and warnings
/// follow. Otherwise: the skips and warnings, or how many passed.
pub fn summary(assertions: &[Assertion]) -> String {
    let note = |a: &Assertion| format!("{}: {}", a.name, a.detail);
    let count = |o: Outcome| assertions.iter().filter(|a| a.result == o).count();
    let bad: Vec<String> =
        assertions.iter().filter(|a| matches!(a.result, Outcome::Fail | Outcome::Error)).map(note).collect();
    let notes: Vec<String> = assertions
        .iter()
        .filter(|a| a.result == Outcome::Skip || a.result == Outcome::Pass && a.detail.starts_with("warning:"))
        .map(note)
        .collect();
    if bad.is_empty() {
        return if notes.is_empty() { format!("{} assertions passed", assertions.len()) } else { notes.join("; ") };
    }
    let (fails, errors) = (count(Outcome::Fail), count(Outcome::Error));
    let how = match (fails, errors) {
        (_, 0) => "failed".to_string(),
        (0, _) => "errored".to_string(),
        (f, e) => format!("did not pass ({f} failed, {e} errored)"),
    };
    let mut out = format!("{} of {} assertions {how}: {}", bad.len(), assertions.len(), bad.join("; "));
    if !notes.is_empty() {
        out.push_str(&format!("; besides: {}", notes.join("; ")));
    }
    out
}

/// The detail of an op that did its work (`done`, e.g. "redeployed in place to 1a2b3c4d") and
/// then judged it with `assertions`: `done` alone when they passed, else `done` followed by what
/// did not pass, so an op's own words never sound like success when an assertion failed.
pub fn op_detail(done: &str, outcome: Outcome, assertions: &[Assertion]) -> String {
    match outcome {
        Outcome::Pass | Outcome::Skip => done.to_string(),
        Outcome::Fail | Outcome::Error => format!("{done}, but {}", summary(assertions)),
    }
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
    let err = |result, detail: String| vec![crate::ops::backup::note(name, result, &detail)];
    let Some(ev) = state.last_op(OpName::Backup).and_then(|r| r.backup.clone()) else {
        return err(Outcome::Error, "the backup op recorded no evidence".into());
    };
    let Some(snapshot) = ev.snapshot.clone() else {
        return err(Outcome::Fail, "the backup op recorded no snapshot".into());
    };
    let repo = match crate::ops::backup::evidence_repo(state) {
        Ok(r) => crate::swarm::restic::Repo { repository: ev.repository.clone(), ..r },
        Err(e) => return err(Outcome::Error, e.to_string()),
    };
    let check = || -> crate::Result<(Outcome, String)> {
        let tags = crate::ops::backup::run_tags(state);
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
                    "snapshot {} tagged with this run holds {} canaries with their exact bytes and files from {} volumes",
                    s.short_id,
                    ev.canaries.len(),
                    ev.volumes.len()
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
            let bytes = crate::swarm::restic::random_bytes(crate::ops::backup::CANARY_BYTES)?;
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
        return crate::ops::backup::note(
            name,
            Outcome::Skip,
            "no canary was planted before the upgrade: the stack has no named volume, or none could be written (see the install stage's log)",
        );
    }
    // A volume the head no longer mounts (dropped, renamed) keeps its files on disk but not in
    // the app: that is data lost too.
    let mounted: Vec<String> = match crate::swarm::docker::services_with_mounts(sh, &state.stack) {
        Ok(services) => services.into_iter().flat_map(|(_, m)| m.into_iter().map(|m| m.source)).collect(),
        Err(e) => return crate::ops::backup::note(name, Outcome::Error, &e.to_string()),
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
            Err(e) => return crate::ops::backup::note(name, Outcome::Error, &e.to_string()),
        }
    }
    let volumes: Vec<&str> = canaries.iter().map(|c| c.volume.as_str()).collect();
    if bad.is_empty() {
        crate::ops::backup::note(
            name,
            Outcome::Pass,
            &format!("the canary planted before the upgrade is intact in {}", volumes.join(", ")),
        )
    } else {
        crate::ops::backup::note(name, Outcome::Fail, &format!("the upgrade lost data: {}", bad.join("; ")))
    }
}

/// Every canary of the backup holds its planted bytes again, read from the volumes now.
fn restore_evidence(state: &RunState, sh: &Shell) -> Assertion {
    match state.last_op(OpName::Restore).and_then(|r| r.backup.clone()) {
        Some(mut ev) => crate::ops::restore::canaries_back(sh, state, &ev.volumes, &mut ev.canaries),
        None => crate::ops::backup::note("canaries restored", Outcome::Error, "the restore op recorded no evidence"),
    }
}

/// The overlay's and the recipe's own checks for the tier, each run (or not) and recorded.
fn run_checks(setup: &Setup, state: &RunState, overlay: &Overlay, sh: &Shell, progress: &Progress) -> Vec<Assertion> {
    let tier = setup.tier.as_str();
    // A refusal of the recipe's tree is the recipe's `fail`; anything else an `error`.
    let error = |name: String, e: Error| Assertion {
        name,
        result: super::outcome_of(&e),
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

/// What a check or hook is told about the deployment.
pub(crate) struct Env<'a> {
    pub state: &'a RunState,
    /// `CCCI_OP`.
    pub op: &'a str,
    /// The directory for the run-state copy and the checks' own work directories.
    pub scratch: &'a Path,
    /// More variables (the install-steps hook's `CCCI_ENV_FILE`, ...).
    pub extra: Vec<(String, String)>,
}

impl Env<'_> {
    /// The documented environment (docs/writing-checks.md) and a fresh work directory for the
    /// `n`th executable; writes the read-only run-state copy it names.
    fn for_check(&self, n: usize) -> Result<(Vec<(String, String)>, PathBuf)> {
        let work = self.scratch.join("work").join(format!("{n:02}"));
        fs_err::create_dir_all(&work)?;
        let copy = self.scratch.join("run-state.json");
        // Rewritten for every check, so one cannot change what the next one reads.
        if copy.exists() {
            fs_err::remove_file(&copy)?;
        }
        fs_err::write(&copy, self.state.to_json())?;
        fs_err::set_permissions(&copy, std::fs::Permissions::from_mode(0o444))?;
        let s = self.state;
        let path = |p: &Path| p.display().to_string();
        let mut env = exec::passthrough_env();
        env.extend([
            ("HOME".to_string(), path(&work)),
            ("TMPDIR".to_string(), path(&work)),
            (given::WORK_DIR.to_string(), path(&work)),
            (given::OP.to_string(), self.op.to_string()),
            (given::RUN_ID.to_string(), s.run_id.to_string()),
            (given::RECIPE.to_string(), s.recipe.to_string()),
            (given::DOMAIN.to_string(), s.domain.to_string()),
            (given::STACK.to_string(), s.stack.to_string()),
            (given::STATE.to_string(), path(&copy)),
        ]);
        if let Some(c) = &s.source.commit {
            env.push((given::COMMIT.into(), c.clone()));
        }
        let door = crate::checks::frontdoor::FrontDoor::from_env()?;
        if let Some(url) = app_url(s, door.as_ref()) {
            env.push((given::URL.into(), url));
        }
        env.extend(self.extra.iter().cloned());
        Ok((env, work))
    }
}

/// Runs one found executable under the trust gate and records it.
pub(crate) fn run_one(
    found: &Found,
    n: usize,
    env: &Env,
    allowlist: &Allowlist,
    timeout: Duration,
    progress: &Progress,
) -> Assertion {
    let not_run = |result: Outcome, detail: String| Assertion {
        name: found.name.clone(),
        result,
        detail,
        duration_ms: 0,
        output: None,
    };
    if found.origin == Origin::Repo && allowlist.approval(env.state.source.identity().as_ref()).is_none() {
        progress.log(format!("{}: {}", found.name, trust::NOT_APPROVED));
        return not_run(Outcome::Skip, trust::NOT_APPROVED.to_string());
    }
    if !found.executable {
        progress.log(format!("{}: not executable, not run", found.name));
        return not_run(Outcome::Skip, "not executable: not a check (chmod +x to make it one)".into());
    }
    let (vars, work) = match env.for_check(n) {
        Ok(v) => v,
        Err(e) => return not_run(Outcome::Error, format!("preparing its environment: {e}")),
    };
    progress.log(format!("running {}", found.name));
    let ran = exec::run(&found.path, &vars, &work, timeout);
    progress.log(format!("{}: {}: {}", found.name, ran.result.as_str(), ran.detail));
    Assertion {
        name: found.name.clone(),
        result: ran.result,
        detail: ran.detail,
        duration_ms: ran.duration_ms,
        output: Some(ran.output).filter(|o| !o.is_empty()),
    }
}

/// The URL a check can request the app at from this host: through the front door by the run's
/// domain (the way a visitor comes in), else the app's first port published in host mode here.
fn app_url(state: &RunState, door: Option<&crate::checks::frontdoor::FrontDoor>) -> Option<String> {
    match door {
        Some(d) => Some(d.url_for(&state.domain, "/")),
        None => crate::checks::serving::host_port_url(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::state::{Deployed, DeployedService, PublishedPort};

    fn assertion(result: Outcome, detail: &str) -> Assertion {
        Assertion { name: "a".into(), result, detail: detail.into(), duration_ms: 0, output: None }
    }

    #[test]
    fn combine_and_summary() {
        use Outcome::*;
        assert_eq!(combine(&[assertion(Pass, "x"), assertion(Skip, "y")]), Pass);
        assert_eq!(combine(&[assertion(Skip, "x"), assertion(Skip, "y")]), Skip);
        assert_eq!(combine(&[assertion(Fail, "x"), assertion(Error, "y")]), Error);
        assert_eq!(combine(&[assertion(Pass, "x"), assertion(Fail, "y")]), Fail);
        assert_eq!(summary(&[assertion(Pass, "x"), assertion(Pass, "y")]), "2 assertions passed");
        assert_eq!(
            summary(&[assertion(Pass, "warning: not pinned: app runs x"), assertion(Skip, trust::NOT_APPROVED)]),
            "a: warning: not pinned: app runs x; a: not approved: repository not in allowlist"
        );
    }

    #[test]
    fn a_detail_with_a_failed_assertion_says_so_first() {
        use Outcome::*;
        let named = |name: &str, result, detail: &str| Assertion { name: name.into(), ..assertion(result, detail) };
        let set = [
            named("converged after the redeploy", Pass, "app 1/1"),
            named("moved to the head", Fail, "app label v is \"1\", the head sets \"2\""),
            named("changed since the base", Skip, "no-op redeploy"),
            named("serving", Error, "docker gone"),
        ];
        assert_eq!(
            summary(&set),
            "2 of 4 assertions did not pass (1 failed, 1 errored): moved to the head: app label v is \"1\", the head sets \"2\"; serving: docker gone; besides: changed since the base: no-op redeploy"
        );
        assert_eq!(
            summary(&set[..2]),
            "1 of 2 assertions failed: moved to the head: app label v is \"1\", the head sets \"2\""
        );
        let done = "redeployed in place to 1a2b3c4d; deploys still 1";
        let detail = op_detail(done, combine(&set), &set);
        assert!(detail.starts_with(&format!("{done}, but 2 of 4 assertions did not pass")), "{detail}");
        assert_eq!(op_detail(done, Pass, &set[..1]), done);
    }

    #[test]
    fn ops_are_named_for_their_tier() {
        assert_eq!(op_name(&OpName::Install).as_str(), "install");
        assert_eq!(op_name(&OpName::Custom).as_str(), "custom");
        assert_eq!(op_name(&OpName::Upgrade).as_str(), "assert upgrade");
        assert_eq!(op_name(&OpName::Backup).as_str(), "assert backup");
    }

    fn deployed_state() -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deployed = Some(Deployed {
            observed_at: String::new(),
            settle_from: None,
            services: [(
                "app".to_string(),
                DeployedService {
                    ports: vec![PublishedPort {
                        published: 32776,
                        target: 8080,
                        mode: Default::default(),
                        family: None,
                    }],
                    ..Default::default()
                },
            )]
            .into(),
        });
        s
    }

    #[test]
    fn the_app_url_goes_through_the_proxy_by_domain_or_to_the_port() {
        let s = deployed_state();
        assert_eq!(app_url(&s, None).as_deref(), Some("http://127.0.0.1:32776/"));
        let door = |u: &str| crate::checks::frontdoor::FrontDoor::parse(u, None, true).unwrap();
        assert_eq!(
            app_url(&s, Some(&door("http://127.0.0.1:8080"))).as_deref(),
            Some("http://hell-3fa9c2.ccci.localhost:8080/")
        );
        assert_eq!(
            app_url(&s, Some(&door("https://proxy.example/"))).as_deref(),
            Some("https://hell-3fa9c2.ccci.localhost/")
        );
        let mut none = crate::run::state::tests::sample();
        none.deployed = None;
        assert_eq!(app_url(&none, None), None);
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
