//! One tick: for each enrolled repository, gather the facts from the forge and Drone, [`decide`],
//! and perform the actions in order, saving the state after each one (write-ahead: the status
//! comment and the `pending` status are on the forge and the run is saved before Drone is asked).
//!
//! Errors of one repository (the forge or Drone failing, a membership that could not be checked)
//! are logged and leave that repository's cursor where it was; the tick goes on with the others
//! and reports them at the end (exit 3). The forge being unreachable for the very first call
//! (`GET /user`) stops the tick before anything is touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::core::{
    self, Action, Decision, Effect, Facts, PrFacts, Refusal, RepoState, Run, Unix, Window, absorb_markers, decide,
    needs, pending_runs,
};
use super::http::{BuildParams, Drone, Forge, StatusState, Token};
use super::store::{BridgeState, SCHEMA, Store};
use crate::config;
use crate::error::{Error, Result};

/// The commit status context of the whole run; the tiers use `ccci/<tier>`.
pub const OVERALL_CONTEXT: &str = "ccci";

/// Everything a tick needs, from the `CCCI_BRIDGE_*` settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub forge_url: String,
    pub forge_token: Token,
    pub org: String,
    pub repos: Vec<String>,
    pub drone_url: String,
    pub drone_token: Token,
    pub drone_repo: String,
    pub state_dir: PathBuf,
    pub window: Window,
    pub timeout: Duration,
}

impl Settings {
    /// Every `CCCI_*` setting checked ([`config::check_all`]), then the bridge's required ones
    /// and the token files read. Bad input (exit 2) names the first setting that is wrong.
    pub fn from_env() -> Result<Settings> {
        config::check_all()?;
        Ok(Settings {
            forge_url: config::bridge_forge_url()?,
            forge_token: Token::read(&config::bridge_forge_token_file()?, "forge")?,
            org: config::bridge_org()?,
            repos: config::bridge_repos()?,
            drone_url: config::bridge_drone_url()?,
            drone_token: Token::read(&config::bridge_drone_token_file()?, "Drone")?,
            drone_repo: config::bridge_drone_repo()?,
            state_dir: config::bridge_state_dir()?,
            window: Window {
                lookback: config::duration(&config::BRIDGE_LOOKBACK)?.as_secs(),
                overlap: config::duration(&config::BRIDGE_OVERLAP)?.as_secs(),
            },
            timeout: config::duration(&config::BRIDGE_HTTP_TIMEOUT)?,
        })
    }
}

/// What the pipeline's `verify` and `publish` steps need: the forge, the bot's token, the
/// organisation.
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    pub forge_url: String,
    pub forge_token: Token,
    pub org: String,
    pub timeout: Duration,
}

impl ForgeSettings {
    /// Every `CCCI_*` setting checked, then `CCCI_BRIDGE_FORGE_URL`, `CCCI_BRIDGE_FORGE_TOKEN_FILE`
    /// and `CCCI_BRIDGE_ORG` required.
    pub fn from_env() -> Result<ForgeSettings> {
        config::check_all()?;
        Ok(ForgeSettings {
            forge_url: config::bridge_forge_url()?,
            forge_token: Token::read(&config::bridge_forge_token_file()?, "forge")?,
            org: config::bridge_org()?,
            timeout: config::duration(&config::BRIDGE_HTTP_TIMEOUT)?,
        })
    }

    pub fn forge(&self) -> Forge {
        Forge::new(&self.forge_url, &self.forge_token, self.timeout)
    }
}

/// Places a test may stop the tick, as a crash would. Production passes [`Hooks::none`].
pub struct Hooks<'a> {
    /// Called right after Drone answered a build request, before the answer is saved; an error
    /// ends the tick there.
    pub after_build_request: &'a mut dyn FnMut() -> Result<()>,
}

impl Hooks<'_> {
    pub fn none<R>(f: impl FnOnce(&mut Hooks<'_>) -> R) -> R {
        let mut ok = || Ok(());
        f(&mut Hooks { after_build_request: &mut ok })
    }
}

/// What a tick did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Each action, as one line (also what `--dry-run` prints).
    pub actions: Vec<String>,
    /// Each error or deferral, as one line (already logged).
    pub errors: Vec<String>,
}

/// One tick over every enrolled repository. `log` receives one line per event. With `dry_run`,
/// only `GET`s are made, nothing is saved and the actions are returned without being performed.
pub fn tick(s: &Settings, now: Unix, dry_run: bool, log: &dyn Fn(&str), hooks: &mut Hooks<'_>) -> Result<Outcome> {
    let forge = Forge::new(&s.forge_url, &s.forge_token, s.timeout);
    let drone = Drone::new(&s.drone_url, &s.drone_token, s.timeout);
    // Before anything is touched (not even the lock): an unreachable forge or a bad token stops here.
    let bot = forge.whoami().map_err(|e| e.context("asking the forge who the bot is"))?;
    let store = if dry_run { None } else { Some(Store::open(&s.state_dir)?) };
    let mut state = match &store {
        Some(st) => st.load()?,
        None => read_only(&s.state_dir)?,
    };
    let mut out = Outcome::default();
    for repo in &s.repos {
        let mut rs = state.repos.get(repo).cloned().unwrap_or_default();
        let facts = match gather(s, &forge, &drone, &bot, repo, &rs, now, &mut out, log) {
            Some(f) => f,
            None => continue,
        };
        let d = decide(&rs, &facts, s.window);
        for n in &d.notes {
            log(n);
        }
        for (comment, why) in &d.deferred {
            let line = format!("{repo}: comment {comment} deferred to the next tick: {why}");
            log(&line);
            out.errors.push(line);
        }
        for a in &d.actions {
            out.actions.push(format!("{repo}: {}", describe(a)));
        }
        let Some(store) = &store else { continue };
        absorb_markers(&mut rs, &facts);
        let ok = perform(s, &forge, &drone, repo, &d, &mut rs, &mut state, store, &mut out, log, hooks);
        // The cursor moves only when every action succeeded; the actions saved their own effects.
        if ok? {
            rs.cursor = d.cursor;
        }
        state.repos.insert(repo.clone(), rs);
        store.save(&state)?;
    }
    Ok(out)
}

/// The mark of an error a [`Hooks`] raised: the tick stops at once, like a crash.
pub const CRASH: &str = "simulated crash";

fn read_only(dir: &std::path::Path) -> Result<BridgeState> {
    match fs_err::read_to_string(dir.join("state.json")) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| Error::env(format!("{}: {e}", dir.join("state.json").display()))),
        Err(_) => Ok(BridgeState { schema: SCHEMA, repos: BTreeMap::new() }),
    }
}

/// The facts of one repository; `None` (logged) when its comments cannot be listed.
#[allow(clippy::too_many_arguments)]
fn gather(
    s: &Settings,
    forge: &Forge,
    drone: &Drone,
    bot: &str,
    repo: &str,
    rs: &RepoState,
    now: Unix,
    out: &mut Outcome,
    log: &dyn Fn(&str),
) -> Option<Facts> {
    let fail = |e: Error, out: &mut Outcome| {
        let line = format!("{repo}: {e}");
        log(&line);
        out.errors.push(line);
    };
    let since = match rs.cursor {
        Some(c) => c.saturating_sub(s.window.overlap),
        None => now.saturating_sub(s.window.lookback),
    };
    let comments = match forge.comments_since(repo, since) {
        Ok(c) => c,
        Err(e) => {
            fail(e.context("listing comments"), out);
            return None;
        }
    };
    let mut facts = Facts { now, bot: bot.into(), repo: repo.into(), comments, ..Default::default() };
    let (logins, prs) = needs(rs, &facts, s.window);
    for login in logins {
        let m = forge.membership(&s.org, &login);
        facts.membership.insert(login, m);
    }
    for pr in prs {
        let p = forge.pull(repo, pr).and_then(|p| Ok((p.clone(), forge.pushes_since(repo, pr, since)?)));
        let facts_pr = match p {
            Ok((p, pushes)) => PrFacts::Known { open: p.open, head: p.head, pushes },
            Err(e) => PrFacts::Unknown(e.to_string()),
        };
        facts.prs.insert(pr, facts_pr);
    }
    let (lookups, progress) = pending_runs(rs, &facts);
    if !lookups.is_empty() {
        match drone.find_builds(&s.drone_repo, &lookups) {
            Ok(found) => facts.lookups.extend(found),
            Err(e) => fail(e.context("searching Drone's builds by request id"), out),
        }
    }
    for (req, build) in progress {
        match drone.progress(&s.drone_repo, build) {
            Ok((p, _)) => {
                facts.progress.insert(req, p);
            }
            Err(e) => fail(e.context(format!("following build {build}")), out),
        }
    }
    Some(facts)
}

/// One line for an action.
pub fn describe(a: &Action) -> String {
    match a {
        Action::Refuse { comment, pr, author, why } => {
            let why = match why {
                Refusal::NotMember => "not a member of the organisation".to_string(),
                Refusal::PrClosed => "the pull request is closed".into(),
                Refusal::HeadMismatch { prefix, head } => format!("{prefix} is not the head {head}"),
                Refusal::PushedAfter { head } => format!("pushed to after the comment (head {head})"),
            };
            format!("refuse comment {comment} by {author} on pull request {pr}: {why}")
        }
        Action::Link { comment, pr, author, request_id } => {
            format!("link comment {comment} by {author} on pull request {pr} to the run {request_id} under way")
        }
        Action::Start(r) => format!(
            "start run {} for pull request {} at {} (comment {} by {})",
            r.request_id, r.pr, r.sha, r.comment, r.requester
        ),
        Action::Request { request_id } => format!("ask Drone for the build of run {request_id} (not found by its id)"),
        Action::Adopt { request_id, build } => format!("adopt build {build} for run {request_id} (found by its id)"),
        Action::Finish { request_id, passed } => {
            format!("run {request_id} finished ({})", if *passed { "passed" } else { "did not pass" })
        }
    }
}

/// The status comment: who asked for which commit, where the build is, and the marker.
pub fn status_body(run: &Run, note: &str) -> String {
    let marker = core::Marker::Status {
        request_id: run.request_id.clone(),
        pr: run.pr,
        sha: run.sha.clone(),
        comment: run.comment,
        requester: run.requester.clone(),
        build: run.build,
    };
    format!(
        "**ccci** test run of `{}`, asked for by @{} (request `{}`).\n\n{note}\n\n{}\n",
        &run.sha[..12.min(run.sha.len())],
        run.requester,
        run.request_id,
        marker.render()
    )
}

#[allow(clippy::too_many_arguments)]
fn perform(
    s: &Settings,
    forge: &Forge,
    drone: &Drone,
    repo: &str,
    d: &Decision,
    rs: &mut RepoState,
    state: &mut BridgeState,
    store: &Store,
    out: &mut Outcome,
    log: &dyn Fn(&str),
    hooks: &mut Hooks<'_>,
) -> Result<bool> {
    let mut save = |rs: &RepoState, state: &mut BridgeState| -> Result<()> {
        state.repos.insert(repo.to_string(), rs.clone());
        store.save(state)
    };
    let mut all_done = true;
    for a in &d.actions {
        log(&format!("{repo}: {}", describe(a)));
        // Each action on its own: one that fails (logged, retried next tick) does not hold back
        // the others, which concern other comments and runs.
        let r = (|| -> Result<()> {
            match a {
                Action::Refuse { comment, pr, author, why } => {
                    let body = format!(
                        "{}\n\n{}\n",
                        core::refusal_text(author, why),
                        core::Marker::Reply { comment: *comment }.render()
                    );
                    forge.post_comment(repo, *pr, &body)?;
                    core::apply(rs, a, &Effect::Replied);
                    save(rs, state)?;
                }
                Action::Link { comment, pr, author, request_id } => {
                    let run = rs.runs.get(request_id).cloned();
                    let at = match run.as_ref().and_then(|r| r.build) {
                        Some(b) => drone.link(&s.drone_repo, b),
                        None => run
                            .as_ref()
                            .and_then(|r| r.status_comment)
                            .map_or(String::new(), |c| format!("#issuecomment-{c}")),
                    };
                    let sha = run.as_ref().map_or("", |r| &r.sha[..12.min(r.sha.len())]).to_string();
                    let body = format!(
                        "@{author} a test run of `{sha}` is already under way: {at}\n\n{}\n",
                        core::Marker::Reply { comment: *comment }.render()
                    );
                    forge.post_comment(repo, *pr, &body)?;
                    core::apply(rs, a, &Effect::Replied);
                    save(rs, state)?;
                }
                Action::Start(run) => {
                    let body = status_body(run, "Waiting for Drone to start the build.");
                    let id = forge.post_comment(repo, run.pr, &body)?;
                    let desc = format!("queued: asked for by @{} (request {})", run.requester, run.request_id);
                    forge.set_status(repo, &run.sha, StatusState::Pending, OVERALL_CONTEXT, &desc, None)?;
                    // Every tier's status goes back to pending at once: an earlier run's green
                    // must not stand for this commit while it is tested again.
                    for t in super::publish::TIERS {
                        forge.set_status(repo, &run.sha, StatusState::Pending, &format!("ccci/{t}"), "queued", None)?;
                    }
                    core::apply(rs, a, &Effect::Acked { status_comment: id });
                    save(rs, state)?;
                    request(s, forge, drone, repo, a, rs, state, &mut save, out, log, hooks)?;
                }
                Action::Request { .. } => request(s, forge, drone, repo, a, rs, state, &mut save, out, log, hooks)?,
                Action::Adopt { request_id, build } => {
                    core::apply(rs, a, &Effect::Built { build: *build });
                    save(rs, state)?;
                    announce_build(s, forge, drone, repo, rs, request_id)?;
                }
                Action::Finish { request_id, passed } => {
                    let run = rs.runs.get(request_id).cloned();
                    if let (Some(run), Some(build)) = (run, rs.runs.get(request_id).and_then(|r| r.build)) {
                        // The pipeline publishes the statuses itself; a build that ended without
                        // passing or failing (killed, error) may not have, so the bridge says so.
                        if let Ok((_, status)) = drone.progress(&s.drone_repo, build)
                            && !*passed
                            && status != "failure"
                        {
                            let link = drone.link(&s.drone_repo, build);
                            forge.set_status(
                                repo,
                                &run.sha,
                                StatusState::Error,
                                OVERALL_CONTEXT,
                                &format!("the build ended as {status}"),
                                Some(&link),
                            )?;
                        }
                    }
                    core::apply(rs, a, &Effect::Finished);
                    save(rs, state)?;
                }
            }
            Ok(())
        })();
        if let Err(e) = r {
            if e.message().contains(CRASH) {
                return Err(e);
            }
            let line = format!("{repo}: {e}");
            log(&line);
            out.errors.push(line);
            all_done = false;
        }
    }
    Ok(all_done)
}

/// Asks Drone for the build of a saved run (phase `Requested`), then records the answer.
#[allow(clippy::too_many_arguments)]
fn request(
    s: &Settings,
    forge: &Forge,
    drone: &Drone,
    repo: &str,
    a: &Action,
    rs: &mut RepoState,
    state: &mut BridgeState,
    save: &mut dyn FnMut(&RepoState, &mut BridgeState) -> Result<()>,
    _out: &mut Outcome,
    log: &dyn Fn(&str),
    hooks: &mut Hooks<'_>,
) -> Result<()> {
    let request_id = match a {
        Action::Start(r) => r.request_id.clone(),
        Action::Request { request_id } => request_id.clone(),
        _ => unreachable!("only Start and Request ask for builds"),
    };
    let run = rs.runs.get(&request_id).cloned().ok_or_else(|| Error::env(format!("run {request_id} is not saved")))?;
    let params = BuildParams {
        request_id: run.request_id.clone(),
        recipe_repo: repo.to_string(),
        pr: run.pr,
        head_sha: run.sha.clone(),
        trigger: run.requester.clone(),
    };
    let answer = drone.create_build(&s.drone_repo, &params);
    (hooks.after_build_request)()?;
    match answer? {
        Some(build) => {
            core::apply(rs, a, &Effect::Built { build });
            save(rs, state)?;
            log(&format!("{repo}: run {request_id} is build {}", drone.link(&s.drone_repo, build)));
            announce_build(s, forge, drone, repo, rs, &request_id)
        }
        None => {
            let why =
                "Drone started no build: no pipeline matched the request (its `trigger.event` must include `custom`).";
            core::apply(rs, a, &Effect::NoPipeline);
            save(rs, state)?;
            forge.set_status(repo, &run.sha, StatusState::Error, OVERALL_CONTEXT, "no pipeline ran", None)?;
            if let Some(c) = run.status_comment {
                forge.edit_comment(repo, c, &status_body(&run, why))?;
            }
            Err(Error::env(format!("run {request_id}: {why}")))
        }
    }
}

/// The status comment and the `pending` status now point at the build.
fn announce_build(
    s: &Settings,
    forge: &Forge,
    drone: &Drone,
    repo: &str,
    rs: &RepoState,
    request_id: &str,
) -> Result<()> {
    let Some(run) = rs.runs.get(request_id) else { return Ok(()) };
    let Some(build) = run.build else { return Ok(()) };
    let link = drone.link(&s.drone_repo, build);
    let note = format!("Build [#{build}]({link}) is under way; its report replaces this text when it is done.");
    if let Some(c) = run.status_comment {
        forge.edit_comment(repo, c, &status_body(run, &note))?;
    }
    let desc = format!("build #{build}: asked for by @{}", run.requester);
    forge.set_status(repo, &run.sha, StatusState::Pending, OVERALL_CONTEXT, &desc, Some(&link))
}

/// `ccci-bridge check-config`: each check as (passed, one line). The forge token must name the
/// bot, the bot must be a member of the organisation (otherwise every membership question is
/// redirected and nothing is ever authorised), each repository must be readable with its
/// comments, and the Drone token must see the pipeline's repository.
pub fn check_config(s: &Settings) -> Vec<(bool, String)> {
    let forge = Forge::new(&s.forge_url, &s.forge_token, s.timeout);
    let drone = Drone::new(&s.drone_url, &s.drone_token, s.timeout);
    let mut out = vec![];
    let bot = match forge.whoami() {
        Ok(b) => {
            out.push((true, format!("the forge token is the bot {b} at {}", s.forge_url)));
            b
        }
        Err(e) => {
            out.push((false, format!("the forge token: {e}")));
            return out;
        }
    };
    match forge.membership(&s.org, &bot) {
        core::Membership::Member => out.push((true, format!("{bot} is a member of {}", s.org))),
        other => out.push((false, format!("{bot} must be a member of {} to see its members: {other:?}", s.org))),
    }
    for repo in &s.repos {
        let r = forge.repository(repo).and_then(|()| forge.comments_since(repo, crate::time::unix_now()));
        match r {
            Ok(_) => out.push((true, format!("{repo}: readable, comments listed"))),
            Err(e) => out.push((false, format!("{repo}: {e}"))),
        }
    }
    match drone.check(&s.drone_repo) {
        Ok(login) => out.push((true, format!("Drone: the token is {login}; {} is visible", s.drone_repo))),
        Err(e) => out.push((false, format!("Drone: {e}"))),
    }
    out
}
