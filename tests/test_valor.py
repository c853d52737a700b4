"""VALOR's zero-shot pseudo-label pass: prompts as data, exact labels from known logits, masking by
the video labels, segment label tables, and the pass end to end on a packed split."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from avvp.annotations import read_classes, read_weak
from avvp.extractors import clap, clip
from avvp.features import pack_split
from avvp.methods.label_tables import read_segment_table, write_segment_table
from avvp.methods.passes import run_pass
from avvp.methods.stages import PassJob, stage
from avvp.methods.valor import LabelSettings, pseudo_labels, read_prompts
from conftest import write_random_features, write_weak_csv


def test_pseudo_labels_from_known_logits_are_exact_and_masked() -> None:
    logits = np.array([[[20.0, 15.5, 3.0]] * 2 + [[20.5, 15.0, 99.0]] * 8])  # (1 video, 10 segments, 3 classes)
    thresholds = np.array([20.0, 15.0, 0.0])
    video = np.array([[1, 1, 0]])  # class 2 is not a label of the video: never kept, whatever its logit
    labels = pseudo_labels(logits, thresholds, video)
    expected = np.zeros((1, 10, 3), np.float32)
    expected[0, :2, 1] = 1  # 15.5 > 15; 20.0 is not > 20 (strict)
    expected[0, 2:, 0] = 1  # 20.5 > 20; 15.0 is not > 15
    np.testing.assert_array_equal(labels, expected)


def test_valors_llp_prompts_and_thresholds_are_data() -> None:
    prompts, where = read_prompts()
    assert len(prompts.classes) == 25 and "VALOR" in where
    assert prompts.prompts["visual"][prompts.classes.index("Vacuum_cleaner")] == "A photo of a vaccum cleaner."
    assert prompts.prompts["visual"][prompts.classes.index("Acoustic_guitar")] == "A photo of a acoustic guiter."
    assert prompts.prompts["audio"][prompts.classes.index("Chicken_rooster")] == "This is a sound of chicken, rooster"
    assert prompts.thresholds["visual"].tolist()[:4] == [20, 15, 18, 14]
    assert prompts.thresholds["audio"][prompts.classes.index("Frying_(food)")] == -2
    ordered = prompts.for_classes(["Dog", "Speech"], "x")
    assert ordered.prompts["visual"] == ("A photo of a dog.", "A photo of people talking.")
    assert ordered.thresholds["audio"].tolist() == [4, 0]
    with pytest.raises(ValueError, match="no prompts for class"):
        prompts.for_classes(["Dog", "Kazoo"], "my.json")


def test_segment_tables_round_trip(tmp_path) -> None:
    labels = np.zeros((2, 10, 3), np.float32)
    labels[0, 3, [0, 2]] = 1
    write_segment_table(tmp_path / "t.tsv", ["a.mp4", "b.mp4"], labels, ("x", "y", "z"))
    table = read_segment_table(tmp_path / "t.tsv", ("x", "y", "z"))
    np.testing.assert_array_equal(table["a.mp4"], labels[0])
    np.testing.assert_array_equal(table["b.mp4"], labels[1])
    (tmp_path / "bad.tsv").write_text("filename\tsegment\tevent_labels\na.mp4\t0\tx\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not have all 10 segments"):
        read_segment_table(tmp_path / "bad.tsv", ("x", "y", "z"))


def test_label_pass_end_to_end_on_a_packed_split(tmp_path) -> None:
    """The pass with the full-size random CLIP and CLAP: labels = VALOR's rule on the logits the
    models' own text towers give, tables per modality, and a summary saying they carry no meaning."""
    classes = ("Dog", "Speech", "Car")
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    names = [f"vid{i:02d}aaaaaa_0_10" for i in range(4)]
    ids = [n[:11] for n in names]
    video = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 1]])
    split = read_weak(write_weak_csv(tmp_path / "train.csv", names, video, classes), read_classes(tmp_path / "classes.txt"))
    root = write_random_features(tmp_path / "features", ids, shapes={"vggish": (10, 128), "clip": (10, 768),
                                                                     "clap_windows": (10, 512)})
    packed = pack_split(split, {k: [root / k] for k in ("vggish", "clip", "clap_windows")}, tmp_path / "pack",
                        kinds=("vggish", "clip", "clap_windows"))
    # thresholds at each class's median logit, so that both outcomes occur
    clip_model, _ = clip.random_clip(0)
    clap_model, _ = clap.random_clap(0)
    prompts, _ = read_prompts()
    prompts = prompts.for_classes(classes, "x")
    with torch.inference_mode():
        v_logits = clip.zero_shot_logits(clip_model, "random", np.asarray(packed.arrays["clip"]), prompts.prompts["visual"])
        a_logits = clap.zero_shot_logits(clap_model, "random", np.asarray(packed.arrays["clap_windows"]),
                                         prompts.prompts["audio"])
    thresholds = {"visual": np.median(v_logits, axis=(0, 1)), "audio": np.median(a_logits, axis=(0, 1))}
    user = {"classes": {c: {f"{m}_prompt": prompts.prompts[m][i] for m in ("visual", "audio")}
                        | {f"{m}_threshold": float(thresholds[m][i]) for m in ("visual", "audio")}
                        for i, c in enumerate(classes)}}
    (tmp_path / "prompts.json").write_text(json.dumps(user), encoding="utf-8")
    spec = stage("valor_labels")
    job = PassJob(LabelSettings(prompts=str(tmp_path / "prompts.json")), {}, tmp_path / "pack", tmp_path / "labels",
                  seed=1, device="cpu")
    run_pass(spec, job)
    for modality, logits in (("visual", v_logits), ("audio", a_logits)):
        table = read_segment_table(tmp_path / "labels" / f"{modality}_labels.tsv", classes)
        got = np.stack([table[n] for n in names])
        expected = ((logits > thresholds[modality]) & (video[:, None, :] > 0)).astype(np.float32)
        np.testing.assert_array_equal(got, expected)
        assert 0 < got.sum() < video.sum() * 10
    summary = json.loads((tmp_path / "labels" / "labels.json").read_text(encoding="utf-8"))
    assert summary["meaningful"] is False and "no meaning" in summary["note"]


def test_label_pass_needs_the_embeddings_in_the_pack(tmp_path) -> None:
    classes = ("Dog", "Speech")
    (tmp_path / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    names = ["vid00aaaaaa_0_10"]
    split = read_weak(write_weak_csv(tmp_path / "t.csv", names, np.array([[1, 0]]), classes),
                      read_classes(tmp_path / "classes.txt"))
    root = write_random_features(tmp_path / "f", ["vid00aaaaaa"], shapes={"vggish": (10, 128)})
    pack_split(split, {"vggish": [root / "vggish"]}, tmp_path / "pack", kinds=("vggish",))
    job = PassJob(LabelSettings(), {}, tmp_path / "pack", tmp_path / "labels", seed=1, device="cpu")
    with pytest.raises(ValueError, match="no clip, clap_windows features"):
        run_pass(stage("valor_labels"), job)
    assert not (tmp_path / "labels").exists()
