//! What the Redis backend costs hosts that do not use it: nothing, because it is a
//! separate plugin the module `dlopen`s only for `state=redis…`. Printed figures:
//! file sizes, the dynamic dependencies (`DT_NEEDED`) of module and plugin, and, in a
//! fresh child process (`pam-bench --footprint-child`), the resident memory and the
//! mapped TLS library after loading the module alone and then the plugin too.

use std::fs;
use std::path::Path;
use std::process::{Command, ExitCode};

use crate::memory;

/// Shared objects whose mapping shows the network/TLS stack is present.
const TLS_LIBS: &[&str] = &["libssl", "libcrypto"];

fn needed(so: &Path) -> String {
    let out = Command::new("readelf").arg("-d").arg(so).output();
    let Ok(out) = out else {
        return "readelf not available".into();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let libs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect();
    libs.join(" ")
}

fn mapped_tls() -> Vec<String> {
    let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mut found: Vec<String> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| TLS_LIBS.iter().any(|t| p.contains(t)))
        .filter_map(|p| p.rsplit('/').next().map(str::to_owned))
        .collect();
    found.sort();
    found.dedup();
    found
}

fn dlopen(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated path; loading our own module and plugin runs
    // their (trivial) initialisers only. The handle is kept for the process' life.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    !h.is_null()
}

/// `pam-bench --footprint-child MODULE PLUGIN`: load each in turn, print one line each.
pub fn child(args: &[String]) -> ExitCode {
    let [module, plugin] = args else {
        eprintln!("usage: pam-bench --footprint-child MODULE PLUGIN");
        return ExitCode::from(2);
    };
    // libpam is what any PAM host has mapped already.
    let _ = dlopen("libpam.so.0");
    let base = memory::status();
    for (name, path) in [("module", module), ("module+plugin", plugin)] {
        if !dlopen(path) {
            eprintln!("dlopen {path} failed");
            return ExitCode::from(1);
        }
        let now = memory::status();
        let tls = mapped_tls();
        println!(
            "{name}\t{}\t{}\t{}",
            now.vm_rss.saturating_sub(base.vm_rss),
            now.rss_file.saturating_sub(base.rss_file),
            if tls.is_empty() {
                "none".into()
            } else {
                tls.join(",")
            }
        );
    }
    ExitCode::SUCCESS
}

/// Prints the footprint section of the report.
pub fn report(release: &Path, strip: impl Fn(&Path) -> Option<u64>) {
    let module = release.join("libpam_totp.so");
    let plugin = release.join("libpam_totp_redis.so");
    let size = |p: &Path| {
        let full = fs::metadata(p).map(|m| m.len() / 1024).ok();
        let stripped = strip(p).map(|s| s / 1024);
        format!(
            "{} KiB (stripped {})",
            full.map_or("n/a".into(), |v| v.to_string()),
            stripped.map_or("n/a".into(), |v| format!("{v} KiB"))
        )
    };
    println!(
        "fleet plugin (loaded only for state=redis…): libpam_totp_redis.so {}",
        size(&plugin)
    );
    println!("  module needs: {}", needed(&module));
    println!("  plugin needs: {}", needed(&plugin));
    let etcd = release.join("libpam_totp_etcd.so");
    println!(
        "etcd plugin (loaded only for state=etcd…): libpam_totp_etcd.so {}",
        size(&etcd)
    );
    println!("  plugin needs: {}", needed(&etcd));
    let exe = std::env::current_exe().unwrap_or_else(|_| "pam-bench".into());
    let out = Command::new(exe)
        .arg("--footprint-child")
        .arg(&module)
        .arg(&plugin)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            for line in String::from_utf8_lossy(&o.stdout).lines() {
                let f: Vec<&str> = line.split('\t').collect();
                if let [name, rss, file, tls] = f.as_slice() {
                    println!(
                        "  after dlopen of the {name}: RSS +{rss} KiB (+{file} KiB file-backed); TLS libraries mapped: {tls}"
                    );
                }
            }
        }
        Ok(o) => println!(
            "  footprint child failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => println!("  footprint child failed: {e}"),
    }
}
