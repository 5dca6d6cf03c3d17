#!/usr/bin/env bash
# Times segmentation in headless Chromium on WebGPU and on the wasm CPU
# fallback (BENCHMARKS.md): the same random model and features as
# `syncseg bench predict`, 10k frames in 600-frame windows by default.
# Usage: scripts/bench-browser.sh [FRAMES] [DIM] [CLASSES] [ADAPTER] [DEVICES]
# DEVICES: the page's backends, comma-separated (default webgpu,cpu; `cpu`
# alone skips the minutes SwiftShader takes).
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${1:-10000} dim=${2:-1024} classes=${3:-33} adapter=${4:-none}
devices=$(echo "${5:-webgpu,cpu}" | sed 's/[^,][^,]*/"&"/g')

cargo build --release --locked -p syncseg-native --bin syncseg
bash scripts/build-wasm.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== native (this machine's CPU, for reference)"
target/release/syncseg bench predict --device cpu --frames "$frames" --window 600 \
    --dim "$dim" --classes "$classes" --adapter "$adapter" --iters 2 \
    --save-model "$dir/model.syncseg" --save-features "$dir/bench.npy"
cat > "$dir/config.json" <<JSON
{
  "root": "$PWD/plugin-wasm",
  "files": "$dir",
  "model": "/files/model.syncseg",
  "cases": [{"name": "bench", "features": "/files/bench.npy", "devices": [$devices], "repeat": 3}],
  "out": "$dir/result.json"
}
JSON
echo "== headless Chromium (first run of each backend includes its warm-up)"
node tests/browser/run.mjs "$dir/config.json"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(r.userAgent);
for (const run of r.cases[0].runs) {
  console.log(`${run.device}\t${run.adapter}\t${run.labels.length} frames\t${run.millis.toFixed(0)} ms`);
}' "$dir/result.json"
