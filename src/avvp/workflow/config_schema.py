"""The workflow's config schema, completed from the registries.

`workflow/schemas/config.schema.yaml` describes the config's shape; the parts that depend on what
is registered are filled in here: the feature kinds (`model.features` items, one `features.<kind>`
section each), the methods (`train.methods` items) and one `stages.<id>` section per stage, whose
keys are that stage's settings fields (type, help, constraints; default null = the stage's
published value, which lives only in its spec).
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from avvp.base.atomic import atomic_output
from avvp.extractors import PUBLISHED, feature_kinds
from avvp.methods.settings import field_type
from avvp.methods.stages import methods, stages
from avvp.workflow.config_checks import ConfigError

JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string"}


def settings_schema(defaults: Any, description: str) -> dict[str, Any]:
    """A stage section: each settings field nullable, default null (= the published value)."""
    properties = {}
    for f in dataclasses.fields(defaults):
        value_type, _ = field_type(f)
        prop: dict[str, Any] = {"type": [JSON_TYPES[value_type], "null"], "default": None,
                                "description": f"{f.metadata.get('help', '')} (published: {getattr(defaults, f.name)})"}
        if f.metadata.get("choices"):
            prop["enum"] = [*f.metadata["choices"], None]
        for bound, key in (("minimum", "minimum"), ("maximum", "maximum"), ("below", "exclusiveMaximum")):
            if f.metadata.get(bound) is not None:
                prop[key] = f.metadata[bound]
        properties[f.name] = prop
    return {"type": "object", "additionalProperties": False, "default": {}, "description": description,
            "properties": properties}


def config_schema(base: str | Path) -> dict[str, Any]:
    """The base schema with the registered kinds, methods and stages filled in."""
    schema = yaml.safe_load(Path(base).read_text(encoding="utf-8"))
    kinds = feature_kinds()
    definitions = schema["definitions"]
    definitions["kind"]["enum"] = list(kinds)
    definitions["method"]["enum"] = list(methods())
    props = schema["properties"]
    props["features"]["properties"] = {name: {"$ref": "#/definitions/extractor", "default": {},
                                              "description": kind.description} for name, kind in kinds.items()}
    props["model"]["properties"]["features"]["default"] = list(PUBLISHED)
    props["stages"]["properties"] = {spec.id: settings_schema(spec.defaults, spec.description)
                                     for spec in stages().values()}
    return schema


def write_config_schema(base: str | Path, out: str | Path) -> Path:
    """Write the completed schema as JSON (for snakemake.utils.validate, which takes a file)."""
    out = Path(out).resolve()
    text = json.dumps(config_schema(base), indent=1)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        with atomic_output(out, "w") as fh:
            fh.write(text)
    return out


def check_config(config: dict[str, Any], schema_file: str | Path, config_files: Sequence[str | Path] = ()) -> None:
    """Refuse a config that the schema rejects, naming the key as the config writes it
    (`stages.han.dropout`); snakemake's own message names it `instance['stages']['han']['dropout']`.
    A target given after `--configfile` is read as one more config file (the option takes several):
    one of avvp's outputs among `config_files` gets that said instead."""
    import jsonschema

    for path in map(Path, config_files):
        if path.suffix not in (".yaml", ".yml", ".json") or _is_output(path):
            raise ConfigError(f"{path} was read as a config file: put the target before --configfile "
                              f"(snakemake {path} --configfile ...), or end the config files with --")
    schema = json.loads(Path(schema_file).read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        key = ".".join(str(part) for part in error.absolute_path) or "the config"
        raise ConfigError(f"{key}: {error.message}")


def _is_output(path: Path) -> bool:
    """A JSON file avvp wrote (metrics.json and the like name their `format`: avvp-...)."""
    if path.suffix != ".json" or not path.is_file():
        return False
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return isinstance(body, dict) and str(body.get("format", "")).startswith("avvp-")
