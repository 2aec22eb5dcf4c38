from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="ModelPrice")


@_attrs_define
class ModelPrice:
    """
    Attributes:
        input_per_1k (float | Unset):
        output_per_1k (float | Unset):
        max_output_tokens (int | Unset):
        aliases (list[str] | Unset): other names callers may use for this model (e.g. the RelayPlane reference's
            claude-3-sonnet); the gateway resolves them before scope, policy and price see the call
    """

    input_per_1k: float | Unset = UNSET
    output_per_1k: float | Unset = UNSET
    max_output_tokens: int | Unset = UNSET
    aliases: list[str] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        input_per_1k = self.input_per_1k

        output_per_1k = self.output_per_1k

        max_output_tokens = self.max_output_tokens

        aliases: list[str] | Unset = UNSET
        if not isinstance(self.aliases, Unset):
            aliases = self.aliases

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if input_per_1k is not UNSET:
            field_dict["input_per_1k"] = input_per_1k
        if output_per_1k is not UNSET:
            field_dict["output_per_1k"] = output_per_1k
        if max_output_tokens is not UNSET:
            field_dict["max_output_tokens"] = max_output_tokens
        if aliases is not UNSET:
            field_dict["aliases"] = aliases

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        input_per_1k = d.pop("input_per_1k", UNSET)

        output_per_1k = d.pop("output_per_1k", UNSET)

        max_output_tokens = d.pop("max_output_tokens", UNSET)

        aliases = cast(list[str], d.pop("aliases", UNSET))

        model_price = cls(
            input_per_1k=input_per_1k,
            output_per_1k=output_per_1k,
            max_output_tokens=max_output_tokens,
            aliases=aliases,
        )

        return model_price
