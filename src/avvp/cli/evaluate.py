"""`avvp evaluate`: score a predictions file against a split's dense annotations (PROTOCOL §5)
under an evaluation protocol (PROTOCOL §7; docs/METRICS.md lists them).

A protocol is the rule that turns probabilities into segment decisions: `avvp` (the default, the
seed's rule on the 2024 annotations, the same for every method), a method's own released rule
(`jomold_as_published`, `as_published --method jomold`, ...), or one of them with some parts changed
by the options below. Videos without predictions (clips that could not be obtained) are not scored
and are listed in the metrics as `unscored`, so `n_videos` says how much of the split the numbers
cover.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from avvp.cli.common import add_required_paths

if TYPE_CHECKING:
    from avvp.evaluation.annotations import GroundTruth
    from avvp.evaluation.protocols import Protocol
    from avvp.model.predictions import Predictions

HELP = "score predictions under an evaluation protocol: the ten LLP numbers, per-class F, annotation warnings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_required_paths(parser, {"--predictions": "predictions .npz", "--split-csv": "weak split file to score",
                                "--audio-csv": "dense audio events", "--visual-csv": "dense visual events",
                                "--out": "metrics .json to write"})
    add_protocol_args(parser)
    parser.add_argument("--calibration", type=Path, metavar="JSON",
                        help="per-class gate thresholds from `avvp calibrate` (protocols with calibrated gates)")
    parser.add_argument("--events-out", type=Path, help="also write the predicted events (.tsv)")
    add_known_args(parser)


def add_protocol_args(parser: argparse.ArgumentParser) -> None:
    """The protocol, the parts that change it, and the legacy annotation file."""
    group = parser.add_argument_group("protocol (docs/METRICS.md)")
    group.add_argument("--protocol", default="avvp", metavar="NAME",
                       help="avvp (default), as_published (with --method), or a built-in rule such as "
                            "jomold_as_published, cmpae_as_published, uwav_as_published")
    group.add_argument("--method", metavar="NAME", help="whose published rule `as_published` means")
    group.add_argument("--define", metavar="JSON",
                       help='define --protocol NAME as a built-in rule with parts replaced, e.g. '
                            '\'{"base": "jomold_as_published", "frame_threshold": 0.4}\' (the workflow\'s evaluate.define)')
    group.add_argument("--gate", choices=("fused", "modality"),
                       help="video-level gate: the fused global probability, or a_prob / v_prob per modality")
    group.add_argument("--global-threshold", type=float, metavar="P",
                       help="gate threshold of both modalities (the protocol's, 0.5 for avvp, when not given)")
    group.add_argument("--frame-threshold", type=float, metavar="P",
                       help="segment threshold of both modalities (the protocol's, 0.5 for avvp, when not given)")
    group.add_argument("--strict", action=argparse.BooleanOptionalAction, default=None,
                       help="compare with > instead of >= (UWAV's rule)")
    group.add_argument("--forward", choices=("as_trained", "cross_modal_off", "mix"),
                       help="which forward pass: the model as trained, without cross-modal attention, or "
                            "CMPAE's mix of both")
    group.add_argument("--legacy-audio-csv", type=Path, metavar="CSV",
                       help="the audio annotations before their 2024 fix (data/llp/legacy/AVVP_eval_audio_2020.csv),"
                            " scored instead of --audio-csv under a protocol that asks for the legacy version")


def add_known_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--known-csv", type=Path, nargs="+", action="extend", default=[], metavar="CSV",
        help="other split files of the data set (e.g. AVVP_dataset_full.csv): dense rows in none of "
        "them are reported as orphans; without it they only count as rows outside the split",
    )


def chosen_protocol(args: argparse.Namespace) -> Protocol:
    """The --protocol rule with the parts the options change."""
    import json

    from avvp.evaluation.protocols import protocol

    defined = None
    if args.define:
        try:
            defined = {args.protocol: json.loads(args.define)}
        except json.JSONDecodeError as err:
            raise ValueError(f"--define: not a JSON object ({err})") from None
        if not isinstance(defined[args.protocol], dict):
            raise ValueError("--define: not a JSON object")
    rule = protocol(args.protocol, args.method, defined)
    both = {"gate_threshold": args.global_threshold, "frame_threshold": args.frame_threshold}
    return rule.with_parts(gate=args.gate, strict=args.strict, forward=args.forward,
                           **{k: (v, v) if v is not None else None for k, v in both.items()})


@dataclass(frozen=True)
class Scored:
    """A predictions file lined up with a split's ground truth: what both sides of scoring need."""

    predictions: Predictions  # the rows of the scored videos, in the split's order
    gt: GroundTruth
    classes: tuple[str, ...]
    filenames: list[str]  # the scored videos
    n_split: int
    unscored: list[str]
    audio_csv: Path  # the audio annotations scored (the legacy file under a legacy protocol)


def scored_inputs(args: argparse.Namespace, rule: Protocol) -> Scored:
    """Read the predictions, the split and its dense annotations (the version `rule` asks for)."""
    from avvp.evaluation.annotations import GroundTruth, Vocabulary, ground_truth, read_dense, read_weak
    from avvp.evaluation.scores import align_predictions
    from avvp.model.predictions import load_predictions, select_rows

    preds = load_predictions(args.predictions)
    vocab = Vocabulary(preds.classes)
    split = read_weak(args.split_csv, vocab)
    known = None
    if args.known_csv:
        known = set(split.filenames).union(*(read_weak(path, vocab).filenames for path in args.known_csv))
    legacy = rule.annotations == "legacy" and args.legacy_audio_csv is not None
    audio_csv = args.legacy_audio_csv if legacy else args.audio_csv
    gt = ground_truth(split, read_dense(audio_csv, vocab, broken_names_are_orphans=legacy),
                      read_dense(args.visual_csv, vocab), known)
    try:
        pred_rows, split_rows, unscored = align_predictions(preds.video_ids, split.filenames)
    except ValueError as err:
        raise ValueError(f"{args.predictions} vs {args.split_csv}: {err}") from None
    if len(pred_rows) == 0:
        raise ValueError(f"{args.predictions}: none of its videos is in {args.split_csv}")
    return Scored(select_rows(preds, pred_rows), GroundTruth(gt.audio[split_rows], gt.visual[split_rows], gt.report),
                  vocab.classes, [split.filenames[i] for i in split_rows], len(split.filenames), unscored, audio_csv)


def annotation_version(rule: Protocol, scored: Scored, args: argparse.Namespace) -> str:
    """The annotation version actually scored, said plainly where it is not the one the rule asks for."""
    if rule.annotations == "legacy" and scored.audio_csv == args.audio_csv:
        print(f"note: {rule.name} was published on the legacy audio annotations; none given "
              "(--legacy-audio-csv), so the current file is scored")
        return "current (no legacy file given)"
    return rule.annotations


def run(args: argparse.Namespace) -> None:
    import json

    from avvp.base.atomic import atomic_output
    from avvp.base.protocol import LEVELS, SCORES
    from avvp.evaluation.calibration_file import read_thresholds
    from avvp.evaluation.events import event_rows, write_events
    from avvp.evaluation.protocols import decide
    from avvp.evaluation.scores import evaluate_outputs

    rule = chosen_protocol(args)
    scored = scored_inputs(args, rule)
    thresholds = None
    if rule.calibrated:
        if args.calibration is None:
            raise ValueError(f"protocol {rule.name} calibrates its {' and '.join(rule.calibrated)} gate on the "
                             "validation split: give --calibration (from `avvp calibrate`)")
        thresholds = read_thresholds(args.calibration, scored.classes, rule.calibrated)
    outputs = scored.predictions.outputs(rule)
    try:
        metrics = evaluate_outputs(outputs, scored.gt, rule, thresholds, scored.classes)
    except ValueError as err:  # predictions that do not fit the protocol (e.g. another segment count)
        raise ValueError(f"{args.predictions}: {err}") from None
    metrics["protocol"]["annotations_scored"] = annotation_version(rule, scored, args)
    metrics.update(n_split=scored.n_split, unscored=scored.unscored)
    with atomic_output(args.out, "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    if args.events_out:
        pred_a, pred_v = decide(rule, outputs, thresholds)
        write_events(args.events_out, event_rows(scored.filenames, scored.classes, {"audio": pred_a, "visual": pred_v}))
    print(f"{rule.name}: scored {metrics['n_videos']} of {metrics['n_split']} videos -> {args.out}")
    for level in LEVELS:
        print(f"{level:>13}: " + "  ".join(f"{k} {metrics[level][k]:.2f}" for k in SCORES))
