//! ccci-teardown: remove everything a run created and verify nothing is left.

use std::io::IsTerminal;

use ccci::Error;
use ccci::cli;
use ccci::ops::{self, teardown};
use ccci::run::naming::RunId;

const BIN: &str = "ccci-teardown";

const HELP: &str = "\
ccci-teardown: remove everything a run created and verify that nothing is left.

Usage: ccci-teardown [--state FILE]
       ccci-teardown --run RUN_ID

Undeploys the stack, waits until no task or container of it remains, removes its services,
secrets, configs, networks and volumes (found by the com.docker.stack.namespace label and by the
<stack>_ name prefix), the app env file, the run workspace and the registry entry, then checks
that nothing is left. Running it twice is fine.

With --run, the run-state comes from the registry ($CCCI_STATE_DIR/runs/RUN_ID.json), for when
the CI workspace holding the state file is gone; the state is then not printed.

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout; its
                 directory must exist and be writable
  --run RUN_ID   tear down a registered run by its id
  -h, --help     this text
  -V, --version  the version

With CCCI_KEEP_ON_FAILURE=1 and an op of the run failed or errored, --state mode leaves the
deployment up for debugging and extends its lease by CCCI_KEEP_TTL (default 2h); the janitor
reaps it when that runs out. --run always tears down.

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_LEASE_TTL, CCCI_TEARDOWN_TIMEOUT,
CCCI_KEEP_ON_FAILURE, CCCI_KEEP_TTL, CCCI_ABRA, CCCI_ABRA_SERVER.
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 verified empty (or kept on failure), 1 something is left (listed on stderr and
in the state), 2 bad input (also a state or registry entry of another installation: its domain not
<run id>.$CCCI_DOMAIN_SUFFIX, its workspace not the registry's; nothing is removed), 3 environment
error.
";

fn main() {
    cli::main(BIN, |progress| {
        let (mut state_file, mut run_id) = (None, None);
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("state") => cli::once(BIN, &mut state_file, "--state", || cli::value_path(BIN, p.value()))?,
                Long("run") => {
                    cli::once(BIN, &mut run_id, "--run", || RunId::parse(&cli::value_string(BIN, p.value(), "--run")?))?
                }
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        if state_file.is_some() && run_id.is_some() {
            return Err(Error::bad_input("give either --state or --run, not both"));
        }
        let piped = state_file.is_none() && run_id.is_none();
        let io = cli::preflight(state_file)?;
        // A person at a terminal may well mean a registered run: say both ways in.
        if piped && std::io::stdin().is_terminal() {
            return Err(Error::bad_input(
                "no run-state on stdin: pipe one in (e.g. from ccci-deploy), pass --state FILE, or give --run RUN_ID to tear down a registered run",
            ));
        }
        let keep = ccci::config::keep_on_failure()?;
        // An explicit request to reap one run (an operator, a systemd unit): never kept. Its state
        // is not printed: there is no pipe to pass it on to.
        let (run, keep) = match &run_id {
            Some(id) => (ops::Run::Registered(id), None),
            None => (ops::Run::Piped(&io), keep),
        };
        ops::stage(run, teardown::HOLDER, progress, |state, registry, sh| {
            teardown::run(state, registry, sh, progress, keep)
        })
    })
}
