//! An etcd member named by a host name, through the real libpam (R36): the name is
//! resolved within the connect bound (the Redis plugin's resolver, the module's), or
//! the login is denied with a line naming the bound. The test's own name service
//! (`system_tests::names`) sends the lookup to a DNS server that never answers; the
//! control finds the same name in the hosts file and logs in.

use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
use system_tests::fleet::init_store;
use system_tests::names::{SilentNameServer, assert_resolution_bounded};
use system_tests::*;

const NAME: &str = "member.pam-totp.test";

#[test]
fn an_etcd_member_name_whose_dns_never_answers_is_denied_within_the_connect_bound() {
    let t = "an_etcd_member_name_whose_dns_never_answers_is_denied_within_the_connect_bound";
    if !require_root(t) || !require_tool(t, "etcd") || !require_tool(t, "getent") {
        return;
    }
    let cluster = EtcdCluster::start(1, &EtcdConfig::default());
    let prefix = format!("t{}-names/", std::process::id());
    let options = |url: &str| {
        format!(
            "state={url} etcd_plugin={} etcd_prefix={prefix} etcd_connect_timeout=1000 \
             etcd_timeout=3000",
            etcd_plugin().display()
        )
    };
    init_store(&options(&cluster.url()));
    let port = cluster
        .client_address(0)
        .rsplit_once(':')
        .map(|(_, p)| p.to_owned())
        .expect("a port");
    let stack = Stack::probe("svc", &options(&format!("etcd://{NAME}:{port}")));
    let dns = SilentNameServer::start();
    let (u, secret) = TestUser::enrolled("enames");
    let login = || Driver::login(&stack, &u, &code_at(&secret, now())).rhost(PEER);

    assert_resolution_bounded(login, &dns, NAME);
}
