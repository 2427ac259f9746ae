//! GA's `RATE_LIMIT` and `DISALLOW_REUSE` bookkeeping, byte-compatible with GA.

use super::*;

/// GA's `RATE_LIMIT` step (its documented algorithm): append `now`, sort, drop entries older
/// than `now − interval` or later than `now`, and if more than `attempts` remain,
/// keep the newest `attempts` and report the attempt as exceeded.
pub fn rate_limit_update(rl: &RateLimit, now: u64) -> (RateLimit, bool) {
    let mut ts = rl.timestamps.clone();
    ts.push(now);
    ts.sort_unstable();
    let lo = now.saturating_sub(u64::from(rl.interval_secs));
    let mut start: usize = 0;
    let mut stop: Option<usize> = None;
    for (i, &t) in ts.iter().enumerate() {
        if t < lo {
            start = i + 1;
        } else if t > now {
            break;
        }
        stop = Some(i);
    }
    let attempts = rl.attempts as usize;
    let kept: &[u64] = match stop {
        Some(stop) if stop + 1 > start => {
            let exceeded = stop + 1 - start > attempts;
            if exceeded {
                start = stop + 1 - attempts;
            }
            let out = RateLimit {
                attempts: rl.attempts,
                interval_secs: rl.interval_secs,
                timestamps: ts[start..=stop].to_vec(),
            };
            return (out, exceeded);
        }
        _ => &[],
    };
    (
        RateLimit {
            attempts: rl.attempts,
            interval_secs: rl.interval_secs,
            timestamps: kept.to_vec(),
        },
        false,
    )
}

/// The value of a `RATE_LIMIT` line as GA writes it: `n m` and the kept times.
pub fn rate_limit_value(rl: &RateLimit) -> String {
    let mut v = format!("{} {}", rl.attempts, rl.interval_secs);
    for t in &rl.timestamps {
        v.push_str(&format!(" {t}"));
    }
    v
}

/// GA's `DISALLOW_REUSE` update for accepted step `tm`, on the raw value so the
/// bytes match GA's (including its spacing quirks): `None` if `tm` is listed,
/// otherwise the new value with entries `entry + window ≤ tm` pruned and `tm`
/// appended. GA also prunes entries `window` or more steps *ahead* of `tm` (left by a
/// clock since stepped back), and then takes their codes again; an entry ahead stays
/// here until the clock has passed it, so a step listed as used is never accepted
/// again, whether or not the file is rewritten (the replay mark covers every step up
/// to `tm`, so pruning the entries behind it reopens nothing). Where such an entry is
/// kept, the blanks GA would leave at the end of the line are not (they would add up).
pub fn disallow_reuse_update(
    value: &[u8],
    tm: u64,
    window: u64,
) -> Result<Option<String>, GaFileError> {
    let bad = GaFileError::BadValue {
        key: KEY_DISALLOW_REUSE,
    };
    let mut v = value.to_vec();
    let mut p = 0;
    let mut kept_ahead = false;
    loop {
        while p < v.len() && matches!(v[p], b' ' | b'\t' | b'\r' | b'\n') {
            p += 1;
        }
        if p >= v.len() {
            break;
        }
        let (blocked, end) = scan_u64(&v, p).ok_or(bad.clone())?;
        if end < v.len() && !matches!(v[end], b' ' | b'\t' | b'\r' | b'\n') {
            return Err(bad);
        }
        if blocked == tm {
            return Ok(None);
        }
        if blocked > tm && blocked - tm >= window {
            kept_ahead = true;
        }
        if blocked < tm && tm - blocked >= window {
            let mut e = end;
            while e < v.len() && matches!(v[e], b' ' | b'\t') {
                e += 1;
            }
            v.drain(p..e);
        } else {
            p = end;
        }
    }
    // Pruning the last entry leaves the blank before it, to which the append adds one
    // more: GA's line never keeps an entry long enough for that to add up, but one kept
    // ahead (which GA would prune) stays for as long as the clock is behind it, and the
    // line would gain a byte at each login until the file reached its size cap.
    if kept_ahead {
        while v.last().is_some_and(|b| matches!(b, b' ' | b'\t')) {
            v.pop();
        }
    }
    let mut s = String::from_utf8(v).map_err(|_| bad)?;
    if s.is_empty() {
        s = tm.to_string();
    } else {
        s.push_str(&format!(" {tm}"));
    }
    Ok(Some(s))
}
