#!/usr/bin/env bash
# Causal (streaming) against offline MS-TCN++ on the synthetic benchmark
# (issue 25), then the stream's cost per frame.
#
#   bash scripts/bench-stream.sh [SEEDS] [LOOKAHEADS]
#
# For each look-ahead L (frames; "off" = the offline network) and seed:
# a teacher is trained on the labelled exo videos, distilled to ego on the
# unlabelled synchronized pairs (TAS outputs), and both are scored on the
# test splits (exo: teacher; ego: student, and the teacher without
# adaptation); a causal student is also distilled from the offline teacher
# of the same seed (`distill --causal`). Prints mean ± sd over the seeds of
# F1@{10,25,50}, Edit, MoF.
# Then every causal student streams the ego test videos frame by frame
# (`predict --stream`): the mean and p99 time of one push, the stream's
# state, and the process's peak RSS (/usr/bin/time -f %M); and one
# 54,000-frame video (an hour at 15 fps): the cost does not grow with it.
#
# Writes under ${BENCH_DIR:-target/bench-stream}; runs are kept and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${1:-3}
LOOKAHEADS=${2:-"off 0 8 32 128"}
DIR=${BENCH_DIR:-target/bench-stream}
cargo build --release -q -p syncseg-native
BIN=$PWD/target/release/syncseg
mkdir -p "$DIR"
DATA=$DIR/data
[ -f "$DATA/synth.json" ] || "$BIN" synth --out "$DATA" --seed 0 >/dev/null

score() { # MODEL VIEW OUT -> one JSON line of scores on VIEW's test split
  "$BIN" predict --model "$1" --features "$DATA/features/$2" \
    --videos "$DATA/splits/$2_test.bundle" --out "$3" >/dev/null 2>&1
  "$BIN" eval --gt "$DATA/groundTruth" --pred "$3" \
    --videos "$DATA/splits/$2_test.bundle" --background background --json
}

RESULTS=$DIR/results.jsonl
: >"$RESULTS"
for L in $LOOKAHEADS; do
  causal=()
  [ "$L" = off ] || causal=(--causal --lookahead "$L")
  for s in $(seq 1 "$SEEDS"); do
    run=$DIR/L$L/seed$s
    if [ ! -f "$run/teacher/model.json" ]; then
      "$BIN" train --features "$DATA/features/exo" --labels "$DATA/groundTruth" \
        --mapping "$DATA/mapping.txt" --videos "$DATA/splits/exo_train.bundle" \
        --val-videos "$DATA/splits/exo_val.bundle" --background background \
        --backbone ms-tcn "${causal[@]}" --epochs 20 --lr 1e-3 --seed "$s" \
        --out "$run/teacher" 2>/dev/null
    fi
    if [ ! -f "$run/student/model.json" ]; then
      "$BIN" distill --teacher "$run/teacher" --dataset "$DATA" --teacher-view exo \
        --student-view ego --videos "$DATA/splits/adapt.bundle" \
        --val-videos "$DATA/splits/adapt_val.bundle" --level tas --epochs 15 \
        --lr 5e-4 --seed "$s" --out "$run/student" 2>/dev/null
    fi
    exo=$(score "$run/teacher" exo "$run/pred_exo")
    ego0=$(score "$run/teacher" ego "$run/pred_ego_teacher")
    ego=$(score "$run/student" ego "$run/pred_ego")
    extra=
    if [ "$L" != off ]; then
      # The causal student of the offline teacher (same seed).
      if [ ! -f "$run/student_of_offline/model.json" ]; then
        "$BIN" distill --teacher "$DIR/Loff/seed$s/teacher" --dataset "$DATA" \
          --teacher-view exo --student-view ego --videos "$DATA/splits/adapt.bundle" \
          --val-videos "$DATA/splits/adapt_val.bundle" --level tas --epochs 15 \
          --lr 5e-4 --seed "$s" --causal --lookahead "$L" \
          --out "$run/student_of_offline" 2>/dev/null
      fi
      extra=",\"ego_of_offline\":$(score "$run/student_of_offline" ego "$run/pred_ego_of_offline")"
    fi
    echo "{\"L\":\"$L\",\"seed\":$s,\"exo\":$exo,\"ego_teacher\":$ego0,\"ego\":$ego$extra}" >>"$RESULTS"
  done
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["f1_10", "f1_25", "f1_50", "edit", "mof"]
def cell(vals):
    m = statistics.mean(vals)
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{m:5.1f} ± {sd:4.1f}"
for part, title in [("exo", "exo teacher on exo_test"),
                     ("ego_teacher", "exo teacher on ego_test (no adaptation)"),
                     ("ego", "distilled student on ego_test (student of its own teacher)"),
                     ("ego_of_offline", "causal student of the offline teacher on ego_test")]:
    print(f"\n{title}")
    print("| L | seeds | F1@10 | F1@25 | F1@50 | Edit | MoF |")
    print("|---|---|---|---|---|---|---|")
    for L in dict.fromkeys(r["L"] for r in rows):
        rs = [r[part] for r in rows if r["L"] == L and part in r]
        if not rs:
            continue
        name = "offline" if L == "off" else f"causal L={L}"
        print(f"| {name} | {len(rs)} | " + " | ".join(cell([r[k] for r in rs]) for k in keys) + " |")
EOF

# An hour at 15 fps: synthetic features of the benchmark's dimension.
LONG=$DIR/long
if [ ! -f "$LONG/hour.npy" ]; then
  mkdir -p "$LONG"
  first=$(head -1 "$DATA/splits/ego_test.bundle")
  dim=$(head -c 128 "$DATA/features/ego/${first%.txt}.npy" | grep -ao "'shape': ([0-9]*" | grep -o "[0-9]*$")
  "$BIN" bench predict --dim "$dim" --frames 54000 --iters 1 \
    --save-features "$LONG/hour.npy" >/dev/null 2>&1
  echo hour.txt >"$LONG/hour.bundle"
fi

echo
echo "stream cost: the seed-1 causal student, frame by frame (1 frame a push)"
echo "| L | video | frames | mean ms/frame | p99 push ms | max push ms | state MB | peak RSS MB |"
echo "|---|---|---|---|---|---|---|---|"
for L in $LOOKAHEADS; do
  [ "$L" = off ] && continue
  for what in test hour; do
    out=$DIR/L$L/seed1/stream_$what
    rm -rf "$out"
    if [ $what = test ]; then
      feats=$DATA/features/ego videos=$DATA/splits/ego_test.bundle
    else
      feats=$LONG videos=$LONG/hour.bundle
    fi
    /usr/bin/time -f %M -o "$out.rss" "$BIN" predict --model "$DIR/L$L/seed1/student" \
      --features "$feats" --videos "$videos" --out "$out" \
      --stream --lookahead "$L" >/dev/null 2>&1
    rss=$(tail -1 "$out.rss")
    python3 - "$out" "$L" "$rss" "$what" <<'EOF'
import glob, json, sys
st = [json.load(open(f)) for f in sorted(glob.glob(sys.argv[1] + "/*.stream.json"))]
frames = sum(s["frames"] for s in st)
mean = sum(s["mean_frame_s"] * s["frames"] for s in st) / frames
p99 = max(s["p99_push_s"] for s in st)
mx = max(s["max_push_s"] for s in st)
video = "ego_test, 16 videos" if sys.argv[4] == "test" else "one video"
print(f"| {sys.argv[2]} | {video} | {frames} | {mean*1e3:.3f} | {p99*1e3:.3f} | {mx*1e3:.3f} | "
      f"{st[0]['state_bytes']/1e6:.1f} | {int(sys.argv[3])/1024:.0f} |")
EOF
  done
done
