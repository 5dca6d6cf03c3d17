//! The backward of a recorded training graph: each op of the
//! [`super::Recorder`] pushes an [`Entry`] with what its backward kernels
//! need; [`Tape::replay`] records those kernels in reverse order.
//!
//! Gradients of tensors are buffers the tape owns: allocated when a
//! backward first writes one (later writers accumulate into it), and
//! returned to a pool once the op that produced the tensor has run its own
//! backward — nothing reads them after that — so the backward needs about
//! the memory of the widest few activations, not of all of them.

use std::collections::{BTreeSet, HashMap, HashSet};

use syncseg_core::model::ops::Act;
use syncseg_core::{Error, Result};

use super::{DropoutStream, Value};
use crate::graph::{Graph, Slot};
use crate::kernels::activation_grad::relu_grad;
use crate::kernels::add::{add_into, AddParams};
use crate::kernels::attention::Attention;
use crate::kernels::attention_grad::attention_grad;
use crate::kernels::batch_norm::{bn_backward, BatchNormSlots};
use crate::kernels::conv::{ConvWeights, InputPart};
use crate::kernels::conv_grad::{conv_grad_input, conv_grad_weight, GradPart};
use crate::kernels::copy::{copy_window, WindowParams};
use crate::kernels::ensemble_grad::ensemble_head_grad;
use crate::kernels::gelu::gelu_grad;
use crate::kernels::layer_norm::NormFrames;
use crate::kernels::layer_norm_grad::layer_norm_grad;
use crate::kernels::pool_grad::{max_pool_grad, resample_grad, resample_grad_starts};
use crate::kernels::row_sum::row_sum;

/// A convolution's BatchNorm in training mode.
pub(crate) struct NormEntry {
    /// The convolution's output before normalisation.
    pub pre: usize,
    pub slots: BatchNormSlots,
    /// `[dγ; dβ]` and its index among the parameters.
    pub dgb: Slot,
    pub param: usize,
}

/// A convolution (with its normalisation and activation).
pub(crate) struct ConvEntry {
    pub w: ConvWeights,
    /// Gradient buffers of the weight and the bias, and their parameter indices.
    pub dw: Slot,
    pub db: Slot,
    pub params: (usize, usize),
    /// The input parts (value, part).
    pub inputs: Vec<(usize, InputPart)>,
    pub out: usize,
    pub act: Act,
    pub norm: Option<NormEntry>,
    pub len: usize,
}

/// A LayerNorm over the channels of every frame.
pub(crate) struct LayerNormEntry {
    pub x: usize,
    pub y: usize,
    pub gamma: Slot,
    /// Gradient buffers of γ and β, and their parameter indices.
    pub dgamma: Slot,
    pub dbeta: Slot,
    pub params: (usize, usize),
    pub frames: NormFrames,
    pub eps: f32,
}

/// One op's backward.
pub(crate) enum Entry {
    Conv(ConvEntry),
    LayerNorm(LayerNormEntry),
    /// `y = gelu(z)`.
    Gelu {
        z: usize,
        y: usize,
    },
    /// `o = attention(qkv)` as recorded by `a`.
    Attention {
        qkv: usize,
        o: usize,
        a: Attention,
    },
    /// `y = max_pool(x, k)` over the rows of one part.
    MaxPool {
        x: usize,
        y: usize,
        k: usize,
    },
    /// `y = resample(x)` to `t_up` frames, padded to y's length.
    Resample {
        x: usize,
        y: usize,
        t_up: usize,
    },
    /// `y` = frames `start ..` of `x`.
    Frames {
        x: usize,
        y: usize,
        start: usize,
    },
    /// `out = a + b`.
    Add {
        a: usize,
        b: usize,
        out: usize,
    },
    /// `y = dropout(x)` with the mask of the graph's `stream`-th dropout.
    Dropout {
        x: usize,
        y: usize,
        stream: usize,
    },
    /// `probs = Σ wᵢ softmax(resample(headᵢ))` (weights already divided by Σ w).
    Ensemble {
        heads: Vec<(usize, f32)>,
        probs: usize,
    },
}

/// The entries and the gradient buffers.
#[derive(Default)]
pub struct Tape {
    entries: Vec<Entry>,
    /// Value → its gradient buffer.
    grads: HashMap<usize, Slot>,
    /// Values whose gradient buffer holds a value (writers accumulate).
    written: HashSet<usize>,
    /// Free buffers by length in floats.
    pool: HashMap<usize, Vec<Slot>>,
    /// Parameters whose gradient has been written.
    params_written: BTreeSet<usize>,
    /// `resample_grad_starts` tables by `(t_in, t_up)`.
    starts: HashMap<(usize, usize), Slot>,
}

fn floats(v: &Value, batch: usize) -> usize {
    batch * v.rows * v.len
}

impl Tape {
    pub(crate) fn push(&mut self, e: Entry) {
        self.entries.push(e);
    }

    /// The parameters that received a gradient.
    pub fn params_with_grad(&self) -> Vec<usize> {
        self.params_written.iter().copied().collect()
    }

    fn temp(&mut self, g: &mut Graph, n: usize) -> Slot {
        match self.pool.get_mut(&n).and_then(|free| free.pop()) {
            Some(s) => s,
            None => g.alloc(n, "grad"),
        }
    }

    fn release(&mut self, n: usize, slot: Slot) {
        self.pool.entry(n).or_default().push(slot);
    }

    /// The gradient buffer of value `v` for a write, and whether the write
    /// must add to what it holds; marks it written.
    pub(crate) fn grad_for_write(
        &mut self,
        g: &mut Graph,
        values: &[Value],
        batch: usize,
        v: usize,
    ) -> (Slot, bool) {
        let slot = match self.grads.get(&v) {
            Some(&s) => s,
            None => {
                let s = self.temp(g, floats(&values[v], batch));
                self.grads.insert(v, s);
                s
            }
        };
        (slot, !self.written.insert(v))
    }

    /// A gradient buffer that a loss writes whole (it cannot accumulate).
    pub(crate) fn fresh_grad(
        &mut self,
        g: &mut Graph,
        values: &[Value],
        batch: usize,
        v: usize,
    ) -> Result<Slot> {
        match self.grad_for_write(g, values, batch, v) {
            (slot, false) => Ok(slot),
            (_, true) => Err(Error::invalid(
                "internal: two losses on one tensor (their gradients would not add)",
            )),
        }
    }

    fn written_grad(&self, v: usize) -> Option<Slot> {
        if self.written.contains(&v) {
            self.grads.get(&v).copied()
        } else {
            None
        }
    }

    fn release_grad(&mut self, values: &[Value], batch: usize, v: usize) {
        self.written.remove(&v);
        if let Some(s) = self.grads.remove(&v) {
            self.release(floats(&values[v], batch), s);
        }
    }

    fn param_accumulates(&mut self, p: usize) -> bool {
        !self.params_written.insert(p)
    }

    fn starts(&mut self, g: &mut Graph, t_in: usize, t_up: usize) -> Slot {
        *self
            .starts
            .entry((t_in, t_up))
            .or_insert_with(|| g.constant_u32(&resample_grad_starts(t_in, t_up), "resample.starts"))
    }

    /// Records every entry's backward, last first. An op whose output
    /// received no gradient (a head out of the loss, decoder stages finer
    /// than every distilled level) is skipped: its parameters get none, and
    /// the optimiser leaves them alone, as candle's autodiff does.
    pub(crate) fn replay(
        &mut self,
        g: &mut Graph,
        values: &[Value],
        batch: usize,
        tables: &HashMap<(usize, usize), Slot>,
        dropouts: &mut [DropoutStream],
    ) -> Result<()> {
        let entries = std::mem::take(&mut self.entries);
        for entry in entries.iter().rev() {
            match entry {
                Entry::Conv(c) => self.conv(g, values, batch, c)?,
                Entry::LayerNorm(n) => self.layer_norm(g, values, batch, n)?,
                Entry::Gelu { z, y } => {
                    if let Some(dy) = self.written_grad(*y) {
                        let zv = values[*z];
                        if zv.needs_grad {
                            let n = floats(&zv, batch);
                            let (dz, acc) = self.grad_for_write(g, values, batch, *z);
                            gelu_grad(g, zv.slot, dy, dz, n, acc);
                        }
                    }
                    self.release_grad(values, batch, *y);
                }
                Entry::Attention { qkv, o, a } => {
                    if let Some(d_o) = self.written_grad(*o) {
                        if values[*qkv].needs_grad {
                            let n = 2 * a.heads * a.frames;
                            let stats = self.temp(g, n);
                            let (dqkv, acc) = self.grad_for_write(g, values, batch, *qkv);
                            attention_grad(g, a, d_o, stats, dqkv, acc);
                            self.release(n, stats);
                        }
                    }
                    self.release_grad(values, batch, *o);
                }
                Entry::MaxPool { x, y, k } => {
                    if let Some(dy) = self.written_grad(*y) {
                        let xv = values[*x];
                        if xv.needs_grad {
                            let (dx, acc) = self.grad_for_write(g, values, batch, *x);
                            let rows = batch * xv.rows;
                            let (xs, ys) = (xv.slot, values[*y].slot);
                            max_pool_grad(g, xs, ys, dy, dx, rows, xv.len, *k, acc);
                        }
                    }
                    self.release_grad(values, batch, *y);
                }
                Entry::Resample { x, y, t_up } => {
                    if let Some(dy) = self.written_grad(*y) {
                        let (xv, yv) = (values[*x], values[*y]);
                        if xv.needs_grad {
                            let table = *tables
                                .get(&(xv.len, *t_up))
                                .ok_or_else(|| Error::invalid("internal: no resampling table"))?;
                            let starts = self.starts(g, xv.len, *t_up);
                            let (dx, acc) = self.grad_for_write(g, values, batch, *x);
                            let rows = batch * xv.rows;
                            resample_grad(
                                g, dy, table, starts, dx, rows, xv.len, *t_up, yv.len, 0, acc,
                            );
                        }
                    }
                    self.release_grad(values, batch, *y);
                }
                Entry::Frames { x, y, start } => {
                    if let Some(dy) = self.written_grad(*y) {
                        let (xv, yv) = (values[*x], values[*y]);
                        if xv.needs_grad {
                            // dx: dy placed at `start`, zero elsewhere.
                            let rows = batch * xv.rows;
                            let n = floats(&xv, batch);
                            let (dx, acc) = self.grad_for_write(g, values, batch, *x);
                            let dst = if acc { self.temp(g, n) } else { dx };
                            let params = WindowParams {
                                rows: rows as u32,
                                src_stride: yv.len as u32,
                                src_t0: 0,
                                len: yv.len as u32,
                                dst_t: xv.len as u32,
                                src_step: 1,
                                dst_t0: *start as u32,
                                _pad: 0,
                            };
                            copy_window(g, dy, dst, params);
                            if acc {
                                add_into(g, dst, dx, AddParams::new(n, true));
                                self.release(n, dst);
                            }
                        }
                    }
                    self.release_grad(values, batch, *y);
                }
                Entry::Add { a, b, out } => {
                    if let Some(dy) = self.written_grad(*out) {
                        let n = floats(&values[*out], batch);
                        for v in [*a, *b] {
                            if values[v].needs_grad {
                                let (dx, acc) = self.grad_for_write(g, values, batch, v);
                                add_into(g, dy, dx, AddParams::new(n, acc));
                            }
                        }
                    }
                    self.release_grad(values, batch, *out);
                }
                Entry::Dropout { x, y, stream } => {
                    if let Some(dy) = self.written_grad(*y) {
                        if values[*x].needs_grad {
                            let n = floats(&values[*y], batch);
                            let (dx, acc) = self.grad_for_write(g, values, batch, *x);
                            let s = &mut dropouts[*stream];
                            let template = AddParams::new(n, acc);
                            let id = add_into(g, dy, dx, template.dropout(0, s.p));
                            s.blocks.push((id, template));
                        }
                    }
                    self.release_grad(values, batch, *y);
                }
                Entry::Ensemble { heads, probs } => {
                    if let Some(dp) = self.written_grad(*probs) {
                        let pv = values[*probs];
                        let (k, t) = (pv.rows, pv.len);
                        for &(h, w) in heads {
                            let hv = values[h];
                            if !hv.needs_grad {
                                continue;
                            }
                            let table = *tables
                                .get(&(hv.len, t))
                                .ok_or_else(|| Error::invalid("internal: no resampling table"))?;
                            let dz = self.temp(g, batch * k * t);
                            ensemble_head_grad(g, hv.slot, table, dp, dz, batch, k, hv.len, t, w);
                            let starts = self.starts(g, hv.len, t);
                            let (dh, acc) = self.grad_for_write(g, values, batch, h);
                            resample_grad(
                                g,
                                dz,
                                table,
                                starts,
                                dh,
                                batch * k,
                                hv.len,
                                t,
                                t,
                                0,
                                acc,
                            );
                            self.release(batch * k * t, dz);
                        }
                    }
                    self.release_grad(values, batch, *probs);
                }
            }
        }
        Ok(())
    }

    fn layer_norm(
        &mut self,
        g: &mut Graph,
        values: &[Value],
        batch: usize,
        e: &LayerNormEntry,
    ) -> Result<()> {
        let Some(dy) = self.written_grad(e.y) else {
            self.release_grad(values, batch, e.y);
            return Ok(());
        };
        let xv = values[e.x];
        let n = floats(&xv, batch);
        let (c, t) = (e.frames.channels, e.frames.block);
        // dx into x's gradient, or scratch when x needs none (γ and β
        // still do); x̂ ⊙ dy for dγ.
        let (dx, acc, scratch) = if xv.needs_grad {
            let (dx, acc) = self.grad_for_write(g, values, batch, e.x);
            (dx, acc, false)
        } else {
            (self.temp(g, n), false, true)
        };
        let gx = self.temp(g, n);
        layer_norm_grad(g, xv.slot, e.gamma, dy, dx, gx, e.frames, e.eps, acc);
        let acc_g = self.param_accumulates(e.params.0);
        let acc_b = self.param_accumulates(e.params.1);
        for b in 0..batch {
            row_sum(g, gx, b * c, c, t, e.dgamma, 0, 1.0, acc_g || b > 0);
            row_sum(g, dy, b * c, c, t, e.dbeta, 0, 1.0, acc_b || b > 0);
        }
        self.release(n, gx);
        if scratch {
            self.release(n, dx);
        }
        self.release_grad(values, batch, e.y);
        Ok(())
    }

    fn conv(&mut self, g: &mut Graph, values: &[Value], batch: usize, c: &ConvEntry) -> Result<()> {
        let Some(dout) = self.written_grad(c.out) else {
            self.release_grad(values, batch, c.out);
            return Ok(());
        };
        let out = values[c.out];
        let n = floats(&out, batch);
        // ∂L/∂(convolution output), through the activation and the norm.
        let mut temps = Vec::new();
        let mut dy = dout;
        if c.act == Act::Relu {
            let s = self.temp(g, n);
            relu_grad(g, out.slot, dy, s, n, false);
            temps.push(s);
            dy = s;
        }
        if let Some(norm) = &c.norm {
            if self.param_accumulates(norm.param) {
                return Err(Error::invalid(
                    "internal: a batch norm applied twice in one training graph",
                ));
            }
            let s = self.temp(g, n);
            let pre = values[norm.pre].slot;
            bn_backward(g, &norm.slots, pre, dy, norm.dgb, s, false);
            temps.push(s);
            dy = s;
        }
        // Parts own disjoint input columns of dw; a layer applied several
        // times (the TPP's shared convolution) adds to its gradient.
        let acc_w = self.param_accumulates(c.params.0);
        for (_, part) in &c.inputs {
            let x = GradPart {
                slot: part.x,
                ci0: part.ci0,
                channels: part.channels,
            };
            conv_grad_weight(g, &c.w, x, dy, c.dw, c.len, batch, acc_w);
        }
        let acc_b = self.param_accumulates(c.params.1);
        for b in 0..batch {
            let cout = c.w.cout;
            row_sum(g, dy, b * cout, cout, c.len, c.db, 0, 1.0, acc_b || b > 0);
        }
        for (v, part) in &c.inputs {
            if !values[*v].needs_grad {
                continue;
            }
            let (dx, acc) = self.grad_for_write(g, values, batch, *v);
            let dx = GradPart {
                slot: dx,
                ci0: part.ci0,
                channels: part.channels,
            };
            conv_grad_input(g, &c.w, dy, dx, c.len, batch, acc);
        }
        for s in temps {
            self.release(n, s);
        }
        self.release_grad(values, batch, c.out);
        Ok(())
    }
}
