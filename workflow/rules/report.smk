"""Figures of `snakemake --report results/report.html`: training curves, per-class F, the metrics
table, test timelines (not in features mode: no videos), and the summary on the report's front page."""


rule curves:
    """Loss and validation Type@AV per epoch of one run's final stage, its seeds overlaid."""
    input:
        lambda wildcards: [
            f"{final_dir(wildcards.run, s)}/{name}" for s in SEEDS for name in ("log.csv", "summary.json")
        ],
    output:
        report(
            f"{REPORT}/curves/{{run}}.png",
            caption="../report/curves.rst",
            category="Training curves",
            labels={"run": "{run}"},
        ),
    log:
        out("logs/report/curves_{run}.log"),
    conda:
        "../../envs/report.yaml"
    params:
        labels=[f"seed {s}" for s in SEEDS],
        stages=lambda wildcards: [final_dir(wildcards.run, s) for s in SEEDS],
        weights=weights_files(),
    script:
        "../scripts/curves.py"


rule per_class:
    """Audio and visual segment-level F per class of one run (mean over seeds)."""
    input:
        out("metrics.json"),
    output:
        report(
            f"{REPORT}/per_class/{{run}}.png",
            caption="../report/per_class.rst",
            category="Per-class F-scores",
            labels={"run": "{run}"},
        ),
    log:
        out("logs/report/per_class_{run}.log"),
    conda:
        "../../envs/report.yaml"
    script:
        "../scripts/per_class.py"


rule metrics_table:
    """The leaderboard (every method under every protocol), then each method's seeds with mean and
    sd; on LLP, the published numbers beside them."""
    input:
        out("metrics.json"),
    output:
        report(f"{REPORT}/metrics.html", caption="../report/metrics.rst", category="Metrics"),
    log:
        out("logs/report/metrics_table.log"),
    conda:
        "../../envs/report.yaml"
    params:
        published=is_llp(),
    script:
        "../scripts/metrics_table.py"


if MODE != "features":

    use rule parse as timelines with:
        input:
            **TEST_PARSE_INPUTS,
        output:
            report(
                directory(f"{REPORT}/timelines"),
                patterns=["{name}.png"],
                caption="../report/timelines.rst",
                category="Timelines",
            ),
        log:
            out("logs/report/timelines.log"),
        benchmark:
            out("benchmarks/report/timelines.tsv")
        params:
            videos=lambda wildcards: test_videos(),
            limit=config["report"]["timelines"],
            out_dir=lambda wildcards, output: output[0],
            features=feature_roots(),
            settings=TEST_PARSE_SETTINGS,


rule summary:
    """The report's front page: the random-weights warning, the metrics table, a link to the viewer
    of the test split and the figures."""
    input:
        table=f"{REPORT}/metrics.html",
        curves=expand(f"{REPORT}/curves/{{run}}.png", run=RUNS),
        per_class=expand(f"{REPORT}/per_class/{{run}}.png", run=RUNS),
        timelines=[] if MODE == "features" else [f"{REPORT}/timelines"],
        viewer=[] if MODE == "features" else [out("parsed_test/index.html")],
    output:
        f"{REPORT}/summary.html",
    log:
        out("logs/report/summary.log"),
    conda:
        "../../envs/report.yaml"
    params:
        labels={r: run_label(r) for r in RUNS},
        experiment=lambda wildcards, output: str(Path(output[0]).parents[1]),  # the report's folder
    script:
        "../scripts/summary.py"
