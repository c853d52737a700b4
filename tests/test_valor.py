"""VALOR: the zero-shot pseudo-label pass (prompts as data, exact labels from known logits, masking
by the video labels, segment label tables, the pass on a packed split) and the training stage (its
schedule, loss, encoder order, keep rule, and the method end to end through the CLI)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.evaluation.annotations import read_classes, read_weak
from avvp.model.checkpoint import load_han, save_checkpoint
from avvp.cli import main
from avvp.extractors import PUBLISHED, clap, clip
from avvp.features.store import load_packed, pack_split, released_source
from avvp.methods.label_tables import read_segment_table, write_segment_table
from avvp.methods.objectives import Batch, ValorObjective
from avvp.methods.passes import run_pass
from avvp.methods.stages import PassJob, method, stage
from avvp.methods.training import ModalityTargets
from avvp.methods.valor import LabelSettings, ValorSettings, pseudo_labels, read_prompts, warm_up_cosine
from avvp.model.han import HAN, HybridAttentionEncoder
from avvp.model.predictions import load_predictions
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


# ---------------------------------------------------------------- training stage


def test_the_label_pass_is_the_same_for_every_seed_and_only_such_a_pass_may_say_so() -> None:
    from avvp.methods.stages import Pass

    assert stage("valor_labels").per_seed is False and stage("valor_labels").inputs == ()
    assert stage("valor_train").per_seed and stage("ma_mmil_refine").per_seed
    with pytest.raises(ValueError, match="runs the model of han, which differs per seed"):
        Pass("frozen", "a pass over a trained model", LabelSettings(), lambda job: "", model_of="han", per_seed=False)


def test_learning_rate_schedule_is_valors() -> None:
    """Epoch 1 = 0.1 lr_max, epoch 10 = lr_max, epoch 60 = lr_min; the scheduler sets each epoch's rate."""
    assert warm_up_cosine(1, 60, 10, 1e-4, 1e-6) == pytest.approx(1e-5)
    assert warm_up_cosine(9, 60, 10, 1e-4, 1e-6) == pytest.approx(9e-5)
    assert warm_up_cosine(10, 60, 10, 1e-4, 1e-6) == pytest.approx(1e-4)
    assert warm_up_cosine(35, 60, 10, 1e-4, 1e-6) == pytest.approx(1e-6 + 0.5 * (1e-4 - 1e-6))
    assert warm_up_cosine(60, 60, 10, 1e-4, 1e-6) == pytest.approx(1e-6)
    settings = stage("valor_train").defaults
    optimizer = settings.optimizer([torch.nn.Parameter(torch.zeros(1))])
    scheduler = settings.scheduler(optimizer)
    rates = []
    for _ in range(settings.epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([warm_up_cosine(e, 60, 10, 1e-4, 1e-6) for e in range(1, 61)])
    group = optimizer.param_groups[0]
    assert type(optimizer).__name__ == "AdamW" and group["betas"] == (0.5, 0.999)
    assert group["eps"] == 1e-8 and group["weight_decay"] == 1e-3 and settings.max_grad_norm() == 1.0


def test_valor_objective_equals_a_hand_computation() -> None:
    """Video BCE on the clamped global score + BCE with logits of the segment logits, written out."""
    torch.manual_seed(0)
    model = HAN(3, **ValorSettings(hidden=16, heads=2, ff=8).model_options()).eval()
    inputs = tuple(torch.rand(2, 10, d) for d in (128, 2048, 512))
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    audio = (torch.rand(2, 10, 3) > 0.5).float() * labels[:, None]
    visual = (torch.rand(2, 10, 3) > 0.5).float() * labels[:, None]
    batch = Batch(inputs, labels, audio, visual, np.arange(2), 1, 0, 1)
    loss = ValorObjective()(model, batch)

    streams = model.encode(*inputs)
    stacked = torch.stack((streams.audio, streams.visual), dim=2)
    logits = stacked @ model.fc_prob.weight.T + model.fc_prob.bias  # (2, 10, 2, 3)
    p = model(*inputs)[0].clamp(1e-7, 1 - 1e-7)
    video = -(labels * p.log() + (1 - labels) * (1 - p).log()).mean()

    def with_logits(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (-(t * torch.sigmoid(z).log() + (1 - t) * torch.sigmoid(-z).log())).mean()

    expected = video + with_logits(logits[:, :, 0], audio) + with_logits(logits[:, :, 1], visual)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.sigmoid(logits), model(*inputs)[3])


@pytest.mark.parametrize("n_layers", [1, 2])
def test_valor_update_order_is_a_two_step_computation(n_layers: int) -> None:
    """VALOR: audio updated first, the visual stream attending to it; HAN: both to the layer's inputs."""
    torch.manual_seed(0)
    valor = HybridAttentionEncoder(n_layers, audio_first=True, d_model=16, n_heads=4, d_ff=32).eval()
    han = HybridAttentionEncoder(n_layers, d_model=16, n_heads=4, d_ff=32).eval()
    han.load_state_dict(valor.state_dict())
    a, v = torch.rand(2, 10, 16), torch.rand(2, 10, 16)
    with torch.no_grad():
        a1, v1 = a, v
        a2, v2 = a, v
        for layer in valor.layers:
            a1 = layer(a1, v1)
            v1 = layer(v1, a1)  # the updated audio
            a2, v2 = layer(a2, v2), layer(v2, a2)  # the layer's input audio
        got_valor, got_han = valor(a, v), han(a, v)
    torch.testing.assert_close(got_valor[0], a1)
    torch.testing.assert_close(got_valor[1], v1)
    torch.testing.assert_close(got_han[0], a2)
    torch.testing.assert_close(got_han[1], v2)
    assert not torch.allclose(got_valor[1], got_han[1])


def test_architecture_options_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    assert set(HAN(4).options()) == {"features", "dropout", "cross_modal", "visual_dropout"}  # as before
    torch.manual_seed(0)
    model = HAN(4, ("clap", "clip", "r2plus1d_18"), hidden=32, heads=4, ff=64, layers=2, audio_first=True).eval()
    assert model.options() == {"features": ["clap", "clip", "r2plus1d_18"], "dropout": 0.1, "cross_modal": True,
                               "visual_dropout": 0.0, "hidden": 32, "heads": 4, "ff": 64, "layers": 2,
                               "audio_first": True}
    save_checkpoint(tmp_path / "model.pt", model, ["a", "b", "c", "d"])
    loaded, _, _ = load_han(tmp_path / "model.pt")
    assert loaded.options() == model.options() and len(loaded.hat_encoder.layers) == 2
    inputs = (torch.rand(2, 64, 768), torch.rand(2, 10, 768), torch.rand(2, 10, 512))
    with torch.no_grad():
        for ours, theirs in zip(loaded(*inputs), model(*inputs)):
            assert torch.equal(ours, theirs)


@pytest.fixture(scope="module")
def valor_data(tmp_path_factory, llp_dir: Path) -> dict[str, Path]:
    """24 real training and 12 validation filenames of LLP; random vggish/res152/r2plus1d_18, clip and
    clap_windows features, packed; VALOR's pseudo labels by the pass with a prompts file whose
    thresholds keep every even class and no odd one (so the labels are known without its logits)."""
    root = tmp_path_factory.mktemp("valor")
    vocab = read_classes(llp_dir / "classes.txt")
    shapes = {"clip": (10, 768), "clap_windows": (10, 512)}
    out = {"classes": llp_dir / "classes.txt", "audio": llp_dir / "AVVP_eval_audio.csv",
           "visual": llp_dir / "AVVP_eval_visual.csv"}
    for name, csv_name, n in (("train", "AVVP_train.csv", 24), ("val", "AVVP_val_pd.csv", 12)):
        split = read_weak(llp_dir / csv_name, vocab)
        out[name] = write_weak_csv(root / f"{name}.csv", list(split.filenames[:n]), split.labels[:n], vocab.classes)
        ids = list(split.video_ids[:n])
        write_random_features(root / "features", ids, seed=len(name))
        write_random_features(root / "features", ids, seed=len(name), shapes=shapes)
        kinds = (*PUBLISHED, *shapes)
        pack_split(read_weak(out[name], vocab), released_source(root / "features", kinds), root / f"pack_{name}",
                   kinds=kinds)
        out[f"{name}_pack"] = root / f"pack_{name}"
    prompts, _ = read_prompts()
    doc = {"classes": {c: {f"{m}_prompt": prompts.prompts[m][i] for m in ("visual", "audio")}
                       | {f"{m}_threshold": -1e9 if i % 2 == 0 else 1e9 for m in ("visual", "audio")}
                       for i, c in enumerate(prompts.classes)}}
    (root / "prompts.json").write_text(json.dumps(doc), encoding="utf-8")
    out["labels"] = root / "labels"
    assert main(["pass", "--stage", "valor_labels", "--train-pack", str(out["train_pack"]), "--prompts",
                 str(root / "prompts.json"), "--out-dir", str(out["labels"])]) == 0
    return out


def train_valor(data: dict[str, Path], out: Path, *extra: str) -> int:
    return main(["train", "--stage", "valor_train", "--train-pack", str(data["train_pack"]),
                 "--val-pack", str(data["val_pack"]), "--train-csv", str(data["train"]),
                 "--val-csv", str(data["val"]), "--audio-csv", str(data["audio"]),
                 "--visual-csv", str(data["visual"]), "--classes", str(data["classes"]),
                 "--pseudo-labels", str(data["labels"]), "--out-dir", str(out), "--no-progress", *extra])


def test_valor_method_trains_and_predicts_through_the_cli(valor_data: dict[str, Path], tmp_path: Path) -> None:
    assert method("valor").stages == ("valor_labels", "valor_train")
    packed = load_packed(valor_data["train_pack"])
    expected = np.repeat(np.asarray(packed.labels, np.float32)[:, None, :], 10, axis=1)
    expected[:, :, 1::2] = 0
    assert expected.sum() > 0
    out = tmp_path / "valor"
    assert train_valor(valor_data, out, "--epochs", "2", "--batch-size", "8") == 0
    kept = torch.load(out / "model.pt", weights_only=True)
    assert kept["targets_sha256"] == ModalityTargets(expected, expected).fingerprint()
    assert kept["objective"] == {"objective": "ValorObjective"} and kept["config"]["keep"] == "type_at_av_first"
    assert kept["model_options"] == {"features": list(PUBLISHED), "dropout": 0.1, "cross_modal": True,
                                     "visual_dropout": 0.0, "heads": 8, "ff": 1024,
                                     "audio_first": True}
    with (out / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-5, 2e-5])  # the warm-up's first two epochs
    assert main(["predict", "--checkpoint", str(out / "model.pt"), "--pack", str(valor_data["val_pack"]),
                 "--split-csv", str(valor_data["val"]), "--classes", str(valor_data["classes"]),
                 "--out", str(tmp_path / "val.npz")]) == 0
    assert load_predictions(tmp_path / "val.npz").frame_prob.shape == (12, 10, 2, 25)


def test_valor_keeps_the_first_of_tied_epochs(valor_data: dict[str, Path], tmp_path: Path) -> None:
    """With a zero learning rate every epoch has the same weights and scores: VALOR's strict rule keeps
    epoch 1, HAN's rule (a tie replaces) the last."""
    for keep, kept_epoch in (("type_at_av_first", 1), ("type_at_av", 3)):
        out = tmp_path / keep
        assert train_valor(valor_data, out, "--epochs", "3", "--batch-size", "12", "--lr", "0", "--lr-min", "0",
                           "--keep", keep, "--hidden", "32", "--heads", "2", "--ff", "32") == 0
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        assert summary["kept_epoch"] == kept_epoch and summary["keep"] == keep
        assert torch.load(out / "model.pt", weights_only=True)["epoch"] == kept_epoch
