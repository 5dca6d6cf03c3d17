"""syncseg: temporal action segmentation that transfers from fixed (exo)
cameras to head-mounted (ego) ones without ego labels, by distillation from
unlabeled time-synchronized exo/ego pairs (Quattrocchi et al., ECCV 2024).

The functions mirror the ``syncseg`` command line: keyword arguments are its
flags with underscores and have the same defaults (``syncseg.defaults(job)``).
Features are NumPy arrays ``[D, T]`` (or ``[T, D]`` with ``layout="td"``),
folders of ``<video>.npy``, or LMDB stores as the paper's release writes
them. Errors are ``ValueError`` (bad input) and ``OSError`` (files) with the
command line's one-line messages. ``syncseg.ray`` (imported on its own,
with Ray installed) runs prediction and distillation sweeps on a Ray
cluster.
"""

from typing import Any, Callable, Dict, Optional, Union

from . import _syncseg
from ._syncseg import (
    Model,
    Prediction,
    Stream,
    __version__,
    defaults,
    evaluate,
    export,
    list_videos,
    load_features,
    output_paths,
    pair_loss,
    synth,
)

__all__ = [
    "Model",
    "Prediction",
    "Stream",
    "__version__",
    "defaults",
    "distill",
    "evaluate",
    "export",
    "list_videos",
    "load_features",
    "output_paths",
    "pair_loss",
    "synth",
    "train",
]

Progress = Union[Callable[[Dict[str, Any]], None], bool, None]


class _Bars:
    """A tqdm bar over each epoch's steps, for the events of a job."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar: Any = None
        self._stage = "train"

    def __call__(self, event: Dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "stage":
            self._close()
            self._stage = event["stage"]
        elif kind == "step":
            if self._bar is None or event["done"] == 1:
                self._close()
                self._bar = self._tqdm(
                    total=event["total"],
                    desc=f"{self._stage} epoch {event['epoch']}",
                    unit="step",
                    leave=False,
                )
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{event['loss']:.4f}", refresh=False)
        elif kind == "epoch":
            self._close()
            record = event["record"]
            val = record.get("val")
            score = f", val {val['score']:.4f}" if val else ""
            best = " (best)" if record.get("best") else ""
            self._tqdm.write(
                f"{self._stage} epoch {record['epoch']}/{event['epochs']}: "
                f"loss {record['train_loss']:.4f}{score}{best}"
            )
        elif kind == "note":
            self._tqdm.write(event["text"])
        elif kind == "stage_finished":
            self._close()

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress(progress: Progress) -> Optional[Callable[[Dict[str, Any]], None]]:
    """The callback for ``progress``: the caller's, a tqdm bar (``None``
    when tqdm is installed, or ``True``), or nothing (``False``)."""
    if callable(progress):
        return progress
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress is True:
            raise ImportError("progress=True needs tqdm: pip install tqdm") from None
        return None
    return _Bars(tqdm)


def train(*, progress: Progress = None, **kwargs: Any) -> Model:
    """Trains a segmentation network (C2F-TCN or MS-TCN++) with labels and
    returns the selected epoch's model; see ``syncseg train --help``."""
    return _syncseg.train(progress=_progress(progress), **kwargs)


def distill(*, progress: Progress = None, **kwargs: Any) -> Model:
    """Distills a teacher to another view from unlabeled synchronized pairs
    and returns the student; see ``syncseg distill --help``."""
    return _syncseg.distill(progress=_progress(progress), **kwargs)
