//! The module's whole skip decision: the rule file, then `skip_group=` /
//! `require_group=`. One description for the module and for `totp-state audit`, so the
//! audit cannot report a skip (or the absence of one) that a login would not get.

use super::{AccessError, MatchedRule, ParseOptions, SkipVerdict, Subject, decide};
use super::{GroupDecision, GroupSkipReason, group_skip_decision};
use crate::options::ModuleOptions;

/// `accessfile=` as the caller could read it, with the module's checks on the file
/// and every directory above it (R21).
#[derive(Clone, Copy, Debug)]
pub enum RuleFile<'a> {
    /// No `accessfile=`.
    Unset,
    /// The file's contents, read under those checks.
    Read(&'a [u8]),
    /// Set, but refused or unreadable (the caller knows why and says it).
    Unusable,
}

/// What skipped the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A `+` rule of the rule file.
    Rule(MatchedRule),
    /// `skip_group=` or `require_group=`.
    Group(GroupSkipReason),
}

/// The outcome of [`skip_decision`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipDecision {
    /// A rule positively matched: the code is not asked for (`PAM_IGNORE`).
    Skip(SkipReason),
    /// Nothing skips; the other ways past the code (the grace period) stay open.
    Ask,
    /// `accessfile=` is set but unusable (`None`) or rejected by the parser: the code is
    /// required for everybody, so nothing else may skip it either (R21): not
    /// `skip_group=`, not `require_group=`, not the grace period. `nullok` for a user
    /// without a secret is no skip rule and still applies.
    NoSkips(Option<AccessError>),
}

impl SkipReason {
    /// The reason in words, `file` being how the rule file is to be named (the module
    /// escapes it for its log).
    pub fn describe(&self, file: &str) -> String {
        match self {
            SkipReason::Rule(rule) => format!("access rule {file}:{rule}"),
            SkipReason::Group(reason) => format!("group rule: {reason}"),
        }
    }
}

/// Whether `subject` skips the code under the options `opts`, with the rule file as
/// `file` says it was read. The rule file comes first (its first matching rule; the
/// whole file is validated); only when no rule skips are the group options asked. Groups
/// are asked about only as far as a rule being evaluated needs them.
pub fn skip_decision(
    opts: &ModuleOptions,
    file: RuleFile<'_>,
    subject: &Subject<'_>,
) -> SkipDecision {
    match file {
        RuleFile::Unset => {}
        RuleFile::Unusable => return SkipDecision::NoSkips(None),
        RuleFile::Read(text) => {
            let parse = ParseOptions {
                allow_any_network: opts.allow_any_network,
            };
            match decide(text, parse, subject) {
                Err(e) => return SkipDecision::NoSkips(Some(e)),
                Ok(d) => {
                    if let (SkipVerdict::Skip, Some(rule)) = (d.verdict, d.matched) {
                        return SkipDecision::Skip(SkipReason::Rule(rule));
                    }
                }
            }
        }
    }
    if opts.skip_groups.is_empty() && opts.require_groups.is_empty() {
        return SkipDecision::Ask;
    }
    match group_skip_decision(subject.groups, &opts.skip_groups, &opts.require_groups) {
        GroupDecision::Skip(reason) => SkipDecision::Skip(SkipReason::Group(reason)),
        GroupDecision::Require => SkipDecision::Ask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Groups;
    use crate::addr::Origin;

    fn opts(args: &[&str]) -> ModuleOptions {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        ModuleOptions::parse(&args).expect("options")
    }

    fn wheel_member(file: RuleFile<'_>, args: &[&str]) -> SkipDecision {
        let groups = ["wheel".to_owned()];
        let subject = Subject {
            user: "alice",
            groups: Groups::Complete(&groups),
            origin: Origin::Unknown,
        };
        skip_decision(&opts(args), file, &subject)
    }

    #[test]
    fn a_broken_rule_file_bars_the_group_skip_a_usable_one_does_not() {
        let skip = ["skip_group=wheel", "accessfile=/etc/x"];
        let by_group = SkipDecision::Skip(SkipReason::Group(GroupSkipReason::InSkipGroup(
            "wheel".to_owned(),
        )));
        assert_eq!(
            wheel_member(RuleFile::Read(b"- : ALL : ALL\n"), &skip),
            by_group
        );
        assert_eq!(wheel_member(RuleFile::Unset, &skip), by_group);
        assert_eq!(
            wheel_member(RuleFile::Unusable, &skip),
            SkipDecision::NoSkips(None)
        );
        let malformed = wheel_member(RuleFile::Read(b"+ : ALL : 10.0.0.0/33\n"), &skip);
        assert!(
            matches!(malformed, SkipDecision::NoSkips(Some(ref e)) if e.line == Some(1)),
            "{malformed:?}"
        );
        // A rule that needs the origin does not skip a login of unknown origin; one
        // for every origin does, before the group options are asked.
        let none = ["accessfile=/etc/x"];
        assert_eq!(
            wheel_member(RuleFile::Read(b"+ : ALL : LOCAL\n"), &none),
            SkipDecision::Ask
        );
        let all = wheel_member(RuleFile::Read(b"+ : alice : ALL\n"), &skip);
        assert!(
            matches!(&all, SkipDecision::Skip(r) if r.describe("F") == "access rule F:line 1: + : alice : ALL"),
            "{all:?}"
        );
    }
}
