"""Shared fixtures: the small synthetic benchmark and a teacher trained on it."""

import os
import pathlib
import shutil

import lmdb
import numpy as np
import pytest

import syncseg

REPO = pathlib.Path(__file__).resolve().parents[2]


def job_paths(data, view="exo"):
    """The arguments of a training run on `view` of the benchmark at `data`."""
    return dict(
        features=data / "features" / view,
        labels=data / "groundTruth",
        mapping=data / "mapping.txt",
        videos=data / "splits" / f"{view}_train.bundle",
        val_videos=data / "splits" / f"{view}_val.bundle",
    )


# The small benchmark's budget (core's study::Budget for Preset::Small),
# with fewer epochs: the tests check equality and plumbing, not accuracy.
SMALL = dict(width_scale=0.25, lr=1e-3, background=["background"])


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    return syncseg.synth(out=tmp_path_factory.mktemp("bench") / "data", preset="small", seed=0)


@pytest.fixture(scope="session")
def teacher(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "model"
    return syncseg.train(**job_paths(bench), out=out, epochs=2, progress=False, **SMALL)


@pytest.fixture(scope="session")
def cli():
    """The `syncseg` command line of this checkout (built by `cargo test`
    or `cargo build`); required in CI, skipped elsewhere when not built."""
    exe = os.environ.get("SYNCSEG_CLI")
    if exe is None:
        for profile in ("debug", "release"):
            candidate = REPO / "target" / profile / "syncseg"
            if candidate.is_file():
                exe = str(candidate)
                break
    if exe is None:
        exe = shutil.which("syncseg")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no syncseg binary: build it with `cargo build -p syncseg-native`")
        pytest.skip("no syncseg binary built (cargo build -p syncseg-native)")
    return exe


def write_release_store(npy_dir, store, videos):
    """An LMDB store as the sync paper's release writes it: one
    environment, key `<video>_{i+1:010d}.jpg`, value frame i's float32."""
    env = lmdb.open(str(store), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for video in videos:
            x = np.load(npy_dir / f"{video}.npy")  # [D, T]
            for i, frame in enumerate(np.ascontiguousarray(x.T, dtype=np.float32)):
                txn.put(f"{video}_{i + 1:010d}.jpg".encode(), frame.tobytes())
    env.close()


def output_files(folder):
    """{relative path: bytes} of what a prediction run wrote into `folder`,
    less the command line's run records (`shards/`)."""
    folder = pathlib.Path(folder)
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).parts[0] != "shards"
    }
