//! The etcd backend's options: `state=etcd://H1:P1,H2:P2,…` (or `etcds://` for TLS) and
//! the `etcd_*` settings. Parsing only, pure and bounded like the Redis options beside it.
//!
//! The endpoints are members of one cluster; the plugin fails over between them within
//! the connect and command bounds. Credentials never come from the pam.d line: a user
//! name and password come from a root-only file (`etcd_credentials=`, the format of
//! [`super::Credentials`]), a client certificate and key from files (`etcd_cert_file=`,
//! `etcd_key_file=`, the key root-only).

use crate::options::{OptionError, bad, decimal};

use super::{ConnectionInput, ConnectionOptions, MAX_REDIS_TIMEOUT_MS};

/// Default key prefix of the etcd store (etcd keys are conventionally paths).
pub const DEFAULT_ETCD_PREFIX: &str = "pam_totp/";
/// etcd's registered client port, used when an endpoint names none.
pub const DEFAULT_ETCD_PORT: u16 = 2379;
/// More members than any sane cluster has (etcd recommends 3, 5 or 7).
pub const MAX_ETCD_ENDPOINTS: usize = 16;

/// The members a `state=etcd://…` line names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdEndpoints {
    /// `(host, port)`; a host is a DNS name, an IPv4 literal or a bracketed IPv6 literal.
    pub hosts: Vec<(String, u16)>,
    /// `etcds://`: HTTPS, verified against `etcd_ca_file=` (the system store otherwise).
    pub tls: bool,
}

impl EtcdEndpoints {
    /// Whether a `state=` value names an etcd cluster.
    pub fn is_etcd(v: &str) -> bool {
        v.starts_with("etcd://") || v.starts_with("etcds://")
    }

    /// Parses `etcd://HOST[:PORT][,HOST[:PORT]]…` and the same with `etcds://`; no user
    /// information, path, query or fragment; at most [`MAX_ETCD_ENDPOINTS`] members,
    /// none twice.
    pub fn parse(v: &str) -> Result<Self, OptionError> {
        let bad = |r| bad("state", r);
        if v.len() > 2048 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("not a valid cluster address"));
        }
        let (tls, rest) = if let Some(r) = v.strip_prefix("etcds://") {
            (true, r)
        } else if let Some(r) = v.strip_prefix("etcd://") {
            (false, r)
        } else {
            return Err(bad("unknown scheme"));
        };
        if rest.contains('@') {
            return Err(bad(
                "credentials are not allowed on the pam.d line (use etcd_credentials=)",
            ));
        }
        if rest.contains(['/', '?', '#']) {
            return Err(bad("an etcd endpoint list has no path or query"));
        }
        let mut hosts: Vec<(String, u16)> = Vec::new();
        for member in rest.split(',') {
            let hp = super::split_host_port_default(member, DEFAULT_ETCD_PORT)
                .ok_or_else(|| bad("bad host or port in the etcd endpoint list"))?;
            if hosts.contains(&hp) {
                return Err(bad("an etcd endpoint is named twice"));
            }
            hosts.push(hp);
        }
        if hosts.len() > MAX_ETCD_ENDPOINTS {
            return Err(bad("more than 16 etcd endpoints"));
        }
        Ok(Self { hosts, tls })
    }

    /// The normalised list handed to the plugin (never carries credentials).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "etcds" } else { "etcd" };
        let list: Vec<String> = self.hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect();
        format!("{scheme}://{}", list.join(","))
    }
}

/// The etcd backend settings with defaults filled in. `conn.client_cert` and
/// `conn.client_key` are `etcd_cert_file=` and `etcd_key_file=`; without `etcd_ca_file=`
/// an `etcds://` cluster is verified against the system store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    pub endpoints: EtcdEndpoints,
    /// The connection; its bounds apply to each request (every member tried included).
    pub conn: ConnectionOptions,
}

/// The `etcd_*` options as given; [`EtcdFleet::check`] makes them consistent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EtcdFleet {
    pub endpoints: Option<EtcdEndpoints>,
    /// The `etcd_*` connection options as given.
    pub conn: ConnectionInput,
}

impl EtcdFleet {
    /// Applies `state=etcd…` or an `etcd_*` option. `Ok(false)`: not ours.
    pub fn apply(&mut self, name: &str, v: &str) -> Result<bool, OptionError> {
        match name {
            "state" if EtcdEndpoints::is_etcd(v) => self.endpoints = Some(EtcdEndpoints::parse(v)?),
            "etcd_connect_timeout" => {
                self.conn.connect_timeout_ms =
                    Some(decimal("etcd_connect_timeout", v, 1, MAX_REDIS_TIMEOUT_MS)?)
            }
            "etcd_timeout" => {
                self.conn.command_timeout_ms =
                    Some(decimal("etcd_timeout", v, 1, MAX_REDIS_TIMEOUT_MS)?)
            }
            "etcd_prefix" => self.conn.prefix = Some(super::key_prefix("etcd_prefix", v)?),
            "etcd_credentials" => {
                self.conn.credentials = Some(super::absolute("etcd_credentials", v)?)
            }
            "etcd_ca_file" => self.conn.ca_file = Some(super::absolute("etcd_ca_file", v)?),
            "etcd_cert_file" => self.conn.client_cert = Some(super::absolute("etcd_cert_file", v)?),
            "etcd_key_file" => self.conn.client_key = Some(super::absolute("etcd_key_file", v)?),
            "etcd_plugin" => self.conn.plugin = Some(super::absolute("etcd_plugin", v)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Refuses `etcd_*` settings without an etcd `state=`, TLS files without `etcds://`,
    /// and a certificate without its key (or the reverse).
    pub fn check(&self) -> Result<(), OptionError> {
        let etcd_only = [
            (
                "etcd_connect_timeout",
                self.conn.connect_timeout_ms.is_some(),
            ),
            ("etcd_timeout", self.conn.command_timeout_ms.is_some()),
            ("etcd_prefix", self.conn.prefix.is_some()),
            ("etcd_credentials", self.conn.credentials.is_some()),
            ("etcd_ca_file", self.conn.ca_file.is_some()),
            ("etcd_cert_file", self.conn.client_cert.is_some()),
            ("etcd_key_file", self.conn.client_key.is_some()),
            ("etcd_plugin", self.conn.plugin.is_some()),
        ];
        if self.endpoints.is_none()
            && let Some((name, _)) = etcd_only.iter().find(|(_, set)| *set)
        {
            return Err(bad(name, "needs state=etcd:// or etcds://"));
        }
        let tls = self.endpoints.as_ref().is_some_and(|e| e.tls);
        for (name, set) in [
            ("etcd_ca_file", self.conn.ca_file.is_some()),
            ("etcd_cert_file", self.conn.client_cert.is_some()),
            ("etcd_key_file", self.conn.client_key.is_some()),
        ] {
            if set && !tls {
                return Err(bad(name, "needs an etcds:// cluster"));
            }
        }
        match (&self.conn.client_cert, &self.conn.client_key) {
            (Some(_), None) => Err(bad("etcd_cert_file", "needs etcd_key_file=")),
            (None, Some(_)) => Err(bad("etcd_key_file", "needs etcd_cert_file=")),
            _ => Ok(()),
        }
    }

    /// The settings with defaults, when `state=` names an etcd cluster.
    pub fn options(&self) -> Option<EtcdOptions> {
        Some(EtcdOptions {
            endpoints: self.endpoints.clone()?,
            conn: self.conn.with_defaults(DEFAULT_ETCD_PREFIX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::DEFAULT_CONNECT_TIMEOUT_MS;

    #[test]
    fn endpoint_lists_parse_and_normalise() {
        let e =
            EtcdEndpoints::parse("etcd://10.0.0.1:2379,10.0.0.2,[::1]:32379,db-3.example").unwrap();
        assert!(!e.tls);
        assert_eq!(
            e.url(),
            "etcd://10.0.0.1:2379,10.0.0.2:2379,[::1]:32379,db-3.example:2379"
        );
        assert!(EtcdEndpoints::parse("etcds://a:1").unwrap().tls);
    }

    #[test]
    fn hostile_endpoint_lists_are_refused() {
        for v in [
            "etcd://",
            "etcd://a:1,",
            "etcd://,a",
            "etcd://u:p@a:1",
            "etcd://a:1/v3",
            "etcd://a:1?x=1",
            "etcd://a:0",
            "etcd://a:65536",
            "etcd://a:1,a:1",
            "etcd://-a",
            "etcd://a b",
            "etcd://[zz]:1",
            "http://a:1",
        ] {
            assert!(EtcdEndpoints::parse(v).is_err(), "{v}");
        }
        let many: Vec<String> = (1..=17).map(|i| format!("h{i}:1")).collect();
        assert!(EtcdEndpoints::parse(&format!("etcd://{}", many.join(","))).is_err());
    }

    fn fleet(args: &[(&str, &str)]) -> Result<EtcdFleet, OptionError> {
        let mut f = EtcdFleet::default();
        for (n, v) in args {
            assert!(f.apply(n, v)?, "{n}");
        }
        f.check()?;
        Ok(f)
    }

    #[test]
    fn settings_need_their_cluster_and_tls_files_need_tls() {
        assert!(fleet(&[("etcd_prefix", "x/")]).is_err());
        assert!(fleet(&[("state", "etcd://a"), ("etcd_ca_file", "/ca.pem")]).is_err());
        assert!(fleet(&[("state", "etcds://a"), ("etcd_cert_file", "/c.pem")]).is_err());
        assert!(fleet(&[("state", "etcds://a"), ("etcd_key_file", "/k.pem")]).is_err());
        let f = fleet(&[
            ("state", "etcds://a,b"),
            ("etcd_ca_file", "/ca.pem"),
            ("etcd_cert_file", "/c.pem"),
            ("etcd_key_file", "/k.pem"),
            ("etcd_timeout", "200"),
        ])
        .unwrap();
        let o = f.options().unwrap();
        assert_eq!(o.conn.command_timeout_ms, 200);
        assert_eq!(o.conn.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert_eq!(o.conn.prefix, DEFAULT_ETCD_PREFIX);
        // The etcd names of the shared fields land where the Redis names do.
        assert_eq!(o.conn.ca_file.as_deref(), Some("/ca.pem"));
        assert_eq!(o.conn.client_cert.as_deref(), Some("/c.pem"));
        assert_eq!(o.conn.client_key.as_deref(), Some("/k.pem"));
        assert!(fleet(&[("state", "etcd://a"), ("etcd_timeout", "0")]).is_err());
        assert!(fleet(&[("state", "etcd://a"), ("etcd_credentials", "rel")]).is_err());
    }
}

/// Values for the option-list test in `crate::options`.
#[cfg(test)]
pub(crate) mod tests_support {
    pub fn companions() -> Vec<&'static str> {
        // A certificate needs its key and the reverse: both are given with the cluster.
        vec![
            "state=etcds://127.0.0.1:2379",
            "etcd_cert_file=/etc/security/pam_totp_etcd.crt",
            "etcd_key_file=/etc/security/pam_totp_etcd.key",
        ]
    }

    pub fn example_value(name: &str) -> Option<&'static str> {
        Some(match name {
            "etcd_connect_timeout" | "etcd_timeout" => "200",
            "etcd_prefix" => "fleet1/",
            "etcd_credentials" => "/etc/security/pam_totp_etcd.cred",
            "etcd_ca_file" => "/etc/ssl/certs/etcd-ca.pem",
            "etcd_cert_file" => "/etc/security/pam_totp_etcd.crt",
            "etcd_key_file" => "/etc/security/pam_totp_etcd.key",
            "etcd_plugin" => "/usr/lib/pam_totp/etcd.so",
            _ => return None,
        })
    }
}
