//! Making hostile text inert: [`clean`] drops ANSI colour sequences and shows every other control
//! character (and the bidi overrides) as `\u{..}`; then each format escapes for where the string
//! lands: an XML attribute or text node, a Markdown table cell, an HTML `<summary>`, a fenced code
//! block.

/// The longest detail a table cell, a terminal line or a JUnit `message` shows.
pub(super) const LINE_MAX: usize = 160;

/// Hostile text made inert for any output: ANSI CSI sequences (colours, cursor moves) are
/// dropped, other control characters, bidi overrides and the characters XML 1.0 forbids are shown
/// as `\u{..}`, and the ends are trimmed. Line breaks stay (`\r\n` and lone `\r` become `\n`);
/// with `one_line` they become ` ⏎ ` and tabs become spaces.
pub fn clean(s: &str, one_line: bool) -> String {
    // Printable ASCII has nothing to drop, show or break: most details are just that.
    let t = s.trim();
    if t.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return t.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                // CSI: parameter and intermediate bytes, then one final byte.
                while chars.next_if(|p| ('\u{20}'..='\u{3f}').contains(p)).is_some() {}
                chars.next_if(|f| ('\u{40}'..='\u{7e}').contains(f));
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str(if one_line { " ⏎ " } else { "\n" }),
            '\t' => out.push(if one_line { ' ' } else { '\t' }),
            c if is_hostile(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    // Stripping a sequence can leave spaces at an end.
    let trimmed = out.trim();
    if trimmed.len() == out.len() { out } else { trimmed.to_string() }
}

pub(super) fn is_hostile(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}')
}

/// At most `max` characters of `s` kept, cut in the middle: the start says what was done and
/// the end is where tools put their verdict (docker's "only updates to Labels are allowed", the
/// remedy of a missing network), so both ends stay and the marker says how many characters of the
/// middle were left out.
pub(super) fn truncate(s: String, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s;
    }
    let tail = max * 5 / 8;
    let head = max - tail;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(total - tail).collect();
    format!("{} … ({} characters left out) … {}", start.trim_end(), total - max, end.trim_start())
}

/// One clean, bounded line (terminal lines, JUnit messages; escaped further where needed).
pub(super) fn line(s: &str, max: usize) -> String {
    truncate(clean(s, true), max)
}

pub(super) fn xml_escape(s: &str, attribute: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // Also keeps `]]>` from appearing.
            '>' => out.push_str("&gt;"),
            '"' if attribute => out.push_str("&quot;"),
            '\'' if attribute => out.push_str("&apos;"),
            // A parser normalises raw line breaks and tabs in attributes to spaces, and a raw
            // `\r` anywhere to `\n`; character references survive.
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn xml_attr(s: &str) -> String {
    xml_escape(&clean(s, true), true)
}

pub(super) fn xml_text(cleaned: &str) -> String {
    xml_escape(cleaned, false)
}

/// Hostile text as literal Markdown inline text (a table cell, the headline), one bounded line.
/// Every ASCII punctuation character is backslash-escaped (CommonMark allows that for all of
/// them), so nothing becomes emphasis, a link, an image, code or a table pipe — and a GFM table
/// splitting a row on `|` always sees `\|`, since `\` itself is escaped too. `&`, `<`, `>` become
/// entities so nothing becomes HTML, and `@` gets a zero-width space so nobody is mentioned.
pub(super) fn md_inline(s: &str) -> String {
    let mut out = String::new();
    for c in line(s, LINE_MAX).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '@' => out.push_str("@&#8203;"),
            c if c.is_ascii_punctuation() => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Hostile text inside an HTML element of the comment (`<summary>`): Markdown is not parsed
/// there, so only HTML escaping (and the mention guard) applies.
pub(super) fn html_inline(s: &str) -> String {
    let mut out = String::new();
    for c in line(s, LINE_MAX).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '@' => out.push_str("@&#8203;"),
            c => out.push(c),
        }
    }
    out
}

/// Cleaned multi-line text as a fenced code block: nothing inside is Markdown or HTML, and the
/// fence is longer than any run of backticks in the text, so the text cannot close it.
pub(super) fn fenced(cleaned: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in cleaned.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}text\n{cleaned}\n{fence}")
}
