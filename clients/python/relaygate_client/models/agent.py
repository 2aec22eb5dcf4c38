from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Agent")


@_attrs_define
class Agent:
    """
    Attributes:
        id (str):
        name (str):
        capability (str):
        description (str):
        endpoint (str):
        protocol (str):
        created_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
    """

    id: str
    name: str
    capability: str
    description: str
    endpoint: str
    protocol: str
    created_at: datetime.datetime

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        name = self.name

        capability = self.capability

        description = self.description

        endpoint = self.endpoint

        protocol = self.protocol

        created_at = self.created_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "name": name,
                "capability": capability,
                "description": description,
                "endpoint": endpoint,
                "protocol": protocol,
                "created_at": created_at,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        capability = d.pop("capability")

        description = d.pop("description")

        endpoint = d.pop("endpoint")

        protocol = d.pop("protocol")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        agent = cls(
            id=id,
            name=name,
            capability=capability,
            description=description,
            endpoint=endpoint,
            protocol=protocol,
            created_at=created_at,
        )

        return agent
