from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.instance_posture import InstancePosture


T = TypeVar("T", bound="Instance")


@_attrs_define
class Instance:
    """
    Attributes:
        id (str):
        tenant (str):
        posture (InstancePosture):
        zone (str | Unset):
        version (str | Unset):
        grpc_address (str | Unset):
        authz_address (None | str | Unset):
        registered_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        last_seen_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        stale (bool | Unset):
        staleness_seconds (float | Unset):
    """

    id: str
    tenant: str
    posture: InstancePosture
    zone: str | Unset = UNSET
    version: str | Unset = UNSET
    grpc_address: str | Unset = UNSET
    authz_address: None | str | Unset = UNSET
    registered_at: datetime.datetime | Unset = UNSET
    last_seen_at: datetime.datetime | Unset = UNSET
    stale: bool | Unset = UNSET
    staleness_seconds: float | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        tenant = self.tenant

        posture = self.posture.to_dict()

        zone = self.zone

        version = self.version

        grpc_address = self.grpc_address

        authz_address: None | str | Unset
        if isinstance(self.authz_address, Unset):
            authz_address = UNSET
        else:
            authz_address = self.authz_address

        registered_at: str | Unset = UNSET
        if not isinstance(self.registered_at, Unset):
            registered_at = self.registered_at.isoformat()

        last_seen_at: str | Unset = UNSET
        if not isinstance(self.last_seen_at, Unset):
            last_seen_at = self.last_seen_at.isoformat()

        stale = self.stale

        staleness_seconds = self.staleness_seconds

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "tenant": tenant,
                "posture": posture,
            }
        )
        if zone is not UNSET:
            field_dict["zone"] = zone
        if version is not UNSET:
            field_dict["version"] = version
        if grpc_address is not UNSET:
            field_dict["grpc_address"] = grpc_address
        if authz_address is not UNSET:
            field_dict["authz_address"] = authz_address
        if registered_at is not UNSET:
            field_dict["registered_at"] = registered_at
        if last_seen_at is not UNSET:
            field_dict["last_seen_at"] = last_seen_at
        if stale is not UNSET:
            field_dict["stale"] = stale
        if staleness_seconds is not UNSET:
            field_dict["staleness_seconds"] = staleness_seconds

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.instance_posture import InstancePosture  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        tenant = d.pop("tenant")

        posture = InstancePosture.from_dict(d.pop("posture"))

        zone = d.pop("zone", UNSET)

        version = d.pop("version", UNSET)

        grpc_address = d.pop("grpc_address", UNSET)

        def _parse_authz_address(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        authz_address = _parse_authz_address(d.pop("authz_address", UNSET))

        _registered_at = d.pop("registered_at", UNSET)
        registered_at: datetime.datetime | Unset
        if isinstance(_registered_at, Unset):
            registered_at = UNSET
        else:
            registered_at = datetime.datetime.fromisoformat(_registered_at)

        _last_seen_at = d.pop("last_seen_at", UNSET)
        last_seen_at: datetime.datetime | Unset
        if isinstance(_last_seen_at, Unset):
            last_seen_at = UNSET
        else:
            last_seen_at = datetime.datetime.fromisoformat(_last_seen_at)

        stale = d.pop("stale", UNSET)

        staleness_seconds = d.pop("staleness_seconds", UNSET)

        instance = cls(
            id=id,
            tenant=tenant,
            posture=posture,
            zone=zone,
            version=version,
            grpc_address=grpc_address,
            authz_address=authz_address,
            registered_at=registered_at,
            last_seen_at=last_seen_at,
            stale=stale,
            staleness_seconds=staleness_seconds,
        )

        instance.additional_properties = d
        return instance

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
