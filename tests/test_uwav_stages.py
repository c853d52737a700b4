"""UWAV's stages through the command line: `avvp pass --stage uwav_pretrain` pretrains the generator on
a dense-label data set in UnAV-100's form (or takes a released one), `avvp pass --stage uwav_labels`
writes its logits, the thresholds chosen on the validation split and the masked hard labels (each the
verified function of tests/test_uwav_generator.py on the pass's data), and `avvp train --stage
uwav_train` trains UWAV's HAN on them."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.cli import main
from avvp.evaluation.annotations import read_classes, read_dense, read_weak, ground_truth
from avvp.features.store import load_packed, pack_split
from avvp.methods.label_tables import read_segment_table
from avvp.methods.uwav_labels import classwise_thresholds
from avvp.methods.valor import pseudo_labels
from avvp.model.checkpoint import read_checkpoint
from avvp.model.uwav import UWAVGenerator
from conftest import write_random_features
from workflow_helpers import small_demo_dataset

KINDS = ("vggish", "res152", "r2plus1d_18", "clip", "clap_windows")
SHAPES = {"vggish": (10, 128), "res152": (80, 2048), "r2plus1d_18": (10, 512), "clip": (10, 768),
          "clap_windows": (10, 512)}


@pytest.fixture(scope="module")
def uwav_data(tmp_path_factory) -> dict[str, Path]:
    """A small demo data set, random features of every kind UWAV reads, its train and val packs, and a
    small generator in the released file format with random prompt embeddings."""
    root = tmp_path_factory.mktemp("uwav")
    chosen = small_demo_dataset(root / "data", {"train": 8, "val": 6})
    features = write_random_features(root / "features", [name[:11] for name in chosen], shapes=SHAPES)
    vocab = read_classes(root / "data" / "classes.txt")
    for split in ("train", "val"):
        pack_split(read_weak(root / "data" / f"{split}.csv", vocab), {k: [features / k] for k in KINDS},
                   root / f"{split}_pack", kinds=KINDS)
    rng = np.random.default_rng(1)
    texts = {"audio": rng.normal(size=(len(vocab), 512)).astype(np.float32),
             "visual": rng.normal(size=(len(vocab), 768)).astype(np.float32)}
    for modality, text in texts.items():
        np.save(root / f"{modality}_text.npy", text)
    torch.manual_seed(2)
    # the released file does not say its head count: the pass builds the released 16
    generator = UWAVGenerator(torch.from_numpy(texts["audio"]), torch.from_numpy(texts["visual"]), hidden=32, heads=16,
                              ff=8, layers=1)
    torch.save(generator.state_dict(), root / "generator.pt")
    assert main(["pass", "--stage", "uwav_pretrain", "--released", str(root / "generator.pt"),
                 "--out-dir", str(root / "pretrained")]) == 0
    return {"root": root, "data": root / "data", "train_pack": root / "train_pack", "val_pack": root / "val_pack",
            "generator": root / "pretrained", "audio_text": root / "audio_text.npy",
            "visual_text": root / "visual_text.npy"}


def labels_pass(data: dict[str, Path], out: Path, generator: Path | None = None) -> int:
    return main(["pass", "--stage", "uwav_labels", "--generator", str(generator or data["generator"]),
                 "--audio-text", str(data["audio_text"]), "--visual-text", str(data["visual_text"]),
                 "--train-pack", str(data["train_pack"]), "--val-pack", str(data["val_pack"]),
                 "--val-csv", str(data["data"] / "val.csv"), "--audio-csv", str(data["data"] / "eval_audio.csv"),
                 "--visual-csv", str(data["data"] / "eval_visual.csv"), "--device", "cpu", "--out-dir", str(out)])


def test_the_labels_pass_writes_the_generators_logits_thresholds_and_masked_labels(uwav_data, tmp_path) -> None:
    out = tmp_path / "labels"
    assert labels_pass(uwav_data, out) == 0
    texts = {m: np.load(uwav_data[f"{m}_text"]) for m in ("audio", "visual")}
    unit = {m: torch.from_numpy(t / np.linalg.norm(t, axis=1, keepdims=True)) for m, t in texts.items()}
    generator = UWAVGenerator.from_released(torch.load(uwav_data["root"] / "generator.pt", weights_only=True),
                                            unit["audio"], unit["visual"]).eval()
    packs = {s: load_packed(uwav_data[f"{s}_pack"]) for s in ("train", "val")}
    with torch.no_grad():
        logits = {s: dict(zip(("audio", "visual"), (x.numpy() for x in generator(
            torch.tensor(np.asarray(p.arrays["clap_windows"])), torch.tensor(np.asarray(p.arrays["clip"]))))))
            for s, p in packs.items()}
    vocab = read_classes(uwav_data["data"] / "classes.txt")
    truth = ground_truth(read_weak(uwav_data["data"] / "val.csv", vocab),
                         read_dense(uwav_data["data"] / "eval_audio.csv", vocab),
                         read_dense(uwav_data["data"] / "eval_visual.csv", vocab))
    assert (out / "videos.txt").read_text().split() == list(packs["train"].filenames)
    for modality in ("audio", "visual"):
        np.testing.assert_allclose(np.load(out / f"{modality}_logits.npy"), logits["train"][modality], atol=1e-5)
        expected = classwise_thresholds(logits["val"][modality], np.moveaxis(getattr(truth, modality), 1, 2),
                                        packs["val"].labels)
        thresholds = np.load(out / f"{modality}_thresholds.npy")
        np.testing.assert_allclose(thresholds, expected, atol=1e-4)
        table = read_segment_table(out / f"{modality}_labels.tsv", vocab.classes)
        hard = np.stack([table[f] for f in packs["train"].filenames])
        train_logits = np.load(out / f"{modality}_logits.npy")
        np.testing.assert_array_equal(hard, pseudo_labels(train_logits, thresholds, packs["train"].labels))
        assert hard.any() and not hard[packs["train"].labels[:, None, :].repeat(10, 1) == 0].any()


def test_the_labels_pass_takes_a_released_generator_file_as_it_is(uwav_data, tmp_path, capsys) -> None:
    """`--generator GENERATOR.pt` (a released-format file, no uwav_pretrain folder) gives the labels
    that the folder holding the same file gives; a path that is neither is named."""
    assert labels_pass(uwav_data, tmp_path / "folder") == 0
    assert labels_pass(uwav_data, tmp_path / "file", uwav_data["root"] / "generator.pt") == 0
    for name in ("audio_logits.npy", "visual_thresholds.npy", "audio_labels.tsv", "visual_labels.tsv"):
        assert (tmp_path / "file" / name).read_bytes() == (tmp_path / "folder" / name).read_bytes(), name
    assert labels_pass(uwav_data, tmp_path / "none", tmp_path / "nowhere.pt") == 1
    assert "nowhere.pt: neither a generator state dict" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_the_labels_pass_needs_the_pretrained_generator_and_the_validation_split(uwav_data, tmp_path, capsys) -> None:
    args = ["pass", "--stage", "uwav_labels", "--train-pack", str(uwav_data["train_pack"]), "--device", "cpu",
            "--out-dir", str(tmp_path / "x")]
    assert main([*args, "--generator", str(uwav_data["generator"])]) == 1
    assert "chooses on the validation split: give --val-pack" in capsys.readouterr().err
    assert main([*args, "--val-pack", str(uwav_data["val_pack"]), "--val-csv", str(uwav_data["data"] / "val.csv"),
                 "--audio-csv", str(uwav_data["data"] / "eval_audio.csv"),
                 "--visual-csv", str(uwav_data["data"] / "eval_visual.csv")]) == 1
    assert "stage uwav_labels needs ['--generator']" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_uwav_train_trains_uwavs_han_on_the_passs_logits(uwav_data, tmp_path) -> None:
    labels = tmp_path / "labels"
    assert labels_pass(uwav_data, labels) == 0
    out = tmp_path / "train"
    data = uwav_data["data"]
    assert main(["train", "--stage", "uwav_train", "--pseudo-labels", str(labels),
                 "--train-pack", str(uwav_data["train_pack"]), "--val-pack", str(uwav_data["val_pack"]),
                 "--train-csv", str(data / "train.csv"), "--val-csv", str(data / "val.csv"),
                 "--audio-csv", str(data / "eval_audio.csv"), "--visual-csv", str(data / "eval_visual.csv"),
                 "--classes", str(data / "classes.txt"), "--out-dir", str(out), "--epochs", "2", "--batch-size", "4",
                 "--hidden", "16", "--heads", "2", "--ff", "8", "--layers", "1", "--no-progress"]) == 0
    payload = read_checkpoint(out / "model.pt")
    assert payload["model_options"]["network"] == "uwav" and payload["model_options"]["layers"] == 1
    assert len((out / "log.csv").read_text().splitlines()) == 3


def write_dense_set(root: Path, n_classes: int = 3) -> dict[str, Path]:
    """A dense-label data set in UnAV-100's form: 6 training and 3 validation videos of 7 to 13 s
    (fractional durations), events of each class, feature files with more rows than seconds."""
    rng = np.random.default_rng(5)
    database = {}
    for i in range(9):
        duration = 7 + i % 7 + 0.4
        events = [{"segment": [float(s), float(min(s + 2.5, duration))], "label": f"event {c}", "label_id": c}
                  for c in range(n_classes) for s in [rng.integers(0, 5)] if (i + c) % 2 == 0 or c == 0]
        database[f"video{i:02d}"] = {"subset": "train" if i < 6 else "validation", "duration": duration,
                                     "annotations": events}
    (root / "annotations.json").write_text(json.dumps({"database": database}), encoding="utf-8")
    for kind, width in (("clap", 512), ("clip", 768)):
        (root / kind).mkdir()
        for video, item in database.items():
            np.save(root / kind / f"{video}.npy", rng.normal(size=(int(item["duration"] * 2) + 1, width)).astype(np.float32))
    for modality, width in (("audio", 512), ("visual", 768)):
        np.save(root / f"{modality}_text.npy", rng.normal(size=(n_classes, width)).astype(np.float32))
    return {"annotations": root / "annotations.json", "clap": root / "clap", "clip": root / "clip",
            "audio_text": root / "audio_text.npy", "visual_text": root / "visual_text.npy"}


def test_uwav_pretrain_trains_a_generator_that_loads_in_the_released_format(tmp_path) -> None:
    """Two epochs on the dense set: a log row per epoch, the kept epoch the first best validation score,
    generator.pt a plain state dict that loads strictly (and differs from the untrained weights); the
    same seed gives the same generator."""
    dense = write_dense_set(tmp_path)
    args = ["pass", "--stage", "uwav_pretrain", "--annotations", str(dense["annotations"]),
            "--clap-features", str(dense["clap"]), "--clip-features", str(dense["clip"]),
            "--audio-text", str(dense["audio_text"]), "--visual-text", str(dense["visual_text"]),
            "--epochs", "2", "--batch-size", "4", "--hidden", "32", "--heads", "16", "--ff", "8", "--layers", "1",
            "--device", "cpu"]
    for name in ("a", "b"):
        assert main([*args, "--out-dir", str(tmp_path / name)]) == 0
    rows = [line.split(",") for line in (tmp_path / "a" / "log.csv").read_text().splitlines()]
    assert rows[0] == ["epoch", "loss", "val_segment_av", "lr", "seconds"] and len(rows) == 3
    scores = [float(r[2]) for r in rows[1:]]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["kept_epoch"] == 1 + scores.index(max(scores)) and summary["heads"] == 16
    assert summary["train_videos"] == 6 and summary["val_videos"] == 3 and summary["classes"] == 3
    state = torch.load(tmp_path / "a" / "generator.pt", weights_only=True)
    texts = [torch.from_numpy(np.load(dense[f"{m}_text"])) for m in ("audio", "visual")]
    UWAVGenerator.from_released(state, *texts)  # strict: the released names, nothing else
    again = torch.load(tmp_path / "b" / "generator.pt", weights_only=True)
    assert all(torch.equal(state[k], again[k]) for k in state)
    torch.manual_seed(1000)
    untrained = UWAVGenerator(*texts, hidden=32, heads=16, ff=8, layers=1).state_dict()
    assert not torch.equal(untrained["proj_a.layers.0.weight"], state["proj_a.layers.0.weight"])


def test_uwav_pretrain_names_what_it_lacks(tmp_path, capsys) -> None:
    dense = write_dense_set(tmp_path)
    assert main(["pass", "--stage", "uwav_pretrain", "--annotations", str(dense["annotations"]),
                 "--out-dir", str(tmp_path / "x")]) == 1
    assert "needs the dense-label data set (--clap-features, --clip-features) or --released" in capsys.readouterr().err
    (dense["clip"] / "video07.npy").unlink()
    assert main(["pass", "--stage", "uwav_pretrain", "--annotations", str(dense["annotations"]),
                 "--clap-features", str(dense["clap"]), "--clip-features", str(dense["clip"]),
                 "--audio-text", str(dense["audio_text"]), "--visual-text", str(dense["visual_text"]),
                 "--epochs", "1", "--hidden", "32", "--ff", "8", "--layers", "1", "--out-dir", str(tmp_path / "y")]) == 1
    assert "video07.npy: no features of video video07" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
