"""The upstream CRD loader: pins name a module version and files inside it; from those files only the
CustomResourceDefinitions are kept, as apply bodies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shinsa.devcluster import upstream
from shinsa.devcluster.upstream import UpstreamError, UpstreamPin

pytestmark = pytest.mark.unit

CRD_A = """\
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    controller-gen.kubebuilder.io/version: v0.17.2
  creationTimestamp: null
  name: widgets.example.dev
spec:
  group: example.dev
status:
  acceptedNames: {kind: "", plural: ""}
"""

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [bases/widgets.yaml]
"""

# A combined file: an empty document, a CRD, an older CRD version and a Namespace.
COMBINED = """\
---
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.dev}
spec: {group: example.dev}
---
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata: {name: legacy.example.dev}
---
apiVersion: v1
kind: Namespace
metadata: {name: example-system}
"""


def test_pins_are_module_at_version_and_a_glob_with_comments_ignored() -> None:
    pins = upstream.parse_pins(
        "# heading\n\nsigs.k8s.io/lws@v0.8.0   config/crd/bases/*.yaml  # the LWS CRD\n"
        "github.com/kserve/kserve@v0.16.0 config/crd/full/serving.kserve.io_inferenceservices.yaml\n"
    )
    assert pins == [
        UpstreamPin("sigs.k8s.io/lws", "v0.8.0", "config/crd/bases/*.yaml"),
        UpstreamPin(
            "github.com/kserve/kserve", "v0.16.0", "config/crd/full/serving.kserve.io_inferenceservices.yaml"
        ),
    ]
    assert pins[0].ref == "sigs.k8s.io/lws@v0.8.0"


@pytest.mark.parametrize(
    "line",
    [
        "sigs.k8s.io/lws config/crd/bases/*.yaml",  # no version
        "sigs.k8s.io/lws@latest config/crd/bases/*.yaml",  # not a pinned version
        "sigs.k8s.io/lws@v0.8.0",  # no files
        "sigs.k8s.io/lws@v0.8.0 ../../etc/*.yaml",  # outside the module
        "sigs.k8s.io/lws@v0.8.0 /etc/*.yaml",
    ],
)
def test_a_malformed_pin_names_the_file_and_line(line: str) -> None:
    with pytest.raises(UpstreamError, match=r"pins.txt:2: "):
        upstream.parse_pins(f"# ok\n{line}\n", source="pins.txt")


def test_the_project_pins_an_lws_that_sets_the_worker_index_and_a_kserve_with_the_isvc_crd() -> None:
    pins = {pin.module: pin for pin in upstream.read_pins()}
    lws = pins["sigs.k8s.io/lws"]
    # Workers compute their data-parallel start rank from LWS_WORKER_INDEX, set from LWS v0.6 on.
    major, minor = (int(part) for part in re.findall(r"\d+", lws.version)[:2])
    assert (major, minor) >= (0, 6)
    assert "inferenceservices" in pins["github.com/kserve/kserve"].pattern


def test_only_v1_crds_are_kept_from_multi_document_yaml() -> None:
    crds = upstream.crd_documents([CRD_A, KUSTOMIZATION, COMBINED])
    assert [crd["metadata"]["name"] for crd in crds] == ["widgets.example.dev", "gadgets.example.dev"]


def test_a_crd_seen_twice_must_be_the_same() -> None:
    assert len(upstream.crd_documents([CRD_A, CRD_A])) == 1
    with pytest.raises(UpstreamError, match=r"two different definitions of widgets\.example\.dev"):
        upstream.crd_documents([CRD_A, CRD_A.replace("group: example.dev", "group: other.dev")])


def test_apply_bodies_leave_server_owned_fields_out() -> None:
    (crd,) = upstream.crd_documents([CRD_A])
    body = upstream.for_apply(crd)
    assert "status" not in body and "creationTimestamp" not in body["metadata"]
    assert body["metadata"]["annotations"] == {"controller-gen.kubebuilder.io/version": "v0.17.2"}
    assert body["spec"] == {"group": "example.dev"}
    assert "status" in crd  # the parsed document is left as it was


def test_load_crds_reads_the_globbed_files_of_each_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bases = tmp_path / "config" / "crd" / "bases"
    bases.mkdir(parents=True)
    (bases / "widgets.yaml").write_text(CRD_A)
    (bases / "gadgets.yaml").write_text(COMBINED)
    (tmp_path / "config" / "crd" / "kustomization.yaml").write_text(KUSTOMIZATION)
    monkeypatch.setattr(upstream, "module_dir", lambda pin, go="go": tmp_path)

    crds = upstream.load_crds([UpstreamPin("example.dev/widgets", "v1.0.0", "config/crd/bases/*.yaml")])
    # Sorted by file name: gadgets.yaml before widgets.yaml.
    assert [crd["metadata"]["name"] for crd in crds] == ["gadgets.example.dev", "widgets.example.dev"]
    assert all("status" not in crd for crd in crds)

    with pytest.raises(UpstreamError, match="matches no file"):
        upstream.load_crds([UpstreamPin("example.dev/widgets", "v1.0.0", "config/crd/full/*.yaml")])
    with pytest.raises(UpstreamError, match="no CustomResourceDefinition"):
        upstream.load_crds([UpstreamPin("example.dev/widgets", "v1.0.0", "config/crd/kustomization.yaml")])


def test_the_go_command_uses_the_build_scripts_module_cache_and_no_toolchain_downloads() -> None:
    env = upstream.go_environment({"XDG_CACHE_HOME": "/cache", "GOFLAGS": "-mod=vendor"})
    assert env["GOMODCACHE"] == "/cache/shinsa/go/mod"
    assert env["GOFLAGS"] == "-mod=mod" and env["GOTOOLCHAIN"] == "local"
    assert upstream.go_environment({"GOMODCACHE": "/elsewhere"})["GOMODCACHE"] == "/elsewhere"
