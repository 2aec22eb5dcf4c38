from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Budget")


@_attrs_define
class Budget:
    """
    Attributes:
        id (str):
        workspace (str):
        key_id (None | str):
        unit (str):
        window (str):
        limit (float):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        updated_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
    """

    id: str
    workspace: str
    key_id: None | str
    unit: str
    window: str
    limit: float
    created_at: datetime.datetime | Unset = UNSET
    updated_at: datetime.datetime | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        workspace = self.workspace

        key_id: None | str
        key_id = self.key_id

        unit = self.unit

        window = self.window

        limit = self.limit

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        updated_at: str | Unset = UNSET
        if not isinstance(self.updated_at, Unset):
            updated_at = self.updated_at.isoformat()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "workspace": workspace,
                "key_id": key_id,
                "unit": unit,
                "window": window,
                "limit": limit,
            }
        )
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if updated_at is not UNSET:
            field_dict["updated_at"] = updated_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        workspace = d.pop("workspace")

        def _parse_key_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        key_id = _parse_key_id(d.pop("key_id"))

        unit = d.pop("unit")

        window = d.pop("window")

        limit = d.pop("limit")

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

        budget = cls(
            id=id,
            workspace=workspace,
            key_id=key_id,
            unit=unit,
            window=window,
            limit=limit,
            created_at=created_at,
            updated_at=updated_at,
        )

        return budget
