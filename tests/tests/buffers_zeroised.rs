//! K4 of SECURITY.md through the real libpam: once a login is over, the secret is gone
//! from the login process's memory.
//!
//! `pam-drive --hold-after-end` runs a login with a known random secret (a right code,
//! a wrong code, a scratch code, a SHA-512 code and an HOTP code; the scratch and HOTP
//! codes make the module rewrite the file), then, after `pam_end` (which also unloads the module), waits with the
//! process alive. The test (root) reads every writable mapping of that process through
//! `/proc/PID/mem` (heap, anonymous mappings, thread stacks, the main stack, the data of
//! loaded libraries) and looks for the secret in each form the module handles: its
//! base32 text as the file holds it, the decoded key bytes, and the key XORed with HMAC's
//! inner and outer pads; and for the codes the module computes, the HMAC values and codes
//! of the steps around the login's time or of the HOTP look-ahead (the HMAC of the next
//! step is the next valid code). Any 12-character run of the text or 8-byte run of a key
//! or HMAC counts, so a partly overwritten copy is found too. The code the driver was
//! given is not looked for: the application holds it (argv, its conversation), so a hit
//! could not be told apart from the module's copies.
//!
//! Both builds are scanned: the debug module the other tests load and the release module
//! as it is installed (optimised code keeps other temporaries, on the stack above all).
//!
//! Control: the driver keeps a random marker on its heap and, inverted, on its stack
//! while it waits, and the same scan must find each in a mapping of that kind, so a
//! clean result means the scan read the heap and the stack, not that it read nothing.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

use system_tests::*;

const SCRATCH: &str = "48151623";

/// What the scan looks for: a label, the bytes, and the run of them that counts as a hit.
type Needles = Vec<(String, Vec<u8>, usize)>;

/// One writable mapping of the held process.
struct Mapping {
    start: u64,
    end: u64,
    /// The pathname column of `/proc/PID/maps`: empty for anonymous memory.
    name: String,
}

impl Mapping {
    fn kind(&self) -> &str {
        match self.name.as_str() {
            "" => "anonymous",
            "[heap]" => "heap",
            n if n.starts_with("[stack") => "stack",
            _ => "file",
        }
    }
}

/// The writable mappings the kernel lets a tracer read (not `[vvar]` and the like).
fn writable_mappings(pid: u32) -> Vec<Mapping> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("read maps");
    maps.lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let range = cols.next()?;
            let perms = cols.next()?;
            let name = cols.nth(3).unwrap_or("").to_string();
            if !perms.starts_with("rw") || name.starts_with("[v") {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some(Mapping {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                name,
            })
        })
        .collect()
}

/// What the scan of one process found: for each needle, the kinds of mapping it was in.
struct Scan {
    mappings: usize,
    bytes: u64,
    found: Vec<(String, String)>,
}

/// Reads every writable mapping of `pid` and reports which needles (label, bytes, the
/// run length that counts as a hit) occur where.
fn scan(pid: u32, needles: &Needles) -> Scan {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).expect("open /proc/PID/mem");
    let mut result = Scan {
        mappings: 0,
        bytes: 0,
        found: Vec::new(),
    };
    for m in writable_mappings(pid) {
        let len = usize::try_from(m.end - m.start).expect("mapping size");
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match mem.read_at(&mut buf[filled..], m.start + filled as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        if filled == 0 {
            continue;
        }
        result.mappings += 1;
        result.bytes += filled as u64;
        let hay = &buf[..filled];
        for (label, needle, run) in needles {
            let hit = needle
                .windows(*run)
                .any(|w| hay.windows(w.len()).any(|h| h == w));
            if hit {
                result
                    .found
                    .push((label.clone(), format!("{} {}", m.kind(), m.name)));
            }
        }
    }
    result
}

fn random_bytes(n: usize) -> Vec<u8> {
    use std::io::Read;
    let mut b = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("urandom");
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs one login in a held driver, scans it after `pam_end`, then lets it exit.
/// Returns the PAM result and the scan.
fn held_login(driver: Driver, needles: &Needles, marker: &[u8]) -> (Drive, Scan) {
    let mut child = driver
        .arg("--hold-after-end", &hex(marker))
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pam-drive");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    let mut pid = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read pam-drive");
        if let Some(p) = line.strip_prefix("held ") {
            pid = Some(p.parse::<u32>().expect("pid"));
            break;
        }
        lines.push(line);
    }
    let Some(pid) = pid else {
        let out = child.wait_with_output().expect("wait");
        panic!(
            "pam-drive never held: {lines:?} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert_eq!(pid, child.id(), "the held process is the driver itself");
    let result = scan(pid, needles);
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.code().is_some(),
        "pam-drive died by a signal: {out:?}"
    );
    let mut joined = lines.join("\n").into_bytes();
    joined.push(b'\n');
    let d = Drive::parse(&std::process::Output {
        status: out.status,
        stdout: joined,
        stderr: out.stderr,
    });
    (d, result)
}

/// Each form of the secret the module handles, with the run length that counts as a hit.
fn secret_needles(secret_b32: &str) -> Needles {
    let key = totp_core::base32::decode_lenient(secret_b32.as_bytes()).expect("base32");
    let xored = |pad: u8| key.iter().map(|b| b ^ pad).collect::<Vec<u8>>();
    vec![
        ("base32 text".into(), secret_b32.as_bytes().to_vec(), 12),
        ("key bytes".into(), key.clone(), 8),
        ("key ^ ipad".into(), xored(0x36), 8),
        ("key ^ opad".into(), xored(0x5c), 8),
    ]
}

/// HMAC (`alg`: `sha1`, `sha512`) of the 8-byte big-endian `counter` under `key`, from
/// `openssl` (an implementation nobody here wrote).
fn hmac(alg: &str, key: &[u8], counter: u64) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", &format!("-{alg}"), "-mac", "HMAC", "-macopt"])
        .arg(format!("hexkey:{}", hex(key)))
        .arg("-binary")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&counter.to_be_bytes())
        .expect("write counter");
    let out = child.wait_with_output().expect("openssl");
    assert!(out.status.success() && out.stdout.len() >= 20, "{out:?}");
    out.stdout
}

/// The HMAC values (`alg`) and codes of the steps around `unix` (the module computes
/// those of its window; the caller leaves out the code the driver itself was given).
fn window_needles(secret_b32: &str, unix: u64, alg: &str) -> Needles {
    let key = totp_core::base32::decode_lenient(secret_b32.as_bytes()).expect("base32");
    let step = unix / 30;
    let mut needles = Vec::new();
    for s in step - 2..=step + 2 {
        needles.push((format!("HMAC of step {s}"), hmac(alg, &key, s), 8));
        // Six digits are a short needle (some thirty six-digit runs per scan): a scan
        // whose only finds are codes is repeated in a new process before it fails.
        let code = oathtool_totp(secret_b32, s * 30, 30, 6, alg);
        needles.push((format!("code of step {s}"), code.into_bytes(), 6));
    }
    needles
}

/// The HMAC values and codes of the HOTP `counters` (the module's look-ahead).
fn hotp_needles(secret_b32: &str, counters: std::ops::RangeInclusive<u64>) -> Needles {
    let key = totp_core::base32::decode_lenient(secret_b32.as_bytes()).expect("base32");
    let mut needles = Vec::new();
    for c in counters {
        needles.push((format!("HMAC of counter {c}"), hmac("sha1", &key, c), 8));
        needles.push((
            format!("code of counter {c}"),
            oathtool_hotp(secret_b32, c).into_bytes(),
            6,
        ));
    }
    needles
}

/// K4: after a right code, a wrong code, a scratch code, a SHA-512 code and an HOTP code
/// (the file rewritten for the scratch and HOTP codes), no form of the secret is left in any writable mapping of the login process; the control
/// markers are found in the heap and in the stack by the same scan.
#[test]
fn no_copy_of_the_secret_survives_a_login() {
    let t = "no_copy_of_the_secret_survives_a_login";
    if !require_root(t) || !require_tool(t, "openssl") {
        return;
    }
    let debug = built().module.clone();
    for so in [debug, release_module()] {
        logins_leave_no_copy(&so);
    }
}

fn logins_leave_no_copy(so: &Path) {
    let (u, secret) = TestUser::enrolled("kz");
    let totp = format!("{}{SCRATCH}\n", totp_file(&secret));
    let hotp = format!("{secret}\n\" HOTP_COUNTER 1\n");
    let sha512 = format!("{secret}\n\" PAM_TOTP_ALGORITHM SHA512\n\" TOTP_AUTH\n");
    let stack = Stack::probe_module("svc", so, "");
    let t = now();
    // (name, file, answer, expected result, the module's own codes and HMACs)
    let cases: [(&str, &str, String, Returned, Needles); 5] = [
        (
            "right code",
            &totp,
            code_at(&secret, t),
            Returned::Success,
            window_needles(&secret, t, "sha1"),
        ),
        (
            "wrong code",
            &totp,
            wrong_totp(&secret, t),
            Returned::Failed("PAM_AUTH_ERR".into()),
            window_needles(&secret, t, "sha1"),
        ),
        (
            "scratch code",
            &totp,
            SCRATCH.to_string(),
            Returned::Success,
            window_needles(&secret, t, "sha1"),
        ),
        (
            "SHA-512 code",
            &sha512,
            oathtool_totp(&secret, t, 30, 6, "sha512"),
            Returned::Success,
            window_needles(&secret, t, "sha512"),
        ),
        (
            "HOTP code (the counter rewritten)",
            &hotp,
            oathtool_hotp(&secret, 2),
            Returned::Success,
            hotp_needles(&secret, 1..=3),
        ),
    ];
    for (name, file, answer, expected, own) in cases {
        let marker = random_bytes(16);
        let inverted: Vec<u8> = marker.iter().map(|b| !b).collect();
        let mut needles = secret_needles(&secret);
        needles.extend(own.into_iter().filter(|(_, n, _)| n != answer.as_bytes()));
        needles.push(("heap marker".into(), marker.clone(), 16));
        needles.push(("stack marker".into(), inverted, 16));
        let login = || {
            u.write_secret(file, 0o600);
            reset_state(&stack, u.uid);
            let driver = Driver::login(&stack, &u, &answer);
            held_login(driver, &needles, &marker)
        };
        let (mut d, mut scan) = login();
        // A six-digit code can turn up by chance (about one scan in a thousand); a
        // chance run does not come back in a second process, a residue does.
        let only_codes = |scan: &Scan| {
            let residues = scan.found.iter().filter(|(l, _)| !l.ends_with("marker"));
            residues.clone().count() > 0
                && residues.into_iter().all(|(l, _)| l.starts_with("code of"))
        };
        if only_codes(&scan) {
            (d, scan) = login();
        }
        assert_eq!(d.returned(), expected, "{so:?} {name}: {d:?}");
        let after = read(&u.secret_path());
        if answer == SCRATCH {
            assert!(!after.contains(SCRATCH), "{name}: the file was rewritten");
        }
        if file == hotp {
            assert!(
                after.contains("\" HOTP_COUNTER 3"),
                "{name}: the file was rewritten: {after:?}"
            );
        }
        let kinds = |label: &str| -> Vec<&str> {
            scan.found
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, k)| k.as_str())
                .collect()
        };
        assert!(
            kinds("heap marker")
                .iter()
                .any(|k| k.starts_with("heap") || k.starts_with("anonymous")),
            "{so:?} {name}: control: the heap marker was not found ({} mappings, {} bytes read): {:?}",
            scan.mappings,
            scan.bytes,
            scan.found
        );
        assert!(
            kinds("stack marker").iter().any(|k| k.starts_with("stack")),
            "{so:?} {name}: control: the stack marker was not found: {:?}",
            scan.found
        );
        let residues: Vec<&(String, String)> = scan
            .found
            .iter()
            .filter(|(l, _)| !l.ends_with("marker"))
            .collect();
        assert!(
            residues.is_empty(),
            "{so:?} {name}: the secret is still in the login process after pam_end: {residues:?}"
        );
    }
}

/// A credentials file (`username=fleet`, `password`) in a directory the module trusts,
/// which lives as long as the returned guard.
fn credentials_file(tag: &str, password: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = system_tests::fleet::trusted_dir(tag);
    let cred = dir.path().join("credentials");
    fs::write(&cred, format!("username=fleet\npassword={password}\n")).expect("write");
    fs::set_permissions(&cred, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    (dir, cred)
}

/// The plugins' share of K4: a login of `u` on `stack` for each of `cases` (name,
/// answer, the result libpam must give), each held after `pam_end` and scanned for
/// `credentials` (label, bytes, run length), none of which may be found. Control: the
/// heap and stack markers are found by the same scan.
fn fleet_logins_leave_no_copy(
    stack: &Stack,
    u: &TestUser,
    cases: &[(&str, String, Returned)],
    credentials: &Needles,
) {
    for (name, answer, expected) in cases {
        let marker = random_bytes(16);
        let inverted: Vec<u8> = marker.iter().map(|b| !b).collect();
        let mut needles = credentials.clone();
        needles.push(("heap marker".into(), marker.clone(), 16));
        needles.push(("stack marker".into(), inverted, 16));
        let (d, scan) = held_login(Driver::login(stack, u, answer), &needles, &marker);
        assert_eq!(&d.returned(), expected, "{name}: {d:?}");
        let kinds = |label: &str| -> Vec<String> {
            scan.found
                .iter()
                .filter(|(l, _)| l == label)
                .map(|(_, k)| k.clone())
                .collect()
        };
        assert!(
            kinds("heap marker")
                .iter()
                .any(|k| k.starts_with("heap") || k.starts_with("anonymous")),
            "{name}: control: the heap marker was not found: {:?}",
            scan.found
        );
        assert!(
            kinds("stack marker").iter().any(|k| k.starts_with("stack")),
            "{name}: control: the stack marker was not found: {:?}",
            scan.found
        );
        let residues: Vec<&(String, String)> = scan
            .found
            .iter()
            .filter(|(l, _)| !l.ends_with("marker"))
            .collect();
        assert!(
            residues.is_empty(),
            "{name}: a credential is still in the login process after pam_end: {residues:?}"
        );
    }
}

/// A right code and a wrong code of `secret` now.
fn right_and_wrong(secret: &str) -> Vec<(&'static str, String, Returned)> {
    let t = now();
    vec![
        ("right code", code_at(secret, t), Returned::Success),
        (
            "wrong code",
            wrong_totp(secret, t),
            Returned::Failed("PAM_AUTH_ERR".into()),
        ),
    ]
}

/// The etcd plugin's share of K4: after a login against a TLS etcd with authentication
/// on (the plugin sends the password, gets a token and sends it with each request),
/// no 12-character run of the password is left in any writable mapping of the login
/// process: not the credentials file's text the module read, nor the configuration it
/// handed over, nor the request body, nor the plaintext TLS buffers. Right code and
/// wrong code; control: the heap and stack markers are found by the same scan.
/// (The token etcd issued is not looked for: its value is known only to the login.)
#[test]
fn no_copy_of_the_etcd_password_survives_a_login() {
    use system_tests::etcd::{EtcdCluster, EtcdConfig, etcd_plugin};
    use system_tests::fleet::{TestCa, init_store};
    if !require_root("no_copy_of_the_etcd_password_survives_a_login") {
        return;
    }
    let ca = TestCa::new("etcd-k4");
    let mut cluster = EtcdCluster::start(
        1,
        &EtcdConfig {
            tls: Some(&ca),
            ..EtcdConfig::default()
        },
    );
    let password = hex(&random_bytes(16));
    cluster.enable_auth("fleet", &password, "pam_totp/");
    let (_dir, cred) = credentials_file("etcd-k4", &password);
    let args = format!(
        "state={} etcd_plugin={} etcd_prefix=pam_totp/ etcd_timeout=1000 \
         etcd_credentials={} etcd_ca_file={}",
        cluster.url(),
        etcd_plugin().display(),
        cred.display(),
        ca.ca_cert.display()
    );
    init_store(&args);
    let (u, secret) = TestUser::enrolled("kp");
    let stack = Stack::probe("svc", &args);
    let needles: Needles = vec![("password".into(), password.into_bytes(), 12)];
    fleet_logins_leave_no_copy(&stack, &u, &right_and_wrong(&secret), &needles);
}

/// The Redis plugin's share of K4: after a login against a TLS Redis that requires a
/// client certificate and an ACL password, neither a 12-character run of the password
/// (the credentials file, the configuration handed to the plugin, the `AUTH` command)
/// nor a 24-character run of the client key's PEM text is left in any writable mapping
/// of the login process. Right code and wrong code; control: the heap and stack
/// markers are found by the same scan.
#[test]
fn no_copy_of_the_redis_password_or_client_key_survives_a_login() {
    use system_tests::fleet::{RedisServer, ServerConfig, TestCa, plugin};
    if !require_root("no_copy_of_the_redis_password_or_client_key_survives_a_login") {
        return;
    }
    let password = hex(&random_bytes(16));
    let ca = TestCa::new("redis-k4");
    let server = RedisServer::start(&ServerConfig {
        acl_password: Some(&password),
        tls: Some(&ca),
        tls_auth_clients: true,
        ..ServerConfig::default()
    });
    let (_dir, cred) = credentials_file("redis-k4", &password);
    let args = format!(
        "state={} redis_plugin={} redis_connect_timeout=2000 redis_credentials={} \
         redis_ca_file={} redis_client_cert={} redis_client_key={}",
        server.url(true),
        plugin().display(),
        cred.display(),
        ca.ca_cert.display(),
        ca.client_cert.display(),
        ca.client_key.display()
    );
    let _ = state_tool(&["init", "--never-used", "--options", &args]);
    // The key's base64 text, its header and footer lines left out (every PEM has them).
    let key_text: String = read(&ca.client_key)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(key_text.len() > 100, "{key_text:?}");
    let (u, secret) = TestUser::enrolled("kr");
    let stack = Stack::probe("svc", &args);
    let needles: Needles = vec![
        ("password".into(), password.into_bytes(), 12),
        ("client key".into(), key_text.into_bytes(), 24),
    ];
    fleet_logins_leave_no_copy(&stack, &u, &right_and_wrong(&secret), &needles);
}

/// A server that does not know `AUTH` (renamed or disabled, or a proxy) quotes the
/// arguments it was sent in its error, the password among them: after such a login no
/// 12-character run of the password is left in the login process either (the reply's
/// read buffer, the error text, the failure built from it, the log line's text).
/// Control: the failure is that refusal (libpam's answer for an unusable store), and
/// the heap and stack markers are found by the same scan.
#[test]
fn no_copy_of_a_redis_password_echoed_by_the_server_survives_a_login() {
    use system_tests::fleet::{RedisServer, ServerConfig, plugin};
    if !require_root("no_copy_of_a_redis_password_echoed_by_the_server_survives_a_login") {
        return;
    }
    let password = hex(&random_bytes(16));
    let server = RedisServer::start(&ServerConfig {
        extra: &["--rename-command", "AUTH", "AUTH_RENAMED_AWAY"],
        ..ServerConfig::default()
    });
    let (_dir, cred) = credentials_file("redis-echo", &password);
    let args = format!(
        "state={} redis_plugin={} redis_connect_timeout=2000 redis_credentials={}",
        server.url(false),
        plugin().display(),
        cred.display(),
    );
    let (u, secret) = TestUser::enrolled("ke");
    let stack = Stack::probe("svc", &args);
    let cases = [(
        "right code, store refused",
        code_at(&secret, now()),
        Returned::Failed("PAM_AUTH_ERR".into()),
    )];
    let needles: Needles = vec![("password".into(), password.into_bytes(), 12)];
    fleet_logins_leave_no_copy(&stack, &u, &cases, &needles);
}

/// `totp-enroll`'s memory as it exits, each form of the new secret looked for: stopped
/// by `gdb` at `exit_group` (after every destructor ran, before the kernel frees
/// anything) and dumped whole with `gcore`, the core holding the heap, the stacks and
/// every mapping. No 12-character run of the base32 text, no 8-byte run of the key
/// and no scratch code may be left, for a TOTP enrolment printed as JSON with a
/// terminal QR code, one with `--uri` and PNG and SVG files, and an HOTP one. Before
/// the fix the file's text, grown a line at a time, left its outgrown copies (secret
/// and scratch codes) in freed memory, and `--json` left the object in std's
/// standard output buffer. Control: the run's random label, which the tool never
/// wipes, is found in the same dump.
#[test]
fn no_copy_of_a_new_secret_survives_an_enrolment() {
    let t = "no_copy_of_a_new_secret_survives_an_enrolment";
    if !require_root(t) || !require_tool(t, "gdb") || !require_tool(t, "gcore") {
        return;
    }
    let dir = system_tests::fleet::trusted_dir("pam_totp-enrol-memory");
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let secret_file = dir.path().join("ga");
    let png = dir.path().join("qr.png");
    let svg = dir.path().join("qr.svg");
    let core = dir.path().join("core");
    let cases: [(&str, Vec<String>); 3] = [
        (
            "json",
            vec![
                "-t".into(),
                "-d".into(),
                "--json".into(),
                "-Q".into(),
                "UTF8".into(),
            ],
        ),
        (
            "uri and image files",
            vec![
                "-t".into(),
                "-d".into(),
                "--uri".into(),
                "--qr-png".into(),
                png.display().to_string(),
                "--qr-svg".into(),
                svg.display().to_string(),
            ],
        ),
        ("hotp", vec!["-c".into(), "-Q".into(), "NONE".into()]),
    ];
    for (what, args) in cases {
        for f in [&secret_file, &png, &svg, &core] {
            let _ = fs::remove_file(f);
        }
        let label = format!("label{}", hex(&random_bytes(8)));
        let out = Command::new("gdb")
            .args([
                "-q",
                "-batch",
                "-ex",
                "catch syscall exit_group",
                "-ex",
                "run",
                "-ex",
            ])
            .arg(format!("gcore {}", core.display()))
            .arg("--args")
            .arg(&built().enroll)
            .args(["-u", "-w", "3", "-f", "--non-interactive", "--no-confirm"])
            .args(["-l", &label, "-s"])
            .arg(&secret_file)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("gdb");
        let log = String::from_utf8_lossy(&out.stdout);
        assert!(log.contains("status=status@entry=0"), "{what}: {out:?}");
        let text = fs::read_to_string(&secret_file).expect("the new secret file");
        let secret = text.lines().next().expect("secret line").to_owned();
        let mut needles = secret_needles(&secret);
        needles.truncate(2);
        for code in text
            .lines()
            .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        {
            needles.push((format!("scratch code {code}"), code.as_bytes().to_vec(), 8));
        }
        let dump = fs::read(&core).expect("core");
        let found: Vec<&str> = needles
            .iter()
            .filter(|(_, needle, run)| {
                needle
                    .windows(*run)
                    .any(|w| dump.windows(w.len()).any(|h| h == w))
            })
            .map(|(label, _, _)| label.as_str())
            .collect();
        assert!(found.is_empty(), "{what}: left in memory: {found:?}");
        assert!(
            dump.windows(label.len()).any(|h| h == label.as_bytes()),
            "{what}: control: the label is not in the dump"
        );
    }
}

/// `totp-enroll --regenerate-scratch-codes --json` as it exits, dumped as in
/// [`no_copy_of_a_new_secret_survives_an_enrolment`]: neither the new scratch codes
/// (formatted into throw-away strings before the fix), the old ones, the secret's base32
/// text nor the key are left. Control: the secret file's path, with its random
/// directory name (the tool's arguments, never wiped), is found in the same dump.
#[test]
fn no_copy_of_new_scratch_codes_survives_a_regeneration() {
    let t = "no_copy_of_new_scratch_codes_survives_a_regeneration";
    if !require_root(t) || !require_tool(t, "gdb") || !require_tool(t, "gcore") {
        return;
    }
    let dir = system_tests::fleet::trusted_dir("pam_totp-regen-memory");
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let secret_file = dir.path().join("ga");
    let core = dir.path().join("core");
    let enrolled = Command::new(&built().enroll)
        .args(["-t", "-d", "-u", "-w", "3", "-f", "--non-interactive"])
        .args(["--no-confirm", "-q", "-l", "x", "-s"])
        .arg(&secret_file)
        .stdin(Stdio::null())
        .output()
        .expect("totp-enroll");
    assert!(enrolled.status.success(), "{enrolled:?}");
    let scratch = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
            .collect()
    };
    let old = scratch(&fs::read_to_string(&secret_file).expect("file"));
    let out = Command::new("gdb")
        .args([
            "-q",
            "-batch",
            "-ex",
            "catch syscall exit_group",
            "-ex",
            "run",
        ])
        .arg("-ex")
        .arg(format!("gcore {}", core.display()))
        .arg("--args")
        .arg(&built().enroll)
        .args(["--regenerate-scratch-codes", "--json", "-s"])
        .arg(&secret_file)
        .stdin(Stdio::null())
        .output()
        .expect("gdb");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("status=status@entry=0"), "{out:?}");
    let text = fs::read_to_string(&secret_file).expect("file");
    let new = scratch(&text);
    assert_eq!(new.len(), old.len(), "{text}");
    assert!(
        new.iter().all(|c| !old.contains(c)),
        "codes replaced: {text}"
    );
    let mut needles = secret_needles(text.lines().next().expect("secret line"));
    needles.truncate(2);
    for (kind, code) in old
        .iter()
        .map(|c| ("old", c))
        .chain(new.iter().map(|c| ("new", c)))
    {
        needles.push((
            format!("{kind} scratch code {code}"),
            code.as_bytes().to_vec(),
            8,
        ));
    }
    let dump = fs::read(&core).expect("core");
    let found: Vec<&str> = needles
        .iter()
        .filter(|(_, needle, run)| {
            needle
                .windows(*run)
                .any(|w| dump.windows(w.len()).any(|h| h == w))
        })
        .map(|(label, _, _)| label.as_str())
        .collect();
    assert!(found.is_empty(), "left in memory: {found:?}");
    let path = secret_file.display().to_string();
    assert!(
        dump.windows(path.len()).any(|h| h == path.as_bytes()),
        "control: the path is not in the dump"
    );
}
