//! User names and other text in the human-readable output, made safe to print.
//!
//! A name is chosen by whoever runs the directory service or writes a `--users-from`
//! list, and the module accepts spaces, quotes, colons and non-ASCII letters in it
//! (R8 refuses only control bytes). A `name: verdict: reasons` line or a terminal
//! must not be forged by one: a name that would read as more than one word of the
//! line is shown quoted, with Rust's escapes, and no control or invisible character
//! reaches standard output raw. JSON output needs none of this: serde escapes it.

use std::borrow::Cow;

/// `s` as is when it is one plain word; otherwise double-quoted, with `"`, `\`,
/// controls and invisible characters escaped.
pub fn name(s: &str) -> Cow<'_, str> {
    let debug = format!("{s:?}");
    // Debug only ever lengthens what it escapes: the same length plus the two quotes
    // means nothing needed escaping.
    let plain = !s.is_empty()
        && debug.len() == s.len() + 2
        && !s.chars().any(|c| c.is_whitespace() || c == ':');
    if plain {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(debug)
    }
}

/// `s` with every control and invisible (bidirectional, zero-width) character
/// escaped as `\u{…}`; everything else as is.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hidden) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| {
                if hidden(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// `s` as one word of a command to paste into a shell ([`totp_core::shell::word`]), or
/// `None` when it cannot be printed as one (a control or invisible character: the
/// caller names the account by its uid instead).
pub fn shell_word(s: &str) -> Option<Cow<'_, str>> {
    if s.is_empty() || s.chars().any(hidden) {
        return None;
    }
    Some(totp_core::shell::word(s))
}

/// Characters a terminal acts on or does not show: C0 and C1 controls, DEL, and the
/// format characters that reorder or hide text.
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_shown_as_they_are() {
        for n in [
            "alice",
            "jöhn.doe",
            "user@example.org",
            "o'neil",
            "DOMAIN\u{e9}x",
        ] {
            assert_eq!(name(n), n);
        }
    }

    #[test]
    fn names_that_would_split_a_line_are_quoted_and_escaped() {
        assert_eq!(name("a b"), "\"a b\"");
        assert_eq!(name("root: ok"), "\"root: ok\"");
        assert_eq!(name("ev\u{1b}[2Jil"), "\"ev\\u{1b}[2Jil\"");
        assert_eq!(name("x\ny"), "\"x\\ny\"");
        assert_eq!(name("a\"b"), "\"a\\\"b\"");
        assert_eq!(name("\u{202e}nimda"), "\"\\u{202e}nimda\"");
        assert_eq!(name(""), "\"\"");
    }

    #[test]
    fn text_escapes_only_what_a_terminal_would_act_on() {
        assert_eq!(text("a: b \"c\" é"), "a: b \"c\" é");
        assert_eq!(text("a\u{1b}]0;x\u{7}b\r"), "a\\u{1b}]0;x\\u{7}b\\u{d}");
        assert_eq!(text("\u{85}\u{2066}"), "\\u{85}\\u{2066}");
    }

    #[test]
    fn shell_words_are_quoted_for_a_shell() {
        assert_eq!(shell_word("alice").as_deref(), Some("alice"));
        assert_eq!(shell_word("a b").as_deref(), Some("'a b'"));
        assert_eq!(shell_word("$(id)").as_deref(), Some("'$(id)'"));
        assert_eq!(shell_word("o'neil").as_deref(), Some("'o'\\''neil'"));
        assert_eq!(shell_word("a\u{1b}b"), None);
    }
}
