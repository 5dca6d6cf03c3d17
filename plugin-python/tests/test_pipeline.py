"""The method end to end from Python: train → distill → predict →
evaluate, parity with the command line, LMDB stores in the release's
layout, and Ctrl-C during training."""

import json
import os
import signal
import subprocess

import lmdb
import numpy as np
import pytest

import syncseg
from conftest import SMALL, job_paths, output_files, write_release_store


def bundle(data, split):
    return [line.removesuffix(".txt") for line in (data / "splits" / f"{split}.bundle").read_text().split()]


def labels_of(data, video):
    return (data / "groundTruth" / f"{video}.txt").read_text().split("\n")[:-1]


def test_train_distill_predict_evaluate(bench, teacher, tmp_path):
    events = []
    student = syncseg.distill(
        teacher=teacher.path,
        teacher_features=bench / "features/exo",
        student_features=bench / "features/ego",
        videos=bench / "splits/adapt.bundle",
        val_videos=bench / "splits/adapt_val.bundle",
        out=tmp_path / "student",
        level="both",
        epochs=1,
        lr=5e-4,
        progress=events.append,
    )
    stages = [e["stage"] for e in events if e["event"] == "stage"]
    assert stages == ["adapter", "distill"]
    steps = [e for e in events if e["event"] == "step"]
    assert steps and all(np.isfinite(e["loss"]) for e in steps)
    assert [e["record"]["epoch"] for e in events if e["event"] == "epoch"] == [1, 1]
    assert student.classes == teacher.classes and student.path == tmp_path / "student"

    gt, pred = [], []
    for video in bundle(bench, "ego_test"):
        p = student.predict(syncseg.load_features(bench / "features/ego", video=video))
        pred.append(p.names)
        gt.append(labels_of(bench, video))
    scores = syncseg.evaluate(gt, pred, background=["background"])
    assert scores["videos"] == len(gt)
    assert set(scores) == {"edit", "f1_10", "f1_25", "f1_50", "mof", "videos"}
    assert all(0.0 <= scores[k] <= 100.0 for k in ("edit", "f1_10", "f1_25", "f1_50", "mof"))


def test_predict_and_write_outputs_equal_the_command_line(bench, teacher, tmp_path, cli):
    out = tmp_path / "cli"
    subprocess.run(
        [cli, "predict", "--model", str(teacher.path), "--features", str(bench / "features/exo"),
         "--videos", str(bench / "splits/exo_test.bundle"), "--out", str(out), "--save-probs",
         "--export", "fcpxml", "--fps", "30000/1001"],
        check=True, capture_output=True,
    )
    mine = tmp_path / "python"
    for i, video in enumerate(bundle(bench, "exo_test")):
        x = syncseg.load_features(bench / "features/exo", video=video)
        p = teacher.predict(x)
        want = np.load(out / f"{video}.probs.npy")
        assert np.array_equal(p.probs, want), video
        assert p.names == (out / f"{video}.txt").read_text().splitlines()
        # From the prediction, or (every other video) from the features.
        # The export's notes, as the command line prints them.
        with pytest.warns(UserWarning, match=f"note: {video}: no media path given"):
            written = teacher.write_outputs(p if i % 2 else x, video, mine, export="fcpxml",
                                            fps="30000/1001", save_probs=True)
        assert [w.name for w in written] == [
            f"{video}.txt", f"{video}.segments.json", f"{video}.probs.npy", f"{video}.fcpxml"]
    assert output_files(mine) == output_files(out)


def test_write_outputs_refuses_bad_arguments(teacher, tmp_path):
    x = np.zeros((teacher.input_dim, 40), np.float32)
    p = teacher.predict(x)
    with pytest.raises(ValueError, match="`export` needs `fps`"):
        teacher.write_outputs(p, "v", tmp_path, export="srt")
    with pytest.raises(ValueError, match="`export`: "):
        teacher.write_outputs(p, "v", tmp_path, export="mp4", fps="25")
    with pytest.raises(ValueError, match="`video`: video name 'a/b' contains a path separator"):
        teacher.write_outputs(p, "a/b", tmp_path)
    with pytest.raises(ValueError, match="a Prediction or a 2-D array"):
        teacher.write_outputs("features.npy", "v", tmp_path)
    with pytest.raises(ValueError, match="`prediction`: expected a 2-D array"):
        teacher.write_outputs(np.zeros(5), "v", tmp_path)
    assert list(tmp_path.iterdir()) == []
    # Only the default files.
    assert [w.name for w in teacher.write_outputs(x, "v", tmp_path)] == ["v.txt", "v.segments.json"]
    # A video the format cannot hold (YouTube: 30 s at least) is not
    # exported, as on the command line, and not listed.
    with pytest.warns(UserWarning, match="warning: w: not exported as youtube"):
        written = teacher.write_outputs(p, "w", tmp_path, export="youtube", fps="25")
    assert [w.name for w in written] == ["w.txt", "w.segments.json"]
    assert sorted(f.name for f in tmp_path.iterdir()) == ["v.segments.json", "v.txt", "w.segments.json", "w.txt"]


@pytest.fixture(scope="module")
def stores(bench, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmdb")
    videos = sorted(p.stem for p in (bench / "features/exo").glob("*.npy"))
    for view in ("exo", "ego"):
        write_release_store(bench / "features" / view, root / view, videos)
    return root


def test_lmdb_store_reads_as_the_npy_files(bench, stores):
    listed = syncseg.list_videos(stores / "exo")
    assert len(listed) == len(list((bench / "features/exo").glob("*.npy")))
    for video, frames in list(listed.items())[:5]:
        x = syncseg.load_features(stores / "exo", video=video)
        assert np.array_equal(x, np.load(bench / "features/exo" / f"{video}.npy"))
        assert x.shape[1] == frames


def test_training_from_an_lmdb_store_equals_training_from_npy(bench, stores, tmp_path):
    common = dict(job_paths(bench), epochs=2, progress=False, **SMALL)
    from_npy = syncseg.train(**common, out=tmp_path / "npy")
    common["features"] = stores / "exo"
    from_lmdb = syncseg.train(**common, out=tmp_path / "lmdb")
    for video in bundle(bench, "exo_test")[:4]:
        x = syncseg.load_features(stores / "exo", video=video)
        assert np.array_equal(from_npy.predict(x).probs, from_lmdb.predict(x).probs)
    # Distillation reads both views from stores.
    student = syncseg.distill(
        teacher=from_lmdb.path, teacher_features=stores / "exo", student_features=stores / "ego",
        videos=bench / "splits/adapt.bundle", out=tmp_path / "student", epochs=1, progress=False,
    )
    assert student.input_dim == from_lmdb.input_dim


def test_the_command_line_trains_from_an_lmdb_store(bench, stores, tmp_path, cli):
    def run(features, out):
        p = job_paths(bench)
        subprocess.run(
            [cli, "train", "--features", str(features), "--labels", str(p["labels"]),
             "--mapping", str(p["mapping"]), "--videos", str(p["videos"]),
             "--val-videos", str(p["val_videos"]), "--out", str(out), "--epochs", "2",
             "--width-scale", "0.25", "--lr", "1e-3", "--background", "background"],
            check=True, capture_output=True, env=dict(os.environ, CI="true"),
        )
        return syncseg.Model.load(out)

    from_npy = run(bench / "features/exo", tmp_path / "npy")
    from_lmdb = run(stores / "exo", tmp_path / "lmdb")
    x = syncseg.load_features(stores / "exo", video=bundle(bench, "exo_test")[0])
    assert np.array_equal(from_npy.predict(x).probs, from_lmdb.predict(x).probs)


def test_broken_stores_are_refused_naming_the_key(tmp_path):
    env = lmdb.open(str(tmp_path / "s"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in (1, 2, 4):
            txn.put(f"gap_{i:010d}.jpg".encode(), np.ones(8, np.float32).tobytes())
        txn.put(b"short_0000000001.jpg", np.ones(8, np.float32).tobytes())
        txn.put(b"short_0000000002.jpg", np.ones(7, np.float32).tobytes())
    env.close()
    with pytest.raises(ValueError, match="video 'gap': frame 3 is missing"):
        syncseg.load_features(tmp_path / "s", video="gap")
    with pytest.raises(ValueError, match="key 'short_0000000002.jpg': a value of 28 bytes"):
        syncseg.load_features(tmp_path / "s", video="short")
    with pytest.raises(ValueError, match="no frames of video 'nope'"):
        syncseg.load_features(tmp_path / "s", video="nope")


def test_ctrl_c_during_training_leaves_a_resumable_run(bench, tmp_path):
    common = dict(job_paths(bench), epochs=3, progress=False, **SMALL)
    whole = syncseg.train(**common, out=tmp_path / "whole")

    def interrupt(event):
        # A real SIGINT, as Ctrl-C sends: Python's handler runs at the next
        # check between steps.
        if event["event"] == "step" and event["epoch"] == 2 and event["done"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "cut"
    # Python's own handler, as in an interactive session: a shell starts
    # background jobs (CI under nohup) with SIGINT ignored, and Python then
    # leaves it ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            syncseg.train(**dict(common, progress=interrupt), out=out)
    finally:
        signal.signal(signal.SIGINT, previous)
    progress = json.loads((out / "last/progress.json").read_text())
    assert progress["epochs_done"] == 1
    resumed = syncseg.train(**common, out=out, resume=True)
    x = syncseg.load_features(bench / "features/exo", video=bundle(bench, "exo_test")[0])
    assert np.array_equal(resumed.predict(x).probs, whole.predict(x).probs)


def test_a_raising_callback_stops_the_run_with_its_exception(bench, tmp_path):
    def fail(event):
        if event["event"] == "step":
            raise RuntimeError("from the callback")

    with pytest.raises(RuntimeError, match="from the callback"):
        syncseg.train(**job_paths(bench), out=tmp_path / "m", epochs=1, progress=fail, **SMALL)


def test_a_tqdm_bar_by_default(bench, tmp_path, capsys):
    syncseg.train(**job_paths(bench), out=tmp_path / "m", epochs=1, **SMALL)
    err = capsys.readouterr().err
    assert "train epoch 1" in err
