"""UWAV's HAN training (stage uwav_train) equals its released code (ysiqi0785-ops/UWAV at eb81492): the
soft labels, class frequencies and weights, UWAV's HAN from a released state dict, the training loss
and every gradient on a fixed batch with fixed mixup draws, the draws' order, the optimiser and its
schedule, and the decisions of the evaluation. The released functions are transcribed below as
released, except that tensors stay on the CPU (no .to(device)), wandb logging is left out, einops
(not a dependency of avvp) is replaced by stand-ins for the patterns used, pandas' positional
`row[0]` is written `row.iloc[0]` (current pandas no longer falls back to positions) and train()'s
`.float()` casts of the batch are left out: the loss and gradients are compared in float64 (the
released video BCE refuses float32 labels on a float64 network), the soft labels in float32."""
from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
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

from avvp.evaluation.protocols import Outputs, decide, protocol
from avvp.methods.objectives import Batch
from avvp.methods.training import SELECTIONS
from avvp.methods.uncertainty import UwavObjective, beta_draw, soft_labels
from avvp.methods.uwav import UwavSettings, class_frequencies, inverse_frequency_weights, uwav_objective
from avvp.model.han import load_han_state
from avvp.model.uwav_han import UwavHAN

# ----------------------------------------------------------------------------- einops stand-ins


def rearrange(x, pattern):
    if pattern in ('b t c -> t b c', 't b c -> b t c'):
        return x.transpose(0, 1)
    if pattern in ('b t d -> (b t) d', 'b t c -> (b t) c'):
        return x.reshape(-1, x.shape[-1])
    raise NotImplementedError(pattern)


def reduce(x, pattern, reduction, **sizes):
    if pattern == 'b (t1 t2) c -> b t1 c' and reduction == 'mean':
        return x.reshape(x.shape[0], sizes['t1'], -1, x.shape[-1]).mean(dim=2)
    if pattern == 'b t c -> c' and reduction == 'min':
        return x.amin(dim=(0, 1))
    raise NotImplementedError(pattern)


def repeat(x, pattern, **sizes):
    if pattern == 'b l s -> (b h) l s':
        return x.repeat_interleave(sizes['h'], dim=0)
    if pattern == 'b c -> b t c':
        return x.unsqueeze(1).expand(-1, sizes['t'], -1)
    if pattern == 'c -> t c':
        return x.unsqueeze(0).expand(sizes['t'], -1)
    raise NotImplementedError(pattern)

# ----------------------------------------------------------------------------- model/HAN.py (eb81492)


def _get_clones(module, N):
    return nn.ModuleList([copy.deepcopy(module) for i in range(N)])

class MLP(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x

class Encoder(nn.Module):
    def __init__(self, encoder_layer, num_layers, hidden_dim):
        super(Encoder, self).__init__()

        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.final_norm_a = nn.LayerNorm(hidden_dim)
        self.final_norm_v = nn.LayerNorm(hidden_dim)

    def forward(self, pre_norm, src_a, src_v, attn_mask=None, src_key_padding_mask=None):

        for i in range(self.num_layers):
            src_a = self.layers[i](pre_norm, src_a, src_v, attn_mask=attn_mask,
                                    src_key_padding_mask=src_key_padding_mask, with_ca=True)
            src_v = self.layers[i](pre_norm, src_v, src_a, attn_mask=attn_mask,
                                    src_key_padding_mask=src_key_padding_mask, with_ca=True)

        if pre_norm:
            src_a = self.final_norm_a(src_a)
            src_v = self.final_norm_v(src_v)

        return src_a, src_v


class HANLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=512, dropout=0.1):
        super(HANLayer, self).__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.cm_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)

        # Implementation of Feedforward model
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)

        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout11 = nn.Dropout(dropout)
        self.dropout12 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

        self.activation = nn.ReLU()

    def forward(self, pre_norm, src_q, src_v, attn_mask=None, src_key_padding_mask=None, with_ca=True):
        src_q = rearrange(src_q, 'b t c -> t b c')
        src_v = rearrange(src_v, 'b t c -> t b c')

        if pre_norm:
            src_q_pre_norm = self.norm1(src_q)

            if with_ca:
                src1 = self.cm_attn(src_q_pre_norm, src_v, src_v, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]
                src2 = self.self_attn(src_q_pre_norm, src_q_pre_norm, src_q_pre_norm, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]

                src_q = src_q + self.dropout11(src1) + self.dropout12(src2)
            else:
                src2 = self.self_attn(src_q_pre_norm, src_q_pre_norm, src_q_pre_norm, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]

                src_q = src_q + self.dropout12(src2)

            src_q_pre_norm = self.norm2(src_q)
            src2 = self.linear2(self.dropout(F.relu(self.linear1(src_q_pre_norm))))
            src_q = src_q + self.dropout2(src2)

            return rearrange(src_q, 't b c -> b t c')

        else:
            if with_ca:
                src1 = self.cm_attn(src_q, src_v, src_v, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]
                src2 = self.self_attn(src_q.clone(), src_q, src_q, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]

                src_q = src_q + self.dropout11(src1) + self.dropout12(src2)
                src_q = self.norm1(src_q)
            else:
                src2 = self.self_attn(src_q, src_q, src_q, attn_mask=attn_mask,
                                    key_padding_mask=src_key_padding_mask)[0]

                src_q = src_q + self.dropout12(src2)
                src_q = self.norm1(src_q)

            src2 = self.linear2(self.dropout(F.relu(self.linear1(src_q))))
            src_q = src_q + self.dropout2(src2)
            src_q = self.norm2(src_q)

            return rearrange(src_q, 't b c -> b t c')


class HybridAttentionNet(nn.Module):
    def __init__(
            self,
            num_classes,
            input_v_2d_dim,
            input_v_3d_dim,
            input_a_dim,
            hidden_dim,
            nhead,
            ff_dim,
            num_han_layers,
            num_proj_layers,
            num_MMIL_layers,
            dropout=0.1,
            pre_norm=False
        ):
        super(HybridAttentionNet, self).__init__()

        self.num_classes = num_classes
        self.input_v_2d_dim = input_v_2d_dim   # 2048: ResNet152, 768: CLIP large
        self.input_v_3d_dim = input_v_3d_dim
        self.input_a_dim = input_a_dim         # 128: VGGish, 512: CLAP
        self.hidden_dim = hidden_dim
        self.nhead = nhead
        self.ff_dim = ff_dim
        self.num_han_layers = num_han_layers
        self.num_proj_layers = num_proj_layers
        self.num_MMIL_layers = num_MMIL_layers
        self.dropout = dropout
        self.pre_norm = pre_norm

        self.fc_prob = nn.Linear(self.hidden_dim, self.num_classes)
        self.fc_frame_att = MLP(self.hidden_dim, self.hidden_dim*2, self.num_classes, num_layers=self.num_MMIL_layers)
        self.fc_av_att = MLP(self.hidden_dim, self.hidden_dim*2, self.num_classes, num_layers=self.num_MMIL_layers)

        self.fc_a = MLP(self.input_a_dim, self.hidden_dim*2, self.hidden_dim, num_layers=2)
        self.fc_fusion = MLP(self.input_v_2d_dim + self.input_v_3d_dim, self.hidden_dim*2, self.hidden_dim, num_layers=self.num_proj_layers)

        self.hat_encoder = Encoder(HANLayer(d_model=self.hidden_dim, nhead=self.nhead, dim_feedforward=self.ff_dim, dropout=self.dropout),
                                   num_layers=self.num_han_layers, hidden_dim=self.hidden_dim)

    def forward(self, a_feat, vis_2d_feat, vis_3d_feat=None, attn_mask=None, src_key_padding_mask=None):

        B, T = a_feat.shape[:2]

        # audio feature projection
        a_feat = self.fc_a(a_feat)

        # 2d visual feature projection (avg pool if needed)
        if vis_2d_feat.shape[1] != T:   # input 2d features are from ResNet152
            vis_2d_feat = reduce(vis_2d_feat, 'b (t1 t2) c -> b t1 c', 'mean', t1=T)

        # 3d visual feature projection and fused with 2d visual feature
        if vis_3d_feat is not None:
            vis_feat = torch.cat((vis_2d_feat, vis_3d_feat), dim=-1)
            vis_feat = self.fc_fusion(vis_feat)
        else:
            vis_feat = vis_2d_feat

        # HAN
        if attn_mask is not None:
            attn_mask = ~attn_mask  # change values of pad position from False to True
            attn_mask = repeat(attn_mask, 'b l s -> (b h) l s', h=self.nhead)
        a_feat, vis_feat = self.hat_encoder(self.pre_norm, a_feat, vis_feat, attn_mask, src_key_padding_mask)

        # prediction
        feat = torch.cat([a_feat.unsqueeze(-2), vis_feat.unsqueeze(-2)], dim=-2)
        frame_logits = self.fc_prob(feat)               # (B, T, 2, C)
        frame_probs = torch.sigmoid(frame_logits)       # (B, T, 2, C)

        # attentive MMIL pooling
        frame_att = torch.softmax(self.fc_frame_att(feat), dim=1)   # (B, T, 2, C)
        av_att = torch.softmax(self.fc_av_att(feat), dim=2)         # (B, T, 2, C)
        temporal_probs = (frame_att * frame_probs)
        global_probs = (temporal_probs * av_att).sum(dim=2).sum(dim=1)  # (B, C)

        a_probs = temporal_probs[:, :, 0, :].sum(dim=1)       # (B, C)
        v_probs = temporal_probs[:, :, 1, :].sum(dim=1)       # (B, C)

        a_frame_logits = frame_logits[:, :, 0, :]
        v_frame_logits = frame_logits[:, :, 1, :]

        return global_probs, a_probs, v_probs, a_frame_logits, v_frame_logits, a_feat, vis_feat

    def calculate_loss(self, args, outputs, labels, valid_masks,
                       a_logits=None, v_logits=None,
                       a_thresholds=None, v_thresholds=None,
                       a_class_freq=None, v_class_freq=None):

        video_probs, _, _, a_frame_logits, v_frame_logits, a_feat, v_feat = outputs
        weak_labels, a_pseudo_labels, v_pseudo_labels = labels  # (B, C), (B, T, C), (B, T, C)

        device = a_frame_logits.device

        # Initialize all losses
        loss_video = torch.tensor(0.0, device=device, dtype=torch.float32)
        loss_a_seg = torch.tensor(0.0, device=device, dtype=torch.float32)
        loss_v_seg = torch.tensor(0.0, device=device, dtype=torch.float32)
        loss_a_mixup = torch.tensor(0.0, device=device, dtype=torch.float32)
        loss_v_mixup = torch.tensor(0.0, device=device, dtype=torch.float32)


        if args.cal_video_loss:
            video_probs.clamp_(min=1e-7, max=1 - 1e-7)
            loss_video = F.binary_cross_entropy(video_probs, weak_labels)

        if args.cal_segment_loss:
            loss_a_seg = self.calculate_segment_loss(a_frame_logits, a_pseudo_labels, weak_labels,
                                                    a_logits, a_thresholds, args.apply_uncertainty,
                                                    args.apply_reweighting, args.reweight_type, a_class_freq,
                                                    args.pos_weight, args.neg_weight)
            loss_v_seg = self.calculate_segment_loss(v_frame_logits, v_pseudo_labels, weak_labels,
                                                    v_logits, v_thresholds, args.apply_uncertainty,
                                                    args.apply_reweighting, args.reweight_type, v_class_freq,
                                                    args.pos_weight, args.neg_weight)
        if args.cal_mixup_loss:
            loss_a_mixup = self.calculate_mixup_loss(a_feat, a_pseudo_labels, weak_labels,
                                                    a_logits, a_thresholds, args.apply_uncertainty_mixup,
                                                    self.fc_prob, args.alpha)
            loss_v_mixup = self.calculate_mixup_loss(v_feat, v_pseudo_labels, weak_labels,
                                                     v_logits, v_thresholds, args.apply_uncertainty_mixup,
                                                     self.fc_prob, args.alpha)

        loss = loss_video + \
                (loss_a_seg + loss_v_seg) * args.segment_loss_weight + \
                (loss_a_mixup + loss_v_mixup) * args.mixup_loss_weight

        loss_dict = {
            'loss_video': loss_video.item(),
            'loss_a_valor': loss_a_seg.item(),
            'loss_v_valor': loss_v_seg.item(),
            'loss_a_mixup': loss_a_mixup.item(),
            'loss_v_mixup': loss_v_mixup.item(),
            'loss_all': loss.item()
        }
        return loss, loss_dict

    def calculate_segment_loss(self, frame_logits, pseudo_labels, weak_labels,
                                logits, thresholds, apply_uncertainty,
                                apply_reweighting, reweight_type, class_freq,
                                pos_weight, neg_weight):
        B, T, C = frame_logits.shape

        if apply_uncertainty:
            assert logits is not None, 'logits cannot be None'
            assert thresholds is not None, 'thresholds cannot be None'
            # replace -inf with the smallest logit in the batch data that belongs to that class.
            logit_min = reduce(logits, 'b t c -> c', 'min')
            thresholds = torch.where(thresholds == float('-inf'), logit_min-1, thresholds)
            repeat_weak_labels = repeat(weak_labels, 'b c -> b t c', t=T)
            uncertainty_labels = torch.where(repeat_weak_labels == 1, torch.sigmoid((logits - thresholds) / 2), repeat_weak_labels)
            frame_labels = uncertainty_labels
        else:
            frame_labels = pseudo_labels

        loss = F.binary_cross_entropy_with_logits(frame_logits, frame_labels, reduction='none')

        if apply_reweighting:
            repeat_weak_labels = repeat(weak_labels, 'b c -> b t c', t=T)
            loss_weight = torch.ones_like(loss)

            if reweight_type == 'fixed':
                loss_weight = torch.where(repeat_weak_labels == 1, pos_weight, neg_weight)
            elif reweight_type == 'inverse_freq':
                pos_class_freq = class_freq.sum()
                neg_class_freq = C - pos_class_freq
                loss_weight = torch.where(repeat_weak_labels == 1, neg_class_freq * pos_weight, pos_class_freq)

            loss = (loss * loss_weight).mean()
        else:
            loss = loss.mean()

        return loss

    def calculate_mixup_loss(self, seg_feats, hard_seg_labels, weak_labels,
                             logits, thresholds, apply_uncertainty_mixup,
                             classifier, alpha):
        B, T, C = hard_seg_labels.shape

        if apply_uncertainty_mixup:
            logit_min = reduce(logits, 'b t c -> c', 'min')
            thresholds = torch.where(thresholds == float('-inf'), logit_min-1, thresholds)
            repeat_weak_labels = repeat(weak_labels, 'b c -> b t c', t=T)
            seg_labels = torch.where(repeat_weak_labels == 1, torch.sigmoid((logits - thresholds) / 2), repeat_weak_labels)
        else:
            seg_labels = hard_seg_labels

        seg_feats = rearrange(seg_feats, 'b t d -> (b t) d')
        seg_labels = rearrange(seg_labels, 'b t c -> (b t) c')

        mixed_seg_feats, seg_labels_1, seg_labels_2, lam = self.mixup_data(seg_feats, seg_labels, alpha)
        mixed_seg_logits = classifier(mixed_seg_feats)
        loss = lam * F.binary_cross_entropy_with_logits(mixed_seg_logits, seg_labels_1) + \
                (1 - lam) * F.binary_cross_entropy_with_logits(mixed_seg_logits, seg_labels_2)

        return loss

    def mixup_data(self, x, y, alpha):
        N = x.shape[0]
        if alpha > 0:
            beta_dist = torch.distributions.Beta(alpha, alpha)
            lam = beta_dist.sample()
        else:
            lam = 1

        index = torch.randperm(N, device=x.device)
        mixed_x = lam * x + (1 - lam) * x[index, :]
        y_1, y_2 = y, y[index]

        return mixed_x, y_1, y_2, lam

    @torch.no_grad()
    def get_pred(self, outputs):

        video_probs, _, _, a_frame_logits, v_frame_logits, _, _ = outputs     # (B, C), (B, T, C), (B, T, C)

        video_probs.squeeze_(dim=0)
        a_frame_logits.squeeze_(dim=0)
        v_frame_logits.squeeze_(dim=0)

        video_preds = (video_probs > 0.5).int()   # (C,)
        pred_a = get_seg_pred(a_frame_logits.sigmoid(), video_preds, 0.5).permute(1, 0).detach().cpu().numpy()  # (C, T)
        pred_v = get_seg_pred(v_frame_logits.sigmoid(), video_preds, 0.5).permute(1, 0).detach().cpu().numpy()  # (C, T)

        pred_av = pred_a * pred_v

        return pred_a, pred_v, pred_av


def get_seg_pred(seg_output, video_label, threshold):
    # seg_output (tensor): (T, C), either logits or probabilities
    # video_label (tensor): (C,)

    T, C = seg_output.size()
    video_label = repeat(video_label, 'c -> t c', t=T)
    seg_pred = (seg_output > threshold)
    seg_pred = torch.logical_and(seg_pred, video_label).int()

    return seg_pred

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

# ----------------------------------------------------------------------------- utils/train_utils.py (eb81492)


class WarmUpCosineAnnealingLR:
    def __init__(self, optimizer, warm_up_epoch, max_epoch, lr_min, lr_max):
        self.optimizer = optimizer
        self.warm_up_epoch = warm_up_epoch
        self.max_epoch = max_epoch
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.cur_epoch = 1

        self.step()

    def step(self):
        if self.cur_epoch < self.warm_up_epoch:
            lr = self.cur_epoch / self.warm_up_epoch * self.lr_max
        else:
            lr = (self.lr_min + 0.5*(self.lr_max-self.lr_min)*(1.0+math.cos((self.cur_epoch-self.warm_up_epoch)/(self.max_epoch-self.warm_up_epoch)*math.pi)))

        for param_group in self.optimizer.param_groups:
            param_group['lr'] = lr

        self.cur_epoch += 1

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
# the two loss weights)
ARGS = SimpleNamespace(
    cal_video_loss=True, cal_segment_loss=True, apply_uncertainty=True, apply_reweighting=True,
    reweight_type='inverse_freq', pos_weight=0.5, neg_weight=1, cal_mixup_loss=True, alpha=1.7,
    apply_uncertainty_mixup=True, segment_loss_weight=1.0, mixup_loss_weight=1.0,
    batch_size=64, epochs=80, warm_up_epoch=10, lr=1e-4, lr_min=5e-6, optimizer='adamw', weight_decay=1e-4,
    scheduler='warm_up_cos_anneal', grad_norm=1.0, beta1=0.9, beta2=0.999, eps=1e-8, seed=20000,
    hidden_dim=512, nhead=16, ff_dim=2048, num_proj_layers=1, num_han_layers=5, num_MMIL_layers=1, dropout=0.1,
    input_v_2d_dim=2048, input_v_3d_dim=512, input_a_dim=128, num_classes=25, pre_norm=False)

# ----------------------------------------------------------------------------- the tests

B, T, C = 4, 10, 25


def released_net(seed: int = 0, **sizes: int) -> HybridAttentionNet:
    """The released HAN (build_model in model/__init__.py), by default at the script's size, float64,
    in eval mode (no dropout), every parameter moved off its initial value so that each one matters."""
    args = SimpleNamespace(**{**vars(ARGS), **sizes})
    torch.manual_seed(seed)
    net = HybridAttentionNet(args.num_classes, args.input_v_2d_dim, args.input_v_3d_dim, args.input_a_dim,
                             args.hidden_dim, args.nhead, args.ff_dim, args.num_han_layers, args.num_proj_layers,
                             args.num_MMIL_layers, args.dropout, args.pre_norm).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return net


def ours_from(net: HybridAttentionNet) -> UwavHAN:
    model = UwavHAN(C, dropout=net.dropout, hidden=net.hidden_dim, heads=net.nhead, ff=net.ff_dim,
                    layers=net.num_han_layers, proj_layers=net.num_proj_layers).double().eval()
    load_han_state(model, net.state_dict())
    return model


def batch_data(seed: int) -> dict[str, torch.Tensor]:
    """One batch as the released LLP_dataset gives it (float64 features), the generator's segment
    logits of either sign, and its hard pseudo labels."""
    g = torch.Generator().manual_seed(seed)
    weak = (torch.rand(B, C, generator=g) < 0.2).double()
    weak[:, :3] = 1.0  # the classes with -inf thresholds are labels of every video
    logits = {m: torch.randn(B, T, C, generator=g, dtype=torch.float64) * 4 for m in "av"}
    return {'audio': torch.randn(B, T, 128, generator=g, dtype=torch.float64),
            'video_s': torch.randn(B, 8 * T, 2048, generator=g, dtype=torch.float64),
            'video_st': torch.randn(B, T, 512, generator=g, dtype=torch.float64),
            'weak_label': weak, 'valid_mask': torch.ones(B, T), 'attn_mask': torch.ones(B, T, T, dtype=torch.bool),
            'a_logit': logits['a'], 'v_logit': logits['v'],
            'a_pseudo_label': ((logits['a'] > 0) & (weak[:, None] == 1)).double(),
            'v_pseudo_label': ((logits['v'] > 0) & (weak[:, None] == 1)).double()}


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


def test_uwav_han_loads_a_released_state_dict_and_computes_the_released_forward() -> None:
    """The script's network (5 layers, width 512, 16 heads, ff 2048, 1-layer visual projection): every
    released name but the unused final LayerNorms is ours, and the outputs are the released ones."""
    net = released_net()
    model = ours_from(net)
    defaults = {k: v.default for k, v in inspect.signature(UwavHAN).parameters.items()}
    keys = ("hidden", "heads", "ff", "layers", "audio_first", "proj_layers", "dropout")
    assert {k: defaults[k] for k in keys} == {k: model.options()[k] for k in keys}  # UwavHAN's defaults: the script's
    released_names = set(net.state_dict())
    assert released_names - set(model.state_dict()) == {f"hat_encoder.final_norm_{m}.{p}" for m in "av"
                                                        for p in ("weight", "bias")}
    assert set(model.state_dict()) <= released_names
    data = batch_data(5)
    with torch.no_grad():
        theirs = net(data['audio'], data['video_s'], vis_3d_feat=data['video_st'], attn_mask=data['attn_mask'])
        streams = model.encode(data['audio'], data['video_s'], data['video_st'])
        global_prob, a_prob, v_prob, frame_prob = model.classify(streams)
    for name, ours, ref in (("audio stream", streams.audio, theirs[5]), ("visual stream", streams.visual, theirs[6]),
                            ("global_prob", global_prob, theirs[0].clamp(max=1.0)), ("a_prob", a_prob, theirs[1]),
                            ("v_prob", v_prob, theirs[2]), ("audio frames", frame_prob[:, :, 0], theirs[3].sigmoid()),
                            ("visual frames", frame_prob[:, :, 1], theirs[4].sigmoid())):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10, msg=name)


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


def test_uwav_as_published_decisions_equal_the_released_get_pred() -> None:
    """get_pred's rule (video prob > 0.5, sigmoid(frame logit) > 0.5, strict) is avvp's
    uwav_as_published protocol, ties at exactly 0.5 included."""
    g = torch.Generator().manual_seed(8)
    video = torch.rand(1, C, generator=g)
    video[0, :4] = 0.5
    frames = [torch.randn(1, T, C, generator=g) for _ in "av"]
    for f in frames:
        f[0, :, :6] = 0.0  # sigmoid(0) = 0.5 exactly
    outputs = (video.clone(), None, None, frames[0].clone(), frames[1].clone(), None, None)
    pred_a, pred_v, _ = HybridAttentionNet.get_pred(None, outputs)
    ours = Outputs(video.numpy(), torch.stack([f.sigmoid() for f in frames], dim=2).numpy())
    audio, visual = decide(protocol("uwav_as_published"), ours)
    assert np.array_equal(audio[0], pred_a.astype(bool)) and np.array_equal(visual[0], pred_v.astype(bool))
    assert pred_a.any() and pred_v.any()


def test_uwav_han_options_rebuild_it() -> None:
    model = UwavHAN(C, hidden=16, heads=2, ff=8, layers=2, proj_layers=2)
    options = model.options()
    assert options["network"] == "uwav" and options["heads"] == 2 and options["proj_layers"] == 2
    rebuilt = UwavHAN(C, **{k: v for k, v in options.items() if k != "network"})
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert "fc_fusion.layers.1.weight" in rebuilt.state_dict() and "fc_v.weight" not in rebuilt.state_dict()
