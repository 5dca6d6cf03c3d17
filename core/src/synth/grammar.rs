//! Procedural task grammars: what happens in a synthetic recording, and when.
//!
//! A *procedure* (think "assemble toy 3") is an ordered list of steps; each
//! step is an action class (a verb applied to an object, as in Assembly101's
//! coarse labels). A recording instantiates a procedure: optional steps may be
//! skipped, some adjacent steps may be swapped, background gaps appear between
//! steps, and every step lasts a log-normally distributed time around its
//! class's typical duration, scaled by the performer's overall speed.
//! Classes are shared across procedures, so a frame's class does not identify
//! the procedure and a segmenter gains from temporal context.

use rand::seq::SliceRandom;
use rand::Rng;
use rand_distr::{Distribution, LogNormal};

/// Label id 0 is always the background class.
pub const BACKGROUND: u32 = 0;

/// Verbs and objects that name the synthetic action classes.
const VERBS: [&str; 8] = [
    "take", "position", "attach", "screw", "remove", "inspect", "rotate", "push",
];
const OBJECTS: [&str; 10] = [
    "wheel", "chassis", "cabin", "arm", "bucket", "battery", "roof", "base", "boom", "track",
];

/// The action vocabulary: class 0 is background, class k ≥ 1 is
/// (verbs[k], objects[k]) for a fixed random choice of pairs.
#[derive(Debug, Clone)]
pub struct Vocabulary {
    /// Class names, index = label id; `names[0] == "background"`.
    pub names: Vec<String>,
    /// Verb index of each class (`None` for background).
    pub verb: Vec<Option<usize>>,
    /// Object index of each class (`None` for background).
    pub object: Vec<Option<usize>>,
    /// Typical duration of each class in frames (median of its log-normal).
    pub median_frames: Vec<f64>,
}

impl Vocabulary {
    /// Draws `actions` distinct verb-object classes (plus background).
    /// Durations are drawn between `min_frames` and `max_frames`.
    pub fn sample(actions: usize, min_frames: f64, max_frames: f64, rng: &mut impl Rng) -> Self {
        let mut pairs: Vec<(usize, usize)> = (0..VERBS.len())
            .flat_map(|v| (0..OBJECTS.len()).map(move |o| (v, o)))
            .collect();
        pairs.shuffle(rng);
        pairs.truncate(actions.min(pairs.len()));
        let mut names = vec!["background".to_string()];
        let mut verb = vec![None];
        let mut object = vec![None];
        let mut median_frames = vec![0.5 * (min_frames + max_frames)];
        for (v, o) in pairs {
            names.push(format!("{} {}", VERBS[v], OBJECTS[o]));
            verb.push(Some(v));
            object.push(Some(o));
            // Log-uniform typical durations: short "take" steps and long
            // "screw" steps coexist, as in real assembly videos.
            let u: f64 = rng.random();
            median_frames.push(min_frames * (max_frames / min_frames).powf(u));
        }
        Vocabulary {
            names,
            verb,
            object,
            median_frames,
        }
    }

    /// Number of classes including background.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Always false: the vocabulary holds at least the background class.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One step of a procedure.
#[derive(Debug, Clone)]
pub struct Step {
    /// The action class performed.
    pub class: u32,
    /// Whether a performer may skip it.
    pub optional: bool,
    /// Whether it may be swapped with the following step.
    pub swappable_with_next: bool,
}

/// An ordered task ("assemble toy k").
#[derive(Debug, Clone)]
pub struct Procedure {
    /// The steps in their canonical order.
    pub steps: Vec<Step>,
}

/// Knobs of the grammar.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct GrammarConfig {
    /// Number of distinct procedures.
    pub procedures: usize,
    /// Steps per procedure, inclusive range.
    pub steps: (usize, usize),
    /// Probability that a step is optional.
    pub optional_prob: f64,
    /// Probability that an optional step is skipped in a recording.
    pub skip_prob: f64,
    /// Probability that a step may swap with its successor.
    pub swappable_prob: f64,
    /// Probability that a swappable pair is swapped in a recording.
    pub swap_prob: f64,
    /// Probability of a background gap before each step.
    pub gap_prob: f64,
    /// Median background-gap length in frames.
    pub gap_median_frames: f64,
    /// Log-normal sigma of step durations around their class median.
    pub duration_sigma: f64,
    /// Log-normal sigma of the per-recording speed factor.
    pub speed_sigma: f64,
}

/// Most action classes: every verb with every object.
pub const MAX_ACTIONS: usize = VERBS.len() * OBJECTS.len();
/// Longest typical step or gap, in frames.
pub const MAX_FRAMES: f64 = 100_000.0;
/// A step or gap lasts at most this many times its class's (or the gap's)
/// median: a bound on a recording's length whatever the draws.
pub const MAX_RUN_FACTOR: f64 = 50.0;

impl GrammarConfig {
    /// Checks every field (see [`super::SynthConfig::validate`]).
    pub fn validate(&self) -> crate::Result<()> {
        use super::{check_count, check_range};
        check_count("grammar.procedures", self.procedures, 1, 10_000)?;
        check_count("grammar.steps.0", self.steps.0, 1, 1_000)?;
        check_count("grammar.steps.1", self.steps.1, self.steps.0, 1_000)?;
        for (field, p) in [
            ("grammar.optional_prob", self.optional_prob),
            ("grammar.skip_prob", self.skip_prob),
            ("grammar.swappable_prob", self.swappable_prob),
            ("grammar.swap_prob", self.swap_prob),
            ("grammar.gap_prob", self.gap_prob),
        ] {
            check_range(field, p, 0.0, 1.0)?;
        }
        check_range(
            "grammar.gap_median_frames",
            self.gap_median_frames,
            1.0,
            MAX_FRAMES,
        )?;
        check_range("grammar.duration_sigma", self.duration_sigma, 0.0, 2.0)?;
        check_range("grammar.speed_sigma", self.speed_sigma, 0.0, 2.0)?;
        Ok(())
    }
}

impl Procedure {
    /// Draws a procedure over the vocabulary's action classes, with no
    /// class repeated back to back.
    ///
    /// # Panics
    /// If `cfg` fails [`GrammarConfig::validate`] or the vocabulary has
    /// fewer than two actions ([`super::Generator::new`] checks both).
    pub fn sample(vocab: &Vocabulary, cfg: &GrammarConfig, rng: &mut impl Rng) -> Self {
        let n = rng.random_range(cfg.steps.0..=cfg.steps.1);
        let mut steps: Vec<Step> = Vec::with_capacity(n);
        let actions = vocab.len() as u32 - 1;
        while steps.len() < n {
            let class = rng.random_range(1..=actions);
            if steps.last().is_some_and(|s| s.class == class) {
                continue;
            }
            steps.push(Step {
                class,
                optional: rng.random_bool(cfg.optional_prob),
                swappable_with_next: rng.random_bool(cfg.swappable_prob),
            });
        }
        Procedure { steps }
    }

    /// Instantiates the procedure as per-frame labels for one recording.
    /// A step or gap lasts at most [`MAX_RUN_FACTOR`] times its median.
    ///
    /// # Panics
    /// If `cfg` fails [`GrammarConfig::validate`].
    pub fn perform(&self, vocab: &Vocabulary, cfg: &GrammarConfig, rng: &mut impl Rng) -> Vec<u32> {
        let mut order: Vec<u32> = Vec::with_capacity(self.steps.len());
        let mut i = 0;
        while i < self.steps.len() {
            let s = &self.steps[i];
            if s.swappable_with_next && i + 1 < self.steps.len() && rng.random_bool(cfg.swap_prob) {
                let t = &self.steps[i + 1];
                for step in [t, s] {
                    if !(step.optional && rng.random_bool(cfg.skip_prob)) {
                        order.push(step.class);
                    }
                }
                i += 2;
            } else {
                if !(s.optional && rng.random_bool(cfg.skip_prob)) {
                    order.push(s.class);
                }
                i += 1;
            }
        }
        if order.is_empty() {
            order.push(self.steps[0].class);
        }
        // Skips and swaps can put one class twice in a row: merge them, since
        // a segment is a maximal run of one label anyway.
        order.dedup();

        // Within 5σ, so that a recording's length is bounded whatever the draw.
        let bound = (5.0 * cfg.speed_sigma).exp();
        let speed = LogNormal::new(0.0, cfg.speed_sigma)
            .expect("sigma >= 0")
            .sample(rng)
            .clamp(1.0 / bound, bound);
        let gap = LogNormal::new(cfg.gap_median_frames.ln(), 0.5).expect("sigma >= 0");
        let mut labels = Vec::new();
        let push_gap = |labels: &mut Vec<u32>, rng: &mut dyn rand::RngCore| {
            let len = gap
                .sample(rng)
                .min(MAX_RUN_FACTOR * cfg.gap_median_frames)
                .round()
                .max(2.0) as usize;
            labels.extend(std::iter::repeat_n(BACKGROUND, len));
        };
        // Recordings start and end with a little idle time, like real ones.
        push_gap(&mut labels, rng);
        for (k, &class) in order.iter().enumerate() {
            if k > 0 && rng.random_bool(cfg.gap_prob) {
                push_gap(&mut labels, rng);
            }
            let median = vocab.median_frames[class as usize] * speed;
            let dist = LogNormal::new(median.ln(), cfg.duration_sigma).expect("sigma >= 0");
            let len = dist
                .sample(rng)
                .min(MAX_RUN_FACTOR * median)
                .round()
                .max(4.0) as usize;
            labels.extend(std::iter::repeat_n(class, len));
        }
        push_gap(&mut labels, rng);
        labels
    }
}

/// The label sequence of the non-background runs of a recording.
pub fn runs(labels: &[u32]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    let mut prev = None;
    for &l in labels {
        if Some(l) != prev && l != BACKGROUND {
            out.push(l);
        }
        prev = Some(l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cfg() -> GrammarConfig {
        GrammarConfig {
            procedures: 3,
            steps: (5, 8),
            optional_prob: 0.3,
            skip_prob: 0.5,
            swappable_prob: 0.3,
            swap_prob: 0.5,
            gap_prob: 0.3,
            gap_median_frames: 15.0,
            duration_sigma: 0.35,
            speed_sigma: 0.2,
        }
    }

    #[test]
    fn recordings_follow_their_procedure() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let vocab = Vocabulary::sample(12, 20.0, 80.0, &mut rng);
        assert_eq!(vocab.len(), 13);
        let proc_ = Procedure::sample(&vocab, &cfg(), &mut rng);
        for _ in 0..50 {
            let labels = proc_.perform(&vocab, &cfg(), &mut rng);
            assert_eq!(labels[0], BACKGROUND);
            assert_eq!(*labels.last().unwrap(), BACKGROUND);
            // Every action performed belongs to the procedure.
            for &l in &labels {
                assert!(l == BACKGROUND || proc_.steps.iter().any(|s| s.class == l));
            }
            // Mandatory, non-swappable steps appear in canonical order.
            let seq: Vec<u32> = runs(&labels);
            let must: Vec<u32> = proc_
                .steps
                .iter()
                .enumerate()
                .filter(|(i, s)| {
                    !s.optional
                        && !s.swappable_with_next
                        && (*i == 0 || !proc_.steps[i - 1].swappable_with_next)
                })
                .map(|(_, s)| s.class)
                .collect();
            let mut it = seq.iter();
            for m in must {
                assert!(
                    it.any(|&x| x == m),
                    "step {m} missing or out of order in {seq:?}"
                );
            }
        }
    }
}
