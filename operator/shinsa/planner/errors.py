"""Errors the planner raises. All derive from `PlannerError` so callers can catch the family at once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class PlannerError(ValueError):
    """A planner input that cannot be turned into a plan."""


class ConfigError(PlannerError):
    """A `config.json` that is missing fields the planner needs, or is not JSON at all."""


class UnknownArchitectureError(PlannerError):
    """A model family whose memory layout the planner does not know how to count."""

    def __init__(self, architecture: str, supported: Iterable[str]) -> None:
        self.architecture = architecture
        self.supported = tuple(supported)
        super().__init__(
            f"unsupported model architecture {architecture!r}; the planner knows {', '.join(self.supported)}"
        )


class UnknownModelError(PlannerError):
    """A model name that is neither in the catalog nor a path to a `config.json`."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown model {name!r}; known models: {', '.join(self.known)}")


class UnknownGpuError(PlannerError):
    """A GPU name or node label that matches no profile."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(
            f"unknown GPU {name!r}; known GPUs: {', '.join(self.known)}, "
            "or any GPU by its memory, e.g. '48GiB'"
        )


class PlanError(PlannerError):
    """A well-formed request that cannot be served as asked.

    `field` names the request field at fault (snake_case, as in `PlanRequest`) when there is one, so a CLI or
    an admission webhook can point at the option; `conflicts` names the other fields it contradicts, when the
    fault is a disagreement between fields rather than one bad value; `suggestions` are layouts or settings
    that would work.
    """

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        conflicts: Sequence[str] = (),
        suggestions: Sequence[str] = (),
    ) -> None:
        self.field = field
        self.conflicts = tuple(conflicts)
        self.suggestions = tuple(suggestions)
        self.reason = message
        if self.suggestions:
            message = message + "\nWhat would fit:\n" + "\n".join(f"  - {s}" for s in self.suggestions)
        super().__init__(message)
