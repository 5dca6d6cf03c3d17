"""Segments a folder of feature files on a Ray cluster, one loaded model per
actor, writing what `syncseg predict` writes (byte for byte):

    python examples/ray/segment.py --model student --features features/ego \\
        --out predictions [--videos split.bundle] [--concurrency 2] \\
        [--export otio --fps 30000/1001] [--save-probs] [--overwrite] [--address auto]

`--features` is a folder of <video>.npy (read with
ray.data.read_binary_files) or an LMDB store. Without `--address` it starts
a local cluster on this machine's CPUs.
"""

import argparse
import time

import ray

import syncseg.ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model directory or .syncseg bundle")
    ap.add_argument("--features", required=True, help="folder of <video>.npy, or an LMDB store")
    ap.add_argument("--out", required=True)
    ap.add_argument("--videos", help="a split bundle (default: every video)")
    ap.add_argument("--concurrency", type=int, default=2, help="actors, each holding one model")
    ap.add_argument("--batch-size", type=int, default=4, help="videos per batch")
    ap.add_argument("--export", help="also write <video>.<ext> in this editor format")
    ap.add_argument("--fps", help="the videos' frame rate, for --export")
    ap.add_argument("--save-probs", action="store_true")
    ap.add_argument("--time-major", action="store_true", help="feature files are [T, D]")
    ap.add_argument("--overwrite", action="store_true", help="redo videos whose files exist")
    ap.add_argument("--address", help="a running cluster (\"auto\"); default: a local one")
    args = ap.parse_args()

    ray.init(address=args.address)
    start = time.perf_counter()
    rows = syncseg.ray.segment(
        args.model, args.features, args.out, videos=args.videos, concurrency=args.concurrency,
        batch_size=args.batch_size, export=args.export, fps=args.fps, save_probs=args.save_probs,
        layout="td" if args.time_major else "dt", overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    computed = [r for r in rows if not r["kept"]]
    frames = sum(r["frames"] for r in computed)
    print(f"{len(computed)} videos, {frames} frames in {seconds:.1f} s "
          f"({args.concurrency} actors; {len(rows) - len(computed)} already finished, kept) -> {args.out}")


if __name__ == "__main__":
    main()
