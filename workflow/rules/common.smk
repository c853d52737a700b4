"""Config -> the clip table, its shards, the annotation files, and the rules' input functions.

Everything here is evaluated when the workflow is parsed, so the job graph (and every dry run) is
exact: shard membership is known before anything runs, and each per-shard rule receives its own
clip list as a parameter, so adding a clip changes the parameters of one shard only.
"""
import hashlib
import shlex

KINDS = ("vggish", "res152", "r2plus1d_18")
SPLITS = ("train", "val", "test")
DATASET = config["dataset"]
MODE = DATASET["mode"]
DEMO_DIR = "results/demo"


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


def demo_plan() -> dict[str, int]:
    """Demo filename -> clip index; clip i depends only on (seed, i), so indices are stable."""
    from avvp.demo import plan_clips

    demo = DATASET["demo"]
    return {c.filename: i for i, c in enumerate(plan_clips(demo["n_videos"], demo["seed"]))}


def clip_table() -> list[str]:
    """Every clip of the data set (all splits); the split files are checked as they are read."""
    if MODE == "demo":
        return list(DEMO_INDEX)
    from avvp.annotations import read_classes, read_weak

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
    from avvp.annotations import video_id

    shards: dict[str, list[str]] = {}
    for name in sorted(filenames):
        shards.setdefault(shard_label(shard_of(video_id(name), n_shards)), []).append(name)
    return dict(sorted(shards.items()))


ANNOTATIONS = annotation_files()
DEMO_INDEX = demo_plan() if MODE == "demo" else {}
SHARDS = {} if MODE == "features" else shard_table(clip_table(), DATASET["n_shards"])


wildcard_constraints:
    shard=r"\d{3}",
    kind="|".join(KINDS),
    split="|".join(SPLITS),


# --- helpers for rules -----------------------------------------------------------------------


def cli_flags(section: dict) -> str:
    """A config section as command-line options: {batch_size: 8} -> `--batch-size 8`.

    None means "the command's default" and is left out; booleans become --x / --no-x.
    """
    flags = []
    for key, value in section.items():
        flag = f"--{key.replace('_', '-')}"
        if value is None:
            continue
        if isinstance(value, bool):
            flags.append(flag if value else f"--no-{flag[2:]}")
        else:
            flags += [flag, shlex.quote(str(value))]
    return " ".join(flags)


def shard_clips(wildcards) -> list[str]:
    return SHARDS[wildcards.shard]


def demo_indices(wildcards) -> list[int]:
    return [DEMO_INDEX[name] for name in SHARDS[wildcards.shard]]


def download_source(wildcards) -> str:
    """Where `avvp download` takes a shard's clips from (its --local-dir, or YouTube)."""
    if MODE == "demo":
        return f"--local-dir {DEMO_DIR}/videos/{wildcards.shard}"
    if MODE == "local":
        return f"--local-dir {shlex.quote(DATASET['local_dir'])}"
    return ""


def download_inputs(wildcards) -> list[str]:
    """Demo mode downloads from the shard's rendered clips; the other modes from outside."""
    return [f"{DEMO_DIR}/videos/{wildcards.shard}"] if MODE == "demo" else []


def extract_inputs(wildcards) -> dict[str, str]:
    """VGGish reads the shard's WAVs, the two visual networks its frame folders."""
    media = "audio" if wildcards.kind == "vggish" else "frames"
    return {
        "inputs": f"results/shards/{wildcards.shard}/{media}.txt",
        "media": f"results/{media}/{wildcards.shard}",
    }


def feature_dirs() -> list[str]:
    """Every folder of features: one per shard and kind, or the released root in features mode."""
    if MODE == "features":
        return [DATASET["features_dir"]]
    return [f"results/features/{shard}/{kind}" for shard in SHARDS for kind in KINDS]


def feature_args() -> str:
    """The feature source of `avvp pack`: the released root, or every shard's folders."""
    if MODE == "features":
        return f"--features {shlex.quote(DATASET['features_dir'])}"
    return " ".join(
        f"--features-dir {kind}=results/features/{shard}/{kind}" for shard in SHARDS for kind in KINDS
    )


def manifest_input() -> list[str]:
    return [] if MODE == "features" else ["results/manifest.tsv"]


def manifest_arg(wildcards, input) -> str:
    return f"--manifest {input.manifest}" if input.manifest else ""


def weights_files() -> dict[str, list[str]]:
    """Kind -> the weights.json of each of its feature folders (read by the metrics script; a
    released root may have none)."""
    if MODE == "features":
        return {kind: [f"{DATASET['features_dir']}/{kind}/weights.json"] for kind in KINDS}
    return {kind: [f"results/features/{shard}/{kind}/weights.json" for shard in SHARDS] for kind in KINDS}
