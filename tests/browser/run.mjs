// Drives the demo page (plugin-wasm/www) in headless Chromium and writes what
// it returned as JSON; tests/tests/browser.rs compares that with the native
// CLI. Usage: node run.mjs CONFIG.json
//
// CONFIG: {
//   "root": "<repo>/plugin-wasm",      served at /
//   "files": "<dir>",                   served at /files/
//   "model": "/files/model.safetensors",   (not needed for "vision" alone)
//   "cases": [{"name": "...", "features": "/files/x.npy", "devices": ["webgpu", "cpu"], "repeat": 1}],
//             (or "synthetic": {preset, seed, dim, index, view} instead of "features")
//   "fallback": {"features": "/files/x.npy"},   optional: a run without WebGPU
//   "errors": {"key": ["loadModelUrl" | "loadFeaturesUrl" | "segment", arg]}, calls expected to fail
//   "stream": {"model": "/files/causal.syncseg", "features": "/files/x.npy", "chunks": [1, 16]},
//             optional, last: a causal model streams the features (CPU)
//   "vision": {"weights": "/files/vit.safetensors", "options": {resize, crop},
//              "pixels": {count, width, height, devices?, repeat?},
//              "video": "/files/clip.webm", "fps": 10},
//             optional: FrameEncoder on frames of known pixels (each encode
//             timed), and, with "video", the demo's video file → features →
//             segments
//   "out": "<path of the JSON written>"
// }
import { createServer } from "node:http";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".ts": "text/plain; charset=utf-8",
};

// The flags that give headless Chromium a WebGPU adapter (SwiftShader on a
// machine without a GPU). Playwright gives each launch a fresh profile.
const WEBGPU_FLAGS = [
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--enable-features=Vulkan",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const NO_WEBGPU_FLAGS = ["--no-sandbox", "--disable-features=WebGPU,Vulkan", "--disable-gpu"];

function serve(root, files) {
  const server = createServer(async (req, res) => {
    const url = new URL(req.url, "http://localhost");
    const rel = decodeURIComponent(url.pathname);
    const [base, sub] = rel.startsWith("/files/") ? [files, rel.slice(7)] : [root, rel.slice(1)];
    const file = path.resolve(base, sub.endsWith("/") || sub === "" ? sub + "index.html" : sub);
    if (!file.startsWith(path.resolve(base) + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
        "cache-control": "no-store",
      });
      res.end(body);
    } catch {
      res.writeHead(404).end(`${rel}: not found`);
    }
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

async function openPage(browser, origin, log) {
  const page = await browser.newPage();
  page.on("console", (m) => log.push(`[console.${m.type()}] ${m.text()}`));
  page.on("pageerror", (e) => log.push(`[pageerror] ${e.message}`));
  await page.goto(`${origin}/www/`);
  await page.waitForFunction(() => window.syncsegDemo?.ready === true, null, { timeout: 120_000 });
  const status = await page.evaluate(() => window.syncsegDemo.status());
  if (status) throw new Error(`the page failed to start: ${status}`);
  return page;
}

async function runCase(page, c) {
  let features;
  if (c.synthetic) {
    // Generated in the page by the wasm build of `syncseg synth`.
    features = await page.evaluate(async (opts) => {
      const info = await window.syncsegDemo.synthetic(opts);
      return { ...info, truth: { names: info.truth.names, labels: Array.from(info.truth.labels) } };
    }, c.synthetic);
  } else {
    features = await page.evaluate((url) => window.syncsegDemo.loadFeaturesUrl(url), c.features);
  }
  const runs = [];
  for (const device of c.devices ?? ["webgpu", "cpu"]) {
    for (let i = 0; i < (c.repeat ?? 1); i++) {
      const out = await page.evaluate(async (device) => {
        const r = await window.syncsegDemo.segment(device);
        return { ...r, labels: Array.from(r.labels), status: window.syncsegDemo.status() };
      }, device);
      runs.push({ asked: device, ...out });
    }
  }
  return { name: c.name, features, runs };
}

// The value of channel c of pixel (x, y) of test frame i; browser.rs computes
// the same frames natively.
function testPixel(x, y, c, i) {
  return (x * 7 + y * 13 + c * 85 + i * 29 + ((x * y) >> 3)) % 256;
}

async function runVision(page, v) {
  // The package's FrameEncoder on frames whose pixels are known: as
  // ImageData, as a plain {data, width, height} and as an ImageBitmap.
  const pixels = await page.evaluate(async ({ v, pixelSrc }) => {
    const testPixel = new Function(`return (${pixelSrc})`)();
    const m = await import("/pkg/syncseg_wasm.js");
    await m.default();
    const bytes = new Uint8Array(await (await fetch(v.weights)).arrayBuffer());
    const { count, width, height } = v.pixels;
    const frames = [];
    for (let i = 0; i < count; i++) {
      const data = new Uint8ClampedArray(width * height * 4);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          for (let c = 0; c < 3; c++) data[(y * width + x) * 4 + c] = testPixel(x, y, c, i);
          data[(y * width + x) * 4 + 3] = 255;
        }
      }
      const img = new ImageData(data, width, height);
      frames.push(i % 3 === 0 ? img : i % 3 === 1 ? { data, width, height } : await createImageBitmap(img));
    }
    const runs = [];
    for (const device of v.pixels.devices ?? ["webgpu", "cpu"]) {
      const enc = await m.FrameEncoder.load(bytes, { device, ...v.options });
      // Each encode timed; the first includes the backend's warm-up.
      const millis = [];
      let f;
      for (let r = 0; r < (v.pixels.repeat ?? 1); r++) {
        const started = performance.now();
        f = await enc.encode(frames);
        millis.push(performance.now() - started);
      }
      runs.push({ device: enc.device, adapter: enc.adapter, dim: f.dim, frames: f.frames, millis, data: Array.from(f.data) });
      enc.free();
    }
    const errors = {};
    const enc = await m.FrameEncoder.load(bytes, { device: "cpu", ...v.options });
    try {
      await enc.encode([frames[0], 42]);
    } catch (err) {
      errors.notAnImage = err.message;
    }
    try {
      await m.FrameEncoder.load(new Uint8Array([1, 2, 3]));
    } catch (err) {
      errors.badWeights = err.message;
    }
    return { runs, errors };
  }, { v, pixelSrc: testPixel.toString() });

  // The demo page: a video file → features (on each device) → segments.
  if (!v.video) return { pixels };
  await page.evaluate(([w, o]) => window.syncsegDemo.loadWeightsUrl(w, o), [v.weights, v.options]);
  await page.evaluate((u) => window.syncsegDemo.loadVideoUrl(u), v.video);
  const video = {};
  for (const device of ["webgpu", "cpu"]) {
    const info = await page.evaluate(([d, fps]) => window.syncsegDemo.videoFeatures(d, fps), [device, v.fps]);
    const status = await page.evaluate(() => window.syncsegDemo.status());
    const features = await page.evaluate(async () => {
      const f = await window.syncsegDemo.features();
      return { ...f, data: Array.from(f.data) };
    });
    const segmentation = await page.evaluate(async (d) => {
      const r = await window.syncsegDemo.segment(d);
      return { ...r, labels: Array.from(r.labels) };
    }, device);
    video[device] = { info, status, features, segmentation };
  }
  return { pixels, video };
}

async function main() {
  const config = JSON.parse(await readFile(process.argv[2], "utf8"));
  const server = await serve(config.root, config.files);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const log = [];
  const result = { log };
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
      args: WEBGPU_FLAGS,
      headless: true,
    });
    const page = await openPage(browser, origin, log);
    result.userAgent = await page.evaluate(() => navigator.userAgent);
    result.kernels = await page.evaluate(() => window.syncsegDemo.compileKernels());
    if (config.model) await page.evaluate((url) => window.syncsegDemo.loadModelUrl(url), config.model);
    result.cases = [];
    for (const c of config.cases ?? []) {
      const started = Date.now();
      result.cases.push(await runCase(page, c));
      log.push(`case ${c.name}: ${Date.now() - started} ms`);
    }
    if (config.vision) {
      const started = Date.now();
      result.vision = await runVision(page, config.vision);
      log.push(`vision: ${Date.now() - started} ms`);
    }
    // Bad input: the page shows the library's one-line error.
    const failure = (fn, arg) =>
      page.evaluate(async ([fn, arg]) => {
        try {
          await window.syncsegDemo[fn](arg);
          return null;
        } catch (err) {
          return { error: err.message, status: window.syncsegDemo.status() };
        }
      }, [fn, arg]);
    result.errors = {};
    for (const [key, [fn, arg]] of Object.entries(config.errors ?? {})) {
      result.errors[key] = await failure(fn, arg);
    }
    // Live segmentation: refused for the (offline) model loaded above, then
    // a causal model streams the features a chunk of frames at a time.
    if (config.stream) {
      const st = config.stream;
      const started = Date.now();
      result.stream = { refused: await failure("stream", 1), runs: [] };
      await page.evaluate((url) => window.syncsegDemo.loadModelUrl(url), st.model);
      await page.evaluate((url) => window.syncsegDemo.loadFeaturesUrl(url), st.features);
      for (const chunk of st.chunks ?? [1]) {
        const r = await page.evaluate(async (chunk) => {
          const r = await window.syncsegDemo.stream(chunk);
          return { ...r, labels: Array.from(r.labels) };
        }, chunk);
        result.stream.runs.push({ chunk, ...r });
      }
      log.push(`stream: ${Date.now() - started} ms`);
    }
    await browser.close();
    browser = null;

    if (config.fallback) {
      browser = await chromium.launch({
        executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
        args: NO_WEBGPU_FLAGS,
        headless: true,
      });
      const page = await openPage(browser, origin, log);
      result.fallback = {
        hasNavigatorGpu: await page.evaluate(() => "gpu" in navigator),
        env: await page.evaluate(() => document.getElementById("env").textContent),
      };
      await page.evaluate((url) => window.syncsegDemo.loadModelUrl(url), config.model);
      result.fallback.case = await runCase(page, {
        name: "fallback",
        features: config.fallback.features,
        devices: ["webgpu"],
      });
    }
  } finally {
    if (browser) await browser.close();
    server.close();
  }
  await writeFile(config.out, JSON.stringify(result));
}

main().catch((err) => {
  console.error(`browser run failed: ${err.stack ?? err}`);
  process.exit(1);
});
