//! A recipe's own secrets: which external secrets the app needs, the generation hints an
//! `.env.sample` gives for them, and generating a value that honours those hints.
//!
//! The Co-op Cloud convention (abra's, see `docs/abra-contract.md` §1.7): a secret `<key>` is declared
//! `external: true` with `name: ${STACK_NAME}_<key>_${SECRET_<KEY>_VERSION}`, and the line
//! `SECRET_<KEY>_VERSION=v1 # length=64 charset=hex` of the env carries the generation hints in
//! its trailing comment.

use std::io::Read;

use crate::error::{Error, Result};
use crate::recipe::compose::Compose;
use crate::recipe::env_file::EnvFile;

/// What a trailing comment of a `SECRET_<KEY>_VERSION` line asks of the generated value.
///
/// Hints are whitespace-separated `name=value` words; other words (prose comments) are ignored.
/// Known names: `length=N` (N characters, 1..=4096), `charset=` (`alnum`/`alphanumeric`/
/// `default`, `hex`, `special`), `generate=false` (the operator inserts the value; nothing is
/// generated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hints {
    /// Characters in the value; `None` gives [`DEFAULT_LENGTH`].
    pub length: Option<usize>,
    pub charset: Charset,
    /// `false` when the hint says `generate=false`.
    pub generate: bool,
    /// Hint words ccci does not know or could not read (`charset=emoji`, `length=lots`), for a warning.
    pub ignored: Vec<String>,
}

impl Default for Hints {
    fn default() -> Self {
        Hints { length: None, charset: Charset::Alnum, generate: true, ignored: vec![] }
    }
}

/// Length of a generated value when no `length=` hint is given.
pub const DEFAULT_LENGTH: usize = 32;
const MAX_LENGTH: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `[A-Za-z0-9]`.
    Alnum,
    /// `[0-9a-f]`.
    Hex,
    /// `[A-Za-z0-9]` plus the punctuation `!#%&()*+,-./:;<=>?@[]^_{|}~`.
    Special,
}

impl Charset {
    fn alphabet(self) -> &'static [u8] {
        match self {
            Charset::Alnum => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            Charset::Hex => b"0123456789abcdef",
            Charset::Special => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%&()*+,-./:;<=>?@[]^_{|}~"
            }
        }
    }
}

impl Hints {
    /// Reads the hints of one trailing comment (`EnvFile::hint`); `None` gives the defaults.
    pub fn parse(comment: Option<&str>) -> Hints {
        let mut h = Hints::default();
        for word in comment.unwrap_or("").split_whitespace() {
            let Some((name, value)) = word.split_once('=') else { continue };
            match name {
                "length" => match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_LENGTH).contains(&n) => h.length = Some(n),
                    _ => h.ignored.push(word.to_string()),
                },
                "charset" => match value {
                    "alnum" | "alphanumeric" | "default" => h.charset = Charset::Alnum,
                    "hex" => h.charset = Charset::Hex,
                    "special" => h.charset = Charset::Special,
                    _ => h.ignored.push(word.to_string()),
                },
                "generate" => match value {
                    "false" => h.generate = false,
                    "true" => h.generate = true,
                    _ => h.ignored.push(word.to_string()),
                },
                _ => {}
            }
        }
        h
    }
}

/// One external secret the app itself owns (named into its stack), as the deploy will look it up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSecret {
    /// The key under the compose file's top-level `secrets:`.
    pub key: String,
    /// The swarm name after substitution (`<stack>_api_key_v1`).
    pub name: String,
    /// `SECRET_<KEY>_VERSION`, the variable that versions it by convention.
    pub version_var: String,
    /// Its value in the env, when set.
    pub version: Option<String>,
    pub hints: Hints,
}

/// The external secrets of `compose` whose names start with `<stack>_`: the app's own, which
/// `abra app new --secrets` / `abra app secret generate` create. Other external secrets are
/// shared and must exist already. Hints come from `env` (the app env).
pub fn app_secrets(compose: &Compose, stack: &crate::run::naming::StackName, env: &EnvFile) -> Vec<AppSecret> {
    let prefix = stack.prefix();
    compose
        .swarm_object_names(stack.as_str())
        .into_iter()
        .filter(|o| o.kind == "secret" && o.external && o.name.starts_with(&prefix))
        .map(|o| {
            let version_var = format!("SECRET_{}_VERSION", o.key.to_ascii_uppercase());
            AppSecret {
                version: env.get(&version_var).map(str::to_owned),
                hints: Hints::parse(env.hint(&version_var)),
                key: o.key,
                name: o.name,
                version_var,
            }
        })
        .collect()
}

/// A random value as `hints` ask: `length` characters drawn uniformly from the charset, from the
/// kernel's generator. Errors only when `/dev/urandom` cannot be read.
pub fn generate(hints: &Hints) -> Result<Vec<u8>> {
    let alphabet = hints.charset.alphabet();
    let want = hints.length.unwrap_or(DEFAULT_LENGTH);
    // Reject bytes at or above the largest multiple of the alphabet's size: uniform draws.
    let limit = 256 - (256 % alphabet.len());
    let mut out = Vec::with_capacity(want);
    let mut urandom = fs_err::File::open("/dev/urandom")?;
    let mut raw = [0u8; 256];
    while out.len() < want {
        urandom.read_exact(&mut raw).map_err(|e| Error::env(format!("reading /dev/urandom: {e}")))?;
        out.extend(
            raw.iter()
                .filter(|b| (**b as usize) < limit)
                .map(|b| alphabet[*b as usize % alphabet.len()])
                .take(want - out.len()),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_length_hint_sets_the_number_of_characters() {
        let h = Hints::parse(Some("length=128"));
        assert_eq!(h.length, Some(128));
        assert_eq!(generate(&h).unwrap().len(), 128);
        assert_eq!(generate(&Hints::default()).unwrap().len(), DEFAULT_LENGTH);
    }

    #[test]
    fn a_charset_hint_sets_the_alphabet() {
        let h = Hints::parse(Some("length=64 charset=hex"));
        assert_eq!((h.length, h.charset), (Some(64), Charset::Hex));
        let v = generate(&h).unwrap();
        assert_eq!(v.len(), 64);
        assert!(v.iter().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{}", String::from_utf8_lossy(&v));
        let v = generate(&Hints::parse(Some("length=500 charset=alnum"))).unwrap();
        assert!(v.iter().all(u8::is_ascii_alphanumeric));
        let v = generate(&Hints::parse(Some("length=2000 charset=special"))).unwrap();
        assert!(v.iter().any(|c| !c.is_ascii_alphanumeric()), "special draws punctuation too");
        assert!(v.iter().all(|c| c.is_ascii_graphic() && *c != b'$' && *c != b'\'' && *c != b'"'));
    }

    #[test]
    fn generate_false_means_the_operator_provides_the_value() {
        assert!(!Hints::parse(Some("generate=false")).generate);
        assert!(!Hints::parse(Some("length=12 generate=false")).generate);
        assert!(Hints::parse(Some("length=12")).generate);
    }

    #[test]
    fn prose_comments_and_unknown_hints_change_nothing_but_are_reported() {
        assert_eq!(Hints::parse(Some("Set after first login via setup wizard")), Hints::default());
        let h = Hints::parse(Some("length=lots charset=emoji length=0"));
        assert_eq!(h.length, None);
        assert_eq!(h.charset, Charset::Alnum);
        assert_eq!(h.ignored, ["length=lots", "charset=emoji", "length=0"]);
    }

    #[test]
    fn app_secrets_are_the_external_ones_named_into_the_stack_with_their_hints() {
        let dir = std::env::temp_dir().join(format!("ccci-secrets-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        fs_err::write(
            dir.join("compose.yml"),
            "services: {app: {image: x}}\nsecrets:\n  api_key: {external: true, name: \"${STACK_NAME}_api_key_${SECRET_API_KEY_VERSION}\"}\n  shared: {external: true, name: ssl_cert}\n  local: {file: ./x}\n",
        )
        .unwrap();
        let env = EnvFile::parse("SECRET_API_KEY_VERSION=v2 # length=40 charset=hex\n", ".env").unwrap();
        let stack = crate::run::naming::StackName::parse("hell-3fa9c2_ccci_localhost").unwrap();
        let lookup = |k: &str| if k == "STACK_NAME" { Some(stack.to_string()) } else { env.get(k).map(str::to_owned) };
        let compose = Compose::load(&dir, &["compose.yml".to_string()], &lookup).unwrap();
        let s = app_secrets(&compose, &stack, &env);
        fs_err::remove_dir_all(&dir).unwrap();
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].key, "api_key");
        assert_eq!(s[0].name, "hell-3fa9c2_ccci_localhost_api_key_v2");
        assert_eq!(s[0].version_var, "SECRET_API_KEY_VERSION");
        assert_eq!(s[0].version.as_deref(), Some("v2"));
        assert_eq!((s[0].hints.length, s[0].hints.charset), (Some(40), Charset::Hex));
    }
}
