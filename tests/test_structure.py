"""The package's shape: no import cycles, torch loaded only by the commands that need it, the
workflow formatted as the Snakemake workflow catalog asks (the lint: test_workflow.py), and seed-format
checkpoints still loading to identical predictions."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "avvp"
REPO = SRC.parents[1]


def module_imports() -> dict[str, set[str]]:
    """avvp module -> the avvp modules it imports at module level (not inside functions)."""
    names = {".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found = set()
        for node in tree.body:  # top-level statements only (TYPE_CHECKING blocks are skipped)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("avvp"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("avvp"))
        graph[name] = {m for m in found if m in names and m != name}
    return graph


def test_no_import_cycles() -> None:
    graph = module_imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(path[path.index(nxt):] + [nxt])}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])


# The sub-packages in the order of the pipeline, lowest first; a module imports only from its own
# sub-package or a lower one (equal numbers are siblings that never import each other).
LAYERS = {"base": 1, "evaluation": 2, "clips": 3, "extractors": 4, "features": 5, "model": 6, "methods": 7,
          "parsing": 8, "reporting": 8, "workflow": 8, "cli": 9}


def test_sub_packages_import_only_from_lower_layers() -> None:
    """Every import, those inside functions too, runs down the pipeline: no upward arrow."""
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        home = path.relative_to(SRC).parts[0]
        if home not in LAYERS:
            assert path.parent == SRC, f"{path}: a sub-package missing from LAYERS"
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "avvp" and len(parts) > 1 and parts[1] != home:
                    if parts[1] not in LAYERS or LAYERS[parts[1]] >= LAYERS[home]:
                        upward.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_hashing_a_file_loads_neither_numpy_nor_torch(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"avvp")
    loaded = loaded_modules(f"from avvp.base.files import file_sha256\nfile_sha256({str(tmp_path / 'f')!r})")
    assert "torch" not in loaded and "numpy" not in loaded


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_help_and_evaluate_do_not_load_torch(tmp_path: Path) -> None:
    help_modules = loaded_modules("from avvp.cli import build_parser\nbuild_parser()")
    assert "torch" not in help_modules and "numpy" not in help_modules
    evaluate = loaded_modules("from avvp.cli import build_parser\nbuild_parser('evaluate')\n"
                              "import avvp.cli.evaluate, avvp.evaluation.scores, avvp.model.predictions, avvp.evaluation.events")
    assert "torch" not in evaluate
    registries = loaded_modules("from avvp.methods.stages import stages\nfrom avvp.extractors import feature_kinds\n"
                                "stages(); feature_kinds()\nimport avvp.workflow.config_schema")
    assert "torch" not in registries


@pytest.mark.skipif(shutil.which("snakefmt", path=str(Path(sys.executable).parent)) is None,
                    reason="snakefmt is not installed (make setup installs it)")
def test_workflow_is_formatted_with_snakefmt() -> None:
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    # `snakefmt --check Snakefile workflow/`: every Snakefile and .smk file under workflow/.
    proc = subprocess.run([snakefmt, "--check", "--diff", "Snakefile", "workflow/"], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_seed_format_checkpoints_give_identical_predictions(tmp_path: Path) -> None:
    """A checkpoint as the first version wrote it (model options without a feature set, the old
    config keys) loads into the same network and predicts the same probabilities."""
    import torch

    from avvp.model.checkpoint import load_han
    from avvp.model.han import HAN

    torch.manual_seed(0)
    model = HAN(4, dropout=0.1, cross_modal=False, visual_dropout=0.5).eval()
    old = {"state_dict": model.state_dict(), "classes": ["a", "b", "c", "d"],
           "config": {"epochs": 25, "lr": 5e-4, "batch_size": 128, "select": "event_audio", "seed": 1,
                      "device": "auto", "progress": False},
           "model_options": {"dropout": 0.1, "cross_modal": False, "visual_dropout": 0.5},
           "objective": {"objective": "HanObjective", "smoothing": 0.1}, "targets_sha256": None, "epoch": 3}
    torch.save(old, tmp_path / "model.pt")
    loaded, classes, _ = load_han(tmp_path / "model.pt")
    inputs = (torch.rand(3, 10, 128), torch.rand(3, 80, 2048), torch.rand(3, 10, 512))
    with torch.no_grad():
        for ours, theirs in zip(loaded(*inputs), model(*inputs)):
            assert torch.equal(ours, theirs)
    assert classes == ["a", "b", "c", "d"] and loaded.features == ("vggish", "res152", "r2plus1d_18")
    assert loaded.options() == {"features": ["vggish", "res152", "r2plus1d_18"], "dropout": 0.1,
                                "cross_modal": False, "visual_dropout": 0.5}


@pytest.mark.parametrize("command", __import__("avvp.cli", fromlist=["COMMANDS"]).COMMANDS)
def test_every_command_and_option_says_what_it_is_for(command: str) -> None:
    """`avvp COMMAND --help` is a user's manual: a description and a help text for every option."""
    from avvp.cli import build_parser

    parser = build_parser(command)
    (sub,) = [a for a in parser._actions if a.dest == "command"]
    command_parser = sub.choices[command]
    assert (command_parser.description or "").strip(), f"avvp {command} has no description"
    silent = [a.option_strings[0] if a.option_strings else a.dest
              for a in command_parser._actions if not (a.help or "").strip()]
    assert not silent, f"avvp {command}: no help for {silent}"
