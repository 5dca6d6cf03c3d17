#!/usr/bin/env bash
# Times DINOv2 frame features in headless Chromium (the wasm package's
# FrameEncoder) on WebGPU and on the wasm CPU fallback (BENCHMARKS.md): the
# same random weights as `syncseg bench vit`, FRAMES frames of SIZE px
# (preprocessing included: resize + crop to SIZE, normalisation).
# Usage: scripts/bench-browser-vit.sh [small|base|large] [FRAMES] [SIZE] [DEVICES]
#   DEVICES: comma-separated, of webgpu and cpu (default both)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-small} frames=${2:-8} px=${3:-224} devices=${4:-webgpu,cpu}
case "$size" in
small | base | large) ;;
*) echo "scripts/bench-browser-vit.sh: size '$size': small, base or large (giant's 4.5 GB of weights exceed wasm32's 4 GiB)" >&2; exit 2 ;;
esac

cargo build --release --locked -p syncseg-native --bin syncseg
bash scripts/build-wasm.sh
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "== native (this machine's CPU, for reference)"
target/release/syncseg bench vit --size "$size" --image "$px" --batch "$frames" --iters 1 \
    --save-weights "$dir/vit.safetensors"
devices_json=$(printf '"%s",' ${devices//,/ })
cat > "$dir/config.json" <<JSON
{
  "root": "$PWD/plugin-wasm",
  "files": "$dir",
  "vision": {
    "weights": "/files/vit.safetensors",
    "options": {"resize": $px, "crop": $px},
    "pixels": {"count": $frames, "width": $px, "height": $px, "devices": [${devices_json%,}], "repeat": 2}
  },
  "out": "$dir/result.json"
}
JSON
echo "== headless Chromium (the first encode of each backend includes its warm-up)"
node tests/browser/run.mjs "$dir/config.json"
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
console.log(r.userAgent);
for (const run of r.vision.pixels.runs) {
  const fps = run.millis.map((ms) => (run.frames / (ms / 1000)).toFixed(2));
  console.log(`${run.device}\t${run.adapter}\t${run.frames} frames\t${run.millis.map((ms) => ms.toFixed(0)).join(" / ")} ms\t${fps.join(" / ")} frames/s`);
}' "$dir/result.json"
