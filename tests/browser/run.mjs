// Drives the demo page (plugin-wasm/www) in headless Chromium and writes what
// it returned as JSON; tests/tests/browser.rs compares that with the native
// CLI. Usage: node run.mjs CONFIG.json
//
// CONFIG: {
//   "root": "<repo>/plugin-wasm",      served at /
//   "files": "<dir>",                   served at /files/
//   "model": "/files/model.safetensors",
//   "cases": [{"name": "...", "features": "/files/x.npy", "devices": ["webgpu", "cpu"], "repeat": 1}],
//             (or "synthetic": {preset, seed, dim, index, view} instead of "features")
//   "fallback": {"features": "/files/x.npy"},   optional: a run without WebGPU
//   "errors": {"key": ["loadModelUrl" | "loadFeaturesUrl" | "segment", arg]}, calls expected to fail
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
    await page.evaluate((url) => window.syncsegDemo.loadModelUrl(url), config.model);
    result.cases = [];
    for (const c of config.cases ?? []) {
      const started = Date.now();
      result.cases.push(await runCase(page, c));
      log.push(`case ${c.name}: ${Date.now() - started} ms`);
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
