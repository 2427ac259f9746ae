//! The explain mode: the same walk as a login, with what it saw along the way.

use std::fmt;

use super::{AccessRules, Groups, MatchedRule, RawSubject, RuleDecision, Subject};
use crate::addr::{self, Origin, OriginReason};

/// The explain mode lists at most this many rules it passed over.
const MAX_PASSED_OVER: usize = 20;

impl AccessRules<'_> {
    /// Explains the decision for a login given as raw PAM items.
    pub fn explain(&self, items: &RawSubject<'_>) -> Explanation {
        let (origin, origin_reason) =
            addr::classify_origin_with_reason(items.rhost, items.tty, items.service);
        let subject = Subject {
            user: items.user,
            groups: items.groups,
            origin,
        };
        let mut passed_over = Vec::new();
        let mut passed_over_total = 0usize;
        let (decision, uncertain) = self.evaluate_with(&subject, |rule| {
            passed_over_total += 1;
            if passed_over.len() < MAX_PASSED_OVER {
                passed_over.push(rule);
            }
        });
        Explanation {
            user: items.user.to_owned(),
            groups_known: !matches!(items.groups, Groups::Unknown),
            rhost: items.rhost.map(|r| String::from_utf8_lossy(r).into_owned()),
            origin,
            origin_reason,
            decision,
            uncertain,
            passed_over,
            passed_over_total,
        }
    }
}

/// What the explain mode reports; `Display` renders it for the admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The user as given.
    pub user: String,
    /// Whether the group list was available.
    pub groups_known: bool,
    /// `PAM_RHOST` as given (lossy UTF-8), if set.
    pub rhost: Option<String>,
    /// How the login was classified.
    pub origin: Origin,
    /// Why.
    pub origin_reason: OriginReason,
    /// The decision, exactly as [`AccessRules::evaluate`] returns it.
    pub decision: RuleDecision,
    /// The deciding `-` rule only maybe matched (missing groups or peer address).
    pub uncertain: bool,
    /// `+` rules that maybe matched and were passed over (first few).
    pub passed_over: Vec<MatchedRule>,
    /// How many such rules there were in total.
    pub passed_over_total: usize,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "user:    {}", self.user.escape_debug())?;
        if !self.groups_known {
            writeln!(
                f,
                "groups:  unknown (lookup failed): (group) items cannot match"
            )?;
        }
        match &self.rhost {
            Some(r) => writeln!(f, "rhost:   \"{}\"", r.escape_debug())?,
            None => writeln!(f, "rhost:   (not set)")?,
        }
        writeln!(f, "origin:  {} ({})", self.origin, self.origin_reason)?;
        for rule in &self.passed_over {
            writeln!(
                f,
                "passed:  {rule} (might match, but a skip needs certainty)"
            )?;
        }
        if self.passed_over_total > self.passed_over.len() {
            writeln!(
                f,
                "passed:  ... and {} more",
                self.passed_over_total - self.passed_over.len()
            )?;
        }
        match &self.decision.matched {
            Some(rule) if self.uncertain => writeln!(
                f,
                "rule:    {rule} (might match; treated as matching because it requires the code)"
            )?,
            Some(rule) => writeln!(f, "rule:    {rule}")?,
            None => writeln!(
                f,
                "rule:    none matched (the default is to require the code)"
            )?,
        }
        write!(f, "verdict: {}", self.decision.verdict)
    }
}
