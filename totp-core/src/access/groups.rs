//! The user's groups as the rules see them, and `skip_group=` / `require_group=`.

use std::fmt;

use crate::membership::{Membership, Question};

/// The user's groups as far as they are known (see [`crate::membership`]).
#[derive(Clone, Copy)]
pub enum Groups<'a> {
    /// Every group of the user by name, from an answer known to be complete: a group
    /// not listed is one the user is not in. Test-only: the module and the CLI ask group
    /// by group ([`Groups::Each`]).
    #[cfg(any(test, feature = "test-support"))]
    Complete(&'a [String]),
    /// Asked group by group, only for the groups a rule being evaluated names (the
    /// module asks the name service about each such group once), with what the rule
    /// needs to know.
    Each(&'a dyn Fn(&str, Question) -> Membership),
    /// Nothing is known (failed lookup, or no account): every `(group)` item is
    /// undecidable.
    Unknown,
}

impl Groups<'_> {
    /// Membership of one group, a non-membership proven where it can be.
    pub fn membership(&self, group: &str) -> Membership {
        self.answer(group, Question::MemberOrNot)
    }

    /// Whether membership of one group is proven (a non-membership is not sought).
    pub fn is_member(&self, group: &str) -> bool {
        self.answer(group, Question::IsMember) == Membership::Member
    }

    fn answer(&self, group: &str, question: Question) -> Membership {
        match self {
            #[cfg(any(test, feature = "test-support"))]
            Groups::Complete(names) if names.iter().any(|g| g == group) => Membership::Member,
            #[cfg(any(test, feature = "test-support"))]
            Groups::Complete(_) => Membership::NotMember,
            Groups::Each(ask) => ask(group, question),
            Groups::Unknown => Membership::Unknown,
        }
    }
}

impl fmt::Debug for Groups<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(any(test, feature = "test-support"))]
            Groups::Complete(names) => f.debug_tuple("Complete").field(names).finish(),
            Groups::Each(_) => f.write_str("Each(..)"),
            Groups::Unknown => f.write_str("Unknown"),
        }
    }
}

/// Why [`group_skip_decision`] skipped the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupSkipReason {
    /// The user is a member of this `skip_group`.
    InSkipGroup(String),
    /// `require_group` is set and the user is in none of those groups.
    NotInRequireGroups,
}

impl fmt::Display for GroupSkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupSkipReason::InSkipGroup(g) => {
                write!(f, "member of skip group {}", g.escape_debug())
            }
            GroupSkipReason::NotInRequireGroups => f.write_str("member of no require group"),
        }
    }
}

/// Outcome of `skip_group=` / `require_group=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupDecision {
    /// Do not ask for the code (`PAM_IGNORE`).
    Skip(GroupSkipReason),
    /// Group options do not excuse this user.
    Require,
}

/// Decides `skip_group=` and `require_group=` from the user's groups (primary and
/// supplementary, from NSS).
///
/// A skip group skips only on proven membership; `require_group` skips only when the
/// user is proven to be in none of its groups (R22): a failed, partial or unresolvable
/// lookup requires the code. Membership of a skip group wins over `require_group`.
/// Empty option lists skip nobody. Groups are asked about in order and no further than
/// needed.
pub fn group_skip_decision(
    groups: Groups<'_>,
    skip_groups: &[String],
    require_groups: &[String],
) -> GroupDecision {
    if let Some(g) = skip_groups.iter().find(|g| groups.is_member(g)) {
        return GroupDecision::Skip(GroupSkipReason::InSkipGroup(g.clone()));
    }
    if !require_groups.is_empty()
        && require_groups
            .iter()
            .all(|g| groups.membership(g) == Membership::NotMember)
    {
        return GroupDecision::Skip(GroupSkipReason::NotInRequireGroups);
    }
    GroupDecision::Require
}
