//! The synthetic synchronized exo/ego benchmark.
//!
//! Real exo/ego datasets (Assembly101, EgoExo4D) cannot be downloaded where
//! syncseg is developed and tested, so syncseg generates its own, written in
//! the MS-TCN layout that every TAS code base reads:
//!
//! ```text
//! DIR/features/exo/<video>.npy     float32 [D, T]
//! DIR/features/ego/<video>.npy     float32 [D, T], frame t synchronized with exo frame t
//! DIR/groundTruth/<video>.txt      labels of the labeled recordings (train, val, test)
//! DIR/groundTruth_adapt/<video>.txt  labels of the unlabeled pairs: for evaluation studies only
//! DIR/mapping.txt                  <id> <label>, id 0 = background
//! DIR/splits/<split>.bundle        exo_train exo_val ego_train ego_val adapt adapt_val exo_test ego_test
//! DIR/procedures.txt               <video> <procedure> (the task each recording performs)
//! DIR/synth.json                   the configuration that produced it
//! ```
//!
//! `ego_train`/`ego_val` list the same recordings as `exo_train`/`exo_val`
//! (the paper's D_train^ego: the ego side of the labeled exo recordings, used
//! only by the ego oracle), and `exo_test`/`ego_test` the same test
//! recordings. The `adapt*` pairs' labels live in a separate folder so that
//! nothing that trains on them can read them by accident.
//!
//! Everything is deterministic given the seed: the world (vocabulary,
//! procedures, camera maps) uses stream 0 of a ChaCha8 generator, recording
//! `i` uses stream `i + 1`, so one recording does not depend on the others.
//! How scenes and views are modelled is described in [`grammar`] and
//! [`render`].

pub mod grammar;
pub mod render;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::features::Features;
use crate::labels::{write_bundle, write_frame_labels, Mapping};
use grammar::{GrammarConfig, Procedure, Vocabulary};
use render::{RenderConfig, World};

/// Named sizes of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Small enough that the whole pipeline runs in about a minute on 2 cores.
    #[default]
    Small,
    /// The paper's Assembly101 split sizes (143 exo train, 63 pairs, 156 test).
    Paper,
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "small" => Ok(Preset::Small),
            "paper" => Ok(Preset::Paper),
            other => Err(Error::invalid(format!(
                "unknown preset '{other}': expected small or paper"
            ))),
        }
    }
}

/// How many recordings go to each split.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSizes {
    /// Labeled exo training recordings (teacher; their ego side trains the ego oracle).
    pub train: usize,
    /// Labeled validation recordings (model selection of teacher and oracles).
    pub val: usize,
    /// Unlabeled synchronized pairs for adaptation.
    pub adapt: usize,
    /// Held-out unlabeled pairs for label-free model selection of the student.
    pub adapt_val: usize,
    /// Test recordings (exo_test and ego_test).
    pub test: usize,
}

/// Everything that determines a synthetic dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SynthConfig {
    /// The preset it started from.
    pub preset: Preset,
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of action classes, background excluded.
    pub actions: usize,
    /// Typical step durations are log-uniform in this range (frames).
    pub step_frames: (f64, f64),
    /// Nominal frame rate, written to `views.json` (both views share it).
    pub fps: f64,
    /// Split sizes.
    pub splits: SplitSizes,
    /// The task grammar.
    pub grammar: GrammarConfig,
    /// The cameras.
    pub render: RenderConfig,
}

impl SynthConfig {
    /// The configuration of a preset, with an optional feature dimension.
    pub fn preset(preset: Preset, seed: u64, dim: Option<usize>) -> Result<Self> {
        let (actions, step_frames, splits, procedures, steps, default_dim) = match preset {
            Preset::Small => (
                12,
                (20.0, 80.0),
                SplitSizes {
                    train: 20,
                    val: 5,
                    adapt: 16,
                    adapt_val: 4,
                    test: 16,
                },
                4,
                (5, 8),
                64,
            ),
            Preset::Paper => (
                32,
                (40.0, 240.0),
                SplitSizes {
                    train: 143,
                    val: 15,
                    adapt: 63,
                    adapt_val: 7,
                    test: 156,
                },
                12,
                (8, 14),
                // DINOv2 ViT-L/14's width, the paper's features.
                1024,
            ),
        };
        let dim = dim.unwrap_or(default_dim);
        if !(1..=4096).contains(&dim) {
            return Err(Error::invalid(format!(
                "`dim` {dim}: the feature dimension must be between 1 and 4096"
            )));
        }
        Ok(SynthConfig {
            preset,
            seed,
            actions,
            step_frames,
            fps: 15.0,
            splits,
            grammar: GrammarConfig {
                procedures,
                steps,
                optional_prob: 0.25,
                skip_prob: 0.4,
                swappable_prob: 0.2,
                swap_prob: 0.5,
                gap_prob: 0.3,
                gap_median_frames: 12.0,
                duration_sigma: 0.35,
                speed_sigma: 0.2,
            },
            render: RenderConfig {
                dim,
                latent_dim: 24,
                hidden_dim: 96.min(4 * dim).max(8),
                view_angle_deg: 60.0,
                blend_frames: 4,
                style_scale: 1.2,
                drift_scale: 0.4,
                latent_noise: 1.5,
                exo_offset: 0.2,
                exo_noise: 0.15,
                ego_offset: 0.3,
                ego_noise: 0.35,
                head_motion: 0.6,
                occlusion_rate: 0.15,
                occlusion_frames: 15.0,
            },
        })
    }
}

/// Most features one recording may hold (both views), by the estimate of
/// [`SynthConfig::validate`]: 1 GiB.
pub const MAX_RECORDING_BYTES: f64 = (1u64 << 30) as f64;

/// Checks that `value` lies in `[lo, hi]` (finite), naming the field.
pub(crate) fn check_range(field: &str, value: f64, lo: f64, hi: f64) -> Result<()> {
    if value.is_finite() && (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "synthetic config: {field} is {value}; allowed: {lo} to {hi}"
        )))
    }
}

/// Checks that the count `value` lies in `lo..=hi`, naming the field.
pub(crate) fn check_count(field: &str, value: usize, lo: usize, hi: usize) -> Result<()> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "synthetic config: {field} is {value}; allowed: {lo} to {hi}"
        )))
    }
}

impl SynthConfig {
    /// Checks every field (finite, in range, counts that draw something,
    /// recordings of a bounded size): an invalid configuration is a
    /// one-line error naming the field and its allowed range, never a
    /// panic or an absurd allocation in the generator.
    pub fn validate(&self) -> Result<()> {
        // 8 verbs × 10 objects; a procedure never repeats a class back to
        // back, so it needs two classes.
        check_count("actions", self.actions, 2, grammar::MAX_ACTIONS)?;
        let (lo, hi) = self.step_frames;
        check_range("step_frames.0", lo, 1.0, grammar::MAX_FRAMES)?;
        check_range("step_frames.1", hi, lo, grammar::MAX_FRAMES)?;
        check_range("fps", self.fps, 1e-3, 1e4)?;
        let s = &self.splits;
        for (field, n) in [
            ("splits.train", s.train),
            ("splits.val", s.val),
            ("splits.adapt", s.adapt),
            ("splits.adapt_val", s.adapt_val),
            ("splits.test", s.test),
        ] {
            check_count(field, n, 1, MAX_SPLIT)?;
        }
        self.grammar.validate()?;
        self.render.validate()?;
        // Frames of a long recording: every step at 2σ of its durations,
        // every gap present at 2σ of its length, the idle start and end.
        let g = &self.grammar;
        let steps = g.steps.1 as f64;
        let step = hi * (2.0 * (g.speed_sigma + g.duration_sigma)).exp();
        let gap = g.gap_median_frames * 1f64.exp();
        let frames = steps * step + (steps + 1.0) * gap;
        let r = &self.render;
        let bytes = frames * (2 * r.dim + r.latent_dim + r.hidden_dim) as f64 * 4.0;
        if bytes > MAX_RECORDING_BYTES {
            return Err(Error::invalid(format!(
                "synthetic config: recordings of up to ~{frames:.0} frames × dim {} need ~{:.1} GiB each; allowed: 1 GiB (fewer grammar.steps, shorter step_frames or gap_median_frames, smaller sigmas or render.dim)",
                r.dim,
                bytes / MAX_RECORDING_BYTES
            )));
        }
        Ok(())
    }
}

/// Most recordings in one split.
pub const MAX_SPLIT: usize = 100_000;

/// One generated recording: labels and both synchronized views.
#[derive(Debug, Clone)]
pub struct SynthRecording {
    /// Video name, e.g. `rec0007`.
    pub name: String,
    /// Per-frame label ids (0 = background).
    pub labels: Vec<u32>,
    /// Exo features `[D, T]`.
    pub exo: Features,
    /// Ego features `[D, T]`, synchronized with `exo`.
    pub ego: Features,
}

/// Which split a recording belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitRole {
    /// Labeled training recording.
    Train,
    /// Labeled validation recording.
    Val,
    /// Unlabeled adaptation pair.
    Adapt,
    /// Unlabeled held-out pair.
    AdaptVal,
    /// Test recording.
    Test,
}

/// A generator of recordings for one configuration.
pub struct Generator {
    cfg: SynthConfig,
    vocab: Vocabulary,
    procedures: Vec<Procedure>,
    world: World,
}

impl Generator {
    /// Draws the world (vocabulary, procedures, cameras) from the seed,
    /// after [`SynthConfig::validate`].
    pub fn new(cfg: SynthConfig) -> Result<Self> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(0);
        let vocab = Vocabulary::sample(cfg.actions, cfg.step_frames.0, cfg.step_frames.1, &mut rng);
        let procedures = (0..cfg.grammar.procedures)
            .map(|_| Procedure::sample(&vocab, &cfg.grammar, &mut rng))
            .collect();
        let world = World::sample(&cfg.render, &vocab, &mut rng);
        Ok(Generator {
            cfg,
            vocab,
            procedures,
            world,
        })
    }

    /// Class names, index = label id.
    pub fn class_names(&self) -> &[String] {
        &self.vocab.names
    }

    /// Total number of recordings over all splits.
    pub fn len(&self) -> usize {
        let s = &self.cfg.splits;
        s.train + s.val + s.adapt + s.adapt_val + s.test
    }

    /// Whether no recording would be generated.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The split of recording `i`.
    pub fn role(&self, i: usize) -> SplitRole {
        let s = &self.cfg.splits;
        let bounds = [
            (s.train, SplitRole::Train),
            (s.val, SplitRole::Val),
            (s.adapt, SplitRole::Adapt),
            (s.adapt_val, SplitRole::AdaptVal),
        ];
        let mut start = 0;
        for (n, role) in bounds {
            if i < start + n {
                return role;
            }
            start += n;
        }
        SplitRole::Test
    }

    /// The name of the procedure recording `i` performs (`task03`).
    pub fn procedure_name(&self, i: usize) -> String {
        format!("task{:02}", i % self.procedures.len())
    }

    /// Generates recording `i` (independent of every other recording).
    pub fn recording(&self, i: usize) -> Result<SynthRecording> {
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
        rng.set_stream(i as u64 + 1);
        // Procedures are assigned round-robin so every split sees all tasks.
        let procedure = &self.procedures[i % self.procedures.len()];
        let labels = procedure.perform(&self.vocab, &self.cfg.grammar, &mut rng);
        let (exo, ego) = self.world.render(&labels, &mut rng);
        let d = self.cfg.render.dim;
        let t = labels.len();
        Ok(SynthRecording {
            name: format!("rec{:04}", i + 1),
            labels,
            exo: Features::new(d, t, exo)?,
            ego: Features::new(d, t, ego)?,
        })
    }

    /// Writes the whole dataset to `out` (see the module doc for the layout).
    ///
    /// The dataset is built in a temporary sibling folder and renamed into
    /// place at the end, so `out` is either complete or absent. `out` must not
    /// exist or be an empty folder. `progress(done, total)` is called after
    /// each recording.
    pub fn write(&self, out: &Path, mut progress: impl FnMut(usize, usize)) -> Result<()> {
        if out.exists() {
            let empty = std::fs::read_dir(out)
                .map_err(|e| Error::io(out, e))?
                .next()
                .is_none();
            if !empty {
                return Err(Error::invalid(format!(
                    "{}: already exists and is not empty; choose another `out` or remove it",
                    out.display()
                )));
            }
        }
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        let staging = tempfile::Builder::new()
            .prefix(".syncseg-synth-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let root = staging.path();
        for sub in [
            "features/exo",
            "features/ego",
            "groundTruth",
            "groundTruth_adapt",
            "splits",
        ] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        let mapping = Mapping::from_names(self.vocab.names.clone())?;
        mapping.write_txt(root.join("mapping.txt"))?;

        let mut names: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        let mut procedures = String::new();
        let total = self.len();
        for i in 0..total {
            let rec = self.recording(i)?;
            procedures.push_str(&format!("{} {}\n", rec.name, self.procedure_name(i)));
            crate::npy::write_features(
                root.join(format!("features/exo/{}.npy", rec.name)),
                &rec.exo,
            )?;
            crate::npy::write_features(
                root.join(format!("features/ego/{}.npy", rec.name)),
                &rec.ego,
            )?;
            let label_names = mapping.decode(&rec.labels)?;
            let (gt_dir, splits): (&str, &[&str]) = match self.role(i) {
                SplitRole::Train => ("groundTruth", &["exo_train", "ego_train"]),
                SplitRole::Val => ("groundTruth", &["exo_val", "ego_val"]),
                SplitRole::Adapt => ("groundTruth_adapt", &["adapt"]),
                SplitRole::AdaptVal => ("groundTruth_adapt", &["adapt_val"]),
                SplitRole::Test => ("groundTruth", &["exo_test", "ego_test"]),
            };
            write_frame_labels(
                root.join(gt_dir).join(format!("{}.txt", rec.name)),
                &label_names,
            )?;
            for s in splits {
                names.entry(s).or_default().push(rec.name.clone());
            }
            progress(i + 1, total);
        }
        for split in [
            "exo_train",
            "exo_val",
            "ego_train",
            "ego_val",
            "adapt",
            "adapt_val",
            "exo_test",
            "ego_test",
        ] {
            let list = names.remove(split).unwrap_or_default();
            if list.is_empty() {
                return Err(Error::invalid(format!(
                    "the configuration gives split '{split}' no recordings"
                )));
            }
            write_bundle(root.join(format!("splits/{split}.bundle")), &list)?;
        }
        let views = serde_json::json!({
            "label_fps": self.cfg.fps,
            "views": {
                "exo": {"fps": self.cfg.fps, "offset_s": 0.0},
                "ego": {"fps": self.cfg.fps, "offset_s": 0.0},
            }
        });
        let views_path = root.join("views.json");
        crate::fsio::write_bytes_atomic(
            &views_path,
            serde_json::to_string_pretty(&views)
                .expect("json")
                .as_bytes(),
        )?;
        crate::fsio::write_bytes_atomic(root.join("procedures.txt"), procedures.as_bytes())?;
        let cfg_path = root.join("synth.json");
        let json = serde_json::to_string_pretty(&self.cfg).expect("config serialises");
        crate::fsio::write_bytes_atomic(&cfg_path, json.as_bytes())?;

        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
        }
        let staged = staging.keep();
        std::fs::rename(&staged, out).map_err(|e| {
            let _ = std::fs::remove_dir_all(&staged);
            Error::io(out, e)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
