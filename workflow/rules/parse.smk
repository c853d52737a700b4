"""`snakemake results/parsed/videos.tsv`: every video of config `parse.videos_dir` (by default in demo
mode, the demo's test clips) through the first run's model: per video a JSON and a CSV of events and
a timeline PNG in results/parsed/. The report's timelines (report.smk) are this rule on a few test
clips."""


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
        videos="results/parsed/videos.tsv",
    log:
        "results/logs/parse.log",
    benchmark:
        "results/benchmarks/parse.tsv"
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
