"""The promotion pipeline's definition: pipelines/promote.yaml is valid, bad definitions and
overrides are refused naming the field and the file, and the manifests are what the operator needs
(the candidate at --candidate's revision, an EvalRun against <model>@<alias> that promotes)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shinsa.api import EvalRun, ModelDeployment
from shinsa.cli import app
from shinsa.pipeline import (
    PIPELINE_LABEL,
    Candidate,
    DefinitionError,
    Outcome,
    Teardown,
    apply_set,
    check_name,
    default_name,
    load_definition,
    manifests_for,
    parse_candidate,
    parse_definition,
    parse_duration,
    tears_down,
    verdict,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PROMOTE = ROOT / "pipelines" / "promote.yaml"
QUALITY = "dev.shinsa.dev/answer-quality"


def _data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(PROMOTE.read_text())
    return data


def _refused(data: Any, *overrides: str) -> str:
    with pytest.raises(DefinitionError) as info:
        parse_definition(data, "pipe.yaml", overrides)
    return str(info.value)


def test_the_shipped_definition_builds_a_valid_candidate_and_an_eval_run_that_promotes_it() -> None:
    definition = load_definition(PROMOTE)
    manifests = manifests_for(
        definition, parse_candidate("hf://org/model@" + "a" * 40), name="chat-candidate-1", namespace="ml"
    )
    md = ModelDeployment.model_validate(manifests.candidate)
    assert (md.spec.model.uri, md.spec.model.revision) == ("hf://org/model", "a" * 40)
    assert manifests.candidate["metadata"] == {
        "name": "chat-candidate-1", "namespace": "ml", "labels": {PIPELINE_LABEL: "chat-candidate-1"},
    }  # fmt: skip
    run = EvalRun.model_validate(manifests.eval_run)
    assert (
        run.spec.model.deployment_ref is not None and run.spec.model.deployment_ref.name == "chat-candidate-1"
    )
    assert run.spec.model.revision == "a" * 40
    assert run.spec.gates is not None and run.spec.gates.baseline is not None
    assert run.spec.gates.baseline.mlflow_model == "chat@champion"
    assert manifests.eval_run["spec"]["promote"] == {
        "registeredModel": "chat",
        "alias": "champion",
        "enabled": True,
    }
    # Only what the file says: the CRD's defaults stay the API server's, not the pipeline's fields.
    assert "image" not in manifests.candidate["spec"].get("serving", {})
    assert "repeats" not in manifests.eval_run["spec"]
    assert definition.timeouts.ready == 3600 and definition.timeouts.evaluation == 12 * 3600
    assert definition.teardown is Teardown.UNLESS_PASSED


@pytest.mark.parametrize(
    ("text", "uri", "revision"),
    [
        ("hf://org/model@abc123", "hf://org/model", "abc123"),
        ("hf://org/model", "hf://org/model", None),
        ("s3://bucket/prefix@v2", "s3://bucket/prefix", "v2"),
        ("models:/chat@challenger", "models:/chat@challenger", None),  # an alias, not a revision
    ],
)
def test_the_candidate_s_revision_follows_its_last_at(text: str, uri: str, revision: str | None) -> None:
    assert parse_candidate(text) == Candidate(uri, revision)


@pytest.mark.parametrize("text", ["", "hf://org/model@", "@abc"])
def test_a_malformed_candidate_is_refused(text: str) -> None:
    with pytest.raises(DefinitionError, match="--candidate"):
        parse_candidate(text)


def test_a_candidate_uri_the_api_refuses_is_named_as_the_candidate() -> None:
    definition = load_definition(PROMOTE)
    with pytest.raises(DefinitionError, match=r"--candidate ftp://x/y@1: String should match pattern"):
        manifests_for(definition, parse_candidate("ftp://x/y@1"), name="c", namespace="ml")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        (
            "candidate.spec.serving.maxModelLen=0",
            "pipe.yaml: candidate.spec.serving.maxModelLen: Input should be greater",
        ),
        ("candidate.spec.resources.gpu.product=", "candidate.spec.resources.gpu"),
        ("candidate.spec.model.uri=hf://a/b", "model.uri is set by --candidate"),
        (
            "evalRun.spec.benchmarks[0].name=nope",
            "pipe.yaml: evalRun.spec.benchmarks[0].name: Input should be",
        ),
        ("evalRun.spec.gates.baseline.mlflowModel=x@y", "gates.baseline is set by the pipeline"),
        ("evalRun.spec.promote.alias=x", "promote is set by the pipeline"),
        ("evalRun.spec.model.endpoint=http://x", "model.endpoint is set by the pipeline"),
        ("evalRun.spec.repeats=99", "evalRun.spec.repeats: Input should be less than or equal to 20"),
        ("teardown=sometimes", "pipe.yaml: teardown: Input should be 'unlessPassed'"),
        ("timeouts.ready=5x", "pipe.yaml: timeouts.ready: '5x' is not a duration"),
        ("registeredModel=a/b", "pipe.yaml: registeredModel: String should match pattern"),
        ("kind=Workflow", "pipe.yaml: kind: Input should be 'PromotionPipeline'"),
        ("colour=blue", "pipe.yaml: colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_definition_is_refused_naming_the_file_and_the_field(override: str, says: str) -> None:
    assert says in _refused(_data(), override)


def test_a_definition_without_gates_rules_or_a_required_field_is_refused() -> None:
    data = _data()
    del data["evalRun"]["spec"]["gates"]
    assert "evalRun.spec: gates.rules: a promotion pipeline needs gates" in _refused(data)
    data = _data()
    del data["registeredModel"]
    assert "pipe.yaml: registeredModel: Field required" in _refused(data)
    assert "pipe.yaml: expected a mapping" in _refused(["a list"])


def test_an_unreadable_or_non_yaml_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match=r"missing.yaml: cannot read"):
        load_definition(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [\n")
    with pytest.raises(DefinitionError, match=r"bad.yaml: not YAML"):
        load_definition(tmp_path / "bad.yaml")


def test_set_reaches_keys_with_dots_list_items_and_new_mappings() -> None:
    data = {
        "candidate": {"annotations": {}},
        "evalRun": {"spec": {"benchmarks": [{"dataset": {"uri": "a"}}]}},
    }
    out = apply_set(data, f"candidate.annotations[{QUALITY}]=2")
    assert out["candidate"]["annotations"] == {QUALITY: 2}
    assert apply_set(data, r"candidate.annotations.dev\.shinsa\.dev/answer-quality=-2")["candidate"][
        "annotations"
    ] == {QUALITY: -2}
    assert apply_set(data, "evalRun.spec.benchmarks[0].dataset.uri=s3://b/p")["evalRun"]["spec"][
        "benchmarks"
    ] == [{"dataset": {"uri": "s3://b/p"}}]
    assert apply_set(data, "timeouts.ready=10m")["timeouts"] == {"ready": "10m"}
    assert apply_set(data, "promote=false")["promote"] is False
    assert apply_set(data, "evalRun.spec.benchmarks[1].name=mt-bench-ja")["evalRun"]["spec"]["benchmarks"][
        1
    ] == {"name": "mt-bench-ja"}
    assert data == {
        "candidate": {"annotations": {}},
        "evalRun": {"spec": {"benchmarks": [{"dataset": {"uri": "a"}}]}},
    }


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("novalue", "expected key.path=value"),
        ("=1", "expected key.path=value"),
        ("evalRun.spec.benchmarks[5].name=x", "evalRun.spec.benchmarks has 1 items"),
        ("evalRun.spec[0]=x", "evalRun.spec is not a list"),
        ("evalRun.spec.benchmarks.name=x", "evalRun.spec.benchmarks is not a mapping"),
        ("a..b=1", "cannot read the path"),
    ],
)
def test_a_bad_set_is_refused_naming_it(expression: str, says: str) -> None:
    data = {"evalRun": {"spec": {"benchmarks": [{}]}}}
    with pytest.raises(DefinitionError) as info:
        apply_set(data, expression)
    assert str(info.value).startswith(f"--set {expression}:") and says in str(info.value)


def test_annotations_set_as_numbers_are_strings_on_the_candidate() -> None:
    definition = parse_definition(
        _data(), "pipe.yaml", (f"candidate.annotations[{QUALITY}]=2", "namespace=team-a")
    )
    manifests = manifests_for(definition, parse_candidate("hf://org/model@r"), name="c-1", namespace="team-a")
    assert manifests.candidate["metadata"]["annotations"] == {QUALITY: "2"}
    assert (
        manifests.candidate["metadata"]["namespace"]
        == manifests.eval_run["metadata"]["namespace"]
        == "team-a"
    )


def test_the_file_s_labels_are_kept_and_the_pipeline_label_is_added() -> None:
    data = _data()
    data["evalRun"]["labels"] = {"team": "llm"}
    definition = parse_definition(data, "pipe.yaml")
    manifests = manifests_for(definition, Candidate("hf://o/m", None), name="c-1", namespace="ml")
    assert manifests.eval_run["metadata"]["labels"] == {"team": "llm", PIPELINE_LABEL: "c-1"}
    assert "revision" not in manifests.candidate["spec"]["model"]
    assert "revision" not in manifests.eval_run["spec"]["model"]


def test_names_default_to_the_prefix_or_the_model_and_must_be_dns_labels() -> None:
    definition = load_definition(PROMOTE)
    assert default_name(definition, "abc123") == "chat-candidate-abc123"
    data = _data()
    del data["namePrefix"]
    data["registeredModel"] = "Org.Chat_Model" + "x" * 80
    name = default_name(parse_definition(data, "pipe.yaml"), "abc123")
    assert name.startswith("org-chat-model") and name.endswith("-abc123") and len(name) <= 63
    check_name(name)
    for bad in ("Upper", "1leading-digit", "a" * 64, "dot.ted"):
        with pytest.raises(DefinitionError, match=r"--name"):
            check_name(bad)


@pytest.mark.parametrize(
    ("text", "seconds"), [("1h", 3600), ("1h30m", 5400), ("45s", 45), (90, 90), ("10m", 600)]
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


def _status(
    phase: str, decision: str | None = None, promoted: tuple[str, str] | None = None
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if decision:
        status["decision"] = decision
    if promoted:
        status["conditions"].append({"type": "Promoted", "status": promoted[0], "reason": promoted[1],
                                     "message": "namespace x is not one of y"})  # fmt: skip
    if promoted and promoted[0] == "True":
        status["promotion"] = {"model": "chat", "alias": "champion", "version": "2", "previousVersion": "1"}
    return status


@pytest.mark.parametrize(
    ("status", "outcome", "passed", "says"),
    [
        (_status("Succeeded", "Passed", ("True", "Promoted")), Outcome.PROMOTED, True,
         "version 1 -> 2"),
        (_status("Succeeded", "Failed", ("False", "NotPassed")), Outcome.REJECTED, False, "Failed"),
        (_status("Succeeded", "Inconclusive"), Outcome.INCONCLUSIVE, False, "Inconclusive"),
        (_status("Succeeded", "Passed", ("False", "Forbidden")), Outcome.INCONCLUSIVE, True,
         "promoted (Forbidden)"),
        (_status("Succeeded", "Passed", ("False", "Disabled")), Outcome.INCONCLUSIVE, True, "(Disabled)"),
        (_status("Incomplete"), Outcome.INCONCLUSIVE, False, "Incomplete"),
        (_status("Failed"), Outcome.NO_DECISION, False, "the EvalRun Failed"),
    ],
)  # fmt: skip
def test_the_outcome_is_the_decision_and_the_promoted_condition(
    status: dict[str, Any], outcome: Outcome, passed: bool, says: str
) -> None:
    result = verdict(status)
    assert (result.outcome, result.passed) == (outcome, passed)
    assert says in result.why


def test_teardown_policies() -> None:
    promoted = verdict(_status("Succeeded", "Passed", ("True", "Promoted")))
    forbidden = verdict(_status("Succeeded", "Passed", ("False", "Forbidden")))
    rejected = verdict(_status("Succeeded", "Failed", ("False", "NotPassed")))
    table = {
        Teardown.UNLESS_PASSED: (False, False, True, True),
        Teardown.UNLESS_PROMOTED: (False, True, True, True),
        Teardown.ALWAYS: (True, True, True, True),
        Teardown.NEVER: (False, False, False, False),
    }
    for policy, expected in table.items():
        assert tuple(tears_down(policy, r) for r in (promoted, forbidden, rejected, None)) == expected, policy


def test_the_cli_s_dry_run_prints_the_manifests_and_a_bad_file_exits_2(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["pipeline", "run", str(PROMOTE), "--candidate", "hf://org/model@r1", "--name", "c-1", "--dry-run",
            "--set", f"candidate.annotations[{QUALITY}]=2"]  # fmt: skip
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    docs = list(yaml.safe_load_all(shown.stdout))
    assert [d["kind"] for d in docs] == ["ModelDeployment", "EvalRun"]
    assert docs[0]["metadata"]["annotations"] == {QUALITY: "2"}

    bad = copy.deepcopy(_data())
    bad["timeouts"] = {"ready": "soon"}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    refused = runner.invoke(app, ["pipeline", "run", str(tmp_path / "bad.yaml"), "--candidate", "hf://o/m@r"])
    assert refused.exit_code == 2
    assert "bad.yaml: timeouts.ready" in refused.output
    unset = copy.deepcopy(_data())
    del unset["namespace"]
    (tmp_path / "nons.yaml").write_text(yaml.safe_dump(unset))
    no_namespace = runner.invoke(
        app, ["pipeline", "run", str(tmp_path / "nons.yaml"), "-c", "hf://o/m", "--dry-run"]
    )
    assert no_namespace.exit_code == 2 and "namespace: not set" in no_namespace.output
