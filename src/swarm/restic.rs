//! The host's `restic` (Debian's 0.14 and later), asked for JSON wherever it has it: the backup
//! engine of the stack driver and the independent reader of every backup's evidence.
//!
//! The repository's password is always passed by file (`RESTIC_PASSWORD_FILE`), never in argv,
//! the environment of anything else, a log or the run-state. restic's exit code is not evidence
//! (0.14 exits 0 for an empty directory and for a missing path): callers compare snapshot lists
//! and read the snapshot's content.

use fs_err::os::unix::fs::OpenOptionsExt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::error::{Error, Result};

/// A repository and the file holding its password.
#[derive(Debug, Clone)]
pub struct Repo {
    pub program: PathBuf,
    pub repository: PathBuf,
    pub password_file: PathBuf,
    /// restic's cache (`RESTIC_CACHE_DIR`).
    pub cache: PathBuf,
}

/// One entry of `restic snapshots --json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Snapshot {
    /// The full (64 hex) id.
    pub id: String,
    #[serde(default)]
    pub short_id: String,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub tree: String,
}

/// One `node` line of `restic ls --json`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Node {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub size: u64,
}

impl Repo {
    /// The stack driver's per-run repository in the run's workspace: `<workspace>/backup/restic`,
    /// password in `<workspace>/backup/password` (mode 0600), cache in `<workspace>/backup/cache`.
    pub fn per_run(workspace: &Path) -> Result<Repo> {
        let dir = workspace.join("backup");
        Ok(Repo {
            program: crate::config::restic_program(),
            repository: dir.join("restic"),
            password_file: dir.join("password"),
            cache: dir.join("cache"),
        })
    }

    fn command(&self) -> Command {
        let mut c = crate::process::command(&self.program, crate::process::inherit::RESTIC);
        c.env("RESTIC_REPOSITORY", &self.repository)
            .env("RESTIC_PASSWORD_FILE", &self.password_file)
            .env("RESTIC_CACHE_DIR", &self.cache)
            .stdin(Stdio::null());
        c
    }

    /// Runs restic with `args`; a non-zero exit is an environment error quoting its stderr.
    fn run(&self, args: &[&std::ffi::OsStr], what: &str) -> Result<Vec<u8>> {
        let out = self.command().args(args).output().map_err(|e| {
            Error::env(format!(
                "running {} ({what}): {e}; is restic installed (scripts/setup)?",
                self.program.display()
            ))
        })?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let code = out.status.code().map_or("a signal".into(), |c| format!("status {c}"));
            return Err(Error::env(format!("restic {what}: exited with {code}: {}", crate::process::tail(&said, 4))));
        }
        Ok(out.stdout)
    }

    /// `restic version`'s first line.
    pub fn version(&self) -> Result<String> {
        let out = self.run(&["version".as_ref()], "version")?;
        Ok(String::from_utf8_lossy(&out).lines().next().unwrap_or_default().trim().to_string())
    }

    /// Creates the repository with a freshly generated password (32 random bytes, hex), unless
    /// it exists already.
    pub fn init_fresh(&self) -> Result<()> {
        if self.repository.join("config").exists() {
            return Ok(());
        }
        let dir = self.password_file.parent().unwrap_or(Path::new("/"));
        fs_err::create_dir_all(dir)?;
        let password: String = random_bytes(32)?.iter().map(|b| format!("{b:02x}")).collect();
        let mut f =
            fs_err::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&self.password_file)?;
        f.write_all(password.as_bytes())?;
        drop(f);
        self.run(&["init".as_ref(), "--quiet".as_ref()], "init")?;
        Ok(())
    }

    /// Every snapshot of the repository.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let out = self.run(&["snapshots".as_ref(), "--json".as_ref()], "snapshots")?;
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(vec![]);
        }
        serde_json::from_str(text.trim()).map_err(|e| Error::env(format!("parsing restic snapshots --json: {e}")))
    }

    /// `restic backup --host ccci --tag T… PATHS`: returns what restic printed on stderr (its
    /// warnings, e.g. a path that does not exist). Exit 3 (some file could not be read: the
    /// snapshot is incomplete) is the recipe's failure; any other non-zero exit the environment's.
    pub fn backup(&self, tags: &[String], paths: &[PathBuf]) -> Result<String> {
        let mut c = self.command();
        c.args(["backup", "--json", "--host", "ccci"]);
        for t in tags {
            c.arg("--tag").arg(t);
        }
        c.args(paths);
        let out = c.output().map_err(|e| Error::env(format!("running {} backup: {e}", self.program.display())))?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => Ok(stderr),
            Some(3) => Err(Error::failed(format!(
                "restic backup saved an incomplete snapshot (exit 3, some files could not be read): {}",
                crate::process::tail(&stderr, 4)
            ))),
            code => Err(Error::env(format!(
                "restic backup exited with {}: {}",
                code.map_or("a signal".into(), |c| format!("status {c}")),
                crate::process::tail(&stderr, 4)
            ))),
        }
    }

    /// The files and directories of snapshot `id`.
    pub fn ls(&self, id: &str) -> Result<Vec<Node>> {
        let out = self.run(&["ls".as_ref(), "--json".as_ref(), id.as_ref()], "ls")?;
        parse_ls(&String::from_utf8_lossy(&out))
    }

    /// The bytes of the file `path` in snapshot `id`; `None` when the snapshot has no such file.
    pub fn dump(&self, id: &str, path: &Path) -> Result<Option<Vec<u8>>> {
        let out = self
            .command()
            .args(["dump", id])
            .arg(path)
            .output()
            .map_err(|e| Error::env(format!("running {} dump: {e}", self.program.display())))?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            // 0.14: "cannot dump file: path … not found in snapshot".
            _ if String::from_utf8_lossy(&out.stderr).contains("not found") => Ok(None),
            code => Err(Error::env(format!(
                "restic dump {id} {}: exited with {code:?}: {}",
                path.display(),
                crate::process::tail(&String::from_utf8_lossy(&out.stderr), 3)
            ))),
        }
    }

    /// `restic restore ID --target TARGET --include P…`: writes the snapshot's files for `paths`
    /// under `target` at their full paths (`TARGET/<path>`). `target` should be a fresh
    /// directory ccci owns: restic follows any symlink already in it.
    pub fn restore(&self, id: &str, target: &Path, paths: &[String]) -> Result<()> {
        let mut args: Vec<&std::ffi::OsStr> =
            vec!["restore".as_ref(), id.as_ref(), "--target".as_ref(), target.as_os_str()];
        for p in paths {
            args.push("--include".as_ref());
            args.push(p.as_ref());
        }
        self.run(&args, "restore").map(drop)
    }
}

/// The `node` lines of `restic ls --json` (NDJSON; the first line describes the snapshot).
pub fn parse_ls(text: &str) -> Result<Vec<Node>> {
    let mut nodes = vec![];
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::env(format!("parsing restic ls --json: {e}: {line}")))?;
        if v["struct_type"] == "node" {
            nodes.push(serde_json::from_value(v).map_err(|e| Error::env(format!("parsing restic ls --json: {e}")))?);
        }
    }
    Ok(nodes)
}

/// `n` bytes from the kernel's random source.
pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    fs_err::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!("sha256:{}", d.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_keeps_the_nodes_and_drops_the_snapshot_line() {
        let text = r#"{"time":"2026-11-30T13:19:50Z","tree":"4c","paths":["/v"],"id":"8ce7","short_id":"8ce7","struct_type":"snapshot"}
{"name":"v","type":"dir","path":"/v","uid":0,"gid":0,"mode":2147484141,"struct_type":"node"}
{"name":"x","type":"file","path":"/v/x","uid":0,"gid":0,"size":5,"mode":420,"struct_type":"node"}
"#;
        let nodes = parse_ls(text).unwrap();
        assert_eq!(
            nodes,
            [
                Node { path: "/v".into(), kind: "dir".into(), size: 0 },
                Node { path: "/v/x".into(), kind: "file".into(), size: 5 }
            ]
        );
    }

    #[test]
    fn sha256_is_tagged_hex() {
        assert_eq!(sha256(b"abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
