//! ccci-backup: back the run's deployment up by its backupbot labels, with evidence.

use ccci::cli;
use ccci::ops::backup;

const BIN: &str = "ccci-backup";

const HELP: &str = "\
ccci-backup: back the run's deployment up by its backupbot labels, and prove what was saved.

Usage: ccci-backup [--state FILE]

Reads the stack's services from the swarm and merges their backupbot labels (after
interpolation, across every service): backupbot.backup=true on any service makes the recipe
backup-capable (overlays/<recipe>/settings.env may say BACKUP=1 or BACKUP=0, recorded as who
asked); backupbot.backup.volumes.<vol>=false leaves a volume out;
backupbot.backup.volumes.<vol>.path=a,b and the older backupbot.backup.path limit it to paths.

Then, with the stack driver's engine (ccci and the host's restic): the overlay's plant hooks
(overlays/<recipe>/backup/plant/), the backup pre-hooks (docker exec into a running task of
their service, sh -c; one exiting non-zero fails the backup, quoting its output), a file canary
(random bytes, named with the run id) in every included volume directory, restic backup of the
volumes' mountpoints into the run's own repository (<workspace>/backup/restic, its generated
password passed by file), tagged with the stack and the run, and the post-hooks.

With the abra driver, backup-bot-two (deployed on the server) does the hooks and the backup:
`abra app backup create <domain>` (its flags probed in `--help` first; an ERRO line in its
output fails the backup), and the evidence is read with the host's restic from backupbot's
repository (CCCI_BACKUPBOT_REPOSITORY, CCCI_BACKUPBOT_PASSWORD_FILE).

Passes only on evidence read back with restic's JSON: exactly one new snapshot tagged with this
run, at least one file from every included volume, every canary with its exact bytes, every path
a label names non-empty. The snapshot id, files and bytes per volume, the canaries and the hooks'
output are recorded in the run-state (ops[].backup).

Skipped (exit 0, with the reason in the state) when the deploy or install did not pass or the
recipe is not backup-capable: a skipped backup never passes.

Options:
  --state FILE   read and update FILE (atomically) instead of stdin/stdout; its
                 directory must exist and be writable
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_LEASE_TTL, CCCI_RESTIC, CCCI_CHECK_TIMEOUT
(each hook), CCCI_OVERLAYS_DIR, CCCI_ABRA, CCCI_ABRA_SERVER, CCCI_BACKUPBOT_REPOSITORY,
CCCI_BACKUPBOT_PASSWORD_FILE (abra driver).
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 backed up with evidence (or skipped), 1 the backup failed (a hook, missing
evidence), 2 bad input (also a state of another installation: its domain not
<run id>.$CCCI_DOMAIN_SUFFIX, its workspace not the registry's), 3 environment error (restic
or docker broke).
";

fn main() {
    cli::stage_main(BIN, HELP, backup::HOLDER, backup::run)
}
