"""The two registries from a user's side: a new feature kind and a new training stage, added through
the public API only (no avvp module edited), run through extract -> pack -> train -> predict ->
evaluate; the config schema and the command line pick them up."""
from __future__ import annotations

import json
import math
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from avvp.cli import main
from avvp.extractors import AUDIO, PUBLISHED, Extractor, FeatureKind, feature_kinds, register, unregister
from avvp.extractors.vggish import mel_matrix, mono_16k, read_wav
from avvp.methods import stages as stage_registry
from avvp.methods.settings import TrainSettings
from avvp.methods.stages import Method, TrainingStage, register_method, register_stage
from workflow_helpers import small_demo_dataset

N_MFCC = 40
RATE = 16000


# --- a toy feature kind: 40 MFCCs per one-second segment of the WAV, no network ---------------------

def mfcc_rows(wav: Path) -> np.ndarray:
    """(10, 40) float32: mean MFCCs (DCT-II of 64 log-mel bands, 25 ms frames) per second."""
    signal = mono_16k(*read_wav(wav))
    signal = np.pad(signal, (0, max(0, 10 * RATE - len(signal))))[: 10 * RATE]
    frames = signal.reshape(10, -1, 400)  # 40 frames of 25 ms per second
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(400), 512))
    log_mel = np.log(spectrum @ mel_matrix() + 0.01)  # (10, 40, 64)
    n = log_mel.shape[-1]
    dct = np.cos(math.pi / n * (np.arange(n)[None, :] + 0.5) * np.arange(N_MFCC)[:, None])  # (40, 64)
    return (log_mel @ dct.T).mean(axis=1).astype(np.float32)


TOY_EXTRACTOR = Extractor(
    build=torch.nn.Identity,
    random=lambda seed: (torch.nn.Identity(), "no network: MFCCs computed from the WAV"),
    features=lambda model, device: model,
    load=mfcc_rows,
    prepare=lambda rows: rows,
)
TOY_KIND = FeatureKind(name="mfcc40", rows=10, dim=N_MFCC, medium=AUDIO, modality="audio", han_layer="fc_mfcc",
                       description="40 MFCCs per second (a test kind)", extractor=TOY_EXTRACTOR)


@pytest.fixture
def toy_kind() -> Iterator[FeatureKind]:
    register(TOY_KIND)
    try:
        yield TOY_KIND
    finally:
        unregister(TOY_KIND.name)


def write_tone(path: Path, freq: float, seconds: float = 10.0) -> Path:
    t = np.arange(int(seconds * RATE)) / RATE
    samples = (0.3 * np.sin(2 * math.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(samples.tobytes())
    return path


def random_features(root: Path, names: list[str], kinds: tuple[str, ...], seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for kind in kinds:
        spec = feature_kinds()[kind]
        (root / kind).mkdir(parents=True, exist_ok=True)
        for name in names:
            np.save(root / kind / f"{name[:11]}.npy", rng.random(spec.shape, dtype=np.float32))


def test_a_registered_kind_runs_from_extraction_to_the_ten_numbers(tmp_path: Path, toy_kind: FeatureKind) -> None:
    data = tmp_path / "data"
    chosen = small_demo_dataset(data, {"train": 12, "val": 4, "test": 4})
    names = list(chosen)
    features = tmp_path / "features"
    random_features(features, names, PUBLISHED)
    wavs = [write_tone(tmp_path / f"{name}.wav", 200 + 40 * i) for i, name in enumerate(names)]
    assert main(["extract", "--kind", toy_kind.name, "--out-dir", str(features), "--no-progress",
                 *map(str, wavs)]) == 0
    assert np.load(features / toy_kind.name / f"{names[0][:11]}.npy").shape == (10, N_MFCC)
    record = json.loads((features / toy_kind.name / "weights.json").read_text())
    assert record["kind"] == toy_kind.name and record["weights"] == "random"

    feature_set = ",".join(("vggish", toy_kind.name, "res152", "r2plus1d_18"))
    packs = tmp_path / "packed"
    for split in ("train", "val", "test"):
        assert main(["pack", "--split-csv", str(data / f"{split}.csv"), "--features", str(features),
                     "--model-features", feature_set, "--out-dir", str(packs / split)]) == 0
    index = json.loads((packs / "train" / "index.json").read_text())
    assert index["kinds"] == feature_set.split(",")
    annotations = ["--train-csv", str(data / "train.csv"), "--val-csv", str(data / "val.csv"),
                   "--audio-csv", str(data / "eval_audio.csv"), "--visual-csv", str(data / "eval_visual.csv")]
    run = tmp_path / "run"
    assert main(["train", "--train-pack", str(packs / "train"), "--val-pack", str(packs / "val"), *annotations,
                 "--model-features", feature_set, "--epochs", "2", "--batch-size", "4", "--device", "cpu",
                 "--no-progress", "--out-dir", str(run)]) == 0
    payload = torch.load(run / "model.pt", weights_only=True)
    assert payload["model_options"]["features"] == feature_set.split(",")
    assert {"fc_mfcc.weight", "fc_fusion_audio.weight", "fc_a.weight", "fc_fusion.weight"} <= set(payload["state_dict"])
    assert main(["predict", "--checkpoint", str(run / "model.pt"), "--pack", str(packs / "test"),
                 "--split-csv", str(data / "test.csv"), "--device", "cpu", "--out", str(tmp_path / "test.npz")]) == 0
    assert main(["evaluate", "--predictions", str(tmp_path / "test.npz"), "--split-csv", str(data / "test.csv"),
                 "--audio-csv", str(data / "eval_audio.csv"), "--visual-csv", str(data / "eval_visual.csv"),
                 "--out", str(tmp_path / "test.json")]) == 0
    metrics = json.loads((tmp_path / "test.json").read_text())
    assert metrics["n_videos"] == 4
    assert all(0 <= metrics[level]["type_at_av"] <= 100 for level in ("segment_level", "event_level"))


def test_a_feature_set_needs_both_modalities_and_known_kinds() -> None:
    from avvp.extractors import feature_set

    with pytest.raises(ValueError, match="no visual kind"):
        feature_set(["vggish"])
    with pytest.raises(ValueError, match="unknown feature kind 'nope'.*vggish"):
        feature_set(["vggish", "nope"])


# --- a toy stage: HAN's loss without label smoothing, plus a weight penalty -----------------------

class PenalisedObjective:
    """HAN's loss plus `weight` times the squared norm of the classifier (a stand-in for a new loss)."""

    def __init__(self, smoothing: float, weight: float) -> None:
        self.smoothing, self.weight = smoothing, weight

    def __call__(self, model, batch):
        from avvp.methods.objectives import han_loss

        loss = han_loss(model(*batch.inputs), batch.labels, self.smoothing, batch.audio_labels, batch.visual_labels)
        return loss + self.weight * model.fc_prob.weight.square().sum()

    def describe(self) -> dict:
        return {"objective": "PenalisedObjective", "smoothing": self.smoothing, "weight": self.weight}


@pytest.fixture
def toy_stage() -> Iterator[TrainingStage]:
    spec = TrainingStage(id="han_penalised", description="HAN with a weight penalty (a test stage)",
                         defaults=TrainSettings(epochs=2, batch_size=4, visual_smoothing=0.0, keep="final"),
                         objective=lambda settings, inputs, classes: PenalisedObjective(settings.visual_smoothing, 1e-3))
    register_stage(spec)
    register_method(Method("han_penalised", "HAN (penalised)", ("han_penalised",)))
    try:
        yield spec
    finally:
        stage_registry.unregister("han_penalised")


def test_a_registered_stage_trains_from_the_command_line_and_enters_the_schema(tmp_path: Path,
                                                                              toy_stage: TrainingStage) -> None:
    from avvp.workflow.config_schema import config_schema

    data = tmp_path / "data"
    chosen = small_demo_dataset(data, {"train": 8, "val": 4, "test": 2})
    features = tmp_path / "features"
    random_features(features, list(chosen), PUBLISHED)
    run = tmp_path / "run"
    assert main(["train", "--stage", toy_stage.id, "--features", str(features), "--train-csv",
                 str(data / "train.csv"), "--val-csv", str(data / "val.csv"), "--audio-csv",
                 str(data / "eval_audio.csv"), "--visual-csv", str(data / "eval_visual.csv"), "--device", "cpu",
                 "--no-progress", "--out-dir", str(run)]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary == {**summary, "kept_epoch": 2, "keep": "final", "epochs": 2}
    payload = torch.load(run / "model.pt", weights_only=True)
    assert payload["objective"] == {"objective": "PenalisedObjective", "smoothing": 0.0, "weight": 1e-3}
    assert payload["config"]["visual_smoothing"] == 0.0 and payload["config"]["batch_size"] == 4

    schema = config_schema(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")
    section = schema["properties"]["stages"]["properties"][toy_stage.id]
    assert set(section["properties"]) == set(TrainSettings.__dataclass_fields__)
    assert all(p["default"] is None for p in section["properties"].values())  # the spec holds the numbers
    assert "han_penalised" in schema["definitions"]["method"]["enum"]


def test_a_stage_option_it_does_not_have_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["train", "--stage", "han", "--faithful", "--features", str(tmp_path), "--train-csv", "x",
                   "--val-csv", "x", "--audio-csv", "x", "--visual-csv", "x", "--out-dir", str(tmp_path / "o")])
    assert status == 1
    assert "stage han has no setting(s) ['--faithful']" in capsys.readouterr().err


def test_a_method_whose_stage_needs_a_later_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="needs ma_mmil_refine, which does not come before it"):
        register_method(Method("backwards", "Backwards", ("ma_mmil_stage3", "ma_mmil_refine")))


def test_a_seedless_pass_may_need_only_seedless_stages() -> None:
    """UWAV's labels pass, run once for all seeds, reads the generator pretrained once: such an input
    is allowed, one from a stage that differs per seed is not."""
    from avvp.methods.stages import Pass, StageInput
    from avvp.methods.valor import LabelSettings

    needs_labels = Pass("reads_labels", "reads VALOR's labels", LabelSettings(), lambda job: "", per_seed=False,
                        needs=(StageInput("labels", "valor_labels"),))
    needs_model = Pass("reads_model", "reads HAN's model", LabelSettings(), lambda job: "", per_seed=False,
                       needs=(StageInput("model", "han", "model.pt"),))
    register_stage(needs_labels)
    register_stage(needs_model)
    try:
        assert [i.name for i in needs_labels.inputs] == ["labels"]
        register_method(Method("labels_then_han", "L", ("valor_labels", "reads_labels", "han")))
        with pytest.raises(ValueError, match="reads_model, run once for all seeds, needs han, which differs per seed"):
            register_method(Method("han_then_model", "M", ("han", "reads_model")))
    finally:
        for name in ("reads_labels", "reads_model", "labels_then_han"):
            stage_registry.unregister(name)


def test_a_pass_that_chooses_on_the_validation_split_gets_it_from_the_command_line(tmp_path: Path,
                                                                                  capsys: pytest.CaptureFixture) -> None:
    """`avvp pass` hands the four validation options to a pass with validation=True as
    PassJob.validation, asks for all four, and refuses them for a pass that reads no validation split."""
    from avvp.methods.stages import Pass, ValidationData
    from avvp.methods.valor import LabelSettings

    seen: list[ValidationData | None] = []

    def remember(job) -> str:
        seen.append(job.validation)
        (job.out_dir / "done.txt").write_text("ok\n")
        return "remembered"

    register_stage(Pass("chooses", "chooses on the validation split", LabelSettings(), remember, per_seed=False,
                        validation=True))
    register_stage(Pass("plain", "reads no validation split", LabelSettings(), remember, per_seed=False))
    files = {flag: tmp_path / name for flag, name in (("--val-pack", "val_pack"), ("--val-csv", "val.csv"),
                                                       ("--audio-csv", "audio.csv"), ("--visual-csv", "visual.csv"))}
    options = [str(part) for flag, path in files.items() for part in (flag, path)]
    common = ["pass", "--train-pack", str(tmp_path / "train_pack"), "--device", "cpu"]
    try:
        assert main([*common, "--stage", "chooses", "--out-dir", str(tmp_path / "a"), *options]) == 0
        assert seen == [ValidationData(*files.values())] and (tmp_path / "a" / "done.txt").is_file()
        assert main([*common, "--stage", "chooses", "--out-dir", str(tmp_path / "b"), *options[:4]]) == 1
        assert "chooses on the validation split: give --audio-csv, --visual-csv" in capsys.readouterr().err
        assert main([*common, "--stage", "plain", "--out-dir", str(tmp_path / "c"), *options[:2]]) == 1
        assert "pass plain reads no validation split: leave out --val-pack" in capsys.readouterr().err
        assert main([*common, "--stage", "plain", "--out-dir", str(tmp_path / "c")]) == 0 and seen[-1] is None
    finally:
        stage_registry.unregister("chooses")
        stage_registry.unregister("plain")
