//! What the operator must provide before a recipe can deploy on this swarm: the external
//! networks, secrets and configs a recipe joins or mounts under names that are not the run's own
//! (`proxy`, the traefik recipe's network, on every Co-op Cloud server). Checked before the run
//! registers; a missing one is the environment's error (exit 3), said with its remedy first.
//!
//! External objects named into the run's stack (`${STACK_NAME}_…`) are the run's own: the
//! driver generates those secrets, and one it cannot provide is the recipe's fault.

use xshell::Shell;

use crate::error::{Error, Kind, Result};
use crate::recipe::compose::{Compose, SwarmObject};
use crate::run::naming::ObjectKind;
use crate::run::naming::StackName;

/// The external objects of `compose` that the operator must provide: external, and not named
/// into `stack`. Volumes are left out: docker creates a missing external volume's name on the
/// node as a local volume, it does not refuse. Of several compose files (the head and the base
/// release), each object once, in the order first met.
pub fn operator_provided(composes: &[&Compose], stack: &StackName) -> Vec<SwarmObject> {
    let prefix = stack.prefix();
    let mut seen = std::collections::BTreeSet::new();
    composes
        .iter()
        .flat_map(|c| c.swarm_object_names(stack.as_str()))
        .filter(|o| o.external && !o.name.starts_with(&prefix) && o.kind != ObjectKind::Volume)
        .filter(|o| seen.insert((o.kind.as_str(), o.name.clone())))
        .collect()
}

/// What docker says of one object the operator must provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// There, and usable by a stack.
    Usable,
    Missing,
    /// A network that exists but is not swarm-scoped (a `bridge` network of the same name).
    NotSwarmScoped {
        driver: String,
        scope: String,
    },
}

/// The problem with `obj`, remedy first; `None` when it is usable.
pub fn problem(obj: &SwarmObject, found: &Found) -> Option<String> {
    let name = &obj.name;
    match (found, obj.kind) {
        (Found::Usable, _) => None,
        (Found::Missing, ObjectKind::Network) => Some(format!(
            "external network {name} missing on this swarm: create it with docker network create -d overlay --attachable {name}"
        )),
        (Found::Missing, ObjectKind::Secret) => Some(format!(
            "external secret {name} missing on this swarm: create it with printf %s VALUE | docker secret create {name} -"
        )),
        (Found::Missing, ObjectKind::Config) => Some(format!(
            "external config {name} missing on this swarm: create it with docker config create {name} FILE"
        )),
        (Found::Missing, ObjectKind::Volume) => None,
        // Compose files declare no service as an external object.
        (Found::Missing, ObjectKind::Service) => None,
        (Found::NotSwarmScoped { driver, scope }, _) => Some(format!(
            "external network {name} on this swarm is not swarm-scoped (driver {driver}, scope {scope}): remove it and create it with docker network create -d overlay --attachable {name}"
        )),
    }
}

/// `problem`, plus, for a network a recipe outside the allowlist may not join, that joining it
/// also needs the operator's leave; for another stack's secret or config, that such a recipe may
/// not use it at all (`crate::swarm::hostaccess`).
fn with_allowance(problem: String, obj: &SwarmObject, allowed: Option<&[String]>) -> String {
    match allowed {
        Some(names) if obj.kind == ObjectKind::Network && !names.contains(&obj.name) => format!(
            "{problem} (and, for a recipe outside the allowlist, add it to {}: joining it is host access)",
            crate::config::EXTERNAL_NETWORKS.name
        ),
        Some(_) if obj.kind != ObjectKind::Network => format!(
            "{problem} (a recipe outside the allowlist may not use it even then: another stack's {} is host access)",
            obj.kind.as_str()
        ),
        _ => problem,
    }
}

/// Asks docker about `obj`.
pub fn look(sh: &Shell, obj: &SwarmObject) -> Result<Found> {
    // Swarm services may join the node's `host` network (local scope, always there); whether a
    // recipe may is the host-access policy's to say (`crate::swarm::hostaccess`), as the recipe's fault.
    if obj.kind == ObjectKind::Network && obj.name == "host" {
        return Ok(Found::Usable);
    }
    let kind = obj.kind.as_str();
    let mut args = vec![kind.to_string(), "inspect".into()];
    if obj.kind == ObjectKind::Network {
        args.extend(["--format".into(), "{{.Scope}} {{.Driver}}".into()]);
    }
    args.push(obj.name.clone());
    let cmd = crate::swarm::docker::docker(sh).args(&args);
    match crate::process::capture(cmd, &format!("docker {kind} inspect {}", obj.name), Kind::Environment) {
        Ok(out) if obj.kind == ObjectKind::Network => {
            let out = out.stdout.trim().to_string();
            let (scope, driver) = out.split_once(' ').unwrap_or((out.as_str(), ""));
            Ok(if scope == "swarm" {
                Found::Usable
            } else {
                Found::NotSwarmScoped { driver: driver.to_string(), scope: scope.to_string() }
            })
        }
        Ok(_) => Ok(Found::Usable),
        Err(e) if e.message().to_ascii_lowercase().contains("no such") || e.message().contains("not found") => {
            Ok(Found::Missing)
        }
        Err(e) => Err(e),
    }
}

/// Fails with the environment's error when an object of `objects` is not usable on this swarm,
/// naming every one and its remedy. `allowed`: the external networks the recipe may join without
/// approval (`CCCI_EXTERNAL_NETWORKS`), or `None` when it is approved; a network outside it gets
/// that said after its remedy.
pub fn check(sh: &Shell, objects: &[SwarmObject], allowed: Option<&[String]>) -> Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    let mut problems = vec![];
    for obj in objects {
        if !seen.insert((obj.kind.as_str(), obj.name.clone())) {
            continue;
        }
        if let Some(p) = problem(obj, &look(sh, obj)?) {
            problems.push(with_allowance(p, obj, allowed));
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(Error::env(problems.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_network_is_there_for_services_and_left_to_the_host_access_policy() {
        let sh = Shell::new().unwrap();
        assert_eq!(look(&sh, &obj(ObjectKind::Network, "host", true)).unwrap(), Found::Usable);
    }

    fn obj(kind: ObjectKind, name: &str, external: bool) -> SwarmObject {
        SwarmObject { kind, key: name.into(), name: name.into(), external }
    }

    #[test]
    fn only_external_objects_not_named_into_the_stack_are_the_operators() {
        let stack = StackName::parse("hell-3fa9c2_ci_example_org").unwrap();
        let mut c = Compose::default();
        for (key, name, external) in
            [("proxy", None, true), ("backend", None, false), ("outside", Some("ccci_case_absent_net"), true)]
        {
            c.networks.insert(
                key.into(),
                crate::recipe::compose::ObjectDecl { name: name.map(String::from), external, ..Default::default() },
            );
        }
        c.secrets.insert(
            "api_key".into(),
            crate::recipe::compose::ObjectDecl {
                name: Some("hell-3fa9c2_ci_example_org_api_key_v1".into()),
                external: true,
                ..Default::default()
            },
        );
        c.secrets.insert("smtp".into(), crate::recipe::compose::ObjectDecl { external: true, ..Default::default() });
        c.volumes.insert("shared".into(), crate::recipe::compose::ObjectDecl { external: true, ..Default::default() });
        let names: Vec<String> =
            operator_provided(&[&c], &stack).iter().map(|o| format!("{} {}", o.kind.as_str(), o.name)).collect();
        assert_eq!(names, ["secret smtp", "network ccci_case_absent_net", "network proxy"]);
        // The head and its base release needing the same objects: each is named (and checked) once.
        let mut base = c.clone();
        base.secrets.clear();
        let names: Vec<String> =
            operator_provided(&[&base, &c], &stack).iter().map(|o| format!("{} {}", o.kind.as_str(), o.name)).collect();
        assert_eq!(names, ["network ccci_case_absent_net", "network proxy", "secret smtp"]);
    }

    #[test]
    fn the_remedy_comes_first_and_fits_one_report_line() {
        let p = problem(&obj(ObjectKind::Network, "proxy", true), &Found::Missing).unwrap();
        assert_eq!(
            p,
            "external network proxy missing on this swarm: create it with docker network create -d overlay --attachable proxy"
        );
        assert!(p.chars().count() <= 160);
        let p = problem(&obj(ObjectKind::Secret, "smtp_password", true), &Found::Missing).unwrap();
        assert!(p.starts_with("external secret smtp_password missing on this swarm: create it with "), "{p}");
        let bridge = Found::NotSwarmScoped { driver: "bridge".into(), scope: "local".into() };
        let p = problem(&obj(ObjectKind::Network, "proxy", true), &bridge).unwrap();
        assert!(p.contains("not swarm-scoped (driver bridge, scope local)"), "{p}");
        assert_eq!(problem(&obj(ObjectKind::Network, "proxy", true), &Found::Usable), None);
        let allowed = ["proxy".to_string()];
        let p = with_allowance("x".into(), &obj(ObjectKind::Network, "outside", true), Some(&allowed));
        assert_eq!(
            p,
            format!(
                "x (and, for a recipe outside the allowlist, add it to {}: joining it is host access)",
                crate::config::EXTERNAL_NETWORKS.name
            )
        );
        assert_eq!(with_allowance("x".into(), &obj(ObjectKind::Network, "proxy", true), Some(&allowed)), "x");
        assert_eq!(with_allowance("x".into(), &obj(ObjectKind::Network, "outside", true), None), "x");
        assert_eq!(
            with_allowance("x".into(), &obj(ObjectKind::Secret, "smtp", true), Some(&allowed)),
            "x (a recipe outside the allowlist may not use it even then: another stack's secret is host access)"
        );
        assert_eq!(with_allowance("x".into(), &obj(ObjectKind::Secret, "smtp", true), None), "x");
    }
}
