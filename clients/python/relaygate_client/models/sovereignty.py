from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Sovereignty")


@_attrs_define
class Sovereignty:
    """
    Attributes:
        allowed_jurisdictions (list[str] | Unset):
        allowed_regions (list[str] | Unset):
    """

    allowed_jurisdictions: list[str] | Unset = UNSET
    allowed_regions: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        allowed_jurisdictions: list[str] | Unset = UNSET
        if not isinstance(self.allowed_jurisdictions, Unset):
            allowed_jurisdictions = self.allowed_jurisdictions

        allowed_regions: list[str] | Unset = UNSET
        if not isinstance(self.allowed_regions, Unset):
            allowed_regions = self.allowed_regions

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if allowed_jurisdictions is not UNSET:
            field_dict["allowed_jurisdictions"] = allowed_jurisdictions
        if allowed_regions is not UNSET:
            field_dict["allowed_regions"] = allowed_regions

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        allowed_jurisdictions = cast(list[str], d.pop("allowed_jurisdictions", UNSET))

        allowed_regions = cast(list[str], d.pop("allowed_regions", UNSET))

        sovereignty = cls(
            allowed_jurisdictions=allowed_jurisdictions,
            allowed_regions=allowed_regions,
        )

        return sovereignty
