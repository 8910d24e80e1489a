"""What the local runner computes from a pod spec before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from shinsa.devcluster.local_runner import PathMap, exit_code, expand, field_value, log_tail, unsupported
from shinsa.devcluster.model_endpoints import service_host

pytestmark = pytest.mark.unit

ENV = {"A": "1", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "1"),
        ("x$(A)y$(A)", "x1y1"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("$$$(A)", "$1"),
        ("$(EMPTY)-", "-"),
        ("cost: $5", "cost: $5"),
        ("trailing $", "trailing $"),
        ("open $(A", "open $(A"),
    ],
)
def test_expansion_follows_the_kubelets_rule(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


def test_mount_paths_are_rewritten_where_a_path_starts_and_the_longest_mount_wins(tmp_path: Path) -> None:
    paths = PathMap.of(
        {
            "/etc/shinsa": tmp_path / "config",
            "/etc/shinsa/secrets/": tmp_path / "secrets",
            "/dev/termination-log": tmp_path / "term",
        }
    )
    assert paths.rewrite("--config=/etc/shinsa/evalrun.yaml") == f"--config={tmp_path}/config/evalrun.yaml"
    assert paths.rewrite("/etc/shinsa/secrets/key") == f"{tmp_path}/secrets/key"
    assert paths.rewrite("open('/dev/termination-log', 'w')") == f"open('{tmp_path}/term', 'w')"
    assert paths.rewrite("/etc/shinsa") == f"{tmp_path}/config"
    # Not the start of that path, or a longer name that shares the prefix.
    for kept in ["/opt/etc/shinsa/x", "/etc/shinsa2/x", "/etc/shinsa.bak", "/dev/termination-logs"]:
        assert paths.rewrite(kept) == kept
    assert paths.host("/etc/shinsa/a/b") == tmp_path / "config" / "a" / "b"
    assert paths.host("/etc/other") is None


def test_downward_api_fields_and_refusals() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "x"}},
        "spec": {"nodeName": "local-runner", "containers": [{"name": "c", "command": ["true"]}]},
    }
    assert field_value(pod, "metadata.name") == "p"
    assert field_value(pod, "metadata.labels['app']") == "x"
    assert field_value(pod, "status.podIP") == "127.0.0.1"
    assert unsupported(pod) is None
    no_command = {**pod, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert "no command" in (unsupported(no_command) or "")
    claim = {**pod, "spec": {**pod["spec"], "volumes": [{"name": "v", "persistentVolumeClaim": {}}]}}
    assert "persistentVolumeClaim" in (unsupported(claim) or "")


def test_exit_codes_of_signalled_processes_and_the_log_tail(tmp_path: Path) -> None:
    assert (exit_code(-15), exit_code(-9), exit_code(3)) == (143, 137, 3)
    log = tmp_path / "0.log"
    log.write_text("".join(f"line {i}\n" for i in range(200)))
    tail = log_tail(log)
    assert tail.endswith("line 199\n") and tail.count("\n") == 80


def test_service_hosts_are_kept_in_one_form() -> None:
    assert service_host("Chat.NS.svc.cluster.local.") == "chat.ns.svc"
    assert service_host("chat.ns.svc") == "chat.ns.svc"
