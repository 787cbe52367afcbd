//! `ccci-upgrade`: move the run's deployment, in place, from the base release to the PR head,
//! and record the evidence that it moved.

use std::collections::BTreeMap;

use xshell::Shell;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::git;
use crate::run::state::{Assertion, Deployed, OpName, OpTimer, Outcome, RunState};
use crate::swarm::converge;
use crate::swarm::driver::{self, Driver};
use crate::words::{list, quoted};

pub const HOLDER: &str = "ccci-upgrade";

/// Runs the upgrade and records the `upgrade` op; returns its outcome.
pub fn run(state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    let timer = OpTimer::start(OpName::Upgrade);
    if let Some(v) = state.deploy_once_violation() {
        state.push_op(timer.finish(Outcome::Error, v, vec![]));
        return Outcome::Error;
    }
    if let Some(why) = skip_reason(state) {
        progress.log(format!("upgrade skipped: {why}"));
        state.push_op(timer.finish(Outcome::Skip, why, vec![]));
        return Outcome::Skip;
    }
    let mut assertions = vec![];
    let result = upgrade(state, sh, progress, &mut assertions);
    let (outcome, detail) = match result {
        Ok(Done::Redeployed(detail)) => {
            let outcome = crate::checks::run::combine(&assertions);
            (outcome, crate::checks::run::op_detail(&detail, outcome, &assertions))
        }
        Ok(Done::NotTestable(why)) => {
            progress.log(format!("upgrade skipped: {why}"));
            (Outcome::Skip, why)
        }
        Err(e) => {
            progress.log(format!("upgrade {}: {e}", Outcome::of(&e).as_str()));
            (Outcome::of(&e), e.to_string())
        }
    };
    state.push_op(timer.finish(outcome, detail, assertions));
    outcome
}

fn skip_reason(state: &RunState) -> Option<String> {
    match state.last_op(OpName::Deploy).map(|r| r.result) {
        Some(Outcome::Pass) => {}
        Some(r) => return Some(format!("deploy did not pass ({})", r.as_str())),
        None => return Some("the run has no deploy".into()),
    }
    if let Some(r) = state.last_op(OpName::Install).map(|r| r.result)
        && r != Outcome::Pass
    {
        return Some(format!("install failed ({})", r.as_str()));
    }
    match &state.upgrade {
        None => Some("upgrade not planned: the run was deployed with --no-upgrade".into()),
        Some(plan) if plan.base_failure.is_some() => Some(plan.reason.clone()),
        Some(plan) if plan.base.is_none() => Some(plan.reason.clone()),
        Some(_) => None,
    }
}

/// How an upgrade that raised no error ended.
enum Done {
    /// The head runs; the detail says how it got there.
    Redeployed(String),
    /// The head needs what a CI run cannot provide; nothing was redeployed.
    NotTestable(String),
}

fn upgrade(state: &mut RunState, sh: &Shell, progress: &Progress, assertions: &mut Vec<Assertion>) -> Result<Done> {
    let limits = converge::Limits::from_env()?;
    let driver = driver::for_run(state.driver, &state.workspace, &state.recipe)?;
    let dir = driver.recipe_dir();
    let head = state.source.commit.clone().ok_or_else(|| Error::bad_input("the run-state has no source.commit"))?;
    let expected =
        state.source.nar_hash.clone().ok_or_else(|| Error::bad_input("the run-state has no source.nar_hash"))?;

    // abra's release deploy moved the tree to the base: put the head back, exactly.
    git::checkout_clean(sh, &dir, &head)?;
    // The head's new env keys and secrets, as an operator upgrading by hand would add them.
    let prep = crate::swarm::prepare::for_head(driver.as_ref(), sh, state, progress)?;
    if !prep.operator_secrets.is_empty() {
        let names: Vec<String> =
            prep.operator_secrets.iter().map(|s| format!("{} ({} generate=false)", s.name, s.version_var)).collect();
        return Ok(Done::NotTestable(format!(
            "not testable by ccci: the head needs secret {}, whose value an operator inserts by hand",
            names.join(", ")
        )));
    }
    // A recipe-reading abra command may move the checkout (`docs/abra-contract.md` §2): restore it again.
    git::checkout_clean(sh, &dir, &head)?;
    let nar = git::nar_hash(&dir)?;
    if nar != expected {
        return Err(Error::env(format!(
            "the checkout of {head} hashes to {nar}, not the {expected} recorded at fetch: refusing to deploy a tree that is not the code under test"
        )));
    }
    progress.log(format!("head {} restored and verified ({nar})", &head[..8]));
    // The deploy judged the head already; it is judged again, just before the redeploy, with the
    // app env the redeploy reads (the release's COMPOSE_FILE and values, the head's new keys).
    let env_path = state.env_file.clone().ok_or_else(|| Error::bad_input("the run-state has no env_file"))?;
    let app_env = crate::recipe::env_file::EnvFile::read(&env_path).map_err(Error::recipe_fault)?;
    let host_access = crate::swarm::hostaccess::inspect(&dir, &app_env, state, "in the head")?;
    crate::swarm::hostaccess::gate(&host_access, crate::swarm::hostaccess::approval(state)?)?;

    let before = converge::snapshot(sh, &state.stack)?;
    let head_compose = prep.compose.clone();

    let since = crate::time::now_rfc3339();
    driver.redeploy(sh, state, progress)?;
    let converged = match converge::wait(sh, &state.stack, limits, &since, progress) {
        Ok(converged) => converged,
        Err(e) => {
            // What the failed upgrade left running is what teardown and the report must see.
            if let Ok(deployed) = converge::snapshot(sh, &state.stack) {
                state.deployed = Some(deployed);
            }
            return Err(e);
        }
    };
    let after = converge::observe_converged(sh, &state.stack, &converged);
    let statuses = converged.statuses;
    state.deployed = Some(after.clone());
    assertions.push(Assertion {
        name: "converged after the redeploy".into(),
        result: Outcome::Pass,
        detail: converge::summary(&statuses),
        duration_ms: 0,
        output: None,
    });

    let dirty = git::is_dirty(sh, &dir)?;
    assertions.push(moved(state, driver.as_ref(), &head, dirty, &head_compose, &after));
    assertions.push(changed(&before, &after));
    let prepared = prep.summary().map(|s| format!("{s}; ")).unwrap_or_default();
    Ok(Done::Redeployed(format!("{prepared}redeployed in place to {}; deploys still {}", &head[..8], state.deploys)))
}

/// Does the running deployment provably match the head? abra: the chaos-version label is the
/// head's commit. Both drivers: every service runs the image the head's compose names, with the
/// configs and secrets and deploy labels it declares.
fn moved(
    state: &RunState,
    driver: &dyn Driver,
    head: &str,
    dirty: bool,
    head_compose: &crate::recipe::compose::Compose,
    after: &Deployed,
) -> Assertion {
    let mut problems = vec![];
    let mut proofs = vec![];
    if driver.kind() == crate::run::state::DriverKind::Abra {
        let key = format!("coop-cloud.{}.chaos-version", state.stack);
        let want = format!("{}{}", &head[..8], if dirty { "+U" } else { "" });
        match after.services.get("app").and_then(|s| s.labels.get(&key)) {
            Some(v) if *v == want => proofs.push(format!("{key}={v}")),
            Some(v) => problems.push(format!("{key} is {v}, expected {want}")),
            None => problems.push(format!("no {key} label on the app service")),
        }
    }
    let prefix = state.stack.prefix();
    let names: BTreeMap<String, String> = head_compose
        .swarm_object_names(state.stack.as_str())
        .into_iter()
        .map(|o| (format!("{}:{}", o.kind.as_str(), o.key), o.name))
        .collect();
    for (svc, decl) in &head_compose.services {
        let Some(running) = after.services.get(svc) else {
            problems.push(format!("service {svc} of the head is not running"));
            continue;
        };
        if let Some(image) = &decl.image {
            let running_image = running.image.split('@').next().unwrap_or(&running.image);
            if running_image != image {
                problems.push(format!("{svc} runs {running_image}, the head names {image}"));
            }
        }
        for (kind, refs, have) in
            [("config", &decl.configs, &running.configs), ("secret", &decl.secrets, &running.secrets)]
        {
            for r in refs {
                let want = names.get(&format!("{kind}:{r}")).cloned().unwrap_or_else(|| format!("{prefix}{r}"));
                if !have.contains(&want) {
                    problems.push(format!("{svc} does not use {kind} {want}"));
                }
            }
        }
        for (k, v) in &decl.deploy_labels {
            match running.labels.get(k) {
                Some(r) if r == v => {}
                Some(r) => problems.push(format!("{svc} label {k} is {}, the head sets {}", quoted(r), quoted(v))),
                None => problems.push(format!("{svc} has no label {k}, the head sets {}", quoted(v))),
            }
        }
    }
    if problems.is_empty() {
        proofs.push(format!("every service runs the head's image, configs, secrets and labels ({})", &head[..8]));
        Assertion {
            name: "moved to the head".into(),
            result: Outcome::Pass,
            detail: proofs.join("; "),
            duration_ms: 0,
            output: None,
        }
    } else {
        Assertion {
            name: "moved to the head".into(),
            result: Outcome::Fail,
            detail: problems.join("; "),
            duration_ms: 0,
            output: None,
        }
    }
}

/// What differs between the base deployment and the head's, per service. Nothing differing is
/// reported as a no-op, never as movement.
fn changed(before: &Deployed, after: &Deployed) -> Assertion {
    let mut diffs = vec![];
    for (name, a) in &after.services {
        let Some(b) = before.services.get(name) else {
            diffs.push(format!("{name}: new service"));
            continue;
        };
        if a.image != b.image || a.image_id != b.image_id {
            diffs.push(format!("{name}: image {} → {}", b.image, a.image));
        }
        if a.configs != b.configs {
            diffs.push(format!("{name}: configs {} → {}", list(&b.configs), list(&a.configs)));
        }
        if a.secrets != b.secrets {
            diffs.push(format!("{name}: secrets {} → {}", list(&b.secrets), list(&a.secrets)));
        }
        for (k, v) in &a.labels {
            match b.labels.get(k) {
                Some(old) if old == v => {}
                Some(old) => diffs.push(format!("{name}: label {k}: {} → {}", quoted(old), quoted(v))),
                None => diffs.push(format!("{name}: label {k} added: {}", quoted(v))),
            }
        }
        for (k, old) in b.labels.iter().filter(|(k, _)| !a.labels.contains_key(*k)) {
            diffs.push(format!("{name}: label {k} removed (was {})", quoted(old)));
        }
    }
    for name in before.services.keys().filter(|n| !after.services.contains_key(*n)) {
        diffs.push(format!("{name}: removed"));
    }
    if diffs.is_empty() {
        Assertion {
            name: "changed since the base".into(),
            result: Outcome::Skip,
            detail: "no-op redeploy: the head deploys exactly what the base did".into(),
            duration_ms: 0,
            output: None,
        }
    } else {
        Assertion {
            name: "changed since the base".into(),
            result: Outcome::Pass,
            detail: diffs.join("; "),
            duration_ms: 0,
            output: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::state::DeployedService;

    fn deployed(labels: &[(&str, &str)], image: &str, configs: &[&str]) -> Deployed {
        let svc = DeployedService {
            name: "s_app".into(),
            image: image.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            configs: configs.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        Deployed { observed_at: String::new(), services: [("app".to_string(), svc)].into(), settle_from: None }
    }

    #[test]
    fn what_changed_since_the_base_reads_as_plain_words() {
        let before =
            deployed(&[("coop-cloud.s.version", ""), ("com.docker.stack.image", "x:1"), ("gone", "old")], "x:1", &[]);
        let after = deployed(
            &[("coop-cloud.s.version", "1.1.0+1"), ("coop-cloud.s.timeout", "2"), ("com.docker.stack.image", "x:2")],
            "x:2",
            &["s_index_v2"],
        );
        let a = changed(&before, &after);
        assert_eq!(a.result, Outcome::Pass);
        assert_eq!(
            a.detail,
            "app: image x:1 → x:2; app: configs none → s_index_v2; app: label com.docker.stack.image: \"x:1\" → \"x:2\"; \
             app: label coop-cloud.s.timeout added: \"2\"; app: label coop-cloud.s.version: \"\" → \"1.1.0+1\"; \
             app: label gone removed (was \"old\")"
        );
        for notation in ["None", "Some(", "[\""] {
            assert!(!a.detail.contains(notation), "{notation} in {}", a.detail);
        }
    }
}
