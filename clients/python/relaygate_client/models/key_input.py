from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.key_input_kind import KeyInputKind
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_scope import KeyScope


T = TypeVar("T", bound="KeyInput")


@_attrs_define
class KeyInput:
    """A new key is within the caller on every dimension (kind, permissions, endpoints, models, expiry), else 403; each
    omitted field is the caller's own, never '*'. The admin token may mint any key; its default is a full standard key.

        Attributes:
            name (str | Unset):
            kind (KeyInputKind | Unset): default: the caller's kind; read_only keys cannot call the gateway
            scope (KeyScope | Unset):
            expires_in (int | None | Unset): seconds until the key stops working; default (or null): when the caller's key
                expires (never, if it does not)
    """

    name: str | Unset = UNSET
    kind: KeyInputKind | Unset = UNSET
    scope: KeyScope | Unset = UNSET
    expires_in: int | None | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        kind: str | Unset = UNSET
        if not isinstance(self.kind, Unset):
            kind = self.kind.value

        scope: dict[str, Any] | Unset = UNSET
        if not isinstance(self.scope, Unset):
            scope = self.scope.to_dict()

        expires_in: int | None | Unset
        if isinstance(self.expires_in, Unset):
            expires_in = UNSET
        else:
            expires_in = self.expires_in

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if kind is not UNSET:
            field_dict["kind"] = kind
        if scope is not UNSET:
            field_dict["scope"] = scope
        if expires_in is not UNSET:
            field_dict["expires_in"] = expires_in

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.key_scope import KeyScope  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name", UNSET)

        _kind = d.pop("kind", UNSET)
        kind: KeyInputKind | Unset
        if isinstance(_kind, Unset):
            kind = UNSET
        else:
            kind = KeyInputKind(_kind)

        _scope = d.pop("scope", UNSET)
        scope: KeyScope | Unset
        if isinstance(_scope, Unset):
            scope = UNSET
        else:
            scope = KeyScope.from_dict(_scope)

        def _parse_expires_in(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_in = _parse_expires_in(d.pop("expires_in", UNSET))

        key_input = cls(
            name=name,
            kind=kind,
            scope=scope,
            expires_in=expires_in,
        )

        return key_input
