//! ccci-upgrade: move the run's deployment in place from the base release to the PR head.

use ccci::cli;
use ccci::ops::upgrade;

const BIN: &str = "ccci-upgrade";

const HELP: &str = "\
ccci-upgrade: upgrade the run's deployment, in place, from the last release to the PR head.

Usage: ccci-upgrade [--state FILE]

ccci-deploy deployed the last published release before the PR head. This restores the PR head's
checkout in the run's recipe tree (git checkout -f + clean), verifies it against the NAR hash
recorded at fetch, redeploys it onto the same stack (abra: `abra app deploy DOMAIN --chaos
--force`; stack driver: `docker stack deploy` of the head's compose files), waits for
convergence, and records the evidence that the deployment moved to the head: the abra
chaos-version label, and per service the image, configs, secrets and labels the head declares,
with what changed since the base. The redeploy does not count as a deploy. Before it, the head's
compose files are judged again for host access, as ccci-deploy does: a recipe outside the
allowlist that asks for it fails the upgrade.

Skipped (exit 0, with the reason in the state) when the deploy or install did not pass or there
is no release before the head.

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout; its
                 directory must exist and be writable
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_LEASE_TTL, CCCI_DEPLOY_TIMEOUT,
CCCI_PENDING_TIMEOUT, CCCI_ABRA, CCCI_ABRA_SERVER, CCCI_ALLOWLIST, CCCI_EXTERNAL_NETWORKS.
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 upgraded (or skipped), 1 the upgrade failed, 2 bad input (also a state of another
installation: its domain not <run id>.$CCCI_DOMAIN_SUFFIX, its workspace not the registry's),
3 environment error
(including a checkout that does not match the code under test).
";

fn main() {
    cli::stage_main(BIN, HELP, upgrade::HOLDER, upgrade::run)
}
