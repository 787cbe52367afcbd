//! The run registry: `$CCCI_STATE_DIR/runs/<id>.json`, written before a run creates anything and
//! removed only after teardown verified the swarm is clean. It holds the latest run-state and a
//! lease; the janitor reaps runs whose lease expired, from the entry alone (the CI workspace that
//! held the run-state file may be gone).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::run::naming::RunId;
use crate::run::state::{RunState, write_atomic};
use crate::time::unix_now;

pub const SCHEMA: &str = "ccci.registry/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub schema: String,
    pub lease: Lease,
    pub run: RunState,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lease {
    /// Unix seconds after which the run counts as abandoned.
    pub expires_at: u64,
    pub renewed_at: u64,
    /// Which process last renewed it (`ccci-deploy pid 4242`), for people reading the entry.
    pub holder: String,
}

/// The one derivation of a run's workspace from the state directory `root`:
/// `<root>/work/<run id>`. A run-state or registry entry naming any other is refused
/// ([`RunState::check_installation`]).
pub fn workspace_at(root: &Path, id: &RunId) -> PathBuf {
    root.join("work").join(id.as_str())
}

/// `CCCI_LEASE_TTL`: how long a lease lasts without renewal (default 15 minutes).
pub fn lease_ttl() -> Result<Duration> {
    crate::config::duration(&crate::config::LEASE_TTL)
}

#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    /// Opened only to look ([`Registry::look`]): nothing is created.
    looking: bool,
}

impl Registry {
    /// The registry under the configured state directory, created if missing.
    pub fn open() -> Result<Registry> {
        Registry::at(&crate::config::state_dir()?)
    }

    /// The registry under the configured state directory as it is, for looking only
    /// (`ccci-janitor --dry-run`): nothing is created, not the state directory, `runs/`, `work/`
    /// nor the lock file. A registry that does not exist lists no run.
    pub fn look() -> Result<Registry> {
        Ok(Registry { root: crate::config::state_dir()?, looking: true })
    }

    pub fn at(root: &Path) -> Result<Registry> {
        let reg = Registry { root: root.to_path_buf(), looking: false };
        fs_err::create_dir_all(reg.runs_dir()).context("creating the run registry")?;
        fs_err::create_dir_all(reg.root.join("work")).context("creating the workspace root")?;
        Ok(reg)
    }

    /// Whether run `id` has an entry in the registry at `root`, asked without creating or
    /// locking anything: `Some(false)` only when the entry (or the whole registry) is certainly
    /// absent; `None` when the file system cannot tell (permissions, I/O).
    pub fn has_entry_at(root: &Path, id: &RunId) -> Option<bool> {
        match fs_err::metadata(root.join("runs").join(format!("{id}.json"))) {
            Ok(_) => Some(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
            Err(_) => None,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// The run's private workspace: recipe checkout, app env, artifacts.
    pub fn workspace(&self, id: &RunId) -> PathBuf {
        workspace_at(&self.root, id)
    }

    /// Diagnostics of a run, kept after teardown for a person to read (pruned by the janitor).
    pub fn artifacts(&self, id: &RunId) -> PathBuf {
        self.root.join("artifacts").join(id.as_str())
    }

    pub fn entry_path(&self, id: &RunId) -> PathBuf {
        self.runs_dir().join(format!("{id}.json"))
    }

    /// The registry's lock, held while the guard lives. A registry opened to look takes it only
    /// when the lock file exists (entries are written atomically: a read without it sees a whole
    /// entry all the same).
    fn lock(&self) -> Result<Option<fs_err::File>> {
        let path = self.runs_dir().join(".lock");
        let f = match fs_err::OpenOptions::new().create(!self.looking).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if self.looking && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        f.file().lock().context("locking the run registry")?;
        Ok(Some(f))
    }

    fn lease(holder: &str) -> Result<Lease> {
        let now = unix_now();
        // Saturating: a lease never wraps into the past, whatever the TTL (bounded to a day anyway).
        let expires_at = now.saturating_add(lease_ttl()?.as_secs());
        Ok(Lease { expires_at, renewed_at: now, holder: holder.to_string() })
    }

    /// A renewed lease never ends earlier than the one it replaces: a run kept for debugging
    /// (keep-on-failure) stays kept whoever renews it.
    fn renewed(old: &Lease, holder: &str) -> Result<Lease> {
        let mut new = Registry::lease(holder)?;
        new.expires_at = new.expires_at.max(old.expires_at);
        Ok(new)
    }

    /// Records a new run. Fails if the id is already registered (ids are random; a clash means a
    /// retry with a new id, never sharing a deployment).
    pub fn register(&self, state: &RunState, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let path = self.entry_path(&state.run_id);
        if path.exists() {
            return Err(Error::env(format!("run {} is already registered at {}", state.run_id, path.display())));
        }
        let entry = Entry { schema: SCHEMA.into(), lease: Registry::lease(holder)?, run: state.clone() };
        write_atomic(&path, to_json(&entry).as_bytes())
    }

    /// Stores the latest run-state and renews the lease of a registered run. A run no longer
    /// registered (torn down, or reaped) is not registered again by a late stage.
    pub fn save(&self, state: &RunState, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let Some(old) = self.read(&state.run_id)? else { return Ok(()) };
        let entry = Entry { schema: SCHEMA.into(), lease: Registry::renewed(&old.lease, holder)?, run: state.clone() };
        write_atomic(&self.entry_path(&state.run_id), to_json(&entry).as_bytes())
    }

    /// Renews the lease of a registered run; a run no longer registered is left alone.
    pub fn renew(&self, id: &RunId, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut entry) = self.read(id)? else { return Ok(()) };
        entry.lease = Registry::renewed(&entry.lease, holder)?;
        write_atomic(&self.entry_path(id), to_json(&entry).as_bytes())
    }

    /// Keeps the lease alive from a background thread until the returned guard is dropped: a
    /// stage that blocks in one long call (a deploy, a check) still shows it is alive, and one
    /// killed stops renewing at once.
    pub fn heartbeat(&self, id: &RunId, holder: &'static str) -> Heartbeat {
        let _ = self.renew(id, holder);
        let every = lease_ttl().unwrap_or(Duration::from_secs(900)) / 3;
        let every = every.clamp(Duration::from_millis(500), Duration::from_secs(60));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let registry = self.clone();
        let id = id.clone();
        let thread = std::thread::spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                let _ = registry.renew(&id, holder);
            }
        });
        Heartbeat { stop: Some(stop), thread: Some(thread) }
    }

    /// An exclusive, non-blocking claim on reaping one run, so two janitors never reap the same
    /// run at once. `None` when someone else holds it.
    pub fn claim_reap(&self, id: &RunId) -> Result<Option<fs_err::File>> {
        let path = self.reap_claim_path(id);
        let f = fs_err::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
        match f.file().try_lock() {
            Ok(()) => Ok(Some(f)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::env(format!("locking {}: {e}", path.display()))),
        }
    }

    /// Removes the claim file of a run that is gone, once its claim (from [`Registry::claim_reap`])
    /// is dropped; one that cannot be removed is left for the next pass.
    pub fn remove_reap_claim(&self, id: &RunId) {
        let _ = fs_err::remove_file(self.reap_claim_path(id));
    }

    fn reap_claim_path(&self, id: &RunId) -> PathBuf {
        self.runs_dir().join(format!(".{id}.reap"))
    }

    /// Sets the lease to expire at `expires_at` (keep-on-failure).
    pub fn set_expiry(&self, id: &RunId, expires_at: u64, holder: &str) -> Result<()> {
        let _lock = self.lock()?;
        let Some(mut entry) = self.read(id)? else { return Ok(()) };
        entry.lease = Lease { expires_at, renewed_at: unix_now(), holder: holder.to_string() };
        write_atomic(&self.entry_path(id), to_json(&entry).as_bytes())
    }

    pub fn load(&self, id: &RunId) -> Result<Option<Entry>> {
        let _lock = self.lock()?;
        self.read(id)
    }

    fn read(&self, id: &RunId) -> Result<Option<Entry>> {
        let path = self.entry_path(id);
        match fs_err::read_to_string(&path) {
            Ok(text) => {
                let entry = parse_entry(&text, &path)?;
                if entry.run.run_id != *id {
                    return Err(Error::bad_input(format!(
                        "registry entry {}: holds run {}, not {id}",
                        path.display(),
                        entry.run.run_id
                    )));
                }
                Ok(Some(entry))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub fn remove(&self, id: &RunId) -> Result<()> {
        let _lock = self.lock()?;
        match fs_err::remove_file(self.entry_path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every registered run id.
    pub fn list(&self) -> Result<Vec<RunId>> {
        let mut ids = vec![];
        let dir = match fs_err::read_dir(self.runs_dir()) {
            Err(e) if self.looking && e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            dir => dir?,
        };
        for e in dir {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json").and_then(|s| RunId::parse(s).ok()) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// Stops its heartbeat thread when dropped.
pub struct Heartbeat {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Entry {
    /// Whether the lease ran out more than `grace` seconds before `now`.
    pub fn expired(&self, now: u64, grace: u64) -> bool {
        self.lease.expires_at.saturating_add(grace) < now
    }
}

fn to_json(entry: &Entry) -> String {
    serde_json::to_string_pretty(entry).expect("registry entry serialises") + "\n"
}

fn parse_entry(text: &str, path: &Path) -> Result<Entry> {
    let entry: Entry =
        serde_json::from_str(text).map_err(|e| Error::bad_input(format!("registry entry {}: {e}", path.display())))?;
    if entry.schema != SCHEMA {
        return Err(Error::bad_input(format!(
            "registry entry {}: schema {:?}, expected {SCHEMA:?}",
            path.display(),
            entry.schema
        )));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_save_list_remove() {
        let dir = std::env::temp_dir().join(format!("ccci-reg-{}", std::process::id()));
        let reg = Registry::at(&dir).unwrap();
        let mut s = crate::run::state::tests::sample();
        reg.register(&s, "test").unwrap();
        assert!(reg.register(&s, "test").is_err(), "a second registration of one id is refused");
        s.deploys = 1;
        reg.save(&s, "test").unwrap();
        let e = reg.load(&s.run_id).unwrap().unwrap();
        assert_eq!(e.run.deploys, 1);
        assert!(e.lease.expires_at > unix_now());
        assert_eq!(reg.list().unwrap(), vec![s.run_id.clone()]);
        reg.remove(&s.run_id).unwrap();
        reg.remove(&s.run_id).unwrap();
        assert!(reg.load(&s.run_id).unwrap().is_none());
        reg.save(&s, "late stage").unwrap();
        assert!(reg.load(&s.run_id).unwrap().is_none(), "a late save does not register the run again");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_kept_lease_is_not_shortened_by_renewals() {
        let dir = std::env::temp_dir().join(format!("ccci-reg-keep-{}", std::process::id()));
        let reg = Registry::at(&dir).unwrap();
        let s = crate::run::state::tests::sample();
        reg.register(&s, "test").unwrap();
        let far = unix_now() + 10 * 3600;
        reg.set_expiry(&s.run_id, far, "keep").unwrap();
        reg.renew(&s.run_id, "someone").unwrap();
        reg.save(&s, "someone").unwrap();
        let e = reg.load(&s.run_id).unwrap().unwrap();
        assert_eq!(e.lease.expires_at, far);
        assert_eq!(e.lease.holder, "someone");
        assert!(!e.expired(unix_now(), 0));
        assert!(e.expired(far + 61, 60) && !e.expired(far + 59, 60));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_entry_holding_another_run_than_its_file_name_is_refused() {
        let dir = std::env::temp_dir().join(format!("ccci-reg-swap-{}", std::process::id()));
        let reg = Registry::at(&dir).unwrap();
        let s = crate::run::state::tests::sample();
        reg.register(&s, "test").unwrap();
        let other = RunId::parse("othr-000000").unwrap();
        fs_err::copy(reg.entry_path(&s.run_id), reg.entry_path(&other)).unwrap();
        let e = reg.load(&other).unwrap_err();
        assert!(e.to_string().contains("holds run hell-3fa9c2, not othr-000000"), "{e}");
        assert_eq!(reg.workspace(&s.run_id), workspace_at(&dir, &s.run_id));
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_one_claim_to_reap_a_run() {
        let dir = std::env::temp_dir().join(format!("ccci-reg-claim-{}", std::process::id()));
        let reg = Registry::at(&dir).unwrap();
        let id = RunId::parse("hell-3fa9c2").unwrap();
        let first = reg.claim_reap(&id).unwrap();
        assert!(first.is_some());
        assert!(reg.claim_reap(&id).unwrap().is_none(), "a second claim while the first is held");
        drop(first);
        assert!(reg.claim_reap(&id).unwrap().is_some(), "free again once released");
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
