from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="Checkpoint")


@_attrs_define
class Checkpoint:
    """
    Attributes:
        size (int):
        root_hash (str):
        key_id (str):
        signed_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        checkpoint (str): C2SP signed note
    """

    size: int
    root_hash: str
    key_id: str
    signed_at: datetime.datetime
    checkpoint: str

    def to_dict(self) -> dict[str, Any]:
        size = self.size

        root_hash = self.root_hash

        key_id = self.key_id

        signed_at = self.signed_at.isoformat()

        checkpoint = self.checkpoint

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "size": size,
                "root_hash": root_hash,
                "key_id": key_id,
                "signed_at": signed_at,
                "checkpoint": checkpoint,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        size = d.pop("size")

        root_hash = d.pop("root_hash")

        key_id = d.pop("key_id")

        signed_at = datetime.datetime.fromisoformat(d.pop("signed_at"))

        checkpoint = d.pop("checkpoint")

        checkpoint = cls(
            size=size,
            root_hash=root_hash,
            key_id=key_id,
            signed_at=signed_at,
            checkpoint=checkpoint,
        )

        return checkpoint
