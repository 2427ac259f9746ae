//! Strict parsers for the values of known keys and for scratch-code lines.

use super::*;

/// `strtoul`-like scan: optional blanks, optional `+`, at least one digit, no
/// overflow. Unlike `strtoul`, a `-` is refused instead of wrapping.
pub(super) fn scan_u64(s: &[u8], mut i: usize) -> Option<(u64, usize)> {
    while i < s.len() && matches!(s[i], b' ' | b'\t' | 0x0b | 0x0c) {
        i += 1;
    }
    if s.get(i) == Some(&b'+') {
        i += 1;
    }
    let start = i;
    let mut v: u64 = 0;
    while let Some(d) = s.get(i).filter(|b| b.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    (i > start).then_some((v, i))
}

/// A plain decimal: digits only, nothing else.
pub(super) fn strict_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    match scan_u64(s, 0) {
        Some((v, end)) if end == s.len() => Some(v),
        _ => None,
    }
}

/// GA's `WINDOW_SIZE`/`STEP_SIZE` reading: a number, then end or blank (text after
/// a blank is ignored, as in GA).
pub(super) fn ga_small_number(s: &[u8], max: u64) -> Option<u32> {
    let (v, end) = scan_u64(s, 0)?;
    if end < s.len() && !matches!(s[end], b' ' | b'\t') {
        return None;
    }
    (1..=max).contains(&v).then_some(v as u32)
}

pub(super) fn parse_rate_limit(s: &[u8]) -> Option<RateLimit> {
    let (attempts, mut i) = scan_u64(s, 0)?;
    if !(1..=100).contains(&attempts) || !matches!(s.get(i), Some(b' ' | b'\t')) {
        return None;
    }
    let (interval, j) = scan_u64(s, i)?;
    if !(1..=super::LONGEST_RATE_LIMIT_SECS).contains(&interval) {
        return None;
    }
    i = j;
    let mut timestamps = Vec::new();
    while i < s.len() {
        // A trailing blank makes the next scan fail: GA's "Invalid list of timestamps".
        if !matches!(s[i], b' ' | b'\t') {
            return None;
        }
        let (ts, j) = scan_u64(s, i)?;
        if ts > MAX_UNIX_TIME {
            return None;
        }
        timestamps.push(ts);
        i = j;
    }
    Some(RateLimit {
        attempts: attempts as u32,
        interval_secs: interval as u32,
        timestamps,
    })
}

pub(super) fn parse_reuse_list(s: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\r' | b'\n') {
            i += 1;
        }
        if i >= s.len() {
            return Some(out);
        }
        let (v, end) = scan_u64(s, i)?;
        if end < s.len() && !matches!(s[end], b' ' | b'\t' | b'\r' | b'\n') {
            return None;
        }
        if v > MAX_COUNTER {
            return None;
        }
        out.push(v);
        i = end;
    }
}

/// GA reads `HOTP_COUNTER` and `TIME_SKEW` with `strtol`: an optional sign, digits, and
/// whatever follows is ignored, so `" HOTP_COUNTER 7 ` (a trailing blank left by an
/// editor or a template) is counter 7 to GA. We take the number when the end of the
/// line or a blank follows it, as for `WINDOW_SIZE`; any other text after the digits
/// (`7x`), or no digits at all, is malformed (GA would read 7 or 0: a guess we refuse).
/// Returns the sign (`true` for `-`) and the magnitude.
pub(super) fn ga_signed(s: &[u8]) -> Option<(bool, u64)> {
    let (neg, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (digits, tail) = rest.split_at(n);
    if tail.first().is_some_and(|b| !matches!(b, b' ' | b'\t')) {
        return None;
    }
    strict_u64(digits).map(|v| (neg, v))
}

/// `HOTP_COUNTER`: see [`ga_signed`]; a negative counter is refused.
pub(super) fn parse_hotp_counter(s: &[u8]) -> Option<u64> {
    match ga_signed(s)? {
        (false, v) if v <= MAX_COUNTER => Some(v),
        _ => None,
    }
}

pub(super) fn parse_time_skew(s: &[u8]) -> Option<i64> {
    let (neg, v) = ga_signed(s)?;
    let v = i64::try_from(v).ok()?;
    (v <= MAX_TIME_SKEW).then_some(if neg { -v } else { v })
}

pub(super) fn parse_failures(s: &[u8]) -> Option<Failures> {
    let sp = s.iter().position(|&b| b == b' ')?;
    let count = u32::try_from(strict_u64(&s[..sp])?).ok()?;
    let last = strict_u64(&s[sp + 1..])?;
    (count <= MAX_FAILURE_COUNT && last <= MAX_UNIX_TIME).then_some(Failures { count, last })
}

/// `sscanf(" %255[0-9a-zA-Z:%.-] %lu ")` as GA reads `LASTn`.
pub(super) fn parse_grace(slot: u8, s: &[u8]) -> Option<GraceEntry> {
    let host_len = s
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'%' | b'.' | b'-'))
        .count();
    if host_len == 0 || host_len > 255 {
        return None;
    }
    let (when, _) =
        scan_u64(s, host_len).filter(|_| matches!(s.get(host_len), Some(b' ' | b'\t')))?;
    let host = String::from_utf8(s[..host_len].to_vec()).ok()?;
    Some(GraceEntry { slot, host, when })
}

/// A scratch line as GA's `strtol` reads it: blanks, optional sign, digits, then
/// end of line; value 10000000..=99999999.
pub(super) fn parse_scratch_line(line: &[u8]) -> Option<u32> {
    let mut i = line
        .iter()
        .take_while(|&&b| matches!(b, b' ' | b'\t' | 0x0b | 0x0c))
        .count();
    if line.get(i) == Some(&b'-') {
        return None;
    }
    if line.get(i) == Some(&b'+') {
        i += 1;
    }
    let digits = &line[i..];
    if digits.len() > 18 {
        return None;
    }
    let v = strict_u64(digits)?;
    (u64::from(SCRATCH_MIN)..=u64::from(SCRATCH_MAX))
        .contains(&v)
        .then_some(v as u32)
}
