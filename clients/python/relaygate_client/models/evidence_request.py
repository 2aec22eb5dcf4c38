from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.evidence_request_components_item import EvidenceRequestComponentsItem
from ..types import UNSET, Unset

T = TypeVar("T", bound="EvidenceRequest")


@_attrs_define
class EvidenceRequest:
    """
    Attributes:
        from_ (datetime.datetime | None | Unset):
        to (datetime.datetime | None | Unset):
        components (list[EvidenceRequestComponentsItem] | Unset):
        consistency_from (list[int] | Unset): tree sizes of checkpoints you already hold: the bundle carries a
            consistency proof from each to its tree head (relaygate verify --after-checkpoint)
    """

    from_: datetime.datetime | None | Unset = UNSET
    to: datetime.datetime | None | Unset = UNSET
    components: list[EvidenceRequestComponentsItem] | Unset = UNSET
    consistency_from: list[int] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from_: None | str | Unset
        if isinstance(self.from_, Unset):
            from_ = UNSET
        elif isinstance(self.from_, datetime.datetime):
            from_ = self.from_.isoformat()
        else:
            from_ = self.from_

        to: None | str | Unset
        if isinstance(self.to, Unset):
            to = UNSET
        elif isinstance(self.to, datetime.datetime):
            to = self.to.isoformat()
        else:
            to = self.to

        components: list[str] | Unset = UNSET
        if not isinstance(self.components, Unset):
            components = []
            for components_item_data in self.components:
                components_item = components_item_data.value
                components.append(components_item)

        consistency_from: list[int] | Unset = UNSET
        if not isinstance(self.consistency_from, Unset):
            consistency_from = self.consistency_from

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if from_ is not UNSET:
            field_dict["from"] = from_
        if to is not UNSET:
            field_dict["to"] = to
        if components is not UNSET:
            field_dict["components"] = components
        if consistency_from is not UNSET:
            field_dict["consistency_from"] = consistency_from

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)

        def _parse_from_(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                from_type_0 = datetime.datetime.fromisoformat(data)

                return from_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        from_ = _parse_from_(d.pop("from", UNSET))

        def _parse_to(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                to_type_0 = datetime.datetime.fromisoformat(data)

                return to_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        to = _parse_to(d.pop("to", UNSET))

        _components = d.pop("components", UNSET)
        components: list[EvidenceRequestComponentsItem] | Unset = UNSET
        if _components is not UNSET:
            components = []
            for components_item_data in _components:
                components_item = EvidenceRequestComponentsItem(components_item_data)

                components.append(components_item)

        consistency_from = cast(list[int], d.pop("consistency_from", UNSET))

        evidence_request = cls(
            from_=from_,
            to=to,
            components=components,
            consistency_from=consistency_from,
        )

        return evidence_request
