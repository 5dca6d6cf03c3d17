//! Final Cut Pro XML 1.10: one `asset-clip` spanning the video, holding a
//! `marker` (a range, the class name as value) and a `chapter-marker` (what
//! FCP writes into shared movies as chapters) per segment.
//!
//! Times are exact rational seconds (`1001/30000s`). The clip starts at 0 s
//! with offset 0 s, so marker times (in the clip's local time) equal video
//! times.

use std::fmt::Write;

use super::{Ctx, FrameRate};

/// `frames` as FCPXML time: reduced `n/ds`, or `ns` when whole.
pub(super) fn time(rate: FrameRate, frames: u64) -> String {
    match rate.seconds_ratio(frames) {
        (0, _) => "0s".into(),
        (n, 1) => format!("{n}s"),
        (n, d) => format!("{n}/{d}s"),
    }
}

/// Escapes an attribute value (double-quoted); line breaks become character
/// references so that XML attribute normalisation keeps them.
fn attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes every byte of `path` but RFC 3986's unreserved characters
/// and `/` (so `%`, space, `#`, `?` and non-ASCII UTF-8 are all encoded).
fn percent_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// `media` as a URL (RFC 3986): a URL (`scheme://…`) is kept as given, an
/// absolute path becomes a `file://` URL and a relative one a relative
/// reference, both percent-encoded.
fn url(media: &str) -> String {
    if media.contains("://") {
        media.to_string()
    } else if media.starts_with('/') {
        format!("file://{}", percent_encode(media))
    } else {
        percent_encode(media)
    }
}

pub(super) fn render(ctx: &Ctx, notes: &mut Vec<String>) -> String {
    let r = ctx.rate;
    let title = attr(&ctx.opts.title);
    let dur = time(r, ctx.total);
    let src = attr(&url(&ctx.media(notes)));
    let tc = if ctx.opts.drop_frame { "DF" } else { "NDF" };
    let mut o = String::new();
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE fcpxml>\n");
    o.push_str("<fcpxml version=\"1.10\">\n  <resources>\n");
    writeln!(
        o,
        "    <format id=\"r1\" frameDuration=\"{}\"/>",
        time(r, 1)
    )
    .unwrap();
    writeln!(o, "    <asset id=\"r2\" name=\"{title}\" start=\"0s\" duration=\"{dur}\" hasVideo=\"1\" format=\"r1\">").unwrap();
    writeln!(
        o,
        "      <media-rep kind=\"original-media\" src=\"{src}\"/>\n    </asset>\n  </resources>"
    )
    .unwrap();
    o.push_str("  <library>\n    <event name=\"syncseg\">\n");
    writeln!(o, "      <project name=\"{title}\">").unwrap();
    writeln!(o, "        <sequence format=\"r1\" duration=\"{dur}\" tcStart=\"0s\" tcFormat=\"{tc}\">\n          <spine>").unwrap();
    writeln!(o, "            <asset-clip ref=\"r2\" name=\"{title}\" offset=\"0s\" start=\"0s\" duration=\"{dur}\" format=\"r1\">").unwrap();
    for s in &ctx.segs {
        let (start, d, name) = (time(r, s.start), time(r, s.end - s.start), attr(s.name));
        let note = format!("class {}, confidence {}", s.label, s.confidence);
        writeln!(o, "              <marker start=\"{start}\" duration=\"{d}\" value=\"{name}\" note=\"{note}\"/>").unwrap();
        writeln!(o, "              <chapter-marker start=\"{start}\" duration=\"{}\" value=\"{name}\" posterOffset=\"0s\"/>", time(r, 1)).unwrap();
    }
    o.push_str("            </asset-clip>\n          </spine>\n        </sequence>\n      </project>\n    </event>\n  </library>\n</fcpxml>\n");
    o
}
