"""`snakemake results/parsed`: every video of config `parse.videos_dir` (by default in demo mode, the
demo's test clips) through `avvp parse` with the first run's model: per video a JSON and a CSV of
events and a timeline PNG."""


rule parse:
    """One model load for all videos; adding a video to the folder reruns it."""
    input:
        unpack(parse_inputs),
        checkpoint=first_checkpoint(),
    output:
        directory("results/parsed"),
    params:
        videos=lambda wildcards: parse_videos(),
        truth=truth_args,
        weights=lambda wildcards: weight_args(),
        flags=cli_flags({k: v for k, v in config["parse"].items() if k != "videos_dir"}),
    log:
        "results/logs/parse.log",
    benchmark:
        "results/benchmarks/parse.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=config["resources"]["gpu"],
    conda:
        "../../envs/parse.yaml"
    shell:
        "avvp parse {params.videos:q} --checkpoint {input.checkpoint} {params.weights} {params.truth}"
        " {params.flags} --no-progress --out {output} > {log} 2>&1"
