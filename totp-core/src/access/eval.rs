//! Matching: the rules in order, first match wins, with three-valued items.

use super::{
    AccessError, AccessRules, Items, List, MatchedRule, OriginItem, ParseOptions, Rule,
    RuleDecision, SkipVerdict, Subject, UserItem, matched, parse, span_of, to_usize,
};
use crate::addr::{IpBits, Origin};
use crate::membership::Membership;

/// Three-valued match: `Maybe` when a needed fact (groups, peer address) is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tri {
    No,
    Yes,
    Maybe,
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No, _) | (_, Tri::No) => Tri::No,
            (Tri::Yes, Tri::Yes) => Tri::Yes,
            _ => Tri::Maybe,
        }
    }
}

fn bool_tri(b: bool) -> Tri {
    if b { Tri::Yes } else { Tri::No }
}

/// The login's origin as address items are compared with it: the address as an integer,
/// computed once per login rather than once per item.
#[derive(Clone, Copy, Debug)]
enum Peer {
    Address(IpBits),
    Local,
    Unknown,
}

impl From<Origin> for Peer {
    fn from(origin: Origin) -> Peer {
        match origin {
            Origin::Network(ip) => Peer::Address(IpBits::of(ip)),
            Origin::Local => Peer::Local,
            Origin::Unknown => Peer::Unknown,
        }
    }
}

/// What one rule means for one login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleMatch {
    /// Go on to the next rule.
    NoMatch,
    /// A `+` rule that maybe matches: go on, but the explain mode mentions it.
    PassedOver,
    /// This rule decides; `uncertain` when it only maybe matched (then it is a `-`).
    Decides {
        verdict: SkipVerdict,
        uncertain: bool,
    },
}

impl AccessRules<'_> {
    /// First match wins; no match requires the code. Allocates only for the deciding
    /// rule's text.
    pub fn evaluate(&self, subject: &Subject<'_>) -> RuleDecision {
        self.evaluate_with(subject, |_| {}).0
    }

    /// The walk over the rules. `passed_over` sees each `+` rule that maybe matched; the
    /// returned flag says the deciding rule only maybe matched.
    pub(super) fn evaluate_with(
        &self,
        subject: &Subject<'_>,
        mut passed_over: impl FnMut(MatchedRule),
    ) -> (RuleDecision, bool) {
        let login = Matcher::new(self.text, subject);
        for rule in &self.rules {
            match login.rule_match(&self.items, rule) {
                RuleMatch::NoMatch => {}
                RuleMatch::PassedOver => passed_over(matched(self.text, rule)),
                RuleMatch::Decides { verdict, uncertain } => {
                    let decision = RuleDecision {
                        verdict,
                        matched: Some(matched(self.text, rule)),
                    };
                    return (decision, uncertain);
                }
            }
        }
        (REQUIRE_BY_DEFAULT, false)
    }
}

/// No deciding rule means the code is required.
const REQUIRE_BY_DEFAULT: RuleDecision = RuleDecision {
    verdict: SkipVerdict::Require,
    matched: None,
};

/// [`super::decide`]: each rule is matched as the parser hands it over, then its items
/// are dropped; after the first decision the rest of the file is only validated.
pub(super) fn decide(
    text: &[u8],
    opts: ParseOptions,
    subject: &Subject<'_>,
) -> Result<RuleDecision, AccessError> {
    let login = Matcher::new(text, subject);
    let mut items = Items::default();
    let mut decided = None;
    parse::parse_each(text, opts, &mut items, |rule, items| {
        if decided.is_none()
            && let RuleMatch::Decides { verdict, .. } = login.rule_match(items, &rule)
        {
            decided = Some(RuleDecision {
                verdict,
                matched: Some(matched(text, &rule)),
            });
        }
        items.clear();
    })?;
    Ok(decided.unwrap_or(REQUIRE_BY_DEFAULT))
}

/// One login as the rules see it: the subject, and the peer address as an integer.
struct Matcher<'a> {
    /// The rule file, which name spans point into.
    text: &'a [u8],
    subject: &'a Subject<'a>,
    peer: Peer,
}

impl<'a> Matcher<'a> {
    fn new(text: &'a [u8], subject: &'a Subject<'a>) -> Matcher<'a> {
        Matcher {
            text,
            subject,
            peer: Peer::from(subject.origin),
        }
    }

    fn rule_match(&self, items: &Items, rule: &Rule) -> RuleMatch {
        // Origins first: they need no outside facts and are cheap, and a rule whose
        // origins do not match never asks about the user's groups.
        let origin = list_match(&items.origins, rule.origins, |item| {
            origin_item_match(item, self.peer)
        });
        if origin == Tri::No {
            return RuleMatch::NoMatch;
        }
        let users = list_match(&items.users, rule.users, |item| self.user_item_match(item));
        let verdict = if rule.skip {
            SkipVerdict::Skip
        } else {
            SkipVerdict::Require
        };
        match (origin.and(users), rule.skip) {
            (Tri::No, _) => RuleMatch::NoMatch,
            (Tri::Maybe, true) => RuleMatch::PassedOver,
            (Tri::Yes, _) => RuleMatch::Decides {
                verdict,
                uncertain: false,
            },
            (Tri::Maybe, false) => RuleMatch::Decides {
                verdict,
                uncertain: true,
            },
        }
    }

    fn user_item_match(&self, item: &UserItem) -> Tri {
        match *item {
            UserItem::All => Tri::Yes,
            UserItem::Name(span) => {
                let name = span_of(self.text, span);
                let user = self.subject.user.as_bytes();
                if name == user {
                    Tri::Yes
                } else if name.eq_ignore_ascii_case(user) {
                    // pam_access compares names without case, so a file written for it
                    // may spell `Alice` for the account `alice`: such a rule may still
                    // require the code, but never skips it (nor excepts from a skip).
                    Tri::Maybe
                } else {
                    Tri::No
                }
            }
            UserItem::Group(span) => {
                // Group names are printable ASCII (checked by the parser).
                let group = std::str::from_utf8(span_of(self.text, span)).unwrap_or("");
                match self.subject.groups.membership(group) {
                    Membership::Member => Tri::Yes,
                    Membership::NotMember => Tri::No,
                    Membership::Unknown => Tri::Maybe,
                }
            }
        }
    }
}

fn origin_item_match(item: &OriginItem, peer: Peer) -> Tri {
    match (item, peer) {
        (OriginItem::All, _) => Tri::Yes,
        (OriginItem::Local, Peer::Local) => Tri::Yes,
        (OriginItem::Local, Peer::Address(_)) => Tri::No,
        // Not local enough to skip the code, but pam_access counts every login without
        // PAM_RHOST (sudo or su inside SSH included) as LOCAL, so a `- : ... : LOCAL` rule
        // or an `EXCEPT LOCAL` written for it must still keep the code for them.
        (OriginItem::Local, Peer::Unknown) => Tri::Maybe,
        (OriginItem::Network(net), Peer::Address(ip)) => bool_tri(net.contains_bits(ip)),
        (OriginItem::Network(_), Peer::Local) => Tri::No,
        // A host name might stand for an address inside the network.
        (OriginItem::Network(_), Peer::Unknown) => Tri::Maybe,
    }
}

/// pam_access list semantics, one level: (any include item) and not (any except item).
/// Items are asked in order and no further than needed, so a group is looked up only
/// when the walk reaches it.
fn list_match<T>(items: &[T], list: List, item_match: impl Fn(&T) -> Tri) -> Tri {
    let any = |from: u32, to: u32| {
        let mut result = Tri::No;
        for item in items.get(to_usize(from)..to_usize(to)).unwrap_or(&[]) {
            match item_match(item) {
                Tri::Yes => return Tri::Yes,
                Tri::Maybe => result = Tri::Maybe,
                Tri::No => {}
            }
        }
        result
    };
    let include = any(list.start, list.except);
    if include == Tri::No {
        return Tri::No;
    }
    match (include, any(list.except, list.end)) {
        (_, Tri::Yes) => Tri::No,
        (Tri::Yes, Tri::No) => Tri::Yes,
        _ => Tri::Maybe,
    }
}
