//! `totp-enroll resync`: "codes not accepted" after the phone's clock drifted.
//!
//! The user (or root for a user, or for a store file) gives two consecutive codes
//! from the app; `totp_core::resync` finds the offset within one day, and the
//! file is rewritten in place under the same lock a login takes (so a login
//! running at the same moment is neither lost nor given a stale file). The offset
//! must stay within the module's `max_time_skew` cap, read as `caps` reads it.
//! An HOTP file takes two consecutive presses of its token instead, and gets the
//! `HOTP_COUNTER` after them (`totp_core::resync::resync_counter`).

use serde::Serialize;
use totp_core::gafile::GaFile;
use totp_core::gafile::Mode;
use totp_core::resync::{self, CounterResynced, Resynced};
use zeroize::Zeroizing;

use crate::args::ResyncArgs;
use crate::caps;
use crate::console::Console;
use crate::error::Error;
use crate::flow::{now_unix, print_stdout};
use crate::output;
use crate::target;
use crate::write;

const FLAGS_CODES: &str = "the CODE1 CODE2 arguments";

#[derive(Serialize)]
struct ResyncJson<'a> {
    action: &'static str,
    user: &'a str,
    path: &'a std::path::Path,
    /// Phone step minus this machine's step.
    skew_steps: i64,
    step_secs: u64,
    /// The same in seconds (positive: the phone is ahead).
    drift_secs: i64,
    max_time_skew: u32,
    last_step: u64,
    /// Seconds until the phone shows a code above the replay mark (usually 0).
    usable_in_secs: u64,
    /// The offset went down by this many seconds: the state store's replay mark may
    /// hold the phone's codes back for up to this long (0 when it did not go down).
    store_wait_up_to_secs: u64,
    /// Bookkeeping lines left as they were because the file would outgrow GA's size
    /// cap (empty normally): the two codes typed are then not marked used in it.
    lines_not_updated: &'a [&'static str],
}

#[derive(Serialize)]
struct CounterJson<'a> {
    action: &'static str,
    user: &'a str,
    path: &'a std::path::Path,
    /// The `HOTP_COUNTER` written: the counter of the token's next press.
    counter: u64,
    /// The `HOTP_COUNTER` before.
    previous_counter: u64,
}

/// What a resync found: a phone's clock offset or a token's counter.
enum Done {
    Clock(Resynced),
    Counter(CounterResynced),
}

pub fn run(args: ResyncArgs) -> Result<u8, Error> {
    let caller = crate::host::caller();
    let service = args.service.as_deref().map(|name| target::Service {
        name,
        pam_dir: args.pam_dir.as_deref(),
    });
    let target = target::resolve(
        caller,
        args.user.as_deref(),
        args.secret.as_deref(),
        service,
    )?;
    for note in &target.notes {
        crate::error::to_stderr(note);
    }
    let caps = caps::load(args.service.as_deref(), args.pam_dir.as_deref())?;
    let (first, second) = match (args.first, args.second) {
        (Some(a), Some(b)) => (Zeroizing::new(a), Zeroizing::new(b)),
        _ => ask_codes(args.json, args.non_interactive)?,
    };
    // The phone shows the second code now: its step is compared with this moment.
    let now = now_unix()?;
    let done = write::as_writer(&target, || {
        let mut locked = write::lock_existing(&target)?;
        let file = GaFile::parse(locked.contents())
            .map_err(|e| Error::failed(format!("\"{}\": {e}", target.path().display())))?;
        let (first, second) = (first.trim().as_bytes(), second.trim().as_bytes());
        let counter_based = matches!(file.config().map(|c| c.mode), Ok(Mode::Hotp { .. }));
        let done = if counter_based {
            resync::resync_counter(&file, first, second).map(Done::Counter)
        } else {
            resync::resync(&file, first, second, now, caps.max_time_skew).map(Done::Clock)
        }
        .map_err(|e| match e {
            resync::ResyncError::BeyondCap { .. } => {
                Error::failed(format!("{e}\n(the cap comes from {})", caps.source))
            }
            e => Error::failed(e.to_string()),
        })?;
        let new_file = match &done {
            Done::Clock(d) => &d.file,
            Done::Counter(d) => &d.file,
        };
        write::replace_existing(&target, &mut locked, &new_file.to_bytes())?;
        Ok(done)
    })?;
    let done = match done {
        Done::Clock(done) => done,
        Done::Counter(done) => {
            let counter = done.second_counter + 1;
            if args.json {
                let json = CounterJson {
                    action: "resync",
                    user: &target.user.name,
                    path: target.path(),
                    counter,
                    previous_counter: done.old_counter,
                };
                print_stdout(&output::to_json_line(&json)?)?;
            } else {
                print_stdout(&counter_report(&done, target.path()))?;
            }
            return Ok(0);
        }
    };

    if !done.lines_not_updated.is_empty() {
        // PAM_TOTP_LAST_STEP is what this module refuses them by; DISALLOW_REUSE is GA's.
        let who = if done
            .lines_not_updated
            .contains(&totp_core::gafile::KEY_LAST_STEP)
        {
            "they may log in once"
        } else {
            "google-authenticator reading this file (on another host) may take them \
             once, though this module refuses them"
        };
        crate::error::to_stderr(&format!(
            "warning: the secret file's {}: updated, the file would come \
             within {} bytes of the {} bytes GA reads at most, which GA's next login \
             could take it past (a login leaves it so too). The two codes typed here are \
             not all marked used in the file: until the phone shows the code after them, \
             {who}. Make room in the file (remove what is not GA's or pam_totp's).\n",
            lines_words(&done.lines_not_updated),
            resync::GA_LOGIN_RESERVE,
            totp_core::gafile::MAX_FILE_LEN
        ));
    }
    let drift_secs = done.skew.saturating_mul(done.step_secs as i64);
    let usable_in_secs = done.steps_until_usable.saturating_mul(done.step_secs);
    let store_wait_up_to_secs = done.lowered_by.saturating_mul(done.step_secs);
    if args.json {
        let json = ResyncJson {
            action: "resync",
            user: &target.user.name,
            path: target.path(),
            skew_steps: done.skew,
            step_secs: done.step_secs,
            drift_secs,
            max_time_skew: caps.max_time_skew,
            last_step: done.last_step,
            usable_in_secs,
            store_wait_up_to_secs,
            lines_not_updated: &done.lines_not_updated,
        };
        print_stdout(&output::to_json_line(&json)?)?;
    } else {
        print_stdout(&report(
            &done,
            target.path(),
            usable_in_secs,
            store_wait_up_to_secs,
        ))?;
    }
    Ok(0)
}

fn counter_report(done: &CounterResynced, path: &std::path::Path) -> String {
    let counter = done.second_counter + 1;
    let moved = if counter >= done.old_counter {
        format!("{} ahead of", counter - done.old_counter)
    } else {
        format!("{} behind", done.old_counter - counter)
    };
    format!(
        "The token's next code is for counter {counter}, {moved} the file's counter \
         {old}; recorded HOTP_COUNTER {counter}.\n\
         The two codes typed here are used up. Updated \"{path}\".\n\
         Hosts with their own copy of this file need the same HOTP_COUNTER line.\n",
        old = done.old_counter,
        path = path.display()
    )
}

/// Asks for the two codes on the terminal (or reads two lines from a pipe).
fn ask_codes(
    json: bool,
    non_interactive: bool,
) -> Result<(Zeroizing<String>, Zeroizing<String>), Error> {
    let mut console = Console::new(json, non_interactive);
    let first = console
        .ask_line("Code the app (or token) shows now: ", FLAGS_CODES)?
        .ok_or(Error::EndOfInput(FLAGS_CODES))?;
    console.say("Wait until the app shows the next code (press a token again).\n")?;
    let second = console
        .ask_line("Next code: ", FLAGS_CODES)?
        .ok_or(Error::EndOfInput(FLAGS_CODES))?;
    Ok((first, second))
}

fn report(
    done: &Resynced,
    path: &std::path::Path,
    usable_in_secs: u64,
    store_wait_up_to_secs: u64,
) -> String {
    let mut out = String::new();
    let drift = done.skew.unsigned_abs().saturating_mul(done.step_secs);
    if done.skew == 0 {
        out.push_str(&format!(
            "The phone's clock agrees with this machine's (within {} seconds); no offset \
             is needed, and any old TIME_SKEW was removed.\n",
            done.step_secs
        ));
    } else {
        out.push_str(&format!(
            "The phone's clock is about {} {} this machine's ({} steps of {} s).\n\
             Recorded TIME_SKEW {} so its codes are accepted; setting the phone to \
             automatic date and time is the better fix (then run resync again).\n\
             If the phone already sets its time automatically, this machine's clock is \
             the one that is off: the offset would then refuse the phone's codes \
             wherever the clock is right (every host reading this file, and this one \
             once its clock is set). Set this machine's clock (NTP) and run resync \
             again, which removes the offset.\n",
            duration_words(drift),
            if done.skew < 0 { "behind" } else { "ahead of" },
            done.skew.unsigned_abs(),
            done.step_secs,
            done.skew
        ));
    }
    if done
        .lines_not_updated
        .contains(&totp_core::gafile::KEY_LAST_STEP)
    {
        out.push_str(&format!("Updated \"{}\".\n", path.display()));
    } else {
        out.push_str(&format!(
            "The two codes typed here are used up. Updated \"{}\".\n",
            path.display()
        ));
    }
    if usable_in_secs > 0 {
        out.push_str(&format!(
            "A later code was already used to log in, so the phone's codes are refused \
             for about {} more (replay protection).\n",
            duration_words(usable_in_secs)
        ));
    }
    if store_wait_up_to_secs > 0 {
        out.push_str(&format!(
            "The offset went down by {} steps. If a code was accepted with the old offset \
             during the last {}, the state store's replay mark is ahead of the phone's \
             codes, and they are refused as already used until it passes (at most {}); \
             a scratch code logs in meanwhile. `totp-state reset` keeps that mark: the \
             codes it covers were shown by the phone with the old offset, and would \
             otherwise work a second time when their time comes.\n",
            done.lowered_by,
            duration_words(store_wait_up_to_secs),
            duration_words(store_wait_up_to_secs),
        ));
    }
    out
}

/// "X line was left as it was", "X and Y lines were left as they were".
fn lines_words(keys: &[&str]) -> String {
    match keys {
        [one] => format!("{one} line was left as it was"),
        more => format!("{} lines were left as they were", more.join(" and ")),
    }
}

/// "1 hour 5 minutes", "30 seconds": whole units, largest two.
fn duration_words(secs: u64) -> String {
    let units = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let mut rest = secs;
    let mut parts = Vec::new();
    for (size, name) in units {
        let n = rest / size;
        if n > 0 && parts.len() < 2 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
            rest -= n * size;
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_is_said_in_plain_words() {
        assert_eq!(duration_words(0), "0 seconds");
        assert_eq!(duration_words(30), "30 seconds");
        assert_eq!(duration_words(90), "1 minute 30 seconds");
        assert_eq!(duration_words(3_600 + 300 + 7), "1 hour 5 minutes");
        assert_eq!(duration_words(30_000), "8 hours 20 minutes");
    }
}
