//! The log lines tools read (issue "operations"): the shipped fail2ban filter run by the
//! real `fail2ban-regex` over lines the module wrote through libpam, the "code already
//! used" message, and no Rust debug text in any line. See docs/logging.md.

use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use system_tests::*;

/// `<PRI>Mmm dd hh:mm:ss tag[pid]: msg` from `/dev/log` as rsyslog writes it to
/// /var/log/auth.log: without the priority, with a host name after the time stamp.
fn auth_log_line(datagram: &str) -> String {
    let body = datagram
        .split_once('>')
        .map(|(_, rest)| rest)
        .unwrap_or(datagram);
    let (stamp, rest) = body.split_at(body.len().min(15));
    format!("{stamp} testhost{rest}")
}

/// One login; its captured log lines, converted to auth.log lines.
fn login(driver: Driver, want: &str, all: &mut Vec<String>) -> (Drive, Vec<String>) {
    let (d, lines) = capture_syslog(&driver);
    assert_eq!(d.result, want, "{d:?}\n{lines:#?}");
    let converted: Vec<String> = lines.iter().map(|l| auth_log_line(l)).collect();
    all.extend(converted.iter().cloned());
    (d, converted)
}

fn has(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

/// The module's arguments after the built module under its installed name in `stack`'s
/// directory, with `stack`'s state directory and `extra`: libpam names the module in
/// log lines after its file, so the lines are the ones a real host writes.
fn installed(stack: &Stack, extra: &str) -> String {
    let path = stack.path().join("pam_totp.so");
    if std::fs::symlink_metadata(&path).is_err() {
        std::os::unix::fs::symlink(&built().module, &path).expect("symlink");
    }
    format!(
        "{} state_dir={}{extra}",
        path.display(),
        stack.state_dir().display()
    )
}

#[test]
fn fail2ban_filter_matches_failed_codes_with_the_host_and_nothing_else() {
    let t = "fail2ban_filter_matches_failed_codes_with_the_host_and_nothing_else";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("f2b");
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!("auth required {}\n", installed(&stack, " nullok")),
    );
    let mut all = Vec::new();

    // Failures that count: a wrong code, an unknown user, a hostile user name that
    // carries a fake "from HOST", and a throttled origin.
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, T0))
            .rhost("192.0.2.11")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    assert!(has(&l, " pam_totp(svc:auth): "), "{l:#?}");
    let (_, l) = login(
        Driver::new(&stack, "svc", "nosuchuser-f2b")
            .answer("123456")
            .rhost("192.0.2.12")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "code not verified (unknown user)"), "{l:#?}");
    assert!(
        !has(&l, "invalid verification code"),
        "no code was compared: {l:#?}"
    );
    let (_, l) = login(
        Driver::new(&stack, "svc", "x from 192.0.2.99")
            .answer("123456")
            .rhost("192.0.2.15")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(
            &l,
            "code not verified (unknown user) for x from 192.0.2.99 from"
        ),
        "{l:#?}"
    );

    // The other two "code not verified" lines docs/logging.md marks for the filter: a
    // name the module refuses before any lookup, and an account without a secret file
    // on a stack without nullok. Both from an IPv6 client, which <HOST> must take whole.
    stack.service(
        "strict",
        &format!("auth required {}\n", installed(&stack, "")),
    );
    let (_, l) = login(
        Driver::new(&stack, "svc", "../f2b")
            .answer("123456")
            .rhost("2001:db8::21")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "code not verified (invalid user name)"), "{l:#?}");
    let unenrolled = TestUser::create("f2bu");
    let (_, l) = login(
        Driver::new(&stack, "strict", &unenrolled.name)
            .answer("123456")
            .rhost("192.0.2.22")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(&l, "code not verified (no secret configured)"),
        "{l:#?}"
    );
    // A fault of this host is never counted: a secret file the module refuses (group
    // writable) is the admin's to fix, not the client's doing.
    let (bad, bad_secret) = TestUser::enrolled("f2bb");
    bad.write_secret(&totp_file(&bad_secret), 0o660);
    let (_, l) = login(
        Driver::login(&stack, &bad, &code_at(&bad_secret, T0))
            .rhost("192.0.2.23")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(&l, "code not verified (secret file unusable)"),
        "{l:#?}"
    );

    // Not counted either: use_first_pass with nothing usable in PAM_AUTHTOK (no code
    // was given, none compared).
    stack.service(
        "firstpass",
        &format!("auth required {}\n", installed(&stack, " use_first_pass")),
    );
    let (_, l) = login(
        Driver::new(&stack, "firstpass", &u.name)
            .rhost("192.0.2.24")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "no usable code in PAM_AUTHTOK for"), "{l:#?}");

    // Not counted: a success, the same right code again (replay), a console login, a
    // nullok skip.
    let good_at = T0 + 300;
    let good = code_at(&secret, good_at);
    let (_, l) = login(
        Driver::login(&stack, &u, &good)
            .rhost("192.0.2.13")
            .at(good_at),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(has(&l, "accepted time-based code"), "{l:#?}");
    let (d, l) = login(
        Driver::login(&stack, &u, &good)
            .rhost("192.0.2.14")
            .at(good_at + 1),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "code already used for"), "{l:#?}");
    assert!(
        d.messages
            .iter()
            .any(|(style, text)| *style == 3 && text.contains("already used")),
        "the user is told the code was used: {d:?}"
    );
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, good_at + 60)).at(good_at + 60),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    let plain = TestUser::create("f2bn");
    let (_, l) = login(
        Driver::new(&stack, "svc", &plain.name)
            .rhost("192.0.2.16")
            .at(T0),
        // The module's PAM_IGNORE leaves this one-line stack without a success.
        "PAM_PERM_DENIED",
        &mut all,
    );
    assert!(has(&l, "not asking"), "{l:#?}");

    // Hammer one origin until the backoff refuses attempts unevaluated.
    let mut throttled = false;
    for i in 0..20 {
        let at = T0 + 900 + i;
        let (_, l) = login(
            Driver::login(&stack, &u, &wrong_totp(&secret, at))
                .rhost("192.0.2.17")
                .at(at),
            "PAM_AUTH_ERR",
            &mut all,
        );
        if has(&l, "attempt refused unevaluated") {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "backoff never started: {all:#?}");

    let hits = fail2ban_hits(&all);
    let hosts: BTreeSet<&str> = hits.iter().map(String::as_str).collect();
    // The hammered origin counts for its wrong codes; its throttled attempts do not (a
    // user whose budget an attacker used up would otherwise be banned).
    let want: BTreeSet<&str> = [
        "192.0.2.11",
        "192.0.2.12",
        "192.0.2.15",
        "192.0.2.17",
        "192.0.2.22",
        "2001:db8::21",
    ]
    .into_iter()
    .collect();
    assert_eq!(hosts, want, "matched hosts; log:\n{}", all.join("\n"));
    let wrong_from_17 = all
        .iter()
        .filter(|l| l.contains("invalid verification code") && l.ends_with("from 192.0.2.17"))
        .count();
    assert!(wrong_from_17 >= 2, "{all:#?}");
    assert_eq!(
        hits.iter().filter(|h| *h == "192.0.2.17").count(),
        wrong_from_17,
        "only the compared codes of 192.0.2.17 count, not its throttled attempts"
    );
}

/// The host ends the lines the filter reads, and stays one field: a `PAM_RHOST` with a
/// space in it (an application that copies what a client sent, "10.0.0.1 from
/// 203.0.113.9") made the line end in an address of the client's choosing, which the
/// real `fail2ban-regex` then banned; a user name cannot move the host either, and an
/// empty `PAM_RHOST` is the local login's `-`, as docs/logging.md says.
#[test]
fn a_host_with_spaces_cannot_make_fail2ban_ban_an_address_of_its_choosing() {
    let t = "a_host_with_spaces_cannot_make_fail2ban_ban_an_address_of_its_choosing";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("f2bs");
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!("auth required {}\n", installed(&stack, " debug")),
    );
    let mut all = Vec::new();
    let (_, l) = login(
        Driver::new(&stack, "svc", "nosuch-f2bs")
            .answer("123456")
            .rhost("192.0.2.50 from 203.0.113.9")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(
            &l,
            "code not verified (unknown user) for nosuch-f2bs from 192.0.2.50\\x20from\\x20203.0.113.9"
        ),
        "{l:#?}"
    );
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, T0))
            .rhost("192.0.2.51 from 203.0.113.10")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    let (_, l) = login(
        Driver::new(&stack, "svc", "x from 203.0.113.11")
            .answer("123456")
            .rhost("")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        l.iter().any(|l| l
            .ends_with("code not verified (unknown user) for x from 203.0.113.11 from -")),
        "{l:#?}"
    );
    // Controls: the same failures from a plain address are counted, for that address.
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, T0 + 60))
            .rhost("192.0.2.52")
            .at(T0 + 60),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    login(
        Driver::new(&stack, "svc", "x from 203.0.113.12")
            .answer("123456")
            .rhost("192.0.2.53")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    let hits = fail2ban_hits(&all);
    let hosts: BTreeSet<&str> = hits.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = ["192.0.2.52", "192.0.2.53"].into_iter().collect();
    assert_eq!(hosts, want, "matched hosts; log:\n{}", all.join("\n"));
}

/// sshd names a link-local client as `getnameinfo` writes it, with its zone
/// (`fe80::7%eth0`), and the filter wanted the address to end the line: the real
/// `fail2ban-regex` counted none of such a client's failed codes, however many. Now the
/// address before the zone is counted. Controls: the same failures from an address
/// without a zone are counted; a host with spaces after its zone is still one escaped
/// field, not counted, and a zone never lets a user name move the host.
#[test]
fn a_link_local_client_is_counted_without_its_zone() {
    let t = "a_link_local_client_is_counted_without_its_zone";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("f2bz");
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, T0))
            .rhost("fe80::7%eth0")
            .at(T0),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        l.iter()
            .any(|l| l.contains("invalid verification code for ")
                && l.ends_with(" from fe80::7%eth0")),
        "{l:#?}"
    );
    for (name, rhost) in [
        ("nosuch-f2bz", "fe80::8%lo"),
        ("x from 203.0.113.21%eth0", "fe80::9%eth0"),
        // Controls.
        ("nosuch-f2bz", "fe80::a"),
        ("nosuch-f2bz", "fe80::b%eth0 from 203.0.113.22"),
        ("x from 203.0.113.23%eth0", ""),
    ] {
        login(
            Driver::new(&stack, "svc", name)
                .answer("123456")
                .rhost(rhost)
                .at(T0),
            "PAM_AUTH_ERR",
            &mut all,
        );
    }
    let mut hits = fail2ban_hits(&all);
    hits.sort();
    assert_eq!(
        hits,
        ["fe80::7", "fe80::8", "fe80::9", "fe80::a"],
        "log:\n{}",
        all.join("\n")
    );
}

/// Only an fe80::/10 address is written with a zone. A host name is its owner's choice
/// (sshd with UseDNS yes, or an application's PAM_RHOST), and one shaped as another
/// address with a zone (`192.0.2.71%x.example`) made the real `fail2ban-regex` ban that
/// address since zones were counted. Controls: a link-local client with its zone, and
/// the same addresses without one, are counted.
#[test]
fn a_host_name_shaped_as_an_address_with_a_zone_bans_nobody() {
    let t = "a_host_name_shaped_as_an_address_with_a_zone_bans_nobody";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    for rhost in [
        "192.0.2.71%x.example",
        "2001:db8::72%x.example",
        "fec0::73%eth0",
        // Controls.
        "fe80::74%eth0",
        "192.0.2.75",
        "2001:db8::76",
    ] {
        let (_, l) = login(
            Driver::new(&stack, "svc", "nosuch-f2bh")
                .answer("123456")
                .rhost(rhost)
                .at(T0),
            "PAM_AUTH_ERR",
            &mut all,
        );
        assert!(
            l.iter()
                .any(|l| l.contains("code not verified (unknown user) for ")
                    && l.ends_with(&format!(" from {rhost}"))),
            "{l:#?}"
        );
    }
    let mut hits = fail2ban_hits(&all);
    hits.sort();
    assert_eq!(
        hits,
        ["192.0.2.75", "2001:db8::76", "fe80::74"],
        "log:\n{}",
        all.join("\n")
    );
}

/// The hosts the shipped filter matches in `lines` (auth.log lines), one per match, as
/// the real `fail2ban-regex` reports them.
fn fail2ban_hits(lines: &[String]) -> Vec<String> {
    // The filter as the package installs it, next to fail2ban's own common.conf.
    let conf = tempfile::tempdir().expect("tempdir");
    let filter_dir = conf.path().join("filter.d");
    fs::create_dir(&filter_dir).expect("filter.d");
    fs::copy(
        "/etc/fail2ban/filter.d/common.conf",
        filter_dir.join("common.conf"),
    )
    .expect("fail2ban's common.conf");
    let filter = filter_dir.join("pam-totp.conf");
    fs::copy(
        workspace().join("packaging/fail2ban/filter.d/pam-totp.conf"),
        &filter,
    )
    .expect("copy filter");
    let log = conf.path().join("auth.log");
    fs::write(&log, lines.join("\n") + "\n").expect("write log");
    let out = Command::new("fail2ban-regex")
        .args(["-r", "-o", "ip"])
        .arg(&log)
        .arg(&filter)
        .output()
        .expect("run fail2ban-regex");
    assert!(
        out.status.success(),
        "fail2ban-regex: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Shapes that only Rust's `Debug` output produces.
fn debug_shape(line: &str) -> Option<&'static str> {
    [
        "{ ", " }", "Some(", "None", "Err(", "Ok(", "Os {", "errno:", "kind:",
    ]
    .into_iter()
    .find(|s| line.contains(s))
}

#[test]
fn no_log_line_carries_rust_debug_text() {
    let t = "no_log_line_carries_rust_debug_text";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dbg");
    let mut all = Vec::new();
    let mut collect = |stack: &Stack, user: &str, answer: &str| {
        let drv = Driver::new(stack, "svc", user)
            .answer(answer)
            .rhost("192.0.2.20")
            .at(T0);
        let (_, lines) = capture_syslog(&drv);
        assert!(!lines.is_empty(), "nothing logged");
        all.extend(lines);
    };
    let good = code_at(&secret, T0);
    let stack = Stack::with_module("svc", "debug");
    collect(&stack, &u.name, &good);
    collect(&stack, &u.name, &good);
    collect(&stack, &u.name, "000000x");
    collect(&stack, "nosuch-dbg", "123456");
    // A directory, a FIFO, a group-writable file and a file of another owner in place
    // of the secret: the refusals name the problem in words.
    let path = u.secret_path();
    fs::remove_file(&path).expect("remove secret");
    fs::create_dir(&path).expect("mkdir");
    collect(&stack, &u.name, &good);
    fs::remove_dir(&path).expect("rmdir");
    run("mkfifo", [path.as_os_str()]);
    collect(&stack, &u.name, &good);
    fs::remove_file(&path).expect("rm fifo");
    u.write_secret(&totp_file(&secret), 0o660);
    collect(&stack, &u.name, &good);
    write_owned(&path, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    collect(&stack, &u.name, &good);
    // Bad options and a state directory that is a file.
    collect(
        &Stack::with_module("svc", "window_size=abc"),
        &u.name,
        &good,
    );
    let bad_state = Stack::new();
    fs::write(bad_state.state_dir(), b"not a directory").expect("write");
    bad_state.service("svc", "auth required @MODULE@\n");
    collect(&bad_state, &u.name, &good);
    let messages: Vec<&str> = all.iter().map(|l| syslog_message(l)).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("not a regular file: it is a directory")),
        "{messages:#?}"
    );
    for m in &messages {
        if let Some(shape) = debug_shape(m) {
            panic!("debug text {shape:?} in log line: {m}\nall: {messages:#?}");
        }
    }
}

/// The line ending an attempt refused unevaluated for a `RATE_LIMIT` line or the
/// per-user ceiling said "(backoff)", as if this origin had failed too often, and sent
/// the admin to the wrong option. Each rule is named, for an account and for a name
/// without one (throttled in a stand-in record), and none of these lines is counted by
/// the shipped fail2ban filter's words.
#[test]
fn a_throttled_attempt_names_the_rule_that_refused_it() {
    let t = "a_throttled_attempt_names_the_rule_that_refused_it";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let refused = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| syslog_message(l).to_owned())
            .filter(|m| m.contains("attempt refused unevaluated"))
            .collect()
    };
    let one = |stack: &Stack, user: &str, answer: &str, rhost: &str, at: u64| {
        let (d, lines) = capture_syslog(
            &Driver::new(stack, "svc", user)
                .answer(answer)
                .rhost(rhost)
                .at(at),
        );
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}\n{lines:#?}");
        refused(&lines)
    };

    // The per-user ceiling: two strangers spend their half (one failure each, far from
    // any origin's backoff); a third address, with the right code, waits.
    let (u, secret) = TestUser::enrolled("thc");
    let stack = Stack::probe("svc", "ceiling_burst=2 ceiling_interval=600");
    for i in 1..=2 {
        let l = one(
            &stack,
            &u.name,
            &wrong_totp(&secret, T0),
            &format!("203.0.113.{i}"),
            T0 + i,
        );
        assert!(l.is_empty(), "guess {i} is evaluated: {l:#?}");
    }
    let l = one(
        &stack,
        &u.name,
        &code_at(&secret, T0 + 30),
        "203.0.113.3",
        T0 + 30,
    );
    assert_eq!(
        l,
        [format!(
            "too many failures; attempt refused unevaluated (per-user ceiling) for {} from 203.0.113.3",
            u.name
        )],
        "the ceiling refused it"
    );
    // The same for a name without an account: its stand-in record has a ceiling too.
    for i in 1..=2 {
        let l = one(
            &stack,
            "nosuch-thc",
            "123456",
            &format!("198.51.100.{i}"),
            T0 + i,
        );
        assert!(l.is_empty(), "guess {i} is charged, not refused: {l:#?}");
    }
    let l = one(&stack, "nosuch-thc", "123456", "198.51.100.3", T0 + 30);
    assert_eq!(
        l,
        [
            "too many failures; attempt refused unevaluated (per-user ceiling) for nosuch-thc from 198.51.100.3"
        ],
    );

    // One origin failing: its backoff (control: the words this line had all along).
    let (b, b_secret) = TestUser::enrolled("thb");
    let stack = Stack::probe("svc", "throttle_after=2");
    for i in 0..2 {
        let l = one(
            &stack,
            &b.name,
            &wrong_totp(&b_secret, T0),
            "192.0.2.40",
            T0 + i,
        );
        assert!(l.is_empty(), "failure {i} is evaluated: {l:#?}");
    }
    let l = one(
        &stack,
        &b.name,
        &code_at(&b_secret, T0 + 5),
        "192.0.2.40",
        T0 + 5,
    );
    assert_eq!(
        l,
        [format!(
            "too many failures; attempt refused unevaluated (backoff) for {} from 192.0.2.40",
            b.name
        )]
    );

    // google-authenticator's RATE_LIMIT line: two attempts in 30 s, from two addresses
    // (no backoff, the ceiling far off); the third is refused by the line.
    let r = TestUser::create("thr");
    let r_secret = random_secret_b32();
    r.write_secret(
        &format!("{r_secret}\n\" RATE_LIMIT 2 30\n\" TOTP_AUTH\n"),
        0o600,
    );
    let stack = Stack::probe("svc", "");
    for i in 1..=2 {
        let l = one(
            &stack,
            &r.name,
            &wrong_totp(&r_secret, T0),
            &format!("192.0.2.5{i}"),
            T0 + i,
        );
        assert!(l.is_empty(), "attempt {i} is evaluated: {l:#?}");
    }
    let l = one(
        &stack,
        &r.name,
        &code_at(&r_secret, T0 + 3),
        "192.0.2.53",
        T0 + 3,
    );
    assert_eq!(
        l,
        [format!(
            "too many login attempts; attempt refused unevaluated (RATE_LIMIT) for {} from 192.0.2.53",
            r.name
        )]
    );
}

/// An empty answer is no attempt for an account (logged as no code received, never
/// charged); for a name without an account it was charged and logged as `code not
/// verified (unknown user)`, a line the fail2ban filter counts, so the second empty
/// answer of that name was throttled and the client told so: whether a name has an
/// account showed in the reply (R9). Both now end alike.
#[test]
fn an_empty_answer_is_no_attempt_whether_or_not_the_name_has_an_account() {
    let t = "an_empty_answer_is_no_attempt_whether_or_not_the_name_has_an_account";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, _) = TestUser::enrolled("ea");
    let stack = Stack::probe("svc", "throttle_after=1");
    for user in [u.name.as_str(), "nosuch-ea"] {
        for i in 0..2 {
            let (d, lines) = capture_syslog(
                &Driver::new(&stack, "svc", user)
                    .answer("")
                    .rhost("192.0.2.60")
                    .at(T0 + i),
            );
            assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{user} {i}: {d:?}");
            let messages: Vec<&str> = lines.iter().map(|l| syslog_message(l)).collect();
            assert!(
                messages.contains(&"did not receive a verification code from the user"),
                "{user} {i}: {messages:#?}"
            );
            for counted in [
                "code not verified",
                "invalid verification code",
                "refused unevaluated",
            ] {
                assert!(
                    !messages.iter().any(|m| m.contains(counted)),
                    "{user} {i}: {counted:?} logged for an empty answer: {messages:#?}"
                );
            }
            assert!(
                !d.messages
                    .iter()
                    .any(|(s, m)| *s == 3 && m.contains("too many")),
                "{user} {i}: told to wait: {d:?}"
            );
        }
    }
    // The same with use_first_pass and nothing usable in PAM_AUTHTOK: no code given.
    let first = Stack::probe("svc", "use_first_pass throttle_after=1");
    for user in [u.name.as_str(), "nosuch-ea"] {
        let (d, lines) =
            capture_syslog(&Driver::new(&first, "svc", user).rhost("192.0.2.61").at(T0));
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{user}: {d:?}");
        let last = lines.last().map(|l| syslog_message(l));
        assert_eq!(
            last,
            Some(format!("no usable code in PAM_AUTHTOK for {user} from 192.0.2.61").as_str()),
            "{user}: {lines:#?}"
        );
    }
    // Control: a code-shaped answer of the same name is an attempt, charged and logged.
    let (_, lines) = capture_syslog(
        &Driver::new(&stack, "svc", "nosuch-ea")
            .answer("123456")
            .rhost("192.0.2.60")
            .at(T0 + 5),
    );
    assert!(
        lines.iter().any(|l| syslog_message(l)
            == "code not verified (unknown user) for nosuch-ea from 192.0.2.60"),
        "{lines:#?}"
    );
}

/// Faults that stop an attempt after the answer came in (a state record that cannot be
/// used or written, a clock behind the last accepted code) logged an error line
/// without the host, and no line ending the attempt: the "for USER from HOST" line
/// docs/logging.md promises for every answered attempt was missing, so a SIEM saw the
/// fault but not whose login from where it denied. Each now ends with a line the
/// fail2ban filter does not count (a fault of this host).
#[test]
fn an_attempt_stopped_by_a_fault_of_this_host_ends_with_a_line_naming_user_and_host() {
    let t = "an_attempt_stopped_by_a_fault_of_this_host_ends_with_a_line_naming_user_and_host";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "chattr") {
        return;
    }
    let (u, secret) = TestUser::enrolled("hf");
    let stack = Stack::probe("svc", "");
    let attempt = |answer: &str, rhost: &str, at: u64| {
        let (d, lines) = capture_syslog(&Driver::login(&stack, &u, answer).rhost(rhost).at(at));
        assert_ne!(d.module_code(), "PAM_SUCCESS", "{d:?}");
        let messages: Vec<String> = lines.iter().map(|l| syslog_message(l).to_owned()).collect();
        messages
    };
    let ends = |messages: &[String], error: &str, last: &str| {
        assert!(
            messages.iter().any(|m| m.contains(error)),
            "no error line {error:?}: {messages:#?}"
        );
        assert_eq!(
            messages.last().map(String::as_str),
            Some(last),
            "{messages:#?}"
        );
    };

    // A code accepted on a clock 30 days ahead; back on the right clock, the mark is
    // ahead of it by far more than the allowed lag: a clock fault.
    let ahead = T0 + 30 * 86_400;
    let d = login_at(&stack, &u, &code_at(&secret, ahead), "192.0.2.70", ahead);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let m = attempt(&code_at(&secret, T0), "192.0.2.71", T0);
    ends(
        &m,
        "clock fault for",
        &format!(
            "code not verified (clock fault) for {} from 192.0.2.71",
            u.name
        ),
    );

    // A record that is not one: the store is unusable for this user.
    let rec = stack.state_file(u.uid);
    write_owned(&rec, &[0x5a; 300], 0, 0, 0o600);
    let m = attempt(&code_at(&secret, ahead + 60), "192.0.2.72", ahead + 60);
    ends(
        &m,
        "is unusable",
        &format!(
            "code not verified (state store unusable) for {} from 192.0.2.72",
            u.name
        ),
    );

    // A record the store cannot write (immutable): the attempt's state is not saved.
    fs::remove_file(&rec).expect("remove record");
    let d = login_at(
        &stack,
        &u,
        &code_at(&secret, ahead + 120),
        "192.0.2.70",
        ahead + 120,
    );
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let chattr = run("chattr", [std::ffi::OsStr::new("+i"), rec.as_os_str()]);
    assert!(chattr.status.success(), "chattr +i: {chattr:?}");
    let m = attempt(&wrong_totp(&secret, ahead + 180), "192.0.2.73", ahead + 180);
    let undo = run("chattr", [std::ffi::OsStr::new("-i"), rec.as_os_str()]);
    assert!(undo.status.success(), "chattr -i: {undo:?}");
    ends(
        &m,
        "could not be saved",
        &format!("state could not be saved for {} from 192.0.2.73", u.name),
    );
}

/// A damaged store key (`store.key`) denies every login. An account's attempt logged
/// the store's error line but no line ending it (docs/logging.md promises one naming
/// the user and the host), and a name without an account, whose attempt needs no key,
/// was not told that the store failed, so the reply showed whether the name has an
/// account (R9). Both are now told alike and end with one line each, the same: a fault
/// of this host, which the fail2ban filter does not count (a name without an account
/// counted where an account is not would get the addresses that guess names banned,
/// and those that hit accounts spared: R9 again). Control: the same login before the
/// key is damaged.
#[test]
fn a_damaged_store_key_ends_every_attempt_with_one_line_and_tells_every_name_alike() {
    let t = "a_damaged_store_key_ends_every_attempt_with_one_line_and_tells_every_name_alike";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dk");
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    login(
        Driver::login(&stack, &u, &code_at(&secret, T0))
            .rhost("192.0.2.90")
            .at(T0),
        "PAM_SUCCESS",
        &mut all,
    );
    write_owned(&stack.state_dir().join("store.key"), b"short", 0, 0, 0o600);

    let code = code_at(&secret, T0 + 30);
    let (d, account) = login(
        Driver::login(&stack, &u, &code)
            .rhost("192.0.2.91")
            .at(T0 + 30),
        "PAM_AUTH_ERR",
        &mut all,
    );
    let ghost = "nosuch-dk";
    let (g, nameless) = login(
        Driver::new(&stack, "svc", ghost)
            .answer(&code)
            .rhost("192.0.2.92")
            .at(T0 + 30),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        d.messages.iter().any(|(style, m)| *style == 3
            && m.starts_with("the code could not be checked: the login state store failed")),
        "{d:?}"
    );
    assert_eq!(g.messages, d.messages, "told alike: {g:?} {d:?}");
    for (lines, who, host, closing) in [
        (
            &account,
            u.name.as_str(),
            "192.0.2.91",
            "state store unusable",
        ),
        (&nameless, ghost, "192.0.2.92", "state store unusable"),
    ] {
        let messages: Vec<&str> = lines.iter().map(|l| syslog_message(l)).collect();
        let count = |needle: &str| messages.iter().filter(|m| m.contains(needle)).count();
        assert_eq!(
            count(&format!("unusable for every user, not only {who}: ")),
            1,
            "{who}: the store's line: {messages:#?}"
        );
        assert_eq!(
            count(&format!(" for {who} from {host}")),
            1,
            "{who}: one line ends the attempt: {messages:#?}"
        );
        assert_eq!(
            messages.last().copied(),
            Some(format!("code not verified ({closing}) for {who} from {host}").as_str()),
            "{who}: {messages:#?}"
        );
    }
    // Neither is counted: no code is compared for anybody while the store is damaged,
    // and a ban for the name without an account only would tell it from an account.
    assert!(fail2ban_hits(&all).is_empty(), "{all:#?}");
}

/// With `try_first_pass`, a code in `PAM_AUTHTOK` (what was typed at the password
/// prompt) is checked and charged; when no second answer followed (an empty one, or a
/// client that hung up at the code prompt), the attempt ended without its `invalid
/// verification code` line, so a guess sent as the password never reached fail2ban.
#[test]
fn a_wrong_code_in_pam_authtok_is_counted_when_no_second_answer_follows() {
    let t = "a_wrong_code_in_pam_authtok_is_counted_when_no_second_answer_follows";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tf");
    let stack = try_first_pass_stack();
    let guess = wrong_totp(&secret, T0);
    let mut all = Vec::new();
    // An empty code, a client that hangs up at the code prompt, and (control) a
    // password without a code: nothing was compared, nothing is counted.
    for (rhost, answers, want, ends) in [
        (
            "192.0.2.80",
            vec![guess.as_str(), ""],
            "PAM_AUTH_ERR",
            "did not receive a verification code from the user",
        ),
        (
            "192.0.2.81",
            vec![guess.as_str()],
            "PAM_CONV_ERR",
            "conversation failed while asking for the code",
        ),
        (
            "192.0.2.82",
            vec!["hunter2", ""],
            "PAM_AUTH_ERR",
            "did not receive",
        ),
    ] {
        let driver = answers.iter().fold(
            Driver::new(&stack, "svc", &u.name).rhost(rhost).at(T0),
            |d, a| d.answer(a),
        );
        let (d, lines) = login(driver, want, &mut all);
        assert_eq!(d.prompts, 2, "{rhost}: password and code prompts: {d:?}");
        assert!(has(&lines, ends), "{rhost}: {lines:#?}");
        let compared = rhost != "192.0.2.82";
        assert_eq!(
            has(
                &lines,
                &format!("invalid verification code for {} from {rhost}", u.name)
            ),
            compared,
            "{rhost}: {lines:#?}"
        );
    }
    assert_eq!(
        stored_failures(&stack, u.uid),
        2,
        "the two guesses were charged"
    );
    let hits = fail2ban_hits(&all);
    assert_eq!(hits, ["192.0.2.80", "192.0.2.81"], "{all:#?}");
}

/// `svc`: pam_unix, which reads the password and stores it as `PAM_AUTHTOK` (its own
/// verdict is moot), then the module under its installed name with `try_first_pass`.
fn try_first_pass_stack() -> Stack {
    let stack = Stack::new();
    stack.service(
        "svc",
        &format!(
            "auth optional pam_unix.so nodelay\n\
             auth requisite {}\n",
            installed(&stack, " try_first_pass")
        ),
    );
    stack
}

/// A used code sent as the password under `try_first_pass` was refused as a replay
/// and charged without any line: the man-in-the-middle warning a replay at the prompt
/// gets was missing.
#[test]
fn a_used_code_in_pam_authtok_is_logged_as_reused() {
    let t = "a_used_code_in_pam_authtok_is_logged_as_reused";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("tr");
    let stack = try_first_pass_stack();
    let used = code_at(&secret, T0);
    let mut all = Vec::new();
    let (_, l) = login(
        Driver::login(&stack, &u, "hunter2")
            .answer(&used)
            .rhost("192.0.2.90")
            .at(T0),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(!has(&l, "reused"), "control: a fresh code: {l:#?}");
    // One step later the used code is still inside the window: a replay, then the
    // user's fresh code at the prompt.
    let next = T0 + 30;
    let (_, l) = login(
        Driver::login(&stack, &u, &used)
            .answer(&code_at(&secret, next))
            .rhost("192.0.2.91")
            .at(next),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(
        has(
            &l,
            &format!("{} from 192.0.2.91 reused an already accepted code", u.name)
        ),
        "{l:#?}"
    );
    assert!(has(&l, "accepted time-based code for"), "{l:#?}");
}

/// A right code for a step older than the last accepted one (typed late, a phone clock
/// behind) was logged and told as "already used", with the man-in-the-middle warning:
/// a false alarm, since the store keeps only the last accepted step. Now only that step
/// is a replay; the older one is an expired code, still denied, and neither is counted
/// by the fail2ban filter (a wrong code is, the control that the filter runs).
#[test]
fn an_older_code_is_logged_as_expired_and_a_replay_as_reused() {
    let t = "an_older_code_is_logged_as_expired_and_a_replay_as_reused";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ooo");
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    let now = T0 + 600;
    let (_, l) = login(
        Driver::login(&stack, &u, &code_at(&secret, now))
            .rhost("192.0.2.31")
            .at(now),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(has(&l, "accepted time-based code"), "{l:#?}");
    let told = |d: &Drive, what: &str| {
        d.messages
            .iter()
            .any(|(style, text)| *style == 3 && text.contains(what))
    };

    // The step accepted, again: a replay, with the warning.
    let (d, l) = login(
        Driver::login(&stack, &u, &code_at(&secret, now))
            .rhost("192.0.2.32")
            .at(now + 1),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(
            &l,
            &format!("code already used for {} from 192.0.2.32", u.name)
        ),
        "{l:#?}"
    );
    assert!(has(&l, "man-in-the-middle"), "{l:#?}");
    assert!(told(&d, "that code was already used"), "{d:?}");

    // The step before it, within the window, never accepted: expired, no alarm.
    let (d, l) = login(
        Driver::login(&stack, &u, &code_at(&secret, now - 30))
            .rhost("192.0.2.33")
            .at(now + 2),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(
            &l,
            &format!(
                "expired code (older than the last accepted one) for {} from 192.0.2.33",
                u.name
            )
        ),
        "{l:#?}"
    );
    assert!(!has(&l, "man-in-the-middle"), "{l:#?}");
    assert!(!has(&l, "already used"), "{l:#?}");
    assert!(told(&d, "that code has expired"), "{d:?}");
    assert!(!told(&d, "already used"), "{d:?}");

    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, now + 3))
            .rhost("192.0.2.34")
            .at(now + 3),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    assert_eq!(
        fail2ban_hits(&all),
        vec!["192.0.2.34".to_string()],
        "{all:#?}"
    );
}

/// The same for a counter-based (HOTP) file: the counter accepted last, typed again, is
/// a replay with the warning; a code of a counter the look-ahead passed over (the token
/// pressed twice, the first code typed late) is older, never accepted: no warning, and
/// the user told to press the token. Both are denied.
#[test]
fn an_older_hotp_code_is_logged_as_expired_and_the_last_one_as_reused() {
    let t = "an_older_hotp_code_is_logged_as_expired_and_the_last_one_as_reused";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "oathtool") {
        return;
    }
    let u = TestUser::create("oooh");
    let secret = random_secret_b32();
    u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    let told = |d: &Drive, what: &str| {
        d.messages
            .iter()
            .any(|(style, text)| *style == 3 && text.contains(what))
    };
    let (_, l) = login(
        Driver::login(&stack, &u, &oathtool_hotp(&secret, 2))
            .rhost("192.0.2.41")
            .at(T0),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(has(&l, "accepted counter-based code"), "{l:#?}");
    let (d, l) = login(
        Driver::login(&stack, &u, &oathtool_hotp(&secret, 2))
            .rhost("192.0.2.42")
            .at(T0 + 1),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "code already used for"), "{l:#?}");
    assert!(has(&l, "man-in-the-middle"), "{l:#?}");
    assert!(
        told(&d, "that code was already used; press the token"),
        "{d:?}"
    );
    let (d, l) = login(
        Driver::login(&stack, &u, &oathtool_hotp(&secret, 1))
            .rhost("192.0.2.43")
            .at(T0 + 2),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(&l, "expired code (older than the last accepted one) for"),
        "{l:#?}"
    );
    assert!(!has(&l, "man-in-the-middle"), "{l:#?}");
    assert!(
        told(
            &d,
            "that code is older than the last one accepted; press the token"
        ),
        "{d:?}"
    );
}

/// Inside a grace period with `forward_pass`, `accepted USER from HOST within the grace
/// period` was logged before the password was asked for; a login that then got no
/// password (or whose client hung up) was denied, with the log saying it was accepted
/// and nothing else.
#[test]
fn a_grace_login_denied_for_want_of_the_password_is_not_logged_as_accepted() {
    let t = "a_grace_login_denied_for_want_of_the_password_is_not_logged_as_accepted";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let (u, secret) = TestUser::enrolled("gr");
    let stack = Stack::probe("svc", "forward_pass grace_period=3600");
    let host = "192.0.2.95";
    let accepted = format!("accepted {} from {host} within the grace period", u.name);
    let d = login_at(&stack, &u, &format!("pw{}", code_at(&secret, T0)), host, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    for (what, driver, want, said) in [
        (
            "no password",
            Driver::new(&stack, "svc", &u.name).null_answer(),
            "PAM_AUTH_ERR",
            "did not receive the password from the user (grace period)",
        ),
        (
            "hung up",
            Driver::new(&stack, "svc", &u.name).conv_fail("PAM_CONV_ERR"),
            "PAM_CONV_ERR",
            "conversation failed while asking for the password (grace period)",
        ),
    ] {
        let (d, lines) = capture_syslog(&driver.rhost(host).at(T0 + 100));
        assert_eq!(d.module_code(), want, "{what}: {d:?}");
        assert_eq!(d.prompt_list(), [(1, "Password: ".to_string())], "{what}");
        let messages: Vec<&str> = lines.iter().map(|l| syslog_message(l)).collect();
        assert!(
            !messages.contains(&accepted.as_str()),
            "{what}: {messages:#?}"
        );
        assert!(messages.contains(&said), "{what}: {messages:#?}");
    }
    // Control: the password given, the grace login is accepted and says so.
    let (d, lines) = login_logged(&stack, &u, "pw", host, T0 + 200);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert!(
        lines.iter().any(|l| syslog_message(l) == accepted),
        "{lines:#?}"
    );
}

/// R9 with `PAM_AUTHTOK` (`use_first_pass`, `try_first_pass`): what a client meets for a
/// name with an account and for one without is the same, attempt after attempt: the
/// return code, the prompts and messages (a throttle's "too many" among them), and the
/// failures the fail2ban filter counts. The account has 8-digit codes: a token ending
/// in 6 digits was "no usable code" for it (nothing charged, nothing counted) and a
/// charged, counted guess for a name without an account, whose token is split as
/// 6-digit codes (it has no file to say otherwise). Under `try_first_pass` a code in
/// `PAM_AUTHTOK` is a guess charged for an account, and was ignored for a name without
/// one. The lines that say why (no such user) differ, for the admin.
#[test]
fn first_pass_tokens_are_charged_alike_with_or_without_an_account() {
    let t = "first_pass_tokens_are_charged_alike_with_or_without_an_account";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "fail2ban-regex") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("fp");
    u.write_secret(
        &format!("{secret}\n\" TOTP_AUTH\n\" PAM_TOTP_DIGITS 8\n"),
        0o600,
    );
    let stranger = format!("{}x", u.name);
    // (mode, PAM_AUTHTOK, answers after it): the password prompt's answer becomes
    // PAM_AUTHTOK (pam_unix); the rest answer the module's prompt.
    let scenarios: [(&str, &str, &[&str]); 5] = [
        ("try_first_pass", "pw123456", &["111111"]),
        ("try_first_pass", "pw123456", &[]),
        ("use_first_pass", "pw123456", &[]),
        ("use_first_pass", "pw1234567", &[]),
        ("use_first_pass", "pw12345", &[]),
    ];
    for (n, (mode, token, answers)) in scenarios.into_iter().enumerate() {
        let mut seen = Vec::new();
        for user in [u.name.as_str(), stranger.as_str()] {
            let stack = Stack::new();
            stack.service(
                "svc",
                &format!(
                    "auth optional pam_unix.so nodelay\n\
                     auth requisite {}\n",
                    installed(&stack, &format!(" {mode} max_failures=3"))
                ),
            );
            let mut runs = Vec::new();
            for i in 0..4u64 {
                let rhost = format!("192.0.2.{}", 100 + i);
                let driver = answers.iter().fold(
                    Driver::new(&stack, "svc", user)
                        .answer(token)
                        .rhost(&rhost)
                        .at(T0 + 30 * i),
                    |d, a| d.answer(a),
                );
                let (d, lines) = capture_syslog(&driver);
                let lines: Vec<String> = lines.iter().map(|l| auth_log_line(l)).collect();
                let shown = |s: &str| s.replace(user, "USER");
                runs.push((
                    d.result.clone(),
                    d.prompts,
                    d.messages
                        .iter()
                        .map(|(s, m)| (*s, shown(m)))
                        .collect::<Vec<_>>(),
                    fail2ban_hits(&lines),
                ));
            }
            seen.push(runs);
        }
        assert_eq!(
            seen[0], seen[1],
            "[{mode} {token} {answers:?}] the account, then the name without one"
        );
        // Not alike by doing nothing: the guesses are charged (the hard cap is met on
        // the second login, two guesses each) and counted; a token without 6 digits at
        // its end is no code for either.
        let runs = &seen[0];
        let disabled = |r: &(String, usize, Vec<(i32, String)>, Vec<String>)| {
            r.2.iter().any(|(_, m)| m.contains("disabled until"))
        };
        match n {
            0 => assert!(!disabled(&runs[0]) && disabled(&runs[1]), "{runs:?}"),
            1..=3 => assert_eq!(runs[0].3.len(), 1, "counted: {runs:?}"),
            _ => assert!(runs.iter().all(|r| r.3.is_empty()), "{runs:?}"),
        }
    }
}

/// A right scratch code refused because the record already holds 16 used scratch
/// codes and the file (immutable here, as a configuration-managed one would be) still
/// lists them all: its own closing line, after an `err` line naming the way out
/// (`totp-enroll --regenerate-scratch-codes` or a re-enrolment; not `totp-state
/// reset`), never "secret file unusable", which sent the admin to a file that is fine.
/// Not counted by fail2ban: only a holder of the code sends it. The user is told.
/// Controls: the same file's first 16 scratch codes and a TOTP code after the refusal
/// log in, and a wrong code from another host is counted.
#[test]
fn a_scratch_code_refused_by_a_full_record_says_so_and_is_not_counted() {
    let t = "a_scratch_code_refused_by_a_full_record_says_so_and_is_not_counted";
    if !require_root(t)
        || !require_tool(t, "unshare")
        || !require_tool(t, "fail2ban-regex")
        || !require_tool(t, "chattr")
    {
        return;
    }
    struct Immutable(std::path::PathBuf);
    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = run("chattr", [std::ffi::OsStr::new("-i"), self.0.as_os_str()]);
        }
    }
    let u = TestUser::create("f2bsf");
    let secret = random_secret_b32();
    let codes: Vec<String> = (0..17).map(|i| format!("{}", 35_000_000 + i)).collect();
    let path = u.write_secret(
        &format!("{}{}\n", totp_file(&secret), codes.join("\n")),
        0o600,
    );
    let out = run("chattr", [std::ffi::OsStr::new("+i"), path.as_os_str()]);
    assert!(out.status.success(), "chattr +i: {out:?}");
    let _immutable = Immutable(path.clone());
    let stack = Stack::new();
    stack.service("svc", &format!("auth required {}\n", installed(&stack, "")));
    let mut all = Vec::new();
    for (i, c) in (0u64..).zip(&codes[..16]) {
        let (_, l) = login(
            Driver::login(&stack, &u, c).rhost("192.0.2.60").at(T0 + i),
            "PAM_SUCCESS",
            &mut all,
        );
        assert!(has(&l, "accepted scratch code for"), "control {c}: {l:#?}");
    }
    let (d, l) = login(
        Driver::login(&stack, &u, &codes[16])
            .rhost("192.0.2.61")
            .at(T0 + 20),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(
        has(
            &l,
            "scratch code refused (the record of used scratch codes is full) for"
        ),
        "{l:#?}"
    );
    assert!(!has(&l, "secret file unusable"), "{l:#?}");
    assert!(
        l.iter()
            .any(|l| l.contains("16 scratch codes of this secret")
                && l.contains("totp-enroll --regenerate-scratch-codes")
                && l.contains("`totp-state reset` does not make room")),
        "{l:#?}"
    );
    assert!(
        d.messages
            .iter()
            .any(|(style, text)| *style == 3 && text.contains("ask an administrator")),
        "the user is told: {d:?}"
    );
    // Fail closed, and nothing else is held up: a TOTP code still logs in.
    let at = T0 + 120;
    let (_, l) = login(
        Driver::login(&stack, &u, &code_at(&secret, at))
            .rhost("192.0.2.61")
            .at(at),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(has(&l, "accepted time-based code"), "{l:#?}");
    let (_, l) = login(
        Driver::login(&stack, &u, &wrong_totp(&secret, at + 60))
            .rhost("192.0.2.62")
            .at(at + 60),
        "PAM_AUTH_ERR",
        &mut all,
    );
    assert!(has(&l, "invalid verification code for"), "{l:#?}");

    let hits = fail2ban_hits(&all);
    let hosts: BTreeSet<&str> = hits.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = ["192.0.2.62"].into_iter().collect();
    assert_eq!(hosts, want, "matched hosts; log:\n{}", all.join("\n"));
}

/// The lines a login through a shared store adds (a server of the list passed over, the
/// local store taken by `state_fallback=local`, the store down) are warnings and host
/// faults, never attempts: the real `fail2ban-regex` counts each compared wrong code
/// once, with its host, through the sentinels (one of them dead, which the plugin's
/// note names) and through the fallback, and counts nothing while the store is down
/// and no code is compared. Controls: a right code is not counted, a name without an
/// account is, when the store answers.
#[test]
fn shared_store_lines_count_each_compared_code_once_and_nothing_else() {
    use system_tests::fleet::{RedisServer, Sentinel, ServerConfig, init_store, plugin};
    let t = "shared_store_lines_count_each_compared_code_once_and_nothing_else";
    if !require_root(t)
        || !require_tool(t, "unshare")
        || !require_tool(t, "fail2ban-regex")
        || !require_tool(t, "redis-server")
    {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let sentinel = Sentinel::start(server.port, "lg", 1);
    let dead = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port()
    };
    let common = format!(
        "redis_plugin={} redis_prefix=lg: redis_connect_timeout=1000 redis_timeout=1000",
        plugin().display()
    );
    let via = format!(
        "state=redis+sentinel://127.0.0.1:{},127.0.0.1:{}/lg/0 {common} state_fallback=local",
        dead(),
        sentinel.port
    );
    init_store(&via);
    let down = format!("state=redis://127.0.0.1:{}/0 {common}", dead());
    let stack = |args: &str| {
        let s = Stack::new();
        s.service(
            "svc",
            &format!("auth required {}\n", installed(&s, &format!(" {args}"))),
        );
        s
    };
    let (via, fallback, outage) = (
        stack(&via),
        stack(&format!("{down} state_fallback=local")),
        stack(&down),
    );
    let (u, secret) = TestUser::enrolled("lgw");
    let (v, secret_v) = TestUser::enrolled("lgr");
    let mut all = Vec::new();
    // The running clock: the store was initialised now.
    let wrong = |stack: &Stack, rhost: &str| {
        Driver::login(stack, &u, &wrong_totp(&secret, now())).rhost(rhost)
    };
    let unknown = |stack: &Stack, rhost: &str| {
        Driver::new(stack, "svc", "nosuch-lg")
            .answer("123456")
            .rhost(rhost)
    };

    let (_, l) = login(wrong(&via, "192.0.2.131"), "PAM_AUTH_ERR", &mut all);
    assert!(has(&l, "1 of 2 sentinels skipped"), "{l:#?}");
    assert!(has(&l, "invalid verification code for"), "{l:#?}");
    let (_, l) = login(
        Driver::login(&via, &v, &code_at(&secret_v, now())).rhost("192.0.2.132"),
        "PAM_SUCCESS",
        &mut all,
    );
    assert!(has(&l, "sentinels skipped"), "{l:#?}");
    let (_, l) = login(unknown(&via, "192.0.2.136"), "PAM_AUTH_ERR", &mut all);
    assert!(has(&l, "code not verified (unknown user)"), "{l:#?}");

    let (_, l) = login(wrong(&fallback, "192.0.2.133"), "PAM_AUTH_ERR", &mut all);
    assert!(has(&l, "using this host's local store"), "{l:#?}");
    assert!(has(&l, "invalid verification code for"), "{l:#?}");

    for (driver, rhost) in [
        (wrong(&outage, "192.0.2.134"), "192.0.2.134"),
        (unknown(&outage, "192.0.2.135"), "192.0.2.135"),
    ] {
        let (_, l) = login(driver, "PAM_AUTH_ERR", &mut all);
        assert!(
            l.iter().any(
                |l| l.contains("code not verified (state store unusable) for ")
                    && l.ends_with(&format!("from {rhost}"))
            ),
            "{l:#?}"
        );
    }

    let mut hits = fail2ban_hits(&all);
    hits.sort();
    assert_eq!(
        hits,
        ["192.0.2.131", "192.0.2.133", "192.0.2.136"],
        "log:\n{}",
        all.join("\n")
    );
}
