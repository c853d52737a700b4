"""CMPAE equals its released code (MengyuanChen21/CVPR2023-CMPAE at 73345f7): the network's forward
from a released-format checkpoint, `avvp predict` on it, and the training loss with its gradients
on a fixed batch. The released functions are transcribed below as released, except that tensors
stay on the CPU (the released code calls .cuda() / .to('cuda')) and unused branches are left out."""
from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avvp.cli import main
from avvp.methods.cmpae import read_released_ratios
from avvp.methods.evidential import CmpaeObjective
from avvp.methods.objectives import Batch
from avvp.model.checkpoint import load_han
from avvp.model.cmpae import CMPAENet
from avvp.model.han import load_han_state
from avvp.model.predictions import load_predictions
from avvp.methods.stages import method, stage

# ----------------------------------------------------------------------------- nets/net_audiovisual.py


def exp_evidence(y, temp=0.8):
    return torch.exp(torch.div(torch.clamp(y, -10, 10), temp))


def get_p_and_u_from_logit(x):
    alpha = exp_evidence(x) + torch.ones_like(x)
    p = alpha[..., 0] / torch.sum(alpha, dim=-1)
    u = 2 / torch.sum(alpha, dim=-1)
    return p, u


class LabelSmoothingNCELoss(nn.Module):

    def __init__(self, classes, smoothing=0.0, dim=-1):
        super(LabelSmoothingNCELoss, self).__init__()
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.cls = classes
        self.dim = dim

    def forward(self, pred, target):
        pred = pred.softmax(dim=self.dim)
        with torch.no_grad():
            true_dist = torch.zeros_like(pred)
            true_dist.fill_(self.smoothing / (self.cls - 1))
            true_dist.scatter_(1, target.data.unsqueeze(1), self.confidence)
        return -torch.mean(torch.log(torch.sum(true_dist * pred, dim=self.dim)))


class Encoder(nn.Module):
    def __init__(self, encoder_layer, num_layers, norm=None, d_model=512, nhead=1, dim_feedforward=512, dropout=0.1):
        super(Encoder, self).__init__()
        self.layers = []
        if encoder_layer == 'HANLayer':
            for i in range(num_layers):
                self.layers.append(HANLayer(d_model=d_model, nhead=nhead,
                                            dim_feedforward=dim_feedforward, dropout=dropout))
        else:
            raise ValueError('wrong encoder layer')
        self.layers = nn.ModuleList(self.layers)
        self.num_layers = num_layers
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm = norm

    def forward(self, src_a, src_v, mask=None, src_key_padding_mask=None, with_ca=True):
        output_a = src_a
        output_v = src_v

        for i in range(self.num_layers):
            output_a = self.layers[i](src_a, src_v, src_mask=mask,
                                      src_key_padding_mask=src_key_padding_mask, with_ca=with_ca)
            output_v = self.layers[i](src_v, src_a, src_mask=mask,
                                      src_key_padding_mask=src_key_padding_mask, with_ca=with_ca)
            src_a = output_a
            src_v = output_v

        if self.norm:
            output_a = self.norm1(output_a)
            output_v = self.norm2(output_v)

        return output_a, output_v


class HANLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=512, dropout=0.1):
        super(HANLayer, self).__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.cm_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout11 = nn.Dropout(dropout)
        self.dropout12 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, src_q, src_v, src_mask=None, src_key_padding_mask=None, with_ca=True):
        src_q = src_q.permute(1, 0, 2)
        src_v = src_v.permute(1, 0, 2)

        if with_ca:
            src1 = self.cm_attn(src_q, src_v, src_v, attn_mask=src_mask,
                                key_padding_mask=src_key_padding_mask)[0]
            src2 = self.self_attn(src_q, src_q, src_q, attn_mask=src_mask,
                                  key_padding_mask=src_key_padding_mask)[0]

            src_q = src_q + self.dropout11(src1) + self.dropout12(src2)
            src_q = self.norm1(src_q)
        else:
            src2 = self.self_attn(src_q, src_q, src_q, attn_mask=src_mask,
                                  key_padding_mask=src_key_padding_mask)[0]

            src_q = src_q + self.dropout12(src2)
            src_q = self.norm1(src_q)

        src_q = src_q + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src_q)))))
        src_q = self.norm2(src_q)
        return src_q.permute(1, 0, 2)


class MMIL_Net(nn.Module):

    def __init__(self, num_layers=1, temperature=0.2, att_dropout=0.1, cls_dropout=0.5):
        super(MMIL_Net, self).__init__()

        self.fc_prob = nn.Linear(512, 25)
        self.fc_prob_beta = nn.Linear(512, 25)
        self.fc_frame_att = nn.Linear(512, 25 * 2)
        self.fc_global = nn.Sequential(
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, 25),
            nn.Sigmoid(),
        )
        self.fc_a = nn.Sequential(
            nn.Linear(128, 512),
            nn.ELU(),
        )
        self.fc_v = nn.Sequential(
            nn.Linear(2048, 512),
            nn.ELU(),
        )
        self.fc_st = nn.Sequential(
            nn.Linear(512, 512),
            nn.ELU(),
        )
        self.fc_fusion = nn.Sequential(
            nn.Linear(1024, 512),
            nn.ELU(),
        )
        self.hat_encoder = Encoder('HANLayer', num_layers, norm=None, d_model=512,
                                   nhead=1, dim_feedforward=512, dropout=att_dropout)

        self.v2a = nn.Sequential(
            nn.Linear(512, 512),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )

        self.a2v = nn.Sequential(
            nn.Linear(512, 512),
            nn.Dropout(0.2),
            nn.LeakyReLU(0.2),
        )

        self.classifier1 = nn.Sequential(
            nn.Linear(512, 512),
            nn.LeakyReLU(0.2),
        )

        self.classifier2 = nn.Linear(512, 25)

        self.temp = temperature
        if cls_dropout != 0:
            self.dropout = nn.Dropout(p=cls_dropout)
        else:
            self.dropout = None

    def forward(self, audio, visual, visual_st, with_ca=True):
        b, t, d = visual_st.size()
        x1 = self.fc_a(audio)
        # 2d and 3d visual feature fusion
        vid_s = self.fc_v(visual).permute(0, 2, 1).unsqueeze(-1)
        vid_s = F.avg_pool2d(vid_s, (8, 1)).squeeze(-1).permute(0, 2, 1)
        vid_st = self.fc_st(visual_st)
        x2 = torch.cat((vid_s, vid_st), dim=-1)
        x2 = self.fc_fusion(x2)

        # Mutual Learning
        x1_embed = self.classifier1(x1)
        x2_embed = self.classifier1(x2)
        ori_logit = self.classifier2(x1_embed + x2_embed)
        ori_alpha = exp_evidence(ori_logit.mean(dim=1)).add(1.0)
        global_uct = 25 / torch.sum(ori_alpha, dim=-1)
        ori_prob = nn.Sigmoid()(ori_logit)
        global_prob = ori_prob.mean(dim=1)

        # HAN
        if not with_ca:
            x1, x2 = self.hat_encoder(x1, x2, with_ca=False)
        else:
            x1_woca, x2_woca = self.hat_encoder(x1, x2, with_ca=False)
            x1_ca, x2_ca = self.hat_encoder(x1, x2, with_ca=True)
            ratio = 0.8
            x1 = x1_ca * ratio + x1_woca * (1 - ratio)
            x2 = x2_ca * ratio + x2_woca * (1 - ratio)

        # noise contrastive
        xx2_after = F.normalize(x2, p=2, dim=-1)
        xx1_after = F.normalize(x1, p=2, dim=-1)
        sims_after = xx1_after.bmm(xx2_after.permute(0, 2, 1)).squeeze(1) / self.temp
        sims_after = sims_after.reshape(-1, 10)
        mask_after = torch.zeros(b, 10)
        mask_after = mask_after.long()
        for i in range(10):
            mask_after[:, i] = i
        mask_after = mask_after.reshape(-1)

        # prediction
        if self.dropout is not None:
            x2 = self.dropout(x2)
        x = torch.cat([x1.unsqueeze(-2), x2.unsqueeze(-2)], dim=-2)

        c = 25
        b, t, m, _ = x.shape  # 128, 10, 2, 512

        frame_alpha_logit = self.fc_prob(x)  # 128, 10, 2, 25
        x_a = x[:, :, 0]  # 128, 10, 512
        x_v = x[:, :, 1]  # 128, 10, 512
        x_v2a = x_a + self.v2a(x_a + x_v)
        x_a2v = x_v + self.a2v(x_a + x_v)
        frame_beta_a = self.fc_prob_beta(x_v2a)  # 128, 10, 25
        frame_beta_v = self.fc_prob_beta(x_a2v)
        frame_beta_logit = torch.stack((frame_beta_a, frame_beta_v), dim=2)
        frame_logit = torch.stack((frame_alpha_logit, frame_beta_logit), dim=-1)

        # attentive MMIL pooling
        frame_att_before_softmax = self.fc_frame_att(x).reshape(b, t, m, c, 2)
        frame_att = torch.softmax(frame_att_before_softmax, dim=1)
        temporal_logit = frame_att * frame_logit
        # frame-wise probability
        a_logit = temporal_logit[:, :, 0, :, :].sum(dim=1)
        v_logit = temporal_logit[:, :, 1, :, :].sum(dim=1)

        a_prob, a_uct = get_p_and_u_from_logit(a_logit)
        v_prob, v_uct = get_p_and_u_from_logit(v_logit)
        frame_prob, frame_uct = get_p_and_u_from_logit(frame_logit)

        return global_prob, a_prob, v_prob, frame_prob, sims_after, mask_after, \
               global_uct, a_uct, v_uct, frame_uct

# ----------------------------------------------------------------------------- mutual_loss.py


class MutualLearningLoss(nn.Module):

    def __init__(self, eta=1.0, lamb=1.0):
        super().__init__()

        self.eta = eta
        self.lamb = lamb

    def forward(self, target, global_prob, a_prob, v_prob, a_uct, v_uct, global_uct, batch_idx):
        global_uct = torch.clamp(global_uct, min=0.9)

        av_prob = torch.stack((a_prob, v_prob), dim=-1)
        av_uct = torch.stack((a_uct, v_uct), dim=-1)

        max_prob, max_index = torch.max(av_prob, dim=-1)
        max_uct = torch.gather(av_uct, dim=-1, index=max_index.unsqueeze(-1)).squeeze()

        mean_prob = torch.mean(av_prob, dim=-1)
        mean_uct = torch.mean(av_uct, dim=-1)

        mse_loss = nn.MSELoss(reduction='none')

        is_odd = batch_idx % 2

        pos_loss = is_odd * global_uct.unsqueeze(-1) * \
                   ((1 - max_uct) * mse_loss(global_prob, max_prob.detach()) * target) + \
                   (1 - is_odd) * (1 - global_uct).unsqueeze(-1) * \
                   ((1 - max_uct) * mse_loss(global_prob.detach(), max_prob) * target)

        neg_loss = is_odd * global_uct.unsqueeze(-1) * \
                   ((1 - mean_uct) * mse_loss(global_prob, mean_prob.detach()) * (1 - target)) + \
                   (1 - is_odd) * (1 - global_uct).unsqueeze(-1) * \
                   ((1 - mean_uct) * mse_loss(global_prob.detach(), mean_prob) * (1 - target))

        total_loss = pos_loss + self.lamb * neg_loss
        total_loss = total_loss.mean()

        return total_loss

# ----------------------------------------------------------------------------- main.py train(), one batch


def released_drops(args, model, audio, video, video_st, Pa, Pv, noise_ratios, epoch, batch_idx, iters_per_epoch):
    """main.py train(), its first part: the ratio ramp up to this batch, then the drops (in Pa, Pv)."""
    noise_ratios_a = torch.from_numpy(noise_ratios['audio']).clone()
    noise_ratios_v = torch.from_numpy(noise_ratios['visual']).clone()
    batch = len(audio)
    for step in range(batch_idx + 1):  # the loop's earlier batches update the ratios in place
        if args.warm_up_epoch is not None:
            noise_ratios_a = \
                torch.min(
                    torch.cat(
                        (noise_ratios_a.reshape(1, -1),
                         noise_ratios_a.reshape(1, -1) *
                         ((epoch - 1) * iters_per_epoch + step) / (args.warm_up_epoch * iters_per_epoch)),
                        dim=0),
                    dim=0)[0]
            noise_ratios_v = \
                torch.min(
                    torch.cat(
                        (noise_ratios_v.reshape(1, -1),
                         noise_ratios_v.reshape(1, -1) *
                         ((epoch - 1) * iters_per_epoch + step) / (args.warm_up_epoch * iters_per_epoch)),
                        dim=0),
                    dim=0)[0]

    with torch.no_grad():
        output, a_prob, v_prob, frame_prob = model(audio, video, video_st, with_ca=False)[:4]

        a_prob = torch.clamp(a_prob, min=args.clamp, max=1 - args.clamp)
        v_prob = torch.clamp(v_prob, min=args.clamp, max=1 - args.clamp)

        tmp_loss_a = nn.BCELoss(reduction='none')(a_prob, Pa)
        tmp_loss_v = nn.BCELoss(reduction='none')(v_prob, Pv)
        _, sort_index_a = torch.sort(tmp_loss_a, dim=0)
        _, sort_index_v = torch.sort(tmp_loss_v, dim=0)

        pos_index_a = Pa > 0.5
        pos_index_v = Pv > 0.5

        for i in range(25):
            pos_num_a = sum(pos_index_a[:, i].type(torch.IntTensor))
            pos_num_v = sum(pos_index_v[:, i].type(torch.IntTensor))
            numbers_a = torch.mul(noise_ratios_a[i], pos_num_a).type(torch.IntTensor)
            numbers_v = torch.mul(noise_ratios_v[i], pos_num_v).type(torch.IntTensor)
            # remove noise labels for visual
            mask_a = torch.zeros(batch)
            mask_v = torch.zeros(batch)
            if numbers_v > 0:
                mask_a[sort_index_a[pos_index_v[sort_index_a[:, i], i], i][:numbers_v]] = 1
                mask_v[sort_index_v[pos_index_v[sort_index_v[:, i], i], i][-numbers_v:]] = 1
            mask = torch.nonzero(torch.mul(mask_a, mask_v)).squeeze(-1).type(torch.LongTensor)
            Pv[mask, i] = 0

            # remove noise labels for audio
            mask_a = torch.zeros(batch)
            mask_v = torch.zeros(batch)
            if numbers_a > 0:
                mask_a[sort_index_a[pos_index_a[sort_index_a[:, i], i], i][-numbers_a:]] = 1
                mask_v[sort_index_v[pos_index_a[sort_index_v[:, i], i], i][:numbers_a]] = 1
            mask = torch.nonzero(torch.mul(mask_a, mask_v)).squeeze(-1).type(torch.LongTensor)
            Pa[mask, i] = 0



def released_batch_loss(args, model, audio, video, video_st, target, Pa, Pv, noise_ratios, epoch, batch_idx,
                        iters_per_epoch):
    """main.py train(): the drops, then the loss (before backward)."""
    criterion = nn.BCELoss()
    criterion2 = LabelSmoothingNCELoss(classes=10, smoothing=args.nce_smooth)
    released_drops(args, model, audio, video, video_st, Pa, Pv, noise_ratios, epoch, batch_idx, iters_per_epoch)
    output, a_prob, v_prob, frame_prob, sims_after, mask_after, global_uct, a_uct, v_uct, frame_uct = \
        model(audio, video, video_st, with_ca=True)

    output = torch.clamp(output, min=args.clamp, max=1 - args.clamp)
    a_prob = torch.clamp(a_prob, min=args.clamp, max=1 - args.clamp)
    v_prob = torch.clamp(v_prob, min=args.clamp, max=1 - args.clamp)

    loss1 = criterion(a_prob, Pa)
    loss2 = criterion(v_prob, Pv)
    loss3 = criterion(output, target)

    loss4 = criterion2(sims_after, mask_after)

    criterion_mutual = MutualLearningLoss(eta=args.mutual_eta)
    loss_mutual = criterion_mutual(target, output, a_prob, v_prob, a_uct, v_uct, global_uct, batch_idx)

    loss = loss1 * args.audio_weight + loss2 * args.visual_weight + \
           loss3 * args.video_weight + loss4 * args.nce_weight + \
           loss_mutual * args.mutual_weight
    return loss


# option.py defaults (train.sh changes none of these)
ARGS = SimpleNamespace(warm_up_epoch=0.9, clamp=1e-7, nce_smooth=0.1, audio_weight=2.0, visual_weight=0.6,
                       video_weight=0.6, nce_weight=1.0, mutual_weight=1.0, mutual_eta=1.0, a_smooth=1.0, v_smooth=0.9)

# ----------------------------------------------------------------------------- the tests


def released_net(seed: int = 0) -> MMIL_Net:
    torch.manual_seed(seed)
    net = MMIL_Net().double().eval()
    with torch.no_grad():  # biases away from 0 and logits of either sign, so that every branch matters
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return net


def features(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 10, 128, generator=g, dtype=torch.float64),
            torch.randn(batch, 80, 2048, generator=g, dtype=torch.float64),
            torch.randn(batch, 10, 512, generator=g, dtype=torch.float64))


def ours_from(net: MMIL_Net) -> CMPAENet:
    model = CMPAENet(25).double().eval()
    load_han_state(model, net.state_dict())
    return model


def released_checkpoint(net: MMIL_Net, path: Path) -> Path:
    """main.py's checkpoint: random states, then model, optimizer, scheduler, epochs."""
    state = {"torch_rng": torch.get_rng_state(), "cuda_rng": torch.get_rng_state(),
             "random_rng": random.getstate(), "numpy_rng": np.random.get_state(),
             "model": {k: v.float() for k, v in net.state_dict().items()}, "optimizer": {}, "scheduler": {},
             "epochs": 20}
    torch.save(state, path)
    return path


@pytest.mark.parametrize("with_ca", [True, False])
def test_forward_equals_the_released_network(with_ca: bool) -> None:
    net = released_net()
    model = ours_from(net)
    inputs = features(3, 1)
    with torch.no_grad():
        theirs = net(*inputs, with_ca=with_ca)
        out = model.evidence(model.encode(*inputs, cross_modal=with_ca))
    for name, a, b in (("global_prob", out.global_prob, theirs[0]), ("a_prob", out.a_prob, theirs[1]),
                       ("v_prob", out.v_prob, theirs[2]), ("frame_prob", out.frame_prob, theirs[3]),
                       ("global_uct", out.global_uct, theirs[6]), ("a_uct", out.a_uct, theirs[7]),
                       ("v_uct", out.v_uct, theirs[8])):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("epoch, batch_idx", [(1, 0), (1, 3), (2, 2)])
def test_training_loss_and_gradients_equal_the_released_step(tmp_path: Path, epoch: int, batch_idx: int) -> None:
    """One batch: JoMoLD's drops at the released ramp (epoch 1: none; then the full ratios), odd and
    even batches of the mutual term; the loss and every parameter's gradient to 1e-6."""
    net = released_net(2)
    model = ours_from(net)
    batch_size, iters = 8, 5
    inputs = features(batch_size, 3)
    g = torch.Generator().manual_seed(4)
    labels = (torch.rand(batch_size, 25, generator=g) < 0.3).double()
    labels[:, :3] = 1.0  # classes every video has: drops can happen
    ratios = {"audio": np.linspace(0.1, 0.6, 25), "visual": np.linspace(0.6, 0.1, 25)}
    npz = tmp_path / "noise_ratios.npz"
    np.savez(npz, **ratios)

    loss = released_batch_loss(ARGS, net, *inputs, labels.clone(), labels.clone() * ARGS.a_smooth,
                               ARGS.v_smooth * labels + (1 - ARGS.v_smooth) * 0.5, dict(np.load(npz)), epoch,
                               batch_idx, iters)
    loss.backward()
    audio, visual = read_released_ratios(npz, 25)
    objective = CmpaeObjective(audio, visual, smoothing=1 - ARGS.v_smooth)
    batch = Batch(inputs, labels, labels, labels, np.arange(batch_size), epoch, batch_idx, iters)
    ours = objective(model, batch)
    ours.backward()

    assert abs(ours.item() - loss.item()) < 1e-6
    grads = dict(model.named_parameters())
    for name, p in net.named_parameters():
        if name.startswith("fc_global.") or p.grad is None:
            assert name.startswith("fc_global.") or name not in grads or grads[name].grad is None
            continue
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_released_ratios_file_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "noise_ratios.npz"
    np.savez(good, audio=np.full(25, 0.1), visual=np.full(25, 0.2))
    audio, visual = read_released_ratios(good, 25)
    assert audio.dtype == np.float64 and audio[0] == 0.1 and visual[0] == 0.2
    bad = tmp_path / "bad.npz"
    np.savez(bad, audio=np.full(24, 0.1), visual=np.full(25, 0.2))
    with pytest.raises(ValueError, match=r"bad\.npz: 'audio' must hold 25 ratios"):
        read_released_ratios(bad, 25)
    with pytest.raises(ValueError, match="arrays audio and visual"):
        np.savez(bad, audio=np.full(25, 0.1))
        read_released_ratios(bad, 25)


def test_a_released_checkpoint_predicts_through_the_cli_as_the_released_eval(tmp_path: Path) -> None:
    """`avvp predict` on CMPAE's checkpoint format and a features folder in the released layout: the
    pass with cross-modal attention (main.py eval's with_ca=True) and the pass without (off_*), each
    equal to the released network's forward on the same features (ResNet-152's 80 rows unpooled)."""
    net = released_net(5)
    checkpoint = released_checkpoint(net, tmp_path / "cmpae_s0.pt")
    model, classes, _ = load_han(checkpoint)
    assert isinstance(model, CMPAENet) and len(classes) == 25
    names = [f"video{i:06d}_{i}_{i + 10}" for i in range(3)]
    audio, frames, clips = (x.float() for x in features(3, 6))
    root = tmp_path / "feats"
    for kind, array in (("vggish", audio), ("res152", frames), ("r2plus1d_18", clips)):
        (root / kind).mkdir(parents=True)
        for name, rows in zip(names, array):
            np.save(root / kind / f"{name[:11]}.npy", rows.numpy())
    split = tmp_path / "test.csv"
    split.write_text("filename\tevent_labels\n" + "".join(f"{n}\t{classes[0]}\n" for n in names))
    out = tmp_path / "preds.npz"
    assert main(["predict", "--checkpoint", str(checkpoint), "--split-csv", str(split), "--features",
                 str(root), "--device", "cpu", "--out", str(out)]) == 0
    preds = load_predictions(out)
    net = net.float()
    with torch.no_grad():
        on, off = net(audio, frames, clips, with_ca=True), net(audio, frames, clips, with_ca=False)
    for name, ours, theirs in (("global_prob", preds.global_prob, on[0]), ("a_prob", preds.a_prob, on[1]),
                               ("v_prob", preds.v_prob, on[2]), ("frame_prob", preds.frame_prob, on[3]),
                               ("off a_prob", preds.cross_modal_off.a_prob, off[1]),
                               ("off v_prob", preds.cross_modal_off.v_prob, off[2]),
                               ("off frame_prob", preds.cross_modal_off.frame_prob, off[3])):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-6, err_msg=name)


def test_cmpae_is_registered_on_jomolds_stages() -> None:
    assert method("cmpae").stages == ("jomold_estimator", "jomold_ratios", "cmpae_train")
    defaults = stage("cmpae_train").defaults
    assert (defaults.epochs, defaults.batch_size, defaults.lr, defaults.step_size, defaults.gamma) == (20, 128, 5e-4, 6, 0.25)
    assert defaults.keep == "mean_of_ten" and defaults.validation_rule == "cmpae_as_published"
    assert defaults.model_options()["network"] == "cmpae" and defaults.visual_dropout == 0.5
