//! Live segmentation: a causal MS-TCN++ run as frames arrive, with its
//! state carried between calls so that each frame costs the same.
//!
//! A causal network ([`crate::model::ms_tcn::Causal`]) reads only the past
//! in every convolution, and labels frame `t` from the inputs up to
//! `t + L` (its look-ahead). So a stream keeps, per convolution, a ring of
//! the last `dilation · (k − 1)` input frames of that layer and computes
//! each new frame of every layer once; after frame `t + L` arrived it
//! emits frame `t`'s label. [`Stream::finish`] feeds the `L` zero frames
//! that offline prediction pads the input with, so a finished stream gives
//! exactly the probabilities of [`crate::predict::predict`] over the whole
//! file: both run the same per-tap GEMMs
//! ([`crate::model::cpu_conv::forward_causal_tail`]) in the same order.
//!
//! The network's topology is not written again here: the stream is one
//! more backend of the op interface ([`ms_tcn_stages`] over
//! [`StreamOps`]), whose tensors are the frames of one call.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::backbone::{BackboneConfig, BackboneKind};
use crate::model::cpu_conv::{forward_causal_tail, ConvShape};
use crate::model::cpu_infer::{Buf, CpuInference};
use crate::model::ms_tcn::{ms_tcn_specs, ms_tcn_stages, MsTcnConfig};
use crate::model::ops::{Act, ConvSpec, LayerNormSpec, LinearSpec, Ops};
use crate::model::SegModel;

/// Frames one pass of the network takes at most: a longer push is cut
/// into passes of this many, so the rings stay small.
const MAX_PASS: usize = 64;

/// One frame's result, emitted `lookahead` frames after the frame arrived.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamLabel {
    /// The frame (0 = the first pushed).
    pub frame: u64,
    /// The arg-max class (the first on ties, as offline prediction).
    pub label: u32,
    /// Its probability.
    pub confidence: f32,
}

/// The probabilities of consecutive frames, as one call produced them.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamProbs {
    /// The first frame.
    pub first_frame: u64,
    /// Frames.
    pub frames: usize,
    /// `[K, frames]` row-major.
    pub probs: Vec<f32>,
}

impl StreamProbs {
    /// The label and confidence of every frame.
    pub fn labels(&self) -> Vec<StreamLabel> {
        let n = self.frames;
        let k = self.probs.len().checked_div(n).unwrap_or(0);
        (0..n)
            .map(|f| {
                let mut best = 0;
                for class in 1..k {
                    if self.probs[class * n + f] > self.probs[best * n + f] {
                        best = class;
                    }
                }
                StreamLabel {
                    frame: self.first_frame + f as u64,
                    label: best as u32,
                    confidence: self.probs[best * n + f],
                }
            })
            .collect()
    }
}

/// A causal convolution with its ring of past inputs.
#[derive(Clone)]
struct RingConv {
    shape: ConvShape,
    cin: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Frames the ring holds: the reach plus one pass.
    cap: usize,
    /// `[cin, 2·cap]`: frame `p` of the ring at columns `p` and `p + cap`,
    /// so the last `reach + n` frames are always one contiguous view.
    ring: Vec<f32>,
    /// Where the next frame goes (frames written, mod `cap`).
    head: usize,
}

impl RingConv {
    fn new(spec: &ConvSpec, weight: Vec<f32>, bias: Vec<f32>) -> Self {
        let shape = ConvShape {
            k: spec.k,
            dilation: spec.dilation,
            causal: true,
            relu: spec.act == Act::Relu,
        };
        let cap = spec.left_pad() + MAX_PASS;
        RingConv {
            shape,
            cin: spec.cin,
            weight,
            bias,
            cap,
            ring: vec![0.0; spec.cin * 2 * cap],
            head: 0,
        }
    }

    /// The outputs `[cout, n]` of the `n` frames `x` `[cin, n]`, which then
    /// join the ring.
    fn step(&mut self, x: &[f32], n: usize, y: &mut [f32]) {
        let cap = self.cap;
        for (row, xrow) in self.ring.chunks_exact_mut(2 * cap).zip(x.chunks_exact(n)) {
            for (i, &v) in xrow.iter().enumerate() {
                let p = (self.head + i) % cap;
                row[p] = v;
                row[p + cap] = v;
            }
        }
        self.head = (self.head + n) % cap;
        let reach = self.shape.left_pad();
        // The view's first frame: `reach + n ≤ cap` frames before the head.
        let start = (self.head + 2 * cap - reach - n) % cap;
        forward_causal_tail(
            self.shape,
            &self.ring[start..],
            2 * cap,
            &self.weight,
            &self.bias,
            n,
            y,
        );
    }

    /// This convolution with an empty ring: a new stream's.
    fn fresh(&self) -> Self {
        RingConv {
            ring: vec![0.0; self.ring.len()],
            head: 0,
            ..self.clone()
        }
    }

    fn state_bytes(&self) -> usize {
        (self.ring.len() + self.weight.len() + self.bias.len()) * std::mem::size_of::<f32>()
    }
}

/// The op interface over the frames of one pass: convolutions through
/// their rings, every other op on a parameter-free CPU executor.
struct StreamOps {
    exec: CpuInference<'static>,
    convs: HashMap<String, RingConv>,
}

impl Ops for StreamOps {
    type T = Buf;

    fn dims(&self, x: &Buf) -> (usize, usize) {
        let (_, c, t) = x.dims();
        (c, t)
    }

    fn conv(&mut self, spec: &ConvSpec, x: &Buf, _mask: Option<&Buf>) -> Result<Buf> {
        let (b, cin, n) = x.dims();
        let Some(conv) = self.convs.get_mut(&spec.name) else {
            return Err(Error::invalid(format!(
                "the stream has no convolution {}",
                spec.name
            )));
        };
        if b != 1 || cin != conv.cin || n == 0 || n > MAX_PASS {
            return Err(Error::invalid(format!(
                "stream convolution {}: an input of {:?}, expected [1, {}, 1 ..= {MAX_PASS}]",
                spec.name,
                x.dims(),
                conv.cin
            )));
        }
        Ok(self
            .exec
            .alloc((1, spec.cout, n), |y| conv.step(x.data(), n, y)))
    }

    fn cat(&mut self, parts: &[&Buf]) -> Result<Buf> {
        self.exec.cat(parts)
    }

    fn max_pool(&mut self, x: &Buf, k: usize) -> Result<Buf> {
        self.exec.max_pool(x, k)
    }

    fn resample(&mut self, x: &Buf, len: usize, pad_to: usize) -> Result<Buf> {
        self.exec.resample(x, len, pad_to)
    }

    fn ensemble(&mut self, heads: &[Buf], weights: &[f32]) -> Result<Buf> {
        self.exec.ensemble(heads, weights)
    }

    fn add(&mut self, a: &Buf, b: &Buf) -> Result<Buf> {
        self.exec.add(a, b)
    }

    fn linear(&mut self, spec: &LinearSpec, x: &Buf) -> Result<Buf> {
        self.exec.linear(spec, x)
    }

    fn layer_norm(&mut self, spec: &LayerNormSpec, x: &Buf) -> Result<Buf> {
        self.exec.layer_norm(spec, x)
    }

    fn gelu(&mut self, x: &Buf) -> Result<Buf> {
        self.exec.gelu(x)
    }

    fn attention(&mut self, qkv: &Buf, heads: usize, key_mask: Option<&Buf>) -> Result<Buf> {
        self.exec.attention(qkv, heads, key_mask)
    }

    fn swiglu(&mut self, x: &Buf) -> Result<Buf> {
        self.exec.swiglu(x)
    }

    fn frames(&mut self, x: &Buf, start: usize, len: usize) -> Result<Buf> {
        self.exec.frames(x, start, len)
    }

    fn add_constant(&mut self, x: &Buf, c: &[f64]) -> Result<Buf> {
        self.exec.add_constant(x, c)
    }

    fn dropout(&mut self, x: &Buf, p: f32) -> Result<Buf> {
        self.exec.dropout(x, p)
    }
}

/// A live segmentation of one video: push frames' features as they come,
/// get each frame's label `lookahead` frames later.
pub struct Stream {
    cfg: MsTcnConfig,
    lookahead: usize,
    ops: StreamOps,
    /// Frames fed to the network, the zero frames of `finish` included.
    fed: u64,
    /// Frames pushed by the caller.
    pushed: u64,
    finished: bool,
}

impl Stream {
    /// A stream of `model`, which must be a causal MS-TCN++ without a
    /// feature adapter (whose attention spans whole windows).
    pub fn new(model: &SegModel) -> Result<Self> {
        let cfg = match &model.meta.backbone {
            BackboneConfig::MsTcn(c) if c.causal.is_some() => c.clone(),
            other => {
                return Err(Error::invalid(format!(
                    "streaming needs a causal MS-TCN++ (train one with --backbone ms-tcn --causal); this model is a {}{}",
                    if other.kind() == BackboneKind::MsTcn { "non-causal " } else { "" },
                    other.kind()
                )))
            }
        };
        if model.adapter.is_some() {
            return Err(Error::invalid(
                "streaming a model with a feature adapter is not supported: the adapter attends over whole windows (distil the streaming model on outputs)",
            ));
        }
        let layers = model.net.layers();
        let mut convs = HashMap::new();
        for spec in ms_tcn_specs(&cfg)?.specs() {
            let conv = layers.conv(&spec.name)?;
            let weight = conv.weight().flatten_all()?.to_vec1::<f32>()?;
            let bias = conv.bias().to_vec1::<f32>()?;
            if weight.len() != spec.cout * spec.cin * spec.k || bias.len() != spec.cout {
                return Err(Error::invalid(format!(
                    "convolution {}: its weights do not match the network",
                    spec.name
                )));
            }
            convs.insert(spec.name.clone(), RingConv::new(spec, weight, bias));
        }
        Ok(Stream {
            lookahead: cfg.lookahead().unwrap_or(0),
            cfg,
            ops: StreamOps {
                exec: CpuInference::without_layers(),
                convs,
            },
            fed: 0,
            pushed: 0,
            finished: false,
        })
    }

    /// A new stream of the same model, from its first frame (the model
    /// itself is not needed again).
    pub fn restart(&self) -> Stream {
        Stream {
            cfg: self.cfg.clone(),
            lookahead: self.lookahead,
            ops: StreamOps {
                exec: CpuInference::without_layers(),
                convs: self
                    .ops
                    .convs
                    .iter()
                    .map(|(name, c)| (name.clone(), c.fresh()))
                    .collect(),
            },
            fed: 0,
            pushed: 0,
            finished: false,
        }
    }

    /// Features per frame, D.
    pub fn input_dim(&self) -> usize {
        self.cfg.input_dim
    }

    /// Classes, K.
    pub fn classes(&self) -> usize {
        self.cfg.num_classes
    }

    /// Frames between a frame's arrival and its label, L.
    pub fn lookahead(&self) -> usize {
        self.lookahead
    }

    /// Frames pushed so far.
    pub fn frames_pushed(&self) -> u64 {
        self.pushed
    }

    /// Bytes the stream holds between calls (rings and weights): constant
    /// over its life.
    pub fn state_bytes(&self) -> usize {
        self.ops.convs.values().map(RingConv::state_bytes).sum()
    }

    /// Pushes the features of `n` frames, frame-major (`n × D` values,
    /// each frame's D together), and returns the labels of the frames that
    /// are now `lookahead` frames old, in order.
    pub fn push(&mut self, frames: &[f32]) -> Result<Vec<StreamLabel>> {
        Ok(self.push_probs(frames)?.labels())
    }

    /// [`Stream::push`] with the probabilities.
    pub fn push_probs(&mut self, frames: &[f32]) -> Result<StreamProbs> {
        if self.finished {
            return Err(Error::invalid("the stream is finished: start a new one"));
        }
        let d = self.cfg.input_dim;
        if !frames.len().is_multiple_of(d) {
            return Err(Error::invalid(format!(
                "stream: {} values are not whole frames of {d} features",
                frames.len()
            )));
        }
        if let Some(i) = frames.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "stream: feature {} of frame {} is not finite",
                i % d,
                self.pushed + (i / d) as u64
            )));
        }
        self.pushed += (frames.len() / d) as u64;
        self.feed(frames)
    }

    /// Ends the stream: the labels of the last `lookahead` frames (which
    /// see zero frames beyond the end, as offline prediction does).
    pub fn finish(&mut self) -> Result<Vec<StreamLabel>> {
        Ok(self.finish_probs()?.labels())
    }

    /// [`Stream::finish`] with the probabilities.
    pub fn finish_probs(&mut self) -> Result<StreamProbs> {
        if self.finished {
            return Err(Error::invalid("the stream is already finished"));
        }
        let zeros = vec![0f32; self.lookahead * self.cfg.input_dim];
        let out = self.feed(&zeros)?;
        self.finished = true;
        Ok(out)
    }

    /// Runs the network over `frames` (frame-major) in passes, collecting
    /// the probabilities of the frames that became ready.
    fn feed(&mut self, frames: &[f32]) -> Result<StreamProbs> {
        let (d, k) = (self.cfg.input_dim, self.cfg.num_classes);
        let first_ready = self.fed.saturating_sub(self.lookahead as u64);
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); k];
        for pass in frames.chunks(MAX_PASS * d) {
            let n = pass.len() / d;
            let x = self.ops.exec.alloc((1, d, n), |x| {
                for (t, frame) in pass.chunks_exact(d).enumerate() {
                    for (c, &v) in frame.iter().enumerate() {
                        x[c * n + t] = v;
                    }
                }
            });
            let stages = ms_tcn_stages(&mut self.ops, &self.cfg, &x)?;
            let last = stages
                .last()
                .ok_or_else(|| Error::invalid("MS-TCN++: no stage output"))?;
            let p = self.ops.softmax(last)?;
            // Pass frame i is network output fed + i: the label of frame
            // fed + i − L, once that is a frame.
            let skip = (self.lookahead as u64)
                .saturating_sub(self.fed)
                .min(n as u64) as usize;
            for (row, prow) in rows.iter_mut().zip(p.data().chunks_exact(n)) {
                row.extend_from_slice(&prow[skip..]);
            }
            self.fed += n as u64;
        }
        let ready = rows.first().map_or(0, Vec::len);
        Ok(StreamProbs {
            first_frame: first_ready,
            frames: ready,
            probs: rows.concat(),
        })
    }
}

/// How a video streamed: the cost of each push, measured around the call.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Frames pushed.
    pub frames: u64,
    /// Frames per push.
    pub chunk: usize,
    /// The look-ahead L (frames).
    pub lookahead: usize,
    /// Mean seconds per pushed frame (pushes and the finish).
    pub mean_frame_s: f64,
    /// The median of one push's seconds.
    pub p50_push_s: f64,
    /// The 99th percentile of one push's seconds.
    pub p99_push_s: f64,
    /// The slowest push.
    pub max_push_s: f64,
    /// Bytes the stream holds between pushes ([`Stream::state_bytes`]).
    pub state_bytes: usize,
}

/// Emulates a live stream over a whole video: `features` `[D, T]` pushed
/// `chunk` frames at a time, then finished. The prediction is the one
/// [`crate::predict::predict`] makes (bit for bit); the stats time each
/// push.
pub fn stream_features(
    model: &SegModel,
    features: &crate::features::Features,
    chunk: usize,
) -> Result<(crate::predict::Prediction, StreamStats)> {
    if chunk == 0 {
        return Err(Error::invalid(
            "stream: the chunk must be at least one frame",
        ));
    }
    let mut stream = Stream::new(model)?;
    let (d, t, k) = (features.dim, features.frames, stream.classes());
    if d != stream.input_dim() {
        return Err(Error::invalid(format!(
            "the model expects {}-dimensional features, got {d}",
            stream.input_dim()
        )));
    }
    if t == 0 {
        return Err(Error::invalid("the video has no frames"));
    }
    let data: &[f32] = &features.data;
    let mut probs = vec![0f32; k * t];
    let mut put = |p: StreamProbs| {
        let first = p.first_frame as usize;
        for (class, row) in p.probs.chunks_exact(p.frames.max(1)).enumerate().take(k) {
            if p.frames > 0 {
                probs[class * t + first..class * t + first + p.frames].copy_from_slice(row);
            }
        }
    };
    let mut times = Vec::with_capacity(t.div_ceil(chunk) + 1);
    let mut frame_major = vec![0f32; chunk * d];
    for start in (0..t).step_by(chunk) {
        let n = chunk.min(t - start);
        for c in 0..d {
            for i in 0..n {
                frame_major[i * d + c] = data[c * t + start + i];
            }
        }
        let clock = std::time::Instant::now();
        let p = stream.push_probs(&frame_major[..n * d])?;
        times.push(clock.elapsed().as_secs_f64());
        put(p);
    }
    let clock = std::time::Instant::now();
    let p = stream.finish_probs()?;
    times.push(clock.elapsed().as_secs_f64());
    put(p);
    let total: f64 = times.iter().sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    let stats = StreamStats {
        frames: t as u64,
        chunk,
        lookahead: stream.lookahead(),
        mean_frame_s: total / t as f64,
        p50_push_s: at(0.5),
        p99_push_s: at(0.99),
        max_push_s: at(1.0),
        state_bytes: stream.state_bytes(),
    };
    Ok((crate::predict::Prediction::from_probs(probs, k, t), stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::Features;
    use crate::model::checkpoint::ModelMeta;
    use crate::model::ms_tcn::MsTcnConfig;
    use candle_core::Device;
    use rand::{Rng, SeedableRng};

    fn model(input_dim: usize, lookahead: Option<usize>, seed: u64) -> SegModel {
        let mut cfg = MsTcnConfig {
            f_maps: 16,
            layers_pg: 5,
            layers_r: 4,
            refinements: 2,
            ..MsTcnConfig::reference(input_dim, 5)
        };
        if let Some(l) = lookahead {
            cfg = cfg.with_lookahead(l);
        }
        let names = (0..5).map(|c| format!("c{c}")).collect();
        SegModel::new_seeded(ModelMeta::new(cfg, names, vec![], 64), &Device::Cpu, seed).unwrap()
    }

    /// `frames × dim` random values, frame-major, and the same as features.
    fn video(dim: usize, frames: usize, seed: u64) -> (Vec<f32>, Features) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let rows: Vec<f32> = (0..dim * frames)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let f = Features::from_time_major(frames, dim, rows.clone()).unwrap();
        (rows, f)
    }

    /// Streamed in irregular pieces (single frames, passes longer than a
    /// ring's pass, a push of nothing), a finished stream gives the offline
    /// prediction's probabilities bit for bit, frame for frame, for every
    /// look-ahead, also one longer than the video, and with more than 512
    /// input channels (two depth blocks per GEMM).
    #[test]
    fn streamed_probabilities_equal_the_offline_causal_run_bit_for_bit() {
        for (dim, frames, lookahead, seed) in [
            (12, 700, 0, 1),
            (12, 700, 7, 2),
            (700, 300, 33, 3),
            (12, 20, 50, 4),
        ] {
            let m = model(dim, Some(lookahead), seed);
            let (rows, features) = video(dim, frames, seed + 10);
            let offline = crate::predict::predict(&m, &features).unwrap();
            let mut stream = Stream::new(&m).unwrap();
            let mut got: Vec<Vec<f32>> = vec![Vec::new(); 5];
            let mut labels = Vec::new();
            let mut next = 0u64;
            let mut collect = |p: StreamProbs| {
                assert_eq!(p.first_frame, next, "frames come in order");
                next += p.frames as u64;
                labels.extend(p.labels());
                for (row, prow) in got.iter_mut().zip(p.probs.chunks_exact(p.frames.max(1))) {
                    if p.frames > 0 {
                        row.extend_from_slice(prow);
                    }
                }
            };
            let mut at = 0;
            for (i, size) in [1usize, 1, 3, 0, 300, 17, 1]
                .into_iter()
                .cycle()
                .enumerate()
            {
                if at == frames || i > 10_000 {
                    break;
                }
                let size = size.min(frames - at);
                collect(
                    stream
                        .push_probs(&rows[at * dim..(at + size) * dim])
                        .unwrap(),
                );
                at += size;
            }
            collect(stream.finish_probs().unwrap());
            assert_eq!(next, frames as u64, "every frame labelled once");
            // A restarted stream starts from nothing: its first frames are
            // the offline ones again.
            let mut again = stream.restart();
            let p = again
                .push_probs(&rows[..(lookahead + 3).min(frames) * dim])
                .unwrap();
            for (c, row) in p.probs.chunks_exact(p.frames.max(1)).enumerate() {
                if p.frames > 0 {
                    assert_eq!(row, &offline.probs[c * frames..c * frames + p.frames]);
                }
            }
            let got = got.concat();
            assert_eq!(got.len(), offline.probs.len());
            let differ = got
                .iter()
                .zip(&offline.probs)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                differ, 0,
                "D={dim} T={frames} L={lookahead}: {differ} values differ"
            );
            let streamed: Vec<u32> = labels.iter().map(|l| l.label).collect();
            assert_eq!(streamed, offline.labels);
        }
    }

    /// Output t of a causal network does not move when inputs after t + L
    /// change.
    #[test]
    fn outputs_do_not_see_past_the_lookahead() {
        let (dim, frames, l) = (8, 200, 9);
        let m = model(dim, Some(l), 5);
        let (rows, a) = video(dim, frames, 6);
        let mut changed = rows.clone();
        for v in &mut changed[(120 + l + 1) * dim..] {
            *v = -*v + 0.5;
        }
        let b = Features::from_time_major(frames, dim, changed).unwrap();
        let (pa, pb) = (
            crate::predict::predict(&m, &a).unwrap(),
            crate::predict::predict(&m, &b).unwrap(),
        );
        for c in 0..5 {
            let (ra, rb) = (&pa.probs[c * frames..], &pb.probs[c * frames..]);
            assert_eq!(ra[..=120], rb[..=120], "class {c}");
            assert_ne!(ra[121..frames], rb[121..frames], "class {c}");
        }
    }

    /// Bad models and inputs are refused with a message, never a panic.
    #[test]
    fn refuses_what_it_cannot_stream() {
        let err = |r: Result<Stream>| r.err().expect("refused").to_string();
        assert!(err(Stream::new(&model(6, None, 1))).contains("non-causal ms-tcn"));
        let c2f = crate::model::config::C2fConfig::scaled(6, 3, 0.05);
        let names = (0..3).map(|c| format!("c{c}")).collect();
        let m = SegModel::new(ModelMeta::new(c2f, names, vec![], 400), &Device::Cpu).unwrap();
        assert!(err(Stream::new(&m)).contains("c2f-tcn"));
        let mut s = Stream::new(&model(6, Some(2), 1)).unwrap();
        let e = s.push(&[0.0; 7]).unwrap_err().to_string();
        assert!(e.contains("7 values") && e.contains("6 features"), "{e}");
        let e = s.push(&[0.0, 1.0, f32::NAN, 0.0, 0.0, 0.0]).unwrap_err();
        assert!(e.to_string().contains("feature 2 of frame 0"), "{e}");
        assert_eq!(s.push(&[0.5; 12]).unwrap().len(), 0, "L = 2: nothing yet");
        assert_eq!(s.finish().unwrap().len(), 2);
        assert!(s.push(&[0.0; 6]).is_err());
        assert!(s.finish().is_err());
    }
}
