//! The forge (Gitea/Forgejo API v1) and Drone, over HTTP with `ureq`: only the calls the bridge
//! makes. Tokens go in the `Authorization` header only (`token <t>` for the forge, `Bearer <t>`
//! for Drone), never in a URL, so no log line, error or proxy record can carry them. Redirects are
//! never followed: the forge answers a membership question with 303 when the bot's own
//! membership is missing, and that must not read as "member".
//!
//! Sources: Gitea's swagger (`templates/swagger/v1_json.tmpl`, the subset in
//! `tests/support/gitea-swagger-subset.json` with its version) and Drone's
//! `handler/api/repos/builds` (branch `drone` of harness/harness).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::core::{BuildLookup, BuildProgress, Comment, Membership, Unix};
use crate::error::{Error, Result};

/// A secret read from a file: shown as `***` by `Debug`.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// The first line of `path`, without surrounding blanks. An unreadable file is the
    /// environment's error (exit 3); an empty one, bad input (exit 2). The token is never echoed.
    pub fn read(path: &std::path::Path, what: &str) -> Result<Token> {
        let text = fs_err::read_to_string(path).map_err(|e| Error::env(format!("reading the {what} token: {e}")))?;
        let t = text.lines().next().unwrap_or("").trim();
        if t.is_empty() {
            return Err(Error::bad_input(format!("{}: the {what} token file is empty", path.display())));
        }
        if t.bytes().any(|b| b.is_ascii_control()) {
            return Err(Error::bad_input(format!("{}: the {what} token holds control characters", path.display())));
        }
        Ok(Token(t.to_string()))
    }
}

/// The HTTP side shared by both clients.
#[derive(Clone)]
struct Http {
    agent: ureq::Agent,
    base: String,
    authorization: String,
}

/// An answer: status code and body text.
struct Answer {
    status: u16,
    body: String,
}

impl Http {
    fn new(base: &str, authorization: String, timeout: Duration) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(concat!("ccci-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http { agent, base: base.trim_end_matches('/').to_string(), authorization }
    }

    /// One request. `path` starts with `/`; `query` is appended encoded; `body` is sent as JSON.
    /// A transport failure (refused, timeout, TLS) is the environment's error.
    fn call(&self, method: &str, path: &str, query: &[(&str, String)], body: Option<&Value>) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let what = || format!("{method} {url}");
        let result = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" { self.agent.get(&url) } else { self.agent.delete(&url) };
                r = r.header("Authorization", &self.authorization).header("Accept", "application/json");
                for (k, v) in query {
                    r = r.query(*k, v);
                }
                r.call()
            }
            _ => {
                let mut r = match method {
                    "POST" => self.agent.post(&url),
                    "PATCH" => self.agent.patch(&url),
                    _ => self.agent.put(&url),
                };
                r = r.header("Authorization", &self.authorization).header("Accept", "application/json");
                for (k, v) in query {
                    r = r.query(*k, v);
                }
                match body {
                    Some(b) => r.header("Content-Type", "application/json").send(b.to_string()),
                    None => r.send_empty(),
                }
            }
        };
        let mut resp = result.map_err(|e| Error::env(format!("{}: {}", what(), transport(&e))))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| Error::env(format!("{}: reading the answer: {}", what(), transport(&e))))?;
        Ok(Answer { status, body })
    }

    /// [`Self::call`], wanting one of `ok` statuses; the body parsed as `T`.
    fn json<T: for<'de> Deserialize<'de>>(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        ok: &[u16],
    ) -> Result<T> {
        let a = self.call(method, path, query, body)?;
        if !ok.contains(&a.status) {
            return Err(Error::env(format!("{method} {}{path}: HTTP {}{}", self.base, a.status, snippet(&a.body))));
        }
        serde_json::from_str(&a.body)
            .map_err(|e| Error::env(format!("{method} {}{path}: unexpected answer: {e}", self.base)))
    }
}

/// A transport error in a few words; never a URL with secrets (there are none in URLs).
fn transport(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => "timed out".into(),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => format!("unreachable ({e})"),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "unreachable (connection refused)".into()
        }
        _ => e.to_string(),
    }
}

/// The start of an error body, on one line, for the log.
fn snippet(body: &str) -> String {
    let one: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.is_empty() { String::new() } else { format!(": {}", one.chars().take(160).collect::<String>()) }
}

/// Page size for listings (Gitea's default `MAX_RESPONSE_ITEMS`).
const PAGE: usize = 50;
/// At most this many pages per listing in one tick; the rest waits for the next (the cursor
/// only moves over what was read).
const MAX_PAGES: usize = 20;

/// A Gitea or Forgejo server, as the bot.
#[derive(Clone)]
pub struct Forge {
    http: Http,
}

/// One pull request as the bridge needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    pub open: bool,
    pub head: String,
    /// Whether the head lives in another repository (a fork).
    pub fork: bool,
}

/// A commit status state: the four Gitea accepts (`modules/structs/commit_status.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

#[derive(Deserialize)]
struct ApiUser {
    login: String,
}

#[derive(Deserialize)]
struct ApiComment {
    id: u64,
    #[serde(default)]
    body: String,
    user: Option<ApiUser>,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    pull_request_url: Option<String>,
}

#[derive(Deserialize)]
struct ApiBranch {
    sha: String,
    #[serde(default)]
    repo_id: Option<u64>,
}

#[derive(Deserialize)]
struct ApiPull {
    state: String,
    head: ApiBranch,
    base: ApiBranch,
}

#[derive(Deserialize)]
struct ApiTimeline {
    #[serde(rename = "type", default)]
    kind: String,
    created_at: String,
}

fn time(s: &str, what: &str) -> Result<Unix> {
    crate::time::parse_rfc3339(s).ok_or_else(|| Error::env(format!("{what}: not an RFC 3339 time: {s:?}")))
}

/// The pull request number at the end of a `pull_request_url` (`…/pulls/7`), if any.
fn pr_number(url: &Option<String>) -> Option<u64> {
    url.as_deref().filter(|u| !u.is_empty())?.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

impl Forge {
    /// `base` is the forge's URL (without `/api/v1`).
    pub fn new(base: &str, token: &Token, timeout: Duration) -> Forge {
        Forge {
            http: Http::new(&format!("{}/api/v1", base.trim_end_matches('/')), format!("token {}", token.0), timeout),
        }
    }

    /// `GET /user`: the bot's login.
    pub fn whoami(&self) -> Result<String> {
        Ok(self.http.json::<ApiUser>("GET", "/user", &[], None, &[200])?.login)
    }

    /// `GET /repos/{repo}/issues/comments?since=`, every page (up to a bound), oldest first.
    pub fn comments_since(&self, repo: &str, since: Unix) -> Result<Vec<Comment>> {
        let path = format!("/repos/{repo}/issues/comments");
        let mut out = vec![];
        for page in 1..=MAX_PAGES {
            let q = [("since", crate::time::rfc3339(since)), ("page", page.to_string()), ("limit", PAGE.to_string())];
            let list: Vec<ApiComment> = self.http.json("GET", &path, &q, None, &[200])?;
            let n = list.len();
            for c in list {
                out.push(Comment {
                    id: c.id,
                    pr: pr_number(&c.pull_request_url),
                    author: c.user.map(|u| u.login).unwrap_or_default(),
                    body: c.body,
                    created_at: time(&c.created_at, &path)?,
                    updated_at: time(&c.updated_at, &path)?,
                });
            }
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /orgs/{org}/members/{login}`: 204 member, 404 not; anything else (a 303 when the bot
    /// is not a member itself, 5xx, a timeout) is `Unknown`, never a yes.
    pub fn membership(&self, org: &str, login: &str) -> Membership {
        match self.http.call("GET", &format!("/orgs/{org}/members/{login}"), &[], None) {
            Ok(a) if a.status == 204 => Membership::Member,
            Ok(a) if a.status == 404 => Membership::NotMember,
            Ok(a) if (300..400).contains(&a.status) => Membership::Unknown(format!(
                "HTTP {}: the forge redirected the membership question, so the bot cannot see private members \
                 (make the bot a member of {org})",
                a.status
            )),
            Ok(a) => Membership::Unknown(format!("HTTP {}{}", a.status, snippet(&a.body))),
            Err(e) => Membership::Unknown(e.to_string()),
        }
    }

    /// `GET /repos/{repo}/pulls/{n}`.
    pub fn pull(&self, repo: &str, n: u64) -> Result<PullRequest> {
        let p: ApiPull = self.http.json("GET", &format!("/repos/{repo}/pulls/{n}"), &[], None, &[200])?;
        let fork = match (p.head.repo_id, p.base.repo_id) {
            (Some(h), Some(b)) => h != b,
            _ => true,
        };
        Ok(PullRequest { open: p.state == "open", head: p.head.sha.to_ascii_lowercase(), fork })
    }

    /// `GET /repos/{repo}/issues/{n}/timeline?since=`: when the pull request was pushed to.
    pub fn pushes_since(&self, repo: &str, n: u64, since: Unix) -> Result<Vec<Unix>> {
        let path = format!("/repos/{repo}/issues/{n}/timeline");
        let mut out = vec![];
        for page in 1..=MAX_PAGES {
            let q = [("since", crate::time::rfc3339(since)), ("page", page.to_string()), ("limit", PAGE.to_string())];
            let list: Vec<ApiTimeline> = self.http.json("GET", &path, &q, None, &[200])?;
            let n = list.len();
            for t in list.into_iter().filter(|t| t.kind == "pull_push") {
                out.push(time(&t.created_at, &path)?);
            }
            if n < PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// `POST /repos/{repo}/issues/{n}/comments`: the new comment's id.
    pub fn post_comment(&self, repo: &str, n: u64, body: &str) -> Result<u64> {
        #[derive(Deserialize)]
        struct Id {
            id: u64,
        }
        let b = serde_json::json!({ "body": body });
        Ok(self.http.json::<Id>("POST", &format!("/repos/{repo}/issues/{n}/comments"), &[], Some(&b), &[201])?.id)
    }

    /// `PATCH /repos/{repo}/issues/comments/{id}`.
    pub fn edit_comment(&self, repo: &str, id: u64, body: &str) -> Result<()> {
        let b = serde_json::json!({ "body": body });
        self.http
            .json::<Value>("PATCH", &format!("/repos/{repo}/issues/comments/{id}"), &[], Some(&b), &[200])
            .map(drop)
    }

    /// `GET /repos/{repo}/issues/{n}/comments` (the forge answers all of them, unpaged):
    /// `(id, author, body)` of each.
    pub fn issue_comments(&self, repo: &str, n: u64) -> Result<Vec<(u64, String, String)>> {
        let list: Vec<ApiComment> =
            self.http.json("GET", &format!("/repos/{repo}/issues/{n}/comments"), &[], None, &[200])?;
        Ok(list.into_iter().map(|c| (c.id, c.user.map(|u| u.login).unwrap_or_default(), c.body)).collect())
    }

    /// `GET /repos/{repo}/issues/comments/{id}`: the comment's body.
    pub fn comment_body(&self, repo: &str, id: u64) -> Result<String> {
        Ok(self.http.json::<ApiComment>("GET", &format!("/repos/{repo}/issues/comments/{id}"), &[], None, &[200])?.body)
    }

    /// `POST /repos/{repo}/statuses/{sha}`. The description is cut to 140 characters.
    pub fn set_status(
        &self,
        repo: &str,
        sha: &str,
        state: StatusState,
        context: &str,
        description: &str,
        target_url: Option<&str>,
    ) -> Result<()> {
        let description: String = description.chars().take(140).collect();
        let mut b = serde_json::json!({ "state": state.as_str(), "context": context, "description": description });
        if let Some(u) = target_url {
            b["target_url"] = Value::String(u.to_string());
        }
        self.http.json::<Value>("POST", &format!("/repos/{repo}/statuses/{sha}"), &[], Some(&b), &[200, 201]).map(drop)
    }

    /// `GET /repos/{repo}`: that the bot can read it.
    pub fn repository(&self, repo: &str) -> Result<()> {
        self.http.json::<Value>("GET", &format!("/repos/{repo}"), &[], None, &[200]).map(drop)
    }
}

/// A Drone server, with a token that may create builds in the pipeline's repository.
#[derive(Clone)]
pub struct Drone {
    http: Http,
    base: String,
}

/// The build parameters the bridge sends, and nothing else (a parameter becomes an environment
/// variable of every pipeline step, so the set is fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildParams {
    pub request_id: String,
    /// `owner/name` of the recipe repository on the forge.
    pub recipe_repo: String,
    pub pr: u64,
    pub head_sha: String,
    /// The login who asked.
    pub trigger: String,
}

impl BuildParams {
    /// The names, in the order sent: `CCCI_REQUEST_ID`, `CCCI_RECIPE_REPO`, `CCCI_PR`,
    /// `CCCI_HEAD_SHA`, `CCCI_TRIGGER` ([`crate::config::given::BUILD_PARAMS`]).
    pub const NAMES: [&'static str; 5] = crate::config::given::BUILD_PARAMS;

    fn query(&self) -> Vec<(&'static str, String)> {
        let values = [
            self.request_id.clone(),
            self.recipe_repo.clone(),
            self.pr.to_string(),
            self.head_sha.clone(),
            self.trigger.clone(),
        ];
        Self::NAMES.into_iter().zip(values).collect()
    }
}

#[derive(Deserialize)]
struct ApiBuild {
    number: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
}

impl Drone {
    pub fn new(base: &str, token: &Token, timeout: Duration) -> Drone {
        let base = base.trim_end_matches('/').to_string();
        Drone { http: Http::new(&format!("{base}/api"), format!("Bearer {}", token.0), timeout), base }
    }

    /// The build's page in Drone's UI: `{server}/{owner}/{name}/{number}`.
    pub fn link(&self, repo: &str, build: u64) -> String {
        format!("{}/{repo}/{build}", self.base)
    }

    /// `POST /api/repos/{repo}/builds?<params>`: the new build's number, or `None` when Drone
    /// answered `null` (no pipeline matched: check `trigger.event: custom`).
    pub fn create_build(&self, repo: &str, params: &BuildParams) -> Result<Option<u64>> {
        let b: Option<ApiBuild> =
            self.http.json("POST", &format!("/repos/{repo}/builds"), &params.query(), None, &[200])?;
        Ok(b.map(|b| b.number))
    }

    /// Searches the newest builds (`GET /api/repos/{repo}/builds`, two pages of 50) for each
    /// request id; an id not among them is `NotFound`.
    pub fn find_builds(&self, repo: &str, ids: &[String]) -> Result<Vec<(String, BuildLookup)>> {
        let mut found = std::collections::BTreeMap::new();
        for page in 1..=2 {
            let q = [("page", page.to_string()), ("per_page", PAGE.to_string())];
            let list: Vec<ApiBuild> = self.http.json("GET", &format!("/repos/{repo}/builds"), &q, None, &[200])?;
            let n = list.len();
            for b in list {
                if let Some(id) = b.params.get(crate::config::given::REQUEST_ID) {
                    found.entry(id.clone()).or_insert(b.number);
                }
            }
            if n < PAGE {
                break;
            }
        }
        Ok(ids
            .iter()
            .map(|id| (id.clone(), found.get(id).map_or(BuildLookup::NotFound, |n| BuildLookup::Found(*n))))
            .collect())
    }

    /// `GET /api/repos/{repo}/builds/{n}`: running, or done with its status.
    pub fn progress(&self, repo: &str, build: u64) -> Result<(BuildProgress, String)> {
        let b: ApiBuild = self.http.json("GET", &format!("/repos/{repo}/builds/{build}"), &[], None, &[200])?;
        let p = match b.status.as_str() {
            "pending" | "running" | "blocked" | "waiting_on_dependencies" => BuildProgress::Running,
            "success" => BuildProgress::Done { passed: true },
            _ => BuildProgress::Done { passed: false },
        };
        Ok((p, b.status))
    }

    /// `GET /api/user` and `GET /api/repos/{repo}`: the token works and the repository is active.
    pub fn check(&self, repo: &str) -> Result<String> {
        let user: ApiUser = self.http.json("GET", "/user", &[], None, &[200])?;
        self.http.json::<Value>("GET", &format!("/repos/{repo}"), &[], None, &[200])?;
        Ok(user.login)
    }
}
