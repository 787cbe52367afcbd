//! ccci-janitor: one pass of the reaper of abandoned runs.

use std::sync::Mutex;

use ccci::cli;
use ccci::error::exit;
use ccci::ops::janitor::{self, Options};
use ccci::run::registry::Registry;

const BIN: &str = "ccci-janitor";

const HELP: &str = "\
ccci-janitor: tear down what killed or abandoned runs left behind. One invocation is one pass;
a timer repeats it.

Usage: ccci-janitor [--dry-run]

Reaps, with the same teardown as ccci-teardown:
  - registered runs ($CCCI_STATE_DIR/runs/) whose lease expired more than CCCI_JANITOR_GRACE ago,
    from the registry entry alone;
  - stacks, secrets, volumes, ... and workspaces named like a ccci run (<run id>_<domain suffix>)
    that have no registry entry, once their newest object is older than CCCI_ORPHAN_GRACE.
  - diagnostics ($CCCI_STATE_DIR/artifacts/<run>/) of runs no longer registered, once older than
    CCCI_ARTIFACTS_TTL (default 7 days).
A registry entry that is unreadable, corrupt or of another installation (another domain
suffix, a workspace elsewhere) is one audit line (\"action\":\"skip\",\"result\":\"error\") and
left alone (the pass then exits 1); the pass goes on with the others. Never anything outside
that naming. Runs are reaped in parallel (CCCI_JANITOR_PARALLEL); two janitors at once are safe.

Prints one JSON line per action on stdout (the audit trail):
  {\"action\":\"reap\",\"run\":\"hell-3fa9c2\",\"stack\":\"...\",\"why\":\"...\",\"result\":\"pass\",\"detail\":\"...\"}
Progress goes to stderr.

Options:
  --dry-run      say what would be reaped, change nothing
  -h, --help     this text
  -V, --version  the version

Environment: CCCI_STATE_DIR, CCCI_DOMAIN_SUFFIX, CCCI_JANITOR_GRACE (default 60s),
CCCI_ORPHAN_GRACE (default 10m), CCCI_JANITOR_PARALLEL (default 3), CCCI_ARTIFACTS_TTL,
CCCI_LEASE_TTL, CCCI_TEARDOWN_TIMEOUT, CCCI_ABRA, CCCI_ABRA_SERVER.
Every CCCI_* setting is checked, with its bounds, before anything is created; a bad one
exits 2 naming it.

Exit status: 0 everything reaped (or nothing to do), 1 a reap left something behind or a
registry entry is invalid (left alone), 2 bad input, 3 environment error (also: the audit
trail could not be written to stdout).
";

fn main() {
    cli::main(BIN, |progress| {
        let mut dry_run = false;
        let mut p = lexopt::Parser::from_env();
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("dry-run") => dry_run = true,
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        ccci::config::check_all()?;
        let opts = Options::from_env(dry_run)?;
        // A dry run changes nothing, and creates nothing either: not even the registry.
        let registry = if dry_run { Registry::look()? } else { Registry::open()? };
        // An audit line that cannot be written (a closed pipe) does not stop the pass halfway
        // through a reap: the pass goes on, and then ends as the environment's error (exit 3).
        let unwritten = Mutex::new(None::<ccci::Error>);
        let emit = |a: &janitor::Action| {
            let line = serde_json::to_string(a).expect("action serialises");
            if let Err(e) = cli::out("the audit trail", &format!("{line}\n")) {
                unwritten.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
            }
        };
        let actions = janitor::pass(&opts, &registry, &emit)?;
        let failed = actions.iter().filter(|a| a.result == "fail" || a.result == "error").count();
        progress.log(format!("{}, {failed} failed", ccci::words::count(actions.len(), "action", "actions")));
        if let Some(e) = unwritten.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        Ok(if failed == 0 { exit::PASS } else { exit::FAILED })
    })
}
