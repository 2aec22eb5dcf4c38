from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_scope import KeyScope


T = TypeVar("T", bound="Key")


@_attrs_define
class Key:
    """
    Attributes:
        id (str):
        workspace (str):
        name (str):
        kind (str):
        scope (KeyScope):
        created_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        created_by (str | Unset):
        expires_at (datetime.datetime | None | Unset):
        revoked_at (datetime.datetime | None | Unset):
        rotated_to (None | str | Unset):
    """

    id: str
    workspace: str
    name: str
    kind: str
    scope: KeyScope
    created_at: datetime.datetime
    created_by: str | Unset = UNSET
    expires_at: datetime.datetime | None | Unset = UNSET
    revoked_at: datetime.datetime | None | Unset = UNSET
    rotated_to: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        workspace = self.workspace

        name = self.name

        kind = self.kind

        scope = self.scope.to_dict()

        created_at = self.created_at.isoformat()

        created_by = self.created_by

        expires_at: None | str | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        elif isinstance(self.expires_at, datetime.datetime):
            expires_at = self.expires_at.isoformat()
        else:
            expires_at = self.expires_at

        revoked_at: None | str | Unset
        if isinstance(self.revoked_at, Unset):
            revoked_at = UNSET
        elif isinstance(self.revoked_at, datetime.datetime):
            revoked_at = self.revoked_at.isoformat()
        else:
            revoked_at = self.revoked_at

        rotated_to: None | str | Unset
        if isinstance(self.rotated_to, Unset):
            rotated_to = UNSET
        else:
            rotated_to = self.rotated_to

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "workspace": workspace,
                "name": name,
                "kind": kind,
                "scope": scope,
                "created_at": created_at,
            }
        )
        if created_by is not UNSET:
            field_dict["created_by"] = created_by
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if revoked_at is not UNSET:
            field_dict["revoked_at"] = revoked_at
        if rotated_to is not UNSET:
            field_dict["rotated_to"] = rotated_to

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.key_scope import KeyScope  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        workspace = d.pop("workspace")

        name = d.pop("name")

        kind = d.pop("kind")

        scope = KeyScope.from_dict(d.pop("scope"))

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        created_by = d.pop("created_by", UNSET)

        def _parse_expires_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                expires_at_type_0 = datetime.datetime.fromisoformat(data)

                return expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))

        def _parse_revoked_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                revoked_at_type_0 = datetime.datetime.fromisoformat(data)

                return revoked_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        revoked_at = _parse_revoked_at(d.pop("revoked_at", UNSET))

        def _parse_rotated_to(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        rotated_to = _parse_rotated_to(d.pop("rotated_to", UNSET))

        key = cls(
            id=id,
            workspace=workspace,
            name=name,
            kind=kind,
            scope=scope,
            created_at=created_at,
            created_by=created_by,
            expires_at=expires_at,
            revoked_at=revoked_at,
            rotated_to=rotated_to,
        )

        return key
