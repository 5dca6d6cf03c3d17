#!/usr/bin/env bash
# Peak resident memory (/usr/bin/time -f %M) of training and prediction
# against epochs, batch size, window length, feature dimension and the
# number of videos: the figures of BENCHMARKS.md's "Memory" section.
#
#   bash scripts/bench-memory.sh [PAPER_DATA]
#
# PAPER_DATA: a `syncseg synth --preset paper` folder (or a demo's data/)
# for the window-length and predict rows (long videos); skipped without it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p syncseg-native --locked >/dev/null
BIN=$PWD/target/release/syncseg
WORK=${WORK:-$(mktemp -d)}
PAPER=${1:-}
peak() { # peak LABEL CMD... : prints "LABEL | peak MiB | seconds"
    local label=$1
    shift
    local out
    out=$({ /usr/bin/time -f "%M %e" "$@" >/dev/null 2>"$WORK/err"; } 2>&1 || true)
    out=$(tail -1 "$WORK/err")
    awk -v l="$label" -v s="$out" 'BEGIN { split(s, a, " "); printf "| %s | %.0f | %.1f |\n", l, a[1] / 1024, a[2] }'
}
for dim in 64 1024; do
    [ -d "$WORK/small-$dim" ] || "$BIN" synth --out "$WORK/small-$dim" --preset small --seed 0 --dim "$dim" >/dev/null 2>&1
done
train() { # train DIM OUT EXTRA...: the README's command at full width, timed
    local label=$1 d=$WORK/small-$2 out=$3
    shift 3
    peak "$label" "$BIN" train --features "$d/features/exo" --labels "$d/groundTruth" \
        --mapping "$d/mapping.txt" --videos "$d/splits/exo_train.bundle" \
        --val-videos "$d/splits/exo_val.bundle" --background background --out "$WORK/$out" "$@"
}
echo "| run | peak RSS (MiB) | wall (s) |"
echo "|---|--:|--:|"
for dim in 64 1024; do
    for e in 1 5 30; do
        train "train D=$dim, $e epochs" "$dim" "t$dim-$e" --epochs "$e"
    done
done
for b in 1 2 4 8; do
    train "train D=1024, batch $b, 1 epoch" 1024 "b$b" --epochs 1 --batch-size "$b"
done
d=$WORK/small-1024
for e in 2 10; do
    peak "distill --level tas D=1024, $e epochs" "$BIN" distill --teacher "$WORK/t1024-30" --dataset "$d" \
        --teacher-view exo --student-view ego --videos "$d/splits/adapt.bundle" \
        --val-videos "$d/splits/adapt_val.bundle" --level tas --epochs "$e" --out "$WORK/dt$e"
done
if [ -n "$PAPER" ] && [ -z "${SKIP_PAPER:-}" ]; then
    head -n 12 "$PAPER/splits/exo_train.bundle" >"$WORK/paper12.bundle"
    for m in 600 1200 2400 4800; do
        peak "train D=1024 (paper videos), --max-frames $m, batch 1, 1 epoch" "$BIN" train \
            --features "$PAPER/features/exo" --labels "$PAPER/groundTruth" --mapping "$PAPER/mapping.txt" \
            --videos "$WORK/paper12.bundle" --out "$WORK/m$m" --epochs 1 --batch-size 1 --max-frames "$m"
    done
    head -n 10 "$PAPER/splits/ego_test.bundle" >"$WORK/test10.bundle"
    for bundle in "$WORK/test10.bundle" "$PAPER/splits/ego_test.bundle"; do
        n=$(grep -c . "$bundle")
        peak "predict D=1024, $n videos" "$BIN" predict --model "$WORK/m600" \
            --features "$PAPER/features/ego" --videos "$bundle" --out "$WORK/pred$n"
    done
fi
