//! Access rules ("skip the code from the LAN") and the group skip decision.
//!
//! # Rule file
//!
//! A subset of the `access.conf` syntax of pam_access, one rule per line:
//!
//! ```text
//! # permission : users : origins
//! + : ALL : 10.0.0.0/24
//! + : ALL : LOCAL
//! - : ALL : ALL
//! ```
//!
//! - `+` skips the code (the module returns `PAM_IGNORE`), `-` requires it.
//! - Users: `ALL`, user names, `(group)`. Origins: `ALL`, `LOCAL`, IPv4/IPv6 addresses
//!   and CIDR networks (see [`crate::addr`]). In both lists one `EXCEPT` splits the list
//!   into an include part and an exception part, as in pam_access; list items are
//!   separated by spaces, tabs or commas (pam_access's default `listsep`).
//! - The first rule that matches decides. No matching rule means the code is required.
//! - Blank lines and lines whose first non-blank character is `#` are ignored.
//!
//! Everything else pam_access accepts is a parse error, not "no match": host names,
//! `.domain`, `@netgroup`, `user@host`, tty names, partial addresses (`192.168.`),
//! nested `EXCEPT`, lowercase keywords. A rejected file must mean "the code is required
//! for everybody" to the caller; the error names the line so the log can too.
//!
//! # Matching when facts are missing
//!
//! A `(group)` item cannot be decided when the NSS group lookup failed, and an address
//! item cannot be decided for an [`Origin::Unknown`] peer (a host name in `PAM_RHOST`).
//! Such a rule "maybe matches". A `-` rule that maybe matches decides "require"; a `+`
//! rule that maybe matches is passed over. So the result is "skip" only if it would be
//! "skip" whatever the missing facts are. `ALL` needs no facts: in the origins field it
//! matches every origin, an unresolved host name included, because the admin wrote it.
//!
//! User names are compared exactly: the caller passes the NSS `pw_name`, never the raw
//! `PAM_USER`, so that `Root` cannot slip past `ALL EXCEPT root`.

use std::fmt;

use crate::addr::{self, IpNetwork, NetworkError, Origin, OriginReason};
use crate::membership::Membership;

/// A rule file larger than this is refused outright.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// A longer line is refused (pam_access reads lines into a `BUFSIZ` buffer).
pub const MAX_LINE_BYTES: usize = 8192;
/// More rules than this are refused.
pub const MAX_RULES: usize = 100_000;

/// Longest user or group name accepted in a rule (as for `PAM_USER`).
const MAX_NAME_BYTES: usize = 256;
/// Offending tokens are quoted in errors; keep log lines short.
const MAX_QUOTED_BYTES: usize = 64;
/// The explain mode lists at most this many rules it passed over.
const MAX_PASSED_OVER: usize = 20;

/// Options for [`AccessRules::parse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// Accept `/0` networks (`0.0.0.0/0`, `::/0`) in the origins of a `+` rule. Off by
    /// default: such a rule skips the code for a whole address family.
    pub allow_any_network: bool,
}

/// Why a rule file was refused. Any error means: require the code for everybody.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessError {
    /// 1-based line number; `None` when the file as a whole is at fault (size).
    pub line: Option<usize>,
    /// What is wrong, quoting at most a short, printable part of the line.
    pub message: String,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AccessError {}

/// The outcome of the access rules for one login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Do not ask for the code: the module returns `PAM_IGNORE` (never `PAM_SUCCESS`).
    Skip,
    /// Ask for the code.
    Require,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Skip => "skip: the code is not asked for (PAM_IGNORE)",
            Verdict::Require => "require: the code is asked for",
        })
    }
}

/// The rule that decided, for logs and the explain mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchedRule {
    /// 1-based line number in the file.
    pub line: usize,
    /// The rule as written, without surrounding blanks.
    pub text: String,
}

impl fmt::Display for MatchedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.text)
    }
}

/// Verdict plus the deciding rule (`None`: no rule matched, so the code is required).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Skip or require.
    pub verdict: Verdict,
    /// The deciding rule, if any.
    pub matched: Option<MatchedRule>,
}

/// Who is logging in and from where.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The NSS `pw_name` of the target user.
    pub user: &'a str,
    /// What is known about the user's groups; an unknown membership makes a `(group)`
    /// item undecidable.
    pub groups: Groups<'a>,
    /// From [`addr::classify_origin`].
    pub origin: Origin,
}

/// The user's groups as far as they are known (see [`crate::membership`]).
#[derive(Clone, Copy)]
pub enum Groups<'a> {
    /// Every group of the user by name, from an answer known to be complete: a group
    /// not listed is one the user is not in.
    Complete(&'a [String]),
    /// Asked group by group, only for the groups a rule being evaluated names (the
    /// module asks the name service about each such group once).
    Each(&'a dyn Fn(&str) -> Membership),
    /// Nothing is known (failed lookup, or no account): every `(group)` item is
    /// undecidable.
    Unknown,
}

impl Groups<'_> {
    /// Membership of one group.
    pub fn membership(&self, group: &str) -> Membership {
        match self {
            Groups::Complete(names) if names.iter().any(|g| g == group) => Membership::Member,
            Groups::Complete(_) => Membership::NotMember,
            Groups::Each(ask) => ask(group),
            Groups::Unknown => Membership::Unknown,
        }
    }
}

impl fmt::Debug for Groups<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Groups::Complete(names) => f.debug_tuple("Complete").field(names).finish(),
            Groups::Each(_) => f.write_str("Each(..)"),
            Groups::Unknown => f.write_str("Unknown"),
        }
    }
}

impl<'a> From<Option<&'a [String]>> for Groups<'a> {
    fn from(groups: Option<&'a [String]>) -> Self {
        groups.map_or(Groups::Unknown, Groups::Complete)
    }
}

/// The raw PAM items the explain mode starts from.
#[derive(Clone, Copy, Debug)]
pub struct LoginItems<'a> {
    /// The NSS `pw_name` of the target user.
    pub user: &'a str,
    /// As in [`Subject::groups`].
    pub groups: Groups<'a>,
    /// `PAM_RHOST`.
    pub rhost: Option<&'a [u8]>,
    /// `PAM_TTY`.
    pub tty: Option<&'a [u8]>,
    /// `PAM_SERVICE`.
    pub service: Option<&'a [u8]>,
}

/// A parsed, validated rule file.
///
/// All rules share three flat vectors (rule text, user items, origin items), so parsing
/// a large file costs a handful of allocations rather than several per rule. To decide
/// one login straight from the file bytes, [`decide`] avoids even those.
#[derive(Clone, Debug, Default)]
pub struct AccessRules {
    /// The rule lines (trimmed), concatenated.
    text: String,
    rules: Vec<Rule>,
    items: Items,
}

/// Items of all rules parsed so far; a rule's lists index into these.
#[derive(Clone, Debug, Default)]
struct Items {
    users: Vec<UserItem>,
    origins: Vec<OriginItem>,
}

/// Byte range. `u32` keeps rules small; `MAX_FILE_BYTES` keeps every offset far below
/// `u32::MAX`.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
}

/// Item ranges of one list: `start..except` is the include part, `except..end` the
/// exception part (empty without `EXCEPT`).
#[derive(Clone, Copy, Debug)]
struct List {
    start: u32,
    except: u32,
    end: u32,
}

/// One rule without its text: permission and item ranges in [`Items`].
#[derive(Clone, Copy, Debug)]
struct Shape {
    skip: bool,
    users: List,
    origins: List,
}

#[derive(Clone, Copy, Debug)]
struct Rule {
    line: u32,
    /// In `AccessRules::text`.
    text: Span,
    shape: Shape,
}

/// Names are spans of the rule's own (trimmed) text.
#[derive(Clone, Copy, Debug)]
enum UserItem {
    All,
    Name(Span),
    Group(Span),
}

#[derive(Clone, Copy, Debug)]
enum OriginItem {
    All,
    Local,
    Network(IpNetwork),
}

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

/// What one rule means for one login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Go on to the next rule.
    NoMatch,
    /// A `+` rule that maybe matches: go on, but the explain mode mentions it.
    PassedOver,
    /// This rule decides; `uncertain` when it only maybe matched (then it is a `-`).
    Decides { verdict: Verdict, uncertain: bool },
}

fn to_u32(n: usize) -> u32 {
    // Unreachable saturation: every count and offset is bounded by MAX_FILE_BYTES.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn span_of(text: &str, span: Span) -> &str {
    text.get(to_usize(span.start)..to_usize(span.end))
        .unwrap_or("")
}

/// Decides one login straight from the rule file: the same result as
/// [`AccessRules::parse`] followed by [`AccessRules::evaluate`], and the whole file is
/// still validated, but nothing is kept, so memory stays flat however long the file is.
/// This is the per-authentication path.
pub fn decide(
    text: &[u8],
    opts: ParseOptions,
    subject: &Subject<'_>,
) -> Result<Decision, AccessError> {
    check_file(text)?;
    // One rule's items at a time: the vectors grow to the longest rule and are reused.
    let mut items = Items::default();
    let mut first = FirstMatch::default();
    for_each_rule(text, opts, &mut items, |line_no, line, shape, items| {
        first.see(line_no, line, shape, items, subject)
    })?;
    Ok(first.decision())
}

/// The per-rule bookkeeping of [`decide`]: the rule cap, and the first rule that decides.
#[derive(Default)]
struct FirstMatch {
    rules: usize,
    decided: Option<Decision>,
}

impl FirstMatch {
    /// Takes one parsed rule (its items in `items`, cleared afterwards for the next).
    fn see(
        &mut self,
        line_no: usize,
        line: &str,
        shape: Shape,
        items: &mut Items,
        subject: &Subject<'_>,
    ) -> Result<(), AccessError> {
        self.rules += 1;
        if self.rules > MAX_RULES {
            return Err(too_many_rules(line_no));
        }
        if self.decided.is_none()
            && let Outcome::Decides { verdict, .. } = items.outcome(shape, line, subject)
        {
            self.decided = Some(Decision {
                verdict,
                matched: Some(MatchedRule {
                    line: line_no,
                    text: line.to_owned(),
                }),
            });
        }
        items.users.clear();
        items.origins.clear();
        Ok(())
    }

    /// No deciding rule means the code is required.
    fn decision(self) -> Decision {
        self.decided.unwrap_or(Decision {
            verdict: Verdict::Require,
            matched: None,
        })
    }
}

fn check_file(text: &[u8]) -> Result<(), AccessError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(AccessError {
            line: None,
            message: format!("file larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    // One memchr over the file; the line is searched for only on failure.
    if text.contains(&0) {
        let before_nul = text.split(|&b| b == 0).next().unwrap_or(&[]);
        let line = before_nul.iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(AccessError {
            line: Some(line),
            message: "NUL byte".to_owned(),
        });
    }
    Ok(())
}

/// Parses every line and calls `rule` for each rule with its 1-based line number, its
/// trimmed text and its shape, whose items are the last ones in `items`.
///
/// The file is validated as UTF-8 once, so every line is already a `&str` and the
/// scanner never checks a line again. `str::split` finds newlines with memchr.
fn for_each_rule<'t>(
    text: &'t [u8],
    opts: ParseOptions,
    items: &mut Items,
    mut rule: impl FnMut(usize, &'t str, Shape, &mut Items) -> Result<(), AccessError>,
) -> Result<(), AccessError> {
    match std::str::from_utf8(text) {
        Ok(s) => {
            // A plain loop rather than `str::split`: rule lines are short, and the
            // iterator's searcher state, kept in memory, cost more than the search.
            let mut rest = s;
            let mut index = 0;
            loop {
                let newline = rest.bytes().position(|b| b == b'\n');
                let (line, next) = match newline {
                    Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i + 1..)),
                    None => (rest, None),
                };
                each_line(index, line.as_bytes(), Some(line), opts, items, &mut rule)?;
                match next {
                    Some(next) => rest = next,
                    None => break,
                }
                index += 1;
            }
        }
        // Only a comment may hold bytes that are not UTF-8 (a Latin-1 note, say): check
        // each line of such a file on its own, so the rules around it stay on the fast
        // path. A rule line that is not UTF-8 goes to the exact parser, which refuses it.
        Err(_) => {
            for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
                let line = std::str::from_utf8(raw).ok();
                each_line(index, raw, line, opts, items, &mut rule)?;
            }
        }
    }
    Ok(())
}

/// The body of [`for_each_rule`]'s loops. Inlined so that the parsed line and its shape
/// stay in registers: returned through memory, they stall store forwarding (perf).
#[inline(always)]
fn each_line<'t>(
    index: usize,
    raw: &'t [u8],
    line: Option<&'t str>,
    opts: ParseOptions,
    items: &mut Items,
    rule: &mut impl FnMut(usize, &'t str, Shape, &mut Items) -> Result<(), AccessError>,
) -> Result<(), AccessError> {
    let line_no = index + 1;
    match parse_line(raw, line, opts, items).map_err(at(line_no))? {
        Some((line, shape)) => rule(line_no, line, shape, items),
        None => Ok(()),
    }
}

fn at(line: usize) -> impl FnOnce(String) -> AccessError {
    move |message| AccessError {
        line: Some(line),
        message,
    }
}

fn too_many_rules(line: usize) -> AccessError {
    AccessError {
        line: Some(line),
        message: format!("more than {MAX_RULES} rules"),
    }
}

impl AccessRules {
    /// Parses a rule file. Any error rejects the whole file.
    pub fn parse(text: &[u8], opts: ParseOptions) -> Result<AccessRules, AccessError> {
        check_file(text)?;
        let mut out = AccessRules {
            // Rule text never exceeds the file: one allocation for the arena.
            text: String::with_capacity(text.len()),
            ..AccessRules::default()
        };
        let AccessRules {
            text: arena,
            rules,
            items,
        } = &mut out;
        for_each_rule(text, opts, items, |line_no, line, shape, _| {
            if rules.len() == MAX_RULES {
                return Err(too_many_rules(line_no));
            }
            let start = to_u32(arena.len());
            arena.push_str(line);
            rules.push(Rule {
                line: to_u32(line_no),
                text: Span {
                    start,
                    end: to_u32(arena.len()),
                },
                shape,
            });
            Ok(())
        })?;
        Ok(out)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every login then requires the code).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// First match wins; no match requires the code. Allocates only for the deciding
    /// rule's text.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Decision {
        self.evaluate_with(subject, |_| {}).0
    }

    /// Explains the decision for a login given as raw PAM items.
    pub fn explain(&self, items: &LoginItems<'_>) -> Explanation {
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

    /// Core loop. `passed_over` sees each `+` rule that maybe matched; the returned flag
    /// says the deciding rule only maybe matched.
    fn evaluate_with(
        &self,
        subject: &Subject<'_>,
        mut passed_over: impl FnMut(MatchedRule),
    ) -> (Decision, bool) {
        for rule in &self.rules {
            let text = span_of(&self.text, rule.text);
            match self.items.outcome(rule.shape, text, subject) {
                Outcome::NoMatch => {}
                Outcome::PassedOver => passed_over(self.matched(rule)),
                Outcome::Decides { verdict, uncertain } => {
                    let decision = Decision {
                        verdict,
                        matched: Some(self.matched(rule)),
                    };
                    return (decision, uncertain);
                }
            }
        }
        let decision = Decision {
            verdict: Verdict::Require,
            matched: None,
        };
        (decision, false)
    }

    fn matched(&self, rule: &Rule) -> MatchedRule {
        MatchedRule {
            line: to_usize(rule.line),
            text: span_of(&self.text, rule.text).to_owned(),
        }
    }
}

impl Items {
    /// `text` is the rule's own text, which user and group spans point into.
    fn outcome(&self, shape: Shape, text: &str, subject: &Subject<'_>) -> Outcome {
        // Origins first: they rarely involve a missing fact and are cheap.
        let origin = list_match(&self.origins, shape.origins, |item| {
            origin_item_match(*item, subject.origin)
        });
        if origin == Tri::No {
            return Outcome::NoMatch;
        }
        let users = list_match(&self.users, shape.users, |item| {
            user_item_match(*item, text, subject)
        });
        let verdict = if shape.skip {
            Verdict::Skip
        } else {
            Verdict::Require
        };
        match (origin.and(users), shape.skip) {
            (Tri::No, _) => Outcome::NoMatch,
            (Tri::Maybe, true) => Outcome::PassedOver,
            (Tri::Yes, _) => Outcome::Decides {
                verdict,
                uncertain: false,
            },
            (Tri::Maybe, false) => Outcome::Decides {
                verdict,
                uncertain: true,
            },
        }
    }
}

fn user_item_match(item: UserItem, text: &str, subject: &Subject<'_>) -> Tri {
    match item {
        UserItem::All => Tri::Yes,
        UserItem::Name(span) => bool_tri(span_of(text, span) == subject.user),
        UserItem::Group(span) => match subject.groups.membership(span_of(text, span)) {
            Membership::Member => Tri::Yes,
            Membership::NotMember => Tri::No,
            Membership::Unknown => Tri::Maybe,
        },
    }
}

fn origin_item_match(item: OriginItem, origin: Origin) -> Tri {
    match (item, origin) {
        (OriginItem::All, _) => Tri::Yes,
        (OriginItem::Local, o) => bool_tri(o == Origin::Local),
        (OriginItem::Network(net), Origin::Network(ip)) => bool_tri(net.contains(ip)),
        (OriginItem::Network(_), Origin::Local) => Tri::No,
        // A host name might stand for an address inside the network.
        (OriginItem::Network(_), Origin::Unknown) => Tri::Maybe,
    }
}

/// pam_access list semantics, one level: (any include item) and not (any except item).
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

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_blank_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_list_separator(b: u8) -> bool {
    is_blank(b) || b == b','
}

/// Quotes part of a token for an error message; rule lines are printable ASCII, so this
/// cannot smuggle control characters into a log line.
fn quote(token: &str) -> String {
    let mut s: String = token.chars().take(MAX_QUOTED_BYTES).collect();
    if token.len() > MAX_QUOTED_BYTES {
        s.push_str("...");
    }
    format!("\"{s}\"")
}

/// Items of a list with their byte offsets inside it.
fn list_items(list: &str) -> impl Iterator<Item = (usize, &str)> {
    let bytes = list.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while bytes.get(i).copied().is_some_and(is_list_separator) {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i;
        while bytes.get(i).is_some_and(|&b| !is_list_separator(b)) {
            i += 1;
        }
        list.get(start..i).map(|item| (start, item))
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$'))
}

/// A keyword in the wrong case would silently become a user called "all"; refuse it.
fn is_miscased_keyword(token: &str) -> bool {
    matches!(token.len(), 3 | 5 | 6)
        && ["ALL", "EXCEPT", "LOCAL"]
            .iter()
            .any(|k| token.eq_ignore_ascii_case(k) && token != *k)
}

/// Parses one line. Blank lines and comments give `None`; a rule gives its trimmed text
/// and its shape, whose items were appended to `items`.
///
/// `line` is `raw` as text when it is UTF-8. The one-pass [`scan_line`] takes every line
/// it can; the rest (errors, and anything unusual) is rolled back and re-read by
/// [`parse_line_exact`], whose verdict and error message stand. So the scanner only has
/// to be right about what it accepts, which the property tests hold it to.
#[inline(always)]
fn parse_line<'t>(
    raw: &'t [u8],
    line: Option<&'t str>,
    opts: ParseOptions,
    items: &mut Items,
) -> Result<Option<(&'t str, Shape)>, String> {
    let (users, origins) = (items.users.len(), items.origins.len());
    if let Some(parsed) = line.and_then(|line| scan_line(line, opts, items)) {
        return Ok(parsed);
    }
    items.users.truncate(users);
    items.origins.truncate(origins);
    parse_line_exact(raw, opts, items, addr::parse_network)
}

/// Byte classes for [`scan_line`]: one table look-up per byte tells everything the
/// scanner needs, instead of a chain of comparisons per byte and per purpose.
const BLANK: u8 = 1;
const COMMA: u8 = 2;
const COLON: u8 = 4;
/// `[A-Za-z0-9._$-]`, the bytes of a user or group name (see [`valid_name`]).
const NAME: u8 = 8;
/// Printable ASCII but space (`u8::is_ascii_graphic`); blanks are the only other
/// bytes a rule may hold.
const GRAPHIC: u8 = 16;
/// List items are separated by spaces, tabs or commas.
const SEPARATOR: u8 = BLANK | COMMA;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < table.len() {
        // In range: `i` < 256.
        let b = i as u8;
        let mut class = 0;
        if b == b' ' || b == b'\t' {
            class |= BLANK;
        }
        if b == b',' {
            class |= COMMA;
        }
        if b == b':' {
            class |= COLON;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$') {
            class |= NAME;
        }
        if b.is_ascii_graphic() {
            class |= GRAPHIC;
        }
        table[i] = class;
        i += 1;
    }
    table
};

fn class_of(b: u8) -> u8 {
    CLASSES[usize::from(b)]
}

/// The fast path of [`parse_line`]: the usual rule line in one pass over its bytes.
/// `None` means "not accepted here" (an error, or a line the scanner leaves to
/// [`parse_line_exact`]); then `items` may hold a partial rule, which the caller drops.
///
/// The scanner's functions are all inlined into the line loop: their small results,
/// returned through memory, stalled store forwarding on this per-line path (perf).
#[inline(always)]
fn scan_line<'t>(
    raw: &'t str,
    opts: ParseOptions,
    items: &mut Items,
) -> Option<Option<(&'t str, Shape)>> {
    if raw.len() > MAX_LINE_BYTES {
        return None;
    }
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    let bytes = raw.as_bytes();
    let Some(first) = bytes.iter().position(|&b| !is_blank(b)) else {
        return Some(None);
    };
    if bytes.get(first) == Some(&b'#') {
        return Some(None);
    }
    // Some, since `first` is not blank; usually the very last byte.
    let last = bytes.iter().rposition(|&b| !is_blank(b))?;
    let line = raw.get(first..=last)?;
    let shape = scan_rule(line, opts, items)?;
    Some(Some((line, shape)))
}

/// `line` is trimmed and not a comment. Every byte is looked at once: the separators
/// are found, each item is classified as its bytes go by, and anything that is neither a
/// separator nor printable ASCII ends the scan.
#[inline(always)]
fn scan_rule(line: &str, opts: ParseOptions, items: &mut Items) -> Option<Shape> {
    let b = line.as_bytes();
    // The permission is exactly `+` or `-`, then optional blanks, then the first colon.
    let skip = match b.first()? {
        b'+' => true,
        b'-' => false,
        _ => return None,
    };
    let mut i = 1;
    while b.get(i).is_some_and(|&c| is_blank(c)) {
        i += 1;
    }
    if b.get(i) != Some(&b':') {
        return None;
    }
    let (users, i) = scan_users(line, i + 1, &mut items.users)?;
    let origins = scan_origins(line, i, skip, opts, &mut items.origins)?;
    Some(Shape {
        skip,
        users,
        origins,
    })
}

/// One list item from `i` (not a separator) to the next separator, or to a colon when
/// `stop` has [`COLON`]. Returns its end and the AND of its bytes' classes, so the
/// caller knows at once whether it is all name bytes and all printable.
#[inline(always)]
fn scan_item(b: &[u8], mut i: usize, stop: u8) -> (usize, u8) {
    let mut all = u8::MAX;
    while let Some(&byte) = b.get(i) {
        let class = class_of(byte);
        if class & stop != 0 {
            break;
        }
        all &= class;
        i += 1;
    }
    (i, all)
}

/// The users field from `i` to the second colon; returns the list and where the origins
/// field starts. Accepts what [`user_list`] accepts and refuses (`None`) the rest.
#[inline(always)]
fn scan_users(line: &str, mut i: usize, out: &mut Vec<UserItem>) -> Option<(List, usize)> {
    let b = line.as_bytes();
    let start = to_u32(out.len());
    let mut except = None;
    loop {
        // Running out of line before the second colon is a shape error.
        let class = class_of(*b.get(i)?);
        if class & SEPARATOR != 0 {
            i += 1;
            continue;
        }
        if class & COLON != 0 {
            let list = scan_close(start, except, out.len())?;
            return Some((list, i + 1));
        }
        let from = i;
        let (end, all) = scan_item(b, i, SEPARATOR | COLON);
        i = end;
        if all & GRAPHIC == 0 {
            return None;
        }
        let token = line.get(from..end)?;
        let item = if all & NAME != 0 {
            match token {
                "ALL" => UserItem::All,
                "EXCEPT" => {
                    scan_except(&mut except, out.len(), start)?;
                    continue;
                }
                // LOCAL belongs in the origins field; the rest are invalid names.
                "LOCAL" => return None,
                _ if token.len() > MAX_NAME_BYTES
                    || token.starts_with('-')
                    || is_miscased_keyword(token) =>
                {
                    return None;
                }
                _ => UserItem::Name(Span {
                    start: to_u32(from),
                    end: to_u32(end),
                }),
            }
        } else {
            // Besides names, a users field holds only `(group)`.
            let name = token.strip_prefix('(')?.strip_suffix(')')?;
            if !valid_name(name) {
                return None;
            }
            UserItem::Group(Span {
                start: to_u32(from + 1),
                end: to_u32(end - 1),
            })
        };
        out.push(item);
    }
}

/// The origins field from `i` to the end of the line. Accepts what [`origin_list`]
/// accepts and refuses (`None`) the rest.
#[inline(always)]
fn scan_origins(
    line: &str,
    mut i: usize,
    skip: bool,
    opts: ParseOptions,
    out: &mut Vec<OriginItem>,
) -> Option<List> {
    let b = line.as_bytes();
    let start = to_u32(out.len());
    let mut except = None;
    while let Some(&byte) = b.get(i) {
        if class_of(byte) & SEPARATOR != 0 {
            i += 1;
            continue;
        }
        // Only the include part of a skip rule widens who skips the code.
        let widens_skip = skip && except.is_none();
        let allow_zero = opts.allow_any_network || !widens_skip;
        // The common item, an IPv4 address or network, is read as it is scanned.
        if byte.is_ascii_digit()
            && let Some((net, len)) = addr::scan_ipv4_network(b.get(i..)?, allow_zero)
            && b.get(i + len).is_none_or(|&c| class_of(c) & SEPARATOR != 0)
        {
            out.push(OriginItem::Network(net));
            i += len;
            continue;
        }
        let from = i;
        // Colons are part of IPv6 items here: a third field is an invalid address.
        let (end, all) = scan_item(b, i, SEPARATOR);
        i = end;
        if all & GRAPHIC == 0 {
            return None;
        }
        let item = match line.get(from..end)? {
            "ALL" => OriginItem::All,
            "LOCAL" => OriginItem::Local,
            "EXCEPT" => {
                scan_except(&mut except, out.len(), start)?;
                continue;
            }
            // Whatever parses as a network starts with a digit or holds a colon, so the
            // "looks numeric" gate of `parse_origin_network` only shapes its messages.
            token => OriginItem::Network(addr::parse_network(token, allow_zero).ok()?),
        };
        out.push(item);
    }
    scan_close(start, except, out.len())
}

/// [`mark_except`] without the message.
fn scan_except(except: &mut Option<u32>, here: usize, start: u32) -> Option<()> {
    let here = to_u32(here);
    if except.is_some() || here == start {
        return None;
    }
    *except = Some(here);
    Some(())
}

/// [`close_list`] without the message.
fn scan_close(start: u32, except: Option<u32>, end: usize) -> Option<List> {
    let end = to_u32(end);
    if end == start || except == Some(end) {
        return None;
    }
    Some(List {
        start,
        except: except.unwrap_or(end),
        end,
    })
}

/// How the exact parser reads a network: [`addr::parse_network`], or in the tests the
/// `std`-based implementation it replaced.
type NetworkParser = fn(&str, bool) -> Result<IpNetwork, NetworkError>;

/// The line parser the scanner falls back to: every check in its own pass, with an
/// error message for each. It is also what the property tests compare the scanner with.
fn parse_line_exact<'t>(
    raw: &'t [u8],
    opts: ParseOptions,
    items: &mut Items,
    parse_network: NetworkParser,
) -> Result<Option<(&'t str, Shape)>, String> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(format!("line longer than {MAX_LINE_BYTES} bytes"));
    }
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Some(first) = raw.iter().position(|&b| !is_blank(b)) else {
        return Ok(None);
    };
    if raw.get(first) == Some(&b'#') {
        return Ok(None);
    }
    if !raw.iter().all(|&b| b.is_ascii_graphic() || is_blank(b)) {
        return Err(
            "rules may contain only printable ASCII (comments may hold anything)".to_owned(),
        );
    }
    let line = std::str::from_utf8(raw)
        .map_err(|_| "invalid text".to_owned())?
        .trim_matches(is_blank_char);
    parse_rule(line, opts, items, parse_network).map(|shape| Some((line, shape)))
}

fn parse_rule(
    line: &str,
    opts: ParseOptions,
    items: &mut Items,
    parse_network: NetworkParser,
) -> Result<Shape, String> {
    const SHAPE: &str = "expected \"permission : users : origins\"";
    let (perm, rest) = split_colon(line).ok_or(SHAPE)?;
    let (users, origins) = split_colon(rest).ok_or(SHAPE)?;
    let skip = match perm.trim_matches(is_blank_char) {
        "+" => true,
        "-" => false,
        other => {
            return Err(format!(
                "permission must be \"+\" or \"-\", not {}",
                quote(other)
            ));
        }
    };
    let users = user_list(users, perm.len() + 1, &mut items.users)?;
    let origins = origin_list(origins, skip, opts, &mut items.origins, parse_network)?;
    Ok(Shape {
        skip,
        users,
        origins,
    })
}

/// `str::split_once` costs a searcher set-up per call; fields are a few bytes long.
fn split_colon(s: &str) -> Option<(&str, &str)> {
    let i = s.bytes().position(|b| b == b':')?;
    Some((s.get(..i)?, s.get(i + 1..)?))
}

/// `offset`: where the field starts in the rule text, for name spans.
fn user_list(field: &str, offset: usize, out: &mut Vec<UserItem>) -> Result<List, String> {
    let start = to_u32(out.len());
    let mut except = None;
    for (at, token) in list_items(field) {
        let span = |from: usize, len: usize| Span {
            start: to_u32(offset + at + from),
            end: to_u32(offset + at + from + len),
        };
        let item = match token {
            "ALL" => UserItem::All,
            "EXCEPT" => {
                mark_except(&mut except, out.len(), start, "users")?;
                continue;
            }
            "LOCAL" => return Err("LOCAL belongs in the origins field".to_owned()),
            // Plain names first: the common case, checked in one pass over the token.
            _ if valid_name(token) && !is_miscased_keyword(token) => {
                UserItem::Name(span(0, token.len()))
            }
            _ if token.starts_with('(') && token.ends_with(')') => {
                let name = token.get(1..token.len() - 1).unwrap_or("");
                if !valid_name(name) {
                    return Err(format!("invalid group item {}", quote(token)));
                }
                UserItem::Group(span(1, name.len()))
            }
            _ if is_miscased_keyword(token) => {
                return Err(format!("keywords are uppercase: {}", quote(token)));
            }
            _ if token.contains('@') => {
                return Err(format!(
                    "netgroups and user@host are not supported: {}",
                    quote(token)
                ));
            }
            _ => return Err(format!("invalid user name {}", quote(token))),
        };
        out.push(item);
    }
    close_list(start, except, out.len(), "users")
}

fn origin_list(
    field: &str,
    skip: bool,
    opts: ParseOptions,
    out: &mut Vec<OriginItem>,
    parse_network: NetworkParser,
) -> Result<List, String> {
    let start = to_u32(out.len());
    let mut except = None;
    for (_, token) in list_items(field) {
        let item = match token {
            "ALL" => OriginItem::All,
            "LOCAL" => OriginItem::Local,
            "EXCEPT" => {
                mark_except(&mut except, out.len(), start, "origins")?;
                continue;
            }
            _ => {
                // Only the include part of a skip rule widens who skips the code.
                let widens_skip = skip && except.is_none();
                let allow_zero = opts.allow_any_network || !widens_skip;
                OriginItem::Network(parse_origin_network(token, allow_zero, parse_network)?)
            }
        };
        out.push(item);
    }
    close_list(start, except, out.len(), "origins")
}

fn mark_except(
    except: &mut Option<u32>,
    here: usize,
    start: u32,
    field: &str,
) -> Result<(), String> {
    if except.is_some() {
        return Err(format!("only one EXCEPT is allowed in the {field} field"));
    }
    if to_u32(here) == start {
        return Err(format!("EXCEPT needs items before it in the {field} field"));
    }
    *except = Some(to_u32(here));
    Ok(())
}

fn close_list(start: u32, except: Option<u32>, end: usize, field: &str) -> Result<List, String> {
    let end = to_u32(end);
    if end == start {
        return Err(format!("empty {field} field"));
    }
    if except == Some(end) {
        return Err(format!("EXCEPT needs items after it in the {field} field"));
    }
    Ok(List {
        start,
        except: except.unwrap_or(end),
        end,
    })
}

fn parse_origin_network(
    token: &str,
    allow_zero: bool,
    parse_network: NetworkParser,
) -> Result<IpNetwork, String> {
    let looks_numeric = token
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b':')
        || token.contains(':');
    if !looks_numeric {
        let why = if is_miscased_keyword(token) {
            "keywords are uppercase"
        } else if token.starts_with('.') {
            "domain suffixes are not supported (no DNS); use addresses or CIDRs"
        } else if token.contains('@') {
            "netgroups are not supported"
        } else {
            "host names and tty names are not supported (no DNS); use addresses, CIDRs or LOCAL"
        };
        return Err(format!("{why}: {}", quote(token)));
    }
    parse_network(token, allow_zero).map_err(|e| {
        let hint = match e {
            NetworkError::InvalidAddress if token.ends_with('.') => {
                " (partial addresses are not supported; write a CIDR such as 192.168.0.0/16)"
            }
            NetworkError::ZeroPrefix => " (set the module option that allows any network)",
            _ => "",
        };
        format!("{}: {e}{hint}", quote(token))
    })
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
    pub decision: Decision,
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
    if let Some(g) = skip_groups
        .iter()
        .find(|g| groups.membership(g) == Membership::Member)
    {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::classify_origin;

    const FIELD_EXAMPLE: &str = "+ : ALL : 10.0.0.0/24\n+ : ALL : LOCAL\n- : ALL : ALL\n";

    fn parse(text: &str) -> AccessRules {
        match AccessRules::parse(text.as_bytes(), ParseOptions::default()) {
            Ok(rules) => rules,
            Err(e) => panic!("{text:?} should parse: {e}"),
        }
    }

    fn owned(groups: &[&str]) -> Vec<String> {
        groups.iter().map(|g| (*g).to_owned()).collect()
    }

    /// One login: user, groups (`None` = NSS failure), PAM_RHOST, PAM_TTY, PAM_SERVICE.
    struct Login {
        user: &'static str,
        groups: Option<&'static [&'static str]>,
        rhost: Option<&'static str>,
        tty: Option<&'static str>,
        service: Option<&'static str>,
    }

    const fn from(rhost: &'static str) -> Login {
        Login {
            user: "alice",
            groups: Some(&[]),
            rhost: Some(rhost),
            tty: Some("ssh"),
            service: Some("sshd"),
        }
    }

    const fn console(tty: &'static str, service: &'static str) -> Login {
        Login {
            user: "alice",
            groups: Some(&[]),
            rhost: None,
            tty: Some(tty),
            service: Some(service),
        }
    }

    impl Login {
        const fn user(mut self, user: &'static str) -> Login {
            self.user = user;
            self
        }
        const fn groups(mut self, groups: Option<&'static [&'static str]>) -> Login {
            self.groups = groups;
            self
        }
    }

    fn decide_login(text: &str, login: &Login) -> (Verdict, Option<usize>) {
        let rules = parse(text);
        let groups = login.groups.map(owned);
        let subject = Subject {
            user: login.user,
            groups: groups.as_deref().into(),
            origin: classify_origin(
                login.rhost.map(str::as_bytes),
                login.tty.map(str::as_bytes),
                login.service.map(str::as_bytes),
            ),
        };
        let decision = rules.evaluate(&subject);
        let streamed = decide(text.as_bytes(), ParseOptions::default(), &subject);
        assert_eq!(
            streamed.as_ref(),
            Ok(&decision),
            "decide agrees with evaluate"
        );
        (decision.verdict, decision.matched.map(|m| m.line))
    }

    use Verdict::{Require, Skip};

    #[test]
    fn decision_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, Login, Verdict, Option<usize>)] = &[
            // J1, J2, J3: canonicalisation of mapped addresses only.
            ("J1", "+ : ALL : 10.0.0.0/8", from("10.1.2.3"), Skip, Some(1)),
            ("J2 dotted", "+ : ALL : 10.0.0.0/8", from("::ffff:10.1.2.3"), Skip, Some(1)),
            ("J2 hex", "+ : ALL : 10.0.0.0/8", from("::ffff:a01:203"), Skip, Some(1)),
            ("J3", "+ : ALL : 10.0.0.0/8", from("::a01:203"), Require, None),
            // J4: not addresses.
            ("J4 octal", "+ : ALL : 10.0.0.0/8", from("010.1.2.3"), Require, None),
            ("J4 space", "+ : ALL : 10.0.0.0/8", from("10.1.2.3 "), Require, None),
            ("J4 dot", "+ : ALL : 10.0.0.0/8", from("10.1.2.3."), Require, None),
            ("J4 hex", "+ : ALL : 10.0.0.0/8", from("0x0a.1.2.3"), Require, None),
            ("J4 short", "+ : ALL : 10.0.0.0/8", from("10.1.2"), Require, None),
            // J5: host names never match an address, not even through EXCEPT.
            ("J5", "+ : ALL : 10.0.0.0/8", from("lan-host.example"), Require, None),
            ("J5 except", "+ : ALL : ALL EXCEPT 192.0.2.0/24", from("evil.example"), Require, None),
            ("J5 require", "- : ALL : 10.0.0.0/8\n+ : ALL : ALL", from("evil.example"), Require, Some(1)),
            ("J5 local", "+ : ALL : LOCAL", from("localhost"), Require, None),
            // J6 and the field example.
            ("field lan", FIELD_EXAMPLE, from("10.0.0.77"), Skip, Some(1)),
            ("field wan", FIELD_EXAMPLE, from("10.0.1.77"), Require, Some(3)),
            ("field v6", FIELD_EXAMPLE, from("2001:db8::1"), Require, Some(3)),
            ("field console", FIELD_EXAMPLE, console("/dev/tty1", "login"), Skip, Some(2)),
            ("field display", FIELD_EXAMPLE, console(":0", "gdm-password"), Skip, Some(2)),
            ("field sudo in ssh", FIELD_EXAMPLE, console("/dev/pts/3", "sudo"), Require, Some(3)),
            ("field su in ssh", FIELD_EXAMPLE, console("pts/3", "su"), Require, Some(3)),
            ("field sudo console", FIELD_EXAMPLE, console("/dev/tty1", "sudo"), Require, Some(3)),
            ("field pts login", FIELD_EXAMPLE, console("/dev/pts/0", "login"), Require, Some(3)),
            ("field empty rhost", FIELD_EXAMPLE, from(""), Require, Some(3)),
            ("J6 no rules", "", console("/dev/tty1", "login"), Require, None),
            // J7: link-local zone stripped; brackets are not addresses.
            ("J7 zone", "+ : ALL : fe80::/10", from("fe80::1%eth0"), Skip, Some(1)),
            ("J7 zone global", "+ : ALL : 2001:db8::/32", from("2001:db8::1%eth0"), Require, None),
            ("J7 brackets", "+ : ALL : ::1", from("[::1]"), Require, None),
            ("J7 plain", "+ : ALL : ::1", from("::1"), Skip, Some(1)),
            // J8.
            ("J8 match", "+ : ALL : fd00::/8", from("fd12::1"), Skip, Some(1)),
            ("J8 no match", "+ : ALL : fd00::/8", from("fe80::1"), Require, None),
            // Families stay apart.
            ("v6 net, v4 peer", "+ : ALL : ::/1", from("10.1.2.3"), Require, None),
            ("mapped rule", "+ : ALL : ::ffff:10.0.0.0/104", from("10.200.0.1"), Skip, Some(1)),
            ("mapped host rule", "+ : ALL : ::ffff:10.0.0.1", from("10.0.0.1"), Skip, Some(1)),
            // Users.
            ("user", "+ : root : 10.0.0.0/8", from("10.0.0.1").user("root"), Skip, Some(1)),
            ("other user", "+ : root : 10.0.0.0/8", from("10.0.0.1"), Require, None),
            ("user case", "+ : root : 10.0.0.0/8", from("10.0.0.1").user("Root"), Require, None),
            ("comma list", "+ : bob,alice : 10.0.0.0/8", from("10.0.0.1"), Skip, Some(1)),
            ("tab list", "+\t:\tbob\talice\t:\t10.0.0.0/8", from("10.0.0.1"), Skip, Some(1)),
            ("except user", "+ : ALL EXCEPT root : ALL", from("10.0.0.1").user("root"), Require, None),
            ("except other", "+ : ALL EXCEPT root : ALL", from("10.0.0.1"), Skip, Some(1)),
            // Groups, including a failed lookup.
            ("group member", "+ : (lan) : ALL", from("1.1.1.1").groups(Some(&["staff", "lan"])), Skip, Some(1)),
            ("group non-member", "+ : (lan) : ALL", from("1.1.1.1").groups(Some(&["staff"])), Require, None),
            ("group lookup failed", "+ : (lan) : ALL", from("1.1.1.1").groups(None), Require, None),
            ("except group member", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1").groups(Some(&["otp"])), Require, None),
            ("except group other", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1"), Skip, Some(1)),
            ("except group failed", "+ : ALL EXCEPT (otp) : ALL", from("1.1.1.1").groups(None), Require, None),
            ("require group failed", "- : (otp) : ALL\n+ : ALL : ALL", from("1.1.1.1").groups(None), Require, Some(1)),
            ("require except failed", "- : ALL EXCEPT (lan) : ALL\n+ : ALL : ALL", from("1.1.1.1").groups(None), Require, Some(1)),
            ("require group other", "- : (otp) : ALL\n+ : ALL : ALL", from("1.1.1.1"), Skip, Some(2)),
            ("passed over then sure", "+ : (lan) : ALL\n+ : alice : ALL", from("1.1.1.1").groups(None), Skip, Some(2)),
            ("group is not a user", "+ : (alice) : ALL", from("1.1.1.1"), Require, None),
            ("user is not a group", "+ : lan : ALL", from("1.1.1.1").groups(Some(&["lan"])), Require, None),
            // Origins with EXCEPT.
            ("origin except in", "+ : ALL : 10.0.0.0/8 EXCEPT 10.9.0.0/16", from("10.1.2.3"), Skip, Some(1)),
            ("origin except out", "+ : ALL : 10.0.0.0/8 EXCEPT 10.9.0.0/16", from("10.9.2.3"), Require, None),
            ("except local", "+ : ALL : ALL EXCEPT LOCAL", console("tty1", "login"), Require, None),
            ("local vs network", "+ : ALL : LOCAL", from("10.0.0.1"), Require, None),
            ("network vs local", "+ : ALL : 10.0.0.0/8", console("tty1", "login"), Require, None),
            // ALL is explicit and covers every origin, a host name included.
            ("all origins", "+ : root : ALL", from("somehost").user("root"), Skip, Some(1)),
            // First match wins.
            ("first wins", "- : ALL : 10.0.0.5\n+ : ALL : 10.0.0.0/8", from("10.0.0.5"), Require, Some(1)),
            ("first wins 2", "- : ALL : 10.0.0.5\n+ : ALL : 10.0.0.0/8", from("10.0.0.6"), Skip, Some(2)),
            // Syntax variants.
            ("no spaces", "+:ALL:10.0.0.0/8", from("10.1.1.1"), Skip, Some(1)),
            ("crlf", "# x\r\n+ : ALL : 10.0.0.0/8\r\n- : ALL : ALL\r\n", from("11.1.1.1"), Require, Some(3)),
            ("comments", "# c\n\n   # indented\n\t\n+ : ALL : 10.0.0.0/8", from("10.1.1.1"), Skip, Some(5)),
            ("v6 list", "+ : ALL : 2001:db8::/32, fd00::/8", from("2001:db8::5"), Skip, Some(1)),
            ("v6 host", "+ : ALL : 2001:db8::5", from("2001:db8::5"), Skip, Some(1)),
            ("no final newline", "- : ALL : 10.0.0.0/8\n+ : ALL : ALL", from("8.8.8.8"), Skip, Some(2)),
        ];
        for (name, rules, login, verdict, line) in cases {
            assert_eq!(decide_login(rules, login), (*verdict, *line), "case {name}");
        }
    }

    #[test]
    fn matched_rule_carries_line_and_trimmed_text() {
        let rules = parse("# head\r\n   + : ALL : 10.0.0.0/8   \r\n");
        let decision = rules.evaluate(&Subject {
            user: "alice",
            groups: Groups::Complete(&[]),
            origin: classify_origin(Some(b"10.0.0.1"), None, None),
        });
        assert_eq!(
            decision,
            Decision {
                verdict: Skip,
                matched: Some(MatchedRule {
                    line: 2,
                    text: "+ : ALL : 10.0.0.0/8".to_owned()
                }),
            }
        );
    }

    fn error(text: &[u8], opts: ParseOptions) -> AccessError {
        match AccessRules::parse(text, opts) {
            Ok(_) => panic!("{:?} should be rejected", String::from_utf8_lossy(text)),
            Err(e) => e,
        }
    }

    #[test]
    fn malformed_rules_reject_the_whole_file_naming_the_line() {
        let bad: &[&str] = &[
            // J10.
            "+ : ALL : 10.0.0.0/33",
            "+ : ALL : ::/129",
            "+ : ALL : 10.0.0.0/-1",
            "+ : ALL : 10.0.0.1/8",
            "+ : ALL : 010.0.0.0/8",
            "+ : ALL : 10.0.0.0/08",
            "+ : ALL : 1.2.3.4/",
            "+ : ALL : UNKNOWN",
            // What pam_access would resolve or interpret differently.
            "+ : ALL : host.example.com",
            "+ : ALL : .example.com",
            "+ : ALL : @netgroup",
            "+ : ALL : 192.168.",
            "+ : ALL : tty1",
            "+ : ALL : :0",
            "+ : ALL : all",
            "+ : ALL : Local",
            "+ : ALL : [::1]",
            "+ : ALL : fe80::1%eth0",
            "+ : ALL : 10.0.0.0/8 : extra",
            "+ : ALL : 10.0.0.0/8 # trailing comment",
            "+ : all : ALL",
            "+ : Except : ALL",
            "+ : @admins : ALL",
            "+ : alice@host : ALL",
            "+ : (admins : ALL",
            "+ : admins) : ALL",
            "+ : () : ALL",
            "+ : (-x) : ALL",
            "+ : -rf : ALL",
            "+ : ali/ce : ALL",
            "+ : LOCAL : ALL",
            // Shape.
            "+ : ALL",
            "+ ALL ALL",
            "* : ALL : ALL",
            "++ : ALL : ALL",
            " : ALL : ALL",
            "+ : : ALL",
            "+ : ALL : ",
            "+ : ALL EXCEPT : ALL",
            "+ : EXCEPT root : ALL",
            "+ : ALL EXCEPT a EXCEPT b : ALL",
            "+ : ALL : ALL EXCEPT",
            "+ : ALL : EXCEPT 10.0.0.0/8",
            "+ : ALL : ALL EXCEPT 10.0.0.0/8 EXCEPT 10.1.0.0/16",
            // Bytes.
            "+ : ALL\r : ALL",
            "+ : ALL : 10.0.0.0/8\u{1}",
            "+ : ALL : 10.0.0.0/8\u{b}",
            "\u{feff}+ : ALL : ALL",
            "+ : \u{e9}lise : ALL",
            // J9 without the opt-in.
            "+ : ALL : 0.0.0.0/0",
            "+ : ALL : ::/0",
            "+ : ALL : 10.0.0.0/8 ::ffff:0.0.0.0/96",
        ];
        for rule in bad {
            let text = format!("# ok\n- : ALL : 10.0.0.0/8\n\n{rule}\n+ : ALL : ALL\n");
            let e = error(text.as_bytes(), ParseOptions::default());
            assert_eq!(e.line, Some(4), "{rule:?}: {e}");
            assert!(e.to_string().starts_with("line 4: "), "{e}");
            assert!(
                e.message.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "error messages stay printable: {e:?}"
            );
        }
    }

    #[test]
    fn error_messages_are_helpful() {
        let msg = |rule: &str| error(rule.as_bytes(), ParseOptions::default()).message;
        assert!(msg("+ : ALL : 10.0.0.1/8").contains("did you mean 10.0.0.0/8"));
        assert!(msg("+ : ALL : host.example.com").contains("no DNS"));
        assert!(msg("+ : ALL : 192.168.").contains("192.168.0.0/16"));
        assert!(msg("+ : ALL : 0.0.0.0/0").contains("/0"));
        assert!(msg("+ : all : ALL").contains("uppercase"));
        let long = format!("+ : ALL : {}", "a".repeat(500));
        assert!(msg(&long).len() < 200, "offending tokens are truncated");
    }

    #[test]
    fn nul_is_rejected_even_in_a_comment() {
        let e = error(b"+ : ALL : ALL\n# a\0b\n", ParseOptions::default());
        assert_eq!(e.line, Some(2));
    }

    #[test]
    fn comments_may_hold_any_bytes_but_nul() {
        let rules = AccessRules::parse(
            b"# caf\xc3\xa9 \xff\xfe\n+ : ALL : LOCAL\n",
            ParseOptions::default(),
        )
        .expect("comment bytes are not interpreted");
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn zero_prefix_needs_the_opt_in_only_where_it_widens_a_skip() {
        let allow = ParseOptions {
            allow_any_network: true,
        };
        for rule in [
            "+ : ALL : 0.0.0.0/0",
            "+ : ALL : ::/0",
            "+ : root : 10.0.0.0/8 ::/0",
        ] {
            assert!(AccessRules::parse(rule.as_bytes(), ParseOptions::default()).is_err());
            assert!(AccessRules::parse(rule.as_bytes(), allow).is_ok(), "{rule}");
        }
        // Requiring the code from everywhere, or excluding everywhere from a skip, is harmless.
        for rule in [
            "- : ALL : 0.0.0.0/0",
            "- : ALL : ::/0",
            "+ : ALL : LOCAL EXCEPT ::/0",
        ] {
            assert!(
                AccessRules::parse(rule.as_bytes(), ParseOptions::default()).is_ok(),
                "{rule}"
            );
        }
        let rules = AccessRules::parse(b"+ : ALL : 0.0.0.0/0", allow).expect("opted in");
        let subject = |rhost: &[u8]| Subject {
            user: "alice",
            groups: Groups::Complete(&[]),
            origin: classify_origin(Some(rhost), None, None),
        };
        assert_eq!(rules.evaluate(&subject(b"203.0.113.9")).verdict, Skip);
        assert_eq!(rules.evaluate(&subject(b"2001:db8::1")).verdict, Require);
    }

    #[test]
    fn size_caps_are_enforced() {
        let big = vec![b'#'; MAX_FILE_BYTES + 1];
        let e = error(&big, ParseOptions::default());
        assert_eq!(e.line, None);

        let long = format!("+ : ALL : 10.0.0.0/8 {}\n", "10.1.0.0/16 ".repeat(700));
        assert!(long.len() > MAX_LINE_BYTES);
        assert_eq!(
            error(long.as_bytes(), ParseOptions::default()).line,
            Some(1)
        );
        let long_comment = format!("#{}\n", "x".repeat(MAX_LINE_BYTES));
        assert_eq!(
            error(long_comment.as_bytes(), ParseOptions::default()).line,
            Some(1)
        );

        let max = "-:ALL:ALL\n".repeat(MAX_RULES);
        assert!(max.len() <= MAX_FILE_BYTES);
        let rules = AccessRules::parse(max.as_bytes(), ParseOptions::default())
            .expect("exactly the cap is fine");
        assert_eq!(rules.len(), MAX_RULES);
        let over = format!("{max}-:ALL:ALL\n");
        assert_eq!(
            error(over.as_bytes(), ParseOptions::default()).line,
            Some(MAX_RULES + 1)
        );
    }

    #[test]
    fn empty_rules_require_the_code() {
        let subject = Subject {
            user: "alice",
            groups: Groups::Complete(&[]),
            origin: Origin::Local,
        };
        for rules in [
            AccessRules::default(),
            parse(""),
            parse("\n# only comments\n\n"),
        ] {
            assert!(rules.is_empty());
            assert_eq!(
                rules.evaluate(&subject),
                Decision {
                    verdict: Require,
                    matched: None
                }
            );
        }
    }

    #[test]
    fn ten_thousand_rules_parse_and_evaluate_correctly() {
        let n = 10_000usize;
        let mut text = String::from("# generated\n");
        for i in 0..n {
            let perm = if i % 2 == 0 { '+' } else { '-' };
            let (hi, lo) = (i / 256, i % 256);
            text.push_str(&format!(
                "{perm} : user{i} (grp{i}) : 10.{hi}.{lo}.0/24 2001:db8:{i:x}::/48\n"
            ));
        }
        text.push_str("+ : ALL : 192.168.0.0/16\n");
        let rules = parse(&text);
        assert_eq!(rules.len(), n + 1);

        let check = |user: &str, groups: &[&str], rhost: &str, expect: (Verdict, Option<usize>)| {
            let groups = owned(groups);
            let subject = Subject {
                user,
                groups: Groups::Complete(&groups),
                origin: classify_origin(Some(rhost.as_bytes()), None, None),
            };
            let d = rules.evaluate(&subject);
            let streamed = decide(text.as_bytes(), ParseOptions::default(), &subject);
            assert_eq!(streamed.as_ref(), Ok(&d));
            assert_eq!(
                (d.verdict, d.matched.as_ref().map(|m| m.line)),
                expect,
                "{user} {rhost}"
            );
        };
        // Rule i sits on line i + 2.
        check("user5000", &[], "10.19.136.7", (Skip, Some(5002)));
        check("user5001", &[], "10.19.137.7", (Require, Some(5003)));
        check("user5001", &[], "10.19.136.7", (Require, None));
        check(
            "bob",
            &["grp9998"],
            "2001:db8:270e::1",
            (Skip, Some(10_000)),
        );
        check(
            "bob",
            &["grp9999"],
            "::ffff:10.39.15.1",
            (Require, Some(10_001)),
        );
        check("bob", &["x"], "192.168.3.4", (Skip, Some(10_002)));
        check("bob", &["x"], "10.19.136.7", (Require, None));
        let last = rules.evaluate(&Subject {
            user: "bob",
            groups: Groups::Unknown,
            origin: classify_origin(Some(b"192.168.0.1"), None, None),
        });
        assert_eq!(
            last.matched.map(|m| m.text),
            Some("+ : ALL : 192.168.0.0/16".to_owned())
        );
    }

    #[test]
    fn explain_names_origin_rule_and_verdict() {
        let rules = parse(FIELD_EXAMPLE);
        let e = rules.explain(&LoginItems {
            user: "alice",
            groups: Groups::Complete(&[]),
            rhost: Some(b"::ffff:10.0.0.9"),
            tty: Some(b"ssh"),
            service: Some(b"sshd"),
        });
        assert_eq!(
            e.origin,
            Origin::Network("10.0.0.9".parse().expect("literal"))
        );
        assert_eq!(e.decision.verdict, Skip);
        assert_eq!(e.decision.matched.as_ref().map(|m| m.line), Some(1));
        let text = e.to_string();
        assert!(text.contains("network address 10.0.0.9"), "{text}");
        assert!(text.contains("line 1: + : ALL : 10.0.0.0/24"), "{text}");
        assert!(text.contains("PAM_IGNORE"), "{text}");

        let e = rules.explain(&LoginItems {
            user: "alice",
            groups: Groups::Complete(&[]),
            rhost: None,
            tty: Some(b"/dev/pts/2"),
            service: Some(b"sudo"),
        });
        assert_eq!(e.origin_reason, OriginReason::IdentitySwitchService);
        assert_eq!(e.decision.matched.as_ref().map(|m| m.line), Some(3));
        assert!(e.to_string().contains("require"));
    }

    #[test]
    fn explain_reports_rules_passed_over_for_missing_facts() {
        let rules = parse("+ : (lan) : ALL\n- : (otp) : ALL\n+ : ALL : ALL\n");
        let e = rules.explain(&LoginItems {
            user: "alice\n",
            groups: Groups::Unknown,
            rhost: Some(b"10.0.0.1"),
            tty: None,
            service: None,
        });
        assert_eq!(e.decision.verdict, Require);
        assert!(e.uncertain);
        assert_eq!(e.passed_over_total, 1);
        assert_eq!(e.passed_over[0].line, 1);
        let text = e.to_string();
        assert!(text.contains("alice\\n"), "user name is escaped: {text}");
        assert!(text.contains("groups:  unknown"), "{text}");
        assert!(
            text.contains("line 2: - : (otp) : ALL (might match"),
            "{text}"
        );

        let none = parse("+ : ALL : 10.0.0.0/8\n").explain(&LoginItems {
            user: "alice",
            groups: Groups::Complete(&[]),
            rhost: Some(b"evil.example"),
            tty: None,
            service: None,
        });
        assert_eq!(none.origin, Origin::Unknown);
        assert_eq!(none.passed_over_total, 1);
        assert!(none.to_string().contains("none matched"));
    }

    /// R22: only a proven non-membership lets a "not in the group" rule or option skip;
    /// an unknown membership never does, and a proven membership still does.
    #[test]
    fn unknown_membership_never_skips_for_absence() {
        use crate::membership::Membership::{self, *};
        let asked = std::cell::RefCell::new(Vec::new());
        let facts = |g: &str| -> Membership {
            asked.borrow_mut().push(g.to_owned());
            match g {
                "lan" => Member,
                "staff" => NotMember,
                _ => Unknown,
            }
        };
        let groups = Groups::Each(&facts);
        let subject = Subject {
            user: "alice",
            groups,
            origin: Origin::Network("1.1.1.1".parse().unwrap()),
        };
        let verdict = |text: &str| parse(text).evaluate(&subject).verdict;
        assert_eq!(verdict("+ : ALL EXCEPT (mfa) : ALL"), Verdict::Require);
        assert_eq!(verdict("+ : ALL EXCEPT (staff) : ALL"), Verdict::Skip);
        assert_eq!(verdict("- : (mfa) : ALL\n+ : ALL : ALL"), Verdict::Require);
        assert_eq!(verdict("- : (staff) : ALL\n+ : ALL : ALL"), Verdict::Skip);
        assert_eq!(verdict("+ : (lan) : ALL"), Verdict::Skip);
        assert_eq!(verdict("+ : (mfa) : ALL"), Verdict::Require);

        let s = |v: &[&str]| v.iter().map(|g| (*g).to_owned()).collect::<Vec<_>>();
        let decide =
            |skip: &[&str], require: &[&str]| group_skip_decision(groups, &s(skip), &s(require));
        assert_eq!(decide(&[], &["mfa"]), GroupDecision::Require);
        assert_eq!(decide(&[], &["staff", "mfa"]), GroupDecision::Require);
        assert_eq!(
            decide(&[], &["staff"]),
            GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)
        );
        assert_eq!(
            decide(&["mfa", "lan"], &["staff"]),
            GroupDecision::Skip(GroupSkipReason::InSkipGroup("lan".into()))
        );
        // Asked in order, and no further than the decision needs.
        asked.borrow_mut().clear();
        assert_eq!(
            decide(&["lan", "x"], &["y"]),
            GroupDecision::Skip(GroupSkipReason::InSkipGroup("lan".into()))
        );
        assert_eq!(*asked.borrow(), vec!["lan".to_owned()]);
    }

    #[test]
    fn group_skip_decision_table() {
        let s = |v: &[&str]| owned(v);
        let skip_in = |g: &str| GroupDecision::Skip(GroupSkipReason::InSkipGroup(g.to_owned()));
        type Case = (Option<Vec<String>>, Vec<String>, Vec<String>, GroupDecision);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            // J14.
            (Some(s(&["users", "lan"])), s(&["lan"]), s(&[]), skip_in("lan")),
            (Some(s(&["users"])), s(&["lan"]), s(&[]), GroupDecision::Require),
            (None, s(&["lan"]), s(&[]), GroupDecision::Require),
            // require_group: only members need the code.
            (Some(s(&["users"])), s(&[]), s(&["otp"]), GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)),
            (Some(s(&["users", "otp"])), s(&[]), s(&["otp", "admins"]), GroupDecision::Require),
            (None, s(&[]), s(&["otp"]), GroupDecision::Require),
            (Some(s(&[])), s(&[]), s(&["otp"]), GroupDecision::Skip(GroupSkipReason::NotInRequireGroups)),
            // Both: a skip group wins.
            (Some(s(&["lan", "otp"])), s(&["lan"]), s(&["otp"]), skip_in("lan")),
            (Some(s(&["otp"])), s(&["lan"]), s(&["otp"]), GroupDecision::Require),
            // Nothing configured.
            (Some(s(&["lan"])), s(&[]), s(&[]), GroupDecision::Require),
            (None, s(&[]), s(&[]), GroupDecision::Require),
            // Exact names only.
            (Some(s(&["LAN", "lan2"])), s(&["lan"]), s(&[]), GroupDecision::Require),
        ];
        for (groups, skip, require, expect) in cases {
            assert_eq!(
                group_skip_decision(groups.as_deref().into(), &skip, &require),
                expect,
                "{groups:?} {skip:?} {require:?}"
            );
        }
    }

    mod differential {
        use std::net::{Ipv4Addr, Ipv6Addr};

        use proptest::prelude::*;

        use super::*;

        /// Reference model: (is_v4, value) after mapped-IPv4 canonicalisation.
        type Key = (bool, u128);

        fn key_of_v6(bits: u128) -> Key {
            if bits >> 32 == 0xffff {
                (true, bits & 0xffff_ffff)
            } else {
                (false, bits)
            }
        }

        #[derive(Clone, Debug)]
        enum RefItem {
            All,
            Net { key: Key, prefix: u32 },
        }

        impl RefItem {
            /// Naive containment by shifting away the host bits.
            fn contains(&self, addr: Key) -> bool {
                match *self {
                    RefItem::All => true,
                    RefItem::Net { key, prefix } => {
                        let width = if key.0 { 32 } else { 128 };
                        key.0 == addr.0
                            && (prefix == 0
                                || key.1 >> (width - prefix) == addr.1 >> (width - prefix))
                    }
                }
            }
        }

        fn mask(width: u32, prefix: u32) -> u128 {
            if prefix == 0 {
                0
            } else {
                let ones = if width == 128 {
                    u128::MAX
                } else {
                    (1u128 << width) - 1
                };
                ones & !ones.checked_shr(prefix).unwrap_or(0)
            }
        }

        fn v4_text(bits: u32) -> String {
            Ipv4Addr::from(bits).to_string()
        }

        fn v6_expanded(bits: u128) -> String {
            let a = Ipv6Addr::from(bits).segments();
            a.iter()
                .map(|s| format!("{s:04x}"))
                .collect::<Vec<_>>()
                .join(":")
        }

        /// A random address biased toward mapped space and toward `near`.
        fn v4_bits() -> impl Strategy<Value = u32> {
            prop_oneof![any::<u32>(), (0u32..4).prop_map(|x| 0x0a00_0000 | x << 8)]
        }

        fn v6_bits() -> impl Strategy<Value = u128> {
            prop_oneof![
                any::<u128>(),
                any::<u32>().prop_map(|x| 0xffff_0000_0000 | u128::from(x)),
                any::<u64>().prop_map(|x| 0xfd00u128 << 112 | u128::from(x)),
                any::<u32>().prop_map(u128::from),
            ]
        }

        /// An origin item: (text, reference).
        fn item() -> impl Strategy<Value = (String, RefItem)> {
            let v4 = (v4_bits(), 0u32..=32, 0u8..4).prop_map(|(bits, prefix, form)| {
                let bits = (u128::from(bits) & mask(32, prefix)) as u32;
                let text = match form {
                    0 if prefix == 32 => v4_text(bits),
                    1 => format!("::ffff:{}/{}", v4_text(bits), prefix + 96),
                    2 => format!(
                        "::FFFF:{:x}:{:x}/{}",
                        bits >> 16,
                        bits & 0xffff,
                        prefix + 96
                    ),
                    _ => format!("{}/{prefix}", v4_text(bits)),
                };
                (
                    text,
                    RefItem::Net {
                        key: (true, u128::from(bits)),
                        prefix,
                    },
                )
            });
            let v6 = (v6_bits(), 0u32..=128, any::<bool>()).prop_map(|(bits, prefix, expanded)| {
                let bits = bits & mask(128, prefix);
                let addr = if expanded {
                    v6_expanded(bits)
                } else {
                    Ipv6Addr::from(bits).to_string()
                };
                let (is_v4, value) = key_of_v6(bits);
                let reference = if is_v4 && prefix >= 96 {
                    RefItem::Net {
                        key: (true, value),
                        prefix: prefix - 96,
                    }
                } else {
                    RefItem::Net {
                        key: (false, bits),
                        prefix,
                    }
                };
                (format!("{addr}/{prefix}"), reference)
            });
            prop_oneof![1 => Just(("ALL".to_owned(), RefItem::All)), 6 => v4, 6 => v6]
        }

        #[derive(Clone, Debug)]
        struct RefRule {
            skip: bool,
            include: Vec<RefItem>,
            except: Vec<RefItem>,
        }

        fn rules() -> impl Strategy<Value = (String, Vec<RefRule>)> {
            let rule = (
                any::<bool>(),
                prop::collection::vec(item(), 1..4),
                prop::collection::vec(item(), 0..3),
            );
            prop::collection::vec(rule, 1..12).prop_map(|rules| {
                let mut text = String::new();
                let mut reference = Vec::new();
                for (skip, include, except) in rules {
                    text.push_str(if skip { "+ : ALL :" } else { "- : ALL :" });
                    for (t, _) in &include {
                        text.push(' ');
                        text.push_str(t);
                    }
                    if !except.is_empty() {
                        text.push_str(" EXCEPT");
                        for (t, _) in &except {
                            text.push(' ');
                            text.push_str(t);
                        }
                    }
                    text.push('\n');
                    reference.push(RefRule {
                        skip,
                        include: include.into_iter().map(|(_, r)| r).collect(),
                        except: except.into_iter().map(|(_, r)| r).collect(),
                    });
                }
                (text, reference)
            })
        }

        /// A peer: (PAM_RHOST text, reference key).
        fn peer() -> impl Strategy<Value = (String, Key)> {
            let v4 = (v4_bits(), 0u8..3).prop_map(|(bits, form)| {
                let text = match form {
                    0 => v4_text(bits),
                    1 => format!("::ffff:{}", v4_text(bits)),
                    _ => format!("::ffff:{:x}:{:x}", bits >> 16, bits & 0xffff),
                };
                (text, (true, u128::from(bits)))
            });
            let v6 = (v6_bits(), any::<bool>()).prop_map(|(bits, expanded)| {
                let text = if expanded {
                    v6_expanded(bits)
                } else {
                    Ipv6Addr::from(bits).to_string()
                };
                (text, key_of_v6(bits))
            });
            prop_oneof![v4, v6]
        }

        /// A peer inside a rule's network (host bits from `host`), so matches are common.
        fn peer_inside(item: &RefItem, host: u128, form: u8) -> Option<(String, Key)> {
            let RefItem::Net { key, prefix } = *item else {
                return None;
            };
            if key.0 {
                let bits = (key.1 | (host & !mask(32, prefix) & 0xffff_ffff)) as u32;
                let text = match form % 3 {
                    0 => v4_text(bits),
                    1 => format!("::ffff:{}", v4_text(bits)),
                    _ => format!("::ffff:{:x}:{:x}", bits >> 16, bits & 0xffff),
                };
                Some((text, (true, u128::from(bits))))
            } else {
                let bits = key.1 | (host & !mask(128, prefix));
                let text = if form.is_multiple_of(2) {
                    v6_expanded(bits)
                } else {
                    Ipv6Addr::from(bits).to_string()
                };
                Some((text, key_of_v6(bits)))
            }
        }

        fn reference(rules: &[RefRule], addr: Key) -> (Verdict, Option<usize>) {
            for (i, r) in rules.iter().enumerate() {
                if r.include.iter().any(|n| n.contains(addr))
                    && !r.except.iter().any(|n| n.contains(addr))
                {
                    return (if r.skip { Skip } else { Require }, Some(i + 1));
                }
            }
            (Require, None)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn evaluation_agrees_with_naive_mask_check(
                (text, model) in rules(),
                mut peers in prop::collection::vec(peer(), 1..6),
                inside in prop::collection::vec(
                    (any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u128>(), any::<u8>()),
                    1..6,
                ),
            ) {
                let opts = ParseOptions { allow_any_network: true };
                let parsed = AccessRules::parse(text.as_bytes(), opts);
                prop_assert!(parsed.is_ok(), "{text}: {parsed:?}");
                let Ok(parsed) = parsed else { unreachable!() };
                for (rule, item, host, form) in inside {
                    let rule = rule.get(&model);
                    let items: Vec<RefItem> = rule.include.iter().chain(&rule.except).cloned().collect();
                    peers.extend(peer_inside(item.get(&items), host, form));
                }
                for (rhost, key) in peers {
                    let origin = classify_origin(Some(rhost.as_bytes()), None, None);
                    prop_assert!(matches!(origin, Origin::Network(_)), "{rhost}");
                    let subject = Subject { user: "u", groups: Groups::Complete(&[]), origin };
                    let d = parsed.evaluate(&subject);
                    prop_assert_eq!(decide(text.as_bytes(), opts, &subject), Ok(d.clone()));
                    prop_assert_eq!(
                        (d.verdict, d.matched.map(|m| m.line)),
                        reference(&model, key),
                        "rules:\n{}peer {}", text, rhost
                    );
                }
            }

            #[test]
            fn rhost_parsing_accepts_exactly_what_std_accepts(s in "[0-9a-fA-FxX:.%/ \\[\\]]{0,40}") {
                let ours = addr::parse_ip_literal(&s);
                let std_ok = s.parse::<std::net::IpAddr>().ok();
                prop_assert_eq!(ours.is_some(), std_ok.is_some());
                prop_assert_eq!(ours, std_ok.map(addr::canonical));
                if !s.contains('%') && !s.is_empty() {
                    let origin = classify_origin(Some(s.as_bytes()), Some(b"tty1"), None);
                    prop_assert_eq!(origin, ours.map_or(Origin::Unknown, Origin::Network));
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                if let Ok(rules) = AccessRules::parse(&bytes, ParseOptions::default()) {
                    let _ = rules.evaluate(&Subject { user: "u", groups: Groups::Unknown, origin: Origin::Unknown });
                }
                let _ = addr::parse_rhost(Some(&bytes));
            }

            #[test]
            fn token_soup_never_panics(
                lines in prop::collection::vec(
                    prop::collection::vec(
                        prop::sample::select(vec![
                            "+", "-", ":", " ", "\t", ",", "ALL", "EXCEPT", "LOCAL", "(g)", "(", ")",
                            "root", "10.0.0.0/8", "::/0", "0.0.0.0/0", "fe80::1%eth0", "#", "\r",
                            "::ffff:10.0.0.0/104", "1.2.3.4/", "/", "@", ".", "u$",
                        ]),
                        0..12,
                    ),
                    0..8,
                ),
                groups in prop::option::of(prop::collection::vec(prop::sample::select(vec!["g", "root", "x"]), 0..3)),
                rhost in prop::option::of(prop::sample::select(vec!["10.1.2.3", "::1", "host", "", "fe80::2%eth0"])),
            ) {
                let text: String = lines.iter().map(|l| l.concat() + "\n").collect();
                let parsed = AccessRules::parse(text.as_bytes(), ParseOptions::default());
                let groups_for_decide: Option<Vec<String>> =
                    groups.clone().map(|g| g.into_iter().map(str::to_owned).collect());
                let subject = Subject {
                    user: "root",
                    groups: groups_for_decide.as_deref().into(),
                    origin: classify_origin(rhost.map(str::as_bytes), Some(b"tty1"), Some(b"login")),
                };
                prop_assert_eq!(
                    decide(text.as_bytes(), ParseOptions::default(), &subject),
                    parsed.as_ref().map(|r| r.evaluate(&subject)).map_err(Clone::clone)
                );
                if let Ok(rules) = parsed {
                    let groups: Option<Vec<String>> =
                        groups.map(|g| g.into_iter().map(str::to_owned).collect());
                    let items = LoginItems {
                        user: "root",
                        groups: groups.as_deref().into(),
                        rhost: rhost.map(str::as_bytes),
                        tty: Some(b"tty1"),
                        service: Some(b"login"),
                    };
                    let explanation = rules.explain(&items);
                    let subject = Subject {
                        user: "root",
                        groups: groups.as_deref().into(),
                        origin: explanation.origin,
                    };
                    prop_assert_eq!(&rules.evaluate(&subject), &explanation.decision);
                    // Missing groups can only remove skips, never add them.
                    if explanation.decision.verdict == Skip && groups.is_none() {
                        for known in [vec![], vec!["g".to_owned()], vec!["g".to_owned(), "x".to_owned()]] {
                            let s = Subject { groups: Groups::Complete(&known), ..subject };
                            prop_assert_eq!(rules.evaluate(&s).verdict, Skip);
                        }
                    }
                }
            }
        }
    }

    /// The one-pass scanner against the implementation it replaced.
    mod fast_path {
        use std::time::{Duration, Instant};

        use proptest::prelude::*;

        use super::*;

        /// `decide` as it was before the scanner: the file split into byte lines, and
        /// every rule line read by [`parse_line_exact`] (its own passes, a UTF-8 check
        /// per line, `std`'s address parser for every network).
        fn decide_reference(
            text: &[u8],
            opts: ParseOptions,
            subject: &Subject<'_>,
        ) -> Result<Decision, AccessError> {
            check_file(text)?;
            let mut items = Items::default();
            let mut first = FirstMatch::default();
            for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
                let line_no = index + 1;
                let Some((line, shape)) =
                    parse_line_exact(raw, opts, &mut items, addr::parse_network_reference)
                        .map_err(at(line_no))?
                else {
                    continue;
                };
                first.see(line_no, line, shape, &mut items, subject)?;
            }
            Ok(first.decision())
        }

        /// Mostly valid IPv4 networks (host bits cleared), sometimes not.
        fn v4_network() -> impl Strategy<Value = String> {
            let octet = prop_oneof![Just(0u8), Just(10), Just(192), Just(255), any::<u8>()];
            (prop::array::uniform4(octet), 0u32..=32, 0u8..8).prop_map(|(o, prefix, form)| {
                let bits = u32::from_be_bytes(o);
                let masked = bits & u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                let [a, b, c, d] = masked.to_be_bytes();
                match form {
                    0 => format!("{a}.{b}.{c}.{d}"),
                    1 => format!("{}/{prefix}", std::net::Ipv4Addr::from(bits)),
                    2 => format!("::ffff:{a}.{b}.{c}.{d}/{}", prefix + 96),
                    _ => format!("{a}.{b}.{c}.{d}/{prefix}"),
                }
            })
        }

        fn odd_origin() -> impl Strategy<Value = String> {
            let part = prop::sample::select(vec![
                "0", "00", "01", "1", "9", "10", "99", "100", "255", "256", "300", "999", "0255",
                "+1", "-1", " 1", "", "a", "0x1", "\u{661}", "1\u{301}", "1e1",
            ]);
            let tail = prop::sample::select(vec![
                "", "", "/0", "/00", "/033", "/-1", "/+8", "/8", "/32", "/33", "/", "/8/8",
                "%eth0", "/8%x", "/08", "/1000",
            ]);
            prop_oneof![
                (prop::collection::vec(part, 1..6), tail)
                    .prop_map(|(parts, tail)| parts.join(".") + tail),
                "[0-9./:%a-fA-F+-]{1,20}",
                prop::sample::select(vec![
                    "::1",
                    "fe80::/10",
                    "2001:db8::/32",
                    "::/0",
                    "::ffff:10.0.0.0/104",
                    "fd00::1/8",
                    "fe80::1%eth0",
                    "[::1]",
                    "host.example",
                    ".example",
                    "@ng",
                    "all",
                    "Local",
                    "10.0.0.0/8:",
                    ":",
                    "192.168.",
                ])
                .prop_map(str::to_owned),
            ]
        }

        fn origin_item() -> impl Strategy<Value = String> {
            prop_oneof![
                2 => Just("ALL".to_owned()),
                2 => Just("LOCAL".to_owned()),
                2 => Just("EXCEPT".to_owned()),
                10 => v4_network(),
                1 => odd_origin(),
            ]
        }

        fn user_item() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => Just("ALL".to_owned()),
                2 => Just("EXCEPT".to_owned()),
                4 => prop::sample::select(vec!["alice", "bob", "root", "u$", "a.b_c-d"]).prop_map(str::to_owned),
                3 => prop::sample::select(vec!["(lan)", "(otp)", "(root)", "(ALL)"]).prop_map(str::to_owned),
                1 => prop::sample::select(vec![
                    "LOCAL", "all", "Except", "-rf", "()", "(", ")", "(a", "a)", "((a))", "(-x)",
                    "a@b", "@g", "al/ice", "\u{e9}", "a\u{1}", "a\r", "a\u{b}",
                ]).prop_map(str::to_owned),
                1 => "[a-z]{250,260}",
            ]
        }

        fn separator() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec![" ", " ", " ", "\t", ",", " , ", ",,", "  "])
        }

        fn list(item: BoxedStrategy<String>) -> impl Strategy<Value = String> {
            (
                prop::collection::vec((item, separator()), 0..5),
                separator(),
            )
                .prop_map(|(items, lead)| {
                    let mut s = lead.to_owned();
                    for (item, sep) in items {
                        s.push_str(&item);
                        s.push_str(sep);
                    }
                    s
                })
        }

        fn line() -> impl Strategy<Value = Vec<u8>> {
            let perm = prop::sample::select(vec![
                "+", "+", "-", "-", " + ", "\t-", "*", "+-", "", "+ x", "#+",
            ]);
            let rule = (
                perm,
                prop::sample::select(vec![":", ":", ":", " ", "::"]),
                list(user_item().boxed()),
                prop::sample::select(vec![":", ":", ":", ""]),
                list(origin_item().boxed()),
                prop::sample::select(vec!["", "", "", " ", "\t", "\r", " \r", "\r\r", "\u{1}"]),
            )
                .prop_map(|(p, c1, u, c2, o, end)| format!("{p}{c1}{u}{c2}{o}{end}").into_bytes());
            let other = prop::sample::select(vec![
                &b""[..],
                b"   ",
                b"\t\r",
                b"# comment",
                b"  # indented: anything goes \x01",
                b"# caf\xc3\xa9",
                b"# Latin-1 \xe9",
                b"\xff",
                b"+ : ALL : ALL\xe9",
                b"\xef\xbb\xbf+ : ALL : ALL",
            ])
            .prop_map(<[u8]>::to_vec);
            prop_oneof![8 => rule, 1 => other]
        }

        fn subject_origin() -> impl Strategy<Value = Origin> {
            prop_oneof![
                Just(Origin::Local),
                Just(Origin::Unknown),
                any::<u32>().prop_map(|b| Origin::Network(std::net::IpAddr::V4(b.into()))),
                prop::sample::select(vec![
                    0u32,
                    0x0a00_0000,
                    0x0a01_0203,
                    0xc0a8_0001,
                    0xffff_ffff
                ])
                .prop_map(|b| Origin::Network(std::net::IpAddr::V4(b.into()))),
                Just(Origin::Network("2001:db8::1".parse().expect("literal"))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4000))]

            #[test]
            fn decide_agrees_with_the_previous_implementation(
                lines in prop::collection::vec(line(), 0..8),
                allow_any_network in any::<bool>(),
                user in prop::sample::select(vec!["alice", "bob", "root", "u$"]),
                groups in prop::option::of(prop::collection::vec(
                    prop::sample::select(vec!["lan", "otp", "root", "ALL"]).prop_map(str::to_owned),
                    0..3,
                )),
                origin in subject_origin(),
                final_newline in any::<bool>(),
            ) {
                let mut text = lines.join(&b'\n');
                if final_newline {
                    text.push(b'\n');
                }
                let opts = ParseOptions { allow_any_network };
                let subject = Subject { user, groups: groups.as_deref().into(), origin };
                let expected = decide_reference(&text, opts, &subject);
                prop_assert_eq!(
                    &decide(&text, opts, &subject),
                    &expected,
                    "file {:?}",
                    String::from_utf8_lossy(&text)
                );
                let parsed = AccessRules::parse(&text, opts).map(|r| r.evaluate(&subject));
                prop_assert_eq!(&parsed, &expected);
            }
        }

        /// The `make bench` rule file: `n` rules, only the last matching 192.0.2.10.
        fn bench_rules(n: usize) -> String {
            let mut s = String::from("# only the last rule matches\n");
            for i in 0..n.saturating_sub(1) {
                let (a, b) = (i / 250 % 250 + 1, i % 250 + 1);
                s.push_str(&match i % 4 {
                    0 => format!("+ : ALL : 10.{a}.{b}.0/24\n"),
                    1 => format!("- : ALL : 172.16.{a}.{b}\n"),
                    2 => format!("+ : ALL : 2001:db8:{a:x}:{b:x}::/64\n"),
                    _ => format!("+ : ALL : 198.51.{a}.{b} 203.0.{a}.{b}/32\n"),
                });
            }
            s.push_str("+ : ALL : 192.0.2.0/24\n");
            s
        }

        fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
            (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .min()
                .unwrap_or_default()
        }

        /// Timings, printed, never asserted: `cargo test --release -p totp-core --
        /// --ignored --nocapture access_rule_timings`.
        #[test]
        #[ignore = "timing report, run by hand in release mode"]
        fn access_rule_timings() {
            let opts = ParseOptions::default();
            let subject = Subject {
                user: "root",
                groups: Groups::Complete(&[]),
                origin: Origin::Network("192.0.2.10".parse().expect("literal")),
            };
            let groups = ["staff".to_owned()];
            let with_users = {
                let mut s = String::new();
                for i in 0..10_000usize {
                    let (hi, lo) = (i / 256, i % 256);
                    s.push_str(&format!(
                        "- : user{i} (grp{i}) EXCEPT root : 10.{hi}.{lo}.0/24, 10.{lo}.{hi}.7 LOCAL\n"
                    ));
                }
                s
            };
            let users_subject = Subject {
                groups: Groups::Complete(&groups),
                ..subject
            };
            let files = [
                ("bench file, 10 rules", bench_rules(10), subject),
                ("bench file, 10,000 rules", bench_rules(10_000), subject),
                ("users and groups, 10,000 rules", with_users, users_subject),
            ];
            for (name, text, subject) in &files {
                let text = text.as_bytes();
                assert_eq!(
                    decide(text, opts, subject),
                    decide_reference(text, opts, subject)
                );
                let runs = 200;
                let new = best_of(runs, || {
                    std::hint::black_box(decide(std::hint::black_box(text), opts, subject)).ok();
                });
                let old = best_of(runs, || {
                    std::hint::black_box(decide_reference(
                        std::hint::black_box(text),
                        opts,
                        subject,
                    ))
                    .ok();
                });
                let parse = best_of(runs, || {
                    std::hint::black_box(AccessRules::parse(std::hint::black_box(text), opts)).ok();
                });
                println!(
                    "{name:32} decide {:>8.1} µs (previous {:>8.1} µs, {:.2}×); parse {:>8.1} µs",
                    new.as_secs_f64() * 1e6,
                    old.as_secs_f64() * 1e6,
                    old.as_secs_f64() / new.as_secs_f64(),
                    parse.as_secs_f64() * 1e6,
                );
            }
        }
    }
}
