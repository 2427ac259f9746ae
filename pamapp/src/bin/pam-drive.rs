//! Drives one PAM transaction from the command line, for tests that need a separate
//! process (libfaketime, concurrent logins, kill -9) and for the benchmark.
//!
//! Output, one item per line: `result <PAM code name>`, `prompts <n>`,
//! `msg <style> <text>` for each message.
//! The exit status is the PAM code.
//!
//! `--hold-after-end HEX` (memory tests): after the last `pam_end`, keep the bytes HEX
//! decodes to alive on the heap and, bit-inverted, on the stack, print `held <pid>`,
//! and wait until stdin closes, so a test can read this process's memory.
//!
//! `--host-syslog IDENT` (K3): act as a host with its own syslog set-up, which a module
//! must leave alone: `openlog(IDENT, LOG_PID, LOG_LOCAL3)` before `pam_start`, then
//! `syslog(LOG_INFO)` lines `host: before pam_start`, `host: between pam_authenticate
//! and pam_end` (after `pam_setcred` when asked for) and `host: after pam_end`.
//! The controls stand in for a module that touches the host's log, right after the PAM
//! calls and before the `between` line: `--host-closelog-mid` calls `closelog()`,
//! `--host-openlog-mid IDENT2` calls `openlog(IDENT2, 0, LOG_AUTHPRIV)`.
//!
//! `--host-sigchld ignore|reap|default`: act as a host that ignores SIGCHLD or reaps
//! every child in a handler, set before `pam_start`; after each `pam_end` the driver
//! prints `sigchld <disposition>` and `host-reaped <n>` (children its handler reaped), so a
//! test sees a module's child handled without changing what the host set.
//!
//! `--host-block-signals`: block every signal before `pam_start` (a threaded daemon's
//! worker); `--host-ignore-signals`: ignore SIGHUP, SIGINT, SIGQUIT, SIGPIPE, SIGALRM,
//! SIGTERM, SIGUSR1 and SIGUSR2; `--host-alarm-every MS`: a SIGALRM every MS ms into a
//! counting handler without SA_RESTART, so slow system calls fail with EINTR again and
//! again (after each `pam_end`: `host-alarms <n>`).
//!
//! `--set-user-at-prompt NAME`: the conversation function itself sets `PAM_USER` to
//! NAME at the first prompt, before answering it (an application's conversation may).
//!
//! `--host-fsuid UID`: run the PAM calls with this filesystem uid already set (the
//! effective uid unchanged); after `pam_end`: `fsuid <n>`.
//!
//! `--host-close-std LIST` (e.g. `0,1,2`): act as a daemon that closed those standard
//! descriptors and never reopened them, closed before `pam_start`. The report is kept
//! until after `pam_end`, then printed on the original stdout with `std-open <fds>`
//! (those of LIST open after `pam_end`, `-` for none): a module must leave none of
//! them open, and must never have written to one as if it were stdio.

use std::ffi::CStr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pamapp::{
    Conversation, Item, Message, Reply, Scripted, Transaction, code_name, host_fds, host_ids,
    host_log,
    host_signals::{self, Sigchld},
    style,
};

const USAGE: &str = "usage: pam-drive --service S [--user U] [--confdir DIR] [--rhost H] \
[--tty T] [--ruser R] [--answer A]... [--answer-to PROMPT=A]... [--null-answer] [--null-array] \
[--conv-fail CODE] [--setcred] [--repeat N] [--start-at UNIX_MS] [--answer-gate PATH] \
[--hold-after-end HEX] [--host-syslog IDENT] [--host-closelog-mid] \
[--host-openlog-mid IDENT] [--host-sigchld ignore|reap|default] [--host-close-std LIST] [--host-block-signals] [--host-ignore-signals] \
[--host-alarm-every MS] [--host-fsuid UID] [--set-user-at-prompt NAME]";

#[derive(Default)]
struct Args {
    service: String,
    user: Option<String>,
    confdir: Option<PathBuf>,
    items: Vec<(Item, String)>,
    replies: Vec<Reply>,
    setcred: bool,
    repeat: u32,
    start_at_ms: Option<u64>,
    /// A slow typist: at each prompt, create `PATH.asked`, then answer only once `PATH`
    /// exists (at most a minute), so a test can act while the user "types".
    answer_gate: Option<PathBuf>,
    keyed: Vec<(String, String)>,
    /// The marker of `--hold-after-end`, as given (hex).
    hold_marker: Option<String>,
    /// `--host-syslog`: the host's ident, leaked because glibc keeps the pointer.
    host_ident: Option<&'static CStr>,
    host_closelog_mid: bool,
    host_openlog_mid: Option<&'static CStr>,
    host_sigchld: Option<Sigchld>,
    host_close_std: Vec<i32>,
    host_block_signals: bool,
    host_ignore_signals: bool,
    host_alarm_ms: Option<u64>,
    host_fsuid: Option<u32>,
    user_at_prompt: Option<String>,
}

/// `--answer-to`: a prompt whose text is one of these gets its answer, whatever the
/// script's order (a stack whose lines each ask for their own code, some skipped);
/// any other message goes to the script.
struct Keyed {
    inner: Box<dyn Conversation>,
    keyed: Vec<(String, String)>,
}

impl Conversation for Keyed {
    fn reply(&mut self, message: &Message) -> Reply {
        let prompt =
            message.style == style::PROMPT_ECHO_OFF || message.style == style::PROMPT_ECHO_ON;
        match self.keyed.iter().find(|(p, _)| *p == message.text) {
            Some((_, answer)) if prompt => Reply::Text(answer.clone()),
            _ => self.inner.reply(message),
        }
    }
}

/// [`Scripted`] behind the gate of `--answer-gate`.
struct Gated {
    inner: Scripted,
    gate: PathBuf,
}

impl Conversation for Gated {
    fn reply(&mut self, message: &Message) -> Reply {
        if message.style == style::PROMPT_ECHO_OFF || message.style == style::PROMPT_ECHO_ON {
            let mut asked = self.gate.clone().into_os_string();
            asked.push(".asked");
            let _ = std::fs::write(&asked, b"");
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while !self.gate.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.inner.reply(message)
    }
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        repeat: 1,
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--service" => args.service = value()?,
            "--user" => args.user = Some(value()?),
            "--confdir" => args.confdir = Some(PathBuf::from(value()?)),
            "--rhost" => args.items.push((Item::RHost, value()?)),
            "--tty" => args.items.push((Item::Tty, value()?)),
            "--ruser" => args.items.push((Item::RUser, value()?)),
            "--answer" => args.replies.push(Reply::Text(value()?)),
            "--answer-to" => {
                let v = value()?;
                let (p, a) = v.split_once('=').ok_or("--answer-to needs PROMPT=ANSWER")?;
                args.keyed.push((p.to_owned(), a.to_owned()));
            }
            "--null-answer" => args.replies.push(Reply::NullText),
            "--null-array" => args.replies.push(Reply::NullArray),
            "--conv-fail" => {
                let v = value()?;
                let code = pamapp::code_from_name(&v)
                    .or_else(|| v.parse().ok())
                    .ok_or(format!("unknown PAM code {v}"))?;
                args.replies.push(Reply::Fail(code));
            }
            "--setcred" => args.setcred = true,
            "--set-user-at-prompt" => args.user_at_prompt = Some(value()?),
            "--answer-gate" => args.answer_gate = Some(PathBuf::from(value()?)),
            "--hold-after-end" => args.hold_marker = Some(value()?),
            "--host-syslog" => args.host_ident = Some(ident(&value()?)?),
            "--host-closelog-mid" => args.host_closelog_mid = true,
            "--host-openlog-mid" => args.host_openlog_mid = Some(ident(&value()?)?),
            "--host-sigchld" => {
                let v = value()?;
                args.host_sigchld = Some(
                    Sigchld::parse(&v)
                        .ok_or(format!("--host-sigchld: ignore, reap or default, not {v}"))?,
                );
            }
            "--host-close-std" => {
                let v = value()?;
                args.host_close_std = v
                    .split(',')
                    .map(|f| match f.parse::<i32>() {
                        Ok(fd @ 0..=2) => Ok(fd),
                        _ => Err(format!("--host-close-std: 0, 1 or 2, not {f}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--host-fsuid" => {
                args.host_fsuid = Some(value()?.parse().map_err(|e| format!("--host-fsuid: {e}"))?)
            }
            "--host-block-signals" => args.host_block_signals = true,
            "--host-ignore-signals" => args.host_ignore_signals = true,
            "--host-alarm-every" => {
                args.host_alarm_ms = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--host-alarm-every: {e}"))?,
                )
            }
            "--repeat" => args.repeat = value()?.parse().map_err(|e| format!("--repeat: {e}"))?,
            "--start-at" => {
                args.start_at_ms = Some(value()?.parse().map_err(|e| format!("--start-at: {e}"))?)
            }
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    if args.service.is_empty() {
        return Err(USAGE.to_string());
    }
    Ok(args)
}

fn ident(value: &str) -> Result<&'static CStr, String> {
    host_log::leak_ident(value).ok_or(format!("syslog ident with a NUL byte: {value:?}"))
}

/// The host's own line at one point of the transaction, when it has its own log.
fn host_line(args: &Args, text: &str) {
    if args.host_ident.is_some() {
        host_log::log(host_log::LOG_INFO, &format!("host: {text}"));
    }
}

/// The bytes of a hex string (the marker is given in hex so that its bytes appear in
/// memory only where this driver puts them, never in argv).
fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Length of the stack copy of the marker (a fixed-size array, so it lives in this
/// frame and not on the heap).
const STACK_MARKER: usize = 16;

/// The memory tests' wait: the marker on the heap and, inverted, on the stack stay alive
/// while a test reads this process; returns once stdin is closed.
fn hold(hex: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let heap = from_hex(hex).ok_or("--hold-after-end: an even number of hex digits")?;
    if heap.len() != STACK_MARKER {
        return Err(format!("--hold-after-end: {STACK_MARKER} bytes"));
    }
    let mut stack = [0u8; STACK_MARKER];
    for (s, h) in stack.iter_mut().zip(&heap) {
        *s = !h;
    }
    let heap = std::hint::black_box(heap);
    let stack = std::hint::black_box(stack);
    let mut out = std::io::stdout().lock();
    writeln!(out, "held {}", std::process::id()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let mut sink = [0u8; 64];
    while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
    std::hint::black_box(&heap);
    std::hint::black_box(&stack);
    Ok(())
}

fn wait_until(ms: u64) {
    let target = UNIX_EPOCH + Duration::from_millis(ms);
    if let Ok(d) = target.duration_since(SystemTime::now()) {
        std::thread::sleep(d);
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(100);
        }
    };
    if let Some(ident) = args.host_ident {
        host_log::open(ident, host_log::LOG_PID, host_log::LOG_LOCAL3);
    }
    if let Some(how) = args.host_sigchld
        && let Err(e) = host_signals::set(how)
    {
        eprintln!("--host-sigchld: {e}");
        return ExitCode::from(100);
    }
    let signals = [
        (
            args.host_ignore_signals,
            host_signals::ignore_common as fn() -> _,
        ),
        (args.host_block_signals, host_signals::block_all),
    ];
    for (wanted, set) in signals {
        if wanted && let Err(e) = set() {
            eprintln!("host signals: {e}");
            return ExitCode::from(100);
        }
    }
    if let Some(ms) = args.host_alarm_ms
        && let Err(e) = host_signals::alarm_every(ms)
    {
        eprintln!("--host-alarm-every: {e}");
        return ExitCode::from(100);
    }
    if let Some(uid) = args.host_fsuid
        && host_ids::set_fsuid(uid) != uid
    {
        eprintln!("--host-fsuid: not set");
        return ExitCode::from(100);
    }
    let saved_stdout = if args.host_close_std.is_empty() {
        None
    } else {
        match host_fds::close(&args.host_close_std) {
            Some(fd) => Some(fd),
            None => {
                eprintln!("--host-close-std: cannot keep stdout");
                return ExitCode::from(100);
            }
        }
    };
    let mut rc = 0;
    // Repeat is for the benchmark: the same transaction shape many times in one process.
    for _ in 0..args.repeat.max(1) {
        host_line(&args, "before pam_start");
        let scripted = Scripted::new(args.replies.clone());
        let conv: Box<dyn Conversation> = match &args.answer_gate {
            Some(gate) => Box::new(Gated {
                inner: scripted,
                gate: gate.clone(),
            }),
            None => Box::new(scripted),
        };
        let conv: Box<dyn Conversation> = if args.keyed.is_empty() {
            conv
        } else {
            Box::new(Keyed {
                inner: conv,
                keyed: args.keyed.clone(),
            })
        };
        let mut tx = match Transaction::start(
            &args.service,
            args.user.as_deref(),
            args.confdir.as_deref(),
            conv,
        ) {
            Ok(tx) => tx,
            Err(e) => {
                println!("result {}", code_name(e.0));
                return ExitCode::from(u8::try_from(e.0).unwrap_or(255));
            }
        };
        for (item, value) in &args.items {
            tx.set_item(*item, value.as_bytes());
        }
        if let Some(name) = &args.user_at_prompt {
            tx.set_user_at_next_prompt(name.as_bytes());
        }
        if let Some(ms) = args.start_at_ms {
            wait_until(ms);
        }
        rc = tx.authenticate(0);
        // Printed after pam_end: the host's stdout may be closed until then.
        let mut report = Vec::new();
        if args.setcred && rc == 0 {
            let sc = tx.setcred();
            report.push(format!("setcred {}", code_name(sc)));
        }
        if args.host_closelog_mid {
            host_log::close();
        }
        if let Some(other) = args.host_openlog_mid {
            host_log::open(other, 0, host_log::LOG_AUTHPRIV);
        }
        host_line(&args, "between pam_authenticate and pam_end");
        if args.repeat <= 1 {
            report.push(format!("result {}", code_name(rc)));
            report.push(format!("prompts {}", tx.prompt_count()));
            for m in tx.transcript() {
                report.push(format!("msg {} {}", m.style, m.text.replace('\n', "\\n")));
            }
        }
        // pam_end runs the modules' cleanup functions: a module could touch the log there.
        drop(tx);
        host_line(&args, "after pam_end");
        if let Some(saved) = saved_stdout {
            let open = host_fds::open_among(&args.host_close_std);
            if !host_fds::restore_stdout(saved) {
                return ExitCode::from(100);
            }
            let open: Vec<String> = open.iter().map(i32::to_string).collect();
            report.push(format!(
                "std-open {}",
                if open.is_empty() {
                    "-".to_owned()
                } else {
                    open.join(",")
                }
            ));
        }
        if args.host_fsuid.is_some() {
            report.push(format!("fsuid {}", host_ids::fsuid()));
        }
        if args.host_alarm_ms.is_some() {
            report.push(format!("host-alarms {}", host_signals::alarms()));
        }
        for line in &report {
            println!("{line}");
        }
        if args.host_sigchld.is_some() {
            let now = host_signals::current().map_or("other", Sigchld::name);
            println!("sigchld {now}");
            println!("host-reaped {}", host_signals::reaped());
        }
    }
    if args.repeat > 1 {
        println!("result {}", code_name(rc));
    }
    if let Some(hex) = &args.hold_marker
        && let Err(e) = hold(hex)
    {
        eprintln!("{e}");
        return ExitCode::from(100);
    }
    ExitCode::from(u8::try_from(rc).unwrap_or(255))
}
