"""`avvp evaluate-checkpoint`: a released checkpoint and an LLP-layout features folder give the ten
numbers that `avvp predict` (+ `avvp calibrate`) + `avvp evaluate` give, beside the published ones."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from avvp.cli import main
from avvp.model.han import HAN
from conftest import write_random_features
from released_formats import save_released
from test_cmpae import released_checkpoint, released_net
from uwav_released import released_net as released_uwav_net

LLP = Path(__file__).resolve().parents[1] / "data" / "llp"


@pytest.fixture(scope="module")
def llp_subset(tmp_path_factory) -> dict[str, Path]:
    """LLP's annotation folder with 6 test and 6 validation videos, and random features for them."""
    root = tmp_path_factory.mktemp("llp")
    ann = root / "annotations"
    (ann / "legacy").mkdir(parents=True)
    ids = []
    for name in ("AVVP_test_pd.csv", "AVVP_val_pd.csv"):
        lines = (LLP / name).read_text().splitlines()
        (ann / name).write_text("\n".join(lines[:7]) + "\n")
        ids += [line.split("\t")[0][:11] for line in lines[1:7]]
    for name in ("AVVP_eval_audio.csv", "AVVP_eval_visual.csv", "legacy/AVVP_eval_audio_2020.csv"):
        shutil.copy(LLP / name, ann / name)
    return {"annotations": ann, "features": write_random_features(root / "features", ids, seed=3)}


def by_hand(tmp_path: Path, llp: dict[str, Path], checkpoint: Path, method: str, calibrated: bool) -> dict:
    """avvp predict (+ calibrate) + evaluate under `method`'s published rule."""
    ann = llp["annotations"]
    common = ["--audio-csv", str(ann / "AVVP_eval_audio.csv"), "--visual-csv", str(ann / "AVVP_eval_visual.csv"),
              "--protocol", "as_published", "--method", method,
              "--legacy-audio-csv", str(ann / "legacy" / "AVVP_eval_audio_2020.csv")]
    for split in ("val", "test"):
        assert main(["predict", "--checkpoint", str(checkpoint), "--features", str(llp["features"]), "--split-csv",
                     str(ann / f"AVVP_{split}_pd.csv"), "--classes", str(LLP / "classes.txt"), "--device", "cpu",
                     "--out", str(tmp_path / f"{split}.npz")]) == 0
    extra = []
    if calibrated:
        assert main(["calibrate", "--predictions", str(tmp_path / "val.npz"), "--split-csv",
                     str(ann / "AVVP_val_pd.csv"), "--out", str(tmp_path / "thresholds.json"), *common]) == 0
        extra = ["--calibration", str(tmp_path / "thresholds.json")]
    assert main(["evaluate", "--predictions", str(tmp_path / "test.npz"), "--split-csv", str(ann / "AVVP_test_pd.csv"),
                 "--out", str(tmp_path / "by_hand.json"), *common, *extra]) == 0
    return json.loads((tmp_path / "by_hand.json").read_text())


@pytest.mark.parametrize("released", ["han", "jomold", "cmpae", "uwav"])
def test_released_checkpoints_give_the_numbers_of_predict_and_evaluate(tmp_path: Path, llp_subset: dict[str, Path],
                                                                      capsys, released: str) -> None:
    if released == "cmpae":
        checkpoint = released_checkpoint(released_net(7).float(), tmp_path / "cmpae.pt")
    elif released == "uwav":  # main.py saves the plain state_dict()
        checkpoint = tmp_path / "uwav.pt"
        torch.save(released_uwav_net(7).float().state_dict(), checkpoint)
    else:
        torch.manual_seed(7)
        checkpoint = save_released(tmp_path / f"{released}.pt", HAN(25), released)
    out = tmp_path / "metrics.json"
    assert main(["evaluate-checkpoint", "--checkpoint", str(checkpoint), "--features", str(llp_subset["features"]),
                 "--annotations", str(llp_subset["annotations"]), "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ours = json.loads(out.read_text())
    assert ours["method"] == released and ours["n_videos"] == 6
    assert ours["protocol"]["name"] == f"{released}_as_published" and ours["protocol"]["annotations_scored"] == "legacy"
    expected = by_hand(tmp_path, llp_subset, checkpoint, released, calibrated=released == "cmpae")
    for level in ("segment_level", "event_level"):
        assert ours[level] == expected[level]
    first = printed.splitlines()[2]
    assert first.split()[:2] == ["segment_level", "audio"]
    assert f"{ours['segment_level']['audio']:.2f}" in first
    if released == "han":
        assert first.split()[-1] == "60.1" and "HAN (Tian, Li, Xu, ECCV 2020)" in printed


def test_missing_annotation_files_are_named(tmp_path: Path, capsys) -> None:
    checkpoint = save_released(tmp_path / "han.pt", HAN(25), "han")
    assert main(["evaluate-checkpoint", "--checkpoint", str(checkpoint), "--features", str(tmp_path),
                 "--annotations", str(tmp_path)]) == 1
    assert f"--annotations {tmp_path}: missing {tmp_path / 'AVVP_test_pd.csv'}" in capsys.readouterr().err
