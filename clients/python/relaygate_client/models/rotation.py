from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.rotation_detail import RotationDetail


T = TypeVar("T", bound="Rotation")


@_attrs_define
class Rotation:
    """
    Attributes:
        rotation_id (str):
        kind (str):
        status (str):
        target (str | Unset):
        created_at (datetime.datetime | Unset): ISO 8601 / RFC 3339, UTC
        done_at (datetime.datetime | None | Unset):
        detail (RotationDetail | Unset):
    """

    rotation_id: str
    kind: str
    status: str
    target: str | Unset = UNSET
    created_at: datetime.datetime | Unset = UNSET
    done_at: datetime.datetime | None | Unset = UNSET
    detail: RotationDetail | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        rotation_id = self.rotation_id

        kind = self.kind

        status = self.status

        target = self.target

        created_at: str | Unset = UNSET
        if not isinstance(self.created_at, Unset):
            created_at = self.created_at.isoformat()

        done_at: None | str | Unset
        if isinstance(self.done_at, Unset):
            done_at = UNSET
        elif isinstance(self.done_at, datetime.datetime):
            done_at = self.done_at.isoformat()
        else:
            done_at = self.done_at

        detail: dict[str, Any] | Unset = UNSET
        if not isinstance(self.detail, Unset):
            detail = self.detail.to_dict()

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "rotation_id": rotation_id,
                "kind": kind,
                "status": status,
            }
        )
        if target is not UNSET:
            field_dict["target"] = target
        if created_at is not UNSET:
            field_dict["created_at"] = created_at
        if done_at is not UNSET:
            field_dict["done_at"] = done_at
        if detail is not UNSET:
            field_dict["detail"] = detail

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.rotation_detail import RotationDetail  # noqa: PLC0415

        d = dict(src_dict)
        rotation_id = d.pop("rotation_id")

        kind = d.pop("kind")

        status = d.pop("status")

        target = d.pop("target", UNSET)

        _created_at = d.pop("created_at", UNSET)
        created_at: datetime.datetime | Unset
        if isinstance(_created_at, Unset):
            created_at = UNSET
        else:
            created_at = datetime.datetime.fromisoformat(_created_at)

        def _parse_done_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                done_at_type_0 = datetime.datetime.fromisoformat(data)

                return done_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        done_at = _parse_done_at(d.pop("done_at", UNSET))

        _detail = d.pop("detail", UNSET)
        detail: RotationDetail | Unset
        if isinstance(_detail, Unset):
            detail = UNSET
        else:
            detail = RotationDetail.from_dict(_detail)

        rotation = cls(
            rotation_id=rotation_id,
            kind=kind,
            status=status,
            target=target,
            created_at=created_at,
            done_at=done_at,
            detail=detail,
        )

        return rotation
