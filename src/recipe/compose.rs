//! Compose files as docker's compose loader (the one `docker stack deploy` and abra use) reads
//! them: read in order, interpolated and merged, and the swarm objects they name.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::hash::Hash;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Context, Error, Result};
use crate::recipe::checkout;
use crate::recipe::interpolate::{excerpt, substitute};
use crate::run::naming::ObjectKind;

/// A recipe's compose app after reading every compose file in order, substituting and merging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compose {
    pub services: BTreeMap<String, Service>,
    pub secrets: BTreeMap<String, ObjectDecl>,
    pub configs: BTreeMap<String, ObjectDecl>,
    pub volumes: BTreeMap<String, ObjectDecl>,
    pub networks: BTreeMap<String, ObjectDecl>,
    /// Variables some file referenced without a default that the env did not set (they became
    /// ""), sorted; a deploy would warn about the same ones.
    pub unset: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub image: Option<String>,
    /// `deploy.labels`, from either the list form `["a=b"]` or the map form.
    pub deploy_labels: BTreeMap<String, String>,
    pub replicas: Option<u64>,
    pub mode: Option<String>,
    pub ports: Vec<Port>,
    pub healthcheck: Option<Healthcheck>,
    /// Names of the top-level secrets the service mounts (short form or long form `source:`).
    pub secrets: Vec<String>,
    pub configs: Vec<String>,
    /// Named volumes the service mounts; bind mounts, tmpfs and anonymous volumes are left out.
    pub volumes: Vec<String>,
    /// Where each of those is mounted: `(volume key, target path inside the container)`.
    pub volume_targets: Vec<(String, String)>,
}

/// One published or exposed port. Short-form ranges (`8000-8001:80-81`) become one entry each.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Port {
    pub target: u16,
    pub published: Option<u16>,
    /// `host` or `ingress`; `None` when not given (swarm defaults to ingress).
    pub mode: Option<String>,
    /// `tcp`, `udp` or `sctp`; `None` when not given (tcp).
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Healthcheck {
    /// `None` keeps the image's own healthcheck; the string form becomes `["CMD-SHELL", s]`.
    pub test: Option<Vec<String>>,
    /// `disable: true`, or a test of `["NONE"]`.
    pub disable: bool,
}

/// A top-level secret, config, volume or network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectDecl {
    pub name: Option<String>,
    pub external: bool,
    pub file: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A top-level object as it will be named on the swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwarmObject {
    pub kind: ObjectKind,
    /// The key under `secrets:`/`configs:`/`volumes:`/`networks:`.
    pub key: String,
    pub name: String,
    /// Not created by the deploy (and must not be removed by teardown).
    pub external: bool,
}

impl Compose {
    /// Reads `files` (relative to `dir`, in order), substitutes every string value with `env`, and
    /// merges them: later files replace scalars (`image`, `deploy.replicas`, `deploy.mode`,
    /// healthcheck `test`/`disable`), merge `deploy.labels` key by key, append `ports`, `secrets`,
    /// `configs` and `volumes` without duplicates, and replace a top-level object declared again
    /// as a whole (docker's loader, which abra uses, does that).
    pub fn load(dir: &Path, files: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Compose> {
        let mut compose = Compose::default();
        let mut unset = BTreeSet::new();
        for file in files {
            let layer = load_layer(dir, file, env, &mut unset)?;
            compose.apply(layer);
        }
        for service in compose.services.values_mut() {
            if let Some(h) = &mut service.healthcheck
                && h.test.as_ref().and_then(|t| t.first()).is_some_and(|t| t == "NONE")
            {
                h.disable = true;
            }
        }
        compose.unset = unset.into_iter().collect();
        Ok(compose)
    }

    /// The name each top-level object will have on the swarm: `name:` when given, else the key
    /// itself for external objects (docker looks those up as written), else `<stack>_<key>`.
    /// Ordered by kind (secrets, configs, volumes, networks), then key.
    pub fn swarm_object_names(&self, stack: &str) -> Vec<SwarmObject> {
        let kinds = [
            (ObjectKind::Secret, &self.secrets),
            (ObjectKind::Config, &self.configs),
            (ObjectKind::Volume, &self.volumes),
            (ObjectKind::Network, &self.networks),
        ];
        let mut out = Vec::new();
        for (kind, decls) in kinds {
            for (key, decl) in decls {
                let name = match &decl.name {
                    Some(name) => name.clone(),
                    None if decl.external => key.clone(),
                    None => format!("{stack}_{key}"),
                };
                out.push(SwarmObject { kind, key: key.clone(), name, external: decl.external });
            }
        }
        out
    }

    /// True when some service's deploy labels carry `backupbot.backup=true` after substitution.
    pub fn backup_capable(&self) -> bool {
        self.services
            .values()
            .any(|s| s.deploy_labels.get("backupbot.backup").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")))
    }

    fn apply(&mut self, layer: Layer) {
        for (name, service) in layer.services {
            self.services.entry(name).or_default().apply(service);
        }
        self.secrets.extend(layer.secrets);
        self.configs.extend(layer.configs);
        self.volumes.extend(layer.volumes);
        self.networks.extend(layer.networks);
    }
}

impl Service {
    fn apply(&mut self, layer: ServiceLayer) {
        if layer.image.is_some() {
            self.image = layer.image;
        }
        self.deploy_labels.extend(layer.deploy_labels);
        if layer.replicas.is_some() {
            self.replicas = layer.replicas;
        }
        if layer.mode.is_some() {
            self.mode = layer.mode;
        }
        append_unique(&mut self.ports, layer.ports);
        if let Some(h) = layer.healthcheck {
            let current = self.healthcheck.get_or_insert_with(Healthcheck::default);
            if h.test.is_some() {
                current.test = h.test;
            }
            if let Some(disable) = h.disable {
                current.disable = disable;
            }
        }
        append_unique(&mut self.secrets, layer.secrets);
        append_unique(&mut self.configs, layer.configs);
        append_unique(&mut self.volumes, layer.volumes);
        append_unique(&mut self.volume_targets, layer.volume_targets);
    }
}

fn append_unique<T: Eq + Hash + Clone>(into: &mut Vec<T>, items: Vec<T>) {
    let mut seen: HashSet<T> = into.iter().cloned().collect();
    for item in items {
        if seen.insert(item.clone()) {
            into.push(item);
        }
    }
}

/// One compose file's contribution, before merging.
#[derive(Default)]
struct Layer {
    services: BTreeMap<String, ServiceLayer>,
    secrets: BTreeMap<String, ObjectDecl>,
    configs: BTreeMap<String, ObjectDecl>,
    volumes: BTreeMap<String, ObjectDecl>,
    networks: BTreeMap<String, ObjectDecl>,
}

#[derive(Default)]
struct ServiceLayer {
    image: Option<String>,
    deploy_labels: BTreeMap<String, String>,
    replicas: Option<u64>,
    mode: Option<String>,
    ports: Vec<Port>,
    healthcheck: Option<HealthLayer>,
    secrets: Vec<String>,
    configs: Vec<String>,
    volumes: Vec<String>,
    volume_targets: Vec<(String, String)>,
}

/// A file may set only one of the two, so absence has to stay distinguishable from `false`.
struct HealthLayer {
    test: Option<Vec<String>>,
    disable: Option<bool>,
}

fn load_layer(
    dir: &Path,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<Layer> {
    // COMPOSE_FILE comes from a PR-authored env sample, and the files from its tree: neither may
    // point the harness at files outside the recipe.
    let shown = dir.join(file).display().to_string();
    let Some(bytes) = checkout::read_inside(dir, file).context(format!("compose file {file:?}"))? else {
        return Err(Error::bad_input(format!("{shown}: compose file {file:?} (named in COMPOSE_FILE) does not exist")));
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        Error::bad_input(format!("{shown}: not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
    })?;
    let mut doc: Value =
        serde_yaml_ng::from_str(&text).map_err(|e| Error::bad_input(format!("{shown}: invalid YAML: {e}")))?;
    doc.apply_merge().map_err(|e| Error::bad_input(format!("{shown}: invalid YAML merge key: {e}")))?;
    interpolate(&mut doc, env, unset, "").context(&shown)?;
    parse_layer(&doc).context(&shown)
}

/// Substitutes every string scalar (not mapping keys, as compose does), and drops YAML tags.
fn interpolate(
    v: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
    path: &str,
) -> Result<()> {
    match v {
        Value::String(s) if s.contains('$') => {
            let out = substitute(s, env).context(display_path(path))?;
            unset.extend(out.unset);
            *s = out.value;
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, env, unset, &format!("{path}[{i}]"))?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                interpolate(item, env, unset, &join(path, &key_label(key)))?;
            }
        }
        // Tags (`!reset`, `!override`) are compose-spec merge hints that docker's swarm loader
        // does not know; the value underneath is what counts.
        Value::Tagged(tagged) => {
            let inner = std::mem::replace(&mut tagged.value, Value::Null);
            *v = inner;
            interpolate(v, env, unset, path)?;
        }
        _ => {}
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

fn display_path(path: &str) -> &str {
    if path.is_empty() { "top level" } else { path }
}

fn key_label(key: &Value) -> String {
    scalar_text(key).unwrap_or_else(|| "?".to_owned())
}

fn bad(path: &str, msg: impl fmt::Display) -> Error {
    Error::bad_input(format!("{}: {msg}", display_path(path)))
}

fn parse_layer(doc: &Value) -> Result<Layer> {
    let mut layer = Layer::default();
    let Some(top) = mapping(doc, "")? else {
        return Ok(layer);
    };
    if let Some(services) = top.get("services").map(|v| mapping(v, "services")).transpose()? {
        for (key, value) in services.into_iter().flatten() {
            let name = key_string(key, "services")?;
            let path = join("services", &name);
            layer.services.insert(name, parse_service(value, &path)?);
        }
    }
    layer.secrets = objects(top.get("secrets"), "secrets")?;
    layer.configs = objects(top.get("configs"), "configs")?;
    layer.volumes = objects(top.get("volumes"), "volumes")?;
    layer.networks = objects(top.get("networks"), "networks")?;
    Ok(layer)
}

fn parse_service(v: &Value, path: &str) -> Result<ServiceLayer> {
    let mut s = ServiceLayer::default();
    let Some(map) = mapping(v, path)? else {
        return Ok(s);
    };
    let field = |name: &str| map.get(name).map(|v| (v, join(path, name)));
    if let Some((v, p)) = field("image") {
        s.image = non_empty(scalar(v, &p)?);
    }
    if let Some((v, p)) = field("deploy")
        && let Some(deploy) = mapping(v, &p)?
    {
        if let Some(labels) = deploy.get("labels") {
            s.deploy_labels = parse_labels(labels, &join(&p, "labels"))?;
        }
        if let Some(replicas) = deploy.get("replicas") {
            s.replicas = uint(replicas, &join(&p, "replicas"))?;
        }
        if let Some(mode) = deploy.get("mode") {
            s.mode = non_empty(scalar(mode, &join(&p, "mode"))?);
        }
    }
    if let Some((v, p)) = field("ports") {
        for (i, item) in sequence(v, &p)?.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::Mapping(m) => s.ports.push(long_port(m, &ip)?),
                other => {
                    let spec = scalar(other, &ip)?.unwrap_or_default();
                    s.ports.extend(short_port(&spec).map_err(|e| bad(&ip, e))?);
                }
            }
        }
    }
    if let Some((v, p)) = field("healthcheck")
        && let Some(h) = mapping(v, &p)?
    {
        let test = match h.get("test") {
            None | Some(Value::Null) => None,
            Some(Value::Sequence(items)) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, t)| Ok(scalar(t, &format!("{p}.test[{i}]"))?.unwrap_or_default()))
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                let cmd = scalar(other, &join(&p, "test"))?.unwrap_or_default();
                Some(vec!["CMD-SHELL".to_owned(), cmd])
            }
        };
        let disable = h.get("disable").map(|d| boolean(d, &join(&p, "disable"))).transpose()?.flatten();
        s.healthcheck = Some(HealthLayer { test, disable });
    }
    if let Some((v, p)) = field("secrets") {
        s.secrets = object_refs(v, &p)?;
    }
    if let Some((v, p)) = field("configs") {
        s.configs = object_refs(v, &p)?;
    }
    if let Some((v, p)) = field("volumes") {
        for (i, item) in sequence(v, &p)?.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            let (named, target) = match item {
                Value::Mapping(m) => {
                    let kind = m.get("type").map(|t| scalar(t, &join(&ip, "type"))).transpose()?.flatten();
                    let source = m.get("source").map(|t| scalar(t, &join(&ip, "source"))).transpose()?.flatten();
                    let target = m.get("target").map(|t| scalar(t, &join(&ip, "target"))).transpose()?.flatten();
                    (source.filter(|src| kind.as_deref() == Some("volume") && !src.is_empty()), target)
                }
                other => {
                    let spec = scalar(other, &ip)?;
                    let target = spec.as_deref().and_then(|v| v.split(':').nth(1)).map(String::from);
                    (spec.as_deref().and_then(named_volume), target)
                }
            };
            if let (Some(n), Some(t)) = (&named, target) {
                s.volume_targets.push((n.clone(), t));
            }
            s.volumes.extend(named);
        }
    }
    Ok(s)
}

/// The named volume of a short volume spec (`name:/path[:mode]`), if it mounts one: a source
/// that looks like a path is a bind mount, and a lone `/path` is an anonymous volume.
fn named_volume(spec: &str) -> Option<String> {
    let (source, _) = spec.split_once(':')?;
    let is_path = source.is_empty() || source.starts_with(['/', '.', '~', '$']);
    (!is_path).then(|| source.to_owned())
}

/// Short port syntax: `[ip:][published:]target[/protocol]`, each port possibly a range.
fn short_port(spec: &str) -> std::result::Result<Vec<Port>, String> {
    let spec = spec.trim();
    let (addr, protocol) = match spec.rsplit_once('/') {
        Some((_, "")) => return Err(format!("empty protocol in port {spec:?}")),
        Some((addr, proto)) => (addr, Some(proto.to_owned())),
        None => (spec, None),
    };
    let addr = match addr.strip_prefix('[') {
        // An IPv6 host address: `[::1]:8080:80`.
        Some(v6) => match v6.split_once("]:") {
            Some((_, rest)) => rest,
            None => return Err(format!("invalid port {spec:?}")),
        },
        None => addr,
    };
    let parts: Vec<&str> = addr.split(':').collect();
    let (published, target) = match parts.as_slice() {
        [target] => (None, *target),
        [published, target] | [_, published, target] => (Some(*published), *target),
        _ => return Err(format!("invalid port {spec:?}")),
    };
    let (t_lo, t_hi) = port_range(target).ok_or_else(|| format!("invalid target port in {spec:?}"))?;
    let published = match published.filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(port_range(p).ok_or_else(|| format!("invalid published port in {spec:?}"))?),
    };
    let port = |target, published| Port { target, published, mode: None, protocol: protocol.clone() };
    let span = t_hi - t_lo;
    Ok(match published {
        None => (t_lo..=t_hi).map(|t| port(t, None)).collect(),
        Some((p_lo, p_hi)) if p_hi - p_lo == span => {
            (t_lo..=t_hi).zip(p_lo..=p_hi).map(|(t, p)| port(t, Some(p))).collect()
        }
        // One target published on "some port of this range": which one is the swarm's choice.
        Some(_) if span == 0 => vec![port(t_lo, None)],
        Some(_) => {
            return Err(format!("published and target port ranges differ in length in {spec:?}"));
        }
    })
}

/// `80` or `8000-8010`, ports 1..=65535.
fn port_range(s: &str) -> Option<(u16, u16)> {
    let (lo, hi) = s.split_once('-').unwrap_or((s, s));
    let (lo, hi) = (port_number(lo)?, port_number(hi)?);
    (lo <= hi).then_some((lo, hi))
}

fn port_number(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p != 0)
}

fn long_port(m: &Mapping, path: &str) -> Result<Port> {
    let target_path = join(path, "target");
    let target = match m.get("target") {
        Some(v) => uint(v, &target_path)?,
        None => None,
    }
    .ok_or_else(|| bad(path, "port needs a target"))?;
    let target = u16::try_from(target)
        .ok()
        .filter(|&t| t != 0)
        .ok_or_else(|| bad(&target_path, format!("{target} is not a port number")))?;
    let published_path = join(path, "published");
    let published = match m.get("published").map(|v| scalar(v, &published_path)).transpose()?.flatten() {
        None => None,
        Some(p) if p.is_empty() => None,
        Some(p) => {
            let (lo, hi) = port_range(&p).ok_or_else(|| bad(&published_path, format!("{p:?} is not a port number")))?;
            (lo == hi).then_some(lo)
        }
    };
    let text = |key: &str| -> Result<Option<String>> {
        Ok(non_empty(m.get(key).map(|v| scalar(v, &join(path, key))).transpose()?.flatten()))
    };
    Ok(Port { target, published, mode: text("mode")?, protocol: text("protocol")? })
}

/// Service `secrets:`/`configs:` entries: a name, or a mapping with `source:`.
fn object_refs(v: &Value, path: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (i, item) in sequence(v, path)?.iter().enumerate() {
        let ip = format!("{path}[{i}]");
        let name = match item {
            Value::Mapping(m) => m.get("source").map(|s| scalar(s, &join(&ip, "source"))).transpose()?.flatten(),
            other => scalar(other, &ip)?,
        };
        match non_empty(name) {
            Some(name) => names.push(name),
            None => {
                return Err(bad(&ip, "reference without a name (expected a name or `source:`)"));
            }
        }
    }
    Ok(names)
}

fn objects(v: Option<&Value>, path: &str) -> Result<BTreeMap<String, ObjectDecl>> {
    let mut out = BTreeMap::new();
    let Some(map) = v.map(|v| mapping(v, path)).transpose()?.flatten() else {
        return Ok(out);
    };
    for (key, value) in map {
        let key = key_string(key, path)?;
        let p = join(path, &key);
        let decl = match value {
            Value::Null => ObjectDecl::default(),
            Value::Mapping(m) => {
                let text = |k: &str| -> Result<Option<String>> {
                    Ok(non_empty(m.get(k).map(|v| scalar(v, &join(&p, k))).transpose()?.flatten()))
                };
                let mut decl = ObjectDecl {
                    name: text("name")?,
                    file: text("file")?,
                    labels: match m.get("labels") {
                        Some(l) => parse_labels(l, &join(&p, "labels"))?,
                        None => BTreeMap::new(),
                    },
                    external: false,
                };
                match m.get("external") {
                    // The legacy form `external: {name: x}` both marks it external and names it.
                    Some(Value::Mapping(ext)) => {
                        decl.external = true;
                        if decl.name.is_none() {
                            let ext_name = ext.get("name").map(|n| scalar(n, &join(&p, "external.name")));
                            decl.name = non_empty(ext_name.transpose()?.flatten());
                        }
                    }
                    Some(other) => decl.external = boolean(other, &join(&p, "external"))?.unwrap_or(false),
                    None => {}
                }
                decl
            }
            _ => return Err(bad(&p, "expected a mapping")),
        };
        out.insert(key, decl);
    }
    Ok(out)
}

/// Labels in list form (`- a=b`, a bare `a` meaning "") or map form.
fn parse_labels(v: &Value, path: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let Some(entry) = scalar(item, &format!("{path}[{i}]"))? else {
                    continue;
                };
                let (k, v) = entry.split_once('=').unwrap_or((&entry, ""));
                labels.insert(k.to_owned(), v.to_owned());
            }
        }
        Value::Mapping(m) => {
            for (k, v) in m {
                let key = key_string(k, path)?;
                let value = scalar(v, &join(path, &key))?.unwrap_or_default();
                labels.insert(key, value);
            }
        }
        _ => return Err(bad(path, "expected a list of key=value or a mapping")),
    }
    Ok(labels)
}

/// `None` for null; an error for anything but a mapping.
fn mapping<'v>(v: &'v Value, path: &str) -> Result<Option<&'v Mapping>> {
    match v {
        Value::Null => Ok(None),
        Value::Mapping(m) => Ok(Some(m)),
        _ => Err(bad(path, "expected a mapping")),
    }
}

fn sequence<'v>(v: &'v Value, path: &str) -> Result<&'v [Value]> {
    match v {
        Value::Null => Ok(&[]),
        Value::Sequence(items) => Ok(items),
        _ => Err(bad(path, "expected a list")),
    }
}

/// Strings, numbers and booleans read as text; null as `None`.
fn scalar(v: &Value, path: &str) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        other => scalar_text(other).map(Some).ok_or_else(|| bad(path, "expected a string")),
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn key_string(k: &Value, path: &str) -> Result<String> {
    scalar_text(k).ok_or_else(|| bad(path, "keys must be strings"))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Numbers, or strings holding one (what substitution leaves behind, e.g. `${REPLICAS:-1}`).
fn uint(v: &Value, path: &str) -> Result<Option<u64>> {
    let invalid = || bad(path, format!("expected a non-negative integer, found {}", excerpt(&key_label(v))));
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_u64().map(Some).ok_or_else(invalid),
        Value::String(s) if s.trim().is_empty() => Ok(None),
        Value::String(s) => s.trim().parse().map(Some).map_err(|_| invalid()),
        _ => Err(invalid()),
    }
}

/// Booleans, or the strings docker's loader accepts for them after substitution.
fn boolean(v: &Value, path: &str) -> Result<Option<bool>> {
    let invalid = || bad(path, format!("expected true or false, found {}", excerpt(&key_label(v))));
    match v {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "true" | "yes" | "y" | "on" => Ok(Some(true)),
            "false" | "no" | "n" | "off" => Ok(Some(false)),
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::recipe::interpolate::tests::{garbage, vars};
    use std::path::PathBuf;

    // --- Compose --------------------------------------------------------------------------

    /// A scratch directory removed on drop; std only, so no dev-dependency is needed.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(name: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ccci-recipe-{}-{name}-{n}", std::process::id()));
            let _ = fs_err::remove_dir_all(&dir);
            fs_err::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
        fn with(name: &str, files: &[(&str, &str)]) -> TempDir {
            let dir = TempDir::new(name);
            for (file, text) in files {
                let path = dir.path().join(file);
                if let Some(parent) = path.parent() {
                    fs_err::create_dir_all(parent).unwrap();
                }
                fs_err::write(path, text).unwrap();
            }
            dir
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs_err::remove_dir_all(&self.0);
        }
    }

    fn load(files: &[(&str, &str)], names: &[&str], env: &[(&str, &str)]) -> Result<Compose> {
        let dir = TempDir::with("compose", files);
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        Compose::load(dir.path(), &names, &vars(env))
    }

    const BASE: &str = r#"
version: "3.8"
x-env: &common
  LANG: C
services:
  app:
    image: ${REGISTRY:-example}/app:${APP_VERSION:-1.0}
    environment:
      <<: *common
    ports:
      - "8080:80"
      - 9000
    secrets:
      - db_password
      - source: api_key
        target: /run/secrets/key
    configs:
      - source: nginx_conf
        target: /etc/nginx.conf
    volumes:
      - data:/var/lib/data
      - /srv/host:/host
      - ./rel:/rel
      - type: volume
        source: cache
        target: /cache
      - type: tmpfs
        target: /dev/shm
      - /anonymous
    healthcheck:
      test: curl -f http://localhost
      interval: 30s
    deploy:
      replicas: ${REPLICAS:-2}
      labels:
        - "traefik.enable=true"
        - "traefik.http.routers.${STACK_NAME}.rule=Host(`${DOMAIN}`)"
        - "backupbot.backup=${ENABLE_BACKUPS:-true}"
        - "bare"
  db:
    image: postgres:15
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -U $$POSTGRES_USER"]
    deploy:
      mode: global
      labels:
        backupbot.backup.pre-hook: "/dump.sh"
        numeric: 5
volumes:
  data:
  cache:
    name: shared_cache
networks:
  proxy:
    external: true
  internal:
secrets:
  db_password:
    external: true
    name: ${STACK_NAME}_db_password_${SECRET_DB_PASSWORD_VERSION:-v1}
  api_key:
    file: ./api_key.txt
configs:
  nginx_conf:
    name: ${STACK_NAME}_nginx_conf_${NGINX_CONF_VERSION}
    file: nginx.conf.tmpl
    labels:
      purpose: web
"#;

    const STACK: &str = "hell-3fa9c2_ccci_localhost";

    fn base_env() -> Vec<(&'static str, &'static str)> {
        vec![("STACK_NAME", STACK), ("DOMAIN", "hell-3fa9c2.ccci.localhost")]
    }

    #[test]
    fn compose_reads_and_substitutes_one_file() {
        let c = load(&[("compose.yml", BASE)], &["compose.yml"], &base_env()).unwrap();
        let app = &c.services["app"];
        assert_eq!(app.image.as_deref(), Some("example/app:1.0"));
        assert_eq!(app.replicas, Some(2));
        assert_eq!(app.mode, None);
        assert_eq!(app.deploy_labels["traefik.enable"], "true");
        assert_eq!(
            app.deploy_labels[&format!("traefik.http.routers.{STACK}.rule")],
            "Host(`hell-3fa9c2.ccci.localhost`)"
        );
        assert_eq!(app.deploy_labels["bare"], "");
        assert_eq!(
            app.ports,
            [
                Port { target: 80, published: Some(8080), mode: None, protocol: None },
                Port { target: 9000, published: None, mode: None, protocol: None },
            ]
        );
        assert_eq!(app.secrets, ["db_password", "api_key"]);
        assert_eq!(app.configs, ["nginx_conf"]);
        assert_eq!(app.volumes, ["data", "cache"]);
        let hc = app.healthcheck.as_ref().unwrap();
        assert_eq!(hc.test.as_deref(), Some(&["CMD-SHELL".to_owned(), "curl -f http://localhost".to_owned()][..]));
        assert!(!hc.disable);

        let db = &c.services["db"];
        assert_eq!(db.mode.as_deref(), Some("global"));
        assert_eq!(db.deploy_labels["numeric"], "5");
        let test = db.healthcheck.as_ref().and_then(|h| h.test.clone()).unwrap();
        assert_eq!(test, ["CMD-SHELL", "pg_isready -U $POSTGRES_USER"]);

        assert_eq!(c.secrets["db_password"].name.as_deref(), Some(&*format!("{STACK}_db_password_v1")));
        assert!(c.secrets["db_password"].external);
        assert_eq!(c.secrets["api_key"].file.as_deref(), Some("./api_key.txt"));
        assert_eq!(c.configs["nginx_conf"].labels["purpose"], "web");
        assert!(c.networks["proxy"].external);
        assert_eq!(c.volumes["data"], ObjectDecl::default());
        // NGINX_CONF_VERSION has no default and is not set: a deploy would warn about it.
        assert_eq!(c.unset, ["NGINX_CONF_VERSION"]);
        assert!(c.backup_capable());
    }

    #[test]
    fn compose_swarm_object_names() {
        let c = load(&[("compose.yml", BASE)], &["compose.yml"], &base_env()).unwrap();
        let obj = |kind, key: &str, name: String, external| SwarmObject { kind, key: key.to_owned(), name, external };
        use ObjectKind::*;
        assert_eq!(
            c.swarm_object_names(STACK),
            [
                obj(Secret, "api_key", format!("{STACK}_api_key"), false),
                obj(Secret, "db_password", format!("{STACK}_db_password_v1"), true),
                obj(Config, "nginx_conf", format!("{STACK}_nginx_conf_"), false),
                obj(Volume, "cache", "shared_cache".into(), false),
                obj(Volume, "data", format!("{STACK}_data"), false),
                obj(Network, "internal", format!("{STACK}_internal"), false),
                // External objects are looked up by their key as written, never stack-prefixed.
                obj(Network, "proxy", "proxy".into(), true),
            ]
        );
        assert!(Secret == "secret" && Network == *"network");
        assert_eq!(format!("{Config}"), "config");
        let json = serde_json::to_string(&obj(Volume, "v", "n".into(), false)).unwrap();
        assert_eq!(json, r#"{"kind":"volume","key":"v","name":"n","external":false}"#);
    }

    #[test]
    fn compose_backup_capability_follows_substitution() {
        let only = |value: &str| {
            let text = format!("services:\n  app:\n    deploy:\n      labels:\n        - backupbot.backup={value}\n");
            move |env: &[(&str, &str)]| load(&[("compose.yml", &text)], &["compose.yml"], env).unwrap().backup_capable()
        };
        let by_env = only("${ENABLE_BACKUPS:-true}");
        assert!(by_env(&[]));
        assert!(by_env(&[("ENABLE_BACKUPS", "true")]));
        assert!(!by_env(&[("ENABLE_BACKUPS", "false")]));
        assert!(by_env(&[("ENABLE_BACKUPS", "")]));
        assert!(only("TRUE")(&[]));
        assert!(!only("yes-please")(&[]));
        let map_form = "services:\n  db:\n    deploy:\n      labels:\n        backupbot.backup: true\n";
        assert!(load(&[("compose.yml", map_form)], &["compose.yml"], &[]).unwrap().backup_capable());
        let none = "services:\n  app:\n    image: x\n";
        assert!(!load(&[("compose.yml", none)], &["compose.yml"], &[]).unwrap().backup_capable());
    }

    #[test]
    fn compose_merges_files_in_order() {
        let overlay = r#"
services:
  app:
    image: other/app:2.0
    ports:
      - "8080:80"
      - target: 443
        published: 443
        mode: host
        protocol: tcp
    secrets:
      - db_password
      - smtp_password
    volumes:
      - data:/var/lib/data
      - extra:/extra
    healthcheck:
      disable: true
    deploy:
      replicas: "1"
      labels:
        traefik.enable: "false"
        added: "yes"
  worker:
    image: worker:1
secrets:
  smtp_password:
    external: true
  api_key:
    name: redeclared
volumes:
  extra:
"#;
        let c = load(
            &[("compose.yml", BASE), ("compose.smtp.yml", overlay)],
            &["compose.yml", "compose.smtp.yml"],
            &base_env(),
        )
        .unwrap();
        let app = &c.services["app"];
        assert_eq!(app.image.as_deref(), Some("other/app:2.0"));
        assert_eq!(app.replicas, Some(1));
        // Labels merge key by key: list form first, map form later, later wins.
        assert_eq!(app.deploy_labels["traefik.enable"], "false");
        assert_eq!(app.deploy_labels["added"], "yes");
        assert_eq!(app.deploy_labels["backupbot.backup"], "true");
        // Lists append without duplicates, in first-seen order.
        assert_eq!(app.ports.len(), 3);
        assert_eq!(
            app.ports[2],
            Port { target: 443, published: Some(443), mode: Some("host".into()), protocol: Some("tcp".into()) }
        );
        assert_eq!(app.secrets, ["db_password", "api_key", "smtp_password"]);
        assert_eq!(app.volumes, ["data", "cache", "extra"]);
        // Healthcheck merges field by field: the overlay disabled it without dropping the test.
        let hc = app.healthcheck.as_ref().unwrap();
        assert!(hc.disable);
        assert_eq!(hc.test.as_ref().map(|t| t[0].as_str()), Some("CMD-SHELL"));
        assert_eq!(c.services["worker"].image.as_deref(), Some("worker:1"));
        // A redeclared top-level object replaces the earlier declaration as a whole.
        assert_eq!(c.secrets["api_key"], ObjectDecl { name: Some("redeclared".into()), ..ObjectDecl::default() });
        assert!(c.secrets["smtp_password"].external);
        assert!(c.secrets["db_password"].external);
        assert!(c.volumes.contains_key("extra"));
        assert_eq!(c.networks.len(), 2);
    }

    #[test]
    fn compose_healthcheck_forms() {
        let text = r#"
services:
  none:
    healthcheck:
      test: ["NONE"]
  interval_only:
    healthcheck:
      interval: 5s
  off:
    healthcheck:
      disable: "${HC_OFF:-yes}"
"#;
        let c = load(&[("compose.yml", text)], &["compose.yml"], &[]).unwrap();
        assert!(c.services["none"].healthcheck.as_ref().unwrap().disable);
        assert_eq!(c.services["interval_only"].healthcheck, Some(Healthcheck { test: None, disable: false }));
        assert!(c.services["off"].healthcheck.as_ref().unwrap().disable);
    }

    #[test]
    fn compose_short_port_syntax() {
        let p = |t, pb: Option<u16>, proto: Option<&str>| Port {
            target: t,
            published: pb,
            mode: None,
            protocol: proto.map(Into::into),
        };
        assert_eq!(short_port("80").unwrap(), [p(80, None, None)]);
        assert_eq!(short_port("8080:80").unwrap(), [p(80, Some(8080), None)]);
        assert_eq!(short_port("127.0.0.1:8080:80").unwrap(), [p(80, Some(8080), None)]);
        assert_eq!(short_port("127.0.0.1::80").unwrap(), [p(80, None, None)]);
        assert_eq!(short_port("[::1]:53:53/udp").unwrap(), [p(53, Some(53), Some("udp"))]);
        assert_eq!(short_port("1935:1935/tcp").unwrap(), [p(1935, Some(1935), Some("tcp"))]);
        assert_eq!(short_port("8000-8001:9000-9001").unwrap(), [p(9000, Some(8000), None), p(9001, Some(8001), None)]);
        assert_eq!(short_port("3000-3002").unwrap().len(), 3);
        assert_eq!(short_port("8000-8010:80").unwrap(), [p(80, None, None)]);
        assert_eq!(short_port("1-65535").unwrap().len(), 65535);
        for bad in
            ["", "abc", "0", "70000", "80:", "8080:80/", "1:2:3:4", "9-8", "8000-8002:80-81", "+80", "[::1]80", "-1"]
        {
            assert!(short_port(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn compose_errors_name_file_and_place() {
        let e =
            load(&[("compose.yml", "services:\n  app:\n    image: [unclosed\n")], &["compose.yml"], &[]).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);
        assert!(e.message().contains("compose.yml: invalid YAML") && e.message().contains("line"), "{}", e.message());

        let e = load(&[("compose.yml", "services:\n  app:\n    image: ${TAG:?pick a tag}\n")], &["compose.yml"], &[])
            .unwrap_err();
        assert!(
            e.message()
                .ends_with("compose.yml: services.app.image: required variable TAG is missing a value: pick a tag"),
            "{}",
            e.message()
        );

        let e = load(
            &[("compose.yml", "services:\n  app:\n    environment:\n      - X=${BROKEN\n")],
            &["compose.yml"],
            &[],
        )
        .unwrap_err();
        assert!(
            e.message().contains("compose.yml: services.app.environment[0]: invalid interpolation format"),
            "{}",
            e.message()
        );

        let e =
            load(&[("compose.yml", "services:\n  app:\n    deploy:\n      replicas: lots\n")], &["compose.yml"], &[])
                .unwrap_err();
        assert!(
            e.message().ends_with(
                "compose.yml: services.app.deploy.replicas: expected a non-negative integer, found \"lots\""
            ),
            "{}",
            e.message()
        );

        let e = load(&[("compose.yml", "services:\n  app:\n    ports:\n      - \"http:80\"\n")], &["compose.yml"], &[])
            .unwrap_err();
        assert!(e.message().contains("services.app.ports[0]: invalid published port"), "{}", e.message());

        let e =
            load(&[("compose.yml", "services:\n  app:\n    secrets:\n      - target: /x\n")], &["compose.yml"], &[])
                .unwrap_err();
        assert!(e.message().contains("services.app.secrets[0]: reference without a name"), "{}", e.message());

        let e = load(&[("compose.yml", "secrets: [a, b]\n")], &["compose.yml"], &[]).unwrap_err();
        assert!(e.message().ends_with("compose.yml: secrets: expected a mapping"), "{}", e.message());

        let e = load(&[("compose.yml", "- just\n- a list\n")], &["compose.yml"], &[]).unwrap_err();
        assert!(e.message().ends_with("compose.yml: top level: expected a mapping"), "{}", e.message());

        let e =
            load(&[("compose.yml", "networks:\n  proxy:\n    external: maybe\n")], &["compose.yml"], &[]).unwrap_err();
        assert!(e.message().contains("networks.proxy.external: expected true or false"), "{}", e.message());
    }

    #[test]
    fn compose_file_paths() {
        let files = [
            ("compose.yml", "services:\n  app:\n    image: a\n"),
            ("sub/compose.tune.yml", "services:\n  db:\n    image: b\n"),
        ];
        let c = load(&files, &["compose.yml", "sub/compose.tune.yml"], &[]).unwrap();
        assert_eq!(c.services["db"].image.as_deref(), Some("b"));

        let e = load(&files, &["compose.yml", "compose.missing.yml"], &[]).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);
        assert!(
            e.message().contains("compose.missing.yml") && e.message().contains("does not exist"),
            "{}",
            e.message()
        );

        for outside in ["../compose.yml", "/etc/passwd", "sub/../../x.yml"] {
            let e = load(&files, &[outside], &[]).unwrap_err();
            assert_eq!(e.kind(), Kind::OpFailed, "the recipe's fault");
            assert!(e.message().contains(outside) && e.message().contains("refused"), "{}", e.message());
        }
    }

    #[test]
    fn a_compose_file_symlinked_outside_the_recipe_is_refused_not_read() {
        let host = TempDir::with("compose-host", &[("host.yml", "services:\n  hostonly: {image: leaked}\n")]);
        let dir = TempDir::with("compose-links", &[("compose.base.yml", "services:\n  app: {image: a}\n")]);
        std::os::unix::fs::symlink(host.path().join("host.yml"), dir.path().join("compose.yml")).unwrap();
        std::os::unix::fs::symlink(host.path(), dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("compose.base.yml", dir.path().join("compose.inside.yml")).unwrap();
        let env = vars(&[]);
        for file in ["compose.yml", "sub/host.yml"] {
            let e = Compose::load(dir.path(), &[file.to_string()], &env).unwrap_err();
            assert_eq!(e.kind(), Kind::OpFailed, "{file}: {e}");
            assert!(e.message().contains("outside the recipe checkout") && !e.message().contains("leaked"), "{e}");
        }
        let c = Compose::load(dir.path(), &["compose.inside.yml".to_string()], &env).unwrap();
        assert_eq!(c.services["app"].image.as_deref(), Some("a"), "a link inside the recipe is followed");
    }

    #[test]
    fn compose_odd_but_valid_documents() {
        let c = load(&[("compose.yml", "")], &["compose.yml"], &[]).unwrap();
        assert_eq!(c, Compose::default());
        let c = load(&[("compose.yml", "version: '3.8'\nservices:\n  app:\nunknown: {a: 1}\n")], &["compose.yml"], &[])
            .unwrap();
        assert_eq!(c.services["app"], Service::default());
        // Tags are unwrapped; legacy `external: {name: ...}` names the object.
        let text = "services:\n  app:\n    image: !override img:${T:-1}\nnetworks:\n  proxy:\n    external:\n      name: traefik_proxy\n";
        let c = load(&[("compose.yml", text)], &["compose.yml"], &[]).unwrap();
        assert_eq!(c.services["app"].image.as_deref(), Some("img:1"));
        assert_eq!(
            c.networks["proxy"],
            ObjectDecl { name: Some("traefik_proxy".into()), external: true, ..ObjectDecl::default() }
        );
        // An image that substitutes to nothing is no image.
        let c = load(&[("compose.yml", "services:\n  app:\n    image: ${IMAGE}\n")], &["compose.yml"], &[]).unwrap();
        assert_eq!(c.services["app"].image, None);
        assert_eq!(c.unset, ["IMAGE"]);
    }

    #[test]
    fn compose_hostile_files_error_cleanly() {
        let dir = TempDir::new("hostile");
        let bytes: Vec<u8> = (0..65536u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        fs_err::write(dir.path().join("binary.yml"), &bytes).unwrap();
        let e = Compose::load(dir.path(), &["binary.yml".into()], &vars(&[])).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);
        assert!(e.message().contains("binary.yml"), "{}", e.message());

        // Exponential alias expansion ("billion laughs") is refused by the YAML loader.
        let mut laughs = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in
            ["a", "b", "c", "d", "e", "f", "g", "h"].iter().zip(["b", "c", "d", "e", "f", "g", "h", "i"])
        {
            laughs += &format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            );
        }
        fs_err::write(dir.path().join("laughs.yml"), laughs).unwrap();
        let e = Compose::load(dir.path(), &["laughs.yml".into()], &vars(&[])).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);

        let deep = "a: ".to_owned() + &"[".repeat(10_000) + &"]".repeat(10_000) + "\n";
        fs_err::write(dir.path().join("deep.yml"), deep).unwrap();
        let e = Compose::load(dir.path(), &["deep.yml".into()], &vars(&[])).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);

        let big = format!("services:\n  app:\n    image: \"{}${{X}}\"\n", "i".repeat(1 << 20));
        fs_err::write(dir.path().join("big.yml"), big).unwrap();
        let c = Compose::load(dir.path(), &["big.yml".into()], &vars(&[("X", ":1")])).unwrap();
        assert_eq!(c.services["app"].image.as_ref().map(String::len), Some((1 << 20) + 2));

        for seed in 0..200u32 {
            fs_err::write(dir.path().join("junk.yml"), garbage(seed, 120)).unwrap();
            if let Err(e) = Compose::load(dir.path(), &["junk.yml".into()], &vars(&[])) {
                assert!(e.message().contains("junk.yml"), "{}", e.message());
            }
        }
    }
}
