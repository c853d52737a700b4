"""CoLeaF's training loss (its main.py `train`): CMPAE's, plus two single-modality branches that
learn beside the main network and teach it.

Every batch, after JoMoLD's drops: each branch takes one Adam step on an asymmetric loss against the
denoised labels (from epoch 4 on, half against the main network's confident labels instead); then
the main network's loss adds, from epoch 2 on, (1) a correlation-consistency term pulling its class
co-occurrence matrix towards the branches' where a branch is sure (>= 0.8 or <= 0.1 audio, >= 0.6
or <= 0.4 visual) and (2) segment-matching terms between each branch's features and the main
stream of its modality, weighted per video by how many of its classes the branches find in that
modality only. The branches' parameters, optimisers and learning rates are part of the objective's
state (saved in last.pt, so training resumes exactly); the kept model is the main network.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from avvp.methods.contrastive import contrastive_loss
from avvp.methods.evidential import CmpaeObjective, mutual_learning_loss
from avvp.methods.objectives import EPS, Batch, bce, describe, visual_target
from avvp.model.coleaf import ModalityBranch
from avvp.model.cmpae import CMPAENet
from avvp.base.protocol import MODALITIES


def asymmetric_loss(prob: Tensor, target: Tensor, clip: float = 0.05, eps: float = 1e-8) -> Tensor:
    """The sum over entries of the asymmetric loss with both focusing exponents 1: the negative side
    shifted by `clip`, each entry weighted (without gradient) by one minus its likelihood."""
    negative = (1 - prob + clip).clamp(max=1)
    log_likelihood = target * torch.log(prob.clamp(min=eps)) + (1 - target) * torch.log(negative.clamp(min=eps))
    with torch.no_grad():
        weight = 1 - (prob * target + negative * (1 - target))
    return -(log_likelihood * weight).sum()


def co_occurrence_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """sum((T T^T - S S^T)^2) / classes x batch over each video's class-by-class products (cc_loss, mode 1)."""
    batch, classes = teacher.shape
    def outer(p: Tensor) -> Tensor:
        return p.unsqueeze(2) @ p.unsqueeze(1)
    return ((outer(teacher) - outer(student)) ** 2).sum() / classes * batch


def exclusive_share(audio_present: Tensor, visual_present: Tensor) -> tuple[Tensor, Tensor]:
    """Per video, (audio-only classes / classes heard, visual-only classes / classes seen), 0/0 = 0."""
    both = (audio_present & visual_present).sum(dim=1)
    audio_only = (audio_present & ~visual_present).sum(dim=1)
    visual_only = (visual_present & ~audio_present).sum(dim=1)
    return audio_only / (audio_only + both).clamp(min=1), visual_only / (visual_only + both).clamp(min=1)


@dataclass(frozen=True, eq=False)
class CoLeaFObjective(CmpaeObjective):
    """CoLeaF's loss on its main network (`CoLeaFNet`). `lr`, `step_size` and `gamma` are the
    branches' schedule (the same as the main network's in the released code)."""

    visual_weight: float = 1.0
    video_weight: float = 2.0
    lr: float = 5e-4
    step_size: int = 6
    gamma: float = 0.25
    branch_warmup_epochs: int = 3  # second_warm_up_epoch
    audio_sure: tuple[float, float] = (0.8, 0.1)
    visual_sure: tuple[float, float] = (0.6, 0.4)
    pseudo_threshold: tuple[float, float] = (0.5, 0.6)  # the main network's labels for the branches
    teacher_weights: tuple[float, float, float, float] = (1e-4, 1e-4, 0.009, 1.0)  # cc_a, cc_v, nce_a, nce_v

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", {})  # modality -> (branch, optimiser), made on the first batch

    def _branches(self, model: CMPAENet) -> dict[str, tuple[ModalityBranch, torch.optim.Adam]]:
        if not self.branches:
            device = next(model.parameters()).device
            for modality in MODALITIES:
                kinds = [k for k in model.kinds if k.modality == modality]
                branch = ModalityBranch(modality, kinds, model.n_classes,
                                        layers=len(model.hat_encoder.layers)).to(device)
                self.branches[modality] = (branch, torch.optim.Adam(branch.parameters(), lr=self.lr))
        return self.branches

    def _branch_inputs(self, model: CMPAENet, batch: Batch, modality: str) -> list[Tensor]:
        return [x for kind, x in zip(model.kinds, batch.inputs) if kind.modality == modality]

    def __call__(self, model: CMPAENet, batch: Batch) -> Tensor:
        drop_a, drop_v = self.drops(model, batch)
        targets = {"audio": batch.labels.masked_fill(drop_a, 0.0),
                   "visual": visual_target(batch.labels, self.smoothing).masked_fill(drop_v, 0.0)}
        with torch.no_grad():
            _, a_prob, v_prob, _ = model.classify(model.encode(*batch.inputs))
        pseudo = {m: (p >= t).float() * targets[m]
                  for m, p, t in zip(MODALITIES, (a_prob, v_prob), self.pseudo_threshold)}
        branches = self._branches(model)
        lr = self.lr * self.gamma ** ((batch.epoch - 1) // self.step_size)
        for modality, (branch, optimizer) in branches.items():
            self._branch_step(branch, optimizer, lr, self._branch_inputs(model, batch, modality), targets[modality],
                              pseudo[modality], batch.epoch)
        with torch.no_grad():
            taught = {m: branch(*self._branch_inputs(model, batch, m)) for m, (branch, _) in branches.items()}

        streams = model.encode(*batch.inputs)
        out = model.evidence(streams)
        global_prob, a_prob, v_prob = (p.clamp(EPS, 1 - EPS) for p in out[:3])
        loss = (self.audio_weight * bce(a_prob, targets["audio"]) + self.visual_weight * bce(v_prob, targets["visual"])
                + self.video_weight * bce(global_prob, batch.labels)
                + self.weight * contrastive_loss(streams.audio, streams.visual, self.temperature,
                                                 self.contrastive_smoothing, expected_probability=True)
                + self.mutual_weight * mutual_learning_loss(batch.labels, global_prob, a_prob, v_prob, out.a_uct,
                                                            out.v_uct, out.global_uct, batch.index % 2 == 1,
                                                            self.absent_weight))
        if batch.epoch == 1:
            return loss
        return loss + self._teaching(taught, targets, a_prob, v_prob, streams.audio, streams.visual)

    def _branch_step(self, branch: ModalityBranch, optimizer: torch.optim.Adam, lr: float, inputs: list[Tensor],
                     target: Tensor, pseudo: Tensor, epoch: int) -> None:
        """One Adam step of a branch: asymmetric losses on its video and token probabilities."""
        for group in optimizer.param_groups:
            group["lr"] = lr
        out = branch(*inputs)
        if epoch > self.branch_warmup_epochs:
            token_weight = 0.001 if branch.modality == "audio" else 0.0
            loss = (0.5 * asymmetric_loss(out.prob, target) + token_weight * asymmetric_loss(out.token_prob, target)
                    + 0.5 * asymmetric_loss(out.prob, pseudo))
        else:
            token_weight = 1.2 if branch.modality == "audio" else 1.0
            loss = asymmetric_loss(out.prob, target) + token_weight * asymmetric_loss(out.token_prob, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _teaching(self, taught: dict[str, Any], targets: dict[str, Tensor], a_prob: Tensor, v_prob: Tensor,
                  audio: Tensor, visual: Tensor) -> Tensor:
        """The branches' terms: co-occurrence consistency where they are sure, weighted segment matching."""
        terms = []
        for modality, prob, sure in (("audio", a_prob, self.audio_sure), ("visual", v_prob, self.visual_sure)):
            branch_prob = taught[modality].prob
            confident = ((branch_prob >= sure[0]).float() + (branch_prob <= sure[1]).float()) * targets[modality]
            teacher = (confident * branch_prob + prob * (1 - confident)).detach()
            terms.append(co_occurrence_loss(prob, teacher))
        audio_share, visual_share = exclusive_share(taught["audio"].prob >= 0.5, taught["visual"].prob >= 0.5)
        segments = audio.shape[1]
        for features, stream, share in ((taught["audio"].features, audio, audio_share),
                                        (taught["visual"].features, visual, visual_share)):
            terms.append(contrastive_loss(features, stream, self.temperature, self.contrastive_smoothing,
                                          expected_probability=True, weights=share[:, None].expand(-1, segments)))
        return sum(w * t for w, t in zip(self.teacher_weights, terms))

    def state_dict(self) -> dict[str, Any]:
        """The branches and their optimisers (empty before the first batch)."""
        return {m: {"branch": b.state_dict(), "optimizer": o.state_dict()} for m, (b, o) in self.branches.items()}

    def load_state_dict(self, state: dict[str, Any], model: CMPAENet) -> None:
        if not state:
            return
        for modality, (branch, optimizer) in self._branches(model).items():
            branch.load_state_dict(state[modality]["branch"])
            optimizer.load_state_dict(state[modality]["optimizer"])

    def describe(self) -> dict[str, Any]:
        return describe(self)
