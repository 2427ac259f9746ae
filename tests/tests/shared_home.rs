//! Home directories shared by many hosts (NFS or CIFS homes) migrating from GA. Two
//! hosts are two PAM services, each with its own local state directory, reading one
//! secret file. GA keeps `DISALLOW_REUSE` and `RATE_LIMIT` in that file, so a code
//! used on one host is refused on the others and the rate limit counts every host's
//! attempts; GA's own module on the same kind of file is the control.
//!
//! pam_totp keeps those lines up to date where hosts with another state store read the
//! file (`shared_file=`; by default, `auto`, a file on a network or cluster file
//! system). The cross-host tests therefore run on the NFS stand-in
//! (tests/fuse/ptotpsquash.c, `system_tests::squash`), a FUSE file system, as a shared
//! home is one; on a local file system a TOTP login leaves the file alone (same bytes,
//! same inode, same mtime) and this host's store alone refuses the replay and
//! throttles, the lines still obeyed. A file without the lines is never written on a
//! TOTP login, and one that cannot be written still logs in.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use system_tests::squash::{require_fuse, squashed_login};
use system_tests::*;

const SVC: &str = "sshd";

/// GA's module as a one-line service, or `None` (skipped, failing under CI=true).
fn ga_host(test: &str) -> Option<Stack> {
    let Some(ga) = ga_module() else {
        skip(
            test,
            "google-authenticator's PAM module (libpam-google-authenticator)",
        );
        return None;
    };
    let stack = Stack::new();
    stack.service(SVC, &format!("auth required {}\n", ga.display()));
    Some(stack)
}

/// Two hosts: the same module line, separate local state directories.
fn two_hosts(args: &str) -> (Stack, Stack) {
    (Stack::with_module(SVC, args), Stack::with_module(SVC, args))
}

fn driver(stack: &Stack, u: &TestUser, answer: &str, at: u64) -> Driver {
    Driver::new(stack, SVC, &u.name).answer(answer).at(at)
}

/// A login with the secret file on a local file system (the test's home directory).
fn login(stack: &Stack, u: &TestUser, answer: &str, at: u64) -> Drive {
    driver(stack, u, answer, at).run()
}

/// A login with `u`'s home on the NFS stand-in (a FUSE file system): the run and the
/// module's log lines.
fn login_shared(stack: &Stack, u: &TestUser, answer: &str, at: u64) -> (Drive, Vec<String>) {
    squashed_login(
        &u.home,
        &u.secret_path(),
        None,
        &driver(stack, u, answer, at),
    )
}

fn told_already_used(d: &Drive) -> bool {
    d.messages.iter().any(|(_, m)| m.contains("already used"))
}

/// What shows that a file was neither rewritten nor touched: its bytes, its inode (a
/// rewrite renames a new file into place) and its modification time.
fn fingerprint(p: &Path) -> (Vec<u8>, u64, i64, i64) {
    let m = fs::metadata(p).expect("stat");
    (
        fs::read(p).expect("read"),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
    )
}

#[test]
fn a_code_used_on_one_host_is_refused_on_another_as_with_ga() {
    let t = "a_code_used_on_one_host_is_refused_on_another_as_with_ga";
    if !require_fuse(t) {
        return;
    }
    let Some(ga) = ga_host(t) else { return };
    let secret = random_secret_b32();
    let text = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let step = T0 / 30;

    // Control: GA refuses the code on the second host, from the file alone.
    let g = TestUser::create("shg");
    g.write_secret(&text, 0o600);
    let code = code_at(&secret, T0);
    let (d, lines) = login_shared(&ga, &g, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    let (d, lines) = login_shared(&ga, &g, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?} {lines:?}");
    let ga_file = read(&g.secret_path());
    assert_eq!(
        file_value(&ga_file, "DISALLOW_REUSE").as_deref(),
        Some(step.to_string().as_str()),
        "{ga_file}"
    );

    // pam_totp (shared_file=auto): host A accepts; host B, whose own store has never
    // seen the code, refuses it because A recorded the step in the shared file as GA
    // does.
    let u = TestUser::create("shr");
    let p = u.write_secret(&text, 0o600);
    let (a, b) = two_hosts("");
    let (d, lines) = login_shared(&a, &u, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    let (d, lines) = login_shared(&b, &u, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?} {lines:?}");
    assert!(told_already_used(&d), "{d:?}");
    let after = read(&p);
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE"),
        file_value(&ga_file, "DISALLOW_REUSE"),
        "{after}"
    );
    // The mode is kept (GA would force 0400).
    assert_eq!(
        fs::metadata(&p).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    // Host B itself works with the next code, which A then refuses in turn.
    let next = code_at(&secret, T0 + 30);
    let (d, lines) = login_shared(&b, &u, &next, T0 + 30);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    let (d, lines) = login_shared(&a, &u, &next, T0 + 31);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?} {lines:?}");
    assert!(told_already_used(&d), "{d:?}");
    let listed = file_value(&read(&p), "DISALLOW_REUSE").unwrap_or_default();
    assert_eq!(listed, format!("{step} {}", step + 1));

    // A file without GA's lines stays configuration: never written on a TOTP login.
    let plain = TestUser::create("shp");
    let text = totp_file(&secret);
    let pp = plain.write_secret(&text, 0o600);
    let before = fingerprint(&pp);
    let (d, lines) = login_shared(&a, &plain, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    assert_eq!(fingerprint(&pp), before);
}

#[test]
fn a_shared_rate_limit_counts_the_attempts_of_every_host_as_with_ga() {
    let t = "a_shared_rate_limit_counts_the_attempts_of_every_host_as_with_ga";
    if !require_fuse(t) || !require_tool(t, "oathtool") {
        return;
    }
    let Some(ga) = ga_host(t) else { return };
    let secret = random_secret_b32();
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" TOTP_AUTH\n");
    let wrong = |at: u64| wrong_totp(&secret, at);

    // Control: GA counts three attempts, then refuses a right code within 30 s.
    let g = TestUser::create("slg");
    g.write_secret(&text, 0o600);
    for at in [T0, T0 + 1, T0 + 2] {
        let (d, lines) = login_shared(&ga, &g, &wrong(at), at);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?} {lines:?}");
    }
    let (d, _) = login_shared(&ga, &g, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert_eq!(d.prompts, 0, "GA refuses without a prompt: {d:?}");
    let ga_line = file_value(&read(&g.secret_path()), "RATE_LIMIT");

    // pam_totp: two failures on host A, one on host B (each host's own backoff is far
    // from its threshold), then the right code on host B is refused by the shared limit.
    let u = TestUser::create("slr");
    let p = u.write_secret(&text, 0o600);
    let (a, b) = two_hosts("");
    for (host, at) in [(&a, T0), (&a, T0 + 1), (&b, T0 + 2)] {
        let (d, lines) = login_shared(host, &u, &wrong(at), at);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?} {lines:?}");
    }
    let (d, lines) = login_shared(&b, &u, &code_at(&secret, T0 + 3), T0 + 3);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(
        lines.iter().any(|l| l.contains("(RATE_LIMIT)")),
        "refused by the shared line: {lines:?}"
    );
    // The file says what GA's says after the same four attempts.
    assert_eq!(file_value(&read(&p), "RATE_LIMIT"), ga_line);
    // Control: once the interval is over, the right code works on either host.
    let (d, lines) = login_shared(&a, &u, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
}

/// A shared file that carries GA's lines but cannot be written (a read-only export,
/// configuration management): logins work, each host still refuses its own replays,
/// and the log says the other hosts do not see the attempt.
#[test]
fn a_read_only_shared_file_with_ga_lines_still_logs_in() {
    let t = "a_read_only_shared_file_with_ga_lines_still_logs_in";
    if !require_fuse(t) {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("sho");
    let (ro, f) = read_only_dir(&u, &secret);
    let text = read(&f);
    let stack = Stack::with_module(SVC, "secret=~/ro/ga");
    let dir = ro.to_str().expect("a UTF-8 path");
    // Made read-only first, then served by the stand-in (a FUSE file system over it).
    let setup = format!(
        "mount --bind '{dir}' '{dir}'\nmount -o remount,bind,ro '{dir}'\n{}",
        system_tests::squash::mount_squashed(&ro, &f, None)
    );
    let run_ro = |answer: &str, at: u64| {
        let (out, lines) =
            with_syslog_capture_after(&setup, &driver(&stack, &u, answer, at).command());
        (Drive::ran(&out), lines)
    };
    let code = code_at(&secret, T0);
    let (d, lines) = run_ro(&code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    // The rewrite was tried and failed (the control, a writable file, is rewritten:
    // a_code_used_on_one_host_is_refused_on_another_as_with_ga).
    assert!(
        lines.iter().any(|l| l.contains("not rewritten")
            && l.contains("Read-only file system")
            && l.contains("DISALLOW_REUSE")),
        "{lines:#?}"
    );
    let (d, _) = run_ro(&code, T0 + 1);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    assert_eq!(read(&f), text);
}

/// `u`'s directory `~/ro` (0700) holding the secret file `ga` with GA's lines.
fn read_only_dir(u: &TestUser, secret: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let ro = u.home.join("ro");
    fs::create_dir(&ro).expect("mkdir");
    std::os::unix::fs::chown(&ro, Some(u.uid), Some(u.gid)).expect("chown");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o700)).expect("chmod");
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let f = ro.join("ga");
    write_owned(&f, text.as_bytes(), u.uid, u.gid, 0o600);
    (ro, f)
}

/// The same file on a local file system (shared_file=auto): no host with another state
/// store reads it, so nothing is tried and nothing is logged on any login, the
/// performance regression's other face (a warning on every login of a managed file).
#[test]
fn a_read_only_local_file_with_ga_lines_logs_no_warning() {
    let t = "a_read_only_local_file_with_ga_lines_logs_no_warning";
    if !require_root(t) || !require_tool(t, "unshare") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("shl");
    let (ro, f) = read_only_dir(&u, &secret);
    let text = read(&f);
    let stack = Stack::with_module(SVC, "secret=~/ro/ga");
    let dir = ro.to_str().expect("a UTF-8 path");
    let setup = format!("mount --bind '{dir}' '{dir}'\nmount -o remount,bind,ro '{dir}'");
    let run_ro = |answer: &str, at: u64| {
        let (out, lines) =
            with_syslog_capture_after(&setup, &driver(&stack, &u, answer, at).command());
        (Drive::ran(&out), lines)
    };
    let code = code_at(&secret, T0);
    let (d, lines) = run_ro(&code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    let warned: Vec<_> = lines
        .iter()
        .filter(|l| {
            l.contains("not rewritten")
                || l.contains("cannot be locked")
                || l.contains("DISALLOW_REUSE")
                || l.contains("Read-only")
        })
        .collect();
    assert!(warned.is_empty(), "{lines:#?}");
    // The store refuses the replay by itself.
    let (d, lines) = run_ro(&code, T0 + 1);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    assert!(
        !lines.iter().any(|l| l.contains("not rewritten")),
        "{lines:#?}"
    );
    assert_eq!(read(&f), text);
}

/// shared_file=auto on a local file system: a TOTP login on a file with GA's lines
/// leaves it byte-identical, not rewritten (same inode, same mtime), while this host's
/// store refuses the replay, a step the file's DISALLOW_REUSE lists is still refused,
/// and its RATE_LIMIT still throttles.
#[test]
fn a_local_file_with_ga_lines_is_not_rewritten_and_its_lines_still_hold() {
    let t = "a_local_file_with_ga_lines_is_not_rewritten_and_its_lines_still_hold";
    if !require_root(t) || !require_tool(t, "oathtool") {
        return;
    }
    let secret = random_secret_b32();
    let step = T0 / 30;
    let u = TestUser::create("sla");
    // The next step is listed (another host used it, as the line says).
    let text = format!(
        "{secret}\n\" RATE_LIMIT 10 30 {}\n\" DISALLOW_REUSE {}\n\" TOTP_AUTH\n",
        T0 - 100,
        step + 1
    );
    let p = u.write_secret(&text, 0o600);
    let before = fingerprint(&p);
    let stack = Stack::with_module(SVC, "");
    let code = code_at(&secret, T0);
    let d = login(&stack, &u, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(fingerprint(&p), before, "left alone");
    let d = login(&stack, &u, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    // The listed step: refused from the line alone (this host's store never saw it).
    let d = login(&stack, &u, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    assert_eq!(fingerprint(&p), before, "left alone");
    // Control: the step after it works.
    let d = login(&stack, &u, &code_at(&secret, T0 + 60), T0 + 60);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");
    assert_eq!(fingerprint(&p), before, "left alone");

    // RATE_LIMIT still throttles: two attempts (below this host's own backoff), then
    // a right code refused for it.
    let r = TestUser::create("slb");
    let text = format!("{secret}\n\" RATE_LIMIT 2 30\n\" TOTP_AUTH\n");
    let p = r.write_secret(&text, 0o600);
    let before = fingerprint(&p);
    for at in [T0 + 1, T0 + 2] {
        assert_eq!(
            login(&stack, &r, &wrong_totp(&secret, at), at).result,
            "PAM_AUTH_ERR"
        );
    }
    let cmd = driver(&stack, &r, &code_at(&secret, T0 + 3), T0 + 3).command();
    let (out, lines) = with_syslog_capture(&cmd);
    let d = Drive::ran(&out);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(
        lines.iter().any(|l| l.contains("(RATE_LIMIT)")),
        "refused by the file's line: {lines:?}"
    );
    assert_eq!(fingerprint(&p), before, "left alone");
}

/// shared_file=yes: a file on a local file system is kept up to date as GA keeps it
/// (the NFS server that exports the homes, itself a login host, sees them locally).
#[test]
fn shared_file_yes_keeps_ga_lines_on_a_local_file_system_as_ga_does() {
    let t = "shared_file_yes_keeps_ga_lines_on_a_local_file_system_as_ga_does";
    if !require_root(t) {
        return;
    }
    let Some(ga) = ga_host(t) else { return };
    let secret = random_secret_b32();
    let text = format!("{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let code = code_at(&secret, T0);
    let g = TestUser::create("syg");
    g.write_secret(&text, 0o600);
    assert_eq!(login(&ga, &g, &code, T0).result, "PAM_SUCCESS");
    let ga_file = read(&g.secret_path());

    let u = TestUser::create("syr");
    let p = u.write_secret(&text, 0o600);
    let (a, b) = two_hosts("shared_file=yes");
    assert_eq!(login(&a, &u, &code, T0).result, "PAM_SUCCESS");
    let after = read(&p);
    for key in ["DISALLOW_REUSE", "RATE_LIMIT"] {
        assert_eq!(
            file_value(&after, key),
            file_value(&ga_file, key),
            "{key}: {after}"
        );
    }
    assert_eq!(
        file_value(&after, "DISALLOW_REUSE").as_deref(),
        Some((T0 / 30).to_string().as_str())
    );
    // A host with its own store refuses the code from the line.
    let d = login(&b, &u, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
}

/// shared_file=no on a network file system: the lines are left as they are (every host
/// shares one state store, or the admin chose so), though they are still obeyed.
#[test]
fn shared_file_no_leaves_ga_lines_alone_on_a_shared_home() {
    let t = "shared_file_no_leaves_ga_lines_alone_on_a_shared_home";
    if !require_fuse(t) {
        return;
    }
    let secret = random_secret_b32();
    let step = T0 / 30;
    let u = TestUser::create("snr");
    let text = format!(
        "{secret}\n\" RATE_LIMIT 3 30\n\" DISALLOW_REUSE {}\n\" TOTP_AUTH\n",
        step + 1
    );
    let p = u.write_secret(&text, 0o600);
    let before = fingerprint(&p);
    let (a, b) = two_hosts("shared_file=no");
    let code = code_at(&secret, T0);
    let (d, lines) = login_shared(&a, &u, &code, T0);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    assert_eq!(fingerprint(&p), before, "left alone");
    // This host's store refuses the replay; the listed step is refused from the line.
    let (d, _) = login_shared(&a, &u, &code, T0 + 5);
    assert!(told_already_used(&d), "{d:?}");
    // Nothing told host B of A's login: without a shared store= that is what `no` means.
    let (d, lines) = login_shared(&b, &u, &code, T0 + 6);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    let (d, _) = login_shared(&b, &u, &code_at(&secret, T0 + 30), T0 + 30);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
    assert_eq!(fingerprint(&p), before, "left alone");
}

/// A file padded to just under GA's 64 KiB cap: GA accepts it, and a login's update of
/// its `DISALLOW_REUSE` line would take it past the cap.
fn near_the_size_cap(head: &str) -> String {
    let mut text = format!("{head}\" X_PAD ");
    while text.len() < totp_core::gafile::MAX_FILE_LEN - 1 {
        text.push('a');
    }
    text.push('\n');
    text
}

/// A shared file too full for its `DISALLOW_REUSE` update: the login goes on with the
/// line left as it is, so a host with its own state store that reads the file takes the
/// same code again. The warning must say so; it said only that this host's store holds
/// the use, as if the code were refused everywhere. Control: the same file with room is
/// updated, no such warning, and the other host refuses the code.
#[test]
fn a_shared_file_too_full_for_its_reuse_line_warns_that_other_hosts_take_the_code_again() {
    let t = "a_shared_file_too_full_for_its_reuse_line_warns_that_other_hosts_take_the_code_again";
    if !require_root(t) {
        return;
    }
    let secret = random_secret_b32();
    let head = format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n");
    let code = code_at(&secret, T0);
    let (a, b) = two_hosts("shared_file=yes");
    let left_as_it_is = |lines: &[String]| {
        lines
            .iter()
            .find(|l| l.contains("DISALLOW_REUSE line was left as it is"))
            .cloned()
    };

    let u = TestUser::create("szr");
    let p = u.write_secret(&near_the_size_cap(&head), 0o600);
    let before = read(&p);
    let (d, lines) = capture_syslog(&driver(&a, &u, &code, T0));
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    assert_eq!(read(&p), before, "the line is left as it is");
    let warned = left_as_it_is(&lines).unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(
        warned.contains("hosts with another state store") && warned.contains("again"),
        "{warned}"
    );
    // What it warns of: the other host, whose own store never saw the code.
    let d = login(&b, &u, &code, T0 + 5);
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?}");

    // Control: room for the line.
    let c = TestUser::create("szc");
    c.write_secret(&head, 0o600);
    let (d, lines) = capture_syslog(&driver(&a, &c, &code, T0));
    assert_eq!(d.result, "PAM_SUCCESS", "{d:?} {lines:?}");
    assert_eq!(left_as_it_is(&lines), None, "{lines:#?}");
    let d = login(&b, &c, &code, T0 + 5);
    assert_eq!(d.result, "PAM_AUTH_ERR", "{d:?}");
    assert!(told_already_used(&d), "{d:?}");
}

/// A shared file (`shared_file=yes`) that cannot be rewritten, on a login whose change
/// is not a GA line of reuse or rate: a used scratch code (removed from the file) or an
/// HOTP code (the counter moved). A host with another state store that reads the file
/// takes the same code again, and the log must say so; it said only that the use was
/// recorded in this host's store, as if the code were gone everywhere. Control: the
/// same files writable are rewritten, no such line, and the other host refuses.
#[test]
fn a_shared_file_that_cannot_keep_a_scratch_code_or_hotp_use_warns_other_hosts_take_it_again() {
    let t =
        "a_shared_file_that_cannot_keep_a_scratch_code_or_hotp_use_warns_other_hosts_take_it_again";
    if !require_root(t) || !require_tool(t, "unshare") || !require_tool(t, "oathtool") {
        return;
    }
    let secret = random_secret_b32();
    let scratch = "73951846";
    let (a, b) = (
        Stack::with_module(SVC, "secret=~/ro/ga shared_file=yes"),
        Stack::with_module(SVC, "secret=~/ro/ga shared_file=yes"),
    );
    let cases = [
        (
            "sxs",
            "sxc",
            format!("{secret}\n\" TOTP_AUTH\n{scratch}\n"),
            scratch.to_owned(),
            "scratch code",
        ),
        (
            "sxh",
            "sxd",
            format!("{secret}\n\" HOTP_COUNTER 1\n"),
            oathtool_hotp(&secret, 1),
            "HOTP_COUNTER",
        ),
    ];
    for (tag, control_tag, text, answer, named) in cases {
        let not_rewritten =
            |lines: &[String]| lines.iter().find(|l| l.contains("not rewritten")).cloned();
        let u = TestUser::create(tag);
        let (ro, f) = read_only_dir(&u, &secret);
        write_owned(&f, text.as_bytes(), u.uid, u.gid, 0o600);
        let dir = ro.to_str().expect("a UTF-8 path");
        let setup = format!("mount --bind '{dir}' '{dir}'\nmount -o remount,bind,ro '{dir}'");
        let (out, lines) =
            with_syslog_capture_after(&setup, &driver(&a, &u, &answer, T0).command());
        let d = Drive::ran(&out);
        assert_eq!(d.result, "PAM_SUCCESS", "{named}: {d:?} {lines:?}");
        assert_eq!(read(&f), text, "{named}: read-only");
        let line = not_rewritten(&lines).unwrap_or_else(|| panic!("{named}: {lines:#?}"));
        assert!(
            line.contains(named)
                && line.contains("hosts with another state store")
                && line.contains("take the same code again"),
            "{line}"
        );
        // What it warns of: the other host, whose own store never saw the code.
        let d = login(&b, &u, &answer, T0 + 5);
        assert_eq!(d.result, "PAM_SUCCESS", "{named}: {d:?}");

        // Control: the same file, writable.
        let c = TestUser::create(control_tag);
        let (_, cf) = read_only_dir(&c, &secret);
        write_owned(&cf, text.as_bytes(), c.uid, c.gid, 0o600);
        let (d, lines) = capture_syslog(&driver(&a, &c, &answer, T0));
        assert_eq!(d.result, "PAM_SUCCESS", "{named}: {d:?} {lines:?}");
        assert_eq!(not_rewritten(&lines), None, "{named}: {lines:#?}");
        assert_ne!(read(&cf), text, "{named}: rewritten");
        let d = login(&b, &c, &answer, T0 + 5);
        assert_eq!(d.result, "PAM_AUTH_ERR", "{named}: {d:?}");
    }
}

/// A `DISALLOW_REUSE` entry ahead of the clock (a clock since stepped back, or a
/// hand-written line) is kept until the clock passes it. Each login meanwhile pruned
/// the step before it, the line's last entry, leaving the blank before that entry
/// behind: the line grew a byte per login, towards the size cap past which it is no
/// longer updated and hosts with another state store take the codes again. Control:
/// without an entry ahead, the same logins leave GA's bytes.
#[test]
fn a_reuse_entry_kept_ahead_of_the_clock_does_not_grow_the_line_login_by_login() {
    let t = "a_reuse_entry_kept_ahead_of_the_clock_does_not_grow_the_line_login_by_login";
    if !require_root(t) {
        return;
    }
    let secret = random_secret_b32();
    let ahead = T0 / 30 + 100_000;
    let (a, _) = two_hosts("shared_file=yes");
    let logins = |u: &TestUser| {
        // Four steps apart: each login prunes the one before it.
        for k in 0..4 {
            let at = T0 + k * 120;
            let d = login(&a, u, &code_at(&secret, at), at);
            assert_eq!(d.result, "PAM_SUCCESS", "login {k}: {d:?}");
        }
    };
    let last = (T0 + 3 * 120) / 30;

    let u = TestUser::create("sra");
    let p = u.write_secret(
        &format!("{secret}\n\" DISALLOW_REUSE {ahead}\n\" TOTP_AUTH\n"),
        0o600,
    );
    logins(&u);
    let line = format!("\" DISALLOW_REUSE {ahead} {last}\n");
    assert!(read(&p).contains(&line), "{:?}, not {line:?}", read(&p));

    // Control: no entry ahead.
    let c = TestUser::create("src");
    let p = c.write_secret(
        &format!("{secret}\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n"),
        0o600,
    );
    logins(&c);
    let line = format!("\" DISALLOW_REUSE {last}\n");
    assert!(read(&p).contains(&line), "{:?}, not {line:?}", read(&p));
}
