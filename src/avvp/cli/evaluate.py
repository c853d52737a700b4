"""`avvp evaluate`: score a predictions file against a split's dense annotations (PROTOCOL §5).

Videos without predictions (clips that could not be obtained) are not scored and are listed in the
metrics as `unscored`, so `n_videos` says how much of the split the numbers cover.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from avvp.cli.common import add_required_paths, add_threshold_args

HELP = "score predictions: the ten LLP numbers, per-class F, annotation warnings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_required_paths(parser, {"--predictions": "predictions .npz", "--split-csv": "weak split file to score",
                                "--audio-csv": "dense audio events", "--visual-csv": "dense visual events",
                                "--out": "metrics .json to write"})
    add_threshold_args(parser)
    parser.add_argument("--events-out", type=Path, help="also write the predicted events (.tsv)")
    parser.add_argument(
        "--known-csv", type=Path, nargs="+", action="extend", default=[], metavar="CSV",
        help="other split files of the data set (e.g. AVVP_dataset_full.csv): dense rows in none of "
        "them are reported as orphans; without it they only count as rows outside the split",
    )


def run(args: argparse.Namespace) -> None:
    import json

    from avvp.evaluation.annotations import GroundTruth, Vocabulary, ground_truth, read_dense, read_weak
    from avvp.evaluation.scores import align_predictions, evaluate_arrays, segment_decisions
    from avvp.base.protocol import LEVELS, SCORES
    from avvp.evaluation.events import event_rows, write_events
    from avvp.base.atomic import atomic_output
    from avvp.model.predictions import load_predictions

    preds = load_predictions(args.predictions)
    vocab = Vocabulary(preds.classes)
    split = read_weak(args.split_csv, vocab)
    known = None
    if args.known_csv:
        known = set(split.filenames).union(*(read_weak(path, vocab).filenames for path in args.known_csv))
    gt = ground_truth(split, read_dense(args.audio_csv, vocab), read_dense(args.visual_csv, vocab), known)
    try:
        pred_rows, split_rows, unscored = align_predictions(preds.video_ids, split.filenames)
    except ValueError as err:
        raise ValueError(f"{args.predictions} vs {args.split_csv}: {err}") from None
    if len(pred_rows) == 0:
        raise ValueError(f"{args.predictions}: none of its videos is in {args.split_csv}")
    global_prob, frame_prob = preds.global_prob[pred_rows], preds.frame_prob[pred_rows]
    scored_gt = GroundTruth(gt.audio[split_rows], gt.visual[split_rows], gt.report)
    try:
        metrics = evaluate_arrays(global_prob, frame_prob, scored_gt, args.frame_threshold, args.global_threshold,
                                  vocab.classes)
    except ValueError as err:  # predictions that do not fit the protocol (e.g. another segment count)
        raise ValueError(f"{args.predictions}: {err}") from None
    metrics.update(n_split=len(split.filenames), unscored=unscored)
    with atomic_output(args.out, "w") as fh:
        json.dump(metrics, fh, indent=2)
        fh.write("\n")
    if args.events_out:
        scored = [split.filenames[i] for i in split_rows]
        pred_a, pred_v = segment_decisions(
            global_prob, frame_prob, args.frame_threshold, args.global_threshold
        )
        rows = event_rows(scored, vocab.classes, {"audio": pred_a, "visual": pred_v})
        write_events(args.events_out, rows)
    print(f"scored {metrics['n_videos']} of {metrics['n_split']} videos -> {args.out}")
    for level in LEVELS:
        print(f"{level:>13}: " + "  ".join(f"{k} {metrics[level][k]:.2f}" for k in SCORES))
