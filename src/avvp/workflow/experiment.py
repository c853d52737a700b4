"""Which folder a run writes: `results/` for the demo config, `results/<experiment>/` for any other.

Configs used one after another must not overwrite each other's runs, metrics and report, so every
path the workflow writes sits under one experiment folder. Its name is config `experiment`, or by
default the stem of the last `--configfile` (`--configfile config/compare.yaml` ->
`results/compare/`); with no config file but the workflow's own, the folder is `results/` itself, so
the demo's paths stay short.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from avvp.base.atomic import atomic_output
from avvp.workflow.config_checks import ConfigError

ROOT = "results"
# What the workflow writes directly under results/: an experiment may not take one of these names.
RESERVED = frozenset({
    "audio", "benchmarks", "demo", "features", "frames", "logs", "manifest.tsv", "metrics.json", "packed",
    "parsed", "parsed_test", "report", "report.html", "runs", "shards", "videos",
})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def experiment_folder(name: str | None, config_files: Sequence[str | Path], default_config: str | Path) -> str:
    """The folder every output of this run goes under (relative to the working directory).

    `name` is config `experiment` (None: not set); `config_files` are the `--configfile` files in
    order; `default_config` is the workflow's own config file, which names no experiment."""
    if name is None:
        given = [Path(path) for path in config_files if Path(path).resolve() != Path(default_config).resolve()]
        if not given:
            return ROOT
        name = given[-1].stem
        where = f"the name of config file {given[-1]}"
    else:
        where = "config key experiment"
    if name == "":
        return ROOT
    if not _NAME.fullmatch(name) or name in RESERVED:
        problem = "is a folder of results/ itself" if name in RESERVED else "is not a plain folder name"
        raise ConfigError(f"experiment {name!r} ({where}) {problem}: set `experiment:` in the config to a name "
                          f"of letters, digits, '_', '.' or '-' other than {', '.join(sorted(RESERVED))}")
    return f"{ROOT}/{name}"


def experiment_report_text(template: str | Path, folder: str, out: str | Path) -> Path:
    """The report's front-page text for this experiment: the template includes the summary page by
    path (`@EXPERIMENT@/report/summary.html`), so each experiment gets its own copy naming its folder."""
    text = Path(template).read_text(encoding="utf-8").replace("@EXPERIMENT@", folder)
    out = Path(out).resolve()
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        with atomic_output(out, "w") as fh:
            fh.write(text)
    return out


def check_targets(arguments: Iterable[str], folder: str) -> None:
    """A path in results/ itself (the demo's `results/metrics.json`, `--report results/report.html`)
    on the command line of a config that writes into its own folder is refused naming the path it
    has there, instead of "No rule to produce" or a report that replaces the demo's."""
    if folder == ROOT:
        return
    for argument in arguments:
        target = argument.split("=", 1)[-1]
        parts = Path(target).parts
        if len(parts) > 1 and parts[0] == ROOT and parts[1] in RESERVED:
            raise ConfigError(f"{target}: this config writes into {folder}/ (config experiment, by default the "
                              f"name of the last --configfile); ask for {folder}/{Path(*parts[1:])}")
