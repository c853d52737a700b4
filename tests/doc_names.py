"""Find the names that README.md and docs/*.md write in backticks and say which no longer exist.

The docs name modules, functions, classes, files, workflow rules and command-line options; code moves
and the docs do not follow by themselves. `stale_names()` reads every doc, decides what kind of name
each code span is, and checks it against the source tree without running the pipeline:

- `avvp COMMAND --opt ...` (inline, or a line of a fenced block): COMMAND is a command of `avvp` and
  every `--opt` is an option of its parser (built in-process, only that command's arguments, as
  `avvp COMMAND --help` does; a command with `--stage` has every stage's settings). `STAGE --opt`
  (e.g. `ma_mmil_stage3 --refined R`): an option of the command whose `--stage` offers STAGE.
- `avvp.x.y` / `avvp.x.y.Name.member`: the longest prefix is a module (importlib.util.find_spec),
  the rest is defined in it (read with ast, not imported). An entry-point group name (a string
  literal in src/avvp such as "avvp.feature_kinds") is accepted as such.
- `module.name` whose first part is the last part of an avvp module (`calibration.x`): some such
  module defines the rest. `Class.member` for a class defined in avvp: the class (or a base) has it.
  Dotted names rooted at a section of the workflow config (`stages.ma_mmil_stage3.faithful`,
  `train.seeds`) are config keys: the config schema, completed from the registries, has that path.
  Those rooted at a metrics.json section (`evaluation.annotation_checks`) are not checked.
- `name()`: a def or class of that name somewhere in src/ or workflow/. A capitalised word
  (`TrainSettings`, `Pass`, or `Pass(id, ...)`): a class, def or assignment in src/ or workflow/, a
  name they import, or a builtin. ALL-CAPS words are not checked (constants and environment
  variables of other tools look alike), nor bare snake_case words (config keys, JSON keys, fields).
- A file path (has a `/` or a known suffix): it exists; with a placeholder (`src/avvp/methods/<method>.py`)
  the folder before it exists; see `exempt_path` and `path_bases` for what is not checked.
- A workflow rule (rule `name`, or the first column of a table headed "rule"): defined by
  `rule name:`, `checkpoint name:` or `use rule ... as name` in Snakefile or workflow/rules/*.smk.
- In fenced python blocks, `from avvp.m import a, b`: the module exists and defines each name; in
  other fenced blocks, every `avvp.x.y` token is a module path as above.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "avvp"
WORKFLOW_FILES = (REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk")))

# A path with one of these endings is a file path even without a `/`.
FILE_SUFFIXES = (".py", ".smk", ".yaml", ".yml", ".json", ".md", ".txt", ".tsv", ".csv", ".npy", ".pt",
                 ".npz", ".html", ".png", ".sh", ".toml")
# Paths that name what a run writes, not what the repository holds.
OUTPUT_PREFIXES = ("results/", ".venv", ".snakemake/")
# Placeholder characters: `<id>`, `{train,val}`, globs, `~`, `$TORCH_HOME`, `%06d`.
PLACEHOLDER_CHARS = "<{*~$%"
# File names a run writes inside its folders (a stage folder, a features folder, a parse output).
OUTPUT_FILES = frozenset({
    "model.pt", "last.pt", "log.csv", "summary.json", "labels.json", "weights.json", "metrics.json",
    "failed.tsv", "test_events.tsv", "audio_labels.tsv", "visual_labels.tsv", "train.lock", "index.html",
})
# Files of other projects that the docs describe: the released checkpoints, VALOR's scripts, UWAV's
# data layout (UnAV-100's annotations, its feature folders and prompt embeddings).
EXTERNAL_FILES = frozenset({
    "MMIL_Net.pt", "630k-fusion-best.pt", "630k-audioset-fusion-best.pt", "main_network.py", "main_avvp.py",
    "unav100_annotations.json", "segment_feats", "all_event_feats.npy",
})
# Folders searched for a bare file name such as `calibration.py` (never results or the venv).
OWN_TREES = ("src", "workflow", "tests", "benchmarks", "config", "data", "scripts", "docs", "envs", "profiles")

IDENT = r"[A-Za-z_]\w*"
DOTTED = re.compile(rf"{IDENT}(?:\.{IDENT})+")
CLASS_LIKE = re.compile(r"[A-Z][A-Za-z0-9]*[a-z][A-Za-z0-9]*")  # FeatureKind, Pass, OSError; not PUBLISHED
OPTION = re.compile(r"^[\[(]*(--[a-z0-9][a-z0-9-]*)")
FENCED_AVVP = re.compile(rf"\bavvp(?:\.{IDENT})+")


@dataclass(frozen=True)
class Span:
    """One piece of doc text to classify: an inline code span, or one line of a fenced block."""
    file: str
    line: int
    text: str
    fence: str | None = None  # the fenced block's language ("" when none); None for inline code


@dataclass(frozen=True)
class Finding:
    """A name that was checked; `problem` is None when it exists."""
    file: str
    line: int
    kind: str
    name: str
    problem: str | None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind} `{self.name}`: {self.problem}"


# --- reading the docs -------------------------------------------------------------------------------

def doc_files() -> list[Path]:
    """README.md and docs/*.md: every page a user reads."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def split_fences(lines: list[str]) -> tuple[list[str], list[tuple[int, str, str]]]:
    """The lines with fenced blocks blanked (so inline spans keep their line numbers), and the fenced
    lines as (line number, language, text)."""
    prose, fenced, fence = [], [], None
    for number, line in enumerate(lines, 1):
        marker = line.strip().startswith("```")
        if marker:
            fence = line.strip()[3:].strip() if fence is None else None
            prose.append("")
        elif fence is not None:
            fenced.append((number, fence, line))
            prose.append("")
        else:
            prose.append(line)
    return prose, fenced


def spans(path: Path) -> Iterator[Span]:
    """Inline code spans (which may wrap onto the next line of a paragraph) and fenced lines of a doc."""
    name = str(path.relative_to(REPO))
    prose, fenced = split_fences(path.read_text(encoding="utf-8").splitlines())
    text = "\n".join(prose)
    for match in re.finditer(r"`([^`]+)`", text):
        if "\n\n" in match.group(1):  # an unmatched backtick; markdown does not span paragraphs
            continue
        body = " ".join(match.group(1).replace("\\|", "|").split())
        yield Span(name, text.count("\n", 0, match.start()) + 1, body)
    for number, language, line in fenced:
        yield Span(name, number, line, language)


def table_column(lines: list[str], header: str) -> Iterator[tuple[int, str]]:
    """(line number, cell) of the column titled `header` in every markdown table of `lines`."""
    column = None
    for number, line in enumerate(lines, 1):
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.lstrip().startswith("|") else None
        if cells is None:
            column = None
        elif column is None:
            lowered = [c.lower() for c in cells]
            column = lowered.index(header) if header in lowered else -1
        elif column >= 0 and not set(cells[0]) <= set("-: ") and column < len(cells):
            yield number, cells[column]


# --- what the source tree defines --------------------------------------------------------------------

@cache
def module_files() -> dict[str, Path]:
    """Every avvp module and package -> its source file (a package's __init__.py)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


@cache
def parsed(path: Path) -> ast.Module:
    """A source file's syntax tree (parsed once)."""
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def assigned_names(target: ast.expr) -> Iterator[str]:
    """The plain names an assignment target binds (tuples unpacked)."""
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, (ast.Tuple, ast.List)):
        for element in target.elts:
            yield from assigned_names(element)


def bound_names(body: Iterable[ast.stmt]) -> set[str]:
    """Names a block binds at its own level: defs, classes, assignments, imports; if/try bodies count
    (TYPE_CHECKING imports, optional imports), function bodies do not."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(assigned_names(target))
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            names.update(assigned_names(node.target))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            names |= bound_names([*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                                  *(s for h in getattr(node, "handlers", []) for s in h.body)])
    return names


@cache
def module_names(module: str) -> frozenset[str]:
    """What `import module; module.X` can reach without running it: its top-level names and, for a
    package, its submodules."""
    names = bound_names(parsed(module_files()[module]).body)
    names |= {m.rsplit(".", 1)[1] for m in module_files() if m.rpartition(".")[0] == module}
    return frozenset(names)


@cache
def classes() -> dict[str, list[ast.ClassDef]]:
    """Every class defined anywhere in avvp, by name (a name may be defined more than once)."""
    found: dict[str, list[ast.ClassDef]] = {}
    for path in module_files().values():
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.ClassDef):
                found.setdefault(node.name, []).append(node)
    return found


def class_has(name: str, member: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether some avvp class `name` defines `member` itself or through a base. A base that is not an
    avvp class (NamedTuple, nn.Module, Enum) may provide anything, so it counts as having it."""
    for node in classes().get(name, []):
        if member in bound_names(node.body):
            return True
        for base in node.bases:
            base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
            if base_name in seen or base_name == name:
                continue
            if base_name not in classes() or class_has(base_name, member, seen | {name}):
                return True
    return False


@cache
def source_definitions() -> frozenset[str]:
    """Every def and class name anywhere in src/ and workflow/ (methods and nested ones included), and
    every `def name(` of the Snakemake files."""
    names = set()
    for path in [*SRC.rglob("*.py"), *(REPO / "workflow").rglob("*.py")]:
        names |= {n.name for n in ast.walk(parsed(path))
                  if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for path in WORKFLOW_FILES:
        names |= set(re.findall(rf"^\s*def ({IDENT})\(", path.read_text(encoding="utf-8"), re.M))
    return frozenset(names)


@cache
def source_bindings() -> frozenset[str]:
    """Every name src/ and workflow/ Python binds anywhere (assignments and imports included): a
    CamelCase name there is real even when it comes from another package."""
    names = set(source_definitions())
    for path in [*SRC.rglob("*.py"), *(REPO / "workflow").rglob("*.py")]:
        for node in ast.walk(parsed(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[-1] for a in node.names)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return frozenset(names)


@cache
def source_strings() -> frozenset[str]:
    """Every string literal of src/avvp (entry-point group names live there, e.g. "avvp.methods")."""
    return frozenset(n.value for p in module_files().values() for n in ast.walk(parsed(p))
                     if isinstance(n, ast.Constant) and isinstance(n.value, str))


@cache
def rules() -> frozenset[str]:
    """The workflow's rule names: `rule x:`, `checkpoint x:` and `use rule ... as x`."""
    names = set()
    for path in WORKFLOW_FILES:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(rf"^\s*(?:rule|checkpoint)\s+({IDENT})\s*:", text, re.M))
        names |= set(re.findall(rf"^\s*use rule .*? as ({IDENT})", text, re.M))
    return frozenset(names)


@cache
def data_key_roots() -> frozenset[str]:
    """Top-level sections of the workflow config and of metrics.json: `stages.han`, `model.features`,
    `evaluation.annotation_checks` are keys of these, not Python names."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text(encoding="utf-8"))
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text(encoding="utf-8"))
    metrics = json.loads((PACKAGE / "schemas" / "metrics.schema.json").read_text(encoding="utf-8"))
    return frozenset([*config, *schema.get("properties", {}), *metrics.get("properties", {})])


# --- the command line ---------------------------------------------------------------------------------

@cache
def command_options(command: str | None) -> frozenset[str] | None:
    """The option strings `avvp COMMAND` accepts (`avvp`'s own for None); None if there is no such
    command. Built in-process like `avvp COMMAND --help`: only that command's arguments, no heavy import."""
    from avvp.cli import COMMANDS, build_parser

    if command is not None and command not in COMMANDS:
        return None
    parser = build_parser(command)
    if command is not None:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    return frozenset(o for action in parser._actions for o in action.option_strings)


@cache
def stage_commands() -> dict[str, str]:
    """Stage id -> the command whose `--stage` offers it (train for training stages, else the pass's)."""
    from avvp.cli import COMMANDS, build_parser

    found: dict[str, str] = {}
    for command in COMMANDS:
        sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
        for action in sub.choices[command]._actions:
            if "--stage" in action.option_strings:
                found.update((stage, command) for stage in action.choices or ())
    return found


def check_options(span: Span, commands: list[str | None], words: list[str], shown: str) -> Iterator[Finding]:
    """Each `--opt` among `words` against each of `commands` (a `pack/train` span names two)."""
    for command in commands:
        accepted = command_options(command)
        if accepted is None:
            yield Finding(span.file, span.line, "command", f"avvp {command}", "no such avvp command")
            continue
        yield Finding(span.file, span.line, "command", f"avvp {command or ''}".strip(), None)
        for word in words:
            option = OPTION.match(word)
            if option:
                flag = option.group(1)
                problem = None if flag in accepted else f"not an option of `{shown}`"
                yield Finding(span.file, span.line, "option", f"{shown} {flag}", problem)


def check_command(span: Span) -> Iterator[Finding]:
    """`avvp COMMAND --opt ...`: the command exists and takes every option written after it."""
    words = span.text.split()
    if len(words) > 1 and not words[1].startswith("-"):
        yield from check_options(span, list(words[1].split("/")), words[2:], f"avvp {words[1]}")
    else:
        yield from check_options(span, [None], words[1:], "avvp")


def check_stage_options(span: Span) -> Iterator[Finding]:
    """`STAGE --opt ...` (a stage id and its own options): the stage's command takes them."""
    words = span.text.split()
    command = stage_commands()[words[0]]
    yield from check_options(span, [command], words[1:], f"avvp {command} --stage {words[0]}")


# --- modules, dotted names and functions ---------------------------------------------------------------

def find_module(name: str) -> bool:
    """Whether `name` is an importable module (find_spec imports only its parent packages)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def resolve_attributes(module: str, attributes: list[str]) -> str | None:
    """None when `module` defines attributes[0] (and, for a class, the member attributes[1]); else
    what is missing. Deeper chains (`x.y.z` on a non-class) are not followed."""
    if not attributes:
        return None
    first = attributes[0]
    if module not in module_files() or first not in module_names(module):
        return f"{module} has no `{first}`"
    if len(attributes) > 1 and first in classes() and not class_has(first, attributes[1]):
        return f"class {first} has no `{attributes[1]}`"
    return None


def check_avvp_dotted(span: Span, name: str) -> Finding:
    """`avvp.x.y[.attr...]`: the longest importable prefix, then the rest read from its source."""
    parts = name.split(".")
    for cut in range(len(parts), 1, -1):
        module = ".".join(parts[:cut])
        if find_module(module):
            if cut == len(parts):
                return Finding(span.file, span.line, "module", name, None)
            return Finding(span.file, span.line, "name", name, resolve_attributes(module, parts[cut:]))
    if name in source_strings():
        return Finding(span.file, span.line, "entry-point group", name, None)
    return Finding(span.file, span.line, "module", name, f"no module {parts[0]}.{parts[1]}")


def modules_ending(last: str) -> list[str]:
    """The avvp modules whose last component is `last` (`calibration` -> avvp.extractors.parts.calibration)."""
    return [m for m in module_files() if m.rsplit(".", 1)[-1] == last and m != "avvp"]


@cache
def config_schema_tree() -> dict:
    """The workflow config's schema as the workflow completes it (stage sections and feature kinds
    from the registries)."""
    from avvp.workflow.config_schema import config_schema

    return config_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")


def config_key_problem(parts: list[str]) -> str | None:
    """Why `a.b.c` is not a key path of the workflow config, or None when it is (a key under a
    mapping of free names, such as `evaluate.define.<name>`, is one)."""
    tree = config_schema_tree()
    schema = tree
    for depth, part in enumerate(parts):
        node = schema.get("properties", {}).get(part)
        if node is None and isinstance(schema.get("additionalProperties"), dict):
            node = schema["additionalProperties"]
        if node is None:
            return f"the workflow config has no key {'.'.join(parts[:depth + 1])}"
        schema = resolved(node, tree)
    return None


def resolved(schema: dict, tree: dict) -> dict:
    """A schema node with its `$ref` (`#/definitions/x`) followed."""
    while "$ref" in schema:
        target = tree
        for step in schema["$ref"].removeprefix("#/").split("/"):
            target = target[step]
        schema = target
    return schema


def check_dotted(span: Span, name: str) -> Finding | None:
    """A dotted name: `avvp.…`, `module.name` of an avvp module, or `Class.member` of an avvp class.
    None when it is none of these (a config key, another library's name, a variable)."""
    parts = name.split(".")
    if parts[0] == "avvp":
        return check_avvp_dotted(span, name)
    if (parts[0] in config_schema_tree().get("properties", {}) and name not in OUTPUT_FILES
            and not any(c in name for c in PLACEHOLDER_CHARS)):
        return Finding(span.file, span.line, "config key", name, config_key_problem(parts))
    candidates = modules_ending(parts[0])
    if candidates:
        problems = [resolve_attributes(m, parts[1:]) for m in candidates]
        if None in problems:
            return Finding(span.file, span.line, "name", name, None)
        if parts[0] in data_key_roots():
            return None
        return Finding(span.file, span.line, "name", name, "; ".join(p for p in problems if p))
    if parts[0] in classes():
        problem = None if class_has(parts[0], parts[1]) else f"class {parts[0]} has no `{parts[1]}`"
        return Finding(span.file, span.line, "class member", name, problem)
    return None


def check_function(span: Span, name: str) -> Finding:
    """`name()`: some def or class of that name in src/ or workflow/."""
    problem = None if name in source_definitions() else "defined nowhere in src/ or workflow/"
    return Finding(span.file, span.line, "function", f"{name}()", problem)


def check_class(span: Span, name: str) -> Finding:
    """A capitalised word (`TrainSettings`, `Pass`): a class (or other name) that src/ or workflow/
    defines or imports, or a builtin (`ValueError`)."""
    known = name in source_bindings() or hasattr(builtins, name)
    return Finding(span.file, span.line, "class", name, None if known else "defined nowhere in src/ or workflow/")


def check_python_block(file: str, first_line: int, code: str) -> Iterator[Finding]:
    """`from avvp.m import a, b` in a fenced python block: the module exists and defines a and b."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "avvp":
            line = first_line + node.lineno - 1
            if not find_module(node.module):
                yield Finding(file, line, "module", node.module, f"no module {node.module}")
                continue
            yield Finding(file, line, "module", node.module, None)
            for alias in node.names:
                yield Finding(file, line, "name", f"{node.module}.{alias.name}",
                              resolve_attributes(node.module, [alias.name]))


# --- files ---------------------------------------------------------------------------------------------

def is_placeholder(component: str) -> bool:
    """A path part that stands for a name: `<id>`, `{a,b}`, a glob, `~`, `$VAR`, `%06d`, or capitals
    like `O`, `F`, `KIND`, `ROOT`, `DIR`, `P.npz`, `R2.tsv`."""
    return (any(c in component for c in PLACEHOLDER_CHARS)
            or re.fullmatch(r"[A-Z][A-Z0-9]{0,3}", component.split(".")[0]) is not None)


def exempt_path(path: str) -> bool:
    """Paths that cannot exist in a checkout: run outputs (results/, .snakemake/), the venv, a bare
    suffix (`.npy`), the files a run writes, and the released checkpoints and VALOR scripts the docs
    describe."""
    return (path.startswith(OUTPUT_PREFIXES) or re.fullmatch(r"\.\w+", path) is not None
            or path.rsplit("/", 1)[-1] in OUTPUT_FILES | EXTERNAL_FILES)


def known_part(path: str) -> str | None:
    """The path up to its first placeholder part (`src/avvp/methods/<method>.py` -> `src/avvp/methods/`),
    the path itself when it has none, None when it starts with one."""
    parts = path.split("/")
    cut = next((i for i, part in enumerate(parts) if part and is_placeholder(part)), None)
    if cut is None:
        return path
    return "/".join(parts[:cut]) + "/" if cut else None


def path_bases(path: str) -> list[Path] | None:
    """Where a path with a `/` may be rooted in this repository: the root, src/ (`avvp/...`), or the
    package (`extractors/__init__.py`, only for .py files and folders). None: not this repository's
    (VALOR's `utils/...`, a Hub id `openai/clip-...`, a released-layout folder `vggish/`)."""
    first = path.split("/")[0]
    if not first or first in (".", ".."):
        return None
    if (REPO / first).exists():
        return [REPO]
    if first == "avvp":
        return [SRC]
    if (PACKAGE / first).is_dir() and (path.endswith((".py", "/"))):
        return [PACKAGE]
    return None


@cache
def own_file_names() -> frozenset[str]:
    """The names of every file in the repository's own folders (for a bare `calibration.py`)."""
    return frozenset(p.name for tree in OWN_TREES for p in (REPO / tree).rglob("*")
                     if "__pycache__" not in p.parts)


def check_path(span: Span, text: str, repo_only: bool = False) -> Finding | None:
    """A file path exists (None when exempt or not this repository's). `path.py:name` also needs the
    module to define `name`. With repo_only, only paths rooted at a top-level folder are checked."""
    path, _, attribute = text.partition(":") if re.search(r"\.py:\w+$", text) else (text, "", "")
    path = known_part(path) if not exempt_path(path) else None
    if not path:
        return None
    if "/" not in path:
        if repo_only:
            return None
        problem = None if path in own_file_names() or (REPO / path).exists() else "no such file in the repository"
        return Finding(span.file, span.line, "file", text, problem)
    bases = path_bases(path)
    if bases is None or (repo_only and bases != [REPO]):
        return None
    if not any((base / path).exists() for base in bases):
        return Finding(span.file, span.line, "path", text, "no such path")
    if attribute:
        module = ".".join(Path(path).with_suffix("").parts).removesuffix(".__init__")
        module = module[module.index("avvp"):] if "avvp" in module else module
        return Finding(span.file, span.line, "name", text, resolve_attributes(module, [attribute]))
    return Finding(span.file, span.line, "path", text, None)


# --- one span, one doc ---------------------------------------------------------------------------------

def check_inline(span: Span) -> Iterator[Finding]:
    """Decide what an inline code span names and check it (spans that name nothing checkable are
    skipped: config values, shell commands of other tools, prose)."""
    text = span.text
    words = text.split()
    if words[0] == "avvp" and len(words) > 1:
        yield from check_command(span)
    elif len(words) > 1 and words[0] in stage_commands() and words[1].startswith("--"):
        yield from check_stage_options(span)
    elif match := re.fullmatch(rf"({IDENT}(?:\.{IDENT})*)\(\)(?: -> .*)?", text):
        found = match.group(1)
        yield from filter(None, [check_dotted(span, found) if "." in found else check_function(span, found)])
    elif match := re.fullmatch(r"([A-Z]\w*)\(.+\)", text):  # a record built with its fields: `Pass(id, ...)`
        yield check_class(span, match.group(1))
    elif len(words) > 1:  # a shell line of another tool: only its paths into this repository
        yield from filter(None, (check_path(span, w, repo_only=True) for w in words if "/" in w))
    elif "/" in text or text.endswith(FILE_SUFFIXES) or (REPO / text).is_file():  # also `Snakefile`
        yield from filter(None, [check_path(span, text)])
    elif DOTTED.fullmatch(text.split("=")[0]):
        yield from filter(None, [check_dotted(span, text.split("=")[0])])
    elif CLASS_LIKE.fullmatch(text):
        yield check_class(span, text)


def check_fenced(span: Span) -> Iterator[Finding]:
    """A line of a non-python fenced block: an `avvp COMMAND` line, or `avvp.x` module tokens."""
    line = span.text.strip()
    if line.startswith("avvp ") or line == "avvp":
        yield from check_command(Span(span.file, span.line, line.split("#")[0].strip()))
    else:
        for token in FENCED_AVVP.findall(line):
            yield check_avvp_dotted(span, token)


def check_rules(path: Path) -> Iterator[Finding]:
    """Rule names: "rule `x`" in prose and the cells of a table column headed "rule"."""
    name = str(path.relative_to(REPO))
    prose, _ = split_fences(path.read_text(encoding="utf-8").splitlines())
    mentions = [(n, m) for n, line in enumerate(prose, 1) for m in re.findall(rf"\brules? `({IDENT})`", line)]
    mentions += [(n, word.strip(" `")) for n, cell in table_column(prose, "rule") for word in cell.split(",")]
    for number, rule in mentions:
        if re.fullmatch(IDENT, rule):
            problem = None if rule in rules() else "no such rule in Snakefile or workflow/rules/"
            yield Finding(name, number, "rule", rule, problem)


def check_doc(path: Path) -> list[Finding]:
    """Every checkable name of one doc, with what (if anything) is wrong with it."""
    findings: list[Finding] = list(check_rules(path))
    python_block: list[Span] = []
    for span in spans(path):
        if span.fence is None:
            findings += check_inline(span)
        elif span.fence == "python":
            python_block.append(span)
        else:
            findings += check_fenced(span)
    for block in group_blocks(python_block):
        findings += check_python_block(block[0].file, block[0].line, "\n".join(s.text for s in block))
    return findings


def group_blocks(lines: list[Span]) -> Iterator[list[Span]]:
    """Consecutive fenced lines -> one block each (a python block is parsed whole)."""
    block: list[Span] = []
    for span in lines:
        if block and span.line != block[-1].line + 1:
            yield block
            block = []
        block.append(span)
    if block:
        yield block


def all_findings() -> list[Finding]:
    """Every checked name of every doc."""
    return [finding for path in doc_files() for finding in check_doc(path)]


def stale_names() -> tuple[list[Finding], int]:
    """The names the docs get wrong, and how many names were checked in all."""
    findings = all_findings()
    return [f for f in findings if f.problem], len(findings)
