"""Figures of `snakemake --report results/report.html`: training curves, per-class F, the metrics
table, test timelines (not in features mode: no videos), and the summary on the report's front page."""

rule curves:
    """Loss and validation Type@AV per epoch of one method's final stage, its seeds overlaid."""
    input:
        lambda wildcards: [final_file(wildcards.method, s, "log.csv") for s in SEEDS],
    output:
        report(f"{REPORT}/curves/{{method}}.png", caption="../report/curves.rst", category="Training curves",
               labels={"method": "{method}"}),
    log:
        "results/logs/report/curves_{method}.log",
    params:
        labels=[f"seed {s}" for s in SEEDS],
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/curves.py"


rule per_class:
    """Audio and visual segment-level F per class of one method (mean over seeds)."""
    input:
        "results/metrics.json",
    output:
        report(f"{REPORT}/per_class/{{method}}.png", caption="../report/per_class.rst",
               category="Per-class F-scores", labels={"method": "{method}"}),
    log:
        "results/logs/report/per_class_{method}.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/per_class.py"


rule metrics_table:
    """All methods and seeds with mean and sd; on LLP, the published numbers beside them."""
    input:
        "results/metrics.json",
    output:
        report(f"{REPORT}/metrics.html", caption="../report/metrics.rst", category="Metrics"),
    params:
        labels=LABELS,
        published=is_llp(),
    log:
        "results/logs/report/metrics_table.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/metrics_table.py"


if MODE != "features":

    rule timelines:
        """A few test videos parsed by the first run's model, drawn beside their ground truth."""
        input:
            checkpoint=first_checkpoint(),
            manifest="results/manifest.tsv",
            videos=expand("results/videos/{shard}", shard=SHARDS),
            audio_csv=ANNOTATIONS["eval_audio"],
            visual_csv=ANNOTATIONS["eval_visual"],
        output:
            report(directory(f"{REPORT}/timelines"), patterns=["{name}.png"], caption="../report/timelines.rst",
                   category="Timelines"),
        params:
            n_videos=config["report"]["timelines"],
            videos=lambda wildcards: test_videos(),
            weights=lambda wildcards: weight_args(),
            evaluate=config["evaluate"],
            device=config["predict"]["device"],
        log:
            "results/logs/report/timelines.log",
        threads: 2
        resources:
            mem_mb=4000,
            runtime=30,
        conda:
            "../../envs/parse.yaml"
        script:
            "../scripts/timelines.py"


rule summary:
    """The report's front page: the random-weights warning, the metrics table and the figures."""
    input:
        metrics="results/metrics.json",
        table=f"{REPORT}/metrics.html",
        curves=expand(f"{REPORT}/curves/{{method}}.png", method=METHODS),
        per_class=expand(f"{REPORT}/per_class/{{method}}.png", method=METHODS),
        timelines=[] if MODE == "features" else [f"{REPORT}/timelines"],
    output:
        f"{REPORT}/summary.html",
    params:
        labels=LABELS,
    log:
        "results/logs/report/summary.log",
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/summary.py"
