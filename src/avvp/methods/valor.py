"""VALOR (Lai, Chen, Wang, NeurIPS 2023): zero-shot segment-level pseudo labels from CLIP and CLAP,
then HAN trained on them.

The pass `valor_labels` asks CLIP (image-text) which classes each one-second segment shows and
CLAP (audio-text) which it sounds: logits as VALOR computes them (CLIP: logit_scale x cosine of the
`clip` embeddings with the class prompts; CLAP: logit_scale_a x `clap_windows` @ prompts), a class
kept in a segment when its logit is strictly above the class's threshold and it is a label of the
video. Prompts and thresholds are data, per class vocabulary: VALOR's for LLP in `valor_llp.json`
(typos included), a user file of the same form for another one. With random CLIP/CLAP weights
(the demo) the labels carry no meaning; the pass says so in its summary.

Outputs: `audio_labels.tsv` and `visual_labels.tsv` (segment label tables, `label_tables`) and
`labels.json` (where the prompts and weights came from, how many labels each modality got).

The training stage `valor_train` (method `valor` = valor_labels -> valor_train) trains HAN with
VALOR's encoder (8 heads, feed-forward 1024, the visual stream attending to the updated audio) on
VALOR's loss (`avvp.methods.objectives.ValorObjective`) and recipe: AdamW, a linear warm-up then a
cosine decay per epoch, gradient clipping, batch 64, 60 epochs, keeping the first epoch with the
best validation segment Type@AV. The feature set is the run's (`model.features`): VALOR's standard
one, or VALOR++'s clap + clip + r2plus1d_18 with its settings (config/valor.yaml).

| stage | what it does | schedule | keeps |
| --- | --- | --- | --- |
| valor_labels | segment pseudo labels from the packed clip / clap_windows embeddings | one pass | - |
| valor_train | HAN (VALOR's encoder) on them | 60 ep, AdamW 1e-4, warm-up 10 + cosine to 1e-6, batch 64 | first best val segment Type@AV |
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avvp.methods.settings import LoopSettings, setting
from avvp.methods.stages import Method, Pass, PassJob, StageInput, TrainingStage, register_method, register_stage
from avvp.base.protocol import SEGMENTS

if TYPE_CHECKING:
    from avvp.features.store import PackedSplit

LLP_PROMPTS = "valor_llp.json"
EMBEDDINGS = {"visual": "clip", "audio": "clap_windows"}  # the kind each modality's logits come from
WEIGHTS_OF = {"clip": "clip", "clap_windows": "clap"}  # the network (kind) whose weights made them


@dataclass(frozen=True)
class Prompts:
    """Per class of a vocabulary: the text prompt and threshold of each modality."""

    classes: tuple[str, ...]
    prompts: Mapping[str, tuple[str, ...]]  # modality -> one prompt per class
    thresholds: Mapping[str, np.ndarray]  # modality -> (C,) float

    def for_classes(self, classes: Sequence[str], where: str) -> Prompts:
        """The same, in the order of `classes`; a class without a prompt is an error naming the file."""
        missing = [c for c in classes if c not in self.classes]
        if missing:
            raise ValueError(f"{where}: no prompts for class(es) {missing}")
        order = [self.classes.index(c) for c in classes]
        return Prompts(tuple(classes), {m: tuple(p[i] for i in order) for m, p in self.prompts.items()},
                       {m: t[order] for m, t in self.thresholds.items()})


def read_prompts(path: str | Path | None = None) -> tuple[Prompts, str]:
    """A prompts file (`{"classes": {name: {visual_prompt, visual_threshold, audio_prompt,
    audio_threshold}}}`), by default VALOR's for LLP; and where it came from."""
    if path:
        where = str(path)
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable prompts file ({err})") from err
    else:
        where = f"avvp/methods/{LLP_PROMPTS} (VALOR's, LLP)"
        doc = json.loads(resources.files("avvp.methods").joinpath(LLP_PROMPTS).read_text("utf-8"))
    entries = doc.get("classes") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{where}: expected an object with a non-empty 'classes' object")
    prompts, thresholds = {}, {}
    for modality in EMBEDDINGS:
        try:
            prompts[modality] = tuple(str(e[f"{modality}_prompt"]) for e in entries.values())
            thresholds[modality] = np.array([float(e[f"{modality}_threshold"]) for e in entries.values()])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: every class needs {modality}_prompt and a numeric {modality}_threshold "
                             f"({err!r})") from err
    return Prompts(tuple(entries), prompts, thresholds), where


def pseudo_labels(logits: np.ndarray, thresholds: np.ndarray, video_labels: np.ndarray) -> np.ndarray:
    """(N, 10, C) 0/1: logit strictly above its class's threshold, and the class a label of the video."""
    return ((logits > thresholds) & (np.asarray(video_labels)[:, None, :] > 0)).astype(np.float32)


@dataclass(frozen=True)
class LabelSettings:
    """Where the prompts come from and which CLIP/CLAP weights made the packed embeddings (the
    workflow fills the weights and seeds in from its `features.clip` / `features.clap_windows`)."""

    prompts: str = setting("", "JSON file of prompts and thresholds per class; empty: VALOR's for LLP", path=True)
    clip_weights: str = setting("random", "weights of the clip features: pretrained, random or a model folder")
    clip_seed: int = setting(0, "seed of random CLIP weights (the clip features' seed)", minimum=0)
    clap_weights: str = setting("random", "weights of the clap_windows features: pretrained, random or a model folder")
    clap_seed: int = setting(0, "seed of random CLAP weights (the clap_windows features' seed)", minimum=0)


# Settings the workflow takes from the config of the kinds the pass reads: setting -> (kind, key).
FROM_FEATURES = {"clip_weights": ("clip", "weights"), "clip_seed": ("clip", "seed"),
                 "clap_weights": ("clap_windows", "weights"), "clap_seed": ("clap_windows", "seed")}


def modality_logits(kind: str, weights: str, seed: int, embeds: np.ndarray, prompts: Sequence[str]) -> np.ndarray:
    """VALOR's logits of packed embeddings (N, 10, D) against the prompts, by the network that made them."""
    from avvp.extractors import clap, clip, feature_kind
    from avvp.features.networks import load_network

    network = WEIGHTS_OF[kind]
    model, _ = load_network(feature_kind(network), weights, seed)
    logits = (clip if network == "clip" else clap).zero_shot_logits(model, weights, embeds, prompts)
    return np.asarray(logits, np.float32)


def _labels(job: PassJob) -> str:
    from avvp.features.store import load_packed
    from avvp.methods.label_tables import write_segment_table

    settings: LabelSettings = job.settings
    packed = load_packed(job.train_pack)
    missing = [k for k in EMBEDDINGS.values() if k not in packed.arrays]
    if missing:
        raise ValueError(f"{job.train_pack}: the training pack has no {', '.join(missing)} features, which VALOR's "
                         f"pseudo labels need (pack them alongside the model's features)")
    prompts, where = read_prompts(settings.prompts or None)
    prompts = prompts.for_classes(packed.classes, where)
    weights = {"clip": settings.clip_weights, "clap_windows": settings.clap_weights}
    seeds = {"clip": settings.clip_seed, "clap_windows": settings.clap_seed}
    counts = {}
    for modality, kind in EMBEDDINGS.items():
        logits = modality_logits(kind, weights[kind], seeds[kind], np.asarray(packed.arrays[kind]),
                                 prompts.prompts[modality])
        labels = pseudo_labels(logits, prompts.thresholds[modality], packed.labels)
        write_segment_table(job.out_dir / f"{modality}_labels.tsv", packed.filenames, labels, packed.classes)
        counts[modality] = int(labels.sum())
    random = [k for k, w in weights.items() if w == "random"]
    summary = {"prompts": where, "weights": weights, "seeds": seeds,
               "segment_labels": counts, "n_videos": len(packed),
               "meaningful": not random,
               "note": (f"random {' and '.join(random)} weights: these zero-shot labels carry no meaning"
                        if random else "zero-shot labels from pretrained or given weights")}
    (job.out_dir / "labels.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return f"segment pseudo labels of {len(packed)} videos: {counts}"


register_stage(Pass("valor_labels", "VALOR: zero-shot segment pseudo labels per modality from CLIP and CLAP "
                    "(class prompts and thresholds from a file), masked by the video labels",
                    LabelSettings(), _labels, kinds=tuple(EMBEDDINGS.values()), from_features=FROM_FEATURES,
                    per_seed=False))


# ----------------------------------------------------------------------------- training


def warm_up_cosine(epoch: int, epochs: int, warm_up: int, lr_max: float, lr_min: float) -> float:
    """VALOR's learning rate of `epoch` (1-based, set before it): linear warm-up to lr_max over
    `warm_up` epochs, then a cosine decay that reaches lr_min at the last epoch."""
    if epoch < warm_up:
        return epoch / warm_up * lr_max
    progress = (epoch - warm_up) / max(epochs - warm_up, 1)
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(progress * math.pi))


@dataclass(frozen=True)
class ValorSettings(LoopSettings):
    """VALOR's recipe (train_valor.sh): AdamW with the warm-up cosine schedule, gradient clipping and
    its encoder. VALOR++ changes lr, lr_min, hidden and layers (config/valor.yaml)."""

    lr_min: float = setting(1e-6, "learning rate of the last epoch (the cosine decay's floor)", minimum=0)
    warm_up: int = setting(10, "epochs of linear learning-rate warm-up", minimum=1)
    weight_decay: float = setting(1e-3, "AdamW weight decay", minimum=0)
    beta1: float = setting(0.5, "AdamW beta1", minimum=0, below=1)
    beta2: float = setting(0.999, "AdamW beta2", minimum=0, below=1)
    eps: float = setting(1e-8, "AdamW epsilon", minimum=0)
    grad_norm: float = setting(1.0, "clip the gradient norm of every step to this", minimum=0)
    hidden: int = setting(512, "width of the attention encoder", minimum=1)
    heads: int = setting(8, "attention heads", minimum=1)
    ff: int = setting(1024, "feed-forward width of the attention layers", minimum=1)
    layers: int = setting(1, "attention layers", minimum=1)
    audio_first: bool = setting(True, "the visual stream attends to the audio the same layer has updated "
                                "(VALOR's encoder; off: both attend to the layer's inputs, as HAN)")

    def model_options(self) -> dict[str, Any]:
        return {**super().model_options(), "hidden": self.hidden, "heads": self.heads, "ff": self.ff,
                "layers": self.layers, "audio_first": self.audio_first}

    def optimizer(self, params: Any) -> Any:
        import torch

        return torch.optim.AdamW(params, lr=self.lr, betas=(self.beta1, self.beta2), eps=self.eps,
                                 weight_decay=self.weight_decay)

    def scheduler(self, optimizer: Any) -> Any:
        """The epoch's rate as a factor of lr (torch's step k: the rate of epoch k + 1)."""
        import torch

        def factor(step: int) -> float:
            rate = warm_up_cosine(step + 1, self.epochs, self.warm_up, self.lr, self.lr_min)
            return rate / self.lr if self.lr else 1.0

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def max_grad_norm(self) -> float | None:
        return self.grad_norm


def _objective(settings: ValorSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    from avvp.methods.objectives import ValorObjective

    return ValorObjective()


def _segment_targets(inputs: Mapping[str, Path], packed: PackedSplit) -> Any:
    from avvp.methods.label_tables import read_segment_table, table_rows
    from avvp.methods.training import ModalityTargets

    classes = packed.classes
    tables = [Path(inputs["pseudo_labels"]) / f"{m}_labels.tsv" for m in ("audio", "visual")]
    return ModalityTargets(*(table_rows(read_segment_table(path, classes), packed.filenames, (SEGMENTS, len(classes)),
                                        path) for path in tables))


register_stage(TrainingStage(
    id="valor_train",
    description="VALOR: HAN with VALOR's encoder trained on the segment pseudo labels (video BCE plus "
                "per-modality segment BCE), AdamW with warm-up and cosine decay; keeps the first best "
                "validation segment Type@AV",
    defaults=ValorSettings(epochs=60, lr=1e-4, batch_size=64, keep="type_at_av_first"),
    objective=_objective,
    targets=_segment_targets,
    inputs=(StageInput("pseudo_labels", "valor_labels", help="the valor_labels folder (segment label tables)"),),
))
register_method(Method("valor", "VALOR", ("valor_labels", "valor_train")))
