"""syncseg.ray on a local Ray cluster of 2 CPUs: the Ray Data pipeline
writes the command line's files byte for byte, and the Tune sweep selects
its trial on the label-free held-out pair loss."""

import json
import os
import subprocess

import pytest

import syncseg
from conftest import output_files, write_release_store

try:
    import ray
except ImportError:
    if os.environ.get("CI") == "true":
        raise ImportError('CI runs the Ray tests: pip install "ray[data,tune]" (scripts/test.sh does)') from None
    pytest.skip('ray is not installed (pip install "ray[data,tune]"); CI runs these tests', allow_module_level=True)

import syncseg.ray  # noqa: E402 (after the skip)

# Ray Data's own DataContext warns of its deprecated fields.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def bundle(data, split):
    return [line.removesuffix(".txt") for line in (data / "splits" / f"{split}.bundle").read_text().split()]


def test_the_ray_pipeline_writes_the_command_lines_files(bench, teacher, tmp_path, cli, cluster):
    videos = bench / "splits/exo_test.bundle"
    want = tmp_path / "cli"
    subprocess.run(
        [cli, "predict", "--model", str(teacher.path), "--features", str(bench / "features/exo"),
         "--videos", str(videos), "--out", str(want), "--export", "vtt", "--fps", "25", "--save-probs"],
        check=True, capture_output=True,
    )
    names = bundle(bench, "exo_test")
    rows = syncseg.ray.segment(
        teacher, bench / "features/exo", tmp_path / "ray", videos=videos, concurrency=2, batch_size=3,
        export="vtt", fps="25", save_probs=True,
    )
    assert output_files(tmp_path / "ray") == output_files(want)
    assert [r["video"] for r in rows] == names
    for r in rows:
        segments = json.loads((want / f"{r['video']}.segments.json").read_text())
        assert r["frames"] == segments["frames"] and r["segments"] == len(segments["segments"])
        assert [os.path.basename(p) for p in r["paths"]] == [
            f"{r['video']}.{ext}" for ext in ("txt", "segments.json", "probs.npy", "vtt")]

    assert not any(r["kept"] for r in rows)

    # A rerun keeps every finished video; one whose files are gone (a
    # preempted actor) is the only one computed; overwrite redoes all.
    (tmp_path / "ray" / f"{names[2]}.vtt").unlink()
    again = syncseg.ray.segment(
        teacher, bench / "features/exo", tmp_path / "ray", videos=videos, concurrency=1,
        export="vtt", fps="25", save_probs=True,
    )
    assert [r["video"] for r in again if not r["kept"]] == [names[2]]
    assert [r["video"] for r in again] == names
    assert output_files(tmp_path / "ray") == output_files(want)
    redone = syncseg.ray.segment(
        teacher, bench / "features/exo", tmp_path / "ray", videos=videos, concurrency=1,
        export="vtt", fps="25", save_probs=True, overwrite=True,
    )
    assert not any(r["kept"] for r in redone)
    assert output_files(tmp_path / "ray") == output_files(want)

    # A list of files, and an LMDB store (read by the actors), one actor.
    files = [bench / "features/exo" / f"{v}.npy" for v in names[:4]]
    syncseg.ray.segment(teacher.path, files, tmp_path / "list", concurrency=1)
    write_release_store(bench / "features/exo", tmp_path / "store", names[4:8])
    syncseg.ray.segment(teacher.path, tmp_path / "store", tmp_path / "lmdb", concurrency=1)
    basic = {k: v for k, v in output_files(want).items() if k.endswith((".txt", ".segments.json"))}
    got = {**output_files(tmp_path / "list"), **output_files(tmp_path / "lmdb")}
    assert got == {k: v for k, v in basic.items() if k.split(".")[0] in names[:8]}


def test_the_tune_sweep_selects_the_lowest_held_out_pair_loss(bench, teacher, tmp_path, cluster):
    views = dict(teacher_features=bench / "features/exo", student_features=bench / "features/ego")
    grid = syncseg.ray.distill_sweep(
        teacher=teacher.path, **views, videos=bench / "splits/adapt.bundle",
        val_videos=bench / "splits/adapt_val.bundle", out=tmp_path / "sweep",
        lr=[5e-4], levels=[[0], None], epochs=[1],
    )
    results = list(grid)
    assert len(results) == 2
    losses = [r.metrics["pair_loss"] for r in results]
    assert grid.get_best_result().metrics["pair_loss"] == min(losses)
    for r in results:
        student = syncseg.Model.load(r.metrics["student"])
        held_out = dict(views, videos=bench / "splits/adapt_val.bundle")
        # The metric is every head's loss, whatever the trial distilled ...
        assert syncseg.pair_loss(teacher, student, **held_out) == r.metrics["pair_loss"]
        # ... and over the trial's own levels it is what its run selected
        # its epoch on.
        own = syncseg.pair_loss(teacher, student, **held_out, levels=r.config["levels"])
        assert own == r.metrics["val_distill_loss"]
        assert r.metrics["selected_epoch"] == 1


def test_segment_refuses_inputs_that_would_collide_or_are_not_features(bench, teacher, tmp_path):
    exo = bench / "features/exo"
    video = bundle(bench, "exo_test")[0]
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / f"{video}.npy").write_bytes((exo / f"{video}.npy").read_bytes())
    with pytest.raises(ValueError, match=f"video '{video}' is given twice"):
        syncseg.ray.segment(teacher, [exo / f"{video}.npy", tmp_path / "copy" / f"{video}.npy"], tmp_path / "o")
    with pytest.raises(ValueError, match="not a .npy file"):
        syncseg.ray.segment(teacher, [bench / "mapping.txt"], tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        syncseg.ray.segment(teacher, exo, tmp_path / "o", videos=["nope"])
    assert not (tmp_path / "o").exists()
