from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.agent_input_protocol import AgentInputProtocol
from ..types import UNSET, Unset

T = TypeVar("T", bound="AgentInput")


@_attrs_define
class AgentInput:
    """
    Attributes:
        name (str):
        capability (str):
        endpoint (str):
        description (str | Unset):
        protocol (AgentInputProtocol | Unset):  Default: AgentInputProtocol.HTTP.
    """

    name: str
    capability: str
    endpoint: str
    description: str | Unset = UNSET
    protocol: AgentInputProtocol | Unset = AgentInputProtocol.HTTP

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        capability = self.capability

        endpoint = self.endpoint

        description = self.description

        protocol: str | Unset = UNSET
        if not isinstance(self.protocol, Unset):
            protocol = self.protocol.value

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "capability": capability,
                "endpoint": endpoint,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if protocol is not UNSET:
            field_dict["protocol"] = protocol

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        capability = d.pop("capability")

        endpoint = d.pop("endpoint")

        description = d.pop("description", UNSET)

        _protocol = d.pop("protocol", UNSET)
        protocol: AgentInputProtocol | Unset
        if isinstance(_protocol, Unset):
            protocol = UNSET
        else:
            protocol = AgentInputProtocol(_protocol)

        agent_input = cls(
            name=name,
            capability=capability,
            endpoint=endpoint,
            description=description,
            protocol=protocol,
        )

        return agent_input
