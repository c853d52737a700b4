"""Config -> the clip table, its shards, the annotation files, the runs and their stages, and the
rules' input functions.

Everything here is evaluated when the workflow is parsed, so the job graph (and every dry run) is
exact: shard membership is known before anything runs, and each per-shard rule receives its own
clip list as a parameter, so adding a clip changes the parameters of one shard only. Feature kinds
and stages come from avvp's registries (avvp.extractors, avvp.methods.stages): no kind or stage
is named here.
"""

import hashlib
import json
import shlex
import sys
from pathlib import Path

import dataclasses

from avvp.base.atomic import atomic_output
from avvp.base.files import VIDEO_SUFFIXES
from avvp.workflow.config_checks import (
    ConfigError,
    check_dataset,
    check_feature_sets,
    check_parse,
    check_protocols,
    check_variants,
    check_weights,
)
from avvp.workflow.experiment import check_targets, experiment_folder
from avvp.evaluation.protocols import protocol
from avvp.extractors import feature_kind, feature_kinds
from avvp.clips.ffmpeg import fidelity_warning
from avvp.methods.settings import option_flag
from avvp.methods.stages import method, stage, stages

EXPERIMENT = experiment_folder(
    config.get("experiment"), workflow.overwrite_configfiles, Path(workflow.basedir) / "config/config.yaml"
)
check_targets(sys.argv[1:], EXPERIMENT)  # the demo's results/metrics.json asked of another config


def out(path: str) -> str:
    """`path` in this config's experiment folder (results/ or results/<experiment>/)."""
    return f"{EXPERIMENT}/{path}"


SPLITS = ("train", "val", "test")
DATASET = config["dataset"]
MODE = DATASET["mode"]
DEMO_DIR = out("demo")
DENSE_DIR = out("demo_dense")  # the dense-label set of stages with demo data (demo mode)
DENSE_DEMO_VIDEOS = 20  # clips planned for it; its train and val clips with an audio-visual event are kept
RUNS = list(config["train"]["methods"])  # run names: a registered method or a variant
VARIANTS = config["variants"]
SEEDS = list(config["train"]["seeds"])
RUN = out("runs/{run}/seed{seed}")
ALL_SEEDS = "all_seeds"  # the folder of a run's passes that do not depend on its seed
REPORT = out("report")
check_variants(RUNS, VARIANTS)
check_feature_sets(config["model"]["features"], VARIANTS)
check_weights(config["features"])
PROTOCOLS = list(config["evaluate"]["protocols"])  # evaluate.protocols entries; the first is primary
check_protocols(config["evaluate"])
check_parse(config["parse"])


def run_method(name: str):
    """The registered method of a run name (itself, or a variant's method)."""
    return method(VARIANTS[name]["method"] if name in VARIANTS else name)


def run_label(name: str) -> str:
    return VARIANTS.get(name, {}).get("label") or run_method(name).label


def run_features(name: str) -> list[str]:
    """The feature set HAN is trained on in a run (a variant's own, or model.features)."""
    return list(VARIANTS.get(name, {}).get("features") or config["model"]["features"])


def run_kinds(name: str) -> list[str]:
    """What a run reads from the packs: its model's kinds, then those its passes read."""
    passes = [kind for sid in run_method(name).stages if not stage(sid).trains for kind in stage(sid).kinds]
    return list(dict.fromkeys(run_features(name) + passes))


# The kinds to extract and pack: every run's (model.features of the runs and what their passes read).
KINDS = list(dict.fromkeys(kind for name in RUNS for kind in run_kinds(name)))
# Below this fraction of a split's videos with features, its pack fails (a half-copied features folder);
# in the other modes every clip that is missing is in the manifest with its reason.
MIN_COVERAGE = DATASET.get("min_coverage")
if MIN_COVERAGE is None:
    MIN_COVERAGE = 0.99 if MODE == "features" else 0
# Packs keep each kind's own rows when a run trains a network whose input layers are not linear (CMPAE).
UNPOOLED = any(
    not stage(sid).defaults.pooled_inputs
    for name in RUNS
    for sid in run_method(name).stages
    if stage(sid).trains
)
check_dataset(DATASET, KINDS)
if MODE != "features" and (FFMPEG_WARNING := fidelity_warning()):
    print(f"WARNING: {FFMPEG_WARNING}", file=sys.stderr)


def shard_of(video_id: str, n_shards: int) -> int:
    """The shard of a YouTube id: the first 4 bytes of its SHA-1, modulo `n_shards`.

    A stable hash (Python's hash() is salted per process), so a clip keeps its shard across runs,
    machines and data-set sizes.
    """
    digest = hashlib.sha1(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % n_shards


def shard_label(index: int) -> str:
    return f"{index:03d}"  # n_shards <= 1000 (schema)


def annotation_files() -> dict[str, str]:
    """classes, the three weak splits and the two dense files of the data set."""
    if MODE == "demo":
        return {
            "classes": f"{DEMO_DIR}/classes.txt",
            **{split: f"{DEMO_DIR}/{split}.csv" for split in SPLITS},
            "eval_audio": f"{DEMO_DIR}/eval_audio.csv",
            "eval_visual": f"{DEMO_DIR}/eval_visual.csv",
        }
    return dict(DATASET["annotations"])


def demo_plan() -> dict[str, tuple[int, str]]:
    """Demo filename -> (clip index, split); clip i depends only on (seed, i), so indices are stable."""
    from avvp.clips.demo import plan_clips

    demo = DATASET["demo"]
    return {c.filename: (i, c.split) for i, c in enumerate(plan_clips(demo["n_videos"], demo["seed"]))}


def clip_table() -> list[str]:
    """Every clip of the data set (all splits); the split files are checked as they are read."""
    if MODE == "demo":
        return list(DEMO_INDEX)
    from avvp.evaluation.annotations import read_classes, read_weak

    vocab = read_classes(ANNOTATIONS["classes"])
    seen: dict[str, str] = {}
    for split in SPLITS:
        for name in read_weak(ANNOTATIONS[split], vocab).filenames:
            if name in seen:
                raise ValueError(f"{ANNOTATIONS[split]}: {name} is also in {ANNOTATIONS[seen[name]]}")
            seen[name] = split
    return list(seen)


def shard_table(filenames: list[str], n_shards: int) -> dict[str, list[str]]:
    """Shard label -> its clips (sorted); empty shards get no jobs."""
    from avvp.evaluation.annotations import video_id

    shards: dict[str, list[str]] = {}
    for name in sorted(filenames):
        shards.setdefault(shard_label(shard_of(video_id(name), n_shards)), []).append(name)
    return dict(sorted(shards.items()))


ANNOTATIONS = annotation_files()
DEMO_INDEX = demo_plan() if MODE == "demo" else {}
SHARDS = {} if MODE == "features" else shard_table(clip_table(), DATASET["n_shards"])
CLIP_SHARD = {name: shard for shard, clips in SHARDS.items() for name in clips}
TRAINING_STAGES = [s.id for s in stages().values() if s.trains]
PASSES = [s.id for s in stages().values() if not s.trains and s.per_seed]
SEEDLESS_PASSES = [s.id for s in stages().values() if not s.per_seed]


wildcard_constraints:
    shard=r"\d{3}",
    kind="|".join(feature_kinds()),
    split="|".join(SPLITS),
    run="|".join(RUNS),
    seed=r"\d+",
    protocol="|".join(PROTOCOLS),


# --- runs: one per (run name, seed), a folder per stage -------------------------------------------


def stage_dir(run_name: str, seed: int | str, stage_id: str) -> str:
    """A stage's folder in a run: under the seed's folder, or under all_seeds for a pass that is
    the same for every seed."""
    seeds = f"seed{seed}" if stage(stage_id).per_seed else ALL_SEEDS
    return f"{EXPERIMENT}/runs/{run_name}/{seeds}/{stage_id}"


def final_dir(run_name: str, seed: int | str) -> str:
    """The folder of the stage whose model is the run's result (its method's final stage)."""
    return stage_dir(run_name, seed, run_method(run_name).final_stage)


def final_checkpoint(wildcards) -> str:
    return f"{final_dir(wildcards.run, wildcards.seed)}/model.pt"


def first_checkpoint() -> str:
    """The model of the first listed run's first seed: it draws timelines and parses videos."""
    return f"{final_dir(RUNS[0], SEEDS[0])}/model.pt"


def run_protocol(run_name: str, entry: str):
    """The protocol an evaluate.protocols entry means for a run (`as_published`: its method's own)."""
    return protocol(entry, run_method(run_name).name, config["evaluate"]["define"])


def evaluations() -> list[str]:
    """The scores of every run under every protocol: protocol-major, then run-major (the order of
    metrics params `protocols` and `runs`)."""
    return [
        f"{EXPERIMENT}/runs/{r}/seed{s}/evaluation/{p}/test.json"
        for p in PROTOCOLS
        for r in RUNS
        for s in SEEDS
    ]


def protocols_param() -> dict[str, dict]:
    """metrics.json's `protocols`: per evaluate.protocols entry, its title and each run's rule."""
    from avvp.evaluation.protocols import AS_PUBLISHED, AS_PUBLISHED_TITLE

    return {
        entry: {
            "title": AS_PUBLISHED_TITLE if entry == AS_PUBLISHED else run_protocol(RUNS[0], entry).title,
            "rules": {r: run_protocol(r, entry).describe() for r in RUNS},
        }
        for entry in PROTOCOLS
    }


def protocol_files(wildcards, split: str = "test") -> dict[str, str]:
    """What scoring a run under a protocol reads beyond the predictions and the split: the legacy
    audio annotations (where the protocol was published on them and the data set has them) and,
    for a protocol with calibrated gates, the thresholds chosen on the validation split."""
    chosen = run_protocol(wildcards.run, wildcards.protocol)
    files = {}
    if chosen.annotations == "legacy" and ANNOTATIONS.get("eval_audio_legacy"):
        files["legacy_audio_csv"] = ANNOTATIONS["eval_audio_legacy"]
    if chosen.calibrated and split == "test":
        files["calibration"] = f"{RUN}/calibration/{{protocol}}.json".format(**wildcards)
    return files


def protocol_flags(wildcards, split: str = "test") -> str:
    """The evaluate/calibrate options of a run's protocol: its name (a defined one's parts as
    JSON) and the files of `protocol_files`."""
    entry = wildcards.protocol
    flags = ["--protocol", entry, "--method", run_method(wildcards.run).name]
    if entry in config["evaluate"]["define"]:
        flags += ["--define", json.dumps(config["evaluate"]["define"][entry], sort_keys=True)]
    for name, path in protocol_files(wildcards, split).items():
        flags += [option_flag(name), path]
    return shlex.join(flags)


def explained_passes() -> list[list[str]]:
    """[run, seed, stage, folder] of every pass whose spec reads its folder for a note on the
    scores (`Pass.explain`), for metrics.json."""
    return [
        [r, str(s), sid, stage_dir(r, s, sid)]
        for r in RUNS
        for s in SEEDS
        for sid in run_method(r).stages
        if not stage(sid).trains and stage(sid).explain is not None
    ]


def trained_models() -> list[str]:
    """The model of every training stage of every run (metrics.json records their checksums).

    Not named `checkpoints`: that is Snakemake's global object of `checkpoint` rules."""
    return [
        f"{stage_dir(r, s, sid)}/model.pt"
        for r in RUNS
        for s in SEEDS
        for sid in run_method(r).stages
        if stage(sid).trains
    ]


# What a pass that chooses on the validation split reads (`Pass.validation`), by its option.
VALIDATION_INPUTS = {
    "val_pack": out("packed/val"),
    "val_csv": ANNOTATIONS["val"],
    "audio_csv": ANNOTATIONS["eval_audio"],
    "visual_csv": ANNOTATIONS["eval_visual"],
}


def stage_inputs(wildcards) -> dict[str, str]:
    """What a stage reads from earlier stages of its run (its spec's inputs), by name, the files its
    settings name (an edit of one reruns the stage) and, for a pass that reads it, the validation
    split. A seedless pass (no seed wildcard) needs only seedless stages (register_method checks)."""
    spec = stage(wildcards.stage)
    settings = stage_section(wildcards.run, wildcards.stage)
    files = {
        f"setting_{f.name}": settings[f.name]
        for f in dataclasses.fields(spec.defaults)
        if f.metadata.get("path")
        and settings.get(f.name)
        and not settings[f.name].startswith(f"{DENSE_DIR}/")
    }
    if any(str(settings[name]).startswith(f"{DENSE_DIR}/") for name in demo_data(spec)):
        files["demo_dense"] = DENSE_DIR  # the folder rule demo_dense writes, which holds those paths
    seed = wildcards.get("seed")
    earlier = {
        needed.name: f"{stage_dir(wildcards.run, seed, needed.stage)}/{needed.file}".rstrip("/")
        for needed in spec.inputs
    }
    return files | earlier | pass_data(spec)


def pass_data(spec) -> dict[str, str]:
    """The packed splits and annotations a pass reads: the training pack (unless it reads none) and,
    for a pass that chooses on it, the validation split; a training stage's are TRAIN_INPUTS."""
    if spec.trains:
        return {}
    return ({"train_pack": out("packed/train")} if spec.reads_train_pack else {}) | (
        VALIDATION_INPUTS if spec.validation else {}
    )


def stage_input_flags(wildcards, input) -> str:
    """The options naming a stage's inputs from earlier stages (and a pass's packs and annotations),
    quoted for the shell."""
    spec = stage(wildcards.stage)
    names = [needed.name for needed in spec.inputs] + list(pass_data(spec))
    return " ".join(f"{option_flag(name)} {shlex.quote(str(getattr(input, name)))}" for name in names)


def stage_section(run: str, stage_id: str) -> dict:
    """A stage's settings in a run: its section under `stages`, the run's variant's over it, and
    (a pass) the weights of the kinds it reads from their `features` sections where both leave them unset."""
    spec = stage(stage_id)
    variant = VARIANTS.get(run, {}).get("stages", {}).get(stage_id, {})
    section = dict(config["stages"][stage_id])
    section.update({k: v for k, v in variant.items() if v is not None})
    for name, (kind, key) in {} if spec.trains else spec.from_features.items():
        if section.get(name) is None:
            section[name] = config["features"][kind][key]
    for name, path in demo_data(spec).items():
        if not section.get(name):
            section[name] = f"{DENSE_DIR}/{path}"
    return section


def demo_data(spec) -> dict[str, str]:
    """A pass's settings that the demo's dense-label set fills (`Pass.demo_data`; demo mode only)."""
    return dict(spec.demo_data) if MODE == "demo" and not spec.trains else {}


def dense_set_needed() -> bool:
    """Whether some run's stage reads the demo's dense-label set (rule demo_dense)."""
    return any(demo_data(stage(s)) for r in RUNS for s in run_method(r).stages)


def stage_flags(wildcards) -> str:
    """The stage's settings in the run (`stage_section`) as options (null: its published values)."""
    return cli_flags(stage_section(wildcards.run, wildcards.stage))


def run_stage_sections() -> dict[str, dict[str, dict]]:
    """Run -> stage id -> its settings section (metrics.json's provenance)."""
    return {r: {sid: stage_section(r, sid) for sid in run_method(r).stages} for r in RUNS}


def run_flags() -> str:
    """What every stage job of every run is given alike: `--device` (config train.device).

    A run's feature set is not here: rule train passes it itself (`run_features`)."""
    return f"--device {shlex.quote(config['train']['device'])}"


# --- helpers for rules -----------------------------------------------------------------------
# Every value a shell command gets is quoted: paths of rules' inputs, outputs and logs with `:q`
# in the command, and each value of an option string built here with shlex.quote (a plain path or
# number stays as it is, so the commands read as before).


def cli_flags(section: dict) -> str:
    """A config section as command-line options: {batch_size: 8} -> `--batch-size 8`.

    None means "the command's default" and is left out; booleans become --x / --no-x.
    """
    flags = []
    for key, value in section.items():
        flag = option_flag(key)
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags += [flag, shlex.quote(str(value))]
    return " ".join(flags)


def report_figures() -> list[str]:
    """Everything the report shows (rule all asks for it, so `--report` finds it made)."""
    figures = [f"{REPORT}/{name}/{r}.png" for name in ("curves", "per_class") for r in RUNS]
    figures += [f"{REPORT}/metrics.html", f"{REPORT}/summary.html"]
    return figures + ([] if MODE == "features" else [f"{REPORT}/timelines", out("parsed_test/index.html")])


def shard_clips(wildcards) -> list[str]:
    return SHARDS[wildcards.shard]


def write_lines(path: str, lines: list[str]) -> None:
    """A text file of one line each, appearing complete or not at all."""
    with atomic_output(path, "w") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


def demo_indices(wildcards) -> list[int]:
    return [DEMO_INDEX[name][0] for name in SHARDS[wildcards.shard]]


def download_source(wildcards) -> str:
    """Where `avvp download` takes a shard's clips from (its --local-dir, or YouTube)."""
    if MODE == "demo":
        return f"--local-dir {shlex.quote(f'{DEMO_DIR}/videos/{wildcards.shard}')}"
    if MODE == "local":
        return f"--local-dir {shlex.quote(DATASET['local_dir'])}"
    return ""


def download_inputs(wildcards) -> list[str]:
    """Demo mode downloads from the shard's rendered clips; the other modes from outside."""
    return [f"{DEMO_DIR}/videos/{wildcards.shard}"] if MODE == "demo" else []


MEDIUM_FOLDERS = {"audio": "audio", "frames": "frames", "video": "videos"}  # in the experiment, per shard


def extract_inputs(wildcards) -> dict[str, str]:
    """A kind reads the shard's WAVs, its frame folders or its clips, by its medium (the media
    step lists each medium's inputs of the usable clips)."""
    medium = feature_kind(wildcards.kind).medium
    return {
        "inputs": f"{EXPERIMENT}/shards/{wildcards.shard}/{medium}.txt",
        "media": f"{EXPERIMENT}/{MEDIUM_FOLDERS[medium]}/{wildcards.shard}",
    }


def feature_dirs() -> list[str]:
    """Every folder of features: one per shard and kind, or the released root in features mode."""
    if MODE == "features":
        return [DATASET["features_dir"]]
    return [f"{EXPERIMENT}/features/{shard}/{kind}" for shard in SHARDS for kind in KINDS]


def split_videos(split: str) -> list[str]:
    from avvp.evaluation.annotations import read_classes, read_weak

    return list(read_weak(ANNOTATIONS[split], read_classes(ANNOTATIONS["classes"])).video_ids)


def pack_inputs(wildcards) -> list[str]:
    """What a split's pack reads besides its annotations: every shard's feature folders; in features
    mode nothing listed (features_fingerprint stands for the files)."""
    return [] if MODE == "features" else feature_dirs()


def features_fingerprint(wildcards) -> str:
    """Features mode: a digest of the size and modification time of every feature file a split's
    pack reads (or that it is missing), a parameter of the pack. A changed, repaired or added file
    reruns that split's pack and what follows, and a dry run does not print LLP's ~36,000 file
    paths as the pack jobs' inputs."""
    if MODE != "features":
        return ""
    root = Path(DATASET["features_dir"])
    digest = hashlib.sha256()
    for vid in split_videos(wildcards.split):
        for kind in KINDS:
            path = root / kind / f"{vid}.npy"
            try:
                stat = path.stat()
                digest.update(f"{kind}/{path.name} {stat.st_size} {stat.st_mtime_ns}\n".encode())
            except FileNotFoundError:
                digest.update(f"{kind}/{path.name} missing\n".encode())
    return digest.hexdigest()


def feature_args() -> str:
    """The feature source of `avvp pack`: the released root, or every shard's folders."""
    if MODE == "features":
        return f"--features {shlex.quote(DATASET['features_dir'])}"
    return f"--features-shards {shlex.quote(out('features'))} --shard-count {DATASET['n_shards']}"


def manifest_input() -> list[str]:
    return [] if MODE == "features" else [out("manifest.tsv")]


def manifest_arg(wildcards, input) -> str:
    return f"--manifest {shlex.quote(str(input.manifest))}" if input.manifest else ""


def weights_files() -> dict[str, list[str]]:
    """Kind -> the weights.json of each of its feature folders (read by the metrics script; a
    released root may have none)."""
    if MODE == "features":
        return {kind: [f"{DATASET['features_dir']}/{kind}/weights.json"] for kind in KINDS}
    return {
        kind: [f"{EXPERIMENT}/features/{shard}/{kind}/weights.json" for shard in SHARDS] for kind in KINDS
    }


def is_llp() -> bool:
    """Whether the data set uses LLP's classes (then the report shows the published numbers)."""
    from avvp.evaluation.annotations import read_classes

    llp = Path(workflow.basedir) / "data/llp/classes.txt"
    ours = Path(ANNOTATIONS["classes"])
    return MODE != "demo" and llp.is_file() and ours.is_file() and read_classes(ours) == read_classes(llp)


def feature_roots() -> list[str]:
    """The released-layout roots of the features (parse and timelines reuse those of 10-second clips)."""
    if MODE == "features":
        return [DATASET["features_dir"]]
    return [f"{EXPERIMENT}/features/{shard}" for shard in SHARDS]


def test_videos() -> dict[str, str]:
    """Test clip -> where its downloaded video will be (the timeline gallery picks available ones)."""
    from avvp.evaluation.annotations import read_classes, read_weak

    if MODE == "demo":
        names = demo_test_clips()
    else:
        names = sorted(read_weak(ANNOTATIONS["test"], read_classes(ANNOTATIONS["classes"])).filenames)
    return {name: f"{EXPERIMENT}/videos/{CLIP_SHARD[name]}/{name}.mp4" for name in names}


def demo_test_clips() -> list[str]:
    return sorted(name for name, (_, split) in DEMO_INDEX.items() if split == "test")


def videos_to_parse() -> list[str]:
    """The videos of `parse.videos_dir`, or in demo mode by default the demo's test clips."""
    folder = config["parse"]["videos_dir"]
    if folder is None and MODE == "demo":
        return [f"{DEMO_DIR}/videos/{CLIP_SHARD[name]}/{name}.mp4" for name in demo_test_clips()]
    if folder is None:
        raise ConfigError("parse.videos_dir is not set: name the folder of videos to parse")
    return sorted(str(p) for p in Path(folder).glob("*") if p.suffix.lower() in VIDEO_SUFFIXES)


def parse_inputs(wildcards) -> dict[str, list[str] | str]:
    """The demo's clips come from their rendered folders, with their ground truth; a folder's
    videos are inputs themselves (adding one reruns the job)."""
    if config["parse"]["videos_dir"] is None and MODE == "demo":
        return {
            "folders": sorted({str(Path(v).parent) for v in videos_to_parse()}),
            "audio_csv": ANNOTATIONS["eval_audio"],
            "visual_csv": ANNOTATIONS["eval_visual"],
        }
    return {"videos": videos_to_parse()}
