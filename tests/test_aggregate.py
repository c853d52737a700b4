"""metrics.json's aggregation over seeds (avvp.aggregate), checked against hand computations."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from avvp.aggregate import aggregate, build_metrics, mean_sd, per_method, random_kinds, split_coverage, weights_used


def body(audio: float, per_class_a: float | None, n: int = 8) -> dict:
    """An evaluation body whose numbers all derive from `audio`."""
    level = {"audio": audio, "visual": audio + 1, "audio_visual": audio + 2, "type_at_av": audio + 3,
             "event_at_av": audio + 4}
    return {"segment_level": level, "event_level": {k: v / 2 for k, v in level.items()}, "n_videos": n,
            "per_class": {"segment_level": {"audio": {"a": per_class_a, "b": 50.0}}}, "unscored": []}


def test_mean_and_sample_sd_skip_missing_values() -> None:
    assert mean_sd([1.0, None, 3.0]) == (2.0, statistics.stdev([1.0, 3.0]))
    assert mean_sd([4.0]) == (4.0, None)
    assert mean_sd([None, None]) == (None, None)


def test_aggregate_walks_levels_and_per_class() -> None:
    mean, sd = aggregate([body(10, 20.0), body(20, None), body(30, 40.0)])
    assert mean["segment_level"]["audio"] == 20 and sd["segment_level"]["audio"] == pytest.approx(10.0)
    assert mean["event_level"]["type_at_av"] == pytest.approx(statistics.mean([6.5, 11.5, 16.5]))
    assert mean["per_class"]["segment_level"]["audio"]["a"] == 30.0  # the undefined seed is left out
    assert sd["per_class"]["segment_level"]["audio"]["b"] == 0.0
    assert mean["n_videos"] == 8


def test_per_method_groups_runs_and_records_the_final_stage() -> None:
    runs = [("han", 1), ("han", 2), ("jomold", 1)]
    out = per_method(runs, [body(10, 1.0), body(30, 3.0), body(50, 5.0)], {"han": "han", "jomold": "jomold_denoise"})
    assert list(out["han"]["seeds"]) == ["1", "2"] and out["han"]["n_seeds"] == 2
    assert out["han"]["mean"]["segment_level"]["audio"] == 20
    assert out["jomold"]["final_stage"] == "jomold_denoise" and out["jomold"]["sd"]["segment_level"]["audio"] is None


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_build_metrics_reports_coverage_weights_and_the_first_method_on_top(tmp_path: Path) -> None:
    scores = [write(tmp_path / f"s{i}.json", {**body(10 * (i + 1), 1.0, n=3), "unscored": ["gone_0_10"]})
              for i in range(2)]
    packs = []
    for split, skipped in (("train", {}), ("val", {}), ("test", {"gone_0_10": "unavailable: 404"})):
        packs.append(tmp_path / split)
        write(tmp_path / split / "index.json", {"filenames": ["a", "b", "c"], "skipped": skipped})
    weights = {"vggish": [write(tmp_path / "w0.json", {"kind": "vggish", "weights": "random"}),
                          write(tmp_path / "w1.json", {"kind": "vggish", "weights": "random"})],
               "res152": [write(tmp_path / "w2.json", {"kind": "res152", "weights": "pretrained"})],
               "r2plus1d_18": [tmp_path / "missing.json"]}
    metrics = build_metrics(scores, [("han", 1), ("han", 2)], {"han": "han"}, packs, weights,
                            {"name": "x", "mode": "demo"})
    assert metrics["segment_level"]["audio"] == 15 and metrics["summary_of"] == "han: mean over its 2 seed(s)"
    assert metrics["coverage"]["test"] == {"total": 4, "used": 3, "not_used": {"gone_0_10": "unavailable: 404"},
                                           "scored": 3, "not_scored": {"gone_0_10": "unavailable: 404"}}
    assert metrics["weights"]["vggish"] == {"kind": "vggish", "weights": "random"}
    assert metrics["weights"]["r2plus1d_18"]["weights"] == "unknown"
    assert metrics["random_weights"] == ["vggish"] and "RANDOM" in metrics["weights_note"]


def test_mixed_weights_are_listed_and_count_as_random(tmp_path: Path) -> None:
    files = {"res152": [write(tmp_path / "a.json", {"weights": "random", "seed": 0}),
                        write(tmp_path / "b.json", {"weights": "pretrained"})]}
    used = weights_used(files)
    assert used["res152"]["weights"] == "mixed" and len(used["res152"]["records"]) == 2
    assert random_kinds(used) == ["res152"]


def test_split_coverage_counts_used_and_skipped(tmp_path: Path) -> None:
    write(tmp_path / "p" / "index.json", {"filenames": ["a"], "skipped": {"b": "why"}})
    assert split_coverage(tmp_path / "p") == {"total": 2, "used": 1, "not_used": {"b": "why"}}
