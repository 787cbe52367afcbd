//! The host-access boundary: what a recipe's compose files may ask of the host they are deployed
//! on. A recipe that is not in the allowlist must not reach beyond its own containers, volumes,
//! networks and checkout; a recipe in the allowlist may (traefik mounts the Docker socket), and
//! the run-state records what was granted.
//!
//! The compose files are read by Docker's own loader (`docker stack config`, see
//! [`crate::swarm::docker::stack_config`]): it merges the files, interpolates them and normalises every
//! spelling (short volume syntax becomes `type: bind` with an absolute source, `~` and `./` are
//! resolved, external networks get their `name:`), so [`evaluate`] only reads the normalised
//! form. What counts as host access, and why, is listed in `docs/decisions.md` ("The host-access
//! boundary"); what Docker Swarm ignores was observed on Docker 20.10 with
//! `docker service inspect`.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::error::{Error, Result};
use crate::run::state::{HostAccess, RunState};

/// Why a recipe with host access is refused; the end of the refusal line.
pub const NEEDS_APPROVAL: &str = "host access needs the recipe in the allowlist";

/// Paths of the Docker socket as recipes mount it.
const DOCKER_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

/// Log drivers that write only where Docker keeps logs anyway; the others ship log lines to an
/// address the recipe chooses (a host socket, a host on the network).
const LOCAL_LOG_DRIVERS: &[&str] = &["json-file", "local", "journald", "none"];

/// What the policy needs besides the compose: where the checkout is, how the stack is named and
/// which external networks the operator allows.
#[derive(Debug, Clone)]
pub struct Context {
    /// The recipe checkout; files read by the deploy must resolve inside it.
    pub checkout: PathBuf,
    /// Where Docker resolves relative paths: the directory of the first compose file.
    pub working_dir: PathBuf,
    /// The run's stack name; objects named `<stack>_…` are the run's own.
    pub stack: String,
    /// `CCCI_EXTERNAL_NETWORKS`: the external networks a recipe may join (never `host`).
    pub external_networks: Vec<String>,
}

/// One way a compose reaches the host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// `service app`, `config c`, `secret s`.
    pub subject: String,
    /// The compose key, as a dotted path below the subject (`volumes`, `cap_add`,
    /// `configs.c.file`, `networks.h`).
    pub key: String,
    /// What it does, as a verb phrase: `mounts the host path /`.
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.subject, self.what, self.key)
    }
}

impl Finding {
    /// The finding with where it was found (`in the head`, `in release 1.1.0+1.36`).
    pub fn at(&self, place: &str) -> String {
        format!("{} {} ({}, {place})", self.subject, self.what, self.key)
    }
}

/// Reads the compose files checked out in `recipe_dir` through `docker stack config`, as a deploy
/// with the app env `app_env` will (the files its `COMPOSE_FILE` names, interpolated with the
/// variables of [`crate::recipe::load::interpolation_env`]), and lists what they reach on the host,
/// each line ending with `place`. Before the app exists, `app_env` is the checkout's
/// `.env.sample`; for the upgrade, the app env itself (which keeps the base's values).
///
/// Errors: `OpFailed` when Docker cannot load the files (the recipe's fault), `Environment` when
/// docker cannot be run or prints something that is not YAML, `BadInput` for a malformed
/// `CCCI_EXTERNAL_NETWORKS`.
pub fn inspect(
    recipe_dir: &Path,
    app_env: &crate::recipe::env_file::EnvFile,
    state: &RunState,
    place: &str,
) -> Result<Vec<String>> {
    let files = crate::recipe::env_file::compose_files(app_env);
    let env = crate::recipe::load::interpolation_env(recipe_dir, app_env, state)?;
    let yaml = crate::swarm::docker::stack_config(recipe_dir, &files, &env, recipe_dir)?;
    let config: Value = serde_yaml_ng::from_str(&yaml)
        .map_err(|e| Error::env(format!("parsing the output of docker stack config: {e}")))?;
    let checkout = recipe_dir.canonicalize().map_err(|e| Error::env(format!("{}: {e}", recipe_dir.display())))?;
    // Docker resolves relative paths against the directory of the first compose file.
    let first = files.first().map(String::as_str).unwrap_or("compose.yml");
    let working_dir = clean(&checkout.join(first)).parent().map(Path::to_path_buf).unwrap_or_else(|| checkout.clone());
    let ctx = Context {
        checkout,
        working_dir,
        stack: state.stack.to_string(),
        external_networks: crate::config::external_networks()?,
    };
    Ok(evaluate(&config, &ctx).iter().map(|f| f.at(place)).collect())
}

/// Whether the trust gate approves the run's repository now: `Some(why)` naming the allowlist
/// entry, or `None`. The decision is the trust gate's ([`crate::recipe::trust::Allowlist::approval`] of
/// the recorded source identity); this only words it.
pub fn approval(state: &RunState) -> Result<Option<String>> {
    let allowlist = crate::recipe::trust::Allowlist::load()?;
    Ok(allowlist
        .approval(state.source.identity().as_ref())
        .map(|a| format!("approved: repository {} is in the allowlist ({})", a.entry, a.at)))
}

/// The gate: nothing asked for is `None`; host access asked for by an approved recipe is granted
/// and returned for the run-state; otherwise a refusal (`OpFailed`) naming every finding on one
/// line, ending with [`NEEDS_APPROVAL`].
pub fn gate(found: &[String], approval: Option<String>) -> Result<Option<HostAccess>> {
    if found.is_empty() {
        return Ok(None);
    }
    match approval {
        Some(reason) => Ok(Some(HostAccess { granted: found.to_vec(), reason })),
        None => Err(Error::failed(format!("{} — {NEEDS_APPROVAL}", found.join("; ")))),
    }
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_mapping().and_then(|m| m.get(key))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    get(v, key).and_then(s)
}

fn map_at<'a>(v: &'a Value, key: &str) -> Option<&'a Mapping> {
    get(v, key).and_then(Value::as_mapping)
}

/// A scalar as text (numbers and booleans too), as Docker would read it.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// The entries of a list (or the keys of a map: `sysctls` has both forms).
fn entries(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Sequence(seq)) => seq.iter().map(text).collect(),
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| format!("{}={}", text(k), text(v))).collect(),
        Some(Value::Null) | None => vec![],
        Some(other) => vec![text(other)],
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "1" | "on"),
        _ => false,
    }
}

/// `path` with `.` and `..` resolved lexically, as Go's `filepath.Clean` does.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    out.push("/");
                }
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Whether `path` (absolute, or relative to the working directory) resolves inside the checkout,
/// symlinks followed. A path that does not exist is judged by its lexical form (Docker will fail
/// to read it anyway).
pub fn inside_checkout(path: &str, ctx: &Context) -> bool {
    let joined = clean(&ctx.working_dir.join(path));
    let roots: Vec<PathBuf> =
        [ctx.checkout.canonicalize().ok(), Some(clean(&ctx.checkout))].into_iter().flatten().collect();
    match joined.canonicalize() {
        Ok(real) => roots.iter().any(|r| real.starts_with(r)),
        Err(_) => roots.iter().any(|r| joined.starts_with(r)),
    }
}

fn is_docker_socket(path: &str) -> bool {
    let p = clean(Path::new(path));
    let real = p.canonicalize().unwrap_or_else(|_| p.clone());
    DOCKER_SOCKETS.iter().any(|s| p == Path::new(s) || real == Path::new(s))
        || p.file_name().is_some_and(|n| n == "docker.sock")
}

fn host_path_phrase(path: &str) -> String {
    if is_docker_socket(path) {
        format!("mounts the Docker socket {path}")
    } else {
        format!("mounts the host path {path}")
    }
}

/// The name a top-level object gets on the swarm: `name:` if set, else the key for external
/// objects, else `<stack>_<key>`.
fn object_name(decl: Option<&Value>, key: &str, stack: &str) -> String {
    match decl.and_then(|d| str_at(d, "name")) {
        Some(n) => n.to_string(),
        None if decl.is_some_and(is_external) => key.to_string(),
        None => format!("{stack}_{key}"),
    }
}

fn is_external(decl: &Value) -> bool {
    match get(decl, "external") {
        Some(Value::Mapping(_)) => true,
        other => truthy(other),
    }
}

fn owned_by_stack(name: &str, stack: &str) -> bool {
    name.starts_with(&format!("{stack}_"))
}

/// Every way `config` (the output of `docker stack config`) reaches beyond the run's own
/// containers, volumes, networks and checkout. Empty when it does not.
pub fn evaluate(config: &Value, ctx: &Context) -> Vec<Finding> {
    let mut found = BTreeSet::new();
    let top = |kind: &str| map_at(config, kind).cloned().unwrap_or_default();
    let (volumes, networks) = (top("volumes"), top("networks"));
    let mut used = BTreeSet::new();
    if let Some(services) = map_at(config, "services") {
        for (name, svc) in services {
            let subject = format!("service {}", text(name));
            let mut add = |key: &str, what: String| {
                used.insert(key.split('.').take(2).collect::<Vec<_>>().join("."));
                found.insert(Finding { subject: subject.clone(), key: key.to_string(), what });
            };
            service_mounts(svc, &volumes, ctx, &mut add);
            service_keys(svc, ctx, &mut add);
            service_networks(svc, &networks, ctx, &mut add);
        }
    }
    // A declaration no service uses as judged may still be used as deployed: a service's
    // `volumes:` or `networks:` entry can name it through a variable whose value differs (the
    // app env's TYPE is the recipe's name, not the sample's). Each declaration is judged itself.
    for (kind, decls) in [("volumes", &volumes), ("networks", &networks)] {
        let singular = &kind[..kind.len() - 1];
        for (key, decl) in decls {
            let key = text(key);
            let subject = format!("{singular} {key}");
            let mut add = |at: &str, what: String| {
                if !used.contains(&at.split('.').take(2).collect::<Vec<_>>().join(".")) {
                    found.insert(Finding { subject: subject.clone(), key: at.to_string(), what });
                }
            };
            match kind {
                "volumes" => volume_decl(&key, Some(decl), ctx, &mut add),
                _ => network_decl(&key, Some(decl), ctx, &mut add),
            }
        }
    }
    for kind in ["configs", "secrets"] {
        let singular = &kind[..kind.len() - 1];
        for (key, decl) in top(kind) {
            let key = text(&key);
            let subject = format!("{singular} {key}");
            if let Some(file) = str_at(&decl, "file")
                && !inside_checkout(file, ctx)
            {
                found.insert(Finding {
                    subject: subject.clone(),
                    key: format!("{kind}.{key}.file"),
                    what: format!("reads the file {file}, outside the recipe checkout"),
                });
            }
            let name = object_name(Some(&decl), &key, &ctx.stack);
            if is_external(&decl) && !owned_by_stack(&name, &ctx.stack) {
                found.insert(Finding {
                    subject,
                    key: format!("{kind}.{key}.external"),
                    what: format!("is the external {singular} {name}, which is not the run's own"),
                });
            }
        }
    }
    found.into_iter().collect()
}

fn service_mounts(svc: &Value, volumes: &Mapping, ctx: &Context, add: &mut impl FnMut(&str, String)) {
    let Some(Value::Sequence(mounts)) = get(svc, "volumes") else { return };
    for m in mounts {
        let kind = str_at(m, "type").unwrap_or("volume");
        let source = str_at(m, "source").unwrap_or("");
        match kind {
            "tmpfs" => {}
            "bind" => add("volumes", host_path_phrase(source)),
            "volume" if source.is_empty() => {} // anonymous: a fresh local volume
            "volume" => volume_decl(source, volumes.get(source), ctx, add),
            other => add("volumes", format!("mounts a {other} mount {source}").trim_end().to_string()),
        }
    }
}

/// What mounting the named volume `source` (declared as `decl`) reaches: a volume that is not
/// the run's own, another volume driver, or `local` driver options that bind or mount a device.
fn volume_decl(source: &str, decl: Option<&Value>, ctx: &Context, add: &mut impl FnMut(&str, String)) {
    let key = format!("volumes.{source}");
    let name = object_name(decl, source, &ctx.stack);
    let driver = decl.and_then(|d| str_at(d, "driver")).unwrap_or("local");
    let opts = decl.and_then(|d| map_at(d, "driver_opts")).cloned().unwrap_or_default();
    if decl.is_some_and(is_external) || !owned_by_stack(&name, &ctx.stack) {
        add(&key, format!("mounts the volume {name}, which is not the run's own"));
    }
    if driver != "local" {
        add(&format!("{key}.driver"), format!("mounts volume {source} of the volume driver {driver}"));
    } else if let Some(what) = local_mount(&opts) {
        add(&format!("{key}.driver_opts"), format!("{what} through volume {source}"));
    }
}

/// What the `local` driver's options make of a volume, when it is more than a directory Docker
/// manages: a bind (`o: bind`), a host device or a remote filesystem (`device:`). A `tmpfs` is
/// fine.
fn local_mount(opts: &Mapping) -> Option<String> {
    if opts.is_empty() {
        return None;
    }
    let opt = |k: &str| opts.get(k).map(text).unwrap_or_default();
    let (fstype, device, o) = (opt("type"), opt("device"), opt("o"));
    let bind = o.split(',').any(|x| matches!(x.trim(), "bind" | "rbind"));
    if bind {
        return Some(host_path_phrase(&device));
    }
    if fstype == "tmpfs" && matches!(device.as_str(), "" | "tmpfs") {
        return None;
    }
    Some(match (fstype.as_str(), device.as_str()) {
        ("", "") => return None,
        (t, "") => format!("mounts a filesystem of type {t}"),
        ("", d) | ("none", d) => host_path_phrase(d),
        (t, d) => format!("mounts {d} (type {t})"),
    })
}

fn service_keys(svc: &Value, _ctx: &Context, add: &mut impl FnMut(&str, String)) {
    let caps = entries(get(svc, "cap_add"));
    if !caps.is_empty() {
        add("cap_add", format!("adds the capabilities {}", caps.join(", ")));
    }
    let sysctls = entries(get(svc, "sysctls"));
    if !sysctls.is_empty() {
        add("sysctls", format!("sets the kernel parameters {}", sysctls.join(", ")));
    }
    let generic = get(svc, "deploy")
        .and_then(|d| get(d, "resources"))
        .and_then(|r| get(r, "reservations"))
        .and_then(|r| get(r, "generic_resources"));
    if let Some(Value::Sequence(g)) = generic
        && !g.is_empty()
    {
        let kinds: Vec<String> = g
            .iter()
            .filter_map(|r| {
                get(r, "discrete_resource_spec")
                    .or_else(|| get(r, "named_resource_spec"))
                    .and_then(|x| str_at(x, "kind"))
            })
            .map(String::from)
            .collect();
        add(
            "deploy.resources.reservations.generic_resources",
            format!("reserves the node's generic resources {}", kinds.join(", ")).trim_end().to_string(),
        );
    }
    if truthy(get(svc, "privileged")) {
        add("privileged", "asks for privileged mode".into());
    }
    let devices = entries(get(svc, "devices"));
    if !devices.is_empty() {
        add("devices", format!("maps the host devices {}", devices.join(", ")));
    }
    for (key, what) in [("pid", "PID"), ("ipc", "IPC"), ("uts", "UTS")] {
        let v = str_at(svc, key).unwrap_or("");
        if v == "host" || v.starts_with("container:") || v.starts_with("service:") {
            add(key, format!("shares the {what} namespace {v}"));
        }
    }
    if let Some(mode) = str_at(svc, "network_mode").filter(|m| !m.is_empty() && *m != "none") {
        let what =
            if mode == "host" { "joins the host network".to_string() } else { format!("uses network mode {mode}") };
        add("network_mode", what);
    }
    if let Some(mode) = str_at(svc, "userns_mode").filter(|m| !m.is_empty()) {
        add("userns_mode", format!("leaves the user namespace ({mode})"));
    }
    for key in ["cgroup", "cgroupns_mode"] {
        if str_at(svc, key) == Some("host") {
            add(key, "shares the host's cgroup namespace".into());
        }
    }
    if let Some(parent) = str_at(svc, "cgroup_parent").filter(|p| !p.is_empty()) {
        add("cgroup_parent", format!("places itself in the host cgroup {parent}"));
    }
    let loosened: Vec<String> = entries(get(svc, "security_opt"))
        .into_iter()
        .filter(|o| !matches!(o.as_str(), "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges=true"))
        .collect();
    if !loosened.is_empty() {
        add("security_opt", format!("changes its confinement with {}", loosened.join(", ")));
    }
    if let Some(driver) = get(svc, "logging").and_then(|l| str_at(l, "driver"))
        && !LOCAL_LOG_DRIVERS.contains(&driver)
    {
        add("logging.driver", format!("ships its logs through the {driver} log driver"));
    }
    for file in entries(get(svc, "env_file")) {
        if !inside_checkout(&file, _ctx) {
            add("env_file", format!("reads the env file {file}, outside the recipe checkout"));
        }
    }
}

fn service_networks(svc: &Value, networks: &Mapping, ctx: &Context, add: &mut impl FnMut(&str, String)) {
    // A service that names no network is on `default`, which the compose may redeclare.
    let keys: Vec<String> = match get(svc, "networks") {
        Some(Value::Mapping(m)) => m.keys().map(text).collect(),
        Some(Value::Sequence(seq)) => seq.iter().map(text).collect(),
        _ if str_at(svc, "network_mode").is_some() => vec![],
        _ => vec!["default".to_string()],
    };
    for key in keys {
        network_decl(&key, networks.get(key.as_str()), ctx, add);
    }
}

/// What joining the network `key` (declared as `decl`) reaches: the host network, an external
/// network outside `CCCI_EXTERNAL_NETWORKS`, another stack's network, or another driver.
fn network_decl(key: &str, decl: Option<&Value>, ctx: &Context, add: &mut impl FnMut(&str, String)) {
    let name = object_name(decl, key, &ctx.stack);
    let at = format!("networks.{key}");
    if name == "host" {
        add(&at, "joins the host network".into());
    } else if decl.is_some_and(is_external) {
        if !ctx.external_networks.contains(&name) {
            add(
                &at,
                format!(
                    "joins the external network {name}, which is not one of {} ({})",
                    crate::config::EXTERNAL_NETWORKS.name,
                    ctx.external_networks.join(", ")
                ),
            );
        }
    } else if !owned_by_stack(&name, &ctx.stack) {
        add(&at, format!("joins the network {name}, which is not the run's own"));
    } else if let Some(driver) = decl.and_then(|d| str_at(d, "driver")).filter(|d| *d != "overlay") {
        add(&format!("{at}.driver"), format!("creates network {key} with the {driver} driver"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = "hell-3fa9c2_t_localhost";

    struct Fixture {
        dir: PathBuf,
    }

    impl Fixture {
        fn new(name: &str) -> Fixture {
            let dir = std::env::temp_dir().join(format!("ccci-hostaccess-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("recipe/sub")).unwrap();
            std::fs::write(dir.join("recipe/index.html"), "hi").unwrap();
            std::fs::write(dir.join("recipe/sub/app.env"), "A=1\n").unwrap();
            std::fs::write(dir.join("outside.txt"), "host").unwrap();
            Fixture { dir }
        }
        fn ctx(&self) -> Context {
            let checkout = self.dir.join("recipe").canonicalize().unwrap();
            Context {
                working_dir: checkout.clone(),
                checkout,
                stack: STACK.into(),
                external_networks: vec!["proxy".into()],
            }
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The findings for a compose given as `docker stack config` prints it (normalised YAML).
    fn findings(f: &Fixture, yaml: &str) -> Vec<String> {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        evaluate(&v, &f.ctx()).iter().map(ToString::to_string).collect()
    }

    fn app(f: &Fixture, service_yaml: &str) -> Vec<String> {
        let indented: String = service_yaml.lines().map(|l| format!("    {l}\n")).collect();
        findings(f, &format!("services:\n  app:\n    image: x\n{indented}"))
    }

    #[test]
    fn a_plain_recipe_reaches_nothing() {
        let f = Fixture::new("plain");
        let yaml = format!(
            r#"
services:
  app:
    image: x
    cap_drop: [ALL]
    ulimits: {{nofile: 1000}}
    security_opt: ["no-new-privileges:true"]
    logging: {{driver: json-file, options: {{max-size: 10m}}}}
    env_file: [sub/app.env]
    networks: {{proxy: null, internal: null}}
    volumes:
      - {{type: volume, source: data, target: /data}}
      - {{type: volume, target: /anon}}
      - {{type: tmpfs, target: /tmp}}
      - {{type: volume, source: scratch, target: /scratch}}
  db:
    image: y
networks:
  proxy: {{name: proxy, external: true}}
  internal: {{driver: overlay, internal: true}}
volumes:
  data: {{}}
  scratch: {{driver: local, driver_opts: {{type: tmpfs, device: tmpfs, o: "size=100m"}}}}
configs:
  page: {{file: {dir}/recipe/index.html, template_driver: golang}}
  named: {{name: "{STACK}_named_v2", file: {dir}/recipe/sub/app.env}}
secrets:
  key: {{external: true, name: "{STACK}_key_v1"}}
"#,
            dir = f.dir.display()
        );
        assert_eq!(findings(&f, &yaml), Vec::<String>::new());
    }

    #[test]
    fn bind_mounts_are_host_paths_in_every_spelling() {
        let f = Fixture::new("binds");
        // docker stack config turns `/:/hostroot:ro`, `./x:/y` and `~/x:/y` into these.
        for source in ["/", "/srv/data", "/home/ci/x"] {
            let got = app(&f, &format!("volumes:\n  - {{type: bind, source: {source}, target: /h, read_only: true}}"));
            assert_eq!(got, vec![format!("service app mounts the host path {source} (volumes)")]);
        }
        let got = app(&f, "volumes:\n  - {type: bind, source: /var/run/docker.sock, target: /var/run/docker.sock}");
        assert_eq!(got, vec!["service app mounts the Docker socket /var/run/docker.sock (volumes)"]);
        let got = app(&f, "volumes:\n  - {type: bind, source: /run/docker.sock, target: /s}");
        assert_eq!(got, vec!["service app mounts the Docker socket /run/docker.sock (volumes)"]);
    }

    #[test]
    fn a_bind_inside_the_checkout_is_still_a_host_path() {
        let f = Fixture::new("bindin");
        let src = f.ctx().checkout.join("sub");
        let got = app(&f, &format!("volumes:\n  - {{type: bind, source: {}, target: /y}}", src.display()));
        assert_eq!(got, vec![format!("service app mounts the host path {} (volumes)", src.display())]);
    }

    #[test]
    fn named_volumes_that_bind_or_mount_host_devices_are_host_access() {
        let f = Fixture::new("namedvol");
        let with_volume = |decl: &str| {
            findings(
                &f,
                &format!(
                    "services:\n  app:\n    image: x\n    volumes:\n      - {{type: volume, source: v, target: /v}}\nvolumes:\n  v: {decl}\n"
                ),
            )
        };
        assert_eq!(
            with_volume("{driver_opts: {type: none, o: bind, device: /etc}}"),
            vec!["service app mounts the host path /etc through volume v (volumes.v.driver_opts)"]
        );
        assert_eq!(
            with_volume("{driver: local, driver_opts: {o: 'rbind,ro', device: /var/run/docker.sock}}"),
            vec!["service app mounts the Docker socket /var/run/docker.sock through volume v (volumes.v.driver_opts)"]
        );
        assert_eq!(
            with_volume("{driver_opts: {device: /srv}}"),
            vec!["service app mounts the host path /srv through volume v (volumes.v.driver_opts)"]
        );
        assert_eq!(
            with_volume("{driver_opts: {type: ext4, device: /dev/sda1}}"),
            vec!["service app mounts /dev/sda1 (type ext4) through volume v (volumes.v.driver_opts)"]
        );
        assert_eq!(
            with_volume("{driver_opts: {type: nfs, o: 'addr=10.0.0.1', device: ':/export'}}"),
            vec!["service app mounts :/export (type nfs) through volume v (volumes.v.driver_opts)"]
        );
        assert_eq!(
            with_volume("{driver: local-persist, driver_opts: {mountpoint: /srv}}"),
            vec!["service app mounts volume v of the volume driver local-persist (volumes.v.driver)"]
        );
        assert_eq!(
            with_volume("{driver: some-plugin}"),
            vec!["service app mounts volume v of the volume driver some-plugin (volumes.v.driver)"]
        );
    }

    #[test]
    fn volumes_of_other_stacks_are_not_the_runs_own() {
        let f = Fixture::new("othervol");
        let with_volume = |decl: &str| {
            findings(
                &f,
                &format!(
                    "services:\n  app:\n    image: x\n    volumes:\n      - {{type: volume, source: v, target: /v}}\nvolumes:\n  v: {decl}\n"
                ),
            )
        };
        assert_eq!(
            with_volume("{external: true, name: traefik_letsencrypt}"),
            vec!["service app mounts the volume traefik_letsencrypt, which is not the run's own (volumes.v)"]
        );
        assert_eq!(
            with_volume("{name: traefik_letsencrypt}"),
            vec!["service app mounts the volume traefik_letsencrypt, which is not the run's own (volumes.v)"]
        );
        assert_eq!(with_volume(&format!("{{name: {STACK}_data_v2}}")), Vec::<String>::new());
    }

    #[test]
    fn other_mount_types_are_refused() {
        let f = Fixture::new("mounttypes");
        assert_eq!(
            app(&f, "volumes:\n  - {type: npipe, source: '\\\\.\\pipe\\docker_engine', target: /p}"),
            vec!["service app mounts a npipe mount \\\\.\\pipe\\docker_engine (volumes)"]
        );
        assert_eq!(
            app(&f, "volumes:\n  - {type: cluster, source: q, target: /q}"),
            vec!["service app mounts a cluster mount q (volumes)"]
        );
    }

    #[test]
    fn capabilities_and_kernel_settings_swarm_honours_are_host_access() {
        let f = Fixture::new("caps");
        assert_eq!(
            app(&f, "cap_add: [SYS_ADMIN, NET_ADMIN]"),
            vec!["service app adds the capabilities SYS_ADMIN, NET_ADMIN (cap_add)"]
        );
        assert_eq!(
            app(&f, "sysctls: {net.core.somaxconn: '1024'}"),
            vec!["service app sets the kernel parameters net.core.somaxconn=1024 (sysctls)"]
        );
        assert_eq!(
            app(&f, "sysctls: [net.ipv4.ip_forward=1]"),
            vec!["service app sets the kernel parameters net.ipv4.ip_forward=1 (sysctls)"]
        );
        assert_eq!(
            app(
                &f,
                "deploy:\n  resources:\n    reservations:\n      generic_resources:\n        - discrete_resource_spec: {kind: gpu, value: 1}"
            ),
            vec![
                "service app reserves the node's generic resources gpu (deploy.resources.reservations.generic_resources)"
            ]
        );
    }

    #[test]
    fn keys_swarm_ignores_today_are_refused_too() {
        let f = Fixture::new("ignored");
        let cases = [
            ("privileged: true", "service app asks for privileged mode (privileged)"),
            ("pid: host", "service app shares the PID namespace host (pid)"),
            ("ipc: host", "service app shares the IPC namespace host (ipc)"),
            ("ipc: 'container:db'", "service app shares the IPC namespace container:db (ipc)"),
            ("network_mode: host", "service app joins the host network (network_mode)"),
            ("network_mode: 'container:db'", "service app uses network mode container:db (network_mode)"),
            ("devices: ['/dev/sda:/dev/sda']", "service app maps the host devices /dev/sda:/dev/sda (devices)"),
            ("userns_mode: host", "service app leaves the user namespace (host) (userns_mode)"),
            (
                "cgroup_parent: system.slice",
                "service app places itself in the host cgroup system.slice (cgroup_parent)",
            ),
            ("cgroup: host", "service app shares the host's cgroup namespace (cgroup)"),
            (
                "security_opt: ['seccomp:unconfined']",
                "service app changes its confinement with seccomp:unconfined (security_opt)",
            ),
            (
                "security_opt: ['apparmor=unconfined', 'no-new-privileges']",
                "service app changes its confinement with apparmor=unconfined (security_opt)",
            ),
            (
                "logging: {driver: syslog, options: {syslog-address: 'unix:///dev/log'}}",
                "service app ships its logs through the syslog log driver (logging.driver)",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(app(&f, yaml), vec![want.to_string()], "{yaml}");
        }
        for harmless in ["privileged: false", "ipc: private", "ipc: shareable", "network_mode: none", "pid: ''"] {
            assert_eq!(app(&f, harmless), Vec::<String>::new(), "{harmless}");
        }
    }

    #[test]
    fn the_host_network_is_refused_in_every_spelling() {
        let f = Fixture::new("hostnet");
        let svc = "services:\n  app:\n    image: x\n    networks: {h: null}\n";
        for decl in ["{external: true, name: host}", "{external: {name: host}, name: host}", "{name: host}"] {
            assert_eq!(
                findings(&f, &format!("{svc}networks:\n  h: {decl}\n")),
                vec!["service app joins the host network (networks.h)"],
                "{decl}"
            );
        }
        // A network whose key is `host`, external without a name.
        assert_eq!(
            findings(
                &f,
                "services:\n  app:\n    image: x\n    networks: [host]\nnetworks:\n  host: {external: true}\n"
            ),
            vec!["service app joins the host network (networks.host)"]
        );
        // A service without networks is on `default`, which may be redeclared.
        assert_eq!(
            findings(&f, "services:\n  app:\n    image: x\nnetworks:\n  default: {external: true, name: host}\n"),
            vec!["service app joins the host network (networks.default)"]
        );
    }

    #[test]
    fn a_volume_or_network_no_service_uses_as_judged_is_judged_by_its_declaration() {
        // A service may name it through a variable whose deployed value differs from the judged
        // one (`- ${TYPE}:/h`): the declaration itself is what reaches the host.
        let f = Fixture::new("unusedecl");
        let svc = "services:\n  app:\n    image: x\n";
        assert_eq!(
            findings(&f, &format!("{svc}volumes:\n  r:\n    driver_opts: {{type: none, o: bind, device: /}}\n")),
            vec!["volume r mounts the host path / through volume r (volumes.r.driver_opts)"]
        );
        assert_eq!(
            findings(&f, &format!("{svc}volumes:\n  r: {{external: true, name: traefik_letsencrypt}}\n")),
            vec!["volume r mounts the volume traefik_letsencrypt, which is not the run's own (volumes.r)"]
        );
        assert_eq!(
            findings(&f, &format!("{svc}volumes:\n  r: {{driver: some-plugin}}\n")),
            vec!["volume r mounts volume r of the volume driver some-plugin (volumes.r.driver)"]
        );
        assert_eq!(
            findings(&f, &format!("{svc}networks:\n  h: {{external: true, name: host}}\n")),
            vec!["network h joins the host network (networks.h)"]
        );
        assert_eq!(
            findings(&f, &format!("{svc}networks:\n  b: {{external: true, name: bridge}}\n")),
            vec![format!(
                "network b joins the external network bridge, which is not one of {} (proxy) (networks.b)",
                crate::config::EXTERNAL_NETWORKS.name
            )]
        );
        // Used and judged through its service, a declaration is not named twice; a plain one is
        // nothing.
        assert_eq!(
            findings(
                &f,
                "services:\n  app:\n    image: x\n    volumes: [{type: volume, source: r, target: /r}]\nvolumes:\n  r: {driver_opts: {o: bind, device: /}}\n  d: {}\nnetworks:\n  n: {}\n"
            ),
            vec!["service app mounts the host path / through volume r (volumes.r.driver_opts)"]
        );
    }

    #[test]
    fn external_networks_outside_the_configured_set_are_refused() {
        let f = Fixture::new("extnet");
        let with_network = |decl: &str| {
            findings(
                &f,
                &format!("services:\n  app:\n    image: x\n    networks: {{n: null}}\nnetworks:\n  n: {decl}\n"),
            )
        };
        assert_eq!(with_network("{external: true, name: proxy}"), Vec::<String>::new());
        assert_eq!(
            with_network("{external: true, name: bridge}"),
            vec![format!(
                "service app joins the external network bridge, which is not one of {} (proxy) (networks.n)",
                crate::config::EXTERNAL_NETWORKS.name
            )]
        );
        assert_eq!(
            with_network("{name: gitea_internal}"),
            vec!["service app joins the network gitea_internal, which is not the run's own (networks.n)"]
        );
        assert_eq!(
            with_network("{driver: macvlan, driver_opts: {parent: eth0}}"),
            vec!["service app creates network n with the macvlan driver (networks.n.driver)"]
        );
        let mut ctx = f.ctx();
        ctx.external_networks = vec!["proxy".into(), "monitoring".into()];
        let v: Value = serde_yaml_ng::from_str(
            "services:\n  app:\n    image: x\n    networks: [m]\nnetworks:\n  m: {external: true, name: monitoring}\n",
        )
        .unwrap();
        assert_eq!(evaluate(&v, &ctx), vec![]);
    }

    #[test]
    fn files_read_by_the_deploy_must_resolve_inside_the_checkout() {
        let f = Fixture::new("files");
        let outside = f.dir.join("outside.txt");
        std::os::unix::fs::symlink(&outside, f.dir.join("recipe/link")).unwrap();
        std::os::unix::fs::symlink("/etc", f.dir.join("recipe/etcdir")).unwrap();
        let recipe = f.ctx().checkout;
        for (file, shown) in [
            ("/etc/hostname".to_string(), "/etc/hostname".to_string()),
            // `../../../../etc/hostname`, resolved by docker against the compose file's directory
            (clean(&recipe.join("../../../../etc/hostname")).display().to_string(), "/etc/hostname".into()),
            (recipe.join("link").display().to_string(), recipe.join("link").display().to_string()),
            (
                recipe.join("etcdir/hostname").display().to_string(),
                recipe.join("etcdir/hostname").display().to_string(),
            ),
        ] {
            for kind in ["configs", "secrets"] {
                let singular = &kind[..kind.len() - 1];
                assert_eq!(
                    findings(&f, &format!("{kind}:\n  c:\n    file: {file}\n")),
                    vec![format!("{singular} c reads the file {shown}, outside the recipe checkout ({kind}.c.file)")],
                    "{file}"
                );
            }
        }
        // env_file stays relative in docker's output: it is resolved against the working dir.
        for (file, ok) in [("sub/app.env", true), ("../outside.txt", false), ("link", false), ("/etc/hostname", false)]
        {
            let got = app(&f, &format!("env_file: [{file}]"));
            if ok {
                assert_eq!(got, Vec::<String>::new(), "{file}");
            } else {
                assert_eq!(
                    got,
                    vec![format!("service app reads the env file {file}, outside the recipe checkout (env_file)")]
                );
            }
        }
    }

    #[test]
    fn external_secrets_and_configs_of_other_stacks_are_not_the_runs_own() {
        let f = Fixture::new("extsecret");
        assert_eq!(
            findings(&f, "secrets:\n  token: {external: true, name: drone_token}\nconfigs:\n  c: {external: true}\n"),
            vec![
                "config c is the external config c, which is not the run's own (configs.c.external)",
                "secret token is the external secret drone_token, which is not the run's own (secrets.token.external)",
            ]
        );
    }

    #[test]
    fn the_gate_refuses_unapproved_host_access_on_one_line_and_records_approved() {
        let found = vec![
            "service app mounts the host path / (volumes, in the head)".to_string(),
            "service app adds the capabilities SYS_ADMIN (cap_add, in release 1.1.0)".to_string(),
        ];
        let e = gate(&found, None).unwrap_err();
        assert_eq!(e.kind().exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "service app mounts the host path / (volumes, in the head); service app adds the capabilities SYS_ADMIN \
             (cap_add, in release 1.1.0) — host access needs the recipe in the allowlist"
        );
        assert!(!e.to_string().contains('\n'));
        let granted = gate(
            &found,
            Some("approved: repository git.example.org/coop-cloud/hello is in the allowlist (a:1)".into()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(granted.granted, found);
        assert_eq!(granted.reason, "approved: repository git.example.org/coop-cloud/hello is in the allowlist (a:1)");
        assert_eq!(gate(&[], None).unwrap(), None);
        assert_eq!(gate(&[], Some("approved".into())).unwrap(), None);
    }

    /// Runs the compose `files` (name, text) of a recipe checkout through `docker stack config`
    /// as [`inspect`] does, and evaluates the result.
    fn through_docker(f: &Fixture, files: &[(&str, &str)], env: &[(&str, &str)]) -> crate::Result<Vec<String>> {
        let ctx = f.ctx();
        for (name, text) in files {
            std::fs::write(ctx.checkout.join(name), text).unwrap();
        }
        let names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let yaml = crate::swarm::docker::stack_config(&ctx.checkout, &names, &env, &ctx.checkout)?;
        let v: Value = serde_yaml_ng::from_str(&yaml).unwrap();
        Ok(evaluate(&v, &ctx).iter().map(ToString::to_string).collect())
    }

    #[test]
    fn every_spelling_is_found_through_dockers_own_loader() {
        let f = Fixture::new("spellings");
        std::os::unix::fs::symlink(f.dir.join("outside.txt"), f.dir.join("recipe/link")).unwrap();
        let checkout = f.ctx().checkout;
        let home = std::env::var("HOME").unwrap_or_default();
        let compose = r#"
version: "3.8"
services:
  app:
    image: x
    volumes:
      - /:/hostroot:ro
      - ./sub:/sub
      - ~/x:/x
      - /var/run/docker.sock:/var/run/docker.sock
      - bound:/b
      - sock:/s
      - type: bind
        source: ${SRC}
        target: /long
      - type: tmpfs
        target: /tmp
      - data:/data
    network_mode: host
    env_file: [sub/app.env, ../outside.txt]
  web:
    image: y
    networks: [h1, h2]
    cap_add: [SYS_ADMIN]
networks:
  h1:
    external:
      name: host
  h2:
    external: true
    name: bridge
volumes:
  data:
  bound:
    driver_opts: {type: none, o: bind, device: /etc}
  sock:
    driver_opts: {type: none, o: bind, device: /run/docker.sock}
configs:
  up:
    file: ../../../../etc/hostname
  link:
    file: ./link
  fine:
    file: index.html
secrets:
  abs:
    file: /etc/hostname
"#;
        let mut got = through_docker(&f, &[("compose.yml", compose)], &[("SRC", "/srv")]).unwrap();
        got.sort();
        let up = clean(&checkout.join("../../../../etc/hostname"));
        let want = vec![
            format!(
                "config link reads the file {}, outside the recipe checkout (configs.link.file)",
                checkout.join("link").display()
            ),
            format!("config up reads the file {}, outside the recipe checkout (configs.up.file)", up.display()),
            "secret abs reads the file /etc/hostname, outside the recipe checkout (secrets.abs.file)".to_string(),
            "service app joins the host network (network_mode)".to_string(),
            format!("service app mounts the host path {} (volumes)", clean(Path::new(&format!("{home}/x"))).display()),
            "service app mounts the host path / (volumes)".to_string(),
            format!("service app mounts the host path {} (volumes)", checkout.join("sub").display()),
            "service app mounts the host path /etc through volume bound (volumes.bound.driver_opts)".to_string(),
            "service app mounts the host path /srv (volumes)".to_string(),
            "service app mounts the Docker socket /run/docker.sock through volume sock (volumes.sock.driver_opts)"
                .to_string(),
            "service app mounts the Docker socket /var/run/docker.sock (volumes)".to_string(),
            "service app reads the env file ../outside.txt, outside the recipe checkout (env_file)".to_string(),
            "service web adds the capabilities SYS_ADMIN (cap_add)".to_string(),
            format!(
                "service web joins the external network bridge, which is not one of {} (proxy) (networks.h2)",
                crate::config::EXTERNAL_NETWORKS.name
            ),
            "service web joins the host network (networks.h1)".to_string(),
        ];
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn a_later_compose_file_adding_host_access_is_found_after_the_merge() {
        let f = Fixture::new("merge");
        let base = "version: \"3.8\"\nservices:\n  app:\n    image: x\n    volumes: [data:/data]\nvolumes:\n  data:\n";
        let overlay = "version: \"3.8\"\nservices:\n  app:\n    volumes: [\"/:/hostroot:ro\"]\n";
        let got = through_docker(&f, &[("compose.yml", base), ("compose.host.yml", overlay)], &[]).unwrap();
        assert_eq!(got, vec!["service app mounts the host path / (volumes)"]);
        // A redeclared volume replaces the earlier declaration: the bind comes in by the overlay.
        let overlay = "version: \"3.8\"\nvolumes:\n  data:\n    driver_opts: {o: bind, device: /srv, type: none}\n";
        let got = through_docker(&f, &[("compose.yml", base), ("compose.vol.yml", overlay)], &[]).unwrap();
        assert_eq!(got, vec!["service app mounts the host path /srv through volume data (volumes.data.driver_opts)"]);
    }

    #[test]
    fn an_env_file_outside_the_checkout_docker_cannot_parse_is_named_but_never_quoted() {
        let f = Fixture::new("leak");
        std::fs::write(f.dir.join("outside.txt"), "PLANTED host secret\n").unwrap();
        let compose = "version: \"3.8\"\nservices:\n  app:\n    image: x\n    env_file: ../outside.txt\n";
        let e = through_docker(&f, &[("compose.yml", compose)], &[]).unwrap_err();
        assert_eq!(e.kind().exit_code(), 1);
        let msg = e.to_string();
        assert!(!msg.contains("PLANTED") && !msg.contains("host secret"), "{msg}");
        assert!(
            msg.contains(&format!(
                "reading {}, outside the recipe checkout, failed",
                f.dir.canonicalize().unwrap().join("outside.txt").display()
            )),
            "{msg}"
        );
        // Inside the checkout, Docker's message is the recipe maintainer's to read.
        std::fs::write(f.dir.join("recipe/bad.env"), "not valid\n").unwrap();
        let compose = "version: \"3.8\"\nservices:\n  app:\n    image: x\n    env_file: bad.env\n";
        let msg = through_docker(&f, &[("compose.yml", compose)], &[]).unwrap_err().to_string();
        assert!(msg.contains("variable 'not valid' contains whitespaces"), "{msg}");
    }

    #[test]
    fn lexical_cleaning_matches_go() {
        assert_eq!(clean(Path::new("/a/b/../../../../etc")), PathBuf::from("/etc"));
        assert_eq!(clean(Path::new("/a/./b/")), PathBuf::from("/a/b"));
    }
}
