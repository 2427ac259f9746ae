//! CLI behaviour: help and error goldens, JSON, the written file, safety rules.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use totp_core::gafile::GaFile;
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::uri::{KeyUri, Kind};

// ---------------------------------------------------------------------------
// Goldens

#[test]
fn help_texts_match_golden() {
    for (name, args) in [
        ("help.txt", &["--help"][..]),
        ("help-short.txt", &["-h"]),
        ("check-help.txt", &["check", "--help"]),
        ("explain-help.txt", &["explain", "--help"]),
        ("resync-help.txt", &["resync", "--help"]),
    ] {
        let r = run(args);
        assert_eq!(r.code, 0, "{args:?}");
        golden(name, &r.stdout);
    }
}

#[test]
fn usage_errors_match_golden_and_exit_2() {
    let cases: [(&str, &[&str]); 9] = [
        ("err-t-and-c.txt", &["-t", "-c"]),
        ("err-c-with-d.txt", &["-c", "-d"]),
        ("err-d-without-t.txt", &["-D"]),
        ("err-r-without-R.txt", &["-r", "3"]),
        ("err-u-with-r.txt", &["-u", "-r", "3", "-R", "30"]),
        ("err-bad-qr-mode.txt", &["-Q", "BLINK"]),
        ("err-window-range.txt", &["-w", "22"]),
        ("err-duplicate-label.txt", &["-l", "a", "-l", "b"]),
        (
            "err-non-interactive-missing.txt",
            &["--non-interactive", "-s", "unused"],
        ),
    ];
    for (name, args) in cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        golden(name, &r.stderr);
    }
}

#[test]
fn json_output_matches_golden_shape() {
    let dir = tempdir();
    let v = enroll_json(
        dir.path(),
        "secret",
        &[
            "-t",
            "-d",
            "-W",
            "-r",
            "3",
            "-R",
            "30",
            "-l",
            "alice@example.org",
            "-i",
            "Example Co",
        ],
    );
    golden("enroll.json", &normalise_json(v, dir.path()));

    let v = enroll_json(
        dir.path(),
        "hotp",
        &[
            "-c", "-w", "5", "-u", "-e", "0", "-l", "bob", "-i", "", "--digits", "8",
        ],
    );
    golden("enroll-hotp.json", &normalise_json(v, dir.path()));

    let r = run_in(
        dir.path(),
        &[
            "--json",
            "--regenerate-scratch-codes",
            "-e",
            "2",
            "-s",
            "secret",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    golden("regenerate.json", &normalise_json(v, dir.path()));
}

#[test]
fn json_errors_are_one_object_on_stdout() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &["--json", "--non-interactive", "-t", "-s", "x"],
        None,
    );
    assert_eq!(r.code, 2);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["error"]["kind"], "missing-answer");
    assert_eq!(v["error"]["exit_code"], 2);
    golden("err-json-missing.json", &r.stdout);
}

/// Replaces the random and machine-specific parts with placeholders.
fn normalise_json(mut v: serde_json::Value, dir: &Path) -> String {
    let secret = v["secret"].as_str().map(str::to_owned);
    if let Some(secret) = &secret {
        assert_eq!(secret.len(), 32, "160-bit secret");
        v["secret"] = "<SECRET>".into();
        let uri = v["uri"].as_str().expect("uri").replace(secret, "<SECRET>");
        v["uri"] = uri.into();
    }
    if let Some(codes) = v["scratch_codes"].as_array_mut() {
        for c in codes {
            let s = c.as_str().expect("string code");
            assert!(s.len() == 8 && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit()));
            *c = "<CODE>".into();
        }
    }
    let path = v["path"].as_str().expect("path");
    let rel = Path::new(path)
        .strip_prefix(dir)
        .expect("inside the temp dir");
    v["path"] = format!("<DIR>/{}", rel.display()).into();
    let user = v["user"].as_str().expect("user").to_owned();
    assert!(!user.is_empty());
    v["user"] = "<USER>".into();
    serde_json::to_string_pretty(&v).expect("json") + "\n"
}

// ---------------------------------------------------------------------------
// The written file

#[test]
fn ga_flag_set_writes_ga_tool_layout() {
    let dir = tempdir();
    let mut args = GA_FLAGS.to_vec();
    // -q: a pipe sees nothing, so writing needs an explicit "unseen on purpose".
    args.extend(["-q", "-s", "ga"]);
    let r = run_in(dir.path(), &args, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(dir.path().join("ga")).expect("file written");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(lines[0].len(), 32);
    assert!(
        lines[0]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    );
    assert_eq!(
        &lines[1..6],
        &[
            "\" RATE_LIMIT 3 30",
            "\" WINDOW_SIZE 3",
            "\" STEP_SIZE 30",
            "\" DISALLOW_REUSE",
            "\" TOTP_AUTH",
        ]
    );
    for code in &lines[6..] {
        let n: u32 = code.parse().expect("numeric scratch code");
        assert!((10_000_000..=99_999_999).contains(&n));
    }
    assert!(text.ends_with('\n'));
    let md = std::fs::metadata(dir.path().join("ga")).expect("stat");
    assert_eq!(md.permissions().mode() & 0o7777, 0o600);
    let parsed = GaFile::parse(text.as_bytes()).expect("pam_totp parses it");
    assert_eq!(parsed.secret().expect("secret").len(), 20);
}

#[test]
fn hotp_file_starts_at_counter_one() {
    let dir = tempdir();
    let v = enroll_json(dir.path(), "h", &["-c", "-W", "-u"]);
    let text = std::fs::read_to_string(dir.path().join("h")).expect("written");
    assert!(text.contains("\" HOTP_COUNTER 1\n"), "{text}");
    assert!(text.contains("\" WINDOW_SIZE 1\n"), "{text}");
    assert!(!text.contains("TOTP_AUTH"));
    assert!(v["uri"].as_str().expect("uri").ends_with("&counter=1"));
}

#[test]
fn algorithm_and_digits_go_into_the_file_and_the_uri() {
    let dir = tempdir();
    let v = enroll_json(
        dir.path(),
        "s",
        &[
            "-t",
            "-D",
            "-W",
            "-u",
            "--algorithm",
            "sha512",
            "--digits",
            "8",
            "-S",
            "60",
        ],
    );
    let uri = v["uri"].as_str().expect("uri");
    assert!(
        uri.contains("&algorithm=SHA512&digits=8&period=60"),
        "{uri}"
    );
    let text = std::fs::read(dir.path().join("s")).expect("written");
    let cfg = GaFile::parse(&text)
        .expect("parse")
        .config()
        .expect("config");
    assert_eq!(cfg.algorithm, Algorithm::Sha512);
    assert_eq!(cfg.digits, Digits::EIGHT);
    assert_eq!(cfg.step, Some(60));
}

#[test]
fn uri_matches_the_file_secret_and_the_json() {
    let dir = tempdir();
    let v = enroll_json(dir.path(), "s", &["-t", "-D", "-W", "-u"]);
    let uri = v["uri"].as_str().expect("uri");
    let key = KeyUri::parse(uri).expect("our URI parses");
    let file = GaFile::parse(&std::fs::read(dir.path().join("s")).expect("read")).expect("parse");
    assert_eq!(key.secret(), file.secret().expect("secret"));
    assert_eq!(key.secret_base32(), v["secret"].as_str().expect("secret"));
    let codes: Vec<u32> = file.scratch_codes().to_vec();
    let json_codes: Vec<u32> = v["scratch_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("str").parse().expect("num"))
        .collect();
    assert_eq!(codes, json_codes);
    assert_eq!(codes.len(), 5, "five scratch codes by default");
}

#[test]
fn default_label_is_user_at_host_and_issuer_is_host() {
    let dir = tempdir();
    let v = enroll_json(dir.path(), "s", &["-t", "-D", "-W", "-u"]);
    let host = v["issuer"].as_str().expect("issuer").to_owned();
    assert_eq!(
        v["label"],
        format!("{}@{host}", v["user"].as_str().expect("user"))
    );
    let key = KeyUri::parse(v["uri"].as_str().expect("uri")).expect("parse");
    assert_eq!(key.issuer, host);
    assert_eq!(key.kind, Kind::Totp { period: 30 });
}

#[test]
fn special_characters_in_label_and_issuer_are_percent_encoded() {
    let dir = tempdir();
    let v = enroll_json(
        dir.path(),
        "s",
        &[
            "-t",
            "-D",
            "-W",
            "-u",
            "-l",
            "a b@c:d&e/é",
            "-i",
            "Ex/Co & Sons",
        ],
    );
    let uri = v["uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("otpauth://totp/Ex%2FCo%20%26%20Sons:a%20b%40c%3Ad%26e%2F%C3%A9?secret="),
        "{uri}"
    );
    assert!(uri.ends_with("&issuer=Ex%2FCo%20%26%20Sons"), "{uri}");
    let key = KeyUri::parse(uri).expect("parse");
    assert_eq!(key.account, "a b@c:d&e/é");
    assert_eq!(key.issuer, "Ex/Co & Sons");
}

/// The Key Uri Format forbids a colon in the issuer (apps split the label
/// `issuer:account` at the first one): `-i A:B` is a usage error and nothing is
/// written. A label given as google-authenticator's tool took it, `Acme:alice` with
/// `-i Acme`, is written `Acme:alice` (it was `Acme:Acme%3Aalice`, shown as
/// "Acme:alice" under "Acme"); the QR image holds the same URI. Control: a label whose
/// prefix is not the issuer keeps its colon, encoded.
#[test]
fn a_colon_in_the_issuer_is_refused_and_a_label_repeating_it_loses_the_prefix() {
    let dir = tempdir();
    let base = ["-t", "-D", "-W", "-u", "--non-interactive", "--uri"];
    let r = run_in(
        dir.path(),
        &[
            &base[..],
            &["-l", "alice", "-i", "A:B", "-s", "s", "--qr-png", "q.png"],
        ]
        .concat(),
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("colon"), "{}", r.stderr);
    assert!(!r.stdout.contains("otpauth://"), "{}", r.stdout);
    assert!(!dir.path().join("s").exists() && !dir.path().join("q.png").exists());

    for (label, want_label, want_account) in [
        ("Acme:alice", "Acme:alice", "alice"),
        ("Other:alice", "Acme:Other%3Aalice", "Other:alice"),
    ] {
        let _ = std::fs::remove_file(dir.path().join("s"));
        let _ = std::fs::remove_file(dir.path().join("q.png"));
        let r = run_in(
            dir.path(),
            &[
                &base[..],
                &["-l", label, "-i", "Acme", "-s", "s", "--qr-png", "q.png"],
            ]
            .concat(),
            None,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let uri = r
            .stdout
            .lines()
            .find(|l| l.starts_with("otpauth://"))
            .expect("--uri prints the URI");
        assert!(
            uri.starts_with(&format!("otpauth://totp/{want_label}?secret=")),
            "{uri}"
        );
        let key = KeyUri::parse(uri).expect("parses");
        assert_eq!(
            (key.issuer.as_str(), key.account.as_str()),
            ("Acme", want_account)
        );
        if have_tool("zbarimg") {
            let out = std::process::Command::new("zbarimg")
                .args(["-q", "--raw", "-Sdisable", "-Sqrcode.enable"])
                .arg(dir.path().join("q.png"))
                .output()
                .expect("zbarimg runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), uri);
        }
    }
}

#[test]
fn print_uri_equals_json_uri_for_the_same_file() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-q", "--uri", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let uri = r.stdout.trim();
    let key = KeyUri::parse(uri).expect("parses");
    let file = GaFile::parse(&std::fs::read(dir.path().join("s")).expect("read")).expect("parse");
    assert_eq!(key.secret(), file.secret().expect("secret"));
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "only the URI on stdout with -q"
    );
}

// ---------------------------------------------------------------------------
// What is shown where

#[test]
fn a_secret_nobody_would_see_is_refused_and_nothing_is_written() {
    let dir = tempdir();
    for extra in [&[][..], &["-f"], &["-f", "-C"]] {
        let mut args = vec!["-t", "-D", "-W", "-u", "--non-interactive", "-s", "s"];
        args.extend_from_slice(extra);
        let r = run_in(dir.path(), &args, None);
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert!(
            !dir.path().join("s").exists(),
            "{extra:?}: the file must be absent"
        );
        for flag in ["--json", "--uri", "-Q MODE", "--qr-png", "--qr-svg", "-q"] {
            assert!(r.stderr.contains(flag), "{flag} not named: {}", r.stderr);
        }
        assert_eq!(r.stdout, "", "nothing shown");
        assert!(
            std::fs::read_dir(dir.path()).expect("ls").next().is_none(),
            "no temporary or QR files left"
        );
    }
}

#[test]
fn flags_that_show_or_export_the_secret_still_write_on_a_pipe() {
    let dir = tempdir();
    let base = ["-t", "-D", "-W", "-u", "--non-interactive", "-f", "-C"];
    let png = dir.path().join("qr.png");
    let svg = dir.path().join("qr.svg");
    let png = png.to_str().expect("utf-8");
    let svg = svg.to_str().expect("utf-8");
    for (n, extra) in [
        &["--json"][..],
        &["--uri"],
        &["-Q", "NONE"],
        &["--qr-png", png],
        &["--qr-svg", svg],
        &["-q"],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("s{n}");
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.extend(["-s", &name]);
        let r = run_in(dir.path(), &args, None);
        assert_eq!(r.code, 0, "{extra:?}: {}", r.stderr);
        assert!(dir.path().join(&name).exists(), "{extra:?}: written");
    }
}

#[test]
fn nothing_secret_reaches_a_pipe_unless_asked() {
    let dir = tempdir();
    let png = dir.path().join("qr.png");
    let r = run_in(
        dir.path(),
        &[
            "-t",
            "-D",
            "-W",
            "-u",
            "--non-interactive",
            "--qr-png",
            png.to_str().expect("utf-8"),
            "-s",
            "s",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = std::fs::read_to_string(dir.path().join("s")).expect("written");
    let secret = file.lines().next().expect("line 1");
    let scratch: Vec<&str> = file
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('"'))
        .collect();
    // The default enrolment has scratch codes: the check below looks at some.
    assert!(!scratch.is_empty(), "no scratch codes written: {file}");
    for line in scratch {
        assert!(
            !r.stdout.contains(line) && !r.stderr.contains(line),
            "scratch code shown"
        );
    }
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    assert!(
        !r.stdout.contains('\u{2588}') && !r.stdout.contains('\u{2580}'),
        "no QR"
    );
    assert!(r.stderr.contains("not a terminal"), "{}", r.stderr);
}

#[test]
fn explicit_qr_mode_shows_everything_on_a_pipe() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-C", "-Q", "NONE", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = std::fs::read_to_string(dir.path().join("s")).expect("written");
    let secret = file.lines().next().expect("line 1");
    assert!(
        r.stdout
            .contains(&format!("Your new secret key is: {secret}\n"))
    );
    assert!(r.stdout.contains("Your emergency scratch codes are:\n"));
    assert!(r.stdout.contains("Your current verification code is "));
}

#[test]
fn quiet_shows_nothing_even_with_a_qr_mode() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-q", "-Q", "UTF8", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "");
}

// ---------------------------------------------------------------------------
// Questions

#[test]
fn non_interactive_mode_names_every_missing_flag_and_writes_nothing() {
    let dir = tempdir();
    let r = run_in(dir.path(), &["--non-interactive", "-t", "-s", "s"], None);
    assert_eq!(r.code, 2);
    for flag in [
        "-d/--disallow-reuse",
        "-w/--window-size",
        "-u/--no-rate-limit",
    ] {
        assert!(r.stderr.contains(flag), "{flag}: {}", r.stderr);
    }
    assert!(!dir.path().join("s").exists());
}

#[test]
fn answers_can_be_piped_like_for_google_authenticator() {
    let dir = tempdir();
    // Time-based? Update? Disallow reuse? Wider window? Rate limit?
    // -Q NONE shows the secret as text on the pipe, so the file may be written.
    let r = run_in(
        dir.path(),
        &["-C", "-Q", "NONE", "-s", "s"],
        Some("y\ny\ny\ny\ny\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(dir.path().join("s")).expect("written");
    for line in [
        "\" RATE_LIMIT 3 30\n",
        "\" WINDOW_SIZE 17\n",
        "\" DISALLOW_REUSE\n",
        "\" TOTP_AUTH\n",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
    assert!(r.stdout.contains("(y/n)"));

    let r = run_in(
        dir.path(),
        &["-C", "-Q", "NONE", "-s", "n"],
        Some("maybe\ny\ny\nn\nn\nn\n"),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(dir.path().join("n")).expect("written");
    assert!(
        !text.contains("RATE_LIMIT") && !text.contains("WINDOW_SIZE"),
        "{text}"
    );
    assert!(!text.contains("DISALLOW_REUSE"));
}

#[test]
fn end_of_input_fails_naming_the_flag() {
    let dir = tempdir();
    let r = run_in(dir.path(), &["-C", "-q", "-s", "s"], Some("y\ny\n"));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("-d/--disallow-reuse or -D/--allow-reuse"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("s").exists());
}

#[test]
fn declining_to_save_writes_nothing_and_exits_0() {
    let dir = tempdir();
    let r = run_in(dir.path(), &["-t", "-C", "-q", "-s", "s"], Some("n\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!dir.path().join("s").exists());
}

#[test]
fn wrong_confirmation_code_never_reveals_the_right_one() {
    let dir = tempdir();
    // -Q NONE shows the secret on a pipe, so the confirmation is asked. The
    // wrong answers cannot match by chance: wrong length or not digits.
    let input = "12345\nabcdef\n1234567\n-1\n";
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-Q", "NONE", "-s", "s"],
        Some(input),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.matches("Code incorrect. Try again.").count(),
        3,
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Code confirmation skipped"));
    let secret = secret_from_output(&r.stdout);
    let now = unix_now();
    for t in [
        now - 90,
        now - 60,
        now - 30,
        now,
        now + 30,
        now + 60,
        now + 90,
    ] {
        let code = otp::format_code(
            otp::totp(&secret, t, 30, Algorithm::Sha1, Digits::SIX).expect("code"),
            Digits::SIX,
        );
        assert!(
            !r.stdout.contains(code.as_str()) && !r.stderr.contains(code.as_str()),
            "a valid code appeared in the output"
        );
    }
}

#[test]
fn correct_confirmation_code_is_accepted() {
    use std::io::{Read, Write};
    let dir = tempdir();
    let (mut child, mut stdout, mut seen) = start_up_to_the_confirmation(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-Q", "NONE", "-s", "s"],
    );
    let secret = secret_from_output(&String::from_utf8_lossy(&seen));
    let code = otp::format_code(
        otp::totp(&secret, unix_now(), 30, Algorithm::Sha1, Digits::SIX).expect("code"),
        Digits::SIX,
    );
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\ny\n", *code).as_bytes())
        .expect("answer");
    drop(stdin);
    stdout.read_to_end(&mut seen).expect("rest");
    assert!(child.wait().expect("wait").success());
    let out = String::from_utf8_lossy(&seen);
    assert!(out.contains("Code confirmed"), "{out}");
    assert!(dir.path().join("s").exists());
}

/// An app that reads only the secret from the URI (or some of its settings) shows
/// codes of SHA1, 6 digits or 30 s; the confirmation must say so and write nothing,
/// rather than let the user skip and keep a phone that never logs in. The old
/// enrolment (here under -f) stays as it was.
#[test]
fn a_confirmation_code_from_an_app_that_ignored_the_uri_settings_is_named_and_nothing_is_written() {
    if !have_tool("oathtool") {
        return;
    }
    /// Flags; the app's algorithm, digits and period; what the message names and not.
    type Case<'a> = (
        &'a [&'a str],
        (&'a str, u32, u64),
        &'a [&'a str],
        &'a [&'a str],
    );
    let cases: [Case; 2] = [
        (
            &["--algorithm", "sha256", "--digits", "8", "-S", "60"],
            ("SHA1", 6, 30),
            &["algorithm=SHA256", "digits=8", "period=60"],
            &[],
        ),
        (
            &["--digits", "8", "-S", "60"],
            ("SHA1", 8, 30),
            &["period=60"],
            &["digits=8", "algorithm="],
        ),
    ];
    for (flags, (alg, digits, period), named, not_named) in cases {
        let dir = tempdir();
        let old = "OLDSECRETOLDSECRET\n\" TOTP_AUTH\n";
        std::fs::write(dir.path().join("s"), old).expect("old enrolment");
        let out = answer_confirmation(dir.path(), flags, |secret| {
            let time = unix_now() as u64;
            oathtool_code(secret, alg, digits, OathKind::Totp { period, time })
        });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flags:?}: {stderr}");
        for n in named {
            assert!(stderr.contains(n), "{flags:?}: {n} not named: {stderr}");
        }
        for n in not_named {
            assert!(!stderr.contains(n), "{flags:?}: {n} named: {stderr}");
        }
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("s")).expect("old file"),
            old,
            "the old enrolment was replaced"
        );
    }
}

/// Starts an enrollment with `args` in `dir` on pipes and reads its standard output up
/// to the confirmation prompt: the child, its standard output and what was read.
fn start_up_to_the_confirmation(
    dir: &Path,
    args: &[&str],
) -> (std::process::Child, std::process::ChildStdout, Vec<u8>) {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("Enter code from app") {
        let n = stdout.read(&mut buf).expect("read");
        assert!(n > 0, "exited early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    (child, stdout, seen)
}

/// Runs an enrollment with `args` on pipes up to the confirmation prompt, answers it
/// with `answer(secret in base32)` then "-1" (skip, should the answer be refused) and
/// "y" (save), and returns what it did.
fn answer_confirmation(
    dir: &Path,
    args: &[&str],
    answer: impl FnOnce(&str) -> String,
) -> std::process::Output {
    use std::io::{Read, Write};
    let (mut child, mut stdout, mut seen) = start_up_to_the_confirmation(
        dir,
        &[
            &["-t", "-D", "-W", "-u", "-f", "-Q", "NONE", "-s", "s"],
            args,
        ]
        .concat(),
    );
    let shown = String::from_utf8_lossy(&seen).into_owned();
    let secret = shown_secret(&shown).to_owned();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{}\n-1\ny\n", answer(&secret)).as_bytes())
        .expect("answer");
    drop(stdin);
    stdout.read_to_end(&mut seen).expect("rest");
    let mut out = child.wait_with_output().expect("wait");
    out.stdout = seen;
    out
}

/// Apps show "123 456"; a user who types that at the confirmation was told
/// "Code incorrect" for the right code. It is confirmed, with the login's rule.
#[test]
fn a_right_code_typed_as_the_app_groups_it_is_confirmed_with_the_login_rule() {
    if !have_tool("oathtool") {
        return;
    }
    let dir = tempdir();
    let out = answer_confirmation(dir.path(), &[], |secret| {
        let time = unix_now() as u64;
        let code = oathtool_code(secret, "SHA1", 6, OathKind::Totp { period: 30, time });
        format!("{} {}", &code[..3], &code[3..])
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Code confirmed"), "{stdout}");
    assert!(stdout.contains("without spaces"), "{stdout}");
    assert!(!stdout.contains("Code incorrect"), "{stdout}");
    assert!(dir.path().join("s").exists());
}

/// The secret (base32) an enrollment's output shows.
fn shown_secret(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("Your new secret key is: "))
        .expect("secret shown")
}

fn secret_from_output(out: &str) -> totp_core::secret::Secret {
    let line = shown_secret(out);
    totp_core::secret::Secret::new(
        totp_core::base32::decode_lenient(line.as_bytes()).expect("base32"),
    )
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

// ---------------------------------------------------------------------------
// Writing safely

/// An earlier enrolment's file, one a login can use (a file none can is no enrolment).
const OLD_FILE: &str = "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n";

#[test]
fn existing_file_is_refused_without_force_before_anything_is_shown() {
    let dir = tempdir();
    std::fs::write(dir.path().join("s"), OLD_FILE).expect("seed");
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-Q", "UTF8", "-s", "s"],
        None,
    );
    // Its own status: "already enrolled" is no failure to a script enrolling a fleet.
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("already exists; pass -f/--force"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stdout, "",
        "no QR or secret for a file that will not be written"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("s")).expect("read"),
        OLD_FILE
    );

    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-C", "-Q", "NONE", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_ne!(
        std::fs::read_to_string(dir.path().join("s")).expect("read"),
        OLD_FILE
    );
    // The app keeps the old entry, whose codes are now refused: say so.
    let dead = "The earlier secret and its scratch codes no longer work";
    assert!(r.stdout.contains(dead), "{}", r.stdout);
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "--json", "-s", "s"],
        None,
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["replaced"], true, "{v}");
    let r = run_in(
        dir.path(),
        &[
            "-t", "-D", "-W", "-u", "-f", "-C", "-Q", "NONE", "-s", "new",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains(dead), "{}", r.stdout);
}

/// Exit 3 says "enrolled before" to a fleet's script, which then moves on: not of an
/// entry no login reads as a secret file (a symbolic link, a directory), which leaves
/// the account locked out. Control: a regular file there exits 3.
#[test]
fn an_entry_that_is_no_regular_file_is_not_reported_as_enrolled() {
    let dir = tempdir();
    let args = ["-t", "-D", "-W", "-u", "-C", "-Q", "NONE", "-s", "s"];
    std::fs::write(dir.path().join("elsewhere"), OLD_FILE).expect("seed");
    std::os::unix::fs::symlink("elsewhere", dir.path().join("s")).expect("symlink");
    let r = run_in(dir.path(), &args, None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not a regular file"), "{}", r.stderr);
    assert_eq!(r.stdout, "", "no secret for a file that is not written");
    assert!(
        std::fs::symlink_metadata(dir.path().join("s"))
            .expect("still there")
            .file_type()
            .is_symlink()
    );
    std::fs::remove_file(dir.path().join("s")).expect("unlink");
    std::fs::create_dir(dir.path().join("s")).expect("mkdir");
    let r = run_in(dir.path(), &args, None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is not a regular file"), "{}", r.stderr);
    // Control: a regular file is an enrolment made before.
    std::fs::remove_dir(dir.path().join("s")).expect("rmdir");
    std::fs::write(dir.path().join("s"), OLD_FILE).expect("seed");
    let r = run_in(dir.path(), &args, None);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

/// `-f` answers "replace the file?", not "write where the write will fail": a place
/// the write refuses is refused before a secret is shown, as without it (re-enrolling
/// after a lost phone is where -f is used, and the user would scan a dead secret).
#[test]
fn a_forced_enrollment_the_write_would_refuse_shows_no_secret() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &[
            "-t",
            "-D",
            "-W",
            "-u",
            "-C",
            "-f",
            "-Q",
            "NONE",
            "-s",
            "missing/s",
        ],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert_eq!(r.stdout, "", "a secret was shown for a file never written");
}

#[test]
fn symlink_at_the_target_is_refused_even_with_force() {
    let dir = tempdir();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep\n").expect("seed");
    std::os::unix::fs::symlink(&victim, dir.path().join("s")).expect("symlink");
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-q", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("symbolic link"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep\n");
    assert!(
        std::fs::symlink_metadata(dir.path().join("s"))
            .expect("lstat")
            .is_symlink()
    );
}

#[test]
fn failed_write_leaves_the_old_file_and_no_temp_files() {
    let dir = tempdir();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    // A directory at the target: the rename can never succeed.
    std::fs::create_dir(sub.join("s")).expect("mkdir target");
    let r = run_in(
        &sub,
        &["-t", "-D", "-W", "-u", "-f", "-s", "s", "--qr-png", "q.png"],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(sub.join("s").is_dir());
    let left: Vec<_> = std::fs::read_dir(&sub)
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("s")],
        "QR file and temp files removed"
    );
}

#[test]
fn qr_files_are_private_and_not_replaced_without_force() {
    let dir = tempdir();
    let v = enroll_json(
        dir.path(),
        "s",
        &[
            "-t", "-D", "-W", "-u", "--qr-png", "q.png", "--qr-svg", "q.svg",
        ],
    );
    for name in ["q.png", "q.svg"] {
        let md = std::fs::metadata(dir.path().join(name)).expect("written");
        assert_eq!(md.permissions().mode() & 0o777, 0o600, "{name}");
    }
    assert!(v["qr_png"].as_str().expect("png").ends_with("/q.png"));
    assert!(v["qr_svg"].as_str().expect("svg").ends_with("/q.svg"));
    let r = run_in(
        dir.path(),
        &[
            "-t",
            "-D",
            "-W",
            "-u",
            "--non-interactive",
            "-s",
            "t",
            "--qr-png",
            "q.png",
        ],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        !dir.path().join("t").exists(),
        "secret not written when a QR file fails"
    );
}

#[test]
fn regenerate_keeps_the_secret_and_settings() {
    let dir = tempdir();
    let mut args = GA_FLAGS.to_vec();
    // -q: a pipe sees nothing, so writing needs an explicit "unseen on purpose".
    args.extend(["-q", "-s", "ga"]);
    assert_eq!(run_in(dir.path(), &args, None).code, 0);
    let before = std::fs::read_to_string(dir.path().join("ga")).expect("read");
    let r = run_in(
        dir.path(),
        &[
            "--regenerate-scratch-codes",
            "-e",
            "4",
            "--json",
            "-s",
            "ga",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = std::fs::read_to_string(dir.path().join("ga")).expect("read");
    let keep = |t: &str| {
        t.lines()
            .filter(|l| !l.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(keep(&before), keep(&after));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    let codes: Vec<&str> = v["scratch_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("s"))
        .collect();
    assert_eq!(codes.len(), 4);
    for c in &codes {
        assert!(after.contains(&format!("\n{c}\n")));
    }
    assert_eq!(
        std::fs::metadata(dir.path().join("ga"))
            .expect("stat")
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn regenerate_refuses_a_pipe_without_json_and_a_missing_file() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &["--regenerate-scratch-codes", "-s", "nothing"],
        None,
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = run_in(
        dir.path(),
        &["--regenerate-scratch-codes", "--json", "-s", "nothing"],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// One window cap for the CLI and the module

#[test]
fn a_window_the_module_would_cut_is_refused_before_anything_is_written() {
    let dir = tempdir();
    let base = ["-t", "-D", "-u", "-f", "-C", "--non-interactive", "--json"];
    let with = |extra: &[&str], name: &str| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.extend(["-s", name]);
        run_in(dir.path(), &args, None)
    };
    // The module's default cap (totp_core::policy::DEFAULT_MAX_WINDOW) is 17.
    let r = with(&["-w", "21"], "w21");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("at most 17") && r.stderr.contains("--service"),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("w21").exists());
    let r = with(&["-w", "17"], "w17");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read_to_string(dir.path().join("w17"))
            .expect("written")
            .contains("\" WINDOW_SIZE 17\n")
    );

    // A service that raises or lowers max_window moves the CLI's cap with it.
    let pam = dir.path().join("pam.d");
    std::fs::create_dir(&pam).expect("mkdir");
    // Each line names the file `-s` gives: a service that reads another is refused.
    let d = dir.path().display();
    std::fs::write(
        pam.join("wide"),
        format!("auth required pam_totp.so max_window=21 secret={d}/wide\n"),
    )
    .expect("write");
    std::fs::write(
        pam.join("narrow-base"),
        format!("auth required pam_totp.so max_window=21 secret={d}/narrow\n"),
    )
    .expect("write");
    std::fs::write(
        pam.join("narrow"),
        format!(
            "@include narrow-base\nauth [success=ok default=die] pam_totp.so max_window=2 \
             secret={d}/narrow\n"
        ),
    )
    .expect("write");
    let pam = pam.to_str().expect("utf-8");
    let r = with(&["-w", "21", "--service", "wide", "--pam-dir", pam], "wide");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = with(&["-W", "--service", "narrow", "--pam-dir", pam], "narrow");
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("at most 2") && r.stderr.contains("\"narrow\""),
        "{}",
        r.stderr
    );
    assert!(!dir.path().join("narrow").exists());
    let r = with(&["-W", "--service", "missing", "--pam-dir", pam], "missing");
    assert_eq!(r.code, 1, "{}", r.stderr);
}

/// `check` and `totp-state audit` warn of a line that lets a login through before the
/// code line; enrolling for that service says it too, once: RHEL's `auth include
/// system-auth`, whose `sufficient pam_unix` ends the stack on a right password.
#[test]
fn enrolling_for_a_stack_that_skips_the_code_line_warns_once() {
    let dir = tempdir();
    let pam = dir.path().join("pam.d");
    std::fs::create_dir(&pam).expect("mkdir");
    let d = dir.path().display();
    std::fs::write(
        pam.join("system-auth"),
        "auth required pam_env.so\nauth sufficient pam_unix.so nullok\n\
         auth required pam_deny.so\n",
    )
    .expect("write");
    for how in ["include", "substack"] {
        std::fs::write(
            pam.join(how),
            format!("auth {how} system-auth\nauth required pam_totp.so secret={d}/{how}\n"),
        )
        .expect("write");
    }
    let pam = pam.to_str().expect("utf-8");
    let enroll = |service: &str| {
        let args = [
            "-t",
            "-D",
            "-u",
            "-f",
            "-W",
            "-C",
            "--non-interactive",
            "--json",
            "--service",
            service,
            "--pam-dir",
            pam,
            "-s",
            service,
        ];
        let r = run_in(dir.path(), &args, None);
        assert_eq!(r.code, 0, "{service}: {}", r.stderr);
        assert!(dir.path().join(service).exists(), "{service}: written");
        r
    };
    let r = enroll("include");
    let warning = format!(
        "warning: {pam}/system-auth:2 (auth sufficient pam_unix.so) comes before the \
         pam_totp.so line at {pam}/include:2"
    );
    assert_eq!(r.stderr.matches(&warning).count(), 1, "{}", r.stderr);
    assert!(
        !r.stdout.contains("warning"),
        "stdout is the JSON: {}",
        r.stdout
    );
    // Control: the substack returns to the service's stack; nothing to warn of.
    let r = enroll("substack");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}

#[test]
fn resync_refuses_bad_codes_without_touching_the_file() {
    let dir = tempdir();
    let file = dir.path().join("s");
    let original = "2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n";
    std::fs::write(&file, original).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    for (codes, needle) in [
        (["12345", "123456"], "exactly 6 digits"),
        (["123456", "123456"], "the same"),
    ] {
        let r = run_in(dir.path(), &["resync", "-s", "s", codes[0], codes[1]], None);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), original);
    }
    // One code alone is a usage error; end of input is named.
    assert_eq!(
        run_in(dir.path(), &["resync", "-s", "s", "123456"], None).code,
        2
    );
    let r = run_in(dir.path(), &["resync", "-s", "s"], Some("123456\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("CODE1 CODE2"), "{}", r.stderr);
}

#[test]
fn unreadable_stdin_is_no_answer_not_a_failure() {
    let dir = tempdir();
    let file = dir.path().join("s");
    let original = "2SH3V3GDW7ZNMGYE\n\" TOTP_AUTH\n";
    std::fs::write(&file, original).expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // A directory opens for reading but every read fails (EISDIR): the question gets
    // no answer, the documented status 2, as at the end of input, not 1 ("failed").
    let stdin = std::fs::File::open(dir.path()).expect("open the directory");
    let out = std::process::Command::new(BIN)
        .args(["resync", "-s", "s"])
        .current_dir(dir.path())
        .env_remove("HOME")
        .stdin(stdin)
        .output()
        .expect("run totp-enroll");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot read standard input"), "{stderr}");
    assert!(stderr.contains("CODE1 CODE2"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), original);
    // Control: a readable stdin that ends before the second answer: the same status,
    // named as the end of input, not as a read error.
    let r = run_in(dir.path(), &["resync", "-s", "s"], Some("123456\n"));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("end of input"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("cannot read standard input"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// Other users

#[test]
fn non_root_cannot_enroll_another_user() {
    let args = ["--user", "root", "-t", "-D", "-W", "-u", "-s", "x"];
    let r = if is_root() {
        run_as_nobody(&args)
    } else {
        run(&args)
    };
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("only root"), "{}", r.stderr);
}

#[test]
fn root_writes_a_store_file_only_into_a_root_owned_chain() {
    if !require_root("root_writes_a_store_file_only_into_a_root_owned_chain") {
        return;
    }
    let Some(other) = ["nobody", "daemon"].into_iter().find(|u| {
        std::process::Command::new("id")
            .arg(u)
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        skip(
            "root_writes_a_store_file_only_into_a_root_owned_chain",
            "an unprivileged system user (nobody or daemon)",
        );
        return;
    };
    let dir = tempdir();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).expect("mkdir");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let chain_ok = store
        .ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0));
    let path = store.join(other);
    let args = [
        "--user",
        other,
        "--non-interactive",
        "-t",
        "-D",
        "-W",
        "-u",
        "-q",
        "-s",
        path.to_str().expect("utf-8"),
    ];
    let r = run(&args);
    if chain_ok {
        assert_eq!(r.code, 0, "{}", r.stderr);
        let md = std::fs::metadata(&path).expect("written");
        assert_eq!((md.uid(), md.mode() & 0o777), (0, 0o600));
    } else {
        eprintln!("note: {} is not a root-only chain", store.display());
    }

    // A group- or other-writable directory is not a store.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path2 = store.join("second");
    let r = run(&[
        "--user",
        other,
        "--non-interactive",
        "-t",
        "-D",
        "-W",
        "-u",
        "-q",
        "-s",
        path2.to_str().expect("utf-8"),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("root-owned"), "{}", r.stderr);
    assert!(!path2.exists());
}

// ---------------------------------------------------------------------------
// Man page

#[test]
fn man_page_names_every_long_flag() {
    let man =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../man/totp-enroll.1"))
            .expect("man page")
            .replace("\\-", "-");
    let mut flags = Vec::new();
    for args in [
        &["--help"][..],
        &["check", "--help"],
        &["explain", "--help"],
    ] {
        let help = run(args).stdout;
        for word in help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if word.starts_with("--") && word.len() > 2 && !flags.contains(&word.to_owned()) {
                flags.push(word.to_owned());
            }
        }
    }
    assert!(flags.len() > 25, "{flags:?}");
    for flag in flags {
        assert!(man.contains(&flag), "man page lacks {flag}");
    }
}

// ---------------------------------------------------------------------------
// A real terminal

#[test]
fn a_terminal_gets_the_qr_code_secret_and_scratch_codes() {
    if !have_tool("script") {
        return;
    }
    let dir = tempdir();
    let path = dir.path().join("s");
    let cmd = format!("{BIN} -t -D -W -u -C -f -s {}", path.display());
    // A UTF-8 terminal whatever the runner's locale (qr.rs covers the others).
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("LC_ALL")
        .env_remove("LC_CTYPE")
        .env("LANG", "C.UTF-8")
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let file = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains('\u{2588}'), "UTF-8 QR by default");
    assert!(text.contains(file.lines().next().expect("secret")));
    assert!(text.contains("Your emergency scratch codes are:"));
}

// ---------------------------------------------------------------------------
// explain

/// An access-rules file with `text` and permission bits `mode`, alone in its own
/// temporary directory, for `explain` to read.
struct Rules {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Rules {
    fn new(text: &str, mode: u32) -> Rules {
        let dir = tempdir();
        let path = dir.path().join("access.conf");
        std::fs::write(&path, text).expect("rules");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        Rules { _dir: dir, path }
    }

    fn rewrite(&self, text: &str) {
        std::fs::write(&self.path, text).expect("rules");
    }

    /// `explain` of these rules for root coming from `rhost`, with `extra` flags.
    fn explain(&self, rhost: &str, extra: &[&str]) -> Run {
        let path = self.path.to_str().expect("utf-8");
        let args = [
            "explain",
            "--accessfile",
            path,
            "--user",
            "root",
            "--rhost",
            rhost,
        ];
        run(&[&args[..], extra].concat())
    }
}

/// Skip from the 10/8 LAN (line 2), require from anywhere else (line 3).
const LAN_RULES: &str = "# LAN\n+ : ALL : 10.0.0.0/8\n- : ALL : ALL\n";

#[test]
fn explain_json_gives_the_decision_in_fields() {
    let rules = Rules::new(LAN_RULES, 0o644);
    let explain = |rhost: &str| {
        let r = rules.explain(rhost, &["--service", "sshd", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
        let mut v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
        // Temporary paths differ between runs. The rules name no group, so none is
        // looked up.
        assert_eq!(v["groups"], serde_json::json!([]), "{v}");
        v["accessfile"] = "<ACCESSFILE>".into();
        // Whether the module would refuse the file depends on where the checkout lies
        // (a directory under /tmp is not root-controlled); the field is tested through
        // libpam in access_rules.rs. Here only its presence and type are fixed, and
        // that a refused file makes the verdict "require" whatever the rules say; the
        // golden then holds the verdict of an accepted file.
        if v["module_refuses_file"].is_string() {
            assert_eq!(v["verdict"], "require", "{v}");
            v["verdict"] = v["rules_verdict"].clone();
        } else {
            assert!(v["module_refuses_file"].is_null(), "{v}");
            assert_eq!(v["verdict"], v["rules_verdict"], "{v}");
        }
        v["module_refuses_file"] = serde_json::Value::Null;
        v
    };
    let skip = explain("10.1.2.3");
    assert_eq!(skip["verdict"], "skip");
    assert_eq!(skip["rules_verdict"], "skip");
    let require = explain("192.0.2.1");
    assert_eq!(require["verdict"], "require");
    assert_eq!(require["rule"]["line"], 3);
    golden(
        "explain-json.txt",
        &format!(
            "{}\n{}\n",
            serde_json::to_string_pretty(&skip).expect("json"),
            serde_json::to_string_pretty(&require).expect("json")
        ),
    );
}

#[test]
fn explain_shows_the_deciding_rule() {
    let rules = Rules::new(LAN_RULES, 0o644);
    let r = rules.explain("10.1.2.3", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("rule:    line 2: + : ALL : 10.0.0.0/8"),
        "{}",
        r.stdout
    );
    // Whether the module accepts the file depends on where the checkout lies (a
    // directory under /tmp is not root-controlled): a refused file is asked the code
    // whatever the rules say, and the text still gives the rules' verdict.
    if r.stdout.contains("the module would refuse") {
        assert!(
            r.stdout.contains("verdict: require")
                && r.stdout
                    .contains("once it accepts it, these rules say skip"),
            "{}",
            r.stdout
        );
    } else {
        assert!(r.stdout.contains("verdict: skip"), "{}", r.stdout);
    }

    let r = rules.explain("192.0.2.1", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("verdict: require"), "{}", r.stdout);

    rules.rewrite("+ : ALL : 010.0.0.0/8\n");
    let r = rules.explain("10.1.2.3", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("requires the code for everybody"),
        "{}",
        r.stderr
    );
}

/// A file the module refuses whatever directory the checkout lies in (executable: the
/// module takes nothing above 0644, the draft reading takes it) is still explained, but
/// the verdict is the module's: the code is required, though the rule would skip; the
/// rule and what it decides stay, as what the rules say once the file is accepted.
#[test]
fn explain_requires_the_code_when_the_module_refuses_the_file() {
    let rules = Rules::new("+ : ALL : 10.0.0.0/8\n", 0o755);
    let r = rules.explain("10.1.2.3", &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert!(v["module_refuses_file"].is_string(), "{v}");
    assert_eq!(v["verdict"], "require", "{v}");
    assert_eq!(v["rules_verdict"], "skip", "{v}");
    assert_eq!(v["rule"]["line"], 1, "{v}");

    let r = rules.explain("10.1.2.3", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("warning: the module would refuse"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("verdict: require: the code is asked for (the module refuses the file"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("verdict: skip"), "{}", r.stdout);
    assert_eq!(r.stdout.matches("verdict:").count(), 1, "{}", r.stdout);
}

/// `--allow-any-network` reads the file as the module does with `allow_any_network`: a
/// catch-all skip rule is rejected without it (the error says which flag the module
/// line may call for) and decides with it.
#[test]
fn explain_reads_a_catch_all_network_as_the_module_option_says() {
    let rules = Rules::new("+ : ALL : 0.0.0.0/0\n", 0o644);
    let r = rules.explain("198.51.100.7", &["--json"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("requires the code for everybody")
            && r.stderr.contains("--allow-any-network"),
        "{}",
        r.stderr
    );
    let r = rules.explain("198.51.100.7", &["--json", "--allow-any-network"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(v["rules_verdict"], "skip", "{v}");
    assert_eq!(v["rule"]["text"], "+ : ALL : 0.0.0.0/0", "{v}");
    // Where the checkout lies decides whether the module accepts the file (the
    // verdict through libpam is in access_rules.rs).
    let want = if v["module_refuses_file"].is_null() {
        "skip"
    } else {
        "require"
    };
    assert_eq!(v["verdict"], want, "{v}");
}

#[test]
fn re_enrollment_starts_with_fresh_state() {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("s"),
        "JBSWY3DPEHPK3PXP\n\" PAM_TOTP_LAST_STEP 99999999\n\" PAM_TOTP_FAILURES 3 1700000000\n\" TOTP_AUTH\n",
    )
    .expect("seed");
    let v = enroll_json(dir.path(), "s", &["-t", "-D", "-W", "-u", "-f"]);
    let text = std::fs::read_to_string(dir.path().join("s")).expect("read");
    assert!(!text.contains("PAM_TOTP_"), "{text}");
    assert!(text.starts_with(v["secret"].as_str().expect("secret")));
}

/// An answer longer than the line limit is refused, not cut to its first 1024 bytes
/// (whose first character would have answered "yes"), and nothing is written; its rest
/// is never read as the next answer. Control: a short "y" answers the question.
#[test]
fn an_over_long_answer_is_refused_and_nothing_is_written() {
    let dir = tempdir();
    // Asked: time-based? and disallow reuse?
    let args = ["-W", "-u", "-C", "-f", "-q", "-s", "s"];
    let long = format!("{}\ny\ny\n", "y".repeat(5000));
    let r = run_in(dir.path(), &args, Some(&long));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("more than 1024 bytes"), "{}", r.stderr);
    assert!(!dir.path().join("s").exists());
    let r = run_in(dir.path(), &args, Some("y\ny\n"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("s").exists());
}

/// A step other than 30 s is named when the secret is shown, as algorithm and digits
/// are: the Key Uri Format says Google Authenticator ignores `period`, and with -C
/// no confirmation catches an app that did. Control: the default step says nothing.
#[test]
fn a_non_default_step_is_named_with_the_secret() {
    let dir = tempdir();
    let base = ["-t", "-D", "-W", "-u", "-f", "-C", "-Q", "NONE", "-s", "s"];
    let r = run_in(dir.path(), &[&base[..], &["-S", "60"]].concat(), None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("Codes change every 60 seconds: some apps ignore"),
        "{}",
        r.stdout
    );
    let r = run_in(dir.path(), &base, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("Your new secret key is:"), "{}", r.stdout);
    assert!(!r.stdout.contains("Codes change every"), "{}", r.stdout);
}

/// A user name from a fleet's inventory reaches the error message escaped: no control
/// sequence gets to the operator's terminal or log. (Asked of the name service as it
/// is, so the lookup fails before anything else is checked, as root or not.)
#[test]
fn an_unknown_user_name_is_shown_escaped() {
    let r = run(&[
        "--user",
        "ev\u{1b}[2Jil",
        "-t",
        "-d",
        "-f",
        "-u",
        "-W",
        "-C",
        "-q",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such user \"ev\\u{1b}[2Jil\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains('\u{1b}'), "{:?}", r.stderr);
    // Control: a plain unknown name reads as before.
    let r = run(&[
        "--user",
        "no-such-user-x9",
        "-t",
        "-d",
        "-f",
        "-u",
        "-W",
        "-C",
        "-q",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no such user \"no-such-user-x9\""),
        "{}",
        r.stderr
    );
}

/// `--uri` answered through a pipe (`yes | totp-enroll … --uri | head -n 1`, or a person
/// sending the URI into a file): the questions went to standard output ahead of the
/// URI, so its first line was `Do you want me to update … (y/n) otpauth://…`, a URI no
/// app reads, and a person with `> file` saw no question while the run waited for the
/// answer. The questions now go to standard error with `--uri`, and the URI is the
/// first line. Control: without `--uri` the questions stay on standard output, as
/// google-authenticator's scripts read them.
#[test]
fn questions_never_go_before_the_uri_on_standard_output() {
    let dir = tempdir();
    let answers = "y\ny\nn\ny\ny\n";
    let r = run_in(dir.path(), &["-s", "s", "-C", "--uri"], Some(answers));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let first = r.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("otpauth://totp/"), "{}", r.stdout);
    KeyUri::parse(first).expect("the first line is the URI");
    assert!(!r.stdout.contains("(y/n)"), "{}", r.stdout);
    assert!(r.stderr.contains("time-based (y/n)"), "{}", r.stderr);
    assert!(r.stderr.contains("update your"), "{}", r.stderr);
    let secret = std::fs::read_to_string(dir.path().join("s")).expect("written");
    assert!(
        first.contains(secret.lines().next().unwrap_or("-")),
        "{first}"
    );

    let r = run_in(dir.path(), &["-s", "q", "-C", "-q"], Some(answers));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("time-based (y/n)"), "{}", r.stdout);
    assert!(dir.path().join("q").exists());
}

/// `--non-interactive` never reads standard input: a configuration tool that leaves it
/// open (an ssh session's, a pipe nobody closes) gets the run's end, here the file
/// written with 0 and then "already enrolled" with 3. Control: the same run without
/// `--non-interactive` is still waiting at its question while that input stays open.
#[test]
fn non_interactive_runs_end_with_standard_input_left_open() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempdir();
    let flags = ["-t", "-d", "-W", "-r", "3", "-R", "30", "-q", "-s"];
    let spawn = |extra: &[&str]| {
        Command::new(BIN)
            .args(flags)
            .args(extra)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run totp-enroll")
    };
    // Not a timing assertion: the bound only keeps a run that reads from hanging.
    let ends = |child: &mut std::process::Child| {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() > give_up {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    for want in [0, 3] {
        let mut child = spawn(&["s", "--non-interactive"]);
        let open = child.stdin.take();
        let status = ends(&mut child);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(open);
        assert_eq!(status.and_then(|s| s.code()), Some(want), "{want}");
    }
    assert!(dir.path().join("s").exists());

    // Control: without --non-interactive it asks whether to write a new file, and waits.
    let mut child = spawn(&["t"]);
    let open = child.stdin.take();
    let mut question = Vec::new();
    {
        use std::io::Read;
        let stdout = child.stdout.as_mut().expect("stdout");
        let mut byte = [0u8; 1];
        while !question.ends_with(b"(y/n) ") {
            let n = stdout.read(&mut byte).expect("read the question");
            assert_eq!(n, 1, "ended: {}", String::from_utf8_lossy(&question));
            question.push(byte[0]);
        }
    }
    assert!(
        child.try_wait().expect("wait").is_none(),
        "waits for the answer"
    );
    drop(open);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!dir.path().join("t").exists());
}
