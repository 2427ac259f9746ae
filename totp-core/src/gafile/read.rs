//! Reading: validation, the secret, key lookup, the typed [`Config`] view, scratch codes.

use super::*;

impl GaFile {
    /// Parses and fully validates a file (see the module docs).
    pub fn parse(bytes: &[u8]) -> Result<GaFile, GaFileError> {
        if bytes.is_empty() {
            return Err(GaFileError::Empty);
        }
        if bytes.len() > MAX_FILE_LEN {
            return Err(GaFileError::TooLarge);
        }
        if bytes.contains(&0) {
            return Err(GaFileError::ContainsNul);
        }
        // LF and CRLF files are accepted (GA writes LF; editors write CRLF). A lone CR would
        // let a rewrite insert a line where the reader does not see it, or inside line 1
        // (found by fuzzing), so such a file is refused rather than guessed at.
        if bytes
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && bytes.get(i + 1) != Some(&b'\n'))
        {
            return Err(GaFileError::BareCarriageReturn);
        }
        let file = GaFile {
            buf: Zeroizing::new(bytes.to_vec()),
        };
        file.secret()?;
        file.config()?;
        Ok(file)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// A copy of the bytes to write, wiped on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.buf.to_vec())
    }

    /// The secret from line 1 (everything up to the first LF), GA-decoded.
    pub fn secret(&self) -> Result<Secret, GaFileError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(self.buf.len());
        let bytes = Zeroizing::new(
            base32::decode_lenient(&self.buf[..end])
                .map_err(|e| GaFileError::BadSecret { offset: e.offset })?,
        );
        if bytes.is_empty() {
            return Err(GaFileError::EmptySecret);
        }
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(GaFileError::SecretTooLong);
        }
        Ok(Secret::from_slice(&bytes))
    }

    /// Raw value of the first `" KEY` line (leading blanks removed, up to CR/LF).
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.option_lines()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// `(key, value)` of every `" KEY value` line, in file order.
    fn option_lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let buf: &[u8] = &self.buf;
        spans(buf)
            .filter_map(move |s| option_line(buf, s))
            .map(move |(key, (a, b))| (key, &buf[a..b]))
    }

    /// Whether a `" KEY` line exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Scratch codes in file order, as GA sees them (scanning stops at the first
    /// line that is neither a code, blank, nor a `"` line).
    pub fn scratch_codes(&self) -> Zeroizing<Vec<u32>> {
        Zeroizing::new(
            self.scratch_lines()
                .into_iter()
                .map(|(_, _, v)| v)
                .collect(),
        )
    }

    /// The typed, validated view of the option lines.
    pub fn config(&self) -> Result<Config, GaFileError> {
        fn bad(key: &'static str) -> GaFileError {
            GaFileError::BadValue { key }
        }
        // One pass over the lines; the first line of a key wins, as in `get`.
        let options: Vec<(&[u8], &[u8])> = self.option_lines().collect();
        let get = |key: &str| {
            options
                .iter()
                .find(|(k, _)| *k == key.as_bytes())
                .map(|&(_, v)| v)
        };
        let counter = match get(KEY_HOTP_COUNTER) {
            None => 0,
            Some(v) => parse_hotp_counter(v).ok_or(bad(KEY_HOTP_COUNTER))?,
        };
        let totp_marker = self.buf.windows(11).any(|w| w == b"\" TOTP_AUTH");
        let mode = if counter >= 1 {
            Mode::Hotp { counter }
        } else if totp_marker {
            Mode::Totp
        } else {
            Mode::ScratchOnly
        };
        let window = get(KEY_WINDOW_SIZE)
            .map(|v| ga_small_number(v, u64::from(WIDEST_WINDOW)).ok_or(bad(KEY_WINDOW_SIZE)))
            .transpose()?;
        let step = get(KEY_STEP_SIZE)
            .map(|v| ga_small_number(v, LONGEST_STEP_SECS).ok_or(bad(KEY_STEP_SIZE)))
            .transpose()?;
        let disallow_reuse = get(KEY_DISALLOW_REUSE)
            .map(|v| parse_reuse_list(v).ok_or(bad(KEY_DISALLOW_REUSE)))
            .transpose()?;
        let rate_limit = get(KEY_RATE_LIMIT)
            .map(|v| parse_rate_limit(v).ok_or(bad(KEY_RATE_LIMIT)))
            .transpose()?;
        let time_skew = get(KEY_TIME_SKEW)
            .map(|v| parse_time_skew(v).ok_or(bad(KEY_TIME_SKEW)))
            .transpose()?;
        let algorithm = get(KEY_ALGORITHM)
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad(KEY_ALGORITHM))
            })
            .transpose()?
            .unwrap_or_default();
        let digits = get(KEY_DIGITS)
            .map(|v| {
                std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad(KEY_DIGITS))
            })
            .transpose()?
            .unwrap_or_default();
        let last_step = get(KEY_LAST_STEP)
            .map(|v| {
                strict_u64(v)
                    .filter(|&s| s <= MAX_COUNTER)
                    .ok_or(bad(KEY_LAST_STEP))
            })
            .transpose()?;
        let failures = get(KEY_FAILURES)
            .map(|v| parse_failures(v).ok_or(bad(KEY_FAILURES)))
            .transpose()?;
        let grace = (0..10u8)
            .filter_map(|slot| {
                let key = [b'L', b'A', b'S', b'T', b'0' + slot];
                let key = std::str::from_utf8(&key).ok()?;
                get(key).and_then(|v| parse_grace(slot, v))
            })
            .collect();
        Ok(Config {
            mode,
            window,
            step,
            disallow_reuse,
            rate_limit,
            time_skew,
            resetting_time_skew: get(KEY_RESETTING_TIME_SKEW).is_some(),
            algorithm,
            digits,
            last_step,
            failures,
            grace,
        })
    }

    /// `(line start, end of its CR/LF run, value)` for each visible scratch code.
    pub(super) fn scratch_lines(&self) -> Vec<(usize, usize, u32)> {
        self.scratch_scan().0
    }

    /// The visible scratch lines and where GA's scan of them ends: the start of the
    /// first line that is neither a code, blank, nor a `"` line, else the file's end.
    pub(super) fn scratch_scan(&self) -> (Vec<(usize, usize, u32)>, usize) {
        let buf: &[u8] = &self.buf;
        let mut out = Vec::new();
        let Some(mut pos) = buf.iter().position(|&b| b == b'\n') else {
            return (out, buf.len());
        };
        loop {
            while pos < buf.len() && is_eol(buf[pos]) {
                pos += 1;
            }
            if pos >= buf.len() {
                return (out, buf.len());
            }
            if buf[pos] == b'"' {
                pos = buf[pos..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(buf.len(), |p| pos + p);
                continue;
            }
            let s = span_at(buf, pos);
            match parse_scratch_line(&buf[s.start..s.end]) {
                Some(v) => out.push((s.start, s.next, v)),
                None => return (out, pos),
            }
            pos = s.end;
        }
    }
}
