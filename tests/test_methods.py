"""MA-MMIL and JoMoLD: each rule on hand-made numbers, the model hooks they need, and every stage
end to end through the CLI on random LLP-shaped features."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.evaluation.annotations import read_classes, read_weak
from avvp.model.checkpoint import load_han, save_checkpoint
from avvp.cli import main
from avvp.extractors import PUBLISHED
from avvp.features.store import load_packed, pack_split, released_source
from avvp.methods.contrastive import contrastive_loss, segment_similarities
from avvp.methods.denoising import JointDenoisingObjective, ratio_scale, select_drops
from avvp.methods.jomold import batch_means, noise_ratios
from avvp.methods.label_tables import read_label_table
from avvp.methods.ma_mmil import draw_partners, judge_noise, modality_error, noise_thresholds
from avvp.methods.objectives import Batch, HanContrastiveObjective, HanObjective, bce, han_loss, visual_target
from avvp.methods.passes import modality_probabilities
from avvp.methods.stage_files import LEVELS, SCORES, read_summary
from avvp.model.han import HAN
from avvp.parsing.window_model import HANWindowModel
from avvp.model.predictions import load_predictions
from conftest import write_random_features, write_weak_csv
from released_formats import FORMATS, save_released

# ---------------------------------------------------------------- contrastive term


def basis(*indices: int) -> torch.Tensor:
    v = torch.zeros(512)
    for i in indices:
        v[i] = 1.0
    return v


def test_contrastive_value_on_hand_computed_case() -> None:
    """Video 1: audio segment t = 3 e_t, visual segment s = (e_s + e_s+1) / 2, so audio t has cosine
    1/sqrt(2) with visual t and t-1 and 0 with the rest. Video 2: identical streams (cosine 1 on the
    diagonal). The loss is the mean of the two videos' values: no similarity crosses videos."""
    audio1 = torch.stack([3 * basis(t) for t in range(10)])
    visual1 = torch.stack([basis(s, (s + 1) % 10) / 2 for s in range(10)])
    audio2 = torch.stack([basis(t, 20 + t) for t in range(10)])
    audio, visual = torch.stack([audio1, audio2]), torch.stack([visual1, audio2])

    sims = segment_similarities(audio, visual)
    hi = (1 / math.sqrt(2)) / 0.2
    expected = torch.zeros(10, 10)
    for t in range(10):
        expected[t, t] = expected[t, (t - 1) % 10] = hi
    torch.testing.assert_close(sims[0], expected)
    torch.testing.assert_close(sims[1], torch.eye(10) / 0.2)

    on, off = 0.9, 0.1 / 9  # smoothing 0.1 spread over the 9 other segments
    p_hi, p_lo = math.exp(hi) / (2 * math.exp(hi) + 8), 1 / (2 * math.exp(hi) + 8)
    video1 = -(on * math.log(p_hi) + off * math.log(p_hi) + 8 * off * math.log(p_lo))
    p_t, p_o = math.exp(5) / (math.exp(5) + 9), 1 / (math.exp(5) + 9)
    video2 = -(on * math.log(p_t) + 9 * off * math.log(p_o))
    assert contrastive_loss(audio, visual).item() == pytest.approx((video1 + video2) / 2, rel=1e-6)

    released1 = -math.log(on * p_hi + off * p_hi + 8 * off * p_lo)
    released2 = -math.log(on * p_t + 9 * off * p_o)
    assert contrastive_loss(audio, visual, expected_probability=True).item() == pytest.approx(
        (released1 + released2) / 2, rel=1e-6)


def small_inputs(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 10, 128, generator=g), torch.rand(batch, 10, 2048, generator=g),
            torch.rand(batch, 10, 512, generator=g))


def make_batch(labels: torch.Tensor, audio_labels: torch.Tensor | None = None,
               visual_labels: torch.Tensor | None = None, epoch: int = 1, index: int = 0,
               n_batches: int = 1) -> Batch:
    inputs = small_inputs(len(labels))
    return Batch(inputs, labels, labels if audio_labels is None else audio_labels,
                 labels if visual_labels is None else visual_labels, np.arange(len(labels)), epoch, index, n_batches)


@pytest.mark.parametrize("stream, reached", [("visual_in", "fc_fusion"), ("visual", "hat_encoder")])
def test_contrastive_gradient_reaches_both_streams(stream: str, reached: str) -> None:
    torch.manual_seed(0)
    model = HAN(5)
    streams = model.encode(*small_inputs())
    contrastive_loss(streams.audio, getattr(streams, stream)).backward()
    assert model.fc_a.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, reached).parameters())
    assert model.fc_prob.weight.grad is None  # the classifier plays no part in the term


# ---------------------------------------------------------------- model hooks


def test_encode_classify_cross_modal_override_and_visual_dropout() -> None:
    torch.manual_seed(0)
    model = HAN(5, visual_dropout=0.5).eval()
    x = small_inputs()
    with torch.no_grad():
        for a, b in zip(model(*x), model.classify(model.encode(*x))):
            torch.testing.assert_close(a, b)
        no_cm = HAN(5, cross_modal=False).eval()
        no_cm.load_state_dict(model.state_dict())
        for a, b in zip(no_cm(*x), model.classify(model.encode(*x, cross_modal=False))):
            torch.testing.assert_close(a, b)
        assert not torch.allclose(no_cm(*x)[0], model(*x)[0])
        streams = model.encode(*x)
        model.train()
        dropped = model.classify(streams)
    torch.testing.assert_close(dropped[1], model.eval().classify(streams)[1])  # audio untouched
    assert not torch.allclose(dropped[2], model.classify(streams)[2])  # visual dropped in training
    assert set(model.state_dict()) == set(HAN(5).state_dict())


# ---------------------------------------------------------------- objectives


def test_visual_target_removed_label_is_zero_not_smoothed() -> None:
    labels = torch.tensor([[1.0, 1.0, 0.0]])
    refined = torch.tensor([[1.0, 0.0, 0.0]])
    torch.testing.assert_close(visual_target(labels, 0.1, refined), torch.tensor([[0.95, 0.0, 0.05]]))


def test_han_objective_is_the_papers_loss_and_faithful_aliasing() -> None:
    torch.manual_seed(0)
    model = HAN(3).eval()
    labels = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    batch = make_batch(labels)
    g, a, v, _ = model(*batch.inputs)
    paper = bce(g, labels) + bce(a, labels) + bce(v, 0.9 * labels + 0.05)
    torch.testing.assert_close(HanObjective(0.1)(model, batch), paper)

    audio = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # audio label of class 1 removed in video 0
    refined = make_batch(labels, audio_labels=audio)
    streams = model.encode(*refined.inputs)
    term = contrastive_loss(streams.audio, streams.visual_in)
    outputs = model.classify(streams)
    default = HanContrastiveObjective(0.1, "input")(model, refined)
    aliased = HanContrastiveObjective(0.1, "input", video_target_from_audio=True)(model, refined)
    torch.testing.assert_close(default, han_loss(outputs, labels, 0.1, audio, labels) + term)
    torch.testing.assert_close(aliased, han_loss(outputs, audio, 0.1, audio, labels) + term)
    assert not torch.isclose(default, aliased)


# ---------------------------------------------------------------- MA-MMIL stage 2

PARTNER_LABELS = np.array([  # classes of each video -> the videos sharing none
    [1, 0, 0, 0],  # 0: {0}     -> 2, 3, 4
    [1, 1, 0, 0],  # 1: {0, 1}  -> 2, 3
    [0, 0, 1, 0],  # 2: {2}     -> 0, 1, 3, 5
    [0, 0, 0, 1],  # 3: {3}     -> 0, 1, 2, 4
    [0, 1, 1, 0],  # 4: {1, 2}  -> 0, 3, 5
    [1, 0, 0, 1],  # 5: {0, 3}  -> 2, 4
    [0, 0, 0, 0],  # 6: {}      -> everyone else
])
CANDIDATES = [{2, 3, 4, 6}, {2, 3, 6}, {0, 1, 3, 5, 6}, {0, 1, 2, 4, 6}, {0, 3, 5, 6}, {2, 4, 6},
              {0, 1, 2, 3, 4, 5}]


def test_partner_draw_shares_no_class_is_seeded_and_covers_all_candidates() -> None:
    seen: list[set[int]] = [set() for _ in CANDIDATES]
    for seed in range(60):
        partners = draw_partners(PARTNER_LABELS, seed)
        for video, partner in enumerate(partners):
            assert partner in CANDIDATES[video]
            seen[video].add(int(partner))
    assert seen == CANDIDATES
    np.testing.assert_array_equal(draw_partners(PARTNER_LABELS, 7), draw_partners(PARTNER_LABELS, 7))


def test_partner_draw_without_candidate_names_the_video() -> None:
    labels = np.array([[1, 1], [1, 0], [0, 1]])  # video 0 shares a class with both others
    with pytest.raises(ValueError, match="clipA_0_10 shares a class with every other"):
        draw_partners(labels, 0, ["clipA_0_10", "clipB_0_10", "clipC_0_10"])


def test_modality_error_and_delta_thresholds() -> None:
    prob = np.array([[0.6, 0.2], [0.4, 0.7], [0.9, 0.1], [0.3, 0.2]])
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
    error = modality_error(prob, labels)  # wrong decisions: class 0 in videos 1, 2; class 1 in video 3
    np.testing.assert_allclose(error, [0.5, 0.25])
    np.testing.assert_allclose(noise_thresholds(error), [1.0, 0.5])
    np.testing.assert_array_equal(noise_thresholds(np.zeros(3)), np.zeros(3))


def test_noise_judgment_with_delta_thresholds() -> None:
    labels = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1]])
    delta_audio, delta_visual = np.array([1.0, 0.5, 0.0]), np.array([0.5, 1.0, 0.0])
    # visual label noisy when, audio replaced, a and v < 0.5 delta_v = (0.25, 0.5, 0)
    audio_replaced = (np.array([[0.20, 0.49, 0.0], [0.30, 0.10, 0.0], [0.0, 0.51, 0.0]]),
                      np.array([[0.24, 0.10, 0.0], [0.10, 0.60, 0.0], [0.0, 0.10, 0.0]]))
    # audio label noisy when, visual replaced, a and v < 0.5 delta_a = (0.5, 0.25, 0)
    visual_replaced = (np.array([[0.60, 0.20, 0.0], [0.49, 0.24, 0.0], [0.1, 0.1, 0.0]]),
                       np.array([[0.10, 0.10, 0.0], [0.49, 0.26, 0.0], [0.1, 0.1, 0.0]]))
    noisy_audio, noisy_visual = judge_noise(labels, audio_replaced, visual_replaced, delta_audio, delta_visual)
    np.testing.assert_array_equal(noisy_visual, [[1, 1, 0], [0, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(noisy_audio, [[0, 1, 0], [1, 0, 0], [0, 1, 0]])


# ---------------------------------------------------------------- JoMoLD


def test_noise_ratios_on_hand_made_probabilities() -> None:
    labels = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 0]])
    # audio: class means (0.5, 0.25); noisy below 0.6 x mean = (0.3, 0.15): video 1 class 0, video 3 class 1
    a_prob = np.array([[0.8, 0.1, 0.5], [0.2, 0.5, 0.5], [0.6, 0.3, 0.5], [0.4, 0.1, 0.5]])
    # visual: class means (0.3, 0.275); noisy when 0.95 v < 1.8 x mean = (0.54, 0.495): class 0 videos
    # 1, 2; class 1 videos 1 (0.475, noisy only because of the 0.95) and 3
    v_prob = np.array([[1.0, 0.0, 0.5], [0.1, 0.5, 0.5], [0.1, 0.6, 0.5], [0.0, 0.0, 0.5]])
    ratios = noise_ratios(a_prob, v_prob, labels, ("a", "b", "c"))
    np.testing.assert_allclose(ratios.audio, [1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(ratios.visual, [2 / 3, 2 / 3, 0])
    np.testing.assert_array_equal(ratios.labelled, [3, 3, 0])
    np.testing.assert_allclose(ratios.visual_mean, [0.3, 0.275, 0.5])


def test_faithful_class_means_average_shuffled_batches_with_equal_weights() -> None:
    prob = np.array([[0.2, 1.0], [0.4, 0.0], [0.6, 0.0], [0.9, 0.5], [0.0, 1.0]])
    # seed 1 shuffles to videos 4, 0 | 1, 2 | 3: class 0 (0.1 + 0.5 + 0.9) / 3, class 1 (1 + 0 + 0.5) / 3
    assert np.random.default_rng(1).permutation(5).tolist() == [4, 0, 1, 2, 3]
    np.testing.assert_allclose(batch_means(prob, 2, 1), [0.5, 0.5])
    # seed 3: 4, 2 | 1, 3 | 0: class 0 (0.3 + 0.65 + 0.2) / 3, class 1 (0.5 + 0.25 + 1) / 3; the whole
    # split's means are 0.42 and 0.5
    assert np.random.default_rng(3).permutation(5).tolist() == [4, 2, 1, 3, 0]
    np.testing.assert_allclose(batch_means(prob, 2, 3), [1.15 / 3, 1.75 / 3])
    np.testing.assert_allclose(batch_means(prob, 5, 3), prob.mean(axis=0))  # one batch: the split's mean


def test_per_batch_drop_needs_top_k_on_one_loss_and_bottom_k_on_the_other() -> None:
    labels = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 1], [1, 1], [0, 1]], dtype=torch.float32)
    # class 0, visual: 5 labelled videos, k = floor(0.5 x 5) = 2. Largest l_v: videos 0, 1 (video 5's
    # 5.0 is unlabelled); smallest l_a: videos 2, 0 -> only video 0 drops its visual label.
    # class 1, audio: 6 labelled, k = floor(0.34 x 6) = 2. Largest l_a: 1, 2; smallest l_v: 3, 1 -> video 1.
    loss_v = torch.tensor([[0.9, 0.5], [0.8, 0.05], [0.1, 0.6], [0.7, 0.01], [0.2, 0.7], [5.0, 0.8]])
    loss_a = torch.tensor([[0.05, 0.1], [0.9, 0.9], [0.01, 0.8], [0.3, 0.2], [0.4, 0.3], [0.0, 0.4]])
    ratio_a = torch.tensor([0.0, 0.34], dtype=torch.float64)
    ratio_v = torch.tensor([0.5, 0.0], dtype=torch.float64)
    drop_a, drop_v = select_drops(loss_a, loss_v, labels, ratio_a, ratio_v)
    assert drop_v.int().tolist() == [[1, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0]]
    assert drop_a.int().tolist() == [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]]
    # floor(0.33 x 6) = 1: the largest l_a (video 1) is not the smallest l_v (video 3): nothing drops
    drop_a, _ = select_drops(loss_a, loss_v, labels, torch.tensor([0.0, 0.33], dtype=torch.float64), ratio_v)
    assert not drop_a.any()


def test_ratio_ramp_and_the_released_broken_ramp() -> None:
    assert ratio_scale(1, 0, 10, 0.9) == 0.0
    assert ratio_scale(1, 4, 10, 0.9) == pytest.approx(0.4 / 0.9)
    assert ratio_scale(1, 9, 10, 0.9) == pytest.approx(1.0)
    assert ratio_scale(2, 0, 10, 0.9) == 1.0
    assert [ratio_scale(1, i, 10, 0.9, faithful=True) for i in range(10)] == [0.0] * 10
    assert ratio_scale(2, 0, 10, 0.9, faithful=True) == 1.0
    # released arithmetic with warm-up 1.5 over 2 batches: epoch 2 multiplies by 1/1.5 then by 1
    assert ratio_scale(2, 1, 2, 1.5, faithful=True) == pytest.approx(2 / 3)


def test_denoising_drops_come_from_a_pass_without_cross_modal_attention() -> None:
    torch.manual_seed(0)
    model = HAN(3).eval()
    labels = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    objective = JointDenoisingObjective(np.array([0.5, 0.5, 0.5]), np.array([0.5, 1.0, 0.5]))
    batch = make_batch(labels, epoch=2)
    drop_a, drop_v = objective.drops(model, batch)
    reference = HAN(3, cross_modal=False).eval()
    reference.load_state_dict(model.state_dict())
    with torch.no_grad():
        _, a, v, _ = reference(*batch.inputs)
    expected = select_drops(bce(a, labels, "none"), bce(v, 0.9 * labels + 0.05, "none"), labels,
                            torch.tensor([0.5] * 3, dtype=torch.float64), torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64))
    assert torch.equal(drop_a, expected[0]) and torch.equal(drop_v, expected[1])
    assert not any(d.any() for d in objective.drops(model, make_batch(labels, epoch=1)))  # ramp starts at 0

    streams = model.encode(*batch.inputs)
    g, a, v, _ = model.classify(streams)
    manual = (2 * bce(a, labels.masked_fill(drop_a, 0)) + bce(v, (0.9 * labels + 0.05).masked_fill(drop_v, 0))
              + bce(g, labels) + contrastive_loss(streams.audio, streams.visual))
    torch.testing.assert_close(objective(model, batch), manual)


# ---------------------------------------------------------------- stages through the CLI


@pytest.fixture(scope="module")
def data(tmp_path_factory, llp_dir: Path) -> dict[str, Path]:
    """24 real training and 12 real validation filenames of LLP, random features, packed."""
    root = tmp_path_factory.mktemp("methods")
    vocab = read_classes(llp_dir / "classes.txt")
    out = {"classes": llp_dir / "classes.txt", "audio": llp_dir / "AVVP_eval_audio.csv",
           "visual": llp_dir / "AVVP_eval_visual.csv"}
    for name, csv_name, n in (("train", "AVVP_train.csv", 24), ("val", "AVVP_val_pd.csv", 12)):
        split = read_weak(llp_dir / csv_name, vocab)
        out[name] = write_weak_csv(root / f"{name}.csv", list(split.filenames[:n]), split.labels[:n], vocab.classes)
        write_random_features(root / "features", list(split.video_ids[:n]), seed=len(name))
        pack_split(read_weak(out[name], vocab), released_source(root / "features"), root / f"pack_{name}")
        out[f"{name}_pack"] = root / f"pack_{name}"
    return out


def train_cli(data: dict[str, Path], out: Path, stage: str, *extra: str) -> int:
    return main(["train", "--stage", stage, "--train-pack", str(data["train_pack"]),
                 "--val-pack", str(data["val_pack"]), "--train-csv", str(data["train"]),
                 "--val-csv", str(data["val"]), "--audio-csv", str(data["audio"]),
                 "--visual-csv", str(data["visual"]), "--classes", str(data["classes"]),
                 "--out-dir", str(out), "--batch-size", "8", "--no-progress", *extra])


def log_rows(out: Path) -> list[dict[str, str]]:
    with (out / "log.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_ma_mmil_stages_through_the_cli(data: dict[str, Path], tmp_path: Path) -> None:
    stage1 = tmp_path / "stage1"
    assert train_cli(data, stage1, "ma_mmil_stage1", "--epochs", "2") == 0
    kept = torch.load(stage1 / "model.pt", weights_only=True)
    assert kept["epoch"] == 2 and kept["config"]["keep"] == "final"  # final weights, not the best
    assert read_summary(stage1)["kept_epoch"] == 2 and read_summary(stage1)["keep"] == "final"
    assert kept["objective"]["visual_stream"] == "input" and len(log_rows(stage1)) == 2

    label_pass = ["pass", "--stage", "ma_mmil_refine", "--checkpoint", str(stage1 / "model.pt"), "--train-pack",
              str(data["train_pack"]), "--seed", "3"]
    assert main([*label_pass, "--out-dir", str(tmp_path / "refined")]) == 0
    assert main([*label_pass, "--out-dir", str(tmp_path / "again")]) == 0
    assert not list(tmp_path.glob(".*"))  # the pass's temporary folders are gone
    for name in ("audio_labels.tsv", "visual_labels.tsv", "partners.tsv"):
        assert (tmp_path / "refined" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
    packed = load_packed(data["train_pack"])
    weak = dict(zip(packed.filenames, np.asarray(packed.labels)))
    with (tmp_path / "refined" / "partners.tsv").open() as fh:
        partners = list(csv.DictReader(fh, delimiter="\t"))
    assert [p["filename"] for p in partners] == list(packed.filenames)
    assert all(not (weak[p["filename"]] * weak[p["partner"]]).any() for p in partners)
    summary = json.loads((tmp_path / "refined" / "refine.json").read_text())
    assert summary["seed"] == 3 and summary["n_videos"] == 24
    for modality in ("audio", "visual"):
        table = read_label_table(tmp_path / "refined" / f"{modality}_labels.tsv", packed.classes)
        assert all((table[f] <= weak[f]).all() for f in packed.filenames)  # refinement only removes
        removed = sum(weak[f] - table[f] for f in packed.filenames)
        assert removed.tolist() == summary[f"removed_{modality}"]

    labels = ["--refined", str(tmp_path / "refined")]
    assert train_cli(data, tmp_path / "stage3", "ma_mmil_stage3", "--epochs", "1", *labels) == 0
    assert train_cli(data, tmp_path / "faithful", "ma_mmil_stage3", "--epochs", "1", "--faithful", *labels) == 0
    default = torch.load(tmp_path / "stage3" / "model.pt", weights_only=True)
    faithful = torch.load(tmp_path / "faithful" / "model.pt", weights_only=True)
    assert not default["objective"]["video_target_from_audio"] and faithful["objective"]["video_target_from_audio"]
    assert default["targets_sha256"] == faithful["targets_sha256"] is not None


def test_jomold_stages_through_the_cli(data: dict[str, Path], tmp_path: Path, capsys) -> None:
    estimator = tmp_path / "estimator"
    assert train_cli(data, estimator, "jomold_estimator", "--epochs", "3", "--step-size", "2") == 0
    kept = torch.load(estimator / "model.pt", weights_only=True)
    assert kept["model_options"] == {"features": list(PUBLISHED), "dropout": 0.1, "cross_modal": False,
                                     "visual_dropout": 0.5}
    rows = log_rows(estimator)
    assert [float(r["lr"]) for r in rows] == pytest.approx([5e-4, 5e-4, 1.25e-4])
    scores = [float(r["event_audio"]) for r in rows]
    assert kept["epoch"] == max(i + 1 for i, s in enumerate(scores) if s == max(scores))
    assert read_summary(estimator)["kept_epoch"] == kept["epoch"] and read_summary(estimator)["keep"] == "event_audio"
    model, _, _ = load_han(estimator / "model.pt")
    assert not model.hat_encoder.layers[0].cross_modal and model.visual_dropout.p == 0.5

    ratios_dir = tmp_path / "ratios"
    ratios = ratios_dir / "ratios.json"
    assert main(["pass", "--stage", "jomold_ratios", "--checkpoint", str(estimator / "model.pt"),
                 "--train-pack", str(data["train_pack"]), "--out-dir", str(ratios_dir)]) == 0
    body = json.loads(ratios.read_text())
    assert len(body["audio"]) == len(body["visual"]) == len(body["classes"]) == 25
    assert all(0 <= r <= 1 for r in body["audio"] + body["visual"])
    assert body["labelled"] == np.asarray(load_packed(data["train_pack"]).labels).sum(axis=0).astype(int).tolist()

    final = tmp_path / "jomold"
    assert train_cli(data, final, "jomold_denoise", "--epochs", "2", "--ratios", str(ratios_dir)) == 0
    kept = torch.load(final / "model.pt", weights_only=True)
    assert kept["model_options"]["cross_modal"] and kept["objective"]["visual_ratios"] == body["visual"]
    capsys.readouterr()
    # faithful is a setting of the stage now: resuming with it is refused as other settings
    assert train_cli(data, final, "jomold_denoise", "--epochs", "3", "--ratios", str(ratios_dir), "--faithful",
                     "--resume") == 1
    assert "written with other training settings" in capsys.readouterr().err
    # the same settings with other noise ratios: another objective
    other = tmp_path / "other_ratios"
    other.mkdir()
    (other / "ratios.json").write_text(json.dumps({**body, "visual": [min(1.0, r + 0.1) for r in body["visual"]]}))
    assert train_cli(data, final, "jomold_denoise", "--epochs", "3", "--ratios", str(other), "--resume") == 1
    assert "written with another objective" in capsys.readouterr().err


@pytest.mark.parametrize("stage, extra, message", [
    ("jomold_denoise", (), "stage jomold_denoise needs ['--ratios']"),
    ("ma_mmil_stage3", (), "stage ma_mmil_stage3 needs ['--refined']"),
    ("han", ("--ratios", "{ratios}"), "stage han takes no ['--ratios']"),
    ("han", ("--faithful",), "stage han has no setting(s) ['--faithful']"),
    ("ma_mmil_stage3", ("--refined", "{short}"), "no row for 1 training video"),
])
def test_stage_inputs_are_checked(data: dict[str, Path], tmp_path: Path, capsys, stage: str,
                                  extra: tuple[str, ...], message: str) -> None:
    packed = load_packed(data["train_pack"])
    short = tmp_path / "short"  # a refine folder whose tables miss the first training video
    short.mkdir()
    rows = [f"{f}\t{packed.classes[int(np.argmax(y))]}" for f, y in zip(packed.filenames[1:], packed.labels[1:])]
    for modality in ("audio", "visual"):
        (short / f"{modality}_labels.tsv").write_text("filename\tevent_labels\n" + "\n".join(rows) + "\n")
    ratios = tmp_path / "ratios"
    ratios.mkdir()
    n = len(packed.classes)
    (ratios / "ratios.json").write_text(json.dumps({
        "classes": list(packed.classes), "audio": [0.1] * n, "visual": [0.2] * n,
        "labelled": [1] * n, "audio_mean": [0.5] * n, "visual_mean": [0.5] * n}))
    args = [a.format(ratios=ratios, short=short) for a in extra]
    assert train_cli(data, tmp_path / "out", stage, "--epochs", "1", *args) == 1
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- released checkpoint formats


def pass_cli(data: dict[str, Path], stage: str, checkpoint: Path, out: Path, *extra: str) -> dict:
    """Run the pass; its JSON summary (ratios.json or refine.json) without the checkpoint's path."""
    assert main(["pass", "--stage", stage, "--checkpoint", str(checkpoint), "--train-pack", str(data["train_pack"]),
                 "--out-dir", str(out), *extra]) == 0
    body = json.loads((out / ("ratios.json" if stage == "jomold_ratios" else "refine.json")).read_text())
    del body["checkpoint"]
    return body


def packed_probabilities(model: HAN, pack: Path) -> tuple[np.ndarray, np.ndarray]:
    return modality_probabilities(model.eval(), load_packed(pack), torch.device("cpu"))["original"]


def test_ratio_pass_runs_without_cross_modal_attention_whatever_the_file(data: dict[str, Path], tmp_path: Path) -> None:
    """The same estimator weights in our format, ours with cross-modal attention stored, a plain
    state dict and JoMoLD's file give the same ratios: those of the estimator without it."""
    torch.manual_seed(0)
    estimator = HAN(25, cross_modal=False, visual_dropout=0.5)
    crossing = HAN(25)
    crossing.load_state_dict(estimator.state_dict())
    classes = load_packed(data["train_pack"]).classes
    files = {"ours": tmp_path / "ours.pt", "ours, cross-modal stored": tmp_path / "crossing.pt",
             "plain": tmp_path / "plain.pt", "jomold": save_released(tmp_path / "JoMoLD.pt", estimator, "jomold")}
    save_checkpoint(files["ours"], estimator, classes)
    save_checkpoint(files["ours, cross-modal stored"], crossing, classes)
    torch.save(estimator.state_dict(), files["plain"])
    bodies = {name: pass_cli(data, "jomold_ratios", path, tmp_path / name) for name, path in files.items()}
    assert all(body == bodies["ours"] for body in bodies.values())

    labels = np.asarray(load_packed(data["train_pack"]).labels)
    expected = noise_ratios(*packed_probabilities(estimator, data["train_pack"]), labels, classes)
    np.testing.assert_allclose(bodies["ours"]["audio_mean"], expected.audio_mean, rtol=1e-6)
    np.testing.assert_allclose(bodies["ours"]["visual"], expected.visual)
    a_crossing, _ = packed_probabilities(crossing, data["train_pack"])
    assert not np.allclose(bodies["ours"]["audio_mean"], a_crossing.mean(axis=0), rtol=1e-3)


def test_faithful_ratio_pass(data: dict[str, Path], tmp_path: Path) -> None:
    """faithful: class means over shuffled batches of 10 (10, 10 and the last 4) with the run's seed,
    and smoothing 0.1 whatever the estimator was trained with; by default, the split's means and the
    checkpoint's smoothing."""
    torch.manual_seed(0)
    estimator = HAN(25, cross_modal=False)
    save_checkpoint(tmp_path / "model.pt", estimator, load_packed(data["train_pack"]).classes,
                    config={"visual_smoothing": 0.3})
    packed = load_packed(data["train_pack"])
    a_prob, v_prob = packed_probabilities(estimator, data["train_pack"])
    default = pass_cli(data, "jomold_ratios", tmp_path / "model.pt", tmp_path / "default", "--batch-size", "10")
    faithful = pass_cli(data, "jomold_ratios", tmp_path / "model.pt", tmp_path / "faithful", "--batch-size", "10",
                          "--faithful", "--seed", "5")
    assert (default["visual_smoothing"], default["faithful"], default["shuffle_seed"]) == (0.3, False, None)
    assert (faithful["visual_smoothing"], faithful["faithful"], faithful["shuffle_seed"]) == (0.1, True, 5)
    np.testing.assert_allclose(default["audio_mean"], a_prob.mean(axis=0), rtol=1e-6)
    means = (batch_means(a_prob, 10, 5), batch_means(v_prob, 10, 5))
    expected = noise_ratios(a_prob, v_prob, np.asarray(packed.labels), packed.classes, 0.1, class_means=means)
    np.testing.assert_allclose(faithful["audio_mean"], expected.audio_mean, rtol=1e-6)
    np.testing.assert_allclose(faithful["audio"], expected.audio)
    np.testing.assert_allclose(faithful["visual"], expected.visual)
    assert not np.allclose(faithful["audio_mean"], default["audio_mean"], rtol=1e-3)


def test_released_formats_refine_predict_and_parse_as_ours(data: dict[str, Path], tmp_path: Path) -> None:
    """One stage-1 model in our format and in each released format: the same MA-MMIL decisions, the
    same predictions, and a parsing model."""
    torch.manual_seed(1)
    model = HAN(25)
    classes = load_packed(data["train_pack"]).classes
    files = {"ours": tmp_path / "ours.pt"}
    save_checkpoint(files["ours"], model, classes)
    files.update({name: save_released(tmp_path / f"{name}.pt", model, name) for name in FORMATS})
    refined = {name: pass_cli(data, "ma_mmil_refine", path, tmp_path / name) for name, path in files.items()}
    for name in files:
        assert refined[name] == refined["ours"]
        for table in ("audio_labels.tsv", "visual_labels.tsv", "partners.tsv"):
            assert (tmp_path / name / table).read_bytes() == (tmp_path / "ours" / table).read_bytes()
        out = tmp_path / f"{name}.npz"
        assert main(["predict", "--checkpoint", str(files[name]), "--split-csv", str(data["val"]), "--pack",
                     str(data["val_pack"]), "--classes", str(data["classes"]), "--device", "cpu",
                     "--out", str(out)]) == 0
        ours, theirs = load_predictions(tmp_path / "ours.npz"), load_predictions(out)
        assert np.array_equal(ours.frame_prob, theirs.frame_prob) and np.array_equal(ours.global_prob, theirs.global_prob)
        parser = HANWindowModel(files[name], classes, device="cpu")
        assert parser.classes == list(classes) and parser.han.features == PUBLISHED



@pytest.fixture(scope="module")
def row_packs(data: dict[str, Path], tmp_path_factory) -> dict[str, Path]:
    """The training and validation splits packed with each kind's own rows, and a ratios folder."""
    root = tmp_path_factory.mktemp("rows")
    vocab = read_classes(data["classes"])
    out = {"ratios": root / "ratios"}
    for name in ("train", "val"):
        out[name] = pack_split(read_weak(data[name], vocab), released_source(data["train_pack"].parent / "features"),
                               root / name, pooled=False).root
    out["ratios"].mkdir()
    (out["ratios"] / "ratios.json").write_text(json.dumps({
        "classes": list(vocab.classes), "audio": [0.2] * 25, "visual": [0.3] * 25, "labelled": [1] * 25,
        "audio_mean": [0.5] * 25, "visual_mean": [0.5] * 25}))
    return out


def train_rows_cli(data: dict[str, Path], packs: dict[str, Path], out: Path, stage: str, *extra: str) -> int:
    return main(["train", "--stage", stage, "--train-pack", str(packs["train"]), "--val-pack", str(packs["val"]),
                 "--train-csv", str(data["train"]), "--val-csv", str(data["val"]), "--audio-csv", str(data["audio"]),
                 "--visual-csv", str(data["visual"]), "--classes", str(data["classes"]), "--out-dir", str(out),
                 "--batch-size", "8", "--no-progress", "--ratios", str(packs["ratios"]), *extra])


@pytest.mark.parametrize("stage, network, rule", [("cmpae_train", "CMPAENet", "cmpae_as_published"),
                                                  ("coleaf_train", "CoLeaFNet", "coleaf_as_published")])
def test_evidential_stages_through_the_cli(data: dict[str, Path], row_packs: dict[str, Path], tmp_path: Path,
                                           stage: str, network: str, rule: str) -> None:
    """CMPAE's and CoLeaF's stages train their own networks on unpooled rows, score validation under
    their own rule and keep the epoch with the best mean of the ten numbers."""
    out = tmp_path / stage
    assert train_rows_cli(data, row_packs, out, stage, "--epochs", "3") == 0
    kept = torch.load(out / "model.pt", weights_only=True)
    assert kept["config"]["validation_rule"] == rule and kept["objective"]["audio_ratios"] == [0.2] * 25
    ten = [f"{level.split('_')[0]}_{score}" for level in LEVELS for score in SCORES]
    means = [np.mean([float(r[k]) for k in ten]) for r in log_rows(out)]
    assert kept["epoch"] == max(i + 1 for i, m in enumerate(means) if m == max(means))
    assert type(load_han(out / "model.pt")[0]).__name__ == network


def test_coleaf_resumes_with_its_branches(data: dict[str, Path], row_packs: dict[str, Path], tmp_path: Path) -> None:
    """last.pt carries CoLeaF's branches and their optimisers: 1 epoch then a resume to 2 (the branches
    teach from epoch 2) equal 2 at once."""
    assert train_rows_cli(data, row_packs, tmp_path / "once", "coleaf_train", "--epochs", "2") == 0
    assert train_rows_cli(data, row_packs, tmp_path / "twice", "coleaf_train", "--epochs", "1") == 0
    assert "objective_state" in torch.load(tmp_path / "twice" / "last.pt", weights_only=True)
    assert train_rows_cli(data, row_packs, tmp_path / "twice", "coleaf_train", "--epochs", "2", "--resume") == 0
    once, twice = (torch.load(tmp_path / d / "last.pt", weights_only=True) for d in ("once", "twice"))
    for key, value in once["state_dict"].items():
        assert torch.equal(value, twice["state_dict"][key]), key
    for modality, state in once["objective_state"].items():
        for key, value in state["branch"].items():
            assert torch.equal(value, twice["objective_state"][modality]["branch"][key]), (modality, key)
    assert [r["loss"] for r in log_rows(tmp_path / "once")] == [r["loss"] for r in log_rows(tmp_path / "twice")]
