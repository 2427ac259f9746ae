//! Fleet options through the real libpam and the built module: misconfigurations are
//! refused before any prompt (`PAM_SERVICE_ERR`), and credentials never come from the
//! world-readable pam.d line.

use system_tests::*;

fn run(args: &str, user: &TestUser, secret: &str) -> Drive {
    let probe = Stack::probe("svc", args);
    login_at(&probe, user, &code_at(secret, T0), None, T0)
}

#[test]
fn fleet_misconfigurations_deny_everybody_without_a_prompt() {
    if !require_root("fleet_misconfigurations_deny_everybody_without_a_prompt") {
        return;
    }
    let (u, secret) = TestUser::enrolled("fm");
    for bad in [
        // Credentials on the pam.d line.
        "state=redis://fleet:hunter2@127.0.0.1:6379",
        // Redis settings without a Redis state=.
        "redis_prefix=a:",
        "state_fallback=local",
        // A CA file without TLS.
        "state=redis://127.0.0.1 redis_ca_file=/etc/ssl/certs/ca.pem",
        // A command without its user, a relative command.
        "secret_command=/usr/lib/pam_totp/cmd",
        "secret_command=cmd secret_command_user=nobody",
        "state=redis://127.0.0.1 redis_timeout=60000",
    ] {
        let d = run(bad, &u, &secret);
        assert_eq!(d.module_code(), "PAM_SERVICE_ERR", "[{bad}] {d:?}");
        assert_eq!(d.prompts, 0, "[{bad}]");
    }
    // The same user and code succeed without the bad options.
    let d = run("", &u, &secret);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
}
