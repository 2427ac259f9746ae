//! The host facilities the flow depends on besides PAM: the clock and the name service.
//!
//! Behind a trait so that the fault-injection tests can make each of them fail and check
//! that no failure ever turns into `PAM_SUCCESS` or `PAM_IGNORE`.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use totp_core::membership::GroupEntry;
use totp_os::creds::Identity;
use totp_os::nss::{self, GroupIds, NssError, Passwd};

/// The clock could not be read, or reads before 1970.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockError;

pub trait System {
    /// Unix time in seconds.
    fn now(&self) -> Result<i64, ClockError>;
    fn user_by_name(&self, name: &str) -> Result<Option<Passwd>, NssError>;
    fn user_by_uid(&self, uid: u32) -> Result<Option<Passwd>, NssError>;
    /// The file-system identity (uid, primary gid, supplementary groups) of a user.
    fn identity(&self, pw: &Passwd) -> Result<Identity, NssError>;
    /// A group by name (`getgrnam_r`); `Ok(None)` cannot tell "no such group" from a
    /// source that failed quietly.
    fn group_by_name(&self, name: &str) -> Result<Option<GroupEntry>, NssError>;
    /// The group of that name in each source of the group database that has one
    /// (`Err` when a source did not answer): for a proof of non-membership.
    fn group_in_every_source(&self, name: &str) -> Result<Vec<GroupEntry>, NssError>;
    /// The names each source of the group database gives group `gid` (`Err` when a
    /// source did not answer): for a proof of non-membership, where one source may
    /// hold the group's name twice.
    fn gid_names(&self, gid: u32) -> Result<Vec<String>, NssError>;
    /// The user's group ids and whether every source answered, as far as
    /// `getgrouplist` can tell (see [`nss::lookup_group_list`]).
    fn group_list(&self, pw: &Passwd) -> Result<GroupIds, NssError>;
    /// `list` (this user's [`System::group_list`]) with each source of the group
    /// database asked on its own, for a proof of non-membership: their ids added,
    /// incomplete (with the source) when one did not answer.
    fn complete_group_list(&self, pw: &Passwd, list: GroupIds) -> Result<GroupIds, NssError>;
    /// Seconds since the kernel booted, if known: time steps before the boot count as
    /// used, which lets the state store skip the fsync for a used code.
    fn uptime(&self) -> Option<u64> {
        None
    }
}

/// The real clock and NSS, for one login: the group sources asked one by one read
/// nsswitch.conf and load each module once for all of the login's questions.
#[derive(Default)]
pub struct Host {
    sources: nss::GroupSources,
    /// `getgrouplist` answers every source vouched for, by user name and primary group:
    /// the group rules ask for the user's, and the file-system identity needs the same
    /// list moments later in the same login. An incomplete one is asked again.
    lists: RefCell<Vec<(String, u32, GroupIds)>>,
}

impl Host {
    fn list_of(&self, pw: &Passwd) -> Result<GroupIds, NssError> {
        if let Some((_, _, l)) = self
            .lists
            .borrow()
            .iter()
            .find(|(name, gid, _)| *name == pw.name && *gid == pw.gid)
        {
            return Ok(l.clone());
        }
        let list = nss::lookup_group_list(&pw.name, pw.gid)?;
        if list.complete {
            self.lists
                .borrow_mut()
                .push((pw.name.clone(), pw.gid, list.clone()));
        }
        Ok(list)
    }
}

impl System for Host {
    fn now(&self) -> Result<i64, ClockError> {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClockError)?;
        i64::try_from(d.as_secs()).map_err(|_| ClockError)
    }

    fn user_by_name(&self, name: &str) -> Result<Option<Passwd>, NssError> {
        nss::lookup_user_by_name(name)
    }

    fn user_by_uid(&self, uid: u32) -> Result<Option<Passwd>, NssError> {
        nss::lookup_user_by_uid(uid)
    }

    fn identity(&self, pw: &Passwd) -> Result<Identity, NssError> {
        nss::identity_with(pw, || self.list_of(pw))
    }

    fn group_by_name(&self, name: &str) -> Result<Option<GroupEntry>, NssError> {
        Ok(nss::lookup_group_by_name(name)?.map(GroupEntry::from))
    }

    fn group_in_every_source(&self, name: &str) -> Result<Vec<GroupEntry>, NssError> {
        self.sources.group(name)
    }

    fn gid_names(&self, gid: u32) -> Result<Vec<String>, NssError> {
        self.sources.gid_names(gid)
    }

    fn group_list(&self, pw: &Passwd) -> Result<GroupIds, NssError> {
        self.list_of(pw)
    }

    fn complete_group_list(&self, pw: &Passwd, list: GroupIds) -> Result<GroupIds, NssError> {
        self.sources.complete_list(&pw.name, pw.gid, list)
    }

    fn uptime(&self) -> Option<u64> {
        totp_os::boot::uptime()
    }
}
