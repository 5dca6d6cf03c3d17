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

use std::collections::HashMap;

use std::cell::Cell;

use candle_core::{Device, Tensor, D};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::alignment::{soft_dtw_divergence, tcc};
use super::losses::level_mse;
use super::objective::{BatchLoss, Objective, TrainBatch, Validation};
use super::supervised::Supervised;
use super::uda::{coral, grl_lambda, mmd, DomainClassifier};
use super::windows::{features_batch, padded_len, windows, Window};
use crate::error::{Error, Result};
use crate::features::Features;
use crate::model::{BackboneConfig, BackboneKind, Mode, SegModel};

/// The default distilled levels: all six heads. The paper's ablation
/// (supplementary Table 1) found aligning all levels best; the release summed
/// only the four intermediate heads y5 … y2.
pub const DEFAULT_LEVELS: [usize; 6] = [0, 1, 2, 3, 4, 5];

/// How exo and ego videos are paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pairing {
    /// Each ego video with its own synchronized exo video (the method).
    #[default]
    Synchronized,
    /// Each ego video with a random other exo video ("Rnd. MSE" control,
    /// and the paper's protocol for the UDA and alignment baselines).
    Random,
    /// Each ego video with a random other exo video of the same procedure
    /// (the paper's starred alignment rows: an alignment exists).
    SameProcedure,
}

impl Pairing {
    /// The pairing's name (`synchronized`, `random`, `same-procedure`).
    pub fn name(self) -> &'static str {
        match self {
            Pairing::Synchronized => "synchronized",
            Pairing::Random => "random",
            Pairing::SameProcedure => "same-procedure",
        }
    }
}

impl std::fmt::Display for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Pairing {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "synchronized" => Ok(Pairing::Synchronized),
            "random" => Ok(Pairing::Random),
            "same-procedure" => Ok(Pairing::SameProcedure),
            other => Err(Error::invalid(format!(
                "unknown pairing '{other}': expected synchronized, random or same-procedure"
            ))),
        }
    }
}

/// How pairs are drawn from the recordings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairOptions {
    /// Which exo video goes with each ego video.
    pub pairing: Pairing,
    /// Fraction of frames dropped independently in each view (Table 5).
    pub drop_rate: f64,
    /// Fraction of the recordings used (Table 4), drawn at random.
    pub fraction: f64,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            pairing: Pairing::default(),
            drop_rate: 0.0,
            fraction: 1.0,
            seed: 0,
        }
    }
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
            "`drop_rate` {rate} dropped every frame of a video"
        )));
    }
    f.select_frames(&keep)
}

/// A random permutation of `0..n` in which no index keeps its place
/// (identity when n < 2).
fn derangement(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    if n > 1 {
        loop {
            p.shuffle(rng);
            if p.iter().enumerate().all(|(i, &q)| i != q) {
                break;
            }
        }
    }
    p
}

/// Builds pairs from per-recording `(name, teacher view, student view)`.
/// `fraction` keeps a random subset of the recordings (at least one);
/// `Random` pairing gives each student view another recording's teacher
/// view, `SameProcedure` another recording's of the same procedure
/// (`procedures` maps names to procedures; a video alone with its
/// procedure is left out); `drop_rate` drops frames
/// independently in each view. Deterministic given the seed.
pub fn make_pairs(
    recordings: Vec<(String, Features, Features)>,
    options: &PairOptions,
    procedures: &HashMap<String, String>,
) -> Result<Vec<Pair>> {
    let PairOptions {
        pairing,
        drop_rate,
        fraction,
        seed,
    } = *options;
    if !(0.0..1.0).contains(&drop_rate) {
        return Err(Error::invalid(format!(
            "`drop_rate` {drop_rate}: must be in [0, 1)"
        )));
    }
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::invalid(format!(
            "`pairs_fraction` {fraction}: must be in (0, 1]"
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0xd157_1770);
    let mut recordings = recordings;
    if fraction < 1.0 {
        let keep = ((recordings.len() as f64 * fraction).round() as usize).max(1);
        let mut order: Vec<usize> = (0..recordings.len()).collect();
        order.shuffle(&mut rng);
        let mut chosen: Vec<usize> = order[..keep.min(order.len())].to_vec();
        chosen.sort_unstable();
        let mut slots: Vec<Option<(String, Features, Features)>> =
            recordings.into_iter().map(Some).collect();
        recordings = chosen
            .iter()
            .map(|&i| slots[i].take().expect("distinct"))
            .collect();
    }
    let n = recordings.len();
    let partner: Vec<usize> = match pairing {
        Pairing::Synchronized => (0..n).collect(),
        Pairing::Random => derangement(n, &mut rng),
        Pairing::SameProcedure => {
            let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for (i, r) in recordings.iter().enumerate() {
                let proc = procedures.get(&r.0).ok_or_else(|| {
                    Error::invalid(format!(
                        "`pairing` same-procedure: no procedure is known for '{}'",
                        r.0
                    ))
                })?;
                groups.entry(proc.as_str()).or_default().push(i);
            }
            // A video alone with its procedure has no partner: it is left
            // out (the caller sees fewer pairs), unless nothing is left.
            let mut partner = vec![usize::MAX; n];
            for members in groups.values() {
                if members.len() < 2 {
                    continue;
                }
                let p = derangement(members.len(), &mut rng);
                for (k, &i) in members.iter().enumerate() {
                    partner[i] = members[p[k]];
                }
            }
            if partner.iter().all(|&p| p == usize::MAX) {
                return Err(Error::invalid(
                    "`pairing` same-procedure: no two videos share a procedure",
                ));
            }
            partner
        }
    };
    let teachers: Vec<Features> = recordings.iter().map(|r| r.1.clone()).collect();
    let mut out = Vec::with_capacity(n);
    for (i, (name, _, student)) in recordings.into_iter().enumerate() {
        if partner[i] == usize::MAX {
            continue;
        }
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

/// Reads a procedures file: one `video procedure` pair per line (blank
/// lines and `#` comments skipped), as `syncseg synth` writes it.
pub fn read_procedures(path: &std::path::Path) -> Result<HashMap<String, String>> {
    let text = crate::fsio::read_text(path)?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(video), Some(procedure), None) => {
                out.insert(video.to_string(), procedure.to_string());
            }
            _ => {
                return Err(Error::format(
                    path,
                    format!("line {}: expected 'video procedure', got '{line}'", i + 1),
                ))
            }
        }
    }
    Ok(out)
}

/// What the student's heads on the student view are pulled towards the
/// teacher's heads on the teacher view with (the paper's Table 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AdaptLoss {
    /// MSE between synchronized frames (the method).
    #[default]
    SyncMse,
    /// Multi-kernel MMD between the two views' frame sets.
    Mmd,
    /// Deep CORAL between the two views' frame sets.
    Coral,
    /// A domain classifier behind a gradient reversal layer (DANN).
    Grl,
    /// Temporal cycle-consistency (classification variant).
    Tcc,
    /// The soft-DTW divergence, per frame.
    Sdtw,
}

impl AdaptLoss {
    /// Every loss, in the paper's table order.
    pub const ALL: [AdaptLoss; 6] = [
        AdaptLoss::Mmd,
        AdaptLoss::Coral,
        AdaptLoss::Grl,
        AdaptLoss::Tcc,
        AdaptLoss::Sdtw,
        AdaptLoss::SyncMse,
    ];

    /// The CLI's name.
    pub fn name(self) -> &'static str {
        match self {
            AdaptLoss::SyncMse => "sync-mse",
            AdaptLoss::Mmd => "mmd",
            AdaptLoss::Coral => "coral",
            AdaptLoss::Grl => "grl",
            AdaptLoss::Tcc => "tcc",
            AdaptLoss::Sdtw => "sdtw",
        }
    }

    /// The unsupervised domain-adaptation losses: trained with the task loss
    /// on labelled teacher-view videos, as UDA methods are.
    pub fn is_uda(self) -> bool {
        matches!(self, AdaptLoss::Mmd | AdaptLoss::Coral | AdaptLoss::Grl)
    }
}

impl std::fmt::Display for AdaptLoss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AdaptLoss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        AdaptLoss::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown loss '{s}': expected sync-mse, mmd, coral, grl, tcc or sdtw"
                ))
            })
    }
}

/// The adaptation loss and its settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// Which loss.
    pub loss: AdaptLoss,
    /// Its weight next to the task loss (UDA losses only; the other losses
    /// are used as they are).
    pub weight: f64,
    /// Smoothing γ of soft-DTW.
    pub sdtw_gamma: f64,
    /// Temperature of TCC's similarities.
    pub tcc_temperature: f64,
    /// Hidden units of GRL's domain classifier.
    pub grl_hidden: usize,
    /// Seed of the domain classifier's initialisation.
    pub seed: u64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            loss: AdaptLoss::default(),
            weight: 1.0,
            sdtw_gamma: 1.0,
            tcc_temperature: 0.1,
            grl_hidden: 64,
            seed: 0,
        }
    }
}

/// Refuses `loss` settings that [`Distill::with_loss`] cannot use (for a
/// caller to check before any work).
pub fn check_loss(loss: &LossConfig) -> Result<()> {
    if !(loss.weight >= 0.0 && loss.weight.is_finite()) {
        return Err(Error::invalid(format!(
            "`loss_weight` {}: must be a non-negative number",
            loss.weight
        )));
    }
    Ok(())
}

/// Refuses distilled `levels` that are not outputs of `backbone`: the
/// C2F-TCN's heads 0 … 5, MS-TCN++'s stages.
pub fn check_levels(levels: &[usize], backbone: &BackboneConfig) -> Result<()> {
    let outputs = backbone.outputs();
    if levels.is_empty() || levels.iter().any(|&l| l >= outputs) {
        let choice = match backbone.kind() {
            BackboneKind::C2fTcn => "0 (full resolution) … 5 (T/32)".to_string(),
            BackboneKind::MsTcn => format!(
                "the MS-TCN++ stages 0 (prediction generation) … {}",
                outputs - 1
            ),
        };
        return Err(Error::invalid(format!(
            "`levels` {levels:?}: choose among {choice}"
        )));
    }
    Ok(())
}

/// The distillation objective.
pub struct Distill<'a> {
    pairs: &'a [Pair],
    val: &'a [Pair],
    /// The teacher's (and so the student's) network shape.
    backbone: BackboneConfig,
    levels: Vec<usize>,
    windows: Vec<Window>,
    val_windows: Vec<Window>,
    /// Teacher heads per training window, cached.
    teacher_heads: Vec<Vec<Tensor>>,
    val_teacher_heads: Vec<Vec<Tensor>>,
    device: Device,
    loss: LossConfig,
    /// The task loss on labelled teacher-view videos (UDA losses).
    task: Option<Supervised<'a>>,
    classifier: Option<DomainClassifier>,
    /// (global step, total steps) of the step under way.
    step: Cell<(u64, u64)>,
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
            // Detached: the teacher's weights are variables, so its outputs
            // track the backprop graph, and a cached output would keep
            // that whole forward's activations alive (8.2 GB at the paper
            // preset's 63 pairs; issue 19).
            let heads = teacher.net.forward(&x, Mode::Eval, teacher.meta.steps)?;
            Ok(heads.iter().map(Tensor::detach).collect())
        })
        .collect()
}

impl<'a> Distill<'a> {
    /// Prepares windows and caches the teacher's outputs: TAS distillation
    /// with the MSE of synchronized frames (the method).
    pub fn new(
        teacher: &SegModel,
        pairs: &'a [Pair],
        val: &'a [Pair],
        levels: Vec<usize>,
        window_frames: usize,
        device: Device,
    ) -> Result<Self> {
        Self::with_loss(
            teacher,
            pairs,
            val,
            levels,
            window_frames,
            device,
            LossConfig::default(),
            None,
        )
    }

    /// As [`Distill::new`] with another adaptation loss; UDA losses need
    /// `task`, the supervised objective on labelled teacher-view videos.
    #[allow(clippy::too_many_arguments)]
    pub fn with_loss(
        teacher: &SegModel,
        pairs: &'a [Pair],
        val: &'a [Pair],
        levels: Vec<usize>,
        window_frames: usize,
        device: Device,
        loss: LossConfig,
        task: Option<Supervised<'a>>,
    ) -> Result<Self> {
        if loss.loss.is_uda() && task.is_none() {
            return Err(Error::invalid(format!(
                "`loss` {}: a UDA loss trains with the task loss on labelled teacher-view videos; give them (`task_videos`)",
                loss.loss.name()
            )));
        }
        check_loss(&loss)?;
        check_levels(&levels, &teacher.meta.backbone)?;
        let classifier = match loss.loss {
            AdaptLoss::Grl => Some(DomainClassifier::seeded(
                teacher.meta.classes.len(),
                loss.grl_hidden.max(1),
                loss.seed,
                candle_core::DType::F32,
                &device,
            )?),
            _ => None,
        };
        let backbone = teacher.meta.backbone.clone();
        let lens = |ps: &[Pair]| ps.iter().map(|p| p.student.frames).collect::<Vec<_>>();
        let val_windows = windows(&lens(val), window_frames);
        let train_windows = windows(&lens(pairs), window_frames);
        let teacher_heads = teacher_outputs(teacher, pairs, &train_windows, &device)?;
        let val_teacher_heads = teacher_outputs(teacher, val, &val_windows, &device)?;
        Ok(Distill {
            pairs,
            val,
            backbone,
            levels,
            windows: train_windows,
            val_windows,
            teacher_heads,
            val_teacher_heads,
            device,
            loss,
            task,
            classifier,
            step: Cell::new((0, 1)),
        })
    }

    /// The adaptation loss of one level between the student's rows `[n, K]`
    /// and the teacher's (constant) rows `[n, K]` of one window.
    fn set_loss(&self, student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
        let n = student.dim(0)?;
        Ok(match self.loss.loss {
            AdaptLoss::SyncMse => (student - teacher)?.sqr()?.mean_all()?,
            AdaptLoss::Mmd => mmd(teacher, student)?,
            AdaptLoss::Coral => coral(teacher, student)?,
            AdaptLoss::Grl => {
                let (step, total) = self.step.get();
                let lambda = grl_lambda(step as f64 / total.max(1) as f64);
                self.classifier
                    .as_ref()
                    .expect("GRL objective has a classifier")
                    .loss(teacher, student, lambda)?
            }
            AdaptLoss::Tcc => tcc(student, teacher, self.loss.tcc_temperature)?,
            AdaptLoss::Sdtw => {
                (soft_dtw_divergence(student, teacher, self.loss.sdtw_gamma)? / n as f64)?
            }
        })
    }

    /// Σ over levels of the mean over windows of the set/sequence loss
    /// between real frames (UDA and alignment losses).
    fn unpaired_loss(
        &self,
        student: &[Tensor],
        teacher: &[Tensor],
        mask: &Tensor,
    ) -> Result<Tensor> {
        let pyramid = self.backbone.output_masks(mask)?;
        let mut total: Option<Tensor> = None;
        for &l in &self.levels {
            let lens: Vec<f32> = pyramid[l].sum(D::Minus1)?.flatten_all()?.to_vec1()?;
            let mut terms = Vec::new();
            for (b, &len) in lens.iter().enumerate() {
                let n = len.round() as usize;
                // Covariances and distributions need two frames.
                if n < 2 {
                    continue;
                }
                let s = student[l].get(b)?.narrow(1, 0, n)?.t()?.contiguous()?;
                let t = teacher[l]
                    .get(b)?
                    .narrow(1, 0, n)?
                    .t()?
                    .contiguous()?
                    .detach();
                terms.push(self.set_loss(&s, &t)?);
            }
            if terms.is_empty() {
                continue;
            }
            let k = terms.len() as f64;
            let term = (Tensor::stack(&terms, 0)?.sum_all()? / k)?;
            total = Some(match total {
                None => term,
                Some(acc) => (acc + term)?,
            });
        }
        match total {
            Some(t) => Ok(t),
            None => Ok(Tensor::zeros((), candle_core::DType::F32, &self.device)?),
        }
    }

    /// The task loss on the next batch of labelled teacher-view windows:
    /// batch k of the run takes windows k·B … k·B + B − 1 (cyclically), so a
    /// resumed run draws what the uninterrupted one would have.
    fn task_loss(&self, student: &SegModel, batch_size: usize) -> Result<Option<Tensor>> {
        let Some(task) = &self.task else {
            return Ok(None);
        };
        let all = task.windows();
        if all.is_empty() {
            return Ok(None);
        }
        let (step, _) = self.step.get();
        let start = step as usize * batch_size;
        let batch: Vec<Window> = (0..batch_size.min(all.len()))
            .map(|k| all[(start + k) % all.len()])
            .collect();
        Ok(Some(task.loss(student, &batch)?))
    }

    /// The student's inputs `[B, D, T]`, mask `[B, T]` and the teacher's
    /// cached heads padded (or cropped) to each level's length: each window's
    /// heads were computed at that window's own padded length.
    fn batch_inputs(
        &self,
        pairs: &[Pair],
        batch: &[Window],
        cached: &[&Vec<Tensor>],
    ) -> Result<(Tensor, Tensor, Vec<Tensor>)> {
        let t = padded_len(batch);
        let feats: Vec<&Features> = pairs.iter().map(|p| &p.student).collect();
        let (x, mask) = features_batch(&feats, batch, t, &self.device)?;
        let levels = cached.first().map_or(0, |h| h.len());
        let mut teacher = Vec::with_capacity(levels);
        for l in 0..levels {
            // C2F-TCN's head l has T >> l frames, MS-TCN++'s stages T.
            let tl = self.backbone.output_frames(l, t);
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
        Ok((x, mask, teacher))
    }

    fn batch_loss(
        &self,
        student: &SegModel,
        pairs: &[Pair],
        batch: &[Window],
        cached: &[&Vec<Tensor>],
        mode_train: bool,
    ) -> Result<Tensor> {
        let (x, mask, teacher) = self.batch_inputs(pairs, batch, cached)?;
        let mode = if mode_train {
            Mode::Train { mask: Some(&mask) }
        } else {
            Mode::Eval
        };
        // With feature distillation done first ("both"), the student reads
        // its (frozen) adapter's output.
        let x = student.adapt(&x, Some(&mask))?;
        let out = student.net.forward(&x, mode, student.meta.steps)?;
        for (l, (s, t)) in out.iter().zip(&teacher).enumerate() {
            if s.dims() != t.dims() {
                return Err(Error::invalid(format!(
                    "head {l}: the student has {:?} where the teacher has {:?}",
                    s.dims(),
                    t.dims()
                )));
            }
        }
        if self.loss.loss == AdaptLoss::SyncMse {
            let masks: Vec<Option<Tensor>> = self
                .backbone
                .output_masks(&mask)?
                .into_iter()
                .map(Some)
                .collect();
            return Ok(level_mse(&out, &teacher, &self.levels, &masks)?);
        }
        self.unpaired_loss(&out, &teacher, &mask)
    }

    /// The cached teacher heads of each training window in `batch`; a
    /// window that is not one of [`Objective::windows`] is an error (the
    /// teacher's outputs exist for those only).
    fn cached_heads(&self, batch: &[Window]) -> Result<Vec<&Vec<Tensor>>> {
        batch
            .iter()
            .map(|w| {
                let i = self.windows.iter().position(|x| x == w).ok_or_else(|| {
                    Error::invalid(format!(
                        "window {w:?} is not one of this distillation objective's training windows"
                    ))
                })?;
                Ok(&self.teacher_heads[i])
            })
            .collect()
    }
}

impl Objective for Distill<'_> {
    fn windows(&self) -> &[Window] {
        &self.windows
    }

    fn loss(&self, model: &SegModel, batch: &[Window]) -> Result<Tensor> {
        let cached = self.cached_heads(batch)?;
        let adapt = self.batch_loss(model, self.pairs, batch, &cached, true)?;
        match self.task_loss(model, batch.len())? {
            None => Ok(adapt),
            Some(task) => Ok((task + (adapt * self.loss.weight)?)?),
        }
    }

    /// The method's loss (synchronized MSE, no task loss) is described for
    /// device engines; the baselines train on the CPU. A frozen adapter
    /// (`--level both`) is applied here: the engine trains the network on
    /// its output.
    fn train_batch(&self, model: &SegModel, batch: &[Window]) -> Result<Option<TrainBatch>> {
        if self.loss.loss != AdaptLoss::SyncMse || self.task.is_some() {
            return Ok(None);
        }
        let cached = self.cached_heads(batch)?;
        let (x, mask, teacher) = self.batch_inputs(self.pairs, batch, &cached)?;
        let x = model.adapt(&x, Some(&mask))?;
        Ok(Some(TrainBatch {
            x,
            mask,
            step: model.meta.steps,
            loss: BatchLoss::OutputDistillation {
                teacher,
                levels: self.levels.clone(),
            },
        }))
    }

    fn begin_step(&self, step: u64, total_steps: u64) {
        self.step.set((step, total_steps));
    }

    fn extra_vars(&self) -> Vec<(String, candle_core::Var)> {
        self.classifier
            .as_ref()
            .map(DomainClassifier::vars)
            .unwrap_or_default()
    }

    fn validate(&self, model: &SegModel) -> Result<Option<Validation>> {
        // UDA methods select on the labelled source domain's validation
        // videos (no target labels); the others on the same loss over
        // held-out pairs.
        if let Some(task) = &self.task {
            return task.validate(model);
        }
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
            details: serde_json::json!({ "val_distill_loss": loss, "loss": self.loss.loss.name() }),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recording i: teacher and student views of 10 + i frames whose single
    /// channel holds i (teacher) and 100 + i (student).
    fn recordings(n: usize) -> Vec<(String, Features, Features)> {
        (0..n)
            .map(|i| {
                let t = 10 + i;
                (
                    format!("rec{i}"),
                    Features::new(1, t, vec![i as f32; t]).unwrap(),
                    Features::new(1, t, vec![100.0 + i as f32; t]).unwrap(),
                )
            })
            .collect()
    }

    fn teacher_of(p: &Pair) -> usize {
        p.teacher.data[0] as usize
    }

    /// The cached teacher outputs are plain values: a cached output that
    /// tracked the graph held the teacher's whole forward (issue 19).
    #[test]
    fn cached_teacher_outputs_hold_no_graph() {
        use crate::model::{C2fConfig, ModelMeta};
        let meta = ModelMeta::new(
            C2fConfig::scaled(1, 3, 0.0625),
            vec!["a".into(), "b".into(), "c".into()],
            vec![],
            600,
        );
        let teacher = SegModel::new_seeded(meta, &Device::Cpu, 1).unwrap();
        let none = HashMap::new();
        let pairs = make_pairs(recordings(2), &PairOptions::default(), &none).unwrap();
        let d = Distill::new(&teacher, &pairs, &[], vec![0, 1], 600, Device::Cpu).unwrap();
        assert!(!d.teacher_heads.is_empty());
        for heads in &d.teacher_heads {
            assert!(heads.iter().all(|h| !h.track_op()));
        }
    }

    #[test]
    fn pairings() {
        let none = HashMap::new();
        let sync = make_pairs(recordings(6), &PairOptions::default(), &none).unwrap();
        assert!(sync.iter().enumerate().all(|(i, p)| teacher_of(p) == i));
        let opts = |pairing| PairOptions {
            pairing,
            seed: 3,
            ..Default::default()
        };
        let random = make_pairs(recordings(6), &opts(Pairing::Random), &none).unwrap();
        let mut partners: Vec<usize> = random.iter().map(teacher_of).collect();
        assert!(
            partners.iter().enumerate().all(|(i, &p)| i != p),
            "{partners:?}"
        );
        partners.sort_unstable();
        assert_eq!(partners, (0..6).collect::<Vec<_>>(), "a permutation");
        // Unequal lengths: truncated to the shorter.
        for p in &random {
            assert_eq!(p.teacher.frames, p.student.frames);
        }
        // Same procedure: even and odd recordings.
        let procs: HashMap<String, String> = (0..6)
            .map(|i| (format!("rec{i}"), format!("task{}", i % 2)))
            .collect();
        let same = make_pairs(recordings(6), &opts(Pairing::SameProcedure), &procs).unwrap();
        for (i, p) in same.iter().enumerate() {
            let t = teacher_of(p);
            assert_ne!(t, i);
            assert_eq!(t % 2, i % 2, "recording {i} paired across procedures");
        }
        let mut alone = procs.clone();
        alone.insert("rec5".into(), "task9".into());
        let pairs = make_pairs(recordings(6), &opts(Pairing::SameProcedure), &alone).unwrap();
        assert_eq!(pairs.len(), 5, "rec5 has no partner");
        assert!(pairs.iter().all(|p| p.name != "rec5"));
        let singles: HashMap<String, String> = (0..3)
            .map(|i| (format!("rec{i}"), format!("task{i}")))
            .collect();
        let err = make_pairs(recordings(3), &opts(Pairing::SameProcedure), &singles).unwrap_err();
        assert!(err.to_string().contains("no two videos share"), "{err}");
        let err = make_pairs(recordings(6), &opts(Pairing::SameProcedure), &none).unwrap_err();
        assert!(
            err.to_string().contains("no procedure is known for 'rec0'"),
            "{err}"
        );
    }

    #[test]
    fn pairs_fraction_keeps_a_seeded_subset() {
        let none = HashMap::new();
        let opts = |fraction, seed| PairOptions {
            fraction,
            seed,
            ..Default::default()
        };
        let quarter = make_pairs(recordings(20), &opts(0.25, 1), &none).unwrap();
        assert_eq!(quarter.len(), 5);
        // Still synchronized, in order, distinct.
        let ids: Vec<usize> = quarter.iter().map(teacher_of).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        for p in &quarter {
            assert_eq!(p.student.data[0] as usize, 100 + teacher_of(p));
        }
        let again = make_pairs(recordings(20), &opts(0.25, 1), &none).unwrap();
        assert_eq!(ids, again.iter().map(teacher_of).collect::<Vec<_>>());
        let other = make_pairs(recordings(20), &opts(0.25, 2), &none).unwrap();
        assert_ne!(ids, other.iter().map(teacher_of).collect::<Vec<_>>());
        assert_eq!(
            make_pairs(recordings(20), &opts(0.01, 1), &none)
                .unwrap()
                .len(),
            1
        );
        for bad in [0.0, 1.5, f64::NAN] {
            let err = make_pairs(recordings(3), &opts(bad, 1), &none).unwrap_err();
            assert!(err.to_string().contains("`pairs_fraction`"), "{err}");
        }
    }

    #[test]
    fn loss_and_pairing_names_round_trip() {
        for l in AdaptLoss::ALL {
            assert_eq!(l.name().parse::<AdaptLoss>().unwrap(), l);
        }
        assert!("l2"
            .parse::<AdaptLoss>()
            .unwrap_err()
            .to_string()
            .contains("sync-mse, mmd"));
        for p in ["synchronized", "random", "same-procedure"] {
            let parsed: Pairing = p.parse().unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), p);
        }
    }

    #[test]
    fn procedures_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("procedures.txt");
        std::fs::write(&path, "# video procedure\nrec1 task00\n\nrec2 task01\n").unwrap();
        let p = read_procedures(&path).unwrap();
        assert_eq!(p["rec2"], "task01");
        std::fs::write(&path, "rec1 task00 extra\n").unwrap();
        let err = read_procedures(&path).unwrap_err().to_string();
        assert!(
            err.contains("procedures.txt") && err.contains("line 1"),
            "{err}"
        );
    }

    fn all_finite(t: &Tensor) -> bool {
        t.flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|v| v.is_finite())
    }

    /// A window the objective did not make has no cached teacher output:
    /// an error through the public `Objective` API, not a panic (issue 20).
    #[test]
    fn a_foreign_window_is_an_error() {
        use crate::model::{C2fConfig, ModelMeta};
        let meta = ModelMeta::new(
            C2fConfig::scaled(1, 3, 0.0625),
            vec!["a".into(), "b".into(), "c".into()],
            vec![],
            600,
        );
        let model = SegModel::new_seeded(meta, &Device::Cpu, 1).unwrap();
        let none = HashMap::new();
        let pairs = make_pairs(recordings(2), &PairOptions::default(), &none).unwrap();
        let d = Distill::new(&model, &pairs, &[], vec![0], 600, Device::Cpu).unwrap();
        let foreign = Window {
            video: 7,
            start: 3,
            len: 5,
        };
        let mut batch = d.windows().to_vec();
        batch.push(foreign);
        let err = d.loss(&model, &batch).unwrap_err().to_string();
        assert!(err.contains("not one of this distillation"), "{err}");
        assert!(d.train_batch(&model, &[foreign]).is_err());
        assert!(d.loss(&model, d.windows()).is_ok());
    }

    /// Issue 20: a batch of one short window — a pair of 1 … 20 frames, or
    /// the 1-frame tail of a 601-frame pair — gives a finite loss and finite
    /// gradients under every adaptation loss (and the task loss). It was
    /// NaN: BatchNorm over a single valid frame divided the padding by √ε.
    #[test]
    fn short_windows_give_finite_losses_and_gradients() {
        use crate::model::{C2fConfig, ModelMeta};
        use crate::train::supervised::{LabeledVideo, SupervisedLoss};
        let meta = ModelMeta::new(
            C2fConfig::scaled(4, 3, 0.0625),
            vec!["a".into(), "b".into(), "c".into()],
            vec![],
            600,
        );
        let model = SegModel::new_seeded(meta, &Device::Cpu, 1).unwrap();
        let vars = model.varmap.all_vars();
        for n in (1..=20).chain([601]) {
            let feats = |s: f32| {
                Features::new(4, n, (0..4 * n).map(|i| (i as f32 * s).sin()).collect()).unwrap()
            };
            let pairs = vec![Pair {
                name: "a".into(),
                teacher: feats(0.37),
                student: feats(0.91),
            }];
            let videos = vec![LabeledVideo {
                name: "a".into(),
                features: feats(0.37),
                labels: (0..n).map(|i| (i % 3) as u32).collect(),
            }];
            let task = || {
                Supervised::new(
                    &videos,
                    &[],
                    600,
                    vec![],
                    SupervisedLoss::default(),
                    Device::Cpu,
                )
            };
            let check = |what: &str, objective: &dyn Objective| {
                for w in objective.windows() {
                    let loss = objective.loss(&model, std::slice::from_ref(w)).unwrap();
                    let value = loss.to_scalar::<f32>().unwrap();
                    assert!(value.is_finite(), "{what}, {n} frames, {w:?}: loss {value}");
                    let grads = loss.backward().unwrap();
                    for v in &vars {
                        if let Some(g) = grads.get(v) {
                            assert!(all_finite(g), "{what}, {n} frames, {w:?}: gradient");
                        }
                    }
                }
            };
            check("task loss", &task());
            for loss in AdaptLoss::ALL {
                let cfg = LossConfig {
                    loss,
                    ..Default::default()
                };
                let d = Distill::with_loss(
                    &model,
                    &pairs,
                    &[],
                    DEFAULT_LEVELS.to_vec(),
                    600,
                    Device::Cpu,
                    cfg,
                    loss.is_uda().then(task),
                )
                .unwrap();
                check(loss.name(), &d);
            }
        }
    }
}
