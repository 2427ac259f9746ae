//! One host process running PAM transactions for different users in several threads at
//! once (a threaded display manager, a polkit agent's helper pool, a server that
//! authenticates in worker threads). The module switches fsuid, fsgid and groups of
//! the calling thread only (R4). Each user's secret is readable by that user alone, in
//! a home only that user can enter: a switch that leaked into another thread, or a
//! restore that put back another thread's identity, would make that thread's read or
//! its state write fail and the login be denied, or a user read another's file. So
//! every verdict must be that user's own: the right code logs in, its replay and a
//! wrong code do not. Meanwhile a host thread that never calls PAM watches its own
//! credentials, and each worker checks its own before and after every call.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use pamapp::{Scripted, Transaction, codes};
use system_tests::*;

const USERS: usize = 6;
const ROUNDS: usize = 8;

/// fsuid, fsgid and supplementary groups of the calling thread, as the kernel has them.
fn thread_fs_ids() -> (u32, u32, Vec<u32>) {
    let status = fs::read_to_string("/proc/thread-self/status").expect("status");
    let field = |key: &str| -> String {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"))
            .to_owned()
    };
    let fourth = |line: String| -> u32 {
        line.split_whitespace()
            .nth(3)
            .and_then(|v| v.parse().ok())
            .expect("fs id")
    };
    let mut groups: Vec<u32> = field("Groups:")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    groups.sort_unstable();
    (fourth(field("Uid:")), fourth(field("Gid:")), groups)
}

fn login(confdir: &Path, user: &str, answer: &str) -> i32 {
    let before = thread_fs_ids();
    let mut tx = Transaction::start(
        "svc",
        Some(user),
        Some(confdir),
        Box::new(Scripted::texts([answer.to_owned()])),
    )
    .expect("pam_start");
    let rc = tx.authenticate(0);
    drop(tx);
    assert_eq!(
        thread_fs_ids(),
        before,
        "{user}: this thread's identity changed"
    );
    rc
}

#[test]
fn parallel_threads_of_one_host_each_get_their_own_users_verdict() {
    if !require_root("parallel_threads_of_one_host_each_get_their_own_users_verdict") {
        return;
    }
    let users: Vec<TestUser> = (0..USERS)
        .map(|i| TestUser::create(&format!("th{i}")))
        .collect();
    // Each in a group of their own too, so that a wrong group list would show.
    for (i, u) in users.iter().enumerate() {
        u.add_to_group(&format!("ptg{}{i}", std::process::id() % 100_000));
    }
    // Replays and wrong codes in every round: no throttling in the way.
    let stack = Stack::with_module("svc", "throttle_after=100 ceiling_burst=1000");
    let host = thread_fs_ids();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let stop = stop.clone();
        let host = host.clone();
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(thread_fs_ids(), host, "a host thread saw a switch");
                seen += 1;
            }
            seen
        })
    };
    let barrier = Barrier::new(USERS);
    for round in 0..ROUNDS {
        // A fresh secret each round starts fresh replay marks (R35), so the right code
        // of this step logs in again.
        let secrets: Vec<String> = users
            .iter()
            .map(|u| {
                let s = random_secret_b32();
                u.write_secret(&totp_file(&s), 0o600);
                s
            })
            .collect();
        let verdicts: Vec<(i32, i32, i32)> = std::thread::scope(|s| {
            let runs: Vec<_> = users
                .iter()
                .zip(&secrets)
                .map(|(u, secret)| {
                    let barrier = &barrier;
                    let confdir = stack.path();
                    s.spawn(move || {
                        barrier.wait();
                        let t = now();
                        let right = code_at(secret, t);
                        let ok = login(confdir, &u.name, &right);
                        let replay = login(confdir, &u.name, &right);
                        let wrong = login(confdir, &u.name, &wrong_totp(secret, t));
                        (ok, replay, wrong)
                    })
                })
                .collect();
            runs.into_iter()
                .map(|r| r.join().expect("worker"))
                .collect()
        });
        for (u, v) in users.iter().zip(&verdicts) {
            assert_eq!(
                *v,
                (codes::SUCCESS, codes::AUTH_ERR, codes::AUTH_ERR),
                "round {round}, {}: right, replay, wrong",
                u.name
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seen = watcher
        .join()
        .expect("the host thread's identity never changed");
    assert!(seen > 0, "the host thread looked");
    assert_eq!(thread_fs_ids(), host);
    // Each user's own record holds their own last step: no record was written under
    // another user's uid.
    for u in &users {
        assert!(
            stored_last_step(&stack, u.uid).is_some(),
            "{}: no record of their own",
            u.name
        );
    }
}
