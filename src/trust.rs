//! The trust gate: which recipes may run their own, PR-authored code (`tests/<op>/` checks and
//! `tests/install_steps.sh`) on this host. Default deny: a recipe runs its own code only when it
//! is listed in the allowlist. cc-ci's overlays are maintained here and always run.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::naming::RecipeName;

/// Why a repo-local check or hook was discovered but not run.
pub const NOT_APPROVED: &str = "not approved: recipe not in allowlist";

/// The recipes approved to run repo-local code, and where that list came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    recipes: BTreeSet<String>,
    /// The file it was read from, or why there is none (for logs and details).
    origin: String,
}

impl Allowlist {
    /// The allowlist in effect: the file `CCCI_ALLOWLIST` names (which must exist: a mistyped
    /// path must not quietly approve nothing), else the `allowlist` installed with ccci
    /// (`<prefix>/share/ccci/allowlist`), else none, which approves no recipe.
    pub fn load() -> Result<Allowlist> {
        if let Some(path) = crate::config::allowlist_file()? {
            return Allowlist::read(&path);
        }
        match crate::discovery::share_dir().map(|d| d.join("allowlist")).filter(|p| p.is_file()) {
            Some(path) => Allowlist::read(&path),
            None => Ok(Allowlist { recipes: BTreeSet::new(), origin: "no allowlist (CCCI_ALLOWLIST unset)".into() }),
        }
    }

    pub fn read(path: &Path) -> Result<Allowlist> {
        let text = fs_err::read_to_string(path).map_err(|e| Error::bad_input(e.to_string()))?;
        Allowlist::parse(&text, &path.display().to_string())
    }

    /// One recipe name per line; `#` starts a comment; blank lines are ignored. Anything else on
    /// a line is refused, naming the line: a typo must not pass for an approval.
    pub fn parse(text: &str, origin: &str) -> Result<Allowlist> {
        let mut recipes = BTreeSet::new();
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let name = RecipeName::parse(entry)
                .map_err(|e| Error::bad_input(format!("{origin}:{}: {}", n + 1, e.message())))?;
            recipes.insert(name.to_string());
        }
        Ok(Allowlist { recipes, origin: origin.to_string() })
    }

    pub fn approves(&self, recipe: &RecipeName) -> bool {
        self.recipes.contains(recipe.as_str())
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(s: &str) -> RecipeName {
        RecipeName::parse(s).unwrap()
    }

    #[test]
    fn lists_recipes_with_comments_and_blanks() {
        let a =
            Allowlist::parse("# approved recipes\n\nhello\n  custom-html   # reviewed 2026-11\n", "allowlist").unwrap();
        assert!(a.approves(&recipe("hello")));
        assert!(a.approves(&recipe("custom-html")));
        assert!(!a.approves(&recipe("gitea")));
        assert_eq!(a.origin(), "allowlist");
    }

    #[test]
    fn empty_or_comments_only_approves_nothing() {
        for text in ["", "\n\n", "# nothing approved yet\n#hello\n"] {
            let a = Allowlist::parse(text, "allowlist").unwrap();
            assert!(!a.approves(&recipe("hello")), "{text:?}");
        }
    }

    #[test]
    fn names_must_match_exactly() {
        let a = Allowlist::parse("hello\n", "allowlist").unwrap();
        assert!(!a.approves(&recipe("hello-world")));
        assert!(!a.approves(&recipe("hell")));
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let e = Allowlist::parse("hello\nHello World\n", "/etc/ccci/allowlist").unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        assert!(e.to_string().starts_with("/etc/ccci/allowlist:2: invalid recipe name \"Hello World\""), "{e}");
    }

    #[test]
    fn the_project_allowlist_approves_nothing() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist");
        let a = Allowlist::read(&path).expect("the project's allowlist exists and parses");
        assert!(a.recipes.is_empty(), "the checked-in allowlist must stay empty by default: {:?}", a.recipes);
    }
}
