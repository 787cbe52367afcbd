//! Where checks and install-steps hooks come from, and an overlay's per-recipe settings.
//!
//! Three sources, in this order: the generic floor (built into ccci-assert,
//! [`generic`](crate::checks::generic)); cc-ci's overlays at `<overlays>/<recipe>/<op>/`
//! (maintained in this project, always run); the recipe's own `tests/<op>/` at the PR head commit
//! (run only for recipes in the allowlist, [`trust`](crate::recipe::trust)). A folder of checks
//! works like run-parts: every file in it, in name order.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::recipe::checkout;
use crate::recipe::env_file::EnvFile;
use crate::run::naming::RecipeName;

use crate::run::state::OpName;

/// The install-steps hook's file name, in an overlay and in a recipe's `tests/`.
pub const INSTALL_STEPS: &str = "install_steps.sh";

/// The overlays root: `CCCI_OVERLAYS_DIR` (which must be a directory), else the overlays
/// installed with ccci (`<prefix>/share/ccci/overlays`), else none.
pub fn overlays_root() -> Result<Option<PathBuf>> {
    if let Some(dir) = crate::config::overlays_dir()? {
        // Canonical: a check is started from its own work directory, not from ours.
        return Ok(Some(fs_err::canonicalize(&dir)?));
    }
    Ok(crate::config::share_dir().map(|d| d.join("overlays")).filter(|d| d.is_dir()))
}

/// Where a check comes from, which decides whether it may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// cc-ci's own overlay: trusted.
    Overlay,
    /// The recipe repository's `tests/`, written in the pull request: gated by the allowlist.
    Repo,
}

/// One file found where checks (or a hook) live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// As a person knows it: `overlays/hello/install/10-page`, `tests/install/10-canary`.
    pub name: String,
    pub path: PathBuf,
    pub origin: Origin,
    /// A file without an execute bit is not a check; it is listed so its author sees why.
    pub executable: bool,
}

/// The files in `dir`, in byte order of their names, as run-parts runs them. Hidden files
/// (`.name`) and editor backups (`name~`) are left out, and so are directories: helpers a
/// check sources belong in a subdirectory. No such directory: no checks.
pub fn checks_in(dir: &Path, label: &str, origin: Origin) -> Result<Vec<Found>> {
    let entries = match fs_err::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e.into()),
    };
    let mut found = vec![];
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = entry.path();
        // Follows symlinks; a dangling one is listed, and cannot run.
        let executable = match fs_err::metadata(&path) {
            Ok(m) if m.is_dir() => continue,
            Ok(m) => m.is_file() && m.permissions().mode() & 0o111 != 0,
            Err(_) => false,
        };
        found.push((file_name, Found { name: format!("{label}/{name}"), path, origin, executable }));
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found.into_iter().map(|(_, f)| f).collect())
}

/// A recipe's overlay in this project: `<overlays>/<recipe>/`, with its settings.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// None when there is no overlays root or no folder for the recipe.
    pub dir: Option<PathBuf>,
    pub settings: Settings,
    recipe: String,
}

impl Overlay {
    /// The recipe's overlay, its settings read and checked (a bad settings file is bad input).
    pub fn load(recipe: &RecipeName) -> Result<Overlay> {
        let dir = overlays_root()?.map(|root| root.join(recipe.as_str())).filter(|d| d.is_dir());
        let settings = match &dir {
            Some(d) if d.join(SETTINGS_FILE).is_file() => Settings::read(&d.join(SETTINGS_FILE), recipe)?,
            _ => Settings::default(),
        };
        Ok(Overlay { dir, settings, recipe: recipe.to_string() })
    }

    /// The overlay's checks for `op`.
    pub fn checks(&self, op: &str) -> Result<Vec<Found>> {
        match &self.dir {
            Some(d) => checks_in(&d.join(op), &format!("overlays/{}/{op}", self.recipe), Origin::Overlay),
            None => Ok(vec![]),
        }
    }

    /// The overlay's install-steps hook, if it has one.
    pub fn install_steps(&self) -> Option<Found> {
        let path = self.dir.as_ref()?.join(INSTALL_STEPS);
        let executable = fs_err::metadata(&path).ok().filter(|m| m.is_file())?.permissions().mode() & 0o111 != 0;
        Some(Found {
            name: format!("overlays/{}/{INSTALL_STEPS}", self.recipe),
            path,
            origin: Origin::Overlay,
            executable,
        })
    }
}

/// The recipe's own checks for `op`: `tests/<op>/` of `head`, the recipe's tree as exported from
/// the PR head, listed like [`checks_in`] but through [`checkout::list_inside`]: when `tests`,
/// `tests/<op>` or an entry in it is a symlink that leaves the tree, the listing is refused (the
/// recipe's fault) and no name found outside is shown.
pub fn repo_checks(head: &Path, op: &str) -> Result<Vec<Found>> {
    let label = format!("tests/{op}");
    let Some(entries) = checkout::list_inside(head, &label)? else { return Ok(vec![]) };
    let mut found = vec![];
    for (rel, resolved) in entries {
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        // A dangling link (inside) is listed, and cannot run.
        let executable = match resolved.map(fs_err::metadata) {
            Some(Ok(m)) if m.is_dir() => continue,
            Some(Ok(m)) => m.is_file() && m.permissions().mode() & 0o111 != 0,
            _ => false,
        };
        found.push(Found { name: format!("{label}/{name}"), path: head.join(&rel), origin: Origin::Repo, executable });
    }
    Ok(found)
}

/// The recipe's own install-steps hook, `tests/install_steps.sh` of `head` (the recipe's tree
/// as exported from the PR head), if any; refused like [`repo_checks`] when it or `tests`
/// leaves the tree.
pub fn repo_install_steps(head: &Path) -> Result<Option<Found>> {
    let rel = format!("tests/{INSTALL_STEPS}");
    let Some(resolved) = checkout::open_inside(head, &rel)? else { return Ok(None) };
    let Some(meta) = fs_err::metadata(&resolved).ok().filter(|m| m.is_file()) else { return Ok(None) };
    let executable = meta.permissions().mode() & 0o111 != 0;
    Ok(Some(Found { name: rel.clone(), path: head.join(&rel), origin: Origin::Repo, executable }))
}

pub const SETTINGS_FILE: &str = "settings.env";

/// Per-recipe settings, `overlays/<recipe>/settings.env` (KEY=VALUE lines, `#` comments).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Ops whose generic checks this recipe opts out of (`SKIP_GENERIC=install,custom` or `all`).
    pub skip_generic: BTreeSet<String>,
    /// HTTP statuses the generic serving check accepts besides 2xx and 3xx (`ACCEPT_STATUS=401`).
    pub accept_status: Vec<u16>,
    /// `BACKUP=1` or `BACKUP=0`: the recipe is, or is not, backup-capable whatever its
    /// `backupbot.backup` labels say; `None` (unset or empty) lets the labels decide.
    pub backup: Option<bool>,
    /// The file, as a person names it (`overlays/hello/settings.env`), for "who asked".
    pub origin: String,
}

const SETTINGS_KEYS: &[&str] = &["SKIP_GENERIC", "ACCEPT_STATUS", "BACKUP"];

impl Settings {
    pub fn read(path: &Path, recipe: &RecipeName) -> Result<Settings> {
        let env = EnvFile::read(path).map_err(|e| Error::bad_input(e.message().to_string()))?;
        Settings::from_env(&env, &format!("overlays/{recipe}/{SETTINGS_FILE}")).map_err(|e| e.context(path.display()))
    }

    pub fn parse(text: &str, origin: &str) -> Result<Settings> {
        Settings::from_env(&EnvFile::parse(text, origin)?, origin).map_err(|e| e.context(origin))
    }

    fn from_env(env: &EnvFile, origin: &str) -> Result<Settings> {
        let mut s = Settings { origin: origin.to_string(), ..Settings::default() };
        for (key, value) in env.vars() {
            let items = value.split([',', ' ', '\t']).map(str::trim).filter(|v| !v.is_empty());
            match key {
                "SKIP_GENERIC" => {
                    for op in items {
                        if op != "all" && OpName::tier(op).is_none() {
                            let tiers: Vec<&str> = OpName::TIERS.iter().map(OpName::as_str).collect();
                            return Err(Error::bad_input(format!(
                                "SKIP_GENERIC: unknown op {op:?}: expected `all` or some of {}",
                                tiers.join(", ")
                            )));
                        }
                        s.skip_generic.insert(op.to_string());
                    }
                }
                "ACCEPT_STATUS" => {
                    for code in items {
                        match code.parse::<u16>() {
                            Ok(c) if (100..600).contains(&c) => s.accept_status.push(c),
                            _ => {
                                return Err(Error::bad_input(format!(
                                    "ACCEPT_STATUS: {code:?} is not an HTTP status (100-599)"
                                )));
                            }
                        }
                    }
                }
                "BACKUP" => {
                    s.backup = match value.trim() {
                        "" => None,
                        "1" => Some(true),
                        "0" => Some(false),
                        other => {
                            return Err(Error::bad_input(format!(
                                "BACKUP: {other:?} is neither 1 (backup-capable) nor 0 (not backup-capable)"
                            )));
                        }
                    }
                }
                _ => {
                    return Err(Error::bad_input(format!(
                        "unknown setting {key}: expected one of {}",
                        SETTINGS_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(s)
    }

    /// Whether this recipe opted out of the generic checks of `op`.
    pub fn skips_generic(&self, op: &str) -> bool {
        self.skip_generic.contains("all") || self.skip_generic.contains(op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("ccci-discovery-test-{}-{name}", std::process::id()));
            let _ = fs_err::remove_dir_all(&d);
            fs_err::create_dir_all(&d).unwrap();
            Dir(d)
        }

        fn file(&self, rel: &str, mode: u32) {
            let p = self.0.join(rel);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_folder_of_checks_runs_in_name_order() {
        let d = Dir::new("order");
        for name in ["20-b", "10-a", "9-z", "B-upper", "a-lower"] {
            d.file(&format!("install/{name}"), 0o755);
        }
        d.file("install/README.md", 0o644);
        d.file("install/.hidden", 0o755);
        d.file("install/30-c~", 0o755);
        d.file("install/lib/helper.sh", 0o755);
        std::os::unix::fs::symlink("/nonexistent", d.0.join("install/40-dangling")).unwrap();
        let found = checks_in(&d.0.join("install"), "tests/install", Origin::Repo).unwrap();
        let names: Vec<(&str, bool)> = found.iter().map(|f| (f.name.as_str(), f.executable)).collect();
        assert_eq!(
            names,
            [
                ("tests/install/10-a", true),
                ("tests/install/20-b", true),
                ("tests/install/40-dangling", false),
                ("tests/install/9-z", true),
                ("tests/install/B-upper", true),
                ("tests/install/README.md", false),
                ("tests/install/a-lower", true),
            ]
        );
        assert!(found.iter().all(|f| f.origin == Origin::Repo));
        assert_eq!(checks_in(&d.0.join("upgrade"), "tests/upgrade", Origin::Repo).unwrap(), vec![]);
    }

    #[test]
    fn the_recipes_checks_are_listed_from_its_tree_following_links_that_stay_inside() {
        let d = Dir::new("repo-inside");
        d.file("ci/install/10-a", 0o755);
        d.file("ci/install/README", 0o644);
        d.file("lib/20-shared", 0o755);
        std::os::unix::fs::symlink("ci", d.0.join("tests")).unwrap();
        std::os::unix::fs::symlink("../../lib/20-shared", d.0.join("ci/install/20-shared")).unwrap();
        std::os::unix::fs::symlink(d.0.join("lib/20-shared"), d.0.join("ci/install/30-absolute-inside")).unwrap();
        std::os::unix::fs::symlink("not-there", d.0.join("ci/install/40-dangling")).unwrap();
        let found = repo_checks(&d.0, "install").unwrap();
        let names: Vec<(&str, bool)> = found.iter().map(|f| (f.name.as_str(), f.executable)).collect();
        assert_eq!(
            names,
            [
                ("tests/install/10-a", true),
                ("tests/install/20-shared", true),
                ("tests/install/30-absolute-inside", true),
                ("tests/install/40-dangling", false),
                ("tests/install/README", false),
            ]
        );
        assert_eq!(repo_checks(&d.0, "upgrade").unwrap(), vec![]);
    }

    #[test]
    fn the_recipes_checks_are_refused_without_listing_a_directory_outside_its_tree() {
        let host = Dir::new("repo-host");
        host.file("dir/marker-name-of-a-host-file", 0o755);
        for (case, link, target) in [
            ("tests", "tests", host.0.join("dir")),
            ("op", "tests/custom", host.0.join("dir")),
            ("entry", "tests/custom/10-x", host.0.join("dir/marker-name-of-a-host-file")),
            ("relative", "tests/custom", PathBuf::from("../../repo-host/dir")),
        ] {
            let d = Dir::new(&format!("repo-out-{case}"));
            fs_err::create_dir_all(d.0.join("tests/custom")).unwrap();
            if link == "tests" || link == "tests/custom" {
                fs_err::remove_dir_all(d.0.join(link)).unwrap();
            }
            std::os::unix::fs::symlink(&target, d.0.join(link)).unwrap();
            let e = repo_checks(&d.0, "custom").unwrap_err();
            assert_eq!(e.kind().exit_code(), 1, "{case}: the recipe's fault: {e}");
            assert!(
                e.to_string().contains(link) && e.to_string().contains("outside the recipe checkout"),
                "{case}: {e}"
            );
            let shown = e.to_string().replace(&host.0.join("dir/marker-name-of-a-host-file").display().to_string(), "");
            assert!(!shown.contains("marker-name"), "{case}: no name from outside beyond the link's own target: {e}");
        }
    }

    #[test]
    fn the_recipes_install_steps_hook_is_refused_when_it_leaves_its_tree() {
        let host = Dir::new("hook-host");
        host.file("hook", 0o755);
        let d = Dir::new("hook-out");
        fs_err::create_dir_all(d.0.join("tests")).unwrap();
        std::os::unix::fs::symlink(host.0.join("hook"), d.0.join("tests").join(INSTALL_STEPS)).unwrap();
        let e = repo_install_steps(&d.0).unwrap_err();
        assert!(e.to_string().contains("tests/install_steps.sh") && e.kind().exit_code() == 1, "{e}");
        let d = Dir::new("hook-dir-out");
        std::os::unix::fs::symlink(&host.0, d.0.join("tests")).unwrap();
        assert!(repo_install_steps(&d.0).is_err(), "tests -> outside");
        let d = Dir::new("hook-inside");
        d.file("ci/install_steps.sh", 0o755);
        std::os::unix::fs::symlink("ci", d.0.join("tests")).unwrap();
        let hook = repo_install_steps(&d.0).unwrap().unwrap();
        assert!(hook.executable && hook.name == "tests/install_steps.sh", "{hook:?}");
        assert_eq!(repo_install_steps(&Dir::new("hook-none").0).unwrap(), None);
    }

    #[test]
    fn settings_name_ops_and_statuses() {
        let s = Settings::parse(
            "# hello answers 401 until someone logs in\nACCEPT_STATUS=401, 403\nSKIP_GENERIC=custom\n",
            "overlays/hello/settings.env",
        )
        .unwrap();
        assert_eq!(s.accept_status, vec![401, 403]);
        assert!(s.skips_generic("custom") && !s.skips_generic("install"));
        assert_eq!(s.origin, "overlays/hello/settings.env");
        let all = Settings::parse("SKIP_GENERIC=all\n", "x").unwrap();
        assert!(OpName::TIERS.iter().all(|op| all.skips_generic(op.as_str())));
        let none = Settings::parse("SKIP_GENERIC=\n", "x").unwrap();
        assert!(!none.skips_generic("install"));
    }

    #[test]
    fn the_backup_override_is_on_off_or_left_to_the_labels() {
        for (text, want) in [("BACKUP=1\n", Some(true)), ("BACKUP=0\n", Some(false)), ("BACKUP=\n", None), ("", None)] {
            assert_eq!(Settings::parse(text, "x").unwrap().backup, want, "{text:?}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        for (text, says) in [
            ("SKIP_GENERICS=install\n", "unknown setting SKIP_GENERICS"),
            ("SKIP_GENERIC=instal\n", "unknown op \"instal\""),
            ("ACCEPT_STATUS=4O1\n", "\"4O1\" is not an HTTP status"),
            ("ACCEPT_STATUS=99\n", "\"99\" is not an HTTP status"),
            ("BACKUP=yes\n", "BACKUP: \"yes\" is neither 1"),
            ("BACKUP=true\n", "BACKUP: \"true\" is neither 1"),
            ("not a line\n", "expected KEY=VALUE"),
        ] {
            let e = Settings::parse(text, "overlays/hello/settings.env").unwrap_err();
            assert_eq!(e.kind().exit_code(), 2, "{text}");
            assert!(e.to_string().contains(says) && e.to_string().contains("settings.env"), "{text}: {e}");
        }
    }

    #[test]
    fn the_shipped_example_overlay_is_valid() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("overlays");
        let hello = RecipeName::parse("hello").unwrap();
        let s = Settings::read(&root.join("hello").join(SETTINGS_FILE), &hello).unwrap();
        assert!(s.skip_generic.is_empty(), "the example must not opt out of the generic checks");
        let checks = checks_in(&root.join("hello/install"), "overlays/hello/install", Origin::Overlay).unwrap();
        assert!(!checks.is_empty() && checks.iter().all(|c| c.executable), "{checks:?}");
        // docs/writing-checks.md shows this check as its working example: keep them equal.
        let page = fs_err::read_to_string(root.join("hello/install/10-page")).unwrap();
        let doc = fs_err::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/writing-checks.md")).unwrap();
        assert!(doc.contains(&format!("```sh\n{page}```\n")), "docs/writing-checks.md no longer shows install/10-page");
    }
}
