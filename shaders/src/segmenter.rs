//! Frame-wise prediction on a wgpu device: the same windows, padding and
//! ensemble as the CPU path (`syncseg_core::predict`), so both give the same
//! labels.
//!
//! Data flow per call: the video is cut into chunks of whole windows that fit
//! the device's bindings; each chunk's features are uploaded once (split by
//! channels into parts when `[D, frames]` exceeds one binding); each window
//! is cut out of the chunk on the device, run through the recorded graph for
//! its padded length (adapter, then the network), and its probabilities are
//! written into the chunk's `[K, frames]` rows; one readback per chunk. The
//! graphs (buffers, bind groups, pipelines) are built once per padded length
//! and reused across windows and calls.

use std::sync::Arc;

use syncseg_core::features::Features;
use syncseg_core::model::adapter::{adapter_forward, adapter_specs};
use syncseg_core::model::c2f_tcn::c2f_forward;
use syncseg_core::model::ms_tcn::ms_tcn_forward;
use syncseg_core::model::ops::Ops;
use syncseg_core::model::{AdapterConfig, BackboneConfig, ModelMeta, SegModel, MIN_FRAMES};
use syncseg_core::predict::{window_batches, Prediction};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::graph::{Graph, ParamsId};
use crate::kernels::conv::InputPart;
use crate::kernels::copy::{copy_window, WindowParams};
use crate::kernels::ensemble::EnsembleParams;
use crate::ops::weights::FoldedWeights;
use crate::ops::Recorder;

/// Device memory a chunk's input may take, whatever the binding limit.
const CHUNK_INPUT_BYTES: u64 = 256 << 20;

/// The chunk buffers shared by every graph: the features split by channel
/// rows, and the probabilities.
struct ChunkBuffers {
    /// Frames each buffer holds per row.
    capacity: usize,
    /// `(buffer, first row, rows)` covering the D feature channels.
    parts: Vec<(wgpu::Buffer, usize, usize)>,
    probs: wgpu::Buffer,
}

/// One padded window length's recorded graph.
struct Plan {
    graph: Graph,
    /// One copy per input part; rewritten per window.
    copies: Vec<(ParamsId, WindowParams)>,
    /// Per head with a non-zero weight: its ensemble dispatch and template
    /// parameters (the output frame and stride are set per window).
    ensemble: Vec<(ParamsId, EnsembleParams)>,
}

/// Graphs kept for reuse: the full window length and the last lengths
/// seen. Device memory is bounded by this many windows' activations,
/// whatever the number of videos (issue 19).
const PLAN_CACHE: usize = 2;

/// A model loaded on a wgpu device.
pub struct WgpuSegmenter {
    gpu: Arc<Gpu>,
    meta: ModelMeta,
    cfg: BackboneConfig,
    c2f: FoldedWeights,
    adapter: Option<(AdapterConfig, FoldedWeights)>,
    chunk: Option<ChunkBuffers>,
    /// Recorded graphs by padded window length, most recently used last,
    /// at most [`PLAN_CACHE`]: every video's last window has a length of
    /// its own, and a graph holds a window's activations on the device.
    plans: Vec<(usize, Plan)>,
    /// Caps on frames per chunk and feature rows per buffer (see
    /// [`WgpuSegmenter::limit_chunks`]).
    max_chunk_frames: usize,
    max_part_rows: usize,
}

impl WgpuSegmenter {
    /// Uploads `model` (BatchNorm folded; the adapter if it has one).
    pub fn new(gpu: Arc<Gpu>, model: &SegModel) -> Result<Self> {
        let cfg = model.meta.backbone.clone();
        let c2f = FoldedWeights::upload(&gpu, &cfg.specs()?, model.net.layers())?;
        let adapter = match &model.adapter {
            Some((a, _)) => {
                let declared = adapter_specs(a.config(), a.input_dim())?;
                let weights = FoldedWeights::upload(&gpu, &declared, a.layers())?;
                Some((a.config().clone(), weights))
            }
            None => None,
        };
        gpu.check()?;
        Ok(WgpuSegmenter {
            gpu,
            meta: model.meta.clone(),
            cfg,
            c2f,
            adapter,
            chunk: None,
            plans: Vec::new(),
            max_chunk_frames: usize::MAX,
            max_part_rows: usize::MAX,
        })
    }

    /// Caps the frames uploaded per chunk (never below one window) and the
    /// feature channels per buffer, below what the device's limits allow:
    /// for devices short of memory, and to exercise chunking in tests.
    pub fn limit_chunks(&mut self, max_chunk_frames: usize, max_part_rows: usize) {
        self.max_chunk_frames = max_chunk_frames.max(1);
        self.max_part_rows = max_part_rows.max(1);
        self.chunk = None;
        self.plans.clear();
    }

    /// The device.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Ensemble probabilities and labels for `features` `[D, T]`, T ≥ 1.
    pub async fn predict(&mut self, features: &Features) -> Result<Prediction> {
        let cfg = self.cfg.clone();
        if features.dim != cfg.input_dim() {
            return Err(Error::Unsupported(format!(
                "the model expects {}-dimensional features, got {}",
                cfg.input_dim(),
                features.dim
            )));
        }
        if features.frames == 0 {
            return Err(Error::Unsupported("the video has no frames".into()));
        }
        let k = cfg.num_classes();
        let total = features.frames;
        let windows: Vec<_> = window_batches(total, self.meta.prediction_window(total))
            .into_iter()
            .flat_map(|(ws, t)| ws.into_iter().map(move |w| (w, t)))
            .collect();
        let longest = windows.iter().map(|(_, t)| *t).max().unwrap_or(MIN_FRAMES);
        let chunk_frames = self.chunk_frames(total, longest)?;
        self.ensure_chunk(chunk_frames, longest)?;

        let mut probs = vec![0f32; k * total];
        let mut i = 0;
        while i < windows.len() {
            // Whole windows, as many as fit a chunk (at least one).
            let start = windows[i].0.start;
            let mut j = i + 1;
            while j < windows.len() && windows[j].0.start + windows[j].0.len - start <= chunk_frames
            {
                j += 1;
            }
            let len = windows[j - 1].0.start + windows[j - 1].0.len - start;
            self.upload_chunk(features, start, len);
            for (w, t) in &windows[i..j] {
                self.run_window(*t, w.start - start, w.len, len)?;
            }
            let chunk = self.chunk.as_ref().expect("allocated above");
            let p = self.gpu.read(&chunk.probs, k * len).await?;
            for class in 0..k {
                probs[class * total + start..class * total + start + len]
                    .copy_from_slice(&p[class * len..(class + 1) * len]);
            }
            i = j;
        }
        Ok(Prediction::from_probs(probs, k, total))
    }

    /// [`WgpuSegmenter::predict`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict_blocking(&mut self, features: &Features) -> Result<Prediction> {
        pollster::block_on(self.predict(features))
    }

    /// Frames per chunk: every window fits, the probabilities `[K, frames]`
    /// and one feature row fit a binding, and the input stays within
    /// [`CHUNK_INPUT_BYTES`] when it can.
    fn chunk_frames(&self, total: usize, longest: usize) -> Result<usize> {
        let cfg = &self.cfg;
        let max_binding = self.gpu.max_binding_bytes();
        let by_probs = (max_binding / (4 * cfg.num_classes() as u64)) as usize;
        let by_memory = (CHUNK_INPUT_BYTES / (4 * cfg.input_dim() as u64)) as usize;
        let window = self.meta.prediction_window(total).max(1);
        let frames = total.min(
            by_probs
                .min(by_memory)
                .min(self.max_chunk_frames)
                .max(window),
        );
        self.gpu.check_fits(
            cfg.num_classes() * frames.max(longest),
            "the class probabilities of one window",
        )?;
        self.gpu
            .check_fits(frames.max(longest), "one feature channel of one window")?;
        if let Some((a, _)) = &self.adapter {
            // The adapter's widest activations, and its output: the adapted
            // features of one window are one buffer.
            let widest = (3 * a.width).max(a.ffn).max(cfg.input_dim());
            self.gpu
                .check_fits(widest * longest, "the adapter's activations for one window")?;
        }
        Ok(frames)
    }

    /// (Re)allocates the chunk buffers when they are too small; graphs that
    /// imported the old ones are dropped.
    fn ensure_chunk(&mut self, frames: usize, longest: usize) -> Result<()> {
        if let Some(c) = &self.chunk {
            if c.capacity >= frames {
                return Ok(());
            }
        }
        self.plans.clear();
        let cfg = &self.cfg;
        let row_frames = frames.max(longest) as u64;
        let rows_per_part = ((self.gpu.max_binding_bytes() / (4 * row_frames)) as usize)
            .clamp(1, cfg.input_dim().min(self.max_part_rows));
        let mut parts = Vec::new();
        let mut r = 0;
        while r < cfg.input_dim() {
            let rows = rows_per_part.min(cfg.input_dim() - r);
            parts.push((self.gpu.zeros(rows * frames, "features"), r, rows));
            r += rows;
        }
        let probs = self.gpu.zeros(cfg.num_classes() * frames, "probs");
        self.chunk = Some(ChunkBuffers {
            capacity: frames,
            parts,
            probs,
        });
        Ok(())
    }

    fn upload_chunk(&self, features: &Features, start: usize, len: usize) {
        let chunk = self.chunk.as_ref().expect("allocated");
        for (buffer, r0, rows) in &chunk.parts {
            let mut host = Vec::with_capacity(rows * len);
            for c in *r0..r0 + rows {
                let row = c * features.frames + start;
                host.extend_from_slice(&features.data[row..row + len]);
            }
            self.gpu
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(&host));
        }
    }

    /// Runs the window of `len` real frames at `t0` of the current chunk
    /// (`chunk_len` frames), padded to `t`.
    fn run_window(&mut self, t: usize, t0: usize, len: usize, chunk_len: usize) -> Result<()> {
        match self.plans.iter().position(|(len, _)| *len == t) {
            Some(i) => {
                let hit = self.plans.remove(i);
                self.plans.push(hit);
            }
            None => {
                if self.plans.len() == PLAN_CACHE {
                    // The least recently used (a video's full-length
                    // windows keep theirs in use).
                    self.plans.remove(0);
                }
                let plan = self.record(t)?;
                tracing::debug!(
                    frames = t,
                    dispatches = plan.graph.dispatches(),
                    "recorded a graph"
                );
                self.plans.push((t, plan));
            }
        }
        let plan = &self.plans.last().expect("just pushed").1;
        for (id, template) in &plan.copies {
            let p = WindowParams {
                src_stride: chunk_len as u32,
                src_t0: t0 as u32,
                len: len as u32,
                ..*template
            };
            plan.graph.set_params(*id, bytemuck::bytes_of(&p));
        }
        for (id, template) in &plan.ensemble {
            let mut p = *template;
            p.len = len as u32;
            p.out_stride = chunk_len as u32;
            p.out_t0 = t0 as u32;
            plan.graph.set_params(*id, bytemuck::bytes_of(&p));
        }
        plan.graph.submit();
        Ok(())
    }

    fn record(&self, t: usize) -> Result<Plan> {
        let chunk = self.chunk.as_ref().expect("allocated");
        let mut g = Graph::new(self.gpu.clone());
        let mut copies = Vec::new();
        let mut window = Vec::new();
        for (buffer, r0, rows) in &chunk.parts {
            let src = g.import(buffer);
            let dst = g.alloc(rows * t, "window");
            let params = WindowParams {
                rows: *rows as u32,
                src_stride: chunk.capacity as u32,
                src_t0: 0,
                len: t as u32,
                dst_t: t as u32,
                src_step: 1,
                dst_t0: 0,
                _pad: 0,
            };
            copies.push((copy_window(&mut g, src, dst, params), params));
            window.push(InputPart {
                x: dst,
                ci0: *r0,
                channels: *rows,
            });
        }
        let input = match &self.adapter {
            Some((cfg, weights)) => {
                let mut r = Recorder::inference(&mut g, weights);
                let parts: Vec<_> = window.iter().map(|p| r.input(p.x, p.channels, t)).collect();
                let x = r.cat(&parts.iter().collect::<Vec<_>>())?;
                // No key mask, as the CPU path: a window's padding is
                // attended to alike on both.
                let adapted = adapter_forward(&mut r, cfg, &x, None)?;
                vec![InputPart {
                    x: r.slot(&adapted)?,
                    ci0: 0,
                    channels: r.dims(&adapted).0,
                }]
            }
            None => window,
        };
        let probs = g.import(&chunk.probs);
        let mut r = Recorder::inference(&mut g, &self.c2f);
        let parts: Vec<_> = input.iter().map(|p| r.input(p.x, p.channels, t)).collect();
        let x = r.cat(&parts.iter().collect::<Vec<_>>())?;
        // The heads' ensemble (C2F-TCN), the last stage's softmax (MS-TCN++).
        let ensemble = match &self.cfg {
            BackboneConfig::C2fTcn(cfg) => {
                let out = c2f_forward(&mut r, cfg, &x, None)?;
                r.ensemble_into(&out.heads, &cfg.ensemble_weights, probs)?
            }
            BackboneConfig::MsTcn(cfg) => {
                let stages = ms_tcn_forward(&mut r, cfg, &x)?;
                let last = stages.last().cloned().into_iter().collect::<Vec<_>>();
                r.ensemble_into(&last, &[1.0], probs)?
            }
        };
        self.gpu.check()?;
        Ok(Plan {
            graph: g,
            copies,
            ensemble,
        })
    }
}
