from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.effect import Effect


T = TypeVar("T", bound="Policy")


@_attrs_define
class Policy:
    """
    Attributes:
        id (str):
        name (str):
        current_version (int):
        source (str):
        created_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        updated_at (datetime.datetime): ISO 8601 / RFC 3339, UTC
        workspace (None | str | Unset):
        description (str | Unset):
        effect (Effect | None | Unset):
        digest (str | Unset):
        deleted_at (datetime.datetime | None | Unset):
        platform (bool | Unset):
        label (str | Unset): what receipts cite after '@'
    """

    id: str
    name: str
    current_version: int
    source: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    workspace: None | str | Unset = UNSET
    description: str | Unset = UNSET
    effect: Effect | None | Unset = UNSET
    digest: str | Unset = UNSET
    deleted_at: datetime.datetime | None | Unset = UNSET
    platform: bool | Unset = UNSET
    label: str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from ..models.effect import Effect  # noqa: PLC0415

        id = self.id

        name = self.name

        current_version = self.current_version

        source = self.source

        created_at = self.created_at.isoformat()

        updated_at = self.updated_at.isoformat()

        workspace: None | str | Unset
        if isinstance(self.workspace, Unset):
            workspace = UNSET
        else:
            workspace = self.workspace

        description = self.description

        effect: dict[str, Any] | None | Unset
        if isinstance(self.effect, Unset):
            effect = UNSET
        elif isinstance(self.effect, Effect):
            effect = self.effect.to_dict()
        else:
            effect = self.effect

        digest = self.digest

        deleted_at: None | str | Unset
        if isinstance(self.deleted_at, Unset):
            deleted_at = UNSET
        elif isinstance(self.deleted_at, datetime.datetime):
            deleted_at = self.deleted_at.isoformat()
        else:
            deleted_at = self.deleted_at

        platform = self.platform

        label = self.label

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "id": id,
                "name": name,
                "current_version": current_version,
                "source": source,
                "created_at": created_at,
                "updated_at": updated_at,
            }
        )
        if workspace is not UNSET:
            field_dict["workspace"] = workspace
        if description is not UNSET:
            field_dict["description"] = description
        if effect is not UNSET:
            field_dict["effect"] = effect
        if digest is not UNSET:
            field_dict["digest"] = digest
        if deleted_at is not UNSET:
            field_dict["deleted_at"] = deleted_at
        if platform is not UNSET:
            field_dict["platform"] = platform
        if label is not UNSET:
            field_dict["label"] = label

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.effect import Effect  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        name = d.pop("name")

        current_version = d.pop("current_version")

        source = d.pop("source")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        updated_at = datetime.datetime.fromisoformat(d.pop("updated_at"))

        def _parse_workspace(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workspace = _parse_workspace(d.pop("workspace", UNSET))

        description = d.pop("description", UNSET)

        def _parse_effect(data: object) -> Effect | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                effect_type_0 = Effect.from_dict(data)

                return effect_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(Effect | None | Unset, data)

        effect = _parse_effect(d.pop("effect", UNSET))

        digest = d.pop("digest", UNSET)

        def _parse_deleted_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                deleted_at_type_0 = datetime.datetime.fromisoformat(data)

                return deleted_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        deleted_at = _parse_deleted_at(d.pop("deleted_at", UNSET))

        platform = d.pop("platform", UNSET)

        label = d.pop("label", UNSET)

        policy = cls(
            id=id,
            name=name,
            current_version=current_version,
            source=source,
            created_at=created_at,
            updated_at=updated_at,
            workspace=workspace,
            description=description,
            effect=effect,
            digest=digest,
            deleted_at=deleted_at,
            platform=platform,
            label=label,
        )

        return policy
