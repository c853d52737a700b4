"""The offline viewer (`avvp view`, and `avvp parse --out DIR` writing DIR/index.html): its scores
agree with the evaluation, its data cannot become markup, and in real headless Chromium (over the
DevTools protocol, from file://) the page loads with no console error and no request outside its
folder, plays a real mp4, keeps the playhead on the video's time, seeks on a click on an event,
answers the keys, shows a name holding HTML as text, and lists 1,200 test videos in under 2 s.
A screenshot at 1400x900 is saved (and kept in $AVVP_VIEWER_SHOTS when set, to look at)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from browser import CHROMIUM, WINDOW, Chromium
from media_helpers import make_clip

from avvp.cli import main
from avvp.evaluation.annotations import Vocabulary, read_dense
from avvp.evaluation.scores import score, segment_decisions
from avvp.parsing.parse import parse_videos
from avvp.parsing.viewer import write_viewer
from avvp.parsing.viewer.data import page_data, video_score
from avvp.parsing.viewer.page import embedded_json

CLASSES = ("Speech", "Dog_barking")
MARKUP = "<img src=x onerror=alert(1)>"
SECONDS = 8.0
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (Debian package `chromium`)")


class StepModel:
    """Stands in for the extractors and HAN: Speech heard in seconds 2-5 and seen in 3-6, a dog seen
    in 0-2, whatever the video shows; its description says the extractors ran on random weights."""

    classes = CLASSES

    def __call__(self, video, work_dir):
        frame = np.full((video.n_windows, 10, 2, len(CLASSES)), 0.1, np.float32)
        frame[0, 2:5, 0, 0] = 0.9
        frame[0, 3:6, 1, 0] = 0.8
        frame[0, 0:2, 1, 1] = 0.7
        return frame.max(axis=1).max(axis=1), frame, {}

    def describe(self):
        return {"model": "HAN", "checkpoint": "runs/han/model.pt", "checkpoint_sha256": "ab" * 32,
                "feature_weights": {"vggish": {"weights": "random", "seed": 0}}, "weights_mismatch": []}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parse output folder with its videos inside it: a real 8-second mp4 with ground truth, and
    a copy named with HTML markup (no ground truth); the page written by `avvp view`."""
    folder = tmp_path_factory.mktemp("viewer") / "parsed"
    clips = folder / "clips"
    clips.mkdir(parents=True)
    street = make_clip(clips / "street_0_8.mp4", seconds=SECONDS, size=(320, 240))
    shutil.copy(street, clips / f"{MARKUP}.mp4")
    audio, visual = folder.parent / "audio.csv", folder.parent / "visual.csv"
    audio.write_text("filename\tonset\toffset\tevent_labels\nstreet_0_8\t1\t5\tSpeech\n", encoding="utf-8")
    visual.write_text("filename\tonset\toffset\tevent_labels\nstreet_0_8\t3\t6\tSpeech\n", encoding="utf-8")
    vocab = Vocabulary(CLASSES)
    parse_videos([street, clips / f"{MARKUP}.mp4"], StepModel(), folder, audio_truth=read_dense(audio, vocab),
                 visual_truth=read_dense(visual, vocab))
    assert main(["view", str(folder)]) == 0
    return folder


# --- data and page, without a browser --------------------------------------------------------------

def test_per_video_scores_average_to_the_evaluations_segment_type_at_av() -> None:
    """The list's F is the evaluation's segment-level Type@AV of each video alone: their mean over
    videos is the protocol's number for the split."""
    rng = np.random.default_rng(0)
    n, c = 30, 4
    global_prob, frame_prob = rng.random((n, c)), rng.random((n, 10, 2, c))
    gt_a, gt_v = rng.random((2, n, c, 10)) > 0.6
    bodies = []
    for i in range(n):
        truth = [{"class": str(k), "modality": m, "onset": float(s), "offset": float(s + 1)}
                 for m, gt in (("audio", gt_a), ("visual", gt_v)) for k in range(c) for s in np.flatnonzero(gt[i, k])]
        bodies.append({"classes": [str(k) for k in range(c)], "frame_prob": frame_prob[i].tolist(),
                       "global_prob": [global_prob[i].tolist()], "thresholds": {"frame": 0.5, "global": 0.5},
                       "ground_truth": truth})
    pred_a, pred_v = segment_decisions(global_prob, frame_prob)
    expected = score(pred_a, pred_v, gt_a, gt_v).ten_numbers()["segment_level"]["type_at_av"]
    assert np.mean([video_score(b)["f"] for b in bodies]) == pytest.approx(expected, abs=0.01)
    errors = (pred_a ^ gt_a).sum() + (pred_v ^ gt_v).sum()
    assert sum(video_score(b)["errors"] for b in bodies) == errors
    assert video_score({**bodies[0], "ground_truth": None}) is None


def test_embedded_json_cannot_end_its_element() -> None:
    text = embedded_json({"name": "</script><script>alert(1)</script> & \u2028"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script> & \u2028"}


def test_page_links_videos_and_holds_no_markup_from_names(parsed: Path) -> None:
    page = (parsed / "index.html").read_text(encoding="utf-8")
    assert MARKUP not in page and "base64,AAAA" not in page  # names escaped; videos never embedded
    data = page_data(parsed)
    by_name = {v["name"]: v for v in data["videos"]}
    assert set(by_name) == {"street_0_8.mp4", f"{MARKUP}.mp4"}
    assert by_name["street_0_8.mp4"]["src"] == "clips/street_0_8.mp4"
    assert unquote(by_name[f"{MARKUP}.mp4"]["src"]) == f"clips/{MARKUP}.mp4"
    assert by_name["street_0_8.mp4"]["score"] is not None and by_name[f"{MARKUP}.mp4"]["score"] is None
    assert data["scored"] and len(data["setups"]) == 1 and "RANDOM" in data["setups"][0]["warning"]


def test_parse_writes_the_page_and_view_rebuilds_it(parsed: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """`avvp parse --out DIR` ends with DIR/index.html (named on stderr); `avvp view DIR` prints its path."""
    monkeypatch.setattr("avvp.parsing.parse.HANWindowModel", lambda *args, **kwargs: StepModel())
    out = tmp_path / "out"
    assert main(["parse", str(parsed / "clips/street_0_8.mp4"), "--checkpoint", str(tmp_path / "model.pt"),
                 "--out", str(out), "--no-progress"]) == 0
    assert f"viewer: {out / 'index.html'}" in capsys.readouterr().err
    body = json.loads((out / "street_0_8.json").read_text(encoding="utf-8"))
    assert body["video_file"] == str((parsed / "clips/street_0_8.mp4").resolve())
    (out / "index.html").unlink()
    assert main(["view", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html") and (out / "index.html").is_file()
    assert main(["view", str(tmp_path / "empty")]) == 1  # no such folder: one line, exit 1


# --- in the browser -----------------------------------------------------------------------------

# Record alert calls instead of opening dialogs: the markup test asserts none happened.
NO_DIALOGS = "window.__alerts = []; window.alert = m => window.__alerts.push(String(m));"
READY = "document.body && document.body.dataset.ready === 'true'"
PLAYHEAD_JS = """(() => {
  const ticks = [...document.querySelectorAll('.timeline line.tick')];
  const box = el => el.getBoundingClientRect();
  const first = ticks[0], last = ticks[ticks.length - 1];
  const head = box(document.querySelector('.timeline .playhead'));
  return {t0: +first.dataset.t, x0: box(first).left + box(first).width / 2,
          t1: +last.dataset.t, x1: box(last).left + box(last).width / 2,
          head: head.left + head.width / 2, time: document.querySelector('video').currentTime};
})()"""
BAR_JS = """(() => {
  const bar = [...document.querySelectorAll('.timeline rect.bar.predicted')].find(b => +b.dataset.onset >= 2);
  bar.scrollIntoView({block: 'center'});
  const r = bar.getBoundingClientRect();
  return {onset: +bar.dataset.onset, x: r.left + Math.min(8, r.width / 2), y: r.top + r.height / 2};
})()"""
SEEK_JS = """new Promise(done => { const v = document.querySelector('video');
  v.addEventListener('seeked', () => done(v.currentTime), {once: true}); v.currentTime = TIME; })"""
CURRENT = "document.querySelector('.facts h2').textContent"


def shoot(browser: Chromium, tmp_path: Path, name: str) -> Path:
    """A 1400x900 screenshot in the test's folder, copied to $AVVP_VIEWER_SHOTS when set."""
    shot = browser.screenshot(tmp_path / name)
    keep = os.environ.get("AVVP_VIEWER_SHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / name)
    return shot


def open_page(browser: Chromium, page: Path) -> None:
    browser.watch()
    browser.before_load(NO_DIALOGS)
    browser.open(page.as_uri())
    browser.wait_for(READY)


@needs_chromium
def test_the_page_plays_follows_seeks_and_answers_keys(parsed: Path, tmp_path: Path) -> None:
    from PIL import Image

    with Chromium(CHROMIUM, *WINDOW) as browser:
        open_page(browser, parsed / "index.html")
        assert browser.evaluate(CURRENT) == "street_0_8.mp4"  # the scored video comes first
        browser.wait_for("document.querySelector('video').readyState >= 2")
        browser.press(" ")  # plays: its time advances
        browser.wait_for("document.querySelector('video').currentTime > 0.5", timeout=10)
        browser.press(" ")
        assert browser.wait_for("document.querySelector('video').paused")

        assert browser.evaluate(SEEK_JS.replace("TIME", "3.5")) == pytest.approx(3.5)
        at = browser.evaluate(PLAYHEAD_JS)
        expected = at["x0"] + (at["time"] - at["t0"]) / (at["t1"] - at["t0"]) * (at["x1"] - at["x0"])
        assert at["time"] == pytest.approx(3.5) and abs(at["head"] - expected) <= 2, at

        bar = browser.evaluate(BAR_JS)
        browser.click(bar["x"], bar["y"])
        time = browser.wait_for(f"(t => Math.abs(t - {bar['onset']}) < 0.1 && t + 1e-6)"
                                "(document.querySelector('video').currentTime)")
        assert time == pytest.approx(bar["onset"], abs=0.1)

        browser.press("ArrowRight")
        assert browser.wait_for("document.querySelector('video').currentTime") == pytest.approx(bar["onset"] + 1, abs=0.1)
        browser.press("ArrowLeft")
        browser.press("ArrowLeft")
        assert browser.wait_for("document.querySelector('video').currentTime + 1") == pytest.approx(bar["onset"], abs=0.1)

        browser.evaluate("document.querySelector('.curve-controls button').click()")  # probabilities shown
        browser.evaluate(SEEK_JS.replace("TIME", "3.5"))
        browser.evaluate("new Promise(r => setTimeout(r, 300))")
        shot = shoot(browser, tmp_path, "viewer.png")
        browser.press("ArrowDown")
        assert browser.evaluate(CURRENT) == f"{MARKUP}.mp4"
        browser.press("ArrowUp")
        assert browser.evaluate(CURRENT) == "street_0_8.mp4"

        assert browser.problems() == []
        folder = parsed.as_uri() + "/"
        outside = [url for url in browser.requested() if not url.startswith(("data:", folder))]
        assert outside == [] and any(url.endswith("/clips/street_0_8.mp4") for url in browser.requested())
    with Image.open(shot) as image:
        assert image.size == WINDOW


@needs_chromium
def test_a_name_with_markup_is_shown_as_text(parsed: Path) -> None:
    with Chromium(CHROMIUM, *WINDOW) as browser:
        open_page(browser, parsed / "index.html")
        names = browser.evaluate("[...document.querySelectorAll('table.videos tbody td:first-child')]"
                                 ".map(td => td.textContent)")
        assert f"{MARKUP}.mp4" in names
        browser.evaluate("[...document.querySelectorAll('table.videos tbody tr')].find(r => "
                         f"r.textContent.includes({json.dumps(MARKUP)})).click()")
        assert browser.evaluate(CURRENT) == f"{MARKUP}.mp4"
        browser.wait_for("document.querySelector('video').readyState >= 1")
        assert browser.evaluate("document.querySelectorAll('img').length") == 0
        assert browser.evaluate("window.__alerts") == []
        assert browser.problems() == []


def write_test_split(folder: Path, n: int, seed: int = 0) -> None:
    """`n` parse outputs of 10-second LLP-like clips (25 classes, random probabilities, random ground
    truth), written by the parse's own writer; no video files."""
    from avvp.evaluation.events import Event
    from avvp.parsing.parse import ParsedVideo, _write_outputs, parse_windows

    rng = np.random.default_rng(seed)
    classes = [f"class_{k}" for k in range(25)]
    settings = {"model": {"model": "HAN"}, "thresholds": {"frame": 0.5, "global": 0.5}}
    for i in range(n):
        name = f"vid{i:04d}_{i % 50}_{i % 50 + 10}"
        global_prob, frame_prob = rng.random((1, 25)) ** 3, rng.random((1, 10, 2, 25)) ** 2
        events = parse_windows(global_prob, frame_prob, 10.0, classes)
        truth = [Event(classes[k], m, float(s), float(s + rng.integers(1, 5)))
                 for k in rng.choice(25, 2, replace=False) for m in ("audio", "visual") for s in [rng.integers(0, 6)]]
        video = ParsedVideo(Path(f"clips/{name}.mp4"), 10.0, True, 1, events, truth, global_prob, frame_prob, None,
                            folder / f"{name}.json", folder / f"{name}.csv", ())
        _write_outputs(video, classes, settings, {})


@needs_chromium
def test_1200_test_videos_are_listed_in_under_2_s(tmp_path: Path) -> None:
    """LLP's test split size: the page is under 5 MB and lists every video in under 2 s, worst first."""
    folder = tmp_path / "test_split"
    folder.mkdir()
    write_test_split(folder, 1200)
    page = write_viewer(folder)
    assert page.stat().st_size < 5_000_000
    with Chromium(CHROMIUM, *WINDOW) as browser:
        open_page(browser, page)
        listed = browser.evaluate("({ms: window.avvpViewer.listedMs, rows: document.querySelectorAll("
                                  "'table.videos tbody tr').length, f: [...document.querySelectorAll("
                                  "'table.videos tbody tr td:nth-child(4)')].map(td => +td.textContent)})")
        absent = browser.evaluate("[getComputedStyle(document.querySelector('video')).display, "
                                  "document.querySelector('.player .absent').textContent]")
        browser.evaluate("document.querySelector('th[data-key=name] button').click()")  # sort by name
        by_name = browser.evaluate("[...document.querySelectorAll('table.videos tbody tr td:first-child')]"
                                   ".map(td => td.textContent)")
        assert browser.problems() == []
    print(f"1,200 videos: {page.stat().st_size / 1e6:.2f} MB, listed {listed['ms']:.0f} ms after navigation")
    assert listed["rows"] == 1200 and listed["ms"] < 2000
    assert listed["f"] == sorted(listed["f"])  # worst first
    assert by_name == sorted(by_name) and len(by_name) == 1200
    assert absent[0] == "none" and absent[1].startswith("video file not found: ")  # no clips: said, not shown
