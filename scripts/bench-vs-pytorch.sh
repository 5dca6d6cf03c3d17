#!/usr/bin/env bash
# syncseg against PyTorch on this machine's CPU, the same shapes and the same
# work, run alternately (syncseg, PyTorch, syncseg, PyTorch, ...) so that a
# noisy machine affects both alike; prints each run and a table of ratios
# (syncseg's time / PyTorch's: below 1 is faster). BENCHMARKS.md's "syncseg
# against PyTorch on the CPU" section is its output.
#
#   bash scripts/bench-vs-pytorch.sh [ROUNDS] [CASES]
#
# ROUNDS: how many times each case alternates (default 2). CASES: a
# comma-separated subset of c2f-ref-b1,c2f-ref-b4,c2f-demo-b1,c2f-demo-b4,
# vit-small,vit-large (default: all).
#
# PyTorch comes from PyPI into a venv (SYNCSEG_TORCH_VENV, default
# target/torch-venv) when missing; both sides use every core (PyTorch's
# default thread count is the number of cores, as is syncseg's pool).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
CASES=${2:-c2f-ref-b1,c2f-ref-b4,c2f-demo-b1,c2f-demo-b4,vit-small,vit-large}
TORCH_VERSION=2.15.0
VENV=${SYNCSEG_TORCH_VENV:-$PWD/target/torch-venv}
PY=$VENV/bin/python
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "installing torch $TORCH_VERSION into $VENV (PyPI)" >&2
    python3 -m venv "$VENV"
    "$PY" -m pip install -q "torch==$TORCH_VERSION" numpy
fi
cargo build --release -p syncseg-native --locked >&2
BIN=$PWD/target/release/syncseg
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# case name → (syncseg arguments, PyTorch arguments)
args_for() {
    case $1 in
    c2f-ref-b1) echo "c2f --dim 1024 --frames 600 --classes 33 --batch 1 --iters 10" ;;
    c2f-ref-b4) echo "c2f --dim 1024 --frames 600 --classes 33 --batch 4 --iters 5" ;;
    c2f-demo-b1) echo "c2f --dim 64 --frames 450 --classes 13 --batch 1 --iters 10" ;;
    c2f-demo-b4) echo "c2f --dim 64 --frames 450 --classes 13 --batch 4 --iters 5" ;;
    vit-small) echo "vit --size small --batch 8 --iters 3" ;;
    vit-large) echo "vit --size large --batch 8 --iters 1" ;;
    *)
        echo "unknown case $1" >&2
        exit 2
        ;;
    esac
}

run_syncseg() { # run_syncseg WHAT ARGS...
    local what=$1
    shift
    if [ "$what" = c2f ]; then
        "$BIN" bench step --json "$@"
    else
        "$BIN" bench vit --device cpu --json "$@"
    fi
}

IFS=, read -ra names <<<"$CASES"
for name in "${names[@]}"; do
    read -ra a <<<"$(args_for "$name")"
    for round in $(seq "$ROUNDS"); do
        s=$(run_syncseg "${a[@]}")
        echo "$name syncseg $s" | tee -a "$OUT/runs"
        t=$("$PY" scripts/bench_vs_pytorch.py "${a[@]}")
        echo "$name pytorch $t" | tee -a "$OUT/runs"
    done
done

python3 - "$OUT/runs" <<'EOF'
import json, sys, collections, platform, os
runs = collections.defaultdict(lambda: collections.defaultdict(list))
for line in open(sys.argv[1]):
    name, who, js = line.split(" ", 2)
    runs[name][who].append(json.loads(js))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(f"\nmachine: {cpu}, {os.cpu_count()} cores")
print("| case | measure | syncseg (each round) | PyTorch (each round) | ratio (each round) |")
print("|---|---|---|---|---|")
for name, who in runs.items():
    keys = ["inference_ms", "train_step_ms"] if name.startswith("c2f") else ["frames_per_s"]
    for k in keys:
        s = [r[k] for r in who["syncseg"]]
        t = [r[k] for r in who["pytorch"]]
        # Ratios of times: syncseg / PyTorch; of rates: syncseg / PyTorch too,
        # so a ratio below 1 is faster for times and slower for rates.
        ratio = [a / b for a, b in zip(s, t)]
        fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
        print(f"| {name} | {k} | {fmt(s)} | {fmt(t)} | {' / '.join(f'{r:.2f}×' for r in ratio)} |")
EOF
