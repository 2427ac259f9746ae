//! QR codes for the otpauth URI: terminal text, PNG and SVG.
//!
//! The terminal renderers work from the module matrix directly instead of the
//! `qrcode` crate's text renderers, so every mode draws the same 4-module quiet
//! zone and the tests can turn the text back into a matrix and decode it.

use std::io::Cursor;
use std::str::FromStr;

use qrcode::{Color, EcLevel, QrCode};
use zeroize::{Zeroize, Zeroizing};

/// The quiet zone the QR specification asks for; scanners often fail without it.
pub const QUIET_ZONE: usize = 4;

/// Pixels per module in the PNG file: large enough for a phone camera on a
/// printed page, small enough to stay well under 100 KiB.
const PNG_MODULE_PX: u32 = 8;

/// How the terminal QR code is drawn (`-Q/--qr-mode`).
///
/// "Light" and "dark" below refer to what the scanner must see. Terminals draw
/// glyphs in the foreground colour, so which modules get a glyph depends on
/// whether the terminal is light-on-dark or dark-on-light.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrMode {
    /// No terminal QR code.
    None,
    /// Two spaces per module with explicit black and bright-white backgrounds.
    Ansi,
    /// As `Ansi`, colours swapped (a negative code, for scanners that prefer it).
    AnsiInverse,
    /// As `Ansi`, with grey instead of bright white for the light modules.
    AnsiGrey,
    /// Half blocks, light modules drawn: right for light-on-dark terminals.
    Utf8,
    /// Half blocks, dark modules drawn: right for dark-on-light terminals.
    Utf8Inverse,
    /// Half blocks with explicit grey-on-black colours, whatever the theme.
    Utf8Grey,
}

#[cfg(test)]
impl QrMode {
    pub const NAMES: [&'static str; 7] = [
        "NONE",
        "ANSI",
        "ANSI_INVERSE",
        "ANSI_GREY",
        "UTF8",
        "UTF8_INVERSE",
        "UTF8_GREY",
    ];

    pub fn name(self) -> &'static str {
        match self {
            QrMode::None => "NONE",
            QrMode::Ansi => "ANSI",
            QrMode::AnsiInverse => "ANSI_INVERSE",
            QrMode::AnsiGrey => "ANSI_GREY",
            QrMode::Utf8 => "UTF8",
            QrMode::Utf8Inverse => "UTF8_INVERSE",
            QrMode::Utf8Grey => "UTF8_GREY",
        }
    }
}

impl FromStr for QrMode {
    type Err = String;

    /// Case-insensitive, `-` accepted for `_`, as google-authenticator does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.to_ascii_uppercase().replace('-', "_");
        Ok(match norm.as_str() {
            "NONE" => QrMode::None,
            "ANSI" => QrMode::Ansi,
            "ANSI_INVERSE" => QrMode::AnsiInverse,
            "ANSI_GREY" | "ANSI_GRAY" => QrMode::AnsiGrey,
            "UTF8" | "UTF_8" => QrMode::Utf8,
            "UTF8_INVERSE" => QrMode::Utf8Inverse,
            "UTF8_GREY" | "UTF8_GRAY" => QrMode::Utf8Grey,
            _ => return Err(format!("Invalid qr-mode \"{s}\"")),
        })
    }
}

/// What the terminal showing the QR code can draw.
#[derive(Clone, Copy, Debug)]
pub struct Terminal {
    /// Its character set is UTF-8 (else half blocks turn into several wrong glyphs,
    /// or into `_` under tmux and screen).
    pub utf8: bool,
    /// It has background colours (not `TERM=dumb` nor a `vt` terminal).
    pub colours: bool,
    /// Its width in columns, when known.
    pub columns: Option<u16>,
    /// Its height in rows, when known.
    pub rows: Option<u16>,
}

/// Draw the QR code in this mode, or draw none and say why.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    Draw(QrMode),
    Skip(String),
}

/// The mode for a code of `modules` modules (quiet zone included). An explicit `-Q`
/// is drawn as asked; otherwise only what will scan: half blocks on a UTF-8 terminal,
/// colours two columns per module elsewhere, and nothing where the lines would wrap.
///
/// Half blocks get their own colours where the terminal has colours: glyphs take the
/// theme's foreground, so plain `Utf8` is a negative code on a dark-on-light terminal,
/// which many phone scanners do not read, and nothing tells the user why.
pub fn choose(explicit: Option<QrMode>, term: Terminal, modules: usize) -> Choice {
    if let Some(mode) = explicit {
        return Choice::Draw(mode);
    }
    let narrower = |need: usize| term.columns.filter(|&w| usize::from(w) < need);
    if term.utf8 {
        return match narrower(modules) {
            Some(w) => Choice::Skip(format!(
                "it needs {modules} columns and this window has {w}"
            )),
            None if term.colours => Choice::Draw(QrMode::Utf8Grey),
            None => Choice::Draw(QrMode::Utf8),
        };
    }
    if !term.colours {
        return Choice::Skip(
            "the terminal's character set is not UTF-8 (LC_ALL, LC_CTYPE or LANG) and \
             its TERM (dumb, or a vt terminal) has no colours, so it cannot be drawn here"
                .to_owned(),
        );
    }
    let need = 2 * modules;
    match narrower(need) {
        Some(w) => Choice::Skip(format!(
            "the terminal's character set is not UTF-8 (LC_ALL, LC_CTYPE or LANG), so it \
             would be drawn in colour, two columns per module: {need} columns, and this \
             window has {w}"
        )),
        None => Choice::Draw(QrMode::Ansi),
    }
}

/// Rows `text` takes in a window `columns` wide: a line longer than the window wraps
/// onto more rows. Unknown width: one row per line.
pub fn screen_rows(text: &str, columns: Option<u16>) -> usize {
    text.lines()
        .map(|l| match columns {
            Some(c) if c > 0 => l.chars().count().div_ceil(usize::from(c)).max(1),
            _ => 1,
        })
        .sum()
}

/// The note below, each of its lines short enough for any window the code fits.
const NOTE_LINES: usize = 2;

/// A note for a drawn code taller than the window once `lines_after` lines (up to and
/// including the first prompt) are printed below it: unlike a wrapped line, a
/// scrolled one comes back when the window grows, but a code cut off at the top
/// does not scan (the missing quiet zone merges with the background).
pub fn height_note(term: Terminal, text: &str, lines_after: usize) -> Option<String> {
    let need = text.lines().count() + lines_after;
    let rows = usize::from(term.rows?);
    (rows < need).then(|| {
        format!(
            "The QR code needs a window {} rows tall; this one has {rows}.\n\
             Make it taller (or the font smaller) to see it whole before scanning.\n",
            need + NOTE_LINES
        )
    })
}

/// Ends every terminal line: colours reset, then the newline.
const RESET_LINE: &str = "\x1b[0m\n";
/// Room for the PNG of a `width` x `height` greyscale image, whatever the encoder's
/// compression: every pixel stored (a filter byte a row, deflate's stored blocks of at
/// most 65535 bytes with 5 bytes each, the zlib and chunk framing) fits twice over.
fn png_capacity(width: u32, height: u32) -> usize {
    let raw = (width as usize + 1) * height as usize;
    2 * raw + 4096
}

/// The colours of `QrMode::Utf8Grey`.
const GREY: &str = "\x1b[37;40m";
/// The longest background escape `QrMode::Ansi*` writes.
const LONGEST_COLOUR: usize = "\x1b[107m".len();

/// The QR module matrix of one URI, quiet zone included.
pub struct Matrix {
    /// The `qrcode` crate's own module list, taken out of its `QrCode` so that it is
    /// ours to wipe; the PNG and SVG renderers draw from it.
    colors: Vec<Color>,
    /// Side length without the quiet zone.
    inner: usize,
    size: usize,
    dark: Vec<bool>,
}

#[derive(Debug)]
pub struct QrError(String);

impl std::fmt::Display for QrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The modules encode the URI, secret included. `Color` has no `Zeroize`: every entry
/// is overwritten with the light colour, and `black_box` keeps that store from being
/// dropped as a write nobody reads (the encoder's bit stream, freed inside the crate,
/// is not ours: SECURITY.md, K4).
impl Drop for Matrix {
    fn drop(&mut self) {
        self.dark.zeroize();
        self.colors.fill(Color::Light);
        std::hint::black_box(&mut self.colors);
    }
}

impl Matrix {
    /// Level M is what authenticator apps and google-authenticator use: it
    /// survives a smudged screen and keeps a 20-byte-secret URI at version 6-8.
    pub fn new(uri: &str) -> Result<Matrix, QrError> {
        let code = QrCode::with_error_correction_level(uri.as_bytes(), EcLevel::M)
            .map_err(|e| QrError(format!("cannot encode the URI as a QR code: {e}")))?;
        let inner = code.width();
        // Its own list, moved out (`to_colors` would copy it, and the `QrCode` would
        // keep the original unwiped).
        let colors = code.into_colors();
        let size = inner + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        for (i, color) in colors.iter().enumerate() {
            let (x, y) = (i % inner, i / inner);
            dark[(y + QUIET_ZONE) * size + x + QUIET_ZONE] = *color == Color::Dark;
        }
        Ok(Matrix {
            colors,
            inner,
            size,
            dark,
        })
    }

    /// What `QrCode::render` gives, from our list: a QR code (never a micro one) has a
    /// quiet zone of 4 modules.
    fn renderer<P: qrcode::render::Pixel>(&self) -> qrcode::render::Renderer<'_, P> {
        qrcode::render::Renderer::new(&self.colors, self.inner, QUIET_ZONE as u32)
    }

    /// Side length in modules, quiet zone included.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }

    /// Terminal text for `mode`; empty for `QrMode::None`. Every line ends in
    /// `\n` and every escape sequence is reset before the line ends, so a
    /// cancelled output never leaves the terminal recoloured. The text encodes the
    /// secret as the code does: it is written into a wiped buffer reserved up front
    /// ([`Matrix::text_capacity`]), so no outgrown copy is left behind.
    pub fn render_text(&self, mode: QrMode) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(self.text_capacity(mode)));
        match mode {
            QrMode::None => {}
            QrMode::Ansi => self.render_ansi(&mut out, "\x1b[40m", "\x1b[107m"),
            QrMode::AnsiInverse => self.render_ansi(&mut out, "\x1b[107m", "\x1b[40m"),
            QrMode::AnsiGrey => self.render_ansi(&mut out, "\x1b[40m", "\x1b[47m"),
            QrMode::Utf8 => self.render_halves(&mut out, false, None),
            QrMode::Utf8Inverse => self.render_halves(&mut out, true, None),
            QrMode::Utf8Grey => self.render_halves(&mut out, false, Some(GREY)),
        }
        out
    }

    /// The most bytes [`Matrix::render_text`] writes for `mode`: a colour change before
    /// every module of an ANSI row (each no longer than [`LONGEST_COLOUR`]), a 3-byte
    /// block character for every module of a UTF-8 row.
    pub fn text_capacity(&self, mode: QrMode) -> usize {
        let n = self.size;
        match mode {
            QrMode::None => 0,
            QrMode::Ansi | QrMode::AnsiInverse | QrMode::AnsiGrey => {
                n * (n * (LONGEST_COLOUR + 2) + RESET_LINE.len())
            }
            QrMode::Utf8 | QrMode::Utf8Inverse | QrMode::Utf8Grey => {
                n.div_ceil(2) * (GREY.len() + 3 * n + RESET_LINE.len())
            }
        }
    }

    fn render_ansi(&self, out: &mut String, dark_bg: &str, light_bg: &str) {
        for y in 0..self.size {
            let mut current: Option<bool> = None;
            for x in 0..self.size {
                let d = self.is_dark(x, y);
                // Only emit a colour change when the colour changes: keeps the
                // output small for terminals that redraw slowly (serial consoles).
                if current != Some(d) {
                    out.push_str(if d { dark_bg } else { light_bg });
                    current = Some(d);
                }
                out.push_str("  ");
            }
            out.push_str(RESET_LINE);
        }
    }

    fn render_halves(&self, out: &mut String, draw_dark: bool, colours: Option<&str>) {
        for pair in 0..self.size.div_ceil(2) {
            let (top_y, bottom_y) = (2 * pair, 2 * pair + 1);
            if let Some(c) = colours {
                out.push_str(c);
            }
            for x in 0..self.size {
                let top = self.is_dark(x, top_y) == draw_dark;
                // Past the last row there is no module: draw it as the
                // background, i.e. whatever "not drawn" means in this mode.
                let bottom = bottom_y < self.size && self.is_dark(x, bottom_y) == draw_dark;
                out.push(match (top, bottom) {
                    (true, true) => '\u{2588}',
                    (true, false) => '\u{2580}',
                    (false, true) => '\u{2584}',
                    (false, false) => ' ',
                });
            }
            if colours.is_some() {
                out.push_str(RESET_LINE);
            } else {
                out.push('\n');
            }
        }
    }

    /// A greyscale PNG, black modules on white. The image draws the URI, secret
    /// included: its pixels are wiped once encoded, and the PNG is written into a
    /// wiped buffer reserved up front ([`png_capacity`]), so no outgrown copy is left
    /// behind. (The encoder's own working buffers are the `image` crate's: SECURITY.md,
    /// K4.)
    pub fn png(&self) -> Result<Zeroizing<Vec<u8>>, QrError> {
        let img = self
            .renderer::<image::Luma<u8>>()
            .quiet_zone(true)
            .module_dimensions(PNG_MODULE_PX, PNG_MODULE_PX)
            .build();
        let (width, height) = img.dimensions();
        let mut out = Zeroizing::new(Vec::with_capacity(png_capacity(width, height)));
        let written = img.write_to(&mut Cursor::new(&mut *out), image::ImageFormat::Png);
        let mut pixels = img.into_raw();
        pixels.zeroize();
        written.map_err(|e| QrError(format!("cannot encode the PNG: {e}")))?;
        Ok(out)
    }

    /// A standalone SVG document, black modules on white, ending in a newline. The
    /// `qrcode` crate's text is copied into a wiped buffer of its final size and wiped
    /// itself; the copies its renderer left while the text grew are the crate's
    /// (SECURITY.md, K4).
    pub fn svg(&self) -> Zeroizing<String> {
        let rendered = Zeroizing::new(
            self.renderer::<qrcode::render::svg::Color<'_>>()
                .quiet_zone(true)
                .min_dimensions(200, 200)
                .build(),
        );
        let mut svg = Zeroizing::new(String::with_capacity(rendered.len() + 1));
        svg.push_str(&rendered);
        if !svg.ends_with('\n') {
            svg.push('\n');
        }
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/Example:alice%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Example";

    #[test]
    fn qr_mode_names_parse_case_insensitively_with_dashes() {
        assert_eq!("utf8-inverse".parse::<QrMode>(), Ok(QrMode::Utf8Inverse));
        assert_eq!("Ansi_Grey".parse::<QrMode>(), Ok(QrMode::AnsiGrey));
        assert_eq!("none".parse::<QrMode>(), Ok(QrMode::None));
        for name in QrMode::NAMES {
            assert_eq!(name.parse::<QrMode>().map(QrMode::name), Ok(name));
        }
        assert_eq!(
            "BLINK".parse::<QrMode>(),
            Err("Invalid qr-mode \"BLINK\"".to_owned())
        );
    }

    /// The terminal text encodes the secret: it is written into the buffer reserved up
    /// front and never outgrows it (a reallocation would leave an unwiped copy). The
    /// reservation is a bound, not a guess: the densest ANSI pattern (a colour change at
    /// every module) and a long URI's matrix stay within it.
    #[test]
    fn terminal_text_never_outgrows_its_wiped_buffer() {
        let long = format!("{URI}&label={}", "x".repeat(400));
        for uri in [URI, long.as_str()] {
            let m = Matrix::new(uri).expect("encodes");
            for mode in [
                QrMode::None,
                QrMode::Ansi,
                QrMode::AnsiInverse,
                QrMode::AnsiGrey,
                QrMode::Utf8,
                QrMode::Utf8Inverse,
                QrMode::Utf8Grey,
            ] {
                let text = m.render_text(mode);
                assert_eq!(text.capacity(), m.text_capacity(mode), "{mode:?}");
                assert!(text.len() <= text.capacity(), "{mode:?}");
            }
        }
        // The bound holds for a matrix that changes colour at every module.
        let mut m = Matrix::new(URI).expect("encodes");
        for (i, d) in m.dark.iter_mut().enumerate() {
            *d = (i + i / m.size).is_multiple_of(2);
        }
        let text = m.render_text(QrMode::AnsiInverse);
        assert_eq!(text.capacity(), m.text_capacity(QrMode::AnsiInverse));
    }

    #[test]
    fn matrix_has_quiet_zone_on_every_side() {
        let m = Matrix::new(URI).expect("encodes");
        let n = m.size();
        for i in 0..n {
            for q in 0..QUIET_ZONE {
                assert!(!m.is_dark(i, q) && !m.is_dark(q, i));
                assert!(!m.is_dark(i, n - 1 - q) && !m.is_dark(n - 1 - q, i));
            }
        }
        // Finder pattern corner just inside the quiet zone.
        assert!(m.is_dark(QUIET_ZONE, QUIET_ZONE));
    }

    #[test]
    fn utf8_rendering_fits_an_80_by_25_terminal() {
        let m = Matrix::new(URI).expect("encodes");
        let text = m.render_text(QrMode::Utf8);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= 25, "{} lines", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 80));
    }

    #[test]
    fn only_a_code_that_fits_and_uses_glyphs_the_terminal_has_is_drawn() {
        let term = |utf8, colours, columns| Terminal {
            utf8,
            colours,
            columns,
            rows: None,
        };
        let draw = |m| Choice::Draw(m);
        assert_eq!(
            choose(None, term(true, true, Some(45)), 45),
            draw(QrMode::Utf8Grey)
        );
        assert_eq!(
            choose(None, term(true, false, None), 45),
            draw(QrMode::Utf8)
        );
        assert!(matches!(
            choose(None, term(true, true, Some(44)), 45),
            Choice::Skip(_)
        ));
        assert_eq!(
            choose(None, term(false, true, Some(90)), 45),
            draw(QrMode::Ansi)
        );
        assert!(matches!(
            choose(None, term(false, true, Some(89)), 45),
            Choice::Skip(_)
        ));
        assert!(matches!(
            choose(None, term(false, false, None), 45),
            Choice::Skip(_)
        ));
        // An explicit mode is the user's call, whatever the terminal.
        let asked = Some(QrMode::Utf8Inverse);
        assert_eq!(
            choose(asked, term(false, false, Some(10)), 45),
            draw(QrMode::Utf8Inverse)
        );
    }

    #[test]
    fn a_code_taller_than_the_window_gets_a_note_naming_the_rows_it_needs() {
        let term = |rows| Terminal {
            utf8: true,
            colours: true,
            columns: None,
            rows,
        };
        let code = "x\n".repeat(25);
        assert_eq!(height_note(term(Some(27)), &code, 2), None);
        assert_eq!(height_note(term(None), &code, 2), None);
        let note = height_note(term(Some(26)), &code, 2).expect("note");
        assert!(note.contains("29 rows tall; this one has 26."), "{note}");
        // The lines printed below the code count: scratch codes push it up too.
        let note = height_note(term(Some(27)), &code, 9).expect("note");
        assert!(note.contains("36 rows tall; this one has 27."), "{note}");
        assert!(note.lines().count() == NOTE_LINES && note.lines().all(|l| l.len() < 80));
    }

    #[test]
    fn long_lines_wrap_onto_more_rows() {
        let text = format!("{}\n\nshort\n", "x".repeat(81));
        assert_eq!(screen_rows(&text, Some(80)), 4);
        assert_eq!(screen_rows(&text, Some(81)), 3);
        assert_eq!(screen_rows(&text, None), 3);
    }

    #[test]
    fn none_mode_renders_nothing() {
        let m = Matrix::new(URI).expect("encodes");
        assert_eq!(*m.render_text(QrMode::None), "");
    }

    #[test]
    fn coloured_modes_reset_the_terminal_on_every_line() {
        let m = Matrix::new(URI).expect("encodes");
        for mode in [
            QrMode::Ansi,
            QrMode::AnsiGrey,
            QrMode::AnsiInverse,
            QrMode::Utf8Grey,
        ] {
            for line in m.render_text(mode).lines() {
                assert!(line.ends_with("\x1b[0m"), "{mode:?}");
            }
        }
    }

    /// The PNG and SVG files draw the secret too: each is written into a wiped buffer
    /// reserved once (a reallocation while the encoder wrote would leave an unwiped
    /// copy). The reservation holds for a short URI and a long one's large matrix.
    #[test]
    fn png_and_svg_never_outgrow_their_wiped_buffers() {
        let long = format!("{URI}&label={}", "x".repeat(400));
        for uri in [URI, long.as_str()] {
            let m = Matrix::new(uri).expect("encodes");
            let side = u32::try_from(m.size()).expect("side") * PNG_MODULE_PX;
            let png = m.png().expect("png");
            assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
            assert_eq!(png.capacity(), png_capacity(side, side), "{uri}");
            let svg = m.svg();
            assert!(svg.ends_with('\n'), "{uri}");
            assert!(svg.capacity() - svg.len() <= 1, "{uri}: outgrown");
        }
    }

    #[test]
    fn png_and_svg_have_their_signatures() {
        let m = Matrix::new(URI).expect("encodes");
        assert!(m.png().expect("png").starts_with(b"\x89PNG\r\n\x1a\n"));
        let svg = m.svg();
        assert!(svg.contains("<svg"), "{}", *svg);
    }
}
