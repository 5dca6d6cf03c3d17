"""Type stubs of syncseg. The job functions' defaults are core's: the test
suite checks them against ``syncseg.defaults(job)``."""

import os
import pathlib
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[Callable[[Dict[str, Any]], None], bool, None]
Labels = Union[Sequence[str], npt.ArrayLike]
Layout = Literal["dt", "td"]
ExportFormat = Literal["otio", "edl", "fcpxml", "vtt", "ffmetadata", "srt", "youtube", "csv", "json"]

class Prediction:
    """The segmentation of one video."""

    @property
    def labels(self) -> npt.NDArray[np.int32]:
        """Label id per frame, ``[T]``."""
    @property
    def probs(self) -> npt.NDArray[np.float32]:
        """Ensemble probabilities, ``[K, T]``."""
    @property
    def names(self) -> List[str]:
        """Class name per frame."""
    @property
    def segments(self) -> List[Dict[str, Any]]:
        """Maximal runs of one label: ``label``, ``name``, ``start``,
        ``end`` (exclusive) and ``confidence`` (mean probability)."""
    def __len__(self) -> int: ...

class Model:
    """A segmentation model (C2F-TCN or MS-TCN++, with its feature adapter
    when distilled at the feature level), on the CPU."""

    @staticmethod
    def load(path: PathLike) -> "Model":
        """Loads a model directory or a ``.syncseg`` bundle."""
    @staticmethod
    def import_pth(
        pth: PathLike, *, mapping: Optional[PathLike] = None, window_frames: int = 600
    ) -> "Model":
        """Imports a reference PyTorch C2F-TCN state dict (``torch.save``);
        ``mapping`` names the classes (mapping.txt or mapping.csv)."""
    def save(self, path: PathLike) -> None:
        """Writes a model directory, or one file when ``path`` ends in
        ``.syncseg``."""
    @property
    def classes(self) -> List[str]: ...
    @property
    def input_dim(self) -> int: ...
    @property
    def backbone(self) -> Literal["c2f-tcn", "ms-tcn"]: ...
    @property
    def path(self) -> Optional[pathlib.Path]: ...
    def predict(
        self, features: npt.ArrayLike, *, layout: Layout = "dt", device: Literal["cpu"] = "cpu"
    ) -> Prediction:
        """Segments one video: ``features`` ``[D, T]`` (``"dt"``) or
        ``[T, D]`` (``"td"``), any float dtype and memory order."""
    def stream(self) -> "Stream":
        """A live segmentation of one video (``syncseg predict --stream``);
        the model must be causal (trained with ``causal_lookahead``)."""
    def write_outputs(
        self,
        prediction: Union[Prediction, npt.ArrayLike],
        video: str,
        out: PathLike,
        *,
        export: Optional[ExportFormat] = None,
        fps: Optional[str] = None,
        save_probs: bool = False,
        layout: Layout = "dt",
    ) -> List[pathlib.Path]:
        """Writes into ``out`` the files ``syncseg predict`` writes for one
        video, byte for byte: ``<video>.txt``, ``<video>.segments.json``,
        with ``save_probs`` ``<video>.probs.npy``, with ``export`` and
        ``fps`` ``<video>.<ext>``. ``prediction`` is a ``Prediction`` of
        this model or features to segment first. Returns the paths
        written; the export's notes are ``UserWarning``s."""

class Stream:
    """A live segmentation of one video by a causal model: push frames as
    they come; each frame's label comes ``lookahead`` frames later, equal
    to offline prediction's."""

    def push(self, frames: npt.ArrayLike) -> List[Tuple[int, int, float]]:
        """Pushes one frame ``[D]`` or frames ``[n, D]``; returns
        ``(frame, label, confidence)`` of every frame now labelled."""
    def finish(self) -> List[Tuple[int, int, float]]:
        """Ends the stream: the labels of its last ``lookahead`` frames."""
    @property
    def lookahead(self) -> int: ...
    @property
    def input_dim(self) -> int: ...
    @property
    def frames_pushed(self) -> int: ...

def train(
    *,
    features: PathLike,
    labels: PathLike,
    mapping: PathLike,
    videos: PathLike,
    out: PathLike,
    val_videos: Optional[PathLike] = None,
    epochs: int = 30,
    lr: float = 0.0005,
    weight_decay: float = 0.0001,
    batch_size: int = 4,
    seed: int = 0,
    background: Sequence[str] = (),
    max_frames: int = 600,
    smoothing: float = 0.15,
    patience: Optional[int] = None,
    time_major: bool = False,
    backbone: Literal["c2f-tcn", "ms-tcn"] = "c2f-tcn",
    width_scale: float = 1.0,
    causal_lookahead: Optional[int] = None,
    resume: bool = False,
    log_json: Optional[PathLike] = None,
    device: Literal["cpu"] = "cpu",
    progress: Progress = None,
) -> Model:
    """Trains a segmentation network with labels (``syncseg train``):
    ``features`` is a folder of ``<video>.npy`` or an LMDB store, ``labels``
    a folder of ``<video>.txt``, ``videos``/``val_videos`` split bundles.
    Returns the selected epoch's model, saved in ``out``. Ctrl-C stops it
    between steps; ``resume=True`` continues from the last finished epoch."""

def distill(
    *,
    teacher: PathLike,
    videos: PathLike,
    out: PathLike,
    teacher_features: Optional[PathLike] = None,
    student_features: Optional[PathLike] = None,
    dataset: Optional[PathLike] = None,
    teacher_view: Optional[str] = None,
    student_view: Optional[str] = None,
    val_videos: Optional[PathLike] = None,
    procedures: Optional[PathLike] = None,
    task_videos: Optional[PathLike] = None,
    task_val_videos: Optional[PathLike] = None,
    task_labels: Optional[PathLike] = None,
    level: Literal["tas", "feature", "both"] = "tas",
    levels: Optional[Sequence[int]] = None,
    pairing: Literal["synchronized", "random", "same-procedure"] = "synchronized",
    drop_rate: float = 0.0,
    pairs_fraction: float = 1.0,
    loss: Literal["sync-mse", "mmd", "coral", "grl", "tcc", "sdtw"] = "sync-mse",
    loss_weight: float = 1.0,
    sdtw_gamma: float = 1.0,
    tcc_temperature: float = 0.1,
    epochs: int = 30,
    lr: float = 0.0001,
    weight_decay: float = 0.0001,
    batch_size: int = 4,
    seed: int = 0,
    time_major: bool = False,
    adapter_layers: int = 2,
    adapter_heads: int = 4,
    adapter_width: int = 64,
    adapter_ffn: int = 128,
    adapter_epochs: Optional[int] = None,
    adapter_lr: float = 0.001,
    causal_lookahead: Optional[int] = None,
    resume: bool = False,
    log_json: Optional[PathLike] = None,
    device: Literal["cpu"] = "cpu",
    progress: Progress = None,
) -> Model:
    """Distills ``teacher`` to the student view from unlabeled synchronized
    pairs (``syncseg distill``): ``teacher_features`` and
    ``student_features`` are folders of ``<video>.npy`` or LMDB stores whose
    frame t shows the same instant. Returns the student, saved in ``out``."""

def output_paths(
    out: PathLike,
    video: str,
    *,
    export: Optional[ExportFormat] = None,
    fps: Optional[str] = None,
    save_probs: bool = False,
) -> List[pathlib.Path]:
    """The files ``syncseg predict`` (and ``Model.write_outputs``) writes
    for ``video`` under ``out`` with these options; a video whose files
    all exist is finished (reruns skip it)."""

def pair_loss(
    teacher: Model,
    student: Model,
    *,
    teacher_features: PathLike,
    student_features: PathLike,
    videos: PathLike,
    levels: Optional[Sequence[int]] = None,
    time_major: bool = False,
) -> float:
    """The label-free held-out pair loss of ``student``: the MSE between
    its heads on the student view and ``teacher``'s on the synchronized
    teacher view, summed over ``levels`` (default every head), averaged
    over the windows of ``videos`` (a split bundle). With distill's
    ``levels`` and ``val_videos`` it is the loss that run selected its
    epoch on. No labels are read."""

def defaults(job: Literal["train", "distill", "predict"]) -> Dict[str, Any]:
    """The default options of a job, as core defines them."""

def evaluate(
    gt: Sequence[Labels],
    pred: Sequence[Labels],
    *,
    background: Sequence[Union[str, int]] = (),
    drop_background_frames: bool = False,
    mapping: Optional[Union[PathLike, Sequence[str]]] = None,
) -> Dict[str, float]:
    """MS-TCN's eval.py over per-video label sequences (names, or integer
    ids named by ``mapping``): ``edit``, ``f1_10``, ``f1_25``, ``f1_50``,
    ``mof`` (all ·100) and ``videos``."""

def load_features(
    path: PathLike, *, layout: Layout = "dt", video: Optional[str] = None
) -> npt.NDArray[np.float32]:
    """A ``.npy`` file (laid out as ``layout``), or video ``video`` of a
    folder of ``<video>.npy`` or of an LMDB store, as float32 ``[D, T]``."""

def list_videos(store: PathLike) -> Dict[str, int]:
    """The videos of an LMDB feature store and their frame counts."""

def synth(
    *, out: PathLike, preset: Literal["small", "paper"] = "small", seed: int = 0, dim: Optional[int] = None
) -> pathlib.Path:
    """Writes the synthetic synchronized exo/ego benchmark into ``out``."""

def export(
    segments: Union[Prediction, Sequence[Dict[str, Any]]],
    *,
    fps: str = "30000/1001",
    format: ExportFormat = "otio",
    title: str = "",
    video_frames: Optional[int] = None,
    background: Sequence[str] = (),
    media: Optional[str] = None,
    drop_frame: bool = False,
) -> str:
    """Renders segments as an editor file and returns its text."""
