//! PAM callers other than sshd's single call: a host that runs as the user with another
//! group in effect (a locker started after `newgrp`, or installed setgid), a host whose
//! real and effective uids differ, one handle authenticated more than once (sshd's
//! keyboard-interactive retries), answers no terminal types (64 KiB, bytes that are not
//! UTF-8), and a conversation that fails every message it cannot show.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use system_tests::pamapp::{Conversation, Item, Message, Reply, Transaction, codes, style};
use system_tests::*;

/// A group no test user is in (Debian's `nogroup`).
const OTHER_GID: u32 = 65534;

/// A stack without `state_dir=`, readable by an unprivileged host: a non-root caller
/// then keeps its state in its own home, the default a screen locker gets.
fn home_mode_stack() -> Stack {
    home_mode_stack_with("")
}

/// [`home_mode_stack`] with module arguments.
fn home_mode_stack_with(args: &str) -> Stack {
    let stack = Stack::new();
    fs::set_permissions(stack.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let svc = stack.path().join("svc");
    fs::write(
        &svc,
        format!("auth required {} {args}\n", built().module.display()),
    )
    .expect("service");
    fs::set_permissions(&svc, fs::Permissions::from_mode(0o644)).expect("chmod");
    stack
}

/// pam-drive for `driver` under `setpriv` with `ids` (its uid and gid options), no
/// supplementary groups unless `ids` names them (`--groups=`), the libfaketime
/// environment kept; the log captured.
fn drive_with_ids(driver: &Driver, ids: &[String]) -> (Drive, Vec<String>) {
    let inner = driver.command();
    let mut cmd = Command::new("setpriv");
    cmd.args(ids);
    if !ids.iter().any(|a| a.starts_with("--groups=")) {
        cmd.arg("--clear-groups");
    }
    cmd.arg("env");
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            let mut kv = k.to_os_string();
            kv.push("=");
            kv.push(v);
            cmd.arg(kv);
        }
    }
    cmd.arg(inner.get_program()).args(inner.get_args());
    let (out, log) = with_syslog_capture(&cmd);
    (Drive::ran(&out), log)
}

/// E4 with another group in effect: a locker the user starts from a shell after
/// `newgrp` (real, effective and saved gid all another group), or one installed setgid
/// (effective gid another group), runs as the user and reads the user's own file by
/// its owner bits; the group it cannot shed must not deny the user's own code. What it
/// writes is the user's (owner), in the user's home. Control: the user's own group.
#[test]
fn a_host_running_as_the_user_with_another_group_unlocks_its_own_user() {
    let t = "a_host_running_as_the_user_with_another_group_unlocks_its_own_user";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let stack = home_mode_stack();
    // The real clock: a setgid host runs in secure mode, where the loader ignores the
    // libfaketime preload. One account per case, so each right code is a first use.
    for (tag, what) in [
        ("pcg0", "control: the user's own group"),
        ("pcg1", "after newgrp"),
        ("pcg2", "setgid"),
    ] {
        let (u, secret) = TestUser::enrolled(tag);
        let ids = match tag {
            "pcg0" => vec![format!("--reuid={}", u.uid), format!("--regid={}", u.gid)],
            "pcg1" => vec![format!("--reuid={}", u.uid), format!("--regid={OTHER_GID}")],
            _ => vec![
                format!("--reuid={}", u.uid),
                format!("--rgid={}", u.gid),
                format!("--egid={OTHER_GID}"),
            ],
        };
        let code = code_at(&secret, mid_step());
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
        assert_eq!(d.result, "PAM_SUCCESS", "{what}: {d:?}\n{log:#?}");
        let record = u.home.join(".local/state/pam_totp").join(u.uid.to_string());
        let (mode, owner, _) = mode_owner(&record);
        assert_eq!(
            (mode, owner),
            (0o600, u.uid),
            "{what}: the user's own record"
        );
        // The code it accepted is now used: the same host refuses it.
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{what}: replay: {d:?}\n{log:#?}");
        assert!(
            log.iter().any(|l| l.contains("code already used")),
            "{what}: {log:#?}"
        );
        // Nothing in the user's home written as another owner; the secret unchanged.
        for entry in fs::read_dir(record.parent().expect("dir")).expect("read store") {
            let p = entry.expect("entry").path();
            assert_eq!(mode_owner(&p).1, u.uid, "{what}: {p:?}");
        }
        assert_eq!(read(&u.secret_path()), totp_file(&secret), "{what}");

        // A scratch code rewrites the secret file: as the user, who still owns it, with
        // its mode; the code is gone from it and refused the second time.
        let scratch = "73519264";
        u.write_secret(&format!("{}{scratch}\n", totp_file(&secret)), 0o400);
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, scratch), &ids);
        assert_eq!(d.result, "PAM_SUCCESS", "{what}: scratch: {d:?}\n{log:#?}");
        let (mode, owner, _) = mode_owner(&u.secret_path());
        assert_eq!((mode, owner), (0o400, u.uid), "{what}: the rewritten file");
        assert_eq!(read(&u.secret_path()), totp_file(&secret), "{what}");
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, scratch), &ids);
        assert_eq!(
            d.result, "PAM_AUTH_ERR",
            "{what}: scratch again: {d:?}\n{log:#?}"
        );
    }
}

/// A scratch code at a host running as the user with another group rewrites a secret
/// file `allowed_perm=0640` lets its group read: the new file, created with the host's
/// group, must not hand the secret to that group. The old group is put back where the
/// host is in it; where it is not, the group loses its bits. Control: a host in the
/// user's own group keeps the file as it was.
#[test]
fn a_rewrite_at_a_host_in_another_group_does_not_give_the_secret_to_that_group() {
    let t = "a_rewrite_at_a_host_in_another_group_does_not_give_the_secret_to_that_group";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let stack = home_mode_stack_with("allowed_perm=0640");
    for (tag, what) in [
        ("pcg3", "control: the user's own group"),
        ("pcg4", "another group, the user's not among its groups"),
        ("pcg5", "another group, the user's among its groups"),
    ] {
        let (u, secret) = TestUser::enrolled(tag);
        let ids = match tag {
            "pcg3" => vec![format!("--reuid={}", u.uid), format!("--regid={}", u.gid)],
            "pcg4" => vec![format!("--reuid={}", u.uid), format!("--regid={OTHER_GID}")],
            _ => vec![
                format!("--reuid={}", u.uid),
                format!("--regid={OTHER_GID}"),
                format!("--groups={}", u.gid),
            ],
        };
        let scratch = "84620391";
        u.write_secret(&format!("{}{scratch}\n", totp_file(&secret)), 0o640);
        assert_eq!(
            mode_owner(&u.secret_path()),
            (0o640, u.uid, u.gid),
            "{what}"
        );
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, scratch), &ids);
        assert_eq!(d.result, "PAM_SUCCESS", "{what}: {d:?}\n{log:#?}");
        assert_eq!(
            read(&u.secret_path()),
            totp_file(&secret),
            "{what}: rewritten"
        );
        let (mode, owner, gid) = mode_owner(&u.secret_path());
        assert_eq!(owner, u.uid, "{what}");
        if tag == "pcg4" {
            assert_eq!(
                (mode, gid),
                (0o600, OTHER_GID),
                "{what}: the host's group cannot read it"
            );
        } else {
            assert_eq!((mode, gid), (0o640, u.gid), "{what}: as it was");
        }
        // The file as rewritten still logs in.
        let code = code_at(&secret, mid_step());
        let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
        assert_eq!(d.result, "PAM_SUCCESS", "{what}: after: {d:?}\n{log:#?}");
    }
}

/// Waits until the current 30-s step has at least 10 s left, so a code computed now is
/// still the current one when the module checks it; returns the time.
fn mid_step() -> u64 {
    loop {
        let t = now();
        if t % 30 < 20 {
            return t;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A conversation that answers prompts from a script and fails every other message
/// (`PAM_ERROR_MSG`, `PAM_TEXT_INFO`) with `PAM_CONV_ERR`: a caller with nowhere to show
/// them, as a screen locker drawing only a password field can be. With `shows`, the
/// same answers and every message acknowledged (the control).
struct PromptsOnly {
    answers: std::collections::VecDeque<Reply>,
    shows: bool,
}

impl PromptsOnly {
    fn new<I: IntoIterator<Item = Reply>>(answers: I, shows: bool) -> Box<PromptsOnly> {
        Box::new(PromptsOnly {
            answers: answers.into_iter().collect(),
            shows,
        })
    }
}

impl Conversation for PromptsOnly {
    fn reply(&mut self, message: &Message) -> Reply {
        match message.style {
            style::PROMPT_ECHO_OFF | style::PROMPT_ECHO_ON => self
                .answers
                .pop_front()
                .unwrap_or(Reply::Fail(codes::CONV_ERR)),
            _ if self.shows => Reply::Text(String::new()),
            _ => Reply::Fail(codes::CONV_ERR),
        }
    }
}

fn texts(answers: &[&str]) -> Vec<Reply> {
    answers
        .iter()
        .map(|a| Reply::Text((*a).to_string()))
        .collect()
}

/// sshd's keyboard-interactive calls `pam_authenticate` again on the same handle after
/// a failure, and an application may call it again after a success. Each call is one
/// attempt against the record as the previous call left it: a code accepted on the
/// handle is refused as used on the next call, a failure is counted, and a right code
/// after a wrong one on the same handle logs in (control) and clears the failures.
#[test]
fn one_handle_authenticated_again_is_one_attempt_per_call() {
    if !require_root("one_handle_authenticated_again_is_one_attempt_per_call") {
        return;
    }
    let stack = Stack::with_module("kbd", "");
    let (u, secret) = TestUser::enrolled("pch");
    let code = code_at(&secret, mid_step());
    let wrong = wrong_totp(&secret, now());
    let conv = PromptsOnly::new(texts(&[&code, &code, &wrong]), true);
    let mut tx = Transaction::start("kbd", Some(&u.name), Some(stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::SUCCESS, "the right code");
    assert_eq!(stored_failures(&stack, u.uid), 0);
    assert_eq!(
        tx.authenticate(0),
        codes::AUTH_ERR,
        "the same code again, same handle"
    );
    assert!(
        tx.transcript()
            .iter()
            .any(|m| m.style == style::ERROR_MSG && m.text.contains("already used")),
        "{:?}",
        tx.transcript()
    );
    assert_eq!(tx.authenticate(0), codes::AUTH_ERR, "a wrong code");
    assert!(stored_failures(&stack, u.uid) >= 1, "the failure counted");
    assert_eq!(tx.prompt_count(), 3, "one prompt per call");
    drop(tx);

    // A wrong code, then the right one, on one handle: the retry sshd offers.
    let (v, secret) = TestUser::enrolled("pci");
    let at = mid_step();
    let code = code_at(&secret, at);
    let wrong = wrong_totp(&secret, at);
    let conv = PromptsOnly::new(texts(&[&wrong, &code]), true);
    let mut tx = Transaction::start("kbd", Some(&v.name), Some(stack.path()), conv).expect("start");
    assert_eq!(tx.authenticate(0), codes::AUTH_ERR, "a wrong code");
    assert_eq!(stored_failures(&stack, v.uid), 1, "counted once");
    assert_eq!(tx.authenticate(0), codes::SUCCESS, "then the right one");
    assert_eq!(stored_failures(&stack, v.uid), 0, "the success clears it");
    // The step of the code answered, not of the clock now: a step boundary may have
    // passed since (a loaded machine), and the answer is still in the window.
    assert_eq!(stored_last_step(&stack, v.uid), Some(at / 30));
}

/// What a client can put in `resp` that no terminal types: 64 KiB, and bytes that are
/// not UTF-8 (another locale's keyboard, a client sending raw bytes), alone or around
/// the right code. Each is one failed attempt (prompted once, `PAM_AUTH_ERR`, counted),
/// never a crash nor a success; the right code afterwards still logs in (control).
#[test]
fn answers_no_terminal_types_are_one_failed_attempt_each() {
    if !require_root("answers_no_terminal_types_are_one_failed_attempt_each") {
        return;
    }
    let stack = Stack::with_module("odd", "throttle_after=100 ceiling_burst=100");
    let (u, secret) = TestUser::enrolled("pco");
    let at = mid_step();
    let good = code_at(&secret, at);
    let answers: Vec<(&str, Vec<u8>)> = vec![
        ("64 KiB of digits", vec![b'1'; 64 * 1024]),
        ("64 KiB ending in the code", {
            let mut a = vec![b'7'; 64 * 1024 - 6];
            a.extend_from_slice(good.as_bytes());
            a
        }),
        ("Latin-1 bytes", b"\xe9\xe8\xff\xfe12".to_vec()),
        ("the code after a stray byte", {
            let mut a = b"\xff".to_vec();
            a.extend_from_slice(good.as_bytes());
            a
        }),
        ("the code before a stray byte", {
            let mut a = good.as_bytes().to_vec();
            a.push(0x80);
            a
        }),
    ];
    for (i, (what, bytes)) in answers.into_iter().enumerate() {
        let conv = PromptsOnly::new([Reply::Bytes(bytes)], true);
        let mut tx =
            Transaction::start("odd", Some(&u.name), Some(stack.path()), conv).expect("start");
        assert_eq!(tx.authenticate(0), codes::AUTH_ERR, "{what}");
        assert_eq!(tx.prompt_count(), 1, "{what}");
        assert_eq!(
            stored_failures(&stack, u.uid),
            i as u32 + 1,
            "{what}: counted"
        );
    }
    let conv = PromptsOnly::new(texts(&[&good]), true);
    let mut tx = Transaction::start("odd", Some(&u.name), Some(stack.path()), conv).expect("start");
    assert_eq!(
        tx.authenticate(0),
        codes::SUCCESS,
        "control: the right code"
    );
    assert_eq!(stored_failures(&stack, u.uid), 0);
}

/// A caller that cannot show `PAM_ERROR_MSG` / `PAM_TEXT_INFO` (its conversation fails
/// them) gets the same verdicts as one that can: the right code logs in, a used code and
/// a throttled attempt are denied with `PAM_AUTH_ERR` (not a conversation error, which a
/// stack may treat otherwise). The message was sent and failed (seen in the transcript);
/// control: the same calls with every message acknowledged.
#[test]
fn a_caller_that_cannot_show_messages_gets_the_same_verdicts() {
    if !require_root("a_caller_that_cannot_show_messages_gets_the_same_verdicts") {
        return;
    }
    // Backoff after one failure: the second wrong code is refused unevaluated, with a
    // message.
    let stack = Stack::with_module("msg", "throttle_after=1");
    // Both accounts live to the end: a deleted one's uid, and its record, would be the
    // next one's.
    let users = [
        (TestUser::enrolled("pcm"), true),
        (TestUser::enrolled("pcn"), false),
    ];
    for ((u, secret), shows) in &users {
        let shows = *shows;
        let code = code_at(secret, mid_step());
        let wrong = wrong_totp(secret, now());
        let conv = PromptsOnly::new(texts(&[&code, &code, &wrong, &wrong]), shows);
        let mut tx =
            Transaction::start("msg", Some(&u.name), Some(stack.path()), conv).expect("start");
        let verdicts: Vec<i32> = (0..4).map(|_| tx.authenticate(0)).collect();
        assert_eq!(
            verdicts,
            [
                codes::SUCCESS,
                codes::AUTH_ERR,
                codes::AUTH_ERR,
                codes::AUTH_ERR
            ],
            "shows messages: {shows}; {:?}",
            tx.transcript()
        );
        let errors: Vec<&str> = tx
            .transcript()
            .iter()
            .filter(|m| m.style == style::ERROR_MSG)
            .map(|m| m.text.as_str())
            .collect();
        assert!(
            errors.iter().any(|t| t.contains("already used"))
                && errors
                    .iter()
                    .any(|t| t.starts_with("too many failed codes")),
            "shows messages: {shows}; the messages were sent: {errors:?}"
        );
    }
}

/// Hosts whose real and effective uids differ. Set-user-ID root (real uid the user,
/// effective root: `su`, a locker installed setuid) is a root host: it reads the file as
/// the account and keeps the record in the root-owned state directory, nothing in the
/// user's home. A root daemon that took the user's effective uid (real uid root) is the
/// user's host: its own account's code logs in, kept in that account's home as the
/// account, and another account is denied with nothing written in that one's home.
#[test]
fn hosts_with_real_and_effective_uids_apart() {
    let t = "hosts_with_real_and_effective_uids_apart";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let (u, secret) = TestUser::enrolled("pcs");
    let (v, v_secret) = TestUser::enrolled("pcv");
    let (w, w_secret) = TestUser::enrolled("pcw");
    let home_store = |u: &TestUser| u.home.join(".local/state/pam_totp");

    // Set-user-ID root, run by u for u.
    let stack = Stack::with_module("svc", "");
    let ids = [format!("--ruid={}", u.uid), "--euid=0".to_string()];
    let code = code_at(&secret, mid_step());
    let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
    assert_eq!(d.result, "PAM_SUCCESS", "setuid root: {d:?}\n{log:#?}");
    let (_, owner, _) = mode_owner(&stack.state_file(u.uid));
    assert_eq!(owner, 0, "the root-owned store's record");
    assert!(!home_store(&u).exists(), "nothing in the user's home");
    let (d, log) = drive_with_ids(&Driver::login(&stack, &u, &code), &ids);
    assert_eq!(
        d.result, "PAM_AUTH_ERR",
        "setuid root, replay: {d:?}\n{log:#?}"
    );

    // Real uid root, effective uid v.
    let stack = home_mode_stack();
    let ids = [
        "--ruid=0".to_string(),
        format!("--euid={}", v.uid),
        format!("--regid={}", v.gid),
    ];
    let code = code_at(&v_secret, mid_step());
    let (d, log) = drive_with_ids(&Driver::login(&stack, &v, &code), &ids);
    assert_eq!(d.result, "PAM_SUCCESS", "effective uid v: {d:?}\n{log:#?}");
    let (mode, owner, _) = mode_owner(&home_store(&v).join(v.uid.to_string()));
    assert_eq!((mode, owner), (0o600, v.uid), "v's own record, in v's home");
    // The same host for w: w's file is not its to read, even with its real uid root.
    let code = code_at(&w_secret, mid_step());
    let (d, log) = drive_with_ids(&Driver::login(&stack, &w, &code), &ids);
    assert_eq!(
        d.result, "PAM_AUTH_ERR",
        "effective uid v, for w: {d:?}\n{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("cannot switch to the identity")),
        "{log:#?}"
    );
    assert!(!home_store(&w).exists(), "nothing in w's home");
    assert_eq!(read(&w.secret_path()), totp_file(&w_secret));
}

/// `PAM_USER` as bytes that are not UTF-8 (set by an application or an earlier module:
/// a Latin-1 login name, an account's name with a stray byte): the module reads the
/// item raw, asks for the code as for any name, and denies with `PAM_AUTH_ERR`, the
/// conversation the same as for an ASCII name without an account; the account's own
/// right code does not help its name with a byte added. Control: the account's name
/// with that code logs in.
#[test]
fn user_names_that_are_not_utf8_are_asked_and_denied() {
    if !require_root("user_names_that_are_not_utf8_are_asked_and_denied") {
        return;
    }
    let stack = Stack::probe("names", "");
    let (u, secret) = TestUser::enrolled("pcu");
    let code = code_at(&secret, mid_step());
    let attempt = |name: &[u8]| {
        let conv = PromptsOnly::new(texts(&[&code]), true);
        let mut tx = Transaction::start("names", None, Some(stack.path()), conv).expect("start");
        assert_eq!(tx.set_item(Item::User, name), codes::SUCCESS);
        let rc = tx.authenticate(0);
        (rc, tx.transcript().to_vec())
    };
    let (_, unknown) = attempt(b"ptt-no-such-user-pcu");
    let mut stray = u.name.as_bytes().to_vec();
    stray.push(0xff);
    for name in [b"caf\xe9".to_vec(), b"\xffroot".to_vec(), stray] {
        let (rc, transcript) = attempt(&name);
        let shown = String::from_utf8_lossy(&name).into_owned();
        assert_eq!(rc, codes::AUTH_ERR, "{shown}");
        assert_eq!(transcript, unknown, "{shown}: asked as any name is");
    }
    let (rc, transcript) = attempt(u.name.as_bytes());
    assert_eq!(rc, codes::SUCCESS, "control: {transcript:?}");
}

/// What pam_totp(8) tells about a locker running as the user: its records are its own,
/// in its home, apart from root's state directory. A code accepted there is not used
/// for root's services (sshd, sudo) and the reverse; each refuses a code used twice at
/// itself (the controls).
#[test]
fn a_locker_running_as_the_user_and_roots_services_keep_apart_records() {
    let t = "a_locker_running_as_the_user_and_roots_services_keep_apart_records";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let (u, secret) = TestUser::enrolled("pcr");
    let locker = home_mode_stack();
    let root_services = Stack::with_module("svc", "");
    let as_user = [format!("--reuid={}", u.uid), format!("--regid={}", u.gid)];
    let code = code_at(&secret, mid_step());
    let at_locker = || drive_with_ids(&Driver::login(&locker, &u, &code), &as_user);
    let at_root = || Driver::login(&root_services, &u, &code).run();

    let (d, log) = at_locker();
    assert_eq!(d.result, "PAM_SUCCESS", "locker: {d:?}\n{log:#?}");
    let d = at_root();
    assert_eq!(
        d.result, "PAM_SUCCESS",
        "root's service, the same code: {d:?}"
    );
    let d = at_root();
    assert_eq!(d.result, "PAM_AUTH_ERR", "root's service, again: {d:?}");
    let (d, log) = at_locker();
    assert_eq!(d.result, "PAM_AUTH_ERR", "locker, again: {d:?}\n{log:#?}");
    assert!(
        u.home
            .join(".local/state/pam_totp")
            .join(u.uid.to_string())
            .exists()
            && root_services.state_file(u.uid).exists(),
        "one record in each store"
    );
}
