//! A state record of format 1 (before replay marks were bound to an enrolment) keeps
//! its marks until a code is accepted and an enrolment takes them over: a wrong code's
//! write and an admin's reset in between write the record back with them. Written as
//! format 2 they were dropped, and the code of the last used step worked again.

use std::time::Duration;

use system_tests::*;
use totp_core::state::{LegacyMarks, StateStore, UserState, Write};

#[test]
fn a_version_1_mark_survives_a_wrong_code_and_a_reset_until_a_code_binds_it() {
    if !require_root("a_version_1_mark_survives_a_wrong_code_and_a_reset_until_a_code_binds_it") {
        return;
    }
    let (u, secret) = TestUser::enrolled("v1m");
    let stack = Stack::probe("svc", "");
    // A first wrong code makes the store (its directory and key) and the record.
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 - 300), None, T0 - 300);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    // The record as a release before enrolment-bound marks left it: the code of T0's
    // step was used.
    let legacy = LegacyMarks {
        last_step: Some(T0 / 30),
        hotp: None,
    };
    let mut store = totp_os::state_dir::StateDir::new(stack.state_dir(), Duration::from_secs(5));
    store
        .update(u.uid, &mut |_| {
            Write::Durable(UserState {
                legacy: Some(legacy),
                ..UserState::default()
            })
        })
        .expect("seeded");
    assert_eq!(
        stored(&stack, u.uid).legacy,
        Some(legacy),
        "seeded as format 1"
    );

    // A wrong code writes the record (its throttling) and keeps the mark.
    let d = login_at(&stack, &u, &wrong_totp(&secret, T0 + 5), None, T0 + 5);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
    let after_wrong = stored(&stack, u.uid);
    assert_eq!(failures_of(&after_wrong), 1, "the wrong code was written");
    assert_eq!(after_wrong.legacy, Some(legacy), "and the mark kept");

    // So does an admin's reset (the throttling goes, the mark stays).
    let out = stack.state_tool(&["reset", "--user", &u.name]);
    assert!(out.status.success(), "{out:?}");
    let after_reset = stored(&stack, u.uid);
    assert_eq!(failures_of(&after_reset), 0, "reset");
    assert_eq!(
        after_reset.legacy,
        Some(legacy),
        "the mark kept by the reset"
    );

    // The code of the marked step is refused as used; it worked again before the fix.
    let d = login_at(&stack, &u, &code_at(&secret, T0), None, T0 + 10);
    assert_eq!(d.module_code(), "PAM_AUTH_ERR", "a replay: {d:?}");
    // Control: the next step's code logs in, and its enrolment takes the mark over.
    let d = login_at(&stack, &u, &code_at(&secret, T0 + 30), None, T0 + 30);
    assert_eq!(d.module_code(), "PAM_SUCCESS", "{d:?}");
    let bound = stored(&stack, u.uid);
    assert_eq!(bound.legacy, None);
    assert_eq!(last_step_of(&bound), Some(T0 / 30 + 1));
}
