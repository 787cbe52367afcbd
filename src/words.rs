//! Values as a maintainer reads them in a detail: plain words, never program notation (`None`,
//! `Some("…")`, `["a", "b"]`).

/// `"value"`: a string in double quotes, so an empty value shows as `""`. Quotes and
/// backslashes inside are escaped (`\"`, `\\`); control characters are left for the reports,
/// which show every one of them inertly.
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `a, b, c`, or `none` for an empty list.
pub fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() { "none".to_string() } else { items.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ") }
}

/// `1 action`, `2 actions`, `0 actions`: a count with its noun in the right number.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_words() {
        assert_eq!(quoted("1.1.0+1"), "\"1.1.0+1\"");
        assert_eq!(quoted(""), "\"\"");
        assert_eq!(quoted("say \"hi\" \\ bye"), "\"say \\\"hi\\\" \\\\ bye\"");
        assert_eq!(list(&["a", "b"]), "a, b");
        assert_eq!(list::<&str>(&[]), "none");
        assert_eq!(count(1, "action", "actions"), "1 action");
        assert_eq!(count(0, "action", "actions"), "0 actions");
        assert_eq!(count(2, "action", "actions"), "2 actions");
    }
}
