//! What the built `.so` exports, and the panic strategy it is built with
//! (SECURITY.md cases G3, G4, R24, F11).

use std::process::Command;

use system_tests::*;

#[test]
fn shared_object_exports_only_pam_sm_symbols() {
    if !require_tool("shared_object_exports_only_pam_sm_symbols", "nm") {
        return;
    }
    let so = &built().module;
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(so)
        .output()
        .expect("nm");
    assert!(out.status.success(), "nm failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let symbols: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    assert!(
        symbols.contains(&"pam_sm_authenticate") && symbols.contains(&"pam_sm_setcred"),
        "the two hooks are exported: {symbols:?}"
    );
    let stray: Vec<&&str> = symbols
        .iter()
        .filter(|s| !s.starts_with("pam_sm_"))
        .collect();
    assert!(stray.is_empty(), "symbols other than pam_sm_*: {stray:?}");
}

/// The `[profile.<name>]` section of the workspace manifest as (key, value) pairs.
fn profile(manifest: &str, name: &str) -> Vec<(String, String)> {
    let header = format!("[profile.{name}]");
    let mut inside = false;
    let mut out = Vec::new();
    for raw in manifest.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            inside = line == header;
            continue;
        }
        if inside && let Some((k, v)) = line.split_once('=') {
            out.push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
        }
    }
    out
}

#[test]
fn release_and_dev_profiles_unwind_on_panic() {
    let manifest =
        std::fs::read_to_string(workspace().join("Cargo.toml")).expect("read Cargo.toml");
    for name in ["release", "dev"] {
        let p = profile(&manifest, name);
        let panic: Vec<&String> = p
            .iter()
            .filter(|(k, _)| k == "panic")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(panic, vec!["unwind"], "[profile.{name}] panic = \"unwind\"");
    }
    // No profile anywhere (incl. custom ones inheriting from release) may abort.
    let aborting = manifest
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").replace(' ', ""))
        .any(|l| l == "panic=\"abort\"");
    assert!(!aborting, "some profile sets panic = \"abort\"");
    // Nor a cargo config that forces it.
    for cfg in [".cargo/config.toml", ".cargo/config"] {
        if let Ok(text) = std::fs::read_to_string(workspace().join(cfg)) {
            assert!(!text.contains("panic=abort"), "{cfg} forces panic=abort");
        }
    }
    // The module crate itself must not override it.
    let module = std::fs::read_to_string(workspace().join("pam_totp/Cargo.toml"))
        .expect("read pam_totp/Cargo.toml");
    let overrides = module.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("").trim();
        l.starts_with("[profile") || l.replace(' ', "").starts_with("panic=")
    });
    assert!(
        !overrides,
        "pam_totp/Cargo.toml sets a profile or panic strategy"
    );
}

#[test]
fn setcred_returns_success() {
    if !require_root("setcred_returns_success") {
        return;
    }
    let (u, secret) = TestUser::enrolled("sc");
    let stack = Stack::with_module("svc", "");
    let out = Driver::login(&stack, &u, &code_at(&secret, T0))
        .at(T0)
        .flag("--setcred")
        .output();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("result PAM_SUCCESS"), "{text}");
    assert!(text.lines().any(|l| l == "setcred PAM_SUCCESS"), "{text}");
}

/// `pam_sm_setcred` always returns `PAM_SUCCESS` (F11), also on a line that returned
/// `PAM_IGNORE` at authentication (here `nullok`, no secret file). That takes no
/// `success=done` the login did not take: libpam freezes the chain `pam_authenticate`
/// walked and, for `pam_setcred`, acts on each line's cached authentication result, so
/// the modules after the line still set their credentials (`pam_env` stands for them:
/// the variable it sets in its `pam_setcred` shows that it ran). Controls: an enrolled
/// user's right code took `success=done` at authentication, and does again (no
/// variable); in a handle whose authentication never ran (sshd's keyboard-interactive
/// authenticates in a child process) nothing is frozen, and the `PAM_SUCCESS` ends the
/// walk there, as google-authenticator's does (pam_totp(8), PAM LINE TYPES).
#[test]
fn setcred_takes_the_path_authentication_took() {
    use system_tests::pamapp::{Scripted, Transaction, codes};
    if !require_root("setcred_takes_the_path_authentication_took") {
        return;
    }
    let plain = TestUser::create("scn");
    let (enrolled, secret) = TestUser::enrolled("sce");
    let stack = Stack::new();
    let env_conf = stack.path().join("env.conf");
    std::fs::write(&env_conf, "PAM_TOTP_SETCRED_RAN DEFAULT=yes\n").expect("env.conf");
    stack.service(
        "svc",
        &format!(
            "auth [success=done ignore=ignore default=die] @MODULE@ nullok\n\
             auth required pam_permit.so\n\
             auth optional pam_env.so readenv=0 user_readenv=0 conffile={}\n",
            env_conf.display()
        ),
    );
    let run = |user: &str, answers: Vec<String>, authenticate: bool| {
        let conv = Box::new(Scripted::texts(answers));
        let mut tx =
            Transaction::start("svc", Some(user), Some(stack.path()), conv).expect("start");
        let auth = authenticate.then(|| tx.authenticate(0));
        let setcred = tx.setcred();
        (auth, setcred, tx.getenv("PAM_TOTP_SETCRED_RAN"))
    };
    // Skipped at authentication: the walk goes on past the line for setcred too.
    let (auth, setcred, ran) = run(&plain.name, vec![], true);
    assert_eq!(auth, Some(codes::SUCCESS));
    assert_eq!(setcred, codes::SUCCESS);
    assert_eq!(
        ran.as_deref(),
        Some(&b"yes"[..]),
        "pam_env's pam_setcred was skipped after a PAM_IGNORE at authentication"
    );
    // Control: a verified code ended the walk at authentication, and ends it again.
    let (auth, setcred, ran) = run(&enrolled.name, vec![code_at(&secret, now())], true);
    assert_eq!(auth, Some(codes::SUCCESS));
    assert_eq!(setcred, codes::SUCCESS);
    assert_eq!(ran, None, "success=done did not end the setcred walk");
    // Control: no authentication in this handle: PAM_SUCCESS, as google-authenticator.
    let (_, setcred, ran) = run(&plain.name, vec![], false);
    assert_eq!(setcred, codes::SUCCESS);
    assert_eq!(ran, None);
}
