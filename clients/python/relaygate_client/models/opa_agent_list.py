from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.opa_agent_list_agents_item import OpaAgentListAgentsItem


T = TypeVar("T", bound="OpaAgentList")


@_attrs_define
class OpaAgentList:
    """
    Attributes:
        agents (list[OpaAgentListAgentsItem]):
    """

    agents: list[OpaAgentListAgentsItem]

    def to_dict(self) -> dict[str, Any]:
        agents = []
        for agents_item_data in self.agents:
            agents_item = agents_item_data.to_dict()
            agents.append(agents_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "agents": agents,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.opa_agent_list_agents_item import OpaAgentListAgentsItem  # noqa: PLC0415

        d = dict(src_dict)
        agents = []
        _agents = d.pop("agents")
        for agents_item_data in _agents:
            agents_item = OpaAgentListAgentsItem.from_dict(agents_item_data)

            agents.append(agents_item)

        opa_agent_list = cls(
            agents=agents,
        )

        return opa_agent_list
