from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.agent_patch_protocol import AgentPatchProtocol
from ..types import UNSET, Unset

T = TypeVar("T", bound="AgentPatch")


@_attrs_define
class AgentPatch:
    """
    Attributes:
        name (str | Unset):
        capability (str | Unset):
        description (str | Unset):
        endpoint (str | Unset):
        protocol (AgentPatchProtocol | Unset):
    """

    name: str | Unset = UNSET
    capability: str | Unset = UNSET
    description: str | Unset = UNSET
    endpoint: str | Unset = UNSET
    protocol: AgentPatchProtocol | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        capability = self.capability

        description = self.description

        endpoint = self.endpoint

        protocol: str | Unset = UNSET
        if not isinstance(self.protocol, Unset):
            protocol = self.protocol.value

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if capability is not UNSET:
            field_dict["capability"] = capability
        if description is not UNSET:
            field_dict["description"] = description
        if endpoint is not UNSET:
            field_dict["endpoint"] = endpoint
        if protocol is not UNSET:
            field_dict["protocol"] = protocol

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name", UNSET)

        capability = d.pop("capability", UNSET)

        description = d.pop("description", UNSET)

        endpoint = d.pop("endpoint", UNSET)

        _protocol = d.pop("protocol", UNSET)
        protocol: AgentPatchProtocol | Unset
        if isinstance(_protocol, Unset):
            protocol = UNSET
        else:
            protocol = AgentPatchProtocol(_protocol)

        agent_patch = cls(
            name=name,
            capability=capability,
            description=description,
            endpoint=endpoint,
            protocol=protocol,
        )

        return agent_patch
