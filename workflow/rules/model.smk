"""HAN training per seed, then for every run (method, seed): predict the test split and evaluate;
metrics.json gathers all runs. The MA-MMIL and JoMoLD stages (methods.smk) reuse rule `train`."""

TRAIN_INPUTS = {
    "train_pack": "results/packed/train",
    "val_pack": "results/packed/val",
    "train_csv": ANNOTATIONS["train"],
    "val_csv": ANNOTATIONS["val"],
    "audio_csv": ANNOTATIONS["eval_audio"],
    "visual_csv": ANNOTATIONS["eval_visual"],
    "classes": ANNOTATIONS["classes"],
}


rule train:
    """HAN, the paper's recipe (config `train`), one seed; keeps the best validation epoch."""
    input:
        **TRAIN_INPUTS,
    output:
        model="results/runs/han/seed{seed}/model.pt",
        last="results/runs/han/seed{seed}/last.pt",
        curve="results/runs/han/seed{seed}/log.csv",
    params:
        method="han",
        stage_inputs="",
        flags=train_flags(config["train"]),
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train/han_seed{seed}.log",
    benchmark:
        "results/benchmarks/train/han_seed{seed}.tsv"
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
        " --visual-csv {input.visual_csv} --classes {input.classes} --method {params.method}"
        " {params.stage_inputs} {params.flags} --seed {wildcards.seed} --no-progress"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule predict:
    """Global and frame probabilities of the test split's available clips, by one run's model."""
    input:
        checkpoint=final_checkpoint,
        pack="results/packed/test",
        split=ANNOTATIONS["test"],
        classes=ANNOTATIONS["classes"],
    output:
        "results/runs/{method}/seed{seed}/predictions/test.npz",
    params:
        flags=cli_flags(config["predict"]),
    log:
        "results/logs/predict/{method}_seed{seed}.log",
    benchmark:
        "results/benchmarks/predict/{method}_seed{seed}.tsv"
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
    """One run's ten numbers on the test split (config `evaluate` holds the decision thresholds)."""
    input:
        predictions="results/runs/{method}/seed{seed}/predictions/test.npz",
        split=ANNOTATIONS["test"],
        audio_csv=ANNOTATIONS["eval_audio"],
        visual_csv=ANNOTATIONS["eval_visual"],
        other_splits=[ANNOTATIONS["train"], ANNOTATIONS["val"]],
    output:
        scores="results/runs/{method}/seed{seed}/evaluation/test.json",
        events="results/runs/{method}/seed{seed}/evaluation/test_events.tsv",
    params:
        flags=cli_flags(config["evaluate"]),
    log:
        "results/logs/evaluate/{method}_seed{seed}.log",
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
    """metrics.json: every run's scores with each method's mean and sd over seeds, how many clips of
    each split were used, which weights made the features."""
    input:
        scores=evaluations(),
        packs=expand("results/packed/{split}", split=SPLITS),
        manifest=manifest_input(),
        features=feature_dirs(),
    output:
        "results/metrics.json",
    params:
        dataset={"name": DATASET["name"], "mode": MODE},
        runs=[[m, s] for m in METHODS for s in SEEDS],
        final_stage={m: FINAL_STAGE[m] for m in METHODS},
        weights=weights_files(),
    log:
        "results/logs/metrics.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/metrics.py"
