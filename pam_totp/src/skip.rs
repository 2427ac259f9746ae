//! Verified decisions not to ask for the code: access rules and group rules.
//!
//! Every error here (unreadable or malformed rule file, NSS failure) means "ask for the
//! code": a skip is only ever the result of a rule that positively matched.

use std::path::Path;

use totp_core::access::{self, GroupDecision, ParseOptions, Subject, Verdict, group_skip_decision};
use totp_core::addr::{Origin, classify_origin};
use totp_core::options::ModuleOptions;
use totp_os::safefile::{self, FileRules};

use crate::log::sanitize;
use crate::pamio::Level;
use crate::system::System;
use totp_os::nss::Passwd;

/// Largest access file read (matches the parser's own cap).
const MAX_ACCESS_FILE: usize = totp_core::access::MAX_FILE_BYTES;

/// The PAM items a skip decision may look at. Never the environment (R20).
pub struct LoginItems<'a> {
    pub rhost: Option<&'a [u8]>,
    pub tty: Option<&'a [u8]>,
    pub service: Option<&'a [u8]>,
}

/// `Some(reason)` when the code is not to be asked for. Unknown users go through the same
/// rules as known ones (by name, without groups), so a skip is no user-name oracle.
pub fn decide(
    opts: &ModuleOptions,
    sys: &dyn System,
    name: &str,
    pw: Option<&Passwd>,
    items: &LoginItems<'_>,
    log: &mut dyn FnMut(Level, &str),
) -> Option<String> {
    let group_rules = !opts.skip_groups.is_empty() || !opts.require_groups.is_empty();
    if !group_rules && opts.accessfile.is_none() {
        return None;
    }
    // Rules name NSS's canonical name; a user NSS does not know is matched by the
    // validated PAM name and has no groups.
    let user = pw.map_or(name, |pw| pw.name.as_str());
    let mut groups = LazyGroups {
        sys,
        pw,
        user,
        looked_up: None,
    };
    if let Some(path) = &opts.accessfile {
        let origin = classify_origin(items.rhost, items.tty, items.service);
        if let Some(reason) = access_rules(path, opts, &mut groups, origin, log) {
            return Some(reason);
        }
    }
    if group_rules
        && let GroupDecision::Skip(reason) =
            group_skip_decision(groups.get(log), &opts.skip_groups, &opts.require_groups)
    {
        return Some(format!("group rule: {reason}"));
    }
    None
}

/// The user's groups, looked up through NSS only when a rule needs them (a group lookup
/// reads the whole group database and costs more than a large rule file).
struct LazyGroups<'a> {
    sys: &'a dyn System,
    pw: Option<&'a Passwd>,
    user: &'a str,
    /// `Some(None)`: looked up and failed (or no NSS entry), which never grants a skip.
    looked_up: Option<Option<Vec<String>>>,
}

impl LazyGroups<'_> {
    fn get(&mut self, log: &mut dyn FnMut(Level, &str)) -> Option<&[String]> {
        if self.looked_up.is_none() {
            let found = match self.pw {
                Some(pw) => match self.sys.group_names(pw) {
                    Ok(g) => Some(g),
                    Err(e) => {
                        log(
                            Level::Err,
                            &format!(
                                "group lookup for {} failed ({e:?}); no group skip",
                                sanitize(self.user.as_bytes())
                            ),
                        );
                        None
                    }
                },
                None => None,
            };
            self.looked_up = Some(found);
        }
        self.looked_up.as_ref().and_then(|g| g.as_deref())
    }
}

fn access_rules(
    path: &str,
    opts: &ModuleOptions,
    groups: &mut LazyGroups<'_>,
    origin: Origin,
    log: &mut dyn FnMut(Level, &str),
) -> Option<String> {
    let shown = sanitize(path.as_bytes());
    // The rule file decides who skips the second factor: only root may write it.
    let mut rules = FileRules::new(vec![0]);
    rules.allowed_perm = 0o644;
    rules.max_size = MAX_ACCESS_FILE;
    let opened = match safefile::open_checked(Path::new(path), &rules) {
        Ok(f) => f,
        Err(e) => {
            log(
                Level::Err,
                &format!(
                    "access file {shown} unusable ({e:?}); the code is required for everybody"
                ),
            );
            return None;
        }
    };
    // Group items are written `(name)`: without a '(' the file has none, and the NSS
    // group lookup is skipped (passing no groups cannot add a skip).
    let user = groups.user;
    let groups = if opened.contents.contains(&b'(') {
        groups.get(log)
    } else {
        None
    };
    let subject = Subject {
        user,
        groups,
        origin,
    };
    let opts = ParseOptions {
        allow_any_network: opts.allow_any_network,
    };
    // The whole file is validated on every login; an error anywhere means no skips.
    let decision = match access::decide(&opened.contents, opts, &subject) {
        Ok(d) => d,
        Err(e) => {
            log(
                Level::Err,
                &format!("access file {shown}: {e}; the code is required for everybody"),
            );
            return None;
        }
    };
    match (decision.verdict, decision.matched) {
        (Verdict::Skip, Some(rule)) => Some(format!("access rule {shown}:{rule}")),
        _ => None,
    }
}
