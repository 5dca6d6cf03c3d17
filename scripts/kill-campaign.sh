#!/usr/bin/env bash
# A kill -9 campaign against `syncseg train`: KILLS runs killed with SIGKILL
# at uniformly random moments (anywhere: inside a step, a validation, a
# checkpoint commit), each resumed with --resume, until the run finishes;
# then every checkpoint file must be byte-identical to an uninterrupted run.
#
#   bash scripts/kill-campaign.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
seed=${2:-1}
cargo build --release --locked -p syncseg-native --bin syncseg
bin=$PWD/target/release/syncseg
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" synth --out "$work/data" --seed 5 --dim 24 >/dev/null 2>&1
head -n 6 "$work/data/splits/exo_train.bundle" > "$work/data/small.bundle"
# Validation on other videos: the best epoch is not always the last one.
sed -n 7,9p "$work/data/splits/exo_train.bundle" > "$work/data/val.bundle"
# An array, not a function: `"$bin" ... &` must be the process killed (a
# function in the background is a subshell, and killing it leaves syncseg
# running: the next run would then be refused by the lock).
train=("$bin" train --features "$work/data/features/exo" --videos "$work/data/small.bundle"
    --labels "$work/data/groundTruth" --mapping "$work/data/mapping.txt"
    --val-videos "$work/data/val.bundle"
    --width-scale 0.125 --batch-size 2 --epochs 12 --seed 3 --out)
start=$(date +%s.%N)
"${train[@]}" "$work/reference" >/dev/null 2>&1
full_ms=$(python3 -c "import time; print(int((time.time() - $start) * 1000))")
echo "uninterrupted run: $full_ms ms"
RANDOM=$seed
killed=0
runs=0
while [ $killed -lt "$kills" ]; do
    resume=()
    [ -d "$work/killed/last" ] && resume=(--resume)
    "${train[@]}" "$work/killed" "${resume[@]}" >/dev/null 2>&1 &
    pid=$!
    # Anywhere within the run's length.
    sleep "$(python3 -c "import random; random.seed($seed * 100003 + $runs); print(random.uniform(0, $full_ms / 1000))")"
    runs=$((runs + 1))
    if kill -9 $pid 2>/dev/null; then
        wait $pid 2>/dev/null || true
        killed=$((killed + 1))
    else
        wait $pid || { echo "run $runs failed on its own"; exit 1; }
        # Finished before the kill: start over for more kills.
        cmp -s "$work/reference/last/model.safetensors" "$work/killed/last/model.safetensors" ||
            { echo "run $runs: finished with other weights"; exit 1; }
        rm -rf "$work/killed"
    fi
done
resume=()
[ -d "$work/killed/last" ] && resume=(--resume)
"${train[@]}" "$work/killed" "${resume[@]}" >/dev/null 2>&1
for f in model.safetensors model.json last/model.safetensors last/model.json last/optimizer.safetensors; do
    cmp "$work/reference/$f" "$work/killed/$f"
done
leftovers=$(ls -A "$work/killed" | grep -v -x -e .syncseg.lock -e last -e model.json -e model.safetensors || true)
[ -z "$leftovers" ] || { echo "left behind: $leftovers"; exit 1; }
echo "$killed kills over $runs runs (seed $seed): every checkpoint byte-identical to the uninterrupted run, nothing left behind"
