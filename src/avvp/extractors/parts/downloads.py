"""Published weights, downloaded once into torch's hub cache (`$TORCH_HOME/hub/`).

A plain file (`fetch`) goes to `checkpoints/` under its own name; a Hugging Face model folder
(`hub_folder`) to `huggingface/`. With `AVVP_OFFLINE=1`, or when the download fails, the error
names the URL and the exact path where a manually fetched file is picked up.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch

from avvp.extractors import FeatureKind

OFFLINE_ENV = "AVVP_OFFLINE"


def cached_path(url: str) -> Path:
    """Where torch's hub cache keeps the file of `url` (respects TORCH_HOME)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def fetch(url: str, hashed: bool = False) -> Path:
    """The cached file of `url`, downloaded first when absent and downloads are allowed.

    `hashed`: the file name ends in `-<first sha256 hex digits>.`, which the download is checked
    against.
    """
    path = cached_path(url)
    if path.is_file():
        return path
    advice = f"download {url} yourself and put it at {path}"
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        raise RuntimeError(f"weights file {path} is not cached and {OFFLINE_ENV} forbids downloads; {advice}")
    match = re.search(r"-([a-f0-9]{8,})\.", path.name) if hashed else None
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch writes to a temporary name and moves it into place when complete
        torch.hub.download_url_to_file(url, str(path), hash_prefix=match[1] if match else None)
    except (OSError, RuntimeError, ValueError) as err:
        raise RuntimeError(f"could not download {url} ({err}); {advice}") from err
    return path


def hub_folder(kind: FeatureKind) -> Path:
    """The cached model folder of a kind published on the Hugging Face Hub, downloaded first when
    absent and downloads are allowed; otherwise an error naming the files and where they go."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    published = kind.pretrained
    repo = urlparse(published.url).path.strip("/")
    cache = Path(torch.hub.get_dir()) / "huggingface"
    offline = os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0")
    advice = (f"download the files {', '.join(published.files)} of {published.url} into one folder and pass "
              f"that folder as the weights (--weights PATH), or let avvp download them once into {cache}")
    try:
        return Path(snapshot_download(repo, cache_dir=cache, allow_patterns=list(published.files),
                                      local_files_only=offline))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as err:
        why = f"{OFFLINE_ENV} forbids downloads" if offline else f"the download failed ({err})"
        raise RuntimeError(f"{kind.name} weights ({published.holds}) are not cached and {why}; {advice}") from err
