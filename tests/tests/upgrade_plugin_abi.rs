//! An upgrade that leaves the module and a backend plugin of different builds side by
//! side, through the real libpam: a process that loaded the module before the package
//! was replaced and loads the plugin after it (a screen locker, any PAM application that
//! outlives the upgrade), the plugin of the previous or the next release left by a
//! failed or partial unpack, a plugin of the first ABI (backend-named exports), a plugin
//! cut short (which glibc's `dlopen` maps anyway: the process died of `SIGBUS`). Each is
//! refused by the module before any of the
//! plugin's functions runs (each stub function aborts the process: a call would crash
//! the login, which the driver reports), the right code is denied even with
//! `state_fallback=local` (the plugin is the package's fault, not the store's), and one
//! log line names the plugin's path, both versions where there are two, and the fix.
//! `totp-state ping` refuses it with the same words. Control: the plugin of this build,
//! with the same options against a real redis-server (etcd member), logs in.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use pam_totp_plugin_abi::ABI_VERSION;
use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::{RedisServer, ServerConfig, init_store, plugin, trusted_dir};
use system_tests::*;

const FALLBACK_USED: &str = "using this host's local store";

/// Module options: the store at `url` through the plugin at `plugin`, a fallback that a
/// refused plugin must not take.
fn options(url: &str, plugin: &Path) -> String {
    format!(
        "state={url} redis_plugin={} redis_prefix=upabi{}: redis_connect_timeout=1000 \
         redis_timeout=1000 state_fallback=local",
        plugin.display(),
        std::process::id()
    )
}

/// `source` compiled to a root-owned 0755 shared object `name.so` in `dir`.
fn stub(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let so = dir.join(format!("{name}.so"));
    fs::write(&c, source).expect("write stub source");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc {name}");
    fs::set_permissions(&so, fs::Permissions::from_mode(0o755)).expect("chmod");
    so
}

/// A plugin exporting every function of the ABI under `prefix`, answering `version` to
/// the version call and aborting the process in every other.
fn plugin_of(dir: &Path, name: &str, prefix: &str, version: u32) -> PathBuf {
    let aborting = ["open", "get", "cas", "del", "close", "time", "resolver"]
        .map(|f| format!("int {prefix}_{f}(void) {{ abort(); }}\n"))
        .concat();
    stub(
        dir,
        name,
        &format!(
            "#include <stdlib.h>\nunsigned {prefix}_abi(void) {{ return {version}; }}\n{aborting}"
        ),
    )
}

/// This build's plugin at `real` cut after its first page (a full disk, a copy that
/// stopped), in `dir`: glibc's dlopen maps the missing segments and the process dies of
/// SIGBUS at their first touch, unless the module refuses the file first.
fn cut_short(dir: &Path, real: &Path) -> PathBuf {
    let truncated = dir.join("truncated.so");
    let bytes = fs::read(real).expect("read plugin");
    fs::write(&truncated, &bytes[..4096]).expect("write truncated");
    fs::set_permissions(&truncated, fs::Permissions::from_mode(0o755)).expect("chmod");
    truncated
}

/// The words a refused plugin's line must hold beside the plugin's path and the fix.
fn versions(v: u32) -> Vec<String> {
    vec![format!(
        "plugin ABI version {v}, this module speaks {ABI_VERSION}"
    )]
}

fn cut_words() -> Vec<String> {
    vec!["cut short".to_owned(), "loadable segment".to_owned()]
}

/// The login with `args` (the plugin at `path`) is denied without a crash, one log line
/// refuses the store naming the plugin, `words` and the fix, nothing used the local
/// store, no code was compared, and `ping` exits 1 with the same words.
fn assert_refused(
    what: &str,
    login: &dyn Fn(&str) -> (Drive, Vec<String>),
    args: &str,
    path: &Path,
    words: Vec<String>,
) {
    let (d, lines) = login(args);
    assert_eq!(
        d.returned(),
        Returned::Failed("PAM_AUTH_ERR".into()),
        "{what}: denied, no crash: {d:?} {lines:?}"
    );
    let mut fix = vec![
        "state store refused".to_owned(),
        path.display().to_string(),
        "from one build".to_owned(),
        "restart".to_owned(),
    ];
    fix.extend(words);
    let named: Vec<&str> = lines
        .iter()
        .map(|l| syslog_message(l))
        .filter(|m| fix.iter().all(|f| m.contains(f.as_str())))
        .collect();
    assert_eq!(named.len(), 1, "{what}: one line names {fix:?}: {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains(FALLBACK_USED)),
        "{what}: no fallback: {lines:?}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("invalid verification code")),
        "{what}: no code compared: {lines:?}"
    );
    let out = state_tool(&["ping", "--options", args]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: ping: {said}");
    assert!(
        fix[1..].iter().all(|f| said.contains(f.as_str())),
        "{what}: ping names {fix:?}: {said}"
    );
}

/// Redis: the previous, the next and the first ABI, and this build's plugin cut short.
#[test]
fn a_plugin_of_another_build_is_refused_before_it_runs_with_the_fix_through_libpam() {
    let t = "a_plugin_of_another_build_is_refused_before_it_runs_with_the_fix_through_libpam";
    if !require_root(t) || !require_tool(t, "redis-server") || !require_tool(t, "cc") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let url = server.url(false);
    let (u, secret) = TestUser::enrolled("upabi");
    let login = |args: &str| {
        let stack = Stack::probe("svc", args);
        login_logged(&stack, &u, &code_at(&secret, now()), PEER, None)
    };

    // Control: this build's plugin, the same options, logs in through the store.
    let control = options(&url, plugin());
    init_store(&control);
    let (d, lines) = login(&control);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains(FALLBACK_USED)),
        "control used the store: {lines:?}"
    );

    let dir = trusted_dir("upabi");
    let previous = plugin_of(dir.path(), "previous", "pam_totp_plugin", ABI_VERSION - 1);
    let next = plugin_of(dir.path(), "next", "pam_totp_plugin", ABI_VERSION + 1);
    let first = plugin_of(dir.path(), "first", "pam_totp_redis", 1);
    let truncated = cut_short(dir.path(), plugin());
    let cases: [(&str, &Path, Vec<String>); 4] = [
        ("the previous ABI", &previous, versions(ABI_VERSION - 1)),
        ("the next ABI", &next, versions(ABI_VERSION + 1)),
        (
            "the first ABI",
            &first,
            vec!["no pam_totp_plugin_abi export".to_owned()],
        ),
        ("a plugin cut short", &truncated, cut_words()),
    ];
    for (what, path, words) in cases {
        assert_refused(what, &login, &options(&url, path), path, words);
    }
}

/// etcd, whose plugin the same loader opens: the previous ABI and this build's etcd
/// plugin cut short. Control: this build's etcd plugin logs in.
#[test]
fn an_etcd_plugin_of_another_build_is_refused_before_it_runs_through_libpam() {
    let t = "an_etcd_plugin_of_another_build_is_refused_before_it_runs_through_libpam";
    if !require_root(t) || !require_tool(t, "etcd") || !require_tool(t, "cc") {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let (u, secret) = TestUser::enrolled("upabe");
    let login = |args: &str| {
        let stack = Stack::probe("svc", args);
        login_logged(&stack, &u, &code_at(&secret, now()), PEER, None)
    };
    let args = |plugin: &Path| {
        format!(
            "state={} etcd_plugin={} etcd_prefix=upabe{}/ etcd_timeout=1000 \
             state_fallback=local",
            cluster.url(),
            plugin.display(),
            std::process::id()
        )
    };
    let control = args(etcd_plugin());
    init_store(&control);
    let (d, lines) = login(&control);
    assert_eq!(d.returned(), Returned::Success, "control: {d:?} {lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains(FALLBACK_USED)),
        "control used the store: {lines:?}"
    );

    let dir = trusted_dir("upabe");
    let previous = plugin_of(dir.path(), "previous", "pam_totp_plugin", ABI_VERSION - 1);
    let truncated = cut_short(dir.path(), etcd_plugin());
    for (what, path, words) in [
        ("the previous ABI", &previous, versions(ABI_VERSION - 1)),
        ("a plugin cut short", &truncated, cut_words()),
    ] {
        assert_refused(what, &login, &args(path), path, words);
    }
}
