from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Session")


@_attrs_define
class Session:
    """
    Attributes:
        token (str):
        expires_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        workspace (str):
        role (str | Unset):
        permissions (list[str] | Unset):
    """

    token: str
    expires_at: datetime.datetime
    workspace: str
    role: str | Unset = UNSET
    permissions: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        token = self.token

        expires_at = self.expires_at.isoformat()

        workspace = self.workspace

        role = self.role

        permissions: list[str] | Unset = UNSET
        if not isinstance(self.permissions, Unset):
            permissions = self.permissions

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "token": token,
                "expires_at": expires_at,
                "workspace": workspace,
            }
        )
        if role is not UNSET:
            field_dict["role"] = role
        if permissions is not UNSET:
            field_dict["permissions"] = permissions

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        token = d.pop("token")

        expires_at = datetime.datetime.fromisoformat(d.pop("expires_at"))

        workspace = d.pop("workspace")

        role = d.pop("role", UNSET)

        permissions = cast(list[str], d.pop("permissions", UNSET))

        session = cls(
            token=token,
            expires_at=expires_at,
            workspace=workspace,
            role=role,
            permissions=permissions,
        )

        return session
