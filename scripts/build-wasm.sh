#!/usr/bin/env bash
# Builds the browser package plugin-wasm/pkg/ (ES module + .wasm + .d.ts +
# package.json), installing the wasm32 target and the wasm-bindgen CLI of the
# version in Cargo.lock when missing (wasm-pack would download binaries from
# outside; it is not used). Prints the .wasm size, raw and gzipped.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
if [ -z "$version" ]; then
    echo "build-wasm: no wasm-bindgen in Cargo.lock" >&2
    exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "installing the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
    echo "installing wasm-bindgen-cli $version (crates.io)"
    # Not --locked: its lock file pins a webpki-roots release that is no
    # longer on crates.io.
    cargo install wasm-bindgen-cli --version "$version"
fi

target_dir=${CARGO_TARGET_DIR:-target}
cargo build --locked -p syncseg-wasm --target wasm32-unknown-unknown --profile wasm
wasm="$target_dir/wasm32-unknown-unknown/wasm/syncseg_wasm.wasm"

out=plugin-wasm/pkg
tmp=$(mktemp -d plugin-wasm/.pkg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
wasm-bindgen --target web --out-dir "$tmp" "$wasm"
cp plugin-wasm/README.md "$tmp/README.md"
crate_version=$(awk -F'"' '/^\[workspace.package\]/ { w = 1 } w && /^version/ { print $2; exit }' Cargo.toml)
cat > "$tmp/package.json" <<JSON
{
  "name": "syncseg-wasm",
  "version": "$crate_version",
  "description": "Temporal action segmentation of egocentric video in the browser: WebGPU with a CPU fallback.",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "./syncseg_wasm.js",
  "types": "./syncseg_wasm.d.ts",
  "exports": {
    ".": {
      "types": "./syncseg_wasm.d.ts",
      "default": "./syncseg_wasm.js"
    },
    "./syncseg_wasm_bg.wasm": "./syncseg_wasm_bg.wasm",
    "./package.json": "./package.json"
  },
  "files": [
    "README.md",
    "syncseg_wasm.js",
    "syncseg_wasm.d.ts",
    "syncseg_wasm_bg.wasm",
    "syncseg_wasm_bg.wasm.d.ts"
  ],
  "sideEffects": false
}
JSON
# Replace the package in one step: never a half-written pkg/.
rm -rf "$out.old"
if [ -d "$out" ]; then mv "$out" "$out.old"; fi
mv "$tmp" "$out"
rm -rf "$out.old"
trap - EXIT

raw=$(stat -c %s "$out/syncseg_wasm_bg.wasm")
gz=$(gzip -9 -c "$out/syncseg_wasm_bg.wasm" | wc -c)
echo "built $out: syncseg_wasm_bg.wasm $raw bytes ($((raw / 1024)) KiB), gzipped $gz bytes ($((gz / 1024)) KiB)"
