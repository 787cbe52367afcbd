//! TEST DOUBLE: a fake Gitea/Forgejo API v1 and Drone API on loopback, serving only the subset
//! `ccci-bridge` uses. Its answers are shaped like the forge's published API description (the
//! vendored subset in `tests/support/gitea-swagger-subset.json`; `bridge_contract.rs` checks every
//! fixture against it) and Drone's `core/build.go`. It records every request (method, path,
//! query, headers, body) so tests can assert what was sent, and injects failures: an HTTP status,
//! a timeout, a redirect, an answer lost after the effect happened, or Drone answering `null`.
//!
//! The forge is at `http://<addr>` (API under `/api/v1`), Drone at `http://<addr>/drone` (API
//! under `/drone/api`). One connection per request (`Connection: close`).
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

pub type Unix = u64;

/// A sandbox holding the bridge's token files, `forge.token` (`forge-secret-1`) and
/// `drone.token` (`drone-secret-2`).
pub fn sandbox_with_tokens(name: &str) -> crate::common::Sandbox {
    let sb = crate::common::Sandbox::new(name);
    std::fs::write(sb.root.join("forge.token"), "forge-secret-1\n").unwrap();
    std::fs::write(sb.root.join("drone.token"), "drone-secret-2\n").unwrap();
    sb
}

#[derive(Debug, Clone)]
pub struct FComment {
    pub id: u64,
    pub repo: String,
    pub issue: u64,
    pub is_pull: bool,
    pub author: String,
    pub body: String,
    pub created_at: Unix,
    pub updated_at: Unix,
}

#[derive(Debug, Clone)]
pub struct FPull {
    pub open: bool,
    pub head: String,
    pub fork: bool,
    pub pushes: Vec<Unix>,
}

#[derive(Debug, Clone)]
pub struct FStatus {
    pub repo: String,
    pub sha: String,
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: String,
}

#[derive(Debug, Clone)]
pub struct FBuild {
    pub number: u64,
    pub repo: String,
    pub params: BTreeMap<String, String>,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status and an error body, doing nothing.
    Status(u16),
    /// Say nothing for longer than the client waits, doing nothing.
    Timeout,
    /// Do the request, then answer 502 (the effect happened, the answer was lost).
    LoseAnswer,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    /// A substring of the path the fault applies to.
    pub path: String,
    pub kind: FaultKind,
    /// How many matching requests it hits.
    pub times: u32,
}

#[derive(Debug, Default)]
pub struct World {
    pub forge_token: String,
    pub drone_token: String,
    pub bot: String,
    pub members: BTreeSet<String>,
    /// Answer membership questions with 303 (the bot is not a member itself).
    pub membership_redirect: bool,
    pub comments: Vec<FComment>,
    pub next_id: u64,
    pub pulls: BTreeMap<(String, u64), FPull>,
    pub statuses: Vec<FStatus>,
    pub builds: Vec<FBuild>,
    /// Drone answers `null` to a build request (no pipeline matched).
    pub drone_null: bool,
    pub requests: Vec<Recorded>,
    pub faults: Vec<Fault>,
    /// (xorshift state, percent): each request fails with this chance (a 500, a 502 after the
    /// effect, or a timeout).
    pub random_faults: Option<(u64, u64)>,
    /// How long a timeout fault stalls.
    pub stall: Duration,
    pub now: Unix,
}

impl World {
    pub fn comment(&mut self, repo: &str, issue: u64, author: &str, body: &str) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let is_pull = self.pulls.contains_key(&(repo.to_string(), issue));
        self.comments.push(FComment {
            id,
            repo: repo.into(),
            issue,
            is_pull,
            author: author.into(),
            body: body.into(),
            created_at: self.now,
            updated_at: self.now,
        });
        id
    }

    pub fn bot_comments(&self) -> Vec<&FComment> {
        self.comments.iter().filter(|c| c.author == self.bot).collect()
    }

    pub fn creates(&self) -> Vec<&Recorded> {
        self.requests.iter().filter(|r| r.method == "POST" && r.path.ends_with("/builds")).collect()
    }
}

pub struct Fake {
    pub addr: SocketAddr,
    pub world: Arc<Mutex<World>>,
}

impl Fake {
    pub fn start(world: World) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake forge");
        let addr = listener.local_addr().unwrap();
        let world = Arc::new(Mutex::new(world));
        let w = world.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let w = w.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &w);
                });
            }
        });
        Fake { addr, world }
    }

    pub fn forge_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn drone_url(&self) -> String {
        format!("http://{}/drone", self.addr)
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }
}

struct Answer {
    status: u16,
    body: String,
    location: Option<String>,
}

fn ok(status: u16, v: Value) -> Answer {
    Answer { status, body: v.to_string(), location: None }
}

fn err(status: u16, msg: &str) -> Answer {
    ok(status, json!({ "message": msg, "url": "" }))
}

fn serve(stream: TcpStream, world: &Mutex<World>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), parse_query(q)),
        None => (target.clone(), vec![]),
    };
    let req = Recorded { method, path, query, headers, body: String::from_utf8_lossy(&body).into_owned() };
    let (answer, stall) = {
        let mut w = world.lock().unwrap();
        w.requests.push(req.clone());
        let fault = pick_fault(&mut w, &req);
        match fault {
            Some(FaultKind::Status(s)) => (err(s, "injected failure"), None),
            Some(FaultKind::Timeout) => (err(504, "stalled"), Some(w.stall)),
            Some(FaultKind::LoseAnswer) => {
                let _ = route(&mut w, &req);
                (err(502, "injected: the answer was lost"), None)
            }
            None => (route(&mut w, &req), None),
        }
    };
    if let Some(d) = stall {
        std::thread::sleep(d);
        return Ok(());
    }
    let reason = match answer.status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        303 => "See Other",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Error",
    };
    let mut out = stream;
    let mut head =
        format!("HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nConnection: close\r\n", answer.status);
    if let Some(l) = &answer.location {
        head.push_str(&format!("Location: {l}\r\n"));
    }
    let body = if answer.status == 204 { String::new() } else { answer.body };
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.write_all(head.as_bytes())?;
    out.write_all(body.as_bytes())?;
    out.flush()
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

fn pick_fault(w: &mut World, req: &Recorded) -> Option<FaultKind> {
    if let Some(f) = w.faults.iter_mut().find(|f| f.times > 0 && f.method == req.method && req.path.contains(&f.path)) {
        f.times -= 1;
        return Some(f.kind);
    }
    let (mut s, pct) = w.random_faults?;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let roll = next() % 100;
    let kind = match next() % 10 {
        0 => FaultKind::Timeout,
        1..=3 => FaultKind::LoseAnswer,
        _ => FaultKind::Status(500),
    };
    w.random_faults = Some((s, pct));
    (roll < pct).then_some(kind)
}

fn rfc3339(t: Unix) -> String {
    ccci::time::rfc3339(t)
}

fn user(login: &str) -> Value {
    let id = login.bytes().fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64)) % 100_000;
    json!({
        "id": id, "login": login, "login_name": "", "full_name": login, "email": format!("{login}@example.org"),
        "avatar_url": format!("https://forge.example/avatars/{id}"),
        "language": "", "is_admin": false, "restricted": false, "active": true, "prohibit_login": false,
        "location": "", "website": "", "description": "", "visibility": "public",
        "followers_count": 0, "following_count": 0, "starred_repos_count": 0, "source_id": 0,
        "created": "2024-01-01T00:00:00Z", "last_login": "2024-01-01T00:00:00Z"
    })
}

/// A Comment as `GET /repos/{owner}/{repo}/issues/comments` lists it.
pub fn comment_json(c: &FComment) -> Value {
    let base = format!("https://forge.example/{}", c.repo);
    let kind = if c.is_pull { "pulls" } else { "issues" };
    json!({
        "id": c.id,
        "html_url": format!("{base}/{kind}/{}#issuecomment-{}", c.issue, c.id),
        "pull_request_url": if c.is_pull { format!("{base}/pulls/{}", c.issue) } else { String::new() },
        "issue_url": format!("{base}/issues/{}", c.issue),
        "user": user(&c.author),
        "original_author": "",
        "original_author_id": 0,
        "body": c.body,
        "assets": [],
        "created_at": rfc3339(c.created_at),
        "updated_at": rfc3339(c.updated_at),
    })
}

fn branch(label: &str, sha: &str, repo_id: u64) -> Value {
    json!({ "label": label, "ref": label, "sha": sha, "repo_id": repo_id })
}

/// A PullRequest as `GET /repos/{owner}/{repo}/pulls/{index}` answers.
pub fn pull_json(repo: &str, n: u64, p: &FPull) -> Value {
    json!({
        "id": 1000 + n,
        "url": format!("https://forge.example/{repo}/pulls/{n}"),
        "number": n,
        "user": user("contributor"),
        "title": format!("pull request {n}"),
        "body": "",
        "labels": [],
        "state": if p.open { "open" } else { "closed" },
        "is_locked": false,
        "comments": 0,
        "html_url": format!("https://forge.example/{repo}/pulls/{n}"),
        "mergeable": true,
        "merged": false,
        "base": branch("main", "1111111111111111111111111111111111111111", 1),
        "head": branch(&format!("feature-{n}"), &p.head, if p.fork { 2 } else { 1 }),
        "merge_base": "1111111111111111111111111111111111111111",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    })
}

/// A TimelineComment of type `pull_push`.
pub fn push_json(id: u64, at: Unix) -> Value {
    json!({
        "id": id, "type": "pull_push", "body": "{\"is_force_push\":true}", "user": user("contributor"),
        "html_url": "", "pull_request_url": "", "issue_url": "", "milestone": null, "assignee": null,
        "created_at": rfc3339(at), "updated_at": rfc3339(at)
    })
}

/// A CommitStatus as `POST /repos/{owner}/{repo}/statuses/{sha}` answers (the field is `status`).
pub fn status_json(id: u64, s: &FStatus, bot: &str) -> Value {
    json!({
        "id": id, "status": s.state, "target_url": s.target_url, "description": s.description,
        "url": format!("https://forge.example/api/v1/repos/{}/statuses/{}", s.repo, s.sha),
        "context": s.context, "creator": user(bot),
        "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
    })
}

/// A Build as Drone answers (`core/build.go`).
pub fn build_json(b: &FBuild) -> Value {
    json!({
        "id": 500 + b.number, "repo_id": 9, "trigger": "ccci-bot", "number": b.number, "status": b.status,
        "event": "custom", "action": "", "link": "", "timestamp": 0, "message": "", "before": "", "after": "",
        "ref": "refs/heads/main", "source_repo": "", "source": "main", "target": "main",
        "author_login": "", "author_name": "", "author_email": "", "author_avatar": "", "sender": "ccci-bot",
        "params": b.params, "started": 0, "finished": 0, "created": 0, "updated": 0, "version": 1
    })
}

fn route(w: &mut World, r: &Recorded) -> Answer {
    if let Some(rest) = r.path.strip_prefix("/drone/api/") {
        if r.header("Authorization") != Some(&format!("Bearer {}", w.drone_token)) {
            return err(401, "Unauthorized");
        }
        return drone(w, r, rest);
    }
    let Some(rest) = r.path.strip_prefix("/api/v1/") else { return err(404, "not found") };
    if r.header("Authorization") != Some(&format!("token {}", w.forge_token)) {
        return err(401, "token is required");
    }
    let seg: Vec<&str> = rest.split('/').collect();
    let q = |k: &str| r.query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let page = |list: Vec<Value>| {
        let limit: usize = q("limit").and_then(|v| v.parse().ok()).unwrap_or(30).clamp(1, 50);
        let page: usize = q("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
        Value::Array(list.into_iter().skip((page - 1) * limit).take(limit).collect())
    };
    let since = q("since").map(|s| ccci::time::parse_rfc3339(&s).expect("since is RFC 3339"));
    match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["user"]) => ok(200, user(&w.bot)),
        ("GET", ["orgs", _org, "members", login]) => {
            if w.membership_redirect {
                Answer {
                    status: 303,
                    body: String::new(),
                    location: Some(format!("/api/v1/orgs/x/public_members/{login}")),
                }
            } else if w.members.contains(*login) {
                ok(204, Value::Null)
            } else {
                err(404, "not found")
            }
        }
        ("GET", ["repos", o, n]) => ok(200, json!({ "id": 1, "full_name": format!("{o}/{n}"), "name": n })),
        ("GET", ["repos", o, n, "issues", "comments"]) => {
            let repo = format!("{o}/{n}");
            let mut list: Vec<&FComment> =
                w.comments.iter().filter(|c| c.repo == repo && since.is_none_or(|s| c.updated_at >= s)).collect();
            list.sort_by_key(|c| (c.created_at, c.id));
            ok(200, page(list.into_iter().map(comment_json).collect()))
        }
        ("GET", ["repos", o, n, "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            match w.comments.iter().find(|c| c.id == id && c.repo == format!("{o}/{n}")) {
                Some(c) => ok(200, comment_json(c)),
                None => err(404, "not found"),
            }
        }
        ("PATCH", ["repos", o, n, "issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let now = w.now;
            match w.comments.iter_mut().find(|c| c.id == id && c.repo == format!("{o}/{n}")) {
                Some(c) => {
                    c.body = body["body"].as_str().unwrap_or("").to_string();
                    c.updated_at = now;
                    ok(200, comment_json(c))
                }
                None => err(404, "not found"),
            }
        }
        ("GET", ["repos", o, n, "issues", index, "comments"]) => {
            let (repo, issue) = (format!("{o}/{n}"), index.parse().unwrap_or(0));
            let list: Vec<Value> =
                w.comments.iter().filter(|c| c.repo == repo && c.issue == issue).map(comment_json).collect();
            ok(200, Value::Array(list))
        }
        ("POST", ["repos", o, n, "issues", index, "comments"]) => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let text = body["body"].as_str().unwrap_or("").to_string();
            let bot = w.bot.clone();
            let id = w.comment(&format!("{o}/{n}"), index.parse().unwrap_or(0), &bot, &text);
            let c = w.comments.iter().find(|c| c.id == id).unwrap().clone();
            ok(201, comment_json(&c))
        }
        ("GET", ["repos", o, n, "pulls", index]) => {
            match w.pulls.get(&(format!("{o}/{n}"), index.parse().unwrap_or(0))) {
                Some(p) => ok(200, pull_json(&format!("{o}/{n}"), index.parse().unwrap_or(0), p)),
                None => err(404, "not found"),
            }
        }
        ("GET", ["repos", o, n, "issues", index, "timeline"]) => {
            let list = match w.pulls.get(&(format!("{o}/{n}"), index.parse().unwrap_or(0))) {
                Some(p) => p
                    .pushes
                    .iter()
                    .filter(|t| since.is_none_or(|s| **t >= s))
                    .enumerate()
                    .map(|(i, t)| push_json(7000 + i as u64, *t))
                    .collect(),
                None => vec![],
            };
            ok(200, page(list))
        }
        ("POST", ["repos", o, n, "statuses", sha]) => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let s = FStatus {
                repo: format!("{o}/{n}"),
                sha: sha.to_string(),
                state: body["state"].as_str().unwrap_or("").into(),
                context: body["context"].as_str().unwrap_or("").into(),
                description: body["description"].as_str().unwrap_or("").into(),
                target_url: body["target_url"].as_str().unwrap_or("").into(),
            };
            if !["pending", "success", "error", "failure"].contains(&s.state.as_str()) {
                return err(422, "invalid state");
            }
            w.statuses.push(s.clone());
            let id = w.statuses.len() as u64;
            ok(201, status_json(id, &s, &w.bot.clone()))
        }
        _ => err(404, "not found"),
    }
}

fn drone(w: &mut World, r: &Recorded, rest: &str) -> Answer {
    let seg: Vec<&str> = rest.split('/').collect();
    match (r.method.as_str(), seg.as_slice()) {
        ("GET", ["user"]) => ok(
            200,
            json!({ "id": 1, "login": "ccci-bot", "email": "", "machine": true, "admin": false, "active": true }),
        ),
        ("GET", ["repos", o, n]) => ok(200, json!({ "id": 9, "slug": format!("{o}/{n}"), "active": true })),
        ("POST", ["repos", o, n, "builds"]) => {
            if w.drone_null {
                return ok(200, Value::Null);
            }
            let params: BTreeMap<String, String> = r
                .query
                .iter()
                .filter(|(k, _)| !["access_token", "commit", "branch"].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let b = FBuild {
                number: w.builds.len() as u64 + 1,
                repo: format!("{o}/{n}"),
                params,
                status: "pending".into(),
            };
            w.builds.push(b.clone());
            ok(200, build_json(&b))
        }
        ("GET", ["repos", _o, _n, "builds"]) => {
            let per: usize =
                r.query.iter().find(|(k, _)| k == "per_page").and_then(|(_, v)| v.parse().ok()).unwrap_or(25);
            let page: usize = r.query.iter().find(|(k, _)| k == "page").and_then(|(_, v)| v.parse().ok()).unwrap_or(1);
            let list: Vec<Value> =
                w.builds.iter().rev().skip((page.max(1) - 1) * per).take(per).map(build_json).collect();
            ok(200, Value::Array(list))
        }
        ("GET", ["repos", _o, _n, "builds", number]) => {
            match w.builds.iter().find(|b| b.number.to_string() == *number) {
                Some(b) => ok(200, build_json(b)),
                None => err(404, "not found"),
            }
        }
        _ => err(404, "not found"),
    }
}
