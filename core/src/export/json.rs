//! JSON: the rate as written (`"30000/1001"`), frames, and seconds for
//! consumers that do not want to do the rational arithmetic.

use serde_json::json;

use super::{conf64, Ctx};

pub(super) fn render(ctx: &Ctx, _notes: &mut Vec<String>) -> String {
    let secs = |f: u64| ctx.rate.millis(f) as f64 / 1000.0;
    let segments: Vec<_> = ctx
        .segs
        .iter()
        .map(|s| {
            json!({
                "label": s.label,
                "name": s.name,
                "start": s.start,
                "end": s.end,
                "start_seconds": secs(s.start),
                "end_seconds": secs(s.end),
                "confidence": conf64(s.confidence),
            })
        })
        .collect();
    let v = json!({
        "title": ctx.opts.title,
        "fps": ctx.rate.to_string(),
        "frames": ctx.total,
        "segments": segments,
    });
    serde_json::to_string_pretty(&v).expect("a JSON value serialises") + "\n"
}
