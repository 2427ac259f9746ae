//! PAM user names and `secret=` expansion.
//!
//! `PAM_USER` is hostile input (sshd passes the client's name even for invalid
//! users), so it must pass [`UserName::parse`] (R8) before it gets anywhere near
//! a path. [`expand_secret_spec`] reproduces GA's `~`, `${HOME}` and `${USER}`
//! rules and refuses results that are relative or contain a `..` component.

use std::fmt;

/// Longest user name accepted (R8).
pub const MAX_USER_NAME_LEN: usize = 256;
/// Longest expanded secret path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;

/// A user name that passed R8: non-empty, at most 256 bytes, UTF-8, not `.` or
/// `..`, no `/`, no NUL or other control byte, not starting with `-`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    EmptyName,
    NameTooLong,
    DotName,
    SlashInName,
    ControlInName,
    LeadingDash,
    NotUtf8,
    /// The spec uses `~` or `${HOME}` but no home directory is available (GA:
    /// `user=` is set, or the passwd lookup failed).
    HomeUnavailable,
    /// The home directory is not an absolute path.
    RelativeHome,
    /// The expanded path is not absolute.
    RelativePath,
    /// The expanded path has a `..` component.
    DotDotInPath,
    PathTooLong,
    EmptySpec,
    NulInPath,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptyName => "user name is empty",
            Self::NameTooLong => "user name is longer than 256 bytes",
            Self::DotName => "user name is . or ..",
            Self::SlashInName => "user name contains /",
            Self::ControlInName => "user name contains a control byte",
            Self::LeadingDash => "user name starts with -",
            Self::NotUtf8 => "user name is not UTF-8",
            Self::HomeUnavailable => "secret path needs a home directory, none available",
            Self::RelativeHome => "home directory is not absolute",
            Self::RelativePath => "expanded secret path is not absolute",
            Self::DotDotInPath => "expanded secret path contains a .. component",
            Self::PathTooLong => "expanded secret path is too long",
            Self::EmptySpec => "secret path is empty",
            Self::NulInPath => "secret path contains NUL",
        })
    }
}

impl std::error::Error for UserError {}

impl UserName {
    pub fn parse(raw: &[u8]) -> Result<UserName, UserError> {
        if raw.is_empty() {
            return Err(UserError::EmptyName);
        }
        if raw.len() > MAX_USER_NAME_LEN {
            return Err(UserError::NameTooLong);
        }
        if raw == b"." || raw == b".." {
            return Err(UserError::DotName);
        }
        if raw.contains(&b'/') {
            return Err(UserError::SlashInName);
        }
        if raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
            return Err(UserError::ControlInName);
        }
        if raw[0] == b'-' {
            return Err(UserError::LeadingDash);
        }
        let s = std::str::from_utf8(raw).map_err(|_| UserError::NotUtf8)?;
        // C1 controls are control characters too once decoded.
        if s.chars().any(char::is_control) {
            return Err(UserError::ControlInName);
        }
        Ok(UserName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserName({:?})", self.0)
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// GA's default `secret=`.
pub const DEFAULT_SECRET_SPEC: &str = "~/.google_authenticator";

/// Expands `~` (only at the start or right after a literal `/`), `${HOME}` and
/// `${USER}`; nothing else, and substituted text is not re-scanned. `home` is
/// `None` when no home is known (GA with `user=`), which makes `~`/`${HOME}` an
/// error. The result must be absolute, without `..` components.
pub fn expand_secret_spec(
    spec: &str,
    user: &UserName,
    home: Option<&str>,
) -> Result<String, UserError> {
    if spec.is_empty() {
        return Err(UserError::EmptySpec);
    }
    let home_value = || -> Result<&str, UserError> {
        let h = home.ok_or(UserError::HomeUnavailable)?;
        if !h.starts_with('/') {
            return Err(UserError::RelativeHome);
        }
        Ok(h)
    };
    let mut out = String::with_capacity(spec.len() + 64);
    let mut rest = spec;
    let mut prev: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        if c == '~' && (prev.is_none() || prev == Some('/')) {
            out.push_str(home_value()?);
            rest = &rest[1..];
            prev = Some('~');
        } else if let Some(r) = rest.strip_prefix("${HOME}") {
            out.push_str(home_value()?);
            rest = r;
            prev = Some('}');
        } else if let Some(r) = rest.strip_prefix("${USER}") {
            out.push_str(user.as_str());
            rest = r;
            prev = Some('}');
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            prev = Some(c);
        }
        if out.len() > MAX_PATH_LEN {
            return Err(UserError::PathTooLong);
        }
    }
    if out.contains('\0') {
        return Err(UserError::NulInPath);
    }
    if !out.starts_with('/') {
        return Err(UserError::RelativePath);
    }
    if out.split('/').any(|c| c == "..") {
        return Err(UserError::DotDotInPath);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(s: &str) -> UserName {
        UserName::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn ordinary_names_are_accepted() {
        for n in [
            "alice",
            "bob.smith",
            "u_1",
            "Admin",
            "jürgen",
            "a@example.com",
            "x$",
        ] {
            assert_eq!(user(n).as_str(), n);
        }
        assert!(UserName::parse(&[b'a'; 256]).is_ok());
    }

    #[test]
    fn hostile_names_are_rejected() {
        let cases: &[(&[u8], UserError)] = &[
            (b"", UserError::EmptyName),
            (b".", UserError::DotName),
            (b"..", UserError::DotName),
            (b"../../etc/x", UserError::SlashInName),
            (b"a/b", UserError::SlashInName),
            (b"-rf", UserError::LeadingDash),
            (b"a\nb", UserError::ControlInName),
            (b"a\0b", UserError::ControlInName),
            (b"a\x1bb", UserError::ControlInName),
            (b"a\x7fb", UserError::ControlInName),
            (b"a\xc2\x85b", UserError::ControlInName),
            (b"\xff", UserError::NotUtf8),
            (&[b'a'; 257], UserError::NameTooLong),
        ];
        for (raw, want) in cases {
            assert_eq!(UserName::parse(raw).as_ref().err(), Some(want), "{raw:?}");
        }
        assert_eq!(
            UserName::parse(&[b'a'; 10_000]),
            Err(UserError::NameTooLong)
        );
    }

    #[test]
    fn default_spec_expands_to_home() {
        let p = expand_secret_spec(DEFAULT_SECRET_SPEC, &user("alice"), Some("/home/alice"));
        assert_eq!(p.unwrap(), "/home/alice/.google_authenticator");
    }

    #[test]
    fn user_and_home_tokens_expand_anywhere() {
        let u = user("alice");
        assert_eq!(
            expand_secret_spec(
                "/var/unencrypted-home/${USER}/.google_authenticator",
                &u,
                None
            )
            .unwrap(),
            "/var/unencrypted-home/alice/.google_authenticator"
        );
        assert_eq!(
            expand_secret_spec("${HOME}/x${USER}", &u, Some("/h/a")).unwrap(),
            "/h/a/xalice"
        );
    }

    #[test]
    fn tilde_only_at_start_or_after_slash() {
        let u = user("alice");
        assert_eq!(
            expand_secret_spec("/a/~/b~c", &u, Some("/h")).unwrap(),
            "/a//h/b~c"
        );
        assert_eq!(expand_secret_spec("~foo", &u, Some("/h")).unwrap(), "/hfoo");
        assert_eq!(expand_secret_spec("~~", &u, Some("/h")).unwrap(), "/h~");
        assert_eq!(
            expand_secret_spec("${HOME}~", &u, Some("/h/")).unwrap(),
            "/h/~"
        );
    }

    #[test]
    fn substituted_text_is_not_rescanned() {
        let u = user("${HOME}");
        assert_eq!(
            expand_secret_spec("/s/${USER}", &u, Some("/h")).unwrap(),
            "/s/${HOME}"
        );
    }

    #[test]
    fn home_is_required_for_tilde_and_home() {
        let u = user("alice");
        assert_eq!(
            expand_secret_spec("~/.x", &u, None),
            Err(UserError::HomeUnavailable)
        );
        assert_eq!(
            expand_secret_spec("${HOME}/.x", &u, None),
            Err(UserError::HomeUnavailable)
        );
        assert_eq!(
            expand_secret_spec("~/.x", &u, Some("home/alice")),
            Err(UserError::RelativeHome)
        );
    }

    #[test]
    fn relative_and_dotdot_results_are_rejected() {
        let u = user("alice");
        assert_eq!(
            expand_secret_spec("secrets/${USER}", &u, None),
            Err(UserError::RelativePath)
        );
        assert_eq!(
            expand_secret_spec("/var/lib/../etc/${USER}", &u, None),
            Err(UserError::DotDotInPath)
        );
        assert_eq!(
            expand_secret_spec("~/.x", &u, Some("/home/../root")),
            Err(UserError::DotDotInPath)
        );
        assert_eq!(expand_secret_spec("", &u, None), Err(UserError::EmptySpec));
        assert_eq!(
            expand_secret_spec(&format!("/{}", "a".repeat(5000)), &u, None),
            Err(UserError::PathTooLong)
        );
    }

    /// A blank is no control byte: names with one (directory services have them)
    /// pass; a control byte is named as such, also in a name that is not UTF-8.
    #[test]
    fn a_blank_passes_and_a_control_byte_is_named_before_bad_utf8() {
        assert_eq!(user("Jane Doe").as_str(), "Jane Doe");
        assert_eq!(user(" x").as_str(), " x");
        for raw in [&b"a\x1f\xff"[..], b"\xff\x7f", b"\x01\xc3"] {
            assert_eq!(
                UserName::parse(raw),
                Err(UserError::ControlInName),
                "{raw:?}"
            );
        }
    }

    /// A name shows as itself, and in `Debug` quoted with its type; every error has
    /// its own message.
    #[test]
    fn names_and_errors_render() {
        let u = user("alice");
        assert_eq!(u.to_string(), "alice");
        assert_eq!(format!("{u:?}"), "UserName(\"alice\")");
        let all = [
            UserError::EmptyName,
            UserError::NameTooLong,
            UserError::DotName,
            UserError::SlashInName,
            UserError::ControlInName,
            UserError::LeadingDash,
            UserError::NotUtf8,
            UserError::HomeUnavailable,
            UserError::RelativeHome,
            UserError::RelativePath,
            UserError::DotDotInPath,
            UserError::PathTooLong,
            UserError::EmptySpec,
            UserError::NulInPath,
        ];
        let texts: std::collections::HashSet<String> =
            all.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), all.len(), "{texts:?}");
        assert!(texts.iter().all(|t| !t.is_empty()));
        assert_eq!(
            UserError::DotDotInPath.to_string(),
            "expanded secret path contains a .. component"
        );
    }

    /// An expanded path of `MAX_PATH_LEN` bytes is taken, one byte more is not, also
    /// when a substitution carries it past the bound at once.
    #[test]
    fn expanded_paths_are_bounded_at_their_byte() {
        let u = user("alice");
        let spec = |len: usize| format!("/{}", "a".repeat(len - 1));
        assert_eq!(
            expand_secret_spec(&spec(MAX_PATH_LEN), &u, None).map(|p| p.len()),
            Ok(MAX_PATH_LEN)
        );
        assert_eq!(
            expand_secret_spec(&spec(MAX_PATH_LEN + 1), &u, None),
            Err(UserError::PathTooLong)
        );
        let home = format!("/{}", "h".repeat(99));
        let spec = format!("{}${{HOME}}", spec(MAX_PATH_LEN - 50));
        assert_eq!(
            expand_secret_spec(&spec, &u, Some(&home)),
            Err(UserError::PathTooLong)
        );
    }

    proptest! {
        #[test]
        fn user_name_parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(n) = UserName::parse(&raw) {
                prop_assert!(!n.as_str().contains('/'));
                prop_assert!(n.as_str() != "." && n.as_str() != "..");
            }
        }

        #[test]
        fn expansion_never_yields_dotdot(spec in "[~/a-z.${}HOMEUSR]{0,40}", name in "[a-z.]{1,8}") {
            if let Ok(u) = UserName::parse(name.as_bytes())
                && let Ok(p) = expand_secret_spec(&spec, &u, Some("/home/x"))
            {
                prop_assert!(p.starts_with('/'));
                prop_assert!(!p.split('/').any(|c| c == ".."));
            }
        }
    }
}
