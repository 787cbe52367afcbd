//! Reading a recipe checkout without leaving it.
//!
//! A recipe's tree is written by the pull request's author, symlinks included. Everything ccci
//! (or a tool it drives) reads from a checkout — `.env.sample`, the compose files, `abra.sh`,
//! `tests/` and its listings, the install-steps hook, release notes — is found through
//! [`open_inside`]: a path that is absolute, climbs out with `..`, or passes through a symlink
//! (on the file itself or on any directory above it, through any chain of links) that resolves
//! outside the checkout is refused, never followed. Symlinks that stay inside are followed.

use std::io::ErrorKind;
use std::path::{Component, Path, PathBuf};

use crate::error::{Context, Error, Result};

/// How many links a chain may have before it counts as a loop (Linux's own `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;

/// Resolves `rel` inside the checkout `root` and returns where it is: `Ok(Some(path))`, a
/// canonical path under the canonical `root` (every symlink on the way resolved), or `Ok(None)`
/// when nothing is there (also a dangling link whose target would stay inside).
///
/// Refused with an [`Error::failed`] (the recipe's fault, op `fail`, exit 1) that names `rel` and,
/// for a link, where it points — never what is there:
/// - `rel` is absolute or contains `..` (`/etc/passwd`, `../../x`);
/// - `rel` or any directory above it is a symlink that resolves outside `root` (`tests -> /etc`,
///   `tests/custom -> /some/dir`, `.env.sample -> /host/file`, chains `a -> b -> /x`), or a
///   dangling link whose target lies outside, or a link loop.
///
/// An absolute link target that lies inside `root` is fine. `root` itself is ccci's own
/// directory and is trusted; failing to read it is an environment error.
pub fn open_inside(root: &Path, rel: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    let rel = rel.as_ref();
    let shown = rel.display();
    let mut parts = vec![];
    for c in rel.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                return Err(Error::failed(format!("{shown}: an absolute path, outside the recipe checkout: refused")));
            }
            Component::ParentDir => {
                return Err(Error::failed(format!("{shown}: `..` leaves the recipe checkout: refused")));
            }
        }
    }
    let root_c =
        fs_err::canonicalize(root).with_context(|| format!("opening the recipe checkout {}", root.display()))?;
    let mut cur = root_c.clone();
    let mut walked = PathBuf::new();
    for part in parts {
        walked.push(part);
        let next = cur.join(part);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == ErrorKind::NotADirectory => return Ok(None),
            Err(e) => {
                return Err(Error::from(e).context(format!("reading {} in the recipe checkout", walked.display())));
            }
        };
        if !meta.file_type().is_symlink() {
            cur = next;
            continue;
        }
        match std::fs::canonicalize(&next) {
            Ok(target) if target.starts_with(&root_c) => cur = target,
            Ok(target) => return Err(escapes(&walked, &target)),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                // Dangling: nothing to read, but a link aimed outside is refused all the same.
                let target = dangling_target(&next);
                return if target.starts_with(&root_c) { Ok(None) } else { Err(escapes(&walked, &target)) };
            }
            Err(e) if e.raw_os_error() == Some(40) => {
                return Err(Error::failed(format!(
                    "{}: a symlink loop in the recipe checkout: refused",
                    walked.display()
                )));
            }
            Err(e) => {
                return Err(Error::from(e).context(format!("resolving {} in the recipe checkout", walked.display())));
            }
        }
    }
    Ok(Some(cur))
}

/// One entry of a listing: its path relative to the checkout, and where it resolves (`None`:
/// a dangling link whose target stays inside).
pub type Entry = (PathBuf, Option<PathBuf>);

/// The entries of the directory `rel` inside `root`, each as (`rel/name`, where it resolves)
/// by [`open_inside`], in byte order of their names; `Ok(None)` when there is no such
/// directory. Refused when the directory or any entry leaves the checkout (the whole listing:
/// names of files outside the checkout must never be shown). A dangling entry whose target
/// stays inside resolves to `None`.
pub fn list_inside(root: &Path, rel: impl AsRef<Path>) -> Result<Option<Vec<Entry>>> {
    let rel = rel.as_ref();
    let Some(dir) = open_inside(root, rel)? else { return Ok(None) };
    let entries = match fs_err::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotADirectory => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![];
    for e in entries {
        names.push(e?.file_name());
    }
    names.sort();
    let mut out = vec![];
    for name in names {
        let entry = rel.join(&name);
        let resolved = open_inside(root, &entry)?;
        out.push((entry, resolved));
    }
    Ok(Some(out))
}

/// Reads the file `rel` of the checkout as bytes through [`open_inside`]; `Ok(None)` when absent.
pub fn read_inside(root: &Path, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>> {
    let rel = rel.as_ref();
    match open_inside(root, rel)? {
        Some(p) => fs_err::read(&p).map(Some).with_context(|| format!("reading {} of the recipe", rel.display())),
        None => Ok(None),
    }
}

fn escapes(rel: &Path, target: &Path) -> Error {
    Error::failed(format!(
        "{} is a symlink to {}, outside the recipe checkout: refused, not followed",
        rel.display(),
        target.display()
    ))
}

/// Where a dangling link ends, lexically (its directories are not there to resolve).
fn dangling_target(link: &Path) -> PathBuf {
    let mut p = link.to_path_buf();
    for _ in 0..MAX_HOPS {
        let Ok(t) = std::fs::read_link(&p) else { break };
        p = normalise(&p.parent().unwrap_or(Path::new("/")).join(t));
    }
    p
}

fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A checkout and a host directory beside it (outside), removed on drop.
    struct Tree {
        base: PathBuf,
    }

    impl Tree {
        fn new(name: &str) -> Tree {
            let base = std::env::temp_dir().join(format!("ccci-checkout-test-{}-{name}", std::process::id()));
            let _ = fs_err::remove_dir_all(&base);
            fs_err::create_dir_all(base.join("checkout")).unwrap();
            fs_err::create_dir_all(base.join("host/dir")).unwrap();
            fs_err::write(base.join("host/file"), "HOST_SECRET=marker\n").unwrap();
            fs_err::write(base.join("host/dir/marker-name"), "x").unwrap();
            Tree { base }
        }
        fn root(&self) -> PathBuf {
            self.base.join("checkout")
        }
        fn host(&self) -> PathBuf {
            self.base.join("host")
        }
        fn file(&self, rel: &str, text: &str) {
            let p = self.root().join(rel);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, text).unwrap();
        }
        fn link(&self, rel: &str, target: impl AsRef<Path>) {
            let p = self.root().join(rel);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            symlink(target, p).unwrap();
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.base);
        }
    }

    fn refused(t: &Tree, rel: &str, names: &[&str]) {
        let e = open_inside(&t.root(), rel).unwrap_err();
        assert_eq!(e.kind().exit_code(), 1, "{rel}: the recipe's fault: {e}");
        for n in names {
            assert!(e.to_string().contains(n), "{rel}: the refusal does not name {n:?}: {e}");
        }
        assert!(!e.to_string().contains("HOST_SECRET") && !e.to_string().contains("marker-name"), "{e}");
    }

    #[test]
    fn a_plain_file_inside_the_checkout_is_read() {
        let t = Tree::new("plain");
        t.file(".env.sample", "TYPE=hello\n");
        let p = open_inside(&t.root(), ".env.sample").unwrap().unwrap();
        assert_eq!(p, t.root().canonicalize().unwrap().join(".env.sample"));
        assert_eq!(read_inside(&t.root(), "./.env.sample").unwrap().unwrap(), b"TYPE=hello\n");
        assert_eq!(open_inside(&t.root(), "abra.sh").unwrap(), None, "absent is not an error");
        assert_eq!(open_inside(&t.root(), "missing/dir/file").unwrap(), None);
    }

    #[test]
    fn a_file_symlinked_outside_the_checkout_is_refused_naming_it_and_its_target() {
        let t = Tree::new("file-out");
        t.link(".env.sample", t.host().join("file"));
        t.link("compose.yml", "../host/file");
        t.link("abra.sh", t.host().join("file"));
        t.link("tests/install_steps.sh", "../../host/file");
        let target = t.host().join("file").display().to_string();
        for rel in [".env.sample", "compose.yml", "abra.sh", "tests/install_steps.sh"] {
            refused(&t, rel, &[rel, &target, "outside the recipe checkout"]);
            assert!(read_inside(&t.root(), rel).is_err(), "{rel} is not read");
        }
    }

    #[test]
    fn a_directory_symlinked_outside_is_refused_for_everything_under_it() {
        let t = Tree::new("dir-out");
        t.link("tests", t.host().join("dir"));
        refused(&t, "tests", &["tests is a symlink to", "host/dir"]);
        refused(&t, "tests/install", &["tests is a symlink to"]);
        refused(&t, "tests/marker-name", &["tests is a symlink to"]);
        assert!(list_inside(&t.root(), "tests").is_err());
    }

    #[test]
    fn a_nested_directory_symlinked_outside_is_refused_and_its_listing_is_not_shown() {
        let t = Tree::new("nested-out");
        t.file("tests/install/10-ok", "#!/bin/sh\n");
        t.link("tests/custom", t.host().join("dir"));
        refused(&t, "tests/custom", &["tests/custom is a symlink to", "host/dir"]);
        let e = list_inside(&t.root(), "tests/custom").unwrap_err();
        assert!(!e.to_string().contains("marker-name"), "{e}");
        // A listing of tests/ holding the escaping entry is refused as a whole.
        let e = list_inside(&t.root(), "tests").unwrap_err();
        assert!(e.to_string().contains("tests/custom"), "{e}");
        assert_eq!(list_inside(&t.root(), "tests/install").unwrap().unwrap().len(), 1);
    }

    #[test]
    fn a_chain_of_symlinks_is_followed_to_its_end_and_refused_if_that_is_outside() {
        let t = Tree::new("chain");
        t.link("c", t.host().join("file"));
        t.link("b", "c");
        t.link("a", "b");
        refused(&t, "a", &["a is a symlink to", "host/file"]);
        // A chain that leaves and comes back ends inside: allowed.
        t.file("real.yml", "services: {}\n");
        t.link("out-and-back", "../checkout/real.yml");
        assert_eq!(read_inside(&t.root(), "out-and-back").unwrap().unwrap(), b"services: {}\n");
    }

    #[test]
    fn symlinks_that_stay_inside_the_checkout_are_followed() {
        let t = Tree::new("inside");
        t.file("compose.base.yml", "services: {}\n");
        t.link("compose.yml", "compose.base.yml");
        t.file("shared/tests/install/10-x", "#!/bin/sh\n");
        t.link("tests", "shared/tests");
        t.link("sub/up", "../compose.base.yml");
        // An absolute target that lies inside the checkout is fine too.
        t.link("abs", t.root().join("compose.base.yml"));
        for rel in ["compose.yml", "sub/up", "abs"] {
            assert_eq!(read_inside(&t.root(), rel).unwrap().unwrap(), b"services: {}\n", "{rel}");
        }
        let listing = list_inside(&t.root(), "tests/install").unwrap().unwrap();
        assert_eq!(listing.len(), 1);
        assert_eq!(listing[0].0, Path::new("tests/install/10-x"));
    }

    #[test]
    fn a_checkout_reached_through_a_symlink_itself_is_fine() {
        let t = Tree::new("root-link");
        t.file("compose.yml", "services: {}\n");
        let alias = t.base.join("alias");
        symlink(t.root(), &alias).unwrap();
        assert!(open_inside(&alias, "compose.yml").unwrap().is_some());
        fs_err::create_dir_all(t.root().join("sub")).unwrap();
        symlink(alias.join("compose.yml"), t.root().join("sub/via-alias")).unwrap();
        assert!(open_inside(&t.root(), "sub/via-alias").unwrap().is_some(), "resolves inside");
    }

    #[test]
    fn absolute_paths_and_parent_escapes_are_refused() {
        let t = Tree::new("lexical");
        refused(&t, "/etc/hostname", &["/etc/hostname", "absolute"]);
        refused(&t, "../host/file", &["../host/file", "`..`"]);
        refused(&t, "tests/../../host/file", &["`..`"]);
    }

    #[test]
    fn dangling_links_are_absent_inside_and_refused_outside() {
        let t = Tree::new("dangling");
        t.link("inside", "not-yet");
        assert_eq!(open_inside(&t.root(), "inside").unwrap(), None);
        t.link("outside", "/nonexistent/ccci/host/file");
        refused(&t, "outside", &["outside is a symlink to /nonexistent/ccci/host/file"]);
        t.link("chain", "outside");
        refused(&t, "chain", &["/nonexistent/ccci/host/file"]);
    }

    #[test]
    fn a_symlink_loop_is_refused() {
        let t = Tree::new("loop");
        t.link("x", "y");
        t.link("y", "x");
        let e = open_inside(&t.root(), "x").unwrap_err();
        assert_eq!(e.kind().exit_code(), 1, "{e}");
    }
}
