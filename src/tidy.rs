//! Tests that keep the docs and the `--help` texts in step with the tables they describe: the exit
//! codes ([`crate::error::exit`]). They read the files as text, from the workspace root.

use std::path::PathBuf;

use crate::error::exit;

/// Every binary, by its directory under `bins/`.
pub(crate) const BINARIES: &[&str] = &[
    "ccci-assert",
    "ccci-backup",
    "ccci-bridge",
    "ccci-deploy",
    "ccci-janitor",
    "ccci-report",
    "ccci-restore",
    "ccci-teardown",
    "ccci-upgrade",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs_err::read_to_string(root().join(rel)).unwrap()
}

/// The `--help` text of a binary, as its source spells it (`const HELP: &str = "\` to `";`).
pub(crate) fn help_of(bin: &str) -> String {
    let src = read(&format!("bins/{bin}/src/main.rs"));
    let start = src.find("const HELP: &str = \"\\\n").unwrap_or_else(|| panic!("{bin}: no `const HELP`"));
    let text = &src[start + "const HELP: &str = \"\\\n".len()..];
    text[..text.find("\n\";").unwrap_or_else(|| panic!("{bin}: HELP does not end"))].to_string()
}

/// The paragraph of `text` that starts with `head`, up to the next empty line.
fn paragraph<'a>(text: &'a str, head: &str) -> Option<&'a str> {
    let at = text.find(&format!("\n{head}")).map(|i| i + 1).or_else(|| text.starts_with(head).then_some(0))?;
    let rest = &text[at..];
    Some(&rest[..rest.find("\n\n").unwrap_or(rest.len())])
}

/// The rows of the first Markdown table in the section `## {section}` of a doc (before its first
/// `##` section when `section` is empty): their cells.
fn table(doc: &str, section: &str) -> Vec<Vec<String>> {
    let text = read(doc);
    let body = match section {
        "" => text.as_str(),
        _ => text.split(&format!("\n## {section}\n")).nth(1).unwrap_or_else(|| panic!("{doc}: no {section}")),
    };
    let body = body.split("\n## ").next().unwrap();
    body.lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

#[test]
fn operating_md_lists_the_exit_codes_of_the_table() {
    let want: Vec<Vec<String>> = exit::TABLE.iter().map(|(c, m)| vec![c.to_string(), m.to_string()]).collect();
    let table_md: String = want.iter().map(|r| format!("| {} |\n", r.join(" | "))).collect();
    assert_eq!(table("docs/operating.md", "Exit codes"), want, "docs/operating.md should list:\n{table_md}");
}

#[test]
fn each_help_says_what_every_exit_code_means_in_order() {
    let codes: Vec<i32> = exit::TABLE.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [exit::PASS, exit::FAILED, exit::BAD_INPUT, exit::ENVIRONMENT]);
    assert_eq!(codes, [0, 1, 2, 3], "the documented codes never change");
    for bin in BINARIES {
        let help = help_of(bin);
        let para = paragraph(&help, "Exit status: ").unwrap_or_else(|| panic!("{bin}: no `Exit status:` paragraph"));
        let para = para.replace('\n', " ");
        let mut at = 0;
        for &code in &codes {
            let mark = if code == exit::PASS { format!("Exit status: {code} ") } else { format!(", {code} ") };
            let found =
                para[at..].find(&mark).unwrap_or_else(|| panic!("{bin}: exit status {code} not said in order: {para}"));
            at += found + mark.len();
        }
    }
}

#[test]
fn the_report_docs_and_the_readme_use_the_same_codes() {
    let rows = table("docs/reports.md", "");
    let codes: Vec<String> = rows.iter().map(|r| r[0].clone()).collect();
    let want: Vec<String> = exit::TABLE.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(codes, want, "docs/reports.md");
    let readme = read("README.md").replace('\n', " ");
    assert!(readme.contains(
        "exits 0 (pass), 1 (the op failed), 2 (bad input; nothing was changed) or 3 (the environment broke)"
    ));
}
