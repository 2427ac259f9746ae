//! The skip decision of each audited account, made by the module's own function
//! (`totp_core::access::skip_decision`) on the module's reading of the rule file, so
//! the audit reports a skip exactly where a login gets one, and reports it gone where
//! a broken `accessfile=` bars it.

use std::collections::HashMap;
use std::path::Path;

use totp_core::access::{
    AccessRules, Groups, ParseOptions, RawSubject, RuleFile, SkipDecision, SkipVerdict, Subject,
    skip_decision,
};
use totp_core::addr::{self, Origin, OriginReason};
use totp_core::membership::{GroupEntry, Membership, Question};
use totp_core::options::ModuleOptions;
use totp_os::inspect::{Finding, Verdict};
use totp_os::nss::{self, Passwd};
use totp_os::safefile::{self, FileRules};

/// The service's skip options with its rule file read once, as a login reads it (as
/// root, the file and every directory above it checked: R21), and the group entries
/// asked so far (one lookup per group for the whole audit).
pub struct Skips<'a> {
    opts: &'a ModuleOptions,
    /// `None`: no `accessfile=`; `Err`: why the module refuses it.
    file: Option<Result<Vec<u8>, String>>,
    /// Each group's entry (`getgrnam`; `Err`: the lookup failed) with the time it
    /// took, once for the whole audit.
    groups: std::cell::RefCell<HashMap<String, Shared<Option<GroupEntry>>>>,
    /// The group of each name in every source (`Err`: a source did not answer), asked
    /// only for a non-membership, once per group.
    every_source: std::cell::RefCell<HashMap<String, Shared<Vec<GroupEntry>>>>,
    /// The names every source gives each gid (`Err`: a source did not answer), asked
    /// only for a non-membership, once per gid for the whole audit; an account's walk
    /// that ran out before it answered is not kept ([`shared`]).
    gid_names: std::cell::RefCell<HashMap<u32, Shared<Vec<String>>>>,
    /// Whether the service's logins can have an origin: su, sudo and the other
    /// identity switches never have one (`totp_core::addr::classify_origin_with_reason`).
    origins: bool,
}

impl<'a> Skips<'a> {
    pub fn new(opts: &'a ModuleOptions, service: &str) -> Skips<'a> {
        let (_, why) = addr::classify_origin_with_reason(None, None, Some(service.as_bytes()));
        let file = opts.accessfile.as_deref().map(|path| {
            safefile::open_checked(Path::new(path), &FileRules::access_rules_file())
                .map(|f| f.contents.to_vec())
                .map_err(|e| format!("access file {path} unusable ({e})"))
        });
        Skips {
            opts,
            file,
            groups: std::cell::RefCell::new(HashMap::new()),
            every_source: std::cell::RefCell::new(HashMap::new()),
            gid_names: std::cell::RefCell::new(HashMap::new()),
            origins: why != OriginReason::IdentitySwitchService,
        }
    }

    fn rule_file(&self) -> RuleFile<'_> {
        match &self.file {
            None => RuleFile::Unset,
            Some(Ok(text)) => RuleFile::Read(text),
            Some(Err(_)) => RuleFile::Unusable,
        }
    }

    /// Why the rule file bars every skip, if it does: the module's decision for any
    /// login (a refused or rejected file does not depend on who logs in).
    pub fn barred(&self) -> Option<String> {
        let nobody = Subject {
            user: "",
            groups: Groups::Unknown,
            origin: Origin::Unknown,
        };
        let SkipDecision::NoSkips(parse_error) =
            skip_decision(self.opts, self.rule_file(), &nobody)
        else {
            return None;
        };
        let path = self.opts.accessfile.as_deref().unwrap_or_default();
        Some(match (&self.file, parse_error) {
            (Some(Err(why)), _) => why.clone(),
            (_, Some(e)) => format!("access file {path}: {e}"),
            (_, None) => format!("access file {path} unusable"),
        })
    }

    /// The service-wide line of a rule file that bars every skip.
    pub fn barred_finding(&self) -> Option<Finding> {
        let why = self.barred()?;
        let grace = if self.opts.grace_period_secs > 0 {
            ", and grace_period= lets nobody in without it"
        } else {
            ""
        };
        Some(Finding {
            verdict: Verdict::Warning,
            reasons: vec![format!(
                "{why}: the module asks everybody for the code: no access rule, \
                 skip_group= or require_group= skips it{grace} (nullok still lets in an \
                 account without a secret file)"
            )],
        })
    }

    /// What a login of `pw` gets, `file` being what [`totp_os::inspect::inspect`]
    /// found for it: the skip (whatever the login's origin: the rules are evaluated
    /// with the origin unknown, and a rule that needs the origin never skips then), or
    /// the file's finding; under a rule file that bars skips, the finding says which
    /// group option no longer skips the account.
    /// The second value: whether it is a skip (the module returns `PAM_IGNORE` without
    /// asking for the code). The third: where the code is asked, the `+` rule that
    /// skips it for logins from some origins (an address or `LOCAL` item, which only
    /// "maybe" matches the unknown origin), as `FILE:RULE`.
    pub fn judged(
        &self,
        pw: &Passwd,
        file: impl FnOnce() -> Finding,
    ) -> (Finding, bool, Option<String>) {
        let lists = Lists::default();
        let ask = |group: &str, question: Question| self.membership(pw, group, question, &lists);
        let subject = Subject {
            user: &pw.name,
            groups: Groups::Each(&ask),
            origin: Origin::Unknown,
        };
        let path = self.opts.accessfile.as_deref().unwrap_or_default();
        let mut judged = self.judged_with(pw, &ask, &subject, path, file);
        // Why a membership stayed unknown, in the words the module logs it with.
        judged.0.reasons.extend(lists.why.take());
        judged
    }

    fn judged_with(
        &self,
        pw: &Passwd,
        ask: &dyn Fn(&str, Question) -> Membership,
        subject: &Subject<'_>,
        path: &str,
        file: impl FnOnce() -> Finding,
    ) -> (Finding, bool, Option<String>) {
        match skip_decision(self.opts, self.rule_file(), subject) {
            SkipDecision::Ask => {
                let sometimes = self.skips_some_origins(&pw.name, Groups::Each(ask));
                (file(), false, sometimes)
            }
            SkipDecision::Skip(reason) => {
                let mut reasons = vec![format!(
                    "the code is never asked for: {} (whatever the login's origin)",
                    reason.describe(path)
                )];
                let asked = file();
                reasons.extend(
                    asked
                        .reasons
                        .into_iter()
                        .map(|r| format!("were it asked: {}: {r}", asked.verdict)),
                );
                let finding = Finding {
                    verdict: Verdict::Warning,
                    reasons,
                };
                (finding, true, None)
            }
            SkipDecision::NoSkips(_) => {
                let mut finding = file();
                // The group options alone, as the module would decide them once the
                // rule file is fixed or removed.
                if let SkipDecision::Skip(reason) =
                    skip_decision(self.opts, RuleFile::Unset, subject)
                {
                    let why = self.barred().unwrap_or_default();
                    // Let in by the skip until now, denied from now on: a lockout the
                    // broken file makes, counted as a refusal (an account never
                    // enrolled and never skipped is not).
                    if finding.verdict == Verdict::NotEnrolled && !self.opts.nullok {
                        finding.verdict = Verdict::Refused;
                    }
                    finding.reasons.insert(
                        0,
                        format!(
                            "{why}: the code is asked for although {} would skip it",
                            reason.describe(path)
                        ),
                    );
                }
                (finding, false, None)
            }
        }
    }

    /// The first `+` rule that skips the code for logins from some origins, though not
    /// for an unknown one: a `+` rule the walk for an unknown origin passes over as a
    /// "maybe" because of its origin field, or one it reaches only past a `-` rule that
    /// only maybe matched because of its origin field. The module decides on that `-`
    /// for an unknown origin (the code is asked), but a login from an origin the `-`
    /// does not name goes on past it, as a `+` that maybe matched is passed over: such
    /// a `-` is blanked and the walk made again, until no such rule decides.
    fn skips_some_origins(&self, user: &str, groups: Groups<'_>) -> Option<String> {
        let Some(Ok(text)) = &self.file else {
            return None;
        };
        if !self.origins {
            return None;
        }
        let parse = ParseOptions {
            allow_any_network: self.opts.allow_any_network,
        };
        let path = self.opts.accessfile.as_deref().unwrap_or_default();
        // `+ : USERS : ORIGINS`: a maybe from the users field alone (a group the name
        // service does not answer for) is no question of origin.
        let by_origin = |rule: &str| {
            rule.splitn(3, ':')
                .nth(2)
                .is_some_and(|origins| origins.trim() != "ALL")
        };
        let mut text = text.clone();
        let mut past: Vec<String> = Vec::new();
        let since = |past: &[String]| {
            if past.is_empty() {
                String::new()
            } else {
                format!(" (for logins that {} does not match)", past.join(" and "))
            }
        };
        // Each round blanks the rule that decided the one before: the file's lines
        // bound the rounds.
        let lines = text.iter().filter(|&&b| b == b'\n').count() + 1;
        for _ in 0..=lines {
            let rules = AccessRules::parse(&text, parse).ok()?;
            let seen = rules.explain(&RawSubject {
                user,
                groups,
                rhost: None,
                tty: None,
                service: None,
            });
            if let Some(r) = seen.passed_over.iter().find(|r| by_origin(&r.text)) {
                return Some(format!("access rule {path}:{r}{}", since(&past)));
            }
            let decided = seen.decision.matched.as_ref()?;
            match seen.decision.verdict {
                SkipVerdict::Skip if !past.is_empty() => {
                    return Some(format!("access rule {path}:{decided}{}", since(&past)));
                }
                SkipVerdict::Require if seen.uncertain && by_origin(&decided.text) => {
                    past.push(format!("access rule {path}:{decided}"));
                    blank_line(&mut text, decided.line);
                }
                _ => return None,
            }
        }
        None
    }

    /// Membership as the module proves it (R22): the group's entry, then the account's
    /// group list where the entry alone proves nothing (`getgrouplist` alone for a
    /// question only a membership answers, as the module asks it).
    fn membership(
        &self,
        pw: &Passwd,
        group: &str,
        question: Question,
        lists: &Lists,
    ) -> Membership {
        // The login looks the group up by name for each question it asks of it (the
        // module keeps answers per group and question), and once its walk has begun
        // that time runs against the walk's deadline: a kept entry costs this account's
        // walk its time, once per question, as a fresh lookup would.
        let first_question = lists
            .questions
            .borrow_mut()
            .insert((group.to_owned(), question));
        let kept = self.groups.borrow().get(group).cloned();
        let looked_up = match kept {
            Some((entry, took)) => {
                if first_question && lists.sources.begun() {
                    // Past the deadline, the walk's next question says so.
                    let _ = lists.sources.spend(took);
                }
                entry
            }
            None => {
                let began = std::time::Instant::now();
                let entry = nss::lookup_group_by_name(group).map(|g| g.map(GroupEntry::from));
                self.groups
                    .borrow_mut()
                    .insert(group.to_owned(), (entry.clone(), began.elapsed()));
                entry
            }
        };
        // Why the membership stays unknown, in the module's words (its log line); the
        // account's own walk, as the login's.
        nss::prove_membership(
            question,
            pw,
            group,
            looked_up,
            || lists.lists.of(pw, &lists.sources, question),
            || {
                shared(
                    &self.every_source,
                    group.to_owned(),
                    &lists.sources,
                    (&lists.groups_asked, (group.to_owned(), question)),
                    || lists.sources.group(group),
                )
            },
            |gid| {
                shared(
                    &self.gid_names,
                    gid,
                    &lists.sources,
                    (&lists.gids_asked, gid),
                    || lists.sources.gid_names(gid),
                )
            },
            &nss::UnknownReasons {
                who: &pw.name,
                shown: group,
                show: &str::to_owned,
                note: &|why| lists.note(why),
            },
        )
    }
}

/// One account's group lists, each fetched once for the audit of that account, and the
/// sources asked one by one for them and for the names of its gids.
#[derive(Default)]
struct Lists {
    lists: nss::GroupLists,
    sources: nss::GroupSources,
    /// Why a membership stayed unknown, each once, for the account's reasons.
    why: std::cell::RefCell<Vec<String>>,
    /// The groups (per question: the module asks a group again for another question)
    /// and gids (once: the module keeps their names for the login) this account's walk
    /// has had answered (asked, or its time spent on another account's answer).
    groups_asked: std::cell::RefCell<std::collections::HashSet<(String, Question)>>,
    gids_asked: std::cell::RefCell<std::collections::HashSet<u32>>,
    /// The questions asked of each group for this account, each of which the login
    /// asks with a lookup of the group's entry of its own.
    questions: std::cell::RefCell<std::collections::HashSet<(String, Question)>>,
}

impl Lists {
    fn note(&self, why: String) {
        let mut notes = self.why.borrow_mut();
        if !notes.contains(&why) {
            notes.push(why);
        }
    }
}

/// Empties line `line` (1-based) of `text`, keeping its newline and so every other
/// line's number.
fn blank_line(text: &mut Vec<u8>, line: usize) {
    let mut n = 1;
    text.retain(|&b| {
        let keep = n != line || b == b'\n';
        if b == b'\n' {
            n += 1;
        }
        keep
    });
}

/// An answer kept for the other accounts of the audit, with the time it took.
type Shared<T> = (Result<T, nss::NssError>, std::time::Duration);

/// The answer `ask` gives for `key` on `sources` (the account's walk), kept in `known`
/// for every later account of the audit (`Err`: a source did not answer, and why),
/// except a walk's expired deadline: that is the asking account's walk (how many gids
/// it had asked before), and the next account's login, on a walk of its own, may well
/// get the answer. A kept answer costs each later account's walk the time it took the
/// first (R36): that account's login asks it too, and a directory slow for each gid
/// runs its walk past the deadline, where the code is asked (a lockout of an account
/// without a secret file and without nullok) however fast the audit found it. Once
/// per account and `asked` key (the keys this account's walk has had: a gid, asked
/// once per login however many rules need its names; a group with the question, as
/// the login asks a group again for each question), as the audit walks the rules more
/// than once.
fn shared<K: std::hash::Hash + Eq, A: std::hash::Hash + Eq, T: Clone>(
    known: &std::cell::RefCell<HashMap<K, Shared<T>>>,
    key: K,
    sources: &nss::GroupSources,
    (asked, asked_key): (&std::cell::RefCell<std::collections::HashSet<A>>, A),
    ask: impl FnOnce() -> Result<T, nss::NssError>,
) -> Result<T, nss::NssError> {
    if let Some((answer, took)) = known.borrow().get(&key) {
        if !asked.borrow().contains(&asked_key) {
            sources.spend(*took)?;
            asked.borrow_mut().insert(asked_key);
        }
        return answer.clone();
    }
    let began = std::time::Instant::now();
    let answer = ask();
    if !matches!(&answer, Err(e) if e.past_walk_deadline()) {
        asked.borrow_mut().insert(asked_key);
        known
            .borrow_mut()
            .insert(key, (answer.clone(), began.elapsed()));
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer kept from another account costs this account's walk its time once,
    /// however often its rules ask it (the login asks it once): a gid that took 6 s is
    /// in time on the second use too. Control: a second gid that took 6 s as well runs
    /// the walk past its 10 s deadline.
    #[test]
    fn a_kept_answer_costs_an_account_its_time_once() {
        let took = std::time::Duration::from_secs(6);
        let known = std::cell::RefCell::new(HashMap::from([
            (1u32, (Ok(vec!["one".to_owned()]), took)),
            (2u32, (Ok(vec!["two".to_owned()]), took)),
        ]));
        let sources = nss::GroupSources::new();
        let asked = std::cell::RefCell::new(std::collections::HashSet::new());
        let never = || -> Result<Vec<String>, nss::NssError> { unreachable!("kept") };
        for _ in 0..3 {
            assert_eq!(
                shared(&known, 1, &sources, (&asked, 1), never),
                Ok(vec!["one".to_owned()])
            );
        }
        let late = shared(&known, 2, &sources, (&asked, 2), never);
        assert!(
            late.as_ref().is_err_and(|e| e.past_walk_deadline()),
            "{late:?}"
        );
    }

    /// A group's answer costs the account's walk once per question asked of it, as the
    /// login asks the group again for each question: kept at 6 s, a second question
    /// runs the walk past its 10 s deadline. Control: the same question again is free.
    #[test]
    fn a_kept_group_costs_an_account_its_time_once_per_question() {
        let took = std::time::Duration::from_secs(6);
        let known = std::cell::RefCell::new(HashMap::from([(
            "g".to_owned(),
            (Ok(Vec::<GroupEntry>::new()), took),
        )]));
        let sources = nss::GroupSources::new();
        let asked = std::cell::RefCell::new(std::collections::HashSet::new());
        let never = || -> Result<Vec<GroupEntry>, nss::NssError> { unreachable!("kept") };
        let key = |q| (&asked, ("g".to_owned(), q));
        for _ in 0..3 {
            assert_eq!(
                shared(
                    &known,
                    "g".to_owned(),
                    &sources,
                    key(Question::IsMember),
                    never
                ),
                Ok(vec![])
            );
        }
        let late = shared(
            &known,
            "g".to_owned(),
            &sources,
            key(Question::MemberOrNot),
            never,
        );
        assert!(
            late.as_ref().is_err_and(|e| e.past_walk_deadline()),
            "{late:?}"
        );
    }
}
