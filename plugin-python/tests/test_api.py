"""The functions one by one: arrays in and out, errors, metrics, exports."""

import ast
import importlib.util
import inspect
import json
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest

import syncseg
from conftest import REPO


def ego_video(bench, split="ego_test"):
    return (bench / "splits" / f"{split}.bundle").read_text().split()[0].removesuffix(".txt")


def test_stub_defaults_are_cores():
    """Every keyword default in the type stubs is core's (syncseg.defaults)."""
    stubs = ast.parse((REPO / "plugin-python/python/syncseg/__init__.pyi").read_text())
    checked = 0
    for fn in stubs.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name in ("train", "distill")):
            continue
        core = syncseg.defaults(fn.name)
        names = {a.arg: d for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults)}
        for name, value in core.items():
            assert name in names, f"{fn.name}: `{name}` missing from the stubs"
            stub = ast.literal_eval(names[name])
            if isinstance(value, list):
                value, stub = list(value), list(stub)
            assert stub == value, f"{fn.name}({name}=): stub {stub!r}, core {value!r}"
            checked += 1
    assert checked == len(syncseg.defaults("train")) + len(syncseg.defaults("distill"))


REQUIRED = "<required>"


def _stub_signature(fn):
    """(name, kind, default) of each parameter of a stub function."""
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults = [REQUIRED] * (len(positional) - len(args.defaults)) + [ast.literal_eval(d) for d in args.defaults]
    params = [(a.arg, "positional", d) for a, d in zip(positional, defaults)]
    params += [(a.arg, "keyword", REQUIRED if d is None else ast.literal_eval(d))
               for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    return [p for p in params if p[0] != "self"]


def _native_signature(obj):
    """As `_stub_signature`, from the native object's text signature (a
    default pyo3 cannot write, such as `Vec::new()`, reads `...`)."""
    kinds = {inspect.Parameter.KEYWORD_ONLY: "keyword"}
    return [
        (p.name, kinds.get(p.kind, "positional"), REQUIRED if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(obj).parameters.values()
        if p.name != "self"
    ]


def test_stub_signatures_are_the_native_ones():
    """Every native function and method in the stubs takes the arguments
    and defaults the stubs say (train and distill: the test above)."""
    stubs = ast.parse((REPO / "plugin-python/python/syncseg/__init__.pyi").read_text())
    functions = {fn.name: (syncseg, fn) for fn in stubs.body if isinstance(fn, ast.FunctionDef)}
    for cls in (c for c in stubs.body if isinstance(c, ast.ClassDef)):
        for fn in cls.body:
            if (isinstance(fn, ast.FunctionDef) and not fn.name.startswith("_")
                    and not any(getattr(d, "id", None) == "property" for d in fn.decorator_list)):
                functions[f"{cls.name}.{fn.name}"] = (getattr(syncseg, cls.name), fn)
    checked = 0
    for name, (owner, fn) in functions.items():
        if name in ("train", "distill"):
            continue
        native = _native_signature(getattr(owner, name.split(".")[-1]))
        stub = _stub_signature(fn)
        assert [p[:2] for p in native] == [p[:2] for p in stub], name
        for (arg, _, have), (_, _, want) in zip(native, stub):
            if have is not Ellipsis:
                assert have == want, f"{name}({arg}=): native {have!r}, stub {want!r}"
        checked += 1
    assert checked >= 10
    assert {n for n in functions if "." not in n} | {"Model", "Prediction", "Stream", "__version__"} == set(syncseg.__all__)


def test_importing_syncseg_does_not_import_ray():
    code = "import sys, syncseg; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_takes_any_dtype_order_and_layout(bench, teacher):
    dt = syncseg.load_features(bench / "features/exo", video=ego_video(bench, "exo_test"))
    assert dt.dtype == np.float32 and dt.ndim == 2 and dt.flags.c_contiguous
    assert dt.shape[0] == teacher.input_dim
    ref = teacher.predict(dt)
    T = dt.shape[1]
    assert ref.labels.dtype == np.int32 and ref.labels.shape == (T,)
    assert ref.probs.dtype == np.float32 and ref.probs.shape == (len(teacher.classes), T)
    assert len(ref) == T and ref.names[0] == teacher.classes[ref.labels[0]]
    np.testing.assert_allclose(ref.probs.sum(axis=0), 1.0, rtol=1e-5)
    variants = {
        "float64": dt.astype(np.float64),
        "fortran": np.asfortranarray(dt),
        "strided view": np.repeat(dt, 2, axis=1)[:, ::2],
        "list": dt.tolist(),
    }
    for what, x in variants.items():
        p = teacher.predict(x)
        assert np.array_equal(p.labels, ref.labels), what
        assert np.array_equal(p.probs, ref.probs), what
    td = teacher.predict(np.ascontiguousarray(dt.T), layout="td")
    assert np.array_equal(td.probs, ref.probs)
    # A [T, D] view of the same buffer.
    assert np.array_equal(teacher.predict(dt.T, layout="td").labels, ref.labels)


def test_segments_cover_the_video(bench, teacher):
    x = syncseg.load_features(bench / "features/exo", video=ego_video(bench, "exo_test"))
    pred = teacher.predict(x)
    segs = pred.segments
    assert segs[0]["start"] == 0 and segs[-1]["end"] == x.shape[1]
    for a, b in zip(segs, segs[1:]):
        assert a["end"] == b["start"] and a["label"] != b["label"]
    for s in segs:
        assert set(s) == {"label", "name", "start", "end", "confidence"}
        assert s["name"] == teacher.classes[s["label"]]
        assert np.all(pred.labels[s["start"]:s["end"]] == s["label"])
        assert 0.0 < s["confidence"] <= 1.0


def test_bad_arguments_are_value_errors_naming_them(bench, teacher):
    good = np.zeros((teacher.input_dim, 50), np.float32)
    cases = [
        (dict(features=good[0]), "`features`: expected a 2-D array"),
        (dict(features=good[None]), "`features`: expected a 2-D array"),
        (dict(features=np.zeros((teacher.input_dim, 0), np.float32)), "`features`: an empty array"),
        (dict(features=good, layout="tdd"), "`layout` 'tdd'"),
        (dict(features=good.T), "`features`: the model expects 64-dimensional features, got 50"),
        (dict(features=good, device="cuda"), "`device` 'cuda'"),
    ]
    bad = good.copy()
    bad[3, 7] = np.nan
    cases.append((dict(features=bad), "`features`"))
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=None) as e:
            teacher.predict(**kwargs)
        assert message in str(e.value), (kwargs.keys(), str(e.value))
    with pytest.raises(ValueError, match="train: unknown argument `epoch`"):
        syncseg.train(features=bench, labels=bench, mapping=bench, videos=bench, out=bench, epoch=3)
    with pytest.raises(ValueError, match="missing argument `mapping`"):
        syncseg.train(features=bench, labels=bench, videos=bench, out=bench)
    with pytest.raises(ValueError, match="`width_scale` 9: must be in"):
        syncseg.train(features=bench, labels=bench, mapping=bench / "mapping.txt",
                      videos=bench, out=bench / "x", width_scale=9.0)
    with pytest.raises(TypeError, match="`epochs`"):
        syncseg.train(features=bench, labels=bench, mapping=bench, videos=bench, out=bench,
                      epochs=object())


def test_files_are_os_errors_with_the_path(tmp_path):
    missing = tmp_path / "nothing.npy"
    with pytest.raises(FileNotFoundError, match="nothing.npy"):
        syncseg.load_features(missing)
    with pytest.raises(FileNotFoundError, match="nothing"):
        syncseg.Model.load(tmp_path / "nothing")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a npy file")
    with pytest.raises(ValueError, match="bad.npy"):
        syncseg.load_features(bad)
    with pytest.raises(ValueError, match="name the video with `video=`"):
        syncseg.load_features(tmp_path)


def test_load_features_layouts(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "v.npy", x)
    assert np.array_equal(syncseg.load_features(tmp_path / "v.npy"), x.astype(np.float32))
    assert np.array_equal(syncseg.load_features(tmp_path / "v.npy", layout="td"), x.T)
    assert np.array_equal(syncseg.load_features(tmp_path, video="v"), x)


def load_reference():
    path = REPO / "core/tests/data/msTCN_eval_reference.py"
    spec = importlib.util.spec_from_file_location("mstcn_eval", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_equals_mstcn_eval_py():
    """Random videos (names and ids, with and without background), scored
    by a transcription of MS-TCN's eval.py: exactly equal."""
    ref = load_reference()
    rng = random.Random(7)
    for case in range(60):
        n_labels = rng.randint(1, 6)
        videos = []
        for _ in range(rng.randint(1, 4)):
            gt = ref.random_labels(rng, n_labels, rng.randint(1, 8))
            videos.append((gt, ref.noisy(rng, gt, n_labels)))
        background = [0] if case % 3 else []
        drop = case % 4 == 1
        want, _ = ref.evaluate(videos, background, drop)
        names = [f"class {i}" for i in range(n_labels)]
        as_names = syncseg.evaluate(
            [[names[i] for i in g] for g, _ in videos],
            [[names[i] for i in p] for _, p in videos],
            background=[names[i] for i in background],
            drop_background_frames=drop,
        )
        as_ids = syncseg.evaluate(
            [np.array(g) for g, _ in videos],
            [np.array(p, dtype=np.int16) for _, p in videos],
            background=background,
            drop_background_frames=drop,
            mapping=names,
        )
        for got in (as_names, as_ids):
            assert got == want, (case, got, want)


def test_evaluate_refuses_mismatches():
    with pytest.raises(ValueError, match="`gt` has 1 videos but `pred` has 2"):
        syncseg.evaluate([["a"]], [["a"], ["b"]])
    with pytest.raises(ValueError, match="video 0: `gt` has 2 frames but `pred` has 1"):
        syncseg.evaluate([["a", "b"]], [["a"]])
    with pytest.raises(ValueError, match="label id 5 is not in `mapping`"):
        syncseg.evaluate([[0, 5]], [[0, 0]], mapping=["a", "b"])
    with pytest.raises(ValueError, match="`gt\\[0\\]`: a str"):
        syncseg.evaluate(["abc"], ["abc"])


def test_export_renders_every_format(bench, teacher):
    pred = teacher.predict(syncseg.load_features(bench / "features/exo", video=ego_video(bench, "exo_test")))
    srt = syncseg.export(pred, fps="30", format="srt", background=["background"])
    assert "-->" in srt
    otio = json.loads(syncseg.export(pred.segments, fps="30000/1001", title="t"))
    assert otio["OTIO_SCHEMA"].startswith("Timeline")
    for fmt in ("edl", "fcpxml", "vtt", "ffmetadata", "csv", "json"):
        assert syncseg.export(pred, format=fmt, fps="25", media="v.mp4")
    # YouTube wants chapters of 10 s or more: at 1 fps the video lasts minutes.
    assert syncseg.export(pred, format="youtube", fps="1").startswith("0:00")
    with pytest.raises(ValueError, match="`format`: unknown export format 'mp4'"):
        syncseg.export(pred, format="mp4")
    with pytest.raises(ValueError, match="`segments`\\[0\\]: no 'start'"):
        syncseg.export([{"label": 0, "name": "a", "end": 3}])


def test_model_save_load_and_bundle(teacher, tmp_path):
    teacher.save(tmp_path / "m.syncseg")
    teacher.save(tmp_path / "dir")
    x = np.random.default_rng(0).standard_normal((teacher.input_dim, 40)).astype(np.float32)
    want = teacher.predict(x).probs
    for path in (tmp_path / "m.syncseg", tmp_path / "dir"):
        m = syncseg.Model.load(path)
        assert m.path == pathlib.Path(path) and m.classes == teacher.classes
        assert np.array_equal(m.predict(x).probs, want)


def test_defaults_refuse_unknown_jobs():
    assert syncseg.defaults("train")["epochs"] == 30
    assert syncseg.defaults("distill")["loss"] == "sync-mse"
    with pytest.raises(ValueError, match="`job` 'fit'"):
        syncseg.defaults("fit")


def test_a_causal_model_streams_offline_predictions_labels(bench, teacher, tmp_path):
    """A causal MS-TCN++ (``causal_lookahead``) streamed a frame at a time,
    then in blocks, labels every frame as ``predict`` does; an offline model
    and bad frames are refused with a message."""
    from conftest import job_paths, SMALL

    model = syncseg.train(**job_paths(bench), out=tmp_path / "causal", epochs=1, progress=False,
                          backbone="ms-tcn", causal_lookahead=3, **SMALL)
    x = syncseg.load_features(bench / "features/ego", video=ego_video(bench))
    want = model.predict(x)
    for block in (1, 7):
        s = model.stream()
        assert (s.lookahead, s.input_dim) == (3, model.input_dim)
        got = []
        for t in range(0, x.shape[1], block):
            got += s.push(x[:, t:t + block].T if block > 1 else x[:, t].astype(np.float64))
        got += s.finish()
        assert [f for f, _, _ in got] == list(range(x.shape[1]))
        assert np.array_equal(np.array([l for _, l, _ in got]), want.labels)
        conf = np.array([c for _, _, c in got], dtype=np.float32)
        assert np.array_equal(conf, want.probs[want.labels, np.arange(x.shape[1])])
    with pytest.raises(ValueError, match="causal MS-TCN"):
        teacher.stream()
    s = model.stream()
    with pytest.raises(ValueError, match=rf"expected \[{model.input_dim}\] or \[n, {model.input_dim}\]"):
        s.push(np.zeros((2, 5), np.float32))
    bad = np.zeros(model.input_dim, np.float32)
    bad[3] = np.inf
    with pytest.raises(ValueError, match="feature 3 of frame 0 is not finite"):
        s.push(bad)
    s.finish()
    with pytest.raises(ValueError, match="finished"):
        s.push(np.zeros(model.input_dim, np.float32))
