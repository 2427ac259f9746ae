//! One `pam_sm_authenticate`, from module arguments to verdict.
//!
//! Order (docs/architecture.md): options → user → skip rules → pre-read (nullok, grace)
//! → answer → locked read, record the attempt, verify, persist → verdict. Every path
//! that is not a verified code, a verified skip or `nullok` with no file denies.

use std::net::IpAddr;
use std::time::Duration;

use totp_core::addr::{RemoteHost, parse_rhost};
use totp_core::code::{Candidate, candidates};
use totp_core::gafile::GaFile;
use totp_core::options::{ModuleOptions, PassMode};
use totp_core::otp::{self, Algorithm, Digits};
use totp_core::policy::Policy;
use totp_core::secret::Secret;
use totp_core::verify::{self, Admission, Begin, Method, Verdict};
use totp_os::creds;
use totp_os::safefile::{self, FileError, LockedFile};
use zeroize::Zeroizing;

use crate::error::{AuthError, Denial, Outcome};
use crate::log::sanitize;
use crate::pamio::{ConvError, ItemKind, Level, PamIo, Style};
use crate::skip::{self, LoginItems};
use crate::system::{Host, System};
use crate::target::{self, Doomed, Target};

const PROMPT: &str = "Verification code: ";
const PROMPT_FORWARD: &str = "Password & verification code: ";

/// Entry point used by the FFI layer: the real clock and NSS.
pub fn authenticate(io: &mut dyn PamIo, args: &[&[u8]], _flags: u32) -> Result<Outcome, AuthError> {
    authenticate_with(io, args, &Host)
}

/// The whole flow with injectable host facilities (tests inject failures here).
pub fn authenticate_with(
    io: &mut dyn PamIo,
    args: &[&[u8]],
    sys: &dyn System,
) -> Result<Outcome, AuthError> {
    let opts = match ModuleOptions::parse(args) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{e}; denying everybody until the configuration is fixed");
            io.log(Level::Err, &msg);
            return Err(AuthError::Config(e.to_string()));
        }
    };
    for w in opts.weakening() {
        io.log(
            Level::Warning,
            &format!("option {w} weakens security (see pam_totp(8))"),
        );
    }
    if let Some(why) = crate::fleet::unavailable(&opts) {
        io.log(Level::Err, &format!("{why}; denying everybody"));
        return Err(AuthError::Config(why.to_owned()));
    }
    let raw_user = io.user();
    let rhost_raw = io.item(ItemKind::RHost);
    let tty = io.item(ItemKind::Tty);
    let service = io.item(ItemKind::Service);
    let ctx = Ctx {
        from: sanitize(rhost_raw.as_deref().unwrap_or(b"-")),
        rhost_ip: match parse_rhost(rhost_raw.as_deref()) {
            RemoteHost::Address(ip) => Some(ip),
            _ => None,
        },
        policy: opts.policy(),
        opts,
    };

    let resolved = target::resolve(&ctx.opts, sys, raw_user.as_deref())
        .inspect_err(|e| io.log(Level::Err, &format!("{e}; denying everybody")))?;
    let items = LoginItems {
        rhost: rhost_raw.as_deref(),
        tty: tty.as_deref(),
        service: service.as_deref(),
    };
    let (name, pw) = match &resolved {
        Ok(t) => (Some(&t.name), t.pw.as_ref()),
        Err(d) => (d.name.as_ref(), None),
    };
    if let Some(name) = name {
        let mut log = |level: Level, msg: &str| io.log(level, msg);
        if let Some(reason) = skip::decide(&ctx.opts, sys, name.as_str(), pw, &items, &mut log) {
            let who = sanitize(name.as_str().as_bytes());
            io.log(
                Level::Notice,
                &format!("not asking {who} from {} for a code: {reason}", ctx.from),
            );
            return Ok(Outcome::Ignore);
        }
    }
    // The file-system identity (a group lookup) only now that no rule has skipped.
    let target = match resolved.and_then(|named| named.with_identity(sys)) {
        Ok(t) => t,
        Err(d) => return ctx.doomed(io, d, raw_user.as_deref()),
    };
    let who = sanitize(target.name.as_str().as_bytes());

    let file = match ctx.preread(&*io, &target) {
        Ok(PreRead::Present(f)) => f,
        Ok(PreRead::Absent) if ctx.opts.nullok && target.nullok_applies() => {
            if ctx.opts.debug {
                io.log(Level::Info, &format!("no secret file for {who}; nullok"));
            }
            return Ok(Outcome::Ignore);
        }
        Ok(PreRead::Absent) => {
            let why = if ctx.opts.nullok {
                "no secret file, and nullok does not apply to a name NSS does not know; asking for a code anyway"
            } else {
                "no secret configured; asking for a code anyway"
            };
            let d = Doomed {
                denial: Denial::NoSecret,
                why: why.into(),
                name: Some(target.name.clone()),
            };
            return ctx.doomed(io, d, raw_user.as_deref());
        }
        Ok(PreRead::Unusable(why)) => {
            let d = Doomed {
                denial: Denial::BadFile,
                why,
                name: Some(target.name.clone()),
            };
            return ctx.doomed(io, d, raw_user.as_deref());
        }
        Err(e) => return Err(e),
    };

    if ctx.opts.grace_period_secs > 0 {
        let now = sys.now().map_err(|_| {
            io.log(Level::Err, "cannot read the clock; denying");
            AuthError::Clock
        })?;
        if let Ok(true) = verify::grace_applies(&file, &ctx.policy, ctx.rhost_ip, now) {
            io.log(
                Level::Notice,
                &format!("accepted {who} from {} within the grace period", ctx.from),
            );
            return Ok(Outcome::Success);
        }
    }
    let digits = file.config().ok().map(|c| c.digits).unwrap_or(Digits::SIX);
    drop(file);

    // First the answer PAM already has (try_first_pass/use_first_pass), then a prompt.
    // One authentication is one attempt: a failed PAM_AUTHTOK check under try_first_pass
    // carries its admission over to the prompted answer instead of counting twice.
    let mut carried = None;
    if ctx.opts.pass_mode != PassMode::Prompt {
        let tok = io.authtok().unwrap_or_default();
        let cands = candidates(&tok, digits, true);
        if !cands.is_empty() {
            let phase = if ctx.opts.pass_mode == PassMode::UseFirstPass {
                Phase::Final
            } else {
                Phase::Tentative
            };
            let (outcome, admission) = ctx.evaluate(io, sys, &target, &cands, phase)?;
            if outcome == Outcome::Success
                || ctx.opts.pass_mode == PassMode::UseFirstPass
                || admission.is_none()
            {
                return Ok(outcome);
            }
            carried = admission;
        } else if ctx.opts.pass_mode == PassMode::UseFirstPass {
            io.log(
                Level::Notice,
                &format!("no usable code in PAM_AUTHTOK for {who} from {}", ctx.from),
            );
            return Ok(Outcome::Deny(Denial::NoAnswer));
        }
    }
    let answer = match ctx.prompt(io)? {
        Some(a) => a,
        None => return Ok(Outcome::Deny(Denial::NoAnswer)),
    };
    let cands = candidates(&answer, digits, ctx.opts.forward_pass);
    let phase = carried.map_or(Phase::Final, Phase::Continued);
    Ok(ctx.evaluate(io, sys, &target, &cands, phase)?.0)
}

/// What the critical section decided.
struct Checked {
    verdict: Verdict,
    /// Index of the accepted candidate (its prefix is forwarded with `forward_pass`).
    matched: Option<usize>,
    admission: Admission,
}

/// Which evaluation of one authentication this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The only one: record the attempt, verify, persist everything.
    Final,
    /// `PAM_AUTHTOK` under `try_first_pass`: the attempt is recorded, but a failure changes
    /// nothing else, because the prompted answer is checked next as the same attempt.
    Tentative,
    /// The prompted answer after a failed tentative check: already admitted (or refused)
    /// and already counted.
    Continued(Admission),
}

/// What the unlocked look before prompting found.
enum PreRead {
    Present(GaFile),
    /// The final component is missing in a directory that was reached and checked:
    /// what `nullok` is about.
    Absent,
    /// Exists but cannot be used; the reason is for the log.
    Unusable(String),
}

struct Ctx {
    opts: ModuleOptions,
    policy: Policy,
    /// `PAM_RHOST` escaped for logs.
    from: String,
    /// `PAM_RHOST` when it is a strict IP literal (grace period).
    rhost_ip: Option<IpAddr>,
}

impl Ctx {
    fn prompt(&self, io: &mut dyn PamIo) -> Result<Option<Zeroizing<Vec<u8>>>, AuthError> {
        let text = self
            .opts
            .authtok_prompt
            .as_deref()
            .unwrap_or(if self.opts.forward_pass {
                PROMPT_FORWARD
            } else {
                PROMPT
            });
        let style = if self.opts.echo_verification_code {
            Style::PromptEchoOn
        } else {
            Style::PromptEchoOff
        };
        match io.converse(style, text) {
            Ok(Some(answer)) if !answer.is_empty() => {
                if answer.first() == Some(&0x08) {
                    // OpenSSH answers "\b\n\r\177INCORRECT" for invalid users and refused root.
                    io.log(
                        Level::Info,
                        "dummy password supplied by PAM; did OpenSSH 'PermitRootLogin' or another setting block this login?",
                    );
                }
                Ok(Some(answer))
            }
            Ok(_) => {
                io.log(
                    Level::Notice,
                    "did not receive a verification code from the user",
                );
                Ok(None)
            }
            Err(ConvError::Failed) => {
                io.log(
                    Level::Notice,
                    "conversation failed while asking for the code",
                );
                Err(AuthError::Conversation)
            }
        }
    }

    /// A user who cannot succeed gets the same prompt as everyone else, and the same
    /// amount of code computation, then a denial.
    fn doomed(
        &self,
        io: &mut dyn PamIo,
        d: Doomed,
        raw_user: Option<&[u8]>,
    ) -> Result<Outcome, AuthError> {
        let who = match &d.name {
            Some(n) => sanitize(n.as_str().as_bytes()),
            None => sanitize(raw_user.unwrap_or(b"(none)")),
        };
        io.log(
            Level::Notice,
            &format!("{who} from {}: {}", self.from, d.why),
        );
        if self.opts.pass_mode != PassMode::UseFirstPass {
            self.prompt(io)?;
        }
        burn_window(&self.policy);
        io.log(
            Level::Notice,
            &format!("invalid verification code for {who} from {}", self.from),
        );
        Ok(Outcome::Deny(d.denial))
    }

    fn preread(&self, io: &dyn PamIo, target: &Target) -> Result<PreRead, AuthError> {
        let _creds = switch_creds(io, target)?;
        match safefile::open_checked(&target.path, &target.rules) {
            Ok(opened) => match GaFile::parse(&opened.contents) {
                Ok(f) => Ok(PreRead::Present(f)),
                Err(e) => Ok(PreRead::Unusable(format!(
                    "secret file {} is invalid: {e}",
                    self.shown(target)
                ))),
            },
            // Only a missing file in a directory that was reached and checked means "not
            // enrolled"; a missing or unreachable directory (a home on a server that is
            // down, a store that was never created) is an outage, not an opt-out.
            Err(FileError::NotFound) => Ok(PreRead::Absent),
            Err(e) => Ok(PreRead::Unusable(format!(
                "secret file {} refused ({e}); asking for a code anyway",
                self.shown(target)
            ))),
        }
    }

    fn shown(&self, target: &Target) -> String {
        sanitize(target.path.as_os_str().as_encoded_bytes())
    }

    /// Locked read → record the attempt → verify → persist. Credentials are the
    /// target's for the whole critical section and restored before returning.
    fn evaluate(
        &self,
        io: &mut dyn PamIo,
        sys: &dyn System,
        target: &Target,
        cands: &[Candidate],
        phase: Phase,
    ) -> Result<(Outcome, Option<Admission>), AuthError> {
        let who = sanitize(target.name.as_str().as_bytes());
        let Checked {
            verdict,
            matched,
            admission,
        } = {
            let _creds = switch_creds(&*io, target)?;
            match self.locked_verify(io, sys, target, cands, phase)? {
                Ok(v) => v,
                Err(denial) => return Ok((self.denied(io, &who, denial), None)),
            }
        };
        if phase == Phase::Tentative && !verdict.is_accepted() {
            if self.opts.debug {
                io.log(
                    Level::Info,
                    &format!("no valid code in PAM_AUTHTOK for {who}; prompting"),
                );
            }
            return Ok((Outcome::Deny(Denial::WrongCode), Some(admission)));
        }
        Ok((self.verdict(io, &who, cands, verdict, matched)?, None))
    }

    /// Logs and maps a verdict; forwards the password on success with `forward_pass`.
    fn verdict(
        &self,
        io: &mut dyn PamIo,
        who: &str,
        cands: &[Candidate],
        verdict: Verdict,
        matched: Option<usize>,
    ) -> Result<Outcome, AuthError> {
        let method = match verdict {
            Verdict::Accepted(m) => m,
            Verdict::Rejected => return Ok(self.denied(io, who, Denial::WrongCode)),
            Verdict::Replayed => {
                io.log(
                    Level::Warning,
                    &format!(
                        "{who} from {} reused an already accepted code; this might mean a man-in-the-middle attack",
                        self.from
                    ),
                );
                return Ok(self.denied(io, who, Denial::Replay));
            }
            Verdict::Throttled => return Ok(self.denied(io, who, Denial::Throttled)),
            Verdict::Disabled => return Ok(self.denied(io, who, Denial::Locked)),
        };
        if self.opts.forward_pass {
            let prefix = matched
                .and_then(|i| cands.get(i))
                .map(|c| c.prefix.as_slice())
                .unwrap_or_default();
            if io.set_authtok(prefix).is_err() {
                io.log(Level::Err, "could not forward the password (PAM_AUTHTOK)");
                return Ok(Outcome::Deny(Denial::NotPersisted));
            }
        }
        let how = match method {
            Method::Totp { .. } => "time-based code",
            Method::Hotp { .. } => "counter-based code",
            Method::Scratch => "scratch code",
        };
        io.log(
            Level::Notice,
            &format!("accepted {how} for {who} from {}", self.from),
        );
        Ok(Outcome::Success)
    }

    fn denied(&self, io: &mut dyn PamIo, who: &str, denial: Denial) -> Outcome {
        let why = match denial {
            Denial::WrongCode => "invalid verification code",
            Denial::Replay => "code already used",
            Denial::Throttled => "too many failures; attempt refused unevaluated (backoff)",
            Denial::Locked => "second factor disabled after too many failures (max_failures)",
            Denial::NotPersisted => "state could not be saved",
            Denial::BadFile => "secret file unusable",
            _ => "denied",
        };
        io.log(
            Level::Notice,
            &format!("{why} for {who} from {}", self.from),
        );
        Outcome::Deny(denial)
    }

    /// `verify::begin`, persisted before the code is looked at (R15).
    fn record_attempt(
        &self,
        io: &mut dyn PamIo,
        locked: &mut LockedFile,
        file: GaFile,
        now: i64,
        shown: &str,
    ) -> Result<Result<Begin, Denial>, AuthError> {
        let begun = match verify::begin(file, &self.policy, now) {
            Ok(b) => b,
            Err(verify::Error::ClockFault) => {
                io.log(
                    Level::Err,
                    &format!(
                        "clock fault for {shown}: time is before 1970 or far behind the recorded state"
                    ),
                );
                return Err(AuthError::Clock);
            }
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown}: {e}"));
                return Ok(Err(Denial::BadFile));
            }
        };
        for w in &begun.warnings {
            io.log(Level::Warning, &format!("{shown}: {w}"));
        }
        if begun.changed
            && let Err(e) = locked.replace(begun.file.as_bytes())
        {
            io.log(
                Level::Err,
                &format!("cannot record the attempt in {shown}: {e:?}; denying"),
            );
            return Ok(Err(Denial::NotPersisted));
        }
        Ok(Ok(begun))
    }

    /// The critical section. `Ok(Err(_))` is a per-user denial already logged.
    fn locked_verify(
        &self,
        io: &mut dyn PamIo,
        sys: &dyn System,
        target: &Target,
        cands: &[Candidate],
        phase: Phase,
    ) -> Result<Result<Checked, Denial>, AuthError> {
        let shown = self.shown(target);
        let timeout = Duration::from_millis(self.opts.lock_timeout_ms);
        let mut locked = match safefile::lock_with_deadline(&target.path, &target.rules, timeout) {
            Ok(l) => l,
            Err(FileError::LockTimeout | FileError::Unstable) => {
                io.log(
                    Level::Err,
                    &format!("timed out waiting for the lock on {shown}"),
                );
                return Err(AuthError::LockTimeout);
            }
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown}: {e:?}"));
                return Ok(Err(Denial::BadFile));
            }
        };
        let file = match GaFile::parse(locked.contents()) {
            Ok(f) => f,
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown} is invalid: {e}"));
                return Ok(Err(Denial::BadFile));
            }
        };
        let now = sys.now().map_err(|_| {
            io.log(Level::Err, "cannot read the clock");
            AuthError::Clock
        })?;
        let begun = match phase {
            // Admitted and counted by the tentative check of this same authentication.
            Phase::Continued(admission) => Begin {
                file,
                admission,
                changed: false,
                warnings: Vec::new(),
            },
            Phase::Final | Phase::Tentative => {
                match self.record_attempt(io, &mut locked, file, now, &shown)? {
                    Ok(b) => b,
                    Err(denial) => return Ok(Err(denial)),
                }
            }
        };
        let admission = begun.admission;
        let out = match verify::finish(begun, &self.policy, cands, now, self.rhost_ip) {
            Ok(o) => o,
            Err(verify::Error::ClockFault) => return Err(AuthError::Clock),
            Err(e) => {
                io.log(Level::Err, &format!("secret file {shown}: {e}"));
                return Ok(Err(Denial::BadFile));
            }
        };
        if phase == Phase::Tentative && !out.verdict.is_accepted() {
            // Nothing but the recorded attempt is kept; the prompted answer comes next.
            return Ok(Ok(Checked {
                verdict: out.verdict,
                matched: None,
                admission,
            }));
        }
        if out.changed
            && let Err(e) = locked.replace(out.file.as_bytes())
        {
            let excusable =
                out.verdict.is_accepted() && out.only_grace_bookkeeping && self.opts.allow_readonly;
            if !excusable {
                io.log(
                    Level::Err,
                    &format!("cannot save the new state of {shown}: {e:?}; denying"),
                );
                return Ok(Err(Denial::NotPersisted));
            }
            io.log(
                Level::Warning,
                &format!("grace-period entry not saved in {shown} ({e:?}); allow_readonly"),
            );
        }
        Ok(Ok(Checked {
            verdict: out.verdict,
            matched: out.matched,
            admission,
        }))
    }
}

/// Takes the target's file-system identity for the calling thread (restored on drop).
fn switch_creds(io: &dyn PamIo, target: &Target) -> Result<creds::CredGuard, AuthError> {
    creds::switch_to(&target.identity).map_err(|e| {
        io.log(
            Level::Err,
            &format!(
                "cannot switch to the identity of uid {}: {e}; denying",
                target.identity.uid
            ),
        );
        AuthError::Credentials(format!("{e:?}"))
    })
}

/// Computes as many codes as a real check of the default window would, so a doomed user
/// costs about what a real one does before the (fsync-bound) state write.
fn burn_window(policy: &Policy) {
    let secret = Secret::new(vec![0x5a; 20]);
    let mut sink = 0u32;
    for c in 0..u64::from(policy.max_window.clamp(1, 3)) {
        sink ^= otp::hotp(&secret, c, Algorithm::Sha1, Digits::SIX);
    }
    std::hint::black_box(sink);
}
