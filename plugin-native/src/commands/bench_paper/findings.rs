//! The paper's claims, checked against the measured tables: each states
//! what the paper found, what was measured here, and whether it holds. A
//! difference smaller than the seeds' spread is reported as such rather than
//! as a win or a loss.

use serde::Serialize;

use super::report::{LineSummary, Stat, TableSummary};

/// One claim of the paper and its outcome here.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// What the paper reports.
    pub claim: String,
    /// What was measured (Edit, mean over seeds).
    pub measured: String,
    /// holds, does not hold, within noise, or not measured.
    pub verdict: &'static str,
}

fn line<'a>(t: &'a [TableSummary], table: &str, cell: &str, view: &str) -> Option<&'a LineSummary> {
    t.iter()
        .find(|x| x.id == table)?
        .lines
        .iter()
        .find(|l| l.cell == cell && l.test_view == view && !l.seeds.is_empty())
}

fn edit(l: &LineSummary) -> Stat {
    l.stat("Edit")
}

/// "a vs b: ±d" of two Edit means.
fn versus(a: Stat, b: Stat) -> String {
    format!("{:.2} vs {:.2}: {:+.2}", a.mean, b.mean, a.mean - b.mean)
}

/// Verdict of "a > b": the difference of means against the larger std.
fn greater(a: Stat, b: Stat) -> &'static str {
    let d = a.mean - b.mean;
    let noise = a.std.max(b.std);
    if d.abs() <= noise {
        "within noise"
    } else if d > 0.0 {
        "holds"
    } else {
        "does not hold"
    }
}

/// Verdict of "a is no improvement over b", by the rule of [`greater`]:
/// refuted only by a gain beyond the noise.
fn no_improvement(a: Stat, b: Stat) -> &'static str {
    match greater(a, b) {
        "holds" => "does not hold",
        _ => "holds",
    }
}

fn not_measured(claim: &str) -> Finding {
    Finding {
        claim: claim.into(),
        measured: "–".into(),
        verdict: "not measured",
    }
}

/// Checks the paper's main findings on `tables`.
pub fn findings(tables: &[TableSummary]) -> Vec<Finding> {
    let mut out = Vec::new();
    let none = line(tables, "table3", super::plan::EXO_TEACHER, "ego");
    let sync = line(tables, "table3", super::plan::SYNC, "ego");

    // 1. Synchronized distillation beats every baseline of Table 3.
    let claim = "Synchronized TAS distillation beats every adaptation baseline (Table 3: +10.75 Edit over the second best)";
    let baselines: Vec<&LineSummary> = tables
        .iter()
        .find(|t| t.id == "table3")
        .map(|t| {
            t.lines
                .iter()
                .filter(|l| {
                    l.cell != super::plan::SYNC
                        && l.cell != super::plan::EXO_TEACHER
                        && !l.seeds.is_empty()
                })
                .collect()
        })
        .unwrap_or_default();
    match (
        sync,
        baselines
            .iter()
            .max_by(|a, b| edit(a).mean.total_cmp(&edit(b).mean)),
    ) {
        (Some(s), Some(best)) => out.push(Finding {
            claim: claim.into(),
            measured: format!(
                "{:.2} vs {:.2} ({}): {:+.2}",
                edit(s).mean,
                edit(best).mean,
                best.label,
                edit(s).mean - edit(best).mean
            ),
            verdict: greater(edit(s), edit(best)),
        }),
        _ => out.push(not_measured(claim)),
    }

    // 2. The UDA losses improve over no adaptation.
    for (label, cell, paper) in [
        ("MMD", "mmd", "+4.38"),
        ("DCORAL", "coral", "+4.53"),
        ("GRL", "grl", "+3.97"),
    ] {
        let claim = format!("{label} improves over no adaptation (Table 3: {paper} Edit)");
        match (line(tables, "table3", cell, "ego"), none) {
            (Some(a), Some(n)) => out.push(Finding {
                measured: versus(edit(a), edit(n)),
                verdict: greater(edit(a), edit(n)),
                claim,
            }),
            _ => out.push(not_measured(&claim)),
        }
    }

    // 3. Same-procedure pairs help the alignment losses.
    for (label, cell, paper) in [
        ("TCC", "tcc", "17.84 vs 16.03"),
        ("SDTW", "sdtw", "15.27 vs 13.82"),
    ] {
        let claim = format!("{label} does better on same-procedure pairs than on random ones (Table 3: {paper} Edit)");
        let same = line(tables, "table3", &format!("{cell}-same-procedure"), "ego");
        match (same, line(tables, "table3", cell, "ego")) {
            (Some(s), Some(r)) => out.push(Finding {
                measured: format!("{:.2} vs {:.2}", edit(s).mean, edit(r).mean),
                verdict: greater(edit(s), edit(r)),
                claim,
            }),
            _ => out.push(not_measured(&claim)),
        }
    }

    // 4. Random pairs do not help: judged by the same noise rule as every
    // comparison (an improvement beyond the spread refutes it).
    let claim = "Distillation on random pairs (Rnd. MSE) brings no systematic improvement (Table 3: 13.27 vs 12.60 Edit)";
    match (line(tables, "table3", "random-mse", "ego"), none) {
        (Some(r), Some(n)) => out.push(Finding {
            claim: claim.into(),
            measured: versus(edit(r), edit(n)),
            verdict: no_improvement(edit(r), edit(n)),
        }),
        _ => out.push(not_measured(claim)),
    }

    // 5. Half the pairs give most of the gain.
    let claim = "Half of the pairs recover most of the gain (Table 4: 25.06 of 28.59 Edit, 84% of the gain)";
    let half = line(tables, "table4", &super::plan::fraction_id(0.5), "ego");
    match (half, none, sync) {
        (Some(h), Some(n), Some(s)) => {
            let share = (edit(h).mean - edit(n).mean) / (edit(s).mean - edit(n).mean).max(1e-9);
            out.push(Finding {
                claim: claim.into(),
                measured: format!(
                    "{:.2} of {:.2} Edit: {:.0}% of the gain",
                    edit(h).mean,
                    edit(s).mean,
                    100.0 * share
                ),
                verdict: if share >= 0.5 {
                    "holds"
                } else {
                    "does not hold"
                },
            });
        }
        _ => out.push(not_measured(claim)),
    }

    // 6. Small drop rates keep most of the gain, and 3 % still beats no adaptation.
    let claim = "With 3% of the frames dropped the method still beats no adaptation (Table 5: 22.19 vs 12.60 Edit)";
    match (
        line(tables, "table5", &super::plan::drop_id(0.03), "ego"),
        none,
    ) {
        (Some(d), Some(n)) => out.push(Finding {
            claim: claim.into(),
            measured: format!("{:.2} vs {:.2}", edit(d).mean, edit(n).mean),
            verdict: greater(edit(d), edit(n)),
        }),
        _ => out.push(not_measured(claim)),
    }

    // 7. The reverse direction.
    let claim = "An ego teacher distilled into an exo student improves over no adaptation (Table 6: +4.44 Edit)";
    let rev = line(tables, "table6", "reverse-ego-to-exo", "exo");
    match (rev, line(tables, "table6", super::plan::EGO_ORACLE, "exo")) {
        (Some(r), Some(n)) => out.push(Finding {
            claim: claim.into(),
            measured: versus(edit(r), edit(n)),
            verdict: greater(edit(r), edit(n)),
        }),
        _ => out.push(not_measured(claim)),
    }

    // 8. All heads.
    let claim =
        "Distilling every head is best (supplementary Table 1: 28.59 Edit vs 23.45 for one head)";
    let levels = tables.iter().find(|t| t.id == "supp-table1");
    match levels.map(|t| {
        t.lines
            .iter()
            .filter(|l| !l.seeds.is_empty())
            .collect::<Vec<_>>()
    }) {
        Some(ls) if ls.len() >= 2 => {
            let all = ls.last().expect("two or more");
            let best_other = ls[..ls.len() - 1]
                .iter()
                .max_by(|a, b| edit(a).mean.total_cmp(&edit(b).mean))
                .expect("one or more");
            out.push(Finding {
                claim: claim.into(),
                measured: format!(
                    "{:.2} vs {:.2} ({}); one head {:.2}",
                    edit(all).mean,
                    edit(best_other).mean,
                    best_other.label,
                    edit(ls[0]).mean
                ),
                verdict: greater(edit(all), edit(best_other)),
            });
        }
        _ => out.push(not_measured(claim)),
    }
    out
}

/// The findings as a markdown table.
pub fn findings_markdown(findings: &[Finding]) -> String {
    let mut out =
        String::from("| The paper's finding | Measured here (Edit) | Verdict |\n|---|---|---|\n");
    for f in findings {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            f.claim, f.measured, f.verdict
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mean: f64, std: f64) -> Stat {
        Stat { mean, std }
    }

    #[test]
    fn a_difference_inside_the_spread_is_noise() {
        assert_eq!(greater(stat(20.0, 1.0), stat(10.0, 2.0)), "holds");
        assert_eq!(greater(stat(10.0, 1.0), stat(20.0, 2.0)), "does not hold");
        assert_eq!(greater(stat(10.5, 1.0), stat(10.0, 0.2)), "within noise");
    }

    #[test]
    fn no_improvement_follows_the_common_noise_rule() {
        // The small benchmark's Rnd. MSE vs no adaptation (3 seeds): +6.20
        // against a larger std of 4.89 is an improvement.
        assert_eq!(
            no_improvement(stat(25.61, 4.89), stat(19.41, 1.50)),
            "does not hold"
        );
        assert_eq!(no_improvement(stat(20.0, 4.89), stat(19.41, 1.50)), "holds");
        assert_eq!(no_improvement(stat(10.0, 1.0), stat(19.41, 1.50)), "holds");
    }

    #[test]
    fn nothing_measured_is_said_so() {
        let f = findings(&[]);
        assert!(f.len() >= 8);
        assert!(f.iter().all(|f| f.verdict == "not measured"));
    }
}
