//! The bridge's decisions, as pure functions: what one tick must do for one enrolled repository,
//! given what the forge and Drone answered. Nothing here performs I/O or reads a clock; the
//! driver ([`super::tick`]) gathers the facts, calls [`decide`], performs the actions in order
//! and records each one's effect with [`apply`].
//!
//! The trust rules (docs/bridge.md):
//! - a request is a whole line `!testme` or `!testme <7 to 40 hex digits>` in a comment on a pull
//!   request, not written by the bot;
//! - the author must be a member of the organisation: a "member" answer (204) is needed, a "not a
//!   member" answer (404) gets one polite refusal, any other answer (a redirect, 5xx, a timeout)
//!   defers the comment to the next tick without a build (fail closed);
//! - a request binds to one commit: the pull request must be open; with a prefix the head must
//!   start with it; without one, a push at or after the comment's time refuses it (the author is
//!   asked for `!testme <sha>`); the same (pull request, commit) already being tested gets a link;
//! - each accepted comment becomes exactly one run whose request id is derived from the
//!   repository and the comment id, so a lost state file or a crash can never mint a second one.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Seconds since the Unix epoch (the forge's timestamps, parsed).
pub type Unix = u64;

/// One issue comment of an enrolled repository, as the forge listed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    pub id: u64,
    /// The pull request's number when the comment is on a pull request, `None` on an issue.
    pub pr: Option<u64>,
    pub author: String,
    pub body: String,
    pub created_at: Unix,
    pub updated_at: Unix,
}

/// What the organisation-membership endpoint answered for one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// 204: a member.
    Member,
    /// 404: not a member (or no such user).
    NotMember,
    /// Anything else (a redirect because the bot is not a member itself, 5xx, a timeout), with
    /// what happened. Never a build; retried next tick.
    Unknown(String),
}

/// What the forge said about one pull request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrFacts {
    Known {
        open: bool,
        /// The head commit, 40 hex digits.
        head: String,
        /// When pushes to the pull request happened (`pull_push` timeline entries).
        pushes: Vec<Unix>,
    },
    /// The forge could not say (an error or timeout): decided next tick.
    Unknown(String),
}

/// What Drone's build list said about one request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildLookup {
    /// A build carrying this request id exists: its number.
    Found(u64),
    /// Drone answered and no recent build carries it.
    NotFound,
}

/// Whether a known build has finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildProgress {
    Running,
    /// Done, with whether it passed.
    Done {
        passed: bool,
    },
}

/// Everything one tick knows about one repository. Facts that are absent were not asked for or
/// could not be had; the decision waits for them (no action), never guesses.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: Unix,
    /// The bot's own login (its comments are never requests).
    pub bot: String,
    /// `owner/name` of the enrolled repository.
    pub repo: String,
    /// The comments listed since the cursor (with overlap), in any order.
    pub comments: Vec<Comment>,
    pub membership: BTreeMap<String, Membership>,
    pub prs: BTreeMap<u64, PrFacts>,
    /// Drone's answer, by request id, for runs whose build number is not known.
    pub lookups: BTreeMap<String, BuildLookup>,
    /// Drone's answer, by request id, for runs whose build is known.
    pub progress: BTreeMap<String, BuildProgress>,
}

/// How far back a cold start (no cursor) looks, and how much each tick re-reads before its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Seconds a cold start looks back.
    pub lookback: u64,
    /// Seconds each listing re-reads before the cursor (the forge's `since` has second
    /// resolution and edits move comments around).
    pub overlap: u64,
}

/// Where one run is. Saved in the state and shown in the marker (by the build number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The status comment and the pending status are posted; the build may or may not have been
    /// asked for (a crash in between): Drone is searched by request id before asking.
    Requested,
    /// Drone created build `build`.
    Building,
    /// The build finished, or Drone refused to run one.
    Done,
}

/// One accepted request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub request_id: String,
    pub pr: u64,
    /// The commit under test, 40 hex digits.
    pub sha: String,
    /// The `!testme` comment.
    pub comment: u64,
    /// Who asked.
    pub requester: String,
    /// The bot's status comment, once posted.
    pub status_comment: Option<u64>,
    pub build: Option<u64>,
    pub phase: Phase,
}

/// The bridge's memory of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoState {
    /// The newest `updated_at` fully handled; `None` before the first tick (a cold start).
    pub cursor: Option<Unix>,
    /// Comments already decided (accepted, refused or linked): never decided again.
    pub seen: BTreeSet<u64>,
    /// Runs by request id.
    pub runs: BTreeMap<String, Run>,
}

/// Why a request is refused, each with the reply the author reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotMember,
    PrClosed,
    /// `!testme <prefix>` and the head is another commit.
    HeadMismatch {
        prefix: String,
        head: String,
    },
    /// `!testme` and the pull request was pushed to at or after the comment.
    PushedAfter {
        head: String,
    },
}

/// One thing the driver must do, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Reply once to `comment` on `pr` and mark the comment seen.
    Refuse { comment: u64, pr: u64, author: String, why: Refusal },
    /// The same (pull request, commit) is already being tested: reply with its link, mark seen.
    Link { comment: u64, pr: u64, author: String, request_id: String },
    /// Write ahead: post the status comment with its marker and a `pending` status, save the
    /// state, then ask Drone for the build.
    Start(Run),
    /// A run whose build was asked for is not in Drone (the ask failed or never happened): ask.
    Request { request_id: String },
    /// A run whose build number was lost is in Drone as `build`: adopt it.
    Adopt { request_id: String, build: u64 },
    /// The build finished.
    Finish { request_id: String, passed: bool },
}

/// What one tick decided for one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Comments left for the next tick and why (logged).
    pub deferred: Vec<(u64, String)>,
    /// Lines for the log (a cold start says how far it looks back).
    pub notes: Vec<String>,
    /// The cursor to save once every action succeeded.
    pub cursor: Option<Unix>,
}

/// A parsed request: `!testme` alone, or with the sha prefix given (lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub prefix: Option<String>,
}

/// The first whole line of `body` that reads `!testme` or `!testme <7-40 hex digits>`,
/// surrounded by optional blanks. `!testmexyz`, `> !testme`, `!testme please` are not requests.
pub fn parse_command(body: &str) -> Option<Command> {
    body.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "!testme" {
            return None;
        }
        match (words.next(), words.next()) {
            (None, _) => Some(Command { prefix: None }),
            (Some(p), None) if (7..=40).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(Command { prefix: Some(p.to_ascii_lowercase()) })
            }
            _ => None,
        }
    })
}

/// The request id of comment `comment` in repository `repo`: 16 hex digits of
/// SHA-256(`repo#comment`). Deterministic, so a lost state file or a crash finds the same run.
pub fn request_id(repo: &str, comment: u64) -> String {
    let digest = Sha256::digest(format!("{repo}#{comment}").as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

const MARKER_OPEN: &str = "<!-- ccci-bridge v1 ";

/// A hidden marker the bot leaves in each of its comments, so its memory can be rebuilt from
/// the forge alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// In a status comment: `<!-- ccci-bridge v1 req=<id> pr=<n> sha=<40 hex> comment=<id>
    /// by=<login> build=<n|-> -->`.
    Status { request_id: String, pr: u64, sha: String, comment: u64, requester: String, build: Option<u64> },
    /// In a refusal or link reply: `<!-- ccci-bridge v1 reply comment=<id> -->`.
    Reply { comment: u64 },
}

impl Marker {
    pub fn render(&self) -> String {
        match self {
            Marker::Status { request_id, pr, sha, comment, requester, build } => {
                let build = build.map_or("-".to_string(), |b| b.to_string());
                format!(
                    "{MARKER_OPEN}req={request_id} pr={pr} sha={sha} comment={comment} by={requester} build={build} -->"
                )
            }
            Marker::Reply { comment } => format!("{MARKER_OPEN}reply comment={comment} -->"),
        }
    }

    /// The first marker in `body`, if any is well formed.
    pub fn find(body: &str) -> Option<Marker> {
        let start = body.find(MARKER_OPEN)? + MARKER_OPEN.len();
        let inner = &body[start..start + body[start..].find("-->")?];
        let mut fields = BTreeMap::new();
        let mut reply = false;
        for word in inner.split_whitespace() {
            match word.split_once('=') {
                Some((k, v)) => {
                    fields.insert(k, v);
                }
                None if word == "reply" => reply = true,
                None => return None,
            }
        }
        let comment = fields.get("comment")?.parse().ok()?;
        if reply {
            return Some(Marker::Reply { comment });
        }
        let sha = fields.get("sha")?.to_string();
        let request_id = fields.get("req")?.to_string();
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) || request_id.is_empty() {
            return None;
        }
        let build = match *fields.get("build")? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        Some(Marker::Status {
            request_id,
            pr: fields.get("pr")?.parse().ok()?,
            sha,
            comment,
            requester: fields.get("by")?.to_string(),
            build,
        })
    }
}

/// Folds the markers of the bot's own comments into `state`: comments they answer are seen, and
/// runs missing from the state come back (with the build number the marker carries; without
/// one, as `Requested`, so Drone is searched by request id before anything is asked).
pub fn absorb_markers(state: &mut RepoState, facts: &Facts) {
    for c in facts.comments.iter().filter(|c| c.author == facts.bot) {
        match Marker::find(&c.body) {
            Some(Marker::Reply { comment }) => {
                state.seen.insert(comment);
            }
            Some(Marker::Status { request_id, pr, sha, comment, requester, build }) => {
                state.seen.insert(comment);
                state.runs.entry(request_id.clone()).or_insert(Run {
                    request_id,
                    pr,
                    sha,
                    comment,
                    requester,
                    status_comment: Some(c.id),
                    phase: if build.is_some() { Phase::Building } else { Phase::Requested },
                    build,
                });
            }
            None => {}
        }
    }
}

/// The logins whose membership and the pull requests whose facts [`decide`] will need: the
/// authors and pull requests of the requests not yet seen.
pub fn needs(state: &RepoState, facts: &Facts, window: Window) -> (BTreeSet<String>, BTreeSet<u64>) {
    let mut state = state.clone();
    absorb_markers(&mut state, facts);
    let floor = floor(&state, facts.now, window);
    let mut logins = BTreeSet::new();
    let mut prs = BTreeSet::new();
    for (c, _) in requests(&state, facts, floor) {
        logins.insert(c.author.clone());
        prs.insert(c.pr.expect("requests are on pull requests"));
    }
    (logins, prs)
}

/// The runs whose Drone build must be searched by request id (`lookups`), and those whose build
/// progress is wanted (`progress`).
pub fn pending_runs(state: &RepoState, facts: &Facts) -> (Vec<String>, Vec<(String, u64)>) {
    let mut state = state.clone();
    absorb_markers(&mut state, facts);
    let lookups = state.runs.values().filter(|r| r.phase == Phase::Requested).map(|r| r.request_id.clone()).collect();
    let progress = state
        .runs
        .values()
        .filter(|r| r.phase == Phase::Building)
        .filter_map(|r| Some((r.request_id.clone(), r.build?)))
        .collect();
    (lookups, progress)
}

/// The oldest creation time a comment may have to count: the cursor less the overlap, or on a
/// cold start `now` less the look-back window.
fn floor(state: &RepoState, now: Unix, window: Window) -> Unix {
    match state.cursor {
        Some(c) => c.saturating_sub(window.overlap),
        None => now.saturating_sub(window.lookback),
    }
}

/// The unseen requests (on pull requests, not by the bot, created at or after `floor`), oldest
/// first (by creation time, then id), each once.
fn requests<'a>(state: &RepoState, facts: &'a Facts, floor: Unix) -> Vec<(&'a Comment, Command)> {
    let mut out: Vec<(&Comment, Command)> = facts
        .comments
        .iter()
        .filter(|c| c.pr.is_some() && c.author != facts.bot && !state.seen.contains(&c.id) && c.created_at >= floor)
        .filter_map(|c| Some((c, parse_command(&c.body)?)))
        .collect();
    out.sort_by_key(|(c, _)| (c.created_at, c.id));
    out.dedup_by_key(|(c, _)| c.id);
    out
}

/// What to do for one repository this tick. Pure: the same state and facts give the same
/// decision, and after [`apply`]ing its actions, deciding again on the same facts gives no action.
pub fn decide(state: &RepoState, facts: &Facts, window: Window) -> Decision {
    let mut state = state.clone();
    absorb_markers(&mut state, facts);
    let mut d = Decision::default();
    if state.cursor.is_none() {
        d.notes.push(format!(
            "{}: no saved cursor: a cold start, so only comments from the last {}s are considered",
            facts.repo, window.lookback
        ));
    }

    // Runs already under way first: find lost builds, follow running ones.
    for run in state.runs.values() {
        match run.phase {
            Phase::Requested => match facts.lookups.get(&run.request_id) {
                Some(BuildLookup::Found(build)) => {
                    d.actions.push(Action::Adopt { request_id: run.request_id.clone(), build: *build })
                }
                Some(BuildLookup::NotFound) => d.actions.push(Action::Request { request_id: run.request_id.clone() }),
                None => {}
            },
            Phase::Building => {
                if let Some(BuildProgress::Done { passed }) = facts.progress.get(&run.request_id) {
                    d.actions.push(Action::Finish { request_id: run.request_id.clone(), passed: *passed });
                }
            }
            Phase::Done => {}
        }
    }

    // New requests, oldest first; one accepted here counts as running for the later ones.
    let floor = floor(&state, facts.now, window);
    let mut running: BTreeMap<(u64, String), String> = state
        .runs
        .values()
        .filter(|r| r.phase != Phase::Done)
        .map(|r| ((r.pr, r.sha.clone()), r.request_id.clone()))
        .collect();
    // The earliest creation time of a deferred comment: the cursor must not pass it.
    let mut hold: Option<Unix> = None;
    for (c, cmd) in requests(&state, facts, floor) {
        let pr = c.pr.expect("requests are on pull requests");
        let author = c.author.clone();
        let mut defer = |why: String, d: &mut Decision| {
            d.deferred.push((c.id, why));
            hold = Some(hold.map_or(c.created_at, |h: Unix| h.min(c.created_at)));
        };
        match facts.membership.get(&c.author) {
            None => {
                defer(format!("membership of {} not known yet", c.author), &mut d);
                continue;
            }
            Some(Membership::Unknown(why)) => {
                defer(format!("membership of {} could not be checked: {why}", c.author), &mut d);
                continue;
            }
            Some(Membership::NotMember) => {
                d.actions.push(Action::Refuse { comment: c.id, pr, author, why: Refusal::NotMember });
                continue;
            }
            Some(Membership::Member) => {}
        }
        let (open, head, pushes) = match facts.prs.get(&pr) {
            Some(PrFacts::Known { open, head, pushes }) => (*open, head, pushes),
            Some(PrFacts::Unknown(why)) => {
                defer(format!("pull request {pr} could not be read: {why}"), &mut d);
                continue;
            }
            None => {
                defer(format!("pull request {pr} not known yet"), &mut d);
                continue;
            }
        };
        let refusal = if !open {
            Some(Refusal::PrClosed)
        } else {
            match &cmd.prefix {
                Some(p) if !head.to_ascii_lowercase().starts_with(p.as_str()) => {
                    Some(Refusal::HeadMismatch { prefix: p.clone(), head: head.clone() })
                }
                Some(_) => None,
                None if pushes.iter().any(|&t| t >= c.created_at) => Some(Refusal::PushedAfter { head: head.clone() }),
                None => None,
            }
        };
        if let Some(why) = refusal {
            d.actions.push(Action::Refuse { comment: c.id, pr, author, why });
            continue;
        }
        let sha = head.to_ascii_lowercase();
        if let Some(request_id) = running.get(&(pr, sha.clone())) {
            d.actions.push(Action::Link { comment: c.id, pr, author, request_id: request_id.clone() });
            continue;
        }
        let run = Run {
            request_id: request_id(&facts.repo, c.id),
            pr,
            sha: sha.clone(),
            comment: c.id,
            requester: author,
            status_comment: None,
            build: None,
            phase: Phase::Requested,
        };
        running.insert((pr, sha), run.request_id.clone());
        d.actions.push(Action::Start(run));
    }

    // The cursor never passes a deferred comment (its creation time stays within the next
    // listing), and otherwise moves to the newest update listed.
    let newest = facts.comments.iter().map(|c| c.updated_at).max();
    d.cursor = match hold {
        Some(h) => Some(state.cursor.map_or(h, |old| old.max(h))),
        None => state.cursor.max(newest).or(Some(floor)),
    };
    d
}

/// What performing an action achieved, for [`apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The reply was posted (refusal or link).
    Replied,
    /// The status comment `status_comment` and the pending status were posted.
    Acked { status_comment: u64 },
    /// Drone created build `build`.
    Built { build: u64 },
    /// Drone answered that no pipeline ran.
    NoPipeline,
    /// The build finished.
    Finished,
}

/// Records in `state` what performing `action` achieved.
pub fn apply(state: &mut RepoState, action: &Action, effect: &Effect) {
    match (action, effect) {
        (Action::Refuse { comment, .. } | Action::Link { comment, .. }, _) => {
            state.seen.insert(*comment);
        }
        (Action::Start(run), Effect::Acked { status_comment }) => {
            state.seen.insert(run.comment);
            let mut run = run.clone();
            run.status_comment = Some(*status_comment);
            state.runs.insert(run.request_id.clone(), run);
        }
        (
            Action::Start(Run { request_id, .. }) | Action::Request { request_id } | Action::Adopt { request_id, .. },
            Effect::Built { build },
        ) => {
            if let Some(r) = state.runs.get_mut(request_id) {
                r.build = Some(*build);
                r.phase = Phase::Building;
            }
        }
        (
            Action::Start(Run { request_id, .. }) | Action::Request { request_id } | Action::Finish { request_id, .. },
            Effect::NoPipeline | Effect::Finished,
        ) => {
            if let Some(r) = state.runs.get_mut(request_id) {
                r.phase = Phase::Done;
            }
        }
        _ => {}
    }
}

/// The reply a refused author reads.
pub fn refusal_text(author: &str, why: &Refusal) -> String {
    match why {
        Refusal::NotMember => format!(
            "@{author} thanks for asking. Only members of the organisation can start a test run with `!testme`; \
             a member can ask for one on this pull request."
        ),
        Refusal::PrClosed => format!("@{author} this pull request is closed, so no test run was started."),
        Refusal::HeadMismatch { prefix, head } => format!(
            "@{author} `{prefix}` is not the head of this pull request (the head is `{}`), so no test run was started. \
             To test the head, comment `!testme {}`.",
            &head[..head.len().min(12)],
            &head[..head.len().min(12)]
        ),
        Refusal::PushedAfter { head } => format!(
            "@{author} the pull request changed after your comment, so it is not clear which commit you meant and no \
             test run was started. To test the current head, comment `!testme {}`.",
            &head[..head.len().min(12)]
        ),
    }
}

#[cfg(test)]
mod tests;
