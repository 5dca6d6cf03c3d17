//! Exporters of predicted segments to editor, player and web formats.
//!
//! Time is kept as integer frame numbers plus a rational frame rate
//! (`num/den`, e.g. 30000/1001) and converted only when a format is written,
//! with exact integer arithmetic: a float rate such as 29.97 drifts by a frame
//! every ~33 s, which is the most common cause of misplaced markers.

mod csv;
mod edl;
mod fcpxml;
mod ffmetadata;
mod json;
mod otio;
pub mod segments_file;
mod srt;
pub mod timecode;
mod vtt;
mod youtube;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::predict::PredictedSegment;

/// A frame rate as an exact fraction `num/den` frames per second, reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl FrameRate {
    /// NTSC 29.97 (30000/1001).
    pub const NTSC_30: FrameRate = FrameRate {
        num: 30000,
        den: 1001,
    };
    /// NTSC 59.94 (60000/1001).
    pub const NTSC_60: FrameRate = FrameRate {
        num: 60000,
        den: 1001,
    };

    /// `num/den` frames per second, reduced; both must be positive.
    pub fn new(num: u32, den: u32) -> Result<Self> {
        if num == 0 || den == 0 {
            return Err(Error::invalid(format!(
                "invalid frame rate '{num}/{den}': numerator and denominator must be positive"
            )));
        }
        let g = gcd(num.into(), den.into()) as u32;
        Ok(FrameRate {
            num: num / g,
            den: den / g,
        })
    }

    /// Numerator (frames).
    pub fn num(&self) -> u32 {
        self.num
    }

    /// Denominator (seconds).
    pub fn den(&self) -> u32 {
        self.den
    }

    /// The rate as a float, for formats that store a double (OTIO).
    pub fn as_f64(&self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Whether SMPTE drop-frame timecode exists at this rate (29.97, 59.94).
    pub fn supports_drop_frame(&self) -> bool {
        *self == Self::NTSC_30 || *self == Self::NTSC_60
    }

    /// Frames per second of timecode labels: the rate rounded (30 at 29.97).
    pub fn nominal_fps(&self) -> u64 {
        ((2 * u64::from(self.num) + u64::from(self.den)) / (2 * u64::from(self.den))).max(1)
    }

    /// Time of `frames` as a reduced fraction of seconds `(n, d)`.
    pub fn seconds_ratio(&self, frames: u64) -> (u128, u128) {
        let n = u128::from(frames) * u128::from(self.den);
        let d = u128::from(self.num);
        let g = gcd(n, d).max(1);
        (n / g, d / g)
    }

    /// Time of `frames` in milliseconds, rounded half up. `u128`, because
    /// `u64::MAX` frames at 1/`u32::MAX` fps is far more than `u64::MAX` ms
    /// (the product is below 2^128 for every input).
    pub fn millis(&self, frames: u64) -> u128 {
        let n = u128::from(frames) * u128::from(self.den) * 2000 + u128::from(self.num);
        n / (2 * u128::from(self.num))
    }

    /// Whole seconds of `frames`, rounded down (`u128`, as [`Self::millis`]).
    pub fn whole_seconds(&self, frames: u64) -> u128 {
        u128::from(frames) * u128::from(self.den) / u128::from(self.num)
    }

    /// Whether `frames` last at least `secs` seconds, exactly.
    pub fn at_least_seconds(&self, frames: u64, secs: u64) -> bool {
        u128::from(frames) * u128::from(self.den) >= u128::from(secs) * u128::from(self.num)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

fn bad_rate(s: &str, why: &str) -> Error {
    Error::invalid(format!(
        "invalid frame rate '{s}': {why} (expected e.g. 30000/1001, 29.97 or 25)"
    ))
}

/// Parses an unsigned decimal `int[.frac]` into `(mantissa, decimals)`.
fn parse_decimal(s: &str) -> Option<(u128, u32)> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let digits = format!("{int}{frac}");
    let m = digits.trim_start_matches('0');
    if m.len() > 30 {
        return None;
    }
    Some((m.parse().unwrap_or(0), frac.len() as u32))
}

impl FromStr for FrameRate {
    type Err = Error;

    /// Accepts `num/den` ("30000/1001"), an integer ("25"), or a decimal. A
    /// decimal that is an NTSC rate `N·1000/1001` to the digits given
    /// ("29.97", "23.976", "59.94") means that exact rate, because that is
    /// what cameras record; other decimals are taken exactly ("12.5" = 25/2).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if t.is_empty() {
            return Err(bad_rate(s, "empty"));
        }
        if let Some((n, d)) = t.split_once('/') {
            let parse = |x: &str| -> Result<u32> {
                let x = x.trim();
                if x.starts_with('-') {
                    return Err(bad_rate(s, "must be positive"));
                }
                x.parse::<u32>()
                    .map_err(|_| bad_rate(s, "numerator and denominator must be integers"))
            };
            let (n, d) = (parse(n)?, parse(d)?);
            if n == 0 || d == 0 {
                return Err(bad_rate(s, "must be positive"));
            }
            return FrameRate::new(n, d);
        }
        if t.starts_with('-') {
            return Err(bad_rate(s, "must be positive"));
        }
        let (m, k) = parse_decimal(t).ok_or_else(|| bad_rate(s, "not a number"))?;
        if m == 0 {
            return Err(bad_rate(s, "must be positive"));
        }
        let scale = 10u128.pow(k);
        // A whole number ("30.0") is exact; otherwise NTSC to the digits given.
        if k > 0 && m % scale != 0 {
            // NTSC: |m/scale − N·1000/1001| < ½·10^-k, in integers.
            let n = (m + scale / 2) / scale + 1;
            for cand in [n.saturating_sub(1), n] {
                let exact = cand * 1000 * scale;
                let given = m * 1001;
                if cand > 0 && 2 * exact.abs_diff(given) < 1001 {
                    let num = u32::try_from(cand * 1000).map_err(|_| bad_rate(s, "too large"))?;
                    return FrameRate::new(num, 1001);
                }
            }
        }
        let g = gcd(m, scale);
        let (n, d) = (m / g, scale / g);
        match (u32::try_from(n), u32::try_from(d)) {
            (Ok(n), Ok(d)) => FrameRate::new(n, d),
            _ => Err(bad_rate(s, "too large or too precise")),
        }
    }
}

/// The file formats [`render`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExportFormat {
    /// OpenTimelineIO JSON: clip markers (`Marker.2`), for Resolve, Kdenlive, Hiero.
    Otio,
    /// CMX3600 EDL with DaVinci Resolve marker comments.
    Edl,
    /// Final Cut Pro XML 1.10 with `marker` and `chapter-marker`.
    Fcpxml,
    /// WebVTT chapters, for `<track kind="chapters">`.
    Vtt,
    /// ffmpeg FFMETADATA chapters, to mux into MP4/MKV.
    Ffmetadata,
    /// SubRip subtitles, a label track every editor imports.
    Srt,
    /// YouTube description chapters (start times only).
    Youtube,
    /// Comma-separated values with a header.
    Csv,
    /// JSON with frames, seconds and the rate.
    Json,
}

impl ExportFormat {
    /// Every format, in the order of the enum.
    pub const ALL: [ExportFormat; 9] = [
        ExportFormat::Otio,
        ExportFormat::Edl,
        ExportFormat::Fcpxml,
        ExportFormat::Vtt,
        ExportFormat::Ffmetadata,
        ExportFormat::Srt,
        ExportFormat::Youtube,
        ExportFormat::Csv,
        ExportFormat::Json,
    ];

    /// The name accepted by [`FromStr`] and shown to users.
    pub fn name(&self) -> &'static str {
        match self {
            ExportFormat::Otio => "otio",
            ExportFormat::Edl => "edl",
            ExportFormat::Fcpxml => "fcpxml",
            ExportFormat::Vtt => "vtt",
            ExportFormat::Ffmetadata => "ffmetadata",
            ExportFormat::Srt => "srt",
            ExportFormat::Youtube => "youtube",
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "json",
        }
    }

    /// File extension, without the dot. Text formats without an extension of
    /// their own get a `.txt` suffix so they open in any editor.
    pub fn extension(&self) -> &'static str {
        match self {
            ExportFormat::Otio => "otio",
            ExportFormat::Edl => "edl",
            ExportFormat::Fcpxml => "fcpxml",
            ExportFormat::Vtt => "vtt",
            ExportFormat::Ffmetadata => "ffmetadata.txt",
            ExportFormat::Srt => "srt",
            ExportFormat::Youtube => "youtube.txt",
            ExportFormat::Csv => "csv",
            ExportFormat::Json => "export.json",
        }
    }
}

impl fmt::Display for ExportFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ExportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let l = s.trim().to_ascii_lowercase();
        let alias = match l.as_str() {
            "webvtt" => "vtt",
            "ffmeta" => "ffmetadata",
            "fcpx" => "fcpxml",
            other => other,
        };
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = ExportFormat::ALL.iter().map(|f| f.name()).collect();
                Error::invalid(format!(
                    "unknown export format '{s}' (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// What [`render`] needs besides the segments and the rate.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Timeline/project title, usually the video name.
    pub title: String,
    /// Length of the video in frames; `None` = the end of the last segment.
    pub video_frames: Option<u64>,
    /// Segments with these class names are not exported (e.g. "background").
    pub background: Vec<String>,
    /// Path or URL of the video, referenced by OTIO and FCPXML clips so the
    /// editor can link the media; `None` references `title` instead.
    pub media: Option<String>,
    /// Drop-frame timecode (only at 29.97 and 59.94): the EDL's timecodes and
    /// FCPXML's `tcFormat="DF"`; the other formats store exact times.
    pub drop_frame: bool,
}

/// A rendered export: the file content and remarks for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The file content.
    pub text: String,
    /// What was changed or dropped to fit the format, one line each.
    pub notes: Vec<String>,
}

/// One exported segment, frames as `u64`.
#[derive(Debug, Clone)]
struct Seg<'a> {
    label: u32,
    name: &'a str,
    start: u64,
    end: u64,
    confidence: f32,
}

/// Shared input of the per-format writers.
struct Ctx<'a> {
    rate: FrameRate,
    total: u64,
    opts: &'a ExportOptions,
    segs: Vec<Seg<'a>>,
}

impl Ctx<'_> {
    /// The media reference: the given path/URL, else the title.
    fn media(&self, notes: &mut Vec<String>) -> String {
        match &self.opts.media {
            Some(m) => m.clone(),
            None => {
                notes.push(format!(
                    "no media path given: the clip references '{}'; relink it in the editor",
                    self.opts.title
                ));
                self.opts.title.clone()
            }
        }
    }
}

/// Renders `segments` (frames at `rate`) as `format`.
///
/// Segments must be non-empty ranges sorted by start and not overlapping, as
/// `syncseg predict` writes them; those named in `options.background` are left
/// out.
pub fn render(
    format: ExportFormat,
    segments: &[PredictedSegment],
    rate: FrameRate,
    options: &ExportOptions,
) -> Result<Rendered> {
    let mut prev_end = 0u64;
    let mut segs = Vec::with_capacity(segments.len());
    for (i, s) in segments.iter().enumerate() {
        let (start, end) = (s.start as u64, s.end as u64);
        if start >= end {
            return Err(Error::invalid(format!(
                "segment {i} ('{}') is empty or reversed: frames {start}..{end}",
                one_line(&s.name)
            )));
        }
        if start < prev_end {
            return Err(Error::invalid(format!(
                "segment {i} ('{}') starts at frame {start}, before the previous one ends at {prev_end}",
                one_line(&s.name)
            )));
        }
        prev_end = end;
        if options.background.contains(&s.name) {
            continue;
        }
        segs.push(Seg {
            label: s.label,
            name: &s.name,
            start,
            end,
            confidence: s.confidence,
        });
    }
    let total = match options.video_frames {
        Some(t) if t < prev_end => {
            return Err(Error::invalid(format!(
                "the segments end at frame {prev_end}, after the video's {t} frames"
            )))
        }
        Some(t) => t,
        None => prev_end,
    };
    if options.drop_frame && !rate.supports_drop_frame() {
        return Err(Error::invalid(format!(
            "drop-frame timecode exists only at 30000/1001 and 60000/1001, not at {rate}"
        )));
    }
    let ctx = Ctx {
        rate,
        total,
        opts: options,
        segs,
    };
    let mut notes = Vec::new();
    let text = match format {
        ExportFormat::Otio => otio::render(&ctx, &mut notes),
        ExportFormat::Edl => edl::render(&ctx, &mut notes)?,
        ExportFormat::Fcpxml => fcpxml::render(&ctx, &mut notes),
        ExportFormat::Vtt => vtt::render(&ctx, &mut notes),
        ExportFormat::Ffmetadata => ffmetadata::render(&ctx, &mut notes),
        ExportFormat::Srt => srt::render(&ctx, &mut notes),
        ExportFormat::Youtube => youtube::render(&ctx, &mut notes)?,
        ExportFormat::Csv => csv::render(&ctx, &mut notes),
        ExportFormat::Json => json::render(&ctx, &mut notes),
    };
    Ok(Rendered { text, notes })
}

/// The title of the chapters that fill the time no segment covers (YouTube's
/// gaps, FFMETADATA's leading chapter).
const FILLER: &str = "(other)";

/// A name on one line: control characters (newlines, tabs, NEL) and the
/// Unicode line and paragraph separators become spaces, because every line
/// format here ends an entry at a line break, and readers such as Python's
/// `str.splitlines` (OpenTimelineIO's EDL reader) break at U+2028/U+2029 too.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// Confidence as the shortest f64 that prints like the f32 (0.91, not
/// 0.9100000262260437); JSON writers would otherwise widen it.
fn conf64(c: f32) -> f64 {
    c.to_string().parse().unwrap_or(f64::NAN)
}

/// `hh:mm:ss<sep>mmm` from milliseconds (VTT uses '.', SRT ',').
fn clock_ms(ms: u128, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests;
