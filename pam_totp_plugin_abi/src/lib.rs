//! The state-store plugin ABI of pam_totp, defined once.
//!
//! The module (`totp_os::remote`) and every backend plugin (`pam_totp_redis`,
//! `pam_totp_etcd`, …) use this crate and nothing else to agree on the contract, in the
//! manner of OpenSSH's `sk-api.h`: fixed, backend-neutral symbol names, plain C function
//! types carrying bytes only (no Rust type crosses a shared-object boundary: each side
//! has its own standard library), status codes, and a version the module checks before it
//! calls anything else.
//!
//! | symbol | does |
//! |---|---|
//! | `pam_totp_plugin_abi()` | [`ABI_VERSION`]; the module refuses any other |
//! | `pam_totp_plugin_open(cfg, len, &h, msg, cap)` | connect, authenticate, read the configuration's prefetch keys |
//! | `pam_totp_plugin_get(h, key, klen, out, cap, &len, &version, msg, cap)` | record + version (0 = absent) |
//! | `pam_totp_plugin_cas(h, key, klen, expected, rec, rlen, ttl, durable, msg, cap)` | write if the version is still `expected` (and, for a user's record, the store record is still the one read) |
//! | `pam_totp_plugin_del(h, key, klen, msg, cap)` | forget the record |
//! | `pam_totp_plugin_time(h, &secs, msg, cap)` | the server's clock (unix seconds), from what it last answered |
//! | `pam_totp_plugin_close(h)` | drop the connection |
//! | `pam_totp_plugin_resolver(f)` | the module's host-name resolver, handed over once after the version check |
//!
//! `cfg` is a `totp_core::fleet::PluginConfig` encoding. Every function but `abi` and
//! `close` returns a [`Status`] and, on error, a NUL-terminated message without secrets in
//! the caller's buffer of `cap` bytes. A successful call (`open`, and any call after it)
//! may leave a warning there too (a server of the list skipped before another served,
//! [`Backend::take_note`]), for the module to log; an empty buffer says nothing (a module
//! that does not look loses only the warning, and a plugin that never writes one leaves
//! the buffer empty, so the version stays). The retry loop and every decision stay in the
//! module; a plugin only moves bytes atomically. A plugin writes its exports with
//! [`export_backend!`], which checks them against the types below at compile time.
//!
//! Host names go the other way: a plugin never resolves one itself (getaddrinfo has no
//! time bound of its own and cannot be abandoned without leaving a thread behind); it
//! asks the module's resolver ([`ResolveFn`], see [`resolve`]), which answers within the
//! time the plugin gives it.

#![forbid(unsafe_op_in_unsafe_fn)]

use std::ffi::c_void;

/// Bumped on any change of a symbol, a signature or a status value. 2: the symbols lost
/// their backend name (`pam_totp_redis_*` in version 1). 3: `pam_totp_plugin_time`, the
/// server's clock, which the module needs to recreate a lost store record (R34); a
/// version-2 plugin cannot give it, so it is refused rather than let the recreation fall
/// back to this host's clock alone. 4: [`Status::StoreChanged`], which a version-3
/// module would take for an internal error. 5: `pam_totp_plugin_resolver`, the module's
/// bounded resolver; a version-4 plugin resolves names itself without a time bound (R36).
pub const ABI_VERSION: u32 = 5;

/// The exported symbol names, NUL-terminated for `dlsym`.
pub mod symbol {
    pub const ABI: &[u8] = b"pam_totp_plugin_abi\0";
    pub const OPEN: &[u8] = b"pam_totp_plugin_open\0";
    pub const GET: &[u8] = b"pam_totp_plugin_get\0";
    pub const CAS: &[u8] = b"pam_totp_plugin_cas\0";
    pub const DEL: &[u8] = b"pam_totp_plugin_del\0";
    pub const CLOSE: &[u8] = b"pam_totp_plugin_close\0";
    pub const TIME: &[u8] = b"pam_totp_plugin_time\0";
    pub const RESOLVER: &[u8] = b"pam_totp_plugin_resolver\0";
}

/// `pam_totp_plugin_abi() -> version`.
pub type AbiFn = unsafe extern "C" fn() -> u32;
/// `open(cfg, cfg_len, handle_out, msg, msg_cap) -> status`.
pub type OpenFn = unsafe extern "C" fn(*const u8, usize, *mut *mut c_void, *mut u8, usize) -> i32;
/// `get(h, key, key_len, out, out_cap, out_len, version, msg, msg_cap) -> status`.
pub type GetFn = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    *mut u8,
    usize,
    *mut usize,
    *mut u64,
    *mut u8,
    usize,
) -> i32;
/// `cas(h, key, key_len, expected, rec, rec_len, ttl_secs, durable, msg, msg_cap) -> status`.
pub type CasFn = unsafe extern "C" fn(
    *mut c_void,
    *const u8,
    usize,
    u64,
    *const u8,
    usize,
    u64,
    u32,
    *mut u8,
    usize,
) -> i32;
/// `del(h, key, key_len, msg, msg_cap) -> status`.
pub type DelFn = unsafe extern "C" fn(*mut c_void, *const u8, usize, *mut u8, usize) -> i32;
/// `time(h, secs, msg, msg_cap) -> status`.
pub type TimeFn = unsafe extern "C" fn(*mut c_void, *mut u64, *mut u8, usize) -> i32;
/// `close(h)`.
pub type CloseFn = unsafe extern "C" fn(*mut c_void);
/// The module's resolver, called by a plugin:
/// `resolve(name, name_len, limit_ms, out, out_cap, out_len, msg, msg_cap) -> status`.
/// [`Status::Ok`] with the addresses of `name` in `out` (IP literals, one per line, as
/// many whole lines as fit), found within `limit_ms`; otherwise a failure and its message.
pub type ResolveFn =
    unsafe extern "C" fn(*const u8, usize, u64, *mut u8, usize, *mut usize, *mut u8, usize) -> i32;
/// `resolver(f)`: hands the module's resolver to the plugin.
pub type ResolverFn = unsafe extern "C" fn(ResolveFn);

/// The size of the message buffer the module passes.
pub const MESSAGE_CAP: usize = 512;

/// What a call returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    /// The version moved on: re-read and decide again.
    Conflict = 1,
    /// A user's record was not written because the store record (`<prefix>store`)
    /// changed since the module read it (a data set lost, flushed or restored, the
    /// record recreated): re-read the store record, then the user's, and decide again
    /// with the floor it holds now (R34). Returned with a message, as a failure is.
    StoreChanged = 2,
    /// Not reachable in time (connect, timeout, connection dropped, no quorum).
    Unavailable = -1,
    /// Reachable but refused (authentication, permissions, TLS trust).
    Refused = -2,
    /// A reply or a stored value we did not expect.
    Corrupt = -3,
    /// The caller broke the ABI contract or sent a bad configuration.
    Invalid = -4,
    /// A panic was caught inside the plugin.
    Internal = -5,
}

impl Status {
    /// The status a returned integer means; an unknown value is [`Status::Internal`].
    pub fn from_raw(v: i32) -> Self {
        match v {
            0 => Self::Ok,
            1 => Self::Conflict,
            2 => Self::StoreChanged,
            -1 => Self::Unavailable,
            -2 => Self::Refused,
            -3 => Self::Corrupt,
            -4 => Self::Invalid,
            _ => Self::Internal,
        }
    }
}

/// An error inside a plugin: its status and a message without secrets.
#[derive(Debug)]
pub struct Failure {
    pub status: Status,
    pub message: String,
}

impl Failure {
    pub fn new(status: Status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn invalid(m: &str) -> Self {
        Self::new(Status::Invalid, m)
    }

    pub fn corrupt(m: &str) -> Self {
        Self::new(Status::Corrupt, m)
    }
}

/// Text a server sent, made fit for a message: the first `max` characters, printable
/// ASCII and blanks only. The message reaches syslog and an admin's terminal
/// (`totp-state ping`), so a hostile or broken server must not put escape sequences,
/// bidi overrides or other invisible characters there. One rule for every plugin.
pub fn shown(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .filter(|c| matches!(c, ' '..='~'))
        .collect()
}

/// What a message can hold: the module's buffer ([`MESSAGE_CAP`]), less its NUL.
pub const MESSAGE_ROOM: usize = MESSAGE_CAP - 1;

/// Where [`fitted`] ends a shortened reason.
pub const CUT: &str = "...";

/// `each` (one `ADDRESS: reason` entry per server tried, a sentinel's `sentinel
/// HOST:PORT`, an etcd member's URL) joined by `"; "` in at most `room` bytes, never
/// more: as they are when they fit; otherwise every entry keeps its address and the
/// start of its reason, each getting an equal share of what the addresses leave (what a
/// shorter one leaves goes to the others), every cut reason ending in [`CUT`]. The
/// module's message buffer would otherwise cut the text at its end, and the last servers
/// tried would lose their address with their reason (and a text after the list with
/// them). Where even the addresses do not fit (many servers with long names), the last
/// entries give way to a count of them (`N more not shown`) rather than be cut off
/// unannounced. The one rule for every plugin's list of servers.
pub fn fitted(each: &[String], room: usize) -> String {
    const SEP: &str = "; ";
    let n = each.len();
    let whole = each.iter().map(String::len).sum::<usize>() + SEP.len() * n.saturating_sub(1);
    if whole <= room {
        return each.join(SEP);
    }
    // What an entry is never cut below: its address and the mark, or itself if shorter.
    let least: Vec<usize> = each
        .iter()
        .map(|m| m.len().min(address_end(m) + CUT.len()))
        .collect();
    let cost = |kept: usize, more: &str| {
        let parts = kept + usize::from(!more.is_empty());
        least[..kept].iter().sum::<usize>() + more.len() + SEP.len() * parts.saturating_sub(1)
    };
    let mut kept = n;
    let mut more = String::new();
    while kept > 0 && cost(kept, &more) > room {
        kept -= 1;
        more = format!("{} more not shown", n - kept);
    }
    // What the kept entries' least leaves, shared out shortest first (by what each could
    // still take), so that one that takes less than its share leaves it to the others.
    let mut extra = room.saturating_sub(cost(kept, &more));
    let mut order: Vec<usize> = (0..kept).collect();
    order.sort_by_key(|&i| each[i].len() - least[i]);
    let mut cut = vec![String::new(); kept];
    for (k, &i) in order.iter().enumerate() {
        let give = (each[i].len() - least[i]).min(extra / (kept - k));
        extra -= give;
        cut[i] = shortened(&each[i], least[i] + give);
    }
    if !more.is_empty() {
        cut.push(more);
    }
    let mut text = cut.join(SEP);
    // Only a room too small for the count alone gets here; a message is never longer.
    if text.len() > room {
        let mut end = room;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Where an entry's address ends: at the first `": "` (a URL's `://` and an IPv6
/// address's colons have no blank after them, the port's separator does); 0 without one.
fn address_end(m: &str) -> usize {
    m.find(": ").unwrap_or(0)
}

/// `m` in at most `max` bytes, its reason cut (and marked) where it must be; `max` is
/// at least its address and [`CUT`] (what [`fitted`] reserves for it) or `m`'s length.
fn shortened(m: &str, max: usize) -> String {
    if m.len() <= max {
        return m.to_owned();
    }
    let address = address_end(m);
    let mut end = max.saturating_sub(CUT.len()).max(address).min(m.len());
    // No reason left but (part of) its `": "`: the address alone, as `ADDRESS...`.
    if m[address..].starts_with(": ") && end > address && end <= address + 2 {
        end = address;
    }
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &m[..end])
}

/// What a backend implements inside its plugin; [`export_backend!`] turns it into the C
/// exports. Rust types stay on the plugin's side of the boundary.
pub trait Backend: Sized {
    /// Connects with the `PluginConfig` encoding the module sent, reading its prefetch
    /// keys in the round trip that proves the store answers.
    fn open(config: &[u8]) -> Result<Self, Failure>;
    /// The record and its version; `(empty, 0)` when absent. A prefetch key is answered
    /// from the open's read the first time, and only while nothing was written since.
    fn get(&mut self, key: &[u8]) -> Result<(Vec<u8>, u64), Failure>;
    /// Writes when the version is still `expected`: [`Status::Ok`] or [`Status::Conflict`];
    /// a user's record whose write found the store record changed since the module read
    /// it: a failure of [`Status::StoreChanged`].
    fn cas(
        &mut self,
        key: &[u8],
        expected: u64,
        record: &[u8],
        ttl_secs: u64,
        durable: bool,
    ) -> Result<Status, Failure>;
    fn delete(&mut self, key: &[u8]) -> Result<(), Failure>;
    /// The server's clock now, in unix seconds: the time it gave with a reply this
    /// connection already read (Redis: `INFO`'s `server_time_usec`; etcd: the gateway's
    /// `Date` header) plus the time elapsed here since, so that asking costs no round
    /// trip where the server already told it. Asked only when the store record is
    /// recreated.
    fn server_time(&mut self) -> Result<u64, Failure>;
    /// What the module should log as a warning about a call that succeeded (a server of
    /// the list passed over before another served, and why), taken once; `None` when
    /// there is nothing to say. Asked after every successful call (the open, and each
    /// `get`, `cas`, `del` and `time`), whose message buffer carries it back.
    fn take_note(&mut self) -> Option<String> {
        None
    }
}

/// Host names as a plugin resolves them: through the module's resolver, within a time
/// bound, and IP literals without any lookup. Both plugins use this, and the sentinel
/// replies a Redis plugin follows go through it as well.
pub mod resolve {
    use super::{MESSAGE_CAP, ResolveFn, Status};
    use std::net::{IpAddr, SocketAddr};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Most addresses used of one name: the rest could not be tried within one connect
    /// bound anyway.
    pub const MAX_ADDRESSES: usize = 16;
    /// Room for [`MAX_ADDRESSES`] IPv6 literals and their newlines.
    const OUT_CAP: usize = MAX_ADDRESSES * 40;

    /// The resolver of the module instance that loaded the plugin last. Replaced, not
    /// set once: libpam unloads the module at `pam_end` and a long-lived host loads it
    /// again (elsewhere in memory), while the plugin stays loaded; the new instance
    /// hands over its own function before it calls anything else.
    static RESOLVER: Mutex<Option<ResolveFn>> = Mutex::new(None);

    /// Called by the `pam_totp_plugin_resolver` export.
    pub fn install(f: ResolveFn) {
        *RESOLVER.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Why a name has no address to connect to.
    #[derive(Debug)]
    pub struct Unresolved {
        pub status: Status,
        pub message: String,
    }

    /// The addresses of `host` (an IP literal, bracketed or not, or a host name) with
    /// `port`, the name's found within `limit` by the module's resolver. An IP literal
    /// costs nothing: no lookup, no process.
    pub fn socket_addrs(
        host: &str,
        port: u16,
        limit: Duration,
    ) -> Result<Vec<SocketAddr>, Unresolved> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let fail = |status, message| Unresolved { status, message };
        let installed = *RESOLVER.lock().unwrap_or_else(|p| p.into_inner());
        let Some(resolve) = installed else {
            return Err(fail(
                Status::Invalid,
                format!("cannot resolve {bare}: the module handed over no resolver"),
            ));
        };
        let mut out = [0u8; OUT_CAP];
        let mut len = 0usize;
        let mut msg = [0u8; MESSAGE_CAP];
        let ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        // SAFETY: every buffer is live and writable for the length passed; the resolver
        // is the module's, whose contract (`ResolveFn`) writes at most that many bytes.
        let st = unsafe {
            resolve(
                bare.as_ptr(),
                bare.len(),
                ms,
                out.as_mut_ptr(),
                out.len(),
                &mut len,
                msg.as_mut_ptr(),
                msg.len(),
            )
        };
        match Status::from_raw(st) {
            Status::Ok => {}
            status => {
                let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
                let text = String::from_utf8_lossy(&msg[..end]).into_owned();
                return Err(fail(status, text));
            }
        }
        let listing = out.get(..len).ok_or_else(|| {
            fail(
                Status::Internal,
                format!("cannot resolve {bare}: resolver overran its buffer"),
            )
        })?;
        let mut found = Vec::new();
        for line in listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let ip = std::str::from_utf8(line)
                .ok()
                .and_then(|l| l.parse::<IpAddr>().ok())
                .ok_or_else(|| {
                    fail(
                        Status::Internal,
                        format!("cannot resolve {bare}: resolver answered no address"),
                    )
                })?;
            found.push(SocketAddr::new(ip, port));
        }
        found.truncate(MAX_ADDRESSES);
        if found.is_empty() {
            return Err(fail(Status::Unavailable, format!("{bare} has no address")));
        }
        Ok(found)
    }
}

/// Plugin-side helpers used by [`export_backend!`]; not for the module.
#[doc(hidden)]
pub mod support {
    use super::{Failure, Status};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Once;

    /// Runs one call of a plugin. A panic in a plugin must never unwind into the host's
    /// C frames, nor print on its stderr (the user's terminal under su or sudo): it
    /// becomes [`Status::Internal`].
    pub fn guarded(
        name: &str,
        f: impl FnOnce() -> Result<Status, Failure>,
    ) -> Result<Status, Failure> {
        static QUIET: Once = Once::new();
        QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
        catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
            Err(Failure::new(
                Status::Internal,
                format!("internal error in the {name} plugin"),
            ))
        })
    }

    /// The status to return; a failure's message (cut to fit) and a NUL go into the
    /// caller's buffer.
    ///
    /// # Safety
    /// `msg` is NULL or writable for `cap` bytes.
    pub unsafe fn finish(msg: *mut u8, cap: usize, result: Result<Status, Failure>) -> i32 {
        let failure = match result {
            Ok(status) => return status as i32,
            Err(f) => f,
        };
        if !msg.is_null() && cap > 0 {
            let n = failure.message.len().min(cap - 1);
            // SAFETY: `msg` is writable for `cap` bytes (this function's contract); we
            // write `n + 1 <= cap` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(failure.message.as_ptr(), msg, n);
                *msg.add(n) = 0;
            }
        }
        // A failure built with a success status would reach the module as a fresh or
        // written record: whatever went wrong, the caller must see an error.
        match failure.status {
            Status::Ok | Status::Conflict => Status::Internal as i32,
            other => other as i32,
        }
    }

    /// A successful open's warning ([`Backend::take_note`](super::Backend::take_note)),
    /// cut to fit, and a NUL, into the caller's buffer.
    ///
    /// # Safety
    /// `msg` is NULL or writable for `cap` bytes.
    pub unsafe fn note(msg: *mut u8, cap: usize, note: &str) {
        if !msg.is_null() && cap > 0 {
            // Cut at a character boundary: the module reads text.
            let mut n = note.len().min(cap - 1);
            while !note.is_char_boundary(n) {
                n -= 1;
            }
            // SAFETY: `msg` is writable for `cap` bytes (this function's contract); we
            // write `n + 1 <= cap` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(note.as_ptr(), msg, n);
                *msg.add(n) = 0;
            }
        }
    }

    /// A successful call's warning ([`Backend::take_note`](super::Backend::take_note))
    /// into the caller's buffer, where a failure's message would go; nothing for a
    /// failure, whose message [`finish`] writes.
    ///
    /// # Safety
    /// `msg` is NULL or writable for `cap` bytes.
    pub unsafe fn noted(
        msg: *mut u8,
        cap: usize,
        result: &Result<Status, Failure>,
        warning: Option<&str>,
    ) {
        if let (Ok(_), Some(n)) = (result, warning) {
            // SAFETY: forwarded contract of this function.
            unsafe { note(msg, cap, n) };
        }
    }

    /// # Safety
    /// `ptr` is NULL with `len == 0`, or valid for reads of `len` bytes.
    pub unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], Failure> {
        if len == 0 {
            return Ok(&[]);
        }
        if ptr.is_null() {
            return Err(Failure::invalid("NULL buffer"));
        }
        // SAFETY: non-NULL and valid for `len` bytes by this function's contract.
        Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// # Safety
    /// `h` is NULL or a handle from `open` not yet closed, used by one thread.
    pub unsafe fn handle<'a, B>(h: *mut std::ffi::c_void) -> Result<&'a mut B, Failure> {
        if h.is_null() {
            return Err(Failure::invalid("NULL handle"));
        }
        // SAFETY: a non-NULL handle is a live `Box<B>` from `open`, used exclusively.
        Ok(unsafe { &mut *h.cast::<B>() })
    }
}

/// Writes the eight C exports of a plugin for a [`Backend`] type: `export_backend!(Type,
/// "name")`, the name appearing in messages. Each export is checked against the ABI's
/// function types, so a plugin cannot drift from the module.
#[macro_export]
macro_rules! export_backend {
    ($backend:ty, $name:literal) => {
        const _: $crate::AbiFn = pam_totp_plugin_abi;
        const _: $crate::OpenFn = pam_totp_plugin_open;
        const _: $crate::GetFn = pam_totp_plugin_get;
        const _: $crate::CasFn = pam_totp_plugin_cas;
        const _: $crate::DelFn = pam_totp_plugin_del;
        const _: $crate::CloseFn = pam_totp_plugin_close;
        const _: $crate::TimeFn = pam_totp_plugin_time;
        const _: $crate::ResolverFn = pam_totp_plugin_resolver;

        #[unsafe(no_mangle)]
        pub extern "C" fn pam_totp_plugin_abi() -> u32 {
            $crate::ABI_VERSION
        }

        /// # Safety
        /// `cfg` holds `len` bytes; `handle` is writable; `msg` is NULL or holds `cap`
        /// writable bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_open(
            cfg: *const u8,
            len: usize,
            handle: *mut *mut ::std::ffi::c_void,
            msg: *mut u8,
            cap: usize,
        ) -> i32 {
            let mut note: Option<String> = None;
            let result = $crate::support::guarded($name, || {
                if handle.is_null() {
                    return Err($crate::Failure::invalid("NULL handle pointer"));
                }
                // SAFETY: forwarded contract of this function.
                let raw = unsafe { $crate::support::bytes(cfg, len) }?;
                let mut backend = <$backend as $crate::Backend>::open(raw)?;
                note = $crate::Backend::take_note(&mut backend);
                // SAFETY: `handle` is writable (checked non-NULL above).
                unsafe { *handle = Box::into_raw(Box::new(backend)).cast::<::std::ffi::c_void>() };
                Ok($crate::Status::Ok)
            });
            if let (Ok(_), Some(n)) = (&result, &note) {
                // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
                // contract).
                unsafe { $crate::support::note(msg, cap, n) };
            }
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::finish(msg, cap, result) }
        }

        /// # Safety
        /// `h` is a live handle; `key` holds `klen` bytes; `out` holds `out_cap` writable
        /// bytes; `out_len` and `version` are writable; `msg` as for `open`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_get(
            h: *mut ::std::ffi::c_void,
            key: *const u8,
            klen: usize,
            out: *mut u8,
            out_cap: usize,
            out_len: *mut usize,
            version: *mut u64,
            msg: *mut u8,
            cap: usize,
        ) -> i32 {
            // A successful call's warning, where a failure's message goes.
            let mut note: Option<String> = None;
            let result = $crate::support::guarded($name, || {
                // SAFETY: forwarded contracts of this function.
                let (b, key) = unsafe {
                    (
                        $crate::support::handle::<$backend>(h)?,
                        $crate::support::bytes(key, klen)?,
                    )
                };
                if out_len.is_null() || version.is_null() || (out.is_null() && out_cap > 0) {
                    return Err($crate::Failure::invalid("NULL output pointer"));
                }
                let (record, v) = $crate::Backend::get(b, key)?;
                note = $crate::Backend::take_note(b);
                if record.len() > out_cap {
                    return Err($crate::Failure::corrupt(
                        "stored record larger than the caller's buffer",
                    ));
                }
                // SAFETY: `out` holds `out_cap >= record.len()` writable bytes; `out_len`
                // and `version` are writable (checked non-NULL above).
                unsafe {
                    if !record.is_empty() {
                        ::std::ptr::copy_nonoverlapping(record.as_ptr(), out, record.len());
                    }
                    *out_len = record.len();
                    *version = v;
                }
                Ok($crate::Status::Ok)
            });
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::noted(msg, cap, &result, note.as_deref()) };
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::finish(msg, cap, result) }
        }

        /// # Safety
        /// As for `pam_totp_plugin_get`; `rec` holds `rlen` bytes.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_cas(
            h: *mut ::std::ffi::c_void,
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
            // A successful call's warning, where a failure's message goes.
            let mut note: Option<String> = None;
            let result = $crate::support::guarded($name, || {
                // SAFETY: forwarded contracts of this function.
                let (b, key, rec) = unsafe {
                    (
                        $crate::support::handle::<$backend>(h)?,
                        $crate::support::bytes(key, klen)?,
                        $crate::support::bytes(rec, rlen)?,
                    )
                };
                let status = $crate::Backend::cas(b, key, expected, rec, ttl_secs, durable != 0)?;
                note = $crate::Backend::take_note(b);
                Ok(status)
            });
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::noted(msg, cap, &result, note.as_deref()) };
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::finish(msg, cap, result) }
        }

        /// # Safety
        /// As for `pam_totp_plugin_get`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_del(
            h: *mut ::std::ffi::c_void,
            key: *const u8,
            klen: usize,
            msg: *mut u8,
            cap: usize,
        ) -> i32 {
            // A successful call's warning, where a failure's message goes.
            let mut note: Option<String> = None;
            let result = $crate::support::guarded($name, || {
                // SAFETY: forwarded contracts of this function.
                let (b, key) = unsafe {
                    (
                        $crate::support::handle::<$backend>(h)?,
                        $crate::support::bytes(key, klen)?,
                    )
                };
                $crate::Backend::delete(b, key)?;
                note = $crate::Backend::take_note(b);
                Ok($crate::Status::Ok)
            });
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::noted(msg, cap, &result, note.as_deref()) };
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::finish(msg, cap, result) }
        }

        /// # Safety
        /// `h` is a live handle; `secs` is NULL or writable; `msg` as for `open`.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_time(
            h: *mut ::std::ffi::c_void,
            secs: *mut u64,
            msg: *mut u8,
            cap: usize,
        ) -> i32 {
            // A successful call's warning, where a failure's message goes.
            let mut note: Option<String> = None;
            let result = $crate::support::guarded($name, || {
                // SAFETY: forwarded contract of this function.
                let b = unsafe { $crate::support::handle::<$backend>(h)? };
                if secs.is_null() {
                    return Err($crate::Failure::invalid("NULL output pointer"));
                }
                let now = $crate::Backend::server_time(b)?;
                note = $crate::Backend::take_note(b);
                // SAFETY: `secs` is writable (checked non-NULL above).
                unsafe { *secs = now };
                Ok($crate::Status::Ok)
            });
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::noted(msg, cap, &result, note.as_deref()) };
            // SAFETY: `msg` is NULL or writable for `cap` bytes (this function's
            // contract).
            unsafe { $crate::support::finish(msg, cap, result) }
        }

        /// # Safety
        /// `f` follows the contract of `ResolveFn` for the life of the process.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_resolver(f: $crate::ResolveFn) {
            $crate::resolve::install(f);
        }

        /// # Safety
        /// `h` is NULL or a handle from `pam_totp_plugin_open`, closed at most once.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pam_totp_plugin_close(h: *mut ::std::ffi::c_void) {
            if h.is_null() {
                return;
            }
            let _ = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                // SAFETY: `h` came from `Box::into_raw` in `open` and is closed once.
                drop(unsafe { Box::from_raw(h.cast::<$backend>()) });
            }));
        }
    };
}

/// What the plugins' unit tests share: one stand-in for the module's resolver.
#[cfg(feature = "test-support")]
pub mod test_support {
    use super::{Failure, Status};

    /// A module resolver ([`crate::resolve::install`]) for the plugins' tests:
    /// `slow.example` not answered within the bound, any other name refused.
    ///
    /// # Safety
    /// [`crate::ResolveFn`]'s contract.
    pub unsafe extern "C" fn slow_or_refusing(
        name: *const u8,
        len: usize,
        _limit_ms: u64,
        _out: *mut u8,
        _cap: usize,
        _out_len: *mut usize,
        msg: *mut u8,
        msg_cap: usize,
    ) -> i32 {
        // SAFETY: `name` holds `len` bytes (`ResolveFn`'s contract).
        let name = unsafe { std::slice::from_raw_parts(name, len) };
        let failure = if name == b"slow.example" {
            Failure::new(Status::Unavailable, "cannot resolve slow.example in time")
        } else {
            Failure::new(Status::Invalid, "not a host name")
        };
        // SAFETY: `msg` is NULL or writable for `msg_cap` bytes (`ResolveFn`'s contract).
        unsafe { crate::support::finish(msg, msg_cap, Err(failure)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_keeps_printable_ascii_and_blanks_only() {
        assert_eq!(
            shown(
                "etcdserver: \u{1b}]0;owned\u{7}key \u{202e}not\u{202c} found\r\n",
                200
            ),
            "etcdserver: ]0;ownedkey not found"
        );
        assert_eq!(shown("a\u{200b}b\u{85}c\u{ad}d\u{7f}e\u{e9}", 200), "abcde");
        assert_eq!(shown("abcdef", 3), "abc");
        // Control: plain text passes as it is.
        assert_eq!(shown("user name is empty", 200), "user name is empty");
    }

    /// A list too long for the message keeps every address whole (an IPv6 one too, and an
    /// etcd member's URL), each reason cut and marked; control: a list that fits is left
    /// as it is.
    #[test]
    fn a_list_too_long_for_the_message_keeps_every_address() {
        let hosts = [
            "sentinel 127.0.0.1:26379",
            "sentinel [2001:db8::1]:26380",
            "https://[2001:db8::2]:2379",
        ];
        let long: Vec<String> = hosts
            .iter()
            .chain(&hosts)
            .map(|h| format!("{h}: TLS handshake: {}", "x".repeat(190)))
            .collect();
        let text = fitted(&long, 300);
        assert!(text.len() <= 300, "{} bytes: {text}", text.len());
        for h in hosts {
            assert_eq!(
                text.matches(&format!("{h}: TLS handshake")).count(),
                2,
                "{text}"
            );
        }
        assert_eq!(text.matches(CUT).count(), long.len(), "{text}");
        let short: Vec<String> = hosts
            .iter()
            .map(|h| format!("{h}: no answer within 500 ms"))
            .collect();
        assert_eq!(fitted(&short, MESSAGE_ROOM), short.join("; "));
    }

    /// Twelve etcd members with long names, all failing: their addresses alone do not fit
    /// the room, and the message was longer than the buffer, which cut the last members
    /// and the text after the list. Now the text fits, every entry it shows keeps its
    /// whole address, and the ones that give way are counted. Control: five fit, each
    /// with its address and no count.
    #[test]
    fn addresses_too_many_for_the_room_give_way_to_a_count_of_them() {
        let member =
            |i: usize| format!("https://etcd-member-{i:02}.datacenter-frankfurt.corp.example:2379");
        let list = |n: usize| -> Vec<String> {
            (1..=n)
                .map(|i| format!("{}: TLS: certificate verify failed", member(i)))
                .collect()
        };
        let room = MESSAGE_ROOM - 60;
        let twelve = list(12);
        assert!(
            twelve
                .iter()
                .map(|m| m.find(": ").unwrap_or(0) + CUT.len())
                .sum::<usize>()
                > room,
            "the fault: the addresses alone do not fit"
        );
        let text = fitted(&twelve, room);
        assert!(text.len() <= room, "{} bytes: {text}", text.len());
        let entries: Vec<&str> = text.split("; ").collect();
        let (last, shown) = entries.split_last().expect("entries");
        let more: usize = last
            .strip_suffix(" more not shown")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a count at the end: {text}"));
        assert_eq!(shown.len() + more, 12, "{text}");
        for (i, e) in shown.iter().enumerate() {
            assert!(e.starts_with(&member(i + 1)), "entry {i}: {text}");
        }
        let five = fitted(&list(5), room);
        assert!(five.len() <= room, "{five}");
        assert!(!five.contains("more not shown"), "{five}");
        for i in 1..=5 {
            assert!(five.contains(&format!("{}: TLS", member(i))), "{five}");
        }
    }

    /// An entry shortened keeps its address whole however little room there
    /// is, and is cut on a character boundary.
    #[test]
    fn a_shortened_message_keeps_its_address_and_whole_characters() {
        assert_eq!(shortened("http://m1:2379: reason", 0), "http://m1:2379...");
        assert_eq!(
            shortened("http://m1:2379: reason", 22),
            "http://m1:2379: reason"
        );
        let m = "http://m1:2379: a\u{e9}bbbbbbbb";
        assert_eq!(shortened(m, 21), "http://m1:2379: a...");
        assert_eq!(shortened(m, 22), "http://m1:2379: a\u{e9}...");
    }

    /// The addresses fit, but a short entry took a full share before a long address was
    /// met, and that address then took more than its share: the text ran past the room.
    /// Now each address is reserved first. Control: the same entries with room for all.
    #[test]
    fn a_short_entry_does_not_take_the_room_a_long_address_needs() {
        let each = vec![
            format!("a: {}", "x".repeat(30)),
            format!("{}: {}", "b".repeat(30), "y".repeat(100)),
        ];
        let text = fitted(&each, 45);
        assert!(text.len() <= 45, "{} bytes: {text}", text.len());
        assert!(text.starts_with("a: x"), "{text}");
        assert!(text.contains(&format!("; {}: y", "b".repeat(30))), "{text}");
        assert_eq!(text.matches(CUT).count(), 2, "{text}");
        assert_eq!(fitted(&each, 200), each.join("; "));
    }

    proptest::proptest! {
        /// Whatever the entries (any characters, `": "` anywhere or nowhere, multi-byte
        /// characters where a cut falls, none at all) and whatever the room, `fitted`
        /// returns, in at most the room, the list unchanged when it fits; and a cut
        /// entry keeps its whole address when the room holds every address.
        #[test]
        fn fitted_never_panics_and_never_exceeds_the_room(
            each in proptest::collection::vec("(\\PC|: |\u{e9}|\u{1F600}){0,40}", 0..20),
            room in 0usize..600,
        ) {
            let text = fitted(&each, room);
            proptest::prop_assert!(text.len() <= room, "{} > {}: {:?}", text.len(), room, text);
            let whole = each.join("; ");
            if whole.len() <= room {
                proptest::prop_assert_eq!(&text, &whole);
            }
            let least: usize = each
                .iter()
                .map(|m| m.len().min(address_end(m) + CUT.len()))
                .sum::<usize>()
                + 2 * each.len().saturating_sub(1);
            if least <= room {
                proptest::prop_assert!(!text.contains("more not shown") || whole.contains("more not shown"));
                for m in &each {
                    let a = &m[..address_end(m)];
                    proptest::prop_assert!(text.contains(a), "{:?} lost in {:?}", a, text);
                }
            }
        }
    }

    #[test]
    fn statuses_round_trip_and_unknown_is_internal() {
        for s in [
            Status::Ok,
            Status::Conflict,
            Status::StoreChanged,
            Status::Unavailable,
            Status::Refused,
            Status::Corrupt,
            Status::Invalid,
            Status::Internal,
        ] {
            assert_eq!(Status::from_raw(s as i32), s);
        }
        assert_eq!(Status::from_raw(42), Status::Internal);
    }

    #[test]
    fn a_failure_never_crosses_as_a_success() {
        for (built, crossed) in [
            (Status::Ok, Status::Internal),
            (Status::Conflict, Status::Internal),
            (Status::StoreChanged, Status::StoreChanged),
            (Status::Unavailable, Status::Unavailable),
            (Status::Corrupt, Status::Corrupt),
        ] {
            let mut msg = [0xffu8; 8];
            // SAFETY: `msg` is writable for its length.
            let raw = unsafe {
                support::finish(
                    msg.as_mut_ptr(),
                    msg.len(),
                    Err(Failure::new(built, "lost")),
                )
            };
            assert_eq!(Status::from_raw(raw), crossed, "{built:?}");
            assert_eq!(&msg[..5], b"lost\0");
        }
    }

    #[test]
    fn symbols_are_nul_terminated_and_backend_neutral() {
        for s in [
            symbol::ABI,
            symbol::OPEN,
            symbol::GET,
            symbol::CAS,
            symbol::DEL,
            symbol::CLOSE,
            symbol::TIME,
            symbol::RESOLVER,
        ] {
            assert_eq!(s.last(), Some(&0));
            assert!(s.starts_with(b"pam_totp_plugin_"));
        }
    }

    /// A backend whose clock answers `CLOCK`, or fails when the handle says so.
    struct Fake {
        fail: bool,
    }

    const CLOCK: u64 = 1_700_000_000;

    impl Backend for Fake {
        fn open(config: &[u8]) -> Result<Self, Failure> {
            Ok(Fake {
                fail: config == b"fail",
            })
        }
        fn get(&mut self, _: &[u8]) -> Result<(Vec<u8>, u64), Failure> {
            Ok((Vec::new(), 0))
        }
        fn cas(&mut self, _: &[u8], _: u64, _: &[u8], _: u64, _: bool) -> Result<Status, Failure> {
            Ok(Status::Ok)
        }
        fn delete(&mut self, _: &[u8]) -> Result<(), Failure> {
            Ok(())
        }
        fn server_time(&mut self) -> Result<u64, Failure> {
            if self.fail {
                Err(Failure::new(Status::Unavailable, "no clock"))
            } else {
                Ok(CLOCK)
            }
        }
    }

    export_backend!(Fake, "fake");

    fn opened(cfg: &[u8]) -> *mut c_void {
        let mut h = std::ptr::null_mut();
        // SAFETY: live buffers of the lengths passed; `h` is writable.
        let st = unsafe {
            pam_totp_plugin_open(cfg.as_ptr(), cfg.len(), &mut h, std::ptr::null_mut(), 0)
        };
        assert_eq!(st, 0);
        h
    }

    #[test]
    fn the_time_export_carries_the_server_clock_or_the_failure() {
        assert_eq!(pam_totp_plugin_abi(), 5);
        let h = opened(b"");
        let mut secs = 0u64;
        let mut msg = [0u8; MESSAGE_CAP];
        // SAFETY: `h` is live; `secs` and `msg` are writable.
        let st = unsafe { pam_totp_plugin_time(h, &mut secs, msg.as_mut_ptr(), msg.len()) };
        assert_eq!((Status::from_raw(st), secs), (Status::Ok, CLOCK));
        // A NULL output is the caller's fault, not a clock of 0.
        // SAFETY: as above; NULL `secs` is part of the contract.
        let st =
            unsafe { pam_totp_plugin_time(h, std::ptr::null_mut(), msg.as_mut_ptr(), msg.len()) };
        assert_eq!(Status::from_raw(st), Status::Invalid);
        // SAFETY: `h` came from open and is closed once.
        unsafe { pam_totp_plugin_close(h) };

        let h = opened(b"fail");
        let mut secs = 7u64;
        // SAFETY: as above.
        let st = unsafe { pam_totp_plugin_time(h, &mut secs, msg.as_mut_ptr(), msg.len()) };
        assert_eq!(Status::from_raw(st), Status::Unavailable);
        assert_eq!(secs, 7, "nothing written on a failure");
        assert!(msg.starts_with(b"no clock\0"));
        // SAFETY: as above.
        unsafe { pam_totp_plugin_close(h) };
    }

    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A resolver that knows `db.example` (two addresses), fails every other name with
    /// the limit it was given, and counts its calls.
    unsafe extern "C" fn fake_resolve(
        name: *const u8,
        len: usize,
        limit_ms: u64,
        out: *mut u8,
        cap: usize,
        out_len: *mut usize,
        msg: *mut u8,
        msg_cap: usize,
    ) -> i32 {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // SAFETY: the caller's buffers, as `ResolveFn` describes them.
        let name = unsafe { std::slice::from_raw_parts(name, len) };
        let result = if name == b"db.example" {
            let list = b"192.0.2.7\n2001:db8::7\n";
            assert!(list.len() <= cap);
            // SAFETY: `out` holds `cap >= list.len()` bytes; `out_len` is writable.
            unsafe {
                std::ptr::copy_nonoverlapping(list.as_ptr(), out, list.len());
                *out_len = list.len();
            }
            Ok(Status::Ok)
        } else {
            Err(Failure::new(
                Status::Unavailable,
                format!(
                    "cannot resolve {} within {limit_ms} ms",
                    String::from_utf8_lossy(name)
                ),
            ))
        };
        // SAFETY: `msg` holds `msg_cap` writable bytes.
        unsafe { support::finish(msg, msg_cap, result) }
    }

    #[test]
    fn literals_are_not_looked_up_and_names_go_to_the_module_resolver() {
        use std::time::Duration;
        // SAFETY: `fake_resolve` follows the contract of `ResolveFn`.
        unsafe { pam_totp_plugin_resolver(fake_resolve) };
        let before = CALLS.load(std::sync::atomic::Ordering::SeqCst);
        let limit = Duration::from_millis(1500);
        let a = resolve::socket_addrs("[2001:db8::1]", 6379, limit).expect("literal");
        assert_eq!(a, vec!["[2001:db8::1]:6379".parse().expect("addr")]);
        let a = resolve::socket_addrs("192.0.2.1", 2379, limit).expect("literal");
        assert_eq!(a, vec!["192.0.2.1:2379".parse().expect("addr")]);
        assert_eq!(
            CALLS.load(std::sync::atomic::Ordering::SeqCst),
            before,
            "no lookup"
        );
        let a = resolve::socket_addrs("db.example", 6379, limit).expect("name");
        assert_eq!(
            a,
            vec![
                "192.0.2.7:6379".parse().expect("addr"),
                "[2001:db8::7]:6379".parse().expect("addr")
            ]
        );
        let e = resolve::socket_addrs("gone.example", 6379, limit).expect_err("fails");
        assert_eq!(e.status, Status::Unavailable);
        assert_eq!(e.message, "cannot resolve gone.example within 1500 ms");
    }
}
