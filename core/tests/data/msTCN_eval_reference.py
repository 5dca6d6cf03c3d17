#!/usr/bin/env python3
"""Independent reference for syncseg's metrics: MS-TCN's eval.py, transcribed.

Written for syncseg from the definitions of `yabufarha/ms-tcn` eval.py (see
core/src/metrics.rs and shared/reference/tas-reference.md section 4), kept as
close to eval.py's structure and numpy operations as possible so that the
values agree to the last bit, not merely to rounding. Lines marked
"syncseg rule" are the documented edge cases where eval.py raises or yields
NaN; everything else is eval.py's logic on integer label ids instead of names.

Run `python3 core/tests/data/msTCN_eval_reference.py` (needs numpy) to
regenerate core/tests/data/metrics_cases.json, which the Rust test
`metrics::tests::agrees_with_python_reference` reads. The cases are
deterministic (seeded).
"""

import json
import os
import random

import numpy as np

OVERLAPS = [.1, .25, .5]


def get_labels_start_end_time(frame_wise_labels, bg_class):
    labels = []
    starts = []
    ends = []
    if len(frame_wise_labels) == 0:  # syncseg rule: eval.py raises IndexError
        return labels, starts, ends
    last_label = frame_wise_labels[0]
    if frame_wise_labels[0] not in bg_class:
        labels.append(frame_wise_labels[0])
        starts.append(0)
    for i in range(len(frame_wise_labels)):
        if frame_wise_labels[i] != last_label:
            if frame_wise_labels[i] not in bg_class:
                labels.append(frame_wise_labels[i])
                starts.append(i)
            if last_label not in bg_class:
                ends.append(i)
            last_label = frame_wise_labels[i]
    if last_label not in bg_class:
        ends.append(i + 1)
    return labels, starts, ends


def levenstein(p, y, norm=False):
    m_row = len(p)
    n_col = len(y)
    D = np.zeros([m_row + 1, n_col + 1], np.float64)
    for i in range(m_row + 1):
        D[i, 0] = i
    for i in range(n_col + 1):
        D[0, i] = i
    for j in range(1, n_col + 1):
        for i in range(1, m_row + 1):
            if y[j - 1] == p[i - 1]:
                D[i, j] = D[i - 1, j - 1]
            else:
                D[i, j] = min(D[i - 1, j] + 1, D[i, j - 1] + 1, D[i - 1, j - 1] + 1)
    if norm:
        if max(m_row, n_col) == 0:  # syncseg rule: eval.py gives 0/0 = NaN
            return 100.0
        score = (1 - D[-1, -1] / max(m_row, n_col)) * 100
    else:
        score = D[-1, -1]
    return score


def edit_score(recognized, ground_truth, bg_class, norm=True):
    P, _, _ = get_labels_start_end_time(recognized, bg_class)
    Y, _, _ = get_labels_start_end_time(ground_truth, bg_class)
    return levenstein(P, Y, norm)


def f_score(recognized, ground_truth, overlap, bg_class, last_max=False):
    # last_max=True is NOT eval.py: it takes the last maximum on IoU ties and
    # is used only to pick fixture cases whose result depends on the tie rule.
    p_label, p_start, p_end = get_labels_start_end_time(recognized, bg_class)
    y_label, y_start, y_end = get_labels_start_end_time(ground_truth, bg_class)

    tp = 0
    fp = 0
    hits = np.zeros(len(y_label))

    if len(y_label) == 0:  # syncseg rule: eval.py's argmax of [] raises
        return 0.0, float(len(p_label)), 0.0

    for j in range(len(p_label)):
        intersection = np.minimum(p_end[j], y_end) - np.maximum(p_start[j], y_start)
        union = np.maximum(p_end[j], y_end) - np.minimum(p_start[j], y_start)
        IoU = (1.0 * intersection / union) * ([p_label[j] == y_label[x] for x in range(len(y_label))])
        # Get the best scoring segment
        idx = np.array(IoU).argmax()
        if last_max:
            idx = len(IoU) - 1 - np.array(IoU)[::-1].argmax()
        if IoU[idx] >= overlap and not hits[idx]:
            tp += 1
            hits[idx] = 1
        else:
            fp += 1
    fn = len(y_label) - sum(hits)
    return float(tp), float(fp), float(fn)


def evaluate(videos, background, drop_background_frames, last_max=False):
    """eval.py's main loop over (gt, pred) pairs of label-id lists."""
    tp, fp, fn = np.zeros(3), np.zeros(3), np.zeros(3)
    correct = 0
    total = 0
    edit = 0
    for gt_content, recog_content in videos:
        assert len(gt_content) == len(recog_content)
        bg_class = background
        if drop_background_frames and background:
            # Sync release protocol: delete GT-background frames, then no bg.
            keep = [i for i, g in enumerate(gt_content) if g not in background]
            gt_content = [gt_content[i] for i in keep]
            recog_content = [recog_content[i] for i in keep]
            bg_class = []
        for i in range(len(gt_content)):
            total += 1
            if gt_content[i] == recog_content[i]:
                correct += 1
        edit += edit_score(recog_content, gt_content, bg_class)
        for s in range(len(OVERLAPS)):
            tp1, fp1, fn1 = f_score(recog_content, gt_content, OVERLAPS[s], bg_class, last_max)
            tp[s] += tp1
            fp[s] += fp1
            fn[s] += fn1

    if len(videos) == 0:  # syncseg rule: nothing evaluated → zeros
        return dict(edit=0.0, f1_10=0.0, f1_25=0.0, f1_50=0.0, mof=0.0, videos=0), [[0, 0, 0]] * 3

    acc = 100.0 if total == 0 else (100 * float(correct) / total)  # syncseg rule for 0 frames
    edit = ((1.0 * edit) / len(videos))
    f1s = []
    for s in range(len(OVERLAPS)):
        if tp[s] + fp[s] + fn[s] == 0:  # syncseg rule: vacuous, eval.py gives 0
            f1s.append(100.0)
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = tp[s] / float(tp[s] + fp[s])
            recall = tp[s] / float(tp[s] + fn[s])
            f1 = 2.0 * (precision * recall) / (precision + recall)
        f1 = np.nan_to_num(f1) * 100
        f1s.append(float(f1))
    counts = [[int(tp[s]), int(fp[s]), int(fn[s])] for s in range(3)]
    scores = dict(edit=float(edit), f1_10=f1s[0], f1_25=f1s[1], f1_50=f1s[2],
                  mof=float(acc), videos=len(videos))
    return scores, counts


def random_labels(rng, n_labels, max_runs):
    """A label sequence made of runs, like a real segmentation."""
    out = []
    for _ in range(rng.randint(0, max_runs)):
        out += [rng.randrange(n_labels)] * rng.randint(1, 12)
    return out


def noisy(rng, gt, n_labels):
    """A prediction: GT with shifted boundaries, relabelled runs and flicker."""
    pred = list(gt)
    # Shift boundaries by copying neighbours.
    for i in range(1, len(pred)):
        if pred[i] != pred[i - 1] and rng.random() < 0.5:
            for k in range(i, min(len(pred), i + rng.randint(0, 3))):
                pred[k] = pred[i - 1]
    # Relabel some stretches, and single-frame flicker.
    for i in range(len(pred)):
        if rng.random() < 0.08:
            lab = rng.randrange(n_labels)
            for k in range(i, min(len(pred), i + rng.randint(1, 8))):
                pred[k] = lab
        elif rng.random() < 0.06:
            pred[i] = rng.randrange(n_labels)
    return pred


def make_cases():
    rng = random.Random(20240917)
    option_sets = [
        ([], False),
        ([0], False),
        ([0], True),
        ([0, 3], False),
        ([0, 3], True),
    ]
    cases = []
    for n in range(40):
        background, drop = option_sets[n % len(option_sets)]
        n_labels = rng.choice([2, 3, 5, 8])
        videos = []
        for _ in range(rng.randint(1, 4)):
            gt = random_labels(rng, n_labels, rng.choice([2, 5, 10]))
            videos.append((gt, noisy(rng, gt, n_labels)))
        cases.append((f"random-{n}", background, drop, videos))
    # Tie cases, which random labels almost never produce. Ground truth
    # 1[0,a) 2[a,b) 1[b,c), prediction 1[0,d) 3[d,d+1) 1[d+1,c) with
    # a/d = (d-b)/c: the first predicted segment has the same IoU with both
    # 1-segments, and eval.py's first-maximum argmax decides whether the
    # last predicted segment is a hit. Scaled, shifted by random segments
    # before and after, with or without background. Each one is checked to
    # count differently under a last-maximum argmax.
    shapes = [(a, b, d, d * (d - b) // a)
              for a in range(1, 6) for b in range(a + 1, 10) for d in range(b + 1, 14)
              if d * (d - b) % a == 0 and d * (d - b) // a > d + 1
              # both the tie and the last segment's IoU clear τ = 0.1
              and min(a / d, (d * (d - b) // a - d - 1) / (d * (d - b) // a - b)) >= 0.1]
    for n in range(10):
        a, b, d, c = rng.choice(shapes)
        k = rng.randint(1, 3)
        pre = random_labels(rng, 2, 3)
        pre = [x + 4 for x in pre]  # labels 4, 5: never 1
        post = [rng.choice([0, 6]) for _ in range(rng.randint(0, 4))]
        gt = pre + [1] * (a * k) + [2] * ((b - a) * k) + [1] * ((c - b) * k) + post
        pred = pre + [1] * (d * k) + [3] * k + [1] * ((c - d - 1) * k) + post
        videos = [(gt, pred)]
        background = [0] if n % 2 else []
        drop = n % 4 == 3
        assert evaluate(videos, background, drop)[1] != evaluate(videos, background, drop, True)[1]
        cases.append((f"tie-{n}", background, drop, videos))
    # A few hand-picked shapes among random ones.
    cases.append(("tie-first-argmax", [], False, [([1, 1, 2, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 3, 1, 1])]))
    cases.append(("empty-video-among-others", [0], False, [([], []), ([1, 1, 0, 2], [1, 0, 0, 2])]))
    cases.append(("all-background", [0], False, [([0, 0, 0], [0, 0, 0]), ([0, 0], [0, 1])]))
    cases.append(("drop-empties-a-video", [0], True, [([0, 0, 0], [1, 2, 2]), ([1, 1, 2], [1, 2, 2])]))
    cases.append(("no-gt-segments", [0], False, [([0, 0, 0, 0], [1, 1, 2, 2])]))
    cases.append(("no-videos", [], False, []))
    out = []
    for name, background, drop, videos in cases:
        scores, counts = evaluate(videos, background, drop)
        out.append(dict(
            name=name,
            options=dict(background=background, drop_background_frames=drop),
            videos=[[g, p] for g, p in videos],
            expected=scores,
            counts=counts,
        ))
    return out


def self_check():
    """Hand-computed values (see metrics.rs tests) so the reference is checked too."""
    s, c = evaluate([([1, 1, 2, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 3, 1, 1])], [], False)
    assert c == [[2, 1, 1], [2, 1, 1], [0, 3, 3]], c
    assert abs(s["mof"] - 700 / 9) < 1e-9
    s, c = evaluate([([1, 1, 0, 0, 1, 1, 2, 2], [1, 1, 1, 1, 1, 1, 2, 0])], [0], True)
    assert c == [[2, 1, 0]] * 3 and abs(s["mof"] - 500 / 6) < 1e-9, (s, c)


if __name__ == "__main__":
    self_check()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics_cases.json")
    doc = dict(
        generator="core/tests/data/msTCN_eval_reference.py",
        note="expected values from a Python transcription of ms-tcn eval.py plus syncseg's edge-case rules",
        cases=make_cases(),
    )
    # One case per line: diffable, and small enough to read.
    head = json.dumps({k: v for k, v in doc.items() if k != "cases"})[:-1]
    body = ",\n".join(json.dumps(c, separators=(",", ":")) for c in doc["cases"])
    with open(path, "w") as f:
        f.write(head + ',"cases":[\n' + body + "\n]}\n")
    print(f"wrote {len(doc['cases'])} cases to {path}")
