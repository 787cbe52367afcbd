//! The pipeline's side of a bridge run: `ccci-bridge verify` at its start (the requester is still
//! a member, and the pull request's head in the base repository is still the requested commit)
//! and `ccci-bridge publish` at its end, whatever happened before (the bridge's status comment
//! edited in place with the Markdown report, one commit status per tier plus the overall one,
//! each linking the build).

use std::path::Path;

use super::core::{Marker, Membership};
use super::http::{Forge, StatusState};
use super::tick::OVERALL_CONTEXT;
use crate::error::{Error, Result};
use crate::report;
use crate::run::state::{OpName, Outcome, RunState};

/// The tiers that get a commit status of their own, `ccci/<tier>`.
pub const TIERS: [OpName; 5] = OpName::TIERS;

/// One bridge run as its build parameters name it, each checked for its shape (bad input, exit 2,
/// otherwise): parameters come from Drone and are never trusted to be well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub request_id: String,
    /// `owner/name` on the forge.
    pub recipe_repo: String,
    pub pr: u64,
    /// 40 hex digits.
    pub sha: String,
    pub trigger: String,
}

impl Request {
    pub fn parse(request_id: &str, recipe_repo: &str, pr: &str, sha: &str, trigger: &str) -> Result<Request> {
        let bad = |what: &str, v: &str| Error::bad_input(format!("{what} {v:?} is not {}", expected(what)));
        if request_id.len() != 16 || !request_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("--request", request_id));
        }
        let account = |v: &str| {
            !v.is_empty()
                && v.len() <= 100
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                && v != "."
                && v != ".."
        };
        match recipe_repo.split_once('/') {
            Some((o, n)) if account(o) && account(n) => {}
            _ => return Err(bad("--recipe-repo", recipe_repo)),
        }
        let pr_n: u64 = pr.parse().ok().filter(|n| *n > 0 && !pr.starts_with('0')).ok_or_else(|| bad("--pr", pr))?;
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(bad("--sha", sha));
        }
        if !account(trigger) {
            return Err(bad("--trigger", trigger));
        }
        Ok(Request {
            request_id: request_id.into(),
            recipe_repo: recipe_repo.into(),
            pr: pr_n,
            sha: sha.into(),
            trigger: trigger.into(),
        })
    }
}

fn expected(what: &str) -> &'static str {
    match what {
        "--request" => "a request id (16 hex digits)",
        "--recipe-repo" => "a repository `owner/name`",
        "--pr" => "a pull request number",
        "--sha" => "a commit id (40 lowercase hex digits)",
        _ => "a forge login",
    }
}

/// The start-of-run checks. A requester who is no longer a member, or a head that moved, is a
/// refusal ([`crate::Kind::OpFailed`], exit 1) whose message says why nothing is tested; a forge
/// or git that cannot answer is the environment's (exit 3). Either way nothing may be tested.
///
/// `recipe_url` is the base repository's clone URL: the head is read from its
/// `refs/pull/<n>/head`, which the forge keeps there for fork pull requests too.
pub fn verify(forge: &Forge, org: &str, req: &Request, recipe_url: &str) -> Result<()> {
    match forge.membership(org, &req.trigger) {
        Membership::Member => {}
        Membership::NotMember => {
            return Err(Error::failed(format!(
                "@{} is no longer a member of {org}, so nothing is tested",
                req.trigger
            )));
        }
        Membership::Unknown(why) => {
            return Err(Error::env(format!("checking that @{} is still a member of {org}: {why}", req.trigger)));
        }
    }
    let head = pull_head(recipe_url, req.pr)?;
    if head != req.sha {
        return Err(Error::failed(format!(
            "the head of pull request {} is now {head}, not the requested {}: nothing is tested (ask again with `!testme`)",
            req.pr, req.sha
        )));
    }
    Ok(())
}

/// `git ls-remote <url> refs/pull/<n>/head`: the commit, lowercase.
fn pull_head(url: &str, pr: u64) -> Result<String> {
    let refname = format!("refs/pull/{pr}/head");
    let out = std::process::Command::new("git")
        .args(["ls-remote", "--", url, &refname])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::env(format!("running git ls-remote: {e}")))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(Error::env(format!("git ls-remote {refname}: {}", said.trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.ends_with(&format!("\t{refname}"))).ok_or_else(|| {
        Error::failed(format!("the recipe repository has no {refname}: the pull request is gone, so nothing is tested"))
    })?;
    Ok(line.split('\t').next().unwrap_or("").to_ascii_lowercase())
}

/// A tier's status from the run-state: its op records (`deploy` counts for `install`); the worst
/// of them decides. `None` means the tier did not run.
fn tier(state: &RunState, name: &OpName) -> Option<(StatusState, String)> {
    let ops: Vec<_> =
        state.ops.iter().filter(|o| o.op == *name || (*name == OpName::Install && o.op == OpName::Deploy)).collect();
    let worst = [Outcome::Error, Outcome::Fail, Outcome::Pass, Outcome::Skip]
        .into_iter()
        .find(|w| ops.iter().any(|o| o.result == *w))?;
    let detail = ops.iter().rfind(|o| o.result == worst).map(|o| o.detail.clone()).unwrap_or_default();
    let (state, word) = match worst {
        Outcome::Pass => (StatusState::Success, "passed"),
        Outcome::Fail => (StatusState::Failure, "failed"),
        Outcome::Error => (StatusState::Error, "errored"),
        Outcome::Skip => (StatusState::Success, "skipped"),
    };
    let d = if detail.is_empty() { word.to_string() } else { format!("{word}: {detail}") };
    Some((state, d))
}

/// Every status `publish` sets: `ccci/<tier>` for each of [`TIERS`], then `ccci` for the whole
/// run. A tier that did not run is `success` "not run"; a skipped one `success` "skipped: …"
/// (the forge has no neutral state); a run with no run-state (or refused at its start) is
/// `error` everywhere.
pub fn statuses(state: Option<&RunState>, refusal: Option<&str>) -> Vec<(String, StatusState, String)> {
    let mut out = vec![];
    for t in TIERS {
        let (s, d) = match (state, refusal) {
            (_, Some(r)) => (StatusState::Error, format!("not tested: {r}")),
            (None, None) => (StatusState::Error, "the run recorded nothing (see the build log)".into()),
            (Some(st), None) => tier(st, &t).unwrap_or((StatusState::Success, "not run".into())),
        };
        out.push((format!("ccci/{t}"), s, d));
    }
    let overall = match (state, refusal) {
        (_, Some(r)) => (StatusState::Error, format!("not tested: {r}")),
        (None, None) => (StatusState::Error, "the run recorded nothing (see the build log)".into()),
        (Some(st), None) => {
            let s = match report::verdict(st) {
                Outcome::Pass | Outcome::Skip => StatusState::Success,
                Outcome::Fail => StatusState::Failure,
                Outcome::Error => StatusState::Error,
            };
            (s, report::verdict_words(st).to_string())
        }
    };
    out.push((OVERALL_CONTEXT.to_string(), overall.0, overall.1));
    out
}

/// The status comment's new body: the Markdown report (or why there is none), the build link,
/// and the bridge's marker kept at the end.
pub fn body(state: Option<&RunState>, refusal: Option<&str>, link: Option<&str>, marker: &str) -> String {
    let report = match (state, refusal) {
        (_, Some(r)) => format!("**ccci: not tested.** {r}\n"),
        (None, None) => "**ccci: the run errored before it recorded anything.** See the build log.\n".to_string(),
        (Some(st), None) => report::markdown::markdown(st),
    };
    let link = link.map_or(String::new(), |l| format!("\nBuild: {l}\n"));
    format!("{}{link}\n{marker}\n", report.trim_end_matches('\n').to_string() + "\n")
}

/// Publishes the results of `req`'s run: edits the bot's status comment (found by the request
/// id in its marker; posted anew when it is gone) and sets every status of [`statuses`] on the
/// requested commit, each linking `link`.
pub fn publish(
    forge: &Forge,
    req: &Request,
    state: Option<&RunState>,
    refusal: Option<&str>,
    link: Option<&str>,
    build: Option<u64>,
) -> Result<()> {
    let bot = forge.whoami()?;
    let comments = forge.issue_comments(&req.recipe_repo, req.pr)?;
    let mine = comments.iter().rev().find(|(_, author, body)| {
        author == &bot
            && matches!(Marker::find(body), Some(Marker::Status { ref request_id, .. }) if request_id == &req.request_id)
    });
    let marker = match mine.and_then(|(_, _, b)| Marker::find(b)) {
        Some(Marker::Status { request_id, pr, sha, comment, requester, build: b }) => {
            Marker::Status { request_id, pr, sha, comment, requester, build: b.or(build) }
        }
        _ => Marker::Status {
            request_id: req.request_id.clone(),
            pr: req.pr,
            sha: req.sha.clone(),
            comment: 0,
            requester: req.trigger.clone(),
            build,
        },
    };
    let text = body(state, refusal, link, &marker.render());
    match mine {
        Some((id, _, _)) => forge.edit_comment(&req.recipe_repo, *id, &text)?,
        None => {
            forge.post_comment(&req.recipe_repo, req.pr, &text)?;
        }
    }
    for (context, s, description) in statuses(state, refusal) {
        forge.set_status(&req.recipe_repo, &req.sha, s, &context, &description, link)?;
    }
    Ok(())
}

/// Reads the refusal `verify` left, if any.
pub fn read_refusal(path: &Path) -> Result<Option<String>> {
    match fs_err::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => Ok(Some(t.trim().lines().next().unwrap_or("").to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::env(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::state::OpRecord;

    fn op(name: &str, result: Outcome, detail: &str) -> OpRecord {
        OpRecord {
            op: name.into(),
            result,
            started_at: "2026-11-21T22:34:08Z".into(),
            duration_ms: 1,
            detail: detail.into(),
            assertions: vec![],
            artifacts: vec![],
            backup: None,
        }
    }

    fn of(ops: Vec<OpRecord>) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deploys = 1;
        s.ops = ops;
        s
    }

    fn find<'a>(all: &'a [(String, StatusState, String)], ctx: &str) -> &'a (String, StatusState, String) {
        all.iter().find(|(c, _, _)| c == ctx).unwrap_or_else(|| panic!("{ctx} in {all:?}"))
    }

    #[test]
    fn each_tier_gets_the_worst_of_its_ops_and_the_run_its_verdict() {
        let s = of(vec![
            op("deploy", Outcome::Pass, ""),
            op("install", Outcome::Pass, "3 assertions passed"),
            op("upgrade", Outcome::Pass, ""),
            op("upgrade", Outcome::Fail, "image not moved to the head"),
            op("backup", Outcome::Error, "restic: repository locked"),
            op("restore", Outcome::Skip, "no backup to restore"),
        ]);
        let all = statuses(Some(&s), None);
        let contexts: Vec<&str> = all.iter().map(|(c, _, _)| c.as_str()).collect();
        assert_eq!(contexts, ["ccci/install", "ccci/upgrade", "ccci/backup", "ccci/restore", "ccci/custom", "ccci"]);
        assert_eq!(find(&all, "ccci/install").1, StatusState::Success);
        assert_eq!(find(&all, "ccci/upgrade").1, StatusState::Failure);
        assert!(find(&all, "ccci/upgrade").2.contains("image not moved"));
        assert_eq!(find(&all, "ccci/backup").1, StatusState::Error);
        assert_eq!(
            find(&all, "ccci/restore"),
            &("ccci/restore".into(), StatusState::Success, "skipped: no backup to restore".into())
        );
        assert_eq!(find(&all, "ccci/custom").2, "not run");
        assert_eq!(find(&all, "ccci").1, StatusState::Error);
        // A failed deploy is the install tier's failure.
        let s = of(vec![op("deploy", Outcome::Fail, "compose file refused")]);
        assert_eq!(find(&statuses(Some(&s), None), "ccci/install").1, StatusState::Failure);
    }

    #[test]
    fn without_a_run_state_or_after_a_refusal_every_status_is_an_error() {
        for (state, refusal) in [(None, None), (Some(of(vec![])), Some("the head moved"))] {
            let all = statuses(state.as_ref(), refusal);
            assert_eq!(all.len(), 6);
            assert!(all.iter().all(|(_, s, _)| *s == StatusState::Error), "{all:?}");
        }
        let b = body(
            None,
            Some("the head of pull request 7 is now abc"),
            Some("https://drone.example/a/b/3"),
            "<!-- m -->",
        );
        assert!(b.starts_with("**ccci: not tested.** the head of pull request 7"), "{b}");
        assert!(b.trim_end().ends_with("<!-- m -->"), "the marker stays last: {b}");
    }

    #[test]
    fn request_parameters_of_the_wrong_shape_are_refused() {
        let ok = ("0123456789abcdef", "coop-cloud/hello", "7", "ab".repeat(20), "alice");
        Request::parse(ok.0, ok.1, ok.2, &ok.3, ok.4).unwrap();
        let sha = ok.3.clone();
        for (r, repo, pr, sha, who) in [
            ("0123", ok.1, ok.2, sha.as_str(), ok.4),
            (ok.0, "hello", ok.2, sha.as_str(), ok.4),
            (ok.0, "a/b/c", ok.2, sha.as_str(), ok.4),
            (ok.0, ok.1, "07", sha.as_str(), ok.4),
            (ok.0, ok.1, "0", sha.as_str(), ok.4),
            (ok.0, ok.1, "7; rm -rf /", sha.as_str(), ok.4),
            (ok.0, ok.1, ok.2, "ABABABABABABABABABABABABABABABABABABABAB", ok.4),
            (ok.0, ok.1, ok.2, "abc", ok.4),
            (ok.0, ok.1, ok.2, sha.as_str(), "$(id)"),
        ] {
            let e = Request::parse(r, repo, pr, sha, who).unwrap_err();
            assert_eq!(e.kind(), crate::Kind::BadInput, "{e}");
        }
    }
}
