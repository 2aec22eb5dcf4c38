from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.plan_limits import PlanLimits


T = TypeVar("T", bound="PlanListPlansItem")


@_attrs_define
class PlanListPlansItem:
    """
    Attributes:
        name (str):
        limits (PlanLimits):
    """

    name: str
    limits: PlanLimits

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        limits = self.limits.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "limits": limits,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.plan_limits import PlanLimits  # noqa: PLC0415

        d = dict(src_dict)
        name = d.pop("name")

        limits = PlanLimits.from_dict(d.pop("limits"))

        plan_list_plans_item = cls(
            name=name,
            limits=limits,
        )

        return plan_list_plans_item
