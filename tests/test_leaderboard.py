"""The leaderboard: its table model from metrics.json bodies (two protocols, one and three seeds,
methods with and without a paper, files written before protocols), its renderers, `avvp
leaderboard`, the published numbers against docs/PROTOCOL.md, and the report's table at a
1400x900 window in headless Chromium (no horizontal scrolling, every column in view)."""
from __future__ import annotations

import html
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Mapping
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pytest

from browser import CHROMIUM, WINDOW, Chromium, inside

from avvp.base.protocol import LEVELS, SCORES
from avvp.reporting.leaderboard import (
    COLUMNS,
    MISSING,
    build_leaderboard,
    leaderboard_html,
    leaderboard_text,
    published_by_method,
    render,
)
from avvp.reporting.report import metrics_tables_html, summary_html

REPO = Path(__file__).resolve().parents[1]
LABELS = {"han": "HAN", "jomold": "JoMoLD", "valor": "VALOR", "valor_pp": "VALOR++", "mine": "my method"}
PROTOCOLS = {"avvp": "avvp (the seed's rule for every method, 2024 annotations)",
             "as_published": "as published (each method under its paper's rule)"}


def seed_scores(rng: random.Random) -> dict[str, dict[str, float]]:
    return {level: {key: round(rng.uniform(30, 70), 3) for key in SCORES} for level in LEVELS}


def scored(seeds: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict:
    """A method's scores as metrics.json holds them: seeds, and mean and sd with several."""
    entry: dict = {"n_seeds": len(seeds), "seeds": dict(seeds)}
    if len(seeds) > 1:
        for name, stat in (("mean", statistics.mean), ("sd", statistics.stdev)):
            entry[name] = {lv: {k: stat(s[lv][k] for s in seeds.values()) for k in SCORES} for lv in LEVELS}
    return entry


def metrics_body(n_seeds: Mapping[str, int], protocols: bool = True, seed: int = 0) -> dict:
    """A metrics.json body with the given methods (id -> number of seeds); with `protocols`, the
    two protocols of the evaluation (`by_protocol`, the first protocol's scores also as the
    method's own, as metrics.json keeps them)."""
    rng = random.Random(seed)
    methods = {}
    for method, n in n_seeds.items():
        by_protocol = {p: scored({str(s): seed_scores(rng) for s in range(1, n + 1)}) for p in PROTOCOLS}
        methods[method] = {"label": LABELS[method], "final_stage": method, "features": ["vggish"],
                           **by_protocol["avvp"]}
        if protocols:
            methods[method]["by_protocol"] = by_protocol
    body = {"format": "avvp-metrics/2", "dataset": {"name": "LLP", "mode": "features"}, "split": "test",
            "random_weights": [], "coverage": {"test": {"total": 1200, "used": 1200, "scored": 1200}},
            "methods": methods}
    if protocols:
        rules = {"avvp": lambda m: "avvp", "as_published": lambda m: f"{m}_as_published"}
        body["protocols"] = {
            p: {"title": title, "rules": {m: {"name": rules[p](m), "gate": "fused >= 0.5", "annotations": "2024",
                                              "source": "docs/PROTOCOL.md"} for m in n_seeds}}
            for p, title in PROTOCOLS.items()}
    return body


NOTE = ("seeds 1, 2, 3, jomold_ratios: its noise ratios drop every visual label (ratio 1 for all 4 labelled "
        "classes): the model is trained without a single visual label, so its visual and audio-visual scores "
        "say nothing of the method (a 0 there is its rule at work, not a fault)")


def test_partial_data_and_a_methods_recorded_note_are_said_with_the_numbers(tmp_path: Path) -> None:
    """A split not whole gives the PARTIAL DATA banner before any number; a pass's note (JoMoLD's
    ratios dropping every visual label, read from its folder) is listed under the table."""
    from avvp.methods.stages import pass_notes

    folders = {}
    for name, visual in (("all", [1.0, 1.0]), ("some", [1.0, 0.5])):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "ratios.json").write_text(json.dumps({
            "classes": ["a", "b"], "audio": [0.1, 0.0], "visual": visual, "labelled": [3, 2],
            "audio_mean": [0.5, 0.5], "visual_mean": [0.5, 0.5]}))
    notes = pass_notes([["jomold", "1", "jomold_ratios", str(folders["all"])],
                        ["jomold", "2", "jomold_ratios", str(folders["all"])],
                        ["jomold", "3", "jomold_ratios", str(folders["some"])]])
    assert list(notes) == ["jomold"] and len(notes["jomold"]) == 1
    assert notes["jomold"][0].startswith("seeds 1, 2, jomold_ratios: its noise ratios drop every visual label "
                                         "(ratio 1 for all 2 labelled classes)")
    body = metrics_body({"han": 1, "jomold": 1, "mine": 1})
    body["coverage"] = {"train": {"total": 10000, "used": 200}, "test": {"total": 1200, "used": 60, "scored": 60}}
    body["methods"]["jomold"]["notes"] = body["methods"]["mine"]["notes"] = notes["jomold"]  # said once for both
    text = render(build_leaderboard(body, published_by_method()), "text")
    lines = text.splitlines()
    assert lines[2] == ("WARNING: PARTIAL DATA: train 200 of 10000 videos (2.0 %), test 60 of 1200 videos (5.0 %); "
                        "the published numbers come from whole splits, so these are not comparable with them")
    assert lines[-1] == f"note: JoMoLD, my method: {notes['jomold'][0]}" and text.count("note: ") == 1
    assert "PARTIAL DATA" in render(build_leaderboard(body, None), "html").split("<table")[0]


def ten(scores: Mapping[str, Mapping[str, float]]) -> list[float]:
    return [scores[lv][k] for lv, k in COLUMNS]


# --- the table model -----------------------------------------------------------------------------

def test_two_protocols_give_a_block_each_with_means_single_seeds_and_papers() -> None:
    body = metrics_body({"han": 3, "valor_pp": 1, "mine": 3})
    board = build_leaderboard(body, published_by_method())
    assert [b.protocol for b in board.blocks] == list(PROTOCOLS)
    assert [b.title for b in board.blocks] == list(PROTOCOLS.values())
    for block in board.blocks:
        assert [r.method for r in block.rows] == ["han", "valor_pp", "mine"]
        assert [r.label for r in block.rows] == ["HAN", "VALOR++", "my method"]
        assert [r.n_seeds for r in block.rows] == [3, 1, 3]
    late = board.blocks[1]
    assert [r.rule for r in late.rows] == ["han_as_published", "valor_pp_as_published", "mine_as_published"]
    assert {r.rule for r in board.blocks[0].rows} == {"avvp"}

    han, valor_pp, mine = late.rows
    entry = body["methods"]["han"]["by_protocol"]["as_published"]
    assert [s.text() for s in han.scores] == [f"{m:.1f} ± {s:.1f}" for m, s in
                                              zip(ten(entry["mean"]), ten(entry["sd"]))]
    single = body["methods"]["valor_pp"]["by_protocol"]["as_published"]["seeds"]["1"]
    assert [s.text() for s in valor_pp.scores] == [f"{v:.1f}" for v in ten(single)]
    assert han.published.values == tuple(ten(published_by_method()["han"]))
    assert valor_pp.published.texts() == (MISSING,) * 3 + ("66.2", MISSING) + (MISSING,) * 3 + ("60.4", MISSING)
    assert "Table A6" in valor_pp.published.source()
    assert mine.published is None
    assert board.with_published and board.n_videos == 1200 and board.warning is None
    assert list(board.sources()) == ["HAN", "VALOR++"]


def test_a_file_written_before_protocols_gives_one_avvp_block() -> None:
    body = metrics_body({"jomold": 3, "mine": 1}, protocols=False)
    board = build_leaderboard(body)
    assert [(b.protocol, len(b.rows)) for b in board.blocks] == [("avvp", 2)]
    jomold, mine = board.blocks[0].rows
    assert jomold.rule is None and jomold.published is None and not board.with_published
    assert [s.value for s in jomold.scores] == ten(body["methods"]["jomold"]["mean"])
    assert [s.value for s in mine.scores] == ten(body["methods"]["mine"]["seeds"]["1"])
    assert all(s.sd is None for s in mine.scores)


def test_bodies_that_are_not_metrics_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="no `methods`"):
        build_leaderboard({"format": "x"})
    body = metrics_body({"han": 1})
    del body["methods"]["han"]["by_protocol"]["as_published"]
    with pytest.raises(ValueError, match="'han' has no scores under protocol 'as_published'"):
        build_leaderboard(body)
    body = metrics_body({"han": 2}, protocols=False)
    del body["methods"]["han"]["mean"]
    with pytest.raises(ValueError, match="2 seeds but no mean"):
        build_leaderboard(body)


# Docs/PROTOCOL.md §7 of the task's protocol, verbatim: the published Type@AV, segment / event.
PROTOCOL_TYPE_AT_AV = """HAN 54.0 / 47.7, MA-MMIL 58.9 / 53.0, JoMoLD 60.8 / 54.5, VALOR 62.0 / 56.7,
CoLeaF 62.6 / 57.9, CMPAE 63.3 / 57.4, UWAV 65.9 / 60.9. With CLIP/CLAP features: VALOR++ 66.2 / 60.4"""


def test_published_numbers_are_those_of_the_protocol() -> None:
    published = published_by_method()
    text = (REPO / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")
    for level in ("segment", "event"):  # HAN's ten numbers, the table of §5
        row = re.search(rf"^\| {level} \|(.*)\|$", text, re.M).group(1)
        assert [float(x) for x in row.split("|")] == [published["han"][f"{level}_level"][k] for k in SCORES]
    quoted = dict((name, (float(seg), float(evt))) for name, seg, evt in
                  re.findall(r"([\w+-]+) (\d+\.\d) / (\d+\.\d)", PROTOCOL_TYPE_AT_AV))
    names = {"han": "HAN", "ma_mmil": "MA-MMIL", "jomold": "JoMoLD", "valor": "VALOR", "coleaf": "CoLeaF",
             "cmpae": "CMPAE", "uwav": "UWAV", "valor_pp": "VALOR++"}
    assert set(published) == set(names)
    for method, entry in published.items():
        assert (entry["segment_level"]["type_at_av"], entry["event_level"]["type_at_av"]) == quoted[names[method]]
        assert entry["paper"].startswith(names[method] + " (") and entry["table"]
        if method != "han":
            assert set(entry["segment_level"]) == set(entry["event_level"]) == {"type_at_av"}


# --- renderers and the command -------------------------------------------------------------------

def test_text_keeps_to_a_terminal_and_markdown_to_one_table_per_protocol() -> None:
    board = build_leaderboard(metrics_body({"han": 3, "valor": 1, "mine": 1}), published_by_method())
    text = leaderboard_text(board)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 120
    for protocol, title in PROTOCOLS.items():
        assert f"{protocol}: {title}" in lines
    han = next(i for i, line in enumerate(lines) if line.startswith("HAN "))
    assert lines[han + 1].split() == ["event", *lines[han + 1].split()[1:]]
    assert lines[han + 2].split()[:3] == ["published", "segment", "60.1"]
    assert "published HAN: HAN (Tian, Li, Xu, ECCV 2020), LLP test split, standard features" in lines

    markdown = render(board, "markdown").splitlines()
    heads = [line for line in markdown if line.startswith("| method |")]
    assert len(heads) == 2 and all(h.count("|") == 2 + 20 + 1 for h in heads)
    with pytest.raises(ValueError, match="format"):
        render(board, "latex")


class _Page(HTMLParser):
    """The tags of an HTML fragment and its text as a browser shows it (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_html_escapes_every_name() -> None:
    hostile = '<script>alert("x")</script> & <b>'
    body = metrics_body({"han": 1, "mine": 3})
    body["methods"]["mine"]["label"] = hostile
    body["protocols"]["as_published"]["title"] = hostile
    body["protocols"]["as_published"]["rules"]["mine"]["name"] = hostile
    body["weights_note"] = hostile
    fragment = leaderboard_html(build_leaderboard(body, published_by_method()))
    page = _Page()
    page.feed(fragment)
    assert "script" not in page.tags and "b" not in page.tags
    shown = 2 + 1 + 1 + 1  # the label in both blocks, the title, the rule, the warning: as text
    assert "".join(page.text).count(hostile) == shown and fragment.count(html.escape(hostile)) == shown


def run_avvp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from avvp.cli import main; sys.exit(main(sys.argv[1:]))",
                           "leaderboard", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"),
                                                                            os.environ.get("PYTHONPATH", "")])})


def test_the_command_prints_the_table_and_one_line_errors(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    body = metrics_body({"han": 3, "mine": 1})
    path.write_text(json.dumps(body), encoding="utf-8")
    proc = run_avvp(str(path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render(build_leaderboard(body, published_by_method()), "text")
    assert "as_published: as published" in proc.stdout and "published" in proc.stdout.split("HAN", 1)[1]

    html_out = run_avvp(str(path), "--format", "html", "--no-published").stdout
    assert html_out.count('<table class="leaderboard">') == 1 and html_out.count('class="published') == 0
    body["dataset"]["mode"] = "demo"  # the demo: no papers' numbers unless asked
    path.write_text(json.dumps(body), encoding="utf-8")
    assert "(Tian" not in run_avvp(str(path)).stdout and "(Tian" in run_avvp(str(path), "--published").stdout

    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    (tmp_path / "other.json").write_text('{"format": 1}', encoding="utf-8")
    for name, reason in (("missing.json", "No such file"), ("broken.json", "not a JSON file"),
                         ("other.json", "not a metrics file")):
        proc = run_avvp(str(tmp_path / name))
        assert proc.returncode == 1 and proc.stdout == ""
        assert len(proc.stderr.splitlines()) == 1 and str(tmp_path / name) in proc.stderr and reason in proc.stderr


# --- the report's table in a 1400x900 window -----------------------------------------------------

def tailwind() -> Path | None:
    """The Tailwind build Snakemake's report embeds (its `prose` styles shape the front page)."""
    try:
        path = Path(str(resources.files("snakemake.assets").joinpath("data/tailwindcss/tailwind.css")))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def report_like_page(fragment: str, path: Path) -> Path:
    """The front page as Snakemake's report lays it out: its menu beside it (a fifth of the window,
    the most it takes), the workflow description (title, paragraph, then the summary) in `prose`,
    the Tailwind build and workflow/report/style.css applied."""
    style = (REPO / "workflow/report/style.css").read_text(encoding="utf-8")
    intro = ('<h1 class="avvp-title">avvp: audio-visual video parsing on LLP</h1>'
             "<p>One model per run (a method or a variant of one) and seed, scored on the test split with "
             "the ten numbers of the LLP protocol; the figures below are also under <em>Results</em>.</p>")
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><script>{tailwind().read_text(encoding='utf-8')}"
        f"</script><style>{style}</style></head><body><div id='app'><div class='flex flex-row w-screen h-screen'>"
        "<nav class='w-1/5 flex-none text-sm h-screen overflow-auto bg-slate-900/70 text-white'>"
        "<h1 class='px-3 py-1'>Snakemake Report</h1>"
        "</nav><div class='grow flex items-center justify-center h-screen overflow-auto' id='content'>"
        "<div class='grow flex gap-3 p-3 items-start'><div class='py-2'><div class='prose prose-sm max-w-lg'>"
        f"{intro}{summary_html(fragment, {}, {}, [])}</div></div><div class='w-64'>rule graph</div></div>"
        "</div></div></div></body></html>", encoding="utf-8")
    return path


# Measured once Tailwind has styled the page (prose-sm: 14 px text): the viewport, the scrolling
# content pane's widths, the leaderboard's box, each header cell of its last header row, its rows.
LAYOUT_JS = """
(async () => {
  const prose = () => document.querySelector('#app .prose');
  for (let i = 0; i < 100 && !(prose() && getComputedStyle(prose()).fontSize === '14px'); i++)
    await new Promise(r => setTimeout(r, 50));
  const box = el => { const r = el.getBoundingClientRect();
    return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
  const table = document.querySelector('table.leaderboard');
  const pane = document.querySelector('#content');
  return {
    viewport: [innerWidth, innerHeight], styled: getComputedStyle(prose()).fontSize,
    pane: [pane.scrollWidth, pane.clientWidth], page: [document.documentElement.scrollWidth, innerWidth],
    table: box(table), columns: [...table.querySelectorAll('thead tr:last-child th')].map(box),
    rows: [...table.querySelectorAll('tbody tr')].map(box),
  };
})()
"""


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (make system-deps installs it)")
def test_the_reports_leaderboard_fits_a_1400x900_window(tmp_path: Path) -> None:
    """Two protocols, five methods, published numbers beside: nothing scrolls sideways, all twenty
    number columns and every row are in view, drawn (dark pixels) where the DOM says."""
    from PIL import Image

    if tailwind() is None:
        pytest.skip("Snakemake's report assets (Tailwind) are not installed")
    body = metrics_body({"han": 3, "jomold": 3, "valor": 1, "valor_pp": 1, "mine": 3})
    body["weights_note"] = "features made with RANDOM backbone weights: not comparable with published results"
    body["coverage"] = {"train": {"total": 10000, "used": 200}, "test": {"total": 1200, "used": 60, "scored": 60}}
    body["methods"]["jomold"]["notes"] = [NOTE]
    page = report_like_page(metrics_tables_html(body, published_by_method()), tmp_path / "page.html")
    shot = tmp_path / "leaderboard.png"
    with Chromium(CHROMIUM, *WINDOW) as browser:
        browser.open(page.as_uri())
        layout = browser.evaluate(LAYOUT_JS)
        browser.screenshot(shot)
    keep = os.environ.get("AVVP_REPORT_SHOTS")  # a folder to keep the screenshot in, to look at
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "leaderboard.png")
    width, height = WINDOW
    assert layout["viewport"] == list(WINDOW) and layout["styled"] == "14px"
    assert layout["pane"][0] <= layout["pane"][1] and layout["page"][0] <= layout["page"][1], layout
    assert len(layout["columns"]) == 20 and all(inside(c, width, height) for c in layout["columns"]), layout
    assert len(layout["rows"]) == 2 * (1 + 5) and all(inside(r, width, height) for r in layout["rows"]), layout
    with Image.open(shot) as image:
        grey = image.convert("L")
        last = layout["rows"][-1]
        region = grey.crop((int(last["left"]), int(last["top"]), int(last["right"]), int(last["bottom"])))
        assert sum(region.histogram()[:100]) > 50, "no text drawn where the last row is"
