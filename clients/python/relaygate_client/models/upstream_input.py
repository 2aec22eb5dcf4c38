from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.upstream_input_provider import UpstreamInputProvider
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.upstream_input_envoy_cluster_overrides import UpstreamInputEnvoyClusterOverrides
    from ..models.upstream_input_models import UpstreamInputModels


T = TypeVar("T", bound="UpstreamInput")


@_attrs_define
class UpstreamInput:
    """
    Attributes:
        name (str):
        provider (UpstreamInputProvider):
        address (str):
        region (str):
        jurisdiction (str):
        credential (str): name of a provider credential (see /v1/fleet/credentials/rotate)
        models (UpstreamInputModels):
        tls (bool | Unset):
        base_path (str | Unset):
        envoy_cluster_overrides (UpstreamInputEnvoyClusterOverrides | Unset): advanced: fields merged into the Envoy
            cluster (Envoy validates them)
        forward_headers (list[str] | None | Unset): client request headers forwarded to this upstream (a trailing '*'
            matches a prefix); every other client header is removed. Absent or null: the provider's default list.
            Credentials and the gateway's and Envoy's own headers are never forwarded.
        ca_file (str | Unset): with tls: the CA file (PEM, a path on the gateways' hosts) the provider's certificate
            must chain to; default the system CA bundle. The certificate must name the address's host either way.
    """

    name: str
    provider: UpstreamInputProvider
    address: str
    region: str
    jurisdiction: str
    credential: str
    models: UpstreamInputModels
    tls: bool | Unset = UNSET
    base_path: str | Unset = UNSET
    envoy_cluster_overrides: UpstreamInputEnvoyClusterOverrides | Unset = UNSET
    forward_headers: list[str] | None | Unset = UNSET
    ca_file: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        provider = self.provider.value

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

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.upstream_input_envoy_cluster_overrides import UpstreamInputEnvoyClusterOverrides  # noqa: PLC0415
        from ..models.upstream_input_models import UpstreamInputModels  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        provider = UpstreamInputProvider(d.pop("provider"))

        address = d.pop("address")

        region = d.pop("region")

        jurisdiction = d.pop("jurisdiction")

        credential = d.pop("credential")

        models = UpstreamInputModels.from_dict(d.pop("models"))

        tls = d.pop("tls", UNSET)

        base_path = d.pop("base_path", UNSET)

        _envoy_cluster_overrides = d.pop("envoy_cluster_overrides", UNSET)
        envoy_cluster_overrides: UpstreamInputEnvoyClusterOverrides | Unset
        if isinstance(_envoy_cluster_overrides, Unset):
            envoy_cluster_overrides = UNSET
        else:
            envoy_cluster_overrides = UpstreamInputEnvoyClusterOverrides.from_dict(_envoy_cluster_overrides)

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

        upstream_input = cls(
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
        )

        return upstream_input
