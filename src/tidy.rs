//! Tests that keep the docs, the `--help` texts and the Nix side in step with the tables they
//! describe: the settings ([`crate::config::SETTINGS`], [`crate::config::READ_BY`]), the variables
//! ccci gives the programs it runs ([`crate::config::given`]) and the exit codes
//! ([`crate::error::exit`]). They read the files as text, from the workspace root.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use crate::config::{self, READ_BY, SETTINGS, given};
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

/// The width every `--help` text is wrapped at, as a terminal shows it (`\"` is one `"`).
const HELP_WIDTH: usize = 100;

#[test]
fn each_help_is_wrapped_at_the_help_width() {
    for bin in BINARIES {
        for line in help_of(bin).replace("\\\"", "\"").lines() {
            assert!(line.chars().count() <= HELP_WIDTH, "{bin} --help: a line over {HELP_WIDTH} characters: {line}");
        }
    }
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

/// Every `CCCI_*` name in `text`, `CCCI_SKIP_GENERIC_<OP>` standing for each op's.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(config::PREFIX) {
        let tail = &rest[i..];
        let end =
            tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches('_');
        if name == config::SKIP_GENERIC.name && tail[end..].starts_with("<OP>") {
            out.extend(
                SETTINGS
                    .iter()
                    .filter(|s| s.name.starts_with(&format!("{}_", config::SKIP_GENERIC.name)))
                    .map(|s| s.name.to_string()),
            );
        } else if !name.is_empty() && !tail[end..].starts_with(['*', '<']) {
            out.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

fn setting_names() -> BTreeSet<String> {
    SETTINGS.iter().map(|s| s.name.to_string()).collect()
}

#[test]
fn operating_md_lists_exactly_the_settings_config_knows_with_their_defaults_and_bounds() {
    let doc = read("docs/operating.md");
    let section = doc.split("\n## Settings\n").nth(1).expect("a Settings section").split("\n## ").next().unwrap();
    let rows: Vec<Vec<String>> = section
        .lines()
        .filter(|l| l.starts_with(&format!("| `{}", config::PREFIX)))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect();
    let expected: Vec<Vec<String>> = SETTINGS
        .iter()
        .map(|s| vec![format!("`{}`", s.name), s.default.to_string(), s.accepts.describe(), s.meaning.to_string()])
        .collect();
    let table: String = expected.iter().map(|r| format!("| {} |\n", r.join(" | "))).collect();
    assert_eq!(rows, expected, "docs/operating.md's settings table should read:\n{table}");
}

#[test]
fn each_help_names_exactly_the_settings_its_binary_reads() {
    let bins: Vec<&str> = READ_BY.iter().map(|(b, _)| *b).collect();
    assert_eq!(bins.iter().copied().collect::<BTreeSet<_>>(), BINARIES.iter().copied().collect(), "READ_BY");
    let settings = setting_names();
    for (bin, reads) in READ_BY {
        let want: BTreeSet<String> = reads.iter().map(|s| s.name.to_string()).collect();
        let named: BTreeSet<String> = names_in(&help_of(bin)).intersection(&settings).cloned().collect();
        assert_eq!(
            named,
            want,
            "{bin} --help: names {:?} it does not read; misses {:?}",
            named.difference(&want).collect::<Vec<_>>(),
            want.difference(&named).collect::<Vec<_>>()
        );
    }
    // Each setting is read by a binary, but the pipeline's own.
    let read: BTreeSet<String> = READ_BY.iter().flat_map(|(_, r)| r.iter().map(|s| s.name.to_string())).collect();
    let unread: Vec<_> = settings.difference(&read).collect();
    assert_eq!(unread, [config::BRIDGE_GIT_BASE.name], "settings no binary reads");
}

#[test]
fn every_ccci_name_a_help_or_doc_uses_is_a_setting_or_a_given_variable() {
    let mut known = setting_names();
    known.extend(given::CHECK.iter().chain(given::HOOK).chain(&given::BUILD_PARAMS).map(|n| n.to_string()));
    known.extend([given::GIT_USERNAME, given::GIT_PASSWORD].map(String::from));
    let mut files: Vec<String> = BINARIES.iter().map(|b| format!("bins/{b}/src/main.rs")).collect();
    files.extend(["README.md", "nix/lib.nix", "nix/modules/ccci.nix", "nix/recipe-ci.drone.yml"].map(String::from));
    for entry in fs_err::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(format!("docs/{}", path.file_name().unwrap().to_string_lossy()));
        }
    }
    for f in files {
        let unknown: Vec<String> = names_in(&read(&f)).difference(&known).cloned().collect();
        assert!(unknown.is_empty(), "{f} names {unknown:?}, which config.rs does not know");
    }
}

#[test]
fn writing_checks_md_lists_the_variables_a_check_and_the_hook_get() {
    let doc = read("docs/writing-checks.md");
    let tables: Vec<Vec<String>> = doc
        .split("\n\n")
        .filter(|block| block.starts_with("| variable | value |"))
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.strip_prefix("| `"))
                .map(|l| l[..l.find('`').unwrap()].to_string())
                .filter(|n| n.starts_with(config::PREFIX))
                .collect()
        })
        .collect();
    assert_eq!(tables, [given::CHECK, given::HOOK], "docs/writing-checks.md's variable tables");
}

/// The NixOS module's options that become a setting: their `default = "..."` (when a string) must
/// be a value ccci accepts for it, and every setting `nix/lib.nix` writes into the environment is
/// one ccci knows (the test above).
#[test]
fn the_nixos_modules_string_defaults_are_values_the_settings_accept() {
    let module = read("nix/modules/ccci.nix");
    let mut checked = 0;
    for block in module.split("mkOption {").skip(1) {
        let block = &block[..block.find("\n    };").unwrap_or(block.len())];
        let Some(at) = block.find("default = \"") else { continue };
        let value = &block[at + "default = \"".len()..];
        let value = &value[..value.find('"').unwrap()];
        let names = names_in(block);
        let [name] = names.iter().collect::<Vec<_>>()[..] else { continue };
        let Some(setting) = SETTINGS.iter().find(|s| s.name == name) else { continue };
        if value.contains("${") {
            continue;
        }
        let v = OsString::from(value);
        let lookup = |n: &str| (n == setting.name).then(|| v.clone());
        config::check_all_in(&lookup).unwrap_or_else(|e| panic!("nix/modules/ccci.nix: default {value:?}: {e}"));
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} defaults found: is the module's layout still `mkOption {{ ... }}`?");
    // The environment the units and steps get names settings, each once.
    let lib = read("nix/lib.nix");
    let env = lib.split("\n  environment =").nth(1).expect("nix/lib.nix: environment").split("\n    }").next().unwrap();
    let set: Vec<&str> =
        env.lines().filter_map(|l| l.trim().split(" = ").next()).filter(|n| n.starts_with(config::PREFIX)).collect();
    assert!(set.len() >= 10, "{set:?}");
    for n in set {
        assert!(SETTINGS.iter().any(|s| s.name == n), "nix/lib.nix sets {n}, which is not a setting");
    }
}
