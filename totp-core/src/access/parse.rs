//! The one parser of rule files: bytes in, compact rules or the first error out.
//!
//! Every line is read left to right, in a few short passes: its end, whether it is
//! printable ASCII (a pass without early exit, so it runs on whole vectors), its two
//! field colons; then each list item is classified as its end is looked for, a network
//! being read into integers in that same pass (the grammar of
//! [`crate::addr::parse_network`], fed byte by byte). The first problem ends the parse. The checks run in a fixed order (length, bytes, shape,
//! permission, users, origins), which decides the message when a line has several
//! problems.
//!
//! A problem is recorded as a [`Problem`] (a kind and the span of the offending token)
//! and turned into its message only once, when the parse fails: the per-line code moves
//! small values, not strings.

use std::fmt::Write as _;

use super::{
    AccessError, AccessRules, ByteRange, Items, List, MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_RULES,
    OriginItem, ParseOptions, Rule, UserItem, to_u32, to_usize,
};
use crate::addr::{self, NetworkError};

/// Longest user or group name accepted in a rule (as for `PAM_USER`).
const MAX_NAME_BYTES: usize = 256;
/// Offending tokens are quoted in errors; keep log lines short.
const MAX_QUOTED_BYTES: usize = 64;

pub(super) fn parse_file(text: &[u8], opts: ParseOptions) -> Result<AccessRules<'_>, AccessError> {
    // A rule line is rarely under 8 bytes, and a list usually has one item: reserving
    // that much up front spares the copies of growing vectors (reserved memory that is
    // never written is never touched).
    let guess = (text.len() / 8 + 1).min(MAX_RULES + 1);
    let mut rules = Vec::with_capacity(guess);
    let mut items = Items {
        users: Vec::with_capacity(guess),
        origins: Vec::with_capacity(guess),
    };
    parse_each(text, opts, &mut items, |rule, _| rules.push(rule))?;
    Ok(AccessRules { text, rules, items })
}

/// Parses every line and hands each rule to `rule`, its items being the last ones in
/// `items` (which `rule` may clear once it is done with them).
pub(super) fn parse_each(
    text: &[u8],
    opts: ParseOptions,
    items: &mut Items,
    mut rule: impl FnMut(Rule, &mut Items),
) -> Result<(), AccessError> {
    check_file(text)?;
    let mut start = 0usize;
    let mut line_no = 0usize;
    let mut count = 0usize;
    while start <= text.len() {
        line_no += 1;
        let rest = text.get(start..).unwrap_or(&[]);
        let fail = |problem: Problem| AccessError {
            line: Some(line_no),
            message: problem.message(text),
        };
        let (len, parsed) = parse_line(rest, start, line_no, opts, items).map_err(fail)?;
        if let Some(parsed) = parsed {
            count += 1;
            if count > MAX_RULES {
                return Err(fail(problem(ProblemKind::TooManyRules)));
            }
            rule(parsed, items);
        }
        start += len + 1;
    }
    Ok(())
}

fn check_file(text: &[u8]) -> Result<(), AccessError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(AccessError {
            line: None,
            message: format!("file larger than {MAX_FILE_BYTES} bytes"),
        });
    }
    // Editors that add one do so silently, and it makes even a first comment line a
    // bad rule: say what it is.
    if text.starts_with(b"\xef\xbb\xbf") {
        return Err(AccessError {
            line: Some(1),
            message: "the file starts with a UTF-8 byte-order mark; save it without one".to_owned(),
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
enum ProblemKind {
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
    kind: ProblemKind,
    token: ByteRange,
}

fn problem(kind: ProblemKind) -> Problem {
    Problem {
        kind,
        token: ByteRange { start: 0, end: 0 },
    }
}

fn about(kind: ProblemKind, at: usize, token: &[u8]) -> Problem {
    Problem {
        kind,
        token: ByteRange {
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
            ProblemKind::TooLong => format!("line longer than {MAX_LINE_BYTES} bytes"),
            ProblemKind::NotPrintable => {
                "rules may contain only printable ASCII (comments may hold anything)".to_owned()
            }
            ProblemKind::Shape => "expected \"permission : users : origins\"".to_owned(),
            ProblemKind::Permission => format!("permission must be \"+\" or \"-\", not {q}"),
            ProblemKind::TooManyRules => format!("more than {MAX_RULES} rules"),
            ProblemKind::SecondExcept(f) => {
                format!("only one EXCEPT is allowed in the {} field", f.name())
            }
            ProblemKind::ExceptFirst(f) => {
                format!("EXCEPT needs items before it in the {} field", f.name())
            }
            ProblemKind::ExceptLast(f) => {
                format!("EXCEPT needs items after it in the {} field", f.name())
            }
            ProblemKind::Empty(f) => format!("empty {} field", f.name()),
            ProblemKind::LocalInUsers => "LOCAL belongs in the origins field".to_owned(),
            ProblemKind::Group => format!("invalid group item {q}"),
            ProblemKind::Miscased => format!("keywords are uppercase: {q}"),
            ProblemKind::UserNetgroup => format!("netgroups and user@host are not supported: {q}"),
            ProblemKind::UserName => format!("invalid user name {q}"),
            ProblemKind::NotNumeric => {
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
            ProblemKind::Network { allow_zero } => {
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
                    if e == NetworkError::InvalidPrefix {
                        netmask_hint(&mut m, token);
                    }
                }
                m
            }
        }
    }
}

/// pam_access also takes a dotted netmask (`10.0.0.0/255.0.0.0`); this parser keeps one
/// spelling, so the error names the prefix length the mask stands for.
fn netmask_hint(m: &mut String, token: &[u8]) {
    let Some((addr, mask)) = std::str::from_utf8(token)
        .ok()
        .and_then(|t| t.split_once('/'))
    else {
        return;
    };
    let Ok(mask) = mask.parse::<std::net::Ipv4Addr>() else {
        return;
    };
    let bits = u32::from(mask);
    let prefix = bits.leading_ones();
    if bits.checked_shl(prefix).unwrap_or(0) == 0 {
        let _ = write!(
            m,
            " (a netmask is written as a prefix length: {addr}/{prefix})"
        );
    } else {
        m.push_str(" (a netmask is written as a prefix length; this one is not contiguous)");
    }
}

/// Byte classes: one table look-up per byte where the item loops ask what a byte is.
const BLANK: u8 = 1;
/// List items are separated by spaces, tabs or commas.
const SEPARATOR: u8 = 2;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    table[b' ' as usize] = BLANK | SEPARATOR;
    table[b'\t' as usize] = BLANK | SEPARATOR;
    table[b',' as usize] = SEPARATOR;
    table
};

fn class(b: u8) -> u8 {
    CLASSES[usize::from(b)]
}

fn is_blank(b: u8) -> bool {
    class(b) & BLANK != 0
}

// Inlined, as are the list readers below: their small results, returned through memory,
// stall store forwarding on this per-line path (perf).
/// The line at the start of `rest` (byte offset `at` of the file); returns its length
/// without the newline. Blank lines and comments add nothing.
#[inline(always)]
fn parse_line(
    rest: &[u8],
    at: usize,
    line_no: usize,
    opts: ParseOptions,
    out: &mut Items,
) -> Result<(usize, Option<Rule>), Problem> {
    let len = newline(rest);
    if len > MAX_LINE_BYTES {
        return Err(problem(ProblemKind::TooLong));
    }
    let raw = rest.get(..len).unwrap_or(&[]);
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    let Some(first) = raw.iter().position(|&b| !is_blank(b)) else {
        return Ok((len, None));
    };
    if raw.get(first) == Some(&b'#') {
        return Ok((len, None));
    }
    // Comments may hold any bytes; a rule only printable ASCII and blanks, so that names
    // and quoted tokens are plain text from here on. A fold rather than `all`: without
    // the early exit the check runs on whole vectors of bytes.
    let printable = raw.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_graphic() | (b == b' ') | (b == b'\t'))
    });
    if !printable {
        return Err(problem(ProblemKind::NotPrintable));
    }
    let end = raw
        .iter()
        .rposition(|&b| !is_blank(b))
        .map_or(first, |i| i + 1);
    let line = raw.get(first..end).unwrap_or(&[]);
    let at = at + first;
    let c1 = colon(line, 0).ok_or(problem(ProblemKind::Shape))?;
    let c2 = colon(line, c1 + 1).ok_or(problem(ProblemKind::Shape))?;
    let perm = line.get(..c1).unwrap_or(&[]);
    let skip = match perm.iter().position(|&b| !is_blank(b)) {
        Some(p) => match trim_end(perm.get(p..).unwrap_or(&[])) {
            b"+" => true,
            b"-" => false,
            other => return Err(about(ProblemKind::Permission, at + p, other)),
        },
        None => return Err(about(ProblemKind::Permission, at, &[])),
    };
    let users_field = line.get(c1 + 1..c2).unwrap_or(&[]);
    let users = user_list(users_field, at + c1 + 1, &mut out.users)?;
    let origins_field = line.get(c2 + 1..).unwrap_or(&[]);
    let origins = origin_list(origins_field, at + c2 + 1, skip, opts, &mut out.origins)?;

    let rule = Rule {
        line: to_u32(line_no),
        text: ByteRange {
            start: to_u32(at),
            end: to_u32(at + line.len()),
        },
        skip,
        users,
        origins,
    };
    Ok((len, Some(rule)))
}

/// The first colon at or after `from`.
fn colon(line: &[u8], from: usize) -> Option<usize> {
    let rest = line.get(from..)?;
    Some(from + rest.iter().position(|&b| b == b':')?)
}

/// Where the first newline is, or the length. Eight bytes at a time: a word holds a
/// newline exactly when the classic "has a zero byte" test fires on it XOR newlines.
/// (No SIMD library: its CPU feature detection would run again on every `dlopen` of the
/// module, which costs more than it saves on short files.)
#[inline(always)]
fn newline(s: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const NEWLINES: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let mut chunks = s.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word) ^ NEWLINES;
        if x.wrapping_sub(ONES) & !x & HIGHS != 0 {
            break;
        }
        at += 8;
    }
    let rest = s.get(at..).unwrap_or(&[]);
    at + rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len())
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s.iter().rposition(|&b| !is_blank(b)).map_or(0, |i| i + 1);
    s.get(..end).unwrap_or(&[])
}

/// The next item of a list from `*i`, with its offset; moves `*i` past it.
#[inline(always)]
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

    #[inline(always)]
    fn except(&mut self, here: usize) -> Result<(), Problem> {
        if self.except.is_some() {
            return Err(problem(ProblemKind::SecondExcept(self.field)));
        }
        if to_u32(here) == self.start {
            return Err(problem(ProblemKind::ExceptFirst(self.field)));
        }
        self.except = Some(to_u32(here));
        Ok(())
    }

    #[inline(always)]
    fn finish(self, end: usize) -> Result<List, Problem> {
        let end = to_u32(end);
        if end == self.start {
            return Err(problem(ProblemKind::Empty(self.field)));
        }
        if self.except == Some(end) {
            return Err(problem(ProblemKind::ExceptLast(self.field)));
        }
        Ok(List {
            start: self.start,
            except: self.except.unwrap_or(end),
            end,
        })
    }
}

/// `at`: where the field starts in the file, for name spans.
#[inline(always)]
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
            b"LOCAL" => return Err(problem(ProblemKind::LocalInUsers)),
            _ if valid_name(token) && !is_miscased_keyword(token) => UserItem::Name(ByteRange {
                start: to_u32(at),
                end: to_u32(at + token.len()),
            }),
            [b'(', name @ .., b')'] => {
                if !valid_group_name(name) {
                    return Err(about(ProblemKind::Group, at, token));
                }
                UserItem::Group(ByteRange {
                    start: to_u32(at + 1),
                    end: to_u32(at + 1 + name.len()),
                })
            }
            _ if is_miscased_keyword(token) => return Err(about(ProblemKind::Miscased, at, token)),
            _ if token.contains(&b'@') => return Err(about(ProblemKind::UserNetgroup, at, token)),
            _ => return Err(about(ProblemKind::UserName, at, token)),
        };
        out.push(item);
    }
    list.finish(out.len())
}

#[inline(always)]
fn origin_list(
    field: &[u8],
    at: usize,
    skip: bool,
    opts: ParseOptions,
    out: &mut Vec<OriginItem>,
) -> Result<List, Problem> {
    let mut list = ListBuilder::new(out, Field::Origins);
    let mut i = 0;
    loop {
        while field.get(i).is_some_and(|&b| class(b) & SEPARATOR != 0) {
            i += 1;
        }
        if i >= field.len() {
            break;
        }
        // The item is read as a network while its end is looked for: one pass.
        let start = i;
        let mut reader = addr::NetworkReader::default();
        while let Some(&b) = field.get(i).filter(|&&b| class(b) & SEPARATOR == 0) {
            reader.push(b);
            i += 1;
        }
        let token = field.get(start..i).unwrap_or(&[]);
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
                    return Err(about(ProblemKind::NotNumeric, at + start, token));
                }
                // Only the include part of a skip rule widens who skips the code.
                let widens_skip = skip && list.except.is_none();
                let allow_zero = opts.allow_any_network || !widens_skip;
                match reader.finish(token, allow_zero) {
                    Ok(net) => OriginItem::Network(net),
                    Err(_) => {
                        return Err(about(
                            ProblemKind::Network { allow_zero },
                            at + start,
                            token,
                        ));
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

/// Inside parentheses `@` cannot mean a netgroup or `user@host`, so a group may have
/// it: SSSD names a domain's groups `admins@ad.example.com` when it qualifies names.
fn valid_group_name(name: &[u8]) -> bool {
    match name.iter().position(|&b| b == b'@') {
        None => valid_name(name),
        Some(at) => {
            let (group, rest) = name.split_at(at);
            let domain = rest.get(1..).unwrap_or(&[]);
            valid_name(group) && valid_name(domain) && name.len() <= MAX_NAME_BYTES
        }
    }
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
