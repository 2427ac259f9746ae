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

impl Backend for Redis {
    fn open(config: &[u8]) -> Result<Self, Failure> {
        let config = PluginConfig::decode(config).map_err(Failure::invalid)?;
        backend::Backend::connect(config)
            .map(Redis)
            .map_err(failure)
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
}

pam_totp_plugin_abi::export_backend!(Redis, "Redis");
