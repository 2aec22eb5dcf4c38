from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.opa_status_report_bundles import OpaStatusReportBundles
    from ..models.opa_status_report_labels import OpaStatusReportLabels
    from ..models.opa_status_report_plugins import OpaStatusReportPlugins


T = TypeVar("T", bound="OpaStatusReport")


@_attrs_define
class OpaStatusReport:
    """
    Attributes:
        labels (OpaStatusReportLabels):
        bundles (OpaStatusReportBundles | Unset):
        plugins (OpaStatusReportPlugins | Unset):
    """

    labels: OpaStatusReportLabels
    bundles: OpaStatusReportBundles | Unset = UNSET
    plugins: OpaStatusReportPlugins | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        labels = self.labels.to_dict()

        bundles: dict[str, Any] | Unset = UNSET
        if not isinstance(self.bundles, Unset):
            bundles = self.bundles.to_dict()

        plugins: dict[str, Any] | Unset = UNSET
        if not isinstance(self.plugins, Unset):
            plugins = self.plugins.to_dict()

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "labels": labels,
            }
        )
        if bundles is not UNSET:
            field_dict["bundles"] = bundles
        if plugins is not UNSET:
            field_dict["plugins"] = plugins

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.opa_status_report_bundles import OpaStatusReportBundles  # noqa: PLC0415
        from ..models.opa_status_report_labels import OpaStatusReportLabels  # noqa: PLC0415
        from ..models.opa_status_report_plugins import OpaStatusReportPlugins  # noqa: PLC0415

        d = dict(src_dict)
        labels = OpaStatusReportLabels.from_dict(d.pop("labels"))

        _bundles = d.pop("bundles", UNSET)
        bundles: OpaStatusReportBundles | Unset
        if isinstance(_bundles, Unset):
            bundles = UNSET
        else:
            bundles = OpaStatusReportBundles.from_dict(_bundles)

        _plugins = d.pop("plugins", UNSET)
        plugins: OpaStatusReportPlugins | Unset
        if isinstance(_plugins, Unset):
            plugins = UNSET
        else:
            plugins = OpaStatusReportPlugins.from_dict(_plugins)

        opa_status_report = cls(
            labels=labels,
            bundles=bundles,
            plugins=plugins,
        )

        opa_status_report.additional_properties = d
        return opa_status_report

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
