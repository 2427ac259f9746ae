//! L1 through the real CLI: the secret `totp-enroll` prints comes from the kernel's
//! random number generator (`getrandom(2)` asked for at least 20 bytes, the 160-bit
//! secret), observed with `strace`; two runs print different secrets.

use std::process::Command;

use system_tests::*;

fn enroll_under_strace(log: &std::path::Path) -> String {
    let out = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=getrandom", "-o"])
        .arg(log)
        .arg(&built().enroll)
        .args([
            "--print-file",
            "-l",
            "rng@example.org",
            "-d",
            "-W",
            "-u",
            "--non-interactive",
            "-Q",
            "NONE",
        ])
        .output()
        .expect("run strace");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().next().expect("a secret line").to_owned()
}

#[test]
fn the_secret_comes_from_getrandom_and_differs_per_run() {
    if !require_tool(
        "the_secret_comes_from_getrandom_and_differs_per_run",
        "strace",
    ) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut secrets = Vec::new();
    for i in 0..2 {
        let log = dir.path().join(format!("strace-{i}"));
        let secret = enroll_under_strace(&log);
        assert!(secret.len() >= 32, "160 bits of base32: {secret}");
        let calls = std::fs::read_to_string(&log).expect("read strace log");
        // `getrandom(buf, N, flags) = N`: a call that returned at least 20 bytes.
        let enough = calls.lines().any(|l| {
            l.contains("getrandom(")
                && l.rsplit(" = ")
                    .next()
                    .and_then(|r| r.trim().parse::<usize>().ok())
                    .is_some_and(|n| n >= 20)
        });
        assert!(enough, "no getrandom of at least 20 bytes:\n{calls}");
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1]);
}
