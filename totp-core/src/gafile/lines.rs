//! The file as lines (CR/LF runs end a line) and GA's `" KEY value` lines.

/// One line: content is `start..end`, the CR/LF run after it ends at `next`.
#[derive(Clone, Copy, Debug)]
pub(super) struct LineSpan {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) next: usize,
}

pub(super) fn is_eol(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

pub(super) fn span_at(buf: &[u8], start: usize) -> LineSpan {
    let end = buf[start..]
        .iter()
        .position(|&b| is_eol(b))
        .map_or(buf.len(), |p| start + p);
    let next = end + buf[end..].iter().take_while(|&&b| is_eol(b)).count();
    LineSpan { start, end, next }
}

/// GA walks lines with `strcspn("\r\n")` / `strspn("\r\n")` from the start.
pub(super) fn spans(buf: &[u8]) -> impl Iterator<Item = LineSpan> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= buf.len() {
            return None;
        }
        let s = span_at(buf, pos);
        pos = s.next;
        Some(s)
    })
}

/// GA recognises `" KEY` only at the start of a line that follows a LF, with KEY
/// followed by end of line, space or tab. Returns the key and the value range (leading
/// blanks skipped).
pub(super) fn option_line(buf: &[u8], s: LineSpan) -> Option<(&[u8], (usize, usize))> {
    if s.start == 0 || buf[s.start - 1] != b'\n' {
        return None;
    }
    let rest = buf[s.start..s.end].strip_prefix(b"\" ")?;
    let key_len = rest
        .iter()
        .take_while(|&&b| b != b' ' && b != b'\t')
        .count();
    let (key, value) = rest.split_at(key_len);
    let skip = value
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    Some((key, (s.end - value.len() + skip, s.end)))
}

/// The value range of `key`'s line, if `s` is one (see [`option_line`]).
pub(super) fn match_key(buf: &[u8], s: LineSpan, key: &[u8]) -> Option<(usize, usize)> {
    option_line(buf, s)
        .filter(|&(k, _)| k == key)
        .map(|(_, range)| range)
}

pub(super) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
