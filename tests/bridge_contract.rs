//! The fake forge's answers are pinned to the forge's published API description: every fixture
//! the TEST DOUBLE serves is checked against the vendored subset of Gitea's swagger
//! (`tests/support/gitea-swagger-subset.json`, with its source commit), strictly: no property
//! the definition does not declare, every declared type and date-time format respected, commit
//! status states limited to the four Gitea accepts. Drone's Build is checked against the JSON
//! fields of `core/build.go`.

mod common;
#[path = "common/forge.rs"]
mod forge;

use forge::{FBuild, FComment, FPull, FStatus, build_json, comment_json, pull_json, push_json, status_json};
use serde_json::Value;

fn swagger() -> Value {
    let path = common::repo_root().join("tests/support/gitea-swagger-subset.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every way `value` breaks `schema`, as `path: why` lines.
fn check(doc: &Value, schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/definitions/");
        if value.is_null() {
            return;
        }
        match doc["definitions"].get(name) {
            Some(def) => {
                check(doc, def, value, path, out);
                let states = ["pending", "success", "error", "failure"];
                if name == "CommitStatusState" && !states.contains(&value.as_str().unwrap_or("")) {
                    out.push(format!("{path}: {value} is not one of {states:?}"));
                }
                if name == "StateType" && !["open", "closed"].contains(&value.as_str().unwrap_or("")) {
                    out.push(format!("{path}: {value} is not open or closed"));
                }
            }
            None => {
                let not_vendored = doc["x-ccci-not-vendored"].as_array().unwrap();
                let empty = value.as_array().is_some_and(|a| a.is_empty());
                if !not_vendored.iter().any(|n| n == name) || !empty {
                    out.push(format!("{path}: {name} is not vendored, so it may only be null or empty"));
                }
            }
        }
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(obj) = value.as_object() else { return out.push(format!("{path}: not an object")) };
            let props = &schema["properties"];
            for (k, v) in obj {
                match props.get(k) {
                    Some(p) => check(doc, p, v, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}: not a property of the definition")),
                }
            }
            for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                if !obj.contains_key(req.as_str().unwrap()) {
                    out.push(format!("{path}: {req} is required"));
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    check(doc, &schema["items"], v, &format!("{path}[{i}]"), out);
                }
            }
            None => out.push(format!("{path}: not an array")),
        },
        Some("string") => match value.as_str() {
            Some(s) if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                if ccci::time::parse_rfc3339(s).is_none() {
                    out.push(format!("{path}: {s:?} is not a date-time"));
                }
            }
            Some(_) => {}
            None => out.push(format!("{path}: not a string")),
        },
        Some("integer") => {
            if !value.is_i64() && !value.is_u64() {
                out.push(format!("{path}: not an integer"));
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                out.push(format!("{path}: not a boolean"));
            }
        }
        other => out.push(format!("{path}: unknown schema type {other:?}")),
    }
}

fn violations(def: &str, value: &Value) -> Vec<String> {
    let doc = swagger();
    let mut out = vec![];
    check(&doc, &serde_json::json!({ "$ref": format!("#/definitions/{def}") }), value, def, &mut out);
    out
}

fn fixtures() -> Vec<(&'static str, Value)> {
    let c = FComment {
        id: 3,
        repo: "coop-cloud/hello".into(),
        issue: 7,
        is_pull: true,
        author: "alice".into(),
        body: "!testme".into(),
        created_at: 1_800_000_000,
        updated_at: 1_800_000_060,
    };
    let issue = FComment { is_pull: false, ..c.clone() };
    let pull = FPull { open: true, head: "ab".repeat(20), fork: true, pushes: vec![] };
    let closed = FPull { open: false, ..pull.clone() };
    let status = |state: &str| FStatus {
        repo: "coop-cloud/hello".into(),
        sha: "ab".repeat(20),
        state: state.into(),
        context: "ccci/install".into(),
        description: "passed".into(),
        target_url: "https://drone.example/coop-cloud/recipe-ci/3".into(),
    };
    let mut out = vec![
        ("Comment", comment_json(&c)),
        ("Comment", comment_json(&issue)),
        ("PullRequest", pull_json("coop-cloud/hello", 7, &pull)),
        ("PullRequest", pull_json("coop-cloud/hello", 7, &closed)),
        ("TimelineComment", push_json(1, 1_800_000_000)),
    ];
    for s in ["pending", "success", "failure", "error"] {
        out.push(("CommitStatus", status_json(1, &status(s), "ccci-bot")));
    }
    out
}

#[test]
fn the_vendored_swagger_subset_names_its_source_version() {
    let doc = swagger();
    assert_eq!(doc["x-ccci-source"]["repository"], "go-gitea/gitea");
    assert_eq!(doc["x-ccci-source"]["commit"].as_str().unwrap().len(), 40);
    for def in ["Comment", "PullRequest", "PRBranchInfo", "TimelineComment", "CommitStatus", "User"] {
        assert!(doc["definitions"].get(def).is_some(), "{def} vendored");
    }
}

#[test]
fn every_fixture_of_the_fake_forge_matches_the_forges_api_description() {
    for (def, v) in fixtures() {
        let bad = violations(def, &v);
        assert!(bad.is_empty(), "{def} fixture {v}:\n{}", bad.join("\n"));
    }
}

#[test]
fn the_schema_check_catches_drift() {
    let mut extra = fixtures()[0].1.clone();
    extra["draft"] = Value::Bool(false);
    assert!(violations("Comment", &extra).iter().any(|l| l.contains("draft: not a property")));
    let mut bad_time = fixtures()[0].1.clone();
    bad_time["created_at"] = Value::String("yesterday".into());
    assert!(violations("Comment", &bad_time).iter().any(|l| l.contains("not a date-time")));
    let mut state = fixtures()[5].1.clone();
    state["status"] = Value::String("warning".into());
    assert!(violations("CommitStatus", &state).iter().any(|l| l.contains("not one of")));
    let mut user = fixtures()[0].1.clone();
    user["user"]["id"] = Value::String("7".into());
    assert!(violations("Comment", &user).iter().any(|l| l.contains("user.id: not an integer")));
}

/// The JSON fields of Drone's `core.Build` (harness/harness branch `drone`, `core/build.go`).
const DRONE_BUILD_FIELDS: &[&str] = &[
    "id",
    "repo_id",
    "trigger",
    "number",
    "parent",
    "status",
    "error",
    "event",
    "action",
    "link",
    "timestamp",
    "title",
    "message",
    "before",
    "after",
    "ref",
    "source_repo",
    "source",
    "target",
    "author_login",
    "author_name",
    "author_email",
    "author_avatar",
    "sender",
    "params",
    "cron",
    "deploy_to",
    "deploy_id",
    "debug",
    "started",
    "finished",
    "created",
    "updated",
    "version",
    "stages",
];

#[test]
fn the_fake_drones_build_has_only_the_fields_of_drones_build() {
    let b =
        FBuild { number: 3, repo: "coop-cloud/recipe-ci".into(), params: Default::default(), status: "running".into() };
    let v = build_json(&b);
    for k in v.as_object().unwrap().keys() {
        assert!(DRONE_BUILD_FIELDS.contains(&k.as_str()), "{k} is not a field of Drone's Build");
    }
    assert!(v["number"].is_u64() && v["params"].is_object() && v["status"].is_string());
}
