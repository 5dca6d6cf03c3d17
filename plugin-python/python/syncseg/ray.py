"""syncseg on a Ray cluster (``pip install "ray[data,tune]"``; ``import
syncseg`` itself never imports ray).

- :func:`segment`: a Ray Data pipeline that segments many videos, one
  loaded model per actor (:class:`Segmenter`), and writes for each video
  exactly the files ``syncseg predict`` writes (``Model.write_outputs``).
- :func:`distill_sweep`: a Ray Tune sweep of distillation's
  hyperparameters (``lr``, ``levels``, ``epochs`` and any other argument of
  ``syncseg.distill``), each trial scored by :func:`syncseg.pair_loss`, the
  label-free loss on held-out synchronized pairs; the best trial is the one
  with the lowest. No labels are read.

Both run on whatever cluster ``ray.init()`` joined (a local one if none).
"""

import io
import os
import pathlib
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

import syncseg

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Segmenter", "segment", "distill_trial", "distill_sweep"]


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('syncseg.ray needs Ray: pip install "ray[data,tune]"') from None
    return ray


def _model_path(model: Union["syncseg.Model", PathLike]) -> str:
    """A model directory or bundle every actor can load."""
    if isinstance(model, syncseg.Model):
        if model.path is None:
            raise ValueError("`model`: not saved (Model.save it first): actors load it from a path")
        model = model.path
    return str(pathlib.Path(model).resolve())


class Segmenter:
    """A callable class for ``Dataset.map_batches``: each actor loads the
    model once, then segments batches of videos and writes their files into
    ``out``, as ``syncseg predict --out OUT [--export … --fps …]
    [--save-probs]`` does.

    A batch holds either ``bytes`` and ``path`` (``.npy`` files, from
    ``ray.data.read_binary_files(…, include_paths=True)``; the video is the
    file's stem) or ``video`` (names, read from the store ``features``).
    The rows out: ``video``, ``frames``, ``segments`` (how many) and
    ``paths`` (the files written).
    """

    def __init__(
        self,
        model: PathLike,
        out: PathLike,
        *,
        export: Optional[str] = None,
        fps: Optional[str] = None,
        save_probs: bool = False,
        layout: str = "dt",
        features: Optional[PathLike] = None,
    ) -> None:
        self.model = syncseg.Model.load(model)
        self.out = pathlib.Path(out)
        self.options = dict(export=export, fps=fps, save_probs=save_probs)
        self.layout = layout
        self.features = features

    def _videos(self, batch: Dict[str, np.ndarray]) -> Iterable[Any]:
        """(video, features) of each row of `batch`."""
        if "bytes" in batch:
            for data, path in zip(batch["bytes"], batch["path"]):
                name = pathlib.PurePath(str(path)).name
                if not name.endswith(".npy"):
                    raise ValueError(f"{path}: not a .npy file")
                yield name[: -len(".npy")], np.load(io.BytesIO(data), allow_pickle=False)
        else:
            if self.features is None:
                raise ValueError("a batch of `video` names needs `features` (the store to read them from)")
            for video in batch["video"]:
                video = str(video)
                yield video, syncseg.load_features(self.features, video=video)

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        rows: Dict[str, List[Any]] = {"video": [], "frames": [], "segments": [], "paths": []}
        for video, x in self._videos(batch):
            pred = self.model.predict(x, layout=self.layout)
            paths = self.model.write_outputs(pred, video, self.out, **self.options)
            rows["video"].append(video)
            rows["frames"].append(len(pred))
            rows["segments"].append(len(pred.segments))
            rows["paths"].append([str(p) for p in paths])
        paths = np.empty(len(rows["paths"]), dtype=object)
        paths[:] = rows["paths"]
        return {
            "video": np.array(rows["video"], dtype=object),
            "frames": np.array(rows["frames"], dtype=np.int64),
            "segments": np.array(rows["segments"], dtype=np.int64),
            "paths": paths,
        }


def _names(videos: Union[PathLike, Sequence[str]]) -> List[str]:
    """A split bundle's videos (`<video>.txt` per line), or a list of names."""
    if isinstance(videos, (str, os.PathLike)):
        lines = pathlib.Path(videos).read_text().split()
        return [line[: -len(".txt")] if line.endswith(".txt") else line for line in lines]
    return [str(v) for v in videos]


def segment(
    model: Union["syncseg.Model", PathLike],
    features: Union[PathLike, Sequence[PathLike]],
    out: PathLike,
    *,
    videos: Optional[Union[PathLike, Sequence[str]]] = None,
    concurrency: int = 2,
    batch_size: int = 4,
    num_cpus: float = 1,
    export: Optional[str] = None,
    fps: Optional[str] = None,
    save_probs: bool = False,
    layout: str = "dt",
    overwrite: bool = False,
) -> List[Dict[str, Any]]:
    """Segments videos on the Ray cluster and writes into ``out`` the files
    ``syncseg predict`` writes (byte for byte): ``<video>.txt``,
    ``<video>.segments.json``, with ``save_probs`` ``<video>.probs.npy``,
    with ``export`` and ``fps`` ``<video>.<ext>``.

    ``features``: a folder of ``<video>.npy`` (every one, or those of
    ``videos``: a split bundle or a list of names), a list of ``.npy``
    paths, or an LMDB store (then ``videos`` defaults to all of its
    videos). ``.npy`` files are read by ``ray.data.read_binary_files``;
    ``concurrency`` actors each hold one loaded model and take
    ``num_cpus`` CPUs (and compute on as many threads). A video whose files
    all exist in ``out`` is kept, not recomputed (``overwrite`` redoes it),
    as ``syncseg predict`` does on a rerun. Returns one dict per video
    (``video``, ``frames``, ``segments``, ``paths``, ``kept``; ``frames``
    and ``segments`` are ``None`` for a kept video), in the order of the
    videos given.
    """
    ray = _ray()
    out = pathlib.Path(out).resolve()
    kwargs = dict(
        model=_model_path(model), out=str(out), export=export, fps=fps,
        save_probs=save_probs, layout=layout,
    )
    store = None
    if isinstance(features, (str, os.PathLike)):
        root = pathlib.Path(features)
        if (root / "data.mdb").is_file():
            store = root.resolve()
            names = _names(videos) if videos is not None else list(syncseg.list_videos(store))
        elif root.is_dir():
            if videos is not None:
                paths = [root / f"{v}.npy" for v in _names(videos)]
            else:
                paths = sorted(root.glob("*.npy"))
        else:
            paths = [root]
    else:
        if videos is not None:
            raise ValueError("`videos`: only with a folder or store of `features`, not a list of files")
        paths = [pathlib.Path(p) for p in features]
    if store is None:
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file")
        paths = [p.resolve() for p in paths]
        for p in paths:
            if not p.name.endswith(".npy"):
                raise ValueError(f"{p}: not a .npy file (a folder of them, a list of them, or an LMDB store)")
        names = [p.name[: -len(".npy")] for p in paths]
    if not names:
        raise ValueError("`features`: no videos to segment")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"video '{name}' is given twice: its files in `out` would collide")
        seen.add(name)
    out.mkdir(parents=True, exist_ok=True)
    order = {name: i for i, name in enumerate(names)}
    # Finished videos (every file there) are kept, as the CLI's reruns do.
    expected = {
        n: syncseg.output_paths(out, n, export=export, fps=fps, save_probs=save_probs) for n in names
    }
    kept = [] if overwrite else [n for n in names if all(p.is_file() for p in expected[n])]
    if kept:
        done = set(kept)
        if store is None:
            paths = [p for p, n in zip(paths, names) if n not in done]
        names = [n for n in names if n not in done]
    rows: List[Dict[str, Any]] = [
        dict(video=n, frames=None, segments=None, paths=[str(p) for p in expected[n]], kept=True)
        for n in kept
    ]
    if not names:
        return rows
    if store is None:
        # Reading is I/O: the read tasks take no CPU of the actors' (with
        # one each, actors as many as the CPUs leave the reads waiting
        # forever), and as many run at once as there are actors (unbounded,
        # forty started a worker process each: 61 videos on 2 cores took
        # 65 s instead of 15).
        ds = ray.data.read_binary_files(
            [str(p) for p in paths], include_paths=True, num_cpus=0, concurrency=concurrency,
        )
    else:
        ds = ray.data.from_items([{"video": v} for v in names])
        kwargs["features"] = str(store)
    computed = ds.map_batches(
        Segmenter,
        fn_constructor_kwargs=kwargs,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        batch_size=batch_size,
        num_cpus=num_cpus,
        # The model's threads (candle's rayon pool) as many as the actor's
        # CPUs: by default each actor would start one a core, and actors
        # sharing a node would slow each other (61 videos on 2 cores, 2
        # actors: 14.7 s, with this 11.5 s).
        runtime_env={"env_vars": {"RAYON_NUM_THREADS": str(max(1, int(num_cpus)))}},
    ).take_all()
    rows += [
        dict(video=str(r["video"]), frames=int(r["frames"]), segments=int(r["segments"]),
             paths=[str(p) for p in r["paths"]], kept=False)
        for r in computed
    ]
    rows.sort(key=lambda r: order[r["video"]])
    return rows


def distill_trial(config: Dict[str, Any]) -> None:
    """A Ray Tune function trainable: one ``syncseg.distill`` run with the
    arguments in ``config`` (its ``out`` is a folder, the student goes in
    ``out/<trial id>``), then ``tune.report`` of the student's held-out pair
    loss over ``metric_levels`` (``pair_loss``; default every head), the
    loss its own run selected its epoch on (``val_distill_loss``, over its
    own ``levels``; comparable across trials only when they distil the
    same levels) and the ``student`` path. ``config`` needs
    ``val_videos``: the held-out pairs both losses are measured on."""
    from ray import tune

    config = dict(config)
    metric_levels = config.pop("metric_levels", None)
    root = pathlib.Path(config.pop("out"))
    student_dir = root / tune.get_context().get_trial_id()
    finished: List[Dict[str, Any]] = []

    def progress(event: Dict[str, Any]) -> None:
        if event["event"] == "stage_finished":
            finished.append(event["report"])

    student = syncseg.distill(**config, out=student_dir, progress=progress)
    teacher = syncseg.Model.load(config["teacher"])
    loss = syncseg.pair_loss(
        teacher, student,
        teacher_features=config["teacher_features"], student_features=config["student_features"],
        videos=config["val_videos"], levels=metric_levels, time_major=config.get("time_major", False),
    )
    # The distill stage's selected epoch and its score (minus its loss).
    stage = next((r for r in finished if r["stage"] == "distill"), None)
    own = -stage["best"][0] if stage and stage["validated"] and stage["best"] else None
    tune.report({
        "pair_loss": loss,
        "val_distill_loss": own,
        "selected_epoch": stage["best"][1] if stage and stage["best"] else None,
        "student": str(student_dir),
    })


def distill_sweep(
    *,
    teacher: PathLike,
    teacher_features: PathLike,
    student_features: PathLike,
    videos: PathLike,
    val_videos: PathLike,
    out: PathLike,
    lr: Sequence[float] = (1e-4,),
    levels: Sequence[Optional[Sequence[int]]] = (None,),
    epochs: Sequence[int] = (30,),
    metric_levels: Optional[Sequence[int]] = None,
    cpus_per_trial: float = 1,
    max_concurrent_trials: Optional[int] = None,
    **distill_kwargs: Any,
) -> Any:
    """A Ray Tune grid over ``lr`` × ``levels`` × ``epochs`` (each a list of
    values; ``None`` in ``levels`` is every head), one ``syncseg.distill``
    per trial (:func:`distill_trial`) with ``distill_kwargs`` in common.
    Trials are scored by the label-free held-out pair loss over
    ``metric_levels`` (default every head, whatever levels a trial
    distilled: the sum over fewer heads would be smaller by construction,
    not better) and the best is the lowest. Students go in
    ``out/<trial id>``, Tune's records in ``out/tune``.

    Returns Tune's ``ResultGrid``, set to ``pair_loss`` and ``"min"``:
    ``grid.get_best_result().metrics["student"]`` is the chosen student.
    """
    _ray()
    from ray import tune

    if "progress" in distill_kwargs:
        raise ValueError("`progress`: the trials report to Tune (see its results), not to a callback")

    out = pathlib.Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    absolute = lambda p: str(pathlib.Path(p).resolve())  # noqa: E731 (trials run elsewhere)
    for key in ("dataset", "procedures", "task_videos", "task_val_videos", "task_labels", "log_json"):
        if distill_kwargs.get(key) is not None:
            distill_kwargs[key] = absolute(distill_kwargs[key])
    param_space = dict(
        distill_kwargs,
        teacher=absolute(teacher),
        teacher_features=absolute(teacher_features),
        student_features=absolute(student_features),
        videos=absolute(videos),
        val_videos=absolute(val_videos),
        out=str(out),
        metric_levels=None if metric_levels is None else list(metric_levels),
        lr=tune.grid_search(list(lr)),
        levels=tune.grid_search([None if lv is None else list(lv) for lv in levels]),
        epochs=tune.grid_search(list(epochs)),
    )
    tuner = tune.Tuner(
        tune.with_resources(distill_trial, {"cpu": cpus_per_trial}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="pair_loss", mode="min",
            max_concurrent_trials=max_concurrent_trials,
        ),
        run_config=tune.RunConfig(storage_path=str(out), name="tune", verbose=0),
    )
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(grid)} trials failed; the first: {errors[0]}")
    return grid
