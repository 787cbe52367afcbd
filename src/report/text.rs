//! The terminal summary (`ccci-report --format text`): a header, the verdict, then one line per op
//! and per assertion.

use super::escape::*;
use super::*;

/// Lines of a failing check's output the terminal summary shows under it.
const TEXT_OUTPUT_LINES: usize = 5;

/// The terminal summary: a header, the verdict, then one line per op and per assertion.
pub fn text(state: &RunState) -> String {
    let violation = state.deploy_once_violation();
    let rows = rows(state, violation.as_deref());
    let mut out = vec![
        format!(
            "ccci run {} · recipe {} · commit {} (ref {}) · driver {} · deploys {}",
            state.run_id,
            state.recipe,
            short_commit(state),
            line(&state.source.git_ref, LINE_MAX),
            state.driver.as_str(),
            state.deploys
        ),
        match serving_unchecked(state) {
            Some(why) => format!(
                "verdict: {} ({}): {}{}",
                verdict_words(state),
                tally(state),
                line(&why, LINE_MAX),
                base_note(state, line)
            ),
            None => format!("verdict: {} ({}){}", upper(verdict(state)), tally(state), base_note(state, line)),
        },
    ];
    if let Some(h) = host_access(state) {
        out.push(line(&h, LINE_MAX * 4));
    }
    out.push(String::new());
    let names: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|r| (line(r.name, 40), r.assertions.iter().map(|a| format!("  {}", line(&a.name, 40))).collect()))
        .collect();
    let width = names.iter().flat_map(|(op, asserts)| std::iter::once(op).chain(asserts)).map(|n| n.chars().count());
    let width = width.max().unwrap_or(0);
    for (row, (name, assert_names)) in rows.iter().zip(&names) {
        let duration = row.duration_ms.map(human_duration).unwrap_or_default();
        out.push(text_line(row.result, name, width, &duration, row.detail));
        if !row.artifacts.is_empty() {
            let paths: Vec<String> = row.artifacts.iter().map(|p| line(&p.display().to_string(), LINE_MAX)).collect();
            out.push(format!("{:7}diagnostics: {}", "", paths.join(", ")));
        }
        for (a, name) in row.assertions.iter().zip(assert_names) {
            out.push(text_line(a.result, name, width, &human_duration(a.duration_ms), &a.detail));
            if matches!(a.result, Outcome::Fail | Outcome::Error)
                && let Some(o) = &a.output
            {
                out.extend(last_lines(o, TEXT_OUTPUT_LINES).into_iter().map(|l| format!("{:9}| {l}", "")));
            }
        }
    }
    if rows.is_empty() {
        out.push("no op recorded".into());
    }
    out.join("\n") + "\n"
}

fn text_line(result: Outcome, name: &str, width: usize, duration: &str, detail: &str) -> String {
    let line = format!("{:<5}  {name:<width$}  {duration:>7}  {}", upper(result), line(detail, LINE_MAX));
    line.trim_end().to_string()
}
