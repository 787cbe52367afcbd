//! ccci-restore: restore the snapshot the backup made, by id, and prove the data came back.

use ccci::cli;
use ccci::ops::restore;

const BIN: &str = "ccci-restore";

const HELP: &str = "\
ccci-restore: restore the run's backup snapshot, by id, into the running deployment.

Usage: ccci-restore [--state FILE]

First changes every file canary ccci-backup planted and writes a post-backup file beside it.
Then: the restore pre-hooks (docker exec into a running task of their service, sh -c); the
services that mount a restored volume and declare no restore hook are scaled to 0; restic
restore <the backup's snapshot id> of exactly the backed-up paths; those services scaled back;
the restore post-hooks; the stack's convergence. A hook exiting non-zero fails the restore,
quoting its output.

With the abra driver: abra app restore <domain> --snapshot <id> (backup-bot-two runs the hooks
and writes the files; nothing is scaled down by ccci), then the convergence.

Passes only when every canary holds its planted bytes again. restic's restore overwrites files
and never deletes newer ones: the post-backup files survive it; that is recorded and ccci
removes them. ccci-assert restore checks the canaries again, with the generic floor.

Skipped (exit 0, with the reason in the state) when the backup did not pass or was skipped.

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout; its
                 directory must exist and be writable
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_LEASE_TTL, CCCI_RESTIC, CCCI_DEPLOY_TIMEOUT
and CCCI_PENDING_TIMEOUT (convergence after the restore), CCCI_CHECK_TIMEOUT (each hook),
CCCI_OVERLAYS_DIR, CCCI_ABRA, CCCI_ABRA_SERVER, CCCI_BACKUPBOT_REPOSITORY,
CCCI_BACKUPBOT_PASSWORD_FILE (abra driver).
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 restored with evidence (or skipped), 1 the restore failed (a hook, a canary not
back, no convergence), 2 bad input (also a state of another installation: its domain not
<run id>.$CCCI_DOMAIN_SUFFIX, its workspace not the registry's), 3 environment error (restic
or docker broke).
";

fn main() {
    cli::stage_main(BIN, HELP, restore::HOLDER, restore::run)
}
