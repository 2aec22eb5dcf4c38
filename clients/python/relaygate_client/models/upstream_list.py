from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.upstream import Upstream


T = TypeVar("T", bound="UpstreamList")


@_attrs_define
class UpstreamList:
    """
    Attributes:
        upstreams (list[Upstream]):
    """

    upstreams: list[Upstream]

    def to_dict(self) -> dict[str, Any]:
        upstreams = []
        for upstreams_item_data in self.upstreams:
            upstreams_item = upstreams_item_data.to_dict()
            upstreams.append(upstreams_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "upstreams": upstreams,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.upstream import Upstream  # noqa: PLC0415

        d = dict(src_dict)
        upstreams = []
        _upstreams = d.pop("upstreams")
        for upstreams_item_data in _upstreams:
            upstreams_item = Upstream.from_dict(upstreams_item_data)

            upstreams.append(upstreams_item)

        upstream_list = cls(
            upstreams=upstreams,
        )

        return upstream_list
