from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..models.budget_input_unit import BudgetInputUnit
from ..models.budget_input_window import BudgetInputWindow
from ..types import UNSET, Unset

T = TypeVar("T", bound="BudgetInput")


@_attrs_define
class BudgetInput:
    """
    Attributes:
        id (str):
        unit (BudgetInputUnit):
        window (BudgetInputWindow):
        limit (float): tokens, or US dollars for unit usd
        key_id (None | str | Unset):
    """

    id: str
    unit: BudgetInputUnit
    window: BudgetInputWindow
    limit: float
    key_id: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        unit = self.unit.value

        window = self.window.value

        limit = self.limit

        key_id: None | str | Unset
        if isinstance(self.key_id, Unset):
            key_id = UNSET
        else:
            key_id = self.key_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "unit": unit,
                "window": window,
                "limit": limit,
            }
        )
        if key_id is not UNSET:
            field_dict["key_id"] = key_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        unit = BudgetInputUnit(d.pop("unit"))

        window = BudgetInputWindow(d.pop("window"))

        limit = d.pop("limit")

        def _parse_key_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        key_id = _parse_key_id(d.pop("key_id", UNSET))

        budget_input = cls(
            id=id,
            unit=unit,
            window=window,
            limit=limit,
            key_id=key_id,
        )

        return budget_input
