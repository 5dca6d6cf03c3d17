//! TAS-model distillation from synchronized pairs (the sync paper, Sec. 3).
//!
//! The frozen teacher sees the teacher view (exo) of each pair in eval mode;
//! the student — initialised from the teacher — sees the student view (ego)
//! in train mode (so its BatchNorm statistics adapt to ego). The loss is the
//! MSE between the two models' head logits, summed over the chosen levels
//! (heads `[y, y5, y4, y3, y2, y1]`, index 0 = full resolution). No label
//! is read anywhere in this module.
//!
//! The teacher is frozen and deterministic, so its outputs for every window
//! are computed once and reused every epoch.
//!
//! Model selection is label-free: the score is minus the same loss on
//! held-out pairs with the student in eval mode.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::fit::{Objective, Validation};
use super::losses::level_mse;
use super::windows::{features_batch, padded_len, windows, Window};
use crate::error::{Error, Result};
use crate::features::Features;
use crate::model::c2f_tcn::mask_pyramid;
use crate::model::{Mode, SegModel};

/// The default distilled levels: all six heads. The paper's ablation
/// (supplementary Table 1) found aligning all levels best; the release summed
/// only the four intermediate heads y5 … y2.
pub const DEFAULT_LEVELS: [usize; 6] = [0, 1, 2, 3, 4, 5];

/// How exo and ego videos are paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Pairing {
    /// Each ego video with its own synchronized exo video (the method).
    #[default]
    Synchronized,
    /// Each ego video with a random other exo video ("Rnd. MSE" control).
    Random,
}

/// An exo/ego pair of feature sequences, frame `t` of one matched to frame
/// `t` of the other (truncated to the shorter).
#[derive(Debug, Clone)]
pub struct Pair {
    /// Name of the recording (of the student view).
    pub name: String,
    /// What the teacher sees.
    pub teacher: Features,
    /// What the student sees.
    pub student: Features,
}

fn truncate(f: &Features, n: usize) -> Result<Features> {
    if f.frames == n {
        Ok(f.clone())
    } else {
        f.select_frames(&(0..n).collect::<Vec<_>>())
    }
}

/// Drops each frame with probability `rate`, independently (the paper's
/// imperfect-synchronisation study, Table 5).
fn drop_frames(f: &Features, rate: f64, rng: &mut impl Rng) -> Result<Features> {
    let keep: Vec<usize> = (0..f.frames).filter(|_| !rng.random_bool(rate)).collect();
    if keep.is_empty() {
        return Err(Error::invalid(format!(
            "--drop-rate {rate} dropped every frame of a video"
        )));
    }
    f.select_frames(&keep)
}

/// Builds pairs from per-recording `(name, teacher view, student view)`:
/// with `Random` pairing each student view gets another recording's teacher
/// view; `drop_rate` drops frames independently in each view. Deterministic
/// given `seed`.
pub fn make_pairs(
    recordings: Vec<(String, Features, Features)>,
    pairing: Pairing,
    drop_rate: f64,
    seed: u64,
) -> Result<Vec<Pair>> {
    if !(0.0..1.0).contains(&drop_rate) {
        return Err(Error::invalid(format!(
            "--drop-rate {drop_rate}: must be in [0, 1)"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xd157_1770);
    let n = recordings.len();
    let mut partner: Vec<usize> = (0..n).collect();
    if pairing == Pairing::Random && n > 1 {
        // A random derangement: nobody keeps their own synchronized partner.
        loop {
            partner.shuffle(&mut rng);
            if partner.iter().enumerate().all(|(i, &p)| i != p) {
                break;
            }
        }
    }
    let teachers: Vec<Features> = recordings.iter().map(|r| r.1.clone()).collect();
    let mut out = Vec::with_capacity(n);
    for (i, (name, _, student)) in recordings.into_iter().enumerate() {
        let mut teacher = teachers[partner[i]].clone();
        let mut student = student;
        if drop_rate > 0.0 {
            teacher = drop_frames(&teacher, drop_rate, &mut rng)?;
            student = drop_frames(&student, drop_rate, &mut rng)?;
        }
        let len = teacher.frames.min(student.frames);
        out.push(Pair {
            name,
            teacher: truncate(&teacher, len)?,
            student: truncate(&student, len)?,
        });
    }
    Ok(out)
}

/// The distillation objective.
pub struct Distill<'a> {
    pairs: &'a [Pair],
    val: &'a [Pair],
    levels: Vec<usize>,
    windows: Vec<Window>,
    val_windows: Vec<Window>,
    /// Teacher heads per training window, cached.
    teacher_heads: Vec<Vec<Tensor>>,
    val_teacher_heads: Vec<Vec<Tensor>>,
    device: Device,
}

/// Teacher heads for each window (one at a time: they are cached, cropped to
/// each window's padded length later).
fn teacher_outputs(
    teacher: &SegModel,
    pairs: &[Pair],
    wins: &[Window],
    device: &Device,
) -> Result<Vec<Vec<Tensor>>> {
    let feats: Vec<&Features> = pairs.iter().map(|p| &p.teacher).collect();
    wins.iter()
        .map(|w| {
            let t = padded_len(std::slice::from_ref(w));
            let (x, _) = features_batch(&feats, std::slice::from_ref(w), t, device)?;
            Ok(teacher.net.forward(&x, Mode::Eval)?.heads)
        })
        .collect()
}

impl<'a> Distill<'a> {
    /// Prepares windows and caches the teacher's outputs.
    pub fn new(
        teacher: &SegModel,
        pairs: &'a [Pair],
        val: &'a [Pair],
        levels: Vec<usize>,
        window_frames: usize,
        device: Device,
    ) -> Result<Self> {
        if levels.is_empty() || levels.iter().any(|&l| l > 5) {
            return Err(Error::invalid(format!(
                "--levels {levels:?}: choose among 0 (full resolution) … 5 (T/32)"
            )));
        }
        let lens = |ps: &[Pair]| ps.iter().map(|p| p.student.frames).collect::<Vec<_>>();
        let val_windows = windows(&lens(val), window_frames);
        let train_windows = windows(&lens(pairs), window_frames);
        let teacher_heads = teacher_outputs(teacher, pairs, &train_windows, &device)?;
        let val_teacher_heads = teacher_outputs(teacher, val, &val_windows, &device)?;
        Ok(Distill {
            pairs,
            val,
            levels,
            windows: train_windows,
            val_windows,
            teacher_heads,
            val_teacher_heads,
            device,
        })
    }

    fn batch_loss(
        &self,
        student: &SegModel,
        pairs: &[Pair],
        batch: &[Window],
        cached: &[&Vec<Tensor>],
        mode_train: bool,
    ) -> Result<Tensor> {
        let t = padded_len(batch);
        let feats: Vec<&Features> = pairs.iter().map(|p| &p.student).collect();
        let (x, mask) = features_batch(&feats, batch, t, &self.device)?;
        let mode = if mode_train {
            Mode::Train { mask: Some(&mask) }
        } else {
            Mode::Eval
        };
        // With feature distillation done first ("both"), the student reads
        // its (frozen) adapter's output.
        let x = student.adapt(&x, Some(&mask))?;
        let out = student.net.forward(&x, mode)?;
        // Teacher heads were computed per window at that window's padded
        // length; pad them to this batch's length per head.
        let mut teacher = Vec::with_capacity(6);
        for (l, head) in out.heads.iter().enumerate() {
            let tl = head.dim(2)?;
            let parts = cached
                .iter()
                .map(|h| {
                    let th = &h[l];
                    let have = th.dim(2)?;
                    if have >= tl {
                        th.narrow(2, 0, tl)
                    } else {
                        th.pad_with_zeros(2, 0, tl - have)
                    }
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            teacher.push(Tensor::cat(&parts, 0)?);
        }
        let masks: Vec<Option<Tensor>> = mask_pyramid(&mask)?.into_iter().map(Some).collect();
        Ok(level_mse(&out.heads, &teacher, &self.levels, &masks)?)
    }
}

impl Objective for Distill<'_> {
    fn windows(&self) -> &[Window] {
        &self.windows
    }

    fn loss(&self, model: &SegModel, batch: &[Window]) -> Result<Tensor> {
        let cached: Vec<&Vec<Tensor>> = batch
            .iter()
            .map(|w| {
                let i = self
                    .windows
                    .iter()
                    .position(|x| x == w)
                    .expect("window from this objective");
                &self.teacher_heads[i]
            })
            .collect();
        self.batch_loss(model, self.pairs, batch, &cached, true)
    }

    fn validate(&self, model: &SegModel) -> Result<Option<Validation>> {
        if self.val.is_empty() {
            return Ok(None);
        }
        let mut total = 0f64;
        for (w, heads) in self.val_windows.iter().zip(&self.val_teacher_heads) {
            let l = self.batch_loss(model, self.val, std::slice::from_ref(w), &[heads], false)?;
            total += l.to_scalar::<f32>()? as f64;
        }
        let loss = total / self.val_windows.len().max(1) as f64;
        Ok(Some(Validation {
            score: -loss,
            details: serde_json::json!({ "val_distill_loss": loss }),
        }))
    }
}
