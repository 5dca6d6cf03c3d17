//! What `syncseg bench paper` computes: the cells (one training run each,
//! scored on one or two test splits) and the paper's tables laid out over
//! them. A cell is computed once per seed and may feed several tables (the
//! synchronized TAS distillation is the last line of Tables 3 to 5, line 4
//! of Table 6 and the last line of the layer ablation).

use syncseg_core::pipeline::DistillOptions;
use syncseg_core::train::distill::{AdaptLoss, Pairing, DEFAULT_LEVELS};

/// One training run.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// Supervised training on one view's labelled training split.
    Train { view: &'static str },
    /// TAS distillation of a trained cell into the other view.
    Distill(DistillJob),
}

/// A TAS-distillation run: the teacher cell, and what differs from the
/// method's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct DistillJob {
    /// The id of the `Train` cell whose model is the teacher.
    pub teacher: &'static str,
    pub teacher_view: &'static str,
    pub student_view: &'static str,
    pub loss: AdaptLoss,
    pub pairing: Pairing,
    pub pairs_fraction: f64,
    pub drop_rate: f64,
    /// Distilled heads (0 = full resolution).
    pub levels: Vec<usize>,
    /// Select the epoch on held-out pairs. Off for same-procedure pairing:
    /// the small preset's four held-out recordings rarely share a procedure.
    pub held_out: bool,
}

impl DistillJob {
    /// The method (the distillation options' defaults): synchronized exo →
    /// ego pairs, MSE on every head.
    fn method() -> Self {
        let d = DistillOptions::default();
        DistillJob {
            teacher: EXO_TEACHER,
            teacher_view: "exo",
            student_view: "ego",
            loss: d.loss,
            pairing: d.pairing,
            pairs_fraction: d.pairs_fraction,
            drop_rate: d.drop_rate,
            // The study's networks are C2F-TCNs: all six heads.
            levels: d.levels.unwrap_or_else(|| DEFAULT_LEVELS.to_vec()),
            held_out: true,
        }
    }
}

/// A run and the test splits its model is scored on.
#[derive(Debug, Clone)]
pub struct Cell {
    /// File-name-safe and stable: results are cached under it.
    pub id: String,
    pub job: Job,
    pub test_views: &'static [&'static str],
}

pub const EXO_TEACHER: &str = "exo-teacher";
pub const EGO_ORACLE: &str = "ego-oracle";
pub const SYNC: &str = "sync-mse";

/// Pair fractions of Table 4 besides 0 (no adaptation) and 1 (the method).
/// The small preset has 16 adaptation pairs, so 0.1 is 2 pairs.
pub const FRACTIONS: [f64; 4] = [0.1, 0.25, 0.5, 0.75];
/// Drop rates of Table 5: the paper's 0.5–3 % and two far larger ones, to
/// find where the method breaks on videos of a few hundred frames.
pub const DROP_RATES: [f64; 5] = [0.005, 0.015, 0.03, 0.1, 0.25];

fn distill(id: impl Into<String>, job: DistillJob) -> Cell {
    let test_views: &'static [&'static str] = if job.student_view == "exo" {
        &["exo"]
    } else {
        &["ego"]
    };
    Cell {
        id: id.into(),
        job: Job::Distill(job),
        test_views,
    }
}

/// Every cell, teachers first.
pub fn cells() -> Vec<Cell> {
    let m = DistillJob::method;
    let mut cells = vec![
        Cell {
            id: EXO_TEACHER.into(),
            job: Job::Train { view: "exo" },
            test_views: &["exo", "ego"],
        },
        Cell {
            id: EGO_ORACLE.into(),
            job: Job::Train { view: "ego" },
            test_views: &["ego", "exo"],
        },
        distill(SYNC, m()),
    ];
    // Table 3: the UDA losses see random exo/ego videos (and the labelled
    // exo training set); the alignment losses random or same-procedure pairs.
    for loss in [AdaptLoss::Mmd, AdaptLoss::Coral, AdaptLoss::Grl] {
        cells.push(distill(
            loss.name(),
            DistillJob {
                loss,
                pairing: Pairing::Random,
                ..m()
            },
        ));
    }
    for loss in [AdaptLoss::Tcc, AdaptLoss::Sdtw] {
        cells.push(distill(
            loss.name(),
            DistillJob {
                loss,
                pairing: Pairing::Random,
                ..m()
            },
        ));
        cells.push(distill(
            format!("{}-same-procedure", loss.name()),
            DistillJob {
                loss,
                pairing: Pairing::SameProcedure,
                held_out: false,
                ..m()
            },
        ));
    }
    cells.push(distill(
        "random-mse",
        DistillJob {
            pairing: Pairing::Random,
            ..m()
        },
    ));
    // Table 4 and 5.
    for f in FRACTIONS {
        cells.push(distill(
            fraction_id(f),
            DistillJob {
                pairs_fraction: f,
                ..m()
            },
        ));
    }
    for p in DROP_RATES {
        cells.push(distill(
            drop_id(p),
            DistillJob {
                drop_rate: p,
                ..m()
            },
        ));
    }
    // Table 6: the ego oracle as the teacher of an exo student.
    cells.push(distill(
        "reverse-ego-to-exo",
        DistillJob {
            teacher: EGO_ORACLE,
            teacher_view: "ego",
            student_view: "exo",
            ..m()
        },
    ));
    // Supplementary Table 1: the heads distilled, from full resolution up.
    for k in 1..DEFAULT_LEVELS.len() {
        cells.push(distill(
            levels_id(k),
            DistillJob {
                levels: (0..k).collect(),
                ..m()
            },
        ));
    }
    cells
}

pub fn fraction_id(f: f64) -> String {
    format!("pairs-{:03}", (f * 100.0).round() as u32)
}

pub fn drop_id(p: f64) -> String {
    format!("drop-{:04}", (p * 1000.0).round() as u32)
}

pub fn levels_id(k: usize) -> String {
    format!("levels-0-{}", k - 1)
}

/// One line of a table: a label and the (cell, test split) it reads.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub cell: String,
    pub test_view: &'static str,
    /// The abscissa of the plotted tables (fraction, drop rate).
    pub x: Option<f64>,
}

/// A table of the report.
#[derive(Debug, Clone)]
pub struct Table {
    pub id: &'static str,
    pub title: &'static str,
    pub lines: Vec<Line>,
}

fn line(label: impl Into<String>, cell: &str, test_view: &'static str) -> Line {
    Line {
        label: label.into(),
        cell: cell.to_string(),
        test_view,
        x: None,
    }
}

fn at(mut l: Line, x: f64) -> Line {
    l.x = Some(x);
    l
}

/// The paper's tables over the cells.
pub fn tables() -> Vec<Table> {
    let no_adapt = || line("No adaptation", EXO_TEACHER, "ego");
    let sync = || line("Sync. (ours)", SYNC, "ego");
    let mut t3 = vec![no_adapt()];
    for (label, id) in [
        ("MMD", "mmd"),
        ("DCORAL", "coral"),
        ("GRL", "grl"),
        ("TCC", "tcc"),
        ("SDTW", "sdtw"),
        ("TCC*", "tcc-same-procedure"),
        ("SDTW*", "sdtw-same-procedure"),
        ("Rnd. MSE", "random-mse"),
    ] {
        t3.push(line(label, id, "ego"));
    }
    t3.push(sync());

    let mut t4 = vec![at(no_adapt(), 0.0)];
    for f in FRACTIONS {
        t4.push(at(
            line(
                format!("{:.0}% of pairs", f * 100.0),
                &fraction_id(f),
                "ego",
            ),
            f,
        ));
    }
    t4.push(at(line("100% of pairs", SYNC, "ego"), 1.0));

    let mut t5 = vec![at(line("No drop", SYNC, "ego"), 0.0)];
    for p in DROP_RATES {
        t5.push(at(
            line(format!("{:.1}% dropped", p * 100.0), &drop_id(p), "ego"),
            p,
        ));
    }
    t5.push(no_adapt());

    let t6 = vec![
        line("EXO → EXO (exo oracle)", EXO_TEACHER, "exo"),
        line("EGO → EGO (ego oracle)", EGO_ORACLE, "ego"),
        line("EXO → EGO, no adaptation", EXO_TEACHER, "ego"),
        line("EXO → EGO, distilled", SYNC, "ego"),
        line("EGO → EXO, no adaptation", EGO_ORACLE, "exo"),
        line("EGO → EXO, distilled", "reverse-ego-to-exo", "exo"),
    ];

    let mut s1: Vec<Line> = (1..DEFAULT_LEVELS.len())
        .map(|k| line(levels_label(k), &levels_id(k), "ego"))
        .collect();
    s1.push(line(levels_label(DEFAULT_LEVELS.len()), SYNC, "ego"));

    vec![
        Table {
            id: "table3",
            title: "Table 3: adaptation losses (exo → ego; * = pairs of the same procedure)",
            lines: t3,
        },
        Table {
            id: "table4",
            title: "Table 4: amount of unlabeled synchronized pairs",
            lines: t4,
        },
        Table {
            id: "table5",
            title: "Table 5: frames dropped independently from each view",
            lines: t5,
        },
        Table {
            id: "table6",
            title: "Table 6: both directions (an ego teacher distilled into an exo student)",
            lines: t6,
        },
        Table {
            id: "supp-table1",
            title: "Supplementary Table 1: heads distilled (0 = full resolution … 5 = T/32)",
            lines: s1,
        },
    ]
}

fn levels_label(k: usize) -> String {
    if k == 1 {
        "head 0".into()
    } else {
        format!("heads 0–{}", k - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_a_cell_that_scores_its_split() {
        let cells = cells();
        for t in tables() {
            for l in &t.lines {
                let c = cells
                    .iter()
                    .find(|c| c.id == l.cell)
                    .unwrap_or_else(|| panic!("{}: no cell {}", t.id, l.cell));
                assert!(c.test_views.contains(&l.test_view), "{} {}", t.id, l.cell);
            }
        }
    }

    #[test]
    fn cell_ids_are_unique_and_teachers_come_first() {
        let cells = cells();
        let mut ids: Vec<&str> = cells.iter().map(|c| c.id.as_str()).collect();
        for (i, c) in cells.iter().enumerate() {
            if let Job::Distill(d) = &c.job {
                let t = cells.iter().position(|c| c.id == d.teacher).unwrap();
                assert!(t < i, "{} before its teacher", c.id);
            }
        }
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), cells.len());
    }
}
