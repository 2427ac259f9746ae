//! The Redis/Valkey backend of pam_totp, as a plugin the module `dlopen`s only when a
//! pam.d line says `state=redis://…`, `rediss://…` or `unix:…`.
//!
//! The ABI is narrow and carries bytes only, so the module and the plugin share no Rust
//! types (they are separate shared objects, each with its own standard library):
//!
//! | function | does |
//! |---|---|
//! | `pam_totp_redis_abi()` | [`ABI_VERSION`]; the module refuses any other |
//! | `pam_totp_redis_open(cfg, len, &h, msg, cap)` | connect and authenticate |
//! | `pam_totp_redis_get(h, key, klen, out, cap, &len, &version, msg, cap)` | record + version (0 = absent) |
//! | `pam_totp_redis_cas(h, key, klen, expected, rec, rlen, ttl, durable, msg, cap)` | write if the version is still `expected` |
//! | `pam_totp_redis_del(h, key, klen, msg, cap)` | forget the record |
//! | `pam_totp_redis_close(h)` | drop the connection |
//!
//! Every function returns a status (`backend::Status`) and, on error, a NUL-terminated
//! message (no secrets in it) in the caller's buffer. The retry loop and every decision
//! stay in the module; the plugin only moves bytes atomically.

mod backend;
mod resp;

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::slice;
use std::sync::Once;

use backend::{Backend, Failure, Status};
use totp_core::fleet::PluginConfig;

/// Bumped on any change of a signature or a status value.
pub const ABI_VERSION: u32 = 1;

/// A panic in here must never unwind into sshd (C frames), nor print on its stderr.
fn guarded(msg: *mut u8, cap: usize, f: impl FnOnce() -> Result<i32, Failure>) -> i32 {
    static QUIET: Once = Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            write_message(msg, cap, &failure.message);
            failure.status as i32
        }
        Err(_) => {
            write_message(msg, cap, "internal error in the Redis plugin");
            Status::Internal as i32
        }
    }
}

fn write_message(msg: *mut u8, cap: usize, text: &str) {
    if msg.is_null() || cap == 0 {
        return;
    }
    let n = text.len().min(cap - 1);
    // SAFETY: the caller passes a writable buffer of `cap` bytes at `msg` (ABI contract);
    // we write `n + 1 <= cap` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), msg, n);
        *msg.add(n) = 0;
    }
}

/// # Safety
/// `ptr` is NULL with `len == 0`, or valid for reads of `len` bytes.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid("NULL buffer"));
    }
    // SAFETY: non-NULL and valid for `len` bytes by this function's contract.
    Ok(unsafe { slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `h` is NULL or a handle from `pam_totp_redis_open` not yet closed, used by one thread.
unsafe fn backend<'a>(h: *mut c_void) -> Result<&'a mut Backend, Failure> {
    if h.is_null() {
        return Err(Failure::invalid("NULL handle"));
    }
    // SAFETY: a non-NULL handle is a live `Box<Backend>` from `open`, used exclusively.
    Ok(unsafe { &mut *h.cast::<Backend>() })
}

#[unsafe(no_mangle)]
pub extern "C" fn pam_totp_redis_abi() -> u32 {
    ABI_VERSION
}

/// # Safety
/// `cfg` holds `len` bytes; `handle` is writable; `msg` is NULL or holds `cap` writable
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_totp_redis_open(
    cfg: *const u8,
    len: usize,
    handle: *mut *mut c_void,
    msg: *mut u8,
    cap: usize,
) -> i32 {
    guarded(msg, cap, || {
        if handle.is_null() {
            return Err(Failure::invalid("NULL handle pointer"));
        }
        // SAFETY: forwarded contract of this function.
        let raw = unsafe { bytes(cfg, len) }?;
        let config = PluginConfig::decode(raw).map_err(Failure::invalid)?;
        let backend = Backend::connect(config)?;
        // SAFETY: `handle` is writable (checked non-NULL above).
        unsafe { *handle = Box::into_raw(Box::new(backend)).cast::<c_void>() };
        Ok(Status::Ok as i32)
    })
}

/// # Safety
/// `h` as for `backend()`; `key` holds `klen` bytes; `out` holds `out_cap` writable
/// bytes; `out_len` and `version` are writable; `msg` as for `open`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_totp_redis_get(
    h: *mut c_void,
    key: *const u8,
    klen: usize,
    out: *mut u8,
    out_cap: usize,
    out_len: *mut usize,
    version: *mut u64,
    msg: *mut u8,
    cap: usize,
) -> i32 {
    guarded(msg, cap, || {
        // SAFETY: forwarded contracts of this function.
        let (b, key) = unsafe { (backend(h)?, bytes(key, klen)?) };
        if out_len.is_null() || version.is_null() || (out.is_null() && out_cap > 0) {
            return Err(Failure::invalid("NULL output pointer"));
        }
        let (record, v) = b.get(key)?;
        if record.len() > out_cap {
            return Err(Failure::corrupt(
                "stored record larger than the caller's buffer",
            ));
        }
        // SAFETY: `out` holds `out_cap >= record.len()` writable bytes; `out_len` and
        // `version` are writable (checked non-NULL above).
        unsafe {
            if !record.is_empty() {
                std::ptr::copy_nonoverlapping(record.as_ptr(), out, record.len());
            }
            *out_len = record.len();
            *version = v;
        }
        Ok(Status::Ok as i32)
    })
}

/// # Safety
/// As for `pam_totp_redis_get`; `rec` holds `rlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_totp_redis_cas(
    h: *mut c_void,
    key: *const u8,
    klen: usize,
    expected: u64,
    rec: *const u8,
    rlen: usize,
    ttl_secs: u64,
    durable: u32,
    msg: *mut u8,
    cap: usize,
) -> i32 {
    guarded(msg, cap, || {
        // SAFETY: forwarded contracts of this function.
        let (b, key, rec) = unsafe { (backend(h)?, bytes(key, klen)?, bytes(rec, rlen)?) };
        b.compare_and_set(key, expected, rec, ttl_secs, durable != 0)
            .map(|s| s as i32)
    })
}

/// # Safety
/// As for `pam_totp_redis_get`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_totp_redis_del(
    h: *mut c_void,
    key: *const u8,
    klen: usize,
    msg: *mut u8,
    cap: usize,
) -> i32 {
    guarded(msg, cap, || {
        // SAFETY: forwarded contracts of this function.
        let (b, key) = unsafe { (backend(h)?, bytes(key, klen)?) };
        b.delete(key)?;
        Ok(Status::Ok as i32)
    })
}

/// # Safety
/// `h` is NULL or a handle from `pam_totp_redis_open`, closed at most once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn pam_totp_redis_close(h: *mut c_void) {
    if h.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `h` came from `Box::into_raw` in `open` and is closed once.
        drop(unsafe { Box::from_raw(h.cast::<Backend>()) });
    }));
}
