//! YouTube description chapters: `m:ss title` lines.
//!
//! YouTube accepts chapters only if the first starts at 0:00, there are at
//! least three, and each lasts at least 10 s. Chapters are start-only and so
//! contiguous: gaps (and background segments) become "(other)" chapters.
//! Chapters shorter than 10 s are merged away, the shortest first and each
//! into its *shorter* neighbour, so that merges do not pile onto one growing
//! chapter; where that still leaves fewer than three, a left-to-right pass
//! that closes a chapter as soon as it lasts 10 s (which yields the most
//! chapters the segment boundaries allow) is used instead.

use std::fmt::Write;

use super::{one_line, Ctx, FrameRate, FILLER};
use crate::error::{Error, Result};

const MIN_SECONDS: u64 = 10;
const MIN_CHAPTERS: usize = 3;
/// A YouTube description holds 5,000 characters (Studio); the Data API
/// counts 5,000 bytes of UTF-8.
const MAX_DESCRIPTION: usize = 5000;
/// Merged chapters named in the note, at most.
const NAMED_MERGES: usize = 10;

#[derive(Debug, Clone)]
struct Chapter {
    title: String,
    start: u64,
    end: u64,
}

impl Chapter {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

fn stamp(secs: u128, hours: bool) -> String {
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

/// Merges the shortest chapter under 10 s into its shorter neighbour until
/// none is left (or one chapter is). Returns the chapters and the merged
/// titles with their starts.
fn merge_shortest(r: FrameRate, mut ch: Vec<Chapter>) -> (Vec<Chapter>, Vec<(String, u64)>) {
    let mut merged = Vec::new();
    while ch.len() > 1 {
        let Some(i) = (0..ch.len())
            .filter(|&i| !r.at_least_seconds(ch[i].len(), MIN_SECONDS))
            .min_by_key(|&i| ch[i].len())
        else {
            break;
        };
        let prev = i.checked_sub(1).map(|p| ch[p].len());
        let next = ch.get(i + 1).map(Chapter::len);
        let into_prev = match (prev, next) {
            (Some(p), Some(n)) => p <= n,
            (Some(_), None) => true,
            _ => false,
        };
        let c = ch.remove(i);
        if into_prev {
            ch[i - 1].end = c.end;
        } else {
            ch[i].start = c.start;
        }
        merged.push((c.title, c.start));
        // Removing `c` may make two chapters of the same title adjacent.
        if i > 0 && i < ch.len() && ch[i - 1].title == ch[i].title {
            let n = ch.remove(i);
            ch[i - 1].end = n.end;
        }
    }
    (ch, merged)
}

/// Groups consecutive chapters from the left, closing a group as soon as it
/// lasts 10 s (a short tail joins the last group): the most chapters of
/// 10 s the boundaries allow. A group is titled by its longest member.
fn greedy(r: FrameRate, ch: &[Chapter]) -> (Vec<Chapter>, Vec<(String, u64)>) {
    let mut groups: Vec<Vec<&Chapter>> = Vec::new();
    let mut open: Vec<&Chapter> = Vec::new();
    for c in ch {
        open.push(c);
        let len = open.last().unwrap().end - open[0].start;
        if r.at_least_seconds(len, MIN_SECONDS) {
            groups.push(std::mem::take(&mut open));
        }
    }
    match groups.last_mut() {
        Some(last) => last.append(&mut open),
        None if !open.is_empty() => groups.push(open),
        None => {}
    }
    let mut out = Vec::new();
    let mut merged = Vec::new();
    for g in groups {
        // The first of the longest members (max_by_key would take the last).
        let best = g
            .iter()
            .fold(g[0], |b, c| if c.len() > b.len() { c } else { b });
        for c in &g {
            if c.title != best.title {
                merged.push((c.title.clone(), c.start));
            }
        }
        push(
            &mut out,
            best.title.clone(),
            g[0].start,
            g.last().unwrap().end,
        );
    }
    (out, merged)
}

/// A title for a description: on one line, without the `<` and `>` that
/// YouTube refuses in descriptions.
fn title(name: &str) -> String {
    one_line(name)
        .replace('<', "\u{FF1C}")
        .replace('>', "\u{FF1E}")
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
    let mut atoms = Vec::new();
    let mut at = 0;
    let mut angled = false;
    for s in &ctx.segs {
        if s.start > at {
            push(&mut atoms, FILLER.into(), at, s.start);
        }
        angled |= s.name.contains(['<', '>']);
        push(&mut atoms, title(s.name), s.start, s.end);
        at = s.end;
    }
    if at < ctx.total {
        push(&mut atoms, FILLER.into(), at, ctx.total);
    }
    let (mut chapters, mut merged) = merge_shortest(r, atoms.clone());
    if chapters.len() < MIN_CHAPTERS {
        let (g, m) = greedy(r, &atoms);
        if g.len() > chapters.len() {
            (chapters, merged) = (g, m);
        }
    }
    if chapters.len() < MIN_CHAPTERS {
        return Err(Error::invalid(format!(
            "YouTube needs at least {MIN_CHAPTERS} chapters of {MIN_SECONDS} s; the segment boundaries of this video allow {} (after merging the shorter segments into their neighbours)",
            chapters.len()
        )));
    }
    if !merged.is_empty() {
        let mut named: Vec<String> = merged
            .iter()
            .take(NAMED_MERGES)
            .map(|(t, start)| format!("'{t}' at {}", stamp(r.whole_seconds(*start), false)))
            .collect();
        if merged.len() > NAMED_MERGES {
            named.push(format!("and {} more", merged.len() - NAMED_MERGES));
        }
        notes.push(format!(
            "YouTube: merged {} chapters shorter than {MIN_SECONDS} s into their neighbours: {}",
            merged.len(),
            named.join(", ")
        ));
    }
    if angled {
        notes.push(
            "YouTube: '<' and '>' in names were replaced with '\u{FF1C}' and '\u{FF1E}', which YouTube refuses in descriptions"
                .into(),
        );
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
    if out.len() > MAX_DESCRIPTION {
        notes.push(format!(
            "YouTube: the chapters take {} characters ({} bytes), over the {MAX_DESCRIPTION} a YouTube description holds (the Data API counts bytes); shorten the names before pasting",
            out.chars().count(),
            out.len()
        ));
    }
    Ok(out)
}
