//! Reading a recipe without running it: env files, compose files and release tags.
//!
//! Everything here is pure parsing. The rules follow the tools an operator's deploy goes through
//! — a shell `source` for env files, docker's compose loader (which abra uses) for compose files —
//! because the harness has to predict what a deploy will put on the swarm (object names, labels,
//! ports, backup capability) before it runs one, and has to tear down exactly that afterwards.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use crate::error::{Context, Error, Result};

pub mod backup;
pub mod checkout;
pub mod git;
pub mod secrets;
pub mod source;
pub mod trust;

// ---------------------------------------------------------------------------------------------
// Variable substitution
// ---------------------------------------------------------------------------------------------

/// What [`substitute`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substituted {
    pub value: String,
    /// Variables referenced without a default that the lookup did not know (they became ""),
    /// sorted and without duplicates, so callers can warn about them.
    pub unset: Vec<String>,
}

/// Far deeper than any recipe nests defaults; the cap keeps hostile input from exhausting the
/// stack, since each level of `${A:-${B:-...}}` is one recursion.
const MAX_NESTING: usize = 16;

/// Interpolates one compose-file string exactly as the docker CLI's compose loader does (the
/// loader of `docker stack deploy`, which abra embeds): what ccci predicts from a recipe (object
/// names, labels, images) is what the deploy will produce. `tests/docker_interpolation.rs`
/// compares it with `docker stack config` form by form.
///
/// The rules (docker/cli `cli/compose/template`), which differ from a shell's and from
/// docker compose v2's:
/// - `$$` is a literal `$`;
/// - `${NAME}` and `$NAME` look `NAME` up (`[A-Za-z_][A-Za-z0-9_]*`); unset gives "" and is
///   listed in [`Substituted::unset`];
/// - a modifier `:-`, `-`, `:?` or `?` may follow the name, braced or not; its word runs to the
///   next `}` (braced: the closing one; unbraced: or the end of the string) and is **not**
///   itself interpolated: `${A:-${B}}` with A unset is the text `${B}`;
/// - the modifier is found by searching the whole `NAME…word` text for `:-`, then `-`, then
///   `:?`, then `?`, splitting at the first occurrence (so `${A:?x-y}` is a default, `y`);
/// - `:-` falls back when unset or empty, `-` when unset; `:?`/`?` fail with
///   `required variable NAME is missing a value: word`;
/// - any other `$` (`$1`, `$ `, a trailing `$`, `${A:+x}`, `${1}`, an unclosed `${`) is an
///   error, bad input naming the string.
pub fn substitute(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Substituted> {
    let invalid = || {
        Error::bad_input(format!(
            "invalid interpolation format {}: you may need to escape any $ with another $",
            excerpt(input)
        ))
    };
    let mut unset = BTreeSet::new();
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (substitution, consumed) = match after.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
                continue;
            }
            Some(&c) if is_name_start(c) => {
                let len = name_len(after) + modifier_len(&after[name_len(after)..]);
                (&after[..len], len)
            }
            Some(b'{') => {
                let body = &after[1..];
                if !body.as_bytes().first().is_some_and(|&c| is_name_start(c)) {
                    return Err(invalid());
                }
                let len = name_len(body) + modifier_len(&body[name_len(body)..]);
                if body.as_bytes().get(len) != Some(&b'}') {
                    return Err(invalid());
                }
                (&body[..len], len + 2)
            }
            _ => return Err(invalid()),
        };
        out.push_str(&apply_substitution(substitution, lookup, &mut unset)?);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(Substituted { value: out, unset: unset.into_iter().collect() })
}

/// Length of the `:?[-?][^}]*` modifier at the start of `s` (0 when there is none).
fn modifier_len(s: &str) -> usize {
    let b = s.as_bytes();
    let op_at = usize::from(b.first() == Some(&b':'));
    if !matches!(b.get(op_at), Some(b'-' | b'?')) {
        return 0;
    }
    op_at + 1 + s[op_at + 1..].find('}').unwrap_or(s.len() - op_at - 1)
}

/// docker's substitution functions, tried in its order: soft default, hard default, required
/// non-empty, required; each splits the text at the first occurrence of its separator.
fn apply_substitution(
    substitution: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
) -> Result<String> {
    if let Some((name, default)) = substitution.split_once(":-") {
        return Ok(lookup(name).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned()));
    }
    if let Some((name, default)) = substitution.split_once('-') {
        return Ok(lookup(name).unwrap_or_else(|| default.to_owned()));
    }
    for (sep, non_empty) in [(":?", true), ("?", false)] {
        if let Some((name, message)) = substitution.split_once(sep) {
            return match lookup(name) {
                Some(v) if !non_empty || !v.is_empty() => Ok(v),
                _ => Err(Error::bad_input(format!("required variable {name} is missing a value: {message}"))),
            };
        }
    }
    Ok(lookup(substitution).unwrap_or_else(|| {
        unset.insert(substitution.to_owned());
        String::new()
    }))
}

/// Expands `$VAR` and `${VAR…}` in an env-file value the way a shell's `source` would:
/// `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`, `${VAR?err}`, `${VAR:+alt}`,
/// `${VAR+alt}`, nested defaults (`${A:-${B}}`), and `$$` for a literal `$`. A `$` not followed
/// by a name, `{` or `$` stays literal. Compose files are interpolated by [`substitute`]
/// instead, which follows docker's rules.
fn shell_substitute(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Substituted> {
    let mut unset = BTreeSet::new();
    let value = expand(input, lookup, &mut unset, 0)?;
    Ok(Substituted { value, unset: unset.into_iter().collect() })
}

fn expand(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
    depth: usize,
) -> Result<String> {
    if depth > MAX_NESTING {
        return Err(Error::bad_input(format!(
            "variable defaults nested more than {MAX_NESTING} levels deep in {}",
            excerpt(input)
        )));
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.as_bytes().first() {
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some(b'{') => {
                let body_and_rest = &after[1..];
                let Some(close) = closing_brace(body_and_rest) else {
                    return Err(Error::bad_input(format!("unterminated \"${{\" in {}", excerpt(&rest[at..]))));
                };
                expand_braced(&body_and_rest[..close], lookup, unset, depth, &mut out)?;
                rest = &body_and_rest[close + 1..];
            }
            Some(&c) if is_name_start(c) => {
                let name = &after[..name_len(after)];
                match lookup(name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        unset.insert(name.to_owned());
                    }
                }
                rest = &after[name.len()..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The body of `${...}` (without the braces).
fn expand_braced(
    body: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    unset: &mut BTreeSet<String>,
    depth: usize,
    out: &mut String,
) -> Result<()> {
    let invalid = || Error::bad_input(format!("invalid interpolation {}", excerpt(&format!("${{{body}}}"))));
    if !body.as_bytes().first().is_some_and(|&c| is_name_start(c)) {
        return Err(invalid());
    }
    let name = &body[..name_len(body)];
    let rest = &body[name.len()..];
    let value = lookup(name);
    if rest.is_empty() {
        match value {
            Some(v) => out.push_str(&v),
            None => {
                unset.insert(name.to_owned());
            }
        }
        return Ok(());
    }
    let (colon, rest) = match rest.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut chars = rest.chars();
    let op = chars.next().ok_or_else(invalid)?;
    let word = chars.as_str();
    // With a colon an empty value counts as missing; without, only an unset one does.
    let present = match &value {
        Some(v) => !colon || !v.is_empty(),
        None => false,
    };
    match op {
        '-' => match value {
            Some(v) if present => out.push_str(&v),
            _ => out.push_str(&expand(word, lookup, unset, depth + 1)?),
        },
        '+' => {
            if present {
                out.push_str(&expand(word, lookup, unset, depth + 1)?);
            }
        }
        '?' => match value {
            Some(v) if present => out.push_str(&v),
            _ => {
                let msg = expand(word, lookup, unset, depth + 1)?;
                let what = if colon { "unset or empty" } else { "unset" };
                let sep = if msg.is_empty() { "" } else { ": " };
                return Err(Error::bad_input(format!("required variable {name} is {what}{sep}{msg}")));
            }
        },
        _ => return Err(invalid()),
    }
    Ok(())
}

/// Index of the `}` closing a `${`, counting nested `${...}` so that defaults may hold them.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut open = 0usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match (c, b.get(i + 1)) {
            (b'$', Some(b'$')) => i += 2,
            (b'$', Some(b'{')) => {
                open += 1;
                i += 2;
            }
            (b'}', _) if open == 0 => return Some(i),
            (b'}', _) => {
                open -= 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    None
}

fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// Length in bytes of the `[A-Za-z0-9_]*` run at the start of `s`.
fn name_len(s: &str) -> usize {
    s.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count()
}

/// A short, escaped rendering of possibly huge or binary text for error messages.
fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Env files
// ---------------------------------------------------------------------------------------------

/// An env file (`.env.sample` or an app `.env`) as ordered `KEY=VALUE` pairs.
///
/// Parsing follows what `source`-ing the file in a shell would leave behind: later assignments
/// replace earlier ones (keeping the first one's position), and double-quoted or unquoted values
/// expand `$VAR`/`${VAR...}` against the variables assigned earlier in the same file — never
/// against the process environment, so the result does not depend on who runs the harness.
/// Single quotes keep everything literal; `\$` and `$$` give a literal `$` (the latter is
/// compose's spelling — a shell would give its PID, which no recipe wants).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    vars: Vec<EnvVar>,
    // Hostile files can hold many thousands of keys; a linear `get` per `$VAR` would be quadratic.
    index: HashMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EnvVar {
    key: String,
    value: String,
    hint: Option<String>,
}

impl EnvFile {
    /// Parses env text; `origin` names the file in error messages (`origin:LINE: ...`).
    pub fn parse(text: &str, origin: &str) -> Result<EnvFile> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if let Some(at) = text.find('\0') {
            let line = text[..at].matches('\n').count() + 1;
            return Err(Error::bad_input(format!("{origin}:{line}: contains a NUL byte")));
        }
        let mut p = EnvParser { text, pos: 0, line: 1, origin };
        let mut env = EnvFile::default();
        loop {
            p.skip_blanks();
            match p.peek() {
                None => break,
                Some('\n') => {
                    p.bump();
                    continue;
                }
                Some('#') => {
                    p.rest_of_line();
                    continue;
                }
                Some(_) => {}
            }
            let line = p.line;
            let start = p.pos;
            let mut key = p.word();
            let mut exported = false;
            if key == "export" && matches!(p.peek(), Some(' ' | '\t')) {
                p.skip_blanks();
                key = p.word();
                exported = true;
            }
            let valid = !key.is_empty() && !key.starts_with(|c: char| c.is_ascii_digit());
            p.skip_blanks();
            if !valid || p.peek() != Some('=') {
                // `export NAME` only marks a variable for export in a shell; it assigns nothing.
                if exported && valid && matches!(p.peek(), None | Some('\n' | '#')) {
                    p.rest_of_line();
                    continue;
                }
                let text_of_line = text[start..].lines().next().unwrap_or("");
                return Err(p.error(line, format!("expected KEY=VALUE, found {}", excerpt(text_of_line))));
            }
            p.bump();
            let (value, hint) = p.value(&env, line)?;
            env.assign(key, value, hint);
        }
        Ok(env)
    }

    /// Reads and parses an env file; errors name the path.
    pub fn read(path: &Path) -> Result<EnvFile> {
        let bytes = fs_err::read(path).context("reading env file")?;
        EnvFile::from_bytes(bytes, &path.display().to_string())
    }

    /// Parses the bytes of an env file named `origin` in errors; not UTF-8 is bad input.
    pub fn from_bytes(bytes: Vec<u8>, origin: &str) -> Result<EnvFile> {
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::bad_input(format!(
                "{origin}: not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        EnvFile::parse(&text, origin)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let i = *self.index.get(key)?;
        self.vars.get(i).map(|v| v.value.as_str())
    }

    /// The trailing comment of the line that assigned `key` (`v1 # length=128` gives
    /// `"length=128"`). Newer abra reads secret generation hints from it.
    pub fn hint(&self, key: &str) -> Option<&str> {
        let i = *self.index.get(key)?;
        self.vars.get(i)?.hint.as_deref()
    }

    /// Replaces the value of `key` (keeping its position and hint) or appends it. `key` should
    /// be a shell name (`[A-Za-z_][A-Za-z0-9_]*`), or [`EnvFile::render`] cannot write it back.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.index.get(key).and_then(|&i| self.vars.get_mut(i)) {
            Some(var) => value.clone_into(&mut var.value),
            None => self.push(key.to_owned(), value.to_owned(), None),
        }
    }

    /// Adds every key of `sample` this env does not have, with the sample's value and hint, in
    /// the sample's order; keys already here keep their value. Returns the added keys. This is
    /// what an operator does with a newer `.env.sample`: copy the new lines, keep their own.
    pub fn add_missing(&mut self, sample: &EnvFile) -> Vec<String> {
        let mut added = vec![];
        for var in &sample.vars {
            if !self.index.contains_key(&var.key) {
                self.push(var.key.clone(), var.value.clone(), var.hint.clone());
                added.push(var.key.clone());
            }
        }
        added
    }

    /// The `KEY=VALUE[ # hint]` line [`EnvFile::render`] writes for `key`.
    pub fn render_var(&self, key: &str) -> Option<String> {
        let var = self.vars.get(*self.index.get(key)?)?;
        let mut line = format!("{}={}", var.key, render_value(&var.value));
        if let Some(hint) = &var.hint {
            line.push_str(" # ");
            line.push_str(hint);
        }
        Some(line)
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|v| (v.key.as_str(), v.value.as_str()))
    }

    /// A lookup for [`substitute`] and [`Compose::load`] backed by this file.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |key| self.get(key).map(str::to_owned)
    }

    /// Back to `KEY=VALUE` lines that [`EnvFile::parse`] and a shell read back unchanged: values
    /// are quoted only when needed, single quotes first because nothing expands inside them.
    /// Hints are kept as trailing comments; other comments are not.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for var in &self.vars {
            out.push_str(&self.render_var(&var.key).unwrap_or_default());
            out.push('\n');
        }
        out
    }

    /// A later assignment of the same key replaces value and hint, as re-running it in a shell would.
    fn assign(&mut self, key: &str, value: String, hint: Option<String>) {
        match self.index.get(key).and_then(|&i| self.vars.get_mut(i)) {
            Some(var) => {
                var.value = value;
                var.hint = hint;
            }
            None => self.push(key.to_owned(), value, hint),
        }
    }

    fn push(&mut self, key: String, value: String, hint: Option<String>) {
        self.index.insert(key.clone(), self.vars.len());
        self.vars.push(EnvVar { key, value, hint });
    }
}

fn render_value(v: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+,=^".contains(c);
    if v.chars().all(plain) {
        v.to_owned()
    } else if !v.contains('\'') {
        format!("'{v}'")
    } else {
        let mut out = String::with_capacity(v.len() + 2);
        out.push('"');
        for c in v.chars() {
            if matches!(c, '\\' | '"' | '$' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }
}

struct EnvParser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    origin: &'a str,
}

impl<'a> EnvParser<'a> {
    fn peek(&self) -> Option<char> {
        self.text.get(self.pos..)?.chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Spaces, tabs and the `\r` of CRLF files; never the newline itself.
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    /// Consumes up to (not including) the next newline.
    fn rest_of_line(&mut self) -> &'a str {
        let rest = self.text.get(self.pos..).unwrap_or("");
        let end = rest.find('\n').unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    fn word(&mut self) -> &'a str {
        let rest = self.text.get(self.pos..).unwrap_or("");
        let len = name_len(rest);
        self.pos += len;
        &rest[..len]
    }

    fn error(&self, line: usize, msg: impl fmt::Display) -> Error {
        Error::bad_input(format!("{}:{line}: {msg}", self.origin))
    }

    /// The value after `=` and the hint from a trailing comment.
    fn value(&mut self, env: &EnvFile, line: usize) -> Result<(String, Option<String>)> {
        let spaced = matches!(self.peek(), Some(' ' | '\t'));
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
        match self.peek() {
            Some('"') => {
                self.bump();
                let raw = self.double_quoted(line)?;
                let value = self.expand(&raw, env, line)?;
                Ok((value, self.after_quote(line)?))
            }
            Some('\'') => {
                self.bump();
                let value = self.single_quoted(line)?;
                Ok((value, self.after_quote(line)?))
            }
            _ => {
                let raw = self.rest_of_line();
                // As in a shell, `#` starts a comment only at the start of a word.
                let comment_at = raw.char_indices().find_map(|(i, c)| {
                    let word_start = match raw[..i].chars().next_back() {
                        Some(prev) => prev == ' ' || prev == '\t',
                        None => spaced,
                    };
                    (c == '#' && word_start).then_some(i)
                });
                let (value, hint) = match comment_at {
                    Some(i) => (&raw[..i], hint_of(&raw[i + 1..])),
                    None => (raw, None),
                };
                // `\$` keeps a dollar literal, as in a shell; `$$` is how shell_substitute spells that.
                let value = self.expand(&value.trim_end().replace("\\$", "$$"), env, line)?;
                Ok((value, hint))
            }
        }
    }

    /// Content up to the closing `"`, with shell escapes resolved and literal dollars as `$$`.
    fn double_quoted(&mut self, line: usize) -> Result<String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(self.error(line, "unterminated double quote")),
                Some('"') => return Ok(out),
                Some('\\') => match self.peek() {
                    Some('$') => {
                        self.bump();
                        out.push_str("$$");
                    }
                    Some(c @ ('"' | '\\' | '`')) => {
                        self.bump();
                        out.push(c);
                    }
                    Some('\n') => {
                        self.bump();
                    }
                    _ => out.push('\\'),
                },
                Some(c) => out.push(c),
            }
        }
    }

    fn single_quoted(&mut self, line: usize) -> Result<String> {
        let rest = self.text.get(self.pos..).unwrap_or("");
        let Some(end) = rest.find('\'') else {
            return Err(self.error(line, "unterminated single quote"));
        };
        let value = &rest[..end];
        self.line += value.matches('\n').count();
        self.pos += end + 1;
        Ok(value.to_owned())
    }

    /// After a closing quote only blanks and a comment may follow on the same line.
    fn after_quote(&mut self, line: usize) -> Result<Option<String>> {
        self.skip_blanks();
        match self.peek() {
            None | Some('\n') => Ok(None),
            Some('#') => {
                let comment = self.rest_of_line();
                Ok(hint_of(comment.get(1..).unwrap_or("")))
            }
            Some(_) => {
                let junk = self.rest_of_line();
                Err(self.error(line, format!("unexpected text after closing quote: {}", excerpt(junk))))
            }
        }
    }

    fn expand(&self, raw: &str, env: &EnvFile, line: usize) -> Result<String> {
        match shell_substitute(raw, &env.lookup()) {
            Ok(s) => Ok(s.value),
            Err(e) => Err(self.error(line, e.message())),
        }
    }
}

fn hint_of(comment: &str) -> Option<String> {
    let hint = comment.trim();
    (!hint.is_empty()).then(|| hint.to_owned())
}

/// Compose files named by `COMPOSE_FILE` (colon-separated, in order), default `["compose.yml"]`.
pub fn compose_files(env: &EnvFile) -> Vec<String> {
    let files: Vec<String> = env
        .get("COMPOSE_FILE")
        .unwrap_or("")
        .split(':')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect();
    if files.is_empty() { vec!["compose.yml".to_owned()] } else { files }
}

// ---------------------------------------------------------------------------------------------
// Compose files
// ---------------------------------------------------------------------------------------------

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Secret,
    Config,
    Volume,
    Network,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
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

// ---------------------------------------------------------------------------------------------
// Release tags
// ---------------------------------------------------------------------------------------------

/// A recipe release tag: `<major.minor.patch[-pre]>[+upstream]`, optionally prefixed with `v`.
///
/// Ordering is semver on the recipe part (pre-releases before the release, identifiers compared
/// numerically or lexically); the `+upstream` part is metadata that only breaks ties, lexically
/// (none before some), and the tag name breaks the last ties so that equality is name equality.
#[derive(Debug, Clone)]
pub struct ReleaseTag {
    pub name: String,
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Option<String>,
    pub upstream: Option<String>,
}

/// Parses a release tag; `None` for tags that are not releases.
pub fn parse_release_tag(name: &str) -> Option<ReleaseTag> {
    let s = name.strip_prefix('v').unwrap_or(name);
    let (version, upstream) = match s.split_once('+') {
        Some((v, u)) => (v, Some(u)),
        None => (s, None),
    };
    // `_` is outside semver but appears in the old `1.14.1-rootless_1` scheme.
    let ident = |i: &str| !i.is_empty() && i.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if upstream.is_some_and(|u| !u.split('.').all(ident)) {
        return None;
    }
    let (core, pre) = match version.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (version, None),
    };
    if pre.is_some_and(|p| !p.split('.').all(ident)) {
        return None;
    }
    let number = |n: &str| {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse::<u64>().ok()
    };
    let mut parts = core.split('.');
    let (major, minor, patch) = (number(parts.next()?)?, number(parts.next()?)?, number(parts.next()?)?);
    if parts.next().is_some() {
        return None;
    }
    Some(ReleaseTag {
        name: name.to_owned(),
        major,
        minor,
        patch,
        pre: pre.map(str::to_owned),
        upstream: upstream.map(str::to_owned),
    })
}

/// Release tags among `names`, ascending; tags that are not releases are dropped.
pub fn order_release_tags<I: IntoIterator<Item = String>>(names: I) -> Vec<ReleaseTag> {
    let mut tags: Vec<ReleaseTag> = names.into_iter().filter_map(|n| parse_release_tag(&n)).collect();
    tags.sort();
    tags.dedup();
    tags
}

impl ReleaseTag {
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Ord for ReleaseTag {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| cmp_pre(self.pre.as_deref(), other.pre.as_deref()))
            .then_with(|| self.upstream.cmp(&other.upstream))
            .then_with(|| self.name.cmp(&other.name))
    }
}

impl PartialOrd for ReleaseTag {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ReleaseTag {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ReleaseTag {}

/// Semver pre-release precedence: a release sorts after its pre-releases.
fn cmp_pre(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => {
            let mut a = a.split('.');
            let mut b = b.split('.');
            loop {
                match (a.next(), b.next()) {
                    (None, None) => return Ordering::Equal,
                    (None, Some(_)) => return Ordering::Less,
                    (Some(_), None) => return Ordering::Greater,
                    (Some(x), Some(y)) => match cmp_ident(x, y) {
                        Ordering::Equal => {}
                        other => return other,
                    },
                }
            }
        }
    }
}

fn cmp_ident(x: &str, y: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match (numeric(x), numeric(y)) {
        // Compared as digit strings so that arbitrarily long numbers cannot overflow.
        (true, true) => {
            let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            x.len().cmp(&y.len()).then_with(|| x.cmp(y))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => x.cmp(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::path::PathBuf;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    /// Env-file (shell) expansion.
    fn sub(input: &str, pairs: &[(&str, &str)]) -> Substituted {
        shell_substitute(input, &vars(pairs)).unwrap()
    }

    fn sub_err(input: &str, pairs: &[(&str, &str)]) -> Error {
        shell_substitute(input, &vars(pairs)).unwrap_err()
    }

    /// Compose-file (docker) interpolation.
    fn dock(input: &str) -> String {
        let env = [("A", "aa"), ("EMPTY", ""), ("B", "bb")];
        substitute(input, &vars(&env)).unwrap_or_else(|e| panic!("{input}: {e}")).value
    }

    fn dock_err(input: &str) -> String {
        let env = [("A", "aa"), ("EMPTY", "")];
        match substitute(input, &vars(&env)) {
            Ok(s) => panic!("{input} gave {:?}, docker refuses it", s.value),
            Err(e) => {
                assert_eq!(e.kind(), Kind::BadInput, "{input}");
                e.message().to_string()
            }
        }
    }

    // --- substitute: docker's compose interpolation (each value checked against
    // `docker stack config` by tests/docker_interpolation.rs) ------------------------------

    #[test]
    fn compose_interpolation_plain_and_escaped_forms() {
        assert_eq!(dock("${A}-$A_b"), "aa-");
        // `$A-…` is A with a default running to the end: docker's quirk.
        assert_eq!(dock("${A}-$A-$A_b"), "aa-aa");
        assert_eq!(dock("$A.b $A}"), "aa.b aa}");
        assert_eq!(dock("${UNSET}"), "");
        assert_eq!(dock("pg_isready -U $$POSTGRES_USER"), "pg_isready -U $POSTGRES_USER");
        assert_eq!(dock("https://${A}/alias/$${1}$${2}"), "https://aa/alias/${1}${2}");
        assert_eq!(dock("$$$$"), "$$");
        let s = substitute("${Z} $Y ${Z}", &vars(&[])).unwrap();
        assert_eq!(s.unset, ["Y", "Z"]);
    }

    #[test]
    fn compose_interpolation_defaults_and_their_docker_quirks() {
        assert_eq!(dock("${UNSET:-d}"), "d");
        assert_eq!(dock("${EMPTY:-d}"), "d");
        assert_eq!(dock("${A:-d}"), "aa");
        assert_eq!(dock("${UNSET-d}"), "d");
        assert_eq!(dock("${EMPTY-d}"), "");
        assert_eq!(dock("${UNSET:-a b:c-d}"), "a b:c-d");
        // Defaults are not interpolated, and run to the first `}`.
        assert_eq!(dock("${UNSET:-${A}}"), "${A}");
        assert_eq!(dock("${UNSET:-${B:-c}}"), "${B:-c}");
        assert_eq!(dock("${UNSET-$$}"), "$$");
        assert_eq!(dock("${UNSET:-x}y}"), "xy}");
        // Unbraced names take modifiers too, up to a `}` or the end.
        assert_eq!(dock("$UNSET:-foo bar"), "foo bar");
        assert_eq!(dock("$A-foo/bar"), "aa");
        assert_eq!(dock("$UNSET-x}y"), "x}y");
        assert_eq!(dock("$A:x"), "aa:x");
        // The separator is searched in the whole text: `:-` first, then `-`.
        assert_eq!(dock("${A:?x-y}"), "y");
        assert_eq!(dock("${A-x:-y}"), "y");
    }

    #[test]
    fn compose_interpolation_required_variables() {
        assert_eq!(dock("${A:?must}"), "aa");
        assert_eq!(dock("${EMPTY?must}"), "");
        assert_eq!(dock_err("${UNSET:?set the domain}"), "required variable UNSET is missing a value: set the domain");
        assert_eq!(dock_err("${EMPTY:?}"), "required variable EMPTY is missing a value: ");
        assert_eq!(dock_err("$UNSET?x"), "required variable UNSET is missing a value: x");
    }

    #[test]
    fn compose_interpolation_refuses_what_docker_refuses() {
        for bad in ["a$1", "a $ b", "a$", "${A:+alt}", "${1}", "${ A}", "x${A", "${}", "${A:x}", "${A B}"] {
            let msg = dock_err(bad);
            assert!(msg.starts_with("invalid interpolation format"), "{bad}: {msg}");
        }
    }

    // --- env-file (shell) expansion -----------------------------------------------------------

    #[test]
    fn substitute_plain_forms() {
        let env = [("A", "x"), ("EMPTY", "")];
        assert_eq!(sub("${A}-$A-$A_b", &env).value, "x-x-");
        assert_eq!(sub("$A.b", &env).value, "x.b");
        assert_eq!(sub("no vars", &env).value, "no vars");
        assert_eq!(sub("", &env).value, "");
    }

    #[test]
    fn substitute_dollar_escapes_and_literals() {
        assert_eq!(sub("pg_isready -U $$POSTGRES_USER", &[]).value, "pg_isready -U $POSTGRES_USER");
        assert_eq!(sub("$$$$", &[]).value, "$$");
        // Compose leaves a `$` that starts no variable alone.
        assert_eq!(sub("cost $5, end $", &[]).value, "cost $5, end $");
        assert_eq!(sub("a $ b $-", &[]).value, "a $ b $-");
        assert!(sub("$5", &[]).unset.is_empty());
    }

    #[test]
    fn substitute_defaults() {
        let env = [("SET", "v"), ("EMPTY", "")];
        assert_eq!(sub("${UNSET:-d}", &env).value, "d");
        assert_eq!(sub("${EMPTY:-d}", &env).value, "d");
        assert_eq!(sub("${SET:-d}", &env).value, "v");
        assert_eq!(sub("${UNSET-d}", &env).value, "d");
        assert_eq!(sub("${EMPTY-d}", &env).value, "");
        assert_eq!(sub("${SET-d}", &env).value, "v");
        assert_eq!(sub("${UNSET:-}", &env).value, "");
        assert_eq!(sub("${UNSET:-a b:c-d}", &env).value, "a b:c-d");
        // A default is not reported as unset: it has a value.
        assert!(sub("${UNSET:-d}", &env).unset.is_empty());
    }

    #[test]
    fn substitute_alternates() {
        let env = [("SET", "v"), ("EMPTY", "")];
        assert_eq!(sub("${SET:+alt}", &env).value, "alt");
        assert_eq!(sub("${EMPTY:+alt}", &env).value, "");
        assert_eq!(sub("${EMPTY+alt}", &env).value, "alt");
        assert_eq!(sub("${UNSET+alt}", &env).value, "");
    }

    #[test]
    fn substitute_nested_defaults() {
        assert_eq!(sub("${A:-${B:-c}}", &[]).value, "c");
        assert_eq!(sub("${A:-${B:-c}}", &[("B", "b")]).value, "b");
        assert_eq!(sub("${A:-${B:-c}}", &[("A", "a")]).value, "a");
        assert_eq!(sub("${A:-x${B}y}z", &[("B", "b")]).value, "xbyz");
        assert_eq!(sub("${A:-${B:-${C:-deep}}}", &[]).value, "deep");
        // `$$` inside a default is an escaped dollar, not the start of a nested variable.
        assert_eq!(sub("${A:-$${B}}", &[]).value, "${B}");
        // An unset variable inside a default that was not used is not reported.
        assert!(sub("${A:-${B}}", &[("A", "a")]).unset.is_empty());
        assert_eq!(sub("${A:-${B}}", &[]).unset, ["B"]);
    }

    #[test]
    fn substitute_reports_unset_sorted_and_deduplicated() {
        let s = sub("${Z} $A ${Z} ${M}", &[]);
        assert_eq!(s.value, "   ");
        assert_eq!(s.unset, ["A", "M", "Z"]);
    }

    #[test]
    fn substitute_required_names_variable_and_message() {
        let e = sub_err("${DOMAIN:?set the domain}", &[]);
        assert_eq!(e.kind(), Kind::BadInput);
        assert_eq!(e.message(), "required variable DOMAIN is unset or empty: set the domain");
        let e = sub_err("${DOMAIN:?}", &[("DOMAIN", "")]);
        assert_eq!(e.message(), "required variable DOMAIN is unset or empty");
        let e = sub_err("${DOMAIN?need ${WHAT:-it}}", &[]);
        assert_eq!(e.message(), "required variable DOMAIN is unset: need it");
        assert_eq!(sub("${DOMAIN?x}", &[("DOMAIN", "")]).value, "");
        assert_eq!(sub("${DOMAIN:?x}", &[("DOMAIN", "d")]).value, "d");
    }

    #[test]
    fn substitute_rejects_malformed_braces() {
        for bad in ["${A", "x ${A:-${B}", "${", "${}", "${A B}", "${1A}", "${A.b}", "${A:}", "${A:x}", "${-x}"] {
            let e = sub_err(bad, &[]);
            assert_eq!(e.kind(), Kind::BadInput, "{bad}");
        }
        assert!(sub_err("${A", &[]).message().starts_with("unterminated \"${\""));
        assert!(sub_err("${A B}", &[]).message().contains("invalid interpolation"));
    }

    #[test]
    fn substitute_caps_nesting_instead_of_overflowing() {
        let deep = "${A:-".repeat(100_000) + &"}".repeat(100_000);
        let e = sub_err(&deep, &[]);
        assert!(e.message().contains("nested more than"), "{}", e.message());
        let ok = "${A:-".repeat(MAX_NESTING) + "x" + &"}".repeat(MAX_NESTING);
        assert_eq!(sub(&ok, &[]).value, "x");
    }

    #[test]
    fn substitute_huge_and_garbage_input() {
        let big = "a".repeat(1 << 20) + "${X}";
        assert_eq!(sub(&big, &[("X", "!")]).value.len(), (1 << 20) + 1);
        let unterminated = "${X:-".to_owned() + &"a".repeat(1 << 20);
        let e = sub_err(&unterminated, &[]);
        // The message quotes a short excerpt, not the megabyte.
        assert!(e.message().len() < 200, "{}", e.message().len());
        for seed in 0..200u32 {
            let s = garbage(seed, 64);
            let _ = substitute(&s, &vars(&[("A", "x")]));
        }
    }

    /// Deterministic junk that is heavy on the characters the parsers care about.
    fn garbage(seed: u32, len: usize) -> String {
        let alphabet = [
            '$', '{', '}', ':', '-', '?', '+', '"', '\'', '\\', '#', '=', '\n', ' ', 'A', '_', '1', 'é', '\u{0}', '\r',
            '\u{feff}',
        ];
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                alphabet[(x as usize) % alphabet.len()]
            })
            .collect()
    }

    // --- EnvFile --------------------------------------------------------------------------

    fn env(text: &str) -> EnvFile {
        EnvFile::parse(text, ".env.sample").unwrap()
    }

    fn env_err(text: &str) -> Error {
        EnvFile::parse(text, ".env.sample").unwrap_err()
    }

    #[test]
    fn env_basic_forms() {
        let e = env(concat!(
            "TYPE=bonfire\n",
            "\n",
            "# a comment\n",
            "   # an indented comment\n",
            "#COMPOSE_FILE=compose.x.yml\n",
            "export EXPORTED=yes\n",
            "  INDENTED=1\n",
            "DQ=\"a b # not a comment\"\n",
            "SQ='c d'\n",
            "EMPTY=\n",
            "EMPTY_DQ=\"\"\n",
            "HASH=a#b\n",
            "SPACED = v\n",
        ));
        let got: Vec<_> = e.vars().collect();
        assert_eq!(
            got,
            [
                ("TYPE", "bonfire"),
                ("EXPORTED", "yes"),
                ("INDENTED", "1"),
                ("DQ", "a b # not a comment"),
                ("SQ", "c d"),
                ("EMPTY", ""),
                ("EMPTY_DQ", ""),
                ("HASH", "a#b"),
                ("SPACED", "v"),
            ]
        );
        assert_eq!(e.get("COMPOSE_FILE"), None);
        assert_eq!(e.get("MISSING"), None);
    }

    #[test]
    fn env_trailing_comment_is_a_hint() {
        let e = env(concat!(
            "SECRET_DB_PASSWORD_VERSION=v1 # length=128\n",
            "SECRET_B_VERSION=v1\t#  charset=hex  \n",
            "SECRET_C_VERSION=\"v1\" # length=64\n",
            "SECRET_D_VERSION='v1'# length=32\n",
            "SECRET_E_VERSION=v1 #\n",
            "NOTHING= # only a comment\n",
        ));
        assert_eq!(e.get("SECRET_DB_PASSWORD_VERSION"), Some("v1"));
        assert_eq!(e.hint("SECRET_DB_PASSWORD_VERSION"), Some("length=128"));
        assert_eq!(e.hint("SECRET_B_VERSION"), Some("charset=hex"));
        assert_eq!(e.get("SECRET_C_VERSION"), Some("v1"));
        assert_eq!(e.hint("SECRET_C_VERSION"), Some("length=64"));
        assert_eq!(e.hint("SECRET_D_VERSION"), Some("length=32"));
        assert_eq!(e.hint("SECRET_E_VERSION"), None);
        assert_eq!(e.get("NOTHING"), Some(""));
        assert_eq!(e.hint("NOTHING"), Some("only a comment"));
        assert_eq!(e.hint("MISSING"), None);
    }

    #[test]
    fn env_incremental_compose_file() {
        let e = env(concat!(
            "COMPOSE_FILE=\"compose.yml\"\n",
            "COMPOSE_FILE=\"$COMPOSE_FILE:compose.postgres.yml\"\n",
            "#COMPOSE_FILE=\"$COMPOSE_FILE:compose.off.yml\"\n",
            "COMPOSE_FILE=${COMPOSE_FILE}:sub/compose.tune.yml\n",
        ));
        assert_eq!(e.get("COMPOSE_FILE"), Some("compose.yml:compose.postgres.yml:sub/compose.tune.yml"));
        assert_eq!(compose_files(&e), ["compose.yml", "compose.postgres.yml", "sub/compose.tune.yml"]);
        // A variable is expanded only against what came before it, as a shell would.
        let e = env("A=$B\nB=b\nC=${B:-x}-$A\n");
        assert_eq!(e.get("A"), Some(""));
        assert_eq!(e.get("C"), Some("b-"));
    }

    #[test]
    fn env_quoting_controls_expansion() {
        let e = env(concat!(
            "D=dom\n",
            "SQ='$D ${D}'\n",
            "DQ=\"$D \\$D \\\\$D \\\"q\\\" \\n\"\n",
            "UQ=$D.\\$D\n",
            "DEF=\"${NOPE:-fallback}\"\n",
            "EXTRA_DOMAINS=', `www.example.com`'\n",
        ));
        assert_eq!(e.get("SQ"), Some("$D ${D}"));
        assert_eq!(e.get("DQ"), Some("dom $D \\dom \"q\" \\n"));
        assert_eq!(e.get("UQ"), Some("dom.$D"));
        assert_eq!(e.get("DEF"), Some("fallback"));
        assert_eq!(e.get("EXTRA_DOMAINS"), Some(", `www.example.com`"));
    }

    #[test]
    fn env_later_assignment_replaces_in_place() {
        let e = env("A=1 # first\nB=2\nA=3\n");
        assert_eq!(e.vars().collect::<Vec<_>>(), [("A", "3"), ("B", "2")]);
        // The hint belongs to the assignment that won.
        assert_eq!(e.hint("A"), None);
    }

    #[test]
    fn env_line_endings_bom_multiline_and_bare_export() {
        let e = env("\u{feff}A=1\r\nB=\"x\"\r\nexport A\nC=\"line1\nline2\"\nD='l1\nl2'\nE=after\n");
        assert_eq!(e.get("A"), Some("1"));
        assert_eq!(e.get("B"), Some("x"));
        assert_eq!(e.get("C"), Some("line1\nline2"));
        assert_eq!(e.get("D"), Some("l1\nl2"));
        assert_eq!(e.get("E"), Some("after"));
        // A line continuation inside double quotes joins the lines.
        assert_eq!(env("A=\"x\\\ny\"").get("A"), Some("xy"));
        assert_eq!(env("").vars().count(), 0);
        assert_eq!(env("A=1").get("A"), Some("1"));
    }

    #[test]
    fn env_errors_name_file_and_line() {
        let e = env_err("A=1\n\nB=\"unterminated\nC=2\n");
        assert_eq!(e.kind(), Kind::BadInput);
        assert_eq!(e.message(), ".env.sample:3: unterminated double quote");
        assert_eq!(env_err("A='x").message(), ".env.sample:1: unterminated single quote");
        let e = env_err("A=1\nnot an assignment\n");
        assert_eq!(e.message(), ".env.sample:2: expected KEY=VALUE, found \"not an assignment\"");
        assert!(env_err("1A=x").message().starts_with(".env.sample:1: expected KEY=VALUE"));
        assert!(env_err("FOO-BAR=x").message().starts_with(".env.sample:1: expected KEY=VALUE"));
        assert!(env_err("=x").message().starts_with(".env.sample:1:"));
        let e = env_err("A=\"x\"y\n");
        assert_eq!(e.message(), ".env.sample:1: unexpected text after closing quote: \"y\"");
        let e = env_err("A=1\nB=${DOMAIN:?set DOMAIN first}\n");
        assert_eq!(e.message(), ".env.sample:2: required variable DOMAIN is unset or empty: set DOMAIN first");
        let e = env_err("A=1\nB=${A\n");
        assert!(e.message().starts_with(".env.sample:2: unterminated \"${\""), "{}", e.message());
        assert_eq!(env_err("A=1\nB=x\u{0}y\n").message(), ".env.sample:2: contains a NUL byte");
    }

    #[test]
    fn env_hostile_input_errors_cleanly() {
        let big = "x".repeat(1 << 20);
        let e = env(&format!("BIG={big}\nQ=\"{big}\"\n"));
        assert_eq!(e.get("BIG").map(str::len), Some(1 << 20));
        assert_eq!(e.get("Q").map(str::len), Some(1 << 20));
        let e = env_err(&format!("BIG=\"{big}"));
        assert!(e.message().len() < 200);
        for seed in 0..500u32 {
            let text = garbage(seed, 80);
            if let Err(e) = EnvFile::parse(&text, "junk") {
                assert!(e.message().starts_with("junk:"), "{}", e.message());
            }
        }
        let bytes: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        let _ = EnvFile::parse(&String::from_utf8_lossy(&bytes), "binary");
    }

    #[test]
    fn env_set_and_render_round_trip() {
        let mut e = env("TYPE=x\nSECRET_V=v1 # length=128\n");
        e.set("TYPE", "bonfire");
        e.set("DOMAIN", "bonf-3fa9c2.ci.example.net");
        e.set("SPACE", "a b");
        e.set("DOLLAR", "$HOME and ${X}");
        e.set("BOTH", "it's \"$x\" `cmd` \\ end");
        e.set("NL", "l1\nl2");
        e.set("EMPTY", "");
        e.set("HASHY", "#x");
        e.set("RULE", "Host(`a.example`)");
        let text = e.render();
        assert!(text.starts_with("TYPE=bonfire\nSECRET_V=v1 # length=128\nDOMAIN=bonf-3fa9c2.ci.example.net\n"));
        assert!(text.contains("SPACE='a b'\n"));
        assert!(text.contains("EMPTY=\n"));
        let back = EnvFile::parse(&text, "rendered").unwrap();
        assert_eq!(back, e);
        assert_eq!(back.hint("SECRET_V"), Some("length=128"));
    }

    #[test]
    fn env_read_names_the_path() {
        let dir = TempDir::new("env-read");
        let path = dir.path().join("app.env");
        fs_err::write(&path, "A=1\nB=\"x\n").unwrap();
        let e = EnvFile::read(&path).unwrap_err();
        assert_eq!(e.message(), format!("{}:2: unterminated double quote", path.display()));
        fs_err::write(&path, b"A=\xff\xfe\n").unwrap();
        let e = EnvFile::read(&path).unwrap_err();
        assert_eq!(e.kind(), Kind::BadInput);
        assert!(e.message().contains("not UTF-8"), "{}", e.message());
        let missing = dir.path().join("missing.env");
        let e = EnvFile::read(&missing).unwrap_err();
        assert_eq!(e.kind(), Kind::Environment);
        assert!(e.message().contains("missing.env"), "{}", e.message());
        fs_err::write(&path, "A=1\n").unwrap();
        assert_eq!(EnvFile::read(&path).unwrap().get("A"), Some("1"));
    }

    #[test]
    fn compose_files_default_and_split() {
        assert_eq!(compose_files(&env("")), ["compose.yml"]);
        assert_eq!(compose_files(&env("COMPOSE_FILE=\n")), ["compose.yml"]);
        assert_eq!(compose_files(&env("COMPOSE_FILE=\"a.yml::b.yml: \"\n")), ["a.yml", "b.yml"]);
    }

    // --- Compose --------------------------------------------------------------------------

    /// A scratch directory removed on drop; std only, so no dev-dependency is needed.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("ccci-recipe-{}-{name}-{n}", std::process::id()));
            let _ = fs_err::remove_dir_all(&dir);
            fs_err::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
        fn path(&self) -> &Path {
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

    // --- Release tags ---------------------------------------------------------------------

    fn names(tags: &[ReleaseTag]) -> Vec<&str> {
        tags.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn release_tags_parse() {
        let t = parse_release_tag("2.0.0+1.0.5-social-amd64").unwrap();
        assert_eq!((t.major, t.minor, t.patch), (2, 0, 0));
        assert_eq!(t.pre, None);
        assert_eq!(t.upstream.as_deref(), Some("1.0.5-social-amd64"));
        let t = parse_release_tag("v2.4.8").unwrap();
        assert_eq!((t.major, t.minor, t.patch, t.upstream.as_deref()), (2, 4, 8, None));
        assert_eq!(t.to_string(), "v2.4.8");
        let t = parse_release_tag("1.0.0-rc.1+2.3").unwrap();
        assert_eq!(t.pre.as_deref(), Some("rc.1"));
        assert!(t.is_prerelease());
        assert!(parse_release_tag("1.14.1-rootless_1").is_some());
        for not_release in [
            "",
            "v",
            "latest",
            "main",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3+",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3+a b",
            "V1.2.3",
            "vv1.2.3",
            "1.2.3 ",
            "-1.2.3",
            "99999999999999999999.0.0",
            "1.+2.3",
            "１.2.3",
        ] {
            assert!(parse_release_tag(not_release).is_none(), "{not_release:?}");
        }
    }

    #[test]
    fn release_tags_order_by_recipe_semver() {
        let input = [
            "1.10.0+1.0",
            "1.9.0+9.9",
            "v2.4.8",
            "0.3.0",
            "1.0.0",
            "1.0.0-rc.1",
            "1.0.0-beta.11",
            "1.0.0-beta.2",
            "1.0.0-beta",
            "1.0.0-alpha.beta",
            "1.0.0-alpha.1",
            "1.0.0-alpha",
            "not-a-release",
            "latest",
        ];
        let ordered = order_release_tags(input.iter().map(|s| s.to_string()));
        assert_eq!(
            names(&ordered),
            [
                "0.3.0",
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
                "1.9.0+9.9",
                "1.10.0+1.0",
                "v2.4.8",
            ]
        );
    }

    #[test]
    fn release_tags_upstream_only_breaks_ties() {
        let ordered = order_release_tags(
            ["1.0.1+1.0", "1.0.0+2.0", "1.0.0+10.0", "1.0.0", "v1.0.0", "1.0.0+2.0"].map(String::from),
        );
        // Lexical, so "10.0" sorts before "2.0"; the name settles "1.0.0" against "v1.0.0";
        // duplicates collapse.
        assert_eq!(names(&ordered), ["1.0.0", "v1.0.0", "1.0.0+10.0", "1.0.0+2.0", "1.0.1+1.0"]);
        let a = parse_release_tag("1.0.0").unwrap();
        let b = parse_release_tag("v1.0.0").unwrap();
        assert_ne!(a, b);
        assert_eq!(a, parse_release_tag("1.0.0").unwrap());
        // Huge pre-release numbers compare without overflowing.
        let big = parse_release_tag("1.0.0-99999999999999999999999").unwrap();
        let small = parse_release_tag("1.0.0-00000000000000000000002").unwrap();
        assert!(small < big);
    }
}
