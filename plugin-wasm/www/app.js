// The demo page's main thread: UI, the timeline, and a small API
// (window.syncsegDemo) that the browser tests drive. All computation runs in
// worker.js.

const $ = (id) => document.getElementById(id);
const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
const pending = new Map();
let nextId = 0;

worker.onmessage = ({ data }) => {
  const p = pending.get(data.id);
  pending.delete(data.id);
  if (data.ok) p.resolve(data.result);
  else p.reject(new Error(data.error));
};
worker.onerror = (e) => setStatus(`the worker failed: ${e.message}`, "error");

function call(op, args, transfer = []) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    worker.postMessage({ id, op, args }, transfer);
  });
}

function setStatus(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.className = kind;
}

const page = { model: null, features: null, runs: [], weights: null, video: null };

function refreshButtons() {
  const ready = page.model && page.features;
  $("run-webgpu").disabled = !ready;
  $("run-cpu").disabled = !ready;
  const video = page.weights && page.video;
  $("video-webgpu").disabled = !video;
  $("video-cpu").disabled = !video;
}

async function loadModel(bytes, name) {
  setStatus(`reading ${name}…`);
  const info = await call("loadModel", { bytes, name }, [bytes]);
  page.model = info;
  $("model-info").textContent =
    `${name}: ${info.classes.length} classes, ${info.inputDim}-dimensional features`;
  $("syn-dim").placeholder = String(info.inputDim);
  setStatus("");
  refreshButtons();
  return info;
}

async function loadFeatures(bytes, name, layout = $("layout").value) {
  setStatus(`reading ${name}…`);
  const info = await call("loadFeatures", { bytes, layout, name }, [bytes]);
  return showFeatures(info);
}

async function synthetic(opts = {}) {
  const dimText = $("syn-dim").value;
  const args = {
    preset: opts.preset ?? $("syn-preset").value,
    seed: opts.seed ?? Number($("syn-seed").value),
    dim: opts.dim ?? (dimText ? Number(dimText) : page.model?.inputDim),
    index: opts.index ?? Number($("syn-index").value),
    view: opts.view ?? $("syn-view").value,
  };
  setStatus("generating…");
  return showFeatures(await call("synthetic", args));
}

function showFeatures(info) {
  page.features = info;
  page.runs = [];
  $("features-info").textContent = `${info.name}: ${info.dim} × ${info.frames} frames`;
  setStatus("");
  drawTimeline();
  refreshButtons();
  return info;
}

async function segment(device) {
  const label = device === "cpu" ? "CPU" : "WebGPU";
  setStatus(`segmenting on ${label}…`);
  const started = performance.now();
  const out = await call("segment", { device });
  out.wallMillis = performance.now() - started;
  if (out.fallbackReason) {
    setStatus(`WebGPU is not available (${out.fallbackReason}); segmented on the CPU instead.`, "warn");
  } else {
    setStatus(`segmented on ${out.device === "cpu" ? "the CPU" : "WebGPU"} in ${out.millis.toFixed(0)} ms`);
  }
  page.runs.push({ asked: label, ...out });
  drawTimeline();
  addRunRow(label, out);
  return out;
}

// --- video → features ----------------------------------------------------

async function loadWeights(bytes, name, options) {
  setStatus(`reading ${name}…`);
  const info = await call("loadWeights", { bytes, name, options }, [bytes]);
  page.weights = info;
  setStatus("");
  refreshButtons();
  return info;
}

async function openVideo(url, name) {
  const v = $("video");
  setStatus(`opening ${name}…`);
  if (v.src.startsWith("blob:")) URL.revokeObjectURL(v.src);
  await new Promise((resolve, reject) => {
    v.onloadeddata = resolve;
    v.onerror = () =>
      reject(new Error(`${name}: this browser cannot decode the video (${v.error?.message || "unsupported codec or container"})`));
    v.src = url;
  });
  if (!(v.duration > 0 && Number.isFinite(v.duration))) {
    throw new Error(`${name}: the video has no known duration`);
  }
  page.video = { name, duration: v.duration, width: v.videoWidth, height: v.videoHeight };
  $("video-info").textContent = `${name}: ${v.videoWidth}×${v.videoHeight}, ${v.duration.toFixed(2)} s`;
  setStatus("");
  refreshButtons();
  return page.video;
}

// Seeks to `time` and resolves once the frame there is the one a capture
// (createImageBitmap) takes. `seeked` alone is not enough: Chromium fires it
// before the new frame reaches the compositor now and then, and a capture
// then returns the previous frame. requestVideoFrameCallback fires when the
// new frame is presented; it is registered before the seek so that it cannot
// miss it, and bounded by a timeout because a seek that lands on the frame
// already shown presents nothing new. Needs a seekable source: a file's blob
// URL (servers without HTTP range requests give unseekable media, hence
// loadVideoUrl fetches into a blob).
const PRESENT_TIMEOUT_MS = 250;
async function seek(v, time) {
  const rvfc = "requestVideoFrameCallback" in v;
  let id;
  const presented = new Promise((resolve) => {
    if (rvfc) id = v.requestVideoFrameCallback(() => resolve());
    else resolve();
  });
  const seeked = new Promise((resolve, reject) => {
    v.onseeked = resolve;
    v.onerror = () => reject(new Error(`${page.video.name}: decoding failed at ${time.toFixed(3)} s`));
  });
  v.currentTime = time;
  await seeked;
  let timer;
  await Promise.race([presented, new Promise((resolve) => (timer = setTimeout(resolve, PRESENT_TIMEOUT_MS)))]);
  clearTimeout(timer);
  if (rvfc) v.cancelVideoFrameCallback(id);
}

// Samples the video at `fps` (frame i at the middle of [i/fps, (i+1)/fps),
// so at the video's own rate every frame is taken once), encodes the frames
// in the worker in batches, and makes the features the current ones.
async function videoFeatures(device, fps = Number($("video-fps").value)) {
  if (!page.video) throw new Error("open a video file first");
  if (!page.weights) throw new Error("choose the DINOv2 weights (.safetensors) first");
  if (!(fps > 0 && Number.isFinite(fps))) {
    throw new Error(`sample rate ${fps}: expected a positive number of frames per second`);
  }
  const v = $("video");
  const n = Math.max(1, Math.round(page.video.duration * fps));
  const info = await call("beginVideo", { device });
  const where = info.device === "cpu" ? "the CPU" : "WebGPU";
  const started = performance.now();
  const batch = 8;
  for (let i = 0; i < n; i += batch) {
    const frames = [];
    for (let j = i; j < Math.min(n, i + batch); j++) {
      await seek(v, Math.min((j + 0.5) / fps, page.video.duration));
      frames.push(await createImageBitmap(v));
    }
    const done = await call("encodeFrames", { frames }, frames);
    const rate = done / ((performance.now() - started) / 1000);
    const eta = (n - done) / rate;
    setStatus(`features on ${where}: ${done}/${n} frames, ${rate.toFixed(1)} frames/s, ETA ${eta.toFixed(0)} s`);
  }
  const f = await call("endVideo", { name: page.video.name });
  $("fps").value = String(fps);
  const millis = performance.now() - started;
  showFeatures(f);
  const note = info.fallbackReason ? ` (WebGPU is not available: ${info.fallbackReason})` : "";
  setStatus(`${f.frames} frames encoded on ${where} in ${(millis / 1000).toFixed(1)} s${note}`, info.fallbackReason ? "warn" : "");
  return { ...f, ...info, millis };
}

// --- timeline -------------------------------------------------------------

function color(label) {
  // Golden-angle hues: neighbouring ids get distant colours.
  return `hsl(${(label * 137.508) % 360} 65% 55%)`;
}

function runsOf(labels) {
  const runs = [];
  for (let t = 0; t < labels.length; t++) {
    if (t === 0 || labels[t] !== labels[t - 1]) runs.push({ label: labels[t], start: t, end: t + 1 });
    else runs[runs.length - 1].end = t + 1;
  }
  return runs;
}

function drawTimeline() {
  const box = $("timeline");
  box.replaceChildren();
  const f = page.features;
  if (!f) return;
  const tracks = [];
  if (f.truth) tracks.push({ title: "ground truth", segments: runsOf(f.truth.labels), names: f.truth.names });
  for (const r of page.runs) {
    tracks.push({ title: `${r.asked} → ${r.device}`, segments: r.segments, names: r.names });
  }
  for (const track of tracks) {
    const row = document.createElement("div");
    row.className = "track";
    const title = document.createElement("span");
    title.textContent = track.title;
    const canvas = document.createElement("canvas");
    row.append(title, canvas);
    box.append(row);
    const width = canvas.clientWidth || 800;
    canvas.width = width * devicePixelRatio;
    canvas.height = 26 * devicePixelRatio;
    const ctx = canvas.getContext("2d");
    const scale = canvas.width / f.frames;
    for (const s of track.segments) {
      ctx.fillStyle = color(s.label);
      ctx.fillRect(Math.floor(s.start * scale), 0, Math.max(1, Math.ceil((s.end - s.start) * scale)), canvas.height);
    }
    canvas.addEventListener("mousemove", (e) => hover(e, canvas, track, f.frames));
    canvas.addEventListener("mouseleave", () => ($("tooltip").hidden = true));
  }
}

function hover(e, canvas, track, frames) {
  const rect = canvas.getBoundingClientRect();
  const frame = Math.min(frames - 1, Math.floor(((e.clientX - rect.left) / rect.width) * frames));
  const s = track.segments.find((s) => s.start <= frame && frame < s.end);
  if (!s) return;
  const fps = Number($("fps").value) || 15;
  const time = (x) => (x / fps).toFixed(2) + " s";
  const name = track.names[s.label] ?? `class ${s.label}`;
  const conf = s.confidence !== undefined ? `, confidence ${s.confidence.toFixed(2)}` : "";
  const tip = $("tooltip");
  tip.textContent = `${name}: ${time(s.start)} – ${time(s.end)} (frames ${s.start}–${s.end})${conf}`;
  tip.style.left = `${e.clientX + 12}px`;
  tip.style.top = `${e.clientY + 12}px`;
  tip.hidden = false;
}

function addRunRow(label, out) {
  const tr = document.createElement("tr");
  const cells = [label, out.device, out.adapter, page.features.frames, out.segments.length,
    `${out.millis.toFixed(0)} ms`];
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = String(c);
    tr.append(td);
  }
  $("runs").tBodies[0].append(tr);
}

// --- wiring ---------------------------------------------------------------

function guard(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      setStatus(err.message, "error");
    }
  };
}

$("model-file").addEventListener("change", guard(async (e) => {
  const file = e.target.files[0];
  if (file) await loadModel(await file.arrayBuffer(), file.name);
}));
$("features-file").addEventListener("change", guard(async (e) => {
  const file = e.target.files[0];
  if (file) await loadFeatures(await file.arrayBuffer(), file.name);
}));
$("syn-go").addEventListener("click", guard(() => synthetic()));
$("weights-file").addEventListener("change", guard(async (e) => {
  const file = e.target.files[0];
  if (file) await loadWeights(await file.arrayBuffer(), file.name);
}));
$("video-file").addEventListener("change", guard(async (e) => {
  const file = e.target.files[0];
  if (file) await openVideo(URL.createObjectURL(file), file.name);
}));
$("video-webgpu").addEventListener("click", guard(() => videoFeatures("webgpu")));
$("video-cpu").addEventListener("click", guard(() => videoFeatures("cpu")));
$("run-webgpu").addEventListener("click", guard(() => segment("webgpu")));
$("run-cpu").addEventListener("click", guard(() => segment("cpu")));

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.arrayBuffer();
}

// The API the browser tests (and scripts) drive; each call goes through the
// same worker as the buttons.
// Errors reject the call and show in the status line, as for the buttons.
function shown(fn) {
  return async (...args) => {
    try {
      return await fn(...args);
    } catch (err) {
      setStatus(err.message, "error");
      throw err;
    }
  };
}

window.syncsegDemo = {
  loadModelUrl: shown(async (url) => loadModel(await fetchBytes(url), url)),
  loadFeaturesUrl: shown(async (url, layout) => loadFeatures(await fetchBytes(url), url, layout)),
  synthetic: shown(synthetic),
  segment: shown(segment),
  // options: {resize, crop, normalization} as FrameEncoder.load takes them.
  loadWeightsUrl: shown(async (url, options) => loadWeights(await fetchBytes(url), url, options)),
  loadVideoUrl: shown(async (url) => {
    const res = await fetch(url);
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    return openVideo(URL.createObjectURL(await res.blob()), url);
  }),
  videoFeatures: shown(videoFeatures),
  features: () => call("features"),
  // Live segmentation of the current features by a causal model (CPU).
  stream: shown((chunk) => call("stream", { chunk })),
  compileKernels: () => call("compileKernels"),
  status: () => $("status").textContent,
  ready: false,
};

(async () => {
  const v = await call("version");
  const gpu = "gpu" in navigator ? "navigator.gpu present" : "no navigator.gpu (CPU only)";
  $("env").textContent = `syncseg ${v} · ${gpu}`;
  // ?model=URL&features=URL load files served beside the page.
  const q = new URLSearchParams(location.search);
  if (q.get("model")) await window.syncsegDemo.loadModelUrl(q.get("model"));
  if (q.get("features")) await window.syncsegDemo.loadFeaturesUrl(q.get("features"));
  window.syncsegDemo.ready = true;
})().catch((err) => {
  setStatus(err.message, "error");
  window.syncsegDemo.ready = true;
});
