//! JUnit XML for CI dashboards (`ccci-report --format junit`): one testsuite per op, one testcase
//! per assertion.

use super::escape::*;
use super::*;

/// JUnit XML: one `<testsuite>` per op, one `<testcase>` per assertion (an op without assertions
/// is one testcase named after it), and a `deploy-once` suite when that rule broke.
pub fn junit(state: &RunState) -> String {
    let violation = state.deploy_once_violation();
    let properties = [
        ("recipe", state.recipe.to_string()),
        ("run_id", state.run_id.to_string()),
        ("ref", state.source.git_ref.clone()),
        ("commit", state.source.commit.clone().unwrap_or_default()),
        ("driver", state.driver.as_str().to_string()),
        ("deploys", state.deploys.to_string()),
        (
            "verdict",
            match serving_unchecked(state) {
                Some(why) => format!("{}: {}", verdict_words(state), line(&why, LINE_MAX)),
                None => verdict_words(state).to_string(),
            },
        ),
    ]
    .into_iter()
    .chain(host_access(state).map(|h| ("host_access", h)))
    .collect::<Vec<_>>();
    let (mut suites, mut total, mut total_ms) = (vec![], Counts::default(), 0);
    for row in rows(state, violation.as_deref()) {
        let classname = format!("{}.{}", state.recipe, row.name);
        let cases = junit_cases(&row);
        let counts = Counts::of(&cases);
        total.add(&counts);
        total_ms += row.duration_ms.unwrap_or(0);
        let mut suite = vec![format!(
            "  <testsuite name=\"{}\" {} time=\"{}\"{}>",
            xml_attr(row.name),
            counts.attributes(),
            seconds(row.duration_ms.unwrap_or(0)),
            if row.started_at.is_empty() {
                String::new()
            } else {
                format!(" timestamp=\"{}\"", xml_attr(row.started_at))
            }
        )];
        suite.push("    <properties>".into());
        for (name, value) in &properties {
            suite.push(format!("      <property name=\"{name}\" value=\"{}\"/>", xml_attr(value)));
        }
        suite.push("    </properties>".into());
        for case in &cases {
            suite.push(junit_case(case, &classname));
        }
        suite.push("  </testsuite>".into());
        suites.push(suite.join("\n"));
    }
    let mut out = vec![
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>".to_string(),
        format!(
            "<testsuites name=\"{}\" {} time=\"{}\">",
            xml_attr(&format!("ccci {} {}", state.recipe, state.run_id)),
            total.attributes(),
            seconds(total_ms)
        ),
    ];
    out.extend(suites);
    out.push("</testsuites>".into());
    out.join("\n") + "\n"
}

struct Case<'a> {
    name: &'a str,
    result: Outcome,
    duration_ms: u64,
    detail: &'a str,
    /// What a check printed (the end of it).
    output: Option<&'a str>,
}

fn junit_cases<'a>(row: &Row<'a>) -> Vec<Case<'a>> {
    let op = Case {
        name: row.name,
        result: row.result,
        duration_ms: row.duration_ms.unwrap_or(0),
        detail: row.detail,
        output: None,
    };
    if row.assertions.is_empty() {
        return vec![op];
    }
    let mut cases: Vec<Case> = row
        .assertions
        .iter()
        .map(|a| Case {
            name: &a.name,
            result: a.result,
            duration_ms: a.duration_ms,
            detail: &a.detail,
            output: a.output.as_deref(),
        })
        .collect();
    // An op can fail or error outside its assertions (the tier broke before or after them); a
    // dashboard must not show that suite green, so the op gets a testcase of its own.
    let bad = matches!(row.result, Outcome::Fail | Outcome::Error);
    if bad && !cases.iter().any(|c| c.result == row.result) {
        cases.push(op);
    }
    cases
}

fn junit_case(case: &Case, classname: &str) -> String {
    let open = format!(
        "    <testcase name=\"{}\" classname=\"{}\" time=\"{}\"",
        xml_attr(case.name),
        xml_attr(classname),
        seconds(case.duration_ms)
    );
    let full = clean(case.detail, false);
    // A check's output goes to <system-out>, where JUnit viewers show what a test printed.
    let output = case.output.map(|o| clean(o, false)).filter(|o| !o.is_empty());
    let system_out = |text: &str| format!("\n      <system-out>{}</system-out>", xml_text(text));
    let element = match case.result {
        Outcome::Pass if full.is_empty() && output.is_none() => return format!("{open}/>"),
        Outcome::Pass => {
            let text = match &output {
                Some(o) if full.is_empty() => o.clone(),
                Some(o) => format!("{full}\n\n{o}"),
                None => full,
            };
            return format!("{open}>{}\n    </testcase>", system_out(&text));
        }
        Outcome::Fail => "failure",
        Outcome::Error => "error",
        Outcome::Skip => "skipped",
    };
    let message = xml_attr(&line(case.detail, LINE_MAX));
    let kind = case.result.as_str();
    // The element's text would only repeat a message that already holds the whole detail.
    let body = if full.is_empty() || !full.contains('\n') && full.chars().count() <= LINE_MAX {
        format!("<{element} message=\"{message}\" type=\"{kind}\"/>")
    } else {
        format!("<{element} message=\"{message}\" type=\"{kind}\">{}</{element}>", xml_text(&full))
    };
    let out = output.as_deref().map(system_out).unwrap_or_default();
    format!("{open}>\n      {body}{out}\n    </testcase>")
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn of(cases: &[Case]) -> Counts {
        let count = |o: Outcome| cases.iter().filter(|c| c.result == o).count();
        Counts {
            tests: cases.len(),
            failures: count(Outcome::Fail),
            errors: count(Outcome::Error),
            skipped: count(Outcome::Skip),
        }
    }

    fn add(&mut self, other: &Counts) {
        self.tests += other.tests;
        self.failures += other.failures;
        self.errors += other.errors;
        self.skipped += other.skipped;
    }

    fn attributes(&self) -> String {
        format!(
            "tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\"",
            self.tests, self.failures, self.errors, self.skipped
        )
    }
}
