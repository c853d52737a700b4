"""The embedded demo data set: synthetic 10-second clips whose answer is known.

Why it looks the way it does: the demo must be learnable by HAN from *randomly initialised*
backbones (offline, no weights), on a few dozen clips. Random convolutional features keep global
statistics (colour, spatial frequency, where the energy lies in a log-mel image) and little else, so
every class has a strong, global signature in both modalities:

- visual: a drifting square-wave pattern (horizontal stripes, checks, vertical bars or rings) in
  the class's own hue and spatial period fills the frame (plain dark grey when nothing is
  visible); events visible at the same time share it in horizontal bands;
- audio: a loud tone, pulsed tone, chirp or noise band, far apart on the mel scale, over a faint
  noise floor; concurrent sounds add up.

The event statistics follow LLP's, because HAN trained on weak labels mostly learns *which* classes
a video holds and marks them over much of the clip in both modalities (on LLP's test split, that
rule with the true labels already scores 63 segment-level Type@AV): events are long (6 to 10 s;
LLP's average 7-8 s), 60 % of them audio-visual (LLP: 61 %), 20 % audio-only and 20 %
visual-only. An audio-visual event has the same span in both modalities. Onsets and offsets are
whole seconds. A clip holds 1 to 3 events (2.5 on average).

Clip `i` depends only on (seed, i): growing `n_videos` appends clips and leaves the others, their
split and their bytes unchanged. Clip `i` goes to split `SPLIT_CYCLE[i % 5]`. Within a split, each
round of 8 successive clips holds every class in every modality (all splits complete from
n_videos = 40), and its first two clips hold every class (from n_videos = 10).

Files are written in the LLP formats (CONTRACTS: demo data set folder). Videos are H.264 + AAC mp4
at 25 fps, 320x240 and 44.1 kHz stereo, rates unlike the pipeline's own so that resampling is
exercised.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avvp.base.atomic import atomic_path
from avvp.clips.ffmpeg import ffmpeg_exe, input_arg, raise_if_disk_full
from avvp.evaluation.annotations import video_id

DEFAULT_N_VIDEOS = 40
DURATION_S = 10
FPS = 25
WIDTH, HEIGHT = 320, 240
SAMPLE_RATE = 44100
MIN_VIDEOS = 5  # one clip per split

SPLITS = ("train", "val", "test")
SPLIT_CYCLE = ("train", "train", "train", "val", "test")
# Each class's modalities in a round of a split: 60 % audio-visual (see the module docstring).
MODALITY_CYCLE = ("audio_visual", "audio", "audio_visual", "visual", "audio_visual")
# Number of events of the j-th clip of a round of 8 clips, which deals 20 = 4 classes x 5 pairs.
EVENTS_CYCLE = (3, 2, 3, 1, 3, 2, 3, 3)
MIN_EVENT_S = 6
BACKGROUND_RGB = (40, 40, 40)
NOISE_FLOOR = 0.002  # RMS of the background noise, full scale = 1
EVENT_AMPLITUDE = 0.2  # peak of a tone: three concurrent sounds (almost) never clip
FADE_S = 0.01  # raised-cosine ramps at audio event edges (a click is broadband)


@dataclass(frozen=True)
class DemoClass:
    """One class: a visual pattern (hue, spatial period in pixels, kind) and an audio signature."""

    name: str
    bright_rgb: tuple[int, int, int]
    dark_rgb: tuple[int, int, int]
    pattern: str  # "hstripes" | "checks" | "vstripes" | "rings"
    period_px: float
    audio: str  # "tone" | "beeps" | "chirp" | "hiss"
    audio_hz: tuple[float, float]  # tone: (f, f); chirp/hiss: (low, high)


CLASSES: tuple[DemoClass, ...] = (
    DemoClass("Red_stripes_hum", (255, 50, 40), (110, 0, 0), "hstripes", 16.0, "tone", (300.0, 300.0)),
    DemoClass("Green_checks_beep", (60, 235, 60), (0, 80, 10), "checks", 16.0, "beeps", (1000.0, 1000.0)),
    DemoClass("Blue_bars_chirp", (60, 110, 255), (0, 0, 110), "vstripes", 24.0, "chirp", (2000.0, 3200.0)),
    DemoClass("Yellow_rings_hiss", (255, 230, 50), (100, 80, 0), "rings", 20.0, "hiss", (5000.0, 7000.0)),
)


@dataclass(frozen=True)
class DemoEvent:
    """An event of class `class_index`, present from `onset` to `offset` (whole seconds); its
    modality says whether the clip sounds it, shows it, or both."""

    class_index: int
    modality: str  # one of protocol.STREAMS
    onset: int
    offset: int

    @property
    def audible(self) -> bool:
        return self.modality in ("audio", "audio_visual")

    @property
    def visible(self) -> bool:
        return self.modality in ("visual", "audio_visual")


@dataclass(frozen=True)
class DemoClip:
    """One planned clip: its LLP filename, split, events, and the seed of its rendering noise."""

    filename: str
    split: str
    events: tuple[DemoEvent, ...]
    render_seed: tuple[int, int]


def class_names() -> tuple[str, ...]:
    return tuple(c.name for c in CLASSES)


def _round(seed: int, split: str, number: int) -> list[list[tuple[int, str]]]:
    """The (class, modality) pairs of one round of clips of a split: every class with every entry of
    MODALITY_CYCLE, dealt out in a seeded random order (so that classes co-occur in varied sets)
    such that no clip holds a class twice and the round's first two clips hold every class."""
    pairs = [(c, m) for c in range(len(CLASSES)) for m in MODALITY_CYCLE]
    ends = np.cumsum(EVENTS_CYCLE)
    rng = np.random.default_rng([seed, SPLITS.index(split), number, 1])
    while True:
        order = [pairs[k] for k in rng.permutation(len(pairs))]
        clips = [order[end - size:end] for size, end in zip(EVENTS_CYCLE, ends)]
        distinct = all(len({c for c, _ in clip}) == len(clip) for clip in clips)
        if distinct and len({c for clip in clips[:2] for c, _ in clip}) == len(CLASSES):
            return clips


def _place(pairs: list[tuple[int, str]], rng: np.random.Generator) -> tuple[DemoEvent, ...]:
    """Whole-second spans of MIN_EVENT_S to DURATION_S seconds, sorted by onset."""
    events = []
    for class_index, modality in pairs:
        length = int(rng.integers(MIN_EVENT_S, DURATION_S + 1))
        onset = int(rng.integers(0, DURATION_S - length + 1))
        events.append(DemoEvent(class_index, modality, onset, onset + length))
    return tuple(sorted(events, key=lambda e: (e.onset, e.class_index)))


def _video_id(seed: int, index: int) -> str:
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    rng = np.random.default_rng([seed, index, 0])
    return "demo" + "".join(rng.choice(alphabet, 7))


def plan_clips(n_videos: int = DEFAULT_N_VIDEOS, seed: int = 0) -> list[DemoClip]:
    """The clips of the demo data set, in order; clip i depends only on (seed, i)."""
    if n_videos < MIN_VIDEOS:
        raise ValueError(f"the demo needs at least {MIN_VIDEOS} videos (one per split), got {n_videos}")
    rounds: dict[tuple[str, int], list[list[tuple[int, str]]]] = {}
    count = dict.fromkeys(SPLITS, 0)
    clips, seen = [], set()
    for index in range(n_videos):
        split = SPLIT_CYCLE[index % len(SPLIT_CYCLE)]
        number, position = divmod(count[split], len(EVENTS_CYCLE))
        if (split, number) not in rounds:
            rounds[split, number] = _round(seed, split, number)
        pairs = rounds[split, number][position]
        count[split] += 1
        events = _place(pairs, np.random.default_rng([seed, index, 2]))
        vid = _video_id(seed, index)
        if vid in seen:
            raise RuntimeError(f"demo video id {vid} drawn twice (seed {seed}); use another seed")
        seen.add(vid)
        clips.append(DemoClip(f"{vid}_0_{DURATION_S}", split, events, (seed, index)))
    return clips


# --- rendering ---------------------------------------------------------------------------------

# Square waves: sharp edges at a fixed spatial frequency excite random convolution filters far more
# than smooth gradients do.
_SQUARE_LEVELS = np.where(np.arange(256) < 128, 255, 0).astype(np.uint8)


def _pattern(kind: str, period: float, frames: np.ndarray, phase: float) -> np.ndarray:
    """Levels 0..255 of a pattern drifting half a period per second (clearly moving, never aliased
    at 25 fps), broadcastable to (len(frames), HEIGHT, WIDTH) uint8.

    Phases are computed in 1/256 of a period as integers and mapped through a square-wave table,
    which keeps the full-frame patterns cheap to draw.
    """
    y = np.arange(HEIGHT)[None, :, None]
    x = np.arange(WIDTH)[None, None, :]
    drift = np.rint((frames / FPS * 0.5 + phase) * 256).astype(np.int64)[:, None, None]
    if kind == "hstripes":
        return _SQUARE_LEVELS[(np.rint(y * 256 / period).astype(np.int64) - drift) & 255]
    if kind == "vstripes":
        return _SQUARE_LEVELS[(np.rint(x * 256 / period).astype(np.int64) - drift) & 255]
    if kind == "rings":
        r = (np.rint(np.hypot(x - WIDTH / 2, y - HEIGHT / 2) * 256 / period).astype(np.int64) & 255)
        return _SQUARE_LEVELS[r.astype(np.uint8) - (drift & 255).astype(np.uint8)]  # uint8 wraps mod 256
    if kind == "checks":
        column = (((x * 256 / period).astype(np.int64) + drift) & 255) >= 128
        row = (((y * 256 / period).astype(np.int64) + drift) & 255) >= 128
        return ((column ^ row) * np.uint8(255)).astype(np.uint8)
    raise ValueError(f"unknown pattern {kind!r}")


def visual_layout(clip: DemoClip, second: int) -> list[tuple[DemoEvent, int, int]]:
    """The events visible during `second` and the rows [top, bottom) each one fills: the whole
    frame for one event, horizontal bands (in class order) for several."""
    shown = sorted((e for e in clip.events if e.visible and e.onset <= second < e.offset),
                   key=lambda e: e.class_index)
    edges = np.linspace(0, HEIGHT, len(shown) + 1).astype(int)
    return [(e, int(edges[j]), int(edges[j + 1])) for j, e in enumerate(shown)]


def render_video(clip: DemoClip) -> np.ndarray:
    """All frames of `clip`, (DURATION_S * FPS, HEIGHT, WIDTH, 3) uint8 RGB."""
    rng = np.random.default_rng([*clip.render_seed, 3])
    phase = {e.class_index: float(rng.uniform()) for e in clip.events}
    frames = np.empty((DURATION_S * FPS, HEIGHT, WIDTH, 3), np.uint8)
    frames[:] = BACKGROUND_RGB
    ramp = np.linspace(0, 1, 256)[:, None]
    for second in range(DURATION_S):
        span = np.arange(second * FPS, (second + 1) * FPS)
        for event, top, bottom in visual_layout(clip, second):
            cls = CLASSES[event.class_index]
            dark, bright = np.array(cls.dark_rgb), np.array(cls.bright_rgb)
            colours = np.rint(dark + ramp * (bright - dark)).astype(np.uint8)
            levels = _pattern(cls.pattern, cls.period_px, span, phase[event.class_index])
            if levels.shape[1] == HEIGHT:  # else constant down the columns: colour one row only
                levels = levels[:, top:bottom]
            frames[span[0]:span[-1] + 1, top:bottom] = colours[levels]
    return frames


def _signature(cls: DemoClass, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of the class's sound, as loud as a unit sine (RMS 1/sqrt 2)."""
    t = np.arange(n) / SAMPLE_RATE
    low, high = cls.audio_hz
    if cls.audio == "tone":
        sound = np.sin(2 * np.pi * low * t)
    elif cls.audio == "beeps":  # 4 beeps a second, soft-edged
        sound = np.clip(3 * np.sin(2 * np.pi * 4 * t), 0, 1) * np.sin(2 * np.pi * low * t)
    elif cls.audio == "chirp":  # upward sweep low -> high, twice a second
        sound = np.sin(2 * np.pi * np.cumsum(low + (high - low) * ((2 * t) % 1)) / SAMPLE_RATE)
    elif cls.audio == "hiss":  # white noise band-limited to [low, high] in the frequency domain
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spectrum[(freqs < low) | (freqs > high)] = 0
        sound = np.fft.irfft(spectrum, n)
    else:
        raise ValueError(f"unknown audio signature {cls.audio!r}")
    return sound / (np.sqrt(2) * np.sqrt(np.mean(sound**2)))


def render_audio(clip: DemoClip) -> np.ndarray:
    """The clip's sound, (DURATION_S * SAMPLE_RATE, 2) float32 in [-1, 1], both channels alike
    but for independent noise floors."""
    rng = np.random.default_rng([*clip.render_seed, 4])
    n = DURATION_S * SAMPLE_RATE
    mono = np.zeros(n)
    fade = int(FADE_S * SAMPLE_RATE)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, fade))
    for event in clip.events:
        if not event.audible:
            continue
        first, last = event.onset * SAMPLE_RATE, event.offset * SAMPLE_RATE
        sound = _signature(CLASSES[event.class_index], last - first, rng)
        sound[:fade] *= ramp
        sound[-fade:] *= ramp[::-1]
        mono[first:last] += EVENT_AMPLITUDE * sound
    noise = NOISE_FLOOR * rng.standard_normal((n, 2))
    return np.clip(mono[:, None] + noise, -1, 1).astype(np.float32)


def _wav_bytes(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(audio.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.rint(audio * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def write_clip(clip: DemoClip, path: str | Path) -> None:
    """Render `clip` and encode it to `path` (H.264 + AAC mp4), atomically; an existing file with
    the same bytes is kept as it is.

    Frames go to ffmpeg through a pipe, the sound through a temporary WAV. One encoder thread and
    bit-exact flags make the bytes reproducible with a given ffmpeg build.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = render_video(clip)
    with (tempfile.TemporaryDirectory(prefix=f".{path.stem}.", dir=path.parent) as scratch,
          atomic_path(path, ".mp4", keep_identical=True) as tmp_mp4):
        wav_path = Path(scratch) / "audio.wav"
        wav_path.write_bytes(_wav_bytes(render_audio(clip)))
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-framerate", str(FPS),
            "-i", "pipe:0", "-i", input_arg(wav_path), "-map", "0:v", "-map", "1:a",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-threads", "1",
            "-c:a", "aac", "-aac_coder", "fast", "-aac_pns", "0", "-b:a", "128k",
            "-ar", str(SAMPLE_RATE), "-ac", "2",
            "-fflags", "+bitexact", "-flags", "+bitexact", "-map_metadata", "-1",
            "-movflags", "+faststart", input_arg(tmp_mp4),
        ]
        proc = subprocess.run(cmd, input=frames.tobytes(), capture_output=True)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            raise_if_disk_full(message, path)
            raise RuntimeError(f"ffmpeg failed writing {path}: {message}")


# --- annotation files --------------------------------------------------------------------------

def _write_text(path: Path, text: str) -> None:
    with atomic_path(path, keep_identical=True) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _tsv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_annotations(clips: list[DemoClip], out_dir: str | Path) -> None:
    """classes.txt, the weak splits and the dense audio / visual files (every clip) of `clips`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = class_names()
    _write_text(out / "classes.txt", "".join(f"{n}\n" for n in names))
    for split in SPLITS:
        rows = [["filename", "event_labels"]]
        for clip in clips:
            if clip.split == split:
                present = sorted({e.class_index for e in clip.events})
                rows.append([clip.filename, ",".join(names[c] for c in present)])
        _write_text(out / f"{split}.csv", _tsv(rows))
    for modality, keep in (("audio", DemoEvent.audible), ("visual", DemoEvent.visible)):
        rows = [["filename", "onset", "offset", "event_labels"]]
        for clip in clips:
            rows += [[clip.filename, str(e.onset), str(e.offset), names[e.class_index]]
                     for e in clip.events if keep.fget(e)]
        _write_text(out / f"eval_{modality}.csv", _tsv(rows))


def write_dense_annotations(clips: list[DemoClip], path: str | Path) -> None:
    """`clips` as a dense-label data set in UnAV-100's form (the pretraining set of UWAV's generator):
    subsets train and validation (the demo's train and val clips; test clips are left out) and their
    audio-visual events, those both heard and seen, by class name and label_id. A clip without such
    an event is left out too (UnAV-100 has none; the released loader cannot read one)."""
    names = class_names()
    subset = {"train": "train", "val": "validation"}
    database = {}
    for clip in clips:
        events = [{"segment": [float(e.onset), float(e.offset)], "label": names[e.class_index],
                   "label_id": e.class_index} for e in clip.events if e.audible and e.visible]
        if clip.split in subset and events:
            database[video_id(clip.filename)] = {"subset": subset[clip.split], "duration": float(DURATION_S),
                                                 "annotations": events}
    _write_text(Path(path), json.dumps({"database": database}, indent=1) + "\n")


def write_clips(clips: list[DemoClip], folder: str | Path, workers: int = 2) -> None:
    """Render clips to `folder`/<filename>.mp4, `workers` at a time."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(lambda c: write_clip(c, folder / f"{c.filename}.mp4"), clips))


def write_shard(indices: list[int], seed: int, folder: str | Path, workers: int = 2) -> None:
    """Render the demo clips of the given plan indices (clip i depends only on (seed, i))."""
    clips = plan_clips(max(MIN_VIDEOS, max(indices) + 1), seed)
    write_clips([clips[i] for i in indices], folder, workers)


def make_demo(out_dir: str | Path, n_videos: int = DEFAULT_N_VIDEOS, seed: int = 0,
              workers: int = 2) -> list[DemoClip]:
    """Write the whole demo data set under `out_dir` (videos/<filename>.mp4 and the LLP files)."""
    clips = plan_clips(n_videos, seed)
    write_clips(clips, Path(out_dir) / "videos", workers)
    write_annotations(clips, out_dir)
    return clips
