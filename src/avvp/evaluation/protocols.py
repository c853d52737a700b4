"""Evaluation protocols: the rule that turns a model's probabilities into segment decisions.

LLP papers score the same ten numbers (PROTOCOL §5) but feed them different decisions
(PROTOCOL §7): which video-level probability gates a class (the fused `global_prob`, or each
modality's own `a_prob` / `v_prob`), at which thresholds and with `>=` or `>`, the frame thresholds,
per-class thresholds tuned on validation, which forward pass (the model as trained, without its
cross-modal attention, or CMPAE's mix of both) and which version of the audio annotations. A
`Protocol` names one such setting so that every number says how it was measured. `avvp` (the
seed's rule on the 2024 annotations) is the default for every method; `<method>_as_published` is
the rule of that method's released code.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MODALITIES = ("audio", "visual")
GATES = ("fused", "modality")
FORWARDS = ("as_trained", "cross_modal_off", "mix")
ANNOTATIONS = ("2024", "legacy")
AS_PUBLISHED = "as_published"  # in a config: each method's own rule
AS_PUBLISHED_TITLE = "as published: each method under its own paper's rule"
CALIBRATED = "calibrated"  # a gate threshold chosen per class on the validation split


@dataclass(frozen=True)
class Protocol:
    """One evaluation rule. A decision for class c, segment t and modality m is
    frame_prob[t, m, c] (>= or >) frame_threshold[m] AND gate_prob[m][c] (>= or >) gate_threshold[m][c],
    where gate_prob is `global_prob` for both modalities (`fused`) or `a_prob` / `v_prob` (`modality`).

    A gate threshold is a number or `calibrated`: per class, chosen on the validation split by
    `avvp calibrate` (starting from `calibration_default`). `forward` picks the probabilities:
    the model as trained, the pass with cross-modal attention switched off, or `mix`:
    `mix_weight` x as trained + (1 - mix_weight) x off (CMPAE's `fuse_ratio`)."""

    name: str
    title: str
    gate: str = "fused"
    gate_threshold: tuple[float | str, float | str] = (0.5, 0.5)  # audio, visual
    frame_threshold: tuple[float, float] = (0.5, 0.5)  # audio, visual
    strict: bool = False  # `>` instead of `>=` (UWAV)
    forward: str = "as_trained"
    mix_weight: float = 0.7
    calibration_default: float = 0.45
    annotations: str = "2024"
    source: str = ""  # where the rule comes from (released file and function)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(f"protocol {self.name!r}: {problem}")

    @property
    def calibrated(self) -> tuple[str, ...]:
        """The modalities whose gate thresholds `calibrate` chooses per class."""
        return tuple(m for m, t in zip(MODALITIES, self.gate_threshold) if t == CALIBRATED)

    @property
    def needs(self) -> tuple[str, ...]:
        """The prediction arrays this rule reads beyond global and frame probabilities."""
        out = ("a_prob", "v_prob") if self.gate == "modality" else ()
        return out + (("cross_modal_off",) if self.forward != "as_trained" else ())

    def describe(self) -> dict[str, Any]:
        """The definition as JSON (metrics files record it beside the numbers it produced)."""
        out = dataclasses.asdict(self)
        out["gate_threshold"] = dict(zip(MODALITIES, self.gate_threshold))
        out["frame_threshold"] = dict(zip(MODALITIES, self.frame_threshold))
        out["compare"] = ">" if out.pop("strict") else ">="
        if self.forward != "mix":
            del out["mix_weight"]
        if not self.calibrated:
            del out["calibration_default"]
        return out

    def with_parts(self, **parts: Any) -> Protocol:
        """This rule with some parts replaced (`avvp evaluate` options); a changed rule is renamed."""
        changed = {k: v for k, v in parts.items() if v is not None and getattr(self, k) != v}
        if not changed:
            return self
        label = ", ".join(f"{k}={_text(v)}" for k, v in sorted(changed.items()))
        return dataclasses.replace(self, **changed, name=f"{self.name}+custom", title=f"{self.title}; {label}")


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _problem(p: Protocol) -> str | None:
    """What makes a protocol unusable, or None."""
    if p.gate not in GATES:
        return f"gate must be one of {GATES}, not {p.gate!r}"
    if p.forward not in FORWARDS:
        return f"forward must be one of {FORWARDS}, not {p.forward!r}"
    if p.annotations not in ANNOTATIONS:
        return f"annotations must be one of {ANNOTATIONS}, not {p.annotations!r}"
    for name, pair in (("gate_threshold", p.gate_threshold), ("frame_threshold", p.frame_threshold)):
        if len(pair) != 2:
            return f"{name} needs an audio and a visual value, got {pair!r}"
        for value in pair:
            if value == CALIBRATED and name == "gate_threshold":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                return f"{name} values are probabilities in [0, 1]{' or calibrated' * (name == 'gate_threshold')}, got {value!r}"
    if not 0 <= p.mix_weight <= 1 or not 0 <= p.calibration_default <= 1:
        return "mix_weight and calibration_default are probabilities in [0, 1]"
    return None


SEED_RULE = "AVVP-ECCV20 main_avvp.py eval: o = global_prob >= 0.5; frame_prob >= 0.5"
BUILT_IN: dict[str, Protocol] = {p.name: p for p in (
    Protocol("avvp", "avvp: the seed's rule for every method, 2024 annotations",
             source=f"{SEED_RULE} (with the 2024 AVVP_eval_audio.csv, seed commit fde5611)"),
    Protocol("han_as_published", "HAN as published (ECCV 2020): fused gate >= 0.5, legacy annotations",
             annotations="legacy", source=SEED_RULE),
    Protocol("ma_mmil_as_published", "MA-MMIL as published (CVPR 2021): a_prob / v_prob gates >= 0.5, legacy",
             gate="modality", annotations="legacy",
             source="MA-MMIL step1_train_base_model/main_avvp.py and step3_retrain/main_avvp.py eval: "
                    "oa = a_prob >= 0.5, ov = v_prob >= 0.5; frame_prob >= 0.5"),
    Protocol("jomold_as_published", "JoMoLD as published (ECCV 2022): a_prob / v_prob gates >= 0.5, legacy",
             gate="modality", annotations="legacy",
             source="JoMoLD main.py eval: oa = a_prob >= 0.5, ov = v_prob >= 0.5; frame_prob >= 0.5; "
                    "with_ca as the model was trained (test_JoMoLD: on)"),
    Protocol("valor_as_published", "VALOR as published (NeurIPS 2023): fused gate >= 0.5, legacy annotations",
             annotations="legacy", source="VALOR main_avvp.py eval: global_prob >= 0.5; frame_prob >= 0.5"),
    Protocol("cmpae_as_published",
             "CMPAE as published (CVPR 2023): 0.7/0.3 mix of passes with and without cross-modal attention, "
             "audio gate a_prob >= 0.45, visual gate per class (calibrated), frames >= 0.25, legacy",
             gate="modality", gate_threshold=(0.45, CALIBRATED), frame_threshold=(0.25, 0.25), forward="mix",
             annotations="legacy",
             source="CMPAE main.py eval: a_prob/v_prob/frame_prob = 0.7 x with_ca + 0.3 x without; "
                    "oa = a_prob >= 0.45, ov = v_prob >= per-class thresholds (--mode select_thresholds, "
                    "default 0.45); frame_prob >= 0.25. CMPAE's network mixes its encoder's features 0.8/0.2 "
                    "inside its with_ca pass (avvp's cmpae network does too; for other networks the mix of the "
                    "two passes is an adaptation), and it calibrates on its epoch-8 model; avvp calibrates the "
                    "model it scores"),
    Protocol("coleaf_as_published",
             "CoLeaF as published (ECCV 2024): 0.7/0.3 mix of passes with and without cross-modal attention, "
             "a_prob / v_prob gates >= 0.52, frames >= 0.25, legacy",
             gate="modality", gate_threshold=(0.52, 0.52), frame_threshold=(0.25, 0.25), forward="mix",
             annotations="legacy",
             source="CoLeaF main.py eval: a_prob/v_prob/frame_prob = 0.7 x with_ca + 0.3 x without; oa = a_prob >= "
                    "0.52, ov = v_prob >= 0.52 (no thresholds file is read); frame_prob >= 0.25; its repository "
                    "ships the legacy AVVP_eval_audio.csv. Its main.py returns, and selects epochs by, its own "
                    "audible-only / visible-only scores; these are the standard ten numbers"),
    Protocol("uwav_as_published", "UWAV as published (CVPR 2025): fused gate > 0.5, frames > 0.5, legacy",
             strict=True, annotations="legacy",
             source="UWAV model/HAN.py get_pred: video_prob > 0.5; frame probability > 0.5"),
)}
# The method each published rule belongs to, for `as_published` (methods without one use the seed's).
PUBLISHED_RULE = {"han": "han_as_published", "ma_mmil": "ma_mmil_as_published", "jomold": "jomold_as_published",
                  "valor": "valor_as_published", "cmpae": "cmpae_as_published", "coleaf": "coleaf_as_published",
                  "uwav": "uwav_as_published"}


def protocol(name: str, method: str | None = None,
             defined: Mapping[str, Mapping[str, Any]] | None = None) -> Protocol:
    """The protocol called `name`: built in, defined in the config (`evaluate.define`), or
    `as_published`, which resolves to `method`'s own rule."""
    if name == AS_PUBLISHED:
        if method is None:
            raise ValueError("as_published names each method's own rule: say which method")
        return BUILT_IN[PUBLISHED_RULE.get(method, "han_as_published")]
    if defined and name in defined:
        return define(name, defined[name])
    if name not in BUILT_IN:
        known = sorted([*BUILT_IN, AS_PUBLISHED, *(defined or {})])
        raise ValueError(f"unknown evaluation protocol {name!r}; known: {', '.join(known)}")
    return BUILT_IN[name]


def define(name: str, fields: Mapping[str, Any]) -> Protocol:
    """A protocol from a config mapping: a `base` protocol's rule with some parts replaced."""
    fields = dict(fields)
    base_name = fields.pop("base", "avvp")
    if base_name not in BUILT_IN:
        raise ValueError(f"protocol {name!r}: base {base_name!r} is not a built-in protocol ({', '.join(BUILT_IN)})")
    base = BUILT_IN[base_name]
    for key in ("gate_threshold", "frame_threshold"):
        if key in fields and isinstance(fields[key], Mapping):
            fields[key] = tuple(fields[key][m] for m in MODALITIES)
        elif key in fields and not isinstance(fields[key], (list, tuple)):
            fields[key] = (fields[key], fields[key])
        elif key in fields:
            fields[key] = tuple(fields[key])
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(Protocol)})
    if unknown:
        raise ValueError(f"protocol {name!r}: unknown part(s) {unknown}")
    return dataclasses.replace(base, **{"title": name, "source": f"defined in the config, from {base.name}",
                                        **fields, "name": name})


@dataclass(frozen=True)
class Outputs:
    """The probabilities of one forward pass over N videos: `global_prob` (N, C), `frame_prob`
    (N, T, 2, C) ([:, :, 0] audio, [:, :, 1] visual), and the modality-wise video probabilities
    `a_prob`, `v_prob` (N, C), which prediction files written before protocols lack."""

    global_prob: np.ndarray
    frame_prob: np.ndarray
    a_prob: np.ndarray | None = None
    v_prob: np.ndarray | None = None

    def mixed(self, other: Outputs, weight: float) -> Outputs:
        """weight x self + (1 - weight) x other, array by array (CMPAE's fused passes)."""
        def mix(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
            return None if a is None or b is None else (weight * a + (1 - weight) * b).astype(np.float32)
        return Outputs(*(mix(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self)))


def decide(protocol: Protocol, outputs: Outputs,
           thresholds: Mapping[str, Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Predicted audio and visual events (N, C, T) bool of one forward pass's `outputs` under
    `protocol`; `thresholds` holds the per-class gate thresholds of its calibrated modalities."""
    if protocol.gate == "modality" and (outputs.a_prob is None or outputs.v_prob is None):
        raise ValueError(f"protocol {protocol.name} gates with a_prob and v_prob, which these predictions lack "
                         "(written by an avvp before protocols: predict again)")
    n_classes = np.shape(outputs.global_prob)[1]
    sources = (outputs.global_prob,) * 2 if protocol.gate == "fused" else (outputs.a_prob, outputs.v_prob)
    gate = []
    for modality, prob, threshold in zip(MODALITIES, sources, protocol.gate_threshold):
        if threshold == CALIBRATED:
            if not thresholds or modality not in thresholds:
                raise ValueError(f"protocol {protocol.name}: its {modality} gate thresholds are chosen on the "
                                 "validation split: give them (`avvp calibrate`)")
            threshold = np.asarray(thresholds[modality], dtype=np.float64)
            if threshold.shape != (n_classes,):
                raise ValueError(f"calibrated {modality} thresholds have shape {threshold.shape}, "
                                 f"the predictions {n_classes} classes")
        gate.append(compare(np.asarray(prob), threshold, protocol.strict))
    return decisions(outputs.frame_prob, gate[0], gate[1], protocol.frame_threshold, protocol.strict)


def compare(values: np.ndarray, threshold: float | np.ndarray, strict: bool) -> np.ndarray:
    """values > threshold (strict) or >= threshold."""
    return values > threshold if strict else values >= threshold


def decisions(frame_prob: np.ndarray, gate_a: np.ndarray, gate_v: np.ndarray,
              frame_threshold: tuple[float, float] = (0.5, 0.5), strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Predicted audio and visual events (N, C, T) bool: frame probabilities (N, T, 2, C) over
    their modality's threshold, kept where the modality's gate (N, C) is open."""
    frame_prob = np.asarray(frame_prob)
    out = []
    for index, gate in enumerate((gate_a, gate_v)):
        frames = compare(frame_prob[:, :, index, :], frame_threshold[index], strict)
        out.append(frames.transpose(0, 2, 1) & np.asarray(gate)[:, :, None])
    return out[0], out[1]
