from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.key_introduction_event import KeyIntroductionEvent


T = TypeVar("T", bound="KeyIntroduction")


@_attrs_define
class KeyIntroduction:
    """
    Attributes:
        event (KeyIntroductionEvent): key.introduced custody event (DSSE)
        rotation_id (None | str | Unset):
    """

    event: KeyIntroductionEvent
    rotation_id: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        event = self.event.to_dict()

        rotation_id: None | str | Unset
        if isinstance(self.rotation_id, Unset):
            rotation_id = UNSET
        else:
            rotation_id = self.rotation_id

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "event": event,
            }
        )
        if rotation_id is not UNSET:
            field_dict["rotation_id"] = rotation_id

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.key_introduction_event import KeyIntroductionEvent  # noqa: PLC0415

        d = dict(src_dict)
        event = KeyIntroductionEvent.from_dict(d.pop("event"))

        def _parse_rotation_id(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        rotation_id = _parse_rotation_id(d.pop("rotation_id", UNSET))

        key_introduction = cls(
            event=event,
            rotation_id=rotation_id,
        )

        return key_introduction
