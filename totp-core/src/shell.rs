//! A word of a command printed for an administrator to paste into a shell (the
//! `totp-state reset --user NAME` that a log line or `totp-state show` names). One rule
//! for the module's log lines and the CLI's output, so the two never quote one name
//! differently.

use std::borrow::Cow;

/// `word` as one POSIX shell word: as it is when every character is one no shell treats
/// specially, otherwise in single quotes (an embedded `'` as `'\''`). Control and
/// invisible characters are the caller's to refuse or escape first: inside single
/// quotes they would still reach the terminal raw.
pub fn word(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', "'\\''")))
    }
}

#[cfg(test)]
mod tests {
    use super::word;

    #[test]
    fn a_word_is_quoted_unless_plain() {
        assert_eq!(word("alice"), "alice");
        assert_eq!(word("alice@ad.example"), "alice@ad.example");
        assert_eq!(word("svc:auth/x"), "svc:auth/x");
        assert_eq!(word("john smith"), "'john smith'");
        assert_eq!(word("x$(id)"), "'x$(id)'");
        assert_eq!(word("a`id`;b|c"), "'a`id`;b|c'");
        assert_eq!(word("o'brien"), "'o'\\''brien'");
        assert_eq!(word("AD\\alice"), "'AD\\alice'");
        assert_eq!(word("jöhn"), "'jöhn'");
        assert_eq!(word(""), "''");
    }
}
