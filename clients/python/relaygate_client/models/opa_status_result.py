from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="OpaStatusResult")


@_attrs_define
class OpaStatusResult:
    """
    Attributes:
        id (str):
        bundles (int):
        errors (int):
    """

    id: str
    bundles: int
    errors: int

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        bundles = self.bundles

        errors = self.errors

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "bundles": bundles,
                "errors": errors,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        bundles = d.pop("bundles")

        errors = d.pop("errors")

        opa_status_result = cls(
            id=id,
            bundles=bundles,
            errors=errors,
        )

        return opa_status_result
