//! CMX3600 EDL in DaVinci Resolve's marker dialect.
//!
//! Resolve (`Timelines › Import › Timeline Markers from EDL`) reads each
//! marker as a one-frame event followed by a comment line
//! `<note> |C:ResolveColor<Color> |M:<name> |D:<frames>`. Record timecodes
//! start at 01:00:00:00, Resolve's default timeline start, and the out point
//! is exclusive (one frame after the in point), as Resolve expects.

use std::fmt::Write;

use super::timecode::{frames_per_hour, timecode};
use super::{one_line, Ctx};

/// Resolve marker colours, one per class id (cycling).
const COLORS: [&str; 16] = [
    "Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender",
    "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream",
];

/// Resolve color name of class `label`.
pub(super) fn color(label: u32) -> &'static str {
    COLORS[label as usize % COLORS.len()]
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let df = ctx.opts.drop_frame;
    let hour = frames_per_hour(ctx.rate, df);
    // drop_frame was checked against the rate in render(), so this cannot fail.
    let tc = |f: u64| timecode(hour + f, ctx.rate, df).expect("rate checked");
    let mut out = String::new();
    let title = one_line(&ctx.opts.title);
    writeln!(
        out,
        "TITLE: {}",
        if title.is_empty() { "syncseg" } else { &title }
    )
    .unwrap();
    writeln!(
        out,
        "FCM: {}",
        if df { "DROP FRAME" } else { "NON-DROP FRAME" }
    )
    .unwrap();
    if ctx.segs.len() > 999 {
        notes.push(format!(
            "EDL: {} events exceed CMX3600's 999; event numbers keep counting, which Resolve accepts but strict readers may not",
            ctx.segs.len()
        ));
    }
    let mut changed = false;
    for (i, s) in ctx.segs.iter().enumerate() {
        // '|' separates Resolve's fields; a newline would end the comment.
        let name: String = one_line(s.name).replace('|', "/");
        changed |= name != s.name;
        let (a, b) = (tc(s.start), tc(s.start + 1));
        writeln!(out).unwrap();
        writeln!(out, "{:03}  001      V     C        {a} {b} {a} {b}", i + 1).unwrap();
        writeln!(
            out,
            "{name} |C:ResolveColor{} |M:{name} |D:{}",
            color(s.label),
            s.end - s.start
        )
        .unwrap();
    }
    if changed {
        notes.push(
            "EDL: '|' and line breaks in names were replaced, as Resolve splits fields at '|'"
                .into(),
        );
    }
    out
}
