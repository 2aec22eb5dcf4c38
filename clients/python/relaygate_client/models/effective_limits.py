from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.effective_limits_sources import EffectiveLimitsSources
    from ..models.plan_limits import PlanLimits


T = TypeVar("T", bound="EffectiveLimits")


@_attrs_define
class EffectiveLimits:
    """
    Attributes:
        workspace (str):
        plan (None | str):
        limits (PlanLimits):
        sources (EffectiveLimitsSources): where each limit comes from: the workspace's own (a contract), its plan, the
            default
    """

    workspace: str
    plan: None | str
    limits: PlanLimits
    sources: EffectiveLimitsSources

    def to_dict(self) -> dict[str, Any]:
        workspace = self.workspace

        plan: None | str
        plan = self.plan

        limits = self.limits.to_dict()

        sources = self.sources.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "workspace": workspace,
                "plan": plan,
                "limits": limits,
                "sources": sources,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.effective_limits_sources import EffectiveLimitsSources  # noqa: PLC0415
        from ..models.plan_limits import PlanLimits  # noqa: PLC0415

        d = dict(src_dict)
        workspace = d.pop("workspace")

        def _parse_plan(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        plan = _parse_plan(d.pop("plan"))

        limits = PlanLimits.from_dict(d.pop("limits"))

        sources = EffectiveLimitsSources.from_dict(d.pop("sources"))

        effective_limits = cls(
            workspace=workspace,
            plan=plan,
            limits=limits,
            sources=sources,
        )

        return effective_limits
