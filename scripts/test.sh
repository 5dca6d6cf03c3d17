#!/usr/bin/env bash
# The project's test command: installs what the tests need when it is
# missing, then checks formatting, lints, and runs every test of the
# workspace. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

need_rust_component() {
    if ! cargo "$1" --version >/dev/null 2>&1; then
        echo "installing rustup component $2"
        rustup component add "$2"
    fi
}
need_rust_component fmt rustfmt
need_rust_component clippy clippy

# The C ABI tests compile a C program and run a Python ctypes example.
need_apt() { # need_apt COMMAND PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "installing $2 (for $1)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"
    fi
}
need_apt cc gcc
need_apt python3 python3
# The OTIO exporter is verified by OpenTimelineIO itself (PyPI; 0.18.1
# reads and writes Marker.2, the schema editors import).
if ! python3 -c "import opentimelineio" >/dev/null 2>&1; then
    echo "installing opentimelineio (PyPI)"
    python3 -m pip install -q opentimelineio==0.18.1 ||
        { apt-get install -y -qq python3-pip && python3 -m pip install -q opentimelineio==0.18.1; }
fi
# The exports are read back by the readers editors and players use
# (plugin-native/tests/export_readers.rs): OTIO's EDL and FCPXML adapters,
# webvtt-py, srt (PyPI), xmllint, and ffprobe (the ffmpeg package below).
if ! python3 -c "import otio_cmx3600_adapter, otio_fcpx_xml_adapter, webvtt, srt" >/dev/null 2>&1; then
    echo "installing otio-cmx3600-adapter otio-fcpx-xml-adapter webvtt-py srt (PyPI)"
    python3 -m pip install -q otio-cmx3600-adapter==1.0.0 otio-fcpx-xml-adapter==1.0.0 webvtt-py==0.6.0 srt==3.5.3 ||
        python3 -m pip install -q --break-system-packages otio-cmx3600-adapter==1.0.0 otio-fcpx-xml-adapter==1.0.0 webvtt-py==0.6.0 srt==3.5.3
fi
need_apt xmllint libxml2-utils
# The Kubernetes template test reads examples/k8s/*.yaml with PyYAML, as
# Kubernetes tooling does (plugin-native/tests/array_jobs.rs).
if ! python3 -c "import yaml" >/dev/null 2>&1; then
    echo "installing PyYAML (PyPI)"
    python3 -m pip install -q PyYAML==6.0.3 ||
        python3 -m pip install -q --break-system-packages PyYAML==6.0.3
fi

# The wgpu executor's tests run on any Vulkan adapter; without a GPU that is
# Mesa's lavapipe (a CPU Vulkan driver).
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 &&
    ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
    echo "installing mesa-vulkan-drivers libvulkan1 (lavapipe, for the wgpu tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1
fi

# The browser tests: Debian's Chromium driven by playwright-core (npm, the
# version in tests/browser/package-lock.json), and the wasm package built by
# scripts/build-wasm.sh (which installs the wasm32 target and the
# wasm-bindgen CLI of the version in Cargo.lock).
need_apt chromium chromium
# `syncseg features|segment` decode video with the system's FFmpeg.
need_apt ffmpeg ffmpeg
need_apt node nodejs
need_apt npm npm
if [ ! -d tests/browser/node_modules/playwright-core ]; then
    echo "installing playwright-core (npm)"
    npm ci --prefix tests/browser --no-audit --no-fund
fi
# A one-off build gains nothing from incremental caches but their disk space.
if [ "${CI:-}" = "true" ]; then export CARGO_INCREMENTAL=0; fi

echo "== scripts/build-wasm.sh"
bash scripts/build-wasm.sh

# lavapipe is installed above: a GPU test that finds no adapter fails here
# rather than skipping (plain `cargo test` elsewhere skips it, saying so).
export SYNCSEG_REQUIRE_GPU=1
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p syncseg-wasm --target wasm32-unknown-unknown --locked -- -D warnings
# Both tiers: the fast one (`cargo test`: units, op conformance, parity,
# the quick end-to-end runs) and the slow one (`#[ignore = "slow tier …"]`:
# the demo over three seeds, the paper study, the memory soaks, the kill
# campaign, the browser).
echo "== cargo test (fast and slow tiers)"
cargo test --workspace --locked -- --include-ignored

# The Python package: `pip install ./plugin-python` into a venv (maturin
# builds it as the PEP 517 backend; the dev profile reuses what the cargo
# runs above built), then its pytest suite, which also drives the CLI
# built above (target/debug/syncseg).
echo "== the Python package (pip install ./plugin-python, pytest)"
venv=target/py-venv
if ! "$venv/bin/python" -c "import numpy, pytest, lmdb, tqdm" >/dev/null 2>&1; then
    echo "installing numpy pytest lmdb tqdm (PyPI) into $venv"
    python3 -m venv "$venv" ||
        { apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/python" -m pip install -q numpy==2.4.6 pytest==9.2.0 lmdb==3.0.0 tqdm==4.70.1
fi
# syncseg.ray's tests start a local Ray cluster (2 CPUs); Ray Data and Tune
# come with pandas and pyarrow (~530 MB in the venv, ~30 s to install).
if ! "$venv/bin/python" -c "import ray.data, ray.tune" >/dev/null 2>&1; then
    echo "installing ray[data,tune] (PyPI) into $venv"
    "$venv/bin/python" -m pip install -q "ray[data,tune]==2.60.0"
fi
MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./plugin-python
(cd plugin-python && SYNCSEG_CLI="$PWD/../target/debug/syncseg" "../$venv/bin/python" -m pytest -q tests)
