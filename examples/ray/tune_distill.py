"""A Ray Tune sweep of distillation (lr x levels x epochs), each student
scored by the label-free held-out pair loss and the lowest chosen — no ego
labels anywhere. On the synthetic benchmark (a teacher is trained first):

    python examples/ray/tune_distill.py --work /tmp/sweep [--quick]

On your data, call syncseg.ray.distill_sweep with your teacher, feature
folders (or LMDB stores) and split bundles, as below.
"""

import argparse
import pathlib

import ray

import syncseg
import syncseg.ray


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="a new folder for the benchmark, teacher and students")
    ap.add_argument("--quick", action="store_true", help="2 trials of 1 epoch (a smoke test)")
    ap.add_argument("--address", help="a running cluster (\"auto\"); default: a local one")
    args = ap.parse_args()
    work = pathlib.Path(args.work)

    data = syncseg.synth(out=work / "bench", preset="small", seed=0)
    teacher = syncseg.train(
        features=data / "features/exo", labels=data / "groundTruth", mapping=data / "mapping.txt",
        videos=data / "splits/exo_train.bundle", val_videos=data / "splits/exo_val.bundle",
        out=work / "teacher", epochs=2 if args.quick else 30, lr=1e-3, width_scale=0.25,
        background=["background"], progress=False,
    )
    if args.quick:
        grid_axes = dict(lr=[5e-4], levels=[[0], None], epochs=[1])
    else:
        # Heads: 0 = full resolution ... 5 = T/32; None = all six (the method).
        grid_axes = dict(lr=[1e-4, 5e-4, 1e-3], levels=[[0], [0, 1, 2], None], epochs=[10, 30])

    ray.init(address=args.address)
    grid = syncseg.ray.distill_sweep(
        teacher=teacher.path,
        teacher_features=data / "features/exo",
        student_features=data / "features/ego",
        videos=data / "splits/adapt.bundle",
        val_videos=data / "splits/adapt_val.bundle",  # held-out pairs: no labels
        out=work / "students",
        **grid_axes,
    )
    rows = sorted(grid, key=lambda r: r.metrics["pair_loss"])
    print(f"{'lr':>8} {'levels':>14} {'epochs':>6} {'pair loss':>10}")
    for r in rows:
        c = r.config
        print(f"{c['lr']:>8g} {str(c['levels'] or 'all'):>14} {c['epochs']:>6} {r.metrics['pair_loss']:>10.5f}")
    best = grid.get_best_result()
    print(f"chosen: {best.metrics['student']}")

    # Only now, for the reader of this example, the labelled score the
    # selection never saw.
    student = syncseg.Model.load(best.metrics["student"])
    gt, pred = [], []
    for line in (data / "splits/ego_test.bundle").read_text().split():
        video = line.removesuffix(".txt")
        pred.append(student.predict(syncseg.load_features(data / "features/ego", video=video)).names)
        gt.append((data / "groundTruth" / f"{video}.txt").read_text().splitlines())
    scores = syncseg.evaluate(gt, pred, background=["background"])
    print("ego test:", {k: round(v, 1) for k, v in scores.items()})


if __name__ == "__main__":
    main()
