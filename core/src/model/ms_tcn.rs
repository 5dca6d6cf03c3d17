//! MS-TCN++ (Li, Farha, Liu, Cheng, Gall; TPAMI 2020), as in the authors'
//! PyTorch release (`sj-li/MS-TCN2`, `model.py`), with its parameter names
//! so that released checkpoints import.
//!
//! ```text
//! x [B,D,T] ─PG.conv_1x1_in─ f ─┬─ × L_pg dual dilated layers ─ PG.conv_out ─▶ stage 0 logits
//!                              │
//!   layer i: f ← f + dropout(ReLU(conv_fusion.i([conv_dilated_1.i(f) (d = 2^(L−1−i)),
//!                                                 conv_dilated_2.i(f) (d = 2^i)])))
//!
//! stage s ≥ 1: softmax(stage s−1) ─Rs.{s−1}.conv_1x1─ h ─ × L_r { h ← h + dropout(conv_1x1(ReLU(conv_dilated(h), d = 2^i))) } ─ conv_out ─▶ logits
//! ```
//!
//! Every stage outputs full-resolution logits; the loss is summed over
//! stages, the prediction is the last stage's. Unlike the C2F-TCN it has no
//! BatchNorm and no minimum length.

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use super::candle_ops::{CandleLayers, CandleOps};
use super::declare::Declare;
use super::ops::{ConvSpec, Ops};
use crate::error::{Error, Result};

/// The shape of an MS-TCN++.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MsTcnConfig {
    /// Input feature dimension D.
    pub input_dim: usize,
    /// Number of classes K.
    pub num_classes: usize,
    /// Channels of every layer (`num_f_maps`).
    pub f_maps: usize,
    /// Dual dilated layers of the prediction generation stage (`num_layers_PG`).
    pub layers_pg: usize,
    /// Dilated residual layers of each refinement stage (`num_layers_R`).
    pub layers_r: usize,
    /// Refinement stages (`num_R`).
    pub refinements: usize,
    /// Drop probability of every layer's dropout (`nn.Dropout()`: 0.5).
    pub dropout: f32,
    /// A causal network (every convolution reads the past only) with a
    /// fixed look-ahead, for streaming; `None`: the release's, whose
    /// convolutions read both ways. Written to `model.json` only when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causal: Option<Causal>,
}

/// What makes an MS-TCN++ causal: every convolution's taps at or before
/// their frame, and the output for frame `t` read `lookahead` frames later
/// (the input delayed: the network sees frames up to `t + L` and no
/// further), so a stream labels frame `t` once frame `t + L` arrived.
/// Training and offline prediction pad the input with `L` zero frames at
/// the end and drop the first `L` outputs, which is what a stream does
/// when it is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Causal {
    /// Frames of future context, L.
    pub lookahead: usize,
}

/// The largest look-ahead (frames) a causal model may have: about nine
/// minutes at 30 fps, far past any live use.
pub const MAX_LOOKAHEAD: usize = 1 << 14;

impl MsTcnConfig {
    /// The release's architecture: 11 + 3 × 10 layers of 64 channels.
    pub fn reference(input_dim: usize, num_classes: usize) -> Self {
        MsTcnConfig {
            input_dim,
            num_classes,
            f_maps: 64,
            layers_pg: 11,
            layers_r: 10,
            refinements: 3,
            dropout: 0.5,
            causal: None,
        }
    }

    /// This network causal with `lookahead` frames of future context.
    pub fn with_lookahead(self, lookahead: usize) -> Self {
        MsTcnConfig {
            causal: Some(Causal { lookahead }),
            ..self
        }
    }

    /// The look-ahead L of a causal network (`None`: not causal).
    pub fn lookahead(&self) -> Option<usize> {
        self.causal.map(|c| c.lookahead)
    }

    /// Stages (prediction generation + refinements): the number of outputs.
    pub fn stages(&self) -> usize {
        1 + self.refinements
    }

    /// Checks every size before anything is allocated from it.
    pub fn validate(&self) -> Result<()> {
        let max = super::config::MAX_DIM;
        for (name, v) in [
            ("input_dim", self.input_dim),
            ("num_classes", self.num_classes),
            ("f_maps", self.f_maps),
        ] {
            if v == 0 || v > max {
                return Err(Error::invalid(format!(
                    "model config: {name} {v} must be between 1 and {max}"
                )));
            }
        }
        // Dilations are 2^(layers − 1): beyond 2^24 frames they mean nothing.
        for (name, v) in [("layers_pg", self.layers_pg), ("layers_r", self.layers_r)] {
            if !(1..=24).contains(&v) {
                return Err(Error::invalid(format!(
                    "model config: {name} {v} must be between 1 and 24"
                )));
            }
        }
        if self.refinements > 64 {
            return Err(Error::invalid(format!(
                "model config: refinements {} must be at most 64",
                self.refinements
            )));
        }
        if let Some(l) = self.lookahead() {
            if l > MAX_LOOKAHEAD {
                return Err(Error::invalid(format!(
                    "model config: lookahead {l} must be at most {MAX_LOOKAHEAD} frames"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid(format!(
                "model config: dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }

    /// Every tensor with its shape, from the topology, without allocating.
    pub fn param_shapes(&self) -> Result<Vec<(String, Vec<usize>)>> {
        self.validate()?;
        Ok(ms_tcn_specs(self)?.param_shapes())
    }
}

/// The MS-TCN++'s topology, once for every backend: `x` `[D, T]` to the
/// logits `[K, T]` of every stage, the prediction generation stage first.
/// A causal network with look-ahead L runs [`ms_tcn_stages`] over `x`
/// followed by L zero frames and keeps the last T frames of each stage:
/// output `t` has seen input frames `0 ..= t + L`.
pub fn ms_tcn_forward<O: Ops>(o: &mut O, cfg: &MsTcnConfig, x: &O::T) -> Result<Vec<O::T>> {
    match cfg.lookahead() {
        None | Some(0) => ms_tcn_stages(o, cfg, x),
        Some(l) => {
            let t = o.dims(x).1;
            // Resampling to its own length is the identity (exactly, in
            // every backend); its zero padding on the right is the delay.
            let delayed = o.resample(x, t, t + l)?;
            ms_tcn_stages(o, cfg, &delayed)?
                .iter()
                .map(|s| o.frames(s, l, t))
                .collect()
        }
    }
}

/// The layers of [`ms_tcn_forward`], output `t` from the inputs up to `t`
/// when the network is causal (what a stream runs, frame by frame).
pub fn ms_tcn_stages<O: Ops>(o: &mut O, cfg: &MsTcnConfig, x: &O::T) -> Result<Vec<O::T>> {
    let (f, k, p) = (cfg.f_maps, cfg.num_classes, cfg.dropout);
    let causal = cfg.causal.is_some();
    let mut h = o.conv(
        &ConvSpec::plain("PG.conv_1x1_in", cfg.input_dim, f, 1),
        x,
        None,
    )?;
    for i in 0..cfg.layers_pg {
        let (d1, d2) = (1 << (cfg.layers_pg - 1 - i), 1 << i);
        let c1 = ConvSpec::plain(format!("PG.conv_dilated_1.{i}"), f, f, 3)
            .dilated(d1)
            .causal(causal);
        let c2 = ConvSpec::plain(format!("PG.conv_dilated_2.{i}"), f, f, 3)
            .dilated(d2)
            .causal(causal);
        let a = o.conv(&c1, &h, None)?;
        let b = o.conv(&c2, &h, None)?;
        let cat = o.cat(&[&a, &b])?;
        let fusion = ConvSpec::plain(format!("PG.conv_fusion.{i}"), 2 * f, f, 1).relu();
        let fused = o.conv(&fusion, &cat, None)?;
        let dropped = o.dropout(&fused, p)?;
        h = o.add(&dropped, &h)?;
    }
    let mut out = o.conv(&ConvSpec::plain("PG.conv_out", f, k, 1), &h, None)?;
    let mut stages = vec![out.clone()];
    for s in 0..cfg.refinements {
        let probs = o.softmax(&out)?;
        let r = format!("Rs.{s}");
        let mut h = o.conv(
            &ConvSpec::plain(format!("{r}.conv_1x1"), k, f, 1),
            &probs,
            None,
        )?;
        for i in 0..cfg.layers_r {
            let l = format!("{r}.layers.{i}");
            let dilated = ConvSpec::plain(format!("{l}.conv_dilated"), f, f, 3)
                .dilated(1 << i)
                .causal(causal)
                .relu();
            let a = o.conv(&dilated, &h, None)?;
            let b = o.conv(&ConvSpec::plain(format!("{l}.conv_1x1"), f, f, 1), &a, None)?;
            let dropped = o.dropout(&b, p)?;
            h = o.add(&h, &dropped)?;
        }
        out = o.conv(&ConvSpec::plain(format!("{r}.conv_out"), f, k, 1), &h, None)?;
        stages.push(out.clone());
    }
    Ok(stages)
}

/// Every convolution of `cfg`'s MS-TCN++, from its topology.
pub fn ms_tcn_specs(cfg: &MsTcnConfig) -> Result<Declare> {
    let mut d = Declare::new();
    ms_tcn_forward(&mut d, cfg, &(cfg.input_dim, 1))?;
    Ok(d)
}

/// The MS-TCN++ on candle tensors.
pub struct MsTcn {
    cfg: MsTcnConfig,
    layers: CandleLayers,
}

impl MsTcn {
    /// Builds the model, creating or loading every tensor under `vb` with
    /// the release's names (`PG.conv_1x1_in.weight`, `Rs.0.layers.3.conv_dilated.bias`, …).
    pub fn new(cfg: &MsTcnConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let layers = CandleLayers::new(&ms_tcn_specs(cfg)?, &vb)?;
        Ok(MsTcn {
            cfg: cfg.clone(),
            layers,
        })
    }

    /// A fresh model with PyTorch-default initialisation in a new [`VarMap`].
    pub fn init(cfg: &MsTcnConfig, device: &Device) -> Result<(Self, VarMap)> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = MsTcn::new(cfg, vb)?;
        Ok((model, varmap))
    }

    /// The model holding `tensors` (a state dict, e.g. the release's
    /// `.pth`): every parameter of `cfg` must be there with its shape, and
    /// nothing else; `source` names the file in errors.
    pub fn from_state_dict(
        cfg: &MsTcnConfig,
        tensors: &std::collections::HashMap<String, Tensor>,
        device: &Device,
        source: &std::path::Path,
    ) -> Result<(Self, VarMap)> {
        let shapes = cfg.param_shapes()?;
        for (name, shape) in &shapes {
            let t = tensors.get(name).ok_or_else(|| {
                Error::format(
                    source,
                    format!("missing tensor '{name}': not this MS-TCN++"),
                )
            })?;
            if t.dims() != shape.as_slice() {
                return Err(Error::format(
                    source,
                    format!(
                        "tensor '{name}' has shape {:?}, the model {shape:?}",
                        t.dims()
                    ),
                ));
            }
        }
        if let Some(extra) = tensors
            .keys()
            .find(|n| !shapes.iter().any(|(s, _)| s == *n))
        {
            return Err(Error::format(
                source,
                format!("unexpected tensor '{extra}': not this MS-TCN++"),
            ));
        }
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
            for (name, _) in &shapes {
                let t = tensors[name].to_dtype(DType::F32)?.to_device(device)?;
                data.insert(name.clone(), candle_core::Var::from_tensor(&t)?);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        Ok((MsTcn::new(cfg, vb)?, varmap))
    }

    /// The configuration.
    pub fn config(&self) -> &MsTcnConfig {
        &self.cfg
    }

    /// The candle layers by parameter prefix.
    pub fn layers(&self) -> &CandleLayers {
        &self.layers
    }

    /// Every stage's logits `[B, K, T]` for `x` `[B, D, T]`; with
    /// `dropout_seed`, in training mode (dropout drawn from the seed).
    pub fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Vec<Tensor>> {
        let (_, d, t) = x.dims3()?;
        if d != self.cfg.input_dim {
            return Err(Error::invalid(format!(
                "the model expects {}-dimensional features, got {d}",
                self.cfg.input_dim
            )));
        }
        if t == 0 {
            return Err(Error::invalid("MS-TCN++: the input has no frames"));
        }
        let mut ops = match dropout_seed {
            Some(seed) => CandleOps::new(&self.layers, true).with_dropout_seed(seed),
            None => CandleOps::new(&self.layers, false),
        };
        ms_tcn_forward(&mut ops, &self.cfg, x)
    }

    /// The prediction's probabilities `[B, K, T]`: softmax of the last stage.
    pub fn probabilities(&self, stages: &[Tensor]) -> Result<Tensor> {
        let last = stages
            .last()
            .ok_or_else(|| Error::invalid("MS-TCN++: no stage output"))?;
        Ok(candle_nn::ops::softmax(last, 1)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MsTcnConfig {
        MsTcnConfig {
            f_maps: 8,
            layers_pg: 4,
            layers_r: 3,
            refinements: 2,
            ..MsTcnConfig::reference(6, 3)
        }
    }

    /// The reference model's state dict: names, count and shapes.
    #[test]
    fn parameter_names_follow_the_release() {
        let cfg = MsTcnConfig::reference(2048, 19);
        let shapes = cfg.param_shapes().unwrap();
        // PG: in + 11 × (2 dilated + fusion) + out; R: in + 10 × 2 + out.
        assert_eq!(shapes.len(), 2 * (1 + 11 * 3 + 1 + 3 * (1 + 10 * 2 + 1)));
        let get = |n: &str| shapes.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(get("PG.conv_1x1_in.weight"), [64, 2048, 1]);
        assert_eq!(get("PG.conv_dilated_1.0.weight"), [64, 64, 3]);
        assert_eq!(get("PG.conv_fusion.10.weight"), [64, 128, 1]);
        assert_eq!(get("PG.conv_out.bias"), [19]);
        assert_eq!(get("Rs.0.conv_1x1.weight"), [64, 19, 1]);
        assert_eq!(get("Rs.2.layers.9.conv_dilated.weight"), [64, 64, 3]);
        assert_eq!(get("Rs.2.conv_out.weight"), [19, 64, 1]);
        let (_, varmap) = MsTcn::init(&cfg, &Device::Cpu).unwrap();
        let mut want = shapes;
        want.sort();
        assert_eq!(crate::model::var_shapes(&varmap), want);
    }

    /// Eval is deterministic and one output per stage; training draws its
    /// dropout from the seed alone.
    #[test]
    fn stages_and_dropout() {
        let cfg = small();
        let (net, _) = MsTcn::init(&cfg, &Device::Cpu).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 6, 50), &Device::Cpu).unwrap();
        let a = net.forward(&x, None).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(a[2].dims(), [2, 3, 50]);
        let flat = |v: &[Tensor]| -> Vec<f32> {
            Tensor::cat(v, 1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        };
        assert_eq!(flat(&a), flat(&net.forward(&x, None).unwrap()));
        let t1 = flat(&net.forward(&x, Some(1)).unwrap());
        assert_eq!(t1, flat(&net.forward(&x, Some(1)).unwrap()));
        assert_ne!(t1, flat(&net.forward(&x, Some(2)).unwrap()));
        assert_ne!(t1, flat(&a));
        let p = net.probabilities(&a).unwrap().sum(1).unwrap();
        let p: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
        assert!(p.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }

    /// A dilated convolution equals candle's conv1d with that dilation.
    #[test]
    fn dilated_convolution_matches_conv1d() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let conv = super::super::c2f_tcn::TemporalConv::dilated(4, 5, 3, 8, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (2, 4, 30), &Device::Cpu).unwrap();
        let ours = conv.forward(&x).unwrap();
        let theirs = x
            .conv1d(conv.weight(), 8, 1, 8, 1)
            .unwrap()
            .broadcast_add(&conv.bias().reshape((1, 5, 1)).unwrap())
            .unwrap();
        let diff = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }
}
