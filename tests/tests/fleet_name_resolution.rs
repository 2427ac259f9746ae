//! A Redis host named by a host name, through the real libpam (R36): the name is
//! resolved within the connect bound, or the login is denied with a line naming the
//! bound. The test's own name service (`system_tests::names`) sends the lookup to a DNS
//! server that never answers, where getaddrinfo in the host would have waited for
//! resolv.conf's timeout × attempts (minutes here); the control finds the same name in
//! the hosts file and logs in. The same holds for a primary a sentinel names by host
//! name.

use system_tests::fleet::{RedisServer, Sentinel, ServerConfig, init_store, plugin};
use system_tests::names::{SilentNameServer, assert_resolution_bounded};
use system_tests::*;

const NAME: &str = "store.pam-totp.test";

#[test]
fn a_redis_host_name_whose_dns_never_answers_is_denied_within_the_connect_bound() {
    let t = "a_redis_host_name_whose_dns_never_answers_is_denied_within_the_connect_bound";
    if !require_root(t) || !require_tool(t, "redis-server") || !require_tool(t, "getent") {
        return;
    }
    let server = RedisServer::start(&ServerConfig::default());
    let prefix = format!("t{}-names:", std::process::id());
    init_store(&server.options(&format!("redis_prefix={prefix}")));
    let args = format!(
        "state=redis://{NAME}:{} redis_plugin={} redis_prefix={prefix} \
         redis_connect_timeout=1000 redis_timeout=2000",
        server.port,
        plugin().display()
    );
    let stack = Stack::probe("svc", &args);
    let dns = SilentNameServer::start();
    let (u, secret) = TestUser::enrolled("rnames");
    let login = || Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);

    assert_resolution_bounded(login, &dns, NAME);
}

/// A sentinel's reply names the primary by host name (`announce-hostnames`): that name
/// goes through the same bounded resolver. The sentinel itself is an IP literal; the
/// name it announces, `localhost`, is left out of the hosts file, so its lookup goes to
/// the silent DNS server: denied within the connect bound, the line naming it. Control:
/// `localhost` in the hosts file logs in (and `totp-state init`, outside the namespace,
/// reached the primary by the same name).
#[test]
fn a_primary_a_sentinel_names_by_a_host_name_is_resolved_within_the_connect_bound() {
    let t = "a_primary_a_sentinel_names_by_a_host_name_is_resolved_within_the_connect_bound";
    if !require_root(t) || !require_tool(t, "redis-server") || !require_tool(t, "getent") {
        return;
    }
    let primary = RedisServer::start(&ServerConfig::default());
    let sentinel = Sentinel::monitoring("localhost", primary.port, "named", 1);
    let args = format!(
        "state=redis+sentinel://127.0.0.1:{}/named redis_plugin={} \
         redis_prefix=t{}-sentinel-names: redis_connect_timeout=1000 redis_timeout=2000",
        sentinel.port,
        plugin().display(),
        std::process::id()
    );
    init_store(&args);
    let stack = Stack::probe("svc", &args);
    let dns = SilentNameServer::start();
    let (u, secret) = TestUser::enrolled("snames");
    let login = || Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);

    assert_resolution_bounded(login, &dns, "localhost");
}
