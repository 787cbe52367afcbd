//! The bridge's state file: one JSON document (`state.json`, `schema: 1`) holding each enrolled
//! repository's cursor, decided comments and runs, written atomically (a temporary file and a
//! rename), and guarded by an exclusive lock on `state.lock` for the whole tick. Losing it is
//! safe: the bot's markers on the forge rebuild it ([`super::core::absorb_markers`]).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::core::RepoState;
use crate::error::{Context, Error, Result};

pub const SCHEMA: u32 = 1;

/// Everything the bridge remembers, by repository (`owner/name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeState {
    pub schema: u32,
    #[serde(default)]
    pub repos: BTreeMap<String, RepoState>,
}

/// The state directory, locked for as long as this lives.
pub struct Store {
    dir: PathBuf,
    _lock: fs_err::File,
}

impl Store {
    /// Creates `dir` if needed and takes the lock without waiting: another tick holding it is the
    /// environment's error (exit 3), and nothing is changed.
    pub fn open(dir: &Path) -> Result<Store> {
        fs_err::create_dir_all(dir).context("creating the bridge's state directory")?;
        let lock = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("state.lock"))
            .context("opening the bridge's lock")?;
        // SAFETY: flock on a file descriptor this function owns for the call's duration.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(Error::env(format!(
                "{}: another ccci-bridge holds the lock; nothing was done",
                dir.join("state.lock").display()
            )));
        }
        Ok(Store { dir: dir.to_path_buf(), _lock: lock })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The saved state, or an empty one (a cold start) when there is no file. A file that is not
    /// this schema is the environment's error: the operator must look (or delete it: the markers
    /// rebuild it).
    pub fn load(&self) -> Result<BridgeState> {
        let path = self.path();
        match fs_err::read_to_string(&path) {
            Ok(text) => {
                let s: BridgeState = serde_json::from_str(&text).map_err(|e| {
                    Error::env(format!(
                        "{}: not a bridge state file ({e}); remove it to rebuild it from the forge",
                        path.display()
                    ))
                })?;
                if s.schema != SCHEMA {
                    return Err(Error::env(format!("{}: schema {} is not {SCHEMA}", path.display(), s.schema)));
                }
                Ok(s)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(BridgeState { schema: SCHEMA, repos: BTreeMap::new() })
            }
            Err(e) => Err(Error::env(e.to_string())),
        }
    }

    pub fn save(&self, state: &BridgeState) -> Result<()> {
        let mut text = serde_json::to_string_pretty(state).map_err(|e| Error::env(e.to_string()))?;
        text.push('\n');
        crate::run::state::write_atomic(&self.path(), text.as_bytes())
    }
}
