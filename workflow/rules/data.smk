"""The clips: demo synthesis, per-shard download (or local copy), the availability manifest."""

if MODE == "demo":

    rule demo_annotations:
        """The demo's class list and LLP-format annotation files (cheap; all clips)."""
        output:
            **ANNOTATIONS,
        log:
            out("logs/demo_annotations.log"),
        conda:
            "../../envs/download.yaml"
        params:
            demo=config["dataset"]["demo"],
        script:
            "../scripts/demo_annotations.py"

    rule demo_videos:
        """Render one shard's demo clips; clip i depends only on (seed, i)."""
        output:
            directory(f"{DEMO_DIR}/videos/{{shard}}"),
        log:
            out("logs/demo_videos/{shard}.log"),
        benchmark:
            out("benchmarks/demo_videos/{shard}.tsv")
        conda:
            "../../envs/media.yaml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            seed=config["dataset"]["demo"]["seed"],
            indices=demo_indices,
        script:
            "../scripts/demo_videos.py"

    if dense_set_needed():

        rule demo_dense:
            """The dense-label pretraining set of UWAV's generator on the demo: clips other than the
            demo's (seed + 1) with their audio-visual events in UnAV-100's form, their frames, and their
            clip and clap_windows features with the weights of those kinds' config."""
            output:
                directory(DENSE_DIR),
            log:
                out("logs/demo_dense.log"),
            benchmark:
                out("benchmarks/demo_dense.tsv")
            conda:
                "../../envs/features.yaml"
            threads: 2
            resources:
                mem_mb=8000,
                runtime=120,
            params:
                n_videos=DENSE_DEMO_VIDEOS,
                seed=config["dataset"]["demo"]["seed"] + 1,
                kinds={k: cli_flags(config["features"][k]) for k in ("clip", "clap_windows")},
            script:
                "../scripts/demo_dense.py"


localrules:
    shard_list,


rule shard_list:
    """One shard's clip names, a line each: a file, so that no printed command carries ~90 names."""
    output:
        out("shards/{shard}/clips.txt"),
    log:
        out("logs/shard_list/{shard}.log"),
    params:
        clips=shard_clips,
    run:
        write_lines(output[0], params.clips)


rule download:
    """Fetch one shard's clips (YouTube, or a local folder); failures become records, not errors."""
    input:
        download_inputs,
        clips=out("shards/{shard}/clips.txt"),
    output:
        records=out("shards/{shard}/download.tsv"),
        videos=directory(out("videos/{shard}")),
    log:
        out("logs/download/{shard}.log"),
    benchmark:
        out("benchmarks/download/{shard}.tsv")
    conda:
        "../../envs/download.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=600,
    params:
        source=download_source,
        flags=cli_flags(config["download"]),
    shell:
        "avvp download --list {input.clips:q} --out-dir {output.videos:q}"
        " --records {output.records:q} {params.source} {params.flags} > {log:q} 2>&1"


rule manifest:
    """Every clip of the data set with its status and reason, gathered from the shards."""
    input:
        expand(out("shards/{shard}/media.tsv"), shard=SHARDS),
    output:
        out("manifest.tsv"),
    log:
        out("logs/manifest.log"),
    conda:
        "../../envs/download.yaml"
    script:
        "../scripts/manifest.py"
