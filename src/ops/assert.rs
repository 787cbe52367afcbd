//! `ccci-assert OP`: the generic assertions of a tier, on the deployment as the op left it.

use xshell::Shell;

use crate::converge;
use crate::progress::Progress;
use crate::serving::{self, StatusPolicy};
use crate::state::{Assertion, OpTimer, Outcome, RunState};

/// The tiers ccci-assert knows.
pub const TIERS: &[&str] = &["install"];

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

/// Runs the install tier's generic assertions and records them as the `install` op.
pub fn install(state: &mut RunState, sh: &Shell, progress: &Progress) -> Outcome {
    let timer = OpTimer::start("install");
    let deploy = state.last_op("deploy").map(|r| r.result);
    if deploy != Some(Outcome::Pass) {
        let why = match deploy {
            None => "skipped: the run has no deploy".to_string(),
            Some(r) => format!("skipped: deploy did not pass ({})", r.as_str()),
        };
        progress.log(&why);
        state.push_op(timer.finish(Outcome::Skip, why, vec![]));
        return Outcome::Skip;
    }

    let mut assertions = vec![converged(state, sh)];
    let timeout = crate::config::serving_timeout();
    let proxy = crate::config::proxy_url();
    let targets = serving::targets(state, proxy.as_deref());
    match (timeout, targets.is_empty()) {
        (Err(e), _) => assertions.push(Assertion {
            name: "serving".into(),
            result: Outcome::Error,
            detail: e.to_string(),
            duration_ms: 0,
        }),
        (Ok(_), true) => assertions.push(Assertion {
            name: "serving".into(),
            result: Outcome::Skip,
            detail: "nothing to request: no service publishes a port and CCCI_PROXY_URL is not set".into(),
            duration_ms: 0,
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
    }
}
