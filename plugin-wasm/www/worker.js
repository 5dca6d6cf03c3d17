// The demo's Web Worker: owns the wasm module, the model, the current
// features and the segmenters, so the page stays responsive while a
// segmentation runs (the CPU fallback computes synchronously).
import init, {
  FrameEncoder,
  Segmenter,
  compileKernels,
  parseFeatures,
  syntheticRecording,
  version,
} from "../pkg/syncseg_wasm.js";

const ready = init();
const state = {
  modelBytes: null,
  segmenters: new Map(), // device choice -> Promise<Segmenter>
  features: null, // {data, dim, frames, name}
  truth: null, // {labels, names} when known
  weightsBytes: null,
  encoders: new Map(), // device choice -> Promise<FrameEncoder>
  video: null, // {encoder, parts: [{data, dim, frames}]} while extracting
};

function encoder(device) {
  if (!state.weightsBytes) throw new Error("choose the DINOv2 weights first");
  if (!state.encoders.has(device)) {
    const loading = FrameEncoder.load(state.weightsBytes, { device, ...state.encoderOptions });
    loading.catch(() => state.encoders.delete(device));
    state.encoders.set(device, loading);
  }
  return state.encoders.get(device);
}

function segmenter(device) {
  if (!state.modelBytes) throw new Error("load a model first");
  if (!state.segmenters.has(device)) {
    const loading = Segmenter.load(state.modelBytes, { device });
    // A failed load is not cached: the next click tries again.
    loading.catch(() => state.segmenters.delete(device));
    state.segmenters.set(device, loading);
  }
  return state.segmenters.get(device);
}

function summary() {
  const f = state.features;
  return f && { name: f.name, dim: f.dim, frames: f.frames, truth: state.truth };
}

const ops = {
  version: async () => version(),

  async loadModel({ bytes, name }) {
    const modelBytes = new Uint8Array(bytes);
    // Read on the CPU first: a bad file fails here with the parser's message.
    const cpu = await Segmenter.load(modelBytes, { device: "cpu" });
    state.modelBytes = modelBytes;
    state.segmenters = new Map([["cpu", Promise.resolve(cpu)]]);
    return { name, classes: cpu.classes, inputDim: cpu.inputDim };
  },

  async loadFeatures({ bytes, layout, name }) {
    const f = parseFeatures(new Uint8Array(bytes), layout, name);
    state.features = { ...f, name };
    state.truth = null;
    return summary();
  },

  async synthetic({ preset, seed, dim, index, view }) {
    const rec = syntheticRecording(preset, seed, dim ?? undefined, index);
    state.features = {
      data: view === "exo" ? rec.exo : rec.ego,
      dim: rec.dim,
      frames: rec.frames,
      name: `${rec.name} (${view}, ${preset} seed ${seed})`,
    };
    state.truth = { labels: rec.labels, names: rec.names };
    return summary();
  },

  // device: "webgpu" (falls back to the CPU, with the reason, when the
  // browser has no usable WebGPU), "cpu" or "auto".
  async segment({ device }) {
    if (!state.features) throw new Error("load features or generate a recording first");
    let s;
    let fallbackReason = null;
    try {
      s = await segmenter(device);
    } catch (err) {
      if (device !== "webgpu") throw err;
      fallbackReason = String(err?.message ?? err);
      s = await segmenter("cpu");
    }
    const { data, dim, frames } = state.features;
    const out = await s.segment(data, dim, frames);
    return {
      ...out,
      adapter: s.adapter,
      fallbackReason: fallbackReason ?? s.fallbackReason ?? null,
      kernels: s.kernels,
    };
  },

  // Live segmentation, emulated over the current features: they go through
  // a causal model's stream (Segmenter.stream(), on the CPU) `chunk` frames
  // a push, as a playing video would feed it. The labels, frame by frame,
  // and the time of the pushes.
  async stream({ chunk }) {
    if (!state.features) throw new Error("load features or generate a recording first");
    const step = Math.max(1, chunk ?? 1);
    const s = (await segmenter("cpu")).stream();
    try {
      const { data, dim, frames } = state.features;
      const labels = new Int32Array(frames).fill(-1);
      const take = (out) => {
        for (const l of out) labels[l.frame] = l.label;
      };
      const block = new Float32Array(step * dim);
      const pushMs = [];
      for (let t = 0; t < frames; t += step) {
        const n = Math.min(step, frames - t);
        for (let i = 0; i < n; i++) {
          for (let c = 0; c < dim; c++) block[i * dim + c] = data[c * frames + t + i];
        }
        const started = performance.now();
        const out = s.push(block.subarray(0, n * dim));
        pushMs.push(performance.now() - started);
        take(out);
      }
      take(s.finish());
      const total = pushMs.reduce((a, b) => a + b, 0);
      return {
        labels,
        lookahead: s.lookahead,
        meanFrameMs: total / frames,
        maxPushMs: Math.max(...pushMs),
      };
    } finally {
      s.free();
    }
  },

  compileKernels: async () => compileKernels(),

  async loadWeights({ bytes, name, options }) {
    state.weightsBytes = new Uint8Array(bytes);
    state.encoderOptions = options ?? {};
    state.encoders = new Map();
    // Parse now, so that a bad file fails here with the loader's message;
    // not kept, so that large ViTs are not held twice.
    const parsed = await FrameEncoder.load(state.weightsBytes, { device: "cpu", ...state.encoderOptions });
    const dim = parsed.dim;
    parsed.free();
    return { name, dim };
  },

  // Starts a video's features; "webgpu" falls back to the CPU as segment does.
  async beginVideo({ device }) {
    let enc;
    let fallbackReason = null;
    try {
      enc = await encoder(device);
    } catch (err) {
      if (device !== "webgpu") throw err;
      fallbackReason = String(err?.message ?? err);
      enc = await encoder("cpu");
    }
    state.video = { encoder: enc, parts: [] };
    return {
      device: enc.device,
      adapter: enc.adapter,
      fallbackReason: fallbackReason ?? enc.fallbackReason ?? null,
      dim: enc.dim,
    };
  },

  // frames: ImageBitmaps transferred from the page (closed here).
  async encodeFrames({ frames }) {
    if (!state.video) throw new Error("no video being encoded");
    try {
      state.video.parts.push(await state.video.encoder.encode(frames));
    } finally {
      for (const f of frames) f.close?.();
    }
    return state.video.parts.reduce((n, p) => n + p.frames, 0);
  },

  // The video's [D, T] features become the current features.
  async endVideo({ name }) {
    const parts = state.video?.parts ?? [];
    state.video = null;
    if (parts.length === 0) throw new Error(`${name}: no frames were read`);
    const dim = parts[0].dim;
    const frames = parts.reduce((n, p) => n + p.frames, 0);
    const data = new Float32Array(dim * frames);
    let t0 = 0;
    for (const p of parts) {
      for (let c = 0; c < dim; c++) {
        data.set(p.data.subarray(c * p.frames, (c + 1) * p.frames), c * frames + t0);
      }
      t0 += p.frames;
    }
    state.features = { data, dim, frames, name };
    state.truth = null;
    return summary();
  },

  // The current features, copied out (for saving, and the tests).
  features: async () => state.features && { ...summary(), data: state.features.data.slice() },
};

self.onmessage = async (event) => {
  const { id, op, args } = event.data;
  try {
    await ready;
    if (!(op in ops)) throw new Error(`unknown operation ${op}`);
    const result = await ops[op](args ?? {});
    self.postMessage({ id, ok: true, result });
  } catch (err) {
    self.postMessage({ id, ok: false, error: String(err?.message ?? err) });
  }
};
