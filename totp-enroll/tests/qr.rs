//! Every QR output decodes (with zbarimg) to exactly the `--uri` text, and
//! oathtool computes from that URI the same codes the written file gives.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use totp_core::gafile::{GaFile, Mode};
use totp_core::otp;

/// Decodes the QR code in an image file; `None` if zbarimg found none.
fn zbar(image: &Path) -> Option<String> {
    let out = Command::new("zbarimg")
        .args(["-q", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(image)
        .output()
        .expect("zbarimg runs");
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_owned()
    })
}

/// Writes a module matrix as a PNG, `scale` pixels per module, dark = black.
fn matrix_png(rows: &[Vec<bool>], path: &Path) {
    let scale = 6u32;
    let h = rows.len() as u32;
    let w = rows.iter().map(Vec::len).max().expect("rows") as u32;
    // A margin of light modules, in case the text rendering trimmed any.
    let pad = 4u32;
    let img = image::GrayImage::from_fn((w + 2 * pad) * scale, (h + 2 * pad) * scale, |x, y| {
        let (mx, my) = ((x / scale).checked_sub(pad), (y / scale).checked_sub(pad));
        let dark = match (mx, my) {
            (Some(mx), Some(my)) => rows
                .get(my as usize)
                .and_then(|r| r.get(mx as usize))
                .copied()
                .unwrap_or(false),
            _ => false,
        };
        image::Luma([if dark { 0 } else { 255 }])
    });
    img.save(path).expect("save png");
}

/// Splits terminal output into the QR block (everything before the secret line).
fn qr_block(stdout: &str) -> &str {
    let end = stdout
        .find("Your new secret key is:")
        .expect("secret line follows the QR");
    &stdout[..end]
}

fn strip_sgr(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Half-block text back to modules. `drawn_is_dark` says what a glyph means.
fn parse_halves(text: &str, drawn_is_dark: bool) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for line in strip_sgr(text).lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        for c in line.chars() {
            let (t, b) = match c {
                '\u{2588}' => (true, true),
                '\u{2580}' => (true, false),
                '\u{2584}' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?} in UTF-8 QR"),
            };
            top.push(t == drawn_is_dark);
            bottom.push(b == drawn_is_dark);
        }
        rows.push(top);
        rows.push(bottom);
    }
    rows
}

/// ANSI text back to modules: each module is two spaces after a background SGR.
fn parse_ansi(text: &str, dark_sgr: &str) -> Vec<Vec<bool>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut row = Vec::new();
        let mut current = String::new();
        let mut rest = line;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('\x1b') {
                let end = after.find('m').expect("SGR ends in m");
                current = after[..=end].to_owned();
                rest = &after[end + 1..];
            } else if let Some(after) = rest.strip_prefix("  ") {
                row.push(format!("\x1b{current}") == dark_sgr);
                rest = after;
            } else {
                panic!("unexpected text in ANSI QR: {rest:?}");
            }
        }
        rows.push(row);
    }
    rows
}

/// Checks the URI against the file with oathtool: same codes at a few times
/// (TOTP) or counters (HOTP), with the URI's algorithm, digits and period.
fn oathtool_agrees(uri: &str, file: &Path) {
    let params = decode_uri_params(uri);
    let secret = &params["secret"];
    let alg = params.get("algorithm").map_or("SHA1", String::as_str);
    let digits: u32 = params
        .get("digits")
        .map_or(Ok(6), |d| d.parse())
        .expect("digits");
    let ga = GaFile::parse(&std::fs::read(file).expect("read")).expect("parse");
    let cfg = ga.config().expect("config");
    let key = ga.secret().expect("secret");
    assert_eq!(alg, cfg.algorithm.name());
    assert_eq!(digits, u32::from(cfg.digits.get()));
    match cfg.mode {
        Mode::Totp => {
            let period: u64 = params
                .get("period")
                .map_or(Ok(30), |p| p.parse())
                .expect("period");
            assert_eq!(period, cfg.step_secs());
            for time in [59u64, 1_111_111_109, 2_000_000_000] {
                let ours = otp::format_code(
                    otp::totp(&key, time as i64, period, cfg.algorithm, cfg.digits).expect("code"),
                    cfg.digits,
                );
                let theirs = oathtool_code(secret, alg, digits, OathKind::Totp { period, time });
                assert_eq!(*ours, theirs, "TOTP at {time}");
            }
        }
        Mode::Hotp { counter } => {
            let uri_counter: u64 = params["counter"].parse().expect("counter");
            assert_eq!(
                uri_counter, counter,
                "URI counter is the file's next counter"
            );
            for c in [counter, counter + 1, counter + 5] {
                let ours =
                    otp::format_code(otp::hotp(&key, c, cfg.algorithm, cfg.digits), cfg.digits);
                let theirs = oathtool_code(secret, alg, digits, OathKind::Hotp { counter: c });
                assert_eq!(*ours, theirs, "HOTP at {c}");
            }
        }
        Mode::ScratchOnly => panic!("enrollment without a mode"),
    }
}

fn tools() -> bool {
    have_tool("zbarimg") && have_tool("oathtool")
}

#[test]
fn png_and_svg_files_decode_to_the_uri() {
    if !(tools() && have_tool("rsvg-convert")) {
        return;
    }
    for extra in [
        &["-t", "-D"][..],
        &["-c"],
        &[
            "-t",
            "-D",
            "-S",
            "60",
            "--algorithm",
            "SHA256",
            "--digits",
            "8",
        ],
        &["-t", "-D", "-l", "a b@c:d&e/é", "-i", "Ex/Co & Sons"],
    ] {
        let dir = tempdir();
        let mut args = vec![
            "-W", "-u", "-f", "-q", "--uri", "-s", "s", "--qr-png", "q.png", "--qr-svg", "q.svg",
        ];
        args.extend_from_slice(extra);
        let r = run_in(dir.path(), &args, None);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let uri = r.stdout.trim_end();

        assert_eq!(
            zbar(&dir.path().join("q.png")).as_deref(),
            Some(uri),
            "PNG {extra:?}"
        );

        let raster = dir.path().join("svg.png");
        let st = Command::new("rsvg-convert")
            .args(["-b", "white", "-w", "400", "-o"])
            .arg(&raster)
            .arg(dir.path().join("q.svg"))
            .status()
            .expect("rsvg-convert runs");
        assert!(st.success());
        assert_eq!(zbar(&raster).as_deref(), Some(uri), "SVG {extra:?}");

        oathtool_agrees(uri, &dir.path().join("s"));
    }
}

#[test]
fn terminal_qr_codes_decode_to_the_uri_in_every_mode() {
    if !tools() {
        return;
    }
    // (mode, how to read the text back)
    type Reader = fn(&str) -> Vec<Vec<bool>>;
    let modes: [(&str, Reader); 6] = [
        ("UTF8", |t| parse_halves(t, false)),
        ("UTF8_INVERSE", |t| parse_halves(t, true)),
        ("UTF8_GREY", |t| parse_halves(t, false)),
        ("ANSI", |t| parse_ansi(t, "\x1b[40m")),
        ("ANSI_GREY", |t| parse_ansi(t, "\x1b[40m")),
        ("ANSI_INVERSE", |t| parse_ansi(t, "\x1b[107m")),
    ];
    for (mode, parse) in modes {
        for extra in [&["-t", "-D"][..], &["-c"]] {
            let dir = tempdir();
            let mut args = vec!["-W", "-u", "-f", "-C", "--uri", "-s", "s", "-Q", mode];
            args.extend_from_slice(extra);
            let r = run_in(dir.path(), &args, None);
            assert_eq!(r.code, 0, "{}", r.stderr);
            let uri = r
                .stdout
                .lines()
                .find(|l| l.starts_with("otpauth://"))
                .expect("URI printed")
                .to_owned();
            let rows = parse(qr_block(&r.stdout));
            let png = dir.path().join("term.png");
            matrix_png(&rows, &png);
            assert_eq!(
                zbar(&png).as_deref(),
                Some(uri.as_str()),
                "mode {mode} {extra:?}"
            );
            oathtool_agrees(&uri, &dir.path().join("s"));
        }
    }
}

#[test]
fn default_terminal_mode_is_utf8_half_blocks() {
    let dir = tempdir();
    // -Q is needed to show anything on a pipe; UTF8 spelled differently must
    // give the same output as the default would on a terminal.
    let r = run_in(
        dir.path(),
        &["-t", "-D", "-W", "-u", "-f", "-C", "-Q", "utf-8", "-s", "s"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let block = qr_block(&r.stdout);
    assert!(block.contains('\u{2588}') && !block.contains('\x1b'));
    let lines: Vec<&str> = block.lines().collect();
    assert!(lines.len() <= 30, "fits a terminal: {} lines", lines.len());
}

/// One enrollment on a pseudo-terminal `cols` by `rows`, with only the locale and
/// `TERM` variables given: its output as the terminal received it, and the URI it
/// printed. The label is fixed, so the code's size does not depend on the host name.
fn enroll_on_a_terminal(dir: &Path, size: (u16, u16), env: &[(&str, &str)]) -> (Vec<u8>, String) {
    enroll_on_a_terminal_with(dir, size, env, "")
}

/// [`enroll_on_a_terminal`], with `extra` flags (shell words) for totp-enroll.
fn enroll_on_a_terminal_with(
    dir: &Path,
    (cols, rows): (u16, u16),
    env: &[(&str, &str)],
    extra: &str,
) -> (Vec<u8>, String) {
    let path = dir.join("s");
    let cmd = format!(
        "stty cols {cols} rows {rows} && exec {BIN} -t -D -W -u -C -f --uri {extra} \
         -l alice@web01.example.com -i web01.example.com -s {}",
        path.display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null());
    for var in ["LC_ALL", "LC_CTYPE", "LANG", "TERM"] {
        script.env_remove(var);
    }
    let out = script
        .envs(env.iter().copied())
        .output()
        .expect("script runs");
    assert!(out.status.success(), "{env:?} {cols}x{rows}");
    let text = String::from_utf8_lossy(&out.stdout);
    let uri = text
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix("otpauth://"))
        .map(|rest| format!("otpauth://{rest}"))
        .expect("URI printed");
    let file = std::fs::read_to_string(&path).expect("written");
    let secret = file.lines().next().expect("secret line");
    assert!(text.contains(&format!("Your new secret key is: {secret}")));
    (out.stdout, uri)
}

/// A login over ssh with `LANG=C` (or a Latin-1 PuTTY, or tmux without UTF-8) turns
/// half blocks into wrong glyphs, and a narrow window wraps every line: either way
/// the phone scans nothing and the user is not told why. Without `-Q` the code is
/// drawn only in a form that terminal shows intact, or not at all, with the reason;
/// one taller than the window (80x24 and a usual label) comes with a note to enlarge it.
#[test]
fn the_terminal_gets_a_qr_code_it_can_draw_or_the_reason_for_none() {
    if !tools() || !have_tool("script") {
        return;
    }
    let dir = tempdir();
    let ascii = |out: &[u8]| out.iter().all(u8::is_ascii);
    let block = |out: &[u8]| qr_block(&String::from_utf8_lossy(out)).replace('\r', "");
    let decodes = |rows: Vec<Vec<bool>>, uri: &str| {
        let png = dir.path().join("term.png");
        matrix_png(&rows, &png);
        assert_eq!(zbar(&png).as_deref(), Some(uri));
    };
    let c = [("LANG", "C"), ("TERM", "xterm")];

    // Not UTF-8, wide enough: colours, two columns per module, nothing but ASCII.
    let (out, uri) = enroll_on_a_terminal(dir.path(), (200, 80), &c);
    assert!(ascii(&out), "a non-UTF-8 terminal got UTF-8");
    decodes(parse_ansi(&block(&out), "\x1b[40m"), &uri);

    // Not UTF-8, 80 columns: no code that would wrap, and why.
    let (out, _) = enroll_on_a_terminal(dir.path(), (80, 24), &c);
    assert!(ascii(&out), "a non-UTF-8 terminal got UTF-8");
    let text = block(&out);
    assert!(
        text.starts_with("No QR code:") && text.contains("this window has 80"),
        "{text}"
    );

    // No colours either: the reason names TERM=dumb.
    let (out, _) = enroll_on_a_terminal(dir.path(), (200, 80), &[("LANG", "C"), ("TERM", "dumb")]);
    assert!(
        ascii(&out) && !out.contains(&0x1b),
        "escape or UTF-8 on a dumb terminal"
    );
    assert!(block(&out).contains("TERM (dumb"), "{}", block(&out));
    // Nor a serial console's vt terminal, which shows background colours as blanks.
    let (out, _) = enroll_on_a_terminal(dir.path(), (200, 80), &[("LANG", "C"), ("TERM", "vt220")]);
    assert!(
        ascii(&out) && !out.contains(&0x1b),
        "escape or UTF-8 on a vt220"
    );
    assert!(block(&out).contains("a vt terminal"), "{}", block(&out));

    // LC_ALL decides over LANG: UTF-8 half blocks, which fit 80 columns.
    let utf8 = [("LANG", "C"), ("LC_ALL", "C.UTF-8"), ("TERM", "xterm")];
    let (out, uri) = enroll_on_a_terminal(dir.path(), (80, 60), &utf8);
    decodes(parse_halves(&block(&out), false), &uri);

    // 24 rows are fewer than the code and the lines up to the prompt: drawn, and said.
    let (out, _) = enroll_on_a_terminal(dir.path(), (80, 24), &utf8);
    let text = block(&out);
    assert!(text.contains('\u{2588}'), "{text}");
    assert!(text.contains("rows tall; this one has 24."), "{text}");

    // A window narrower than the code: none, and the width it needs.
    let (out, _) = enroll_on_a_terminal(dir.path(), (40, 24), &utf8);
    let text = block(&out);
    assert!(
        text.starts_with("No QR code:") && text.contains("this window has 40"),
        "{text}"
    );
}

/// What a terminal with a light-on-dark (`light_theme` false) or dark-on-light theme
/// shows for `text`, as rows of pixels (`true` = dark), `margin` pixels of the
/// theme's background around it. A glyph's half takes the foreground colour, the rest
/// of the cell the background; an SGR colour overrides the theme's. A cell is one
/// pixel wide and each half one pixel tall, so half blocks and two-space ANSI
/// modules both come out square.
fn as_shown(text: &str, light_theme: bool, margin: usize) -> Vec<Vec<bool>> {
    let (theme_fg, theme_bg) = (light_theme, !light_theme);
    let mut screen: Vec<Vec<bool>> = Vec::new();
    let (mut fg, mut bg): (Option<bool>, Option<bool>) = (None, None);
    for line in text.lines() {
        let (mut top, mut bottom) = (Vec::new(), Vec::new());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                let sgr: String = chars.by_ref().take_while(|&c| c != 'm').collect();
                for p in sgr.trim_start_matches('[').split(';') {
                    match p {
                        "" | "0" => (fg, bg) = (None, None),
                        "39" => fg = None,
                        "49" => bg = None,
                        "30" | "90" => fg = Some(true),
                        "37" | "97" => fg = Some(false),
                        "40" | "100" => bg = Some(true),
                        "47" | "107" => bg = Some(false),
                        other => panic!("SGR {other} not emulated"),
                    }
                }
                continue;
            }
            let (f, b) = (fg.unwrap_or(theme_fg), bg.unwrap_or(theme_bg));
            let (t, u) = match c {
                '\u{2588}' => (f, f),
                '\u{2580}' => (f, b),
                '\u{2584}' => (b, f),
                ' ' => (b, b),
                '\r' => continue,
                other => panic!("unexpected {other:?} in a terminal QR code"),
            };
            top.push(t);
            bottom.push(u);
        }
        screen.push(top);
        screen.push(bottom);
    }
    let width = screen.iter().map(Vec::len).max().unwrap_or(0) + 2 * margin;
    let blank = vec![theme_bg; width];
    let mut out = vec![blank.clone(); margin];
    for row in screen {
        let mut r = vec![theme_bg; margin];
        r.extend(&row);
        r.resize(width, theme_bg);
        out.push(r);
    }
    out.extend(std::iter::repeat_n(blank, margin));
    out
}

/// The decoded text of what the terminal shows, `None` if zbarimg reads no code.
fn scan_as_shown(dir: &Path, text: &str, light_theme: bool) -> Option<String> {
    let png = dir.join("screen.png");
    let pixels = as_shown(text, light_theme, 8);
    let img = image::GrayImage::from_fn(
        pixels[0].len() as u32 * 4,
        pixels.len() as u32 * 4,
        |x, y| {
            image::Luma([if pixels[y as usize / 4][x as usize / 4] {
                0
            } else {
                255
            }])
        },
    );
    img.save(&png).expect("save png");
    zbar(&png)
}

/// The code drawn without -Q scans whatever the terminal's theme: macOS Terminal and
/// many Linux themes are dark-on-light, where glyphs in the theme's colours make a
/// negative code. Control: -Q UTF8 (uncoloured half blocks) scans on a dark theme
/// only, so the emulation does tell the two apart.
#[test]
fn the_default_code_scans_on_light_and_dark_terminals() {
    if !tools() || !have_tool("script") {
        return;
    }
    let dir = tempdir();
    let block = |out: &[u8]| qr_block(&String::from_utf8_lossy(out)).to_owned();
    let utf8 = [("LANG", "C.UTF-8"), ("TERM", "xterm")];
    let ansi = [("LANG", "C"), ("TERM", "xterm")];
    for (env, what) in [(&utf8, "UTF-8"), (&ansi, "not UTF-8")] {
        let (out, uri) = enroll_on_a_terminal(dir.path(), (200, 80), env);
        let text = block(&out);
        for light in [false, true] {
            assert_eq!(
                scan_as_shown(dir.path(), &text, light).as_deref(),
                Some(uri.as_str()),
                "{what}, light theme: {light}"
            );
        }
    }

    let (out, uri) = enroll_on_a_terminal_with(dir.path(), (200, 80), &utf8, "-Q UTF8");
    let text = block(&out);
    assert_eq!(
        scan_as_shown(dir.path(), &text, false).as_deref(),
        Some(uri.as_str())
    );
    assert_eq!(scan_as_shown(dir.path(), &text, true), None);
}

/// Everything printed below the code before the screen comes to rest pushes its top
/// out of the window: with -C the verification and scratch codes, and in a run whose
/// questions flags answered, the URI, the "Wrote" line and the shell's prompt. The note
/// about the window's height counts them all, not only the secret's line and a prompt.
#[test]
fn the_height_note_counts_every_line_printed_below_the_code() {
    if !have_tool("script") {
        return;
    }
    let dir = tempdir();
    let utf8 = [("LANG", "C.UTF-8"), ("TERM", "xterm")];
    let text = |out: &[u8]| String::from_utf8_lossy(out).replace('\r', "");
    let (out, _) = enroll_on_a_terminal(dir.path(), (80, 200), &utf8);
    let all = text(&out);
    assert!(!all.contains("rows tall"), "{all}");
    let code = qr_block(&all)
        .lines()
        .filter(|l| l.contains(['█', '▀', '▄']))
        .count();
    assert!(code > 20, "{all}");
    // Rows of an 80-column window, long lines wrapped; the shell's prompt takes the
    // row after the last one printed.
    let rows = strip_sgr(&all)
        .lines()
        .map(|l| l.chars().count().div_ceil(80).max(1))
        .sum::<usize>()
        + 1;
    assert!(
        rows >= code + 9,
        "scratch codes, URI and more below the code: {all}"
    );
    // The code's size follows the random secret (its base32 runs decide how compactly
    // the URI encodes), so a later run is taken only when its code is as tall as the
    // first one's, which every row count below is computed from.
    // `dir` None: each attempt in a fresh directory (an attempt in the same one would
    // replace the previous attempt's file, which adds a line).
    let sized = |dir: Option<&Path>, size: (u16, u16)| {
        for _ in 0..150 {
            let fresh = tempdir();
            let (out, _) = enroll_on_a_terminal(dir.unwrap_or(fresh.path()), size, &utf8);
            let height = qr_block(&text(&out))
                .lines()
                .filter(|l| l.contains(['█', '▀', '▄']))
                .count();
            if height == code {
                return out;
            }
        }
        panic!("no code {code} rows tall in 150 enrolments");
    };

    // Fresh directories: replacing a file adds a line of its own.
    let out = sized(None, (80, rows as u16));
    assert!(!text(&out).contains("rows tall"), "{}", text(&out));
    let out = sized(None, (80, rows as u16 - 1));
    let short = text(&out);
    let want = format!(
        "needs a window {} rows tall; this one has {}.",
        rows + 2,
        rows - 1
    );
    assert!(short.contains(&want), "{want}\n{short}");

    // Replacing a file adds the line about the earlier secret: counted too.
    let screen_rows = |out: &[u8]| {
        strip_sgr(&text(out))
            .lines()
            .map(|l| l.chars().count().div_ceil(80).max(1))
            .sum::<usize>()
            + 1
    };
    let dir = tempdir();
    enroll_on_a_terminal(dir.path(), (80, 200), &utf8);
    let out = sized(Some(dir.path()), (80, 200));
    let replacing = screen_rows(&out);
    assert!(replacing > rows, "{}", text(&out));
    let out = sized(Some(dir.path()), (80, replacing as u16));
    assert!(!text(&out).contains("rows tall"), "{}", text(&out));
    let out = sized(Some(dir.path()), (80, replacing as u16 - 1));
    assert!(text(&out).contains("rows tall"), "{}", text(&out));
}
