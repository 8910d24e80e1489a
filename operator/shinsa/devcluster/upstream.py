"""Other projects' CRDs (LeaderWorkerSet, KServe, Argo Workflows), read from their Go modules at
pinned versions.

Go module zips carry a module's non-Go files too, so `go mod download -json module@version` puts
the project's `config/crd/...` YAML into the module cache, from where the local control plane can
install the real CRDs, and tests can read other files the project publishes next to them (Argo's
JSON schema). Nothing is copied into this repository: the pins in tools/upstream-crds.txt are the
only place that names a version.

The module cache is the one tools/build.sh fills ($GOMODCACHE, else ~/.cache/shinsa/go/mod), so
a download happens once per version and machine.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shinsa.devcluster.cluster import repo_root

PINS_FILE = Path("tools") / "upstream-crds.txt"
CRD_API_VERSION = "apiextensions.k8s.io/v1"
CRD_KIND = "CustomResourceDefinition"
DOWNLOAD_TIMEOUT_S = 600

# libyaml parses the megabyte-sized CRDs (LeaderWorkerSet's embeds two PodSpecs) in a fraction of
# the pure-Python loader's time; fall back when PyYAML was built without it.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class UpstreamError(RuntimeError):
    """An upstream CRD could not be obtained; the message says which pin and why."""


@dataclass(frozen=True)
class UpstreamPin:
    """One line of the pins file: a Go module at a version and the CRD files inside it."""

    module: str
    version: str
    pattern: str

    @property
    def ref(self) -> str:
        return f"{self.module}@{self.version}"


def parse_pins(text: str, *, source: str = PINS_FILE.as_posix()) -> list[UpstreamPin]:
    """`module@version  glob` lines; `#` starts a comment."""
    pins = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        module, at, version = fields[0].partition("@")
        if len(fields) != 2 or not at or not module or not version.startswith("v"):
            raise UpstreamError(
                f"{source}:{number}: expected 'module@vX.Y.Z  path/glob.yaml', got {raw.strip()!r}"
            )
        pattern = fields[1]
        if pattern.startswith("/") or ".." in Path(pattern).parts:
            raise UpstreamError(f"{source}:{number}: {pattern!r} must be a path inside the module")
        pins.append(UpstreamPin(module=module, version=version, pattern=pattern))
    return pins


def read_pins(path: Path | None = None) -> list[UpstreamPin]:
    path = path or repo_root() / PINS_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise UpstreamError(f"cannot read the upstream CRD pins: {exc}") from None
    return parse_pins(text, source=str(path))


def pin_for(module: str, pins: Sequence[UpstreamPin] | None = None) -> UpstreamPin:
    """The pin of `module`, for a caller that needs one project's files rather than every CRD (a
    test of Argo's schema must not install LeaderWorkerSet for the tests that check its absence)."""
    pins = read_pins() if pins is None else pins
    for pin in pins:
        if pin.module == module:
            return pin
    raise UpstreamError(f"{module} is not pinned in {PINS_FILE.as_posix()}")


def go_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment tools/build.sh gives the go command: its caches, module mode, no toolchain
    downloads."""
    env = dict(os.environ if base is None else base)
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "shinsa" / "go"
    env.setdefault("GOMODCACHE", str(cache / "mod"))
    env.setdefault("GOCACHE", str(cache / "build"))
    env.update(GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    return env


def module_dir(pin: UpstreamPin, *, go: str = "go") -> Path:
    """Where the pinned module's files are, downloading it into the module cache if needed."""
    try:
        done = subprocess.run(
            [go, "mod", "download", "-json", pin.ref],
            capture_output=True,
            text=True,
            env=go_environment(),
            timeout=DOWNLOAD_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise UpstreamError(f"{pin.ref}: the go command ({go}) is not installed") from None
    except subprocess.TimeoutExpired:
        raise UpstreamError(f"{pin.ref}: go mod download took over {DOWNLOAD_TIMEOUT_S}s") from None
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        info = {}
    # On failure the go command still prints the JSON object, with the reason in "Error".
    if done.returncode != 0 or info.get("Error") or not info.get("Dir"):
        why = info.get("Error") or done.stderr.strip() or f"exit status {done.returncode}"
        raise UpstreamError(f"go mod download {pin.ref} failed: {why}")
    return Path(info["Dir"])


def crd_files(root: Path, pattern: str) -> list[Path]:
    """The files under `root` matching `pattern` (a glob relative to `root`), sorted. A pattern that
    matches nothing is an error: the upstream layout changed and the pin needs a look."""
    matches = sorted(p for p in root.glob(pattern) if p.is_file())
    if not matches:
        raise UpstreamError(f"{pattern!r} matches no file in {root}")
    return matches


def crd_documents(texts: Iterable[str]) -> list[dict[str, Any]]:
    """The apiextensions.k8s.io/v1 CustomResourceDefinitions in the multi-document YAML `texts`.

    Empty documents and other kinds (a kustomization, a patch, a Namespace) are skipped; a CRD that
    appears twice must be identical.
    """
    found: dict[str, dict[str, Any]] = {}
    for text in texts:
        for document in yaml.load_all(text, Loader=_Loader):
            if not isinstance(document, dict):
                continue
            if document.get("apiVersion") != CRD_API_VERSION or document.get("kind") != CRD_KIND:
                continue
            name = (document.get("metadata") or {}).get("name")
            if not name:
                raise UpstreamError("a CustomResourceDefinition without metadata.name")
            if name in found and found[name] != document:
                raise UpstreamError(f"two different definitions of {name}")
            found[name] = document
    return list(found.values())


def for_apply(crd: dict[str, Any]) -> dict[str, Any]:
    """The CRD as an apply body: controller-gen writes `creationTimestamp: null` and an empty
    status, which are server-owned fields an apply should not send."""
    body = {key: value for key, value in crd.items() if key != "status"}
    metadata = {key: value for key, value in body["metadata"].items() if key != "creationTimestamp"}
    return {**body, "metadata": metadata}


def load_crds(pins: Sequence[UpstreamPin] | None = None, *, go: str = "go") -> list[dict[str, Any]]:
    """Every CRD the pins name, ready to server-side apply (they are too large for client-side
    apply's last-applied annotation)."""
    crds: list[dict[str, Any]] = []
    for pin in read_pins() if pins is None else pins:
        root = module_dir(pin, go=go)
        documents = crd_documents(path.read_text() for path in crd_files(root, pin.pattern))
        if not documents:
            raise UpstreamError(f"{pin.ref} {pin.pattern}: no CustomResourceDefinition in the files")
        crds.extend(for_apply(document) for document in documents)
    return crds
