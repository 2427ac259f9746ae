//! What a phone gets from `totp-enroll` logs in: the QR image is decoded with zbarimg,
//! the codes are computed from the decoded URI alone with oathtool (as an app that
//! honours every parameter would), and the module accepts them through the real libpam.
//! The code an app shows when it ignores `algorithm`, `digits` or `period` is refused,
//! which is why the tool names those settings next to the secret.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use system_tests::{
    Driver, Stack, TestUser, built, now, oathtool_hotp, oathtool_totp, private_tmp, require_root,
    require_tool,
};

fn enroll(args: &[&str]) -> Output {
    Command::new(&built().enroll)
        .args(["-D", "-W", "-u", "-C", "-f", "--non-interactive", "--uri"])
        .args(args)
        .output()
        .expect("run totp-enroll")
}

/// The URI text in a zbarimg-readable image, `None` if it finds no code.
fn zbar(png: &std::path::Path) -> Option<String> {
    let out = Command::new("zbarimg")
        .args(["-q", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(png)
        .output()
        .expect("zbarimg runs");
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_owned()
    })
}

/// The query parameters of an otpauth URI (none of ours needs percent-decoding).
fn params(uri: &str) -> BTreeMap<String, String> {
    let (_, query) = uri.split_once('?').expect("URI has a query");
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Enrolls `user` with `extra`, and returns the URI decoded from the QR image after
/// checking it is, byte for byte, the URI the tool printed.
fn enroll_and_scan(user: &TestUser, extra: &[&str]) -> String {
    // With --user the image is written as the user: into their home.
    let png = user.home.join("q.png");
    let png_s = png.to_str().expect("utf-8");
    let args = [&["--user", &user.name, "--qr-png", png_s][..], extra].concat();
    let out = enroll(&args);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed = stdout
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .expect("--uri prints the URI");
    let scanned = zbar(&png).expect("zbarimg reads the QR image");
    assert_eq!(scanned, printed, "the QR code is the printed URI");
    scanned
}

fn tools(test: &str) -> bool {
    require_root(test) && require_tool(test, "oathtool") && require_tool(test, "zbarimg")
}

#[test]
fn totp_codes_from_the_scanned_uri_log_in_and_an_app_ignoring_its_settings_does_not() {
    let test = "totp_codes_from_the_scanned_uri_log_in";
    if !tools(test) {
        return;
    }
    let stack = Stack::with_module("sshd", "");
    for (tag, extra) in [
        ("scd", &[][..]),
        (
            "s25",
            &["--algorithm", "SHA256", "--digits", "8", "-S", "60"][..],
        ),
        ("s57", &["--algorithm", "sha512", "--digits", "7"][..]),
        ("s15", &["-S", "15"][..]),
    ] {
        let user = TestUser::create(tag);
        let uri = enroll_and_scan(&user, &[&["-t"][..], extra].concat());
        assert!(uri.starts_with("otpauth://totp/"), "{uri}");
        let p = params(&uri);
        let secret = &p["secret"];
        assert!(!secret.contains('='), "unpadded base32: {uri}");
        let alg = p.get("algorithm").map_or("SHA1", String::as_str);
        let digits: u8 = p
            .get("digits")
            .map_or(Ok(6), |d| d.parse())
            .expect("digits");
        let period: u64 = p
            .get("period")
            .map_or(Ok(30), |s| s.parse())
            .expect("period");
        let default = extra.is_empty();
        assert_eq!(
            default,
            !(p.contains_key("algorithm") || p.contains_key("digits") || p.contains_key("period")),
            "parameters present exactly when not the default: {uri}"
        );

        // Mid-step, so the code an ignoring app shows is not also this step's code
        // by the accident of a shared boundary.
        let t = now() / 60 * 60 + 7;
        let code = oathtool_totp(secret, t, period, digits, alg);
        if !default {
            let ignored = oathtool_totp(secret, t, 30, 6, "sha1");
            let r = Driver::new(&stack, "sshd", &user.name)
                .answer(&ignored)
                .at(t)
                .run();
            assert_eq!(r.result, "PAM_AUTH_ERR", "{tag}: an app ignoring {uri}");
        } else {
            let wrong = oathtool_totp(secret, t + 3600, period, digits, alg);
            let r = Driver::new(&stack, "sshd", &user.name)
                .answer(&wrong)
                .at(t)
                .run();
            assert_eq!(r.result, "PAM_AUTH_ERR", "{tag}: a code of another hour");
        }
        let r = Driver::new(&stack, "sshd", &user.name)
            .answer(&code)
            .at(t)
            .run();
        assert_eq!(r.result, "PAM_SUCCESS", "{tag}: {uri} {r:?}");
    }
}

#[test]
fn hotp_codes_from_the_scanned_uri_log_in_from_its_counter() {
    let test = "hotp_codes_from_the_scanned_uri_log_in";
    if !tools(test) {
        return;
    }
    let stack = Stack::with_module("sshd", "");
    let user = TestUser::create("hsc");
    let out = {
        let png = user.home.join("q.png");
        let out = Command::new(&built().enroll)
            .args(["-c", "-W", "-u", "-f", "--non-interactive", "--uri"])
            .args(["--user", &user.name, "--qr-png"])
            .arg(&png)
            .output()
            .expect("run totp-enroll");
        assert!(out.status.success(), "{out:?}");
        let scanned = zbar(&png).expect("zbarimg reads the QR image");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(stdout.lines().any(|l| l == scanned), "{stdout}");
        scanned
    };
    let p = params(&out);
    assert!(out.starts_with("otpauth://hotp/"), "{out}");
    let counter: u64 = p["counter"].parse().expect("counter");
    let secret = &p["secret"];
    // Window 1 (-W): the code of the URI's counter (the file's next one) is due now.
    let code = oathtool_hotp(secret, counter);
    let r = Driver::new(&stack, "sshd", &user.name).answer(&code).run();
    assert_eq!(r.result, "PAM_SUCCESS", "{out} {r:?}");
    // Control: the same code again is refused, so the harness does tell them apart.
    let r = Driver::new(&stack, "sshd", &user.name).answer(&code).run();
    assert_eq!(r.result, "PAM_AUTH_ERR", "{r:?}");
    let r = Driver::new(&stack, "sshd", &user.name)
        .answer(&oathtool_hotp(secret, counter + 1))
        .run();
    assert_eq!(r.result, "PAM_SUCCESS", "the next counter: {r:?}");
}

/// The option lines (`" ...`) of a secret file, in order.
fn option_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('"'))
        .map(str::to_owned)
        .collect()
}

/// A rollback to GA locks nobody out: for GA's own non-interactive flag sets,
/// totp-enroll writes the option lines google-authenticator (the real tool) writes, and
/// GA's module logs the user in with a code oathtool computes from the written secret.
/// Controls: GA refuses a wrong code, and with -d the same code twice.
#[test]
fn ga_flag_sets_write_what_the_ga_tool_writes_and_ga_logs_in() {
    let test = "ga_flag_sets_write_what_the_ga_tool_writes_and_ga_logs_in";
    if !tools(test) || !require_tool(test, "google-authenticator") {
        return;
    }
    let Some(ga) = system_tests::ga_module() else {
        system_tests::skip(test, "GA's pam_google_authenticator.so");
        return;
    };
    let stack = Stack::new();
    stack.service("sshd", &format!("auth required {}\n", ga.display()));
    let dir = tempfile::tempdir_in(private_tmp()).expect("tmp");
    for (tag, flags) in [
        ("gr1", &["-t", "-d", "-W", "-u"][..]),
        (
            "gr2",
            &["-t", "-D", "-w", "17", "-r", "3", "-R", "30", "-S", "60"],
        ),
        (
            "gr3",
            &["-t", "-d", "-w", "5", "-r", "3", "-R", "20", "-e", "0"],
        ),
        ("gr4", &["-c", "-W", "-u", "-e", "10"]),
        ("gr5", &["-c", "-w", "7", "-r", "10", "-R", "600"]),
    ] {
        let ga_file = dir.path().join(tag);
        let out = Command::new("google-authenticator")
            .args(flags)
            .args(["-f", "-C", "-q", "-s"])
            .arg(&ga_file)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run google-authenticator");
        assert!(out.status.success(), "{out:?}");
        let theirs = std::fs::read_to_string(&ga_file).expect("GA's tool wrote");

        let user = TestUser::create(tag);
        let out = Command::new(&built().enroll)
            .args(flags)
            .args(["-f", "-C", "-q", "--non-interactive", "--user", &user.name])
            .output()
            .expect("run totp-enroll");
        assert!(out.status.success(), "{out:?}");
        let ours = std::fs::read_to_string(user.secret_path()).expect("totp-enroll wrote");
        assert_eq!(option_lines(&ours), option_lines(&theirs), "{flags:?}");
        assert_eq!(ours.lines().count(), theirs.lines().count(), "{flags:?}");

        let secret = ours.lines().next().expect("secret line").to_owned();
        let totp = flags.contains(&"-t");
        let step = if flags.contains(&"60") { 60 } else { 30 };
        let t = now() / 60 * 60 + 7;
        let code = if totp {
            oathtool_totp(&secret, t, step, 6, "sha1")
        } else {
            oathtool_hotp(&secret, 1)
        };
        let wrong = if totp {
            oathtool_totp(&secret, t + 3600, step, 6, "sha1")
        } else {
            oathtool_hotp(&secret, 1000)
        };
        let login = |answer: &str| {
            Driver::new(&stack, "sshd", &user.name)
                .answer(answer)
                .at(t)
                .run()
        };
        let r = login(&wrong);
        assert_eq!(r.result, "PAM_AUTH_ERR", "{flags:?}: a wrong code {r:?}");
        if !totp {
            // GA moves the counter on after a failure: the next code is now due.
            let r = login(&oathtool_hotp(&secret, 2));
            assert_eq!(r.result, "PAM_SUCCESS", "{flags:?}: {r:?}");
            continue;
        }
        let r = login(&code);
        assert_eq!(r.result, "PAM_SUCCESS", "{flags:?}: {r:?}");
        if flags.contains(&"-d") {
            let r = login(&code);
            assert_eq!(r.result, "PAM_AUTH_ERR", "{flags:?}: replay {r:?}");
        }
    }
}

/// Enrolls `user` for HOTP with `window` flags, and returns the URI's counter and
/// secret as an app reads them.
fn enroll_hotp(user: &TestUser, window: &[&str]) -> (u64, String) {
    let out = Command::new(&built().enroll)
        .args([
            "-c",
            "-u",
            "-f",
            "--non-interactive",
            "--uri",
            "--user",
            &user.name,
        ])
        .args(window)
        .output()
        .expect("run totp-enroll");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let uri = stdout
        .lines()
        .find(|l| l.starts_with("otpauth://hotp/"))
        .expect("URI");
    let p = params(uri);
    (p["counter"].parse().expect("counter"), p["secret"].clone())
}

/// Google Authenticator's apps count up before they compute, so their first code is
/// that of the counter after the URI's; others show the URI's counter first. A window
/// of 2 accepts both readings, as the man page says; -W (a window of 1 for HOTP)
/// refuses the first of them. Control: -W accepts the other reading.
#[test]
fn hotp_apps_that_count_up_first_log_in_with_a_window_of_two() {
    let test = "hotp_apps_that_count_up_first_log_in_with_a_window_of_two";
    if !tools(test) {
        return;
    }
    let stack = Stack::with_module("sshd", "");
    let login = |user: &TestUser, code: &str| {
        Driver::new(&stack, "sshd", &user.name)
            .answer(code)
            .run()
            .result
    };
    for (tag, next) in [("hw2", false), ("hw3", true)] {
        let user = TestUser::create(tag);
        let (counter, secret) = enroll_hotp(&user, &["-w", "2"]);
        let first = oathtool_hotp(&secret, if next { counter + 1 } else { counter });
        assert_eq!(login(&user, &first), "PAM_SUCCESS", "{tag}");
    }
    let user = TestUser::create("hw1");
    let (counter, secret) = enroll_hotp(&user, &["-W"]);
    assert_eq!(
        login(&user, &oathtool_hotp(&secret, counter + 1)),
        "PAM_AUTH_ERR"
    );
    let user = TestUser::create("hw0");
    let (counter, secret) = enroll_hotp(&user, &["-W"]);
    assert_eq!(
        login(&user, &oathtool_hotp(&secret, counter)),
        "PAM_SUCCESS"
    );
}
