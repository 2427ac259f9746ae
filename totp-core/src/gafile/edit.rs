//! Editing in place with GA's `set_cfg_value` rules, and new enrollments.

use super::*;

impl GaFile {
    /// GA's `set_cfg_value`: replace the first `" KEY` line (and the CR/LF run after
    /// it) with `" KEY value\n`, delete later duplicates, or insert the line right
    /// after line 1 when the key is absent. Unlike GA, a line 1 without any line
    /// break gets a LF first, instead of the new line being glued onto the secret.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), GaFileError> {
        if !valid_key(key) {
            return Err(GaFileError::BadKey);
        }
        if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err(GaFileError::BadValueBytes);
        }
        let line = Zeroizing::new(format!("\" {key} {value}\n").into_bytes());
        let (start, stop) = match self.dedup_key(key) {
            Some(s) => (s.start, s.next),
            None => return self.insert_after_first_line(&line),
        };
        self.splice(start, stop, &[&line])
    }

    /// Removes every `" KEY` line with the CR/LF run after it. Returns whether any
    /// line was removed. (GA never removes keys; we use it for our own keys.)
    pub fn remove(&mut self, key: &str) -> bool {
        let mut removed = false;
        let mut pos = 0;
        while pos < self.buf.len() {
            let s = span_at(&self.buf, pos);
            if match_key(&self.buf, s, key.as_bytes()).is_some() {
                // Shrinking in place never reallocates, so no unwiped copy remains.
                self.buf.drain(s.start..s.next);
                removed = true;
            } else {
                pos = s.next;
            }
        }
        removed
    }

    /// Removes the first visible scratch line holding `code` (GA: the line and the
    /// CR/LF run after it). Returns whether one was removed.
    pub fn remove_scratch_code(&mut self, code: u32) -> bool {
        match self
            .scratch_lines()
            .into_iter()
            .find(|&(_, _, v)| v == code)
        {
            Some((start, next, _)) => {
                self.buf.drain(start..next);
                true
            }
            None => false,
        }
    }

    /// Re-applies to `self`, a newer version of the file, the use one login made of
    /// the version it read: `decided` is what it read, `changed` what it would have
    /// written. A scratch code `changed` lists fewer times than `decided` is struck
    /// from `self` that many times (where `self` still lists it); `HOTP_COUNTER` is
    /// raised to `changed`'s when this login moved it and `self`'s is lower, never
    /// lowered. Nothing else is carried (GA's `DISALLOW_REUSE` and `RATE_LIMIT`
    /// lines, our `PAM_TOTP_*` lines: the newer file's stay). A newer file with
    /// another secret is a new enrolment, which the old use does not concern.
    pub fn carry_use(
        &mut self,
        decided: &GaFile,
        changed: &GaFile,
    ) -> Result<Carried, GaFileError> {
        // Both are the user's own secret: no guess is compared here.
        if self.secret()?.as_bytes() != decided.secret()?.as_bytes() {
            return Ok(Carried::OtherSecret);
        }
        let before = decided.scratch_codes();
        let after = changed.scratch_codes();
        let mut struck = 0;
        for (i, &code) in before.iter().enumerate() {
            if before[..i].contains(&code) {
                continue;
            }
            let count = |codes: &[u32]| codes.iter().filter(|&&c| c == code).count();
            for _ in 0..count(&before).saturating_sub(count(&after)) {
                if self.remove_scratch_code(code) {
                    struck += 1;
                }
            }
        }
        let mut counter_raised = false;
        if let (
            Mode::Hotp { counter: read },
            Mode::Hotp { counter: used },
            Mode::Hotp { counter: now },
        ) = (
            decided.config()?.mode,
            changed.config()?.mode,
            self.config()?.mode,
        ) && used > read
            && now < used
        {
            self.set(KEY_HOTP_COUNTER, &used.to_string())?;
            counter_raised = true;
        }
        Ok(Carried::Use {
            struck,
            counter_raised,
        })
    }

    /// Replaces all visible scratch codes with `codes`, written as `%08d\n` lines at
    /// the end of the file (GA's tool writes them last), or, in a file with a line
    /// that ends GA's scan of the codes (neither a code, blank, nor a `"` line),
    /// right before that line: written after it, they would be shown to the user and
    /// never accepted.
    pub fn regenerate_scratch_codes(&mut self, codes: &[u32]) -> Result<(), GaFileError> {
        if codes
            .iter()
            .any(|c| !(SCRATCH_MIN..=SCRATCH_MAX).contains(c))
        {
            return Err(GaFileError::BadScratchCode);
        }
        for (start, next, _) in self.scratch_lines().into_iter().rev() {
            self.buf.drain(start..next);
        }
        // Where the scan ends, the byte before is a LF (a bare CR is refused), unless
        // it ends at the end of a file whose last line has no line break.
        let (_, at) = self.scratch_scan();
        let mut tail = Zeroizing::new(Vec::with_capacity(codes.len() * 9 + 1));
        if at == self.buf.len() && self.buf.last().is_some_and(|&b| !is_eol(b)) {
            tail.push(b'\n');
        }
        for &c in codes {
            push_scratch_line(&mut tail, c);
        }
        self.splice(at, at, &[&tail])
    }

    /// A new file in the layout of GA's enrollment tool: secret, mode line, scratch
    /// codes, then each option inserted after line 1 (so they read in reverse order
    /// of addition: `RATE_LIMIT`, `WINDOW_SIZE`, `STEP_SIZE`, `DISALLOW_REUSE`). Our
    /// `PAM_TOTP_ALGORITHM` / `PAM_TOTP_DIGITS` lines are added last, and only when
    /// not SHA1 / 6.
    pub fn new_enrollment(secret: &Secret, s: &EnrollSettings) -> Result<GaFile, GaFileError> {
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(GaFileError::BadSettings("secret length"));
        }
        if s.step.is_some_and(|v| !(1..=60).contains(&v)) {
            return Err(GaFileError::BadSettings("step"));
        }
        if s.window.is_some_and(|v| !(1..=100).contains(&v)) {
            return Err(GaFileError::BadSettings("window"));
        }
        if s.rate_limit
            .is_some_and(|(n, m)| !(1..=100).contains(&n) || !(1..=3600).contains(&m))
        {
            return Err(GaFileError::BadSettings("rate limit"));
        }
        if !s.totp && (s.disallow_reuse || s.step.is_some()) {
            return Err(GaFileError::BadSettings(
                "reuse and step apply to TOTP only",
            ));
        }
        if s.scratch_codes
            .iter()
            .any(|c| !(SCRATCH_MIN..=SCRATCH_MAX).contains(c))
        {
            return Err(GaFileError::BadScratchCode);
        }
        // One buffer of the final size: grown a line at a time, each outgrown copy of
        // the secret and the scratch codes was freed unwiped.
        let b32 = Zeroizing::new(base32::encode(secret.as_bytes()));
        let mode: &[u8] = if s.totp {
            b"\" TOTP_AUTH\n"
        } else {
            b"\" HOTP_COUNTER 1\n"
        };
        let len = b32.len() + 1 + mode.len() + SCRATCH_LINE_LEN * s.scratch_codes.len();
        let mut buf = Zeroizing::new(Vec::with_capacity(len));
        buf.extend_from_slice(b32.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(mode);
        for &c in &s.scratch_codes {
            push_scratch_line(&mut buf, c);
        }
        let mut f = GaFile { buf };
        if s.disallow_reuse {
            f.insert_after_first_line(b"\" DISALLOW_REUSE\n")?;
        }
        if let Some(v) = s.step {
            f.insert_after_first_line(format!("\" STEP_SIZE {v}\n").as_bytes())?;
        }
        if let Some(v) = s.window {
            f.insert_after_first_line(format!("\" WINDOW_SIZE {v}\n").as_bytes())?;
        }
        if let Some((n, m)) = s.rate_limit {
            f.insert_after_first_line(format!("\" RATE_LIMIT {n} {m}\n").as_bytes())?;
        }
        if s.algorithm != Algorithm::Sha1 {
            f.set(KEY_ALGORITHM, s.algorithm.name())?;
        }
        if s.digits != Digits::SIX {
            f.set(KEY_DIGITS, &s.digits.to_string())?;
        }
        f.config()?;
        Ok(f)
    }

    /// Deletes duplicates of `key` after the first and returns the first's span.
    fn dedup_key(&mut self, key: &str) -> Option<LineSpan> {
        let mut first: Option<LineSpan> = None;
        let mut pos = 0;
        while pos < self.buf.len() {
            let s = span_at(&self.buf, pos);
            if match_key(&self.buf, s, key.as_bytes()).is_some() {
                if first.is_none() {
                    first = Some(s);
                } else {
                    self.buf.drain(s.start..s.next);
                    continue;
                }
            }
            pos = s.next;
        }
        first
    }

    fn insert_after_first_line(&mut self, line: &[u8]) -> Result<(), GaFileError> {
        let first = span_at(&self.buf, 0);
        if first.next == first.end {
            let end = first.end;
            self.splice(end, end, &[b"\n", line])
        } else {
            self.splice(first.next, first.next, &[line])
        }
    }

    /// Replaces `start..stop` with `parts`, building a fresh buffer so that growth
    /// never leaves an unwiped copy behind in freed memory.
    fn splice(&mut self, start: usize, stop: usize, parts: &[&[u8]]) -> Result<(), GaFileError> {
        let add: usize = parts.iter().map(|p| p.len()).sum();
        let len = self.buf.len() - (stop - start) + add;
        if len > MAX_FILE_LEN {
            return Err(GaFileError::TooLarge);
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len));
        out.extend_from_slice(&self.buf[..start]);
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&self.buf[stop..]);
        self.buf = out;
        Ok(())
    }
}

/// A scratch-code line: 8 digits and the line end.
const SCRATCH_LINE_LEN: usize = 9;

/// Appends `code` (within `SCRATCH_MIN..=SCRATCH_MAX`: 8 digits) and a line end, digit
/// by digit: a `format!` would leave the code in a freed, unwiped string.
fn push_scratch_line(out: &mut Vec<u8>, code: u32) {
    let mut div = 10_000_000;
    while div > 0 {
        // The remainder is a single decimal digit.
        out.push(b'0' + (code / div % 10) as u8);
        div /= 10;
    }
    out.push(b'\n');
}
