//! Each source of the group database asked on its own for a user's groups (R22).
//!
//! `getgrouplist` walks the sources of nsswitch.conf's `initgroups:` line (`group:`
//! without one) and drops a source that answers `NSS_STATUS_UNAVAIL` or
//! `NSS_STATUS_TRYAGAIN`; the error number that source leaves (often `ENOENT`, the
//! number a real "no such user" sets too, or none at all) is all that is left of the
//! failure. A user's group list that is to prove *non*-membership therefore asks each
//! source's `initgroups_dyn` itself and reads its status: only `SUCCESS` and `NOTFOUND`
//! are answers, and `UNAVAIL` with `ESRCH`, nss-systemd's "no such record".
//!
//! Each module is found as glibc finds it (`libnss_<service>.so.2` through the dynamic
//! loader, normally already loaded by the `getgrouplist` made just before; not so when
//! nscd answered that, and then it is the module nscd would have asked). A module that
//! cannot be loaded is no source: glibc drops it on every call, so no answer of the C
//! library holds a group of it. `files` (and `dns`) are built into glibc 2.34 and later
//! and are looked up in the C library when their stub cannot be loaded.

use std::cell::RefCell;
use std::ffi::CString;
use std::io::Read;
use std::mem::MaybeUninit;

use libc::{c_char, c_int, c_long, c_void, gid_t};

use crate::nss::{Group, copy_group};

const NSSWITCH: &str = "/etc/nsswitch.conf";
/// An nsswitch.conf larger than this is not read: the proof fails.
const MAX_CONF: u64 = 256 * 1024;
/// More services that load on one line than this are not walked: the proof fails.
/// Names that load no module do not count: glibc walks every word after the name,
/// `#` and a trailing comment's words included, and drops each as it drops a missing
/// module (a comment of 40 words must not leave every non-membership unknown).
const MAX_SOURCES: usize = 32;
/// More words than this on the line are not read at all: the proof fails (each costs
/// a failed dlopen, as it does glibc).
const MAX_NAMED: usize = 1024;
/// How long one walk may keep asking: a source's answer that comes later proves
/// nothing, and no source is asked again (R36). A module's call cannot be cut short in
/// the process it runs in, so one slow call may run past this; what the bound stops is
/// a directory that answers each of a user's many gids slowly keeping the login waiting
/// gid after gid. An expired walk is a source that did not answer: the membership stays
/// unknown and the code is asked.
pub(crate) const WALK_BOUND: std::time::Duration = std::time::Duration::from_secs(10);
/// The buffer a walk's first group entry is asked with; it doubles on ERANGE.
const START_BUFFER: usize = 4096;
/// The largest buffer one group entry may need (as for `getgrnam_r`).
const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// The most group ids one source may hand back (the kernel's NGROUPS_MAX).
const MAX_GROUPS: c_long = 65_536;

const NSS_STATUS_TRYAGAIN: c_int = -2;
const NSS_STATUS_UNAVAIL: c_int = -1;
const NSS_STATUS_NOTFOUND: c_int = 0;
const NSS_STATUS_SUCCESS: c_int = 1;

/// glibc's `initgroups_dyn` entry point of an NSS module.
type InitgroupsDyn = unsafe extern "C" fn(
    user: *const c_char,
    group: gid_t,
    start: *mut c_long,
    size: *mut c_long,
    groupsp: *mut *mut gid_t,
    limit: c_long,
    errnop: *mut c_int,
) -> c_int;

/// glibc's `getgrnam_r` entry point of an NSS module.
type GetgrnamR = unsafe extern "C" fn(
    name: *const c_char,
    grp: *mut libc::group,
    buf: *mut c_char,
    buflen: libc::size_t,
    errnop: *mut c_int,
) -> c_int;

/// glibc's `getgrgid_r` entry point of an NSS module.
type GetgrgidR = unsafe extern "C" fn(
    gid: gid_t,
    grp: *mut libc::group,
    buf: *mut c_char,
    buflen: libc::size_t,
    errnop: *mut c_int,
) -> c_int;

/// Why the sources could not all be asked or did not all answer; `errno` for the
/// caller's message (never 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NotEverySource {
    pub(crate) errno: i32,
    /// The service that did not answer, when one was asked.
    pub(crate) service: Option<String>,
}

impl NotEverySource {
    fn errno(errno: i32) -> Self {
        NotEverySource {
            errno,
            service: None,
        }
    }
}

/// The services `getgrouplist` walks, from nsswitch.conf's text: the `initgroups:`
/// line, else the `group:` line, else glibc's default (`files`). Criteria in brackets
/// are left out: every service named is asked. `None`: a line this parser does not
/// understand (a service name with a `/`, an unclosed bracket, too many services).
pub(crate) fn group_sources(conf: &str) -> Option<Vec<String>> {
    database_sources(conf, true)
}

/// The services of the group database as `getgrnam_r` walks it: the `group:` line
/// (`initgroups:` is for group lists only), else `files`.
pub(crate) fn group_name_sources(conf: &str) -> Option<Vec<String>> {
    database_sources(conf, false)
}

/// C's `isspace` in the C locale, which glibc's nsswitch.conf parser splits on.
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0B' | '\x0C' | '\r')
}

/// The lines read as glibc 2.33 and later reads them (nss_database.c), since a service
/// glibc walks and this proof does not ask is a source whose outage goes unseen: the
/// database name ends at a space or `:` (the colon is optional), the *last* line of a
/// database wins, and `#` starts no comment after the name (`group: files # ldap`
/// walks a service `#` and `ldap`). An empty list stays empty (no service), as there.
/// A last line without its newline is not read: glibc's loop sees end-of-file with
/// that line and stops before it (`group: files ldap` there leaves an earlier `group:`
/// line, or `files`, in force). A criterion glibc cannot parse (an unclosed `[`) is
/// `None`: glibc then drops the whole file and answers no lookup at all (`EINVAL`,
/// not its defaults), so there is nothing a proof could rest on.
fn database_sources(conf: &str, initgroups_line: bool) -> Option<Vec<String>> {
    let mut initgroups = None;
    let mut group = None;
    for line in conf
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
    {
        // glibc reads each line as a C string: a NUL ends it (`group: files\0 ldap`
        // walks `files` alone, where a name `files\0` would load nothing here).
        let line = line.split('\0').next().unwrap_or("");
        let line = line.trim_start_matches(c_space);
        let name_end = line.find(|c: char| c_space(c) || c == ':');
        // A name that runs to the end of the file's last line is glibc's syntax error:
        // the line is skipped.
        let Some(name_end) = name_end.filter(|&end| end > 0) else {
            continue;
        };
        let services = line[name_end..].trim_start_matches(|c: char| c_space(c) || c == ':');
        match &line[..name_end] {
            "initgroups" => initgroups = Some(services),
            "group" => group = Some(services),
            _ => {}
        }
    }
    let initgroups = initgroups.filter(|_| initgroups_line);
    let Some(services) = initgroups.or(group) else {
        return Some(vec!["files".to_owned()]);
    };
    let mut names = Vec::new();
    let mut rest = services;
    loop {
        rest = rest.trim_start_matches(c_space);
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix('[') {
            rest = &after[after.find(']')? + 1..];
            continue;
        }
        let end = rest
            .find(|c: char| c_space(c) || c == '[')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        // glibc would dlopen such a name as a path; this proof does not load one.
        if name.contains('/') {
            return None;
        }
        names.push(name.to_owned());
        if names.len() > MAX_NAMED {
            return None;
        }
        rest = &rest[end..];
    }
    Some(names)
}

/// nsswitch.conf's text, bounded; empty without the file (glibc's defaults apply).
/// Bytes that are not UTF-8 (a comment in Latin-1) are replaced, not refused: glibc
/// reads the file as bytes, and a refusal here would leave every non-membership
/// unknown.
fn nsswitch_conf() -> Result<String, NotEverySource> {
    conf_text(std::path::Path::new(NSSWITCH))
}

/// [`nsswitch_conf`] of the file at `path`.
fn conf_text(path: &std::path::Path) -> Result<String, NotEverySource> {
    // Room for a usual file at once: without it the read starts at 32 bytes and doubles.
    let mut bytes = Vec::with_capacity(8192);
    match std::fs::File::open(path) {
        Ok(f) => {
            f.take(MAX_CONF + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| NotEverySource::errno(e.raw_os_error().unwrap_or(libc::EIO)))?;
            if bytes.len() as u64 > MAX_CONF {
                return Err(NotEverySource::errno(libc::EFBIG));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(NotEverySource::errno(e.raw_os_error().unwrap_or(libc::EIO)));
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One login's walk of the group sources: nsswitch.conf read once, and each service's
/// module loaded (or found missing) once, whichever of the two questions below is asked
/// and how often. A module missing costs a search of the loader's whole path (about
/// 60 system calls here) at every attempt; glibc itself tries it once per process.
pub(crate) struct Walk {
    conf: Result<String, NotEverySource>,
    modules: RefCell<Vec<(String, Option<Module>)>>,
    /// The group entries' buffer, kept at the size the largest entry so far needed: a
    /// user's gids are asked one after another, and a directory's large groups would
    /// each be asked again at every doubling from the start size (each retry a lookup,
    /// for `files` a read of /etc/group).
    buffer: std::cell::Cell<Vec<c_char>>,
    /// When the walk ends: [`WALK_BOUND`] after it began. `None`: a clock so near the
    /// end of its range that the bound cannot be added (a faked or broken monotonic
    /// clock); that walk has no time at all, so each question is a source that did not
    /// answer and the code is asked, where a walk without a bound could prove a
    /// non-membership, and skip the code, however long its sources took.
    deadline: std::cell::Cell<Option<std::time::Instant>>,
}

impl Walk {
    pub(crate) fn new() -> Walk {
        Walk::starting_at(std::time::Instant::now())
    }

    /// A walk that began at `start`.
    fn starting_at(start: std::time::Instant) -> Walk {
        Walk {
            conf: nsswitch_conf(),
            modules: RefCell::new(Vec::new()),
            buffer: std::cell::Cell::new(Vec::new()),
            deadline: std::cell::Cell::new(start.checked_add(WALK_BOUND)),
        }
    }

    /// `ETIME` once the walk is past its deadline (a number no module's own timeout
    /// leaves, so the message can say which bound it was): checked after each source's
    /// answer, so one that came late is not believed (named after that source), and
    /// before each source is asked.
    fn in_time(&self) -> Result<(), NotEverySource> {
        match self.deadline.get() {
            Some(deadline) if std::time::Instant::now() <= deadline => Ok(()),
            _ => Err(NotEverySource::errno(libc::ETIME)),
        }
    }

    /// `took` counted against the walk as if its questions had been asked on it (an
    /// answer another walk got, reused): `ETIME` when the walk was past its deadline
    /// before, as a question would have been refused, or is after, as a late answer
    /// is. A time the clock cannot take off leaves no time at all.
    pub(crate) fn spend(&self, took: std::time::Duration) -> Result<(), NotEverySource> {
        self.in_time()?;
        self.deadline
            .set(self.deadline.get().and_then(|d| d.checked_sub(took)));
        self.in_time()
    }

    /// `ask` with the walk's entry buffer (at least [`START_BUFFER`] bytes), which is
    /// kept for the next question whatever the answer.
    fn with_buffer<T>(&self, ask: impl FnOnce(&mut Vec<c_char>) -> T) -> T {
        // Taken out, not borrowed: nothing can find it missing but a module that asks
        // the walk again from inside its own call, and that one gets a new buffer.
        let mut buf = self.buffer.take();
        if buf.len() < START_BUFFER {
            buf = vec![0; START_BUFFER];
        }
        let answer = ask(&mut buf);
        self.buffer.set(buf);
        answer
    }

    fn conf(&self) -> Result<&str, NotEverySource> {
        self.conf.as_deref().map_err(Clone::clone)
    }

    fn module(&self, service: &str) -> Option<Module> {
        if let Some((_, m)) = self.modules.borrow().iter().find(|(s, _)| s == service) {
            return m.clone();
        }
        let m = Module::load(service);
        self.modules
            .borrow_mut()
            .push((service.to_owned(), m.clone()));
        m
    }

    /// The group ids each source of the group database answers for `user` (primary
    /// group `primary_gid` included), or why one of them did not answer.
    pub(crate) fn every_source(
        &self,
        user: &CString,
        primary_gid: gid_t,
    ) -> Result<Vec<gid_t>, NotEverySource> {
        let sources = group_sources(self.conf()?).ok_or(NotEverySource::errno(libc::EINVAL))?;
        let mut gids = vec![primary_gid];
        let mut loaded = Loaded(0);
        for service in &sources {
            let named = |mut e: NotEverySource| {
                e.service = Some(service.clone());
                e
            };
            let Some(module) = self.module(service) else {
                continue;
            };
            let Some(initgroups) = entry_point(&module, service).map_err(named)? else {
                continue;
            };
            loaded.count()?;
            self.in_time()?;
            ask(initgroups, user, primary_gid, &mut gids).map_err(named)?;
            self.in_time().map_err(named)?;
        }
        Ok(gids)
    }

    /// The group called `name` in each source of the group database that has one, or
    /// why one of them did not answer.
    pub(crate) fn group_in_every_source(
        &self,
        name: &CString,
    ) -> Result<Vec<Group>, NotEverySource> {
        // A module without getgrnam_r resolves no group name for glibc either.
        self.answer_of_every_source("getgrnam_r", None, |found| {
            // SAFETY: glibc calls every module's `_nss_<service>_getgrnam_r` with exactly
            // this signature (nss/nsswitch.h); a symbol of that name is that function.
            let getgrnam = unsafe { std::mem::transmute::<*mut c_void, GetgrnamR>(found) };
            self.with_buffer(|buf| ask_group(getgrnam, name, buf, &|| self.in_time()))
        })
    }

    /// The name each source of the group database gives group `gid` (one per source
    /// that knows it; none when no source does), or why one of them did not answer. A
    /// source may hold one name twice, and `getgrnam_r` then finds the first only: the
    /// names of the user's gids are what tells whether another group of that name is
    /// one of theirs.
    pub(crate) fn gid_names_in_every_source(
        &self,
        gid: gid_t,
    ) -> Result<Vec<String>, NotEverySource> {
        // A module without getgrgid_r names no gid for glibc either, but one that has
        // getgrnam_r may hold a group of the rule's name (twice, the first not the
        // user's) with one of these gids: it cannot answer, so the proof has none.
        self.answer_of_every_source("getgrgid_r", Some("getgrnam_r"), |found| {
            // SAFETY: glibc calls every module's `_nss_<service>_getgrgid_r` with exactly
            // this signature (nss/nsswitch.h); a symbol of that name is that function.
            let getgrgid = unsafe { std::mem::transmute::<*mut c_void, GetgrgidR>(found) };
            self.with_buffer(|buf| ask_gid(getgrgid, gid, buf, &|| self.in_time()))
        })
    }

    /// What `ask` makes of `symbol` in each source of the group database that has it
    /// (sources without the module or the symbol are passed over, as glibc passes them),
    /// or why one of them did not answer, named after its service. A source without
    /// `symbol` that has `needed_without` cannot answer: `ENOSYS`.
    fn answer_of_every_source<T>(
        &self,
        symbol: &str,
        needed_without: Option<&str>,
        mut ask: impl FnMut(*mut c_void) -> Result<Option<T>, NotEverySource>,
    ) -> Result<Vec<T>, NotEverySource> {
        let sources =
            group_name_sources(self.conf()?).ok_or(NotEverySource::errno(libc::EINVAL))?;
        let mut answers = Vec::new();
        let mut loaded = Loaded(0);
        for service in &sources {
            let named = |mut e: NotEverySource| {
                e.service = Some(service.clone());
                e
            };
            let Some(module) = self.module(service) else {
                continue;
            };
            loaded.count()?;
            let found = module.symbol(service, symbol).map_err(named)?;
            if found.is_null() {
                if let Some(other) = needed_without
                    && !module.symbol(service, other).map_err(named)?.is_null()
                {
                    return Err(named(NotEverySource::errno(libc::ENOSYS)));
                }
                continue;
            }
            self.in_time()?;
            let answer = ask(found).map_err(named)?;
            self.in_time().map_err(named)?;
            if let Some(answer) = answer {
                answers.push(answer);
            }
        }
        Ok(answers)
    }
}

/// The modules a walk has loaded, bounded by [`MAX_SOURCES`].
struct Loaded(usize);

impl Loaded {
    fn count(&mut self) -> Result<(), NotEverySource> {
        self.0 += 1;
        if self.0 > MAX_SOURCES {
            return Err(NotEverySource::errno(libc::E2BIG));
        }
        Ok(())
    }
}

/// One source's group called `name`, its buffer grown on ERANGE up to the cap
/// `getgrnam_r` has too, each retry `in_time` (see [`ask_entry`]).
fn ask_group(
    getgrnam: GetgrnamR,
    name: &CString,
    buf: &mut Vec<c_char>,
    in_time: &dyn Fn() -> Result<(), NotEverySource>,
) -> Result<Option<Group>, NotEverySource> {
    ask_entry(
        buf,
        in_time,
        |grp, buf, len, errno| {
            // SAFETY: `name` is NUL-terminated; the rest is ask_entry's promise.
            unsafe { getgrnam(name.as_ptr(), grp, buf, len, errno) }
        },
        // SAFETY: ask_entry passes a group the module filled in, its strings alive.
        |gr| unsafe { copy_group(gr) },
    )
}

/// One source's name for group `gid` (`getgrgid_r`); `None` when it has no such gid. A
/// name that is not UTF-8 is none an option can give, and is returned as `None` too.
/// A group found without a name (`gr_name` NULL) is no answer: the source holds the gid,
/// and it may be a group of the rule's name, so the membership stays unknown.
fn ask_gid(
    getgrgid: GetgrgidR,
    gid: gid_t,
    buf: &mut Vec<c_char>,
    in_time: &dyn Fn() -> Result<(), NotEverySource>,
) -> Result<Option<String>, NotEverySource> {
    let name = ask_entry(
        buf,
        in_time,
        |grp, buf, len, errno| {
            // SAFETY: ask_entry's promise.
            unsafe { getgrgid(gid, grp, buf, len, errno) }
        },
        |gr| {
            if gr.gr_name.is_null() {
                return Err(NotEverySource::errno(libc::EBADMSG));
            }
            // SAFETY: a non-NULL `gr_name` the module filled in is NUL-terminated and
            // alive in ask_entry's buffer.
            let name = unsafe { std::ffi::CStr::from_ptr(gr.gr_name) };
            Ok(name.to_str().ok().map(str::to_owned))
        },
    )?;
    name.unwrap_or(Ok(None))
}

/// One `getgr*_r` call of a module, its status read: `call(grp, buf, buflen, errnop)`
/// is made with writable storage for one group, `buflen` writable bytes at `buf` and a
/// valid `errnop`, `buf` grown on ERANGE up to [`MAX_BUFFER`] (and left so); `copy`
/// reads the entry of a SUCCESS while the buffer is alive. Each retry is another
/// lookup (a directory's round trip), made only while `in_time` (the walk's deadline)
/// lets it: a slow source growing a large group's buffer is not asked a dozen times past
/// the bound.
fn ask_entry<T>(
    buf: &mut Vec<c_char>,
    in_time: &dyn Fn() -> Result<(), NotEverySource>,
    mut call: impl FnMut(*mut libc::group, *mut c_char, libc::size_t, *mut c_int) -> c_int,
    copy: impl FnOnce(&libc::group) -> T,
) -> Result<Option<T>, NotEverySource> {
    if buf.is_empty() {
        buf.resize(START_BUFFER, 0);
    }
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut errno: c_int = 0;
        let status = call(grp.as_mut_ptr(), buf.as_mut_ptr(), buf.len(), &mut errno);
        match status {
            NSS_STATUS_SUCCESS => {
                // SAFETY: SUCCESS: the module filled `grp` in, its strings in `buf`,
                // which is alive and unchanged while they are copied.
                return Ok(Some(copy(unsafe { grp.assume_init_ref() })));
            }
            NSS_STATUS_NOTFOUND => return Ok(None),
            NSS_STATUS_UNAVAIL if errno == libc::ESRCH => return Ok(None),
            NSS_STATUS_TRYAGAIN if errno == libc::ERANGE => {
                let next = buf.len().saturating_mul(2);
                if next > MAX_BUFFER {
                    return Err(NotEverySource::errno(libc::ERANGE));
                }
                in_time()?;
                buf.resize(next, 0);
            }
            _ => {
                return Err(NotEverySource::errno(if errno != 0 {
                    errno
                } else {
                    libc::EHOSTUNREACH
                }));
            }
        }
    }
}

/// A module's handles to look symbols up in.
#[derive(Clone)]
struct Module {
    handles: Vec<*mut c_void>,
}

impl Module {
    /// `None` for a module that cannot be loaded (glibc drops it on every call, so no
    /// answer of the C library holds a group of it).
    fn load(service: &str) -> Option<Module> {
        // glibc 2.34 and later have `files` built in and never load its stub: neither
        // does this (14 system calls and a mapping into the host, on every login whose
        // non-membership is asked).
        if service == "files" {
            // SAFETY: RTLD_DEFAULT and a NUL-terminated literal; dlsym only looks up.
            let builtin =
                unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_nss_files_getgrnam_r".as_ptr()) };
            if !builtin.is_null() {
                return Some(Module {
                    handles: vec![libc::RTLD_DEFAULT],
                });
            }
        }
        let library = CString::new(format!("libnss_{service}.so.2")).ok()?;
        // SAFETY: `library` is NUL-terminated. The module is the one nsswitch.conf
        // (root's) names, loaded as glibc loads it (RTLD_LAZY, the loader's search
        // path); the reference is never dropped, as glibc never unloads its NSS modules
        // either.
        let loaded = unsafe { libc::dlopen(library.as_ptr(), libc::RTLD_LAZY) };
        // Where the symbols are looked for: the module, and for a service built into
        // the C library (whose stub may be missing or empty) the global scope as well.
        let mut handles = Vec::with_capacity(2);
        if !loaded.is_null() {
            handles.push(loaded);
        }
        if matches!(service, "files" | "dns") {
            handles.push(libc::RTLD_DEFAULT);
        }
        (!handles.is_empty()).then_some(Module { handles })
    }

    /// `_nss_<service>_<what>`, or NULL.
    fn symbol(&self, service: &str, what: &str) -> Result<*mut c_void, NotEverySource> {
        let name = CString::new(format!("_nss_{service}_{what}"))
            .map_err(|_| NotEverySource::errno(libc::EINVAL))?;
        for &handle in &self.handles {
            // SAFETY: `handle` is a handle from dlopen or RTLD_DEFAULT; `name` is
            // NUL-terminated. dlsym only looks the symbol up.
            let found = unsafe { libc::dlsym(handle, name.as_ptr()) };
            if !found.is_null() {
                return Ok(found);
            }
        }
        Ok(std::ptr::null_mut())
    }
}

/// The module's `initgroups_dyn`; `None` for a module with neither `initgroups_dyn` nor `getgrent_r` (glibc asks such a module nothing). A
/// module with `getgrent_r` only is enumerated by glibc, which this proof does not do:
/// an error.
fn entry_point(module: &Module, service: &str) -> Result<Option<InitgroupsDyn>, NotEverySource> {
    let initgroups = module.symbol(service, "initgroups_dyn")?;
    if initgroups.is_null() {
        // `files` always has it: not finding it is a fault, not a source to leave out.
        if service != "files" && module.symbol(service, "getgrent_r")?.is_null() {
            return Ok(None);
        }
        return Err(NotEverySource::errno(libc::ENOSYS));
    }
    // SAFETY: glibc calls every module's `_nss_<service>_initgroups_dyn` with exactly this
    // signature (nss/nsswitch.h); a symbol of that name is that function.
    Ok(Some(unsafe {
        std::mem::transmute::<*mut c_void, InitgroupsDyn>(initgroups)
    }))
}

/// One source's answer for `user`, its group ids added to `gids`.
fn ask(
    initgroups: InitgroupsDyn,
    user: &CString,
    primary_gid: gid_t,
    gids: &mut Vec<gid_t>,
) -> Result<(), NotEverySource> {
    let mut size: c_long = 16;
    // SAFETY: a malloc'd array of `size` slots, as the modules expect (they grow it with
    // realloc); freed below, whatever the module did with it.
    let mut groups = unsafe { libc::malloc(16 * std::mem::size_of::<gid_t>()) }.cast::<gid_t>();
    if groups.is_null() {
        return Err(NotEverySource::errno(libc::ENOMEM));
    }
    // Slot 0 holds the primary group, as in glibc's own walk: modules skip it.
    // SAFETY: `groups` has 16 slots.
    unsafe { *groups = primary_gid };
    let mut start: c_long = 1;
    let mut errno: c_int = 0;
    // SAFETY: `user` is NUL-terminated; `start`, `size`, `groups` and `errno` are valid
    // for the call, `groups` a malloc'd array of `size` slots; `limit` bounds its growth.
    let status = unsafe {
        initgroups(
            user.as_ptr(),
            primary_gid,
            &mut start,
            &mut size,
            &mut groups,
            MAX_GROUPS,
            &mut errno,
        )
    };
    // nss-systemd says "no such record" (no userdb service knows the user, or none
    // runs) as UNAVAIL with ESRCH; ESRCH is no outage's number.
    let answered = matches!(status, NSS_STATUS_SUCCESS | NSS_STATUS_NOTFOUND)
        || (status == NSS_STATUS_UNAVAIL && errno == libc::ESRCH);
    // An answer whose array cannot be read, or that grew past the limit it was given,
    // proves nothing: the groups it holds would be missing from the list. Nor does one
    // that filled the limit: glibc's modules stop there and answer SUCCESS with the rest
    // left out (files-initgroups.c, "We reached the maximum").
    let readable = !groups.is_null()
        && (1..=size).contains(&start)
        && size <= MAX_GROUPS
        && start < MAX_GROUPS;
    if answered && readable {
        let count = usize::try_from(start).unwrap_or(0);
        // SAFETY: the module filled slots 0..start of its array of `size` slots.
        let got = unsafe { std::slice::from_raw_parts(groups, count) };
        gids.extend_from_slice(got.get(1..).unwrap_or(&[]));
    }
    // SAFETY: `groups` is the array malloc'd above or the module's realloc of it (free
    // of NULL does nothing).
    unsafe { libc::free(groups.cast::<c_void>()) };
    if answered && readable {
        return Ok(());
    }
    if answered {
        return Err(NotEverySource::errno(libc::EOVERFLOW));
    }
    let errno = match (status, errno) {
        (_, e) if e != 0 => e,
        (NSS_STATUS_TRYAGAIN, _) => libc::EAGAIN,
        (NSS_STATUS_UNAVAIL, _) => libc::EHOSTUNREACH,
        _ => libc::EIO,
    };
    Err(NotEverySource {
        errno,
        service: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initgroups_line_wins_and_criteria_are_left_out() {
        let conf = "# comment\npasswd: files ldap\ngroup:  files [SUCCESS=merge] sss # x\n";
        assert_eq!(
            group_sources(conf),
            Some(vec!["files".into(), "sss".into(), "#".into(), "x".into()])
        );
        let with = format!("{conf}initgroups: files [!UNAVAIL=return]ldap\n");
        assert_eq!(
            group_sources(&with),
            Some(vec!["files".into(), "ldap".into()])
        );
        assert_eq!(group_sources("passwd: files\n"), Some(vec!["files".into()]));
        // An empty list is no service, as in glibc.
        assert_eq!(group_sources("group:\n"), Some(vec![]));
        assert_eq!(group_sources("group: files [NOTFOUND=return\n"), None);
        assert_eq!(group_sources("group: files ../evil\n"), None);
        // As glibc 2.33 and later read the file: the last line of a database wins, the
        // colon is optional, and `#` after the name is a service like any other.
        let two = "group: files\ngroup: files ldap\n";
        assert_eq!(
            group_sources(two),
            Some(vec!["files".into(), "ldap".into()])
        );
        assert_eq!(
            group_sources("  group\tfiles sss\n"),
            Some(vec!["files".into(), "sss".into()])
        );
        assert_eq!(
            group_name_sources("group: files # ldap\n"),
            Some(vec!["files".into(), "#".into(), "ldap".into()])
        );
        assert_eq!(
            group_sources("#group: files ldap\ngroupx: ldap\n"),
            Some(vec!["files".into()])
        );
        // A NUL ends the line, as the C string glibc reads.
        assert_eq!(
            group_sources("group: files\0 ldap\n"),
            Some(vec!["files".into()])
        );
        assert_eq!(group_sources("group\0: ldap\n"), Some(vec!["files".into()]));
        // A last line without its newline is not read (glibc 2.36 stops at end of
        // file with it): the line before it, or `files`, is what glibc walks.
        assert_eq!(
            group_sources("group: files ldap\ngroup: files compat"),
            Some(vec!["files".into(), "ldap".into()])
        );
        assert_eq!(
            group_sources("passwd: files\ngroup: files compat"),
            Some(vec!["files".into()])
        );
        assert_eq!(
            group_sources("initgroups: files sss\ngroup: files ldap"),
            Some(vec!["files".into(), "sss".into()])
        );
        // Control: the same last line with its newline is read.
        assert_eq!(
            group_sources("group: files ldap\ngroup: files compat\n"),
            Some(vec!["files".into(), "compat".into()])
        );
        // A long trailing comment is read whole (its words load no module, as in
        // glibc); control: past the bound on words, the line is refused.
        let comment = format!("group: files systemd # {}\n", "word ".repeat(60));
        assert_eq!(group_sources(&comment).map(|v| v.len()), Some(63));
        let many = format!("group: {}\n", "files ".repeat(MAX_NAMED + 1));
        assert_eq!(group_sources(&many), None);
        let most = format!("group: {}\n", "files ".repeat(1024));
        assert_eq!(group_sources(&most).map(|v| v.len()), Some(1024));
    }

    /// The file is read up to its bound and refused past it (`EFBIG`: the proof
    /// fails); a missing one is empty (glibc's defaults), bytes that are not UTF-8 are
    /// replaced, not refused.
    #[test]
    fn nsswitch_conf_is_read_up_to_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nsswitch.conf");
        // 256 KiB: written out, so that a changed bound is noticed.
        let bound = 256 * 1024;
        let line = "group: files ldap\n";
        let mut text = "#".repeat(bound - line.len() - 1);
        text.push('\n');
        text.push_str(line);
        std::fs::write(&path, &text).expect("write");
        let read = conf_text(&path).expect("a file of the bound");
        assert_eq!(
            group_sources(&read),
            Some(vec!["files".into(), "ldap".into()])
        );
        text.insert(0, '#');
        std::fs::write(&path, &text).expect("write");
        assert_eq!(conf_text(&path).map_err(|e| e.errno), Err(libc::EFBIG));
        std::fs::write(&path, b"group: files \xe9 ldap\n").expect("write");
        assert_eq!(
            conf_text(&path).map(|t| group_sources(&t).map(|v| v.len())),
            Ok(Some(3))
        );
        assert_eq!(
            conf_text(&dir.path().join("missing")).map(|t| group_sources(&t)),
            Ok(Some(vec!["files".into()]))
        );
        // A file that cannot be opened for another reason than its absence is no
        // answer: glibc's defaults may not be what the host has.
        assert_eq!(
            conf_text(&path.join("below-a-file")).map_err(|e| e.errno),
            Err(libc::ENOTDIR)
        );
        // The host's own file is the one read.
        let host = std::fs::read(NSSWITCH).unwrap_or_default();
        assert_eq!(
            nsswitch_conf().expect("this host's nsswitch.conf"),
            String::from_utf8_lossy(&host)
        );
    }

    /// `files` is asked whether the C library has it built in or in its own module, and
    /// a service whose module does not exist is no source.
    #[test]
    fn files_is_always_found_and_a_missing_module_is_no_source() {
        let files = Module::load("files").expect("files");
        assert!(matches!(entry_point(&files, "files"), Ok(Some(_))));
        assert!(Module::load("pamtotpnosuchservice").is_none());
        // A module of its own (glibc ships `compat`) is loaded and asked, not looked up
        // in the C library as `files` is; `dns` has no group functions: no source.
        let compat = Module::load("compat").expect("compat");
        assert!(matches!(entry_point(&compat, "compat"), Ok(Some(_))));
        let dns = Module::load("dns").expect("dns");
        assert!(matches!(entry_point(&dns, "dns"), Ok(None)));
    }

    /// One walk reads nsswitch.conf once and tries each service's module once, for
    /// both questions and however often a service is named; a module that is missing
    /// stays no source. Control: each question still asks `files`.
    #[test]
    fn a_walk_loads_each_module_once() {
        let walk = Walk {
            conf: Ok("group: files pamtotpnosuchservice files pamtotpnosuchservice\n".into()),
            modules: RefCell::new(Vec::new()),
            buffer: std::cell::Cell::new(Vec::new()),
            deadline: std::cell::Cell::new(std::time::Instant::now().checked_add(WALK_BOUND)),
        };
        let root = CString::new("root").expect("name");
        assert_eq!(
            walk.every_source(&root, 0).map(|g| g.first().copied()),
            Ok(Some(0))
        );
        let groups = walk
            .group_in_every_source(&root)
            .expect("every source answers");
        assert!(groups.iter().any(|g| g.gid == 0), "{groups:?}");
        let modules = walk.modules.borrow();
        let tried: Vec<(&str, bool)> = modules
            .iter()
            .map(|(s, m)| (s.as_str(), m.is_some()))
            .collect();
        assert_eq!(tried, [("files", true), ("pamtotpnosuchservice", false)]);
    }

    /// A gid is named by each source that knows it; a gid no source knows has no
    /// name. Control: root's group is named by `files`.
    #[test]
    fn a_gid_is_named_by_the_sources_that_know_it() {
        let walk = Walk {
            conf: Ok("group: files pamtotpnosuchservice\n".into()),
            modules: RefCell::new(Vec::new()),
            buffer: std::cell::Cell::new(Vec::new()),
            deadline: std::cell::Cell::new(std::time::Instant::now().checked_add(WALK_BOUND)),
        };
        assert_eq!(walk.gid_names_in_every_source(0), Ok(vec!["root".into()]));
        assert_eq!(walk.gid_names_in_every_source(3_999_999_999), Ok(vec![]));
    }

    static GROWS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// A walk past its deadline answers no question: each is a source that did not
    /// answer (`ETIME`). Control: the same walk in time answers all three.
    #[test]
    fn a_walk_past_its_deadline_answers_nothing() {
        let walk = |deadline| Walk {
            conf: Ok("group: files\n".into()),
            modules: RefCell::new(Vec::new()),
            buffer: std::cell::Cell::new(Vec::new()),
            deadline: std::cell::Cell::new(Some(deadline)),
        };
        let root = CString::new("root").expect("name");
        let now = std::time::Instant::now();
        let late = walk(
            now.checked_sub(std::time::Duration::from_secs(1))
                .unwrap_or(now),
        );
        let timed_out = |e: NotEverySource| e.errno;
        assert_eq!(
            late.every_source(&root, 0).map_err(timed_out),
            Err(libc::ETIME)
        );
        assert_eq!(
            late.group_in_every_source(&root)
                .map(|_| ())
                .map_err(timed_out),
            Err(libc::ETIME)
        );
        assert_eq!(
            late.gid_names_in_every_source(0).map_err(timed_out),
            Err(libc::ETIME)
        );
        let in_time = walk(now + WALK_BOUND);
        assert!(in_time.every_source(&root, 0).is_ok());
        assert!(in_time.group_in_every_source(&root).is_ok());
        assert_eq!(
            in_time.gid_names_in_every_source(0),
            Ok(vec!["root".into()])
        );
    }

    /// A walk begun so near the end of the monotonic clock's range that its bound
    /// cannot be added (libfaketime, or a broken clock) is not a panic in the host (an
    /// sshd worker, an unwound `extern "C"`) and has no time left: every question is a
    /// source that did not answer, so the code is asked. Control: a walk begun now
    /// answers all three.
    #[test]
    fn a_walk_whose_deadline_overflows_the_clock_has_no_time() {
        let now = std::time::Instant::now();
        // The latest instant the clock can hold: its seconds found by halving.
        let (mut fits, mut overflows) = (0u64, u64::MAX);
        while overflows - fits > 1 {
            let mid = fits + (overflows - fits) / 2;
            if now
                .checked_add(std::time::Duration::from_secs(mid))
                .is_some()
            {
                fits = mid;
            } else {
                overflows = mid;
            }
        }
        let last = now
            .checked_add(std::time::Duration::from_secs(fits))
            .expect("fits");
        assert!(last.checked_add(WALK_BOUND).is_none(), "{fits}");
        let root = CString::new("root").expect("name");
        let at_the_end = Walk::starting_at(last);
        assert_eq!(at_the_end.deadline.get(), None);
        let errno = |e: NotEverySource| e.errno;
        assert_eq!(
            at_the_end.every_source(&root, 0).map_err(errno),
            Err(libc::ETIME)
        );
        assert_eq!(
            at_the_end
                .group_in_every_source(&root)
                .map(|_| ())
                .map_err(errno),
            Err(libc::ETIME)
        );
        assert_eq!(
            at_the_end.gid_names_in_every_source(0).map_err(errno),
            Err(libc::ETIME)
        );
        let control = Walk::starting_at(now);
        assert!(control.deadline.get().is_some());
        assert!(control.every_source(&root, 0).is_ok());
        assert!(control.group_in_every_source(&root).is_ok());
        assert!(control.gid_names_in_every_source(0).is_ok());
    }

    /// Time spent on another walk's answers counts against this one: what fits in
    /// the bound is in time, what runs past it is `ETIME`, and the walk then asks
    /// nothing more. Control: a walk that spent nothing answers.
    #[test]
    fn time_spent_elsewhere_counts_against_the_walks_deadline() {
        let walk = Walk::starting_at(std::time::Instant::now());
        let errno = |e: NotEverySource| e.errno;
        assert_eq!(walk.spend(WALK_BOUND / 2), Ok(()));
        assert!(walk.gid_names_in_every_source(0).is_ok());
        assert_eq!(walk.spend(WALK_BOUND / 2).map_err(errno), Err(libc::ETIME));
        assert_eq!(
            walk.gid_names_in_every_source(0).map_err(errno),
            Err(libc::ETIME)
        );
        let control = Walk::starting_at(std::time::Instant::now());
        assert_eq!(control.spend(std::time::Duration::ZERO), Ok(()));
        assert!(control.gid_names_in_every_source(0).is_ok());
    }

    /// A walk with time left, for the checks of one answer.
    fn any_time() -> Result<(), NotEverySource> {
        Ok(())
    }

    static RETRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// [`grows`], each call counted in [`RETRIES`] (a test of its own: the counts of
    /// [`GROWS`] are another test's).
    unsafe extern "C" fn grows_counted(
        gid: gid_t,
        grp: *mut libc::group,
        buf: *mut c_char,
        buflen: libc::size_t,
        errnop: *mut c_int,
    ) -> c_int {
        RETRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if buflen < 64 * 1024 {
            // SAFETY: ask_entry's valid `errnop`.
            unsafe { *errnop = libc::ERANGE };
            return NSS_STATUS_TRYAGAIN;
        }
        // SAFETY: ask_entry's writable `buf` of `buflen` bytes.
        unsafe { answer(gid, grp, buf, c"g".as_ptr()) }
    }

    /// R36: each ERANGE retry is another lookup, so a large group's growing buffer is
    /// asked for only while the walk has time: once its deadline has passed, the first
    /// ERANGE ends the question (`ETIME`, no retry; it was asked up to a dozen times
    /// more, each a directory's round trip). Control: with time left the same source is
    /// asked until the entry fits (five calls from 4 KiB to 64 KiB) and answers.
    #[test]
    fn no_retry_for_a_larger_buffer_is_made_past_the_walks_deadline() {
        let calls = || RETRIES.load(std::sync::atomic::Ordering::Relaxed);
        let past = || Err(NotEverySource::errno(libc::ETIME));
        assert_eq!(
            ask_gid(grows_counted, 7, &mut Vec::new(), &past),
            Err(NotEverySource::errno(libc::ETIME))
        );
        assert_eq!(calls(), 1);
        assert_eq!(
            ask_gid(grows_counted, 7, &mut Vec::new(), &any_time),
            Ok(Some("g".to_owned()))
        );
        assert_eq!(calls(), 6);
    }

    /// What one module's `getgrgid_r` answers, for [`ask_gid`]: the name `g` once the
    /// buffer holds 64 KiB (ERANGE before, as for a large directory group); each call
    /// counted in [`GROWS`].
    unsafe extern "C" fn grows(
        gid: gid_t,
        grp: *mut libc::group,
        buf: *mut c_char,
        buflen: libc::size_t,
        errnop: *mut c_int,
    ) -> c_int {
        GROWS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if buflen < 64 * 1024 {
            // SAFETY: ask_entry's valid `errnop`.
            unsafe { *errnop = libc::ERANGE };
            return NSS_STATUS_TRYAGAIN;
        }
        // SAFETY: ask_entry's writable `buf` of `buflen` bytes.
        unsafe { answer(gid, grp, buf, c"g".as_ptr()) }
    }

    /// A group found for the gid, without a name (a broken or hostile module).
    unsafe extern "C" fn nameless(
        gid: gid_t,
        grp: *mut libc::group,
        buf: *mut c_char,
        _buflen: libc::size_t,
        _errnop: *mut c_int,
    ) -> c_int {
        // SAFETY: as in `grows`.
        unsafe { answer(gid, grp, buf, std::ptr::null()) }
    }

    /// A name that is not UTF-8.
    unsafe extern "C" fn latin1(
        gid: gid_t,
        grp: *mut libc::group,
        buf: *mut c_char,
        _buflen: libc::size_t,
        _errnop: *mut c_int,
    ) -> c_int {
        // SAFETY: as in `grows`.
        unsafe { answer(gid, grp, buf, c"g\xe9".as_ptr()) }
    }

    static ERANGES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// ERANGE whatever the buffer.
    unsafe extern "C" fn never_enough(
        _gid: gid_t,
        _grp: *mut libc::group,
        _buf: *mut c_char,
        _buflen: libc::size_t,
        errnop: *mut c_int,
    ) -> c_int {
        ERANGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: as in `grows`.
        unsafe { *errnop = libc::ERANGE };
        NSS_STATUS_TRYAGAIN
    }

    /// A real "try again" (the directory busy), not a short buffer.
    unsafe extern "C" fn busy(
        _gid: gid_t,
        _grp: *mut libc::group,
        _buf: *mut c_char,
        _buflen: libc::size_t,
        errnop: *mut c_int,
    ) -> c_int {
        // SAFETY: as in `grows`.
        unsafe { *errnop = libc::EAGAIN };
        NSS_STATUS_TRYAGAIN
    }

    /// Fills `grp` in as a module does: `name` (NULL for none) copied into `buf`.
    ///
    /// # Safety
    /// `grp` writable, `buf` writable for the name and its NUL.
    unsafe fn answer(
        gid: gid_t,
        grp: *mut libc::group,
        buf: *mut c_char,
        name: *const c_char,
    ) -> c_int {
        // SAFETY: the caller's promise; `name` (when not NULL) is a NUL-terminated
        // literal shorter than any buffer ask_entry passes.
        unsafe {
            let copied = if name.is_null() {
                std::ptr::null_mut()
            } else {
                libc::strcpy(buf, name)
            };
            grp.write(libc::group {
                gr_name: copied,
                gr_passwd: std::ptr::null_mut(),
                gr_gid: gid,
                gr_mem: std::ptr::null_mut(),
            });
        }
        NSS_STATUS_SUCCESS
    }

    /// A module's `getgrgid_r` answers read as glibc's modules mean them: the buffer
    /// grown on ERANGE (to a bound: a module that always says ERANGE is asked 13 times,
    /// 4 KiB to 16 MiB, then counts as not answering), a real "try again" not retried, a
    /// name that is not UTF-8 no name of an option. A group found without a name
    /// (`gr_name` NULL) is no answer, since it may be a group of the rule's name; it was
    /// taken for a nameless gid, which let a non-membership stand. Control: the same
    /// module with the name answers it.
    #[test]
    fn a_gids_answer_is_read_as_the_module_means_it() {
        // The buffer grown for one gid is kept for the next: asked once more, not at
        // every doubling from 4 KiB again.
        let mut buf = Vec::new();
        let asked = || GROWS.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            ask_gid(grows, 7, &mut buf, &any_time),
            Ok(Some("g".to_owned()))
        );
        assert_eq!((asked(), buf.len()), (5, 64 * 1024));
        assert_eq!(
            ask_gid(grows, 8, &mut buf, &any_time),
            Ok(Some("g".to_owned()))
        );
        assert_eq!((asked(), buf.len()), (6, 64 * 1024));
        assert_eq!(
            ask_gid(nameless, 7, &mut Vec::new(), &any_time),
            Err(NotEverySource::errno(libc::EBADMSG))
        );
        assert_eq!(ask_gid(latin1, 7, &mut Vec::new(), &any_time), Ok(None));
        assert_eq!(
            ask_gid(never_enough, 7, &mut Vec::new(), &any_time),
            Err(NotEverySource::errno(libc::ERANGE))
        );
        assert_eq!(ERANGES.load(std::sync::atomic::Ordering::Relaxed), 13);
        assert_eq!(
            ask_gid(busy, 7, &mut Vec::new(), &any_time),
            Err(NotEverySource::errno(libc::EAGAIN))
        );
    }

    /// The bound counts modules loaded, not words: the 33rd module is refused.
    #[test]
    fn the_bound_counts_loaded_modules() {
        let mut loaded = Loaded(0);
        for _ in 0..MAX_SOURCES {
            assert_eq!(loaded.count(), Ok(()));
        }
        assert_eq!(loaded.count().map_err(|e| e.errno), Err(libc::E2BIG));
    }

    /// A stand-in module's `initgroups_dyn`: adds `user`'s groups as glibc's `files`
    /// does, growing the array with realloc up to `limit`, where it stops and answers
    /// SUCCESS. The user name says how many groups (`n<count>`).
    unsafe extern "C" fn stand_in(
        user: *const c_char,
        _group: gid_t,
        start: *mut c_long,
        size: *mut c_long,
        groupsp: *mut *mut gid_t,
        limit: c_long,
        _errnop: *mut c_int,
    ) -> c_int {
        // SAFETY: the caller passes a NUL-terminated name and valid pointers (ask's
        // contract with a module).
        unsafe {
            let name = std::ffi::CStr::from_ptr(user).to_str().unwrap_or("");
            let count: c_long = name.trim_start_matches('n').parse().unwrap_or(0);
            for i in 0..count {
                if *start == *size {
                    if *size == limit {
                        break;
                    }
                    let grown = (*size * 2).min(limit);
                    let more = libc::realloc(
                        (*groupsp).cast::<c_void>(),
                        grown as usize * std::mem::size_of::<gid_t>(),
                    );
                    if more.is_null() {
                        return NSS_STATUS_TRYAGAIN;
                    }
                    *groupsp = more.cast::<gid_t>();
                    *size = grown;
                }
                *(*groupsp).add(*start as usize) = 10_000 + i as gid_t;
                *start += 1;
            }
        }
        NSS_STATUS_SUCCESS
    }

    /// An answer cut at the limit it was given is no answer (the module dropped the
    /// rest); control: one short of the limit, and a few groups, are read in full.
    #[test]
    fn an_answer_that_fills_its_limit_proves_nothing() {
        let run = |n: c_long| {
            let user = CString::new(format!("n{n}")).expect("name");
            let mut gids = vec![7];
            ask(stand_in, &user, 7, &mut gids).map(|()| gids.len())
        };
        assert_eq!(run(3), Ok(4));
        let all = usize::try_from(MAX_GROUPS).expect("limit");
        assert_eq!(run(MAX_GROUPS - 2), Ok(all - 1));
        assert_eq!(
            run(MAX_GROUPS - 1).map_err(|e| e.errno),
            Err(libc::EOVERFLOW)
        );
        assert_eq!(
            run(MAX_GROUPS + 5).map_err(|e| e.errno),
            Err(libc::EOVERFLOW)
        );
    }

    /// The status and error number a stand-in module answers with, from the name it
    /// is asked about: `<status>:<errno>` (`unavail:3`), or `ok:<bytes>` for a group
    /// found once the buffer holds that many bytes (`ERANGE` before, as glibc's modules).
    fn scripted(name: *const c_char) -> (String, c_int) {
        // SAFETY: the caller passes a NUL-terminated name.
        let name = unsafe { std::ffi::CStr::from_ptr(name) }
            .to_str()
            .unwrap_or("")
            .to_owned();
        let (kind, n) = name.split_once(':').unwrap_or((&name, "0"));
        (kind.to_owned(), n.parse().unwrap_or(0))
    }

    /// A stand-in module's `getgrnam_r`, answering as [`scripted`] says: found, a group
    /// with gid 4242 and no members.
    unsafe extern "C" fn stand_in_getgrnam(
        name: *const c_char,
        grp: *mut libc::group,
        buf: *mut c_char,
        buflen: libc::size_t,
        errnop: *mut c_int,
    ) -> c_int {
        let (kind, n) = scripted(name);
        let status = match kind.as_str() {
            "ok" if buflen < usize::try_from(n).unwrap_or(usize::MAX) => {
                // SAFETY: the caller's errno slot.
                unsafe { *errnop = libc::ERANGE };
                return NSS_STATUS_TRYAGAIN;
            }
            "ok" => {
                // SAFETY: `buf` has `buflen` bytes (at least 1); `grp` is writable.
                unsafe {
                    *buf = 0;
                    grp.write(libc::group {
                        gr_name: buf,
                        gr_passwd: buf,
                        gr_gid: 4242,
                        gr_mem: std::ptr::null_mut(),
                    });
                }
                return NSS_STATUS_SUCCESS;
            }
            "notfound" => NSS_STATUS_NOTFOUND,
            "unavail" => NSS_STATUS_UNAVAIL,
            "tryagain" => NSS_STATUS_TRYAGAIN,
            _ => 2, // NSS_STATUS_RETURN: no answer either
        };
        // SAFETY: the caller's errno slot.
        unsafe { *errnop = n };
        status
    }

    /// A source's group is read however large a buffer it needs, up to the cap;
    /// "not found" (and nss-systemd's UNAVAIL with `ESRCH`) is no group; any other
    /// answer is an outage, named by the module's error number or, without one, by
    /// `EHOSTUNREACH`.
    #[test]
    fn each_answer_of_a_sources_getgrnam_r_is_read_as_glibc_means_it() {
        let ask = |name: &str| {
            let name = CString::new(name).expect("name");
            ask_group(stand_in_getgrnam, &name, &mut Vec::new(), &any_time)
                .map(|g| g.map(|g| g.gid))
        };
        assert_eq!(ask("ok:1"), Ok(Some(4242)));
        // Grown past 4 KiB by doubling, and to exactly the cap.
        assert_eq!(ask("ok:100000"), Ok(Some(4242)));
        // 16 MiB, as glibc's getgrnam_r allows.
        let cap = 16 * 1024 * 1024;
        assert_eq!(ask(&format!("ok:{cap}")), Ok(Some(4242)));
        assert_eq!(
            ask(&format!("ok:{}", cap + 1)).map_err(|e| e.errno),
            Err(libc::ERANGE)
        );
        assert_eq!(ask("notfound:0"), Ok(None));
        assert_eq!(ask(&format!("unavail:{}", libc::ESRCH)), Ok(None));
        for (answer, errno) in [
            ("unavail:0", libc::EHOSTUNREACH),
            (
                &format!("unavail:{}", libc::ECONNREFUSED),
                libc::ECONNREFUSED,
            ),
            ("tryagain:0", libc::EHOSTUNREACH),
            (&format!("tryagain:{}", libc::EAGAIN), libc::EAGAIN),
            (&format!("return:{}", libc::EIO), libc::EIO),
        ] {
            assert_eq!(ask(answer).map_err(|e| e.errno), Err(errno), "{answer}");
        }
    }

    /// A stand-in module's `initgroups_dyn` answering as [`scripted`] says, with one group
    /// (5000) added on SUCCESS; `start:<n>` and `size:<n>` answer SUCCESS with that
    /// count or array size claimed, whatever the array holds.
    unsafe extern "C" fn stand_in_initgroups(
        user: *const c_char,
        _group: gid_t,
        start: *mut c_long,
        size: *mut c_long,
        groupsp: *mut *mut gid_t,
        _limit: c_long,
        errnop: *mut c_int,
    ) -> c_int {
        let (kind, n) = scripted(user);
        // SAFETY: the caller's valid pointers; its array has 16 slots, 1 used.
        unsafe {
            match kind.as_str() {
                "ok" => {
                    *(*groupsp).add(1) = 5000;
                    *start = 2;
                    NSS_STATUS_SUCCESS
                }
                "start" => {
                    *start = c_long::from(n);
                    NSS_STATUS_SUCCESS
                }
                "size" => {
                    *size = c_long::from(n);
                    NSS_STATUS_SUCCESS
                }
                "null" => {
                    libc::free((*groupsp).cast::<c_void>());
                    *groupsp = std::ptr::null_mut();
                    NSS_STATUS_SUCCESS
                }
                "notfound" => NSS_STATUS_NOTFOUND,
                other => {
                    *errnop = n;
                    match other {
                        "unavail" => NSS_STATUS_UNAVAIL,
                        "tryagain" => NSS_STATUS_TRYAGAIN,
                        _ => 2,
                    }
                }
            }
        }
    }

    /// SUCCESS and NOTFOUND are answers (and UNAVAIL with `ESRCH`); an answer whose
    /// array cannot be trusted proves nothing (`EOVERFLOW`); an outage is named by the
    /// module's error number or, without one, by its status.
    #[test]
    fn each_answer_of_a_sources_initgroups_dyn_is_read_as_glibc_means_it() {
        let ask = |name: &str| {
            let name = CString::new(name).expect("name");
            let mut gids = vec![7];
            super::ask(stand_in_initgroups, &name, 7, &mut gids)
                .map(|()| gids)
                .map_err(|e| e.errno)
        };
        assert_eq!(ask("ok:0"), Ok(vec![7, 5000]));
        assert_eq!(ask("notfound:0"), Ok(vec![7]));
        assert_eq!(ask(&format!("unavail:{}", libc::ESRCH)), Ok(vec![7]));
        // The primary group alone, as the module left it.
        assert_eq!(ask("start:1"), Ok(vec![7]));
        for answer in ["start:0", "start:17", "size:0", "null:0"] {
            assert_eq!(ask(answer), Err(libc::EOVERFLOW), "{answer}");
        }
        assert_eq!(
            ask(&format!("size:{}", MAX_GROUPS + 1)),
            Err(libc::EOVERFLOW)
        );
        for (answer, errno) in [
            ("unavail:0", libc::EHOSTUNREACH),
            (
                &format!("unavail:{}", libc::ECONNREFUSED),
                libc::ECONNREFUSED,
            ),
            ("tryagain:0", libc::EAGAIN),
            (&format!("tryagain:{}", libc::ETIMEDOUT), libc::ETIMEDOUT),
            ("return:0", libc::EIO),
        ] {
            assert_eq!(ask(answer), Err(errno), "{answer}");
        }
    }

    /// Every source of this host's group database is asked for a group name: root's
    /// group is found (in `files`, and in any other source that has it); a name no
    /// source has is found nowhere, with every source answering.
    #[test]
    fn this_hosts_sources_name_roots_group() {
        let root = CString::new("root").expect("name");
        let walk = Walk::new();
        let groups = walk
            .group_in_every_source(&root)
            .expect("every source answers");
        assert!(!groups.is_empty());
        assert!(groups.iter().all(|g| g.gid == 0));
        let nothing = CString::new("no-such-group-pam-totp-test").expect("name");
        assert_eq!(walk.group_in_every_source(&nothing).map(|g| g.len()), Ok(0));
    }

    #[test]
    fn this_hosts_sources_answer_for_root() {
        let root = CString::new("root").expect("name");
        let walk = Walk::new();
        let gids = walk.every_source(&root, 0).expect("every source answers");
        assert_eq!(gids.first(), Some(&0));
        // nss-systemd answers UNAVAIL/ESRCH for a user no userdb service knows.
        let nobody = CString::new("no-such-user-pam-totp-test").expect("name");
        assert_eq!(walk.every_source(&nobody, 4242), Ok(vec![4242]));
    }
}
