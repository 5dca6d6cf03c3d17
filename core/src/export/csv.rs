//! CSV (RFC 4180): a header, then one row per segment with frames, seconds
//! (millisecond precision) and confidence.

use std::fmt::Write;

use super::Ctx;

/// Quotes a field that holds a comma, quote or line break, doubling quotes.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn seconds(ms: u128) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

pub(super) fn render(ctx: &Ctx, _notes: &mut Vec<String>) -> String {
    let mut out =
        String::from("label,name,start_frame,end_frame,start_seconds,end_seconds,confidence\n");
    for s in &ctx.segs {
        writeln!(
            out,
            "{},{},{},{},{},{},{}",
            s.label,
            field(s.name),
            s.start,
            s.end,
            seconds(ctx.rate.millis(s.start)),
            seconds(ctx.rate.millis(s.end)),
            s.confidence
        )
        .unwrap();
    }
    out
}
