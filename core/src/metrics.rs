//! Temporal action segmentation metrics, exactly as MS-TCN's `eval.py`
//! (`yabufarha/ms-tcn`), the evaluation reused across the TAS literature.
//!
//! # Definitions
//!
//! Per video, ground truth `g` and prediction `p` are frame label sequences
//! of equal length `T`. Segments are maximal runs with background runs
//! removed ([`segments_without`]; the last segment ends at `T`, exclusive):
//! `Y` for the ground truth, `P` for the prediction.
//!
//! * **Edit** (per video) = `(1 − Lev(P, Y) / max(|P|, |Y|)) · 100`, where
//!   `Lev` is the Levenshtein distance between the segment *label*
//!   sequences; the reported Edit is the mean over videos.
//! * **F1@τ**, τ ∈ {0.10, 0.25, 0.50}. For each predicted segment `p_j`, in
//!   order, against every ground-truth segment `y_k`:
//!   `IoU_k = (min(e_j, e_k) − max(s_j, s_k)) / (max(e_j, e_k) − min(s_j, s_k))`
//!   if the labels are equal, else `0` (eval.py multiplies by the label
//!   equality, so the argmax runs over *all* ground-truth segments; a
//!   disjoint same-label segment has a negative IoU). `k* = argmax_k IoU_k`,
//!   the **first** maximum on ties. If `IoU_k* ≥ τ` and `y_k*` is not yet hit,
//!   `p_j` is a true positive and `y_k*` becomes hit; otherwise `p_j` is a
//!   false positive — there is no search for a second-best segment.
//!   `fn = |Y| − #hit`. `tp`, `fp`, `fn` are **summed over all videos**, then
//!   `precision = tp/(tp+fp)`, `recall = tp/(tp+fn)`,
//!   `F1 = 2·precision·recall/(precision+recall) · 100`.
//! * **MoF** = `100 · Σ correct frames / Σ frames` over all videos;
//!   background frames count (they are only removed from segment lists).
//!
//! # Background
//!
//! [`EvalOptions::background`] lists the label ids whose runs are left out
//! of the segment lists (ms-tcn: `["background"]`). With
//! [`EvalOptions::drop_background_frames`] the sync paper's release protocol
//! (and LTContext's masking) is used instead: frames whose *ground truth* is
//! background are first deleted from both sequences, which merges
//! same-label segments that background separated, and the remaining frames
//! are evaluated with no background label at all — a prediction of a
//! background id on an action frame is then an ordinary (false) segment —
//! and MoF is taken over the remaining frames only.
//!
//! # Edge cases
//!
//! eval.py raises or returns NaN on several of these; syncseg defines them
//! so that no input panics or yields NaN, every value is in `[0, 100]`, and
//! a perfect prediction scores 100 on every metric whenever at least one
//! video was added. "Vacuous" means there is nothing to find and nothing was
//! claimed, which a perfect prediction must not be penalised for.
//!
//! | case | eval.py | syncseg |
//! |---|---|---|
//! | video with 0 frames (also: all frames deleted by `drop_background_frames`) | `IndexError` | counts as a video: both segment lists empty, so Edit 100; adds nothing to tp/fp/fn or frames |
//! | `P` and `Y` both empty (e.g. all background on both sides) | Edit 0/0 = NaN | Edit 100 (vacuous) |
//! | exactly one of `P`, `Y` empty | Edit 0 | Edit 0 (same) |
//! | `Y` empty, `P` not | `argmax` of empty raises | every predicted segment is a false positive |
//! | `tp + fp + fn = 0` summed over all videos | 0/0 → NaN → 0 | F1 100 (vacuous) |
//! | `tp = 0`, `fp + fn > 0` | NaN → 0 | F1 0 (same) |
//! | 0 frames over all videos | `ZeroDivisionError` | MoF 100 (vacuous) |
//! | no video added | `ZeroDivisionError` | every score 0 and `videos = 0`: an empty evaluation must never look like a success; callers should reject it |
//! | `gt.len() != pred.len()` | `IndexError` if the prediction is shorter; its tail ignored if longer | [`Error::Invalid`] naming both lengths |
//!
//! Differences from other code bases (see `tas-reference.md` §4.2):
//! MS-TCN++/ASFormer/DiffAct end the last segment at `i`, not `i + 1`; this
//! module follows ms-tcn.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::segments::{segments_without, Segment};

/// The IoU thresholds τ of F1@τ, in the order of [`Scores::f1_10`],
/// [`Scores::f1_25`], [`Scores::f1_50`] and of every `[Counts; 3]`.
pub const OVERLAPS: [f64; 3] = [0.10, 0.25, 0.50];

/// Which labels are background and how they are treated.
///
/// The default has no background label: every run is a segment, which is
/// what ms-tcn does on datasets without a `"background"` class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Label ids whose runs are removed from segment lists (not from MoF,
    /// unless `drop_background_frames`).
    pub background: Vec<u32>,
    /// Delete frames whose ground truth is background from both sequences
    /// before anything else, then evaluate with no background label (the
    /// sync paper's release protocol; MoF over the remaining frames).
    pub drop_background_frames: bool,
}

impl EvalOptions {
    /// The standard ms-tcn protocol with `background` as background labels.
    pub fn with_background(background: impl Into<Vec<u32>>) -> Self {
        EvalOptions {
            background: background.into(),
            drop_background_frames: false,
        }
    }
}

/// True positives, false positives and false negatives of F1@τ.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Predicted segments that hit a ground-truth segment not hit before.
    pub tp: u64,
    /// Predicted segments that did not.
    pub fp: u64,
    /// Ground-truth segments never hit.
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl Counts {
    /// F1·100 from these counts, as eval.py computes it
    /// (`2·p·r/(p+r)·100`), with `tp+fp+fn = 0` → 100 (vacuous) and
    /// `tp = 0` otherwise → 0 (eval.py's NaN → 0).
    pub fn f1(&self) -> f64 {
        if self.tp + self.fp + self.fn_ == 0 {
            return 100.0;
        }
        if self.tp == 0 {
            return 0.0;
        }
        // Same operations in the same order as eval.py, so the values agree
        // to the last bit rather than to rounding.
        let tp = self.tp as f64;
        let precision = tp / (tp + self.fp as f64);
        let recall = tp / (tp + self.fn_ as f64);
        2.0 * (precision * recall) / (precision + recall) * 100.0
    }

    fn add(&mut self, other: Counts) {
        self.tp += other.tp;
        self.fp += other.fp;
        self.fn_ += other.fn_;
    }
}

/// Levenshtein distance (unit-cost insert, delete, substitute) between two
/// label sequences, in `O(|a|·|b|)` time and `O(|b|)` memory.
pub fn levenshtein(a: &[u32], b: &[u32]) -> usize {
    // prev[j] = distance between a[..i-1] and b[..j]; cur is row i.
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, &x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j]
            } else {
                1 + prev[j].min(prev[j + 1]).min(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Edit score of one video, `(1 − Lev/max(|P|,|Y|))·100` on the segment
/// labels; 100 when both lists are empty (vacuous).
pub fn edit_score(gt: &[Segment], pred: &[Segment]) -> f64 {
    let longest = gt.len().max(pred.len());
    if longest == 0 {
        return 100.0;
    }
    let y: Vec<u32> = gt.iter().map(|s| s.label).collect();
    let p: Vec<u32> = pred.iter().map(|s| s.label).collect();
    (1.0 - levenshtein(&p, &y) as f64 / longest as f64) * 100.0
}

/// eval.py's IoU of a predicted and a ground-truth segment: signed (negative
/// when disjoint) and 0 for different labels. A zero union (two empty
/// segments, which this crate never builds) gives 0 rather than NaN.
fn iou(p: &Segment, y: &Segment) -> f64 {
    if p.label != y.label {
        return 0.0;
    }
    let inter = p.end.min(y.end) as i64 - p.start.max(y.start) as i64;
    let union = p.end.max(y.end) as i64 - p.start.min(y.start) as i64;
    if union <= 0 {
        return 0.0;
    }
    inter as f64 / union as f64
}

/// eval.py's `f_score` for one video at threshold `overlap`: greedy, in the
/// order of `pred`, each predicted segment takes the first ground-truth
/// segment of maximal IoU and is a hit only if that IoU is ≥ `overlap` and
/// the segment was not hit before. With no ground-truth segment every
/// predicted segment is a false positive.
pub fn f1_counts(gt: &[Segment], pred: &[Segment], overlap: f64) -> Counts {
    let mut hit = vec![false; gt.len()];
    let mut counts = Counts::default();
    for p in pred {
        // First maximum, as numpy's argmax: replace only on strictly greater.
        let mut best: Option<(usize, f64)> = None;
        for (k, y) in gt.iter().enumerate() {
            let v = iou(p, y);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((k, v));
            }
        }
        match best {
            Some((k, v)) if v >= overlap && !hit[k] => {
                hit[k] = true;
                counts.tp += 1;
            }
            _ => counts.fp += 1,
        }
    }
    counts.fn_ = hit.iter().filter(|h| !**h).count() as u64;
    counts
}

/// Scores of one video, and the raw counts that [`Evaluator`] sums.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VideoScores {
    /// Edit score of this video.
    pub edit: f64,
    /// F1@0.10 of this video alone.
    pub f1_10: f64,
    /// F1@0.25 of this video alone.
    pub f1_25: f64,
    /// F1@0.50 of this video alone.
    pub f1_50: f64,
    /// Frame accuracy of this video (100 if it has no frame).
    pub mof: f64,
    /// tp/fp/fn at each τ of [`OVERLAPS`].
    pub counts: [Counts; 3],
    /// Frames where prediction equals ground truth.
    pub correct: u64,
    /// Frames evaluated (after deleting background frames if asked).
    pub frames: u64,
}

impl VideoScores {
    /// Scores `pred` against `gt` under `opts`.
    ///
    /// Fails with [`Error::Invalid`] if the lengths differ; the message names
    /// both, and the caller is expected to add the video's name.
    pub fn compute(gt: &[u32], pred: &[u32], opts: &EvalOptions) -> Result<Self> {
        if gt.len() != pred.len() {
            return Err(Error::invalid(format!(
                "ground truth has {} frames but the prediction has {}",
                gt.len(),
                pred.len()
            )));
        }
        let (gt, pred, background): (Cow<[u32]>, Cow<[u32]>, &[u32]) =
            if opts.drop_background_frames && !opts.background.is_empty() {
                let (g, p): (Vec<u32>, Vec<u32>) = gt
                    .iter()
                    .zip(pred)
                    .filter(|(g, _)| !opts.background.contains(g))
                    .unzip();
                (Cow::Owned(g), Cow::Owned(p), &[])
            } else {
                (Cow::Borrowed(gt), Cow::Borrowed(pred), &opts.background)
            };
        let y = segments_without(&gt, background);
        let p = segments_without(&pred, background);
        let counts = OVERLAPS.map(|t| f1_counts(&y, &p, t));
        let correct = gt.iter().zip(pred.iter()).filter(|(a, b)| a == b).count() as u64;
        let frames = gt.len() as u64;
        Ok(VideoScores {
            edit: edit_score(&y, &p),
            f1_10: counts[0].f1(),
            f1_25: counts[1].f1(),
            f1_50: counts[2].f1(),
            mof: mof(correct, frames),
            counts,
            correct,
            frames,
        })
    }
}

/// `100·correct/frames` in eval.py's order of operations; 100 for 0 frames.
fn mof(correct: u64, frames: u64) -> f64 {
    if frames == 0 {
        100.0
    } else {
        100.0 * correct as f64 / frames as f64
    }
}

/// The scores of a set of videos, as ms-tcn's eval.py prints them (all ·100).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean per-video Edit score.
    pub edit: f64,
    /// F1@0.10 from tp/fp/fn summed over videos.
    pub f1_10: f64,
    /// F1@0.25 from tp/fp/fn summed over videos.
    pub f1_25: f64,
    /// F1@0.50 from tp/fp/fn summed over videos.
    pub f1_50: f64,
    /// Correct frames over all frames of all videos.
    pub mof: f64,
    /// Number of videos evaluated; 0 means nothing was (all scores are 0).
    pub videos: usize,
}

/// Accumulates videos one at a time and reports [`Scores`] for all of them.
#[derive(Debug, Clone)]
pub struct Evaluator {
    opts: EvalOptions,
    counts: [Counts; 3],
    edit_sum: f64,
    correct: u64,
    total: u64,
    videos: usize,
}

impl Evaluator {
    /// An evaluator with no video yet.
    pub fn new(opts: EvalOptions) -> Self {
        Evaluator {
            opts,
            counts: [Counts::default(); 3],
            edit_sum: 0.0,
            correct: 0,
            total: 0,
            videos: 0,
        }
    }

    /// The options this evaluator applies to every video.
    pub fn options(&self) -> &EvalOptions {
        &self.opts
    }

    /// Adds one video. Fails, adding nothing, if the lengths differ.
    pub fn add_video(&mut self, gt: &[u32], pred: &[u32]) -> Result<()> {
        self.add_video_scored(gt, pred).map(|_| ())
    }

    /// Adds one video and returns its own scores (for per-video reports).
    pub fn add_video_scored(&mut self, gt: &[u32], pred: &[u32]) -> Result<VideoScores> {
        let v = VideoScores::compute(gt, pred, &self.opts)?;
        for (acc, c) in self.counts.iter_mut().zip(v.counts) {
            acc.add(c);
        }
        self.edit_sum += v.edit;
        self.correct += v.correct;
        self.total += v.frames;
        self.videos += 1;
        Ok(v)
    }

    /// tp/fp/fn summed so far, at each τ of [`OVERLAPS`].
    pub fn counts(&self) -> [Counts; 3] {
        self.counts
    }

    /// The scores of the videos added so far (all 0 if none was).
    pub fn finish(&self) -> Scores {
        if self.videos == 0 {
            return Scores {
                edit: 0.0,
                f1_10: 0.0,
                f1_25: 0.0,
                f1_50: 0.0,
                mof: 0.0,
                videos: 0,
            };
        }
        Scores {
            edit: self.edit_sum / self.videos as f64,
            f1_10: self.counts[0].f1(),
            f1_25: self.counts[1].f1(),
            f1_50: self.counts[2].f1(),
            mof: mof(self.correct, self.total),
            videos: self.videos,
        }
    }
}

/// Evaluates `(ground truth, prediction)` pairs in one call; see
/// [`Evaluator`]. Fails on the first pair whose lengths differ.
pub fn evaluate<'a>(
    videos: impl IntoIterator<Item = (&'a [u32], &'a [u32])>,
    opts: &EvalOptions,
) -> Result<Scores> {
    let mut ev = Evaluator::new(opts.clone());
    for (gt, pred) in videos {
        ev.add_video(gt, pred)?;
    }
    Ok(ev.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Hand-computed expectations are written as fractions (e.g. 200/3),
    /// and serde_json's default float parser can be 1 ulp off, so values are
    /// compared up to rounding. (The Python reference computes with the same
    /// operations in the same order; its printed values equal ours exactly.)
    const EPS: f64 = 1e-9;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < EPS
    }

    /// Asserts Edit, F1@{10,25,50}, MoF (in that order) up to rounding.
    fn assert_scores(s: &Scores, expected: [f64; 5]) {
        let got = [s.edit, s.f1_10, s.f1_25, s.f1_50, s.mof];
        for (g, e) in got.iter().zip(expected) {
            assert!(close(*g, e), "got {got:?}, expected {expected:?}");
        }
    }

    fn one(gt: &[u32], pred: &[u32], opts: &EvalOptions) -> Scores {
        evaluate([(gt, pred)], opts).unwrap()
    }

    fn c(tp: u64, fp: u64, fn_: u64) -> Counts {
        Counts { tp, fp, fn_ }
    }

    #[test]
    fn levenshtein_known_values() {
        // kitten → sitting: k→s, e→i, +g = 3.
        let kitten = [10, 8, 19, 19, 4, 13];
        let sitting = [18, 8, 19, 19, 8, 13, 6];
        assert_eq!(levenshtein(&kitten, &sitting), 3);
        assert_eq!(levenshtein(&sitting, &kitten), 3);
        assert_eq!(levenshtein(&[], &[1, 2, 3]), 3);
        assert_eq!(levenshtein(&[1, 2], &[]), 2);
        assert_eq!(levenshtein(&[], &[]), 0);
        assert_eq!(levenshtein(&[1, 2], &[2, 1]), 2);
    }

    #[test]
    fn iou_tie_takes_first_gt_segment() {
        // gt   = A A B A A A A A A   Y = A[0,2) B[2,3) A[3,9)
        // pred = A A A A A A C A A   P = A[0,6) C[6,7) A[7,9)
        // P1=A[0,6): IoU(A[0,2)) = 2/6 = 1/3, IoU(B) = 0 (label),
        //            IoU(A[3,9)) = 3/9 = 1/3 → tie; the first (A[0,2)) is
        //            taken, a hit at τ = .1, .25.
        // P2=C[6,7): no C in gt → all IoU 0 → FP.
        // P3=A[7,9): IoU(A[0,2)) = (2−7)/9 < 0, IoU(A[3,9)) = 2/6 = 1/3 →
        //            A[3,9), not yet hit → TP. (Had the tie gone to A[3,9),
        //            P3 would be an FP and A[0,2) an FN: F1 = 33.3.)
        // τ=.1,.25: tp 2, fp 1, fn 1 → p = r = 2/3 → F1 = 66.67.
        // τ=.5: every IoU ≤ 1/3 → tp 0 → F1 0.
        // Edit: [A C A] vs [A B A] → 1 substitution → (1 − 1/3)·100.
        // MoF: wrong at frames 2 and 6 → 7/9.
        let (a, b, cc) = (1, 2, 3);
        let gt = [a, a, b, a, a, a, a, a, a];
        let pred = [a, a, a, a, a, a, cc, a, a];
        let opts = EvalOptions::default();
        let v = VideoScores::compute(&gt, &pred, &opts).unwrap();
        assert_eq!(v.counts, [c(2, 1, 1), c(2, 1, 1), c(0, 3, 3)]);
        let s = one(&gt, &pred, &opts);
        assert_scores(
            &s,
            [200.0 / 3.0, 200.0 / 3.0, 200.0 / 3.0, 0.0, 700.0 / 9.0],
        );
    }

    #[test]
    fn simple_tie_leaves_second_as_false_negative() {
        // gt = 1 1 2 2 1 1, pred = 1×6: IoU 2/6 with both 1-segments, the
        // first is hit, the second and the 2-segment stay FN.
        let v =
            VideoScores::compute(&[1, 1, 2, 2, 1, 1], &[1; 6], &EvalOptions::default()).unwrap();
        assert_eq!(v.counts[0], c(1, 0, 2));
        assert_eq!(v.counts[2], c(0, 1, 3));
    }

    #[test]
    fn second_match_of_same_gt_segment_is_false_positive() {
        // gt = 1×10 → Y = 1[0,10). pred = 1 1 1 1 1 3 1 1 1 1
        // → P = 1[0,5) 3[5,6) 1[6,10).
        // P1 IoU 5/10 = .5 → TP at every τ (.5 ≥ .5: boundary).
        // P2 label 3 → FP. P3 IoU 4/10 → argmax is the already hit
        // segment → FP, no second-best search.
        // tp 1, fp 2, fn 0 → p = 1/3, r = 1 → F1 = 2·(1/3)/(4/3) = 50.
        // Edit: [1 3 1] vs [1] → 2 edits / 3 → 33.33. MoF 9/10.
        let gt = [1; 10];
        let pred = [1, 1, 1, 1, 1, 3, 1, 1, 1, 1];
        let opts = EvalOptions::default();
        let v = VideoScores::compute(&gt, &pred, &opts).unwrap();
        assert_eq!(v.counts, [c(1, 2, 0); 3]);
        assert_scores(
            &one(&gt, &pred, &opts),
            [100.0 / 3.0, 50.0, 50.0, 50.0, 90.0],
        );
    }

    #[test]
    fn background_removed_from_segments_but_counted_in_mof() {
        // gt   = 0 0 1 1 1 0 0 2 2 0
        // pred = 0 1 1 1 1 0 0 2 2 2
        let gt = [0, 0, 1, 1, 1, 0, 0, 2, 2, 0];
        let pred = [0, 1, 1, 1, 1, 0, 0, 2, 2, 2];
        // With background {0}: Y = 1[2,5) 2[7,9), P = 1[1,5) 2[7,10).
        // IoU 3/4 and 2/3 → all TP, F1 100; Edit [1 2] = [1 2] → 100.
        // MoF over all 10 frames: wrong at 1 and 9 → 80.
        let bg = EvalOptions::with_background([0]);
        assert_scores(&one(&gt, &pred, &bg), [100.0, 100.0, 100.0, 100.0, 80.0]);
        // Without background, 0-runs are segments:
        // Y = 0[0,2) 1[2,5) 0[5,7) 2[7,9) 0[9,10), P = 0[0,1) 1[1,5) 0[5,7) 2[7,10)
        // IoUs 1/2, 3/4, 1, 2/3 → 4 TP even at .5; fn = 5 − 4 = 1.
        // p = 1, r = 4/5 → F1 = 1.6/1.8 = 88.89. Edit: delete the last 0 → 1/5 → 80.
        assert_scores(
            &one(&gt, &pred, &EvalOptions::default()),
            [80.0, 800.0 / 9.0, 800.0 / 9.0, 800.0 / 9.0, 80.0],
        );
    }

    #[test]
    fn drop_background_frames_merges_and_changes_mof() {
        // gt   = 1 1 0 0 1 1 2 2
        // pred = 1 1 1 1 1 1 2 0
        let gt = [1, 1, 0, 0, 1, 1, 2, 2];
        let pred = [1, 1, 1, 1, 1, 1, 2, 0];
        // Standard, background {0}: Y = 1[0,2) 1[4,6) 2[6,8); P = 1[0,6) 2[6,7).
        // P1: IoU 2/6 with both 1-segments → first; TP at .1/.25, FP at .5.
        // P2: IoU 1/2 → TP at every τ.
        // τ .1/.25: tp 2 fp 0 fn 1 → p 1, r 2/3 → F1 = (4/3)/(5/3) = 80.
        // τ .5:     tp 1 fp 1 fn 2 → p 1/2, r 1/3 → F1 = (1/3)/(5/6) = 40.
        // Edit [1 2] vs [1 1 2] → 1/3 → 66.67. MoF wrong at 2, 3, 7 → 5/8.
        let std = EvalOptions::with_background([0]);
        assert_scores(
            &one(&gt, &pred, &std),
            [200.0 / 3.0, 80.0, 80.0, 40.0, 62.5],
        );
        // Dropping GT-background frames (2, 3): gt' = 1 1 1 1 2 2,
        // pred' = 1 1 1 1 2 0, no background any more: Y = 1[0,4) 2[4,6),
        // P = 1[0,4) 2[4,5) 0[5,6). IoU 1 → TP, IoU 1/2 → TP, label 0 → FP.
        // tp 2 fp 1 fn 0 → p 2/3, r 1 → F1 = (4/3)/(5/3) = 80 at every τ.
        // Edit [1 2 0] vs [1 2] → 1/3 → 66.67. MoF 5/6 over 6 frames.
        let drop = EvalOptions {
            background: vec![0],
            drop_background_frames: true,
        };
        let v = VideoScores::compute(&gt, &pred, &drop).unwrap();
        assert_eq!(v.frames, 6);
        assert_eq!(v.counts, [c(2, 1, 0); 3]);
        assert_scores(
            &one(&gt, &pred, &drop),
            [200.0 / 3.0, 80.0, 80.0, 80.0, 500.0 / 6.0],
        );
    }

    #[test]
    fn single_frame_segments() {
        // gt = 1 2 3 → three 1-frame segments; pred = 1 3 3 → 1[0,1) 3[1,3).
        // IoU 1 and 1/2 → tp 2, fp 0, fn 1 → p 1, r 2/3 → 80 at every τ.
        // Edit [1 3] vs [1 2 3] → 1/3 → 66.67; MoF 2/3.
        let o = EvalOptions::default();
        assert_scores(
            &one(&[1, 2, 3], &[1, 3, 3], &o),
            [200.0 / 3.0, 80.0, 80.0, 80.0, 200.0 / 3.0],
        );
        // A one-frame video, right and wrong.
        assert_scores(&one(&[5], &[5], &o), [100.0; 5]);
        assert_scores(&one(&[5], &[6], &o), [0.0; 5]);
    }

    #[test]
    fn over_segmentation_penalises_edit_and_part_of_f1() {
        // gt = 1×6; pred = 1 1 1 2 1 1 → P = 1[0,3) 2[3,4) 1[4,6).
        // P1 IoU 3/6 = .5 → TP everywhere; P2 FP; P3 IoU 2/6 but the segment
        // is taken → FP. tp 1 fp 2 fn 0 → F1 50. Edit [1 2 1] vs [1] → 33.33.
        // MoF 5/6.
        assert_scores(
            &one(&[1; 6], &[1, 1, 1, 2, 1, 1], &EvalOptions::default()),
            [100.0 / 3.0, 50.0, 50.0, 50.0, 500.0 / 6.0],
        );
    }

    #[test]
    fn swapped_labels_score_zero() {
        // gt = 1 1 2 2, pred = 2 2 1 1: no same-label overlap (IoU of
        // 2[0,2) with 2[2,4) is 0/4), Edit [2 1] vs [1 2] = 2/2 → 0, MoF 0.
        assert_scores(
            &one(&[1, 1, 2, 2], &[2, 2, 1, 1], &EvalOptions::default()),
            [0.0; 5],
        );
    }

    #[test]
    fn threshold_boundaries_are_inclusive() {
        // background {0}; gt = 1 1 1 1, pred = 1 0 0 0 → P = 1[0,1), IoU 1/4.
        // τ .1, .25: TP (.25 ≥ .25) → tp 1 fp 0 fn 0 → 100.
        // τ .5: FP and FN → 0. Edit [1] = [1] → 100. MoF 1/4.
        let bg = EvalOptions::with_background([0]);
        assert_scores(
            &one(&[1; 4], &[1, 0, 0, 0], &bg),
            [100.0, 100.0, 100.0, 0.0, 25.0],
        );
        // No background; gt = 1×4, pred = 1 1 0 0: IoU 2/4 = .5 → TP at .5;
        // 0[2,4) → FP. tp 1 fp 1 fn 0 → p 1/2, r 1 → F1 = 1/1.5 = 66.67.
        let o = EvalOptions::default();
        let v = VideoScores::compute(&[1; 4], &[1, 1, 0, 0], &o).unwrap();
        assert_eq!(v.counts[2], c(1, 1, 0));
        assert!(close(v.f1_50, 200.0 / 3.0));
    }

    #[test]
    fn f1_counts_are_summed_but_edit_averaged() {
        // Video A: perfect, 1 segment: tp 1, Edit 100, 4/4 frames.
        // Video B: gt = 1 2 3 4 4 4 (4 segments), pred = 5×6: the one predicted
        // segment is an FP, 4 FN; Edit [5] vs [1 2 3 4] → 4/4 → 0; 0/6 frames.
        // Summed: tp 1 fp 1 fn 4 → p 1/2, r 1/5 → F1 = 0.2/0.7 = 28.57
        // (averaging per-video F1 would give 50). Edit (100 + 0)/2 = 50.
        // MoF 4/10 = 40 (the per-video mean would be 50).
        let a_gt = [1; 4];
        let b_gt = [1, 2, 3, 4, 4, 4];
        let b_pred = [5; 6];
        let s = evaluate(
            [(&a_gt[..], &a_gt[..]), (&b_gt[..], &b_pred[..])],
            &EvalOptions::default(),
        )
        .unwrap();
        let f1 = 100.0 * 0.2 / 0.7;
        assert_scores(&s, [50.0, f1, f1, f1, 40.0]);
        assert_eq!(s.videos, 2);
    }

    #[test]
    fn edge_cases() {
        let o = EvalOptions::default();
        let bg = EvalOptions::with_background([0]);
        // Empty video: vacuous everywhere, and it counts as a video.
        let s = evaluate([(&[][..], &[][..])], &o).unwrap();
        assert_scores(&s, [100.0; 5]);
        assert_eq!(s.videos, 1);
        // ... so it pulls the Edit mean towards 100: (100 + 0)/2.
        let s = evaluate([(&[][..], &[][..]), (&[1, 2][..], &[2, 1][..])], &o).unwrap();
        assert!(close(s.edit, 50.0));
        // All background on both sides: nothing to find, nothing claimed.
        assert_scores(&one(&[0, 0, 0], &[0, 0, 0], &bg), [100.0; 5]);
        // GT all background, one predicted segment: Edit 0, FP only → F1 0,
        // MoF 1/3.
        assert_scores(
            &one(&[0, 0, 0], &[0, 1, 0], &bg),
            [0.0, 0.0, 0.0, 0.0, 200.0 / 3.0],
        );
        // Prediction all background: Edit 0, FN only → F1 0.
        assert_scores(&one(&[1, 1], &[0, 0], &bg), [0.0; 5]);
        // Dropping background frames can empty a video: vacuous again.
        let drop = EvalOptions {
            background: vec![0],
            drop_background_frames: true,
        };
        assert_scores(&one(&[0, 0], &[1, 1], &drop), [100.0; 5]);
        // No video at all: zeros, videos = 0.
        let s = evaluate(std::iter::empty::<(&[u32], &[u32])>(), &o).unwrap();
        assert_eq!(s.videos, 0);
        assert_scores(&s, [0.0; 5]);
    }

    #[test]
    fn length_mismatch_is_an_error_naming_both_lengths() {
        let mut ev = Evaluator::new(EvalOptions::default());
        let err = ev.add_video(&[1, 2, 3], &[1, 2]).unwrap_err().to_string();
        assert!(err.contains('3') && err.contains('2'), "{err}");
        // Nothing was added.
        assert_eq!(ev.finish().videos, 0);
    }

    #[test]
    fn scores_serialize_with_documented_field_names() {
        let s = one(&[1], &[1], &EvalOptions::default());
        let v = serde_json::to_value(s).unwrap();
        for k in ["edit", "f1_10", "f1_25", "f1_50", "mof", "videos"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        let opts: EvalOptions =
            serde_json::from_str(r#"{"background":[0],"drop_background_frames":true}"#).unwrap();
        assert!(opts.drop_background_frames);
    }

    #[derive(Deserialize)]
    struct Fixture {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        options: EvalOptions,
        videos: Vec<(Vec<u32>, Vec<u32>)>,
        expected: Scores,
        /// [tp, fp, fn] per τ.
        counts: [[u64; 3]; 3],
    }

    /// Cases generated by `core/tests/data/msTCN_eval_reference.py`, an
    /// independent Python transcription of eval.py (plus the edge-case rules
    /// above); regenerate with `python3 core/tests/data/msTCN_eval_reference.py`.
    #[test]
    fn agrees_with_python_reference() {
        let fx: Fixture =
            serde_json::from_str(include_str!("../tests/data/metrics_cases.json")).unwrap();
        assert!(fx.cases.len() >= 20);
        for case in &fx.cases {
            let mut ev = Evaluator::new(case.options.clone());
            for (g, p) in &case.videos {
                ev.add_video(g, p).unwrap();
            }
            let s = ev.finish();
            let e = &case.expected;
            let ok = s.videos == e.videos
                && close(s.edit, e.edit)
                && close(s.f1_10, e.f1_10)
                && close(s.f1_25, e.f1_25)
                && close(s.f1_50, e.f1_50)
                && close(s.mof, e.mof);
            assert!(ok, "case {}: got {s:?}, expected {e:?}", case.name);
            let counts = ev.counts().map(|c| [c.tp, c.fp, c.fn_]);
            assert_eq!(counts, case.counts, "case {}", case.name);
        }
    }

    fn all_scores(s: &Scores) -> [f64; 5] {
        [s.edit, s.f1_10, s.f1_25, s.f1_50, s.mof]
    }

    /// Label sequences with runs, so that segments are not all one frame.
    fn labels(max_len: usize) -> impl Strategy<Value = Vec<u32>> {
        proptest::collection::vec((0u32..5, 1usize..6), 0..max_len).prop_map(|runs| {
            runs.into_iter()
                .flat_map(|(l, n)| std::iter::repeat_n(l, n))
                .collect()
        })
    }

    fn options() -> impl Strategy<Value = EvalOptions> {
        (proptest::collection::vec(0u32..5, 0..3), any::<bool>()).prop_map(|(background, d)| {
            EvalOptions {
                background,
                drop_background_frames: d,
            }
        })
    }

    /// Pairs of equal length: a ground truth and a noisy copy of it.
    fn pair() -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
        labels(8).prop_flat_map(|g| {
            let n = g.len();
            (
                Just(g),
                proptest::collection::vec(prop_oneof![Just(None), (0u32..5).prop_map(Some)], n),
            )
                .prop_map(|(g, noise)| {
                    let p = g.iter().zip(&noise).map(|(&x, n)| n.unwrap_or(x)).collect();
                    (g, p)
                })
        })
    }

    fn eval_pairs(videos: &[(Vec<u32>, Vec<u32>)], opts: &EvalOptions) -> Scores {
        evaluate(videos.iter().map(|(g, p)| (&g[..], &p[..])), opts).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn perfect_prediction_scores_100(
            videos in proptest::collection::vec(labels(8), 1..4),
            opts in options(),
        ) {
            let s = evaluate(videos.iter().map(|v| (&v[..], &v[..])), &opts).unwrap();
            prop_assert_eq!(all_scores(&s), [100.0; 5]);
            prop_assert_eq!(s.videos, videos.len());
        }

        #[test]
        fn scores_are_finite_and_in_range(
            videos in proptest::collection::vec(pair(), 0..4),
            opts in options(),
        ) {
            let s = eval_pairs(&videos, &opts);
            for x in all_scores(&s) {
                prop_assert!(x.is_finite() && (0.0..=100.0).contains(&x), "{:?}", s);
            }
            prop_assert_eq!(s.videos, videos.len());
        }

        #[test]
        fn edit_and_mof_are_symmetric(
            videos in proptest::collection::vec(pair(), 1..4),
            bg in proptest::collection::vec(0u32..5, 0..3),
        ) {
            // Without frame deletion (which looks at the ground truth only)
            // swapping the roles changes neither Edit nor MoF.
            let opts = EvalOptions::with_background(bg);
            let swapped: Vec<_> = videos.iter().map(|(g, p)| (p.clone(), g.clone())).collect();
            let a = eval_pairs(&videos, &opts);
            let b = eval_pairs(&swapped, &opts);
            prop_assert_eq!(a.edit, b.edit);
            prop_assert_eq!(a.mof, b.mof);
        }

        #[test]
        fn relabelling_consistently_changes_nothing(
            videos in proptest::collection::vec(pair(), 1..4),
            opts in options(),
            perm in Just((0u32..5).collect::<Vec<_>>()).prop_shuffle(),
            offset in 0u32..1000,
        ) {
            // A bijection on label ids, applied to both sides and to the
            // background list.
            let f = |l: &u32| perm[*l as usize] * 7 + offset;
            let mapped: Vec<_> = videos
                .iter()
                .map(|(g, p)| (g.iter().map(f).collect(), p.iter().map(f).collect()))
                .collect();
            let mopts = EvalOptions {
                background: opts.background.iter().map(f).collect(),
                drop_background_frames: opts.drop_background_frames,
            };
            prop_assert_eq!(eval_pairs(&videos, &opts), eval_pairs(&mapped, &mopts));
        }
    }
}
