//! SubRip (SRT): numbered cues `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a label track
//! that every editor and player imports.
//!
//! SRT has no escape. Players and ffmpeg's decoder read `<…>` as HTML-like
//! tags (`a < b > c` becomes bold) and `{\…}` as ASS override codes, so `<`
//! and `{` before a backslash are replaced by their fullwidth forms.

use std::fmt::Write;

use super::{clock_ms, one_line, Ctx};

/// Cue text: one line, `<` → `＜`, `{\` → `｛\`. Returns whether a
/// character was substituted.
fn cue_text(s: &str) -> (String, bool) {
    let line = one_line(s);
    let text = line.replace('<', "\u{FF1C}").replace("{\\", "\u{FF5B}\\");
    let changed = text != line;
    (text, changed)
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let mut out = String::new();
    let mut n = 0;
    let mut dropped = 0;
    let mut substituted = false;
    for s in &ctx.segs {
        let (a, b) = (ctx.rate.millis(s.start), ctx.rate.millis(s.end));
        if b <= a {
            dropped += 1;
            continue;
        }
        n += 1;
        // A blank line ends a cue, so the name is kept on one line.
        let (text, changed) = cue_text(s.name);
        substituted |= changed;
        write!(
            out,
            "{n}\n{} --> {}\n{text}\n\n",
            clock_ms(a, ','),
            clock_ms(b, ','),
        )
        .unwrap();
    }
    if dropped > 0 {
        notes.push(format!(
            "SRT: {dropped} segments shorter than a millisecond were left out"
        ));
    }
    if substituted {
        notes.push(
            "SRT: '<' and '{\\' in names were replaced with '\u{FF1C}' and '\u{FF5B}\\', as SRT has no escape and players read them as markup"
                .into(),
        );
    }
    out
}
