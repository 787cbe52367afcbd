//! `ccci-assert OP`: the generic assertions of a tier, on the deployment as the op left it.

use xshell::Shell;

use crate::converge;
use crate::progress::Progress;
use crate::serving::{self, StatusPolicy};
use crate::state::{Assertion, OpTimer, Outcome, RunState};

/// The tiers ccci-assert knows.
pub const TIERS: &[&str] = &["install", "upgrade"];

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

/// Runs a tier's generic assertions and records them as the op named for the tier.
pub fn run(tier: &str, state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    // The install tier is the assertion itself ("is it serving?"); later tiers have an op of
    // their own (ccci-upgrade records `upgrade`), so their assertions are `assert <tier>`.
    let op = if tier == "install" { "install".to_string() } else { format!("assert {tier}") };
    let timer = OpTimer::start(&op);
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
    let mut assertions = vec![];
    if tier == "upgrade" {
        assertions.push(moved_evidence(state));
    }
    assertions.push(converged(state, sh));
    generic_serving(state, progress, &mut assertions);
    let outcome = combine(&assertions);
    let detail = assertions
        .iter()
        .filter(|a| a.result != Outcome::Pass)
        .map(|a| format!("{}: {}", a.name, a.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let detail = if detail.is_empty() { format!("{} assertions passed", assertions.len()) } else { detail };
    state.push_op(timer.finish(outcome, detail, assertions));
    outcome
}

/// Why a tier has nothing to check: its op did not happen (or the run is dead).
fn skip_reason(tier: &str, state: &RunState) -> Option<String> {
    let result = |op: &str| state.last_op(op).map(|r| r.result);
    match result("deploy") {
        Some(Outcome::Pass) => {}
        Some(r) => return Some(format!("deploy did not pass ({})", r.as_str())),
        None => return Some("the run has no deploy".into()),
    }
    if tier == "install" {
        return None;
    }
    if let Some(r) = result("install").filter(|r| *r != Outcome::Pass) {
        return Some(format!("install failed ({})", r.as_str()));
    }
    match state.last_op(tier) {
        None => Some(format!("{tier} did not run")),
        Some(r) if r.result == Outcome::Skip => Some(format!("{tier} was skipped: {}", r.detail)),
        Some(r) if r.result != Outcome::Pass => Some(format!("{tier} did not pass ({})", r.result.as_str())),
        Some(_) => None,
    }
}

/// The upgrade op's verdict on whether the deployment moved to the head.
fn moved_evidence(state: &RunState) -> Assertion {
    let found = state.last_op("upgrade").and_then(|r| r.assertions.iter().find(|a| a.name == "moved to the head"));
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

fn generic_serving(state: &RunState, progress: &Progress, assertions: &mut Vec<Assertion>) {
    let timeout = crate::config::serving_timeout();
    let proxy = crate::config::proxy_url();
    let targets = serving::targets(state, proxy.as_deref());
    match (timeout, targets.is_empty()) {
        (Err(e), _) => assertions.push(Assertion {
            name: "serving".into(),
            result: Outcome::Error,
            detail: e.to_string(),
            duration_ms: 0,
            output: None,
        }),
        (Ok(_), true) => assertions.push(Assertion {
            name: "serving".into(),
            result: Outcome::Skip,
            detail: "nothing to request: no service publishes a port and CCCI_PROXY_URL is not set".into(),
            duration_ms: 0,
            output: None,
        }),
        (Ok(timeout), false) => {
            let policy = StatusPolicy { also_accept: vec![] };
            for t in &targets {
                progress.log(format!("checking {} ({})", t.name, t.url));
                let a = serving::check(t, &policy, timeout);
                progress.log(format!("{}: {}", a.result.as_str(), a.detail));
                assertions.push(a);
            }
        }
    }
}

fn converged(state: &RunState, sh: &Shell) -> Assertion {
    let start = std::time::Instant::now();
    let (result, detail) = match converge::look(sh, &state.stack) {
        Err(e) => (Outcome::Error, e.to_string()),
        Ok(s) if s.is_empty() => (Outcome::Fail, "no service of the stack is on the swarm".to_string()),
        Ok(s) => {
            let short: Vec<_> = s.iter().filter(|x| x.running < x.desired).collect();
            if short.is_empty() {
                (Outcome::Pass, converge::summary(&s))
            } else {
                (Outcome::Fail, format!("below desired replicas: {}", converge::summary(&s)))
            }
        }
    };
    Assertion {
        name: "services at desired replicas".into(),
        result,
        detail,
        duration_ms: start.elapsed().as_millis() as u64,
        output: None,
    }
}
