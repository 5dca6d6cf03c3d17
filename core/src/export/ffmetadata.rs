//! ffmpeg FFMETADATA chapters (`ffmpeg:doc/metadata.texi`).
//!
//! `TIMEBASE=den/num` makes START/END plain frame numbers, as Kdenlive writes
//! them, so 29.97 stays exact instead of being rounded to milliseconds.
//!
//! ffmpeg's reader (`libavformat/ffmetadec.c`) ends a line at an LF, CR or
//! NUL not preceded by a backslash, looking only at the previous byte: an
//! escaped backslash at the end of a value (`title=a\\`) escapes the line
//! break too and swallows the next line, so such a value gets a trailing
//! space. MP4 chapters are contiguous from 0 (the mov muxer moves a first
//! chapter that starts later to 0), so a leading filler chapter covers the
//! time before the first segment.

use std::fmt::Write;

use super::{Ctx, FILLER};

/// Backslash-escapes `=`, `;`, `#`, `\`, LF and CR, the characters the
/// format gives a meaning; drops NUL (which ends a value in ffmpeg's reader
/// even when escaped) and appends a space after a final backslash. Returns
/// the escaped value and whether the text was changed.
fn escape(s: &str) -> (String, bool) {
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    for c in s.chars() {
        match c {
            '\0' => changed = true,
            '=' | ';' | '#' | '\\' | '\n' | '\r' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    if out.ends_with('\\') {
        out.push(' ');
        changed = true;
    }
    (out, changed)
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let mut out = String::from(";FFMETADATA1\n");
    let mut changed = false;
    if !ctx.opts.title.is_empty() {
        let (t, c) = escape(&ctx.opts.title);
        changed |= c;
        writeln!(out, "title={t}").unwrap();
    }
    let chapter = |out: &mut String, start: u64, end: u64, title: &str| {
        write!(
            out,
            "[CHAPTER]\nTIMEBASE={}/{}\nSTART={start}\nEND={end}\ntitle={title}\n",
            ctx.rate.den(),
            ctx.rate.num(),
        )
        .unwrap();
    };
    if let Some(first) = ctx.segs.first().filter(|s| s.start > 0) {
        chapter(&mut out, 0, first.start, FILLER);
        notes.push(format!(
            "FFMETADATA: a chapter '{FILLER}' covers frames 0..{} before the first segment, as MP4 players start the first chapter at 0",
            first.start
        ));
    }
    for s in &ctx.segs {
        let (t, c) = escape(s.name);
        changed |= c;
        chapter(&mut out, s.start, s.end, &t);
    }
    if changed {
        notes.push(
            "FFMETADATA: NUL characters were dropped and a space was added after a final '\\', which ffmpeg's reader would otherwise join to the next line"
                .into(),
        );
    }
    out
}
