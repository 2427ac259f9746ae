//! Verified decisions not to ask for the code: access rules and group rules.
//!
//! Every error here (unreadable or malformed rule file, NSS failure) means "ask for the
//! code": a skip is only ever the result of a rule that positively matched. A rule file
//! that is set but cannot be used bars every skip, group rules and grace included.

use std::cell::RefCell;
use std::path::Path;

use totp_core::access::{Groups, RuleFile, SkipDecision, Subject, skip_decision};
use totp_core::addr::classify_origin;
use totp_core::membership::{Membership, Question};
use totp_core::options::ModuleOptions;
use totp_os::safefile::{self, FileRules};

use crate::log::sanitize;
use crate::pamio::Level;
use crate::system::System;
use totp_os::nss::{self, GroupLists, Passwd};

/// The PAM items a skip decision may look at. Never the environment (R20).
pub struct LoginItems<'a> {
    pub rhost: Option<&'a [u8]>,
    pub tty: Option<&'a [u8]>,
    pub service: Option<&'a [u8]>,
}

/// What the skip rules decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// A rule positively matched: the code is not asked for, for this reason.
    Skip(String),
    /// No rule skips; the other ways past the code (the grace period) stay open.
    Ask,
    /// `accessfile=` is set but unusable or malformed: the code is required for
    /// everybody, so no other rule may skip it either (R21): not `skip_group=`, not
    /// `require_group=`, not the grace period.
    NoSkips,
}

/// Whether the code is to be asked for. Unknown users go through the same rules as known
/// ones (by name, with every group membership unknown), so a skip is no user-name oracle.
pub fn decide(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: &str,
    pw: Option<&Passwd>,
    items: &LoginItems<'_>,
    log: &mut dyn FnMut(Level, &str),
) -> Decision {
    let group_rules = !opts.skip_groups.is_empty() || !opts.require_groups.is_empty();
    if !group_rules && opts.accessfile.is_none() {
        return Decision::Ask;
    }
    // Rules name NSS's canonical name; a user NSS does not know is matched by the
    // validated PAM name and has no provable groups.
    let user = pw.map_or(name, |pw| pw.name.as_str());
    let facts = GroupFacts::new(sys, pw);
    let ask = |group: &str, question: Question| facts.membership(group, question);
    let groups = match pw {
        Some(_) => Groups::Each(&ask),
        None => Groups::Unknown,
    };
    let shown = opts
        .accessfile
        .as_deref()
        .map(|p| sanitize(p.as_bytes()))
        .unwrap_or_default();
    let opened = opts
        .accessfile
        .as_deref()
        .map(|path| rule_file(path, &shown, log));
    let file = match &opened {
        None => RuleFile::Unset,
        Some(Some(text)) => RuleFile::Read(text),
        Some(None) => RuleFile::Unusable,
    };
    let subject = Subject {
        user,
        groups,
        origin: classify_origin(items.rhost, items.tty, items.service),
    };
    // The whole file is parsed (so validated) on every login, each rule matched as it is
    // parsed; an error anywhere means no skips.
    let decided = match skip_decision(opts, file, &subject) {
        SkipDecision::Skip(reason) => Decision::Skip(reason.describe(&shown)),
        SkipDecision::Ask => Decision::Ask,
        SkipDecision::NoSkips(parse_error) => {
            if let Some(e) = parse_error {
                log(
                    Level::Err,
                    &format!("access file {shown}: {e}; the code is required for everybody"),
                );
            }
            Decision::NoSkips
        }
    };
    for note in facts.notes.take() {
        log(Level::Err, &note);
    }
    decided
}

/// The user's group memberships, found out through NSS one named group at a time and
/// only when a rule being evaluated names that group (a rule file or option set without
/// groups makes no group lookup at all). Each group is looked up once per login for
/// each question asked of it.
struct GroupFacts<'a> {
    sys: &'a dyn System,
    pw: Option<&'a Passwd>,
    /// `getgrouplist`, fetched when some group's entry alone does not prove membership,
    /// and that list with each source's own answer added, fetched only for a question
    /// a non-membership answers (see [`Question`]).
    lists: GroupLists,
    known: RefCell<Vec<(String, Question, Membership)>>,
    /// Why a membership stayed unknown, logged once per login after the decision.
    notes: RefCell<Vec<String>>,
}

impl<'a> GroupFacts<'a> {
    fn new(sys: &'a dyn System, pw: Option<&'a Passwd>) -> Self {
        GroupFacts {
            sys,
            pw,
            lists: GroupLists::new(),
            known: RefCell::new(Vec::new()),
            notes: RefCell::new(Vec::new()),
        }
    }

    fn note(&self, msg: String) {
        let mut notes = self.notes.borrow_mut();
        if !notes.contains(&msg) {
            notes.push(msg);
        }
    }

    fn membership(&self, group: &str, question: Question) -> Membership {
        let Some(pw) = self.pw else {
            return Membership::Unknown;
        };
        // Each question answered from its own facts, as `totp-state audit` answers it
        // (which keeps no answers): a membership only the sources' walk shows answers
        // one and not the other.
        if let Some((_, _, m)) = self
            .known
            .borrow()
            .iter()
            .find(|(g, q, _)| g == group && *q == question)
        {
            return *m;
        }
        let m = self.look_up(pw, group, question);
        self.known
            .borrow_mut()
            .push((group.to_owned(), question, m));
        m
    }

    fn look_up(&self, pw: &Passwd, group: &str, question: Question) -> Membership {
        let shown = sanitize(group.as_bytes());
        let who = sanitize(pw.name.as_bytes());
        nss::prove_membership(
            question,
            pw,
            group,
            self.sys.group_by_name(group),
            // `getgrouplist` alone for a membership, that and each source's own answer
            // for a non-membership.
            || {
                self.lists.with(
                    question,
                    || self.sys.group_list(pw),
                    |ids| self.sys.complete_group_list(pw, ids),
                )
            },
            || self.sys.group_in_every_source(group),
            |gid| self.sys.gid_names(gid),
            &nss::UnknownReasons {
                who: &who,
                shown: &shown,
                show: &|s| sanitize(s.as_bytes()),
                note: &|why| self.note(why),
            },
        )
    }
}

/// The rule file's contents, read with its checks: only root may change it, or any
/// directory on its path (R21). `None`: refused or unreadable, logged.
fn rule_file(
    path: &str,
    shown: &str,
    log: &mut dyn FnMut(Level, &str),
) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    match safefile::open_checked(Path::new(path), &FileRules::access_rules_file()) {
        Ok(f) => Some(f.contents),
        Err(e) => {
            log(
                Level::Err,
                &format!("access file {shown} unusable ({e}); the code is required for everybody"),
            );
            None
        }
    }
}
