//! `totp-enroll explain`: which access rule decides a login, and why.
//!
//! The decision comes from `totp_core::access`, the same code the module runs,
//! so the answer cannot drift from what a real login would get.

use std::cell::RefCell;

use serde::Serialize;
use totp_core::access::{
    self, AccessRules, Explanation, Groups, MatchedRule, ParseOptions, RawSubject, SkipVerdict,
};
use totp_core::addr::Origin;
use totp_core::membership::{GroupEntry, Membership, Question};
use totp_os::nss;
use totp_os::safefile::{self, FileError, FileRules};

use crate::args::ExplainArgs;
use crate::error::Error;

pub fn run(args: ExplainArgs) -> Result<u8, Error> {
    let path = std::path::absolute(&args.accessfile)
        .map_err(|e| Error::failed(format!("\"{}\": {e}", args.accessfile.display())))?;
    let mut refused_by_module = None;
    // The module's own rules: only root can change the file or a directory above it.
    let text = match safefile::open_checked(&path, &FileRules::access_rules_file()) {
        Ok(opened) => opened.contents.to_vec(),
        // A draft the module would refuse is still worth explaining, with a warning
        // (read with its parent directory checked only, as any file the caller reads).
        Err(
            e @ (FileError::BadOwner { .. }
            | FileError::BadMode { .. }
            | FileError::UnsafeDirectory { .. }),
        ) => {
            let warning = format!(
                "the module would refuse \"{}\" ({e}) and require the code for everybody",
                path.display()
            );
            if !args.json {
                crate::flow::print_stdout(&format!("warning: {warning}\n"))?;
            }
            refused_by_module = Some(warning);
            let mut draft = FileRules::new(vec![current_uid(), 0]);
            draft.allowed_perm = 0o777;
            draft.max_size = access::MAX_FILE_BYTES;
            safefile::open_checked(&path, &draft)
                .map_err(|e| Error::failed(format!("\"{}\": {e}", path.display())))?
                .contents
                .to_vec()
        }
        Err(e) => return Err(Error::failed(format!("\"{}\": {e}", path.display()))),
    };
    let opts = ParseOptions {
        allow_any_network: args.allow_any_network,
    };
    let parsed = AccessRules::parse(&text, opts).map_err(|e| {
        // allow_any_network is the one module option that changes what the parser
        // accepts: a file only it lets through most likely comes with a module line
        // that has it, and the flag was left off.
        let hint = if !args.allow_any_network
            && AccessRules::parse(
                &text,
                ParseOptions {
                    allow_any_network: true,
                },
            )
            .is_ok()
        {
            " (give --allow-any-network if the module line has allow_any_network)"
        } else {
            ""
        };
        Error::failed(format!(
            "\"{}\" is rejected, so the module requires the code for everybody: {e}{hint}",
            path.display()
        ))
    })?;
    for w in group_name_warnings(&text) {
        let line = format!("warning: access file {} {w}\n", path.display());
        // The JSON object's fields are fixed; a tool reads this from standard error.
        if args.json {
            crate::error::to_stderr(&line);
        } else {
            crate::flow::print_stdout(&line)?;
        }
    }

    // As the module resolves the login (R8): a name it denies is not explained as
    // another account's.
    let pw = nss::lookup_login_user(&args.user)
        .map_err(|e| Error::failed(format!("\"{}\": {e}", args.user)))?
        .ok_or_else(|| Error::failed(format!("no such user {:?}", args.user)))?;
    // Groups are proven one at a time exactly as the module does: a failed or
    // incomplete lookup leaves a (group) item undecided, and the explanation says so.
    // The user's group lists and the sources asked one by one: one walk for every
    // (group) item, as a login makes.
    let sources = nss::GroupSources::new();
    let lists = nss::GroupLists::new();
    // Every group the decision asked about, in order, with what could be proven.
    let asked: RefCell<Vec<GroupJson>> = RefCell::new(Vec::new());
    // Only the rule file is explained, and its `(group)` items ask
    // `Question::MemberOrNot`, the question `list` (every source's) is for.
    // As the module keeps them for one login: each group's answer per question (a
    // rule file naming a group twice asks it once) and each gid's names (`sources`
    // keeps those); asked again,
    // they would spend the walk's time twice, and a slow directory would run it out
    // where the login proves the membership.
    let known: RefCell<Vec<(String, Question, Membership)>> = RefCell::new(Vec::new());
    let ask = |group: &str, question: Question| {
        if let Some((_, _, m)) = known
            .borrow()
            .iter()
            .find(|(g, q, _)| g == group && *q == question)
        {
            return *m;
        }
        // As the module proves it: a non-membership needs the name in every source,
        // asked on the account's one walk, and why a membership stays unknown is said
        // in the module's words (its log line).
        let who = pw.name.escape_debug().to_string();
        let shown = group.escape_debug().to_string();
        let why = RefCell::new(Vec::new());
        let entry = nss::lookup_group_by_name(group).map(|g| g.map(GroupEntry::from));
        let m = nss::prove_membership(
            question,
            &pw,
            group,
            entry,
            || lists.of(&pw, &sources, question),
            || sources.group(group),
            |gid| sources.gid_names(gid),
            &nss::UnknownReasons {
                who: &who,
                shown: &shown,
                show: &|s| s.escape_debug().to_string(),
                note: &|r| why.borrow_mut().push(r),
            },
        );
        asked.borrow_mut().push(GroupJson {
            name: group.to_owned(),
            membership: match m {
                Membership::Member => "member",
                Membership::NotMember => "not a member",
                Membership::Unknown => "unknown",
            },
            unknown_because: why.take(),
        });
        known.borrow_mut().push((group.to_owned(), question, m));
        m
    };
    let items = RawSubject {
        user: &pw.name,
        groups: Groups::Each(&ask),
        // No --rhost: a console login, which has no PAM_RHOST at all.
        rhost: args.rhost.as_deref().map(str::as_bytes),
        tty: args.tty.as_deref().map(str::as_bytes),
        service: args.service.as_deref().map(str::as_bytes),
    };
    let explanation = parsed.explain(&items);
    let groups = asked.take();
    if args.json {
        let json = ExplainJson::new(&args, &path, &groups, &explanation, refused_by_module);
        crate::flow::print_stdout(&crate::output::to_json_line(&json)?)?;
    } else if refused_by_module.is_some() {
        // The rules get no say while the module refuses the file: their skip would tell
        // the opposite of a real login. What they decide is kept, as what they would
        // decide once the file is accepted.
        let rules_part: String = explanation
            .to_string()
            .lines()
            .filter(|l| !l.starts_with("verdict:"))
            .map(|l| format!("{l}\n"))
            .collect();
        crate::flow::print_stdout(&format!(
            "{rules_part}verdict: {} (the module refuses the file; once it accepts it, \
             these rules say {})\n",
            SkipVerdict::Require,
            verdict_name(explanation.decision.verdict)
        ))?;
    } else {
        crate::flow::print_stdout(&format!("{explanation}\n"))?;
    }
    if !args.json {
        for why in groups.iter().flat_map(|g| &g.unknown_because) {
            crate::flow::print_stdout(&format!("unknown: {why}\n"))?;
        }
    }
    Ok(0)
}

fn verdict_name(v: SkipVerdict) -> &'static str {
    match v {
        SkipVerdict::Skip => "skip",
        SkipVerdict::Require => "require",
    }
}

/// The bare names (user items, not `ALL`, `EXCEPT` or a `(group)`) of a rule file that
/// [`AccessRules::parse`] accepted, each with its line, in order. Only a validated file
/// comes here, so its rule lines are printable `permission : users : origins`.
fn bare_user_names(text: &[u8]) -> Vec<(usize, &str)> {
    let mut names = Vec::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let Ok(line) = std::str::from_utf8(raw) else {
            // Only a comment may hold other bytes.
            continue;
        };
        let line = line.trim_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some(users) = line.split(':').nth(1) else {
            continue;
        };
        names.extend(
            users
                .split([' ', '\t', ','])
                .filter(|t| !t.is_empty() && !matches!(*t, "ALL" | "EXCEPT") && !t.starts_with('('))
                .map(|t| (i + 1, t)),
        );
    }
    names
}

/// For each bare name in the users field of a rule that names no user but a group (the
/// first line it is on): pam_access without `nodefgroup` also matches a bare name as a
/// group, so `- : wheel : ALL` copied from access.conf meant wheel's members; pam_totp
/// matches a bare name as a user only, so such a rule treats them like anyone else (and
/// after `EXCEPT` does not except them). A name whose lookups fail is passed over. The
/// CLI's advice only: the module never looks. At most [`MAX_NAMES_LOOKED_UP`] names
/// are looked up (two name-service lookups each, against a file of up to 100,000 rules).
pub fn group_name_warnings(text: &[u8]) -> Vec<String> {
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut warnings = Vec::new();
    for (line, name) in bare_user_names(text) {
        if seen.contains(name) {
            continue;
        }
        if seen.len() == MAX_NAMES_LOOKED_UP {
            warnings.push(format!(
                "line {line}: names from here on not checked for groups (the first \
                 {MAX_NAMES_LOOKED_UP} were)"
            ));
            break;
        }
        seen.insert(name);
        if let (Ok(None), Ok(Some(_))) = (
            nss::lookup_user_by_name(name),
            nss::lookup_group_by_name(name),
        ) {
            warnings.push(format!(
                "line {line}: {name} is a group, not a user: a bare name matches only the \
                 user of that name (pam_access without nodefgroup would also match the \
                 group's members), so this rule treats the group's members like anyone \
                 else, and after EXCEPT does not except them; write ({name}) for the group"
            ));
        }
    }
    warnings
}

/// Distinct bare names [`group_name_warnings`] looks up.
const MAX_NAMES_LOOKED_UP: usize = 1000;

/// The rule file at `path` (`accessfile=`) as the module reads it, or why the module
/// would require the code for everybody because of it: refused by the same checks the
/// module makes, or by its parser.
pub fn read_rule_file(path: &std::path::Path, allow_any_network: bool) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let opened = safefile::open_checked(path, &FileRules::access_rules_file())
        .map_err(|e| format!("access file {shown} unusable ({e})"))?;
    AccessRules::parse(&opened.contents, ParseOptions { allow_any_network })
        .map_err(|e| format!("access file {shown}: {e}"))?;
    Ok(opened.contents.to_vec())
}

/// `explain --json`: the same decision as the text, in fields a tool can test.
#[derive(Serialize)]
struct ExplainJson<'a> {
    action: &'static str,
    accessfile: &'a std::path::Path,
    /// Why the module would refuse the file itself (then it requires the code
    /// for everybody, whatever the rules say); null when the file is accepted.
    module_refuses_file: Option<String>,
    user: &'a str,
    /// The groups the decision looked up (only those a rule reached), each with
    /// what the name service could prove.
    groups: &'a [GroupJson],
    rhost: Option<&'a str>,
    tty: Option<&'a str>,
    service: Option<&'a str>,
    /// "network", "local" or "unknown".
    origin: &'static str,
    /// The address, for a network origin.
    address: Option<String>,
    origin_reason: String,
    /// What a login gets: "skip" (the code is not asked for) or "require"; always
    /// "require" when the module refuses the file.
    verdict: &'static str,
    /// What the rules decide ("skip" or "require"): the verdict once the module
    /// accepts the file. Differs from `verdict` only while it refuses it.
    rules_verdict: &'static str,
    /// The rule deciding `rules_verdict`; null when none matched (the code is then
    /// required).
    rule: Option<RuleJson<'a>>,
    /// The deciding rule only maybe matched, and counts as matching because it
    /// requires the code.
    uncertain: bool,
    /// `+` rules that might match but were passed over (a skip needs certainty).
    passed_over: Vec<RuleJson<'a>>,
    passed_over_total: usize,
}

#[derive(Serialize)]
struct GroupJson {
    name: String,
    /// "member", "not a member" or "unknown" (a lookup failed or was incomplete).
    membership: &'static str,
    /// Why a source could not answer, for an unknown membership: the module's log
    /// line. Empty otherwise.
    unknown_because: Vec<String>,
}

#[derive(Serialize)]
struct RuleJson<'a> {
    line: usize,
    text: &'a str,
}

impl<'a> RuleJson<'a> {
    fn of(rule: &'a MatchedRule) -> RuleJson<'a> {
        RuleJson {
            line: rule.line,
            text: &rule.text,
        }
    }
}

impl<'a> ExplainJson<'a> {
    fn new(
        args: &'a ExplainArgs,
        path: &'a std::path::Path,
        groups: &'a [GroupJson],
        e: &'a Explanation,
        module_refuses_file: Option<String>,
    ) -> ExplainJson<'a> {
        let (origin, address) = match e.origin {
            Origin::Network(ip) => ("network", Some(ip.to_string())),
            Origin::Local => ("local", None),
            Origin::Unknown => ("unknown", None),
        };
        let verdict = if module_refuses_file.is_some() {
            verdict_name(SkipVerdict::Require)
        } else {
            verdict_name(e.decision.verdict)
        };
        ExplainJson {
            action: "explain",
            accessfile: path,
            module_refuses_file,
            user: &e.user,
            groups,
            rhost: e.rhost.as_deref(),
            tty: args.tty.as_deref(),
            service: args.service.as_deref(),
            origin,
            address,
            origin_reason: e.origin_reason.to_string(),
            verdict,
            rules_verdict: verdict_name(e.decision.verdict),
            rule: e.decision.matched.as_ref().map(RuleJson::of),
            uncertain: e.uncertain,
            passed_over: e.passed_over.iter().map(RuleJson::of).collect(),
            passed_over_total: e.passed_over_total,
        }
    }
}

fn current_uid() -> u32 {
    crate::host::caller().uid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_are_the_user_items_that_are_not_keywords_or_groups() {
        let text = b"# - : commented : ALL\n\
            # any bytes in a comment: \xff\n\
            - : wheel,alice\tbob : ALL\r\n\
            \n\
            + : ALL EXCEPT (admins) carol : 10.0.0.0/8 fe80::1\n\
            \t+ : (staff) : LOCAL\n";
        assert!(AccessRules::parse(text, ParseOptions::default()).is_ok());
        assert_eq!(
            bare_user_names(text),
            [(3, "wheel"), (3, "alice"), (3, "bob"), (5, "carol")]
        );
    }
}
