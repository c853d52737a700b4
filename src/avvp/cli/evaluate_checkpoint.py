"""`avvp evaluate-checkpoint`: a checkpoint and a features folder -> the ten numbers of the LLP test
split, beside the numbers published for the checkpoint's method.

The seed's own use: the released features and `MMIL_Net.pt` give HAN's published numbers. This
packs the test split (and, for a rule with calibrated gates, the validation split) from `--features`,
predicts with the checkpoint, and scores under the method's published rule (`--protocol
as_published`, the default: the legacy audio annotations the papers used) or any other protocol.
It is `avvp pack`, `avvp predict`, (`avvp calibrate`,) `avvp evaluate` in one step.

  avvp evaluate-checkpoint --checkpoint MMIL_Net.pt --features feats/
  avvp evaluate-checkpoint --checkpoint results/runs/jomold/seed1/jomold_denoise/model.pt --features feats/ --protocol avvp
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from avvp.cli.common import add_features_args

HELP = "the ten LLP test numbers of a checkpoint (released or trained), beside its method's published ones"
# LLP's annotation files as avvp ships them (data/llp of a source checkout).
SHIPPED_ANNOTATIONS = Path(__file__).resolve().parents[3] / "data" / "llp"
FILES = {"test": "AVVP_test_pd.csv", "val": "AVVP_val_pd.csv", "audio": "AVVP_eval_audio.csv",
         "visual": "AVVP_eval_visual.csv", "legacy": "legacy/AVVP_eval_audio_2020.csv"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a released checkpoint (HAN's MMIL_Net.pt, MA-MMIL's, JoMoLD's, CMPAE's, CoLeaF's, UWAV's HAN) or "
                             "a model.pt of a run")
    add_features_args(parser)
    parser.add_argument("--annotations", type=Path, default=SHIPPED_ANNOTATIONS, metavar="DIR",
                        help=f"LLP's annotation folder ({', '.join(FILES.values())}; default: the copy avvp "
                             "ships, data/llp)")
    parser.add_argument("--method", help="the checkpoint's method (default: recognised from the released "
                                         "formats and networks, or from a run's training objective)")
    parser.add_argument("--protocol", default="as_published", metavar="NAME",
                        help="the evaluation protocol (default: as_published, the method's own rule; avvp: the "
                             "seed's rule on the 2024 annotations)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--out", type=Path, help="also write the metrics .json")


# A run's checkpoint names its training objective; the method whose final stage trains with it.
OBJECTIVE_METHODS = {"HanObjective": "han", "JointDenoisingObjective": "jomold", "CmpaeObjective": "cmpae",
                     "CoLeaFObjective": "coleaf", "ValorObjective": "valor"}


def checkpoint_method(payload: dict[str, Any], network: str) -> str:
    """The method a checkpoint belongs to: its network, its training objective, or the released
    format's modules (MA-MMIL's attention modules; JoMoLD's network keeps none of HAN's unused ones)."""
    if network != "han":
        return network
    objective = payload.get("objective", {}).get("objective")
    if objective == "HanContrastiveObjective" and payload.get("targets_sha256"):
        return "ma_mmil"  # stage 3: the contrastive loss on refined labels
    if objective is not None:
        if objective not in OBJECTIVE_METHODS:
            raise ValueError(f"cannot tell which method trained with objective {objective}: give --method")
        return OBJECTIVE_METHODS[objective]
    state = payload["state_dict"]
    if any(k.startswith("t_att.") for k in state):
        return "ma_mmil"
    return "han" if any(k.startswith("cmt_encoder.") for k in state) else "jomold"


def _files(root: Path) -> dict[str, Path]:
    files = {name: root / rel for name, rel in FILES.items()}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"--annotations {root}: missing {', '.join(missing)}")
    return files


def run(args: argparse.Namespace) -> None:
    import json
    import tempfile

    from avvp.base.atomic import atomic_output
    from avvp.base.device import resolve_device
    from avvp.cli.common import split_and_pack
    from avvp.cli.evaluate import annotation_version, scored_inputs
    from avvp.evaluation.annotations import Vocabulary
    from avvp.evaluation.calibration import protocol_thresholds
    from avvp.evaluation.protocols import protocol
    from avvp.evaluation.scores import evaluate_outputs
    from avvp.model.checkpoint import load_han
    from avvp.model.inference import predict_packed
    from avvp.model.predictions import save_predictions
    from avvp.reporting.leaderboard import published_by_method

    files = _files(args.annotations)
    device = resolve_device(args.device)
    model, classes, payload = load_han(args.checkpoint, None, device)
    method = args.method or checkpoint_method(payload, model.options().get("network", "han"))
    rule = protocol(args.protocol, method)
    vocab = Vocabulary(tuple(classes))
    with tempfile.TemporaryDirectory(prefix="evaluate-checkpoint-") as scratch:
        scored = {}
        for split in ("val", "test") if rule.calibrated else ("test",):
            _, packed = split_and_pack(files[split], vocab, args, None, Path(scratch) / split, model.features,
                                       pooled=model.pools_first)
            predictions = Path(scratch) / f"{split}.npz"
            save_predictions(predictions, predict_packed(model, packed, device))
            view = argparse.Namespace(predictions=predictions, split_csv=files[split], audio_csv=files["audio"],
                                      visual_csv=files["visual"], legacy_audio_csv=files["legacy"], known_csv=[])
            scored[split] = scored_inputs(view, rule)
        thresholds = None
        if rule.calibrated:
            thresholds = protocol_thresholds(rule, scored["val"].predictions.outputs(rule), scored["val"].gt)
        test = scored["test"]
        metrics = evaluate_outputs(test.predictions.outputs(rule), test.gt, rule, thresholds, test.classes)
        metrics["protocol"]["annotations_scored"] = annotation_version(rule, test, view)
    metrics.update(n_split=test.n_split, unscored=test.unscored, method=method, checkpoint=str(args.checkpoint))
    if args.out:
        with atomic_output(args.out, "w") as fh:
            json.dump(metrics, fh, indent=2)
            fh.write("\n")
    print(_table(metrics, published_by_method().get(method), method, rule.name), end="")


def _table(metrics: dict[str, Any], published: dict[str, Any] | None, method: str, rule: str) -> str:
    """The ten numbers, the published ones beside them ("-" where the paper gives none)."""
    from avvp.base.protocol import LEVELS, SCORES

    paper = published["paper"] if published else f"{method}: no published numbers"
    lines = [f"{method} under {rule}: {metrics['n_videos']} of {metrics['n_split']} test videos scored",
             f"{'':28}{'this checkpoint':>16}  {'published':>9}  ({paper})"]
    for level in LEVELS:
        for score in SCORES:
            theirs = (published or {}).get(level, {}).get(score)
            lines.append(f"{level + ' ' + score:28}{metrics[level][score]:>16.2f}  "
                         f"{'-' if theirs is None else f'{theirs:.1f}':>9}")
    return "\n".join(lines) + "\n"
