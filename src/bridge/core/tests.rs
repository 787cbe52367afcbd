use super::*;

const BOT: &str = "ccci-bot";
const REPO: &str = "coop-cloud/hello";
const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER: &str = "fedcba9876543210fedcba9876543210fedcba98";
const W: Window = Window { lookback: 7200, overlap: 60 };
const NOW: Unix = 1_800_000_000;

fn comment(id: u64, pr: Option<u64>, author: &str, body: &str, at: Unix) -> Comment {
    Comment { id, pr, author: author.into(), body: body.into(), created_at: at, updated_at: at }
}

/// A warm state (cursor a minute ago) and facts where `alice` is a member and PR 7 is open at HEAD.
fn world(comments: Vec<Comment>) -> (RepoState, Facts) {
    let state = RepoState { cursor: Some(NOW - 60), ..Default::default() };
    let mut facts = Facts { now: NOW, bot: BOT.into(), repo: REPO.into(), comments, ..Default::default() };
    facts.membership.insert("alice".into(), Membership::Member);
    facts.membership.insert("mallory".into(), Membership::NotMember);
    facts.prs.insert(7, PrFacts::Known { open: true, head: HEAD.into(), pushes: vec![NOW - 3600] });
    (state, facts)
}

fn started(d: &Decision) -> Vec<&Run> {
    d.actions.iter().filter_map(|a| if let Action::Start(r) = a { Some(r) } else { None }).collect()
}

/// Performs every action as if the forge and Drone said yes, numbering comments and builds.
fn perform(state: &mut RepoState, d: &Decision) {
    for (i, a) in d.actions.iter().enumerate() {
        let i = i as u64;
        match a {
            Action::Start(_) => {
                apply(state, a, &Effect::Acked { status_comment: 9000 + i });
                apply(state, a, &Effect::Built { build: 100 + i });
            }
            Action::Request { .. } => apply(state, a, &Effect::Built { build: 200 + i }),
            Action::Adopt { build, .. } => apply(state, a, &Effect::Built { build: *build }),
            Action::Finish { .. } => apply(state, a, &Effect::Finished),
            Action::Refuse { .. } | Action::Link { .. } => apply(state, a, &Effect::Replied),
        }
    }
    if let Some(c) = d.cursor {
        state.cursor = Some(c);
    }
}

#[test]
fn only_a_whole_line_testme_with_an_optional_hex_prefix_is_a_request() {
    let cases: &[(&str, Option<Option<&str>>)] = &[
        ("!testme", Some(None)),
        ("  !testme  ", Some(None)),
        ("LGTM\n!testme\nthanks", Some(None)),
        ("!testme 0123456", Some(Some("0123456"))),
        ("!testme 0123456789ABCDEF", Some(Some("0123456789abcdef"))),
        ("!testme 0123456789abcdef0123456789abcdef01234567", Some(Some(HEAD))),
        ("!testme 012345", None),
        ("!testme 0123456789abcdef0123456789abcdef012345678", None),
        ("!testme xyz1234", None),
        ("!testme please", None),
        ("!testme 0123456 now", None),
        ("!testmexyz", None),
        ("!TESTME", None),
        ("> !testme", None),
        ("please !testme", None),
        ("`!testme`", None),
        ("", None),
    ];
    for (body, want) in cases {
        let got = parse_command(body).map(|c| c.prefix);
        let want = want.map(|p| p.map(String::from));
        assert_eq!(got, want, "{body:?}");
    }
}

#[test]
fn a_members_testme_on_an_open_pull_request_starts_one_run_bound_to_the_head() {
    let (state, facts) = world(vec![comment(1, Some(7), "alice", "!testme", NOW - 10)]);
    let d = decide(&state, &facts, W);
    assert_eq!(
        d.actions,
        vec![Action::Start(Run {
            request_id: request_id(REPO, 1),
            pr: 7,
            sha: HEAD.into(),
            comment: 1,
            requester: "alice".into(),
            status_comment: None,
            build: None,
            phase: Phase::Requested,
        })]
    );
    assert!(d.deferred.is_empty());
    assert_eq!(d.cursor, Some(NOW - 10));
}

#[test]
fn each_request_is_decided_by_the_table_of_trust_rules() {
    struct Case {
        name: &'static str,
        comment: Comment,
        membership: Option<Membership>,
        pr: Option<PrFacts>,
        want: &'static str,
    }
    let open = |pushes: Vec<Unix>| Some(PrFacts::Known { open: true, head: HEAD.into(), pushes });
    let c = |author: &str, body: &str| comment(1, Some(7), author, body, NOW - 10);
    let cases = vec![
        Case {
            name: "member, head",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "start",
        },
        Case {
            name: "member, matching prefix",
            comment: c("alice", "!testme 0123456"),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "start",
        },
        Case {
            name: "member, prefix of an older commit",
            comment: c("alice", "!testme fedcba9"),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "refuse:mismatch",
        },
        Case {
            name: "member, pushed after the comment",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: open(vec![NOW - 5]),
            want: "refuse:pushed",
        },
        Case {
            name: "member, pushed the same second",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: open(vec![NOW - 10]),
            want: "refuse:pushed",
        },
        Case {
            name: "member, pushed after, but the prefix names the head",
            comment: c("alice", "!testme 0123456789"),
            membership: Some(Membership::Member),
            pr: open(vec![NOW - 5]),
            want: "start",
        },
        Case {
            name: "member, pushed before the comment",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: open(vec![NOW - 11]),
            want: "start",
        },
        Case {
            name: "member, closed",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: Some(PrFacts::Known { open: false, head: HEAD.into(), pushes: vec![] }),
            want: "refuse:closed",
        },
        Case {
            name: "404",
            comment: c("mallory", "!testme"),
            membership: Some(Membership::NotMember),
            pr: open(vec![]),
            want: "refuse:member",
        },
        Case {
            name: "redirect",
            comment: c("bob", "!testme"),
            membership: Some(Membership::Unknown("303 See Other".into())),
            pr: open(vec![]),
            want: "defer",
        },
        Case {
            name: "5xx",
            comment: c("bob", "!testme"),
            membership: Some(Membership::Unknown("502".into())),
            pr: open(vec![]),
            want: "defer",
        },
        Case {
            name: "timeout",
            comment: c("bob", "!testme"),
            membership: Some(Membership::Unknown("timed out".into())),
            pr: open(vec![]),
            want: "defer",
        },
        Case {
            name: "membership not asked",
            comment: c("bob", "!testme"),
            membership: None,
            pr: open(vec![]),
            want: "defer",
        },
        Case {
            name: "pull request unreadable",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: Some(PrFacts::Unknown("500".into())),
            want: "defer",
        },
        Case {
            name: "pull request not asked",
            comment: c("alice", "!testme"),
            membership: Some(Membership::Member),
            pr: None,
            want: "defer",
        },
        Case {
            name: "the bot itself",
            comment: c(BOT, "!testme"),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "nothing",
        },
        Case {
            name: "an issue, not a pull request",
            comment: comment(1, None, "alice", "!testme", NOW - 10),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "nothing",
        },
        Case {
            name: "not a request",
            comment: c("alice", "!testmexyz"),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "nothing",
        },
        Case {
            name: "older than the cursor's overlap",
            comment: comment(1, Some(7), "alice", "!testme", NOW - 200),
            membership: Some(Membership::Member),
            pr: open(vec![]),
            want: "nothing",
        },
    ];
    for case in cases {
        let mut state = RepoState { cursor: Some(NOW - 60), ..Default::default() };
        state.seen.insert(999);
        // A chat comment edited later than everything else: the cursor must still wait.
        let chat = Comment { updated_at: NOW + 100, ..comment(50, Some(7), "carol", "looks good", NOW - 30) };
        let comments = vec![case.comment.clone(), chat];
        let mut facts = Facts { now: NOW, bot: BOT.into(), repo: REPO.into(), comments, ..Default::default() };
        if let Some(m) = case.membership {
            facts.membership.insert(case.comment.author.clone(), m);
        }
        if let Some(p) = case.pr {
            facts.prs.insert(7, p);
        }
        let d = decide(&state, &facts, W);
        let got = match (d.actions.as_slice(), d.deferred.as_slice()) {
            ([], []) => "nothing".to_string(),
            ([], [_]) => "defer".into(),
            ([Action::Start(r)], []) => {
                assert_eq!(r.sha, HEAD, "{}", case.name);
                "start".into()
            }
            ([Action::Refuse { why, .. }], []) => match why {
                Refusal::NotMember => "refuse:member".into(),
                Refusal::PrClosed => "refuse:closed".into(),
                Refusal::HeadMismatch { .. } => "refuse:mismatch".into(),
                Refusal::PushedAfter { .. } => "refuse:pushed".into(),
            },
            other => format!("{other:?}"),
        };
        assert_eq!(got, case.want, "{}", case.name);
        if case.want == "defer" {
            // The next listing (from the cursor less the overlap) still holds the comment.
            let next = RepoState { cursor: d.cursor, ..state.clone() };
            assert_eq!(
                decide(&next, &facts, W).deferred.len(),
                1,
                "{}: the cursor passed a deferred comment",
                case.name
            );
        }
    }
}

#[test]
fn the_same_pull_request_and_commit_already_running_gets_a_link_not_a_second_build() {
    let (mut state, facts) = world(vec![comment(1, Some(7), "alice", "!testme", NOW - 10)]);
    let first = decide(&state, &facts, W);
    perform(&mut state, &first);
    let (_, mut facts) = world(vec![comment(2, Some(7), "alice", "!testme", NOW + 5)]);
    facts.now = NOW + 10;
    let d = decide(&state, &facts, W);
    assert_eq!(
        d.actions,
        vec![Action::Link { comment: 2, pr: 7, author: "alice".into(), request_id: request_id(REPO, 1) }]
    );
    // Two requests in one listing for the same pair: one run, one link.
    let (state, facts) = world(vec![
        comment(3, Some(7), "alice", "!testme", NOW - 5),
        comment(4, Some(7), "alice", "!testme 0123456", NOW - 4),
    ]);
    let d = decide(&state, &facts, W);
    assert_eq!(started(&d).len(), 1);
    assert!(matches!(&d.actions[1], Action::Link { comment: 4, .. }), "{:?}", d.actions);
}

#[test]
fn a_finished_run_does_not_block_a_new_request_for_the_same_commit() {
    let (mut state, facts) = world(vec![comment(1, Some(7), "alice", "!testme", NOW - 10)]);
    let first = decide(&state, &facts, W);
    perform(&mut state, &first);
    let req = request_id(REPO, 1);
    let mut facts = facts;
    facts.progress.insert(req.clone(), BuildProgress::Done { passed: true });
    let d = decide(&state, &facts, W);
    assert_eq!(d.actions, vec![Action::Finish { request_id: req, passed: true }]);
    perform(&mut state, &d);
    let (_, facts) = world(vec![comment(2, Some(7), "alice", "!testme", NOW - 2)]);
    assert_eq!(started(&decide(&state, &facts, W)).len(), 1);
}

#[test]
fn a_run_whose_build_number_was_lost_is_found_by_request_id_before_asking_again() {
    let (mut state, facts) = world(vec![comment(1, Some(7), "alice", "!testme", NOW - 10)]);
    let d = decide(&state, &facts, W);
    // The status comment was posted and saved; the process died around Drone's answer.
    apply(&mut state, &d.actions[0], &Effect::Acked { status_comment: 50 });
    let req = request_id(REPO, 1);
    assert_eq!(pending_runs(&state, &facts).0, vec![req.clone()]);
    // Without Drone's answer: nothing (never a blind second ask).
    assert!(decide(&state, &facts, W).actions.is_empty());
    let mut found = facts.clone();
    found.lookups.insert(req.clone(), BuildLookup::Found(41));
    assert_eq!(decide(&state, &found, W).actions, vec![Action::Adopt { request_id: req.clone(), build: 41 }]);
    let mut missing = facts.clone();
    missing.lookups.insert(req.clone(), BuildLookup::NotFound);
    assert_eq!(decide(&state, &missing, W).actions, vec![Action::Request { request_id: req }]);
}

#[test]
fn markers_round_trip_and_malformed_ones_are_ignored() {
    let m = Marker::Status {
        request_id: "abc123".into(),
        pr: 7,
        sha: HEAD.into(),
        comment: 1,
        requester: "alice".into(),
        build: Some(12),
    };
    assert_eq!(Marker::find(&format!("Testing…\n\n{}\n", m.render())), Some(m.clone()));
    let m2 = Marker::Status {
        request_id: "abc123".into(),
        pr: 7,
        sha: HEAD.into(),
        comment: 1,
        requester: "alice".into(),
        build: None,
    };
    assert_eq!(Marker::find(&m2.render()), Some(m2));
    assert_eq!(Marker::find(&Marker::Reply { comment: 5 }.render()), Some(Marker::Reply { comment: 5 }));
    for bad in [
        "<!-- ccci-bridge v1 req=a pr=7 sha=123 comment=1 by=a build=- -->",
        "<!-- ccci-bridge v1 req=a pr=x sha=0123456789abcdef0123456789abcdef01234567 comment=1 by=a build=- -->",
        "<!-- ccci-bridge v1 reply -->",
        "<!-- ccci-bridge v1 req=a",
        "<!-- other -->",
    ] {
        assert_eq!(Marker::find(bad), None, "{bad}");
    }
}

#[test]
fn a_lost_state_is_rebuilt_from_the_bots_markers_and_nothing_is_fired_again() {
    let comments = vec![
        comment(1, Some(7), "alice", "!testme", NOW - 30),
        comment(2, Some(7), "mallory", "!testme", NOW - 25),
        comment(3, Some(8), "alice", "!testme", NOW - 20),
    ];
    let (mut state, mut facts) = world(comments.clone());
    facts.prs.insert(8, PrFacts::Known { open: true, head: OTHER.into(), pushes: vec![] });
    let d = decide(&state, &facts, W);
    assert_eq!(d.actions.len(), 3);
    perform(&mut state, &d);
    // What the forge now holds: the requests plus the bot's replies with their markers.
    let mut all = comments;
    for (i, a) in d.actions.iter().enumerate() {
        let marker = match a {
            Action::Start(r) => Marker::Status {
                request_id: r.request_id.clone(),
                pr: r.pr,
                sha: r.sha.clone(),
                comment: r.comment,
                requester: r.requester.clone(),
                build: Some(100 + i as u64),
            },
            Action::Refuse { comment, .. } => Marker::Reply { comment: *comment },
            other => panic!("{other:?}"),
        };
        all.push(comment(9000 + i as u64, Some(7), BOT, &format!("status\n{}", marker.render()), NOW - 15));
    }
    facts.comments = all;
    let lost = RepoState::default();
    let d = decide(&lost, &facts, W);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert!(d.notes.iter().any(|n| n.contains("cold start")), "{:?}", d.notes);
    let mut rebuilt = lost.clone();
    absorb_markers(&mut rebuilt, &facts);
    assert_eq!(rebuilt.seen, state.seen);
    assert_eq!(rebuilt.runs.len(), 2);
    assert!(rebuilt.runs.values().all(|r| r.phase == Phase::Building && r.build.is_some()));
}

#[test]
fn a_cold_start_looks_back_only_the_window_and_says_so() {
    let (_, facts) = world(vec![
        comment(1, Some(7), "alice", "!testme", NOW - 7201),
        comment(2, Some(7), "alice", "!testme 0123456", NOW - 7000),
    ]);
    let d = decide(&RepoState::default(), &facts, W);
    assert_eq!(started(&d).iter().map(|r| r.comment).collect::<Vec<_>>(), vec![2]);
    assert!(d.notes.iter().any(|n| n.contains("cold start") && n.contains("7200s")), "{:?}", d.notes);
    let warm = RepoState { cursor: Some(NOW - 10), ..Default::default() };
    assert!(decide(&warm, &facts, W).notes.is_empty());
}

#[test]
fn request_ids_are_stable_and_differ_by_repository_and_comment() {
    assert_eq!(request_id(REPO, 1), request_id(REPO, 1));
    assert_ne!(request_id(REPO, 1), request_id(REPO, 2));
    assert_ne!(request_id(REPO, 1), request_id("coop-cloud/other", 1));
    assert_eq!(request_id(REPO, 1).len(), 16);
}

/// A small deterministic generator (xorshift), so the property runs the same everywhere.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[(self.next() % xs.len() as u64) as usize]
    }
}

#[test]
fn deciding_twice_on_the_same_facts_adds_no_action() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let bodies = ["!testme", "!testme 0123456", "!testme fedcba9", "hello", "!testmexyz", "ok\n!testme\n"];
    let authors = ["alice", "mallory", "bob", BOT];
    for round in 0..500 {
        let n = rng.next() % 6;
        let comments: Vec<Comment> = (0..n)
            .map(|i| {
                let pr = rng.pick(&[Some(7), Some(8), None]);
                let at = NOW - rng.next() % 120;
                comment(i + 1, pr, rng.pick(&authors), rng.pick(&bodies), at)
            })
            .collect();
        let mut state = RepoState { cursor: Some(NOW - rng.next() % 120), ..Default::default() };
        if rng.next().is_multiple_of(3) {
            state = RepoState::default();
        }
        let mut facts = Facts { now: NOW, bot: BOT.into(), repo: REPO.into(), comments, ..Default::default() };
        facts.membership.insert("alice".into(), Membership::Member);
        facts.membership.insert("mallory".into(), Membership::NotMember);
        facts.membership.insert("bob".into(), Membership::Unknown("502".into()));
        for pr in [7, 8] {
            let p = match rng.next() % 4 {
                0 => PrFacts::Unknown("timeout".into()),
                1 => PrFacts::Known { open: false, head: HEAD.into(), pushes: vec![] },
                2 => PrFacts::Known { open: true, head: OTHER.into(), pushes: vec![NOW - rng.next() % 120] },
                _ => PrFacts::Known { open: true, head: HEAD.into(), pushes: vec![] },
            };
            facts.prs.insert(pr, p);
        }
        let first = decide(&state, &facts, W);
        perform(&mut state, &first);
        let again = decide(&state, &facts, W);
        assert!(again.actions.is_empty(), "round {round}: {:?} after {:?}", again.actions, first.actions);
        let starts: BTreeSet<u64> = started(&first).iter().map(|r| r.comment).collect();
        assert_eq!(starts.len(), started(&first).len(), "round {round}: one run per comment");
    }
}
