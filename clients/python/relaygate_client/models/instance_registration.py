from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.signing_key_input import SigningKeyInput


T = TypeVar("T", bound="InstanceRegistration")


@_attrs_define
class InstanceRegistration:
    """
    Attributes:
        instance_id (str):
        tenant (str):
        grpc_address (str):
        signing_key (SigningKeyInput):
        zone (str | Unset):
        version (str | Unset):
        authz_address (str | Unset): where the sidecar answers Envoy's ext_authz HTTP check (unix:/absolute/path or
            host:port); its gateway is then configured for that transport, else for ext_proc
    """

    instance_id: str
    tenant: str
    grpc_address: str
    signing_key: SigningKeyInput
    zone: str | Unset = UNSET
    version: str | Unset = UNSET
    authz_address: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        instance_id = self.instance_id

        tenant = self.tenant

        grpc_address = self.grpc_address

        signing_key = self.signing_key.to_dict()

        zone = self.zone

        version = self.version

        authz_address = self.authz_address

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "instance_id": instance_id,
                "tenant": tenant,
                "grpc_address": grpc_address,
                "signing_key": signing_key,
            }
        )
        if zone is not UNSET:
            field_dict["zone"] = zone
        if version is not UNSET:
            field_dict["version"] = version
        if authz_address is not UNSET:
            field_dict["authz_address"] = authz_address

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.signing_key_input import SigningKeyInput  # noqa: PLC0415

        d = dict(src_dict)
        instance_id = d.pop("instance_id")

        tenant = d.pop("tenant")

        grpc_address = d.pop("grpc_address")

        signing_key = SigningKeyInput.from_dict(d.pop("signing_key"))

        zone = d.pop("zone", UNSET)

        version = d.pop("version", UNSET)

        authz_address = d.pop("authz_address", UNSET)

        instance_registration = cls(
            instance_id=instance_id,
            tenant=tenant,
            grpc_address=grpc_address,
            signing_key=signing_key,
            zone=zone,
            version=version,
            authz_address=authz_address,
        )

        return instance_registration
