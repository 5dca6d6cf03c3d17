//! Cell results, their mean ± standard deviation over seeds, and the
//! markdown tables of `report.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use syncseg_core::metrics::Scores;

use super::plan::Table;

/// What one cell of one seed produced; cached as JSON so that a re-run skips it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: String,
    pub seed: u64,
    /// Scores per test split (exo, ego).
    pub scores: BTreeMap<String, Scores>,
    /// Training pairs the run saw (distillation cells).
    pub pairs: Option<usize>,
    pub seconds: f64,
}

/// Mean and sample standard deviation of one metric over seeds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// Sample standard deviation (n − 1); 0 for one seed.
    pub std: f64,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let n = values.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                std: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Stat { mean, std }
    }
}

/// The metrics of the paper's tables, in their order.
pub const METRICS: [&str; 5] = ["Edit", "F1@10", "F1@25", "F1@50", "MoF"];

fn metric_values(s: &Scores) -> [f64; 5] {
    [s.edit, s.f1_10, s.f1_25, s.f1_50, s.mof]
}

/// One line of a table over the seeds that computed it.
#[derive(Debug, Clone, Serialize)]
pub struct LineSummary {
    pub label: String,
    pub cell: String,
    pub test_view: String,
    pub x: Option<f64>,
    pub seeds: Vec<u64>,
    /// Mean pairs seen (distillation cells).
    pub pairs: Option<f64>,
    /// Per metric of [`METRICS`].
    pub metrics: BTreeMap<String, Stat>,
    /// Per seed, per metric (the values behind the mean).
    pub per_seed: Vec<[f64; 5]>,
}

impl LineSummary {
    pub fn stat(&self, metric: &str) -> Stat {
        self.metrics[metric]
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TableSummary {
    pub id: String,
    pub title: String,
    pub lines: Vec<LineSummary>,
}

/// Aggregates `results` over seeds along `tables`.
pub fn summarize(tables: &[Table], results: &[CellResult]) -> Vec<TableSummary> {
    tables
        .iter()
        .map(|t| TableSummary {
            id: t.id.to_string(),
            title: t.title.to_string(),
            lines: t
                .lines
                .iter()
                .map(|l| {
                    let mut seeds = Vec::new();
                    let mut per_seed = Vec::new();
                    let mut pairs = Vec::new();
                    for r in results.iter().filter(|r| r.cell == l.cell) {
                        if let Some(s) = r.scores.get(l.test_view) {
                            seeds.push(r.seed);
                            per_seed.push(metric_values(s));
                            pairs.extend(r.pairs.map(|p| p as f64));
                        }
                    }
                    let metrics = METRICS
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            let v: Vec<f64> = per_seed.iter().map(|s| s[i]).collect();
                            (m.to_string(), Stat::of(&v))
                        })
                        .collect();
                    LineSummary {
                        label: l.label.clone(),
                        cell: l.cell.clone(),
                        test_view: l.test_view.to_string(),
                        x: l.x,
                        seeds,
                        pairs: (!pairs.is_empty())
                            .then(|| pairs.iter().sum::<f64>() / pairs.len() as f64),
                        metrics,
                        per_seed,
                    }
                })
                .collect(),
        })
        .collect()
}

fn cell_text(s: Stat, n: usize) -> String {
    if n == 0 {
        "–".into()
    } else if n == 1 {
        format!("{:.2}", s.mean)
    } else {
        format!("{:.2} ± {:.2}", s.mean, s.std)
    }
}

/// One markdown table: a line per row, mean ± sample std over seeds.
pub fn table_markdown(t: &TableSummary) -> String {
    let label_w = t
        .lines
        .iter()
        .map(|l| l.label.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!("### {}\n\n", t.title);
    out.push_str(&format!("| {:<label_w$} |", "Method"));
    for m in METRICS {
        out.push_str(&format!(" {m:>13} |"));
    }
    out.push_str(" seeds |\n|");
    out.push_str(&"-".repeat(label_w + 2));
    out.push('|');
    for _ in METRICS {
        out.push_str("--------------:|");
    }
    out.push_str("------:|\n");
    for l in &t.lines {
        out.push_str(&format!("| {:<label_w$} |", l.label));
        for m in METRICS {
            out.push_str(&format!(" {:>13} |", cell_text(l.stat(m), l.seeds.len())));
        }
        out.push_str(&format!(" {:>5} |\n", l.seeds.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bench_paper::plan::{tables, EXO_TEACHER};

    fn scores(edit: f64) -> Scores {
        Scores {
            edit,
            f1_10: edit + 1.0,
            f1_25: edit + 2.0,
            f1_50: edit + 3.0,
            mof: edit + 4.0,
            videos: 3,
        }
    }

    #[test]
    fn stat_is_mean_and_sample_std() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(Stat::of(&[7.0]).std, 0.0);
        assert!(Stat::of(&[]).mean.is_nan());
    }

    #[test]
    fn lines_aggregate_their_cell_and_split_over_seeds() {
        let results: Vec<CellResult> = [(0, 10.0, 50.0), (1, 14.0, 60.0)]
            .into_iter()
            .map(|(seed, ego, exo)| CellResult {
                cell: EXO_TEACHER.into(),
                seed,
                scores: [
                    ("ego".to_string(), scores(ego)),
                    ("exo".into(), scores(exo)),
                ]
                .into_iter()
                .collect(),
                pairs: None,
                seconds: 1.0,
            })
            .collect();
        let summary = summarize(&tables(), &results);
        let t3 = &summary[0];
        let none = &t3.lines[0];
        assert_eq!(none.seeds, vec![0, 1]);
        assert_eq!(none.stat("Edit").mean, 12.0);
        assert_eq!(none.stat("MoF").mean, 16.0);
        assert!((none.stat("Edit").std - 8f64.sqrt()).abs() < 1e-12);
        // A line whose cell has no result yet shows dashes.
        assert!(t3.lines[1].seeds.is_empty());
        let md = table_markdown(t3);
        assert!(md.contains("12.00 ± 2.83"), "{md}");
        assert!(md.contains("| MMD"), "{md}");
        let t6 = summary.iter().find(|t| t.id == "table6").unwrap();
        assert_eq!(t6.lines[0].stat("Edit").mean, 55.0);
    }
}
