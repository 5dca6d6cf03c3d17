//! Frame labels ↔ action segments.
//!
//! A *segment* is a maximal run of one label: `start..end`, `end` exclusive.
//! [`segments_without`] is MS-TCN's `get_labels_start_end_time`
//! (`yabufarha/ms-tcn`, `eval.py`): the runs of a label sequence with the
//! runs of background labels left out. Its last segment ends at the sequence
//! length (eval.py's `i + 1`), as in ms-tcn, C2F-TCN, Assembly101 and the
//! sync paper's release; MS-TCN++/ASFormer/DiffAct end it one frame early,
//! which syncseg does not reproduce.

use serde::{Deserialize, Serialize};

/// One action segment: frames `start..end` (end exclusive) all carry `label`.
///
/// Segments built by this module are never empty (`start < end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Segment {
    /// The class id shared by every frame of the segment.
    pub label: u32,
    /// First frame of the segment.
    pub start: usize,
    /// One past the last frame of the segment.
    pub end: usize,
}

impl Segment {
    /// Number of frames in the segment (0 if `end <= start`).
    pub fn len(&self) -> usize {
        self.end.saturating_sub(self.start)
    }

    /// Whether the segment covers no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The maximal runs of `labels`, in order; empty for an empty sequence.
///
/// The segments tile `0..labels.len()` and neighbours differ in label.
pub fn segments_of(labels: &[u32]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=labels.len() {
        // A run ends at the end of the sequence or where the label changes.
        if i == labels.len() || labels[i] != labels[start] {
            out.push(Segment {
                label: labels[start],
                start,
                end: i,
            });
            start = i;
        }
    }
    out
}

/// The maximal runs of `labels` whose label is not in `background`, in order.
///
/// Equal to MS-TCN's `get_labels_start_end_time(labels, bg_class)`: runs are
/// cut on the raw labels first, so two runs of one action separated by
/// background stay two segments (deleting background *frames* first, which
/// merges them, is [`crate::metrics::EvalOptions::drop_background_frames`]).
pub fn segments_without(labels: &[u32], background: &[u32]) -> Vec<Segment> {
    let mut segs = segments_of(labels);
    segs.retain(|s| !background.contains(&s.label));
    segs
}

/// The per-frame labels of `segments` over `len` frames: `Some(label)` where a
/// segment covers the frame, `None` elsewhere (e.g. where background was
/// removed). Later segments win where segments overlap; the parts of segments
/// beyond `len` are ignored.
pub fn frames_of(segments: &[Segment], len: usize) -> Vec<Option<u32>> {
    let mut out = vec![None; len];
    for s in segments {
        let end = s.end.min(len);
        for f in out.iter_mut().take(end).skip(s.start) {
            *f = Some(s.label);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(label: u32, start: usize, end: usize) -> Segment {
        Segment { label, start, end }
    }

    #[test]
    fn empty_sequence_has_no_segments() {
        assert!(segments_of(&[]).is_empty());
        assert!(segments_without(&[], &[0]).is_empty());
        assert!(frames_of(&[], 0).is_empty());
    }

    #[test]
    fn runs_are_maximal_and_end_exclusive() {
        // 7 7 | 3 | 7 | 0 0 0  -> four runs; the last ends at len = 7.
        let labels = [7, 7, 3, 7, 0, 0, 0];
        assert_eq!(
            segments_of(&labels),
            vec![seg(7, 0, 2), seg(3, 2, 3), seg(7, 3, 4), seg(0, 4, 7)]
        );
    }

    #[test]
    fn background_runs_are_skipped_not_merged() {
        // 1 1 0 1 2 2 0 with background {0}: the two 1-runs stay apart
        // because the cut happens on raw labels; the trailing 0 is dropped.
        let labels = [1, 1, 0, 1, 2, 2, 0];
        assert_eq!(
            segments_without(&labels, &[0]),
            vec![seg(1, 0, 2), seg(1, 3, 4), seg(2, 4, 6)]
        );
        // Two different background ids next to each other: both skipped.
        assert_eq!(segments_without(&[0, 9, 5, 5], &[0, 9]), vec![seg(5, 2, 4)]);
        // Last non-background segment ends at len (eval.py: i + 1).
        assert_eq!(segments_without(&[0, 4, 4], &[0]), vec![seg(4, 1, 3)]);
    }

    #[test]
    fn frames_of_fills_gaps_with_none_and_clips() {
        let f = frames_of(&[seg(2, 1, 3), seg(5, 4, 9)], 6);
        assert_eq!(f, vec![None, Some(2), Some(2), None, Some(5), Some(5)]);
    }

    #[test]
    fn segment_len() {
        assert_eq!(seg(1, 3, 5).len(), 2);
        assert!(seg(1, 5, 3).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn segments_round_trip(labels in proptest::collection::vec(0u32..4, 0..40)) {
            let segs = segments_of(&labels);
            let back: Vec<u32> = frames_of(&segs, labels.len()).into_iter().flatten().collect();
            prop_assert_eq!(&back, &labels);
            for w in segs.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
                prop_assert_ne!(w[0].label, w[1].label);
            }
            prop_assert!(segs.iter().all(|s| !s.is_empty()));
        }

        #[test]
        fn without_is_filter_of_runs(
            labels in proptest::collection::vec(0u32..4, 0..40),
            bg in proptest::collection::vec(0u32..4, 0..3),
        ) {
            let all = segments_of(&labels);
            let kept = segments_without(&labels, &bg);
            let expected: Vec<Segment> =
                all.into_iter().filter(|s| !bg.contains(&s.label)).collect();
            prop_assert_eq!(kept, expected);
        }
    }
}
