//! YouTube description chapters: `m:ss title` lines.
//!
//! YouTube accepts chapters only if the first starts at 0:00, there are at
//! least three, and each lasts at least 10 s. Chapters are start-only and so
//! contiguous: gaps (and background segments) become "(other)" chapters, and
//! chapters shorter than 10 s are merged into their longer neighbour.

use std::fmt::Write;

use super::{one_line, Ctx};
use crate::error::{Error, Result};

const MIN_SECONDS: u64 = 10;
const MIN_CHAPTERS: usize = 3;
const FILLER: &str = "(other)";

struct Chapter {
    title: String,
    start: u64,
    end: u64,
}

fn stamp(secs: u64, hours: bool) -> String {
    if hours {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// Appends a chapter, extending the last one when the title repeats.
fn push(chapters: &mut Vec<Chapter>, title: String, start: u64, end: u64) {
    match chapters.last_mut() {
        Some(last) if last.title == title => last.end = end,
        _ => chapters.push(Chapter { title, start, end }),
    }
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> Result<String> {
    let r = ctx.rate;
    if !r.at_least_seconds(ctx.total, MIN_SECONDS * MIN_CHAPTERS as u64) {
        return Err(Error::invalid(format!(
            "YouTube chapters need a video of at least {} s ({MIN_CHAPTERS} chapters of {MIN_SECONDS} s); this one lasts {} s",
            MIN_SECONDS * MIN_CHAPTERS as u64,
            r.millis(ctx.total) as f64 / 1000.0
        )));
    }
    let mut chapters = Vec::new();
    let mut at = 0;
    for s in &ctx.segs {
        if s.start > at {
            push(&mut chapters, FILLER.into(), at, s.start);
        }
        push(&mut chapters, one_line(s.name), s.start, s.end);
        at = s.end;
    }
    if at < ctx.total {
        push(&mut chapters, FILLER.into(), at, ctx.total);
    }
    let mut merged = Vec::new();
    // Shortest first, so that a short chapter is not swallowed by an even
    // shorter neighbour that is about to be merged itself.
    while let Some(i) = (0..chapters.len())
        .filter(|&i| {
            !r.at_least_seconds(chapters[i].end - chapters[i].start, MIN_SECONDS)
                && chapters.len() > 1
        })
        .min_by_key(|&i| chapters[i].end - chapters[i].start)
    {
        let len = |c: &Chapter| c.end - c.start;
        let into_prev = match (i.checked_sub(1), chapters.get(i + 1)) {
            (Some(p), Some(n)) => len(&chapters[p]) >= len(n),
            (Some(_), None) => true,
            _ => false,
        };
        let c = chapters.remove(i);
        merged.push(format!(
            "'{}' at {}",
            c.title,
            stamp(r.whole_seconds(c.start), false)
        ));
        if into_prev {
            chapters[i - 1].end = c.end;
        } else {
            chapters[i].start = c.start;
        }
        // Merging may make two neighbours with the same title adjacent.
        let old = std::mem::take(&mut chapters);
        for c in old {
            push(&mut chapters, c.title, c.start, c.end);
        }
    }
    if !merged.is_empty() {
        notes.push(format!(
            "YouTube: merged {} chapters shorter than {MIN_SECONDS} s into their neighbours: {}",
            merged.len(),
            merged.join(", ")
        ));
    }
    if chapters.len() < MIN_CHAPTERS {
        return Err(Error::invalid(format!(
            "YouTube needs at least {MIN_CHAPTERS} chapters of {MIN_SECONDS} s; these segments give {}",
            chapters.len()
        )));
    }
    let hours = r.whole_seconds(ctx.total) >= 3600;
    let mut out = String::new();
    for c in &chapters {
        writeln!(
            out,
            "{} {}",
            stamp(r.whole_seconds(c.start), hours),
            c.title
        )
        .unwrap();
    }
    Ok(out)
}
