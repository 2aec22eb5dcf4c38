from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.catalog_model_upstreams_item import CatalogModelUpstreamsItem


T = TypeVar("T", bound="CatalogModel")


@_attrs_define
class CatalogModel:
    """
    Attributes:
        id (str):
        provider (str):
        aliases (list[str]): the platform's other names for it
        upstreams (list[CatalogModelUpstreamsItem]): who serves it, in routing preference order, with its USD prices
            there
    """

    id: str
    provider: str
    aliases: list[str]
    upstreams: list[CatalogModelUpstreamsItem]

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        provider = self.provider

        aliases = self.aliases

        upstreams = []
        for upstreams_item_data in self.upstreams:
            upstreams_item = upstreams_item_data.to_dict()
            upstreams.append(upstreams_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "provider": provider,
                "aliases": aliases,
                "upstreams": upstreams,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.catalog_model_upstreams_item import CatalogModelUpstreamsItem  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        provider = d.pop("provider")

        aliases = cast(list[str], d.pop("aliases"))

        upstreams = []
        _upstreams = d.pop("upstreams")
        for upstreams_item_data in _upstreams:
            upstreams_item = CatalogModelUpstreamsItem.from_dict(upstreams_item_data)

            upstreams.append(upstreams_item)

        catalog_model = cls(
            id=id,
            provider=provider,
            aliases=aliases,
            upstreams=upstreams,
        )

        return catalog_model
