//! CMX3600 EDL in DaVinci Resolve's marker dialect.
//!
//! Resolve (`Timelines › Import › Timeline Markers from EDL`) reads each
//! marker as a one-frame event followed by a comment line
//! `<note> |C:ResolveColor<Color> |M:<name> |D:<frames>`, where syncseg
//! leaves the note empty as Resolve's own export does. Record timecodes
//! start at 01:00:00:00, Resolve's default timeline start, and the out point
//! is exclusive (one frame after the in point), as Resolve expects.

use std::fmt::Write;

use super::timecode::{frames_per_day, frames_per_hour, timecode};
use super::{one_line, Ctx};
use crate::error::{Error, Result};

/// Resolve marker colours, one per class id (cycling).
const COLORS: [&str; 16] = [
    "Blue", "Cyan", "Green", "Yellow", "Red", "Pink", "Purple", "Fuchsia", "Rose", "Lavender",
    "Sky", "Mint", "Lemon", "Sand", "Cocoa", "Cream",
];

/// Resolve color name of class `label`.
pub(super) fn color(label: u32) -> &'static str {
    COLORS[label as usize % COLORS.len()]
}

/// `h:mm:ss` of `frames`, for messages.
fn clock(ctx: &Ctx, frames: u64) -> String {
    let s = ctx.rate.whole_seconds(frames);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> Result<String> {
    let df = ctx.opts.drop_frame;
    let rate = ctx.rate;
    let (Some(hour), Some(day)) = (frames_per_hour(rate, df), frames_per_day(rate, df)) else {
        return Err(Error::invalid(format!(
            "EDL: timecode at {rate} fps cannot be computed (the rate is too high)"
        )));
    };
    // Each marker spans record frames hour+start .. hour+start+1 (exclusive),
    // so its start must be a day minus an hour minus a frame at most.
    for (i, s) in ctx.segs.iter().enumerate() {
        let out = hour.checked_add(s.start).and_then(|a| a.checked_add(1));
        if out.is_none_or(|out| out >= day) {
            return Err(Error::invalid(format!(
                "EDL: segment {i} ('{}') starts at {} (frame {}), which EDL timecode cannot express: markers are written from 01:00:00:00 and timecode ends at 23:59:59:{:02}, so an EDL holds at most 23 h of video; export this video as otio, fcpxml or ffmetadata",
                one_line(s.name),
                clock(ctx, s.start),
                s.start,
                rate.nominal_fps() - 1
            )));
        }
    }
    // Checked above: every record frame is below `day`, and drop_frame was
    // checked against the rate in render().
    let tc = |f: u64| timecode(hour + f, rate, df);
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
        // '|' separates Resolve's fields; a line break would end the comment.
        let name: String = one_line(s.name).replace('|', "/");
        changed |= name != s.name;
        let (a, b) = (tc(s.start)?, tc(s.start + 1)?);
        writeln!(out).unwrap();
        writeln!(out, "{:03}  001      V     C        {a} {b} {a} {b}", i + 1).unwrap();
        // The note field (before the first '|') is left empty, as Resolve
        // writes it: a line that began with the name would be read as an
        // event by CMX readers when the name starts with a digit, and as a
        // CMX comment (LOC, M2, FROM CLIP, ASC_SOP…) when it starts with one.
        writeln!(
            out,
            " |C:ResolveColor{} |M:{name} |D:{}",
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
    Ok(out)
}
