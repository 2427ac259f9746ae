use super::*;
use proptest::prelude::*;

fn parse(args: &[&str]) -> Result<ModuleOptions, OptionError> {
    let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    ModuleOptions::parse(&v)
}

#[test]
fn no_arguments_give_the_defaults() {
    let o = parse(&[]).unwrap();
    assert_eq!(o, ModuleOptions::default());
    assert_eq!(o.secret, "~/.google_authenticator");
    assert_eq!(o.allowed_perm, 0o600);
    assert_eq!(o.lock_timeout_ms, 4000);
    assert_eq!(o.policy(), Policy::default());
}

#[test]
fn every_listed_name_is_accepted() {
    let values = [
        ("secret", "/x/${USER}"),
        ("authtok_prompt", "Code: "),
        ("user", "root"),
        ("allowed_perm", "0400"),
        ("grace_period", "60"),
        ("max_window", "3"),
        ("max_time_skew", "1"),
        ("min_secret_bits", "128"),
        ("max_failures", "10"),
        ("throttle_after", "5"),
        ("throttle_max", "300"),
        ("accessfile", "/etc/security/pam_totp_access.conf"),
        ("skip_group", "wheel"),
        ("require_group", "staff"),
        ("lock_timeout", "1000"),
        ("state", "local"),
        ("state_dir", "/var/lib/pam_totp/state"),
        ("ceiling_burst", "20"),
        ("ceiling_interval", "600"),
        ("shared_file", "auto"),
    ];
    for name in OPTION_NAMES {
        let arg = match values.iter().find(|(n, _)| n == name) {
            Some((n, v)) => format!("{n}={v}"),
            None => match crate::fleet::tests_support::example_value(name)
                .or_else(|| crate::fleet::etcd::tests_support::example_value(name))
            {
                Some(v) => format!("{name}={v}"),
                None => (*name).to_owned(),
            },
        };
        // Fleet options need their companions (a Redis state=, the command's user).
        let mut args = if name.starts_with("etcd_") {
            crate::fleet::etcd::tests_support::companions()
        } else {
            crate::fleet::tests_support::companions().to_vec()
        };
        // nullok_missing_home only means something with nullok.
        if *name == "nullok_missing_home" {
            args.push("nullok");
        }
        // A client certificate and its key go together.
        match *name {
            "redis_client_cert" => args.push("redis_client_key=/etc/security/k.pem"),
            "redis_client_key" => args.push("redis_client_cert=/etc/security/c.pem"),
            _ => {}
        }
        args.push(&arg);
        assert!(parse(&args).is_ok(), "{arg}");
    }
}

#[test]
fn nullok_missing_home_needs_nullok() {
    assert!(parse(&["nullok", "nullok_missing_home"]).is_ok());
    match parse(&["nullok_missing_home"]) {
        Err(OptionError::BadValue { option, .. }) => assert_eq!(option, "nullok_missing_home"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_options_fail_closed_and_are_named() {
    for arg in [
        "bogus",
        "debug=1",
        "secret",
        "nullok ",
        "SECRET=/x",
        "max_window",
    ] {
        match parse(&[arg]) {
            Err(OptionError::Unknown(o)) => assert_eq!(o, arg.split('=').next().unwrap()),
            other => panic!("{arg}: {other:?}"),
        }
    }
    // Only the name is kept: a value mistyped around a secret never reaches the log.
    for arg in ["secert=hunter2", "debug=hunter2", "foo=a=hunter2"] {
        let e = parse(&[arg]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{arg}: {e}");
    }
    let long = format!("{}=v", "n".repeat(100));
    assert_eq!(
        parse(&[long.as_str()]),
        Err(OptionError::Unknown("n".repeat(UNKNOWN_NAME_CHARS)))
    );
    assert!(matches!(
        ModuleOptions::parse(&[b"\xffx"]),
        Err(OptionError::Unknown(_))
    ));
}

#[test]
fn first_pass_options_last_one_wins() {
    assert_eq!(
        parse(&["try_first_pass", "use_first_pass"])
            .unwrap()
            .pass_mode,
        PassMode::UseFirstPass
    );
    assert_eq!(
        parse(&["use_first_pass", "try_first_pass"])
            .unwrap()
            .pass_mode,
        PassMode::TryFirstPass
    );
}

/// pam_totp(8): an option given twice takes its last value (GA's loop does the same), a
/// bad value fails the line even where a later one would replace it, and only the group
/// options add up.
#[test]
fn a_repeated_option_takes_its_last_value_and_a_bad_one_anywhere_fails() {
    let o = parse(&[
        "max_window=3",
        "secret=/a/${USER}",
        "max_window=5",
        "secret=/b/${USER}",
    ])
    .unwrap();
    assert_eq!((o.max_window, o.secret.as_str()), (5, "/b/${USER}"));
    assert!(parse(&["max_window=x", "max_window=5"]).is_err());
    assert!(parse(&["max_window=5", "max_window="]).is_err());
    let o = parse(&["skip_group=a", "skip_group=b,c"]).unwrap();
    assert_eq!(o.skip_groups, ["a", "b", "c"]);
}

#[test]
fn echo_alias_sets_the_same_flag() {
    assert!(
        parse(&["echo-verification-code"])
            .unwrap()
            .echo_verification_code
    );
    assert!(
        parse(&["echo_verification_code"])
            .unwrap()
            .echo_verification_code
    );
}

#[test]
fn user_accepts_uid_or_name_and_rejects_trailing_garbage() {
    assert_eq!(parse(&["user=0"]).unwrap().user, Some(UserSpec::Uid(0)));
    assert_eq!(
        parse(&["user=2147483647"]).unwrap().user,
        Some(UserSpec::Uid(2_147_483_647))
    );
    assert!(matches!(
        parse(&["user=svc"]).unwrap().user,
        Some(UserSpec::Name(n)) if n.as_str() == "svc"
    ));
    for bad in [
        "user=123abc",
        "user=",
        "user=2147483648",
        "user=-1",
        "user=a/b",
        "user=..",
    ] {
        assert!(
            matches!(
                parse(&[bad]),
                Err(OptionError::BadValue { option: "user", .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn allowed_perm_is_octal_and_only_relaxes_read_and_execute_bits() {
    let o = parse(&["allowed_perm=0640"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o640, false));
    let o = parse(&["allowed_perm=0400"]).unwrap();
    assert_eq!(o.allowed_perm, 0o400);
    let o = parse(&["allowed_perm=0666"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o644, true));
    // GA's strtol: leading zeros do not count.
    let o = parse(&["allowed_perm=0000000640"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o640, false));
    // Execute bits, as a CIFS mount's file_mode shows them, are kept.
    let o = parse(&["allowed_perm=0755"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o755, false));
    let o = parse(&["allowed_perm=0700"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o700, false));
    let o = parse(&["allowed_perm=0777"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o755, true));
    let o = parse(&["allowed_perm=4777"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o755, true));
    assert!(o.weakening().contains(&"allowed_perm"));
    for bad in [
        "allowed_perm=0",
        "allowed_perm=0800",
        "allowed_perm=",
        "allowed_perm=17777",
        "allowed_perm=0x1",
    ] {
        assert!(parse(&[bad]).is_err(), "{bad}");
    }
}

#[test]
fn grace_period_follows_ga_parsing() {
    assert_eq!(parse(&["grace_period="]).unwrap().grace_period_secs, 0);
    assert_eq!(parse(&["grace_period=0"]).unwrap().grace_period_secs, 0);
    assert_eq!(
        parse(&["grace_period=86400"]).unwrap().grace_period_secs,
        86_400
    );
    assert!(!parse(&["grace_period=86400"]).unwrap().grace_period_clamped);
    // GA accepts any period that fits a long: a longer one than ours is clamped, not a
    // configuration error that would deny everybody after the switch.
    // Beyond a long too: GA's strtol saturates and GA does not look at errno.
    for long in [
        "grace_period=31708801",
        "grace_period=99999999999",
        "grace_period=999999999999999999999",
        "grace_period=000000000000000000000000000086400000",
    ] {
        let o = parse(&[long]).unwrap();
        assert_eq!(
            (o.grace_period_secs, o.grace_period_clamped),
            (MAX_GRACE_PERIOD_SECS, true),
            "{long}"
        );
    }
    assert!(
        !parse(&["grace_period=31622400"])
            .unwrap()
            .grace_period_clamped
    );
    for bad in [
        "grace_period=-1",
        "grace_period=10s",
        "grace_period= 10",
        "grace_period=+10",
    ] {
        assert!(parse(&[bad]).is_err(), "{bad}");
    }
}

#[test]
fn numeric_bounds_are_enforced() {
    for bad in [
        "max_window=0",
        "max_window=101",
        "max_time_skew=1501",
        "min_secret_bits=79",
        "max_failures=0",
        "max_failures=101",
        "throttle_after=0",
        "throttle_max=0",
        "lock_timeout=5001",
        "lock_timeout=+5",
    ] {
        assert!(
            matches!(parse(&[bad]), Err(OptionError::BadValue { .. })),
            "{bad}"
        );
    }
    let o = parse(&[
        "max_failures=100",
        "lock_timeout=5000",
        "min_secret_bits=160",
    ])
    .unwrap();
    assert_eq!(o.max_failures, Some(100));
    assert_eq!(o.policy().max_failures, Some(100));
    assert_eq!(o.policy().min_secret_bits, 160);
}

#[test]
fn groups_accumulate_and_split_on_commas() {
    let o = parse(&["skip_group=a,b", "skip_group=c", "require_group=d"]).unwrap();
    assert_eq!(o.skip_groups, ["a", "b", "c"]);
    assert_eq!(o.require_groups, ["d"]);
    for bad in [
        "skip_group=",
        "skip_group=a,,b",
        "skip_group=a b",
        "require_group=-x",
    ] {
        assert!(parse(&[bad]).is_err(), "{bad}");
    }
}

#[test]
fn accessfile_must_be_absolute() {
    assert!(parse(&["accessfile=rules.conf"]).is_err());
    assert!(parse(&["accessfile=/etc/../x"]).is_err());
    assert!(parse(&["secret="]).is_err());
}

/// One path rule for every path-valued option: the local ones and the fleet ones refuse
/// and accept the same forms.
#[test]
fn one_path_rule_for_every_path_option() {
    let long = format!("/{}", "a".repeat(4095));
    let longest = format!("/{}", "a".repeat(4094));
    for (name, companions) in [
        ("accessfile", &[][..]),
        ("state_dir", &[][..]),
        ("redis_ca_file", &["state=rediss://127.0.0.1"][..]),
        ("etcd_plugin", &["state=etcds://127.0.0.1"][..]),
        ("secret_command", &["secret_command_user=nobody"][..]),
    ] {
        let with = |arg: &str| {
            let mut args = companions.to_vec();
            args.push(arg);
            parse(&args)
        };
        for refused in [
            "relative/x",
            "/x/../y",
            "/x/..",
            "/x/y\u{7}",
            "/x/\u{1b}[31m",
            "/x/\u{85}y",
            long.as_str(),
        ] {
            let arg = format!("{name}={refused}");
            assert!(with(&arg).is_err(), "{name} accepted {refused:?}");
        }
        for accepted in ["/x/./y", "/x/.", "/x/..y/.z", "/x/y", longest.as_str()] {
            let arg = format!("{name}={accepted}");
            if let Err(e) = with(&arg) {
                panic!("{name} refused {accepted:?}: {e}")
            }
        }
    }
}

#[test]
fn policy_carries_the_admin_caps() {
    let o = parse(&[
        "max_window=5",
        "max_time_skew=0",
        "no_increment_hotp",
        "grace_period=30",
        "throttle_after=2",
        "throttle_max=120",
    ])
    .unwrap();
    let p = o.policy();
    assert_eq!(p.max_window, 5);
    assert_eq!(p.max_time_skew, 0);
    assert!(p.no_increment_hotp);
    assert_eq!(p.grace_period_secs, 30);
    assert_eq!(p.throttle_after, 2);
    assert_eq!(p.throttle_max_secs, 120);
}

proptest! {
    #[test]
    fn random_arguments_never_panic(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..6)) {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let _ = ModuleOptions::parse(&v);
    }
}

#[test]
fn shared_file_is_auto_yes_or_no_and_nothing_else() {
    assert_eq!(parse(&[]).unwrap().shared_file, SharedFile::Auto);
    for (v, want) in [
        ("auto", SharedFile::Auto),
        ("yes", SharedFile::Yes),
        ("no", SharedFile::No),
    ] {
        let o = parse(&[&format!("shared_file={v}")]).unwrap();
        assert_eq!(o.shared_file, want, "{v}");
    }
    // The last one wins, like every other single-valued option.
    let o = parse(&["shared_file=no", "shared_file=yes"]).unwrap();
    assert_eq!(o.shared_file, SharedFile::Yes);
    for v in [
        "", "YES", "Yes", "true", "1", "on", "off", "auto ", " no", "nfs",
    ] {
        assert_eq!(
            parse(&[&format!("shared_file={v}")]),
            Err(OptionError::BadValue {
                option: "shared_file",
                reason: "not auto, yes or no"
            }),
            "{v:?}"
        );
    }
    // A flag without its value is no option at all.
    assert!(matches!(
        parse(&["shared_file"]),
        Err(OptionError::Unknown(_))
    ));
    // A weakening with this host's own store, which other hosts sharing the home do not
    // read; not with a shared store, which refuses a used code on every host itself.
    assert_eq!(
        parse(&["shared_file=no"]).unwrap().weakening(),
        ["shared_file"]
    );
    assert!(
        parse(&["shared_file=no", "state=etcds://127.0.0.1:2379"])
            .unwrap()
            .weakening()
            .is_empty()
    );
    assert!(parse(&["shared_file=yes"]).unwrap().weakening().is_empty());
}

/// R28: a longer run of failures before the backoff, a shorter backoff, and a code
/// echoed where the answer holds the password are weakenings; the defaults, a
/// stricter throttle and an echo without forward_pass are not.
#[test]
fn looser_throttling_and_an_echoed_password_are_weakenings() {
    let weak = |args: &[&str]| parse(args).expect("parses").weakening();
    assert!(weak(&["throttle_after=4"]).contains(&"throttle_after"));
    assert!(weak(&["throttle_max=599"]).contains(&"throttle_max"));
    assert!(weak(&["forward_pass", "echo_verification_code"]).contains(&"echo_verification_code"));
    // Controls.
    assert!(weak(&[]).is_empty());
    assert!(weak(&["throttle_after=2", "throttle_max=3600"]).is_empty());
    assert!(weak(&["echo_verification_code"]).is_empty());
    assert!(weak(&["forward_pass"]).is_empty());
}

/// The shortest `redis_ttl=` outlives everything a record without counters protects, at
/// every option's cap: the figure pam_totp(8) and fleet.md give, worked out here from the
/// parser's own bounds so that widening one of them moves it.
#[test]
fn redis_ttl_outlives_what_a_record_protects() {
    let step = crate::gafile::LONGEST_STEP_SECS;
    let window = u64::from(parse(&["max_window=100"]).unwrap().max_window);
    let skew = u64::from(parse(&["max_time_skew=1500"]).unwrap().max_time_skew);
    assert!(parse(&["max_window=101"]).is_err());
    assert!(parse(&["max_time_skew=1501"]).is_err());
    assert!(parse(&["throttle_max=86401"]).is_err());
    let marks = (2 * skew + window + 1) * step + DEFAULT_MAX_CLOCK_LAG_SECS;
    assert_eq!(marks, 272_460);
    assert_eq!(RECORD_REACH_SECS, marks);
    const {
        assert!(RECORD_REACH_SECS >= MAX_THROTTLE_MAX_SECS);
        assert!(RECORD_REACH_SECS >= crate::gafile::LONGEST_RATE_LIMIT_SECS);
    }
    let redis = "state=redis://127.0.0.1";
    let ttl = |args: &[&str]| {
        let mut all = vec![redis];
        all.extend_from_slice(args);
        parse(&all).map(|o| (o.fleet.redis().expect("redis").ttl_secs, o.redis_ttl_raised))
    };
    // Shorter is raised to the figure (and said so), never refused: a value an earlier
    // release accepted must not deny every login after an upgrade. The boundary, and 0
    // (never expire).
    assert_eq!(ttl(&["redis_ttl=1"]), Ok((272_460, true)));
    assert_eq!(ttl(&["redis_ttl=86400"]), Ok((272_460, true)));
    assert_eq!(ttl(&["redis_ttl=272459"]), Ok((272_460, true)));
    assert_eq!(ttl(&["redis_ttl=272460"]), Ok((272_460, false)));
    assert_eq!(ttl(&["redis_ttl=0"]), Ok((0, false)));
    // Control: the default is untouched by default options.
    assert_eq!(ttl(&[]), Ok((crate::fleet::DEFAULT_TTL_SECS, false)));
    // A per-user ceiling refilling more slowly than that needs longer; its cap (1000
    // guesses a day apart) needs longer than the default, which then grows to it.
    let slow = ["ceiling_burst=200", "ceiling_interval=3600"];
    assert_eq!(parse(&slow).unwrap().min_redis_ttl_secs(), 720_000);
    assert_eq!(
        ttl(&[slow[0], slow[1], "redis_ttl=719999"]),
        Ok((720_000, true))
    );
    assert_eq!(
        ttl(&[slow[0], slow[1], "redis_ttl=720000"]),
        Ok((720_000, false))
    );
    let cap = ["ceiling_burst=1000", "ceiling_interval=86400"];
    assert_eq!(ttl(&cap), Ok((86_400_000, false)));
    assert_eq!(
        ttl(&[cap[0], cap[1], "redis_ttl=7776000"]),
        Ok((86_400_000, true))
    );
    // Without a Redis store the option is refused anyway; a local store has no TTL.
    assert!(parse(&["redis_ttl=3"]).is_err());
    assert_eq!(parse(&cap).unwrap().fleet.ttl_secs, None);
}

/// The log line for a refused pam.d line says which option and why, and an unknown one
/// is named: an admin reading "invalid" alone could not find the typo.
#[test]
fn option_errors_name_the_option_and_the_reason() {
    assert_eq!(
        parse(&["max_window=0"]).unwrap_err().to_string(),
        "invalid max_window= value: out of range"
    );
    assert_eq!(
        parse(&["nulok"]).unwrap_err().to_string(),
        "unrecognized option \"nulok\""
    );
}

/// Numbers of our own options are at most 20 digits (the longest `u64`), leading zeros
/// counted: a value is read as written or refused, never cut to fit.
#[test]
fn numbers_are_at_most_twenty_digits_with_their_leading_zeros() {
    let twenty = format!("{}1000", "0".repeat(16));
    let o = parse(&[&format!("lock_timeout={twenty}")]).unwrap();
    assert_eq!(o.lock_timeout_ms, 1000);
    for longer in [format!("0{twenty}"), format!("{}5", "0".repeat(30))] {
        assert_eq!(
            parse(&[&format!("lock_timeout={longer}")]),
            Err(bad("lock_timeout", "not a decimal number")),
            "{longer}"
        );
    }
}

/// `allowed_perm=` is octal digits only (no sign, which `from_str_radix` would take),
/// up to 07777; anything larger is out of range however many digits it has.
#[test]
fn allowed_perm_takes_octal_digits_only_up_to_07777() {
    let o = parse(&["allowed_perm=7777"]).unwrap();
    assert_eq!((o.allowed_perm, o.allowed_perm_masked), (0o755, true));
    for signed in [
        "allowed_perm=+600",
        "allowed_perm=0+600",
        "allowed_perm=-600",
    ] {
        assert_eq!(
            parse(&[signed]),
            Err(bad("allowed_perm", "not an octal number")),
            "{signed}"
        );
    }
    for large in [
        "allowed_perm=10000",
        "allowed_perm=777777",
        "allowed_perm=777777777777",
        "allowed_perm=0777777777777777777777",
    ] {
        assert_eq!(
            parse(&[large]),
            Err(bad("allowed_perm", "out of range")),
            "{large}"
        );
    }
}

/// A group option holding a `:` or a `/` is a typo (a group file line, a path), never
/// a group name: refused, so it cannot silently match nobody.
#[test]
fn group_options_refuse_colons_and_slashes() {
    for bad_group in [
        "skip_group=wheel:x",
        "skip_group=a/b",
        "require_group=staff:",
        "require_group=/etc/group",
    ] {
        assert!(parse(&[bad_group]).is_err(), "{bad_group}");
    }
    // Control: the same names without them.
    assert!(parse(&["skip_group=wheel", "require_group=staff"]).is_ok());
}

/// `state=local` is the local store and nothing else; an unknown store is refused, and
/// `state=local` after a shared store drops it.
#[test]
fn state_local_is_the_local_store_and_unknown_stores_are_refused() {
    assert_eq!(parse(&["state=local"]).unwrap().state, StateBackend::Local);
    let o = parse(&["state=etcds://127.0.0.1:2379", "state=local"]).unwrap();
    assert_eq!(o.state, StateBackend::Local);
    assert!(o.fleet.shared().is_none());
    for unknown_store in ["state=bogus", "state=", "state=LOCAL", "state=etcd"] {
        assert_eq!(
            parse(&[unknown_store]),
            Err(bad("state", "not a known state store")),
            "{unknown_store}"
        );
    }
    // Control: the shared stores are what they say.
    assert_eq!(
        parse(&["state=etcds://127.0.0.1:2379"]).unwrap().state,
        StateBackend::Etcd
    );
    assert_eq!(
        parse(&["state=redis://127.0.0.1"]).unwrap().state,
        StateBackend::Redis
    );
}

/// R28: each weakening option is named alone at the first value past its default, and
/// not at the default itself nor on the stricter side.
#[test]
fn each_weakening_is_named_from_the_first_value_past_its_default() {
    let weak = |args: &[&str]| parse(args).expect("parses").weakening();
    for (weaker, name, not_weaker) in [
        (
            "allowed_perm=0640",
            "allowed_perm",
            &["allowed_perm=0600", "allowed_perm=0400"],
        ),
        (
            "grace_period=1",
            "grace_period",
            &["grace_period=0", "grace_period="],
        ),
        (
            "max_window=18",
            "max_window",
            &["max_window=17", "max_window=1"],
        ),
        (
            "throttle_after=4",
            "throttle_after",
            &["throttle_after=3", "throttle_after=1"],
        ),
        (
            "throttle_max=599",
            "throttle_max",
            &["throttle_max=600", "throttle_max=86400"],
        ),
        (
            "ceiling_burst=11",
            "ceiling_burst",
            &["ceiling_burst=10", "ceiling_burst=1"],
        ),
        (
            "ceiling_interval=1799",
            "ceiling_interval",
            &["ceiling_interval=1800", "ceiling_interval=86400"],
        ),
    ] {
        assert_eq!(weak(&[weaker]), [name], "{weaker}");
        for control in not_weaker {
            assert!(weak(&[control]).is_empty(), "{control}");
        }
    }
    for flag in ["no_strict_owner", "allow_any_network"] {
        assert_eq!(weak(&[flag]), [flag]);
    }
    assert_eq!(
        weak(&["nullok", "nullok_missing_home"]),
        ["nullok_missing_home"]
    );
    assert!(weak(&["nullok"]).is_empty());
}
