//! `ccci-deploy`: register the run, fetch the recipe, snapshot the code under test, create the
//! app, deploy **once**, wait for convergence, record what is on the swarm.

use xshell::Shell;

use crate::error::{Error, Kind, Result};
use crate::progress::Progress;
use crate::recipe::compose::Compose;
use crate::recipe::git;
use crate::recipe::load::{self, check_names, read_recipe};
use crate::recipe::release;
use crate::recipe::source::RecipeSource;
use crate::recipe::trust::Allowlist;
use crate::run::naming::{self, Domain, RecipeName, RunId, StackName};
use crate::run::registry::Registry;
use crate::run::state::{BaseRelease, DriverKind, OpName, OpTimer, Outcome, RunState, Source, UpgradePlan};
use crate::swarm::converge;
use crate::swarm::docker;
use crate::swarm::driver::{self, Driver};
use crate::swarm::hostaccess;

pub const HOLDER: &str = "ccci-deploy";

#[derive(Clone)]
pub struct Request {
    pub driver: DriverKind,
    /// A path or git URL, as given (it may carry credentials: see [`RecipeSource`]).
    pub source: String,
    pub git_ref: String,
    pub recipe: Option<RecipeName>,
    /// Deploy the last release before the head first, so the upgrade tier can move it to the head.
    pub upgrade: bool,
}

/// Shows the source with everything up to its last `@` hidden: it may carry credentials.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("driver", &self.driver)
            .field("source", &crate::recipe::source::redact(&self.source))
            .field("git_ref", &self.git_ref)
            .field("recipe", &self.recipe)
            .field("upgrade", &self.upgrade)
            .finish()
    }
}

/// Everything checked before the run exists. Errors here are bad input or a broken environment,
/// and nothing has been created.
pub struct Prepared {
    state: RunState,
    registry: Registry,
    deploy: Deploy,
}

impl Prepared {
    /// The new run, the registry it is to be registered in (by the stage frame,
    /// [`super::Run::New`]), and what [`run`] needs besides.
    pub fn into_parts(self) -> (RunState, Registry, Deploy) {
        (self.state, self.registry, self.deploy)
    }
}

/// What the deploy needs beside the run-state and the registry.
pub struct Deploy {
    /// The parsed source: what git clones, and the credentials for it (kept out of the state).
    source: RecipeSource,
    driver: Box<dyn Driver>,
    limits: converge::Limits,
    upgrade: bool,
}

pub fn prepare(req: &Request, sh: &Shell, progress: &Progress) -> Result<Prepared> {
    // Any other transport than https, ssh or a local path is refused here; a local source must
    // exist now (finding out after registering would leave a run to clean).
    let source = RecipeSource::parse(&req.source)?;
    git::check_ref(&req.git_ref)?;
    let recipe = match &req.recipe {
        Some(r) => r.clone(),
        None => RecipeName::from_source(source.shown())?,
    };
    let suffix = naming::domain_suffix_from_env()?;
    // Every name is checked before anything is created: a suffix too long for abra's stack names
    // is bad input, and must not leave a registry behind.
    let run_id = RunId::generate(&recipe)?;
    let domain = Domain::for_run(&run_id, &suffix)?;
    let stack = StackName::from_domain(&domain)?;
    let limits = converge::Limits::from_env()?;
    crate::run::registry::lease_ttl()?;
    // The later ops' settings too: a bad front door must not be found after the deploy.
    crate::checks::frontdoor::FrontDoor::from_env()?;
    crate::config::serving_timeout()?;
    crate::checks::install_steps::preflight(&recipe)?;
    // Approval is of the repository cloned, never of the recipe name (which the caller picks).
    let approved_by = Allowlist::load()?.approval(Some(source.identity()));
    let state_dir = crate::config::state_dir()?;
    if req.driver == DriverKind::Abra {
        crate::config::abra_server()?;
    }
    crate::config::external_networks()?;
    docker::check_swarm(sh)?;
    docker::check_stack_config(sh)?;

    let registry = Registry::at(&state_dir)?;
    let workspace = registry.workspace(&run_id);
    if workspace.exists() {
        return Err(Error::env(format!("run {run_id}: workspace {} already exists", workspace.display())));
    }
    let driver = driver::for_run(req.driver, &workspace, &recipe)?;
    let abra_version = driver.preflight(sh)?;
    progress.set_run(run_id.as_str());
    match &approved_by {
        Some(a) => progress.log(format!("repository {}: approved by {} ({})", source.identity(), a.entry, a.at)),
        None => progress.log(format!("repository {}: not in the allowlist", source.identity())),
    }

    let source_record = Source {
        repo: source.shown().to_string(),
        identity: Some(source.identity().to_string()),
        approved_by,
        git_ref: req.git_ref.clone(),
        commit: None,
        nar_hash: None,
    };
    let mut state = RunState::new(run_id, recipe, req.driver, source_record, domain, stack, workspace);
    state.versions.abra = abra_version;
    check_operator_objects(sh, &state, &source, req.upgrade, progress)?;
    Ok(Prepared { state, registry, deploy: Deploy { source, driver, limits, upgrade: req.upgrade } })
}

/// Before the run registers: every external network, secret and config the head (and the
/// upgrade base) needs from the operator exists on this swarm ([`crate::swarm::preflight`]). Reads the
/// recipe in a throwaway clone: nothing of the run exists before its registry entry. When the
/// recipe cannot be fetched or read here, the run's own deploy says why, as the recipe's fault.
fn check_operator_objects(
    sh: &Shell,
    state: &RunState,
    source: &RecipeSource,
    upgrade: bool,
    progress: &Progress,
) -> Result<()> {
    let scratch = sh.create_temp_dir()?;
    let dir = scratch.path().join("recipe");
    let read = |rev: &str| -> Result<Compose> {
        git::checkout_clean(sh, &dir, rev)?;
        read_recipe(&dir, state)
    };
    let fetched = git::clone(sh, source, &dir)
        .and_then(|()| git::resolve(sh, &dir, &state.source.git_ref))
        .and_then(|head| Ok((read(&head)?, head)));
    let Ok((head_compose, head)) = fetched else { return Ok(()) };
    let base = if upgrade
        && let Ok(UpgradePlan { base: Some(base), .. }) = plan_upgrade(sh, &dir, &head)
        && let Ok(c) = read(&base.commit)
    {
        Some(c)
    } else {
        None
    };
    let needed = crate::swarm::preflight::operator_provided(
        &std::iter::once(&head_compose).chain(base.as_ref()).collect::<Vec<_>>(),
        &state.stack,
    );
    // Joining a network that is not in CCCI_EXTERNAL_NETWORKS is host access for a recipe outside
    // the allowlist: the remedy of a missing one says that too.
    let allowed = match state.source.approved_by {
        None => Some(crate::config::external_networks()?),
        Some(_) => None,
    };
    if !needed.is_empty() {
        let names: Vec<String> = needed.iter().map(|o| format!("{} {}", o.kind.as_str(), o.name)).collect();
        progress.log(format!("checking what the operator provides: {}", names.join(", ")));
    }
    crate::swarm::preflight::check(sh, &needed, allowed.as_deref())
}

/// Deploys the run the stage frame registered, and records the `deploy` op; returns its outcome.
/// Every problem is recorded in the state (the op's result), never lost: teardown acts on what
/// the state says.
pub fn run(d: Deploy, state: &mut RunState, registry: &Registry, sh: &Shell, progress: &Progress) -> Outcome {
    let Deploy { source, driver, limits, upgrade } = d;
    progress.log(format!("registered run {} ({}, driver {})", state.run_id, state.domain, state.driver.as_str()));
    let timer = OpTimer::start(OpName::Deploy);
    let result = deploy(state, &source, registry, driver.as_ref(), sh, limits, upgrade, progress);
    let record = match result {
        Ok(detail) => timer.finish(Outcome::Pass, detail, vec![]),
        Err(e) => {
            progress.log(format!("deploy {}: {e}", Outcome::of(&e).as_str()));
            // Record whatever did reach the swarm, so the report and teardown can see it.
            if state.deploys > 0
                && let Ok(statuses) = converge::look(sh, &state.stack)
            {
                state.deployed = Some(converge::observe(sh, &state.stack, &statuses));
            }
            timer.finish(Outcome::of(&e), e.to_string(), vec![])
        }
    };
    let outcome = record.result;
    state.push_op(record);
    outcome
}

#[allow(clippy::too_many_arguments)]
fn deploy(
    state: &mut RunState,
    source: &RecipeSource,
    registry: &Registry,
    driver: &dyn Driver,
    sh: &Shell,
    limits: converge::Limits,
    upgrade: bool,
    progress: &Progress,
) -> Result<String> {
    let recipe_dir = driver.recipe_dir();
    fs_err::create_dir_all(recipe_dir.parent().expect("recipe dir has a parent"))?;
    progress.log(format!("cloning {} at {}", state.source.repo, state.source.git_ref));
    git::clone(sh, source, &recipe_dir)?;
    let commit = git::resolve(sh, &recipe_dir, &state.source.git_ref)?;
    git::checkout_clean(sh, &recipe_dir, &commit)?;
    let nar = git::nar_hash(&recipe_dir)?;
    progress.log(format!("code under test: {commit} ({nar})"));
    state.source.commit = Some(commit.clone());
    state.source.nar_hash = Some(nar);
    registry.save(state, HOLDER)?;

    // Every name the head will produce is checked now, before anything exists on the swarm.
    let head_compose = read_recipe(&recipe_dir, state)?;
    check_names(&head_compose, state)?;
    // ccci-upgrade deploys the head later: its host access is judged now, with the base's.
    let head_sample = load::new_app_env(load::env_sample(&recipe_dir)?, state);
    let mut host_access = hostaccess::inspect(&recipe_dir, &head_sample, state, "in the head")?;

    let mut base = if upgrade {
        let plan = plan_upgrade(sh, &recipe_dir, &commit)?;
        progress.log(&plan.reason);
        let base = plan.base.clone();
        state.upgrade = Some(plan);
        base
    } else {
        None
    };
    let approval = hostaccess::approval(state)?;
    // Set when the base release does not deploy before anything was created: its words.
    let mut base_refused = None;
    let compose = match &base {
        Some(b) => {
            git::checkout_clean(sh, &recipe_dir, &b.commit)?;
            let c = read_recipe(&recipe_dir, state)?;
            check_names(&c, state)?;
            let base_sample = load::new_app_env(load::env_sample(&recipe_dir)?, state);
            let mut found = hostaccess::inspect(&recipe_dir, &base_sample, state, &format!("in release {}", b.tag))?;
            // The upgrade deploys the head with the app env made from this release's sample
            // (its COMPOSE_FILE and values kept, the head's new keys added): judged with the base.
            let mut upgrade_env = base_sample;
            upgrade_env.add_missing(&head_sample);
            git::checkout_clean(sh, &recipe_dir, &commit)?;
            let place = format!("in the head, with the app env of release {}", b.tag);
            found.extend(hostaccess::inspect(&recipe_dir, &upgrade_env, state, &place)?);
            git::checkout_clean(sh, &recipe_dir, &b.commit)?;
            let mut with_base = host_access.clone();
            for line in found {
                // A finding of the head already listed is not repeated for the release's app env.
                let plain = line.replace(&format!(", with the app env of release {})", b.tag), ")");
                if !with_base.contains(&line) && !with_base.contains(&plain) {
                    with_base.push(line);
                }
            }
            match hostaccess::gate(&with_base, approval.clone()) {
                // Only the base (or the upgrade to the head it leads to) reaches the host: the
                // base cannot deploy here, the head by itself can.
                Err(e) if hostaccess::gate(&host_access, approval.clone()).is_ok() => {
                    base_refused = Some(e);
                    git::checkout_clean(sh, &recipe_dir, &commit)?;
                    head_compose.clone()
                }
                _ => {
                    host_access = with_base;
                    c
                }
            }
        }
        None => head_compose.clone(),
    };
    let mut named = None;
    if let Some(failure) = base_refused
        && let Some(b) = base.take()
    {
        let words = note_base_failure(state, &b, &failure);
        progress.log(format!("{words}; deploying the head by itself"));
        named = Some(words);
    }
    state.host_access = hostaccess::gate(&host_access, approval)?;
    if let Some(granted) = &state.host_access {
        progress.log(format!("host access granted ({}): {}", granted.reason, granted.granted.join("; ")));
    }

    let env_file = driver.create_app(sh, state, &compose, base.as_ref(), progress)?;
    state.env_file = Some(env_file);
    registry.save(state, HOLDER)?;
    crate::checks::install_steps::run(sh, state, &recipe_dir, progress)?;

    let since = crate::time::now_rfc3339();
    state.deploys += 1;
    registry.save(state, HOLDER)?;
    let deployed = driver
        .deploy(sh, state, base.as_ref(), progress)
        .and_then(|()| converge::wait(sh, &state.stack, limits, &since, progress));
    let converged = match (deployed, &base) {
        (Ok(converged), _) => converged,
        // The release is broken, not the head: the head is still tested, by itself.
        (Err(e), Some(b)) if e.kind() == Kind::OpFailed => {
            return deploy_head_alone(state, registry, driver, sh, limits, &head_compose, b, e, progress);
        }
        (Err(e), Some(b)) => return Err(e.context(format!("deploying release {}, the upgrade base", b.tag))),
        (Err(e), None) => return Err(e),
    };
    state.deployed = Some(converge::observe_converged(sh, &state.stack, &converged));
    let statuses = converged.statuses;
    let what = match &base {
        Some(b) => format!("release {} (base for the upgrade)", b.tag),
        None => commit[..8.min(commit.len())].to_string(),
    };
    Ok(match named {
        Some(named) => format!("{named}; deployed {what} once, by itself: {}", converge::summary(&statuses)),
        None => format!("deployed {what} once: {}", converge::summary(&statuses)),
    })
}

/// Records in the plan that `base` does not deploy (`failure`), so the upgrade is skipped with
/// it; returns "release 1.0.0+1, the upgrade base, does not deploy: …".
fn note_base_failure(state: &mut RunState, base: &BaseRelease, failure: &Error) -> String {
    let named = format!("release {}, the upgrade base, does not deploy: {failure}", base.tag);
    if let Some(plan) = &mut state.upgrade {
        plan.base_failure = Some(failure.to_string());
        plan.reason = format!("{named}; the head was deployed and tested by itself");
    }
    named
}

/// The base release did not deploy (`failure`): removes everything that deploy created, in
/// place (the run stays the same run), then creates the app afresh for the head and deploys the
/// head as the run's deploy. The failed base deploy produced no deployment, so it is not counted
/// in `deploys` (docs/decisions.md). The plan records the failure, and the upgrade is skipped
/// with it.
#[allow(clippy::too_many_arguments)]
fn deploy_head_alone(
    state: &mut RunState,
    registry: &Registry,
    driver: &dyn Driver,
    sh: &Shell,
    limits: converge::Limits,
    head_compose: &Compose,
    base: &BaseRelease,
    failure: Error,
    progress: &Progress,
) -> Result<String> {
    let named = note_base_failure(state, base, &failure);
    progress.log(format!("{named}; removing what it created and deploying the head by itself"));
    let left = crate::swarm::remove::remove_deployment(state, sh, progress)
        .map_err(|e| e.context(format!("{named}; removing what it created")))?
        .left;
    if !left.is_empty() {
        return Err(Error::env(format!("{named}; removing what it created left {}", left.join(", "))));
    }
    // The app is created afresh for the head: abra refuses to create an app whose env file exists.
    if let Some(env) = state.env_file.take() {
        match fs_err::remove_file(&env) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    state.deploys = state.deploys.saturating_sub(1);
    registry.save(state, HOLDER)?;

    let recipe_dir = driver.recipe_dir();
    let commit = state.source.commit.clone().ok_or_else(|| Error::env("the head commit is not known"))?;
    git::checkout_clean(sh, &recipe_dir, &commit)?;
    let env_file = driver.create_app(sh, state, head_compose, None, progress)?;
    state.env_file = Some(env_file);
    registry.save(state, HOLDER)?;
    crate::checks::install_steps::run(sh, state, &recipe_dir, progress)?;

    let since = crate::time::now_rfc3339();
    state.deploys += 1;
    registry.save(state, HOLDER)?;
    let converged = driver
        .deploy(sh, state, None, progress)
        .and_then(|()| converge::wait(sh, &state.stack, limits, &since, progress))
        .map_err(|e| e.context(format!("the head, deployed by itself because {named}")))?;
    state.deployed = Some(converge::observe_converged(sh, &state.stack, &converged));
    let statuses = converged.statuses;
    // The release first: a report line cut in the middle keeps both ends.
    Ok(format!(
        "{named}; deployed {} once, by itself: {}",
        &commit[..8.min(commit.len())],
        converge::summary(&statuses)
    ))
}

/// The last published release before the head: the highest release tag (by recipe semver) whose
/// commit is an ancestor of the head and not the head itself.
pub fn plan_upgrade(sh: &Shell, repo: &std::path::Path, head: &str) -> Result<UpgradePlan> {
    let mut candidates = vec![];
    for tag in git::tags(sh, repo)? {
        let Some(release) = release::parse_release_tag(&tag.name) else { continue };
        if tag.commit != head && git::is_ancestor(sh, repo, &tag.commit, head)? {
            candidates.push((release, tag));
        }
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(match candidates.pop() {
        Some((_, tag)) => UpgradePlan {
            reason: format!(
                "base: release {} ({}), the last release before the head{}",
                tag.name,
                &tag.commit[..8.min(tag.commit.len())],
                if tag.annotated { "" } else { "; a lightweight tag, deployed as a chaos deploy of its tree" }
            ),
            base: Some(BaseRelease { tag: tag.name, commit: tag.commit, annotated: tag.annotated }),
            base_failure: None,
            canaries: vec![],
        },
        None => UpgradePlan {
            base: None,
            base_failure: None,
            canaries: vec![],
            reason: "no previous release: the head is deployed and upgrade will be skipped".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_shows_no_credentials_when_debug_printed() {
        let req = Request {
            driver: DriverKind::Stack,
            source: "https://ci:T0KEN@git.example/o/n.git".into(),
            git_ref: "main".into(),
            recipe: None,
            upgrade: true,
        };
        let shown = format!("{req:?}");
        assert!(!shown.contains("T0KEN") && shown.contains("https://***@git.example/o/n.git"), "{shown}");
    }
}
