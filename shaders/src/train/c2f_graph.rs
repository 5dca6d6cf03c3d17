//! One training step of the C2F-TCN recorded as a graph for a batch of
//! `B` windows of `T` frames: the forward in training mode keeping every
//! activation `[B, C, T]`, the loss and its gradient (segmentation on the
//! heads' ensemble, or distillation of chosen heads), the backward in
//! reverse order, and Adam over every parameter that received a gradient.
//!
//! Concatenations never exist in memory: a convolution reads its input
//! parts at their channel offsets (as in inference), so the backward writes
//! each part's gradient into that part's own buffer. A tensor with two
//! consumers (an encoder output feeds both the next pooling and a decoder
//! skip) has its gradient written by the first backward that reaches it and
//! accumulated by the second; [`Recorder`] tracks which gradients have been
//! written. Pooling and resampling treat `[B, C, T]` as `B·C` rows of `T`.

use std::collections::HashSet;
use std::sync::Arc;

use syncseg_core::model::c2f_tcn::mask_pyramid;
use syncseg_core::train::step::{BatchLoss, TrainBatch};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId, Slot};
use crate::kernels::activation_grad::relu_grad;
use crate::kernels::batch_norm::{bn_apply, bn_backward, bn_stats, BatchNormSlots};
use crate::kernels::conv::{conv_batch, Activation, Batch, ConvWeights, InputPart, OutputRows};
use crate::kernels::conv_grad::{conv_grad_input, conv_grad_weight, GradPart};
use crate::kernels::ensemble::{ensemble_head_batch, EnsembleParams};
use crate::kernels::ensemble_grad::ensemble_head_grad;
use crate::kernels::mse_grad::{masked_mse_grad, MseParams, MseSlots};
use crate::kernels::pool::{max_pool, resample, resample_table};
use crate::kernels::pool_grad::{max_pool_grad, resample_grad, resample_grad_starts};
use crate::kernels::reduce::{sum, PARTIALS};
use crate::kernels::row_sum::row_sum;
use crate::kernels::seg_loss::{seg_loss_grad, SegLossParams, SegLossSlots};

use super::floats;
use super::params::{record_adam, C2fParams, ConvParam};

/// Which loss a graph minimises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LossKind {
    /// Cross-entropy and smoothing on the heads' ensemble.
    Segmentation,
    /// Σ over these levels of the masked MSE to the teacher's head logits.
    Distillation { levels: Vec<usize> },
}

/// The loss's inputs the host writes before each replay.
pub enum LossSlots {
    Segmentation {
        /// Labels `[B, T]` (u32) and cross-entropy weights `[B, T]`.
        labels: Slot,
        weight: Slot,
        /// The loss's parameter block (normalisers depend on the batch).
        params: ParamsId,
    },
    /// Per distilled level: (level, the teacher's logits `[B, K, Tₗ]`, the
    /// level's parameter block).
    Distillation {
        levels: Vec<(usize, Slot, ParamsId)>,
    },
}

/// The recorded step and the buffers the host writes before each replay.
pub struct TrainGraph {
    pub graph: Graph,
    pub batch: usize,
    pub frames: usize,
    pub classes: usize,
    pub kind: LossKind,
    /// Features `[B, D, T]`.
    pub x: Slot,
    /// Real-frame masks `[B, Tₗ]` at the seven resolutions.
    pub masks: Vec<Slot>,
    pub loss_inputs: LossSlots,
    /// The step's loss, one float.
    pub loss: Slot,
    /// Adam's parameter block per updated parameter buffer (index into `params`).
    pub adam: Vec<(ParamsId, usize)>,
    /// Bytes of the buffers this graph allocated (activations, gradients of
    /// activations, tables), not counting the parameters.
    pub activation_bytes: u64,
    /// The largest of those buffers, in bytes (what one binding must hold).
    pub largest_buffer_bytes: u64,
}

/// A graph under construction and which gradient buffers hold a value.
struct Recorder<'a> {
    g: Graph,
    p: &'a C2fParams,
    written: HashSet<Slot>,
    batch: usize,
}

/// A block's saved activations: conv outputs `a*` before BatchNorm and the
/// BatchNorm+ReLU outputs `h1` and `out`.
struct BlockActs {
    block: usize,
    parts: Vec<InputPart>,
    len: usize,
    a1: Slot,
    h1: Slot,
    a2: Slot,
    out: Slot,
    bn: [BatchNormSlots; 2],
}

impl Recorder<'_> {
    /// Whether a write into `slot` must add to what it holds; marks it written.
    fn accumulate(&mut self, slot: Slot) -> bool {
        !self.written.insert(slot)
    }

    fn weights(&mut self, c: &ConvParam) -> ConvWeights {
        let (w, b) = (&self.p.params[c.weight].theta, &self.p.params[c.bias].theta);
        ConvWeights {
            weight: self.g.import(w),
            bias: self.g.import(b),
            cout: c.cout,
            cin: c.cin,
            k: c.k,
        }
    }

    fn grads(&mut self, c: &ConvParam) -> (Slot, Slot) {
        (
            self.g.import(&self.p.params[c.weight].grad),
            self.g.import(&self.p.params[c.bias].grad),
        )
    }

    /// `y = conv(parts)` over the batch, no activation.
    fn conv(&mut self, c: &ConvParam, parts: &[InputPart], len: usize, label: &str) -> Slot {
        let w = self.weights(c);
        let y = self.g.alloc(self.batch * c.cout * len, label);
        let out = OutputRows {
            y,
            co0: 0,
            cout: c.cout,
            out_c0: 0,
        };
        let batch = Batch {
            count: self.batch,
            y_rows: c.cout,
        };
        conv_batch(
            &mut self.g,
            &w,
            parts,
            out,
            len,
            batch,
            Activation::None,
            false,
        );
        y
    }

    /// The backward of [`Recorder::conv`] from `dy`: weight and bias
    /// gradients (added to with `accumulate_params`), and the gradient of
    /// each part into `dparts` (`None`: not needed).
    fn conv_backward(
        &mut self,
        c: &ConvParam,
        parts: &[InputPart],
        dparts: &[Option<Slot>],
        dy: Slot,
        len: usize,
        accumulate_params: bool,
    ) {
        let w = self.weights(c);
        let (dw, db) = self.grads(c);
        for part in parts {
            let x = GradPart {
                slot: part.x,
                ci0: part.ci0,
                channels: part.channels,
            };
            // Parts own disjoint input columns of dw.
            conv_grad_weight(
                &mut self.g,
                &w,
                x,
                dy,
                dw,
                len,
                self.batch,
                accumulate_params,
            );
        }
        for b in 0..self.batch {
            let acc = accumulate_params || b > 0;
            row_sum(&mut self.g, dy, b * c.cout, c.cout, len, db, 0, 1.0, acc);
        }
        for (part, dpart) in parts.iter().zip(dparts) {
            let Some(dx) = *dpart else { continue };
            let acc = self.accumulate(dx);
            let dx = GradPart {
                slot: dx,
                ci0: part.ci0,
                channels: part.channels,
            };
            conv_grad_input(&mut self.g, &w, dy, dx, len, self.batch, acc);
        }
    }

    fn bn_slots(&mut self, block: usize, which: usize, mask: Slot, len: usize) -> BatchNormSlots {
        let bn = &self.p.blocks[block][which].1;
        let (gb, running, channels) = (
            self.p.params[bn.gamma_beta].theta.clone(),
            bn.running.clone(),
            bn.channels,
        );
        let stats = self.g.alloc(2 * channels + 1, "bn.stats");
        BatchNormSlots {
            gamma_beta: self.g.import(&gb),
            running: self.g.import(&running),
            stats,
            mask,
            channels,
            batch: self.batch,
            t_len: len,
        }
    }

    /// conv → BN (batch statistics) → ReLU, twice.
    fn block(&mut self, block: usize, parts: Vec<InputPart>, mask: Slot, len: usize) -> BlockActs {
        let [(c1, _), (c2, _)] = &self.p.blocks[block];
        let (c1, c2) = (*c1, *c2);
        let a1 = self.conv(&c1, &parts, len, "a1");
        let bn1 = self.bn_slots(block, 0, mask, len);
        bn_stats(&mut self.g, &bn1, a1);
        let h1 = self.g.alloc(self.batch * c1.cout * len, "h1");
        bn_apply(&mut self.g, &bn1, a1, h1, true);
        let mid = [InputPart {
            x: h1,
            ci0: 0,
            channels: c1.cout,
        }];
        let a2 = self.conv(&c2, &mid, len, "a2");
        let bn2 = self.bn_slots(block, 1, mask, len);
        bn_stats(&mut self.g, &bn2, a2);
        let out = self.g.alloc(self.batch * c2.cout * len, "out");
        bn_apply(&mut self.g, &bn2, a2, out, true);
        BlockActs {
            block,
            parts,
            len,
            a1,
            h1,
            a2,
            out,
            bn: [bn1, bn2],
        }
    }

    /// The block's backward from the complete gradient `dout` of its
    /// output; part gradients into `dparts`. `scratch` holds three buffers
    /// of at least the block's largest activation.
    fn block_backward(
        &mut self,
        acts: &BlockActs,
        dout: Slot,
        dparts: &[Option<Slot>],
        scratch: [Slot; 3],
    ) {
        let [(c1, bn1), (c2, bn2)] = &self.p.blocks[acts.block];
        let (c1, c2) = (*c1, *c2);
        let (g1, g2) = (bn1.gamma_beta, bn2.gamma_beta);
        let dgb1 = self.g.import(&self.p.params[g1].grad);
        let dgb2 = self.g.import(&self.p.params[g2].grad);
        let [s1, s2, s3] = scratch;
        let n2 = self.batch * c2.cout * acts.len;
        relu_grad(&mut self.g, acts.out, dout, s1, n2, false);
        bn_backward(&mut self.g, &acts.bn[1], acts.a2, s1, dgb2, s2, false);
        let mid = [InputPart {
            x: acts.h1,
            ci0: 0,
            channels: c1.cout,
        }];
        // s3 is a fresh gradient here: mark it unwritten for this use.
        self.written.remove(&s3);
        self.conv_backward(&c2, &mid, &[Some(s3)], s2, acts.len, false);
        let n1 = self.batch * c1.cout * acts.len;
        relu_grad(&mut self.g, acts.h1, s3, s1, n1, false);
        bn_backward(&mut self.g, &acts.bn[0], acts.a1, s1, dgb1, s2, false);
        self.conv_backward(&c1, &acts.parts, dparts, s2, acts.len, false);
    }
}

/// A part of a decoder input that came through the ×2 resampling: its
/// gradient buffer at the coarser length, and its channels.
struct UpPart {
    dsource: Slot,
    channels: usize,
}

/// Records the step for `batch` windows of `frames` frames (≥ 384).
pub fn record(
    gpu: Arc<Gpu>,
    p: &C2fParams,
    batch: usize,
    frames: usize,
    kind: &LossKind,
) -> TrainGraph {
    let cfg = &p.cfg;
    let (e, d) = (cfg.encoder_widths, cfg.decoder_width);
    let b = batch;
    let lens: Vec<usize> = (0..7).map(|i| frames >> i).collect();
    let mut r = Recorder {
        g: Graph::new(gpu),
        p,
        written: HashSet::new(),
        batch,
    };
    let whole = |x: Slot, channels: usize| InputPart {
        x,
        ci0: 0,
        channels,
    };

    // Inputs.
    let x = r.g.alloc(b * cfg.input_dim * frames, "x");
    let masks: Vec<Slot> = lens.iter().map(|&l| r.g.alloc(b * l, "mask")).collect();

    // Encoder.
    let mut enc = vec![r.block(0, vec![whole(x, cfg.input_dim)], masks[0], lens[0])];
    let mut pooled = vec![x]; // pooled[i] feeds block i (pooled[0] unused)
    for i in 1..7 {
        let c = e[i - 1];
        let pl = r.g.alloc(b * c * lens[i], "pool");
        max_pool(&mut r.g, enc[i - 1].out, pl, b * c, lens[i - 1], 2);
        pooled.push(pl);
        let acts = r.block(i, vec![whole(pl, c)], masks[i], lens[i]);
        enc.push(acts);
    }

    // TPP: pools of 2, 3, 5, 6 → the shared 1×1 conv → resampled to |x7|.
    let l6 = lens[6];
    let s6 = enc[6].out;
    let mut tpp = Vec::new(); // (pool, pooled, conv out, upsampled, table)
    for pool in [2usize, 3, 5, 6] {
        let lp = l6 / pool;
        let q = r.g.alloc(b * e[6] * lp, "tpp.pool");
        max_pool(&mut r.g, s6, q, b * e[6], l6, pool);
        let y = r.conv(&p.tpp, &[whole(q, e[6])], lp, "tpp.conv");
        let u = r.g.alloc(b * l6, "tpp.up");
        let table = r.g.constant_u32(&resample_table(lp, l6), "table");
        resample(&mut r.g, y, table, u, b, lp, l6, l6, 0);
        tpp.push((pool, q, y, u, table));
    }

    // Gradient buffers of the encoder outputs and the TPP parts.
    let ds: Vec<Slot> = (0..7)
        .map(|i| r.g.alloc(b * e[i] * lens[i], "d.skip"))
        .collect();
    let du: Vec<Slot> = tpp.iter().map(|_| r.g.alloc(b * l6, "d.tpp")).collect();

    // Decoder.
    let mut dec: Vec<(BlockActs, Vec<UpPart>, Slot, Slot)> = Vec::new(); // acts, ups, table, starts
    let mut logits: Vec<Option<(Slot, usize)>> = vec![None; 6];
    let mut dd: Vec<Slot> = Vec::new();
    for j in 0..6 {
        let level = 5 - j;
        let (l_in, l_out) = (lens[level + 1], lens[level]);
        let table = r.g.constant_u32(&resample_table(l_in, 2 * l_in), "table");
        let starts =
            r.g.constant_u32(&resample_grad_starts(l_in, 2 * l_in), "starts");
        let sources: Vec<(Slot, Slot, usize)> = if j == 0 {
            let mut s: Vec<(Slot, Slot, usize)> =
                tpp.iter().zip(&du).map(|(t, &du)| (t.3, du, 1)).collect();
            s.push((s6, ds[6], e[6]));
            s
        } else {
            vec![(dec[j - 1].0.out, dd[j - 1], d)]
        };
        let mut parts = vec![whole(enc[level].out, e[level])];
        let mut ups = Vec::new();
        let mut ci0 = e[level];
        for (source, dsource, channels) in sources {
            let u = r.g.alloc(b * channels * l_out, "up");
            resample(
                &mut r.g,
                source,
                table,
                u,
                b * channels,
                l_in,
                2 * l_in,
                l_out,
                0,
            );
            parts.push(InputPart {
                x: u,
                ci0,
                channels,
            });
            ci0 += channels;
            ups.push(UpPart { dsource, channels });
        }
        let acts = r.block(7 + j, parts, masks[level], l_out);
        // Heads y1 … y5 take ReLU(h) in the reference; h already ends in a ReLU.
        let head = p.heads[level];
        let z = r.conv(&head, &[whole(acts.out, d)], l_out, "logits");
        logits[level] = Some((z, l_out));
        dd.push(r.g.alloc(b * d * l_out, "d.dec"));
        dec.push((acts, ups, table, starts));
    }

    let (loss_inputs, loss, dlogits) = match kind {
        LossKind::Segmentation => segmentation_loss(&mut r, &logits, &masks, frames),
        LossKind::Distillation { levels } => distillation_loss(&mut r, &logits, &masks, levels),
    };

    // Scratch for the blocks' internal gradients (the largest activation).
    let largest = p
        .blocks
        .iter()
        .enumerate()
        .map(|(i, blk)| {
            let len = if i < 7 { lens[i] } else { lens[5 - (i - 7)] };
            blk[0].0.cout.max(blk[1].0.cout) * len
        })
        .max()
        .unwrap_or(1)
        * b;
    let scratch = [
        r.g.alloc(largest, "scratch"),
        r.g.alloc(largest, "scratch"),
        r.g.alloc(largest, "scratch"),
    ];

    // Decoder backward, finest level first.
    for j in (0..6).rev() {
        let level = 5 - j;
        let (acts, ups, table, starts) = &dec[j];
        if let Some(dl) = dlogits[level] {
            let head = p.heads[level];
            r.conv_backward(
                &head,
                &[whole(acts.out, d)],
                &[Some(dd[j])],
                dl,
                acts.len,
                false,
            );
        }
        if !r.written.contains(&dd[j]) {
            r.g.clear(dd[j]);
            r.written.insert(dd[j]);
        }
        let mut dparts = vec![Some(ds[level])];
        let dups: Vec<Slot> = ups
            .iter()
            .map(|u| r.g.alloc(b * u.channels * acts.len, "d.up"))
            .collect();
        dparts.extend(dups.iter().map(|&s| Some(s)));
        r.block_backward(acts, dd[j], &dparts, scratch);
        let (l_in, l_out) = (lens[level + 1], acts.len);
        for (u, &dup) in ups.iter().zip(&dups) {
            let acc = r.accumulate(u.dsource);
            resample_grad(
                &mut r.g,
                dup,
                *table,
                *starts,
                u.dsource,
                b * u.channels,
                l_in,
                2 * l_in,
                l_out,
                0,
                acc,
            );
        }
    }

    // TPP backward into ds[6].
    for (idx, ((pool, q, _y, _u, table), &du)) in tpp.iter().zip(&du).enumerate() {
        let lp = l6 / pool;
        let starts = r.g.constant_u32(&resample_grad_starts(lp, l6), "starts");
        let dy = r.g.alloc(b * lp, "d.tpp.conv");
        resample_grad(&mut r.g, du, *table, starts, dy, b, lp, l6, l6, 0, false);
        let dq = r.g.alloc(b * e[6] * lp, "d.tpp.pool");
        r.conv_backward(&p.tpp, &[whole(*q, e[6])], &[Some(dq)], dy, lp, idx > 0);
        let acc = r.accumulate(ds[6]);
        max_pool_grad(&mut r.g, s6, *q, dq, ds[6], b * e[6], l6, *pool, acc);
    }

    // Encoder backward.
    for i in (1..7).rev() {
        let c = e[i - 1];
        let dpool = r.g.alloc(b * c * lens[i], "d.pool");
        r.block_backward(&enc[i], ds[i], &[Some(dpool)], scratch);
        let acc = r.accumulate(ds[i - 1]);
        max_pool_grad(
            &mut r.g,
            enc[i - 1].out,
            pooled[i],
            dpool,
            ds[i - 1],
            b * c,
            lens[i - 1],
            2,
            acc,
        );
    }
    r.block_backward(&enc[0], ds[0], &[None], scratch);

    // Adam over every parameter that the loss reaches. The others (a head
    // out of the loss, and for distillation of coarse levels only, the
    // decoder stages finer than the finest of them) have no gradient in
    // candle's autodiff: like core's optimiser, leave them alone (no decay,
    // no moment update).
    let finest = (0..6).find(|&l| dlogits[l].is_some()).unwrap_or(6);
    let frozen: Vec<usize> = (0..6)
        .filter(|&hi| dlogits[hi].is_none())
        .flat_map(|hi| [p.heads[hi].weight, p.heads[hi].bias])
        .chain(
            (0..finest)
                .flat_map(|level| p.blocks[7 + (5 - level)].iter())
                .flat_map(|(conv, bn)| [conv.weight, conv.bias, bn.gamma_beta]),
        )
        .collect();
    let adam = record_adam(&mut r.g, &p.params, &frozen);

    TrainGraph {
        activation_bytes: r.g.owned_bytes(),
        largest_buffer_bytes: r.g.largest_owned_bytes(),
        graph: r.g,
        batch,
        frames,
        classes: cfg.num_classes,
        kind: kind.clone(),
        x,
        masks,
        loss_inputs,
        loss,
        adam,
    }
}

/// What a loss leaves for the backward: the inputs the host fills, the
/// loss slot, and ∂L/∂logits per head (`None`: the head is out of the loss).
type LossRecord = (LossSlots, Slot, [Option<Slot>; 6]);

/// Cross-entropy and smoothing on Σ wᵢ softmax(resample(headᵢ, T)) / Σ w,
/// and the gradient back through the ensemble and the resampling.
fn segmentation_loss(
    r: &mut Recorder,
    logits: &[Option<(Slot, usize)>],
    masks: &[Slot],
    frames: usize,
) -> LossRecord {
    let p = r.p;
    let cfg = &p.cfg;
    let (b, k) = (r.batch, cfg.num_classes);
    let labels = r.g.alloc(b * frames, "labels");
    let weight = r.g.alloc(b * frames, "weight");
    let probs = r.g.alloc(b * k * frames, "probs");
    let total: f32 = cfg.ensemble_weights.iter().sum();
    let mut ensemble_tables = [None; 6];
    let mut first = true;
    for (hi, head) in logits.iter().enumerate() {
        let w = cfg.ensemble_weights[hi];
        if w == 0.0 {
            continue;
        }
        let (z, l) = head.expect("every head recorded");
        let table = r.g.constant_u32(&resample_table(l, frames), "table");
        let params = EnsembleParams {
            classes: k as u32,
            t_head: l as u32,
            len: frames as u32,
            out_stride: frames as u32,
            out_t0: 0,
            accumulate: u32::from(!first),
            weight: w / total,
            _pad: 0,
        };
        ensemble_head_batch(&mut r.g, z, table, probs, params, b);
        ensemble_tables[hi] = Some(table);
        first = false;
    }

    // Loss and ∂L/∂probs.
    let dprobs = r.g.alloc(b * k * frames, "d.probs");
    let frame_loss = r.g.alloc(b * frames, "frame_loss");
    let loss_slots = SegLossSlots {
        probs,
        labels,
        weight,
        mask: masks[0],
        dprobs,
        frame_loss,
        batch: b,
    };
    let placeholder = SegLossParams::new(k, frames, &[], &[], 0.0, 1.0);
    let loss_params = seg_loss_grad(&mut r.g, &loss_slots, &placeholder);
    let partials = r.g.alloc(PARTIALS, "partials");
    let loss = r.g.alloc(1, "loss");
    sum(&mut r.g, frame_loss, partials, loss, b * frames);

    // Heads: ∂L/∂logits through the ensemble and the resampling.
    let dz = r.g.alloc(b * k * frames, "d.resampled");
    let mut dlogits = [None; 6];
    for (hi, head) in logits.iter().enumerate() {
        let Some(table) = ensemble_tables[hi] else {
            continue;
        };
        let (z, l) = head.expect("every head recorded");
        let w = cfg.ensemble_weights[hi] / total;
        ensemble_head_grad(&mut r.g, z, table, dprobs, dz, b, k, l, frames, w);
        let starts = r.g.constant_u32(&resample_grad_starts(l, frames), "starts");
        let dl = r.g.alloc(b * k * l, "d.logits");
        resample_grad(
            &mut r.g,
            dz,
            table,
            starts,
            dl,
            b * k,
            l,
            frames,
            frames,
            0,
            false,
        );
        dlogits[hi] = Some(dl);
    }

    let slots = LossSlots::Segmentation {
        labels,
        weight,
        params: loss_params,
    };
    (slots, loss, dlogits)
}

/// Σ over `levels` of the masked MSE between head logits and the teacher's
/// (core's `level_mse`): each level's gradient is its head's.
fn distillation_loss(
    r: &mut Recorder,
    logits: &[Option<(Slot, usize)>],
    masks: &[Slot],
    levels: &[usize],
) -> LossRecord {
    let (b, k) = (r.batch, r.p.cfg.num_classes);
    let mut levels: Vec<usize> = levels.to_vec();
    levels.sort_unstable();
    levels.dedup();
    let frames: usize = levels
        .iter()
        .map(|&l| logits[l].expect("every head recorded").1)
        .sum();
    let frame_loss = r.g.alloc(b * frames, "frame_loss");
    let mut offset = 0;
    let mut inputs = Vec::new();
    let mut dlogits = [None; 6];
    for &level in &levels {
        let (z, l) = logits[level].expect("every head recorded");
        let teacher = r.g.alloc(b * k * l, "teacher");
        let dl = r.g.alloc(b * k * l, "d.logits");
        let slots = MseSlots {
            student: z,
            teacher,
            mask: masks[level],
            ds: dl,
            frame_loss,
            batch: b,
        };
        let placeholder = MseParams::new(k, l, &[], false).at_offset(offset);
        let id = masked_mse_grad(&mut r.g, &slots, &placeholder);
        inputs.push((level, teacher, id));
        dlogits[level] = Some(dl);
        offset += b * l;
    }
    let partials = r.g.alloc(PARTIALS, "partials");
    let loss = r.g.alloc(1, "loss");
    sum(&mut r.g, frame_loss, partials, loss, b * frames);
    (LossSlots::Distillation { levels: inputs }, loss, dlogits)
}

/// The loss a batch asks for, as graphs are cached by it.
pub fn loss_kind(batch: &TrainBatch) -> Result<LossKind> {
    match &batch.loss {
        BatchLoss::Segmentation { .. } => Ok(LossKind::Segmentation),
        BatchLoss::OutputDistillation { levels, .. } => {
            if levels.is_empty() || levels.iter().any(|&l| l > 5) {
                return Err(Error::Unsupported(format!(
                    "distilled levels {levels:?}: choose among 0 … 5"
                )));
            }
            Ok(LossKind::Distillation {
                levels: levels.clone(),
            })
        }
        BatchLoss::FeatureDistillation { .. } => Err(Error::Unsupported(
            "feature distillation trains the adapter, not the C2F-TCN".into(),
        )),
    }
}

/// Writes `batch`'s inputs and the loss's normalisers into `g`, recorded
/// for its shape and loss.
pub fn write_inputs(gpu: &Gpu, g: &TrainGraph, batch: &TrainBatch) -> Result<()> {
    let (b, _, t) = batch.x.dims3()?;
    let queue = &gpu.queue;
    let write = |slot, data: &[f32]| {
        queue.write_buffer(g.graph.buffer(slot), 0, bytemuck::cast_slice(data))
    };
    write(g.x, &floats(&batch.x)?);
    let pyramid = mask_pyramid(&batch.mask)?;
    let pyramid: Vec<Vec<f32>> = pyramid.iter().map(floats).collect::<Result<_>>()?;
    for (slot, m) in g.masks.iter().zip(&pyramid) {
        write(*slot, m);
    }
    let k = g.classes;
    match (&g.loss_inputs, &batch.loss) {
        (
            LossSlots::Segmentation {
                labels: labels_slot,
                weight: weight_slot,
                params,
            },
            BatchLoss::Segmentation {
                labels,
                weight,
                smoothing,
                tau,
            },
        ) => {
            let labels: Vec<u32> = labels.flatten_all()?.to_vec1()?;
            queue.write_buffer(
                g.graph.buffer(*labels_slot),
                0,
                bytemuck::cast_slice(&labels),
            );
            let weight = floats(weight)?;
            write(*weight_slot, &weight);
            let lp = SegLossParams::new(k, t, &weight, &pyramid[0], *smoothing, *tau);
            g.graph.set_params(*params, bytemuck::bytes_of(&lp));
        }
        (LossSlots::Distillation { levels }, BatchLoss::OutputDistillation { teacher, .. }) => {
            let mut offset = 0;
            for &(level, slot, params) in levels {
                let tl = t >> level;
                let u = teacher.get(level).ok_or_else(|| {
                    Error::Unsupported(format!("no teacher logits for level {level}"))
                })?;
                if u.dims() != [b, k, tl] {
                    return Err(Error::Unsupported(format!(
                        "the teacher's level {level} is {:?}, the student's [{b}, {k}, {tl}]",
                        u.dims()
                    )));
                }
                write(slot, &floats(u)?);
                let mp = MseParams::new(k, tl, &pyramid[level], false).at_offset(offset);
                g.graph.set_params(params, bytemuck::bytes_of(&mp));
                offset += b * tl;
            }
        }
        _ => {
            return Err(Error::Unsupported(
                "internal: a graph recorded for another loss".into(),
            ))
        }
    }
    Ok(())
}
