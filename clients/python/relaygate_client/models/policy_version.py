from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PolicyVersion")


@_attrs_define
class PolicyVersion:
    """
    Attributes:
        policy_id (str):
        version (int):
        source (str):
        digest (str):
        label (str | Unset):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        created_by (str | Unset):
    """

    policy_id: str
    version: int
    source: str
    digest: str
    label: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    created_by: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        policy_id = self.policy_id

        version = self.version

        source = self.source

        digest = self.digest

        label = self.label

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        created_by = self.created_by

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "policy_id": policy_id,
                "version": version,
                "source": source,
                "digest": digest,
            }
        )
        if label is not UNSET:
            field_dict["label"] = label
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if created_by is not UNSET:
            field_dict["created_by"] = created_by

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        policy_id = d.pop("policy_id")

        version = d.pop("version")

        source = d.pop("source")

        digest = d.pop("digest")

        label = d.pop("label", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        created_by = d.pop("created_by", UNSET)

        policy_version = cls(
            policy_id=policy_id,
            version=version,
            source=source,
            digest=digest,
            label=label,
            created_at=created_at,
            created_by=created_by,
        )

        return policy_version
