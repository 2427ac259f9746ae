//! Hostile secret files, hostile user names and the no-oracle rule, as root with real
//! users (the module opens files as the user) — SECURITY.md cases A1–A15, B1, B2, R9.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use system_tests::*;

const PROMPT: (i32, &str) = (1, "Verification code: ");

fn prompt_only(d: &Drive) -> bool {
    d.prompt_list() == vec![(PROMPT.0, PROMPT.1.to_string())]
}

type SetupFn = Box<dyn Fn(&TestUser, &Path)>;
/// (what, module code, prompts) of one run.
type Seen = (String, String, Vec<(i32, String)>);

/// One hostile setup at the user's secret path; every case is offered the *right* code
/// for the secret it (indirectly) holds, so only the refusal can make it fail.
struct Case {
    name: &'static str,
    setup: SetupFn,
    /// What the module's log line gives as the refusal's cause, after the file's path.
    cause: String,
}

/// The cause logged for a secret path that is a symbolic link.
const LINK: &str = "refused (file is a symbolic link (not followed))";

/// The address space every hostile-file login runs in (A10: reading a 2 GiB file, or
/// anything near it, would not fit); the control logs in within the same limit.
const AS_LIMIT: u64 = 256 << 20;

/// `driver` with its address space limited to [`AS_LIMIT`] (prlimit, soft and hard),
/// and the syslog lines it sent ([`with_syslog_capture`]).
fn logged_in_small_memory(driver: &Driver) -> (Drive, Vec<String>) {
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={AS_LIMIT}")).args(["--", "env"]);
    append_env_exec(&mut cmd, &driver.command());
    let (out, lines) = with_syslog_capture(&cmd);
    (Drive::ran(&out), lines)
}

/// The system calls `driver`'s run made on `target` (strace `-P`, descriptors shown
/// with their paths, so a read of a descriptor opened through a link counts too); the
/// run itself must end normally.
fn calls_on(driver: &Driver, target: &Path) -> Vec<String> {
    let trace = tempfile::NamedTempFile::new().expect("trace file");
    let inner = driver.command();
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-y", "-P"])
        .arg(target)
        .arg("-o")
        .arg(trace.path());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            let mut kv = k.to_os_string();
            kv.push("=");
            kv.push(v);
            cmd.arg("-E").arg(kv);
        }
    }
    cmd.arg(inner.get_program()).args(inner.get_args());
    Drive::parse(&cmd.output().expect("strace pam-drive"));
    fs::read_to_string(trace.path())
        .expect("trace")
        .lines()
        .filter(|l| !l.contains("+++") && !l.contains("--- SIG"))
        .map(str::to_owned)
        .collect()
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).expect("rm dir"),
        Ok(_) => fs::remove_file(p).expect("rm"),
        Err(_) => {}
    }
}

#[test]
fn hostile_secret_files_are_denied_even_with_nullok() {
    if !require_root("hostile_secret_files_are_denied_even_with_nullok") {
        return;
    }
    let secret = random_secret_b32();
    let u = TestUser::create("hf");
    let other = TestUser::create("ho");
    // Below a directory only root writes, so that the control can name the file itself.
    let outside = tempfile::tempdir_in(private_tmp()).expect("tempdir");
    // A valid, root-owned file the user may read (0644): following a link to it would work.
    let root_file = outside.path().join("root-owned");
    write_owned(&root_file, totp_file(&secret).as_bytes(), 0, 0, 0o644);
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let root_before = fs::read(&root_file).expect("read");
    // Another user's valid file, readable.
    let other_file = other.home.join(".google_authenticator");
    write_owned(
        &other_file,
        totp_file(&secret).as_bytes(),
        other.uid,
        other.gid,
        0o644,
    );
    fs::set_permissions(&other.home, fs::Permissions::from_mode(0o755)).expect("chmod");

    let valid = totp_file(&secret);
    // `contents` at the secret path with `mode`, owned by `owner` (uid, gid) or the user.
    let written = |contents: String, owner: Option<(u32, u32)>, mode: u32| -> SetupFn {
        Box::new(move |u, p| {
            let (uid, gid) = owner.unwrap_or((u.uid, u.gid));
            write_owned(p, contents.as_bytes(), uid, gid, mode)
        })
    };
    let cases: Vec<Case> = vec![
        Case {
            name: "symlink to a root-owned file",
            setup: Box::new({
                let t = root_file.clone();
                move |_, p| symlink(&t, p).expect("symlink")
            }),
            cause: LINK.into(),
        },
        Case {
            name: "symlink to another user's file",
            setup: Box::new({
                let t = other_file.clone();
                move |_, p| symlink(&t, p).expect("symlink")
            }),
            cause: LINK.into(),
        },
        Case {
            name: "symlink to /dev/zero",
            setup: Box::new(|_, p| symlink("/dev/zero", p).expect("symlink")),
            cause: LINK.into(),
        },
        Case {
            name: "FIFO",
            setup: Box::new(|u, p| {
                let st = Command::new("mkfifo").arg("-m").arg("600").arg(p).status();
                assert!(st.expect("mkfifo").success());
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).expect("chown");
            }),
            cause: "refused (not a regular file: it is a FIFO)".into(),
        },
        Case {
            name: "2 GiB sparse file",
            setup: Box::new({
                let v = valid.clone();
                move |u, p| {
                    write_owned(p, v.as_bytes(), u.uid, u.gid, 0o600);
                    let f = fs::OpenOptions::new().write(true).open(p).expect("open");
                    f.set_len(2 << 30).expect("set_len");
                }
            }),
            cause: "refused (file is larger than 65536 bytes)".into(),
        },
        Case {
            name: "wrong owner (another user)",
            // Readable by the user, as the module opens it with the user's identity (a
            // 0600 file of another owner fails at the open, EACCES); the mode 0644 would
            // be refused too, so the logged cause shows which check refused it.
            setup: written(valid.clone(), Some((other.uid, other.gid)), 0o644),
            cause: format!("refused (owned by uid {}, which is not allowed)", other.uid),
        },
        Case {
            name: "wrong owner (root, home mode)",
            setup: written(valid.clone(), Some((0, 0)), 0o644),
            cause: "refused (owned by uid 0, which is not allowed)".into(),
        },
        Case {
            name: "group-writable 0620",
            setup: written(valid.clone(), None, 0o620),
            cause: "refused (mode 0620 is too permissive)".into(),
        },
        Case {
            name: "world-writable 0602",
            setup: written(valid.clone(), None, 0o602),
            cause: "refused (mode 0602 is too permissive)".into(),
        },
        Case {
            name: "group-readable 0640",
            setup: written(valid.clone(), None, 0o640),
            cause: "refused (mode 0640 is too permissive)".into(),
        },
        Case {
            name: "setuid bit 04600",
            setup: written(valid.clone(), None, 0o4600),
            cause: "refused (mode 4600 is too permissive)".into(),
        },
        Case {
            name: "hard link (nlink 2)",
            setup: Box::new({
                let v = valid.clone();
                move |u, p| {
                    let orig = u.home.join("ga-original");
                    write_owned(&orig, v.as_bytes(), u.uid, u.gid, 0o600);
                    fs::hard_link(&orig, p).expect("link");
                }
            }),
            cause: "refused (file has 2 hard links)".into(),
        },
        Case {
            name: "NUL byte",
            setup: written(format!("{secret}\n\0\" TOTP_AUTH\n"), None, 0o600),
            cause: "is invalid: file contains a NUL byte".into(),
        },
        Case {
            name: "directory",
            setup: Box::new(|u, p| {
                fs::create_dir(p).expect("mkdir");
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).expect("chown");
            }),
            cause: "refused (not a regular file: it is a directory)".into(),
        },
        Case {
            name: "empty file",
            setup: written(String::new(), None, 0o600),
            cause: "is invalid: file is empty".into(),
        },
        Case {
            name: "= padding",
            setup: written(format!("{secret}====\n\" TOTP_AUTH\n"), None, 0o600),
            cause: "is invalid: first line is not valid base32".into(),
        },
        Case {
            name: "home directory world-writable",
            setup: Box::new({
                let v = valid.clone();
                move |u, p| {
                    write_owned(p, v.as_bytes(), u.uid, u.gid, 0o600);
                    fs::set_permissions(&u.home, fs::Permissions::from_mode(0o777)).expect("chmod");
                }
            }),
            cause: format!(
                "refused ({} is owned by uid {} with mode 0777: must be owned by root or the user and not group/other writable)",
                u.home.display(),
                u.uid
            ),
        },
        Case {
            name: "intermediate symlink (secret=~/.cfg/ga, ~/.cfg -> other home)",
            setup: Box::new({
                let h = other.home.clone();
                move |u, _| symlink(&h, u.home.join(".cfg")).expect("symlink")
            }),
            cause: format!(
                "refused ({}/.cfg is a symbolic link not owned by root (not followed))",
                u.home.display()
            ),
        },
    ];

    let mut step = 0u64;
    for case in &cases {
        for nullok in ["", "nullok"] {
            let p = u.secret_path();
            remove_any(&p);
            remove_any(&u.home.join("ga-original"));
            remove_any(&u.home.join(".cfg"));
            fs::set_permissions(&u.home, fs::Permissions::from_mode(0o700)).expect("chmod");
            // The intermediate-symlink case reads ~/.cfg/ga, where the link leads to
            // a file named like that in the other home.
            let args = if case.name.starts_with("intermediate") {
                write_owned(
                    &other.home.join("ga"),
                    totp_file(&secret).as_bytes(),
                    u.uid,
                    u.gid,
                    0o600,
                );
                format!("secret=~/.cfg/ga {nullok}")
            } else {
                nullok.to_string()
            };
            (case.setup)(&u, &p);
            let at = T0 + 30 * step;
            step += 1;
            let probe = Stack::probe("svc", &args);
            let driver = Driver::login(&probe, &u, &code_at(&secret, at)).at(at);
            let (d, lines) = logged_in_small_memory(&driver);
            assert_eq!(
                d.module_code(),
                "PAM_AUTH_ERR",
                "{} [{nullok}]: {d:?}",
                case.name
            );
            assert!(
                prompt_only(&d),
                "{} [{nullok}]: same prompt: {d:?}",
                case.name
            );
            let path = if case.name.starts_with("intermediate") {
                u.home.join(".cfg/ga")
            } else {
                p.clone()
            };
            let want = format!("secret file {} {}", path.display(), case.cause);
            let refused = lines
                .iter()
                .filter(|l| syslog_message(l).contains(&want))
                .count();
            assert_eq!(
                refused, 1,
                "{} [{nullok}]: one line naming the cause {want:?}: {lines:?}",
                case.name
            );
            let verdict = format!("code not verified (secret file unusable) for {}", u.name);
            assert!(
                lines
                    .iter()
                    .any(|l| syslog_message(l).starts_with(&verdict)),
                "{} [{nullok}]: {lines:?}",
                case.name
            );
            // A1: the link's target is never opened, read or even looked at.
            let target = match case.name {
                "symlink to a root-owned file" => Some(&root_file),
                "symlink to another user's file" => Some(&other_file),
                _ => None,
            };
            if let Some(target) = target.filter(|_| nullok.is_empty()) {
                let calls = calls_on(&driver, target);
                assert!(
                    calls.is_empty(),
                    "{}: the target was used: {calls:?}",
                    case.name
                );
            }
        }
    }
    // Control for A1: a login that reads each target itself (secret= naming the root
    // file; the other user's own login) shows in the same trace, so the trace above
    // would have shown the link followed.
    let named = Stack::probe("svc", &format!("secret={}", root_file.display()));
    let plain = Stack::probe("svc", "");
    for (target, stack, user) in [(&root_file, &named, &u), (&other_file, &plain, &other)] {
        let calls = calls_on(
            &Driver::login(stack, user, &code_at(&secret, T0)).at(T0),
            target,
        );
        assert!(
            !calls.is_empty(),
            "control: the trace shows a file the module uses: {}",
            target.display()
        );
    }
    fs::set_permissions(&u.home, fs::Permissions::from_mode(0o700)).expect("chmod");
    assert_eq!(
        fs::read(&root_file).expect("read"),
        root_before,
        "root file untouched"
    );
    assert_eq!(
        read(&other_file),
        totp_file(&secret),
        "other user's file untouched"
    );
    // Control: the plain setup with the same user and stack succeeds.
    remove_any(&u.secret_path());
    remove_any(&u.home.join(".cfg"));
    u.write_secret(&totp_file(&secret), 0o600);
    let at = T0 + 30 * step;
    let probe = Stack::probe("svc", "nullok");
    let (d, lines) =
        logged_in_small_memory(&Driver::login(&probe, &u, &code_at(&secret, at)).at(at));
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "control, in the same address space limit: {d:?} {lines:?}"
    );
}

/// Sets the access time of `p` far in the past (before its mtime), so that any read of
/// it updates the atime even on a `relatime` mount.
fn age_atime(p: &Path) {
    let st = Command::new("touch")
        .args(["-a", "-d", "2001-01-01 00:00:00"])
        .arg(p)
        .status()
        .expect("touch");
    assert!(st.success());
}

fn atime(p: &Path) -> i64 {
    fs::metadata(p).expect("stat").atime()
}

const HOSTILE_NAMES: &[&str] = &[
    "../../etc/x",
    "../bait",
    "a/b",
    ".",
    "..",
    "-rf",
    "",
    "a\nb",
    "ev\u{1b}[31mil",
    "tab\tname",
    "del\u{7f}",
];

fn long_name() -> String {
    "x".repeat(10 * 1024)
}

/// B1: hostile names are denied with the same prompt as a real user, and the module
/// touches no file for them: strace shows no access to the store (nor to `/etc/x`), and
/// bait files at the traversal targets keep their bytes.
#[test]
fn traversal_user_names_are_denied_without_file_access() {
    if !require_root("traversal_user_names_are_denied_without_file_access")
        || !require_tool(
            "traversal_user_names_are_denied_without_file_access",
            "strace",
        )
    {
        return;
    }
    let (_top, store, bait, secret) = baited_store("pam_totp-trav");
    // More bait: what `a/b` would name.
    fs::create_dir(store.join("a")).expect("mkdir");
    let bait2 = store.join("a").join("b");
    write_owned(&bait2, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    let baits = [bait.clone(), bait2.clone()];
    let before: Vec<Vec<u8>> = baits.iter().map(|b| fs::read(b).expect("read")).collect();
    let store_arg = format!("secret={}/${{USER}}", store.display());
    let stacks = [
        ("home mode", Stack::probe("svc", "")),
        (
            "user=root store",
            Stack::probe("svc", &format!("user=root {store_arg}")),
        ),
        ("store without user=", Stack::probe("svc", &store_arg)),
        ("home mode, nullok", Stack::probe("svc", "nullok")),
    ];
    let store_name = store
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .expect("name");
    let trace_dir = tempfile::tempdir().expect("tempdir");
    let mut names: Vec<String> = HOSTILE_NAMES.iter().map(|s| s.to_string()).collect();
    names.push(long_name());
    for (label, stack) in &stacks {
        for name in &names {
            let trace = trace_dir.path().join("trace");
            let driver = Driver::new(stack, "svc", name).answer(&code_at(&secret, T0));
            let inner = driver.command();
            let mut cmd = Command::new("strace");
            cmd.args(["-f", "-qq", "-s", "4096", "-e", "trace=%file", "-o"])
                .arg(&trace)
                .arg(inner.get_program())
                .args(inner.get_args());
            let out = cmd.output().expect("strace pam-drive");
            let d = Drive::parse(&out);
            let shown = name.escape_debug().to_string();
            let shown: String = shown.chars().take(40).collect();
            assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{label} {shown}: {d:?}");
            assert!(prompt_only(&d), "{label} {shown}: same prompt: {d:?}");
            // Path-taking syscalls only, without the exec of pam-drive (its argv holds
            // the name itself).
            let log: String = fs::read_to_string(&trace)
                .expect("trace")
                .lines()
                .filter(|l| !l.contains("execve("))
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(
                !log.contains(&store_name),
                "{label} {shown}: the store was accessed:\n{}",
                log.lines()
                    .filter(|l| l.contains(&store_name))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            assert!(!log.contains("/etc/x"), "{label} {shown}");
        }
    }
    for (i, b) in baits.iter().enumerate() {
        assert_eq!(fs::read(b).expect("read"), before[i], "bait {b:?} bytes");
    }
    // Control: for a valid name (an account without a file) the trace does show the
    // store being walked.
    let valid = TestUser::create("tv");
    let trace = trace_dir.path().join("control");
    let inner = Driver::login(&stacks[1].1, &valid, "123456").command();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=%file", "-o"])
        .arg(&trace)
        .arg(inner.get_program())
        .args(inner.get_args())
        .output()
        .expect("strace");
    assert_eq!(Drive::parse(&out).module_code(), "PAM_AUTH_ERR");
    let log = fs::read_to_string(&trace).expect("trace");
    assert!(
        log.contains(&store_name),
        "the trace would have caught an access"
    );
}

/// A directory (kept while the value lives) with a 0700 store, and beside the store the
/// bait: a valid root-owned secret file where `<store>/${USER}` leads for the user name
/// `../bait`. Returns the directory, the store, the bait and the bait's secret.
fn baited_store(prefix: &str) -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let secret = random_secret_b32();
    let top = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(private_tmp())
        .expect("tempdir");
    let store = top.path().join("store");
    fs::create_dir(&store).expect("mkdir");
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).expect("chmod");
    let bait = top.path().join("bait");
    write_owned(&bait, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    (top, store, bait, secret)
}

/// The bait check without strace: the bait at `<store>/../bait` keeps its access time.
#[test]
fn traversal_names_leave_the_bait_unread() {
    if !require_root("traversal_names_leave_the_bait_unread") {
        return;
    }
    let (top, store, bait, secret) = baited_store("pam_totp-bait");
    let probe = top.path().join("probe");
    write_owned(&probe, b"x", 0, 0, 0o600);
    // Does this filesystem update atime on read? (relatime: yes when atime < mtime.)
    age_atime(&probe);
    let a0 = atime(&probe);
    let _ = fs::read(&probe).expect("read");
    if atime(&probe) == a0 {
        eprintln!("SKIPPED part: atime not updated on reads here; bytes checked only");
    }
    let atime_works = atime(&probe) != a0;
    age_atime(&bait);
    let a_bait = atime(&bait);
    let before = fs::read(&bait).expect("read");
    // fs::read above updated the atime; age it again without reading.
    age_atime(&bait);
    let a_bait2 = atime(&bait);
    assert_eq!(a_bait, a_bait2);
    let stack = Stack::probe(
        "svc",
        &format!("user=root secret={}/${{USER}}", store.display()),
    );
    for name in ["../bait", "..", ".", "../../bait", "-rf"] {
        let d = Driver::new(&stack, "svc", name)
            .answer(&code_at(&secret, T0))
            .at(T0)
            .run();
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{name}: {d:?}");
        assert!(prompt_only(&d), "{name}");
    }
    if atime_works {
        assert_eq!(atime(&bait), a_bait2, "the bait was read");
    }
    assert_eq!(fs::read(&bait).expect("read"), before);
    // Control: a real account's file in the same store is read (and succeeds).
    let account = TestUser::create("tb");
    let real = store.join(&account.name);
    write_owned(&real, totp_file(&secret).as_bytes(), 0, 0, 0o600);
    let d = login_at(&stack, &account, &code_at(&secret, T0), None, T0);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// R9: unknown user, user without a file, throttled user, user with a bad file and a
/// real user with a wrong code: same prompts, same code — and for the real user the
/// right code works, so the setup itself is sound.
#[test]
fn no_oracle_between_unknown_missing_throttled_and_wrong() {
    if !require_root("no_oracle_between_unknown_missing_throttled_and_wrong") {
        return;
    }
    let (real, secret) = TestUser::enrolled("or");
    let missing = TestUser::create("om");
    let throttled = TestUser::create("ot");
    throttled.write_secret(
        &format!(
            "{secret}\n\" PAM_TOTP_FAILURES 9 {}\n\" TOTP_AUTH\n",
            T0 - 1
        ),
        0o600,
    );
    let badfile = TestUser::create("ob");
    badfile.write_secret(&totp_file(&secret), 0o644);
    for args in ["", "echo_verification_code", "authtok_prompt=OTP:"] {
        let stack = Stack::probe("svc", args);
        let runs = [
            (
                "unknown user",
                "nosuchuser-pt".to_string(),
                code_at(&secret, T0),
            ),
            ("no file", missing.name.clone(), code_at(&secret, T0)),
            (
                "throttled, right code",
                throttled.name.clone(),
                code_at(&secret, T0),
            ),
            (
                "bad file, right code",
                badfile.name.clone(),
                code_at(&secret, T0),
            ),
            ("wrong code", real.name.clone(), wrong_totp(&secret, T0)),
        ];
        let mut seen: Vec<Seen> = Vec::new();
        for (what, user, answer) in runs {
            let d = Driver::new(&stack, "svc", &user)
                .answer(&answer)
                .at(T0)
                .run();
            seen.push((what.to_string(), d.module_code(), d.prompt_list()));
        }
        let (_, code0, prompts0) = &seen[0];
        assert_eq!(code0, "PAM_AUTH_ERR");
        assert_eq!(prompts0.len(), 1);
        for (what, code, prompts) in &seen {
            assert_eq!(code, code0, "[{args}] {what}");
            assert_eq!(prompts, prompts0, "[{args}] {what}");
        }
    }
    let probe = Stack::probe("svc", "");
    let d = login_at(&probe, &real, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}

/// A16 / R7: a store outside the homes is checked from `/` down, as enrolment checks
/// the store it writes into. `user=root secret=<store>/${USER}/secret`, every per-user
/// directory root's (0700) and every file root's (0600), but the store root itself
/// writable by others (0777, not sticky): another user renames the victim's directory
/// away and their own into its place, and their code would be the victim's. Refused:
/// prompted, denied with `PAM_AUTH_ERR`, the log naming the store root and why, and
/// `totp-state audit` refusing the account. A sticky 1777 store root is refused the same
/// way (no store directory may be writable by others, as enrolment and the access-rule
/// file require). Controls: the same layout with the store root 0755 logs in, before
/// the swap and once it is undone.
#[test]
fn a_store_root_others_can_write_is_refused_naming_it() {
    let t = "a_store_root_others_can_write_is_refused_naming_it";
    if !require_root(t) || !require_tool(t, "setpriv") {
        return;
    }
    let victim = TestUser::create("sv");
    let thief = TestUser::create("sw");
    let top = tempfile::Builder::new()
        .prefix("pam_totp-storeroot")
        .tempdir_in(private_tmp())
        .expect("tempdir");
    fs::set_permissions(top.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let store = top.path().join("st");
    fs::create_dir(&store).expect("mkdir");
    let mut secrets = Vec::new();
    for u in [&victim, &thief] {
        let dir = store.join(&u.name);
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        let secret = random_secret_b32();
        write_owned(
            &dir.join("secret"),
            totp_file(&secret).as_bytes(),
            0,
            0,
            0o600,
        );
        secrets.push(secret);
    }
    let (mine, theirs) = (&secrets[0], &secrets[1]);
    let args = format!(
        "user=root throttle_after=100 secret={}/${{USER}}/secret",
        store.display()
    );
    let stack = Stack::probe("svc", &args);
    let set_mode = |mode: u32| {
        fs::set_permissions(&store, fs::Permissions::from_mode(mode)).expect("chmod store");
    };
    // Each login a step later than the one before: a refusal must not be a replay.
    let mut step = 0;
    let mut login = |secret: &str| {
        step += 1;
        let at = T0 + 30 * step;
        login_logged(&stack, &victim, &code_at(secret, at), None, at)
    };

    set_mode(0o755);
    let (d, lines) = login(mine);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "control, 0755: {d:?} {lines:#?}"
    );

    // What the thief can do in a store root anyone may write.
    set_mode(0o777);
    let swap = |from: &Path, to: &Path| {
        let out = Command::new("setpriv")
            .args(["--reuid", &thief.uid.to_string()])
            .args(["--regid", &thief.gid.to_string(), "--clear-groups"])
            .args(["mv", "-T"])
            .arg(from)
            .arg(to)
            .output()
            .expect("setpriv mv");
        assert!(out.status.success(), "{out:?}");
    };
    let aside = store.join("aside");
    swap(&store.join(&victim.name), &aside);
    swap(&store.join(&thief.name), &store.join(&victim.name));
    let refused = |lines: &[String], mode: &str, what: &str| {
        let file = store.join(&victim.name).join("secret");
        let m: Vec<&str> = lines.iter().map(|l| syslog_message(l)).collect();
        assert!(
            m.iter().any(
                |l| l.contains(&format!("secret file {} refused", file.display()))
                    && l.contains(&format!("directory {} ", store.display()))
                    && l.contains(&format!("with mode {mode}"))
                    && l.contains("writable by others)")
            ),
            "{what}: {m:#?}"
        );
    };
    let (d, lines) = login(theirs);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "swapped, 0777: {d:?}");
    assert!(prompt_only(&d), "{d:?}");
    refused(&lines, "0777", "swapped, 0777");
    let out = audit_command(stack.path())
        .output()
        .expect("totp-state audit");
    let seen = audit_verdicts(&out.stdout);
    let verdict = seen.get(&victim.name).expect("the victim audited");
    assert_eq!(verdict.0, "refused", "{seen:?}");
    assert!(
        verdict.1.contains(&store.display().to_string()),
        "{verdict:?}"
    );

    // Sticky: nobody could have renamed a root-owned entry, but the rule enrolment and
    // the access-rule file follow has no such exception: refused the same way.
    set_mode(0o1777);
    let (d, lines) = login(theirs);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "sticky 1777: {d:?}");
    refused(&lines, "1777", "sticky 1777");

    // Control: the swap undone and the store root closed again: the victim's own code.
    fs::rename(store.join(&victim.name), store.join(&thief.name)).expect("undo");
    fs::rename(&aside, store.join(&victim.name)).expect("undo");
    set_mode(0o755);
    let (d, lines) = login(mine);
    assert_eq!(
        d.module_code(),
        "PAM_SUCCESS",
        "control, undone: {d:?} {lines:#?}"
    );
}
