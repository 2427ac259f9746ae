//! The module's memory, measured in a fresh child process (`pam-bench --memory-child`)
//! so the benchmark's own heap does not blur it.
//!
//! The child first runs one pam_permit transaction (libpam, the dynamic loader and NSS
//! are then warm, as in any login process), takes `/proc/self/status` as the baseline,
//! and runs one transaction with the module under test. The conversation samples
//! `/proc/self/status` while the module is loaded and waiting for the code, and finds
//! the module's file in `/proc/self/maps`. `VmHWM` after `pam_end` gives the peak.

use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;

use pamapp::{Conversation, Message, Reply, style};

/// The `kB` fields of `/proc/self/status` the report uses.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStatus {
    pub vm_hwm: u64,
    pub vm_rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
}

pub fn status() -> ProcStatus {
    let text = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut s = ProcStatus::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kb = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        match key {
            "VmHWM" => s.vm_hwm = kb,
            "VmRSS" => s.vm_rss = kb,
            "RssAnon" => s.rss_anon = kb,
            "RssFile" => s.rss_file = kb,
            _ => {}
        }
    }
    s
}

#[derive(Default)]
struct Probe {
    at_prompt: Option<ProcStatus>,
    module_path: Option<String>,
}

struct ProbeConv {
    answer: Option<String>,
    needle: String,
    probe: Rc<RefCell<Probe>>,
}

impl Conversation for ProbeConv {
    fn reply(&mut self, message: &Message) -> Reply {
        if message.style != style::PROMPT_ECHO_OFF && message.style != style::PROMPT_ECHO_ON {
            return Reply::Text(String::new());
        }
        let mut p = self.probe.borrow_mut();
        p.at_prompt = Some(status());
        let maps = fs::read_to_string("/proc/self/maps").unwrap_or_default();
        p.module_path = maps
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|path| path.contains(self.needle.as_str()))
            .map(str::to_owned);
        match self.answer.take() {
            Some(a) => Reply::Text(a),
            None => Reply::Fail(pamapp::codes::CONV_ERR),
        }
    }
}

fn transaction(confdir: &Path, service: &str, conv: Box<dyn Conversation>) -> i32 {
    crate::authenticate_once(confdir, service, crate::USER, conv).map_or_else(|e| e.0, |(rc, _)| rc)
}

/// `--memory-child CONFDIR SERVICE NEEDLE ANSWER`; prints `key value` lines.
pub fn child(args: &[String]) -> ExitCode {
    let [confdir, service, needle, answer] = args else {
        eprintln!("usage: pam-bench --memory-child CONFDIR SERVICE NEEDLE ANSWER");
        return ExitCode::from(2);
    };
    let confdir = Path::new(confdir);
    let warm = transaction(confdir, "permit", Box::new(pamapp::Scripted::default()));
    if warm != pamapp::codes::SUCCESS {
        eprintln!("warm-up transaction failed: {}", pamapp::code_name(warm));
        return ExitCode::from(1);
    }
    let base = status();
    let probe = Rc::new(RefCell::new(Probe::default()));
    let conv = ProbeConv {
        answer: (answer != "-").then(|| answer.clone()),
        needle: needle.clone(),
        probe: Rc::clone(&probe),
    };
    let rc = transaction(confdir, service, Box::new(conv));
    let after = status();
    let p = probe.borrow();
    println!("result {}", pamapp::code_name(rc));
    println!("hwm_delta_kib {}", after.vm_hwm.saturating_sub(base.vm_hwm));
    if let Some(s) = p.at_prompt {
        println!(
            "anon_delta_kib {}",
            s.rss_anon.saturating_sub(base.rss_anon)
        );
        println!(
            "file_delta_kib {}",
            s.rss_file.saturating_sub(base.rss_file)
        );
    }
    if let Some(path) = &p.module_path {
        println!("module_path {path}");
    }
    ExitCode::SUCCESS
}
