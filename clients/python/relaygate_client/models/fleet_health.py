from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.fleet_health_tenants_item import FleetHealthTenantsItem


T = TypeVar("T", bound="FleetHealth")


@_attrs_define
class FleetHealth:
    """
    Attributes:
        tenants (list[FleetHealthTenantsItem]):
        generated_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
    """

    tenants: list[FleetHealthTenantsItem]
    generated_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        tenants = []
        for tenants_item_data in self.tenants:
            tenants_item = tenants_item_data.to_dict()
            tenants.append(tenants_item)

        generated_at: str | Unset = UNSET
        if not isinstance(self.generated_at, Unset):
            generated_at = self.generated_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "tenants": tenants,
            }
        )
        if generated_at is not UNSET:
            field_dict["generated_at"] = generated_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.fleet_health_tenants_item import FleetHealthTenantsItem  # noqa: PLC0415

        d = dict(src_dict)
        tenants = []
        _tenants = d.pop("tenants")
        for tenants_item_data in _tenants:
            tenants_item = FleetHealthTenantsItem.from_dict(tenants_item_data)

            tenants.append(tenants_item)

        _generated_at = d.pop("generated_at", UNSET)
        generated_at: datetime.datetime | Unset
        if isinstance(_generated_at, Unset):
            generated_at = UNSET
        else:
            generated_at = datetime.datetime.fromisoformat(_generated_at)

        fleet_health = cls(
            tenants=tenants,
            generated_at=generated_at,
        )

        return fleet_health
