"""UWAV (Lai et al., CVPR 2025, "Uncertainty-weighted Weakly-supervised Audio-Visual Video Parsing"):
HAN trained on a pretrained generator's segment logits as uncertainty-weighted soft labels.

The training stage (`uwav_train`) trains UWAV's HAN (`avvp.model.uwav_han.UwavHAN`: five layers, 16
heads, feed-forward 2048, the visual stream attending to the updated audio) on UWAV's loss
(`avvp.methods.uncertainty.UwavObjective`) and recipe (scripts/train_han.sh of the released code):
AdamW (beta1 0.9, weight decay 1e-4), lr 1e-4 with 10 warm-up epochs then a cosine decay to 5e-6 at
epoch 80, stepped per epoch; batch 64; gradient norm clipped at 1; keeping the first epoch with the
best validation segment Type@AV (main.py keeps an epoch only when its Seg-type is strictly higher).
The released run's seed, 20000, is the run's, not the stage's. It needs from the labels pass, per
modality: the generator's segment logits of the training split (the batch's audio and visual
labels), its per-class thresholds and the hard pseudo labels (for the class frequencies).

This module holds what loads no torch (the settings, the class frequencies and weights); the loss
is in `avvp.methods.uncertainty`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avvp.methods.settings import KEEP, setting
from avvp.methods.stages import Method, Pass, PassJob, StageInput, TrainingStage, register_method, register_stage
from avvp.methods.valor import ValorSettings

if TYPE_CHECKING:
    from avvp.features.store import PackedSplit


def class_frequencies(labels: np.ndarray) -> np.ndarray:
    """(C,) the fraction of the training split's segments whose hard pseudo label (N, T, C) is on,
    per class (the released dataloader's `get_class_freq`)."""
    labels = np.asarray(labels, np.float64)
    return labels.sum(axis=(0, 1)) / (labels.shape[0] * labels.shape[1])


def inverse_frequency_weights(class_freq: np.ndarray, pos_weight: float) -> tuple[float, float]:
    """UWAV's `inverse_freq` weights (of a video's classes, of the others): (C - F) x pos_weight and F,
    where F, the sum of the class frequencies, is the mean number of classes a segment is labelled
    with: each side is weighed by the other's frequency (F labelled against C - F unlabelled entries
    per segment), so the rare labelled side counts more. Two numbers, not one per class, and no
    smoothing, as released."""
    total = float(np.sum(class_freq))
    return (len(class_freq) - total) * pos_weight, total


@dataclass(frozen=True)
class UwavSettings(ValorSettings):
    """UWAV's recipe (scripts/train_han.sh): VALOR's optimiser and schedule with UWAV's values, its
    HAN, the class weights and mixup."""

    epochs: int = setting(80, "training epochs", minimum=1)
    lr: float = setting(1e-4, "learning rate (the peak of the warm-up)", minimum=0)
    batch_size: int = setting(64, "videos per training batch", minimum=1)
    keep: str = setting("type_at_av_first", "the epoch kept as model.pt (UWAV: the earliest best validation "
                        "segment Type@AV)", choices=KEEP)
    lr_min: float = setting(5e-6, "learning rate of the last epoch (the cosine decay's floor)", minimum=0)
    weight_decay: float = setting(1e-4, "AdamW weight decay", minimum=0)
    beta1: float = setting(0.9, "AdamW beta1", minimum=0, below=1)
    heads: int = setting(16, "attention heads", minimum=1)
    ff: int = setting(2048, "feed-forward width of the attention layers", minimum=1)
    layers: int = setting(5, "attention layers", minimum=1)
    proj_layers: int = setting(1, "layers of the visual input perceptron (1: one linear layer)", minimum=1)
    pos_weight: float = setting(0.5, "factor of the weight of a video's classes in the segment loss", minimum=0)
    alpha: float = setting(1.7, "mixup's lam ~ Beta(alpha, alpha); 0: no mixing", minimum=0)
    segment_weight: float = setting(1.0, "weight of the segment loss", minimum=0)
    mixup_weight: float = setting(1.0, "weight of the mixup loss", minimum=0)

    def model_options(self) -> dict[str, Any]:
        return {**super().model_options(), "proj_layers": self.proj_layers, "network": "uwav"}


def uwav_objective(settings: UwavSettings, thresholds: Mapping[str, np.ndarray],
                   pseudo_labels: Mapping[str, np.ndarray]) -> Any:
    """UWAV's objective from the generator's per-class thresholds (C,) and the training split's hard
    pseudo labels (N, 10, C), each by modality."""
    from avvp.methods.uncertainty import UwavObjective

    return UwavObjective(np.asarray(thresholds["audio"]), np.asarray(thresholds["visual"]),
                         class_frequencies(pseudo_labels["audio"]), class_frequencies(pseudo_labels["visual"]),
                         settings.pos_weight, settings.alpha, settings.segment_weight, settings.mixup_weight)


# ----------------------------------------------------------------------------- the generator's pretraining

# The class-prompt templates of UWAV's paper (section 3.2); the released code reads their embeddings
# precomputed (all_event_feats.npy), so how it wrote class names is unknown: avvp writes LLP's
# underscores as spaces.
PROMPTS = {"audio": "This is the sound of {}", "visual": "A photo of {}"}
EMBEDDINGS = {"audio": "clap_windows", "visual": "clip"}  # the packed kind each modality's logits come from
TEXT_TOWER = {"clap_windows": "clap", "clip": "clip"}  # the network (kind) whose text tower embeds its prompts
FROM_FEATURES = {"clip_weights": ("clip", "weights"), "clip_seed": ("clip", "seed"),
                 "clap_weights": ("clap_windows", "weights"), "clap_seed": ("clap_windows", "seed")}


@dataclass(frozen=True)
class UwavPretrainSettings:
    """The dense-label data set (UnAV-100's form) and the generator's recipe (scripts/train_transformer.sh),
    or a pretrained generator used as it is."""

    annotations: str = setting("", "annotation file in UnAV-100's form (unav100_annotations.json): subsets "
                               "train and validation, events with segment, label and label_id", path=True)
    clap_features: str = setting("", "folder of <video id>.npy CLAP segment features (UnAV_CLAP segment_feats)",
                                 path=True)
    clip_features: str = setting("", "folder of <video id>.npy CLIP segment features (UnAV_CLIP segment_feats)",
                                 path=True)
    audio_text: str = setting("", ".npy (C, 512) CLAP embeddings of the data set's class prompts by label_id "
                              "(all_event_feats.npy); empty: from CLAP's text tower", path=True)
    visual_text: str = setting("", ".npy (C, 768) CLIP embeddings of the class prompts, likewise", path=True)
    released: str = setting("", "a pretrained generator's state dict (released format): used as it is, "
                            "nothing is trained", path=True)
    epochs: int = setting(80, "pretraining epochs", minimum=1)
    batch_size: int = setting(64, "videos per batch", minimum=1)
    pretrain_seed: int = setting(1000, "seed of the initial weights and the batch order (the released run's; the "
                                 "generator is trained once for all of a run's seeds)", minimum=0)
    hidden: int = setting(1024, "width of the transformers", minimum=1)
    heads: int = setting(16, "attention heads", minimum=1)
    ff: int = setting(2048, "feed-forward width", minimum=1)
    layers: int = setting(5, "transformer layers per modality", minimum=1)
    dropout: float = setting(0.3, "dropout of the transformers", minimum=0, maximum=1)
    clip_weights: str = setting("random", "CLIP weights whose text tower embeds the prompts (the clip features')")
    clip_seed: int = setting(0, "seed of random CLIP weights", minimum=0)
    clap_weights: str = setting("random", "CLAP weights whose text tower embeds the prompts (the clap_windows "
                                "features')")
    clap_seed: int = setting(0, "seed of random CLAP weights", minimum=0)


def _pretrain(job: PassJob) -> str:
    import shutil

    import torch

    from avvp.base.device import resolve_device
    from avvp.methods.generator_pretraining import pretrain, read_dense_split
    from avvp.methods.uwav_labels import PretrainingRecipe, unav_class_names
    from avvp.model.uwav import UWAVGenerator

    s: UwavPretrainSettings = job.settings
    summary: dict[str, Any] = {"heads": s.heads}
    if s.released:
        state = torch.load(s.released, map_location="cpu", weights_only=True)
        UWAVGenerator.from_released(state, torch.zeros(1, 512), torch.zeros(1, 768), heads=s.heads)  # it loads
        shutil.copyfile(s.released, job.out_dir / "generator.pt")
        summary["released"] = s.released
        (job.out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        return f"the pretrained generator {s.released}"
    given = {"--annotations": s.annotations, "--clap-features": s.clap_features, "--clip-features": s.clip_features}
    missing = [flag for flag, value in given.items() if not value]
    if missing:
        raise ValueError(f"uwav_pretrain needs the dense-label data set ({', '.join(missing)}) or --released")
    classes = unav_class_names(s.annotations)
    texts = prompt_texts(s, classes)
    torch.manual_seed(s.pretrain_seed)  # once, before the weights are drawn, as the released run
    generator = UWAVGenerator(torch.from_numpy(texts["audio"]), torch.from_numpy(texts["visual"]), hidden=s.hidden,
                              heads=s.heads, ff=s.ff, layers=s.layers, dropout=s.dropout)
    splits = [read_dense_split(Path(s.annotations), subset, Path(s.clap_features), Path(s.clip_features),
                               len(classes)) for subset in ("train", "validation")]
    recipe = PretrainingRecipe(epochs=s.epochs, batch_size=s.batch_size, seed=s.pretrain_seed)
    state, epoch, score = pretrain(generator, *splits, recipe, resolve_device(job.device), job.out_dir / "log.csv")
    torch.save(state, job.out_dir / "generator.pt")
    summary.update(kept_epoch=epoch, val_segment_av=score, classes=len(classes), train_videos=len(splits[0]),
                   val_videos=len(splits[1]), annotations=s.annotations)
    (job.out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return f"pretrained on {len(splits[0])} videos; kept epoch {epoch} (validation segment AV F {score:.2f})"


def _supervision(folder: Path) -> str | None:
    """What a reader of UWAV's scores must know: its generator learned from dense labels (uwav_pretrain's
    summary.json says of which data set), so the method is not purely weakly supervised."""
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    source = (f"a pretrained generator ({summary['released']})" if "released" in summary else
              f"{summary['train_videos']} videos of {summary['annotations']}")
    return (f"weak + external dense pretraining: the pseudo-label generator learned from segment-level labels "
            f"({source}), so this method is not purely weakly supervised")


register_stage(Pass("uwav_pretrain", "UWAV: the temporal pseudo-label generator pretrained on a dense-label data "
                    "set in UnAV-100's form (or a pretrained one given), once for all seeds",
                    UwavPretrainSettings(), _pretrain, from_features=FROM_FEATURES, per_seed=False,
                    reads_train_pack=False, explain=_supervision,
                    demo_data={"annotations": "annotations.json", "clap_features": "features/clap_windows",
                               "clip_features": "features/clip"}))


# ----------------------------------------------------------------------------- the labels pass

@dataclass(frozen=True)
class UwavLabelSettings:
    """The generator, its class-prompt embeddings, and which CLIP/CLAP weights made the packed
    embeddings (the workflow fills the weights and seeds in from `features.clip` / `features.clap_windows`)."""

    audio_text: str = setting("", ".npy (C, 512) CLAP embeddings of the class prompts in the data set's class "
                              "order (UWAV's all_event_feats.npy); empty: from CLAP's text tower", path=True)
    visual_text: str = setting("", ".npy (C, 768) CLIP embeddings of the class prompts, likewise; empty: from "
                               "CLIP's text tower", path=True)
    clip_weights: str = setting("random", "weights of the clip features: pretrained, random or a model folder")
    clip_seed: int = setting(0, "seed of random CLIP weights (the clip features' seed)", minimum=0)
    clap_weights: str = setting("random", "weights of the clap_windows features: pretrained, random or a model folder")
    clap_seed: int = setting(0, "seed of random CLAP weights (the clap_windows features' seed)", minimum=0)


def prompt_texts(settings: UwavPretrainSettings | UwavLabelSettings, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per modality, (C, D) unit-length embeddings of the class prompts: the given files (checked
    against the vocabulary's size) or the text tower of the network that made the packed embeddings."""
    from avvp.extractors import clap, clip, feature_kind
    from avvp.features.networks import load_network

    given = {"audio": settings.audio_text, "visual": settings.visual_text}
    weights = {"clip": (settings.clip_weights, settings.clip_seed), "clap": (settings.clap_weights, settings.clap_seed)}
    texts = {}
    for modality, kind in EMBEDDINGS.items():
        if given[modality]:
            text = np.load(given[modality]).astype(np.float32)
            if text.ndim != 2 or len(text) != len(classes):
                raise ValueError(f"{given[modality]}: {tuple(text.shape)} text embeddings, not one row per class of "
                                 f"the {len(classes)}")
        else:
            network = TEXT_TOWER[kind]
            model, _ = load_network(feature_kind(network), *weights[network])
            prompts = [PROMPTS[modality].format(name.replace("_", " ")) for name in classes]
            text = (clap if network == "clap" else clip).prompt_embeddings(model, weights[network][0], prompts).numpy()
        texts[modality] = text / np.linalg.norm(text, axis=1, keepdims=True)
    return texts


def _labels(job: PassJob) -> str:
    from avvp.base.device import resolve_device
    from avvp.evaluation.annotations import Vocabulary, read_weak
    from avvp.features.store import load_packed
    from avvp.methods.label_tables import write_segment_table
    from avvp.methods.training_data import packed_ground_truth
    from avvp.methods.uwav_labels import modality_labels, segment_logits

    settings: UwavLabelSettings = job.settings
    validation = job.validation
    packs = {"train": load_packed(job.train_pack), "val": load_packed(validation.pack)}
    for name, packed in packs.items():
        missing = [k for k in EMBEDDINGS.values() if k not in packed.arrays]
        if missing:
            raise ValueError(f"{job.train_pack if name == 'train' else validation.pack}: no {', '.join(missing)} "
                             f"features, which UWAV's generator reads (pack them alongside the model's)")
    classes = packs["train"].classes
    texts = prompt_texts(settings, classes)
    generator = load_generator(Path(job.inputs["generator"]), texts)
    device = resolve_device(job.device)
    generator.to(device)
    logits = {name: dict(zip(EMBEDDINGS, segment_logits(generator, np.asarray(p.arrays["clap_windows"]),
                                                        np.asarray(p.arrays["clip"]), device)))
              for name, p in packs.items()}
    truth = packed_ground_truth(packs["val"], read_weak(validation.split_csv, Vocabulary(tuple(classes))),
                                validation.audio_csv, validation.visual_csv, validation.pack)
    counts = {}
    for modality in EMBEDDINGS:
        val_truth = np.moveaxis(getattr(truth, modality), 1, 2)  # (N, C, T) -> (N, T, C)
        result = modality_labels(logits["train"][modality], packs["train"].labels, logits["val"][modality], val_truth,
                                 packs["val"].labels)
        np.save(job.out_dir / f"{modality}_logits.npy", result.logits)
        np.save(job.out_dir / f"{modality}_thresholds.npy", result.thresholds)
        write_segment_table(job.out_dir / f"{modality}_labels.tsv", packs["train"].filenames, result.labels, classes)
        counts[modality] = int(result.labels.sum())
    (job.out_dir / "videos.txt").write_text("".join(f"{f}\n" for f in packs["train"].filenames), encoding="utf-8")
    summary = {"generator": str(job.inputs["generator"]), "segment_labels": counts, "n_videos": len(packs["train"]),
               "texts": {m: given or "text tower" for m, given in (("audio", settings.audio_text),
                                                                   ("visual", settings.visual_text))}}
    (job.out_dir / "labels.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return f"segment logits and pseudo labels of {len(packs['train'])} videos: {counts}"


def load_generator(path: Path, texts: Mapping[str, np.ndarray]) -> Any:
    """The generator of a uwav_pretrain folder (`generator.pt`, the released format; its head count,
    which no weight shows, from the folder's summary.json), or of a released-format state-dict file
    (UWAV's 16 heads), over these prompt embeddings."""
    import torch

    from avvp.model.uwav import ARCHITECTURE, UWAVGenerator

    file, summary = (path, None) if path.is_file() else (path / "generator.pt", path / "summary.json")
    if not file.is_file():
        raise FileNotFoundError(f"{path}: neither a generator state dict nor a uwav_pretrain folder with generator.pt")
    heads = (json.loads(summary.read_text(encoding="utf-8"))["heads"] if summary and summary.is_file()
             else ARCHITECTURE["heads"])
    state = torch.load(file, map_location="cpu", weights_only=True)
    return UWAVGenerator.from_released(state, torch.from_numpy(texts["audio"]), torch.from_numpy(texts["visual"]),
                                       heads=heads)


register_stage(Pass("uwav_labels", "UWAV: the frozen generator's segment logits per modality, class-wise thresholds "
                    "chosen on the validation split's segment-level truth, hard labels masked by the video labels",
                    UwavLabelSettings(), _labels, kinds=tuple(EMBEDDINGS.values()), from_features=FROM_FEATURES,
                    per_seed=False, validation=True,
                    needs=(StageInput("generator", "uwav_pretrain", help="the uwav_pretrain folder, or a generator state dict in the released format"),)))


# ----------------------------------------------------------------------------- training


def _hard_labels(folder: Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    from avvp.methods.label_tables import read_segment_table

    return {m: np.stack(list(read_segment_table(folder / f"{m}_labels.tsv", classes).values())) for m in EMBEDDINGS}


def _objective(settings: UwavSettings, inputs: Mapping[str, Path], classes: Sequence[str]) -> Any:
    folder = Path(inputs["pseudo_labels"])
    thresholds = {m: np.load(folder / f"{m}_thresholds.npy") for m in EMBEDDINGS}
    return uwav_objective(settings, thresholds, _hard_labels(folder, classes))


def _logit_targets(inputs: Mapping[str, Path], packed: PackedSplit) -> Any:
    """The generator's segment logits of the pass's videos, in the order of the training pack."""
    from avvp.methods.training import ModalityTargets

    folder = Path(inputs["pseudo_labels"])
    videos = (folder / "videos.txt").read_text(encoding="utf-8").split()
    row = {name: i for i, name in enumerate(videos)}
    missing = [name for name in packed.filenames if name not in row]
    if missing:
        raise ValueError(f"{folder / 'videos.txt'}: no logits of {missing[0]} (and {len(missing) - 1} more videos "
                         f"of the training pack)")
    rows = [row[name] for name in packed.filenames]
    return ModalityTargets(*(np.load(folder / f"{m}_logits.npy", mmap_mode="r")[rows] for m in EMBEDDINGS))


register_stage(TrainingStage(
    id="uwav_train",
    description="UWAV: HAN (UWAV's) trained on the generator's uncertainty-weighted soft labels with class "
                "re-weighting and feature mixup; AdamW with warm-up and cosine decay; keeps the first best "
                "validation segment Type@AV",
    defaults=UwavSettings(),
    objective=_objective,
    targets=_logit_targets,
    inputs=(StageInput("pseudo_labels", "uwav_labels", help="the uwav_labels folder (logits, thresholds, labels)"),),
))
register_method(Method("uwav", "UWAV", ("uwav_pretrain", "uwav_labels", "uwav_train")))
