"""UWAV's temporal pseudo-label generator and labels pass equal the released code
(ysiqi0785-ops/UWAV at eb81492): the generator's forward from a released-format state dict, the
segment logits of a split, the class-wise thresholds and masked hard labels of the labels pass, the
pretraining loss with its gradient, the pretraining schedule, and UnAV-100's segment labels.

The released functions are transcribed below as released, except where a comment says otherwise:
tensors stay on the CPU, einops (not installed here) is replaced by `rearrange`/`repeat` shims for
exactly the patterns used, files the released code saves are returned instead, and branches these
tests do not take are left out."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from avvp.methods.uwav_labels import (PretrainingRecipe, modality_labels, pretraining_loss, read_unav_labels,
                                      segment_logits)
from avvp.model.uwav import UWAVGenerator
from uwav_released import MLP, WarmUpCosineAnnealingLR, rearrange, repeat

# The released TransformerEncoder keeps torch's default enable_nested_tensor=True with a time-first layer.
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")


# ----------------------------------------------------------------------------- model/TemporalTransformer.py @ eb81492


# MLP: the same class as model/HAN.py's, transcribed once in uwav_released.py


class TranformerEncoder(nn.Module):
    def __init__(self, hidden_dim, nhead, dim_feedforward, dropout, num_layers):
        super(TranformerEncoder, self).__init__()

        encoder_layer = nn.TransformerEncoderLayer(hidden_dim, nhead, dim_feedforward=dim_feedforward, dropout=dropout)
        self.encoder = nn.TransformerEncoder(encoder_layer, num_layers)

    def forward(self, src, mask=None, src_key_padding_mask=None):
        output = self.encoder(src, mask=mask, src_key_padding_mask=src_key_padding_mask)

        return output


class TemporalTransformer(nn.Module):
    def __init__(
            self,
            input_v_2d_dim,
            input_v_3d_dim,
            input_a_dim,
            hidden_dim,
            nhead,
            ff_dim,
            num_layers,
            dropout=0.1,
            pre_norm=False,
            clap_event_feats=None,
            clip_event_feats=None
    ):
        super(TemporalTransformer, self).__init__()

        self.input_v_2d_dim = input_v_2d_dim   # 2048: ResNet152, 768: CLIP large
        self.input_v_3d_dim = input_v_3d_dim
        self.input_a_dim = input_a_dim         # 128: VGGish, 512: CLAP
        self.hidden_dim = hidden_dim
        self.nhead = nhead
        self.ff_dim = ff_dim
        self.num_layers = num_layers
        self.dropout = dropout
        self.pre_norm = pre_norm

        self.proj_a = MLP(self.input_a_dim, self.hidden_dim*2, self.hidden_dim, num_layers=2)
        self.proj_v = MLP(self.input_v_2d_dim, self.hidden_dim*2, self.hidden_dim, num_layers=2)

        self.a_transformer = TranformerEncoder(self.hidden_dim, self.nhead, dim_feedforward=self.ff_dim,
                                                dropout=self.dropout, num_layers=self.num_layers)
        self.v_transformer = TranformerEncoder(self.hidden_dim, self.nhead, dim_feedforward=self.ff_dim,
                                                dropout=self.dropout, num_layers=self.num_layers)

        self.clap_event_feats = clap_event_feats    # L2 normalized
        self.clip_event_feats = clip_event_feats    # L2 normalized
        self.register_buffer('a_logit_scale', torch.tensor(3.2912, dtype=torch.float32))
        self.register_buffer('v_logit_scale', torch.tensor(4.6052, dtype=torch.float32))

        self.final_proj_a = MLP(self.hidden_dim, 512, 512, num_layers=2)
        self.final_proj_v = MLP(self.hidden_dim, 768, 768, num_layers=2)

    def forward(self, clap_feat, clip_feat, valid_mask=None, attn_mask=None, src_key_padding_mask=None):

        a_feat = self.proj_a(clap_feat)
        v_feat = self.proj_v(clip_feat)

        a_feat = rearrange(a_feat, 'b t d -> t b d')
        v_feat = rearrange(v_feat, 'b t d -> t b d')
        if attn_mask is not None:
            attn_mask = ~attn_mask  # change values of pad position from False to True
            attn_mask = attn_mask.to(torch.int32).to(torch.float32) * (-1e10)   # not using bool mask to avoid nan
            attn_mask = repeat(attn_mask, 'b l s -> (b h) l s', h=self.nhead)
        a_feat = self.a_transformer(a_feat, mask=attn_mask, src_key_padding_mask=src_key_padding_mask)
        v_feat = self.v_transformer(v_feat, mask=attn_mask, src_key_padding_mask=src_key_padding_mask)

        a_feat = rearrange(a_feat, 't b d -> b t d')
        v_feat = rearrange(v_feat, 't b d -> b t d')


        a_feat = self.final_proj_a(a_feat)
        v_feat = self.final_proj_v(v_feat)
        a_logit = torch.matmul(a_feat, self.clap_event_feats.transpose(0, 1)) * self.a_logit_scale
        v_logit = torch.matmul(v_feat, self.clip_event_feats.transpose(0, 1)) * self.v_logit_scale

        return a_logit, v_logit

    def calculate_loss(self, args, outputs, labels, valid_masks, logits=None, thresholds=None):

        a_logits, v_logits = outputs
        B, T, C = a_logits.shape

        gt_av_labels = labels   # (B, T, C)

        loss_video = torch.tensor(0.0, device=a_logits.device, dtype=torch.float32)

        av_probs = a_logits.sigmoid() * v_logits.sigmoid()    # (B, T, C)
        loss_av = F.binary_cross_entropy(av_probs, gt_av_labels, reduction='none')  # (B, T, C)
        class_weight = torch.where(gt_av_labels.sum(dim=1, keepdim=True) > 0, args.pos_weight, args.neg_weight)
        loss_av = loss_av * class_weight
        loss_av = loss_av * valid_masks.unsqueeze(dim=-1)
        loss_av = loss_av.sum() / (valid_masks.sum() * C)

        loss = loss_video + loss_av

        loss_dict = {
            'loss_video': loss_video.item(),
            'loss_av': loss_av.item(),
            'loss_all': loss.item()
        }
        return loss, loss_dict


# ----------------------------------------------------------------------------- utils/eval_utils.py @ eb81492
# (device stays the CPU)


@torch.no_grad()
def calculate_classwise_thresholds(args, model, data_loader, device):

    assert args.dataset != 'UnAV', 'DON\'t calculate classwise thresholds for the UnAV dataset!'

    model.eval()

    categories = data_loader.dataset.categories

    total_a_logits, total_v_logits = [], []
    total_a_GT, total_v_GT, total_av_GT = [], [], []

    for batch_idx, batch_data in enumerate(data_loader):
        clip_feats, clap_feats = batch_data['clip_feat'].to(device), batch_data['clap_feat'].to(device)
        valid_masks = batch_data['valid_mask'].to(device)
        attn_masks = batch_data['attn_mask'].to(device)
        weak_labels = batch_data['weak_label'].float().to(device)
        duration = batch_data['duration'][0].item()
        batch_size, T = clip_feats.size()[:2]


        outputs = model(clap_feats, clip_feats, valid_mask=valid_masks, attn_mask=attn_masks)
        a_logits, v_logits = outputs
        a_logits = a_logits.squeeze(0).permute(1, 0)  # (C, T)
        v_logits = v_logits.squeeze(0).permute(1, 0)  # (C, T)
        C, T = a_logits.shape

        weak_labels = repeat(weak_labels.squeeze(0), 'c -> c t', t=T).to(torch.float32)[:C, ]
        a_logits = torch.where(weak_labels == 1, a_logits, float('-inf'))
        v_logits = torch.where(weak_labels == 1, v_logits, float('-inf'))

        # remove padded tokens
        a_logits = a_logits[:, :duration]
        v_logits = v_logits[:, :duration]
        total_a_logits.append(a_logits)
        total_v_logits.append(v_logits)

        GT_a = batch_data['gt_a_label'].to(device).float().squeeze(0).permute(1, 0)  # (C, T)
        GT_v = batch_data['gt_v_label'].to(device).float().squeeze(0).permute(1, 0)  # (C, T)
        total_a_GT.append(GT_a)
        total_v_GT.append(GT_v)
        total_av_GT.append(torch.zeros_like(GT_a))

    total_a_logits = torch.cat(total_a_logits, dim=1)
    total_v_logits = torch.cat(total_v_logits, dim=1)
    total_a_GT = torch.cat(total_a_GT, dim=1)
    total_v_GT = torch.cat(total_v_GT, dim=1)
    total_av_GT = torch.cat(total_av_GT, dim=1)


    '''
    Calculate the best audio and visual thresholds
    Note: Calculation for the LLP dataset is different from that for the AVE dataset.
        - For LLP, the thresholds are calculated deterministically.
        - For AVE, the thresholds are calculated by grid search.
    '''
    if args.threshold_type == 'classwise':
        best_a_thresholds = torch.zeros(len(categories), device=device)
        best_v_thresholds = torch.zeros(len(categories), device=device)
        for class_idx in range(len(categories)):
            a_thres, a_f_score = get_best_f_threshold(total_a_GT[class_idx], total_a_logits[class_idx])
            v_thres, v_f_score = get_best_f_threshold(total_v_GT[class_idx], total_v_logits[class_idx])
            best_a_thresholds[class_idx] = a_thres
            best_v_thresholds[class_idx] = v_thres

    elif args.threshold_type == 'class_agnostic':
        best_a_thresholds, a_f_score = get_best_f_threshold(total_a_GT.ravel(), total_a_logits.ravel())
        best_v_thresholds, v_f_score = get_best_f_threshold(total_v_GT.ravel(), total_v_logits.ravel())

    return best_a_thresholds, best_v_thresholds


def get_best_f_threshold(labels, preds):
    # sort by predicted probabilities
    sort_idx = torch.argsort(preds)
    labels = labels[sort_idx]
    preds = preds[sort_idx]

    # compute intermediate statistics when threshold falls below each probability
    num_tps = torch.cumsum(labels.flip(0), dim=0).flip(0)
    total_true = num_tps[0].item()
    total_pred = len(preds) - torch.arange(len(preds), dtype=torch.float32, device=preds.device)

    # compute f1 scores for each threshold
    p = num_tps / total_pred
    r = num_tps / total_true
    f = 2 * p * r / torch.clamp(p + r, min=1e-12)

    # find best threshold
    thresholds = (preds + torch.cat((torch.tensor([-float('inf')], device=preds.device), preds[:-1]))) / 2
    best_idx = torch.argmax(f).item()

    return thresholds[best_idx], f[best_idx].item()


# ----------------------------------------------------------------------------- main_pretrain.py @ eb81492
# eval(): its pseudo-label part for LLP with --label_filtering --save_labels --save_logits (the AVVP
# evaluation left out); the arrays it saves per video are returned instead of written.


@torch.no_grad()
def eval_saved_arrays(args, model, data_loader, device):

    model.eval()

    if isinstance(args.a_thres, np.ndarray):
        args.a_thres = torch.from_numpy(args.a_thres).to(device)
    if isinstance(args.v_thres, np.ndarray):
        args.v_thres = torch.from_numpy(args.v_thres).to(device)

    saved = {}
    for batch_idx, batch_data in enumerate(data_loader):
        video_name = batch_data['video_name'][0]
        clip_feats, clap_feats = batch_data['clip_feat'].to(device), batch_data['clap_feat'].to(device)
        valid_masks = batch_data['valid_mask'].to(device)
        attn_masks = batch_data['attn_mask'].to(device)
        weak_labels = batch_data['weak_label'].float().to(device)
        duration = batch_data['duration'][0].item()
        batch_size, T = clip_feats.size()[:2]


        outputs = model(clap_feats, clip_feats, valid_mask=valid_masks, attn_mask=attn_masks)

        a_logits, v_logits = outputs
        a_logits, v_logits = a_logits.squeeze(0), v_logits.squeeze(0)   # (T, C)
        a_probs, v_probs = a_logits.sigmoid(), v_logits.sigmoid()       # (T, C)
        av_probs = a_probs * v_probs

        pred_a = (a_logits > args.a_thres)   # (T, C)
        pred_v = (v_logits > args.v_thres)   # (T, C)
        pred_av = torch.logical_and(pred_a, pred_v).to(torch.float32)


        if args.label_filtering:
            T, C = pred_a.shape
            weak_labels = repeat(weak_labels.squeeze(0), 'c -> t c', t=T).to(torch.float32)[:, :C]  # remove background
            pred_a = torch.logical_and(pred_a, weak_labels).to(torch.float32)
            pred_v = torch.logical_and(pred_v, weak_labels).to(torch.float32)
            pred_av = torch.logical_and(pred_av, weak_labels).to(torch.float32)


        # remove padded tokens
        pred_a = pred_a.permute(1, 0).cpu().detach().numpy()    # ndarray, (C, T)
        pred_a = pred_a[:, :duration]     # remove the padded segments (frames)
        pred_v = pred_v.permute(1, 0).cpu().detach().numpy()    # ndarray, (C, T)
        pred_v = pred_v[:, :duration]     # remove the padded segments (frames)

        saved[video_name] = {'a_label': np.transpose(pred_a), 'v_label': np.transpose(pred_v),   # (T, C)
                             'a_logit': a_logits.squeeze(0).cpu().detach().numpy(),              # (T, C)
                             'v_logit': v_logits.squeeze(0).cpu().detach().numpy()}
    return saved


# ----------------------------------------------------------------------------- dataloader.py @ eb81492
# UnAV_dataset: the constructor's label part, _load_json_db, get_all_labels, get_gt_label.

UNAV_CATEGORIES = [f'class {i}' for i in range(100)]  # categories.py's 100 names; only their count is used


class UnAV_dataset:
    def __init__(self, mode, data_json):

        self.mode = mode if mode != 'val' else 'validation'
        self.max_quantized_duration = 0     # max quantized duration of a video

        self.json_file = data_json
        self.data_list, _ = self._load_json_db(data_json)

        self.categories = UNAV_CATEGORIES
        self.num_classes = len(self.categories)
        self.id_to_idx = {id: index for index, id in enumerate(UNAV_CATEGORIES)}

        attn_mask_dict, mask_dict, gt_label_dict = self.get_all_labels()
        self.gt_label_dict = gt_label_dict

    def _load_json_db(self, json_file):

        with open(json_file, 'r') as fid:
            json_data = json.load(fid)
        json_db = json_data['database']

        # get label_dict
        label_dict = {}
        for key, value in json_db.items():
            for act in value['annotations']:
                label_dict[act['label']] = act['label_id']

        # get max quantized video duration
        for video_id, value in json_db.items():
            if value['subset'].lower() not in self.mode:
                continue

        dict_db = tuple()
        for video_id, value in json_db.items():
            if value['subset'].lower() not in self.mode:
                continue

            # get quantized video duration if available
            if int(value['duration']) == value['duration']:
                duration = int(value['duration'])
            else:
                duration = int(value['duration']) + 1
            self.max_quantized_duration = max(self.max_quantized_duration, duration)

            # get quantized annotations if available
            if ('annotations' in value) and (len(value['annotations']) > 0):
                annot = value['annotations']
            else:
                annot = None

            dict_db += ({'id': video_id,
                         'quantized duration' : duration,
                         'annot' : annot
                        }, )

        return dict_db, label_dict

    def get_all_labels(self):
        attn_mask_dict = {}
        mask_dict = {}
        gt_label_dict = {}

        for i in range(len(self.data_list)):
            video_item = self.data_list[i]

            valid_mask = torch.zeros(self.max_quantized_duration, dtype=torch.float32)
            valid_mask[:video_item['quantized duration']] = 1

            attn_mask = torch.zeros(self.max_quantized_duration, self.max_quantized_duration, dtype=torch.bool)
            attn_mask[:video_item['quantized duration'], :video_item['quantized duration']] = True

            gt_label = self.get_gt_label(video_item['annot'])

            attn_mask_dict[video_item['id']] = attn_mask
            mask_dict[video_item['id']] = valid_mask
            gt_label_dict[video_item['id']] = gt_label

        return attn_mask_dict, mask_dict, gt_label_dict

    def get_gt_label(self, gt_annots):

        GT = np.zeros((len(self.categories), self.max_quantized_duration))

        for idx, act in enumerate(gt_annots):
            start, end = act['segment']

            # find the shortest integer span that includes the original time span
            new_start = int(start)
            new_end = int(end) if (int(end) == end) else int(end) + 1
            assert new_start >= 0, f'start time = {new_start} is less than 0'
            assert new_end <= self.max_quantized_duration, f'end time = {new_end} is larger than {self.max_quantized_duration} (max duration)'

            label_id = act['label_id']
            GT[label_id, new_start:new_end] = 1

        return torch.from_numpy(GT).long().permute(1, 0)


# ----------------------------------------------------------------------------- helpers

AUDIO_DIM, VISUAL_DIM = 512, 768  # LLP's CLAP and CLIP segment embeddings (pseudo_label_generation.sh)
SMALL = {"hidden_dim": 32, "nhead": 4, "ff_dim": 48, "num_layers": 2}  # the released class's own arguments
N_CLASSES = 6


def text_embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised random CLAP (C, 512) and CLIP (C, 768) class embeddings."""
    g = torch.Generator().manual_seed(seed)
    return tuple(F.normalize(torch.randn(N_CLASSES, d, generator=g), dim=-1) for d in (512, 768))


def released_generator(seed: int = 0, **dims: int) -> TemporalTransformer:
    """The released generator (main_pretrain.py's build_model) with random weights; its biases and
    LayerNorm parameters are perturbed too, so that none is at its trivial initial value."""
    torch.manual_seed(seed)
    clap_text, clip_text = text_embeddings(seed)
    model = TemporalTransformer(input_v_2d_dim=VISUAL_DIM, input_v_3d_dim=1024, input_a_dim=AUDIO_DIM,
                                **{**SMALL, **dims}, dropout=0.3, clap_event_feats=clap_text,
                                clip_event_feats=clip_text)
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def avvp_generator(released: TemporalTransformer) -> UWAVGenerator:
    """avvp's generator with the released one's state dict, loaded strictly."""
    model = UWAVGenerator(released.clap_event_feats, released.clip_event_feats, audio_dim=AUDIO_DIM,
                          visual_dim=VISUAL_DIM, hidden=released.hidden_dim, heads=released.nhead,
                          ff=released.ff_dim, layers=released.num_layers, dropout=released.dropout)
    model.load_state_dict(released.state_dict(), strict=True)
    return model.eval()


class Loader(list):
    """A list of batches with the `dataset.categories` the released loops read."""

    def __init__(self, batches: list[dict], n_classes: int) -> None:
        super().__init__(batches)
        self.dataset = SimpleNamespace(categories=[f"class {i}" for i in range(n_classes)])


def llp_batches(audio: np.ndarray, visual: np.ndarray, video_labels: np.ndarray, truth_a: np.ndarray | None = None,
                truth_v: np.ndarray | None = None) -> Loader:
    """Batches of one video each as the released LLP_dataset and DataLoader (batch 1) give them."""
    n, t, c = len(audio), audio.shape[1], video_labels.shape[1]
    truth_a = np.zeros((n, t, c)) if truth_a is None else truth_a
    truth_v = np.zeros((n, t, c)) if truth_v is None else truth_v
    batches = [{"video_name": [f"video{i}"], "clap_feat": torch.from_numpy(audio[i:i + 1]),
                "clip_feat": torch.from_numpy(visual[i:i + 1]), "valid_mask": torch.ones(1, t),
                "attn_mask": torch.ones(1, t, t, dtype=torch.bool), "weak_label": torch.from_numpy(video_labels[i:i + 1]),
                "duration": torch.tensor([t]), "gt_a_label": torch.from_numpy(truth_a[i:i + 1]),
                "gt_v_label": torch.from_numpy(truth_v[i:i + 1])} for i in range(n)]
    return Loader(batches, c)


class Identity(nn.Module):
    """A stand-in generator whose logits are its inputs: both implementations see the same logits."""

    def forward(self, clap_feat, clip_feat, valid_mask=None, attn_mask=None):
        return clap_feat, clip_feat


def random_split(seed: int, n: int = 7, t: int = 10, dims: tuple[int, int] = (AUDIO_DIM, VISUAL_DIM)):
    """Segment embeddings (N, T, d) per modality and video labels (N, C), each video with 1-3 classes."""
    rng = np.random.default_rng(seed)
    audio, visual = (rng.standard_normal((n, t, d)).astype(np.float32) for d in dims)
    labels = np.zeros((n, N_CLASSES), np.float32)
    for row in labels:
        row[rng.choice(N_CLASSES, size=rng.integers(1, 4), replace=False)] = 1
    return audio, visual, labels


def released_pass(model: nn.Module, val: Loader, train: Loader) -> tuple[dict, np.ndarray, np.ndarray]:
    """main_pretrain.py's pseudo_label_generation mode for LLP: class-wise thresholds on the validation
    split, then eval over the training split saving labels and logits."""
    args = SimpleNamespace(dataset="LLP", threshold_type="classwise", label_filtering=True)
    a_thres, v_thres = calculate_classwise_thresholds(args, model, val, torch.device("cpu"))
    args.a_thres, args.v_thres = a_thres, v_thres
    return eval_saved_arrays(args, model, train, torch.device("cpu")), a_thres.numpy(), v_thres.numpy()


# ----------------------------------------------------------------------------- generator


def test_generator_logits_equal_the_released_forward() -> None:
    """Eval mode, every segment real and with videos of 10, 6 and 3 segments padded as the released
    UnAV loader pads them: audio and visual logits equal, padded segments included."""
    released = released_generator()
    ours = avvp_generator(released)
    torch.manual_seed(1)
    audio, visual = torch.randn(3, 10, AUDIO_DIM), torch.randn(3, 10, VISUAL_DIM)
    lengths = torch.tensor([10, 6, 3])
    valid = torch.arange(10)[None, :] < lengths[:, None]
    attn_mask = valid[:, :, None] & valid[:, None, :]  # get_all_labels' mask
    with torch.no_grad():
        for ours_in, released_in in ((None, None), (valid, attn_mask)):
            expected = released(audio, visual, valid_mask=valid.float(), attn_mask=released_in)
            got = ours(audio, visual, ours_in)
            for g, e in zip(got, expected):
                assert g.shape == (3, 10, N_CLASSES)
                torch.testing.assert_close(g, e, rtol=0, atol=1e-5)
            assert expected[0].abs().max() > 0.1  # not a degenerate comparison


def test_released_state_dict_loads_as_it_is_with_the_released_recipes_sizes() -> None:
    """The released generator built with the script's sizes (hidden 1024, 16 heads, ff 2048, 5 layers):
    its state dict, logit scales included, is exactly avvp's default generator's, keys and shapes;
    `from_released` reads the sizes off the weights; logits agree."""
    released = released_generator(hidden_dim=1024, nhead=16, ff_dim=2048, num_layers=5)
    state = released.state_dict()
    ours = UWAVGenerator(released.clap_event_feats, released.clip_event_feats)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert {"a_logit_scale", "v_logit_scale", "proj_a.layers.1.weight", "final_proj_v.layers.1.bias",
            "a_transformer.encoder.layers.4.self_attn.in_proj_weight",
            "v_transformer.encoder.layers.4.norm2.bias"} <= set(state)
    assert len(state) == 2 + 2 * (4 + 4 + 5 * 12)
    assert ours.a_logit_scale.item() == state["a_logit_scale"].item() == pytest.approx(3.2912)
    assert ours.v_logit_scale.item() == state["v_logit_scale"].item() == pytest.approx(4.6052)
    loaded = UWAVGenerator.from_released(state, released.clap_event_feats, released.clip_event_feats).eval()
    audio, visual = torch.randn(1, 10, AUDIO_DIM), torch.randn(1, 10, VISUAL_DIM)
    with torch.no_grad():
        for g, e in zip(loaded(audio, visual), released(audio, visual)):
            torch.testing.assert_close(g, e, rtol=0, atol=1e-5)


def test_segment_logits_of_a_split_equal_the_released_per_video_forward() -> None:
    """Batched (3 videos a batch) under inference mode, from a model left in training mode: equal to the
    released loop's one video at a time, eval mode, attention mask all True."""
    released = released_generator()
    ours = avvp_generator(released).train()
    audio, visual, labels = random_split(2)
    got = segment_logits(ours, audio, visual, torch.device("cpu"), batch_size=3)
    with torch.no_grad():
        expected = [released(b["clap_feat"], b["clip_feat"], attn_mask=b["attn_mask"])
                    for b in llp_batches(audio, visual, labels)]
    for modality in (0, 1):
        np.testing.assert_allclose(got[modality], np.concatenate([e[modality].numpy() for e in expected]),
                                   rtol=0, atol=1e-5)
        assert got[modality].dtype == np.float32 and got[modality].shape == (7, 10, N_CLASSES)


# ----------------------------------------------------------------------------- labels pass


def tied_logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Logits on a coarse grid, so that many are tied (the released tie order is argsort's)."""
    return (np.round(rng.standard_normal(shape) * 4) / 2).astype(np.float32)


def test_classwise_thresholds_and_hard_labels_equal_the_released_on_the_same_logits() -> None:
    """With the same logits on both sides (a stand-in model), thresholds and masked hard labels are
    exactly the released ones: ties, a class with no positive segment in the validation truth (its
    threshold -inf), and truth outside a video's labels included; saved logits are unmasked."""
    rng = np.random.default_rng(3)
    _, _, val_labels = random_split(4, n=9)
    val_a, val_v = tied_logits(rng, (9, 10, N_CLASSES)), tied_logits(rng, (9, 10, N_CLASSES))
    # truth that follows the logits loosely, so that the best thresholds are finite
    truth_a = (val_a + rng.standard_normal(val_a.shape) > 1) * val_labels[:, None, :]
    truth_v = (val_v + rng.standard_normal(val_v.shape) > 1) * val_labels[:, None, :]
    truth_v[np.nonzero(val_labels == 0)[0][:4], 0, np.nonzero(val_labels == 0)[1][:4]] = 1  # outside the labels
    truth_a[..., 2] = 0  # audio class 2: never positive
    _, _, train_labels = random_split(5, n=5)
    train_a, train_v = tied_logits(rng, (5, 10, N_CLASSES)), tied_logits(rng, (5, 10, N_CLASSES))

    saved, a_thres, v_thres = released_pass(Identity(), llp_batches(val_a, val_v, val_labels, truth_a, truth_v),
                                            llp_batches(train_a, train_v, train_labels))
    for modality, logits, truth, thresholds in (("a", train_a, truth_a, a_thres), ("v", train_v, truth_v, v_thres)):
        ours = modality_labels(logits, train_labels, val_a if modality == "a" else val_v, truth, val_labels)
        np.testing.assert_array_equal(ours.thresholds, thresholds)
        assert ours.thresholds.dtype == thresholds.dtype == np.float32
        for i in range(5):
            np.testing.assert_array_equal(ours.labels[i], saved[f"video{i}"][f"{modality}_label"])
            np.testing.assert_array_equal(ours.logits[i], saved[f"video{i}"][f"{modality}_logit"])
        assert 0 < ours.labels.sum() < (ours.labels.shape[1] * train_labels).sum()  # some kept, some dropped
    assert a_thres[2] == -math.inf and np.isfinite(a_thres).sum() >= 3 and np.isfinite(v_thres).sum() >= 3


def test_labels_pass_equals_the_released_pseudo_label_generation() -> None:
    """The generator end to end: segment logits of the validation and training splits, class-wise
    thresholds, hard labels, as main_pretrain.py's pseudo_label_generation mode gives them."""
    released = released_generator(seed=4)
    ours = avvp_generator(released)
    val_audio, val_visual, val_labels = random_split(6, n=8)
    train_audio, train_visual, train_labels = random_split(7, n=5)
    rng = np.random.default_rng(8)
    truth_a, truth_v = ((rng.random((8, 10, N_CLASSES)) < 0.5) * val_labels[:, None, :] for _ in range(2))

    saved, a_thres, v_thres = released_pass(released, llp_batches(val_audio, val_visual, val_labels, truth_a, truth_v),
                                            llp_batches(train_audio, train_visual, train_labels))
    cpu = torch.device("cpu")
    val_logits = segment_logits(ours, val_audio, val_visual, cpu, batch_size=1)
    train_logits = segment_logits(ours, train_audio, train_visual, cpu, batch_size=1)
    for m, modality, truth, thresholds in ((0, "a", truth_a, a_thres), (1, "v", truth_v, v_thres)):
        got = modality_labels(train_logits[m], train_labels, val_logits[m], truth, val_labels)
        np.testing.assert_array_equal(got.thresholds, thresholds)
        np.testing.assert_array_equal(got.labels, np.stack([saved[f"video{i}"][f"{modality}_label"] for i in range(5)]))
        np.testing.assert_allclose(got.logits, np.stack([saved[f"video{i}"][f"{modality}_logit"] for i in range(5)]),
                                   rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- pretraining


def test_pretraining_loss_and_its_gradient_equal_the_released() -> None:
    """A padded batch (10, 7 and 4 valid segments; classes absent from a video, and a class present only
    in some segments): calculate_loss with main_pretrain.py's defaults (pos_weight 5, neg_weight 1)."""
    g = torch.Generator().manual_seed(9)
    shape = (3, 10, N_CLASSES)
    a_logits, v_logits = (3 * torch.randn(shape, generator=g) for _ in range(2))
    valid = (torch.arange(10)[None, :] < torch.tensor([10, 7, 4])[:, None]).float()
    labels = ((torch.rand(shape, generator=g) < 0.3) * valid[..., None]).float()
    labels[:, :, 0] = 0  # a class absent from every video
    args = SimpleNamespace(pos_weight=5, neg_weight=1)
    grads = []
    for loss_of in (lambda a, v: TemporalTransformer.calculate_loss(None, args, (a, v), labels, valid)[0],
                    lambda a, v: pretraining_loss(a, v, labels, valid)):
        a, v = a_logits.clone().requires_grad_(), v_logits.clone().requires_grad_()
        loss = loss_of(a, v)
        loss.backward()
        grads.append((loss.detach(), a.grad, v.grad))
    (expected, *expected_grads), (got, *got_grads) = grads
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    for g_, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g_, e, rtol=0, atol=1e-6)
    assert expected_grads[0][2, 4:].abs().max() == 0  # padded segments get no gradient
    assert pretraining_loss(a_logits, v_logits, labels, valid.bool()) == got  # a bool mask works the same


def test_pretraining_schedule_equals_the_released_per_epoch() -> None:
    """AdamW and WarmUpCosineAnnealingLR as main_pretrain.py builds them from train_transformer.sh's
    arguments: the same rate in every one of the 80 epochs (set once per epoch: 1e-5 in epoch 1, 1e-4
    in epoch 10, 1e-5 in epoch 80), the same optimiser settings."""
    args = SimpleNamespace(lr=1e-4, lr_min=1e-5, weight_decay=1e-3, beta1=0.5, beta2=0.999, eps=1e-8,
                           warm_up_epoch=10, epochs=80)
    recipe = PretrainingRecipe()
    released = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=args.lr, weight_decay=args.weight_decay,
                                 betas=(args.beta1, args.beta2), eps=args.eps)
    released_scheduler = WarmUpCosineAnnealingLR(released, args.warm_up_epoch, args.epochs, args.lr_min, args.lr)
    ours = recipe.optimizer([nn.Parameter(torch.zeros(1))])
    scheduler = recipe.scheduler(ours)
    rates = {"released": [], "ours": []}
    for epoch in range(1, args.epochs + 1):
        for name, optimizer, sched in (("released", released, released_scheduler), ("ours", ours, scheduler)):
            rates[name].append(optimizer.param_groups[0]["lr"])  # main_pretrain.py's cur_lr
            optimizer.step()
            sched.step()
    assert rates["ours"] == rates["released"]
    assert [rates["ours"][e - 1] for e in (1, 10, 80)] == pytest.approx([1e-5, 1e-4, 1e-5], rel=1e-12)
    assert [recipe.rate(e) for e in range(1, 81)] == rates["released"]
    mine, theirs = ours.param_groups[0], released.param_groups[0]
    assert {k: mine[k] for k in ("betas", "eps", "weight_decay")} == {k: theirs[k] for k in ("betas", "eps", "weight_decay")}
    assert recipe.epochs == args.epochs and recipe.grad_norm == 2.0 and recipe.batch_size == 64


# ----------------------------------------------------------------------------- UnAV-100 annotations


def unav_file(path: Path, database: dict) -> Path:
    path.write_text(json.dumps({"version": "UnAV-100", "database": database}), encoding="utf-8")
    return path


def event(start: float, end: float, label_id: int) -> dict:
    return {"segment": [start, end], "label": f"class {label_id}", "label_id": label_id}


UNAV_DATABASE = {
    "vidA": {"subset": "train", "duration": 10.0, "annotations": [event(0.0, 3.2, 5), event(2.5, 10.0, 5),
                                                                  event(4.0, 6.0, 99)]},
    "vidB": {"subset": "train", "duration": 12.3, "annotations": [event(0.4, 0.6, 0), event(11.7, 12.3, 42)]},
    "vidC": {"subset": "Train", "duration": 7.5, "annotations": [event(6.9, 8.2, 7)]},  # past its end
    "vidD": {"subset": "validation", "duration": 20, "annotations": [event(0, 20, 3), event(19.99, 20, 4)]},
    "vidE": {"subset": "validation", "duration": 3.01, "annotations": [event(1, 2, 3)]},
    "vidF": {"subset": "test", "duration": 5.0, "annotations": [event(0.0, 5.0, 1)]},
}


@pytest.mark.parametrize("subset, mode", [("train", "train"), ("validation", "val"), ("test", "test")])
def test_unav_labels_equal_the_released_loaders(tmp_path: Path, subset: str, mode: str) -> None:
    """Durations rounded up, spans rounded out, class = label_id, subsets case-insensitive, an event past
    the video's end cut there: each video's labels are the released loader's, less the padding."""
    path = unav_file(tmp_path / "unav100_annotations.json", UNAV_DATABASE)
    got = read_unav_labels(path, subset)
    released = UnAV_dataset(mode, str(path))
    assert list(got) == [item["id"] for item in released.data_list]
    for item in released.data_list:
        labels = got[item["id"]]
        assert labels.dtype == bool and labels.shape == (item["quantized duration"], 100)
        np.testing.assert_array_equal(labels, released.gt_label_dict[item["id"]][:item["quantized duration"]].numpy())
    if subset == "train":
        assert got["vidB"].shape[0] == 13 and got["vidB"][0, 0] and got["vidB"][11:, 42].all()
        assert got["vidC"][6:, 7].all() and got["vidC"].shape[0] == 8


@pytest.mark.parametrize("video, message", [
    ({"subset": "train", "duration": "10", "annotations": [event(0, 1, 0)]}, "'duration' must be a finite number"),
    ({"subset": "train", "duration": 0, "annotations": [event(0, 1, 0)]}, "'duration' must be positive"),
    ({"subset": "train", "duration": 10, "annotations": []}, "non-empty 'annotations'"),
    ({"subset": "train", "duration": 10}, "non-empty 'annotations'"),
    ({"subset": "train", "duration": 10, "annotations": [event(-1, 1, 0)]}, r"annotation 0: segment .* 0 <= start"),
    ({"subset": "train", "duration": 10, "annotations": [event(0, 1, 0), event(5, 4, 0)]},
     r"annotation 1: segment .* start <= end"),
    ({"subset": "train", "duration": 10, "annotations": [event(0, 1, 100)]}, "'label_id' must be an integer 0-99"),
    ({"subset": "train", "duration": 10, "annotations": [{"segment": [0, 1], "label_id": 1.0}]}, "'label_id'"),
    ({"subset": "train", "duration": 10, "annotations": [{"segment": [0], "label_id": 1}]}, "'segment': \\[start, end\\]"),
    ({"subset": "train", "duration": 10, "annotations": [{**event(0, 1, 3), "label": "dog"}]},
     "label_id 3 is 'dog' here and 'class 3' elsewhere"),
    ({"duration": 10, "annotations": [event(0, 1, 0)]}, "'subset' string"),
])
def test_unav_reader_errors_name_the_file_and_the_video(tmp_path: Path, video: dict, message: str) -> None:
    path = unav_file(tmp_path / "unav.json", {"good": {"subset": "train", "duration": 4, "annotations": [event(0, 1, 3)]},
                                              "bad_video": video})
    with pytest.raises(ValueError, match=message) as err:
        read_unav_labels(path, "train")
    assert str(path) in str(err.value) and "'bad_video'" in str(err.value)


def test_unav_reader_refuses_a_file_without_a_database_and_an_unknown_subset(tmp_path: Path) -> None:
    path = tmp_path / "unav.json"
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{path}: not a readable UnAV annotation file"):
        read_unav_labels(path, "train")
    with pytest.raises(ValueError, match="subset must be one of"):
        read_unav_labels(unav_file(path, UNAV_DATABASE), "val")
