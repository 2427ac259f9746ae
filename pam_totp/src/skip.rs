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
    let needs_groups = !opts.skip_groups.is_empty()
        || !opts.require_groups.is_empty()
        || opts.accessfile.is_some();
    if !needs_groups {
        return None;
    }
    // Rules name NSS's canonical name; a user NSS does not know is matched by the
    // validated PAM name and has no groups.
    let user = pw.map_or(name, |pw| pw.name.as_str());
    let groups = match pw {
        Some(pw) => match sys.group_names(pw) {
            Ok(g) => Some(g),
            Err(e) => {
                log(
                    Level::Err,
                    &format!(
                        "group lookup for {} failed ({e:?}); no group skip",
                        sanitize(user.as_bytes())
                    ),
                );
                None
            }
        },
        None => None,
    };
    if let Some(path) = &opts.accessfile {
        let origin = classify_origin(items.rhost, items.tty, items.service);
        if let Some(reason) = access_rules(path, opts, user, groups.as_deref(), origin, log) {
            return Some(reason);
        }
    }
    if (!opts.skip_groups.is_empty() || !opts.require_groups.is_empty())
        && let GroupDecision::Skip(reason) =
            group_skip_decision(groups.as_deref(), &opts.skip_groups, &opts.require_groups)
    {
        return Some(format!("group rule: {reason}"));
    }
    None
}

fn access_rules(
    path: &str,
    opts: &ModuleOptions,
    user: &str,
    groups: Option<&[String]>,
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
