#!/usr/bin/env bash
# Scaling of a sharded batch job on this machine: `syncseg features
# --videos` over a list of generated clips with a ViT-S/14, as 1 process ×
# 1 thread, 1 process × 2 threads and 2 shards × 1 thread at once; checks
# that all three write the same bytes. Usage:
#   bash scripts/bench-shards.sh [WORK_DIR] [CLIPS]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/bench-shards}
clips=${2:-12}
cargo build --release -p syncseg-native --locked >&2
bin=$PWD/target/release/syncseg
mkdir -p "$work/videos"
cd "$work"
[ -f vit_s.safetensors ] || "$bin" bench vit --size small --iters 1 --save-weights vit_s.safetensors >&2
: > videos.txt
total=0
for i in $(seq 0 $((clips - 1))); do
    d=$((4 + (i * 7) % 12))   # 4–15 s, in mixed order
    total=$((total + d))
    [ -f "videos/rec$i.mp4" ] || ffmpeg -v error -nostdin -f lavfi \
        -i "testsrc=duration=$d:size=320x240:rate=10" -pix_fmt yuv420p "videos/rec$i.mp4"
    echo "videos/rec$i.mp4" >> videos.txt
done
echo "$clips clips, $total s of video, sampled at 2 fps"
run() { # run NAME THREADS [flags]
    local name=$1 threads=$2
    shift 2
    RAYON_NUM_THREADS=$threads CI=1 "$bin" features --videos videos.txt \
        --weights vit_s.safetensors --fps 2 --out "$name" "$@" > /dev/null 2>> "$name.log" ||
        { cat "$name.log" >&2; return 1; }
}
rm -rf one1 one2 two one1.log one2.log two.log
t0=$(date +%s.%N); run one1 1; t1=$(date +%s.%N)
echo "1 process, 1 thread:   $(echo "$t1 - $t0" | bc) s"
t0=$(date +%s.%N); run one2 2; t1=$(date +%s.%N)
echo "1 process, 2 threads:  $(echo "$t1 - $t0" | bc) s"
t0=$(date +%s.%N)
run two 1 --shard-index 0 --num-shards 2 &
run two 1 --shard-index 1 --num-shards 2 &
wait
t1=$(date +%s.%N)
echo "2 shards × 1 thread:   $(echo "$t1 - $t0" | bc) s"
"$bin" shards status two
for f in one1/*.npy; do
    cmp -s "$f" "one2/$(basename "$f")" && cmp -s "$f" "two/$(basename "$f")" ||
        { echo "outputs differ: $(basename "$f")"; exit 1; }
done
echo "outputs identical"
