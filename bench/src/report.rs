//! The printed report: the table, the goal lines, machine and package facts.

use super::*;

pub(super) fn stripped_size(b: &Bench, so: &Path) -> Option<u64> {
    let out = b.scratch.join("stripped.so");
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(so)
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let size = ok
        .then(|| fs::metadata(&out).ok().map(|m| m.len()))
        .flatten();
    let _ = fs::remove_file(&out);
    size
}

pub(super) fn first_line_with(path: &str, key: &str) -> Option<String> {
    fs::read_to_string(path).ok()?.lines().find_map(|l| {
        l.strip_prefix(key).map(|v| {
            v.trim_start_matches([' ', '\t', ':', '='])
                .trim_matches('"')
                .to_owned()
        })
    })
}

pub(super) fn package_version(pkg: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", pkg])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "?".into())
}

pub(super) fn machine(b: &Bench) -> String {
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let os = first_line_with("/etc/os-release", "PRETTY_NAME").unwrap_or_else(|| "?".into());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "machine: {cpu}, {cpus} CPUs; {os}; kernel {}; load average {}\n\
         state files on: {}; libpam {}; libpam-google-authenticator {}",
        kernel.trim(),
        load.join(" "),
        sandbox::fs_type(b.state.parent().unwrap_or(&b.scratch)),
        package_version("libpam0g"),
        package_version("libpam-google-authenticator"),
    )
}

pub(super) fn fmt_us(v: Option<f64>) -> String {
    match v {
        Some(us) if us >= 10_000.0 => format!("{:.1} ms", us / 1000.0),
        Some(us) => format!("{us:.1} µs"),
        None => "-".into(),
    }
}

pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(super) fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}×"),
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.3}×"),
        None => "-".into(),
    }
}

pub(super) fn median_of(cases: &[Case], key: &str) -> Option<f64> {
    cases
        .iter()
        .find(|c| c.key == key)
        .and_then(Case::median_us)
}

pub(super) fn print_table(auth: &[Case], access: &[Case]) {
    let header = |other: &str| {
        println!(
            "{:<18} {:<16} {:>11} {:>11} {:>6} {:>9} {:>11} {:>10} {:>10}",
            "scenario",
            "module",
            "median",
            "p90",
            "n",
            "logs/auth",
            "faults/auth",
            "×permit",
            other
        );
    };
    header("×GA");
    let mut group = "";
    for c in auth.iter().chain(access) {
        if c.group != group {
            group = c.group;
            println!("-- {group}");
            if c.key.starts_with("access-") {
                header("×pam_access");
            }
        }
        let all: Vec<&Case> = auth.iter().chain(access).collect();
        let other = c
            .reference
            .as_deref()
            .and_then(|r| all.iter().find(|x| x.key == r))
            .and_then(|x| x.median_us());
        // A fresh process's row over a fresh process's floor: both pay the start-up
        // of a process that never ran libpam.
        let permit = median_of(auth, c.process.floor());
        print_row(
            c,
            ratio(c.median_us(), permit),
            ratio(c.median_us(), other),
            "",
        );
    }
}

pub(super) fn print_row(c: &Case, vs_permit: Option<f64>, vs_other: Option<f64>, note: &str) {
    let n = c.samples.len() + c.skipped_warmup + c.primed;
    let per = |v: u64| {
        if n > 0 {
            format!("{:.1}", v as f64 / n as f64)
        } else {
            "-".into()
        }
    };
    println!(
        "{:<18} {:<16} {:>11} {:>11} {:>6} {:>9} {:>11} {:>10} {:>10}{note}",
        c.scenario,
        c.module,
        fmt_us(c.median_us()),
        fmt_us(percentile(&c.samples, 90)),
        c.samples.len(),
        per(c.logs),
        per(c.faults),
        fmt_ratio(vs_permit),
        fmt_ratio(vs_other),
    );
}

pub(super) fn goal(label: &str, value: Option<f64>, limit: f64, at_most: bool) {
    let verdict = match value {
        None => "n/a ",
        Some(v) if (at_most && v <= limit) || (!at_most && v >= limit) => "PASS",
        Some(_) => "FAIL",
    };
    let shown = value.map_or("not measured".into(), |v| format!("{v:.3}×"));
    println!("{verdict}  {label}: {shown}");
}

/// Crates whose code is std's backtrace printer, linked through its default panic hook.
const BACKTRACE_CRATES: [&str; 6] = [
    "gimli",
    "addr2line",
    "rustc_demangle",
    "miniz_oxide",
    "adler2",
    "object",
];

/// The module's size broken down (issue 23): its sections by `size -A`, and, when the
/// `profiling` build (same code, symbols kept; `scripts/module-size.sh` builds it) is at
/// least as new as the release one, its code and constants per crate from
/// `nm --size-sort`, each symbol counted for the crate its demangled path starts with.
pub(super) fn size_breakdown(release_so: &Path) {
    let kib = |b: u64| (b as f64) / 1024.0;
    if let Ok(out) = Command::new("size").arg("-A").arg(release_so).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts: Vec<(String, u64)> = text
            .lines()
            .skip(2)
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let name = f.next()?;
                let bytes = f.next()?.parse().ok()?;
                (name.starts_with('.') && bytes >= 8 * 1024).then(|| (name.to_owned(), bytes))
            })
            .collect();
        parts.sort_by_key(|p| std::cmp::Reverse(p.1));
        let shown: Vec<String> = parts
            .iter()
            .map(|(n, b)| format!("{n} {:.0}", kib(*b)))
            .collect();
        println!("  sections ≥ 8 KiB (KiB): {}", shown.join(", "));
    }
    let profiling = release_so
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("profiling/libpam_totp.so"));
    let fresh = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let usable = profiling
        .as_deref()
        .filter(|p| matches!((fresh(p), fresh(release_so)), (Some(a), Some(b)) if a >= b));
    let Some(symbols) = usable else {
        println!("  per crate: run scripts/module-size.sh (needs a current profiling build)");
        return;
    };
    let Ok(out) = Command::new("nm")
        .args(["-C", "--size-sort", "-S"])
        .arg(symbols)
        .output()
    else {
        return;
    };
    let mut per: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut f = line.splitn(4, ' ');
        let (Some(_), Some(size), Some(_), Some(name)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        // "<crate::T as other::Trait>::f" belongs to the type's crate.
        let name = name.trim_start_matches(['<', '&']);
        let name = name.strip_prefix("mut ").unwrap_or(name);
        let name = name.strip_prefix("dyn ").unwrap_or(name);
        let end = name
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(name.len());
        let krate = match &name[..end] {
            "" => "(other)",
            k if BACKTRACE_CRATES.contains(&k) => "std backtrace",
            k => k,
        };
        *per.entry(krate.to_owned()).or_default() += size;
    }
    let mut per: Vec<(String, u64)> = per.into_iter().filter(|(_, b)| *b >= 4 * 1024).collect();
    per.sort_by_key(|p| std::cmp::Reverse(p.1));
    let shown: Vec<String> = per
        .iter()
        .map(|(k, b)| format!("{k} {:.0}", kib(*b)))
        .collect();
    println!(
        "  code and constants per crate ≥ 4 KiB (KiB): {}",
        shown.join(", ")
    );
}
