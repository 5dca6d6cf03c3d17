//! WebVTT chapters (W3C WebVTT §4.6.2): one cue per segment, title as text.

use std::fmt::Write;

use super::{clock_ms, one_line, Ctx};

/// Escapes cue text: `&`, `<`, `>` are markup, and "-->" would end a cue.
fn cue_text(s: &str) -> String {
    one_line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let mut out = String::from("WEBVTT\n");
    let mut n = 0;
    let mut dropped = 0;
    for s in &ctx.segs {
        let (a, b) = (ctx.rate.millis(s.start), ctx.rate.millis(s.end));
        // Cues must end after they start; shorter than 1 ms rounds to empty.
        if b <= a {
            dropped += 1;
            continue;
        }
        n += 1;
        write!(
            out,
            "\n{n}\n{} --> {}\n{}\n",
            clock_ms(a, '.'),
            clock_ms(b, '.'),
            cue_text(s.name)
        )
        .unwrap();
    }
    if dropped > 0 {
        notes.push(format!(
            "VTT: {dropped} segments shorter than a millisecond were left out"
        ));
    }
    out
}
