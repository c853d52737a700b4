"""`avvp refine`: the label-refinement stages between two trainings.

    avvp refine ma-mmil --checkpoint STAGE1.pt --train-pack P --out-dir D [--seed S]
        -> D/audio_labels.tsv, D/visual_labels.tsv, D/partners.tsv, D/refine.json
    avvp refine jomold-ratios --checkpoint ESTIMATOR.pt --train-pack P --out RATIOS.json
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from avvp.features import PackedSplit
    from avvp.model import HAN


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="label refinement stages: MA-MMIL refined labels, JoMoLD noise ratios")
    stages = p.add_subparsers(dest="stage", required=True)
    ma = stages.add_parser("ma-mmil", help="MA-MMIL stage 2: refined audio and visual label tables")
    ma.add_argument("--out-dir", type=Path, required=True)
    ma.add_argument("--seed", type=int, default=1, help="seed of the partner draw (default 1)")
    ma.set_defaults(func=run_ma_mmil)
    jo = stages.add_parser("jomold-ratios", help="JoMoLD: per-class noise ratios of the audio and visual labels")
    jo.add_argument("--out", type=Path, required=True, help="the ratios JSON")
    jo.add_argument("--visual-smoothing", type=float,
                    help="the estimator's visual label smoothing (default: the checkpoint's, else 0.1)")
    jo.set_defaults(func=run_jomold_ratios)
    for stage in (ma, jo):
        stage.add_argument("--checkpoint", type=Path, required=True, help="the previous stage's model.pt")
        stage.add_argument("--train-pack", type=Path, required=True, help="the training split's `avvp pack` folder")
        stage.add_argument("--device", default="auto")
        stage.add_argument("--batch-size", type=int, default=128)


def _model_and_pack(args: argparse.Namespace) -> tuple[HAN, PackedSplit, torch.device, dict[str, Any]]:
    """The checkpoint's model (eval mode), the packed split, the device and the checkpoint's config."""
    from avvp.checkpoint import load_model
    from avvp.device import resolve_device
    from avvp.features import load_packed

    packed = load_packed(args.train_pack)
    if len(packed) == 0:
        raise ValueError(f"{args.train_pack}: no videos")
    device = resolve_device(args.device)
    model, _, payload = load_model(args.checkpoint, packed.classes, device)
    return model, packed, device, payload.get("config", {})


def run_ma_mmil(args: argparse.Namespace) -> None:
    from avvp.methods.ma_mmil import refine_labels, write_refinement

    model, packed, device, _ = _model_and_pack(args)
    refinement = refine_labels(model, packed, args.seed, device, args.batch_size)
    out = write_refinement(args.out_dir, packed, refinement, args.seed, checkpoint=str(args.checkpoint))
    print(f"refined labels of {len(packed)} videos -> {out}")


def run_jomold_ratios(args: argparse.Namespace) -> None:
    from avvp.methods.jomold import estimate_noise_ratios, write_noise_ratios

    model, packed, device, config = _model_and_pack(args)
    smoothing = args.visual_smoothing if args.visual_smoothing is not None else config.get("visual_smoothing", 0.1)
    ratios = estimate_noise_ratios(model, packed, device, smoothing, args.batch_size)
    write_noise_ratios(args.out, ratios, checkpoint=str(args.checkpoint), n_videos=len(packed),
                       visual_smoothing=smoothing)
    print(f"noise ratios of {len(packed.classes)} classes -> {args.out}")
