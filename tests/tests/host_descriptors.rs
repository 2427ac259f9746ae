//! A host whose standard descriptors 0, 1 or 2 are closed (a daemon that closed them
//! and never reopened them on /dev/null; `pam-drive --host-close-std`). The module's
//! own descriptors then take those numbers: the login must still decide as usual, the
//! module must leave none of them open, and the state record it wrote through one of
//! them must be intact. The secret command must still get /dev/null as stdin and
//! stderr and the module's pipe as stdout: the standard library opened its /dev/null
//! close-on-exec in the parent and, when that landed on 0, left it to be closed at the
//! exec, so the command started without stdin and its first open file took fd 0.
//! Controls: the same logins with every descriptor open.

use std::path::Path;

use system_tests::fleet::{checking_secret_command, trusted_dir};
use system_tests::*;

const CLOSED: [&str; 7] = ["0", "1", "2", "0,1", "0,2", "1,2", "0,1,2"];

fn std_open(d: &Drive, out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("std-open ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no std-open line: {d:?}"))
}

/// One login with `closed` closed in the host (none when empty).
fn login(driver: Driver, closed: &str) -> (Drive, String) {
    let driver = if closed.is_empty() {
        driver
    } else {
        driver.arg("--host-close-std", closed)
    };
    let out = driver.command().output().expect("pam-drive");
    let d = Drive::ran(&out);
    let open = if closed.is_empty() {
        "-".to_owned()
    } else {
        std_open(&d, &out)
    };
    (d, open)
}

#[test]
fn a_host_with_closed_standard_descriptors_gets_the_usual_verdicts() {
    if !require_root("a_host_with_closed_standard_descriptors_gets_the_usual_verdicts") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fd");
    // Wrong codes and replays in every round: no throttling in the way.
    let stack = Stack::probe("svc", "throttle_after=100 ceiling_burst=1000");
    for (i, closed) in [""].iter().chain(&CLOSED).enumerate() {
        let at = T0 + 60 * i as u64;
        let (d, open) = login(
            Driver::login(&stack, &u, &code_at(&secret, at)).at(at),
            closed,
        );
        assert_eq!(d.returned(), Returned::Success, "closed {closed:?}: {d:?}");
        assert_eq!(open, "-", "closed {closed:?}: left open by the module");
        // The record written through a low descriptor is whole: the step is recorded.
        assert_eq!(
            stored_last_step(&stack, u.uid),
            Some(at / 30),
            "closed {closed:?}"
        );
        let (d, open) = login(
            Driver::login(&stack, &u, &code_at(&secret, at)).at(at),
            closed,
        );
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "closed {closed:?}: replay refused: {d:?}"
        );
        assert_eq!(open, "-", "closed {closed:?}");
        let (d, _) = login(
            Driver::login(&stack, &u, &wrong_totp(&secret, at + 30)).at(at + 30),
            closed,
        );
        assert_eq!(
            d.returned(),
            Returned::Failed("PAM_AUTH_ERR".into()),
            "closed {closed:?}: wrong code: {d:?}"
        );
    }
}

/// A secret command that prints `file` only when its stdin and stderr are /dev/null
/// and its stdout a pipe, else exits with 3, 4 or 5 (which the module denies).
fn checking_command(dir: &Path, file: &str) -> String {
    checking_secret_command(
        dir,
        "[ \"$(readlink /proc/$$/fd/0)\" = /dev/null ] || exit 3\n\
         [ \"$(readlink /proc/$$/fd/2)\" = /dev/null ] || exit 4\n\
         case \"$(readlink /proc/$$/fd/1)\" in pipe:*) ;; *) exit 5;; esac",
        file,
    )
}

#[test]
fn the_secret_command_gets_its_own_stdio_when_the_host_closed_its_own() {
    if !require_root("the_secret_command_gets_its_own_stdio_when_the_host_closed_its_own") {
        return;
    }
    let dir = trusted_dir("stdio");
    let u = TestUser::create("fc");
    let secret = random_secret_b32();
    let stack = Stack::probe("svc", &checking_command(dir.path(), &totp_file(&secret)));
    for (i, closed) in [""].iter().chain(&CLOSED).enumerate() {
        let at = T0 + 30 * i as u64;
        let (d, open) = login(
            Driver::login(&stack, &u, &code_at(&secret, at)).at(at),
            closed,
        );
        assert_eq!(
            d.returned(),
            Returned::Success,
            "closed {closed:?}: the command saw its stdio: {d:?}"
        );
        assert_eq!(open, "-", "closed {closed:?}");
    }
}
