//! Unit tests of the access rules: decision table, errors, caps, explain, groups.

use super::*;
use crate::addr::{OriginReason, classify_origin};

const FIELD_EXAMPLE: &str = "+ : ALL : 10.0.0.0/24\n+ : ALL : LOCAL\n- : ALL : ALL\n";

fn parse(text: &str) -> AccessRules<'_> {
    match AccessRules::parse(text.as_bytes(), ParseOptions::default()) {
        Ok(rules) => rules,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn owned(groups: &[&str]) -> Vec<String> {
    groups.iter().map(|g| (*g).to_owned()).collect()
}

/// One login: user, groups (`None` = NSS failure), PAM_RHOST, PAM_TTY, PAM_SERVICE.
struct Login {
    user: &'static str,
    groups: Option<&'static [&'static str]>,
    rhost: Option<&'static str>,
    tty: Option<&'static str>,
    service: Option<&'static str>,
}

const fn from(rhost: &'static str) -> Login {
    Login {
        user: "alice",
        groups: Some(&[]),
        rhost: Some(rhost),
        tty: Some("ssh"),
        service: Some("sshd"),
    }
}

const fn console(tty: &'static str, service: &'static str) -> Login {
    Login {
        user: "alice",
        groups: Some(&[]),
        rhost: None,
        tty: Some(tty),
        service: Some(service),
    }
}

impl Login {
    const fn user(mut self, user: &'static str) -> Login {
        self.user = user;
        self
    }
    const fn groups(mut self, groups: Option<&'static [&'static str]>) -> Login {
        self.groups = groups;
        self
    }
}

fn decide_login(text: &str, login: &Login) -> (SkipVerdict, Option<usize>) {
    let rules = parse(text);
    let groups = login.groups.map(owned);
    let subject = Subject {
        user: login.user,
        groups: groups.as_deref().map_or(Groups::Unknown, Groups::Complete),
        origin: classify_origin(
            login.rhost.map(str::as_bytes),
            login.tty.map(str::as_bytes),
            login.service.map(str::as_bytes),
        ),
    };
    let decision = rules.evaluate(&subject);
    let streamed = decide(text.as_bytes(), ParseOptions::default(), &subject);
    assert_eq!(
        streamed.as_ref(),
        Ok(&decision),
        "decide agrees with evaluate"
    );
    (decision.verdict, decision.matched.map(|m| m.line))
}

use SkipVerdict::{Require, Skip};

#[test]
fn decision_table() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, Login, SkipVerdict, Option<usize>)] = &[
        // J1, J2, J3: canonicalisation of mapped addresses only.
        ("J1", "+ : ALL : 10.0.0.0/8", from("10.1.2.3"), Skip, Some(1)),
        ("J2 dotted", "+ : ALL : 10.0.0.0/8", from("::ffff:10.1.2.3"), Skip, Some(1)),
        ("J2 hex", "+ : ALL : 10.0.0.0/8", from("::ffff:a01:203"), Skip, Some(1)),
        ("J3", "+ : ALL : 10.0.0.0/8", from("::a01:203"), Require, None),
        // J4: not addresses.
        ("J4 octal", "+ : ALL : 10.0.0.0/8", from("010.1.2.3"), Require, None),
        ("J4 space", "+ : ALL : 10.0.0.0/8", from("10.1.2.3 "), Require, None),
        ("J4 dot", "+ : ALL : 10.0.0.0/8", from("10.1.2.3."), Require, None),
        ("J4 hex", "+ : ALL : 10.0.0.0/8", from("0x0a.1.2.3"), Require, None),
        ("J4 short", "+ : ALL : 10.0.0.0/8", from("10.1.2"), Require, None),
        // J5: host names never match an address, not even through EXCEPT.
        ("J5", "+ : ALL : 10.0.0.0/8", from("lan-host.example"), Require, None),
        ("J5 except", "+ : ALL : ALL EXCEPT 192.0.2.0/24", from("evil.example"), Require, None),
        ("J5 require", "- : ALL : 10.0.0.0/8\n+ : ALL : ALL", from("evil.example"), Require, Some(1)),
        ("J5 local", "+ : ALL : LOCAL", from("localhost"), Require, None),
        // J6 and the field example.
        ("field lan", FIELD_EXAMPLE, from("10.0.0.77"), Skip, Some(1)),
        ("field wan", FIELD_EXAMPLE, from("10.0.1.77"), Require, Some(3)),
        ("field v6", FIELD_EXAMPLE, from("2001:db8::1"), Require, Some(3)),
        ("field console", FIELD_EXAMPLE, console("/dev/tty1", "login"), Skip, Some(2)),
        ("field display", FIELD_EXAMPLE, console(":0", "gdm-password"), Skip, Some(2)),
        // VNC servers number displays from :1: never local, and LOCAL cannot skip there.
        ("field vnc display", FIELD_EXAMPLE, console(":1", "gdm-password"), Require, Some(3)),
        ("vnc screen", FIELD_EXAMPLE, console(":1.0", "xscreensaver"), Require, Some(3)),
        ("vnc local only", "+ : ALL : LOCAL", console(":1", "lightdm"), Require, None),
        ("display 0 local only", "+ : ALL : LOCAL", console(":0", "lightdm"), Skip, Some(1)),
        ("field sudo in ssh", FIELD_EXAMPLE, console("/dev/pts/3", "sudo"), Require, Some(3)),
        ("field su in ssh", FIELD_EXAMPLE, console("pts/3", "su"), Require, Some(3)),
        ("field sudo console", FIELD_EXAMPLE, console("/dev/tty1", "sudo"), Require, Some(3)),
        ("field pts login", FIELD_EXAMPLE, console("/dev/pts/0", "login"), Require, Some(3)),
        ("field empty rhost", FIELD_EXAMPLE, from(""), Require, Some(3)),
        ("J6 no rules", "", console("/dev/tty1", "login"), Require, None),
        // J7: link-local zone stripped; brackets are not addresses.
        ("J7 zone", "+ : ALL : fe80::/10", from("fe80::1%eth0"), Skip, Some(1)),
        ("J7 zone global", "+ : ALL : 2001:db8::/32", from("2001:db8::1%eth0"), Require, None),
        ("J7 brackets", "+ : ALL : ::1", from("[::1]"), Require, None),
        ("J7 plain", "+ : ALL : ::1", from("::1"), Skip, Some(1)),
        // J8.
        ("J8 match", "+ : ALL : fd00::/8", from("fd12::1"), Skip, Some(1)),
        ("J8 no match", "+ : ALL : fd00::/8", from("fe80::1"), Require, None),
        // Families stay apart.
        ("v6 net, v4 peer", "+ : ALL : ::/1", from("10.1.2.3"), Require, None),
        ("mapped rule", "+ : ALL : ::ffff:10.0.0.0/104", from("10.200.0.1"), Skip, Some(1)),
        ("mapped host rule", "+ : ALL : ::ffff:10.0.0.1", from("10.0.0.1"), Skip, Some(1)),
        // Users.
        ("user", "+ : root : 10.0.0.0/8", from("10.0.0.1").user("root"), Skip, Some(1)),
        ("other user", "+ : root : 10.0.0.0/8", from("10.0.0.1"), Require, None),
        ("user case", "+ : root : 10.0.0.0/8", from("10.0.0.1").user("Root"), Require, None),
        ("comma list", "+ : bob,alice : 10.0.0.0/8", from("10.0.0.1"), Skip, Some(1)),
        ("tab list", "+\t:\tbob\talice\t:\t10.0.0.0/8", from("10.0.0.1"), Skip, Some(1)),
        ("except user", "+ : ALL EXCEPT root : ALL", from("10.0.0.1").user("root"), Require, None),
        ("except other", "+ : ALL EXCEPT root : ALL", from("10.0.0.1"), Skip, Some(1)),
        // Groups, including a failed lookup.
        ("group member", "+ : (lan) : ALL", from("1.1.1.1").groups(Some(&["staff", "lan"])), Skip, Some(1)),
        ("group non-member", "+ : (lan) : ALL", from("1.1.1.1").groups(Some(&["staff"])), Require, None),
        ("group lookup failed", "+ : (lan) : ALL", from("1.1.1.1").groups(None), Require, None),
        ("except group member", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1").groups(Some(&["otp"])), Require, None),
        ("except group other", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1"), Skip, Some(1)),
        ("except group failed", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1").groups(None), Require, None),
        ("require group failed", "- : (otp) : ALL\n+ : ALL : ALL", from("1.1.1.1").groups(None), Require, Some(1)),
        ("require except failed", "- : ALL EXCEPT (lan) : ALL\n+ : ALL : ALL", from("1.1.1.1").groups(None), Require, Some(1)),
        ("require group other", "- : (otp) : ALL\n+ : ALL : ALL", from("1.1.1.1"), Skip, Some(2)),
        ("passed over then sure", "+ : (lan) : ALL\n+ : alice : ALL", from("1.1.1.1").groups(None), Skip, Some(2)),
        ("group is not a user", "+ : (alice) : ALL", from("1.1.1.1"), Require, None),
        ("user is not a group", "+ : lan : ALL", from("1.1.1.1").groups(Some(&["lan"])), Require, None),
        // SSSD's qualified group names.
        ("qualified group", "+ : (lan@ad.example.com) : ALL", from("1.1.1.1").groups(Some(&["lan@ad.example.com"])), Skip, Some(1)),
        ("qualified group, other domain", "+ : (lan@ad.example.com) : ALL", from("1.1.1.1").groups(Some(&["lan@ad2.example.com"])), Require, None),
        // Origins with EXCEPT.
        ("origin except in", "+ : ALL : 10.0.0.0/8 EXCEPT 10.9.0.0/16", from("10.1.2.3"), Skip, Some(1)),
        ("origin except out", "+ : ALL : 10.0.0.0/8 EXCEPT 10.9.0.0/16", from("10.9.2.3"), Require, None),
        ("except local", "+ : ALL : ALL EXCEPT LOCAL", console("tty1", "login"), Require, None),
        ("local vs network", "+ : ALL : LOCAL", from("10.0.0.1"), Require, None),
        ("network vs local", "+ : ALL : 10.0.0.0/8", console("tty1", "login"), Require, None),
        // ALL is explicit and covers every origin, a host name included.
        ("all origins", "+ : root : ALL", from("somehost").user("root"), Skip, Some(1)),
        // pam_access's LOCAL is "no PAM_RHOST", sudo inside SSH included. Such a login is
        // never LOCAL enough to skip, but a rule written for pam_access that keeps the
        // code for LOCAL logins must keep it for them too.
        ("minus local, sudo in ssh", "- : ALL : LOCAL\n+ : ALL : ALL", console("/dev/pts/3", "sudo"), Require, Some(1)),
        ("minus local, su on a console", "- : ALL : LOCAL\n+ : ALL : ALL", console("tty1", "su"), Require, Some(1)),
        ("minus local, no terminal", "- : ALL : LOCAL\n+ : ALL : ALL", console("", "cron"), Require, Some(1)),
        ("minus local, host name", "- : ALL : LOCAL\n+ : ALL : ALL", from("lan-host"), Require, Some(1)),
        ("minus local, console", "- : ALL : LOCAL\n+ : ALL : ALL", console("tty1", "login"), Require, Some(1)),
        ("minus local, address", "- : ALL : LOCAL\n+ : ALL : ALL", from("203.0.113.9"), Skip, Some(2)),
        ("except local, sudo in ssh", "+ : ALL : ALL EXCEPT LOCAL", console("pts/1", "sudo"), Require, None),
        ("except local, address", "+ : ALL : ALL EXCEPT LOCAL", from("203.0.113.9"), Skip, Some(1)),
        ("plus local, sudo in ssh", "+ : ALL : LOCAL\n- : ALL : ALL", console("pts/1", "sudo"), Require, Some(2)),
        // pam_access compares user names without case: a name spelt differently from the
        // NSS name never skips, but still requires the code.
        ("minus name case", "- : Alice : ALL\n+ : ALL : ALL", from("10.0.0.1"), Require, Some(1)),
        ("minus name upper", "- : ALICE : ALL\n+ : ALL : ALL", from("10.0.0.1"), Require, Some(1)),
        ("minus other name", "- : alicia : ALL\n+ : ALL : ALL", from("10.0.0.1"), Skip, Some(2)),
        ("except name case", "+ : ALL EXCEPT ROOT : ALL", from("10.0.0.1").user("root"), Require, None),
        ("plus name case", "+ : Alice : ALL", from("10.0.0.1"), Require, None),
        ("plus name case, then exact", "+ : Alice : ALL\n+ : alice : 10.0.0.0/8", from("10.0.0.1"), Skip, Some(2)),
        // First match wins.
        ("first wins", "- : ALL : 10.0.0.5\n+ : ALL : 10.0.0.0/8", from("10.0.0.5"), Require, Some(1)),
        ("first wins 2", "- : ALL : 10.0.0.5\n+ : ALL : 10.0.0.0/8", from("10.0.0.6"), Skip, Some(2)),
        // Syntax variants.
        ("no spaces", "+:ALL:10.0.0.0/8", from("10.1.1.1"), Skip, Some(1)),
        ("crlf", "# x\r\n+ : ALL : 10.0.0.0/8\r\n- : ALL : ALL\r\n", from("11.1.1.1"), Require, Some(3)),
        ("comments", "# c\n\n   # indented\n\t\n+ : ALL : 10.0.0.0/8", from("10.1.1.1"), Skip, Some(5)),
        ("v6 list", "+ : ALL : 2001:db8::/32, fd00::/8", from("2001:db8::5"), Skip, Some(1)),
        ("v6 host", "+ : ALL : 2001:db8::5", from("2001:db8::5"), Skip, Some(1)),
        ("no final newline", "- : ALL : 10.0.0.0/8\n+ : ALL : ALL", from("8.8.8.8"), Skip, Some(2)),
    ];
    for (name, rules, login, verdict, line) in cases {
        assert_eq!(decide_login(rules, login), (*verdict, *line), "case {name}");
    }
}

#[test]
fn matched_rule_carries_line_and_trimmed_text() {
    let rules = parse("# head\r\n   + : ALL : 10.0.0.0/8   \r\n");
    let decision = rules.evaluate(&Subject {
        user: "alice",
        groups: Groups::Complete(&[]),
        origin: classify_origin(Some(b"10.0.0.1"), None, None),
    });
    assert_eq!(
        decision,
        RuleDecision {
            verdict: Skip,
            matched: Some(MatchedRule {
                line: 2,
                text: "+ : ALL : 10.0.0.0/8".to_owned()
            }),
        }
    );
}

fn error(text: &[u8], opts: ParseOptions) -> AccessError {
    match AccessRules::parse(text, opts) {
        Ok(_) => panic!("{:?} should be rejected", String::from_utf8_lossy(text)),
        Err(e) => e,
    }
}

#[test]
fn malformed_rules_reject_the_whole_file_naming_the_line() {
    let bad: &[&str] = &[
        // J10.
        "+ : ALL : 10.0.0.0/33",
        "+ : ALL : ::/129",
        "+ : ALL : 10.0.0.0/-1",
        "+ : ALL : 10.0.0.1/8",
        "+ : ALL : 010.0.0.0/8",
        "+ : ALL : 10.0.0.0/08",
        "+ : ALL : 1.2.3.4/",
        "+ : ALL : 10.0.0.0/255.0.0.0",
        "+ : ALL : 10.0.0.0/0xff000000",
        "+ : ALL : 10.0.0.0/010",
        "+ : ALL : UNKNOWN",
        // What pam_access would resolve or interpret differently.
        "+ : ALL : host.example.com",
        "+ : ALL : .example.com",
        "+ : ALL : @netgroup",
        "+ : ALL : 192.168.",
        "+ : ALL : tty1",
        "+ : ALL : :0",
        "+ : ALL : all",
        "+ : ALL : Local",
        "+ : ALL : [::1]",
        "+ : ALL : fe80::1%eth0",
        "+ : ALL : 10.0.0.0/8 : extra",
        "+ : ALL : 10.0.0.0/8 # trailing comment",
        "+ : all : ALL",
        "+ : Except : ALL",
        "+ : @admins : ALL",
        "+ : alice@host : ALL",
        "+ : (admins : ALL",
        "+ : admins) : ALL",
        "+ : () : ALL",
        "+ : (-x) : ALL",
        "+ : (@x) : ALL",
        "+ : (x@) : ALL",
        "+ : (a@b@c) : ALL",
        "+ : (x@-y) : ALL",
        "+ : -rf : ALL",
        "+ : ali/ce : ALL",
        "+ : LOCAL : ALL",
        // Shape.
        "+ : ALL",
        "+ ALL ALL",
        "* : ALL : ALL",
        "++ : ALL : ALL",
        " : ALL : ALL",
        "+ : : ALL",
        "+ : ALL : ",
        "+ : ALL EXCEPT : ALL",
        "+ : EXCEPT root : ALL",
        "+ : ALL EXCEPT a EXCEPT b : ALL",
        "+ : ALL : ALL EXCEPT",
        "+ : ALL : EXCEPT 10.0.0.0/8",
        "+ : ALL : ALL EXCEPT 10.0.0.0/8 EXCEPT 10.1.0.0/16",
        // Bytes.
        "+ : ALL\r : ALL",
        "+ : ALL : 10.0.0.0/8\u{1}",
        "+ : ALL : 10.0.0.0/8\u{b}",
        "\u{feff}+ : ALL : ALL",
        "+ : \u{e9}lise : ALL",
        // J9 without the opt-in.
        "+ : ALL : 0.0.0.0/0",
        "+ : ALL : ::/0",
        "+ : ALL : 10.0.0.0/8 ::ffff:0.0.0.0/96",
    ];
    for rule in bad {
        let text = format!("# ok\n- : ALL : 10.0.0.0/8\n\n{rule}\n+ : ALL : ALL\n");
        let e = error(text.as_bytes(), ParseOptions::default());
        assert_eq!(e.line, Some(4), "{rule:?}: {e}");
        assert!(e.to_string().starts_with("line 4: "), "{e}");
        assert!(
            e.message.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
            "error messages stay printable: {e:?}"
        );
    }
}

#[test]
fn error_messages_are_helpful() {
    let msg = |rule: &str| error(rule.as_bytes(), ParseOptions::default()).message;
    assert!(msg("+ : ALL : 10.0.0.1/8").contains("did you mean 10.0.0.0/8"));
    assert!(msg("+ : ALL : host.example.com").contains("no DNS"));
    assert!(msg("+ : ALL : 192.168.").contains("192.168.0.0/16"));
    assert!(msg("+ : ALL : 0.0.0.0/0").contains("/0"));
    assert!(msg("+ : all : ALL").contains("uppercase"));
    // pam_access's netmask form is refused (one spelling), naming the prefix to write.
    let netmask = msg("+ : ALL : 10.0.0.0/255.0.0.0");
    assert!(netmask.contains("10.0.0.0/8)"), "{netmask}");
    let netmask = msg("+ : ALL : 192.168.1.0/255.255.255.0");
    assert!(netmask.contains("192.168.1.0/24)"), "{netmask}");
    assert!(msg("+ : ALL : 10.0.0.0/255.0.255.0").contains("not contiguous"));
    assert!(!msg("+ : ALL : 10.0.0.0/x").contains("netmask"));
    let long = format!("+ : ALL : {}", "a".repeat(500));
    assert!(msg(&long).len() < 200, "offending tokens are truncated");
}

#[test]
fn a_byte_order_mark_is_named() {
    for text in [
        "\u{feff}# rules\n+ : ALL : LOCAL\n",
        "\u{feff}+ : ALL : LOCAL\n",
    ] {
        let e = error(text.as_bytes(), ParseOptions::default());
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("byte-order mark"), "{e}");
    }
}

#[test]
fn nul_is_rejected_even_in_a_comment() {
    let e = error(b"+ : ALL : ALL\n# a\0b\n", ParseOptions::default());
    assert_eq!(e.line, Some(2));
}

#[test]
fn comments_may_hold_any_bytes_but_nul() {
    let rules = AccessRules::parse(
        b"# caf\xc3\xa9 \xff\xfe\n+ : ALL : LOCAL\n",
        ParseOptions::default(),
    )
    .expect("comment bytes are not interpreted");
    assert_eq!(rules.len(), 1);
}

#[test]
fn zero_prefix_needs_the_opt_in_only_where_it_widens_a_skip() {
    let allow = ParseOptions {
        allow_any_network: true,
    };
    for rule in [
        "+ : ALL : 0.0.0.0/0",
        "+ : ALL : ::/0",
        "+ : root : 10.0.0.0/8 ::/0",
    ] {
        assert!(AccessRules::parse(rule.as_bytes(), ParseOptions::default()).is_err());
        assert!(AccessRules::parse(rule.as_bytes(), allow).is_ok(), "{rule}");
    }
    // Requiring the code from everywhere, or excluding everywhere from a skip, is harmless.
    for rule in [
        "- : ALL : 0.0.0.0/0",
        "- : ALL : ::/0",
        "+ : ALL : LOCAL EXCEPT ::/0",
    ] {
        assert!(
            AccessRules::parse(rule.as_bytes(), ParseOptions::default()).is_ok(),
            "{rule}"
        );
    }
    let rules = AccessRules::parse(b"+ : ALL : 0.0.0.0/0", allow).expect("opted in");
    let subject = |rhost: &[u8]| Subject {
        user: "alice",
        groups: Groups::Complete(&[]),
        origin: classify_origin(Some(rhost), None, None),
    };
    assert_eq!(rules.evaluate(&subject(b"203.0.113.9")).verdict, Skip);
    assert_eq!(rules.evaluate(&subject(b"2001:db8::1")).verdict, Require);
}

#[test]
fn size_caps_are_enforced() {
    let big = vec![b'#'; MAX_FILE_BYTES + 1];
    let e = error(&big, ParseOptions::default());
    assert_eq!(e.line, None);

    let long = format!("+ : ALL : 10.0.0.0/8 {}\n", "10.1.0.0/16 ".repeat(700));
    assert!(long.len() > MAX_LINE_BYTES);
    assert_eq!(
        error(long.as_bytes(), ParseOptions::default()).line,
        Some(1)
    );
    let long_comment = format!("#{}\n", "x".repeat(MAX_LINE_BYTES));
    assert_eq!(
        error(long_comment.as_bytes(), ParseOptions::default()).line,
        Some(1)
    );

    let max = "-:ALL:ALL\n".repeat(MAX_RULES);
    assert!(max.len() <= MAX_FILE_BYTES);
    let rules = AccessRules::parse(max.as_bytes(), ParseOptions::default())
        .expect("exactly the cap is fine");
    assert_eq!(rules.len(), MAX_RULES);
    let over = format!("{max}-:ALL:ALL\n");
    assert_eq!(
        error(over.as_bytes(), ParseOptions::default()).line,
        Some(MAX_RULES + 1)
    );
}

#[test]
fn empty_rules_require_the_code() {
    let subject = Subject {
        user: "alice",
        groups: Groups::Complete(&[]),
        origin: Origin::Local,
    };
    for rules in [
        AccessRules::default(),
        parse(""),
        parse("\n# only comments\n\n"),
    ] {
        assert!(rules.is_empty());
        assert_eq!(
            rules.evaluate(&subject),
            RuleDecision {
                verdict: Require,
                matched: None
            }
        );
    }
}

#[test]
fn ten_thousand_rules_parse_and_evaluate_correctly() {
    let n = 10_000usize;
    let mut text = String::from("# generated\n");
    for i in 0..n {
        let perm = if i % 2 == 0 { '+' } else { '-' };
        let (hi, lo) = (i / 256, i % 256);
        text.push_str(&format!(
            "{perm} : user{i} (grp{i}) : 10.{hi}.{lo}.0/24 2001:db8:{i:x}::/48\n"
        ));
    }
    text.push_str("+ : ALL : 192.168.0.0/16\n");
    let rules = parse(&text);
    assert_eq!(rules.len(), n + 1);

    let check = |user: &str, groups: &[&str], rhost: &str, expect: (SkipVerdict, Option<usize>)| {
        let groups = owned(groups);
        let subject = Subject {
            user,
            groups: Groups::Complete(&groups),
            origin: classify_origin(Some(rhost.as_bytes()), None, None),
        };
        let d = rules.evaluate(&subject);
        let streamed = decide(text.as_bytes(), ParseOptions::default(), &subject);
        assert_eq!(streamed.as_ref(), Ok(&d));
        assert_eq!(
            (d.verdict, d.matched.as_ref().map(|m| m.line)),
            expect,
            "{user} {rhost}"
        );
    };
    // Rule i sits on line i + 2.
    check("user5000", &[], "10.19.136.7", (Skip, Some(5002)));
    check("user5001", &[], "10.19.137.7", (Require, Some(5003)));
    check("user5001", &[], "10.19.136.7", (Require, None));
    check(
        "bob",
        &["grp9998"],
        "2001:db8:270e::1",
        (Skip, Some(10_000)),
    );
    check(
        "bob",
        &["grp9999"],
        "::ffff:10.39.15.1",
        (Require, Some(10_001)),
    );
    check("bob", &["x"], "192.168.3.4", (Skip, Some(10_002)));
    check("bob", &["x"], "10.19.136.7", (Require, None));
    let last = rules.evaluate(&Subject {
        user: "bob",
        groups: Groups::Unknown,
        origin: classify_origin(Some(b"192.168.0.1"), None, None),
    });
    assert_eq!(
        last.matched.map(|m| m.text),
        Some("+ : ALL : 192.168.0.0/16".to_owned())
    );
}

#[test]
fn explain_names_origin_rule_and_verdict() {
    let rules = parse(FIELD_EXAMPLE);
    let e = rules.explain(&RawSubject {
        user: "alice",
        groups: Groups::Complete(&[]),
        rhost: Some(b"::ffff:10.0.0.9"),
        tty: Some(b"ssh"),
        service: Some(b"sshd"),
    });
    assert_eq!(
        e.origin,
        Origin::Network("10.0.0.9".parse().expect("literal"))
    );
    assert_eq!(e.decision.verdict, Skip);
    assert_eq!(e.decision.matched.as_ref().map(|m| m.line), Some(1));
    let text = e.to_string();
    assert!(text.contains("network address 10.0.0.9"), "{text}");
    assert!(text.contains("line 1: + : ALL : 10.0.0.0/24"), "{text}");
    assert!(text.contains("PAM_IGNORE"), "{text}");

    let e = rules.explain(&RawSubject {
        user: "alice",
        groups: Groups::Complete(&[]),
        rhost: None,
        tty: Some(b"/dev/pts/2"),
        service: Some(b"sudo"),
    });
    assert_eq!(e.origin_reason, OriginReason::IdentitySwitchService);
    assert_eq!(e.decision.matched.as_ref().map(|m| m.line), Some(3));
    assert!(e.to_string().contains("require"));
}

#[test]
fn explain_reports_rules_passed_over_for_missing_facts() {
    let rules = parse("+ : (lan) : ALL\n- : (otp) : ALL\n+ : ALL : ALL\n");
    let e = rules.explain(&RawSubject {
        user: "alice\n",
        groups: Groups::Unknown,
        rhost: Some(b"10.0.0.1"),
        tty: None,
        service: None,
    });
    assert_eq!(e.decision.verdict, Require);
    assert!(e.uncertain);
    assert_eq!(e.passed_over_total, 1);
    assert_eq!(e.passed_over[0].line, 1);
    let text = e.to_string();
    assert!(text.contains("alice\\n"), "user name is escaped: {text}");
    assert!(text.contains("groups:  unknown"), "{text}");
    assert!(
        text.contains("line 2: - : (otp) : ALL (might match"),
        "{text}"
    );

    let none = parse("+ : ALL : 10.0.0.0/8\n").explain(&RawSubject {
        user: "alice",
        groups: Groups::Complete(&[]),
        rhost: Some(b"evil.example"),
        tty: None,
        service: None,
    });
    assert_eq!(none.origin, Origin::Unknown);
    assert_eq!(none.passed_over_total, 1);
    assert!(none.to_string().contains("none matched"));
}

/// R22: only a proven non-membership lets a "not in the group" rule or option skip;
/// an unknown membership never does, and a proven membership still does.
#[test]
fn unknown_membership_never_skips_for_absence() {
    use crate::membership::Membership::{self, *};
    let asked = std::cell::RefCell::new(Vec::new());
    let questions = std::cell::RefCell::new(Vec::new());
    let facts = |g: &str, q: crate::membership::Question| -> Membership {
        asked.borrow_mut().push(g.to_owned());
        questions.borrow_mut().push((g.to_owned(), q));
        match g {
            "lan" => Member,
            "staff" => NotMember,
            _ => Unknown,
        }
    };
    let groups = Groups::Each(&facts);
    let subject = Subject {
        user: "alice",
        groups,
        origin: Origin::Network("1.1.1.1".parse().unwrap()),
    };
    let verdict = |text: &str| parse(text).evaluate(&subject).verdict;
    assert_eq!(verdict("+ : ALL EXCEPT (mfa) : ALL"), SkipVerdict::Require);
    assert_eq!(verdict("+ : ALL EXCEPT (staff) : ALL"), SkipVerdict::Skip);
    assert_eq!(
        verdict("- : (mfa) : ALL\n+ : ALL : ALL"),
        SkipVerdict::Require
    );
    assert_eq!(
        verdict("- : (staff) : ALL\n+ : ALL : ALL"),
        SkipVerdict::Skip
    );
    assert_eq!(verdict("+ : (lan) : ALL"), SkipVerdict::Skip);
    assert_eq!(verdict("+ : (mfa) : ALL"), SkipVerdict::Require);

    let s = |v: &[&str]| v.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>();
    let decide =
        |skip: &[&str], require: &[&str]| group_skip_decision(groups, &s(skip), &s(require));
    assert_eq!(decide(&[], &["mfa"]), GroupDecision::Require);
    assert_eq!(decide(&[], &["staff", "mfa"]), GroupDecision::Require);
    assert_eq!(
        decide(&[], &["staff"]),
        GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)
    );
    assert_eq!(
        decide(&["mfa", "lan"], &["staff"]),
        GroupDecision::Skip(GroupSkipReason::InSkipGroup("lan".into()))
    );
    // Asked in order, and no further than the decision needs.
    asked.borrow_mut().clear();
    assert_eq!(
        decide(&["lan", "x"], &["y"]),
        GroupDecision::Skip(GroupSkipReason::InSkipGroup("lan".into()))
    );
    assert_eq!(*asked.borrow(), vec!["lan".to_owned()]);
    // A skip group needs a membership only; a require group and a rule file's item
    // need a non-membership too.
    use crate::membership::Question::{IsMember, MemberOrNot};
    questions.borrow_mut().clear();
    assert_eq!(decide(&["mfa"], &["x"]), GroupDecision::Require);
    verdict("+ : ALL EXCEPT (mfa) : ALL");
    assert_eq!(
        *questions.borrow(),
        vec![
            ("mfa".to_owned(), IsMember),
            ("x".to_owned(), MemberOrNot),
            ("mfa".to_owned(), MemberOrNot)
        ]
    );
}

#[test]
fn group_skip_decision_table() {
    let s = |v: &[&str]| owned(v);
    let skip_in = |g: &str| GroupDecision::Skip(GroupSkipReason::InSkipGroup(g.to_owned()));
    type Case = (Option<Vec<String>>, Vec<String>, Vec<String>, GroupDecision);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // J14.
        (Some(s(&["users", "lan"])), s(&["lan"]), s(&[]), skip_in("lan")),
        (Some(s(&["users"])), s(&["lan"]), s(&[]), GroupDecision::Require),
        (None, s(&["lan"]), s(&[]), GroupDecision::Require),
        // require_group: only members need the code.
        (Some(s(&["users"])), s(&[]), s(&["otp"]), GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)),
        (Some(s(&["users", "otp"])), s(&[]), s(&["otp", "admins"]), GroupDecision::Require),
        (None, s(&[]), s(&["otp"]), GroupDecision::Require),
        (Some(s(&[])), s(&[]), s(&["otp"]), GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)),
        // Both: a skip group wins.
        (Some(s(&["lan", "otp"])), s(&["lan"]), s(&["otp"]), skip_in("lan")),
        (Some(s(&["otp"])), s(&["lan"]), s(&["otp"]), GroupDecision::Require),
        // Nothing configured.
        (Some(s(&["lan"])), s(&[]), s(&[]), GroupDecision::Require),
        (None, s(&[]), s(&[]), GroupDecision::Require),
        // Exact names only.
        (Some(s(&["LAN", "lan2"])), s(&["lan"]), s(&[]), GroupDecision::Require),
    ];
    for (groups, skip, require, expect) in cases {
        assert_eq!(
            group_skip_decision(
                groups.as_deref().map_or(Groups::Unknown, Groups::Complete),
                &skip,
                &require
            ),
            expect,
            "{groups:?} {skip:?} {require:?}"
        );
    }
}

/// The caps are limits, not off by one: a file of exactly `MAX_FILE_BYTES` and a line of
/// exactly `MAX_LINE_BYTES` are read; a byte more is refused (`size_caps_are_enforced`).
#[test]
fn a_file_and_a_line_exactly_at_their_caps_are_read() {
    let rule = b"+ : ALL : 10.0.0.0/8\n";
    // Comment lines of 64 bytes, then one shorter, then the rule.
    let mut file = Vec::with_capacity(MAX_FILE_BYTES);
    while file.len() + 64 + rule.len() <= MAX_FILE_BYTES {
        file.extend_from_slice(&[b'#'; 63]);
        file.push(b'\n');
    }
    file.resize(MAX_FILE_BYTES - rule.len() - 1, b'#');
    file.push(b'\n');
    file.extend_from_slice(rule);
    assert_eq!(file.len(), MAX_FILE_BYTES);
    let rules = AccessRules::parse(&file, ParseOptions::default()).expect("at the file cap");
    assert_eq!(rules.len(), 1);

    let head = "+ : ALL : 10.0.0.0/8 ";
    let line = format!("{head}{}", "1".repeat(MAX_LINE_BYTES - head.len()));
    assert_eq!(line.len(), MAX_LINE_BYTES);
    // At the cap the line is read (and its last item judged, here as a bad address).
    let e = error(line.as_bytes(), ParseOptions::default());
    assert!(e.message.contains("not a strict IP address"), "{e}");
    let comment = format!("#{}\n+ : ALL : LOCAL\n", "x".repeat(MAX_LINE_BYTES - 1));
    let rules = AccessRules::parse(comment.as_bytes(), ParseOptions::default())
        .expect("a comment at the line cap");
    assert_eq!(rules.len(), 1);
}

/// Each message names the field at fault and gives the hint that fits the token, and
/// only that one.
#[test]
fn error_messages_name_the_field_and_fit_the_token() {
    let msg = |rule: &str| error(rule.as_bytes(), ParseOptions::default()).message;
    assert_eq!(msg("+ : : ALL"), "empty users field");
    assert_eq!(msg("+ : ALL : "), "empty origins field");
    assert_eq!(
        msg("+ : ALL EXCEPT a EXCEPT b : ALL"),
        "only one EXCEPT is allowed in the users field"
    );
    assert_eq!(
        msg("+ : ALL : EXCEPT 10.0.0.0/8"),
        "EXCEPT needs items before it in the origins field"
    );
    assert_eq!(
        msg("+ : ALL : ALL EXCEPT"),
        "EXCEPT needs items after it in the origins field"
    );
    let domain = msg("+ : ALL : .example.com");
    assert!(
        domain.starts_with("domain suffixes are not supported"),
        "{domain}"
    );
    let host = msg("+ : ALL : host.example.com");
    assert!(host.starts_with("host names and tty names"), "{host}");
    let second = error(
        b"+ : ALL : LOCAL\n+ : ALL : 10.0.0.0/8 tty1 10.1.0.0/16\n",
        ParseOptions::default(),
    );
    assert!(second.message.ends_with(": \"tty1\""), "{second}");
    assert!(msg("+ : ALL : @admins").starts_with("netgroups are not supported"));
    assert_eq!(
        msg("+ : alice@host : ALL"),
        "netgroups and user@host are not supported: \"alice@host\""
    );
    assert_eq!(msg("+ : ali/ce : ALL"), "invalid user name \"ali/ce\"");
    let zero = msg("+ : ALL : 0.0.0.0/0");
    assert!(
        zero.contains("set the module option that allows any network"),
        "{zero}"
    );
    // The partial-address hint is for a trailing dot only.
    assert!(msg("+ : ALL : 192.168.").contains("partial addresses"));
    let short = msg("+ : ALL : 192.168.0");
    assert!(short.contains("not a strict IP address"), "{short}");
    assert!(!short.contains("partial addresses"), "{short}");
}

/// A permission error quotes the permission of its own line, wherever the line is.
#[test]
fn a_bad_permission_is_quoted_from_its_own_line() {
    let e = error(b"# rules\n  * : ALL : ALL\n", ParseOptions::default());
    assert_eq!(e.line, Some(2));
    assert_eq!(e.message, "permission must be \"+\" or \"-\", not \"*\"");
}

/// Lines end at every newline, whatever bytes share its eight-byte word: comments of
/// any bytes but NUL and newline, rules between them, each rule on its own line.
#[test]
fn every_newline_ends_a_line_whatever_surrounds_it() {
    // All eight bytes of the first word share bits with a newline (0x0a).
    let rules = parse("#::::::\n- : ALL : ALL\n");
    assert_eq!(rules.len(), 1);
    assert_eq!(rules.rules[0].line, 2);
}

mod newlines {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn lines_are_split_at_each_newline(
            lines in prop::collection::vec(
                prop::option::of(prop::collection::vec(
                    any::<u8>().prop_filter("no NUL or newline", |&b| b != 0 && b != b'\n'),
                    0..24,
                )),
                1..40,
            )
        ) {
            // None: a rule; Some(bytes): a comment holding those bytes.
            let mut text = Vec::new();
            let mut want = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                match line {
                    None => {
                        text.extend_from_slice(b"-:ALL:ALL");
                        want.push(to_u32(i + 1));
                    }
                    Some(bytes) => {
                        text.push(b'#');
                        text.extend_from_slice(bytes);
                    }
                }
                text.push(b'\n');
            }
            let rules = AccessRules::parse(&text, ParseOptions::default()).expect("comments and rules");
            let got: Vec<u32> = rules.rules.iter().map(|r| r.line).collect();
            prop_assert_eq!(got, want);
        }
    }
}

/// An `EXCEPT` takes who or where it names out of a rule, so a `-` rule does not require
/// the code of an excepted user or origin: the next rule decides for them.
#[test]
fn an_excepted_user_or_origin_falls_through_a_require_rule() {
    let users = "- : ALL EXCEPT alice : 10.0.0.0/8\n+ : ALL : 10.0.0.0/8\n";
    assert_eq!(decide_login(users, &from("10.1.2.3")), (Skip, Some(2)));
    // Even where the include part is unknown (no group facts): the exception is certain.
    let unknown = "- : (admins) EXCEPT alice : 10.0.0.0/8\n+ : ALL : 10.0.0.0/8\n";
    assert_eq!(
        decide_login(unknown, &from("10.1.2.3").groups(None)),
        (Skip, Some(2))
    );
    let origins = "- : ALL : ALL EXCEPT 10.0.0.0/8\n+ : ALL : 10.0.0.0/8\n";
    assert_eq!(decide_login(origins, &from("10.1.2.3")), (Skip, Some(2)));
    // Controls: whoever the exception does not name is required by the first rule.
    assert_eq!(
        decide_login(users, &from("10.1.2.3").user("bob")),
        (Require, Some(1))
    );
    assert_eq!(
        decide_login(unknown, &from("10.1.2.3").user("bob").groups(None)),
        (Require, Some(1))
    );
    assert_eq!(
        decide_login(origins, &from("192.0.2.1")),
        (Require, Some(1))
    );
}

/// An offending token is quoted whole up to 64 bytes, and cut there, marked, beyond.
#[test]
fn a_long_token_is_quoted_cut_at_sixty_four_bytes() {
    let msg = |token: &str| {
        error(
            format!("+ : {token} : ALL").as_bytes(),
            ParseOptions::default(),
        )
        .message
    };
    let at_cap = format!("a/{}", "b".repeat(62));
    assert_eq!(msg(&at_cap), format!("invalid user name \"{at_cap}\""));
    let over = format!("{at_cap}c");
    assert_eq!(msg(&over), format!("invalid user name \"{at_cap}...\""));
    let far_over = format!("{at_cap}{}", "c".repeat(200));
    assert_eq!(msg(&far_over), format!("invalid user name \"{at_cap}...\""));
}
