//! Running a set of checks or hooks for an op: the environment each is told about the deployment
//! (docs/writing-checks.md), the trust gate before a recipe's own executable runs, and the
//! outcome and one-line detail of the set. Used by ccci-assert, the install-steps hook of
//! ccci-deploy, and the checks ccci-backup and ccci-restore run around their work.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checks::discovery::{Found, Origin};
use crate::checks::exec;
use crate::config::given;
use crate::error::Result;
use crate::progress::Progress;
use crate::recipe::trust::{self, Allowlist};
use crate::run::state::{Assertion, Outcome, RunState};

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
}
