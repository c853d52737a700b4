"""`avvp pass --stage ID`: a pass, a stage that trains no model of the run's seeds and writes its
folder: MA-MMIL's label refinement (`ma_mmil_refine`) and JoMoLD's noise ratios (`jomold_ratios`) with
the frozen model of an earlier stage, VALOR's zero-shot labels (`valor_labels`) without one, UWAV's
generator pretrained on a dense-label set (`uwav_pretrain`) and its pseudo labels with thresholds
chosen on the validation split (`uwav_labels`). OUT_DIR appears complete or not at all. `avvp refine`
is the command's former name, kept as an alias."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from avvp.methods.stages import Pass, ValidationData

HELP = "a pass that trains no seed's model (refined labels, noise ratios, zero-shot or generator labels)"


def _passes() -> list:
    from avvp.methods.stages import stages

    return [s for s in stages().values() if not s.trains]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from avvp.cli.stage_args import add_stage_args

    add_stage_args(parser, _passes())
    parser.add_argument("--train-pack", type=Path, help="the training split's `avvp pack` folder (every pass but "
                                                         "one that reads none, such as uwav_pretrain)")
    parser.add_argument("--out-dir", type=Path, required=True, help="the stage's folder")
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (default: 1)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group = parser.add_argument_group("the validation split (only for a pass that chooses something on it, "
                                      "such as UWAV's class-wise thresholds; all four)")
    for flag, what in VALIDATION_OPTIONS.items():
        group.add_argument(flag, type=Path, help=what)


VALIDATION_OPTIONS = {"--val-pack": "the validation split's `avvp pack` folder",
                      "--val-csv": "the validation split's weak labels (LLP: AVVP_val_pd.csv)",
                      "--audio-csv": "the segment-level audio annotations (LLP: AVVP_eval_audio.csv)",
                      "--visual-csv": "the segment-level visual annotations (LLP: AVVP_eval_visual.csv)"}


def validation_data(spec: Pass, args: argparse.Namespace) -> ValidationData | None:
    """The validation split of a pass that reads it (all four options), else None (none of them)."""
    from avvp.methods.stages import ValidationData

    given = {flag: getattr(args, flag[2:].replace("-", "_")) for flag in VALIDATION_OPTIONS}
    if not spec.validation:
        if any(v is not None for v in given.values()):
            raise ValueError(f"pass {spec.id} reads no validation split: leave out "
                             f"{', '.join(f for f, v in given.items() if v is not None)}")
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        raise ValueError(f"pass {spec.id} chooses on the validation split: give {', '.join(missing)}")
    return ValidationData(*given.values())


def run(args: argparse.Namespace) -> None:
    from avvp.cli.stage_args import stage_inputs, stage_settings
    from avvp.methods.passes import run_pass
    from avvp.methods.stages import PassJob, stage

    specs = _passes()
    spec = stage(args.stage)
    if spec.reads_train_pack and args.train_pack is None:
        raise ValueError(f"pass {spec.id} reads the packed training split: give --train-pack")
    job = PassJob(stage_settings(spec, args, specs), stage_inputs(spec, args, specs), args.train_pack,
                  args.out_dir, args.seed, args.device, validation=validation_data(spec, args))
    print(f"{spec.id}: {run_pass(spec, job)} -> {args.out_dir}")
