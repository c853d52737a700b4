"""metrics.json's aggregation over seeds (avvp.evaluation.aggregate), checked against hand computations, and its
layout against the shipped schema."""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from avvp.evaluation.aggregate import (aggregate, build_metrics, mean_sd, per_method, random_kinds, split_coverage,
                            validate_metrics, weights_used)
from avvp.evaluation.protocols import BUILT_IN
from avvp.reporting.provenance import provenance_block

CHECKS = {"rows_outside_split": {"audio": 4, "visual": 4}, "orphan_rows": {"audio": 0, "visual": 0},
          "orphan_filenames": {"audio": [], "visual": []}, "zero_length_rows": {"audio": 0, "visual": 0},
          "off_label_rows": {"audio": 0, "visual": 0}, "videos_without_rows": {"audio": 0, "visual": 0}}


def body(audio: float, per_class_a: float | None, n: int = 8) -> dict:
    """An evaluation body (as `avvp evaluate` writes it) whose numbers all derive from `audio`."""
    level = {"audio": audio, "visual": audio + 1, "audio_visual": audio + 2, "type_at_av": audio + 3,
             "event_at_av": audio + 4}
    per_class = {"audio": {"a": per_class_a, "b": 50.0}}
    return {"segment_level": level, "event_level": {k: v / 2 for k, v in level.items()}, "n_videos": n,
            "per_class": {"segment_level": per_class, "event_level": per_class}, "unscored": [],
            "annotation_warnings": CHECKS, "protocol": {**BUILT_IN["avvp"].describe(), "annotations_scored": "2024"}}


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
    assert set(mean) == {"segment_level", "event_level", "per_class"}


def test_per_method_gives_mean_and_sd_only_with_several_seeds() -> None:
    runs = [("han", 1), ("han", 2), ("jomold", 1)]
    methods = {"han": {"label": "HAN", "final_stage": "han", "features": ["vggish", "res152", "r2plus1d_18"]},
               "jomold": {"label": "JoMoLD", "final_stage": "jomold_denoise", "features": ["clap", "clip"]}}
    out = per_method(runs, [body(10, 1.0), body(30, 3.0), body(50, 5.0)], methods)
    assert list(out["han"]["seeds"]) == ["1", "2"] and out["han"]["n_seeds"] == 2
    assert out["han"]["mean"]["segment_level"]["audio"] == 20 and out["han"]["label"] == "HAN"
    assert out["jomold"]["final_stage"] == "jomold_denoise" and out["jomold"]["n_seeds"] == 1
    assert out["jomold"]["features"] == ["clap", "clip"]
    assert not {"mean", "sd", "sd_of"} & set(out["jomold"])
    assert set(out["jomold"]["seeds"]["1"]) == {"segment_level", "event_level", "per_class"}


HAN_ONLY = {"han": {"label": "HAN", "final_stage": "han", "features": ["vggish", "res152", "r2plus1d_18"]}}


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def provenance(tmp_path: Path, weights: dict) -> dict:
    """A real provenance block over small files written here."""
    config = {"stages": {"han": {"epochs": 2, "lr": None}}, "train": {"seeds": [1, 2]}}
    model = write(tmp_path / "model.pt", {"weights": "not really"})
    classes = write(tmp_path / "classes.txt", {})
    return provenance_block(config, {"han": {"han": {"epochs": 2}}}, [model], [classes], weights, [])


PROTOCOLS = {"avvp": {"title": "avvp", "rules": {"han": BUILT_IN["avvp"].describe()}}}
TWO_PROTOCOLS = {**PROTOCOLS, "as_published": {"title": "as published",
                                               "rules": {"han": BUILT_IN["han_as_published"].describe()}}}


def packs(tmp_path: Path) -> list[Path]:
    out = []
    for split, skipped in (("train", {}), ("val", {}), ("test", {"gone_0_10": "unavailable: 404"})):
        out.append(tmp_path / split)
        write(tmp_path / split / "index.json", {"filenames": ["a", "b", "c"], "skipped": skipped})
    return out


def build(tmp_path: Path, weights: dict | None = None) -> dict:
    scores = [write(tmp_path / f"s{i}.json", {**body(10 * (i + 1), 1.0, n=3), "unscored": ["gone_0_10"]})
              for i in range(2)]
    weights = weights or {"vggish": {"kind": "vggish", "weights": "pretrained", "sha256": "0" * 64}}
    return build_metrics(scores, [("han", 1), ("han", 2)], HAN_ONLY, packs(tmp_path),
                         {"name": "x", "mode": "demo"}, provenance(tmp_path, weights), PROTOCOLS)


def test_each_protocol_is_a_block_the_first_is_primary(tmp_path: Path) -> None:
    """Evaluations protocol-major: methods.<m> holds the first protocol's scores, by_protocol all;
    annotation checks are kept per annotation version."""
    legacy_checks = {**CHECKS, "orphan_rows": {"audio": 3, "visual": 0}}
    scores = [write(tmp_path / f"avvp{i}.json", body(10 * (i + 1), 1.0)) for i in range(2)]
    legacy = {"protocol": {**BUILT_IN["han_as_published"].describe(), "annotations_scored": "legacy"},
              "annotation_warnings": legacy_checks}
    scores += [write(tmp_path / f"pub{i}.json", {**body(40 + i, 1.0), **legacy}) for i in range(2)]
    metrics = build_metrics(scores, [("han", 1), ("han", 2)], HAN_ONLY, packs(tmp_path), {"name": "x", "mode": "demo"},
                            provenance(tmp_path, {}), TWO_PROTOCOLS)
    han = metrics["methods"]["han"]
    assert han["seeds"]["2"]["segment_level"]["audio"] == 20 and han["by_protocol"]["avvp"]["seeds"] == han["seeds"]
    assert han["by_protocol"]["as_published"]["mean"]["segment_level"]["audio"] == 40.5
    assert metrics["evaluation"] == {"primary_protocol": "avvp",
                                     "annotation_checks": {"2024": CHECKS, "legacy": legacy_checks}}
    assert list(metrics["protocols"]) == ["avvp", "as_published"]
    validate_metrics(json.loads(json.dumps(metrics)))
    with pytest.raises(ValueError, match="4 evaluation files for 2 runs x 1 protocols"):
        build_metrics(scores, [("han", 1), ("han", 2)], HAN_ONLY, packs(tmp_path), {"name": "x", "mode": "demo"},
                      provenance(tmp_path, {}), PROTOCOLS)


def test_build_metrics_states_coverage_once_and_validates(tmp_path: Path) -> None:
    metrics = build(tmp_path)
    assert metrics["coverage"]["test"] == {"total": 4, "used": 3, "not_used": {"gone_0_10": "unavailable: 404"},
                                           "scored": 3, "not_scored": {"gone_0_10": "unavailable: 404"}}
    assert metrics["methods"]["han"]["mean"]["segment_level"]["audio"] == 15
    assert metrics["evaluation"]["annotation_checks"] == {"2024": CHECKS}
    assert metrics["random_weights"] == [] and "weights_note" not in metrics
    # nothing is said twice: the scores live under methods only, the counts under coverage only
    assert not {"segment_level", "event_level", "per_class", "n_videos", "runs"} & set(metrics)
    prov = metrics["provenance"]
    assert prov["checkpoints"] == {str(tmp_path / "model.pt"): prov["checkpoints"][str(tmp_path / "model.pt")]}
    assert prov["config"]["train"]["seeds"] == [1, 2] and prov["stages"] == {"han": {"han": {"epochs": 2}}}
    validate_metrics(json.loads(json.dumps(metrics)))  # as written to disk


def test_random_weights_are_named_with_a_note(tmp_path: Path) -> None:
    metrics = build(tmp_path, {"vggish": {"kind": "vggish", "weights": "random", "seed": 0}})
    assert metrics["random_weights"] == ["vggish"] and "RANDOM" in metrics["weights_note"]


def test_schema_refuses_a_single_seed_sd_and_a_missing_provenance(tmp_path: Path) -> None:
    metrics = build(tmp_path)
    han = metrics["methods"]["han"]
    one_seed = {**metrics, "methods": {"han": {**han, "n_seeds": 1}}}
    with pytest.raises(ValueError, match="methods/han"):
        validate_metrics(one_seed)
    with pytest.raises(ValueError, match="provenance"):
        validate_metrics({k: v for k, v in metrics.items() if k != "provenance"})


def test_runs_scored_on_different_files_are_refused(tmp_path: Path) -> None:
    build(tmp_path)
    other = {**body(10, 1.0, n=3), "unscored": ["gone_0_10"], "annotation_warnings": {**CHECKS, "orphan_rows": {}}}
    write(tmp_path / "s1.json", other)
    with pytest.raises(ValueError, match=r"s1\.json: its annotation checks differ"):
        build_metrics([tmp_path / "s0.json", tmp_path / "s1.json"], [("han", 1), ("han", 2)], HAN_ONLY,
                      [tmp_path / s for s in ("train", "val", "test")], {"name": "x", "mode": "demo"},
                      provenance(tmp_path, {}), PROTOCOLS)
    write(tmp_path / "s1.json", {**body(10, 1.0, n=3), "unscored": []})
    with pytest.raises(ValueError, match=r"s1\.json: unscored differ"):
        build_metrics([tmp_path / "s0.json", tmp_path / "s1.json"], [("han", 1), ("han", 2)], HAN_ONLY,
                      [tmp_path / s for s in ("train", "val", "test")], {"name": "x", "mode": "demo"},
                      provenance(tmp_path, {}), PROTOCOLS)


def test_mixed_weights_are_listed_and_count_as_random(tmp_path: Path) -> None:
    files = {"res152": [write(tmp_path / "a.json", {"weights": "random", "seed": 0}),
                        write(tmp_path / "b.json", {"weights": "pretrained"})]}
    used = weights_used(files)
    assert used["res152"]["weights"] == "mixed" and len(used["res152"]["records"]) == 2
    assert random_kinds(used) == ["res152"]
    assert weights_used({"vggish": [tmp_path / "missing.json"]})["vggish"]["weights"] == "unknown"


def test_split_coverage_counts_used_and_skipped(tmp_path: Path) -> None:
    write(tmp_path / "p" / "index.json", {"filenames": ["a"], "skipped": {"b": "why"}})
    assert split_coverage(tmp_path / "p") == {"total": 2, "used": 1, "not_used": {"b": "why"}}


def test_schema_knows_every_dataset_mode_the_config_allows() -> None:
    """metrics.json states config dataset.mode: both schemas list the same modes."""
    import yaml

    from avvp.evaluation.aggregate import metrics_schema

    config_schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")
                                   .read_text(encoding="utf-8"))
    config_modes = config_schema["properties"]["dataset"]["properties"]["mode"]["enum"]
    metrics_modes = metrics_schema()["properties"]["dataset"]["properties"]["mode"]["enum"]
    assert sorted(metrics_modes) == sorted(config_modes)


def test_table_captions_name_each_methods_features() -> None:
    from avvp.reporting.report import table_caption

    valor_pp = {"label": "VALOR++", "final_stage": "valor_train", "features": ["clap", "clip", "r2plus1d_18"],
                "n_seeds": 1}
    assert table_caption("valor_pp", valor_pp, 8) == ("VALOR++ (model of stage valor_train; features clap, clip, "
                                                      "r2plus1d_18): test split, 8 videos, percent")
    han = {**HAN_ONLY["han"], "n_seeds": 3}
    assert table_caption("han", han, 8) == ("HAN (features vggish, res152, r2plus1d_18): test split, 8 videos, "
                                            "percent; mean ± sample sd over seeds")
