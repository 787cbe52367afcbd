//! ccci-report as a CI step runs it: a run-state in, one report out, the exit status for the run.
//!
//! The JUnit output is read back by standard readers (python3's ElementTree and, when installed,
//! the PyPI `junitparser` a dashboard would use); without python3 a small well-formedness check
//! written here stands in. It runs every time anyway.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ccci::run::naming::{Domain, RecipeName, RunId, StackName};
use ccci::run::state::{Assertion, DriverKind, OpRecord, Outcome, RunState, Source, Versions};

const HOSTILE: &str =
    "bad <script>alert(1)</script> | ]]> & \"q\" @admin ``` \u{1b}[31mred\u{1b}[0m \u{0}\u{8}\nline two";

fn op(name: &str, result: Outcome, detail: &str, assertions: Vec<Assertion>) -> OpRecord {
    OpRecord {
        op: name.into(),
        result,
        started_at: "2026-11-21T22:34:10Z".into(),
        duration_ms: 1_500,
        detail: detail.into(),
        assertions,
        artifacts: vec![],
        backup: None,
    }
}

fn assertion(name: &str, result: Outcome, detail: &str) -> Assertion {
    Assertion { name: name.into(), result, detail: detail.into(), duration_ms: 250, output: None }
}

fn state(ops: Vec<OpRecord>) -> RunState {
    let domain = Domain::parse("hell-3fa9c2.ccci.localhost").unwrap();
    let source = Source {
        repo: "/tmp/hello".into(),
        identity: Some("/tmp/hello".into()),
        git_ref: "main".into(),
        commit: Some("1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d".into()),
        ..Source::default()
    };
    RunState {
        created_at: "2026-11-21T22:34:08Z".into(),
        deploys: 1,
        ops,
        versions: Versions { ccci: "0.1.0".into(), abra: None },
        ..RunState::new(
            RunId::parse("hell-3fa9c2").unwrap(),
            RecipeName::parse("hello").unwrap(),
            DriverKind::Stack,
            source,
            domain.clone(),
            StackName::from_domain(&domain).unwrap(),
            "/var/lib/ccci/work/hell-3fa9c2".into(),
        )
    }
}

/// deploy pass, install fail (one passing and one failing assertion), upgrade skip, backup error.
fn mixed() -> RunState {
    state(vec![
        op("deploy", Outcome::Pass, "deployed 1a2b3c4d once: app 1/1", vec![]),
        op(
            "install",
            Outcome::Fail,
            &format!("serving: {HOSTILE}"),
            vec![assertion("converged", Outcome::Pass, "app 1/1"), assertion("serving", Outcome::Fail, HOSTILE)],
        ),
        op("upgrade", Outcome::Skip, "skipped: no published release before the PR head", vec![]),
        op("backup", Outcome::Error, "docker: daemon gone", vec![]),
    ])
}

fn passing() -> RunState {
    state(vec![
        op("deploy", Outcome::Pass, "deployed", vec![]),
        op(
            "install",
            Outcome::Pass,
            "2 assertions passed",
            vec![
                assertion("converged", Outcome::Pass, "app 1/1"),
                assertion("serving app:8080", Outcome::Pass, "GET http://127.0.0.1:32776/ → 200"),
            ],
        ),
        op("upgrade", Outcome::Skip, "skipped: nothing to upgrade from", vec![]),
    ])
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(common::bin("ccci-report"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ccci-report");
    // A usage error exits before reading stdin; the broken pipe that leaves is expected.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 report")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ccci-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn junit_is_read_back_by_standard_readers() {
    let out = run(&["--format", "junit"], &mixed().to_json());
    assert_eq!(out.status.code(), Some(1), "a failed and an errored op: {}", stderr(&out));
    let xml = stdout(&out);
    if let Err(e) = check_well_formed(&xml) {
        panic!("not well-formed XML: {e}\n{xml}");
    }
    // 4 suites (one per op); 5 testcases: deploy, converged, serving, upgrade, backup.
    let expected = "suites 4\ncases 5\nfailure 1\nerror 1\nskipped 1\nattributes 5 1 1 1\n";
    match python(ELEMENT_TREE, &xml) {
        None => eprintln!("NOTE: python3 not found; only the built-in well-formedness check ran"),
        Some(got) => {
            let (counts, message) = got.split_once("message ").expect("the script prints the failure message");
            assert_eq!(counts, expected);
            // Escaping round-trips: the reader gets the detail back as text, control characters
            // shown, the colour sequence dropped and the line break as ⏎ in the one-line message.
            assert_eq!(
                message.trim_end_matches('\n'),
                "bad <script>alert(1)</script> | ]]> & \"q\" @admin ``` red \\u{0}\\u{8} ⏎ line two"
            );
        }
    }
    match python(JUNITPARSER, &xml).as_deref() {
        None => eprintln!("NOTE: python3 not found; junitparser check skipped"),
        Some("junitparser missing\n") => {
            eprintln!(
                "NOTE: the PyPI junitparser package is not installed (pip install junitparser); its check skipped"
            )
        }
        Some(got) => assert_eq!(
            got,
            "deploy 1 0 0 0 pass\ninstall 2 1 0 0 pass,failure\nupgrade 1 0 0 1 skipped\nbackup 1 0 1 0 error\n"
        ),
    }
}

/// Counts what ElementTree finds, checks each suite's counts against its testcases, and prints the
/// first failure's message.
const ELEMENT_TREE: &str = r#"
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == "testsuites", root.tag
suites = root.findall("testsuite")
cases = root.findall("testsuite/testcase")
for s in suites:
    cs = s.findall("testcase")
    got = [len(cs)] + [sum(c.find(t) is not None for c in cs) for t in ("failure", "error", "skipped")]
    want = [int(s.get(a)) for a in ("tests", "failures", "errors", "skipped")]
    assert got == want, (s.get("name"), got, want)
print("suites", len(suites))
print("cases", len(cases))
for t in ("failure", "error", "skipped"):
    print(t, len(root.findall("testsuite/testcase/" + t)))
print("attributes", *(root.get(a) for a in ("tests", "failures", "errors", "skipped")))
print("message " + root.find("testsuite/testcase/failure").get("message"))
"#;

/// Per suite: name, the counts junitparser reads, and each testcase's result as it classifies it.
const JUNITPARSER: &str = r#"
import sys
try:
    import junitparser
except ImportError:
    print("junitparser missing")
    sys.exit(0)
xml = junitparser.JUnitXml.fromstring(sys.stdin.read())
for suite in xml:
    kinds = []
    for case in suite:
        kinds.append("pass" if case.is_passed else "skipped" if case.is_skipped else "error" if case.is_error else "failure")
    print(suite.name, suite.tests, suite.failures, suite.errors, suite.skipped, ",".join(kinds))
"#;

/// The script's stdout, or None when python3 is not installed.
fn python(script: &str, input: &str) -> Option<String> {
    let mut child = match Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("running python3: {e}"),
    };
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 rejected the report: {}\n{input}", stderr(&out));
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A small XML 1.0 well-formedness check: only allowed characters, one root, tags balanced and
/// nested, attribute values quoted without a raw `<`, and every `&` a known entity or a character
/// reference. Enough for what ccci-report writes; not a general parser (no comments, CDATA, DTD).
fn check_well_formed(xml: &str) -> Result<(), String> {
    if let Some(c) = xml
        .chars()
        .find(|&c| !matches!(c, '\t' | '\n' | '\r' | ' '..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..))
    {
        return Err(format!("character {c:?} is not allowed in XML 1.0"));
    }
    let mut rest = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>").ok_or("no XML declaration")?;
    let (mut open, mut roots) = (Vec::<&str>::new(), 0);
    while let Some(lt) = rest.find('<') {
        check_text(&rest[..lt], open.is_empty())?;
        rest = &rest[lt + 1..];
        let gt = tag_end(rest)?;
        let tag = &rest[..gt];
        rest = &rest[gt + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(o) if o == name => {}
                other => return Err(format!("</{name}> closes {other:?}")),
            }
            continue;
        }
        let (body, empty) = match tag.strip_suffix('/') {
            Some(b) => (b, true),
            None => (tag, false),
        };
        let name = check_attributes(body)?;
        if open.is_empty() {
            roots += 1;
        }
        if !empty {
            open.push(name);
        }
    }
    check_text(rest, true)?;
    match (open.last(), roots) {
        (Some(o), _) => Err(format!("<{o}> is never closed")),
        (None, 1) => Ok(()),
        (None, n) => Err(format!("{n} root elements")),
    }
}

/// Where the tag that starts here ends: the first `>` outside a quoted attribute value.
fn tag_end(s: &str) -> Result<usize, String> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Ok(i),
            (None, '<') => return Err(format!("raw < inside a tag: {s:.60}")),
            _ => {}
        }
    }
    Err("a tag is never closed".into())
}

/// Checks `name attr="value" ...` and returns the element name.
fn check_attributes(tag: &str) -> Result<&str, String> {
    let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_-.:".contains(c));
    let tag = tag.trim_end();
    let (name, mut rest) = tag.split_once(char::is_whitespace).unwrap_or((tag, ""));
    if !is_name(name) {
        return Err(format!("bad element name {name:?}"));
    }
    let mut seen = vec![];
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(name);
        }
        let (attr, after) = rest.split_once('=').ok_or_else(|| format!("attribute without a value in <{name}>"))?;
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'');
        let quote = quote.ok_or_else(|| format!("unquoted attribute {attr} in <{name}>"))?;
        let end = after[1..].find(quote).ok_or("unterminated attribute value")?;
        let value = &after[1..1 + end];
        if !is_name(attr) || seen.contains(&attr) || value.contains('<') {
            return Err(format!("bad attribute {attr}={value:?} in <{name}>"));
        }
        check_references(value)?;
        seen.push(attr);
        rest = &after[end + 2..];
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            return Err(format!("no space after attribute {attr} in <{name}>"));
        }
    }
}

fn check_text(text: &str, outside_root: bool) -> Result<(), String> {
    if outside_root && !text.trim().is_empty() {
        return Err(format!("text outside the root element: {text:.60}"));
    }
    if text.contains("]]>") {
        return Err("]]> in text".into());
    }
    check_references(text)
}

fn check_references(s: &str) -> Result<(), String> {
    for (i, _) in s.match_indices('&') {
        let semi = s[i..].find(';').ok_or_else(|| format!("bare & in {s:.60}"))?;
        let name = &s[i + 1..i + semi];
        let ok = match name.strip_prefix('#') {
            Some(hex) if hex.starts_with('x') => u32::from_str_radix(&hex[1..], 16).is_ok(),
            Some(dec) => dec.parse::<u32>().is_ok(),
            None => matches!(name, "amp" | "lt" | "gt" | "quot" | "apos"),
        };
        if !ok {
            return Err(format!("bad reference &{name};"));
        }
    }
    Ok(())
}

#[test]
fn the_well_formedness_check_catches_what_it_should() {
    let decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    assert!(check_well_formed(&format!("{decl}<a x=\"1 &amp; 2\"><b/>t &lt; &#10;</a>\n")).is_ok());
    for bad in [
        "<a><b></a></b>",
        "<a>x & y</a>",
        "<a x=\"<\"/>",
        "<a x=1/>",
        "<a>]]></a>",
        "<a>\u{1b}</a>",
        "<a/><b/>",
        "<a>",
        "<a x=\"1\" x=\"2\"/>",
    ] {
        assert!(check_well_formed(&format!("{decl}{bad}")).is_err(), "{bad}");
    }
}

#[test]
fn markdown_has_the_verdict_and_the_table() {
    let out = run(&["--format", "markdown"], &mixed().to_json());
    assert_eq!(out.status.code(), Some(1));
    let md = stdout(&out);
    assert!(md.starts_with("## ⚠️ hello errored at 1a2b3c4d\n"), "{md}");
    assert!(
        md.contains("\n| op | result | duration | detail |\n| --- | --- | --- | --- |\n| deploy | ✅ pass | 1.5s |")
    );
    assert!(md.contains("\n| install | ❌ fail | 1.5s | serving\\: bad &lt;script&gt;"));
    assert!(md.contains("\n| upgrade | ⏭️ skip | 1.5s | skipped\\: "));
    assert!(md.contains("\n| backup | ⚠️ error | 1.5s | docker\\: daemon gone |"));
    assert_eq!(md.matches("<details").count(), 4);
    assert!(!md.contains('\u{1b}') && !md.contains('\u{0}'));

    // Rendered by GitHub's own cmark-gfm with raw HTML allowed, the hostile details add no
    // element and no table cell.
    match python(CMARK_GFM, &md).as_deref() {
        None => eprintln!("NOTE: python3 not found; cmark-gfm rendering check skipped"),
        Some("cmarkgfm missing\n") => {
            eprintln!(
                "NOTE: the PyPI cmarkgfm package is not installed (pip install cmarkgfm); rendering check skipped"
            )
        }
        Some(got) => assert_eq!(
            got,
            "tables 2\nrows 8\ncells 24\ndetails 4\n\
             elements code details h2 p pre sub summary table tbody td th thead tr\n"
        ),
    }
}

/// Renders the comment as GitHub does and counts what came out.
const CMARK_GFM: &str = r#"
import re, sys
try:
    import cmarkgfm
    from cmarkgfm.cmark import Options
except ImportError:
    print("cmarkgfm missing")
    sys.exit(0)
html = cmarkgfm.github_flavored_markdown_to_html(sys.stdin.read(), options=Options.CMARK_OPT_UNSAFE)
for name, tag in (("tables", "<table>"), ("rows", "<tr>"), ("cells", "<td>"), ("details", "<details")):
    print(name, html.count(tag))
print("elements", *sorted(set(re.findall(r"<([a-z][a-z0-9]*)", html))))
"#;

#[test]
fn text_is_the_default_and_exit_codes_follow_the_verdict() {
    let out = run(&[], &passing().to_json());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(
            "ccci run hell-3fa9c2 · recipe hello · commit 1a2b3c4d (ref main) · driver stack · deploys 1\nverdict: PASS"
        ),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3 + 3 + 2, "header, verdict, blank, 3 ops, 2 assertions:\n{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    let mut failed = passing();
    failed.ops[1].result = Outcome::Fail;
    assert_eq!(run(&[], &failed.to_json()).status.code(), Some(1));

    let mut errored = passing();
    errored.ops[2].result = Outcome::Error;
    assert_eq!(run(&[], &errored.to_json()).status.code(), Some(1));

    let mut redeployed = passing();
    redeployed.deploys = 2;
    let out = run(&["--format", "text"], &redeployed.to_json());
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("verdict: ERROR"));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("ERROR  deploy-once ") && l.ends_with("  deploy-once violated (deploys = 2)")),
        "{}",
        stdout(&out)
    );

    let mut unasked = passing();
    unasked.ops[1].assertions[1] = assertion(
        "serving",
        Outcome::Skip,
        "nothing asked: the recipe has no HTTP endpoint: no service has traefik router labels or publishes a port, and CCCI_PROXY_URL is not set",
    );
    let out = run(&[], &unasked.to_json());
    assert_eq!(out.status.code(), Some(0), "nothing failed");
    assert!(
        stdout(&out).contains(
            "\nverdict: passed, but serving was not checked (3 ops: 2 passed, 1 skipped): nothing asked: the recipe has no HTTP endpoint"
        ),
        "{}",
        stdout(&out)
    );
    for format in ["markdown", "junit"] {
        let out = run(&["--format", format], &unasked.to_json());
        assert!(stdout(&out).contains("passed, but serving was not checked"), "{format}: {}", stdout(&out));
    }

    let nothing = state(vec![]);
    let out = run(&[], &nothing.to_json());
    assert_eq!(out.status.code(), Some(0), "nothing ran is not a failure of the recipe");
    assert!(stdout(&out).contains("verdict: SKIP"));
}

#[test]
fn state_and_output_files() {
    let dir = temp_dir("files");
    let state_file = dir.join("run.json");
    std::fs::write(&state_file, mixed().to_json()).unwrap();
    let report = dir.join("report.xml");
    let out =
        run(&["--state", state_file.to_str().unwrap(), "--format", "junit", "--output", report.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the report went to the file");
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(check_well_formed(&written).is_ok());
    assert_eq!(std::fs::read_to_string(&state_file).unwrap(), mixed().to_json(), "the state is not changed");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2, "no temporary file left behind");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_exit_2_with_one_line_and_no_report() {
    let good = passing().to_json();
    let cases: &[(&[&str], &str, &str)] = &[
        (&[], "{not json", "run-state on stdin: not JSON"),
        (&[], "", "empty input"),
        (&[], r#"{"schema":"ccci.run/v2"}"#, "expected \"ccci.run/v1\""),
        (&["--format", "xml"], &good, "unknown format \"xml\": expected text, junit or markdown"),
        (&["--format"], &good, "missing argument for option '--format'"),
        (&["--bogus"], &good, "invalid option '--bogus' (see ccci-report --help)"),
        (&["extra"], &good, "unexpected argument"),
        (&["--state", "/nonexistent/run.json"], "", "/nonexistent/run.json"),
    ];
    for (args, input, message) in cases {
        let out = run(args, input);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout, got {:?}", stdout(&out));
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(err.starts_with("ccci-report: error: ") && err.contains(message), "{args:?}: {err}");
    }
}

#[test]
fn help_and_version() {
    let out = run(&["--help"], "");
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("ccci-report: "));
    assert!(stdout(&out).contains("Usage: ccci-report [--state FILE] [--format text|junit|markdown] [--output FILE]"));
    let out = run(&["-V"], "");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("ccci-report {}\n", env!("CARGO_PKG_VERSION")));
}

/// A run-state larger than the documented limit is bad input, refused without reading the rest:
/// on stdin (a writer still writing is left with a broken pipe) and from `--state FILE`.
#[test]
fn a_run_state_over_the_size_limit_is_bad_input() {
    let limit = ccci::run::state::MAX_STATE_BYTES as usize;
    let big = " ".repeat(limit + 1);
    let out = run(&[], &big);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("reading the run-state from stdin: more than 16 MiB"), "{err}");
    // Exactly at the limit it is read (and judged on its content).
    let out = run(&[], &big[1..]);
    assert!(stderr(&out).contains("empty input"), "{}", stderr(&out));

    let dir = temp_dir("size-limit");
    let f = dir.join("run.json");
    std::fs::File::create(&f).unwrap().set_len(limit as u64 + 1).unwrap();
    let out = run(&["--state", f.to_str().unwrap()], "");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("reading {}: more than 16 MiB", f.display())), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A single-valued option given twice is refused, not decided by the last one.
#[test]
fn an_option_given_twice_is_refused() {
    let good = passing().to_json();
    for (args, flag) in [
        (&["--format", "junit", "--format", "text"][..], "--format"),
        (&["--state", "/x", "--state", "/x"], "--state"),
        (&["--output", "/tmp/a", "--output", "/tmp/b"], "--output"),
    ] {
        let out = run(args, &good);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(err.trim_end(), format!("ccci-report: error: {flag} given twice (see ccci-report --help)"));
    }
}
