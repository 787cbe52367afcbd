//! The trust gate: which recipe repositories may run their own, PR-authored code (`tests/<op>/`
//! checks and `tests/install_steps.sh`) on this host. Default deny: a recipe runs its own code
//! only when its repository (the identity of the source it was cloned from, see
//! [`crate::recipe::source::Identity`]) is listed in the allowlist. The recipe's name never approves: it
//! comes from the untrusted side (`--recipe-name`, a fork's last path component). cc-ci's
//! overlays are maintained here and always run.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::recipe::source::Identity;

/// Why a repo-local check or hook was discovered but not run.
pub const NOT_APPROVED: &str = "not approved: repository not in allowlist";

/// The recipe repositories approved to run repo-local code, and where that list came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowlist {
    /// (identity, line number).
    entries: Vec<(Identity, usize)>,
    /// The file it was read from, or why there is none (for logs and details).
    origin: String,
}

/// Which allowlist entry approved a run, as recorded in the run-state (`source.approved_by`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Approval {
    /// The entry, in canonical form (equal to `source.identity`).
    pub entry: String,
    /// `<allowlist file>:<line>`.
    pub at: String,
}

impl Allowlist {
    /// The allowlist in effect: the file `CCCI_ALLOWLIST` names (which must exist: a mistyped
    /// path must not quietly approve nothing), else the `allowlist` installed with ccci
    /// (`<prefix>/share/ccci/allowlist`), else none, which approves no recipe.
    pub fn load() -> Result<Allowlist> {
        if let Some(path) = crate::config::allowlist_file()? {
            return Allowlist::read(&path);
        }
        match crate::config::share_dir().map(|d| d.join("allowlist")).filter(|p| p.is_file()) {
            Some(path) => Allowlist::read(&path),
            None => Ok(Allowlist {
                entries: vec![],
                origin: format!("no allowlist ({} unset)", crate::config::ALLOWLIST.name),
            }),
        }
    }

    pub fn read(path: &Path) -> Result<Allowlist> {
        let text = fs_err::read_to_string(path).map_err(|e| Error::bad_input(e.to_string()))?;
        Allowlist::parse(&text, &path.display().to_string())
    }

    /// One repository per line (see [`Identity::from_entry`] for the forms accepted); `#` starts
    /// a comment; blank lines are ignored. Anything else on a line is refused, naming the line:
    /// a typo must not pass for an approval, and a bare recipe name (the old format) is refused
    /// with what to write instead.
    pub fn parse(text: &str, origin: &str) -> Result<Allowlist> {
        let mut entries = vec![];
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let id =
                Identity::from_entry(entry).map_err(|why| Error::bad_input(format!("{origin}:{}: {why}", n + 1)))?;
            entries.push((id, n + 1));
        }
        Ok(Allowlist { entries, origin: origin.to_string() })
    }

    /// The entry approving the repository `identity`, if any (`None` for no identity: a
    /// run-state written before identities were recorded is not approved).
    pub fn approval(&self, identity: Option<&Identity>) -> Option<Approval> {
        let identity = identity?;
        self.entries
            .iter()
            .find(|(id, _)| id == identity)
            .map(|(id, line)| Approval { entry: id.to_string(), at: format!("{}:{line}", self.origin) })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Identity {
        crate::recipe::source::RecipeSource::parse(s).unwrap().identity().clone()
    }

    fn approved(a: &Allowlist, source: &str) -> Option<String> {
        a.approval(Some(&id(source))).map(|ap| format!("{} ({})", ap.entry, ap.at))
    }

    #[test]
    fn lists_repositories_with_comments_and_blanks() {
        let a = Allowlist::parse(
            "# approved recipes\n\ngit.coopcloud.tech/coop-cloud/hello\n  https://git.coopcloud.tech/coop-cloud/custom-html.git   # reviewed 2026-11\n",
            "allowlist",
        )
        .unwrap();
        assert_eq!(
            approved(&a, "https://git.coopcloud.tech/coop-cloud/hello.git").as_deref(),
            Some("git.coopcloud.tech/coop-cloud/hello (allowlist:3)")
        );
        assert_eq!(
            approved(&a, "git@git.coopcloud.tech:Coop-Cloud/Custom-HTML.git").as_deref(),
            Some("git.coopcloud.tech/coop-cloud/custom-html (allowlist:4)")
        );
        assert_eq!(approved(&a, "https://git.coopcloud.tech/coop-cloud/gitea"), None);
        assert_eq!(a.origin(), "allowlist");
    }

    #[test]
    fn empty_or_comments_only_approves_nothing() {
        for text in ["", "\n\n", "# nothing approved yet\n#git.coopcloud.tech/coop-cloud/hello\n"] {
            let a = Allowlist::parse(text, "allowlist").unwrap();
            assert_eq!(approved(&a, "https://git.coopcloud.tech/coop-cloud/hello"), None, "{text:?}");
        }
    }

    #[test]
    fn a_fork_or_a_namesake_of_an_approved_repository_is_not_approved() {
        let a = Allowlist::parse("git.coopcloud.tech/coop-cloud/hello\n", "allowlist").unwrap();
        for s in [
            "https://git.coopcloud.tech/mallory/hello",
            "https://evil.example/coop-cloud/hello",
            "https://git.coopcloud.tech/coop-cloud/hello-world",
            "https://git.coopcloud.tech/coop-cloud/hell",
            "https://git.coopcloud.tech:8443/coop-cloud/hello",
        ] {
            assert_eq!(approved(&a, s), None, "{s}");
        }
    }

    #[test]
    fn no_identity_is_never_approved() {
        let a = Allowlist::parse("git.coopcloud.tech/coop-cloud/hello\n", "allowlist").unwrap();
        assert_eq!(a.approval(None), None);
    }

    #[test]
    fn a_bare_recipe_name_line_is_refused_naming_the_line_and_what_to_write() {
        let e = Allowlist::parse("git.coopcloud.tech/coop-cloud/hello\nhello\n", "/etc/ccci/allowlist").unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        let m = e.to_string();
        assert!(m.starts_with("/etc/ccci/allowlist:2: \"hello\" is a bare recipe name"), "{m}");
        assert!(m.contains("write its identity host/owner/name (e.g. git.coopcloud.tech/coop-cloud/hello)"), "{m}");
    }

    #[test]
    fn a_bad_line_is_refused_with_its_number() {
        let e = Allowlist::parse("git.example/o/n\nHello World\n", "/etc/ccci/allowlist").unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        assert!(e.to_string().starts_with("/etc/ccci/allowlist:2: "), "{e}");
    }

    #[test]
    fn the_project_allowlist_approves_nothing() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("allowlist");
        let a = Allowlist::read(&path).expect("the project's allowlist exists and parses");
        assert!(a.entries.is_empty(), "the checked-in allowlist must stay empty by default: {:?}", a.entries);
    }
}
