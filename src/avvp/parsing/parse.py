"""Parsing any video with HAN: 10-second windows in, events in seconds of the video out.

A video of any length is cut into 10-second windows (`avvp.parsing.windows`: how each medium is cut
and padded), each window runs through a `WindowModel` (`avvp.parsing.window_model`: the checkpoint's
extractors, then HAN), and its probabilities become events here:

- Padding is never reported: decisions are made per window as in the evaluation (frame prob >=
  t_f AND the window's global prob >= t_g), joined along time (an event crossing a window edge is
  one event), cut to the video's S real segments, and the last offset is clipped to the duration.
- Events are the maximal runs of the LLP protocol's three streams: `audio` (heard), `visual`
  (seen) and `audio_visual` (both, the AND of the two; so it also lies inside an audio and a
  visual event). An event's score is the mean, over its segments, of p(t) x g(t): p the frame
  probability of its modality (for audio_visual the smaller of the audio and visual ones, whose
  threshold is the AND) and g the class's global probability in the segment's window. It lies in
  (0, 1] and is at least t_f x t_g.

Videos stream: each is decoded, run through the model and written before the next starts, with a
line on stderr per video, into a resumable folder (see `parse_videos`); a video that fails is named
and the batch goes on.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from avvp.evaluation.annotations import DenseEvents
from avvp.base.atomic import atomic_output, full_disk
from avvp.clips.ffmpeg import MAX_VIDEO_FRAMES, MAX_VIDEO_SECONDS
from avvp.evaluation.events import PARSED_COLUMNS, Event, runs
from avvp.evaluation.scores import segment_decisions
from avvp.base.protocol import SEGMENTS, STREAMS
from avvp.parsing.windows import prepare_windows, segment_count, window_count
from avvp.parsing.window_model import HANWindowModel, WindowModel, random_weights_warning
from avvp.parsing.work import run_work_folder

PADDING_RULE = ("10-second windows; past the video's end the last window's audio is padded with silence and "
                "its frames by repeating the last frame; nothing in the padding is reported")
SCORE_RULE = ("mean over the event's seconds of p x g: p the frame probability of its modality (the smaller "
              "of audio and visual for audio_visual), g the class's global probability in that second's window")


# ----------------------------------------------------------------------------- events


def parse_windows(
    global_prob: np.ndarray,
    frame_prob: np.ndarray,
    duration: float,
    classes: Sequence[str],
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
) -> list[Event]:
    """Events of a video from its windows' probabilities (module rules); pure.

    global_prob (W, C), frame_prob (W, 10, 2, C) with [:, :, 0] audio and [:, :, 1] visual, W =
    window_count(duration). Events are ordered by onset, then class index, then modality.
    """
    g, f = np.asarray(global_prob, np.float64), np.asarray(frame_prob, np.float64)
    n_windows, n_classes = window_count(duration), len(classes)
    if g.shape != (n_windows, n_classes) or f.shape != (n_windows, SEGMENTS, 2, n_classes):
        raise ValueError(f"a {duration:g} s video needs global_prob ({n_windows}, {n_classes}) and frame_prob "
                         f"({n_windows}, {SEGMENTS}, 2, {n_classes}), got {g.shape} and {f.shape}")
    n_segments = segment_count(duration)
    audio, visual = segment_decisions(g, f, frame_threshold, global_threshold)  # (W, C, 10)
    decided = np.stack([audio, visual, audio & visual])  # (3, W, C, 10)
    decided = decided.transpose(0, 2, 1, 3).reshape(3, n_classes, -1)[..., :n_segments]
    prob = np.stack([f[:, :, 0], f[:, :, 1], f.min(axis=2)])  # (3, W, 10, C)
    weighted = prob * g[None, :, None, :]
    weighted = weighted.transpose(0, 3, 1, 2).reshape(3, n_classes, -1)[..., :n_segments]
    events = []
    for m, c, start, stop in zip(*runs(decided)):
        score = float(weighted[m, c, start:stop].mean())
        events.append(Event(classes[c], STREAMS[m], float(start), min(float(stop), float(duration)), score))
    order = {name: i for i, name in enumerate(classes)}
    return sorted(events, key=lambda e: (e.onset, order[e.label], STREAMS.index(e.modality)))


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for onset, offset in sorted(spans):
        if out and onset <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], offset))
        else:
            out.append((onset, offset))
    return out


def ground_truth_events(filename: str, classes: Sequence[str], audio: DenseEvents | None,
                        visual: DenseEvents | None) -> list[Event] | None:
    """The annotated events of `filename` (rows matched by full filename, overlaps merged), with
    audio_visual = the overlap of a class's audio and visual spans; None when no row names it."""
    spans: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for modality, table in (("audio", audio), ("visual", visual)):
        if table is None:
            continue
        rows = np.flatnonzero(table.filenames == filename)
        by_class: dict[int, list[tuple[float, float]]] = {}
        for r in rows:
            if table.offset[r] > table.onset[r]:
                by_class.setdefault(int(table.class_index[r]), []).append((table.onset[r], table.offset[r]))
        if len(rows):
            spans[modality] = {c: _merged(s) for c, s in by_class.items()}
    if not spans:
        return None
    events = [Event(classes[c], m, float(a), float(b)) for m, by_class in spans.items()
              for c, s in by_class.items() for a, b in s]
    for c, heard in spans.get("audio", {}).items():
        for a0, a1 in heard:
            for v0, v1 in spans.get("visual", {}).get(c, []):
                if min(a1, v1) > max(a0, v0):
                    events.append(Event(classes[c], "audio_visual", float(max(a0, v0)), float(min(a1, v1))))
    order = {name: i for i, name in enumerate(classes)}
    return sorted(events, key=lambda e: (e.onset, order[e.label], STREAMS.index(e.modality)))


# ----------------------------------------------------------------------------- outputs

FIGURE_FORMATS = ("png", "pdf", "svg")
NO_AUDIO_NOTE = ("no audio track: nothing is heard, so it has no audio or audio-visual events (frame_prob keeps the "
                 "model's output on silence)")


@dataclass(frozen=True)
class ParsedVideo:
    """Everything written for one video."""

    video: Path
    duration: float
    has_audio: bool
    n_windows: int
    events: list[Event]
    ground_truth: list[Event] | None
    global_prob: np.ndarray  # (W, C)
    frame_prob: np.ndarray  # (W, 10, 2, C)
    warning: str | None  # set when the features came from random weights
    json_path: Path
    csv_path: Path
    figures: tuple[Path, ...]  # the timeline in each format asked for
    media_warnings: tuple[str, ...] = ()  # odd but usable media: truncated, implausible frame rate, no audio track


def output_paths(out_dir: Path, video: Path, formats: Sequence[str]) -> tuple[Path, Path, tuple[Path, ...]]:
    """A video's JSON, CSV and timeline figures in `out_dir` (named by its file stem)."""
    def path(ext: str) -> Path:
        return out_dir / f"{video.stem}.{ext}"  # not with_suffix: a stem may hold dots (`x_0_6.5`)

    return path("json"), path("csv"), tuple(path(f) for f in formats)


def _events_csv(events: Sequence[Event]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PARSED_COLUMNS)
    for e in events:
        writer.writerow([e.label, e.modality, f"{e.onset:.3f}", f"{e.offset:.3f}", f"{e.score:.4f}"])
    return buffer.getvalue()


def _write_outputs(parsed: ParsedVideo, classes: Sequence[str], settings: Mapping[str, Any],
                   features: Mapping[str, Any]) -> None:
    """The CSV and figures first, the JSON last: a video whose JSON exists is complete."""
    from avvp.parsing.timeline import draw_timeline

    with atomic_output(parsed.csv_path, "w") as fh:
        fh.write(_events_csv(parsed.events))
    for path in parsed.figures:
        with atomic_output(path, "wb") as fh:
            draw_timeline(fh, parsed.duration, classes, parsed.events, parsed.ground_truth, title=parsed.video.name,
                          n_windows=parsed.n_windows, warning=parsed.warning, format=path.suffix[1:])
    n_segments = segment_count(parsed.duration)
    body = {
        "video": str(parsed.video),
        "video_file": str(parsed.video.resolve()),  # the viewer links it from wherever the folder is
        "duration": parsed.duration,
        "has_audio": parsed.has_audio,  # without an audio track the audio stream is silence
        "n_windows": parsed.n_windows,
        "n_segments": n_segments,
        "classes": list(classes),
        "thresholds": settings["thresholds"],
        "warning": parsed.warning,
        "media_warnings": list(parsed.media_warnings),
        "model": settings["model"],
        "features": dict(features),  # per kind: reused from a file, or extracted (with the weights record)
        "settings": dict(settings),  # a rerun into the same folder skips this video when they are equal
        "events": [e.as_dict() for e in parsed.events],
        "ground_truth": None if parsed.ground_truth is None else [e.as_dict() for e in parsed.ground_truth],
        # Per-window global and per-second frame probabilities (padding cut), to re-threshold later.
        "global_prob": parsed.global_prob.tolist(),
        "frame_prob": parsed.frame_prob.reshape(-1, 2, len(classes))[:n_segments].tolist(),
        "padding": PADDING_RULE,
        "score": SCORE_RULE,
    }
    with atomic_output(parsed.json_path, "w") as fh:
        json.dump(body, fh, indent=1)
        fh.write("\n")


def is_complete(json_path: Path, figures: Sequence[Path], settings: Mapping[str, Any]) -> bool:
    """Whether a video's outputs were all written by a run with these settings."""
    if not json_path.is_file() or not all(f.is_file() for f in figures):
        return False
    try:
        return json.loads(json_path.read_text(encoding="utf-8")).get("settings") == json.loads(json.dumps(settings))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class VideosFailed(RuntimeError):
    """Some videos of a batch failed; each was named with its error on stderr as it failed, and
    the others were written. The message is the batch's last line: how many, and which."""

    def __init__(self, failures: Sequence[tuple[Path, Exception]], total: int, parsed: Sequence[ParsedVideo]):
        self.failures, self.total, self.parsed = list(failures), total, list(parsed)
        names = ", ".join(str(path) for path, _ in self.failures)
        super().__init__(f"{len(self.failures)} of {total} videos failed: {names}")


def _check_inputs(paths: Sequence[Path], formats: Sequence[str]) -> None:
    """Refuse the whole batch before any work: no videos, unknown formats, missing files, two
    videos that would write the same outputs."""
    if not paths:
        raise ValueError("no videos to parse")
    unknown = sorted(set(formats) - set(FIGURE_FORMATS))
    if unknown or not formats:
        raise ValueError(f"figure formats are {', '.join(FIGURE_FORMATS)}; got {', '.join(formats) or 'none'}")
    stems: dict[str, Path] = {}
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"video {path} not found")
        if path.stem in stems:
            raise ValueError(f"videos {stems[path.stem]} and {path} would both write {path.stem}.json")
        stems[path.stem] = path


@dataclass(frozen=True)
class _Batch:
    """What every video of one `parse_videos` call shares."""

    model: WindowModel
    out: Path
    work: Path  # this run's own work folder (`avvp.parsing.work`)
    formats: Sequence[str]
    frame_threshold: float
    global_threshold: float
    audio_truth: DenseEvents | None
    visual_truth: DenseEvents | None
    settings: Mapping[str, Any]
    warning: str | None
    max_seconds: float | None = MAX_VIDEO_SECONDS
    max_frames: int | None = MAX_VIDEO_FRAMES


def _parse_one(path: Path, number: int, batch: _Batch, head: str = "") -> tuple[ParsedVideo, dict[str, Any]]:
    """Decode, run the model on and write one video; its work files live in a subfolder of the
    run's work folder, removed once the model has read them. Returns it and its feature sources.
    A video over the batch's bounds fails before anything is decoded to disk; its media warnings
    are said on stderr (after `head`) before the work starts."""
    json_path, csv_path, figures = output_paths(batch.out, path, batch.formats)
    work = batch.work / f"video{number}"
    try:
        windows = prepare_windows(path, work, "v", batch.max_seconds, batch.max_frames)
        notes = [*windows.warnings, *([] if windows.has_audio else [NO_AUDIO_NOTE])]
        for note in notes:
            _log(f"{head}: WARNING: {note}")
        global_prob, frame_prob, sources = batch.model(windows, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    classes = batch.model.classes
    try:
        events = parse_windows(global_prob, frame_prob, windows.duration, classes, batch.frame_threshold,
                               batch.global_threshold)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if not windows.has_audio:  # nothing to hear: what the model makes of silence is no event
        events = [e for e in events if e.modality == "visual"]
    truth = batch.settings["ground_truth"]
    warning = "; ".join(w for w in (batch.warning, None if windows.has_audio else NO_AUDIO_NOTE) if w) or None
    result = ParsedVideo(path, windows.duration, windows.has_audio, windows.n_windows, events,
                         ground_truth_events(path.stem, classes, batch.audio_truth, batch.visual_truth) if truth
                         else None, np.asarray(global_prob), np.asarray(frame_prob), warning, json_path,
                         csv_path, figures, tuple(notes))
    _write_outputs(result, classes, batch.settings, sources)
    return result, sources


def parse_videos(
    videos: Sequence[str | Path],
    model: WindowModel,
    out_dir: str | Path,
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
    audio_truth: DenseEvents | None = None,
    visual_truth: DenseEvents | None = None,
    formats: Sequence[str] = ("png",),
    max_seconds: float | None = MAX_VIDEO_SECONDS,
    max_frames: int | None = MAX_VIDEO_FRAMES,
) -> list[ParsedVideo]:
    """Parse each video into `<out_dir>/<stem>.json`, `.csv` and a timeline per format, one video
    after the other (decode, features, outputs), saying so on stderr one line per video.

    The folder is resumable: every file is written atomically, the JSON last, and a video whose
    JSON was written with the same settings (model, thresholds, formats, ground truth or not) and
    whose figures exist is skipped, so a run killed partway loses only the video it was on.
    A video that fails is named with its error on stderr and the batch goes on; at the end
    `VideosFailed` says how many failed and which. A full disk stops the batch (every later video
    would fail too): its OSError names the file. Returns the videos parsed by this call.
    Ground truth (dense LLP tables) is matched to a video by its file stem. Work files (WAVs,
    frames, features) live in this run's own folder inside `out_dir` (`avvp.parsing.work`: other
    runs into the same folder keep theirs), removed when it ends. A video longer than `max_seconds`
    as decoded (not as its header claims), or with more than `max_frames` video frames, fails with
    that reason (None: no bound); a truncated one or one with an implausible frame rate is warned
    about on stderr and in its JSON (`media_warnings`).
    """
    paths = [Path(v) for v in videos]
    _check_inputs(paths, formats)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    description = model.describe()
    settings = {"model": description, "thresholds": {"frame": float(frame_threshold), "global": float(global_threshold)},
                "formats": list(formats), "ground_truth": audio_truth is not None or visual_truth is not None}
    warning = random_weights_warning(description)
    if warning:
        _log(f"WARNING: {warning}; for real events use a checkpoint trained on pretrained features (or a released "
             "one) and leave --weights out")
    parsed: list[ParsedVideo] = []
    failures: list[tuple[Path, Exception]] = []
    with run_work_folder(out) as work:
        batch = _Batch(model, out, work, formats, frame_threshold, global_threshold, audio_truth, visual_truth,
                       settings, warning, max_seconds, max_frames)
        for number, path in enumerate(paths, start=1):
            json_path, _, figures = output_paths(out, path, formats)
            head = f"[{number}/{len(paths)}] {path}"
            if is_complete(json_path, figures, settings):
                _log(f"{head}: done before, skipped ({json_path})")
                continue
            started = time.monotonic()
            try:
                result, sources = _parse_one(path, number, batch, head)
            except Exception as err:  # one bad video never stops the batch; it is named here and at the end
                if full_disk(err):
                    raise  # but a full disk fails every later video too: stop, naming the file
                _log(f"{head}: failed: {type(err).__name__}: {err}")
                failures.append((path, err))
                continue
            reused = sorted(k for k, v in sources.items() if "reused" in v)
            _log(f"{head}: {result.duration:.2f} s, {result.n_windows} window(s), {len(result.events)} events, "
                 f"{time.monotonic() - started:.1f} s" + (f", features reused ({', '.join(reused)})" if reused else "")
                 + f" -> {json_path}")
            parsed.append(result)
    if failures:
        raise VideosFailed(failures, len(paths), parsed)
    return parsed


def parse_with_checkpoint(
    videos: Sequence[str | Path],
    checkpoint: str | Path,
    out_dir: str | Path,
    weights: Mapping[str, str] | None = None,
    seed: int | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
    audio_csv: str | Path | None = None,
    visual_csv: str | Path | None = None,
    classes: Sequence[str] | None = None,
    progress: bool = False,
    features: Sequence[str | Path] = (),
    formats: Sequence[str] = ("png",),
    allow_mismatch: bool = False,
    max_seconds: float | None = MAX_VIDEO_SECONDS,
    max_frames: int | None = MAX_VIDEO_FRAMES,
) -> list[ParsedVideo]:
    """`parse_videos` with the real model of a checkpoint (`HANWindowModel`: weights default to the
    checkpoint's, `features` roots are reused), drawing the dense annotations of
    `audio_csv`/`visual_csv` (LLP format) beside the prediction where given. Each extractor is
    loaded once for all videos."""
    from avvp.evaluation.annotations import Vocabulary, read_dense
    from avvp.features.networks import reused_networks

    for name, value in (("frame threshold", frame_threshold), ("global threshold", global_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the {name} must be in [0, 1], got {value}")
    model = HANWindowModel(checkpoint, classes, weights, seed=seed, device=device, batch_size=batch_size,
                           progress=progress, features=features, allow_mismatch=allow_mismatch)
    vocab = Vocabulary(tuple(model.classes))
    audio = read_dense(audio_csv, vocab) if audio_csv else None
    visual = read_dense(visual_csv, vocab) if visual_csv else None
    with reused_networks():
        return parse_videos(videos, model, out_dir, frame_threshold, global_threshold, audio, visual, formats,
                            max_seconds, max_frames)


def available_videos(videos: Mapping[str, str | Path], manifest: str | Path, limit: int | None = None) -> list[Path]:
    """The videos (clip filename -> video file) whose clip the manifest calls usable and whose file
    exists, in the mapping's order, at most `limit` of them."""
    from avvp.clips.records import read_records

    usable = {r.filename for r in read_records(manifest) if r.usable}
    chosen = [Path(path) for name, path in videos.items() if name in usable and Path(path).is_file()]
    return chosen if limit is None else chosen[:limit]
