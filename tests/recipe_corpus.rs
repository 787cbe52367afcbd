//! `ccci::recipe` against real Co-op Cloud recipe files from `../shared/recipe-corpus`.
//!
//! The corpus lives outside the repository, so a fresh clone doesn't have it: every test then
//! prints `SKIPPED <test>: …` on stderr (visible even when cargo captures test output) and passes. The unit tests in `src/recipe/` cover each rule with inline fixtures;
//! these tests check that the rules add up to the right answers on files written by others.

mod common;

use std::path::Path;

use ccci::recipe::backup;
use ccci::recipe::compose::{Compose, Port};
use ccci::recipe::env_file::{EnvFile, compose_files};
use ccci::recipe::release::{order_release_tags, parse_release_tag};
use ccci::run::naming::ObjectKind;

use common::corpus;

const STACK: &str = "hell-3fa9c2_ccci_localhost";

/// The env as abra would interpolate with it: the app env plus `STACK_NAME` and extras.
fn lookup<'a>(env: &'a EnvFile, extra: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |key| {
        extra.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()).or_else(|| env.get(key).map(str::to_owned))
    }
}

fn load(dir: &Path, env: &EnvFile, extra: &[(&str, &str)]) -> Compose {
    let files = compose_files(env);
    Compose::load(dir, &files, &lookup(env, extra))
        .unwrap_or_else(|e| panic!("loading {files:?} from {}: {e}", dir.display()))
}

/// Enables a commented-out line of an env sample, failing loudly if the corpus changed.
fn uncomment(text: &str, line: &str) -> String {
    let commented = text.lines().find(|l| l.trim_start_matches(['#', ' ']) == line);
    let commented = commented.unwrap_or_else(|| panic!("no commented-out {line:?} in the sample"));
    text.replacen(commented, line, 1)
}

/// Every compose file in a version folder, `compose.yml` first, sub-folders included.
fn all_compose_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in ["", "postgres"] {
        let Ok(entries) = fs_err::read_dir(dir.join(sub)) else {
            continue;
        };
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.starts_with("compose") && name.ends_with(".yml") && name != "compose.yml" {
                found.push(if sub.is_empty() { name } else { format!("{sub}/{name}") });
            }
        }
    }
    found.sort();
    found.insert(0, "compose.yml".to_owned());
    found
}

fn tag_names(tags_txt: &Path) -> Vec<(String, String)> {
    fs_err::read_to_string(tags_txt)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let name = fields.next()?.to_owned();
            let date = fields.nth(1).unwrap_or("").to_owned();
            Some((name, date))
        })
        .collect()
}

#[test]
fn bonfire_env_sample() {
    let Some(root) = corpus() else { return };
    let env = EnvFile::read(&root.join("bonfire/head/.env.sample")).unwrap();
    assert_eq!(env.get("TYPE"), Some("bonfire"));
    assert_eq!(env.get("ENABLE_BACKUPS"), Some("true"));
    assert_eq!(env.get("DB_MEMORY_LIMIT"), Some("1024"));
    assert_eq!(env.get("LOG_LEVEL"), Some("info"));
    // Commented-out choices are not variables.
    assert_eq!(env.get("EXTRA_DOMAINS"), None);
    assert_eq!(env.get("APP_FLAVOUR"), None);
    // `COMPOSE_FILE="compose.yml"` then `COMPOSE_FILE="$COMPOSE_FILE:compose.postgres.yml"`.
    assert_eq!(env.get("COMPOSE_FILE"), Some("compose.yml:compose.postgres.yml"));
    assert_eq!(compose_files(&env), ["compose.yml", "compose.postgres.yml"]);
    for key in ["SECRET_SECRET_KEY_BASE_VERSION", "SECRET_SIGNING_SALT_VERSION", "SECRET_ENCRYPTION_SALT_VERSION"] {
        assert_eq!(env.get(key), Some("v1"), "{key}");
        assert_eq!(env.hint(key), Some("length=128"), "{key}");
    }
    assert_eq!(env.get("SECRET_SEEDS_PW_VERSION"), Some("v1"));
    assert_eq!(env.hint("SECRET_SEEDS_PW_VERSION"), None);

    // Turning on the tuning overlay the way an operator would: uncomment its line.
    let text = fs_err::read_to_string(root.join("bonfire/head/.env.sample")).unwrap();
    let text = uncomment(&text, "COMPOSE_FILE=\"$COMPOSE_FILE:postgres/compose.postgres.tune.yml\"");
    let text = uncomment(&text, "COMPOSE_FILE=\"$COMPOSE_FILE:compose.basicauth.yml\"");
    let env = EnvFile::parse(&text, "bonfire .env (tuned)").unwrap();
    assert_eq!(
        compose_files(&env),
        ["compose.yml", "compose.postgres.yml", "postgres/compose.postgres.tune.yml", "compose.basicauth.yml"]
    );
    // What we write back reads back the same, with the hints.
    let again = EnvFile::parse(&env.render(), "rendered").unwrap();
    assert_eq!(again, env);
}

#[test]
fn bonfire_head_compose() {
    let Some(root) = corpus() else { return };
    let dir = root.join("bonfire/head");
    let text = fs_err::read_to_string(dir.join(".env.sample")).unwrap();
    let text = uncomment(&text, "COMPOSE_FILE=\"$COMPOSE_FILE:postgres/compose.postgres.tune.yml\"");
    let env = EnvFile::parse(&text, ".env").unwrap();
    let c = load(&dir, &env, &[("STACK_NAME", STACK)]);

    assert_eq!(c.services.keys().collect::<Vec<_>>(), ["app", "db"]);
    let app = &c.services["app"];
    assert_eq!(app.image.as_deref(), Some("bonfirenetworks/bonfire:1.0.6-social-amd64"));
    assert_eq!(app.deploy_labels[&format!("coop-cloud.{STACK}.version")], "2.0.1+1.0.6-social-amd64");
    assert_eq!(app.deploy_labels[&format!("coop-cloud.{STACK}.timeout")], "300");
    assert_eq!(app.deploy_labels[&format!("traefik.http.routers.{STACK}.tls.certresolver")], "production");
    assert_eq!(app.deploy_labels["backupbot.backup"], "true");
    assert_eq!(
        app.secrets,
        [
            "secret_key_base",
            "signing_salt",
            "encryption_salt",
            "seeds_pw",
            "livebook_password",
            "release_cookie",
            "postgres_password"
        ]
    );
    assert_eq!(app.configs, ["app_entrypoint"]);
    assert_eq!(app.volumes, ["upload-data"]);
    assert!(app.ports.is_empty());
    let test = app.healthcheck.as_ref().and_then(|h| h.test.clone()).unwrap();
    assert_eq!(test, ["CMD", "curl", "-f", "http://localhost:4000"]);

    let db = &c.services["db"];
    assert_eq!(db.image.as_deref(), Some("ghcr.io/baosystems/postgis:17-3.5"));
    // The tmpfs mount in long form is not a named volume.
    assert_eq!(db.volumes, ["db-data"]);
    // compose.postgres.yml's config, then the four the tuning overlay appends.
    assert_eq!(
        db.configs,
        ["pg_backup", "postgres_entrypoint", "postgres_tune", "postgres_conf_tmpl", "bash_envsubst"]
    );
    assert_eq!(db.secrets, ["postgres_password"]);
    let test = db.healthcheck.as_ref().and_then(|h| h.test.clone()).unwrap();
    assert_eq!(test, ["CMD-SHELL", "pg_isready -h localhost -U $POSTGRES_USER"]);
    // Map-form labels.
    assert_eq!(db.deploy_labels["backupbot.backup"], "true");
    assert_eq!(db.deploy_labels["backupbot.backup.volumes.db-data.path"], "backup.sql");
    assert_eq!(db.deploy_labels["backupbot.restore.post-hook"], "/pg_backup.sh restore");

    let objects = c.swarm_object_names(STACK);
    let find = |kind: ObjectKind, key: &str| {
        objects.iter().find(|o| o.kind == kind && o.key == key).unwrap_or_else(|| panic!("no {kind} {key}"))
    };
    let pw = find(ObjectKind::Secret, "postgres_password");
    assert_eq!(pw.name, "hell-3fa9c2_ccci_localhost_postgres_password_v1");
    assert!(pw.external);
    let secrets: Vec<_> = objects.iter().filter(|o| o.kind == ObjectKind::Secret).collect();
    assert_eq!(secrets.len(), 7);
    for s in &secrets {
        assert!(s.external, "{s:?}");
        assert_eq!(s.name, format!("{STACK}_{}_v1", s.key));
    }
    assert_eq!(find(ObjectKind::Config, "app_entrypoint").name, format!("{STACK}_app_entrypoint_v3"));
    assert_eq!(find(ObjectKind::Config, "postgres_entrypoint").name, format!("{STACK}_postgres_entrypoint_v6"));
    // PG_BACKUP_VERSION has no default: it comes from the recipe's abra.sh, not the env file.
    assert_eq!(find(ObjectKind::Config, "pg_backup").name, format!("{STACK}_pg_backup_"));
    assert!(c.unset.contains(&"PG_BACKUP_VERSION".to_owned()), "{:?}", c.unset);
    assert!(c.unset.contains(&"EXTRA_DOMAINS".to_owned()), "{:?}", c.unset);
    assert!(!c.unset.contains(&"DB_MEMORY_LIMIT".to_owned()), "{:?}", c.unset);
    assert_eq!(find(ObjectKind::Volume, "upload-data").name, format!("{STACK}_upload-data"));
    assert_eq!(find(ObjectKind::Volume, "db-data").name, format!("{STACK}_db-data"));
    let proxy = find(ObjectKind::Network, "proxy");
    assert_eq!((proxy.name.as_str(), proxy.external), ("proxy", true));
    assert_eq!(find(ObjectKind::Network, "internal").name, format!("{STACK}_internal"));
    // Docker caps secret and config names at 64 characters; the short run names keep us under.
    for o in &objects {
        assert!(o.name.len() <= 64, "{} is {} long", o.name, o.name.len());
    }
}

#[test]
fn bonfire_backup_capability_comes_from_the_env() {
    let Some(root) = corpus() else { return };
    let dir = root.join("bonfire/head");
    let env = EnvFile::read(&dir.join(".env.sample")).unwrap();
    assert!(load(&dir, &env, &[("STACK_NAME", STACK)]).backup_capable());
    let off = [("STACK_NAME", STACK), ("ENABLE_BACKUPS", "false")];
    assert!(!load(&dir, &env, &off).backup_capable());
    // Without the variable the label's own default, `${ENABLE_BACKUPS:-true}`, applies.
    let mut bare = EnvFile::parse("TYPE=bonfire\n", "minimal").unwrap();
    assert!(load(&dir, &bare, &[("STACK_NAME", STACK)]).backup_capable());
    bare.set("ENABLE_BACKUPS", "false");
    assert!(!load(&dir, &bare, &[("STACK_NAME", STACK)]).backup_capable());
}

#[test]
fn bonfire_release_and_every_overlay() {
    let Some(root) = corpus() else { return };
    let tags: Vec<String> = tag_names(&root.join("bonfire/tags.txt")).into_iter().map(|(n, _)| n).collect();
    let latest = order_release_tags(tags.clone()).pop().unwrap();
    for version in ["head", "2.0.0+1.0.5-social-amd64"] {
        let dir = root.join("bonfire").join(version);
        let env = EnvFile::read(&dir.join(".env.sample")).unwrap();
        let extra = [("STACK_NAME", STACK)];
        let c = load(&dir, &env, &extra);
        let label = &c.services["app"].deploy_labels[&format!("coop-cloud.{STACK}.version")];
        // A tag's compose declares that tag; head declares the latest release.
        let expected = if version == "head" { latest.name.as_str() } else { version };
        assert_eq!(label, expected);
        let image = c.services["app"].image.clone().unwrap();
        let upstream = parse_release_tag(label).unwrap().upstream.unwrap();
        assert_eq!(image, format!("bonfirenetworks/bonfire:{upstream}"));

        // Every overlay at once: all of them parse, merge and keep their secrets external.
        let files = all_compose_files(&dir);
        assert!(files.len() > 15, "{files:?}");
        assert!(files.contains(&"postgres/compose.postgres.tune.yml".to_owned()));
        let bumped = [("STACK_NAME", STACK), ("SECRET_ORCID_CLIENT_SECRET_VERSION", "v2")];
        let all = Compose::load(&dir, &files, &lookup(&env, &bumped)).unwrap_or_else(|e| panic!("{version}: {e}"));
        assert!(all.secrets.values().all(|s| s.external));
        assert!(all.services.contains_key("search"), "the sonic overlay adds a service");
        let names = all.swarm_object_names(STACK);
        let name_of = |key: &str| names.iter().find(|o| o.key == key).map(|o| o.name.as_str());
        // The secret's version variable is spelled differently from its key (orcid vs orchid):
        // the name comes from the substituted `name:`, never from the key alone.
        assert_eq!(name_of("orchid_client_secret"), Some(&*format!("{STACK}_orchid_client_secret_v2")));
        assert_eq!(name_of("mail_key"), Some(&*format!("{STACK}_mail_key_v1")));
        // The basicauth overlay's version has no default and the sample leaves it commented.
        assert_eq!(name_of("usersfile"), Some(&*format!("{STACK}_usersfile_")));
        assert!(all.unset.contains(&"SECRET_USERSFILE_VERSION".to_owned()));
    }
}

#[test]
fn traefik_head() {
    let Some(root) = corpus() else { return };
    let dir = root.join("traefik/head");
    let env = EnvFile::read(&dir.join(".env.sample")).unwrap();
    assert_eq!(env.get("TYPE"), Some("traefik"));
    assert_eq!(env.get("COMPOSE_FILE"), None, "every COMPOSE_FILE choice is commented out");
    assert_eq!(compose_files(&env), ["compose.yml"]);

    let extra = [("STACK_NAME", "traef-1a2b3c_ccci_localhost"), ("TRAEFIK_YML_VERSION", "v9")];
    let c = load(&dir, &env, &extra);
    let app = &c.services["app"];
    assert_eq!(app.image.as_deref(), Some("traefik:v2.4.8"));
    let ingress = |port| Port { target: port, published: Some(port), mode: None, protocol: None };
    assert_eq!(app.ports, [ingress(80), ingress(443)]);
    assert_eq!(app.configs, ["traefik_yml", "file_provider_yml", "entrypoint"]);
    // The docker socket is a bind mount, not a volume.
    assert_eq!(app.volumes, ["letsencrypt"]);
    assert_eq!(app.deploy_labels["traefik.http.routers.traefik.middlewares"], "security@file");
    assert_eq!(app.deploy_labels["coop-cloud.traef-1a2b3c_ccci_localhost.app.version"], "v2.4.8-d7d63b0d");
    let test = app.healthcheck.as_ref().and_then(|h| h.test.clone()).unwrap();
    assert_eq!(test, ["CMD", "traefik", "healthcheck"]);
    assert!(!c.backup_capable());

    let configs: Vec<(String, String, bool)> = c
        .swarm_object_names("traef-1a2b3c_ccci_localhost")
        .into_iter()
        .filter(|o| o.kind == "config")
        .map(|o| (o.key, o.name, o.external))
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        configs,
        [
            (s("entrypoint"), s("traef-1a2b3c_ccci_localhost_entrypoint_"), false),
            (s("file_provider_yml"), s("traef-1a2b3c_ccci_localhost_file_provider_yml_"), false),
            (s("traefik_yml"), s("traef-1a2b3c_ccci_localhost_traefik_yml_v9"), false),
        ]
    );
    assert_eq!(c.configs["traefik_yml"].file.as_deref(), Some("traefik.yml.tmpl"));
    // The config versions come from abra.sh; without them the deploy would warn.
    assert!(c.unset.contains(&"ENTRYPOINT_VERSION".to_owned()), "{:?}", c.unset);
    assert!(c.unset.contains(&"FILE_PROVIDER_YML_VERSION".to_owned()), "{:?}", c.unset);
    assert!(!c.unset.contains(&"TRAEFIK_YML_VERSION".to_owned()));
    let proxy = &c.networks["proxy"];
    assert!(proxy.external);
}

#[test]
fn traefik_overlays() {
    let Some(root) = corpus() else { return };
    let dir = root.join("traefik/head");
    let text = fs_err::read_to_string(dir.join(".env.sample")).unwrap();
    let extra = [("STACK_NAME", "traef-1a2b3c_ccci_localhost")];

    let host = EnvFile::parse(&uncomment(&text, "COMPOSE_FILE=\"compose.yml:compose.host.yml\""), ".env").unwrap();
    assert_eq!(compose_files(&host), ["compose.yml", "compose.host.yml"]);
    let c = load(&dir, &host, &extra);
    let ports = &c.services["app"].ports;
    assert_eq!(ports.len(), 5, "{ports:?}");
    let host_mode: Vec<(u16, Option<u16>)> =
        ports.iter().filter(|p| p.mode.as_deref() == Some("host")).map(|p| (p.target, p.published)).collect();
    assert_eq!(host_mode, [(80, Some(80)), (443, Some(443)), (2222, Some(2222))]);

    let keycloak =
        EnvFile::parse(&uncomment(&text, "COMPOSE_FILE=\"compose.yml:compose.keycloak.yml\""), ".env").unwrap();
    let c = load(&dir, &keycloak, &extra);
    // Same label key in both files: the overlay's value wins.
    assert_eq!(c.services["app"].deploy_labels["traefik.http.routers.traefik.middlewares"], "keycloak@file");
    assert_eq!(c.services["app"].deploy_labels["traefik.enable"], "true");

    let ovh = EnvFile::parse(&uncomment(&text, "COMPOSE_FILE=\"compose.yml:compose.ovh.yml\""), ".env").unwrap();
    let extra_ovh = [
        ("STACK_NAME", "traef-1a2b3c_ccci_localhost"),
        ("SECRET_OVH_APP_SECRET_VERSION", "v1"),
        ("SECRET_OVH_CONSUMER_KEY", "v2"),
    ];
    let c = load(&dir, &ovh, &extra_ovh);
    assert_eq!(c.services["app"].secrets, ["ovh_app_secret", "ovh_consumer_key"]);
    let secrets: Vec<String> = c
        .swarm_object_names("traef-1a2b3c_ccci_localhost")
        .into_iter()
        .filter(|o| o.kind == "secret")
        .map(|o| o.name)
        .collect();
    assert_eq!(
        secrets,
        ["traef-1a2b3c_ccci_localhost_ovh_app_secret_v1", "traef-1a2b3c_ccci_localhost_ovh_consumer_key_v2"]
    );

    let files = all_compose_files(&dir);
    let everything = Compose::load(&dir, &files, &lookup(&ovh, &extra)).unwrap();
    let published: Vec<Option<u16>> = everything.services["app"].ports.iter().map(|p| p.published).collect();
    for port in [80, 443, 587, 1433, 1935, 2222, 2525, 8008] {
        assert!(published.contains(&Some(port)), "{port} in {published:?}");
    }
}

#[test]
fn tags_order_like_their_release_dates() {
    let Some(root) = corpus() else { return };
    let mut checked = 0;
    for recipe in ["bonfire", "traefik"] {
        let mut listed = tag_names(&root.join(recipe).join("tags.txt"));
        assert!(!listed.is_empty());
        for (name, _) in &listed {
            assert!(parse_release_tag(name).is_some(), "{recipe}: {name} should be a release");
        }
        // Version order, whatever order they come in, matches the order they were published in.
        let shuffled: Vec<String> = listed.iter().rev().map(|(n, _)| n.clone()).collect();
        let by_version: Vec<String> = order_release_tags(shuffled).into_iter().map(|t| t.name).collect();
        listed.sort_by(|a, b| a.1.cmp(&b.1));
        let by_date: Vec<String> = listed.into_iter().map(|(n, _)| n).collect();
        assert_eq!(by_version, by_date, "{recipe}");
        checked += 1;
    }
    assert_eq!(checked, 2);

    let bonfire: Vec<String> = tag_names(&root.join("bonfire/tags.txt")).into_iter().map(|(n, _)| n).collect();
    let ordered = order_release_tags(bonfire.into_iter().rev().chain(["latest".to_owned()]));
    let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["1.0.0+1.0.5-social-amd64", "2.0.0+1.0.5-social-amd64", "2.0.1+1.0.6-social-amd64"]);

    // traefik's only tag is lightweight and uses the old `v` scheme.
    let traefik = tag_names(&root.join("traefik/tags.txt"));
    assert_eq!(traefik, [("v2.4.8".to_owned(), "2021-06-07".to_owned())]);
    let t = parse_release_tag("v2.4.8").unwrap();
    assert_eq!((t.major, t.minor, t.patch, t.pre, t.upstream), (2, 4, 8, None, None));
}

/// The backup contract of a corpus recipe version, with its sample env and `STACK_NAME`.
fn backup_plan(dir: &Path, extra: &[(&str, &str)], overrule: Option<&backup::Override>) -> backup::Plan {
    let env = EnvFile::read(&dir.join(".env.sample")).unwrap();
    let mut vars = vec![("STACK_NAME", STACK)];
    vars.extend_from_slice(extra);
    let compose = load(dir, &env, &vars);
    backup::plan(&backup::inputs_from_compose(&compose), overrule).unwrap()
}

fn hooks(plan: &backup::Plan) -> Vec<(backup::Phase, &str, &str)> {
    plan.hooks.iter().map(|h| (h.phase, h.service.as_str(), h.command.as_str())).collect()
}

#[test]
fn bonfire_backup_labels_merge_across_app_and_db() {
    let Some(root) = corpus() else { return };
    for version in ["head", "2.0.0+1.0.5-social-amd64"] {
        let plan = backup_plan(&root.join("bonfire").join(version), &[], None);
        assert!(plan.capable, "{version}");
        assert_eq!(plan.why, "backupbot.backup=true on app, db", "{version}");
        let db = plan.volumes.iter().find(|v| v.volume == "db-data").unwrap();
        assert_eq!(db.services, ["db"]);
        assert_eq!(db.paths, ["backup.sql"], "only the dump, not the live PGDATA");
        assert!(db.labelled && db.included());
        let uploads = plan.volumes.iter().find(|v| v.volume == "upload-data").unwrap();
        assert!(uploads.included() && uploads.paths.is_empty() && !uploads.labelled, "in by default, whole");
        assert_eq!(
            hooks(&plan),
            [
                (backup::Phase::BackupPre, "db", "/pg_backup.sh backup"),
                (backup::Phase::RestorePost, "db", "/pg_backup.sh restore")
            ]
        );
        assert!(plan.has_restore_hook("db") && !plan.has_restore_hook("app"), "app is stopped during a restore");
        assert!(plan.ignored.is_empty(), "{:?}", plan.ignored);
    }
}

#[test]
fn bonfire_switched_off_by_env_or_overlay_is_not_backup_capable_and_says_who() {
    let Some(root) = corpus() else { return };
    let dir = root.join("bonfire/head");
    let off = backup_plan(&dir, &[("ENABLE_BACKUPS", "false")], None);
    assert!(!off.capable);
    assert_eq!(
        off.why,
        "the recipe declares no backup: no service sets backupbot.backup=true (backupbot.backup is app (\"false\"), db (\"false\"))"
    );
    let overlay = backup::Override { capable: false, origin: "overlays/bonfire/settings.env".into() };
    let plan = backup_plan(&dir, &[], Some(&overlay));
    assert!(!plan.capable);
    assert!(plan.why.contains("BACKUP=0 in overlays/bonfire/settings.env"), "{}", plan.why);
    let overlay = backup::Override { capable: true, origin: "overlays/bonfire/settings.env".into() };
    assert!(backup_plan(&dir, &[("ENABLE_BACKUPS", "false")], Some(&overlay)).capable);
}

#[test]
fn foodsharing_cms_legacy_path_is_its_whole_data_volume() {
    let Some(root) = corpus() else { return };
    let plan = backup_plan(&root.join("foodsharing-cms/v1.0.3"), &[], None);
    assert!(plan.capable);
    assert_eq!(plan.volumes.len(), 1);
    let v = &plan.volumes[0];
    assert_eq!((v.volume.as_str(), v.services.as_slice()), ("cms_data", &["app".to_string()][..]));
    assert!(v.labelled && v.paths.is_empty(), "backupbot.backup.path=/data is the mount target: the whole volume");
    assert!(plan.hooks.is_empty());
}

#[test]
fn llamenos_labels_on_three_services_and_an_unknown_label_is_listed() {
    let Some(root) = corpus() else { return };
    let plan = backup_plan(&root.join("llamenos/head"), &[], None);
    assert!(plan.capable);
    assert!(plan.why.starts_with("backupbot.backup=true on "), "{}", plan.why);
    for svc in ["app", "db", "minio"] {
        assert!(plan.why.contains(svc), "{svc}: {}", plan.why);
    }
    let included: Vec<&str> = plan.included().map(|v| v.volume.as_str()).collect();
    assert!(included.contains(&"postgres-data") && included.contains(&"minio-data"), "{included:?}");
    assert_eq!(plan.ignored, ["db: backupbot.backup.command"], "not part of the contract");
    assert!(plan.hooks.is_empty(), "backup.command is no hook");
}
