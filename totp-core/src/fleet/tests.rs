use super::*;

fn apply_all(args: &[(&str, &str)]) -> Result<FleetOptions, OptionError> {
    let mut f = FleetOptions::default();
    for (n, v) in args {
        assert!(f.apply(n, v)?, "{n} not handled");
    }
    f.check()?;
    Ok(f)
}

#[test]
fn tcp_endpoints_parse_with_defaults() {
    let e = RedisEndpoint::parse("redis://10.0.0.5").unwrap();
    assert_eq!(e.url(), "redis://10.0.0.5:6379/0");
    assert!(!e.tls());
    let e = RedisEndpoint::parse("rediss://redis.example.org:6380/3").unwrap();
    assert_eq!(e.url(), "rediss://redis.example.org:6380/3");
    assert!(e.tls());
    let e = RedisEndpoint::parse("redis://[::1]:7000/").unwrap();
    assert_eq!(e.url(), "redis://[::1]:7000/0");
}

#[test]
fn unix_endpoints_parse_in_both_spellings() {
    for v in [
        "unix:/run/redis/redis.sock",
        "redis+unix:///run/redis/redis.sock",
    ] {
        let e = RedisEndpoint::parse(v).unwrap();
        assert_eq!(e.url(), "redis+unix:///run/redis/redis.sock?db=0");
    }
    let e = RedisEndpoint::parse("unix:/s.sock?db=2").unwrap();
    assert_eq!(e.db, 2);
}

#[test]
fn credentials_on_the_pam_line_are_refused() {
    for v in [
        "redis://user:pw@10.0.0.5",
        "redis://:pw@h:1",
        "rediss://u@h",
    ] {
        let err = RedisEndpoint::parse(v).unwrap_err();
        assert!(err.to_string().contains("credentials"), "{v}: {err}");
    }
}

#[test]
fn malformed_endpoints_are_refused() {
    for v in [
        "redis://",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:x",
        "redis://h/x",
        "redis://-h",
        "redis://h?db=1",
        "redis://h h",
        "redis://[zz]:1",
        "unix:relative.sock",
        "unix:/a/../b.sock",
        "unix:/s?x=1",
        "http://h",
    ] {
        assert!(RedisEndpoint::parse(v).is_err(), "{v} accepted");
    }
}

#[test]
fn defaults_fill_in_the_redis_settings() {
    let f = apply_all(&[("state", "redis://127.0.0.1:6379")]).unwrap();
    let r = f.redis().unwrap();
    assert_eq!(r.conn.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
    assert_eq!(r.conn.command_timeout_ms, DEFAULT_COMMAND_TIMEOUT_MS);
    assert_eq!(r.conn.prefix, DEFAULT_PREFIX);
    assert_eq!(r.wait_replicas, 0);
    assert_eq!(r.ttl_secs, DEFAULT_TTL_SECS);
    const { assert!(DEFAULT_CONNECT_TIMEOUT_MS + DEFAULT_COMMAND_TIMEOUT_MS < 3000) };
    assert_eq!(f.fallback, Fallback::Deny);
}

#[test]
fn local_state_values_are_not_ours() {
    let mut f = FleetOptions::default();
    assert_eq!(f.apply("state", "local"), Ok(false));
    assert_eq!(f.apply("secret", "/x"), Ok(false));
}

#[test]
fn redis_settings_without_a_redis_state_are_refused() {
    for (n, v) in [
        ("redis_timeout", "100"),
        ("redis_prefix", "a:"),
        ("redis_credentials", "/etc/c"),
        ("state_fallback", "local"),
        ("redis_plugin", "/usr/lib/p.so"),
    ] {
        assert!(apply_all(&[(n, v)]).is_err(), "{n} accepted alone");
    }
}

#[test]
fn a_ca_file_needs_tls() {
    assert!(apply_all(&[("state", "redis://h"), ("redis_ca_file", "/etc/ca.pem")]).is_err());
    assert!(apply_all(&[("state", "rediss://h"), ("redis_ca_file", "/etc/ca.pem")]).is_ok());
    let (c, k) = (
        ("redis_client_cert", "/etc/c.pem"),
        ("redis_client_key", "/etc/k.pem"),
    );
    assert!(apply_all(&[("state", "rediss://h"), c, k]).is_ok());
    assert!(apply_all(&[("state", "redis://h"), c, k]).is_err());
    assert!(apply_all(&[("state", "rediss://h"), c]).is_err());
    assert!(apply_all(&[("state", "rediss://h"), k]).is_err());
}

#[test]
fn bounds_are_enforced() {
    for (n, v) in [
        ("redis_timeout", "0"),
        ("redis_timeout", "5001"),
        ("redis_connect_timeout", "99999"),
        ("redis_wait", "65"),
        ("redis_prefix", ""),
        ("redis_prefix", "has space"),
        ("redis_credentials", "relative"),
        ("redis_credentials", "/etc/../x"),
        ("secret_command_timeout", "10001"),
        ("secret_command_user", "-x"),
        ("state_fallback", "allow"),
    ] {
        let mut f = FleetOptions::default();
        assert!(f.apply(n, v).is_err(), "{n}={v} accepted");
    }
}

#[test]
fn a_secret_command_needs_its_user() {
    assert!(apply_all(&[("secret_command", "/usr/lib/x")]).is_err());
    assert!(apply_all(&[("secret_command_user", "nobody")]).is_err());
    let f = apply_all(&[
        ("secret_command", "/usr/lib/x"),
        ("secret_command_user", "nobody"),
    ])
    .unwrap();
    let c = f.secret_command().unwrap();
    assert_eq!(c.timeout_ms, DEFAULT_COMMAND_LIMIT_MS);
    assert_eq!(c.user, "nobody");
}

#[test]
fn credentials_file_parses_and_hides_the_password() {
    let c = Credentials::parse(b"# fleet\nusername=pam\npassword= s3cr et\n").unwrap();
    assert_eq!(c.username.as_deref(), Some("pam"));
    assert_eq!(c.password.as_str(), " s3cr et");
    assert!(!format!("{c:?}").contains("s3cr"));
    let c = Credentials::parse(b"password=x\r\n").unwrap();
    assert_eq!(c.username, None);
    assert_eq!(c.password.as_str(), "x");
}

#[test]
fn bad_credentials_files_are_refused() {
    for b in [
        &b""[..],
        b"username=a\n",
        b"password=\n",
        b"password=a\npassword=b\n",
        b"pass=a\n",
        b"password=\xff\n",
    ] {
        assert!(Credentials::parse(b).is_err(), "{b:?} accepted");
    }
}

#[test]
fn plugin_config_round_trips() {
    let c = PluginConfig {
        url: "rediss://h:1/0".into(),
        ca_pem: Some(b"-----BEGIN CERTIFICATE-----\n".to_vec()),
        client_cert: Some(b"cert".to_vec()),
        client_key: Some(Zeroizing::new(b"secret key".to_vec())),
        username: Some("u".into()),
        password: Some(Zeroizing::new("p w".into())),
        connect_timeout_ms: 7,
        command_timeout_ms: 9,
        wait_replicas: 2,
        wait_timeout_ms: 11,
        install_functions: true,
        store_key: Some(b"pam_totp/store".to_vec()),
        prefetch: vec![
            b"pam_totp/store".to_vec(),
            b"pam_totp/user:alice".to_vec(),
            b"pam_totp/uid:1000".to_vec(),
        ],
    };
    assert_eq!(PluginConfig::decode(&c.encode()), Ok(c.clone()));
    assert!(!format!("{c:?}").contains("p w"));
    assert!(!format!("{c:?}").contains("secret key"));
    let minimal = PluginConfig {
        url: "redis://h:1/0".into(),
        ..PluginConfig::default()
    };
    assert_eq!(PluginConfig::decode(&minimal.encode()), Ok(minimal));
}

#[test]
fn plugin_config_refuses_what_encode_never_writes() {
    assert!(PluginConfig::decode(b"").is_err());
    assert!(PluginConfig::decode(&[1, 5, 0, 0, 0, b'a']).is_err());
    assert!(PluginConfig::decode(&[99, 0, 0, 0, 0]).is_err());
    assert!(PluginConfig::decode(&[5, 1, 0, 0, 0, 1]).is_err());
}

#[test]
fn prefetch_keys_are_bounded_in_number_and_length() {
    let with = |keys: Vec<Vec<u8>>| PluginConfig {
        url: "etcd://h:1".into(),
        prefetch: keys,
        ..PluginConfig::default()
    };
    let most = with(vec![b"k".to_vec(); MAX_PREFETCH_KEYS]);
    assert_eq!(PluginConfig::decode(&most.encode()), Ok(most.clone()));
    let longest = with(vec![vec![b'k'; MAX_PREFETCH_KEY_LEN]]);
    assert_eq!(PluginConfig::decode(&longest.encode()), Ok(longest.clone()));
    for bad in [
        with(vec![b"k".to_vec(); MAX_PREFETCH_KEYS + 1]),
        with(vec![vec![b'k'; MAX_PREFETCH_KEY_LEN + 1]]),
        with(vec![Vec::new()]),
    ] {
        assert!(PluginConfig::decode(&bad.encode()).is_err(), "{bad:?}");
    }
}

#[test]
fn the_fleet_parser_takes_exactly_the_fleet_names_of_the_option_list() {
    // The one list of option names is `options::OPTION_NAMES`; every name this parser
    // recognises must be in it (the man page test reads that list), and every fleet
    // name in it must reach this parser.
    let fleet_names = [
        "state_fallback",
        "redis_connect_timeout",
        "redis_timeout",
        "redis_prefix",
        "redis_credentials",
        "redis_ca_file",
        "redis_client_cert",
        "redis_client_key",
        "redis_wait",
        "redis_wait_timeout",
        "redis_ttl",
        "redis_plugin",
        "etcd_connect_timeout",
        "etcd_timeout",
        "etcd_prefix",
        "etcd_credentials",
        "etcd_ca_file",
        "etcd_cert_file",
        "etcd_key_file",
        "etcd_plugin",
        "secret_command",
        "secret_command_user",
        "secret_command_timeout",
    ];
    for n in crate::options::OPTION_NAMES {
        // "state" is shared with the local store; remote values are checked above.
        if *n == "state" {
            continue;
        }
        let mut o = FleetOptions::default();
        // Recognised = parsed (Ok(true)) or refused with this option's own error.
        let recognised = !matches!(o.apply(n, "x"), Ok(false));
        assert_eq!(recognised, fleet_names.contains(n), "{n}");
    }
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Credentials::parse(&bytes);
            let _ = PluginConfig::decode(&bytes);
            if let Ok(s) = std::str::from_utf8(&bytes) {
                let _ = RedisEndpoint::parse(s);
            }
        }

        #[test]
        fn accepted_endpoints_render_a_url_that_parses_back(
            host in "[a-z0-9][a-z0-9.-]{0,20}",
            port in 1u16..,
            db in 0u32..100,
            tls in any::<bool>(),
        ) {
            let scheme = if tls { "rediss" } else { "redis" };
            let v = format!("{scheme}://{host}:{port}/{db}");
            if let Ok(e) = RedisEndpoint::parse(&v) {
                prop_assert_eq!(RedisEndpoint::parse(&e.url()), Ok(e.clone()));
                prop_assert!(!e.url().contains('@'));
            }
        }

        #[test]
        fn plugin_config_round_trips_any_values(
            url in ".{0,40}",
            ca in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            user in proptest::option::of(".{0,20}"),
            pw in proptest::option::of(".{0,20}"),
            nums in any::<(u64, u64, u32, u64)>(),
            keys in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 1..=MAX_PREFETCH_KEY_LEN),
                0..=MAX_PREFETCH_KEYS,
            ),
        ) {
            let c = PluginConfig {
                url,
                ca_pem: ca,
                client_cert: None,
                client_key: None,
                username: user,
                password: pw.map(Zeroizing::new),
                connect_timeout_ms: nums.0,
                command_timeout_ms: nums.1,
                wait_replicas: nums.2,
                wait_timeout_ms: nums.3,
                install_functions: false,
                store_key: None,
                prefetch: keys,
            };
            prop_assert_eq!(PluginConfig::decode(&c.encode()), Ok(c.clone()));
        }
    }
}

#[test]
fn command_files_with_scratch_codes_or_hotp_need_a_shared_store() {
    let parse = |t: &str| crate::gafile::GaFile::parse(t.as_bytes()).expect("parse");
    let totp = parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n");
    assert_eq!(check_command_file(&totp, false), Ok(()));
    let scratch = parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n12345678\n");
    assert_eq!(
        check_command_file(&scratch, false),
        Err(CommandFileError::ScratchCodes)
    );
    let hotp = parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 1\n");
    assert_eq!(
        check_command_file(&hotp, false),
        Err(CommandFileError::Hotp)
    );
    for shared in [&totp, &scratch, &hotp] {
        assert_eq!(check_command_file(shared, true), Ok(()));
    }
    let bare = parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n");
    for shared in [false, true] {
        assert_eq!(
            check_command_file(&bare, shared),
            Err(CommandFileError::NoCode)
        );
    }
    let scratch_only = parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n12345678\n");
    assert_eq!(check_command_file(&scratch_only, true), Ok(()));
}

#[test]
fn sentinel_endpoints_parse_and_round_trip_through_the_plugin_url() {
    let e = RedisEndpoint::parse("redis+sentinel://10.0.0.1:26380,10.0.0.2,[::1]:5/fleet-1")
        .expect("sentinel");
    assert_eq!(
        e.url(),
        "redis+sentinel://10.0.0.1:26380,10.0.0.2:26379,[::1]:5/fleet-1/0"
    );
    assert!(!e.tls());
    let t = RedisEndpoint::parse("rediss+sentinel://h:1/m/3").expect("tls sentinel");
    assert!(t.tls());
    assert_eq!(t.db, 3);
    assert!(RedisEndpoint::is_remote("rediss+sentinel://h/m"));
    for bad in [
        "redis+sentinel://h:1",
        "redis+sentinel://h:1/",
        "redis+sentinel://u:p@h:1/m",
        "redis+sentinel://h:1/m?x=1",
        "redis+sentinel://h:1/m/x",
        "redis+sentinel://h:1/m/1/2",
        "redis+sentinel://h:0/m",
        "redis+sentinel://,/m",
        "redis+sentinel://a,b,c,d,e,f,g,h,i/m",
        "redis+sentinel://h/na me",
    ] {
        assert!(RedisEndpoint::parse(bad).is_err(), "{bad} accepted");
    }
}

/// `redis_prefix=` and `etcd_prefix=` take the same values (one check, `key_prefix`).
#[test]
fn both_key_prefixes_take_the_same_values() {
    let long = "p".repeat(65);
    for (v, ok) in [
        ("pam_totp:", true),
        ("a/b-c_d.e", true),
        (&"p".repeat(64)[..], true),
        ("", false),
        (&long[..], false),
        ("a=b", false),
        ("a b", false),
        ("caf\u{e9}", false),
        ("a\tb", false),
    ] {
        let mut f = FleetOptions::default();
        assert_eq!(f.apply("redis_prefix", v).is_ok(), ok, "redis_prefix={v:?}");
        let mut f = FleetOptions::default();
        assert_eq!(f.apply("etcd_prefix", v).is_ok(), ok, "etcd_prefix={v:?}");
    }
}
