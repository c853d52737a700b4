"""HAN: train on the packed splits, predict the test split, evaluate, and write metrics.json."""


rule train:
    """The paper's recipe (config `train`); keeps the best validation epoch."""
    input:
        train_pack="results/packed/train",
        val_pack="results/packed/val",
        train_csv=ANNOTATIONS["train"],
        val_csv=ANNOTATIONS["val"],
        audio_csv=ANNOTATIONS["eval_audio"],
        visual_csv=ANNOTATIONS["eval_visual"],
        classes=ANNOTATIONS["classes"],
    output:
        model="results/model/model.pt",
        last="results/model/last.pt",
        curve="results/model/log.csv",
    params:
        flags=cli_flags(config["train"]),
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train.log",
    benchmark:
        "results/benchmarks/train.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=config["resources"]["gpu"],
    conda:
        "../../envs/model.yaml"
    shell:
        "avvp train --train-pack {input.train_pack} --val-pack {input.val_pack}"
        " --train-csv {input.train_csv} --val-csv {input.val_csv} --audio-csv {input.audio_csv}"
        " --visual-csv {input.visual_csv} --classes {input.classes} {params.flags} --no-progress"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule predict:
    """Global and frame probabilities of the test split's available clips."""
    input:
        checkpoint="results/model/model.pt",
        pack="results/packed/test",
        split=ANNOTATIONS["test"],
        classes=ANNOTATIONS["classes"],
    output:
        "results/predictions/test.npz",
    params:
        flags=cli_flags(config["predict"]),
    log:
        "results/logs/predict.log",
    benchmark:
        "results/benchmarks/predict.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/model.yaml"
    shell:
        "avvp predict --checkpoint {input.checkpoint} --pack {input.pack} --split-csv {input.split}"
        " --classes {input.classes} {params.flags} --out {output} > {log} 2>&1"


rule evaluate:
    """The ten numbers on the test split (config `evaluate` holds the decision thresholds)."""
    input:
        predictions="results/predictions/test.npz",
        split=ANNOTATIONS["test"],
        audio_csv=ANNOTATIONS["eval_audio"],
        visual_csv=ANNOTATIONS["eval_visual"],
        other_splits=[ANNOTATIONS["train"], ANNOTATIONS["val"]],
    output:
        scores="results/evaluation/test.json",
        events="results/evaluation/test_events.tsv",
    params:
        flags=cli_flags(config["evaluate"]),
    log:
        "results/logs/evaluate.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/model.yaml"
    shell:
        "avvp evaluate --predictions {input.predictions} --split-csv {input.split}"
        " --audio-csv {input.audio_csv} --visual-csv {input.visual_csv}"
        " --known-csv {input.other_splits} {params.flags}"
        " --out {output.scores} --events-out {output.events} > {log} 2>&1"


rule metrics:
    """metrics.json: the evaluation, how many clips of each split were used, which weights."""
    input:
        scores="results/evaluation/test.json",
        packs=expand("results/packed/{split}", split=SPLITS),
        manifest=manifest_input(),
        features=feature_dirs(),
    output:
        "results/metrics.json",
    params:
        dataset={"name": DATASET["name"], "mode": MODE},
        weights=weights_files(),
    log:
        "results/logs/metrics.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/metrics.py"
