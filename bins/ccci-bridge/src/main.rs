//! ccci-bridge: `!testme` on a pull request → one Drone build bound to that commit.

use ccci::bridge::tick::{self, Hooks, Settings};
use ccci::{Result, cli};

const BIN: &str = "ccci-bridge";

const HELP: &str = "\
ccci-bridge: start one Drone build for each `!testme` a member writes on a recipe pull request.

Usage: ccci-bridge tick [--dry-run]
       ccci-bridge check-config

Commands:
  tick          one pass over every enrolled repository (run it from a timer): list the comments
                since the saved cursor, authorise each `!testme` by organisation membership, bind
                it to the pull request's head, post the status comment and a pending status, save
                the state, then ask Drone for the build; follow builds under way
  check-config  check that the settings are complete and that both tokens can read what they must
                (the bot, its own membership, each repository, the Drone repository)

Options:
  --dry-run     (tick) ask the forge and Drone, print the decisions on stdout, change nothing
  -h, --help    this text
  -V, --version the version

Settings (environment; see docs/operating.md and docs/bridge.md): CCCI_BRIDGE_FORGE_URL,
CCCI_BRIDGE_FORGE_TOKEN_FILE, CCCI_BRIDGE_ORG, CCCI_BRIDGE_REPOS, CCCI_BRIDGE_DRONE_URL,
CCCI_BRIDGE_DRONE_TOKEN_FILE, CCCI_BRIDGE_DRONE_REPO (required); CCCI_BRIDGE_STATE_DIR,
CCCI_BRIDGE_LOOKBACK, CCCI_BRIDGE_OVERLAP, CCCI_BRIDGE_HTTP_TIMEOUT. Tokens are read from the
files and sent only in the Authorization header.

Exit status: 0 the tick did everything it decided, 2 bad settings or usage (nothing changed),
3 the forge or Drone failed (one line each; what failed is retried next tick, and an unreachable
forge changes nothing).
";

fn main() {
    cli::main(BIN, |progress| {
        let mut p = lexopt::Parser::from_env();
        let (mut command, mut dry_run) = (None::<String>, false);
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("dry-run") => dry_run = true,
                Short('h') | Long("help") => return Ok(cli::print_help(HELP)),
                Short('V') | Long("version") => return Ok(cli::print_version(BIN)),
                Value(v) if command.is_none() => {
                    let v = v.into_string().map_err(|_| ccci::Error::bad_input("the command must be UTF-8"))?;
                    if v != "tick" && v != "check-config" {
                        return Err(ccci::Error::bad_input(format!("unknown command {v:?} (see {BIN} --help)")));
                    }
                    command = Some(v);
                }
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let Some(command) = command else {
            return Err(ccci::Error::bad_input(format!(
                "a command is needed: tick or check-config (see {BIN} --help)"
            )));
        };
        if dry_run && command != "tick" {
            return Err(ccci::Error::bad_input(format!("--dry-run goes with tick (see {BIN} --help)")));
        }
        let settings = Settings::from_env()?;
        let log = |line: &str| progress.log(line);
        match command.as_str() {
            "tick" => run_tick(&settings, dry_run, &log),
            _ => check_config(&settings, &log),
        }
    })
}

fn run_tick(s: &Settings, dry_run: bool, log: &dyn Fn(&str)) -> Result<i32> {
    let now = ccci::time::unix_now();
    let out = Hooks::none(|hooks| tick::tick(s, now, dry_run, log, hooks))?;
    if dry_run {
        for a in &out.actions {
            println!("{a}");
        }
    }
    if out.errors.is_empty() {
        Ok(0)
    } else {
        Err(ccci::Error::env(format!(
            "{} problem(s) this tick, each logged above; retried next tick",
            out.errors.len()
        )))
    }
}

fn check_config(s: &Settings, log: &dyn Fn(&str)) -> Result<i32> {
    let report = tick::check_config(s);
    let mut failed = 0;
    for (ok, line) in &report {
        if *ok {
            println!("ok: {line}");
        } else {
            failed += 1;
            println!("FAILED: {line}");
        }
    }
    log(&format!("{} check(s), {failed} failed", report.len()));
    if failed == 0 { Ok(0) } else { Err(ccci::Error::env(format!("{failed} check(s) failed (listed on stdout)"))) }
}
