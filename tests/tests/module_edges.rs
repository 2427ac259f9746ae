//! Edge cases of the security test plan not covered elsewhere: one scratch code in
//! parallel sessions (C6), hostile arguments to the exports themselves (F6), a
//! `PAM_USER` that changes between calls in one transaction (B5), and the module
//! unloaded at each `pam_end` (G6).

use std::ffi::{CString, c_char, c_int, c_void};
use std::process::Stdio;
use std::thread;

use system_tests::pamapp::{Item, Reply, Scripted, Transaction};
use system_tests::{
    Drive, Driver, SECRET_160, Stack, TestUser, capture_syslog, code_at, now, now_ms, read,
    require_root, stored, stored_last_step,
};

#[test]
fn one_scratch_code_in_parallel_sessions_lets_exactly_one_in() {
    if !require_root("one_scratch_code_in_parallel_sessions_lets_exactly_one_in") {
        return;
    }
    let user = TestUser::create("scr");
    user.write_secret(
        &format!("{SECRET_160}\n\" TOTP_AUTH\n71234567\n82345678\n"),
        0o600,
    );
    // Many tries are allowed here: this test is about the race, not the backoff.
    let stack = Stack::with_module("sshd", "throttle_after=100");
    let start = now_ms() + 1500;
    let children: Vec<_> = (0..16)
        .map(|_| {
            Driver::new(&stack, "sshd", &user.name)
                .answer("71234567")
                .start_at(start)
                .command()
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn pam-drive")
        })
        .collect();
    let results: Vec<String> = children
        .into_iter()
        .map(|c| Drive::parse(&c.wait_with_output().expect("wait")).result)
        .collect();
    let wins = results.iter().filter(|r| *r == "PAM_SUCCESS").count();
    assert_eq!(wins, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|r| r == "PAM_SUCCESS" || r == "PAM_AUTH_ERR")
    );
    let after = read(&user.secret_path());
    assert!(!after.contains("71234567"), "used scratch code removed");
    assert!(after.contains("82345678"), "the other scratch code kept");
}

type SmFn = unsafe extern "C" fn(*mut c_void, c_int, c_int, *const *const c_char) -> c_int;

/// The module's exports, loaded with dlopen from the freshly built `.so`.
struct Exports {
    lib: *mut c_void,
    authenticate: SmFn,
    setcred: SmFn,
}

impl Exports {
    fn load() -> Exports {
        let path = CString::new(system_tests::built().module.to_string_lossy().into_owned())
            .expect("path");
        // SAFETY: a NUL-terminated path; dlopen has no other precondition.
        let lib = unsafe { libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        assert!(!lib.is_null(), "dlopen failed");
        let sym = |name: &std::ffi::CStr| -> SmFn {
            // SAFETY: `lib` is a live handle from dlopen; the name is NUL-terminated.
            let p = unsafe { libc::dlsym(lib, name.as_ptr()) };
            assert!(!p.is_null(), "{name:?} not exported");
            // SAFETY: the pam_sm_* exports have exactly this C signature (pam_modules.h).
            unsafe { std::mem::transmute::<*mut c_void, SmFn>(p) }
        };
        Exports {
            lib,
            authenticate: sym(c"pam_sm_authenticate"),
            setcred: sym(c"pam_sm_setcred"),
        }
    }
}

impl Drop for Exports {
    fn drop(&mut self) {
        // SAFETY: `lib` came from dlopen and no function pointer is used after this.
        unsafe { libc::dlclose(self.lib) };
    }
}

#[test]
fn hostile_arguments_to_the_exports_fail_without_a_crash() {
    const PAM_SUCCESS: c_int = 0;
    const PAM_IGNORE: c_int = 25;
    let m = Exports::load();
    let stack = Stack::new();
    stack.service("edge", "auth required pam_permit.so\n");
    let mut tx = Transaction::start(
        "edge",
        Some("root"),
        Some(stack.path()),
        Box::new(Scripted::new([Reply::Text("000000".into())])),
    )
    .expect("pam_start");
    let handle = tx.raw_handle();
    let null_arg: [*const c_char; 1] = [std::ptr::null()];
    let cases: [(&str, *mut c_void, c_int, *const *const c_char); 4] = [
        ("NULL handle", std::ptr::null_mut(), 0, std::ptr::null()),
        ("negative argc", handle, -1, std::ptr::null()),
        ("argc > 0 with NULL argv", handle, 2, std::ptr::null()),
        ("NULL element in argv", handle, 1, null_arg.as_ptr()),
    ];
    for (what, h, argc, argv) in cases {
        for (name, f) in [("authenticate", m.authenticate), ("setcred", m.setcred)] {
            // SAFETY: `h` is NULL or the live handle of `tx`; argc/argv are the hostile
            // combinations under test, which the export must reject before using them.
            let rc = unsafe { f(h, 0, argc, argv) };
            assert!(
                rc != PAM_SUCCESS && rc != PAM_IGNORE,
                "pam_sm_{name} with {what} returned {rc}"
            );
        }
    }
    // The handle still works afterwards.
    assert_eq!(tx.authenticate(0), PAM_SUCCESS);
}

#[test]
fn pam_user_is_read_again_on_every_call() {
    if !require_root("pam_user_is_read_again_on_every_call") {
        return;
    }
    let alice = TestUser::create("ua");
    let bob = TestUser::create("ub");
    let t = now();
    for u in [&alice, &bob] {
        u.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    }
    let code = code_at(SECRET_160, t);
    let stack = Stack::with_module("edge", "");
    let mut tx = Transaction::start(
        "edge",
        Some(&alice.name),
        Some(stack.path()),
        Box::new(Scripted::texts([code.clone(), code.clone()])),
    )
    .expect("pam_start");
    assert_eq!(tx.authenticate(0), 0, "alice with her code");
    let alice_after = read(&alice.secret_path());
    let alice_state = stored(&stack, alice.uid);
    // Another module (or the application) switches the user: the same code is now
    // bob's first use, recorded in bob's state, and alice's is not touched again.
    assert_eq!(tx.set_item(Item::User, bob.name.as_bytes()), 0);
    assert_eq!(
        tx.authenticate(0),
        0,
        "bob with the same code, first use for bob"
    );
    assert_eq!(stored_last_step(&stack, bob.uid), Some(t / 30));
    assert_eq!(stored(&stack, alice.uid), alice_state);
    assert_eq!(read(&alice.secret_path()), alice_after);
    // Sequential handles in threads: nothing leaks between transactions either.
    let name = alice.name.clone();
    let stack_dir = stack.path().to_path_buf();
    let replay = thread::spawn(move || {
        let mut tx = Transaction::start(
            "edge",
            Some(&name),
            Some(&stack_dir),
            Box::new(Scripted::texts([code])),
        )
        .expect("pam_start");
        tx.authenticate(0)
    })
    .join()
    .expect("thread");
    assert_eq!(
        replay, 7,
        "alice's code replayed in a new transaction: PAM_AUTH_ERR"
    );
}

#[test]
fn a_missing_conversation_function_is_a_failure_not_a_crash() {
    if !require_root("a_missing_conversation_function_is_a_failure_not_a_crash") {
        return;
    }
    let user = TestUser::create("nc");
    user.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::with_module("edge", "");
    let mut tx = Transaction::start_without_conversation_function(
        "edge",
        Some(&user.name),
        Some(stack.path()),
    )
    .expect("pam_start accepts a pam_conv with a NULL function");
    let rc = tx.authenticate(0);
    // PAM_CONV_ERR (19): the module cannot ask, and says so; never success or ignore.
    assert_eq!(rc, 19, "got {rc}");
}

/// Signal dispositions of this process: the handler address (or SIG_DFL/SIG_IGN) of
/// every signal a process can catch.
fn signal_handlers() -> Vec<(c_int, usize)> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| s != libc::SIGKILL && s != libc::SIGSTOP)
        .map(|s| {
            // SAFETY: a zeroed sigaction is a valid out-parameter; a query changes nothing.
            let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: as above; `act` outlives the call.
            let rc = unsafe { libc::sigaction(s, std::ptr::null(), &mut act) };
            (
                s,
                if rc == 0 {
                    act.sa_sigaction
                } else {
                    usize::MAX
                },
            )
        })
        .collect()
}

/// Whether a file whose path ends in `name` is mapped into this process.
fn module_mapped(name: &str) -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .expect("maps")
        .lines()
        .any(|l| l.ends_with(name))
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").expect("tasks").count()
}

/// Runs in a child process started by the test below (it re-executes this test binary).
#[test]
fn unload_child_process() {
    let (Ok(confdir), Ok(user), Ok(answers), Ok(module)) = (
        std::env::var("PAM_TOTP_UNLOAD_CHILD_CONFDIR"),
        std::env::var("PAM_TOTP_UNLOAD_CHILD_USER"),
        std::env::var("PAM_TOTP_UNLOAD_CHILD_ANSWERS"),
        std::env::var("PAM_TOTP_UNLOAD_CHILD_MODULE"),
    ) else {
        return;
    };
    let signals = signal_handlers();
    let threads = thread_count();
    println!("child-mapped-before {}", module_mapped(&module));
    for (i, answer) in answers.split(',').enumerate() {
        let mut tx = Transaction::start(
            "edge",
            Some(&user),
            Some(std::path::Path::new(&confdir)),
            Box::new(Scripted::texts([answer])),
        )
        .expect("pam_start");
        println!("child-auth{i} {}", tx.authenticate(0));
        println!("child-mapped-during{i} {}", module_mapped(&module));
        drop(tx);
        println!("child-mapped-after{i} {}", module_mapped(&module));
        println!("child-signals-same{i} {}", signal_handlers() == signals);
        println!("child-threads-same{i} {}", thread_count() == threads);
    }
}

/// The lines `unload_child_process`, run in a child process on `stack`'s service
/// `edge` for `user` with one transaction per answer, printed about `module` (the
/// file name whose mapping it looks for), and a lookup of one of them.
fn unload_child(stack: &Stack, user: &str, answers: &str, module: &str) -> UnloadChild {
    let out = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args([
            "--exact",
            "unload_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PAM_TOTP_UNLOAD_CHILD_CONFDIR", stack.path())
        .env("PAM_TOTP_UNLOAD_CHILD_USER", user)
        .env("PAM_TOTP_UNLOAD_CHILD_ANSWERS", answers)
        .env("PAM_TOTP_UNLOAD_CHILD_MODULE", module)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "child: {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    UnloadChild { stdout }
}

struct UnloadChild {
    stdout: String,
}

impl UnloadChild {
    fn value(&self, k: &str) -> String {
        let k = format!("{k} ");
        self.stdout
            .lines()
            .find_map(|l| l.find(&k).map(|i| l[i + k.len()..].trim().to_string()))
            .unwrap_or_else(|| panic!("no {k} in {}", self.stdout))
    }
}

/// A host that ends each transaction has libpam `dlclose` the module (`pam_end`): a
/// signal handler, a thread or an exit handler the module left behind would then point
/// into unmapped code and crash the host later (at the signal, at exit). Three
/// transactions in one process, each loading the module afresh: after each `pam_end`
/// the module is unmapped (nothing holds it), every signal disposition and the thread
/// count are as before, and the process exits cleanly. The verdicts show each load
/// really ran (a wrong code, the right one, its replay refused by the state the
/// earlier load wrote); the mapping seen while a transaction is open is the control
/// that the unmapping check sees the module at all. The negative control: a module
/// compiled by the test that leaves a signal handler and a thread behind
/// (`tests/pam/leaky.c`) fails the same checks.
#[test]
fn each_pam_end_unloads_the_module_and_leaves_nothing_behind() {
    if !require_root("each_pam_end_unloads_the_module_and_leaves_nothing_behind") {
        return;
    }
    let user = TestUser::create("ul");
    user.write_secret(&format!("{SECRET_160}\n\" TOTP_AUTH\n"), 0o600);
    let stack = Stack::with_module("edge", "");
    let t = now();
    let code = code_at(SECRET_160, t);
    let answers = format!("{},{code},{code}", system_tests::wrong_totp(SECRET_160, t));
    let child = unload_child(&stack, &user.name, &answers, "/libpam_totp.so");
    let stdout = &child.stdout;
    assert_eq!(child.value("child-mapped-before"), "false", "{stdout}");
    for (i, rc) in ["7", "0", "7"].iter().enumerate() {
        assert_eq!(&child.value(&format!("child-auth{i}")), rc, "{stdout}");
        assert_eq!(
            child.value(&format!("child-mapped-during{i}")),
            "true",
            "{stdout}"
        );
        assert_eq!(
            child.value(&format!("child-mapped-after{i}")),
            "false",
            "something keeps the module loaded after pam_end: {stdout}"
        );
        assert_eq!(
            child.value(&format!("child-signals-same{i}")),
            "true",
            "{stdout}"
        );
        assert_eq!(
            child.value(&format!("child-threads-same{i}")),
            "true",
            "{stdout}"
        );
    }

    // Not below /tmp: a host may mount it noexec, and libpam could not map the module.
    let dir = system_tests::fleet::trusted_dir("pam_totp-leaky");
    let leaky_so = dir.path().join("pam_leaky.so");
    system_tests::compile_c(
        "tests/pam/leaky.c",
        &leaky_so,
        &["-shared".into(), "-fPIC".into()],
        &["-lpthread".into()],
    );
    let leaky = Stack::new();
    leaky.service("edge", &format!("auth required {}\n", leaky_so.display()));
    let child = unload_child(&leaky, &user.name, "000000", "/pam_leaky.so");
    let stdout = &child.stdout;
    // It ran (its failure, while mapped), and both leftovers are seen.
    assert_eq!(child.value("child-auth0"), "7", "{stdout}");
    assert_eq!(child.value("child-mapped-during0"), "true", "{stdout}");
    assert_eq!(child.value("child-signals-same0"), "false", "{stdout}");
    assert_eq!(child.value("child-threads-same0"), "false", "{stdout}");
}

/// An application's conversation function may set `PAM_USER` while the module's prompt
/// is out (libpam allows it). A success then would leave the account and session
/// modules acting for an account whose code was never checked: the module reads
/// `PAM_USER` again once answered and denies when it changed, with a line naming both,
/// without comparing the answer (no `invalid verification code` line, nothing charged
/// or recorded for either account). Controls: the same right code, at the same time,
/// with the conversation setting `PAM_USER` to the name it already held, logs in (it was
/// not used up by the refused attempt), and a plain login does not log the line.
#[test]
fn pam_user_changed_by_the_conversation_during_the_prompt_is_denied() {
    if !require_root("pam_user_changed_by_the_conversation_during_the_prompt_is_denied") {
        return;
    }
    let (alice, secret) = TestUser::enrolled("pc");
    let (bob, _) = TestUser::enrolled("pd");
    let stack = Stack::with_module("svc", "");
    let t = now();
    let code = code_at(&secret, t);
    // Records exist for both before the attempt, so "untouched" is a comparison.
    let before = |u: &TestUser| {
        let d = Driver::login(&stack, u, "000000").at(t - 3600).run();
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
        stored(&stack, u.uid)
    };
    let (alice_before, bob_before) = (before(&alice), before(&bob));

    let switched = Driver::login(&stack, &alice, &code)
        .arg("--set-user-at-prompt", &bob.name)
        .at(t);
    let (d, logs) = capture_syslog(&switched);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?} {logs:?}");
    assert_eq!(d.prompts, 1, "{d:?}");
    let named = format!("PAM_USER changed from {} to {}", alice.name, bob.name);
    assert!(logs.iter().any(|l| l.contains(&named)), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains(&format!(
            "code not verified (PAM_USER changed during the prompt) for {}",
            alice.name
        ))),
        "{logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("invalid verification code") || l.contains("accepted")),
        "{logs:?}"
    );
    assert_eq!(stored(&stack, alice.uid), alice_before);
    assert_eq!(stored(&stack, bob.uid), bob_before);

    // Control: PAM_USER set again to the name it held is no change.
    let same = Driver::login(&stack, &alice, &code)
        .arg("--set-user-at-prompt", &alice.name)
        .at(t);
    let (d, logs) = capture_syslog(&same);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("PAM_USER changed")),
        "{logs:?}"
    );
    // Control: a plain login.
    let (d, logs) =
        capture_syslog(&Driver::login(&stack, &alice, &code_at(&secret, t + 60)).at(t + 60));
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("PAM_USER changed")),
        "{logs:?}"
    );
}

/// The same inside a grace period with `forward_pass`: the password prompt is the
/// conversation that may set `PAM_USER`, and a grace success then would let another
/// account in without a code. Control: the same grace login, `PAM_USER` untouched.
#[test]
fn pam_user_changed_at_the_grace_periods_password_prompt_is_denied() {
    if !require_root("pam_user_changed_at_the_grace_periods_password_prompt_is_denied") {
        return;
    }
    let (alice, secret) = TestUser::enrolled("pg");
    let bob = TestUser::create("ph");
    let stack = Stack::with_module("svc", "forward_pass grace_period=3600");
    let host = "192.0.2.95";
    let t = now();
    let first = Driver::login(&stack, &alice, &format!("pw{}", code_at(&secret, t)))
        .rhost(host)
        .at(t)
        .run();
    assert_eq!(first.module_code(), "PAM_SUCCESS", "{first:?}");
    let switched = Driver::login(&stack, &alice, "pw")
        .arg("--set-user-at-prompt", &bob.name)
        .rhost(host)
        .at(t + 100);
    let (d, logs) = capture_syslog(&switched);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?} {logs:?}");
    assert_eq!(d.prompt_list(), [(1, "Password: ".to_string())]);
    let named = format!("PAM_USER changed from {} to {}", alice.name, bob.name);
    assert!(logs.iter().any(|l| l.contains(&named)), "{logs:?}");
    assert!(
        !logs.iter().any(|l| l.contains("within the grace period")),
        "{logs:?}"
    );
    // Control: the grace login without the switch.
    let (d, logs) = capture_syslog(&Driver::login(&stack, &alice, "pw").rhost(host).at(t + 200));
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("within the grace period")),
        "{logs:?}"
    );
}
