//! `ccci-janitor`: one pass of the independent reaper. It tears down
//! - registered runs whose lease expired (plus a grace), from the registry entry alone;
//! - stacks and workspaces that carry ccci's naming but have no registry entry, once every object
//!   of them is older than a grace period (a run registers before it creates anything, so such
//!   objects belong to a run whose entry was lost);
//!
//! and never anything else. Several runs are reaped in parallel, with a bound; two janitors at
//! once are safe (a run is reaped by whoever claims it first).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use xshell::Shell;

use crate::config;
use crate::error::Result;
use crate::progress::Progress;
use crate::run::naming::{Domain, RunId};
use crate::run::registry::Registry;
use crate::run::state::{OpName, OpTimer, Outcome, RunState};
use crate::swarm::docker;
use crate::time::{rfc3339, unix_now};

pub const HOLDER: &str = "ccci-janitor";

#[derive(Debug, Clone)]
pub struct Options {
    /// Report what would be reaped, change nothing.
    pub dry_run: bool,
    /// How long after its lease expired a run is reaped (`CCCI_JANITOR_GRACE`).
    pub grace: Duration,
    /// How old the newest object of an unregistered stack must be (`CCCI_ORPHAN_GRACE`).
    pub orphan_grace: Duration,
    /// How many runs are torn down at once (`CCCI_JANITOR_PARALLEL`).
    pub parallel: usize,
    /// The run domains' suffix: only stacks `<run id>_<suffix with _>` are ccci's.
    pub suffix: Domain,
    /// How long diagnostics of finished runs are kept (`CCCI_ARTIFACTS_TTL`).
    pub artifacts_ttl: Duration,
}

impl Options {
    pub fn from_env(dry_run: bool) -> Result<Options> {
        Ok(Options {
            dry_run,
            grace: config::duration(&config::JANITOR_GRACE)?,
            orphan_grace: config::duration(&config::ORPHAN_GRACE)?,
            parallel: config::count(&config::JANITOR_PARALLEL)? as usize,
            suffix: crate::run::naming::domain_suffix_from_env()?,
            artifacts_ttl: config::duration(&config::ARTIFACTS_TTL)?,
        })
    }
}

/// One line of the audit trail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Action {
    /// `reap`, `prune` (old diagnostics of a finished run) or `skip`.
    pub action: &'static str,
    pub run: String,
    pub stack: String,
    pub why: String,
    /// `pass`, `fail`, `error` (of the teardown), `dry-run`, or `skipped`.
    pub result: String,
    pub detail: String,
}

enum Job {
    Expired(Box<RunState>, String),
    Orphan(RunId, String),
}

/// Runs one pass; `emit` is called for every action as it completes.
pub fn pass(opts: &Options, registry: &Registry, emit: &(dyn Fn(&Action) + Sync)) -> Result<Vec<Action>> {
    let now = unix_now();
    let mut jobs = vec![];
    let registered = registry.list()?;
    let mut done = vec![];
    for id in &registered {
        // One unreadable or foreign entry is audited and left alone; the others are reaped.
        let entry = match registry.load(id) {
            Ok(Some(entry)) => entry,
            Ok(None) => continue,
            Err(e) => {
                done.push(invalid_entry(id, "", e));
                continue;
            }
        };
        if let Err(e) = entry.run.check_installation(&opts.suffix, registry.root()) {
            done.push(invalid_entry(id, entry.run.stack.as_str(), e));
            continue;
        }
        if entry.expired(now, opts.grace.as_secs()) {
            let why = format!("lease expired at {} (held by {})", rfc3339(entry.lease.expires_at), entry.lease.holder);
            jobs.push(Job::Expired(Box::new(entry.run), why));
        }
    }
    for (id, newest) in unregistered(registry, opts)? {
        if registered.contains(&id) {
            continue;
        }
        let age = now.saturating_sub(newest);
        if age >= opts.orphan_grace.as_secs() {
            jobs.push(Job::Orphan(id, format!("no registry entry; newest object {age}s old")));
        }
    }

    for action in &done {
        emit(action);
    }
    let queue = Mutex::new(jobs);
    let done = Mutex::new(done);
    std::thread::scope(|scope| {
        for _ in 0..opts.parallel {
            scope.spawn(|| {
                loop {
                    let Some(job) = queue.lock().expect("queue").pop() else { break };
                    let action = reap(job, opts, registry);
                    emit(&action);
                    done.lock().expect("results").push(action);
                }
            });
        }
    });
    let mut done = done.into_inner().expect("results");
    for action in prune_artifacts(opts, registry)? {
        emit(&action);
        done.push(action);
    }
    Ok(done)
}

/// The audit line of a registry entry the janitor cannot act on: unreadable, corrupt, or not of
/// this installation. Its run is neither reaped nor treated as an orphan.
fn invalid_entry(id: &RunId, stack: &str, e: crate::Error) -> Action {
    Action {
        action: "skip",
        run: id.to_string(),
        stack: stack.to_string(),
        why: "invalid registry entry".into(),
        result: "error".into(),
        detail: e.to_string(),
    }
}

/// Removes the diagnostics of runs no longer registered once they are older than the TTL.
fn prune_artifacts(opts: &Options, registry: &Registry) -> Result<Vec<Action>> {
    let root = registry.root().join("artifacts");
    let Ok(dir) = fs_err::read_dir(&root) else { return Ok(vec![]) };
    let now = std::time::SystemTime::now();
    let mut actions = vec![];
    for e in dir.flatten() {
        let Some(id) = e.file_name().to_str().and_then(|n| RunId::parse(n).ok()) else { continue };
        if registry.entry_path(&id).exists() {
            continue;
        }
        let age = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| now.duration_since(t).ok());
        if age.is_none_or(|a| a < opts.artifacts_ttl) {
            continue;
        }
        let why = format!("diagnostics older than {}s of a finished run", opts.artifacts_ttl.as_secs());
        let (result, detail) = if opts.dry_run {
            ("dry-run".to_string(), format!("would remove {}", e.path().display()))
        } else {
            match fs_err::remove_dir_all(e.path()) {
                Ok(()) => ("pass".to_string(), format!("removed {}", e.path().display())),
                Err(err) => ("error".to_string(), err.to_string()),
            }
        };
        actions.push(Action { action: "prune", run: id.to_string(), stack: String::new(), why, result, detail });
    }
    Ok(actions)
}

/// Run ids of ccci-named swarm objects and workspaces, with the newest creation time of each.
fn unregistered(registry: &Registry, opts: &Options) -> Result<BTreeMap<RunId, u64>> {
    let suffix = opts.suffix.as_str().replace('.', "_");
    let owner = |name: &str| -> Option<RunId> {
        let (id, rest) = name.split_once('_')?;
        let rest = rest.strip_prefix(&suffix)?;
        (rest.is_empty() || rest.starts_with('_') || rest.starts_with('.')).then_some(())?;
        RunId::parse(id).ok()
    };
    let mut found: BTreeMap<RunId, u64> = BTreeMap::new();
    let objects = docker::owned_objects(&|name, label| owner(name).or_else(|| label.and_then(owner)).is_some())?;
    for o in objects {
        if let Some(id) = owner(&o.name).or_else(|| o.stack_label.as_deref().and_then(owner)) {
            let t = found.entry(id).or_insert(0);
            *t = (*t).max(o.created);
        }
    }
    // A workspace without an entry: killed after the entry was lost, before anything reached the
    // swarm, or the swarm part already gone.
    if let Ok(dir) = fs_err::read_dir(registry.root().join("work")) {
        for e in dir.flatten() {
            let Some(id) = e.file_name().to_str().and_then(|n| RunId::parse(n).ok()) else { continue };
            let modified = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            let t = found.entry(id).or_insert(0);
            *t = (*t).max(modified);
        }
    }
    Ok(found)
}

fn reap(job: Job, opts: &Options, registry: &Registry) -> Action {
    let (id, why) = match &job {
        Job::Expired(s, why) => (s.run_id.clone(), why.clone()),
        Job::Orphan(id, why) => (id.clone(), why.clone()),
    };
    let action = |action: &'static str, stack: &str, result: &str, detail: String| Action {
        action,
        run: id.to_string(),
        stack: stack.to_string(),
        why: why.clone(),
        result: result.to_string(),
        detail,
    };
    let expected_registered = matches!(job, Job::Expired(..));
    let state = match job {
        Job::Expired(state, _) => *state,
        Job::Orphan(id, _) => match RunState::orphan(&id, &opts.suffix, registry.workspace(&id)) {
            Ok(s) => s,
            Err(e) => return action("skip", "", "error", e.to_string()),
        },
    };
    let stack = state.stack.to_string();
    if opts.dry_run {
        return action("reap", &stack, "dry-run", "would tear the run down".into());
    }
    let claim = match registry.claim_reap(&id) {
        Ok(Some(c)) => c,
        Ok(None) => return action("skip", &stack, "skipped", "another janitor is reaping it".into()),
        Err(e) => return action("skip", &stack, "error", e.to_string()),
    };
    // Decided on a listing: look again now that the run is ours to reap.
    let now_registered = match registry.load(&id) {
        Ok(entry) => entry,
        Err(e) => return action("skip", &stack, "error", e.to_string()),
    };
    let expired_at = match (expected_registered, now_registered) {
        (true, None) => return action("skip", &stack, "skipped", "already torn down meanwhile".into()),
        (true, Some(entry)) if !entry.expired(unix_now(), opts.grace.as_secs()) => {
            return action("skip", &stack, "skipped", "the run renewed its lease meanwhile".into());
        }
        (false, Some(_)) => return action("skip", &stack, "skipped", "the run was registered meanwhile".into()),
        (true, Some(entry)) => Some(entry.lease.expires_at),
        (false, None) => None,
    };
    let alive = registry.heartbeat(&id, HOLDER);
    let progress = Progress::new(HOLDER);
    progress.set_run(id.as_str());
    progress.log(format!("reaping: {why}"));
    let result = match Shell::new() {
        Ok(sh) => {
            let mut state = state;
            let timer = OpTimer::start(OpName::Teardown);
            let outcome = crate::swarm::remove::tear_down(&mut state, registry, &sh, &progress, timer);
            // What the teardown recorded stays with a run it did not forget (as every stage's
            // frame saves it, [`super::stage`]).
            let _ = registry.save(&state, HOLDER);
            let detail = state.last_op(OpName::Teardown).map(|r| r.detail.clone()).unwrap_or_default();
            action("reap", &stack, outcome.as_str(), detail)
        }
        Err(e) => action("reap", &stack, Outcome::Error.as_str(), e.to_string()),
    };
    drop(alive);
    // The renewals while reaping were the janitor's own claim, not the run showing life: a reap
    // that left something behind gives the lease back as it was (expired), so the next pass
    // retries at once instead of waiting out a fresh lease.
    if result.result != "pass"
        && let Some(expired_at) = expired_at
        && let Err(e) =
            registry.set_expiry(&id, expired_at, &format!("{HOLDER} (reap failed; retried on the next pass)"))
    {
        progress.log(format!("could not give the lease back: {e}"));
    }
    drop(claim);
    if result.result == "pass" {
        registry.remove_reap_claim(&id);
    }
    result
}
