//! The bridge's real HTTP client and tick against the fake forge + Drone (tests/common/forge.rs,
//! a TEST DOUBLE on loopback): what is sent, and the scenarios of crashes, failures, lost state
//! and moved heads.

mod common;
#[path = "common/forge.rs"]
mod forge;

use std::time::Duration;

use ccci::bridge::core::Window;
use ccci::bridge::tick::{self, CRASH, Hooks, Outcome, Settings};
use common::Sandbox;
use forge::{FPull, Fake, Fault, FaultKind, World};

const REPO: &str = "coop-cloud/hello";
const CI: &str = "coop-cloud/recipe-ci";
const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";
const NEW_HEAD: &str = "89abcdef0123456789abcdef0123456789abcdef";
const FORGE_TOKEN: &str = "forge-secret-7f3a";
const DRONE_TOKEN: &str = "drone-secret-91bc";
const T0: u64 = 1_800_000_000;

struct Env {
    fake: Fake,
    sb: Sandbox,
    settings: Settings,
}

fn env(name: &str) -> Env {
    let mut w = World {
        forge_token: FORGE_TOKEN.into(),
        drone_token: DRONE_TOKEN.into(),
        bot: "ccci-bot".into(),
        stall: Duration::from_millis(1500),
        now: T0,
        ..Default::default()
    };
    w.members.insert("alice".into());
    w.members.insert("ccci-bot".into());
    w.pulls.insert((REPO.into(), 7), FPull { open: true, head: HEAD.into(), fork: true, pushes: vec![T0 - 3600] });
    w.pulls.insert((REPO.into(), 8), FPull { open: true, head: NEW_HEAD.into(), fork: false, pushes: vec![] });
    w.pulls.insert((REPO.into(), 9), FPull { open: true, head: "a".repeat(40), fork: false, pushes: vec![] });
    let fake = Fake::start(w);
    let sb = Sandbox::new(&format!("bridge-{name}"));
    let dir = sb.root.clone();
    std::fs::write(dir.join("forge.token"), format!("{FORGE_TOKEN}\n")).unwrap();
    std::fs::write(dir.join("drone.token"), DRONE_TOKEN).unwrap();
    let read = |f: &str, what: &str| ccci::bridge::http::Token::read(&dir.join(f), what).unwrap();
    let settings = Settings {
        forge_url: fake.forge_url(),
        forge_token: read("forge.token", "forge"),
        org: "coop-cloud".into(),
        repos: vec![REPO.into()],
        drone_url: fake.drone_url(),
        drone_token: read("drone.token", "Drone"),
        drone_repo: CI.into(),
        state_dir: dir.join("state"),
        window: Window { lookback: 7200, overlap: 60 },
        timeout: Duration::from_secs(1),
    };
    Env { fake, sb, settings }
}

impl Env {
    fn tick(&self) -> Outcome {
        self.try_tick().expect("a tick")
    }

    /// A tick that may fail as a whole (the forge failing its first question).
    fn try_tick(&self) -> ccci::Result<Outcome> {
        let now = self.fake.with(|w| w.now);
        Hooks::none(|h| tick::tick(&self.settings, now, false, &|l| eprintln!("{l}"), h))
    }

    fn comment(&self, issue: u64, author: &str, body: &str) -> u64 {
        self.fake.with(|w| {
            w.now += 5;
            w.comment(REPO, issue, author, body)
        })
    }

    fn later(&self, secs: u64) {
        self.fake.with(|w| w.now += secs);
    }

    fn builds(&self) -> usize {
        self.fake.with(|w| w.builds.len())
    }
}

#[test]
fn a_members_testme_starts_one_build_with_the_fixed_parameters_and_tokens_only_in_the_header() {
    let e = env("start");
    let c = e.comment(7, "alice", "Looks good.\n!testme\n");
    let out = e.tick();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    e.fake.with(|w| {
        assert_eq!(w.builds.len(), 1);
        let params: Vec<(&str, &str)> = w.builds[0].params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let req = ccci::bridge::core::request_id(REPO, c);
        assert_eq!(
            params,
            vec![
                ("CCCI_HEAD_SHA", HEAD),
                ("CCCI_PR", "7"),
                ("CCCI_RECIPE_REPO", REPO),
                ("CCCI_REQUEST_ID", req.as_str()),
                ("CCCI_TRIGGER", "alice"),
            ]
        );
        for r in &w.requests {
            let all = format!("{} {:?} {}", r.path, r.query, r.body);
            assert!(!all.contains(FORGE_TOKEN) && !all.contains(DRONE_TOKEN), "a token outside the header: {all}");
            assert!(!r.query.iter().any(|(k, _)| k == "token" || k == "access_token"), "{:?}", r.query);
            let want = if r.path.starts_with("/drone/") {
                format!("Bearer {DRONE_TOKEN}")
            } else {
                format!("token {FORGE_TOKEN}")
            };
            assert_eq!(r.header("Authorization"), Some(want.as_str()), "{} {}", r.method, r.path);
            if let Some((_, since)) = r.query.iter().find(|(k, _)| k == "since") {
                assert!(ccci::time::parse_rfc3339(since).is_some(), "since={since}");
            }
        }
        // Write-ahead: the status comment and the pending status come before the build request.
        let order: Vec<String> =
            w.requests.iter().filter(|r| r.method != "GET").map(|r| format!("{} {}", r.method, r.path)).collect();
        let pos = |p: &str| order.iter().position(|o| o.contains(p)).unwrap_or_else(|| panic!("{p} in {order:?}"));
        assert!(
            pos("/issues/7/comments") < pos("/statuses/")
                && pos("/statuses/") < pos("/drone/api/repos/coop-cloud/recipe-ci/builds"),
            "{order:?}"
        );
        let bot = w.bot_comments();
        assert_eq!(bot.len(), 1);
        assert!(
            bot[0].body.contains("<!-- ccci-bridge v1 req=") && bot[0].body.contains("build=1 -->"),
            "{}",
            bot[0].body
        );
        assert!(bot[0].body.contains("/coop-cloud/recipe-ci/1"), "the comment links the build: {}", bot[0].body);
        let last = w.statuses.last().unwrap();
        assert_eq!((last.state.as_str(), last.context.as_str()), ("pending", "ccci"));
        assert!(last.target_url.ends_with("/coop-cloud/recipe-ci/1"), "{}", last.target_url);
    });
    // The same comment, read again in the overlap, starts nothing.
    e.later(10);
    assert!(e.tick().actions.is_empty());
    assert_eq!(e.builds(), 1);
    let state = std::fs::read_to_string(e.sb.root.join("state/state.json")).unwrap();
    assert!(!state.contains(FORGE_TOKEN) && !state.contains(DRONE_TOKEN));
}

#[test]
fn a_crash_between_the_build_request_and_the_state_save_leaves_exactly_one_build() {
    let e = env("crash");
    e.comment(7, "alice", "!testme");
    let now = e.fake.with(|w| w.now);
    let mut crash = || Err(ccci::Error::env(CRASH));
    let r = tick::tick(&e.settings, now, false, &|l| eprintln!("{l}"), &mut Hooks { after_build_request: &mut crash });
    assert!(r.is_err(), "the simulated crash ends the tick");
    assert_eq!(e.builds(), 1);
    e.later(30);
    let out = e.tick();
    assert!(out.actions.iter().any(|a| a.contains("adopt build 1")), "{:?}", out.actions);
    e.later(30);
    e.tick();
    assert_eq!(e.builds(), 1, "the next ticks found the build by its request id");
    let state = std::fs::read_to_string(e.sb.root.join("state/state.json")).unwrap();
    assert!(state.contains("\"build\": 1"), "{state}");
}

#[test]
fn drones_lost_answer_to_a_build_request_is_adopted_not_repeated() {
    let e = env("lost");
    e.comment(7, "alice", "!testme");
    e.fake.with(|w| {
        w.faults.push(Fault { method: "POST", path: "/builds".into(), kind: FaultKind::LoseAnswer, times: 1 })
    });
    assert_eq!(e.tick().errors.len(), 1);
    e.later(30);
    e.tick();
    assert_eq!(e.builds(), 1);
    assert_eq!(e.fake.with(|w| w.creates().len()), 1, "no second POST");
}

#[test]
fn twenty_ticks_with_random_api_failures_give_exactly_one_build_per_accepted_comment() {
    for seed in [0x2545_f491_4f6c_dd1d_u64, 0x9e37_79b9_7f4a_7c15, 0xdead_beef_cafe_f00d, 0x1234_5678_9abc_def1] {
        let e = env(&format!("random-{seed:x}"));
        e.fake.with(|w| {
            for pr in 10..16 {
                let head = format!("{:040x}", pr * 0x1111);
                w.pulls.insert((REPO.into(), pr), FPull { open: true, head, fork: false, pushes: vec![] });
            }
        });
        let mut accepted = vec![e.comment(7, "alice", "!testme"), e.comment(8, "alice", "!testme 89abcdef")];
        for pr in 10..16 {
            accepted.push(e.comment(pr, "alice", "!testme"));
        }
        let refused = e.comment(7, "mallory", "!testme");
        e.comment(7, "alice", "just chatting");
        e.fake.with(|w| w.random_faults = Some((seed, 30)));
        let mut failed_ticks = 0;
        for _ in 0..20 {
            e.later(20);
            match e.try_tick() {
                Ok(out) if out.errors.is_empty() => {}
                _ => failed_ticks += 1,
            }
        }
        assert!(failed_ticks >= 5, "seed {seed:x}: the failures hit: {failed_ticks} of 20 ticks had one");
        let at_most_one = |w: &World| {
            for &c in &accepted {
                let req = ccci::bridge::core::request_id(REPO, c);
                let n = w.builds.iter().filter(|b| b.params.get("CCCI_REQUEST_ID") == Some(&req)).count();
                assert!(n <= 1, "seed {seed:x}, comment {c}: {n} builds");
            }
        };
        e.fake.with(|w| at_most_one(w));
        // Once the forge and Drone answer again, every accepted comment has its one build.
        e.fake.with(|w| w.random_faults = None);
        for _ in 0..2 {
            e.later(20);
            e.tick();
        }
        e.fake.with(|w| {
            for &c in &accepted {
                let req = ccci::bridge::core::request_id(REPO, c);
                let n = w.builds.iter().filter(|b| b.params.get("CCCI_REQUEST_ID") == Some(&req)).count();
                assert_eq!(n, 1, "seed {seed:x}, comment {c}: builds {:?}", w.builds);
            }
            assert_eq!(w.builds.len(), accepted.len(), "seed {seed:x}");
            let replies = w.comments.iter().filter(|c| c.body.contains(&format!("reply comment={refused} "))).count();
            assert_eq!(replies, 1, "seed {seed:x}: one refusal for mallory");
            let status_comments = w.bot_comments().iter().filter(|c| c.body.contains(" req=")).count();
            assert_eq!(status_comments, accepted.len(), "seed {seed:x}: one status comment per run");
        });
    }
}

#[test]
fn a_deleted_state_file_is_rebuilt_from_the_markers_and_nothing_is_fired_again() {
    let e = env("rebuild");
    e.comment(7, "alice", "!testme");
    e.comment(7, "mallory", "!testme");
    e.tick();
    assert_eq!(e.builds(), 1);
    let comments = e.fake.with(|w| w.comments.len());
    std::fs::remove_file(e.sb.root.join("state/state.json")).unwrap();
    e.later(60);
    let out = e.tick();
    assert!(out.actions.is_empty(), "{:?}", out.actions);
    assert_eq!(e.builds(), 1);
    assert_eq!(e.fake.with(|w| w.comments.len()), comments, "no reply twice");
    let state = std::fs::read_to_string(e.sb.root.join("state/state.json")).unwrap();
    assert!(state.contains("\"build\": 1"), "the run came back from its marker: {state}");
}

#[test]
fn a_push_after_the_comment_is_refused_with_a_reply_asking_for_the_sha() {
    let e = env("pushed");
    e.comment(7, "alice", "!testme");
    e.fake.with(|w| {
        w.now += 3;
        let now = w.now;
        let p = w.pulls.get_mut(&(REPO.to_string(), 7)).unwrap();
        p.head = NEW_HEAD.into();
        p.pushes.push(now);
    });
    e.tick();
    assert_eq!(e.builds(), 0);
    let reply = e.fake.with(|w| w.bot_comments().iter().map(|c| c.body.clone()).collect::<Vec<_>>());
    assert_eq!(reply.len(), 1);
    assert!(reply[0].contains(&format!("!testme {}", &NEW_HEAD[..12])), "{}", reply[0]);
    // Naming the new head works.
    e.comment(7, "alice", &format!("!testme {}", &NEW_HEAD[..10]));
    e.tick();
    assert_eq!(e.builds(), 1);
    assert_eq!(e.fake.with(|w| w.builds[0].params["CCCI_HEAD_SHA"].clone()), NEW_HEAD);
}

#[test]
fn a_membership_redirect_or_a_server_error_starts_nothing_and_is_retried_next_tick() {
    let e = env("redirect");
    e.comment(7, "alice", "!testme");
    e.fake.with(|w| w.membership_redirect = true);
    let out = e.tick();
    assert_eq!(e.builds(), 0);
    assert!(out.errors.iter().any(|l| l.contains("303") && l.contains("member")), "{:?}", out.errors);
    assert!(e.fake.with(|w| w.bot_comments().is_empty()), "no reply to a configuration error");
    e.fake.with(|w| {
        w.membership_redirect = false;
        w.faults.push(Fault { method: "GET", path: "/members/".into(), kind: FaultKind::Status(502), times: 1 });
    });
    e.later(30);
    assert_eq!(e.tick().errors.len(), 1);
    assert_eq!(e.builds(), 0);
    e.fake
        .with(|w| w.faults.push(Fault { method: "GET", path: "/members/".into(), kind: FaultKind::Timeout, times: 1 }));
    e.later(30);
    assert!(e.tick().errors.iter().any(|l| l.contains("timed out")));
    assert_eq!(e.builds(), 0);
    e.later(30);
    assert!(e.tick().errors.is_empty());
    assert_eq!(e.builds(), 1, "retried once the forge answered");
}

#[test]
fn a_non_member_gets_one_polite_refusal_and_no_build() {
    let e = env("mallory");
    e.comment(7, "mallory", "!testme");
    e.tick();
    e.later(10);
    e.tick();
    assert_eq!(e.builds(), 0);
    let bodies = e.fake.with(|w| w.bot_comments().iter().map(|c| c.body.clone()).collect::<Vec<_>>());
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].starts_with("@mallory thanks for asking"), "{}", bodies[0]);
}

#[test]
fn drone_answering_null_marks_the_run_as_an_error_and_does_not_ask_again() {
    let e = env("null");
    e.comment(7, "alice", "!testme");
    e.fake.with(|w| w.drone_null = true);
    let out = e.tick();
    assert!(out.errors.iter().any(|l| l.contains("no pipeline matched")), "{:?}", out.errors);
    e.later(30);
    e.tick();
    e.fake.with(|w| {
        assert_eq!(w.creates().len(), 1);
        let last = w.statuses.last().unwrap();
        assert_eq!(last.state, "error");
        assert!(w.bot_comments()[0].body.contains("Drone started no build"));
    });
}

#[test]
fn the_same_pull_request_and_commit_already_running_gets_a_link() {
    let e = env("link");
    e.comment(7, "alice", "!testme");
    e.tick();
    e.comment(7, "alice", "!testme 0123456");
    e.tick();
    assert_eq!(e.builds(), 1);
    let bodies = e.fake.with(|w| w.bot_comments().iter().map(|c| c.body.clone()).collect::<Vec<_>>());
    assert_eq!(bodies.len(), 2);
    assert!(bodies[1].contains("already under way") && bodies[1].contains("/coop-cloud/recipe-ci/1"), "{}", bodies[1]);
}

#[test]
fn a_dry_run_only_reads() {
    let e = env("dry");
    e.comment(7, "alice", "!testme");
    let now = e.fake.with(|w| w.now);
    let out = Hooks::none(|h| tick::tick(&e.settings, now, true, &|_| {}, h)).unwrap();
    assert_eq!(out.actions.len(), 1, "{:?}", out.actions);
    assert!(out.actions[0].contains("start run"));
    assert!(e.fake.with(|w| w.requests.iter().all(|r| r.method == "GET")));
    assert!(!e.sb.root.join("state").exists(), "no state written");
}
