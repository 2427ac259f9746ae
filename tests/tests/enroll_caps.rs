//! One window cap for `totp-enroll` and the module: a window the CLI writes is the window
//! a login through the real libpam gets, with the module's default cap and with a
//! service that raises it (`max_window=`, read by `totp-enroll --service`).

use std::process::Command;

use system_tests::*;

const SERVICE: &str = "svc";

/// Enrolls `user` with `extra` flags; returns the exit status, the secret (if written)
/// and stderr.
fn enroll(user: &TestUser, extra: &[&str]) -> (Option<i32>, Option<String>, String) {
    let out = Command::new(&built().enroll)
        .args(["--user", &user.name, "-t", "-D", "-u", "-C", "-f"])
        .args(["--non-interactive", "--json"])
        .args(extra)
        .output()
        .expect("run totp-enroll");
    outcome(&out)
}

/// Enrolls `user` with `-t -C -f` and `args`, answering the questions those leave on
/// standard input: disallow reuse, yes; a wider window, yes; rate limiting, no. Returns
/// what [`enroll`] returns.
fn enroll_answering_the_questions(
    user: &TestUser,
    args: &[&str],
) -> (Option<i32>, Option<String>, String) {
    let mut child = Command::new(&built().enroll)
        .args(["--user", &user.name, "-t", "-C", "-f"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run totp-enroll");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"y\ny\nn\n").expect("answers");
    }
    outcome(&child.wait_with_output().expect("wait"))
}

/// A `totp-enroll --json` run's exit status, the secret (if written) and stderr.
fn outcome(out: &std::process::Output) -> (Option<i32>, Option<String>, String) {
    let secret = serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["secret"].as_str().map(str::to_owned));
    (
        out.status.code(),
        secret,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The code `offset` steps after the step of `T0`.
fn code_off(secret: &str, offset: u64) -> String {
    oathtool_totp(secret, T0 + offset * 30, 30, 6, "sha1")
}

fn login(stack: &Stack, user: &TestUser, code: &str) -> String {
    login_at(stack, user, code, None, T0).module_code()
}

#[test]
fn the_window_the_cli_writes_is_the_window_a_login_gets() {
    let test = "the_window_the_cli_writes_is_the_window_a_login_gets";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("wc");

    // Default cap: -w 21 is refused and nothing is written; -w 17 works end to end.
    let (code, secret, stderr) = enroll(&user, &["-w", "21"]);
    assert_eq!((code, secret.is_some()), (Some(2), false), "{stderr}");
    assert!(!user.secret_path().exists());
    let (code, secret, stderr) = enroll(&user, &["-w", "17"]);
    assert_eq!(code, Some(0), "{stderr}");
    let secret = secret.expect("secret in the JSON");
    let default = Stack::with_module(SERVICE, "");
    // Window 17 = offsets -8..+8.
    assert_eq!(
        login(&default, &user, &code_off(&secret, 9)),
        "PAM_AUTH_ERR"
    );
    assert_eq!(login(&default, &user, &code_off(&secret, 8)), "PAM_SUCCESS");

    // A service with max_window=21: the CLI reads the same option, and the module
    // honours the window the CLI wrote (offsets -10..+10).
    let wide = Stack::with_module(SERVICE, "max_window=21");
    let dir = wide.path().to_str().expect("utf-8").to_owned();
    let (code, secret, stderr) = enroll(
        &user,
        &["-w", "21", "--service", SERVICE, "--pam-dir", &dir],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let secret = secret.expect("secret in the JSON");
    assert!(read(&user.secret_path()).contains("\" WINDOW_SIZE 21\n"));
    assert_eq!(login(&wide, &user, &code_off(&secret, 11)), "PAM_AUTH_ERR");
    assert_eq!(login(&wide, &user, &code_off(&secret, 10)), "PAM_SUCCESS");
}

/// The wider-window question promises the window a "yes" writes: with a service that
/// caps `max_window=5`, it speaks of 5 codes (it used to say 17 and then write 5), and
/// the module honours those 5 (offsets -2..+2).
#[test]
fn the_wider_window_question_names_the_window_it_writes() {
    let test = "the_wider_window_question_names_the_window_it_writes";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("wq");
    let capped = Stack::with_module(SERVICE, "max_window=5");
    let dir = capped.path().to_str().expect("utf-8").to_owned();
    let (code, secret, stderr) =
        enroll_answering_the_questions(&user, &["--json", "--service", SERVICE, "--pam-dir", &dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("more, 5 codes (the 2 before, the current one and the 2 after)"),
        "the question names the capped window: {stderr}"
    );
    assert!(!stderr.contains("17 codes"), "{stderr}");
    assert!(read(&user.secret_path()).contains("\" WINDOW_SIZE 5\n"));
    let secret = secret.expect("secret in the JSON");
    assert_eq!(login(&capped, &user, &code_off(&secret, 3)), "PAM_AUTH_ERR");
    assert_eq!(login(&capped, &user, &code_off(&secret, 2)), "PAM_SUCCESS");
}

/// With `-S 60` the questions spoke of 30 s steps ("covers 30s", "about 4 minutes"):
/// a user sizing the window for a phone minutes off chose on wrong numbers. They now
/// name the file's step, and the module reaches exactly as far as the question said.
#[test]
fn the_questions_name_the_time_step_the_file_gets() {
    let test = "the_questions_name_the_time_step_the_file_gets";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("ws");
    let (code, secret, stderr) = enroll_answering_the_questions(&user, &["-S", "60", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    for said in [
        "one login per time step (every 1 minute)",
        "covers 1 minute of clock difference",
        "17 codes (the 8 before, the current one and the 8 after) cover about 8 minutes",
    ] {
        assert!(stderr.contains(said), "{said:?} not in: {stderr}");
    }
    let secret = secret.expect("secret in the JSON");
    let stack = Stack::with_module(SERVICE, "");
    let minutes_ahead = |m: u64| oathtool_totp(&secret, T0 + m * 60, 60, 6, "sha1");
    assert_eq!(login(&stack, &user, &minutes_ahead(9)), "PAM_AUTH_ERR");
    assert_eq!(login(&stack, &user, &minutes_ahead(8)), "PAM_SUCCESS");
}

/// GA's `allowed_perm=0400` (GA's tool writes 0400): with `--service` naming such a
/// stack the CLI writes 0400, which that stack then logs in with; before, it wrote 0600,
/// which every login refused. A stack that allows neither is refused up front.
#[test]
fn allowed_perm_0400_gets_a_file_the_stack_accepts() {
    let test = "allowed_perm_0400_gets_a_file_the_stack_accepts";
    if !require_root(test) || !require_tool(test, "oathtool") {
        return;
    }
    let user = TestUser::create("ap");
    let strict = Stack::with_module(SERVICE, "allowed_perm=0400");
    let dir = strict.path().to_str().expect("utf-8").to_owned();
    let (code, secret, stderr) = enroll(&user, &["-W", "--service", SERVICE, "--pam-dir", &dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        mode_owner(&user.secret_path()),
        (0o400, user.uid, user.gid),
        "the mode the stack allows"
    );
    let secret = secret.expect("secret in the JSON");
    assert_eq!(login(&strict, &user, &code_off(&secret, 0)), "PAM_SUCCESS");
    // Control: a stack with the default allowed_perm still gets 0600 for a new file (a
    // replaced one keeps a narrower mode: `replace.rs`).
    std::fs::remove_file(user.secret_path()).expect("remove the 0400 file");
    let default = Stack::with_module(SERVICE, "");
    let dir = default.path().to_str().expect("utf-8").to_owned();
    let (code, _, stderr) = enroll(&user, &["-W", "--service", SERVICE, "--pam-dir", &dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(mode_owner(&user.secret_path()).0, 0o600);
}
