//! Env files (`.env.sample`, an app's `.env`) as a shell's `source` would leave them, and the
//! compose files they name.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::recipe::interpolate::{excerpt, name_len, shell_substitute};

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

    /// A lookup for [`crate::recipe::interpolate::substitute`] and
    /// [`crate::recipe::compose::Compose::load`] backed by this file.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use crate::recipe::compose::tests::TempDir;
    use crate::recipe::interpolate::tests::garbage;

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
}
