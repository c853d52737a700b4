"""`snakemake results/parsed`: every video of config `parse.videos_dir` (by default in demo mode, the
demo's test clips) through the first run's model: per video a JSON and a CSV of events and a
timeline PNG. The report's timelines (report.smk) are this rule on a few test clips."""


rule parse:
    """One model load for all videos; adding a video to the folder reruns it."""
    input:
        unpack(parse_inputs),
        checkpoint=first_checkpoint(),
    output:
        directory("results/parsed"),
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
        videos=lambda wildcards: parse_videos(),
        limit=None,
        weights=lambda wildcards: extractor_weights(),
        seed=lambda wildcards: extractor_seed(),
        settings={k: v for k, v in config["parse"].items() if k != "videos_dir"},
    script:
        "../scripts/parse.py"
