//! SubRip (SRT): numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a label track
//! that every editor and player imports.

use std::fmt::Write;

use super::{clock_ms, one_line, Ctx};

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut dropped = 0;
    for s in &ctx.segs {
        let (a, b) = (ctx.rate.millis(s.start), ctx.rate.millis(s.end));
        if b <= a {
            dropped += 1;
            continue;
        }
        n += 1;
        // A blank line ends a cue, so the name is kept on one line.
        write!(
            out,
            "{n}\n{} --> {}\n{}\n\n",
            clock_ms(a, ','),
            clock_ms(b, ','),
            one_line(s.name)
        )
        .unwrap();
    }
    if dropped > 0 {
        notes.push(format!(
            "SRT: {dropped} segments shorter than a millisecond were left out"
        ));
    }
    out
}
