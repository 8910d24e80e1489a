#!/usr/bin/env python3
"""The options `vllm serve` accepts, read from a vLLM release's own wheel without importing it.

Run when the vLLM pin (DEFAULT_VLLM_IMAGE) changes:

    pip download vllm==X.Y.Z --no-deps -d /tmp/vllm
    python3 tools/vllm_flags.py /tmp/vllm/vllm-X.Y.Z-*.whl > operator/shinsa/planner/vllm_flags.json

Importing vLLM needs torch and a GPU build, so the parser is read from its source instead. `vllm
serve`'s parser (`vllm/entrypoints/common/cli_args.py` `make_arg_parser`) is the serve-only options
added there by name, then `FrontendArgs.add_cli_args` (one `--<field>` per field of
`BaseFrontendArgs`/`FrontendArgs`, a bool field also `--no-<field>`), then
`EngineArgs.add_cli_args` (`vllm/engine/arg_utils.py`: `group.add_argument("--x", "-x",
**<cls>_kwargs["field"])`, whose bool fields also get `--no-x` from `get_kwargs`'
BooleanOptionalAction). Checked against vLLM 0.33.0's files of those names.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import PurePosixPath

SERVE_PARSER = "vllm/entrypoints/common/cli_args.py"
ENGINE_ARGS = "vllm/engine/arg_utils.py"
ENVS = "vllm/envs.py"
FRONTEND_CLASSES = ("BaseFrontendArgs", "FrontendArgs")


def _flags_of_call(call: ast.Call) -> list[str]:
    return [
        arg.value
        for arg in call.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("-")
    ]


def _is_add_argument(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
    )


def _field_annotations(tree: ast.Module, classes: tuple[str, ...] | None = None) -> dict[str, dict[str, str]]:
    """Per class: its annotated fields and their annotation, as source text."""
    found: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and (classes is None or node.name in classes):
            fields = found.setdefault(node.name, {})
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = ast.unparse(item.annotation)
    return found


def _is_switch(annotation: str) -> bool:
    # get_kwargs: a bool among the types makes a BooleanOptionalAction, except bool | str (| None),
    # which is an optional-valued flag.
    types = {t.strip() for t in re.split(r"[|\[\],]", annotation) if t.strip()}
    return "bool" in types and "str" not in types


def frontend_flags(tree: ast.Module) -> list[str]:
    flags = []
    for fields in _field_annotations(tree, FRONTEND_CLASSES).values():
        for name, annotation in fields.items():
            flag = "--" + name.replace("_", "-")
            flags.append(flag)
            if _is_switch(annotation):
                flags.append("--no-" + flag[2:])
    return flags


def serve_flags(tree: ast.Module) -> list[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "make_arg_parser":
            return [f for call in ast.walk(node) if _is_add_argument(call) for f in _flags_of_call(call)]  # type: ignore[arg-type]
    raise SystemExit(f"{SERVE_PARSER}: no make_arg_parser")


def engine_flags(tree: ast.Module, config_fields: dict[str, dict[str, str]]) -> list[str]:
    """Every option `EngineArgs.add_cli_args` registers, with `--no-` forms of its switches."""
    kwargs_of: dict[str, str] = {}  # `model_kwargs` -> `ModelConfig`
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "get_kwargs"
            and node.value.args
            and isinstance(node.value.args[0], ast.Name)
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    kwargs_of[target.id] = node.value.args[0].id
    flags: list[str] = []
    for call in ast.walk(tree):
        if not _is_add_argument(call):
            continue
        assert isinstance(call, ast.Call)
        names = _flags_of_call(call)
        flags += names
        switch = any(
            kw.arg == "action" and "BooleanOptionalAction" in ast.unparse(kw.value) for kw in call.keywords
        )
        for kw in call.keywords:
            # **model_kwargs["trust_remote_code"]: the field's type decides the action.
            value = kw.value
            if (
                kw.arg is None
                and isinstance(value, ast.Subscript)
                and isinstance(value.value, ast.Name)
                and isinstance(value.slice, ast.Constant)
            ):
                cls = kwargs_of.get(value.value.id, "")
                annotation = config_fields.get(cls, {}).get(str(value.slice.value), "")
                switch = switch or _is_switch(annotation)
        if switch:
            flags += ["--no-" + n[2:] for n in names if n.startswith("--")]
    return flags


def env_vars(tree: ast.Module) -> list[str]:
    """The variables vllm/envs.py declares (its `environment_variables` table's keys)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("VLLM_"):
                    names.add(key.value)
    return sorted(names)


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()

        def parse(path: str) -> ast.Module:
            return ast.parse(archive.read(path).decode(), filename=path)

        version = next(
            PurePosixPath(n).parent.name.removesuffix(".dist-info").split("-")[1]
            for n in names
            if n.endswith(".dist-info/METADATA")
        )
        config_fields: dict[str, dict[str, str]] = {}
        for path in names:
            if path.startswith("vllm/config/") and path.endswith(".py"):
                config_fields.update(_field_annotations(parse(path)))
        serve_tree = parse(SERVE_PARSER)
        document = {
            "vllm": version,
            "source": "tools/vllm_flags.py, from the vllm wheel's own parser source",
            "serve": sorted(set(serve_flags(serve_tree))),
            "frontend": sorted(set(frontend_flags(serve_tree))),
            "engine": sorted(set(engine_flags(parse(ENGINE_ARGS), config_fields))),
            "env": env_vars(parse(ENVS)),
        }
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
