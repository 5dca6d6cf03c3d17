//! The temporal network of a model: the C2F-TCN (the sync paper's) or
//! MS-TCN++ (the most used TAS backbone). Each is written once over the op
//! interface; this is where the rest of syncseg chooses between them.
//!
//! Both map features `[B, D, T]` to a list of outputs, each the logits
//! `[B, K, Tₗ]` of one head: the C2F-TCN's six multi-resolution heads
//! (`[y, y5, …, y1]`, full resolution first), MS-TCN++'s stages (the
//! prediction generation stage first, every stage at full resolution).
//! Output distillation distils outputs by index ("levels"), prediction
//! reads the ensemble (C2F-TCN) or the last stage (MS-TCN++), the
//! supervised loss is taken on the ensemble (C2F-TCN) or on every stage and
//! summed (MS-TCN++), as the two papers train them.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::c2f_tcn::{c2f_forward, c2f_specs, C2fTcn, Mode};
use super::candle_ops::CandleLayers;
use super::config::C2fConfig;
use super::cpu_infer::{Buf, CpuInference};
use super::declare::Declare;
use super::ms_tcn::{ms_tcn_forward, ms_tcn_specs, MsTcn, MsTcnConfig};
use super::ops::Ops;
use crate::error::Result;

/// Which network, by the name users type (`--backbone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneKind {
    /// Singhania et al.'s coarse-to-fine TCN, the sync paper's network.
    #[default]
    C2fTcn,
    /// Li et al.'s multi-stage TCN (MS-TCN++).
    MsTcn,
}

impl BackboneKind {
    /// Every kind, for help texts.
    pub const ALL: [BackboneKind; 2] = [BackboneKind::C2fTcn, BackboneKind::MsTcn];

    /// `c2f-tcn` or `ms-tcn`.
    pub fn name(self) -> &'static str {
        match self {
            BackboneKind::C2fTcn => "c2f-tcn",
            BackboneKind::MsTcn => "ms-tcn",
        }
    }

    /// The reference architecture for `input_dim` features and
    /// `num_classes` classes, every width multiplied by `width_scale`
    /// (C2F-TCN: its widths; MS-TCN++: its feature maps).
    pub fn config(self, input_dim: usize, num_classes: usize, width_scale: f64) -> BackboneConfig {
        match self {
            BackboneKind::C2fTcn => {
                BackboneConfig::C2fTcn(C2fConfig::scaled(input_dim, num_classes, width_scale))
            }
            BackboneKind::MsTcn => {
                let mut cfg = MsTcnConfig::reference(input_dim, num_classes);
                cfg.f_maps = ((cfg.f_maps as f64 * width_scale).round() as usize).max(4);
                BackboneConfig::MsTcn(cfg)
            }
        }
    }
}

impl std::fmt::Display for BackboneKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BackboneKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        BackboneKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("unknown backbone '{s}': choose c2f-tcn or ms-tcn"))
    }
}

/// A network's shape, as `model.json` records it: the C2F-TCN's under the
/// key `c2f` (as syncseg always wrote it), MS-TCN++'s under `ms_tcn`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BackboneConfig {
    /// A C2F-TCN.
    #[serde(rename = "c2f")]
    C2fTcn(C2fConfig),
    /// An MS-TCN++.
    #[serde(rename = "ms_tcn")]
    MsTcn(MsTcnConfig),
}

impl BackboneConfig {
    /// Which network.
    pub fn kind(&self) -> BackboneKind {
        match self {
            BackboneConfig::C2fTcn(_) => BackboneKind::C2fTcn,
            BackboneConfig::MsTcn(_) => BackboneKind::MsTcn,
        }
    }

    /// Input feature dimension D.
    pub fn input_dim(&self) -> usize {
        match self {
            BackboneConfig::C2fTcn(c) => c.input_dim,
            BackboneConfig::MsTcn(c) => c.input_dim,
        }
    }

    /// Number of classes K.
    pub fn num_classes(&self) -> usize {
        match self {
            BackboneConfig::C2fTcn(c) => c.num_classes,
            BackboneConfig::MsTcn(c) => c.num_classes,
        }
    }

    /// Number of outputs (heads or stages): the levels distillation indexes.
    pub fn outputs(&self) -> usize {
        match self {
            BackboneConfig::C2fTcn(_) => 6,
            BackboneConfig::MsTcn(c) => c.stages(),
        }
    }

    /// The frames of output `level` for a `t`-frame input.
    pub fn output_frames(&self, level: usize, t: usize) -> usize {
        match self {
            BackboneConfig::C2fTcn(_) => t >> level,
            BackboneConfig::MsTcn(_) => t,
        }
    }

    /// The real-frame mask `[B, 1, Tₗ]` of every output from the input's
    /// `[B, T]`: C2F-TCN's pooled pyramid (a position is real if any frame
    /// under it is), the same mask for every MS-TCN++ stage.
    pub fn output_masks(&self, mask: &Tensor) -> candle_core::Result<Vec<Tensor>> {
        match self {
            BackboneConfig::C2fTcn(_) => super::c2f_tcn::mask_pyramid(mask),
            BackboneConfig::MsTcn(c) => {
                let m = mask.unsqueeze(1)?.to_dtype(DType::F32)?;
                Ok(vec![m; c.stages()])
            }
        }
    }

    /// This network causal with `lookahead` frames of future context, for
    /// streaming: MS-TCN++ only (the C2F-TCN's pooling and upsampling
    /// pyramid reads the whole window).
    pub fn with_lookahead(self, lookahead: usize) -> Result<Self> {
        match self {
            BackboneConfig::MsTcn(c) => {
                let c = c.with_lookahead(lookahead);
                c.validate()?;
                Ok(BackboneConfig::MsTcn(c))
            }
            BackboneConfig::C2fTcn(_) => Err(crate::error::Error::invalid(
                "a causal network must be an MS-TCN++ (--backbone ms-tcn): the C2F-TCN's pooling pyramid reads the whole window",
            )),
        }
    }

    /// The look-ahead of a causal network, `None` for an offline one.
    pub fn lookahead(&self) -> Option<usize> {
        match self {
            BackboneConfig::MsTcn(c) => c.lookahead(),
            BackboneConfig::C2fTcn(_) => None,
        }
    }

    /// Checks every size before anything is allocated from it.
    pub fn validate(&self) -> Result<()> {
        match self {
            BackboneConfig::C2fTcn(c) => c.validate(),
            BackboneConfig::MsTcn(c) => c.validate(),
        }
    }

    /// Every tensor of the state dict (but `num_batches_tracked`) with its
    /// shape, from the topology; call [`BackboneConfig::validate`] first.
    pub fn param_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        match self {
            BackboneConfig::C2fTcn(c) => c.param_shapes(),
            BackboneConfig::MsTcn(c) => c.param_shapes(),
        }
    }

    /// Every convolution the network applies (its declaration).
    pub fn specs(&self) -> Result<Declare> {
        match self {
            BackboneConfig::C2fTcn(c) => c2f_specs(c),
            BackboneConfig::MsTcn(c) => ms_tcn_specs(c),
        }
    }
}

/// A network on candle tensors.
pub enum Network {
    /// A C2F-TCN.
    C2fTcn(C2fTcn),
    /// An MS-TCN++.
    MsTcn(MsTcn),
}

impl Network {
    /// Builds the network, creating or loading every tensor under `vb`
    /// with the reference names.
    pub fn new(cfg: &BackboneConfig, vb: VarBuilder) -> Result<Self> {
        Ok(match cfg {
            BackboneConfig::C2fTcn(c) => Network::C2fTcn(C2fTcn::new(c, vb)?),
            BackboneConfig::MsTcn(c) => Network::MsTcn(MsTcn::new(c, vb)?),
        })
    }

    /// A fresh network with PyTorch-default initialisation in a new [`VarMap`].
    pub fn init(cfg: &BackboneConfig, device: &Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let net = Network::new(cfg, vb)?;
        Ok((net, varmap))
    }

    /// The shape.
    pub fn config(&self) -> BackboneConfig {
        match self {
            Network::C2fTcn(n) => BackboneConfig::C2fTcn(n.config().clone()),
            Network::MsTcn(n) => BackboneConfig::MsTcn(n.config().clone()),
        }
    }

    /// The C2F-TCN, if that is the network (for its heads and features).
    pub fn c2f(&self) -> Option<&C2fTcn> {
        match self {
            Network::C2fTcn(n) => Some(n),
            Network::MsTcn(_) => None,
        }
    }

    /// The candle layers by parameter prefix.
    pub fn layers(&self) -> &CandleLayers {
        match self {
            Network::C2fTcn(n) => n.layers(),
            Network::MsTcn(n) => n.layers(),
        }
    }

    /// Every output's logits for `x` `[B, D, T]`. In training mode
    /// (`mode`), MS-TCN++'s dropout masks are drawn from `step` (the
    /// model's step count: reproducible, and new every step).
    pub fn forward(&self, x: &Tensor, mode: Mode, step: u64) -> Result<Vec<Tensor>> {
        match self {
            Network::C2fTcn(n) => Ok(n.forward(x, mode)?.heads),
            Network::MsTcn(n) => {
                let seed = match mode {
                    Mode::Eval => None,
                    Mode::Train { .. } => Some(step),
                };
                n.forward(x, seed)
            }
        }
    }

    /// The prediction's class probabilities `[B, K, T]`: the heads'
    /// ensemble (C2F-TCN) or the last stage's softmax (MS-TCN++).
    pub fn probabilities(&self, outputs: &[Tensor]) -> Result<Tensor> {
        match self {
            Network::C2fTcn(n) => n.ensemble(outputs),
            Network::MsTcn(n) => n.probabilities(outputs),
        }
    }

    /// Eval-mode class probabilities `[B, K, T]` of `x` `[B, D, T]` on the
    /// CPU inference executor, which must run over [`Network::layers`]:
    /// the same function and the same bits as [`Network::forward`] in
    /// [`Mode::Eval`] followed by [`Network::probabilities`], without
    /// candle's per-op allocations.
    pub fn infer_cpu(&self, exec: &mut CpuInference, x: &Buf) -> Result<Buf> {
        let cfg = self.config();
        let (_, d, t) = x.dims();
        if d != cfg.input_dim() {
            return Err(crate::error::Error::invalid(format!(
                "the model expects {}-dimensional features, got {d}",
                cfg.input_dim()
            )));
        }
        match self {
            Network::C2fTcn(n) => {
                if t < super::MIN_FRAMES {
                    return Err(crate::error::Error::invalid(format!(
                        "C2F-TCN needs at least {} frames, got {t} (pad the input)",
                        super::MIN_FRAMES
                    )));
                }
                let out = c2f_forward(exec, n.config(), x, None)?;
                exec.ensemble(&out.heads, &n.config().ensemble_weights)
            }
            Network::MsTcn(n) => {
                let stages = ms_tcn_forward(exec, n.config(), x)?;
                let last = stages
                    .last()
                    .ok_or_else(|| crate::error::Error::invalid("MS-TCN++: no stage output"))?;
                exec.softmax(last)
            }
        }
    }

    /// The probabilities the supervised loss is taken on, summed over the
    /// list: the ensemble (C2F-TCN), every stage's softmax (MS-TCN++).
    pub fn loss_probabilities(&self, outputs: &[Tensor]) -> Result<Vec<Tensor>> {
        match self {
            Network::C2fTcn(_) => Ok(vec![self.probabilities(outputs)?]),
            Network::MsTcn(_) => outputs
                .iter()
                .map(|o| Ok(candle_nn::ops::softmax(o, 1)?))
                .collect(),
        }
    }
}
