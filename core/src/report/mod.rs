//! Reports: score tables laid out like the papers' tables, and timelines.

pub mod timeline;

use crate::metrics::Scores;

/// A Markdown table with one row per `(name, scores)`: Edit, F1@{10,25,50}, MoF.
pub fn scores_table(rows: &[(&str, &Scores)]) -> String {
    let width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!(
        "| {:<width$} | {:>6} | {:>6} | {:>6} | {:>6} | {:>6} |\n|{}|--------|--------|--------|--------|--------|\n",
        "Method",
        "Edit",
        "F1@10",
        "F1@25",
        "F1@50",
        "MoF",
        "-".repeat(width + 2)
    );
    for (name, s) in rows {
        out.push_str(&format!(
            "| {:<width$} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>6.2} |\n",
            name, s.edit, s.f1_10, s.f1_25, s.f1_50, s.mof
        ));
    }
    out
}
