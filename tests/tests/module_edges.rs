//! Edge cases of the security test plan not covered elsewhere: one scratch code in
//! parallel sessions (C6), hostile arguments to the exports themselves (F6), and a
//! `PAM_USER` that changes between calls in one transaction (B5).

use std::ffi::{CString, c_char, c_int, c_void};
use std::process::Stdio;
use std::thread;

use system_tests::pamapp::{Item, Reply, Scripted, Transaction};
use system_tests::{
    Drive, Driver, SECRET_160, Stack, TestUser, code_at, now, now_ms, read, require_root, stored,
    stored_last_step,
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
