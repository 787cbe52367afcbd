//! The run-state as reports (`ccci-report`): a terminal summary, JUnit XML for CI dashboards and
//! a Markdown PR comment. How to read each one: `docs/reports.md`.
//!
//! Names and details come from recipe output and PR-authored checks, so every string is hostile
//! text. [`escape::clean`] first drops ANSI colour sequences and shows every other control character (and
//! the bidi overrides that make text display in another order than it reads) as `\u{..}`; then
//! each format escapes for where the string lands: an XML attribute or text node, a Markdown table
//! cell, an HTML `<summary>`, a fenced code block.
//!
//! - this module: the verdict, its words and caveats, and what every format shows (the rows);
//! - [`text`], [`junit`], [`markdown`]: one format each;
//! - [`escape`]: making hostile text inert, for each place a string lands.
//!
//! This floor reads a run-state and nothing else: it runs no op and asks no tool.

pub mod escape;
pub mod junit;
pub mod markdown;
pub mod text;

use escape::{LINE_MAX, clean, line};

use crate::error::{Error, Result};
use crate::run::state::{Assertion, Outcome, RunState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Junit,
    Markdown,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "text" => Ok(Format::Text),
            "junit" => Ok(Format::Junit),
            "markdown" => Ok(Format::Markdown),
            _ => Err(Error::bad_input(format!("unknown format {s:?}: expected text, junit or markdown"))),
        }
    }

    pub fn render(self, state: &RunState) -> String {
        match self {
            Format::Text => text::text(state),
            Format::Junit => junit::junit(state),
            Format::Markdown => markdown::markdown(state),
        }
    }
}

/// The run's result: error if any op errored or the deploy-once rule broke, else fail if any op
/// failed, else pass. A run with no op, or only skipped ops, is a skip: it tested nothing, and a
/// report must not call that a pass.
///
/// An op's own result is the verdict; its assertions are the evidence (`ccci-assert` combines
/// them into the op's result).
pub fn verdict(state: &RunState) -> Outcome {
    let any = |o: Outcome| state.ops.iter().any(|op| op.result == o);
    if any(Outcome::Error) || state.deploy_once_violation().is_some() {
        Outcome::Error
    } else if any(Outcome::Fail) {
        Outcome::Fail
    } else if state.ops.iter().all(|op| op.result == Outcome::Skip) {
        Outcome::Skip
    } else {
        Outcome::Pass
    }
}

/// Why a passing run's app was never asked anything, or None when it was (or the run did not
/// pass). The app was asked when some op holds a passed assertion named `serving` or
/// `serving …` (the generic floor names every serving check so). The why is the detail of the
/// last `serving` assertion that did not pass (its skip says what there was to ask), else the
/// generic checks' opt-out, else that no serving check ran.
pub fn serving_unchecked(state: &RunState) -> Option<String> {
    if verdict(state) != Outcome::Pass {
        return None;
    }
    let all = || state.ops.iter().flat_map(|op| op.assertions.iter());
    let serving = |a: &&Assertion| a.name == "serving" || a.name.starts_with("serving ");
    if all().filter(serving).any(|a| a.result == Outcome::Pass) {
        return None;
    }
    if let Some(a) = all().rfind(serving) {
        return Some(a.detail.clone());
    }
    if let Some(a) = all().rfind(|a| a.name == "generic checks" && a.result == Outcome::Skip) {
        return Some(format!("the generic checks were not run ({})", a.detail));
    }
    Some("no serving check ran".into())
}

/// The headline words for the verdict: `passed`, `passed, but serving was not checked`,
/// `failed`, `tested nothing`, `errored`.
pub fn verdict_words(state: &RunState) -> &'static str {
    match verdict(state) {
        Outcome::Pass if serving_unchecked(state).is_some() => "passed, but serving was not checked",
        Outcome::Pass => "passed",
        Outcome::Fail => "failed",
        Outcome::Skip => "tested nothing",
        Outcome::Error => "errored",
    }
}

/// The last `n` non-empty lines of hostile output, each clean and bounded.
fn last_lines(output: &str, n: usize) -> Vec<String> {
    let cleaned = clean(output, false);
    let lines: Vec<&str> = cleaned.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].iter().map(|l| line(l, LINE_MAX)).collect()
}

/// One line of every report: a recorded op, or the deploy-once check the report adds itself.
struct Row<'a> {
    name: &'a str,
    result: Outcome,
    /// None for the deploy-once check, which is not an op and took no time.
    duration_ms: Option<u64>,
    started_at: &'a str,
    detail: &'a str,
    assertions: &'a [Assertion],
    /// Diagnostics captured on the CI host when the op failed.
    artifacts: &'a [std::path::PathBuf],
}

fn rows<'a>(state: &'a RunState, violation: Option<&'a str>) -> Vec<Row<'a>> {
    let mut rows: Vec<Row> = state
        .ops
        .iter()
        .map(|op| Row {
            name: op.op.as_str(),
            result: op.result,
            duration_ms: Some(op.duration_ms),
            started_at: &op.started_at,
            detail: &op.detail,
            assertions: &op.assertions,
            artifacts: &op.artifacts,
        })
        .collect();
    if let Some(detail) = violation {
        rows.push(Row {
            name: "deploy-once",
            result: Outcome::Error,
            duration_ms: None,
            started_at: "",
            detail,
            assertions: &[],
            artifacts: &[],
        });
    }
    rows
}

/// " · release 1.0.0+1, the upgrade base, does not deploy" for a headline, escaped by `escape`,
/// when the run's base release did not deploy (the head was then tested by itself); else empty.
fn base_note(state: &RunState, escape: impl Fn(&str, usize) -> String) -> String {
    match state.upgrade.as_ref().and_then(|p| p.base_failed()) {
        Some(note) => format!(" · {}", escape(&note, LINE_MAX)),
        None => String::new(),
    }
}

/// "4 ops: 2 passed, 1 failed, 1 skipped".
fn tally(state: &RunState) -> String {
    let n = state.ops.len();
    let mut parts = vec![];
    for (o, word) in
        [(Outcome::Pass, "passed"), (Outcome::Fail, "failed"), (Outcome::Error, "errored"), (Outcome::Skip, "skipped")]
    {
        let count = state.ops.iter().filter(|op| op.result == o).count();
        if count > 0 {
            parts.push(format!("{count} {word}"));
        }
    }
    let ops = if n == 1 { "op" } else { "ops" };
    if parts.is_empty() { format!("{n} {ops}") } else { format!("{n} {ops}: {}", parts.join(", ")) }
}

/// The commit as the chaos-version label shows it (first 8 hex), or why there is none.
fn short_commit(state: &RunState) -> String {
    match &state.source.commit {
        // Validated as 40 hex when the state was parsed, so safe in every format as is.
        Some(c) => c.chars().take(8).collect(),
        None => "(not fetched)".into(),
    }
}

fn upper(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Skip => "SKIP",
        Outcome::Error => "ERROR",
    }
}

fn emoji(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "✅",
        Outcome::Fail => "❌",
        Outcome::Skip => "⏭️",
        Outcome::Error => "⚠️",
    }
}

fn result_words(o: Outcome) -> String {
    format!("{} {}", emoji(o), o.as_str())
}

/// `340ms`, `12.3s`, `2m03s`, `1h05m`: what a person scanning a log wants.
fn human_duration(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60),
    }
}

/// JUnit's `time`: seconds with millisecond precision.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The host access the run was granted, on one line: `host access granted (why): a; b`.
fn host_access(state: &RunState) -> Option<String> {
    let h = state.host_access.as_ref()?;
    Some(format!("host access granted ({}): {}", h.reason, h.granted.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::escape::*;
    use super::junit::junit;
    use super::markdown::markdown;
    use super::text::text;
    use super::*;
    use crate::run::state::{OpName, OpRecord};

    const HOSTILE: &str = "bad <script>alert(1)</script> | ]]> & \"q\" 'a' @admin [x](javascript:alert(1)) ``` \u{1b}[31mred\u{1b}[0m \u{1b}]8;;http://evil\u{7} \u{202e}gnp.exe\u{0}\nsecond line\r\nthird";

    fn op(name: &str, result: Outcome, ms: u64, detail: &str, assertions: Vec<Assertion>) -> OpRecord {
        OpRecord {
            op: name.into(),
            result,
            started_at: "2026-11-21T22:34:10Z".into(),
            duration_ms: ms,
            detail: detail.into(),
            assertions,
            artifacts: vec![],
            backup: None,
        }
    }

    fn assertion(name: &str, result: Outcome, ms: u64, detail: &str) -> Assertion {
        Assertion { name: name.into(), result, detail: detail.into(), duration_ms: ms, output: None }
    }

    /// A run with one op of each result and hostile text in names and details.
    fn run() -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.source.commit = Some("1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d".into());
        s.deploys = 1;
        s.ops = vec![
            op("deploy", Outcome::Pass, 12_345, "deployed 1a2b3c4d once: app 1/1", vec![]),
            op(
                "install",
                Outcome::Fail,
                4_100,
                &format!("serving: {HOSTILE}"),
                vec![
                    assertion("converged", Outcome::Pass, 210, "app 1/1"),
                    assertion("serving <b>|x|</b>", Outcome::Fail, 3_890, HOSTILE),
                ],
            ),
            op("upgrade", Outcome::Skip, 3, "skipped: no published release before the PR head", vec![]),
            op("backup", Outcome::Error, 800, "docker: daemon gone\u{0}", vec![]),
        ];
        s
    }

    fn with_results(results: &[Outcome]) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.deploys = 1;
        s.ops = results.iter().map(|&r| op("x", r, 1, "d", vec![])).collect();
        s
    }

    #[test]
    fn verdict_is_the_worst_op() {
        use Outcome::*;
        assert_eq!(verdict(&with_results(&[Pass, Skip])), Pass);
        assert_eq!(verdict(&with_results(&[Pass, Fail, Skip])), Fail);
        assert_eq!(verdict(&with_results(&[Fail, Error, Pass])), Error);
        assert_eq!(verdict(&with_results(&[Skip, Skip])), Skip);
        assert_eq!(verdict(&with_results(&[])), Skip, "a run that tested nothing is not a pass");
    }

    fn passed_with(serving: Vec<Assertion>) -> RunState {
        let mut s = crate::run::state::tests::sample();
        s.source.commit = Some("1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d".into());
        s.deploys = 1;
        let mut install = vec![assertion("services at desired replicas", Outcome::Pass, 50, "app 1/1")];
        install.extend(serving);
        s.ops = vec![
            op("deploy", Outcome::Pass, 2_000, "deployed", vec![]),
            op("install", Outcome::Pass, 11_000, "", install),
            op("teardown", Outcome::Pass, 7_000, "nothing of the run is left", vec![]),
        ];
        s
    }

    static NOTHING: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "nothing asked: the recipe has no HTTP endpoint: no service has traefik router labels or publishes a port, and {} is not set",
            crate::config::PROXY_URL.name
        )
    });

    #[test]
    fn a_run_that_never_asked_the_app_is_not_a_plain_pass_in_any_report() {
        let s = passed_with(vec![assertion("serving", Outcome::Skip, 0, NOTHING.as_str())]);
        assert_eq!(verdict(&s), Outcome::Pass, "nothing failed");
        assert_eq!(serving_unchecked(&s).as_deref(), Some(NOTHING.as_str()));
        let t = text(&s);
        assert_eq!(
            t.lines().nth(1).unwrap(),
            format!(
                "verdict: passed, but serving was not checked (3 ops: 3 passed): {}",
                line(NOTHING.as_str(), LINE_MAX)
            )
        );
        let md = markdown(&s);
        assert!(md.starts_with("## ☑️ hello passed, but serving was not checked at 1a2b3c4d\n"), "{md}");
        assert!(md.contains("**Serving was not checked**: no check asked the app anything. nothing asked\\: the recipe has no HTTP endpoint"), "{md}");
        let x = junit(&s);
        assert!(
            x.contains("<property name=\"verdict\" value=\"passed, but serving was not checked: nothing asked: the recipe has no HTTP endpoint"),
            "{x}"
        );

        let opted_out = passed_with(vec![assertion(
            "generic checks",
            Outcome::Skip,
            0,
            &format!("skipped: opted out by {}=1 in the environment", crate::config::SKIP_GENERIC.name),
        )]);
        assert_eq!(
            serving_unchecked(&opted_out).as_deref(),
            Some(
                format!(
                    "the generic checks were not run (skipped: opted out by {}=1 in the environment)",
                    crate::config::SKIP_GENERIC.name
                )
                .as_str()
            )
        );
        assert_eq!(serving_unchecked(&passed_with(vec![])).as_deref(), Some("no serving check ran"));
    }

    #[test]
    fn a_run_that_asked_the_app_or_did_not_pass_has_no_serving_caveat() {
        let s = passed_with(vec![
            assertion("traefik routes the run's domain", Outcome::Pass, 0, "routed"),
            assertion("serving app:8080 (traefik)", Outcome::Pass, 900, "router r: 200"),
        ]);
        assert_eq!(serving_unchecked(&s), None);
        assert!(text(&s).contains("\nverdict: PASS (3 ops: 3 passed)\n"), "{}", text(&s));
        assert!(markdown(&s).starts_with("## ✅ hello passed at 1a2b3c4d"));
        assert!(junit(&s).contains("<property name=\"verdict\" value=\"passed\"/>"));

        let mut failed = passed_with(vec![assertion("serving", Outcome::Skip, 0, NOTHING.as_str())]);
        failed.ops[1].result = Outcome::Fail;
        assert_eq!(serving_unchecked(&failed), None);
        assert!(markdown(&failed).starts_with("## ❌ hello failed at"));
    }

    #[test]
    fn deploy_once() {
        let mut s = with_results(&[]);
        s.ops = vec![op("deploy", Outcome::Pass, 1, "", vec![]), op("install", Outcome::Pass, 1, "", vec![])];
        assert_eq!(s.deploy_once_violation(), None);
        assert_eq!(verdict(&s), Outcome::Pass);

        s.deploys = 2;
        assert_eq!(s.deploy_once_violation().as_deref(), Some("deploy-once violated (deploys = 2)"));
        assert_eq!(verdict(&s), Outcome::Error);

        s.deploys = 0;
        assert_eq!(verdict(&s), Outcome::Error, "a passed deploy that counted no deploy");
        s.ops[0].result = Outcome::Fail;
        assert_eq!(s.deploy_once_violation(), None, "refused before reaching the swarm: the deploy's own fail");
        assert_eq!(verdict(&s), Outcome::Fail);

        s.ops.clear();
        assert_eq!(s.deploy_once_violation(), None, "no deploy op, no deploy");

        let mut s = run();
        s.deploys = 3;
        for report in [text(&s), junit(&s), markdown(&s)] {
            assert!(report.contains("deploy-once violated (deploys = 3)"), "{report}");
        }
        assert!(junit(&s).contains(r#"<testsuites name="ccci hello hell-3fa9c2" tests="6" failures="1" errors="2""#));
    }

    /// No control character other than a line break may reach any report.
    fn assert_inert(report: &str) {
        for c in report.chars() {
            assert!(c == '\n' || !is_hostile(c), "{c:?} in\n{report}");
        }
    }

    #[test]
    fn text_has_a_header_and_a_line_per_op_and_assertion() {
        let t = text(&run());
        assert_inert(&t);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "ccci run hell-3fa9c2 · recipe hello · commit 1a2b3c4d (ref main) · driver stack · deploys 1"
        );
        assert_eq!(lines[1], "verdict: ERROR (4 ops: 1 passed, 1 failed, 1 errored, 1 skipped)");
        assert_eq!(lines.len(), 3 + 4 + 2, "{t}");
        assert_eq!(lines[3], "PASS   deploy                  12.3s  deployed 1a2b3c4d once: app 1/1");
        assert!(lines[4].starts_with("FAIL   install                  4.1s  serving: bad <script>"));
        assert!(lines[5].starts_with("PASS     converged             210ms  app 1/1"), "{t}");
        assert!(lines[6].starts_with("FAIL     serving <b>|x|</b>     3.9s  bad"), "{t}");
        assert!(
            lines[4].ends_with("… (4 characters left out) … ](javascript:alert(1)) ``` red \\u{1b}]8;;http://evil\\u{7} \\u{202e}gnp.exe\\u{0} ⏎ second line ⏎ third"),
            "long details are cut in the middle, the end kept: {t}"
        );
        assert!(lines[8].starts_with("ERROR  backup"));
        assert!(lines[8].ends_with("docker: daemon gone\\u{0}"), "{t}");
        // The colour sequence is gone, the OSC one is shown, not obeyed.
        assert!(t.contains(" red \\u{1b}]8;;http://evil\\u{7} \\u{202e}gnp.exe"), "{t}");
    }

    #[test]
    fn the_end_of_a_long_docker_message_survives_in_the_text_and_junit_reports() {
        let mut s = run();
        let endings = [
            (
                "rpc error: code = InvalidArgument desc = only updates to Labels are allowed",
                "only updates to Labels are allowed",
            ),
            (
                "network \"proxy\" is declared as external, but could not be found. You need to create a swarm-scoped network before the stack is deployed",
                "You need to create a swarm-scoped network before the stack is deployed",
            ),
        ];
        for (ending, words) in endings {
            s.ops[0].result = Outcome::Fail;
            s.ops[0].detail = format!(
                "docker stack deploy hell-3fa9c2_ci_example_org: exited with status 1: failed to update config hell-3fa9c2_ci_example_org_index_v3_with_a_long_name: Error response from daemon: {ending}"
            );
            assert!(s.ops[0].detail.chars().count() > LINE_MAX);
            let t = text(&s);
            let deploy = t.lines().find(|l| l.starts_with("FAIL   deploy")).unwrap();
            assert!(deploy.ends_with(words), "{deploy}");
            assert!(
                deploy.contains(
                    "FAIL   deploy                  12.3s  docker stack deploy hell-3fa9c2_ci_example_org: exited"
                ),
                "{deploy}"
            );
            assert!(deploy.contains("characters left out"), "{deploy}");
            let x = junit(&s);
            let message = x.lines().find(|l| l.contains("<failure message=\"docker stack deploy")).unwrap();
            assert!(message.contains(&format!("{}\" type=\"fail\"", xml_attr(words))), "{message}");
            assert!(md_inline(&s.ops[0].detail).ends_with(&md_inline(words)));
        }
    }

    #[test]
    fn the_headlines_name_a_base_release_that_does_not_deploy() {
        let mut s = run();
        s.ops.retain(|o| o.op == OpName::Deploy);
        let serving = assertion("serving app:8080", Outcome::Pass, 3, "GET http://127.0.0.1:32770/ → 200");
        s.ops.push(op("install", Outcome::Pass, 4_100, "1 assertions passed", vec![serving]));
        s.upgrade = Some(crate::run::state::UpgradePlan {
            base: Some(crate::run::state::BaseRelease {
                tag: "1.0.0+1".into(),
                commit: "d70f25c8".repeat(5),
                annotated: true,
            }),
            reason: "release 1.0.0+1, the upgrade base, does not deploy: …; the head was deployed and tested by itself"
                .into(),
            base_failure: Some("The network s_appnet cannot be used with services.".into()),
            canaries: vec![],
        });
        let t = text(&s);
        assert_eq!(
            t.lines().nth(1).unwrap(),
            "verdict: PASS (2 ops: 2 passed) · release 1.0.0+1, the upgrade base, does not deploy"
        );
        let md = markdown(&s);
        assert!(
            md.starts_with(
                "## ✅ hello passed at 1a2b3c4d · release 1\\.0\\.0\\+1\\, the upgrade base\\, does not deploy\n"
            ),
            "{md}"
        );
        // A plan without a failure says nothing more.
        s.upgrade.as_mut().unwrap().base_failure = None;
        assert_eq!(text(&s).lines().nth(1).unwrap(), "verdict: PASS (2 ops: 2 passed)");
    }

    #[test]
    fn clean_makes_text_inert() {
        assert_eq!(clean("\u{1b}[1;31mred\u{1b}[0m\r\nok\rx\t", false), "red\nok\nx");
        assert_eq!(clean(" a\nb\tc ", true), "a ⏎ b c");
        assert_eq!(clean("  plain ASCII, kept as it is ", true), "plain ASCII, kept as it is");
        assert_eq!(clean("a\u{0}b\u{7f}\u{85}\u{ffff}", true), "a\\u{0}b\\u{7f}\\u{85}\\u{ffff}");
        assert_eq!(truncate("abcdef".into(), 4), "ab … (2 characters left out) … ef");
        assert_eq!(truncate("abcd".into(), 4), "abcd");
        assert_eq!(human_duration(999), "999ms");
        assert_eq!(human_duration(61_000), "1m01s");
        assert_eq!(human_duration(3_723_000), "1h02m");
        assert_eq!(seconds(12_345), "12.345");
    }

    #[test]
    fn junit_counts_and_escapes() {
        let x = junit(&run());
        assert_inert(&x);
        assert!(x.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
        assert!(x.contains(r#"tests="5" failures="1" errors="1" skipped="1" time="17.248""#), "{x}");
        assert!(x.contains(r#"<testsuite name="install" tests="2" failures="1" errors="0" skipped="0" time="4.100""#));
        assert!(x.contains(r#"<testcase name="upgrade" classname="hello.upgrade" time="0.003">"#));
        // A detail that fits the message is not repeated as the element's text.
        assert!(x.contains(r#"<skipped message="skipped: no published release before the PR head" type="skip"/>"#));
        assert!(x.contains(r#"<error message="docker: daemon gone\u{0}" type="error"/>"#));
        assert!(x.contains(r#"<testcase name="serving &lt;b&gt;|x|&lt;/b&gt;" classname="hello.install""#));
        assert!(!x.contains("<script") && !x.contains("</b>"), "{x}");
        assert!(!x.contains("]]>"), "{x}");
        // In attributes the line break is a character reference; in text it stays.
        assert!(x.contains(r#"&apos;a&apos; @admin"#));
        assert!(
            x.contains(r#"<failure message="bad &lt;script&gt;alert(1)&lt;/script&gt; | ]]&gt; &amp; &quot;q&quot;"#)
        );
        assert!(x.contains("gnp.exe\\u{0}\nsecond line\nthird</failure>"), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 5);
        assert_eq!(x.matches("<failure ").count(), 1);
    }

    #[test]
    fn junit_gives_an_op_that_broke_outside_its_assertions_a_testcase() {
        let mut s = run();
        s.ops[1].assertions[1].result = Outcome::Pass;
        let x = junit(&s);
        assert!(x.contains(r#"<testsuite name="install" tests="3" failures="1""#), "{x}");
        assert!(x.contains(r#"<testcase name="install" classname="hello.install" time="4.100">"#), "{x}");
    }

    /// Splits a table row the way GFM does: `\` escapes the next character, a bare `|` separates.
    fn cells(row: &str) -> Vec<String> {
        let mut cells = vec![String::new()];
        let mut chars = row.trim().trim_start_matches('|').chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    let cell = cells.last_mut().unwrap();
                    cell.push(c);
                    cell.extend(chars.next());
                }
                '|' => cells.push(String::new()),
                c => cells.last_mut().unwrap().push(c),
            }
        }
        cells.pop(); // after the closing pipe
        cells
    }

    /// The comment without its fenced code blocks, where anything is literal.
    fn outside_fences(md: &str) -> String {
        let mut fence: Option<String> = None;
        let mut out = vec![];
        for line in md.lines() {
            match &fence {
                Some(f) if line == f => fence = None,
                Some(_) => {}
                None if line.starts_with("```") => {
                    fence = Some(line.chars().take_while(|&c| c == '`').collect());
                }
                None => out.push(line),
            }
        }
        assert!(fence.is_none(), "unclosed fence in\n{md}");
        out.join("\n")
    }

    #[test]
    fn markdown_is_a_verdict_a_table_and_details() {
        let md = markdown(&run());
        assert_inert(&md);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "## ⚠️ hello errored at 1a2b3c4d");
        assert_eq!(
            lines[2],
            "run hell\\-3fa9c2 · ref main · driver stack · deploys 1 · 4 ops: 1 passed, 1 failed, 1 errored, 1 skipped"
        );
        let table: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with('|')).collect();
        assert_eq!(table[0], "| op | result | duration | detail |");
        assert_eq!(table[2], "| deploy | ✅ pass | 12.3s | deployed 1a2b3c4d once\\: app 1\\/1 |");
        assert!(table[3].starts_with("| install | ❌ fail | 4.1s | serving\\: bad &lt;script&gt;alert\\(1\\)&lt;\\/script&gt; \\| \\]\\]&gt; &amp; "));
        assert!(table.iter().any(|l| l.starts_with("| upgrade | ⏭️ skip | 3ms | skipped")));
        assert!(table.iter().any(|l| l.starts_with("| backup | ⚠️ error | 800ms | docker")));
        for row in &table {
            assert_eq!(cells(row).len(), 4, "{row}");
        }
        // The failing op's section is open, its assertions are a table, its detail a code block.
        assert!(md.contains("<details open>\n<summary>❌ install: fail (4.1s)</summary>\n\n| assertion |"));
        assert!(md.contains("| serving &lt;b&gt;\\|x\\|&lt;\\/b&gt; | ❌ fail | 3.9s | bad"));
        assert!(md.contains("<details>\n<summary>✅ deploy: pass (12.3s)</summary>"));
        assert!(md.contains("\n````text\nserving: bad <script>"), "the fence outgrows the ``` inside:\n{md}");
        assert!(md.contains("\\u{202e}gnp.exe\\u{0}\nsecond line\nthird\n````\n"), "{md}");

        let prose = outside_fences(&md);
        assert!(!prose.contains("<script") && !prose.contains("<b>") && !prose.contains("](java"), "{prose}");
        assert!(!prose.contains("@admin") && prose.contains("@&#8203;admin"), "{prose}");
        assert_eq!(prose.matches("<details").count(), 4);
        assert_eq!(prose.matches("</details>").count(), 4);
        assert!(md.ends_with("<sub>ccci 0\\.1\\.0</sub>\n"));
    }

    #[test]
    fn markdown_names_in_summaries_are_html_escaped() {
        let mut s = run();
        s.ops[0].op = "<img src=x onerror=alert(1)>@root".into();
        let md = markdown(&s);
        assert!(
            md.contains("<summary>✅ &lt;img src=x onerror=alert(1)&gt;@&#8203;root: pass (12.3s)</summary>"),
            "{md}"
        );
    }

    #[test]
    fn check_output_shows_in_every_format() {
        let mut s = run();
        s.ops[1].assertions.push(Assertion {
            name: "tests/install/10-login".into(),
            result: Outcome::Fail,
            detail: "failed (exit 1): login refused".into(),
            duration_ms: 20,
            output: Some("POST /login\n<b>403</b>\n\u{1b}[31mlogin refused\u{1b}[0m\n".into()),
        });
        let t = text(&s);
        assert_inert(&t);
        assert!(t.contains("\n         | POST /login\n         | <b>403</b>\n         | login refused\n"), "{t}");
        let x = junit(&s);
        assert_inert(&x);
        assert!(
            x.contains(
                "<failure message=\"failed (exit 1): login refused\" type=\"fail\"/>\n      <system-out>POST /login\n&lt;b&gt;403&lt;/b&gt;\nlogin refused</system-out>\n    </testcase>"
            ),
            "{x}"
        );
        let md = markdown(&s);
        assert_inert(&md);
        assert!(
            md.contains(
                "<details open>\n<summary>output of tests/install/10-login</summary>\n\n```text\nPOST /login\n<b>403</b>\nlogin refused\n```\n\n</details>"
            ),
            "{md}"
        );
        assert!(!outside_fences(&md).contains("<b>403"));
    }

    #[test]
    fn markdown_outputs_stay_within_a_budget() {
        let mut s = run();
        let long = "x".repeat(5000) + "\nthe reason\n";
        s.ops[1].assertions = (0..40)
            .map(|i| Assertion {
                name: format!("overlays/hello/install/{i:02}"),
                result: Outcome::Pass,
                detail: "ok".into(),
                duration_ms: 1,
                output: Some(long.clone()),
            })
            .collect();
        let md = markdown(&s);
        assert!(md.chars().count() < 65_536, "{}", md.chars().count());
        assert!(md.contains("\nthe reason\n```"), "the end of an output is kept");
        assert!(md.contains("earlier characters)"));
        assert!(md.contains("Output of overlays\\/hello\\/install\\/39 left out"), "{md}");
        assert!(md.contains("<details>\n<summary>output of overlays/hello/install/00</summary>"), "passes stay folded");
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("junit").unwrap(), Format::Junit);
        let e = Format::parse("xml").unwrap_err();
        assert_eq!(e.to_string(), "unknown format \"xml\": expected text, junit or markdown");
        assert_eq!(e.kind().exit_code(), 2);
    }
}
