"""The viewer's HTML: one self-contained file that works from file:// (no server, no network).

The script and the stylesheet (package files beside this module) are inlined; the data is JSON in
a `<script type="application/json">` element with `<`, `>` and `&` escaped, so no name can close
the element or start markup; the script writes every name with textContent. A Content-Security-
Policy allows only this page's own script (by its hash: an injected inline handler would not run),
no connections, and media from the page's folder and below.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from importlib.resources import files
from typing import Any

ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def embedded_json(data: Any) -> str:
    """JSON that is safe inside a <script> element: nothing in it can end the element."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return "".join(ESCAPES.get(ch, ch) for ch in text)


def asset(name: str) -> str:
    """A package file of the viewer (viewer.js, viewer.css), as text."""
    text = files("avvp.parsing.viewer").joinpath(name).read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(f"viewer asset {name} would end its element early (it holds </script or </style)")
    return text


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def render_page(data: dict[str, Any]) -> str:
    """The whole page for `page_data`'s result."""
    script, style = asset("viewer.js"), asset("viewer.css")
    policy = (f"default-src 'none'; script-src {script_hash(script)}; style-src 'unsafe-inline'; "
              "media-src 'self' file:; img-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'")
    title = html.escape(f"{data['title']} · avvp viewer")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{policy}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{title}</title>\n<style>\n{style}</style>\n</head>\n<body>\n"
        "<noscript>The viewer needs JavaScript; the events are also in each video's JSON and CSV "
        "files beside this page.</noscript>\n"
        f"<script type=\"application/json\" id=\"avvp-data\">{embedded_json(data)}</script>\n"
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
