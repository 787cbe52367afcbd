//! ccci-assert: run a tier's assertions on the run's deployment.

use std::path::PathBuf;

use ccci::cli;
use ccci::ops::assert;
use ccci::{Error, Result};

const BIN: &str = "ccci-assert";

const HELP: &str = "\
ccci-assert: run a tier's generic assertions on the run's deployment.

Usage: ccci-assert TIER [--state FILE]

Reads the run-state from stdin (or FILE), checks the deployment as the previous op left it, records
one op named TIER with one assertion per check, and writes the run-state to stdout (or back to FILE).
It never changes the deployment.

Tiers:
  install    every service at its desired replicas; serving HTTP (2xx/3xx) through CCCI_PROXY_URL
             with the run's domain as Host, or else on the ports the services publish here.
             Skipped when the deploy did not pass.
  upgrade    the upgrade moved the deployment to the PR head (from ccci-upgrade's evidence), every
             service converged, still serving. Skipped when the upgrade was skipped or install
             failed.

Any tier records `error` when the run broke the deploy-once rule (deploys is not 1).

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_PROXY_URL, CCCI_SERVING_TIMEOUT.

Exit status: 0 passed or skipped, 1 an assertion failed, 2 bad input, 3 environment error.
";

fn main() {
    cli::main(BIN, |progress| {
        let (mut tier, mut state_file) = (None::<String>, None);
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("state") => state_file = Some(PathBuf::from(p.value().map_err(|e| cli::usage(BIN, e))?)),
                Short('h') | Long("help") => return Ok(cli::print_help(HELP)),
                Short('V') | Long("version") => return Ok(cli::print_version(BIN)),
                Value(v) if tier.is_none() => {
                    tier = Some(v.into_string().map_err(|_| Error::bad_input("TIER must be UTF-8"))?)
                }
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let tier = tier.ok_or_else(|| Error::bad_input(format!("missing TIER (see {BIN} --help)")))?;
        if !assert::TIERS.contains(&tier.as_str()) {
            return Err(Error::bad_input(format!(
                "unknown tier {tier:?}: expected one of {}",
                assert::TIERS.join(", ")
            )));
        }
        let io = cli::state_io(state_file);
        let mut state = io.read()?;
        progress.set_run(state.run_id.as_str());
        let sh = xshell::Shell::new()?;
        let outcome = run(&tier, &mut state, &sh, progress)?;
        io.write(&state)?;
        Ok(outcome.exit_code())
    })
}

fn run(
    tier: &str,
    state: &mut ccci::state::RunState,
    sh: &xshell::Shell,
    progress: &ccci::progress::Progress,
) -> Result<ccci::state::Outcome> {
    Ok(assert::run(tier, state, sh, progress))
}
