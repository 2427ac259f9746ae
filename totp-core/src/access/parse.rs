//! The one parser of rule files: bytes in, compact rules or the first error out.
//!
//! Every line is read once, left to right: one pass trims it, checks that it is
//! printable ASCII and finds its two field colons; then each list item is classified
//! and, for networks, read into integers by [`crate::addr::parse_network`]. The first
//! problem ends the parse. The checks run in a fixed order (length, bytes, shape,
//! permission, users, origins), which decides the message when a line has several
//! problems.
//!
//! A problem is recorded as a [`Problem`] (a kind and the span of the offending token)
//! and turned into its message only once, when the parse fails: the per-line code moves
//! small values, not strings.

use std::fmt::Write as _;

use super::{
    AccessError, AccessRules, List, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_RULES, OriginItem,
    ParseOptions, Rule, Span, UserItem, to_u32, to_usize,
};
use crate::addr::{self, NetworkError};

/// Longest user or group name accepted in a rule (as for `PAM_USER`).
const MAX_NAME_BYTES: usize = 256;
/// Offending tokens are quoted in errors; keep log lines short.
const MAX_QUOTED_BYTES: usize = 64;

pub(super) fn parse_file(text: &[u8], opts: ParseOptions) -> Result<AccessRules<'_>, AccessError> {
    check_file(text)?;
    // A rule line is rarely under 8 bytes, and a list usually has one item: reserving
    // that much up front spares the copies of growing vectors (reserved memory that is
    // never written is never touched).
    let guess = (text.len() / 8 + 1).min(MAX_RULES + 1);
    let mut out = AccessRules {
        text,
        rules: Vec::with_capacity(guess),
        users: Vec::with_capacity(guess),
        origins: Vec::with_capacity(guess),
    };
    let mut start = 0usize;
    let mut line_no = 0usize;
    while start <= text.len() {
        line_no += 1;
        let rest = text.get(start..).unwrap_or(&[]);
        match parse_line(rest, start, line_no, opts, &mut out) {
            Ok(len) => start += len + 1,
            Err(problem) => {
                return Err(AccessError {
                    line: Some(line_no),
                    message: problem.message(text),
                });
            }
        }
    }
    Ok(out)
}

fn check_file(text: &[u8]) -> Result<(), AccessError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(AccessError {
            line: None,
            message: format!("file larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    // NUL is refused even in a comment. `contains` on bytes is a memchr; the line is
    // counted only on failure.
    if text.contains(&0) {
        let nul = text.iter().position(|&b| b == 0).unwrap_or(0);
        let line = text.iter().take(nul).filter(|&&b| b == b'\n').count() + 1;
        return Err(AccessError {
            line: Some(line),
            message: "NUL byte".to_owned(),
        });
    }
    Ok(())
}

/// Which list a problem is in.
#[derive(Clone, Copy, Debug)]
enum Field {
    Users,
    Origins,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Users => "users",
            Field::Origins => "origins",
        }
    }
}

/// What is wrong with a line.
#[derive(Clone, Copy, Debug)]
enum Kind {
    TooLong,
    NotPrintable,
    Shape,
    Permission,
    TooManyRules,
    SecondExcept(Field),
    ExceptFirst(Field),
    ExceptLast(Field),
    Empty(Field),
    LocalInUsers,
    Group,
    Miscased,
    UserNetgroup,
    UserName,
    /// A name where an address belongs.
    NotNumeric,
    /// [`addr::parse_network`] refused the token; it says why when asked again.
    Network {
        allow_zero: bool,
    },
}

/// A problem and the token it is about (a span of the file; empty when none).
#[derive(Clone, Copy, Debug)]
struct Problem {
    kind: Kind,
    token: Span,
}

fn problem(kind: Kind) -> Problem {
    Problem {
        kind,
        token: Span { start: 0, end: 0 },
    }
}

fn about(kind: Kind, at: usize, token: &[u8]) -> Problem {
    Problem {
        kind,
        token: Span {
            start: to_u32(at),
            end: to_u32(at + token.len()),
        },
    }
}

impl Problem {
    fn message(self, text: &[u8]) -> String {
        let token = text
            .get(to_usize(self.token.start)..to_usize(self.token.end))
            .unwrap_or(&[]);
        let q = quote(token);
        match self.kind {
            Kind::TooLong => format!("line longer than {MAX_LINE_BYTES} bytes"),
            Kind::NotPrintable => {
                "rules may contain only printable ASCII (comments may hold anything)".to_owned()
            }
            Kind::Shape => "expected \"permission : users : origins\"".to_owned(),
            Kind::Permission => format!("permission must be \"+\" or \"-\", not {q}"),
            Kind::TooManyRules => format!("more than {MAX_RULES} rules"),
            Kind::SecondExcept(f) => {
                format!("only one EXCEPT is allowed in the {} field", f.name())
            }
            Kind::ExceptFirst(f) => {
                format!("EXCEPT needs items before it in the {} field", f.name())
            }
            Kind::ExceptLast(f) => {
                format!("EXCEPT needs items after it in the {} field", f.name())
            }
            Kind::Empty(f) => format!("empty {} field", f.name()),
            Kind::LocalInUsers => "LOCAL belongs in the origins field".to_owned(),
            Kind::Group => format!("invalid group item {q}"),
            Kind::Miscased => format!("keywords are uppercase: {q}"),
            Kind::UserNetgroup => format!("netgroups and user@host are not supported: {q}"),
            Kind::UserName => format!("invalid user name {q}"),
            Kind::NotNumeric => {
                let why = if is_miscased_keyword(token) {
                    "keywords are uppercase"
                } else if token.first() == Some(&b'.') {
                    "domain suffixes are not supported (no DNS); use addresses or CIDRs"
                } else if token.contains(&b'@') {
                    "netgroups are not supported"
                } else {
                    "host names and tty names are not supported (no DNS); use addresses, CIDRs or LOCAL"
                };
                format!("{why}: {q}")
            }
            Kind::Network { allow_zero } => {
                let mut m = q;
                if let Err(e) = addr::parse_network_bytes(token, allow_zero) {
                    let hint = match e {
                        NetworkError::InvalidAddress if token.last() == Some(&b'.') => {
                            " (partial addresses are not supported; write a CIDR such as 192.168.0.0/16)"
                        }
                        NetworkError::ZeroPrefix => {
                            " (set the module option that allows any network)"
                        }
                        _ => "",
                    };
                    let _ = write!(m, ": {e}{hint}");
                }
                m
            }
        }
    }
}

/// Byte classes, so that the line pass does one table look-up per byte.
const BLANK: u8 = 1;
/// Printable ASCII or blank: the only bytes a rule may hold.
const ALLOWED: u8 = 2;
const COLON: u8 = 4;
/// List items are separated by spaces, tabs or commas.
const SEPARATOR: u8 = 8;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < table.len() {
        // In range: `i` < 256.
        let b = i as u8;
        let mut class = 0;
        if b == b' ' || b == b'\t' {
            class |= BLANK | ALLOWED | SEPARATOR;
        }
        if b.is_ascii_graphic() {
            class |= ALLOWED;
        }
        if b == b':' {
            class |= COLON;
        }
        if b == b',' {
            class |= SEPARATOR;
        }
        table[i] = class;
        i += 1;
    }
    table
};

fn class(b: u8) -> u8 {
    CLASSES[usize::from(b)]
}

fn is_blank(b: u8) -> bool {
    class(b) & BLANK != 0
}

/// The line at the start of `rest` (byte offset `at` of the file); returns its length
/// without the newline. Blank lines and comments add nothing.
///
/// A rule line is read in one pass that also finds its end, so its bytes are not
/// searched for the newline first.
fn parse_line(
    rest: &[u8],
    at: usize,
    line_no: usize,
    opts: ParseOptions,
    out: &mut AccessRules<'_>,
) -> Result<usize, Problem> {
    let first = rest
        .iter()
        .position(|&b| !is_blank(b))
        .unwrap_or(rest.len());
    if rest
        .get(first)
        .is_none_or(|&b| b == b'#' || b == b'\n' || b == b'\r')
    {
        // Blank, comment or end of file: only the length is checked.
        let len = first + newline(rest.get(first..).unwrap_or(&[]));
        if len > MAX_LINE_BYTES {
            return Err(problem(Kind::TooLong));
        }
        // A CR is a blank at the end of a line only; elsewhere the line is a rule.
        let ends_in_cr = len >= 1 && first == len - 1 && rest.get(first) == Some(&b'\r');
        if rest.get(first) != Some(&b'\r') || first == len || ends_in_cr {
            return Ok(len);
        }
    }
    // One pass over the rest of the line: where it ends, which bytes occur, where the
    // text ends, where the first two colons are. Comments may hold any bytes; a rule
    // only printable ASCII and blanks, so that names and quoted tokens are plain text
    // from here on.
    let body = rest.get(first..).unwrap_or(&[]);
    let (mut all, mut end, mut len) = (u8::MAX, 0, body.len());
    let (mut c1, mut c2) = (None, None);
    for (i, &b) in body.iter().enumerate() {
        let c = class(b);
        if c & ALLOWED == 0 {
            if b == b'\n' {
                len = i;
                break;
            }
            all &= c;
        }
        if c & BLANK == 0 {
            end = i + 1;
        }
        if c & COLON != 0 {
            if c1.is_none() {
                c1 = Some(i);
            } else if c2.is_none() {
                c2 = Some(i);
            }
        }
    }
    if first + len > MAX_LINE_BYTES {
        return Err(problem(Kind::TooLong));
    }
    // One CR before the newline is part of the line ending, not of the rule.
    if let Some(text) = body.get(..len).and_then(|b| b.strip_suffix(b"\r")) {
        all = if text.iter().all(|&b| class(b) & ALLOWED != 0) {
            ALLOWED
        } else {
            0
        };
        end = text
            .iter()
            .rposition(|&b| !is_blank(b))
            .map_or(0, |i| i + 1);
    }
    if all & ALLOWED == 0 {
        return Err(problem(Kind::NotPrintable));
    }
    let at = at + first;
    let line = body.get(..end).unwrap_or(&[]);
    let (Some(c1), Some(c2)) = (c1, c2) else {
        return Err(problem(Kind::Shape));
    };
    let perm = line.get(..c1).unwrap_or(&[]);
    let skip = match perm.iter().position(|&b| !is_blank(b)) {
        Some(p) => match trim_end(perm.get(p..).unwrap_or(&[])) {
            b"+" => true,
            b"-" => false,
            other => return Err(about(Kind::Permission, at + p, other)),
        },
        None => return Err(about(Kind::Permission, at, &[])),
    };
    let users_field = line.get(c1 + 1..c2).unwrap_or(&[]);
    let users = user_list(users_field, at + c1 + 1, &mut out.users)?;
    let origins_field = line.get(c2 + 1..).unwrap_or(&[]);
    let origins = origin_list(origins_field, at + c2 + 1, skip, opts, &mut out.origins)?;

    if out.rules.len() == MAX_RULES {
        return Err(problem(Kind::TooManyRules));
    }
    out.rules.push(Rule {
        line: to_u32(line_no),
        text: Span {
            start: to_u32(at),
            end: to_u32(at + line.len()),
        },
        skip,
        users,
        origins,
    });
    Ok(first + len)
}

/// Where the first newline is, or the length.
fn newline(s: &[u8]) -> usize {
    s.iter().position(|&b| b == b'\n').unwrap_or(s.len())
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    s.get(..end).unwrap_or(&[])
}

/// The next item of a list from `*i`, with its offset; moves `*i` past it.
#[inline]
fn next_item<'l>(list: &'l [u8], i: &mut usize) -> Option<(usize, &'l [u8])> {
    let rest = list.get(*i..).unwrap_or(&[]);
    let start = *i + rest.iter().position(|&b| class(b) & SEPARATOR == 0)?;
    let rest = list.get(start..).unwrap_or(&[]);
    let len = rest
        .iter()
        .position(|&b| class(b) & SEPARATOR != 0)
        .unwrap_or(rest.len());
    *i = start + len;
    Some((start, rest.get(..len).unwrap_or(&[])))
}

/// Collects one list's items, with at most one `EXCEPT` that has items on both sides.
struct ListBuilder {
    start: u32,
    except: Option<u32>,
    field: Field,
}

impl ListBuilder {
    fn new<T>(out: &[T], field: Field) -> ListBuilder {
        ListBuilder {
            start: to_u32(out.len()),
            except: None,
            field,
        }
    }

    fn except(&mut self, here: usize) -> Result<(), Problem> {
        if self.except.is_some() {
            return Err(problem(Kind::SecondExcept(self.field)));
        }
        if to_u32(here) == self.start {
            return Err(problem(Kind::ExceptFirst(self.field)));
        }
        self.except = Some(to_u32(here));
        Ok(())
    }

    fn finish(self, end: usize) -> Result<List, Problem> {
        let end = to_u32(end);
        if end == self.start {
            return Err(problem(Kind::Empty(self.field)));
        }
        if self.except == Some(end) {
            return Err(problem(Kind::ExceptLast(self.field)));
        }
        Ok(List {
            start: self.start,
            except: self.except.unwrap_or(end),
            end,
        })
    }
}

/// `at`: where the field starts in the file, for name spans.
#[inline]
fn user_list(field: &[u8], at: usize, out: &mut Vec<UserItem>) -> Result<List, Problem> {
    let mut list = ListBuilder::new(out, Field::Users);
    let mut i = 0;
    while let Some((offset, token)) = next_item(field, &mut i) {
        let at = at + offset;
        let item = match token {
            b"ALL" => UserItem::All,
            b"EXCEPT" => {
                list.except(out.len())?;
                continue;
            }
            b"LOCAL" => return Err(problem(Kind::LocalInUsers)),
            _ if valid_name(token) && !is_miscased_keyword(token) => UserItem::Name(Span {
                start: to_u32(at),
                end: to_u32(at + token.len()),
            }),
            [b'(', name @ .., b')'] => {
                if !valid_name(name) {
                    return Err(about(Kind::Group, at, token));
                }
                UserItem::Group(Span {
                    start: to_u32(at + 1),
                    end: to_u32(at + 1 + name.len()),
                })
            }
            _ if is_miscased_keyword(token) => return Err(about(Kind::Miscased, at, token)),
            _ if token.contains(&b'@') => return Err(about(Kind::UserNetgroup, at, token)),
            _ => return Err(about(Kind::UserName, at, token)),
        };
        out.push(item);
    }
    list.finish(out.len())
}

#[inline]
fn origin_list(
    field: &[u8],
    at: usize,
    skip: bool,
    opts: ParseOptions,
    out: &mut Vec<OriginItem>,
) -> Result<List, Problem> {
    let mut list = ListBuilder::new(out, Field::Origins);
    let mut i = 0;
    while let Some((offset, token)) = next_item(field, &mut i) {
        let item = match token {
            b"ALL" => OriginItem::All,
            b"LOCAL" => OriginItem::Local,
            b"EXCEPT" => {
                list.except(out.len())?;
                continue;
            }
            _ => {
                // Whatever parses as a network starts with a digit or holds a colon;
                // anything else gets a message saying what pam_access would have done.
                let looks_numeric =
                    token.first().is_some_and(u8::is_ascii_digit) || token.contains(&b':');
                if !looks_numeric {
                    return Err(about(Kind::NotNumeric, at + offset, token));
                }
                // Only the include part of a skip rule widens who skips the code.
                let widens_skip = skip && list.except.is_none();
                let allow_zero = opts.allow_any_network || !widens_skip;
                match addr::parse_network_bytes(token, allow_zero) {
                    Ok(net) => OriginItem::Network(net),
                    Err(_) => {
                        return Err(about(Kind::Network { allow_zero }, at + offset, token));
                    }
                }
            }
        };
        out.push(item);
    }
    list.finish(out.len())
}

fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.first() != Some(&b'-')
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'$'))
}

/// A keyword in the wrong case would silently become a user called "all"; refuse it.
fn is_miscased_keyword(token: &[u8]) -> bool {
    matches!(token.len(), 3 | 5 | 6)
        && [&b"ALL"[..], b"EXCEPT", b"LOCAL"]
            .iter()
            .any(|k| token.eq_ignore_ascii_case(k) && token != *k)
}

/// Quotes part of a token for an error message; rule lines are printable ASCII, so this
/// cannot smuggle control characters into a log line.
fn quote(token: &[u8]) -> String {
    let shown = token.get(..MAX_QUOTED_BYTES).unwrap_or(token);
    let mut s = String::from_utf8_lossy(shown).into_owned();
    if token.len() > MAX_QUOTED_BYTES {
        s.push_str("...");
    }
    format!("\"{s}\"")
}
