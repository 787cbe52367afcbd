//! The recipe's git repository: clone, check out, tags, and the NAR hash of the code under test.

use std::io;
use std::path::{Path, PathBuf};

use camino::{Utf8Path, Utf8PathBuf};
use nix_nar::{Encoder, FileSystem, FileSystemMetadata, NativeFileSystem};
use sha2::{Digest, Sha256};
use xshell::{Shell, cmd};

use crate::config::given;
use crate::error::{Context, Error, Kind, Result};
use crate::recipe::source::RecipeSource;

/// A git ref as given by a user or a CI parameter. Refused when it could be read as an option or
/// walks out of `refs/`; git's own rules do the rest.
pub fn check_ref(r: &str) -> Result<()> {
    let ok = !r.is_empty()
        && r.len() <= 255
        && !r.starts_with('-')
        && !r.contains("..")
        && r.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/+-@".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_input(format!(
            "invalid git ref {r:?}: use a branch, tag or commit (letters, digits, . _ / + - @; not starting with '-')"
        )))
    }
}

/// The transports git may use: its `GIT_ALLOW_PROTOCOL` list. `file` covers local paths too.
pub const ALLOWED_PROTOCOLS: &str = "https:ssh:file";

/// Configuration given to every git call with `-c`, which outranks any file git reads, the
/// repository's own `.git/config` included: only the allowed transports; no fsmonitor, no hooks
/// (both run commands); no credential helper but the one [`clone`] passes itself.
const GIT_CONFIG: &[&str] = &[
    "protocol.allow=never",
    "protocol.https.allow=always",
    "protocol.ssh.allow=always",
    "protocol.file.allow=always",
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "credential.helper=",
];

/// Reads the clone's credentials from the environment git was given (never from argv, which any
/// user can read in `ps`).
fn credential_helper() -> String {
    format!(
        "credential.helper=!f() {{ test \"$1\" = get || exit 0; \
         printf 'username=%s\\npassword=%s\\n' \"${}\" \"${}\"; }}; f",
        given::GIT_USERNAME,
        given::GIT_PASSWORD
    )
}

/// An empty directory that is git's `HOME` for one call, removed afterwards: nothing of the
/// operator's home (`~/.gitconfig`, `~/.config/git/attributes`, `~/.netrc`) reaches git.
pub struct GitHome(PathBuf);

impl GitHome {
    pub fn new() -> Result<GitHome> {
        use std::os::unix::fs::DirBuilderExt;
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        loop {
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ccci-git-home-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(GitHome(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::env(format!("creating an empty HOME for git at {}: {e}", dir.display()))),
            }
        }
    }
}

impl Drop for GitHome {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// git with nothing of ccci's environment but `PATH` (and `SSH_AUTH_SOCK`, for an operator's
/// ssh agent; [`crate::process::inherit::GIT`]): no `GIT_CONFIG_PARAMETERS`, `GIT_DIR`,
/// `GIT_SSH_COMMAND`, `GIT_EXEC_PATH`, no system or global config, an empty `HOME`, never a
/// prompt, only the allowed transports. Like docker and abra, git gets what ccci decides, not what
/// the step inherited.
fn git<'a>(sh: &'a Shell, home: &GitHome) -> xshell::Cmd<'a> {
    let mut c = crate::process::cleared(cmd!(sh, "git"), crate::process::inherit::GIT);
    c = c
        .env("HOME", &home.0)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
        .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    for kv in GIT_CONFIG {
        c = c.arg("-c").arg(kv);
    }
    c
}

fn clone_cmd<'a>(sh: &'a Shell, home: &GitHome, source: &RecipeSource, dest: &Path) -> xshell::Cmd<'a> {
    let mut c = git(sh, home);
    if let Some(creds) = source.credentials() {
        c = c
            .arg("-c")
            .arg(credential_helper())
            .env(given::GIT_USERNAME, &creds.username)
            .env(given::GIT_PASSWORD, &creds.password);
    }
    // Pull request heads too (`refs/pull/<n>/head`, which Gitea and Forgejo keep in the base
    // repository also for forks): a commit the bridge asked for is then in the clone.
    c.args(["clone", "--quiet", "--no-hardlinks", "-c", PULL_REFSPEC, "--", source.clone_url()]).arg(dest)
}

/// Also fetch every pull request head, as `origin/pull/<n>/head`.
const PULL_REFSPEC: &str = "remote.origin.fetch=+refs/pull/*/head:refs/remotes/origin/pull/*/head";

/// Clones `source` into `dest` (which must not exist yet), with all tags. git is given the
/// source's rebuilt URL without credentials; a `https://user:token@…` source's credentials reach
/// git through its environment and a credential helper that prints them, so they are in no argv,
/// in no `.git/config` of the clone and (scrubbed besides) in no error message.
pub fn clone(sh: &Shell, source: &RecipeSource, dest: &Path) -> Result<()> {
    let home = GitHome::new()?;
    let out = clone_cmd(sh, &home, source, dest).ignore_status().output()?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let said = match source.credentials() {
            Some(creds) => creds.scrub(said.trim()),
            None => said.trim().to_string(),
        };
        // git runs without a locale (its environment is cleared): its words are the C library's.
        return Err(Error::new(failure_kind(&said), format!("git clone {}: {said}", source.shown())));
    }
    Ok(())
}

/// Who is to blame for a failed git command, by what it said. A repository or ref that cannot be
/// had is the recipe's failure (exit 1); the host failing git — a full or read-only disk, an I/O
/// error, no memory — is the environment's (exit 3), whatever the repository holds. git reports
/// these with the C library's own words (`strerror`), read in the C locale.
pub fn failure_kind(stderr: &str) -> Kind {
    const HOST_FAULTS: [&str; 6] = [
        "No space left on device",
        "Disk quota exceeded",
        "Read-only file system",
        "Input/output error",
        "Cannot allocate memory",
        "Out of memory",
    ];
    if HOST_FAULTS.iter().any(|f| stderr.contains(f)) { Kind::Environment } else { Kind::OpFailed }
}

/// Resolves `r` to a commit id in `repo`: a tag, a commit, a local branch or a branch of origin.
pub fn resolve(sh: &Shell, repo: &Path, r: &str) -> Result<String> {
    let home = GitHome::new()?;
    check_ref(r)?;
    for candidate in [format!("{r}^{{commit}}"), format!("origin/{r}^{{commit}}")] {
        let out = git(sh, &home)
            .arg("-C")
            .arg(repo)
            .args(["rev-parse", "--verify", "--quiet", &candidate])
            .ignore_status()
            .output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
        }
    }
    Err(Error::failed(format!("ref {r:?} not found in the recipe repository")))
}

/// `git checkout -f <commit>` and a clean, so that nothing a previous step left (or abra moved)
/// survives into the tree.
pub fn checkout_clean(sh: &Shell, repo: &Path, commit: &str) -> Result<()> {
    let home = GitHome::new()?;
    let repo_s = repo.display().to_string();
    git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args(["checkout", "--quiet", "--force", "--detach", commit])
        .quiet()
        .run()
        .with_context(|| format!("checking out {commit} in {repo_s}"))?;
    git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args(["clean", "--quiet", "-ffdx"])
        .quiet()
        .run()
        .with_context(|| format!("cleaning {repo_s}"))?;
    Ok(())
}

pub fn head(sh: &Shell, repo: &Path) -> Result<String> {
    let home = GitHome::new()?;
    let out = git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "HEAD"])
        .read()
        .with_context(|| format!("reading HEAD of {}", repo.display()))?;
    Ok(out.trim().to_string())
}

/// True when the working tree differs from HEAD (what abra marks with `+U`).
pub fn is_dirty(sh: &Shell, repo: &Path) -> Result<bool> {
    let home = GitHome::new()?;
    let out = git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args(["status", "--porcelain"])
        .read()
        .with_context(|| format!("reading the status of {}", repo.display()))?;
    Ok(!out.trim().is_empty())
}

/// A tag of the recipe repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    /// Annotated tags are the releases abra publishes; lightweight ones need care
    /// (`docs/abra-contract.md` P11).
    pub annotated: bool,
    pub commit: String,
}

pub fn tags(sh: &Shell, repo: &Path) -> Result<Vec<Tag>> {
    let home = GitHome::new()?;
    let out = git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args([
            "for-each-ref",
            "refs/tags",
            "--format=%(refname:strip=2)%09%(objecttype)%09%(*objectname)%09%(objectname)",
        ])
        .read()
        .with_context(|| format!("listing tags of {}", repo.display()))?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let (name, kind, peeled, object) = (f.next()?, f.next()?, f.next()?, f.next()?);
            let annotated = kind == "tag";
            Some(Tag { name: name.to_string(), annotated, commit: if annotated { peeled } else { object }.to_string() })
        })
        .collect())
}

/// Is `ancestor` reachable from `descendant`?
pub fn is_ancestor(sh: &Shell, repo: &Path, ancestor: &str, descendant: &str) -> Result<bool> {
    let home = GitHome::new()?;
    let out = git(sh, &home)
        .arg("-C")
        .arg(repo)
        .args(["merge-base", "--is-ancestor", ancestor, descendant])
        .ignore_status()
        .output()?;
    Ok(out.status.success())
}

/// Writes the tree `<commit>:<subdir>` into `dest` (created), files with their modes and symlinks
/// as links, straight from the object database: whatever is checked out in `repo` does not
/// matter and is not touched (a private index file is used and removed). Returns false, writing
/// nothing, when the commit has no such directory. An empty `subdir` is the whole tree.
pub fn export_subtree(sh: &Shell, repo: &Path, commit: &str, subdir: &str, dest: &Path) -> Result<bool> {
    let home = GitHome::new()?;
    let tree = format!("{commit}:{subdir}");
    // `<commit>:<path>` takes the rest as the path, so `^{tree}` cannot be appended: ask the type.
    let found = git(sh, &home).arg("-C").arg(repo).args(["cat-file", "-t", &tree]).ignore_status().output()?;
    if !found.status.success() || String::from_utf8_lossy(&found.stdout).trim() != "tree" {
        return Ok(false);
    }
    fs_err::create_dir_all(dest)?;
    let index = dest.with_extension("index");
    let prefix = format!("{}/", dest.display());
    let result = git(sh, &home)
        .env("GIT_INDEX_FILE", &index)
        .arg("-C")
        .arg(repo)
        .args(["read-tree", &tree])
        .quiet()
        .run()
        .and_then(|()| {
            git(sh, &home)
                .env("GIT_INDEX_FILE", &index)
                .arg("-C")
                .arg(repo)
                .args(["checkout-index", "--all", "--force", &format!("--prefix={prefix}")])
                .quiet()
                .run()
        });
    let _ = std::fs::remove_file(&index);
    result.with_context(|| format!("exporting {tree} to {}", dest.display()))?;
    Ok(true)
}

/// `sha256:<hex>` over the NAR serialisation of `dir` without its top-level `.git`: the same
/// digest `nix-hash --type sha256` gives for a copy of the tree without `.git`. It pins the code
/// under test independently of git (uncommitted changes included).
pub fn nar_hash(dir: &Path) -> Result<String> {
    let root = Utf8PathBuf::from_path_buf(PathBuf::from(dir))
        .map_err(|p| Error::env(format!("recipe path {} is not UTF-8", p.display())))?;
    let fs = WithoutGit { root: root.clone() };
    let mut enc = Encoder::new_with_filesystem(&root, fs).map_err(|e| Error::env(e.to_string()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut enc, &mut hasher).with_context(|| format!("hashing {}", dir.display()))?;
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

struct WithoutGit {
    root: Utf8PathBuf,
}

impl FileSystem for WithoutGit {
    type File = std::fs::File;
    fn metadata(&self, path: &Utf8Path) -> io::Result<FileSystemMetadata> {
        NativeFileSystem {}.metadata(path)
    }
    fn read_dir(&self, path: &Utf8Path) -> io::Result<Vec<String>> {
        let mut names = NativeFileSystem {}.read_dir(path)?;
        if path == self.root {
            names.retain(|n| n != ".git");
        }
        Ok(names)
    }
    fn open(&self, path: &Utf8Path) -> io::Result<Self::File> {
        NativeFileSystem {}.open(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clone_that_fills_the_disk_is_the_environments_error_and_a_missing_repository_the_recipes() {
        let full = "fatal: write error: No space left on device\nfatal: fetch-pack: invalid index-pack output";
        assert_eq!(failure_kind(full), Kind::Environment);
        assert_eq!(failure_kind("error: unable to write file x: Read-only file system"), Kind::Environment);
        assert_eq!(failure_kind("fatal: repository '/nope' does not exist"), Kind::OpFailed);
    }

    #[test]
    fn refs_and_sources() {
        for ok in ["main", "1.2.0+1.27.2", "refs/pull/12/head", "a1b2c3d", "feature/x-y_z"] {
            check_ref(ok).unwrap();
        }
        for bad in ["", "-x", "--upload-pack=evil", "a..b", "a b", "a;b", "$(x)", "a\nb"] {
            assert_eq!(check_ref(bad).unwrap_err().kind().exit_code(), 2, "{bad}");
        }
        for bad in ["--upload-pack=touch /tmp/x", "a\nb", ""] {
            assert_eq!(RecipeSource::parse(bad).unwrap_err().kind().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn clone_credentials_reach_git_through_its_environment_not_its_argv() {
        let source = RecipeSource::parse("https://ci:s3cr%40t-T0KEN@git.example/owner/hello.git").unwrap();
        let sh = Shell::new().unwrap();
        let home = GitHome::new().unwrap();
        let argv = clone_cmd(&sh, &home, &source, Path::new("/nonexistent/dest")).to_string();
        assert!(!argv.contains("T0KEN") && !argv.contains("ci:"), "{argv}");
        assert!(argv.contains("https://git.example/owner/hello.git"), "{argv}");
        // What git's credential machinery gets for that host, asked the way a clone asks.
        let creds = source.credentials().unwrap();
        let got = git(&sh, &home)
            .arg("-c")
            .arg(credential_helper())
            .env(given::GIT_USERNAME, &creds.username)
            .env(given::GIT_PASSWORD, &creds.password)
            .args(["credential", "fill"])
            .stdin("protocol=https\nhost=git.example\npath=owner/hello.git\n\n")
            .read()
            .unwrap();
        assert!(got.ends_with("username=ci\npassword=s3cr@t-T0KEN"), "{got}");
        // Without them no helper answers and git does not prompt: the fill fails.
        let none = git(&sh, &home)
            .args(["credential", "fill"])
            .stdin("protocol=https\nhost=git.example\n\n")
            .ignore_status()
            .quiet()
            .output()
            .unwrap();
        assert!(!none.status.success(), "{}", String::from_utf8_lossy(&none.stdout));
    }

    #[test]
    fn a_clone_holds_the_pull_request_heads_of_the_base_repository() {
        let sh = Shell::new().unwrap();
        let dir = std::env::temp_dir().join(format!("ccci-git-pull-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let src = dir.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let home = GitHome::new().unwrap();
        let g = || git(&sh, &home).arg("-C").arg(&src);
        g().args(["init", "--quiet"]).run().unwrap();
        g().args(["-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "--allow-empty", "-m", "main"])
            .run()
            .unwrap();
        // A fork's head: reachable only from refs/pull/7/head, as the forge keeps it.
        let fork = g()
            .args(["commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "fork"])
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .read()
            .unwrap();
        g().args(["update-ref", "refs/pull/7/head", &fork]).run().unwrap();
        let source = RecipeSource::parse(&src.display().to_string()).unwrap();
        clone(&sh, &source, &dir.join("dst")).unwrap();
        assert_eq!(resolve(&sh, &dir.join("dst"), &fork).unwrap(), fork);
        assert_eq!(resolve(&sh, &dir.join("dst"), "pull/7/head").unwrap(), fork);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn git_home_is_empty_and_removed_afterwards() {
        let home = GitHome::new().unwrap();
        let dir = home.0.clone();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(home);
        assert!(!dir.exists());
    }

    #[test]
    fn export_subtree_reads_the_commit_not_the_checkout() {
        let dir = std::env::temp_dir().join(format!("ccci-export-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.join("repo");
        fs_err::create_dir_all(repo.join("tests/install")).unwrap();
        let sh = Shell::new().unwrap();
        let home = GitHome::new().unwrap();
        let g = |args: &[&str]| {
            git(&sh, &home)
                .arg("-C")
                .arg(&repo)
                .args(["-c", "user.email=t@example.invalid", "-c", "user.name=t"])
                .args(args)
                .quiet()
                .run()
                .unwrap()
        };
        g(&["init", "-q"]);
        fs_err::write(repo.join("tests/install/10-check"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(
            repo.join("tests/install/10-check"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        fs_err::write(repo.join("tests/install/README"), "not a check").unwrap();
        std::os::unix::fs::symlink("10-check", repo.join("tests/install/20-link")).unwrap();
        g(&["add", "-A"]);
        g(&["commit", "-q", "-m", "head"]);
        let head = super::head(&sh, &repo).unwrap();
        // The checkout moves on and gets dirty; the export still shows the commit.
        fs_err::remove_dir_all(repo.join("tests")).unwrap();
        fs_err::write(repo.join("untracked"), "x").unwrap();

        let dest = dir.join("out");
        assert!(export_subtree(&sh, &repo, &head, "tests", &dest).unwrap());
        let check = dest.join("install/10-check");
        assert_eq!(fs_err::read_to_string(&check).unwrap(), "#!/bin/sh\nexit 0\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs_err::metadata(&check).unwrap().permissions().mode() & 0o111, 0o111);
        assert_eq!(fs_err::metadata(dest.join("install/README")).unwrap().permissions().mode() & 0o111, 0);
        assert_eq!(fs_err::read_link(dest.join("install/20-link")).unwrap(), Path::new("10-check"));
        assert!(!dest.with_extension("index").exists(), "the private index is removed");
        assert_eq!(
            git(&sh, &home).arg("-C").arg(&repo).args(["diff", "--cached", "--name-only"]).read().unwrap(),
            "",
            "the repo's index is untouched"
        );

        assert!(!export_subtree(&sh, &repo, &head, "nope", &dir.join("none")).unwrap());
        assert!(!dir.join("none").exists());
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn nar_hash_ignores_git_and_sees_changes() {
        let dir = std::env::temp_dir().join(format!("ccci-nar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        fs_err::create_dir_all(dir.join(".git")).unwrap();
        fs_err::create_dir_all(dir.join("sub")).unwrap();
        fs_err::write(dir.join("compose.yml"), "services: {}\n").unwrap();
        fs_err::write(dir.join("sub/x"), "x").unwrap();
        let a = nar_hash(&dir).unwrap();
        fs_err::write(dir.join(".git/HEAD"), "whatever").unwrap();
        assert_eq!(nar_hash(&dir).unwrap(), a, ".git is not part of the code under test");
        fs_err::write(dir.join("sub/x"), "y").unwrap();
        assert_ne!(nar_hash(&dir).unwrap(), a);
        assert!(a.starts_with("sha256:") && a.len() == 71);
        // Where Nix is installed (the Nix checks install it), the digest must be Nix's own.
        fs_err::remove_dir_all(dir.join(".git")).unwrap();
        let b = nar_hash(&dir).unwrap();
        if let Ok(out) = std::process::Command::new("nix-hash").args(["--type", "sha256"]).arg(&dir).output() {
            assert!(out.status.success());
            assert_eq!(format!("sha256:{}", String::from_utf8_lossy(&out.stdout).trim()), b);
        } else {
            eprintln!("nix-hash not installed: NAR digest not compared with Nix's");
        }
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
