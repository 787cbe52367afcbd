//! The Markdown PR comment (`ccci-report --format markdown`): the verdict, a table of ops and
//! `<details>` with what did not pass and the checks' output.

use super::escape::*;
use super::*;

/// The longest detail one Markdown `<details>` block shows: GitHub refuses comments over 65536
/// characters, and the JUnit report keeps every detail in full anyway.
const BLOCK_MAX: usize = 4000;

/// The longest check output one Markdown block shows, and all of them together: the comment
/// must stay under GitHub's limit however many checks print.
const OUTPUT_BLOCK_MAX: usize = 2000;

const OUTPUT_TOTAL_MAX: usize = 30_000;

/// The PR comment: a verdict headline, a summary table, then a collapsible section per op.
pub fn markdown(state: &RunState) -> String {
    let violation = state.deploy_once_violation();
    let rows = rows(state, violation.as_deref());
    let v = verdict(state);
    let unchecked = serving_unchecked(state);
    let mark = if unchecked.is_some() { "☑️" } else { emoji(v) };
    let mut out = vec![
        format!(
            "## {mark} {} {} at {}{}",
            md_inline(state.recipe.as_str()),
            verdict_words(state),
            short_commit(state),
            base_note(state, |s, _| md_inline(s))
        ),
        String::new(),
        format!(
            "run {} · ref {} · driver {} · deploys {} · {}",
            md_inline(state.run_id.as_str()),
            md_inline(&state.source.git_ref),
            state.driver.as_str(),
            state.deploys,
            tally(state)
        ),
    ];
    if let Some(h) = &state.host_access {
        out.push(String::new());
        out.push(format!(
            "**Host access granted** ({}): {}",
            md_inline(&h.reason),
            h.granted.iter().map(|g| md_inline(g)).collect::<Vec<_>>().join("; ")
        ));
    }
    if v == Outcome::Error {
        out.push(String::new());
        out.push("An error means the harness or the environment broke, not necessarily the recipe.".into());
    }
    if let Some(why) = &unchecked {
        out.push(String::new());
        out.push(format!("**Serving was not checked**: no check asked the app anything. {}", md_inline(why)));
    }
    if let Some(violation) = &violation {
        out.push(String::new());
        out.push(format!(
            "{} **{}**: a run deploys exactly once and every tier acts on that deployment.",
            emoji(Outcome::Error),
            md_inline(violation)
        ));
    }
    out.push(String::new());
    if rows.is_empty() {
        out.push("No op was recorded.".into());
    } else {
        out.push("| op | result | duration | detail |".into());
        out.push("| --- | --- | --- | --- |".into());
        for row in &rows {
            out.push(format!(
                "| {} | {} | {} | {} |",
                md_inline(row.name),
                result_words(row.result),
                row.duration_ms.map(human_duration).unwrap_or_default(),
                md_inline(row.detail)
            ));
        }
    }
    let mut output_budget = OUTPUT_TOTAL_MAX;
    for row in &rows {
        out.push(String::new());
        out.extend(markdown_details(row, &mut output_budget));
    }
    out.push(String::new());
    let abra = state.versions.abra.as_deref().map(|a| format!(" · abra {}", md_inline(a))).unwrap_or_default();
    out.push(format!("<sub>ccci {}{abra}</sub>", md_inline(&state.versions.ccci)));
    out.join("\n") + "\n"
}

fn markdown_details(row: &Row, output_budget: &mut usize) -> Vec<String> {
    // Open what needs reading; passes and skips stay folded.
    let open = if matches!(row.result, Outcome::Fail | Outcome::Error) { " open" } else { "" };
    let duration = row.duration_ms.map(|ms| format!(" ({})", human_duration(ms))).unwrap_or_default();
    // HTML blocks end at a blank line, so the Markdown inside <details> needs one after <summary>.
    let mut out = vec![
        format!("<details{open}>"),
        format!(
            "<summary>{} {}: {}{duration}</summary>",
            emoji(row.result),
            html_inline(row.name),
            row.result.as_str()
        ),
        String::new(),
    ];
    if !row.assertions.is_empty() {
        out.push("| assertion | result | duration | detail |".into());
        out.push("| --- | --- | --- | --- |".into());
        for a in row.assertions {
            out.push(format!(
                "| {} | {} | {} | {} |",
                md_inline(&a.name),
                result_words(a.result),
                human_duration(a.duration_ms),
                md_inline(&a.detail)
            ));
        }
        out.push(String::new());
        for a in row.assertions {
            out.extend(markdown_output(a, output_budget));
        }
    }
    let detail = truncate(clean(row.detail, false), BLOCK_MAX);
    if !detail.is_empty() {
        out.push(fenced(&detail));
        out.push(String::new());
    }
    if !row.artifacts.is_empty() {
        let paths: Vec<String> = row.artifacts.iter().map(|p| p.display().to_string()).collect();
        out.push(format!("Diagnostics kept on the CI host ({} files):", paths.len()));
        out.push(fenced(&truncate(clean(&paths.join("\n"), false), BLOCK_MAX)));
        out.push(String::new());
    }
    out.push("</details>".into());
    out
}

/// A check's output as a collapsible code block (open when the check failed or errored), while
/// the comment's output budget lasts.
fn markdown_output(a: &Assertion, budget: &mut usize) -> Vec<String> {
    let Some(output) = a.output.as_deref().map(|o| clean(o, false)).filter(|o| !o.is_empty()) else {
        return vec![];
    };
    if *budget == 0 {
        return vec![
            format!(
                "Output of {} left out: the comment is at its size limit (the JUnit report has it).",
                md_inline(&a.name)
            ),
            String::new(),
        ];
    }
    // The end of the output is where the reason is: keep the last characters.
    let total = output.chars().count();
    let keep = OUTPUT_BLOCK_MAX.min(*budget);
    let shown = if total > keep {
        let tail: String = output.chars().skip(total - keep).collect();
        format!("… ({} earlier characters)\n{tail}", total - keep)
    } else {
        output
    };
    *budget = budget.saturating_sub(keep.min(total));
    let open = if matches!(a.result, Outcome::Fail | Outcome::Error) { " open" } else { "" };
    vec![
        format!("<details{open}>"),
        format!("<summary>output of {}</summary>", html_inline(&a.name)),
        String::new(),
        fenced(&shown),
        String::new(),
        "</details>".into(),
        String::new(),
    ]
}
