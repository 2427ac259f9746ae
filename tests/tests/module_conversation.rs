//! Conversation failures, answer parsing, and GA's eight password modes with their
//! prompt counts and `PAM_AUTHTOK` forwarding (SECURITY.md cases F1–F4, F10;
//! GA's control flow and its unit-test matrix), through the real libpam and the built module.
//!
//! Linux-PAM keeps `PAM_AUTHTOK` from applications (`pam_get_item`/`pam_set_item` return
//! `PAM_BAD_ITEM` outside a module), so it is set the way a real stack sets it — by
//! `pam_unix` on the line before, which stores what it read — and read back by
//! `pam_exec expose_authtok` on the line after, which writes it to a file.

use system_tests::pamapp::{Reply, Scripted, Transaction, codes};
use system_tests::*;

#[test]
fn conversation_errors_never_succeed_or_ignore() {
    if !require_root("conversation_errors_never_succeed_or_ignore") {
        return;
    }
    let (u, secret) = TestUser::enrolled("cv");
    for args in [
        "",
        "nullok",
        "forward_pass",
        "try_first_pass",
        "echo_verification_code",
    ] {
        let stack = Stack::probe("svc", args);
        for user in [u.name.as_str(), "nosuchuser-pt", "../x"] {
            let runs = [
                (
                    "conv PAM_CONV_ERR",
                    Driver::new(&stack, "svc", user).conv_fail("PAM_CONV_ERR"),
                ),
                (
                    "conv PAM_BUF_ERR",
                    Driver::new(&stack, "svc", user).conv_fail("PAM_BUF_ERR"),
                ),
                (
                    "conv PAM_ABORT",
                    Driver::new(&stack, "svc", user).conv_fail("PAM_ABORT"),
                ),
                ("NULL array", Driver::new(&stack, "svc", user).null_array()),
                ("NULL resp", Driver::new(&stack, "svc", user).null_answer()),
                ("empty answer", Driver::new(&stack, "svc", user).answer("")),
                // No scripted answer at all: the conversation errors out.
                ("no answer", Driver::new(&stack, "svc", user)),
            ];
            for (what, driver) in runs {
                let d = driver.at(T0).run();
                let code = d.module_code();
                assert!(
                    code != "PAM_SUCCESS" && code != "PAM_IGNORE" && !code.is_empty(),
                    "[{args}] {user} {what}: {d:?}"
                );
                assert_eq!(d.prompts, 1, "[{args}] {user} {what}: asked once");
            }
        }
    }
    // The user's state is untouched by answers that never arrived, except for attempts
    // that were recorded; the file still parses and still holds the secret.
    let f = read(&u.secret_path());
    assert!(f.starts_with(&secret));
    // And a real answer still works afterwards (after any backoff).
    let later = T0 + 3_600;
    let probe = Stack::probe("svc", "");
    let d = login_at(&probe, &u, &code_at(&secret, later), None, later);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

#[test]
fn in_process_conversation_failures_through_pamapp() {
    if !require_root("in_process_conversation_failures_through_pamapp") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ci");
    let stack = Stack::with_module("svc", "");
    for reply in [
        Reply::Fail(codes::CONV_ERR),
        Reply::Fail(codes::BUF_ERR),
        Reply::NullArray,
        Reply::NullText,
    ] {
        let conv = Box::new(Scripted::new([reply.clone()]));
        let mut tx =
            Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
        let rc = tx.authenticate(0);
        assert_ne!(rc, codes::SUCCESS, "{reply:?}");
        assert_ne!(rc, codes::IGNORE, "{reply:?}");
        assert_eq!(tx.prompt_count(), 1, "{reply:?}");
    }
    // Control: the same transaction shape with the right code succeeds.
    let conv = Box::new(Scripted::texts([code_at(&secret, now())]));
    let mut tx = Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::SUCCESS);
}

/// pam_totp(8), RETURN VALUES: a conversation that returns `PAM_ABORT` (the application
/// wants the transaction ended, pam(3)) or `PAM_BUF_ERR` at the code prompt has the
/// module return that code, so that `pam_authenticate` hands it back to the application
/// under a `required` line; any other conversation failure is `PAM_CONV_ERR`. Asked once
/// each, with the same code for a name without an account (R9). Control: the right code
/// on the same transaction shape succeeds.
#[test]
fn the_applications_abort_and_memory_errors_are_passed_on() {
    if !require_root("the_applications_abort_and_memory_errors_are_passed_on") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ab");
    let stack = Stack::with_module("svc", "");
    for (reply, expected) in [
        (codes::ABORT, codes::ABORT),
        (codes::BUF_ERR, codes::BUF_ERR),
        (codes::CONV_ERR, codes::CONV_ERR),
        // PAM_CONV_AGAIN: the module cannot be resumed (no PAM_INCOMPLETE).
        (30, codes::CONV_ERR),
        // PAM_INCOMPLETE, which a conversation has no business returning (it is a
        // module's answer): a failure like any other, never a resumable state.
        (31, codes::CONV_ERR),
    ] {
        for user in [u.name.as_str(), "nosuchuser-ab"] {
            let conv = Box::new(Scripted::new([Reply::Fail(reply)]));
            let mut tx =
                Transaction::start("svc", Some(user), Some(stack.path()), conv).expect("start");
            assert_eq!(
                tx.authenticate(0),
                expected,
                "{user}: conversation returned {reply}"
            );
            assert_eq!(
                tx.prompt_count(),
                1,
                "{user}: conversation returned {reply}"
            );
        }
    }
    let conv = Box::new(Scripted::texts([code_at(&secret, now())]));
    let mut tx = Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::SUCCESS);
}

/// Without `PAM_USER` libpam asks for the name (`login:`) through the conversation. When
/// that fails (an aborted or closed conversation, no answer), the module returns
/// `PAM_CONV_ERR` and asks for no code on a conversation that has just failed: there is
/// no name whose existence a missing prompt could tell. `PAM_CONV_AGAIN` there came
/// back from `pam_get_user` as itself, which the module took for a name it could not
/// read: it asked for a code with no name and returned `PAM_AUTH_ERR`. Control: the
/// name answered at `login:`, then the right code, succeeds after both prompts.
#[test]
fn a_failed_user_name_prompt_is_not_followed_by_a_code_prompt() {
    if !require_root("a_failed_user_name_prompt_is_not_followed_by_a_code_prompt") {
        return;
    }
    let (u, secret) = TestUser::enrolled("un");
    let stack = Stack::with_module("svc", "");
    for failed in [
        Reply::Fail(codes::ABORT),
        Reply::Fail(codes::CONV_ERR),
        // PAM_CONV_AGAIN: libpam's prompt returns PAM_INCOMPLETE; the module does not
        // offer to be resumed, it fails the attempt.
        Reply::Fail(30),
        // A failure that still hands back the name: libpam drops the reply and sets no
        // PAM_USER. Its code must not reach the module as pam-bindings' PAM_SYSTEM_ERR
        // for an undecodable name, which is read raw (no name here) and asked for a code.
        Reply::FailWithText(codes::SYSTEM_ERR, u.name.clone()),
        Reply::FailWithText(codes::ABORT, u.name.clone()),
        Reply::FailWithText(codes::AUTH_ERR, u.name.clone()),
        Reply::NullText,
        Reply::NullArray,
    ] {
        let conv = Box::new(Scripted::new([
            failed.clone(),
            Reply::Text(code_at(&secret, now())),
        ]));
        let mut tx = Transaction::start("svc", None, Some(stack.path()), conv).expect("start");
        let rc = tx.authenticate(0);
        assert_eq!(rc, codes::CONV_ERR, "{failed:?}");
        let prompts: Vec<&str> = tx.transcript().iter().map(|m| m.text.as_str()).collect();
        assert_eq!(prompts, ["login:"], "{failed:?}: no code prompt");
    }
    let conv = Box::new(Scripted::texts([u.name.clone(), code_at(&secret, now())]));
    let mut tx = Transaction::start("svc", None, Some(stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::SUCCESS);
    assert_eq!(tx.prompt_count(), 2);
}

/// docs/logging.md (GA's "Did not receive verification code from user"): without
/// `PAM_USER`, a conversation failing at libpam's `login:` prompt is logged as failing
/// "while asking for the user name", and no code is asked (the line for the code
/// prompt never appears). Control: with the name set, the same failure at the code
/// prompt is logged as failing "while asking for the code".
#[test]
fn a_failed_user_name_prompt_is_logged_as_such() {
    if !require_root("a_failed_user_name_prompt_is_logged_as_such") {
        return;
    }
    let (u, _secret) = TestUser::enrolled("uq");
    let stack = Stack::probe("svc", "");
    let confdir = stack.path().to_string_lossy().into_owned();
    let without_user = Driver::default()
        .arg("--confdir", &confdir)
        .arg("--service", "svc")
        .conv_fail("PAM_ABORT")
        .at(T0);
    let (d, logs) = capture_syslog(&without_user);
    assert_eq!(d.prompts, 1, "only libpam's login: prompt: {d:?}");
    assert_eq!(d.module_code(), "PAM_CONV_ERR", "{d:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("conversation failed while asking for the user name")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("asking for the code")),
        "{logs:?}"
    );
    // Control: the name set, the conversation fails at the code prompt.
    let with_user = Driver::new(&stack, "svc", &u.name)
        .conv_fail("PAM_ABORT")
        .at(T0);
    let (d, logs) = capture_syslog(&with_user);
    assert_eq!(d.prompts, 1, "{d:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("conversation failed while asking for the code")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("asking for the user name")),
        "{logs:?}"
    );
}

/// Answers one prompt and, at each message, notes whether this process holds the write
/// `flock` on the file with inode `ino` (the module's lock on a secret file).
struct LockProbe {
    answer: Option<String>,
    ino: std::rc::Rc<std::cell::Cell<u64>>,
    told: std::rc::Rc<std::cell::RefCell<Vec<(String, bool)>>>,
}

impl system_tests::pamapp::Conversation for LockProbe {
    fn reply(&mut self, m: &system_tests::pamapp::Message) -> Reply {
        use system_tests::pamapp::style;
        if m.style == style::PROMPT_ECHO_OFF || m.style == style::PROMPT_ECHO_ON {
            return self
                .answer
                .take()
                .map_or(Reply::Fail(codes::CONV_ERR), Reply::Text);
        }
        let held = holds_flock(std::process::id(), self.ino.get());
        self.told.borrow_mut().push((m.text.clone(), held));
        Reply::Text(String::new())
    }
}

/// A message to the user can wait on them (a graphical greeter or locker shows it until
/// it is acknowledged): the module holds no lock on the secret file while it is sent, or
/// every other login of the user would wait for it, then fail with the lock timed out.
/// An HOTP file is locked by every attempt; a damaged state record makes the attempt end
/// in the store fault's message after the lock was taken. Control: the same login with
/// the record intact logs in and moves the file's counter on (the lock was taken and the
/// file rewritten), and the probe sees a lock held by this process when there is one
/// (the file locked by the test itself).
#[test]
fn no_secret_file_lock_is_held_while_the_user_is_told_of_a_store_fault() {
    if !require_root("no_secret_file_lock_is_held_while_the_user_is_told_of_a_store_fault") {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let u = TestUser::create("lk");
    let secret = random_secret_b32();
    let path = u.write_secret(&format!("{secret}\n\" HOTP_COUNTER 1\n"), 0o600);
    let stack = Stack::with_module("svc", "");
    let ino = std::rc::Rc::new(std::cell::Cell::new(0));
    let told = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let login = |answer: String| {
        ino.set(std::fs::metadata(&path).expect("secret file").ino());
        told.borrow_mut().clear();
        let conv = Box::new(LockProbe {
            answer: Some(answer),
            ino: ino.clone(),
            told: told.clone(),
        });
        let mut tx =
            Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
        tx.authenticate(0)
    };
    // Control: the record intact.
    assert_eq!(login(oathtool_hotp(&secret, 1)), codes::SUCCESS);
    assert_eq!(
        file_value(&read(&path), "HOTP_COUNTER").as_deref(),
        Some("2"),
        "the file was locked and rewritten"
    );
    // Control of the probe: a lock this process holds is seen.
    {
        let f = std::fs::File::open(&path).expect("open");
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).expect("flock");
        assert!(holds_flock(
            std::process::id(),
            f.metadata().expect("stat").ino()
        ));
    }
    // The fault: a record with no slot that passes its checksum.
    let record = stack.state_file(u.uid);
    let damaged: Vec<u8> = std::fs::read(&record)
        .expect("the record")
        .iter()
        .map(|b| b ^ 0x5a)
        .collect();
    std::fs::write(&record, damaged).expect("damage the record");
    assert_eq!(login(oathtool_hotp(&secret, 2)), codes::AUTH_ERR);
    let told = told.borrow();
    assert!(
        told.iter().any(|(t, _)| t.contains("state store failed")),
        "the user is told of the store fault: {told:?}"
    );
    assert!(
        told.iter().all(|(_, held)| !held),
        "no lock on the secret file while a message is out: {told:?}"
    );
}

/// pam_totp(8), `nullok`: the application's `PAM_DISALLOW_NULL_AUTHTOK` (sshd's default,
/// `PermitEmptyPasswords no`) leaves the skip of a user without a file a skip, as in
/// google-authenticator: unprompted, and the stack's other module decides. The flag
/// reaches the modules: `pam_unix nullok` refuses an empty password under it and accepts
/// it without (the control of the driver). An enrolled user is still asked either way.
#[test]
fn disallow_null_authtok_leaves_the_nullok_skip_alone() {
    if !require_root("disallow_null_authtok_leaves_the_nullok_skip_alone") {
        return;
    }
    // <security/_pam_types.h>
    const PAM_DISALLOW_NULL_AUTHTOK: i32 = 0x1;
    let unenrolled = TestUser::create("nn");
    let (enrolled, _secret) = TestUser::enrolled("ne");
    let stack = Stack::new();
    stack.service(
        "svc",
        "auth required @MODULE@ nullok\nauth required pam_permit.so\n",
    );
    stack.service("empty", "auth required pam_unix.so nullok\n");
    // An empty password for the unenrolled user (`passwd -d`).
    let out = {
        let _g = user_database_lock();
        shadow_tool("passwd", &["-d", &unenrolled.name]).expect("passwd")
    };
    assert!(out.status.success(), "{out:?}");
    for flags in [0, PAM_DISALLOW_NULL_AUTHTOK] {
        let login = |service: &str, user: &str| {
            let conv = Box::new(Scripted::texts([""]));
            let mut tx =
                Transaction::start(service, Some(user), Some(stack.path()), conv).expect("start");
            (tx.authenticate(flags), tx.prompt_count())
        };
        assert_eq!(
            login("svc", &unenrolled.name),
            (codes::SUCCESS, 0),
            "[{flags:#x}] skipped, unprompted"
        );
        let (_, prompts) = login("svc", &enrolled.name);
        assert_eq!(prompts, 1, "[{flags:#x}] an enrolled user is asked");
        let (rc, _) = login("empty", &unenrolled.name);
        let expected = if flags == 0 {
            codes::SUCCESS
        } else {
            codes::AUTH_ERR
        };
        assert_eq!(rc, expected, "[{flags:#x}] pam_unix saw the flag");
    }
}

/// pam_totp(8), TYPING A CODE: the messages that say why a right code was refused are
/// sent under `PAM_SILENT` too (sudo's `pam_silent`), or a refused right code reads as
/// a typo and the user retries into the backoff. A code accepted, then typed again (a
/// replay, one failure with `throttle_after=1`), then again (throttled), each told.
/// Control: the same logins without the flag are told the same.
#[test]
fn refusals_are_told_under_pam_silent() {
    if !require_root("refusals_are_told_under_pam_silent") {
        return;
    }
    // <security/_pam_types.h>
    const PAM_SILENT: i32 = 0x8000;
    let (u, secret) = TestUser::enrolled("sl");
    for flags in [0, PAM_SILENT] {
        let stack = Stack::with_module("svc", "throttle_after=1");
        let code = code_at(&secret, now());
        let login = |flags: i32| {
            let conv = Box::new(Scripted::texts([code.clone()]));
            let mut tx =
                Transaction::start("svc", Some(&u.name), Some(stack.path()), conv).expect("start");
            let rc = tx.authenticate(flags);
            let told: Vec<String> = tx
                .transcript()
                .iter()
                .filter(|m| m.style == system_tests::pamapp::style::ERROR_MSG)
                .map(|m| m.text.clone())
                .collect();
            (rc, told)
        };
        let (rc, told) = login(0);
        assert_eq!(rc, codes::SUCCESS, "{told:?}");
        let (rc, told) = login(flags);
        assert_eq!(rc, codes::AUTH_ERR, "[{flags:#x}]");
        assert_eq!(
            told,
            ["that code was already used; wait for the next code"],
            "[{flags:#x}]"
        );
        let (rc, told) = login(flags);
        assert_eq!(rc, codes::AUTH_ERR, "[{flags:#x}]");
        assert!(
            told.len() == 1 && told[0].starts_with("too many failed codes; try again in "),
            "[{flags:#x}] {told:?}"
        );
    }
}

/// `code` in full-width digits (U+FF10..U+FF19), as some input methods type it.
fn fullwidth_digits(code: &str) -> String {
    code.chars()
        .map(|c| char::from_u32(0xFF10 + c.to_digit(10).expect("digit")).expect("char"))
        .collect()
}

/// F3/F4 and R11: decorated forms of the *right* code are each a failed attempt.
#[test]
fn malformed_answers_are_failed_attempts() {
    if !require_root("malformed_answers_are_failed_attempts") {
        return;
    }
    let (u, secret) = TestUser::enrolled("ma");
    let stack = Stack::probe("svc", "throttle_after=100 ceiling_burst=100");
    let good = code_at(&secret, T0);
    let fullwidth = fullwidth_digits(&good);
    let answers = vec![
        format!("{} {}", &good[..3], &good[3..]),
        format!(" {good}"),
        format!("{good} "),
        format!("+{good}"),
        format!("-{good}"),
        format!("{good}\n"),
        fullwidth,
        good[..5].to_string(),
        format!("{good}0"),
        format!("x{good}"),
        format!("{}{good}", "1".repeat(600)),
        "\u{8}\n\r\u{7f}INCORRECT".to_string(),
    ];
    for (i, a) in answers.iter().enumerate() {
        let d = login_at(&stack, &u, a, None, T0);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{a:?}: {d:?}");
        assert_eq!(d.prompts, 1);
        assert_eq!(
            stored_failures(&stack, u.uid),
            i as u32 + 1,
            "{a:?} counted as one failed attempt"
        );
    }
    // The exact code is still accepted (nothing above consumed it).
    let d = login_at(&stack, &u, &good, None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    assert_eq!(stored_failures(&stack, u.uid), 0);
}

/// F4: the answer OpenSSH's PAM conversation gives for an invalid user or a refused
/// root ("\b\n\r\177INCORRECT") is denied and logged once, at info, as the dummy
/// password docs/logging.md promises (GA's "Dummy password supplied by PAM" line).
/// Control: a wrong six-digit code gets no such line.
#[test]
fn sshds_dummy_password_is_logged_once_as_such() {
    if !require_root("sshds_dummy_password_is_logged_once_as_such") {
        return;
    }
    let (u, secret) = TestUser::enrolled("dp");
    let stack = Stack::probe("svc", "throttle_after=100 ceiling_burst=100");
    let dummy_lines = |lines: &[String]| {
        lines
            .iter()
            .filter(|l| {
                syslog_message(l).starts_with("dummy password supplied by PAM; did OpenSSH")
            })
            .count()
    };
    let (d, lines) = login_logged(&stack, &u, "\u{8}\n\r\u{7f}INCORRECT", None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(dummy_lines(&lines), 1, "one dummy-password line: {lines:?}");
    let (d, lines) = login_logged(&stack, &u, &wrong_totp(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "control: {d:?}");
    assert_eq!(dummy_lines(&lines), 0, "control: a wrong code: {lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| syslog_message(l).starts_with("invalid verification code for")),
        "control: the wrong code was evaluated: {lines:?}"
    );
}

/// A code as users paste or type it from an app ("123 456", "123-456", spaces around
/// it, a trailing CR, full-width digits) is one failed attempt, as in GA; the log says
/// the answer was not a code, which a wrong or drifted code never gets, so an admin
/// looking at a user's failures can tell the two apart. The answer never appears.
#[test]
fn pasted_forms_of_the_code_are_logged_as_not_a_code() {
    if !require_root("pasted_forms_of_the_code_are_logged_as_not_a_code") {
        return;
    }
    let (u, secret) = TestUser::enrolled("pf");
    let stack = Stack::probe("svc", "throttle_after=100 ceiling_burst=100");
    let good = code_at(&secret, T0);
    let fullwidth = fullwidth_digits(&good);
    let note = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("the answer is not a code (digits only"))
            .count()
    };
    let finals = |log: &[String]| {
        log.iter()
            .filter(|l| syslog_message(l).starts_with("invalid verification code for "))
            .count()
    };
    let pasted = [
        format!("{} {}", &good[..3], &good[3..]),
        format!("{}-{}", &good[..3], &good[3..]),
        format!(" {good} "),
        format!("{good}\r"),
        fullwidth,
    ];
    for (i, a) in pasted.iter().enumerate() {
        let (d, log) = login_logged(&stack, &u, a, None, T0);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{a:?}: {d:?}");
        assert_eq!(
            note(&log),
            1,
            "{a:?}: the log says it was not a code: {log:#?}"
        );
        assert_eq!(finals(&log), 1, "{a:?}: one failed attempt line: {log:#?}");
        // The user's name is set aside first: test names carry a process id, whose
        // digits may happen to spell half of the code.
        assert!(
            !log.iter()
                .map(|l| syslog_message(l).replace(&u.name, ""))
                .any(|m| m.contains(&good[..3]) || m.contains(&good[3..])),
            "{a:?}: no part of the answer is logged: {log:#?}"
        );
        assert_eq!(stored_failures(&stack, u.uid), i as u32 + 1, "{a:?}");
    }
    // Control: a wrong code of the right shape was compared: no such note.
    let window = [T0 - 30, T0, T0 + 30].map(|t| code_at(&secret, t));
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .expect("a code outside the window");
    let (d, log) = login_logged(&stack, &u, &wrong, None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(
        note(&log),
        0,
        "a compared code is not 'not a code': {log:#?}"
    );
    assert_eq!(finals(&log), 1, "{log:#?}");
    // The code itself, as the app shows it without separators, logs in.
    let (d, _) = login_logged(&stack, &u, &good, None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// docs/logging.md: under `forward_pass` the answer is the password followed by the
/// code, and one whose end is no code (`123 456` or `123-456` after the password, no
/// digits at all) is one failed attempt whose note says `the answer does not end in a
/// code`, never `is not a code` (the password is part of it). Control: the password
/// followed by a wrong code of the right shape was compared: no note; followed by the
/// right code, it logs in.
#[test]
fn forward_pass_answers_without_a_code_at_the_end_are_logged_as_such() {
    if !require_root("forward_pass_answers_without_a_code_at_the_end_are_logged_as_such") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fe");
    let stack = Stack::probe("svc", "forward_pass throttle_after=100 ceiling_burst=100");
    let good = code_at(&secret, T0);
    let note = |log: &[String]| {
        log.iter()
            .filter(|l| l.contains("the answer does not end in a code (digits only"))
            .count()
    };
    let other_note = |log: &[String]| log.iter().any(|l| l.contains("the answer is not a code"));
    let answers = [
        format!("pw{} {}", &good[..3], &good[3..]),
        format!("pw{}-{}", &good[..3], &good[3..]),
        "password".to_string(),
    ];
    for (i, a) in answers.iter().enumerate() {
        let (d, log) = login_logged(&stack, &u, a, None, T0);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{a:?}: {d:?}");
        assert_eq!(note(&log), 1, "{a:?}: {log:#?}");
        assert!(!other_note(&log), "{a:?}: {log:#?}");
        assert_eq!(stored_failures(&stack, u.uid), i as u32 + 1, "{a:?}");
    }
    let window = [T0 - 30, T0, T0 + 30].map(|t| code_at(&secret, t));
    let wrong = (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|c| !window.contains(c))
        .expect("a code outside the window");
    let (d, log) = login_logged(&stack, &u, &format!("pw{wrong}"), None, T0);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(note(&log), 0, "a compared code: {log:#?}");
    let (d, _) = login_logged(&stack, &u, &format!("pw{good}"), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// One of GA's eight password modes (GA's unit test).
struct Mode {
    name: &'static str,
    args: &'static str,
    /// PAM_AUTHTOK set by an earlier module: `None`, the code alone, pw+code, or pw.
    authtok: Tok,
    /// What the conversation answers (if asked).
    answer: Tok,
    /// Prompts for a successful login and for a failed one.
    prompts_ok: usize,
    prompts_fail: usize,
    /// Whether PAM_AUTHTOK is the password part after a success.
    forwards: bool,
    prompt_text: &'static str,
}

#[derive(Clone, Copy)]
enum Tok {
    None,
    Code,
    PwCode,
    Pw,
}

const PW: &str = "s3cret pw";

fn tok(t: Tok, code: &str) -> Option<String> {
    match t {
        Tok::None => None,
        Tok::Code => Some(code.to_string()),
        Tok::PwCode => Some(format!("{PW}{code}")),
        Tok::Pw => Some(PW.to_string()),
    }
}

const MODES: &[Mode] = &[
    Mode {
        name: "plain prompt",
        args: "",
        authtok: Tok::None,
        answer: Tok::Code,
        prompts_ok: 1,
        prompts_fail: 1,
        forwards: false,
        prompt_text: "Verification code: ",
    },
    Mode {
        name: "forward_pass",
        args: "forward_pass",
        authtok: Tok::None,
        answer: Tok::PwCode,
        prompts_ok: 1,
        prompts_fail: 1,
        forwards: true,
        prompt_text: "Password & verification code: ",
    },
    Mode {
        name: "use_first_pass",
        args: "use_first_pass",
        authtok: Tok::Code,
        answer: Tok::None,
        prompts_ok: 0,
        prompts_fail: 0,
        forwards: false,
        prompt_text: "",
    },
    Mode {
        name: "use_first_pass forward_pass",
        args: "use_first_pass forward_pass",
        authtok: Tok::PwCode,
        answer: Tok::None,
        prompts_ok: 0,
        prompts_fail: 0,
        forwards: true,
        prompt_text: "",
    },
    Mode {
        name: "try_first_pass, combined password",
        args: "try_first_pass",
        authtok: Tok::PwCode,
        answer: Tok::Code,
        prompts_ok: 0,
        prompts_fail: 1,
        forwards: false,
        prompt_text: "Verification code: ",
    },
    Mode {
        name: "try_first_pass forward_pass, combined password",
        args: "try_first_pass forward_pass",
        authtok: Tok::PwCode,
        answer: Tok::PwCode,
        prompts_ok: 0,
        prompts_fail: 1,
        forwards: true,
        prompt_text: "Password & verification code: ",
    },
    Mode {
        name: "try_first_pass, prompting",
        args: "try_first_pass",
        authtok: Tok::Pw,
        answer: Tok::Code,
        prompts_ok: 1,
        prompts_fail: 1,
        forwards: false,
        prompt_text: "Verification code: ",
    },
    Mode {
        name: "try_first_pass forward_pass, prompting",
        args: "try_first_pass forward_pass",
        authtok: Tok::Pw,
        answer: Tok::PwCode,
        prompts_ok: 1,
        prompts_fail: 1,
        forwards: true,
        prompt_text: "Password & verification code: ",
    },
];

/// The stack for one mode: `pam_unix` first when PAM_AUTHTOK is to be set (it prompts
/// `Password: ` and stores the answer), then the module as `requisite`, then a recorder
/// of PAM_AUTHTOK when there is one to record.
struct ModeStack {
    stack: Stack,
    out: std::path::PathBuf,
    unix_first: bool,
}

fn mode_stack(args: &str, unix_first: bool, record: bool) -> ModeStack {
    let stack = Stack::new();
    let rec = stack.path().join("record-authtok");
    std::fs::write(&rec, "#!/bin/sh\ncat > \"$1\"\n").expect("write recorder");
    std::fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod recorder");
    let out = stack.path().join("authtok.out");
    let mut lines = String::new();
    if unix_first {
        lines.push_str("auth optional pam_unix.so nodelay\n");
    }
    lines.push_str(&format!("auth requisite @MODULE@ {args}\n"));
    if record {
        lines.push_str(&format!(
            "auth optional pam_exec.so expose_authtok {} {}\n",
            rec.display(),
            out.display()
        ));
    }
    stack.service("svc", &lines);
    ModeStack {
        stack,
        out,
        unix_first,
    }
}

impl ModeStack {
    /// PAM_AUTHTOK as the module after ours saw it (None: not recorded).
    fn take_authtok(&self) -> Option<String> {
        let v = std::fs::read(&self.out).ok()?;
        let _ = std::fs::remove_file(&self.out);
        Some(String::from_utf8_lossy(&v).into_owned())
    }
}

fn drive_mode(ms: &ModeStack, user: &str, m: &Mode, code: &str, at: u64) -> Drive {
    let mut d = Driver::new(&ms.stack, "svc", user).at(at);
    if let Some(t) = tok(m.authtok, code) {
        assert!(ms.unix_first);
        d = d.answer(&t);
    }
    if let Some(a) = tok(m.answer, code) {
        d = d.answer(&a);
    }
    d.run()
}

/// Prompts issued by the module (not `pam_unix`'s `Password: `).
fn module_prompts(d: &Drive) -> Vec<String> {
    d.prompt_list()
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| t != "Password: ")
        .collect()
}

/// GA's scenario matrix in the eight modes: a valid code, the same code again (replay),
/// a wrong code, GA's default-window steps (T = 9998, 9999, 10001, 10002, 10000 with
/// the code of step 10000 → ERR, OK, OK, ERR, OK), with the prompt counts per mode.
#[test]
fn ga_password_modes_prompt_counts_and_forwarding() {
    if !require_root("ga_password_modes_prompt_counts_and_forwarding") {
        return;
    }
    let u = TestUser::create("pm");
    assert_eq!(oathtool_totp(GA_SECRET, 300_000, 30, 6, "sha1"), "050548");
    for m in MODES {
        let unix_first = !matches!(m.authtok, Tok::None);
        let record = unix_first || m.forwards;
        let ms = mode_stack(
            &format!("throttle_after=100 {}", m.args),
            unix_first,
            record,
        );
        let stack = &ms;
        let check = |d: &Drive, ok: bool, what: &str, code: &str| {
            let want = if ok { "PAM_SUCCESS" } else { "PAM_AUTH_ERR" };
            assert_eq!(d.result, want, "{} / {what}: {d:?}", m.name);
            let prompts = if ok { m.prompts_ok } else { m.prompts_fail };
            let mine = module_prompts(d);
            assert_eq!(mine.len(), prompts, "{} / {what}: prompts {d:?}", m.name);
            assert_eq!(
                d.prompts,
                prompts + usize::from(unix_first),
                "{} / {what}",
                m.name
            );
            for text in mine {
                assert_eq!(text, m.prompt_text, "{} / {what}", m.name);
            }
            let seen = ms.take_authtok();
            if ok && m.forwards {
                assert_eq!(seen.as_deref(), Some(PW), "{} / {what}: forwarded", m.name);
            } else if ok && unix_first {
                // Not forwarding: PAM_AUTHTOK stays what pam_unix stored.
                assert_eq!(seen, tok(m.authtok, code), "{} / {what}: untouched", m.name);
            }
        };
        // GA's default-window sequence with 050548 (step 10000).
        u.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH"), 0o600);
        reset_state(&ms.stack, u.uid);
        for (step, ok) in [(9998u64, false), (9999, true)] {
            let d = drive_mode(stack, &u.name, m, "050548", step * 30);
            check(&d, ok, &format!("T={step}"), "050548");
        }
        u.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH"), 0o600);
        reset_state(&ms.stack, u.uid);
        for (step, ok) in [(10_002u64, false), (10_001, true)] {
            let d = drive_mode(stack, &u.name, m, "050548", step * 30);
            check(&d, ok, &format!("T={step}"), "050548");
        }
        u.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH"), 0o600);
        reset_state(&ms.stack, u.uid);
        let d = drive_mode(stack, &u.name, m, "050548", 300_000);
        check(&d, true, "T=10000", "050548");
        // The same code again: replay.
        let d = drive_mode(stack, &u.name, m, "050548", 300_005);
        check(&d, false, "replay", "050548");
        // A wrong code.
        let d = drive_mode(stack, &u.name, m, "000000", 300_040);
        check(&d, false, "wrong code", "000000");
        // The next step's code: accepted.
        let next = oathtool_totp(GA_SECRET, 300_030, 30, 6, "sha1");
        let d = drive_mode(stack, &u.name, m, &next, 300_040);
        check(&d, true, "next step", &next);
        // A scratch code (8 digits), in the same mode.
        u.write_secret(&format!("{GA_SECRET}\n\" TOTP_AUTH\n12345678\n"), 0o600);
        let d = drive_mode(stack, &u.name, m, "12345678", 300_000);
        check(&d, true, "scratch", "12345678");
        assert!(
            !read(&u.secret_path()).contains("12345678"),
            "{}: scratch used",
            m.name
        );
        let d = drive_mode(stack, &u.name, m, "12345678", 300_000);
        check(&d, false, "scratch again", "12345678");
    }
}

/// Without `forward_pass`, a *prompted* answer must be the code alone; an answer from
/// `PAM_AUTHTOK` may carry a prefix, which is then not forwarded.
#[test]
fn prefix_rules_without_forward_pass() {
    if !require_root("prefix_rules_without_forward_pass") {
        return;
    }
    let (u, secret) = TestUser::enrolled("px");
    let code = code_at(&secret, T0);
    let probe = Stack::probe("svc", "");
    let d = login_at(&probe, &u, &format!("pw{code}"), None, T0);
    assert_eq!(
        d.module_code(),
        "PAM_AUTH_ERR",
        "prefix refused when prompted"
    );
    let ms = mode_stack("use_first_pass", true, true);
    let d = login_at(&ms.stack, &u, &format!("pw{code}"), None, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(
        ms.take_authtok(),
        Some(format!("pw{code}")),
        "not forwarded"
    );
    // use_first_pass without PAM_AUTHTOK: no prompt, denied.
    let probe = Stack::probe("svc", "use_first_pass");
    let d = login_at(&probe, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR");
    assert_eq!(d.prompts, 0);
}

/// `forward_pass` in-process through `pamapp::Transaction` (real clock); the value is
/// read by the next module of the stack.
#[test]
fn forward_pass_sets_authtok_in_process() {
    if !require_root("forward_pass_sets_authtok_in_process") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fp");
    let ms = mode_stack("forward_pass", false, true);
    let conv = Box::new(Scripted::texts([format!(
        "pässword{}",
        code_at(&secret, now())
    )]));
    let mut tx =
        Transaction::start("svc", Some(&u.name), Some(ms.stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::SUCCESS);
    assert_eq!(ms.take_authtok().as_deref(), Some("pässword"));
    assert_eq!(tx.prompt_count(), 1);
    assert_eq!(tx.transcript()[0].text, "Password & verification code: ");
    drop(tx);
    // A failure never reaches the next module (requisite) and sets nothing.
    let conv = Box::new(Scripted::texts(["pässword000000"]));
    let mut tx =
        Transaction::start("svc", Some(&u.name), Some(ms.stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::AUTH_ERR);
    assert_eq!(ms.take_authtok(), None);
}
