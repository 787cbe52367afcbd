//! ccci's prediction of a deploy against the docker CLI's own compose loader.
//!
//! ccci reads compose files itself (object names, labels, images) to know what a deploy will
//! create and to prove an upgrade moved. `docker stack config` (through `ccci::swarm::docker::stack_config`)
//! runs the very loader `docker stack deploy` uses, without a swarm, so these tests ask it and compare: every interpolation form
//! real recipes use, one by one, and every recipe of `../shared/recipe-corpus` as a whole.
//!
//! Needs the docker CLI (no daemon, no swarm). The corpus part says on stderr when it skips.

mod common;

use std::path::{Path, PathBuf};

use ccci::recipe::compose::Compose;
use ccci::recipe::env_file::{EnvFile, compose_files};
use ccci::recipe::interpolate::substitute;
use serde_yaml_ng::Value;

use common::{Sandbox, corpus};

/// `docker stack config` of `files` in `dir` with exactly `env` (plus the docker client settings
/// ccci passes through), through ccci's own wrapper — the one the host-access policy reads
/// recipes with: the loader's output, or its error message.
fn docker_stack_config(dir: &Path, files: &[String], env: &[(String, String)]) -> Result<Value, String> {
    match ccci::swarm::docker::stack_config(dir, files, env, dir) {
        Ok(yaml) => Ok(serde_yaml_ng::from_str(&yaml).expect("docker stack config printed YAML")),
        Err(e) => {
            assert_eq!(e.kind(), ccci::Kind::OpFailed, "docker stack config could not run: {e}");
            Err(e.message().to_string())
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// Every form real recipes use (and the corner cases around them), each under three
/// environments: the variable set, set but empty, unset.
const FORMS: &[&str] = &[
    "${V}",
    "$V",
    "$V.suffix",
    "$V}",
    "${V:-default}",
    "${V-default}",
    "${V:?must be set}",
    "${V?must be set}",
    "${V:?}",
    "$V:-unbraced default",
    "$V-unbraced/default",
    "$V:x",
    "$$",
    "$${1}$${2}",
    "pg_isready -U $$POSTGRES_USER",
    "${V:-${W}}",
    "${V:-${W:-nested}}",
    "${V:-x}y}",
    "${V-$$}",
    "${V:?x-y}",
    "${V-x:-y}",
    "${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION:-v1}",
    "Host(`${DOMAIN}`${EXTRA_DOMAINS})",
    "${CONTAINER_REGISTRY:-bonfirenetworks/bonfire}:${APP_VERSION:-1.0.6}-${APP_FLAVOUR:-social}",
    "/tmp:size=${DB_MEMORY_LIMIT:-1024}M^",
    "${V:+alternate}",
    "${V+alternate}",
    "cost $5",
    "a $ b",
    "trailing $",
    "${1}",
    "${ V}",
    "${V",
    "${}",
];

#[test]
fn each_interpolation_form_gives_what_docker_stack_config_gives() {
    let scratch = Sandbox::new("interpolation-forms");
    let mut mismatches = vec![];
    let mut checked = 0;
    for v in [Some("val"), Some(""), None] {
        let mut env: Vec<(String, String)> = vec![
            ("W".into(), "w".into()),
            ("STACK_NAME".into(), "hell-3fa9c2_ccci_localhost".into()),
            ("DOMAIN".into(), "hell-3fa9c2.ccci.localhost".into()),
        ];
        if let Some(v) = v {
            env.push(("V".into(), v.into()));
        }
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        for form in FORMS {
            // JSON is YAML: the form goes in as one exact string scalar.
            let doc =
                serde_json::json!({ "services": { "a": { "image": "x", "deploy": { "labels": { "l": form } } } } });
            std::fs::write(scratch.root.join("compose.yml"), doc.to_string()).unwrap();
            let docker = docker_stack_config(&scratch.root, &["compose.yml".to_string()], &env)
                .map(|v| text(&v["services"]["a"]["deploy"]["labels"]["l"]).unwrap_or_default());
            let ccci = substitute(form, &lookup).map(|s| s.value).map_err(|e| e.message().to_string());
            checked += 1;
            let agree = match (&docker, &ccci) {
                (Ok(d), Ok(c)) => d == c,
                // Both refuse; the words of a required variable's message are docker's own.
                (Err(d), Err(c)) => !c.starts_with("required") || d.contains(c.as_str()),
                _ => false,
            };
            if !agree {
                mismatches.push(format!("V={v:?} {form:?}: docker {docker:?}, ccci {ccci:?}"));
            }
        }
    }
    assert_eq!(checked, FORMS.len() * 3);
    assert!(mismatches.is_empty(), "ccci's interpolation differs from docker's:\n{}", mismatches.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------------

/// The variables a deploy interpolates with: the sample, `abra.sh`'s `export X=Y` lines,
/// `STACK_NAME` and `DOMAIN` (as `ccci::recipe::load::interpolation_env` builds them).
fn deploy_env(dir: &Path, sample: &EnvFile) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = sample.vars().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Ok(text) = std::fs::read_to_string(dir.join("abra.sh")) {
        let exports: String =
            text.lines().filter(|l| l.starts_with("export ") && l.contains('=')).map(|l| format!("{l}\n")).collect();
        let parsed = EnvFile::parse(&exports, "abra.sh").unwrap();
        vars.extend(parsed.vars().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    vars.retain(|(k, _)| k != "STACK_NAME" && k != "DOMAIN");
    vars.push(("STACK_NAME".into(), "corp-3fa9c2_ccci_localhost".into()));
    vars.push(("DOMAIN".into(), "corp-3fa9c2.ccci.localhost".into()));
    // Later assignments win, as in the lookup ccci uses.
    let mut dedup: Vec<(String, String)> = vec![];
    for (k, v) in vars {
        dedup.retain(|(n, _)| n != &k);
        dedup.push((k, v));
    }
    dedup
}

/// Every version folder of the corpus holding a compose.yml and an .env.sample.
fn corpus_versions(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for recipe in std::fs::read_dir(root).unwrap().flatten() {
        let Ok(versions) = std::fs::read_dir(recipe.path()) else { continue };
        for v in versions.flatten() {
            if v.path().join("compose.yml").is_file() && v.path().join(".env.sample").is_file() {
                out.push(v.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn corpus_names_labels_and_images_are_predicted_as_docker_makes_them() {
    let Some(root) = corpus() else { return };
    let versions = corpus_versions(&root);
    assert!(versions.len() >= 5, "expected the corpus's recipes, found {versions:?}");
    let mut problems = vec![];
    for dir in &versions {
        let shown = dir.strip_prefix(&root).unwrap().display().to_string();
        let sample = EnvFile::read(&dir.join(".env.sample")).unwrap();
        let files = compose_files(&sample);
        let env = deploy_env(dir, &sample);
        let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let ccci = Compose::load(dir, &files, &lookup).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let docker = docker_stack_config(dir, &files, &env).unwrap_or_else(|e| panic!("{shown}: docker: {e}"));
        let stack = "corp-3fa9c2_ccci_localhost";
        for obj in ccci.swarm_object_names(stack) {
            let section = format!("{}s", obj.kind.as_str());
            let decl = &docker[section.as_str()][obj.key.as_str()];
            let name = match text(&decl["name"]) {
                Some(n) if !n.is_empty() => n,
                // docker leaves the name out when it is `<stack>_<key>` (made at deploy) or the key (external).
                _ if obj.external => obj.key.clone(),
                _ => format!("{stack}_{}", obj.key),
            };
            if name != obj.name {
                problems.push(format!("{shown}: {} {}: docker names it {name}, ccci {}", obj.kind, obj.key, obj.name));
            }
        }
        for (svc, decl) in &ccci.services {
            let d = &docker["services"][svc.as_str()];
            if text(&d["image"]).filter(|i| !i.is_empty()) != decl.image {
                problems.push(format!("{shown}: {svc} image: docker {:?}, ccci {:?}", d["image"], decl.image));
            }
            let Value::Mapping(labels) = &d["deploy"]["labels"] else {
                if !decl.deploy_labels.is_empty() {
                    problems.push(format!("{shown}: {svc}: docker has no deploy labels"));
                }
                continue;
            };
            let docker_labels: std::collections::BTreeMap<String, String> =
                labels.iter().map(|(k, v)| (text(k).unwrap(), text(v).unwrap_or_default())).collect();
            if docker_labels != decl.deploy_labels {
                problems.push(format!(
                    "{shown}: {svc} deploy labels differ:\n  docker {docker_labels:?}\n  ccci   {:?}",
                    decl.deploy_labels
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
