//! Names of a run and of everything it puts on the swarm.
//!
//! Each name type is valid by construction: it is parsed once at the edge (arguments, the
//! run-state, the environment) and carried as a type afterwards, so a hostile recipe name such as
//! `../x` or `a;rm -rf /` never reaches a path, an argv or a swarm object name.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Default suffix of run domains: `.localhost` resolves to loopback on every modern resolver
/// (RFC 6761), so a local proxy can route run domains without DNS set-up.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "ccci.localhost";

/// abra is believed to cut stack names at 45 characters (`docs/abra-contract.md` §2). Rather than guess at
/// its truncation we refuse domains whose stack name would be longer.
pub const MAX_STACK_LEN: usize = 45;

/// Docker refuses secret and config names longer than this.
pub const MAX_OBJECT_NAME_LEN: usize = 64;

/// Docker refuses service names longer than this (they become DNS labels).
pub const MAX_SERVICE_NAME_LEN: usize = 63;

macro_rules! string_newtype {
    ($name:ident, $parse:path) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<$name> {
                $parse(s)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A recipe name as Co-op Cloud uses it: lowercase letters, digits and hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecipeName(String);
string_newtype!(RecipeName, RecipeName::parse);

impl RecipeName {
    pub fn parse(s: &str) -> Result<RecipeName> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(RecipeName(s.to_string()))
        } else {
            Err(Error::bad_input(format!(
                "invalid recipe name {s:?}: use 1-63 lowercase letters, digits and inner hyphens"
            )))
        }
    }

    /// The name a recipe source implies: the last path component without `.git`
    /// (`https://git.example/coop-cloud/custom-html.git` → `custom-html`).
    pub fn from_source(source: &str) -> Result<RecipeName> {
        let trimmed = source.trim_end_matches('/');
        let last = trimmed.rsplit(['/', ':']).next().unwrap_or(trimmed);
        let last = last.strip_suffix(".git").unwrap_or(last);
        RecipeName::parse(last)
            .map_err(|e| e.context(format!("deriving the recipe name from {source:?} (pass --recipe-name)")))
    }
}

/// `<recipe[:4]>-<6 hex>`: short, so that stack and secret names stay under Docker's limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);
string_newtype!(RunId, RunId::parse);

impl RunId {
    pub fn parse(s: &str) -> Result<RunId> {
        let bad = || {
            Error::bad_input(format!(
                "invalid run id {s:?}: expected <first 4 characters of the recipe>-<6 hex digits>, e.g. hell-3fa9c2"
            ))
        };
        let (prefix, hex) = s.rsplit_once('-').ok_or_else(bad)?;
        let prefix_ok = (1..=4).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !prefix.starts_with('-')
            && !prefix.ends_with('-');
        let hex_ok = hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if prefix_ok && hex_ok { Ok(RunId(s.to_string())) } else { Err(bad()) }
    }

    /// A new id for a run of `recipe`, with 24 random bits from the kernel.
    pub fn generate(recipe: &RecipeName) -> Result<RunId> {
        let mut bytes = [0u8; 3];
        use std::io::Read;
        fs_err::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(RunId::from_parts(recipe, bytes))
    }

    fn from_parts(recipe: &RecipeName, bytes: [u8; 3]) -> RunId {
        let prefix: String = recipe.as_str().chars().take(4).collect();
        let prefix = prefix.trim_end_matches('-');
        RunId(format!("{prefix}-{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2]))
    }
}

/// A DNS name: lowercase labels of letters, digits and inner hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);
string_newtype!(Domain, Domain::parse);

impl Domain {
    pub fn parse(s: &str) -> Result<Domain> {
        let bad = |why: &str| Error::bad_input(format!("invalid domain {s:?}: {why}"));
        if s.is_empty() || s.len() > 253 {
            return Err(bad("must be 1-253 characters"));
        }
        for label in s.split('.') {
            let ok = !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(bad("each dot-separated label must be 1-63 lowercase letters, digits or inner hyphens"));
            }
        }
        Ok(Domain(s.to_string()))
    }

    /// The run's domain, `<run id>.<suffix>`.
    pub fn for_run(run: &RunId, suffix: &Domain) -> Result<Domain> {
        let d = Domain::parse(&format!("{run}.{suffix}"))?;
        StackName::from_domain(&d)?;
        Ok(d)
    }
}

/// The swarm stack name abra derives from an app domain: dots become underscores, hyphens stay.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StackName(String);
string_newtype!(StackName, StackName::parse);

impl StackName {
    pub fn from_domain(domain: &Domain) -> Result<StackName> {
        let s = domain.as_str().replace('.', "_");
        if s.len() > MAX_STACK_LEN {
            return Err(Error::bad_input(format!(
                "stack name {s:?} for domain {domain} is {} characters; abra allows at most {MAX_STACK_LEN}: use a shorter {}",
                s.len(),
                crate::config::DOMAIN_SUFFIX.name
            )));
        }
        Ok(StackName(s))
    }

    pub fn parse(s: &str) -> Result<StackName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_STACK_LEN
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && !s.starts_with(['-', '_']);
        if ok {
            Ok(StackName(s.to_string()))
        } else {
            Err(Error::bad_input(format!(
                "invalid stack name {s:?}: 1-{MAX_STACK_LEN} lowercase letters, digits, '-' and '_'"
            )))
        }
    }

    /// The prefix every object of the stack carries: `<stack>_`.
    pub fn prefix(&self) -> String {
        format!("{}_", self.0)
    }
}

/// Reads `CCCI_DOMAIN_SUFFIX` (or the default) as a domain.
pub fn domain_suffix_from_env() -> Result<Domain> {
    crate::config::domain_suffix()
}

/// The kinds of object a stack has on the swarm: what a recipe's compose files declare (secrets,
/// configs, volumes, networks) and what teardown removes (those and the services).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Service,
    Secret,
    Config,
    Volume,
    Network,
}

impl ObjectKind {
    /// Every kind in the order teardown removes them: the services first, the volumes last.
    pub const ALL: [ObjectKind; 5] =
        [ObjectKind::Service, ObjectKind::Secret, ObjectKind::Config, ObjectKind::Network, ObjectKind::Volume];

    /// The word docker uses for the kind (`docker secret ls`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Service => "service",
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
            ObjectKind::Volume => "volume",
            ObjectKind::Network => "network",
        }
    }
}

// Callers think of kinds as the words docker uses (`kind == "secret"`); let them.
impl PartialEq<str> for ObjectKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ObjectKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One swarm object name the recipe will produce, checked against Docker's limits: the length
/// (services 63, others 64), and for secrets and configs swarm's character rule (only
/// `[a-zA-Z0-9-_.]`, first and last a letter or digit), which an unset version variable
/// (`${STACK_NAME}_pg_backup_${PG_BACKUP_VERSION}`) breaks.
pub fn check_object_name(kind: &str, name: &str) -> Result<()> {
    let max = if kind == "service" { MAX_SERVICE_NAME_LEN } else { MAX_OBJECT_NAME_LEN };
    if name.len() > max {
        return Err(Error::failed(format!(
            "{kind} name {name:?} is {} characters; Docker allows at most {max}",
            name.len()
        )));
    }
    if kind == "secret" || kind == "config" {
        let bad = name.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)));
        let ends = [name.chars().next(), name.chars().next_back()];
        if let Some(c) = bad {
            return Err(Error::failed(format!(
                "{kind} name {name:?} contains {c:?}; Docker allows only [a-zA-Z0-9-_.]"
            )));
        }
        if ends.iter().any(|c| !c.is_some_and(|c| c.is_ascii_alphanumeric())) {
            return Err(Error::failed(format!(
                "{kind} name {name:?} must start and end with a letter or digit (Docker refuses it)"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_and_config_names_follow_swarms_character_rule() {
        check_object_name("config", "hell-3fa9c2_ccci_localhost_pg_backup_v1").unwrap();
        check_object_name("secret", "a.b-c_d9").unwrap();
        for bad in ["hell-3fa9c2_ccci_localhost_pg_backup_", "_x", "x y", "x/y", "x$y", ""] {
            let e = check_object_name("config", bad).unwrap_err();
            assert_eq!(e.kind().exit_code(), 1, "{bad}: the recipe's fault");
            assert!(e.message().contains("config name"), "{}", e.message());
        }
        assert!(check_object_name("config", "x_").unwrap_err().message().contains("must start and end"));
    }

    #[test]
    fn recipe_names() {
        for ok in ["hello", "custom-html", "a", "backup-bot-two", "n8n"] {
            RecipeName::parse(ok).unwrap();
        }
        for bad in ["", "../x", "a/b", "Hello", "-x", "x-", "a b", "a;rm", "a_b", "x".repeat(64).as_str(), "ü"] {
            let e = RecipeName::parse(bad).unwrap_err();
            assert_eq!(e.kind().exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn recipe_name_from_source() {
        let n = |s| RecipeName::from_source(s).unwrap().to_string();
        assert_eq!(n("https://git.coopcloud.tech/coop-cloud/custom-html.git"), "custom-html");
        assert_eq!(n("/tmp/x/hello/"), "hello");
        assert_eq!(n("git@host:org/traefik.git"), "traefik");
        assert!(RecipeName::from_source("/tmp/..").is_err());
    }

    #[test]
    fn run_ids() {
        let r = RecipeName::parse("hello").unwrap();
        assert_eq!(RunId::from_parts(&r, [0x3f, 0xa9, 0xc2]).as_str(), "hell-3fa9c2");
        let r = RecipeName::parse("a-b-c").unwrap();
        assert_eq!(RunId::from_parts(&r, [0, 1, 2]).as_str(), "a-b-000102");
        RunId::parse(RunId::generate(&r).unwrap().as_str()).unwrap();
        let a = RunId::generate(&r).unwrap();
        let b = RunId::generate(&r).unwrap();
        let c = RunId::generate(&r).unwrap();
        assert!(a != b || b != c, "three random ids in a row were equal");
        for bad in ["hell-3FA9C2", "hell-3fa9c", "hello-3fa9c2", "-3fa9c2", "hell3fa9c2", "../3fa9c2", "he l-3fa9c2"] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn domains_and_stacks() {
        let id = RunId::parse("hell-3fa9c2").unwrap();
        let d = Domain::for_run(&id, &Domain::parse(DEFAULT_DOMAIN_SUFFIX).unwrap()).unwrap();
        assert_eq!(d.as_str(), "hell-3fa9c2.ccci.localhost");
        let s = StackName::from_domain(&d).unwrap();
        assert_eq!(s.as_str(), "hell-3fa9c2_ccci_localhost");
        assert_eq!(s.prefix(), "hell-3fa9c2_ccci_localhost_");
        let long = Domain::parse("a-very-long-ci-zone.example-hosting-company.org").unwrap();
        let e = Domain::for_run(&id, &long).unwrap_err();
        assert!(e.message().contains(crate::config::DOMAIN_SUFFIX.name), "{e}");
        for bad in ["", "a..b", "A.b", "a_b.c", "-a.b", "a.b-", "a b", "a/b"] {
            assert!(Domain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_names() {
        check_object_name("secret", &"x".repeat(64)).unwrap();
        let e = check_object_name("config", &"x".repeat(65)).unwrap_err();
        assert!(e.message().contains("65 characters"), "{e}");
        assert!(check_object_name("service", &"x".repeat(64)).is_err());
    }
}
