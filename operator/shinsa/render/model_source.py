"""Where the weights come from: a model URI becomes `vllm serve`'s model argument, volumes and loader
flags.

This is the one place a URI is turned into something vLLM can load. The controller should plan with
`vllm_model_argument(uri)` as the planner's `model`, so the plan in status shows the same model that
runs; `render` rewrites the model flags from the spec either way, so a plan made from the raw URI still
renders correctly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shinsa.render.labels import RenderError

HF_SCHEME = "hf://"
S3_SCHEME = "s3://"
PVC_SCHEME = "pvc://"
MLFLOW_SCHEME = "models:/"

MODEL_CACHE_DIR = "/models/cache"
PVC_MOUNT_DIR = "/models/pvc"
PVC_VOLUME = "model"

# Streams safetensors from object storage straight into GPU memory, so an S3 model needs neither a
# download step nor local disk the size of the weights.
S3_LOAD_FORMAT = "runai_streamer"


@dataclass(frozen=True)
class ModelSource:
    """What loading one model URI needs from the pod."""

    kind: Literal["hf", "s3", "pvc"]
    uri: str
    # `vllm serve`'s model argument (the positional one; `--model` is deprecated there).
    model: str
    # Only the Hugging Face Hub has revisions; for a bucket or a volume the path is the version.
    supports_revision: bool
    args: tuple[str, ...] = ()
    volumes: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    volume_mounts: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def resolve_model_source(uri: str) -> ModelSource:
    """How to load `uri` (`hf://org/name`, `s3://bucket/prefix` or `pvc://claim/path`).

    `models:/name@alias` is a pointer into the MLflow registry, which only the controller can follow
    (it needs the tracking server): it must be resolved to one of the other forms first.
    """
    if uri.startswith(HF_SCHEME):
        repo = uri[len(HF_SCHEME) :].strip("/")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise RenderError(f"spec.model.uri {uri!r}: expected hf://<org>/<name>")
        return ModelSource(kind="hf", uri=uri, model=repo, supports_revision=True)
    if uri.startswith(S3_SCHEME):
        bucket = uri[len(S3_SCHEME) :].split("/", 1)[0]
        if not bucket:
            raise RenderError(f"spec.model.uri {uri!r}: expected s3://<bucket>/<prefix>")
        return ModelSource(
            kind="s3",
            uri=uri,
            model=uri.rstrip("/"),
            supports_revision=False,
            args=("--load-format", S3_LOAD_FORMAT),
        )
    if uri.startswith(PVC_SCHEME):
        claim, _, path = uri[len(PVC_SCHEME) :].partition("/")
        if not claim:
            raise RenderError(f"spec.model.uri {uri!r}: expected pvc://<claim>/<path>")
        path = path.strip("/")
        return ModelSource(
            kind="pvc",
            uri=uri,
            model=f"{PVC_MOUNT_DIR}/{path}" if path else PVC_MOUNT_DIR,
            supports_revision=False,
            # Read-only: a serving pod has no business changing the weights other replicas load.
            volumes=({"name": PVC_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},),
            volume_mounts=({"name": PVC_VOLUME, "mountPath": PVC_MOUNT_DIR, "readOnly": True},),
        )
    if uri.startswith(MLFLOW_SCHEME):
        raise RenderError(
            f"spec.model.uri {uri!r} is an MLflow registry reference: resolve it to an hf://, s3:// or "
            "pvc:// URI and pass it as model_path"
        )
    raise RenderError(f"spec.model.uri {uri!r}: unsupported scheme (hf://, s3://, pvc:// or models:/)")


def vllm_model_argument(uri: str) -> str:
    """The model argument of `vllm serve` for `uri`: the value to plan with."""
    return resolve_model_source(uri).model


def flag_name(arg: str) -> str:
    """The option `arg` sets, as vLLM normalises it: `--max_model_len=1` -> `--max-model-len`."""
    flag = arg.split("=", 1)[0]
    return "--" + flag[2:].replace("_", "-") if flag.startswith("--") else flag


def has_flag(args: Sequence[str], flag: str) -> bool:
    """Whether `flag` appears in `args` in any spelling vLLM accepts (`--load_format=x` included)."""
    return any(flag_name(arg) == flag for arg in args if arg.startswith("-"))


# Flags that describe which weights to load; render sets them from the spec, not from the plan.
_VALUE_FLAGS = {"--model", "--revision"}
_SWITCH_FLAGS = {"--trust-remote-code", "--no-trust-remote-code"}


def apply_model_source(
    args: Sequence[str], source: ModelSource, *, revision: str | None, trust_remote_code: bool
) -> list[str]:
    """`args` with the model flags replaced by what `source` and the spec say.

    `--trust-remote-code` follows the spec alone: a plan made for another request must never be able
    to turn on third-party code execution that the ModelDeployment did not opt into.
    """
    # The plan's first argument is the model it was planned with (`vllm serve`'s positional).
    rest = args[1:] if args and not args[0].startswith("-") else args
    kept: list[str] = []
    skip_value = False
    for arg in rest:
        if skip_value:
            skip_value = False
            continue
        name = flag_name(arg) if arg.startswith("-") else None
        if name in _VALUE_FLAGS:
            skip_value = "=" not in arg
            continue
        if name in _SWITCH_FLAGS:
            continue
        kept.append(arg)
    model_flags = [source.model]
    if revision and source.supports_revision:
        model_flags += ["--revision", revision]
    if trust_remote_code:
        model_flags.append("--trust-remote-code")
    return model_flags + kept
