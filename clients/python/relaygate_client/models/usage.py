from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.usage_row import UsageRow


T = TypeVar("T", bound="Usage")


@_attrs_define
class Usage:
    """
    Attributes:
        total (UsageRow):
        by_model (list[UsageRow]):
        by_endpoint (list[UsageRow]):
        by_provider (list[UsageRow]):
        from_ (datetime.datetime | None | Unset):
        to (datetime.datetime | None | Unset):
        by_month (list[UsageRow] | Unset):
    """

    total: UsageRow
    by_model: list[UsageRow]
    by_endpoint: list[UsageRow]
    by_provider: list[UsageRow]
    from_: datetime.datetime | None | Unset = UNSET
    to: datetime.datetime | None | Unset = UNSET
    by_month: list[UsageRow] | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        total = self.total.to_dict()

        by_model = []
        for by_model_item_data in self.by_model:
            by_model_item = by_model_item_data.to_dict()
            by_model.append(by_model_item)

        by_endpoint = []
        for by_endpoint_item_data in self.by_endpoint:
            by_endpoint_item = by_endpoint_item_data.to_dict()
            by_endpoint.append(by_endpoint_item)

        by_provider = []
        for by_provider_item_data in self.by_provider:
            by_provider_item = by_provider_item_data.to_dict()
            by_provider.append(by_provider_item)

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

        by_month: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.by_month, Unset):
            by_month = []
            for by_month_item_data in self.by_month:
                by_month_item = by_month_item_data.to_dict()
                by_month.append(by_month_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "total": total,
                "by_model": by_model,
                "by_endpoint": by_endpoint,
                "by_provider": by_provider,
            }
        )
        if from_ is not UNSET:
            field_dict["from"] = from_
        if to is not UNSET:
            field_dict["to"] = to
        if by_month is not UNSET:
            field_dict["by_month"] = by_month

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.usage_row import UsageRow  # noqa: PLC0415

        d = dict(src_dict)
        total = UsageRow.from_dict(d.pop("total"))

        by_model = []
        _by_model = d.pop("by_model")
        for by_model_item_data in _by_model:
            by_model_item = UsageRow.from_dict(by_model_item_data)

            by_model.append(by_model_item)

        by_endpoint = []
        _by_endpoint = d.pop("by_endpoint")
        for by_endpoint_item_data in _by_endpoint:
            by_endpoint_item = UsageRow.from_dict(by_endpoint_item_data)

            by_endpoint.append(by_endpoint_item)

        by_provider = []
        _by_provider = d.pop("by_provider")
        for by_provider_item_data in _by_provider:
            by_provider_item = UsageRow.from_dict(by_provider_item_data)

            by_provider.append(by_provider_item)

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

        _by_month = d.pop("by_month", UNSET)
        by_month: list[UsageRow] | Unset = UNSET
        if _by_month is not UNSET:
            by_month = []
            for by_month_item_data in _by_month:
                by_month_item = UsageRow.from_dict(by_month_item_data)

                by_month.append(by_month_item)

        usage = cls(
            total=total,
            by_model=by_model,
            by_endpoint=by_endpoint,
            by_provider=by_provider,
            from_=from_,
            to=to,
            by_month=by_month,
        )

        return usage
