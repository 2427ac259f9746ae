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
    let permit = median_of(auth, "permit");
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
