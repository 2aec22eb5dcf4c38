from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="LogKeys")


@_attrs_define
class LogKeys:
    """
    Attributes:
        root_key_id (str):
        root_public_key (str):
        origin (str | Unset):
        current_key_id (str | Unset):
        current_public_key (str | Unset):
    """

    root_key_id: str
    root_public_key: str
    origin: str | Unset = UNSET
    current_key_id: str | Unset = UNSET
    current_public_key: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        root_key_id = self.root_key_id

        root_public_key = self.root_public_key

        origin = self.origin

        current_key_id = self.current_key_id

        current_public_key = self.current_public_key

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "root_key_id": root_key_id,
                "root_public_key": root_public_key,
            }
        )
        if origin is not UNSET:
            field_dict["origin"] = origin
        if current_key_id is not UNSET:
            field_dict["current_key_id"] = current_key_id
        if current_public_key is not UNSET:
            field_dict["current_public_key"] = current_public_key

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        root_key_id = d.pop("root_key_id")

        root_public_key = d.pop("root_public_key")

        origin = d.pop("origin", UNSET)

        current_key_id = d.pop("current_key_id", UNSET)

        current_public_key = d.pop("current_public_key", UNSET)

        log_keys = cls(
            root_key_id=root_key_id,
            root_public_key=root_public_key,
            origin=origin,
            current_key_id=current_key_id,
            current_public_key=current_public_key,
        )

        return log_keys
