"""The offline viewer of a parse output folder: `DIR/index.html`, one self-contained page to watch
each video with its events (`avvp parse ... --out DIR` writes it, `avvp view DIR` rebuilds it).

`data` reads the folder's JSON files into what the page shows (with per-video scores where ground
truth is known); `page` renders the HTML, inlining `viewer.js` and `viewer.css` (package files).
Videos are linked by relative path, never embedded, so the page stays small (1,200 test videos:
about 2 MB) and works from file:// as long as the videos stay where they are relative to it.
"""
from __future__ import annotations

from pathlib import Path

from avvp.base.atomic import atomic_output

PAGE_NAME = "index.html"


def write_viewer(folder: str | Path) -> Path:
    """Write `folder/index.html` for the parse outputs in `folder`; returns its path."""
    from avvp.parsing.viewer.data import page_data
    from avvp.parsing.viewer.page import render_page

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} not found")
    data = page_data(folder)
    if not data["videos"]:
        raise ValueError(f"{folder}: no parse outputs (<stem>.json written by avvp parse) in it")
    path = folder / PAGE_NAME
    with atomic_output(path, "w") as fh:
        fh.write(render_page(data))
    return path
