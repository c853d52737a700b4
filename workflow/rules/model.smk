"""Every run (run name, seed) is its method's stages in order, each in its own folder under
results/runs/<run>/seed<N>/<stage>/: rule train for the training stages, rule run_pass for the
passes between them (rule run_pass_all_seeds, under results/runs/<run>/all_seeds/, for a pass that
is the same for every seed, such as VALOR's zero-shot labels). A run name is a registered method or
a config variant of one (`variants`). Each stage job gets only its own config section
(stages.<id>), so a change reruns that stage and what follows. Then the run's final model predicts
the test split, which is scored; metrics.json gathers all runs."""

TRAIN_INPUTS = {
    "train_pack": out("packed/train"),
    "val_pack": out("packed/val"),
    "train_csv": ANNOTATIONS["train"],
    "val_csv": ANNOTATIONS["val"],
    "audio_csv": ANNOTATIONS["eval_audio"],
    "visual_csv": ANNOTATIONS["eval_visual"],
    "classes": ANNOTATIONS["classes"],
}


rule train:
    """One training stage of one run (its spec decides the objective, the inputs and the kept epoch).
    last.pt is not an output, so Snakemake keeps it when a killed job runs again, and training
    continues from it when it matches the settings (`--resume auto`; otherwise it starts afresh);
    it holds the kept epoch too, so the rerun writes all three outputs again. `exec` makes the
    trainer Snakemake's own child: with --stop-with-parent it stops when Snakemake is killed, and
    train.lock refuses a second trainer on the folder while one lives."""
    input:
        unpack(stage_inputs),
        **TRAIN_INPUTS,
    output:
        model=f"{RUN}/{{stage}}/model.pt",
        log=f"{RUN}/{{stage}}/log.csv",
        summary=f"{RUN}/{{stage}}/summary.json",
    log:
        out("logs/train/{run}_seed{seed}_{stage}.log"),
    benchmark:
        out("benchmarks/train/{run}_seed{seed}_{stage}.tsv")
    wildcard_constraints:
        stage="|".join(TRAINING_STAGES),
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=720,
        gpu=config["resources"]["gpu"],
    params:
        settings=stage_flags,
        inputs=stage_input_flags,
        run=run_flags(),
        keep_last="" if config["train"]["keep_last"] else "--no-keep-last",
        features=lambda wildcards: ",".join(run_features(wildcards.run)),
        out_dir=subpath(output.model, parent=True),
    shell:
        "exec avvp train --stage {wildcards.stage:q} --train-pack {input.train_pack:q}"
        " --val-pack {input.val_pack:q} --train-csv {input.train_csv:q} --val-csv {input.val_csv:q}"
        " --audio-csv {input.audio_csv:q} --visual-csv {input.visual_csv:q} --classes {input.classes:q}"
        " --model-features {params.features:q} {params.inputs} {params.settings} {params.run}"
        " --seed {wildcards.seed:q} --resume auto {params.keep_last} --stop-with-parent --no-progress"
        " --out-dir {params.out_dir:q} > {log:q} 2>&1"


rule run_pass:
    """One pass of one run: a stage that trains nothing and writes its folder from the packed
    training split, with the frozen model of an earlier stage (MA-MMIL's refined labels, JoMoLD's
    noise ratios) or without one (VALOR's zero-shot labels)."""
    input:
        unpack(stage_inputs),
    output:
        directory(f"{RUN}/{{stage}}"),
    log:
        out("logs/pass/{run}_seed{seed}_{stage}.log"),
    benchmark:
        out("benchmarks/pass/{run}_seed{seed}_{stage}.tsv")
    wildcard_constraints:
        stage="|".join(PASSES),
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["resources"]["gpu"],
    params:
        settings=stage_flags,
        inputs=stage_input_flags,
        run=run_flags(),
        seed=lambda wildcards: f"--seed {shlex.quote(wildcards.seed)}",
    shell:
        "avvp pass --stage {wildcards.stage:q} {params.inputs}"
        " {params.settings} {params.run} {params.seed} --out-dir {output:q} > {log:q} 2>&1"


use rule run_pass as run_pass_all_seeds with:
    output:
        directory(f"{EXPERIMENT}/runs/{{run}}/{ALL_SEEDS}/{{stage}}"),
    log:
        out("logs/pass/{run}_{stage}.log"),
    benchmark:
        out("benchmarks/pass/{run}_{stage}.tsv")
    wildcard_constraints:
        stage="|".join(SEEDLESS_PASSES),
    params:
        settings=stage_flags,
        inputs=stage_input_flags,
        run=run_flags(),
        seed="",


rule predict:
    """Every probability the protocols read (both forward passes), for a split's available clips,
    by one run's model: the test split, and the validation split where a protocol calibrates."""
    input:
        checkpoint=final_checkpoint,
        pack=out("packed/{split}"),
        split=lambda wildcards: ANNOTATIONS[wildcards.split],
        classes=ANNOTATIONS["classes"],
    output:
        f"{RUN}/predictions/{{split}}.npz",
    log:
        out("logs/predict/{run}_seed{seed}_{split}.log"),
    benchmark:
        out("benchmarks/predict/{run}_seed{seed}_{split}.tsv")
    wildcard_constraints:
        split="val|test",
    conda:
        "../../envs/model.yaml"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        flags=cli_flags(config["predict"]),
    shell:
        "avvp predict --checkpoint {input.checkpoint:q} --pack {input.pack:q} --split-csv {input.split:q}"
        " --classes {input.classes:q} {params.flags} --out {output:q} > {log:q} 2>&1"


rule calibrate:
    """Per-class gate thresholds of a protocol that tunes them on the validation split (CMPAE's
    rule), from the run's validation predictions: an input of evaluation only."""
    input:
        unpack(lambda wildcards: protocol_files(wildcards, "val")),
        predictions=f"{RUN}/predictions/val.npz",
        split=ANNOTATIONS["val"],
        audio_csv=ANNOTATIONS["eval_audio"],
        visual_csv=ANNOTATIONS["eval_visual"],
    output:
        f"{RUN}/calibration/{{protocol}}.json",
    log:
        out("logs/calibrate/{run}_seed{seed}_{protocol}.log"),
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        flags=lambda wildcards: protocol_flags(wildcards, "val"),
    shell:
        "avvp calibrate --predictions {input.predictions:q} --split-csv {input.split:q}"
        " --audio-csv {input.audio_csv:q} --visual-csv {input.visual_csv:q} {params.flags}"
        " --out {output:q} > {log:q} 2>&1"


rule evaluate:
    """One run's ten numbers on the test split under one protocol (evaluate.protocols): a protocol
    change reruns evaluation and metrics, never training or prediction."""
    input:
        unpack(protocol_files),
        predictions=f"{RUN}/predictions/test.npz",
        split=ANNOTATIONS["test"],
        audio_csv=ANNOTATIONS["eval_audio"],
        visual_csv=ANNOTATIONS["eval_visual"],
        other_splits=[ANNOTATIONS["train"], ANNOTATIONS["val"]],
    output:
        scores=f"{RUN}/evaluation/{{protocol}}/test.json",
        events=f"{RUN}/evaluation/{{protocol}}/test_events.tsv",
    log:
        out("logs/evaluate/{run}_seed{seed}_{protocol}.log"),
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        flags=protocol_flags,
    shell:
        "avvp evaluate --predictions {input.predictions:q} --split-csv {input.split:q}"
        " --audio-csv {input.audio_csv:q} --visual-csv {input.visual_csv:q}"
        " --known-csv {input.other_splits:q} {params.flags}"
        " --out {output.scores:q} --events-out {output.events:q} > {log:q} 2>&1"


rule metrics:
    """metrics.json: every run's scores with each run's mean and sd over seeds, how many clips of
    each split were used and scored, and what produced them (provenance: config, stage settings, code
    and package versions, checksums of checkpoints, annotation files and feature weights)."""
    input:
        scores=evaluations(),
        packs=expand(out("packed/{split}"), split=SPLITS),
        checkpoints=trained_models(),
        explained=[folder for *_, folder in explained_passes()],
        annotations=list(ANNOTATIONS.values()),
        manifest=manifest_input(),
        features=feature_dirs(),
    output:
        out("metrics.json"),
    log:
        out("logs/metrics.log"),
    conda:
        "../../envs/report.yaml"
    params:
        dataset={"name": DATASET["name"], "mode": MODE},
        runs=[[r, s] for r in RUNS for s in SEEDS],
        protocols=protocols_param(),
        methods={  # metrics.json's `methods`: one entry per run name
            r: {"label": run_label(r), "final_stage": run_method(r).final_stage, "features": run_features(r)}
            for r in RUNS
        },
        stage_settings=run_stage_sections(),
        explained=explained_passes(),
        weights=weights_files(),
        ffmpeg=[f"{EXPERIMENT}/frames/{shard}/ffmpeg.json" for shard in SHARDS],
    script:
        "../scripts/metrics.py"
