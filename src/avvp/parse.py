"""Parsing any video with HAN: 10-second windows in, events in seconds of the video out.

HAN sees 10 one-second segments at a time. A video of any length, frame rate and size is decoded
once per medium (16 kHz audio by `media.write_audio`, 8 fps frames by `media.extract_frames`,
the audio track at its own rate by `audio_track.write_track`) and cut into
consecutive windows [10w, 10w + 10) s:

- Segments: the video has S = max(1, ceil(duration - 1/8)) one-second segments (a tail shorter
  than one 8 fps frame, such as the few milliseconds an AAC track runs past the picture, is not a
  segment of its own) and W = ceil(S / 10) windows.
- Audio of window w: samples [160000 w, 160000 (w + 1)) of the video's WAV, padded with digital
  silence past the end (VGGish reads its 10 examples from the first 9.615 s of it). Kinds that
  read the clip file itself (medium `video`: CLAP's track at its own rate R) get the same cut of
  the track as a WAV at rate R: samples [10 R w, 10 R (w + 1)), silence past the end.
- Frames of window w: `ffmpeg -r 8` (the LLP rule, shared with `avvp extract`) starts its output
  with up to 2 copies of the first picture (its frame-rate conversion runs ahead: a 10 s clip gives
  82 frames), so frame i shows time (i - lead) / 8 with lead = n - round(8 x duration), clipped to
  0..2. Window w gets frames lead + 80w .. lead + 80w + 79; the last window every remaining frame.
  A full first window also keeps the leading copies, and 80 frames are picked by
  round(linspace(0, n - 1, 80)), the LLP rule: for a 10-second clip these are the very frames
  `avvp extract` picks, so it is parsed from the features that training and `avvp predict` use.
  A window with fewer than 80 frames is padded by repeating its last frame (the video's last
  frame if it has none), so each real frame stays on its own second. The last frame is repeated
  rather than black because a cut to black is a strong visual change of its own that the networks
  would respond to.
- Padding is never reported: decisions are made per window as in the evaluation (frame prob >=
  t_f AND the window's global prob >= t_g), joined along time (an event crossing a window edge is
  one event), cut to the S real segments, and the last offset is clipped to the duration.

Events are the maximal runs of the LLP protocol's three streams: `audio` (heard), `visual` (seen)
and `audio_visual` (both, the AND of the two; so it also lies inside an audio and a visual event).
An event's score is the mean, over its segments, of p(t) x g(t): p the frame probability of its
modality (for audio_visual the smaller of the audio and visual ones, whose threshold is the AND)
and g the class's global probability in the segment's window. It lies in (0, 1] and is at least
t_f x t_g.

Videos stream: each is decoded, run through the model and written before the next starts, with a
line on stderr per video, into a resumable folder (see `parse_videos`). The model step is
injectable: `parse_videos` takes any `WindowModel` (a video's windows in, probabilities out);
`HANWindowModel` is the real one (feature extractors with the checkpoint's own weights, or
features extracted before, then HAN).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from avvp.annotations import DenseEvents
from avvp.events import PARSED_COLUMNS, Event, runs
from avvp.evaluation import segment_decisions
from avvp.extractors import FRAMES, MEDIA, VIDEO
from avvp.extractors.frames import N_FRAMES, pick_frame_indices
from avvp.ffmpeg import MediaError, MediaInfo, probe
from avvp.media import FRAME_RATE, extract_frames, write_audio
from avvp.atomic import atomic_output
from avvp.audio_track import write_track
from avvp.protocol import SEGMENTS, STREAMS

WINDOW_SECONDS = SEGMENTS  # one-second segments
TAIL_SLACK_S = 1.0 / FRAME_RATE
MAX_LEADING_COPIES = 2
PADDING_RULE = ("10-second windows; past the video's end the last window's audio is padded with silence and "
                "its frames by repeating the last frame; nothing in the padding is reported")
SCORE_RULE = ("mean over the event's seconds of p x g: p the frame probability of its modality (the smaller "
              "of audio and visual for audio_visual), g the class's global probability in that second's window")


# ----------------------------------------------------------------------------- windows


def segment_count(duration: float) -> int:
    """One-second segments of a video of `duration` seconds (see the module docstring)."""
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a time in seconds, got {duration!r}")
    return max(1, math.ceil(duration - TAIL_SLACK_S))


def window_count(duration: float) -> int:
    """10-second windows needed to cover the video's segments."""
    return math.ceil(segment_count(duration) / SEGMENTS)


def leading_copies(n_frames: int, duration: float) -> int:
    """How many extra copies of the first picture `ffmpeg -r 8` put before the real frames."""
    return int(np.clip(n_frames - round(FRAME_RATE * duration), 0, MAX_LEADING_COPIES))


def window_frame_indices(n_frames: int, n_windows: int, lead: int = 0) -> np.ndarray:
    """(n_windows, 80) indices into the video's 8 fps frames: each window's picked frames.

    `lead` leading copies of the first picture are skipped, except by a full first window.
    """
    if n_frames < 1:
        raise ValueError("the video has no frames")
    per_window = WINDOW_SECONDS * FRAME_RATE
    picks = np.empty((n_windows, N_FRAMES), np.int64)
    for w in range(n_windows):
        start = lead + w * per_window
        stop = n_frames if w == n_windows - 1 else min(n_frames, start + per_window)
        frames = np.arange(start, stop)
        if w == 0 and len(frames) >= per_window:
            frames = np.arange(0, stop)
        elif len(frames) == 0:
            frames = np.array([n_frames - 1])
        if len(frames) < per_window:
            frames = np.concatenate([frames, np.full(per_window - len(frames), frames[-1])])
        picks[w] = frames[pick_frame_indices(len(frames))]
    return picks


def write_window_audio(wav: Path, out_wavs: Sequence[Path]) -> None:
    """Cut a WAV into consecutive 10-second WAVs (same rate and format), silence past its end.

    Read window by window, so a long video never sits in memory.
    """
    with wave.open(str(wav), "rb") as src:
        params = src.getparams()
        size = WINDOW_SECONDS * params.framerate
        frame_bytes = params.nchannels * params.sampwidth
        for out in out_wavs:
            data = src.readframes(size)
            with wave.open(str(out), "wb") as dst:
                dst.setnchannels(params.nchannels)
                dst.setsampwidth(params.sampwidth)
                dst.setframerate(params.framerate)
                dst.writeframes(data + bytes(size * frame_bytes - len(data)))


def write_window_frames(frames: Sequence[Path], picks: np.ndarray, out_dirs: Sequence[Path]) -> None:
    """Per window a folder of its 80 picked frames, `000001.jpg` .. `000080.jpg`: hard links, or
    copies on a file system without them."""
    for out, row in zip(out_dirs, picks):
        out.mkdir(parents=True)
        for k, index in enumerate(row, start=1):
            try:
                os.link(frames[index], out / f"{k:06d}.jpg")
            except OSError:
                shutil.copyfile(frames[index], out / f"{k:06d}.jpg")


class VideoWindows:
    """A probed video and its windows: per window a 10 s WAV, a folder of 80 frames and a 10 s cut
    of the audio track at its own rate (module rules), written under `work_dir` as `<key>w<NNNN>`
    files when first asked for. Each medium is decoded separately, so a model that finds a video's
    features already extracted decodes nothing."""

    def __init__(self, info: MediaInfo, work_dir: Path, key: str) -> None:
        self.video, self.duration, self.has_audio = Path(info.path), info.duration, info.has_audio
        self.n_windows = window_count(info.duration)
        self._info, self._work, self._names = info, work_dir, [f"{key}w{w:04d}" for w in range(self.n_windows)]
        self._key = key

    def _cut(self, name: str, write: Callable[[MediaInfo, Path], Any]) -> tuple[Path, ...]:
        """`write` the whole video's WAV, then cut it into the windows' 10 s WAVs under `name`/."""
        full_wav = self._work / f"{self._key}_{name}.wav"
        write(self._info, full_wav)
        wavs = tuple(self._work / name / f"{n}.wav" for n in self._names)
        wavs[0].parent.mkdir(parents=True, exist_ok=True)
        write_window_audio(full_wav, wavs)
        return wavs

    @cached_property
    def audio(self) -> tuple[Path, ...]:
        return self._cut("audio", write_audio)

    @cached_property
    def tracks(self) -> tuple[Path, ...]:
        return self._cut("track", write_track)

    def inputs(self, medium: str) -> tuple[Path, ...]:
        """The windows' inputs for a feature kind of this medium (`avvp.extractors.MEDIA`)."""
        if medium not in MEDIA:
            raise ValueError(f"unknown medium {medium!r}; one of {MEDIA}")
        return self.frames if medium == FRAMES else self.tracks if medium == VIDEO else self.audio

    @cached_property
    def frames(self) -> tuple[Path, ...]:
        full_frames = self._work / f"{self._key}_frames"
        n_frames = extract_frames(self.video, full_frames)
        folders = tuple(self._work / "frames" / n for n in self._names)
        lead = leading_copies(n_frames, self.duration)
        write_window_frames(sorted(full_frames.glob("*.jpg")), window_frame_indices(n_frames, self.n_windows, lead),
                            folders)
        return folders


def prepare_windows(video: str | Path, work_dir: str | Path, key: str) -> VideoWindows:
    """Probe `video`; its windows are decoded under `work_dir` on first use (`VideoWindows`).

    A file that cannot be decoded or has no video stream raises MediaError naming it.
    """
    info = probe(video)
    if not info.has_video:
        raise MediaError(f"{video}: no video stream (parsing needs pictures)")
    return VideoWindows(info, Path(work_dir), key)


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


# ----------------------------------------------------------------------------- models


class WindowModel(Protocol):
    """The windows of one video -> probabilities: global (W, C) and frame (W, 10, 2, C), and per
    feature kind where its features came from (written into the video's JSON)."""

    classes: Sequence[str]

    def __call__(self, video: VideoWindows, work_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]: ...

    def describe(self) -> dict[str, Any]:
        """What produces the probabilities, known before the first video (written into each video's
        JSON; a folder's outputs made by another description are parsed again)."""
        ...


def feature_id(video: Path) -> str:
    """The name `avvp extract` gives the features of a clip: its YouTube id for an LLP filename."""
    from avvp.extractors.extract import output_id

    return output_id(video.with_suffix(".wav"))


class HANWindowModel:
    """The real model: the features of every window (the checkpoint's feature set), then HAN.

    `weights` maps a feature kind to `pretrained`, `random` or a state-dict path, `seed` is the seed
    of random weights; kinds not named, and a seed not given, come from the checkpoint's record of
    its training features (`avvp.feature_weights`: pretrained for a released checkpoint), and a
    choice that differs from it is refused unless `allow_mismatch`. `features` are roots in the
    released layout (`<root>/<kind>/<id>.npy`, e.g. each shard folder of `results/features`): a
    10-second video whose features are there is not decoded and no network runs for it; their
    `weights.json` must agree with the weights too. Random weights give meaningless events and are
    flagged in every output.
    """

    def __init__(self, checkpoint: str | Path, classes: Sequence[str] | None = None,
                 weights: Mapping[str, str] | None = None, seed: int | None = None, device: str = "auto",
                 batch_size: int | None = None, progress: bool = False, features: Sequence[str | Path] = (),
                 allow_mismatch: bool = False) -> None:
        from avvp.checkpoint import load_han
        from avvp.device import resolve_device
        from avvp.extractors import feature_kind
        from avvp.extractors.weights import file_sha256
        from avvp.feature_weights import WeightsMismatch, agrees, read_record, resolve_weights

        for kind in weights or {}:
            feature_kind(kind)
        self.device = resolve_device(device)
        self.checkpoint = Path(checkpoint)
        self.han, self.classes, payload = load_han(checkpoint, classes, self.device)
        self.trained = payload.get("feature_weights")
        self.weights, mismatched = resolve_weights(self.han.features, self.trained, weights or {}, seed,
                                                   allow_mismatch, checkpoint)
        self.folders = {kind: [Path(root) / kind for root in features if (Path(root) / kind).is_dir()]
                        for kind in self.weights}
        for kind, folders in self.folders.items():
            for folder in folders:
                if not agrees(self.weights[kind], record := read_record(folder)) and not allow_mismatch:
                    raise WeightsMismatch(f"{folder} holds {kind} features of weights "
                                          f"{record.get('weights') if record else 'pretrained (no weights.json)'}, "
                                          f"not {self.weights[kind]}; pass --allow-weights-mismatch to use them")
                if not agrees(self.weights[kind], record):
                    mismatched.append(kind)
        self.mismatched = sorted(set(mismatched))
        self.sha256 = file_sha256(self.checkpoint)
        self.batch_size, self.progress = batch_size, progress

    def _found(self, kind: str, video: VideoWindows) -> Path | None:
        """The already extracted features of a 10-second video: only then are a clip's features
        (`avvp extract` of the whole clip) exactly those of its one window (module rules)."""
        if video.n_windows != 1 or segment_count(video.duration) != SEGMENTS:
            return None
        name = f"{feature_id(video.video)}.npy"
        return next((folder / name for folder in self.folders[kind] if (folder / name).is_file()), None)

    def __call__(self, video: VideoWindows, work_dir: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        import torch

        from avvp.extractors import feature_kind
        from avvp.extractors.extract import extract_features, output_id
        from avvp.feature_weights import read_record
        from avvp.features import load_feature, pool_segments

        arrays, sources = [], {}
        for kind, choice in self.weights.items():
            found = self._found(kind, video)
            if found is not None:  # rows pooled to 10 segments at once (exact for HAN, less memory)
                arrays.append(pool_segments(load_feature(found, kind), kind)[None])
                sources[kind] = {"reused": str(found), "weights": read_record(found.parent)}
                continue
            inputs = video.inputs(feature_kind(kind).medium)
            out = Path(work_dir) / "features" / kind
            record = extract_features(kind, inputs, out, choice.weights, str(self.device), self.batch_size,
                                      choice.seed, self.progress, strict=True)
            arrays.append(np.stack([pool_segments(np.load(out / f"{output_id(p)}.npy"), kind) for p in inputs]))
            sources[kind] = {"extracted": True, "weights": record}
        with torch.inference_mode():
            global_prob, _, _, frame_prob = self.han(*(torch.from_numpy(a).to(self.device) for a in arrays))
        return global_prob.float().cpu().numpy(), frame_prob.float().cpu().numpy(), sources

    def describe(self) -> dict[str, Any]:
        return {"model": "HAN", "checkpoint": str(self.checkpoint), "checkpoint_sha256": self.sha256,
                "feature_weights": {kind: choice.as_dict() for kind, choice in self.weights.items()},
                "trained_feature_weights": self.trained, "weights_mismatch": self.mismatched}


def random_weights_warning(description: Mapping[str, Any]) -> str | None:
    """The warning every output of a model that ran on random extractor weights carries."""
    kinds = [k for k, r in description.get("feature_weights", {}).items() if r.get("weights") == "random"]
    return f"features from RANDOM weights ({', '.join(kinds)}): these events are not meaningful" if kinds else None


# ----------------------------------------------------------------------------- outputs

FIGURE_FORMATS = ("png", "pdf", "svg")


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
    from avvp.timeline import draw_timeline

    with atomic_output(parsed.csv_path, "w") as fh:
        fh.write(_events_csv(parsed.events))
    for path in parsed.figures:
        with atomic_output(path, "wb") as fh:
            draw_timeline(fh, parsed.duration, classes, parsed.events, parsed.ground_truth, title=parsed.video.name,
                          n_windows=parsed.n_windows, warning=parsed.warning, format=path.suffix[1:])
    n_segments = segment_count(parsed.duration)
    body = {
        "video": str(parsed.video),
        "duration": parsed.duration,
        "has_audio": parsed.has_audio,  # without an audio track the audio stream is silence
        "n_windows": parsed.n_windows,
        "n_segments": n_segments,
        "classes": list(classes),
        "thresholds": settings["thresholds"],
        "warning": parsed.warning,
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


def parse_videos(
    videos: Sequence[str | Path],
    model: WindowModel,
    out_dir: str | Path,
    frame_threshold: float = 0.5,
    global_threshold: float = 0.5,
    audio_truth: DenseEvents | None = None,
    visual_truth: DenseEvents | None = None,
    formats: Sequence[str] = ("png",),
) -> list[ParsedVideo]:
    """Parse each video into `<out_dir>/<stem>.json`, `.csv` and a timeline per format, one video
    after the other (decode, features, outputs), saying so on stderr one line per video.

    The folder is resumable: every file is written atomically, the JSON last, and a video whose
    JSON was written with the same settings (model, thresholds, formats, ground truth or not) and
    whose figures exist is skipped, so a run killed partway loses only the video it was on.
    Returns the videos parsed by this call. Ground truth (dense LLP tables) is matched to a video
    by its file stem. Work files (WAVs, frames, features) live in a temporary folder per video
    inside `out_dir` and are removed when it is done.
    """
    paths = [Path(v) for v in videos]
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = audio_truth is not None or visual_truth is not None
    description = model.describe()
    settings = {"model": description, "thresholds": {"frame": float(frame_threshold), "global": float(global_threshold)},
                "formats": list(formats), "ground_truth": truth}
    for stale in out.glob(".parse-work-*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    warning = random_weights_warning(description)
    if warning:
        _log(f"WARNING: {warning}; pass --weights pretrained (or state-dict files) for real parsing")
    parsed = []
    for number, path in enumerate(paths, start=1):
        json_path, csv_path, figures = output_paths(out, path, formats)
        head = f"[{number}/{len(paths)}] {path}"
        if is_complete(json_path, figures, settings):
            _log(f"{head}: done before, skipped ({json_path})")
            continue
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=".parse-work-", dir=out))
        try:
            windows = prepare_windows(path, work, "v")
            global_prob, frame_prob, sources = model(windows, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        try:
            events = parse_windows(global_prob, frame_prob, windows.duration, model.classes, frame_threshold,
                                   global_threshold)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        result = ParsedVideo(path, windows.duration, windows.has_audio, windows.n_windows, events,
                             ground_truth_events(path.stem, model.classes, audio_truth, visual_truth) if truth else None,
                             np.asarray(global_prob), np.asarray(frame_prob), warning, json_path, csv_path, figures)
        _write_outputs(result, model.classes, settings, sources)
        reused = sorted(k for k, v in sources.items() if "reused" in v)
        _log(f"{head}: {windows.duration:.2f} s, {windows.n_windows} window(s), {len(events)} events, "
             f"{time.monotonic() - started:.1f} s" + (f", features reused ({', '.join(reused)})" if reused else "")
             + f" -> {json_path}")
        parsed.append(result)
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
) -> list[ParsedVideo]:
    """`parse_videos` with the real model of a checkpoint (`HANWindowModel`: weights default to the
    checkpoint's, `features` roots are reused), drawing the dense annotations of
    `audio_csv`/`visual_csv` (LLP format) beside the prediction where given. Each extractor is
    loaded once for all videos."""
    from avvp.annotations import Vocabulary, read_dense
    from avvp.extractors.weights import reused_networks

    for name, value in (("frame threshold", frame_threshold), ("global threshold", global_threshold)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"the {name} must be in [0, 1], got {value}")
    model = HANWindowModel(checkpoint, classes, weights, seed=seed, device=device, batch_size=batch_size,
                           progress=progress, features=features, allow_mismatch=allow_mismatch)
    vocab = Vocabulary(tuple(model.classes))
    audio = read_dense(audio_csv, vocab) if audio_csv else None
    visual = read_dense(visual_csv, vocab) if visual_csv else None
    with reused_networks():
        return parse_videos(videos, model, out_dir, frame_threshold, global_threshold, audio, visual, formats)


def available_videos(videos: Mapping[str, str | Path], manifest: str | Path, limit: int | None = None) -> list[Path]:
    """The videos (clip filename -> video file) whose clip the manifest calls usable and whose file
    exists, in the mapping's order, at most `limit` of them."""
    from avvp.records import read_records

    usable = {r.filename for r in read_records(manifest) if r.usable}
    chosen = [Path(path) for name, path in videos.items() if name in usable and Path(path).is_file()]
    return chosen if limit is None else chosen[:limit]
