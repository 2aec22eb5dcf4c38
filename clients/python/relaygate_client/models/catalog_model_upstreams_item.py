from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="CatalogModelUpstreamsItem")


@_attrs_define
class CatalogModelUpstreamsItem:
    """
    Attributes:
        name (str):
        region (str):
        jurisdiction (str):
        input_per_1k (float):
        output_per_1k (float):
        max_output_tokens (int):
    """

    name: str
    region: str
    jurisdiction: str
    input_per_1k: float
    output_per_1k: float
    max_output_tokens: int

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        region = self.region

        jurisdiction = self.jurisdiction

        input_per_1k = self.input_per_1k

        output_per_1k = self.output_per_1k

        max_output_tokens = self.max_output_tokens

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "region": region,
                "jurisdiction": jurisdiction,
                "input_per_1k": input_per_1k,
                "output_per_1k": output_per_1k,
                "max_output_tokens": max_output_tokens,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        name = d.pop("name")

        region = d.pop("region")

        jurisdiction = d.pop("jurisdiction")

        input_per_1k = d.pop("input_per_1k")

        output_per_1k = d.pop("output_per_1k")

        max_output_tokens = d.pop("max_output_tokens")

        catalog_model_upstreams_item = cls(
            name=name,
            region=region,
            jurisdiction=jurisdiction,
            input_per_1k=input_per_1k,
            output_per_1k=output_per_1k,
            max_output_tokens=max_output_tokens,
        )

        return catalog_model_upstreams_item
