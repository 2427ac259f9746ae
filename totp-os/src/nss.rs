//! User and group lookups through NSS (`files`, LDAP, SSSD, … all work the same way).
//!
//! Every lookup tells "no such entry" (`Ok(None)`) from "the lookup itself failed"
//! (`Err`): an unreachable directory server must never look like an unknown user or a
//! user without groups to the policy code (rules R1, R22). GECOS and the shell are never
//! copied out (rule R27).

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::ptr;

use libc::{c_char, c_int, gid_t, uid_t};

use crate::creds::Identity;
use totp_core::membership::{self, GroupEntry, GroupList, Membership, Question};

/// The fields of a passwd entry the module may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passwd {
    /// Canonical user name from NSS (`pw_name`); key paths and state on this, never on
    /// the raw `PAM_USER` string.
    pub name: String,
    /// `pw_uid`.
    pub uid: uid_t,
    /// Primary group, `pw_gid`.
    pub gid: gid_t,
    /// Home directory, `pw_dir`, exactly as NSS returned it (not validated here).
    pub dir: PathBuf,
}

/// An NSS lookup failed; distinct from "not found".
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NssError {
    /// The name cannot be passed to C (it contains a NUL byte).
    InvalidName,
    /// The NSS call returned an error.
    Lookup {
        /// The error number the `*_r` call returned.
        errno: i32,
    },
    /// The entry needs a buffer larger than the sanity limit.
    TooLarge,
    /// The entry has a NULL field or a user name that is not UTF-8.
    InvalidEntry,
    /// A group source failed while the user's group list was gathered, so the list may
    /// lack groups the user has (see [`identity_of`]).
    IncompleteGroups {
        /// The error number the failing source left.
        errno: i32,
    },
    /// A source of the group database asked on its own did not answer (see
    /// [`lookup_group_in_every_source`]).
    SourceFailed {
        /// The service of nsswitch.conf, when one was asked.
        service: Option<String>,
        /// Its error number.
        errno: i32,
    },
}

impl fmt::Display for NssError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidName => f.write_str("name contains a NUL byte"),
            Self::Lookup { errno } => {
                write!(
                    f,
                    "NSS lookup failed: {}",
                    std::io::Error::from_raw_os_error(*errno)
                )
            }
            Self::TooLarge => f.write_str("NSS entry too large"),
            Self::InvalidEntry => f.write_str("NSS returned a malformed entry"),
            Self::IncompleteGroups { errno } => write!(
                f,
                "a group source of the name service (the group: line of nsswitch.conf) \
                 failed while the user's groups were listed ({}); files are not opened with \
                 fewer groups than the user has",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Self::SourceFailed { service, errno } if *errno == libc::ETIME => write!(
                f,
                "the name service sources (nsswitch.conf) took more than {} s for this \
                 login's questions{}: a later answer proves nothing",
                crate::nss_sources::WALK_BOUND.as_secs(),
                service
                    .as_deref()
                    .map(|s| format!(", the last {}", s.escape_debug()))
                    .unwrap_or_default()
            ),
            Self::SourceFailed {
                service: Some(service),
                errno,
            } => write!(
                f,
                "the name service source {} (nsswitch.conf) did not answer: {}",
                service.escape_debug(),
                std::io::Error::from_raw_os_error(*errno)
            ),
            Self::SourceFailed {
                service: None,
                errno,
            } => write!(
                f,
                "the group sources of nsswitch.conf could not be asked one by one: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

impl std::error::Error for NssError {}

impl NssError {
    /// Whether the walk of the group sources that gave this had run past its deadline
    /// (R36): a fact of that walk, of how long the questions before it took, not of
    /// what was asked; another walk (another account's) may answer the same question.
    pub fn past_walk_deadline(&self) -> bool {
        matches!(self, Self::SourceFailed { errno, .. } if *errno == libc::ETIME)
    }
}

/// Why a non-membership of group `shown` stays unknown when
/// [`GroupSources::group`] failed with `e`: the words the module logs and
/// `totp-enroll explain` and `totp-state audit` print. `who` and `shown` come made
/// printable by the caller (each output has its own escaping).
pub fn group_unknown_reason(who: &str, shown: &str, e: &NssError) -> String {
    format!(
        "group {shown} asked of each name service source: {e}; membership of {who} \
         unknown, so it cannot excuse the code"
    )
}

/// Why a membership of group `shown` stays unknown when its entry (`getgrnam_r`) gave
/// nothing: `None`, not found (which glibc cannot tell from a source that failed
/// quietly), or the lookup's error. In the words of [`group_unknown_reason`].
pub fn group_entry_unknown_reason(who: &str, shown: &str, e: Option<&NssError>) -> String {
    match e {
        None => format!(
            "group {shown} not found (or a name service source failed quietly): \
             membership of {who} unknown, so it cannot excuse the code"
        ),
        Some(e) => format!(
            "group {shown} lookup failed ({e}): membership of {who} unknown, so it cannot \
             excuse the code"
        ),
    }
}

/// Why no group skips `who`'s login when its group list could not be fetched at all.
pub fn group_list_failed_reason(who: &str, e: &NssError) -> String {
    format!("group list of {who} failed ({e}); no group skip")
}

/// Why a membership of group `shown` stays unknown when `who`'s group `list` is
/// incomplete, naming the source that did not answer, or the walk's deadline (the
/// source may well have answered after it). `show` makes those words printable.
pub fn group_list_incomplete_reason(
    who: &str,
    shown: &str,
    list: &AccountList,
    show: impl Fn(&str) -> String,
) -> String {
    let why = match (&list.source, list.errno) {
        (source, errno) if errno == libc::ETIME => show(
            &NssError::SourceFailed {
                service: source.clone(),
                errno,
            }
            .to_string(),
        ),
        (Some(source), errno) => format!(
            "the name service source {} (nsswitch.conf) did not answer: {}",
            show(source),
            std::io::Error::from_raw_os_error(errno)
        ),
        (None, 0) => "a name service source failed".to_owned(),
        (None, errno) => format!(
            "a name service source failed: {}",
            std::io::Error::from_raw_os_error(errno)
        ),
    };
    format!(
        "group list of {who} is incomplete ({why}): membership of {shown} unknown, so it \
         cannot excuse the code"
    )
}

/// Why a non-membership of group `shown` stays unknown when
/// [`GroupSources::gid_names`] of `gid`, one of `who`'s ids, failed with `e`, in the
/// words of [`group_unknown_reason`]. A source whose module has `getgrnam_r` but no
/// `getgrgid_r` is said to be one (`ENOSYS` alone would read as an outage); `show`
/// makes its service name printable.
pub fn gid_unknown_reason(
    gid: gid_t,
    who: &str,
    shown: &str,
    e: &NssError,
    show: impl Fn(&str) -> String,
) -> String {
    match e {
        NssError::SourceFailed {
            service: Some(service),
            errno: libc::ENOSYS,
        } => format!(
            "group id {gid} of {who}: the name service source {} (nsswitch.conf) cannot \
             look groups up by id (its module has no getgrgid_r), so it cannot show that \
             this id is not another group called {shown}: a non-membership cannot be \
             proven while it is listed, and the code is required",
            show(service)
        ),
        e => format!(
            "group id {gid} of {who} asked of each name service source (is it another \
             group called {shown}?): {e}; membership unknown, so it cannot excuse the code"
        ),
    }
}

/// How the reasons a membership stays unknown are written and where they go: the
/// account's and the group's names made printable by the caller, `show` for a source's
/// name in them (each output has its own escaping), and `note`, which takes each.
pub struct UnknownReasons<'a> {
    pub who: &'a str,
    pub shown: &'a str,
    pub show: &'a dyn Fn(&str) -> String,
    pub note: &'a dyn Fn(String),
}

/// [`membership::prove`] of `pw`'s membership of `group`, each reason it stays unknown
/// given to `why` in the words the module logs it with: the group's `entry` not found
/// or its lookup failed, the user's `list` failed or left incomplete, the group in
/// every source or a gid's names not answered. One wiring for the module, `totp-state
/// audit` and `totp-enroll explain`, which each fetch the facts their own way (the
/// module through its `System`, the audit with answers kept across accounts), so the
/// three give the same reasons.
#[allow(clippy::too_many_arguments)] // each fact is fetched lazily, by its own closure
pub fn prove_membership<'l>(
    question: Question,
    pw: &Passwd,
    group: &str,
    entry: Result<Option<GroupEntry>, NssError>,
    list: impl FnOnce() -> Result<&'l AccountList, &'l NssError>,
    every_source: impl FnOnce() -> Result<Vec<GroupEntry>, NssError>,
    mut gid_names: impl FnMut(gid_t) -> Result<Vec<String>, NssError>,
    why: &UnknownReasons<'_>,
) -> Membership {
    let entry = match entry {
        Ok(found) => {
            if found.is_none() {
                (why.note)(group_entry_unknown_reason(why.who, why.shown, None));
            }
            found
        }
        Err(e) => {
            (why.note)(group_entry_unknown_reason(why.who, why.shown, Some(&e)));
            None
        }
    };
    let listed: std::cell::Cell<Option<&'l AccountList>> = std::cell::Cell::new(None);
    let m = membership::prove(
        question,
        &pw.name,
        pw.gid,
        group,
        entry.as_ref(),
        || match list() {
            Ok(l) => {
                listed.set(Some(l));
                Some(&l.list)
            }
            Err(e) => {
                (why.note)(group_list_failed_reason(why.who, e));
                None
            }
        },
        || {
            every_source()
                .map_err(|e| (why.note)(group_unknown_reason(why.who, why.shown, &e)))
                .ok()
        },
        |gid| {
            gid_names(gid)
                .map_err(|e| (why.note)(gid_unknown_reason(gid, why.who, why.shown, &e, why.show)))
                .ok()
        },
    );
    // Without the entry, its own reason above says why.
    if let (Membership::Unknown, Some(_), Some(l)) = (m, &entry, listed.get())
        && !l.list.complete
    {
        (why.note)(group_list_incomplete_reason(
            why.who, why.shown, l, why.show,
        ));
    }
    m
}

/// Buffers start here and double on `ERANGE` up to [`MAX_BUFFER`].
const INITIAL_BUFFER: usize = 4096;
/// Large LDAP groups can need a lot of room, but an entry bigger than this is a fault.
const MAX_BUFFER: usize = 16 * 1024 * 1024;
/// The kernel's NGROUPS_MAX; getgrouplist never needs more slots than a thread can hold.
const MAX_GROUPS: usize = 65_536;

enum PwKey<'a> {
    Name(&'a CStr),
    Uid(uid_t),
}

/// Look up a user by name with `getpwnam_r`.
pub fn lookup_user_by_name(name: &str) -> Result<Option<Passwd>, NssError> {
    let cname = CString::new(name).map_err(|_| NssError::InvalidName)?;
    lookup_user(PwKey::Name(&cname))
}

/// Why the account a login name reaches is not one the module logs in (R8).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginUserError {
    /// The lookup of the name as given failed.
    Lookup(NssError),
    /// The lookup of the entry's own name (`pw_name`, when it differs from the name
    /// given) failed.
    CanonicalLookup(NssError),
    /// The entry's own name is the name of another account: the entry of `uid` is
    /// called `name`, and `name` is `other_uid`.
    AnotherAccount {
        /// The uid of the entry the name given reached.
        uid: uid_t,
        /// That entry's `pw_name`.
        name: String,
        /// The uid the name service gives for `name`.
        other_uid: uid_t,
    },
}

impl fmt::Display for LoginUserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lookup(e) => write!(f, "name service error for this user ({e})"),
            Self::CanonicalLookup(e) => {
                write!(f, "name service error for this user's canonical name ({e})")
            }
            Self::AnotherAccount {
                uid,
                name,
                other_uid,
            } => write!(
                f,
                "the name service calls this account (uid {uid}) \"{}\", the name of uid \
                 {other_uid}: logins with this name are denied",
                name.escape_debug()
            ),
        }
    }
}

impl std::error::Error for LoginUserError {}

/// The account a login name reaches, as the module resolves it: `getpwnam_r` of the
/// name, then, when the entry's own name differs (a directory's `ALICE`, `AD\alice`),
/// that name must lead back to the same uid (R8). Rules, store files, state records and
/// logs know an account by its canonical name, so an entry named after another account
/// (a local `alice`, and the directory's `ALICE` called `alice` with a uid of its own)
/// would take that account's rules and files. `Ok(None)`: no such user. The module and
/// both tools use this one function, so that an alias is judged alike everywhere.
pub fn lookup_login_user(name: &str) -> Result<Option<Passwd>, LoginUserError> {
    login_user_with(name, lookup_user_by_name)
}

/// [`lookup_login_user`] over another `getpwnam` (the module's, which fault tests
/// replace).
pub fn login_user_with(
    name: &str,
    mut by_name: impl FnMut(&str) -> Result<Option<Passwd>, NssError>,
) -> Result<Option<Passwd>, LoginUserError> {
    let Some(pw) = by_name(name).map_err(LoginUserError::Lookup)? else {
        return Ok(None);
    };
    if pw.name != name {
        match by_name(&pw.name).map_err(LoginUserError::CanonicalLookup)? {
            Some(back) if back.uid != pw.uid => {
                return Err(LoginUserError::AnotherAccount {
                    uid: pw.uid,
                    name: pw.name,
                    other_uid: back.uid,
                });
            }
            // No account answers to the name itself: no other account's rules or file.
            _ => {}
        }
    }
    Ok(Some(pw))
}

/// Look up a user by uid with `getpwuid_r`.
pub fn lookup_user_by_uid(uid: uid_t) -> Result<Option<Passwd>, NssError> {
    lookup_user(PwKey::Uid(uid))
}

/// The group ids of `name` (primary `primary_gid` included) via `getgrouplist`, whether
/// or not every source answered (see [`lookup_group_list`] for that).
pub fn lookup_group_gids(name: &str, primary_gid: gid_t) -> Result<Vec<gid_t>, NssError> {
    lookup_group_list(name, primary_gid).map(|l| l.gids)
}

/// A user's group ids and whether every NSS source answered for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupIds {
    /// The ids, primary group first.
    pub gids: Vec<gid_t>,
    /// False when a source reported a failure while the list was gathered.
    pub complete: bool,
    /// The error number that marked the list incomplete; 0 when it is complete.
    pub errno: i32,
    /// The service of nsswitch.conf that did not answer, when the list was gathered
    /// source by source ([`lookup_group_list_from_every_source`]) and one failed.
    pub source: Option<String>,
}

/// `getgrouplist`, and whether the answer is complete.
///
/// glibc passes `&errno` to every source's `initgroups_dyn` (or to the `getgrent_r`
/// fallback) and does not report a source that answers `NSS_STATUS_UNAVAIL` or
/// `NSS_STATUS_TRYAGAIN`; the error number such a source sets is all that is left of
/// its failure. So `errno` is cleared before the call and read after it: zero, or the
/// "no such entry" numbers a source sets for a user it does not know (`ENOENT`,
/// `ESRCH`), mean every source answered; anything else marks the list incomplete. A
/// source that fails without setting `errno`, or with `ENOENT`, cannot be told from
/// one that does not know the user; [`lookup_group_by_name`] covers the usual case of
/// a group held by the source that is down.
pub fn lookup_group_list(name: &str, primary_gid: gid_t) -> Result<GroupIds, NssError> {
    let cname = CString::new(name).map_err(|_| NssError::InvalidName)?;
    let mut slots: usize = 64;
    loop {
        let mut gids: Vec<gid_t> = vec![0; slots];
        let mut count = c_int::try_from(slots).map_err(|_| NssError::TooLarge)?;
        clear_errno();
        // SAFETY: `cname` is NUL-terminated and outlives the call; `gids` has exactly
        // `count` writable slots and getgrouplist writes at most `count` of them, then
        // stores the number of groups (needed or written) in `count`.
        let rc = unsafe {
            libc::getgrouplist(cname.as_ptr(), primary_gid, gids.as_mut_ptr(), &mut count)
        };
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let count = usize::try_from(count).map_err(|_| NssError::InvalidEntry)?;
        if rc >= 0 {
            if count > gids.len() {
                return Err(NssError::InvalidEntry);
            }
            gids.truncate(count);
            let complete = matches!(errno, 0 | libc::ENOENT | libc::ESRCH);
            return Ok(GroupIds {
                gids,
                complete,
                errno: if complete { 0 } else { errno },
                source: None,
            });
        }
        // -1 means "too small" and `count` says how many are needed; grow at least 2x
        // in case an NSS module reports a stale count.
        let wanted = count.max(slots.saturating_mul(2));
        if wanted > MAX_GROUPS {
            return Err(NssError::TooLarge);
        }
        slots = wanted;
    }
}

/// [`lookup_group_list`] for a proof that the user is *not* in a group (R22): complete
/// only when, besides `getgrouplist`, each source of the group database asked on its
/// own answered (a source that is down drops out of `getgrouplist` without a trace when
/// it leaves `ENOENT` or no error number, and a group of the same name in an earlier
/// source hides the directory's entry from `getgrnam_r`). The ids every source answered
/// are added, so a source that came back between the two walks cannot make its group
/// look absent.
pub fn lookup_group_list_from_every_source(
    name: &str,
    primary_gid: gid_t,
) -> Result<GroupIds, NssError> {
    let list = lookup_group_list(name, primary_gid)?;
    GroupSources::new().complete_list(name, primary_gid, list)
}

/// The sources of the group database asked one by one, for one login (or one account
/// of a tool): nsswitch.conf is read, and each service's module loaded, at the first
/// question and not again, whichever questions follow. Nothing is read until then.
/// Not to be kept across logins: a module installed or an nsswitch.conf changed since
/// would not be seen.
pub struct GroupSources {
    walk: std::cell::OnceCell<crate::nss_sources::Walk>,
    /// The names every source gave each gid: a second group a rule names asks the same
    /// gids of the same user again, and asked again they would spend the walk's time
    /// twice (a slow directory would run it out where the first answer proves it).
    gid_names: std::cell::RefCell<std::collections::HashMap<gid_t, Vec<String>>>,
}

impl Default for GroupSources {
    fn default() -> Self {
        Self::new()
    }
}

impl GroupSources {
    /// Nothing asked yet.
    pub fn new() -> GroupSources {
        GroupSources {
            walk: std::cell::OnceCell::new(),
            gid_names: std::cell::RefCell::new(std::collections::HashMap::new()),
        }
    }

    fn walk(&self) -> &crate::nss_sources::Walk {
        self.walk.get_or_init(crate::nss_sources::Walk::new)
    }

    /// `list` (`getgrouplist`'s answer for `name`, see [`lookup_group_list`]) with the
    /// ids each source answered on its own added, complete only when every one answered
    /// (see [`lookup_group_list_from_every_source`]). A list already incomplete is
    /// returned as it is, without asking.
    pub fn complete_list(
        &self,
        name: &str,
        primary_gid: gid_t,
        mut list: GroupIds,
    ) -> Result<GroupIds, NssError> {
        if !list.complete {
            return Ok(list);
        }
        let cname = CString::new(name).map_err(|_| NssError::InvalidName)?;
        match self.walk().every_source(&cname, primary_gid) {
            Ok(more) => {
                list.gids.extend(more);
                // The primary group stays first; the rest once each.
                if let Some(rest) = list.gids.get_mut(1..) {
                    rest.sort_unstable();
                }
                let primary = list.gids.first().copied();
                list.gids.dedup();
                let mut seen_primary = false;
                list.gids.retain(|g| {
                    if Some(*g) != primary {
                        return true;
                    }
                    !std::mem::replace(&mut seen_primary, true)
                });
            }
            Err(e) => {
                list.complete = false;
                list.errno = e.errno;
                list.source = e.service;
            }
        }
        Ok(list)
    }

    /// The group called `name` in each source that has one (see
    /// [`lookup_group_in_every_source`]).
    pub fn group(&self, name: &str) -> Result<Vec<GroupEntry>, NssError> {
        let cname = CString::new(name).map_err(|_| NssError::InvalidName)?;
        let groups =
            self.walk()
                .group_in_every_source(&cname)
                .map_err(|e| NssError::SourceFailed {
                    service: e.service,
                    errno: e.errno,
                })?;
        Ok(groups
            .into_iter()
            .map(|g| GroupEntry {
                gid: g.gid,
                members: g.members,
            })
            .collect())
    }

    /// Whether the walk has begun (a question asked, or time spent): its deadline runs
    /// from then, so time taken before it costs the walk nothing.
    pub fn begun(&self) -> bool {
        self.walk.get().is_some()
    }

    /// `took`, the time other questions took on another walk whose answers are
    /// reused here, counted against this walk's deadline as if they had been asked on
    /// it: `Err` (past the walk's deadline, see [`NssError::past_walk_deadline`]) when
    /// this walk would not have had them answered in time.
    pub fn spend(&self, took: std::time::Duration) -> Result<(), NssError> {
        self.walk().spend(took).map_err(|e| NssError::SourceFailed {
            service: e.service,
            errno: e.errno,
        })
    }

    /// The names each source of the group database gives group `gid` (one per source
    /// that knows it, none when no source does), asked source by source: for a proof
    /// of non-membership (R22), where a source holding the group's name twice answers
    /// `getgrnam_r` with the first entry alone. `Err` when a source did not answer.
    /// Asked once per gid: an answer is kept for the walk's later questions (the
    /// module, `totp-enroll explain` and each account of `totp-state audit` alike), a
    /// failure is not.
    pub fn gid_names(&self, gid: gid_t) -> Result<Vec<String>, NssError> {
        if let Some(names) = self.gid_names.borrow().get(&gid) {
            return Ok(names.clone());
        }
        let names =
            self.walk()
                .gid_names_in_every_source(gid)
                .map_err(|e| NssError::SourceFailed {
                    service: e.service,
                    errno: e.errno,
                })?;
        self.gid_names.borrow_mut().insert(gid, names.clone());
        Ok(names)
    }
}

/// One account's group lists as the group rules read them (R22), each asked once, with
/// what left one incomplete: `getgrouplist` for a question only a membership answers
/// ([`Question::IsMember`]), that with each source's own answer added for one a
/// non-membership answers ([`Question::MemberOrNot`]). The module, `totp-state audit`
/// and `totp-enroll explain` all ask through this, so a list proves the same to each;
/// a failed lookup is kept, for the one that logs it.
#[derive(Default)]
pub struct GroupLists {
    glibc: std::cell::OnceCell<Result<AccountList, NssError>>,
    every_source: std::cell::OnceCell<Result<AccountList, NssError>>,
}

/// A group list of [`GroupLists`], and why it is incomplete when it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountList {
    /// The ids, and whether every source answered.
    pub list: GroupList,
    /// The error number that left it incomplete; 0 when it is complete.
    pub errno: i32,
    /// The service of nsswitch.conf that did not answer, when the sources were asked
    /// one by one and one failed.
    pub source: Option<String>,
}

impl From<GroupIds> for AccountList {
    fn from(l: GroupIds) -> AccountList {
        AccountList {
            list: GroupList {
                gids: l.gids,
                complete: l.complete,
            },
            errno: l.errno,
            source: l.source,
        }
    }
}

impl GroupLists {
    /// Nothing asked yet.
    pub fn new() -> GroupLists {
        GroupLists::default()
    }

    /// The list `question` needs, asked of the name service for `pw`: `getgrouplist`,
    /// and for a non-membership `sources` each asked as well.
    pub fn of(
        &self,
        pw: &Passwd,
        sources: &GroupSources,
        question: Question,
    ) -> Result<&AccountList, &NssError> {
        self.with(
            question,
            || lookup_group_list(&pw.name, pw.gid),
            |list| sources.complete_list(&pw.name, pw.gid, list),
        )
    }

    /// [`GroupLists::of`] over other lookups (the module's, which fault tests replace):
    /// `glibc` gives `getgrouplist`'s answer, `every_source` completes it as
    /// [`GroupSources::complete_list`] does. Neither is called twice, nor
    /// `every_source` for a list `glibc` left incomplete (it stays as it is).
    pub fn with(
        &self,
        question: Question,
        glibc: impl FnOnce() -> Result<GroupIds, NssError>,
        every_source: impl FnOnce(GroupIds) -> Result<GroupIds, NssError>,
    ) -> Result<&AccountList, &NssError> {
        let first = self.glibc.get_or_init(|| glibc().map(AccountList::from));
        match question {
            Question::IsMember => first.as_ref(),
            Question::MemberOrNot => self
                .every_source
                .get_or_init(|| {
                    let l = first.as_ref().map_err(Clone::clone)?;
                    if !l.list.complete {
                        return Ok(l.clone());
                    }
                    every_source(GroupIds {
                        gids: l.list.gids.clone(),
                        complete: true,
                        errno: 0,
                        source: None,
                    })
                    .map(AccountList::from)
                })
                .as_ref(),
        }
    }
}

fn clear_errno() {
    // SAFETY: __errno_location returns the calling thread's errno slot, valid for the
    // thread's lifetime; writing an int there is what `errno = 0` does in C.
    unsafe { *libc::__errno_location() = 0 };
}

/// A group entry as `getgrnam_r` returned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `gr_gid`.
    pub gid: gid_t,
    /// `gr_mem`, the member names that are UTF-8 (others cannot be a user name here).
    pub members: Vec<String>,
    /// How many `gr_mem` names are not UTF-8: none of them is the user, but each is a
    /// member, so a group with any is shared (never a user-private group).
    pub undecodable_members: usize,
}

/// The entry as the group rules read it (`membership::prove`).
impl From<Group> for GroupEntry {
    fn from(g: Group) -> GroupEntry {
        GroupEntry {
            gid: g.gid,
            members: g.members,
        }
    }
}

/// Look up a group by name with `getgrnam_r`.
///
/// glibc returns 0 and no entry when the last source consulted said "not found", and
/// the source's error number when it said "unavailable" or "try again" (which a
/// careless source may leave at 0, making an outage look like "not found"): callers
/// must treat `Ok(None)` as "cannot tell", never as "no such group, so not a member".
pub fn lookup_group_by_name(name: &str) -> Result<Option<Group>, NssError> {
    let cname = CString::new(name).map_err(|_| NssError::InvalidName)?;
    let mut buf: Vec<c_char> = vec![0; INITIAL_BUFFER];
    loop {
        let mut grp = MaybeUninit::<libc::group>::uninit();
        let mut result: *mut libc::group = ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated; `grp` is writable storage for one group;
        // `buf` has `buf.len()` writable bytes; `result` is a valid out-pointer; all
        // outlive the call.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                grp.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return Err(NssError::Lookup { errno: rc });
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: zero return and non-NULL result: `grp` is initialised and `result`
        // points to it, its strings inside `buf`, which is alive and unchanged while
        // they are copied.
        return Ok(Some(unsafe { copy_group(&*result) }));
    }
}

/// The gid and members of a group entry an NSS call filled in.
///
/// # Safety
/// `gr.gr_mem` is NULL or a NULL-terminated array of NUL-terminated strings, all alive
/// for the call.
pub(crate) unsafe fn copy_group(gr: &libc::group) -> Group {
    let mut members = Vec::new();
    let mut undecodable_members = 0;
    if !gr.gr_mem.is_null() {
        for i in 0.. {
            // SAFETY: the array is NULL-terminated (the caller's promise), and `i` stops
            // at that NULL.
            let member = unsafe { *gr.gr_mem.add(i) };
            if member.is_null() {
                break;
            }
            // SAFETY: non-NULL, NUL-terminated (the caller's promise).
            let member = unsafe { CStr::from_ptr(member) };
            match member.to_str() {
                Ok(m) => members.push(m.to_owned()),
                Err(_) => undecodable_members += 1,
            }
        }
    }
    Group {
        gid: gr.gr_gid,
        members,
        undecodable_members,
    }
}

/// The group called `name` in each source of the group database that has one, asked
/// source by source (not only the first that answers, as `getgrnam_r` does): the same
/// name in `files` and in a directory may be two groups. `Err` when a source did not
/// answer. For a proof of non-membership (R22) only.
pub fn lookup_group_in_every_source(name: &str) -> Result<Vec<GroupEntry>, NssError> {
    GroupSources::new().group(name)
}

/// The filesystem identity of `pw` (uid, primary gid and all NSS groups), ready for
/// [`crate::creds::switch_to`]. Root's groups are not looked up: a root thread opening
/// as root is not switched at all, so the lookup (and the NSS group modules it would
/// load into the host) buys nothing.
///
/// A list a failing source may have left short is an error (R4: the user's full group
/// list), not a smaller identity: fewer groups do not always mean less access, as a file
/// or ACL entry can deny a group what it allows everyone else (mode 0604 with group
/// `blocked`), and a user missing `blocked` would be let through.
pub fn identity_of(pw: &Passwd) -> Result<Identity, NssError> {
    identity_with(pw, || lookup_group_list(&pw.name, pw.gid))
}

/// [`identity_of`] with the group list `list` gives (the [`lookup_group_list`] of `pw`
/// a login whose group rules asked for it moments before keeps), asked only for an
/// account other than root.
pub fn identity_with(
    pw: &Passwd,
    list: impl FnOnce() -> Result<GroupIds, NssError>,
) -> Result<Identity, NssError> {
    if pw.uid == 0 {
        return Ok(Identity {
            uid: 0,
            gid: pw.gid,
            groups: vec![pw.gid],
        });
    }
    let list = list()?;
    if !list.complete {
        return Err(NssError::IncompleteGroups { errno: list.errno });
    }
    Ok(Identity {
        uid: pw.uid,
        gid: pw.gid,
        groups: list.gids,
    })
}

fn lookup_user(key: PwKey<'_>) -> Result<Option<Passwd>, NssError> {
    let mut buf: Vec<c_char> = vec![0; INITIAL_BUFFER];
    loop {
        let mut pwd = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = ptr::null_mut();
        let rc = match key {
            // SAFETY: `name` is NUL-terminated; `pwd` is writable storage for one passwd;
            // `buf` has `buf.len()` writable bytes; `result` is a valid out-pointer. All
            // outlive the call.
            PwKey::Name(name) => unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    pwd.as_mut_ptr(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            },
            // SAFETY: as above, without the name.
            PwKey::Uid(uid) => unsafe {
                libc::getpwuid_r(
                    uid,
                    pwd.as_mut_ptr(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                )
            },
        };
        // The *_r functions report errors through the return value, not errno.
        if rc == libc::ERANGE {
            grow(&mut buf)?;
            continue;
        }
        if rc != 0 {
            return Err(NssError::Lookup { errno: rc });
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: a zero return with a non-NULL result means `pwd` was filled in and
        // `result` points to it; its string fields point into `buf`, which is alive and
        // not modified until the copies below are made.
        let pw = unsafe { &*result };
        if pw.pw_name.is_null() || pw.pw_dir.is_null() {
            return Err(NssError::InvalidEntry);
        }
        // SAFETY: both pointers are non-NULL, NUL-terminated strings inside `buf`.
        let (name, dir) = unsafe { (CStr::from_ptr(pw.pw_name), CStr::from_ptr(pw.pw_dir)) };
        let name = name
            .to_str()
            .map_err(|_| NssError::InvalidEntry)?
            .to_owned();
        let dir = PathBuf::from(OsStr::from_bytes(dir.to_bytes()));
        return Ok(Some(Passwd {
            name,
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            dir,
        }));
    }
}

fn grow(buf: &mut Vec<c_char>) -> Result<(), NssError> {
    let next = buf.len().saturating_mul(2);
    if next > MAX_BUFFER {
        return Err(NssError::TooLarge);
    }
    buf.resize(next, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_uid() {
        let by_name = lookup_user_by_name("root")
            .expect("lookup")
            .expect("root exists");
        assert_eq!(by_name.uid, 0);
        let by_uid = lookup_user_by_uid(0)
            .expect("lookup")
            .expect("uid 0 exists");
        assert_eq!(by_uid, by_name);
    }

    #[test]
    fn unknown_user_is_none_not_error() {
        assert_eq!(lookup_user_by_name("no-such-user-pam-totp-test"), Ok(None));
        assert_eq!(lookup_user_by_uid(3_999_999_999), Ok(None));
    }

    #[test]
    fn name_with_nul_is_rejected_before_nss() {
        assert_eq!(lookup_user_by_name("ro\0ot"), Err(NssError::InvalidName));
        assert_eq!(lookup_group_gids("ro\0ot", 0), Err(NssError::InvalidName));
    }

    fn entry(name: &str, uid: uid_t) -> Passwd {
        Passwd {
            name: name.to_owned(),
            uid,
            gid: uid,
            dir: PathBuf::from("/home").join(name),
        }
    }

    /// A local `alice` (uid 1000) and a directory that answers `ALICE` with an entry
    /// called `alice` of `directory_uid`.
    fn directory(directory_uid: uid_t) -> impl FnMut(&str) -> Result<Option<Passwd>, NssError> {
        move |n: &str| {
            Ok(match n {
                "alice" => Some(entry("alice", 1000)),
                "ALICE" => Some(entry("alice", directory_uid)),
                "BOB" => Some(entry("bob", 2000)),
                "CAROL" => Some(entry("carol", 3000)),
                "carol" => return Err(NssError::Lookup { errno: libc::EIO }),
                _ => None,
            })
        }
    }

    #[test]
    fn a_login_name_whose_entry_is_named_after_another_account_is_refused() {
        assert_eq!(
            login_user_with("ALICE", directory(5000)),
            Err(LoginUserError::AnotherAccount {
                uid: 5000,
                name: "alice".into(),
                other_uid: 1000
            })
        );
        // Controls: the same spelling of the same account, the name itself, a canonical
        // name no account answers to, and no such user.
        assert_eq!(
            login_user_with("ALICE", directory(1000)),
            Ok(Some(entry("alice", 1000)))
        );
        assert_eq!(
            login_user_with("alice", directory(5000)),
            Ok(Some(entry("alice", 1000)))
        );
        assert_eq!(
            login_user_with("BOB", directory(5000)),
            Ok(Some(entry("bob", 2000)))
        );
        assert_eq!(login_user_with("nobody-here", directory(5000)), Ok(None));
        assert_eq!(
            login_user_with("CAROL", directory(5000)),
            Err(LoginUserError::CanonicalLookup(NssError::Lookup {
                errno: libc::EIO
            }))
        );
        assert_eq!(
            lookup_login_user("root"),
            lookup_user_by_name("root").map_err(LoginUserError::Lookup)
        );
    }

    #[test]
    fn root_groups_include_primary_group() {
        let gids = lookup_group_gids("root", 0).expect("getgrouplist");
        assert!(gids.contains(&0));
    }

    #[test]
    fn unknown_user_gets_only_the_primary_group() {
        let gids = lookup_group_gids("no-such-user-pam-totp-test", 4242).expect("getgrouplist");
        assert_eq!(gids, vec![4242]);
    }

    #[test]
    fn root_group_by_name_and_a_complete_list() {
        let g = lookup_group_by_name("root")
            .expect("getgrnam_r")
            .expect("group root exists");
        assert_eq!(g.gid, 0);
        assert_eq!(
            lookup_group_by_name("no-such-group-pam-totp-test"),
            Ok(None)
        );
        assert_eq!(lookup_group_by_name("ro\0ot"), Err(NssError::InvalidName));
        let list = lookup_group_list("root", 0).expect("getgrouplist");
        assert!(list.gids.contains(&0));
        assert!(list.complete, "every local source answers for root");
    }

    /// Each list is asked once whatever the questions; an incomplete `getgrouplist`
    /// is not completed (nor the sources asked); a failure is kept for both questions.
    #[test]
    fn group_lists_ask_each_list_once_and_keep_a_failure() {
        use std::cell::Cell;
        let ids = |gids: &[u32], complete: bool| GroupIds {
            gids: gids.to_vec(),
            complete,
            errno: if complete { 0 } else { libc::EAGAIN },
            source: None,
        };
        let asked = (Cell::new(0), Cell::new(0));
        let lists = GroupLists::new();
        let ask = |q| {
            lists
                .with(
                    q,
                    || {
                        asked.0.set(asked.0.get() + 1);
                        Ok(ids(&[100, 7], true))
                    },
                    |mut l| {
                        asked.1.set(asked.1.get() + 1);
                        l.gids.push(9);
                        l.complete = false;
                        l.errno = libc::EHOSTUNREACH;
                        l.source = Some("ldap".into());
                        Ok(l)
                    },
                )
                .cloned()
        };
        assert_eq!(
            ask(Question::IsMember).map(|l| l.list.gids),
            Ok(vec![100, 7])
        );
        // A membership asks no source.
        assert_eq!((asked.0.get(), asked.1.get()), (1, 0));
        let every = ask(Question::MemberOrNot).expect("every source");
        assert_eq!(
            (every.list.complete, every.errno, every.source.as_deref()),
            (false, libc::EHOSTUNREACH, Some("ldap"))
        );
        // Asked again, the kept answers, nothing asked anew.
        assert_eq!(ask(Question::MemberOrNot), Ok(every.clone()));
        ask(Question::IsMember).expect("again");
        assert_eq!((asked.0.get(), asked.1.get()), (1, 1));

        let short = GroupLists::new();
        let got = short.with(
            Question::MemberOrNot,
            || Ok(ids(&[100], false)),
            |_| panic!("an incomplete list is not completed"),
        );
        assert_eq!(got.map(|l| l.errno), Ok(libc::EAGAIN));

        let failed = GroupLists::new();
        let err = NssError::Lookup { errno: libc::EIO };
        let got = failed.with(
            Question::MemberOrNot,
            || Err(err.clone()),
            |_| panic!("a failed list is not completed"),
        );
        assert_eq!(got, Err(&err));
        assert_eq!(
            failed.with(Question::IsMember, || Ok(ids(&[1], true)), Ok),
            Err(&err)
        );
        assert_eq!(
            failed.with(
                Question::MemberOrNot,
                || panic!("a failure is not asked again"),
                |_| panic!("a failed list is not completed"),
            ),
            Err(&err)
        );
    }

    /// Root's groups are never asked; another account's list is, and a short one is
    /// an error, not a smaller identity.
    #[test]
    fn identity_with_asks_no_list_for_root_and_refuses_a_short_one() {
        let root = entry("root", 0);
        let id = identity_with(&root, || panic!("root's groups are not asked"));
        assert_eq!(id.map(|i| i.groups), Ok(vec![0]));
        let alice = entry("alice", 1000);
        let list = |complete: bool| GroupIds {
            gids: vec![1000, 27],
            complete,
            errno: if complete { 0 } else { libc::EAGAIN },
            source: None,
        };
        assert_eq!(
            identity_with(&alice, || Ok(list(true))).map(|i| (i.uid, i.gid, i.groups)),
            Ok((1000, 1000, vec![1000, 27]))
        );
        assert_eq!(
            identity_with(&alice, || Ok(list(false))).map(|i| i.groups),
            Err(NssError::IncompleteGroups {
                errno: libc::EAGAIN
            })
        );
    }

    #[test]
    fn identity_of_root_matches_nss() {
        let pw = lookup_user_by_name("root")
            .expect("lookup")
            .expect("root exists");
        let id = identity_of(&pw).expect("identity");
        assert_eq!((id.uid, id.gid), (0, 0));
        assert!(id.groups.contains(&0));
    }
}
