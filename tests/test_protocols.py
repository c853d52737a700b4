"""Evaluation protocols: each method's released rule, on identical predictions, gives the numbers
its released code gives; the seed's rule is unchanged; the annotation versions differ where the
2024 fix says; prediction files carry what every rule reads.

The released code is transcribed literally below (JoMoLD main.py `eval` and utils/eval_metrics.py,
commit 3506449), loops and all, and fed the same probability arrays as `avvp evaluate`.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from avvp.cli import main
from avvp.evaluation.annotations import Vocabulary, ground_truth, read_dense, read_weak
from avvp.evaluation.protocols import BUILT_IN, CALIBRATED, Outputs, Protocol, decide, define, protocol
from avvp.evaluation.scores import evaluate_arrays, evaluate_outputs
from avvp.model.predictions import Predictions, load_predictions, save_predictions
from avvp.base.protocol import LEVELS, SCORES
from test_calibration import event_level, segment_level

LLP = Path(__file__).resolve().parents[1] / "data" / "llp"
LEGACY_AUDIO = LLP / "legacy" / "AVVP_eval_audio_2020.csv"
CLASSES = (LLP / "classes.txt").read_text().split()


# JoMoLD's utils/eval_metrics.py equals CMPAE's but for what it prints: its segment_level and
# event_level are the transcription in test_calibration.py.


def jomold_eval(split_csv, audio_csv, visual_csv, a_prob, v_prob, frame_prob):
    """main.py `eval`: the per-video loop over the split file, its gates, its ground truth."""
    def rows(path):
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh, delimiter="\t"))
    df, df_a, df_v = rows(split_csv), rows(audio_csv), rows(visual_csv)
    id_to_idx = {c: i for i, c in enumerate(CLASSES)}
    F = {k: [] for k in ("seg_a", "seg_v", "seg", "seg_av", "event_a", "event_v", "event", "event_av")}
    for batch_idx, video in enumerate(df):
        oa = (a_prob[batch_idx][None] >= 0.5).astype(np.int_)
        ov = (v_prob[batch_idx][None] >= 0.5).astype(np.int_)
        Pa = frame_prob[batch_idx, :, 0, :]
        Pv = frame_prob[batch_idx, :, 1, :]
        Pa = (Pa >= 0.5).astype(np.int_) * np.repeat(oa, repeats=10, axis=0)
        Pv = (Pv >= 0.5).astype(np.int_) * np.repeat(ov, repeats=10, axis=0)
        GT_a = np.zeros((25, 10))
        GT_v = np.zeros((25, 10))
        for GT, dense in ((GT_a, df_a), (GT_v, df_v)):
            for row in dense:
                if row["filename"] == video["filename"]:
                    GT[id_to_idx[row["event_labels"]], int(row["onset"]):int(row["offset"])] = 1
        GT_av = GT_a * GT_v
        SO_a = np.transpose(Pa)
        SO_v = np.transpose(Pv)
        SO_av = SO_a * SO_v
        for level, fn in (("seg", segment_level), ("event", event_level)):
            f_a, f_v, f, f_av = fn(SO_a, SO_v, SO_av, GT_a, GT_v, GT_av)
            F[f"{level}_a"].append(f_a)
            F[f"{level}_v"].append(f_v)
            F[level].append(f)
            F[f"{level}_av"].append(f_av)
    out = {}
    for level, key in (("segment_level", "seg"), ("event_level", "event")):
        a, v, av = (100 * np.mean(np.array(F[f"{key}_{s}"])) for s in ("a", "v", "av"))
        out[level] = {"audio": a, "visual": v, "audio_visual": av, "type_at_av": (av + a + v) / 3.,
                      "event_at_av": 100 * np.mean(np.array(F[key]))}
    return out
# ----------------------------------------------------------------------------------------------------


def split_names(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [row["filename"] for row in csv.DictReader(fh, delimiter="\t")]


def random_predictions(names: list[str], seed: int, off: bool = True) -> Predictions:
    """Probabilities spread around the thresholds of every rule (0.25, 0.45, 0.5)."""
    rng = np.random.default_rng(seed)
    n, c = len(names), len(CLASSES)

    def outputs() -> list[np.ndarray]:
        return [rng.random((n, c), dtype=np.float32), rng.random((n, 10, 2, c), dtype=np.float32),
                rng.random((n, c), dtype=np.float32), rng.random((n, c), dtype=np.float32)]
    main_pass = outputs()
    return Predictions(names, CLASSES, *main_pass, cross_modal_off=Outputs(*outputs()) if off else None)


def evaluate_cli(tmp_path: Path, predictions: Path, *extra: str, split: str = "AVVP_test_pd.csv") -> dict:
    out = tmp_path / f"metrics_{len(list(tmp_path.glob('metrics_*')))}.json"
    argv = ["evaluate", "--predictions", str(predictions), "--split-csv", str(LLP / split),
            "--audio-csv", str(LLP / "AVVP_eval_audio.csv"), "--visual-csv", str(LLP / "AVVP_eval_visual.csv"),
            "--out", str(out), *extra]
    assert main(argv) == 0
    return json.loads(out.read_text())


def test_jomold_as_published_equals_its_released_eval(tmp_path: Path) -> None:
    names = split_names(LLP / "AVVP_test_pd.csv")
    preds = random_predictions(names, seed=3)
    save_predictions(tmp_path / "test.npz", preds)
    ours = evaluate_cli(tmp_path, tmp_path / "test.npz", "--protocol", "jomold_as_published",
                        "--legacy-audio-csv", str(LEGACY_AUDIO))
    theirs = jomold_eval(LLP / "AVVP_test_pd.csv", LEGACY_AUDIO, LLP / "AVVP_eval_visual.csv",
                         preds.a_prob, preds.v_prob, preds.frame_prob)
    for level in LEVELS:
        for key in SCORES:
            assert ours[level][key] == pytest.approx(theirs[level][key], abs=1e-9), (level, key)
    assert ours["protocol"]["name"] == "jomold_as_published" and ours["protocol"]["annotations_scored"] == "legacy"
    # `as_published --method jomold` is the same rule; the seed's rule on the same file differs.
    again = evaluate_cli(tmp_path, tmp_path / "test.npz", "--protocol", "as_published", "--method", "jomold",
                         "--legacy-audio-csv", str(LEGACY_AUDIO))
    assert again["segment_level"] == ours["segment_level"]
    seed_rule = evaluate_cli(tmp_path, tmp_path / "test.npz")
    assert seed_rule["segment_level"] != ours["segment_level"] and seed_rule["protocol"]["name"] == "avvp"


def test_the_seed_rule_is_evaluate_arrays_unchanged() -> None:
    """`avvp` through protocols equals the seed's gate written out (the exactness tests of
    test_evaluation check that one against the reference)."""
    vocab = Vocabulary(CLASSES)
    split = read_weak(LLP / "AVVP_val_pd.csv", vocab)
    gt = ground_truth(split, read_dense(LLP / "AVVP_eval_audio.csv", vocab), read_dense(LLP / "AVVP_eval_visual.csv", vocab))
    preds = random_predictions(list(split.filenames), seed=5)
    via_protocol = evaluate_outputs(preds.as_trained, gt, BUILT_IN["avvp"], classes=CLASSES)
    direct = evaluate_arrays(preds.global_prob, preds.frame_prob, gt, classes=CLASSES)
    assert via_protocol == direct
    assert direct["protocol"]["name"] == "avvp" and direct["protocol"]["annotations"] == "2024"


def test_legacy_and_2024_annotations_differ_in_the_three_rows_videos() -> None:
    vocab = Vocabulary(CLASSES)
    split = read_weak(LLP / "AVVP_test_pd.csv", vocab)
    visual = read_dense(LLP / "AVVP_eval_visual.csv", vocab)
    now = ground_truth(split, read_dense(LLP / "AVVP_eval_audio.csv", vocab), visual)
    then = ground_truth(split, read_dense(LEGACY_AUDIO, vocab, broken_names_are_orphans=True), visual)
    differs = {split.filenames[i] for i in np.flatnonzero((now.audio != then.audio).any(axis=(1, 2)))}
    assert differs == {"JfZEqeLZqWk_30_40", "KvIjsmANkxI_10_20"}
    speech, cat = CLASSES.index("Speech"), CLASSES.index("Cat")
    row = split.filenames.index("JfZEqeLZqWk_30_40")
    assert now.audio[row, speech].nonzero()[0].tolist() == [0, 1, 2, 3, 7, 8, 9] and not then.audio[row, speech].any()
    row = split.filenames.index("KvIjsmANkxI_10_20")
    assert now.audio[row, cat, 0] and not then.audio[row, cat, 0]  # the dropped Cat event, 0-1 s
    assert (now.audio[row, cat, 1:] == then.audio[row, cat, 1:]).all()


def test_each_rule_decides_as_its_paper_says() -> None:
    """One video, one class, probabilities on each side of every threshold."""
    def one(global_p, a_p, v_p, frame_a, frame_v, off=None, rule="avvp", thresholds=None):
        frame = np.zeros((1, 1, 2, 1), np.float32)
        frame[0, 0] = [[frame_a], [frame_v]]
        outputs = Outputs(np.float32([[global_p]]), frame, np.float32([[a_p]]), np.float32([[v_p]]))
        pred_a, pred_v = decide(BUILT_IN[rule], outputs, thresholds)
        return bool(pred_a[0, 0, 0]), bool(pred_v[0, 0, 0])

    assert one(0.5, 0.0, 0.0, 0.5, 0.5) == (True, True)  # the seed: >= on the fused gate
    assert one(0.5, 0.0, 0.0, 0.5, 0.5, rule="uwav_as_published") == (False, False)  # UWAV: strict
    assert one(0.51, 0.0, 0.0, 0.51, 0.51, rule="uwav_as_published") == (True, True)
    assert one(0.0, 0.5, 0.2, 0.5, 0.5, rule="jomold_as_published") == (True, False)  # modality gates
    assert one(0.0, 0.45, 0.3, 0.25, 0.25, rule="cmpae_as_published", thresholds={"visual": [0.3]}) == (True, True)
    assert one(0.0, 0.44, 0.3, 0.25, 0.24, rule="cmpae_as_published", thresholds={"visual": [0.3]}) == (False, False)
    with pytest.raises(ValueError, match="calibrate"):
        one(0.0, 0.45, 0.3, 0.25, 0.25, rule="cmpae_as_published")


def test_cmpae_mixes_the_passes_as_its_eval_does() -> None:
    preds = random_predictions([f"v{i}" for i in range(4)], seed=1)
    mixed = preds.outputs(BUILT_IN["cmpae_as_published"])
    off = preds.cross_modal_off
    for name in ("a_prob", "v_prob", "frame_prob"):  # a_prob1 * fuse_ratio + a_prob2 * (1 - fuse_ratio)
        np.testing.assert_allclose(getattr(mixed, name), getattr(preds, name) * 0.7 + getattr(off, name) * 0.3,
                                   rtol=1e-6)


def test_prediction_files_carry_every_pass_and_old_ones_still_evaluate(tmp_path: Path) -> None:
    names = split_names(LLP / "AVVP_val_pd.csv")
    full = random_predictions(names, seed=2)
    save_predictions(tmp_path / "full.npz", full)
    back = load_predictions(tmp_path / "full.npz")
    for name in ("global_prob", "frame_prob", "a_prob", "v_prob"):
        np.testing.assert_array_equal(getattr(back, name), getattr(full, name))
        np.testing.assert_array_equal(getattr(back.cross_modal_off, name), getattr(full.cross_modal_off, name))
    old = Predictions(names, CLASSES, full.global_prob, full.frame_prob)  # a file from before protocols
    save_predictions(tmp_path / "old.npz", old)
    with np.load(tmp_path / "old.npz") as data:
        assert sorted(data.files) == ["classes", "frame_prob", "global_prob", "video_ids"]
    assert evaluate_cli(tmp_path, tmp_path / "old.npz", split="AVVP_val_pd.csv")["n_videos"] == len(names)
    out = tmp_path / "refused.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "old.npz"), "--split-csv", str(LLP / "AVVP_val_pd.csv"),
                 "--audio-csv", str(LLP / "AVVP_eval_audio.csv"), "--visual-csv", str(LLP / "AVVP_eval_visual.csv"),
                 "--out", str(out), "--protocol", "ma_mmil_as_published"]) == 1
    assert not out.exists()


def test_protocols_refuse_nonsense_and_name_themselves() -> None:
    with pytest.raises(ValueError, match="unknown evaluation protocol 'seed'.*avvp"):
        protocol("seed")
    with pytest.raises(ValueError, match=r"frame_threshold values are probabilities"):
        Protocol("x", "x", frame_threshold=(0.5, 1.5))
    with pytest.raises(ValueError, match="gate must be one of"):
        define("mine", {"gate": "video"})
    mine = define("mine", {"base": "jomold_as_published", "frame_threshold": 0.3})
    assert mine.gate == "modality" and mine.frame_threshold == (0.3, 0.3) and mine.name == "mine"
    assert protocol("as_published", "ma_mmil").name == "ma_mmil_as_published"
    assert protocol("as_published", "a_new_method").name == "han_as_published"
    assert BUILT_IN["cmpae_as_published"].calibrated == ("visual",)
    assert BUILT_IN["cmpae_as_published"].gate_threshold[1] == CALIBRATED
    for rule in BUILT_IN.values():  # every rule says where it comes from and describes itself as JSON
        assert rule.source and json.loads(json.dumps(rule.describe()))["name"] == rule.name


def test_calibrate_then_evaluate_under_cmpae_rule(tmp_path: Path) -> None:
    """`avvp calibrate` chooses CMPAE's visual thresholds on the mixed validation probabilities (the
    released search: tests/test_calibration.py); `avvp evaluate` gates with them, and refuses without."""
    from avvp.evaluation.calibration import calibrate_thresholds

    val_names = split_names(LLP / "AVVP_val_pd.csv")
    val = random_predictions(val_names, seed=8)
    save_predictions(tmp_path / "val.npz", val)
    save_predictions(tmp_path / "test.npz", random_predictions(split_names(LLP / "AVVP_test_pd.csv"), seed=9))
    common = ["--audio-csv", str(LLP / "AVVP_eval_audio.csv"), "--visual-csv", str(LLP / "AVVP_eval_visual.csv"),
              "--protocol", "cmpae_as_published", "--legacy-audio-csv", str(LEGACY_AUDIO)]
    assert main(["calibrate", "--predictions", str(tmp_path / "val.npz"), "--split-csv", str(LLP / "AVVP_val_pd.csv"),
                 *common, "--out", str(tmp_path / "thresholds.json")]) == 0
    chosen = json.loads((tmp_path / "thresholds.json").read_text())
    assert chosen["classes"] == CLASSES and set(chosen["thresholds"]) == {"visual"}

    vocab = Vocabulary(CLASSES)
    split = read_weak(LLP / "AVVP_val_pd.csv", vocab)
    gt = ground_truth(split, read_dense(LEGACY_AUDIO, vocab, broken_names_are_orphans=True),
                      read_dense(LLP / "AVVP_eval_visual.csv", vocab))
    mixed = val.outputs(BUILT_IN["cmpae_as_published"])
    expected = calibrate_thresholds(mixed.a_prob, mixed.v_prob, mixed.frame_prob, gt.audio, gt.visual)
    assert chosen["thresholds"]["visual"] == pytest.approx(expected.tolist(), abs=0)

    scored = evaluate_cli(tmp_path, tmp_path / "test.npz", "--protocol", "cmpae_as_published",
                          "--legacy-audio-csv", str(LEGACY_AUDIO), "--calibration", str(tmp_path / "thresholds.json"))
    assert list(scored["protocol"]["calibrated_thresholds"]["visual"].values()) == chosen["thresholds"]["visual"]
    assert scored["protocol"]["forward"] == "mix" and scored["protocol"]["frame_threshold"]["audio"] == 0.25
    out = tmp_path / "refused.json"
    assert main(["evaluate", "--predictions", str(tmp_path / "test.npz"), "--split-csv", str(LLP / "AVVP_test_pd.csv"),
                 *common, "--out", str(out)]) == 1 and not out.exists()
