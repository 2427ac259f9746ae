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
