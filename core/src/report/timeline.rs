//! Segmentation timelines as SVG: one row of coloured bars per method under
//! the ground truth, one colour per class, with a legend — the paper's
//! qualitative figures. Plain SVG text, no dependency.

use std::fmt::Write;

use crate::segments::segments_of;

/// One video to draw: its ground truth and each method's prediction.
pub struct TimelineVideo<'a> {
    /// Video name.
    pub name: &'a str,
    /// Ground-truth label ids.
    pub gt: &'a [u32],
    /// `(method, predicted label ids)`, each as long as `gt`.
    pub rows: Vec<(&'a str, &'a [u32])>,
}

/// A colour per class: hues spread by the golden angle, background grey.
fn colour(class: u32, background: &[u32]) -> String {
    if background.contains(&class) {
        return "#d9d9d9".to_string();
    }
    let hue = (class as f64 * 137.508) % 360.0;
    format!("hsl({hue:.0},65%,55%)")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders `videos` as an SVG document.
pub fn timeline_svg(
    videos: &[TimelineVideo],
    class_names: &[String],
    background: &[u32],
) -> String {
    let (label_w, bar_w, row_h, gap) = (210.0, 900.0, 18.0, 4.0);
    let mut y = 10.0;
    let mut body = String::new();
    let mut used = std::collections::BTreeSet::new();
    for v in videos {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{:.1}" font-weight="bold">{}</text>"#,
            y + 12.0,
            escape(v.name)
        );
        y += row_h + gap;
        let t = v.gt.len().max(1) as f64;
        let rows = std::iter::once(("ground truth", v.gt)).chain(v.rows.iter().copied());
        for (method, labels) in rows {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{:.1}">{}</text>"#,
                y + 13.0,
                escape(method)
            );
            for s in segments_of(labels) {
                used.insert(s.label);
                let x = label_w + bar_w * s.start as f64 / t;
                let w = (bar_w * (s.end - s.start) as f64 / t).max(0.5);
                let name = class_names
                    .get(s.label as usize)
                    .map(String::as_str)
                    .unwrap_or("?");
                let _ = writeln!(
                    body,
                    r#"<rect x="{x:.2}" y="{y:.1}" width="{w:.2}" height="{row_h}" fill="{}"><title>{} [{}, {})</title></rect>"#,
                    colour(s.label, background),
                    escape(name),
                    s.start,
                    s.end
                );
            }
            y += row_h + gap;
        }
        y += 2.0 * gap;
    }
    // Legend, four columns.
    let col_w = (label_w + bar_w) / 4.0;
    for (i, class) in used.iter().enumerate() {
        let (cx, cy) = (10.0 + col_w * (i % 4) as f64, y + 20.0 * (i / 4) as f64);
        let name = class_names
            .get(*class as usize)
            .map(String::as_str)
            .unwrap_or("?");
        let _ = writeln!(
            body,
            r#"<rect x="{cx:.1}" y="{cy:.1}" width="14" height="14" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            colour(*class, background),
            cx + 20.0,
            cy + 12.0,
            escape(name)
        );
    }
    let height = y + 20.0 * used.len().div_ceil(4) as f64 + 10.0;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{height:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        label_w + bar_w + 20.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_one_bar_per_segment_and_a_legend() {
        let gt = [0u32, 1, 1, 2];
        let pred = [1u32, 1, 1, 2];
        let names: Vec<String> = ["bg", "a<b", "c"].iter().map(|s| s.to_string()).collect();
        let svg = timeline_svg(
            &[TimelineVideo {
                name: "v1",
                gt: &gt,
                rows: vec![("model", &pred)],
            }],
            &names,
            &[0],
        );
        assert!(svg.starts_with("<svg"));
        // 3 GT segments + 2 predicted + 3 legend swatches + background rect.
        assert_eq!(svg.matches("<rect").count(), 3 + 2 + 3 + 1);
        assert!(svg.contains("a&lt;b [0, 3)"));
        assert!(svg.contains("#d9d9d9"));
    }
}
