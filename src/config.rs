//! Settings read from the environment: one table ([`SETTINGS`]) with each setting's name, default,
//! accepted values (with bounds) and meaning, and the typed getters the rest of ccci reads them
//! through. `docs/operating.md` lists exactly this table (a test compares them).
//!
//! Every binary that acts on a run calls [`check_all`] before it creates anything: a malformed or
//! out-of-range value is bad input (exit 2), one line naming the setting and what it accepts. An
//! empty value counts as unset.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// What every setting's name, and every variable ccci gives a program it runs, starts with.
pub const PREFIX: &str = "CCCI_";

/// What a setting accepts. Durations are whole seconds, written as plain seconds or with one
/// unit suffix (`90`, `30s`, `10m`, `2h`; see [`crate::time::parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// A duration from `min` to `max` seconds, both included; `default` seconds when unset.
    Duration { default: u64, min: u64, max: u64 },
    /// A whole number from `min` to `max`, both included.
    Count { default: u64, min: u64, max: u64 },
    /// `1`, `0`, `true` or `false`, nothing else; off when unset.
    Flag,
    /// An absolute path to a directory ccci may write: it exists and is writable, or its nearest
    /// existing ancestor is a writable directory (ccci creates the rest).
    StateDir,
    /// An absolute path to an existing directory.
    Dir,
    /// An absolute path to an existing regular file.
    File,
    /// A command looked up on `PATH`, or an absolute path (whether it exists is checked when it is
    /// run: a missing program is the environment's error, exit 3).
    Program,
    /// An `http://` or `https://` URL with a host, an optional port and no credentials.
    Url,
    /// A domain name that, behind the longest run id, still gives a stack name abra accepts.
    DomainSuffix,
    /// An abra server name.
    ServerName,
    /// Docker network names separated by commas or spaces, never `host`.
    NetworkNames,
    /// A forge account or organisation name: letters, digits, `-`, `_` and `.`.
    AccountName,
    /// One repository, `owner/name`.
    Repository,
    /// One or more repositories (`owner/name`), separated by commas or spaces.
    Repositories,
    /// Where repositories are cloned from: an `https://` or `ssh://` URL without credentials, or
    /// an absolute path to a directory.
    GitBase,
}

/// One setting: the row of `docs/operating.md` it is documented by.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub name: &'static str,
    /// The default, as the docs show it.
    pub default: &'static str,
    pub accepts: Accepts,
    /// What it does, as the docs say it.
    pub meaning: &'static str,
}

const MIN: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

pub const STATE_DIR: Setting = Setting {
    name: "CCCI_STATE_DIR",
    default: "`$XDG_STATE_HOME/ccci`, else `~/.local/state/ccci`",
    accepts: Accepts::StateDir,
    meaning: "the run registry (`runs/`), per-run workspaces (`work/`) and diagnostics (`artifacts/`); keep it outside any CI workspace. The NixOS module sets `/var/lib/ccci`.",
};
pub const DOMAIN_SUFFIX: Setting = Setting {
    name: "CCCI_DOMAIN_SUFFIX",
    default: "`ccci.localhost`",
    accepts: Accepts::DomainSuffix,
    meaning: "run domains are `<run id>.<suffix>`; `.localhost` resolves to loopback.",
};
pub const DEPLOY_TIMEOUT: Setting = Setting {
    name: "CCCI_DEPLOY_TIMEOUT",
    default: "`300` (5 minutes)",
    accepts: Accepts::Duration { default: 300, min: 1, max: DAY },
    meaning: "how long deploy (and upgrade) waits for convergence",
};
pub const PENDING_TIMEOUT: Setting = Setting {
    name: "CCCI_PENDING_TIMEOUT",
    default: "`60s`",
    accepts: Accepts::Duration { default: 60, min: 1, max: DAY },
    meaning: "how long a task may stay pending with the same scheduler reason (\"no suitable node …\", \"insufficient resources …\") before deploy or upgrade fails quoting it",
};
pub const SERVING_TIMEOUT: Setting = Setting {
    name: "CCCI_SERVING_TIMEOUT",
    default: "`60s`",
    accepts: Accepts::Duration { default: 60, min: 1, max: HOUR },
    meaning: "how long the serving check retries",
};
pub const TEARDOWN_TIMEOUT: Setting = Setting {
    name: "CCCI_TEARDOWN_TIMEOUT",
    default: "`180` (3 minutes)",
    accepts: Accepts::Duration { default: 180, min: 1, max: DAY },
    meaning: "how long teardown waits for the stack's containers to go, and (60 s at most) for its networks and volumes to become removable",
};
pub const LEASE_TTL: Setting = Setting {
    name: "CCCI_LEASE_TTL",
    default: "`15m`",
    accepts: Accepts::Duration { default: 15 * MIN, min: 1, max: DAY },
    meaning: "lease length in the run registry; every stage renews it every third of it while it runs",
};
pub const JANITOR_GRACE: Setting = Setting {
    name: "CCCI_JANITOR_GRACE",
    default: "`60s`",
    accepts: Accepts::Duration { default: 60, min: 0, max: DAY },
    meaning: "how long after its lease expired the janitor reaps a registered run",
};
pub const ORPHAN_GRACE: Setting = Setting {
    name: "CCCI_ORPHAN_GRACE",
    default: "`10m`",
    accepts: Accepts::Duration { default: 10 * MIN, min: 0, max: 7 * DAY },
    meaning: "how old the newest object of an unregistered ccci-named stack must be before the janitor reaps it",
};
pub const JANITOR_PARALLEL: Setting = Setting {
    name: "CCCI_JANITOR_PARALLEL",
    default: "`3`",
    accepts: Accepts::Count { default: 3, min: 1, max: 32 },
    meaning: "how many runs one janitor pass tears down at once",
};
pub const ARTIFACTS_TTL: Setting = Setting {
    name: "CCCI_ARTIFACTS_TTL",
    default: "`168h` (7 days)",
    accepts: Accepts::Duration { default: 7 * DAY, min: 0, max: 365 * DAY },
    meaning: "how long the janitor keeps the diagnostics of a run that is no longer registered",
};
pub const KEEP_ON_FAILURE: Setting = Setting {
    name: "CCCI_KEEP_ON_FAILURE",
    default: "off",
    accepts: Accepts::Flag,
    meaning: "on: `ccci-teardown --state` leaves a run with a failed or errored op deployed, for debugging",
};
pub const KEEP_TTL: Setting = Setting {
    name: "CCCI_KEEP_TTL",
    default: "`2h`",
    accepts: Accepts::Duration { default: 2 * HOUR, min: 1, max: 7 * DAY },
    meaning: "how long such a run is kept before the janitor reaps it",
};
pub const PROXY_URL: Setting = Setting {
    name: "CCCI_PROXY_URL",
    default: "unset",
    accepts: Accepts::Url,
    meaning: "the front door, e.g. `https://127.0.0.1:443`: serving checks also ask the app there, over HTTPS with the run's domain as SNI and `Host`, the certificate verified for the domain; `https` only, unless `CCCI_PROXY_ALLOW_HTTP` is on",
};
pub const PROXY_CA_FILE: Setting = Setting {
    name: "CCCI_PROXY_CA_FILE",
    default: "unset (the system's roots)",
    accepts: Accepts::File,
    meaning: "PEM file of the CA (or the wildcard certificate) the front door's certificate must chain to",
};
pub const PROXY_ALLOW_HTTP: Setting = Setting {
    name: "CCCI_PROXY_ALLOW_HTTP",
    default: "off",
    accepts: Accepts::Flag,
    meaning: "on: `CCCI_PROXY_URL` may be plain `http://` (tests); a visitor's front door is HTTPS",
};
pub const ABRA: Setting = Setting {
    name: "CCCI_ABRA",
    default: "`abra` on `PATH`",
    accepts: Accepts::Program,
    meaning: "the abra binary the abra driver runs (missing when run: exit 3)",
};
pub const ABRA_SERVER: Setting = Setting {
    name: "CCCI_ABRA_SERVER",
    default: "`default`",
    accepts: Accepts::ServerName,
    meaning: "the abra server name of the local swarm",
};
pub const RESTIC: Setting = Setting {
    name: "CCCI_RESTIC",
    default: "`restic` on `PATH`",
    accepts: Accepts::Program,
    meaning: "the restic binary (0.14 or later) the stack driver backs up and restores with, and every backup's evidence is read with (missing when run: exit 3)",
};
pub const BACKUPBOT_REPOSITORY: Setting = Setting {
    name: "CCCI_BACKUPBOT_REPOSITORY",
    default: "unset",
    accepts: Accepts::Dir,
    meaning: "abra driver: the restic repository backup-bot-two backs up into, as this host sees it (e.g. `/var/lib/docker/volumes/<backupbot stack>_backups/_data/restic`); the backup's evidence is read from it with the host's restic. Needed by `ccci-backup`/`ccci-restore` with the abra driver (missing: exit 3)",
};
pub const BACKUPBOT_PASSWORD_FILE: Setting = Setting {
    name: "CCCI_BACKUPBOT_PASSWORD_FILE",
    default: "unset",
    accepts: Accepts::File,
    meaning: "abra driver: a file holding that repository's password (backup-bot-two's `restic_password` secret); passed to restic by file, never read into ccci",
};
pub const OVERLAYS_DIR: Setting = Setting {
    name: "CCCI_OVERLAYS_DIR",
    default: "`<prefix>/share/ccci/overlays` next to the binary, if it exists; else none",
    accepts: Accepts::Dir,
    meaning: "cc-ci's per-recipe overlays (`<dir>/<recipe>/`): checks, install-steps hook, `settings.env`. The NixOS module sets the package's.",
};
pub const ALLOWLIST: Setting = Setting {
    name: "CCCI_ALLOWLIST",
    default: "`<prefix>/share/ccci/allowlist` next to the binary, if it exists; else none (deny all)",
    accepts: Accepts::File,
    meaning: "recipe repositories whose own `tests/` and `tests/install_steps.sh` may run: one repository identity per line (`host/owner/name`, a `https://`/`ssh://` URL or a local repository's absolute path; `#` comments). A bare recipe name is refused, naming the line. See [enrolling-a-recipe.md](enrolling-a-recipe.md#3-approve-the-recipes-own-checks-the-allowlist).",
};
pub const EXTERNAL_NETWORKS: Setting = Setting {
    name: "CCCI_EXTERNAL_NETWORKS",
    default: "`proxy`",
    accepts: Accepts::NetworkNames,
    meaning: "the external networks a recipe outside the allowlist may join; joining any other is host access, refused unless the recipe is approved. See [decisions.md](decisions.md#the-host-access-boundary).",
};
pub const CHECK_TIMEOUT: Setting = Setting {
    name: "CCCI_CHECK_TIMEOUT",
    default: "`120` (2 minutes)",
    accepts: Accepts::Duration { default: 120, min: 1, max: DAY },
    meaning: "how long one check or install-steps hook may run before it is killed with everything it started (`error`)",
};
pub const SETTLE_WINDOW: Setting = Setting {
    name: "CCCI_SETTLE_WINDOW",
    default: "`10s`",
    accepts: Accepts::Duration { default: 10, min: 0, max: HOUR },
    meaning: "how long the generic checks watch for restarting tasks, counted from the last change of the tasks that the last deploy, redeploy or restore saw before it converged (an assert that starts later looks once); `0` skips that check",
};
pub const SKIP_GENERIC: Setting = Setting {
    name: "CCCI_SKIP_GENERIC",
    default: "off",
    accepts: Accepts::Flag,
    meaning: "on: ccci-assert skips the generic checks of every op (recorded, with who asked)",
};
const fn skip_generic_of(name: &'static str) -> Setting {
    Setting { name, default: "off", accepts: Accepts::Flag, meaning: "on: the same for that one op" }
}
pub const SKIP_GENERIC_INSTALL: Setting = skip_generic_of("CCCI_SKIP_GENERIC_INSTALL");
pub const SKIP_GENERIC_UPGRADE: Setting = skip_generic_of("CCCI_SKIP_GENERIC_UPGRADE");
pub const SKIP_GENERIC_BACKUP: Setting = skip_generic_of("CCCI_SKIP_GENERIC_BACKUP");
pub const SKIP_GENERIC_RESTORE: Setting = skip_generic_of("CCCI_SKIP_GENERIC_RESTORE");
pub const SKIP_GENERIC_CUSTOM: Setting = skip_generic_of("CCCI_SKIP_GENERIC_CUSTOM");
pub const BRIDGE_FORGE_URL: Setting = Setting {
    name: "CCCI_BRIDGE_FORGE_URL",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::Url,
    meaning: "`ccci-bridge`: the forge (Gitea or Forgejo), e.g. `https://git.coopcloud.tech`; its API is below `/api/v1`",
};
pub const BRIDGE_FORGE_TOKEN_FILE: Setting = Setting {
    name: "CCCI_BRIDGE_FORGE_TOKEN_FILE",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::File,
    meaning: "`ccci-bridge`: file holding the bot's forge token (scopes in [bridge.md](bridge.md#the-bot-account)); sent only in the `Authorization` header",
};
pub const BRIDGE_ORG: Setting = Setting {
    name: "CCCI_BRIDGE_ORG",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::AccountName,
    meaning: "`ccci-bridge`: the organisation whose members may ask for a test run with `!testme`",
};
pub const BRIDGE_REPOS: Setting = Setting {
    name: "CCCI_BRIDGE_REPOS",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::Repositories,
    meaning: "`ccci-bridge`: the enrolled recipe repositories on the forge; `!testme` anywhere else is never seen",
};
pub const BRIDGE_DRONE_URL: Setting = Setting {
    name: "CCCI_BRIDGE_DRONE_URL",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::Url,
    meaning: "`ccci-bridge`: the Drone server that runs the recipe pipeline; build links point there",
};
pub const BRIDGE_DRONE_TOKEN_FILE: Setting = Setting {
    name: "CCCI_BRIDGE_DRONE_TOKEN_FILE",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::File,
    meaning: "`ccci-bridge`: file holding a Drone token with write access to `CCCI_BRIDGE_DRONE_REPO`; sent only in the `Authorization` header",
};
pub const BRIDGE_DRONE_REPO: Setting = Setting {
    name: "CCCI_BRIDGE_DRONE_REPO",
    default: "unset (required by `ccci-bridge`)",
    accepts: Accepts::Repository,
    meaning: "`ccci-bridge`: the Drone repository whose pipeline tests a recipe (it receives the build parameters of [bridge.md](bridge.md#the-build))",
};
pub const BRIDGE_GIT_BASE: Setting = Setting {
    name: "CCCI_BRIDGE_GIT_BASE",
    default: "`CCCI_BRIDGE_FORGE_URL`",
    accepts: Accepts::GitBase,
    meaning: "bridge builds: the pipeline clones `<base>/<owner>/<name>.git` (an SSH address of the forge, a mirror, or a directory of repositories)",
};
pub const BRIDGE_STATE_DIR: Setting = Setting {
    name: "CCCI_BRIDGE_STATE_DIR",
    default: "`<CCCI_STATE_DIR>/bridge`",
    accepts: Accepts::StateDir,
    meaning: "`ccci-bridge`: where its state file (`state.json`) and lock (`state.lock`) live",
};
pub const BRIDGE_LOOKBACK: Setting = Setting {
    name: "CCCI_BRIDGE_LOOKBACK",
    default: "`2h`",
    accepts: Accepts::Duration { default: 2 * HOUR, min: 0, max: 7 * DAY },
    meaning: "`ccci-bridge`: on a cold start (no saved cursor), how old a `!testme` comment may be and still count",
};
pub const BRIDGE_OVERLAP: Setting = Setting {
    name: "CCCI_BRIDGE_OVERLAP",
    default: "`60s`",
    accepts: Accepts::Duration { default: 60, min: 0, max: HOUR },
    meaning: "`ccci-bridge`: how far before its cursor each tick lists comments again (comments are de-duplicated by id)",
};
pub const BRIDGE_HTTP_TIMEOUT: Setting = Setting {
    name: "CCCI_BRIDGE_HTTP_TIMEOUT",
    default: "`30s`",
    accepts: Accepts::Duration { default: 30, min: 1, max: 10 * MIN },
    meaning: "`ccci-bridge`: how long one request to the forge or Drone may take; a timeout is retried next tick",
};

/// Every setting ccci reads, in the order `docs/operating.md` lists them.
pub const SETTINGS: &[Setting] = &[
    STATE_DIR,
    DOMAIN_SUFFIX,
    DEPLOY_TIMEOUT,
    PENDING_TIMEOUT,
    SERVING_TIMEOUT,
    TEARDOWN_TIMEOUT,
    LEASE_TTL,
    JANITOR_GRACE,
    ORPHAN_GRACE,
    JANITOR_PARALLEL,
    ARTIFACTS_TTL,
    KEEP_ON_FAILURE,
    KEEP_TTL,
    PROXY_URL,
    PROXY_CA_FILE,
    PROXY_ALLOW_HTTP,
    ABRA,
    ABRA_SERVER,
    RESTIC,
    BACKUPBOT_REPOSITORY,
    BACKUPBOT_PASSWORD_FILE,
    OVERLAYS_DIR,
    ALLOWLIST,
    EXTERNAL_NETWORKS,
    CHECK_TIMEOUT,
    SETTLE_WINDOW,
    SKIP_GENERIC,
    SKIP_GENERIC_INSTALL,
    SKIP_GENERIC_UPGRADE,
    SKIP_GENERIC_BACKUP,
    SKIP_GENERIC_RESTORE,
    SKIP_GENERIC_CUSTOM,
    BRIDGE_FORGE_URL,
    BRIDGE_FORGE_TOKEN_FILE,
    BRIDGE_ORG,
    BRIDGE_REPOS,
    BRIDGE_DRONE_URL,
    BRIDGE_DRONE_TOKEN_FILE,
    BRIDGE_DRONE_REPO,
    BRIDGE_GIT_BASE,
    BRIDGE_STATE_DIR,
    BRIDGE_LOOKBACK,
    BRIDGE_OVERLAP,
    BRIDGE_HTTP_TIMEOUT,
];

/// The settings each binary reads (every binary checks all of [`SETTINGS`] first), as its
/// `--help` names them (a test compares them). `CCCI_BRIDGE_GIT_BASE` is read by the pipeline's
/// steps, not by a binary.
pub const READ_BY: &[(&str, &[Setting])] = &[
    (
        "ccci-deploy",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            DEPLOY_TIMEOUT,
            PENDING_TIMEOUT,
            TEARDOWN_TIMEOUT,
            LEASE_TTL,
            ABRA,
            ABRA_SERVER,
            OVERLAYS_DIR,
            ALLOWLIST,
            EXTERNAL_NETWORKS,
            CHECK_TIMEOUT,
            PROXY_URL,
            PROXY_CA_FILE,
            PROXY_ALLOW_HTTP,
            SERVING_TIMEOUT,
        ],
    ),
    (
        "ccci-assert",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            LEASE_TTL,
            ABRA,
            ABRA_SERVER,
            OVERLAYS_DIR,
            ALLOWLIST,
            CHECK_TIMEOUT,
            SETTLE_WINDOW,
            SKIP_GENERIC,
            SKIP_GENERIC_INSTALL,
            SKIP_GENERIC_UPGRADE,
            SKIP_GENERIC_BACKUP,
            SKIP_GENERIC_RESTORE,
            SKIP_GENERIC_CUSTOM,
            PROXY_URL,
            PROXY_CA_FILE,
            PROXY_ALLOW_HTTP,
            SERVING_TIMEOUT,
            RESTIC,
            BACKUPBOT_REPOSITORY,
            BACKUPBOT_PASSWORD_FILE,
        ],
    ),
    (
        "ccci-upgrade",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            LEASE_TTL,
            DEPLOY_TIMEOUT,
            PENDING_TIMEOUT,
            ABRA,
            ABRA_SERVER,
            ALLOWLIST,
            EXTERNAL_NETWORKS,
        ],
    ),
    (
        "ccci-backup",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            LEASE_TTL,
            RESTIC,
            CHECK_TIMEOUT,
            OVERLAYS_DIR,
            ABRA,
            ABRA_SERVER,
            BACKUPBOT_REPOSITORY,
            BACKUPBOT_PASSWORD_FILE,
        ],
    ),
    (
        "ccci-restore",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            LEASE_TTL,
            RESTIC,
            DEPLOY_TIMEOUT,
            PENDING_TIMEOUT,
            CHECK_TIMEOUT,
            OVERLAYS_DIR,
            ABRA,
            ABRA_SERVER,
            BACKUPBOT_REPOSITORY,
            BACKUPBOT_PASSWORD_FILE,
        ],
    ),
    (
        "ccci-teardown",
        &[STATE_DIR, DOMAIN_SUFFIX, LEASE_TTL, TEARDOWN_TIMEOUT, KEEP_ON_FAILURE, KEEP_TTL, ABRA, ABRA_SERVER],
    ),
    (
        "ccci-janitor",
        &[
            STATE_DIR,
            DOMAIN_SUFFIX,
            LEASE_TTL,
            JANITOR_GRACE,
            ORPHAN_GRACE,
            JANITOR_PARALLEL,
            ARTIFACTS_TTL,
            TEARDOWN_TIMEOUT,
            ABRA,
            ABRA_SERVER,
        ],
    ),
    ("ccci-report", &[]),
    (
        "ccci-bridge",
        &[
            BRIDGE_FORGE_URL,
            BRIDGE_FORGE_TOKEN_FILE,
            BRIDGE_ORG,
            BRIDGE_REPOS,
            BRIDGE_DRONE_URL,
            BRIDGE_DRONE_TOKEN_FILE,
            BRIDGE_DRONE_REPO,
            BRIDGE_STATE_DIR,
            STATE_DIR,
            BRIDGE_LOOKBACK,
            BRIDGE_OVERLAP,
            BRIDGE_HTTP_TIMEOUT,
        ],
    ),
];

/// The variables ccci sets for the programs it runs and never reads itself: each check's and
/// hook's environment (`docs/writing-checks.md`, a test compares them), the build parameters the
/// bridge gives Drone (`docs/bridge.md`) and git's credentials for one clone.
pub mod given {
    /// An empty directory of the check's own: its working directory, `HOME` and `TMPDIR`.
    pub const WORK_DIR: &str = "CCCI_WORK_DIR";
    /// The op the check is for (`install`, ..., `install-steps`).
    pub const OP: &str = "CCCI_OP";
    pub const RUN_ID: &str = "CCCI_RUN_ID";
    pub const RECIPE: &str = "CCCI_RECIPE";
    pub const DOMAIN: &str = "CCCI_DOMAIN";
    /// Where the app answers from this host, when it does.
    pub const URL: &str = "CCCI_URL";
    pub const STACK: &str = "CCCI_STACK";
    /// The PR head commit, once it is known.
    pub const COMMIT: &str = "CCCI_COMMIT";
    /// A read-only copy of the run-state.
    pub const STATE: &str = "CCCI_STATE";
    /// Every check's variables, in the order `docs/writing-checks.md` lists them.
    pub const CHECK: &[&str] = &[OP, RUN_ID, RECIPE, DOMAIN, URL, STACK, COMMIT, STATE, WORK_DIR];

    /// The install-steps hook's app env file.
    pub const ENV_FILE: &str = "CCCI_ENV_FILE";
    /// The install-steps hook's recipe checkout.
    pub const RECIPE_DIR: &str = "CCCI_RECIPE_DIR";
    /// The install-steps hook's variables besides [`CHECK`]'s, as `docs/writing-checks.md` lists them.
    pub const HOOK: &[&str] = &[ENV_FILE, RECIPE_DIR];

    /// The build parameters of a bridge build, in the order sent.
    pub const BUILD_PARAMS: [&str; 5] = [REQUEST_ID, "CCCI_RECIPE_REPO", "CCCI_PR", "CCCI_HEAD_SHA", "CCCI_TRIGGER"];
    /// The build parameter that names the bridge's request.
    pub const REQUEST_ID: &str = "CCCI_REQUEST_ID";

    /// git's credentials for one clone, read by its credential helper (never in argv).
    pub const GIT_USERNAME: &str = "CCCI_GIT_USERNAME";
    pub const GIT_PASSWORD: &str = "CCCI_GIT_PASSWORD";
}

/// Where settings are read from: the environment, or a table in tests.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn from_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Checks every setting in the environment against [`SETTINGS`]. Bad input (exit 2) on the first
/// malformed or out-of-range value, naming it and what it accepts.
pub fn check_all() -> Result<()> {
    check_all_in(&from_env)
}

/// [`check_all`] over any lookup.
pub fn check_all_in(lookup: Lookup<'_>) -> Result<()> {
    SETTINGS.iter().try_for_each(|s| s.check(lookup))?;
    // Settings that only mean something together: the front door (https unless plain http is
    // allowed; a CA file that holds PEM certificates).
    if let Some(url) = PROXY_URL.raw(lookup)? {
        let ca = PROXY_CA_FILE.raw(lookup)?.map(PathBuf::from);
        let allow_http = match PROXY_ALLOW_HTTP.raw(lookup)? {
            Some(v) => PROXY_ALLOW_HTTP.flag_value(&v)?,
            None => false,
        };
        crate::checks::frontdoor::FrontDoor::parse(&url, ca.as_deref(), allow_http)?;
    }
    Ok(())
}

impl Accepts {
    /// The accepted values, as the docs and the error lines say them.
    pub fn describe(&self) -> String {
        match *self {
            Accepts::Duration { min, max, .. } => format!("a duration from `{}` to `{}`", show(min), show(max)),
            Accepts::Count { min, max, .. } => format!("a whole number from {min} to {max}"),
            Accepts::Flag => "`1`, `0`, `true` or `false`".into(),
            Accepts::StateDir => "an absolute path to a writable directory, or to one that can be created".into(),
            Accepts::Dir => "an absolute path to an existing directory".into(),
            Accepts::File => "an absolute path to an existing file".into(),
            Accepts::Program => "a command name (looked up on `PATH`) or an absolute path".into(),
            Accepts::Url => "an `http://` or `https://` URL: host and optional port, no credentials".into(),
            Accepts::DomainSuffix => {
                "a lowercase domain name short enough that `<run id>_<suffix>` stays within 45 characters".into()
            }
            Accepts::ServerName => "letters, digits, `.`, `_` and `-`, not starting with `.` or `-`".into(),
            Accepts::NetworkNames => "Docker network names separated by commas or spaces, never `host`".into(),
            Accepts::AccountName => "a forge account name: letters, digits, `-`, `_` and `.`".into(),
            Accepts::Repository => "a repository `owner/name`".into(),
            Accepts::Repositories => "repositories `owner/name` separated by commas or spaces".into(),
            Accepts::GitBase => {
                "an `https://` or `ssh://` URL without credentials, or an absolute path to a directory".into()
            }
        }
    }
}

/// `300` → `5m`, `7200` → `2h`, `90` → `90s`.
fn show(secs: u64) -> String {
    match secs {
        0 => "0s".into(),
        s if s % HOUR == 0 => format!("{}h", s / HOUR),
        s if s % MIN == 0 => format!("{}m", s / MIN),
        s => format!("{s}s"),
    }
}

impl Setting {
    /// The value, `None` when unset or empty; bad input when it is not UTF-8.
    fn raw(&self, lookup: Lookup<'_>) -> Result<Option<String>> {
        match lookup(self.name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .map_err(|v| Error::bad_input(format!("{}={v:?}: not UTF-8; expected {}", self.name, self.expected()))),
        }
    }

    fn refuse(&self, value: &str, why: &str) -> Error {
        // A URL's credentials are never echoed: stderr ends up in public CI logs.
        let redacted;
        let value = match value.split_once("://").and_then(|(s, rest)| Some((s, rest.split_once('@')?.1))) {
            Some((scheme, host)) if self.accepts == Accepts::Url => {
                redacted = format!("{scheme}://***@{host}");
                redacted.as_str()
            }
            _ => value,
        };
        let why = if why.is_empty() { String::new() } else { format!("{why}; ") };
        Error::bad_input(format!("{}={value:?}: {why}expected {}", self.name, self.expected()))
    }

    /// What the setting accepts, as every refusal says it: plain words, no Markdown backticks.
    fn expected(&self) -> String {
        self.accepts.describe().replace('`', "")
    }

    /// Checks the value (if set) against what the setting accepts.
    pub fn check(&self, lookup: Lookup<'_>) -> Result<()> {
        let Some(v) = self.raw(lookup)? else { return Ok(()) };
        match self.accepts {
            Accepts::Duration { .. } => self.duration_value(&v).map(drop),
            Accepts::Count { .. } => self.count_value(&v).map(drop),
            Accepts::Flag => self.flag_value(&v).map(drop),
            Accepts::StateDir => self.state_dir_value(&v).map(drop),
            Accepts::Dir | Accepts::File => self.existing_path_value(&v).map(drop),
            Accepts::Program => self.program_value(&v).map(drop),
            Accepts::Url => self.url_value(&v).map(drop),
            Accepts::DomainSuffix => self.domain_value(&v).map(drop),
            Accepts::ServerName => self.server_value(&v).map(drop),
            Accepts::NetworkNames => self.network_names_value(&v).map(drop),
            Accepts::AccountName => self.account_value(&v).map(drop),
            Accepts::Repository => self.repository_value(&v).map(drop),
            Accepts::Repositories => self.repositories_value(&v).map(drop),
            Accepts::GitBase => self.git_base_value(&v).map(drop),
        }
    }

    fn duration_value(&self, v: &str) -> Result<Duration> {
        let Accepts::Duration { min, max, .. } = self.accepts else { unreachable!("{} is a duration", self.name) };
        let d = crate::time::parse_duration(v).ok_or_else(|| self.refuse(v, "not a duration"))?;
        if d.as_secs() < min || d.as_secs() > max {
            return Err(self.refuse(v, "out of range"));
        }
        Ok(d)
    }

    fn count_value(&self, v: &str) -> Result<u64> {
        let Accepts::Count { min, max, .. } = self.accepts else { unreachable!("{} is a count", self.name) };
        v.parse::<u64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| self.refuse(v, ""))
    }

    fn flag_value(&self, v: &str) -> Result<bool> {
        match v {
            "1" | "true" => Ok(true),
            "0" | "false" => Ok(false),
            _ => Err(self.refuse(v, "")),
        }
    }

    fn absolute(&self, v: &str) -> Result<PathBuf> {
        let p = PathBuf::from(v);
        if !p.is_absolute() {
            return Err(self.refuse(v, "not an absolute path"));
        }
        if p.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(self.refuse(v, "contains `..`"));
        }
        Ok(p)
    }

    fn state_dir_value(&self, v: &str) -> Result<PathBuf> {
        let p = self.absolute(v)?;
        writable_dir(&p).map_err(|why| self.refuse(v, &why))?;
        Ok(p)
    }

    fn existing_path_value(&self, v: &str) -> Result<PathBuf> {
        let p = self.absolute(v)?;
        let ok = match self.accepts {
            Accepts::Dir => p.is_dir(),
            _ => p.is_file(),
        };
        if !ok {
            let what = if self.accepts == Accepts::Dir { "no such directory" } else { "no such file" };
            return Err(self.refuse(v, what));
        }
        Ok(p)
    }

    fn program_value(&self, v: &str) -> Result<PathBuf> {
        if v.contains('/') {
            return self.absolute(v);
        }
        if v.trim() != v || v.chars().any(char::is_control) {
            return Err(self.refuse(v, ""));
        }
        Ok(PathBuf::from(v))
    }

    fn url_value(&self, v: &str) -> Result<String> {
        let uri: ureq::http::Uri = v.parse().map_err(|_| self.refuse(v, "not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(self.refuse(v, "not http or https"));
        }
        let Some(authority) = uri.authority() else { return Err(self.refuse(v, "no host")) };
        if authority.as_str().contains('@') {
            return Err(self.refuse(v, "credentials in the URL"));
        }
        if authority.host().is_empty() {
            return Err(self.refuse(v, "no host"));
        }
        if authority.as_str().contains(':') && authority.port_u16().is_none() && !authority.host().starts_with('[') {
            return Err(self.refuse(v, "bad port"));
        }
        Ok(v.to_string())
    }

    fn domain_value(&self, v: &str) -> Result<crate::run::naming::Domain> {
        let d = crate::run::naming::Domain::parse(v).map_err(|e| self.refuse(v, e.message()))?;
        // The longest run id there is: 4 characters, a hyphen and 6 hex digits.
        let longest = crate::run::naming::RunId::parse("xxxx-000000").expect("a valid run id");
        crate::run::naming::Domain::for_run(&longest, &d).map_err(|e| self.refuse(v, e.message()))?;
        Ok(d)
    }

    fn network_names_value(&self, v: &str) -> Result<Vec<String>> {
        let names: Vec<String> =
            v.split(|c: char| c == ',' || c.is_whitespace()).filter(|n| !n.is_empty()).map(String::from).collect();
        for n in &names {
            let valid = n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && n.as_bytes()[0].is_ascii_alphanumeric();
            if !valid {
                return Err(self.refuse(v, &format!("{n:?} is not a network name")));
            }
            if n == "host" {
                return Err(self.refuse(v, "joining `host` is host access, which needs the recipe in the allowlist"));
            }
        }
        if names.is_empty() {
            return Err(self.refuse(v, "no network name"));
        }
        Ok(names)
    }

    fn git_base_value(&self, v: &str) -> Result<String> {
        if v.starts_with('/') {
            return self
                .absolute(v)
                .and_then(|p| if p.is_dir() { Ok(v.to_string()) } else { Err(self.refuse(v, "no such directory")) });
        }
        let Some((scheme, rest)) = v.split_once("://") else { return Err(self.refuse(v, "")) };
        let host = rest.split('/').next().unwrap_or("");
        if !matches!(scheme, "https" | "ssh")
            || host.is_empty()
            || v.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(self.refuse(v, ""));
        }
        if host.contains('@') && scheme == "https" {
            return Err(self.refuse(
                &format!("{scheme}://***@{}", host.rsplit('@').next().unwrap_or("")),
                "credentials in the URL",
            ));
        }
        Ok(v.trim_end_matches('/').to_string())
    }

    fn account_value(&self, v: &str) -> Result<String> {
        if is_account(v) { Ok(v.to_string()) } else { Err(self.refuse(v, "")) }
    }

    fn repository_value(&self, v: &str) -> Result<String> {
        match v.split_once('/') {
            Some((owner, name)) if is_account(owner) && is_account(name) => Ok(v.to_string()),
            _ => Err(self.refuse(v, "")),
        }
    }

    fn repositories_value(&self, v: &str) -> Result<Vec<String>> {
        let repos: Vec<&str> = v.split(|c: char| c == ',' || c.is_whitespace()).filter(|n| !n.is_empty()).collect();
        if repos.is_empty() {
            return Err(self.refuse(v, "no repository"));
        }
        repos
            .into_iter()
            .map(|r| self.repository_value(r).map_err(|_| self.refuse(v, &format!("{r:?} is not `owner/name`"))))
            .collect()
    }

    fn server_value(&self, v: &str) -> Result<String> {
        if v.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) && !v.starts_with(['-', '.']) {
            Ok(v.to_string())
        } else {
            Err(self.refuse(v, ""))
        }
    }
}

/// A forge account, organisation or repository name as Gitea accepts them (its `alphaDashDot`
/// rule): ASCII letters, digits, `-`, `_` and `.`, not `.` or `..`, at most 100 characters.
fn is_account(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 100
        && v != "."
        && v != ".."
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Whether ccci can write in `dir`: it is a directory that takes a new file, or it does not exist
/// and its nearest existing ancestor does. Tried by creating (and removing at once) a probe file,
/// because permission bits do not tell: root writes anywhere except on a read-only mount.
pub fn writable_dir(dir: &Path) -> std::result::Result<(), String> {
    let mut at = dir;
    loop {
        match fs_err::metadata(at) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("{} is not a directory", at.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                at = at.parent().ok_or_else(|| "no existing ancestor".to_string())?;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let probe = at.join(format!(".ccci-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(format!("{} is not writable ({e})", at.display())),
    }
}

fn get<T>(s: &Setting, parse: impl FnOnce(&Setting, &str) -> Result<T>) -> Result<Option<T>> {
    match s.raw(&from_env)? {
        Some(v) => parse(s, &v).map(Some),
        None => Ok(None),
    }
}

/// A duration setting's value, or its default.
pub fn duration(s: &Setting) -> Result<Duration> {
    let Accepts::Duration { default, .. } = s.accepts else { unreachable!("{} is a duration", s.name) };
    Ok(get(s, Setting::duration_value)?.unwrap_or(Duration::from_secs(default)))
}

/// A count setting's value, or its default.
pub fn count(s: &Setting) -> Result<u64> {
    let Accepts::Count { default, .. } = s.accepts else { unreachable!("{} is a count", s.name) };
    Ok(get(s, Setting::count_value)?.unwrap_or(default))
}

/// A flag setting: `Some(value as written)` when on, `None` when off or unset.
pub fn flag(s: &Setting) -> Result<Option<String>> {
    match s.raw(&from_env)? {
        Some(v) if s.flag_value(&v)? => Ok(Some(v)),
        _ => Ok(None),
    }
}

/// `CCCI_STATE_DIR`: the run registry and per-run workspaces, outside any CI workspace. Defaults
/// to `$XDG_STATE_HOME/ccci` (or `~/.local/state/ccci`) for a person at a shell; the NixOS
/// module sets `/var/lib/ccci`.
pub fn state_dir() -> Result<PathBuf> {
    if let Some(d) = get(&STATE_DIR, Setting::state_dir_value)? {
        return Ok(d);
    }
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("ccci"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/state/ccci")),
        None => Err(Error::env("cannot place the run registry: set CCCI_STATE_DIR (or HOME)")),
    }
}

/// `CCCI_DOMAIN_SUFFIX`, or `ccci.localhost`.
pub fn domain_suffix() -> Result<crate::run::naming::Domain> {
    match get(&DOMAIN_SUFFIX, Setting::domain_value)? {
        Some(d) => Ok(d),
        None => crate::run::naming::Domain::parse(crate::run::naming::DEFAULT_DOMAIN_SUFFIX),
    }
}

/// How long deploy waits for the stack to converge (`CCCI_DEPLOY_TIMEOUT`).
pub fn deploy_timeout() -> Result<Duration> {
    duration(&DEPLOY_TIMEOUT)
}

/// How long a task may stay pending for the same scheduler reason ("no suitable node",
/// "insufficient resources") before the wait gives up (`CCCI_PENDING_TIMEOUT`, default 60 s).
pub fn pending_timeout() -> Result<Duration> {
    duration(&PENDING_TIMEOUT)
}

/// How long the serving check retries (`CCCI_SERVING_TIMEOUT`).
pub fn serving_timeout() -> Result<Duration> {
    duration(&SERVING_TIMEOUT)
}

/// How long teardown waits for the stack's tasks and containers to go (`CCCI_TEARDOWN_TIMEOUT`).
pub fn teardown_timeout() -> Result<Duration> {
    duration(&TEARDOWN_TIMEOUT)
}

/// `CCCI_KEEP_ON_FAILURE=1`: how long a failed run stays deployed for debugging
/// (`CCCI_KEEP_TTL`, default 2 hours), or `None` when failed runs are torn down as usual.
pub fn keep_on_failure() -> Result<Option<Duration>> {
    let ttl = duration(&KEEP_TTL)?;
    Ok(flag(&KEEP_ON_FAILURE)?.map(|_| ttl))
}

/// `CCCI_PROXY_URL`, `CCCI_PROXY_CA_FILE` and `CCCI_PROXY_ALLOW_HTTP` as given (each checked
/// alone; [`crate::checks::frontdoor::FrontDoor::from_env`] checks them together).
pub fn proxy_settings() -> Result<(Option<String>, Option<PathBuf>, bool)> {
    Ok((
        get(&PROXY_URL, Setting::url_value)?,
        get(&PROXY_CA_FILE, Setting::existing_path_value)?,
        flag(&PROXY_ALLOW_HTTP)?.is_some(),
    ))
}

/// `CCCI_ABRA`: the abra binary (default `abra` on PATH).
pub fn abra_program() -> PathBuf {
    get(&ABRA, Setting::program_value).ok().flatten().unwrap_or_else(|| "abra".into())
}

/// `CCCI_RESTIC`: the restic binary (default `restic` on PATH).
pub fn restic_program() -> PathBuf {
    get(&RESTIC, Setting::program_value).ok().flatten().unwrap_or_else(|| "restic".into())
}

/// `CCCI_BACKUPBOT_REPOSITORY` and `CCCI_BACKUPBOT_PASSWORD_FILE`, when set: an existing
/// directory and an existing file, absolute.
pub fn backupbot() -> Result<(Option<PathBuf>, Option<PathBuf>)> {
    Ok((
        get(&BACKUPBOT_REPOSITORY, Setting::existing_path_value)?,
        get(&BACKUPBOT_PASSWORD_FILE, Setting::existing_path_value)?,
    ))
}

/// `CCCI_ABRA_SERVER`: the abra server name of the local swarm (default `default`).
pub fn abra_server() -> Result<String> {
    Ok(get(&ABRA_SERVER, Setting::server_value)?.unwrap_or_else(|| "default".into()))
}

/// `<prefix>/share/ccci` of an installed ccci, found from the running binary (`<prefix>/bin/`):
/// the Nix package's `$out`, or `/usr` and `/usr/local` for a conventional install. A binary
/// run from a cargo `target/` directory has none. Where the overlays and the allowlist are when
/// their settings are unset.
pub fn share_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?.join("share/ccci");
    dir.is_dir().then_some(dir)
}

/// `CCCI_OVERLAYS_DIR`, when set: an existing directory, absolute.
pub fn overlays_dir() -> Result<Option<PathBuf>> {
    get(&OVERLAYS_DIR, Setting::existing_path_value)
}

/// `CCCI_ALLOWLIST`, when set: an existing file, absolute.
pub fn allowlist_file() -> Result<Option<PathBuf>> {
    get(&ALLOWLIST, Setting::existing_path_value)
}

/// `CCCI_SKIP_GENERIC` and the op's `CCCI_SKIP_GENERIC_<OP>`: which of them asked to skip the
/// generic checks of `op`, as `NAME=value`.
/// `CCCI_EXTERNAL_NETWORKS`: the external networks a recipe outside the allowlist may join
/// (default `["proxy"]`, the network Co-op Cloud's traefik serves apps on). `host` is never
/// among them.
pub fn external_networks() -> Result<Vec<String>> {
    match EXTERNAL_NETWORKS.raw(&from_env)? {
        Some(v) => EXTERNAL_NETWORKS.network_names_value(&v),
        None => Ok(vec!["proxy".to_string()]),
    }
}

/// A required setting of `ccci-bridge`: bad input (exit 2) naming it when unset.
fn required<T>(s: &Setting, parse: impl FnOnce(&Setting, &str) -> Result<T>) -> Result<T> {
    get(s, parse)?.ok_or_else(|| {
        Error::bad_input(format!(
            "{} is not set; `ccci-bridge` needs {}",
            s.name,
            s.accepts.describe().replace('`', "")
        ))
    })
}

/// `CCCI_BRIDGE_FORGE_URL` (required), without a trailing `/`.
pub fn bridge_forge_url() -> Result<String> {
    Ok(required(&BRIDGE_FORGE_URL, Setting::url_value)?.trim_end_matches('/').to_string())
}

/// `CCCI_BRIDGE_FORGE_TOKEN_FILE` (required): an existing file, absolute.
pub fn bridge_forge_token_file() -> Result<PathBuf> {
    required(&BRIDGE_FORGE_TOKEN_FILE, Setting::existing_path_value)
}

/// `CCCI_BRIDGE_ORG` (required).
pub fn bridge_org() -> Result<String> {
    required(&BRIDGE_ORG, Setting::account_value)
}

/// `CCCI_BRIDGE_REPOS` (required): `owner/name`, at least one, in the order given.
pub fn bridge_repos() -> Result<Vec<String>> {
    required(&BRIDGE_REPOS, Setting::repositories_value)
}

/// `CCCI_BRIDGE_DRONE_URL` (required), without a trailing `/`.
pub fn bridge_drone_url() -> Result<String> {
    Ok(required(&BRIDGE_DRONE_URL, Setting::url_value)?.trim_end_matches('/').to_string())
}

/// `CCCI_BRIDGE_DRONE_TOKEN_FILE` (required): an existing file, absolute.
pub fn bridge_drone_token_file() -> Result<PathBuf> {
    required(&BRIDGE_DRONE_TOKEN_FILE, Setting::existing_path_value)
}

/// `CCCI_BRIDGE_DRONE_REPO` (required): `owner/name`.
pub fn bridge_drone_repo() -> Result<String> {
    required(&BRIDGE_DRONE_REPO, Setting::repository_value)
}

/// `CCCI_BRIDGE_STATE_DIR`, or `<CCCI_STATE_DIR>/bridge`.
pub fn bridge_state_dir() -> Result<PathBuf> {
    match get(&BRIDGE_STATE_DIR, Setting::state_dir_value)? {
        Some(d) => Ok(d),
        None => Ok(state_dir()?.join("bridge")),
    }
}

pub fn skip_generic(op: &str) -> Result<Option<String>> {
    let per_op = SETTINGS.iter().find(|s| s.name.strip_prefix("CCCI_SKIP_GENERIC_") == Some(&op.to_ascii_uppercase()));
    let mut asked = None;
    for s in std::iter::once(&SKIP_GENERIC).chain(per_op) {
        if let Some(v) = flag(s)? {
            asked = Some(format!("{}={v}", s.name));
        }
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(name: &'static str, value: &str) -> impl Fn(&str) -> Option<OsString> {
        let value = OsString::from(value);
        move |n: &str| (n == name).then(|| value.clone())
    }

    /// Values each kind must refuse, besides the ones the bounds give.
    fn bad_values(s: &Setting) -> Vec<String> {
        let mut v: Vec<String> = match s.accepts {
            Accepts::Duration { min, max, .. } => {
                let mut v: Vec<String> =
                    ["soon", "-1", "1.5", "10 s", "5d", "18446744073709551615", "18446744073709551615s", "1e3"]
                        .map(String::from)
                        .into();
                v.push(format!("{}", max + 1));
                if min > 0 {
                    v.push(format!("{}", min - 1));
                }
                v
            }
            Accepts::Count { min, max, .. } => {
                vec!["lots".into(), "-1".into(), "1.0".into(), format!("{}", min - 1), format!("{}", max + 1)]
            }
            Accepts::Flag => ["maybe", "yes", "no", "2", "TRUE", " 1", "on"].map(String::from).into(),
            Accepts::StateDir => vec![
                "relative/state".into(),
                "/tmp/../etc".into(),
                "/proc/ccci-state".into(),
                "/etc/hostname/state".into(),
            ],
            Accepts::Dir => vec!["relative".into(), "/nonexistent/ccci".into(), "/etc/hostname".into()],
            Accepts::File => vec!["relative".into(), "/nonexistent/ccci".into(), "/etc".into()],
            Accepts::Program => vec!["bin/abra".into(), "./abra".into(), " abra".into()],
            Accepts::Url => [
                "127.0.0.1:80",
                "ftp://127.0.0.1",
                "http://",
                "http://user:token@127.0.0.1",
                "http://127.0.0.1:99999",
                "not a url",
            ]
            .map(String::from)
            .into(),
            Accepts::DomainSuffix => vec!["CI_Zone!.example".into(), format!("{}.example", "a".repeat(40))],
            Accepts::ServerName => vec!["../evil".into(), "-x".into(), "a b".into()],
            Accepts::NetworkNames => {
                ["host", "proxy,host", "proxy host", "-x", "a/b", "$(id)", " , "].map(String::from).into()
            }
            Accepts::AccountName => ["a b", "a/b", "..", "$(id)", "é"].map(String::from).into(),
            Accepts::Repository => ["hello", "a/b/c", "a/", "/b", "a b/c", "../x", "a/b,c/d"].map(String::from).into(),
            Accepts::Repositories => ["hello", "a/b,c", "a/b x/y/z", " , ", "a/../b"].map(String::from).into(),
            Accepts::GitBase => {
                ["http://forge.example", "relative/dir", "/nonexistent/repos", "https://", "ftp://x", "/tmp/../etc"]
                    .map(String::from)
                    .into()
            }
        };
        v.push("\u{0}".into());
        v
    }

    #[test]
    fn every_setting_refuses_bad_values_naming_itself_and_what_it_accepts() {
        for s in SETTINGS {
            for bad in bad_values(s) {
                let e = check_all_in(&only(s.name, &bad)).expect_err(&format!("{}={bad:?} accepted", s.name));
                assert_eq!(e.kind(), crate::Kind::BadInput, "{}={bad:?}", s.name);
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{}=", s.name)), "{msg}");
                assert!(msg.contains(&s.accepts.describe().replace('`', "")), "{msg}");
                assert!(!msg.contains('\n'), "one line: {msg}");
            }
        }
    }

    #[test]
    fn non_utf8_values_are_refused() {
        use std::os::unix::ffi::OsStringExt;
        for s in SETTINGS {
            let lookup = |n: &str| (n == s.name).then(|| OsString::from_vec(vec![0x66, 0xff]));
            let e = check_all_in(&lookup).unwrap_err();
            assert!(e.to_string().starts_with(s.name) && e.to_string().contains("not UTF-8"), "{e}");
            assert!(!e.to_string().contains('`'), "worded like every other refusal: {e}");
        }
    }

    #[test]
    fn unset_and_empty_settings_are_accepted() {
        check_all_in(&|_| None).unwrap();
        check_all_in(&|_| Some(OsString::new())).unwrap();
    }

    #[test]
    fn good_values_are_accepted() {
        let dir = std::env::temp_dir();
        let file = std::env::current_exe().unwrap();
        let good = |s: &Setting| -> Vec<String> {
            match s.accepts {
                Accepts::Duration { min, max, default } => {
                    vec![show(min), show(max), format!("{max}"), format!("{default}")]
                }
                Accepts::Count { min, max, .. } => vec![min.to_string(), max.to_string()],
                Accepts::Flag => ["1", "0", "true", "false"].map(String::from).into(),
                Accepts::StateDir => {
                    vec![dir.display().to_string(), dir.join("ccci-not-yet/state").display().to_string()]
                }
                Accepts::Dir => vec![dir.display().to_string()],
                Accepts::File => vec![file.display().to_string()],
                Accepts::Program => vec!["abra".into(), "/nonexistent/abra".into()],
                Accepts::Url => vec!["https://127.0.0.1:443".into(), "https://proxy.example/".into()],
                Accepts::DomainSuffix => vec!["ci.example.org".into(), "ccci.localhost".into()],
                Accepts::ServerName => vec!["default".into(), "ci.example.org".into()],
                Accepts::NetworkNames => vec!["proxy".into(), "proxy,monitoring backup_net".into()],
                Accepts::AccountName => vec!["coop-cloud".into(), "Recipe_Maintainers.x".into()],
                Accepts::Repository => vec!["coop-cloud/hello".into(), "ci/recipe-ci.drone".into()],
                Accepts::Repositories => vec!["coop-cloud/hello".into(), "coop-cloud/a, coop-cloud/b  x/y".into()],
                Accepts::GitBase => vec![
                    "https://git.coopcloud.tech".into(),
                    "ssh://git@git.coopcloud.tech:2222".into(),
                    dir.display().to_string(),
                ],
            }
        };
        for s in SETTINGS {
            for v in good(s) {
                check_all_in(&only(s.name, &v)).unwrap_or_else(|e| panic!("{}={v:?} refused: {e}", s.name));
            }
        }
    }

    #[test]
    fn external_networks_split_on_commas_and_spaces_and_never_include_host() {
        assert_eq!(
            EXTERNAL_NETWORKS.network_names_value("proxy,monitoring  backup_net").unwrap(),
            vec!["proxy", "monitoring", "backup_net"]
        );
        let e = EXTERNAL_NETWORKS.network_names_value("proxy,host").unwrap_err();
        assert!(e.to_string().contains("joining `host` is host access"), "{e}");
    }

    #[test]
    fn the_front_door_settings_are_checked_together() {
        let dir = std::env::temp_dir().join(format!("ccci-config-proxy-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.txt");
        fs_err::write(&not_pem, "not a certificate\n").unwrap();
        let not_pem = not_pem.display().to_string();
        let with = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            check_all_in(&move |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| OsString::from(v)))
        };
        let e = with(&[("CCCI_PROXY_URL", "http://127.0.0.1:80")]).unwrap_err();
        assert_eq!(e.kind(), crate::Kind::BadInput);
        assert!(e.message().contains("CCCI_PROXY_ALLOW_HTTP=1"), "{e}");
        with(&[("CCCI_PROXY_URL", "http://127.0.0.1:80"), ("CCCI_PROXY_ALLOW_HTTP", "1")]).unwrap();
        let e = with(&[("CCCI_PROXY_URL", "https://127.0.0.1"), ("CCCI_PROXY_CA_FILE", &not_pem)]).unwrap_err();
        assert!(e.message().contains("holds no PEM certificate"), "{e}");
        let e = with(&[("CCCI_PROXY_URL", "https://127.0.0.1/app")]).unwrap_err();
        assert!(e.message().contains("path or query"), "{e}");
        fs_err::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lease_of_two_to_the_64_seconds_is_refused_not_wrapped() {
        let e = check_all_in(&only("CCCI_LEASE_TTL", "18446744073709551615")).unwrap_err();
        assert!(e.to_string().contains("from 1s to 24h"), "{e}");
    }

    #[test]
    fn every_default_is_within_its_bounds() {
        for s in SETTINGS {
            if let Accepts::Duration { default, min, max } | Accepts::Count { default, min, max } = s.accepts {
                assert!((min..=max).contains(&default), "{}", s.name);
            }
        }
    }
}
