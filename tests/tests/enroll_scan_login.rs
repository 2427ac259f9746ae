//! What a phone gets from `totp-enroll` logs in: the QR image is decoded with zbarimg,
//! the codes are computed from the decoded URI alone with oathtool (as an app that
//! honours every parameter would), and the module accepts them through the real libpam.
//! The code an app shows when it ignores `algorithm`, `digits` or `period` is refused,
//! which is why the tool names those settings next to the secret.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use system_tests::{
    Driver, Stack, TestUser, built, now, oathtool_hotp, oathtool_totp, require_root, require_tool,
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
