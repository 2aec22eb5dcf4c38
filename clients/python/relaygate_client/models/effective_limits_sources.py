from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.effective_limits_sources_additional_property import EffectiveLimitsSourcesAdditionalProperty

T = TypeVar("T", bound="EffectiveLimitsSources")


@_attrs_define
class EffectiveLimitsSources:
    """where each limit comes from: the workspace's own (a contract), its plan, the default"""

    additional_properties: dict[str, EffectiveLimitsSourcesAdditionalProperty] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        field_dict: dict[str, Any] = {}
        for prop_name, prop in self.additional_properties.items():
            field_dict[prop_name] = prop.value

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        effective_limits_sources = cls()

        additional_properties = {}
        for prop_name, prop_dict in d.items():
            additional_property = EffectiveLimitsSourcesAdditionalProperty(prop_dict)

            additional_properties[prop_name] = additional_property

        effective_limits_sources.additional_properties = additional_properties
        return effective_limits_sources

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> EffectiveLimitsSourcesAdditionalProperty:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: EffectiveLimitsSourcesAdditionalProperty) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
