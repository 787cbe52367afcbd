//! The install-steps hook, part of `ccci-deploy`: after the app is created and before its one
//! deploy, `overlays/<recipe>/install_steps.sh` (cc-ci's, trusted) and then the recipe's own
//! `tests/install_steps.sh` at the PR head (run only for recipes in the allowlist) get to prepare
//! the app: edit its env file, insert secrets. Recorded as the op `install-steps` (when there is
//! a hook); a hook that fails fails the deploy, quoting its output.

use std::path::Path;

use xshell::Shell;

use crate::checks::discovery::{self, Overlay};
use crate::checks::exec;
use crate::checks::run::{Env, combine, run_one};
use crate::config::given;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::recipe::trust::Allowlist;
use crate::run::naming::RecipeName;
use crate::run::state::{DriverKind, OpName, OpTimer, Outcome, RunState};

pub const OP: OpName = OpName::InstallSteps;

/// Checks the settings the hook will need, before the run exists (bad ones are bad input).
pub fn preflight(recipe: &RecipeName) -> Result<()> {
    Overlay::load(recipe)?;
    Allowlist::load()?;
    exec::timeout_setting()?;
    Ok(())
}

/// Runs the hooks of the run's recipe, if any, and records them as the op `install-steps`.
/// `recipe_dir` is the run's recipe checkout (its git objects hold the PR head).
pub fn run(sh: &Shell, state: &mut RunState, recipe_dir: &Path, progress: &Progress) -> Result<()> {
    let timer = OpTimer::start(OP);
    let overlay = Overlay::load(&state.recipe)?;
    let allowlist = Allowlist::load()?;
    let timeout = exec::timeout_setting()?;
    let scratch = state.workspace.join(OP.as_str());
    if scratch.exists() {
        fs_err::remove_dir_all(&scratch)?;
    }
    let commit = state.source.commit.clone().ok_or_else(|| Error::env("the head commit is not known yet"))?;
    let head = scratch.join("head");
    let exported = crate::recipe::git::export_subtree(sh, recipe_dir, &commit, "", &head)?;
    let repo_hook = if exported { discovery::repo_install_steps(&head)? } else { None };
    let hooks: Vec<_> = overlay.install_steps().into_iter().chain(repo_hook).collect();
    if hooks.is_empty() {
        return Ok(());
    }

    let mut extra = vec![
        (given::RECIPE_DIR.to_string(), recipe_dir.display().to_string()),
        (given::ENV_FILE.to_string(), state.env_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
    ];
    if state.driver == DriverKind::Abra {
        // The run's own ABRA_DIR (driver::for_run), so a hook can call abra on the app.
        extra.push(("ABRA_DIR".to_string(), state.workspace.join("abra").display().to_string()));
    }
    let snapshot = state.clone();
    let env = Env { state: &snapshot, op: OpName::InstallSteps.as_str(), scratch: &scratch, extra };
    let assertions: Vec<_> =
        hooks.iter().enumerate().map(|(n, hook)| run_one(hook, n + 1, &env, &allowlist, timeout, progress)).collect();
    let outcome = combine(&assertions);
    let failed: Vec<String> = assertions
        .iter()
        .filter(|a| matches!(a.result, Outcome::Fail | Outcome::Error))
        .map(|a| {
            let output = a.output.as_deref().map(|o| crate::process::tail(o, 6)).unwrap_or_default();
            let output = if output.is_empty() { String::new() } else { format!("; output: {output}") };
            format!("{}: {}{output}", a.name, a.detail)
        })
        .collect();
    let detail = match outcome {
        Outcome::Pass | Outcome::Skip => {
            assertions.iter().map(|a| format!("{}: {}", a.name, a.detail)).collect::<Vec<_>>().join("; ")
        }
        _ => failed.join("; "),
    };
    state.push_op(timer.finish(outcome, detail, assertions));
    match outcome {
        Outcome::Fail => Err(Error::failed(format!("install steps failed: {}", failed.join("; ")))),
        Outcome::Error => Err(Error::env(format!("install steps broke: {}", failed.join("; ")))),
        Outcome::Pass | Outcome::Skip => Ok(()),
    }
}
