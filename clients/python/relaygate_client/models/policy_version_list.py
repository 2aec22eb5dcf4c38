from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.policy_version import PolicyVersion


T = TypeVar("T", bound="PolicyVersionList")


@_attrs_define
class PolicyVersionList:
    """
    Attributes:
        versions (list[PolicyVersion]):
    """

    versions: list[PolicyVersion]

    def to_dict(self) -> dict[str, Any]:
        versions = []
        for versions_item_data in self.versions:
            versions_item = versions_item_data.to_dict()
            versions.append(versions_item)

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "versions": versions,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.policy_version import PolicyVersion  # noqa: PLC0415

        d = dict(src_dict)
        versions = []
        _versions = d.pop("versions")
        for versions_item_data in _versions:
            versions_item = PolicyVersion.from_dict(versions_item_data)

            versions.append(versions_item)

        policy_version_list = cls(
            versions=versions,
        )

        return policy_version_list
