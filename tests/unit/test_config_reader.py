"""Reading a pvc:// model's config.json through a Job: what the Job runs, and reading its answer back."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shinsa.api import ModelDeployment
from shinsa.render import pod_selector
from shinsa.render.config_reader import (
    SOURCE_ANNOTATION,
    decode_config_message,
    reader_outcome,
    render_config_reader,
)
from shinsa.render.model_source import PVC_MOUNT_DIR
from tests.support import manifests

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).parent / "fixtures" / "configs" / "mistral-7b" / "config.json"
URI = "pvc://model-store/chat/mistral-7b"


def model_deployment() -> ModelDeployment:
    return manifests.model_deployment(URI, name="chat")


def run_reader(job: dict[str, Any], volume_root: Path, tmp_path: Path) -> tuple[int, str]:
    """Run the Job's script as its pod would, with the claim at `volume_root` and the termination
    message in a file (bash stands in for the image's sh; both have pipefail)."""
    (container,) = job["spec"]["template"]["spec"]["containers"]
    message = tmp_path / "termination-log"
    message.touch()
    script = container["command"][2].replace("/dev/termination-log", str(message))
    script = script.replace(PVC_MOUNT_DIR, str(volume_root))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=False)
    return done.returncode, message.read_text()


def test_the_reader_job_mounts_the_claim_read_only_and_is_never_taken_for_a_replica() -> None:
    md = model_deployment()
    job = render_config_reader(md, URI)
    assert job["metadata"]["annotations"][SOURCE_ANNOTATION] == URI
    assert job["metadata"]["ownerReferences"][0]["uid"] == "chat-uid"
    pod = job["spec"]["template"]
    (volume,) = pod["spec"]["volumes"]
    assert volume["persistentVolumeClaim"] == {"claimName": "model-store", "readOnly": True}
    (container,) = pod["spec"]["containers"]
    assert all(m["readOnly"] for m in container["volumeMounts"])
    assert pod["spec"]["restartPolicy"] == "Never" and pod["spec"]["securityContext"]["runAsNonRoot"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The serving pods' selector must not pick the reader up.
    assert not pod_selector(md).items() <= pod["metadata"]["labels"].items()


@pytest.mark.skipif(shutil.which("gzip") is None or shutil.which("base64") is None, reason="coreutils")
def test_what_the_reader_writes_decodes_to_the_config_json(tmp_path: Path) -> None:
    model_dir = tmp_path / "volume" / "chat" / "mistral-7b"
    model_dir.mkdir(parents=True)
    shutil.copy(CONFIG, model_dir / "config.json")

    code, message = run_reader(render_config_reader(model_deployment(), URI), tmp_path / "volume", tmp_path)

    assert code == 0
    assert len(message.encode()) < 4096  # what the kubelet keeps of a termination message
    assert decode_config_message(message, URI) == json.loads(CONFIG.read_text())


def test_a_config_json_that_cannot_be_read_fails_the_job_saying_so(tmp_path: Path) -> None:
    model_dir = tmp_path / "volume" / "chat" / "mistral-7b"
    model_dir.mkdir(parents=True)
    (model_dir / "config.json").mkdir()  # readable as a path, not as a file: gzip fails mid-pipe
    code, message = run_reader(render_config_reader(model_deployment(), URI), tmp_path / "volume", tmp_path)
    assert code == 1
    assert message.strip() == f"{URI}: reading config.json failed"


def test_a_missing_config_json_fails_the_job_saying_so(tmp_path: Path) -> None:
    (tmp_path / "volume").mkdir()
    code, message = run_reader(render_config_reader(model_deployment(), URI), tmp_path / "volume", tmp_path)
    assert code == 1
    assert message.strip() == f"{URI}: config.json not found or not readable"


def encoded(config: dict[str, Any]) -> str:
    return base64.b64encode(gzip.compress(json.dumps(config).encode())).decode()


def pod(phase: str, message: str = "") -> dict[str, Any]:
    terminated = {"exitCode": 0 if phase == "Succeeded" else 1, "message": message}
    return {"status": {"phase": phase, "containerStatuses": [{"state": {"terminated": terminated}}]}}


def test_the_outcome_is_read_from_the_pods_and_the_jobs_failed_condition() -> None:
    running = {"status": {"active": 1}}
    gave_up = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}
    failed = {"status": {"conditions": [gave_up]}}
    assert reader_outcome(running, []).state == "running"
    # A finished pod whose message the kubelet has not written yet is not an answer.
    assert reader_outcome(running, [pod("Succeeded")]).state == "running"
    done = reader_outcome(running, [pod("Failed", "x"), pod("Succeeded", encoded({"a": 1}))])
    assert done.state == "succeeded" and decode_config_message(done.message, URI) == {"a": 1}
    said = reader_outcome(failed, [pod("Failed", f"{URI}: config.json not found or not readable\n")])
    assert (said.state, said.message) == ("failed", f"{URI}: config.json not found or not readable")
    assert reader_outcome(failed, []).message == "BackoffLimitExceeded"
    # Complete, but the pod that held the answer is gone: read again rather than wait forever.
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert reader_outcome(complete, []).state == "failed"


def test_a_message_that_is_not_an_encoded_json_object_is_refused_naming_the_file() -> None:
    with pytest.raises(ValueError, match=r"chat/mistral-7b/config\.json could not be read back"):
        decode_config_message(encoded({"a": 1})[:-12], URI)
    with pytest.raises(ValueError, match="over 4096 bytes"):
        decode_config_message("A" * 4096, URI)
    with pytest.raises(ValueError, match="not a JSON object"):
        decode_config_message(base64.b64encode(gzip.compress(b"[1, 2]")).decode(), URI)
