"""CoLeaF equals its released code (faeghehsardari/coleaf at a36a153): the single-modality branches'
forward, the main network from a released-format state dict, and one training batch (the main loss,
its gradients, and the branches after their Adam steps) at each phase of training. CoLeaF's code
grew from CMPAE's: what it keeps unchanged is imported from CMPAE's transcription (test_cmpae.py);
what it changes is transcribed below as released, on the CPU."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avvp.methods.collaborative import CoLeaFObjective
from avvp.methods.objectives import Batch
from avvp.model.checkpoint import load_han
from avvp.model.coleaf import BRANCH_UNUSED, CoLeaFNet
from avvp.model.han import load_han_state
from test_cmpae import (HANLayer as CmpaeHANLayer, MMIL_Net as CmpaeMMIL_Net, MutualLearningLoss, features,
                        get_p_and_u_from_logit, released_checkpoint, released_drops)

# ----------------------------------------------------------------------------- nets/net_audiovisual.py


class LabelSmoothingNCELoss(nn.Module):

    def __init__(self, classes, smoothing=0.0, dim=-1):
        super(LabelSmoothingNCELoss, self).__init__()
        self.confidence = 1.0 - smoothing
        self.smoothing = smoothing
        self.cls = classes
        self.dim = dim

    def forward(self, pred, target, weights):
        pred = pred.softmax(dim=self.dim)
        with torch.no_grad():
            true_dist = torch.zeros_like(pred)
            true_dist.fill_(self.smoothing / (self.cls - 1))
            true_dist.scatter_(1, target.data.unsqueeze(1), self.confidence)
        if weights == None:
            return -torch.mean(torch.log(torch.sum(true_dist * pred, dim=self.dim)))
        else:
            weights = weights.reshape(-1)
            return - torch.mean(weights * torch.log(torch.sum(true_dist * pred, dim=self.dim)))


class HANLayer(CmpaeHANLayer):
    """CMPAE's layer with CoLeaF's additions: unused class tokens and an unused random draw."""

    def __init__(self, d_model, nhead, dim_feedforward=512, dropout=0.1):
        super().__init__(d_model, nhead, dim_feedforward, dropout)
        self.input_drp = nn.Dropout(p=1)
        self.cls_tokens_a = nn.Parameter(torch.zeros(1, 25, 512))
        self.cls_tokens_v = nn.Parameter(torch.zeros(1, 25, 512))
        self.num_classes = 25

    def forward(self, src_q, src_v, src_mask=None, src_key_padding_mask=None, with_ca=True, rnd_th=0.5):
        torch.rand([src_v.size(1)])  # rnd: drawn, never used
        return super().forward(src_q, src_v, src_mask, src_key_padding_mask, with_ca)


class MMIL_Net(CmpaeMMIL_Net):
    """CMPAE's network with CoLeaF's layers and outputs: the normalised streams instead of CMPAE's
    similarity matrix (pooled ones too, which the training never reads)."""

    def __init__(self, num_layers=1, temperature=0.2, att_dropout=0.1, cls_dropout=0.5):
        super().__init__(num_layers, temperature, att_dropout, cls_dropout)
        self.hat_encoder.layers = nn.ModuleList([HANLayer(512, 1, 512, att_dropout) for _ in range(num_layers)])
        self.avg_pool = nn.AvgPool1d(5, stride=5)

    def forward(self, audio, visual, visual_st, with_ca=True):
        b, t, d = visual_st.size()
        x1 = self.fc_a(audio)
        vid_s = self.fc_v(visual).permute(0, 2, 1).unsqueeze(-1)
        vid_s = F.avg_pool2d(vid_s, (8, 1)).squeeze(-1).permute(0, 2, 1)
        vid_st = self.fc_st(visual_st)
        x2 = torch.cat((vid_s, vid_st), dim=-1)
        x2 = self.fc_fusion(x2)

        x1_embed = self.classifier1(x1)
        x2_embed = self.classifier1(x2)
        ori_logit = self.classifier2(x1_embed + x2_embed)
        ori_alpha = torch.exp(torch.div(torch.clamp(ori_logit.mean(dim=1), -10, 10), 0.8)).add(1.0)
        global_uct = 25 / torch.sum(ori_alpha, dim=-1)
        ori_prob = nn.Sigmoid()(ori_logit)
        global_prob = ori_prob.mean(dim=1)

        if not with_ca:
            x1, x2 = self.hat_encoder(x1, x2, with_ca=False)
        else:
            x1_woca, x2_woca = self.hat_encoder(x1, x2, with_ca=False)
            x1_ca, x2_ca = self.hat_encoder(x1, x2, with_ca=True)
            ratio = 0.80
            x1 = x1_ca * ratio + x1_woca * (1 - ratio)
            x2 = x2_ca * ratio + x2_woca * (1 - ratio)

        xx2_after = self.avg_pool(x2.transpose(1, 2)).transpose(1, 2)
        xx1_after = self.avg_pool(x1.transpose(1, 2)).transpose(1, 2)

        xx2_after = F.normalize(xx2_after, p=2, dim=-1)
        xx1_after = F.normalize(xx1_after, p=2, dim=-1)
        xx2_before = F.normalize(x2, p=2, dim=-1)
        xx1_before = F.normalize(x1, p=2, dim=-1)

        if self.dropout is not None:
            x2 = self.dropout(x2)
        x = torch.cat([x1.unsqueeze(-2), x2.unsqueeze(-2)], dim=-2)

        c = 25
        b, t, m, _ = x.shape

        frame_alpha_logit = self.fc_prob(x)
        x_a = x[:, :, 0]
        x_v = x[:, :, 1]
        x_v2a = x_a + self.v2a(x_a + x_v)
        x_a2v = x_v + self.a2v(x_a + x_v)
        frame_beta_a = self.fc_prob_beta(x_v2a)
        frame_beta_v = self.fc_prob_beta(x_a2v)
        frame_beta_logit = torch.stack((frame_beta_a, frame_beta_v), dim=2)
        frame_logit = torch.stack((frame_alpha_logit, frame_beta_logit), dim=-1)

        frame_att_before_softmax = self.fc_frame_att(x).reshape(b, t, m, c, 2)
        frame_att = torch.softmax(frame_att_before_softmax, dim=1)
        temporal_logit = frame_att * frame_logit
        a_logit = temporal_logit[:, :, 0, :, :].sum(dim=1)
        v_logit = temporal_logit[:, :, 1, :, :].sum(dim=1)

        a_prob, a_uct = get_p_and_u_from_logit(a_logit)
        v_prob, v_uct = get_p_and_u_from_logit(v_logit)
        frame_prob, frame_uct = get_p_and_u_from_logit(frame_logit)

        return global_prob, a_prob, v_prob, frame_prob, xx1_before, xx2_before, xx1_after, xx2_after, \
               global_uct, a_uct, v_uct, frame_uct


class Self_HANLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=512, dropout=0.1):
        super(Self_HANLayer, self).__init__()
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
        self.input_drp = nn.Dropout(p=1)

    def forward(self, src_q, src_v, src_mask=None, src_key_padding_mask=None, with_ca=True, rnd_th=0.5):
        src_q = src_q.permute(1, 0, 2)
        src_v = src_v.permute(1, 0, 2)
        rnd = torch.rand([src_v.size(0)])
        rnd = torch.tensor((rnd.numpy() >= rnd_th).astype(np.int_)).to(src_v.device)
        src_v2 = torch.zeros(src_v.size()).to(src_v.device)

        if with_ca:
            src1 = self.cm_attn(src_q, src_v, src_v, attn_mask=src_mask,
                                key_padding_mask=src_key_padding_mask)[0]
            src2 = self.self_attn(src_q, src_q, src_q, attn_mask=src_mask,
                                  key_padding_mask=src_key_padding_mask)[0]

            src_q = src_q + self.dropout11(src1) + self.dropout12(src2)
            src_q = self.norm1(src_q)
        else:
            src2, attn = self.self_attn(src_q, src_q, src_q, attn_mask=src_mask,
                                  key_padding_mask=src_key_padding_mask)

            src_q = src_q + self.dropout12(src2)
            src_q = self.norm1(src_q)

        src_q = src_q + self.dropout2(self.linear2(self.dropout(F.relu(self.linear1(src_q)))))
        src_q = self.norm2(src_q)
        return src_q.permute(1, 0, 2), attn


class Self_Encoder(nn.Module):
    def __init__(self, encoder_layer, num_layers, norm=None, d_model=512, nhead=1, dim_feedforward=512, dropout=0.1):
        super(Self_Encoder, self).__init__()
        self.layers = []
        if encoder_layer == 'Self_HANLayer':
            for i in range(num_layers):
                self.layers.append(Self_HANLayer(d_model=d_model, nhead=nhead,
                                            dim_feedforward=dim_feedforward, dropout=dropout))
        else:
            raise ValueError('wrong encoder layer')
        self.layers = nn.ModuleList(self.layers)
        self.num_layers = num_layers
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm = norm

    def forward(self, src_a, mask=None, src_key_padding_mask=None, with_ca=True):
        output_a = src_a

        for i in range(self.num_layers):
            output_a, attn = self.layers[i](src_a, src_a, src_mask=mask,
                                      src_key_padding_mask=src_key_padding_mask, with_ca=with_ca, rnd_th=0.5)
            src_a = output_a
        if self.norm:
            output_a = self.norm1(output_a)

        return output_a, attn


class Self_Audio_Net(nn.Module):

    def __init__(self, num_layers=1, temperature=0.2, att_dropout=0.1, cls_dropout=0.5, num_classes = 25):
        super(Self_Audio_Net, self).__init__()

        self.fc_prob = nn.Linear(512, 25)
        self.fc_frame_att = nn.Linear(512, 25)
        self.fc_a = nn.Linear(128, 512)
        self.hat_encoder = Self_Encoder('Self_HANLayer', num_layers, norm=None, d_model=512,
                                   nhead=1, dim_feedforward=512, dropout=att_dropout)

        self.num_classes = num_classes
        self.cls_tokens_a = nn.Parameter(torch.zeros(1, self.num_classes, 512))
        self.avg_pool = nn.AvgPool1d(512)
        self.avg_t_pool = nn.AvgPool1d(5, stride=5)

        if cls_dropout != 0:
            self.dropout = nn.Dropout(p=cls_dropout)
        else:
            self.dropout = None

    def forward(self, audio):
        b, t, d = audio.size()
        x1 = self.fc_a(audio)
        cls_tokens_a = self.cls_tokens_a.expand(b, -1, -1)
        x1 = torch.cat((cls_tokens_a, x1), dim=1)
        x1, attn = self.hat_encoder(x1, with_ca=False)
        post_cls_tokens_a = x1[:, 0:self.num_classes, :]
        post_cls_tokens_a = torch.squeeze(torch.sigmoid(self.avg_pool(post_cls_tokens_a)), dim=2)
        x1 = x1[:, self.num_classes:self.num_classes + t, :]

        xx1_after = self.avg_t_pool(x1.transpose(1, 2)).transpose(1, 2)
        xx1_after = F.normalize(xx1_after, p=2, dim=-1)
        xx1_before = F.normalize(x1, p=2, dim=-1)

        frame_prob = torch.sigmoid(self.fc_prob(self.dropout(x1)))
        frame_att = torch.softmax(self.fc_frame_att(x1), dim=1)
        temporal_prob = frame_att * frame_prob
        a_prob = temporal_prob.sum(dim=1)

        return a_prob, frame_prob, post_cls_tokens_a, xx1_before, xx1_after


class Self_Video_Net(nn.Module):

    def __init__(self, num_layers=1, temperature=0.2, att_dropout=0.1, cls_dropout=0.5, num_classes = 25):
        super(Self_Video_Net, self).__init__()

        self.fc_prob = nn.Linear(512, 25)
        self.fc_frame_att = nn.Linear(512, 25)
        self.fc_v = nn.Linear(2048, 512)
        self.fc_st = nn.Linear(512, 512)
        self.fc_fusion = nn.Linear(1024, 512)
        self.avg_pool = nn.AvgPool1d(512)

        self.hat_encoder = Self_Encoder('Self_HANLayer', num_layers, norm=None, d_model=512,
                                   nhead=1, dim_feedforward=512, dropout=att_dropout)

        self.num_classes = num_classes
        self.cls_tokens_v = nn.Parameter(torch.zeros(1, self.num_classes, 512))

        self.temp = temperature
        if cls_dropout != 0:
            self.dropout = nn.Dropout(p=cls_dropout)
        else:
            self.dropout = None
        self.avg_t_pool = nn.AvgPool1d(5, stride=5)

    def forward(self, visual, visual_st):
        b, t, d = visual_st.size()
        vid_s = self.fc_v(visual).permute(0, 2, 1).unsqueeze(-1)
        vid_s = F.avg_pool2d(vid_s, (8, 1)).squeeze(-1).permute(0, 2, 1)
        vid_st = self.fc_st(visual_st)
        x2 = torch.cat((vid_s, vid_st), dim=-1)
        x2 = self.fc_fusion(x2)

        cls_tokens_v = self.cls_tokens_v.expand(b, -1, -1)
        x2 = torch.cat((cls_tokens_v, x2), dim=1)
        x2, attn = self.hat_encoder(x2, with_ca=False)

        post_cls_tokens_v = x2[:, 0:self.num_classes, :]
        post_cls_tokens_v = torch.squeeze(torch.sigmoid(self.avg_pool(post_cls_tokens_v)), dim=2)
        x2 = x2[:, self.num_classes:self.num_classes + t, :]

        xx2_after = self.avg_t_pool(x2.transpose(1, 2)).transpose(1, 2)
        xx2_after = F.normalize(xx2_after, p=2, dim=-1)
        xx2_before = F.normalize(x2, p=2, dim=-1)

        if self.dropout is not None:
            x2 = self.dropout(x2)
        frame_prob = torch.sigmoid(self.fc_prob(x2))
        frame_att = torch.softmax(self.fc_frame_att(x2), dim=1)
        temporal_prob = frame_att * frame_prob
        v_prob = temporal_prob.sum(dim=1)
        return v_prob, frame_prob, post_cls_tokens_v, xx2_before, xx2_after

# ----------------------------------------------------------------------------- utils/eval_metrics.py


class AsymmetricLoss(nn.Module):

    def __init__(self, gamma_neg=1, gamma_pos=1, clip=0.05, eps=1e-8, disable_torch_grad_focal_loss=True):
        super(AsymmetricLoss, self).__init__()

        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.disable_torch_grad_focal_loss = disable_torch_grad_focal_loss
        self.eps = eps

    def forward(self, x, y):
        xs_pos = x
        xs_neg = 1 - x

        if self.clip is not None and self.clip > 0:
            xs_neg = (xs_neg + self.clip).clamp(max=1)

        los_pos = y * torch.log(xs_pos.clamp(min=self.eps))
        los_neg = (1 - y) * torch.log(xs_neg.clamp(min=self.eps))
        loss = los_pos + los_neg

        if self.gamma_neg > 0 or self.gamma_pos > 0:
            if self.disable_torch_grad_focal_loss:
                torch.set_grad_enabled(False)
            pt0 = xs_pos * y
            pt1 = xs_neg * (1 - y)  # pt = p if t > 0 else 1-p
            pt = pt0 + pt1
            one_sided_gamma = self.gamma_pos * y + self.gamma_neg * (1 - y)
            one_sided_w = torch.pow(1 - pt, one_sided_gamma)
            if self.disable_torch_grad_focal_loss:
                torch.set_grad_enabled(True)
            loss *= one_sided_w

        return -loss.sum()


def cc_loss(logits_student, logits_teacher, mode=1, reduce=True):
    batch_size, class_num = logits_teacher.shape

    loss_l1= nn.L1Loss()

    student_matrix = logits_student.unsqueeze(dim=2) @ logits_student.unsqueeze(dim=1)
    teacher_matrix = logits_teacher.unsqueeze(dim=2) @ logits_teacher.unsqueeze(dim=1)

    if reduce:
        if mode == 1:
            consistency_loss = ((teacher_matrix - student_matrix) ** 2).sum() / class_num * batch_size
        else:
            consistency_loss = loss_l1(student_matrix, teacher_matrix)
    else:
        consistency_loss = ((teacher_matrix - student_matrix) ** 2) / class_num * batch_size

    return consistency_loss

# ----------------------------------------------------------------------------- main.py


def NCE_loss(temp, smooth, cls, x_audio, x_video, weights= None):
    [b,_,_] = x_video.shape
    criterion2 = LabelSmoothingNCELoss(classes=cls, smoothing=smooth)
    sims_after = x_audio.bmm(x_video.permute(0, 2, 1)).squeeze(1) / temp
    sims_after = sims_after.reshape(-1, cls)
    mask_after = torch.zeros(b, cls)
    mask_after = mask_after.long()
    for i in range(cls):
        mask_after[:, i] = i

    mask_after = mask_after.reshape(-1)

    return  criterion2(sims_after, mask_after, weights)


def released_batch(args, model, a_model, v_model, a_optimizer, v_optimizer, audio, video, video_st, target, Pa, Pv,
                   noise_ratios, epoch, batch_idx, iters_per_epoch):
    """main.py train(), one batch up to loss; its ramp and drops are CMPAE's, unchanged."""
    criterion_bce, criterion_bce_2, criterion_cc, criterion_nce = nn.BCELoss(), AsymmetricLoss(), cc_loss, NCE_loss
    criterion_mutual = MutualLearningLoss(eta=args.mutual_eta)
    released_drops(args, model, audio, video, video_st, Pa, Pv, noise_ratios, epoch, batch_idx, iters_per_epoch)
    with torch.no_grad():
        output, a_prob, v_prob, frame_prob, xx_a_before, xx_v_before, xx_a_after, xx_v_after, global_uct, a_uct, v_uct, frame_uct = model(audio, video, video_st,
                                                                                       with_ca=True)
    a_optimizer.zero_grad()
    a_prob = (a_prob >= 0.5).float() * Pa
    v_prob = (v_prob >= 0.6).float() * Pv
    s_a_prob, s_a_frame_prob, cls_a, s_x_a_before, s_x_a_after = a_model(audio)
    if epoch > args.second_warm_up_epoch:
        loss_a = 0.5 * criterion_bce_2(s_a_prob, Pa) + 0.001 * criterion_bce_2(cls_a, Pa) + 0.5 * criterion_bce_2(s_a_prob, a_prob)
    else:
        loss_a = 1 * criterion_bce_2(s_a_prob, Pa) + 1.2 * criterion_bce_2(cls_a, Pa)

    loss_a.backward()
    a_optimizer.step()

    v_optimizer.zero_grad()
    s_v_prob, s_v_frame_prob, cls_v, s_x_v_before, s_x_v_after = v_model(video, video_st)
    if epoch >  args.second_warm_up_epoch:
        loss_v = 0.5 * criterion_bce_2(s_v_prob, Pv) + 0.000 * criterion_bce_2(cls_v, Pv) + 0.5 * criterion_bce_2(s_v_prob, v_prob)
    else:
        loss_v = 1 * criterion_bce_2(s_v_prob, Pv) + 1 * criterion_bce_2(cls_v, Pv)

    loss_v.backward()
    v_optimizer.step()

    with torch.no_grad():
        s_a_prob, s_a_frame_prob, cls_a_2, x_a_before, x_a_after = a_model(audio)
        s_v_prob, s_v_frame_prob, cls_v_2, x_v_before, x_v_after = v_model(video, video_st)
    output, a_prob, v_prob, frame_prob, xx1_before, xx2_before, xx1_after, xx2_after, global_uct, a_uct, v_uct, frame_uct = \
        model(audio, video, video_st, with_ca=True)

    output = torch.clamp(output, min=args.clamp, max=1 - args.clamp)
    a_prob = torch.clamp(a_prob, min=args.clamp, max=1 - args.clamp)
    v_prob = torch.clamp(v_prob, min=args.clamp, max=1 - args.clamp)

    loss1 = criterion_bce(a_prob, Pa)
    loss2 = criterion_bce(v_prob, Pv)
    loss3 = criterion_bce(output, target)

    s_a_prob2 = (s_a_prob >= 0.8).float()
    s_a_prob3 = (s_a_prob <= 0.1).float()

    s_a_prob4  = (s_a_prob2 + s_a_prob3) * Pa

    with torch.no_grad():
        s_a_prob4 = s_a_prob4 * s_a_prob + a_prob * (1 - s_a_prob4)

    s_v_prob2 = (s_v_prob >= 0.6).float()
    s_v_prob3 = (s_v_prob <= 0.4).float()

    s_v_prob4 = (s_v_prob2 + s_v_prob3) * Pv

    with torch.no_grad():
        s_v_prob4 = s_v_prob4 * s_v_prob + v_prob * (1 - s_v_prob4)
    loss_cc_a = criterion_cc(a_prob, s_a_prob4, mode=1)
    loss_cc_v = criterion_cc(v_prob, s_v_prob4, mode=1)

    with torch.no_grad():
        s_a_prob22 = (s_a_prob >= 0.5).float()
        s_v_prob22 = (s_v_prob >= 0.5).float()
        audio_c = ((s_a_prob22 * (1 - s_v_prob22)) == 1.).sum(dim=1)
        video_c =((s_v_prob22 * (1 - s_a_prob22)) == 1.).sum(dim=1)
        audio_video_c = ((s_v_prob22 * (s_a_prob22)) == 1.).sum(dim=1)
        total_a_v_1 = audio_c + audio_video_c
        total_a_v_1[total_a_v_1 == 0] = 1
        total_a_v_2 = video_c + audio_video_c
        total_a_v_2[total_a_v_2 == 0] = 1
        audio_w = torch.unsqueeze((audio_c / total_a_v_1), dim=1)
        audio_w = audio_w.expand(-1, 10)
        video_w = torch.unsqueeze((video_c / total_a_v_2), dim=1)
        video_w = video_w.expand(-1, 10)
    loss4 = criterion_nce(0.2, 0.1, 10, xx1_before, xx2_before)
    loss_a_4 = criterion_nce(0.2, 0.1,10, x_a_before, xx1_before, audio_w)
    loss_v_4 = criterion_nce(0.2, 0.1, 10, x_v_before, xx2_before, video_w)

    loss_mutual = criterion_mutual(target, output, a_prob, v_prob, a_uct, v_uct, global_uct, batch_idx)

    if epoch > 1:
        loss = loss1 * (args.audio_weight) + loss2 * (args.visual_weight) + \
               loss3 * (args.video_weight) + (loss4) * args.nce_weight \
               + loss_mutual * args.mutual_weight \
               + 0.0001 * loss_cc_a + 0.0001 * loss_cc_v \
               + 0.009 * loss_a_4 + 1 * loss_v_4
    else:
        loss = loss1 * args.audio_weight + loss2 * args.visual_weight + \
               loss3 * args.video_weight + (loss4) * args.nce_weight + \
               loss_mutual * args.mutual_weight
    return loss


# option.py defaults (the README runs main.py without options)
ARGS = SimpleNamespace(warm_up_epoch=0.9, second_warm_up_epoch=3, clamp=1e-7, audio_weight=2.0, visual_weight=1.0,
                       video_weight=2.0, nce_weight=1.0, mutual_weight=1.0, mutual_eta=1.0, a_smooth=1.0, v_smooth=0.9,
                       lr=5e-4, lr_step_size=6, lr_gamma=0.25)

# ----------------------------------------------------------------------------- the tests


def perturbed(module: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    module = module.double().eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return module


def branch_state(released: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in released.state_dict().items() if k not in BRANCH_UNUSED}


def test_main_network_loads_from_coleafs_format_and_equals_its_forward(tmp_path: Path) -> None:
    net = perturbed(MMIL_Net(), 0)
    model, _, _ = load_han(released_checkpoint(net, tmp_path / "coleaf.pt"))
    assert isinstance(model, CoLeaFNet)
    model = model.double()
    inputs = features(2, 1)
    with torch.no_grad():
        for with_ca in (True, False):
            theirs = net(*inputs, with_ca=with_ca)
            ours = model.evidence(model.encode(*inputs, cross_modal=with_ca))
            for a, b in zip(ours[:4], theirs[:4]):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("epoch, batch_idx", [(1, 0), (2, 1), (5, 2)])
def test_training_batch_equals_the_released_step(tmp_path: Path, epoch: int, batch_idx: int) -> None:
    """The main loss and its gradients, and each branch after its Adam step, to 1e-6: epoch 1 (no
    teaching, no drops), epoch 2 (teaching; branches warming up), epoch 5 (branches on pseudo labels)."""
    net, a_net, v_net = perturbed(MMIL_Net(), 2), perturbed(Self_Audio_Net(), 3), perturbed(Self_Video_Net(), 4)
    model = CoLeaFNet(25).double().eval()
    load_han_state(model, net.state_dict())
    lr = ARGS.lr * ARGS.lr_gamma ** ((epoch - 1) // ARGS.lr_step_size)
    a_opt, v_opt = torch.optim.Adam(a_net.parameters(), lr=lr), torch.optim.Adam(v_net.parameters(), lr=lr)

    batch_size, iters = 8, 5
    inputs = features(batch_size, 5)
    g = torch.Generator().manual_seed(6)
    labels = (torch.rand(batch_size, 25, generator=g) < 0.3).double()
    labels[:, :3] = 1.0
    ratios = {"audio": np.linspace(0.1, 0.6, 25), "visual": np.linspace(0.6, 0.1, 25)}
    objective = CoLeaFObjective(ratios["audio"], ratios["visual"], smoothing=1 - ARGS.v_smooth)
    branches = objective._branches(model)
    for modality, released in (("audio", a_net), ("visual", v_net)):
        branches[modality][0].double().load_state_dict(branch_state(released))
        branches[modality][0].eval()
    objective.branches.update({m: (b, torch.optim.Adam(b.parameters(), lr=1.0)) for m, (b, _) in branches.items()})

    loss = released_batch(ARGS, net, a_net, v_net, a_opt, v_opt, *inputs, labels.clone(), labels.clone(),
                          ARGS.v_smooth * labels + (1 - ARGS.v_smooth) * 0.5, ratios, epoch, batch_idx, iters)
    loss.backward()
    ours = objective(model, Batch(inputs, labels, labels, labels, np.arange(batch_size), epoch, batch_idx, iters))
    ours.backward()

    assert abs(ours.item() - loss.item()) < 1e-6
    grads = dict(model.named_parameters())
    for name, p in net.named_parameters():
        if p.grad is not None and name in grads:
            np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=0, atol=1e-6, err_msg=name)
    for modality, released in (("audio", a_net), ("visual", v_net)):
        stepped = branches[modality][0].state_dict()
        for name, value in branch_state(released).items():
            np.testing.assert_allclose(stepped[name].numpy(), value.numpy(), rtol=0, atol=1e-6,
                                       err_msg=f"{modality} {name}")
