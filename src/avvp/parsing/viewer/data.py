"""What the viewer page shows, read from a parse output folder: one entry per parsed video.

The page is built from the folder's `<stem>.json` files alone (those `avvp parse` writes), so it
can be rebuilt at any time (`avvp view DIR`) and needs nothing else. Per video it holds the events,
the ground truth where known, the probabilities (quantised to bytes, base64: about 0.7 kB for a
10-second LLP clip, so 1,200 test videos stay near 2 MB), and where ground truth is known its
score: the segment-level F of the LLP protocol (audio, visual, audio-visual and their mean,
Type@AV, as in the ten numbers) from the decisions the parse made, and its error count (wrong
class-seconds: false positives plus misses in the audio and visual lanes), so the list can put the
worst videos first. What produced the events (checkpoint, extractor weights, thresholds, the
random-weights warning) is shared by most videos and is kept once per distinct setup.
"""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from avvp.base.protocol import SEGMENTS, STREAMS
from avvp.evaluation.scores import Counts, segment_decisions, video_f

PARSE_KEYS = frozenset({"video", "duration", "classes", "events", "frame_prob", "global_prob", "thresholds"})


def parse_outputs(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """The folder's parse JSON files (other JSON files are left out), in file-name order."""
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(body, dict) and PARSE_KEYS <= body.keys():
            found.append((path, body))
    return found


def video_link(body: Mapping[str, Any], folder: Path) -> tuple[str | None, str]:
    """(URL of the video relative to the page, or None when the file is not found; the path tried).

    The parse records the path as given and, since the viewer, as an absolute path (`video_file`);
    a folder moved with its videos beside it still works: the path is tried as recorded, then
    relative to the folder, then by its name inside the folder."""
    given = Path(body["video"])
    tried = [Path(body["video_file"])] if body.get("video_file") else []
    tried += [given, folder / given, folder / given.name]
    for path in tried:
        if path.is_file():
            relative = os.path.relpath(path.resolve(), folder.resolve())
            return quote(Path(relative).as_posix(), safe="/"), str(path)
    return None, str(tried[0])


def quantised(body: Mapping[str, Any]) -> str:
    """Frame probabilities (S, 2, C) then window probabilities (W, C) as bytes 0..255, base64."""
    frame = np.asarray(body["frame_prob"], np.float64).reshape(-1)
    window = np.asarray(body["global_prob"], np.float64).reshape(-1)
    data = np.rint(np.clip(np.concatenate([frame, window]), 0.0, 1.0) * 255).astype(np.uint8)
    return base64.b64encode(data.tobytes()).decode("ascii")


def _lanes(events: Sequence[Mapping[str, Any]], classes: Sequence[str], n_segments: int) -> np.ndarray:
    """(2, C, S) bool: the audio and visual seconds of `events` (a row covers int(onset) ..
    int(offset) - 1, the annotations' rule)."""
    index = {name: i for i, name in enumerate(classes)}
    mask = np.zeros((2, len(classes), n_segments), bool)
    for e in events:
        if e["modality"] in STREAMS[:2] and e["class"] in index:
            mask[STREAMS.index(e["modality"]), index[e["class"]], int(e["onset"]):int(e["offset"])] = True
    return mask


def video_score(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """Segment-level F (percent) per stream and Type@AV, and the error count; None without ground truth."""
    if body.get("ground_truth") is None:
        return None
    classes = body["classes"]
    frame = np.asarray(body["frame_prob"], np.float64).reshape(-1, 2, len(classes))  # (S, 2, C)
    n_segments = len(frame)
    window = np.asarray(body["global_prob"], np.float64).reshape(-1, len(classes))
    per_second = window[np.arange(n_segments) // SEGMENTS]  # each second's window probability
    thresholds = body["thresholds"]
    # Each second as a one-segment "video": the decision rule of the evaluation, unchanged.
    audio, visual = segment_decisions(per_second, frame[:, None], thresholds["frame"], thresholds["global"])
    pred = np.stack([audio[..., 0].T, visual[..., 0].T])  # (2, C, S)
    truth = _lanes(body["ground_truth"], classes, n_segments)
    pred, truth = np.concatenate([pred, pred[:1] & pred[1:]]), np.concatenate([truth, truth[:1] & truth[1:]])
    counts = Counts(*((a & b).sum(-1)[:, None] for a, b in ((pred, truth), (pred, ~truth), (~pred, truth))))
    f = 100.0 * video_f(counts)[:, 0]
    return {"f": round(float(f.mean()), 2), "streams": [round(float(x), 2) for x in f],
            "errors": int(counts.fp[:2].sum() + counts.fn[:2].sum())}


def _events(events: Sequence[Mapping[str, Any]], classes: Sequence[str]) -> list[list[float]]:
    """[class index, modality index, onset, offset, score] per event (score -1: none)."""
    index = {name: i for i, name in enumerate(classes)}
    return [[index[e["class"]], STREAMS.index(e["modality"]), round(e["onset"], 3), round(e["offset"], 3),
             -1 if e.get("score") is None else round(e["score"], 3)] for e in events]


def weights_text(record: Mapping[str, Any]) -> str:
    """`random (seed 0)`, `pretrained` or a state-dict path: an extractor's weights as a person reads them."""
    weights = str(record.get("weights"))
    return f"random (seed {record.get('seed', 0)})" if weights == "random" else weights


def setup_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """What produced a video's events: classes, thresholds, warning, checkpoint and weights."""
    model = body.get("model") or {}
    return {
        "classes": list(body["classes"]),
        "thresholds": dict(body["thresholds"]),
        "warning": body.get("warning"),
        "model": str(model.get("model", "")),
        "checkpoint": model.get("checkpoint"),
        "sha256": model.get("checkpoint_sha256"),
        "weights": {kind: weights_text(r) for kind, r in (model.get("feature_weights") or {}).items()},
        "mismatch": list(model.get("weights_mismatch") or ()),
    }


def video_entry(json_path: Path, body: Mapping[str, Any], folder: Path, setup: int) -> dict[str, Any]:
    """One video of the page (see the module docstring)."""
    classes = body["classes"]
    src, tried = video_link(body, folder)
    truth = body.get("ground_truth")
    score = video_score(body)
    return {
        "name": Path(body["video"]).name,
        "json": json_path.name,
        "src": src,
        "path": tried,
        "duration": float(body["duration"]),
        "windows": int(body.get("n_windows") or np.ceil(body["duration"] / SEGMENTS)),
        "segments": len(body["frame_prob"]),
        "setup": setup,
        "events": _events(body["events"], classes),
        "truth": None if truth is None else _events(truth, classes),
        "score": score,
        "probs": quantised(body),
        "warnings": list(body.get("media_warnings") or ()),
        "hasAudio": bool(body.get("has_audio", True)),
    }


def page_data(folder: Path) -> dict[str, Any]:
    """The page's data for every parsed video in `folder` (see the module docstring)."""
    from avvp import __version__
    from avvp.parsing.timeline import COLOURS, LANE_NAMES, MAX_EDGES

    setups: list[dict[str, Any]] = []
    videos = []
    for path, body in parse_outputs(folder):
        setup = setup_of(body)
        if setup not in setups:
            setups.append(setup)
        videos.append(video_entry(path, body, folder, setups.index(setup)))
    return {
        "title": folder.resolve().name,
        "avvp": __version__,
        "colours": COLOURS,
        "lanes": list(STREAMS),
        "laneNames": LANE_NAMES,
        "maxEdges": MAX_EDGES,
        "window": SEGMENTS,
        "scored": any(v["score"] is not None for v in videos),
        "setups": setups,
        "videos": videos,
    }
