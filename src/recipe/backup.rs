//! The backup label contract ccci tests: Co-op Cloud's backupbot labels
//! (<https://docs.coopcloud.tech/specs/backup/spec>), merged across **all** services of the stack
//! after interpolation (real recipes put them on several services, each with its own hooks), and
//! the overlay's `BACKUP=0|1` override.
//!
//! | label (a service's `deploy.labels`) | meaning here |
//! |---|---|
//! | `backupbot.backup` | `true` (case-insensitive, trimmed) on any service: the recipe is backup-capable; any other value (`false`, `""`) is not `true` |
//! | `backupbot.backup.volumes.<vol>` = `false` | leaves volume `<vol>` (the compose key) out; every volume is in by default |
//! | `backupbot.backup.volumes.<vol>.path` = `a,b` | limits `<vol>` to these paths, relative to its root |
//! | `backupbot.backup.path` = `/x,/y` | the older form: absolute paths inside that service's container, each limiting the volume mounted over it |
//! | `backupbot.backup.pre-hook`, `.post-hook`; `backupbot.restore.pre-hook`, `.post-hook` | commands run (`sh -c`) in that service's running container around the backup and the restore |
//!
//! Labels of several services merge: a volume left out anywhere is out; path lists add up. Any
//! other `backupbot.*` label is listed as not understood and ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const BACKUP: &str = "backupbot.backup";
const VOLUMES: &str = "backupbot.backup.volumes.";
const LEGACY_PATH: &str = "backupbot.backup.path";

/// One service as the contract reads it: its short name, its (interpolated) deploy labels and
/// its volume mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInput {
    /// The short service name (`app`, `db`).
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `(volume key, target inside the container)` of each `type: volume` mount.
    pub mounts: Vec<(String, String)>,
}

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    BackupPre,
    BackupPost,
    RestorePre,
    RestorePost,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::BackupPre, Phase::BackupPost, Phase::RestorePre, Phase::RestorePost];
    /// The label that declares it, e.g. `backupbot.backup.pre-hook`.
    pub fn label(self) -> &'static str {
        match self {
            Phase::BackupPre => "backupbot.backup.pre-hook",
            Phase::BackupPost => "backupbot.backup.post-hook",
            Phase::RestorePre => "backupbot.restore.pre-hook",
            Phase::RestorePost => "backupbot.restore.post-hook",
        }
    }
    /// In words: `backup pre-hook`.
    pub fn words(self) -> &'static str {
        match self {
            Phase::BackupPre => "backup pre-hook",
            Phase::BackupPost => "backup post-hook",
            Phase::RestorePre => "restore pre-hook",
            Phase::RestorePost => "restore post-hook",
        }
    }
}

/// A hook a label declares: run with `sh -c COMMAND` in a running container of `service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    pub service: String,
    pub phase: Phase,
    pub command: String,
}

/// What the contract says about one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    /// The compose key (`data`), as the labels name it.
    pub volume: String,
    /// The services that mount it, sorted.
    pub services: Vec<String>,
    /// Left out by `backupbot.backup.volumes.<vol>=false`: who said so (`service db`).
    pub excluded_by: Option<String>,
    /// Paths relative to the volume root that the labels limit it to, sorted; empty: the whole
    /// volume. `""` never appears (a legacy path equal to the mount target means the whole volume).
    pub paths: Vec<String>,
    /// Whether `paths` came from a label (for "every path a label names is non-empty").
    pub labelled: bool,
}

impl VolumePlan {
    pub fn included(&self) -> bool {
        self.excluded_by.is_none()
    }
}

/// The merged contract of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub capable: bool,
    /// Why (or why not) it is backup-capable, naming the services or who overrode it.
    pub why: String,
    /// Every volume some service mounts, by key.
    pub volumes: Vec<VolumePlan>,
    /// Hooks in phase order, then service name.
    pub hooks: Vec<Hook>,
    /// Labels that are not part of the contract, ignored: `db: backupbot.backup.command`.
    pub ignored: Vec<String>,
}

impl Plan {
    pub fn hooks(&self, phase: Phase) -> impl Iterator<Item = &Hook> {
        self.hooks.iter().filter(move |h| h.phase == phase)
    }
    pub fn included(&self) -> impl Iterator<Item = &VolumePlan> {
        self.volumes.iter().filter(|v| v.included())
    }
    /// Whether `service` declares a restore hook (pre or post).
    pub fn has_restore_hook(&self, service: &str) -> bool {
        self.hooks.iter().any(|h| h.service == service && matches!(h.phase, Phase::RestorePre | Phase::RestorePost))
    }
}

/// `BACKUP=1|0` from an overlay's settings, with who asked (`overlays/x/settings.env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub capable: bool,
    pub origin: String,
}

fn is_true(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

/// A relative path of a `.path` label: `./a/` → `a`; absolute or `..` paths are the recipe's
/// failure (they would leave the volume).
fn relative(label: &str, service: &str, item: &str) -> Result<Option<String>> {
    let t = item.trim();
    if t.is_empty() {
        return Ok(None);
    }
    let p = std::path::Path::new(t);
    if p.is_absolute() || p.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(Error::failed(format!(
            "{service}: label {label} names {t:?}: a path must be relative to the volume's root, without `..`"
        )));
    }
    let parts: Vec<String> = p
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    Ok(Some(parts.join("/")))
}

/// Merges the labels of `services` into one plan, after the override. Errors (the recipe's
/// failure, `OpFailed`): a path label with an absolute or `..` path, a legacy path that no volume
/// of its service holds, a volume label naming a volume no service mounts.
pub fn plan(services: &[ServiceInput], overrule: Option<&Override>) -> Result<Plan> {
    let mut volumes: BTreeMap<String, VolumePlan> = BTreeMap::new();
    for s in services {
        for (vol, _) in &s.mounts {
            let v = volumes.entry(vol.clone()).or_insert_with(|| VolumePlan {
                volume: vol.clone(),
                services: vec![],
                excluded_by: None,
                paths: vec![],
                labelled: false,
            });
            if !v.services.contains(&s.name) {
                v.services.push(s.name.clone());
                v.services.sort();
            }
        }
    }
    let mut paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut on = vec![];
    let mut off = vec![];
    let mut hooks = vec![];
    let mut ignored = vec![];
    for s in services {
        for (key, value) in &s.labels {
            if key == BACKUP {
                if is_true(value) { on.push(s.name.clone()) } else { off.push(format!("{} ({value:?})", s.name)) }
            } else if let Some(phase) = Phase::ALL.into_iter().find(|p| p.label() == key) {
                if !value.trim().is_empty() {
                    hooks.push(Hook { service: s.name.clone(), phase, command: value.trim().to_string() });
                }
            } else if key == LEGACY_PATH {
                for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                    let inside = s
                        .mounts
                        .iter()
                        .filter(|(_, t)| {
                            let t = t.trim_end_matches('/');
                            item == t || item.starts_with(&format!("{t}/"))
                        })
                        .max_by_key(|(_, t)| t.len());
                    let Some((vol, target)) = inside else {
                        return Err(Error::failed(format!(
                            "{}: label {LEGACY_PATH} names {item}, which no volume of the service holds (its volumes are mounted at {})",
                            s.name,
                            if s.mounts.is_empty() {
                                "nothing".to_string()
                            } else {
                                s.mounts.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>().join(", ")
                            }
                        )));
                    };
                    let rest = item[target.trim_end_matches('/').len()..].trim_start_matches('/');
                    let set = paths.entry(vol.clone()).or_default();
                    match relative(LEGACY_PATH, &s.name, rest)? {
                        Some(r) => set.insert(r),
                        None => set.insert(String::new()),
                    };
                }
            } else if let Some(rest) = key.strip_prefix(VOLUMES) {
                let (vol, is_path) = match rest.strip_suffix(".path") {
                    Some(v) => (v, true),
                    None => (rest, false),
                };
                let Some(v) = volumes.get_mut(vol) else {
                    return Err(Error::failed(format!(
                        "{}: label {key} names volume {vol:?}, which no service mounts (volumes: {})",
                        s.name,
                        if volumes.is_empty() {
                            "none".to_string()
                        } else {
                            volumes.keys().cloned().collect::<Vec<_>>().join(", ")
                        }
                    )));
                };
                if is_path {
                    let set = paths.entry(vol.to_string()).or_default();
                    for item in value.split(',') {
                        if let Some(r) = relative(key, &s.name, item)? {
                            set.insert(r);
                        }
                    }
                } else if value.trim().eq_ignore_ascii_case("false") {
                    v.excluded_by.get_or_insert(format!("{key}=false on service {}", s.name));
                } else if !is_true(value) {
                    ignored.push(format!("{}: {key}={value:?} (expected true or false)", s.name));
                }
            } else if key.starts_with("backupbot.") {
                ignored.push(format!("{}: {key}", s.name));
            }
        }
    }
    for (vol, set) in paths {
        if let Some(v) = volumes.get_mut(&vol) {
            v.labelled = true;
            // A path equal to the volume root means the whole volume.
            v.paths = if set.contains("") { vec![] } else { set.into_iter().collect() };
        }
    }
    hooks.sort_by(|a, b| (a.phase, &a.service).cmp(&(b.phase, &b.service)));
    let by_labels = if on.is_empty() {
        let mut why = "no service sets backupbot.backup=true".to_string();
        if !off.is_empty() {
            why.push_str(&format!(" ({BACKUP} is {})", off.join(", ")));
        }
        why
    } else {
        format!("{BACKUP}=true on {}", on.join(", "))
    };
    let (capable, why) = match overrule {
        Some(o) if o.capable => (true, format!("backup-capable by BACKUP=1 in {} (labels: {by_labels})", o.origin)),
        Some(o) => {
            (false, format!("not backup-capable: switched off by BACKUP=0 in {} (labels: {by_labels})", o.origin))
        }
        None if on.is_empty() => (false, format!("the recipe declares no backup: {by_labels}")),
        None => (true, by_labels),
    };
    Ok(Plan { capable, why, volumes: volumes.into_values().collect(), hooks, ignored })
}

/// The contract's inputs from a loaded compose (labels already interpolated by the loader).
pub fn inputs_from_compose(compose: &crate::recipe::compose::Compose) -> Vec<ServiceInput> {
    compose
        .services
        .iter()
        .map(|(name, s)| ServiceInput {
            name: name.clone(),
            labels: s.deploy_labels.clone(),
            mounts: s.volume_targets.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, labels: &[(&str, &str)], mounts: &[(&str, &str)]) -> ServiceInput {
        ServiceInput {
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            mounts: mounts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn backup_true_on_any_service_makes_the_recipe_backup_capable_case_insensitively() {
        for value in ["true", "TRUE", " True "] {
            let p = plan(&[svc("app", &[], &[]), svc("db", &[(BACKUP, value)], &[])], None).unwrap();
            assert!(p.capable, "{value:?}");
            assert_eq!(p.why, "backupbot.backup=true on db");
        }
        for value in ["false", "", "yes", "1"] {
            let p = plan(&[svc("app", &[(BACKUP, value)], &[])], None).unwrap();
            assert!(!p.capable, "{value:?}");
            assert!(
                p.why.starts_with("the recipe declares no backup: no service sets backupbot.backup=true"),
                "{}",
                p.why
            );
        }
        let p = plan(&[svc("app", &[], &[("data", "/data")])], None).unwrap();
        assert_eq!(p.why, "the recipe declares no backup: no service sets backupbot.backup=true");
    }

    #[test]
    fn the_overlay_override_decides_and_says_who_asked() {
        let origin = "overlays/hello/settings.env".to_string();
        let on = svc("app", &[(BACKUP, "true")], &[]);
        let p = plan(std::slice::from_ref(&on), Some(&Override { capable: false, origin: origin.clone() })).unwrap();
        assert!(!p.capable);
        assert_eq!(
            p.why,
            "not backup-capable: switched off by BACKUP=0 in overlays/hello/settings.env (labels: backupbot.backup=true on app)"
        );
        let off = svc("app", &[], &[]);
        let p = plan(&[off], Some(&Override { capable: true, origin })).unwrap();
        assert!(p.capable);
        assert!(p.why.starts_with("backup-capable by BACKUP=1 in overlays/hello/settings.env"), "{}", p.why);
    }

    #[test]
    fn volumes_are_in_by_default_and_a_false_label_on_any_service_leaves_one_out() {
        let p = plan(
            &[
                svc(
                    "app",
                    &[(BACKUP, "true"), ("backupbot.backup.volumes.cache", "False")],
                    &[("data", "/data"), ("cache", "/c")],
                ),
                svc("db", &[], &[("db-data", "/var/lib/postgresql/data")]),
            ],
            None,
        )
        .unwrap();
        let included: Vec<&str> = p.included().map(|v| v.volume.as_str()).collect();
        assert_eq!(included, ["data", "db-data"]);
        let cache = p.volumes.iter().find(|v| v.volume == "cache").unwrap();
        assert_eq!(cache.excluded_by.as_deref(), Some("backupbot.backup.volumes.cache=false on service app"));
    }

    #[test]
    fn path_labels_limit_a_volume_to_relative_paths_and_add_up_across_services() {
        let p = plan(
            &[
                svc(
                    "db",
                    &[(BACKUP, "true"), ("backupbot.backup.volumes.db-data.path", "backup.sql, ./dumps/")],
                    &[("db-data", "/pg")],
                ),
                svc("app", &[("backupbot.backup.volumes.db-data.path", "extra")], &[]),
            ],
            None,
        )
        .unwrap();
        assert_eq!(p.volumes[0].paths, ["backup.sql", "dumps", "extra"]);
        assert!(p.volumes[0].labelled);
        for bad in ["/etc", "../x", "a/../../b"] {
            let e = plan(&[svc("db", &[("backupbot.backup.volumes.d.path", bad)], &[("d", "/d")])], None).unwrap_err();
            assert_eq!(e.kind(), crate::error::Kind::OpFailed);
            assert!(e.to_string().contains("relative to the volume's root"), "{e}");
        }
    }

    #[test]
    fn the_legacy_absolute_path_limits_the_volume_mounted_over_it() {
        let p = plan(
            &[svc(
                "app",
                &[(BACKUP, "true"), (LEGACY_PATH, "/data/uploads,/srv")],
                &[("data", "/data"), ("srv", "/srv/")],
            )],
            None,
        )
        .unwrap();
        let data = p.volumes.iter().find(|v| v.volume == "data").unwrap();
        assert_eq!(data.paths, ["uploads"]);
        let srv = p.volumes.iter().find(|v| v.volume == "srv").unwrap();
        assert!(srv.labelled && srv.paths.is_empty(), "the mount target itself is the whole volume");
        let e = plan(&[svc("app", &[(LEGACY_PATH, "/elsewhere")], &[("data", "/data")])], None).unwrap_err();
        assert!(
            e.to_string()
                .contains("names /elsewhere, which no volume of the service holds (its volumes are mounted at /data)"),
            "{e}"
        );
    }

    #[test]
    fn a_volume_label_naming_a_volume_nobody_mounts_is_the_recipes_failure() {
        let e =
            plan(&[svc("app", &[("backupbot.backup.volumes.dta.path", "x")], &[("data", "/data")])], None).unwrap_err();
        assert_eq!(e.kind(), crate::error::Kind::OpFailed);
        assert!(e.to_string().contains("names volume \"dta\", which no service mounts (volumes: data)"), "{e}");
    }

    #[test]
    fn hooks_are_per_service_in_phase_order_and_unknown_labels_are_listed() {
        let p = plan(
            &[
                svc(
                    "db",
                    &[("backupbot.restore.post-hook", "/pg restore"), ("backupbot.backup.pre-hook", "/pg backup")],
                    &[],
                ),
                svc(
                    "app",
                    &[
                        ("backupbot.backup.pre-hook", " echo hi "),
                        ("backupbot.backup.command", "x"),
                        ("backupbot.restore", "true"),
                    ],
                    &[],
                ),
            ],
            None,
        )
        .unwrap();
        let hooks: Vec<(Phase, &str, &str)> =
            p.hooks.iter().map(|h| (h.phase, h.service.as_str(), h.command.as_str())).collect();
        assert_eq!(
            hooks,
            [
                (Phase::BackupPre, "app", "echo hi"),
                (Phase::BackupPre, "db", "/pg backup"),
                (Phase::RestorePost, "db", "/pg restore")
            ]
        );
        assert!(p.has_restore_hook("db") && !p.has_restore_hook("app"));
        assert_eq!(p.ignored, ["app: backupbot.backup.command", "app: backupbot.restore"]);
    }
}
