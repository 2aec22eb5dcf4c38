from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="OpaIngestResult")


@_attrs_define
class OpaIngestResult:
    """
    Attributes:
        accepted (int):
        duplicate (int):
    """

    accepted: int
    duplicate: int

    def to_dict(self) -> dict[str, Any]:
        accepted = self.accepted

        duplicate = self.duplicate

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "accepted": accepted,
                "duplicate": duplicate,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        accepted = d.pop("accepted")

        duplicate = d.pop("duplicate")

        opa_ingest_result = cls(
            accepted=accepted,
            duplicate=duplicate,
        )

        return opa_ingest_result
