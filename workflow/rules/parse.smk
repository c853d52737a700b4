"""Paths below are in the experiment folder (results/ for the demo config, results/<experiment>/ else).

`snakemake results/parsed/videos.tsv`: every video of config `parse.videos_dir` (by default in demo
mode, the demo's test clips) through the first run's model: per video a JSON and a CSV of events and
a timeline PNG in results/parsed/. The report's timelines (report.smk) are this rule on a few test
clips, and rule parse_test on all the test clips that are local (with their ground truth), for the
viewer: rule viewer writes index.html into either folder (`snakemake results/parsed/index.html`,
`results/parsed_test/index.html`; the report links the second)."""


rule parse:
    """One model load for all videos, which are done one after the other (a line each in the log) into
    a resumable folder: only the list of videos is the rule's output, so a killed job keeps the videos
    it finished and its rerun does the rest. Features extracted for training are reused (10-second
    clips are not decoded again), and the extractors run with the weights the checkpoint records.
    Adding a video to the folder reruns it."""
    input:
        unpack(parse_inputs),
        checkpoint=first_checkpoint(),
        features=feature_dirs(),
    output:
        videos=out("parsed/videos.tsv"),
    log:
        out("logs/parse.log"),
    benchmark:
        out("benchmarks/parse.tsv")
    conda:
        "../../envs/parse.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=config["resources"]["gpu"],
    params:
        videos=lambda wildcards: videos_to_parse(),
        limit=None,
        out_dir=lambda wildcards, output: str(Path(output.videos).parent),
        features=feature_roots(),
        settings={k: v for k, v in config["parse"].items() if k != "videos_dir"},
    script:
        "../scripts/parse.py"


if MODE != "features":
    # The test split's clips through the first run's model, with their ground truth (the report's
    # timelines are a few of them; rule parse_test parses all that are local, for the viewer).
    TEST_PARSE_INPUTS = {
        "checkpoint": first_checkpoint(),
        "manifest": out("manifest.tsv"),
        "videos": expand(out("videos/{shard}"), shard=SHARDS),
        "audio_csv": ANNOTATIONS["eval_audio"],
        "visual_csv": ANNOTATIONS["eval_visual"],
        "features": feature_dirs(),
    }
    TEST_PARSE_SETTINGS = {
        "device": config["predict"]["device"],
        "frame_threshold": config["parse"]["frame_threshold"],
        "global_threshold": config["parse"]["global_threshold"],
    }

    use rule parse as parse_test with:
        input:
            **TEST_PARSE_INPUTS,
        output:
            videos=out("parsed_test/videos.tsv"),
        log:
            out("logs/parse_test.log"),
        benchmark:
            out("benchmarks/parse_test.tsv")
        params:
            videos=lambda wildcards: test_videos(),
            limit=None,
            out_dir=lambda wildcards, output: str(Path(output.videos).parent),
            features=feature_roots(),
            settings=TEST_PARSE_SETTINGS,


rule viewer:
    """The offline viewer of a parse output folder (`avvp view`): one page beside the JSON files that
    plays each video with its events, and with ground truth lists the videos worst first. It reads
    only the folder's JSON files, so it is rebuilt whenever the folder's list of videos is."""
    input:
        out("{folder}/videos.tsv"),
    output:
        out("{folder}/index.html"),
    log:
        out("logs/viewer/{folder}.log"),
    wildcard_constraints:
        folder="parsed|parsed_test",
    conda:
        "../../envs/parse.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        folder=lambda wildcards: out(wildcards.folder),
    shell:
        "avvp view {params.folder:q} > {log:q} 2>&1"
