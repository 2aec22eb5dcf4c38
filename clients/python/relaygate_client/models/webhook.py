from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Webhook")


@_attrs_define
class Webhook:
    """
    Attributes:
        id (str):
        workspace (str):
        url (str):
        events (list[str]):
        created_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        description (None | str | Unset):
        created_by (None | str | Unset):
        secret (str | Unset): whsec_…: the Standard Webhooks signing secret, in the creation response only
    """

    id: str
    workspace: str
    url: str
    events: list[str]
    created_at: datetime.datetime
    description: None | str | Unset = UNSET
    created_by: None | str | Unset = UNSET
    secret: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        workspace = self.workspace

        url = self.url

        events = self.events

        created_at = self.created_at.isoformat()

        description: None | str | Unset
        if isinstance(self.description, Unset):
            description = UNSET
        else:
            description = self.description

        created_by: None | str | Unset
        if isinstance(self.created_by, Unset):
            created_by = UNSET
        else:
            created_by = self.created_by

        secret = self.secret

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "workspace": workspace,
                "url": url,
                "events": events,
                "created_at": created_at,
            }
        )
        if description is not UNSET:
            field_dict["description"] = description
        if created_by is not UNSET:
            field_dict["created_by"] = created_by
        if secret is not UNSET:
            field_dict["secret"] = secret

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        workspace = d.pop("workspace")

        url = d.pop("url")

        events = cast(list[str], d.pop("events"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        def _parse_description(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        description = _parse_description(d.pop("description", UNSET))

        def _parse_created_by(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        created_by = _parse_created_by(d.pop("created_by", UNSET))

        secret = d.pop("secret", UNSET)

        webhook = cls(
            id=id,
            workspace=workspace,
            url=url,
            events=events,
            created_at=created_at,
            description=description,
            created_by=created_by,
            secret=secret,
        )

        return webhook
