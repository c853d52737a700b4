"""The docs name only what exists: every module, function, class, file, workflow rule and command-line
option that README.md and docs/*.md write in backticks is checked against the source tree, so a
rename or a move that the docs did not follow fails here instead of misleading a reader. How each
kind of name is recognised and checked, and what is exempt: tests/doc_names.py."""
from __future__ import annotations

from collections import defaultdict

from doc_names import Finding, Span, check_inline, stale_names

# Enough names are recognised that a checker which silently matched nothing cannot pass.
MIN_CHECKED = 150


def report(stale: list[Finding]) -> str:
    """One line per stale name, grouped by doc, in line order."""
    by_file: dict[str, list[Finding]] = defaultdict(list)
    for finding in stale:
        by_file[finding.file].append(finding)
    return "\n".join(f"{file}:\n" + "\n".join(f"  {f}" for f in sorted(items, key=lambda f: f.line))
                     for file, items in sorted(by_file.items()))


def test_docs_name_only_what_exists() -> None:
    stale, checked = stale_names()
    assert checked > MIN_CHECKED, f"only {checked} names recognised in the docs: the checker is broken"
    assert not stale, f"{len(stale)} of {checked} names in the docs do not exist:\n{report(stale)}"


def test_checker_tells_real_names_from_stale_ones() -> None:
    """The checker itself: one real and one made-up name of each kind."""
    def problems(text: str) -> list[str | None]:
        return [f.problem for f in check_inline(Span("x.md", 1, text))]

    for real in ("avvp.methods.stages", "avvp.methods.stages.register_stage", "calibration.random_residual",
                 "avvp evaluate --predictions P.npz", "avvp train --stage han --refined R",
                 "src/avvp/cli/__init__.py", "FeatureKind", "feature_kinds()", "results/whatever.json"):
        assert all(p is None for p in problems(real)), (real, problems(real))
    for real in ("stages.ma_mmil_stage3.faithful", "dataset.annotations.eval_audio_legacy", "evaluate.define.mine",
                 "train.keep_last"):
        assert problems(real) == [None], (real, problems(real))
    for made_up in ("ma_mmil.faithful", "stages.ma_mmil.faithful", "train.no_such_key"):  # the first: issue 25
        assert problems(made_up) != [None], (made_up, problems(made_up))
    for made_up in ("avvp.no_such_module", "avvp.methods.stages.no_such_name", "calibration.no_such_name",
                    "avvp evaluate --no-such-option", "avvp no_such_command", "src/avvp/no_such.py",
                    "NoSuchClass", "no_such_function()"):
        assert any(problems(made_up)), (made_up, problems(made_up))
