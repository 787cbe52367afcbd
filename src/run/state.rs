//! The run-state (`ccci.run/v1`): the one JSON document the binaries pass along.
//!
//! Field-by-field documentation lives in `docs/run-state.md`; keep the two in step.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::run::naming::{Domain, RecipeName, RunId, StackName};

pub const SCHEMA: &str = "ccci.run/v1";

/// The most a binary reads of a run-state (stdin or `--state FILE`): 16 MiB. A real one is a few
/// kilobytes (hundreds with every detail at its cap); anything larger is bad input (exit 2),
/// refused after reading one byte past the limit, never the rest (docs/run-state.md).
pub const MAX_STATE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunState {
    pub schema: String,
    pub run_id: RunId,
    pub recipe: RecipeName,
    pub driver: DriverKind,
    pub source: Source,
    pub domain: Domain,
    pub stack: StackName,
    /// Per-run directory outside any CI workspace: the recipe checkout, the app env, artifacts.
    pub workspace: PathBuf,
    /// The app env file the deploy used (abra: `$ABRA_DIR/servers/<server>/<domain>.env`).
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    pub created_at: String,
    /// How many initial deploys this run made. Anything but 1 after a deploy is a broken run.
    pub deploys: u32,
    /// What is actually on the swarm after the last deploy or redeploy.
    #[serde(default)]
    pub deployed: Option<Deployed>,
    /// The upgrade tier's plan, decided by the deploy: which release went on first.
    #[serde(default)]
    pub upgrade: Option<UpgradePlan>,
    /// Host access the recipe's compose files use, granted because the recipe is approved;
    /// absent when they use none (an unapproved recipe that asks for some is refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_access: Option<HostAccess>,
    #[serde(default)]
    pub ops: Vec<OpRecord>,
    pub versions: Versions,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UpgradePlan {
    /// The published release deployed first; `None` when there is none before the head (the
    /// head was deployed and the upgrade will be skipped).
    pub base: Option<BaseRelease>,
    /// Why this base, or why no upgrade, in words.
    pub reason: String,
    /// Set when the base release did not deploy (docker's or the wait's words): what it created
    /// was removed, the head was deployed by itself in the same run, and the upgrade is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_failure: Option<String>,
    /// Data canaries `ccci-assert install` planted at the root of each named volume of the stack
    /// (`ccci-upgrade-canary-<run id>`, random bytes) for `ccci-assert upgrade` to find intact:
    /// an upgrade that loses a volume's data fails, whatever the app serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<Canary>,
}

impl UpgradePlan {
    /// "release 1.0.0+1, the upgrade base, does not deploy" when it did not.
    pub fn base_failed(&self) -> Option<String> {
        let base = self.base.as_ref()?;
        self.base_failure.as_ref().map(|_| format!("release {}, the upgrade base, does not deploy", base.tag))
    }
}

/// What a recipe's compose files reach on the host (bind mounts, the Docker socket, added
/// capabilities, the host network, files outside the checkout...), granted by the trust gate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostAccess {
    /// One line per grant, e.g. `service app mounts the Docker socket /var/run/docker.sock
    /// (volumes, in the head)`.
    pub granted: Vec<String>,
    /// Why it was granted: the approval and the allowlist it came from.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaseRelease {
    pub tag: String,
    pub commit: String,
    /// Lightweight tags cannot be deployed as releases by abra (`docs/abra-contract.md` P11): the base is then
    /// deployed as a chaos deploy of the tag's tree.
    pub annotated: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Plain `docker stack deploy` of the recipe's compose files.
    Stack,
    /// The real `abra` CLI.
    Abra,
}

impl DriverKind {
    pub fn parse(s: &str) -> Result<DriverKind> {
        match s {
            "stack" => Ok(DriverKind::Stack),
            "abra" => Ok(DriverKind::Abra),
            _ => Err(Error::bad_input(format!("unknown driver {s:?}: expected `stack` or `abra`"))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Stack => "stack",
            DriverKind::Abra => "abra",
        }
    }
    /// Where a run's recipe checkout lives in its workspace: `<workspace>/recipe` (stack), or
    /// abra's `<workspace>/abra/recipes/<recipe>` (the run's own `ABRA_DIR`).
    pub fn recipe_dir(self, workspace: &std::path::Path, recipe: &crate::run::naming::RecipeName) -> PathBuf {
        match self {
            DriverKind::Stack => workspace.join("recipe"),
            DriverKind::Abra => workspace.join("abra").join("recipes").join(recipe.as_str()),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Source {
    /// Where the recipe was cloned from (a path or URL): as given, less any credentials
    /// (`https://user:token@host/…` is stored as `https://host/…`).
    pub repo: String,
    /// The repository's canonical identity (`host[:port]/owner/name`, or the real path of a local
    /// repository; see [`crate::recipe::source::Identity`]): what the allowlist is compared with.
    #[serde(default)]
    pub identity: Option<String>,
    /// The allowlist entry that approved the recipe's own code, or `None` (not approved). Set by
    /// the deploy and by every `ccci-assert`, from the allowlist in effect then.
    #[serde(default)]
    pub approved_by: Option<crate::recipe::trust::Approval>,
    /// The ref asked for (branch, tag or commit).
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref resolved to, once fetched.
    #[serde(default)]
    pub commit: Option<String>,
    /// `sha256:<hex>` of the NAR serialisation of the checkout without `.git`
    /// (equal to `nix-hash --type sha256` of the same tree).
    #[serde(default)]
    pub nar_hash: Option<String>,
}

impl Source {
    /// The recorded identity, when there is one and it is canonical.
    pub fn identity(&self) -> Option<crate::recipe::source::Identity> {
        self.identity.as_deref().and_then(|s| crate::recipe::source::Identity::parse_canonical(s).ok())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Versions {
    pub ccci: String,
    #[serde(default)]
    pub abra: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Deployed {
    /// When this picture of the swarm was taken.
    pub observed_at: String,
    /// By short service name (`app`, `db`).
    pub services: BTreeMap<String, DeployedService>,
    /// The moment the deployment last changed (its deploy, redeploy or restore was seen
    /// converged) and its tasks then: the settle window counts from here. Absent when this
    /// picture was not taken at a convergence (then the window counts from the assert's start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle_from: Option<SettleBaseline>,
}

/// The tasks of the stack at the moment its deploy or redeploy converged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct SettleBaseline {
    /// When the convergence was seen, in milliseconds since the Unix epoch (UTC).
    pub at_ms: u64,
    /// Ids of the tasks running then.
    pub running: Vec<String>,
    /// Ids of every task of the stack known then, running or ended.
    pub known: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DeployedService {
    /// Full swarm service name, `<stack>_<service>`.
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub image_id: Option<String>,
    pub desired_replicas: u64,
    pub running_replicas: u64,
    /// Service labels (compose `deploy.labels` plus what the driver added).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Ports the service publishes, as `published → target`, each with its mode: `host` (on this
    /// node, by the running tasks) or `ingress` (through the swarm's routing mesh).
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    #[serde(default)]
    pub secrets: Vec<String>,
    #[serde(default)]
    pub configs: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublishedPort {
    pub published: u16,
    pub target: u16,
    /// Absent in run-states written before ingress ports were recorded: those held host ports only.
    #[serde(default)]
    pub mode: PortMode,
    /// For a host-mode port: the address family docker bound `published` for, as the task's
    /// container says (`docker container inspect` `.NetworkSettings.Ports`). Absent when the
    /// container could not be asked: the port is then tried at both loopbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<AddressFamily>,
}

/// An IP address family: which loopback (`127.0.0.1` or `::1`) reaches a port bound on this node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

/// How a port is published (compose `ports: [{mode: …}]`; the short form `80:8080` is ingress).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    /// Bound on the node that runs the task.
    #[default]
    Host,
    /// Through the swarm's routing mesh, on every node.
    Ingress,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    /// The recipe failed the op.
    Fail,
    Skip,
    /// The harness or the environment broke.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Error => "error",
        }
    }
    /// How an op's error lands in the run-state: the recipe failing is `fail`, anything else
    /// (docker, git, abra, disk, a broken input discovered late) is `error`.
    pub fn of(e: &crate::error::Error) -> Outcome {
        match e.kind() {
            crate::error::Kind::OpFailed => Outcome::Fail,
            crate::error::Kind::BadInput | crate::error::Kind::Environment => Outcome::Error,
        }
    }
    /// The exit code a binary returns for its op's outcome.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Pass | Outcome::Skip => crate::error::exit::PASS,
            Outcome::Fail => crate::error::exit::FAILED,
            Outcome::Error => crate::error::exit::ENVIRONMENT,
        }
    }
}

/// An op's name as the run-state records it (`ops[].op`), written as today's strings: the stages'
/// ops, the asserts' (named for their tier) and the tiers themselves (`ccci-assert <tier>`, the
/// overlay directories, `CCCI_OP`). A name this version does not know is kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum OpName {
    /// The install-steps hooks, recorded by `ccci-deploy` when a hook exists.
    InstallSteps,
    Deploy,
    /// `ccci-assert install` (a tier).
    Install,
    /// `ccci-upgrade`, and the tier.
    Upgrade,
    /// `ccci-assert upgrade`.
    AssertUpgrade,
    Backup,
    AssertBackup,
    Restore,
    AssertRestore,
    /// `ccci-assert custom` (a tier).
    Custom,
    Teardown,
    /// A name this version does not know.
    Other(String),
}

impl OpName {
    /// The tiers `ccci-assert` checks, in pipe order.
    pub const TIERS: [OpName; 5] = [OpName::Install, OpName::Upgrade, OpName::Backup, OpName::Restore, OpName::Custom];

    pub fn as_str(&self) -> &str {
        match self {
            OpName::InstallSteps => "install-steps",
            OpName::Deploy => "deploy",
            OpName::Install => "install",
            OpName::Upgrade => "upgrade",
            OpName::AssertUpgrade => "assert upgrade",
            OpName::Backup => "backup",
            OpName::AssertBackup => "assert backup",
            OpName::Restore => "restore",
            OpName::AssertRestore => "assert restore",
            OpName::Custom => "custom",
            OpName::Teardown => "teardown",
            OpName::Other(s) => s,
        }
    }

    /// The tier named `s`, if it is one.
    pub fn tier(s: &str) -> Option<OpName> {
        OpName::TIERS.into_iter().find(|t| t.as_str() == s)
    }

    /// The op `ccci-assert` records for this tier: `install` and `custom` are their own; the
    /// others are `assert <tier>`, beside the op they check.
    pub fn assert_op(&self) -> OpName {
        match self {
            OpName::Upgrade => OpName::AssertUpgrade,
            OpName::Backup => OpName::AssertBackup,
            OpName::Restore => OpName::AssertRestore,
            other => other.clone(),
        }
    }
}

impl From<String> for OpName {
    fn from(s: String) -> OpName {
        const KNOWN: [OpName; 11] = [
            OpName::InstallSteps,
            OpName::Deploy,
            OpName::Install,
            OpName::Upgrade,
            OpName::AssertUpgrade,
            OpName::Backup,
            OpName::AssertBackup,
            OpName::Restore,
            OpName::AssertRestore,
            OpName::Custom,
            OpName::Teardown,
        ];
        KNOWN.into_iter().find(|k| k.as_str() == s).unwrap_or(OpName::Other(s))
    }
}

impl From<&str> for OpName {
    fn from(s: &str) -> OpName {
        OpName::from(s.to_string())
    }
}

impl From<OpName> for String {
    fn from(op: OpName) -> String {
        match op {
            OpName::Other(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl std::fmt::Display for OpName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpRecord {
    /// `deploy`, `install`, `upgrade`, `teardown`, ... (assert ops are named for their tier).
    pub op: OpName,
    pub result: Outcome,
    pub started_at: String,
    pub duration_ms: u64,
    /// One line a person can act on: why it failed or was skipped, or what passed.
    pub detail: String,
    #[serde(default)]
    pub assertions: Vec<Assertion>,
    /// Files captured when the op failed (`docker service ps`, service logs), for a person to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<PathBuf>,
    /// What `backup` and `restore` did and found, for the asserts and the report; absent on
    /// other ops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupEvidence>,
}

/// The evidence of a backup or a restore (`docs/run-state.md`, `ops[].backup`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BackupEvidence {
    /// `stack` (ccci's own engine on the host's restic) or `abra` (backup-bot-two through abra).
    pub engine: String,
    /// The restic repository the evidence was read from (its password is never recorded).
    pub repository: PathBuf,
    /// The snapshot the backup made (full id), and the restore restored.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Per included volume: what went in.
    #[serde(default)]
    pub volumes: Vec<VolumeEvidence>,
    /// The file canaries planted before the backup.
    #[serde(default)]
    pub canaries: Vec<Canary>,
    /// Every hook run, in order.
    #[serde(default)]
    pub hooks: Vec<HookRun>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct VolumeEvidence {
    /// The compose key (`data`).
    pub volume: String,
    /// The swarm volume (`<stack>_data`).
    pub name: String,
    /// Its directory on the host.
    pub mountpoint: PathBuf,
    /// The host paths backed up (the mountpoint, or the paths a label names under it).
    pub paths: Vec<PathBuf>,
    /// Files (not directories) of the snapshot under those paths, and their bytes.
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Canary {
    pub volume: String,
    /// Its host path: `<mountpoint>[/<labelled dir>]/ccci-canary-<run id>-<volume>`.
    pub path: PathBuf,
    pub size: u64,
    /// `sha256:<hex>` of the planted bytes (the bytes themselves are not recorded).
    pub sha256: String,
    /// `pass` once the op checked it (backup: in the snapshot with these bytes; restore: back on
    /// disk with these bytes), `fail` when it was not; absent before it was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked: Option<Outcome>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HookRun {
    pub service: String,
    pub phase: crate::recipe::backup::Phase,
    pub command: String,
    /// The exit status; absent when it could not be run (no running container, a timeout).
    #[serde(default)]
    pub exit: Option<i32>,
    /// The last 4096 bytes of its stdout and stderr.
    #[serde(default)]
    pub output: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Assertion {
    pub name: String,
    pub result: Outcome,
    pub detail: String,
    #[serde(default)]
    pub duration_ms: u64,
    /// The end of what a check (an executable) printed, stdout and stderr interleaved; absent
    /// for the built-in checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// Measures one op from its start; turned into an [`OpRecord`] when it ends.
pub struct OpTimer {
    op: OpName,
    started_at: String,
    started: Instant,
}

impl OpTimer {
    pub fn start(op: OpName) -> OpTimer {
        OpTimer { op, started_at: crate::time::now_rfc3339(), started: Instant::now() }
    }
    pub fn finish(self, result: Outcome, detail: impl Into<String>, assertions: Vec<Assertion>) -> OpRecord {
        OpRecord {
            op: self.op,
            result,
            started_at: self.started_at,
            duration_ms: self.started.elapsed().as_millis() as u64,
            detail: detail.into(),
            assertions,
            artifacts: vec![],
            backup: None,
        }
    }
}

impl RunState {
    /// The state of a run that left no registry entry (killed before it registered, or an entry
    /// removed by hand), for tearing it down: its names only, derived from `id` and the
    /// installation's domain suffix, with `workspace` where the registry puts the run's. The
    /// driver is `stack`, whose removal is the swarm sweep by label and name prefix, and which
    /// removes the workspace with it.
    ///
    /// Errors: `id` does not make a valid domain or stack name under `suffix` (bad input).
    pub fn orphan(id: &RunId, suffix: &Domain, workspace: PathBuf) -> Result<RunState> {
        let domain = Domain::for_run(id, suffix)?;
        let recipe_hint = id.as_str().rsplit_once('-').map_or(id.as_str(), |(p, _)| p);
        let stack = StackName::from_domain(&domain)?;
        Ok(RunState::new(
            id.clone(),
            RecipeName::parse(recipe_hint)?,
            DriverKind::Stack,
            Source::default(),
            domain,
            stack,
            workspace,
        ))
    }

    /// A run about to register: its names, driver, source and workspace; nothing deployed, no op
    /// recorded, created now, this ccci's version (the abra version is the driver's to add).
    pub fn new(
        run_id: RunId,
        recipe: RecipeName,
        driver: DriverKind,
        source: Source,
        domain: Domain,
        stack: StackName,
        workspace: PathBuf,
    ) -> RunState {
        RunState {
            schema: SCHEMA.into(),
            run_id,
            recipe,
            driver,
            source,
            domain,
            stack,
            workspace,
            env_file: None,
            created_at: crate::time::now_rfc3339(),
            deploys: 0,
            deployed: None,
            upgrade: None,
            host_access: None,
            ops: vec![],
            versions: Versions { ccci: env!("CARGO_PKG_VERSION").into(), abra: None },
        }
    }

    /// Parses and validates a run-state; every problem names the field and the line/column.
    pub fn parse(text: &str, origin: &str) -> Result<RunState> {
        // What every stage reads: a well-formed run-state of this schema, in one pass.
        if let Ok(state) = serde_json::from_str::<RunState>(text)
            && state.schema == SCHEMA
        {
            state.validate().map_err(|e| e.context(origin))?;
            return Ok(state);
        }
        // Anything else is read again a step at a time, for the words of its first fault: not
        // JSON, not a run-state of this schema, then the field that does not fit.
        if text.trim().is_empty() {
            return Err(Error::bad_input(format!("{origin}: empty input, expected a {SCHEMA} run-state")));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::bad_input(format!("{origin}: not JSON: {e}")))?;
        match value.get("schema") {
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(other) => {
                return Err(Error::bad_input(format!("{origin}: field `schema` is {other}, expected \"{SCHEMA}\"")));
            }
            None if value.is_object() => {
                return Err(Error::bad_input(format!("{origin}: missing field `schema` (expected \"{SCHEMA}\")")));
            }
            None => {
                return Err(Error::bad_input(format!("{origin}: expected a JSON object, found {}", kind_of(&value))));
            }
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let state: RunState = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                Error::bad_input(format!("{origin}: {}", e.inner()))
            } else {
                Error::bad_input(format!("{origin}: field `{path}`: {}", e.inner()))
            }
        })?;
        state.validate().map_err(|e| e.context(origin))?;
        Ok(state)
    }

    /// Whether this run belongs to this installation, checked by every stage before it touches
    /// the swarm or the disk (`StateIo::read_own`, `ccci-teardown --run`, the janitor):
    /// - the state itself is valid (stack derived from the domain, domain of the run, ...);
    /// - `domain` is exactly `<run_id>.<suffix>` (`CCCI_DOMAIN_SUFFIX`);
    /// - `workspace` is exactly the registry's derivation for the run id under `state_dir`
    ///   (`CCCI_STATE_DIR`, [`crate::run::registry::workspace_at`]);
    /// - `env_file`, if any, and the driver's recipe directory lie inside that workspace
    ///   (no `..`).
    ///
    /// A violation is bad input (exit 2) naming the field; nothing has been changed.
    pub fn check_installation(&self, suffix: &Domain, state_dir: &Path) -> Result<()> {
        self.validate()?;
        let want = format!("{}.{suffix}", self.run_id);
        if self.domain.as_str() != want {
            return Err(Error::bad_input(format!(
                "field `domain` is {} but run {} of this installation is {want} ({}={suffix}): refusing to act on another installation's run",
                self.domain,
                self.run_id,
                crate::config::DOMAIN_SUFFIX.name
            )));
        }
        let workspace = crate::run::registry::workspace_at(state_dir, &self.run_id);
        if self.workspace != workspace {
            return Err(Error::bad_input(format!(
                "field `workspace` is {} but run {} lives at {}: refusing to touch another directory",
                self.workspace.display(),
                self.run_id,
                workspace.display()
            )));
        }
        let inside = |p: &Path| {
            p.strip_prefix(&workspace)
                .is_ok_and(|rest| rest.components().all(|c| matches!(c, std::path::Component::Normal(_))))
        };
        if let Some(env) = &self.env_file
            && !inside(env)
        {
            return Err(Error::bad_input(format!(
                "field `env_file` {} is not inside the run's workspace {}",
                env.display(),
                workspace.display()
            )));
        }
        let recipe_dir = self.driver.recipe_dir(&workspace, &self.recipe);
        if !inside(&recipe_dir) {
            return Err(Error::bad_input(format!(
                "the recipe directory {} is not inside the run's workspace {}",
                recipe_dir.display(),
                workspace.display()
            )));
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        let expected = StackName::from_domain(&self.domain)?;
        if expected != self.stack {
            return Err(Error::bad_input(format!(
                "field `stack` is {:?} but domain {} gives {:?}",
                self.stack.as_str(),
                self.domain,
                expected.as_str()
            )));
        }
        if !self.domain.as_str().starts_with(&format!("{}.", self.run_id)) {
            return Err(Error::bad_input(format!(
                "field `domain` {} does not belong to run {}",
                self.domain, self.run_id
            )));
        }
        if let Some(c) = &self.source.commit
            && !(c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Error::bad_input(format!("field `source.commit` {c:?} is not a 40-hex commit id")));
        }
        if let Some(id) = &self.source.identity {
            crate::recipe::source::Identity::parse_canonical(id).map_err(|e| e.context("field `source.identity`"))?;
        }
        if !self.workspace.is_absolute() {
            return Err(Error::bad_input(format!("field `workspace` {:?} must be an absolute path", self.workspace)));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("run-state serialises");
        s.push('\n');
        s
    }

    pub fn push_op(&mut self, record: OpRecord) {
        self.ops.push(record);
    }

    /// "deploy-once violated (deploys = N)" when the run broke the deploy-once rule: a run that
    /// deployed must have deployed exactly once; an in-place redeploy is not a deploy.
    ///
    /// More than one deploy always breaks it. Zero breaks it only when the deploy op passed: a
    /// deploy refused or failed before it reached the swarm (names too long, clone failed) made no
    /// deploy, and that is the deploy op's own fail or error, not a harness bug to report on top.
    pub fn deploy_once_violation(&self) -> Option<String> {
        let broken = match self.deploys {
            1 => false,
            0 => self.last_op(OpName::Deploy).is_some_and(|d| d.result == Outcome::Pass),
            _ => true,
        };
        broken.then(|| format!("deploy-once violated (deploys = {})", self.deploys))
    }

    /// The latest record of `op`, if it ran.
    pub fn last_op(&self, op: OpName) -> Option<&OpRecord> {
        self.ops.iter().rev().find(|r| r.op == op)
    }
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Where a binary reads its run-state from and writes it to.
#[derive(Debug, Clone)]
pub enum StateIo {
    /// stdin in, stdout out.
    Pipe,
    /// Read from and written back to this file, atomically.
    File(PathBuf),
}

impl StateIo {
    /// Checks, before anything is created, that the run-state can be written back: `--state
    /// FILE`'s directory exists and takes a new file (tried with a probe file removed at once),
    /// and FILE is not a directory. Bad input (exit 2) otherwise. The pipe needs no check.
    pub fn check_writable(&self) -> Result<()> {
        let StateIo::File(path) = self else { return Ok(()) };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let refuse = |why: String| Error::bad_input(format!("--state {}: {why}", path.display()));
        if path.is_dir() {
            return Err(refuse("is a directory".into()));
        }
        if !dir.is_dir() {
            return Err(refuse(format!("its directory {} does not exist", dir.display())));
        }
        crate::config::writable_dir(dir).map_err(refuse)
    }

    pub fn read(&self) -> Result<RunState> {
        match self {
            StateIo::Pipe => {
                let stdin = std::io::stdin();
                if stdin.is_terminal() {
                    return Err(Error::bad_input(
                        "no run-state on stdin: pipe one in (e.g. from ccci-deploy) or pass --state FILE",
                    ));
                }
                let text = read_capped(stdin.lock()).map_err(|e| e.context("reading the run-state from stdin"))?;
                RunState::parse(&text, "run-state on stdin")
            }
            StateIo::File(path) => {
                let file = fs_err::File::open(path).map_err(|e| Error::bad_input(e.to_string()))?;
                let text = read_capped(file).map_err(|e| e.context(format!("reading {}", path.display())))?;
                RunState::parse(&text, &path.display().to_string())
            }
        }
    }

    /// Reads the run-state and checks that it belongs to this installation
    /// ([`RunState::check_installation`] against `CCCI_DOMAIN_SUFFIX` and `CCCI_STATE_DIR`),
    /// before anything else is touched. What every stage on an existing run reads through.
    pub fn read_own(&self) -> Result<RunState> {
        let state = self.read()?;
        let suffix = crate::run::naming::domain_suffix_from_env()?;
        let state_dir = crate::config::state_dir()?;
        state.check_installation(&suffix, &state_dir)?;
        Ok(state)
    }

    pub fn write(&self, state: &RunState) -> Result<()> {
        match self {
            StateIo::Pipe => crate::cli::out("the run-state", &state.to_json()),
            StateIo::File(path) => write_atomic(path, state.to_json().as_bytes()),
        }
    }
}

/// All of `input` as UTF-8 text, at most [`MAX_STATE_BYTES`]: bad input beyond that (after reading
/// one byte more, not the rest), when it is not UTF-8, or when it cannot be read.
fn read_capped(input: impl Read) -> Result<String> {
    let mut bytes = vec![];
    input.take(MAX_STATE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| Error::bad_input(e.to_string()))?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(Error::bad_input(format!(
            "more than {} MiB, the most a run-state may be",
            MAX_STATE_BYTES / 1024 / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| Error::bad_input("stream did not contain valid UTF-8"))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or a killed writer) never sees half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs_err::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs_err::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests {
    #[test]
    fn op_names_are_written_as_before_and_an_unknown_one_is_kept() {
        for (op, text) in [
            (OpName::InstallSteps, "install-steps"),
            (OpName::Deploy, "deploy"),
            (OpName::AssertUpgrade, "assert upgrade"),
            (OpName::Teardown, "teardown"),
        ] {
            assert_eq!(serde_json::to_value(&op).unwrap(), serde_json::json!(text));
            assert_eq!(serde_json::from_value::<OpName>(serde_json::json!(text)).unwrap(), op);
        }
        let later: OpName = serde_json::from_value(serde_json::json!("a later op")).unwrap();
        assert_eq!(later, OpName::Other("a later op".into()));
        assert_eq!(serde_json::to_value(&later).unwrap(), serde_json::json!("a later op"));
        assert_eq!(OpName::tier("restore"), Some(OpName::Restore));
        assert_eq!(OpName::tier("deploy"), None);
    }

    use super::*;

    pub fn sample() -> RunState {
        let source = Source {
            repo: "/tmp/hello".into(),
            identity: Some("/tmp/hello".into()),
            git_ref: "main".into(),
            ..Source::default()
        };
        RunState {
            created_at: "2026-11-21T22:34:08Z".into(),
            versions: Versions { ccci: "0.1.0".into(), abra: None },
            ..RunState::new(
                RunId::parse("hell-3fa9c2").unwrap(),
                RecipeName::parse("hello").unwrap(),
                DriverKind::Stack,
                source,
                Domain::parse("hell-3fa9c2.ccci.localhost").unwrap(),
                StackName::parse("hell-3fa9c2_ccci_localhost").unwrap(),
                "/var/lib/ccci/work/hell-3fa9c2".into(),
            )
        }
    }

    #[test]
    fn round_trips() {
        let s = sample();
        assert_eq!(RunState::parse(&s.to_json(), "t").unwrap(), s);
    }

    fn err(text: &str) -> String {
        let e = RunState::parse(text, "input").unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        e.to_string()
    }

    fn with(f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        f(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    }

    #[test]
    fn bad_inputs_name_the_problem() {
        assert!(err("").contains("empty input"));
        assert!(err("{not json").contains("not JSON"));
        assert!(err("{not json").contains("line 1 column 2"));
        assert!(err("[1,2]").contains("expected a JSON object"));
        assert!(err(r#"{"schema":"ccci.run/v2"}"#).contains("expected \"ccci.run/v1\""));
        assert!(err(r#"{"run_id":"x"}"#).contains("missing field `schema`"));
        let m = err(&with(|v| {
            v.as_object_mut().unwrap().remove("stack");
        }));
        assert!(m.contains("missing field `stack`"), "{m}");
        let m = err(&with(|v| v["run_id"] = "../../etc".into()));
        assert!(m.contains("field `run_id`") && m.contains("invalid run id") && m.contains(" at line "), "{m}");
        let m = err(&with(|v| v["domain"] = "Evil Domain".into()));
        assert!(m.contains("field `domain`"), "{m}");
        let m = err(&with(|v| v["stack"] = "other_stack".into()));
        assert!(m.contains("field `stack`"), "{m}");
        let m = err(&with(|v| v["driver"] = "kubernetes".into()));
        assert!(m.contains("field `driver`") && m.contains("unknown variant"), "{m}");
        let m = err(&with(|v| v["ops"] = serde_json::json!([{"op":"deploy","result":"passed"}])));
        assert!(m.contains("ops[0]"), "{m}");
        let m = err(&with(|v| v["source"]["identity"] = "Git.Example/o/n.git".into()));
        assert!(m.contains("source.identity") && m.contains("not a canonical repository identity"), "{m}");
        let m = err(&with(|v| v["source"]["commit"] = "abc; rm -rf /".into()));
        assert!(m.contains("source.commit"), "{m}");
        let m = err(&with(|v| v["workspace"] = "relative/dir".into()));
        assert!(m.contains("workspace"), "{m}");
        let m = err(&with(|v| v["deploys"] = (-1).into()));
        assert!(m.contains("field `deploys`"), "{m}");
    }

    fn installation_err(f: impl FnOnce(&mut RunState)) -> String {
        let mut s = sample();
        f(&mut s);
        let suffix = Domain::parse("ccci.localhost").unwrap();
        let e = s.check_installation(&suffix, Path::new("/var/lib/ccci")).unwrap_err();
        assert_eq!(e.kind().exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn a_state_belongs_to_this_installation_only_when_its_names_and_paths_are_derived_here() {
        let suffix = Domain::parse("ccci.localhost").unwrap();
        let mut ok = sample();
        ok.check_installation(&suffix, Path::new("/var/lib/ccci")).unwrap();
        ok.env_file = Some("/var/lib/ccci/work/hell-3fa9c2/abra/servers/default/hell-3fa9c2.ccci.localhost.env".into());
        ok.driver = DriverKind::Abra;
        ok.check_installation(&suffix, Path::new("/var/lib/ccci")).unwrap();

        let other = Domain::parse("other.example").unwrap();
        let e = sample().check_installation(&other, Path::new("/var/lib/ccci")).unwrap_err();
        assert!(e.to_string().contains("field `domain`") && e.to_string().contains("other.example"), "{e}");
        let e = sample().check_installation(&suffix, Path::new("/srv/other-ccci")).unwrap_err();
        assert!(e.to_string().contains("field `workspace`") && e.to_string().contains("/srv/other-ccci/work"), "{e}");

        let m = installation_err(|s| s.workspace = "/tmp/victim".into());
        assert!(m.contains("field `workspace` is /tmp/victim"), "{m}");
        let m = installation_err(|s| s.workspace = "/var/lib/ccci/work/../work/hell-3fa9c2".into());
        assert!(m.contains("field `workspace`"), "{m}");
        let m = installation_err(|s| s.workspace = "/var/lib/ccci/work/hell-000000".into());
        assert!(m.contains("field `workspace`"), "{m}");
        let m = installation_err(|s| s.env_file = Some("/etc/passwd".into()));
        assert!(m.contains("field `env_file` /etc/passwd"), "{m}");
        let m = installation_err(|s| s.env_file = Some("/var/lib/ccci/work/hell-3fa9c2/../../../../etc/passwd".into()));
        assert!(m.contains("field `env_file`"), "{m}");
        let m = installation_err(|s| {
            s.domain = Domain::parse("hell-3fa9c2.victim.example").unwrap();
            s.stack = StackName::from_domain(&s.domain).unwrap();
        });
        assert!(m.contains("field `domain` is hell-3fa9c2.victim.example"), "{m}");
        let m = installation_err(|s| {
            s.domain = Domain::parse("othr-000000.ccci.localhost").unwrap();
            s.stack = StackName::from_domain(&s.domain).unwrap();
        });
        assert!(m.contains("does not belong to run hell-3fa9c2"), "{m}");
        let m = installation_err(|s| s.stack = StackName::parse("othr-000000_ccci_localhost").unwrap());
        assert!(m.contains("field `stack`"), "{m}");
    }

    #[test]
    fn atomic_write_replaces_file() {
        let dir = std::env::temp_dir().join(format!("ccci-state-test-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let p = dir.join("run.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs_err::read_to_string(&p).unwrap(), "two");
        assert_eq!(fs_err::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
