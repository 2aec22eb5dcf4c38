from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="SessionInput")


@_attrs_define
class SessionInput:
    """A session holds its maker's permissions (or those it is narrowed to) and ends as soon as its key is revoked, rotated
    (grace or not) or expires.

        Attributes:
            ttl_seconds (int | Unset): capped by the session_max_ttl setting and by the expiry of the key (or session, JWT)
                making it
            permissions (list[str] | Unset): narrow the session to these of its maker's permissions (default: all of them);
                without gateway:call the session cannot call the gateway
    """

    ttl_seconds: int | Unset = UNSET
    permissions: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        ttl_seconds = self.ttl_seconds

        permissions: list[str] | Unset = UNSET
        if not isinstance(self.permissions, Unset):
            permissions = self.permissions

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if ttl_seconds is not UNSET:
            field_dict["ttl_seconds"] = ttl_seconds
        if permissions is not UNSET:
            field_dict["permissions"] = permissions

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        ttl_seconds = d.pop("ttl_seconds", UNSET)

        permissions = cast(list[str], d.pop("permissions", UNSET))

        session_input = cls(
            ttl_seconds=ttl_seconds,
            permissions=permissions,
        )

        return session_input
