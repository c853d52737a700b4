"""A literal, loop-by-loop reading of PROTOCOL §5, kept deliberately naive.

It shares no code with avvp.evaluation.scores or avvp.evaluation.annotations: it reads the CSV files itself, builds
each video's ground truth row by row, extracts events by scanning, and matches them pair by pair,
in the per-video, per-class style of the published evaluation. Tests compare the vectorised
evaluator with it; the benchmark uses it as the "published-style" baseline.
"""
from __future__ import annotations

import csv

import numpy as np

T = 10


def read_split_filenames(path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [row["filename"] for row in csv.DictReader(fh, delimiter="\t")]


def read_dense_rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def rows_by_filename(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        grouped.setdefault(row["filename"], []).append(row)
    return grouped


def video_ground_truth(rows: list[dict], classes: list[str]) -> np.ndarray:
    """(C, T) 0/1 of one video: segments int(onset) .. int(offset) - 1 of each row's classes."""
    gt = np.zeros((len(classes), T))
    for row in rows:
        onset = int(float(row["onset"]))
        offset = int(float(row["offset"]))
        for name in row["event_labels"].split(","):
            c = classes.index(name.strip())
            for t in range(onset, offset):
                gt[c, t] = 1
    return gt


def split_ground_truth(filenames, classes, audio_rows, visual_rows):
    """Lists of per-video (C, T) audio and visual ground truth, in split order."""
    by_a = rows_by_filename(audio_rows)
    by_v = rows_by_filename(visual_rows)
    gt_a = [video_ground_truth(by_a.get(f, []), classes) for f in filenames]
    gt_v = [video_ground_truth(by_v.get(f, []), classes) for f in filenames]
    return gt_a, gt_v


def scan_events(seq) -> list[list[int]]:
    """Maximal runs of 1s as [start, stop) pairs, found by walking the sequence."""
    events = []
    t = 0
    while t < len(seq):
        if seq[t] == 1:
            start = t
            while t < len(seq) and seq[t] == 1:
                t += 1
            events.append([start, t])
        else:
            t += 1
    return events


def iou_at_least_half(e1, e2) -> bool:
    seg1 = set(range(e1[0], e1[1]))
    seg2 = set(range(e2[0], e2[1]))
    return len(seg1 & seg2) >= 0.5 * len(seg1 | seg2)


def match_events(pred_events, gt_events) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for p in pred_events:
        found = False
        for g in gt_events:
            if iou_at_least_half(p, g):
                found = True
                break
        if found:
            tp += 1
        else:
            fp += 1
    for g in gt_events:
        found = False
        for p in pred_events:
            if iou_at_least_half(g, p):
                found = True
                break
        if not found:
            fn += 1
    return tp, fp, fn


def segment_tp_fp_fn(pred_row, gt_row) -> tuple[int, int, int]:
    tp = fp = fn = 0
    for t in range(len(pred_row)):
        if pred_row[t] == 1 and gt_row[t] == 1:
            tp += 1
        elif pred_row[t] == 1:
            fp += 1
        elif gt_row[t] == 1:
            fn += 1
    return tp, fp, fn


def mean_kept_f(tps, fps, fns) -> float:
    scores = []
    for tp, fp, fn in zip(tps, fps, fns):
        if tp + fp != 0 or tp + fn != 0:
            scores.append(2 * tp / (2 * tp + fp + fn))
    if len(scores) == 0:
        return 1.0
    return sum(scores) / len(scores)


def video_decisions(global_prob, frame_prob, frame_threshold, global_threshold):
    """(C, T) predicted audio and visual events of one video: frame prob AND video-level prob."""
    n_classes = len(global_prob)
    so_a = np.zeros((n_classes, T))
    so_v = np.zeros((n_classes, T))
    for k in range(n_classes):
        if global_prob[k] >= global_threshold:
            for t in range(T):
                if frame_prob[t, 0, k] >= frame_threshold:
                    so_a[k, t] = 1
                if frame_prob[t, 1, k] >= frame_threshold:
                    so_v[k, t] = 1
    return so_a, so_v


def video_scores(so_a, so_v, gt_a, gt_v):
    """Eight per-video numbers and the per-class counts: {level: {stream: (F, tps, fps, fns)}}."""
    so_av = so_a * so_v
    gt_av = gt_a * gt_v
    out = {}
    for level in ("segment_level", "event_level"):
        counts = {}
        streams = (("audio", so_a, gt_a), ("visual", so_v, gt_v), ("audio_visual", so_av, gt_av))
        for stream, pred, gt in streams:
            tps, fps, fns = [], [], []
            for k in range(pred.shape[0]):
                if level == "segment_level":
                    tp, fp, fn = segment_tp_fp_fn(pred[k], gt[k])
                else:
                    tp, fp, fn = match_events(scan_events(pred[k]), scan_events(gt[k]))
                tps.append(tp)
                fps.append(fp)
                fns.append(fn)
            counts[stream] = (tps, fps, fns)
        summed = tuple(
            [a + v for a, v in zip(counts["audio"][i], counts["visual"][i])] for i in range(3)
        )
        counts["event_at_av"] = summed
        out[level] = {s: (mean_kept_f(*c), *c) for s, c in counts.items()}
    return out


def reference_evaluate(
    global_prob, frame_prob, gt_a, gt_v, classes, frame_threshold=0.5, global_threshold=0.5
):
    """The ten numbers (percent) and per-class corpus F, video by video."""
    per_video = {lvl: {s: [] for s in ("audio", "visual", "audio_visual", "event_at_av")}
                 for lvl in ("segment_level", "event_level")}
    totals = {lvl: {s: np.zeros((3, len(classes)), np.int64) for s in per_video[lvl]} for lvl in per_video}
    for i in range(len(global_prob)):
        so_a, so_v = video_decisions(global_prob[i], frame_prob[i], frame_threshold, global_threshold)
        result = video_scores(so_a, so_v, np.asarray(gt_a[i]), np.asarray(gt_v[i]))
        for lvl in result:
            for s, (f, tps, fps, fns) in result[lvl].items():
                per_video[lvl][s].append(f)
                for k in range(len(classes)):
                    totals[lvl][s][0, k] += tps[k]
                    totals[lvl][s][1, k] += fps[k]
                    totals[lvl][s][2, k] += fns[k]
    out = {}
    for lvl in per_video:
        a = 100 * np.mean(per_video[lvl]["audio"])
        v = 100 * np.mean(per_video[lvl]["visual"])
        av = 100 * np.mean(per_video[lvl]["audio_visual"])
        out[lvl] = {
            "audio": a,
            "visual": v,
            "audio_visual": av,
            "type_at_av": (a + v + av) / 3,
            "event_at_av": 100 * np.mean(per_video[lvl]["event_at_av"]),
        }
    per_class = {}
    for lvl in totals:
        per_class[lvl] = {}
        for s in totals[lvl]:
            per_class[lvl][s] = {}
            for k, name in enumerate(classes):
                tp, fp, fn = totals[lvl][s][:, k]
                per_class[lvl][s][name] = None if 2 * tp + fp + fn == 0 else 100 * 2 * tp / (2 * tp + fp + fn)
    out["per_class"] = per_class
    out["n_videos"] = len(global_prob)
    return out
