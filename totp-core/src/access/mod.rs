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
//! - Users: `ALL`, user names, `(group)` (`(group@domain)` too). Origins: `ALL`,
//!   `LOCAL`, IPv4/IPv6 addresses and CIDR networks (see [`crate::addr`]). In both lists
//!   one `EXCEPT` splits the list into an include part and an exception part, as in
//!   pam_access; list items are separated by spaces, tabs or commas (pam_access's
//!   default `listsep`).
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
//! A `(group)` item cannot be decided when the NSS group lookup failed, and neither an
//! address item nor `LOCAL` can be decided for an [`Origin::Unknown`] peer (a host name
//! in `PAM_RHOST`, or sudo inside SSH: pam_access would count the latter as `LOCAL`). A
//! user name that equals the user's only when case is ignored (pam_access compares
//! without case) cannot be decided either. Such a rule "maybe matches". A `-` rule that
//! maybe matches decides "require"; a `+` rule that maybe matches is passed over. So the
//! result is "skip" only if it would be "skip" whatever the missing facts are. `ALL`
//! needs no facts: in the origins field it matches every origin, an unresolved host name
//! included, because the admin wrote it.
//!
//! User names are compared with the NSS `pw_name`, never the raw `PAM_USER`, so that
//! `Root` cannot slip past `ALL EXCEPT root`; only an exact match is a match, and a
//! match ignoring case is a "maybe".
//!
//! # Layout
//!
//! One parser ([`parse`](AccessRules::parse), in `parse.rs`) turns the file into compact
//! rules: a rule is a line number, a span of the file and two ranges into flat item
//! vectors; names are spans of the file, networks are integer address and mask. The file
//! is parsed (and so validated as a whole) once per login, then `eval.rs` walks the rules
//! in order with the peer address already turned into an integer. `explain.rs` renders
//! the same walk for `totp-enroll explain`; `groups.rs` holds the group facts and the
//! `skip_group=`/`require_group=` decision; `skip.rs` the two together, as the module
//! and `totp-state audit` decide a skip.

use std::fmt;

use crate::addr::{IpNetwork, Origin};

mod eval;
mod explain;
mod groups;
mod parse;
mod skip;
#[cfg(test)]
mod tests;

pub use explain::Explanation;
pub use groups::{GroupDecision, GroupSkipReason, Groups, group_skip_decision};
pub use skip::{RuleFile, SkipDecision, SkipReason, skip_decision};

/// A rule file larger than this is refused outright.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// A longer line is refused (pam_access reads lines into a `BUFSIZ` buffer).
pub const MAX_LINE_BYTES: usize = 8192;
/// More rules than this are refused.
pub const MAX_RULES: usize = 100_000;

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
pub enum SkipVerdict {
    /// Do not ask for the code: the module returns `PAM_IGNORE` (never `PAM_SUCCESS`).
    Skip,
    /// Ask for the code.
    Require,
}

impl fmt::Display for SkipVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipVerdict::Skip => "skip: the code is not asked for (PAM_IGNORE)",
            SkipVerdict::Require => "require: the code is asked for",
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

/// The skip verdict plus the deciding rule (`None`: no rule matched, so the code is required).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleDecision {
    /// Skip or require.
    pub verdict: SkipVerdict,
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
    /// From [`crate::addr::classify_origin`].
    pub origin: Origin,
}

/// The raw PAM items the explain mode starts from (before [`Subject`]'s origin is classified).
#[derive(Clone, Copy, Debug)]
pub struct RawSubject<'a> {
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

/// A parsed, validated rule file, borrowing the file's bytes.
///
/// Compact by design: every rule's items live in two flat vectors shared by all rules,
/// and names and rule texts are spans of the file, so parsing costs a handful of
/// allocations however many rules there are. To decide one login, [`decide`] runs the
/// same parser and the same matching without keeping the rules.
#[derive(Clone, Debug, Default)]
pub struct AccessRules<'t> {
    /// The file as read; spans point into it.
    text: &'t [u8],
    rules: Vec<Rule>,
    items: Items,
}

impl<'t> AccessRules<'t> {
    /// Parses a rule file. Any error rejects the whole file.
    pub fn parse(text: &'t [u8], opts: ParseOptions) -> Result<AccessRules<'t>, AccessError> {
        parse::parse_file(text, opts)
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules (every login then requires the code).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Decides one login straight from the rule file: the same parser and the same matching
/// as [`AccessRules::parse`] followed by [`AccessRules::evaluate`], and the whole file is
/// still validated, but each rule is matched as it is parsed and then dropped. Memory
/// stays at one rule's items however long the file is, which on a fresh login process
/// means no page faults that grow with the file. This is the per-authentication path.
pub fn decide(
    text: &[u8],
    opts: ParseOptions,
    subject: &Subject<'_>,
) -> Result<RuleDecision, AccessError> {
    eval::decide(text, opts, subject)
}

/// The items of the rules parsed so far; a rule's lists index into these.
#[derive(Clone, Debug, Default)]
struct Items {
    users: Vec<UserItem>,
    origins: Vec<OriginItem>,
}

impl Items {
    fn clear(&mut self) {
        self.users.clear();
        self.origins.clear();
    }
}

/// The bytes of a span of the file.
fn span_of(text: &[u8], span: ByteRange) -> &[u8] {
    text.get(to_usize(span.start)..to_usize(span.end))
        .unwrap_or(&[])
}

/// A rule as a [`MatchedRule`] (allocates its text; rule text is printable ASCII).
fn matched(text: &[u8], rule: &Rule) -> MatchedRule {
    MatchedRule {
        line: to_usize(rule.line),
        text: String::from_utf8_lossy(span_of(text, rule.text)).into_owned(),
    }
}

/// Byte range of the file. `u32` keeps rules small; `MAX_FILE_BYTES` keeps every offset
/// far below `u32::MAX`.
#[derive(Clone, Copy, Debug)]
struct ByteRange {
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

#[derive(Clone, Copy, Debug)]
struct Rule {
    /// 1-based line number.
    line: u32,
    /// The rule as written, trimmed.
    text: ByteRange,
    skip: bool,
    /// In [`Items::users`].
    users: List,
    /// In [`Items::origins`].
    origins: List,
}

/// Names are spans of the file.
#[derive(Clone, Copy, Debug)]
enum UserItem {
    All,
    Name(ByteRange),
    Group(ByteRange),
}

#[derive(Clone, Copy, Debug)]
enum OriginItem {
    All,
    Local,
    Network(IpNetwork),
}

fn to_u32(n: usize) -> u32 {
    // Unreachable saturation: every count and offset is bounded by MAX_FILE_BYTES.
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
