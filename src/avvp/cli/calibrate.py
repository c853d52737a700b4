"""`avvp calibrate`: choose a protocol's per-class gate thresholds on the validation split.

CMPAE's rule (`cmpae_as_published`) gates visual events with one threshold per class, chosen on
the validation split's dense labels by a grid search (its `--mode select_thresholds`: one class at
a time, the others at the default, the best value kept, a tie going to the later value). This runs
the same search with avvp's vectorised evaluator, on any method's validation predictions, and
writes the thresholds for `avvp evaluate --calibration`. Nothing is retrained: a protocol change
only calibrates and evaluates again.
"""
from __future__ import annotations

import argparse

from avvp.cli.common import add_required_paths
from avvp.cli.evaluate import add_known_args, add_protocol_args, chosen_protocol, scored_inputs

HELP = "choose a protocol's per-class gate thresholds on the validation split (CMPAE's select_thresholds)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_required_paths(parser, {"--predictions": "validation predictions .npz",
                                "--split-csv": "the validation split file",
                                "--audio-csv": "dense audio events", "--visual-csv": "dense visual events",
                                "--out": "thresholds .json to write (read by avvp evaluate --calibration)"})
    add_protocol_args(parser)
    add_known_args(parser)


def run(args: argparse.Namespace) -> None:
    import numpy as np

    from avvp.evaluation.calibration import protocol_thresholds
    from avvp.evaluation.calibration_file import write_thresholds

    rule = chosen_protocol(args)
    if not rule.calibrated:
        raise ValueError(f"protocol {rule.name} has no calibrated gate: nothing to choose")
    scored = scored_inputs(args, rule)
    try:
        thresholds = protocol_thresholds(rule, scored.predictions.outputs(rule), scored.gt)
    except ValueError as err:
        raise ValueError(f"{args.predictions}: {err}") from None
    write_thresholds(args.out, rule.name, scored.classes, {m: np.asarray(t).tolist() for m, t in thresholds.items()},
                     {"predictions": str(args.predictions), "split": str(args.split_csv),
                      "videos": len(scored.filenames), "annotations": rule.annotations})
    for modality, values in thresholds.items():
        print(f"{rule.name}: {modality} gate thresholds " + " ".join(f"{v:.2f}" for v in np.asarray(values)))
    print(f"-> {args.out}")
