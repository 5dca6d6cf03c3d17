//! ffmpeg FFMETADATA chapters (`ffmpeg:doc/metadata.texi`).
//!
//! `TIMEBASE=den/num` makes START/END plain frame numbers, as Kdenlive writes
//! them, so 29.97 stays exact instead of being rounded to milliseconds.

use std::fmt::Write;

use super::Ctx;

/// Backslash-escapes `=`, `;`, `#`, `\` and newline, the characters the
/// format gives a meaning.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '=' | ';' | '#' | '\\' | '\n') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(super) fn render(ctx: &Ctx, _notes: &mut Vec<String>) -> String {
    let mut out = String::from(";FFMETADATA1\n");
    if !ctx.opts.title.is_empty() {
        writeln!(out, "title={}", escape(&ctx.opts.title)).unwrap();
    }
    for s in &ctx.segs {
        write!(
            out,
            "[CHAPTER]\nTIMEBASE={}/{}\nSTART={}\nEND={}\ntitle={}\n",
            ctx.rate.den(),
            ctx.rate.num(),
            s.start,
            s.end,
            escape(s.name)
        )
        .unwrap();
    }
    out
}
