//! Variable substitution: docker's compose interpolation for compose files, and a shell's
//! expansion for env files.

use std::collections::BTreeSet;

use crate::error::{Error, Result};

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
pub(super) fn shell_substitute(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Substituted> {
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

pub(super) fn is_name_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// Length in bytes of the `[A-Za-z0-9_]*` run at the start of `s`.
pub(super) fn name_len(s: &str) -> usize {
    s.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count()
}

/// A short, escaped rendering of possibly huge or binary text for error messages.
pub(super) fn excerpt(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Kind;
    use std::collections::HashMap;

    pub(crate) fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
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
    pub(crate) fn garbage(seed: u32, len: usize) -> String {
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
}
