//! ccci-deploy: create a run and deploy the recipe once.

use ccci::cli;
use ccci::ops;
use ccci::ops::deploy::{self, Request};
use ccci::run::naming::RecipeName;
use ccci::run::state::DriverKind;
use ccci::{Error, Result};

const BIN: &str = "ccci-deploy";

const HELP: &str = "\
ccci-deploy: deploy a recipe once on this Docker Swarm and start a run-state.

Usage: ccci-deploy (--recipe PATH_OR_URL | --recipe-env VAR) --ref REF [--driver stack|abra]
                   [--recipe-name NAME] [--no-upgrade] [--state FILE]

Registers a run in $CCCI_STATE_DIR/runs/, clones the recipe at REF into the run's workspace,
records the commit and the NAR hash of the code under test, creates the app, runs the
install-steps hooks (overlays/<recipe>/install_steps.sh, then the recipe's own
tests/install_steps.sh at REF if its repository is in the allowlist; recorded as op
install-steps, a failing hook fails the deploy), deploys it once and waits until every service
runs. So that ccci-upgrade can move it to the head, the one deploy is of the last published
release before REF (by recipe semver over release tags that are ancestors of REF); with no
earlier release, or with --no-upgrade, REF itself is deployed. When that release
does not deploy, what it created is removed and REF is deployed by itself (the upgrade is then
skipped, naming the release). Before the run registers, the external networks, secrets and
configs the recipe needs from the operator must exist on the swarm (else exit 3, with the
remedy). Writes the run-state JSON to stdout (or to FILE with --state); progress goes to stderr.

The allowlist approves the repository cloned, by its identity (host/owner/name, or the real path
of a local repository: docs/enrolling-a-recipe.md), never a recipe name. git runs with a cleared
environment: only PATH and SSH_AUTH_SOCK pass, no system or global git config, an empty HOME.

Options:
  --recipe PATH_OR_URL   the recipe's git repository: https://[user:token@]host/owner/name[.git],
                         ssh://[user@]host[:port]/owner/name, user@host:owner/name, a local path
                         or file:///path. Any other scheme or transport (http://, git://, ext::,
                         fd::, ...) is refused. Credentials are used for the clone only (through
                         git's environment, never its argv) and shown or stored nowhere.
  --recipe-env VAR       read PATH_OR_URL from the environment variable VAR instead, so that a
                         URL with a token stays out of ccci-deploy's own argv (which `ps` shows)
  --ref REF              branch, tag or commit to test
  --driver stack|abra    plain `docker stack deploy` (default) or the real abra CLI
  --recipe-name NAME     the recipe's name, when the source's last path component is not it;
                         it selects the overlay and names the run, and never approves anything
  --no-upgrade           deploy REF itself; the upgrade tier will be skipped
  --state FILE           write the run-state to FILE (atomically) instead of stdout;
                         its directory must exist and be writable
  -h, --help             this text
  -V, --version          the version

Before creating anything it reads the compose files of REF and of that release through
`docker stack config` (Docker CLI 23 or later): unless the recipe is in the allowlist, host
access (bind mounts, the Docker socket, cap_add, the host network or an external network not in
CCCI_EXTERNAL_NETWORKS, files outside the checkout, ...) fails the deploy with one line naming
the service, the key and why. An approved recipe's grants are recorded as host_access.

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_DEPLOY_TIMEOUT, CCCI_PENDING_TIMEOUT,
CCCI_TEARDOWN_TIMEOUT (removing a release that did not deploy), CCCI_LEASE_TTL, CCCI_ABRA,
CCCI_ABRA_SERVER, CCCI_OVERLAYS_DIR, CCCI_ALLOWLIST, CCCI_EXTERNAL_NETWORKS, CCCI_CHECK_TIMEOUT,
CCCI_PROXY_URL, CCCI_PROXY_CA_FILE, CCCI_PROXY_ALLOW_HTTP (the hooks' CCCI_URL),
CCCI_SERVING_TIMEOUT (checked now for the asserts) (see docs/operating.md).
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 deployed, 1 the deploy failed (the run-state says why; also when a file ccci or
its tools read from the recipe — .env.sample, compose files, abra.sh, release notes, tests/ — is
a symlink leaving the recipe's tree), 2 bad input (nothing was created), 3 environment error.
";

fn main() {
    cli::main(BIN, |progress| {
        let mut source_flag = None::<&str>;
        let (mut source, mut git_ref, mut name, mut state_file, mut driver) = (None, None, None, None, None);
        let mut upgrade = true;
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long(flag @ ("recipe" | "recipe-env")) if source.is_some() => {
                    return Err(match source_flag {
                        Some(f) if f == flag => cli::repeated(BIN, &format!("--{flag}")),
                        _ => Error::bad_input("give one of --recipe and --recipe-env, not both"),
                    });
                }
                Long("recipe") => {
                    source_flag = Some("recipe");
                    source = Some(cli::value_string(BIN, p.value(), "--recipe")?)
                }
                Long("recipe-env") => {
                    source_flag = Some("recipe-env");
                    let var = cli::value_string(BIN, p.value(), "--recipe-env")?;
                    let value = std::env::var(&var).ok().filter(|v| !v.is_empty()).ok_or_else(|| {
                        Error::bad_input(format!("--recipe-env {var}: the variable is not set, empty or not UTF-8"))
                    })?;
                    source = Some(value)
                }
                Long("ref") => cli::once(BIN, &mut git_ref, "--ref", || cli::value_string(BIN, p.value(), "--ref"))?,
                Long("driver") => cli::once(BIN, &mut driver, "--driver", || {
                    DriverKind::parse(&cli::value_string(BIN, p.value(), "--driver")?)
                })?,
                Long("recipe-name") => cli::once(BIN, &mut name, "--recipe-name", || {
                    RecipeName::parse(&cli::value_string(BIN, p.value(), "--recipe-name")?)
                })?,
                Long("no-upgrade") => upgrade = false,
                Long("state") => cli::once(BIN, &mut state_file, "--state", || cli::value_path(BIN, p.value()))?,
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let missing = |f: &str| Error::bad_input(format!("missing {f} (see {BIN} --help)"));
        let req = Request {
            driver: driver.unwrap_or(DriverKind::Stack),
            source: source.ok_or_else(|| missing("--recipe (or --recipe-env)"))?,
            git_ref: git_ref.ok_or_else(|| missing("--ref"))?,
            recipe: name,
            upgrade,
        };
        let io = cli::preflight(state_file)?;
        run(&req, &io, progress)
    })
}

fn run(req: &Request, io: &ccci::run::state::StateIo, progress: &ccci::progress::Progress) -> Result<i32> {
    let sh = xshell::Shell::new()?;
    let (state, registry, d) = deploy::prepare(req, &sh, progress)?.into_parts();
    ops::stage(ops::Run::New(Box::new(state), registry, io), deploy::HOLDER, progress, |state, registry, sh| {
        deploy::run(d, state, registry, sh, progress)
    })
}
