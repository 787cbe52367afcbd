//! ccci-bridge: `!testme` on a pull request → one Drone build bound to that commit.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ccci::bridge::publish::{self, Request};
use ccci::bridge::tick::{self, ForgeSettings, Hooks, Settings};
use ccci::error::exit;
use ccci::{Result, cli};

const BIN: &str = "ccci-bridge";

const HELP: &str = "\
ccci-bridge: start one Drone build for each `!testme` a member writes on a recipe pull request.

Usage: ccci-bridge tick [--dry-run]
       ccci-bridge check-config
       ccci-bridge verify  RUN --recipe-url URL [--refusal FILE]
       ccci-bridge publish RUN [--state FILE] [--refusal FILE] [--link URL] [--build N]
  where RUN is --request ID --recipe-repo OWNER/NAME --pr N --sha COMMIT --trigger LOGIN
  (the build parameters CCCI_REQUEST_ID, CCCI_RECIPE_REPO, CCCI_PR, CCCI_HEAD_SHA, CCCI_TRIGGER)

Commands:
  tick          one pass over every enrolled repository (run it from a timer): list the comments
                since the saved cursor, authorise each `!testme` by organisation membership, bind
                it to the pull request's head, post the status comment and a pending status, save
                the state, then ask Drone for the build; follow builds under way
  check-config  check that the settings are complete and that both tokens can read what they must
                (the bot, its own membership, each repository, the Drone repository)
  verify        (pipeline, first step) the requester is still a member of the organisation and the
                pull request's head (refs/pull/N/head of URL) is still COMMIT; otherwise nothing
                may be tested: the reason goes to the --refusal FILE and the exit status is 1
  publish       (pipeline, last step, also after failures) edit the bridge's status comment in
                place with the Markdown report of the run-state FILE (or the refusal), and set the
                commit statuses ccci/install, ccci/upgrade, ccci/backup, ccci/restore, ccci/custom
                and ccci on COMMIT, each linking the build (--link)

Options:
  --dry-run     (tick) ask the forge and Drone, print the decisions on stdout, change nothing
  -h, --help    this text
  -V, --version the version

Settings (environment; see docs/operating.md and docs/bridge.md): CCCI_BRIDGE_FORGE_URL,
CCCI_BRIDGE_FORGE_TOKEN_FILE, CCCI_BRIDGE_ORG, CCCI_BRIDGE_REPOS, CCCI_BRIDGE_DRONE_URL,
CCCI_BRIDGE_DRONE_TOKEN_FILE, CCCI_BRIDGE_DRONE_REPO (required); CCCI_BRIDGE_STATE_DIR (default
$CCCI_STATE_DIR/bridge), CCCI_BRIDGE_LOOKBACK, CCCI_BRIDGE_OVERLAP, CCCI_BRIDGE_HTTP_TIMEOUT.
Tokens are read from the files and sent only in the Authorization header.

Exit status: 0 the tick did everything it decided (verify: the run may go on; publish: all was
published), 1 (verify) the run must not test anything, 2 bad settings or usage (nothing changed),
3 the forge or Drone failed (one line each; what failed is retried next tick, and an unreachable
forge changes nothing).
";

/// Every command the bridge accepts, in the order `--help` lists them.
const COMMANDS: [&str; 4] = ["tick", "check-config", "verify", "publish"];

fn main() {
    cli::main(BIN, |progress| {
        let mut p = lexopt::Parser::from_env();
        let (mut command, mut dry_run) = (None::<String>, false);
        let mut opts: BTreeMap<&'static str, String> = BTreeMap::new();
        const VALUED: [&str; 10] =
            ["request", "recipe-repo", "pr", "sha", "trigger", "recipe-url", "refusal", "state", "link", "build"];
        while let Some(arg) = p.next().map_err(|e| cli::usage(BIN, e))? {
            use lexopt::prelude::*;
            match arg {
                Long("dry-run") => dry_run = true,
                Long(name) if VALUED.contains(&name) => {
                    let key = VALUED.into_iter().find(|v| *v == name).expect("listed");
                    let v = cli::value_string(BIN, p.value(), &format!("--{key}"))?;
                    if opts.insert(key, v).is_some() {
                        return Err(cli::repeated(BIN, &format!("--{key}")));
                    }
                }
                Short('h') | Long("help") => return cli::print_help(HELP),
                Short('V') | Long("version") => return cli::print_version(BIN),
                Value(v) if command.is_none() => {
                    let v = v.into_string().map_err(|_| ccci::Error::bad_input("the command must be UTF-8"))?;
                    if !COMMANDS.contains(&v.as_str()) {
                        return Err(ccci::Error::bad_input(format!("unknown command {v:?} (see {BIN} --help)")));
                    }
                    command = Some(v);
                }
                _ => return Err(cli::unexpected(BIN, arg)),
            }
        }
        let Some(command) = command else {
            return Err(ccci::Error::bad_input(format!(
                "a command is needed: {} or {} (see {BIN} --help)",
                COMMANDS[..COMMANDS.len() - 1].join(", "),
                COMMANDS[COMMANDS.len() - 1]
            )));
        };
        if dry_run && command != "tick" {
            return Err(ccci::Error::bad_input(format!("--dry-run goes with tick (see {BIN} --help)")));
        }
        let log = |line: &str| progress.log(line);
        match command.as_str() {
            "tick" => run_tick(&Settings::from_env()?, dry_run, &log),
            "check-config" => check_config(&Settings::from_env()?, &log),
            "verify" => verify(&opts, &log),
            _ => run_publish(&opts, &log),
        }
    })
}

/// The options of `verify` and `publish`: RUN required, the others as allowed.
fn request(opts: &BTreeMap<&str, String>, allowed: &[&str]) -> ccci::Result<Request> {
    if let Some(k) = opts.keys().find(|k| !allowed.contains(k)) {
        return Err(ccci::Error::bad_input(format!("--{k} does not go with this command (see {BIN} --help)")));
    }
    let get = |k: &str| {
        opts.get(k)
            .map(String::as_str)
            .ok_or_else(|| ccci::Error::bad_input(format!("--{k} is required (see {BIN} --help)")))
    };
    Request::parse(get("request")?, get("recipe-repo")?, get("pr")?, get("sha")?, get("trigger")?)
}

const RUN: [&str; 5] = ["request", "recipe-repo", "pr", "sha", "trigger"];

fn verify(opts: &BTreeMap<&str, String>, log: &dyn Fn(&str)) -> Result<i32> {
    let allowed: Vec<&str> = RUN.iter().copied().chain(["recipe-url", "refusal"]).collect();
    let req = request(opts, &allowed)?;
    let url = opts.get("recipe-url").ok_or_else(|| ccci::Error::bad_input("--recipe-url is required"))?;
    let refusal = opts.get("refusal").map(PathBuf::from);
    let s = ForgeSettings::from_env()?;
    match publish::verify(&s.forge(), &s.org, &req, url) {
        Ok(()) => {
            log(&format!(
                "@{} is a member of {} and pull request {} is still at {}",
                req.trigger, s.org, req.pr, req.sha
            ));
            Ok(exit::PASS)
        }
        Err(e) => {
            if let Some(f) = refusal {
                ccci::run::state::write_atomic(&f, format!("{e}\n").as_bytes())?;
            }
            Err(e)
        }
    }
}

fn run_publish(opts: &BTreeMap<&str, String>, log: &dyn Fn(&str)) -> Result<i32> {
    let allowed: Vec<&str> = RUN.iter().copied().chain(["state", "refusal", "link", "build"]).collect();
    let req = request(opts, &allowed)?;
    let build = match opts.get("build").filter(|b| !b.is_empty()) {
        Some(b) => {
            Some(b.parse::<u64>().map_err(|_| ccci::Error::bad_input(format!("--build {b:?} is not a build number")))?)
        }
        None => None,
    };
    let link = opts.get("link").map(String::as_str).filter(|l| !l.is_empty());
    if let Some(l) = link
        && !(l.starts_with("https://") || l.starts_with("http://"))
    {
        return Err(ccci::Error::bad_input(format!("--link {l:?} is not an http(s) URL")));
    }
    let refusal = match opts.get("refusal") {
        Some(f) => publish::read_refusal(std::path::Path::new(f))?,
        None => None,
    };
    // A run-state that is missing (deploy never started) or unreadable is reported as such.
    let state = match opts.get("state") {
        Some(f) if std::path::Path::new(f).exists() => match cli::state_in(Some(PathBuf::from(f))).read() {
            Ok(s) => Some(s),
            Err(e) => {
                log(&format!("the run-state cannot be read ({e}); publishing that the run recorded nothing"));
                None
            }
        },
        _ => None,
    };
    let s = ForgeSettings::from_env()?;
    publish::publish(&s.forge(), &req, state.as_ref(), refusal.as_deref(), link, build)?;
    log(&format!("published the results of request {} on {} pull request {}", req.request_id, req.recipe_repo, req.pr));
    Ok(exit::PASS)
}

fn run_tick(s: &Settings, dry_run: bool, log: &dyn Fn(&str)) -> Result<i32> {
    let now = ccci::time::unix_now();
    let out = Hooks::none(|hooks| tick::tick(s, now, dry_run, log, hooks))?;
    if dry_run {
        let lines: String = out.actions.iter().map(|a| format!("{a}\n")).collect();
        cli::out("the decisions", &lines)?;
    }
    if out.errors.is_empty() {
        Ok(exit::PASS)
    } else {
        Err(ccci::Error::env(format!(
            "{} problem(s) this tick, each logged above; retried next tick",
            out.errors.len()
        )))
    }
}

fn check_config(s: &Settings, log: &dyn Fn(&str)) -> Result<i32> {
    let report = tick::check_config(s);
    let failed = report.iter().filter(|(ok, _)| !ok).count();
    let lines: String =
        report.iter().map(|(ok, line)| format!("{}: {line}\n", if *ok { "ok" } else { "FAILED" })).collect();
    cli::out("the checks", &lines)?;
    log(&format!("{} check(s), {failed} failed", report.len()));
    if failed == 0 {
        Ok(exit::PASS)
    } else {
        Err(ccci::Error::env(format!("{failed} check(s) failed (listed on stdout)")))
    }
}
