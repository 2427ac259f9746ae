//! The Redis/Valkey backend of pam_totp, as a plugin the module `dlopen`s only when a
//! pam.d line says `state=redis://…`, `rediss://…` or `unix:…`.
//!
//! The C exports are those of the one plugin ABI (`pam_totp_plugin_abi`, backend-neutral
//! `pam_totp_plugin_*` symbols), written by its `export_backend!` from the [`Backend`]
//! implementation below. The retry loop and every decision stay in the module; the plugin
//! only moves bytes atomically.

mod backend;
mod bound;
mod deadline;
mod resp;

use pam_totp_plugin_abi::{Backend, Failure, Status};
use totp_core::fleet::PluginConfig;

/// The Redis connection behind a plugin handle.
pub struct Redis(backend::Backend);

fn failure(f: backend::Failure) -> Failure {
    Failure::new(f.status, f.message)
}

/// The open's failure with any copy of the password in its message replaced: whatever a
/// server or a proxy echoes of the `AUTH` it was sent goes to the log and to an admin
/// tool's output, where a password must never appear.
fn without_password(mut f: Failure, password: Option<&str>) -> Failure {
    if let Some(p) = password.filter(|p| !p.is_empty())
        && f.message.contains(p)
    {
        f.message = f.message.replace(p, "<password not shown>");
    }
    f
}

impl Backend for Redis {
    fn open(config: &[u8]) -> Result<Self, Failure> {
        let config = PluginConfig::decode(config).map_err(Failure::invalid)?;
        let password = config.password.clone();
        backend::Backend::connect(config)
            .map(Redis)
            .map_err(|f| without_password(failure(f), password.as_deref().map(|p| p.as_str())))
    }

    fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
        self.0.get(key).map_err(failure)
    }

    fn cas(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl_secs: u64,
        durable: bool,
    ) -> Result<Status, Failure> {
        self.0
            .compare_and_set(key, expected, record, ttl_secs, durable)
            .map_err(failure)
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), Failure> {
        self.0.delete(key).map_err(failure)
    }

    fn server_time(&mut self) -> Result<u64, Failure> {
        self.0.server_time().map_err(failure)
    }

    fn take_note(&mut self) -> Option<String> {
        self.0.take_note()
    }
}

pam_totp_plugin_abi::export_backend!(Redis, "Redis");

#[cfg(test)]
mod tests {
    use super::*;

    /// Whatever form a server's echo takes, the open's failure carries no copy of the
    /// password; a message without one, or no password, is left as it is.
    #[test]
    fn the_open_s_failure_never_carries_the_password() {
        let echoed = Failure::new(Status::Refused, "proxy: bad command AUTH fleet s3cret!");
        let f = without_password(echoed, Some("s3cret!"));
        assert_eq!(
            f.message,
            "proxy: bad command AUTH fleet <password not shown>"
        );
        assert_eq!(f.status, Status::Refused);
        let plain = without_password(Failure::new(Status::Unavailable, "down"), Some("pw"));
        assert_eq!(plain.message, "down");
        let none = without_password(Failure::new(Status::Unavailable, "down"), Some(""));
        assert_eq!(none.message, "down");
    }
}
