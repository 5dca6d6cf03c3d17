//! Eval-mode inference on the CPU: the op interface over f32 buffers that
//! are reused from one op, window and batch to the next, with each
//! convolution's BatchNorm folded into its weights once rather than on
//! every call.
//!
//! [`super::candle_ops::CandleOps`] in eval mode allocates every op's
//! output afresh: at the reference width the kernel spent ~12 % of an
//! inference zeroing the pages of those allocations, and candle re-folded
//! every BatchNorm (a scaled copy of each weight) on each call
//! (BENCHMARKS.md, issue 22). Here a dropped activation goes back to a pool
//! keyed by its length and the next op of that length takes it, so after
//! the first window nothing is allocated.
//!
//! The arithmetic is `CandleOps`'s, op for op: the convolution is the same
//! per-tap GEMMs ([`super::cpu_conv::forward_into`]), the folding, the
//! resampling, the softmax and the ensemble's weighted sum round as candle
//! does. So the probabilities are the same bits as the candle path's, and
//! the label parity with the wgpu kernels and the browser holds unchanged
//! (a test below checks the bits).
//!
//! It runs every network of the op interface: the temporal backbones
//! (C2F-TCN, MS-TCN++) bit for bit, the feature adapter and the DINOv2 ViT
//! (linear layers, LayerNorm, attention, GELU/SwiGLU;
//! [`super::cpu_transformer`]) within [`super::tolerance::Tolerance::PARITY`]
//! of candle (their sums are ordered differently).

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use candle_core::Tensor;
use rayon::prelude::*;

use super::candle_ops::CandleLayers;
use super::cpu_conv::{forward_into, ConvShape};
use super::cpu_transformer::{
    attention, gelu, layer_norm_window, parallel, swiglu, zip_chunks, ELEMENTWISE_CHUNK,
};
use super::interp::{resample_row, Taps};
use super::ops::{Act, ConvSpec, LayerNormSpec, LinearSpec, Ops};
use crate::error::{Error, Result};

/// Freed buffers by length, for the next op that needs that many floats.
/// Shared by the activations it lent (they return their buffer when
/// dropped) and, through [`BufferPool`], by an executor's owner across
/// calls.
#[derive(Default)]
struct Pool {
    free: Mutex<HashMap<usize, Vec<Vec<f32>>>>,
}

impl Pool {
    fn free(&self) -> std::sync::MutexGuard<'_, HashMap<usize, Vec<Vec<f32>>>> {
        // A panic while holding the lock leaves only a list of spare
        // buffers behind: still usable.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer of `len` floats with unspecified contents.
    fn take(&self, len: usize) -> Vec<f32> {
        self.free()
            .get_mut(&len)
            .and_then(Vec::pop)
            .unwrap_or_else(|| vec![0.0; len])
    }

    fn give(&self, buf: Vec<f32>) {
        self.free().entry(buf.len()).or_default().push(buf);
    }
}

/// Buffers kept between executors, so that a caller running the same
/// shapes again (the ViT over batch after batch of frames) does not fault
/// in fresh pages each time. It keeps every length it has seen: hold one
/// per model and shape, not across unrelated shapes.
#[derive(Clone, Default)]
pub struct BufferPool(Arc<Pool>);

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let free = self.0.free();
        let bytes: usize = free.iter().map(|(len, v)| len * v.len() * 4).sum();
        write!(f, "BufferPool({bytes} bytes free)")
    }
}

/// An activation `[B, C, T]` (windows, channels, frames), row-major; its
/// buffer returns to the executor's pool when the last handle drops.
pub struct Activation {
    data: Vec<f32>,
    batch: usize,
    channels: usize,
    frames: usize,
    pool: Arc<Pool>,
}

impl Activation {
    /// The values, `[B, C, T]` row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// `(B, C, T)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.batch, self.channels, self.frames)
    }
}

impl std::fmt::Debug for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Activation{:?}", self.dims())
    }
}

impl Drop for Activation {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.data));
    }
}

/// A convolution with its BatchNorm folded in, as candle's eval path folds
/// it (`w·scale`, `b·scale + shift`, in f32).
struct FoldedConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    k: usize,
    dilation: usize,
    causal: bool,
}

/// The executor: a network's layers, the folded convolutions met so far,
/// and the pool. Make one per video (or per run of same-shaped windows):
/// it keeps every buffer length it has seen until dropped.
pub struct CpuInference<'a> {
    /// `None`: an executor of the parameter-free ops only (a stream's,
    /// which keeps its own convolutions).
    layers: Option<&'a CandleLayers>,
    pool: Arc<Pool>,
    folded: HashMap<String, Rc<FoldedConv>>,
}

/// A handle to an [`Activation`] (cheap to clone).
pub type Buf = Rc<Activation>;

impl<'a> CpuInference<'a> {
    /// An executor over `layers` (f32 parameters on the CPU).
    pub fn new(layers: &'a CandleLayers) -> Self {
        Self::with_pool(layers, &BufferPool::default())
    }

    /// An executor over `layers` that takes and returns its buffers from
    /// `pool`.
    pub fn with_pool(layers: &'a CandleLayers, pool: &BufferPool) -> Self {
        CpuInference {
            layers: Some(layers),
            pool: pool.0.clone(),
            folded: HashMap::new(),
        }
    }

    /// An executor of the ops without parameters (concatenation, sums,
    /// softmax, resampling, …); a layer op on it is an error.
    pub fn without_layers() -> CpuInference<'static> {
        CpuInference {
            layers: None,
            pool: BufferPool::default().0,
            folded: HashMap::new(),
        }
    }

    fn layers(&self) -> Result<&'a CandleLayers> {
        self.layers
            .ok_or_else(|| Error::invalid("this CPU executor has no layers"))
    }

    /// A new activation of `(b, c, t)` whose every element `fill` writes.
    pub(crate) fn alloc(
        &self,
        (b, c, t): (usize, usize, usize),
        fill: impl FnOnce(&mut [f32]),
    ) -> Buf {
        let mut data = self.pool.take(b * c * t);
        fill(&mut data);
        self.wrap(data, (b, c, t))
    }

    /// `data` (`b·c·t` floats from the pool) as an activation.
    fn wrap(&self, data: Vec<f32>, (b, c, t): (usize, usize, usize)) -> Buf {
        Rc::new(Activation {
            data,
            batch: b,
            channels: c,
            frames: t,
            pool: self.pool.clone(),
        })
    }

    /// `x` `[B, C, T]` (row-major) as an activation.
    pub fn input(&self, x: &[f32], dims: (usize, usize, usize)) -> Result<Buf> {
        if dims.0 == 0 || dims.1 == 0 || dims.2 == 0 {
            return Err(Error::invalid(format!(
                "cpu inference: an empty input {dims:?}"
            )));
        }
        if x.len() != dims.0 * dims.1 * dims.2 {
            return Err(Error::invalid(format!(
                "cpu inference: {} values do not make a {dims:?} input",
                x.len()
            )));
        }
        Ok(self.alloc(dims, |d| d.copy_from_slice(x)))
    }

    /// A candle tensor `[B, C, T]` (f32, CPU) as an activation.
    pub fn input_tensor(&self, x: &Tensor) -> Result<Buf> {
        let dims = x.dims3()?;
        let v = x.flatten_all()?.to_vec1::<f32>()?;
        self.input(&v, dims)
    }

    /// The convolution `spec` with its BatchNorm folded in, folded on first
    /// use.
    fn folded(&mut self, spec: &ConvSpec) -> Result<Rc<FoldedConv>> {
        if let Some(f) = self.folded.get(&spec.name) {
            return Ok(f.clone());
        }
        let conv = self.layers()?.conv(&spec.name)?;
        let (weight, bias) = match &spec.norm {
            Some(norm) => {
                let (scale, shift) = self.layers()?.norm(norm)?.folded()?;
                let cout = conv.weight().dim(0)?;
                let w = conv.weight().broadcast_mul(&scale.reshape((cout, 1, 1))?)?;
                let b = ((conv.bias() * &scale)? + shift)?;
                (w, b)
            }
            None => (conv.weight().clone(), conv.bias().clone()),
        };
        let (cout, cin, k) = weight.dims3()?;
        if (cin, cout, k) != (spec.cin, spec.cout, spec.k) {
            return Err(Error::invalid(format!(
                "convolution {}: the weight is [{cout}, {cin}, {k}], the network expects [{}, {}, {}]",
                spec.name, spec.cout, spec.cin, spec.k
            )));
        }
        let f = Rc::new(FoldedConv {
            weight: weight.flatten_all()?.to_vec1::<f32>()?,
            bias: bias.to_vec1::<f32>()?,
            k,
            dilation: spec.dilation,
            causal: spec.causal,
        });
        self.folded.insert(spec.name.clone(), f.clone());
        Ok(f)
    }
}

/// `f` over the f32 elements of `t` (contiguous, on the CPU) in place,
/// without a copy.
fn with_cpu_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((a, b))) =
        (&*storage, layout.contiguous_offsets())
    else {
        return Err(Error::invalid(
            "the CPU inference executor takes f32 parameters on the CPU",
        ));
    };
    Ok(f(&v[a..b]))
}

/// Softmax over the channels of `x` `[K, T]` at every frame, into `p`, as
/// candle's composed softmax rounds: the max, `exp(x − max)`, the sum
/// over channels in order from 0, the division.
fn softmax_channels(x: &[f32], k: usize, t: usize, p: &mut [f32], sums: &mut [f32]) {
    let max = &mut sums[..t];
    max.copy_from_slice(&x[..t]);
    for row in x.chunks_exact(t).skip(1) {
        for (m, &v) in max.iter_mut().zip(row) {
            // candle's max reduction keeps the first of equal values and
            // replaces on `>` only.
            if v > *m {
                *m = v;
            }
        }
    }
    for (prow, xrow) in p.chunks_exact_mut(t).zip(x.chunks_exact(t)).take(k) {
        for ((pv, &xv), &m) in prow.iter_mut().zip(xrow).zip(max.iter()) {
            *pv = (xv - m).exp();
        }
    }
    let den = &mut sums[..t];
    den.fill(0.0);
    for prow in p.chunks_exact(t) {
        for (d, &v) in den.iter_mut().zip(prow) {
            *d += v;
        }
    }
    for prow in p.chunks_exact_mut(t) {
        for (v, &d) in prow.iter_mut().zip(den.iter()) {
            *v /= d;
        }
    }
}

impl Ops for CpuInference<'_> {
    type T = Buf;

    fn dims(&self, x: &Buf) -> (usize, usize) {
        (x.channels, x.frames)
    }

    fn conv(&mut self, spec: &ConvSpec, x: &Buf, _mask: Option<&Buf>) -> Result<Buf> {
        let f = self.folded(spec)?;
        let (b, cin, t) = x.dims();
        if cin != spec.cin {
            return Err(Error::invalid(format!(
                "convolution {}: {cin} input channels, the layer takes {}",
                spec.name, spec.cin
            )));
        }
        let shape = ConvShape {
            k: f.k,
            dilation: f.dilation,
            causal: f.causal,
            relu: spec.act == Act::Relu,
        };
        Ok(self.alloc((b, spec.cout, t), |y| {
            forward_into(shape, &x.data, &f.weight, &f.bias, (b, cin, t), y)
        }))
    }

    fn cat(&mut self, parts: &[&Buf]) -> Result<Buf> {
        let first = parts
            .first()
            .ok_or_else(|| Error::invalid("concatenation of nothing"))?;
        let (b, t) = (first.batch, first.frames);
        if parts.iter().any(|p| p.batch != b || p.frames != t) {
            return Err(Error::invalid(
                "concatenation of activations of different lengths",
            ));
        }
        let c: usize = parts.iter().map(|p| p.channels).sum();
        Ok(self.alloc((b, c, t), |y| {
            let mut out = y.chunks_exact_mut(c * t);
            for w in 0..b {
                let dst = out.next().expect("one chunk per window");
                let mut at = 0;
                for p in parts {
                    let n = p.channels * t;
                    dst[at..at + n].copy_from_slice(&p.data[w * n..(w + 1) * n]);
                    at += n;
                }
            }
        }))
    }

    fn max_pool(&mut self, x: &Buf, k: usize) -> Result<Buf> {
        if k == 0 {
            return Err(Error::invalid("max pooling over 0 frames"));
        }
        let (b, c, t) = x.dims();
        let n = t / k;
        if n == 0 {
            // Every activation keeps at least one frame (no zero-length
            // chunks anywhere below).
            return Err(Error::invalid(format!(
                "max pooling {t} frames by {k} leaves none"
            )));
        }
        Ok(self.alloc((b, c, n), |y| {
            for (dst, src) in y.chunks_exact_mut(n).zip(x.data.chunks_exact(t)) {
                for (d, window) in dst.iter_mut().zip(src.chunks_exact(k)) {
                    let mut m = window[0];
                    for &v in &window[1..] {
                        if v > m {
                            m = v;
                        }
                    }
                    *d = m;
                }
            }
        }))
    }

    fn resample(&mut self, x: &Buf, len: usize, pad_to: usize) -> Result<Buf> {
        let (b, c, t) = x.dims();
        if t == 0 || len == 0 {
            return Err(Error::invalid(format!(
                "cannot resample {t} frames to {len}"
            )));
        }
        let pad_to = pad_to.max(len);
        let taps = Taps::new(t, len);
        let w: Vec<f32> = taps.w.iter().map(|&w| w as f32).collect();
        Ok(self.alloc((b, c, pad_to), |y| {
            for (dst, src) in y.chunks_exact_mut(pad_to).zip(x.data.chunks_exact(t)) {
                if t == len {
                    // candle returns the input itself: copy, not `1·x + 0·x`
                    // (which turns an infinity into NaN).
                    dst[..len].copy_from_slice(src);
                } else {
                    resample_row(&taps, &w, src, &mut dst[..len]);
                }
                dst[len..].fill(0.0);
            }
        }))
    }

    fn ensemble(&mut self, heads: &[Buf], weights: &[f32]) -> Result<Buf> {
        let first = heads
            .first()
            .ok_or_else(|| Error::invalid("an ensemble of no heads"))?;
        let (b, k, t) = first.dims();
        let total: f32 = weights.iter().sum();
        let mut acc = self.pool.take(b * k * t);
        let mut p = self.pool.take(k * t);
        let mut sums = self.pool.take(t);
        let mut started = false;
        for (head, &w) in heads.iter().zip(weights) {
            if w == 0.0 {
                continue;
            }
            if head.batch != b || head.channels != k {
                return Err(Error::invalid(format!(
                    "ensemble: a head of {:?} beside one of {:?}",
                    head.dims(),
                    first.dims()
                )));
            }
            let head = self.resample(head, t, t)?;
            let m = w / total;
            for (win, logits) in acc
                .chunks_exact_mut(k * t)
                .zip(head.data.chunks_exact(k * t))
            {
                softmax_channels(logits, k, t, &mut p, &mut sums);
                for (a, &v) in win.iter_mut().zip(p.iter()) {
                    // candle: `p * m` is `affine(m, 0)`, then `acc + p`.
                    let term = v * m + 0.0;
                    *a = if started { *a + term } else { term };
                }
            }
            started = true;
        }
        self.pool.give(p);
        self.pool.give(sums);
        if !started {
            self.pool.give(acc);
            return Err(Error::invalid("ensemble weights are all zero"));
        }
        Ok(self.wrap(acc, (b, k, t)))
    }

    fn add(&mut self, a: &Buf, b: &Buf) -> Result<Buf> {
        if a.dims() != b.dims() {
            return Err(Error::invalid(format!(
                "adding activations of shapes {:?} and {:?}",
                a.dims(),
                b.dims()
            )));
        }
        Ok(self.alloc(a.dims(), |y| {
            y.copy_from_slice(&a.data);
            zip_chunks(y, &b.data, ELEMENTWISE_CHUNK, |d, s| {
                d.iter_mut().zip(s).for_each(|(d, &v)| *d += v)
            });
        }))
    }

    fn dropout(&mut self, x: &Buf, _p: f32) -> Result<Buf> {
        // Inference: the identity.
        Ok(x.clone())
    }

    fn linear(&mut self, spec: &LinearSpec, x: &Buf) -> Result<Buf> {
        let l = self.layers()?.linear(&spec.name)?;
        let (b, cin, t) = x.dims();
        if cin != spec.cin || l.weight.dims2()? != (spec.cout, spec.cin) {
            return Err(Error::invalid(format!(
                "linear layer {}: weight {:?} and {cin} input channels, the network expects [{}, {}]",
                spec.name,
                l.weight.dims(),
                spec.cout,
                spec.cin
            )));
        }
        let shape = ConvShape {
            k: 1,
            dilation: 1,
            causal: false,
            relu: false,
        };
        // The weights are read in place (a ViT-L's are 1.2 GB): a linear
        // layer has no BatchNorm to fold.
        let mut y = self.pool.take(b * spec.cout * t);
        with_cpu_f32(&l.weight, |w| {
            with_cpu_f32(&l.bias, |bias| {
                forward_into(shape, &x.data, w, bias, (b, cin, t), &mut y)
            })
        })??;
        Ok(self.wrap(y, (b, spec.cout, t)))
    }

    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &Buf) -> Result<Buf> {
        let n = self.layers()?.layer_norm(&spec.name)?;
        let (b, c, t) = x.dims();
        let (weight, bias) = (n.weight.to_vec1::<f32>()?, n.bias.to_vec1::<f32>()?);
        if weight.len() != c {
            return Err(Error::invalid(format!(
                "LayerNorm {} normalises {} channels, the input has {c}",
                spec.name,
                weight.len()
            )));
        }
        let eps = n.eps as f32;
        Ok(self.alloc((b, c, t), |y| {
            let run = |(yw, xw): (&mut [f32], &[f32])| {
                layer_norm_window(xw, yw, (c, t), &weight, &bias, eps)
            };
            if parallel(y.len()) {
                y.par_chunks_mut(c * t)
                    .zip(x.data.par_chunks(c * t))
                    .for_each(run);
            } else {
                y.chunks_mut(c * t).zip(x.data.chunks(c * t)).for_each(run);
            }
        }))
    }

    fn gelu(&mut self, x: &Buf) -> Result<Buf> {
        Ok(self.alloc(x.dims(), |y| {
            zip_chunks(y, &x.data, ELEMENTWISE_CHUNK, |d, s| {
                d.iter_mut().zip(s).for_each(|(d, &v)| *d = gelu(v))
            })
        }))
    }

    fn attention(&mut self, qkv: &Buf, heads: usize, key_mask: Option<&Buf>) -> Result<Buf> {
        let (b, rows, t) = qkv.dims();
        if rows % 3 != 0 || heads == 0 || (rows / 3) % heads != 0 {
            return Err(Error::invalid(format!(
                "attention over {rows} rows cannot be q, k, v of {heads} heads"
            )));
        }
        if let Some(m) = key_mask {
            if m.dims() != (b, 1, t) {
                return Err(Error::invalid(format!(
                    "the attention mask is {:?}, the windows are ({b}, 1, {t})",
                    m.dims()
                )));
            }
        }
        let w = rows / 3;
        Ok(self.alloc((b, w, t), |y| {
            attention(&qkv.data, y, (w, t), heads, key_mask.map(|m| &m.data[..]))
        }))
    }

    fn swiglu(&mut self, x: &Buf) -> Result<Buf> {
        let (b, c, t) = x.dims();
        let h = c / 2;
        Ok(self.alloc((b, h, t), |y| {
            // Per window: the first h rows are a, the next h rows b.
            zip_chunks(y, &x.data, (h * t, 2), |d, s| {
                let (a, g) = s.split_at(h * t);
                for ((d, &a), &g) in d.iter_mut().zip(a).zip(g) {
                    *d = swiglu(a, g);
                }
            })
        }))
    }

    fn frames(&mut self, x: &Buf, start: usize, len: usize) -> Result<Buf> {
        let (b, c, t) = x.dims();
        if len == 0 || start + len > t {
            return Err(Error::invalid(format!(
                "frames {start}..{} of a {t}-frame activation",
                start + len
            )));
        }
        Ok(self.alloc((b, c, len), |y| {
            for (d, s) in y.chunks_exact_mut(len).zip(x.data.chunks_exact(t)) {
                d.copy_from_slice(&s[start..start + len]);
            }
        }))
    }

    fn add_constant(&mut self, x: &Buf, c: &[f64]) -> Result<Buf> {
        let (b, ch, t) = x.dims();
        if c.len() != ch * t {
            return Err(Error::invalid(format!(
                "a table of {} values added to [{ch}, {t}] windows",
                c.len()
            )));
        }
        let table: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        Ok(self.alloc((b, ch, t), |y| {
            zip_chunks(y, &x.data, (ch * t, 1), |d, s| {
                for ((d, &v), &k) in d.iter_mut().zip(s).zip(&table) {
                    *d = v + k;
                }
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ms_tcn::MsTcnConfig;
    use crate::model::{BackboneConfig, C2fConfig, Mode, Network};
    use candle_core::{DType, Device};
    use rand::SeedableRng;
    use rand_distr::Distribution;

    fn normal(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| rand_distr::StandardNormal.sample(&mut rng))
            .collect()
    }

    /// A network with every parameter and running statistic moved away
    /// from its initial value (a running variance stays positive).
    fn perturbed(cfg: &BackboneConfig) -> Network {
        let (net, varmap) = Network::init(cfg, &Device::Cpu).unwrap();
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for (i, name) in names.into_iter().enumerate() {
            let var = &data[name];
            let noise = Tensor::from_vec(
                normal(var.elem_count(), 10 + i as u64),
                var.shape(),
                &Device::Cpu,
            )
            .unwrap();
            let v = if name.ends_with("running_var") {
                (noise.abs().unwrap() + 0.5).unwrap()
            } else {
                (var.as_tensor() + (noise * 0.3).unwrap()).unwrap()
            };
            var.set(&v).unwrap();
        }
        net
    }

    /// The executor's probabilities are candle's eval path's, bit for bit,
    /// for both backbones, for batches of several windows, and again on a
    /// second call that reuses the pooled buffers.
    #[test]
    fn probabilities_equal_the_candle_eval_path_bit_for_bit() {
        let mut ms = MsTcnConfig::reference(12, 5);
        ms.f_maps = 8;
        ms.layers_pg = 4;
        ms.layers_r = 3;
        let cases = [
            (
                BackboneConfig::C2fTcn(C2fConfig::scaled(12, 5, 0.0625)),
                401,
            ),
            (BackboneConfig::MsTcn(ms), 53),
        ];
        for (cfg, t) in cases {
            let net = perturbed(&cfg);
            let mut exec = CpuInference::new(net.layers());
            for (round, b) in [(0, 3), (1, 3), (2, 1)] {
                let x = Tensor::from_vec(normal(b * 12 * t, 100 + round), (b, 12, t), &Device::Cpu)
                    .unwrap();
                let out = net.forward(&x, Mode::Eval, 0).unwrap();
                let want = net
                    .probabilities(&out)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let xb = exec.input_tensor(&x).unwrap();
                let got = net.infer_cpu(&mut exec, &xb).unwrap();
                assert_eq!(got.dims(), (b, 5, t));
                let differ = want
                    .iter()
                    .zip(got.data())
                    .filter(|(a, b)| a.to_bits() != b.to_bits())
                    .count();
                assert_eq!(
                    differ,
                    0,
                    "{:?} round {round}: {differ} of {} values differ",
                    cfg.kind(),
                    want.len()
                );
            }
        }
    }

    /// Layers `declared` with every parameter moved away from its start.
    fn random_layers(
        declared: &crate::model::declare::Declare,
    ) -> (CandleLayers, candle_nn::VarMap) {
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let layers = CandleLayers::new(declared, &vb).unwrap();
        for (i, var) in varmap.all_vars().iter().enumerate() {
            let noise = Tensor::from_vec(
                normal(var.elem_count(), 200 + i as u64),
                var.shape(),
                &Device::Cpu,
            )
            .unwrap();
            var.set(&(var.as_tensor() + (noise * 0.3).unwrap()).unwrap())
                .unwrap();
        }
        (layers, varmap)
    }

    /// The transformers (the adapter with a key mask, the ViT with either
    /// MLP) agree with candle's eval path within the parity tolerance.
    #[test]
    fn transformers_agree_with_candle() {
        use crate::model::adapter::{adapter_forward, adapter_specs, AdapterConfig};
        use crate::model::candle_ops::CandleOps;
        use crate::model::tolerance::Tolerance;
        use crate::vision::{vit_forward, vit_specs, Mlp, VitConfig};
        let check = |what: &str, want: &Tensor, got: &Buf| {
            let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            Tolerance::PARITY
                .check(got.data(), &want, what)
                .unwrap_or_else(|e| panic!("{e}"));
        };
        let cfg = AdapterConfig {
            layers: 2,
            heads: 2,
            width: 8,
            ffn: 12,
        };
        let (layers, _vars) = random_layers(&adapter_specs(&cfg, 5).unwrap());
        let (b, t) = (2, 23);
        let x = Tensor::from_vec(normal(b * 5 * t, 1), (b, 5, t), &Device::Cpu).unwrap();
        let mut m = vec![1f32; b * t];
        m[b * t - t / 3..].iter_mut().for_each(|v| *v = 0.0);
        let mask = Tensor::from_vec(m.clone(), (b, 1, t), &Device::Cpu).unwrap();
        let want =
            adapter_forward(&mut CandleOps::new(&layers, false), &cfg, &x, Some(&mask)).unwrap();
        let mut exec = CpuInference::new(&layers);
        let (xb, mb) = (
            exec.input_tensor(&x).unwrap(),
            exec.input(&m, (b, 1, t)).unwrap(),
        );
        check(
            "adapter",
            &want,
            &adapter_forward(&mut exec, &cfg, &xb, Some(&mb)).unwrap(),
        );
        for mlp in [Mlp::Gelu { hidden: 16 }, Mlp::SwiGlu { hidden: 6 }] {
            let cfg = VitConfig {
                dim: 8,
                depth: 2,
                heads: 2,
                patch: 2,
                mlp,
                registers: 1,
                pos_grid: 2,
            };
            let (layers, _vars) = random_layers(&vit_specs(&cfg, 11).unwrap());
            let embed: Vec<f64> = (0..8 * 11).map(|i| (i as f64 * 0.3).cos()).collect();
            let x = Tensor::from_vec(normal(3 * 12 * 11, 2), (3, 12, 11), &Device::Cpu).unwrap();
            let want = vit_forward(&mut CandleOps::new(&layers, false), &cfg, &x, &embed).unwrap();
            let mut exec = CpuInference::new(&layers);
            let xb = exec.input_tensor(&x).unwrap();
            check(
                &format!("ViT {mlp:?}"),
                &want,
                &vit_forward(&mut exec, &cfg, &xb, &embed).unwrap(),
            );
        }
    }

    /// After the first call the executor allocates nothing new: every
    /// buffer of the second call comes from the pool.
    #[test]
    fn a_second_call_reuses_every_buffer() {
        let cfg = BackboneConfig::C2fTcn(C2fConfig::scaled(12, 5, 0.0625));
        let net = perturbed(&cfg);
        let mut exec = CpuInference::new(net.layers());
        let x = Tensor::zeros((2, 12, 400), DType::F32, &Device::Cpu).unwrap();
        let pooled =
            |exec: &CpuInference| -> usize { exec.pool.free().values().map(Vec::len).sum() };
        for _ in 0..2 {
            let xb = exec.input_tensor(&x).unwrap();
            drop(net.infer_cpu(&mut exec, &xb).unwrap());
        }
        let after_two = pooled(&exec);
        let xb = exec.input_tensor(&x).unwrap();
        drop(net.infer_cpu(&mut exec, &xb).unwrap());
        drop(xb);
        assert_eq!(pooled(&exec), after_two, "the third call grew the pool");
    }

    /// Bad input is an error naming what is wrong, not a panic.
    #[test]
    fn refuses_bad_input() {
        let cfg = BackboneConfig::C2fTcn(C2fConfig::scaled(12, 5, 0.0625));
        let net = perturbed(&cfg);
        let mut exec = CpuInference::new(net.layers());
        assert!(exec.input(&[0.0; 5], (1, 2, 3)).is_err());
        assert!(exec.input(&[], (1, 2, 0)).is_err());
        let three = exec.input(&[1.0; 6], (1, 2, 3)).unwrap();
        let e = exec.max_pool(&three, 4).unwrap_err().to_string();
        assert!(e.contains("leaves none"), "{e}");
        assert!(exec.frames(&three, 2, 2).is_err());
        assert!(exec.frames(&three, 0, 0).is_err());
        let short = exec.input(&vec![0.0; 12 * 100], (1, 12, 100)).unwrap();
        let e = net.infer_cpu(&mut exec, &short).unwrap_err().to_string();
        assert!(e.contains("at least 384 frames"), "{e}");
        let wide = exec.input(&vec![0.0; 13 * 400], (1, 13, 400)).unwrap();
        let e = net.infer_cpu(&mut exec, &wide).unwrap_err().to_string();
        assert!(e.contains("12-dimensional"), "{e}");
        let e = exec.attention(&wide, 5, None).unwrap_err().to_string();
        assert!(e.contains("cannot be q, k, v of 5 heads"), "{e}");
    }
}
