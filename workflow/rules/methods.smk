"""MA-MMIL and JoMoLD: each stage a rule with cached outputs under results/runs/<method>/seed<N>/.

Every stage gets only its own config sub-section as parameters, so changing a later stage's setting
reruns that stage and what follows; earlier checkpoints, refined labels and ratios are reused.
The training stages are rule `train` with other outputs, inputs and settings.
"""

MA_MMIL = config["ma_mmil"]
JOMOLD = config["jomold"]


use rule train as train_ma_mmil_stage1 with:
    output:
        model="results/runs/ma_mmil/seed{seed}/stage1/model.pt",
        last="results/runs/ma_mmil/seed{seed}/stage1/last.pt",
        curve="results/runs/ma_mmil/seed{seed}/stage1/log.csv",
    params:
        method="ma_mmil_stage1",
        stage_inputs="",
        flags=train_flags(MA_MMIL["stage1"]),
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train/ma_mmil_stage1_seed{seed}.log",
    benchmark:
        "results/benchmarks/train/ma_mmil_stage1_seed{seed}.tsv"


rule refine_ma_mmil:
    """MA-MMIL stage 2: per-modality labels of the training split from the frozen stage-1 model
    (partner videos drawn with the run's seed)."""
    input:
        checkpoint="results/runs/ma_mmil/seed{seed}/stage1/model.pt",
        train_pack="results/packed/train",
    output:
        directory("results/runs/ma_mmil/seed{seed}/refined"),
    params:
        flags=cli_flags(MA_MMIL["refine"]),
        device=device_flag(),
    log:
        "results/logs/refine/ma_mmil_seed{seed}.log",
    benchmark:
        "results/benchmarks/refine/ma_mmil_seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["resources"]["gpu"],
    conda:
        "../../envs/model.yaml"
    shell:
        "avvp refine ma-mmil --checkpoint {input.checkpoint} --train-pack {input.train_pack}"
        " --seed {wildcards.seed} {params.device} {params.flags} --out-dir {output} > {log} 2>&1"


use rule train as train_ma_mmil_stage3 with:
    input:
        **TRAIN_INPUTS,
        refined="results/runs/ma_mmil/seed{seed}/refined",
    output:
        model="results/runs/ma_mmil/seed{seed}/stage3/model.pt",
        last="results/runs/ma_mmil/seed{seed}/stage3/last.pt",
        curve="results/runs/ma_mmil/seed{seed}/stage3/log.csv",
    params:
        method="ma_mmil_stage3",
        stage_inputs=lambda wildcards, input: (f"--audio-labels {input.refined}/audio_labels.tsv"
                                               f" --visual-labels {input.refined}/visual_labels.tsv"),
        flags=f"{train_flags(MA_MMIL['stage3'])} {faithful_flag(MA_MMIL['faithful'])}",
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train/ma_mmil_stage3_seed{seed}.log",
    benchmark:
        "results/benchmarks/train/ma_mmil_stage3_seed{seed}.tsv"


use rule train as train_jomold_estimator with:
    output:
        model="results/runs/jomold/seed{seed}/estimator/model.pt",
        last="results/runs/jomold/seed{seed}/estimator/last.pt",
        curve="results/runs/jomold/seed{seed}/estimator/log.csv",
    params:
        method="jomold_estimator",
        stage_inputs="",
        flags=f"{train_flags(JOMOLD['estimator'])} {faithful_flag(JOMOLD['faithful'])}",
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train/jomold_estimator_seed{seed}.log",
    benchmark:
        "results/benchmarks/train/jomold_estimator_seed{seed}.tsv"


rule jomold_ratios:
    """JoMoLD's per-class audio and visual noise ratios, from the frozen estimator."""
    input:
        checkpoint="results/runs/jomold/seed{seed}/estimator/model.pt",
        train_pack="results/packed/train",
    output:
        "results/runs/jomold/seed{seed}/ratios.json",
    params:
        flags=cli_flags(JOMOLD["ratios"]),
        device=device_flag(),
    log:
        "results/logs/refine/jomold_seed{seed}.log",
    benchmark:
        "results/benchmarks/refine/jomold_seed{seed}.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=config["resources"]["gpu"],
    conda:
        "../../envs/model.yaml"
    shell:
        "avvp refine jomold-ratios --checkpoint {input.checkpoint} --train-pack {input.train_pack}"
        " {params.device} {params.flags} --out {output} > {log} 2>&1"


use rule train as train_jomold with:
    input:
        **TRAIN_INPUTS,
        ratios="results/runs/jomold/seed{seed}/ratios.json",
    output:
        model="results/runs/jomold/seed{seed}/denoised/model.pt",
        last="results/runs/jomold/seed{seed}/denoised/last.pt",
        curve="results/runs/jomold/seed{seed}/denoised/log.csv",
    params:
        method="jomold",
        stage_inputs=lambda wildcards, input: f"--noise-ratios {input.ratios}",
        flags=f"{train_flags(JOMOLD['denoise'])} {faithful_flag(JOMOLD['faithful'])}",
        out_dir=subpath(output.model, parent=True),
    log:
        "results/logs/train/jomold_seed{seed}.log",
    benchmark:
        "results/benchmarks/train/jomold_seed{seed}.tsv"
