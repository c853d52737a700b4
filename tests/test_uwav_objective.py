"""UWAV's HAN training (stage uwav_train) equals its released code (ysiqi0785-ops/UWAV at eb81492,
transcribed in uwav_released.py): the soft labels, class frequencies and weights, the training loss
and every gradient on a fixed batch with fixed mixup draws, the draws' order, and the optimiser and
its schedule."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

from avvp.methods.objectives import Batch
from avvp.methods.training import SELECTIONS
from avvp.methods.uncertainty import UwavObjective, beta_draw, soft_labels
from avvp.methods.uwav import UwavSettings, class_frequencies, inverse_frequency_weights, uwav_objective
from test_uwav_han import ours_from
from uwav_released import (
    ARGS,
    B,
    C,
    T,
    HybridAttentionNet,
    WarmUpCosineAnnealingLR,
    batch_data,
    reduce,
    released_net,
    repeat,
)

# ----------------------------------------------------------------------------- the tests


# ----------------------------------------------------------------------------- dataloader.py (eb81492)


def get_class_freq(self, seg_label_dir):  # LLP_dataset.get_class_freq

    total_seg_counts = np.zeros(len(self.categories))
    pos_seg_counts = np.zeros(len(self.categories))

    for i in range(len(self.weak_data_df.index)):
        video_name = self.weak_data_df.loc[i, :].iloc[0][:11]
        seg_label_path = os.path.join(seg_label_dir, video_name+'.npy')
        seg_label = np.load(seg_label_path) # (T, C)

        class_seg_counts = seg_label.sum(axis=0)

        pos_seg_counts += class_seg_counts
        total_seg_counts += np.ones(len(self.categories)) * len(seg_label)

    class_freq = pos_seg_counts / total_seg_counts

    return class_freq

# ----------------------------------------------------------------------------- main.py (eb81492)


def released_batch_loss(args, model, batch_data, a_classwise_thresholds, v_classwise_thresholds, a_class_freq,
                        v_class_freq):
    """train(), lines 38-68: one batch up to the backward pass (thresholds and class frequencies as
    train() loads them before its loop, lines 25-35), without the .float() casts."""
    video_res_feats, video_3d_feats, audio_feats = batch_data['video_s'], batch_data['video_st'], batch_data['audio']
    weak_labels = batch_data['weak_label']                   # (B, C)
    valid_masks = batch_data['valid_mask']                   # (B, T), torch.float32
    attn_masks = batch_data['attn_mask']                     # (B, T, T), torch.bool

    outputs = model(audio_feats, video_res_feats, vis_3d_feat=video_3d_feats, attn_mask=attn_masks)

    a_pseudo_labels = batch_data['a_pseudo_label']    # (B, T, C)
    v_pseudo_labels = batch_data['v_pseudo_label']    # (B, T, C)
    labels = (weak_labels, a_pseudo_labels, v_pseudo_labels)

    a_logits = batch_data['a_logit']    # (B, T, C)
    v_logits = batch_data['v_logit']    # (B, T, C)

    loss, loss_dict = model.calculate_loss(args, outputs, labels, valid_masks,
                                           a_logits = a_logits, v_logits = v_logits,
                                           a_thresholds = a_classwise_thresholds, v_thresholds = v_classwise_thresholds,
                                           a_class_freq = a_class_freq, v_class_freq = v_class_freq)
    loss.backward()
    return loss


def released_optimizer_and_scheduler(args, model):
    """main(), lines 299-309."""
    if args.optimizer == 'adamw':
        optimizer = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(args.beta1, args.beta2), eps=args.eps)
    else:
        optimizer = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay, betas=(args.beta1, args.beta2), eps=args.eps)

    if args.scheduler == 'steplr':
        scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=args.step_size, gamma=args.gamma)
    elif args.scheduler == 'warm_up_cos_anneal':
        scheduler = WarmUpCosineAnnealingLR(optimizer, args.warm_up_epoch, args.epochs, args.lr_min, args.lr)
    return optimizer, scheduler


# scripts/train_han.sh's arguments (main.py's defaults where the script sets none: beta2, neg_weight and


def thresholds(seed: int) -> np.ndarray:
    """Per-class thresholds as main_pretrain.py saves them (float32), three of them -inf."""
    theta = np.random.default_rng(seed).normal(0, 2, C).astype(np.float32)
    theta[[0, 2, 7]] = -np.inf
    return theta


def released_class_freq(tmp_path: Path, labels: np.ndarray) -> np.ndarray:
    """get_class_freq over a training split of len(labels) videos whose label files hold `labels`."""
    names = [f"vid{i:08d}_0_10" for i in range(len(labels))]
    (tmp_path / "labels").mkdir(parents=True)
    for name, seg_label in zip(names, labels):
        np.save(tmp_path / "labels" / f"{name[:11]}.npy", seg_label)
    (tmp_path / "train.csv").write_text("filename\tevent_labels\n" + "".join(f"{n}\tDog\n" for n in names))
    dataset = SimpleNamespace(weak_data_df=pd.read_csv(tmp_path / "train.csv", header=0, sep='\t'),
                              categories=[str(c) for c in range(C)])
    return get_class_freq(dataset, str(tmp_path / "labels"))


def test_soft_labels_equal_the_released_ones_exactly() -> None:
    """float32 as trained: sigmoid((z - theta) / 2) for the video's classes, 0 elsewhere, a -inf
    threshold replaced by the batch's smallest logit of the class minus 1 (both excerpts of the
    released code: segment and mixup terms)."""
    data = batch_data(1)
    weak = data['weak_label'].float()
    theta = torch.from_numpy(thresholds(2))
    for z in (data['a_logit'].float(), data['v_logit'].float()):
        ours = soft_labels(z, theta, weak)
        # model/HAN.py calculate_segment_loss, lines 274-277 (calculate_mixup_loss 307-310 are the same)
        logit_min = reduce(z, 'b t c -> c', 'min')
        released_theta = torch.where(theta == float('-inf'), logit_min-1, theta)
        repeat_weak_labels = repeat(weak, 'b c -> b t c', t=T)
        uncertainty_labels = torch.where(repeat_weak_labels == 1, torch.sigmoid((z - released_theta) / 2), repeat_weak_labels)
        assert ours.dtype == torch.float32 and torch.equal(ours, uncertainty_labels)
        assert torch.all(ours[:, :, [0, 2]] > 0.5)  # -inf thresholds: every segment of the class is labelled
        assert torch.equal(ours > 0.5, (z > theta) & (weak[:, None] == 1))  # above 1/2 where the hard label is on
    # and the released mixup term draws its labels from the same rule: with lam = 1 its loss is the BCE on them
    z = data['a_logit'].float()
    net = HybridAttentionNet(C, 8, 8, 8, 16, 2, 8, 1, 1, 1)
    features = torch.randn(B, T, 16)
    net.mixup_data = lambda x, y, alpha: (x, y, y, 1.0)
    released = net.calculate_mixup_loss(features, torch.zeros(B, T, C), weak, z, theta, True, net.fc_prob, 1.7)
    ours = F.binary_cross_entropy_with_logits(net.fc_prob(features), soft_labels(z, theta, weak))
    assert released.item() == pytest.approx(ours.item(), rel=1e-12)


def test_class_frequencies_and_weights_equal_the_released_ones(tmp_path: Path) -> None:
    """Frequencies: positive segments over all segments of the training split, per class, from the
    hard labels (exact). Weights: one for the video's classes, (C - sum) x 0.5, one for the others,
    the sum of the frequencies; equal to the released loss_weight tensor to float64 rounding."""
    rng = np.random.default_rng(3)
    hard = (rng.random((13, T, C)) < rng.random(C) * 0.3).astype(np.float32)
    freq = class_frequencies(hard)
    released = released_class_freq(tmp_path, hard)
    assert freq.dtype == np.float64 and np.array_equal(freq, released)

    weak = (torch.rand(B, C, generator=torch.Generator().manual_seed(4)) < 0.3).float()
    # model/HAN.py calculate_segment_loss, lines 285-293 (reweight_type 'inverse_freq')
    class_freq = torch.from_numpy(released)
    repeat_weak_labels = repeat(weak, 'b c -> b t c', t=T)
    pos_class_freq = class_freq.sum()
    neg_class_freq = C - pos_class_freq
    loss_weight = torch.where(repeat_weak_labels == 1, neg_class_freq * ARGS.pos_weight, pos_class_freq)
    positive, negative = inverse_frequency_weights(freq, UwavSettings().pos_weight)
    assert positive == pytest.approx((C - released.sum()) * 0.5, rel=1e-15)
    assert negative == pytest.approx(released.sum(), rel=1e-15)
    ours = torch.where(repeat_weak_labels == 1, torch.tensor(positive, dtype=torch.float64),
                       torch.tensor(negative, dtype=torch.float64))
    torch.testing.assert_close(ours, loss_weight, rtol=1e-15, atol=0)


def fixed_draws(draws: list[tuple[torch.Tensor, torch.Tensor]]):
    """A `draw` that hands out the given (lam, permutation) pairs in turn (audio, then visual)."""
    queue = list(draws)

    def draw(alpha: float, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        lam, perm = queue.pop(0)
        assert alpha == ARGS.alpha and n == len(perm)
        return lam, perm
    return draw


def test_training_loss_and_every_gradient_equal_the_released_step(tmp_path: Path) -> None:
    """One batch through the released train() step and through UwavObjective, with the same mixup
    lam and permutation per modality (the released ones drawn from a seeded generator, ours handed
    over): the loss and each parameter's gradient agree to 1e-6 (float64). A smaller network than
    the script's (the forward test covers that one), with two layers in each input perceptron."""
    net = released_net(1, hidden_dim=64, nhead=4, ff_dim=128, num_han_layers=2, num_proj_layers=2)
    model = ours_from(net)
    data = batch_data(6)
    theta = {m: thresholds(10 + i) for i, m in enumerate("av")}
    for m in "av":
        np.save(tmp_path / f"{m}_classwise_threhsolds.npy", theta[m])
    hard = {m: (np.random.default_rng(20 + i).random((11, T, C)) < 0.1).astype(np.float32) for i, m in enumerate("av")}
    freq = {m: released_class_freq(tmp_path / m, hard[m]) for m in "av"}

    torch.manual_seed(7)
    loss = released_batch_loss(ARGS, net, data,
                               torch.from_numpy(np.load(tmp_path / "a_classwise_threhsolds.npy")),
                               torch.from_numpy(np.load(tmp_path / "v_classwise_threhsolds.npy")),
                               torch.from_numpy(freq['a']), torch.from_numpy(freq['v']))
    torch.manual_seed(7)  # the released draws: Beta then randperm, audio then visual
    draws = [(torch.distributions.Beta(ARGS.alpha, ARGS.alpha).sample(), torch.randperm(B * T)) for _ in "av"]
    assert draws[0][0] != draws[1][0] and not torch.equal(draws[0][1], torch.arange(B * T))

    settings = UwavSettings()
    objective = uwav_objective(settings, {"audio": theta["a"], "visual": theta["v"]},
                               {"audio": hard["a"], "visual": hard["v"]})
    assert isinstance(objective, UwavObjective)
    objective = dataclasses.replace(objective, draw=fixed_draws(draws))
    inputs = (data['audio'], data['video_s'], data['video_st'])
    ours = objective(model, Batch(inputs, data['weak_label'], data['a_logit'], data['v_logit'], np.arange(B), 1, 0, 1))
    ours.backward()

    assert abs(ours.item() - loss.item()) < 1e-6
    released = dict(net.named_parameters())
    for name, p in model.named_parameters():
        assert p.grad is not None and released[name].grad is not None, name
        np.testing.assert_allclose(p.grad.numpy(), released[name].grad.numpy(), rtol=0, atol=1e-6, err_msg=name)
    assert json.loads(json.dumps(objective.describe()))["alpha"] == 1.7  # checkpoints can store it; no draw in it


def test_default_draws_are_the_released_mixup_draws() -> None:
    """beta_draw after a seed gives the lam and permutation that the released mixup_data draws, in
    the same order (audio, then visual), so a seeded run mixes as the released one."""
    net = HybridAttentionNet(C, 8, 8, 8, 8, 2, 8, 1, 1, 1)
    x, y = torch.randn(B * T, 8), torch.rand(B * T, C)
    torch.manual_seed(11)
    released = [net.mixup_data(x, y, ARGS.alpha) for _ in "av"]
    torch.manual_seed(11)
    ours = [beta_draw(ARGS.alpha, B * T, torch.device("cpu")) for _ in "av"]
    for (mixed, y1, y2, lam), (our_lam, perm) in zip(released, ours):
        assert torch.equal(our_lam, lam)
        assert torch.equal(mixed, lam * x + (1 - lam) * x[perm]) and torch.equal(y2, y[perm])
    assert beta_draw(0.0, 5, torch.device("cpu"))[0] == 1.0  # alpha 0: no mixing, as released


def test_optimizer_and_schedule_equal_the_released_ones() -> None:
    """AdamW (beta1 0.9, weight decay 1e-4) and the per-epoch warm-up cosine schedule of the script:
    epoch 1 at 1e-5, epoch 10 at the peak 1e-4, epoch 80 at 5e-6, each epoch equal to the released
    scheduler's; gradient clipping at 1, batch 64, 80 epochs, the earliest best Type@AV kept."""
    settings = UwavSettings()
    theirs_param, ours_param = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    released_opt, released_sched = released_optimizer_and_scheduler(ARGS,
                                                                    SimpleNamespace(parameters=lambda: [theirs_param]))
    optimizer = settings.optimizer([ours_param])
    scheduler = settings.scheduler(optimizer)
    released_rates, rates = [], []
    for _ in range(ARGS.epochs):  # main.py: the epoch's lr is read, the epoch trains, the scheduler steps
        released_rates.append(released_opt.param_groups[0]['lr'])
        rates.append(optimizer.param_groups[0]["lr"])
        released_opt.step()
        optimizer.step()
        released_sched.step()
        scheduler.step()
    assert rates == pytest.approx(released_rates, rel=1e-12, abs=0)
    assert [rates[e - 1] for e in (1, 10, 80)] == pytest.approx([1e-5, 1e-4, 5e-6], rel=1e-12)
    ours, theirs = optimizer.param_groups[0], released_opt.param_groups[0]
    assert type(optimizer) is type(released_opt)
    hyper = ("betas", "eps", "weight_decay")
    assert {k: ours[k] for k in hyper} == {k: theirs[k] for k in hyper}
    assert settings.max_grad_norm() == ARGS.grad_norm and settings.batch_size == ARGS.batch_size
    assert settings.epochs == ARGS.epochs and settings.model_options()["network"] == "uwav"
    assert settings.keep == "type_at_av_first" and SELECTIONS[settings.keep].ties_replace is False  # main.py: `>`


