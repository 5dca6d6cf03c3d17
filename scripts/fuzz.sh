#!/usr/bin/env bash
# A long fuzz campaign: every target (or those named) for SECONDS each, each
# in its own process so that an abort (an allocation over the cap, a hang)
# is reported and the next target still runs. Findings go to
# target/fuzz-findings/; an input worth keeping as a regression goes to
# fuzz/corpus/<target>/.
#
#   bash scripts/fuzz.sh [SECONDS] [SEED] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-300}
seed=${2:-1}
shift $(( $# > 2 ? 2 : $# ))
cargo build --release --locked -p syncseg-fuzz
exe=target/release/syncseg-fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("$exe" list | awk '{print $1}')
fi
status=0
for t in "${targets[@]}"; do
    # pipefail: a failing (or aborted) fuzzer fails the pipeline.
    if ! "$exe" run --target "$t" --seconds "$seconds" --seed "$seed" \
        --corpus fuzz/corpus --findings target/fuzz-findings 2>&1 |
        grep -v -E '^ +[0-9]+: |^ +at |^note: |^stack backtrace:'; then
        status=1
    fi
done
ls target/fuzz-findings 2>/dev/null | sed 's/^/finding: /' || true
exit $status
