"""One meaning per name in the workflow and the CLI: no workflow function shadows a name that
Snakemake puts into a Snakefile's globals (a `checkpoint` rule can be added), run names travel as
the `{run}` wildcard, passes run as `avvp pass` (`refine` its former name, an alias) in rules
run_pass / run_pass_all_seeds, and a setting's name becomes its `--flag` by one rule."""
from __future__ import annotations

import argparse
import ast
import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from workflow_helpers import REPO, copy_workflow, job_blocks, rule_counts, run_snakemake

# What Snakemake defines in every Snakefile's globals besides its io helpers (snakemake.workflow).
SNAKEMAKE_GLOBALS = {"shell", "workflow", "checkpoints", "scatter", "gather", "github", "gitlab", "gitfile",
                     "storage", "from_queue", "access", "config", "rules", "pep"}

PROBE_RULE = '''

checkpoint probe:
    output:
        "results/probe.txt",
    log:
        "results/logs/probe.log",
    shell:
        "touch {output} 2> {log}"
'''


def workflow_definitions() -> dict[str, str]:
    """Name -> file of every top-level function and assignment in Snakefile and workflow/rules/."""
    names: dict[str, str] = {}
    for path in [REPO / "Snakefile", *sorted((REPO / "workflow/rules").glob("*.smk"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            found = re.match(r"def (\w+)\(|(\w+)\s*(?::[^=]*)?=(?!=)", line)
            if found:
                names[found.group(1) or found.group(2)] = path.name
    return names


def test_workflow_defines_no_snakemake_global() -> None:
    import snakemake.ioflags
    import snakemake.ioutils

    injected = set(SNAKEMAKE_GLOBALS)
    for module in (snakemake.ioutils, snakemake.ioflags):
        helpers: dict = {}
        module.register_in_globals(helpers)
        injected |= set(helpers)
    clashes = {name: where for name, where in workflow_definitions().items() if name in injected}
    assert not clashes, f"workflow names that shadow Snakemake's globals: {clashes}"


def test_a_checkpoint_rule_can_be_added(tmp_path) -> None:
    """A trivial `checkpoint` rule appended to a copy of the workflow: the dry run plans it (it
    failed with "'function' object has no attribute 'register'" while common.smk defined
    `checkpoints()`)."""
    workdir = copy_workflow(tmp_path / "probe")
    with (workdir / "workflow/rules/report.smk").open("a", encoding="utf-8") as fh:
        fh.write(PROBE_RULE)
    output = run_snakemake(workdir, "results/metrics.json", "results/probe.txt", "-n", "--cores", "1").stdout
    assert "probe" in rule_counts(list(job_blocks(output).values()))


@pytest.mark.parametrize(("config", "pass_rule"), [("compare.yaml", "run_pass"), ("valor.yaml", "run_pass_all_seeds")])
def test_runs_are_the_run_wildcard_and_passes_the_run_pass_rules(tmp_path, config: str, pass_rule: str) -> None:
    workdir = copy_workflow(tmp_path / "plan")
    output = run_snakemake(workdir, "all", "-n", "-p", "--cores", "1", f"--configfile=config/{config}").stdout
    jobs = list(job_blocks(output).values())
    counts = rule_counts(jobs)
    assert counts[pass_rule] > 0 and not {"refine", "refine_all_seeds"} & set(counts)
    assert all(job.get("method") is None for job in jobs)
    runs = {job.get("run") for job in jobs if job.rule in ("train", pass_rule, "predict", "evaluate", "curves")}
    assert runs == set(yaml.safe_load((workdir / "config" / config).read_text())["train"]["methods"])
    assert "Shell command: avvp pass --stage " in output and "avvp refine" not in output
    folder = Path(config).stem  # the experiment's folder
    assert f"results/{folder}/logs/pass/" in output and "/logs/refine/" not in output


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Command name (and alias) -> its parser."""
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub.choices


def test_refine_is_an_alias_of_pass() -> None:
    """`avvp refine` (the command's former name) builds the same parser and runs the same code."""
    from avvp.cli import COMMANDS, build_parser

    assert "pass" in COMMANDS and "refine" not in COMMANDS
    argv = ["--stage", "valor_labels", "--train-pack", "pack", "--out-dir", "out", "--batch-size", "4"]
    parsed = {}
    for name in ("pass", "refine"):
        parser = build_parser(name)
        assert command_parsers(parser)["refine"] is command_parsers(parser)["pass"]
        parsed[name] = vars(parser.parse_args([name, *argv]))
    assert parsed["refine"].pop("command") == "refine" and parsed["pass"].pop("command") == "pass"
    assert parsed["refine"] == parsed["pass"]


def test_one_rule_turns_a_setting_name_into_its_flag() -> None:
    """option_flag is the only place that spells the rule; the CLI's stage options, StageInput.flag
    and the workflow's config-to-options all use it."""
    from avvp.cli import build_parser
    from avvp.methods.settings import option_flag
    from avvp.methods.stages import stages

    assert option_flag("batch_size") == "--batch-size" and option_flag("checkpoint") == "--checkpoint"
    options = {opt for action in command_parsers(build_parser("pass"))["pass"]._actions
               for opt in action.option_strings}
    for spec in stages().values():
        assert all(needed.flag == option_flag(needed.name) for needed in spec.inputs)
        if not spec.trains:
            assert {option_flag(f.name) for f in dataclasses.fields(spec.defaults)} <= options
    spelled = re.compile(r"""replace\(\s*["']_["']\s*,\s*["']-["']\s*\)""")
    users = {"src/avvp/cli/stage_args.py": "option_flag(", "src/avvp/methods/stages.py": "option_flag(",
             "workflow/rules/common.smk": "option_flag("}
    for name, call in users.items():
        text = (REPO / name).read_text(encoding="utf-8")
        assert call in text and not spelled.search(text), name
    tree = ast.parse((REPO / "src/avvp/methods/settings.py").read_text(encoding="utf-8"))
    assert "option_flag" in {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
