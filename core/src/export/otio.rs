//! OpenTimelineIO JSON: Timeline.1 → Stack.1 → Track.1 → one Clip.2 spanning
//! the video, with one `Marker.2` per segment.
//!
//! Markers sit on the clip because Kdenlive imports clip markers only, and
//! `Marker.2` (string colour) because the released OTIO (0.18) and the
//! readers bundled in editors do not know `Marker.3`. `comment` repeats the
//! name because Kdenlive shows the comment, not the name.

use serde_json::{json, Value};

use super::{conf64, Ctx};

/// `Marker.2` colours, one per class id (cycling); BLACK/WHITE are left out
/// as they vanish on light or dark themes.
const COLORS: [&str; 9] = [
    "RED", "ORANGE", "YELLOW", "GREEN", "CYAN", "BLUE", "PURPLE", "MAGENTA", "PINK",
];

fn time(value: u64, rate: f64) -> Value {
    json!({"OTIO_SCHEMA": "RationalTime.1", "rate": rate, "value": value as f64})
}

fn range(start: u64, duration: u64, rate: f64) -> Value {
    json!({
        "OTIO_SCHEMA": "TimeRange.1",
        "start_time": time(start, rate),
        "duration": time(duration, rate),
    })
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let rate = ctx.rate.as_f64();
    let markers: Vec<Value> = ctx
        .segs
        .iter()
        .map(|s| {
            json!({
                "OTIO_SCHEMA": "Marker.2",
                "name": s.name,
                "comment": s.name,
                "color": COLORS[s.label as usize % COLORS.len()],
                "marked_range": range(s.start, s.end - s.start, rate),
                "metadata": {"syncseg": {"label_id": s.label, "confidence": conf64(s.confidence)}},
            })
        })
        .collect();
    let whole = range(0, ctx.total, rate);
    let item = |schema: &str, name: &str| {
        json!({
            "OTIO_SCHEMA": schema, "name": name, "metadata": {}, "source_range": null,
            "effects": [], "markers": [], "enabled": true,
        })
    };
    let mut clip = item("Clip.2", &ctx.opts.title);
    clip["source_range"] = whole.clone();
    clip["markers"] = Value::Array(markers);
    clip["media_references"] = json!({"DEFAULT_MEDIA": {
        "OTIO_SCHEMA": "ExternalReference.1", "name": "", "metadata": {},
        "target_url": ctx.media(notes), "available_range": whole,
    }});
    clip["active_media_reference_key"] = json!("DEFAULT_MEDIA");
    let mut track = item("Track.1", "V1");
    track["kind"] = json!("Video");
    track["children"] = json!([clip]);
    let mut stack = item("Stack.1", "tracks");
    stack["children"] = json!([track]);
    let timeline = json!({
        "OTIO_SCHEMA": "Timeline.1",
        "name": ctx.opts.title,
        "metadata": {"syncseg": {"fps": ctx.rate.to_string()}},
        "global_start_time": null,
        "tracks": stack,
    });
    serde_json::to_string_pretty(&timeline).expect("a JSON value serialises") + "\n"
}
