from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.fleet_health_tenants_item_status import FleetHealthTenantsItemStatus
from ..types import UNSET, Unset

T = TypeVar("T", bound="FleetHealthTenantsItem")


@_attrs_define
class FleetHealthTenantsItem:
    """
    Attributes:
        tenant (str):
        status (FleetHealthTenantsItemStatus):
        instances (int):
        live (int):
        stale (list[str] | Unset):
        bundle_revisions (list[str] | Unset):
        calls_per_s (float | Unset):
        errors_per_s (float | Unset):
        error_rate (float | None | Unset):
        receipts_per_s (float | Unset):
        evidence_emission (float | None | Unset):
        receipts_backlog (int | Unset):
        nacking (list[str] | Unset): gateways whose last xDS NACK is not yet superseded by an accepted version
    """

    tenant: str
    status: FleetHealthTenantsItemStatus
    instances: int
    live: int
    stale: list[str] | Unset = UNSET
    bundle_revisions: list[str] | Unset = UNSET
    calls_per_s: float | Unset = UNSET
    errors_per_s: float | Unset = UNSET
    error_rate: float | None | Unset = UNSET
    receipts_per_s: float | Unset = UNSET
    evidence_emission: float | None | Unset = UNSET
    receipts_backlog: int | Unset = UNSET
    nacking: list[str] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        tenant = self.tenant

        status = self.status.value

        instances = self.instances

        live = self.live

        stale: list[str] | Unset = UNSET
        if not isinstance(self.stale, Unset):
            stale = self.stale

        bundle_revisions: list[str] | Unset = UNSET
        if not isinstance(self.bundle_revisions, Unset):
            bundle_revisions = self.bundle_revisions

        calls_per_s = self.calls_per_s

        errors_per_s = self.errors_per_s

        error_rate: float | None | Unset
        if isinstance(self.error_rate, Unset):
            error_rate = UNSET
        else:
            error_rate = self.error_rate

        receipts_per_s = self.receipts_per_s

        evidence_emission: float | None | Unset
        if isinstance(self.evidence_emission, Unset):
            evidence_emission = UNSET
        else:
            evidence_emission = self.evidence_emission

        receipts_backlog = self.receipts_backlog

        nacking: list[str] | Unset = UNSET
        if not isinstance(self.nacking, Unset):
            nacking = self.nacking

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "tenant": tenant,
                "status": status,
                "instances": instances,
                "live": live,
            }
        )
        if stale is not UNSET:
            field_dict["stale"] = stale
        if bundle_revisions is not UNSET:
            field_dict["bundle_revisions"] = bundle_revisions
        if calls_per_s is not UNSET:
            field_dict["calls_per_s"] = calls_per_s
        if errors_per_s is not UNSET:
            field_dict["errors_per_s"] = errors_per_s
        if error_rate is not UNSET:
            field_dict["error_rate"] = error_rate
        if receipts_per_s is not UNSET:
            field_dict["receipts_per_s"] = receipts_per_s
        if evidence_emission is not UNSET:
            field_dict["evidence_emission"] = evidence_emission
        if receipts_backlog is not UNSET:
            field_dict["receipts_backlog"] = receipts_backlog
        if nacking is not UNSET:
            field_dict["nacking"] = nacking

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        tenant = d.pop("tenant")

        status = FleetHealthTenantsItemStatus(d.pop("status"))

        instances = d.pop("instances")

        live = d.pop("live")

        stale = cast(list[str], d.pop("stale", UNSET))

        bundle_revisions = cast(list[str], d.pop("bundle_revisions", UNSET))

        calls_per_s = d.pop("calls_per_s", UNSET)

        errors_per_s = d.pop("errors_per_s", UNSET)

        def _parse_error_rate(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        error_rate = _parse_error_rate(d.pop("error_rate", UNSET))

        receipts_per_s = d.pop("receipts_per_s", UNSET)

        def _parse_evidence_emission(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        evidence_emission = _parse_evidence_emission(d.pop("evidence_emission", UNSET))

        receipts_backlog = d.pop("receipts_backlog", UNSET)

        nacking = cast(list[str], d.pop("nacking", UNSET))

        fleet_health_tenants_item = cls(
            tenant=tenant,
            status=status,
            instances=instances,
            live=live,
            stale=stale,
            bundle_revisions=bundle_revisions,
            calls_per_s=calls_per_s,
            errors_per_s=errors_per_s,
            error_rate=error_rate,
            receipts_per_s=receipts_per_s,
            evidence_emission=evidence_emission,
            receipts_backlog=receipts_backlog,
            nacking=nacking,
        )

        fleet_health_tenants_item.additional_properties = d
        return fleet_health_tenants_item

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
