"""Checks of an Argo Workflows WorkflowTemplate that Argo's CRD cannot make.

The API server validates a WorkflowTemplate's fields and types, but not what its strings refer to:
it accepts a task calling a template that does not exist, a misspelled `depends`, a
`{{inputs.parameters.x}}` no input declares, or a success condition on a status field the resource
does not have (which then never matches, and the workflow waits until its timeout). Argo itself
finds some of these only when a workflow runs. These functions find them in the file, and render
the Kubernetes manifests its resource templates carry so that they can be validated as the objects
they become.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")

# The global variables the templates use; a variable outside these and the parameter forms is more
# likely a typo than an Argo feature, so it is reported and added here when it is one.
WORKFLOW_VARIABLES = frozenset(
    {"workflow.name", "workflow.namespace", "workflow.uid", "workflow.status", "workflow.serviceAccountName"}
)

# What a `depends` expression may say of a task (Argo's task results).
TASK_RESULTS = frozenset(
    {"Succeeded", "Failed", "Errored", "Skipped", "Omitted", "Daemoned", "AnySucceeded", "AllFailed"}
)


def templates_of(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {template["name"]: template for template in document["spec"].get("templates", [])}


def _names(parameters: list[dict[str, Any]] | None) -> list[str]:
    return [parameter["name"] for parameter in parameters or []]


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside `value` with where it is."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            name = item.get("name") if isinstance(item, Mapping) else None
            yield from _strings(item, f"{path}[{name if isinstance(name, str) else index}]")


def depends_names(expression: str) -> list[str]:
    """The task names a `depends` expression mentions, in order; a suffix that is not a task result
    stays part of the name, so `task.Succeded` is reported as an unknown task."""
    names = []
    for token in re.split(r"&&|\|\||[!()\s]", expression):
        if not token:
            continue
        name, dot, result = token.rpartition(".")
        names.append(name if dot and result in TASK_RESULTS else token)
    return names


@dataclass(frozen=True)
class _Scope:
    """What a template's strings may refer to."""

    inputs: frozenset[str]
    # task or step name -> the output parameters of the template it calls
    siblings: Mapping[str, frozenset[str]]
    kind: str  # "tasks" or "steps"


def _variable_errors(
    where: str, text: str, scope: _Scope, workflow_parameters: frozenset[str], upstream: frozenset[str] | None
) -> list[str]:
    errors = []
    for variable in PLACEHOLDER.findall(text):
        parts = variable.split(".")
        if variable in WORKFLOW_VARIABLES:
            continue
        if parts[:2] == ["workflow", "parameters"] and len(parts) == 3:
            if parts[2] not in workflow_parameters:
                errors.append(f"{where}: {{{{{variable}}}}} names no parameter of spec.arguments")
        elif parts[:2] == ["inputs", "parameters"] and len(parts) == 3:
            if parts[2] not in scope.inputs:
                errors.append(f"{where}: {{{{{variable}}}}} names no input parameter of the template")
        elif parts[0] in ("tasks", "steps") and parts[2:4] == ["outputs", "parameters"] and len(parts) == 5:
            sibling, output = parts[1], parts[4]
            if parts[0] != scope.kind or sibling not in scope.siblings:
                errors.append(f"{where}: {{{{{variable}}}}} names no {parts[0][:-1]} of this template")
            elif output not in scope.siblings[sibling]:
                errors.append(f"{where}: {{{{{variable}}}}}: {sibling} has no output parameter {output}")
            elif upstream is not None and sibling not in upstream:
                errors.append(f"{where}: {{{{{variable}}}}}: {sibling} has not run yet there")
        else:
            errors.append(f"{where}: {{{{{variable}}}}} is no variable this check knows")
    return errors


def _call_errors(
    where: str, call: Mapping[str, Any], templates: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """A task's or step's `template` must exist and get exactly the inputs it declares."""
    name = call.get("template")
    if name is None:
        return [f"{where}: calls no template"]
    if name not in templates:
        return [f"{where}: template {name!r} is not defined"]
    declared = {p["name"]: p for p in templates[name].get("inputs", {}).get("parameters", [])}
    given = _names(call.get("arguments", {}).get("parameters"))
    errors = [f"{where}: {name} has no input parameter {p!r}" for p in given if p not in declared]
    errors += [
        f"{where}: {name}'s input parameter {p!r} is not given"
        for p, parameter in declared.items()
        if p not in given and "value" not in parameter and "default" not in parameter
    ]
    return errors


def _ancestors(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, frozenset[str]]:
    """Each DAG task's transitive dependencies (only names of tasks that exist)."""
    direct = {
        name: {
            d for d in [*depends_names(task.get("depends", "")), *task.get("dependencies", [])] if d in tasks
        }
        for name, task in tasks.items()
    }
    closed: dict[str, frozenset[str]] = {}

    def visit(name: str, seen: frozenset[str]) -> frozenset[str]:
        if name in closed:
            return closed[name]
        found: set[str] = set()
        for parent in direct[name] - seen:
            found |= {parent, *visit(parent, seen | {name})}
        closed[name] = frozenset(found)
        return closed[name]

    for name in tasks:
        visit(name, frozenset())
    return closed


def reference_errors(document: Mapping[str, Any]) -> list[str]:
    """What in the WorkflowTemplate refers to something it does not define; empty when nothing."""
    spec = document["spec"]
    templates = templates_of(document)
    workflow_parameters = frozenset(_names(spec.get("arguments", {}).get("parameters")))
    errors = [
        f"spec.{field}: template {spec[field]!r} is not defined"
        for field in ("entrypoint", "onExit")
        if field in spec and spec[field] not in templates
    ]
    for path, text in _strings(spec.get("arguments", {}), "spec.arguments"):
        errors += _variable_errors(path, text, _Scope(frozenset(), {}, "tasks"), workflow_parameters, None)
    for name, template in templates.items():
        inputs = frozenset(_names(template.get("inputs", {}).get("parameters")))
        here = f"templates[{name}]"

        def outputs_of(call: Mapping[str, Any]) -> frozenset[str]:
            callee = templates.get(call.get("template", ""), {})
            return frozenset(_names(callee.get("outputs", {}).get("parameters")))

        if "dag" in template:
            tasks = {task["name"]: task for task in template["dag"].get("tasks", [])}
            scope = _Scope(inputs, {t: outputs_of(task) for t, task in tasks.items()}, "tasks")
            ancestors = _ancestors(tasks)
            for task_name, task in tasks.items():
                where = f"{here}.dag.tasks[{task_name}]"
                errors += _call_errors(where, task, templates)
                needed = [*depends_names(task.get("depends", "")), *task.get("dependencies", [])]
                errors += [
                    f"{where}: depends on {d!r}, no task of this DAG" for d in needed if d not in tasks
                ]
                errors += [f"{where}: depends on itself" for d in needed if d == task_name]
                for path, text in _strings(task, where):
                    errors += _variable_errors(path, text, scope, workflow_parameters, ancestors[task_name])
        elif "steps" in template:
            steps = [step for group in template["steps"] for step in group]
            scope = _Scope(inputs, {s["name"]: outputs_of(s) for s in steps}, "steps")
            earlier: set[str] = set()
            for index, group in enumerate(template["steps"]):
                for step in group:
                    where = f"{here}.steps[{index}][{step['name']}]"
                    errors += _call_errors(where, step, templates)
                    for path, text in _strings(step, where):
                        errors += _variable_errors(path, text, scope, workflow_parameters, frozenset(earlier))
                earlier |= {step["name"] for step in group}
        else:
            scope = _Scope(inputs, {}, "tasks")
            for path, text in _strings(template, here):
                errors += _variable_errors(path, text, scope, workflow_parameters, None)
    return errors


# --- The resource templates' manifests, rendered as a run would render them ---


@dataclass(frozen=True)
class ResourceCall:
    """A resource template as one task or step runs it."""

    caller: str
    template: Mapping[str, Any]
    manifest: dict[str, Any]

    @property
    def action(self) -> str:
        return str(self.template["resource"]["action"])


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `{{variable}}` replaced from `values`; one without a value is an error."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise KeyError(f"no sample value for {{{{{match.group(1)}}}}} in {text!r}")
        return values[match.group(1)]

    return PLACEHOLDER.sub(value, text)


def workflow_values(
    document: Mapping[str, Any], samples: Mapping[str, str], variables: Mapping[str, str]
) -> dict[str, str]:
    """The `{{workflow.parameters.*}}` of a submission giving `samples` (defaults for the rest), and
    the global `variables`."""
    values = dict(variables)
    for parameter in document["spec"].get("arguments", {}).get("parameters", []):
        name = parameter["name"]
        if name in samples:
            values[f"workflow.parameters.{name}"] = samples[name]
        elif "value" in parameter:
            values[f"workflow.parameters.{name}"] = str(parameter["value"])
        else:
            raise KeyError(f"parameter {name} has no default: give it a sample value")
    return values


def resource_calls(document: Mapping[str, Any], values: Mapping[str, str]) -> list[ResourceCall]:
    """Every resource template called from a DAG task or a step, with its manifest rendered from the
    caller's arguments and `values`."""
    templates = templates_of(document)
    calls = []
    for name, template in templates.items():
        if "dag" in template:
            callers = [(f"{name}.{task['name']}", task) for task in template["dag"].get("tasks", [])]
        else:
            callers = [
                (f"{name}.{step['name']}", step) for group in template.get("steps", []) for step in group
            ]
        for caller, call in callers:
            callee = templates[call["template"]]
            if "resource" not in callee:
                continue
            scoped = dict(values)
            for parameter in callee.get("inputs", {}).get("parameters", []):
                if "value" in parameter:
                    scoped[f"inputs.parameters.{parameter['name']}"] = str(parameter["value"])
            for argument in call.get("arguments", {}).get("parameters", []):
                scoped[f"inputs.parameters.{argument['name']}"] = substitute(str(argument["value"]), values)
            text = substitute(callee["resource"]["manifest"], scoped)
            calls.append(ResourceCall(caller, callee, yaml.safe_load(text)))
    return calls


# --- Success and failure conditions against the resource's status model ---


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def field_type(model: type[BaseModel], path: str) -> Any:
    """The type of the field at the dotted wire-name `path` of `model`; KeyError naming the part that
    does not exist."""
    current: Any = model
    parts = path.split(".")
    for index, part in enumerate(parts):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            raise KeyError(f"{path}: {'.'.join(parts[:index])} has no fields to select")
        fields = {field.alias or name: field for name, field in current.model_fields.items()}
        if part not in fields:
            raise KeyError(f"{path}: {current.__name__} has no field {part!r}")
        current = _unwrap(fields[part].annotation)
    return current


_REQUIREMENT = re.compile(
    r"^(?:(?P<absent>!)?(?P<only>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?P<op>==|!=|=|>|<)\s*(?P<value>[\w.-]+)"
    r"|(?P<setkey>[\w./-]+)\s+(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))$"
)


def selector_requirements(selector: str) -> list[tuple[str, list[str]]]:
    """The (key, values) of each requirement of a label-selector expression (Argo's condition
    syntax); ValueError for text that is not one."""
    requirements = []
    for raw in re.split(r",(?![^()]*\))", selector):
        match = _REQUIREMENT.match(raw.strip())
        if not match:
            raise ValueError(f"{raw.strip()!r} is not a label-selector requirement")
        if match["only"]:
            requirements.append((match["only"], []))
        elif match["key"]:
            requirements.append((match["key"], [match["value"]]))
        else:
            requirements.append((match["setkey"], [v.strip() for v in match["values"].split(",")]))
    return requirements


def condition_errors(call: ResourceCall, models: Mapping[str, type[BaseModel]]) -> list[str]:
    """Success and failure conditions, and output parameters' JSON paths, that name a field the
    resource's model lacks or compare an enum field with a value it never takes."""
    resource = call.template["resource"]
    model = models[call.manifest["kind"]]
    errors = []
    for field in ("successCondition", "failureCondition"):
        if field not in resource:
            continue
        try:
            requirements = selector_requirements(resource[field])
        except ValueError as exc:
            errors.append(f"{call.caller} {field}: {exc}")
            continue
        for key, values in requirements:
            try:
                kind = field_type(model, key)
            except KeyError as exc:
                errors.append(f"{call.caller} {field}: {exc.args[0]}")
                continue
            if isinstance(kind, type) and issubclass(kind, enum.Enum):
                known = {str(member.value) for member in kind}
                errors += [
                    f"{call.caller} {field}: {key} is never {value!r} (one of {sorted(known)})"
                    for value in values
                    if value not in known
                ]
    for parameter in call.template.get("outputs", {}).get("parameters", []):
        json_path = parameter.get("valueFrom", {}).get("jsonPath")
        if json_path is None:
            continue
        match = re.fullmatch(r"\{\.([\w.]+)\}", json_path)
        if not match:
            errors.append(
                f"{call.caller} output {parameter['name']}: {json_path!r} is not a plain field path"
            )
            continue
        try:
            field_type(model, match.group(1))
        except KeyError as exc:
            errors.append(f"{call.caller} output {parameter['name']}: {exc.args[0]}")
    return errors
