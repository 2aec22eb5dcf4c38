from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.upstream_envoy_cluster_overrides import UpstreamEnvoyClusterOverrides
    from ..models.upstream_models import UpstreamModels


T = TypeVar("T", bound="Upstream")


@_attrs_define
class Upstream:
    """
    Attributes:
        name (str):
        provider (str):
        address (str):
        region (str):
        jurisdiction (str):
        credential (str):
        models (UpstreamModels):
        tls (bool | Unset):
        base_path (str | Unset):
        envoy_cluster_overrides (UpstreamEnvoyClusterOverrides | Unset):
        forward_headers (list[str] | None | Unset): client request headers forwarded to this upstream (a trailing '*'
            matches a prefix); every other client header is removed. Absent or null: the provider's default list.
            Credentials and the gateway's and Envoy's own headers are never forwarded.
        ca_file (str | Unset):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        updated_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
    """

    name: str
    provider: str
    address: str
    region: str
    jurisdiction: str
    credential: str
    models: UpstreamModels
    tls: bool | Unset = UNSET
    base_path: str | Unset = UNSET
    envoy_cluster_overrides: UpstreamEnvoyClusterOverrides | Unset = UNSET
    forward_headers: list[str] | None | Unset = UNSET
    ca_file: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    updated_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        provider = self.provider

        address = self.address

        region = self.region

        jurisdiction = self.jurisdiction

        credential = self.credential

        models = self.models.to_dict()

        tls = self.tls

        base_path = self.base_path

        envoy_cluster_overrides: dict[str, Any] | Unset = UNSET
        if not isinstance(self.envoy_cluster_overrides, Unset):
            envoy_cluster_overrides = self.envoy_cluster_overrides.to_dict()

        forward_headers: list[str] | None | Unset
        if isinstance(self.forward_headers, Unset):
            forward_headers = UNSET
        elif isinstance(self.forward_headers, list):
            forward_headers = self.forward_headers

        else:
            forward_headers = self.forward_headers

        ca_file = self.ca_file

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        updated_at: str | Unset = UNSET
        if not isinstance(self.updated_at, Unset):
            updated_at = self.updated_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "provider": provider,
                "address": address,
                "region": region,
                "jurisdiction": jurisdiction,
                "credential": credential,
                "models": models,
            }
        )
        if tls is not UNSET:
            field_dict["tls"] = tls
        if base_path is not UNSET:
            field_dict["base_path"] = base_path
        if envoy_cluster_overrides is not UNSET:
            field_dict["envoy_cluster_overrides"] = envoy_cluster_overrides
        if forward_headers is not UNSET:
            field_dict["forward_headers"] = forward_headers
        if ca_file is not UNSET:
            field_dict["ca_file"] = ca_file
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.upstream_envoy_cluster_overrides import UpstreamEnvoyClusterOverrides  # noqa: PLC0415
        from ..models.upstream_models import UpstreamModels  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        provider = d.pop("provider")

        address = d.pop("address")

        region = d.pop("region")

        jurisdiction = d.pop("jurisdiction")

        credential = d.pop("credential")

        models = UpstreamModels.from_dict(d.pop("models"))

        tls = d.pop("tls", UNSET)

        base_path = d.pop("base_path", UNSET)

        _envoy_cluster_overrides = d.pop("envoy_cluster_overrides", UNSET)
        envoy_cluster_overrides: UpstreamEnvoyClusterOverrides | Unset
        if isinstance(_envoy_cluster_overrides, Unset):
            envoy_cluster_overrides = UNSET
        else:
            envoy_cluster_overrides = UpstreamEnvoyClusterOverrides.from_dict(_envoy_cluster_overrides)

        def _parse_forward_headers(data: object) -> list[str] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                forward_headers_type_0 = cast(list[str], data)

                return forward_headers_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[str] | None | Unset, data)

        forward_headers = _parse_forward_headers(d.pop("forward_headers", UNSET))

        ca_file = d.pop("ca_file", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        _updated_at = d.pop("updated_at", UNSET)
        updated_at: datetime.datetime | Unset
        if isinstance(_updated_at, Unset):
            updated_at = UNSET
        else:
            updated_at = datetime.datetime.fromisoformat(_updated_at)

        upstream = cls(
            name=name,
            provider=provider,
            address=address,
            region=region,
            jurisdiction=jurisdiction,
            credential=credential,
            models=models,
            tls=tls,
            base_path=base_path,
            envoy_cluster_overrides=envoy_cluster_overrides,
            forward_headers=forward_headers,
            ca_file=ca_file,
            created_at=created_at,
            updated_at=updated_at,
        )

        return upstream
