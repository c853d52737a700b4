"""The leaderboard: every method of metrics.json under every evaluation protocol, the ten numbers
each, with the paper's published numbers beside them, so one table says how the runs compare with
each other and with the literature.

`build_leaderboard` turns a metrics.json body into a plain model (`Leaderboard`: one `Block` per
protocol, one `Row` per method); `render` writes it as fixed-width text (the terminal), Markdown
or an HTML fragment (the report; styled by `table.leaderboard` in workflow/report/style.css).
Published numbers are data, kept per method in `avvp/data/published.json` (from docs/PROTOCOL.md).
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from avvp.base.protocol import LEVELS, SCORES
from avvp.reporting.figures import HEADERS

COLUMNS = tuple((level, key) for level in LEVELS for key in SCORES)  # the ten numbers, in order
# The literature's short column names (A, V, AV, Type, Event), so twenty columns fit a screen.
SHORT = {"audio": "A", "visual": "V", "audio_visual": "AV", "type_at_av": "Type", "event_at_av": "Event"}
LEGEND = ("A, V, AV: audio, visual, audio-visual F; Type: Type@AV, their mean; Event: Event@AV; "
          "percent")
MISSING = "–"
# Files written before evaluation protocols existed scored every method under the seed's rule.
LEGACY_PROTOCOL = ("avvp", "avvp (the seed's rule for every method)")


def published_by_method() -> dict[str, dict[str, Any]]:
    """Published LLP test results per method or run name: `paper`, `table` (where the numbers
    stand) and the levels' numbers that paper gives."""
    data = json.loads(resources.files("avvp").joinpath("data/published.json").read_text(encoding="utf-8"))
    return data["by_method"]


@dataclass(frozen=True)
class Score:
    """One cell: a mean with its sample sd over seeds, or (sd None) a single seed's value."""

    value: float
    sd: float | None = None

    def text(self) -> str:
        return f"{self.value:.1f}" if self.sd is None else f"{self.value:.1f} ± {self.sd:.1f}"


@dataclass(frozen=True)
class Published:
    """A paper's numbers for one method (None where the paper gives none) and where they stand."""

    paper: str
    table: str
    values: tuple[float | None, ...]

    def texts(self) -> tuple[str, ...]:
        return tuple(MISSING if v is None else f"{v:.1f}" for v in self.values)

    def source(self) -> str:
        return f"{self.paper}, {self.table}"


@dataclass(frozen=True)
class Row:
    """One method under one protocol: its ten scores, the rule that made them, the paper's numbers."""

    method: str
    label: str
    rule: str | None
    n_seeds: int
    scores: tuple[Score, ...]
    published: Published | None

    def published_texts(self) -> tuple[str, ...]:
        """The paper's ten numbers as shown, dashes throughout for a method without a paper."""
        return self.published.texts() if self.published else (MISSING,) * len(COLUMNS)


@dataclass(frozen=True)
class Block:
    """One evaluation protocol: its name, its title and a row per method, in metrics.json's order."""

    protocol: str
    title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Leaderboard:
    """The blocks in metrics.json's protocol order; `with_published`: the published column group is
    shown (rows without a paper get dashes); `warning`: the random-weights note, when it applies;
    `coverage`: the partial-data note, when a split is not whole (`coverage_note`); `method_notes`:
    "label: note" for what a method's runs record that explains its scores (metrics `notes`)."""

    blocks: tuple[Block, ...]
    with_published: bool
    n_videos: int | None
    warning: str | None
    coverage: str | None = None
    method_notes: tuple[str, ...] = ()

    def notes(self) -> list[str]:
        """What a reader must see before any number: random weights, partial data."""
        return [note for note in (self.warning, self.coverage) if note]

    def caption(self) -> str:
        videos = "" if self.n_videos is None else f", {self.n_videos} videos"
        several = any(row.n_seeds > 1 for block in self.blocks for row in block.rows)
        return f"Leaderboard: test split{videos}" + ("; mean ± sample sd over seeds" if several else "")

    def sources(self) -> dict[str, str]:
        """label -> the published source, for each method shown with a paper's numbers."""
        return {row.label: row.published.source() for block in self.blocks for row in block.rows
                if row.published is not None}


def _scores(entry: Mapping[str, Any]) -> tuple[Score, ...]:
    """A method's ten cells from its `seeds` (and `mean`, `sd` when there are several)."""
    if "mean" in entry:
        return tuple(Score(entry["mean"][lv][k], entry["sd"][lv][k]) for lv, k in COLUMNS)
    seeds = list(entry["seeds"].values())
    if len(seeds) != 1:
        raise ValueError(f"{len(seeds)} seeds but no mean and sd")
    return tuple(Score(seeds[0][lv][k]) for lv, k in COLUMNS)


def _published(entry: Mapping[str, Any]) -> Published:
    values = tuple(entry.get(lv, {}).get(k) for lv, k in COLUMNS)
    return Published(entry["paper"], entry["table"], values)


def build_leaderboard(metrics: Mapping[str, Any],
                      published: Mapping[str, Mapping[str, Any]] | None = None) -> Leaderboard:
    """The leaderboard of a metrics.json body: a block per entry of `protocols` (or, in files
    written before protocols, one `avvp` block from each method's own seeds), a row per method.

    `published` (method or run name -> a `published_by_method()` entry) adds the published column
    group; None leaves it out (e.g. a data set other than LLP). Raises ValueError naming what a
    body that is not a metrics file lacks.
    """
    methods = metrics.get("methods")
    if not isinstance(methods, Mapping) or not methods:
        raise ValueError("not a metrics file: no `methods`")
    papers = {m: _published(published[m]) for m in methods if published and m in published}

    def row(method: str, entry: Mapping[str, Any], rule: str | None) -> Row:
        try:
            return Row(method, methods[method]["label"], rule, len(entry["seeds"]), _scores(entry),
                       papers.get(method))
        except (KeyError, TypeError) as err:
            raise ValueError(f"method {method!r}: its scores lack {err}") from None

    protocols = metrics.get("protocols")
    if protocols is None:
        name, title = LEGACY_PROTOCOL
        blocks = [Block(name, title, tuple(row(m, entry, None) for m, entry in methods.items()))]
    else:
        blocks = []
        for name, protocol in protocols.items():
            rows = []
            for method, entry in methods.items():
                under = entry.get("by_protocol", {}).get(name)
                if under is None:
                    raise ValueError(f"method {method!r} has no scores under protocol {name!r}")
                rows.append(row(method, under, protocol.get("rules", {}).get(method, {}).get("name")))
            blocks.append(Block(name, protocol.get("title", name), tuple(rows)))
    n_videos = metrics.get("coverage", {}).get("test", {}).get("scored")
    said: dict[str, list[str]] = {}  # a note that several methods share is said once, naming them all
    for method, entry in methods.items():
        for note in entry.get("notes", ()):
            said.setdefault(note, []).append(entry.get("label", method))
    notes = tuple(f"{', '.join(labels)}: {note}" for note, labels in said.items())
    return Leaderboard(tuple(blocks), published is not None, n_videos, metrics.get("weights_note"),
                       coverage_note(metrics.get("coverage", {})), notes)


def coverage_note(coverage: Mapping[str, Any]) -> str | None:
    """`PARTIAL DATA: train 200 of 10000 videos (2.0 %), ...` for the splits not whole (the test
    split by its scored videos), or None when every split is."""
    parts = []
    for split, counts in coverage.items():
        have = counts.get("scored", counts.get("used", 0))
        total = counts.get("total", 0)
        if total and have < total:
            parts.append(f"{split} {have} of {total} videos ({100 * have / total:.1f} %)")
    if not parts:
        return None
    return (f"PARTIAL DATA: {', '.join(parts)}; the published numbers come from whole splits, so these are not "
            "comparable with them")


# ----------------------------------------------------------------------------- renderers


def _grid(lines: list[list[str]], right_from: int) -> list[str]:
    """Rows of cells as fixed-width lines: columns padded to their widest cell, the columns from
    `right_from` on right-aligned (numbers)."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return ["  ".join(c.rjust(w) if i >= right_from else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
            .rstrip() for line in lines]


def _level(level: str) -> str:
    return level.split("_")[0]


def _by_level(first: list[str], cells: Sequence[str]) -> list[list[str]]:
    """Two text rows, segment then event level, each with its five of the ten cells; `first`
    (the leading cells) on the first row only."""
    n = len(SCORES)
    return [[*(first if i == 0 else [""] * len(first)), _level(level), *cells[i * n:(i + 1) * n]]
            for i, level in enumerate(LEVELS)]


def leaderboard_text(board: Leaderboard) -> str:
    """Fixed width for a terminal: a row per method and level, the paper's numbers (where there is
    a paper) on the rows below the method's (`published`), so the table stays about 110 characters
    wide."""
    out = [board.caption() + ".", LEGEND + "."]
    out += [f"WARNING: {note}" for note in board.notes()]
    head = ["method", "rule", "level", *(SHORT[k] for k in SCORES)]
    for block in board.blocks:
        lines = [head]
        for row in block.rows:
            lines += _by_level([row.label, row.rule or ""], [s.text() for s in row.scores])
            if board.with_published and row.published:
                lines += _by_level(["  published", ""], row.published.texts())
        out += ["", f"{block.protocol}: {block.title}", *_grid(lines, right_from=3)]
    out += [""] + [f"published {label}: {source}" for label, source in board.sources().items()]
    out += [f"note: {note}" for note in board.method_notes]
    return "\n".join(out).rstrip() + "\n"


def leaderboard_markdown(board: Leaderboard) -> str:
    """One Markdown table per protocol: method, rule, the ten numbers, then the published ten."""
    names = [f"{_level(lv)} {SHORT[k]}" for lv, k in COLUMNS]
    head = ["method", "rule", *names] + ([f"published {n}" for n in names] if board.with_published else [])
    out = [f"{board.caption()}. {LEGEND}."]
    out += [f"**{note}**" for note in board.notes()]
    for block in board.blocks:
        out += ["", f"**{block.protocol}**: {block.title}", "", f"| {' | '.join(head)} |", "|" + " --- |" * len(head)]
        for row in block.rows:
            cells = [row.label, row.rule or "", *(s.text() for s in row.scores)]
            if board.with_published:
                cells += row.published_texts()
            out.append(f"| {' | '.join(c.replace('|', '&#124;') for c in cells)} |")
    sources = board.sources()
    if sources:
        out += [""] + [f"- published {label}: {source}" for label, source in sources.items()]
    if board.method_notes:
        out += [""] + [f"- note: {note}" for note in board.method_notes]
    return "\n".join(out) + "\n"


def _score_html(score: Score) -> str:
    """The mean, and the sd in a span the stylesheet sets small below it (the cell reads
    `mean ± sd` as text)."""
    if score.sd is None:
        return f"{score.value:.1f}"
    return f'{score.value:.1f} <span class="sd">± {score.sd:.1f}</span>'


def _group_class(group: str, column: int) -> str:
    """A number cell's classes: its group, and `start` on the first column of each level (the
    stylesheet draws a rule there)."""
    return f"{group} start" if column % len(SCORES) == 0 else group


def leaderboard_html(board: Leaderboard) -> str:
    """An HTML fragment: the warning, one `table.leaderboard` with a body per protocol (its title
    row, then a row per method: label, seeds and rule in small text, our ten numbers, the published
    ten with the paper in a tooltip), and the published sources as a note below. Every name is
    escaped."""
    esc = html.escape
    groups = [("ours", "this project")] + ([("published", "published (each paper's own rule)")]
                                           if board.with_published else [])
    n_cols = 1 + len(COLUMNS) * len(groups)
    levels = "".join(f'<th colspan="{len(SCORES)}" class="{g} start">{_level(lv).title()} level</th>'
                     for g, _ in groups for lv in LEVELS)
    names = "".join(f'<th class="{_group_class(g, i)}" title="{_level(lv)} level {HEADERS[k]}">{SHORT[k]}</th>'
                    for g, _ in groups for i, (lv, k) in enumerate(COLUMNS))
    out = ['<div class="avvp-leaderboard">']
    out += [f'<p class="warning"><strong>{esc(note)}</strong></p>' for note in board.notes()]
    out += ['<table class="leaderboard">', f"<caption>{esc(board.caption())}</caption>",
            "<thead>",
            '<tr><th rowspan="3" class="method">method</th>'
            + "".join(f'<th colspan="{len(COLUMNS)}" class="{g} start">{title}</th>' for g, title in groups) + "</tr>",
            f"<tr>{levels}</tr>", f"<tr>{names}</tr>", "</thead>"]
    for block in board.blocks:
        out.append(f'<tbody data-protocol="{esc(block.protocol)}">')
        out.append(f'<tr class="protocol"><th colspan="{n_cols}">{esc(block.protocol)}: '
                   f'<span class="title">{esc(block.title)}</span></th></tr>')
        for row in block.rows:
            seeds = f"{row.n_seeds} seed{'s' if row.n_seeds != 1 else ''}"
            rule = f'<span class="rule" title="the rule it was scored under">{esc(row.rule)}</span>' if row.rule else ""
            cells = [f'<th class="method">{esc(row.label)} <span class="seeds">{seeds}</span>{rule}</th>']
            cells += [f'<td class="{_group_class("ours", i)}">{_score_html(s)}</td>' for i, s in enumerate(row.scores)]
            if board.with_published:
                tip = f' title="{esc(row.published.source())}"' if row.published else ""
                cells += [f'<td class="{_group_class("published", i)}"{tip}>{t}</td>'
                          for i, t in enumerate(row.published_texts())]
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody>")
    out.append("</table>")
    notes = [f"{esc(label)}: {esc(source)}" for label, source in board.sources().items()]
    out.append(f'<p class="leaderboard-note">{esc(LEGEND)}.'
               + (f" Published: {'; '.join(notes)}." if notes else "") + "</p>")
    out += [f'<p class="leaderboard-note method-note">Note, {esc(note)}.</p>' for note in board.method_notes]
    out.append("</div>")
    return "\n".join(out) + "\n"


FORMATS: dict[str, Callable[[Leaderboard], str]] = {
    "text": leaderboard_text, "markdown": leaderboard_markdown, "html": leaderboard_html,
}


def render(board: Leaderboard, fmt: str = "text") -> str:
    """The leaderboard in one of FORMATS."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return FORMATS[fmt](board)
