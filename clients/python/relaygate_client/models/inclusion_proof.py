from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="InclusionProof")


@_attrs_define
class InclusionProof:
    """
    Attributes:
        leaf_index (int):
        tree_size (int):
        hashes (list[str]):
        event_id (str | Unset):
        checkpoint (None | str | Unset):
    """

    leaf_index: int
    tree_size: int
    hashes: list[str]
    event_id: str | Unset = UNSET
    checkpoint: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        leaf_index = self.leaf_index

        tree_size = self.tree_size

        hashes = self.hashes

        event_id = self.event_id

        checkpoint: None | str | Unset
        if isinstance(self.checkpoint, Unset):
            checkpoint = UNSET
        else:
            checkpoint = self.checkpoint

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "leaf_index": leaf_index,
                "tree_size": tree_size,
                "hashes": hashes,
            }
        )
        if event_id is not UNSET:
            field_dict["event_id"] = event_id
        if checkpoint is not UNSET:
            field_dict["checkpoint"] = checkpoint

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        leaf_index = d.pop("leaf_index")

        tree_size = d.pop("tree_size")

        hashes = cast(list[str], d.pop("hashes"))

        event_id = d.pop("event_id", UNSET)

        def _parse_checkpoint(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        checkpoint = _parse_checkpoint(d.pop("checkpoint", UNSET))

        inclusion_proof = cls(
            leaf_index=leaf_index,
            tree_size=tree_size,
            hashes=hashes,
            event_id=event_id,
            checkpoint=checkpoint,
        )

        return inclusion_proof
