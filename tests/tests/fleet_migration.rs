//! Moving hosts to another state store (docs/fleet.md, "Moving to another store"),
//! through the real libpam against a real `redis-server` and a real etcd member: the
//! used marks stay in the store a host leaves, so what keeps a code used there from
//! working again on the store it moves to is the new store's floor. A plain
//! `totp-state init` run after the codes were used sets it (control: `--never-used`
//! there lets such a code log in again), and deleting the new store's store record once
//! the last host moved raises it over the codes used meanwhile (control: before that,
//! such a code logs in on a host that moved earlier).

use std::time::Duration;

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{
    RedisServer, ServerConfig, after_recreation, assert_a_later_code_logs_in, plugin,
};
use system_tests::*;
use totp_core::fleet::{ConnectionOptions, RedisEndpoint, RedisOptions};
use totp_core::state::{LegacyMarks, StateStore, UserState, Write};
use totp_os::remote::{RemoteSettings, RemoteStore, plugin_config};
use totp_os::state_dir::StateDir;

fn redis_args(server: &RedisServer, prefix: &str) -> String {
    server.options(&format!("redis_prefix={prefix}: redis_timeout=2000"))
}

fn etcd_args(cluster: &EtcdCluster, prefix: &str) -> String {
    format!(
        "state={} etcd_plugin={} etcd_prefix={prefix}/ etcd_timeout=1000",
        cluster.url(),
        etcd_plugin().display(),
    )
}

/// Rewrites `host`'s service as [`Stack::probe`] writes it, with `args`: the host's
/// pam.d line now names another store, its local state directory stays where it was.
fn move_to(host: &Stack, args: &str) {
    host.service(
        "svc",
        &format!(
            "auth [success=2 ignore=ignore default=die] @MODULE@ {args}\n\
             auth required pam_echo.so pam_totp-returned-ignore\n\
             auth [success=done default=die] pam_permit.so\n\
             auth required pam_echo.so pam_totp-returned-success\n"
        ),
    );
}

fn denied() -> Returned {
    Returned::Failed("PAM_AUTH_ERR".into())
}

/// `totp-state init` (plain, or with `extra`) on the store `args` names.
fn init(args: &str, extra: &[&str]) -> String {
    let out = state_tool(&[&["init"], extra, &["--options", args]].concat());
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A host accepts a code on the store it starts on (`before`, "" for its local store),
/// the new store is initialised with `init` (plain, or `--never-used`), the host moves
/// there, and the same code is tried again, on that host or (`elsewhere`) on another host
/// moved there whose local store never saw it: what it returned and logged.
fn used_then_moved(
    tag: &str,
    before: &str,
    after: &str,
    init_flags: &[&str],
    elsewhere: bool,
) -> (Stack, TestUser, String, Drive, Vec<String>) {
    let (u, secret) = TestUser::enrolled(tag);
    let host = Stack::probe("svc", before);
    // The real time: a plain init's floor is the clock it runs at.
    let t = now();
    let code = code_at(&secret, t);
    let (d, logs) = login_logged(&host, &u, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // The host's own old store refuses it now (the mark is there).
    let (d, logs) = login_logged(&host, &u, &code, PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    init(after, init_flags);
    move_to(&host, after);
    let host = if elsewhere {
        Stack::probe("svc", after)
    } else {
        host
    };
    let (d, logs) = login_logged(&host, &u, &code, PEER, t + 5);
    (host, u, secret, d, logs)
}

#[test]
fn a_host_moved_from_its_local_store_to_redis_never_reopens_a_code_it_accepted() {
    if !require_root("a_host_moved_from_its_local_store_to_redis_never_reopens_a_code_it_accepted")
    {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgl");
    let (host, u, secret, d, logs) = used_then_moved("mgl", "", &a, &[], true);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused by the new store's floor: {logs:?}"
    );
    // The login went through the new store: the user's record is there now.
    let key = format!("mgl:user:{}", u.name);
    let exists = server.raw(None, &[b"EXISTS", key.as_bytes()]);
    assert_eq!(exists, b":1\r\n", "{key}");
    assert_a_later_code_logs_in(&host, &u, &secret);

    // Control: `--never-used` on the store the host moves to records it complete since
    // the beginning, and the code used on the local store logs in once more on another
    // host that moved there.
    let n = redis_args(&server, "mgn");
    let (other, _u, _secret, d, logs) = used_then_moved("mgn", "", &n, &["--never-used"], true);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // SECURITY.md: a host whose local store was never used reads nothing and logs
    // nothing, and its directory is not created (pam_totp(8), state=).
    assert!(!logs.iter().any(|l| l.contains("local store")), "{logs:?}");
    assert!(
        !other.state_dir().exists(),
        "a login through the shared store created the local store"
    );
    // The host that accepted it reads its own local marks, floor or not.
    let m = redis_args(&server, "mgm");
    let (_host, _u, _secret, d, logs) = used_then_moved("mgm", "", &m, &["--never-used"], false);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "refused by the host's local mark: {logs:?}"
    );
}

/// The order an admin follows (docs/fleet.md, "Moving to another store"): the new store
/// is initialised first, the host goes on accepting codes on its local store until its
/// pam.d line changes, and a code it accepted a moment before the move is above the
/// new store's floor. The moved host reads its local store's marks on each login through
/// the shared store, so that code stays refused on it, without `state_fallback=local`
/// (user `mgh`). Control (user `mgi`): the shared store alone does not know such a code,
/// which another moved host, whose local store never saw it, logs in (step 2's window).
#[test]
fn a_host_moved_after_the_new_store_was_initialised_refuses_codes_it_accepted_just_before() {
    if !require_root(
        "a_host_moved_after_the_new_store_was_initialised_refuses_codes_it_accepted_just_before",
    ) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgh");
    init(&a, &[]);
    // Past the floor the plain init set, and its window ahead.
    let t = after_recreation(now()) + 60;
    let (h, secret_h) = TestUser::enrolled("mgh");
    let (i, secret_i) = TestUser::enrolled("mgi");
    let host = Stack::probe("svc", "");
    let code_h = code_at(&secret_h, t);
    let code_i = code_at(&secret_i, t);
    for (user, code) in [(&h, &code_h), (&i, &code_i)] {
        let (d, logs) = login_logged(&host, user, code, PEER, t);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    }
    move_to(&host, &a);
    let (d, logs) = login_logged(&host, &h, &code_h, PEER, t + 5);
    assert_eq!(
        d.returned(),
        denied(),
        "a code this host accepted just before its move: {d:?} {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "refused as a replay: {logs:?}"
    );
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("using this host's local store")),
        "decided through the shared store: {logs:?}"
    );
    // The refusal wrote the carried mark into the shared record: the other hosts refuse
    // the code from then on too.
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &h, &code_h, PEER, t + 6);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");

    // Control: the same move, the code tried first on a host that never saw it.
    let (d, logs) = login_logged(&other, &i, &code_i, PEER, t + 5);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // A host that never had a local store reads none, creates none and says nothing.
    assert!(!logs.iter().any(|l| l.contains("local store")), "{logs:?}");
    assert!(!other.state_dir().exists(), "no local store created");

    // Later codes log in on the moved host through the shared store.
    let later = t + 65;
    let (d, logs) = login_logged(&host, &h, &code_at(&secret_h, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let key = format!("mgh:user:{}", h.name);
    let exists = server.raw(None, &[b"EXISTS", key.as_bytes()]);
    assert_eq!(exists, b":1\r\n", "{key}");
}

#[test]
fn a_host_moved_from_redis_to_etcd_never_reopens_a_code_it_accepted() {
    if !require_root("a_host_moved_from_redis_to_etcd_never_reopens_a_code_it_accepted") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let r = redis_args(&server, "mge");
    init(&r, &["--never-used"]);
    let e = etcd_args(&cluster, "mge");
    let (host, u, secret, d, logs) = used_then_moved("mge", &r, &e, &[], false);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused by the new store's floor: {logs:?}"
    );
    assert_a_later_code_logs_in(&host, &u, &secret);

    // Control: the same move onto a prefix initialised `--never-used`.
    let r = redis_args(&server, "mgf");
    init(&r, &["--never-used"]);
    let e = etcd_args(&cluster, "mgf");
    let (_host, _u, _secret, d, logs) = used_then_moved("mgf", &r, &e, &["--never-used"], false);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// While hosts move one by one, a code used on a host still on its old store is not
/// known to the new one: once that host has moved, the code logs in again on a host that
/// moved earlier (control, user `mgv`). Deleting the new store's store record after the
/// last host moved makes the next login recreate it complete since then, and the code
/// used on the old store is refused (user `mgw`).
#[test]
fn deleting_the_store_record_after_the_last_host_moved_refuses_codes_used_meanwhile() {
    if !require_root(
        "deleting_the_store_record_after_the_last_host_moved_refuses_codes_used_meanwhile",
    ) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgt");
    init(&a, &[]);
    let moved = Stack::probe("svc", &a);
    // Past the floor the plain init set, and its window ahead: codes of the move's days.
    let t1 = after_recreation(now()) + 60;

    let (v, secret_v) = TestUser::enrolled("mgv");
    let still_local = Stack::probe("svc", "");
    let code_v = code_at(&secret_v, t1);
    let (d, logs) = login_logged(&still_local, &v, &code_v, PEER, t1);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&still_local, &a);
    let (d, logs) = login_logged(&moved, &v, &code_v, PEER, t1 + 5);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "a code used on the old store during the move: {d:?} {logs:?}"
    );

    let t2 = t1 + 30;
    let (w, secret_w) = TestUser::enrolled("mgw");
    let last = Stack::probe("svc", "");
    let code_w = code_at(&secret_w, t2);
    let (d, logs) = login_logged(&last, &w, &code_w, PEER, t2);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&last, &a);
    // The last host has moved: the admin deletes the store record once.
    let del = server.raw(None, &[b"DEL", b"mgt:store"]);
    assert_eq!(del, b":1\r\n");
    let (d, logs) = login_logged(&moved, &w, &code_w, PEER, t2 + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused by the raised floor: {logs:?}"
    );
    // Everybody logs in again with a later code, on every host, through the new store.
    let later = after_recreation(t2 + 5);
    for (host, user, secret) in [(&moved, &w, &secret_w), (&last, &v, &secret_v)] {
        let (d, logs) = login_logged(host, user, &code_at(secret, later), PEER, later);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    }
}

/// A host whose new line keeps `state_fallback=local` reads its local store's marks on
/// each login through the shared store, so a code it accepted before the move stays
/// refused there even on a store initialised `--never-used` (whose floor covers nothing:
/// the control above logs the code in without the option).
#[test]
fn a_host_moved_with_the_local_fallback_keeps_its_own_used_codes() {
    if !require_root("a_host_moved_with_the_local_fallback_keeps_its_own_used_codes") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = format!("{} state_fallback=local", redis_args(&server, "mgk"));
    let (host, u, secret, d, logs) = used_then_moved("mgk", "", &a, &["--never-used"], false);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("using this host's local store")),
        "decided through the shared store: {logs:?}"
    );
    assert_a_later_code_logs_in(&host, &u, &secret);
}

/// Step 3 on etcd, as docs/fleet.md writes it: hosts move from Redis to etcd; a code used
/// on Redis by a host not yet moved logs in on a host that has (the control, user
/// `mgr`); once the last host has moved, `etcdctl del PREFIXstore` raises the floor at
/// the next login (a plain `totp-state init` there refuses a store with its record), and
/// such a code is refused (user `mgs`), a later code logs in.
#[test]
fn step_3_on_etcd_raises_the_floor_over_codes_used_during_the_move() {
    if !require_root("step_3_on_etcd_raises_the_floor_over_codes_used_during_the_move") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let r = redis_args(&server, "mgr");
    init(&r, &["--never-used"]);
    let e = etcd_args(&cluster, "mgr");
    init(&e, &[]);
    // A store with its record: `init` refuses, as the docs say.
    let again = state_tool(&["init", "--options", &e]);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let moved = Stack::probe("svc", &e);
    let t1 = after_recreation(now()) + 60;

    let (v, secret_v) = TestUser::enrolled("mgr");
    let still_old = Stack::probe("svc", &r);
    let code_v = code_at(&secret_v, t1);
    let (d, logs) = login_logged(&still_old, &v, &code_v, PEER, t1);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let (d, logs) = login_logged(&moved, &v, &code_v, PEER, t1 + 5);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "a code used on the old store during the move: {d:?} {logs:?}"
    );

    let t2 = t1 + 30;
    let (w, secret_w) = TestUser::enrolled("mgs");
    let code_w = code_at(&secret_w, t2);
    let (d, logs) = login_logged(&still_old, &w, &code_w, PEER, t2);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&still_old, &e);
    // The next login recreates it (a plain `init` would do the same at the real clock,
    // which this test's codes, ahead of it, do not wait for).
    let del = cluster.ctl(&["del", "mgr/store"]);
    assert_eq!(del.trim(), "1", "the store record deleted");
    let (d, logs) = login_logged(&moved, &w, &code_w, PEER, t2 + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("state store lost its data")),
        "refused by the raised floor: {logs:?}"
    );
    let later = after_recreation(t2 + 5);
    for (host, user, secret) in [(&moved, &w, &secret_w), (&still_old, &v, &secret_v)] {
        let (d, logs) = login_logged(host, user, &code_at(secret, later), PEER, later);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    }
}

/// A host upgraded from a release before enrolment-bound marks and moved at once: its
/// local record is of format 1, whose TOTP mark holds every enrolment on that host. It is
/// carried too, so the code the earlier release accepted just before stays refused on
/// the host through the shared store (user `mgx`). Control (user `mgy`, the same kind of
/// record): a host whose local store never saw it logs the code in.
#[test]
fn a_version_1_local_mark_is_carried_by_a_host_upgraded_and_moved_at_once() {
    if !require_root("a_version_1_local_mark_is_carried_by_a_host_upgraded_and_moved_at_once") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgx");
    init(&a, &[]);
    let t = after_recreation(now()) + 60;
    let host = Stack::probe("svc", "");
    let (x, secret_x) = TestUser::enrolled("mgx");
    let (y, secret_y) = TestUser::enrolled("mgy");
    for (user, secret) in [(&x, &secret_x), (&y, &secret_y)] {
        // A wrong code makes the local store and the record, which is then replaced by
        // the earlier release's: the code of t's step used.
        let d = login_at(&host, user, &wrong_totp(secret, t - 300), PEER, t - 300);
        assert_eq!(d.module_code(), "PAM_AUTH_ERR", "{d:?}");
        let mut store = StateDir::new(host.state_dir(), Duration::from_secs(5));
        store
            .update(user.uid, &mut |_| {
                Write::Durable(UserState {
                    legacy: Some(LegacyMarks {
                        last_step: Some(t / 30),
                        hotp: None,
                    }),
                    ..UserState::default()
                })
            })
            .expect("seeded");
    }
    move_to(&host, &a);
    let (d, logs) = login_logged(&host, &x, &code_at(&secret_x, t), PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "refused by the host's version-1 mark: {logs:?}"
    );
    // Control.
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &y, &code_at(&secret_y, t), PEER, t + 5);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    // The next step's code logs in on the moved host.
    let (d, logs) = login_logged(&host, &x, &code_at(&secret_x, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// `totp-state show --user` of a shared store, on a host moved from its local store:
/// the shared record does not hold the mark of a code this host accepted before the
/// move, which its logins refuse as reused; a line names the local store that holds it
/// and how to list it (user `mgp`). Controls: a user without a record there gets no such
/// line (user `mgq`), nor does any user on a host whose local store was never used,
/// whose directory `show` does not create. A record there that cannot be read is said
/// (the module's logins then do not check it). `--json` says the same in `local_marks`
/// (null in the controls), so a monitoring script learns it too.
#[test]
fn show_of_a_shared_store_names_the_marks_of_this_hosts_local_store() {
    if !require_root("show_of_a_shared_store_names_the_marks_of_this_hosts_local_store") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgp");
    init(&a, &[]);
    let t = after_recreation(now()) + 60;
    let (p, secret_p) = TestUser::enrolled("mgp");
    let (q, _secret_q) = TestUser::enrolled("mgq");
    let host = Stack::probe("svc", "");
    let code = code_at(&secret_p, t);
    let (d, logs) = login_logged(&host, &p, &code, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&host, &a);
    let show = |user: &TestUser, dir: &std::path::Path| {
        let options = format!("{a} state_dir={}", dir.display());
        let out = state_tool(&["show", "--user", &user.name, "--options", &options]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let show_json = |user: &TestUser, dir: &std::path::Path| {
        let options = format!("{a} state_dir={}", dir.display());
        let out = state_tool(&[
            "show",
            "--user",
            &user.name,
            "--options",
            &options,
            "--json",
        ]);
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one object");
        v
    };
    let said = show(&p, &host.state_dir());
    assert!(
        said.contains("this host's local store") && said.contains("also holds replay marks"),
        "{said}"
    );
    let v = show_json(&p, &host.state_dir());
    assert_eq!(
        v["local_marks"],
        serde_json::json!({
            "state_dir": host.state_dir().to_str().expect("a UTF-8 path"),
            "error": null,
        }),
        "{v}"
    );
    // The fields before it stay as they were.
    assert_eq!(v["user"], serde_json::json!(p.name), "{v}");
    assert!(
        said.contains(&format!("--state-dir {}", host.state_dir().display())),
        "{said}"
    );
    // The command the line gives lists the mark.
    let dir = host.state_dir();
    let listed = state_tool(&[
        "show",
        "--user",
        &p.name,
        "--state-dir",
        dir.to_str().expect("a UTF-8 path"),
    ]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success() && text.contains("last accepted code"),
        "{listed:?}"
    );
    // What the line explains: the code is refused on this host.
    let (d, logs) = login_logged(&host, &p, &code, PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");

    // Controls: no record of the user in the local store; no local store at all.
    let said = show(&q, &host.state_dir());
    assert!(!said.contains("local store"), "{said}");
    let v = show_json(&q, &host.state_dir());
    assert!(v["local_marks"].is_null(), "{v}");
    let never = Stack::probe("svc", &a);
    let said = show(&p, &never.state_dir());
    assert!(!said.contains("local store"), "{said}");
    let v = show_json(&p, &never.state_dir());
    assert!(v["local_marks"].is_null(), "{v}");
    assert!(!never.state_dir().exists(), "show created the local store");

    // A record there that cannot be read.
    std::os::unix::fs::symlink("/etc/passwd", host.state_file(q.uid)).expect("symlink");
    let said = show(&q, &host.state_dir());
    assert!(said.contains("could not be read"), "{said}");
    assert!(said.contains("symlink"), "{said}");
    let v = show_json(&q, &host.state_dir());
    let error = v["local_marks"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("symlink"), "{v}");
}

/// The same code from 32 processes at once on a host moved from its local store, whose
/// record there holds a mark of the user (a code of an earlier step it accepted before
/// the move): each login reads that record, unlocked, before the shared store's
/// compare-and-set, and carries the mark into the record it writes. Exactly one logs
/// in (user `mgc`). Control: the same race with the mark one step ahead of the code
/// (user `mgd`, a code the host accepted at its step) refuses all 32 as reused.
#[test]
fn the_same_code_from_32_processes_on_a_moved_host_succeeds_exactly_once() {
    if !require_root("the_same_code_from_32_processes_on_a_moved_host_succeeds_exactly_once") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgc");
    init(&a, &["--never-used"]);
    let host = Stack::probe("svc", "");
    let (c, secret_c) = TestUser::enrolled("mgc");
    let (d_user, secret_d) = TestUser::enrolled("mgd");
    // Marks left before the move: mgc's a few steps back, mgd's at the step the race
    // will use (at least one step after now, so a few steps ahead of the code here).
    let earlier = now() - 120;
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, earlier), PEER, earlier);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&host, &a);
    let (results, _) = same_code_at_once(std::slice::from_ref(&host), &c, &secret_c, 32);
    let ok = results
        .iter()
        .filter(|d| d.returned() == Returned::Success)
        .count();
    let refused = results.iter().filter(|d| d.returned() == denied()).count();
    assert_eq!((ok, refused), (1, 31), "{results:?}");

    // Control: a local mark at the race's own step refuses every one of them.
    let start = start_time();
    let at = start / 1000;
    let local = Stack::probe("svc", "");
    let (d, logs) = login_logged(&local, &d_user, &code_at(&secret_d, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    move_to(&local, &a);
    let code = code_at(&secret_d, at);
    let drivers = (0..32)
        .map(|_| Driver::login(&local, &d_user, &code).start_at(start))
        .collect();
    let results = spawn_all(drivers);
    let ok = results
        .iter()
        .filter(|d| d.returned() == Returned::Success)
        .count();
    assert_eq!(ok, 0, "{results:?}");
}

/// A moved host whose local store cannot be read (a record replaced by a FIFO; then the
/// directory made writable by others): logins through the shared store are not denied
/// for it (every fleet login of the host would be, for a store it no longer writes),
/// and each says what was not checked and why. The deviation this is: a code the host
/// accepted on its local store just before the move, whose record cannot be read, logs
/// in once more there (user `mga`). Control (user `mgb`, its record readable): the same
/// replay is refused and nothing is logged about the local store, until the directory
/// is made unusable for both.
#[test]
fn an_unreadable_local_store_is_logged_at_each_fleet_login_and_denies_nothing() {
    if !require_root("an_unreadable_local_store_is_logged_at_each_fleet_login_and_denies_nothing") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mga");
    init(&a, &[]);
    let t = after_recreation(now()) + 60;
    let host = Stack::probe("svc", "");
    let (ua, secret_a) = TestUser::enrolled("mga");
    let (ub, secret_b) = TestUser::enrolled("mgb");
    for (user, secret) in [(&ua, &secret_a), (&ub, &secret_b)] {
        let (d, logs) = login_logged(&host, user, &code_at(secret, t), PEER, t);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    }
    move_to(&host, &a);
    let record = host.state_file(ua.uid);
    std::fs::remove_file(&record).expect("remove the record");
    let made = std::process::Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&record)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let unread = |logs: &[String], why: &str| {
        logs.iter().any(|l| {
            l.contains("this host's local store") && l.contains("not checked") && l.contains(why)
        })
    };

    let (d, logs) = login_logged(&host, &ua, &code_at(&secret_a, t), PEER, t + 5);
    assert_eq!(
        d.returned(),
        Returned::Success,
        "the deviation: {d:?} {logs:?}"
    );
    assert!(unread(&logs, "is a FIFO; not followed"), "{logs:?}");
    // The line names the command that clears it; once run, nothing more is said.
    let dir = host.state_dir();
    let dir = dir.to_str().expect("a UTF-8 path");
    let uid = ua.uid.to_string();
    let fix = format!("`totp-state reset --user {uid} --state-dir {dir}`");
    assert!(logs.iter().any(|l| l.contains(&fix)), "{logs:?}");
    let out = state_tool(&["reset", "--user", &uid, "--state-dir", dir]);
    assert!(out.status.success(), "{out:?}");
    let (d, logs) = login_logged(&host, &ua, &code_at(&secret_a, t + 35), PEER, t + 35);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(!logs.iter().any(|l| l.contains("not checked")), "{logs:?}");
    // Control: a readable record refuses the same kind of replay, silently about it.
    let (d, logs) = login_logged(&host, &ub, &code_at(&secret_b, t), PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(!logs.iter().any(|l| l.contains("not checked")), "{logs:?}");

    // The directory unusable: every user's login goes on, each logged.
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o777);
    std::fs::set_permissions(host.state_dir(), mode).expect("chmod");
    let later = t + 65;
    for (user, secret) in [(&ua, &secret_a), (&ub, &secret_b)] {
        let (d, logs) = login_logged(&host, user, &code_at(secret, later), PEER, later);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
        assert!(unread(&logs, "not writable by others"), "{logs:?}");
    }

    // A failure on the way to the store's key other than "not there" (here a loop of
    // links where the directory was) proves no more than a damaged record that the store
    // was never used: logged as well (it once passed for a store never used, silently).
    let dir = host.state_dir();
    let aside = dir.with_extension("aside");
    std::fs::rename(&dir, &aside).expect("move the store aside");
    std::os::unix::fs::symlink(&dir, &dir).expect("a link to itself");
    assert_eq!(
        std::fs::symlink_metadata(dir.join("x"))
            .map_err(|e| e.raw_os_error())
            .err(),
        Some(Some(libc::ELOOP)),
        "the fault: a loop on the way to the key"
    );
    let later = t + 95;
    let (d, logs) = login_logged(&host, &ua, &code_at(&secret_a, later), PEER, later);
    std::fs::remove_file(&dir).expect("remove the loop");
    std::fs::rename(&aside, &dir).expect("the store back");
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert!(unread(&logs, ""), "{logs:?}");
}

/// Writes `user`'s shared record on `server` (prefix `prefix`) as a release before
/// enrolment-bound marks left it: version-1 marks only, its TOTP mark at `last_step`.
fn seed_version_1_record(server: &RedisServer, prefix: &str, user: &TestUser, last_step: u64) {
    let opts = RedisOptions {
        endpoint: RedisEndpoint::parse(&server.url(false)).expect("endpoint"),
        conn: ConnectionOptions {
            connect_timeout_ms: 1000,
            command_timeout_ms: 1000,
            prefix: prefix.into(),
            credentials: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            plugin: None,
        },
        wait_replicas: 0,
        wait_timeout_ms: 100,
        ttl_secs: 3600,
    };
    let config = plugin_config(&opts).expect("plugin config");
    let mut store = RemoteStore::open(plugin(), &config, RemoteSettings::for_options(&opts, false))
        .expect("open the shared store");
    store.name_user(user.uid, &user.name);
    store
        .update(user.uid, &mut |_| {
            Write::Durable(UserState {
                legacy: Some(LegacyMarks {
                    last_step: Some(last_step),
                    hotp: None,
                }),
                ..UserState::default()
            })
        })
        .expect("seeded");
}

/// A host moves from its local store to a shared store whose record of the user was
/// written by a release before enrolment-bound marks (version-1 marks, none of the
/// enrolment's own): the local mark of the code the host accepted just before the move
/// is carried past the older version-1 mark, and the code is refused (user `mgz`;
/// before, a record with version-1 marks dropped every carried mark, and the code
/// logged in once more). Control (user `mgo`, the same shared record): the code logs
/// in on a host whose local store never saw it, so the version-1 mark alone does not
/// refuse it; and a later code logs in on the moved host after the carried mark was
/// written.
#[test]
fn a_local_mark_is_carried_into_a_shared_record_with_version_1_marks() {
    if !require_root("a_local_mark_is_carried_into_a_shared_record_with_version_1_marks") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgz");
    init(&a, &[]);
    let t = after_recreation(now()) + 60;
    let host = Stack::probe("svc", "");
    let (z, secret_z) = TestUser::enrolled("mgz");
    let (o, secret_o) = TestUser::enrolled("mgo");
    let code_z = code_at(&secret_z, t);
    let (d, logs) = login_logged(&host, &z, &code_z, PEER, t);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    for user in [&z, &o] {
        seed_version_1_record(&server, "mgz:", user, t / 30 - 100);
    }
    move_to(&host, &a);
    let (d, logs) = login_logged(&host, &z, &code_z, PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(
        logs.iter()
            .any(|l| l.contains("reused an already accepted code")),
        "refused by the host's local mark: {logs:?}"
    );
    // Control.
    let other = Stack::probe("svc", &a);
    let (d, logs) = login_logged(&other, &o, &code_at(&secret_o, t), PEER, t + 5);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let (d, logs) = login_logged(&host, &z, &code_at(&secret_z, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// docs/fleet.md, "Moving to another store", and SECURITY.md's deviation: a local record
/// a moved host's login cannot read (damaged, too large, a wrong mode, another owner)
/// denies nothing; each login logs what was not checked with the record's path and the
/// `totp-state reset --user UID --state-dir DIR` that clears it, and that command, run as
/// the line says, does clear it: the next login logs nothing about the local store (user
/// `mgu`). A damaged store key is logged too and denies nothing. Control (user `mgj`,
/// its record readable): a code it accepted before the move is refused, and nothing is
/// logged about the local store.
#[test]
fn each_unreadable_local_record_is_cleared_by_the_reset_its_log_line_names() {
    if !require_root("each_unreadable_local_record_is_cleared_by_the_reset_its_log_line_names") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let server = RedisServer::start(&ServerConfig::default());
    let a = redis_args(&server, "mgu");
    init(&a, &[]);
    let t = after_recreation(now()) + 60;
    let host = Stack::probe("svc", "");
    let (u, secret_u) = TestUser::enrolled("mgu");
    let (j, secret_j) = TestUser::enrolled("mgj");
    for (user, secret) in [(&u, &secret_u), (&j, &secret_j)] {
        let (d, logs) = login_logged(&host, user, &code_at(secret, t), PEER, t);
        assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    }
    move_to(&host, &a);
    let unread = |logs: &[String]| {
        logs.iter()
            .any(|l| l.contains("this host's local store") && l.contains("not checked"))
    };
    // Control: the readable record refuses its replay, silently about the local store,
    // and is only read (pam_totp(8), state=: written only through the fallback).
    let kept = std::fs::read(host.state_file(j.uid)).expect("read j's record");
    let (d, logs) = login_logged(&host, &j, &code_at(&secret_j, t), PEER, t + 5);
    assert_eq!(d.returned(), denied(), "{d:?} {logs:?}");
    assert!(!unread(&logs), "{logs:?}");
    let (d, logs) = login_logged(&host, &j, &code_at(&secret_j, t + 30), PEER, t + 30);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    assert_eq!(
        std::fs::read(host.state_file(j.uid)).expect("read j's record"),
        kept,
        "a login through the shared store wrote the local record"
    );

    let record = host.state_file(u.uid);
    let dir = host.state_dir();
    let dir = dir.to_str().expect("a UTF-8 path");
    let uid = u.uid.to_string();
    let fix = format!("`totp-state reset --user {uid} --state-dir {dir}`");
    type Fault = fn(&std::path::Path);
    let faults: [(&str, Fault, &str); 4] = [
        (
            "damaged",
            |p| std::fs::write(p, vec![0x5a; 300]).expect("overwrite"),
            "",
        ),
        (
            "too large",
            |p| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .expect("open");
                f.set_len(1 << 20).expect("grow");
            },
            "is larger than",
        ),
        (
            "group and other readable",
            |p| std::fs::set_permissions(p, PermissionsExt::from_mode(0o644)).expect("chmod"),
            "has mode 644",
        ),
        (
            "another owner",
            |p| std::os::unix::fs::chown(p, Some(65534), None).expect("chown"),
            "is owned by uid 65534",
        ),
    ];
    let mut at = t + 30;
    for (what, fault, why) in faults {
        assert!(
            record.exists(),
            "{what}: the record is there before the fault"
        );
        fault(&record);
        let (d, logs) = login_logged(&host, &u, &code_at(&secret_u, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {logs:?}");
        assert!(unread(&logs), "{what}: the fault is logged: {logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("not checked") && l.contains(why) && l.contains(&fix)),
            "{what}: the line names the cause and the reset: {logs:?}"
        );
        let out = state_tool(&["reset", "--user", &uid, "--state-dir", dir]);
        assert!(out.status.success(), "{what}: the named reset: {out:?}");
        at += 30;
        let (d, logs) = login_logged(&host, &u, &code_at(&secret_u, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {logs:?}");
        assert!(!unread(&logs), "{what}: cleared by the reset: {logs:?}");
        // The next fault needs a record again: one written as a local login writes it.
        move_to(&host, "");
        at += 30;
        let (d, logs) = login_logged(&host, &u, &code_at(&secret_u, at), PEER, at);
        assert_eq!(d.returned(), Returned::Success, "{what}: {d:?} {logs:?}");
        move_to(&host, &a);
        at += 30;
    }

    // A damaged store key: logged at the login, which goes on.
    let key = host.state_dir().join("store.key");
    let kept = std::fs::read(&key).expect("read the key");
    std::fs::write(&key, b"not a key").expect("damage the key");
    let (d, logs) = login_logged(&host, &u, &code_at(&secret_u, at), PEER, at);
    std::fs::write(&key, kept).expect("the key back");
    assert_eq!(
        d.returned(),
        Returned::Success,
        "damaged key: {d:?} {logs:?}"
    );
    assert!(unread(&logs), "damaged key: {logs:?}");
}
