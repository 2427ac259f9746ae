//! "Used" never rolls back while a login's write is in flight (R34), through the real
//! libpam against a real `redis-server`: a proxy between one host and the server runs a
//! hook right before it forwards that host's compare-and-set of the user's record, after
//! the host read the store record and the user's record and decided. The hook lets
//! another host accept the same code, then flushes the data set. The user's record is
//! then absent again, as the first host read it, so a compare of the user's record alone
//! would let the write through with the floor of a store record that no longer exists:
//! the code accepted twice. The write also compares the store record (docs/fleet.md,
//! "A write in flight"), so it writes nothing; the plugin says the store record changed,
//! and the module reads it again (gone: recreated at now) and decides again with its
//! floor, which refuses the code as used.
//!
//! Deciding again shares the answer's one time bound (R36): a store record that changes
//! under every write ends the login once that bound is spent, not after a whole update
//! budget per decision.

use std::io::{BufReader, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use system_tests::fleet::{
    RedisServer, ServerConfig, accepted_elsewhere_then, assert_a_later_code_logs_in,
    assert_decided_again_and_refused_as_used, assert_still_refused_after_the_loss, init_store,
    plugin,
};
use system_tests::proxy::{Hook, compare_and_set_key, listen, read_resp_command};
use system_tests::*;

/// What runs before every compare-and-set of a user's record while it is set.
type Repeat = Arc<dyn Fn() + Send + Sync>;

/// A TCP proxy in front of a real server that forwards everything as it comes, and runs
/// the armed hook (or the repeating one) before it forwards a compare-and-set (`FCALL`,
/// `EVAL`) of a user's record, whose arguments it keeps. From that compare-and-set on,
/// every command of the connection waits `delay` before it is forwarded.
struct HookProxy {
    port: u16,
    shared: Shared,
}

/// The parts of a [`HookProxy`] each connection's thread shares.
#[derive(Clone, Default)]
struct Shared {
    hook: Arc<Mutex<Option<Hook>>>,
    repeat: Arc<Mutex<Option<Repeat>>>,
    delay: Arc<Mutex<Duration>>,
    /// The arguments of each compare-and-set a hook ran before.
    held: Arc<Mutex<Vec<Vec<Vec<u8>>>>>,
}

/// The value behind one of the proxy's switches, whoever panicked holding it.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HookProxy {
    fn start(server_port: u16) -> HookProxy {
        let shared = Shared::default();
        let serving = shared.clone();
        let port = listen(move |client| {
            let _ = serve(client, server_port, &serving);
        });
        HookProxy { port, shared }
    }

    fn repeat(&self, hook: Option<Repeat>) {
        *locked(&self.shared.repeat) = hook;
    }

    fn slow_down(&self, delay: Duration) {
        *locked(&self.shared.delay) = delay;
    }

    fn clear_held(&self) {
        locked(&self.shared.held).clear();
    }

    fn arm(&self, hook: Hook) {
        *locked(&self.shared.hook) = Some(hook);
    }

    fn held(&self) -> Vec<Vec<Vec<u8>>> {
        locked(&self.shared.held).clone()
    }
}

fn serve(client: TcpStream, server_port: u16, shared: &Shared) -> std::io::Result<()> {
    let mut server = TcpStream::connect(("127.0.0.1", server_port))?;
    let mut from_server = server.try_clone()?;
    let mut to_client = client.try_clone()?;
    let replies = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let mut reader = BufReader::new(client);
    let mut slow = false;
    while let Some((raw, args)) = read_resp_command(&mut reader)? {
        let cas = compare_and_set_key(&args).is_some_and(|k| k.windows(5).any(|w| w == b"user:"));
        if cas {
            let armed = locked(&shared.hook).take();
            let repeat = locked(&shared.repeat).clone();
            let ran = match (armed, repeat) {
                (Some(run), _) => {
                    run();
                    true
                }
                (None, Some(run)) => {
                    run();
                    true
                }
                (None, None) => false,
            };
            if ran {
                locked(&shared.held).push(args);
                slow = true;
            }
        }
        if slow {
            std::thread::sleep(*locked(&shared.delay));
        }
        server.write_all(&raw)?;
    }
    let _ = server.shutdown(Shutdown::Both);
    let _ = replies.join();
    Ok(())
}

fn reply(server: &RedisServer, args: &[&[u8]]) -> String {
    String::from_utf8_lossy(&server.raw(None, args)).into_owned()
}

/// The version a held compare-and-set expected of the user's record (after the
/// function or script, the key count and the keys).
fn expected_version(args: &[Vec<u8>]) -> String {
    let keys: usize = String::from_utf8_lossy(&args[2])
        .parse()
        .expect("a key count");
    String::from_utf8_lossy(&args[3 + keys]).into_owned()
}

#[test]
fn a_data_set_flushed_while_a_write_is_in_flight_never_reopens_a_used_code() {
    let t = "a_data_set_flushed_while_a_write_is_in_flight_never_reopens_a_used_code";
    if !require_root(t) {
        return;
    }
    let server = Arc::new(RedisServer::start(&ServerConfig::default()));
    let proxy = HookProxy::start(server.port);
    // A command timeout that outlasts the hook (another host's login).
    let options = format!(
        "redis_plugin={} redis_prefix=fi: redis_timeout=5000",
        plugin().display()
    );
    let direct = format!("state={} {options}", server.url(false));
    let proxied = format!("state=redis://127.0.0.1:{} {options}", proxy.port);
    init_store(&direct);
    // A mixed fleet: hosts of the previous release call the function they know, with
    // one key and the arguments they always sent, and it still writes.
    assert_eq!(
        reply(
            &server,
            &[
                b"FCALL",
                b"pam_totp_cas_v2",
                b"1",
                b"fi:user:old",
                b"0",
                b"rec",
                b"0"
            ]
        ),
        ":1\r\n"
    );
    let other = Arc::new(Stack::probe("svc", &direct));
    let host = Stack::probe("svc", &proxied);

    // Control: the hook runs and does nothing; the first login of a user (no record
    // yet) logs in through the proxy. Real time: the login waits on a real hook.
    let (c, secret_c) = TestUser::enrolled("fc");
    proxy.arm(Box::new(|| {}));
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, now()), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
    let held = proxy.held();
    assert_eq!(held.len(), 1, "control: the hook ran before the write");
    assert_eq!(expected_version(&held[0]), "0", "{held:?}");

    // The fault: while this host's write is held, another host accepts the same code,
    // then the data set is flushed.
    let (u, secret) = TestUser::enrolled("fu");
    let u = Arc::new(u);
    let code = code_at(&secret, now());
    let record = format!("fi:user:{}", u.name);
    let (hook, elsewhere) = accepted_elsewhere_then(&other, &u, &code, {
        let server = server.clone();
        move || {
            let written = reply(&server, &[b"EXISTS", record.as_bytes()]);
            let flushed = reply(&server, &[b"FLUSHALL"]);
            let left = reply(&server, &[b"DBSIZE"]);
            (written, flushed, left)
        }
    });
    proxy.arm(hook);
    let (d, logs) = login_logged(&host, &u, &code, PEER, None);
    // The fault happened where claimed: the other host accepted the code and wrote the
    // user's record, then the data set was flushed, all before this host's write, which
    // expected the user's record absent (so it alone would have matched again).
    let (written, flushed, left) = elsewhere.accepted();
    assert!(written.starts_with(":1"), "{written}");
    assert!(flushed.starts_with("+OK"), "{flushed}");
    assert!(left.starts_with(":0"), "{left}");
    let held = proxy.held();
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(expected_version(&held[1]), "0", "{held:?}");
    assert_decided_again_and_refused_as_used(&d, &logs);
    assert_still_refused_after_the_loss(&host, &u, &code);
    assert_a_later_code_logs_in(&host, &u, &secret);
}

/// Ends the test process when a login hangs: a bound that did not hold must fail the
/// test, not stall the suite.
fn hang_guard(t: &'static str) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let seen = done.clone();
    std::thread::spawn(move || {
        for _ in 0..600 {
            std::thread::sleep(Duration::from_millis(100));
            if seen.load(Ordering::Relaxed) {
                return;
            }
        }
        eprintln!("{t}: a login still ran after 60 s");
        std::process::exit(1);
    });
    done
}

#[test]
fn a_store_record_that_changes_under_every_write_ends_the_answer_within_its_bound() {
    let t = "a_store_record_that_changes_under_every_write_ends_the_answer_within_its_bound";
    if !require_root(t) {
        return;
    }
    let done = hang_guard(t);
    let server = Arc::new(RedisServer::start(&ServerConfig::default()));
    let proxy = HookProxy::start(server.port);
    // The answer's bound: 50 ms + 4 x 1000 ms. Each command after the first held write
    // waits 800 ms in the proxy (within its 1000 ms timeout): the first decision takes
    // one such command, so a second starts well within the bound; the second takes at
    // least five (the store record read, recreated, read again, the user's record read,
    // its write), so by its end the bound is spent (at least 4.8 s in the proxy alone).
    let options = format!(
        "redis_plugin={} redis_prefix=fs: redis_timeout=1000 redis_connect_timeout=50",
        plugin().display()
    );
    init_store(&format!("state={} {options}", server.url(false)));
    let host = Stack::probe(
        "svc",
        &format!("state=redis://127.0.0.1:{} {options}", proxy.port),
    );
    proxy.slow_down(Duration::from_millis(800));
    let flush = {
        let server = server.clone();
        move || {
            let flushed = reply(&server, &[b"FLUSHALL"]);
            assert!(flushed.starts_with("+OK"), "{flushed}");
        }
    };
    let line = |logs: &[String], needle: &str| logs.iter().filter(|l| l.contains(needle)).count();

    // Control: the store record changes under the first write only; the second decision
    // fits in the bound, is made with the recreated store record, and refuses the code
    // as used before the loss (a wrong code, not a store fault).
    let (c, secret_c) = TestUser::enrolled("sc");
    proxy.arm(Box::new(flush.clone()));
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, now()), PEER, None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "control: {d:?} {logs:?}"
    );
    assert_eq!(proxy.held().len(), 1, "control: one write held: {logs:?}");
    assert_eq!(line(&logs, "deciding again"), 1, "control: {logs:?}");
    assert_eq!(
        line(&logs, "before the state store lost its data"),
        1,
        "{logs:?}"
    );
    assert_eq!(
        line(&logs, "time bound of this answer ran out"),
        0,
        "{logs:?}"
    );

    // The fault: every write of the user's record finds the data set flushed since the
    // decision. Without the shared bound the login would decide three times (the
    // round limit); it stops after the second decision, whose calls spent the bound.
    proxy.clear_held();
    proxy.repeat(Some(Arc::new(flush)));
    let (u, secret) = TestUser::enrolled("su");
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, now()), PEER, None);
    proxy.repeat(None);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_SYSTEM_ERR".into()),
        "{d:?} {logs:?}"
    );
    assert_eq!(proxy.held().len(), 2, "two writes attempted: {logs:?}");
    assert_eq!(line(&logs, "deciding again"), 1, "{logs:?}");
    let ran_out = logs.iter().find(|l| {
        l.contains("state store unavailable")
            && l.contains(
                "the time bound of this answer ran out while the store record kept changing",
            )
    });
    assert!(ran_out.is_some(), "{logs:?}");
    done.store(true, Ordering::Relaxed);
}

/// A user's record deleted while a login's write is in flight (its TTL ran out, an
/// admin's `DEL`) and created again by another host: the creation must not repeat the
/// version the held write expects, or that write would overwrite the newer record and
/// roll its mark back (R34): the same code accepted on both hosts. Versions of a created
/// key start at a random number the host picks (docs/fleet.md, "A record deleted while a
/// write is in flight"), so the held write finds another version, writes nothing, and
/// the login decides again with the other host's record, which refuses the code as used.
#[test]
fn a_user_record_recreated_while_a_write_is_in_flight_never_takes_that_write() {
    let t = "a_user_record_recreated_while_a_write_is_in_flight_never_takes_that_write";
    if !require_root(t) {
        return;
    }
    let server = Arc::new(RedisServer::start(&ServerConfig::default()));
    let proxy = HookProxy::start(server.port);
    let options = format!(
        "redis_plugin={} redis_prefix=rc: redis_timeout=5000",
        plugin().display()
    );
    let direct = format!("state={} {options}", server.url(false));
    let proxied = format!("state=redis://127.0.0.1:{} {options}", proxy.port);
    init_store(&direct);
    let other = Arc::new(Stack::probe("svc", &direct));
    let host = Stack::probe("svc", &proxied);
    let start = now();
    let reply_of = |record: &str| reply(&server, &[b"HGET", record.as_bytes(), b"v"]);
    let version = |record: &str| {
        reply_of(record)
            .split_once("\r\n")
            .map(|(_, v)| v.to_owned())
    };

    // Control: a record exists, written once by the other host; the hook runs and does
    // nothing; this host's write, on the version it read, logs in.
    let (c, secret_c) = TestUser::enrolled("rc");
    let (d, logs) = login_logged(&other, &c, &code_at(&secret_c, start), PEER, start);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let read = version(&format!("rc:user:{}", c.name));
    proxy.arm(Box::new(|| {}));
    let at = start + 30;
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
    let held = proxy.held();
    assert_eq!(held.len(), 1, "control: the hook ran before the write");
    assert_eq!(
        Some(format!("{}\r\n", expected_version(&held[0]))),
        read,
        "control: the write expected the version read: {held:?}"
    );

    let (u, secret) = TestUser::enrolled("ru");
    let u = Arc::new(u);
    let record = format!("rc:user:{}", u.name);
    let (d, logs) = login_logged(&other, &u, &code_at(&secret, start), PEER, start);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");

    // The fault: while this host's write is held, the user's record is deleted and the
    // other host accepts the same code, creating the record again.
    let at = start + 30;
    let code = code_at(&secret, at);
    let slot = Arc::new(Mutex::new(None));
    let hook: Hook = {
        let (other, u, code, slot, server) = (
            other.clone(),
            u.clone(),
            code.clone(),
            slot.clone(),
            server.clone(),
        );
        let record = record.clone();
        Box::new(move || {
            let deleted = reply(&server, &[b"DEL", record.as_bytes()]);
            let (d, logs) = login_logged(&other, &u, &code, PEER, at);
            *locked(&slot) = Some((deleted, d, logs));
        })
    };
    let before = version(&record);
    proxy.arm(hook);
    let (d, logs) = login_logged(&host, &u, &code, PEER, at);
    let (deleted, d_other, logs_other) = locked(&slot).take().expect("the hook ran");
    // The fault happened where claimed: the record was deleted, the other host accepted
    // the code on an absent record, and this host's write expected the deleted version.
    assert!(deleted.starts_with(":1"), "{deleted}");
    assert_eq!(
        d_other.returned(),
        Returned::Success,
        "{d_other:?} {logs_other:?}"
    );
    let held = proxy.held();
    assert_eq!(held.len(), 2, "{held:?}");
    assert_eq!(
        Some(format!("{}\r\n", expected_version(&held[1]))),
        before,
        "{held:?}"
    );
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the code accepted twice: {d:?} {logs:?}"
    );
    assert!(
        logs.iter().any(|l| l.contains("already used")),
        "refused as used: {logs:?}"
    );
    // The other host's record stands: its code stays used, a later one logs in.
    let (d, logs) = login_logged(&host, &u, &code, PEER, at);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{d:?} {logs:?}"
    );
    let later = start + 60;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, later), PEER, later);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
}

/// The value of `field` of `key` as the server holds it (`None`: no such field).
fn field(server: &RedisServer, key: &str, field: &str) -> Option<Vec<u8>> {
    let raw = server.raw(None, &[b"HGET", key.as_bytes(), field.as_bytes()]);
    let text = String::from_utf8_lossy(&raw);
    let (head, _) = text.split_once("\r\n")?;
    let n: usize = head.strip_prefix('$')?.parse().ok()?;
    let start = head.len() + 2;
    raw.get(start..start + n).map(<[u8]>::to_vec)
}

/// Versions far above 2^32 (a created record's random start, counted on) stay the
/// canonical decimal the compare-and-set compares on every path that writes one: Lua
/// prints a number above 10^14 in exponent form (`tostring`: "4.5035996273705e+15"),
/// which the plugin would refuse as no version and every later compare would miss, a
/// lockout no reset could end. A user's record and the store record, each planted just
/// below 2^52 (the top of the random range), are written by: logins through libpam
/// (`pam_totp_cas_v4`), the previous release's `pam_totp_cas_v3` as its hosts call it,
/// the script fallback on a server without the library, `totp-state reset`, the probe
/// of `totp-state ping`, and the replacement of a store record of another server
/// instance (a restart or a failover, `fleet_rollback.rs`); each step counts exactly one
/// on, and `totp-state show` reads the record as usable. Control: the first write of the
/// user's record created it at a random version at least 2^32.
#[test]
fn versions_near_2_to_the_52_stay_canonical_decimal_on_every_path() {
    let t = "versions_near_2_to_the_52_stay_canonical_decimal_on_every_path";
    if !require_root(t) {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let args = format!(
        "state={} redis_plugin={} redis_prefix=big:",
        server.url(false),
        plugin().display()
    );
    init_store(&args);
    let host = Stack::probe("svc", &args);
    let (u, secret) = TestUser::enrolled("bg");
    let key = format!("big:user:{}", u.name);
    let version = |key: &str| {
        let v = field(&server, key, "v").unwrap_or_else(|| panic!("{key}: no version"));
        String::from_utf8(v).expect("ASCII")
    };
    let start = now();
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, start), PEER, start);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    let created: u64 = version(&key).parse().expect("a decimal version");
    assert!(created >= 1 << 32, "control: a random start: {created}");

    let top: u64 = (1 << 52) - 2;
    let planted = server.raw(
        None,
        &[b"HSET", key.as_bytes(), b"v", top.to_string().as_bytes()],
    );
    assert!(planted.starts_with(b":0"), "{planted:?}");
    let mut expect = top;
    let mut step = |what: &str, now_at: String| {
        expect += 1;
        assert_eq!(now_at, expect.to_string(), "{what}");
    };

    // A login's write (a wrong code: a failure recorded).
    let (d, logs) = login_logged(&host, &u, "000000", PEER, start + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{logs:?}"
    );
    step("a login", version(&key));

    // The previous release's host: the record as it read it, written back.
    let record = field(&server, &key, "r").expect("a record");
    let read = version(&key);
    let v3 = server.raw(
        None,
        &[
            b"FCALL",
            b"pam_totp_cas_v3",
            b"1",
            key.as_bytes(),
            read.as_bytes(),
            &record,
            b"0",
        ],
    );
    assert_eq!(v3, b":1\r\n", "{}", String::from_utf8_lossy(&v3));
    step("pam_totp_cas_v3", version(&key));

    // The script fallback: a server without the library.
    let deleted = server.raw(None, &[b"FUNCTION", b"DELETE", b"pam_totp"]);
    assert!(deleted.starts_with(b"+OK"), "{deleted:?}");
    let (d, logs) = login_logged(&host, &u, "000000", PEER, start + 30);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{logs:?}"
    );
    step("the script", version(&key));
    init_store(&args);

    let shown = state_tool(&["show", "--user", &u.name, "--options", &args]);
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{text} {:?}", shown.stderr);
    assert!(!text.contains("unusable"), "{text}");
    let reset = state_tool(&["reset", "--user", &u.name, "--options", &args]);
    assert!(reset.status.success(), "{reset:?}");
    step("totp-state reset", version(&key));

    // The code of a later step logs in on the record so counted.
    let at = start + 60;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    step("a login that logs in", version(&key));

    // `totp-state ping`'s probe writes (a TTL set, the default redis_ttl).
    let probe = server.raw(
        None,
        &[
            b"HSET",
            b"big:probe",
            b"v",
            top.to_string().as_bytes(),
            b"r",
            b"x",
        ],
    );
    assert!(probe.starts_with(b":2"), "{probe:?}");
    let ping = state_tool(&["ping", "--options", &args]);
    assert!(ping.status.success(), "{ping:?}");
    assert_eq!(version("big:probe"), (top + 2).to_string(), "ping");

    // A store record of another instance, replaced by the next login.
    let stale = server.raw(
        None,
        &[
            b"HSET",
            b"big:store",
            b"v",
            top.to_string().as_bytes(),
            b"i",
            b"elsewhere/gone",
        ],
    );
    assert!(stale.starts_with(b":0"), "{stale:?}");
    let at = start + 90;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("state store unavailable") || l.contains("unusable")),
        "{d:?} {logs:?}"
    );
    assert_eq!(
        version("big:store"),
        (top + 1).to_string(),
        "the store record"
    );
    // That login's own write (its code refused below the new floor, a failure recorded).
    step("the login that replaced it", version(&key));
    // A code of a step past the recreated floor and its window logs in.
    let at = start + 210;
    let (d, logs) = login_logged(&host, &u, &code_at(&secret, at), PEER, at);
    assert_eq!(d.returned(), Returned::Success, "{d:?} {logs:?}");
    step("a login after the replacement", version(&key));
}

/// A data set flushed while a login's write is in flight, and the store record created
/// again (by another user's login) before that write arrives: on the same server
/// instance its binding is the same, so only its version tells it from the one the
/// login read. Created at version 1 each time (the previous release), it matched, the
/// write went through with the lost floor, and the code was accepted twice; created at
/// a random version it does not: the write is refused for the changed store record and
/// the login decides again with the recreated one, which refuses the code as used.
/// Control: the user's own first login (the store record unchanged under the held write)
/// logs in through the same proxy.
#[test]
fn a_store_record_flushed_and_created_again_under_a_write_in_flight_is_told_apart() {
    let t = "a_store_record_flushed_and_created_again_under_a_write_in_flight_is_told_apart";
    if !require_root(t) {
        return;
    }
    let server = Arc::new(RedisServer::start(&ServerConfig::default()));
    let proxy = HookProxy::start(server.port);
    let options = format!(
        "redis_plugin={} redis_prefix=fr: redis_timeout=5000",
        plugin().display()
    );
    let direct = format!("state={} {options}", server.url(false));
    let proxied = format!("state=redis://127.0.0.1:{} {options}", proxy.port);
    init_store(&direct);
    let other = Arc::new(Stack::probe("svc", &direct));
    let host = Stack::probe("svc", &proxied);
    let store = |server: &RedisServer| reply(server, &[b"HMGET", b"fr:store", b"v", b"i"]);

    let (c, secret_c) = TestUser::enrolled("fk");
    proxy.arm(Box::new(|| {}));
    let (d, logs) = login_logged(&host, &c, &code_at(&secret_c, now()), PEER, None);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {logs:?}");
    assert_eq!(
        proxy.held().len(),
        1,
        "control: the hook ran before the write"
    );

    let (u, secret) = TestUser::enrolled("fz");
    let u = Arc::new(u);
    let (w, secret_w) = TestUser::enrolled("fw");
    let code = code_at(&secret, now());
    let before = store(&server);
    let (hook, elsewhere) = accepted_elsewhere_then(&other, &u, &code, {
        let (server, other) = (server.clone(), other.clone());
        move || {
            let flushed = reply(&server, &[b"FLUSHALL"]);
            // Another user's login on the other host creates the store record again.
            let (d, logs) = login_logged(
                &other,
                &w,
                &code_at(&secret_w, now() + 60),
                PEER,
                now() + 60,
            );
            (flushed, d, logs, store(&server))
        }
    });
    proxy.clear_held();
    proxy.arm(hook);
    let (d, logs) = login_logged(&host, &u, &code, PEER, None);
    let (flushed, d_w, logs_w, after) = elsewhere.accepted();
    // The fault happened where claimed: flushed, the store record there again, bound to
    // the same instance, before this host's write, which expected the user's record
    // absent (as it is again after the flush).
    assert!(flushed.starts_with("+OK"), "{flushed}");
    assert!(
        logs_w
            .iter()
            .any(|l| l.contains("had no store record, so it was created now")),
        "{d_w:?} {logs_w:?}"
    );
    let binding = |r: &str| r.rsplit("\r\n").nth(1).map(str::to_owned);
    assert_eq!(binding(&before), binding(&after), "{before} {after}");
    let held = proxy.held();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(expected_version(&held[0]), "0", "{held:?}");
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "the code accepted twice: {d:?} {logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("the store record changed since this login read it")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|l| l.contains("state store unavailable")),
        "not denied as a store fault: {logs:?}"
    );
    assert_still_refused_after_the_loss(&host, &u, &code);
}
