//! The op interface ([`syncseg_core::model::ops::Ops`]) on wgpu: a
//! [`Recorder`] records each op's kernels into a [`Graph`], so the
//! networks written once in core (e.g. `c2f_forward`) become GPU graphs.
//!
//! * Inference ([`Recorder::inference`]): BatchNorm is folded into the
//!   convolutions ([`weights::FoldedWeights`]), activations are fused into
//!   their epilogue.
//! * Training ([`Recorder::training`]): batch statistics over valid frames;
//!   every op also pushes its backward onto a [`tape::Tape`], and
//!   [`Recorder::backward`] replays it in reverse. Accumulating the
//!   gradient of a tensor with several consumers is the tape's job.
//!
//! A tensor is a list of parts, each a buffer `[B, Cᵢ, T]`: concatenation
//! costs nothing, as a convolution reads its input parts at their channel
//! offsets (and its backward writes each part's gradient into the part's
//! own buffer). Pooling and resampling treat a part as `B·Cᵢ` rows of T.
//! A linear layer is a convolution of width 1; LayerNorm and attention
//! address `[B, C, T]` through their kernels' layouts.

pub mod tape;
pub mod weights;

use std::collections::HashMap;

use syncseg_core::model::ops::{Act, ConvSpec, LayerNormSpec, LinearSpec, Ops};
use syncseg_core::{Error, Result};

use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::add::{add_into, AddParams};
use crate::kernels::attention::{attention, Attention, SeqLayout, MAX_HEAD_DIM};
use crate::kernels::batch_norm::{bn_apply, bn_stats, BatchNormSlots};
use crate::kernels::conv::{conv_batch, Activation, Batch, ConvWeights, InputPart, OutputRows};
use crate::kernels::copy::{copy_window, WindowParams};
use crate::kernels::ensemble::{ensemble_head_batch, EnsembleParams};
use crate::kernels::gelu::gelu;
use crate::kernels::layer_norm::{layer_norm, NormFrames};
use crate::kernels::mse_grad::{masked_mse_grad, MseParams, MseSlots};
use crate::kernels::pool::{max_pool, resample, resample_table};
use crate::kernels::reduce::{sum, PARTIALS};
use crate::kernels::seg_loss::{seg_loss_grad, SegLossParams, SegLossSlots};
use crate::kernels::swiglu::swiglu;
use crate::train::params::NetParams;
use tape::{ConvEntry, Entry, NormEntry, Tape};
use weights::FoldedWeights;

/// One buffer of the graph: `[B, rows, len]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Value {
    pub slot: Slot,
    pub rows: usize,
    pub len: usize,
    /// Whether anything trained lies upstream (the input features and
    /// masks do not need gradients).
    pub needs_grad: bool,
}

/// A tensor of the recorder: parts (values) concatenated along channels.
#[derive(Debug, Clone)]
pub struct DTensor {
    parts: Vec<usize>,
    channels: usize,
    len: usize,
}

/// Where the weights come from.
#[derive(Clone, Copy)]
enum Weights<'a> {
    Folded(&'a FoldedWeights),
    Train(&'a NetParams),
}

/// Records ops into a graph over a batch of `B` windows.
pub struct Recorder<'a> {
    g: &'a mut Graph,
    weights: Weights<'a>,
    batch: usize,
    values: Vec<Value>,
    tape: Option<Tape>,
    /// Resampling tables by `(t_in, t_up)`, shared by every use.
    tables: HashMap<(usize, usize), Slot>,
    /// All-ones masks by length (BatchNorm over every frame).
    ones: HashMap<usize, Slot>,
    /// The dropout ops in order, whose masks the host seeds per step.
    dropouts: Vec<DropoutStream>,
}

/// One dropout op of a training graph: the parameter blocks (forward and
/// backward) that carry its seed, rewritten per step with
/// `AddParams::dropout(model::dropout::stream_seed(step seed, index), p)`.
pub struct DropoutStream {
    pub p: f32,
    pub blocks: Vec<(ParamsId, AddParams)>,
}

impl DropoutStream {
    /// Sets this op's masks for the step seeded `step_seed`; `index` is the
    /// op's position among the graph's dropouts.
    pub fn seed(&self, g: &Graph, step_seed: u64, index: usize) {
        let seed = syncseg_core::model::dropout::stream_seed(step_seed, index as u32);
        for (id, template) in &self.blocks {
            let p = template.dropout(seed, self.p);
            g.set_params(*id, bytemuck::bytes_of(&p));
        }
    }
}

/// The inputs of a segmentation loss the host writes before each replay.
pub struct SegLossInputs {
    /// Labels `[B, T]` (u32) and cross-entropy weights `[B, T]`.
    pub labels: Slot,
    pub weight: Slot,
    /// Each term's parameter block (normalisers depend on the batch; the
    /// same for every term).
    pub params: Vec<ParamsId>,
}

/// One distilled tensor's inputs: the teacher `[B, C, T]` and the term's
/// parameter block.
pub struct MseInputs {
    pub teacher: Slot,
    pub params: ParamsId,
}

impl<'a> Recorder<'a> {
    /// Inference over one window, with `weights` folded.
    pub fn inference(g: &'a mut Graph, weights: &'a FoldedWeights) -> Self {
        Self::inference_over(g, weights, 1)
    }

    /// Inference over `batch` windows (a ViT's images), with `weights` folded.
    pub fn inference_over(g: &'a mut Graph, weights: &'a FoldedWeights, batch: usize) -> Self {
        Self::with(g, Weights::Folded(weights), batch, None)
    }

    /// Training over `batch` windows with `params`: batch statistics and a
    /// tape.
    pub fn training(g: &'a mut Graph, params: &'a NetParams, batch: usize) -> Self {
        Self::with(g, Weights::Train(params), batch, Some(Tape::default()))
    }

    fn with(g: &'a mut Graph, weights: Weights<'a>, batch: usize, tape: Option<Tape>) -> Self {
        Recorder {
            g,
            weights,
            batch,
            values: Vec::new(),
            tape,
            tables: HashMap::new(),
            ones: HashMap::new(),
            dropouts: Vec::new(),
        }
    }

    /// The graph being recorded.
    pub fn graph(&mut self) -> &mut Graph {
        self.g
    }

    fn value(&mut self, slot: Slot, rows: usize, len: usize, needs_grad: bool) -> usize {
        self.values.push(Value {
            slot,
            rows,
            len,
            needs_grad,
        });
        self.values.len() - 1
    }

    fn alloc_value(&mut self, rows: usize, len: usize, label: &str) -> usize {
        let slot = self.g.alloc(self.batch * rows * len, label);
        self.value(slot, rows, len, true)
    }

    fn tensor(&self, parts: Vec<usize>) -> DTensor {
        let channels = parts.iter().map(|&v| self.values[v].rows).sum();
        let len = parts.first().map_or(0, |&v| self.values[v].len);
        DTensor {
            parts,
            channels,
            len,
        }
    }

    /// An input `[B, channels, len]` held in `slot` (no gradient).
    pub fn input(&mut self, slot: Slot, channels: usize, len: usize) -> DTensor {
        let v = self.value(slot, channels, len, false);
        self.tensor(vec![v])
    }

    /// A new input buffer `[B, channels, len]` the host writes.
    pub fn new_input(&mut self, channels: usize, len: usize, label: &str) -> (DTensor, Slot) {
        let slot = self.g.alloc(self.batch * channels * len, label);
        (self.input(slot, channels, len), slot)
    }

    /// The one buffer of a single-part tensor.
    pub fn slot(&self, x: &DTensor) -> Result<Slot> {
        match x.parts.as_slice() {
            [v] => Ok(self.values[*v].slot),
            _ => Err(Error::invalid(format!(
                "internal: a tensor of {} parts where one buffer is needed",
                x.parts.len()
            ))),
        }
    }

    fn input_parts(&self, x: &DTensor) -> Vec<(usize, InputPart)> {
        let mut ci0 = 0;
        x.parts
            .iter()
            .map(|&v| {
                let value = self.values[v];
                let part = InputPart {
                    x: value.slot,
                    ci0,
                    channels: value.rows,
                };
                ci0 += value.rows;
                (v, part)
            })
            .collect()
    }

    /// The value of a single-part tensor; a tensor of several parts
    /// (features split over bindings, in inference) is gathered into one
    /// buffer first.
    fn single(&mut self, x: &DTensor) -> Result<usize> {
        if let [v] = x.parts.as_slice() {
            return Ok(*v);
        }
        if self.tape.is_some() {
            return Err(Error::invalid(
                "internal: a tensor of several parts where one buffer is needed in training",
            ));
        }
        let (b, c, t) = (self.batch, x.channels, x.len);
        let out = self.alloc_value(c, t, "gathered");
        let dst = self.values[out].slot;
        for (_, part) in self.input_parts(x) {
            for i in 0..b {
                let n = part.channels * t;
                let (src0, dst0) = (i * n, (i * c + part.ci0) * t);
                self.g.copy_range(part.x, src0, dst, dst0, n);
            }
        }
        Ok(out)
    }

    fn table(&mut self, t_in: usize, t_up: usize) -> Slot {
        if let Some(&s) = self.tables.get(&(t_in, t_up)) {
            return s;
        }
        let s = self
            .g
            .constant_u32(&resample_table(t_in, t_up), "resample.table");
        self.tables.insert((t_in, t_up), s);
        s
    }

    fn mask_slot(&mut self, mask: Option<&DTensor>, len: usize) -> Result<Slot> {
        match mask {
            Some(m) if m.len == len && m.channels == 1 => self.slot(m),
            Some(m) => Err(Error::invalid(format!(
                "a mask of {} channels × {} frames for a {len}-frame tensor",
                m.channels, m.len
            ))),
            None => {
                if let Some(&s) = self.ones.get(&len) {
                    return Ok(s);
                }
                let s = self.g.constant(&vec![1.0; self.batch * len], "ones");
                self.ones.insert(len, s);
                Ok(s)
            }
        }
    }

    /// Records the backward of everything recorded so far from the
    /// gradients the losses wrote, and returns the indices (into
    /// [`NetParams::params`]) of the parameters that received one.
    pub fn backward(&mut self) -> Result<Vec<usize>> {
        let mut tape = self
            .tape
            .take()
            .ok_or_else(|| Error::invalid("internal: backward of an inference graph"))?;
        tape.replay(
            self.g,
            &self.values,
            self.batch,
            &self.tables,
            &mut self.dropouts,
        )?;
        Ok(tape.params_with_grad())
    }

    /// The graph's dropout ops, in order (their seeds are set per step).
    pub fn take_dropouts(&mut self) -> Vec<DropoutStream> {
        std::mem::take(&mut self.dropouts)
    }

    fn train_tape(&mut self) -> Result<&mut Tape> {
        self.tape
            .as_mut()
            .ok_or_else(|| Error::invalid("internal: a training op in an inference graph"))
    }

    /// Σ over `probs` (each `[B, K, T]`) of core's supervised loss
    /// (cross-entropy plus smoothing over the real frames `mask`), every
    /// term on the same labels; writes each ∂L/∂probs for the backward.
    /// Returns what the host writes per batch, and the loss (one float).
    pub fn segmentation_loss(
        &mut self,
        probs: &[DTensor],
        mask: &DTensor,
    ) -> Result<(SegLossInputs, Slot)> {
        let (b, t) = (self.batch, mask.len);
        let mask = self.mask_slot(Some(mask), t)?;
        let labels = self.g.alloc(b * t, "labels");
        let weight = self.g.alloc(b * t, "weight");
        let total = self.g.alloc(1, "loss");
        let mut params = Vec::with_capacity(probs.len());
        for (i, p) in probs.iter().enumerate() {
            if p.len != t {
                return Err(Error::invalid(format!(
                    "internal: probabilities of {} frames for a {t}-frame batch",
                    p.len
                )));
            }
            let probs_slot = self.slot(p)?;
            let frame_loss = self.g.alloc(b * t, "frame_loss");
            let tape = self
                .tape
                .as_mut()
                .ok_or_else(|| Error::invalid("internal: a loss in an inference graph"))?;
            let dprobs = tape.fresh_grad(self.g, &self.values, b, p.parts[0])?;
            let slots = SegLossSlots {
                probs: probs_slot,
                labels,
                weight,
                mask,
                dprobs,
                frame_loss,
                batch: b,
            };
            let placeholder = SegLossParams::new(p.channels, t, &[], &[], 0.0, 1.0);
            params.push(seg_loss_grad(self.g, &slots, &placeholder));
            let term = self.sum(frame_loss, b * t);
            add_into(self.g, term, total, AddParams::new(1, i > 0));
        }
        let inputs = SegLossInputs {
            labels,
            weight,
            params,
        };
        Ok((inputs, total))
    }

    /// Σ over `terms` of the masked MSE between each student tensor and a
    /// teacher the host writes (core's `level_mse`), over each term's real
    /// frames `mask`; writes each student's gradient for the backward.
    pub fn mse_loss(&mut self, terms: &[(DTensor, DTensor)]) -> Result<(Vec<MseInputs>, Slot)> {
        let b = self.batch;
        let frames: usize = terms.iter().map(|(s, _)| s.len).sum();
        let frame_loss = self.g.alloc(b * frames, "frame_loss");
        let mut offset = 0;
        let mut inputs = Vec::with_capacity(terms.len());
        for (student, mask) in terms {
            let (k, l) = (student.channels, student.len);
            let sv = student.parts[0];
            let student_slot = self.slot(student)?;
            let mask = self.mask_slot(Some(mask), l)?;
            let teacher = self.g.alloc(b * k * l, "teacher");
            let tape = self
                .tape
                .as_mut()
                .ok_or_else(|| Error::invalid("internal: a loss in an inference graph"))?;
            let ds = tape.fresh_grad(self.g, &self.values, b, sv)?;
            let slots = MseSlots {
                student: student_slot,
                teacher,
                mask,
                ds,
                frame_loss,
                batch: b,
            };
            let placeholder = MseParams::new(k, l, &[], false).at_offset(offset);
            let params = masked_mse_grad(self.g, &slots, &placeholder);
            inputs.push(MseInputs { teacher, params });
            offset += b * l;
        }
        let loss = self.sum(frame_loss, b * frames);
        Ok((inputs, loss))
    }

    fn sum(&mut self, x: Slot, n: usize) -> Slot {
        let partials = self.g.alloc(PARTIALS, "partials");
        let out = self.g.alloc(1, "loss");
        sum(self.g, x, partials, out, n);
        out
    }

    /// The ensemble of `heads` (of `[1, K, Tₗ]`) written into the rows of
    /// `probs` `[K, ·]`; returns each dispatch's parameter block, whose
    /// output frame, length and stride the caller sets per window (the
    /// template has stride and length T, at frame 0).
    pub fn ensemble_into(
        &mut self,
        heads: &[DTensor],
        weights: &[f32],
        probs: Slot,
    ) -> Result<Vec<(ParamsId, EnsembleParams)>> {
        let t = heads.first().map_or(0, |h| h.len);
        let total: f32 = weights.iter().sum();
        let mut out = Vec::new();
        for (head, &w) in heads.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            let params = EnsembleParams {
                classes: head.channels as u32,
                t_head: head.len as u32,
                len: t as u32,
                out_stride: t as u32,
                out_t0: 0,
                accumulate: u32::from(!out.is_empty()),
                weight: w / total,
                _pad: 0,
            };
            let slot = self.slot(head)?;
            let table = self.table(head.len, t);
            let id = ensemble_head_batch(self.g, slot, table, probs, params, self.batch);
            out.push((id, params));
        }
        Ok(out)
    }
}

impl Ops for Recorder<'_> {
    type T = DTensor;

    fn dims(&self, x: &DTensor) -> (usize, usize) {
        (x.channels, x.len)
    }

    fn conv(&mut self, spec: &ConvSpec, x: &DTensor, mask: Option<&DTensor>) -> Result<DTensor> {
        if x.channels != spec.cin {
            return Err(Error::invalid(format!(
                "{}: {} input channels, the convolution takes {}",
                spec.name, x.channels, spec.cin
            )));
        }
        let (len, cout, b) = (x.len, spec.cout, self.batch);
        let inputs = self.input_parts(x);
        let parts: Vec<InputPart> = inputs.iter().map(|(_, p)| *p).collect();
        let batch = Batch {
            count: b,
            y_rows: cout,
        };
        let rows = |y: Slot| OutputRows {
            y,
            co0: 0,
            cout,
            out_c0: 0,
        };
        let fused = match spec.act {
            Act::None => Activation::None,
            Act::Relu => Activation::Relu,
        };
        match self.weights {
            Weights::Folded(w) => {
                let mut cw = w.get(&spec.name)?.bind(self.g);
                cw.dilation = spec.dilation;
                cw.causal = spec.causal;
                let y = self.alloc_value(cout, len, "act");
                let slot = self.values[y].slot;
                conv_batch(self.g, &cw, &parts, rows(slot), len, batch, fused, false);
                Ok(self.tensor(vec![y]))
            }
            Weights::Train(p) => {
                let cp = p.conv(&spec.name)?;
                let cw = ConvWeights {
                    weight: self.g.import(&p.params[cp.weight].theta),
                    bias: self.g.import(&p.params[cp.bias].theta),
                    cout: cp.cout,
                    cin: cp.cin,
                    k: cp.k,
                    dilation: spec.dilation,
                    causal: spec.causal,
                };
                let dw = self.g.import(&p.params[cp.weight].grad);
                let db = self.g.import(&p.params[cp.bias].grad);
                let (out, norm) = match &spec.norm {
                    Some(norm) => {
                        let bn = p.norm(norm)?;
                        let pre = self.alloc_value(cout, len, "conv");
                        let pre_slot = self.values[pre].slot;
                        let none = Activation::None;
                        conv_batch(self.g, &cw, &parts, rows(pre_slot), len, batch, none, false);
                        let slots = BatchNormSlots {
                            gamma_beta: self.g.import(&p.params[bn.gamma_beta].theta),
                            running: self.g.import(&bn.running),
                            stats: self.g.alloc(2 * bn.channels + 1, "bn.stats"),
                            mask: self.mask_slot(mask, len)?,
                            channels: bn.channels,
                            batch: b,
                            t_len: len,
                        };
                        bn_stats(self.g, &slots, pre_slot);
                        let out = self.alloc_value(cout, len, "act");
                        let relu = spec.act == Act::Relu;
                        bn_apply(self.g, &slots, pre_slot, self.values[out].slot, relu);
                        let dgb = self.g.import(&p.params[bn.gamma_beta].grad);
                        let entry = NormEntry {
                            pre,
                            slots,
                            dgb,
                            param: bn.gamma_beta,
                        };
                        (out, Some(entry))
                    }
                    None => {
                        let y = self.alloc_value(cout, len, "act");
                        let slot = self.values[y].slot;
                        conv_batch(self.g, &cw, &parts, rows(slot), len, batch, fused, false);
                        (y, None)
                    }
                };
                let entry = ConvEntry {
                    w: cw,
                    dw,
                    db,
                    params: (cp.weight, cp.bias),
                    inputs,
                    out,
                    act: spec.act,
                    norm,
                    len,
                };
                self.train_tape()?.push(Entry::Conv(entry));
                Ok(self.tensor(vec![out]))
            }
        }
    }

    fn cat(&mut self, parts: &[&DTensor]) -> Result<DTensor> {
        let len = parts.first().map_or(0, |p| p.len);
        if parts.iter().any(|p| p.len != len) {
            return Err(Error::invalid(
                "internal: concatenating tensors of different lengths",
            ));
        }
        Ok(self.tensor(parts.iter().flat_map(|p| p.parts.clone()).collect()))
    }

    fn max_pool(&mut self, x: &DTensor, k: usize) -> Result<DTensor> {
        let len = x.len / k;
        let mut out = Vec::with_capacity(x.parts.len());
        for &v in &x.parts {
            let xv = self.values[v];
            let y = self.alloc_value(xv.rows, len, "pool");
            self.values[y].needs_grad = xv.needs_grad;
            let ys = self.values[y].slot;
            max_pool(self.g, xv.slot, ys, self.batch * xv.rows, xv.len, k);
            if let Some(tape) = self.tape.as_mut() {
                tape.push(Entry::MaxPool { x: v, y, k });
            }
            out.push(y);
        }
        Ok(self.tensor(out))
    }

    fn resample(&mut self, x: &DTensor, len: usize, pad_to: usize) -> Result<DTensor> {
        let table = self.table(x.len, len);
        let mut out = Vec::with_capacity(x.parts.len());
        for &v in &x.parts {
            let xv = self.values[v];
            let y = self.alloc_value(xv.rows, pad_to, "resample");
            self.values[y].needs_grad = xv.needs_grad;
            let ys = self.values[y].slot;
            let rows = self.batch * xv.rows;
            resample(self.g, xv.slot, table, ys, rows, xv.len, len, pad_to, 0);
            if let Some(tape) = self.tape.as_mut() {
                tape.push(Entry::Resample { x: v, y, t_up: len });
            }
            out.push(y);
        }
        Ok(self.tensor(out))
    }

    fn add(&mut self, a: &DTensor, b: &DTensor) -> Result<DTensor> {
        if (a.channels, a.len) != (b.channels, b.len) {
            return Err(Error::invalid(format!(
                "adding tensors of {} × {} and {} × {}",
                a.channels, a.len, b.channels, b.len
            )));
        }
        let (va, vb) = (self.single(a)?, self.single(b)?);
        let (sa, sb) = (self.values[va].slot, self.values[vb].slot);
        let out = self.alloc_value(a.channels, a.len, "add");
        self.values[out].needs_grad = self.values[va].needs_grad || self.values[vb].needs_grad;
        let so = self.values[out].slot;
        let n = self.batch * a.channels * a.len;
        add_into(self.g, sa, so, AddParams::new(n, false));
        add_into(self.g, sb, so, AddParams::new(n, true));
        if let Some(tape) = self.tape.as_mut() {
            tape.push(Entry::Add { a: va, b: vb, out });
        }
        Ok(self.tensor(vec![out]))
    }

    fn linear(&mut self, spec: &LinearSpec, x: &DTensor) -> Result<DTensor> {
        // A 1×1 convolution: the weight `[cout, cin]` is `[cout, cin, 1]`.
        self.conv(
            &ConvSpec::plain(&spec.name, spec.cin, spec.cout, 1),
            x,
            None,
        )
    }

    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &DTensor) -> Result<DTensor> {
        if x.channels != spec.channels {
            return Err(Error::invalid(format!(
                "{}: {} channels, the norm takes {}",
                spec.name, x.channels, spec.channels
            )));
        }
        let vx = self.single(x)?;
        let (c, t) = (x.channels, x.len);
        // γ and β are trained: the output needs a gradient.
        let y = self.alloc_value(c, t, "layer_norm");
        let frames = NormFrames {
            channels: c,
            frames: self.batch * t,
            block: t,
        };
        let eps = spec.eps as f32;
        let (xs, ys) = (self.values[vx].slot, self.values[y].slot);
        match self.weights {
            Weights::Folded(w) => {
                let (gamma, beta) = w.norm(&spec.name)?.bind(self.g);
                layer_norm(self.g, xs, gamma, beta, ys, frames, eps);
            }
            Weights::Train(p) => {
                let ln = p.layer_norm(&spec.name)?;
                let gamma = self.g.import(&p.params[ln.gamma].theta);
                let beta = self.g.import(&p.params[ln.beta].theta);
                layer_norm(self.g, xs, gamma, beta, ys, frames, eps);
                let entry = tape::LayerNormEntry {
                    x: vx,
                    y,
                    gamma,
                    dgamma: self.g.import(&p.params[ln.gamma].grad),
                    dbeta: self.g.import(&p.params[ln.beta].grad),
                    params: (ln.gamma, ln.beta),
                    frames,
                    eps,
                };
                self.train_tape()?.push(Entry::LayerNorm(entry));
            }
        }
        Ok(self.tensor(vec![y]))
    }

    fn gelu(&mut self, x: &DTensor) -> Result<DTensor> {
        let vz = self.single(x)?;
        let y = self.alloc_value(x.channels, x.len, "gelu");
        self.values[y].needs_grad = self.values[vz].needs_grad;
        let n = self.batch * x.channels * x.len;
        gelu(self.g, self.values[vz].slot, self.values[y].slot, n);
        if let Some(tape) = self.tape.as_mut() {
            tape.push(Entry::Gelu { z: vz, y });
        }
        Ok(self.tensor(vec![y]))
    }

    fn attention(
        &mut self,
        qkv: &DTensor,
        heads: usize,
        key_mask: Option<&DTensor>,
    ) -> Result<DTensor> {
        let (rows, t) = (qkv.channels, qkv.len);
        if heads == 0 || !rows.is_multiple_of(3 * heads) {
            return Err(Error::invalid(format!(
                "attention over {rows} rows: not q, k and v of {heads} equal heads"
            )));
        }
        let w = rows / 3;
        let head_dim = w / heads;
        if head_dim > MAX_HEAD_DIM {
            return Err(Error::invalid(format!(
                "attention heads of {head_dim} channels; the GPU kernel takes at most {MAX_HEAD_DIM}"
            )));
        }
        let vq = self.single(qkv)?;
        let key_mask = match key_mask {
            Some(m) => Some(self.mask_slot(Some(m), t)?),
            None => None,
        };
        let o = self.alloc_value(w, t, "attention");
        self.values[o].needs_grad = self.values[vq].needs_grad;
        let s = self.values[vq].slot;
        let a = Attention {
            q: (s, 0),
            k: (s, w),
            v: (s, 2 * w),
            input: SeqLayout::batch_major(rows, t),
            o: self.values[o].slot,
            output: SeqLayout::batch_major(w, t),
            key_mask,
            heads,
            head_dim,
            frames: self.batch * t,
            block: t,
        };
        attention(self.g, &a);
        if let Some(tape) = self.tape.as_mut() {
            tape.push(Entry::Attention { qkv: vq, o, a });
        }
        Ok(self.tensor(vec![o]))
    }

    fn swiglu(&mut self, x: &DTensor) -> Result<DTensor> {
        if self.tape.is_some() {
            return Err(Error::invalid(
                "SwiGLU has no backward on the device (the ViT is not trained)",
            ));
        }
        if !x.channels.is_multiple_of(2) {
            return Err(Error::invalid(format!(
                "SwiGLU over {} channels: not two halves",
                x.channels
            )));
        }
        let vx = self.single(x)?;
        let (h, t) = (x.channels / 2, x.len);
        let y = self.alloc_value(h, t, "swiglu");
        let (xs, ys) = (self.values[vx].slot, self.values[y].slot);
        swiglu(self.g, xs, ys, h * t, self.batch * h * t);
        Ok(self.tensor(vec![y]))
    }

    fn frames(&mut self, x: &DTensor, start: usize, len: usize) -> Result<DTensor> {
        if start + len > x.len || len == 0 {
            return Err(Error::invalid(format!(
                "frames {start} .. {} of a {}-frame tensor",
                start + len,
                x.len
            )));
        }
        let mut out = Vec::with_capacity(x.parts.len());
        for &v in &x.parts {
            let xv = self.values[v];
            if self.batch * xv.rows > 65_535 {
                return Err(Error::invalid(format!(
                    "taking frames of {} rows at once; the copy takes at most 65535",
                    self.batch * xv.rows
                )));
            }
            let y = self.alloc_value(xv.rows, len, "frames");
            self.values[y].needs_grad = xv.needs_grad;
            if let Some(tape) = self.tape.as_mut() {
                tape.push(Entry::Frames { x: v, y, start });
            }
            let params = WindowParams {
                rows: (self.batch * xv.rows) as u32,
                src_stride: xv.len as u32,
                src_t0: start as u32,
                len: len as u32,
                dst_t: len as u32,
                src_step: 1,
                dst_t0: 0,
                _pad: 0,
            };
            copy_window(self.g, xv.slot, self.values[y].slot, params);
            out.push(y);
        }
        Ok(self.tensor(out))
    }

    fn add_constant(&mut self, x: &DTensor, c: &[f64]) -> Result<DTensor> {
        if c.len() != x.channels * x.len {
            return Err(Error::invalid(format!(
                "a table of {} values added to a {} × {} tensor",
                c.len(),
                x.channels,
                x.len
            )));
        }
        let table: Vec<f32> = (0..self.batch)
            .flat_map(|_| c.iter().map(|&v| v as f32))
            .collect();
        let slot = self.g.constant(&table, "table");
        let constant = self.input(slot, x.channels, x.len);
        self.add(x, &constant)
    }

    fn dropout(&mut self, x: &DTensor, p: f32) -> Result<DTensor> {
        if self.tape.is_none() || p == 0.0 {
            return Ok(x.clone());
        }
        let sx = self.slot(x)?;
        let vx = x.parts[0];
        let y = self.alloc_value(x.channels, x.len, "dropout");
        self.values[y].needs_grad = self.values[vx].needs_grad;
        let sy = self.values[y].slot;
        let n = self.batch * x.channels * x.len;
        let template = AddParams::new(n, false);
        // The seed is set per step (DropoutStream); 0 until then.
        let id = add_into(self.g, sx, sy, template.dropout(0, p));
        let stream = self.dropouts.len();
        self.dropouts.push(DropoutStream {
            p,
            blocks: vec![(id, template)],
        });
        self.train_tape()?.push(Entry::Dropout { x: vx, y, stream });
        Ok(self.tensor(vec![y]))
    }

    fn ensemble(&mut self, heads: &[DTensor], weights: &[f32]) -> Result<DTensor> {
        let first = heads
            .first()
            .ok_or_else(|| Error::invalid("an ensemble of no heads"))?;
        let (k, t) = (first.channels, first.len);
        let probs = self.alloc_value(k, t, "probs");
        let slot = self.values[probs].slot;
        let recorded = self.ensemble_into(heads, weights, slot)?;
        if recorded.is_empty() {
            return Err(Error::invalid("ensemble weights are all zero"));
        }
        let total: f32 = weights.iter().sum();
        if let Some(tape) = self.tape.as_mut() {
            let heads = heads
                .iter()
                .zip(weights)
                .filter(|(_, &w)| w != 0.0)
                .map(|(h, &w)| (h.parts[0], w / total))
                .collect();
            tape.push(Entry::Ensemble { heads, probs });
        }
        Ok(self.tensor(vec![probs]))
    }
}
