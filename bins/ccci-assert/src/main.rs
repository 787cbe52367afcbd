//! ccci-assert: run an op's checks (generic, overlay, repo-local) on the run's deployment.

use ccci::Error;
use ccci::cli;
use ccci::ops::assert;

const BIN: &str = "ccci-assert";

const HELP: &str = "\
ccci-assert: run an op's checks on the run's deployment.

Usage: ccci-assert OP [--state FILE]

Reads the run-state from stdin (or FILE), checks the deployment as the previous op left it, records
one op with one assertion per check, and writes the run-state to stdout (or back to FILE). It never
changes the deployment.

OP is install, upgrade, backup, restore or custom (checks not tied to a lifecycle op). Its checks
come from three places, in this order:
  generic    built in, for every op: every service at its desired replicas; no task restarting
             during a settle window (CCCI_SETTLE_WINDOW); healthchecks passing; serving HTTP
             (2xx/3xx, or a status the recipe's settings accept), asked as a visitor reaches
             the app: a traefik router must route the run's domain, and each task answers on
             the router's loadbalancer.server.port at its address on the proxy network (from a
             throwaway ccci/probe:1 container, with the run's domain as Host); published ports
             by their mode (never the routing mesh); and the front door CCCI_PROXY_URL over
             HTTPS when set. A passing run whose app was never asked is reported as \"passed,
             but serving was not checked\". A warning for images tagged `latest` or not at
             all. `assert upgrade` also carries ccci-upgrade's proof that the deployment moved
             to the PR head. Opt out with CCCI_SKIP_GENERIC=1,
             CCCI_SKIP_GENERIC_<OP>=1 or SKIP_GENERIC in overlays/<recipe>/settings.env; the
             run-state says who asked.
  overlay    executables in $CCCI_OVERLAYS_DIR/<recipe>/<op>/, maintained with ccci: always run.
  repo       executables in the recipe's own tests/<op>/ at the PR head: run only when the
             repository it was cloned from (source.identity, never the recipe name) is listed in
             the allowlist (CCCI_ALLOWLIST); otherwise recorded as skipped, \"not approved:
             repository not in allowlist\". The entry that approved it is recorded as
             source.approved_by.
Each check runs in name order with a cleared environment (docs/writing-checks.md) and answers by
exit code: 0 pass, 1 fail, 77 skip, anything else error; one still running after
CCCI_CHECK_TIMEOUT is killed with its process group and recorded as error.

install is recorded as op `install`, custom as `custom`, the others as `assert <op>`. install is
skipped when the deploy did not pass; later ops when install failed; upgrade, backup and restore
also when their own op did not pass. Any op records `error` when the run broke the deploy-once
rule (deploys is not 1).

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout; its
                 directory must exist and be writable
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_LEASE_TTL, CCCI_OVERLAYS_DIR, CCCI_ALLOWLIST,
CCCI_CHECK_TIMEOUT, CCCI_SETTLE_WINDOW, CCCI_SKIP_GENERIC, CCCI_SKIP_GENERIC_<OP>,
CCCI_PROXY_URL, CCCI_PROXY_CA_FILE, CCCI_PROXY_ALLOW_HTTP, CCCI_SERVING_TIMEOUT, CCCI_ABRA,
CCCI_ABRA_SERVER, CCCI_RESTIC, CCCI_BACKUPBOT_REPOSITORY, CCCI_BACKUPBOT_PASSWORD_FILE (backup
evidence, abra driver) (see docs/operating.md).
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 passed or skipped, 1 a check failed (also: the recipe's tests/ leaves its tree
through a symlink), 2 bad input (also a state of another installation: its domain not
<run id>.$CCCI_DOMAIN_SUFFIX, its workspace not the registry's), 3 a check or the environment
errored.
";

fn main() {
    cli::main(BIN, |progress| {
        let (mut tier, mut state_file) = (None::<String>, None);
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("state") => cli::once(BIN, &mut state_file, "--state", || cli::value_path(BIN, p.value()))?,
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                Value(v) if tier.is_none() => {
                    tier = Some(v.into_string().map_err(|_| Error::bad_input("OP must be UTF-8"))?)
                }
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let tier = tier.ok_or_else(|| Error::bad_input(format!("missing OP (see {BIN} --help)")))?;
        let io = cli::preflight(state_file)?;
        let setup = assert::prepare(&tier)?;
        ccci::ops::stage(ccci::ops::Run::Piped(&io), assert::HOLDER, progress, |state, _registry, sh| {
            assert::run(&setup, state, sh, progress)
        })
    })
}
