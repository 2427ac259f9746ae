//! Log-line hygiene. User names and remote hosts are attacker-chosen: they are escaped
//! before they reach syslog, and they are never used as a format string.

/// Longest log line we emit; longer text is cut (user names can be 10 KB under sshd).
const MAX_LOG: usize = 512;

/// Escapes control bytes, backslashes and non-ASCII as `\xNN`, and bounds the length.
pub fn sanitize(raw: &[u8]) -> String {
    escape(raw, false)
}

/// `PAM_RHOST` as the log lines name it: `-` when there is none or it is empty (a local
/// login, as `totp_core::addr::parse_rhost` reads it), else escaped as [`sanitize`]
/// does, spaces too (`\x20`). The host ends the lines the fail2ban filter reads
/// ("… for USER from HOST"), and it must stay one field there: an application that
/// copies what a client sent into `PAM_RHOST` ("10.0.0.1 from 203.0.113.9") would
/// otherwise end the line with an address of the client's choosing, and get it banned.
pub fn host(raw: Option<&[u8]>) -> String {
    match raw {
        None | Some(b"") => "-".to_owned(),
        Some(raw) => escape(raw, true),
    }
}

fn escape(raw: &[u8], space: bool) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_LOG));
    for &b in raw {
        if out.len() >= MAX_LOG {
            out.push_str("...");
            break;
        }
        match b {
            b'\\' => out.push_str("\\\\"),
            b' ' if space => out.push_str("\\x20"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// `word` as one shell word, for a command a log line tells an administrator to run
/// ([`totp_core::shell::word`]). Control bytes and non-ASCII are left to
/// [`safety_net`], which shows them as `\xNN`, inert inside the quotes.
pub fn shell_word(word: &str) -> String {
    totp_core::shell::word(word).into_owned()
}

/// The last line of defence before `pam_syslog`: control bytes and non-ASCII still
/// present (from a message that forgot [`sanitize`]) become `\xNN`. Backslashes are left
/// alone, so text that [`sanitize`] already escaped is not escaped a second time.
pub fn safety_net(message: &[u8]) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_LOG * 2));
    for &b in message {
        if out.len() >= MAX_LOG * 2 {
            out.push_str("...");
            break;
        }
        match b {
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{host, safety_net, sanitize};

    #[test]
    fn escaped_text_is_not_escaped_twice() {
        let once = format!("user {} from x", sanitize(b"ev\nil"));
        assert_eq!(safety_net(once.as_bytes()), "user ev\\x0ail from x");
        assert_eq!(safety_net(b"raw\nline"), "raw\\x0aline");
        assert_eq!(safety_net(b"back\\slash"), "back\\slash");
    }

    #[test]
    fn control_bytes_and_format_specifiers_are_inert() {
        assert_eq!(sanitize(b"alice"), "alice");
        assert_eq!(sanitize(b"a\nb"), "a\\x0ab");
        assert_eq!(sanitize(b"\x1b[31m%n%s"), "\\x1b[31m%n%s");
        assert_eq!(sanitize("é".as_bytes()), "\\xc3\\xa9");
        assert!(sanitize(&[b'x'; 10_000]).len() <= 520);
    }

    #[test]
    fn a_host_is_one_field_and_a_missing_one_is_a_dash() {
        assert_eq!(host(Some(b"192.0.2.1")), "192.0.2.1");
        assert_eq!(host(Some(b"2001:db8::1")), "2001:db8::1");
        assert_eq!(
            host(Some(b"10.0.0.1 from 203.0.113.9")),
            "10.0.0.1\\x20from\\x20203.0.113.9"
        );
        assert_eq!(host(Some(b"a\tb\nc")), "a\\x09b\\x0ac");
        assert_eq!(host(Some(b"")), "-");
        assert_eq!(host(None), "-");
        // User names keep their spaces: they are not the last field.
        assert_eq!(sanitize(b"John Smith"), "John Smith");
    }
}
