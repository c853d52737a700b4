"""Training end to end through the CLI on random LLP-shaped features: checkpoints, log, resume,
repeatability, then predict and evaluate on the same split."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.evaluation.annotations import read_classes, read_weak
from avvp.cli import main
from avvp.methods.stage_files import LOG_COLUMNS, read_summary
from conftest import write_random_features, write_weak_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory, llp_dir: Path) -> dict[str, Path]:
    """48 real training and 24 real validation filenames of LLP, with random features."""
    root = tmp_path_factory.mktemp("llp_small")
    vocab = read_classes(llp_dir / "classes.txt")
    out = {"root": root, "classes": llp_dir / "classes.txt"}
    for name, csv_name, n in (("train", "AVVP_train.csv", 48), ("val", "AVVP_val_pd.csv", 24)):
        split = read_weak(llp_dir / csv_name, vocab)
        out[name] = write_weak_csv(root / f"{name}.csv", list(split.filenames[:n]), split.labels[:n], vocab.classes)
        write_random_features(root / "features", list(split.video_ids[:n]), seed=len(name))
    out["audio"], out["visual"] = llp_dir / "AVVP_eval_audio.csv", llp_dir / "AVVP_eval_visual.csv"
    return out


def train_args(data: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["train", "--features", str(data["root"] / "features"), "--train-csv", str(data["train"]),
            "--val-csv", str(data["val"]), "--audio-csv", str(data["audio"]), "--visual-csv", str(data["visual"]),
            "--classes", str(data["classes"]), "--out-dir", str(out), "--batch-size", "8", "--no-progress", *extra]


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert main(train_args(data, out, "--epochs", "3", "--step-size", "2")) == 0
    return out


def test_train_writes_best_last_and_log(trained: Path) -> None:
    with (trained / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == LOG_COLUMNS and [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert [float(r["lr"]) for r in rows] == pytest.approx([3e-4, 3e-4, 3e-5])
    best = torch.load(trained / "model.pt", weights_only=True)
    scores = [float(r["segment_type_at_av"]) for r in rows]
    assert best["epoch"] == max(i + 1 for i, s in enumerate(scores) if s == max(scores))
    assert len(best["classes"]) == 25 and best["config"]["seed"] == 1
    summary = read_summary(trained)
    assert summary["kept_epoch"] == best["epoch"] and summary["keep"] == "type_at_av" and summary["epochs"] == 3
    assert torch.load(trained / "last.pt", weights_only=True)["epoch"] == 3


def test_training_is_repeatable_and_resumable(data: dict[str, Path], trained: Path, tmp_path: Path) -> None:
    assert main(train_args(data, tmp_path, "--epochs", "2", "--step-size", "2")) == 0
    assert main(train_args(data, tmp_path, "--epochs", "3", "--step-size", "2", "--resume")) == 0
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    straight = torch.load(trained / "last.pt", weights_only=True)["state_dict"]
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0)
    with (tmp_path / "log.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 3


def test_no_keep_last_removes_last_pt_once_finished(data: dict[str, Path], trained: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """--no-keep-last (the workflow's default): the finished stage keeps model.pt, log.csv and
    summary.json, the same as with last.pt kept, and no last.pt. Without a bar (--no-progress, as in
    the workflow) each epoch says how it went on a line of its own."""
    assert main(train_args(data, tmp_path, "--epochs", "3", "--step-size", "2", "--no-keep-last")) == 0
    epochs = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1 of 3", "epoch 2 of 3", "epoch 3 of 3"]
    assert "loss" in epochs[0] and "validation segment Type@AV" in epochs[0]
    assert not (tmp_path / "last.pt").exists()
    ours, kept = (torch.load(d / "model.pt", weights_only=True) for d in (tmp_path, trained))
    assert ours["epoch"] == kept["epoch"] and (tmp_path / "log.csv").read_text() != ""
    for key, value in kept["state_dict"].items():
        torch.testing.assert_close(ours["state_dict"][key], value, rtol=0, atol=0)


def test_resume_refuses_another_recipe(data: dict[str, Path], trained: Path, capsys) -> None:
    assert main(train_args(data, trained, "--epochs", "4", "--lr", "1e-3", "--resume")) == 1
    assert "other training settings" in capsys.readouterr().err


def test_resume_auto_starts_afresh_from_a_corrupt_or_foreign_last_pt(data: dict[str, Path], trained: Path,
                                                                    tmp_path: Path, capsys) -> None:
    """What the workflow's training rule uses: a last.pt cut off by a kill, or written with other
    settings, is set aside (saying why), and the result is that of a fresh run."""
    (tmp_path / "last.pt").write_bytes((trained / "last.pt").read_bytes()[:1000])  # cut off
    assert main(train_args(data, tmp_path, "--epochs", "3", "--step-size", "2", "--resume")) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'last.pt'}: not a readable checkpoint" in err and err.count("\n") == 1
    assert main(train_args(data, tmp_path, "--epochs", "3", "--step-size", "2", "--resume", "auto")) == 0
    err = capsys.readouterr().err
    assert "not a readable checkpoint" in err and "starting from epoch 1" in err
    fresh = torch.load(tmp_path / "last.pt", weights_only=True)["state_dict"]
    straight = torch.load(trained / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(fresh[key], straight[key]) for key in straight)
    assert main(train_args(data, tmp_path, "--epochs", "3", "--step-size", "3", "--resume", "auto")) == 0
    assert "other training settings: starting from epoch 1" in capsys.readouterr().err


def _foreign_last_pts(trained: Path) -> dict[str, object]:
    """Files a last.pt may be that this program did not write as a training state."""
    model_pt = torch.load(trained / "model.pt", weights_only=True)  # our format, no optimiser
    last_pt = torch.load(trained / "last.pt", weights_only=True)
    return {"text": b"not a checkpoint at all\n", "tensor": torch.zeros(3), "list": [1, 2, 3],
            "other program": {"epoch": 3, "weights": torch.zeros(2)}, "model.pt": model_pt,
            "no config": {k: v for k, v in last_pt.items() if k != "config"},
            "other stage": {**last_pt, "objective": {"name": "someone else's"}}}


def test_resume_auto_starts_afresh_from_any_foreign_last_pt(data: dict[str, Path], trained: Path,
                                                           tmp_path: Path, capsys) -> None:
    """A file that is no torch checkpoint, another program's dict and our format with a key missing
    or from another stage: `--resume auto` starts afresh saying why; `--resume` refuses in one line."""
    for name, payload in _foreign_last_pts(trained).items():
        out = tmp_path / name.replace(" ", "_")
        out.mkdir()
        if isinstance(payload, bytes):
            (out / "last.pt").write_bytes(payload)
        else:
            torch.save(payload, out / "last.pt")
        assert main(train_args(data, out, "--epochs", "1", "--resume")) == 1, name
        err = capsys.readouterr().err
        assert str(out / "last.pt") in err and err.count("\n") == 1, (name, err)
        assert main(train_args(data, out, "--epochs", "1", "--resume", "auto")) == 0, name
        err = capsys.readouterr().err
        assert str(out / "last.pt") in err and "starting from epoch 1" in err, (name, err)
        assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 1, name


def test_predict_and_evaluate_the_trained_model(data: dict[str, Path], trained: Path, tmp_path: Path) -> None:
    preds = tmp_path / "val.npz"
    assert main(["predict", "--checkpoint", str(trained / "model.pt"), "--features",
                 str(data["root"] / "features"), "--split-csv", str(data["val"]), "--out", str(preds)]) == 0
    with np.load(preds) as npz:
        assert npz["frame_prob"].shape == (24, 10, 2, 25) and npz["frame_prob"].dtype == np.float32
        assert tuple(npz["video_ids"].tolist()) == read_weak(data["val"], read_classes(data["classes"])).filenames
    metrics = tmp_path / "metrics.json"
    assert main(["evaluate", "--predictions", str(preds), "--split-csv", str(data["val"]),
                 "--audio-csv", str(data["audio"]), "--visual-csv", str(data["visual"]), "--out", str(metrics)]) == 0
    body = json.loads(metrics.read_text())
    best = torch.load(trained / "model.pt", weights_only=True)
    assert body["n_videos"] == 24
    assert body["segment_level"]["type_at_av"] == pytest.approx(best["val_metrics"]["segment_level"]["type_at_av"])


def test_missing_features_are_a_clear_error(data: dict[str, Path], tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    args = train_args(data, tmp_path / "out", "--epochs", "1")
    args[2] = str(empty)
    assert main(args) == 1
    assert "no vggish features for video" in capsys.readouterr().err


def test_resume_writes_the_kept_epoch_again_whatever_was_removed(data: dict[str, Path], tmp_path: Path,
                                                                  capsys) -> None:
    """What Snakemake does to a killed job: its outputs (model.pt, log.csv, summary.json) are
    removed, last.pt stays. Resuming after the kept epoch, with no later epoch kept (lr 0: every
    epoch scores the same, and `type_at_av_first` keeps the first), still writes all three as an
    uninterrupted run does; so does a finished last.pt, training nothing. (`--resume`, not `auto`:
    --features packs the splits again each run, newer than last.pt.)"""
    recipe = ("--lr", "0", "--keep", "type_at_av_first")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(train_args(data, straight, "--epochs", "3", *recipe)) == 0
    assert main(train_args(data, resumed, "--epochs", "2", *recipe)) == 0
    outputs = ("model.pt", "log.csv", "summary.json")

    def same() -> None:
        ours, theirs = (torch.load(d / "model.pt", weights_only=True) for d in (resumed, straight))
        assert ours["epoch"] == theirs["epoch"] == 1
        assert all(torch.equal(ours["state_dict"][k], theirs["state_dict"][k]) for k in theirs["state_dict"])
        assert read_summary(resumed) == read_summary(straight)
        rows = [[{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader((d / "log.csv").open())]
                for d in (resumed, straight)]
        assert rows[0] == rows[1] and len(rows[0]) == 3

    for name in outputs:
        (resumed / name).unlink()
    capsys.readouterr()
    assert main(train_args(data, resumed, "--epochs", "3", *recipe, "--resume")) == 0
    assert "after epoch 2" in capsys.readouterr().err
    same()
    for name in outputs:
        (resumed / name).unlink()
    assert main(train_args(data, resumed, "--epochs", "3", *recipe, "--resume")) == 0
    assert "after epoch 3" in capsys.readouterr().err
    same()
