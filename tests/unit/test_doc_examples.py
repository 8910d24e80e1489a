"""Every YAML example in docs/*.md (fenced ```yaml blocks), examples/*.yaml and
examples/reproduction/*.yaml is read by the code that reads it for real, so an example cannot drift
from the schema it documents.

What reads a block:

- `kind: ModelDeployment`, `EvalRun`, `PromotionPolicy`: the resource's pydantic model (what
  `kubectl apply` is checked against, through the CRD generated from it);
- a block with an `engine:` key (an EvalRun manifest or bare spec with engine options): the engine's
  config loader, `shinsa.evaluation.config.load_config`, as `shinsa eval run --config` reads it,
  with the API-key variables it names set;
- a block opening with a comment naming its file (`# gates.yaml: ...`): that file's loader in
  `FILE_READERS`.

A line whose comment says `# optional` can be left out: the example is read again without those
lines (a top-level key, or a list item, per line).

A block that is intentionally partial (a fragment of a larger object, a sketch with placeholders)
carries the comment `# doc-example: partial` and is only checked to be YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shinsa.api import EvalRun, ModelDeployment, PromotionPolicy
from shinsa.commands.gate import load_policy
from shinsa.evaluation.config import load_config

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PARTIAL = "# doc-example: partial"
_FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
_FILE_COMMENT = re.compile(r"^#\s*([\w.-]+\.ya?ml)\b")

FILE_READERS: dict[str, Callable[[Path], Any]] = {"gates.yaml": load_policy}


RESOURCES: dict[str, Callable[[dict[str, Any]], Any]] = {
    "ModelDeployment": ModelDeployment.model_validate,
    "EvalRun": EvalRun.model_validate,
    "PromotionPolicy": PromotionPolicy.model_validate,
}


def examples() -> Iterator[tuple[str, str]]:
    """(where, text) of every example: `docs/x.md:line` or `examples/x.yaml`."""
    for path in sorted((ROOT / "docs").glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            yield f"{path.relative_to(ROOT)}:{line}", match.group(1)
    # The demo applies examples/*.yaml; examples/reproduction/ holds manifests for a real cluster.
    for path in sorted(
        [*(ROOT / "examples").glob("*.yaml"), *(ROOT / "examples" / "reproduction").glob("*.yaml")]
    ):
        yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


EXAMPLES = list(examples())
_OPTIONAL = re.compile(r"^\s*[^#\s][^#]*#\s*optional\b")


def without_optional_lines(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if not _OPTIONAL.match(line))


VARIANTS = [
    *EXAMPLES,
    *(
        (f"{where} without its optional lines", without_optional_lines(text))
        for where, text in EXAMPLES
        if without_optional_lines(text) != text
    ),
]


def _key_variables(document: dict[str, Any]) -> dict[str, str]:
    engine = document.get("engine") or {}
    names = [engine.get("modelApiKeyEnv"), *(engine.get("judgeApiKeyEnv") or {}).values()]
    return {name: "sk-doc-example-key" for name in names if isinstance(name, str)}


@pytest.mark.parametrize(("where", "text"), VARIANTS, ids=[w for w, _ in VARIANTS])
def test_the_example_is_read_by_the_code_that_reads_it(
    where: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    assert documents, f"{where}: no YAML document"
    if PARTIAL in text:
        return
    named = _FILE_COMMENT.match(text.lstrip())
    if named and named.group(1) in FILE_READERS:
        path = tmp_path / named.group(1)
        path.write_text(text, encoding="utf-8")
        FILE_READERS[named.group(1)](path)
        return
    for document in documents:
        assert isinstance(document, dict), f"{where}: expected a mapping"
        if "engine" in document:
            for name, value in _key_variables(document).items():
                monkeypatch.setenv(name, value)
            path = tmp_path / "config.yaml"
            path.write_text(yaml.safe_dump(document), encoding="utf-8")
            load_config(path)
        elif document.get("kind") in RESOURCES:
            RESOURCES[document["kind"]](document)
        else:
            pytest.fail(
                f"{where}: no reader for this example (kind {document.get('kind')!r}); name its file in "
                f"a first comment known to FILE_READERS, or mark it {PARTIAL!r}"
            )


def test_every_doc_and_example_yaml_is_found() -> None:
    # The fence pattern matching nothing would make the test above pass vacuously.
    assert any(where.startswith("docs/evaluation.md") for where, _ in EXAMPLES)
    assert any(where.startswith("examples/") for where, _ in EXAMPLES)
    assert any("optional" in where for where, _ in VARIANTS)
