from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

T = TypeVar("T", bound="ConsistencyProof")


@_attrs_define
class ConsistencyProof:
    """
    Attributes:
        first (int):
        second (int):
        hashes (list[str]):
    """

    first: int
    second: int
    hashes: list[str]

    def to_dict(self) -> dict[str, Any]:
        first = self.first

        second = self.second

        hashes = self.hashes

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "first": first,
                "second": second,
                "hashes": hashes,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        first = d.pop("first")

        second = d.pop("second")

        hashes = cast(list[str], d.pop("hashes"))

        consistency_proof = cls(
            first=first,
            second=second,
            hashes=hashes,
        )

        return consistency_proof
