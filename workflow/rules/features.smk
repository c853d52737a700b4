"""The feature extractors of model.features (one job per shard and kind, one model load each) and
packing."""


rule extract:
    """Features of one shard's usable clips, in the released layout (results/features/<shard>/)."""
    input:
        unpack(extract_inputs),
    output:
        directory(out("features/{shard}/{kind}")),
    log:
        out("logs/extract/{shard}_{kind}.log"),
    benchmark:
        out("benchmarks/extract/{shard}_{kind}.tsv")
    conda:
        "../../envs/features.yaml"
    threads: config["resources"]["extract_threads"]
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["resources"]["gpu"],
    params:
        flags=lambda wildcards: cli_flags(config["features"][wildcards.kind]),
        root=lambda wildcards: f"{EXPERIMENT}/features/{wildcards.shard}",
    shell:
        # A shard whose clips are all unavailable has nothing to extract: an empty folder.
        "(if [ -s {input.inputs:q} ]; then avvp extract --kind {wildcards.kind:q} {params.flags}"
        " --out-dir {params.root:q} --inputs-from {input.inputs:q} --threads {threads} --no-progress;"
        " else mkdir -p {output:q}; fi) > {log:q} 2>&1"


rule pack:
    """One split's available clips -> memory-mapped arrays; missing clips are listed, not fatal."""
    input:
        split=lambda wildcards: ANNOTATIONS[wildcards.split],
        classes=ANNOTATIONS["classes"],
        manifest=manifest_input(),
        features=pack_inputs,
    output:
        directory(out("packed/{split}")),
    log:
        out("logs/pack/{split}.log"),
    benchmark:
        out("benchmarks/pack/{split}.tsv")
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        features=feature_args(),
        kinds=",".join(KINDS),
        manifest=manifest_arg,
        pooling="--unpooled" if UNPOOLED else "",
        min_coverage=MIN_COVERAGE,
        features_fingerprint=features_fingerprint,
    shell:
        "avvp pack --split-csv {input.split:q} --classes {input.classes:q} {params.features}"
        " --model-features {params.kinds:q} {params.pooling} --min-coverage {params.min_coverage}"
        " {params.manifest} --on-missing skip --out-dir {output:q} > {log:q} 2>&1"
