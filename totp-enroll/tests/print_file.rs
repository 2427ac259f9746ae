//! `--print-file`: the secret file a fleet's `secret_command=` serves, printed on
//! standard output (or carried in the JSON) and written nowhere.

mod common;

use std::path::Path;

use common::*;
use totp_core::gafile::{GaFile, Mode};
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::uri::KeyUri;

/// Every file name in `dir` (the runs below use it as their working directory).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// The caller's default secret file (NSS home, as the tool computes it).
fn default_secret_file() -> std::path::PathBuf {
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("getpwuid")
        .expect("the test user has an entry");
    me.dir.join(".google_authenticator")
}

fn secret_shown_on(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("Your new secret key is: "))
        .expect("secret shown")
        .to_owned()
}

#[test]
fn printed_file_is_exact_parses_matches_the_shown_secret_and_nothing_is_written() {
    let dir = tempdir();
    let home_file = default_secret_file();
    let home_file_before = home_file.exists();
    let r = run_in(
        dir.path(),
        &[
            "--print-file",
            "-l",
            "alice@fleet.example",
            "-i",
            "Fleet",
            "-d",
            "-W",
            "-r",
            "3",
            "-R",
            "30",
            "--non-interactive",
            "-Q",
            "UTF8",
        ],
        None,
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let file = GaFile::parse(r.stdout.as_bytes()).expect("stdout is a secret file");
    // Byte for byte what the tool writes for the same settings: nothing around it.
    assert_eq!(file.to_bytes().as_slice(), r.stdout.as_bytes());
    let cfg = file.config().expect("config");
    assert!(matches!(cfg.mode, Mode::Totp), "TOTP");
    assert_eq!(cfg.window, Some(3));
    assert!(file.contains_key("DISALLOW_REUSE"));
    assert!(file.contains_key("RATE_LIMIT"));
    assert!(file.scratch_codes().is_empty(), "no scratch codes");
    assert!(!file.contains_key("HOTP_COUNTER"));
    // The QR code and the secret went to stderr, and it is the same secret.
    let shown = secret_shown_on(&r.stderr);
    let printed = file.secret().expect("secret");
    assert_eq!(
        totp_core::base32::decode_lenient(shown.as_bytes()).expect("base32"),
        printed.as_bytes().to_vec()
    );
    assert!(!r.stderr.contains("scratch codes are"), "{}", r.stderr);
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    assert_eq!(home_file.exists(), home_file_before, "no default file made");
}

#[test]
fn json_carries_the_file_whose_secret_is_the_uri_secret() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &[
            "--print-file",
            "--json",
            "-l",
            "bob",
            "-i",
            "Fleet",
            "-D",
            "-w",
            "5",
            "-u",
            "--digits",
            "8",
            "--algorithm",
            "SHA256",
            "--non-interactive",
        ],
        None,
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1, "one JSON line: {}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(v["written"], false);
    assert!(v["path"].is_null() && v["user"].is_null(), "{v}");
    assert_eq!(v["scratch_codes"], serde_json::json!([]));
    assert_eq!(v["window_size"], 5);
    let text = v["file"].as_str().expect("file text");
    let file = GaFile::parse(text.as_bytes()).expect("the file parses");
    let key = KeyUri::parse(v["uri"].as_str().expect("uri")).expect("uri parses");
    assert_eq!(key.secret(), file.secret().expect("secret"));
    assert_eq!(key.secret_base32(), v["secret"].as_str().expect("secret"));
    // Same codes from the file's settings and from the URI's, at one instant.
    let cfg = file.config().expect("config");
    assert_eq!(cfg.window, Some(5));
    let now = 1_700_000_000;
    let from_file = otp::totp(
        &file.secret().expect("secret"),
        now,
        30,
        Algorithm::Sha256,
        Digits::EIGHT,
    );
    let params = decode_uri_params(v["uri"].as_str().expect("uri"));
    assert_eq!(params["algorithm"], "SHA256");
    assert_eq!(params["digits"], "8");
    let from_uri = otp::totp(&key.secret(), now, 30, Algorithm::Sha256, Digits::EIGHT);
    assert!(from_file.is_some());
    assert_eq!(from_file, from_uri);
    assert!(file.contains_key("PAM_TOTP_ALGORITHM"), "{text}");
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn a_pipe_gets_the_file_and_stderr_gets_no_secret_unless_asked() {
    let dir = tempdir();
    let r = run_in(
        dir.path(),
        &[
            "--print-file",
            "-l",
            "carol",
            "-D",
            "-W",
            "-u",
            "--non-interactive",
        ],
        None,
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let file = GaFile::parse(r.stdout.as_bytes()).expect("stdout is a secret file");
    let secret = totp_core::base32::encode(file.secret().expect("secret").as_bytes());
    assert!(!r.stderr.contains(&secret), "{}", r.stderr);
    assert!(!r.stderr.contains("Your new secret key"), "{}", r.stderr);
    assert!(
        r.stderr.contains("standard output holds the secret"),
        "{}",
        r.stderr
    );
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn questions_go_to_stderr_and_stdout_holds_only_the_file() {
    let dir = tempdir();
    // Reuse: yes; wider window: no; rate limit: yes.
    let r = run_in(
        dir.path(),
        &["--print-file", "-l", "dave"],
        Some("y\nn\ny\n"),
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(r.stderr.contains("rate-limiting?"), "{}", r.stderr);
    assert!(!r.stderr.contains("time-based"), "TOTP is implied");
    assert!(!r.stderr.contains("update your"), "there is no local file");
    let file = GaFile::parse(r.stdout.as_bytes()).expect("only the file on stdout");
    assert!(file.contains_key("DISALLOW_REUSE"));
    assert!(file.contains_key("RATE_LIMIT"));
    assert!(!file.contains_key("WINDOW_SIZE"));
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn flags_that_write_locally_or_make_what_the_module_refuses_are_refused() {
    let dir = tempdir();
    std::fs::write(dir.path().join("existing"), "keep").expect("write");
    let base = ["--print-file", "-D", "-W", "-u", "--non-interactive"];
    for extra in [
        &["-l", "a", "-s", "existing"][..],
        &["-l", "a", "-s", "new"],
        &["-l", "a", "-f"],
        &["-l", "a", "--user", "root"],
        &["-l", "a", "--qr-png", "q.png"],
        &["-l", "a", "--qr-svg", "q.svg"],
        &["-l", "a", "--uri"],
        &["-l", "a", "--regenerate-scratch-codes"],
        &["-l", "a", "-c"],
        &["-l", "a", "-e", "3"],
        // No label: the user is not looked up here, so nothing could name the entry.
        &[],
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let r = run_in(dir.path(), &args, None);
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{extra:?}");
        assert_eq!(
            entries(dir.path()),
            vec!["existing".to_owned()],
            "{extra:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("existing")).expect("read"),
        "keep"
    );
    let r = run_in(
        dir.path(),
        &["--print-file", "-l", "a", "-e", "2", "-D", "-W", "-u"],
        None,
    );
    assert!(
        r.stderr.contains("refuses scratch codes") && r.stderr.contains("-e 0"),
        "{}",
        r.stderr
    );
    // An explicit -e 0 says what --print-file does anyway.
    let r = run_in(
        dir.path(),
        &["--print-file", "-l", "a", "-e", "0", "-D", "-W", "-u"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}
