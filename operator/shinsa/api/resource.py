"""What every top-level Shinsa resource has: type metadata, object metadata, and CRD naming."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from shinsa.api.base import K8sModel, wire_name


class ObjectMeta(BaseModel):
    """The parts of `metadata` Shinsa reads; everything else is kept as-is."""

    model_config = ConfigDict(alias_generator=wire_name, populate_by_name=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class PrinterColumn:
    """A `kubectl get` column (an entry of `additionalPrinterColumns`)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0

    def to_crd(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            out["description"] = self.description
        if self.priority:
            out["priority"] = self.priority
        return out


AGE_COLUMN = PrinterColumn("Age", "date", ".metadata.creationTimestamp")


class K8sResource(K8sModel):
    """A whole custom resource: `apiVersion`, `kind`, `metadata`, `spec` and `status`.

    Subclasses declare how the CRD names them; `shinsa.api.crd` builds the CRD from that and from
    the spec and status models.
    """

    plural: ClassVar[str]
    singular: ClassVar[str]
    short_names: ClassVar[tuple[str, ...]] = ()
    categories: ClassVar[tuple[str, ...]] = ("shinsa",)
    scope: ClassVar[str] = "Namespaced"
    """`Cluster` for a resource that belongs to no namespace."""
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = ()

    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse a resource as the API server (or kopf's `body`) returns it."""
        return cls.model_validate(dict(body))
