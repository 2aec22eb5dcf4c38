from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.opa_agent_list_agents_item_bundles import OpaAgentListAgentsItemBundles
    from ..models.opa_agent_list_agents_item_errors_item import OpaAgentListAgentsItemErrorsItem
    from ..models.opa_agent_list_agents_item_labels import OpaAgentListAgentsItemLabels


T = TypeVar("T", bound="OpaAgentListAgentsItem")


@_attrs_define
class OpaAgentListAgentsItem:
    """
    Attributes:
        id (str):
        version (str):
        labels (OpaAgentListAgentsItemLabels):
        bundles (OpaAgentListAgentsItemBundles): name -> active_revision, last_successful_activation,
            last_successful_download, code, message (OPA's bundle status)
        errors (list[OpaAgentListAgentsItemErrorsItem]):
        first_seen_ms (int):
        last_report_ms (int):
        decisions (int):
        current (bool | None): every bundle at the revision the control plane serves the agent's tenant (labels.tenant,
            default 'default') now
    """

    id: str
    version: str
    labels: OpaAgentListAgentsItemLabels
    bundles: OpaAgentListAgentsItemBundles
    errors: list[OpaAgentListAgentsItemErrorsItem]
    first_seen_ms: int
    last_report_ms: int
    decisions: int
    current: bool | None

    def to_dict(self) -> dict[str, Any]:
        id = self.id

        version = self.version

        labels = self.labels.to_dict()

        bundles = self.bundles.to_dict()

        errors = []
        for errors_item_data in self.errors:
            errors_item = errors_item_data.to_dict()
            errors.append(errors_item)

        first_seen_ms = self.first_seen_ms

        last_report_ms = self.last_report_ms

        decisions = self.decisions

        current: bool | None
        current = self.current

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "version": version,
                "labels": labels,
                "bundles": bundles,
                "errors": errors,
                "first_seen_ms": first_seen_ms,
                "last_report_ms": last_report_ms,
                "decisions": decisions,
                "current": current,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.opa_agent_list_agents_item_bundles import OpaAgentListAgentsItemBundles  # noqa: PLC0415
        from ..models.opa_agent_list_agents_item_errors_item import OpaAgentListAgentsItemErrorsItem  # noqa: PLC0415
        from ..models.opa_agent_list_agents_item_labels import OpaAgentListAgentsItemLabels  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        version = d.pop("version")

        labels = OpaAgentListAgentsItemLabels.from_dict(d.pop("labels"))

        bundles = OpaAgentListAgentsItemBundles.from_dict(d.pop("bundles"))

        errors = []
        _errors = d.pop("errors")
        for errors_item_data in _errors:
            errors_item = OpaAgentListAgentsItemErrorsItem.from_dict(errors_item_data)

            errors.append(errors_item)

        first_seen_ms = d.pop("first_seen_ms")

        last_report_ms = d.pop("last_report_ms")

        decisions = d.pop("decisions")

        def _parse_current(data: object) -> bool | None:
            if data is None:
                return data
            return cast(bool | None, data)

        current = _parse_current(d.pop("current"))

        opa_agent_list_agents_item = cls(
            id=id,
            version=version,
            labels=labels,
            bundles=bundles,
            errors=errors,
            first_seen_ms=first_seen_ms,
            last_report_ms=last_report_ms,
            decisions=decisions,
            current=current,
        )

        return opa_agent_list_agents_item
